/*
 * integ_keepalive: the server side of gRPC's A8 (keepalive enforcement)
 * and A9 (max connection age, grace, idle), with the raw HTTP/2 client of
 * test/hardening (frames written by hand, the server's frames read on a
 * background thread) and real channels.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "hardening/h2raw.h"
#include "testutil.h"

#define M_ECHO "/test.Echo/Unary"
#define M_SLOW "/test.Echo/Slow"

/* Answers after the number of ms its request says ("1500"). */
static int h_slow(tri_stream *s, void *ud) {
  tri_buf *m;
  (void)ud;
  int rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return rv;
  int ms = atoi((const char *)tri_buf_data(m));
  tri_buf_free(m);
  for (int i = 0; i < ms / 10; i++) {
    if (tri_stream_wait_status(s, 0, NULL) != TRI_ETIMEDOUT)
      return TRI_CANCELLED; /* cancelled by the grace */
    tu_sleep_ms(10);
  }
  return tri_stream_send(s, "done", 4);
}

static tri_server *start(tri_server_opts *so, int *port) {
  tu_method m[] = {{M_ECHO, tu_echo_handler, NULL}, {M_SLOW, h_slow, NULL}};
  tri_server *srv = tu_server_start(m, 2, so, port);
  ck_assert_ptr_nonnull(srv);
  return srv;
}

static int raw_open(int port, h2reader *r) {
  int fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 5000), 0);
  h2reader_start(r, fd, 0);
  return fd;
}

static void send_ping(int fd, uint64_t opaque, int ack) {
  h2buf b = {0};
  if (ack) /* echoes the server's drain PING (doc/PROTOCOL.md 8.3) */
    h2_frame(&b, H2_PING, H2_F_ACK, 0, "tridrain", 8);
  else
    h2_ping(&b, opaque);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 2000, NULL), 0);
  h2buf_free(&b);
}

/* Stream 1: a unary request to |path| with |msg|, END_STREAM. */
static void send_unary(int fd, const char *path, const char *msg) {
  h2buf b = {0}, hb = {0};
  hp_grpc_request(&hb, path, NULL);
  h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, 1, hb.p, hb.len);
  h2buf_reset(&hb);
  h2_grpc_msg(&hb, msg, (uint32_t)strlen(msg));
  h2_frame(&b, H2_DATA, H2_F_END_STREAM, 1, hb.p, hb.len);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 2000, NULL), 0);
  h2buf_free(&b);
  h2buf_free(&hb);
}

START_TEST(test_too_many_pings) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  /* defaults: 5 minutes, no pings without calls */
  tri_server *srv = start(so, &port);
  int fd = raw_open(port, &r);
  /* The first PING is never a strike; the next three are; the third
   * strike is "more than 2". */
  for (int i = 0; i < 3; i++)
    send_ping(fd, (uint64_t)i + 1, 0);
  tu_sleep_ms(300);
  ck_assert_msg(atomic_load(&r.goaways) == 0,
                "GOAWAY after 2 strikes: %s", h2reader_summary(&r));
  send_ping(fd, 9, 0);
  ck_assert_int_eq(h2reader_wait_goaway_or_close(&r, 3000), 0);
  ck_assert_int_eq(atomic_load(&r.goaways), 1);
  ck_assert_str_eq(h2_errname(atomic_load(&r.goaway_code)),
                   "ENHANCE_YOUR_CALM");
  ck_assert_str_eq(r.goaway_debug, "too_many_pings");
  /* No streams: the connection closes after the GOAWAY. */
  ck_assert_int_eq(h2reader_wait_closed(&r, 3000), 0);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Strikes during a call: the GOAWAY comes, the call in flight completes,
 * then the connection closes. */
START_TEST(test_too_many_pings_in_flight) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  tri_server *srv = start(so, &port);
  int fd = raw_open(port, &r);
  send_unary(fd, M_SLOW, "800");
  tu_sleep_ms(100);
  for (int i = 0; i < 4; i++)
    send_ping(fd, (uint64_t)i + 1, 0);
  ck_assert_int_eq(h2reader_wait_goaway_or_close(&r, 3000), 0);
  ck_assert_str_eq(r.goaway_debug, "too_many_pings");
  ck_assert_int_eq(atomic_load(&r.closed), 0);
  ck_assert_int_eq(h2reader_wait_closed(&r, 5000), 0);
  /* The call finished first: its trailers are on the wire. */
  ck_assert_int_ge(atomic_load(&r.frames[H2_DATA]), 1);
  ck_assert_int_ge(atomic_load(&r.frames[H2_HEADERS]), 2);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

