/* Unit tests for lib/frame.c: gRPC message framing (doc/PROTOCOL.md 3). */
#include "tri_int.h"

#include <check.h>
#include <stdlib.h>

#include "frame.h"

#define MAX_LEN 4194304u

/* Frame |n| bytes of |p| with the given flags byte into |out|. */
static size_t frame(uint8_t *out, uint8_t flags, const void *p, uint32_t n) {
  tri__frame_put_header(out, 0, n);
  out[0] = flags;
  if (n > 0)
    memcpy(out + TRI__FRAME_HDR_LEN, p, n);
  return TRI__FRAME_HDR_LEN + n;
}

START_TEST(test_put_header) {
  uint8_t h[TRI__FRAME_HDR_LEN];

  tri__frame_put_header(h, 0, 0x01020304u);
  ck_assert_uint_eq(h[0], 0);
  ck_assert_uint_eq(h[1], 1);
  ck_assert_uint_eq(h[2], 2);
  ck_assert_uint_eq(h[3], 3);
  ck_assert_uint_eq(h[4], 4);
  tri__frame_put_header(h, 1, 0xFFFFFFFFu);
  ck_assert_uint_eq(h[0], TRI__FRAME_FLAG_COMPRESSED);
  ck_assert_uint_eq(h[1], 0xFF);
  ck_assert_uint_eq(h[4], 0xFF);
}
END_TEST

START_TEST(test_buf_new) {
  tri_buf *b = tri__buf_new(3);

  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(tri_buf_len(b), 3);
  ck_assert_uint_eq(tri_buf_flags(b), 0);
  ck_assert_ptr_eq(tri_buf_data(b), b->bytes);
  ck_assert_uint_eq(b->bytes[3], 0);
  ck_assert(!tri__list_linked(&b->link));
  tri_buf_free(b);

  b = tri__buf_new(0);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_nonnull(tri_buf_data(b));
  ck_assert_uint_eq(tri_buf_len(b), 0);
  tri_buf_free(b);

  ck_assert_ptr_null(tri__buf_new(SIZE_MAX));
  ck_assert_ptr_nonnull(tri_buf_data(NULL));
  ck_assert_uint_eq(tri_buf_len(NULL), 0);
  tri_buf_free(NULL);
}
END_TEST

/* A message split into 1-byte feeds comes out whole, only at the end. */
START_TEST(test_one_byte_feeds) {
  static const char msg[] = "hello, framing";
  uint8_t wire[64];
  size_t n = frame(wire, 0, msg, sizeof(msg) - 1), i, consumed;
  tri__deframer d;
  tri_buf *out = NULL;

  tri__deframer_init(&d, MAX_LEN);
  ck_assert(!tri__deframer_partial(&d));
  for (i = 0; i < n; i++) {
    ck_assert_int_eq(tri__deframer_feed(&d, wire + i, 1, &consumed, &out,
                                        NULL),
                     TRI_OK);
    ck_assert_uint_eq(consumed, 1);
    if (i + 1 < n) {
      ck_assert_ptr_null(out);
      ck_assert(tri__deframer_partial(&d));
    }
  }
  ck_assert_ptr_nonnull(out);
  ck_assert(!tri__deframer_partial(&d));
  ck_assert_uint_eq(tri_buf_len(out), sizeof(msg) - 1);
  ck_assert_mem_eq(tri_buf_data(out), msg, sizeof(msg) - 1);
  ck_assert_uint_eq(tri_buf_flags(out), 0);
  ck_assert_uint_eq(out->bytes[out->len], 0);
  tri_buf_free(out);
  tri__deframer_cleanup(&d);
}
END_TEST

/* Several messages (one compressed, one empty) in one feed: the caller
 * loops, one message per call (3.2, 3.3). */
