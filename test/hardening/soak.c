/*
 * soak: a bounded mixed workload.  SOAK_THREADS client threads run unary,
 * client-streaming, server-streaming and bidi calls (random message counts
 * and sizes, some up to 300 KiB) against a server in a forked child, with
 * random cancels and short deadlines, for TRI_SOAK_SECONDS (default 20).
 *
 * Checked:
 *  - every message on a stream that ended OK arrived exactly once and in
 *    order (sequence numbers + nonce + deterministic filler, checked on
 *    both sides: the server finishes DATA_LOSS on a gap);
 *  - the only non-OK outcomes are CANCELLED on calls we cancelled and
 *    DEADLINE_EXCEEDED on calls with a deadline;
 *  - server and client RSS stay flat: after warm-up (a quarter of the
 *    run, at least 3 s) both are sampled every 250 ms and a least-squares
 *    line is fitted; its slope must stay under SLOPE_BOUND_KIB_S (see
 *    there).  RSS at the end is also compared with RSS after warm-up
 *    (margin max(24 MiB, 50%), which catches a big one-off growth that a
 *    slope may not);
 *  - every library budget (lib/budget.h) is back at zero once everything
 *    is freed, in this process (client) and in the server child.
 * Prints "soak:" lines with the numbers.  Exit 0 = pass, 1 = fail.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "h2raw.h"
#include "hutil.h"

#define SOAK_THREADS 12

/*
 * RSS growth allowed after warm-up, as the slope of a least-squares line
 * through samples taken every SAMPLE_MS, in KiB/s.
 *
 * Why 100 KiB/s: at the ~2000-3000 calls/s this soak makes here, a leak of
 * 40-50 bytes per call, or of one 64 KiB buffer a second, crosses it; the
 * previous check (end vs warm-up, 24 MiB margin over ~15 s) let through
 * about 1.6 MiB/s.  What passes: with glibc's malloc thresholds pinned
 * (main()), slopes of the current library over 20 s runs (~1500 calls/s
 * on a loaded 2-core VM) were +4..+42 KiB/s, and +22 / +19 KiB/s
 * (server / client) over a 60 s run; without pinning, up to +80 KiB/s.
 * The fit over ~60 samples averages out RSS moving by a few hundred KiB
 * either way between samples.  Sanitized builds keep shadow memory and
 * quarantines: there the slope is printed, not asserted.
 */
#define SLOPE_BOUND_KIB_S 100.0
#define SAMPLE_MS 250

enum { K_UNARY, K_CLIENT, K_SERVER, K_BIDI, K_N };
static const char *kname[K_N] = {"unary", "client-stream", "server-stream",
                                 "bidi"};

static struct {
  atomic_long calls[K_N], ok[K_N], cancelled[K_N], deadline[K_N];
  atomic_long msgs_verified;
  atomic_long bad;            /* unexpected status or order violation */
  char first_bad[8][256];
  atomic_int nbad_msgs;
} st;

static atomic_int g_stop;
static int g_port;
static tri_channel *g_ch[3];

static void report_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_bad(const char *fmt, ...) {
  va_list ap;
  atomic_fetch_add(&st.bad, 1);
  int i = atomic_fetch_add(&st.nbad_msgs, 1);
  if (i < 8) {
    va_start(ap, fmt);
    vsnprintf(st.first_bad[i], sizeof(st.first_bad[i]), fmt, ap);
    va_end(ap);
  }
}

static uint32_t rnd(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return (uint32_t)(*x >> 11);
}

static size_t pick_size(uint64_t *r) {
  uint32_t p = rnd(r) % 100;
  if (p < 2)
    return 100 * 1024 + rnd(r) % (200 * 1024);
  if (p < 20)
    return SEQMSG_HDR + rnd(r) % 16384;
  return SEQMSG_HDR + rnd(r) % 256;
}

/* Classify the end of one call.  |verified_all| says every expected
 * message arrived in order (only meaningful for OK). */
