/*
 * check_errors: what a user reads when a call fails.  Each row of the
 * tables is an input and the exact tri_last_error() / status text it must
 * give (issue 11: "errors that say what to do"), so a change to a message
 * is a deliberate change to this file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define EXP                                                                  \
  "(expected HOST:PORT, [V6]:PORT, dns:///HOST:PORT, ipv4:ADDR:PORT[,...], " \
  "ipv6:[ADDR]:PORT[,...], unix:PATH, unix-abstract:NAME or "              \
  "zookeeper://HOST:PORT[,...]/INTERFACE)"
#define EXP_BIND                                                             \
  "(expected HOST:PORT, [V6]:PORT, dns:///HOST:PORT, unix:PATH or "        \
  "unix-abstract:NAME)"

static const struct {
  const char *target; /* NULL is the NULL pointer */
  const char *msg;
} bad_targets[] = {
    {NULL, "target is NULL " EXP},
    {"", "target is empty " EXP},
    {"localhost", "target 'localhost': missing port " EXP},
    {"http://127.0.0.1:50653",
     "target 'http://127.0.0.1:50653': not a URL; use HOST:PORT (e.g. "
     "'127.0.0.1:50653')"},
    {"::1:50653",
     "target '::1:50653': an IPv6 address needs brackets: [::1]:50653"},
    {"127.0.0.1:99999",
     "target '127.0.0.1:99999': port 99999 is out of range (1-65535)"},
    {"127.0.0.1:0", "target '127.0.0.1:0': port 0 is out of range (1-65535)"},
    {"127.0.0.1:50653 ",
     "target '127.0.0.1:50653 ': contains white space or a control "
     "character at offset 15"},
    {"127.0.0.1:http",
     "target '127.0.0.1:http': port 'http' is not a number"},
    {":50051", "target ':50051': missing host " EXP},
    {"[::1]50051", "target '[::1]50051': missing port after ']' " EXP},
    {"[::1:50051", "target '[::1:50051': missing ']' after the IPv6 "
                   "address " EXP},
    {"dns://8.8.8.8/example.com:443",
     "target 'dns://8.8.8.8/example.com:443': a DNS server in the target is "
     "not supported; use dns:///HOST:PORT (or TRI_DNS_SERVERS)"},
    {"dns:example.com:443",
     "target 'dns:example.com:443': expected dns:///HOST:PORT"},
    {"zk://h:1/x", "target 'zk://h:1/x': scheme 'zk' is not supported " EXP},
    {"unix:", "target 'unix:': missing socket path"},
    /* issue 14: lists and registries */
    {"ipv4:", "target 'ipv4:': no address after 'ipv4:' (expected "
              "ipv4:ADDR:PORT[,...])"},
    {"ipv4:127.0.0.1", "target 'ipv4:127.0.0.1': '127.0.0.1' is not an "
                       "IPv4 address with a port (expected ADDR:PORT)"},
    {"ipv4:127.0.0.1:1,,127.0.0.2:1",
     "target 'ipv4:127.0.0.1:1,,127.0.0.2:1': empty element in the address "
     "list"},
    {"ipv4:127.0.0.1:1,", "target 'ipv4:127.0.0.1:1,': empty element in "
                          "the address list"},
    {"ipv4:example.com:80", "target 'ipv4:example.com:80': 'example.com' "
                            "is not a numeric IPv4 address"},
    {"ipv4:127.0.0.1:70000", "target 'ipv4:127.0.0.1:70000': "
                             "'127.0.0.1:70000' is not an IPv4 address "
                             "with a port (expected ADDR:PORT)"},
    {"ipv6:::1:80", "target 'ipv6:::1:80': '::1:80' is not an IPv6 address "
                    "with a port (expected [ADDR]:PORT)"},
    {"ipv6:[127.0.0.1]:80", "target 'ipv6:[127.0.0.1]:80': '127.0.0.1' is "
                            "not a numeric IPv6 address"},
    {"zookeeper://", "target 'zookeeper://': missing ZooKeeper HOST:PORT "
                     "before '/INTERFACE'"},
    {"zookeeper://zk:2181", "target 'zookeeper://zk:2181': missing "
                            "INTERFACE after the ZooKeeper servers "
                            "(zookeeper://HOST:PORT/INTERFACE)"},
    {"zookeeper://zk/org.Svc", "target 'zookeeper://zk/org.Svc': ZooKeeper "
                               "server 'zk' is not HOST:PORT"},
    {"zookeeper://zk:1,zk2/org.Svc", "target 'zookeeper://zk:1,zk2/org.Svc'"
                                     ": ZooKeeper server 'zk2' is not "
                                     "HOST:PORT"},
    {"zookeeper://zk:2181/org.Svc?grp=a",
     "target 'zookeeper://zk:2181/org.Svc?grp=a': query parameter 'grp=a' "
     "is not supported (group=G, version=V)"},
    {"zookeeper:zk:2181/org.Svc",
     "target 'zookeeper:zk:2181/org.Svc': expected "
     "zookeeper://HOST:PORT[,HOST:PORT...]/INTERFACE[?group=G&version=V]"},
};

