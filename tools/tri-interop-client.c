/*
 * tri-interop-client: the gRPC interop test client over libtriplestream
 * (doc/PROTOCOL.md section 12; grpc/grpc doc/interop-test-descriptions.md).
 *
 *   tri-interop-client --server_host=H --server_port=P --test_case=NAME
 *                      [--use_tls[=true|false]] [--tls_ca_file=F]
 *                      [--server_host_override=X]
 *                      [--tls_cert_file=F --tls_key_file=F]
 *                      [--protocol=grpc|triple] [--codec=proto|json]
 *   tri-interop-client --target=URI [--lb_policy=pick_first|round_robin]
 *                      --test_case=NAME ...
 *
 * --target takes any channel target (README "Targets and load
 * balancing": HOST:PORT, dns:///, ipv4:, ipv6:, unix:, unix-abstract:,
 * zookeeper://) instead of --server_host/--server_port.
 *
 * NAME is one of the cases in the table at the end of this file, or "all".
 * Options also take "--name value".  Exit status 0 only when the case (or
 * every case of "all") passed; otherwise each failure prints one line
 * "FAIL case: reason" on stderr and the status is 1 (2 for bad usage).
 * With "all", passing cases print "PASS case" on stdout.
 *
 * Every call carries a deadline and every wait a timeout, so a broken
 * server or library makes a case fail, never hang.
 *
 * With --use_tls (gRPC's interop flag) the channel is TLS: the server's
 * certificate is verified with --tls_ca_file (the system's CAs without
 * it) against --server_host_override, or the host when not given;
 * --tls_cert_file and --tls_key_file present a client certificate (mutual
 * TLS).  Without TLS --server_host_override is ignored (gRPC uses it for
 * the TLS name check and :authority only).  --use_test_ca is accepted
 * and ignored.
 *
 * --protocol=triple sends the unary calls (empty_unary, large_unary,
 * custom_metadata's UnaryCall, status_code_and_message's UnaryCall, the
 * compressed unary cases, unimplemented_*) in Triple's HTTP unary form
 * (tri_call_opts_set_protocol); --codec=json carries their messages as
 * proto3 JSON (tri_call_opts_set_codec).  Streaming calls stay gRPC with
 * protobuf whatever the flags say: the library does that for any stream.
 *
 * Calls go through the stubs protoc-gen-triplestream generates from
 * proto/grpc/testing/test.proto (grpc/testing/test.tri.h): the typed unary
 * functions and stream wrappers.  The wrapper's stream (member "stream")
 * is used directly only for what they do not cover: status, metadata,
 * cancel checks, per-message TRI_SEND_NO_COMPRESS, and the
 * TRI_BUF_COMPRESSED flag of a response (server_compressed_*).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <triplestream/triplestream.h>
#include <triplestream/protobuf.h>

#include "grpc/testing/test.tri.h"

#define CALL_MS 20000 /* deadline of every call */
#define WAIT_MS 25000 /* bound of every single wait (recv, status, headers) */

static const char ECHO_INITIAL[] = "x-grpc-test-echo-initial";
static const char ECHO_INITIAL_VALUE[] = "test_initial_metadata_value";
static const char ECHO_TRAILING[] = "x-grpc-test-echo-trailing-bin";
static const uint8_t ECHO_TRAILING_VALUE[3] = {0xab, 0xab, 0xab};

static const char SPECIAL_MESSAGE[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
    "\xf0\x9f\x98\x88\t\n";

/* Request payload bodies point into this (largest request: 271828). */
static uint8_t zeros[271828];

/* --protocol and --codec, applied to every call's options (streams
 * ignore them: the library keeps them gRPC). */
static int g_protocol = TRI_PROTOCOL_GRPC;
static const char *g_codec = "proto";

/* Reason of the current case's failure. */
static char why[1024];

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return -1;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static tri_call_opts *call_opts(int64_t timeout_ms, const char *encoding) {
  tri_call_opts *o = tri_call_opts_new();
  if (o == NULL)
    return NULL;
  if (tri_call_opts_set_timeout_ms(o, timeout_ms) != TRI_OK ||
      tri_call_opts_set_protocol(o, g_protocol) != TRI_OK ||
      tri_call_opts_set_codec(o, g_codec) != TRI_OK ||
      (encoding != NULL &&
       tri_call_opts_set_compression(o, encoding) != TRI_OK)) {
    tri_call_opts_free(o);
    return NULL;
  }
  return o;
}

static Grpc__Testing__Payload *zero_payload(Grpc__Testing__Payload *p,
                                            size_t n) {
  Grpc__Testing__Payload init = GRPC__TESTING__PAYLOAD__INIT;
  *p = init;
  p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
  p->body.data = zeros;
  p->body.len = n <= sizeof zeros ? n : sizeof zeros;
  return p;
}

/* The payload of a response has |want| bytes, all zero. */
static int check_payload(const Grpc__Testing__Payload *p, size_t want,
                         const char *what) {
  size_t len = p != NULL ? p->body.len : 0;
  if (len != want)
    return fail("%s payload %zu bytes, want %zu", what, len, want);
  for (size_t i = 0; i < len; i++)
    if (p->body.data[i] != 0)
      return fail("%s payload byte %zu is 0x%02x, want 0", what, i,
                  p->body.data[i]);
  return 0;
}

/* Text of a finished stream's status message ("" when none). */
static const char *status_text(tri_stream *st) {
  const char *msg = NULL;
  if (st == NULL || tri_stream_wait_status(st, 0, &msg) == TRI_ETIMEDOUT ||
      msg == NULL)
    return "";
  return msg;
}

static int bad_status(const char *what, int rc, tri_stream *st) {
  return fail("%s: %s (%s) \"%s\"", what, tri_code_name(rc), tri_strerror(rc),
              status_text(st));
}

static int send_pb(tri_stream *st, const ProtobufCMessage *m, unsigned flags) {
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL)
    return TRI_ENOMEM;
  protobuf_c_message_pack(m, buf);
  int rc = tri_stream_send_ex(st, buf, len, flags, WAIT_MS);
  free(buf);
  return rc;
}

