/*
 * bench-common.c: flags, driver, timing, RSS, protobuf encoding and the W7
 * h2load runner shared by tri-bench and grpc-bench.  See bench-common.h
 * for the result line format and tools/bench/README.md for the flags.
 */
#define _GNU_SOURCE 1

#include "bench-common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef BENCH_HAVE_OPENSSL
#include <openssl/ssl.h>
#endif
#ifdef __linux__
#include <sys/prctl.h>
#endif

extern char **environ;

static long g_server_pid; /* forked child or --server-pid */
static int g_tls;         /* --tls-*: cases get ".tls" */
static int g_raw;         /* --raw: cases get ".raw" */
static char g_grp[16];    /* --io-group=N: cases get ".grpN" */
/* Unary calls the server answered OK (W7); shared with the forked server
 * child (MAP_SHARED before the fork), NULL in --client mode. */
static atomic_llong *g_unary_ok;

/* ------------------------------------------------------------------ */
/* Time, percentiles, output                                           */
/* ------------------------------------------------------------------ */

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

void bench_sleep_ns(int64_t ns) {
  struct timespec ts;
  if (ns <= 0)
    return;
  ts.tv_sec = (time_t)(ns / INT64_C(1000000000));
  ts.tv_nsec = (long)(ns % INT64_C(1000000000));
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* case = CS [.grpN] [.raw] [SFX] [.tls]: W3.t1, W3.t1.raw,
 * W3.t1.raw.cpu.tls, W8.grp1 */
static void line_sfx(const char *impl, const char *workload, const char *cs,
                     const char *sfx, const char *metric, double value,
                     const char *extra) {
  printf("tri-bench impl=%s workload=%s case=%s%s%s%s%s metric=%s "
         "value=%.1f%s%s%s%s\n",
         impl, workload, cs, g_grp, g_raw ? ".raw" : "", sfx,
         g_tls ? ".tls" : "",
         metric, value, extra && *extra ? " " : "", extra ? extra : "",
         g_raw ? " api=raw" : "", g_tls ? " tls=1" : "");
  fflush(stdout);
}

void bench_line(const char *impl, const char *workload, const char *cs,
                const char *metric, double value, const char *extra) {
  line_sfx(impl, workload, cs, "", metric, value, extra);
}

void bench_unary_ok(void) {
  if (g_unary_ok != NULL)
    atomic_fetch_add_explicit(g_unary_ok, 1, memory_order_relaxed);
}

long long bench_unary_ok_count(void) {
  return g_unary_ok != NULL ? (long long)atomic_load(g_unary_ok) : -1;
}

int64_t bench_cpu_self_ns(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

int64_t bench_cpu_pid_ns(long pid) {
  char path[64], buf[1024];
  unsigned long long ut, st;
  const char *p;
  FILE *f;
  size_t n;
  long hz = sysconf(_SC_CLK_TCK);
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* "pid (comm) state ..." : comm may hold spaces; fields after the last
   * ')' start with field 3 (state); utime and stime are fields 14, 15. */
  p = strrchr(buf, ')');
  if (p == NULL || hz <= 0 ||
      sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             &ut, &st) != 2)
    return -1;
  return (int64_t)(ut + st) * (1000000000 / hz);
}

void bench_cpu_take(bench_cpu *c) {
  long spid = bench_server_pid();
  c->client_ns = bench_cpu_self_ns();
  c->server_ns = spid ? bench_cpu_pid_ns(spid) : -1;
}

void bench_cpu_line(const char *impl, const char *workload, const char *cs,
                    const char *metric, long long n, const bench_cpu *a,
                    const bench_cpu *b) {
  char extra[256];
  double cl, sv;
  int have_srv = a->server_ns >= 0 && b->server_ns >= 0;
  if (n <= 0)
    return;
  cl = (double)(b->client_ns - a->client_ns) / 1e3 / (double)n;
  sv = have_srv ? (double)(b->server_ns - a->server_ns) / 1e3 / (double)n : 0;
  snprintf(extra, sizeof extra,
           "client_us=%.2f server_us=%.2f n=%lld server_clock=proc_stat ok=%d",
           cl, sv, n, have_srv);
  if (!have_srv)
    fprintf(stderr, "%s: %s: server CPU unknown (use --server-pid)\n", impl,
            cs);
  line_sfx(impl, workload, cs, ".cpu", metric, cl + sv, extra);
}

void bench_tls_note(const char *prog, const char *side, const char *version,
                    const char *cipher, const char *detail) {
  static atomic_int client_done, server_done;
  atomic_int *done = strcmp(side, "server") == 0 ? &server_done : &client_done;
  if (atomic_exchange(done, 1))
    return;
  fprintf(stderr, "%s: tls %s: %s %s%s%s\n", prog, side,
          version && *version ? version : "?",
          cipher && *cipher ? cipher : "?", detail && *detail ? " " : "",
          detail ? detail : "");
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

double bench_pct_us(int64_t *v, size_t n, double pct) {
  size_t i;
  if (n == 0)
    return 0.0;
  qsort(v, n, sizeof *v, cmp_i64);
  i = (size_t)((double)(n - 1) * pct / 100.0 + 0.5);
  if (i >= n)
    i = n - 1;
  return (double)v[i] / 1000.0;
}

void bench_lat_extra(char *buf, size_t cap, int64_t *v, size_t n) {
  double p50 = bench_pct_us(v, n, 50.0);
  double p99 = bench_pct_us(v, n, 99.0);
  snprintf(buf, cap, "p50_us=%.1f p99_us=%.1f n=%zu", p50, p99, n);
}

long long bench_rss_bytes(long pid) {
  char path[64];
  long long size = 0, rss = 0;
  FILE *f;

  if (pid > 0)
    snprintf(path, sizeof path, "/proc/%ld/statm", pid);
  else
    snprintf(path, sizeof path, "/proc/self/statm");
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lld %lld", &size, &rss) != 2)
    rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (long long)sysconf(_SC_PAGESIZE);
}

long bench_threads(void) {
  char line[256];
  long n = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "Threads:", 8) == 0)
      n = atol(line + 8);
  fclose(f);
  return n;
}

