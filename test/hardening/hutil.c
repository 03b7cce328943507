/*
 * hutil: server child, healthy client, RSS monitor (see hutil.h).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "hutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "h2raw.h"

#include "budget.h"

/* ---- server child: handlers ------------------------------------------- */

static hsrv_shared *g_sh; /* in the child */

static void note_start(int k) { atomic_fetch_add(&g_sh->started[k], 1); }

static void note_end(int k, int rc, int64_t t0) {
  int slot = rc - HSRV_RC_MIN;
  if (slot < 0)
    slot = 0;
  if (slot >= HSRV_RC_SLOTS)
    slot = HSRV_RC_SLOTS - 1;
  atomic_fetch_add(&g_sh->rc[k][slot], 1);
  int64_t d = h2_now_ms() - t0;
  long long cur = atomic_load(&g_sh->dur_max_ms[k]);
  while (d > cur && !atomic_compare_exchange_weak(&g_sh->dur_max_ms[k], &cur, d))
    ;
  cur = atomic_load(&g_sh->dur_min_ms[k]);
  while (d < cur && !atomic_compare_exchange_weak(&g_sh->dur_min_ms[k], &cur, d))
    ;
  atomic_store(&g_sh->last_end_ms[k], h2_now_ms());
  atomic_fetch_add(&g_sh->ended[k], 1);
}

static void atomic_max(atomic_llong *a, long long v) {
  long long cur = atomic_load(a);
  while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
    ;
}

static void atomic_min(atomic_llong *a, long long v) {
  long long cur = atomic_load(a);
  while (v < cur && !atomic_compare_exchange_weak(a, &cur, v))
    ;
}

static int h_echo(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  tri_buf *m = NULL;
  note_start(HK_ECHO);
  int rc = tri_stream_recv(s, &m);
  if (rc == TRI_OK) {
    rc = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rc == TRI_OK)
      rc = tri_stream_finish(s, TRI_OK, NULL);
  }
  note_end(HK_ECHO, rc, t0);
  return rc >= 0 ? rc : TRI_OK;
}

static int h_big(tri_stream *s, void *ud) {
  static const uint8_t zeros[HSRV_BIG_MSG];
  int64_t t0 = h2_now_ms();
  tri_buf *m = NULL;
  long long sent = 0;
  int rc;

  note_start(HK_BIG);
  rc = tri_stream_recv(s, &m);
  tri_buf_free(m);
  if (rc == TRI_OK || rc == TRI_EOF) {
    rc = TRI_OK;
    for (int i = 0; i < 4096 && rc == TRI_OK; i++) {
      rc = tri_stream_send(s, zeros, sizeof(zeros));
      if (rc == TRI_OK)
        sent += HSRV_BIG_MSG;
    }
    if (rc != TRI_OK) {
      int64_t after = h2_now_ms() - t0;
      atomic_max(&g_sh->big_fail_after_ms_max, after);
      atomic_min(&g_sh->big_fail_after_ms_min, after);
    } else {
      rc = tri_stream_finish(s, TRI_OK, NULL);
    }
  }
  atomic_max(&g_sh->big_max_sent, sent);
  note_end(HK_BIG, rc, t0);
  return TRI_OK;
}

static int h_hang(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  tri_buf *m = NULL;
  int rc = TRI_OK;
  note_start(HK_HANG);
  for (long i = 0; i < 1000000 && rc == TRI_OK; i++) {
    rc = tri_stream_recv(s, &m);
    tri_buf_free(m);
    m = NULL;
  }
  note_end(HK_HANG, rc, t0);
  return rc == TRI_EOF ? TRI_OK : TRI_UNKNOWN;
}

/* Wait (at most 60 s) until the stream has ended; returns its status. */
static int wait_ended(tri_stream *s) {
  for (int i = 0; i < 6000; i++) {
    int rc = tri_stream_send_headers(s);
    if (rc != TRI_OK)
      return rc;
    h2_sleep_ms(10);
  }
  return TRI_ETIMEDOUT;
}

static int h_hold(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  tri_buf *m = NULL;
  int rc = TRI_OK;
  note_start(HK_HOLD);
  for (long i = 0; i < 1000000 && rc == TRI_OK; i++) {
    rc = tri_stream_recv(s, &m);
    tri_buf_free(m);
    m = NULL;
  }
  if (rc == TRI_EOF)
    rc = wait_ended(s);
  note_end(HK_HOLD, rc, t0);
  return TRI_OK;
}

