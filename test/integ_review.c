/*
 * integ_review: regression tests for the defects a review of the core
 * rework found (each fails on the commit before its fix):
 *
 *  R1  partial messages counted against the connection budget stalled
 *      every stream once they added up past it (24 concurrent 4 MiB
 *      unary calls with default options: 11 ended DEADLINE_EXCEEDED);
 *  R2  a call that ended while its request waited for a stream slot in
 *      nghttp2's queue stayed attached until a slot freed;
 *  R3  a compressed message that decompressed to fewer bytes than were
 *      counted while it was partial left the difference counted;
 *  R4  request trailers that ended the stream inside a message were taken
 *      as a clean end (the handler saw TRI_EOF).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "budget.h"
#include "hardening/h2raw.h"
#include "testutil.h"

static long live_streams(void)
{
  tri__budgets b;
  tri__budgets_get(&b);
  return (long)b.streams;
}

/* ---- R1 ----------------------------------------------------------- */

static int h_one(tri_stream *s, void *ud)
{
  tri_buf *m;
  int rv;
  (void)ud;
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return rv;
  tri_buf_free(m);
  rv = tri_stream_send(s, "ok", 2);
  return rv == TRI_OK ? TRI_OK : rv;
}

#define R1_CALLS 24
static tri_channel *r1_ch;
static size_t r1_size;
static unsigned char *r1_buf;
static int r1_rc[R1_CALLS];

static void *r1_call(void *arg)
{
  long i = (long)arg;
  tri_buf *r = NULL;
  tri_call_opts *o = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(o, 8000);
  r1_rc[i] = tri_unary_call(r1_ch, "/r.R/One", o, r1_buf, r1_size, &r, NULL);
  tri_buf_free(r);
  tri_call_opts_free(o);
  return NULL;
}

