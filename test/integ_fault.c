/*
 * integ_fault: the peer dies, misbehaves or shuts down under us.
 *
 *  - server process killed (SIGKILL) while client threads are blocked in
 *    recv: all of them return TRI_UNAVAILABLE;
 *  - garbage on a raw connection: the server closes that connection and
 *    keeps serving others;
 *  - graceful server shutdown with a handler blocked in recv, and
 *    tri_stream_server_draining() during the drain;
 *  - tri_channel_free() while threads are blocked on its streams.
 *
 * Timing assertions are "promise + stated headroom" (testutil.h,
 * TU_ASSERT_*): the library's reactions to a dead peer, garbage, a
 * shutdown or a channel free are due at once (TU_HEADROOM_MS x mult), a
 * drain of D ms ends in [D, D + headroom).  Every test ends with the
 * library's budgets back at zero.
 *
 * The process test forks before any thread exists in the test process
 * (Check runs each test in its own forked child, and that tcase has no
 * fixture); under CK_FORK=no it is the first test of the suite for the
 * same reason.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define M_HANG "/test.Hang/Bidi"
#define M_ECHO "/test.Echo/Bidi"
#define M_POLL "/test.Drain/Poll"

/* ---------------------------------------------------------------- */
/* Helpers                                                           */
/* ---------------------------------------------------------------- */

struct receiver {
  tri_stream *s;
  tu_blocker blk;
  int rv;
  int64_t returned_us; /* when the recv that ended the loop returned */
  pthread_t t;
};

