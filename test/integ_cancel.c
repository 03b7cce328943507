/*
 * integ_cancel: cancellation, deadlines and wait timeouts over loopback.
 *
 * "Blocked" means blocked for real: the waiting thread announces itself
 * with tu_blocker_arrive() right before the call and the test confirms
 * through /proc that it sleeps (testutil.h) before cancelling.
 *
 * Timing assertions are "promise + stated headroom" (testutil.h): a
 * deadline or timeout of T ms must end in [T, T + TU_HEADROOM_MS * mult),
 * a cancel must wake a blocked thread within TU_HEADROOM_MS * mult, and
 * the cancel -> wake-up latency over 200 reps must have p50 < 2 ms and
 * p99 < 20 ms (scaled by CK_TIMEOUT_MULTIPLIER under sanitizers and
 * valgrind).  TU_WAIT_MS only bounds waits for preconditions.  Every test
 * ends with the library's budgets back at zero (teardown).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define M_HANG "/test.Hang/Bidi"
#define M_ECHO "/test.Echo/Bidi"
#define M_LATE "/test.Late/Bidi"
#define M_SINK "/test.Sink/Bidi"
#define M_NOTFOUND "/test.NotFound/Bidi"

/* ---------------------------------------------------------------- */
/* Handlers                                                          */
/* ---------------------------------------------------------------- */

static tu_hang hang;

/* Late: waits for |late_go| (posted by the test), then sends "late",
 * then echoes until EOF. */
static sem_t late_go;

static int
h_late(tri_stream *s, void *ud)
{
  (void)ud;
  if (tu_sem_wait(&late_go, 30000) != 0)
    return TRI_DATA_LOSS;
  if (tri_stream_send(s, "late", 4) != TRI_OK)
    return TRI_DATA_LOSS;
  return tu_echo_handler(s, NULL);
}

/* Sink: never reads; waits for |sink_release|, then returns. */
static sem_t sink_release;
static sem_t sink_started;

static int
h_sink(tri_stream *s, void *ud)
{
  (void)s;
  (void)ud;
  sem_post(&sink_started);
  tu_sem_wait(&sink_release, 45000);
  return TRI_OK;
}

/* NotFound: finishes at once with status 5. */
static int
h_notfound(tri_stream *s, void *ud)
{
  (void)ud;
  tri_stream_finish(s, TRI_NOT_FOUND, "no such thing");
  return TRI_NOT_FOUND;
}

/* ---------------------------------------------------------------- */

static tri_server *srv;
static tri_channel *ch;
static int port;

static void
setup_opts(const tri_server_opts *so)
{
  tu_method m[] = {
      {M_HANG, tu_hang_handler, &hang},
      {M_ECHO, tu_echo_handler, NULL},
      {M_LATE, h_late, NULL},
      {M_SINK, h_sink, NULL},
      {M_NOTFOUND, h_notfound, NULL},
  };
  tu_hang_init(&hang);
  sem_init(&late_go, 0, 0);
  sem_init(&sink_release, 0, 0);
  sem_init(&sink_started, 0, 0);
  srv = tu_server_start(m, sizeof(m) / sizeof(m[0]), so, &port);
  ck_assert_msg(srv != NULL, "server did not start");
  ch = tu_channel_new(port, NULL);
  ck_assert_msg(ch != NULL, "channel not created");
}

static void
setup(void)
{
  setup_opts(NULL);
}

static void
teardown(void)
{
  int i;
  for (i = 0; i < 16; i++) {
    sem_post(&sink_release);
    sem_post(&late_go);
  }
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
  ck_assert_ptr_nonnull(s);
  return s;
}

/* A thread blocked in tri_stream_recv(). */
struct receiver {
  tri_stream *s;
  tu_blocker blk;
  int rv;
  int64_t returned_us;
  pthread_t t;
};

static void *
receiver_main(void *p)
{
  struct receiver *r = p;
  tri_buf *m = NULL;

  tu_blocker_arrive(&r->blk);
  r->rv = tri_stream_recv(r->s, &m);
  r->returned_us = tu_now_us();
  tri_buf_free(m);
  return NULL;
}