static int h_sink(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  note_start(HK_SINK);
  int rc = wait_ended(s);
  note_end(HK_SINK, rc, t0);
  return TRI_OK;
}

static int h_slow(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  tri_buf *m = NULL;
  note_start(HK_SLOW);
  int rc = tri_stream_recv(s, &m);
  if (rc == TRI_OK) {
    h2_sleep_ms(300);
    rc = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rc == TRI_OK)
      rc = tri_stream_finish(s, TRI_OK, NULL);
  }
  note_end(HK_SLOW, rc, t0);
  return TRI_OK;
}

static int h_ret(tri_stream *s, void *ud) {
  int64_t t0 = h2_now_ms();
  int what = (int)(intptr_t)ud;
  tri_buf *m = NULL;
  note_start(HK_RET);
  int rc = tri_stream_recv(s, &m);
  tri_buf_free(m);
  int ret;
  switch (what) {
  case 7: ret = 7; break;
  case 1234: ret = 1234; break;
  case -3: ret = -3; break;
  case 1: /* one message, then return 0 without finishing */
    rc = tri_stream_send(s, "partial", 7);
    ret = 0;
    break;
  default: ret = 0; break;
  }
  note_end(HK_RET, rc, t0);
  return ret;
}

/* ---- soak handlers ------------------------------------------------------ */

void seqmsg_fill(uint8_t *buf, size_t len, uint32_t seq, uint32_t nonce) {
  uint32_t h[3] = {seq, nonce, (uint32_t)len};
  memcpy(buf, h, sizeof(h));
  uint32_t x = seq * 2654435761u ^ nonce;
  for (size_t i = SEQMSG_HDR; i < len; i++) {
    x = x * 1103515245u + 12345u;
    buf[i] = (uint8_t)(x >> 16);
  }
}

int seqmsg_check(const uint8_t *buf, size_t len, uint32_t *seq,
                 uint32_t *nonce) {
  uint32_t h[3];
  if (len < SEQMSG_HDR)
    return -1;
  memcpy(h, buf, sizeof(h));
  if (h[2] != len)
    return -1;
  uint32_t x = h[0] * 2654435761u ^ h[1];
  for (size_t i = SEQMSG_HDR; i < len; i++) {
    x = x * 1103515245u + 12345u;
    if (buf[i] != (uint8_t)(x >> 16))
      return -1;
  }
  *seq = h[0];
  *nonce = h[1];
  return 0;
}

static int h_seq_unary(tri_stream *s, void *ud) {
  tri_buf *m = NULL;
  uint32_t seq, nonce;
  int rc = tri_stream_recv(s, &m);
  if (rc != TRI_OK)
    return TRI_OK;
  if (seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq, &nonce) != 0) {
    tri_buf_free(m);
    return tri_stream_finish(s, TRI_DATA_LOSS, "bad unary request"), TRI_OK;
  }
  rc = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
  tri_buf_free(m);
  if (rc == TRI_OK)
    tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

static int h_seq_client(tri_stream *s, void *ud) {
  uint32_t next = 0, nonce0 = 0;
  tri_buf *m = NULL;
  int rc;
  for (;;) {
    uint32_t seq, nonce;
    rc = tri_stream_recv(s, &m);
    if (rc != TRI_OK)
      break;
    int bad = seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq, &nonce) ||
              seq != next || (next > 0 && nonce != nonce0);
    tri_buf_free(m);
    if (bad) {
      char msg[96];
      snprintf(msg, sizeof(msg), "client stream: expected seq %u, got %u",
               next, seq);
      tri_stream_finish(s, TRI_DATA_LOSS, msg);
      return TRI_OK;
    }
    nonce0 = nonce;
    next++;
  }
  if (rc != TRI_EOF)
    return TRI_OK;
  uint8_t reply[SEQMSG_HDR];
  seqmsg_fill(reply, sizeof(reply), next, nonce0);
  if (tri_stream_send(s, reply, sizeof(reply)) == TRI_OK)
    tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

