/*
 * integ_regress: regression tests for defects found in review (D0-D12a).
 * Each test proves one defect: it fails (assertion or Check timeout) on
 * the code that has the defect and passes once it is fixed.  The comment
 * above each test states the bound the documented behaviour promises and
 * the headroom the test allows.
 *
 * Timing: bounds are multiplied by slack() (4 under sanitizers/valgrind:
 * CK_TIMEOUT_MULTIPLIER > 1 or TRI_TEST_SLOW=1, else 1).
 *
 * Everything runs on 127.0.0.1.  Servers that must be observed from the
 * outside (SIGPIPE, EMFILE) run in forked children, forked before the test
 * process starts any thread.  Raw HTTP/2 clients and servers (h2raw, a
 * small nghttp2 server) are used where the tri client cannot produce the
 * wire pattern.  Check runs every test in its own forked child, so the
 * process-wide budget counters (lib/budget.h) start at zero in each test.
 *
 * Network guard: this binary interposes getaddrinfo() so that a host NAME
 * (anything but a numeric address or "localhost") is never looked up by the
 * system resolver, whose name server may be off this machine; the D7 tests
 * expect names to be resolved by the library's own resolver through the
 * TRI_DNS_SERVERS override (a DNS responder on 127.0.0.1 in the test).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include <triplestream/triplestream.h>

#include "budget.h"
#include "conn.h" /* tri__accept_backoff_ms */
#include "hardening/h2raw.h"
#include "testutil.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

#define M_ECHO "/test.Echo/Bidi"
#define M_FLOOD "/reg.Flood/Bidi"   /* 16 x 64 KiB, then recv until end */
#define M_SINK "/reg.Sink/NoRead"   /* never reads; waits for the end */
#define M_D2 "/reg.D2/FinishEarly"  /* 64 x 64 KiB, finish OK at once */
#define M_STREAMER "/reg.Streamer/Out" /* 64 KiB messages until a failure */
#define M_D5C "/reg.D5/CountIn"     /* waits for a go, counts messages */
#define M_D5S "/reg.D5/SendVsFinish" /* blocks in send; test finishes it */
#define M_META "/reg.Meta/Many"     /* 100 headers + 100 trailers */
#define M_D4 "/reg.D4/IterHeaders"  /* iterates its request headers */

/* ================================================================ */
/* Common helpers                                                    */
/* ================================================================ */

/* 4 under valgrind / sanitizers (CK_TIMEOUT_MULTIPLIER > 1 or
 * TRI_TEST_SLOW=1), else 1. */
static int
slack(void)
{
  const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
  const char *s = getenv("TRI_TEST_SLOW");
  if ((s != NULL && atoi(s) > 0) || (m != NULL && atof(m) > 1.0))
    return 4;
  return 1;
}
#define MS(x) ((int)((x) * slack()))

static const char *
budgets_str(void)
{
  static _Thread_local char buf[256];
  tri__budgets b;
  tri__budgets_get(&b);
  snprintf(buf, sizeof(buf),
           "streams=%lld conns=%lld loops=%lld rq=%lld conn_rq=%lld "
           "partial=%lld ring=%lld owed=%lld spare=%lld",
           (long long)b.streams, (long long)b.conns, (long long)b.loops,
           (long long)b.rq_bytes, (long long)b.conn_rq_bytes,
           (long long)b.partial_bytes, (long long)b.ring_bytes,
           (long long)b.conn_owed, (long long)b.spare_bytes);
  return buf;
}

/* Poll the budget counters (every 10 ms, at most |timeout_ms|) until no
 * stream and no queued or withheld byte is left.  0 when settled. */
static int
budgets_settle(int timeout_ms)
{
  int64_t end = tu_now_ms() + timeout_ms;
  for (;;) {
    tri__budgets b;
    tri__budgets_get(&b);
    if (b.streams == 0 && b.rq_bytes == 0 && b.conn_rq_bytes == 0 &&
        b.conn_owed == 0)
      return 0;
    if (tu_now_ms() >= end)
      return -1;
    tu_sleep_ms(10);
  }
}

/* ---- server handlers (in-process servers) ---- */

/* Shared state of the handlers; every test runs in its own process. */
static struct {
  /* D2 */
  atomic_int d2_sent;        /* messages queued by the last D2 handler */
  atomic_int d2_finish_rc;
  sem_t d2_done;
  /* streamer (D1, D3) */
  atomic_int st_rc;          /* rc of the failing send, INT32_MIN = none */
  atomic_int st_ended;
  sem_t st_end;
  /* D5 client side */
  sem_t d5c_go;
  sem_t d5c_started;
  atomic_int d5c_count;      /* messages the handler received */
  atomic_int d5c_rc;         /* how its recv loop ended */
  sem_t d5c_done;
  /* D5 server side */
  atomic_uintptr_t d5s_stream;
  tu_blocker d5s_block;
  atomic_int d5s_ok;         /* sends that returned OK */
  atomic_int d5s_blocked_rc; /* what the blocked send returned */
  sem_t d5s_done;
  /* D12a */
  atomic_int meta_add_fail;
  /* D4 */
  sem_t d4_started;
  atomic_long d4_iter;
} H;

static void
handlers_init(void)
{
  memset(&H, 0, sizeof(H));
  sem_init(&H.d2_done, 0, 0);
  sem_init(&H.st_end, 0, 0);
  sem_init(&H.d5c_go, 0, 0);
  sem_init(&H.d5c_started, 0, 0);
  sem_init(&H.d5c_done, 0, 0);
  sem_init(&H.d5s_done, 0, 0);
  sem_init(&H.d4_started, 0, 0);
  tu_blocker_init(&H.d5s_block);
  atomic_store(&H.st_rc, INT32_MIN);
  atomic_store(&H.d5s_blocked_rc, INT32_MIN);
  atomic_store(&H.d5c_rc, INT32_MIN);
}

static int
ret_rc(int rv)
{
  return rv >= 0 ? rv : TRI_OK;
}

/* Send 16 x 64 KiB (1 MiB), then block in recv until the stream ends. */
static int
h_flood(tri_stream *s, void *ud)
{
  static uint8_t buf[64 * 1024];
  int i, rv = TRI_OK;
  (void)ud;
  for (i = 0; i < 16 && rv == TRI_OK; i++)
    rv = tri_stream_send(s, buf, sizeof(buf));
  for (i = 0; i < 1000000 && rv == TRI_OK; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    tri_buf_free(m);
  }
  return ret_rc(rv);
}

/* Never reads: polls (10 ms, at most 60 s) until the stream has ended. */
static int
h_sink(tri_stream *s, void *ud)
{
  int i;
  (void)ud;
  for (i = 0; i < 6000; i++) {
    int rc = tri_stream_send_headers(s);
    if (rc != TRI_OK)
      return ret_rc(rc);
    tu_sleep_ms(10);
  }
  return TRI_OK;
}

/* Queue 64 x 64 KiB (the server's send buffer is raised to hold them all)
 * and finish OK at once, before the call's deadline. */
static int
h_d2(tri_stream *s, void *ud)
{
  static uint8_t buf[64 * 1024];
  int i, rv = TRI_OK, n = 0;
  (void)ud;
  for (i = 0; i < 64; i++) {
    buf[0] = (uint8_t)i;
    rv = tri_stream_send_ex(s, buf, sizeof(buf), 0, 5000);
    if (rv != TRI_OK)
      break;
    n++;
  }
  atomic_store(&H.d2_sent, n);
  if (rv == TRI_OK)
    rv = tri_stream_finish(s, TRI_OK, NULL);
  atomic_store(&H.d2_finish_rc, rv);
  sem_post(&H.d2_done);
  return ret_rc(rv);
}

/* Send 64 KiB messages until a send fails (at most 4096 = 256 MiB or
 * 60 s); record how it ended. */
static int
h_streamer(tri_stream *s, void *ud)
{
  static uint8_t buf[64 * 1024];
  int64_t end = tu_now_ms() + 60000;
  int i, rv = TRI_OK;
  (void)ud;
  for (i = 0; i < 4096 && tu_now_ms() < end; i++) {
    rv = tri_stream_send(s, buf, sizeof(buf));
    if (rv != TRI_OK)
      break;
  }
  atomic_store(&H.st_rc, rv);
  atomic_fetch_add(&H.st_ended, 1);
  sem_post(&H.st_end);
  return ret_rc(rv);
}

/* D5 (client side): wait for the test's go (at most 10 s) without reading,
 * then count messages until the client's end of input. */
static int
h_d5c(tri_stream *s, void *ud)
{
  int i, rv = TRI_OK, n = 0;
  (void)ud;
  sem_post(&H.d5c_started);
  tu_sem_wait(&H.d5c_go, 10000);
  for (i = 0; i < 1000000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    tri_buf_free(m);
    n++;
  }
  atomic_store(&H.d5c_count, n);
  atomic_store(&H.d5c_rc, rv);
  sem_post(&H.d5c_done);
  return rv == TRI_EOF ? TRI_OK : ret_rc(rv);
}

/* D5 (server side): fill the send buffer (the client does not read), then
 * block in one more send; the test calls tri_stream_finish() from its own
 * thread meanwhile. */
static int
h_d5s(tri_stream *s, void *ud)
{
  static uint8_t buf[64 * 1024];
  int i, rv;
  (void)ud;
  for (i = 0; i < 200; i++) {
    rv = tri_stream_send_ex(s, buf, sizeof(buf), 0, 200);
    if (rv != TRI_OK)
      break;
    atomic_fetch_add(&H.d5s_ok, 1);
  }
  atomic_store(&H.d5s_stream, (uintptr_t)s);
  tu_blocker_arrive(&H.d5s_block);
  rv = tri_stream_send(s, buf, sizeof(buf));
  if (rv == TRI_OK)
    atomic_fetch_add(&H.d5s_ok, 1);
  atomic_store(&H.d5s_blocked_rc, rv);
  sem_post(&H.d5s_done);
  return TRI_OK;
}

/* D12a: 100 response headers and 100 trailers, then echo one message. */
static int
h_meta(tri_stream *s, void *ud)
{
  char k[32], v[32];
  tri_buf *m = NULL;
  int i, rv;
  (void)ud;
  for (i = 0; i < 100; i++) {
    snprintf(k, sizeof(k), "x-h-%03d", i);
    snprintf(v, sizeof(v), "hv%03d", i);
    if (tri_stream_add_header(s, k, v, strlen(v)) != TRI_OK)
      atomic_fetch_add(&H.meta_add_fail, 1);
    snprintf(k, sizeof(k), "x-t-%03d", i);
    snprintf(v, sizeof(v), "tv%03d", i);
    if (tri_stream_add_trailer(s, k, v, strlen(v)) != TRI_OK)
      atomic_fetch_add(&H.meta_add_fail, 1);
  }
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return ret_rc(rv);
  rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
  tri_buf_free(m);
  if (rv == TRI_OK)
    rv = tri_stream_finish(s, TRI_OK, NULL);
  return ret_rc(rv);
}

/* D4: read the request headers over and over while polling for messages,
 * until the client's end of input (at most 5 s). */