void bench_w8_report(const char *impl, long want, long opened, long long rss0,
                     long long rss1, long thr0, long thr1, int ok) {
  char extra[256];
  double per = opened > 0 && rss0 >= 0 && rss1 >= 0
                   ? (double)(rss1 - rss0) / (double)opened
                   : 0;
  double tper = opened > 0 && thr0 >= 0 && thr1 >= 0
                    ? (double)(thr1 - thr0) / (double)opened
                    : 0;
  ok = ok && opened == want && rss0 >= 0 && rss1 >= 0;
  snprintf(extra, sizeof extra,
           "channels=%ld opened=%ld rss_kib=%lld threads_per_channel=%.2f "
           "ok=%d", want, opened, rss1 / 1024, tper, ok);
  bench_line(impl, "W8", "W8", "rss_per_channel_bytes", per, extra);
}

long bench_server_pid(void) { return g_server_pid; }

long bench_gettid(void) { return (long)syscall(SYS_gettid); }

/* State letter of thread |tid| of this process, or 0. */
static char thread_state(long tid) {
  char path[64], buf[512];
  ssize_t n;
  int fd;
  char *p;

  snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  p = strrchr(buf, ')'); /* the comm field may contain spaces */
  if (p == NULL || p[1] != ' ')
    return 0;
  return p[2];
}

int bench_wait_parked(long tid, int max_ms) {
  int64_t end = bench_now_ns() + (int64_t)max_ms * 1000000;
  int seen = 0;
  while (bench_now_ns() < end) {
    if (thread_state(tid) == 'S') {
      /* Asleep twice in a row, 200 us apart: it is parked, not passing
       * through a short futex wait on the way. */
      if (++seen >= 2)
        return 0;
      bench_sleep_ns(200000);
    } else {
      seen = 0;
      bench_sleep_ns(20000);
    }
  }
  return -1;
}

/* ------------------------------------------------------------------ */
/* Protobuf: Payload{bytes body = 1}, StreamReq{uint32 size = 1;        */
/* uint64 count = 2} (tools/bench/grpc/bench.proto)                    */
/* ------------------------------------------------------------------ */

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

size_t bench_pb_payload_len(size_t size) {
  return size == 0 ? 0 : 1 + varint_len(size) + size;
}

size_t bench_pb_payload(uint8_t *out, size_t cap, size_t size) {
  size_t n;
  if (size == 0)
    return 0; /* proto3: an empty bytes field is not encoded */
  if (bench_pb_payload_len(size) > cap)
    return 0;
  out[0] = 0x0a; /* field 1, length-delimited */
  n = 1 + put_varint(out + 1, size);
  memset(out + n, 'x', size);
  return n + size;
}

size_t bench_pb_streamreq(uint8_t *out, size_t cap, uint32_t size,
                          uint64_t count) {
  size_t n = 0;
  if (cap < 2 + 10 + 10)
    return 0;
  if (size) {
    out[n++] = 0x08; /* field 1, varint */
    n += put_varint(out + n, size);
  }
  if (count) {
    out[n++] = 0x10; /* field 2, varint */
    n += put_varint(out + n, count);
  }
  return n;
}

static int get_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64 && *i < n; shift += 7) {
    uint8_t b = p[(*i)++];
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return 0;
    }
  }
  return -1;
}

int bench_pb_streamreq_decode(const uint8_t *p, size_t n, uint32_t *size,
                              uint64_t *count) {
  size_t i = 0;
  *size = 0;
  *count = 0;
  while (i < n) {
    uint64_t key, v;
    if (get_varint(p, n, &i, &key) != 0)
      return -1;
    switch (key & 7) {
    case 0:
      if (get_varint(p, n, &i, &v) != 0)
        return -1;
      if ((key >> 3) == 1)
        *size = (uint32_t)v;
      else if ((key >> 3) == 2)
        *count = v;
      break;
    case 2:
      if (get_varint(p, n, &i, &v) != 0 || v > n - i)
        return -1;
      i += (size_t)v;
      break;
    default:
      return -1;
    }
  }
  return 0;
}

