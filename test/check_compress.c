/* Unit tests for lib/compress.c: identity, gzip, deflate and the
 * decompressed-size limit (doc/PROTOCOL.md 3.4, 3.5, 9). */
#include "tri_int.h"

#include <check.h>
#include <stdlib.h>

#include "compress.h"

#define S(lit) (lit), (sizeof(lit) - 1)

START_TEST(test_names) {
  ck_assert_int_eq(tri__enc_from_name(S("identity")), TRI__ENC_IDENTITY);
  ck_assert_int_eq(tri__enc_from_name(S("gzip")), TRI__ENC_GZIP);
  ck_assert_int_eq(tri__enc_from_name(S("deflate")), TRI__ENC_DEFLATE);
  ck_assert_int_eq(tri__enc_from_name(S("GZIP")), TRI__ENC_UNKNOWN);
  ck_assert_int_eq(tri__enc_from_name(S("snappy")), TRI__ENC_UNKNOWN);
  ck_assert_int_eq(tri__enc_from_name(S("gzi")), TRI__ENC_UNKNOWN);
  ck_assert_int_eq(tri__enc_from_name("gzipx", 4), TRI__ENC_GZIP);
  ck_assert_int_eq(tri__enc_from_name(S("")), TRI__ENC_UNKNOWN);
  ck_assert_int_eq(tri__enc_from_name(NULL, 0), TRI__ENC_UNKNOWN);

  ck_assert_str_eq(tri__enc_name(TRI__ENC_IDENTITY), "identity");
  ck_assert_str_eq(tri__enc_name(TRI__ENC_GZIP), "gzip");
  ck_assert_str_eq(tri__enc_name(TRI__ENC_DEFLATE), "deflate");
  ck_assert_str_eq(tri__enc_accept_list(), "identity,gzip,deflate");
}
END_TEST

START_TEST(test_in_list) {
  ck_assert(tri__enc_in_list(TRI__ENC_GZIP, S("identity,gzip")));
  ck_assert(tri__enc_in_list(TRI__ENC_GZIP, S("gzip")));
  ck_assert(tri__enc_in_list(TRI__ENC_DEFLATE, S("gzip, deflate ")));
  ck_assert(tri__enc_in_list(TRI__ENC_IDENTITY, S("identity")));
  ck_assert(!tri__enc_in_list(TRI__ENC_GZIP, S("identity,deflate")));
  ck_assert(!tri__enc_in_list(TRI__ENC_GZIP, S("gzipx,xgzip")));
  ck_assert(!tri__enc_in_list(TRI__ENC_GZIP, S("")));
  ck_assert(!tri__enc_in_list(TRI__ENC_GZIP, "identity,gzip", 10));
  ck_assert(!tri__enc_in_list(TRI__ENC_UNKNOWN, S("identity,gzip")));
}
END_TEST

/* Leave freed blocks full of 0xA5 on the heap, so a field the code under
 * test forgets to set reads as garbage, not as a lucky zero. */
static void pollute_heap(void) {
  void *p[16];
  for (int i = 0; i < 16; i++) {
    size_t sz = (size_t)64 << i; /* 64 B .. 2 MiB */
    p[i] = malloc(sz);
    if (p[i] != NULL)
      memset(p[i], 0xA5, sz);
  }
  for (int i = 0; i < 16; i++)
    free(p[i]);
}

static void round_trip(int enc, const uint8_t *in, size_t n) {
  uint8_t *c = NULL;
  size_t clen = 0;
  tri_buf *b = NULL;

  ck_assert_int_eq(tri__compress(enc, in, n, &c, &clen), TRI_OK);
  ck_assert_ptr_nonnull(c);
  if (enc == TRI__ENC_GZIP) {
    ck_assert_uint_ge(clen, 18);
    ck_assert_uint_eq(c[0], 0x1f); /* gzip magic */
    ck_assert_uint_eq(c[1], 0x8b);
  } else if (enc == TRI__ENC_DEFLATE) {
    ck_assert_uint_ge(clen, 6);
    ck_assert_uint_eq(c[0] & 0x0f, 8); /* zlib header: CM = deflate */
    ck_assert_uint_eq(((unsigned)c[0] << 8 | c[1]) % 31, 0);
  } else {
    ck_assert_uint_eq(clen, n);
  }
  pollute_heap();
  ck_assert_int_eq(tri__decompress(enc, c, clen, n, &b), TRI_OK);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(tri_buf_len(b), n);
  /* The block's capacity is what a stream trusts when it keeps the block
   * for its next message (tri__stream_recycle): it must be exact. */
  ck_assert_uint_eq(b->cap, n);
  ck_assert_uint_eq(tri_buf_flags(b), 0);
  if (n > 0)
    ck_assert_mem_eq(tri_buf_data(b), in, n);
  ck_assert_uint_eq(tri_buf_data(b)[n], 0);
  tri_buf_free(b);
  tri__free(c);
}