static int
h_d4(tri_stream *s, void *ud)
{
  int64_t end = tu_now_ms() + 5000;
  long it = 0;
  unsigned sum = 0;
  int rv = TRI_OK;
  (void)ud;
  sem_post(&H.d4_started);
  while (tu_now_ms() < end) {
    const tri_metadata *md = tri_stream_headers(s, 0);
    size_t i, n = tri_metadata_count(md);
    tri_buf *m = NULL;
    for (i = 0; i < n; i++) {
      const char *k;
      const void *v;
      size_t vl;
      if (tri_metadata_get(md, i, &k, &v, &vl) == TRI_OK)
        sum += (unsigned)k[0] + (unsigned)vl +
               (vl ? ((const uint8_t *)v)[0] : 0u);
    }
    it++;
    rv = tri_stream_recv_ex(s, &m, 0);
    tri_buf_free(m);
    if (rv != TRI_OK && rv != TRI_ETIMEDOUT)
      break;
  }
  atomic_store(&H.d4_iter, it + (long)(sum & 1));
  return rv == TRI_EOF ? TRI_OK : ret_rc(rv);
}

static tri_server *g_srv;
static tri_channel *g_ch;
static int g_port;

static tri_server *
start_server(const tri_server_opts *so, int *port)
{
  tu_method m[] = {
      {M_ECHO, tu_echo_handler, NULL}, {M_FLOOD, h_flood, NULL},
      {M_SINK, h_sink, NULL},          {M_D2, h_d2, NULL},
      {M_STREAMER, h_streamer, NULL},  {M_D5C, h_d5c, NULL},
      {M_D5S, h_d5s, NULL},            {M_META, h_meta, NULL},
      {M_D4, h_d4, NULL},
  };
  return tu_server_start(m, sizeof(m) / sizeof(m[0]), so, port);
}

static void
setup(void)
{
  handlers_init();
  g_srv = NULL;
  g_ch = NULL;
  g_port = -1;
}

static void
teardown(void)
{
  tri_channel_free(g_ch);
  g_ch = NULL;
  tri_server_free(g_srv);
  g_srv = NULL;
}

/* Start the in-process server (|so| may be NULL) and a channel to it. */
static void
start(const tri_server_opts *so, const tri_channel_opts *co)
{
  g_srv = start_server(so, &g_port);
  ck_assert_msg(g_srv != NULL, "server did not start");
  g_ch = tu_channel_new(g_port, co);
  ck_assert_msg(g_ch != NULL, "channel not created");
}

static tri_stream *
open_on(tri_channel *ch, const char *method, const tri_call_opts *o)
{
  tri_stream *s = NULL;
  int rv = tri_stream_open(ch, method, o, &s);
  ck_assert_msg(rv == TRI_OK, "tri_stream_open(%s): %s", method, tu_code(rv));
  return s;
}

/* A unary echo of |len| bytes on |ch| with deadline |ms|.  Returns the
 * status; *|msg| gets the status message (static buffer). */
static int
echo_call(tri_channel *ch, size_t len, int ms, const char **msg)
{
  static _Thread_local char text[256];
  tri_call_opts *o = tri_call_opts_new();
  uint8_t *req = malloc(len ? len : 1);
  tri_buf *resp = NULL;
  tri_stream *s = NULL;
  const char *m = NULL;
  int rv;

  tu_fill(req, len, (uint32_t)len);
  tri_call_opts_set_timeout_ms(o, ms);
  rv = tri_unary_call(ch, M_ECHO, o, req, len, &resp, &s);
  if (rv == TRI_OK && (tri_buf_len(resp) != len ||
                       tu_check_fill(tri_buf_data(resp), len,
                                     (uint32_t)len) >= 0))
    rv = TRI_DATA_LOSS;
  if (s != NULL)
    tri_stream_wait_status(s, 0, &m);
  snprintf(text, sizeof(text), "%s", m ? m : "");
  if (msg != NULL)
    *msg = text;
  tri_buf_free(resp);
  tri_stream_free(s);
  tri_call_opts_free(o);
  free(req);
  return rv;
}

/* Raw HTTP/2 client: connect and handshake with |settings|. */
static int
raw_connect(int port, int rcvbuf, const uint32_t (*settings)[2], size_t n)
{
  int fd = h2_connect(port, rcvbuf);
  if (fd < 0)
    return -1;
  if (h2_handshake(fd, settings, n, MS(5000)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void
raw_request(h2buf *b, uint32_t sid, const char *path, const char *timeout,
            int end_stream)
{
  h2buf hb = {0};
  hp_grpc_request(&hb, path, timeout);
  h2_frame(b, H2_HEADERS, H2_F_END_HEADERS | (end_stream ? H2_F_END_STREAM : 0),
           sid, hb.p, hb.len);
  h2buf_free(&hb);
}

static long
reader_statuses(h2reader *r)
{
  long n = 0;
  int i;
  for (i = 0; i < 18; i++)
    n += atomic_load(&r->grpc_status[i]);
  return n;
}

/* ================================================================ */
/* D0: budget drift                                                  */
/* ================================================================ */

/*
 * D0 (client side).  A stream freed with received messages still queued
 * must give their bytes back to the connection's unread budget (8 MiB
 * here) and return the withheld connection window.  1,000 rounds of
 * "up to 1 MiB arrives, one message is read, the stream is freed"; without
 * the fix the connection window is withheld for good after some rounds
 * (with the default 64 MiB: 450-900 rounds here) and the first recv of the
 * next round never returns.
 * Bounds: each first message within 2 s (it takes milliseconds); the 64 KiB
 * echo after the rounds within 2 s; budgets back to zero within 2 s of
 * freeing everything (all x slack).
 */
START_TEST(test_d0_freed_stream_returns_conn_budget)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  const char *msg = NULL;
  int64_t t0, el;
  int round, rv;

  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 64), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(so, 64), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(so, 10000), TRI_OK);
  /* 8 MiB instead of the default 64 MiB: how much arrives before each
   * free varies with the load (60 KiB to 1 MiB); with 8 MiB the drift
   * shows well within 1,000 rounds however little it is. */
  ck_assert_int_eq(tri_channel_opts_set_conn_recv_queue(co, 8 * MIB), TRI_OK);
  start(so, co);
  tri_server_opts_free(so);
  tri_channel_opts_free(co);

  for (round = 0; round < 1000; round++) {
    tri_stream *s = open_on(g_ch, M_FLOOD, NULL);
    tri_buf *m = NULL;
    rv = tri_stream_recv_ex(s, &m, MS(2000));
    ck_assert_msg(rv == TRI_OK,
                  "round %d: first message of 1 MiB not received within "
                  "%d ms: %s [%s]",
                  round, MS(2000), tu_code(rv), budgets_str());
    tri_buf_free(m);
    tri_stream_free(s); /* ~960 KiB still queued or in flight */
  }
  t0 = tu_now_ms();
  rv = echo_call(g_ch, 64 * KIB, MS(2000), &msg);
  el = tu_now_ms() - t0;
  ck_assert_msg(rv == TRI_OK && el <= MS(2000),
                "64 KiB echo after 1000 freed streams: %s \"%s\" after %lld "
                "ms [%s]",
                tu_code(rv), msg, (long long)el, budgets_str());
  tri_channel_free(g_ch);
  g_ch = NULL;
  tri_server_free(g_srv);
  g_srv = NULL;
  ck_assert_msg(budgets_settle(MS(2000)) == 0,
                "budgets not back to zero 2 s after freeing everything: %s",
                budgets_str());
}
END_TEST

/*
 * D0 (server side).  The same for a server stream reset by the client
 * while its handler has unread messages queued: the server must give the
 * bytes back to the connection's budget.  Each round sends 1 MiB to a
 * handler that never reads, makes sure the server got it (a unary echo on
 * the same connection behind it), then cancels.  Without the fix the server
 * withholds the connection window after ~64 rounds and the client's sends
 * stall.  Bounds: each send within 2 s, each echo within 2 s, the call after
 * the rounds within 2 s, budgets back to zero within 2 s (all x slack).
 */
START_TEST(test_d0_reset_stream_returns_server_budget)
{
  static uint8_t buf[64 * 1024];
  tri_server_opts *so = tri_server_opts_new();
  const char *msg = NULL;
  int64_t t0, el;
  int round, i, rv;

  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 64), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(so, 64), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(so, 10000), TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);

  for (round = 0; round < 1000; round++) {
    tri_stream *s = open_on(g_ch, M_SINK, NULL);
    for (i = 0; i < 16; i++) {
      rv = tri_stream_send_ex(s, buf, sizeof(buf), 0, MS(2000));
      ck_assert_msg(rv == TRI_OK,
                    "round %d: send %d of 16 x 64 KiB to a handler that does "
                    "not read: %s [%s]",
                    round, i, tu_code(rv), budgets_str());
    }
    rv = echo_call(g_ch, 8, MS(2000), &msg);
    ck_assert_msg(rv == TRI_OK, "round %d: echo behind the 1 MiB: %s \"%s\"",
                  round, tu_code(rv), msg);
    tri_stream_cancel(s);
    tri_stream_free(s);
  }
  t0 = tu_now_ms();
  rv = echo_call(g_ch, 64 * KIB, MS(2000), &msg);
  el = tu_now_ms() - t0;
  ck_assert_msg(rv == TRI_OK && el <= MS(2000),
                "64 KiB echo after 1000 reset streams: %s \"%s\" after %lld "
                "ms [%s]",
                tu_code(rv), msg, (long long)el, budgets_str());
  tri_channel_free(g_ch);
  g_ch = NULL;
  tri_server_free(g_srv);
  g_srv = NULL;
  ck_assert_msg(budgets_settle(MS(2000)) == 0,
                "budgets not back to zero 2 s after freeing everything: %s",
                budgets_str());
}
END_TEST

/* ================================================================ */
/* Servers in child processes (D1, D6)                               */
/* ================================================================ */

typedef struct {
  pid_t pid;
  int port;
  int ctl;     /* write end; closing it tells the child to exit */
  int reaped;
  int status;
} child_srv;

/* The child's tri__accept_fail_hook: the listening loop sleeps this
 * long after each accept() that failed for want of descriptors. */
static int child_hook_ms;
static void
child_accept_hook(void)
{
  tu_sleep_ms(child_hook_ms);
}

/* Fork a server (echo + streamer methods).  Must be called before the
 * calling process starts any thread.  |nofile| > 0 lowers RLIMIT_NOFILE in
 * the child first; |io_threads| > 0 gives the server that many I/O loops;
 * |backoff_ms| > 0 sets how long accepting pauses on EMFILE, |hook_ms| > 0
 * how long the listener sleeps after each such failure.  The child
 * restores the default SIGPIPE disposition and an empty signal mask,
 * whatever the test harness set.  0 or -1. */
