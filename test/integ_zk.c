/*
 * integ_zk: Dubbo's ZooKeeper registry against a real ZooKeeper
 * (Debian's zookeeper package, started on loopback by test/zk/zk-server.sh
 * with a temporary data dir).
 *
 * Three provider processes (fork()ed: one must be SIGKILLed) register with
 * a 4000 ms session; the test checks their nodes and URLs, and a provider
 * watch (lib/registry_zk.c, what zookeeper:// channels use) through:
 *   - a SIGKILLed provider: dropped within session timeout + 1 s;
 *   - a provider shut down by SIGTERM (graceful): dropped at once, while
 *     its connections are still open (deregistration comes first);
 *   - a restarted provider: rejoins;
 *   - ZooKeeper killed: the last list is kept (no empty report);
 *     ZooKeeper restarted: the watch resumes (sees the next change).
 *
 * Without ZooKeeper support in the build, or without java/zookeeper on the
 * machine, it FAILS, unless TRI_ALLOW_SKIP=1 (then exit 77).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "registry_zk.h"
#include "testutil.h"

#ifdef HAVE_ZOOKEEPER
#define THREADED 1
#include <zookeeper/zookeeper.h>
#endif

#define IFACE "test.zk.Echo"
#define SESSION_MS 4000
#define EXIT_SKIP 77

static char g_dir[512];  /* ZooKeeper's data dir */
static int g_zk_port;
static char g_self[1024]; /* this program's path (valgrind: the client's) */

static int zk_script(const char *what) {
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "sh '%s' %s '%s' %d > '%s/port.out'", ZK_SCRIPT,
           what, g_dir, g_zk_port, g_dir);
  return system(cmd);
}

/* ---- providers (child processes) --------------------------------------- */

static int h_unary(tri_stream *s, void *ud) {
  tri_buf *m;
  (void)ud;
  int rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return rv == TRI_EOF ? TRI_INVALID_ARGUMENT : rv;
  rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
  tri_buf_free(m);
  return rv;
}

/* Streams until the client ends or the server's drain cancels it. */
static int h_hold(tri_stream *s, void *ud) {
  tri_buf *m;
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

/* The provider process (this program run with --provider ZKPORT FD):
 * writes its port to FD, serves until SIGTERM. */
static int provider_main(int wfd) {
  char uri[200];
  tri_server *srv;
  tri_server_opts *o = tri_server_opts_new();
  int p = -1;
  snprintf(uri, sizeof uri, "zookeeper://127.0.0.1:%d?session=%d"
           "&application=integ_zk", g_zk_port, SESSION_MS);
  if (tri_server_opts_set_registry(o, uri) != TRI_OK ||
      tri_server_new(&srv, o) != TRI_OK ||
      tri_server_register(srv, "/" IFACE "/Unary", h_unary, NULL) != 0 ||
      tri_server_register(srv, "/" IFACE "/Hold", h_hold, NULL) != 0 ||
      tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 3000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "provider: %s\n", tri_last_error());
    if (write(wfd, &p, sizeof p) < 0)
      return 3;
    return 2;
  }
  tri_server_opts_free(o);
  p = tri_server_port(srv);
  if (write(wfd, &p, sizeof p) != sizeof p)
    return 3;
  close(wfd);
  tri_server_wait(srv);
  tri_server_free(srv);
  return 0;
}

/* Start a provider process (fork and exec: the test process has threads,
 * and a forked copy of a threaded process may only exec); returns its pid
 * and port. */
static pid_t provider_start(int *port) {
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char zp[16], fd[16];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(pfd[0]);
    snprintf(zp, sizeof zp, "%d", g_zk_port);
    snprintf(fd, sizeof fd, "%d", pfd[1]);
    execl(g_self, "integ_zk", "--provider", zp, fd, (char *)NULL);
    _exit(4);
  }
  close(pfd[1]);
  ck_assert_int_eq(read(pfd[0], port, sizeof *port), (ssize_t)sizeof *port);
  close(pfd[0]);
  ck_assert_int_gt(*port, 0);
  return pid;
}