void bench_die(const char *prog, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* ------------------------------------------------------------------ */
/* Flags                                                               */
/* ------------------------------------------------------------------ */

static void usage(FILE *f, const char *prog) {
  fprintf(f,
"usage: %s [--workload=W1[,W2...]] [--all] [--quick] [options]\n"
"  Modes (default: server in a forked child + client in this process):\n"
"    --server [--port=N]        serve until SIGINT/SIGTERM (or --server-seconds)\n"
"    --client --target=H:P      run the client workloads against H:P\n"
"    --target=H:P               same as --client --target=H:P\n"
"    --server-pid=PID           (client) server process, for W4 server RSS\n"
"    --server-seconds=S         max server lifetime (default 3600)\n"
"  Workloads: W1 ping-pong, W2 server-stream throughput, W3 unary threads,\n"
"    W4 idle-stream RSS, W5 cancel wake-up, W6 deadline overshoot,\n"
"    W7 h2load against the server, W8 idle channels' client RSS.\n"
"    --all = W1..W7 (W4 runs first; W8 only when named).\n"
"  Sizes and counts (defaults = the full run of issue 5):\n"
"    --size=64               payload bytes (W1 W3 W4 W5 W7)\n"
"    --warmup=1000           untimed round trips / calls before W1 and W3\n"
"    --w1-n=100000           W1 round trips\n"
"    --w2-big-size=65536 --w2-big-bytes=1073741824\n"
"    --w2-small-size=1024 --w2-small-n=500000\n"
"    --w3-calls=60000        calls per thread count, split over the threads\n"
"    --w3-threads=1,8,32\n"
"    --w4-streams=1000,10000 (cumulative: one baseline, then each total)\n"
"    --w5-reps=1000 --w6-reps=200 --w6-deadline-ms=50\n"
"    --w7-n=200000 --w7-c=4 --w7-m=16 --w7-t=1 --h2load=/usr/bin/h2load\n"
"    --h2load-timeout=300    seconds before h2load is killed\n"
"    --w7-idle=N             W7: first open N idle HTTP/2 connections and report\n"
"                            the server's RSS per connection (0 = off)\n"
"    --w7-tag=TAG            W7: case names W7.TAG, W7.TAG.rss\n"
"    --w8-channels=1000      W8: channels, one unary call each, then idle\n"
"  tri-bench only:\n"
"    --raw                   raw-bytes API on both sides instead of the typed\n"
"                            (protoc-gen-triplestream) stubs; cases get .raw\n"
"    --io-threads=N          server I/O loops (tri_server_opts_set_io_threads);\n"
"                            W7's case gets .ioN\n"
"    --io-group=N            client channels share a tri_io_group of N\n"
"                            threads; cases get .grpN (W1.grp1, W8.grp1)\n"
"  TLS (TLS 1.2/1.3 with ALPN h2; all three in the default mode):\n"
"    --tls-ca=FILE           client: verify the server's certificate (PEM)\n"
"    --tls-cert=FILE --tls-key=FILE   server: its certificate and key (PEM)\n"
"    result cases get \".tls\" (W1.tls); W7 runs h2load on https://\n"
"  --quick: small counts for a smoke run (seconds); later flags override.\n"
"Output: one line per result on stdout, see tools/bench/README.md.\n",
          prog);
}

static void set_defaults(bench_opts *o) {
  memset(o, 0, sizeof *o);
  o->server_seconds = 3600;
  o->size = 64;
  o->warmup = 1000;
  o->w1_n = 100000;
  o->w2_big_size = 65536;
  o->w2_big_bytes = 1LL << 30;
  o->w2_small_size = 1024;
  o->w2_small_n = 500000;
  o->w3_calls = 60000;
  o->w3_threads[0] = 1;
  o->w3_threads[1] = 8;
  o->w3_threads[2] = 32;
  o->w3_nthreads = 3;
  o->w4_streams[0] = 1000;
  o->w4_streams[1] = 10000;
  o->w4_ncounts = 2;
  o->w5_reps = 1000;
  o->w6_reps = 200;
  o->w6_deadline_ms = 50;
  o->w7_n = 200000;
  o->w7_c = 4;
  o->w7_m = 16;
  o->w7_t = 1;
  o->w8_channels = 1000;
  snprintf(o->h2load, sizeof o->h2load, "/usr/bin/h2load");
  o->h2load_timeout = 300;
}

static void set_quick(bench_opts *o) {
  o->quick = 1;
  o->warmup = 200;
  o->w1_n = 3000;
  o->w2_big_bytes = 64LL << 20;
  o->w2_small_n = 30000;
  o->w3_calls = 3000;
  o->w4_streams[0] = 100;
  o->w4_streams[1] = 1000;
  o->w4_ncounts = 2;
  o->w5_reps = 100;
  o->w6_reps = 20;
  o->w7_n = 20000;
  o->w8_channels = 100;
}

static int parse_ll(const char *s, long long lo, long long hi,
                    long long *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_list(const char *s, long long lo, long long hi,
                      long long *out, int max) {
  int n = 0;
  char buf[256];
  char *save = NULL, *tok;
  snprintf(buf, sizeof buf, "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (n >= max || parse_ll(tok, lo, hi, &out[n]) != 0)
      return -1;
    n++;
  }
  return n > 0 ? n : -1;
}

static int parse_workloads(const char *s, unsigned *mask) {
  char buf[128];
  char *save = NULL, *tok;
  snprintf(buf, sizeof buf, "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if ((tok[0] != 'W' && tok[0] != 'w') || tok[1] < '1' || tok[1] > '8' ||
        tok[2])
      return -1;
    *mask |= 1u << (tok[1] - '0');
  }
  return 0;
}

static void parse_args(int argc, char **argv, bench_opts *o,
                       const bench_impl *impl) {
  const char *prog = impl->prog;
  int i;
  set_defaults(o);
  /* --quick first, so that explicit counts given with it win. */
  for (i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0)
      set_quick(o);
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = strchr(a, '=');
    char name[64];
    long long x, list[BENCH_MAX_LIST];
    int n, bad = 0;

    if (v) {
      size_t len = (size_t)(v - a);
      if (len >= sizeof name)
        len = sizeof name - 1;
      memcpy(name, a, len);
      name[len] = '\0';
      v++;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
#define NUM(flag, field, lo, hi)                                            \
  else if (v && strcmp(name, flag) == 0) {                                  \
    if (parse_ll(v, lo, hi, &x) != 0)                                       \
      bad = 1;                                                              \
    else                                                                    \
      o->field = x;                                                         \
  }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
      usage(stdout, prog);
      exit(0);
    } else if (strcmp(name, "--quick") == 0) {
      /* handled above */
    } else if (strcmp(name, "--all") == 0) {
      o->workloads |= 0xfeu;
    } else if (strcmp(name, "--server") == 0) {
      o->mode = BENCH_MODE_SERVER;
    } else if (strcmp(name, "--client") == 0) {
      o->mode = BENCH_MODE_CLIENT;
    } else if (strcmp(name, "--raw") == 0 && !v) {
      if (!(impl->extra_flags & BENCH_FLAG_RAW)) {
        fprintf(stderr, "%s: --raw is a tri-bench flag\n", prog);
        exit(2);
      }
      o->raw = 1;
    } else if (v && strcmp(name, "--io-threads") == 0) {
      if (!(impl->extra_flags & BENCH_FLAG_IO_THREADS)) {
        fprintf(stderr, "%s: --io-threads is a tri-bench flag\n", prog);
        exit(2);
      }
      if (parse_ll(v, 1, 64, &x) != 0)
        bad = 1;
      else
        o->io_threads = (int)x;
    } else if (v && strcmp(name, "--io-group") == 0) {
      if (!(impl->extra_flags & BENCH_FLAG_IO_GROUP)) {
        fprintf(stderr, "%s: --io-group is a tri-bench flag\n", prog);
        exit(2);
      }
      if (parse_ll(v, 1, 256, &x) != 0)
        bad = 1;
      else
        o->io_group = (int)x;
    } else if (v && strcmp(name, "--w7-tag") == 0) {
      if (!*v || strlen(v) >= sizeof o->w7_tag || strpbrk(v, " \t=") != NULL)
        bad = 1;
      else
        snprintf(o->w7_tag, sizeof o->w7_tag, "%s", v);
    } else if (v && strcmp(name, "--workload") == 0) {
      bad = parse_workloads(v, &o->workloads);
    } else if (v && strcmp(name, "--target") == 0) {
      snprintf(o->target, sizeof o->target, "%s", v);
      if (o->mode != BENCH_MODE_SERVER)
        o->mode = BENCH_MODE_CLIENT;
    } else if (v && strcmp(name, "--h2load") == 0) {
      snprintf(o->h2load, sizeof o->h2load, "%s", v);
    } else if (v && (strcmp(name, "--tls-ca") == 0 ||
                     strcmp(name, "--tls-cert") == 0 ||
                     strcmp(name, "--tls-key") == 0)) {
      char *dst = strcmp(name, "--tls-ca") == 0     ? o->tls_ca
                  : strcmp(name, "--tls-cert") == 0 ? o->tls_cert
                                                    : o->tls_key;
      if (!*v || strlen(v) >= sizeof o->tls_ca)
        bad = 1;
      else
        snprintf(dst, sizeof o->tls_ca, "%s", v);
    } else if (v && strcmp(name, "--w3-threads") == 0) {
      n = parse_list(v, 1, 1024, list, BENCH_MAX_LIST);
      if (n < 0)
        bad = 1;
      for (int k = 0; k < n; k++)
        o->w3_threads[k] = (int)list[k];
      if (n > 0)
        o->w3_nthreads = n;
    } else if (v && strcmp(name, "--w4-streams") == 0) {
      n = parse_list(v, 1, 1000000, list, BENCH_MAX_LIST);
      if (n < 0)
        bad = 1;
      for (int k = 0; k < n; k++) {
        o->w4_streams[k] = (long)list[k];
        if (k > 0 && list[k] <= list[k - 1])
          bad = 1; /* cumulative: strictly increasing */
      }
      if (n > 0)
        o->w4_ncounts = n;
    }
    NUM("--port", port, 0, 65535)
    NUM("--server-pid", server_pid, 1, LONG_MAX)
    NUM("--server-seconds", server_seconds, 1, 86400)
    NUM("--size", size, 1, 4 << 20)
    NUM("--warmup", warmup, 0, 10000000)
    NUM("--w1-n", w1_n, 1, 100000000)
    NUM("--w2-big-size", w2_big_size, 1, 4000000)
    NUM("--w2-big-bytes", w2_big_bytes, 1, 1LL << 40)
    NUM("--w2-small-size", w2_small_size, 1, 4000000)
    NUM("--w2-small-n", w2_small_n, 1, 1000000000)
    NUM("--w3-calls", w3_calls, 1, 100000000)
    NUM("--w5-reps", w5_reps, 1, 1000000)
    NUM("--w6-reps", w6_reps, 1, 1000000)
    NUM("--w6-deadline-ms", w6_deadline_ms, 1, 60000)
    NUM("--w7-n", w7_n, 1, 100000000)
    NUM("--w7-c", w7_c, 1, 1000)
    NUM("--w7-m", w7_m, 1, 1000)
    NUM("--w7-t", w7_t, 1, 64)
    NUM("--h2load-timeout", h2load_timeout, 1, 86400)
    NUM("--w7-idle", w7_idle, 0, 100000)
    NUM("--w8-channels", w8_channels, 1, 100000)
    else {
      fprintf(stderr, "%s: unknown or malformed flag: %s\n", prog, a);
      usage(stderr, prog);
      exit(2);
    }
#undef NUM
    if (bad) {
      fprintf(stderr, "%s: bad value in %s\n", prog, a);
      exit(2);
    }
  }
  o->w4_max = 0;
  for (i = 0; i < o->w4_ncounts; i++)
    if (o->w4_streams[i] > o->w4_max)
      o->w4_max = o->w4_streams[i];
  if (o->mode == BENCH_MODE_CLIENT && !o->target[0]) {
    fprintf(stderr, "%s: --client needs --target=HOST:PORT\n", prog);
    exit(2);
  }
  if (o->mode != BENCH_MODE_SERVER && o->workloads == 0) {
    fprintf(stderr, "%s: choose --workload=W1..W8 or --all\n", prog);
    usage(stderr, prog);
    exit(2);
  }
  o->tls = o->tls_ca[0] || o->tls_cert[0] || o->tls_key[0];
  if (o->tls) {
    const char *missing = NULL;
    if (o->mode != BENCH_MODE_CLIENT && !o->tls_cert[0])
      missing = "--tls-cert";
    else if (o->mode != BENCH_MODE_CLIENT && !o->tls_key[0])
      missing = "--tls-key";
    else if (o->mode != BENCH_MODE_SERVER && !o->tls_ca[0])
      missing = "--tls-ca";
    if (missing) {
      fprintf(stderr, "%s: TLS needs %s here (the server needs --tls-cert "
              "and --tls-key, the client --tls-ca)\n", prog, missing);
      exit(2);
    }
    const char *files[] = {o->tls_ca, o->tls_cert, o->tls_key};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
      if (files[k][0] && access(files[k], R_OK) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, files[k], strerror(errno));
        exit(2);
      }
  }
  g_server_pid = o->server_pid;
  g_tls = o->tls;
  g_raw = o->raw;
  if (o->io_group > 0)
    snprintf(g_grp, sizeof g_grp, ".grp%d", o->io_group);
}

