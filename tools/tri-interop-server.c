/*
 * tri-interop-server: grpc.testing.TestService over libtriplestream, for
 * the gRPC interop matrix (doc/PROTOCOL.md section 12, grpc/grpc
 * doc/interop-test-descriptions.md "Server" features).
 *
 *   tri-interop-server --port=N   (also "--port N"; 0 = ephemeral)
 *       [--use_tls[=true|false] --tls_cert_file=F --tls_key_file=F
 *        [--tls_client_ca_file=F]] [--registry=zookeeper://HOST:PORT]
 *
 * Listens on 127.0.0.1 only, prints "listening on 127.0.0.1:PORT" once
 * ready and runs until SIGINT or SIGTERM.  With --use_tls (gRPC's interop
 * flag; "--use_tls=true" too) it serves TLS with the given certificate
 * and key; --tls_client_ca_file requires client certificates issued by
 * that CA (mutual TLS).  --registry registers the server in Dubbo's
 * ZooKeeper registry (tri_server_opts_set_registry(); the URI may carry
 * its ?application=/session=/root= parameters), so zookeeper:// channels
 * find it.  Flags take "--name=value" or "--name value".
 *
 * Features: EmptyCall, UnaryCall, StreamingInputCall, StreamingOutputCall,
 * FullDuplexCall, HalfDuplexCall; Echo Status (response_status), Echo
 * Metadata (x-grpc-test-echo-initial -> response headers,
 * x-grpc-test-echo-trailing-bin -> trailers), CompressedRequest
 * (expect_compressed, checked per message with TRI_BUF_COMPRESSED),
 * CompressedResponse (response_compressed / ResponseParameters.compressed,
 * per message with TRI_SEND_NO_COMPRESS), interval_us delays.
 * UnimplementedCall and grpc.testing.UnimplementedService are left
 * unregistered: the library answers UNIMPLEMENTED (doc/PROTOCOL.md 4.9).
 *
 * Built on the stubs protoc-gen-triplestream generates from
 * proto/grpc/testing/test.proto (grpc/testing/test.tri.h):
 * StreamingInputCall, FullDuplexCall and HalfDuplexCall are handlers of
 * the generated table, registered with
 * grpc__testing__test_service__tri_register(); they read requests with the
 * typed server_recv functions where the message flags do not matter.
 * EmptyCall, UnaryCall and StreamingOutputCall are registered as plain
 * handlers under the generated paths, with the generated message types:
 * the generated unary and server-streaming wrappers read the request
 * before the handler runs, and that read may already send the response
 * headers (doc/PROTOCOL.md 11.9), too early for the echoed initial metadata
 * and the response coding, and it drops the request's TRI_BUF_COMPRESSED
 * flag that CompressedRequest checks.  Responses go out packed by hand
 * through tri_stream_send_ex() for the per-message TRI_SEND_NO_COMPRESS.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <triplestream/triplestream.h>
#include <triplestream/protobuf.h>

#include "grpc/testing/test.tri.h"

/* A handler waits at most this long for the client's next message. */
#define IDLE_MS 120000
/* Bounds on what a client can ask for. */
#define MAX_PAYLOAD (64 * 1024 * 1024)
#define MAX_INTERVAL_US 10000000
#define MAX_MESSAGES 100000

static const char ECHO_INITIAL[] = "x-grpc-test-echo-initial";
static const char ECHO_TRAILING[] = "x-grpc-test-echo-trailing-bin";

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Status to report when a stream died under us (rc from recv/send). */
static int dead(int rc) {
  return rc >= 0 && rc <= 16 ? rc : TRI_UNKNOWN;
}

/* Copy every echo header of the request into our headers / trailers. */
static int echo_metadata(tri_stream *s) {
  const tri_metadata *md = tri_stream_headers(s, 0);
  size_t n = tri_metadata_count(md);
  for (size_t i = 0; i < n; i++) {
    const char *key;
    const void *val;
    size_t len;
    int rc;
    if (tri_metadata_get(md, i, &key, &val, &len) != TRI_OK)
      continue;
    if (strcmp(key, ECHO_INITIAL) == 0)
      rc = tri_stream_add_header(s, key, val, len);
    else if (strcmp(key, ECHO_TRAILING) == 0)
      rc = tri_stream_add_trailer(s, key, val, len);
    else
      continue;
    if (rc != TRI_OK)
      return rc;
  }
  return TRI_OK;
}

