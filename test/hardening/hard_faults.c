/*
 * hard_faults: fault injection.  Each test blocks callers in the library,
 * injects one fault and asserts the precise status every caller gets and
 * that nothing hangs:
 *
 *   client_killed       client process SIGKILLed mid-stream -> server
 *                       handlers (blocked in recv, after EOF, never
 *                       reading) return TRI_CANCELLED at once;
 *   server_killed       server process SIGKILLed -> client callers blocked
 *                       in recv, send and tri_unary_call return
 *                       TRI_UNAVAILABLE at once (a slow reader after
 *                       reading what was queued); a new call too;
 *   reset_by_client     raw client closes with SO_LINGER 0 (TCP RST) ->
 *                       server handler TRI_CANCELLED at once;
 *   reset_by_server     fake server RSTs the tri client's connection ->
 *                       blocked recv returns TRI_UNAVAILABLE at once;
 *   shutdown_in_flight  tri_server_shutdown(1000 ms) with calls in flight:
 *                       the short call completes OK, hung handlers are
 *                       cancelled after the drain, their clients get
 *                       CANCELLED or UNAVAILABLE then, new calls
 *                       UNAVAILABLE at once, shutdown returns after the
 *                       1000 ms drain;
 *   handler_returns     a handler returning without tri_stream_finish():
 *                       its return value (7), UNKNOWN for values outside
 *                       0..16, OK after one message, UNIMPLEMENTED for a
 *                       unary call without a response message (5.4);
 *   channel_free        tri_channel_free() while threads are blocked in
 *                       recv, send, tri_unary_call and waiting for a stream
 *                       slot: all return TRI_CANCELLED within 2 s, the
 *                       server sees every stream end.
 *
 * "At once" is asserted as PROMPT_MS x CK_TIMEOUT_MULTIPLIER, a timer of
 * T ms as [T, T + PROMPT_MS x mult): the library reacts to EOF, an RST or
 * its own timer without waiting; the headroom is for threads waiting for
 * a CPU on a loaded 2-core machine (measured reactions: 0-11 ms).
 *
 * Servers run in forked children (hutil hsrv) forked before any thread.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "h2raw.h"
#include "hutil.h"

/* ---- blocked callers --------------------------------------------------- */

enum { OP_RECV, OP_SEND, OP_UNARY_HOLD, OP_SLOWRECV };

#define PROMPT_MS 200
/* Upper bound of "within |promise| ms": promise + PROMPT_MS x mult. */
static long long bound_ms(long long promise) {
  return promise + (long long)(PROMPT_MS * hutil_mult());
}

typedef struct {
  int kind;
  tri_channel *ch;
  tri_stream *s;       /* OP_RECV / OP_SEND: opened by the test */
  pthread_t t;
  atomic_int done;
  int rc;
  int64_t end_ms;
  const char *label;
} caller;

static void *caller_main(void *arg) {
  caller *c = arg;
  static const uint8_t chunk[64 * 1024];
  tri_buf *m = NULL;
  int rc = TRI_OK;

  switch (c->kind) {
  case OP_RECV:
    for (int i = 0; i < 100000 && rc == TRI_OK; i++) {
      rc = tri_stream_recv(c->s, &m);
      tri_buf_free(m);
      m = NULL;
    }
    break;
  case OP_SLOWRECV: /* a slow reader: 50 messages per second */
    for (int i = 0; i < 100000 && rc == TRI_OK; i++) {
      rc = tri_stream_recv(c->s, &m);
      tri_buf_free(m);
      m = NULL;
      if (rc == TRI_OK)
        h2_sleep_ms(20);
    }
    break;
  case OP_SEND:
    for (int i = 0; i < 100000 && rc == TRI_OK; i++)
      rc = tri_stream_send(c->s, chunk, sizeof(chunk));
    break;
  case OP_UNARY_HOLD:
    rc = tri_unary_call(c->ch, HM_HOLD, NULL, "x", 1, &m, NULL);
    tri_buf_free(m);
    break;
  }
  c->rc = rc;
  c->end_ms = h2_now_ms();
  atomic_store(&c->done, 1);
  return NULL;
}

