/*
 * Unit tests for nghttp2's allocator (lib/mem.c, lib/h2mem.h): the
 * buffers nghttp2 sizes when it creates a session live in their own
 * mappings, cost no resident memory until written, go back to the kernel
 * with the session, and nothing later (per-stream work) is mapped.
 *
 * The sessions here run over nghttp2's memory interface (mem_recv /
 * mem_send), with no socket and no I/O thread.
 */
#include "h2mem.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Each test's pool of page slots (as an I/O loop has). */
static tri__pgpool *pool;

static void pool_setup(void) {
  pool = tri__pgpool_new();
  ck_assert_ptr_nonnull(pool);
}

static void pool_teardown(void) {
  tri__pgpool_free(pool);
  pool = NULL;
}

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
static const uint8_t settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};

static nghttp2_session_callbacks *callbacks(void) {
  nghttp2_session_callbacks *cbs;
  ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
  return cbs;
}

/* Everything nghttp2 wants to send, discarded; the bytes it produced. */
static size_t drain(nghttp2_session *s) {
  const uint8_t *data;
  size_t total = 0;
  ssize_t n;
  for (int i = 0; i < 100000 && (n = nghttp2_session_mem_send(s, &data)) > 0;
       i++)
    total += (size_t)n;
  ck_assert_int_eq(nghttp2_session_want_write(s), 0);
  return total;
}

/* Pages of the blocks |m| maps that hold memory of their own: present
 * and mapped by this process alone (/proc/self/pagemap bits 63 and 56,
 * Linux 4.2).  A page only ever read maps the kernel's shared zero page
 * and is not counted; neither is one never touched. */
static int written_pages_of(const tri__h2mem *m, int scratch_only) {
  size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), n = 0;

  ck_assert_int_ge(fd, 0);
  for (int i = 0; i < TRI__H2MEM_MAPS; i++) {
    uintptr_t a = (uintptr_t)m->map[i];
    if (m->map[i] == NULL || (scratch_only && !m->scratch[i]))
      continue;
    for (size_t off = 0; off < m->len[i]; off += ps) {
      uint64_t e = 0;
      ck_assert_int_eq(pread(fd, &e, sizeof e,
                             (off_t)((a + off) / ps * sizeof e)),
                       (ssize_t)sizeof e);
      n += (e >> 63 & 1) && (e >> 56 & 1);
    }
  }
  close(fd);
  return n;
}

static int written_pages(const tri__h2mem *m) { return written_pages_of(m, 0); }

/* A server session that has done the connection preface (RFC 9113 3.4)
 * and holds no stream: an idle connection. */
static void handshake(nghttp2_session *s) {
  nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
  ck_assert_int_eq(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, &iv, 1), 0);
  ck_assert_int_eq(nghttp2_session_mem_recv(s, preface, sizeof preface - 1),
                   (ssize_t)(sizeof preface - 1));
  ck_assert_int_eq(nghttp2_session_mem_recv(s, settings, sizeof settings),
                   (ssize_t)sizeof settings);
  ck_assert_uint_gt(drain(s), 0); /* SETTINGS and the ACK of the client's */
  ck_assert_int_eq(
      nghttp2_session_mem_recv(s, settings_ack, sizeof settings_ack),
      (ssize_t)sizeof settings_ack);
  drain(s);
}

/* An idle server session writes at most the first page of its mapped
 * blocks (its frame buffer's, for SETTINGS and the ACK); the stream table
 * stays the zero page.  Before the allocator nothing was mapped and this
 * fails. */
START_TEST(idle_session_writes_one_page) {
  nghttp2_session_callbacks *cbs = callbacks();
  nghttp2_session *s = NULL;
  tri__h2mem m;

  memset(&m, 0, sizeof m);
  m.pool = pool;
  ck_assert_int_eq(tri__h2_session_new(&s, 1, cbs, NULL, NULL, &m), 0);
  ck_assert_int_eq(m.creating, 0);
  ck_assert_int_ge(tri__h2mem_mapped(&m), 2); /* table, frame buffer */
  ck_assert_int_eq(written_pages(&m), 0);
  handshake(s);
  ck_assert_int_le(written_pages(&m), 1);
  /* Where nghttp2's version is not known to allow trimming, a trim does
   * nothing but still counts as tried (the connection counts it quiet
   * once: e414326 fixed a count on every loop pass). */
  int can = m.can_trim;
  m.can_trim = 0;
  ck_assert_uint_eq(tri__h2mem_trim(&m), 0);
  ck_assert_int_eq(m.trimmed, 1);
  m.can_trim = can;
  nghttp2_session_del(s);
  ck_assert_int_eq(tri__h2mem_mapped(&m), 0);
  nghttp2_session_callbacks_del(cbs);
}
END_TEST

/* ---- a server session through trims, against nghttp2's own client ---- */