static void r1_run(tri_server_opts *so, size_t size, int n)
{
  tu_method ms[] = {{"/r.R/One", h_one, NULL}};
  tri_channel_opts *co = tri_channel_opts_new();
  pthread_t t[R1_CALLS];
  int port, bad = 0;
  tri_server *srv = tu_server_start(ms, 1, so, &port);

  ck_assert_ptr_nonnull(srv);
  tri_channel_opts_set_send_buffer(co, 8u << 20);
  r1_ch = tu_channel_new(port, co);
  r1_size = size;
  r1_buf = calloc(1, size);
  int64_t t0 = tu_now_us();
  for (long i = 0; i < n; i++)
    ck_assert_int_eq(tu_thread_start(&t[i], r1_call, (void *)i), 0);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(tu_thread_join(t[i], 20000, NULL), 0);
  for (int i = 0; i < n; i++)
    if (r1_rc[i] != TRI_OK)
      bad++;
  fprintf(stderr, "measure: R1 %d x %zu bytes in %lld ms, %d failed\n", n,
          size, (long long)((tu_now_us() - t0) / 1000), bad);
  ck_assert_msg(bad == 0, "%d of %d calls failed (first %s)", bad, n,
                tri_code_name(r1_rc[0]));
  tri_channel_free(r1_ch);
  tri_server_free(srv);
  tri_channel_opts_free(co);
  free(r1_buf);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

START_TEST(test_r1_partial_messages_do_not_stall)
{
  /* Default options: 24 x 4 MiB in flight at once (96 MiB of partial
   * messages against a 64 MiB budget). */
  r1_run(NULL, 4u << 20, R1_CALLS);
}
END_TEST

START_TEST(test_r1_message_larger_than_budget)
{
  /* One 20 MiB message through a 64 KiB connection budget. */
  tri_server_opts *so = tri_server_opts_new();
  tri_server_opts_set_conn_recv_queue(so, 65536);
  tri_server_opts_set_max_recv_size(so, 32u << 20);
  r1_run(so, 20u << 20, 1);
  tri_server_opts_free(so);
}
END_TEST

/* ---- R2 ----------------------------------------------------------- */

static int h_hold(tri_stream *s, void *ud)
{
  tri_buf *m;
  (void)ud;
  while (tri_stream_recv(s, &m) == TRI_OK)
    tri_buf_free(m);
  return TRI_OK;
}

/* The end of an R2 case: everything freed, nothing left counted. */
static void r2_end(tri_channel *ch, tri_server *srv, tri_server_opts *so,
                   tri_call_opts *o)
{
  tri_channel_free(ch);
  tri_server_free(srv);
  tri_server_opts_free(so);
  tri_call_opts_free(o);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

START_TEST(test_r2_waiting_for_slot_detaches_at_end)
{
  tu_method ms[] = {{"/r.R/Hold", h_hold, NULL}};
  tri_server_opts *so = tri_server_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *hold;
  int port;

  tri_server_opts_set_max_concurrent_streams(so, 1);
  tri_server *srv = tu_server_start(ms, 1, so, &port);
  tri_channel *ch = tu_channel_new(port, NULL);
  ck_assert_int_eq(tri_stream_open(ch, "/r.R/Hold", NULL, &hold), TRI_OK);
  ck_assert_int_eq(tri_stream_send(hold, "x", 1), TRI_OK);
  tu_sleep_ms(200); /* the long call holds the only slot */
  long base = live_streams();
  tri_call_opts_set_timeout_ms(o, 100);
  for (int i = 0; i < 20; i++) {
    tri_buf *r = NULL;
    int64_t t0 = tu_now_us();
    int rv = tri_unary_call(ch, "/r.R/Hold", o, "y", 1, &r, NULL);
    ck_assert_msg(rv == TRI_DEADLINE_EXCEEDED, "call %d: %s", i,
                  tri_code_name(rv));
    TU_ASSERT_EXPIRED("call waiting for a slot", 100, t0, tu_now_us());
  }
  /* Every ended call is released at once, not when the slot frees. */
  for (int i = 0; i < 200 && live_streams() > base; i++)
    tu_sleep_ms(1);
  ck_assert_msg(live_streams() <= base,
                "%ld streams alive after 20 ended calls (%ld before)",
                live_streams(), base);
  /* and a waiting call still gets the slot when it frees */
  tri_stream *next;
  tri_buf *r = NULL;
  ck_assert_int_eq(tri_stream_open(ch, "/r.R/Hold", NULL, &next), TRI_OK);
  ck_assert_int_eq(tri_stream_close_send(next), TRI_OK);
  tu_sleep_ms(50);
  ck_assert_int_eq(tri_stream_close_send(hold), TRI_OK);
  ck_assert_int_eq(tri_stream_wait_status(hold, 2000, NULL), TRI_OK);
  ck_assert_int_eq(tri_stream_recv(next, &r), TRI_EOF);
  ck_assert_int_eq(tri_stream_wait_status(next, 2000, NULL), TRI_OK);
  tri_stream_free(next);
  tri_stream_free(hold);
  r2_end(ch, srv, so, o);
}
END_TEST

/* A slot freed by this client's own end of the holder (cancel, deadline,
 * free) goes to the waiting call at once (PROTOCOL.md 1.3).  The RST_STREAM
 * frees the slot only as the I/O thread writes it; before the fix nothing
 * ran the waiting list after that write, and the waiter (no deadline of
 * its own) stayed unsent until some unrelated frame arrived. */
enum { R2_CANCEL, R2_DEADLINE, R2_FREE };

static void r2_slot_freed_locally(int how)
{
  tu_method ms[] = {{"/r.R/Hold", h_hold, NULL}, {"/r.R/Echo", tu_echo_handler, NULL}};
  tri_server_opts *so = tri_server_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  tri_stream *hold, *w;
  tri_buf *r = NULL;
  int port;

  tri_server_opts_set_max_concurrent_streams(so, 1);
  tri_server *srv = tu_server_start(ms, 2, so, &port);
  tri_channel *ch = tu_channel_new(port, NULL);
  ck_assert_int_eq(tri_unary_call(ch, "/r.R/Echo", NULL, "r", 1, &r, NULL),
                   TRI_OK); /* connected, the server's limit known */
  tri_buf_free(r);
  r = NULL;
  if (how == R2_DEADLINE)
    tri_call_opts_set_timeout_ms(o, 300);
  ck_assert_int_eq(tri_stream_open(ch, "/r.R/Hold", o, &hold), TRI_OK);
  ck_assert_int_eq(tri_stream_send(hold, "x", 1), TRI_OK);
  ck_assert_int_eq(tri_stream_open(ch, "/r.R/Echo", NULL, &w), TRI_OK);
  ck_assert_int_eq(tri_stream_send_ex(w, "w", 1, TRI_SEND_LAST, -1), TRI_OK);
  tu_sleep_ms(100); /* the waiter is queued behind the holder */
  int64_t t0 = tu_now_us();
  if (how == R2_CANCEL) {
    tri_stream_cancel(hold);
  } else if (how == R2_FREE) {
    tri_stream_free(hold);
    hold = NULL;
  } else {
    ck_assert_int_eq(tri_stream_wait_status(hold, -1, NULL),
                     TRI_DEADLINE_EXCEEDED);
    t0 = tu_now_us();
  }
  int rv = tri_stream_recv_ex(w, &r, (int)tu_bound_ms(0, 2000));
  int64_t t1 = tu_now_us();
  ck_assert_msg(rv == TRI_OK, "waiter: %s (%s) after %lld us",
                tri_code_name(rv), tri_strerror(rv), (long long)(t1 - t0));
  TU_ASSERT_PROMPT("waiter sent once the holder's slot is free", t0, t1);
  ck_assert_int_eq(tri_buf_len(r), 1);
  tri_buf_free(r);
  ck_assert_int_eq(tri_stream_wait_status(w, 2000, NULL), TRI_OK);
  tri_stream_free(w);
  tri_stream_free(hold);
  r2_end(ch, srv, so, o);
}

START_TEST(test_r2_slot_freed_by_cancel)
{
  r2_slot_freed_locally(R2_CANCEL);
}
END_TEST

START_TEST(test_r2_slot_freed_by_deadline)
{
  r2_slot_freed_locally(R2_DEADLINE);
}
END_TEST

START_TEST(test_r2_slot_freed_by_free)
{
  r2_slot_freed_locally(R2_FREE);
}
END_TEST

/* ---- R5, R6: a raw client that gives no window, or says nothing ---- */

/* Flood: sends 64 KiB + 6 byte messages (they never end on a window
 * boundary) until the call ends; reports how. */
static atomic_int r5_rv;
static sem_t r5_blocked, r5_done;
static int h_flood(tri_stream *s, void *ud)
{
  static uint8_t big[65536 + 6];
  tri_buf *m;
  int rv = TRI_OK;
  (void)ud;
  if (tri_stream_recv(s, &m) == TRI_OK)
    tri_buf_free(m);
  for (int i = 0; i < 200 && rv == TRI_OK; i++) {
    if (i == 4)
      sem_post(&r5_blocked); /* past the 64 KiB window by now */
    rv = tri_stream_send(s, big, sizeof(big));
  }
  atomic_store(&r5_rv, rv);
  sem_post(&r5_done);
  return TRI_OK;
}

/* A raw client that opens one call and never sends WINDOW_UPDATE. */
static int r5_open(int port, const char *timeout, h2reader *r)
{
  h2buf b = {0}, hb = {0};
  int fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 3000), 0);
  hp_grpc_request(&hb, "/r.R/Flood", timeout);
  h2_frame(&b, 1 /* HEADERS */, 0x4 /* END_HEADERS */, 1, hb.p, hb.len);
  h2_grpc_msg(&hb, "x", 1);
  h2_frame(&b, 0 /* DATA */, 0x1 /* END_STREAM */, 1, hb.p + hb.len - 6, 6);
  memset(r, 0, sizeof(*r));
  h2reader_start(r, fd, 1);
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  h2buf_free(&b);
  h2buf_free(&hb);
  return fd;
}

