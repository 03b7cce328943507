/*
 * integ_rpc: the four RPC kinds, metadata, status round trips, half-close,
 * recv_into, unknown methods and many threads on one channel, over
 * loopback against a real tri_server.  Public API only.
 *
 * Handlers cannot use ck_assert (they run on library worker threads), so
 * they report a broken expectation by finishing the call with
 * TRI_INTERNAL/TRI_DATA_LOSS and a message that says what was wrong; the
 * client asserts on the status and prints that message.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#include "budget.h" /* internal: tri__budgets_get() */
#include "core.h"   /* internal: TRI__SPARE_MAX */

#define M_UNARY "/test.Echo/Unary"
#define M_BIDI "/test.Echo/Bidi"
#define M_CSTREAM "/test.Echo/ClientStream"
#define M_SSTREAM "/test.Echo/ServerStream"
#define M_META "/test.Echo/Meta"
#define M_STATUS "/test.Echo/Status"
#define M_HALFCLOSE "/test.Echo/HalfClose"
#define M_TWO "/test.Echo/TwoMessages"
#define M_BIDI_INTO "/test.Echo/BidiInto"
#define M_SEND_LAST "/test.Echo/SendLast"
#define M_BIDI_INTO_GZ "/test.Echo/BidiIntoGzip"

static const char special_msg[] = "\t\r\n \xe2\x98\xba \xf0\x9f\x98\x88 %";

static const uint8_t bin_val[] = {0x00, 0xff, 0xab, 0x00, 0x7f, 0x80};

/* ---------------------------------------------------------------- */
/* Handlers                                                          */
/* ---------------------------------------------------------------- */

static int
fail_call(tri_stream *s, const char *what, int rv)
{
  char msg[256];
  snprintf(msg, sizeof(msg), "handler: %s: %s", what, tu_code(rv));
  tri_stream_finish(s, TRI_INTERNAL, msg);
  return TRI_INTERNAL;
}

/* What h_send_last's tri_stream_finish() after TRI_SEND_LAST returned. */
static atomic_int send_last_finish = -100;

/* Unary with TRI_SEND_LAST: the echo ends the call with status OK, so a
 * later tri_stream_finish() is refused (TRI_ESTATE) and its status never
 * reaches the client. */
static int
h_send_last(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  int rv;

  (void)ud;
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return fail_call(s, "recv request", rv);
  rv = tri_stream_send_ex(s, tri_buf_data(m), tri_buf_len(m), TRI_SEND_LAST,
                          -1);
  tri_buf_free(m);
  if (rv != TRI_OK)
    return fail_call(s, "send", rv);
  if (tri_stream_add_trailer(s, "x-late", "1", 1) != TRI_ESTATE)
    return TRI_DATA_LOSS;
  atomic_store(&send_last_finish,
               tri_stream_finish(s, TRI_INTERNAL, "finished after the last"));
  /* Sending after the end is refused too. */
  return tri_stream_send(s, "z", 1) == TRI_ESTATE ? TRI_OK : TRI_DATA_LOSS;
}

