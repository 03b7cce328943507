/*
 * The server's protocol edges (doc/PROTOCOL.md 16): Triple's HTTP unary
 * protocol, gRPC-Web (binary and text) and JSON payloads, over HTTP/2
 * (h2server.c) and HTTP/1.1 (http1.c), in front of unchanged handlers.
 * A handler always sees protobuf bytes: the edge translates requests
 * before they are queued and responses as they leave the send ring.
 *
 * Threads: the connection's I/O thread only; an edge is created when a
 * request's headers are complete and freed with its stream.
 */
#ifndef TRI_EDGE_H
#define TRI_EDGE_H

#include "tri_int.h"

#include <protobuf-c/protobuf-c.h>

#include "conn.h"

enum tri__edge_kind {
  TRI__EDGE_UNARY = 1, /* Triple HTTP unary: bare body, HTTP status */
  TRI__EDGE_GRPC_JSON, /* application/grpc+json: gRPC with JSON messages */
  TRI__EDGE_WEB        /* gRPC-Web: trailers in a 0x80 frame */
};

/* Request headers complete (h2server.c headers_done, http1.c): decide
 * whether |s| is an edge request.  0: plain gRPC (s->edge stays NULL);
 * 1: edge request, continue with validation and dispatch; -1: answered
 * already (415, CORS preflight, 405 ...). */
int tri__edge_classify(tri__conn *c, tri_stream *s);
/* server.c dispatch: the method's types; non-OK (msg set) when the edge
 * cannot serve it (JSON without descriptors: 415). */
int tri__edge_method(tri_stream *s, const ProtobufCMessageDescriptor *req,
                     const ProtobufCMessageDescriptor *resp,
                     const char **msg);
/* Request bytes (flow.c): may replace |*data|/|*len| with translated
 * bytes in *|tmp| (caller frees).  1: deframe them as gRPC; 0: the edge
 * took them (unary body) or failed the stream. */
int tri__edge_data_in(tri__conn *c, tri_stream *s, const uint8_t **data,
                      size_t *len, uint8_t **tmp);
/* One deframed request message (flow.c): JSON to protobuf.  TRI_OK or a
 * status with *err. */
int tri__edge_msg_in(tri_stream *s, tri_buf **m, const char **err);
/* The request ended (END_STREAM, end of an HTTP/1.1 body).  1 when the
 * edge handled it (the unary message queued, PEER_EOS done). */
int tri__edge_eos(tri__conn *c, tri_stream *s);
/* tri__server_ops() for an edge stream.  1 when handled. */
int tri__edge_ops(tri__conn *c, tri_stream *s, unsigned ops);
/* Trailers-only / reject path (respond_status): the edge's answer.  1
 * when handled, 0 for a gRPC answer. */
int tri__edge_respond(tri__conn *c, tri_stream *s);
/* nghttp2 data provider for edge responses (copies, translates). */
ssize_t tri__edge_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                          size_t length, uint32_t *flags,
                          nghttp2_data_source *src, void *ud);
/* HTTP/1.1: up to |cap| response body bytes of |s| into |buf|; *eof when
 * the body is complete.  -1: the response cannot be completed (reset). */
ssize_t tri__edge_pull(tri_stream *s, uint8_t *buf, size_t cap, int *eof);
/* The response's body length if known before it starts (Triple unary),
 * else -1 (streamed). */
int64_t tri__edge_body_len(const tri_stream *s);
/* After the edge response went out before the request ended: 1 to let
 * the client finish its body instead of RST_STREAM(NO_ERROR) (not for a
 * body over the limit). */
int tri__edge_keep_open(const tri_stream *s);
void tri__edge_free(struct tri__edge *e);
/* "Not Found" for 404 ... (HTTP/1.1 status lines). */
const char *tri__edge_reason(int status);

/* ---- http1.c (HTTP/1.1 connections; no-ops without http-parser) ---- */
/* First bytes of a server connection (still in TRI__CONN_HANDSHAKE):
 * 1 when they are not the HTTP/2 preface and the connection became an
 * HTTP/1.1 one (the bytes were consumed), 0 to go on with HTTP/2. */
int tri__h1_detect(tri__conn *c, const uint8_t *buf, size_t n);
/* Bytes read on an HTTP/1.1 connection.  0, or -1 to close. */
int tri__h1_read(tri__conn *c, const uint8_t *buf, size_t n);
/* Fill c->wbuf with response bytes (sockio.c tri__sock_flush).  0, or
 * -1 when the output could not be buffered (out of memory): close the
 * connection without writing, what is buffered may end mid-response. */
int tri__h1_produce(tri__conn *c);
/* Once tri__h1_produce() failed: why, to give on close; else NULL. */
const char *tri__h1_broken(const tri__conn *c);
/* 1 when a response that began will not be complete (out of memory, the
 * call cancelled): the connection must end with a TCP reset, not a FIN
 * (nor TLS close_notify), or an HTTP/1.0 client reading to the close
 * would take the cut body for the whole one (RFC 9112 §6.3, §9.6). */
int tri__h1_cut(const tri__conn *c);
/* 1 when the connection has nothing more to do and may close. */
int tri__h1_finished(const tri__conn *c);
/* Per-iteration work (timeouts, the next pipelined request, drain). */
void tri__h1_tick(tri__conn *c, int64_t now, int64_t *next);
/* An edge response of |s| is ready to start on an HTTP/1.1 connection:
 * write the status line and |nv| headers. */
void tri__h1_start(tri__conn *c, tri_stream *s, int status,
                   const nghttp2_nv *nv, size_t n);
/* |s| was reset (cancel): HTTP/1.1 cannot reset one request, so the
 * connection closes once what is written went out. */
void tri__h1_abort(tri__conn *c, tri_stream *s);
/* Close the connection after the response being prepared. */
void tri__h1_close_after(tri__conn *c);
void tri__h1_free(tri__conn *c);

#endif /* TRI_EDGE_H */