START_TEST(test_well_behaved_pinger) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_keepalive_enforcement(so, 200, 1),
                   TRI_OK);
  tri_server *srv = start(so, &port);
  int fd = raw_open(port, &r);
  for (int i = 0; i < 8; i++) { /* 300 ms apart: above the minimum */
    send_ping(fd, (uint64_t)i + 1, 0);
    tu_sleep_ms(300);
  }
  ck_assert_msg(atomic_load(&r.goaways) == 0 && !atomic_load(&r.closed),
                "%s", h2reader_summary(&r));
  ck_assert_int_ge(atomic_load(&r.frames[H2_PING]), 8); /* the ACKs */
  h2reader_stop(&r);
  close(fd);
  /* A channel with keepalive at the enforced minimum is never refused
   * either (A8 defaults: 5 minutes; here a permissive server). */
  tri_channel *ch = tu_channel_new(port, NULL);
  tri_buf *resp;
  ck_assert_int_eq(tri_unary_call(ch, M_ECHO, NULL, "x", 1, &resp, NULL), TRI_OK);
  tri_buf_free(resp);
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

START_TEST(test_max_age_idle) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_max_connection_age_ms(so, 1000),
                   TRI_OK);
  tri_server *srv = start(so, &port);
  int64_t t0 = tu_now_ms();
  int fd = raw_open(port, &r);
  ck_assert_int_eq(h2reader_wait_goaway_or_close(&r, 3000), 0);
  int64_t at = tu_now_ms() - t0;
  printf("integ_keepalive: max age 1000 ms: heads-up GOAWAY after %lld ms\n",
         (long long)at);
  /* 1000 +- 10 % jitter; headroom for the loop. */
  ck_assert_msg(at >= 900 && at <= tu_bound_ms(1100, TU_HEADROOM_MS),
                "GOAWAY after %lld ms", (long long)at);
  ck_assert_str_eq(h2_errname(atomic_load(&r.goaway_code)), "NO_ERROR");
  ck_assert_uint_eq(atomic_load(&r.goaway_last_sid), 0x7fffffffu);
  /* Its PING: answering it brings the real GOAWAY, then the close. */
  for (int i = 0; i < 100 && atomic_load(&r.frames[H2_PING]) == 0; i++)
    tu_sleep_ms(10);
  send_ping(fd, 0, 1);
  ck_assert_int_eq(h2reader_wait_closed(&r, 3000), 0);
  ck_assert_int_eq(atomic_load(&r.goaways), 2);
  ck_assert_str_eq(h2_errname(atomic_load(&r.goaway_code)), "NO_ERROR");
  ck_assert_uint_eq(atomic_load(&r.goaway_last_sid), 0);
  ck_assert_str_eq(r.goaway_debug, "max_age");
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* A max age too large for nanoseconds in an int64 (here ~292,000 years)
 * means "practically never", not a deadline wrapped into the past: no
 * GOAWAY comes (the server would send its heads-up at once if it did).
 * Each connection draws its own +-10 % jitter and the old code wrapped
 * for about half of the draws, so eight connections catch it (all eight
 * escaping: 1 in 256). */
START_TEST(test_max_age_huge) {
  enum { N = 8 };
  int port, fd[N];
  h2reader r[N];
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(
      tri_server_opts_set_max_connection_age_ms(so, INT64_MAX / 1000), TRI_OK);
  tri_server *srv = start(so, &port);
  for (int i = 0; i < N; i++)
    fd[i] = raw_open(port, &r[i]);
  /* The server's tick runs within ms of the preface; 500 ms is ample. */
  tu_sleep_ms(500);
  for (int i = 0; i < N; i++) {
    ck_assert_msg(atomic_load(&r[i].goaways) == 0 &&
                      !atomic_load(&r[i].closed),
                  "connection %d: %s", i, h2reader_summary(&r[i]));
    h2reader_stop(&r[i]);
    close(fd[i]);
  }
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Max idle, with a client that never answers the drain PING: the real
 * GOAWAY still comes (10 s later) and the connection closes. */
START_TEST(test_idle_unanswered_ping) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_idle_timeout_ms(so, 300), TRI_OK);
  tri_server *srv = start(so, &port);
  int fd = raw_open(port, &r);
  int64_t t0 = tu_now_ms();
  ck_assert_int_eq(h2reader_wait_goaway_or_close(&r, 3000), 0);
  ck_assert_uint_eq(atomic_load(&r.goaway_last_sid), 0x7fffffffu);
  ck_assert_int_eq(h2reader_wait_closed(&r, 15000), 0);
  int64_t el = tu_now_ms() - t0;
  ck_assert_int_eq(atomic_load(&r.goaways), 2);
  ck_assert_str_eq(r.goaway_debug, "max_idle");
  ck_assert_msg(el >= 9500 && el <= tu_bound_ms(10300, TU_HEADROOM_MS),
                "closed after %lld ms", (long long)el);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