static void
receiver_start(struct receiver *r, tri_stream *s)
{
  memset(r, 0, sizeof(*r));
  r->s = s;
  r->rv = INT32_MIN;
  tu_blocker_init(&r->blk);
  ck_assert_int_eq(tu_thread_start(&r->t, receiver_main, r), 0);
}

static void
receiver_wait_blocked(struct receiver *r, int settle_ms)
{
  int rv = tu_blocker_wait(&r->blk, TU_WAIT_MS, settle_ms);
  ck_assert_msg(rv >= 0, "receiver thread did not block in recv within %d ms",
                TU_WAIT_MS);
}

static void
receiver_join(struct receiver *r, const char *what)
{
  int rv = tu_thread_join(r->t, TU_WAIT_MS, NULL);
  ck_assert_msg(rv == 0, "%s: blocked recv did not return within %d ms", what,
                TU_WAIT_MS);
  tu_blocker_destroy(&r->blk);
}

/* "At once": the event at |t0_us| (a cancel, a free) must have ended the
 * blocking call at |ret_us| within TU_HEADROOM_MS (scaled). */
static void
assert_prompt(const char *what, int64_t t0_us, int64_t ret_us)
{
  TU_ASSERT_PROMPT(what, t0_us, ret_us);
}

/* A timeout or deadline of |promise_ms| started at |t0_us| ended at
 * |ret_us|: not before it, and within TU_HEADROOM_MS (scaled) after. */
static void
assert_expired(const char *what, int64_t promise_ms, int64_t t0_us,
               int64_t ret_us)
{
  TU_ASSERT_EXPIRED(what, promise_ms, t0_us, ret_us);
}

/* Wait until a tu_hang handler runs and sleeps in its recv. */
static void
wait_hang_blocked(void)
{
  ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                "server handler did not start within %d ms", TU_WAIT_MS);
  ck_assert_msg(tu_blocker_wait(&hang.blocked, TU_WAIT_MS, TU_SETTLE_MS) >= 0,
                "server handler did not block in recv");
}

static void
wait_hang_ended(int want1, int want2)
{
  int rc;
  ck_assert_msg(tu_sem_wait(&hang.ended, TU_WAIT_MS) == 0,
                "server handler's recv was not woken within %d ms",
                TU_WAIT_MS);
  rc = atomic_load(&hang.last_rc);
  ck_assert_msg(rc == want1 || rc == want2,
                "server handler's recv returned %s, want %s or %s",
                tu_code(rc), tu_code(want1), tu_code(want2));
}

/* ---------------------------------------------------------------- */

START_TEST(test_cancel_wakes_blocked_recv)
{
  tri_stream *s = open_stream(M_HANG, NULL);
  struct receiver r;
  const char *msg = NULL;
  int64_t t0;
  int st;

  receiver_start(&r, s);
  wait_hang_blocked();
  receiver_wait_blocked(&r, TU_SETTLE_MS);
  ck_assert_int_eq(r.rv, INT32_MIN); /* really still inside recv */

  t0 = tu_now_us();
  tri_stream_cancel(s);
  receiver_join(&r, "cancel");
  ck_assert_msg(r.rv == TRI_CANCELLED, "blocked recv returned %s",
                tu_code(r.rv));
  fprintf(stderr, "cancel -> recv return: %lld us\n",
          (long long)(r.returned_us - t0));
  assert_prompt("cancel -> blocked recv returns", t0, r.returned_us);

  /* The server handler, blocked in its own recv, sees the cancel: one
   * RST_STREAM over loopback, so promptly too. */
  wait_hang_ended(TRI_CANCELLED, TRI_CANCELLED);
  assert_prompt("cancel -> server handler's recv returns", t0,
                atomic_load(&hang.ended_us));

  st = tri_stream_wait_status(s, 1000, &msg);
  ck_assert_msg(st == TRI_CANCELLED, "wait_status: %s", tu_code(st));
  ck_assert_ptr_nonnull(msg);
  tri_stream_free(s);
}
END_TEST

