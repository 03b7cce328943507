/* Unit tests for lib/headers.c: metadata rules, base64, grpc-timeout and
 * grpc-message encodings (doc/PROTOCOL.md 2.7, 2.8, 2.12-2.15, 4.5). */
#include "tri_int.h"

#include <check.h>
#include <stdlib.h>

#include "headers.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- metadata ---- */

START_TEST(test_md_add_find_get) {
  tri_metadata *md = tri_metadata_new();
  const char *k;
  const void *v;
  size_t len = 0;
  static const uint8_t bin[] = {0x00, 0xFF, 0x2C, 0x0A};

  ck_assert_ptr_nonnull(md);
  ck_assert_uint_eq(tri_metadata_count(md), 0);
  ck_assert_int_eq(tri_metadata_add_str(md, "x-trace", "one"), TRI_OK);
  ck_assert_int_eq(tri_metadata_add_str(md, "other", "o"), TRI_OK);
  ck_assert_int_eq(tri_metadata_add_str(md, "x-trace", "two"), TRI_OK);
  ck_assert_int_eq(tri_metadata_add(md, "blob-bin", bin, sizeof(bin)), TRI_OK);
  ck_assert_int_eq(tri_metadata_add(md, "empty", NULL, 0), TRI_OK);
  ck_assert_int_eq(tri_metadata_add_str(md, "a.b_c-9", " ~ok~ "), TRI_OK);
  ck_assert_uint_eq(tri_metadata_count(md), 6);

  /* Duplicates stay, in order (2.13); find gives the first. */
  v = tri_metadata_find(md, "x-trace", &len);
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(len, 3);
  ck_assert_str_eq(v, "one");
  ck_assert_int_eq(tri_metadata_get(md, 2, &k, &v, &len), TRI_OK);
  ck_assert_str_eq(k, "x-trace");
  ck_assert_str_eq(v, "two");
  ck_assert_uint_eq(len, 3);

  v = tri_metadata_find(md, "blob-bin", &len);
  ck_assert_uint_eq(len, sizeof(bin));
  ck_assert_mem_eq(v, bin, sizeof(bin));
  ck_assert_uint_eq(((const uint8_t *)v)[len], 0);

  v = tri_metadata_find(md, "empty", &len);
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(len, 0);
  ck_assert_str_eq(v, "");

  ck_assert_ptr_null(tri_metadata_find(md, "missing", NULL));
  ck_assert_ptr_null(tri_metadata_find(md, "X-TRACE", NULL));
  ck_assert_int_eq(tri_metadata_get(md, 6, &k, &v, &len), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_get(NULL, 0, &k, &v, &len), TRI_EINVAL);
  ck_assert_uint_eq(tri_metadata_count(NULL), 0);
  ck_assert_ptr_null(tri_metadata_find(NULL, "x", NULL));
  tri_metadata_free(md);
  tri_metadata_free(NULL);
}
END_TEST

START_TEST(test_md_invalid) {
  tri_metadata *md = tri_metadata_new();
  static const char *const bad_keys[] = {
      "",         "Upper",  "x-Trace", "grpc-foo", "grpc-status",
      "has space", "colon:", ":path",   "tab\t",    "\xc3\xa9"};
  size_t i;

  ck_assert_ptr_nonnull(md);
  for (i = 0; i < TRI__ARRAY_LEN(bad_keys); i++)
    ck_assert_msg(tri_metadata_add_str(md, bad_keys[i], "v") == TRI_EINVAL,
                  "key \"%s\" accepted", bad_keys[i]);
  /* ASCII values: 0x20..0x7E only; -bin values are raw. */
  ck_assert_int_eq(tri_metadata_add_str(md, "k", "line\nbreak"), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add_str(md, "k", "caf\xc3\xa9"), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add(md, "k", "a\0b", 3), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add(md, "k", "\x7f", 1), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add(md, "k-bin", "a\0b\n", 4), TRI_OK);
  ck_assert_int_eq(tri_metadata_add(md, "k", NULL, 1), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add_str(md, NULL, "v"), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add_str(md, "k", NULL), TRI_EINVAL);
  ck_assert_int_eq(tri_metadata_add_str(NULL, "k", "v"), TRI_EINVAL);
  /* Failed adds left the list unchanged. */
  ck_assert_uint_eq(tri_metadata_count(md), 1);
  /* "grpc" alone and "grpcx-" are not the reserved prefix. */
  ck_assert_int_eq(tri_metadata_add_str(md, "grpc", "v"), TRI_OK);
  ck_assert_int_eq(tri_metadata_add_str(md, "grpcx-y", "v"), TRI_OK);
  tri_metadata_free(md);
}
END_TEST