/*
 * Make gzip the response coding of |s| (the interop server compresses a
 * response only when the request says so; every other message goes out
 * with TRI_SEND_NO_COMPRESS).  Called at handler start: the coding goes in
 * the response headers, and a recv that has to wait sends those, while
 * whether to compress is only known from the request.  If the client did
 * not accept gzip, or this build lacks zlib, responses stay uncompressed
 * and the compression cases fail on the client side, as they should.
 */
static void want_response_compression(tri_stream *s) {
  (void)tri_stream_set_compression(s, "gzip");
}

static void sleep_us(int32_t us) {
  if (us <= 0)
    return;
  if (us > MAX_INTERVAL_US)
    us = MAX_INTERVAL_US;
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Receive one message with its flags and unpack it as |desc|.  Returns
 * TRI_OK, a recv status (TRI_EOF included), or TRI_INTERNAL after
 * finishing the call for an unparsable message. */
static int recv_pb(tri_stream *s, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out, unsigned *flags) {
  tri_buf *b = NULL;
  int rc = tri_stream_recv_ex(s, &b, IDLE_MS);
  if (rc == TRI_ETIMEDOUT) {
    tri_stream_finish(s, TRI_DEADLINE_EXCEEDED, "client idle too long");
    return TRI_DEADLINE_EXCEEDED;
  }
  if (rc != TRI_OK)
    return rc;
  *flags = tri_buf_flags(b);
  *out = protobuf_c_message_unpack(desc, NULL, tri_buf_len(b), tri_buf_data(b));
  tri_buf_free(b);
  if (*out == NULL) {
    tri_stream_finish(s, TRI_INTERNAL, "cannot parse request message");
    return TRI_INTERNAL;
  }
  return TRI_OK;
}

/* After the single request of a unary / server-streaming call: expect end
 * of input (doc/PROTOCOL.md 5.4).  Returns TRI_OK, or non-OK after finishing
 * (or when the stream died). */
static int expect_eof(tri_stream *s) {
  tri_buf *b = NULL;
  int rc = tri_stream_recv_ex(s, &b, IDLE_MS);
  if (rc == TRI_EOF)
    return TRI_OK;
  if (rc == TRI_OK) {
    tri_buf_free(b);
    tri_stream_finish(s, TRI_UNIMPLEMENTED,
                      "more than one request message for a unary request");
    return TRI_UNIMPLEMENTED;
  }
  if (rc == TRI_ETIMEDOUT) {
    tri_stream_finish(s, TRI_DEADLINE_EXCEEDED, "client did not half-close");
    return TRI_DEADLINE_EXCEEDED;
  }
  return rc;
}

/* Fill |p| with |size| zero bytes; |buf| receives the allocation. */
static int make_payload(Grpc__Testing__Payload *p, int32_t size,
                        uint8_t **buf) {
  *buf = NULL;
  if (size < 0 || size > MAX_PAYLOAD)
    return TRI_INVALID_ARGUMENT;
  *buf = calloc(1, size > 0 ? (size_t)size : 1);
  if (*buf == NULL)
    return TRI_RESOURCE_EXHAUSTED;
  p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
  p->body.data = *buf;
  p->body.len = (size_t)size;
  return TRI_OK;
}

/* Pack and send |msg|; compressed only if |compress| (and the stream has a
 * response coding, see want_response_compression()). */
static int send_pb(tri_stream *s, const ProtobufCMessage *msg, int compress) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL)
    return TRI_ENOMEM;
  protobuf_c_message_pack(msg, buf);
  int rc = tri_stream_send_ex(s, buf, len, compress ? 0 : TRI_SEND_NO_COMPRESS,
                              -1);
  free(buf);
  return rc;
}

static int bool_set(const Grpc__Testing__BoolValue *b) {
  return b != NULL && b->value;
}

/* CompressedRequest: INVALID_ARGUMENT for an uncompressed message that was
 * expected compressed.  Returns TRI_OK or the finished status. */
static int check_compressed(tri_stream *s,
                            const Grpc__Testing__BoolValue *expect,
                            unsigned flags) {
  if (bool_set(expect) && !(flags & TRI_BUF_COMPRESSED)) {
    tri_stream_finish(s, TRI_INVALID_ARGUMENT,
                      "expected a compressed request message");
    return TRI_INVALID_ARGUMENT;
  }
  return TRI_OK;
}

static int check_type(tri_stream *s, Grpc__Testing__PayloadType t) {
  if (t != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE) {
    tri_stream_finish(s, TRI_INVALID_ARGUMENT, "unsupported response_type");
    return TRI_INVALID_ARGUMENT;
  }
  return TRI_OK;
}

