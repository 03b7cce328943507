/*
 * integ_server: the server's main-loop helpers (issue 11):
 * tri_server_wait() returns once the server is shut down, and
 * tri_server_shutdown_on_signals() turns SIGTERM/SIGINT/SIGHUP into a
 * graceful shutdown, in a process that does not handle signals itself.
 * tri_server_opts_set_io_threads() (issue 12) spreads connections over
 * several I/O loops, each one really used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"
#include "budget.h" /* internal: the quiet-connection counter */
#include "conn.h"   /* internal: TRI__READ_CHUNK */
#include "hardening/h2raw.h" /* raw HTTP/2: the idle connections' frames */
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Test hook (lib/core.h): connections a server's I/O loop took and has. */
int tri__server_loop_served(const tri_server *srv, int i, uint64_t *served,
                            int *conns);

static int h_ok(tri_stream *s, void *ud)
{
  (void)s;
  (void)ud;
  return TRI_OK;
}

/* After its own finish, a handler's send and a second finish are
 * TRI_ESTATE even once the trailers were delivered (the stream then has
 * a final status, which must not leak into these answers). */
static sem_t delivered, checked;
static atomic_int after_send_rv, after_finish_rv;
static int h_finish_then_send(tri_stream *s, void *ud)
{
  (void)ud;
  tri_stream_finish(s, TRI_UNAUTHENTICATED, "no");
  tu_sem_wait(&delivered, 5000);
  atomic_store(&after_send_rv, tri_stream_send(s, "x", 1));
  atomic_store(&after_finish_rv, tri_stream_finish(s, TRI_OK, NULL));
  sem_post(&checked);
  return TRI_UNAUTHENTICATED;
}

