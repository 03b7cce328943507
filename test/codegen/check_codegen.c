/*
 * Loopback test of the stubs protoc-gen-triplestream generates for
 * proto/tri/test/v1/kitchen.proto, nopkg.proto and cpkg.proto: every
 * client function and handler kind, through the generated registration,
 * against a tri_server on 127.0.0.1:0.
 *
 * Built with -Wall -Wextra -Werror (with the generated code), so a stub
 * that does not compile cleanly fails the build.
 */
#include <config.h>

#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tri/test/v1/kitchen.tri.h"
#include "nopkg.tri.h"
#include "cpkg.tri.h"

#define DEADLINE_MS 10000

static tri_server *srv;
static tri_channel *ch;
static tri_call_opts *opts;
static atomic_int kitchen_freed; /* responses given to release_response */

/* kitchen_freed once it reaches |want|, or after 2 s.  The trampoline
 * sends the response with its status (TRI_SEND_LAST) and then calls
 * release_response, so a client can have its answer a moment before the
 * server has released it. */
static int
freed_soon(int want)
{
  struct timespec ms = {0, 1000000};
  for (int i = 0; i < 2000 && atomic_load(&kitchen_freed) < want; i++)
    nanosleep(&ms, NULL);
  return atomic_load(&kitchen_freed);
}
static int kitchen_ud;           /* address checked in handlers */

/* ---------------------------------------------------------------- */
/* Server: Kitchen                                                   */
/* ---------------------------------------------------------------- */

/* One handler shape for every kind: the call wrapper, with the decoded
 * request in call->req (unary, server streaming) and an initialised
 * response in call->resp (unary, client streaming) that the handler fills;
 * its fields may point into the request, at static or thread-local data,
 * or at the heap (then release_response frees them). */

static int
k_echo(Tri__Test__V1__Kitchen__Echo_Server *call, void *ud)
{
  if (ud != &kitchen_ud || call->stream == NULL)
    return TRI_INTERNAL;
  call->resp.text = call->req->text; /* the request outlives the send */
  call->resp.n = call->req->n;
  return TRI_OK;
}

static int
k_new(Tri__Test__V1__Kitchen__New_Server *call, void *ud)
{
  static _Thread_local char buf[128]; /* valid until the send */

  (void)ud;
  snprintf(buf, sizeof buf, "new:%s", call->req->text_value);
  call->resp.text_value = buf;
  return TRI_OK;
}

/* The method whose name collides with the table's release_response. */
static int
k_release_response(Tri__Test__V1__Kitchen__ReleaseResponse_Server *call,
                   void *ud)
{
  (void)ud;
  call->resp.value = call->req->value + 1;
  return TRI_OK;
}

static int
k_count_up(Tri__Test__V1__Kitchen__CountUp_Server *call, void *ud)
{
  int64_t i;

  (void)ud;
  for (i = 1; i <= call->req->value && i <= 1000; i++) {
    Tri__Test__Common__Num n = TRI__TEST__COMMON__NUM__INIT;
    int rv;

    n.value = i;
    rv = tri__test__v1__kitchen__count__up__server_send(call, &n);
    if (rv != TRI_OK)
      return rv;
  }
  return TRI_OK;
}

static int
k_sum(Tri__Test__V1__Kitchen__Sum_Server *call, void *ud)
{
  int64_t sum = 0;
  int n, rv = TRI_OK, no_reply = 0;

  (void)ud;
  for (n = 0; n < 100000; n++) {
    Tri__Test__Common__Num *m = NULL;

    rv = tri__test__v1__kitchen__sum__server_recv(call, &m, -1);
    if (rv != TRI_OK)
      break;
    if (m->value == -1)
      no_reply = 1;
    sum += m->value;
    tri__test__common__num__free_unpacked(m, NULL);
  }
  if (rv != TRI_EOF)
    return rv;
  if (no_reply)
    return TRI_INTERNAL; /* a status instead of the response */
  call->resp.value = sum;
  return TRI_OK;
}