static int h_seq_server(tri_stream *s, void *ud) {
  tri_buf *m = NULL;
  uint32_t n, nonce;
  if (tri_stream_recv(s, &m) != TRI_OK)
    return TRI_OK;
  int bad = seqmsg_check(tri_buf_data(m), tri_buf_len(m), &n, &nonce);
  size_t size = tri_buf_len(m); /* responses are as long as the request */
  tri_buf_free(m);
  if (bad || size < SEQMSG_HDR || n > 100000) {
    tri_stream_finish(s, TRI_DATA_LOSS, "bad server-stream request");
    return TRI_OK;
  }
  uint8_t *buf = malloc(size);
  if (buf == NULL)
    return TRI_RESOURCE_EXHAUSTED;
  int rc = TRI_OK;
  for (uint32_t i = 0; i < n && rc == TRI_OK; i++) {
    seqmsg_fill(buf, size, i, nonce);
    rc = tri_stream_send(s, buf, size);
  }
  free(buf);
  if (rc == TRI_OK)
    tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

static int h_seq_bidi(tri_stream *s, void *ud) {
  uint32_t next = 0, nonce0 = 0;
  tri_buf *m = NULL;
  int rc;
  for (;;) {
    uint32_t seq, nonce;
    rc = tri_stream_recv(s, &m);
    if (rc != TRI_OK)
      break;
    int bad = seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq, &nonce) ||
              seq != next || (next > 0 && nonce != nonce0);
    if (bad) {
      tri_buf_free(m);
      char msg[96];
      snprintf(msg, sizeof(msg), "bidi: expected seq %u, got %u", next, seq);
      tri_stream_finish(s, TRI_DATA_LOSS, msg);
      return TRI_OK;
    }
    nonce0 = nonce;
    next++;
    rc = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rc != TRI_OK)
      return TRI_OK;
  }
  if (rc == TRI_EOF)
    tri_stream_finish(s, TRI_OK, NULL);
  return TRI_OK;
}

double hutil_mult(void) {
  const char *e = getenv("CK_TIMEOUT_MULTIPLIER");
  char *end = NULL;
  double m;
  if (e == NULL || *e == '\0')
    return 1.0;
  m = strtod(e, &end);
  if (end == e || !(m >= 1.0) || m > 1000.0)
    return 1.0;
  return m;
}

int budgets_settle(int settle_ms, char *report, size_t cap) {
  int64_t end = h2_now_ms() + settle_ms;
  tri__budgets b;
  for (long i = 0; i < 1000000; i++) {
    tri__budgets_get(&b);
    if (b.streams == 0 && b.conns == 0 && b.rq_bytes == 0 &&
        b.conn_rq_bytes == 0 && b.partial_bytes == 0 && b.ring_bytes == 0 &&
        b.conn_owed == 0) {
      if (cap > 0)
        report[0] = '\0';
      return 0;
    }
    if (h2_now_ms() > end)
      break;
    h2_sleep_ms(2);
  }
  if (cap > 0)
    snprintf(report, cap,
             "streams=%lld conns=%lld rq_bytes=%lld conn_rq_bytes=%lld "
             "partial_bytes=%lld ring_bytes=%lld conn_owed=%lld (loops=%lld)",
             (long long)b.streams, (long long)b.conns, (long long)b.rq_bytes,
             (long long)b.conn_rq_bytes, (long long)b.partial_bytes,
             (long long)b.ring_bytes, (long long)b.conn_owed,
             (long long)b.loops);
  return 1;
}