/* Echo Status.  Returns non-zero when the call was finished. */
static int echo_status(tri_stream *s, const Grpc__Testing__EchoStatus *st) {
  if (st == NULL || st->code == 0)
    return 0;
  int code = st->code >= 0 && st->code <= 16 ? st->code : TRI_UNKNOWN;
  tri_stream_finish(s, code, st->message);
  return 1;
}

/* One StreamingOutputCallResponse per ResponseParameters of |req|. */
static int send_responses(tri_stream *s,
                          const Grpc__Testing__StreamingOutputCallRequest *req) {
  for (size_t i = 0; i < req->n_response_parameters; i++) {
    const Grpc__Testing__ResponseParameters *rp = req->response_parameters[i];
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body;
    int rc = make_payload(&p, rp->size, &body);
    if (rc != TRI_OK) {
      tri_stream_finish(s, rc, "bad response size");
      return rc;
    }
    sleep_us(rp->interval_us);
    resp.payload = &p;
    rc = send_pb(s, &resp.base, bool_set(rp->compressed));
    free(body);
    if (rc != TRI_OK)
      return rc;
  }
  return TRI_OK;
}

/* ------------------------------------------------------------------ */
/* Handlers                                                            */
/* ------------------------------------------------------------------ */

static int h_empty_call(tri_stream *s, void *ud) {
  (void)ud;
  ProtobufCMessage *in = NULL;
  int rc = echo_metadata(s);
  if (rc != TRI_OK)
    return TRI_INTERNAL;
  rc = tri_stream_recv_msg(s, &grpc__testing__empty__descriptor, &in, IDLE_MS);
  if (rc == TRI_EOF) {
    tri_stream_finish(s, TRI_UNIMPLEMENTED, "no request message");
    return TRI_UNIMPLEMENTED;
  }
  if (rc != TRI_OK)
    return dead(rc);
  grpc__testing__empty__free_unpacked((Grpc__Testing__Empty *)in, NULL);
  if ((rc = expect_eof(s)) != TRI_OK)
    return dead(rc);
  Grpc__Testing__Empty out = GRPC__TESTING__EMPTY__INIT;
  rc = tri_stream_send_msg(s, &out.base);
  if (rc != TRI_OK)
    return dead(rc);
  tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

static int h_unary_call(tri_stream *s, void *ud) {
  (void)ud;
  ProtobufCMessage *m = NULL;
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
  uint8_t *body = NULL;
  unsigned flags = 0;
  int rc;

  want_response_compression(s);
  if (echo_metadata(s) != TRI_OK)
    return TRI_INTERNAL;
  rc = recv_pb(s, &grpc__testing__simple_request__descriptor, &m, &flags);
  if (rc == TRI_EOF) {
    tri_stream_finish(s, TRI_UNIMPLEMENTED, "no request message");
    return TRI_UNIMPLEMENTED;
  }
  if (rc != TRI_OK)
    return dead(rc);
  Grpc__Testing__SimpleRequest *req = (Grpc__Testing__SimpleRequest *)m;
  if ((rc = expect_eof(s)) != TRI_OK ||
      (rc = check_compressed(s, req->expect_compressed, flags)) != TRI_OK ||
      (rc = check_type(s, req->response_type)) != TRI_OK)
    goto out;
  rc = make_payload(&p, req->response_size, &body);
  if (rc != TRI_OK) {
    tri_stream_finish(s, rc, "bad response_size");
    goto out;
  }
  if (echo_status(s, req->response_status)) {
    rc = req->response_status->code;
    goto out;
  }
  resp.payload = &p;
  rc = send_pb(s, &resp.base, bool_set(req->response_compressed));
  if (rc == TRI_OK)
    tri_stream_finish(s, TRI_OK, NULL);
out:
  free(body);
  grpc__testing__simple_request__free_unpacked(req, NULL);
  return dead(rc);
}

/* Generated table (client-streaming): the requests are read here, through
 * the raw stream for their TRI_BUF_COMPRESSED flag; the generated wrapper
 * sends *|out| and the returned status ends the call. */
static int h_streaming_input_call(
    Grpc__Testing__TestService__StreamingInputCall_Server *call, void *ud) {
  (void)ud;
  tri_stream *s = call->stream;
  int64_t total = 0;
  int rc = TRI_OK;

  if (echo_metadata(s) != TRI_OK)
    return TRI_INTERNAL;
  for (int n = 0;; n++) {
    ProtobufCMessage *m = NULL;
    unsigned flags = 0;
    if (n >= MAX_MESSAGES) {
      tri_stream_finish(s, TRI_RESOURCE_EXHAUSTED, "too many messages");
      return TRI_RESOURCE_EXHAUSTED;
    }
    rc = recv_pb(s, &grpc__testing__streaming_input_call_request__descriptor,
                 &m, &flags);
    if (rc == TRI_EOF)
      break;
    if (rc != TRI_OK)
      return dead(rc);
    Grpc__Testing__StreamingInputCallRequest *req =
        (Grpc__Testing__StreamingInputCallRequest *)m;
    rc = check_compressed(s, req->expect_compressed, flags);
    if (rc == TRI_OK && req->payload != NULL)
      total += (int64_t)req->payload->body.len;
    grpc__testing__streaming_input_call_request__free_unpacked(req, NULL);
    if (rc != TRI_OK)
      return rc;
  }
  if (total > INT32_MAX) {
    tri_stream_finish(s, TRI_OUT_OF_RANGE, "aggregated size overflows int32");
    return TRI_OUT_OF_RANGE;
  }
  /* The generated wrapper sends call->resp after we return TRI_OK. */
  call->resp.aggregated_payload_size = (int32_t)total;
  return TRI_OK;
}

static int h_streaming_output_call(tri_stream *s, void *ud) {
  (void)ud;
  ProtobufCMessage *m = NULL;
  int rc;

  want_response_compression(s);
  if (echo_metadata(s) != TRI_OK)
    return TRI_INTERNAL;
  rc = tri_stream_recv_msg(s, &grpc__testing__streaming_output_call_request__descriptor,
                           &m, IDLE_MS);
  if (rc == TRI_EOF) {
    tri_stream_finish(s, TRI_UNIMPLEMENTED, "no request message");
    return TRI_UNIMPLEMENTED;
  }
  if (rc == TRI_ETIMEDOUT) {
    tri_stream_finish(s, TRI_DEADLINE_EXCEEDED, "client idle too long");
    return TRI_DEADLINE_EXCEEDED;
  }
  if (rc != TRI_OK)
    return dead(rc);
  Grpc__Testing__StreamingOutputCallRequest *req =
      (Grpc__Testing__StreamingOutputCallRequest *)m;
  if ((rc = expect_eof(s)) == TRI_OK &&
      (rc = check_type(s, req->response_type)) == TRI_OK) {
    if (echo_status(s, req->response_status))
      rc = req->response_status->code;
    else if ((rc = send_responses(s, req)) == TRI_OK)
      tri_stream_finish(s, TRI_OK, NULL);
  }
  grpc__testing__streaming_output_call_request__free_unpacked(req, NULL);
  return dead(rc);
}

/* FullDuplexCall (|half| = 0): answer each request as it arrives.
 * HalfDuplexCall (|half| = 1): buffer requests until end of input.
 * |recv| is the generated typed server_recv of the method, |call| its
 * server wrapper; responses go through call's stream (send_responses). */
typedef int (*duplex_recv_fn)(void *call,
                              Grpc__Testing__StreamingOutputCallRequest **msg,
                              int timeout_ms);

static int duplex(tri_stream *s, void *call, duplex_recv_fn recv, int half) {
  Grpc__Testing__StreamingOutputCallRequest *held[256];
  size_t nheld = 0;
  int rc = TRI_OK;

  want_response_compression(s);
  if (echo_metadata(s) != TRI_OK)
    return TRI_INTERNAL;
  for (int n = 0;; n++) {
    Grpc__Testing__StreamingOutputCallRequest *req = NULL;
    if (n >= MAX_MESSAGES || nheld == sizeof held / sizeof held[0]) {
      tri_stream_finish(s, TRI_RESOURCE_EXHAUSTED, "too many messages");
      rc = TRI_RESOURCE_EXHAUSTED;
      goto out;
    }
    rc = recv(call, &req, IDLE_MS);
    if (rc == TRI_EOF)
      break;
    if (rc == TRI_ETIMEDOUT) {
      tri_stream_finish(s, TRI_DEADLINE_EXCEEDED, "client idle too long");
      rc = TRI_DEADLINE_EXCEEDED;
      goto out;
    }
    if (rc != TRI_OK)
      goto out;
    if (half) {
      held[nheld++] = req;
      continue;
    }
    if ((rc = check_type(s, req->response_type)) == TRI_OK) {
      /* Echo Status: finish and ignore whatever else the client sends. */
      if (echo_status(s, req->response_status))
        rc = req->response_status->code;
      else
        rc = send_responses(s, req);
    }
    int stop = rc != TRI_OK;
    grpc__testing__streaming_output_call_request__free_unpacked(req, NULL);
    if (stop)
      goto out;
  }
  for (size_t i = 0; i < nheld; i++) {
    const Grpc__Testing__StreamingOutputCallRequest *req = held[i];
    if ((rc = check_type(s, req->response_type)) != TRI_OK)
      goto out;
    if (echo_status(s, req->response_status)) {
      rc = req->response_status->code;
      goto out;
    }
    if ((rc = send_responses(s, req)) != TRI_OK)
      goto out;
  }
  tri_stream_finish(s, TRI_OK, NULL);
  rc = TRI_OK;
out:
  for (size_t i = 0; i < nheld; i++)
    grpc__testing__streaming_output_call_request__free_unpacked(held[i], NULL);
  return dead(rc);
}

static int full_duplex_recv(void *call,
                            Grpc__Testing__StreamingOutputCallRequest **msg,
                            int timeout_ms) {
  return grpc__testing__test_service__full_duplex_call__server_recv(
      call, msg, timeout_ms);
}

static int half_duplex_recv(void *call,
                            Grpc__Testing__StreamingOutputCallRequest **msg,
                            int timeout_ms) {
  return grpc__testing__test_service__half_duplex_call__server_recv(
      call, msg, timeout_ms);
}

static int h_full_duplex_call(
    Grpc__Testing__TestService__FullDuplexCall_Server *call, void *ud) {
  (void)ud;
  return duplex(call->stream, call, full_duplex_recv, 0);
}

static int h_half_duplex_call(
    Grpc__Testing__TestService__HalfDuplexCall_Server *call, void *ud) {
  (void)ud;
  return duplex(call->stream, call, half_duplex_recv, 1);
}

/* The generated handler table.  NULL members stay unregistered, so the
 * library answers UNIMPLEMENTED: CacheableUnaryCall (needs GET and a
 * caching proxy), UnimplementedCall (deliberately), and the three methods
 * registered as plain handlers in main() (see the file comment). */
static const Grpc__Testing__TestService_Handlers test_service = {
    .streaming_input_call = h_streaming_input_call,
    .full_duplex_call = h_full_duplex_call,
    .half_duplex_call = h_half_duplex_call,
};

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr, "usage: tri-interop-server --port=N [--use_tls[=true|false]"
          " --tls_cert_file=F --tls_key_file=F [--tls_client_ca_file=F]]"
          " [--cors_origins=LIST] [--registry=zookeeper://HOST:PORT]\n");
}