static int
k_chat(Tri__Test__V1__Kitchen__Chat_Server *call, void *ud)
{
  int n;

  (void)ud;
  for (n = 0; n < 100000; n++) {
    Tri__Test__Common__Outer__Inner *m = NULL;
    int rv = tri__test__v1__kitchen__chat__server_recv(call, &m, -1);

    if (rv == TRI_EOF)
      return TRI_OK;
    if (rv != TRI_OK)
      return rv;
    m->n *= 2;
    rv = tri__test__v1__kitchen__chat__server_send(call, m);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    if (rv != TRI_OK)
      return rv;
  }
  return TRI_RESOURCE_EXHAUSTED;
}

/* A whole static reply copied in (the protobuf-c habit that used to abort
 * the server with free(): invalid pointer). */
static const Tri__Test__Common__Num old_echo_reply = {
  PROTOBUF_C_MESSAGE_INIT(&tri__test__common__num__descriptor), 0};

static int
k_old_echo(Tri__Test__V1__Kitchen__OldEcho_Server *call, void *ud)
{
  (void)ud;
  call->resp = old_echo_reply;
  call->resp.value = call->req->value;
  return TRI_OK;
}

static int
k_fail(Tri__Test__V1__Kitchen__Fail_Server *call, void *ud)
{
  (void)ud;
  tri_stream_finish(call->stream, (int)call->req->value, "failing as asked");
  return (int)call->req->value;
}

static void
k_release(ProtobufCMessage *msg, void *ud)
{
  if (ud == &kitchen_ud && msg != NULL)
    atomic_fetch_add(&kitchen_freed, 1);
}

static const Tri__Test__V1__Kitchen_Handlers kitchen_impl = {
  .echo = k_echo,
  .new_ = k_new,
  .release_response_ = k_release_response,
  .count__up = k_count_up,
  .sum = k_sum,
  .chat = k_chat,
  .old_echo = k_old_echo,
  .fail = k_fail,
  .unbound = NULL,
  .release_response = k_release,
};

/* ---------------------------------------------------------------- */
/* Server: Ops (deprecated), Bare (no package), Renamed (c_package)  */
/* ---------------------------------------------------------------- */

static int
ops_ping(Tri__Test__V1__Ops__Ping_Server *call, void *ud)
{
  (void)ud;
  call->resp.value = -call->req->value;
  return TRI_OK;
}

static const Tri__Test__V1__Ops_Handlers ops_impl = {.ping = ops_ping};

static int
bare_ping(Bare__Ping_Server *call, void *ud)
{
  (void)ud;
  call->resp.text = call->req->text;
  return TRI_OK;
}

static const Bare_Handlers bare_impl = {.ping = bare_ping};

static int
renamed_ping(Ctest__RenamedPkg__Renamed__Ping_Server *call, void *ud)
{
  (void)ud;
  call->resp.n = call->req->n + 1;
  return TRI_OK;
}

static const Ctest__RenamedPkg__Renamed_Handlers renamed_impl = {
  .ping = renamed_ping,
};

/* ---------------------------------------------------------------- */
/* Fixture                                                           */
/* ---------------------------------------------------------------- */

static void
setup(void)
{
  char target[64];

  atomic_store(&kitchen_freed, 0);
  ck_assert_int_eq(tri_server_new(&srv, NULL), TRI_OK);
  ck_assert_int_eq(
    tri__test__v1__kitchen__tri_register(srv, &kitchen_impl, &kitchen_ud),
    TRI_OK);
  ck_assert_int_eq(tri__test__v1__ops__tri_register(srv, &ops_impl, NULL),
                   TRI_OK);
  ck_assert_int_eq(bare__tri_register(srv, &bare_impl, NULL), TRI_OK);
  ck_assert_int_eq(
    ctest__renamed_pkg__renamed__tri_register(srv, &renamed_impl, NULL),
    TRI_OK);
  ck_assert_int_eq(tri_server_bind(srv, "127.0.0.1:0"), TRI_OK);
  ck_assert_int_eq(tri_server_start(srv), TRI_OK);
  snprintf(target, sizeof target, "127.0.0.1:%d", tri_server_port(srv));
  ck_assert_int_eq(tri_channel_new(&ch, target, NULL), TRI_OK);
  opts = tri_call_opts_new();
  ck_assert_ptr_nonnull(opts);
  ck_assert_int_eq(tri_call_opts_set_timeout_ms(opts, DEADLINE_MS), TRI_OK);
}