/* Several threads cancel the same stream over and over. */
static void *
cancel_storm(void *p)
{
  int i;
  for (i = 0; i < 200; i++)
    tri_stream_cancel(p);
  return NULL;
}

START_TEST(test_cancel_idempotent)
{
  tri_stream *s = open_stream(M_HANG, NULL);
  struct receiver r;
  pthread_t t[4];
  tri_buf *m = NULL;
  int64_t t0;
  int i, rv;

  receiver_start(&r, s);
  wait_hang_blocked();
  receiver_wait_blocked(&r, TU_SETTLE_MS);
  t0 = tu_now_us();
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(tu_thread_start(&t[i], cancel_storm, s), 0);
  tri_stream_cancel(s);
  tri_stream_cancel(s);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(tu_thread_join(t[i], TU_WAIT_MS, NULL), 0);
  receiver_join(&r, "cancel storm");
  ck_assert_msg(r.rv == TRI_CANCELLED, "blocked recv returned %s",
                tu_code(r.rv));
  assert_prompt("cancel storm -> blocked recv returns", t0, r.returned_us);
  wait_hang_ended(TRI_CANCELLED, TRI_CANCELLED);

  /* Everything afterwards reports CANCELLED, at once (not after the 1 s
   * timeouts given). */
  t0 = tu_now_us();
  rv = tri_stream_recv_ex(s, &m, 1000);
  ck_assert_msg(rv == TRI_CANCELLED, "recv after cancel: %s", tu_code(rv));
  rv = tri_stream_recv(s, &m);
  ck_assert_msg(rv == TRI_CANCELLED, "recv after cancel: %s", tu_code(rv));
  rv = tri_stream_send_ex(s, "x", 1, 0, 1000);
  ck_assert_msg(rv == TRI_CANCELLED, "send after cancel: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_CANCELLED);
  assert_prompt("recv, send, close_send, wait_status after cancel", t0,
                tu_now_us());
  tri_stream_cancel(s);
  ck_assert_int_eq(tri_stream_wait_status(s, 0, NULL), TRI_CANCELLED);
  tri_stream_free(s);

  /* Cancelling a stream that already ended OK changes nothing. */
  s = open_stream(M_ECHO, NULL);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_EOF, "recv on echo after close_send: %s",
                tu_code(rv));
  tri_stream_cancel(s);
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_OK);
  ck_assert_int_eq(tri_stream_recv_ex(s, &m, 0), TRI_EOF);
  tri_stream_free(s);

  /* Cancel before anything was sent or received. */
  s = open_stream(M_HANG, NULL);
  tri_stream_cancel(s);
  t0 = tu_now_us();
  rv = tri_stream_recv_ex(s, &m, 5000);
  ck_assert_msg(rv == TRI_CANCELLED, "recv after early cancel: %s",
                tu_code(rv));
  assert_prompt("recv_ex(5000) after an early cancel", t0, tu_now_us());
  tri_stream_free(s);
}
END_TEST

START_TEST(test_free_wakes_blocked_recv)
{
  tri_stream *s = open_stream(M_HANG, NULL);
  struct receiver r;

  int64_t t0;

  receiver_start(&r, s);
  wait_hang_blocked();
  receiver_wait_blocked(&r, TU_SETTLE_MS);
  t0 = tu_now_us();
  tri_stream_free(s); /* the receiver still holds its own reference */
  receiver_join(&r, "tri_stream_free");
  ck_assert_msg(r.rv == TRI_CANCELLED, "recv blocked across free returned %s",
                tu_code(r.rv));
  assert_prompt("tri_stream_free -> blocked recv returns", t0, r.returned_us);
  wait_hang_ended(TRI_CANCELLED, TRI_CANCELLED);
  assert_prompt("tri_stream_free -> server handler's recv returns", t0,
                atomic_load(&hang.ended_us));
}
END_TEST