/* "--name=value" or "--name value": the value of flag |name| at argv[*i],
 * or NULL if argv[*i] is another flag. */
static const char *flag_value(int argc, char **argv, int *i,
                              const char *name) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n) != 0)
    return NULL;
  if (a[n] == '=')
    return a + n + 1;
  if (a[n] == '\0' && *i + 1 < argc) {
    ++*i;
    return argv[*i];
  }
  return NULL;
}

static int parse_port(const char *v, int *port) {
  char *end;
  errno = 0;
  long p = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || p < 0 || p > 65535)
    return -1;
  *port = (int)p;
  return 0;
}

int main(int argc, char **argv) {
  int port = -1, use_tls = 0;
  const char *cert = NULL, *key = NULL, *client_ca = NULL, *v;
  const char *cors = NULL, *registry = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--port=", 7) == 0) {
      if (parse_port(a + 7, &port) != 0) {
        usage();
        return 2;
      }
    } else if (strcmp(a, "--port") == 0 && i + 1 < argc) {
      if (parse_port(argv[++i], &port) != 0) {
        usage();
        return 2;
      }
    } else if (strcmp(a, "--use_tls") == 0 ||
               strcmp(a, "--use_tls=true") == 0) {
      use_tls = 1;
    } else if (strcmp(a, "--use_tls=false") == 0) {
      use_tls = 0;
    } else if ((v = flag_value(argc, argv, &i, "--tls_cert_file")) != NULL) {
      cert = v;
    } else if ((v = flag_value(argc, argv, &i, "--tls_key_file")) != NULL) {
      key = v;
    } else if ((v = flag_value(argc, argv, &i, "--tls_client_ca_file")) !=
               NULL) {
      client_ca = v;
    } else if ((v = flag_value(argc, argv, &i, "--cors_origins")) != NULL) {
      cors = v; /* gRPC-Web from browsers (doc/PROTOCOL.md 16.8) */
    } else if ((v = flag_value(argc, argv, &i, "--registry")) != NULL) {
      registry = v; /* Dubbo ZooKeeper registry (doc/PROTOCOL.md 18) */
    } else {
      usage();
      return 2;
    }
  }
  if (port < 0 || (use_tls && (cert == NULL || key == NULL))) {
    usage();
    return 2;
  }

  /* Block the stop signals before any thread exists so that every library
   * thread inherits the mask and sigwait() below receives them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* Methods whose handler must act before the request is read (see the
   * file comment), under their generated paths. */
  static const struct {
    const char *method;
    tri_handler_fn fn;
    const ProtobufCMessageDescriptor *req, *resp; /* for JSON */
  } methods[] = {
      {GRPC__TESTING__TEST_SERVICE__EMPTY_CALL__PATH, h_empty_call,
       &grpc__testing__empty__descriptor, &grpc__testing__empty__descriptor},
      {GRPC__TESTING__TEST_SERVICE__UNARY_CALL__PATH, h_unary_call,
       &grpc__testing__simple_request__descriptor,
       &grpc__testing__simple_response__descriptor},
      {GRPC__TESTING__TEST_SERVICE__STREAMING_OUTPUT_CALL__PATH,
       h_streaming_output_call,
       &grpc__testing__streaming_output_call_request__descriptor,
       &grpc__testing__streaming_output_call_response__descriptor},
  };

  tri_server_opts *so = tri_server_opts_new();
  tri_tls_opts *tls = NULL;
  int rc = so != NULL ? TRI_OK : TRI_ENOMEM;
  if (rc == TRI_OK && use_tls) {
    tls = tri_tls_opts_new();
    rc = tls != NULL ? tri_tls_opts_set_cert_key(tls, cert, key) : TRI_ENOMEM;
    if (rc == TRI_OK && client_ca != NULL) {
      rc = tri_tls_opts_set_ca_file(tls, client_ca);
      if (rc == TRI_OK)
        rc = tri_tls_opts_set_client_auth(tls, TRI_TLS_CLIENT_REQUIRE);
    }
    if (rc == TRI_OK)
      rc = tri_server_opts_set_tls(so, tls);
    tri_tls_opts_free(tls);
  }
  if (rc == TRI_OK && cors != NULL)
    rc = tri_server_opts_set_cors_origins(so, cors);
  if (rc == TRI_OK && registry != NULL)
    rc = tri_server_opts_set_registry(so, registry);
  tri_server *srv = NULL;
  if (rc == TRI_OK)
    rc = tri_server_new(&srv, so);
  tri_server_opts_free(so);
  if (rc != TRI_OK) {
    fprintf(stderr, "tri-interop-server: tri_server_new: %s: %s\n",
            tri_strerror(rc), tri_last_error());
    return 1;
  }
  rc = grpc__testing__test_service__tri_register(srv, &test_service, NULL);
  if (rc != TRI_OK) {
    fprintf(stderr, "tri-interop-server: register grpc.testing.TestService: "
            "%s\n", tri_strerror(rc));
    tri_server_free(srv);
    return 1;
  }
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    /* Typed, so JSON (Triple unary, grpc+json, grpc-web+json) works too
     * (doc/PROTOCOL.md 16). */
    rc = tri_server_register_typed(srv, methods[i].method, NULL, NULL,
                                   methods[i].req, methods[i].resp,
                                   methods[i].fn, NULL, NULL);
    if (rc != TRI_OK) {
      fprintf(stderr, "tri-interop-server: register %s: %s\n",
              methods[i].method, tri_strerror(rc));
      tri_server_free(srv);
      return 1;
    }
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  rc = tri_server_bind(srv, addr);
  if (rc != TRI_OK) {
    fprintf(stderr, "tri-interop-server: bind %s: %s\n", addr,
            tri_strerror(rc));
    tri_server_free(srv);
    return 1;
  }
  rc = tri_server_start(srv);
  if (rc != TRI_OK) {
    fprintf(stderr, "tri-interop-server: start: %s\n", tri_strerror(rc));
    tri_server_free(srv);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", tri_server_port(srv));
  fflush(stdout);

  int sig = 0;
  if (sigwait(&stop, &sig) != 0)
    fprintf(stderr, "tri-interop-server: sigwait failed; stopping\n");
  tri_server_shutdown(srv, 1000);
  tri_server_free(srv);
  return 0;
}
