/*
 * integ_limits: many concurrent streams, big messages, receive limits and
 * worker exhaustion, over loopback.  Timing assertions are "promise +
 * stated headroom" (testutil.h); every test ends with the library's
 * budgets back at zero.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define M_ECHO "/test.Echo/Bidi"
#define M_HANG "/test.Hang/Bidi"
#define M_RECVLIM "/test.Limit/Recv"
#define M_BIG "/test.Limit/Big"
#define M_GATHER "/test.Limit/Gather"

#define MIB ((size_t)1024 * 1024)

static tri_server *srv;
static tri_channel *ch;
static int port;
static tu_hang hang;

/* RecvLimit: record what the first recv returned. */
static atomic_int recvlim_rc;
static atomic_int recvlim_started;
static sem_t recvlim_started_sem;
static sem_t recvlim_done;

static int
h_recvlim(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  int rv;

  (void)ud;
  atomic_fetch_add(&recvlim_started, 1);
  sem_post(&recvlim_started_sem);
  rv = tri_stream_recv(s, &m);
  tri_buf_free(m);
  atomic_store(&recvlim_rc, rv);
  sem_post(&recvlim_done);
  if (rv == TRI_OK)
    return TRI_DATA_LOSS; /* the over-limit message was delivered */
  return rv >= 0 ? rv : TRI_INTERNAL;
}

/* Big: each request is a 4-byte big-endian length, answered with that
 * many tu_fill(seed 42) bytes, until the client half-closes. */
static int
h_big(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  uint8_t *buf;
  const uint8_t *d;
  size_t n;
  int rv;

  (void)ud;
  for (int i = 0; i < 1000; i++) {
    rv = tri_stream_recv(s, &m);
    if (rv == TRI_EOF)
      return TRI_OK;
    if (rv != TRI_OK)
      return rv >= 0 ? rv : TRI_INTERNAL;
    if (tri_buf_len(m) != 4) {
      tri_buf_free(m);
      return TRI_INVALID_ARGUMENT;
    }
    d = tri_buf_data(m);
    n = ((size_t)d[0] << 24) | ((size_t)d[1] << 16) | ((size_t)d[2] << 8) |
        d[3];
    tri_buf_free(m);
    buf = malloc(n ? n : 1);
    if (buf == NULL)
      return TRI_RESOURCE_EXHAUSTED;
    tu_fill(buf, n, 42);
    rv = tri_stream_send(s, buf, n);
    free(buf);
    /* The client may reject it (over its limit) and cancel: not our
     * error. */
    if (rv != TRI_OK)
      return rv >= 0 ? rv : TRI_INTERNAL;
  }
  return TRI_OUT_OF_RANGE;
}

/* Gather: returns OK once gather.want handlers are running at the same
 * time, ABORTED if they are not all there within 10 s. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int here, want, ok;
} gather = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static int
h_gather(tri_stream *s, void *ud)
{
  struct timespec until;
  int ok;

  (void)s;
  (void)ud;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&gather.mu);
  if (++gather.here >= gather.want)
    pthread_cond_broadcast(&gather.cv);
  while (gather.here < gather.want)
    if (pthread_cond_timedwait(&gather.cv, &gather.mu, &until) != 0)
      break;
  ok = gather.here >= gather.want;
  gather.ok += ok;
  pthread_mutex_unlock(&gather.mu);
  return ok ? TRI_OK : TRI_ABORTED;
}

static void
start(const tri_server_opts *so, const tri_channel_opts *co)
{
  tu_method m[] = {
      {M_ECHO, tu_echo_handler, NULL},
      {M_HANG, tu_hang_handler, &hang},
      {M_RECVLIM, h_recvlim, NULL},
      {M_BIG, h_big, NULL},
      {M_GATHER, h_gather, NULL},
  };
  tu_hang_init(&hang);
  atomic_store(&recvlim_rc, INT32_MIN);
  atomic_store(&recvlim_started, 0);
  sem_init(&recvlim_done, 0, 0);
  sem_init(&recvlim_started_sem, 0, 0);
  srv = tu_server_start(m, sizeof(m) / sizeof(m[0]), so, &port);
  ck_assert_msg(srv != NULL, "server did not start");
  ch = tu_channel_new(port, co);
  ck_assert_msg(ch != NULL, "channel not created");
}

static void
teardown(void)
{
  tri_channel_free(ch);
  ch = NULL;
  tri_server_free(srv);
  srv = NULL;
  ck_assert_msg(tu_budgets_settle(2000) == 0,
                "library budgets not back to zero after the test");
}

static tri_stream *
open_stream(const char *method, const tri_call_opts *o)
{
  tri_stream *s = NULL;
  int rv = tri_stream_open(ch, method, o, &s);
  ck_assert_msg(rv == TRI_OK, "tri_stream_open(%s): %s", method, tu_code(rv));
  return s;
}

/* ---------------------------------------------------------------- */