START_TEST(test_deadline)
{
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s;
  tri_buf *m = NULL;
  int64_t t0, el;
  long long rem;
  int rv;

  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 200), TRI_OK);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 0), TRI_EINVAL);
  t0 = tu_now_us();
  s = open_stream(M_HANG, o);
  tri_call_opts_free(o);
  rv = tri_stream_recv(s, &m);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED, "recv: %s after %lld us",
                tu_code(rv), (long long)(el - t0));
  assert_expired("recv on a stream with a 200 ms deadline", 200, t0, el);
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL),
                   TRI_DEADLINE_EXCEEDED);
  ck_assert_int_eq(tri_stream_send_ex(s, "x", 1, 0, 1000),
                   TRI_DEADLINE_EXCEEDED);
  /* The handler may have been started (it gets the deadline from
   * grpc-timeout) and is woken either by its own timer or by our RST. */
  ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                "handler never started");
  wait_hang_ended(TRI_DEADLINE_EXCEEDED, TRI_CANCELLED);
  /* grpc-timeout carries what is left of the 200 ms: the handler can never
   * see more; it may see 0 when it started late. */
  rem = atomic_load(&hang.remaining_ms);
  ck_assert_msg(rem >= 0 && rem <= 200,
                "server-side remaining_ms %lld for a 200 ms deadline", rem);
  tri_stream_free(s);

  /* A deadline that expires while another thread is blocked in recv. */
  o = tri_call_opts_new();
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 300), TRI_OK);
  t0 = tu_now_us();
  s = open_stream(M_HANG, o);
  tri_call_opts_free(o);
  {
    struct receiver r;
    receiver_start(&r, s);
    ck_assert_int_eq(tu_thread_join(r.t, TU_WAIT_MS, NULL), 0);
    tu_blocker_destroy(&r.blk);
    ck_assert_msg(r.rv == TRI_DEADLINE_EXCEEDED, "threaded recv: %s",
                  tu_code(r.rv));
    assert_expired("recv in another thread, 300 ms deadline", 300, t0,
                   r.returned_us);
  }
  tri_stream_free(s);

  /* Unary with a deadline on a handler that never answers (the hang
   * handler would see end of input and finish; the sink never reads). */
  o = tri_call_opts_new();
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 200), TRI_OK);
  t0 = tu_now_us();
  rv = tri_unary_call(ch, M_SINK, o, "x", 1, &m, NULL);
  el = tu_now_us();
  tri_call_opts_free(o);
  ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED, "unary: %s", tu_code(rv));
  assert_expired("unary call, 200 ms deadline", 200, t0, el);
}
END_TEST

START_TEST(test_recv_timeout_keeps_stream)
{
  tri_stream *s = open_stream(M_LATE, NULL);
  tri_buf *m = NULL;
  int64_t t0, el;
  int rv;

  t0 = tu_now_us();
  rv = tri_stream_recv_ex(s, &m, 0);
  ck_assert_msg(rv == TRI_ETIMEDOUT, "poll recv: %s", tu_code(rv));
  assert_prompt("recv_ex(timeout 0)", t0, tu_now_us());
  t0 = tu_now_us();
  rv = tri_stream_recv_ex(s, &m, 100);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_ETIMEDOUT, "recv_ex(100): %s", tu_code(rv));
  ck_assert_ptr_null(m);
  assert_expired("recv_ex(100)", 100, t0, el);
  {
    uint8_t b[4];
    size_t len;
    t0 = tu_now_us();
    rv = tri_stream_recv_into(s, b, sizeof(b), &len, 50);
    ck_assert_msg(rv == TRI_ETIMEDOUT, "recv_into(50): %s", tu_code(rv));
    assert_expired("recv_into(50)", 50, t0, tu_now_us());
  }

  /* The stream still works: the server now sends. */
  sem_post(&late_go);
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv after timeout: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), 4);
  ck_assert_mem_eq(tri_buf_data(m), "late", 4);
  tri_buf_free(m);
  /* ... both ways. */
  ck_assert_int_eq(tri_stream_send(s, "ping", 4), TRI_OK);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "echo: %s", tu_code(rv));
  ck_assert_mem_eq(tri_buf_data(m), "ping", 4);
  tri_buf_free(m);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_EOF, "end: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 5000, NULL), TRI_OK);
  tri_stream_free(s);

  /* wait_status and headers with a timeout on a live stream whose
   * handler neither sends nor receives (a waiting recv would send the
   * response headers). */
  s = open_stream(M_SINK, NULL);
  t0 = tu_now_us();
  ck_assert_int_eq(tri_stream_wait_status(s, 100, NULL), TRI_ETIMEDOUT);
  assert_expired("wait_status(100)", 100, t0, tu_now_us());
  t0 = tu_now_us();
  ck_assert_ptr_null(tri_stream_headers(s, 100));
  assert_expired("headers(100)", 100, t0, tu_now_us());
  tri_stream_cancel(s);
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_CANCELLED);
  tri_stream_free(s);
}
END_TEST

