/*
 * tri-bench: libtriplestream benchmarks W1-W7 (issue 5).
 *
 *   tri-bench --workload=W1[,W2,...] | --all  [--quick] [size/count flags]
 *   tri-bench --server [--port=N]
 *   tri-bench --client --target=HOST:PORT --workload=...
 *
 * By default one invocation forks a server child (before any thread
 * exists, so client and server RSS are separate) listening on
 * 127.0.0.1:0 and runs the client workloads in the parent.  grpc-bench
 * (tools/bench/grpc/) takes the same flags and prints the same lines for
 * gRPC C++; the wire messages are the same (tools/bench/grpc/bench.proto),
 * so either client can drive either server.
 *
 * Equal work: by default both sides encode and decode every message with
 * protobuf-c through the typed stubs protoc-gen-triplestream generates
 * from bench.proto (bench.tri.h, built by Makefile.am), as users do, and
 * as grpc-bench does with its generated C++ classes.  --raw switches both
 * sides (server child and client) to the raw-bytes API with hand-encoded
 * messages; those rows are named W1.raw, W3.t1.raw, ...
 *
 * Output: exactly one line per result on stdout, key=value separated by
 * single spaces, first token "tri-bench":
 *
 *   tri-bench impl=tri workload=W1 case=W1 metric=rt_per_s value=12345.6 \
 *       p50_us=80.1 p99_us=150.2 n=100000 secs=8.1
 *
 *   W1  case=W1            metric=rt_per_s          (p50_us p99_us n secs)
 *   W2  case=W2.big        metric=MB_per_s          (size n secs msgs_per_s)
 *       case=W2.small      metric=msgs_per_s        (size n secs MB_per_s)
 *   W3  case=W3.tT         metric=calls_per_s       (threads p50_us p99_us n)
 *   W4  case=W4.N.SIDE     metric=rss_per_stream_bytes (streams n side ok)
 *       SIDE = client, server, total (client + server)
 *   W5  case=W5            metric=cancel_wake_p99_us (p50_us p99_us n)
 *   W6  case=W6            metric=deadline_overshoot_p99_us (p50_us p99_us n)
 *   W7  case=W7            metric=req_per_s         (n failed ...)
 *   W8  case=W8            metric=rss_per_channel_bytes (channels opened
 *       rss_kib threads_per_channel): client RSS per idle channel
 *
 * MB = 10^6 bytes of payload.  Latencies in microseconds.  ok=0 marks an
 * invalid result (errors are also reported on stderr).  Every call carries
 * a deadline (W3: 30 s, streams: 600 s) as production code would, so a
 * stuck server cannot hang the benchmark.
 *
 * --io-threads=N: the server runs N I/O loops
 * (tri_server_opts_set_io_threads); W7's case becomes W7.ioN.
 * --io-group=N: the client's channels share a tri_io_group of N threads
 * instead of a thread each; every case gets ".grpN" (W1.grp1, W8.grp1).
 *
 * Server settings: defaults, except when W4 is selected: max_workers and
 * max_concurrent_streams are raised to the largest W4 count + 64 and the
 * handler thread stack is set to 64 KiB (tri_server_opts_set_worker_stack;
 * one handler thread per open stream is this library's model).
 *
 * TLS (--tls-ca, --tls-cert, --tls-key): the server serves TLS with the
 * certificate and key (tri_server_opts_set_tls), every channel verifies
 * it against the CA (tri_channel_opts_set_tls; the certificate must name
 * 127.0.0.1); library defaults otherwise, no client certificates.  Each
 * side prints what it negotiated once on stderr (tri_stream_auth).
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <triplestream/triplestream.h>

#include "bench-common.h"
#include "bench.tri.h" /* generated from grpc/bench.proto (Makefile.am) */

#define PROG "tri-bench"
#define IMPL "tri"
#define STREAM_DEADLINE_MS 600000
#define UNARY_DEADLINE_MS 30000
#define RECV_TIMEOUT_MS 30000

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

static tri_server *g_srv;
static int g_tls;                /* the server serves TLS */
static atomic_int g_srv_noted;   /* its TLS note was printed */

/* With TLS: say once what the first TLS call's connection negotiated. */
static void note_server_tls(tri_stream *s) {
  const tri_auth *a;
  char detail[300];
  if (!g_tls || atomic_load_explicit(&g_srv_noted, memory_order_relaxed))
    return;
  atomic_store(&g_srv_noted, 1);
  a = tri_stream_auth(s);
  if (a == NULL) {
    fprintf(stderr, PROG ": tls server: the call came without TLS\n");
    return;
  }
  snprintf(detail, sizeof detail, "sni=%s client_cert=%s",
           *tri_auth_server_name(a) ? tri_auth_server_name(a) : "-",
           *tri_auth_peer_subject(a) ? tri_auth_peer_subject(a) : "-");
  bench_tls_note(PROG, "server", tri_auth_tls_version(a), tri_auth_cipher(a),
                 detail);
}

/* Receive one message into |stack| when it fits, else allocate.
 * Returns TRI_OK with *data and *len set (and *own to free), or a status. */
static int recv_any(tri_stream *s, uint8_t *stack, size_t cap,
                    const uint8_t **data, size_t *len, tri_buf **own,
                    int timeout_ms) {
  int rc = tri_stream_recv_into(s, stack, cap, len, timeout_ms);
  *own = NULL;
  if (rc == TRI_OK) {
    *data = stack;
    return rc;
  }
  if (rc != TRI_ENOSPC)
    return rc;
  rc = tri_stream_recv_ex(s, own, timeout_ms);
  if (rc == TRI_OK) {
    *data = tri_buf_data(*own);
    *len = tri_buf_len(*own);
  }
  return rc;
}