static void caller_start(caller *c, int kind, tri_channel *ch,
                         const char *method, const char *label) {
  memset(c, 0, sizeof(*c));
  c->kind = kind;
  c->ch = ch;
  c->label = label;
  c->rc = INT32_MIN;
  if (method != NULL) {
    ck_assert_int_eq(tri_stream_open(ch, method, NULL, &c->s), TRI_OK);
    if (kind == OP_RECV || kind == OP_SLOWRECV)
      ck_assert_int_eq(tri_stream_send(c->s, "hello", 5), TRI_OK);
  }
  ck_assert_int_eq(pthread_create(&c->t, NULL, caller_main, c), 0);
}

/* Wait for every caller to return (at most until |deadline_ms|), join. */
static int callers_join(caller *c, int n, int64_t deadline_ms) {
  int all = 1;
  for (int i = 0; i < n; i++) {
    while (!atomic_load(&c[i].done) && h2_now_ms() < deadline_ms)
      h2_sleep_ms(2);
    if (!atomic_load(&c[i].done)) {
      all = 0;
      continue; /* never joined: the test fails and the process exits */
    }
    pthread_join(c[i].t, NULL);
  }
  return all;
}

static tri_channel *chan(int port) {
  char target[64];
  tri_channel *ch = NULL;
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  ck_assert_int_eq(tri_channel_new(&ch, target, NULL), TRI_OK);
  return ch;
}

/* ------------------------------------------------------------------ */

START_TEST(t_client_killed) {
  hsrv srv;
  int pfd[2];
  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(pipe(pfd), 0);
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    close(pfd[0]);
    tri_channel *ch = NULL;
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", srv.port);
    if (tri_channel_new(&ch, target, NULL) != TRI_OK)
      _exit(2);
    tri_stream *s[6];
    const char *methods[6] = {HM_HANG, HM_HANG, HM_HANG, HM_HOLD, HM_SINK,
                              HM_BIG};
    for (int i = 0; i < 6; i++) {
      if (tri_stream_open(ch, methods[i], NULL, &s[i]) != TRI_OK)
        _exit(3);
      tri_stream_send(s[i], "m", 1);
      if (i == 3 || i == 5)
        tri_stream_close_send(s[i]);
    }
    /* BIG (i = 5): never read, so its handler blocks in send. */
    char ready = 'R';
    if (write(pfd[1], &ready, 1) != 1)
      _exit(4);
    for (int i = 0; i < 300; i++)
      h2_sleep_ms(100); /* until SIGKILL (30 s max) */
    _exit(0);
  }
  close(pfd[1]);
  char ready;
  struct pollfd p = {pfd[0], POLLIN, 0};
  ck_assert_int_eq(poll(&p, 1, 5000), 1);
  ck_assert_int_eq(read(pfd[0], &ready, 1), 1);
  ck_assert_msg(hsrv_wait_count(&srv, HK_HANG, 3, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_HOLD, 1, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_SINK, 1, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_BIG, 1, 0, 3000) == 0,
                "server handlers did not all start");
  h2_sleep_ms(500); /* BIG fills its buffers and blocks in send */
  int64_t t0 = h2_now_ms();
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  int ok = hsrv_wait_count(&srv, HK_HANG, 3, 1, 3000) == 0 &&
           hsrv_wait_count(&srv, HK_HOLD, 1, 1, 3000) == 0 &&
           hsrv_wait_count(&srv, HK_SINK, 1, 1, 3000) == 0 &&
           hsrv_wait_count(&srv, HK_BIG, 1, 1, 3000) == 0;
  long long worst = 0;
  for (int k = 0; k < HK_N; k++) {
    long long t = atomic_load(&srv.sh->last_end_ms[k]);
    if (t > 0 && t - t0 > worst)
      worst = t - t0;
  }
  printf("outcome: client_killed handlers ended within %lld ms: HANG %s; "
         "HOLD %s; SINK %s; BIG(blocked in send) %s\n",
         worst, hsrv_rc_summary(&srv, HK_HANG), hsrv_rc_summary(&srv, HK_HOLD),
         hsrv_rc_summary(&srv, HK_SINK), hsrv_rc_summary(&srv, HK_BIG));
  ck_assert_msg(ok, "not every server handler returned within 3 s of the "
                    "client's death");
  ck_assert_msg(hsrv_rc(&srv, HK_HANG, TRI_CANCELLED) == 3 &&
                    hsrv_rc(&srv, HK_HOLD, TRI_CANCELLED) == 1 &&
                    hsrv_rc(&srv, HK_SINK, TRI_CANCELLED) == 1 &&
                    hsrv_rc(&srv, HK_BIG, TRI_CANCELLED) == 1,
                "handlers must end TRI_CANCELLED when the client dies");
  ck_assert_msg(worst < bound_ms(0), "handlers took %lld ms to notice, bound "
                "%lld ms", worst, bound_ms(0));
  hsrv_kill(&srv);
}
END_TEST