START_TEST(test_max_age_in_flight) {
  int port;
  tri_buf *resp;
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_max_connection_age_ms(so, 500),
                   TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_connection_age_grace_ms(so, 3000),
                   TRI_OK);
  tri_server *srv = start(so, &port);
  tri_channel *ch = tu_channel_new(port, NULL);
  /* In flight across the age: completes within the grace. */
  ck_assert_int_eq(tri_unary_call(ch, M_SLOW, NULL, "1200", 4, &resp, NULL),
                   TRI_OK);
  ck_assert_str_eq((const char *)tri_buf_data(resp), "done");
  tri_buf_free(resp);
  /* The next call goes to a new connection. */
  ck_assert_int_eq(tri_unary_call(ch, M_ECHO, NULL, "y", 1, &resp, NULL), TRI_OK);
  tri_buf_free(resp);
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_server_opts_free(so);

  /* Past the grace, what is still open is cut. */
  so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_max_connection_age_ms(so, 500),
                   TRI_OK);
  ck_assert_int_eq(tri_server_opts_set_max_connection_age_grace_ms(so, 300),
                   TRI_OK);
  srv = start(so, &port);
  ch = tu_channel_new(port, NULL);
  int64_t t0 = tu_now_ms();
  int rv = tri_unary_call(ch, M_SLOW, NULL, "5000", 4, &resp, NULL);
  int64_t el = tu_now_ms() - t0;
  ck_assert_msg(rv != TRI_OK, "call outlived the grace");
  printf("integ_keepalive: grace 300 ms after age 500 ms: call ended %s "
         "after %lld ms\n", tri_code_name(rv), (long long)el);
  ck_assert_msg(el >= 700 && el <= tu_bound_ms(550 + 300, TU_HEADROOM_MS),
                "ended after %lld ms", (long long)el);
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

START_TEST(test_server_keepalive) {
  int port;
  h2reader r;
  tri_server_opts *so = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_keepalive(so, 1000, 500), TRI_OK);
  tri_server *srv = start(so, &port);
  int fd = raw_open(port, &r);
  /* The reader never answers: PING after 1 s of silence, close 0.5 s
   * later. */
  int64_t t0 = tu_now_ms();
  ck_assert_int_eq(h2reader_wait_closed(&r, 5000), 0);
  int64_t el = tu_now_ms() - t0;
  ck_assert_int_ge(atomic_load(&r.frames[H2_PING]), 1);
  ck_assert_msg(el >= 1400 && el <= tu_bound_ms(1500, TU_HEADROOM_MS),
                "closed after %lld ms", (long long)el);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* tri_server_shutdown() drains with a heads-up GOAWAY and a PING; a
 * request the client sent before it saw the heads-up is still served (the
 * real GOAWAY names it as processed), even though the server had no
 * stream open when the shutdown began.  The old drain loop waited only
 * for open streams: with none it stopped the workers at once, and the
 * request got UNAVAILABLE "server shutting down" (integ_zk_channel's
 * graceful shutdown failed so under load). */
struct shut_arg {
  tri_server *srv;
};

static void *shut_main(void *p) {
  struct shut_arg *a = p;
  tri_server_shutdown(a->srv, 20000);
  return NULL;
}

/* The end of both drain tests: the client ACKs the drain PING; stream 1
 * was served (grpc-status 0, no UNAVAILABLE), the real GOAWAY names it,
 * the shutdown returns and everything is given back. */