static void child_main(const hsrv_cfg *cfg, int port_wfd, int ctl_rfd) {
  tri_server_opts *o = tri_server_opts_new();
  tri_server *srv = NULL;
  if (o == NULL)
    _exit(2);
  if (cfg != NULL) {
    if (cfg->max_workers > 0)
      tri_server_opts_set_max_workers(o, cfg->max_workers);
    if (cfg->max_streams > 0)
      tri_server_opts_set_max_concurrent_streams(o, cfg->max_streams);
    if (cfg->queue_timeout_ms >= 0)
      tri_server_opts_set_queue_timeout_ms(o, cfg->queue_timeout_ms);
    if (cfg->send_buffer > 0)
      tri_server_opts_set_send_buffer(o, cfg->send_buffer);
    if (cfg->max_per_conn > 0)
      tri_server_opts_set_max_handlers_per_conn(o, cfg->max_per_conn);
    if (cfg->max_resets_per_s > 0)
      tri_server_opts_set_max_resets_per_s(o, cfg->max_resets_per_s);
  }
  if (tri_server_new(&srv, o) != TRI_OK)
    _exit(3);
  tri_server_opts_free(o);
  static const struct {
    const char *m;
    tri_handler_fn fn;
    intptr_t ud;
  } reg[] = {
      {HM_ECHO, h_echo, 0},       {HM_BIG, h_big, 0},
      {HM_HANG, h_hang, 0},       {HM_HOLD, h_hold, 0},
      {HM_SINK, h_sink, 0},       {HM_SLOW, h_slow, 0},
      {HM_RET7, h_ret, 7},        {HM_RETBOGUS, h_ret, 1234},
      {HM_RETNEG, h_ret, -3},     {HM_RETMSG, h_ret, 1},
      {HM_RETNONE, h_ret, 0},
      {HM_SEQ_UNARY, h_seq_unary, 0}, {HM_SEQ_CLIENT, h_seq_client, 0},
      {HM_SEQ_SERVER, h_seq_server, 0}, {HM_SEQ_BIDI, h_seq_bidi, 0},
  };
  for (size_t i = 0; i < sizeof(reg) / sizeof(reg[0]); i++)
    if (tri_server_register(srv, reg[i].m, reg[i].fn, (void *)reg[i].ud) !=
        TRI_OK)
      _exit(4);
  if (tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_start(srv) != TRI_OK)
    _exit(5);
  int port = tri_server_port(srv);
  if (write(port_wfd, &port, sizeof(port)) != (ssize_t)sizeof(port))
    _exit(6);
  for (;;) {
    char cmd;
    ssize_t n = read(ctl_rfd, &cmd, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || cmd == 'Q')
      _exit(0);
    if (cmd == 'S') {
      int64_t drain;
      if (read(ctl_rfd, &drain, sizeof(drain)) != (ssize_t)sizeof(drain))
        _exit(7);
      tri_server_shutdown(srv, drain);
      char done = 'D';
      if (write(port_wfd, &done, 1) != 1)
        _exit(8);
    }
    if (cmd == 'B') {
      /* Shut down, free, then report the budgets: a 'B' byte, the result
       * and a fixed-size text. */
      int64_t arg[2];
      char rep[1 + sizeof(int) + 256];
      int rv;
      if (read(ctl_rfd, arg, sizeof(arg)) != (ssize_t)sizeof(arg))
        _exit(9);
      tri_server_shutdown(srv, arg[0]);
      tri_server_free(srv);
      srv = NULL;
      memset(rep, 0, sizeof(rep));
      rep[0] = 'B';
      rv = budgets_settle((int)arg[1], rep + 1 + sizeof(int), 256);
      memcpy(rep + 1, &rv, sizeof(int));
      if (write(port_wfd, rep, sizeof(rep)) != (ssize_t)sizeof(rep))
        _exit(10);
      /* Nothing left to serve: wait to be killed or told to quit. */
      for (;;) {
        n = read(ctl_rfd, &cmd, 1);
        if (n < 0 && errno == EINTR)
          continue;
        _exit(0);
      }
    }
  }
}

int hsrv_start(hsrv *h, const hsrv_cfg *cfg) {
  int p1[2], p2[2];
  memset(h, 0, sizeof(*h));
  h->sh = mmap(NULL, sizeof(hsrv_shared), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (h->sh == MAP_FAILED) {
    perror("hsrv: mmap");
    return -1;
  }
  memset(h->sh, 0, sizeof(*h->sh));
  for (int k = 0; k < HK_N; k++)
    atomic_store(&h->sh->dur_min_ms[k], INT64_MAX);
  atomic_store(&h->sh->big_fail_after_ms_min, INT64_MAX);
  if (pipe2(p1, O_CLOEXEC) != 0 || pipe2(p2, O_CLOEXEC) != 0) {
    perror("hsrv: pipe");
    return -1;
  }
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("hsrv: fork");
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    close(p1[0]);
    close(p2[1]);
    g_sh = h->sh;
    child_main(cfg, p1[1], p2[0]);
    _exit(0);
  }
  close(p1[1]);
  close(p2[0]);
  h->pid = pid;
  h->rep_fd = p1[0];
  h->ctl_fd = p2[1];
  struct pollfd pfd = {h->rep_fd, POLLIN, 0};
  if (poll(&pfd, 1, 10000) != 1 ||
      read(h->rep_fd, &h->port, sizeof(h->port)) != (ssize_t)sizeof(h->port)) {
    fprintf(stderr, "hsrv: the server child did not report a port\n");
    hsrv_kill(h);
    return -1;
  }
  return 0;
}