/* ------------------------------------------------------------------ */
/* W7: h2load against the server                                       */
/* ------------------------------------------------------------------ */

static int write_h2load_body(const bench_opts *o, char *path, size_t cap) {
  size_t plen = bench_pb_payload_len((size_t)o->size);
  uint8_t *buf = malloc(5 + plen);
  int fd;
  ssize_t w;

  if (buf == NULL)
    return -1;
  buf[0] = 0; /* not compressed */
  buf[1] = (uint8_t)(plen >> 24);
  buf[2] = (uint8_t)(plen >> 16);
  buf[3] = (uint8_t)(plen >> 8);
  buf[4] = (uint8_t)plen;
  bench_pb_payload(buf + 5, plen, (size_t)o->size);
  snprintf(path, cap, "/tmp/tri-bench-h2load-XXXXXX");
  fd = mkstemp(path);
  if (fd < 0) {
    free(buf);
    return -1;
  }
  w = write(fd, buf, 5 + plen);
  close(fd);
  free(buf);
  return w == (ssize_t)(5 + plen) ? 0 : -1;
}

/* Parse "N word" pairs after "requests:" etc.  Returns the number before
 * |word| on |line|, or -1. */
static long long number_before(const char *line, const char *word) {
  const char *p = strstr(line, word);
  const char *q;
  if (p == NULL || p == line)
    return -1;
  q = p;
  while (q > line && q[-1] == ' ')
    q--;
  while (q > line && q[-1] >= '0' && q[-1] <= '9')
    q--;
  if (q == p || !(*q >= '0' && *q <= '9'))
    return -1;
  return strtoll(q, NULL, 10);
}