START_TEST(t_server_killed) {
  hsrv srv;
  caller c[6];
  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  tri_channel *ch = chan(srv.port);
  caller_start(&c[0], OP_RECV, ch, HM_HANG, "recv");
  caller_start(&c[1], OP_RECV, ch, HM_HANG, "recv");
  caller_start(&c[2], OP_RECV, ch, HM_HANG, "recv");
  caller_start(&c[3], OP_SEND, ch, HM_SINK, "send (server never reads)");
  caller_start(&c[4], OP_UNARY_HOLD, ch, NULL, "tri_unary_call");
  caller_start(&c[5], OP_SLOWRECV, ch, HM_BIG, "recv (big stream, slow reader)");
  ck_assert_msg(hsrv_wait_count(&srv, HK_HANG, 3, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_SINK, 1, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_HOLD, 1, 0, 3000) == 0,
                "server handlers did not start");
  h2_sleep_ms(1000); /* SINK sender fills windows + buffers and blocks */
  int sender_blocked = !atomic_load(&c[3].done);
  int64_t t0 = h2_now_ms();
  hsrv_kill(&srv);
  int all = callers_join(c, 6, t0 + 3000);
  for (int i = 0; i < 6; i++)
    printf("outcome: server_killed %-32s -> %s after %lld ms\n", c[i].label,
           atomic_load(&c[i].done) ? tri_code_name(c[i].rc) : "(still blocked)",
           atomic_load(&c[i].done) ? (long long)(c[i].end_ms - t0) : -1LL);
  ck_assert_msg(all, "a caller was still blocked 3 s after the server died");
  ck_assert_msg(sender_blocked, "the sender was not blocked before the kill");
  for (int i = 0; i < 6; i++) {
    ck_assert_msg(c[i].rc == TRI_UNAVAILABLE, "%s returned %s, want "
                  "TRI_UNAVAILABLE", c[i].label, tri_code_name(c[i].rc));
    /* The slow reader first gets the messages that arrived before the
     * connection died (triplestream.h, tri_stream_recv), at its own pace:
     * at most its 1 MiB queue + 1 MiB stream window = 32 messages of
     * 64 KiB at 20 ms each = 640 ms (measured 450 ms). */
    long long b = bound_ms(c[i].kind == OP_SLOWRECV ? 640 : 0);
    ck_assert_msg(c[i].end_ms - t0 < b, "%s took %lld ms, bound %lld ms",
                  c[i].label, (long long)(c[i].end_ms - t0), b);
  }
  /* A new call finds nobody listening: UNAVAILABLE, not a deadline. */
  tri_call_opts *co = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(co, 3000);
  tri_buf *resp = NULL;
  int64_t t1 = h2_now_ms();
  int rc = tri_unary_call(ch, HM_ECHO, co, "x", 1, &resp, NULL);
  printf("outcome: server_killed new call -> %s after %lld ms\n",
         tri_code_name(rc), (long long)(h2_now_ms() - t1));
  ck_assert_msg(rc == TRI_UNAVAILABLE, "new call returned %s",
                tri_code_name(rc));
  tri_call_opts_free(co);
  for (int i = 0; i < 6; i++)
    tri_stream_free(c[i].s);
  tri_channel_free(ch);
}
END_TEST

