/*
 * integ_zk_channel: a channel with a zookeeper:// target and round_robin
 * over three providers registered in a real ZooKeeper (test/zk/
 * zk-server.sh), through a provider shut down gracefully, one SIGKILLed
 * and one started later:
 *   - calls spread evenly (each provider within +-10 % of a third);
 *   - no call fails after the graceful shutdown (it leaves the registry
 *     before it drains);
 *   - calls move off the killed provider within the session timeout
 *     + 1 s;
 *   - the restarted provider gets calls again.
 *
 * Providers are this program re-executed with --provider.  Without
 * ZooKeeper (library or server) it FAILS, unless TRI_ALLOW_SKIP=1 (77).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "testutil.h"

#define IFACE "test.zkch.Who"
#define SESSION_MS 4000
#define EXIT_SKIP 77

static char g_dir[512];
static int g_zk_port;
static char g_self[1024]; /* this program's path (valgrind: the client's) */

static int zk_script(const char *what) {
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "sh '%s' %s '%s' %d > '%s/port.out'", ZK_SCRIPT,
           what, g_dir, g_zk_port, g_dir);
  return system(cmd);
}

/* ---- provider process -------------------------------------------------- */

static int g_my_port;

/* Answers with the provider's port, so the test sees where calls went. */
static int h_who(tri_stream *s, void *ud) {
  tri_buf *m;
  char out[16];
  (void)ud;
  int rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return rv == TRI_EOF ? TRI_INVALID_ARGUMENT : rv;
  tri_buf_free(m);
  int n = snprintf(out, sizeof out, "%d", g_my_port);
  return tri_stream_send(s, out, (size_t)n);
}

