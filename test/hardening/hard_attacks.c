/*
 * hard_attacks: HTTP/2 abuse against a tri_server, each attack performed
 * with raw frames over loopback (h2raw) while a well-behaved tri client on
 * another connection keeps making unary calls (hutil "healthy").
 *
 * For each attack the test prints one "measure:" line (healthy throughput
 * during the attack vs a 1 s baseline, server RSS before/peak/after) and
 * one "outcome:" line (what the server did to the attacking connection),
 * then asserts:
 *   - the server's documented reaction (README "Limits and defaults",
 *     doc/DESIGN.md "Server protection"): the GOAWAY error code, the limit
 *     at which it comes, RESOURCE_EXHAUSTED for streams over a
 *     connection's handler share, a handler's send giving up at its
 *     deadline, the 10 s handshake timeout;
 *   - server RSS growth stays under a bound;
 *   - the healthy client had no failure, at least one successful call in
 *     every 100 ms window of the attack, and a call rate during the attack
 *     of at least half its baseline (measured in the 1 s just before).
 * Timing bounds are promise + stated headroom, the headroom multiplied by
 * CK_TIMEOUT_MULTIPLIER (hutil_mult()) under sanitizers.
 * All failed conditions of a test are reported together.
 *
 * The server runs in a child process forked before this process starts
 * any thread (hutil hsrv); its RSS is read from /proc/PID/statm.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "h2raw.h"
#include "hutil.h"

/* Server RSS may grow by at most this much during an attack (KiB). */
#define RSS_BOUND_KB (64L * 1024)
/* Library default send buffer (triplestream.h, tri_server_opts_new). */
#define DEFAULT_SEND_BUFFER (256L * 1024)
/* README "Limits and defaults": client RST_STREAMs per second per
 * connection before GOAWAY(ENHANCE_YOUR_CALM). */
#define DEFAULT_MAX_RESETS_PER_S 500
/* README: handler threads up to 256; handlers per client connection max
 * workers / 8 (at least 16). */
#define DEFAULT_PER_CONN (256 / 8)
/* README: server handshake timeout. */
#define HANDSHAKE_MS 10000
/* Headroom for a timer-driven reaction of the server (a deadline, the
 * handshake timeout): its I/O or handler thread must get a CPU on a
 * loaded 2-core machine, and the attack itself keeps it busy.  Measured
 * lateness: 0-15 ms. */
#define TIMER_HEADROOM_MS 200

/* ---- failure collection ------------------------------------------------ */

typedef struct {
  char buf[4096];
  size_t len;
  int n;
} errs;

