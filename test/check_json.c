/* Unit tests for lib/json.c: the proto3 JSON mapping over protobuf-c
 * descriptors (doc/PROTOCOL.md "JSON mapping"). */
#include "tri_int.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "json.h"

#include "grpc/testing/empty.pb-c.h"
#include "grpc/testing/messages.pb-c.h"
#include "tri/jsontest/jsontest.pb-c.h"

#define ALL (&tri__jsontest__all__descriptor)

static char err[256];

#ifdef HAVE_JANSSON

/* JSON -> binary; asserts TRI_OK. */
static uint8_t *to_pb(const ProtobufCMessageDescriptor *d, const char *json,
                      size_t *n) {
  uint8_t *pb = NULL;
  int st = tri__json_to_pb(d, json, strlen(json), &pb, n, err, sizeof err);

  ck_assert_msg(st == TRI_OK, "json_to_pb(%s): %d %s", json, st, err);
  ck_assert_ptr_nonnull(pb);
  return pb;
}

/* JSON -> binary -> JSON equals |want|, and |want| -> the same binary. */
static void rt(const ProtobufCMessageDescriptor *d, const char *in,
               const char *want) {
  size_t n, n2, jl;
  uint8_t *pb = to_pb(d, in, &n), *pb2;
  char *js = NULL;
  int st = tri__pb_to_json(d, pb, n, &js, &jl, err, sizeof err);

  ck_assert_msg(st == TRI_OK, "pb_to_json(%s): %d %s", in, st, err);
  ck_assert_str_eq(js, want);
  ck_assert_uint_eq(jl, strlen(want));
  pb2 = to_pb(d, want, &n2);
  ck_assert_uint_eq(n, n2);
  ck_assert(memcmp(pb, pb2, n) == 0);
  free(pb);
  free(pb2);
  free(js);
}