/* Local result of recv_pb(): the message did not parse (reason in why). */
#define E_PARSE 1000

/* Receive and unpack one message of |desc|; *flags gets its TRI_BUF_*.
 * Returns TRI_OK, the recv status, or E_PARSE. */
static int recv_pb(tri_stream *st, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out, unsigned *flags, const char *what) {
  tri_buf *b = NULL;
  *out = NULL;
  int rc = tri_stream_recv_ex(st, &b, WAIT_MS);
  if (rc != TRI_OK)
    return rc;
  if (flags != NULL)
    *flags = tri_buf_flags(b);
  size_t len = tri_buf_len(b);
  *out = protobuf_c_message_unpack(desc, NULL, len, tri_buf_data(b));
  tri_buf_free(b);
  if (*out == NULL) {
    fail("%s: %zu-byte response does not parse as %s", what, len, desc->name);
    return E_PARSE;
  }
  return TRI_OK;
}

/* After the expected responses: no further message, then status OK. */
static int finish_ok(tri_stream *st, const char *what) {
  tri_buf *b = NULL;
  int rc = tri_stream_recv_ex(st, &b, WAIT_MS);
  if (rc == TRI_OK) {
    size_t len = tri_buf_len(b);
    tri_buf_free(b);
    return fail("%s: unexpected extra response (%zu bytes)", what, len);
  }
  if (rc != TRI_EOF)
    return bad_status(what, rc, st);
  rc = tri_stream_wait_status(st, WAIT_MS, NULL);
  if (rc != TRI_OK)
    return bad_status(what, rc, st);
  return 0;
}

/* A call expected to fail with |code| (and |msg| if not NULL). */
static int check_status(int rc, tri_stream *st, int code, const char *msg,
                        const char *what) {
  if (rc != code)
    return fail("%s: status %s \"%s\", want %s", what, tri_code_name(rc),
                status_text(st), tri_code_name(code));
  if (msg != NULL && strcmp(status_text(st), msg) != 0)
    return fail("%s: status message \"%s\" (%zu bytes), want \"%s\" (%zu "
                "bytes)",
                what, status_text(st), strlen(status_text(st)), msg,
                strlen(msg));
  return 0;
}

/* |md| holds exactly the value |val| for |key|. */
static int check_md(const tri_metadata *md, const char *key, const void *val,
                    size_t len, const char *what) {
  size_t got_len = 0;
  const void *got = tri_metadata_find(md, key, &got_len);
  if (got == NULL)
    return fail("%s: no %s", what, key);
  if (got_len != len || memcmp(got, val, len) != 0)
    return fail("%s: %s has %zu bytes (first 0x%02x), want %zu", what, key,
                got_len, got_len > 0 ? ((const uint8_t *)got)[0] : 0u, len);
  return 0;
}

static void large_request(Grpc__Testing__SimpleRequest *req,
                          Grpc__Testing__Payload *p) {
  Grpc__Testing__SimpleRequest init = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  *req = init;
  req->response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
  req->response_size = 314159;
  req->payload = zero_payload(p, 271828);
}

/* UnaryCall with |req|, expecting OK and a 314159-byte zero payload;
 * *flags (if not NULL) gets the response's TRI_BUF_* flags. */
static int unary_large(tri_channel *ch, const tri_call_opts *o,
                       const Grpc__Testing__SimpleRequest *req,
                       unsigned *flags, const char *what) {
  tri_buf *resp = NULL;
  tri_stream *st = NULL;
  int ret, rc;
  if (flags == NULL) {
    Grpc__Testing__SimpleResponse *r = NULL;
    rc = grpc__testing__test_service__unary_call__call(ch, o, req, &r, &st);
    if (rc != TRI_OK) {
      ret = bad_status(what, rc, st);
    } else {
      ret = check_payload(r->payload, 314159, what);
      grpc__testing__simple_response__free_unpacked(r, NULL);
    }
    tri_stream_free(st);
    return ret;
  }
  /* The typed call does not report the response's flags: raw call on the
   * generated path, with the generated message functions. */
  size_t len = grpc__testing__simple_request__get_packed_size(req);
  uint8_t *buf = malloc(len);
  if (buf == NULL)
    return fail("%s: out of memory", what);
  grpc__testing__simple_request__pack(req, buf);
  rc = tri_unary_call(ch, GRPC__TESTING__TEST_SERVICE__UNARY_CALL__PATH, o,
                      buf, len, &resp, &st);
  free(buf);
  if (rc != TRI_OK) {
    ret = bad_status(what, rc, st);
  } else {
    Grpc__Testing__SimpleResponse *r = grpc__testing__simple_response__unpack(
        NULL, tri_buf_len(resp), tri_buf_data(resp));
    *flags = tri_buf_flags(resp);
    if (r == NULL) {
      ret = fail("%s: response does not parse as SimpleResponse", what);
    } else {
      ret = check_payload(r->payload, 314159, what);
      grpc__testing__simple_response__free_unpacked(r, NULL);
    }
  }
  tri_buf_free(resp);
  tri_stream_free(st);
  return ret;
}