/* Request metadata over one header block (nghttp2 sends at most 64 KiB):
 * the call fails INTERNAL at once with a message that says so.  Before,
 * the request was taken back as "never sent", requeued without waking
 * the loop and sat there while another stream kept the channel busy
 * (no deadline: never returned), then failed UNAVAILABLE with "The
 * length of the frame is invalid".  Metadata, a -bin value and a long
 * method path; another stream is open on the channel the whole time,
 * and the channel goes on working. */
START_TEST(test_request_headers_too_big)
{
  enum { BIG = 70000 };
  char *v = malloc(BIG + 16);
  tri_buf *r = NULL;

  ck_assert_ptr_nonnull(v);
  start(NULL, NULL);
  tri_stream *idle = open_stream(M_ECHO, NULL);
  ck_assert_int_eq(tri_stream_send(idle, "a", 1), TRI_OK);
  ck_assert_int_eq(tri_stream_recv(idle, &r), TRI_OK); /* it is open */
  tri_buf_free(r);
  r = NULL;
  for (int kind = 0; kind < 3; kind++) {
    tri_call_opts *o = tri_call_opts_new();
    const char *method = M_ECHO;
    char *path = NULL;
    memset(v, 'v', BIG);
    v[BIG] = '\0';
    ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
    if (kind == 0)
      ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-big", v, BIG),
                       TRI_OK);
    if (kind == 1)
      ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-big-bin", v,
                                                  BIG * 3 / 4),
                       TRI_OK);
    if (kind == 2) {
      path = malloc(BIG + 16);
      ck_assert_ptr_nonnull(path);
      snprintf(path, BIG + 16, "/s.S/%s", v);
      method = path;
    }
    int64_t t0 = tu_now_us();
    int rv = tri_unary_call(ch, method, o, "x", 1, &r, NULL);
    int64_t el = tu_now_us() - t0;
    const char *why = tri_last_error();
    tri_buf_free(r);
    r = NULL;
    /* Promise: a prompt, precise status; 1 s is headroom (nothing is
     * sent: it takes one pass of the I/O loop). */
    ck_assert_msg(rv == TRI_INTERNAL && el < 1000000,
                  "kind %d: %s \"%s\" after %lld ms", kind, tu_code(rv), why,
                  (long long)(el / 1000));
    ck_assert_msg(strstr(why, "request headers not sent") != NULL,
                  "kind %d: message: %s", kind, why);
    free(path);
    tri_call_opts_free(o);
  }
  ck_assert_int_eq(tri_unary_call(ch, M_ECHO, NULL, "y", 1, &r, NULL),
                   TRI_OK);
  tri_buf_free(r);
  tri_stream_close_send(idle);
  tri_stream_free(idle);
  free(v);
}
END_TEST

/* ---------------------------------------------------------------- */