static int
child_server_start(child_srv *cs, int nofile, int io_threads, int backoff_ms,
                   int hook_ms)
{
  int pp[2], cp[2];
  struct pollfd pfd;

  memset(cs, 0, sizeof(*cs));
  if (pipe2(pp, O_CLOEXEC) != 0 || pipe2(cp, O_CLOEXEC) != 0)
    return -1;
  cs->pid = fork();
  if (cs->pid < 0)
    return -1;
  if (cs->pid == 0) {
    sigset_t none;
    tri_server *srv;
    int port = -1;
    char c;
    close(pp[0]);
    close(cp[1]);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    alarm(600); /* never outlive a lost parent for long */
    if (nofile > 0) {
      struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(2);
    }
    handlers_init();
    if (backoff_ms > 0)
      tri__accept_backoff_ms = backoff_ms; /* no loop exists yet */
    if (hook_ms > 0) {
      child_hook_ms = hook_ms;
      tri__accept_fail_hook = child_accept_hook;
    }
    if (io_threads > 0) {
      tri_server_opts *so = tri_server_opts_new();
      if (so == NULL || tri_server_opts_set_io_threads(so, io_threads) != 0)
        _exit(3);
      srv = start_server(so, &port);
      tri_server_opts_free(so);
    } else {
      srv = start_server(NULL, &port);
    }
    if (srv == NULL)
      _exit(3);
    if (write(pp[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
      _exit(4);
    while (read(cp[0], &c, 1) < 0 && errno == EINTR)
      ;
    _exit(0);
  }
  close(pp[1]);
  close(cp[0]);
  cs->ctl = cp[1];
  pfd.fd = pp[0];
  pfd.events = POLLIN;
  if (poll(&pfd, 1, MS(10000)) != 1 ||
      read(pp[0], &cs->port, sizeof(cs->port)) != (ssize_t)sizeof(cs->port)) {
    close(pp[0]);
    return -1;
  }
  close(pp[0]);
  return 0;
}

/* 1 while the child runs; 0 once it has exited (status in cs->status). */
static int
child_alive(child_srv *cs)
{
  if (cs->reaped)
    return 0;
  if (waitpid(cs->pid, &cs->status, WNOHANG) == cs->pid) {
    cs->reaped = 1;
    return 0;
  }
  return 1;
}

static const char *
wait_status_str(int st)
{
  static _Thread_local char ring[4][64];
  static _Thread_local unsigned next;
  char *buf = ring[next++ % 4];
  if (WIFSIGNALED(st))
    snprintf(buf, sizeof(ring[0]), "killed by signal %d (%s)", WTERMSIG(st),
             strsignal(WTERMSIG(st)));
  else if (WIFEXITED(st))
    snprintf(buf, sizeof(ring[0]), "exited with %d", WEXITSTATUS(st));
  else
    snprintf(buf, sizeof(ring[0]), "status 0x%x", st);
  return buf;
}

/* Wait up to |ms| for |pid| to exit; SIGKILL it after that.  Returns 0
 * when it exited by itself (status in *st), -1 when it had to be killed. */
static int
wait_child(pid_t pid, int ms, int *st)
{
  int64_t end = tu_now_ms() + ms;
  for (;;) {
    pid_t r = waitpid(pid, st, WNOHANG);
    if (r == pid)
      return 0;
    if (r < 0 && errno != EINTR)
      return 0;
    if (tu_now_ms() >= end)
      break;
    tu_sleep_ms(5);
  }
  kill(pid, SIGKILL);
  waitpid(pid, st, 0);
  return -1;
}

static void
child_server_stop(child_srv *cs)
{
  if (cs->ctl > 0)
    close(cs->ctl);
  cs->ctl = -1;
  if (!cs->reaped && cs->pid > 0) {
    wait_child(cs->pid, 5000, &cs->status);
    cs->reaped = 1;
  }
}

/* ================================================================ */
/* D1: SIGPIPE                                                       */
/* ================================================================ */

/* A client process (raw HTTP/2, so that its windows never close and the
 * server writes to it at full speed): open a stream to the streamer, report
 * once 256 KiB arrived and keep reading.  With |self_kill| it then reads
 * until its receive queue is empty and SIGKILLs itself, so the kernel sends
 * FIN rather than RST and the server goes on writing into a closed socket
 * (the EPIPE case); otherwise the parent kills it at a random moment. */
static void
d1_client_child(int port, int wfd, int self_kill)
{
  static const uint32_t set[][2] = {{H2_S_INITIAL_WINDOW_SIZE, 0x7fffffffu}};
  static uint8_t buf[256 * 1024];
  h2buf b = {0};
  long total = 0;
  int fd, told = 0, i;

  alarm(60);
  fd = h2_connect(port, 0);
  if (fd < 0 || h2_handshake(fd, set, 1, 10000) != 0)
    _exit(2);
  h2_window_update(&b, 0, 0x7fffffffu - 65535u);
  raw_request(&b, 1, M_STREAMER, NULL, 0);
  if (h2_write_all(fd, b.p, b.len, 10000, NULL) != 0)
    _exit(3);
  for (i = 0; i < 10000000; i++) {
    struct pollfd pfd = {fd, POLLIN, 0};
    ssize_t n;
    if (poll(&pfd, 1, 10000) != 1)
      _exit(4);
    n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      _exit(5);
    total += n;
    if (!told && total >= 256 * 1024) {
      told = 1;
      if (write(wfd, "x", 1) != 1)
        _exit(6);
    }
    if (told && self_kill) {
      /* drain what is queued now, then die with an empty queue */
      while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
      kill(getpid(), SIGKILL);
    }
  }
  _exit(7);
}

/*
 * D1.  A server process that keeps the default SIGPIPE disposition must
 * survive clients that die mid-stream: the library must never write to a
 * socket in a way that raises SIGPIPE (send(MSG_NOSIGNAL), or SIGPIPE
 * blocked on its threads).  100 client processes each receive data from a
 * streaming handler and are SIGKILLed while the server is writing to them
 * (every other one kills itself right after emptying its receive queue).
 * The server must still run (waitpid WNOHANG) after each kill and answer a
 * unary call within 5 s at the end (x slack; it takes milliseconds).
 */
START_TEST(test_d1_server_survives_sigpipe)
{
  child_srv cs;
  const char *msg = NULL;
  int i, rv;

  ck_assert_msg(child_server_start(&cs, 0, 0, 0, 0) == 0, "server child did not start");
  for (i = 0; i < 100; i++) {
    int rp[2], st = 0;
    struct pollfd pfd;
    pid_t c;
    char x;

    ck_assert_int_eq(pipe2(rp, O_CLOEXEC), 0);
    c = fork();
    ck_assert_int_ge(c, 0);
    if (c == 0) {
      close(rp[0]);
      d1_client_child(cs.port, rp[1], i % 2);
    }
    close(rp[1]);
    pfd.fd = rp[0];
    pfd.events = POLLIN;
    rv = poll(&pfd, 1, MS(10000));
    if (rv != 1 || read(rp[0], &x, 1) != 1) {
      int64_t end = tu_now_ms() + 500;
      kill(c, SIGKILL);
      waitpid(c, &st, 0);
      close(rp[0]);
      while (child_alive(&cs) && tu_now_ms() < end) /* dying server? */
        tu_sleep_ms(5);
      ck_abort_msg("client %d did not receive data within %d ms (client %s, "
                   "server %s)",
                   i, MS(10000), wait_status_str(st),
                   child_alive(&cs) ? "running" : wait_status_str(cs.status));
    }
    close(rp[0]);
    if (i % 2 == 0)
      kill(c, SIGKILL); /* mid-stream: the server is writing to it */
    rv = wait_child(c, MS(10000), &st);
    ck_assert_msg(child_alive(&cs),
                  "server process %s after client %d was killed mid-stream",
                  wait_status_str(cs.status), i);
    ck_assert_msg(rv == 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "client %d: %s", i, rv == 0 ? wait_status_str(st) : "hung");
  }
  /* The server still serves. */
  g_ch = tu_channel_new(cs.port, NULL);
  ck_assert_ptr_nonnull(g_ch);
  rv = echo_call(g_ch, 100, MS(5000), &msg);
  ck_assert_msg(child_alive(&cs), "server process %s after the last client",
                wait_status_str(cs.status));
  ck_assert_msg(rv == TRI_OK, "unary call after 100 killed clients: %s \"%s\"",
                tu_code(rv), msg);
  tri_channel_free(g_ch);
  g_ch = NULL;
  child_server_stop(&cs);
}
END_TEST

/* ================================================================ */
/* D2: finish, then the deadline                                     */
/* ================================================================ */

/*
 * D2 (tri client).  The handler queues 64 x 64 KiB and finishes OK before
 * the 300 ms deadline while the client does not read, so most of it still
 * sits in the server's send buffer when the deadline fires.  The client
 * then reads everything: it must never see status OK unless it got all 64
 * messages; the call ends DEADLINE_EXCEEDED.  20 rounds.  Bounds: the
 * stream ends within 2 s of opening (deadline 300 ms), reading what is
 * left within 5 s (x slack).  With the tri client the client's own timer
 * fires first (grpc-timeout is rounded up), so this variant may pass even
 * with the defect; test_d2_finish_then_deadline_raw shows it for sure.
 */
START_TEST(test_d2_finish_then_deadline)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  int rep;

  ck_assert_int_eq(tri_server_opts_set_send_buffer(so, 8 * MIB), TRI_OK);
  /* The handler must finish before the deadline: scaled under sanitizers
   * (queueing 4 MiB takes longer there). */
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, MS(300)), TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);
  for (rep = 0; rep < 20; rep++) {
    tri_stream *s = open_on(g_ch, M_D2, o);
    int st, rv = TRI_OK, n = 0, sent, i;
    ck_assert_msg(tu_sem_wait(&H.d2_done, MS(5000)) == 0,
                  "round %d: handler did not finish", rep);
    sent = atomic_load(&H.d2_sent);
    ck_assert_msg(atomic_load(&H.d2_finish_rc) == TRI_OK && sent == 64,
                  "round %d: handler queued %d, finish %s", rep, sent,
                  tu_code(atomic_load(&H.d2_finish_rc)));
    st = tri_stream_wait_status(s, MS(2000), NULL);
    ck_assert_msg(st != TRI_ETIMEDOUT, "round %d: call did not end", rep);
    for (i = 0; i < 1000; i++) {
      tri_buf *m = NULL;
      rv = tri_stream_recv_ex(s, &m, MS(5000));
      if (rv != TRI_OK)
        break;
      tri_buf_free(m);
      n++;
    }
    st = tri_stream_wait_status(s, 0, NULL);
    ck_assert_msg(!(st == TRI_OK && n != sent),
                  "round %d: status OK after %d of %d messages", rep, n, sent);
    ck_assert_msg(st == TRI_DEADLINE_EXCEEDED,
                  "round %d: final status %s (recv %s after %d of %d)", rep,
                  tu_code(st), tu_code(rv), n, sent);
    tri_stream_free(s);
  }
  tri_call_opts_free(o);
}
END_TEST

/*
 * D2 (raw client, deterministic).  The same as above with a client that
 * sends grpc-timeout 300m and keeps the windows at 64 KiB, so the server's
 * deadline fires with ~4 MiB queued after tri_stream_finish(OK).  Then the
 * client opens the windows and reads to the end of the stream.  It must
 * not get grpc-status 0 unless every byte the handler queued arrived; the
 * server ends the call with grpc-status 4 (DEADLINE_EXCEEDED).  Bounds: the
 * deadline plus 200 ms (x slack) before the windows open; the end of the
 * stream within 5 s (x slack) after that.
 */