START_TEST(t_reset_by_client) {
  hsrv srv;
  h2buf b = {0}, hb = {0};
  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  int fd = h2_connect(srv.port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 3000), 0);
  hp_grpc_request(&hb, HM_HANG, NULL);
  h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, 1, hb.p, hb.len);
  h2buf_reset(&hb);
  h2_grpc_msg(&hb, "m", 1);
  h2_frame(&b, H2_DATA, 0, 1, hb.p, hb.len);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  ck_assert_int_eq(hsrv_wait_count(&srv, HK_HANG, 1, 0, 3000), 0);
  h2_sleep_ms(100);
  int64_t t0 = h2_now_ms();
  h2_close_reset(fd);
  int ended = hsrv_wait_count(&srv, HK_HANG, 1, 1, 3000) == 0;
  long long dt = atomic_load(&srv.sh->last_end_ms[HK_HANG]) - t0;
  printf("outcome: reset_by_client handler -> %s after %lld ms\n",
         hsrv_rc_summary(&srv, HK_HANG), ended ? dt : -1LL);
  ck_assert_msg(ended, "handler still blocked 3 s after the TCP reset");
  ck_assert_int_eq(hsrv_rc(&srv, HK_HANG, TRI_CANCELLED), 1);
  ck_assert_msg(dt < bound_ms(0), "handler took %lld ms, bound %lld ms", dt,
                bound_ms(0));
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
}
END_TEST