START_TEST(test_1000_streams)
{
  enum { N = 1000 };
  tri_server_opts *so = tri_server_opts_new();
  tri_stream **s = calloc(N, sizeof(*s));
  char msg[32];
  int i, rv;

  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 1100), TRI_OK);
  /* One client connection holds all 1000 handlers here: raise its share
   * (the default, max_workers / 8, protects servers from such clients). */
  ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(so, 1100),
                   TRI_OK);
  /* Starting 1000 workers on demand on a small machine (or valgrind) can
   * take a while; this test is about streams, not the queue timeout. */
  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(so, 20000), TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);

  for (i = 0; i < N; i++)
    s[i] = open_stream(M_ECHO, NULL);
  for (i = 0; i < N; i++) {
    int l = snprintf(msg, sizeof(msg), "stream %d", i);
    rv = tri_stream_send_ex(s[i], msg, (size_t)l, 0, 30000);
    ck_assert_msg(rv == TRI_OK, "send on stream %d: %s", i, tu_code(rv));
  }
  for (i = 0; i < N; i++) {
    tri_buf *m = NULL;
    int l = snprintf(msg, sizeof(msg), "stream %d", i);
    rv = tri_stream_recv_ex(s[i], &m, 30000);
    ck_assert_msg(rv == TRI_OK, "recv on stream %d: %s", i, tu_code(rv));
    ck_assert_msg(tri_buf_len(m) == (size_t)l &&
                      memcmp(tri_buf_data(m), msg, (size_t)l) == 0,
                  "stream %d got \"%.*s\"", i, (int)tri_buf_len(m),
                  (const char *)tri_buf_data(m));
    tri_buf_free(m);
  }
  for (i = 0; i < N; i++)
    ck_assert_int_eq(tri_stream_close_send(s[i]), TRI_OK);
  for (i = 0; i < N; i++) {
    tri_buf *m = NULL;
    int st;
    rv = tri_stream_recv_ex(s[i], &m, 30000);
    st = tri_stream_wait_status(s[i], 30000, NULL);
    ck_assert_msg(rv == TRI_EOF && st == TRI_OK,
                  "stream %d end: recv %s, status %s", i, tu_code(rv),
                  tu_code(st));
    tri_stream_free(s[i]);
  }
  free(s);
}
END_TEST