long hsrv_shutdown(hsrv *h, int64_t drain_ms, int timeout_ms) {
  char cmd[1 + sizeof(int64_t)];
  cmd[0] = 'S';
  memcpy(cmd + 1, &drain_ms, sizeof(drain_ms));
  int64_t t0 = h2_now_ms();
  if (write(h->ctl_fd, cmd, sizeof(cmd)) != (ssize_t)sizeof(cmd))
    return -1;
  struct pollfd pfd = {h->rep_fd, POLLIN, 0};
  char rep;
  if (poll(&pfd, 1, timeout_ms) != 1 || read(h->rep_fd, &rep, 1) != 1)
    return -1;
  return (long)(h2_now_ms() - t0);
}

int hsrv_free_budgets(hsrv *h, int64_t drain_ms, int settle_ms,
                      int timeout_ms, char *report, size_t cap) {
  char cmd[1 + 2 * sizeof(int64_t)];
  int64_t arg[2] = {drain_ms, settle_ms};
  char rep[1 + sizeof(int) + 256];
  size_t got = 0;
  int64_t end = h2_now_ms() + timeout_ms;
  int rv;

  if (cap > 0)
    snprintf(report, cap, "server child did not answer");
  cmd[0] = 'B';
  memcpy(cmd + 1, arg, sizeof(arg));
  if (write(h->ctl_fd, cmd, sizeof(cmd)) != (ssize_t)sizeof(cmd))
    return -1;
  while (got < sizeof(rep)) {
    int64_t left = end - h2_now_ms();
    struct pollfd pfd = {h->rep_fd, POLLIN, 0};
    if (left <= 0 || poll(&pfd, 1, (int)left) != 1)
      return -1;
    ssize_t n = read(h->rep_fd, rep + got, sizeof(rep) - got);
    if (n <= 0)
      return -1;
    got += (size_t)n;
  }
  if (rep[0] != 'B')
    return -1;
  memcpy(&rv, rep + 1, sizeof(int));
  rep[sizeof(rep) - 1] = '\0';
  if (cap > 0)
    snprintf(report, cap, "%s", rep + 1 + sizeof(int));
  return rv;
}

void hsrv_kill(hsrv *h) {
  if (h->pid > 0) {
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    h->pid = 0;
  }
  if (h->ctl_fd > 0)
    close(h->ctl_fd);
  if (h->rep_fd > 0)
    close(h->rep_fd);
  h->ctl_fd = h->rep_fd = -1;
  /* The shared page stays mapped: results may still be read; the test
   * process is short-lived. */
}

long rss_kb(pid_t pid) {
  char path[64];
  long size, res;
  snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  int n = fscanf(f, "%ld %ld", &size, &res);
  fclose(f);
  if (n != 2)
    return -1;
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

int hsrv_rc(const hsrv *h, int k, int rc) {
  int slot = rc - HSRV_RC_MIN;
  if (slot < 0 || slot >= HSRV_RC_SLOTS)
    return 0;
  return atomic_load(&h->sh->rc[k][slot]);
}

const char *hsrv_rc_summary(const hsrv *h, int k) {
  static __thread char bufs[8][400];
  static __thread unsigned next;
  char *buf = bufs[next++ % 8];
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; i < HSRV_RC_SLOTS && o < 400 - 40; i++) {
    int v = atomic_load(&h->sh->rc[k][i]);
    if (v)
      o += (size_t)snprintf(buf + o, 400 - o, "%s%s:%d",
                            o ? " " : "", tri_code_name(i + HSRV_RC_MIN), v);
  }
  if (o == 0)
    snprintf(buf, 400, "(none ended)");
  return buf;
}

int hsrv_wait_count(const hsrv *h, int k, int n, int ended, int timeout_ms) {
  int64_t dl = h2_now_ms() + timeout_ms;
  for (;;) {
    int v = ended ? atomic_load(&h->sh->ended[k])
                  : atomic_load(&h->sh->started[k]);
    if (v >= n)
      return 0;
    if (h2_now_ms() >= dl)
      return -1;
    h2_sleep_ms(2);
  }
}

/* ---- healthy client --------------------------------------------------- */