/* JSON -> INVALID_ARGUMENT whose message contains |needle|. */
static void bad(const ProtobufCMessageDescriptor *d, const char *in,
                const char *needle) {
  uint8_t *pb = (uint8_t *)1;
  size_t n = 99;
  int st = tri__json_to_pb(d, in, strlen(in), &pb, &n, err, sizeof err);

  ck_assert_msg(st == TRI_INVALID_ARGUMENT, "%s: got %d (%s)", in, st, err);
  ck_assert_ptr_null(pb);
  ck_assert_uint_eq(n, 0);
  ck_assert_msg(strstr(err, needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
                in, err, needle);
}

static Tri__Jsontest__All *unpack_all(const char *json) {
  size_t n;
  uint8_t *pb = to_pb(ALL, json, &n);
  Tri__Jsontest__All *m = tri__jsontest__all__unpack(NULL, n, pb);

  free(pb);
  ck_assert_ptr_nonnull(m);
  return m;
}

/* The interop messages the issue names. */
START_TEST(test_interop_messages) {
  static const uint8_t want[] = {0x10, 0x08}; /* response_size = 8 */
  Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
  Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
  uint8_t zeros[8] = {0}, buf[64];
  size_t n, jl;
  uint8_t *pb = to_pb(&grpc__testing__simple_request__descriptor,
                      "{\"responseSize\":8}", &n);
  char *js;

  ck_assert_uint_eq(n, sizeof want);
  ck_assert(memcmp(pb, want, n) == 0);
  free(pb);
  /* the original proto name is accepted too */
  pb = to_pb(&grpc__testing__simple_request__descriptor,
             "{\"response_size\":8}", &n);
  ck_assert(n == 2 && memcmp(pb, want, n) == 0);
  free(pb);

  pl.body.data = zeros;
  pl.body.len = sizeof zeros;
  resp.payload = &pl;
  n = grpc__testing__simple_response__pack(&resp, buf);
  ck_assert_int_eq(tri__pb_to_json(&grpc__testing__simple_response__descriptor,
                                   buf, n, &js, &jl, err, sizeof err),
                   TRI_OK);
  ck_assert_str_eq(js, "{\"payload\":{\"body\":\"AAAAAAAAAAA=\"}}");
  free(js);
  rt(&grpc__testing__simple_response__descriptor,
     "{\"payload\":{\"body\":\"AAAAAAAAAAA=\"}}",
     "{\"payload\":{\"body\":\"AAAAAAAAAAA=\"}}");
  /* Empty: an empty object, and an empty body */
  rt(&grpc__testing__empty__descriptor, "{}", "{}");
  rt(&grpc__testing__empty__descriptor, "", "{}");
  rt(&grpc__testing__empty__descriptor, " \n", "{}");
}
END_TEST

START_TEST(test_scalars) {
  Tri__Jsontest__All *m;

  rt(ALL,
     "{\"fInt32\":-7,\"fInt64\":\"-9223372036854775808\",\"fUint32\":"
     "4294967295,\"fUint64\":\"18446744073709551615\",\"fSint32\":-2147483648,"
     "\"fSint64\":\"9223372036854775807\",\"fFixed32\":1,\"fFixed64\":\"2\","
     "\"fSfixed32\":-3,\"fSfixed64\":\"-4\",\"fFloat\":1.5,\"fDouble\":-2.25,"
     "\"fBool\":true,\"fString\":\"h\\u00e9llo \\\"q\\\"\",\"fBytes\":\"AQID\","
     "\"fEnum\":\"GREEN\",\"fMsg\":{\"a\":1,\"s\":\"x\",\"child\":{\"a\":2}}}",
     "{\"fInt32\":-7,\"fInt64\":\"-9223372036854775808\",\"fUint32\":"
     "4294967295,\"fUint64\":\"18446744073709551615\",\"fSint32\":-2147483648,"
     "\"fSint64\":\"9223372036854775807\",\"fFixed32\":1,\"fFixed64\":\"2\","
     "\"fSfixed32\":-3,\"fSfixed64\":\"-4\",\"fFloat\":1.5,\"fDouble\":-2.25,"
     "\"fBool\":true,\"fString\":\"h\xc3\xa9llo \\\"q\\\"\",\"fBytes\":\"AQID\","
     "\"fEnum\":\"GREEN\",\"fMsg\":{\"a\":1,\"s\":\"x\",\"child\":{\"a\":2}}}");
  m = unpack_all("{\"fInt64\":\"-9223372036854775808\",\"f_uint64\":"
                 "\"18446744073709551615\",\"fBytes\":\"AQID\",\"fEnum\":"
                 "\"BLUE\",\"fString\":\"\\u0001\"}");
  ck_assert(m->f_int64 == INT64_MIN);
  ck_assert(m->f_uint64 == UINT64_MAX);
  ck_assert_uint_eq(m->f_bytes.len, 3);
  ck_assert(memcmp(m->f_bytes.data, "\1\2\3", 3) == 0);
  ck_assert_int_eq(m->f_enum, TRI__JSONTEST__COLOR__BLUE);
  ck_assert_str_eq(m->f_string, "\001");
  tri__jsontest__all__free_unpacked(m, NULL);
  /* defaults are omitted */
  rt(ALL,
     "{\"fInt32\":0,\"fInt64\":\"0\",\"fString\":\"\",\"fBytes\":\"\","
     "\"fBool\":false,\"fEnum\":\"COLOR_UNSPECIFIED\",\"fDouble\":0,"
     "\"fMsg\":null}",
     "{}");
  /* an empty sub-message is present */
  rt(ALL, "{\"fMsg\":{}}", "{\"fMsg\":{}}");
}
END_TEST

START_TEST(test_lenient_input) {
  Tri__Jsontest__All *m;

  /* 64-bit as numbers, 32-bit as strings, exponent forms */
  m = unpack_all("{\"fInt64\":-5,\"fUint64\":12,\"fInt32\":\"-3\",\"fUint32\":"
                 "\"7\",\"fFixed32\":1e3,\"fSint32\":\"2e1\",\"fDouble\":\"1.5\","
                 "\"fFloat\":\"-Infinity\",\"fEnum\":2,\"fSfixed64\":3.0}");
  ck_assert(m->f_int64 == -5 && m->f_uint64 == 12 && m->f_int32 == -3 &&
            m->f_uint32 == 7 && m->f_fixed32 == 1000 && m->f_sint32 == 20 &&
            m->f_double == 1.5 && isinf(m->f_float) && m->f_float < 0 &&
            m->f_enum == TRI__JSONTEST__COLOR__GREEN && m->f_sfixed64 == 3);
  tri__jsontest__all__free_unpacked(m, NULL);
  /* URL-safe and unpadded base64 */
  m = unpack_all("{\"fBytes\":\"-_8\",\"rBytes\":[\"+/8=\",\"AA\"]}");
  ck_assert_uint_eq(m->f_bytes.len, 2);
  ck_assert(m->f_bytes.data[0] == 0xfb && m->f_bytes.data[1] == 0xff);
  ck_assert_uint_eq(m->n_r_bytes, 2);
  ck_assert(m->r_bytes[0].len == 2 && m->r_bytes[0].data[0] == 0xfb);
  ck_assert(m->r_bytes[1].len == 1 && m->r_bytes[1].data[0] == 0);
  tri__jsontest__all__free_unpacked(m, NULL);
  /* unknown enum numbers are kept (open enums) and printed as numbers */
  rt(ALL, "{\"fEnum\":42,\"rEnum\":[\"RED\",7,-1]}",
     "{\"fEnum\":42,\"rEnum\":[\"RED\",7,\"BLUE\"]}");
  /* Triple's array form of a request body */
  rt(&grpc__testing__simple_request__descriptor,
     " [ {\"responseSize\":8} ] ", "{\"responseSize\":8}");
}
END_TEST

START_TEST(test_floats) {
  Tri__Jsontest__All *m;

  rt(ALL, "{\"fDouble\":\"NaN\",\"fFloat\":\"Infinity\"}",
     "{\"fFloat\":\"Infinity\",\"fDouble\":\"NaN\"}");
  rt(ALL, "{\"rDouble\":[\"-Infinity\",1e300,-0.5],\"rFloat\":[0.25,\"NaN\"]}",
     "{\"rDouble\":[\"-Infinity\",1.0000000000000001e300,-0.5],"
     "\"rFloat\":[0.25,\"NaN\"]}");
  m = unpack_all("{\"fDouble\":0.1,\"fFloat\":0.1}");
  ck_assert(m->f_double == 0.1);
  ck_assert(m->f_float == 0.1f);
  tri__jsontest__all__free_unpacked(m, NULL);
  rt(ALL, "{\"fDouble\":0.1}", "{\"fDouble\":0.10000000000000001}");
}
END_TEST

START_TEST(test_repeated_and_maps) {
  rt(ALL,
     "{\"rInt32\":[1,-2],\"rInt64\":[\"3\",-4],\"rUint64\":[\"5\"],"
     "\"rBool\":[true,false],\"rString\":[\"a\",\"\"],\"rMsg\":[{\"a\":1},{}],"
     "\"rSint32\":[-1],\"rFixed64\":[\"18446744073709551615\"]}",
     "{\"rInt32\":[1,-2],\"rInt64\":[\"3\",\"-4\"],\"rUint64\":[\"5\"],"
     "\"rBool\":[true,false],\"rString\":[\"a\",\"\"],"
     "\"rMsg\":[{\"a\":1},{}],\"rSint32\":[-1],"
     "\"rFixed64\":[\"18446744073709551615\"]}");
  rt(ALL, "{\"rInt32\":[],\"rMsg\":null}", "{}");
  rt(ALL,
     "{\"mStrInt\":{\"a\":1,\"b\":0},\"mIntStr\":{\"-1\":\"x\",\"7\":\"\"},"
     "\"mI64Msg\":{\"9007199254740993\":{\"a\":3},\"0\":{}},"
     "\"mBoolBool\":{\"true\":false,\"false\":true},"
     "\"mU32Enum\":{\"4294967295\":\"RED\"},\"mStrBytes\":{\"k\":\"AAE=\"}}",
     "{\"mStrInt\":{\"a\":1,\"b\":0},\"mIntStr\":{\"-1\":\"x\",\"7\":\"\"},"
     "\"mI64Msg\":{\"9007199254740993\":{\"a\":3},\"0\":{}},"
     "\"mBoolBool\":{\"true\":false,\"false\":true},"
     "\"mU32Enum\":{\"4294967295\":\"RED\"},\"mStrBytes\":{\"k\":\"AAE=\"}}");
  {
    Tri__Jsontest__All *m = unpack_all("{\"m_i64_msg\":{\"-5\":{\"s\":\"v\"}}}");

    ck_assert_uint_eq(m->n_m_i64_msg, 1);
    ck_assert(m->m_i64_msg[0]->key == -5);
    ck_assert_str_eq(m->m_i64_msg[0]->value->s, "v");
    tri__jsontest__all__free_unpacked(m, NULL);
  }
}
END_TEST

START_TEST(test_oneof) {
  Tri__Jsontest__All *m;

  rt(ALL, "{\"oString\":\"\"}", "{\"oString\":\"\"}"); /* set, though "" */
  rt(ALL, "{\"oInt32\":0}", "{\"oInt32\":0}");
  rt(ALL, "{\"oMsg\":{}}", "{\"oMsg\":{}}");
  m = unpack_all("{\"o_int32\":5}");
  ck_assert_int_eq(m->choice_case, TRI__JSONTEST__ALL__CHOICE_O_INT32);
  ck_assert_int_eq(m->o_int32, 5);
  tri__jsontest__all__free_unpacked(m, NULL);
  /* null leaves the oneof unset, so another member may follow */
  rt(ALL, "{\"oString\":null,\"oInt32\":3}", "{\"oInt32\":3}");
  bad(ALL, "{\"oString\":\"a\",\"oInt32\":3}", "oneof");
}
END_TEST

START_TEST(test_wkt_time) {
  Tri__Jsontest__All *m;

  rt(ALL,
     "{\"tTs\":\"1972-01-01T10:00:20.021Z\",\"tDur\":\"1.5s\","
     "\"rTs\":[\"1970-01-01T00:00:00Z\",\"0001-01-01T00:00:00Z\","
     "\"9999-12-31T23:59:59.999999999Z\",\"2000-02-29T12:00:00.000001Z\","
     "\"1969-12-31T23:59:59.5Z\"]}",
     "{\"tTs\":\"1972-01-01T10:00:20.021Z\",\"tDur\":\"1.500s\","
     "\"rTs\":[\"1970-01-01T00:00:00Z\",\"0001-01-01T00:00:00Z\","
     "\"9999-12-31T23:59:59.999999999Z\",\"2000-02-29T12:00:00.000001Z\","
     "\"1969-12-31T23:59:59.500Z\"]}");
  m = unpack_all("{\"tTs\":\"1972-01-01T10:00:20.021+01:30\",\"tDur\":"
                 "\"-0.000000001s\"}");
  ck_assert(m->t_ts->seconds == 63108020 - 5400);
  ck_assert_int_eq(m->t_ts->nanos, 21000000);
  ck_assert(m->t_dur->seconds == 0);
  ck_assert_int_eq(m->t_dur->nanos, -1);
  tri__jsontest__all__free_unpacked(m, NULL);
  m = unpack_all("{\"tTs\":\"1969-12-31T23:59:59.5Z\"}");
  ck_assert(m->t_ts->seconds == -1 && m->t_ts->nanos == 500000000);
  tri__jsontest__all__free_unpacked(m, NULL);
  rt(ALL, "{\"tDur\":\"-1.000000010s\"}", "{\"tDur\":\"-1.000000010s\"}");
  rt(ALL, "{\"tDur\":\"0s\"}", "{\"tDur\":\"0s\"}");
  rt(ALL, "{\"tDur\":\"315576000000s\"}", "{\"tDur\":\"315576000000s\"}");
  bad(ALL, "{\"tTs\":\"1972-01-01 10:00:20Z\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":\"1972-02-30T00:00:00Z\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":\"1971-02-29T00:00:00Z\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":\"0000-12-31T00:00:00Z\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":\"1972-01-01T10:00:20.0000000001Z\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":\"1972-01-01T10:00:20\"}", "RFC 3339");
  bad(ALL, "{\"tTs\":12}", "expected a string");
  bad(ALL, "{\"tDur\":\"1.5\"}", "duration");
  bad(ALL, "{\"tDur\":\"315576000001s\"}", "duration");
  bad(ALL, "{\"tDur\":\"s\"}", "duration");
}
END_TEST

START_TEST(test_wkt_time_out_of_range_binary) {
  Tri__Jsontest__All m = TRI__JSONTEST__ALL__INIT;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  uint8_t buf[64];
  size_t n, jl;
  char *js = (char *)1;

  ts.seconds = 253402300800LL; /* 10000-01-01 */
  m.t_ts = &ts;
  n = tri__jsontest__all__pack(&m, buf);
  ck_assert_int_eq(tri__pb_to_json(ALL, buf, n, &js, &jl, err, sizeof err),
                   TRI_INTERNAL);
  ck_assert_ptr_null(js);
  ck_assert_ptr_nonnull(strstr(err, "out of range"));
}
END_TEST

START_TEST(test_wkt_wrappers) {
  Tri__Jsontest__All *m;

  rt(ALL,
     "{\"wInt32\":0,\"wInt64\":\"-1\",\"wUint32\":5,\"wUint64\":7,"
     "\"wFloat\":\"NaN\",\"wDouble\":2.5,\"wBool\":false,\"wString\":\"\","
     "\"wBytes\":\"AA==\",\"tEmpty\":{}}",
     "{\"tEmpty\":{},\"wInt32\":0,\"wInt64\":\"-1\",\"wUint32\":5,"
     "\"wUint64\":\"7\",\"wFloat\":\"NaN\",\"wDouble\":2.5,\"wBool\":false,"
     "\"wString\":\"\",\"wBytes\":\"AA==\"}");
  m = unpack_all("{\"wInt32\":0,\"wBool\":null}");
  ck_assert_ptr_nonnull(m->w_int32); /* present with its default */
  ck_assert_int_eq(m->w_int32->value, 0);
  ck_assert_ptr_null(m->w_bool); /* null: not set */
  tri__jsontest__all__free_unpacked(m, NULL);
  /* a wrapper as the top-level message is its bare value */
  rt(&google__protobuf__string_value__descriptor, "\"hi\"", "\"hi\"");
  rt(&google__protobuf__int64_value__descriptor, "5", "\"5\"");
  bad(ALL, "{\"wInt32\":{\"value\":1}}", "expected an integer");
  bad(ALL, "{\"tEmpty\":{\"x\":1}}", "unknown field \"x\"");
}
END_TEST

START_TEST(test_wkt_struct) {
  Tri__Jsontest__All *m;

  rt(ALL,
     "{\"tStruct\":{\"a\":1,\"b\":[true,null,\"s\",{\"c\":{}}],\"d\":null},"
     "\"tValue\":[1.5,{}],\"tList\":[],\"mStrValue\":{\"k\":null,\"l\":\"v\"},"
     "\"tNull\":null}",
     "{\"tStruct\":{\"a\":1.0,\"b\":[true,null,\"s\",{\"c\":{}}],\"d\":null},"
     "\"tValue\":[1.5,{}],\"tList\":[],\"mStrValue\":{\"k\":null,\"l\":\"v\"}}");
  m = unpack_all("{\"tValue\":null}");
  ck_assert_ptr_nonnull(m->t_value);
  ck_assert_int_eq(m->t_value->kind_case,
                   GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
  tri__jsontest__all__free_unpacked(m, NULL);
  rt(ALL, "{\"tValue\":null}", "{\"tValue\":null}");
  rt(ALL, "{\"tValue\":\"x\"}", "{\"tValue\":\"x\"}");
  rt(ALL, "{\"tStruct\":{}}", "{\"tStruct\":{}}");
  rt(&google__protobuf__value__descriptor, "[1,\"a\"]", "[1.0,\"a\"]");
  rt(&google__protobuf__list_value__descriptor, "[[],{}]", "[[],{}]");
  rt(ALL, "{\"tMask\":\"fooBar,a.bC\"}", "{\"tMask\":\"fooBar,a.bC\"}");
  m = unpack_all("{\"tMask\":\"fooBar,a.bC\"}");
  ck_assert_uint_eq(m->t_mask->n_paths, 2);
  ck_assert_str_eq(m->t_mask->paths[0], "foo_bar");
  ck_assert_str_eq(m->t_mask->paths[1], "a.b_c");
  tri__jsontest__all__free_unpacked(m, NULL);
  bad(ALL, "{\"tNull\":1}", "must be null"); /* fuzz_json found it */
  rt(ALL, "{\"tNull\":\"NULL_VALUE\"}", "{}");
  bad(ALL, "{\"tStruct\":[1]}", "expected an object");
  bad(ALL, "{\"tList\":{}}", "expected an array");
}
END_TEST

START_TEST(test_malformed) {
  bad(ALL, "{", "invalid JSON at line 1");
  bad(ALL, "{\"fInt32\":1,}", "invalid JSON");
  bad(ALL, "{\"fInt32\":1,\"fInt32\":2}", "invalid JSON"); /* duplicate key */
  bad(ALL, "{\"fInt32\":1,\"f_int32\":2}", "given twice");
  bad(ALL, "{\"nope\":1}", "unknown field \"nope\" in tri.jsontest.All");
  bad(ALL, "{\"fMsg\":{\"zz\":1}}", "unknown field \"zz\" in tri.jsontest.Inner");
  bad(ALL, "[]", "exactly one");
  bad(ALL, "[{},{}]", "exactly one");
  bad(ALL, "3", "expected a JSON object");
  bad(ALL, "{\"fInt32\":\"x\"}", "not an integer");
  bad(ALL, "{\"fInt32\":1.5}", "not an integer");
  bad(ALL, "{\"fInt32\":2147483648}", "out of range");
  bad(ALL, "{\"fInt32\":\" 1\"}", "not an integer");
  bad(ALL, "{\"fUint32\":-1}", "out of range");
  bad(ALL, "{\"fUint32\":4294967296}", "out of range");
  bad(ALL, "{\"fUint64\":\"-1\"}", "out of range");
  bad(ALL, "{\"fUint64\":\"18446744073709551616\"}", "out of range");
  bad(ALL, "{\"fInt64\":\"9223372036854775808\"}", "out of range");
  bad(ALL, "{\"fInt64\":true}", "expected an integer");
  bad(ALL, "{\"fFloat\":1e39}", "out of range for a float");
  bad(ALL, "{\"fDouble\":\"nan\"}", "not a number");
  bad(ALL, "{\"fDouble\":\"1x\"}", "not a number");
  bad(ALL, "{\"fDouble\":\"0x10\"}", "not a number");
  bad(ALL, "{\"fInt32\":\"0x10\"}", "not an integer");
  bad(ALL, "{\"fUint64\":\"0x10\"}", "not an integer");
  bad(ALL, "{\"fBool\":\"true\"}", "expected true or false");
  bad(ALL, "{\"fBool\":1}", "expected true or false");
  bad(ALL, "{\"fString\":5}", "expected a string");
  bad(ALL, "{\"fString\":\"a\\u0000b\"}", "U+0000");
  bad(ALL, "{\"fBytes\":\"A\"}", "invalid base64");
  bad(ALL, "{\"fBytes\":\"AA=A\"}", "invalid base64");
  bad(ALL, "{\"fBytes\":\"A*==\"}", "invalid base64");
  bad(ALL, "{\"fBytes\":1}", "base64");
  bad(ALL, "{\"fEnum\":\"PURPLE\"}", "not a value of tri.jsontest.Color");
  bad(ALL, "{\"fEnum\":true}", "enum");
  bad(ALL, "{\"fMsg\":[]}", "expected a JSON object");
  bad(ALL, "{\"rInt32\":1}", "expected an array");
  bad(ALL, "{\"rInt32\":[null]}", "null element");
  bad(ALL, "{\"rMsg\":[null]}", "null element");
  bad(ALL, "{\"mStrInt\":[]}", "expected an object (map)");
  bad(ALL, "{\"mIntStr\":{\"x\":\"a\"}}", "not an integer");
  bad(ALL, "{\"mBoolBool\":{\"yes\":true}}", "not a bool");
  bad(ALL, "{\"mStrInt\":{\"a\":null}}", "is null");
  bad(ALL, "{\"fString\":\"\xff\"}", "invalid JSON"); /* not UTF-8 */
}
END_TEST

START_TEST(test_depth_limit) {
  char buf[2200];
  size_t o = 0;
  int i;

  o += (size_t)sprintf(buf + o, "{\"fMsg\":");
  for (i = 0; i < 120; i++)
    o += (size_t)sprintf(buf + o, "{\"child\":");
  o += (size_t)sprintf(buf + o, "{}");
  for (i = 0; i < 121; i++)
    buf[o++] = '}';
  buf[o] = '\0';
  bad(ALL, buf, "nested deeper than 100");
  /* 90 levels are fine */
  o = (size_t)sprintf(buf, "{\"fMsg\":");
  for (i = 0; i < 90; i++)
    o += (size_t)sprintf(buf + o, "{\"child\":");
  o += (size_t)sprintf(buf + o, "{\"a\":1}");
  for (i = 0; i < 91; i++)
    buf[o++] = '}';
  buf[o] = '\0';
  rt(ALL, buf, buf);
}
END_TEST

/* Deeply nested text from a peer is refused before jansson recurses into
 * it: jansson's own limit (2048 levels) needs about 190 KB of stack, more
 * than a handler thread may have (tri_server_opts_set_worker_stack allows
 * 64 KB), and no message within the 100-level limit nests that deep. */
struct deep_arg {
  const char *text;
  int st;
};

static void *deep_thread(void *p) {
  struct deep_arg *a = p;
  uint8_t *pb = NULL;
  size_t n = 0;
  char e[128];

  a->st = tri__json_to_pb(ALL, a->text, strlen(a->text), &pb, &n, e,
                          sizeof e);
  free(pb);
  return NULL;
}

static int deep_on_small_stack(const char *text) {
  pthread_attr_t at;
  pthread_t t;
  struct deep_arg a = {text, -1};

  ck_assert_int_eq(pthread_attr_init(&at), 0);
  ck_assert_int_eq(pthread_attr_setstacksize(&at, 65536), 0);
  ck_assert_int_eq(pthread_create(&t, &at, deep_thread, &a), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  pthread_attr_destroy(&at);
  return a.st;
}

START_TEST(test_deep_text_small_stack) {
  enum { D = 2000 };
  char *buf = malloc(16 * D + 64);
  size_t o = 0;
  int i;

  ck_assert_ptr_nonnull(buf);
  for (i = 0; i < D; i++)
    buf[o++] = '[';
  for (i = 0; i < D; i++)
    buf[o++] = ']';
  buf[o] = '\0';
  ck_assert_int_eq(deep_on_small_stack(buf), TRI_INVALID_ARGUMENT);
  o = (size_t)sprintf(buf, "{\"tValue\":");
  for (i = 0; i < D; i++)
    o += (size_t)sprintf(buf + o, "{\"a\":");
  buf[o++] = '1';
  for (i = 0; i <= D; i++)
    buf[o++] = '}';
  buf[o] = '\0';
  ck_assert_int_eq(deep_on_small_stack(buf), TRI_INVALID_ARGUMENT);
  /* Brackets inside strings do not count. */
  o = (size_t)sprintf(buf, "{\"fString\":\"");
  for (i = 0; i < D; i++)
    buf[o++] = '[';
  o += (size_t)sprintf(buf + o, "\\\"{\"}");
  free(to_pb(ALL, buf, &o));
  free(buf);
}
END_TEST

START_TEST(test_pb_errors) {
  static const uint8_t junk[] = {0x0a, 0x05, 0x01}; /* truncated bytes */
  static const uint8_t bad_utf8[] = {0x72, 0x01, 0xff}; /* f_string = 0xff */
  char *js = (char *)1;
  size_t jl = 5;

  ck_assert_int_eq(tri__pb_to_json(ALL, junk, sizeof junk, &js, &jl, err,
                                   sizeof err),
                   TRI_INTERNAL);
  ck_assert_ptr_null(js);
  ck_assert_str_eq(err, "cannot parse 3 bytes as tri.jsontest.All");
  ck_assert_int_eq(tri__pb_to_json(ALL, bad_utf8, sizeof bad_utf8, &js, &jl,
                                   err, sizeof err),
                   TRI_INTERNAL);
  ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
  /* zero bytes: the empty message */
  ck_assert_int_eq(tri__pb_to_json(ALL, NULL, 0, &js, &jl, err, sizeof err),
                   TRI_OK);
  ck_assert_str_eq(js, "{}");
  free(js);
}
END_TEST

#else /* !HAVE_JANSSON */

START_TEST(test_unimplemented) {
  uint8_t *pb = (uint8_t *)1;
  char *js = (char *)1;
  size_t n;

  ck_assert_int_eq(tri__json_to_pb(ALL, "{}", 2, &pb, &n, err, sizeof err),
                   TRI_UNIMPLEMENTED);
  ck_assert_ptr_null(pb);
  ck_assert_int_eq(tri__pb_to_json(ALL, NULL, 0, &js, &n, err, sizeof err),
                   TRI_UNIMPLEMENTED);
  ck_assert_ptr_null(js);
  ck_assert_ptr_nonnull(strstr(err, "--with-jansson"));
}
END_TEST

#endif

static Suite *json_suite(void) {
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 30);
#ifdef HAVE_JANSSON
  tcase_add_test(tc, test_interop_messages);
  tcase_add_test(tc, test_scalars);
  tcase_add_test(tc, test_lenient_input);
  tcase_add_test(tc, test_floats);
  tcase_add_test(tc, test_repeated_and_maps);
  tcase_add_test(tc, test_oneof);
  tcase_add_test(tc, test_wkt_time);
  tcase_add_test(tc, test_wkt_time_out_of_range_binary);
  tcase_add_test(tc, test_wkt_wrappers);
  tcase_add_test(tc, test_wkt_struct);
  tcase_add_test(tc, test_malformed);
  tcase_add_test(tc, test_depth_limit);
  tcase_add_test(tc, test_deep_text_small_stack);
  tcase_add_test(tc, test_pb_errors);
#else
  tcase_add_test(tc, test_unimplemented);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(json_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