START_TEST(test_bad_targets)
{
  for (size_t i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
    tri_channel *ch = (tri_channel *)1;
    int rv = tri_channel_new(&ch, bad_targets[i].target, NULL);
    ck_assert_msg(rv == TRI_EINVAL, "row %zu: %s", i, tri_code_name(rv));
    ck_assert_ptr_null(ch);
    ck_assert_msg(strcmp(tri_last_error(), bad_targets[i].msg) == 0,
                  "row %zu: got  \"%s\"\n           want \"%s\"", i,
                  tri_last_error(), bad_targets[i].msg);
  }
}
END_TEST

/* Accepted spellings create a channel (nothing connects until a call). */
START_TEST(test_good_targets)
{
  static const char *good[] = {"127.0.0.1:1",      "[::1]:1",
                               "localhost:1",      "dns:///localhost:1",
                               "unix:/tmp/x.sock", "unix:///tmp/x.sock",
                               "unix-abstract:x",  "ipv4:127.0.0.1:1",
                               "ipv4:127.0.0.1:1,127.0.0.2:2",
                               "ipv6:[::1]:1,[::1]:2"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    tri_channel *ch = NULL;
    ck_assert_msg(tri_channel_new(&ch, good[i], NULL) == TRI_OK, "%s: %s",
                  good[i], tri_last_error());
    tri_channel_free(ch);
  }
}
END_TEST

START_TEST(test_bind_errors)
{
  tri_server *a = NULL, *b = NULL;
  char addr[64], want[128];

  ck_assert_int_eq(tri_server_new(&a, NULL), TRI_OK);
  ck_assert_int_eq(tri_server_bind(a, "127.0.0.1:0"), TRI_OK);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", tri_server_port(a));
  ck_assert_int_eq(tri_server_new(&b, NULL), TRI_OK);
  ck_assert_int_eq(tri_server_bind(b, addr), TRI_ESYS);
  snprintf(want, sizeof want, "bind %s: Address already in use", addr);
  ck_assert_str_eq(tri_last_error(), want);
  ck_assert_int_eq(tri_server_bind(b, "localhost"), TRI_EINVAL);
  ck_assert_str_eq(tri_last_error(),
                   "target 'localhost': missing port " EXP_BIND);
  ck_assert_int_eq(tri_server_bind(a, "127.0.0.1:0"), TRI_ESTATE);
  ck_assert_str_eq(tri_last_error(),
                   "tri_server_bind: the server is already bound");
  tri_server_free(b);
  tri_server_free(a);
}
END_TEST

START_TEST(test_bad_method)
{
  tri_channel *ch = NULL;
  tri_stream *s = (tri_stream *)1;
  ck_assert_int_eq(tri_channel_new(&ch, "127.0.0.1:1", NULL), TRI_OK);
  ck_assert_int_eq(tri_stream_open(ch, "echo", NULL, &s), TRI_EINVAL);
  ck_assert_ptr_null(s);
  ck_assert_str_eq(tri_last_error(),
                   "method 'echo': expected /package.Service/Method "
                   "(printable ASCII, no spaces)");
  tri_channel_free(ch);
}
END_TEST

/* A failed unary call: the status message is one call away. */
START_TEST(test_unary_connect_refused)
{
  tri_channel *ch = NULL;
  tri_buf *r = NULL;
  char target[64], want[128];
  int port = tu_unused_port();

  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  ck_assert_int_eq(tri_channel_new(&ch, target, NULL), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/a.B/C", NULL, "x", 1, &r, NULL),
                   TRI_UNAVAILABLE);
  snprintf(want, sizeof want, "cannot connect to %s: Connection refused",
           target);
  ck_assert_str_eq(tri_last_error(), want);
  tri_channel_free(ch);

  ck_assert_int_eq(tri_channel_new(&ch, "unix:/nonexistent/tri.sock", NULL),
                   TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/a.B/C", NULL, "x", 1, &r, NULL),
                   TRI_UNAVAILABLE);
  ck_assert_str_eq(tri_last_error(), "cannot connect to "
                   "unix:/nonexistent/tri.sock: No such file or directory");
  tri_channel_free(ch);
}
END_TEST