START_TEST(test_16mib_roundtrip)
{
  const size_t len = 16 * MIB;
  tri_server_opts *so = tri_server_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  uint8_t *buf = malloc(len);
  tri_stream *s;
  tri_buf *m = NULL;
  long bad;
  int rv;

  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(tri_server_opts_set_max_recv_size(so, 32 * MIB), TRI_OK);
  ck_assert_int_eq(tri_channel_opts_set_max_recv_size(co, 32 * MIB), TRI_OK);
  start(so, co);
  tri_server_opts_free(so);
  tri_channel_opts_free(co);

  tu_fill(buf, len, 16);
  s = open_stream(M_ECHO, NULL);
  rv = tri_stream_send(s, buf, len);
  ck_assert_msg(rv == TRI_OK, "send 16 MiB: %s", tu_code(rv));
  memset(buf, 0, len); /* the library copied it */
  free(buf);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  rv = tri_stream_recv_ex(s, &m, 50000);
  ck_assert_msg(rv == TRI_OK, "recv 16 MiB echo: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), len);
  bad = tu_check_fill(tri_buf_data(m), tri_buf_len(m), 16);
  ck_assert_msg(bad < 0, "16 MiB echo differs at offset %ld", bad);
  tri_buf_free(m);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_EOF, "end: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_OK);
  tri_stream_free(s);
}
END_TEST

/* A ping-pong echo loop on its own stream, run while another stream on
 * the same channel fails. */
struct pinger {
  tri_stream *s;
  atomic_int stop;
  int rounds;
  int rv;
};

static void *
pinger_main(void *p)
{
  struct pinger *pg = p;
  int i;

  pg->rv = TRI_OK;
  for (i = 0; i < 100000 && !atomic_load(&pg->stop); i++) {
    tri_buf *m = NULL;
    char msg[32];
    int l = snprintf(msg, sizeof(msg), "ping %d", i);
    int rv = tri_stream_send_ex(pg->s, msg, (size_t)l, 0, 10000);
    if (rv == TRI_OK)
      rv = tri_stream_recv_ex(pg->s, &m, 10000);
    if (rv == TRI_OK && (tri_buf_len(m) != (size_t)l ||
                         memcmp(tri_buf_data(m), msg, (size_t)l) != 0))
      rv = TRI_DATA_LOSS;
    tri_buf_free(m);
    if (rv != TRI_OK) {
      pg->rv = rv;
      break;
    }
    pg->rounds++;
  }
  return NULL;
}

START_TEST(test_over_limit_from_client)
{
  const size_t len = 4 * MIB + 1;
  uint8_t *buf = malloc(len);
  struct pinger pg;
  tri_stream *a;
  tri_buf *m = NULL;
  pthread_t t;
  int rv, st, rc;

  ck_assert_ptr_nonnull(buf);
  start(NULL, NULL);
  memset(&pg, 0, sizeof(pg));
  pg.s = open_stream(M_ECHO, NULL);
  ck_assert_int_eq(tu_thread_start(&t, pinger_main, &pg), 0);

  tu_fill(buf, len, 1);
  a = open_stream(M_RECVLIM, NULL);
  /* Let the handler start first, so that it is certainly the one whose
   * recv meets the over-limit message. */
  ck_assert_msg(tu_sem_wait(&recvlim_started_sem, TU_WAIT_MS) == 0,
                "RecvLimit handler did not start");
  rv = tri_stream_send_ex(a, buf, len, 0, 20000);
  free(buf);
  /* The send may complete or may see the end the server caused. */
  ck_assert_msg(rv == TRI_OK || rv == TRI_RESOURCE_EXHAUSTED,
                "send of 4 MiB + 1: %s", tu_code(rv));
  tri_stream_close_send(a);
  rv = tri_stream_recv_ex(a, &m, 20000);
  st = tri_stream_wait_status(a, 1000, NULL);
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED,
                "client recv after sending 4 MiB + 1: %s (status %s)",
                tu_code(rv), tu_code(st));
  ck_assert_int_eq(st, TRI_RESOURCE_EXHAUSTED);
  ck_assert_msg(tu_sem_wait(&recvlim_done, TU_WAIT_MS) == 0,
                "server handler's recv did not return within %d ms "
                "(handler started: %d)",
                TU_WAIT_MS, atomic_load(&recvlim_started));
  rc = atomic_load(&recvlim_rc);
  ck_assert_msg(rc == TRI_RESOURCE_EXHAUSTED,
                "server recv of an over-limit message returned %s",
                tu_code(rc));
  tri_stream_free(a);

  /* Exactly 4 MiB is accepted (the limit is inclusive). */
  buf = malloc(4 * MIB);
  ck_assert_ptr_nonnull(buf);
  tu_fill(buf, 4 * MIB, 4);
  a = open_stream(M_ECHO, NULL);
  rv = tri_stream_send_ex(a, buf, 4 * MIB, TRI_SEND_LAST, 20000);
  free(buf);
  ck_assert_msg(rv == TRI_OK, "send of exactly 4 MiB: %s", tu_code(rv));
  rv = tri_stream_recv_ex(a, &m, 20000);
  ck_assert_msg(rv == TRI_OK, "echo of exactly 4 MiB: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), 4 * MIB);
  ck_assert_int_lt(tu_check_fill(tri_buf_data(m), 4 * MIB, 4), 0);
  tri_buf_free(m);
  tri_stream_free(a);

  /* The other stream kept working throughout and still does. */
  atomic_store(&pg.stop, 1);
  ck_assert_int_eq(tu_thread_join(t, 30000, NULL), 0);
  ck_assert_msg(pg.rv == TRI_OK, "concurrent stream failed after %d rounds: %s",
                pg.rounds, tu_code(pg.rv));
  ck_assert_int_gt(pg.rounds, 0);
  ck_assert_int_eq(tri_stream_close_send(pg.s), TRI_OK);
  m = NULL;
  rv = tri_stream_recv_ex(pg.s, &m, 10000);
  ck_assert_msg(rv == TRI_EOF, "concurrent stream end: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(pg.s, 1000, NULL), TRI_OK);
  tri_stream_free(pg.s);
}
END_TEST

static int
big_call(const tri_call_opts *o, size_t n, tri_stream **out)
{
  uint8_t req[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};
  tri_stream *s = open_stream(M_BIG, o);
  int rv = tri_stream_send_ex(s, req, 4, TRI_SEND_LAST, 10000);
  ck_assert_msg(rv == TRI_OK, "send request: %s", tu_code(rv));
  *out = s;
  return rv;
}

START_TEST(test_over_limit_from_server)
{
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s;
  tri_buf *m = NULL;
  int rv;

  start(NULL, NULL);
  /* Default client limit 4 MiB: 4 MiB + 1 is refused. */
  big_call(NULL, 4 * MIB + 1, &s);
  rv = tri_stream_recv_ex(s, &m, 20000);
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED,
                "client recv of 4 MiB + 1: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  tri_stream_free(s);

  /* Exactly 4 MiB passes. */
  big_call(NULL, 4 * MIB, &s);
  rv = tri_stream_recv_ex(s, &m, 20000);
  ck_assert_msg(rv == TRI_OK, "client recv of 4 MiB: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), 4 * MIB);
  ck_assert_int_lt(tu_check_fill(tri_buf_data(m), 4 * MIB, 42), 0);
  tri_buf_free(m);
  m = NULL;
  ck_assert_int_eq(tri_stream_recv_ex(s, &m, 10000), TRI_EOF);
  tri_stream_free(s);

  /* A per-call limit raises it. */
  ck_assert_int_eq(tri_call_opts_set_max_recv_size(o, 8 * MIB), TRI_OK);
  big_call(o, 4 * MIB + 1, &s);
  rv = tri_stream_recv_ex(s, &m, 20000);
  ck_assert_msg(rv == TRI_OK, "recv of 4 MiB + 1 with an 8 MiB limit: %s",
                tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), 4 * MIB + 1);
  tri_buf_free(m);
  m = NULL;
  ck_assert_int_eq(tri_stream_recv_ex(s, &m, 10000), TRI_EOF);
  tri_stream_free(s);

  /* ... and lowers it. */
  ck_assert_int_eq(tri_call_opts_set_max_recv_size(o, 1000), TRI_OK);
  big_call(o, 1001, &s);
  rv = tri_stream_recv_ex(s, &m, 20000);
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED, "1001 bytes, limit 1000: %s",
                tu_code(rv));
  tri_stream_free(s);
  big_call(o, 1000, &s);
  rv = tri_stream_recv_ex(s, &m, 20000);
  ck_assert_msg(rv == TRI_OK, "1000 bytes, limit 1000: %s", tu_code(rv));
  tri_buf_free(m);
  tri_stream_free(s);
  tri_call_opts_free(o);
}
END_TEST

/* The client's limit rejects a later message: the messages that came
 * before it are delivered first (tri_stream_recv: only a local end or a
 * cut-off connection drops them).  Before the fix the first recv already
 * returned RESOURCE_EXHAUSTED and the three good messages were lost. */
START_TEST(test_over_limit_after_good_messages)
{
  static const size_t sizes[] = {10, 20, 30, 1001};
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s;
  tri_buf *m = NULL;
  const char *msg = NULL;
  int rv;

  start(NULL, NULL);
  ck_assert_int_eq(tri_call_opts_set_max_recv_size(o, 1000), TRI_OK);
  s = open_stream(M_BIG, o);
  for (size_t i = 0; i < 4; i++) {
    uint8_t req[4] = {0, 0, (uint8_t)(sizes[i] >> 8), (uint8_t)sizes[i]};
    ck_assert_int_eq(tri_stream_send(s, req, 4), TRI_OK);
  }
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  /* The call ends when the 1001-byte message arrives, after the others. */
  rv = tri_stream_wait_status(s, TU_WAIT_MS, &msg);
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED, "status: %s (%s)", tu_code(rv),
                msg);
  for (size_t i = 0; i < 3; i++) {
    rv = tri_stream_recv_ex(s, &m, 0);
    ck_assert_msg(rv == TRI_OK, "message %zu of %zu bytes: %s", i, sizes[i],
                  tu_code(rv));
    ck_assert_uint_eq(tri_buf_len(m), sizes[i]);
    ck_assert_int_lt(tu_check_fill(tri_buf_data(m), sizes[i], 42), 0);
    tri_buf_free(m);
    m = NULL;
  }
  rv = tri_stream_recv_ex(s, &m, 0);
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED, "after the three: %s",
                tu_code(rv));
  tri_stream_free(s);
  tri_call_opts_free(o);
}
END_TEST