static void *healthy_main(void *arg) {
  healthy *hc = arg;
  tri_call_opts *co = tri_call_opts_new();
  uint8_t req[32];
  if (co == NULL)
    return NULL;
  tri_call_opts_set_timeout_ms(co, 2000);
  for (long i = 0; i < 100000000L && !atomic_load(&hc->stop); i++) {
    snprintf((char *)req, sizeof(req), "healthy-%ld", i);
    size_t len = strlen((char *)req);
    tri_buf *resp = NULL;
    tri_stream *st = NULL;
    int64_t t0 = h2_now_ms();
    int rc = tri_unary_call(hc->ch, HM_ECHO, co, req, len, &resp, &st);
    int64_t t1 = h2_now_ms();
    if (t1 - t0 > hc->max_call_ms)
      hc->max_call_ms = t1 - t0;
    if (rc == TRI_OK &&
        (tri_buf_len(resp) != len || memcmp(tri_buf_data(resp), req, len))) {
      rc = TRI_DATA_LOSS;
    }
    if (rc == TRI_OK) {
      long n = atomic_load(&hc->n_ok);
      if (n < hc->ok_cap)
        hc->ok_at[n] = t1;
      atomic_store(&hc->n_ok, n + 1);
    } else {
      long n = atomic_load(&hc->n_fail);
      if (n < 64) {
        hc->fail_at[n] = t1;
        hc->fail_code[n] = rc;
      }
      if (n == 0) {
        const char *msg = "";
        if (st != NULL)
          tri_stream_wait_status(st, 0, &msg);
        snprintf(hc->first_fail_msg, sizeof(hc->first_fail_msg), "%s: %s",
                 tri_code_name(rc), msg ? msg : "");
      }
      atomic_store(&hc->n_fail, n + 1);
      h2_sleep_ms(5); /* do not spin on a dead server */
    }
    tri_buf_free(resp);
    tri_stream_free(st);
  }
  tri_call_opts_free(co);
  return NULL;
}

int healthy_start(healthy *hc, int port) {
  char target[64];
  memset(hc, 0, sizeof(*hc));
  hc->port = port;
  hc->ok_cap = 4L * 1024 * 1024;
  hc->ok_at = calloc((size_t)hc->ok_cap, sizeof(int64_t));
  if (hc->ok_at == NULL)
    return -1;
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  /* No spinning in recv (tri_channel_opts_set_spin_us): the healthy
   * client measures how much of the *server's* service an attack takes.
   * A client that spins gets its speed from an idle CPU, which any
   * neighbour that uses CPU (the attacker included) takes away, so its
   * baseline would measure the idle CPU, not the server.  Measured on a
   * 2-vCPU VM, 5 runs with the default 200 us spin: baselines
   * 7,500-18,000 calls/s and attack/baseline ratios 0.53-1.46 (one CI
   * run fell below 0.5); 4 runs without: 5,300-8,300 calls/s, ratios
   * 0.81-1.26. */
  tri_channel_opts *co = tri_channel_opts_new();
  if (co == NULL || tri_channel_opts_set_spin_us(co, 0) != TRI_OK ||
      tri_channel_new(&hc->ch, target, co) != TRI_OK) {
    tri_channel_opts_free(co);
    free(hc->ok_at);
    return -1;
  }
  tri_channel_opts_free(co);
  if (pthread_create(&hc->t, NULL, healthy_main, hc) != 0) {
    tri_channel_free(hc->ch);
    free(hc->ok_at);
    return -1;
  }
  hc->running = 1;
  return 0;
}

void healthy_stop(healthy *hc) {
  if (hc->running) {
    atomic_store(&hc->stop, 1);
    pthread_join(hc->t, NULL);
    hc->running = 0;
    tri_channel_free(hc->ch);
    hc->ch = NULL;
  }
}