START_TEST(test_several_in_one_feed) {
  uint8_t wire[128];
  size_t n = 0, off = 0, consumed;
  tri__deframer d;
  tri_buf *out;
  int got = 0;

  n += frame(wire + n, 0, "abc", 3);
  n += frame(wire + n, 0, NULL, 0);
  n += frame(wire + n, TRI__FRAME_FLAG_COMPRESSED, "zz", 2);
  n += frame(wire + n, 0, "last", 4);

  tri__deframer_init(&d, MAX_LEN);
  while (off < n) {
    ck_assert_int_eq(tri__deframer_feed(&d, wire + off, n - off, &consumed,
                                        &out, NULL),
                     TRI_OK);
    ck_assert_ptr_nonnull(out);
    off += consumed;
    switch (got++) {
    case 0:
      ck_assert_uint_eq(consumed, 8);
      ck_assert_uint_eq(out->len, 3);
      ck_assert_mem_eq(out->data, "abc", 3);
      ck_assert_uint_eq(out->flags, 0);
      break;
    case 1:
      ck_assert_uint_eq(consumed, 5);
      ck_assert_uint_eq(out->len, 0);
      break;
    case 2:
      ck_assert_uint_eq(out->len, 2);
      ck_assert_mem_eq(out->data, "zz", 2);
      ck_assert_uint_eq(out->flags, TRI_BUF_COMPRESSED);
      break;
    case 3:
      ck_assert_mem_eq(out->data, "last", 4);
      break;
    default:
      ck_abort_msg("too many messages");
    }
    tri_buf_free(out);
  }
  ck_assert_int_eq(got, 4);
  ck_assert_uint_eq(off, n);
  ck_assert(!tri__deframer_partial(&d));
  tri__deframer_cleanup(&d);
}
END_TEST

/* A zero-length message is complete as soon as its prefix is, even with
 * nothing after it. */