/* Unary: exactly one request, echoed; then end of input. */
static int
h_unary(tri_stream *s, void *ud)
{
  tri_buf *m = NULL, *extra = NULL;
  int rv;

  (void)ud;
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return fail_call(s, "recv request", rv);
  rv = tri_stream_recv(s, &extra);
  if (rv != TRI_EOF) {
    tri_buf_free(m);
    tri_buf_free(extra);
    return fail_call(s, "second recv (want TRI_EOF)", rv);
  }
  rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
  tri_buf_free(m);
  if (rv != TRI_OK)
    return fail_call(s, "send", rv);
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

/* Client streaming: count messages and bytes, reply "count=N total=B". */
static int
h_cstream(tri_stream *s, void *ud)
{
  char reply[64];
  long count = 0, total = 0;
  int i, rv = TRI_OK;

  (void)ud;
  for (i = 0; i < 100000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    count++;
    total += (long)tri_buf_len(m);
    tri_buf_free(m);
  }
  if (rv != TRI_EOF)
    return fail_call(s, "recv (want TRI_EOF at the end)", rv);
  snprintf(reply, sizeof(reply), "count=%ld total=%ld", count, total);
  rv = tri_stream_send(s, reply, strlen(reply));
  if (rv != TRI_OK)
    return fail_call(s, "send", rv);
  return TRI_OK; /* library finishes with the return value */
}

/* Server streaming: request is a decimal N; send "msg <i>" for i < N. */
static int
h_sstream(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  char num[32], out[32];
  size_t len;
  long n, i;
  int rv;

  (void)ud;
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return fail_call(s, "recv request", rv);
  len = tri_buf_len(m) < sizeof(num) - 1 ? tri_buf_len(m) : sizeof(num) - 1;
  memcpy(num, tri_buf_data(m), len);
  num[len] = '\0';
  tri_buf_free(m);
  n = strtol(num, NULL, 10);
  if (n < 0 || n > 100000)
    return fail_call(s, "bad count", TRI_EINVAL);
  for (i = 0; i < n; i++) {
    int ol = snprintf(out, sizeof(out), "msg %ld", i);
    rv = tri_stream_send(s, out, (size_t)ol);
    if (rv != TRI_OK)
      return fail_call(s, "send", rv);
  }
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

/* Echo every "x-" request header as a response header and a trailer. */
static int
h_meta(tri_stream *s, void *ud)
{
  const tri_metadata *md;
  size_t i, n;
  int rv;

  (void)ud;
  md = tri_stream_headers(s, 0);
  if (md == NULL)
    return fail_call(s, "tri_stream_headers returned NULL", TRI_ESTATE);
  n = tri_metadata_count(md);
  for (i = 0; i < n; i++) {
    const char *k;
    const void *v;
    size_t vl;
    if (tri_metadata_get(md, i, &k, &v, &vl) != TRI_OK)
      return fail_call(s, "tri_metadata_get", TRI_EINVAL);
    if (strncmp(k, "x-", 2) != 0)
      continue;
    rv = tri_stream_add_header(s, k, v, vl);
    if (rv != TRI_OK)
      return fail_call(s, "add_header", rv);
    rv = tri_stream_add_trailer(s, k, v, vl);
    if (rv != TRI_OK)
      return fail_call(s, "add_trailer", rv);
  }
  rv = tri_stream_send(s, "meta", 4);
  if (rv != TRI_OK)
    return fail_call(s, "send", rv);
  /* Headers are out now: adding one more must fail with TRI_ESTATE. */
  rv = tri_stream_add_header(s, "x-late", "1", 1);
  if (rv != TRI_ESTATE)
    return fail_call(s, "add_header after send (want TRI_ESTATE)", rv);
  {
    tri_buf *m = NULL;
    int i2;
    for (i2 = 0; i2 < 1000; i2++) {
      rv = tri_stream_recv(s, &m);
      if (rv != TRI_OK)
        break;
      tri_buf_free(m);
    }
    if (rv != TRI_EOF)
      return fail_call(s, "recv (want TRI_EOF)", rv);
  }
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

/* What h_status saw after its finish (the client cannot see it: the
 * status is already out), posted through |status_checked|. */
static atomic_int status_second_finish_rv;
static atomic_int status_send_after_rv;
static sem_t status_checked;

/* Request: one byte = status code to finish with, message special_msg. */
static int
h_status(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  int code, rv;

  (void)ud;
  rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return fail_call(s, "recv request", rv);
  code = tri_buf_len(m) == 1 ? tri_buf_data(m)[0] : -1;
  tri_buf_free(m);
  if (code < 0 || code > 16)
    return fail_call(s, "bad request", TRI_EINVAL);
  rv = tri_stream_finish(s, code, special_msg);
  if (rv != TRI_OK)
    return TRI_DATA_LOSS; /* client sees a different code and fails */
  /* A second finish does not count; send after finish is TRI_ESTATE. */
  atomic_store(&status_second_finish_rv, tri_stream_finish(s, TRI_OK, NULL));
  atomic_store(&status_send_after_rv, tri_stream_send(s, "x", 1));
  sem_post(&status_checked);
  return TRI_OK; /* ignored: the call is already finished */
}

/* Receive until EOF, then reply "after-eof:<count>" and finish OK. */
static int
h_halfclose(tri_stream *s, void *ud)
{
  char reply[64];
  int i, n = 0, rv = TRI_OK;

  (void)ud;
  for (i = 0; i < 1000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    n++;
    tri_buf_free(m);
  }
  if (rv != TRI_EOF)
    return fail_call(s, "recv (want TRI_EOF)", rv);
  /* Still end of input on a second call. */
  {
    tri_buf *m = NULL;
    rv = tri_stream_recv_ex(s, &m, 1000);
    if (rv != TRI_EOF) {
      tri_buf_free(m);
      return fail_call(s, "recv after EOF (want TRI_EOF)", rv);
    }
  }
  snprintf(reply, sizeof(reply), "after-eof:%d", n);
  rv = tri_stream_send(s, reply, strlen(reply));
  if (rv != TRI_OK)
    return fail_call(s, "send after client half-close", rv);
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

/* Send a 100-byte then a 10-byte message, then finish OK. */
static int
h_two(tri_stream *s, void *ud)
{
  uint8_t big[100], small[10];
  int rv;

  (void)ud;
  tu_fill(big, sizeof(big), 100);
  tu_fill(small, sizeof(small), 10);
  rv = tri_stream_send(s, big, sizeof(big));
  if (rv == TRI_OK)
    rv = tri_stream_send(s, small, sizeof(small));
  if (rv != TRI_OK)
    return fail_call(s, "send", rv);
  return TRI_OK;
}

/* ---------------------------------------------------------------- */
/* Echo through tri_stream_recv_into (the library copies out and keeps
 * the block for the next message) and tri_stream_send. */
static int
h_bidi_into(tri_stream *s, void *ud)
{
  enum { CAP = 300000 };
  uint8_t *buf = malloc(CAP);
  int rv = TRI_RESOURCE_EXHAUSTED;
  if (ud != NULL && (rv = tri_stream_set_compression(s, ud)) != TRI_OK) {
    free(buf);
    return rv;
  }
  for (int i = 0; buf != NULL && i < 100000; i++) {
    size_t len = 0;
    rv = tri_stream_recv_into(s, buf, CAP, &len, 10000);
    if (rv == TRI_EOF) {
      rv = TRI_OK;
      break;
    }
    if (rv == TRI_OK)
      rv = tri_stream_send(s, buf, len);
    if (rv != TRI_OK)
      break;
  }
  free(buf);
  return rv >= 0 ? rv : TRI_INTERNAL;
}

/* Fixture: one server and one channel per test (tests run forked).  */
/* ---------------------------------------------------------------- */

static tri_server *srv;
static tri_channel *ch;
static int port;

static void
setup(void)
{
  tu_method m[] = {
      {M_UNARY, h_unary, NULL},         {M_SEND_LAST, h_send_last, NULL},         {M_BIDI, tu_echo_handler, NULL},
      {M_CSTREAM, h_cstream, NULL},     {M_SSTREAM, h_sstream, NULL},
      {M_META, h_meta, NULL},           {M_STATUS, h_status, NULL},
      {M_HALFCLOSE, h_halfclose, NULL}, {M_TWO, h_two, NULL},
      {M_BIDI_INTO, h_bidi_into, NULL},
      {M_BIDI_INTO_GZ, h_bidi_into, (void *)"gzip"},
  };
  sem_init(&status_checked, 0, 0);
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

static tri_stream *
open_stream(const char *method, const tri_call_opts *o)
{
  tri_stream *s = NULL;
  int rv = tri_stream_open(ch, method, o, &s);
  ck_assert_msg(rv == TRI_OK, "tri_stream_open(%s): %s", method, tu_code(rv));
  ck_assert_ptr_nonnull(s);
  return s;
}

/* After the last message: recv gives TRI_EOF and the status is OK. */
static void
expect_eof_ok(tri_stream *s)
{
  const char *msg = NULL;
  tri_buf *m = NULL;
  int rv, st;

  rv = tri_stream_recv_ex(s, &m, 10000);
  st = tri_stream_wait_status(s, 10000, &msg);
  ck_assert_msg(rv == TRI_EOF, "recv at end: %s (status %s, message \"%s\")",
                tu_code(rv), tu_code(st), msg ? msg : "(null)");
  ck_assert_ptr_null(m);
  ck_assert_msg(st == TRI_OK, "final status %s, message \"%s\"", tu_code(st),
                msg ? msg : "(null)");
  ck_assert_ptr_nonnull(msg);
  ck_assert_str_eq(msg, "");
}

/* ---------------------------------------------------------------- */

START_TEST(test_unary)
{
  const char req[] = "hello unary";
  tri_buf *resp = NULL;
  tri_stream *st = NULL;
  const char *msg = NULL;
  int rv;

  rv = tri_unary_call(ch, M_UNARY, NULL, req, sizeof(req) - 1, &resp, &st);
  if (rv != TRI_OK && st != NULL)
    tri_stream_wait_status(st, 0, &msg);
  ck_assert_msg(rv == TRI_OK, "unary: %s, message \"%s\"", tu_code(rv),
                msg ? msg : "");
  ck_assert_ptr_nonnull(resp);
  ck_assert_uint_eq(tri_buf_len(resp), sizeof(req) - 1);
  ck_assert_mem_eq(tri_buf_data(resp), req, sizeof(req) - 1);
  ck_assert_uint_eq(tri_buf_flags(resp) & TRI_BUF_COMPRESSED, 0);
  tri_buf_free(resp);
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(tri_stream_wait_status(st, 1000, &msg), TRI_OK);
  ck_assert_str_eq(tri_stream_method(st), M_UNARY);
  tri_stream_free(st);

  /* Zero-length request and response (doc/PROTOCOL.md 3.3); no stream_out. */
  resp = NULL;
  rv = tri_unary_call(ch, M_UNARY, NULL, NULL, 0, &resp, NULL);
  ck_assert_msg(rv == TRI_OK, "empty unary: %s", tu_code(rv));
  ck_assert_ptr_nonnull(resp);
  ck_assert_uint_eq(tri_buf_len(resp), 0);
  ck_assert_ptr_nonnull(tri_buf_data(resp));
  tri_buf_free(resp);
}
END_TEST

/* A server's TRI_SEND_LAST finishes the call with OK together with the
 * message (one write): the client gets the echo and OK, the handler's
 * later finish and send are refused.  Before, the flag was ignored on
 * servers and the client got the handler's INTERNAL. */
START_TEST(test_server_send_last)
{
  tri_buf *resp = NULL;
  tri_stream *st = NULL;
  const char *msg = NULL;
  int rv;

  atomic_store(&send_last_finish, -100);
  rv = tri_unary_call(ch, M_SEND_LAST, NULL, "last", 4, &resp, &st);
  if (rv != TRI_OK && st != NULL)
    tri_stream_wait_status(st, 0, &msg);
  ck_assert_msg(rv == TRI_OK, "unary: %s, message \"%s\"", tu_code(rv),
                msg ? msg : "");
  ck_assert_uint_eq(tri_buf_len(resp), 4);
  ck_assert_mem_eq(tri_buf_data(resp), "last", 4);
  tri_buf_free(resp);
  ck_assert_int_eq(tri_stream_wait_status(st, 1000, &msg), TRI_OK);
  ck_assert_str_eq(msg, "");
  tri_stream_free(st);
  for (int i = 0; i < 200 && atomic_load(&send_last_finish) == -100; i++)
    tu_sleep_ms(10);
  ck_assert_int_eq(atomic_load(&send_last_finish), TRI_ESTATE);
}
END_TEST

START_TEST(test_client_streaming)
{
  enum { N = 100 };
  tri_stream *s = open_stream(M_CSTREAM, NULL);
  uint8_t buf[N + 1];
  char want[64];
  long total = 0;
  tri_buf *m = NULL;
  int i, rv;

  for (i = 0; i < N; i++) {
    tu_fill(buf, (size_t)i + 1, (uint32_t)i);
    rv = tri_stream_send(s, buf, (size_t)i + 1);
    ck_assert_msg(rv == TRI_OK, "send #%d: %s", i, tu_code(rv));
    total += i + 1;
  }
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK); /* idempotent */
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv reply: %s", tu_code(rv));
  snprintf(want, sizeof(want), "count=%d total=%ld", N, total);
  ck_assert_uint_eq(tri_buf_len(m), strlen(want));
  ck_assert_mem_eq(tri_buf_data(m), want, strlen(want));
  tri_buf_free(m);
  expect_eof_ok(s);
  tri_stream_free(s);
}
END_TEST

START_TEST(test_server_streaming)
{
  enum { N = 500 };
  tri_stream *s = open_stream(M_SSTREAM, NULL);
  char want[32];
  int i, rv;

  rv = tri_stream_send_ex(s, "500", 3, TRI_SEND_LAST, 5000);
  ck_assert_msg(rv == TRI_OK, "send request: %s", tu_code(rv));
  for (i = 0; i < N; i++) {
    tri_buf *m = NULL;
    int wl = snprintf(want, sizeof(want), "msg %d", i);
    rv = tri_stream_recv_ex(s, &m, 10000);
    ck_assert_msg(rv == TRI_OK, "recv #%d: %s", i, tu_code(rv));
    ck_assert_msg(tri_buf_len(m) == (size_t)wl &&
                      memcmp(tri_buf_data(m), want, (size_t)wl) == 0,
                  "message #%d out of order or corrupted: \"%.*s\"", i,
                  (int)tri_buf_len(m), (const char *)tri_buf_data(m));
    tri_buf_free(m);
  }
  expect_eof_ok(s);
  /* EOF is sticky. */
  {
    tri_buf *m = NULL;
    ck_assert_int_eq(tri_stream_recv_ex(s, &m, 1000), TRI_EOF);
  }
  tri_stream_free(s);
}
END_TEST

START_TEST(test_bidi_echo)
{
  static const size_t sizes[] = {0, 1, 5, 100, 4095, 16384, 16385, 65535,
                                 65536, 200000, 1000000, 3};
  tri_stream *s = open_stream(M_BIDI, NULL);
  uint8_t *buf = malloc(1000000);
  size_t k;
  int rep, rv;

  ck_assert_ptr_nonnull(buf);
  for (rep = 0; rep < 3; rep++) {
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      uint32_t seed = (uint32_t)(rep * 100 + (int)k);
      tri_buf *m = NULL;
      long bad;
      tu_fill(buf, sizes[k], seed);
      rv = tri_stream_send(s, buf, sizes[k]);
      ck_assert_msg(rv == TRI_OK, "send %zu bytes: %s", sizes[k], tu_code(rv));
      rv = tri_stream_recv_ex(s, &m, 10000);
      ck_assert_msg(rv == TRI_OK, "recv echo of %zu bytes: %s", sizes[k],
                    tu_code(rv));
      ck_assert_uint_eq(tri_buf_len(m), sizes[k]);
      bad = tu_check_fill(tri_buf_data(m), tri_buf_len(m), seed);
      ck_assert_msg(bad < 0, "echo of %zu bytes differs at offset %ld",
                    sizes[k], bad);
      tri_buf_free(m);
    }
  }
  /* Pipelined: several in flight before reading. */
  for (k = 0; k < 20; k++) {
    tu_fill(buf, 1000 + k, (uint32_t)(1000 + k));
    rv = tri_stream_send(s, buf, 1000 + k);
    ck_assert_msg(rv == TRI_OK, "pipelined send %zu: %s", k, tu_code(rv));
  }
  for (k = 0; k < 20; k++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv_ex(s, &m, 10000);
    ck_assert_msg(rv == TRI_OK, "pipelined recv %zu: %s", k, tu_code(rv));
    ck_assert_uint_eq(tri_buf_len(m), 1000 + k);
    ck_assert_int_lt(tu_check_fill(tri_buf_data(m), tri_buf_len(m),
                                   (uint32_t)(1000 + k)),
                     0);
    tri_buf_free(m);
  }
  free(buf);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  expect_eof_ok(s);
  tri_stream_free(s);
}
END_TEST

/* tri_*_opts_set_spin_us: a recv that spins before parking (doc/DESIGN.md,
 * "Spinning before a wait") must not lose a wake-up that lands while it
 * has let go of the stream's lock: during its spin, or on its way from
 * the spin (or from a spin refused: too many threads spinning, back-off)
 * to the condition variable.  Eight threads ping-pong on their own
 * streams of one channel, so the I/O thread delivers to some while
 * others spin or park; budgets around the loopback round trip make the
 * answers land just before, during and just after the spins end.  (A
 * first version parked after a spin without looking at the queue again:
 * recv then waited for a message already queued, and a thread here
 * timed out.)  Then each thread makes short calls, one stream each, so
 * that recv spins on new streams whose handlers start on workers woken
 * from the pool; the last rounds do only those, with 2 handlers at a
 * time per connection, so that streams also queue behind that share. */
enum { SPIN_THREADS = 8, SPIN_ROUNDS = 100, SPIN_CALLS = 30 };

struct spin_pinger {
  tri_channel *ch;
  int budget;
  int rounds;      /* of the ping-pong, before the short calls */
  int rc;          /* TRI_OK, or the failing call's status */
  char what[96];
};

static void *
spin_ping_main(void *arg)
{
  struct spin_pinger *p = arg;
  tri_stream *s = NULL;
  uint8_t msg[64];
  int wait_ms = (int)tu_bound_ms(0, TU_WAIT_MS);
  int64_t t0;
  int i, retries = 0, rv = TRI_OK;

  memset(msg, 0, sizeof msg);
  if (p->rounds > 0) {
    snprintf(p->what, sizeof p->what, "open");
    rv = tri_stream_open(p->ch, M_BIDI, NULL, &s);
  }
  for (i = 0; rv == TRI_OK && i < p->rounds; i++) {
    tri_buf *r = NULL;
    tu_fill(msg, sizeof msg, (uint32_t)i);
    snprintf(p->what, sizeof p->what, "send %d", i);
    rv = tri_stream_send(s, msg, sizeof msg);
    if (rv != TRI_OK)
      break;
    snprintf(p->what, sizeof p->what, "echo %d", i);
    t0 = tu_now_ms();
    rv = tri_stream_recv_ex(s, &r, wait_ms);
    /* a recv whose wake-up was lost still finds the message when its
     * own timeout ends it: that is a failure too */
    if (rv == TRI_OK && tu_now_ms() - t0 >= wait_ms) {
      snprintf(p->what, sizeof p->what, "echo %d: returned only at its "
               "%d ms timeout", i, wait_ms);
      rv = TRI_ETIMEDOUT;
    }
    if (rv == TRI_OK &&
        (tri_buf_len(r) != sizeof msg ||
         tu_check_fill(tri_buf_data(r), tri_buf_len(r), (uint32_t)i) >= 0))
      rv = TRI_INTERNAL; /* wrong bytes */
    tri_buf_free(r);
  }
  if (rv == TRI_OK && s != NULL) {
    snprintf(p->what, sizeof p->what, "close");
    rv = tri_stream_close_send(s);
  }
  if (rv == TRI_OK && s != NULL) {
    tri_buf *r = NULL;
    snprintf(p->what, sizeof p->what, "end of stream");
    rv = tri_stream_recv_ex(s, &r, TU_WAIT_MS);
    rv = rv == TRI_EOF ? tri_stream_wait_status(s, TU_WAIT_MS, NULL)
                       : TRI_INTERNAL;
    tri_buf_free(r);
  }
  tri_stream_free(s);
  /* Then one stream per call: each needs a worker woken from the pool,
   * and its recv spins for the echo. */
  for (i = 0; rv == TRI_OK && i < SPIN_CALLS; i++) {
    const char *stage = "open";
    tri_buf *r = NULL;
    s = NULL;
    t0 = tu_now_ms();
    rv = tri_stream_open(p->ch, M_BIDI, NULL, &s);
    if (rv == TRI_OK && (stage = "send", rv = tri_stream_send(s, msg, 8)) ==
                            TRI_OK &&
        (stage = "close", rv = tri_stream_close_send(s)) == TRI_OK &&
        (stage = "echo", rv = tri_stream_recv_ex(s, &r, wait_ms)) == TRI_OK) {
      tri_buf_free(r);
      r = NULL;
      stage = "end of stream";
      rv = tri_stream_recv_ex(s, &r, wait_ms);
      rv = rv == TRI_EOF ? tri_stream_wait_status(s, wait_ms, NULL)
                         : TRI_INTERNAL;
    }
    tri_buf_free(r);
    if (rv == TRI_RESOURCE_EXHAUSTED && retries < 10 * SPIN_CALLS) {
      /* The connection's share of queued streams is full (this call
       * started before the server counted the last one as done): by
       * design, and retried.  A stream that waited out its queue
       * timeout ("no free handler thread") is not. */
      const char *why = NULL;
      (void)tri_stream_wait_status(s, 0, &why);
      if (why != NULL && strstr(why, "share of handlers") != NULL) {
        tri_stream_free(s);
        retries++;
        i--;
        rv = TRI_OK;
        continue;
      }
    }
    tri_stream_free(s);
    snprintf(p->what, sizeof p->what, "call %d, %s", i, stage);
    if (rv == TRI_OK && tu_now_ms() - t0 >= wait_ms) {
      snprintf(p->what, sizeof p->what, "call %d took %d ms or more", i,
               wait_ms);
      rv = TRI_ETIMEDOUT;
    }
  }
  p->rc = rv;
  return NULL;
}

START_TEST(test_spin_budgets_no_lost_wakeup)
{
  /* 0 and 10000 (the bounds), every 8 us from 8 to 200, then 40, 80 and
   * 200 with 2 handlers per connection (no ping-pong) */
  int budgets[2 + 25 + 3];
  const size_t nb = 2 + 25;
  tri_server_opts *so = tri_server_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  tu_method m[] = {{M_BIDI, tu_echo_handler, NULL}};
  size_t b;
  int i;

  budgets[0] = 0;
  budgets[1] = 10000;
  for (b = 2; b < nb; b++)
    budgets[b] = 8 * (int)(b - 1);
  budgets[nb] = 40;
  budgets[nb + 1] = 80;
  budgets[nb + 2] = 200;
  ck_assert_ptr_nonnull(so);
  ck_assert_ptr_nonnull(co);
  ck_assert_int_eq(tri_channel_opts_set_spin_us(NULL, 10), TRI_EINVAL);
  ck_assert_int_eq(tri_channel_opts_set_spin_us(co, -1), TRI_EINVAL);
  ck_assert_int_eq(tri_channel_opts_set_spin_us(co, 10001), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_spin_us(NULL, 10), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_spin_us(so, -1), TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_spin_us(so, 10001), TRI_EINVAL);
  for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
    struct spin_pinger p[SPIN_THREADS];
    pthread_t t[SPIN_THREADS];
    tri_server *sv;
    tri_channel *chan;
    int sport;

    ck_assert_int_eq(tri_server_opts_set_spin_us(so, budgets[b]), TRI_OK);
    ck_assert_int_eq(tri_channel_opts_set_spin_us(co, budgets[b]), TRI_OK);
    /* 2 run, 2 queue, the others are turned away and retry (a
     * connection may queue as many streams as it may run) */
    ck_assert_int_eq(tri_server_opts_set_max_handlers_per_conn(
                         so, b < nb ? 0 : 2),
                     TRI_OK);
    sv = tu_server_start(m, 1, so, &sport);
    ck_assert_ptr_nonnull(sv);
    chan = tu_channel_new(sport, co);
    ck_assert_ptr_nonnull(chan);
    for (i = 0; i < SPIN_THREADS; i++) {
      memset(&p[i], 0, sizeof p[i]);
      p[i].ch = chan;
      p[i].budget = budgets[b];
      p[i].rounds = b < nb ? SPIN_ROUNDS : 0;
      ck_assert_int_eq(tu_thread_start(&t[i], spin_ping_main, &p[i]), 0);
    }
    for (i = 0; i < SPIN_THREADS; i++) {
      /* each recv has TU_WAIT_MS: a lost wake-up fails it, not this */
      ck_assert_int_eq(tu_thread_join(t[i], (int)tu_bound_ms(0, 4 *
                                                             TU_WAIT_MS),
                                      NULL), 0);
      ck_assert_msg(p[i].rc == TRI_OK, "budget %d us%s, thread %d, %s: %s",
                    p[i].budget, b < nb ? "" : ", 2 handlers per connection",
                    i, p[i].what, tu_code(p[i].rc));
    }
    tri_channel_free(chan);
    tri_server_free(sv);
  }
  tri_channel_opts_free(co);
  tri_server_opts_free(so);
}
END_TEST


/* Bulk messages whose sizes go up and down, sent by one thread while
 * another receives, on both sides: the receive blocks are reused from
 * message to message (tri__stream_recycle) and the sender refills its
 * ring while the I/O thread writes from it with the lock released
 * (s->sb_writing).  Every byte of every message must still be right and
 * in order. */
static const size_t bulk_sizes[] = {4096,  65536, 200000, 70000,  262144,
                                    5000,  65536, 131072, 4095,   100,
                                    65536, 65535, 32768,  250000, 8192};
enum { BULK_N = 240 };

struct bulk_sender {
  tri_stream *s;
  int n;
  int rc;
};

static void *
bulk_send_main(void *arg)
{
  struct bulk_sender *b = arg;
  uint8_t *buf = malloc(300000);
  b->rc = buf ? TRI_OK : TRI_ENOMEM;
  for (int i = 0; i < b->n && b->rc == TRI_OK; i++) {
    size_t n = bulk_sizes[i % (sizeof(bulk_sizes) / sizeof(bulk_sizes[0]))];
    tu_fill(buf, n, (uint32_t)(7000 + i));
    b->rc = tri_stream_send_ex(b->s, buf, n, 0, 20000);
  }
  if (b->rc == TRI_OK)
    b->rc = tri_stream_close_send(b->s);
  free(buf);
  return NULL;
}

static void
bulk_reuse(const char *method, const tri_call_opts *o, int n)
{
  tri_stream *s = open_stream(method, o);
  uint8_t *buf = malloc(300000);
  struct bulk_sender b = {s, n, -1};
  pthread_t th;
  int i, rv;

  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(pthread_create(&th, NULL, bulk_send_main, &b), 0);
  for (i = 0; i < n; i++) {
    size_t want = bulk_sizes[i % (sizeof(bulk_sizes) / sizeof(bulk_sizes[0]))];
    size_t len = 0;
    long bad;
    rv = tri_stream_recv_into(s, buf, 300000, &len, 20000);
    ck_assert_msg(rv == TRI_OK, "recv #%d: %s", i, tu_code(rv));
    ck_assert_msg(len == want, "message #%d: %zu bytes, want %zu", i, len,
                  want);
    bad = tu_check_fill(buf, len, (uint32_t)(7000 + i));
    ck_assert_msg(bad < 0, "message #%d (%zu bytes) differs at offset %ld", i,
                  len, bad);
  }
  pthread_join(th, NULL);
  ck_assert_msg(b.rc == TRI_OK, "sender: %s", tu_code(b.rc));
  expect_eof_ok(s);
  tri_stream_free(s);
  free(buf);
}

START_TEST(test_bulk_reuse_concurrent)
{
  bulk_reuse(M_BIDI_INTO, NULL, BULK_N);
}
END_TEST

/* The same with gzip both ways: decompressed messages are kept for reuse
 * too, so their blocks must say exactly how much they hold. */
START_TEST(test_bulk_reuse_gzip)
{
  tri_call_opts *o = tri_call_opts_new();
  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tri_call_opts_set_compression(o, "gzip"), TRI_OK);
  bulk_reuse(M_BIDI_INTO_GZ, o, 45);
  tri_call_opts_free(o);
}
END_TEST

/* Blocks kept for reuse are bounded in the whole process, not only per
 * stream: 32 bidi streams each get 4 messages of 250,000 bytes echoed and
 * read with tri_stream_recv_into while all stay open.  Every stream used
 * to keep up to 4 blocks (1 MB) on each side: the heap grew by 75 MiB.
 * Now at most TRI__SPARE_MAX (8 MiB) is kept in all, counted in the
 * spare_bytes budget (back to zero in teardown), and it grows by 35 MiB:
 * those 8, the 64 send rings (256 KiB each, 16 MiB) and the handlers'
 * 300 KB buffers (9 MiB).  The bound, 52 MiB, leaves 17 MiB of headroom
 * above that and fails the old code by 23 MiB. */
START_TEST(test_spare_blocks_bounded)
{
  enum { NS = 32, NM = 4, SZ = 250000 };
  tri_stream *st[NS];
  uint8_t *buf = malloc(300000);
  struct mallinfo2 m0, m1;
  tri__budgets b;
  size_t heap0, heap1;
  int i, k, rv;

  ck_assert_ptr_nonnull(buf);
  m0 = mallinfo2();
  heap0 = m0.uordblks + m0.hblkhd;
  for (i = 0; i < NS; i++) {
    st[i] = open_stream(M_BIDI_INTO, NULL);
    for (k = 0; k < NM; k++) {
      tu_fill(buf, SZ, (uint32_t)(i * NM + k));
      rv = tri_stream_send_ex(st[i], buf, SZ, 0, 20000);
      ck_assert_msg(rv == TRI_OK, "send %d/%d: %s", i, k, tu_code(rv));
    }
  }
  for (i = 0; i < NS; i++)
    for (k = 0; k < NM; k++) {
      size_t len = 0;
      rv = tri_stream_recv_into(st[i], buf, 300000, &len, 20000);
      ck_assert_msg(rv == TRI_OK, "recv %d/%d: %s", i, k, tu_code(rv));
      ck_assert_uint_eq(len, SZ);
      ck_assert_int_lt(tu_check_fill(buf, len, (uint32_t)(i * NM + k)), 0);
    }
  m1 = mallinfo2();
  heap1 = m1.uordblks + m1.hblkhd;
  tri__budgets_get(&b);
  ck_assert_msg(b.spare_bytes >= 0 && b.spare_bytes <= TRI__SPARE_MAX,
                "%lld bytes kept for reuse, bound %lld",
                (long long)b.spare_bytes, (long long)TRI__SPARE_MAX);
  /* mallinfo2() sees glibc's heap only: under a sanitizer or valgrind,
   * whose allocators replace it, only the budget bound is checked. */
  (void)heap0;
  (void)heap1;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  {
    const char *pre = getenv("LD_PRELOAD");
    if (pre == NULL || strstr(pre, "vgpreload") == NULL)
      ck_assert_msg(heap1 < heap0 || heap1 - heap0 < (size_t)52 << 20,
                    "the heap grew by %zu KiB with %d streams open",
                    (heap1 - heap0) / 1024, NS);
  }
#endif
  for (i = 0; i < NS; i++) {
    ck_assert_int_eq(tri_stream_close_send(st[i]), TRI_OK);
    expect_eof_ok(st[i]);
    tri_stream_free(st[i]);
  }
  free(buf);
}
END_TEST

static void
check_md(const tri_metadata *md, const char *where)
{
  const void *v;
  size_t vl = 0, i, n, dups = 0;
  const char *dup_vals[2] = {NULL, NULL};

  ck_assert_msg(md != NULL, "%s: NULL metadata", where);
  v = tri_metadata_find(md, "x-ascii", &vl);
  ck_assert_msg(v != NULL, "%s: x-ascii missing", where);
  ck_assert_uint_eq(vl, strlen("hello, world ~!"));
  ck_assert_mem_eq(v, "hello, world ~!", vl);
  ck_assert_int_eq(((const char *)v)[vl], '\0');

  v = tri_metadata_find(md, "x-data-bin", &vl);
  ck_assert_msg(v != NULL, "%s: x-data-bin missing", where);
  ck_assert_msg(vl == sizeof(bin_val), "%s: x-data-bin length %zu, want %zu",
                where, vl, sizeof(bin_val));
  ck_assert_mem_eq(v, bin_val, sizeof(bin_val));

  v = tri_metadata_find(md, "x-empty-bin", &vl);
  ck_assert_msg(v != NULL, "%s: x-empty-bin missing", where);
  ck_assert_uint_eq(vl, 0);

  /* Duplicate keys kept in order (doc/PROTOCOL.md 2.13). */
  n = tri_metadata_count(md);
  for (i = 0; i < n; i++) {
    const char *k;
    size_t l;
    ck_assert_int_eq(tri_metadata_get(md, i, &k, &v, &l), TRI_OK);
    if (strcmp(k, "x-dup") == 0 && dups < 2)
      dup_vals[dups++] = v;
    ck_assert_msg(strncmp(k, "grpc-", 5) != 0,
                  "%s: reserved key %s exposed", where, k);
  }
  ck_assert_msg(dups == 2, "%s: %zu x-dup entries, want 2", where, dups);
  ck_assert_str_eq(dup_vals[0], "first");
  ck_assert_str_eq(dup_vals[1], "second");
  {
    const char *k;
    size_t l;
    ck_assert_int_eq(tri_metadata_get(md, n, &k, &v, &l), TRI_EINVAL);
  }
}

START_TEST(test_metadata_roundtrip)
{
  tri_call_opts *o = tri_call_opts_new();
  const tri_metadata *hd;
  tri_stream *s;
  tri_buf *m = NULL;
  int rv;

  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-ascii", "hello, world ~!",
                                              strlen("hello, world ~!")),
                   TRI_OK);
  ck_assert_int_eq(
      tri_call_opts_add_metadata(o, "x-data-bin", bin_val, sizeof(bin_val)),
      TRI_OK);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-empty-bin", "", 0), TRI_OK);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-dup", "first", 5), TRI_OK);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-dup", "second", 6),
                   TRI_OK);
  /* Rejected entries leave the options unchanged. */
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "grpc-foo", "x", 1),
                   TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "X-Upper", "x", 1),
                   TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_add_metadata(o, "x-ctl", "a\nb", 3),
                   TRI_EINVAL);

  s = open_stream(M_META, o);
  tri_call_opts_free(o); /* copied at open */

  hd = tri_stream_headers(s, 10000);
  ck_assert_msg(hd != NULL, "no response headers within 10 s");
  check_md(hd, "response headers");

  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), 4);
  tri_buf_free(m);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  expect_eof_ok(s);
  check_md(tri_stream_trailers(s), "trailers");
  ck_assert_msg(tri_metadata_find(tri_stream_trailers(s), "x-late", NULL) ==
                    NULL &&
                    tri_metadata_find(hd, "x-late", NULL) == NULL,
                "header added after send went out anyway");
  /* Headers list still the same object and still valid after the end. */
  ck_assert_ptr_eq(tri_stream_headers(s, 0), hd);
  tri_stream_free(s);
}
END_TEST

