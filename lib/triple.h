/*
 * The Triple HTTP unary form, client side (doc/PROTOCOL.md "Triple unary
 * (client)"): request headers, the bare response body, the error body.
 * Used only by streams a unary call opened with TRI_PROTOCOL_TRIPLE
 * (s->triple != NULL); gRPC streams never reach this code.  The I/O
 * thread's part is declared in triple_io.h (only I/O files include
 * nghttp2).
 */
#ifndef TRI_TRIPLE_H
#define TRI_TRIPLE_H

#include "tri_int.h"

#include <protobuf-c/protobuf-c.h>

/* Caller threads. */
struct tri__triple *tri__triple_new(int json);
void tri__triple_free(struct tri__triple *t); /* NULL allowed */

/* stream.c (caller thread): |len| bytes as the whole request body, no
 * length prefix, then half-close. */
int tri__stream_send_bare_last(tri_stream *s, const void *data, size_t len);

/* channel.c: open a stream as a unary call does (the Triple form or the
 * JSON codec when |opts| ask for them); tri_unary_call()'s first step,
 * also used by test/fuzz/fuzz_client_conn.c. */
int tri__stream_open_unary(tri_channel *ch, const char *method,
                           const tri_call_opts *opts, tri_stream **out);

/* channel.c: tri_unary_call() with the request's and the response's
 * descriptors (NULL for raw bytes), which the JSON codec needs. */
int tri__unary_call(tri_channel *ch, const char *method,
                    const tri_call_opts *opts, const void *req,
                    size_t req_len, const ProtobufCMessageDescriptor *req_desc,
                    const ProtobufCMessageDescriptor *resp_desc,
                    tri_buf **resp, tri_stream **stream_out);

/* Error body of a non-200 Triple response (json.c; needs jansson): a JSON
 * object with "code" (a name such as "not_found", or a number) or a numeric
 * "status", and "message".  Returns 1 with *code and *msg (malloc'd, may be
 * NULL) when a code was found (a number outside 0..16 gives *code -1), else
 * 0. */
int tri__json_error_body(const char *body, size_t len, int *code,
                         char **msg);

#endif /* TRI_TRIPLE_H */
