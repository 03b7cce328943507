/* Unit tests for lib/status.c: code texts and names, HTTP status and
 * RST_STREAM mappings (doc/PROTOCOL.md 5.1, 6.1, 10). */
#include "tri_int.h"

#include <check.h>
#include <limits.h>
#include <stdlib.h>

#include "status.h"

#define S(lit) (lit), (sizeof(lit) - 1)

START_TEST(test_code_is_wire) {
  int c;

  for (c = 0; c <= 16; c++)
    ck_assert(tri__code_is_wire(c));
  ck_assert(!tri__code_is_wire(-1));
  ck_assert(!tri__code_is_wire(17));
  ck_assert(!tri__code_is_wire(TRI_ENOMEM));
  ck_assert(!tri__code_is_wire(INT_MAX));
  ck_assert(!tri__code_is_wire(INT_MIN));
}
END_TEST

/* 5.1 table. */
START_TEST(test_from_http) {
  static const struct {
    int http, code;
  } map[] = {
      {400, TRI_INTERNAL},        {401, TRI_UNAUTHENTICATED},
      {403, TRI_PERMISSION_DENIED}, {404, TRI_UNIMPLEMENTED},
      {429, TRI_UNAVAILABLE},     {431, TRI_INTERNAL},
      {502, TRI_UNAVAILABLE},     {503, TRI_UNAVAILABLE},
      {504, TRI_UNAVAILABLE},     {200, TRI_UNKNOWN},
      {201, TRI_UNKNOWN},         {302, TRI_UNKNOWN},
      {405, TRI_UNKNOWN},         {415, TRI_UNKNOWN},
      {500, TRI_UNKNOWN},         {505, TRI_UNKNOWN},
      {0, TRI_UNKNOWN},           {-1, TRI_UNKNOWN},
      {999, TRI_UNKNOWN},
  };
  size_t i;

  for (i = 0; i < TRI__ARRAY_LEN(map); i++)
    ck_assert_msg(tri__status_from_http(map[i].http) == map[i].code,
                  "HTTP %d -> %d, want %d", map[i].http,
                  tri__status_from_http(map[i].http), map[i].code);
}
END_TEST

/* 6.1 table. */
START_TEST(test_from_rst) {
  static const struct {
    uint32_t h2;
    int code;
  } map[] = {
      {0x0, TRI_INTERNAL},  /* NO_ERROR without trailers */
      {0x1, TRI_INTERNAL},  /* PROTOCOL_ERROR */
      {0x2, TRI_INTERNAL},  /* INTERNAL_ERROR */
      {0x3, TRI_INTERNAL},  /* FLOW_CONTROL_ERROR */
      {0x4, TRI_INTERNAL},  /* SETTINGS_TIMEOUT */
      {0x6, TRI_INTERNAL},  /* FRAME_SIZE_ERROR */
      {0x7, TRI_UNAVAILABLE}, /* REFUSED_STREAM */
      {0x8, TRI_CANCELLED},   /* CANCEL */
      {0x9, TRI_INTERNAL},    /* COMPRESSION_ERROR */
      {0xa, TRI_INTERNAL},    /* CONNECT_ERROR */
      {0xb, TRI_RESOURCE_EXHAUSTED}, /* ENHANCE_YOUR_CALM */
      {0xc, TRI_PERMISSION_DENIED},  /* INADEQUATE_SECURITY */
      {0xd, TRI_INTERNAL},           /* HTTP_1_1_REQUIRED / unknown */
      {0xFFFFFFFFu, TRI_INTERNAL},
  };
  size_t i;

  for (i = 0; i < TRI__ARRAY_LEN(map); i++)
    ck_assert_msg(tri__status_from_rst(map[i].h2) == map[i].code,
                  "RST %u -> %d, want %d", (unsigned)map[i].h2,
                  tri__status_from_rst(map[i].h2), map[i].code);
  /* STREAM_CLOSED has no stream to report to; whatever comes back must be
   * a wire status. */
  ck_assert(tri__code_is_wire(tri__status_from_rst(0x5)));
}
END_TEST