START_TEST(test_status_special_message)
{
  int code;

  for (code = 0; code <= 16; code++) {
    uint8_t req = (uint8_t)code;
    tri_stream *st = NULL;
    tri_buf *resp = NULL;
    const char *msg = NULL;
    int rv, ws;

    rv = tri_unary_call(ch, M_STATUS, NULL, &req, 1, &resp, &st);
    ck_assert_ptr_nonnull(st);
    ws = tri_stream_wait_status(st, 5000, &msg);
    if (code == 0) {
      /* OK with no message is a cardinality error (doc/PROTOCOL.md 5.4). */
      ck_assert_msg(rv == TRI_UNIMPLEMENTED, "code 0, no response: %s",
                    tu_code(rv));
    } else {
      ck_assert_msg(rv == code, "unary returned %s, want %s", tu_code(rv),
                    tu_code(code));
      ck_assert_msg(ws == code, "wait_status %s, want %s", tu_code(ws),
                    tu_code(code));
      ck_assert_ptr_nonnull(msg);
      ck_assert_msg(strcmp(msg, special_msg) == 0,
                    "code %d: status message \"%s\" != \"%s\"", code, msg,
                    special_msg);
      ck_assert_ptr_null(resp);
    }
    tri_buf_free(resp);
    tri_stream_free(st);
    ck_assert_msg(tu_sem_wait(&status_checked, TU_WAIT_MS) == 0,
                  "status handler did not finish its checks");
    ck_assert_msg(atomic_load(&status_second_finish_rv) == TRI_ESTATE,
                  "second tri_stream_finish returned %s, want TRI_ESTATE",
                  tu_code(atomic_load(&status_second_finish_rv)));
    ck_assert_msg(atomic_load(&status_send_after_rv) == TRI_ESTATE,
                  "send after finish returned %s, want TRI_ESTATE",
                  tu_code(atomic_load(&status_send_after_rv)));
  }

  /* The same through a streaming call: recv returns the server's code. */
  {
    tri_stream *s = open_stream(M_STATUS, NULL);
    uint8_t req = TRI_FAILED_PRECONDITION;
    const char *msg = NULL;
    tri_buf *m = NULL;
    int rv;

    ck_assert_int_eq(tri_stream_send(s, &req, 1), TRI_OK);
    rv = tri_stream_recv_ex(s, &m, 10000);
    ck_assert_msg(rv == TRI_FAILED_PRECONDITION, "recv: %s", tu_code(rv));
    ck_assert_int_eq(tri_stream_wait_status(s, 1000, &msg),
                     TRI_FAILED_PRECONDITION);
    ck_assert_str_eq(msg, special_msg);
    /* Send after the end: the final status (not TRI_OK, not a hang). */
    rv = tri_stream_send_ex(s, "x", 1, 0, 5000);
    ck_assert_msg(rv == TRI_FAILED_PRECONDITION, "send after end: %s",
                  tu_code(rv));
    tri_stream_free(s);
  }
}
END_TEST

