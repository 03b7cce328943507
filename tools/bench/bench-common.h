/*
 * bench-common: what tri-bench (C, libtriplestream) and grpc-bench (C++,
 * gRPC C++ sync API) share, so both take identical flags and print
 * identical result lines: option parsing, the one-invocation driver (server
 * in a forked child, client in the parent), timing and percentiles, RSS
 * from /proc, the hand-written protobuf encoding of the bench messages,
 * and W7 (h2load against the server).
 *
 * Result line format (one line per result, on stdout; everything else goes
 * to stderr):
 *
 *   tri-bench impl=IMPL workload=WN case=CASE metric=METRIC value=V [k=v]...
 *
 * The first token is always "tri-bench" (also for grpc-bench and
 * tri-rawtcp) so `grep '^tri-bench '` collects every result.  IMPL is tri,
 * grpc or raw.  CASE names the row uniquely within a workload
 * (W1, W2.64k, W2.1k, W3.t8, W4.10000.total, W5, W6, W7).  The remaining
 * keys depend on the workload (see tools/bench/README.md): p50_us, p99_us,
 * n, secs, threads, size, streams, side, ok (1 = the run was valid).
 * Values never contain spaces.
 */
#ifndef TRI_BENCH_COMMON_H
#define TRI_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Method paths (tools/bench/grpc/bench.proto, package tribench). */
#define BENCH_M_UNARY "/tribench.Bench/Unary"
#define BENCH_M_PINGPONG "/tribench.Bench/PingPong"
#define BENCH_M_STREAM "/tribench.Bench/Stream"
#define BENCH_M_SILENT "/tribench.Bench/Silent"

#define BENCH_MAX_LIST 8

enum { BENCH_MODE_BOTH = 0, BENCH_MODE_SERVER = 1, BENCH_MODE_CLIENT = 2 };

typedef struct {
  unsigned workloads; /* bit N set = WN selected (1..8) */
  int mode;
  char target[256];   /* host:port of the server (client mode) */
  int port;           /* --server: port to bind (0 = any) */
  long server_pid;    /* client mode: server pid for W4 RSS (0 = none) */
  int server_seconds; /* --server and the forked child: max lifetime */
  int quick;

  int size;           /* payload bytes for W1, W3, W4, W5, W7 */
  long warmup;        /* round trips before W1 / calls before W3 */
  long w1_n;
  int w2_big_size;
  long long w2_big_bytes;
  int w2_small_size;
  long w2_small_n;
  long w3_calls;      /* per thread count, split over the threads */
  int w3_threads[BENCH_MAX_LIST];
  int w3_nthreads;
  long w4_streams[BENCH_MAX_LIST];
  int w4_ncounts;
  long w4_max;        /* largest of w4_streams */
  long w5_reps;
  long w6_reps;
  int w6_deadline_ms;
  long w7_n;
  int w7_c, w7_m, w7_t;
  char h2load[256];
  int h2load_timeout;

  /* TLS (--tls-ca, --tls-cert, --tls-key): on when any is given.  The
   * client verifies the server's certificate with tls_ca (it must name
   * the target's host, 127.0.0.1 by default); the server presents
   * tls_cert / tls_key.  No client certificates.  "" = not given. */
  int tls;
  char tls_ca[512];
  char tls_cert[512];
  char tls_key[512];

  /* tri-bench only (grpc-bench refuses them):
   * raw: the raw-bytes API on both sides instead of the protobuf-c typed
   * stubs; cases get ".raw" (W1.raw, W3.t1.raw).
   * io_threads: the server's I/O loops (tri_server_opts_set_io_threads);
   * 0 = the library's default; W7's case gets ".ioN". */
  int raw;
  int io_threads;
  /* io_group: every client channel on one tri_io_group of this many
   * threads (tri_channel_opts_set_io_group); 0 = a thread per channel
   * (the default); cases get ".grpN" (W1.grp1, W8.grp1). */
  int io_group;
  /* W7: open this many idle HTTP/2 connections to the server first and
   * report the server's RSS per connection (0 = off); w7_tag is appended
   * to W7's case names ("c1000" -> W7.c1000, W7.c1000.rss). */
  long w7_idle;
  char w7_tag[32];
  /* W8: channels opened, one unary call each, then left idle; the
   * client's RSS per channel. */
  long w8_channels;
} bench_opts;

/* What the driver needs from an implementation. */
typedef struct {
  const char *impl; /* "tri" or "grpc" (impl= on every line) */
  const char *prog; /* program name for messages */
  /* Start a server on |host_port|; store the bound port.  0 or -1. */
  int (*server_start)(const bench_opts *o, const char *host_port, int *port);
  void (*server_stop)(void);
  /* Run client workload |w| (1..6, 8) against |target|.  0 or -1. */
  int (*client_run)(const bench_opts *o, int w, const char *target);
  /* One unary echo call, used to check the server before W7.  0 or -1. */
  int (*check_unary)(const bench_opts *o, const char *target);
  /* Flags this implementation accepts beyond the common ones: bit 0 =
   * --raw, bit 1 = --io-threads, bit 2 = --io-group. */
  unsigned extra_flags;
} bench_impl;