START_TEST(test_send_after_delivered_finish)
{
  tu_method m = {"/s.S/Fin", h_finish_then_send, NULL};
  int port;
  tri_buf *r = NULL;
  tri_server *srv;
  tri_channel *ch;

  sem_init(&delivered, 0, 0);
  sem_init(&checked, 0, 0);
  srv = tu_server_start(&m, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  ch = tu_channel_new(port, NULL);
  ck_assert_int_eq(tri_unary_call(ch, "/s.S/Fin", NULL, "x", 1, &r, NULL),
                   TRI_UNAUTHENTICATED);
  tu_sleep_ms(20); /* the server saw its trailers go out */
  sem_post(&delivered);
  ck_assert_int_eq(tu_sem_wait(&checked, 5000), 0);
  ck_assert_int_eq(atomic_load(&after_send_rv), TRI_ESTATE);
  ck_assert_int_eq(atomic_load(&after_finish_rv), TRI_ESTATE);
  tri_channel_free(ch);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static void *shutdown_later(void *arg)
{
  tu_sleep_ms(100);
  tri_server_shutdown(arg, 0);
  return NULL;
}

START_TEST(test_wait_returns_after_shutdown)
{
  tu_method m = {"/s.S/Ok", h_ok, NULL};
  int port;
  pthread_t t;
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);

  ck_assert_ptr_nonnull(srv);
  int64_t t0 = tu_now_us();
  ck_assert_int_eq(tu_thread_start(&t, shutdown_later, srv), 0);
  ck_assert_int_eq(tri_server_wait(srv), TRI_OK);
  /* Promise: returns when the shutdown (at 100 ms) is complete. */
  TU_ASSERT_EXPIRED("tri_server_wait with shutdown at 100 ms", 100, t0,
                    tu_now_us());
  ck_assert_int_eq(tu_thread_join(t, 2000, NULL), 0);
  ck_assert_int_eq(tri_server_wait(srv), TRI_OK); /* again: at once */
  ck_assert_int_eq(tri_server_signal(srv), 0);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Child: a server whose main() is "start, on signals, wait, free". */
static int signal_child(int ready_fd, int sig_expected)
{
  tri_server *srv = NULL;
  char port[16];

  signal(SIGTERM, SIG_DFL); /* a signal not taken would kill it */
  signal(SIGINT, SIG_DFL);
  if (tri_server_new(&srv, NULL) != TRI_OK ||
      tri_server_register(srv, "/s.S/Ok", h_ok, NULL) != TRI_OK ||
      tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_start(srv) != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 1000) != TRI_OK)
    return 10;
  if (tri_server_shutdown_on_signals(srv, 1000) != TRI_ESTATE)
    return 11;
  snprintf(port, sizeof port, "%d", tri_server_port(srv));
  if (write(ready_fd, port, strlen(port) + 1) < 0)
    return 12;
  if (tri_server_wait(srv) != TRI_OK)
    return 13;
  if (tri_server_signal(srv) != sig_expected)
    return 14;
  tri_server_free(srv);
  return 0;
}

static void run_signal_case(int sig)
{
  int p[2], status = 0;
  char port[16] = {0};
  pid_t pid;

  ck_assert_int_eq(pipe(p), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(p[0]);
    alarm(20); /* never outlive a broken test */
    _exit(signal_child(p[1], sig));
  }
  close(p[1]);
  ck_assert_int_gt(read(p[0], port, sizeof port - 1), 0);
  close(p[0]);
  /* The server answers calls until the signal. */
  tri_channel *ch = tu_channel_new(atoi(port), NULL);
  tri_buf *r = NULL;
  tri_stream *st = NULL;
  int rv = tri_unary_call(ch, "/s.S/Ok", NULL, "x", 1, &r, &st);
  ck_assert_msg(rv == TRI_UNIMPLEMENTED, "call before the signal: %s",
                tri_code_name(rv)); /* OK without a response (5.4) */
  tri_stream_free(st);
  tri_channel_free(ch);
  int64_t t0 = tu_now_us();
  ck_assert_int_eq(kill(pid, sig), 0);
  for (int i = 0; i < 5000; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      break;
    tu_sleep_ms(1);
  }
  /* Promise: nothing in flight, so the shutdown is immediate. */
  TU_ASSERT_PROMPT("exit after the signal", t0, tu_now_us());
  ck_assert_msg(WIFEXITED(status), "child died: status 0x%x (signal %d)",
                status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  ck_assert_int_eq(WEXITSTATUS(status), 0);
}

START_TEST(test_shutdown_on_sigterm) { run_signal_case(SIGTERM); }
END_TEST

START_TEST(test_shutdown_on_sigint) { run_signal_case(SIGINT); }
END_TEST


/* ---- tri_server_opts_set_io_threads ---------------------------------- */

static sem_t io_started;
static int h_wait_end(tri_stream *s, void *ud)
{
  tri_buf *b = NULL;
  (void)ud;
  sem_post(&io_started);
  int rv = tri_stream_recv_ex(s, &b, 10000); /* the client never sends */
  tri_buf_free(b);
  return rv == TRI_OK ? TRI_INTERNAL : rv;
}

static int h_echo(tri_stream *s, void *ud)
{
  tri_buf *b = NULL;
  (void)ud;
  int rv = tri_stream_recv(s, &b);
  if (rv != TRI_OK)
    return rv;
  rv = tri_stream_send(s, tri_buf_data(b), tri_buf_len(b));
  tri_buf_free(b);
  return rv == TRI_OK ? TRI_OK : rv;
}

#define IO_CHANNELS 4

/* Two I/O loops: the connections are spread over both (each loop really
 * serves some), calls on all of them work, and shutdown with a handler
 * blocked on a connection of each loop wakes both and frees everything. */
START_TEST(test_io_threads_spread)
{
  tu_method ms[2] = {{"/s.S/Echo", h_echo, NULL},
                     {"/s.S/Wait", h_wait_end, NULL}};
  tri_server_opts *o = tri_server_opts_new();
  tri_channel *ch[IO_CHANNELS];
  tri_stream *waits[2] = {NULL, NULL};
  int port, before, i;
  uint64_t served[2];
  int conns[2];

  ck_assert_int_eq(tri_server_opts_set_io_threads(o, 0), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_io_threads(NULL, 2), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_io_threads(o, 2), TRI_OK);
  sem_init(&io_started, 0, 0);
  before = tu_threads_named("tri-io");
  tri_server *srv = tu_server_start(ms, 2, o, &port);
  ck_assert_ptr_nonnull(srv);
  tri_server_opts_free(o);
  /* Each names itself once running: wait for it (bounded). */
  int named = 0;
  for (i = 0; i < TU_WAIT_MS / 5 && (named = tu_threads_named("tri-io")) <
                                         before + 2; i++)
    tu_sleep_ms(5);
  ck_assert_int_eq(named, before + 2);
  for (i = 0; i < IO_CHANNELS; i++) {
    tri_buf *r = NULL;
    ch[i] = tu_channel_new(port, NULL); /* one connection each */
    ck_assert_ptr_nonnull(ch[i]);
    ck_assert_int_eq(tri_unary_call(ch[i], "/s.S/Echo", NULL, "ping", 4, &r,
                                    NULL), TRI_OK);
    ck_assert_int_eq((int)tri_buf_len(r), 4);
    tri_buf_free(r);
  }
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tri__server_loop_served(srv, i, &served[i], &conns[i]),
                     0);
    ck_assert_msg(served[i] == IO_CHANNELS / 2 && conns[i] == IO_CHANNELS / 2,
                  "loop %d: served %llu, has %d connections", i,
                  (unsigned long long)served[i], conns[i]);
  }
  ck_assert_int_eq(tri__server_loop_served(srv, 2, &served[0], &conns[0]),
                   -1);
  /* Every connection again: each still answers on its own loop. */
  for (int round = 0; round < 3; round++)
    for (i = 0; i < IO_CHANNELS; i++) {
      tri_buf *r = NULL;
      ck_assert_int_eq(tri_unary_call(ch[i], "/s.S/Echo", NULL, "x", 1, &r,
                                      NULL), TRI_OK);
      tri_buf_free(r);
    }
  /* Channels 0 and 1 connected first: one on each loop. */
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tri_stream_open(ch[i], "/s.S/Wait", NULL, &waits[i]),
                     TRI_OK);
    ck_assert_int_eq(tu_sem_wait(&io_started, TU_WAIT_MS), 0);
  }
  int64_t t0 = tu_now_us();
  tri_server_shutdown(srv, 100);
  TU_ASSERT_ELAPSED("shutdown with 100 ms drain", 100, 100, TU_HEADROOM_MS,
                    t0, tu_now_us());
  for (i = 0; i < 2; i++) {
    tri_buf *b = NULL;
    int rv = tri_stream_recv_ex(waits[i], &b, TU_WAIT_MS);
    ck_assert_msg(rv == TRI_UNAVAILABLE || rv == TRI_CANCELLED,
                  "call %d ended with %s", i, tri_strerror(rv));
    tri_stream_free(waits[i]);
  }
  ck_assert_int_eq(tri_server_wait(srv), TRI_OK);
  tri_server_free(srv);
  for (i = 0; i < IO_CHANNELS; i++)
    tri_channel_free(ch[i]);
  ck_assert_int_eq(tu_threads_named("tri-io"), before);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* The idle timeout closes idle connections on every loop (it failed
 * before the idle deadline was taken after the flush that closes the
 * last stream: a loop with nothing else to do slept for ever). */