static int provider_main(int wfd) {
  char uri[200];
  tri_server *srv;
  tri_server_opts *o = tri_server_opts_new();
  int p = -1;
  snprintf(uri, sizeof uri, "zookeeper://127.0.0.1:%d?session=%d"
           "&application=integ_zk_channel", g_zk_port, SESSION_MS);
  if (tri_server_opts_set_registry(o, uri) != TRI_OK ||
      tri_server_new(&srv, o) != TRI_OK ||
      tri_server_register(srv, "/" IFACE "/Who", h_who, NULL) != 0 ||
      tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 3000) != TRI_OK) {
    fprintf(stderr, "provider: %s\n", tri_last_error());
    if (write(wfd, &p, sizeof p) < 0)
      return 3;
    return 2;
  }
  g_my_port = tri_server_port(srv);
  if (tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "provider: %s\n", tri_last_error());
    return 2;
  }
  tri_server_opts_free(o);
  p = g_my_port;
  if (write(wfd, &p, sizeof p) != sizeof p)
    return 3;
  close(wfd);
  tri_server_wait(srv);
  tri_server_free(srv);
  return 0;
}

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
    execl(g_self, "integ_zk_channel", "--provider", zp, fd,
          (char *)NULL);
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
  for (int i = 0; i < 1000; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return;
    tu_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

/* ---- the channel ------------------------------------------------------- */

/* One call: the answering provider's port, or -status. */
static int who(tri_channel *ch, tri_call_opts *co) {
  tri_buf *resp;
  int rv = tri_unary_call(ch, "/" IFACE "/Who", co, "?", 1, &resp, NULL);
  if (rv != TRI_OK)
    return -rv;
  int port = atoi((const char *)tri_buf_data(resp));
  tri_buf_free(resp);
  return port;
}

START_TEST(test_round_robin_through_zookeeper) {
  char target[200];
  int port[4];
  pid_t pid[4];
  tri_channel *ch;
  tri_channel_opts *o = tri_channel_opts_new();
  tri_call_opts *co = tri_call_opts_new();

  tri_call_opts_set_timeout_ms(co, 5000);
  for (int i = 0; i < 3; i++)
    pid[i] = provider_start(&port[i]);
  snprintf(target, sizeof target, "zookeeper://127.0.0.1:%d/" IFACE,
           g_zk_port);
  ck_assert_int_eq(tri_channel_opts_set_lb_policy(o, "round_robin"), TRI_OK);
  ck_assert_int_eq(tri_channel_new(&ch, target, o), TRI_OK);

  /* Wait until all three answer (registration and connections). */
  int seen = 0;
  for (int i = 0; i < 3000 && seen != 7; i++) {
    int p = who(ch, co);
    for (int k = 0; k < 3; k++)
      if (p == port[k])
        seen |= 1 << k;
    if (p < 0)
      tu_sleep_ms(10);
  }
  ck_assert_msg(seen == 7, "not every provider answered (mask %d)", seen);

  /* Distribution. */
  int count[3] = {0, 0, 0}, other = 0;
  for (int i = 0; i < 3000; i++) {
    int p = who(ch, co);
    int k;
    for (k = 0; k < 3 && p != port[k]; k++)
      ;
    if (k < 3)
      count[k]++;
    else
      other++;
  }
  printf("integ_zk_channel: 3000 calls: %d / %d / %d (other %d)\n",
         count[0], count[1], count[2], other);
  ck_assert_int_eq(other, 0);
  for (int k = 0; k < 3; k++)
    ck_assert_msg(count[k] >= 900 && count[k] <= 1100,
                  "provider %d got %d of 3000 calls", k, count[k]);

  /* Graceful shutdown of provider 1: no call fails. */
  int64_t t0 = tu_now_ms(), last1 = -1;
  int fails = 0, calls = 0;
  kill(pid[1], SIGTERM);
  while (tu_now_ms() - t0 < 3000) {
    int p = who(ch, co);
    calls++;
    if (p < 0)
      fails++;
    if (p == port[1])
      last1 = tu_now_ms() - t0;
  }
  printf("integ_zk_channel: graceful shutdown: %d calls, %d failed, last "
         "call to it at %lld ms\n", calls, fails, (long long)last1);
  ck_assert_int_eq(fails, 0);
  ck_assert_msg(last1 < 1000, "calls still went to the stopped provider "
                "%lld ms after SIGTERM", (long long)last1);
  provider_reap(pid[1], SIGTERM);

  /* SIGKILL provider 0: calls move off it. */
  t0 = tu_now_ms();
  int64_t last0 = -1;
  fails = 0;
  calls = 0;
  kill(pid[0], SIGKILL);
  while (tu_now_ms() - t0 < SESSION_MS + 2000) {
    int p = who(ch, co);
    calls++;
    if (p < 0)
      fails++;
    if (p == port[0])
      last0 = tu_now_ms() - t0;
  }
  printf("integ_zk_channel: SIGKILL: %d calls, %d failed, last call to it "
         "at %lld ms\n", calls, fails, (long long)last0);
  ck_assert_msg(last0 < SESSION_MS + 1000, "calls reached the killed "
                "provider %lld ms after SIGKILL", (long long)last0);
  provider_reap(pid[0], SIGKILL);

  /* A new provider joins. */
  t0 = tu_now_ms();
  pid[3] = provider_start(&port[3]);
  int64_t joined = -1;
  while (tu_now_ms() - t0 < 10000 && joined < 0) {
    if (who(ch, co) == port[3])
      joined = tu_now_ms() - t0;
  }
  printf("integ_zk_channel: restarted provider got calls %lld ms after its "
         "start\n", (long long)joined);
  ck_assert_msg(joined >= 0, "restarted provider never got a call");

  tri_channel_free(ch);
  tri_channel_opts_free(o);
  tri_call_opts_free(co);
  provider_reap(pid[2], SIGTERM);
  provider_reap(pid[3], SIGTERM);
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("integ_zk_channel");
  TCase *tc = tcase_create("zk");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_round_robin_through_zookeeper);
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
  fprintf(stderr, "integ_zk_channel: built without the ZooKeeper C client "
          "(libzookeeper-mt-dev)\n");
  return can_skip ? EXIT_SKIP : EXIT_FAILURE;
#endif
  snprintf(g_dir, sizeof g_dir, "%s/integ_zk_channel.XXXXXX",
           tmp ? tmp : "/tmp");
  if (mkdtemp(g_dir) == NULL) {
    perror("integ_zk_channel: mkdtemp");
    return EXIT_FAILURE;
  }
  int rc = zk_script("start");
  if (rc != 0) {
    fprintf(stderr, "integ_zk_channel: cannot start ZooKeeper "
            "(test/zk/zk-server.sh; apt-get install zookeeper)\n");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "integ_zk_channel: cannot remove %s\n", g_dir);
    return can_skip && WIFEXITED(rc) && WEXITSTATUS(rc) == EXIT_SKIP
               ? EXIT_SKIP
               : EXIT_FAILURE;
  }
  snprintf(cmd, sizeof cmd, "%s/port", g_dir);
  FILE *f = fopen(cmd, "r");
  if (f == NULL || fscanf(f, "%d", &g_zk_port) != 1) {
    fprintf(stderr, "integ_zk_channel: no port\n");
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
    fprintf(stderr, "integ_zk_channel: cannot remove %s\n", g_dir);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