START_TEST(test_d2_finish_then_deadline_raw)
{
  tri_server_opts *so = tri_server_opts_new();
  const long expect = 64L * (64 * 1024 + 5);
  h2buf b = {0};
  h2reader r;
  int64_t t0, end;
  int fd, rep;

  ck_assert_int_eq(tri_server_opts_set_send_buffer(so, 8 * MIB), TRI_OK);
  start(so, NULL);
  tri_server_opts_free(so);
  for (rep = 0; rep < 3; rep++) {
    fd = raw_connect(g_port, 0, NULL, 0);
    ck_assert_msg(fd >= 0, "raw connect/handshake failed");
    h2buf_reset(&b);
    char tmo[16];
    snprintf(tmo, sizeof tmo, "%dm", MS(300)); /* scaled, see above */
    raw_request(&b, 1, M_D2, tmo, 0);
    t0 = tu_now_ms();
    ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(5000), NULL), 0);
    ck_assert_msg(tu_sem_wait(&H.d2_done, MS(5000)) == 0,
                  "handler did not finish");
    ck_assert_msg(atomic_load(&H.d2_finish_rc) == TRI_OK &&
                      atomic_load(&H.d2_sent) == 64,
                  "handler queued %d, finish %s", atomic_load(&H.d2_sent),
                  tu_code(atomic_load(&H.d2_finish_rc)));
    /* The server's deadline passes with the data still queued (nothing
     * outside the server shows that moment: wait past it). */
    end = t0 + MS(300) + MS(200);
    while (tu_now_ms() < end)
      tu_sleep_ms(5);
    h2reader_start(&r, fd, 1);
    h2buf_reset(&b);
    h2_window_update(&b, 0, 0x7fffffffu - 65535u);
    h2_window_update(&b, 1, 0x7fffffffu - 65535u);
    ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(5000), NULL), 0);
    end = tu_now_ms() + MS(5000);
    while (reader_statuses(&r) == 0 && atomic_load(&r.frames[H2_RST_STREAM]) == 0 &&
           !atomic_load(&r.closed) && tu_now_ms() < end)
      tu_sleep_ms(5);
    h2reader_stop(&r);
    close(fd);
    ck_assert_msg(!(atomic_load(&r.grpc_status[0]) > 0 &&
                    atomic_load(&r.data_bytes) != expect),
                  "round %d: grpc-status 0 after %ld of %ld bytes (%s)", rep,
                  (long)atomic_load(&r.data_bytes), expect,
                  h2reader_summary(&r));
    ck_assert_msg(atomic_load(&r.grpc_status[4]) == 1,
                  "round %d: expected grpc-status 4 (DEADLINE_EXCEEDED): %s",
                  rep, h2reader_summary(&r));
  }
  h2buf_free(&b);
}
END_TEST

/* ================================================================ */
/* D3: a deadline under backpressure must not kill the connection    */
/* ================================================================ */

struct pinger {
  tri_channel *ch;
  atomic_int stop;
  atomic_int ok;
  atomic_int fail_rc;
  char fail_msg[256];
};

static void *
pinger_main(void *p)
{
  struct pinger *pg = p;
  int i;
  for (i = 0; i < 100000 && !atomic_load(&pg->stop); i++) {
    const char *msg = NULL;
    int rv = echo_call(pg->ch, 16, MS(2000), &msg);
    if (rv != TRI_OK) {
      snprintf(pg->fail_msg, sizeof(pg->fail_msg), "%s", msg);
      atomic_store(&pg->fail_rc, rv);
      break;
    }
    atomic_fetch_add(&pg->ok, 1);
  }
  return NULL;
}

/*
 * D3 (tri client).  Stream A (deadline 300 ms) gets a lot of data from its
 * handler and never reads it; stream B does unary calls on the same channel
 * all along.  When A's deadline fires, only A ends: B and 20 new calls keep
 * succeeding (no UNAVAILABLE "connection ...").  3 rounds.  Bounds: each
 * call 2 s; A ends within 3 s (x slack).  Over the tri client the client's
 * reads keep the socket from filling, so this variant may pass with the
 * defect; test_d3_deadline_under_backpressure_raw shows it for sure.
 */
START_TEST(test_d3_deadline_under_backpressure)
{
  tri_channel_opts *co = tri_channel_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  int rep, i;

  ck_assert_int_eq(tri_channel_opts_set_recv_queue(co, 16 * MIB), TRI_OK);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, MS(300)), TRI_OK);
  start(NULL, co);
  tri_channel_opts_free(co);
  for (rep = 0; rep < 3; rep++) {
    struct pinger pg;
    pthread_t t;
    tri_stream *a;
    const char *msg = NULL;
    int st, rv;

    memset(&pg, 0, sizeof(pg));
    pg.ch = g_ch;
    a = open_on(g_ch, M_STREAMER, o);
    ck_assert_int_eq(tu_thread_start(&t, pinger_main, &pg), 0);
    st = tri_stream_wait_status(a, MS(3000), NULL);
    ck_assert_msg(st == TRI_DEADLINE_EXCEEDED, "round %d: A ended with %s",
                  rep, tu_code(st));
    ck_assert_msg(tu_sem_wait(&H.st_end, MS(5000)) == 0,
                  "round %d: A's handler still sending", rep);
    for (i = 0; i < 20; i++) {
      rv = echo_call(g_ch, 1000, MS(2000), &msg);
      ck_assert_msg(rv == TRI_OK,
                    "round %d: call %d after A's deadline: %s \"%s\"", rep, i,
                    tu_code(rv), msg);
    }
    atomic_store(&pg.stop, 1);
    ck_assert_int_eq(tu_thread_join(t, MS(5000), NULL), 0);
    ck_assert_msg(atomic_load(&pg.fail_rc) == TRI_OK,
                  "round %d: stream B failed after %d calls: %s \"%s\"", rep,
                  atomic_load(&pg.ok), tu_code(atomic_load(&pg.fail_rc)),
                  pg.fail_msg);
    tri_stream_free(a);
  }
  tri_call_opts_free(o);
}
END_TEST

/*
 * D3 (raw client, deterministic).  A raw client with a small receive
 * buffer does not read at all while stream A (grpc-timeout 300m, 16 MiB
 * window) fills the socket and the server's write buffer; A's handler
 * blocks in send until the deadline.  After the deadline the client reads
 * again and sends 5 unary calls on new streams of the same connection:
 * each must get grpc-status 0 within 3 s (x slack); the server must not
 * close the connection or send GOAWAY.
 */
START_TEST(test_d3_deadline_under_backpressure_raw)
{
  static const uint32_t set[][2] = {{H2_S_INITIAL_WINDOW_SIZE, 16u << 20}};
  h2buf b = {0}, msg = {0};
  h2reader r;
  int fd, k, rc;

  start(NULL, NULL);
  fd = raw_connect(g_port, 4096, set, 1);
  ck_assert_msg(fd >= 0, "raw connect/handshake failed");
  h2_window_update(&b, 0, 1u << 30);
  char tmo[16];
  snprintf(tmo, sizeof tmo, "%dm", MS(300)); /* scaled under sanitizers */
  raw_request(&b, 1, M_STREAMER, tmo, 0);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(5000), NULL), 0);
  ck_assert_msg(tu_sem_wait(&H.st_end, MS(5000)) == 0,
                "A's handler still sending 5 s after its 300 ms deadline");
  rc = atomic_load(&H.st_rc);
  ck_assert_msg(rc == TRI_DEADLINE_EXCEEDED, "A's handler send ended with %s",
                tu_code(rc));
  h2reader_start(&r, fd, 1);
  h2_grpc_msg(&msg, "ping", 4);
  for (k = 0; k < 5; k++) {
    uint32_t sid = 3 + 2 * (uint32_t)k;
    int64_t end;
    h2buf_reset(&b);
    raw_request(&b, sid, M_ECHO, NULL, 0);
    h2_frame(&b, H2_DATA, H2_F_END_STREAM, sid, msg.p, msg.len);
    ck_assert_msg(h2_write_all(fd, b.p, b.len, MS(3000), NULL) == 0,
                  "call %d: write failed (%s)", k, h2reader_summary(&r));
    end = tu_now_ms() + MS(3000);
    while (atomic_load(&r.grpc_status[0]) < k + 1 && !atomic_load(&r.closed) &&
           atomic_load(&r.goaways) == 0 && tu_now_ms() < end)
      tu_sleep_ms(5);
    ck_assert_msg(atomic_load(&r.grpc_status[0]) >= k + 1 &&
                      !atomic_load(&r.closed) && atomic_load(&r.goaways) == 0,
                  "call %d on the same connection after A's deadline: %s "
                  "(goaway debug \"%s\")",
                  k, h2reader_summary(&r), r.goaway_debug);
  }
  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  h2buf_free(&msg);
}
END_TEST

/* ================================================================ */
/* D5: a send blocked across close_send / finish                     */
/* ================================================================ */

struct sender {
  tri_stream *s;
  tu_blocker b;
  atomic_int rc;
};

static void *
sender_main(void *p)
{
  static uint8_t buf[64 * 1024];
  struct sender *sd = p;
  tu_blocker_arrive(&sd->b);
  atomic_store(&sd->rc, tri_stream_send(sd->s, buf, sizeof(buf)));
  return NULL;
}

/*
 * D5 (client).  Thread T is blocked in tri_stream_send() of 64 KiB (send
 * buffer 1 KiB, server not reading, windows exhausted) when the main thread
 * calls tri_stream_close_send().  The send must return TRI_EOF (the
 * documented result of a send after close_send), never TRI_OK, and the
 * server must receive exactly the messages whose send returned OK.
 * Bounds: T returns within 5 s of close_send (x slack); it should return at
 * once, but the test lets the server read before judging.
 */
START_TEST(test_d5_send_blocked_across_close_send)
{
  static uint8_t buf[64 * 1024];
  tri_server_opts *so = tri_server_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  struct sender sd;
  tri_stream *s;
  pthread_t t;
  int i, rv = TRI_OK, n_ok = 0, trc, st;

  ck_assert_int_eq(tri_channel_opts_set_send_buffer(co, 1024), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_recv_queue(so, 1024), TRI_OK);
  start(so, co);
  tri_server_opts_free(so);
  tri_channel_opts_free(co);

  s = open_on(g_ch, M_D5C, NULL);
  ck_assert_msg(tu_sem_wait(&H.d5c_started, MS(5000)) == 0,
                "handler did not start");
  /* Fill the windows and the send buffer: until a 64 KiB send cannot even
   * start within 200 ms (then nothing of it was queued). */
  for (i = 0; i < 200; i++) {
    rv = tri_stream_send_ex(s, buf, sizeof(buf), 0, 200);
    if (rv != TRI_OK)
      break;
    n_ok++;
  }
  ck_assert_msg(rv == TRI_ETIMEDOUT, "filling: send %d returned %s", i,
                tu_code(rv));
  memset(&sd, 0, sizeof(sd));
  sd.s = s;
  atomic_store(&sd.rc, INT32_MIN);
  tu_blocker_init(&sd.b);
  ck_assert_int_eq(tu_thread_start(&t, sender_main, &sd), 0);
  ck_assert_msg(tu_blocker_wait(&sd.b, MS(5000), TU_SETTLE_MS) >= 0,
                "sender never blocked");
  ck_assert_msg(atomic_load(&sd.rc) == INT32_MIN,
                "send returned %s before close_send",
                tu_code(atomic_load(&sd.rc)));
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  sem_post(&H.d5c_go); /* now the server reads everything */
  ck_assert_msg(tu_thread_join(t, MS(5000), NULL) == 0,
                "send blocked across close_send never returned");
  trc = atomic_load(&sd.rc);
  ck_assert_msg(tu_sem_wait(&H.d5c_done, MS(5000)) == 0,
                "handler did not see the end of input");
  st = tri_stream_wait_status(s, MS(5000), NULL);
  ck_assert_msg(trc == TRI_EOF,
                "send blocked when close_send was called returned %s, not "
                "TRI_EOF (server got %d messages, %d sends returned OK before)",
                tu_code(trc), atomic_load(&H.d5c_count), n_ok);
  ck_assert_msg(atomic_load(&H.d5c_count) == n_ok,
                "server got %d messages, %d sends returned OK",
                atomic_load(&H.d5c_count), n_ok);
  ck_assert_int_eq(st, TRI_OK);
  tri_stream_free(s);
  tu_blocker_destroy(&sd.b);
}
END_TEST