/* ---- W7's idle connections ---------------------------------------- */

/* One idle HTTP/2 connection: a TCP socket (and, with TLS, the OpenSSL
 * session over it) that has sent the client preface and SETTINGS, read
 * the server's SETTINGS and acknowledged them (RFC 9113 3.4, 6.5.3): the
 * server holds a complete session for it and nothing else. */
typedef struct {
  int fd;
#ifdef BENCH_HAVE_OPENSSL
  SSL *ssl;
#endif
} idle_conn;

#ifdef BENCH_HAVE_OPENSSL
static SSL_CTX *idle_ssl_ctx(void) {
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  /* Like h2load: no certificate check (the connections only sit idle). */
  if (ctx != NULL && SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn) != 0) {
    SSL_CTX_free(ctx);
    ctx = NULL;
  }
  return ctx;
}
#endif

static int idle_io(idle_conn *c, void *buf, size_t n, int wr) {
#ifdef BENCH_HAVE_OPENSSL
  if (c->ssl != NULL) {
    int r = wr ? SSL_write(c->ssl, buf, (int)n) : SSL_read(c->ssl, buf, (int)n);
    return r > 0 ? r : -1;
  }
#endif
  for (;;) {
    ssize_t r = wr ? send(c->fd, buf, n, MSG_NOSIGNAL) : recv(c->fd, buf, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    return r > 0 ? (int)r : -1;
  }
}

static int idle_write(idle_conn *c, const void *p, size_t n) {
  size_t put = 0;
  while (put < n) {
    int w = idle_io(c, (char *)p + put, n - put, 1);
    if (w <= 0)
      return -1;
    put += (size_t)w;
  }
  return 0;
}

/* Connect to |port| on 127.0.0.1 and bring HTTP/2 up.  0 or -1. */
static int idle_open(idle_conn *c, int port, void *ssl_ctx) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  static const uint8_t ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};
  struct sockaddr_in a;
  struct timeval tv = {10, 0};
  uint8_t buf[4096];
  size_t used = 0;
  int one = 1;

  (void)ssl_ctx;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
#ifdef BENCH_HAVE_OPENSSL
  c->ssl = NULL;
#endif
  if (c->fd < 0)
    return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
    return -1;
#ifdef BENCH_HAVE_OPENSSL
  if (ssl_ctx != NULL) {
    c->ssl = SSL_new(ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_connect(c->ssl) != 1)
      return -1;
  }