START_TEST(test_half_close)
{
  tri_stream *s = open_stream(M_HALFCLOSE, NULL);
  tri_buf *m = NULL;
  int i, rv;

  for (i = 0; i < 3; i++)
    ck_assert_int_eq(tri_stream_send(s, "abc", 3), TRI_OK);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  /* Sending after our own half-close: TRI_EOF. */
  rv = tri_stream_send_ex(s, "late", 4, 0, 1000);
  ck_assert_msg(rv == TRI_EOF, "send after close_send: %s", tu_code(rv));

  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv reply: %s", tu_code(rv));
  ck_assert_uint_eq(tri_buf_len(m), strlen("after-eof:3"));
  ck_assert_mem_eq(tri_buf_data(m), "after-eof:3", strlen("after-eof:3"));
  tri_buf_free(m);
  expect_eof_ok(s);
  /* After an OK end, send reports TRI_EOF. */
  ck_assert_int_eq(tri_stream_send_ex(s, "x", 1, 0, 1000), TRI_EOF);

  /* TRI_SEND_LAST half-closes too. */
  tri_stream_free(s);
  s = open_stream(M_HALFCLOSE, NULL);
  ck_assert_int_eq(tri_stream_send_ex(s, "a", 1, 0, 5000), TRI_OK);
  ck_assert_int_eq(tri_stream_send_ex(s, "b", 1, TRI_SEND_LAST, 5000), TRI_OK);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv reply: %s", tu_code(rv));
  ck_assert_mem_eq(tri_buf_data(m), "after-eof:2", strlen("after-eof:2"));
  tri_buf_free(m);
  expect_eof_ok(s);
  tri_stream_free(s);

  /* Half-close with no message at all. */
  s = open_stream(M_HALFCLOSE, NULL);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  m = NULL;
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_OK, "recv reply: %s", tu_code(rv));
  ck_assert_mem_eq(tri_buf_data(m), "after-eof:0", strlen("after-eof:0"));
  tri_buf_free(m);
  expect_eof_ok(s);
  tri_stream_free(s);
}
END_TEST