START_TEST(test_md_rules) {
  ck_assert(tri__md_key_valid(S("a")));
  ck_assert(tri__md_key_valid(S("0-9a-z_.-")));
  ck_assert(!tri__md_key_valid(S("")));
  ck_assert(!tri__md_key_valid(NULL, 0));
  ck_assert(!tri__md_key_valid(S("grpc-x")));
  ck_assert(!tri__md_key_valid("a\0b", 3));

  ck_assert(tri__md_ascii_value_valid((const uint8_t *)" ~", 2));
  ck_assert(tri__md_ascii_value_valid((const uint8_t *)"", 0));
  ck_assert(!tri__md_ascii_value_valid((const uint8_t *)"\x1f", 1));

  ck_assert(tri__md_key_is_bin(S("x-bin")));
  ck_assert(tri__md_key_is_bin(S("-bin")));
  ck_assert(!tri__md_key_is_bin(S("bin")));
  ck_assert(!tri__md_key_is_bin(S("x-binary")));

  ck_assert(tri__md_is_reserved(S(":path")));
  ck_assert(tri__md_is_reserved(S(":authority")));
  ck_assert(tri__md_is_reserved(S("content-type")));
  ck_assert(tri__md_is_reserved(S("user-agent")));
  ck_assert(tri__md_is_reserved(S("te")));
  ck_assert(tri__md_is_reserved(S("grpc-encoding")));
  ck_assert(tri__md_is_reserved(S("grpc-accept-encoding")));
  ck_assert(tri__md_is_reserved(S("grpc-message")));
  ck_assert(tri__md_is_reserved(S("grpc-status")));
  ck_assert(tri__md_is_reserved(S("grpc-timeout")));
  ck_assert(tri__md_is_reserved(S("grpc-status-details-bin")));
  ck_assert(tri__md_is_reserved(S("grpc-message-type")));
  ck_assert(!tri__md_is_reserved(S("tri-service-group")));
  ck_assert(!tri__md_is_reserved(S("grpc-statu")));
  ck_assert(!tri__md_is_reserved(S("tee")));
  ck_assert(!tri__md_is_reserved(S("x-bin")));
}
END_TEST

START_TEST(test_md_append) {
  tri_metadata a, b;
  const char *k;
  const void *v;
  size_t len;

  tri__md_init(&a);
  tri__md_init(&b);
  ck_assert_int_eq(tri__md_add_raw(&a, S("k1"), (const uint8_t *)"v1", 2),
                   TRI_OK);
  ck_assert_int_eq(tri__md_add_raw(&b, S("k2"), (const uint8_t *)"v2", 2),
                   TRI_OK);
  ck_assert_int_eq(tri__md_add_raw(&b, S("k3"), NULL, 0), TRI_OK);
  ck_assert_int_eq(tri__md_append(&a, &b), TRI_OK);
  ck_assert_uint_eq(tri_metadata_count(&a), 3);
  ck_assert_int_eq(tri_metadata_get(&a, 1, &k, &v, &len), TRI_OK);
  ck_assert_str_eq(k, "k2");
  ck_assert_str_eq(v, "v2");
  ck_assert_int_eq(tri_metadata_get(&a, 2, &k, &v, &len), TRI_OK);
  ck_assert_str_eq(k, "k3");
  ck_assert_uint_eq(len, 0);
  ck_assert_uint_eq(tri_metadata_count(&b), 2);
  tri__md_cleanup(&a);
  tri__md_cleanup(&b);
  ck_assert_uint_eq(tri_metadata_count(&a), 0);
}
END_TEST

/* 2.12, 2.13: -bin values split on ',' then base64-decoded (padded or
 * not); undecodable pieces are skipped; other keys are kept verbatim. */