/*
 * D5 (server).  The handler is blocked in tri_stream_send() on a full
 * send buffer (the client does not read) when another thread calls
 * tri_stream_finish(OK).  The blocked send must return TRI_ESTATE (the
 * documented result of a send after finish), never TRI_OK; the client
 * receives exactly the messages whose send returned OK, then status OK.
 * Bounds: everything within 5 s (x slack) once the client reads.
 */
START_TEST(test_d5_send_blocked_across_finish)
{
  tri_channel_opts *co = tri_channel_opts_new();
  tri_stream *s, *ss;
  int i, rv = TRI_OK, n = 0, frc, brc, st;

  ck_assert_int_eq(tri_channel_opts_set_recv_queue(co, 1024), TRI_OK);
  start(NULL, co);
  tri_channel_opts_free(co);
  s = open_on(g_ch, M_D5S, NULL);
  ck_assert_msg(tu_blocker_wait(&H.d5s_block, MS(10000), TU_SETTLE_MS) >= 0,
                "handler never blocked in send");
  ss = (tri_stream *)atomic_load(&H.d5s_stream);
  ck_assert_msg(atomic_load(&H.d5s_blocked_rc) == INT32_MIN,
                "handler's send returned %s before finish",
                tu_code(atomic_load(&H.d5s_blocked_rc)));
  frc = tri_stream_finish(ss, TRI_OK, NULL);
  ck_assert_msg(frc == TRI_OK, "finish from another thread: %s", tu_code(frc));
  for (i = 0; i < 100000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv_ex(s, &m, MS(5000));
    if (rv != TRI_OK)
      break;
    tri_buf_free(m);
    n++;
  }
  st = tri_stream_wait_status(s, MS(5000), NULL);
  ck_assert_msg(tu_sem_wait(&H.d5s_done, MS(5000)) == 0,
                "handler's send never returned after finish");
  brc = atomic_load(&H.d5s_blocked_rc);
  ck_assert_msg(brc == TRI_ESTATE,
                "send blocked when finish was called returned %s, not "
                "TRI_ESTATE (client got %d messages, %d sends returned OK)",
                tu_code(brc), n, atomic_load(&H.d5s_ok));
  ck_assert_msg(rv == TRI_EOF && st == TRI_OK, "client end: recv %s status %s",
                tu_code(rv), tu_code(st));
  ck_assert_msg(n == atomic_load(&H.d5s_ok),
                "client got %d messages, %d server sends returned OK", n,
                atomic_load(&H.d5s_ok));
  tri_stream_free(s);
}
END_TEST

/* ================================================================ */
/* D6: EMFILE must not make the server spin                          */
/* ================================================================ */

/* utime + stime of |pid| in ms, or -1. */
static long
proc_cpu_ms(pid_t pid)
{
  char path[64], buf[1024];
  unsigned long ut = 0, stt = 0;
  const char *p;
  FILE *f;
  size_t n;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  f = fopen(path, "re");
  if (f == NULL)
    return -1;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  p = strrchr(buf, ')');
  if (p == NULL)
    return -1;
  /* fields after comm: state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &stt) != 2)
    return -1;
  return (long)((ut + stt) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static int
proc_nfds(pid_t pid)
{
  char path[64];
  struct dirent *e;
  DIR *d;
  int n = 0;
  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  d = opendir(path);
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Open |nraw| raw connections to the child server and wait until it
 * holds as many descriptors as it can: the count stays the same for
 * |stable_ms| (in 10 ms steps), close to |nofile|.  Returns that count. */
static int
fill_descriptors(child_srv *cs, int *fds, int nraw, int nofile, int stable_ms)
{
  int i, n, prev = -1, stable = 0;
  int64_t end;
  for (i = 0; i < nraw; i++) {
    fds[i] = tu_raw_connect(cs->port);
    ck_assert_msg(fds[i] >= 0, "raw connect %d: %s", i, strerror(errno));
  }
  end = tu_now_ms() + MS(5000);
  while (tu_now_ms() < end) {
    n = proc_nfds(cs->pid);
    if (n == prev && n >= nofile - 4) {
      if (++stable >= stable_ms / 10)
        break;
    } else {
      stable = 0;
    }
    prev = n;
    tu_sleep_ms(10);
  }
  ck_assert_msg(stable >= stable_ms / 10,
                "server child has %d descriptors (limit %d)", prev, nofile);
  return prev;
}

/*
 * D6.  A server whose accept() fails with EMFILE must back off instead of
 * spinning on the always-readable listening socket, and resume accepting
 * when descriptors are free again.  Server process with RLIMIT_NOFILE 64;
 * the test opens 100 raw connections (the rest wait in the backlog).  While
 * the server is out of descriptors its CPU time over 1 s must stay under
 * 50 ms (5 % of a core; x slack).  After 90 raw connections are closed, a
 * new call must succeed within 1 s (x slack).
 */
START_TEST(test_d6_emfile_no_spin)
{
  enum { NOFILE = 64, NRAW = 100 };
  int fds[NRAW];
  child_srv cs;
  const char *msg = NULL;
  int i, rv;
  long c0, c1;
  int64_t t0, el;

  if (getenv("TRI_VALGRIND") != NULL) {
    /* This test measures CPU time and descriptor limits, both of which
     * valgrind changes (it reserves descriptors of its own); it runs in
     * the plain, TSan and ASan builds. */
    fprintf(stderr, "d6: not run under valgrind (CPU and descriptor "
            "limits)\n");
    return;
  }
  ck_assert_msg(child_server_start(&cs, NOFILE, 0, 0, 0) == 0,
                "server child did not start");
  /* the server holds as many descriptors as it can */
  (void)fill_descriptors(&cs, fds, NRAW, NOFILE, 200);
  c0 = proc_cpu_ms(cs.pid);
  t0 = tu_now_ms();
  tu_sleep_ms(1000);
  c1 = proc_cpu_ms(cs.pid);
  el = tu_now_ms() - t0;
  ck_assert_msg(c0 >= 0 && c1 >= 0, "cannot read /proc/%d/stat", (int)cs.pid);
  ck_assert_msg(c1 - c0 < MS(50),
                "server out of descriptors used %ld ms CPU in %lld ms "
                "(limit %d ms)",
                c1 - c0, (long long)el, MS(50));
  ck_assert_msg(child_alive(&cs), "server %s", wait_status_str(cs.status));
  for (i = 0; i < 90; i++)
    close(fds[i]);
  g_ch = tu_channel_new(cs.port, NULL);
  ck_assert_ptr_nonnull(g_ch);
  t0 = tu_now_ms();
  rv = echo_call(g_ch, 100, MS(1000), &msg);
  el = tu_now_ms() - t0;
  ck_assert_msg(rv == TRI_OK,
                "call after descriptors were freed: %s \"%s\" after %lld ms",
                tu_code(rv), msg, (long long)el);
  for (i = 90; i < NRAW; i++)
    close(fds[i]);
  tri_channel_free(g_ch);
  g_ch = NULL;
  child_server_stop(&cs);
}
END_TEST

/*
 * D6b.  The same with two I/O loops: a connection that closes on the
 * loop that does not accept must resume accepting at once too, even when
 * it closes while the listener is between a failed accept() and its
 * pause.  The back-off is raised to 60 s, so only the resumption lets
 * the call through within its 3 s deadline (the promise is "at once";
 * 3 s is headroom for a loaded machine, below the 10 s handshake timeout
 * that would free the raw connections' descriptors too).  The listener
 * sleeps 300 ms after each failed accept() (tri__accept_fail_hook), so
 * the test can close connections inside that window: it closes one on
 * loop 1 (the listener resumes, takes one connection from the backlog,
 * fails again and sleeps), then, 100 ms later, more than the backlog
 * holds.  The listener hands accepted sockets out in turn (h2server.c
 * pick_loop), so raw connection i lives on loop i % 2 while none has
 * closed: only odd ones among those accepted are closed.
 */
START_TEST(test_d6_emfile_other_loop)
{
  enum { NOFILE = 64, NRAW = 64 };
  int fds[NRAW], closed[NRAW] = {0};
  child_srv cs;
  const char *msg = NULL;
  int i, prev, rv, nclosed = 0, base, accepted, want;
  int64_t t0, el;

  if (getenv("TRI_VALGRIND") != NULL) {
    fprintf(stderr, "d6b: not run under valgrind (descriptor limits)\n");
    return;
  }
  ck_assert_msg(child_server_start(&cs, NOFILE, 2, 60000, 300) == 0,
                "server child did not start");
  base = proc_nfds(cs.pid);
  ck_assert_msg(base > 0, "cannot read /proc/%d/fd", (int)cs.pid);
  /* Stable for 1 s: past the listener's two 300 ms sleeps, paused. */
  prev = fill_descriptors(&cs, fds, NRAW, NOFILE, 1000);
  /* |accepted| connections hold a descriptor each; the odd ones among
   * them are on loop 1.  After the first close the listener takes one
   * more; then close two more than the backlog and the call need. */
  accepted = prev - base;
  want = (NRAW - accepted - 1) + 1 + 2;
  ck_assert_msg((accepted - 1) / 2 >= want + 1,
                "server accepted %d of %d connections", accepted, NRAW);
  close(fds[1]);
  closed[1] = 1;
  tu_sleep_ms(100);
  for (i = 3; i < accepted && nclosed < want; i += 2) {
    close(fds[i]);
    closed[i] = 1;
    nclosed++;
  }
  g_ch = tu_channel_new(cs.port, NULL);
  ck_assert_ptr_nonnull(g_ch);
  t0 = tu_now_ms();
  rv = echo_call(g_ch, 100, 3000, &msg);
  el = tu_now_ms() - t0;
  ck_assert_msg(rv == TRI_OK,
                "call after loop 1 freed 1 + %d descriptors (listener's "
                "back-off 60 s): %s \"%s\" after %lld ms",
                nclosed, tu_code(rv), msg, (long long)el);
  ck_assert_msg(child_alive(&cs), "server %s", wait_status_str(cs.status));
  for (i = 0; i < NRAW; i++)
    if (!closed[i])
      close(fds[i]);
  tri_channel_free(g_ch);
  g_ch = NULL;
  child_server_stop(&cs);
}
END_TEST

/* ================================================================ */
/* D7: DNS through the library's resolver (TRI_DNS_SERVERS)          */
/* ================================================================ */

/* Network guard (see the top of the file): host names never reach the
 * system resolver from this binary. */
static atomic_int guard_refused;

int
getaddrinfo(const char *node, const char *service,
            const struct addrinfo *hints, struct addrinfo **res)
{
  static int (*real)(const char *, const char *, const struct addrinfo *,
                     struct addrinfo **);
  unsigned char a[16];
  if (real == NULL)
    *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
  if (node != NULL && strcmp(node, "localhost") != 0 &&
      inet_pton(AF_INET, node, a) != 1 && inet_pton(AF_INET6, node, a) != 1 &&
      !(hints != NULL && (hints->ai_flags & AI_NUMERICHOST))) {
    atomic_fetch_add(&guard_refused, 1);
    return EAI_NONAME;
  }
  if (real == NULL)
    return EAI_SYSTEM;
  return real(node, service, hints, res);
}

static tri_channel *
channel_to(const char *host, int port)
{
  char target[128];
  tri_channel *ch = NULL;
  int rv;
  snprintf(target, sizeof(target), "%s:%d", host, port);
  rv = tri_channel_new(&ch, target, NULL);
  ck_assert_msg(rv == TRI_OK, "tri_channel_new(%s): %s", target, tu_code(rv));
  return ch;
}

/*
 * D7a.  A name the DNS server says does not exist (NXDOMAIN) fails the call
 * with UNAVAILABLE and a message containing "cannot resolve
 * 'nohost.invalid'", well before the 5 s deadline (x slack); the query went
 * to the TRI_DNS_SERVERS responder.
 */
START_TEST(test_d7_dns_nxdomain)
{
  tu_dns d;
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s = NULL;
  tri_buf *resp = NULL;
  const char *msg = NULL;
  int rv;

  ck_assert_int_eq(tu_dns_start(&d, TU_DNS_NXDOMAIN, 1), 0);
  g_ch = channel_to("nohost.invalid", tu_unused_port());
  tri_call_opts_set_timeout_ms(o, MS(5000));
  rv = tri_unary_call(g_ch, M_ECHO, o, "x", 1, &resp, &s);
  if (s != NULL)
    tri_stream_wait_status(s, 0, &msg);
  ck_assert_msg(rv == TRI_UNAVAILABLE && msg != NULL &&
                    strstr(msg, "cannot resolve 'nohost.invalid'") != NULL,
                "call to nohost.invalid: %s \"%s\" (queries to the test DNS "
                "server: %d; names refused by the getaddrinfo guard: %d)",
                tu_code(rv), msg ? msg : "", atomic_load(&d.queries),
                atomic_load(&guard_refused));
  ck_assert_msg(atomic_load(&d.queries) > 0,
                "TRI_DNS_SERVERS responder got no query");
  tri_stream_free(s);
  tri_buf_free(resp);
  tri_call_opts_free(o);
  tri_channel_free(g_ch);
  g_ch = NULL;
  tu_dns_stop(&d);
}
END_TEST

/*
 * D7b.  A DNS server that never answers: resolution must not block the
 * channel.  A call with a 300 ms deadline returns DEADLINE_EXCEEDED within
 * 300-600 ms (x slack on the upper bound); tri_channel_free() with a
 * resolution still pending returns within 100 ms (x slack).
 */
START_TEST(test_d7_dns_silent)
{
  tu_dns d;
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s2 = NULL;
  tri_buf *resp = NULL;
  int64_t t0, el, end;
  int rv, q0;

  ck_assert_int_eq(tu_dns_start(&d, TU_DNS_SILENT, 1), 0);
  g_ch = channel_to("silent.test", tu_unused_port());
  tri_call_opts_set_timeout_ms(o, 300);
  t0 = tu_now_ms();
  rv = tri_unary_call(g_ch, M_ECHO, o, "x", 1, &resp, NULL);
  el = tu_now_ms() - t0;
  tri_buf_free(resp);
  ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED && el >= 295 && el <= MS(600),
                "call with a 300 ms deadline, DNS silent: %s after %lld ms "
                "(queries %d, guard refusals %d)",
                tu_code(rv), (long long)el, atomic_load(&d.queries),
                atomic_load(&guard_refused));
  /* Another stream keeps a resolution wanted; wait (at most 300 ms) for
   * the responder to see a query for it or a retry. */
  q0 = atomic_load(&d.queries);
  ck_assert_int_eq(tri_stream_open(g_ch, M_ECHO, NULL, &s2), TRI_OK);
  end = tu_now_ms() + 300;
  while (atomic_load(&d.queries) == q0 && tu_now_ms() < end)
    tu_sleep_ms(5);
  t0 = tu_now_ms();
  tri_channel_free(g_ch);
  el = tu_now_ms() - t0;
  g_ch = NULL;
  ck_assert_msg(el <= MS(100),
                "tri_channel_free with a resolution pending took %lld ms",
                (long long)el);
  rv = tri_stream_send_ex(s2, "x", 1, 0, 0);
  ck_assert_msg(rv != TRI_OK, "send on a stream of a freed channel: %s",
                tu_code(rv));
  tri_stream_free(s2);
  tri_call_opts_free(o);
  tu_dns_stop(&d);
}
END_TEST