/* Sender thread for the full-buffer test: 64 KiB messages with a 200 ms
 * send timeout until one times out. */
struct sender {
  tri_stream *s;
  atomic_int n_ok;
  int last_rv;
  int64_t last_call_us;  /* how long the last send call took */
  int64_t returned_us;   /* tu_now_us() when the last send returned */
};

static void *
sender_main(void *p)
{
  struct sender *sd = p;
  uint8_t *buf = malloc(65536);
  int i;

  if (buf == NULL) {
    sd->last_rv = TRI_ENOMEM;
    return NULL;
  }
  memset(buf, 0x5a, 65536);
  sd->last_rv = INT32_MIN;
  for (i = 0; i < 4096; i++) { /* 256 MiB at most */
    int64_t t0 = tu_now_us();
    int rv = tri_stream_send_ex(sd->s, buf, 65536, 0, 200);
    sd->returned_us = tu_now_us();
    sd->last_call_us = sd->returned_us - t0;
    sd->last_rv = rv;
    if (rv != TRI_OK)
      break;
    sd->n_ok++;
  }
  free(buf);
  return NULL;
}

START_TEST(test_send_timeout_full_buffer)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_stream *s;
  struct sender sd;
  pthread_t t;
  int rv;

  /* Replace the default fixture's server by one with a tiny receive
   * queue, so the never-reading handler stops granting window soon. */
  teardown();
  ck_assert_int_eq(tri_server_opts_set_recv_queue(so, 1024), TRI_OK);
  setup_opts(so);
  tri_server_opts_free(so);

  s = open_stream(M_SINK, NULL);
  memset(&sd, 0, sizeof(sd));
  sd.s = s;
  ck_assert_int_eq(tu_thread_start(&t, sender_main, &sd), 0);
  rv = tu_thread_join(t, 30000, NULL);
  if (rv != 0) {
    tri_stream_cancel(s);
    ck_assert_int_eq(tu_thread_join(t, TU_WAIT_MS, NULL), 0);
    ck_abort_msg("send_ex(64 KiB, timeout 200 ms) blocked past 30 s after "
                 "%d messages; cancel then made it return %s",
                 atomic_load(&sd.n_ok), tu_code(sd.last_rv));
  }
  ck_assert_msg(sem_trywait(&sink_started) == 0, "sink handler never ran");
  ck_assert_msg(sd.last_rv == TRI_ETIMEDOUT,
                "after %d x 64 KiB: send_ex returned %s (want TRI_ETIMEDOUT)",
                atomic_load(&sd.n_ok), tu_code(sd.last_rv));
  assert_expired("send_ex(64 KiB, timeout 200) on a full buffer", 200,
                 sd.returned_us - sd.last_call_us, sd.returned_us);
  fprintf(stderr, "send_ex timed out after %d x 64 KiB accepted\n",
          atomic_load(&sd.n_ok));

  /* Still usable: a zero-wait send times out again, the stream is alive. */
  {
    uint8_t b[65536];
    int64_t t0;
    memset(b, 0, sizeof(b));
    t0 = tu_now_us();
    rv = tri_stream_send_ex(s, b, sizeof(b), 0, 0);
    ck_assert_msg(rv == TRI_ETIMEDOUT, "send_ex(timeout 0): %s", tu_code(rv));
    assert_prompt("send_ex(timeout 0) on a full buffer", t0, tu_now_us());
    ck_assert_int_eq(tri_stream_wait_status(s, 0, NULL), TRI_ETIMEDOUT);
  }
  tri_stream_cancel(s);
  rv = tri_stream_send_ex(s, "x", 1, 0, 1000);
  ck_assert_msg(rv == TRI_CANCELLED, "send after cancel: %s", tu_code(rv));
  tri_stream_free(s);
}
END_TEST