/* One StreamingOutputCallRequest asking for |n| responses of |sizes|. */
typedef struct {
  Grpc__Testing__StreamingOutputCallRequest req;
  Grpc__Testing__ResponseParameters rp[4];
  Grpc__Testing__ResponseParameters *rpp[4];
  Grpc__Testing__BoolValue bv[4];
  Grpc__Testing__Payload payload;
} out_req;

/* |compressed|: NULL = unset, else per response 0/1. */
static void out_req_init(out_req *r, size_t n, const int32_t *sizes,
                         const int *compressed, size_t payload) {
  Grpc__Testing__StreamingOutputCallRequest ri =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  Grpc__Testing__ResponseParameters pi = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
  Grpc__Testing__BoolValue bi = GRPC__TESTING__BOOL_VALUE__INIT;
  r->req = ri;
  r->req.response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
  for (size_t i = 0; i < n && i < 4; i++) {
    r->rp[i] = pi;
    r->rp[i].size = sizes[i];
    if (compressed != NULL) {
      r->bv[i] = bi;
      r->bv[i].value = compressed[i] != 0;
      r->rp[i].compressed = &r->bv[i];
    }
    r->rpp[i] = &r->rp[i];
  }
  r->req.n_response_parameters = n < 4 ? n : 4;
  r->req.response_parameters = n > 0 ? r->rpp : NULL;
  if (payload > 0)
    r->req.payload = zero_payload(&r->payload, payload);
}

/* Receive one StreamingOutputCallResponse on |st| (the stream of a
 * generated StreamingOutputCall wrapper, read raw for the message's
 * TRI_BUF_COMPRESSED flag), check its size (and flag when
 * |want_compressed| >= 0). */
static int recv_out(tri_stream *st, size_t want, int want_compressed,
                    const char *what) {
  ProtobufCMessage *m = NULL;
  unsigned flags = 0;
  int rc = recv_pb(st, &grpc__testing__streaming_output_call_response__descriptor,
                   &m, &flags, what);
  if (rc == TRI_EOF)
    return fail("%s: stream ended early (status OK, response missing)", what);
  if (rc == E_PARSE)
    return -1;
  if (rc != TRI_OK)
    return bad_status(what, rc, st);
  Grpc__Testing__StreamingOutputCallResponse *r =
      (Grpc__Testing__StreamingOutputCallResponse *)m;
  int ret = check_payload(r->payload, want, what);
  grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
  if (ret == 0 && want_compressed >= 0 &&
      !!(flags & TRI_BUF_COMPRESSED) != !!want_compressed)
    ret = fail("%s: compressed flag %s, want %s", what,
               (flags & TRI_BUF_COMPRESSED) ? "set" : "clear",
               want_compressed ? "set" : "clear");
  return ret;
}

/* Receive one response of a FullDuplexCall with the generated typed recv
 * and check its size. */