/*
 * D7c.  A name resolved by the TRI_DNS_SERVERS responder (A 127.0.0.1, no
 * AAAA) reaches the real server on 127.0.0.1: the echo succeeds within 5 s
 * (x slack).
 */
START_TEST(test_d7_dns_a_record)
{
  tu_dns d;
  tri_channel *ch;
  const char *msg = NULL;
  int rv;

  ck_assert_int_eq(tu_dns_start(&d, TU_DNS_A, 1), 0);
  g_srv = start_server(NULL, &g_port);
  ck_assert_ptr_nonnull(g_srv);
  ch = channel_to("myservice.test", g_port);
  rv = echo_call(ch, 100, MS(5000), &msg);
  ck_assert_msg(rv == TRI_OK,
                "echo via myservice.test: %s \"%s\" (queries %d, guard "
                "refusals %d)",
                tu_code(rv), msg, atomic_load(&d.queries),
                atomic_load(&guard_refused));
  tri_channel_free(ch);
  tu_dns_stop(&d);
}
END_TEST

/* ================================================================ */
/* D8: RST_STREAM once the final status is known                     */
/* ================================================================ */

/* A scripted nghttp2 server: SETTINGS_MAX_CONCURRENT_STREAMS=1; every
 * request gets HEADERS, one message "ok" and trailers with grpc-status 0
 * (END_STREAM) at once, without waiting for the client's END_STREAM and
 * without ever sending RST_STREAM.  Records the RST_STREAMs it receives. */
#define D8_MAX_CONNS 4
typedef struct d8_srv d8_srv;
typedef struct {
  d8_srv *d;
  int fd;
  nghttp2_session *sess;
} d8_conn;
struct d8_srv {
  int lfd, port;
  pthread_t t;
  atomic_int stop;
  atomic_int requests;
  atomic_int rst_mask;      /* bit k: RST_STREAM for stream 2k+1 */
  atomic_uint rst_code1;    /* its code for stream 1 */
  atomic_int goaways;
  d8_conn c[D8_MAX_CONNS];
};

static const uint8_t d8_body[] = {0, 0, 0, 0, 2, 'o', 'k'};

static ssize_t
d8_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
  static const nghttp2_nv trl[] = {
      {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
  (void)ud;
  (void)src;
  /* The body is tiny: all of it in the first call. */
  if (len < sizeof(d8_body))
    return NGHTTP2_ERR_DEFERRED;
  memcpy(buf, d8_body, sizeof(d8_body));
  *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  nghttp2_submit_trailer(sess, id, trl, 1);
  return (ssize_t)sizeof(d8_body);
}

static int
d8_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
  d8_conn *c = ud;
  if (f->hd.type == NGHTTP2_HEADERS &&
      f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    static const nghttp2_nv hdr[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
         NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider prd;
    prd.source.ptr = NULL;
    prd.read_callback = d8_read_cb;
    atomic_fetch_add(&c->d->requests, 1);
    nghttp2_submit_response(sess, f->hd.stream_id, hdr, 2, &prd);
  } else if (f->hd.type == NGHTTP2_RST_STREAM) {
    int32_t id = f->hd.stream_id;
    if (id >= 1 && id < 62)
      atomic_fetch_or(&c->d->rst_mask, 1 << ((id - 1) / 2));
    if (id == 1)
      atomic_store(&c->d->rst_code1, f->rst_stream.error_code);
  } else if (f->hd.type == NGHTTP2_GOAWAY) {
    atomic_fetch_add(&c->d->goaways, 1);
  }
  return 0;
}

static void
d8_flush(d8_conn *c)
{
  int i;
  for (i = 0; i < 1024; i++) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(c->sess, &p);
    if (n <= 0)
      return;
    if (h2_write_all(c->fd, p, (size_t)n, 5000, NULL) != 0)
      return;
  }
}

static void
d8_conn_close(d8_conn *c)
{
  if (c->fd >= 0)
    close(c->fd);
  nghttp2_session_del(c->sess);
  c->fd = -1;
  c->sess = NULL;
}

static void *
d8_main(void *p)
{
  d8_srv *d = p;
  nghttp2_session_callbacks *cbs;
  uint8_t buf[16384];
  int i;

  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, d8_frame_recv);
  for (i = 0; i < D8_MAX_CONNS; i++)
    d->c[i].fd = -1;
  while (!atomic_load(&d->stop)) {
    struct pollfd pf[1 + D8_MAX_CONNS];
    int map[1 + D8_MAX_CONNS], np = 1;
    pf[0].fd = d->lfd;
    pf[0].events = POLLIN;
    for (i = 0; i < D8_MAX_CONNS; i++)
      if (d->c[i].fd >= 0) {
        pf[np].fd = d->c[i].fd;
        pf[np].events = POLLIN;
        map[np++] = i;
      }
    if (poll(pf, (nfds_t)np, 20) <= 0)
      continue;
    if (pf[0].revents & POLLIN) {
      int fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      for (i = 0; fd >= 0 && i < D8_MAX_CONNS; i++)
        if (d->c[i].fd < 0)
          break;
      if (fd >= 0 && i < D8_MAX_CONNS) {
        nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                     1};
        d->c[i].d = d;
        d->c[i].fd = fd;
        nghttp2_session_server_new(&d->c[i].sess, cbs, &d->c[i]);
        nghttp2_submit_settings(d->c[i].sess, NGHTTP2_FLAG_NONE, &iv, 1);
        d8_flush(&d->c[i]);
      } else if (fd >= 0) {
        close(fd);
      }
    }
    for (i = 1; i < np; i++) {
      d8_conn *c = &d->c[map[i]];
      ssize_t n;
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      n = recv(c->fd, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (n <= 0 || nghttp2_session_mem_recv(c->sess, buf, (size_t)n) < 0) {
        d8_conn_close(c);
        continue;
      }
      d8_flush(c);
    }
  }
  for (i = 0; i < D8_MAX_CONNS; i++)
    if (d->c[i].fd >= 0)
      d8_conn_close(&d->c[i]);
  nghttp2_session_callbacks_del(cbs);
  return NULL;
}

/*
 * D8.  Once a client stream has its final status (trailers with
 * END_STREAM), the client must reset it (RST_STREAM) if it has not sent
 * END_STREAM itself, so the stream stops counting against the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS even while the application keeps the
 * handle.  With a limit of 1, a second call must complete within 1 s
 * (x slack; it takes milliseconds), and the server must have received
 * RST_STREAM for stream 1.
 */