#endif
  if (idle_write(c, preface, sizeof preface - 1) != 0 ||
      idle_write(c, settings, sizeof settings) != 0)
    return -1;
  /* Read frames until the server's (non-ACK) SETTINGS. */
  for (;;) {
    size_t off = 0;
    int r;
    while (used - off >= 9) {
      size_t len = ((size_t)buf[off] << 16) | ((size_t)buf[off + 1] << 8) |
                   buf[off + 2];
      if (buf[off + 3] == 4 && !(buf[off + 4] & 1))
        return idle_write(c, ack, sizeof ack);
      if (used - off < 9 + len)
        break;
      off += 9 + len;
    }
    memmove(buf, buf + off, used - off);
    used -= off;
    if (used == sizeof buf)
      return -1;
    r = idle_io(c, buf + used, sizeof buf - used, 0);
    if (r <= 0)
      return -1;
    used += (size_t)r;
  }
}

static void idle_close(idle_conn *c) {
#ifdef BENCH_HAVE_OPENSSL
  if (c->ssl != NULL)
    SSL_free(c->ssl);
  c->ssl = NULL;
#endif
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

/* W7 with --w7-idle=N: the server's RSS per idle connection.  Prints the
 * row CASE.rss.  0 or -1. */
static int w7_idle(const bench_opts *o, const bench_impl *impl,
                   const char *target, const char *cs) {
  const char *colon = strrchr(target, ':');
  int port = colon ? atoi(colon + 1) : 0;
  long spid = bench_server_pid();
  idle_conn *cs_ = calloc((size_t)o->w7_idle, sizeof *cs_);
  void *ctx = NULL;
  long opened = 0;
  long long r0, r1;
  int64_t t0;
  char name[96], extra[256];
  int ok;

  if (cs_ == NULL || port <= 0 || spid == 0) {
    fprintf(stderr, "%s: W7 idle: %s\n", impl->prog,
            spid == 0 ? "server RSS unknown (use --server-pid)" : "setup");
    free(cs_);
    return -1;
  }
#ifdef BENCH_HAVE_OPENSSL
  if (o->tls && (ctx = idle_ssl_ctx()) == NULL) {
    free(cs_);
    return -1;
  }
#else
  if (o->tls) {
    fprintf(stderr, "%s: W7 idle: built without OpenSSL: no TLS\n",
            impl->prog);
    free(cs_);
    return -1;
  }
#endif
  bench_sleep_ns(100000000);
  r0 = bench_rss_bytes(spid);
  t0 = bench_now_ns();
  for (; opened < o->w7_idle; opened++)
    if (idle_open(&cs_[opened], port, ctx) != 0) {
      fprintf(stderr, "%s: W7 idle: connection %ld: %s\n", impl->prog,
              opened + 1, strerror(errno));
      idle_close(&cs_[opened]);
      break;
    }
  bench_sleep_ns(300000000); /* let the server settle */
  r1 = bench_rss_bytes(spid);
  ok = opened == o->w7_idle && r0 >= 0 && r1 >= 0;
  snprintf(name, sizeof name, "%s.rss", cs);
  snprintf(extra, sizeof extra,
           "conns=%ld n=%ld side=server rss_kib=%lld open_secs=%.2f ok=%d",
           o->w7_idle, opened, r1 / 1024,
           (double)(bench_now_ns() - t0) / 1e9 - 0.3, ok);
  bench_line(impl->impl, "W7", name, "rss_per_conn_bytes",
             opened ? (double)(r1 - r0) / (double)opened : 0, extra);
  for (long i = 0; i < opened; i++)
    idle_close(&cs_[i]);
  free(cs_);
#ifdef BENCH_HAVE_OPENSSL
  SSL_CTX_free(ctx);
#endif
  bench_sleep_ns(200000000); /* the server closes them */
  return ok ? 0 : -1;
}

/* h2load's "finished in 1.23s" / "625.42ms" / "950.12us" -> seconds. */
static double parse_duration(const char *p) {
  char *end;
  double v = strtod(p, &end);
  if (end == p)
    return -1;
  if (strncmp(end, "us", 2) == 0)
    return v / 1e6;
  if (strncmp(end, "ms", 2) == 0)
    return v / 1e3;
  if (strncmp(end, "s", 1) == 0)
    return v;
  if (strncmp(end, "m", 1) == 0)
    return v * 60;
  return -1;
}

static int run_w7(const bench_opts *o, const bench_impl *impl,
                  const char *target) {
  char body[64], uri[512], n[32], c[32], m[32], t[32], cs[64];
  char extra[384], out[16384];
  int pfd[2], status = 0, killed = 0;
  size_t used = 0;
  pid_t pid;
  posix_spawn_file_actions_t fa;
  int64_t end;
  double rps = -1, secs = -1;
  long long total = -1, succeeded = -1, failed = -1, data = -1, s2xx = -1;
  long long ok0, ok1, srv_ok = -1, counted;
  int idle_rc = 0;

  snprintf(cs, sizeof cs, "W7");
  if (o->io_threads > 0)
    snprintf(cs + strlen(cs), sizeof cs - strlen(cs), ".io%d", o->io_threads);
  if (o->w7_tag[0])
    snprintf(cs + strlen(cs), sizeof cs - strlen(cs), ".%s", o->w7_tag);
  if (access(o->h2load, X_OK) != 0) {
    fprintf(stderr, "%s: W7: %s not found (apt-get install nghttp2-client)\n",
            impl->prog, o->h2load);
    bench_line(impl->impl, "W7", cs, "req_per_s", 0, "ok=0 error=no_h2load");
    return -1;
  }
  if (impl->check_unary && impl->check_unary(o, target) != 0) {
    fprintf(stderr, "%s: W7: a unary call to %s failed\n", impl->prog, target);
    bench_line(impl->impl, "W7", cs, "req_per_s", 0, "ok=0 error=unary");
    return -1;
  }
  if (o->w7_idle > 0)
    idle_rc = w7_idle(o, impl, target, cs);
  if (write_h2load_body(o, body, sizeof body) != 0) {
    fprintf(stderr, "%s: W7: cannot write the request body\n", impl->prog);
    return -1;
  }
  /* h2load does not verify certificates; it negotiates h2 by ALPN. */
  snprintf(uri, sizeof uri, "%s://%s%s", o->tls ? "https" : "http", target,
           BENCH_M_UNARY);
  snprintf(n, sizeof n, "%ld", o->w7_n < o->w7_c ? (long)o->w7_c : o->w7_n);
  snprintf(c, sizeof c, "%d", o->w7_c);
  snprintf(m, sizeof m, "%d", o->w7_m);
  snprintf(t, sizeof t, "%d", o->w7_t);
  char *argv[] = {(char *)o->h2load, (char *)"-n", n, (char *)"-c", c,
                  (char *)"-m", m, (char *)"-t", t, (char *)"-d", body,
                  (char *)"-H", (char *)"content-type: application/grpc",
                  (char *)"-H", (char *)"te: trailers", uri, NULL};
  fprintf(stderr, "%s: W7: %s -n %s -c %s -m %s -t %s -d %s -H "
          "'content-type: application/grpc' -H 'te: trailers' %s\n",
          impl->prog, o->h2load, n, c, m, t, body, uri);
  if (pipe(pfd) != 0) {
    unlink(body);
    return -1;
  }
  ok0 = bench_unary_ok_count();
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pfd[0]);
  posix_spawn_file_actions_addclose(&fa, pfd[1]);
  if (posix_spawn(&pid, o->h2load, &fa, NULL, argv, environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[0]);
    close(pfd[1]);
    unlink(body);
    return -1;
  }
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  end = bench_now_ns() + (int64_t)o->h2load_timeout * 1000000000;
  for (;;) {
    struct pollfd pf = {pfd[0], POLLIN, 0};
    int64_t left = (end - bench_now_ns()) / 1000000;
    if (left <= 0) {
      kill(pid, SIGKILL);
      killed = 1;
      break;
    }
    if (poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) > 0) {
      ssize_t r = read(pfd[0], out + used, sizeof out - 1 - used);
      if (r <= 0)
        break;
      used += (size_t)r;
      if (used >= sizeof out - 1) {
        /* keep the tail: the summary comes last */
        memmove(out, out + used / 2, used - used / 2);
        used -= used / 2;
      }
    }
  }
  close(pfd[0]);
  out[used] = '\0';
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  unlink(body);
  /* h2load has its last answer; the server's count of that answer was
   * made before the answer left.  */
  ok1 = bench_unary_ok_count();
  if (ok0 >= 0 && ok1 >= 0)
    srv_ok = ok1 - ok0;

  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    const char *p;
    if ((p = strstr(line, "finished in")) != NULL) {
      secs = parse_duration(p + strlen("finished in "));
      p = strchr(p, ',');
      if (p)
        rps = strtod(p + 1, NULL);
    } else if (strncmp(line, "requests:", 9) == 0) {
      total = number_before(line, "total");
      succeeded = number_before(line, "succeeded");
      failed = number_before(line, "failed");
    } else if (strncmp(line, "status codes:", 13) == 0) {
      s2xx = number_before(line, "2xx");
    } else if (strncmp(line, "traffic:", 8) == 0) {
      /* "... 13.54MB (14200000) data" */
      const char *d = strstr(line, ") data");
      if (d) {
        const char *q = d;
        while (q > line && q[-1] != '(')
          q--;
        data = strtoll(q, NULL, 10);
      }
    }
  }
  if (killed || rps < 0 || secs <= 0 || succeeded < 0 || s2xx < 0) {
    fprintf(stderr, "%s: W7: h2load %s; output:\n%s\n", impl->prog,
            killed ? "timed out" : "output not understood", out);
    bench_line(impl->impl, "W7", cs, "req_per_s", 0, "ok=0 error=h2load");
    return -1;
  }
  {
    /* h2load cannot see trailers: a call that failed with a grpc-status
     * in the trailers still counts as a 2xx success there.  Only calls
     * both h2load saw answered 2xx and the server answered with status OK
     * count. */
    long long per;
    int ok;
    counted = srv_ok >= 0 && srv_ok < s2xx ? srv_ok : s2xx;
    /* Each answered request carries a 5-byte prefix + the echoed payload;
     * error responses (trailers only) carry no DATA. */
    per = counted > 0 && data >= 0 ? data / counted : 0;
    ok = succeeded == total && failed == 0 && counted == total &&
         per >= (long long)bench_pb_payload_len((size_t)o->size) &&
         idle_rc == 0;
    snprintf(extra, sizeof extra,
             "n=%lld failed=%lld h2load_2xx=%lld server_ok=%lld "
             "h2load_req_per_s=%.1f secs=%.3f resp_data_per_req=%lld c=%d "
             "m=%d t=%d ok=%d",
             counted, failed, s2xx, srv_ok, rps, secs, per, o->w7_c, o->w7_m,
             o->w7_t, ok);
    bench_line(impl->impl, "W7", cs, "req_per_s", (double)counted / secs,
               extra);
    return ok ? 0 : -1;
  }
}

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
  (void)sig;
  g_stop = 1;
}