static void outcome(int k, int rc, int cancelled, int has_deadline,
                    int verified_all, const char *what, const char *msg) {
  atomic_fetch_add(&st.calls[k], 1);
  if (rc == TRI_OK) {
    atomic_fetch_add(&st.ok[k], 1);
    if (!verified_all)
      report_bad("%s ended OK but messages were missing/out of order (%s)",
                 kname[k], what);
  } else if (rc == TRI_CANCELLED && cancelled) {
    atomic_fetch_add(&st.cancelled[k], 1);
  } else if (rc == TRI_DEADLINE_EXCEEDED && has_deadline) {
    atomic_fetch_add(&st.deadline[k], 1);
  } else {
    report_bad("%s: unexpected %s '%s' (cancelled=%d deadline=%d, at %s)",
               kname[k], tri_code_name(rc), msg ? msg : "", cancelled,
               has_deadline, what);
  }
}

static int final_status(tri_stream *s, const char **msg) {
  int rc = tri_stream_wait_status(s, 10000, msg);
  if (rc == TRI_ETIMEDOUT)
    *msg = "no final status within 10 s";
  return rc;
}

static void one_call(uint64_t *r, uint32_t nonce, uint8_t *buf) {
  int k = (int)(rnd(r) % K_N);
  tri_channel *ch = g_ch[rnd(r) % 3];
  int has_deadline = rnd(r) % 10 == 0;
  int cancel_at = rnd(r) % 20 == 0 ? (int)(rnd(r) % 8) : -1;
  int n = 1 + (int)(rnd(r) % 40);
  size_t size = pick_size(r);
  tri_call_opts *co = tri_call_opts_new();
  const char *msg = "";
  int rc, cancelled = 0;
  tri_stream *s = NULL;
  tri_buf *m = NULL;
  uint32_t seq, nn;

  if (co == NULL)
    return;
  int tmo = has_deadline ? 5 + (int)(rnd(r) % 200) : 20000;
  int64_t t_start = h2_now_ms();
  tri_call_opts_set_timeout_ms(co, tmo);
  if (k == K_UNARY) {
    seqmsg_fill(buf, size, 0, nonce);
    rc = tri_unary_call(ch, HM_SEQ_UNARY, co, buf, size, &m, &s);
    if (s)
      tri_stream_wait_status(s, 0, &msg);
    int good = rc == TRI_OK && tri_buf_len(m) == size &&
               memcmp(tri_buf_data(m), buf, size) == 0;
    if (good)
      atomic_fetch_add(&st.msgs_verified, 1);
    outcome(k, rc, 0, has_deadline, good, "unary", msg);
    tri_buf_free(m);
    tri_stream_free(s);
    tri_call_opts_free(co);
    return;
  }
  static const char *methods[K_N] = {HM_SEQ_UNARY, HM_SEQ_CLIENT,
                                     HM_SEQ_SERVER, HM_SEQ_BIDI};
  if (tri_stream_open(ch, methods[k], co, &s) != TRI_OK) {
    report_bad("tri_stream_open failed");
    tri_call_opts_free(co);
    return;
  }
  int verified = 0, good = 1;
  char where[240] = "start";
  switch (k) {
  case K_CLIENT:
    for (int i = 0; i < n; i++) {
      if (i == cancel_at) {
        tri_stream_cancel(s);
        cancelled = 1;
      }
      seqmsg_fill(buf, size, (uint32_t)i, nonce);
      if (tri_stream_send(s, buf, size) != TRI_OK) {
        snprintf(where, sizeof(where), "send %d", i);
        break;
      }
    }
    tri_stream_close_send(s);
    rc = tri_stream_recv(s, &m);
    if (rc == TRI_OK) {
      good = seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq, &nn) == 0 &&
             seq == (uint32_t)n && nn == nonce;
      tri_buf_free(m);
      if (good)
        verified += n;
    }
    break;
  case K_SERVER:
    seqmsg_fill(buf, size, (uint32_t)n, nonce);
    if (tri_stream_send_ex(s, buf, size, TRI_SEND_LAST, -1) == TRI_OK) {
      for (int i = 0; i <= n; i++) {
        if (i == cancel_at) {
          tri_stream_cancel(s);
          cancelled = 1;
        }
        rc = tri_stream_recv(s, &m);
        if (rc != TRI_OK) {
          if (rc == TRI_EOF && i != n)
            good = 0;
          if (good)
            snprintf(where, sizeof(where), "recv %d of %d", i, n);
          break;
        }
        if (i == n || seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq,
                                   &nn) != 0 ||
            seq != (uint32_t)i || nn != nonce || tri_buf_len(m) != size) {
          if (good) { /* first bad message: say how it is bad */
            uint32_t h[3] = {0, 0, 0};
            if (tri_buf_len(m) >= SEQMSG_HDR)
              memcpy(h, tri_buf_data(m), sizeof(h));
            snprintf(where, sizeof(where),
                     "server-stream msg %d of %d: got len %zu hdr seq=%u "
                     "nonce=%u len=%u, want len %zu seq=%d nonce=%u",
                     i, n, tri_buf_len(m), h[0], h[1], h[2], size, i, nonce);
          }
          good = 0; /* extra, corrupt, duplicate or out of order */
        } else {
          verified++;
        }
        tri_buf_free(m);
        m = NULL;
      }
    }
    break;
  case K_BIDI:
    for (int i = 0; i < n; i++) {
      if (i == cancel_at) {
        tri_stream_cancel(s);
        cancelled = 1;
      }
      seqmsg_fill(buf, size, (uint32_t)i, nonce);
      rc = tri_stream_send(s, buf, size);
      if (rc != TRI_OK) {
        snprintf(where, sizeof(where), "bidi send %d of %d returned %s", i,
                 n, tri_code_name(rc));
        good = 0;
        break;
      }
      rc = tri_stream_recv(s, &m);
      if (rc != TRI_OK) {
        snprintf(where, sizeof(where), "bidi recv %d of %d returned %s%s%s",
                 i, n, tri_code_name(rc), cancelled ? " (cancelled)" : "",
                 has_deadline ? " (deadline set)" : "");
        good = 0;
        break;
      }
      if (seqmsg_check(tri_buf_data(m), tri_buf_len(m), &seq, &nn) != 0 ||
          seq != (uint32_t)i || nn != nonce)
        good = 0;
      else
        verified++;
      tri_buf_free(m);
      m = NULL;
    }
    tri_stream_close_send(s);
    if (good) {
      rc = tri_stream_recv(s, &m);
      if (rc == TRI_OK) {
        good = 0; /* the server echoed more than we sent */
        tri_buf_free(m);
      }
    }
    break;
  }
  rc = final_status(s, &msg);
  if (rc == TRI_OK && verified != n)
    good = 0;
  if (rc == TRI_OK && !good) {
    size_t wl = strlen(where);
    snprintf(where + wl, sizeof(where) - wl,
             "; %d of %d verified; call took %lld ms, deadline %d ms",
             verified, n, (long long)(h2_now_ms() - t_start), tmo);
  }
  atomic_fetch_add(&st.msgs_verified, verified);
  outcome(k, rc, cancelled, has_deadline, good, where, msg);
  tri_stream_free(s);
  tri_call_opts_free(co);
}