START_TEST(test_d8_rst_after_final_status)
{
  d8_srv d;
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s1;
  tri_buf *m = NULL;
  int64_t t0, el, end;
  int rv, st, lfd;

  memset(&d, 0, sizeof(d));
  lfd = tu_silent_listener(&d.port);
  ck_assert_int_ge(lfd, 0);
  d.lfd = lfd;
  ck_assert_int_eq(tu_thread_start(&d.t, d8_main, &d), 0);
  g_ch = tu_channel_new(d.port, NULL);
  ck_assert_ptr_nonnull(g_ch);

  s1 = open_on(g_ch, "/d8.Svc/One", NULL); /* no close_send */
  rv = tri_stream_recv_ex(s1, &m, MS(5000));
  ck_assert_msg(rv == TRI_OK, "stream 1 message: %s", tu_code(rv));
  tri_buf_free(m);
  m = NULL;
  rv = tri_stream_recv_ex(s1, &m, MS(5000));
  st = tri_stream_wait_status(s1, MS(1000), NULL);
  ck_assert_msg(rv == TRI_EOF && st == TRI_OK, "stream 1 end: %s, status %s",
                tu_code(rv), tu_code(st));

  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, MS(1000)), TRI_OK);
  t0 = tu_now_ms();
  rv = tri_unary_call(g_ch, "/d8.Svc/Two", o, "x", 1, &m, NULL);
  el = tu_now_ms() - t0;
  tri_buf_free(m);
  ck_assert_msg(rv == TRI_OK && el <= MS(1000),
                "second call with stream 1 finished but not freed: %s after "
                "%lld ms (server saw %d requests; RST mask 0x%x)",
                tu_code(rv), (long long)el, atomic_load(&d.requests),
                atomic_load(&d.rst_mask));
  end = tu_now_ms() + MS(1000);
  while (!(atomic_load(&d.rst_mask) & 1) && tu_now_ms() < end)
    tu_sleep_ms(5);
  ck_assert_msg(atomic_load(&d.rst_mask) & 1,
                "server never received RST_STREAM for stream 1");
  tri_stream_free(s1);
  tri_channel_free(g_ch);
  g_ch = NULL;
  atomic_store(&d.stop, 1);
  tu_thread_join(d.t, 5000, NULL);
  close(lfd);
  tri_call_opts_free(o);
}
END_TEST

/* ================================================================ */
/* D9: INT64_MAX timeouts                                            */
/* ================================================================ */

/*
 * D9.  INT64_MAX keepalive interval/timeout and idle timeout mean "never"
 * (they must not overflow into "now").  Two calls 500 ms apart succeed,
 * and the connection stays up in between: the process-wide connection
 * count (client + server side = 2) never drops while sampled every 10 ms.
 */
START_TEST(test_d9_int64_max_timeouts)
{
  tri_server_opts *so = tri_server_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  const char *msg = NULL;
  tri__budgets b;
  int64_t t0, now;
  int rv;

  ck_assert_int_eq(tri_server_opts_set_idle_timeout_ms(so, INT64_MAX), TRI_OK);
  ck_assert_int_eq(tri_channel_opts_set_keepalive(co, INT64_MAX, INT64_MAX),
                   TRI_OK);
  start(so, co);
  tri_server_opts_free(so);
  tri_channel_opts_free(co);
  rv = echo_call(g_ch, 100, MS(2000), &msg);
  ck_assert_msg(rv == TRI_OK, "first call: %s \"%s\"", tu_code(rv), msg);
  tri__budgets_get(&b);
  ck_assert_msg(b.conns == 2, "connections after the first call: %lld",
                (long long)b.conns);
  t0 = tu_now_ms();
  while ((now = tu_now_ms()) - t0 < 500) {
    tri__budgets_get(&b);
    ck_assert_msg(b.conns == 2,
                  "a connection closed %lld ms into the idle time "
                  "(connections: %lld)",
                  (long long)(now - t0), (long long)b.conns);
    tu_sleep_ms(10);
  }
  rv = echo_call(g_ch, 100, MS(2000), &msg);
  ck_assert_msg(rv == TRI_OK, "second call after 500 ms idle: %s \"%s\"",
                tu_code(rv), msg);
  tri__budgets_get(&b);
  ck_assert_msg(b.conns == 2, "connections after the second call: %lld",
                (long long)b.conns);
}
END_TEST

/* ================================================================ */
/* D10: the deframer must not allocate the announced length           */
/* ================================================================ */

static long
vmsize_kb(void)
{
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "re");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "VmSize:", 7) == 0) {
      kb = strtol(line + 7, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/*
 * D10.  1,000 streams on one connection each send a 5-byte gRPC prefix
 * announcing 4,000,000 bytes (under the 4 MiB limit) and 3 bytes of it.
 * The server must hold memory for what arrived, not for what was
 * announced: VmSize grows by less than 256 MiB (x slack: sanitizers map
 * memory per thread; 4 GB if each stream allocates the announced length)
 * and budget partial_bytes stays under 64 MiB, i.e. under 64 KiB a stream.  The server processed every frame when it answers the PING sent
 * after them (within 10 s, x slack); the connection stays open.
 */
START_TEST(test_d10_deframer_announced_length)
{
  static const uint8_t pre[8] = {0, 0x00, 0x3d, 0x09, 0x00, 'a', 'b', 'c'};
  static const uint32_t set[][2] = {{H2_S_MAX_CONCURRENT_STREAMS, 100}};
  tri_server_opts *so = tri_server_opts_new();
  h2buf b = {0};
  h2reader r;
  tri__budgets bg;
  long vm0, vm1;
  int64_t end;
  int fd, k;

  /* One malloc arena: thread arenas reserve 64 MiB of address space each
   * and would drown what is measured here. */
  mallopt(M_ARENA_MAX, 1);
  ck_assert_int_eq(tri_server_opts_set_max_concurrent_streams(so, 1100),
                   TRI_OK);
  /* Every stream must be accepted: the handler queue holds 4 x workers +
   * 64 streams, and this one connection may have all 1000 (240 handlers
   * blocked in recv on 128 KiB stacks, ~32 MiB, the rest queued). */
  ck_assert_int_eq(tri_server_opts_set_max_workers(so, 240), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(so, 1000),
                   TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_worker_stack(so, 128 * 1024), TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_queue_timeout_ms(so, 60000), TRI_OK);
  g_srv = start_server(so, &g_port);
  tri_server_opts_free(so);
  ck_assert_ptr_nonnull(g_srv);
  fd = raw_connect(g_port, 0, set, 1);
  ck_assert_msg(fd >= 0, "raw connect/handshake failed");
  h2reader_start(&r, fd, 0);
  vm0 = vmsize_kb();
  for (k = 0; k < 1000; k++) {
    uint32_t sid = 1 + 2 * (uint32_t)k;
    raw_request(&b, sid, M_ECHO, NULL, 0);
    h2_frame(&b, H2_DATA, 0, sid, pre, sizeof(pre)); /* 4,000,000 = 0x3d0900 */
  }
  h2_ping(&b, 0x1234);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(10000), NULL), 0);
  end = tu_now_ms() + MS(10000);
  while (atomic_load(&r.frames[H2_PING]) == 0 && !atomic_load(&r.closed) &&
         tu_now_ms() < end)
    tu_sleep_ms(5);
  vm1 = vmsize_kb();
  tri__budgets_get(&bg);
  ck_assert_msg(atomic_load(&r.frames[H2_PING]) > 0 && !atomic_load(&r.closed),
                "no PING ACK after the 1000 streams: %s", h2reader_summary(&r));
  ck_assert_msg(vm0 > 0 && vm1 - vm0 < MS(256) * 1024L,
                "VmSize grew by %ld MiB for 1000 x 3 bytes received "
                "(partial_bytes %lld)",
                (vm1 - vm0) / 1024, (long long)bg.partial_bytes);
  ck_assert_msg(bg.partial_bytes < (int64_t)(64 * MIB),
                "partial_bytes %lld", (long long)bg.partial_bytes);
  ck_assert_msg(atomic_load(&r.goaways) == 0 &&
                    atomic_load(&r.frames[H2_RST_STREAM]) == 0,
                "server refused streams (the test needs all 1000 open): %s",
                h2reader_summary(&r));
  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
}
END_TEST

/* ================================================================ */
/* D11: fork, and the signal mask of library threads                  */
/* ================================================================ */

struct fork_res {
  atomic_int stage;
  int rc1, rc2;
  long el1, el3;
};

/*
 * D11.  After fork(), the child must not hang on what it inherited: a
 * unary call (200 ms deadline) on the parent's channel returns (any status)
 * within 1 s; a new channel in the child works; tri_channel_free() of the
 * inherited channel returns within 1 s (all x slack).  A watchdog (alarm,
 * 10 s x slack) ends a hung child; the parent waits 15 s (x slack).
 */
START_TEST(test_d11_fork_child_does_not_hang)
{
  struct fork_res *res;
  const char *msg = NULL;
  int rv, st;
  pid_t pid;

  start(NULL, NULL);
  rv = echo_call(g_ch, 10, MS(2000), &msg);
  ck_assert_msg(rv == TRI_OK, "call before fork: %s", tu_code(rv));
  res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(res, MAP_FAILED);
  memset(res, 0, sizeof(*res));
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    tri_call_opts *o;
    tri_channel *ch2;
    tri_buf *resp = NULL;
    int64_t t0;
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)MS(10));
    atomic_store(&res->stage, 1);
    o = tri_call_opts_new();
    tri_call_opts_set_timeout_ms(o, 200);
    t0 = tu_now_ms();
    res->rc1 = tri_unary_call(g_ch, M_ECHO, o, "x", 1, &resp, NULL);
    res->el1 = (long)(tu_now_ms() - t0);
    tri_buf_free(resp);
    atomic_store(&res->stage, 2);
#if TU_TSAN
    /* ThreadSanitizer cannot start threads in the child of a
     * multi-threaded fork ("not supported. Dying"); a new channel starts
     * two.  The plain, ASan and valgrind runs check this stage. */
    ch2 = NULL;
    res->rc2 = TRI_OK;
#else
    ch2 = tu_channel_new(g_port, NULL);
    res->rc2 = ch2 ? echo_call(ch2, 10, MS(2000), NULL) : TRI_ESYS;
#endif
    tri_channel_free(ch2);
    atomic_store(&res->stage, 3);
    t0 = tu_now_ms();
    tri_channel_free(g_ch);
    res->el3 = (long)(tu_now_ms() - t0);
    tri_call_opts_free(o);
    atomic_store(&res->stage, 4);
    /* Under valgrind (make check-valgrind sets TRI_VALGRIND) the child's
     * exit would run a leak check over the parent's abandoned state
     * (by design: it is not ours to free here) and exit 99; its results
     * are in shared memory, so it ends without that check instead. */
    if (getenv("TRI_VALGRIND") != NULL)
      kill(getpid(), SIGKILL);
    _exit(0);
  }
  rv = wait_child(pid, MS(15000), &st);
  ck_assert_msg(rv == 0 && ((WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
                            (getenv("TRI_VALGRIND") != NULL &&
                             WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
                             atomic_load(&res->stage) == 4)),
                "child %s at stage %d (1: call on the inherited channel, 2: "
                "new channel, 3: freeing the inherited channel)",
                rv == 0 ? wait_status_str(st) : "hung, killed",
                atomic_load(&res->stage));
  ck_assert_msg(res->el1 <= MS(1000),
                "call on the inherited channel took %ld ms (%s)", res->el1,
                tu_code(res->rc1));
  ck_assert_msg(res->rc2 == TRI_OK, "call on a new channel in the child: %s",
                tu_code(res->rc2));
  ck_assert_msg(res->el3 <= MS(1000),
                "freeing the inherited channel took %ld ms", res->el3);
  munmap(res, sizeof(*res));
}
END_TEST