static int run_server_mode(const bench_opts *o, const bench_impl *impl) {
  char hp[64];
  int port = 0;
  int64_t end = bench_now_ns() + (int64_t)o->server_seconds * 1000000000;
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  snprintf(hp, sizeof hp, "127.0.0.1:%d", o->port);
  if (impl->server_start(o, hp, &port) != 0) {
    fprintf(stderr, "%s: cannot start the server on %s\n", impl->prog, hp);
    return 1;
  }
  printf("listening on 127.0.0.1:%d pid=%ld\n", port, (long)getpid());
  fflush(stdout);
  while (!g_stop && bench_now_ns() < end)
    bench_sleep_ns(50000000);
  impl->server_stop();
  return 0;
}

/* Forked child: serve until the parent closes |ctl| (or dies). */
static void server_child(const bench_opts *o, const bench_impl *impl,
                         int ctl_r, int port_w) {
  int port = 0;
  char msg[32];
  int64_t end = bench_now_ns() + (int64_t)o->server_seconds * 1000000000;

#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
  if (impl->server_start(o, "127.0.0.1:0", &port) != 0) {
    fprintf(stderr, "%s: server child: cannot start\n", impl->prog);
    _exit(1);
  }
  snprintf(msg, sizeof msg, "%d\n", port);
  if (write(port_w, msg, strlen(msg)) < 0)
    _exit(1);
  close(port_w);
  for (;;) {
    struct pollfd pf = {ctl_r, POLLIN, 0};
    char b;
    if (bench_now_ns() >= end)
      break;
    if (poll(&pf, 1, 1000) > 0 && read(ctl_r, &b, 1) <= 0)
      break; /* EOF: the parent is done */
  }
  impl->server_stop();
  _exit(0);
}

