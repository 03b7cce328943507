/*
 * integ_ipv6: a channel to an IPv6 literal target ("[::1]:port") against a
 * tri_server bound to [::1].
 *
 * A machine without IPv6 loopback cannot run it: then the program exits
 * 77, which automake reports as SKIP (never as a pass).  On CI (CI=true)
 * the capability is required, so there a failed bind to [::1] is a
 * FAILURE: a CI image that loses IPv6 must not silently stop testing it.
 * This is its own program because a Check suite cannot skip one test.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define M_ECHO "/test.Echo/Bidi"
#define EXIT_SKIP 77

/* Can this process bind a TCP socket to [::1]?  0, or the errno. */
static int
ipv6_loopback_error(void)
{
  struct sockaddr_in6 sa;
  int fd, err = 0;

  fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  sa.sin6_port = 0;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
    err = errno;
  close(fd);
  return err;
}

START_TEST(test_target_ipv6_literal)
{
  tri_server *srv = NULL;
  tri_channel *ch = NULL;
  tri_call_opts *o = tri_call_opts_new();
  tri_buf *resp = NULL;
  char target[64];
  int rv;

  ck_assert_ptr_nonnull(o);
  ck_assert_int_eq(tri_server_new(&srv, NULL), TRI_OK);
  ck_assert_int_eq(tri_server_register(srv, M_ECHO, tu_echo_handler, NULL),
                   TRI_OK);
  /* main() checked that [::1] can be bound: this must work. */
  rv = tri_server_bind(srv, "[::1]:0");
  ck_assert_msg(rv == TRI_OK, "tri_server_bind([::1]:0): %s (%s)",
                tu_code(rv), strerror(errno));
  ck_assert_int_eq(tri_server_start(srv), TRI_OK);
  snprintf(target, sizeof(target), "[::1]:%d", tri_server_port(srv));

  ck_assert_int_eq(tri_call_opts_set_timeout_ms(o, 10000), TRI_OK);
  rv = tri_channel_new(&ch, target, NULL);
  ck_assert_msg(rv == TRI_OK, "tri_channel_new(%s): %s", target,
                tu_code(rv));
  rv = tri_unary_call(ch, M_ECHO, o, "hi", 2, &resp, NULL);
  ck_assert_msg(rv == TRI_OK, "unary call over %s: %s", target, tu_code(rv));
  ck_assert(tri_buf_len(resp) == 2 &&
            memcmp(tri_buf_data(resp), "hi", 2) == 0);
  tri_buf_free(resp);
  tri_call_opts_free(o);
  tri_channel_free(ch);
  tri_server_free(srv);
  ck_assert_msg(tu_budgets_settle(2000) == 0,
                "library budgets not back to zero after the test");
}
END_TEST

int
main(void)
{
  const char *ci = getenv("CI");
  int err = ipv6_loopback_error();
  SRunner *sr;
  Suite *s;
  TCase *tc;
  int failed;

  if (err != 0) {
    if (ci != NULL && strcmp(ci, "true") == 0) {
      fprintf(stderr, "integ_ipv6: FAIL: cannot bind [::1] on CI (%s); CI "
                      "must test IPv6 targets\n", strerror(err));
      return EXIT_FAILURE;
    }
    fprintf(stderr, "integ_ipv6: SKIP: no IPv6 loopback here (bind [::1]: "
                    "%s)\n", strerror(err));
    return EXIT_SKIP;
  }
  s = suite_create("integ_ipv6");
  tc = tcase_create("ipv6");
  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_test(tc, test_target_ipv6_literal);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