static void provider_reap(pid_t pid, int sig) {
  int st;
  kill(pid, sig);
  for (int i = 0; i < 1000; i++) { /* 10 s */
    if (waitpid(pid, &st, WNOHANG) == pid)
      return;
    tu_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

/* ---- the watch --------------------------------------------------------- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char list[16][64];
  size_t n;
  int calls;
  int empty_calls;
} g_w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0, 0};

static void on_providers(void *ud, const char *const *hp, size_t n) {
  (void)ud;
  pthread_mutex_lock(&g_w.mu);
  g_w.n = n < 16 ? n : 16;
  for (size_t i = 0; i < g_w.n; i++)
    snprintf(g_w.list[i], sizeof g_w.list[i], "%s", hp[i]);
  g_w.calls++;
  if (n == 0)
    g_w.empty_calls++;
  pthread_cond_broadcast(&g_w.cv);
  pthread_mutex_unlock(&g_w.mu);
}

static int listed_locked(int port) {
  char hp[64];
  snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
  for (size_t i = 0; i < g_w.n; i++)
    if (strcmp(g_w.list[i], hp) == 0)
      return 1;
  return 0;
}

/* Wait until |port| is (want=1) or is not (want=0) listed and the list
 * has |n| entries; returns the ms it took, or -1 after |timeout_ms|. */
static int64_t wait_list(int port, int want, size_t n, int timeout_ms) {
  int64_t t0 = tu_now_ms(), rv = -1;
  pthread_mutex_lock(&g_w.mu);
  for (int i = 0; i < 100000; i++) {
    if (listed_locked(port) == want && g_w.n == n) {
      rv = tu_now_ms() - t0;
      break;
    }
    if (tu_now_ms() - t0 >= timeout_ms)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&g_w.cv, &g_w.mu, &ts);
  }
  pthread_mutex_unlock(&g_w.mu);
  return rv;
}

#ifdef HAVE_ZOOKEEPER
/* The decoded provider URLs under /dubbo/IFACE/providers, read with the
 * ZooKeeper C client directly (not through the code under test). */
static int read_nodes(char urls[][1024], int max) {
  char hosts[64];
  int n = -1;
  snprintf(hosts, sizeof hosts, "127.0.0.1:%d", g_zk_port);
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zhandle_t *zh = zookeeper_init(hosts, NULL, 10000, NULL, NULL, 0);
  if (zh == NULL)
    return -1;
  for (int i = 0; i < 500 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
    tu_sleep_ms(20);
  struct String_vector sv = {0, NULL};
  if (zoo_get_children(zh, "/dubbo/" IFACE "/providers", 0, &sv) == ZOK) {
    n = 0;
    for (int i = 0; i < sv.count && n < max; i++) {
      if (tri__zk_url_decode(sv.data[i], strlen(sv.data[i]), urls[n],
                             1024) == 0)
        n++;
    }
    deallocate_String_vector(&sv);
  }
  zookeeper_close(zh);
  return n;
}
#endif

START_TEST(test_url_helpers) {
  char hp[64], buf[256];
  ck_assert_int_eq(tri__zk_url_encode("tri://1.2.3.4:5/a.B?x=1&m=a,b", buf,
                                      sizeof buf), 0);
  ck_assert_str_eq(buf, "tri%3A%2F%2F1.2.3.4%3A5%2Fa.B%3Fx%3D1%26m%3Da%2Cb");
  ck_assert_int_eq(tri__zk_url_decode(buf, strlen(buf), buf, sizeof buf), 0);
  ck_assert_str_eq(buf, "tri://1.2.3.4:5/a.B?x=1&m=a,b");
  ck_assert_int_eq(tri__zk_url_decode("%4", 2, buf, sizeof buf), -1);
  ck_assert_int_eq(tri__zk_url_decode("%zz", 3, buf, sizeof buf), -1);
  ck_assert_int_eq(tri__zk_url_decode("%00", 3, buf, sizeof buf), -1);
  /* protocol, side, category, group and version filters */
  ck_assert_int_eq(tri__zk_provider_match(
      "tri://10.0.0.1:50051/a.S?interface=a.S&side=provider&group=g"
      "&version=1.0", "a.S", "g", "1.0", hp, sizeof hp), 1);
  ck_assert_str_eq(hp, "10.0.0.1:50051");
  ck_assert_int_eq(tri__zk_provider_match(
      "tri://10.0.0.1:50051/a.S?interface=a.S&group=g", "a.S", NULL, NULL,
      hp, sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match(
      "tri://10.0.0.1:50051/a.S?interface=a.S&group=g", "a.S", "*", NULL,
      hp, sizeof hp), 1);
  ck_assert_int_eq(tri__zk_provider_match(
      "dubbo://10.0.0.1:20880/a.S?interface=a.S", "a.S", NULL, NULL, hp,
      sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match(
      "tri://10.0.0.1:1/a.S?side=consumer", "a.S", NULL, NULL, hp,
      sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match(
      "tri://10.0.0.1:1/a.S?category=configurators", "a.S", NULL, NULL, hp,
      sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match("tri://[::1]:7/a.S", "a.S", NULL,
                                          NULL, hp, sizeof hp), 1);
  ck_assert_str_eq(hp, "[::1]:7");
  ck_assert_int_eq(tri__zk_provider_match("tri://:7/a.S", "a.S", NULL, NULL,
                                          hp, sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match("tri://h/a.S", "a.S", NULL, NULL,
                                          hp, sizeof hp), 0);
  ck_assert_int_eq(tri__zk_provider_match("tri://h:1/a.Sx", "a.S", NULL,
                                          NULL, hp, sizeof hp), 0);
  /* registry URIs */
  tri_server_opts *o = tri_server_opts_new();
  ck_assert_int_eq(tri_server_opts_set_registry(o, "nacos://h:1"),
                   TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_registry(o, "zookeeper://"),
                   TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_registry(o, "zookeeper://h"),
                   TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_registry(o, "zookeeper://h:99999"),
                   TRI_EINVAL);
  ck_assert_int_eq(
      tri_server_opts_set_registry(o, "zookeeper://h:1?session=5"),
      TRI_EINVAL);
  ck_assert_int_eq(tri_server_opts_set_registry(
                       o, "zookeeper://a:1,b:2/?application=x&session=5000"),
                   TRI_OK);
  tri_server_opts_free(o);
}
END_TEST

START_TEST(test_registry_lifecycle) {
  tri__zk_watch *w = NULL;
  char hosts[64], err[256];
  int port[4];
  pid_t pid[4];

  snprintf(hosts, sizeof hosts, "127.0.0.1:%d", g_zk_port);
  ck_assert_int_eq(tri__zk_watch_new(&w, hosts, IFACE, NULL, NULL,
                                     on_providers, NULL, err, sizeof err),
                   TRI_OK);
  for (int i = 0; i < 3; i++)
    pid[i] = provider_start(&port[i]);
  int64_t t = wait_list(port[2], 1, 3, 20000);
  ck_assert_msg(t >= 0, "the watch did not see 3 providers within 20 s");
  for (int i = 0; i < 3; i++) {
    pthread_mutex_lock(&g_w.mu);
    ck_assert_msg(listed_locked(port[i]), "provider %d missing", i);
    pthread_mutex_unlock(&g_w.mu);
  }

#ifdef HAVE_ZOOKEEPER
  /* The nodes, as Dubbo consumers read them. */
  static char urls[8][1024];
  int n = read_nodes(urls, 8);
  ck_assert_int_eq(n, 3);
  for (int i = 0; i < 3; i++) {
    char want[64];
    int found = 0;
    snprintf(want, sizeof want, "tri://127.0.0.1:%d/" IFACE "?", port[i]);
    for (int k = 0; k < n; k++) {
      if (strncmp(urls[k], want, strlen(want)) != 0)
        continue;
      found = 1;
      ck_assert_ptr_nonnull(strstr(urls[k], "&application=integ_zk&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&interface=" IFACE "&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&methods=Unary,Hold&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&side=provider&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&protocol=tri&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&dubbo=2.0.2&"));
      ck_assert_ptr_nonnull(strstr(urls[k], "&timestamp="));
      ck_assert_ptr_nonnull(strstr(urls[k], "&release=libtriplestream-"));
      ck_assert_ptr_null(strstr(urls[k], "group="));
      ck_assert_ptr_null(strstr(urls[k], "version="));
    }
    ck_assert_msg(found, "no node for %s", want);
  }
#endif

  /* SIGKILL: the session expires, ZooKeeper deletes the node. */
  int64_t t0 = tu_now_ms();
  kill(pid[0], SIGKILL);
  t = wait_list(port[0], 0, 2, SESSION_MS + 10000);
  ck_assert_msg(t >= 0, "killed provider still listed after %d ms",
                SESSION_MS + 10000);
  printf("integ_zk: killed provider dropped after %lld ms (session %d ms)\n",
         (long long)(tu_now_ms() - t0), SESSION_MS);
  /* Session timeout + 1 s, plus one ZooKeeper tick (500 ms) of expiry
   * granularity. */
  ck_assert_msg(tu_now_ms() - t0 <= SESSION_MS + 1000 + 500,
                "killed provider dropped after %lld ms",
                (long long)(tu_now_ms() - t0));
  provider_reap(pid[0], SIGKILL);

  /* Graceful: a stream stays open on provider 1 while it drains. */
  tri_channel *ch;
  tri_stream *s;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port[1]);
  ck_assert_int_eq(tri_channel_new(&ch, target, NULL), TRI_OK);
  ck_assert_int_eq(tri_stream_open(ch, "/" IFACE "/Hold", NULL, &s), TRI_OK);
  ck_assert_int_eq(tri_stream_send(s, "x", 1), TRI_OK);
  tri_buf *m;
  ck_assert_int_eq(tri_stream_recv(s, &m), TRI_OK);
  tri_buf_free(m);
  t0 = tu_now_ms();
  kill(pid[1], SIGTERM);
  t = wait_list(port[1], 0, 1, 5000);
  ck_assert_msg(t >= 0, "gracefully stopped provider still listed");
  int64_t drop_ms = tu_now_ms() - t0;
  const char *why;
  int st = tri_stream_wait_status(s, 0, &why);
  ck_assert_msg(st == TRI_ETIMEDOUT, "the stream ended (%s: %s) before the "
                "provider left the registry", tri_code_name(st), why);
  printf("integ_zk: graceful provider dropped after %lld ms, its stream "
         "still open\n", (long long)drop_ms);
  ck_assert_msg(drop_ms < 1000, "graceful drop took %lld ms",
                (long long)drop_ms);
  st = tri_stream_wait_status(s, 10000, &why);
  ck_assert_int_ne(st, TRI_ETIMEDOUT);
  tri_stream_free(s);
  tri_channel_free(ch);
  provider_reap(pid[1], SIGTERM);

  /* Restart: a new provider joins. */
  t0 = tu_now_ms();
  pid[3] = provider_start(&port[3]);
  t = wait_list(port[3], 1, 2, 10000);
  ck_assert_msg(t >= 0, "restarted provider did not rejoin");
  printf("integ_zk: restarted provider listed %lld ms after its start\n",
         (long long)(tu_now_ms() - t0));

  /* ZooKeeper down: the last list stays; no empty report. */
  pthread_mutex_lock(&g_w.mu);
  int empty_before = g_w.empty_calls;
  pthread_mutex_unlock(&g_w.mu);
  ck_assert_int_eq(zk_script("stop"), 0);
  tu_sleep_ms(3000);
  pthread_mutex_lock(&g_w.mu);
  ck_assert_int_eq(g_w.empty_calls, empty_before);
  ck_assert_uint_eq(g_w.n, 2);
  ck_assert(listed_locked(port[2]) && listed_locked(port[3]));
  pthread_mutex_unlock(&g_w.mu);
  /* Back on the same port and data: sessions and watches resume. */
  ck_assert_int_eq(zk_script("start"), 0);
  t0 = tu_now_ms();
  kill(pid[2], SIGTERM);
  t = wait_list(port[2], 0, 1, 20000);
  ck_assert_msg(t >= 0, "the watch did not resume after ZooKeeper came "
                "back");
  printf("integ_zk: after the ZooKeeper restart a deregistration was seen "
         "after %lld ms\n", (long long)(tu_now_ms() - t0));
  provider_reap(pid[2], SIGTERM);
  pthread_mutex_lock(&g_w.mu);
  ck_assert_int_eq(g_w.empty_calls, empty_before);
  pthread_mutex_unlock(&g_w.mu);

  provider_reap(pid[3], SIGTERM);
  ck_assert_int_ge(wait_list(port[3], 0, 0, 5000), 0);
  tri__zk_watch_free(w);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("integ_zk");
  TCase *tc = tcase_create("zk");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_url_helpers);
  tcase_add_test(tc, test_registry_lifecycle);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  ssize_t sl = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  if (sl <= 0) {
    perror("readlink /proc/self/exe");
    return EXIT_FAILURE;
  }
  g_self[sl] = '\0';
  if (argc == 4 && strcmp(argv[1], "--provider") == 0) {
    g_zk_port = atoi(argv[2]);
    return provider_main(atoi(argv[3]));
  }
  const char *tmp = getenv("TMPDIR");
  const char *skip = getenv("TRI_ALLOW_SKIP");
  int can_skip = skip != NULL && strcmp(skip, "1") == 0;
  char cmd[1200];
  int failed;

#ifndef HAVE_ZOOKEEPER
  fprintf(stderr, "integ_zk: built without the ZooKeeper C client "
          "(libzookeeper-mt-dev)\n");
  return can_skip ? EXIT_SKIP : EXIT_FAILURE;
#endif
  snprintf(g_dir, sizeof g_dir, "%s/integ_zk.XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(g_dir) == NULL) {
    perror("integ_zk: mkdtemp");
    return EXIT_FAILURE;
  }
  g_zk_port = 0;
  int rc = zk_script("start");
  if (rc != 0) {
    fprintf(stderr, "integ_zk: cannot start ZooKeeper (test/zk/zk-server.sh;"
            " apt-get install zookeeper)\n");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "integ_zk: cannot remove %s\n", g_dir);
    return can_skip && WIFEXITED(rc) && WEXITSTATUS(rc) == EXIT_SKIP
               ? EXIT_SKIP
               : EXIT_FAILURE;
  }
  snprintf(cmd, sizeof cmd, "%s/port", g_dir);
  FILE *f = fopen(cmd, "r");
  if (f == NULL || fscanf(f, "%d", &g_zk_port) != 1) {
    fprintf(stderr, "integ_zk: no port\n");
    return EXIT_FAILURE;
  }
  fclose(f);
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  zk_script("stop");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "integ_zk: cannot remove %s\n", g_dir);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