START_TEST(test_recv_into_enospc)
{
  tri_stream *s = open_stream(M_TWO, NULL);
  uint8_t small[10], big[200];
  size_t len = 0;
  int rv;

  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  rv = tri_stream_recv_into(s, small, sizeof(small), &len, 10000);
  ck_assert_msg(rv == TRI_ENOSPC, "recv_into(cap 10) of 100 bytes: %s",
                tu_code(rv));
  ck_assert_uint_eq(len, 100);
  /* Still queued: a second too-small try says the same. */
  len = 0;
  rv = tri_stream_recv_into(s, small, sizeof(small), &len, 0);
  ck_assert_msg(rv == TRI_ENOSPC, "second recv_into(cap 10): %s", tu_code(rv));
  ck_assert_uint_eq(len, 100);
  /* Exactly-fitting buffer works. */
  len = 0;
  rv = tri_stream_recv_into(s, big, 100, &len, 1000);
  ck_assert_msg(rv == TRI_OK, "recv_into(cap 100): %s", tu_code(rv));
  ck_assert_uint_eq(len, 100);
  ck_assert_int_lt(tu_check_fill(big, 100, 100), 0);
  /* Next message fits the small buffer. */
  len = 0;
  rv = tri_stream_recv_into(s, small, sizeof(small), &len, 10000);
  ck_assert_msg(rv == TRI_OK, "recv_into(10 bytes): %s", tu_code(rv));
  ck_assert_uint_eq(len, 10);
  ck_assert_int_lt(tu_check_fill(small, 10, 10), 0);
  /* End of stream through recv_into as well. */
  rv = tri_stream_recv_into(s, big, sizeof(big), &len, 10000);
  ck_assert_msg(rv == TRI_EOF, "recv_into at end: %s", tu_code(rv));
  ck_assert_int_eq(tri_stream_wait_status(s, 1000, NULL), TRI_OK);
  tri_stream_free(s);

  /* After TRI_ENOSPC, plain tri_stream_recv() gets the message. */
  s = open_stream(M_TWO, NULL);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  rv = tri_stream_recv_into(s, small, 1, &len, 10000);
  ck_assert_msg(rv == TRI_ENOSPC, "recv_into(cap 1): %s", tu_code(rv));
  {
    tri_buf *m = NULL;
    rv = tri_stream_recv_ex(s, &m, 1000);
    ck_assert_msg(rv == TRI_OK, "recv after ENOSPC: %s", tu_code(rv));
    ck_assert_uint_eq(tri_buf_len(m), 100);
    ck_assert_int_lt(tu_check_fill(tri_buf_data(m), 100, 100), 0);
    tri_buf_free(m);
  }
  tri_stream_free(s); /* frees a stream with a message still queued */
}
END_TEST