static void failif(errs *e, int cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failif(errs *e, int cond, const char *fmt, ...) {
  va_list ap;
  if (!cond)
    return;
  e->n++;
  if (e->len < sizeof(e->buf) - 8) {
    e->len += (size_t)snprintf(e->buf + e->len, sizeof(e->buf) - e->len,
                               "\n  [%d] ", e->n);
    va_start(ap, fmt);
    if (e->len < sizeof(e->buf))
      e->len += (size_t)vsnprintf(e->buf + e->len, sizeof(e->buf) - e->len,
                                  fmt, ap);
    va_end(ap);
  }
  if (e->len >= sizeof(e->buf))
    e->len = sizeof(e->buf) - 1;
}

#define ERRS_DONE(e, name)                                                   \
  ck_assert_msg((e)->n == 0, "%s: %d check(s) failed:%s", name, (e)->n,      \
                (e)->buf)

static void check_healthy(errs *e, const measure *m, const char *name) {
  failif(e, m->attack.fails > 0,
         "%s: healthy client had %ld failed call(s) during the attack "
         "(first: %s)",
         name, m->attack.fails, m->hc.first_fail_msg);
  failif(e, m->attack.calls == 0,
         "%s: healthy client completed no call at all during the attack "
         "(baseline %.0f/s)",
         name, m->base.per_s);
  /* Full service = every call succeeds and at most 1 in 20 windows of
   * 100 ms passes without a completed call (a VM hiccup is not an attack
   * getting through; rounded up, so a 1.5 s attack may have one);
   * sanitized builds run ~10x slower, so 1 in 4 there. */
  failif(e, m->attack.empty_windows >
                (HUTIL_SANITIZED ? (m->attack.windows + 3) / 4
                                 : (m->attack.windows + 19) / 20),
         "%s: healthy client had %d of %d 100 ms windows without a "
         "successful call (longest gap %lld ms; %.0f calls/s vs baseline "
         "%.0f/s)",
         name, m->attack.empty_windows, m->attack.windows,
         (long long)m->attack.max_gap_ms, m->attack.per_s, m->base.per_s);
  /* "Keeps service" is a rate: the attack may take at most half of what
   * the healthy client got in the 1 s just before it.  Measured over 4
   * runs of all attacks on a shared 2-core VM: 57-230 % of baseline (the
   * other tenants move both numbers; the attacker's own writes share the
   * two cores), hence 50 %, not 90 %.  A ratio of two rates measured the
   * same way needs no scaling under sanitizers. */
  failif(e, m->attack.per_s < 0.5 * m->base.per_s,
         "%s: healthy client's call rate fell to %.0f/s during the attack, "
         "below half its baseline of %.0f/s just before",
         name, m->attack.per_s, m->base.per_s);
}

/* Exactly one GOAWAY with |code| was the server's answer. */
static void check_goaway(errs *e, h2reader *r, const char *name,
                         uint32_t code) {
  failif(e, atomic_load(&r->goaways) == 0,
         "%s: server sent no GOAWAY (want %s): %s", name, h2_errname(code),
         h2reader_summary(r));
  failif(e, atomic_load(&r->goaways) > 0 &&
                atomic_load(&r->goaway_code) != code,
         "%s: GOAWAY code %s, want %s", name,
         h2_errname(atomic_load(&r->goaway_code)), h2_errname(code));
}

/* A timer-driven reaction due |promise_ms| after its start took
 * |took_ms|: not early, at most TIMER_HEADROOM_MS x mult late. */
static void check_timer(errs *e, const char *name, const char *what,
                        long long promise_ms, long long min_ms,
                        long long took_ms) {
  long long hi = promise_ms + (long long)(TIMER_HEADROOM_MS * hutil_mult());
  failif(e, took_ms < min_ms || took_ms >= hi,
         "%s: %s after %lld ms; promised %lld ms, allowed [%lld, %lld) "
         "(headroom %d ms x %.0f)",
         name, what, took_ms, promise_ms, min_ms, hi, TIMER_HEADROOM_MS,
         hutil_mult());
}

static void check_rss(errs *e, const measure *m, const char *name,
                      long bound_kb) {
  failif(e, !HUTIL_SANITIZED && m->rss_peak_kb - m->rss_before_kb > bound_kb,
         "%s: server RSS grew by %ld KiB (before %ld, peak %ld, after %ld), "
         "bound %ld KiB",
         name, m->rss_peak_kb - m->rss_before_kb, m->rss_before_kb,
         m->rss_peak_kb, m->rss_after_kb, bound_kb);
}

static void outcome(const char *name, h2reader *r) {
  printf("outcome: %s %s\n", name, h2reader_summary(r));
  fflush(stdout);
}

static int attack_conn(const hsrv *srv, const uint32_t (*settings)[2],
                       size_t n) {
  int fd = h2_connect(srv->port, 0);
  ck_assert_msg(fd >= 0, "cannot connect to the server: %s", strerror(errno));
  ck_assert_msg(h2_handshake(fd, settings, n, 3000) == 0,
                "HTTP/2 handshake with the server failed");
  return fd;
}

/* Write |b| unless the reader saw the connection close.  Returns 0 while
 * the connection takes bytes, -1 once it is closed / refuses / stalls. */
static int attack_write(int fd, h2reader *r, const h2buf *b, int timeout_ms) {
  if (r != NULL && atomic_load(&r->closed))
    return -1;
  return h2_write_all(fd, b->p, b->len, timeout_ms, NULL) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Rapid reset (CVE-2023-44487)                                        */
/* ------------------------------------------------------------------ */

/* Rapid reset against a server whose limit is |limit| resets per second
 * (0 = library default, DEFAULT_MAX_RESETS_PER_S). */
static void rapid_reset(int limit) {
  const char *name = limit ? "rapid_reset_limit" : "rapid_reset";
  const int eff = limit ? limit : DEFAULT_MAX_RESETS_PER_S;
  hsrv_cfg cfg = {0, 0, -1, 0, 0, limit};
  hsrv srv;
  measure m;
  h2reader r;
  h2buf b = {0}, hb = {0};
  errs e = {0};
  const long N = 20000;
  long sent = 0;

  ck_assert_int_eq(hsrv_start(&srv, &cfg), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  int fd = attack_conn(&srv, NULL, 0);
  h2reader_start(&r, fd, 1);
  hp_grpc_request(&hb, HM_HANG, NULL);

  measure_attack_start(&m);
  int64_t t0 = h2_now_ms();
  for (long i = 0; i < N && h2_now_ms() - t0 < 20000;) {
    h2buf_reset(&b);
    for (int k = 0; k < 200 && i < N; k++, i++) {
      uint32_t sid = (uint32_t)(2 * i + 1);
      h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, sid, hb.p, hb.len);
      h2_rst(&b, sid, H2_CANCEL);
    }
    if (attack_write(fd, &r, &b, 5000) != 0)
      break;
    sent = i;
  }
  int64_t t_sent = h2_now_ms();
  h2reader_wait_goaway_or_close(&r, 3000);
  h2reader_wait_closed(&r, 1000);
  measure_end(&m, name, 1500);
  outcome(name, &r);
  int started = atomic_load(&srv.sh->started[HK_HANG]);
  uint32_t last = atomic_load(&r.goaway_last_sid);
  printf("outcome: %s limit %d/s: sent %ld HEADERS+RST_STREAM pairs in %lld "
         "ms; GOAWAY last-stream-id %u; server started %d handlers; handler "
         "ends: %s\n",
         name, eff, sent, (long long)(t_sent - t0), last, started,
         hsrv_rc_summary(&srv, HK_HANG));

  /* README: more than max_resets_per_s resets in a second ends the
   * connection with GOAWAY(ENHANCE_YOUR_CALM). */
  check_goaway(&e, &r, name, H2_ENHANCE_YOUR_CALM);
  failif(&e, !atomic_load(&r.closed),
         "%s: connection still open after the GOAWAY", name);
  /* ... not before reset number limit + 1: the last stream the server
   * processed is at least pair limit + 1 (id 2 * limit + 1).  Only
   * streams whose response headers had reached the socket before the
   * reset arrived are exempt (README), and here every reset arrives
   * right behind its HEADERS, so the GOAWAY comes at pair limit + 1
   * (measured: id 1001 for limit 500, also with the CPUs busy).  Allow
   * twice that (4x in sanitized builds, where the attack may straddle
   * counting seconds).  Before the exemption looked at what was sent,
   * a quick answer still queued exempted its reset: the GOAWAY came
   * after 10,000-19,000 streams, or nghttp2's backstop came first with
   * INTERNAL_ERROR. */
  failif(&e, atomic_load(&r.goaways) > 0 && last < (uint32_t)(2 * eff + 1),
         "%s: GOAWAY after stream %u, before %d resets (limit %d/s)", name,
         last, eff + 1, eff);
  failif(&e,
         atomic_load(&r.goaways) > 0 &&
             last > (uint32_t)(2 * (HUTIL_SANITIZED ? 4 : 2) * (eff + 1) + 1),
         "%s: GOAWAY only after stream %u: more than %d resets before the "
         "limit of %d/s acted",
         name, last, (HUTIL_SANITIZED ? 4 : 2) * (eff + 1), eff);
  /* What the limit protects: handlers started for streams the client
   * reset.  At most limit + 1 in the counting second (measured: exactly
   * limit + 1), + 10 % for a handler that answered before its stream's
   * reset was read; sanitized builds may spread the attack over more
   * than one counting second: 4x there. */
  failif(&e, started > (HUTIL_SANITIZED ? 4 * (eff + 1) : eff + 1 + eff / 10),
         "%s: %d handlers started for reset streams, limit %d/s", name,
         started, eff);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}

START_TEST(t_rapid_reset) { rapid_reset(0); }
END_TEST

/* The configured limit is the one applied. */
START_TEST(t_rapid_reset_limit) { rapid_reset(100); }
END_TEST

/* ------------------------------------------------------------------ */
/* PING and SETTINGS floods without reading the ACKs                   */
/* ------------------------------------------------------------------ */

static void flood(int settings_flood) {
  const char *name = settings_flood ? "settings_flood" : "ping_flood";
  hsrv srv;
  measure m;
  h2reader r;
  h2buf b = {0};
  errs e = {0};
  const long N = 100000;
  long sent = 0;
  int wrv = 0;

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  int fd = attack_conn(&srv, NULL, 0);

  measure_attack_start(&m);
  int64_t t0 = h2_now_ms();
  for (long i = 0; i < N && h2_now_ms() - t0 < 10000;) {
    h2buf_reset(&b);
    for (int k = 0; k < 1000 && i < N; k++, i++) {
      if (settings_flood) {
        uint32_t iv[1][2] = {{H2_S_INITIAL_WINDOW_SIZE,
                              (uint32_t)(65535 + (i & 1))}};
        h2_settings(&b, iv, 1);
      } else {
        h2_ping(&b, (uint64_t)i);
      }
    }
    wrv = h2_write_all(fd, b.p, b.len, 3000, NULL);
    if (wrv != 0)
      break;
    sent = i;
  }
  int64_t t_sent = h2_now_ms();
  /* Now read: the ACK backlog, then maybe GOAWAY and EOF. */
  h2reader_start(&r, fd, 0);
  h2reader_wait_closed(&r, 5000);
  measure_end(&m, name, 1500);
  outcome(name, &r);
  printf("outcome: %s wrote %ld frames in %lld ms (last write: %s)\n", name,
         sent, (long long)(t_sent - t0),
         wrv == 0 ? "ok" : wrv == -2 ? "timed out (server stopped reading)"
                                     : strerror(errno));
  /* DESIGN.md: floods end the session with a hand-written GOAWAY with
   * the right code, ENHANCE_YOUR_CALM (nghttp2 reports them as
   * NGHTTP2_ERR_FLOODED), and the connection is closed. */
  check_goaway(&e, &r, name, H2_ENHANCE_YOUR_CALM);
  failif(&e, !atomic_load(&r.closed),
         "%s: connection still open after %ld frames", name, sent);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}

START_TEST(t_ping_flood) { flood(0); }
END_TEST

START_TEST(t_settings_flood) { flood(1); }
END_TEST

/* ------------------------------------------------------------------ */
/* CONTINUATION flood and oversized header blocks                      */
/* ------------------------------------------------------------------ */

START_TEST(t_continuation_flood) {
  const char *name = "continuation_flood";
  hsrv srv;
  measure m;
  h2reader r;
  h2buf b = {0}, hb = {0};
  errs e = {0};
  const long N = 10000;
  long sent = 0;
  char val[1000];

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  int fd = attack_conn(&srv, NULL, 0);
  h2reader_start(&r, fd, 1);
  memset(val, 'v', sizeof(val));

  measure_attack_start(&m);
  hp_grpc_request(&hb, HM_HANG, NULL);
  h2_frame(&b, H2_HEADERS, 0, 1, hb.p, hb.len); /* no END_HEADERS */
  int64_t t0 = h2_now_ms();
  for (long i = 0; i < N && h2_now_ms() - t0 < 10000;) {
    for (int k = 0; k < 50 && i < N; k++, i++) {
      char key[32];
      h2buf_reset(&hb);
      snprintf(key, sizeof(key), "x-pad-%ld", i);
      hp_lit(&hb, key, val, sizeof(val));
      h2_frame(&b, H2_CONTINUATION, 0, 1, hb.p, hb.len);
    }
    if (attack_write(fd, &r, &b, 3000) != 0)
      break;
    sent = i;
    h2buf_reset(&b);
  }
  h2reader_wait_goaway_or_close(&r, 3000);
  h2reader_wait_closed(&r, 1000);
  measure_end(&m, name, 1500);
  outcome(name, &r);
  printf("outcome: %s wrote %ld CONTINUATION frames (%ld KiB of header "
         "block) before the server stopped taking them; handlers started %d\n",
         name, sent, sent * 1012 / 1024,
         atomic_load(&srv.sh->started[HK_HANG]));
  int refused = atomic_load(&r.closed) || atomic_load(&r.goaways) > 0 ||
                atomic_load(&r.frames[H2_RST_STREAM]) > 0;
  failif(&e, !refused,
         "%s: server took %ld CONTINUATION frames on one stream without "
         "refusing the stream or closing the connection",
         name, sent);
  failif(&e, sent >= N,
         "%s: server accepted all %ld CONTINUATION frames (%ld KiB header "
         "block) before reacting",
         name, sent, sent * 1012 / 1024);
  failif(&e, atomic_load(&srv.sh->started[HK_HANG]) > 0,
         "%s: a handler was started for the flooded stream", name);
  /* nghttp2 stops at 8 CONTINUATIONs (max_continuations) with a fatal
   * error that is not a "flood" error, so conn_raw_goaway() answers
   * PROTOCOL_ERROR (measured); ENHANCE_YOUR_CALM would be right too.  Any
   * other answer, or none, is wrong. */
  failif(&e, atomic_load(&r.goaways) == 0 ||
                (atomic_load(&r.goaway_code) != H2_PROTOCOL_ERROR &&
                 atomic_load(&r.goaway_code) != H2_ENHANCE_YOUR_CALM),
         "%s: want GOAWAY(PROTOCOL_ERROR or ENHANCE_YOUR_CALM): %s", name,
         h2reader_summary(&r));
  failif(&e, !atomic_load(&r.closed),
         "%s: connection still open after the GOAWAY", name);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

START_TEST(t_oversized_headers) {
  const char *name = "oversized_headers";
  hsrv srv;
  measure m;
  h2reader r1, r2;
  h2buf b = {0}, hb = {0};
  errs e = {0};
  static char big[12000];
  const int BOMB_STREAMS = 200;

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  measure_attack_start(&m);

  /* A: one 96 KiB header list in HEADERS + 7 CONTINUATIONs (within
   * nghttp2's CONTINUATION count limit), 3x the 32 KiB we advertise. */
  int fd1 = attack_conn(&srv, NULL, 0);
  h2reader_start(&r1, fd1, 1);
  memset(big, 'b', sizeof(big));
  hp_grpc_request(&hb, HM_HANG, NULL);
  hp_lit(&hb, "x-big-0", big, sizeof(big));
  h2_frame(&b, H2_HEADERS, 0, 1, hb.p, hb.len);
  for (int i = 1; i < 8; i++) {
    char key[16];
    snprintf(key, sizeof(key), "x-big-%d", i);
    h2buf_reset(&hb);
    hp_lit(&hb, key, big, sizeof(big));
    h2_frame(&b, H2_CONTINUATION, i == 7 ? H2_F_END_HEADERS : 0, 1, hb.p,
             hb.len);
  }
  h2buf_reset(&hb);
  h2_grpc_msg(&hb, "x", 1);
  h2_frame(&b, H2_DATA, H2_F_END_STREAM, 1, hb.p, hb.len);
  attack_write(fd1, &r1, &b, 3000);

  /* B: HPACK bomb.  One 4000-byte field goes into the dynamic table, then
   * each request references it 4000 times (1 byte each): 16 MB of header
   * list per 4 KiB on the wire, on BOMB_STREAMS streams. */
  int fd2 = attack_conn(&srv, NULL, 0);
  h2reader_start(&r2, fd2, 1);
  static char bombv[4000];
  memset(bombv, 'z', sizeof(bombv));
  for (int sidx = 0; sidx < BOMB_STREAMS; sidx++) {
    h2buf_reset(&b);
    h2buf_reset(&hb);
    hp_grpc_request(&hb, HM_HANG, NULL);
    if (sidx == 0)
      hp_lit_index(&hb, "x-bomb", bombv, sizeof(bombv));
    for (int k = 0; k < 4000; k++)
      hp_indexed(&hb, 62);
    h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, (uint32_t)(2 * sidx + 1), hb.p,
             hb.len);
    if (attack_write(fd2, &r2, &b, 3000) != 0)
      break;
  }
  h2_sleep_ms(1500);
  measure_end(&m, name, 2000);
  outcome("oversized_headers.A_96KiB_list", &r1);
  outcome("oversized_headers.B_hpack_bomb", &r2);
  printf("outcome: %s handlers started %d (%s)\n", name,
         atomic_load(&srv.sh->started[HK_HANG]),
         hsrv_rc_summary(&srv, HK_HANG));

  long refused1 = atomic_load(&r1.frames[H2_RST_STREAM]) +
                  atomic_load(&r1.grpc_status[TRI_RESOURCE_EXHAUSTED]) +
                  atomic_load(&r1.http_non200) + atomic_load(&r1.goaways) +
                  atomic_load(&r1.closed);
  failif(&e, refused1 == 0,
         "%s: a 96 KiB request header list (limit 32 KiB) was neither "
         "refused (RST_STREAM / grpc-status 8 / HTTP 431) nor the "
         "connection closed: %s",
         name, h2reader_summary(&r1));
  long refused2 = atomic_load(&r2.frames[H2_RST_STREAM]) +
                  atomic_load(&r2.grpc_status[TRI_RESOURCE_EXHAUSTED]) +
                  atomic_load(&r2.http_non200);
  failif(&e,
         refused2 < BOMB_STREAMS && !atomic_load(&r2.closed) &&
             atomic_load(&r2.goaways) == 0,
         "%s: only %ld of %d HPACK-bomb requests (16 MB decoded header "
         "list each) were refused and the connection stays open: %s",
         name, refused2, BOMB_STREAMS, h2reader_summary(&r2));
  failif(&e, atomic_load(&srv.sh->started[HK_HANG]) > 0,
         "%s: %d handler(s) ran for requests whose header list exceeds the "
         "limit",
         name, atomic_load(&srv.sh->started[HK_HANG]));
  /* README: a header list over the 32 KiB limit gets RESOURCE_EXHAUSTED
   * (A: 3x over, one request: that stream only, the connection stays);
   * one far over it (the HPACK bomb, B) ends the connection with
   * GOAWAY(ENHANCE_YOUR_CALM). */
  failif(&e, atomic_load(&r1.grpc_status[TRI_RESOURCE_EXHAUSTED]) != 1,
         "%s: A: want grpc-status 8 (RESOURCE_EXHAUSTED) for the 96 KiB "
         "header list: %s",
         name, h2reader_summary(&r1));
  failif(&e, atomic_load(&r1.goaways) > 0 || atomic_load(&r1.closed),
         "%s: A: one oversized request must not cost the connection: %s",
         name, h2reader_summary(&r1));
  check_goaway(&e, &r2, name, H2_ENHANCE_YOUR_CALM);
  failif(&e, !atomic_load(&r2.closed),
         "%s: B: connection still open after the GOAWAY", name);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  h2reader_stop(&r1);
  h2reader_stop(&r2);
  close(fd1);
  close(fd2);
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Zero-window stall                                                   */
/* ------------------------------------------------------------------ */

START_TEST(t_zero_window) {
  const char *name = "zero_window_stall";
  const int K = 64;
  hsrv srv;
  measure m;
  h2reader r;
  h2buf b = {0}, hb = {0};
  errs e = {0};
  const uint32_t iv[1][2] = {{H2_S_INITIAL_WINDOW_SIZE, 0}};
  /* This attack is about send buffers under a zero window, so let all K
   * streams of the one connection run a handler (the default per-connection
   * share would refuse half of them, which abandoned_streams covers). */
  hsrv_cfg cfg = {0, 0, -1, 0, K};

  ck_assert_int_eq(hsrv_start(&srv, &cfg), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  int fd = attack_conn(&srv, iv, 1);
  h2reader_start(&r, fd, 1);

  measure_attack_start(&m);
  int64_t t0 = h2_now_ms();
  for (int i = 0; i < K; i++) {
    uint32_t sid = (uint32_t)(2 * i + 1);
    h2buf_reset(&hb);
    hp_grpc_request(&hb, HM_BIG, "3S");
    h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, sid, hb.p, hb.len);
    h2buf_reset(&hb);
    h2_grpc_msg(&hb, "go", 2);
    h2_frame(&b, H2_DATA, H2_F_END_STREAM, sid, hb.p, hb.len);
  }
  attack_write(fd, &r, &b, 3000);
  int started_ok = hsrv_wait_count(&srv, HK_BIG, K, 0, 2500) == 0;
  int ended_ok = hsrv_wait_count(&srv, HK_BIG, K, 1, 6000) == 0;
  int64_t t_end = h2_now_ms();
  measure_end(&m, name, 1000);
  outcome(name, &r);
  long long fmin = atomic_load(&srv.sh->big_fail_after_ms_min);
  long long fmax = atomic_load(&srv.sh->big_fail_after_ms_max);
  long long maxsent = atomic_load(&srv.sh->big_max_sent);
  printf("outcome: %s %d streams, initial window 0, grpc-timeout 3S: %d "
         "handlers started, %d ended (%s) after %lld ms; failing send "
         "returned %lld..%lld ms after handler start; max bytes queued by "
         "one handler %lld\n",
         name, K, atomic_load(&srv.sh->started[HK_BIG]),
         atomic_load(&srv.sh->ended[HK_BIG]), hsrv_rc_summary(&srv, HK_BIG),
         (long long)(t_end - t0), fmin == INT64_MAX ? -1 : fmin, fmax,
         maxsent);

  failif(&e, !started_ok, "%s: only %d of %d handlers started", name,
         atomic_load(&srv.sh->started[HK_BIG]), K);
  failif(&e, !ended_ok,
         "%s: only %d of %d handlers returned within 6 s of a 3 s deadline",
         name, atomic_load(&srv.sh->ended[HK_BIG]), K);
  failif(&e, hsrv_rc(&srv, HK_BIG, TRI_DEADLINE_EXCEEDED) != K,
         "%s: handlers' blocked send should end with "
         "TRI_DEADLINE_EXCEEDED; got %s",
         name, hsrv_rc_summary(&srv, HK_BIG));
  /* The 3 s deadline runs from the request's arrival; the handler starts
   * a little later (up to 300 ms for 64 handler threads started on demand
   * on a loaded machine), so its blocked send may give up a little before
   * 3000 ms after the handler's start, never after 3000 + headroom.
   * Measured: 2997..3000. */
  failif(&e, fmin == INT64_MAX, "%s: no handler's send failed", name);
  if (fmin != INT64_MAX) {
    check_timer(&e, name, "first blocked send gave up", 3000, 2700, fmin);
    check_timer(&e, name, "last blocked send gave up", 3000, 2700, fmax);
  }
  failif(&e, maxsent > DEFAULT_SEND_BUFFER + HSRV_BIG_MSG,
         "%s: a handler got %lld bytes queued with a zero window; bound is "
         "send buffer + one message = %ld",
         name, maxsent, DEFAULT_SEND_BUFFER + HSRV_BIG_MSG);
  check_rss(&e, &m, name,
            K * (DEFAULT_SEND_BUFFER + 2 * HSRV_BIG_MSG) / 1024 + 32 * 1024);
  check_healthy(&e, &m, name);

  h2reader_stop(&r);
  close(fd);
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Thousands of streams opened and abandoned                           */
/* ------------------------------------------------------------------ */

START_TEST(t_abandoned_streams) {
  /* A careful attacker: stays within the advertised
   * SETTINGS_MAX_CONCURRENT_STREAMS on each connection (so no protocol
   * error to punish), opens that many streams on several connections and
   * goes silent, holding them. */
  const char *name = "abandoned_streams";
  enum { CONNS = 5 };
  hsrv srv;
  measure m;
  h2reader r[CONNS];
  int fd[CONNS];
  h2buf b = {0}, hb = {0};
  errs e = {0};
  uint32_t ss[7] = {0, 4096, 1, 0xffffffffu, 65535, 16384, 0xffffffffu};

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  hp_grpc_request(&hb, HM_HANG, NULL);

  measure_attack_start(&m);
  for (int c = 0; c < CONNS; c++) {
    fd[c] = h2_connect(srv.port, 0);
    ck_assert_int_ge(fd[c], 0);
    ck_assert_int_eq(h2_handshake2(fd[c], NULL, 0, 3000, ss), 0);
    h2reader_start(&r[c], fd[c], 1);
    long per = ss[H2_S_MAX_CONCURRENT_STREAMS] > 2000
                   ? 2000
                   : (long)ss[H2_S_MAX_CONCURRENT_STREAMS];
    for (long i = 0; i < per;) {
      h2buf_reset(&b);
      for (int k = 0; k < 250 && i < per; k++, i++)
        h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, (uint32_t)(2 * i + 1),
                 hb.p, hb.len);
      if (attack_write(fd[c], &r[c], &b, 3000) != 0)
        break;
    }
  }
  /* Silence from now on; keep the connections open and watch. */
  measure_end(&m, name, 4000);
  long refused = 0, status8 = 0;
  int nclosed = 0;
  for (int c = 0; c < CONNS; c++) {
    char nm[64];
    snprintf(nm, sizeof(nm), "%s.conn%d", name, c);
    outcome(nm, &r[c]);
    refused += atomic_load(&r[c].rst_by_code[H2_REFUSED_STREAM]);
    status8 += atomic_load(&r[c].grpc_status[TRI_RESOURCE_EXHAUSTED]);
    nclosed += atomic_load(&r[c].closed);
  }
  int started = atomic_load(&srv.sh->started[HK_HANG]);
  int ended = atomic_load(&srv.sh->ended[HK_HANG]);
  printf("outcome: %s %d connections x %u streams (server's "
         "MAX_CONCURRENT_STREAMS) opened and left silent: handlers started "
         "%d, still running %d, ended %d (%s); RST_STREAM REFUSED=%ld; "
         "grpc-status 8=%ld; connections closed by server %d\n",
         name, CONNS, ss[H2_S_MAX_CONCURRENT_STREAMS], started,
         started - ended, ended, hsrv_rc_summary(&srv, HK_HANG), refused,
         status8, nclosed);
  /* README: each client connection runs at most max_workers / 8 = 32
   * handlers (and queues as many, for the 1000 ms queue timeout); every
   * other stream is refused with RESOURCE_EXHAUSTED.  After 4 s all
   * queued ones timed out too: exactly per - 32 refusals per connection.
   * Sanitized builds may not have refused the last ones yet. */
  long per = ss[H2_S_MAX_CONCURRENT_STREAMS] > 2000
                 ? 2000
                 : (long)ss[H2_S_MAX_CONCURRENT_STREAMS];
  failif(&e, started != CONNS * DEFAULT_PER_CONN,
         "%s: %d handlers started for %d silent connections, want %d per "
         "connection",
         name, started, CONNS, DEFAULT_PER_CONN);
  for (int c = 0; c < CONNS; c++) {
    long st8 = atomic_load(&r[c].grpc_status[TRI_RESOURCE_EXHAUSTED]);
    long want = per - DEFAULT_PER_CONN;
    failif(&e, HUTIL_SANITIZED ? st8 < want - DEFAULT_PER_CONN : st8 != want,
           "%s: connection %d: %ld streams refused with RESOURCE_EXHAUSTED, "
           "want %ld (%ld streams, share %d)",
           name, c, st8, want, per, DEFAULT_PER_CONN);
  }
  failif(&e, nclosed != 0,
         "%s: %d silent connections within the limits were closed", name,
         nclosed);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  for (int c = 0; c < CONNS; c++) {
    h2reader_stop(&r[c]);
    close(fd[c]);
  }
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A client that never reads the socket                                */
/* ------------------------------------------------------------------ */

START_TEST(t_never_reads) {
  const char *name = "never_reads";
  const int K = 4;
  hsrv srv;
  measure m;
  h2buf b = {0}, hb = {0};
  errs e = {0};
  /* Flow control wide open: only TCP pushes back. */
  const uint32_t iv[1][2] = {{H2_S_INITIAL_WINDOW_SIZE, 0x7fffffff}};

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  int fd = h2_connect(srv.port, 4096);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, iv, 1, 3000), 0);

  measure_attack_start(&m);
  int64_t t0 = h2_now_ms();
  h2_window_update(&b, 0, 0x7fffffff - 65535);
  for (int i = 0; i < K; i++) {
    uint32_t sid = (uint32_t)(2 * i + 1);
    h2buf_reset(&hb);
    hp_grpc_request(&hb, HM_BIG, "3S");
    h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, sid, hb.p, hb.len);
    h2buf_reset(&hb);
    h2_grpc_msg(&hb, "go", 2);
    h2_frame(&b, H2_DATA, H2_F_END_STREAM, sid, hb.p, hb.len);
  }
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  /* ... and never read again. */
  int started_ok = hsrv_wait_count(&srv, HK_BIG, K, 0, 2500) == 0;
  int ended_ok = hsrv_wait_count(&srv, HK_BIG, K, 1, 6000) == 0;
  int64_t t_end = h2_now_ms();
  measure_end(&m, name, 1000);
  long long fmin = atomic_load(&srv.sh->big_fail_after_ms_min);
  long long fmax = atomic_load(&srv.sh->big_fail_after_ms_max);
  long long maxsent = atomic_load(&srv.sh->big_max_sent);
  printf("outcome: %s %d streams, peer never reads (SO_RCVBUF 4096), "
         "grpc-timeout 3S: %d started, %d ended (%s) after %lld ms; failing "
         "send returned %lld..%lld ms after start; max bytes one handler "
         "got out/queued %lld\n",
         name, K, atomic_load(&srv.sh->started[HK_BIG]),
         atomic_load(&srv.sh->ended[HK_BIG]), hsrv_rc_summary(&srv, HK_BIG),
         (long long)(t_end - t0), fmin == INT64_MAX ? -1 : fmin, fmax,
         maxsent);
  fflush(stdout);
  failif(&e, !started_ok, "%s: only %d of %d handlers started", name,
         atomic_load(&srv.sh->started[HK_BIG]), K);
  failif(&e, !ended_ok,
         "%s: only %d of %d handlers returned within 6 s of a 3 s deadline",
         name, atomic_load(&srv.sh->ended[HK_BIG]), K);
  failif(&e, hsrv_rc(&srv, HK_BIG, TRI_DEADLINE_EXCEEDED) != K,
         "%s: blocked sends should end with TRI_DEADLINE_EXCEEDED; got %s",
         name, hsrv_rc_summary(&srv, HK_BIG));
  /* The 3 s deadline runs from the request's arrival; the handler starts
   * a little later (up to 300 ms for 64 handler threads started on demand
   * on a loaded machine), so its blocked send may give up a little before
   * 3000 ms after the handler's start, never after 3000 + headroom.
   * Measured: 2997..3000. */
  failif(&e, fmin == INT64_MAX, "%s: no handler's send failed", name);
  if (fmin != INT64_MAX) {
    check_timer(&e, name, "first blocked send gave up", 3000, 2700, fmin);
    check_timer(&e, name, "last blocked send gave up", 3000, 2700, fmax);
  }
  /* Kernel socket buffers on loopback can absorb a few MiB; beyond that
   * only the library's buffers may hold data. */
  failif(&e, maxsent > 16L * 1024 * 1024,
         "%s: one handler got %lld bytes out to a peer that never reads",
         name, maxsent);
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  close(fd);
  h2buf_free(&b);
  h2buf_free(&hb);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Slowloris on the connection preface                                 */
/* ------------------------------------------------------------------ */

START_TEST(t_slowloris) {
  const char *name = "slowloris_preface";
  enum { IDLE_CONNS = 100 };
  /* Watch until the handshake timeout plus headroom plus 1 s. */
  const int LIMIT_MS =
      HANDSHAKE_MS + (int)(TIMER_HEADROOM_MS * hutil_mult()) + 1000;
  hsrv srv;
  measure m;
  h2buf pre = {0};
  errs e = {0};
  int half, drip, silent[IDLE_CONNS];
  int64_t closed_at[IDLE_CONNS + 2];
  size_t drip_off = 0;

  ck_assert_int_eq(hsrv_start(&srv, NULL), 0);
  ck_assert_int_eq(measure_begin(&m, &srv), 0);
  h2_preface(&pre, NULL, 0);

  measure_attack_start(&m);
  int64_t t0 = h2_now_ms();
  half = h2_connect(srv.port, 0);
  drip = h2_connect(srv.port, 0);
  ck_assert(half >= 0 && drip >= 0);
  ck_assert_int_eq(h2_write_all(half, pre.p, H2_PREFACE_LEN / 2, 1000, NULL),
                   0);
  int nsilent = 0;
  for (int i = 0; i < IDLE_CONNS; i++) {
    silent[i] = h2_connect(srv.port, 0);
    if (silent[i] >= 0)
      nsilent++;
  }
  int fds[IDLE_CONNS + 2];
  fds[0] = half;
  fds[1] = drip;
  for (int i = 0; i < IDLE_CONNS; i++)
    fds[i + 2] = silent[i];
  for (int i = 0; i < IDLE_CONNS + 2; i++)
    closed_at[i] = -1;

  int64_t next_drip = t0;
  int open_left = IDLE_CONNS + 2;
  while (open_left > 0 && h2_now_ms() - t0 < LIMIT_MS) {
    int64_t now = h2_now_ms();
    if (now >= next_drip && drip_off < pre.len && closed_at[1] < 0) {
      if (send(drip, pre.p + drip_off, 1, MSG_NOSIGNAL) == 1)
        drip_off++;
      next_drip = now + 1000;
    }
    for (int i = 0; i < IDLE_CONNS + 2; i++) {
      if (fds[i] < 0 || closed_at[i] >= 0)
        continue;
      char tmp[512];
      ssize_t n = recv(fds[i], tmp, sizeof(tmp), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed_at[i] = now - t0;
        open_left--;
      }
    }
    h2_sleep_ms(20);
  }
  measure_end(&m, name, 1000);
  int n_closed_silent = 0;
  int64_t max_silent = -1;
  for (int i = 2; i < IDLE_CONNS + 2; i++)
    if (closed_at[i] >= 0) {
      n_closed_silent++;
      if (closed_at[i] > max_silent)
        max_silent = closed_at[i];
    }
  printf("outcome: %s half-preface conn closed after %lld ms, 1-byte/s "
         "conn closed after %lld ms (%zu of %zu preface+SETTINGS bytes "
         "sent), %d/%d silent conns closed (last after %lld ms); -1 = still "
         "open after %d ms\n",
         name, (long long)closed_at[0], (long long)closed_at[1], drip_off,
         pre.len, n_closed_silent, nsilent, (long long)max_silent, LIMIT_MS);
  failif(&e, closed_at[0] < 0,
         "%s: a connection that sent half the preface and stalled was still "
         "open after %d ms (no handshake timeout)",
         name, LIMIT_MS);
  failif(&e, closed_at[1] < 0,
         "%s: a connection sending the preface 1 byte/s was still open "
         "after %d ms (no handshake timeout)",
         name, LIMIT_MS);
  failif(&e, n_closed_silent < nsilent,
         "%s: %d of %d connections that never sent a byte were still open "
         "after %d ms",
         name, nsilent - n_closed_silent, nsilent, LIMIT_MS);
  /* README: the handshake (client preface + SETTINGS) must complete in
   * 10 s, then the connection is closed: not before (t0 precedes every
   * connect), and at most TIMER_HEADROOM_MS x mult after; this loop sees
   * a close within 20 ms.  Measured: 10015 ms. */
  if (closed_at[0] >= 0)
    check_timer(&e, name, "half-preface connection closed", HANDSHAKE_MS,
                HANDSHAKE_MS, closed_at[0]);
  if (closed_at[1] >= 0)
    check_timer(&e, name, "1-byte/s connection closed", HANDSHAKE_MS,
                HANDSHAKE_MS, closed_at[1]);
  for (int i = 2; i < IDLE_CONNS + 2; i++)
    if (closed_at[i] >= 0 && (closed_at[i] < HANDSHAKE_MS ||
                              closed_at[i] >= HANDSHAKE_MS +
                                  (long long)(TIMER_HEADROOM_MS *
                                              hutil_mult()))) {
      check_timer(&e, name, "silent connection closed", HANDSHAKE_MS,
                  HANDSHAKE_MS, closed_at[i]);
      break;
    }
  check_rss(&e, &m, name, RSS_BOUND_KB);
  check_healthy(&e, &m, name);

  for (int i = 0; i < IDLE_CONNS + 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  h2buf_free(&pre);
  hsrv_kill(&srv);
  ERRS_DONE(&e, name);
}
END_TEST

static Suite *attacks_suite(void) {
  Suite *s = suite_create("hard_attacks");
  struct {
    const char *name;
    const TTest *t;
  } tests[] = {
      {"rapid_reset", t_rapid_reset},
      {"rapid_reset_limit", t_rapid_reset_limit},
      {"ping_flood", t_ping_flood},
      {"settings_flood", t_settings_flood},
      {"continuation_flood", t_continuation_flood},
      {"oversized_headers", t_oversized_headers},
      {"zero_window", t_zero_window},
      {"abandoned_streams", t_abandoned_streams},
      {"never_reads", t_never_reads},
      {"slowloris", t_slowloris},
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
  SRunner *sr = srunner_create(attacks_suite());
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int nf = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nf == 0 ? 0 : 1;
}