#define BENCH_FLAG_RAW 1u
#define BENCH_FLAG_IO_THREADS 2u
#define BENCH_FLAG_IO_GROUP 4u

/* Parse argv (exits on --help or a bad flag), then run.  Returns the
 * process exit status. */
int bench_main(int argc, char **argv, const bench_impl *impl);

/* ---- helpers for the implementations ---- */
int64_t bench_now_ns(void);
void bench_sleep_ns(int64_t ns);
/* Print one result line: "tri-bench impl=.. workload=.. case=.. metric=..
 * value=.." then |extra| (may be NULL or "k=v k=v").  With --tls, the
 * case gets the suffix ".tls" (W1.tls, W2.big.tls, ...) and the line
 * "tls=1", so TLS results never mix with clear-text ones. */
void bench_line(const char *impl, const char *workload, const char *cs,
                const char *metric, double value, const char *extra);
/* Sort |v| (ns) and return the |pct| (0..100) percentile in us. */
double bench_pct_us(int64_t *v, size_t n, double pct);
/* Latency summary "p50_us=.. p99_us=.. n=.." into |buf|. */
void bench_lat_extra(char *buf, size_t cap, int64_t *v, size_t n);
/* Resident set size of |pid| (0 = self) in bytes, or -1. */
long long bench_rss_bytes(long pid);
/* W8: the client's threads (from /proc/self/status), or -1. */
long bench_threads(void);
/* W8's line: RSS per channel from |rss0| and |rss1| (before and 500 ms
 * after |opened| of |want| channels made their call), threads per channel
 * from |thr0| and |thr1|. */
void bench_w8_report(const char *impl, long want, long opened, long long rss0,
                     long long rss1, long thr0, long thr1, int ok);
/* pid of the server process (forked child or --server-pid), or 0. */
long bench_server_pid(void);
/* Thread id of the caller (for /proc/self/task/TID/stat). */
long bench_gettid(void);
/* Wait until thread |tid| of this process is asleep (state S), at most
 * |max_ms|.  Returns 0 once it is, -1 on timeout. */
int bench_wait_parked(long tid, int max_ms);
/* Bytes of protobuf Payload{bytes body = 1} with |size| body bytes. */
size_t bench_pb_payload_len(size_t size);
/* Encode Payload with |size| body bytes ('x') into |out| (cap checked).
 * Returns the encoded length, 0 if it does not fit. */
size_t bench_pb_payload(uint8_t *out, size_t cap, size_t size);
/* Encode / decode StreamReq{uint32 size = 1; uint64 count = 2}. */
size_t bench_pb_streamreq(uint8_t *out, size_t cap, uint32_t size,
                          uint64_t count);
int bench_pb_streamreq_decode(const uint8_t *p, size_t n, uint32_t *size,
                              uint64_t *count);
/* Print, once per process and |side| ("client" / "server"), what TLS
 * negotiated, on stderr: "PROG: tls SIDE: VERSION CIPHER [detail]".
 * Thread safe. */
void bench_tls_note(const char *prog, const char *side, const char *version,
                    const char *cipher, const char *detail);
/* Server-side count of unary calls answered with status OK (W7): shared
 * between the forked server child and the client (an anonymous shared
 * mapping made before the fork).  The server's Unary handlers call
 * bench_unary_ok() once per OK answer; bench_unary_ok_count() returns the
 * total, or -1 when the server is another process (--client mode). */
void bench_unary_ok(void);
long long bench_unary_ok_count(void);
/* CPU time (user + system) of this process, all threads, in ns
 * (getrusage RUSAGE_SELF). */
int64_t bench_cpu_self_ns(void);
/* CPU time of process |pid| (utime + stime from /proc/PID/stat; clock
 * tick resolution, 10 ms), in ns, or -1. */
int64_t bench_cpu_pid_ns(long pid);
/* A CPU snapshot of both sides: the client (this process) and the server
 * (bench_server_pid(), when known). */
typedef struct {
  int64_t client_ns;
  int64_t server_ns; /* -1: unknown */
} bench_cpu;
void bench_cpu_take(bench_cpu *c);
/* Print the CPU row of a timed section that did |n| calls (or messages):
 * case "<cs>[.raw].cpu[.tls]", metric |metric| (cpu_us_per_call / cpu_us_per_msg),
 * value = (client + server CPU) / n in microseconds; extra keys
 * client_us, server_us (per call), n, ok.  Without the server's pid the
 * value is the client's alone and ok=0. */
void bench_cpu_line(const char *impl, const char *workload, const char *cs,
                    const char *metric, long long n, const bench_cpu *a,
                    const bench_cpu *b);
/* Message of the last failure, for result lines. */
void bench_die(const char *prog, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif /* TRI_BENCH_COMMON_H */