static void
teardown(void)
{
  tri_call_opts_free(opts);
  tri_channel_free(ch);
  tri_server_free(srv);
}

/* ---------------------------------------------------------------- */
/* Tests                                                             */
/* ---------------------------------------------------------------- */

START_TEST(test_paths)
{
  ck_assert_str_eq(TRI__TEST__V1__KITCHEN__ECHO__PATH,
                   "/tri.test.v1.Kitchen/Echo");
  ck_assert_str_eq(TRI__TEST__V1__KITCHEN__COUNT__UP__PATH,
                   "/tri.test.v1.Kitchen/Count_Up");
  ck_assert_str_eq(TRI__TEST__V1__OPS__PING__PATH, "/tri.test.v1.Ops/Ping");
  ck_assert_str_eq(BARE__PING__PATH, "/Bare/Ping");
  ck_assert_str_eq(CTEST__RENAMED_PKG__RENAMED__PING__PATH,
                   "/tri.test.cpkg.Renamed/Ping");
}
END_TEST

START_TEST(test_unary)
{
  Tri__Test__Common__Outer__Inner in = TRI__TEST__COMMON__OUTER__INNER__INIT;
  Tri__Test__Common__Outer__Inner *out = NULL;
  Tri__Test__Common__SnakeCaseMsg sin = TRI__TEST__COMMON__SNAKE_CASE_MSG__INIT;
  Tri__Test__Common__SnakeCaseMsg *sout = NULL;
  Tri__Test__Common__Num num = TRI__TEST__COMMON__NUM__INIT, *nout = NULL;
  tri_stream *st = NULL;

  in.text = (char *)"nested";
  in.n = 7;
  ck_assert_int_eq(
    tri__test__v1__kitchen__echo__call(ch, opts, &in, &out, &st), TRI_OK);
  ck_assert_str_eq(out->text, "nested");
  ck_assert_int_eq(out->n, 7);
  ck_assert_ptr_nonnull(st);
  ck_assert_str_eq(tri_stream_method(st), TRI__TEST__V1__KITCHEN__ECHO__PATH);
  tri_stream_free(st);
  protobuf_c_message_free_unpacked(&out->base, NULL);

  sin.text_value = (char *)"kw";
  ck_assert_int_eq(
    tri__test__v1__kitchen__new__call(ch, opts, &sin, &sout, NULL), TRI_OK);
  ck_assert_str_eq(sout->text_value, "new:kw");
  tri__test__common__snake_case_msg__free_unpacked(sout, NULL);

  num.value = 41;
  ck_assert_int_eq(
    tri__test__v1__kitchen__release_response__call(ch, NULL, &num, &nout, NULL),
    TRI_OK);
  ck_assert_int_eq(nout->value, 42);
  tri__test__common__num__free_unpacked(nout, NULL);

  /* Every unary response went through the table's release_response. */
  ck_assert_int_eq(freed_soon(3), 3);
}
END_TEST

START_TEST(test_server_streaming)
{
  Tri__Test__V1__Kitchen__CountUp_Client call;
  Tri__Test__Common__Num req = TRI__TEST__COMMON__NUM__INIT;
  int64_t expect = 1;
  int rv, i;

  req.value = 5;
  ck_assert_int_eq(
    tri__test__v1__kitchen__count__up__open(ch, opts, &req, &call), TRI_OK);
  for (i = 0; i < 100; i++) {
    Tri__Test__Common__Num *m = NULL;

    rv = tri__test__v1__kitchen__count__up__recv(&call, &m, DEADLINE_MS);
    if (rv != TRI_OK)
      break;
    ck_assert_int_eq(m->value, expect++);
    tri__test__common__num__free_unpacked(m, NULL);
  }
  ck_assert_int_eq(rv, TRI_EOF);
  ck_assert_int_eq(expect, 6);
  tri__test__v1__kitchen__count__up__free(&call);
  ck_assert_ptr_null(call.stream);
  tri__test__v1__kitchen__count__up__free(&call); /* idempotent */
  tri__test__v1__kitchen__count__up__free(NULL);
}
END_TEST