hstats healthy_stats(const healthy *hc, int64_t from, int64_t to, int win_ms) {
  hstats st;
  memset(&st, 0, sizeof(st));
  long n = atomic_load(&hc->n_ok);
  if (n > hc->ok_cap)
    n = hc->ok_cap;
  int64_t prev = from;
  st.windows = win_ms > 0 ? (int)((to - from) / win_ms) : 0;
  int *hit = calloc((size_t)st.windows + 1, sizeof(int));
  for (long i = 0; i < n; i++) {
    int64_t t = hc->ok_at[i];
    if (t < from || t >= to)
      continue;
    st.calls++;
    if (t - prev > st.max_gap_ms)
      st.max_gap_ms = t - prev;
    prev = t;
    if (hit && win_ms > 0) {
      long w = (long)((t - from) / win_ms);
      if (w < st.windows)
        hit[w] = 1;
    }
  }
  if (to - prev > st.max_gap_ms)
    st.max_gap_ms = to - prev;
  for (int w = 0; hit && w < st.windows; w++)
    if (!hit[w])
      st.empty_windows++;
  free(hit);
  long nf = atomic_load(&hc->n_fail);
  for (long i = 0; i < nf && i < 64; i++)
    if (hc->fail_at[i] >= from && hc->fail_at[i] < to)
      st.fails++;
  if (nf > 64)
    st.fails += nf - 64; /* unknown times: count them */
  st.per_s = to > from ? st.calls * 1000.0 / (double)(to - from) : 0;
  return st;
}

/* ---- RSS monitor ------------------------------------------------------ */

static void *rssmon_main(void *arg) {
  rssmon *m = arg;
  while (!atomic_load(&m->stop)) {
    long kb = rss_kb(m->pid);
    if (kb > 0) {
      atomic_store(&m->last_kb, kb);
      if (kb > atomic_load(&m->peak_kb))
        atomic_store(&m->peak_kb, kb);
    }
    h2_sleep_ms(10);
  }
  return NULL;
}

void rssmon_start(rssmon *m, pid_t pid) {
  memset(m, 0, sizeof(*m));
  m->pid = pid;
  atomic_store(&m->peak_kb, rss_kb(pid));
  atomic_store(&m->last_kb, rss_kb(pid));
  if (pthread_create(&m->t, NULL, rssmon_main, m) == 0)
    m->running = 1;
}

void rssmon_reset_peak(rssmon *m) { atomic_store(&m->peak_kb, rss_kb(m->pid)); }

void rssmon_stop(rssmon *m) {
  if (m->running) {
    atomic_store(&m->stop, 1);
    pthread_join(m->t, NULL);
    m->running = 0;
  }
}

/* ---- measurement ------------------------------------------------------ */

int measure_begin(measure *m, hsrv *srv) {
  memset(m, 0, sizeof(*m));
  m->srv = srv;
  if (healthy_start(&m->hc, srv->port) != 0)
    return -1;
  rssmon_start(&m->mon, srv->pid);
  m->t_base0 = h2_now_ms() + 200; /* skip connecting */
  h2_sleep_ms(1200);
  return 0;
}

void measure_attack_start(measure *m) {
  m->rss_before_kb = rss_kb(m->srv->pid);
  rssmon_reset_peak(&m->mon);
  m->t_attack0 = h2_now_ms();
}

void measure_end(measure *m, const char *name, int min_attack_ms) {
  int64_t now = h2_now_ms();
  if (now < m->t_attack0 + min_attack_ms)
    h2_sleep_ms((int)(m->t_attack0 + min_attack_ms - now));
  m->t_attack1 = h2_now_ms();
  healthy_stop(&m->hc);
  rssmon_stop(&m->mon);
  m->rss_peak_kb = atomic_load(&m->mon.peak_kb);
  m->rss_after_kb = rss_kb(m->srv->pid);
  m->base = healthy_stats(&m->hc, m->t_base0, m->t_attack0, 100);
  m->attack = healthy_stats(&m->hc, m->t_attack0, m->t_attack1, 100);
  printf("measure: %s healthy_calls_per_s=%.0f baseline=%.0f fails=%ld "
         "max_gap_ms=%lld empty_100ms_windows=%d/%d max_call_ms=%lld "
         "rss_kb before=%ld peak=%ld after=%ld (attack %lld ms)\n",
         name, m->attack.per_s, m->base.per_s, m->attack.fails,
         (long long)m->attack.max_gap_ms, m->attack.empty_windows,
         m->attack.windows, (long long)m->hc.max_call_ms, m->rss_before_kb,
         m->rss_peak_kb, m->rss_after_kb,
         (long long)(m->t_attack1 - m->t_attack0));
  if (atomic_load(&m->hc.n_fail) > 0)
    printf("measure: %s healthy client first failure: %s\n", name,
           m->hc.first_fail_msg);
  fflush(stdout);
  free(m->hc.ok_at);
  m->hc.ok_at = NULL;
}