START_TEST(t_reset_by_server) {
  /* A fake server: accept, read the client preface, answer SETTINGS, wait
   * for the request HEADERS, then reset the TCP connection. */
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(listen(lfd, 8), 0);
  ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  tri_channel *ch = chan(ntohs(sa.sin_port));
  caller c;
  caller_start(&c, OP_RECV, ch, "/fake.Svc/Bidi", "recv");
  struct pollfd p = {lfd, POLLIN, 0};
  ck_assert_int_eq(poll(&p, 1, 3000), 1);
  int fd = accept(lfd, NULL, NULL);
  ck_assert_int_ge(fd, 0);
  char preface[H2_PREFACE_LEN];
  ck_assert_int_eq(h2_read_exact(fd, preface, sizeof(preface), 3000), 0);
  ck_assert(memcmp(preface, H2_PREFACE, H2_PREFACE_LEN) == 0);
  h2buf b = {0};
  h2_settings(&b, NULL, 0);
  h2_frame(&b, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  h2reader r;
  h2reader_start(&r, fd, 0);
  for (int i = 0; i < 300 && atomic_load(&r.frames[H2_HEADERS]) == 0; i++)
    h2_sleep_ms(10);
  ck_assert_msg(atomic_load(&r.frames[H2_HEADERS]) > 0,
                "the client's request HEADERS never arrived");
  h2_sleep_ms(100);
  h2reader_stop(&r);
  int64_t t0 = h2_now_ms();
  h2_close_reset(fd);
  int all = callers_join(&c, 1, t0 + 3000);
  printf("outcome: reset_by_server blocked recv -> %s after %lld ms\n",
         all ? tri_code_name(c.rc) : "(still blocked)",
         all ? (long long)(c.end_ms - t0) : -1LL);
  ck_assert_msg(all, "recv still blocked 3 s after the TCP reset");
  ck_assert_msg(c.rc == TRI_UNAVAILABLE, "recv returned %s",
                tri_code_name(c.rc));
  ck_assert_msg(c.end_ms - t0 < bound_ms(0), "recv took %lld ms, bound %lld",
                (long long)(c.end_ms - t0), bound_ms(0));
  tri_stream_free(c.s);
  tri_channel_free(ch);
  close(lfd);
  h2buf_free(&b);
}
END_TEST

START_TEST(t_shutdown_in_flight) {
  hsrv srv;
  caller c[3];
  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  tri_channel *ch = chan(srv.port);
  for (int i = 0; i < 3; i++)
    caller_start(&c[i], OP_RECV, ch, HM_HANG, "recv (hung handler)");
  ck_assert_int_eq(hsrv_wait_count(&srv, HK_HANG, 3, 0, 3000), 0);
  /* A short call in flight: its handler needs 300 ms. */
  tri_stream *slow = NULL;
  tri_call_opts *co = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(co, 5000);
  ck_assert_int_eq(tri_stream_open(ch, HM_SLOW, co, &slow), TRI_OK);
  ck_assert_int_eq(tri_stream_send_ex(slow, "s", 1, TRI_SEND_LAST, -1),
                   TRI_OK);
  ck_assert_int_eq(hsrv_wait_count(&srv, HK_SLOW, 1, 0, 3000), 0);

  int64_t t0 = h2_now_ms();
  /* hsrv_shutdown() blocks until tri_server_shutdown() returns, so make
   * the new call from the drain window on a second channel started now. */
  char cmd[1 + sizeof(int64_t)];
  int64_t drain = 1000;
  cmd[0] = 'S';
  memcpy(cmd + 1, &drain, sizeof(drain));
  ck_assert_int_eq(write(srv.ctl_fd, cmd, sizeof(cmd)), (int)sizeof(cmd));
  tri_buf *m = NULL;
  int slow_rc = tri_stream_recv(slow, &m);
  tri_buf_free(m);
  if (slow_rc == TRI_OK)
    slow_rc = tri_stream_wait_status(slow, 3000, NULL);
  h2_sleep_ms(100);
  tri_channel *ch2 = chan(srv.port);
  tri_buf *resp = NULL;
  int64_t tn = h2_now_ms();
  int new_rc = tri_unary_call(ch2, HM_ECHO, co, "n", 1, &resp, NULL);
  int64_t new_ms = h2_now_ms() - tn;
  tri_buf_free(resp);
  struct pollfd p = {srv.rep_fd, POLLIN, 0};
  char rep = 0;
  int returned = poll(&p, 1, 5000) == 1 && read(srv.rep_fd, &rep, 1) == 1;
  int64_t shut_ms = h2_now_ms() - t0;
  int all = callers_join(c, 3, h2_now_ms() + 3000);
  for (int i = 0; i < 3; i++)
    printf("outcome: shutdown_in_flight %s -> %s after %lld ms\n", c[i].label,
           atomic_load(&c[i].done) ? tri_code_name(c[i].rc) : "(blocked)",
           (long long)(c[i].end_ms - t0));
  printf("outcome: shutdown_in_flight slow call -> %s; new call during "
         "drain -> %s in %lld ms; shutdown returned=%d after %lld ms (drain "
         "1000); server HANG handlers: %s; SLOW: %s\n",
         tri_code_name(slow_rc), tri_code_name(new_rc), (long long)new_ms,
         returned, (long long)shut_ms, hsrv_rc_summary(&srv, HK_HANG),
         hsrv_rc_summary(&srv, HK_SLOW));
  ck_assert_msg(returned, "tri_server_shutdown(1000) did not return in 5 s");
  /* t0 precedes the command: the drain cannot end before 1000 ms. */
  ck_assert_msg(shut_ms >= 1000 && shut_ms < bound_ms(1000),
                "shutdown took %lld ms with a 1000 ms drain, allowed "
                "[1000, %lld)",
                (long long)shut_ms, bound_ms(1000));
  ck_assert_msg(new_ms < bound_ms(0),
                "a call during the drain took %lld ms to be refused, bound "
                "%lld", (long long)new_ms, bound_ms(0));
  ck_assert_msg(slow_rc == TRI_OK, "in-flight short call got %s",
                tri_code_name(slow_rc));
  ck_assert_msg(new_rc == TRI_UNAVAILABLE,
                "a call started during the drain got %s, want UNAVAILABLE",
                tri_code_name(new_rc));
  ck_assert_msg(all, "a client caller still blocked after shutdown");
  for (int i = 0; i < 3; i++) {
    /* Issue 11: cut off by the end of the drain -> UNAVAILABLE ("server
     * going away"), never CANCELLED. */
    ck_assert_msg(c[i].rc == TRI_UNAVAILABLE,
                  "hung call's client got %s", tri_code_name(c[i].rc));
    /* ... when the drain ends and the handlers are cancelled. */
    ck_assert_msg(c[i].end_ms - t0 >= 1000 &&
                      c[i].end_ms - t0 < bound_ms(1000),
                  "hung call ended %lld ms into a 1000 ms drain, allowed "
                  "[1000, %lld)",
                  (long long)(c[i].end_ms - t0), bound_ms(1000));
  }
  ck_assert_int_eq(hsrv_rc(&srv, HK_HANG, TRI_UNAVAILABLE), 3);
  for (int i = 0; i < 3; i++)
    tri_stream_free(c[i].s);
  tri_stream_free(slow);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  tri_channel_free(ch2);
  hsrv_kill(&srv);
}
END_TEST

START_TEST(t_handler_returns) {
  hsrv srv;
  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  tri_channel *ch = chan(srv.port);
  tri_call_opts *co = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(co, 3000);
  static const struct {
    const char *m;
    int want;
  } cases[] = {
      {HM_RET7, TRI_PERMISSION_DENIED},
      {HM_RETBOGUS, TRI_UNKNOWN},
      {HM_RETNEG, TRI_UNKNOWN},
      {HM_RETMSG, TRI_OK},
      {HM_RETNONE, TRI_UNIMPLEMENTED},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tri_buf *resp = NULL;
    tri_stream *st = NULL;
    int64_t t0 = h2_now_ms();
    int rc = tri_unary_call(ch, cases[i].m, co, "q", 1, &resp, &st);
    const char *msg = "";
    tri_stream_wait_status(st, 0, &msg);
    printf("outcome: handler_returns %-18s -> %s '%s' in %lld ms%s\n",
           cases[i].m, tri_code_name(rc), msg ? msg : "",
           (long long)(h2_now_ms() - t0),
           rc == cases[i].want ? "" : "   <-- unexpected");
    if (rc != cases[i].want)
      bad++;
    if (rc == TRI_OK && cases[i].want == TRI_OK &&
        (tri_buf_len(resp) != 7 || memcmp(tri_buf_data(resp), "partial", 7)))
      bad++;
    tri_buf_free(resp);
    tri_stream_free(st);
  }
  /* Streaming view of the same: message, then EOF, then OK. */
  tri_stream *s = NULL;
  tri_buf *m = NULL;
  ck_assert_int_eq(tri_stream_open(ch, HM_RETMSG, co, &s), TRI_OK);
  ck_assert_int_eq(tri_stream_send_ex(s, "q", 1, TRI_SEND_LAST, -1), TRI_OK);
  int r1 = tri_stream_recv(s, &m);
  tri_buf_free(m);
  m = NULL;
  int r2 = tri_stream_recv(s, &m);
  int st = tri_stream_wait_status(s, 3000, NULL);
  printf("outcome: handler_returns streaming %s: recv %s, recv %s, status "
         "%s\n",
         HM_RETMSG, tri_code_name(r1), tri_code_name(r2), tri_code_name(st));
  tri_stream_free(s);
  ck_assert_msg(bad == 0, "%d handler-return case(s) gave the wrong status",
                bad);
  ck_assert(r1 == TRI_OK && r2 == TRI_EOF && st == TRI_OK);
  ck_assert_int_eq(hsrv_wait_count(&srv, HK_RET, 6, 1, 3000), 0);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  hsrv_kill(&srv);
}
END_TEST

struct freer {
  tri_channel *ch;
  atomic_int done;
};
static void *freer_main(void *arg) {
  struct freer *f = arg;
  tri_channel_free(f->ch);
  atomic_store(&f->done, 1);
  return NULL;
}

START_TEST(t_channel_free) {
  hsrv srv;
  hsrv_cfg cfg = {0, 5, -1, 0}; /* 5 concurrent streams per connection */
  caller c[7];
  ck_assert_int_eq(hsrv_start(&srv, &cfg), 0);
  tri_channel *ch = chan(srv.port);
  caller_start(&c[0], OP_RECV, ch, HM_HANG, "recv");
  caller_start(&c[1], OP_RECV, ch, HM_HANG, "recv");
  caller_start(&c[2], OP_SEND, ch, HM_SINK, "send (server never reads)");
  caller_start(&c[3], OP_UNARY_HOLD, ch, NULL, "tri_unary_call");
  caller_start(&c[4], OP_SLOWRECV, ch, HM_BIG, "recv (big, slow reader)");
  ck_assert_msg(hsrv_wait_count(&srv, HK_HANG, 2, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_SINK, 1, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_HOLD, 1, 0, 3000) == 0 &&
                    hsrv_wait_count(&srv, HK_BIG, 1, 0, 3000) == 0,
                "server handlers did not start");
  /* Two more wait for a stream slot (limit 5). */
  caller_start(&c[5], OP_RECV, ch, HM_HANG, "recv (waiting for a slot)");
  caller_start(&c[6], OP_SEND, ch, HM_SINK, "send (waiting for a slot)");
  h2_sleep_ms(1000);
  int blocked = 0;
  for (int i = 0; i < 7; i++)
    blocked += !atomic_load(&c[i].done);
  struct freer f = {ch, 0};
  pthread_t ft;
  int64_t t0 = h2_now_ms();
  ck_assert_int_eq(pthread_create(&ft, NULL, freer_main, &f), 0);
  int all = callers_join(c, 7, t0 + 3000);
  while (!atomic_load(&f.done) && h2_now_ms() < t0 + 3000)
    h2_sleep_ms(2);
  int freed = atomic_load(&f.done);
  int64_t free_ms = h2_now_ms() - t0;
  for (int i = 0; i < 7; i++)
    printf("outcome: channel_free %-28s -> %s after %lld ms\n", c[i].label,
           atomic_load(&c[i].done) ? tri_code_name(c[i].rc) : "(blocked)",
           atomic_load(&c[i].done) ? (long long)(c[i].end_ms - t0) : -1LL);
  int srv_ok = hsrv_wait_count(&srv, HK_HANG, 2, 1, 3000) == 0 &&
               hsrv_wait_count(&srv, HK_SINK, 1, 1, 3000) == 0 &&
               hsrv_wait_count(&srv, HK_HOLD, 1, 1, 3000) == 0 &&
               hsrv_wait_count(&srv, HK_BIG, 1, 1, 3000) == 0;
  printf("outcome: channel_free tri_channel_free returned=%d in %lld ms; "
         "blocked before: %d/7; server: HANG %s; SINK %s; HOLD %s; BIG %s\n",
         freed, (long long)free_ms, blocked, hsrv_rc_summary(&srv, HK_HANG),
         hsrv_rc_summary(&srv, HK_SINK), hsrv_rc_summary(&srv, HK_HOLD),
         hsrv_rc_summary(&srv, HK_BIG));
  ck_assert_msg(freed, "tri_channel_free() did not return within 3 s");
  pthread_join(ft, NULL);
  ck_assert_msg(all, "a caller was still blocked 3 s after tri_channel_free");
  for (int i = 0; i < 7; i++) {
    ck_assert_msg(c[i].rc == TRI_CANCELLED, "%s returned %s, want "
                  "TRI_CANCELLED", c[i].label, tri_code_name(c[i].rc));
    ck_assert_msg(c[i].end_ms - t0 < bound_ms(0), "%s took %lld ms, bound "
                  "%lld", c[i].label, (long long)(c[i].end_ms - t0),
                  bound_ms(0));
  }
  /* The handles stay valid and report the final status. */
  for (int i = 0; i < 7; i++) {
    if (c[i].s == NULL)
      continue;
    tri_buf *m = NULL;
    ck_assert_int_eq(tri_stream_recv(c[i].s, &m), TRI_CANCELLED);
    ck_assert_int_eq(tri_stream_wait_status(c[i].s, 1000, NULL),
                     TRI_CANCELLED);
    tri_stream_free(c[i].s);
  }
  ck_assert_msg(srv_ok, "server handlers did not all end after the channel "
                        "was freed");
  hsrv_kill(&srv);
}
END_TEST

static Suite *faults_suite(void) {
  Suite *s = suite_create("hard_faults");
  struct {
    const char *name;
    const TTest *t;
  } tests[] = {
      {"client_killed", t_client_killed},
      {"server_killed", t_server_killed},
      {"reset_by_client", t_reset_by_client},
      {"reset_by_server", t_reset_by_server},
      {"shutdown_in_flight", t_shutdown_in_flight},
      {"handler_returns", t_handler_returns},
      {"channel_free", t_channel_free},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    TCase *tc = tcase_create(tests[i].name);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tests[i].t);
    suite_add_tcase(s, tc);
  }
  return s;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  SRunner *sr = srunner_create(faults_suite());
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int nf = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nf == 0 ? 0 : 1;
}