START_TEST(test_client_streaming)
{
  Tri__Test__V1__Kitchen__Sum_Client call;
  Tri__Test__Common__Num *resp = NULL;
  int i;

  ck_assert_int_eq(tri__test__v1__kitchen__sum__open(ch, opts, &call), TRI_OK);
  for (i = 1; i <= 10; i++) {
    Tri__Test__Common__Num m = TRI__TEST__COMMON__NUM__INIT;

    m.value = i;
    ck_assert_int_eq(tri__test__v1__kitchen__sum__send(&call, &m), TRI_OK);
  }
  ck_assert_int_eq(tri__test__v1__kitchen__sum__close_and_recv(&call, &resp),
                   TRI_OK);
  ck_assert_int_eq(resp->value, 55);
  tri__test__common__num__free_unpacked(resp, NULL);
  tri__test__v1__kitchen__sum__free(&call);
  ck_assert_int_eq(freed_soon(1), 1);

  /* The handler returns a status instead of a response. */
  ck_assert_int_eq(tri__test__v1__kitchen__sum__open(ch, opts, &call), TRI_OK);
  {
    Tri__Test__Common__Num m = TRI__TEST__COMMON__NUM__INIT;

    m.value = -1;
    ck_assert_int_eq(tri__test__v1__kitchen__sum__send(&call, &m), TRI_OK);
  }
  resp = NULL;
  ck_assert_int_eq(tri__test__v1__kitchen__sum__close_and_recv(&call, &resp),
                   TRI_INTERNAL);
  ck_assert_ptr_null(resp);
  tri__test__v1__kitchen__sum__free(&call);
}
END_TEST

START_TEST(test_bidi)
{
  Tri__Test__V1__Kitchen__Chat_Client call;
  Tri__Test__Common__Outer__Inner *m = NULL;
  int i;

  ck_assert_int_eq(tri__test__v1__kitchen__chat__open(ch, opts, &call), TRI_OK);
  for (i = 1; i <= 3; i++) {
    Tri__Test__Common__Outer__Inner in = TRI__TEST__COMMON__OUTER__INNER__INIT;

    in.text = (char *)"ping";
    in.n = i;
    ck_assert_int_eq(tri__test__v1__kitchen__chat__send(&call, &in), TRI_OK);
    ck_assert_int_eq(
      tri__test__v1__kitchen__chat__recv(&call, &m, DEADLINE_MS), TRI_OK);
    ck_assert_str_eq(m->text, "ping");
    ck_assert_int_eq(m->n, 2 * i);
    protobuf_c_message_free_unpacked(&m->base, NULL);
  }
  ck_assert_int_eq(tri__test__v1__kitchen__chat__close_send(&call), TRI_OK);
  ck_assert_int_eq(tri__test__v1__kitchen__chat__recv(&call, &m, DEADLINE_MS),
                   TRI_EOF);
  tri__test__v1__kitchen__chat__free(&call);

  /* Cancel from the client: recv reports it. */
  ck_assert_int_eq(tri__test__v1__kitchen__chat__open(ch, opts, &call), TRI_OK);
  tri__test__v1__kitchen__chat__cancel(&call);
  tri__test__v1__kitchen__chat__cancel(&call);
  ck_assert_int_eq(tri__test__v1__kitchen__chat__recv(&call, &m, DEADLINE_MS),
                   TRI_CANCELLED);
  tri__test__v1__kitchen__chat__free(&call);
}
END_TEST