START_TEST(test_status_parse) {
  ck_assert_int_eq(tri__status_parse(S("0")), 0);
  ck_assert_int_eq(tri__status_parse(S("1")), 1);
  ck_assert_int_eq(tri__status_parse(S("16")), 16);
  ck_assert_int_eq(tri__status_parse(S("17")), 17); /* dubbo-go biz, 10.2 */
  ck_assert_int_eq(tri__status_parse(S("123")), 123);
  ck_assert_int_eq(tri__status_parse(S("2147483647")), INT_MAX);
  ck_assert_int_eq(tri__status_parse("12", 1), 1); /* length respected */

  ck_assert_int_eq(tri__status_parse(S("")), -1);
  ck_assert_int_eq(tri__status_parse(NULL, 0), -1);
  ck_assert_int_eq(tri__status_parse(S("-1")), -1);
  ck_assert_int_eq(tri__status_parse(S("+1")), -1);
  ck_assert_int_eq(tri__status_parse(S(" 1")), -1);
  ck_assert_int_eq(tri__status_parse(S("1 ")), -1);
  ck_assert_int_eq(tri__status_parse(S("1a")), -1);
  ck_assert_int_eq(tri__status_parse(S("0x1")), -1);
  ck_assert_int_eq(tri__status_parse(S("2147483648")), -1);
  ck_assert_int_eq(tri__status_parse(S("99999999999999999999")), -1);
}
END_TEST

START_TEST(test_strerror_and_names) {
  static const struct {
    int code;
    const char *name;
  } all[] = {
#define ENTRY(name, val, text) {name, #name},
      TRI_CODE_MAP(ENTRY)
#undef ENTRY
  };
  size_t i, j;

  ck_assert_uint_eq(TRI__ARRAY_LEN(all), 24);
  for (i = 0; i < TRI__ARRAY_LEN(all); i++) {
    const char *t = tri_strerror(all[i].code);

    ck_assert_ptr_nonnull(t);
    ck_assert_uint_gt(strlen(t), 0);
    ck_assert_str_eq(tri_code_name(all[i].code), all[i].name);
    /* Texts are distinct, so they say something about the code. */
    for (j = 0; j < i; j++)
      ck_assert_str_ne(t, tri_strerror(all[j].code));
  }
  ck_assert_str_eq(tri_strerror(TRI_OK), "ok");
  ck_assert_str_eq(tri_strerror(TRI_CANCELLED), "cancelled");
  ck_assert_str_eq(tri_strerror(TRI_ENOMEM), "out of memory");
  ck_assert_str_eq(tri_code_name(TRI_DEADLINE_EXCEEDED),
                   "TRI_DEADLINE_EXCEEDED");
  ck_assert_str_eq(tri_code_name(TRI_ESYS), "TRI_ESYS");

  /* Unknown values: a generic text, never NULL. */
  {
    static const int unknown[] = {17, 100, -8, -100, INT_MAX, INT_MIN};

    for (i = 0; i < TRI__ARRAY_LEN(unknown); i++) {
      ck_assert_ptr_nonnull(tri_strerror(unknown[i]));
      ck_assert_uint_gt(strlen(tri_strerror(unknown[i])), 0);
      ck_assert_str_eq(tri_code_name(unknown[i]), "TRI_?");
    }
  }
}
END_TEST

START_TEST(test_version) {
  ck_assert_ptr_nonnull(tri_version());
  ck_assert_str_eq(tri_version(), PACKAGE_VERSION);
}
END_TEST

static Suite *status_suite(void) {
  Suite *s = suite_create("status");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_code_is_wire);
  tcase_add_test(tc, test_from_http);
  tcase_add_test(tc, test_from_rst);
  tcase_add_test(tc, test_status_parse);
  tcase_add_test(tc, test_strerror_and_names);
  tcase_add_test(tc, test_version);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(status_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