START_TEST(test_unknown_method)
{
  tri_buf *resp = NULL;
  tri_stream *st = NULL, *s;
  tri_buf *m = NULL;
  int rv;

  rv = tri_unary_call(ch, "/test.Echo/NoSuchMethod", NULL, "x", 1, &resp,
                      &st);
  ck_assert_msg(rv == TRI_UNIMPLEMENTED, "unknown method: %s", tu_code(rv));
  ck_assert_ptr_null(resp);
  ck_assert_int_eq(tri_stream_wait_status(st, 1000, NULL), TRI_UNIMPLEMENTED);
  tri_stream_free(st);

  rv = tri_unary_call(ch, "/no.Such/Service", NULL, "x", 1, &resp, NULL);
  ck_assert_msg(rv == TRI_UNIMPLEMENTED, "unknown service: %s", tu_code(rv));

  /* Streaming: the first recv reports it. */
  s = open_stream("/test.Echo/Nope", NULL);
  rv = tri_stream_recv_ex(s, &m, 10000);
  ck_assert_msg(rv == TRI_UNIMPLEMENTED, "recv on unknown method: %s",
                tu_code(rv));
  tri_stream_free(s);

  /* Malformed paths are refused locally. */
  s = NULL;
  ck_assert_int_eq(tri_stream_open(ch, "no-slash", NULL, &s), TRI_EINVAL);
  ck_assert_ptr_null(s);

  /* The channel still works. */
  rv = tri_unary_call(ch, M_UNARY, NULL, "y", 1, &resp, NULL);
  ck_assert_msg(rv == TRI_OK, "unary after unknown: %s", tu_code(rv));
  tri_buf_free(resp);
}
END_TEST