/* An HTTP/1.1 server: says so instead of "connection finished". */
static int http1_fd;
static void *http1_main(void *arg)
{
  (void)arg;
  int c = accept(http1_fd, NULL, NULL);
  if (c >= 0) {
    char buf[512];
    (void)!read(c, buf, sizeof buf);
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n";
    (void)!write(c, resp, strlen(resp));
    tu_sleep_ms(200);
    close(c);
  }
  return NULL;
}

START_TEST(test_http1_peer)
{
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  pthread_t t;
  tri_channel *ch = NULL;
  tri_buf *r = NULL;
  char target[64], want[200];

  http1_fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(http1_fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(http1_fd, 4), 0);
  getsockname(http1_fd, (struct sockaddr *)&sa, &sl);
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(sa.sin_port));
  ck_assert_int_eq(tu_thread_start(&t, http1_main, NULL), 0);
  ck_assert_int_eq(tri_channel_new(&ch, target, NULL), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/a.B/C", NULL, "x", 1, &r, NULL),
                   TRI_UNAVAILABLE);
  snprintf(want, sizeof want, "peer at %s answered HTTP/1.1: it does not "
           "speak HTTP/2 with prior knowledge (h2c)", target);
  ck_assert_str_eq(tri_last_error(), want);
  tri_channel_free(ch);
  ck_assert_int_eq(tu_thread_join(t, 5000, NULL), 0);
  close(http1_fd);
}
END_TEST

/* Over-limit messages name the size, the limit and its setter. */
static int h_echo(tri_stream *s, void *ud)
{
  tri_buf *m = NULL;
  int rv;
  (void)ud;
  while ((rv = tri_stream_recv(s, &m)) == TRI_OK) {
    rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rv != TRI_OK)
      return rv;
  }
  return rv == TRI_EOF ? TRI_OK : rv;
}

START_TEST(test_message_limits)
{
  tu_method m = {"/e.E/Echo", h_echo, NULL};
  int port;
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  tri_channel_opts *co = tri_channel_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  tri_channel *ch;
  tri_buf *r = NULL;
  size_t big = 5u * 1024 * 1024;
  char *buf = calloc(1, big);

  ck_assert_ptr_nonnull(srv);
  /* The server's limit (default 4 MiB): the client is told by the
   * server, in the trailers. */
  ch = tu_channel_new(port, NULL);
  ck_assert_int_eq(tri_unary_call(ch, "/e.E/Echo", NULL, buf, big, &r, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(tri_last_error(),
                   "received message of 5242880 bytes exceeds this server's "
                   "limit 4194304 (tri_server_opts_set_max_recv_size)");
  tri_channel_free(ch);
  /* The channel's limit, then a call's own. */
  ck_assert_int_eq(tri_channel_opts_set_max_recv_size(co, 1000), TRI_OK);
  ch = tu_channel_new(port, co);
  ck_assert_int_eq(tri_unary_call(ch, "/e.E/Echo", NULL, buf, 2000, &r, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(tri_last_error(),
                   "received message of 2000 bytes exceeds this channel's "
                   "limit 1000 (tri_channel_opts_set_max_recv_size)");
  ck_assert_int_eq(tri_call_opts_set_max_recv_size(o, 1500), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/e.E/Echo", o, buf, 2000, &r, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(tri_last_error(),
                   "received message of 2000 bytes exceeds this call's "
                   "limit 1500 (tri_call_opts_set_max_recv_size)");
  tri_channel_free(ch);
  tri_call_opts_free(o);
  tri_channel_opts_free(co);
  tri_server_free(srv);
  free(buf);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("errors");
  tcase_set_timeout(tc, TU_TCASE_TIMEOUT);
  tcase_add_test(tc, test_bad_targets);
  tcase_add_test(tc, test_good_targets);
  tcase_add_test(tc, test_bind_errors);
  tcase_add_test(tc, test_bad_method);
  tcase_add_test(tc, test_unary_connect_refused);
  tcase_add_test(tc, test_http1_peer);
  tcase_add_test(tc, test_message_limits);
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