/* Least-squares slope of y over t (seconds): KiB/s. */
static double ls_slope(const double *t, const double *y, int n) {
  double mt = 0, my = 0, sxy = 0, sxx = 0;
  if (n < 2)
    return 0;
  for (int i = 0; i < n; i++) {
    mt += t[i];
    my += y[i];
  }
  mt /= n;
  my /= n;
  for (int i = 0; i < n; i++) {
    sxy += (t[i] - mt) * (y[i] - my);
    sxx += (t[i] - mt) * (t[i] - mt);
  }
  return sxx > 0 ? sxy / sxx : 0;
}

static void *worker(void *arg) {
  uint64_t r = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
  uint8_t *buf = malloc(300 * 1024 + 64);
  if (buf == NULL)
    return NULL;
  for (long i = 0; i < 100000000L && !atomic_load(&g_stop); i++)
    one_call(&r, (uint32_t)(((uintptr_t)arg << 24) ^ (uint32_t)i), buf);
  free(buf);
  return NULL;
}

int main(void) {
  const char *env = getenv("TRI_SOAK_SECONDS");
  int seconds = env ? atoi(env) : 20;
  if (seconds < 2)
    seconds = 2;
  if (seconds > 3600)
    seconds = 3600;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  /* Pin glibc's malloc thresholds (here, so the forked server inherits
   * them): by default every free of a large mmapped block raises the mmap
   * threshold (up to 32 MiB), after which the soak's random 100-300 KiB
   * messages come from the heaps and the heaps' high-water marks creep up
   * for minutes: an RSS slope of up to +80 KiB/s with no leak at all.
   * Fixed thresholds make RSS follow live memory, which is what the slope
   * check is about. */
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024);

  hsrv srv;
  if (hsrv_start(&srv, NULL) != 0)
    return 1;
  g_port = srv.port;
  for (int i = 0; i < 3; i++) {
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", srv.port);
    if (tri_channel_new(&g_ch[i], target, NULL) != TRI_OK)
      return 1;
  }
  pthread_t t[SOAK_THREADS];
  int64_t t0 = h2_now_ms();
  for (long i = 0; i < SOAK_THREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
      return 1;
  int warm_s = seconds / 4 < 3 ? 3 : seconds / 4;
  if (warm_s >= seconds)
    warm_s = seconds - 1;
  h2_sleep_ms(warm_s * 1000);
  long srv_warm = rss_kb(srv.pid), cli_warm = rss_kb(getpid());
  long calls_warm = 0;
  for (int k = 0; k < K_N; k++)
    calls_warm += atomic_load(&st.calls[k]);
  printf("soak: warm-up after %d s: server RSS %ld KiB, client RSS %ld KiB, "
         "%ld calls\n", warm_s, srv_warm, cli_warm, calls_warm);
  int max_samples = (seconds - warm_s) * (1000 / SAMPLE_MS) + 2;
  double *ts = calloc((size_t)max_samples, sizeof(double));
  double *ys = calloc((size_t)max_samples, sizeof(double));
  double *yc = calloc((size_t)max_samples, sizeof(double));
  if (ts == NULL || ys == NULL || yc == NULL)
    return 1;
  int ns = 0;
  int64_t t_warm = h2_now_ms();
  ts[ns] = 0;
  ys[ns] = (double)srv_warm;
  yc[ns++] = (double)cli_warm;
  while (ns < max_samples &&
         h2_now_ms() - t_warm < (int64_t)(seconds - warm_s) * 1000) {
    h2_sleep_ms(SAMPLE_MS);
    long a = rss_kb(srv.pid), c = rss_kb(getpid());
    if (a > 0 && c > 0) {
      ts[ns] = (double)(h2_now_ms() - t_warm) / 1000.0;
      ys[ns] = (double)a;
      yc[ns++] = (double)c;
    }
    if (atomic_load(&st.bad) > 100)
      break; /* enough evidence */
  }
  long srv_end = rss_kb(srv.pid), cli_end = rss_kb(getpid());
  double srv_slope = ls_slope(ts, ys, ns), cli_slope = ls_slope(ts, yc, ns);
  double span_s = ns > 1 ? ts[ns - 1] : 0;
  free(ts);
  free(ys);
  free(yc);
  atomic_store(&g_stop, 1);
  int joined = 1;
  int64_t jdl = h2_now_ms() + 30000;
  for (int i = 0; i < SOAK_THREADS; i++) {
    /* every call is bounded (20 s deadline at most) */
    while (pthread_tryjoin_np(t[i], NULL) != 0) {
      if (h2_now_ms() > jdl) {
        joined = 0;
        break;
      }
      h2_sleep_ms(10);
    }
  }
  int64_t elapsed = h2_now_ms() - t0;
  long total = 0;
  for (int k = 0; k < K_N; k++) {
    total += atomic_load(&st.calls[k]);
    printf("soak: %-13s calls=%ld ok=%ld cancelled=%ld deadline=%ld\n",
           kname[k], atomic_load(&st.calls[k]), atomic_load(&st.ok[k]),
           atomic_load(&st.cancelled[k]), atomic_load(&st.deadline[k]));
  }
  printf("soak: %d threads, %lld ms, %ld calls (%.0f/s), %ld messages "
         "verified in order, %ld problem(s)\n",
         SOAK_THREADS, (long long)elapsed, total,
         total * 1000.0 / (double)(elapsed ? elapsed : 1),
         atomic_load(&st.msgs_verified), atomic_load(&st.bad));
  long srv_margin = srv_warm / 2 > 24 * 1024 ? srv_warm / 2 : 24 * 1024;
  long cli_margin = cli_warm / 2 > 24 * 1024 ? cli_warm / 2 : 24 * 1024;
  printf("soak: RSS server warm=%ld end=%ld (delta %+ld KiB, allowed %ld); "
         "client warm=%ld end=%ld (delta %+ld KiB, allowed %ld)\n",
         srv_warm, srv_end, srv_end - srv_warm, srv_margin, cli_warm, cli_end,
         cli_end - cli_warm, cli_margin);
  int fail = 0;
  for (int i = 0; i < 8 && i < atomic_load(&st.nbad_msgs); i++)
    printf("soak: FAIL %s\n", st.first_bad[i]);
  if (atomic_load(&st.bad) > 0)
    fail = 1;
  if (!joined) {
    printf("soak: FAIL worker threads still running 30 s after stop\n");
    fail = 1;
  }
  if (total < 100) {
    printf("soak: FAIL only %ld calls completed\n", total);
    fail = 1;
  }
  if (!HUTIL_SANITIZED && srv_end - srv_warm > srv_margin) {
    printf("soak: FAIL server RSS grew %ld KiB after warm-up\n",
           srv_end - srv_warm);
    fail = 1;
  }
  if (!HUTIL_SANITIZED && cli_end - cli_warm > cli_margin) {
    printf("soak: FAIL client RSS grew %ld KiB after warm-up\n",
           cli_end - cli_warm);
    fail = 1;
  }
  printf("soak: RSS slope after warm-up (%d samples over %.1f s): server "
         "%+.1f KiB/s, client %+.1f KiB/s (bound %.0f KiB/s%s)\n",
         ns, span_s, srv_slope, cli_slope, SLOPE_BOUND_KIB_S,
         HUTIL_SANITIZED ? ", not asserted in a sanitized build" : "");
  if (ns < 8) {
    printf("soak: FAIL only %d RSS samples after warm-up\n", ns);
    fail = 1;
  }
  if (!HUTIL_SANITIZED && srv_slope >= SLOPE_BOUND_KIB_S) {
    printf("soak: FAIL server RSS grows %.1f KiB/s after warm-up (bound "
           "%.0f)\n", srv_slope, SLOPE_BOUND_KIB_S);
    fail = 1;
  }
  if (!HUTIL_SANITIZED && cli_slope >= SLOPE_BOUND_KIB_S) {
    printf("soak: FAIL client RSS grows %.1f KiB/s after warm-up (bound "
           "%.0f)\n", cli_slope, SLOPE_BOUND_KIB_S);
    fail = 1;
  }
  if (joined) {
    char why[300];
    for (int i = 0; i < 3; i++)
      tri_channel_free(g_ch[i]);
    /* Everything the client side took is given back once its channels
     * are freed (2 s to settle: the last references drop as the I/O
     * threads exit). */
    if (budgets_settle(2000, why, sizeof(why)) != 0) {
      printf("soak: FAIL client budgets not back to zero: %s\n", why);
      fail = 1;
    }
    /* And in the server child, after shutdown and tri_server_free(). */
    int brv = hsrv_free_budgets(&srv, 1000, 2000, 10000, why, sizeof(why));
    if (brv != 0) {
      printf("soak: FAIL server budgets not back to zero: %s\n",
             brv < 0 ? "server child did not answer" : why);
      fail = 1;
    } else {
      printf("soak: budgets back to zero in client and server\n");
    }
  }
  hsrv_kill(&srv);
  printf("soak: %s\n", fail ? "FAIL" : "PASS");
  return fail;
}