/* 8 threads x 200 unary calls on one channel. */
enum { MT_THREADS = 8, MT_CALLS = 200 };

struct mt_arg {
  int id;
  int ok;
  int first_bad_rv;
  int first_bad_call;
};

static void *
mt_worker(void *p)
{
  struct mt_arg *a = p;
  char req[64];
  int i;

  a->first_bad_call = -1;
  for (i = 0; i < MT_CALLS; i++) {
    tri_buf *resp = NULL;
    int n = snprintf(req, sizeof(req), "thread %d call %d", a->id, i);
    int rv = tri_unary_call(ch, M_UNARY, NULL, req, (size_t)n, &resp, NULL);
    if (rv == TRI_OK && tri_buf_len(resp) == (size_t)n &&
        memcmp(tri_buf_data(resp), req, (size_t)n) == 0) {
      a->ok++;
    } else if (a->first_bad_call < 0) {
      a->first_bad_call = i;
      a->first_bad_rv = rv == TRI_OK ? TRI_DATA_LOSS : rv;
    }
    tri_buf_free(resp);
  }
  return NULL;
}

START_TEST(test_threads_share_channel)
{
  pthread_t t[MT_THREADS];
  struct mt_arg a[MT_THREADS];
  int i, total = 0;

  memset(a, 0, sizeof(a));
  for (i = 0; i < MT_THREADS; i++) {
    a[i].id = i;
    ck_assert_int_eq(tu_thread_start(&t[i], mt_worker, &a[i]), 0);
  }
  for (i = 0; i < MT_THREADS; i++) {
    int jr = tu_thread_join(t[i], 50000, NULL);
    ck_assert_msg(jr == 0, "thread %d did not finish within 50 s", i);
  }
  for (i = 0; i < MT_THREADS; i++) {
    ck_assert_msg(a[i].ok == MT_CALLS,
                  "thread %d: %d/%d OK; first failure at call %d: %s", i,
                  a[i].ok, MT_CALLS, a[i].first_bad_call,
                  tu_code(a[i].first_bad_rv));
    total += a[i].ok;
  }
  ck_assert_int_eq(total, MT_THREADS * MT_CALLS);
}
END_TEST