typedef struct {
  int responses;  /* response HEADERS the client received */
  int ping_acks;  /* PING ACKs the client received */
  int requests;   /* request HEADERS the server received */
} counts;

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f,
                         void *ud) {
  counts *n = ud;
  (void)s;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE)
    n->responses++;
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
    n->requests++;
  if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
    n->ping_acks++;
  return 0;
}

/* Everything |from| has to send, fed to |to|, which must take all of it
 * (a malformed frame would make it fail). */
static void pump(nghttp2_session *from, nghttp2_session *to) {
  const uint8_t *data;
  ssize_t n;
  for (int i = 0; i < 1000 && (n = nghttp2_session_mem_send(from, &data)) > 0;
       i++)
    ck_assert_int_eq(nghttp2_session_mem_recv(to, data, (size_t)n), n);
}

/* One request's headers, for the sessions below. */
static const nghttp2_nv request_nv[] = {
    {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
    {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
    {(uint8_t *)":path", (uint8_t *)"/a.B/C", 5, 6, NGHTTP2_NV_FLAG_NONE},
    {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, NGHTTP2_NV_FLAG_NONE},
};

/* Between frames the frame buffer's bytes are dead: a server session
 * whose scratch pages were given back (and read as zero afterwards)
 * still answers requests and PINGs that nghttp2's client parses.  On the
 * nghttp2 versions trimming is enabled for it gives back at least the
 * frame buffer; elsewhere it gives back nothing. */
START_TEST(trimmed_session_keeps_working) {
  nghttp2_session_callbacks *cbs = callbacks();
  nghttp2_session *srv = NULL, *cli = NULL;
  const nghttp2_info *v = nghttp2_version(0);
  int supported = v->version_num >= 0x012800 && v->version_num < 0x014600;
  counts sn = {0, 0, 0}, cn = {0, 0, 0};
  tri__h2mem m;
  const nghttp2_nv resp[] = {
      {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
  };

  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  memset(&m, 0, sizeof m);
  m.pool = pool;
  ck_assert_int_eq(tri__h2_session_new(&srv, 1, cbs, &sn, NULL, &m), 0);
  ck_assert_int_eq(m.can_trim, supported);
  ck_assert_int_eq(nghttp2_session_client_new(&cli, cbs, &cn), 0);
  ck_assert_int_eq(nghttp2_submit_settings(cli, NGHTTP2_FLAG_NONE, NULL, 0),
                   0);
  ck_assert_int_eq(nghttp2_submit_settings(srv, NGHTTP2_FLAG_NONE, NULL, 0),
                   0);
  for (int round = 0; round < 3; round++) {
    pump(cli, srv);
    pump(srv, cli);
    pump(cli, srv); /* SETTINGS ACKs */
    pump(srv, cli);
    ck_assert_int_eq(nghttp2_session_want_write(srv), 0);
    m.trimmed = 0; /* as a connection does when it reads */
    size_t given = tri__h2mem_trim(&m);
    if (supported) {
      ck_assert_uint_ge(given, 16384); /* the frame buffer */
      ck_assert_int_eq(written_pages_of(&m, 1), 0);
      if (round == 0) /* and no stream yet: the table is untouched too */
        ck_assert_int_eq(written_pages(&m), 0);
    } else {
      ck_assert_uint_eq(given, 0);
    }
    ck_assert_uint_eq(tri__h2mem_trim(&m), 0); /* once until cleared */
    if (supported && round == 2) {
      /* Dead means any bytes, not only zeros: garbage must not matter. */
      for (int i = 0; i < TRI__H2MEM_MAPS; i++)
        if (m.map[i] != NULL && m.scratch[i])
          memset(m.map[i], 0xa5, m.len[i]);
    }
    /* A request, answered with HEADERS and END_STREAM; a PING. */
    int32_t id =
        nghttp2_submit_request(cli, NULL, request_nv, 4, NULL, NULL);
    ck_assert_int_gt(id, 0);
    pump(cli, srv);
    ck_assert_int_eq(sn.requests, round + 1);
    ck_assert_int_eq(nghttp2_submit_response(srv, id, resp, 2, NULL), 0);
    ck_assert_int_eq(nghttp2_submit_ping(cli, NGHTTP2_FLAG_NONE, NULL), 0);
    pump(srv, cli);
    pump(cli, srv);
    pump(srv, cli);
    ck_assert_int_eq(cn.responses, round + 1);
    ck_assert_int_eq(cn.ping_acks, round + 1);
  }
  nghttp2_session_del(cli);
  nghttp2_session_del(srv);
  ck_assert_int_eq(tri__h2mem_mapped(&m), 0);
  nghttp2_session_callbacks_del(cbs);
}
END_TEST

/* A client session that opens many streams: nghttp2 grows its stream
 * table and the new one comes from the heap (nothing is mapped after
 * creation, so a request never costs a system call); the old one's slot
 * goes back to the pool. */
START_TEST(streams_use_the_heap) {
  nghttp2_session_callbacks *cbs = callbacks();
  nghttp2_session *s = NULL;
  tri__h2mem m;
  int before;

  /* The server's SETTINGS: up to 2000 concurrent streams. */
  static const uint8_t server_settings[15] = {0, 0, 6, 4, 0, 0, 0, 0,
                                              0, 0, 3, 0, 0, 0x07, 0xd0};

  memset(&m, 0, sizeof m);
  m.pool = pool;
  ck_assert_int_eq(tri__h2_session_new(&s, 0, cbs, NULL, NULL, &m), 0);
  before = tri__h2mem_mapped(&m);
  ck_assert_int_ge(before, 2);
  ck_assert_int_eq(
      nghttp2_session_mem_recv(s, server_settings, sizeof server_settings),
      (ssize_t)sizeof server_settings);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_gt(
        nghttp2_submit_request(s, NULL, request_nv, 4, NULL, NULL), 0);
  drain(s);
  ck_assert_ptr_nonnull(nghttp2_session_find_stream(s, 1999));
  ck_assert_int_le(tri__h2mem_mapped(&m), before);
  nghttp2_session_del(s);
  ck_assert_int_eq(tri__h2mem_mapped(&m), 0);
  nghttp2_session_callbacks_del(cbs);
}
END_TEST

/* Sessions coming and going reuse the pool's slots: 300 created and
 * deleted one after another need one mapping, and a reused slot is zero
 * and not resident again (its pages went back to the kernel).  300 live
 * at once need 24 KiB each, so a handful of 1 MiB mappings, not one or
 * two per session (vm.max_map_count). */
START_TEST(slots_are_reused) {
  nghttp2_session_callbacks *cbs = callbacks();
  static nghttp2_session *s[300];
  static tri__h2mem m[300];

  memset(m, 0, sizeof m);
  for (int i = 0; i < 300; i++) {
    m[0].pool = pool;
    ck_assert_int_eq(tri__h2_session_new(&s[0], 1, cbs, NULL, NULL, &m[0]),
                     0);
    ck_assert_int_eq(written_pages(&m[0]), 0);
    handshake(s[0]);
    ck_assert_int_ge(written_pages(&m[0]), 1); /* the frame buffer's */
    nghttp2_session_del(s[0]);
    ck_assert_int_eq(tri__h2mem_mapped(&m[0]), 0);
  }
  ck_assert_uint_eq(tri__pgpool_chunks(pool), 1);
  for (int i = 0; i < 300; i++) {
    m[i].pool = pool;
    ck_assert_int_eq(tri__h2_session_new(&s[i], 1, cbs, NULL, NULL, &m[i]),
                     0);
    ck_assert_int_eq(tri__h2mem_mapped(&m[i]), 2);
  }
  /* 300 x 24 KiB = 7.0 MiB: 8 mappings, one more for a partial fit. */
  ck_assert_uint_le(tri__pgpool_chunks(pool), 9);
  for (int i = 0; i < 300; i++)
    nghttp2_session_del(s[i]);
  nghttp2_session_callbacks_del(cbs);
}
END_TEST

/* Out of memory while nghttp2 creates the session (the tests' failure
 * hook refuses every block of a page or more): the creation fails and
 * every slot taken before the failure goes back to the pool. */
static int refuse_pages(size_t n) { return n >= 4096; }

START_TEST(creation_failure_returns_slots) {
  nghttp2_session_callbacks *cbs = callbacks();
  nghttp2_session *s = NULL;
  tri__h2mem m;

  memset(&m, 0, sizeof m);
  m.pool = pool;
  tri__mem_set_fail_hook(refuse_pages);
  ck_assert_int_eq(tri__h2_session_new(&s, 1, cbs, NULL, NULL, &m),
                   NGHTTP2_ERR_NOMEM);
  tri__mem_set_fail_hook(NULL);
  ck_assert_int_eq(m.creating, 0);
  ck_assert_int_eq(tri__h2mem_mapped(&m), 0);
  nghttp2_session_callbacks_del(cbs);
}
END_TEST

static Suite *mem_suite(void) {
  Suite *s = suite_create("mem");
  TCase *tc = tcase_create("h2mem");

  tcase_set_timeout(tc, 10);
  tcase_add_checked_fixture(tc, pool_setup, pool_teardown);
  tcase_add_test(tc, idle_session_writes_one_page);
  tcase_add_test(tc, streams_use_the_heap);
  tcase_add_test(tc, trimmed_session_keeps_working);
  tcase_add_test(tc, slots_are_reused);
  tcase_add_test(tc, creation_failure_returns_slots);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(mem_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