START_TEST(test_io_threads_idle)
{
  tu_method m = {"/s.S/Echo", h_echo, NULL};
  tri_server_opts *o = tri_server_opts_new();
  tri_channel *ch[2];
  int port, i;
  uint64_t served;
  int conns;

  ck_assert_int_eq(tri_server_opts_set_io_threads(o, 2), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_idle_timeout_ms(o, 100), TRI_OK);
  tri_server *srv = tu_server_start(&m, 1, o, &port);
  ck_assert_ptr_nonnull(srv);
  tri_server_opts_free(o);
  for (i = 0; i < 2; i++) {
    tri_buf *r = NULL;
    ch[i] = tu_channel_new(port, NULL);
    ck_assert_ptr_nonnull(ch[i]);
    ck_assert_int_eq(tri_unary_call(ch[i], "/s.S/Echo", NULL, "x", 1, &r,
                                    NULL), TRI_OK);
    tri_buf_free(r);
  }
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tri__server_loop_served(srv, i, &served, &conns), 0);
    ck_assert_int_eq((int)served, 1);
  }
  /* Bounded wait: 100 ms idle + GOAWAY + the client's close. */
  int64_t until = tu_now_ms() + tu_bound_ms(100, 2000);
  int left = 2;
  while (left > 0 && tu_now_ms() < until) {
    tu_sleep_ms(10);
    left = 0;
    for (i = 0; i < 2; i++) {
      tri__server_loop_served(srv, i, &served, &conns);
      left += conns;
    }
  }
  ck_assert_int_eq(left, 0);
  /* The channels reconnect (spread again) and work. */
  for (i = 0; i < 2; i++) {
    tri_buf *r = NULL;
    ck_assert_int_eq(tri_unary_call(ch[i], "/s.S/Echo", NULL, "x", 1, &r,
                                    NULL), TRI_OK);
    tri_buf_free(r);
  }
  for (i = 0; i < 2; i++)
    tri_channel_free(ch[i]);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Connections with no stream and nothing to write give their buffers
 * back after 100 ms quiet (lib/conn.c tri__conn_trim_if_quiet; counted in
 * the quiet_conns budget), and work again at once: the next calls, their
 * frames written into the given-back pages, work, and the counter drops
 * when they read.  Both ends of the channel's connection count: the
 * server's since f68cf02, the client's since it was added (before, the
 * wait for 2 fails with 1). */
static int64_t quiet_conns(void)
{
  tri__budgets b;
  tri__budgets_get(&b);
  return b.quiet_conns;
}

static int wait_quiet(int64_t want)
{
  /* The promise: 100 ms of quiet, then the next loop tick; 1 s headroom. */
  int64_t until = tu_now_ms() + tu_bound_ms(100, 1000);
  while (quiet_conns() != want && tu_now_ms() < until)
    tu_sleep_ms(5);
  return quiet_conns() == want;
}