START_TEST(test_md_add_wire) {
  tri_metadata md;
  const char *k;
  const void *v;
  size_t len;
  /* "AQI" = {1,2}, "AAE=" = {0,1}, "!!" invalid, "" = empty, " YQ" = "a" */
  static const char wire[] = "AQI,AAE=,!!,, YQ";

  tri__md_init(&md);
  ck_assert_int_eq(tri__md_add_wire(&md, S("d-bin"), (const uint8_t *)wire,
                                    sizeof(wire) - 1),
                   TRI_OK);
  ck_assert_uint_eq(tri_metadata_count(&md), 4);
  ck_assert_int_eq(tri_metadata_get(&md, 0, &k, &v, &len), TRI_OK);
  ck_assert_str_eq(k, "d-bin");
  ck_assert_uint_eq(len, 2);
  ck_assert_mem_eq(v, "\x01\x02", 2);
  ck_assert_int_eq(tri_metadata_get(&md, 1, &k, &v, &len), TRI_OK);
  ck_assert_uint_eq(len, 2);
  ck_assert_mem_eq(v, "\x00\x01", 2);
  ck_assert_int_eq(tri_metadata_get(&md, 2, &k, &v, &len), TRI_OK);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(tri_metadata_get(&md, 3, &k, &v, &len), TRI_OK);
  ck_assert_uint_eq(len, 1);
  ck_assert_mem_eq(v, "a", 1);

  /* Not -bin: kept as is, commas included. */
  ck_assert_int_eq(tri__md_add_wire(&md, S("plain"), (const uint8_t *)"a,b",
                                    3),
                   TRI_OK);
  v = tri_metadata_find(&md, "plain", &len);
  ck_assert_uint_eq(len, 3);
  ck_assert_str_eq(v, "a,b");

  /* Only invalid pieces: nothing added, no failure. */
  ck_assert_int_eq(tri__md_add_wire(&md, S("e-bin"), (const uint8_t *)"*", 1),
                   TRI_OK);
  ck_assert_ptr_null(tri_metadata_find(&md, "e-bin", NULL));
  ck_assert_uint_eq(tri_metadata_count(&md), 5);
  tri__md_cleanup(&md);
}
END_TEST

/* ---- base64 ---- */

START_TEST(test_b64_round_trip) {
  uint8_t in[64], dec[64 + 3];
  char enc[128], padded[128];
  size_t n, i, elen, dlen;

  for (i = 0; i < sizeof(in); i++)
    in[i] = (uint8_t)(i * 37 + 251);
  for (n = 0; n <= 64; n++) {
    elen = tri__b64_encode(in, n, enc);
    ck_assert_uint_eq(elen, tri__b64_encoded_len(n));
    ck_assert_uint_eq(elen, (n * 4 + 2) / 3); /* unpadded length */
    for (i = 0; i < elen; i++)
      ck_assert_int_ne(enc[i], '=');
    ck_assert_int_eq(tri__b64_decode(enc, elen, dec, &dlen), 0);
    ck_assert_uint_eq(dlen, n);
    ck_assert_mem_eq(dec, in, n);

    /* The padded form decodes the same. */
    memcpy(padded, enc, elen);
    while (elen % 4 != 0)
      padded[elen++] = '=';
    ck_assert_int_eq(tri__b64_decode(padded, elen, dec, &dlen), 0);
    ck_assert_uint_eq(dlen, n);
    ck_assert_mem_eq(dec, in, n);
  }
}
END_TEST