START_TEST(test_worker_exhaustion)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s[2];
  tri_buf *resp = NULL;
  int64_t t0, el;
  int i, rv;

  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 2), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 0), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(so, 200), TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);

  for (i = 0; i < 2; i++) {
    s[i] = open_stream(M_HANG, NULL);
    ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                  "handler %d did not start", i);
  }
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
  t0 = tu_now_us();
  rv = tri_unary_call(ch, M_ECHO, o, "x", 1, &resp, NULL);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_RESOURCE_EXHAUSTED || rv == TRI_UNAVAILABLE,
                "third call with 2 workers busy: %s after %lld us",
                tu_code(rv), (long long)(el - t0));
  /* The stream waits the 200 ms queue timeout for a free handler thread
   * (the queue and the connection's share are far from full), then is
   * refused. */
  TU_ASSERT_EXPIRED("refusal after the 200 ms queue timeout", 200, t0, el);

  /* Free the workers; the server serves again. */
  t0 = tu_now_us();
  for (i = 0; i < 2; i++)
    tri_stream_cancel(s[i]);
  for (i = 0; i < 2; i++)
    ck_assert_msg(tu_sem_wait(&hang.ended, TU_WAIT_MS) == 0,
                  "handler %d not woken by cancel", i);
  TU_ASSERT_PROMPT("cancel -> both server handlers' recv return", t0,
                   atomic_load(&hang.ended_us));
  for (i = 0; i < 2; i++)
    tri_stream_free(s[i]);
  rv = tri_unary_call(ch, M_ECHO, o, "y", 1, &resp, NULL);
  ck_assert_msg(rv == TRI_OK, "call after workers were freed: %s",
                tu_code(rv));
  ck_assert_mem_eq(tri_buf_data(resp), "y", 1);
  tri_buf_free(resp);
  tri_call_opts_free(o);
}
END_TEST