START_TEST(test_quiet_connection_gives_back)
{
  tu_method m = {"/s.S/Echo", h_echo, NULL};
  int port;
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  tri_channel *ch = tu_channel_new(port, NULL);
  ck_assert_ptr_nonnull(ch);
  for (int round = 0; round < 3; round++) {
    tri_buf *r = NULL;
    char big[20000]; /* more than one frame buffer's first page */
    memset(big, 'a' + round, sizeof big);
    ck_assert_int_eq(tri_unary_call(ch, "/s.S/Echo", NULL, big, sizeof big,
                                    &r, NULL), TRI_OK);
    ck_assert_uint_eq(tri_buf_len(r), sizeof big);
    ck_assert_mem_eq(tri_buf_data(r), big, sizeof big);
    tri_buf_free(r);
    ck_assert_msg(wait_quiet(2), "round %d: %lld quiet connections", round,
                  (long long)quiet_conns());
  }
  tri_channel_free(ch); /* the close takes it out of the count */
  ck_assert_msg(wait_quiet(0), "%lld quiet connections after the close",
                (long long)quiet_conns());
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Read HTTP/2 frames from |fd| until a GOAWAY: 1, or 0 when none came
 * within |ms| (or the socket closed first). */
static int wait_goaway(int fd, int ms)
{
  int64_t end = tu_now_ms() + ms;
  uint8_t h[9], skip[4096];
  for (;;) {
    int left = (int)(end - tu_now_ms());
    if (left <= 0 || h2_read_exact(fd, h, sizeof h, left) != 0)
      return 0;
    if (h[3] == H2_GOAWAY)
      return 1;
    for (size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
         len > 0;) {
      size_t n = len < sizeof skip ? len : sizeof skip;
      left = (int)(end - tu_now_ms());
      if (left <= 0 || h2_read_exact(fd, skip, n, left) != 0)
        return 0;
      len -= n;
    }
  }
}

/* A server loop's pass ticks the connections that moved (socket event,
 * stream op) or whose deadline came, not every connection: with 200 idle
 * HTTP/2 connections open, each call costs its own connection's ticks
 * (a handful of passes), not 200 more per pass.  Before, every pass
 * ticked every connection: 200 calls took >= 80,000 ticks (two passes
 * each at least, 201 connections), and on a 2-CPU VM 1,000 idle
 * connections halved a single caller's unary rate (tri-bench W3 t1).
 * A call takes two ticks here; the bound, 20 per call, is ten times that.
 * New connections cost their own ticks too, also when the listening loop
 * hands them to another loop (io_threads 2: the first version of the
 * change ticked every connection of the receiving loop per adoption,
 * 2,310 ticks for these 40); a new connection takes 3 here, the bound is
 * 20.  The idle connections' own
 * deadlines must still tick them: each gets the idle timeout's GOAWAY. */
static void
idle_ticks_case(int io_threads)
{
  enum { IDLE = 200, CALLS = 200, MORE = 40, IDLE_MS = 3000 };
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                "\0\0\0\4\0\0\0\0\0"; /* + SETTINGS */
  tu_method m = {"/s.S/Echo", h_echo, NULL};
  int port, fd[IDLE + MORE];
  int64_t opened[IDLE + MORE];
  uint64_t t0 = 0, ticks;
  tri_server_opts *o = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_idle_timeout_ms(o, IDLE_MS), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_io_threads(o, io_threads), TRI_OK);
  tri_server *srv = tu_server_start(&m, 1, o, &port);
  ck_assert_ptr_nonnull(srv);
  tri_server_opts_free(o);
  for (int i = 0; i < IDLE + MORE; i++) {
    if (i == IDLE) {
      /* Every one READY and past its quiet time (so it has had its
       * ticks); then MORE new ones. */
      ck_assert_msg(wait_quiet(IDLE), "%lld quiet connections",
                    (long long)quiet_conns());
      /* (The pass that trimmed the last one may add its ticks after
       * this: up to IDLE more in the count below, within its bound.) */
      t0 = tri__conn_ticks();
    }
    opened[i] = tu_now_ms();
    fd[i] = tu_raw_connect(port);
    ck_assert_int_ge(fd[i], 0);
    ck_assert_int_eq(send(fd[i], preface, sizeof preface - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof preface - 1));
    if (i >= IDLE) {
      /* One at a time: the server's SETTINGS first, so each is handed
       * over (io_threads 2) in a pass of its own. */
      struct pollfd p = {fd[i], POLLIN, 0};
      ck_assert_int_eq(poll(&p, 1, TU_WAIT_MS), 1);
    }
  }
  ck_assert_msg(wait_quiet(IDLE + MORE), "%lld quiet connections",
                (long long)quiet_conns());
  ticks = tri__conn_ticks() - t0;
  printf("integ_server: io_threads %d: %d new connections beside %d: %llu "
         "connection ticks\n", io_threads, MORE, IDLE,
         (unsigned long long)ticks);
  ck_assert_msg(ticks <= (uint64_t)MORE * 20, "%llu connection ticks",
                (unsigned long long)ticks);

  tri_channel *ch = tu_channel_new(port, NULL);
  ck_assert_ptr_nonnull(ch);
  tri_buf *r = NULL;
  ck_assert_int_eq(tri_unary_call(ch, "/s.S/Echo", NULL, "x", 1, &r, NULL),
                   TRI_OK); /* connected */
  tri_buf_free(r);
  t0 = tri__conn_ticks();
  for (int i = 0; i < CALLS; i++) {
    r = NULL;
    ck_assert_int_eq(tri_unary_call(ch, "/s.S/Echo", NULL, "x", 1, &r, NULL),
                     TRI_OK);
    tri_buf_free(r);
  }
  ticks = tri__conn_ticks() - t0;
  printf("integ_server: io_threads %d: %d calls beside %d idle "
         "connections: %llu connection ticks\n", io_threads, CALLS,
         IDLE + MORE, (unsigned long long)ticks);
  ck_assert_msg(ticks <= (uint64_t)CALLS * 20, "%llu connection ticks",
                (unsigned long long)ticks);
  /* The idle ones were not forgotten: their deadlines still tick them,
   * and each gets the idle timeout's GOAWAY (the promise: IDLE_MS after
   * it opened; 2 s headroom for the slowest build).  The test must get
   * here within IDLE_MS + 10 s (the drain PING's timeout, then the
   * close), or the quiet counts above would fall: 13 s. */
  for (int i = 0; i < IDLE + MORE; i++) {
    int left = (int)(opened[i] + tu_bound_ms(IDLE_MS, 2000) - tu_now_ms());
    ck_assert_msg(wait_goaway(fd[i], left > 0 ? left : 0),
                  "idle connection %d: no GOAWAY %lld ms after it opened", i,
                  (long long)(tu_now_ms() - opened[i]));
  }
  tri_channel_free(ch);
  for (int i = 0; i < IDLE + MORE; i++)
    close(fd[i]);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

START_TEST(test_idle_connections_not_ticked) { idle_ticks_case(1); }
END_TEST

START_TEST(test_idle_connections_not_ticked_io2) { idle_ticks_case(2); }
END_TEST

#if defined(__GLIBC__) && !TU_ASAN && !TU_TSAN
/* DATA frames are no larger than what the stream has queued: nghttp2
 * grows its frame buffer to the length our read-length callback returns
 * and keeps it for the session's life, so before, every connection that
 * sent one small message (both ends of each of these channels) held a
 * 256 KiB buffer.  Measured as glibc's mmapped bytes with a fixed mmap
 * threshold: each new channel may add its loop's read buffer
 * (TRI__READ_CHUNK, read into by the kernel, mostly untouched) plus 64 KiB
 * of headroom, not two frame buffers more.  Fails on the code before
 * (about 3 x 256 KiB per channel). */
START_TEST(test_small_messages_small_frame_buffers)
{
  enum { N = 8 };
  tu_method m = {"/s.S/Echo", h_echo, NULL};
  tri_channel *ch[N + 1];
  size_t before = 0, after, per;
  int port;
  if (getenv("TRI_VALGRIND") != NULL) {
    /* valgrind's allocator does not report mmapped bytes: the calls
     * still run, the measurement is the plain build's. */
    fprintf(stderr, "integ_server: frame buffers: not measurable under "
                    "valgrind\n");
  }
  /* Fixed (glibc's default value): no threshold raised by earlier frees.
   * It stays fixed for the rest of a CK_FORK=no process; harmless. */
  ck_assert_int_eq(mallopt(M_MMAP_THRESHOLD, 128 * 1024), 1);
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  for (int i = 0; i <= N; i++) {
    tri_buf *r = NULL;
    if (i == 1)
      before = mallinfo2().hblkhd; /* server loop and one channel up */
    ch[i] = tu_channel_new(port, NULL);
    ck_assert_ptr_nonnull(ch[i]);
    ck_assert_int_eq(tri_unary_call(ch[i], "/s.S/Echo", NULL, "hello", 5,
                                    &r, NULL), TRI_OK);
    ck_assert_uint_eq(tri_buf_len(r), 5);
    tri_buf_free(r);
  }
  after = mallinfo2().hblkhd;
  per = (after - before) / N;
  fprintf(stderr, "integ_server: mmapped bytes per channel and server "
                  "connection after one small call: %zu\n", per);
  if (getenv("TRI_VALGRIND") == NULL) {
    ck_assert_uint_ge(per, TRI__READ_CHUNK); /* the measurement works */
    ck_assert_uint_le(per, TRI__READ_CHUNK + 64 * 1024);
  }
  for (int i = 0; i <= N; i++)
    tri_channel_free(ch[i]);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST
#endif

/* A start that fails creating the listening I/O loop (here: no descriptor
 * left for its epoll instance) leaves the listening socket with the
 * server: a later start works, and tri_server_free() closes it.  (The
 * io_threads change dropped the socket: it stayed open, bound, forever.) */
START_TEST(test_start_fails_keeps_listener)
{
  tri_server *srv = NULL;
  struct rlimit old, low;
  int fill[1100], nfill = 0, port, rv, fd;
  struct sockaddr_in sa;

  ck_assert_int_eq(tri_server_new(&srv, NULL), TRI_OK);
  ck_assert_int_eq(tri_server_register(srv, "/s.S/Ok", h_ok, NULL), TRI_OK);
  ck_assert_int_eq(tri_server_bind(srv, "127.0.0.1:0"), TRI_OK);
  port = tri_server_port(srv);
  ck_assert_int_gt(port, 0);
  /* Use up every descriptor below a low limit, so epoll_create1 fails. */
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 1024;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  while (nfill < 1100 && (fd = open("/dev/null", O_RDONLY)) >= 0)
    fill[nfill++] = fd;
  ck_assert_int_eq(errno, EMFILE);
  rv = tri_server_start(srv);
  while (nfill > 0)
    close(fill[--nfill]);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  ck_assert_int_ne(rv, TRI_OK);
  /* Descriptors are back: the server is still bound and starts now. */
  ck_assert_msg(tri_server_start(srv) == TRI_OK, "retry: %s",
                tri_last_error());
  tri_server_free(srv);
  /* And freeing it closed the listening socket. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
                    errno == ECONNREFUSED,
                "port %d still accepts connections after tri_server_free",
                port);
  close(fd);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* A response whose HEADERS or trailers nghttp2 will not send (a header
 * block over its 64 KiB limit): the handler's calls return as usual, but
 * the stream must end INTERNAL on both sides at once, not hang the client
 * until its deadline and the server's shutdown until its drain time.
 * Modes: 0 a big header, 1 a big trailer, 2 a big status message, 3 a
 * status message that only percent-encoding makes too big. */
enum { BIG_MD = 70000 };
static atomic_int big_status = -100;
static sem_t big_done;
static int h_big(tri_stream *s, void *ud)
{
  int mode = (int)(intptr_t)ud;
  char *v = malloc(BIG_MD + 1);
  const char *msg = NULL;
  tri_buf *b = NULL;
  int rc;

  if (v == NULL) {
    atomic_store(&big_status, TRI_ENOMEM);
    sem_post(&big_done);
    return TRI_OK;
  }
  memset(v, 'v', BIG_MD);
  v[BIG_MD] = '\0';
  if (mode == 3) {
    /* 8,000 euro signs: 24,000 bytes, 72,000 once percent-encoded */
    for (int i = 0; i + 3 <= 24000; i += 3)
      memcpy(v + i, "\xe2\x82\xac", 3);
    v[24000] = '\0';
  }
  rc = TRI_OK;
  /* Before the recv: a recv that blocks sends the response HEADERS
   * (11.9), which would go out without the big header. */
  if (mode == 0)
    rc = tri_stream_add_header(s, "x-big", v, BIG_MD);
  if (mode == 1)
    rc = tri_stream_add_trailer(s, "x-big", v, BIG_MD);
  (void)tri_stream_recv(s, &b);
  tri_buf_free(b);
  if (rc == TRI_OK) {
    (void)tri_stream_send(s, "r", 1);
    rc = tri_stream_finish(s, mode >= 2 ? TRI_INVALID_ARGUMENT : TRI_OK,
                           mode >= 2 ? v : NULL);
  }
  free(v);
  if (rc == TRI_OK)
    rc = tri_stream_wait_status(s, 5000, &msg);
  atomic_store(&big_status, rc);
  sem_post(&big_done);
  return TRI_OK;
}

static void big_metadata_case(int mode)
{
  tu_method m = {"/s.S/Big", h_big, (void *)(intptr_t)mode};
  tu_method ok = {"/s.S/Echo", tu_echo_handler, NULL};
  tu_method ms[2] = {m, ok};
  tri_call_opts *o = tri_call_opts_new();
  tri_buf *r = NULL;
  tri_server *srv;
  tri_channel *ch;
  int port, rv;

  sem_init(&big_done, 0, 0);
  atomic_store(&big_status, -100);
  srv = tu_server_start(ms, 2, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  ch = tu_channel_new(port, NULL);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
  int64_t t0 = tu_now_us();
  rv = tri_unary_call(ch, "/s.S/Big", o, "x", 1, &r, NULL);
  int64_t el = tu_now_us() - t0;
  tri_buf_free(r);
  r = NULL;
  /* Promise: a prompt, precise status.  2 s is headroom for a loaded
   * machine; before, the call waited for its 10 s deadline. */
  ck_assert_msg(rv == TRI_INTERNAL && el < 2000000,
                "mode %d: client got %s (%s) after %lld ms", mode,
                tu_code(rv), tri_last_error(), (long long)(el / 1000));
  ck_assert_int_eq(tu_sem_wait(&big_done, 5000), 0);
  ck_assert_msg(atomic_load(&big_status) == TRI_INTERNAL,
                "mode %d: server stream ended %s", mode,
                tu_code(atomic_load(&big_status)));
  /* The connection goes on serving. */
  ck_assert_int_eq(tri_unary_call(ch, "/s.S/Echo", o, "x", 1, &r, NULL),
                   TRI_OK);
  tri_buf_free(r);
  tri_call_opts_free(o);
  tri_channel_free(ch);
  t0 = tu_now_us();
  tri_server_shutdown(srv, 5000); /* nothing in flight: at once */
  ck_assert_msg(tu_now_us() - t0 < 2000000, "shutdown took %lld ms",
                (long long)((tu_now_us() - t0) / 1000));
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

/* A handler that adds a header and then waits in recv: the response
 * HEADERS go out before it waits (PROTOCOL.md 4.1, 11.9), so a client
 * waiting for them gets them at once.  Before the fix the HEADERS op was
 * only noted on the stream and the recv waited without posting it: the
 * client's tri_stream_headers() timed out (io 1 and io 4 alike). */
static sem_t hw_started;
static int h_hdr_then_wait(tri_stream *s, void *ud)
{
  tri_buf *b = NULL;
  (void)ud;
  (void)tri_stream_add_header(s, "x-hello", "there", 5);
  sem_post(&hw_started);
  while (tri_stream_recv(s, &b) == TRI_OK) /* until the client ends */
    tri_buf_free(b);
  return TRI_OK;
}

static void recv_wait_sends_headers(int io_threads)
{
  tu_method m = {"/s.S/HdrWait", h_hdr_then_wait, NULL};
  tri_server_opts *so = tri_server_opts_new();
  tri_stream *st;
  size_t n = 0;
  int port;

  sem_init(&hw_started, 0, 0);
  ck_assert_int_eq(tri_server_opts_set_io_threads(so, io_threads), TRI_OK);
  tri_server *srv = tu_server_start(&m, 1, so, &port);
  ck_assert_ptr_nonnull(srv);
  tri_channel *ch = tu_channel_new(port, NULL);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(tri_stream_open(ch, "/s.S/HdrWait", NULL, &st), TRI_OK);
    ck_assert_int_eq(tu_sem_wait(&hw_started, TU_WAIT_MS), 0);
    int64_t t0 = tu_now_us();
    const tri_metadata *md =
        tri_stream_headers(st, (int)tu_bound_ms(0, TU_HEADROOM_MS));
    int64_t t1 = tu_now_us();
    ck_assert_msg(md != NULL, "stream %d: no response headers after %lld us "
                  "(io threads %d)", i, (long long)(t1 - t0), io_threads);
    TU_ASSERT_PROMPT("response headers of a handler waiting in recv", t0, t1);
    const char *v = tri_metadata_find(md, "x-hello", &n);
    ck_assert_msg(v != NULL && n == 5 && memcmp(v, "there", 5) == 0,
                  "stream %d: x-hello missing", i);
    ck_assert_int_eq(tri_stream_close_send(st), TRI_OK);
    ck_assert_int_eq(tri_stream_wait_status(st, TU_WAIT_MS, NULL), TRI_OK);
    tri_stream_free(st);
  }
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

START_TEST(test_recv_wait_sends_headers)
{
  recv_wait_sends_headers(1);
}
END_TEST

START_TEST(test_recv_wait_sends_headers_io4)
{
  recv_wait_sends_headers(4);
}
END_TEST

/* A server of two I/O loops shut down while loop 1 still lingers on
 * connections it closed (junk instead of the preface: closed by us, the
 * peer's socket still open, so the loop drains it for a while).  The
 * lingering sockets are closed when loop 1 is freed, after the
 * listening loop 0 was: that close must not reach loop 0.  Before, it
 * posted to the freed loop (a use-after-free AddressSanitizer reports;
 * the plain build may pass by chance). */
START_TEST(test_shutdown_with_lingering_io2)
{
  tu_method m = {"/s.S/Echo", tu_echo_handler, NULL};
  tri_server_opts *o = tri_server_opts_new();
  static const char junk[52] = "this is not the HTTP/2 preface, not at all..";
  int fds[4], port;

  ck_assert_int_eq(tri_server_opts_set_io_threads(o, 2), TRI_OK);
  tri_server *srv = tu_server_start(&m, 1, o, &port);
  ck_assert_ptr_nonnull(srv);
  for (int i = 0; i < 4; i++) {
    fds[i] = tu_raw_connect(port);
    ck_assert_int_ge(fds[i], 0);
    ck_assert_int_eq(write(fds[i], junk, sizeof(junk)), (ssize_t)sizeof(junk));
  }
  tu_sleep_ms(300); /* rejected and lingering, two on each loop */
  tri_server_shutdown(srv, 0);
  tri_server_free(srv);
  for (int i = 0; i < 4; i++)
    close(fds[i]);
  tri_server_opts_free(o);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

START_TEST(test_big_response_header) { big_metadata_case(0); }
END_TEST
START_TEST(test_big_response_trailer) { big_metadata_case(1); }
END_TEST
START_TEST(test_big_status_message) { big_metadata_case(2); }
END_TEST
START_TEST(test_big_encoded_status_message) { big_metadata_case(3); }
END_TEST

/* Bursts of calls over many connections at once: the server's I/O
 * thread reads several requests in one epoll batch and signals workers
 * at the batch's first dispatch and at its end (lib/loop.c,
 * kick_workers).  Every call must reach a handler before the queue
 * timeout: a dispatched stream is promised a worker at once, so the
 * timeout is only the headroom (1 s, scaled for sanitizers and
 * valgrind).  A stream left queued with every worker asleep and its kick
 * pending would fail with RESOURCE_EXHAUSTED "no free handler thread":
 * between rounds no other request comes to rescue it. */
#define BURST_CHANNELS 32
#define BURST_ROUNDS 40

typedef struct {
  tri_channel *ch;
  pthread_barrier_t *bar;
  int fails;
  int64_t max_us;
  char first[128];
} burst_arg;

static void *burst_thread(void *p)
{
  burst_arg *a = p;
  for (int r = 0; r < BURST_ROUNDS; r++) {
    tri_buf *resp = NULL;
    pthread_barrier_wait(a->bar);
    int64_t t0 = tu_now_us();
    int rv = tri_unary_call(a->ch, "/s.S/Echo", NULL, "burst", 5, &resp,
                            NULL);
    int64_t us = tu_now_us() - t0;
    if (us > a->max_us)
      a->max_us = us;
    if (rv != TRI_OK || tri_buf_len(resp) != 5) {
      if (a->fails++ == 0)
        snprintf(a->first, sizeof(a->first), "round %d: %s", r,
                 tri_strerror(rv));
    }
    tri_buf_free(resp);
  }
  return NULL;
}

START_TEST(test_burst_over_many_connections)
{
  tu_method m = {"/s.S/Echo", h_echo, NULL};
  tri_server_opts *o = tri_server_opts_new();
  pthread_barrier_t bar;
  pthread_t th[BURST_CHANNELS];
  burst_arg a[BURST_CHANNELS];
  int port, i;

  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(
                       o, (int)tu_bound_ms(0, 1000)), TRI_OK);
  tri_server *srv = tu_server_start(&m, 1, o, &port);
  ck_assert_ptr_nonnull(srv);
  tri_server_opts_free(o);
  pthread_barrier_init(&bar, NULL, BURST_CHANNELS);
  memset(a, 0, sizeof(a));
  for (i = 0; i < BURST_CHANNELS; i++) {
    tri_buf *r = NULL;
    a[i].ch = tu_channel_new(port, NULL); /* a connection each */
    ck_assert_ptr_nonnull(a[i].ch);
    ck_assert_int_eq(tri_unary_call(a[i].ch, "/s.S/Echo", NULL, "c", 1, &r,
                                    NULL), TRI_OK); /* connected */
    tri_buf_free(r);
    a[i].bar = &bar;
  }
  for (i = 0; i < BURST_CHANNELS; i++)
    ck_assert_int_eq(tu_thread_start(&th[i], burst_thread, &a[i]), 0);
  int fails = 0;
  int64_t max_us = 0;
  const char *first = "";
  for (i = 0; i < BURST_CHANNELS; i++) {
    /* Bounded: a call that never returns fails the test, not hangs it. */
    ck_assert_int_eq(tu_thread_join(th[i], (int)tu_bound_ms(0, 30000), NULL),
                     0);
    if (a[i].fails > 0 && fails == 0)
      first = a[i].first;
    fails += a[i].fails;
    if (a[i].max_us > max_us)
      max_us = a[i].max_us;
  }
  ck_assert_msg(fails == 0, "%d of %d calls failed (first: %s)", fails,
                BURST_CHANNELS * BURST_ROUNDS, first);
  printf("integ_server: burst of %d connections x %d rounds: slowest call "
         "%lld us\n", BURST_CHANNELS, BURST_ROUNDS, (long long)max_us);
  for (i = 0; i < BURST_CHANNELS; i++)
    tri_channel_free(a[i].ch);
  pthread_barrier_destroy(&bar);
  tri_server_shutdown(srv, 0);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* A raw client: a connection whose SETTINGS_INITIAL_WINDOW_SIZE is
 * |window| (and whose connection window is opened to 2^31-1 if
 * |open_conn|), and on it a call to |path| with one message and
 * END_STREAM.  Returns the socket; nothing has been read from it past the
 * handshake. */
static int raw_call(int port, uint32_t window, int open_conn,
                    const char *path)
{
  const uint32_t settings[][2] = {{4 /* INITIAL_WINDOW_SIZE */, window}};
  h2buf b = {0}, hb = {0};
  int fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, settings, 1, 3000), 0);
  if (open_conn)
    h2_window_update(&b, 0, 0x7fffffff - 65535);
  hp_grpc_request(&hb, path, NULL);
  h2_frame(&b, 1 /* HEADERS */, 0x4 /* END_HEADERS */, 1, hb.p, hb.len);
  h2_grpc_msg(&hb, "x", 1);
  h2_frame(&b, 0 /* DATA */, 0x1 /* END_STREAM */, 1, hb.p + hb.len - 6, 6);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  h2buf_free(&b);
  h2buf_free(&hb);
  return fd;
}

/* The shutdown's last frames reach a client that had stopped reading.
 * A raw client opens a call with 2^31-1 flow-control windows and does
 * not read: the handler's messages fill both socket buffers and it
 * blocks in send.  tri_server_shutdown(100 ms) then ends the call with
 * UNAVAILABLE trailers and a GOAWAY queued behind those bytes; the client
 * starts reading 300 ms after the drain ended and must find both, within
 * the teardown's 1 s (TRI__FINAL_FLUSH_MS).  Before, the teardown
 * flushed once without blocking and closed: the client read DATA and
 * then EOF, with no status and no GOAWAY. */
enum { FLOOD_MAX = 4096 }; /* 64 KiB messages: at most 256 MiB */
static atomic_int flood_sent;

static int h_flood(tri_stream *s, void *ud)
{
  static const char msg[65536];
  (void)ud;
  for (int i = 0; i < FLOOD_MAX; i++) {
    int rv = tri_stream_send(s, msg, sizeof msg);
    if (rv != TRI_OK)
      return rv;
    atomic_fetch_add(&flood_sent, 1);
  }
  return TRI_OK;
}

static void *shutdown_drain_100(void *arg)
{
  tri_server_shutdown(arg, 100);
  return NULL;
}

START_TEST(test_shutdown_final_frames_reach_slow_reader)
{
  tu_method m = {"/s.S/Flood", h_flood, NULL};
  h2reader r;
  pthread_t th;
  int port, now = 0, before = -1;

  atomic_store(&flood_sent, 0);
  /* The promise is 1 s; slow builds (valgrind) get their multiplier. */
  tri__final_flush_ms = (int)(TRI__FINAL_FLUSH_MS * tu_mult());
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  int fd = raw_call(port, 0x7fffffff, 1, "/s.S/Flood");
  /* The handler is blocked in send once 200 ms pass without a message. */
  for (int64_t until = tu_now_ms() + TU_WAIT_MS;
       tu_now_ms() < until && (now == 0 || now != before);) {
    before = now;
    tu_sleep_ms(200);
    now = atomic_load(&flood_sent);
  }
  ck_assert_msg(now > 0 && now == before && now < FLOOD_MAX,
                "the handler did not block in send (%d messages)", now);

  ck_assert_int_eq(tu_thread_start(&th, shutdown_drain_100, srv), 0);
  tu_sleep_ms(100 + 300); /* the drain, then the teardown's own flush */
  /* (Read from here on: the teardown has written what the sockets took
   * and waits for the rest, until 1 s after the drain.) */
  memset(&r, 0, sizeof(r));
  h2reader_start(&r, fd, 1);
  ck_assert_int_eq(h2reader_wait_closed(&r, TU_WAIT_MS), 0);
  ck_assert_int_eq(tu_thread_join(th, TU_WAIT_MS, NULL), 0);
  /* The drain's heads-up GOAWAY (last stream 2^31-1), then the final
   * one naming stream 1. */
  ck_assert_msg(atomic_load(&r.grpc_status[TRI_UNAVAILABLE]) == 1 &&
                    atomic_load(&r.goaways) >= 2 &&
                    atomic_load(&r.goaway_last_sid) == 1,
                "want UNAVAILABLE trailers and the final GOAWAY: %s",
                h2reader_summary(&r));
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri__final_flush_ms = TRI__FINAL_FLUSH_MS;
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* An OK finish after DATA that used up the client's stream window: the
 * trailers are HEADERS, which flow control does not hold back (RFC 9113
 * §6.9), so they go at once.  A raw client with a 1005-byte window and
 * no WINDOW_UPDATE gets one 1000-byte message, then (the handler waits
 * 100 ms first, so the DATA went alone) grpc-status 0.  Before, the
 * trailers came from the data provider, which nghttp2 calls only while
 * the window is open: the client never got a status. */
static int h_fill_window(tri_stream *s, void *ud)
{
  static const char msg[1000];
  (void)ud;
  int rv = tri_stream_send(s, msg, sizeof msg);
  tu_sleep_ms(100);
  return rv;
}

START_TEST(test_trailers_after_window_used_up)
{
  tu_method m = {"/s.S/Fill", h_fill_window, NULL};
  h2reader r;
  int port;

  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  int64_t t0 = tu_now_us();
  int fd = raw_call(port, 1005, 0, "/s.S/Fill");
  memset(&r, 0, sizeof(r));
  h2reader_start(&r, fd, 1);
  for (int64_t until = tu_now_ms() + TU_WAIT_MS;
       atomic_load(&r.grpc_status[TRI_OK]) == 0 && tu_now_ms() < until;)
    tu_sleep_ms(2);
  int64_t t1 = tu_now_us();
  ck_assert_msg(atomic_load(&r.grpc_status[TRI_OK]) == 1 &&
                    atomic_load(&r.data_bytes) == 1005,
                "want 1005 DATA bytes, then grpc-status 0: %s",
                h2reader_summary(&r));
  /* Promise: right after the handler returns (100 ms). */
  TU_ASSERT_EXPIRED("trailers after the window was used up", 100, t0, t1);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("integ_server");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_test(tc, test_wait_returns_after_shutdown);
  tcase_add_test(tc, test_send_after_delivered_finish);
  tcase_add_test(tc, test_shutdown_on_sigterm);
  tcase_add_test(tc, test_shutdown_on_sigint);
  tcase_add_test(tc, test_io_threads_spread);
  tcase_add_test(tc, test_io_threads_idle);
  tcase_add_test(tc, test_quiet_connection_gives_back);
  tcase_add_test(tc, test_idle_connections_not_ticked);
  tcase_add_test(tc, test_idle_connections_not_ticked_io2);
  tcase_add_test(tc, test_start_fails_keeps_listener);
  tcase_add_test(tc, test_shutdown_with_lingering_io2);
  tcase_add_test(tc, test_big_response_header);
  tcase_add_test(tc, test_recv_wait_sends_headers);
  tcase_add_test(tc, test_recv_wait_sends_headers_io4);
  tcase_add_test(tc, test_big_response_trailer);
  tcase_add_test(tc, test_big_status_message);
  tcase_add_test(tc, test_big_encoded_status_message);
  tcase_add_test(tc, test_burst_over_many_connections);
  tcase_add_test(tc, test_shutdown_final_frames_reach_slow_reader);
  tcase_add_test(tc, test_trailers_after_window_used_up);
#if defined(__GLIBC__) && !TU_ASAN && !TU_TSAN
  tcase_add_test(tc, test_small_messages_small_frame_buffers);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  int failed;
  signal(SIGPIPE, SIG_DFL); /* the library must not need SIG_IGN */
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