/* A blocked sender (no timeout) is woken by cancel too. */
static void *
blocking_sender(void *p)
{
  struct sender *sd = p;
  static uint8_t buf[65536];
  int i;

  sd->last_rv = INT32_MIN;
  for (i = 0; i < 4096; i++) {
    int rv = tri_stream_send(sd->s, buf, sizeof(buf));
    sd->returned_us = tu_now_us();
    sd->last_rv = rv;
    if (rv != TRI_OK)
      break;
    sd->n_ok++;
  }
  return NULL;
}

START_TEST(test_cancel_wakes_blocked_send)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_stream *s;
  struct sender sd;
  pthread_t t;
  int64_t t0;
  int i, prev = -1;

  teardown();
  ck_assert_int_eq(tri_server_opts_set_recv_queue(so, 1024), TRI_OK);
  setup_opts(so);
  tri_server_opts_free(so);

  s = open_stream(M_SINK, NULL);
  memset(&sd, 0, sizeof(sd));
  sd.s = s;
  ck_assert_int_eq(tu_thread_start(&t, blocking_sender, &sd), 0);
  /* Wait until the sender stops making progress (blocked on a full
   * buffer): the count is unchanged for 300 ms.  Bounded at 20 s. */
  for (i = 0; i < 200; i++) {
    int n = atomic_load(&sd.n_ok);
    if (n == prev)
      break;
    prev = n;
    tu_sleep_ms(300);
  }
  ck_assert_msg(i < 200, "sender never blocked");
  t0 = tu_now_us();
  tri_stream_cancel(s);
  ck_assert_msg(tu_thread_join(t, TU_WAIT_MS, NULL) == 0,
                "blocked send not woken by cancel within %d ms", TU_WAIT_MS);
  ck_assert_msg(sd.last_rv == TRI_CANCELLED, "blocked send returned %s",
                tu_code(sd.last_rv));
  assert_prompt("cancel -> blocked send returns", t0, sd.returned_us);
  tri_stream_free(s);
}
END_TEST

START_TEST(test_send_after_server_status)
{
  tri_stream *s = open_stream(M_NOTFOUND, NULL);
  const char *msg = NULL;
  tri_buf *m = NULL;
  int64_t t0, el;
  int rv;

  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_NOT_FOUND, "recv: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, &msg), TRI_NOT_FOUND);
  ck_assert_str_eq(msg, "no such thing");
  t0 = tu_now_us();
  rv = tri_stream_send(s, "x", 1);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_NOT_FOUND, "send after status 5: %s", tu_code(rv));
  assert_prompt("send after the final status", t0, el);
  tri_stream_free(s);

  /* Without a recv first: wait for the status, then send. */
  s = open_stream(M_NOTFOUND, NULL);
  rv = tri_stream_wait_status(s, 10000, &msg);
  ck_assert_msg(rv == TRI_NOT_FOUND, "wait_status: %s", tu_code(rv));
  rv = tri_stream_send(s, "x", 1);
  ck_assert_msg(rv == TRI_NOT_FOUND, "send after wait_status: %s",
                tu_code(rv));
  rv = tri_stream_recv_ex(s, &m, 1000);
  ck_assert_msg(rv == TRI_NOT_FOUND, "recv after wait_status: %s",
                tu_code(rv));
  tri_stream_free(s);
}
END_TEST