/* One HTTP/2 HEADERS frame (END_STREAM | END_HEADERS) opening a
 * call of M_GATHER on stream |id|, written at |p|; returns its length.
 * HPACK by hand (RFC 7541): indexed :method POST (3) and :scheme http
 * (6), literals without indexing for :path (name 4), :authority (1),
 * content-type (31) and te. */
static size_t
gather_headers(uint8_t *p, uint32_t id)
{
  static const char path[] = M_GATHER;
  uint8_t *b = p + 9;
  size_t n;

  *b++ = 0x83;
  *b++ = 0x86;
  *b++ = 0x04;
  *b++ = (uint8_t)(sizeof path - 1);
  memcpy(b, path, sizeof path - 1);
  b += sizeof path - 1;
  *b++ = 0x01;
  *b++ = 1;
  *b++ = 'x';
  *b++ = 0x0f; /* name index 31 = 15 + 16 */
  *b++ = 0x10;
  *b++ = 16;
  memcpy(b, "application/grpc", 16);
  b += 16;
  *b++ = 0x00;
  *b++ = 2;
  memcpy(b, "te", 2);
  b += 2;
  *b++ = 8;
  memcpy(b, "trailers", 8);
  b += 8;
  n = (size_t)(b - p) - 9;
  p[0] = 0;
  p[1] = 0;
  p[2] = (uint8_t)n;
  p[3] = 0x01; /* HEADERS */
  p[4] = 0x05; /* END_STREAM | END_HEADERS */
  p[5] = (uint8_t)(id >> 24);
  p[6] = (uint8_t)(id >> 16);
  p[7] = (uint8_t)(id >> 8);
  p[8] = (uint8_t)id;
  return n + 9;
}

/* Set the gathering up for |want| handlers. */
static void
gather_reset(int want)
{
  pthread_mutex_lock(&gather.mu);
  gather.here = 0;
  gather.ok = 0;
  gather.want = want;
  pthread_mutex_unlock(&gather.mu);
}

/* Wait up to |ms| until |n| handlers returned OK; returns how many did
 * and sets |*started| to how many began. */