static int dead(int rc) { return rc >= 0 && rc <= 16 ? rc : TRI_UNKNOWN; }

static int h_unary(tri_stream *s, void *ud) {
  uint8_t buf[4096];
  const uint8_t *d;
  size_t len;
  tri_buf *own;
  int rc;
  (void)ud;
  note_server_tls(s);
  rc = recv_any(s, buf, sizeof buf, &d, &len, &own, RECV_TIMEOUT_MS);
  if (rc != TRI_OK)
    return rc == TRI_EOF ? TRI_INVALID_ARGUMENT : dead(rc);
  /* The response and status OK in one write, as the typed stubs do. */
  rc = tri_stream_send_ex(s, d, len, TRI_SEND_LAST, -1);
  tri_buf_free(own);
  if (rc != TRI_OK)
    return dead(rc);
  bench_unary_ok();
  return TRI_OK;
}

/* Echo every message until the client half-closes (W1, W4, W5). */
static int h_pingpong(tri_stream *s, void *ud) {
  uint8_t buf[4096];
  (void)ud;
  note_server_tls(s);
  for (;;) {
    const uint8_t *d;
    size_t len;
    tri_buf *own;
    int rc = recv_any(s, buf, sizeof buf, &d, &len, &own, STREAM_DEADLINE_MS);
    if (rc == TRI_EOF)
      break;
    if (rc != TRI_OK)
      return dead(rc);
    rc = tri_stream_send(s, d, len);
    tri_buf_free(own);
    if (rc != TRI_OK)
      return dead(rc);
  }
  tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

/* Server streaming: StreamReq{size, count} -> count Payloads (W2). */
static int h_stream(tri_stream *s, void *ud) {
  uint8_t req[64];
  size_t len, plen;
  uint32_t size;
  uint64_t count;
  uint8_t *msg;
  int rc;
  (void)ud;
  note_server_tls(s);
  rc = tri_stream_recv_into(s, req, sizeof req, &len, RECV_TIMEOUT_MS);
  if (rc != TRI_OK)
    return rc == TRI_EOF ? TRI_INVALID_ARGUMENT : dead(rc);
  if (bench_pb_streamreq_decode(req, len, &size, &count) != 0 || size == 0 ||
      size > (8u << 20))
    return TRI_INVALID_ARGUMENT;
  plen = bench_pb_payload_len(size);
  msg = malloc(plen);
  if (msg == NULL)
    return TRI_RESOURCE_EXHAUSTED;
  bench_pb_payload(msg, plen, size);
  for (uint64_t i = 0; i < count; i++) {
    rc = tri_stream_send(s, msg, plen);
    if (rc != TRI_OK) {
      free(msg);
      return dead(rc);
    }
  }
  free(msg);
  tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

/* Never answers: waits until the client's deadline or cancel (W6). */
static int h_silent(tri_stream *s, void *ud) {
  uint8_t buf[4096];
  size_t len;
  (void)ud;
  (void)tri_stream_recv_into(s, buf, sizeof buf, &len, RECV_TIMEOUT_MS);
  (void)tri_stream_wait_status(s, 60000, NULL);
  return TRI_CANCELLED;
}

/* ---- the same handlers through the typed stubs (the default) ---- */

/* Echo: the response's body points at the request's bytes (no copy);
 * the request outlives the send (bench.tri.c sends call->resp before it
 * frees call->req). */
static int t_unary(Tribench__Bench__Unary_Server *call, void *ud) {
  (void)ud;
  note_server_tls(call->stream);
  call->resp.body = call->req->body;
  /* Counted before the library sends it: the wrapper sends call->resp and
   * status OK after this returns (W7 also needs h2load's 2xx). */
  bench_unary_ok();
  return TRI_OK;
}

static int t_ping_pong(Tribench__Bench__PingPong_Server *call, void *ud) {
  (void)ud;
  note_server_tls(call->stream);
  for (;;) {
    Tribench__Payload *m = NULL;
    int rc = tribench__bench__ping_pong__server_recv(call, &m,
                                                     STREAM_DEADLINE_MS);
    if (rc == TRI_EOF)
      return TRI_OK;
    if (rc != TRI_OK)
      return dead(rc);
    rc = tribench__bench__ping_pong__server_send(call, m);
    tribench__payload__free_unpacked(m, NULL);
    if (rc != TRI_OK)
      return dead(rc);
  }
}

static int t_stream(Tribench__Bench__Stream_Server *call, void *ud) {
  Tribench__Payload p = TRIBENCH__PAYLOAD__INIT;
  uint32_t size = call->req->size;
  uint8_t *body;
  (void)ud;
  note_server_tls(call->stream);
  if (size == 0 || size > (8u << 20))
    return TRI_INVALID_ARGUMENT;
  body = malloc(size);
  if (body == NULL)
    return TRI_RESOURCE_EXHAUSTED;
  memset(body, 'x', size);
  p.body.data = body;
  p.body.len = size;
  for (uint64_t i = 0; i < call->req->count; i++) {
    int rc = tribench__bench__stream__server_send(call, &p);
    if (rc != TRI_OK) {
      free(body);
      return dead(rc);
    }
  }
  free(body);
  return TRI_OK;
}

/* Never answers: the library wakes it at the deadline or cancel. */
static int t_silent(Tribench__Bench__Silent_Server *call, void *ud) {
  (void)ud;
  (void)tri_stream_wait_status(call->stream, 60000, NULL);
  return TRI_CANCELLED;
}

static const Tribench__Bench_Handlers t_handlers = {
    .unary = t_unary,
    .ping_pong = t_ping_pong,
    .stream = t_stream,
    .silent = t_silent,
};

static int g_raw; /* --raw: raw-bytes API on both sides */

static int srv_start(const bench_opts *o, const char *hp, int *port) {
  tri_server_opts *so = tri_server_opts_new();
  int rc;
  if (so == NULL)
    return -1;
  if (o->workloads & (1u << 4)) {
    long n = o->w4_max + 64;
    if (n > 256)
      tri_server_opts_set_max_workers(so, (int)n);
    /* all W4 streams share one client connection */
    tri_server_opts_set_max_handlers_per_conn(so, (int)n);
    if (n > 1024)
      tri_server_opts_set_max_concurrent_streams(so, (uint32_t)n);
    tri_server_opts_set_worker_stack(so, 64 * 1024);
  }
  if (o->io_threads > 0) {
    rc = tri_server_opts_set_io_threads(so, o->io_threads);
    if (rc != TRI_OK) {
      fprintf(stderr, PROG ": --io-threads=%d: %s\n", o->io_threads,
              tri_strerror(rc));
      tri_server_opts_free(so);
      return -1;
    }
  }
  if (o->tls) {
    tri_tls_opts *t = tri_tls_opts_new();
    rc = t ? tri_tls_opts_set_cert_key(t, o->tls_cert, o->tls_key) : TRI_ENOMEM;
    if (rc == TRI_OK)
      rc = tri_server_opts_set_tls(so, t);
    tri_tls_opts_free(t);
    if (rc != TRI_OK) {
      fprintf(stderr, PROG ": server TLS: %s\n", tri_strerror(rc));
      tri_server_opts_free(so);
      return -1;
    }
    g_tls = 1;
  }
  rc = tri_server_new(&g_srv, so);
  tri_server_opts_free(so);
  if (rc != TRI_OK) {
    fprintf(stderr, PROG ": tri_server_new: %s (%s)\n", tri_strerror(rc),
            tri_last_error());
    return -1;
  }
  g_raw = o->raw;
  if (!o->raw) {
    if (tribench__bench__tri_register(g_srv, &t_handlers, NULL) != TRI_OK)
      return -1;
  } else if (tri_server_register(g_srv, BENCH_M_UNARY, h_unary, NULL) !=
                 TRI_OK ||
             tri_server_register(g_srv, BENCH_M_PINGPONG, h_pingpong, NULL) !=
                 TRI_OK ||
             tri_server_register(g_srv, BENCH_M_STREAM, h_stream, NULL) !=
                 TRI_OK ||
             tri_server_register(g_srv, BENCH_M_SILENT, h_silent, NULL) !=
                 TRI_OK) {
    return -1;
  }
  rc = tri_server_bind(g_srv, hp);
  if (rc != TRI_OK) {
    fprintf(stderr, PROG ": bind %s: %s\n", hp, tri_strerror(rc));
    return -1;
  }
  if (tri_server_start(g_srv) != TRI_OK)
    return -1;
  *port = tri_server_port(g_srv);
  return 0;
}

static void srv_stop(void) {
  tri_server_shutdown(g_srv, 100);
  tri_server_free(g_srv);
  g_srv = NULL;
}

/* ------------------------------------------------------------------ */
/* Client helpers                                                      */
/* ------------------------------------------------------------------ */

static tri_call_opts *call_opts(int64_t timeout_ms) {
  tri_call_opts *co = tri_call_opts_new();
  if (co && tri_call_opts_set_timeout_ms(co, timeout_ms) != TRI_OK) {
    tri_call_opts_free(co);
    co = NULL;
  }
  return co;
}

static void fail(const char *what, int rc) {
  fprintf(stderr, PROG ": %s: %s (%s)\n", what, tri_code_name(rc),
          tri_strerror(rc));
}

/* Channel options of every channel: NULL (defaults, clear text), or TLS
 * verifying the server with --tls-ca, and/or the I/O group of
 * --io-group.  Set up by client_setup(); the group lives as long as the
 * process. */
static tri_channel_opts *g_chopts;
static int g_client_tls;
static tri_io_group *g_group;

static int client_setup(const bench_opts *o) {
  tri_tls_opts *t;
  int rc = TRI_OK;
  g_raw = o->raw;
  if ((!o->tls && o->io_group == 0) || g_chopts != NULL)
    return 0;
  g_chopts = tri_channel_opts_new();
  if (g_chopts == NULL)
    rc = TRI_ENOMEM;
  if (rc == TRI_OK && o->io_group > 0) {
    rc = tri_io_group_new(o->io_group, &g_group);
    if (rc == TRI_OK)
      rc = tri_channel_opts_set_io_group(g_chopts, g_group);
  }
  if (rc == TRI_OK && o->tls) {
    g_client_tls = 1;
    t = tri_tls_opts_new();
    rc = t ? tri_tls_opts_set_ca_file(t, o->tls_ca) : TRI_ENOMEM;
    if (rc == TRI_OK)
      rc = tri_channel_opts_set_tls(g_chopts, t);
    tri_tls_opts_free(t);
  }
  if (rc != TRI_OK) {
    fprintf(stderr, PROG ": channel options: %s (%s)\n", tri_strerror(rc),
            tri_last_error());
    tri_channel_opts_free(g_chopts);
    g_chopts = NULL;
    return -1;
  }
  return 0;
}

static tri_stream *open_echo(tri_channel *ch, const tri_call_opts *co,
                             const uint8_t *msg, size_t len);
static int close_echo(tri_stream *s);

/* With TLS, once per process: one echo on a stream of |ch| (before any
 * timing), then print what its connection negotiated. */
static void note_client_tls(tri_channel *ch) {
  static int done;
  uint8_t msg[8];
  size_t n = bench_pb_payload(msg, sizeof msg, 1);
  tri_call_opts *co;
  tri_stream *s;
  const tri_auth *a;
  char detail[300];

  if (!g_client_tls || done)
    return;
  done = 1;
  co = call_opts(UNARY_DEADLINE_MS);
  s = co ? open_echo(ch, co, msg, n) : NULL;
  tri_call_opts_free(co);
  if (s == NULL)
    return; /* the workload reports the failure */
  a = tri_stream_auth(s);
  if (a == NULL) {
    fprintf(stderr, PROG ": tls client: the call went without TLS\n");
  } else {
    snprintf(detail, sizeof detail, "verified_name=%s server_cert=%s",
             tri_auth_server_name(a), tri_auth_peer_subject(a));
    bench_tls_note(PROG, "client", tri_auth_tls_version(a),
                   tri_auth_cipher(a), detail);
  }
  close_echo(s);
}

static tri_channel *new_channel(const char *target) {
  tri_channel *ch = NULL;
  int rc = tri_channel_new(&ch, target, g_chopts);
  if (rc != TRI_OK) {
    fprintf(stderr, PROG ": tri_channel_new(%s): %s (%s)\n", target,
            tri_strerror(rc), tri_last_error());
    return NULL;
  }
  note_client_tls(ch);
  return ch;
}

/* Open a PingPong stream and do one round trip.  NULL on failure. */
static tri_stream *open_echo(tri_channel *ch, const tri_call_opts *co,
                             const uint8_t *msg, size_t len) {
  tri_stream *s = NULL;
  uint8_t buf[256];
  size_t got;
  int rc = tri_stream_open(ch, BENCH_M_PINGPONG, co, &s);
  if (rc != TRI_OK) {
    fail("tri_stream_open", rc);
    return NULL;
  }
  rc = tri_stream_send(s, msg, len);
  if (rc == TRI_OK)
    rc = tri_stream_recv_into(s, buf, sizeof buf, &got, RECV_TIMEOUT_MS);
  if (rc != TRI_OK || got != len) {
    fail("echo round trip", rc);
    tri_stream_free(s);
    return NULL;
  }
  return s;
}

/* Half-close, expect EOF and status OK, free. */
static int close_echo(tri_stream *s) {
  uint8_t buf[64];
  size_t got;
  int rc;
  tri_stream_close_send(s);
  rc = tri_stream_recv_into(s, buf, sizeof buf, &got, RECV_TIMEOUT_MS);
  if (rc == TRI_EOF)
    rc = tri_stream_wait_status(s, RECV_TIMEOUT_MS, NULL);
  tri_stream_free(s);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W1: ping-pong on one bidi stream                                    */
/* ------------------------------------------------------------------ */

/* One W1 round trip: send |msg| (typed: |pm|), receive the echo.  The
 * typed path encodes and decodes with protobuf-c like a user's code. */
static int w1_rt(tri_stream *s, const Tribench__Payload *pm,
                 const uint8_t *msg, size_t plen, uint8_t *buf) {
  size_t got = 0;
  int r;
  if (g_raw) {
    r = tri_stream_send(s, msg, plen);
    if (r == TRI_OK)
      r = tri_stream_recv_into(s, buf, plen + 16, &got, RECV_TIMEOUT_MS);
    return r == TRI_OK && got != plen ? TRI_INTERNAL : r;
  } else {
    Tribench__Bench__PingPong_Client c = {s};
    Tribench__Payload *resp = NULL;
    r = tribench__bench__ping_pong__send(&c, pm);
    if (r == TRI_OK)
      r = tribench__bench__ping_pong__recv(&c, &resp, RECV_TIMEOUT_MS);
    if (r == TRI_OK && resp->body.len != pm->body.len)
      r = TRI_INTERNAL;
    if (resp != NULL)
      tribench__payload__free_unpacked(resp, NULL);
    return r;
  }
}

static int w1(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen), *buf = malloc(plen + 16);
  uint8_t *body = malloc((size_t)o->size);
  int64_t *lat = malloc(sizeof *lat * (size_t)o->w1_n);
  tri_channel *ch = new_channel(target);
  tri_call_opts *co = call_opts(STREAM_DEADLINE_MS);
  Tribench__Payload pm = TRIBENCH__PAYLOAD__INIT;
  tri_stream *s = NULL;
  int rc = -1;
  long i;
  int64_t t0 = 0, t1;
  bench_cpu c0 = {0, -1}, c1;
  char extra[256];

  if (!msg || !buf || !body || !lat || !ch || !co)
    goto out;
  bench_pb_payload(msg, plen, (size_t)o->size);
  memset(body, 'x', (size_t)o->size);
  pm.body.data = body;
  pm.body.len = (size_t)o->size;
  s = open_echo(ch, co, msg, plen);
  if (s == NULL)
    goto out;
  for (i = 0; i < o->warmup + o->w1_n; i++) {
    int64_t a;
    int r;
    if (i == o->warmup) {
      bench_cpu_take(&c0);
      t0 = bench_now_ns();
    }
    a = bench_now_ns();
    r = w1_rt(s, &pm, msg, plen, buf);
    if (r != TRI_OK) {
      fail("W1 round trip", r);
      goto out;
    }
    if (i >= o->warmup)
      lat[i - o->warmup] = bench_now_ns() - a;
  }
  t1 = bench_now_ns();
  bench_cpu_take(&c1);
  {
    double secs = (double)(t1 - t0) / 1e9;
    bench_lat_extra(extra, sizeof extra, lat, (size_t)o->w1_n);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " secs=%.3f size=%d ok=1", secs, o->size);
    bench_line(IMPL, "W1", "W1", "rt_per_s", (double)o->w1_n / secs, extra);
    bench_cpu_line(IMPL, "W1", "W1", "cpu_us_per_call", o->w1_n, &c0, &c1);
  }
  rc = close_echo(s) == TRI_OK ? 0 : -1;
  s = NULL;
out:
  tri_stream_free(s);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  free(buf);
  free(body);
  free(lat);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W2: server streaming throughput                                     */
/* ------------------------------------------------------------------ */

static int w2_one(tri_channel *ch, int size, uint64_t count, const char *cs) {
  uint8_t req[32];
  size_t rlen = bench_pb_streamreq(req, sizeof req, (uint32_t)size, count);
  size_t cap = bench_pb_payload_len((size_t)size) + 16;
  /* raw: the whole encoded Payload; typed: its body */
  uint64_t want = g_raw ? bench_pb_payload_len((size_t)size) : (uint64_t)size;
  uint8_t *buf = g_raw ? malloc(cap) : NULL;
  tri_call_opts *co = call_opts(STREAM_DEADLINE_MS);
  Tribench__StreamReq treq = TRIBENCH__STREAM_REQ__INIT;
  Tribench__Bench__Stream_Client call = {NULL};
  tri_stream *s = NULL;
  uint64_t got = 0, bytes = 0;
  int64_t t0, t1;
  bench_cpu c0, c1;
  int rc;
  char extra[256];

  if ((g_raw && !buf) || !co) {
    free(buf);
    tri_call_opts_free(co);
    return -1;
  }
  bench_cpu_take(&c0);
  t0 = bench_now_ns();
  if (g_raw) {
    rc = tri_stream_open(ch, BENCH_M_STREAM, co, &s);
    if (rc == TRI_OK)
      rc = tri_stream_send_ex(s, req, rlen, TRI_SEND_LAST, RECV_TIMEOUT_MS);
    while (rc == TRI_OK) {
      size_t len;
      rc = tri_stream_recv_into(s, buf, cap, &len, RECV_TIMEOUT_MS);
      if (rc == TRI_OK) {
        got++;
        bytes += len;
      }
    }
  } else {
    treq.size = (uint32_t)size;
    treq.count = count;
    rc = tribench__bench__stream__open(ch, co, &treq, &call);
    s = call.stream;
    while (rc == TRI_OK) {
      Tribench__Payload *m = NULL;
      rc = tribench__bench__stream__recv(&call, &m, RECV_TIMEOUT_MS);
      if (rc == TRI_OK) {
        got++;
        bytes += m->body.len;
        tribench__payload__free_unpacked(m, NULL);
      }
    }
  }
  t1 = bench_now_ns();
  bench_cpu_take(&c1);
  if (rc == TRI_EOF)
    rc = tri_stream_wait_status(s, RECV_TIMEOUT_MS, NULL);
  tri_stream_free(s);
  tri_call_opts_free(co);
  free(buf);
  if (rc != TRI_OK || got != count) {
    fail("W2 stream", rc);
    return -1;
  }
  if (bytes != got * want) {
    fprintf(stderr, PROG ": W2: wrong message sizes\n");
    return -1;
  }
  if (cs != NULL) {
    double secs = (double)(t1 - t0) / 1e9;
    double mbps = (double)got * (double)size / 1e6 / secs;
    double mps = (double)got / secs;
    int big = strcmp(cs, "W2.big") == 0;
    snprintf(extra, sizeof extra,
             "size=%d n=%llu secs=%.3f %s=%.1f body_bytes=%llu ok=1", size,
             (unsigned long long)got, secs, big ? "msgs_per_s" : "MB_per_s",
             big ? mps : mbps, (unsigned long long)(got * (uint64_t)size));
    bench_line(IMPL, "W2", cs, big ? "MB_per_s" : "msgs_per_s",
               big ? mbps : mps, extra);
    bench_cpu_line(IMPL, "W2", cs, "cpu_us_per_msg", (long long)got, &c0, &c1);
  }
  return 0;
}

static int w2(const bench_opts *o, const char *target) {
  tri_channel *ch = new_channel(target);
  uint64_t big_n;
  int rc = 0;
  if (ch == NULL)
    return -1;
  big_n = (uint64_t)((o->w2_big_bytes + o->w2_big_size - 1) / o->w2_big_size);
  /* short warm-up: connection, handler thread, buffers */
  if (w2_one(ch, o->w2_small_size, 1, NULL) != 0)
    rc = -1;
  fflush(stdout);
  if (rc == 0 && w2_one(ch, o->w2_big_size, big_n, "W2.big") != 0)
    rc = -1;
  if (w2_one(ch, o->w2_small_size, (uint64_t)o->w2_small_n, "W2.small") != 0)
    rc = -1;
  tri_channel_free(ch);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W3: unary calls from T threads sharing one channel                  */
/* ------------------------------------------------------------------ */

typedef struct {
  tri_channel *ch;
  const tri_call_opts *co;
  const uint8_t *msg;
  const Tribench__Payload *pm; /* typed: the request */
  size_t len;
  long calls;
  int64_t *lat;
  pthread_barrier_t *bar;
  int errors;
} w3_arg;

/* One unary echo: raw bytes, or typed (protobuf-c encode + decode). */
static int w3_call(tri_channel *ch, const tri_call_opts *co,
                   const uint8_t *msg, size_t len,
                   const Tribench__Payload *pm) {
  int rc;
  if (g_raw) {
    tri_buf *resp = NULL;
    rc = tri_unary_call(ch, BENCH_M_UNARY, co, msg, len, &resp, NULL);
    if (rc == TRI_OK && tri_buf_len(resp) != len)
      rc = TRI_INTERNAL;
    tri_buf_free(resp);
  } else {
    Tribench__Payload *resp = NULL;
    rc = tribench__bench__unary__call(ch, co, pm, &resp, NULL);
    if (rc == TRI_OK && resp->body.len != pm->body.len)
      rc = TRI_INTERNAL;
    if (resp != NULL)
      tribench__payload__free_unpacked(resp, NULL);
  }
  return rc;
}

static void *w3_thread(void *p) {
  w3_arg *a = p;
  pthread_barrier_wait(a->bar);
  for (long i = 0; i < a->calls; i++) {
    int64_t t = bench_now_ns();
    int rc = w3_call(a->ch, a->co, a->msg, a->len, a->pm);
    a->lat[i] = bench_now_ns() - t;
    if (rc != TRI_OK) {
      if (a->errors++ == 0)
        fail("W3 unary", rc);
    }
  }
  return NULL;
}

static int w3(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen), *body = malloc((size_t)o->size);
  tri_channel *ch = new_channel(target);
  tri_call_opts *co = call_opts(UNARY_DEADLINE_MS);
  Tribench__Payload pm = TRIBENCH__PAYLOAD__INIT;
  int rc = 0;

  if (!msg || !body || !ch || !co) {
    rc = -1;
    goto out;
  }
  bench_pb_payload(msg, plen, (size_t)o->size);
  memset(body, 'x', (size_t)o->size);
  pm.body.data = body;
  pm.body.len = (size_t)o->size;
  for (long i = 0; i < o->warmup; i++) {
    int r = w3_call(ch, co, msg, plen, &pm);
    if (r != TRI_OK) {
      fail("W3 warm-up", r);
      rc = -1;
      goto out;
    }
  }
  for (int k = 0; k < o->w3_nthreads; k++) {
    int nt = o->w3_threads[k];
    long per = (o->w3_calls + nt - 1) / nt;
    w3_arg *args = calloc((size_t)nt, sizeof *args);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    int64_t *lat = malloc(sizeof *lat * (size_t)per * (size_t)nt);
    pthread_barrier_t bar;
    int errors = 0, started = 0;
    int64_t t0, t1;
    bench_cpu c0, c1;
    char cs[32], extra[256];

    if (!args || !th || !lat) {
      free(args);
      free(th);
      free(lat);
      rc = -1;
      break;
    }
    pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
    for (int t = 0; t < nt; t++) {
      args[t] = (w3_arg){ch,  co, msg, &pm, plen, per, lat + (size_t)t * per,
                         &bar, 0};
      if (pthread_create(&th[t], NULL, w3_thread, &args[t]) != 0)
        bench_die(PROG, "pthread_create failed");
      started++;
    }
    bench_cpu_take(&c0);
    pthread_barrier_wait(&bar);
    t0 = bench_now_ns();
    for (int t = 0; t < started; t++) {
      pthread_join(th[t], NULL);
      errors += args[t].errors;
    }
    t1 = bench_now_ns();
    bench_cpu_take(&c1);
    pthread_barrier_destroy(&bar);
    {
      size_t n = (size_t)per * (size_t)nt;
      double secs = (double)(t1 - t0) / 1e9;
      snprintf(cs, sizeof cs, "W3.t%d", nt);
      snprintf(extra, sizeof extra, "threads=%d ", nt);
      bench_lat_extra(extra + strlen(extra), sizeof extra - strlen(extra),
                      lat, n);
      snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
               " secs=%.3f errors=%d ok=%d", secs, errors, errors == 0);
      bench_line(IMPL, "W3", cs, "calls_per_s", (double)n / secs, extra);
      bench_cpu_line(IMPL, "W3", cs, "cpu_us_per_call", (long long)n, &c0,
                     &c1);
    }
    if (errors)
      rc = -1;
    free(args);
    free(th);
    free(lat);
  }
out:
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  free(body);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W4: idle bidi streams -> RSS per stream                             */
/* ------------------------------------------------------------------ */

static void w4_report(const char *impl, long count, long opened, int ok,
                      long long c0, long long c1, long long s0, long long s1,
                      double secs) {
  char cs[48], extra[200];
  double pc = opened ? (double)(c1 - c0) / (double)opened : 0;
  double ps = opened ? (double)(s1 - s0) / (double)opened : 0;
  snprintf(cs, sizeof cs, "W4.%ld.client", count);
  snprintf(extra, sizeof extra,
           "streams=%ld n=%ld side=client rss_kib=%lld open_secs=%.2f ok=%d",
           count, opened, c1 / 1024, secs, ok);
  bench_line(impl, "W4", cs, "rss_per_stream_bytes", pc, extra);
  if (s0 < 0 || s1 < 0) {
    fprintf(stderr, "%s: W4: server RSS unknown (use --server-pid)\n", impl);
    return;
  }
  snprintf(cs, sizeof cs, "W4.%ld.server", count);
  snprintf(extra, sizeof extra,
           "streams=%ld n=%ld side=server rss_kib=%lld ok=%d", count, opened,
           s1 / 1024, ok);
  bench_line(impl, "W4", cs, "rss_per_stream_bytes", ps, extra);
  snprintf(cs, sizeof cs, "W4.%ld.total", count);
  snprintf(extra, sizeof extra, "streams=%ld n=%ld side=total ok=%d", count,
           opened, ok);
  bench_line(impl, "W4", cs, "rss_per_stream_bytes", pc + ps, extra);
}

static int w4(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen);
  tri_channel *ch = new_channel(target);
  tri_call_opts *co = call_opts(STREAM_DEADLINE_MS);
  tri_stream **ss = calloc((size_t)o->w4_max, sizeof *ss);
  long opened = 0;
  long long c0, s0;
  int rc = 0, ok = 1;
  long spid = bench_server_pid();
  int64_t t0;

  if (!msg || !ch || !co || !ss) {
    rc = -1;
    goto out;
  }
  bench_pb_payload(msg, plen, (size_t)o->size);
  /* warm-up: connect, start the first handler, size the pools */
  {
    tri_stream *s = open_echo(ch, co, msg, plen);
    if (s == NULL || close_echo(s) != TRI_OK) {
      rc = -1;
      goto out;
    }
  }
  bench_sleep_ns(100000000);
  c0 = bench_rss_bytes(0);
  s0 = spid ? bench_rss_bytes(spid) : -1;
  t0 = bench_now_ns();
  for (int k = 0; k < o->w4_ncounts; k++) {
    long count = o->w4_streams[k];
    while (ok && opened < count) {
      ss[opened] = open_echo(ch, co, msg, plen);
      if (ss[opened] == NULL) {
        fprintf(stderr, PROG ": W4: stream %ld failed\n", opened + 1);
        ok = 0;
        break;
      }
      opened++;
    }
    bench_sleep_ns(200000000); /* let both sides settle */
    w4_report(IMPL, count, opened, ok && opened == count, c0,
              bench_rss_bytes(0), s0, spid ? bench_rss_bytes(spid) : -1,
              (double)(bench_now_ns() - t0) / 1e9);
  }
  if (!ok)
    rc = -1;
  for (long i = 0; i < opened; i++) {
    tri_stream_cancel(ss[i]);
    tri_stream_free(ss[i]);
  }
out:
  free(ss);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W5: cancel wakes a thread blocked in recv                           */
/* ------------------------------------------------------------------ */

typedef struct {
  tri_stream *s;
  atomic_long tid;
  atomic_int ready;
  int64_t t_ret;
  int rc;
} w5_arg;

static void *w5_thread(void *p) {
  w5_arg *a = p;
  uint8_t buf[256];
  size_t len;
  int rc;
  atomic_store(&a->tid, bench_gettid());
  atomic_store(&a->ready, 1);
  rc = tri_stream_recv_into(a->s, buf, sizeof buf, &len, RECV_TIMEOUT_MS);
  a->t_ret = bench_now_ns();
  a->rc = rc;
  return NULL;
}

static int w5(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen);
  int64_t *lat = malloc(sizeof *lat * (size_t)o->w5_reps);
  tri_channel *ch = new_channel(target);
  tri_call_opts *co = call_opts(STREAM_DEADLINE_MS);
  long n = 0, errors = 0, unparked = 0;
  int rc = 0;
  char extra[256];

  if (!msg || !lat || !ch || !co) {
    rc = -1;
    goto out;
  }
  bench_pb_payload(msg, plen, (size_t)o->size);
  for (long r = 0; r < o->w5_reps; r++) {
    w5_arg a;
    pthread_t th;
    int64_t t0, end;
    memset(&a, 0, sizeof a);
    a.s = open_echo(ch, co, msg, plen);
    if (a.s == NULL) {
      rc = -1;
      break;
    }
    if (pthread_create(&th, NULL, w5_thread, &a) != 0)
      bench_die(PROG, "pthread_create failed");
    end = bench_now_ns() + INT64_C(5000000000);
    while (!atomic_load(&a.ready) && bench_now_ns() < end)
      bench_sleep_ns(10000);
    if (bench_wait_parked(atomic_load(&a.tid), 1000) != 0)
      unparked++;
    t0 = bench_now_ns();
    tri_stream_cancel(a.s);
    pthread_join(th, NULL);
    if (a.rc != TRI_CANCELLED) {
      if (errors++ == 0)
        fail("W5: recv after cancel", a.rc);
    } else {
      lat[n++] = a.t_ret - t0;
    }
    tri_stream_free(a.s);
  }
  bench_lat_extra(extra, sizeof extra, lat, (size_t)n);
  {
    double p99 = bench_pct_us(lat, (size_t)n, 99.0);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " errors=%ld not_parked=%ld ok=%d", errors, unparked,
             errors == 0 && rc == 0 && n > 0);
    bench_line(IMPL, "W5", "W5", "cancel_wake_p99_us", p99, extra);
  }
  if (errors)
    rc = -1;
out:
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  free(lat);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W6: deadline overshoot against a silent server                      */
/* ------------------------------------------------------------------ */

static int w6(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen);
  int64_t *lat = malloc(sizeof *lat * (size_t)o->w6_reps);
  tri_channel *ch = new_channel(target);
  tri_call_opts *co = call_opts(o->w6_deadline_ms);
  int64_t dl = (int64_t)o->w6_deadline_ms * 1000000;
  long n = 0, errors = 0;
  int rc = 0;
  char extra[256];

  if (!msg || !lat || !ch || !co) {
    rc = -1;
    goto out;
  }
  bench_pb_payload(msg, plen, (size_t)o->size);
  { /* connect first, so the first rep does not include the handshake */
    tri_call_opts *wo = call_opts(UNARY_DEADLINE_MS);
    tri_buf *resp = NULL;
    int r = tri_unary_call(ch, BENCH_M_UNARY, wo, msg, plen, &resp, NULL);
    tri_buf_free(resp);
    tri_call_opts_free(wo);
    if (r != TRI_OK) {
      fail("W6 warm-up", r);
      rc = -1;
      goto out;
    }
    /* one untimed Silent call: first-use costs on both sides */
    resp = NULL;
    r = tri_unary_call(ch, BENCH_M_SILENT, co, msg, plen, &resp, NULL);
    tri_buf_free(resp);
    if (r != TRI_DEADLINE_EXCEEDED) {
      fail("W6 warm-up: expected DEADLINE_EXCEEDED", r);
      rc = -1;
      goto out;
    }
  }
  for (long r = 0; r < o->w6_reps; r++) {
    tri_buf *resp = NULL;
    Tribench__Payload *tresp = NULL;
    Tribench__Payload pm = TRIBENCH__PAYLOAD__INIT;
    int64_t t0 = bench_now_ns(), t1;
    int c;
    pm.body.data = msg + (plen - (size_t)o->size); /* the 'x' bytes */
    pm.body.len = (size_t)o->size;
    if (g_raw)
      c = tri_unary_call(ch, BENCH_M_SILENT, co, msg, plen, &resp, NULL);
    else
      c = tribench__bench__silent__call(ch, co, &pm, &tresp, NULL);
    t1 = bench_now_ns();
    tri_buf_free(resp);
    if (tresp != NULL)
      tribench__payload__free_unpacked(tresp, NULL);
    if (c != TRI_DEADLINE_EXCEEDED) {
      if (errors++ == 0)
        fail("W6: expected DEADLINE_EXCEEDED", c);
      continue;
    }
    lat[n++] = t1 - t0 - dl;
  }
  bench_lat_extra(extra, sizeof extra, lat, (size_t)n);
  {
    double p99 = bench_pct_us(lat, (size_t)n, 99.0);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " deadline_ms=%d errors=%ld ok=%d", o->w6_deadline_ms, errors,
             errors == 0 && n > 0);
    bench_line(IMPL, "W6", "W6", "deadline_overshoot_p99_us", p99, extra);
  }
  if (errors)
    rc = -1;