static void *
receiver_main(void *p)
{
  struct receiver *r = p;
  tri_buf *m = NULL;
  int i;

  tu_blocker_arrive(&r->blk);
  for (i = 0; i < 1000; i++) { /* drop anything that arrives */
    r->rv = tri_stream_recv(r->s, &m);
    r->returned_us = tu_now_us();
    if (r->rv != TRI_OK)
      break;
    tri_buf_free(m);
    m = NULL;
  }
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
receiver_join(struct receiver *r, int idx, const char *what)
{
  int rv = tu_thread_join(r->t, TU_WAIT_MS, NULL);
  ck_assert_msg(rv == 0, "%s: receiver %d still blocked after %d ms", what,
                idx, TU_WAIT_MS);
  tu_blocker_destroy(&r->blk);
}

static tri_stream *
open_on(tri_channel *c, const char *method, const tri_call_opts *o)
{
  tri_stream *s = NULL;
  int rv = tri_stream_open(c, method, o, &s);
  ck_assert_msg(rv == TRI_OK, "tri_stream_open(%s): %s", method, tu_code(rv));
  return s;
}

static void
unary_ok(tri_channel *c, const char *what)
{
  tri_buf *resp = NULL;
  tri_call_opts *o = tri_call_opts_new();
  int rv;

  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
  rv = tri_unary_call(c, M_ECHO, o, what, strlen(what), &resp, NULL);
  tri_call_opts_free(o);
  ck_assert_msg(rv == TRI_OK, "unary (%s): %s", what, tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(resp), strlen(what));
  ck_assert_mem_eq(tri_buf_data(resp), what, strlen(what));
  tri_buf_free(resp);
}

/* ---------------------------------------------------------------- */
/* Server process killed mid-stream                                  */
/* ---------------------------------------------------------------- */

enum { KILL_STREAMS = 4 };

static int child_evt_fd = -1;

/* Child handler: tell the parent it runs, then block in recv. */
static int
h_child_hang(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  char c = 'h';
  int i, rv = TRI_OK;

  (void)ud;
  if (write(child_evt_fd, &c, 1) != 1)
    return TRI_INTERNAL;
  for (i = 0; i < 1000; i++) {
    rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    tri_buf_free(m);
  }
  return rv >= 0 ? rv : TRI_OK;
}

static void
child_server(int port_fd, int evt_fd)
{
  tu_method m[] = {{M_HANG, h_child_hang, NULL},
                   {M_ECHO, tu_echo_handler, NULL}};
  tri_server *srv;
  int port = -1, i;

  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
  child_evt_fd = evt_fd;
  srv = tu_server_start(m, 2, NULL, &port);
  if (srv == NULL)
    port = -1;
  if (write(port_fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
    _exit(2);
  if (srv == NULL)
    _exit(1);
  for (i = 0; i < 1200; i++) /* killed long before 120 s */
    tu_sleep_ms(100);
  _exit(3);
}

/* Read |len| bytes within |timeout_ms|; returns how many arrived. */
static size_t
read_full(int fd, void *buf, size_t len, int timeout_ms)
{
  int64_t end = tu_now_ms() + timeout_ms;
  size_t got = 0;

  while (got < len) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int64_t left = end - tu_now_ms();
    ssize_t n;
    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
      break;
    n = read(fd, (char *)buf + got, len - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  return got;
}

START_TEST(test_server_process_killed)
{
  int port_pipe[2], evt_pipe[2];
  struct receiver r[KILL_STREAMS];
  tri_stream *s[KILL_STREAMS];
  tri_channel *c;
  char evts[KILL_STREAMS];
  size_t n_evt;
  int port = -1, i, status = 0;
  pid_t pid;
  int64_t t0;

  /* Fork first: no thread exists in this process yet. */
  ck_assert_int_eq(pipe(port_pipe), 0);
  ck_assert_int_eq(pipe(evt_pipe), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(port_pipe[0]);
    close(evt_pipe[0]);
    child_server(port_pipe[1], evt_pipe[1]);
  }
  close(port_pipe[1]);
  close(evt_pipe[1]);
  if (read_full(port_pipe[0], &port, sizeof(port), 10000) != sizeof(port) ||
      port <= 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("child server did not report a port (got %d)", port);
  }

  c = tu_channel_new(port, NULL);
  ck_assert_ptr_nonnull(c);
  unary_ok(c, "before kill");

  for (i = 0; i < KILL_STREAMS; i++) {
    s[i] = open_on(c, M_HANG, NULL);
    receiver_start(&r[i], s[i]);
  }
  /* All handlers run in the child... */
  n_evt = read_full(evt_pipe[0], evts, KILL_STREAMS, TU_WAIT_MS);
  if (n_evt != KILL_STREAMS) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("only %zu of %d child handlers started within %d ms",
                 n_evt, KILL_STREAMS, TU_WAIT_MS);
  }
  /* ... and all our receivers sleep in recv. */
  for (i = 0; i < KILL_STREAMS; i++)
    ck_assert_msg(tu_blocker_wait(&r[i].blk, TU_WAIT_MS, TU_SETTLE_MS) >= 0,
                  "receiver %d did not block", i);

  t0 = tu_now_us();
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  for (i = 0; i < KILL_STREAMS; i++) {
    receiver_join(&r[i], i, "server killed");
    ck_assert_msg(r[i].rv == TRI_UNAVAILABLE,
                  "receiver %d: recv returned %s after the server died", i,
                  tu_code(r[i].rv));
    /* The kernel closes the dead server's sockets: EOF at once. */
    TU_ASSERT_PROMPT("server killed -> blocked recv returns", t0,
                     r[i].returned_us);
  }
  fprintf(stderr, "server killed: all %d receivers woke within %lld us\n",
          KILL_STREAMS, (long long)(tu_now_us() - t0));
  for (i = 0; i < KILL_STREAMS; i++) {
    int st = tri_stream_wait_status(s[i], 1000, NULL);
    ck_assert_msg(st == TRI_UNAVAILABLE, "stream %d status %s", i,
                  tu_code(st));
    ck_assert_int_eq(tri_stream_send_ex(s[i], "x", 1, 0, 1000),
                     TRI_UNAVAILABLE);
    tri_stream_free(s[i]);
  }

  /* New calls fail UNAVAILABLE (nothing listens any more), promptly. */
  {
    tri_buf *resp = NULL;
    tri_call_opts *o = tri_call_opts_new();
    int rv;
    ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 30000), TRI_OK);
    t0 = tu_now_us();
    rv = tri_unary_call(c, M_ECHO, o, "x", 1, &resp, NULL);
    tri_call_opts_free(o);
    ck_assert_msg(rv == TRI_UNAVAILABLE, "unary after the server died: %s",
                  tu_code(rv));
    /* A loopback connect to a closed port is refused at once. */
    TU_ASSERT_PROMPT("unary call after the server died", t0, tu_now_us());
  }
  tri_channel_free(c);
  close(port_pipe[0]);
  close(evt_pipe[0]);
  ck_assert_msg(tu_budgets_settle(2000) == 0,
                "library budgets not back to zero after the test");
}
END_TEST

/* ---------------------------------------------------------------- */
/* In-process server fixture                                         */
/* ---------------------------------------------------------------- */

static tri_server *srv;
static tri_channel *ch;
static int port;
static tu_hang hang;

/* Poll: report whether draining at start; then wait (<= 10 s) for the
 * server to start draining, send "draining" and finish OK. */
static atomic_int poll_draining_at_start = -1;
static sem_t poll_started;

static int
h_poll(tri_stream *s, void *ud)
{
  int i;

  (void)ud;
  atomic_store(&poll_draining_at_start, tri_stream_server_draining(s));
  sem_post(&poll_started);
  for (i = 0; i < 2000; i++) {
    if (tri_stream_server_draining(s)) {
      int rv = tri_stream_send(s, "draining", 8);
      return rv == TRI_OK ? TRI_OK : TRI_DATA_LOSS;
    }
    tu_sleep_ms(5);
  }
  tri_stream_finish(s, TRI_DATA_LOSS, "never saw draining");
  return TRI_DATA_LOSS;
}

static void
setup(void)
{
  tu_method m[] = {
      {M_HANG, tu_hang_handler, &hang},
      {M_ECHO, tu_echo_handler, NULL},
      {M_POLL, h_poll, NULL},
  };
  tu_hang_init(&hang);
  sem_init(&poll_started, 0, 0);
  srv = tu_server_start(m, sizeof(m) / sizeof(m[0]), NULL, &port);
  ck_assert_msg(srv != NULL, "server did not start");
  ch = tu_channel_new(port, NULL);
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

/* Send |len| bytes on a raw connection, then expect the server to close
 * it at once (TU_HEADROOM_MS x mult after the last byte went out: the
 * first bad frame or preface byte is enough).  Send errors (the server may
 * close early) are fine. */
static void
garbage_closes(const void *bytes, size_t len, const char *what)
{
  int fd = tu_raw_connect(port);
  size_t off = 0;
  int64_t t0;

  ck_assert_msg(fd >= 0, "%s: raw connect failed: %s", what, strerror(errno));
  while (off < len) {
    ssize_t n = send(fd, (const char *)bytes + off, len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  t0 = tu_now_us();
  ck_assert_msg(tu_wait_peer_close(fd, TU_WAIT_MS) == 0,
                "%s: server did not close the connection within %d ms",
                what, TU_WAIT_MS);
  TU_ASSERT_PROMPT(what, t0, tu_now_us());
  close(fd);
}

START_TEST(test_garbage_bytes)
{
  static const char http1[] = "GET / HTTP/1.1\r\n\r\n";
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  uint8_t junk[1000], framed[sizeof(preface) - 1 + 1000];
  tri_channel *other;

  unary_ok(ch, "before garbage");
  garbage_closes(http1, sizeof(http1) - 1, "HTTP/1.1 request");
  unary_ok(ch, "after HTTP/1.1 garbage");

  tu_fill(junk, sizeof(junk), 12345);
  garbage_closes(junk, sizeof(junk), "1000 random bytes");
  unary_ok(ch, "after random garbage");

  /* A valid preface followed by junk: a 4-byte DATA frame on stream 0
   * where SETTINGS must come, then random bytes. */
  memcpy(framed, preface, sizeof(preface) - 1);
  tu_fill(framed + sizeof(preface) - 1, 1000, 777);
  memcpy(framed + sizeof(preface) - 1, "\x00\x00\x04\x00\x00\x00\x00\x00\x00",
         9);
  garbage_closes(framed, sizeof(framed), "preface + bad frames");

  unary_ok(ch, "after bad frames");
  /* And a brand-new connection works too. */
  other = tu_channel_new(port, NULL);
  ck_assert_ptr_nonnull(other);
  unary_ok(other, "new channel after garbage");
  tri_channel_free(other);
}
END_TEST

START_TEST(test_graceful_shutdown_cancels_blocked)
{
  tri_stream *s = open_on(ch, M_HANG, NULL);
  struct receiver r;
  int64_t t0, el;
  int rc, st;

  receiver_start(&r, s);
  ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                "handler did not start");
  ck_assert_msg(tu_blocker_wait(&hang.blocked, TU_WAIT_MS, TU_SETTLE_MS) >= 0,
                "handler did not block in recv");
  ck_assert_msg(tu_blocker_wait(&r.blk, TU_WAIT_MS, TU_SETTLE_MS) >= 0,
                "client receiver did not block in recv");

  t0 = tu_now_us();
  tri_server_shutdown(srv, 500);
  el = tu_now_us();
  /* The handler never ends by itself: shutdown waits the whole 500 ms
   * drain, then cancels it and returns. */
  TU_ASSERT_EXPIRED("tri_server_shutdown(500) with a handler blocked in recv",
                    500, t0, el);
  /* shutdown waits for every handler to return. */
  ck_assert_msg(atomic_load(&hang.n_ended) == 1,
                "handler had not returned when shutdown returned");
  rc = atomic_load(&hang.last_rc);
  /* Issue 11: calls a graceful shutdown cuts off end UNAVAILABLE ("server
   * going away", what gRPC clients retry on) on both sides. */
  ck_assert_msg(rc == TRI_UNAVAILABLE, "handler recv returned %s",
                tu_code(rc));
  ck_assert_msg(atomic_load(&hang.draining) != 0,
                "tri_stream_server_draining() was 0 during shutdown");

  receiver_join(&r, 0, "server shutdown");
  ck_assert_msg(r.rv == TRI_UNAVAILABLE,
                "client recv after server shutdown returned %s",
                tu_code(r.rv));
  /* The client's stream ends with the server's cancel (RST_STREAM or the
   * connection closing), at the end of the drain. */
  TU_ASSERT_EXPIRED("server shutdown(500) -> client's blocked recv returns",
                    500, t0, r.returned_us);
  st = tri_stream_wait_status(s, 1000, NULL);
  {
    const char *m = NULL;
    st = tri_stream_wait_status(s, 1000, &m);
    ck_assert_msg(st == TRI_UNAVAILABLE && m && strcmp(m, "server shutting down") == 0,
                  "client status after server shutdown %s \"%s\"", tu_code(st), m ? m : "");
  }
  tri_stream_free(s);

  /* Idempotent (nothing left to drain: at once), and no new calls are
   * served. */
  t0 = tu_now_us();
  tri_server_shutdown(srv, 500);
  TU_ASSERT_PROMPT("second tri_server_shutdown(500)", t0, tu_now_us());
  {
    tri_buf *resp = NULL;
    tri_call_opts *o = tri_call_opts_new();
    int rv;
    ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
    rv = tri_unary_call(ch, M_ECHO, o, "x", 1, &resp, NULL);
    tri_call_opts_free(o);
    ck_assert_msg(rv == TRI_UNAVAILABLE, "unary after shutdown: %s",
                  tu_code(rv));
  }
}
END_TEST

static void *
shutdown_main(void *p)
{
  tri_server_shutdown(p, 5000);
  return NULL;
}

START_TEST(test_draining_flag)
{
  tri_stream *s = open_on(ch, M_POLL, NULL);
  tri_buf *m = NULL;
  pthread_t t;
  int64_t t0, t_answer;
  int rv;

  ck_assert_msg(tu_sem_wait(&poll_started, TU_WAIT_MS) == 0,
                "poll handler did not start");
  ck_assert_int_eq(atomic_load(&poll_draining_at_start), 0);
  t0 = tu_now_us();
  ck_assert_int_eq(tu_thread_start(&t, shutdown_main, srv), 0);
  /* The handler notices the drain and answers, within the drain time. */
  rv = tri_stream_recv_ex(s, &m, 10000);
  t_answer = tu_now_us();
  ck_assert_msg(rv == TRI_OK, "recv during drain: %s", tu_code(rv));
  /* The flag is set when shutdown starts; the handler polls it every
   * 5 ms: at once, not at the end of the 5 s drain. */
  TU_ASSERT_PROMPT("shutdown(5000) -> handler sees draining and answers", t0,
                   t_answer);
  ck_assert_uint_eq(tri_buf_len(m), 8);
  ck_assert_mem_eq(tri_buf_data(m), "draining", 8);
  tri_buf_free(m);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_EOF, "end of a call finished during drain: %s",
                tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_OK);
  tri_stream_free(s);
  ck_assert_msg(tu_thread_join(t, 10000, NULL) == 0,
                "shutdown(5000) did not return within 10 s");
  fprintf(stderr, "shutdown with a drained call took %lld us\n",
          (long long)(tu_now_us() - t0));
  /* Its only call finished: shutdown must not wait out the 5 s drain. */
  TU_ASSERT_PROMPT("shutdown(5000) once its only call finished", t0,
                   tu_now_us());
}
END_TEST

START_TEST(test_channel_free_wakes_blocked)
{
  enum { N = 3 };
  struct receiver r[N];
  tri_stream *s[N];
  tri_channel *c = tu_channel_new(port, NULL);
  int64_t t0, el;
  int i;

  ck_assert_ptr_nonnull(c);
  for (i = 0; i < N; i++) {
    s[i] = open_on(c, M_HANG, NULL);
    receiver_start(&r[i], s[i]);
    ck_assert_msg(tu_sem_wait(&hang.started, TU_WAIT_MS) == 0,
                  "handler %d did not start", i);
  }
  for (i = 0; i < N; i++)
    ck_assert_msg(tu_blocker_wait(&r[i].blk, TU_WAIT_MS, TU_SETTLE_MS) >= 0,
                  "receiver %d did not block", i);

  t0 = tu_now_us();
  tri_channel_free(c);
  el = tu_now_us();
  /* It cancels the streams and joins the I/O thread: at once. */
  TU_ASSERT_PROMPT("tri_channel_free with 3 blocked receivers", t0, el);
  for (i = 0; i < N; i++) {
    receiver_join(&r[i], i, "tri_channel_free");
    ck_assert_msg(r[i].rv == TRI_CANCELLED,
                  "receiver %d: recv returned %s after channel free", i,
                  tu_code(r[i].rv));
    TU_ASSERT_PROMPT("tri_channel_free -> blocked recv returns", t0,
                     r[i].returned_us);
  }
  /* The handles stay valid; every call fails with the final status. */
  for (i = 0; i < N; i++) {
    tri_buf *m = NULL;
    ck_assert_int_eq(tri_stream_recv_ex(s[i], &m, 1000), TRI_CANCELLED);
    ck_assert_int_eq(tri_stream_send_ex(s[i], "x", 1, 0, 1000),
                     TRI_CANCELLED);
    ck_assert_int_eq(tri_stream_wait_status(s[i], 1000, NULL),
                     TRI_CANCELLED);
    ck_assert_str_eq(tri_stream_method(s[i]), M_HANG);
    tri_stream_free(s[i]);
  }
  /* The server side sees the streams go away (RST or connection loss). */
  for (i = 0; i < N; i++)
    ck_assert_msg(tu_sem_wait(&hang.ended, TU_WAIT_MS) == 0,
                  "server handler %d not woken after channel free", i);
  ck_assert_int_eq(atomic_load(&hang.last_rc), TRI_CANCELLED);
  TU_ASSERT_PROMPT("tri_channel_free -> last server handler's recv returns",
                   t0, atomic_load(&hang.ended_us));
  /* Other channels are unaffected. */
  unary_ok(ch, "other channel");
}
END_TEST

static Suite *
fault_suite(void)
{
  Suite *s = suite_create("integ_fault");
  TCase *proc = tcase_create("process");
  TCase *tc = tcase_create("fault");

  /* No fixture: the test forks before any thread exists. */
  tcase_set_timeout(proc, TU_TCASE_TIMEOUT);
  tcase_add_test(proc, test_server_process_killed);
  suite_add_tcase(s, proc);

  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_garbage_bytes);
  tcase_add_test(tc, test_graceful_shutdown_cancels_blocked);
  tcase_add_test(tc, test_draining_flag);
  tcase_add_test(tc, test_channel_free_wakes_blocked);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(fault_suite());
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