START_TEST(test_errors)
{
  Tri__Test__Common__Num num = TRI__TEST__COMMON__NUM__INIT, *out = NULL;
  Tri__Test__V1__Kitchen__Chat_Client call = {NULL};
  tri_stream *st = NULL;
  const char *msg = NULL;

  num.value = TRI_FAILED_PRECONDITION;
  ck_assert_int_eq(tri__test__v1__kitchen__fail__call(ch, opts, &num, &out, &st),
                   TRI_FAILED_PRECONDITION);
  ck_assert_ptr_null(out);
  ck_assert_int_eq(tri_stream_wait_status(st, DEADLINE_MS, &msg),
                   TRI_FAILED_PRECONDITION);
  ck_assert_str_eq(msg, "failing as asked");
  tri_stream_free(st);

  /* NULL table member: not registered. */
  ck_assert_int_eq(
    tri__test__v1__kitchen__unbound__call(ch, opts, &num, &out, NULL),
    TRI_UNIMPLEMENTED);

  /* Misuse is caught before anything is sent. */
  st = (tri_stream *)&num;
  ck_assert_int_eq(tri__test__v1__kitchen__echo__call(ch, opts, NULL, NULL, &st),
                   TRI_EINVAL);
  ck_assert_ptr_null(st);
  ck_assert_int_eq(tri__test__v1__kitchen__chat__send(&call, NULL), TRI_EINVAL);
  ck_assert_int_eq(tri__test__v1__kitchen__chat__close_send(&call), TRI_EINVAL);
  ck_assert_int_eq(tri__test__v1__kitchen__tri_register(NULL, &kitchen_impl,
                                                         NULL),
                   TRI_EINVAL);
  ck_assert_int_eq(tri__test__v1__kitchen__tri_register(srv, NULL, NULL),
                   TRI_EINVAL);
}
END_TEST

START_TEST(test_other_services)
{
  Tri__Test__Common__Num num = TRI__TEST__COMMON__NUM__INIT, *out = NULL;
  BareMsg bin = BARE__MSG__INIT, *bout = NULL;
  Ctest__RenamedPkg__Msg rin = CTEST__RENAMED_PKG__MSG__INIT, *rout = NULL;

  num.value = 9;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  /* Deprecated service and deprecated method still work. */
  ck_assert_int_eq(tri__test__v1__ops__ping__call(ch, opts, &num, &out, NULL),
                   TRI_OK);
  ck_assert_int_eq(out->value, -9);
  tri__test__common__num__free_unpacked(out, NULL);
  ck_assert_int_eq(
    tri__test__v1__kitchen__old_echo__call(ch, opts, &num, &out, NULL), TRI_OK);
  ck_assert_int_eq(out->value, 9);
  tri__test__common__num__free_unpacked(out, NULL);
#pragma GCC diagnostic pop

  bin.text = (char *)"bare";
  ck_assert_int_eq(bare__ping__call(ch, opts, &bin, &bout, NULL), TRI_OK);
  ck_assert_str_eq(bout->text, "bare");
  bare__msg__free_unpacked(bout, NULL);

  rin.n = 1;
  ck_assert_int_eq(
    ctest__renamed_pkg__renamed__ping__call(ch, opts, &rin, &rout, NULL),
    TRI_OK);
  ck_assert_int_eq(rout->n, 2);
  ctest__renamed_pkg__msg__free_unpacked(rout, NULL);
}
END_TEST

/* A unary request sent as a raw two-message stream is refused. */
START_TEST(test_unary_needs_one_request)
{
  Tri__Test__Common__Num num = TRI__TEST__COMMON__NUM__INIT;
  tri_stream *s = NULL;
  tri_buf *b = NULL;
  int rv;

  ck_assert_int_eq(
    tri_stream_open(ch, TRI__TEST__V1__KITCHEN__ECHO__PATH, opts, &s), TRI_OK);
  ck_assert_int_eq(tri_stream_send_msg(s, &num.base), TRI_OK);
  ck_assert_int_eq(tri_stream_send_msg(s, &num.base), TRI_OK);
  ck_assert_int_eq(tri_stream_close_send(s), TRI_OK);
  rv = tri_stream_recv(s, &b);
  ck_assert_int_eq(rv, TRI_UNIMPLEMENTED);
  tri_stream_free(s);
}
END_TEST

static Suite *
codegen_suite(void)
{
  Suite *s = suite_create("codegen");
  TCase *tc = tcase_create("loopback");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_paths);
  tcase_add_test(tc, test_unary);
  tcase_add_test(tc, test_server_streaming);
  tcase_add_test(tc, test_client_streaming);
  tcase_add_test(tc, test_bidi);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_other_services);
  tcase_add_test(tc, test_unary_needs_one_request);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  SRunner *sr = srunner_create(codegen_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