static void drain_finish(h2reader *r, int fd, pthread_t th, tri_server *srv) {
  send_ping(fd, 0, 1);
  ck_assert_int_eq(h2reader_wait_closed(r, 5000), 0);
  ck_assert_msg(atomic_load(&r->grpc_status[0]) == 1 &&
                    atomic_load(&r->grpc_status[14]) == 0,
                "the request was not served: %s", h2reader_summary(r));
  ck_assert_uint_eq(atomic_load(&r->goaway_last_sid), 1);
  ck_assert_int_eq(tu_thread_join(th, 10000, NULL), 0);
  h2reader_stop(r);
  close(fd);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

START_TEST(test_drain_serves_request_after_heads_up) {
  int port;
  tri_server *srv = start(NULL, &port);
  h2reader r;
  pthread_t th;
  struct shut_arg a = {srv};
  h2buf b = {0};
  int fd;

  memset(&r, 0, sizeof r);
  fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 5000), 0);
  h2reader_start(&r, fd, 1); /* decode headers: count grpc-status */
  ck_assert_int_eq(tu_thread_start(&th, shut_main, &a), 0);
  /* The heads-up GOAWAY (last stream id 2^31-1) comes first. */
  for (int i = 0; i < 500 && atomic_load(&r.goaways) == 0; i++)
    tu_sleep_ms(10);
  ck_assert_int_ge(atomic_load(&r.goaways), 1);
  ck_assert_uint_eq(atomic_load(&r.goaway_last_sid), 0x7fffffffu);
  /* A request that crossed it, then the PING's ACK. */
  send_unary(fd, M_ECHO, "late");
  /* An ACK of some other PING (a keepalive one) is not the drain's: no
   * real GOAWAY yet.  Then the ACK of the drain PING, whose opaque data
   * is "tridrain" (doc/PROTOCOL.md 8.3). */
  h2_frame(&b, H2_PING, H2_F_ACK, 0, "\0\0\0\0\0\0\0\0", 8);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 2000, NULL), 0);
  h2buf_free(&b);
  tu_sleep_ms(200);
  ck_assert_msg(atomic_load(&r.goaways) == 1 && !atomic_load(&r.closed),
                "a foreign PING ACK ended the drain: %s",
                h2reader_summary(&r));
  drain_finish(&r, fd, th, srv);
  /* Heads-up, then the real GOAWAY (the close may repeat it). */
  ck_assert_int_ge(atomic_load(&r.goaways), 2);
}
END_TEST

/* A connection that never finished its preface (a port probe) holds no
 * request: shutdown does not wait for it. */
START_TEST(test_drain_ignores_silent_connection) {
  int port;
  tri_server *srv = start(NULL, &port);
  int fd = tu_raw_connect(port);
  int64_t t0, el;

  ck_assert_int_ge(fd, 0);
  tu_sleep_ms(100); /* accepted */
  t0 = tu_now_ms();
  tri_server_shutdown(srv, 60000); /* a wait for it would be obvious */
  el = tu_now_ms() - t0;
  ck_assert_msg(el <= tu_bound_ms(50, TU_HEADROOM_MS),
                "shutdown took %lld ms", (long long)el);
  close(fd);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* A client whose preface is still arriving when the drain begins (an h2c
 * client may write preface, SETTINGS and its first request at once, and
 * the server may have read only part of it) is waited for like a READY
 * one: its request is served, and the shutdown waits for the drain
 * PING's ACK.  The drain used to count only READY connections: shutdown
 * returned at once and the request was refused. */
START_TEST(test_drain_waits_for_preface_in_progress) {
  int port;
  tri_server *srv = start(NULL, &port);
  h2reader r;
  pthread_t th;
  struct shut_arg a = {srv};
  h2buf b = {0};
  int fd;

  memset(&r, 0, sizeof r);
  fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  h2_preface(&b, NULL, 0);
  ck_assert_int_eq(h2_write_all(fd, b.p, 10, 2000, NULL), 0); /* "PRI * HTTP" */
  h2reader_start(&r, fd, 1);
  tu_sleep_ms((int)(200 * tu_mult())); /* read: not a silent connection */
  ck_assert_int_eq(tu_thread_start(&th, shut_main, &a), 0);
  /* The drain has begun once the listening socket is closed (no frame
   * goes out before the client's preface is complete). */
  int refused = 0;
  for (int i = 0; i < 500 && !refused; i++) {
    int p = tu_raw_connect(port);
    if (p < 0)
      refused = 1;
    else
      close(p);
    tu_sleep_ms(10);
  }
  ck_assert_msg(refused, "the listening socket stayed open");
  tu_sleep_ms(100); /* a shutdown that does not wait would be over */
  ck_assert_int_eq(h2_write_all(fd, b.p + 10, b.len - 10, 2000, NULL), 0);
  h2buf_free(&b);
  send_unary(fd, M_ECHO, "late");
  for (int i = 0; i < 500 && atomic_load(&r.grpc_status[0]) == 0 &&
                  atomic_load(&r.grpc_status[14]) == 0 &&
                  !atomic_load(&r.closed);
       i++)
    tu_sleep_ms(10);
  drain_finish(&r, fd, th, srv);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("integ_keepalive");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_test(tc, test_too_many_pings);
  tcase_add_test(tc, test_too_many_pings_in_flight);
  tcase_add_test(tc, test_well_behaved_pinger);
  tcase_add_test(tc, test_max_age_idle);
  tcase_add_test(tc, test_max_age_huge);
  tcase_add_test(tc, test_max_age_in_flight);
  tcase_add_test(tc, test_idle_unanswered_ping);
  tcase_add_test(tc, test_server_keepalive);
  tcase_add_test(tc, test_drain_serves_request_after_heads_up);
  tcase_add_test(tc, test_drain_ignores_silent_connection);
  tcase_add_test(tc, test_drain_waits_for_preface_in_progress);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