int bench_main(int argc, char **argv, const bench_impl *impl) {
  bench_opts o;
  char target[300];
  int ctl[2] = {-1, -1}, portp[2] = {-1, -1};
  pid_t child = -1;
  int fails = 0;
  static const int order[] = {4, 1, 2, 3, 5, 6, 7, 8};

  parse_args(argc, argv, &o, impl);
  signal(SIGPIPE, SIG_IGN);
  {
    /* Many connections (W7 with -c 1000, --w7-idle): up to the hard
     * limit of open files. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
  }

  if (o.mode == BENCH_MODE_SERVER)
    return run_server_mode(&o, impl);

  if (o.mode == BENCH_MODE_CLIENT) {
    snprintf(target, sizeof target, "%s", o.target);
  } else {
    /* Fork before any thread exists (gRPC and our library both start
     * threads), so that the child starts clean and client / server RSS
     * are separate (W4). */
    char buf[32];
    size_t used = 0;
    int64_t end;
    if (pipe(ctl) != 0 || pipe(portp) != 0)
      bench_die(impl->prog, "pipe: %s", strerror(errno));
    /* The server child counts its OK unary answers here (W7). */
    {
      void *sh = mmap(NULL, sizeof *g_unary_ok, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (sh != MAP_FAILED) {
        g_unary_ok = sh;
        atomic_init(g_unary_ok, 0);
      }
    }
    fflush(NULL);
    child = fork();
    if (child < 0)
      bench_die(impl->prog, "fork: %s", strerror(errno));
    if (child == 0) {
      close(ctl[1]);
      close(portp[0]);
      server_child(&o, impl, ctl[0], portp[1]);
    }
    close(ctl[0]);
    close(portp[1]);
    end = bench_now_ns() + INT64_C(30000000000);
    while (used < sizeof buf - 1 && !memchr(buf, '\n', used)) {
      struct pollfd pf = {portp[0], POLLIN, 0};
      ssize_t r;
      if (bench_now_ns() >= end || poll(&pf, 1, 1000) < 0)
        break;
      if (!(pf.revents & (POLLIN | POLLHUP)))
        continue;
      r = read(portp[0], buf + used, sizeof buf - 1 - used);
      if (r <= 0)
        break;
      used += (size_t)r;
    }
    buf[used] = '\0';
    close(portp[0]);
    if (atoi(buf) <= 0) {
      kill(child, SIGKILL);
      waitpid(child, NULL, 0);
      bench_die(impl->prog, "the server child did not start");
    }
    g_server_pid = (long)child;
    snprintf(target, sizeof target, "127.0.0.1:%d", atoi(buf));
    fprintf(stderr, "%s: server pid %ld on %s\n", impl->prog, (long)child,
            target);
  }

  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int w = order[i];
    int rc;
    if (!(o.workloads & (1u << w)))
      continue;
    fprintf(stderr, "%s: W%d...\n", impl->prog, w);
    rc = w == 7 ? run_w7(&o, impl, target) : impl->client_run(&o, w, target);
    if (rc != 0) {
      fprintf(stderr, "%s: W%d failed\n", impl->prog, w);
      fails++;
    }
  }

  if (child > 0) {
    int st;
    int64_t end = bench_now_ns() + INT64_C(15000000000);
    close(ctl[1]); /* EOF tells the child to stop */
    while (waitpid(child, &st, WNOHANG) == 0) {
      if (bench_now_ns() >= end) {
        fprintf(stderr, "%s: server child did not exit; killing it\n",
                impl->prog);
        kill(child, SIGKILL);
        waitpid(child, &st, 0);
        break;
      }
      bench_sleep_ns(5000000);
    }
  }
  return fails ? 1 : 0;
}