START_TEST(test_round_trip) {
  static const int encs[] = {TRI__ENC_IDENTITY, TRI__ENC_GZIP,
                             TRI__ENC_DEFLATE};
  size_t sizes[] = {0, 1, 100, 4096, 300000}, i, j;
  uint8_t *data = tri__malloc(300000);
  uint32_t x = 12345;

  ck_assert_ptr_nonnull(data);
  /* Half compressible text, half pseudo-random bytes. */
  for (i = 0; i < 300000; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = i % 2 ? (uint8_t)(x >> 16) : (uint8_t)("grpc"[i / 2 % 4]);
  }
  for (i = 0; i < TRI__ARRAY_LEN(encs); i++)
    for (j = 0; j < TRI__ARRAY_LEN(sizes); j++)
      round_trip(encs[i], data, sizes[j]);
  tri__free(data);
}
END_TEST

/* Output of exactly max bytes is allowed; max - 1 is exhausted. */
START_TEST(test_exact_limit) {
  static const uint8_t text[] = "exactly this long, no more, no less";
  size_t n = sizeof(text) - 1;
  uint8_t *c;
  size_t clen;
  tri_buf *b = NULL;

  ck_assert_int_eq(tri__compress(TRI__ENC_GZIP, text, n, &c, &clen), TRI_OK);
  ck_assert_int_eq(tri__decompress(TRI__ENC_GZIP, c, clen, n, &b), TRI_OK);
  ck_assert_uint_eq(tri_buf_len(b), n);
  tri_buf_free(b);
  b = NULL;
  ck_assert_int_eq(tri__decompress(TRI__ENC_GZIP, c, clen, n - 1, &b),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_ptr_null(b);
  tri__free(c);

  /* identity honours the limit too */
  ck_assert_int_eq(tri__decompress(TRI__ENC_IDENTITY, text, n, n - 1, &b),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_int_eq(tri__decompress(TRI__ENC_IDENTITY, text, n, n, &b),
                   TRI_OK);
  ck_assert_mem_eq(tri_buf_data(b), text, n);
  tri_buf_free(b);
}
END_TEST

/* 3.5: 1 MiB of zeros compresses to about 1 KiB; with max 1000 it must
 * fail without inflating it all. */
START_TEST(test_zip_bomb) {
  static const int encs[] = {TRI__ENC_GZIP, TRI__ENC_DEFLATE};
  const size_t n = 1024 * 1024;
  uint8_t *zeros = tri__calloc(n, 1);
  size_t i;

  ck_assert_ptr_nonnull(zeros);
  for (i = 0; i < TRI__ARRAY_LEN(encs); i++) {
    uint8_t *c;
    size_t clen;
    tri_buf *b = NULL;

    ck_assert_int_eq(tri__compress(encs[i], zeros, n, &c, &clen), TRI_OK);
    ck_assert_uint_lt(clen, 4096);
    ck_assert_int_eq(tri__decompress(encs[i], c, clen, 1000, &b),
                     TRI_RESOURCE_EXHAUSTED);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(tri__decompress(encs[i], c, clen, 0, &b),
                     TRI_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(tri__decompress(encs[i], c, clen, n, &b), TRI_OK);
    ck_assert_uint_eq(tri_buf_len(b), n);
    ck_assert_mem_eq(tri_buf_data(b), zeros, n);
    tri_buf_free(b);
    tri__free(c);
  }
  tri__free(zeros);
}
END_TEST

/* 9.5: corrupt or truncated data with a supported coding is INTERNAL. */
START_TEST(test_corrupt_truncated) {
  static const int encs[] = {TRI__ENC_GZIP, TRI__ENC_DEFLATE};
  static const uint8_t text[] =
      "The quick brown fox jumps over the lazy dog, twice: "
      "The quick brown fox jumps over the lazy dog.";
  static const uint8_t junk[] = "this is not compressed data at all";
  size_t i, cut;

  for (i = 0; i < TRI__ARRAY_LEN(encs); i++) {
    uint8_t *c, *bad;
    size_t clen;
    tri_buf *b = NULL;

    ck_assert_int_eq(tri__compress(encs[i], text, sizeof(text) - 1, &c,
                                   &clen),
                     TRI_OK);
    /* Every truncation fails, including the empty input. */
    for (cut = 0; cut < clen; cut++)
      ck_assert_msg(tri__decompress(encs[i], c, cut, 1 << 20, &b) ==
                        TRI_INTERNAL,
                    "enc %d cut %zu", encs[i], cut);
    ck_assert_ptr_null(b);

    /* Flipped checksum byte (gzip CRC32 / zlib Adler-32 at the end). */
    bad = tri__malloc(clen + 4);
    ck_assert_ptr_nonnull(bad);
    memcpy(bad, c, clen);
    bad[clen - 1] ^= 0x55;
    ck_assert_int_eq(tri__decompress(encs[i], bad, clen, 1 << 20, &b),
                     TRI_INTERNAL);
    /* Corrupt header. */
    memcpy(bad, c, clen);
    bad[0] ^= 0xff;
    ck_assert_int_eq(tri__decompress(encs[i], bad, clen, 1 << 20, &b),
                     TRI_INTERNAL);
    /* Trailing garbage after a complete stream. */
    memcpy(bad, c, clen);
    memcpy(bad + clen, "junk", 4);
    ck_assert_int_eq(tri__decompress(encs[i], bad, clen + 4, 1 << 20, &b),
                     TRI_INTERNAL);
    ck_assert_ptr_null(b);
    tri__free(bad);

    ck_assert_int_eq(tri__decompress(encs[i], junk, sizeof(junk) - 1,
                                     1 << 20, &b),
                     TRI_INTERNAL);
    tri__free(c);
  }

  /* gzip vs deflate framing are not interchangeable. */
  {
    uint8_t *c;
    size_t clen;
    tri_buf *b = NULL;

    ck_assert_int_eq(tri__compress(TRI__ENC_GZIP, text, 10, &c, &clen),
                     TRI_OK);
    ck_assert_int_eq(tri__decompress(TRI__ENC_DEFLATE, c, clen, 100, &b),
                     TRI_INTERNAL);
    ck_assert_ptr_null(b);
    tri__free(c);
  }
}
END_TEST

/* RFC 1952: a gzip body may hold several members back to back. */
START_TEST(test_gzip_members) {
  uint8_t *a, *c, *both;
  size_t alen, clen;
  tri_buf *b = NULL;

  ck_assert_int_eq(tri__compress(TRI__ENC_GZIP, (const uint8_t *)"abc", 3, &a,
                                 &alen),
                   TRI_OK);
  ck_assert_int_eq(tri__compress(TRI__ENC_GZIP, (const uint8_t *)"defg", 4,
                                 &c, &clen),
                   TRI_OK);
  both = tri__malloc(alen + clen);
  ck_assert_ptr_nonnull(both);
  memcpy(both, a, alen);
  memcpy(both + alen, c, clen);
  ck_assert_int_eq(tri__decompress(TRI__ENC_GZIP, both, alen + clen, 100, &b),
                   TRI_OK);
  ck_assert_uint_eq(tri_buf_len(b), 7);
  ck_assert_mem_eq(tri_buf_data(b), "abcdefg", 7);
  tri_buf_free(b);
  tri__free(both);
  tri__free(a);
  tri__free(c);
}
END_TEST

START_TEST(test_unknown_enc) {
  uint8_t *c = NULL;
  size_t clen;
  tri_buf *b = NULL;

  ck_assert_int_eq(tri__compress(TRI__ENC_UNKNOWN, (const uint8_t *)"x", 1,
                                 &c, &clen),
                   TRI_UNIMPLEMENTED);
  ck_assert_int_eq(tri__compress(7, (const uint8_t *)"x", 1, &c, &clen),
                   TRI_UNIMPLEMENTED);
  ck_assert_ptr_null(c);
  ck_assert_int_eq(tri__decompress(TRI__ENC_UNKNOWN, (const uint8_t *)"x", 1,
                                   100, &b),
                   TRI_UNIMPLEMENTED);
  ck_assert_int_eq(tri__decompress(3, (const uint8_t *)"x", 1, 100, &b),
                   TRI_UNIMPLEMENTED);
  ck_assert_ptr_null(b);
  ck_assert_ptr_null(tri__enc_name(TRI__ENC_UNKNOWN));
}
END_TEST

static Suite *compress_suite(void) {
  Suite *s = suite_create("compress");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_in_list);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_exact_limit);
  tcase_add_test(tc, test_zip_bomb);
  tcase_add_test(tc, test_corrupt_truncated);
  tcase_add_test(tc, test_gzip_members);
  tcase_add_test(tc, test_unknown_enc);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(compress_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