out:
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  free(lat);
  return rc;
}

/* ------------------------------------------------------------------ */
/* W8: many channels, one call each, then idle: client RSS per channel  */
/* ------------------------------------------------------------------ */

static int w8(const bench_opts *o, const char *target) {
  long n = o->w8_channels, opened = 0;
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen);
  /* chs[0]: a warm-up channel, not counted: the first channel's one-time
   * costs (code pages, the library's globals) are not a channel's. */
  tri_channel **chs = calloc((size_t)n + 1, sizeof *chs);
  tri_call_opts *co = call_opts(UNARY_DEADLINE_MS);
  Tribench__Payload pm = TRIBENCH__PAYLOAD__INIT;
  long long rss0 = -1, rss1;
  long thr0 = -1, thr1;
  int ok = 1;

  if (!msg || !chs || !co) {
    free(msg);
    free(chs);
    tri_call_opts_free(co);
    return -1;
  }
  bench_pb_payload(msg, plen, (size_t)o->size);
  pm.body.data = msg + (plen - (size_t)o->size); /* the 'x' bytes */
  pm.body.len = (size_t)o->size;
  for (long i = 0; i <= n && ok; i++) {
    int rc;
    if (i == 1) {
      rss0 = bench_rss_bytes(0);
      thr0 = bench_threads();
    }
    chs[i] = new_channel(target);
    if (chs[i] == NULL) {
      ok = 0;
      break;
    }
    opened = i + 1;
    rc = w3_call(chs[i], co, msg, plen, &pm);
    if (rc != TRI_OK) {
      fail("W8 call", rc);
      ok = 0;
    }
  }
  if (opened <= 1) { /* the warm-up channel failed, or the first after it */
    rss0 = bench_rss_bytes(0);
    thr0 = bench_threads();
  }
  /* Idle: what a quiet channel keeps (tri trims a connection quiet for
   * 100 ms; gRPC is measured after the same 500 ms). */
  bench_sleep_ns(INT64_C(500000000));
  rss1 = bench_rss_bytes(0);
  thr1 = bench_threads();
  bench_w8_report(IMPL, n, opened > 0 ? opened - 1 : 0, rss0, rss1, thr0,
                  thr1, ok);
  for (long i = 0; i < opened; i++)
    tri_channel_free(chs[i]);
  free(chs);
  free(msg);
  tri_call_opts_free(co);
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ */

static int client_run(const bench_opts *o, int w, const char *target) {
  if (client_setup(o) != 0)
    return -1;
  switch (w) {
  case 1:
    return w1(o, target);
  case 2:
    return w2(o, target);
  case 3:
    return w3(o, target);
  case 4:
    return w4(o, target);
  case 5:
    return w5(o, target);
  case 6:
    return w6(o, target);
  case 8:
    return w8(o, target);
  default:
    return -1;
  }
}

static int check_unary(const bench_opts *o, const char *target) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *msg = malloc(plen);
  tri_channel *ch = client_setup(o) == 0 ? new_channel(target) : NULL;
  tri_call_opts *co = call_opts(UNARY_DEADLINE_MS);
  tri_buf *resp = NULL;
  int rc = -1;
  if (msg && ch && co) {
    bench_pb_payload(msg, plen, (size_t)o->size);
    rc = tri_unary_call(ch, BENCH_M_UNARY, co, msg, plen, &resp, NULL);
    rc = rc == TRI_OK && tri_buf_len(resp) == plen ? 0 : -1;
  }
  tri_buf_free(resp);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  free(msg);
  return rc;
}

int main(int argc, char **argv) {
  static const bench_impl impl = {IMPL,       PROG,        srv_start,
                                  srv_stop,   client_run,  check_unary,
                                  BENCH_FLAG_RAW | BENCH_FLAG_IO_THREADS |
                                      BENCH_FLAG_IO_GROUP};
  return bench_main(argc, argv, &impl);
}