START_TEST(test_misc_api)
{
  tri_stream *s;
  int64_t rem;
  tri_call_opts *o = tri_call_opts_new();

  ck_assert_str_eq(tri_version(), TRI_VERSION);
  ck_assert_str_eq(tri_code_name(TRI_CANCELLED), "TRI_CANCELLED");
  ck_assert_str_eq(tri_code_name(TRI_ENOSPC), "TRI_ENOSPC");
  ck_assert_str_eq(tri_code_name(12345), "TRI_?");
  ck_assert_ptr_nonnull(tri_strerror(12345));

  /* No deadline: -1; with one: within (0, 60000]. */
  s = open_stream(M_BIDI, NULL);
  ck_assert_int_eq(tri_stream_remaining_ms(s), -1);
  ck_assert_int_eq(tri_stream_server_draining(s), 0);
  ck_assert_uint_eq(tri_metadata_count(tri_stream_trailers(s)), 0);
  ck_assert_int_eq(tri_stream_add_header(s, "x-a", "b", 1), TRI_ESTATE);
  ck_assert_int_eq(tri_stream_add_trailer(s, "x-a", "b", 1), TRI_ESTATE);
  ck_assert_int_eq(tri_stream_finish(s, TRI_OK, NULL), TRI_ESTATE);
  ck_assert_int_eq(tri_stream_send_headers(s), TRI_ESTATE);
  tri_stream_free(s);

  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 60000), TRI_OK);
  s = open_stream(M_BIDI, o);
  rem = tri_stream_remaining_ms(s);
  ck_assert_msg(rem > 0 && rem <= 60000, "remaining_ms %lld",
                (long long)rem);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  expect_eof_ok(s);
  tri_stream_free(s);
  tri_call_opts_free(o);
}
END_TEST

static Suite *
rpc_suite(void)
{
  Suite *s = suite_create("integ_rpc");
  TCase *tc = tcase_create("rpc");

  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_unary);
  tcase_add_test(tc, test_server_send_last);
  tcase_add_test(tc, test_client_streaming);
  tcase_add_test(tc, test_server_streaming);
  tcase_add_test(tc, test_bidi_echo);
  tcase_add_test(tc, test_spin_budgets_no_lost_wakeup);
  tcase_add_test(tc, test_bulk_reuse_concurrent);
  tcase_add_test(tc, test_spare_blocks_bounded);
#ifdef HAVE_ZLIB
  tcase_add_test(tc, test_bulk_reuse_gzip);
#endif
  tcase_add_test(tc, test_metadata_roundtrip);
  tcase_add_test(tc, test_status_special_message);
  tcase_add_test(tc, test_half_close);
  tcase_add_test(tc, test_recv_into_enospc);
  tcase_add_test(tc, test_unknown_method);
  tcase_add_test(tc, test_threads_share_channel);
  tcase_add_test(tc, test_misc_api);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(rpc_suite());
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