START_TEST(test_connect_refused)
{
  int p = tu_unused_port();
  tri_channel *c;
  tri_stream *s = NULL;
  tri_buf *m = NULL;
  int64_t t0, el;
  int rv;

  ck_assert_int_gt(p, 0);
  c = tu_channel_new(p, NULL);
  ck_assert_ptr_nonnull(c);
  t0 = tu_now_us();
  rv = tri_unary_call(c, M_ECHO, NULL, "x", 1, &m, NULL);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_UNAVAILABLE, "unary to closed port: %s",
                tu_code(rv));
  /* The kernel refuses a loopback connect at once (RST). */
  assert_prompt("unary call to a port where nothing listens", t0, el);

  ck_assert_int_eq(tri_stream_open(c, M_ECHO, NULL, &s), TRI_OK);
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_UNAVAILABLE, "recv on refused channel: %s",
                tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_UNAVAILABLE);
  tri_stream_free(s);
  tri_channel_free(c);
}
END_TEST

START_TEST(test_connect_silent_listener)
{
  tri_call_opts *o = tri_call_opts_new();
  tri_channel *c;
  tri_buf *m = NULL;
  int64_t t0, el;
  int lp, lfd, rv;

  lfd = tu_silent_listener(&lp);
  ck_assert_int_ge(lfd, 0);
  c = tu_channel_new(lp, NULL);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 300), TRI_OK);
  t0 = tu_now_us();
  rv = tri_unary_call(c, M_ECHO, o, "x", 1, &m, NULL);
  el = tu_now_us();
  ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED,
                "unary to a silent listener: %s after %lld us", tu_code(rv),
                (long long)(el - t0));
  assert_expired("unary to a silent listener, 300 ms deadline", 300, t0, el);

  /* Same with a stream and a thread blocked in recv. */
  {
    tri_stream *s = NULL;
    t0 = tu_now_us();
    ck_assert_int_eq(tri_stream_open(c, M_ECHO, o, &s), TRI_OK);
    rv = tri_stream_recv_ex(s, &m, 10000);
    ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED, "stream recv: %s",
                  tu_code(rv));
    assert_expired("stream to a silent listener, 300 ms deadline", 300, t0,
                   tu_now_us());
    tri_stream_free(s);
  }
  tri_call_opts_free(o);
  t0 = tu_now_us();
  tri_channel_free(c);
  el = tu_now_us();
  /* Nothing is in flight: it only stops and joins the I/O thread. */
  assert_prompt("tri_channel_free of a channel stuck in its handshake", t0,
                el);
  close(lfd);
}
END_TEST

/* Connect timeout of the channel bounds calls without a deadline. */
START_TEST(test_connect_timeout_option)
{
  tri_channel_opts *co = tri_channel_opts_new();
  tri_call_opts *o;
  tri_channel *c;
  tri_buf *m = NULL;
  int64_t t0, el;
  int lp, lfd, rv;

  lfd = tu_silent_listener(&lp);
  ck_assert_int_ge(lfd, 0);
  ck_assert_int_eq(tri_channel_opts_set_connect_timeout_ms(co, 0), TRI_EINVAL);
  ck_assert_int_eq(tri_channel_opts_set_connect_timeout_ms(co, 300), TRI_OK);
  c = tu_channel_new(lp, co);
  tri_channel_opts_free(co);
  ck_assert_ptr_nonnull(c);
  /* The call's own deadline (8 s) only bounds the test; the 300 ms connect
   * timeout must fire first.  TCP connects at once (backlog), so this
   * checks that the connect timeout covers the HTTP/2 handshake (no
   * SETTINGS from the peer) and not only connect(2). */
  o = tri_call_opts_new();
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 8000), TRI_OK);
  t0 = tu_now_us();
  rv = tri_unary_call(c, M_ECHO, o, "x", 1, &m, NULL);
  el = tu_now_us();
  tri_call_opts_free(o);
  ck_assert_msg(rv == TRI_UNAVAILABLE,
                "300 ms connect timeout, silent peer: %s after %lld us "
                "(want TRI_UNAVAILABLE from the connect timeout)",
                tu_code(rv), (long long)(el - t0));
  assert_expired("connect timeout 300 ms, silent peer", 300, t0, el);
  tri_channel_free(c);
  close(lfd);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Measurement: cancel -> blocked recv returns, over many reps.      */