static int r5_ended(h2reader *r, int status)
{
  return atomic_load(&r->grpc_status[status]) > 0;
}

/* Poll until |status| arrived or one prompt bound passed; the time. */
static int64_t r5_wait_status(h2reader *r, int status)
{
  int64_t bound = tu_now_us() + tu_bound_ms(0, TU_HEADROOM_MS) * 1000;
  while (!r5_ended(r, status) && tu_now_us() < bound)
    tu_sleep_ms(1);
  return tu_now_us();
}

static tri_server *r5_server_start(int *port)
{
  static tu_method ms[] = {{"/r.R/Flood", h_flood, NULL}};
  sem_init(&r5_blocked, 0, 0);
  sem_init(&r5_done, 0, 0);
  atomic_store(&r5_rv, -100);
  tri_server *srv = tu_server_start(ms, 1, NULL, port);
  ck_assert_ptr_nonnull(srv);
  return srv;
}

/* The server's deadline passes while the client's window is closed: the
 * client gets the trailers (grpc-status 4) at once (PROTOCOL.md 7.3), not
 * when it opens the window.  Before the fix nothing was sent, the stream
 * stayed open and counted as busy until the client sent WINDOW_UPDATE. */
START_TEST(test_r5_deadline_with_closed_window)
{
  h2reader r;
  int port;
  tri_server *srv = r5_server_start(&port);
  int64_t t0 = tu_now_us();
  int fd = r5_open(port, "300m", &r);
  ck_assert_int_eq(tu_sem_wait(&r5_done, TU_WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&r5_rv), TRI_DEADLINE_EXCEEDED);
  int64_t t1 = r5_wait_status(&r, 4);
  ck_assert_msg(r5_ended(&r, 4), "no grpc-status 4 after the server's "
                "deadline: %s", h2reader_summary(&r));
  TU_ASSERT_EXPIRED("the client told of the server's 300 ms deadline", 300,
                    t0, t1);
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* The same when only the connection window is closed, by another stream:
 * stream 1 floods without a deadline and takes the whole connection
 * window, then stream 3 (its own window open) reaches its deadline.  Its
 * trailers must not wait for the connection window either. */
START_TEST(test_r5_deadline_with_closed_connection_window)
{
  h2buf b = {0}, hb = {0};
  h2reader r;
  int port;
  tri_server *srv = r5_server_start(&port);
  int fd = r5_open(port, NULL, &r);
  ck_assert_int_eq(tu_sem_wait(&r5_blocked, TU_WAIT_MS), 0);
  tu_sleep_ms(100); /* stream 1 holds the 64 KiB connection window */
  hp_grpc_request(&hb, "/r.R/Flood", "300m");
  h2_frame(&b, 1 /* HEADERS */, 0x4 /* END_HEADERS */, 3, hb.p, hb.len);
  h2_grpc_msg(&hb, "x", 1);
  h2_frame(&b, 0 /* DATA */, 0x1 /* END_STREAM */, 3, hb.p + hb.len - 6, 6);
  int64_t t0 = tu_now_us();
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  ck_assert_int_eq(tu_sem_wait(&r5_done, TU_WAIT_MS), 0); /* stream 3's */
  ck_assert_int_eq(atomic_load(&r5_rv), TRI_DEADLINE_EXCEEDED);
  int64_t t1 = r5_wait_status(&r, 4);
  ck_assert_msg(r5_ended(&r, 4), "no grpc-status 4 for stream 3: %s",
                h2reader_summary(&r));
  TU_ASSERT_EXPIRED("stream 3 told of its 300 ms deadline", 300, t0, t1);
  h2reader_stop(&r);
  close(fd); /* stream 1's handler ends with the connection */
  ck_assert_int_eq(tu_sem_wait(&r5_done, TU_WAIT_MS), 0);
  tri_server_free(srv);
  h2buf_free(&b);
  h2buf_free(&hb);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

/* Shutdown ends a call whose response the client's window holds back:
 * trailers with grpc-status 14 go out before the connection closes.
 * Before the fix the client only saw GOAWAY and the close. */
START_TEST(test_r5_shutdown_with_closed_window)
{
  h2reader r;
  int port;
  tri_server *srv = r5_server_start(&port);
  int fd = r5_open(port, NULL, &r);
  ck_assert_int_eq(tu_sem_wait(&r5_blocked, TU_WAIT_MS), 0);
  tu_sleep_ms(100); /* blocked in send: the window is closed */
  tri_server_shutdown(srv, 200);
  ck_assert_int_eq(tu_sem_wait(&r5_done, TU_WAIT_MS), 0);
  ck_assert_int_eq(atomic_load(&r5_rv), TRI_UNAVAILABLE);
  ck_assert_int_eq(h2reader_wait_closed(&r, TU_WAIT_MS), 0);
  ck_assert_msg(r5_ended(&r, 14), "the call's end was not sent before the "
                "close: %s", h2reader_summary(&r));
  h2reader_stop(&r);
  close(fd);
  tri_server_free(srv);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static int r6_fds(void)
{
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

/* A connection the server closes from its tick (here: no preface within
 * the handshake timeout) lingers at most LINGER_MS (2 s, lib/conn.c), then
 * its descriptor is closed, with nothing else happening on the server.
 * Before the fix the lingering deadline was not in the loop's next wake-up
 * and the descriptor stayed open until some other event. */
START_TEST(test_r6_linger_after_handshake_timeout)
{
  tu_method ms[] = {{"/r.R/Flood", h_flood, NULL}};
  tri_server_opts *so = tri_server_opts_new();
  char b;
  int port;

  ck_assert_int_eq(tri_server_opts_set_handshake_timeout_ms(so, 200), TRI_OK);
  tri_server *srv = tu_server_start(ms, 1, so, &port);
  ck_assert_ptr_nonnull(srv);
  tu_sleep_ms(50);
  int base = r6_fds();
  int fd = h2_connect(port, 0); /* says nothing, never closes */
  ck_assert_int_ge(fd, 0);
  for (int i = 0; i < 65536 && h2_read_exact(fd, &b, 1, TU_WAIT_MS) == 0; i++)
    ; /* nothing (the server speaks after the preface), then its FIN */
  int64_t t0 = tu_now_us();
  int64_t bound = t0 + tu_bound_ms(2000, TU_HEADROOM_MS) * 1000;
  while (r6_fds() > base + 1 && tu_now_us() < bound)
    tu_sleep_ms(10);
  ck_assert_msg(r6_fds() == base + 1, "%d descriptors, %d before the "
                "connection (ours is one) %lld ms after it", r6_fds(), base,
                (long long)((tu_now_us() - t0) / 1000));
  close(fd);
  tri_server_free(srv);
  tri_server_opts_free(so);
}
END_TEST

/* ---- R3, R4: raw HTTP/2 clients ----------------------------------- */

#define R3_N 10
static sem_t r3_got;
static int h_count(tri_stream *s, void *ud)
{
  tri_buf *m;
  int n = 0;
  (void)ud;
  while (tri_stream_recv(s, &m) == TRI_OK) {
    tri_buf_free(m);
    if (++n == R3_N)
      sem_post(&r3_got);
  }
  return TRI_OK;
}

START_TEST(test_r3_shrinking_message_returns_budget)
{
  tu_method ms[] = {{"/r.R/Z", h_count, NULL}};
  h2buf b = {0}, hb = {0}, msg = {0};
  static const uint8_t gzh[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  static const uint8_t empty_blk[5] = {0x00, 0x00, 0x00, 0xff, 0xff};
  static const uint8_t last_blk[5] = {0x01, 0x00, 0x00, 0xff, 0xff};
  static const uint8_t trailer[8] = {0};
  tri__budgets t;
  int port, fd;

  sem_init(&r3_got, 0, 0);
  tri_server *srv = tu_server_start(ms, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 3000), 0);
  hp_grpc_request(&hb, "/r.R/Z", NULL);
  hp_lits(&hb, "grpc-encoding", "gzip");
  h2_frame(&b, 1 /* HEADERS */, 0x4 /* END_HEADERS */, 1, hb.p, hb.len);
  /* gzip of nothing, padded with empty stored blocks: 10 KB -> 0 bytes */
  h2buf_put8(&msg, 1);
  h2buf_put32(&msg, 0);
  h2buf_put(&msg, gzh, 10);
  for (int i = 0; i < 2000; i++)
    h2buf_put(&msg, empty_blk, 5);
  h2buf_put(&msg, last_blk, 5);
  h2buf_put(&msg, trailer, 8);
  uint32_t c = (uint32_t)(msg.len - 5);
  msg.p[1] = (uint8_t)(c >> 24);
  msg.p[2] = (uint8_t)(c >> 16);
  msg.p[3] = (uint8_t)(c >> 8);
  msg.p[4] = (uint8_t)c;
  for (int i = 0; i < R3_N; i++) { /* each message in two DATA frames */
    h2_frame(&b, 0, 0, 1, msg.p, msg.len - 1);
    h2_frame(&b, 0, 0, 1, msg.p + msg.len - 1, 1);
  }
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  ck_assert_int_eq(tu_sem_wait(&r3_got, 5000), 0);
  /* All read, the stream still open: nothing may stay counted. */
  for (int i = 0; i < 200; i++) {
    tri__budgets_get(&t);
    if (t.conn_rq_bytes == 0 && t.rq_bytes == 0)
      break;
    tu_sleep_ms(1);
  }
  ck_assert_msg(t.conn_rq_bytes == 0 && t.rq_bytes == 0,
                "after reading all: rq_bytes=%lld conn_rq_bytes=%lld",
                (long long)t.rq_bytes, (long long)t.conn_rq_bytes);
  h2_close_reset(fd);
  tri_server_free(srv);
  h2buf_free(&b);
  h2buf_free(&hb);
  h2buf_free(&msg);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static sem_t r4_done;
static int r4_seen = -100;
static int h_drain(tri_stream *s, void *ud)
{
  tri_buf *m;
  int rv;
  (void)ud;
  while ((rv = tri_stream_recv(s, &m)) == TRI_OK)
    tri_buf_free(m);
  r4_seen = rv;
  sem_post(&r4_done);
  return TRI_OK;
}

START_TEST(test_r4_trailers_inside_a_message)
{
  tu_method ms[] = {{"/r.R/T", h_drain, NULL}};
  h2buf b = {0}, hb = {0}, tb = {0};
  static const uint8_t part[8] = {0, 0, 0, 0, 10, 'a', 'b', 'c'};
  int port, fd;

  sem_init(&r4_done, 0, 0);
  tri_server *srv = tu_server_start(ms, 1, NULL, &port);
  ck_assert_ptr_nonnull(srv);
  fd = h2_connect(port, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(h2_handshake(fd, NULL, 0, 3000), 0);
  hp_grpc_request(&hb, "/r.R/T", NULL);
  h2_frame(&b, 1, 0x4, 1, hb.p, hb.len);
  h2_frame(&b, 0, 0, 1, part, sizeof part); /* 10 announced, 3 sent */
  hp_lits(&tb, "x-trailer", "1");
  h2_frame(&b, 1, 0x4 | 0x1, 1, tb.p, tb.len); /* trailers, END_STREAM */
  ck_assert_int_eq(h2_write_all(fd, b.p, b.len, 3000, NULL), 0);
  ck_assert_int_eq(tu_sem_wait(&r4_done, 5000), 0);
  ck_assert_msg(r4_seen == TRI_INTERNAL,
                "handler's recv after a cut message + trailers: %s",
                tri_code_name(r4_seen));
  h2_close_reset(fd);
  tri_server_free(srv);
  h2buf_free(&b);
  h2buf_free(&hb);
  h2buf_free(&tb);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("integ_review");
  TCase *tc = tcase_create("review");
  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_test(tc, test_r1_partial_messages_do_not_stall);
  tcase_add_test(tc, test_r1_message_larger_than_budget);
  tcase_add_test(tc, test_r2_waiting_for_slot_detaches_at_end);
  tcase_add_test(tc, test_r2_slot_freed_by_cancel);
  tcase_add_test(tc, test_r2_slot_freed_by_deadline);
  tcase_add_test(tc, test_r2_slot_freed_by_free);
  tcase_add_test(tc, test_r5_deadline_with_closed_window);
  tcase_add_test(tc, test_r5_deadline_with_closed_connection_window);
  tcase_add_test(tc, test_r5_shutdown_with_closed_window);
  tcase_add_test(tc, test_r6_linger_after_handshake_timeout);
  tcase_add_test(tc, test_r3_shrinking_message_returns_budget);
  tcase_add_test(tc, test_r4_trailers_inside_a_message);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