START_TEST(test_zero_length) {
  uint8_t wire[TRI__FRAME_HDR_LEN];
  size_t consumed;
  tri__deframer d;
  tri_buf *out;

  frame(wire, 0, NULL, 0);
  tri__deframer_init(&d, 0); /* limit 0 still allows empty messages */
  ck_assert_int_eq(tri__deframer_feed(&d, wire, 4, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_uint_eq(consumed, 4);
  ck_assert_ptr_null(out);
  ck_assert(tri__deframer_partial(&d));
  ck_assert_int_eq(tri__deframer_feed(&d, wire + 4, 1, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_uint_eq(consumed, 1);
  ck_assert_ptr_nonnull(out);
  ck_assert_uint_eq(tri_buf_len(out), 0);
  ck_assert_ptr_nonnull(tri_buf_data(out));
  ck_assert(!tri__deframer_partial(&d));
  tri_buf_free(out);

  /* An empty feed is harmless. */
  ck_assert_int_eq(tri__deframer_feed(&d, NULL, 0, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_uint_eq(consumed, 0);
  ck_assert_ptr_null(out);
  tri__deframer_cleanup(&d);
}
END_TEST

/* 3.5: the length prefix is checked before allocating.  A 4 GiB prefix
 * would make the allocation fail (or valgrind complain) if attempted. */
START_TEST(test_over_limit) {
  uint8_t wire[TRI__FRAME_HDR_LEN + 8];
  size_t consumed;
  tri__deframer d;
  tri_buf *out = (tri_buf *)1;
  const char *err = NULL;

  tri__frame_put_header(wire, 0, 0xFFFFFFFFu);
  tri__deframer_init(&d, 1024);
  ck_assert_int_eq(tri__deframer_feed(&d, wire, sizeof(wire), &consumed, &out,
                                      &err),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_ptr_null(out);
  ck_assert_ptr_null(d.cur);
  ck_assert_uint_eq(consumed, TRI__FRAME_HDR_LEN);
  ck_assert_ptr_nonnull(err);
  ck_assert_ptr_nonnull(strstr(err, "4294967295"));
  ck_assert_ptr_nonnull(strstr(err, "1024"));
  tri__deframer_cleanup(&d);

  /* Exactly at the limit is fine; one past is not. */
  tri__deframer_init(&d, 4);
  tri__frame_put_header(wire, 0, 4);
  memcpy(wire + TRI__FRAME_HDR_LEN, "abcd", 4);
  ck_assert_int_eq(tri__deframer_feed(&d, wire, 9, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_ptr_nonnull(out);
  tri_buf_free(out);
  tri__frame_put_header(wire, 0, 5);
  ck_assert_int_eq(tri__deframer_feed(&d, wire, 5, &consumed, &out, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  tri__deframer_cleanup(&d);
}
END_TEST

/* 3.1: flag bits other than 0x01 are a protocol error. */
START_TEST(test_reserved_flags) {
  static const uint8_t bad_flags[] = {0x02, 0x04, 0x80, 0x81, 0xFF};
  uint8_t wire[TRI__FRAME_HDR_LEN + 1];
  size_t i, consumed;
  tri__deframer d;
  tri_buf *out;
  const char *err;

  for (i = 0; i < TRI__ARRAY_LEN(bad_flags); i++) {
    frame(wire, bad_flags[i], "x", 1);
    tri__deframer_init(&d, MAX_LEN);
    err = NULL;
    ck_assert_int_eq(tri__deframer_feed(&d, wire, sizeof(wire), &consumed,
                                        &out, &err),
                     TRI_INTERNAL);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(err);
    /* The deframer stays failed. */
    ck_assert_int_eq(tri__deframer_feed(&d, wire + consumed,
                                        sizeof(wire) - consumed, &consumed,
                                        &out, NULL),
                     TRI_INTERNAL);
    tri__deframer_cleanup(&d);
  }
}
END_TEST

/* partial() tracks a half-received prefix and a half-received payload; a
 * cleanup with a partial message frees it (checked by valgrind). */
START_TEST(test_partial) {
  uint8_t wire[32];
  size_t n = frame(wire, 0, "0123456789", 10), consumed;
  tri__deframer d;
  tri_buf *out;

  tri__deframer_init(&d, MAX_LEN);
  ck_assert_int_eq(tri__deframer_feed(&d, wire, 2, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert(tri__deframer_partial(&d));
  ck_assert_int_eq(tri__deframer_feed(&d, wire + 2, 5, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_uint_eq(consumed, 5);
  ck_assert_ptr_null(out);
  ck_assert(tri__deframer_partial(&d));
  ck_assert_int_eq(tri__deframer_feed(&d, wire + 7, n - 7, &consumed, &out,
                                      NULL),
                   TRI_OK);
  ck_assert_ptr_nonnull(out);
  ck_assert_mem_eq(out->data, "0123456789", 10);
  ck_assert(!tri__deframer_partial(&d));
  tri_buf_free(out);

  /* Stop mid-payload, then clean up. */
  ck_assert_int_eq(tri__deframer_feed(&d, wire, 8, &consumed, &out, NULL),
                   TRI_OK);
  ck_assert_ptr_null(out);
  ck_assert(tri__deframer_partial(&d));
  tri__deframer_cleanup(&d);
  ck_assert(!tri__deframer_partial(&d));
}
END_TEST

/* Every split point of a two-message stream gives the same messages. */
START_TEST(test_all_splits) {
  uint8_t wire[64];
  size_t n = 0, cut;

  n += frame(wire + n, 0, "first", 5);
  n += frame(wire + n, 1, "second!", 7);
  for (cut = 0; cut <= n; cut++) {
    tri__deframer d;
    tri_buf *msgs[2];
    int got = 0;
    size_t parts[2][2] = {{0, cut}, {cut, n}}, p;

    tri__deframer_init(&d, MAX_LEN);
    for (p = 0; p < 2; p++) {
      size_t off = parts[p][0];

      while (off < parts[p][1]) {
        size_t consumed;
        tri_buf *out;

        ck_assert_int_eq(tri__deframer_feed(&d, wire + off,
                                            parts[p][1] - off, &consumed,
                                            &out, NULL),
                         TRI_OK);
        ck_assert_uint_gt(consumed, 0);
        off += consumed;
        if (out != NULL) {
          ck_assert_int_lt(got, 2);
          msgs[got++] = out;
        }
      }
    }
    ck_assert_int_eq(got, 2);
    ck_assert_uint_eq(msgs[0]->len, 5);
    ck_assert_mem_eq(msgs[0]->data, "first", 5);
    ck_assert_uint_eq(msgs[0]->flags, 0);
    ck_assert_uint_eq(msgs[1]->len, 7);
    ck_assert_mem_eq(msgs[1]->data, "second!", 7);
    ck_assert_uint_eq(msgs[1]->flags, TRI_BUF_COMPRESSED);
    tri_buf_free(msgs[0]);
    tri_buf_free(msgs[1]);
    tri__deframer_cleanup(&d);
  }
}
END_TEST

/* Feed |wire| (|n| bytes) in |pieces| equal parts; return the message. */
static tri_buf *feed_pieces(tri__deframer *d, const uint8_t *wire, size_t n,
                            size_t pieces) {
  tri_buf *out = NULL;
  size_t off = 0, step = n / pieces + 1;

  while (off < n) {
    size_t consumed = 0, k = n - off < step ? n - off : step;
    ck_assert_ptr_null(out);
    ck_assert_int_eq(tri__deframer_feed(d, wire + off, k, &consumed, &out,
                                        NULL),
                     TRI_OK);
    ck_assert_uint_gt(consumed, 0);
    off += consumed;
  }
  return out;
}

/* A block handed back (d->spare, filled by tri__stream_recycle) takes the
 * next message when it holds it and is at most twice its size: the same
 * block comes out, however the bytes arrive, and is never resized.
 * Otherwise it is freed (no leak under valgrind/ASan) and a new block is
 * made as before. */
START_TEST(test_spare_block) {
  enum { BIG = 60000 };
  uint8_t *payload = malloc(BIG), *wire = malloc(BIG + TRI__FRAME_HDR_LEN);
  tri__deframer d;
  tri_buf *spare, *out;
  size_t n;

  ck_assert_ptr_nonnull(payload);
  ck_assert_ptr_nonnull(wire);
  for (size_t i = 0; i < BIG; i++)
    payload[i] = (uint8_t)(i * 7 + 3);
  tri__deframer_init(&d, MAX_LEN);

  /* Reused: 64 KiB block, 60000-byte message in three feeds (the first
   * one alone would have started a 16 KiB block and grown it twice). */
  spare = tri__buf_new(65536);
  ck_assert_ptr_nonnull(spare);
  ck_assert_uint_eq(spare->cap, 65536);
  memset(spare->bytes, 0xEE, 65536); /* stale bytes of an older message */
  spare->flags = TRI_BUF_COMPRESSED;
  d.spare = spare;
  n = frame(wire, 0, payload, BIG);
  out = feed_pieces(&d, wire, n, 3);
  ck_assert_ptr_eq(out, spare);
  ck_assert_ptr_null(d.spare);
  ck_assert_uint_eq(out->len, BIG);
  ck_assert_uint_eq(out->cap, 65536);
  ck_assert_uint_eq(out->flags, 0);
  ck_assert_ptr_eq(out->data, out->bytes);
  ck_assert_mem_eq(out->data, payload, BIG);
  ck_assert_uint_eq(out->bytes[BIG], 0);
  ck_assert(!tri__list_linked(&out->link));

  /* Not reused: the block is more than twice the message. */
  d.spare = out;
  n = frame(wire, 0, payload, 100);
  out = feed_pieces(&d, wire, n, 1);
  ck_assert_ptr_nonnull(out);
  ck_assert_ptr_null(d.spare);
  ck_assert_uint_eq(out->len, 100);
  ck_assert_uint_eq(out->cap, 100);
  ck_assert_mem_eq(out->data, payload, 100);
  tri_buf_free(out);

  /* Not reused: the block is too small; the message still comes out. */
  d.spare = tri__buf_new(1000);
  n = frame(wire, 1, payload, BIG);
  out = feed_pieces(&d, wire, n, 4);
  ck_assert_ptr_nonnull(out);
  ck_assert_ptr_null(d.spare);
  ck_assert_uint_eq(out->len, BIG);
  ck_assert_uint_eq(out->flags, TRI_BUF_COMPRESSED);
  ck_assert_mem_eq(out->data, payload, BIG);
  tri_buf_free(out);

  /* A block still held at cleanup is freed with the deframer. */
  d.spare = tri__buf_new(8192);
  tri__deframer_cleanup(&d);
  ck_assert_ptr_null(d.spare);
  free(payload);
  free(wire);
}
END_TEST

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_put_header);
  tcase_add_test(tc, test_buf_new);
  tcase_add_test(tc, test_one_byte_feeds);
  tcase_add_test(tc, test_several_in_one_feed);
  tcase_add_test(tc, test_zero_length);
  tcase_add_test(tc, test_over_limit);
  tcase_add_test(tc, test_reserved_flags);
  tcase_add_test(tc, test_partial);
  tcase_add_test(tc, test_all_splits);
  tcase_add_test(tc, test_spare_block);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(frame_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