/* ---------------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(test_measure_cancel_latency)
{
  enum { REPS = 200 };
  int64_t *lat = calloc(REPS, sizeof(*lat));
  int i, n = 0;

  ck_assert_ptr_nonnull(lat);
  for (i = 0; i < REPS; i++) {
    tri_stream *s = open_stream(M_HANG, NULL);
    struct receiver r;
    int64_t t0;

    receiver_start(&r, s);
    /* Server handler started and blocked too, then the client receiver;
     * a short settle keeps 200 reps quick. */
    ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                  "rep %d: handler did not start", i);
    ck_assert_msg(tu_blocker_wait(&hang.blocked, TU_WAIT_MS, 0) >= 0,
                  "rep %d: handler did not block", i);
    ck_assert_msg(tu_blocker_wait(&r.blk, TU_WAIT_MS, 2) >= 0,
                  "rep %d: receiver did not block", i);
    t0 = tu_now_us();
    tri_stream_cancel(s);
    ck_assert_msg(tu_thread_join(r.t, TU_WAIT_MS, NULL) == 0,
                  "rep %d: recv not woken within %d ms", i, TU_WAIT_MS);
    tu_blocker_destroy(&r.blk);
    ck_assert_msg(r.rv == TRI_CANCELLED, "rep %d: recv returned %s", i,
                  tu_code(r.rv));
    lat[n++] = r.returned_us - t0;
    ck_assert_msg(tu_sem_wait(&hang.ended, TU_WAIT_MS) == 0,
                  "rep %d: handler not woken", i);
    ck_assert_msg(atomic_load(&hang.last_rc) == TRI_CANCELLED,
                  "rep %d: handler recv returned %s", i,
                  tu_code(atomic_load(&hang.last_rc)));
    tri_stream_free(s);
  }
  qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
  fprintf(stderr,
          "measure: cancel_wake_us p50=%lld p99=%lld max=%lld n=%d\n",
          (long long)lat[n / 2], (long long)lat[(n * 99) / 100],
          (long long)lat[n - 1], n);
  {
    /* Promise: a cancel wakes a thread blocked in recv at once (one
     * condition-variable broadcast).  Measured on a loaded 2-core VM:
     * p50 30-200 us, p99 120 us-1 ms.  Bounds: p50 < 2 ms (10x headroom
     * over the worst p50 seen), p99 < 20 ms (20x; two reps in 200 may
     * meet a VM hiccup); both x CK_TIMEOUT_MULTIPLIER under sanitizers and
     * valgrind.  A library that polls its cancel flag instead of waking
     * the waiter (even every 5 ms) fails the p50 bound. */
    int64_t p50 = lat[n / 2], p99 = lat[(n * 99) / 100];
    int64_t b50 = (int64_t)(2000 * tu_mult()), b99 = (int64_t)(20000 * tu_mult());
    ck_assert_msg(p50 < b50, "cancel -> wake-up p50 %lld us, bound %lld us",
                  (long long)p50, (long long)b50);
    ck_assert_msg(p99 < b99, "cancel -> wake-up p99 %lld us, bound %lld us",
                  (long long)p99, (long long)b99);
  }
  free(lat);
}
END_TEST

static Suite *
cancel_suite(void)
{
  Suite *s = suite_create("integ_cancel");
  TCase *tc = tcase_create("cancel");

  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_cancel_wakes_blocked_recv);
  tcase_add_test(tc, test_cancel_idempotent);
  tcase_add_test(tc, test_free_wakes_blocked_recv);
  tcase_add_test(tc, test_deadline);
  tcase_add_test(tc, test_recv_timeout_keeps_stream);
  tcase_add_test(tc, test_send_timeout_full_buffer);
  tcase_add_test(tc, test_cancel_wakes_blocked_send);
  tcase_add_test(tc, test_send_after_server_status);
  tcase_add_test(tc, test_connect_refused);
  tcase_add_test(tc, test_connect_silent_listener);
  tcase_add_test(tc, test_connect_timeout_option);
  tcase_add_test(tc, test_measure_cancel_latency);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(cancel_suite());
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