static int
gather_wait_ok(int n, int ms, int *started)
{
  int64_t until = tu_now_ms() + ms;
  int ok;
  for (;;) {
    pthread_mutex_lock(&gather.mu);
    ok = gather.ok;
    *started = gather.here;
    pthread_mutex_unlock(&gather.mu);
    if (ok >= n || tu_now_ms() >= until)
      return ok;
    tu_sleep_ms(1);
  }
}

/*
 * Workers are woken a few at a time (lib/server.c, wake_one_locked) and
 * each one that takes a stream wakes the next; a burst of streams whose
 * handlers all block must still get one worker each.  Round 1 makes 64
 * workers through a channel (each handler waits until all 64 run at
 * once).  Round 2 writes 64 requests in one write() on a raw connection,
 * so the server reads them together and queues them for the 64 workers
 * now idle, where it starts no new thread: if the chain of wake-ups
 * broke, some handler would never run and the others would give up after
 * 10 s.  (With the chain disabled this test fails: 2 of 64 start.)  Bound:
 * each round within 200 ms + 2 s x CK_TIMEOUT_MULTIPLIER (64 wake-ups,
 * and in round 1 64 new threads, take milliseconds; the headroom is for
 * sanitizers and valgrind on two busy CPUs).
 */
START_TEST(test_burst_reaches_every_idle_worker)
{
  enum { N = 64 };
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static uint8_t out[24 + 9 + N * 128];
  tri_server_opts *so = tri_server_opts_new();
  tri_stream *s[N];
  size_t len = 0;
  int64_t t0, bound = tu_bound_ms(200, 2000);
  int i, ok, fd, started;

  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 2 * N), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(so, 2 * N),
                   TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);

  gather_reset(N);
  t0 = tu_now_ms();
  for (i = 0; i < N; i++)
    s[i] = open_stream(M_GATHER, NULL);
  for (i = 0; i < N; i++) {
    const char *msg = NULL;
    int st = tri_stream_wait_status(s[i], 15000, &msg);
    ck_assert_msg(st == TRI_OK, "round 1, stream %d: %s \"%s\"", i,
                  tu_code(st), msg ? msg : "");
  }
  ok = gather_wait_ok(N, (int)bound, &started);
  ck_assert_msg(ok == N && tu_now_ms() - t0 <= bound,
                "round 1: %d of %d handlers gathered (%d started), after "
                "%lld ms",
                ok, N, started, (long long)(tu_now_ms() - t0));
  for (i = 0; i < N; i++)
    tri_stream_free(s[i]);

  memcpy(out, preface, 24);
  len = 24;
  memset(out + len, 0, 9); /* empty SETTINGS */
  out[len + 3] = 0x04;
  len += 9;
  for (i = 0; i < N; i++)
    len += gather_headers(out + len, (uint32_t)(2 * i + 1));
  gather_reset(N);
  fd = tu_raw_connect(port);
  ck_assert_msg(fd >= 0, "raw connection refused");
  t0 = tu_now_ms();
  ck_assert_msg(write(fd, out, len) == (ssize_t)len, "raw write");
  ok = gather_wait_ok(N, (int)bound, &started);
  ck_assert_msg(ok == N,
                "round 2: %d of %d handlers ran together within %lld ms of "
                "one burst to idle workers (%d started)",
                ok, N, (long long)bound, started);
  close(fd);
}
END_TEST

static Suite *
limits_suite(void)
{
  Suite *s = suite_create("integ_limits");
  TCase *tc = tcase_create("limits");

  tcase_set_timeout(tc, 2 * TU_TCASE_TIMEOUT);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_1000_streams);
  tcase_add_test(tc, test_request_headers_too_big);
  tcase_add_test(tc, test_16mib_roundtrip);
  tcase_add_test(tc, test_over_limit_from_client);
  tcase_add_test(tc, test_over_limit_from_server);
  tcase_add_test(tc, test_over_limit_after_good_messages);
  tcase_add_test(tc, test_worker_exhaustion);
  tcase_add_test(tc, test_burst_reaches_every_idle_worker);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(limits_suite());
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