struct sigscan {
  int found_io, found_timer, found_worker;
  int call_rc;
  char bad[512];
};

/* SigBlk of thread |tid| of this process, or 0 with *ok = 0. */
static unsigned long long
thread_sigblk(const char *tid, int *ok)
{
  char path[320], line[256];
  unsigned long long v = 0;
  FILE *f;
  *ok = 0;
  snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
  f = fopen(path, "re");
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "SigBlk:", 7) == 0) {
      v = strtoull(line + 7, NULL, 16);
      *ok = 1;
      break;
    }
  fclose(f);
  return v;
}

static void *
sigscan_main(void *p)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGCHLD,
                             SIGPIPE};
  struct sigscan *sc = p;
  tri_server *srv;
  tri_channel *ch;
  struct dirent *e;
  size_t o = 0;
  int port;
  DIR *d;

  srv = start_server(NULL, &port);
  ch = srv ? tu_channel_new(port, NULL) : NULL;
  sc->call_rc = ch ? echo_call(ch, 10, 5000, NULL) : TRI_ESYS;
  d = opendir("/proc/self/task");
  while (d != NULL && (e = readdir(d)) != NULL) {
    char path[320], comm[32] = "";
    unsigned long long blk;
    size_t i;
    FILE *f;
    int ok;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
    f = fopen(path, "re");
    if (f == NULL)
      continue;
    if (fgets(comm, sizeof(comm), f) == NULL)
      comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    if (strncmp(comm, "tri-", 4) != 0)
      continue;
    sc->found_io += strcmp(comm, "tri-io") == 0;
    sc->found_timer += strcmp(comm, "tri-timer") == 0;
    sc->found_worker += strcmp(comm, "tri-worker") == 0;
    blk = thread_sigblk(e->d_name, &ok);
    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
      if (!ok || !(blk & (1ULL << (sigs[i] - 1))))
        break;
    if (i < sizeof(sigs) / sizeof(sigs[0]) && o < sizeof(sc->bad) - 80) {
      o += (size_t)snprintf(sc->bad + o, sizeof(sc->bad) - o,
                            "%s[%s] SigBlk %016llx lacks", comm, e->d_name,
                            blk);
      for (; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!ok || !(blk & (1ULL << (sigs[i] - 1))))
          o += (size_t)snprintf(sc->bad + o, sizeof(sc->bad) - o, " %s",
                                sigabbrev_np(sigs[i]));
      o += (size_t)snprintf(sc->bad + o, sizeof(sc->bad) - o, "; ");
    }
  }
  if (d != NULL)
    closedir(d);
  tri_channel_free(ch);
  tri_server_free(srv);
  return NULL;
}

/*
 * D11b.  Library threads (tri-io, tri-timer, tri-worker) must block every
 * asynchronous signal, whatever mask the application thread that created
 * them had, so process signals go to application threads.  The creating
 * thread starts with an EMPTY mask; every tri-* thread must have SIGINT,
 * SIGTERM, SIGHUP, SIGUSR1, SIGCHLD and SIGPIPE in SigBlk.
 */
START_TEST(test_d11_library_threads_block_signals)
{
  struct sigscan sc;
  sigset_t none, old;
  pthread_t t;

  memset(&sc, 0, sizeof(sc));
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, &old);
  ck_assert_int_eq(tu_thread_start(&t, sigscan_main, &sc), 0);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  ck_assert_int_eq(tu_thread_join(t, MS(10000), NULL), 0);
  ck_assert_msg(sc.call_rc == TRI_OK, "call: %s", tu_code(sc.call_rc));
  ck_assert_msg(sc.found_io >= 2 && sc.found_timer >= 1 && sc.found_worker >= 1,
                "library threads found: tri-io %d, tri-timer %d, tri-worker %d",
                sc.found_io, sc.found_timer, sc.found_worker);
  ck_assert_msg(sc.bad[0] == '\0', "%s", sc.bad);
}
END_TEST

/* ================================================================ */
/* D12a: more than 64 response metadata entries                       */
/* ================================================================ */

static int
count_prefixed(const tri_metadata *md, const char *prefix, char vch)
{
  size_t i, n = tri_metadata_count(md);
  int k = 0;
  for (i = 0; i < n; i++) {
    const char *key;
    const void *val;
    size_t vl;
    char want[32];
    if (tri_metadata_get(md, i, &key, &val, &vl) != TRI_OK ||
        strncmp(key, prefix, strlen(prefix)) != 0)
      continue;
    snprintf(want, sizeof(want), "%cv%03d", vch, atoi(key + strlen(prefix)));
    if (vl == strlen(want) && memcmp(val, want, vl) == 0)
      k++;
  }
  return k;
}

/*
 * D12a.  A handler that adds 100 response headers and 100 trailers: the
 * client sees all 100 of each with their values (nothing is silently
 * dropped).  Bound: the call within 5 s (x slack).
 */
START_TEST(test_d12a_many_response_metadata)
{
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *s = NULL;
  tri_buf *resp = NULL;
  int rv, nh, nt;

  start(NULL, NULL);
  tri_call_opts_set_timeout_ms(o, MS(5000));
  rv = tri_unary_call(g_ch, M_META, o, "x", 1, &resp, &s);
  ck_assert_msg(rv == TRI_OK, "call: %s", tu_code(rv));
  ck_assert_int_eq(atomic_load(&H.meta_add_fail), 0);
  nh = count_prefixed(tri_stream_headers(s, 0), "x-h-", 'h');
  nt = count_prefixed(tri_stream_trailers(s), "x-t-", 't');
  ck_assert_msg(nh == 100 && nt == 100,
                "client saw %d of 100 headers and %d of 100 trailers (lists "
                "of %zu and %zu entries)",
                nh, nt, tri_metadata_count(tri_stream_headers(s, 0)),
                tri_metadata_count(tri_stream_trailers(s)));
  tri_buf_free(resp);
  tri_stream_free(s);
  tri_call_opts_free(o);
}
END_TEST

/* ================================================================ */
/* D4: request trailers vs. a handler reading its request headers     */
/* ================================================================ */

/*
 * D4.  Request trailers (HEADERS with END_STREAM after DATA) must not be
 * written into the list the handler reads through tri_stream_headers()
 * while it reads it.  The handler iterates its request headers in a loop
 * while a raw client sends trailers with 60 entries; 20 streams.  The data
 * race only shows under ThreadSanitizer (./configure --enable-tsan); in a
 * plain build the test checks each call still ends with grpc-status 0
 * within 5 s (x slack).
 */
START_TEST(test_d4_request_trailers_vs_headers)
{
  h2buf b = {0}, hb = {0}, msg = {0};
  h2reader r;
  int fd, k, j;

  start(NULL, NULL);
  fd = raw_connect(g_port, 0, NULL, 0);
  ck_assert_msg(fd >= 0, "raw connect/handshake failed");
  h2reader_start(&r, fd, 1);
  h2_grpc_msg(&msg, "m", 1);
  for (k = 0; k < 20; k++) {
    uint32_t sid = 1 + 2 * (uint32_t)k;
    int64_t end;
    h2buf_reset(&b);
    raw_request(&b, sid, M_D4, NULL, 0);
    h2_frame(&b, H2_DATA, 0, sid, msg.p, msg.len);
    ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(5000), NULL), 0);
    ck_assert_msg(tu_sem_wait(&H.d4_started, MS(5000)) == 0,
                  "stream %u: handler did not start (%s)", sid,
                  h2reader_summary(&r));
    h2buf_reset(&b);
    h2buf_reset(&hb);
    for (j = 0; j < 60; j++) {
      char key[32], val[32];
      snprintf(key, sizeof(key), "x-trl-%02d", j);
      snprintf(val, sizeof(val), "trailer-value-%02d", j);
      hp_lits(&hb, key, val);
    }
    h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS | H2_F_END_STREAM, sid, hb.p,
             hb.len);
    ck_assert_int_eq(h2_write_all(fd, b.p, b.len, MS(5000), NULL), 0);
    end = tu_now_ms() + MS(5000);
    while (reader_statuses(&r) < k + 1 && !atomic_load(&r.closed) &&
           tu_now_ms() < end)
      tu_sleep_ms(2);
    ck_assert_msg(atomic_load(&r.grpc_status[0]) == k + 1,
                  "stream %u with request trailers: %s", sid,
                  h2reader_summary(&r));
  }
  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  h2buf_free(&hb);
  h2buf_free(&msg);
}
END_TEST

/* ================================================================ */

static void
add_tc(Suite *s, const char *name, int timeout, const TTest *t1,
       const TTest *t2, const TTest *t3)
{
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, t1);
  if (t2 != NULL)
    tcase_add_test(tc, t2);
  if (t3 != NULL)
    tcase_add_test(tc, t3);
  suite_add_tcase(s, tc);
}

static Suite *
regress_suite(void)
{
  Suite *s = suite_create("integ_regress");
  add_tc(s, "d0_budget", 4 * TU_TCASE_TIMEOUT,
         test_d0_freed_stream_returns_conn_budget,
         test_d0_reset_stream_returns_server_budget, NULL);
  add_tc(s, "d1_sigpipe", 2 * TU_TCASE_TIMEOUT,
         test_d1_server_survives_sigpipe, NULL, NULL);
  add_tc(s, "d2_finish_deadline", TU_TCASE_TIMEOUT,
         test_d2_finish_then_deadline, test_d2_finish_then_deadline_raw, NULL);
  add_tc(s, "d3_backpressure", TU_TCASE_TIMEOUT,
         test_d3_deadline_under_backpressure,
         test_d3_deadline_under_backpressure_raw, NULL);
  add_tc(s, "d4_trailers_race", TU_TCASE_TIMEOUT,
         test_d4_request_trailers_vs_headers, NULL, NULL);
  add_tc(s, "d5_send_vs_end", TU_TCASE_TIMEOUT,
         test_d5_send_blocked_across_close_send,
         test_d5_send_blocked_across_finish, NULL);
  add_tc(s, "d6_emfile", TU_TCASE_TIMEOUT, test_d6_emfile_no_spin, NULL, NULL);
  add_tc(s, "d6_emfile_other_loop", TU_TCASE_TIMEOUT,
         test_d6_emfile_other_loop, NULL, NULL);
  add_tc(s, "d7_dns", TU_TCASE_TIMEOUT, test_d7_dns_nxdomain,
         test_d7_dns_silent, test_d7_dns_a_record);
  add_tc(s, "d8_rst_after_status", TU_TCASE_TIMEOUT,
         test_d8_rst_after_final_status, NULL, NULL);
  add_tc(s, "d9_int64_max", TU_TCASE_TIMEOUT, test_d9_int64_max_timeouts, NULL,
         NULL);
  add_tc(s, "d10_deframer", TU_TCASE_TIMEOUT,
         test_d10_deframer_announced_length, NULL, NULL);
  add_tc(s, "d11_fork_signals", TU_TCASE_TIMEOUT,
         test_d11_fork_child_does_not_hang,
         test_d11_library_threads_block_signals, NULL);
  add_tc(s, "d12a_metadata", TU_TCASE_TIMEOUT, test_d12a_many_response_metadata,
         NULL, NULL);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(regress_suite());
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