static int recv_duplex(Grpc__Testing__TestService__FullDuplexCall_Client *call,
                       size_t want, const char *what) {
  Grpc__Testing__StreamingOutputCallResponse *r = NULL;
  int rc = grpc__testing__test_service__full_duplex_call__recv(call, &r,
                                                               WAIT_MS);
  if (rc == TRI_EOF)
    return fail("%s: stream ended early (status OK, response missing)", what);
  if (rc != TRI_OK)
    return bad_status(what, rc, call->stream);
  int ret = check_payload(r->payload, want, what);
  grpc__testing__streaming_output_call_response__free_unpacked(r, NULL);
  return ret;
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

static int empty_unary(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
  Grpc__Testing__Empty *resp = NULL;
  tri_stream *st = NULL;
  int ret = 0;
  /* Empty serializes to zero bytes: sent as that; the response must pack
   * back to zero bytes too (unknown fields would not). */
  int rc = grpc__testing__test_service__empty_call__call(ch, o, &req, &resp,
                                                         &st);
  if (rc != TRI_OK) {
    ret = bad_status("EmptyCall", rc, st);
  } else if (resp == NULL) {
    ret = fail("EmptyCall: no response");
  } else {
    size_t len = grpc__testing__empty__get_packed_size(resp);
    if (len != 0)
      ret = fail("EmptyCall: response %zu bytes, want 0", len);
    grpc__testing__empty__free_unpacked(resp, NULL);
  }
  tri_stream_free(st);
  tri_call_opts_free(o);
  return ret;
}

static int large_unary(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload p;
  Grpc__Testing__SimpleResponse *resp = NULL;
  tri_stream *st = NULL;
  int ret;
  large_request(&req, &p);
  int rc = grpc__testing__test_service__unary_call__call(ch, o, &req, &resp,
                                                         &st);
  if (rc != TRI_OK) {
    ret = bad_status("UnaryCall", rc, st);
  } else {
    ret = check_payload(resp->payload, 314159, "response");
    grpc__testing__simple_response__free_unpacked(resp, NULL);
  }
  tri_stream_free(st);
  tri_call_opts_free(o);
  return ret;
}

static int client_streaming(tri_channel *ch) {
  static const size_t sizes[] = {27182, 8, 1828, 45904};
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__StreamingInputCall_Client call = {NULL};
  Grpc__Testing__StreamingInputCallResponse *resp = NULL;
  int ret = 0, rc;
  if ((rc = grpc__testing__test_service__streaming_input_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  for (size_t i = 0; i < 4; i++) {
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload p;
    req.payload = zero_payload(&p, sizes[i]);
    if ((rc = grpc__testing__test_service__streaming_input_call__send(
             &call, &req)) != TRI_OK) {
      ret = bad_status("send", rc, call.stream);
      goto out;
    }
  }
  rc = grpc__testing__test_service__streaming_input_call__close_and_recv(
      &call, &resp);
  if (rc != TRI_OK) {
    ret = bad_status("StreamingInputCall", rc, call.stream);
    goto out;
  }
  int32_t agg = resp->aggregated_payload_size;
  if (agg != 74922)
    ret = fail("aggregated_payload_size %d, want 74922", (int)agg);
  else
    ret = finish_ok(call.stream, "StreamingInputCall");
out:
  if (resp != NULL)
    grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
  grpc__testing__test_service__streaming_input_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

/* StreamingOutputCall with |n| sizes; |compressed| as in out_req_init. */
static int server_stream(tri_channel *ch, size_t n, const int32_t *sizes,
                         const int *compressed) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__StreamingOutputCall_Client call = {NULL};
  out_req r;
  int ret = 0, rc;
  out_req_init(&r, n, sizes, compressed, 0);
  /* sends the request and half-closes */
  if ((rc = grpc__testing__test_service__streaming_output_call__open(
           ch, o, &r.req, &call)) != TRI_OK) {
    if (call.stream == NULL)
      ret = bad_status("open", rc, NULL);
    else
      ret = bad_status("send", rc, call.stream);
    goto out;
  }
  for (size_t i = 0; i < n && ret == 0; i++) {
    char what[64];
    snprintf(what, sizeof what, "response %zu of %zu", i + 1, n);
    ret = recv_out(call.stream, (size_t)sizes[i],
                   compressed ? compressed[i] : -1, what);
  }
  if (ret == 0)
    ret = finish_ok(call.stream, "StreamingOutputCall");
out:
  grpc__testing__test_service__streaming_output_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int server_streaming(tri_channel *ch) {
  static const int32_t sizes[] = {31415, 9, 2653, 58979};
  return server_stream(ch, 4, sizes, NULL);
}

static int server_compressed_streaming(tri_channel *ch) {
  static const int32_t sizes[] = {31415, 92653};
  static const int compressed[] = {1, 0};
  return server_stream(ch, 2, sizes, compressed);
}

static int ping_pong(tri_channel *ch) {
  static const int32_t rsizes[] = {31415, 9, 2653, 58979};
  static const size_t qsizes[] = {27182, 8, 1828, 45904};
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  int ret = 0, rc;
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  for (size_t i = 0; i < 4 && ret == 0; i++) {
    out_req r;
    char what[64];
    out_req_init(&r, 1, &rsizes[i], NULL, qsizes[i]);
    snprintf(what, sizeof what, "ping %zu", i + 1);
    if ((rc = grpc__testing__test_service__full_duplex_call__send(
             &call, &r.req)) != TRI_OK)
      ret = bad_status(what, rc, call.stream);
    else
      ret = recv_duplex(&call, (size_t)rsizes[i], what);
  }
  if (ret == 0) {
    grpc__testing__test_service__full_duplex_call__close_send(&call);
    ret = finish_ok(call.stream, "FullDuplexCall");
  }
out:
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int empty_stream(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  int ret, rc;
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
  } else {
    grpc__testing__test_service__full_duplex_call__close_send(&call);
    ret = finish_ok(call.stream, "FullDuplexCall");
  }
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int timeout_on_sleeping_server(tri_channel *ch) {
  tri_call_opts *o = call_opts(1, NULL);
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  out_req r;
  int ret = 0, rc;
  out_req_init(&r, 0, NULL, NULL, 27182);
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    /* a deadline that passed before the stream could start is fine */
    ret = check_status(rc, NULL, TRI_DEADLINE_EXCEEDED, NULL, "open");
    goto out;
  }
  rc = grpc__testing__test_service__full_duplex_call__send(&call, &r.req);
  if (rc != TRI_OK && rc != TRI_DEADLINE_EXCEEDED) {
    ret = bad_status("send", rc, call.stream);
    goto out;
  }
  /* The server sleeps (no response parameters, no half-close): only the
   * 1 ms deadline can end the call. */
  rc = grpc__testing__test_service__full_duplex_call__recv(&call, &resp,
                                                           WAIT_MS);
  if (rc == TRI_OK) {
    grpc__testing__streaming_output_call_response__free_unpacked(resp, NULL);
    ret = fail("FullDuplexCall: got a response, want DEADLINE_EXCEEDED");
  } else if (rc == TRI_ETIMEDOUT) {
    ret = fail("FullDuplexCall: still open %d ms after a 1 ms deadline",
               WAIT_MS);
  } else if ((ret = check_status(rc, call.stream, TRI_DEADLINE_EXCEEDED, NULL,
                                 "recv")) == 0) {
    rc = tri_stream_wait_status(call.stream, WAIT_MS, NULL);
    ret = check_status(rc, call.stream, TRI_DEADLINE_EXCEEDED, NULL,
                       "final status");
  }
out:
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int cancel_after_begin(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__StreamingInputCall_Client call = {NULL};
  tri_buf *b = NULL;
  int ret, rc;
  if ((rc = grpc__testing__test_service__streaming_input_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
  } else {
    grpc__testing__test_service__streaming_input_call__cancel(&call);
    rc = tri_stream_wait_status(call.stream, WAIT_MS, NULL);
    ret = check_status(rc, call.stream, TRI_CANCELLED, NULL,
                       "status after cancel");
    if (ret == 0) {
      /* a client-streaming wrapper has no recv of its own */
      rc = tri_stream_recv_ex(call.stream, &b, WAIT_MS);
      if (rc == TRI_OK)
        tri_buf_free(b);
      ret = check_status(rc, call.stream, TRI_CANCELLED, NULL,
                         "recv after cancel");
    }
  }
  grpc__testing__test_service__streaming_input_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int cancel_after_first_response(tri_channel *ch) {
  static const int32_t size = 31415;
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  out_req r;
  int ret = 0, rc;
  out_req_init(&r, 1, &size, NULL, 27182);
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  if ((rc = grpc__testing__test_service__full_duplex_call__send(
           &call, &r.req)) != TRI_OK) {
    ret = bad_status("send", rc, call.stream);
    goto out;
  }
  if ((ret = recv_duplex(&call, 31415, "first response")) != 0)
    goto out;
  grpc__testing__test_service__full_duplex_call__cancel(&call);
  rc = grpc__testing__test_service__full_duplex_call__recv(&call, &resp,
                                                           WAIT_MS);
  if (rc == TRI_OK)
    grpc__testing__streaming_output_call_response__free_unpacked(resp, NULL);
  if ((ret = check_status(rc, call.stream, TRI_CANCELLED, NULL,
                          "recv after cancel")) == 0) {
    rc = tri_stream_wait_status(call.stream, WAIT_MS, NULL);
    ret = check_status(rc, call.stream, TRI_CANCELLED, NULL,
                       "status after cancel");
  }
out:
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_call_opts_free(o);
  return ret;
}

static int check_echo(tri_stream *st, const char *what) {
  char w[96];
  const tri_metadata *h = tri_stream_headers(st, WAIT_MS);
  if (h == NULL)
    return fail("%s: no response headers within %d ms", what, WAIT_MS);
  snprintf(w, sizeof w, "%s initial metadata", what);
  if (check_md(h, ECHO_INITIAL, ECHO_INITIAL_VALUE, strlen(ECHO_INITIAL_VALUE),
               w) != 0)
    return -1;
  snprintf(w, sizeof w, "%s trailing metadata", what);
  return check_md(tri_stream_trailers(st), ECHO_TRAILING, ECHO_TRAILING_VALUE,
                  sizeof ECHO_TRAILING_VALUE, w);
}

static int custom_metadata(tri_channel *ch) {
  static const int32_t size = 314159;
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload p;
  Grpc__Testing__SimpleResponse *resp = NULL;
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  tri_stream *st = NULL;
  out_req r;
  int ret, rc;
  if (o == NULL ||
      tri_call_opts_add_metadata(o, ECHO_INITIAL, ECHO_INITIAL_VALUE,
                                 strlen(ECHO_INITIAL_VALUE)) != TRI_OK ||
      tri_call_opts_add_metadata(o, ECHO_TRAILING, ECHO_TRAILING_VALUE,
                                 sizeof ECHO_TRAILING_VALUE) != TRI_OK) {
    ret = fail("cannot build call options with the echo metadata");
    goto out;
  }
  large_request(&req, &p);
  rc = grpc__testing__test_service__unary_call__call(ch, o, &req, &resp, &st);
  if (rc != TRI_OK) {
    ret = bad_status("UnaryCall", rc, st);
    goto out;
  }
  ret = check_payload(resp->payload, 314159, "UnaryCall response");
  grpc__testing__simple_response__free_unpacked(resp, NULL);
  if (ret != 0 || (ret = check_echo(st, "UnaryCall")) != 0)
    goto out;

  out_req_init(&r, 1, &size, NULL, 271828);
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  if ((rc = grpc__testing__test_service__full_duplex_call__send(
           &call, &r.req)) != TRI_OK ||
      (rc = grpc__testing__test_service__full_duplex_call__close_send(
           &call)) != TRI_OK) {
    ret = bad_status("FullDuplexCall send", rc, call.stream);
    goto out;
  }
  if ((ret = recv_duplex(&call, 314159, "FullDuplexCall response")) == 0 &&
      (ret = finish_ok(call.stream, "FullDuplexCall")) == 0)
    ret = check_echo(call.stream, "FullDuplexCall");
out:
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_stream_free(st);
  tri_call_opts_free(o);
  return ret;
}

/* UnaryCall (and, if |bidi|, FullDuplexCall) asking for status 2 + |msg|. */
static int echo_status_case(tri_channel *ch, const char *msg, int bidi) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
  Grpc__Testing__SimpleResponse *resp = NULL;
  Grpc__Testing__StreamingOutputCallResponse *oresp = NULL;
  Grpc__Testing__TestService__FullDuplexCall_Client call = {NULL};
  tri_stream *st = NULL;
  int ret, rc;
  es.code = 2;
  es.message = (char *)msg;
  req.response_status = &es;
  rc = grpc__testing__test_service__unary_call__call(ch, o, &req, &resp, &st);
  if (rc == TRI_OK && resp != NULL)
    grpc__testing__simple_response__free_unpacked(resp, NULL);
  ret = check_status(rc, st, TRI_UNKNOWN, msg, "UnaryCall");
  if (ret != 0 || !bidi)
    goto out;

  Grpc__Testing__StreamingOutputCallRequest oreq =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  oreq.response_status = &es;
  if ((rc = grpc__testing__test_service__full_duplex_call__open(
           ch, o, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  rc = grpc__testing__test_service__full_duplex_call__send(&call, &oreq);
  if (rc == TRI_OK)
    rc = grpc__testing__test_service__full_duplex_call__close_send(&call);
  if (rc != TRI_OK && rc != TRI_UNKNOWN) {
    ret = bad_status("FullDuplexCall send", rc, call.stream);
    goto out;
  }
  rc = grpc__testing__test_service__full_duplex_call__recv(&call, &oresp,
                                                           WAIT_MS);
  if (rc == TRI_OK) {
    grpc__testing__streaming_output_call_response__free_unpacked(oresp, NULL);
    ret = fail("FullDuplexCall: got a response, want status UNKNOWN");
  } else {
    ret = check_status(rc, call.stream, TRI_UNKNOWN, msg, "FullDuplexCall");
  }
out:
  grpc__testing__test_service__full_duplex_call__free(&call);
  tri_stream_free(st);
  tri_call_opts_free(o);
  return ret;
}

static int status_code_and_message(tri_channel *ch) {
  return echo_status_case(ch, "test status message", 1);
}

static int special_status_message(tri_channel *ch) {
  return echo_status_case(ch, SPECIAL_MESSAGE, 0);
}

/* The check of an unimplemented_* case: |rc| and |st| of the call. */
static int unimplemented(int rc, tri_stream *st, Grpc__Testing__Empty *resp,
                         const char *method) {
  if (rc == TRI_OK && resp != NULL)
    grpc__testing__empty__free_unpacked(resp, NULL);
  int ret = check_status(rc, st, TRI_UNIMPLEMENTED, NULL, method);
  tri_stream_free(st);
  return ret;
}

static int unimplemented_method(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
  tri_stream *st = NULL;
  int rc = grpc__testing__test_service__unimplemented_call__call(ch, o, &req,
                                                                 &resp, &st);
  int ret = unimplemented(
      rc, st, resp, GRPC__TESTING__TEST_SERVICE__UNIMPLEMENTED_CALL__PATH);
  tri_call_opts_free(o);
  return ret;
}

static int unimplemented_service(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
  tri_stream *st = NULL;
  int rc = grpc__testing__unimplemented_service__unimplemented_call__call(
      ch, o, &req, &resp, &st);
  int ret =
      unimplemented(rc, st, resp,
                    GRPC__TESTING__UNIMPLEMENTED_SERVICE__UNIMPLEMENTED_CALL__PATH);
  tri_call_opts_free(o);
  return ret;
}

static int client_compressed_unary(tri_channel *ch) {
  tri_call_opts *plain = call_opts(CALL_MS, NULL);
  tri_call_opts *gz = call_opts(CALL_MS, "gzip");
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload p;
  Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
  Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
  Grpc__Testing__SimpleResponse *resp = NULL;
  tri_stream *st = NULL;
  int ret;
  yes.value = 1;
  if (gz == NULL) {
    ret = fail("cannot set gzip compression on call options (built without "
               "zlib?)");
    goto out;
  }
  large_request(&req, &p);
  req.expect_compressed = &yes;
  /* 1. probe: uncompressed but expect_compressed -> INVALID_ARGUMENT */
  int rc = grpc__testing__test_service__unary_call__call(ch, plain, &req,
                                                         &resp, &st);
  if (rc == TRI_OK && resp != NULL)
    grpc__testing__simple_response__free_unpacked(resp, NULL);
  ret = check_status(rc, st, TRI_INVALID_ARGUMENT, NULL, "uncompressed probe");
  tri_stream_free(st);
  if (ret != 0)
    goto out;
  /* 2. compressed, expect_compressed = true */
  if ((ret = unary_large(ch, gz, &req, NULL, "compressed call")) != 0)
    goto out;
  /* 3. uncompressed, expect_compressed = false */
  req.expect_compressed = &no;
  ret = unary_large(ch, plain, &req, NULL, "uncompressed call");
out:
  tri_call_opts_free(gz);
  tri_call_opts_free(plain);
  return ret;
}

static int server_compressed_unary(tri_channel *ch) {
  tri_call_opts *o = call_opts(CALL_MS, NULL);
  Grpc__Testing__SimpleRequest req;
  Grpc__Testing__Payload p;
  Grpc__Testing__BoolValue bv = GRPC__TESTING__BOOL_VALUE__INIT;
  int ret = 0;
  large_request(&req, &p);
  req.response_compressed = &bv;
  for (int want = 1; want >= 0 && ret == 0; want--) {
    unsigned flags = 0;
    char what[64];
    bv.value = want;
    snprintf(what, sizeof what, "response_compressed=%s",
             want ? "true" : "false");
    ret = unary_large(ch, o, &req, &flags, what);
    if (ret == 0 && !!(flags & TRI_BUF_COMPRESSED) != want)
      ret = fail("%s: response compressed flag %s, want %s", what,
                 (flags & TRI_BUF_COMPRESSED) ? "set" : "clear",
                 want ? "set" : "clear");
  }
  tri_call_opts_free(o);
  return ret;
}

static int client_compressed_streaming(tri_channel *ch) {
  tri_call_opts *plain = call_opts(CALL_MS, NULL);
  tri_call_opts *gz = call_opts(CALL_MS, "gzip");
  Grpc__Testing__StreamingInputCallRequest probe =
      GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
  Grpc__Testing__StreamingInputCallRequest second =
      GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
  Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT;
  Grpc__Testing__BoolValue no = GRPC__TESTING__BOOL_VALUE__INIT;
  Grpc__Testing__Payload p1, p2;
  Grpc__Testing__StreamingInputCallResponse *resp = NULL;
  Grpc__Testing__TestService__StreamingInputCall_Client call = {NULL};
  tri_buf *b = NULL;
  int ret = 0, rc;
  yes.value = 1;
  probe.expect_compressed = &yes;
  probe.payload = zero_payload(&p1, 27182);
  second.expect_compressed = &no;
  second.payload = zero_payload(&p2, 45904);
  if (gz == NULL) {
    ret = fail("cannot set gzip compression on call options (built without "
               "zlib?)");
    goto out;
  }
  /* 1. probe: one uncompressed message with expect_compressed */
  if ((rc = grpc__testing__test_service__streaming_input_call__open(
           ch, plain, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  rc = send_pb(call.stream, &probe.base, TRI_SEND_LAST);
  if (rc != TRI_OK && rc != TRI_INVALID_ARGUMENT) {
    ret = bad_status("probe send", rc, call.stream);
    goto out;
  }
  /* the status, not a response: the raw recv of the wrapper's stream */
  rc = tri_stream_recv_ex(call.stream, &b, WAIT_MS);
  if (rc == TRI_OK) {
    tri_buf_free(b);
    ret = fail("uncompressed probe: got a response, want INVALID_ARGUMENT");
    goto out;
  }
  if ((ret = check_status(rc, call.stream, TRI_INVALID_ARGUMENT, NULL,
                          "uncompressed probe")) != 0)
    goto out;
  grpc__testing__test_service__streaming_input_call__free(&call);

  /* 2. compressed message, then an uncompressed one (per-message
   * TRI_SEND_NO_COMPRESS: raw send on the wrapper's stream), then
   * half-close */
  if ((rc = grpc__testing__test_service__streaming_input_call__open(
           ch, gz, &call)) != TRI_OK) {
    ret = bad_status("open", rc, NULL);
    goto out;
  }
  if ((rc = grpc__testing__test_service__streaming_input_call__send(
           &call, &probe)) != TRI_OK ||
      (rc = send_pb(call.stream, &second.base,
                    TRI_SEND_NO_COMPRESS | TRI_SEND_LAST)) != TRI_OK) {
    ret = bad_status("send", rc, call.stream);
    goto out;
  }
  rc = grpc__testing__test_service__streaming_input_call__close_and_recv(
      &call, &resp);
  if (rc != TRI_OK) {
    ret = bad_status("StreamingInputCall", rc, call.stream);
    goto out;
  }
  int32_t agg = resp->aggregated_payload_size;
  if (agg != 73086)
    ret = fail("aggregated_payload_size %d, want 73086", (int)agg);
  else
    ret = finish_ok(call.stream, "StreamingInputCall");
out:
  if (resp != NULL)
    grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
  grpc__testing__test_service__streaming_input_call__free(&call);
  tri_call_opts_free(gz);
  tri_call_opts_free(plain);
  return ret;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const struct {
  const char *name;
  int (*fn)(tri_channel *);
} cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_streaming", client_streaming},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"client_compressed_unary", client_compressed_unary},
    {"server_compressed_unary", server_compressed_unary},
    {"client_compressed_streaming", client_compressed_streaming},
    {"server_compressed_streaming", server_compressed_streaming},
};
#define NCASES (sizeof cases / sizeof cases[0])

static int usage(void) {
  fprintf(stderr,
          "usage: tri-interop-client --server_host=H --server_port=P "
          "--test_case=NAME|all\n"
          "       [--use_tls[=true|false]] [--tls_ca_file=F] "
          "[--server_host_override=X]\n"
          "       [--tls_cert_file=F --tls_key_file=F]\n"
          "       [--protocol=grpc|triple] [--codec=proto|json]\n"
          "   or: tri-interop-client --target=URI "
          "[--lb_policy=pick_first|round_robin] --test_case=NAME|all ...\n"
          "cases:");
  for (size_t i = 0; i < NCASES; i++)
    fprintf(stderr, " %s", cases[i].name);
  fprintf(stderr, "\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *port = NULL, *test_case = NULL;
  const char *use_tls = "false", *ca = NULL, *override = NULL;
  const char *cert = NULL, *key = NULL;
  const char *target_uri = NULL, *lb_policy = NULL;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    size_t klen;
    if (strncmp(a, "--", 2) != 0)
      return usage();
    a += 2;
    const char *eq = strchr(a, '=');
    if (eq != NULL) {
      klen = (size_t)(eq - a);
      v = eq + 1;
    } else if (strcmp(a, "use_tls") == 0 &&
               (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
      klen = strlen(a); /* a bare boolean flag */
      v = "true";
    } else if (i + 1 < argc) {
      klen = strlen(a);
      v = argv[++i];
    } else {
      return usage();
    }
#define KEY(k) (klen == sizeof(k) - 1 && strncmp(a, k, klen) == 0)
    if (KEY("server_host"))
      host = v;
    else if (KEY("server_port"))
      port = v;
    else if (KEY("test_case"))
      test_case = v;
    else if (KEY("use_tls"))
      use_tls = v;
    else if (KEY("tls_ca_file"))
      ca = v;
    else if (KEY("server_host_override"))
      override = v;
    else if (KEY("tls_cert_file"))
      cert = v;
    else if (KEY("tls_key_file"))
      key = v;
    else if (KEY("protocol") && strcmp(v, "grpc") == 0)
      g_protocol = TRI_PROTOCOL_GRPC;
    else if (KEY("protocol") && strcmp(v, "triple") == 0)
      g_protocol = TRI_PROTOCOL_TRIPLE;
    else if (KEY("codec") &&
             (strcmp(v, "proto") == 0 || strcmp(v, "json") == 0))
      g_codec = v;
    else if (KEY("target"))
      target_uri = v;
    else if (KEY("lb_policy"))
      lb_policy = v;
    else if (KEY("use_test_ca"))
      ; /* accepted, ignored (see the file comment) */
    else
      return usage();
#undef KEY
  }
  if ((port == NULL && target_uri == NULL) || test_case == NULL ||
      *host == '\0')
    return usage();
  int tls_on;
  if (strcmp(use_tls, "false") == 0 || strcmp(use_tls, "0") == 0)
    tls_on = 0;
  else if (strcmp(use_tls, "true") == 0 || strcmp(use_tls, "1") == 0)
    tls_on = 1;
  else
    return usage();
  if ((cert == NULL) != (key == NULL))
    return usage();
  {
    tri_call_opts *probe = tri_call_opts_new();
    int crc = probe ? tri_call_opts_set_codec(probe, g_codec) : TRI_ENOMEM;
    tri_call_opts_free(probe);
    if (crc != TRI_OK) {
      fprintf(stderr, "FAIL %s: --codec=%s: %s\n", test_case, g_codec,
              tri_last_error());
      return 1;
    }
  }

  size_t first = 0, last = NCASES;
  if (strcmp(test_case, "all") != 0) {
    for (first = 0; first < NCASES; first++)
      if (strcmp(cases[first].name, test_case) == 0)
        break;
    if (first == NCASES) {
      fprintf(stderr, "FAIL %s: unknown test case\n", test_case);
      return usage();
    }
    last = first + 1;
  }

  char target[300];
  if (target_uri != NULL)
    snprintf(target, sizeof target, "%s", target_uri);
  else
    snprintf(target, sizeof target, strchr(host, ':') ? "[%s]:%s" : "%s:%s",
             host, port);
  tri_channel_opts *co = tri_channel_opts_new();
  int rc = co != NULL ? TRI_OK : TRI_ENOMEM;
  if (rc == TRI_OK)
    tri_channel_opts_set_connect_timeout_ms(co, 10000);
  if (rc == TRI_OK && lb_policy != NULL &&
      (rc = tri_channel_opts_set_lb_policy(co, lb_policy)) != TRI_OK) {
    fprintf(stderr, "FAIL %s: %s\n", test_case, tri_last_error());
    tri_channel_opts_free(co);
    return 2;
  }
  if (rc == TRI_OK && tls_on) {
    tri_tls_opts *tls = tri_tls_opts_new();
    rc = tls != NULL ? TRI_OK : TRI_ENOMEM;
    if (rc == TRI_OK && ca != NULL)
      rc = tri_tls_opts_set_ca_file(tls, ca);
    if (rc == TRI_OK && override != NULL)
      rc = tri_tls_opts_set_server_name(tls, override);
    if (rc == TRI_OK && cert != NULL)
      rc = tri_tls_opts_set_cert_key(tls, cert, key);
    if (rc == TRI_OK)
      rc = tri_channel_opts_set_tls(co, tls);
    tri_tls_opts_free(tls);
  }
  tri_channel *ch = NULL;
  if (rc == TRI_OK)
    rc = tri_channel_new(&ch, target, co);
  tri_channel_opts_free(co);
  if (rc != TRI_OK) {
    fprintf(stderr, "FAIL %s: channel to %s: %s: %s\n", test_case, target,
            tri_strerror(rc), tri_last_error());
    return 1;
  }

  int failed = 0;
  for (size_t i = first; i < last; i++) {
    why[0] = '\0';
    if (cases[i].fn(ch) != 0) {
      fprintf(stderr, "FAIL %s: %s\n", cases[i].name,
              why[0] ? why : "(no reason recorded)");
      failed++;
    } else if (last - first > 1) {
      printf("PASS %s\n", cases[i].name);
      fflush(stdout);
    }
  }
  tri_channel_free(ch);
  return failed ? 1 : 0;
}