START_TEST(test_b64_known) {
  uint8_t out[16];
  char enc[16];
  size_t len;

  ck_assert_uint_eq(tri__b64_encode((const uint8_t *)"foobar", 6, enc), 8);
  ck_assert_mem_eq(enc, "Zm9vYmFy", 8);
  ck_assert_uint_eq(tri__b64_encode((const uint8_t *)"fo", 2, enc), 3);
  ck_assert_mem_eq(enc, "Zm8", 3);
  ck_assert_uint_eq(tri__b64_encode((const uint8_t *)"\xfb\xff", 2, enc), 3);
  ck_assert_mem_eq(enc, "+/8", 3);
  ck_assert_int_eq(tri__b64_decode(S("Zm9vYg=="), out, &len), 0);
  ck_assert_uint_eq(len, 4);
  ck_assert_mem_eq(out, "foob", 4);
  ck_assert_int_eq(tri__b64_decode(S("Zm9vYmE="), out, &len), 0);
  ck_assert_uint_eq(len, 5);
  ck_assert_int_eq(tri__b64_decode("", 0, out, &len), 0);
  ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(test_b64_invalid) {
  static const char *const bad[] = {
      "Z",        /* 1 char left over */
      "Zm9vY",    /* 5 chars */
      "Zm9v!",    /* bad char */
      "Zm-v",     /* url-safe alphabet is not ours */
      "Zm_v",     "Zm 9v", "Zm9\n", "Zg=",  /* padded but not x4 */
      "Zg===",    "Z===",  "====",  "=",    "Zm=v", /* '=' inside */
      "Zm9=Zm9v", /* padding in the middle */
      "Zm9vY===", /* 3 pads */
      "Zm9vYmFy=", /* 9 chars */
  };
  uint8_t out[32];
  size_t i, len;

  for (i = 0; i < TRI__ARRAY_LEN(bad); i++)
    ck_assert_msg(tri__b64_decode(bad[i], strlen(bad[i]), out, &len) == -1,
                  "\"%s\" accepted", bad[i]);
}
END_TEST

/* ---- grpc-timeout (2.7, 2.8) ---- */

static void check_encode(int64_t ns, const char *want) {
  char out[16];
  size_t n = tri__timeout_encode(ns, out);

  ck_assert_str_eq(out, want);
  ck_assert_uint_eq(n, strlen(want));
}

START_TEST(test_timeout_encode) {
  check_encode(1, "1n");
  check_encode(99999999, "99999999n");
  check_encode(100000000, "100000u");
  check_encode(100000001, "100001u"); /* rounds up */
  check_encode(INT64_C(1000000), "1000000n"); /* 1 ms fits 8 digits in ns */
  check_encode(INT64_C(1000000000), "1000000u"); /* 1 s */
  check_encode(INT64_C(99999999000), "99999999u");
  check_encode(INT64_C(99999999001), "100000m");
  check_encode(INT64_C(100000000000000), "100000S"); /* 1e5 s */
  check_encode(INT64_C(100000000000001), "100001S");
  check_encode(INT64_C(99999999000000000), "99999999S");
  check_encode(INT64_C(99999999000000001), "1666667M"); /* rounds up */
  check_encode(INT64_C(6000000000000000000), "1666667H");
  check_encode(INT64_MAX, "2562048H"); /* huge -> hours, rounded up */
}
END_TEST

/* Encoding never sends less than asked and always parses back. */
START_TEST(test_timeout_encode_round_up) {
  int64_t ns = 1;
  char out[16];

  while (ns < INT64_MAX / 3) {
    size_t n = tri__timeout_encode(ns, out);
    int64_t back;

    ck_assert_uint_le(n, 9);
    ck_assert_int_eq(tri__timeout_parse(out, n, &back), 0);
    ck_assert_int_ge(back, ns);
    ns = ns * 3 + 1;
  }
}
END_TEST

START_TEST(test_timeout_parse) {
  int64_t ns;

  ck_assert_int_eq(tri__timeout_parse(S("1n"), &ns), 0);
  ck_assert_int_eq(ns, 1);
  ck_assert_int_eq(tri__timeout_parse(S("5u"), &ns), 0);
  ck_assert_int_eq(ns, 5000);
  ck_assert_int_eq(tri__timeout_parse(S("7m"), &ns), 0);
  ck_assert_int_eq(ns, INT64_C(7000000));
  ck_assert_int_eq(tri__timeout_parse(S("2S"), &ns), 0);
  ck_assert_int_eq(ns, INT64_C(2000000000));
  ck_assert_int_eq(tri__timeout_parse(S("3M"), &ns), 0);
  ck_assert_int_eq(ns, INT64_C(180000000000));
  ck_assert_int_eq(tri__timeout_parse(S("1H"), &ns), 0);
  ck_assert_int_eq(ns, INT64_C(3600000000000));
  ck_assert_int_eq(tri__timeout_parse(S("00000010S"), &ns), 0);
  ck_assert_int_eq(ns, INT64_C(10000000000));
  /* 99999999 hours overflows int64 nanoseconds: saturate. */
  ck_assert_int_eq(tri__timeout_parse(S("99999999H"), &ns), 0);
  ck_assert_int_eq(ns, INT64_MAX);
}
END_TEST

START_TEST(test_timeout_parse_bad) {
  static const char *const bad[] = {
      "",     "S",    "1",         "123456789S", /* 9 digits */
      "1s",   "1h",   "1x",        "1 S",  " 1S", "1S ",
      "+1S",  "-1S",  "1.5S",      "0x1S", "1SS", "S1",
  };
  int64_t ns = 42;
  size_t i;

  for (i = 0; i < TRI__ARRAY_LEN(bad); i++)
    ck_assert_msg(tri__timeout_parse(bad[i], strlen(bad[i]), &ns) == -1,
                  "\"%s\" accepted", bad[i]);
  ck_assert_int_eq(ns, 42); /* untouched on failure */
  ck_assert_int_eq(tri__timeout_parse(NULL, 0, &ns), -1);
}
END_TEST

/* ---- grpc-message (4.5) ---- */

START_TEST(test_pct_round_trip) {
  /* interop special_status_message: tab, CR, LF, space, U+263A, U+1F608 */
  static const char msg[] = "\t\r\n \xe2\x98\xba \xf0\x9f\x98\x88 %";
  static const char want[] =
      "%09%0D%0A %E2%98%BA %F0%9F%98%88 %25";
  size_t elen = 0;
  char *enc = tri__pct_encode(msg, sizeof(msg) - 1, &elen);
  char *dec;

  ck_assert_ptr_nonnull(enc);
  ck_assert_str_eq(enc, want);
  ck_assert_uint_eq(elen, sizeof(want) - 1);
  dec = tri__pct_decode(enc, elen);
  ck_assert_ptr_nonnull(dec);
  ck_assert_str_eq(dec, msg);
  tri__free(enc);
  tri__free(dec);

  /* Printable ASCII passes unchanged; NUL and DEL are escaped. */
  enc = tri__pct_encode("a~ b\0\x7f", 6, NULL);
  ck_assert_str_eq(enc, "a~ b%00%7F");
  tri__free(enc);
  enc = tri__pct_encode("", 0, &elen);
  ck_assert_str_eq(enc, "");
  ck_assert_uint_eq(elen, 0);
  tri__free(enc);
}
END_TEST

START_TEST(test_pct_decode_lenient) {
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"%zz", "%zz"},     {"abc%", "abc%"},   {"%4", "%4"},
      {"%41%", "A%"},     {"%e2%98%ba", "\xe2\x98\xba"},
      {"100%", "100%"},   {"%%41", "%A"},     {"%g1x", "%g1x"},
      {"plain", "plain"}, {"", ""},
  };
  size_t i;

  for (i = 0; i < TRI__ARRAY_LEN(cases); i++) {
    char *d = tri__pct_decode(cases[i].in, strlen(cases[i].in));

    ck_assert_ptr_nonnull(d);
    ck_assert_msg(strcmp(d, cases[i].want) == 0, "\"%s\" -> \"%s\"",
                  cases[i].in, d);
    tri__free(d);
  }
}
END_TEST

static Suite *headers_suite(void) {
  Suite *s = suite_create("headers");
  TCase *tc;

  tc = tcase_create("metadata");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_md_add_find_get);
  tcase_add_test(tc, test_md_invalid);
  tcase_add_test(tc, test_md_rules);
  tcase_add_test(tc, test_md_append);
  tcase_add_test(tc, test_md_add_wire);
  suite_add_tcase(s, tc);

  tc = tcase_create("base64");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_b64_round_trip);
  tcase_add_test(tc, test_b64_known);
  tcase_add_test(tc, test_b64_invalid);
  suite_add_tcase(s, tc);

  tc = tcase_create("timeout");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_timeout_encode);
  tcase_add_test(tc, test_timeout_encode_round_up);
  tcase_add_test(tc, test_timeout_parse);
  tcase_add_test(tc, test_timeout_parse_bad);
  suite_add_tcase(s, tc);

  tc = tcase_create("message");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_pct_round_trip);
  tcase_add_test(tc, test_pct_decode_lenient);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(headers_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
