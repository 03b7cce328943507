/*
 * hutil: shared scaffolding of the hardening suites.
 *
 *  - hsrv: a tri_server running in a forked child process (forked before
 *    the test process starts any thread), with instrumented handlers that
 *    report what happened to them through shared memory, so the test can
 *    read the server's RSS from /proc/PID/statm, kill it, or shut it down;
 *  - healthy: a well-behaved tri client doing unary calls on its own
 *    connection in a background thread, recording when each call succeeded,
 *    to measure the service others get while an attack runs;
 *  - rssmon: samples a process's RSS every 10 ms and keeps the peak.
 *
 * The public API of libtriplestream plus POSIX; budgets_settle() and
 * hsrv_free_budgets() read lib/budget.h (the one internal hook).  No
 * Check assertions in here (helpers run in children and threads);
 * callers assert.
 */
#ifndef HUTIL_H
#define HUTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <triplestream/triplestream.h>

/* Methods served by the hsrv child. */
#define HM_ECHO "/h.Echo/Unary"      /* recv one, send it back, finish OK */
#define HM_BIG "/h.Big/Stream"       /* recv one, then send 64 KiB messages
                                        until a send fails (max 4096) */
#define HM_HANG "/h.Hang/Bidi"       /* recv until not OK; sends nothing */
#define HM_HOLD "/h.Hold/Any"        /* recv until EOF, then wait for the
                                        stream to end; never answers */
#define HM_SINK "/h.Sink/NoRead"     /* never reads; waits for the end */
#define HM_SLOW "/h.Slow/Unary"      /* recv, sleep 300 ms, echo, OK */
#define HM_RET7 "/h.Ret/Seven"       /* returns 7 without finishing */
#define HM_RETBOGUS "/h.Ret/Bogus"   /* returns 1234 without finishing */
#define HM_RETNEG "/h.Ret/Negative"  /* returns -3 without finishing */
#define HM_RETMSG "/h.Ret/Message"   /* recv, send one message, return 0 */
#define HM_RETNONE "/h.Ret/Nothing"  /* recv, return 0: no response message */
/* Soak methods (soak.c): messages carry a sequence number, a stream
 * nonce and a deterministic filler (seqmsg_*); handlers check order. */
#define HM_SEQ_UNARY "/h.Seq/Unary"   /* echo the one message */
#define HM_SEQ_CLIENT "/h.Seq/Client" /* check 0..n-1, reply seq = n */
#define HM_SEQ_SERVER "/h.Seq/Server" /* request seq = n: send 0..n-1 */
#define HM_SEQ_BIDI "/h.Seq/Bidi"     /* check order, echo each */

#define SEQMSG_HDR 12
/** Build message |seq| of stream |nonce| with |len| >= SEQMSG_HDR bytes. */
void seqmsg_fill(uint8_t *buf, size_t len, uint32_t seq, uint32_t nonce);
/** 0 if |buf| is a valid message; stores its seq and nonce. */
int seqmsg_check(const uint8_t *buf, size_t len, uint32_t *seq,
                 uint32_t *nonce);

enum {
  HK_ECHO,
  HK_BIG,
  HK_HANG,
  HK_HOLD,
  HK_SINK,
  HK_SLOW,
  HK_RET,
  HK_N
};

#define HSRV_RC_MIN (-8)
#define HSRV_RC_SLOTS 32 /* rc -8..23 */
#define HSRV_BIG_MSG (64 * 1024)

/* Shared between the server child and the test process (MAP_SHARED). */
typedef struct {
  atomic_int started[HK_N];
  atomic_int ended[HK_N];
  atomic_int rc[HK_N][HSRV_RC_SLOTS]; /* count of each ending rc */
  atomic_llong dur_max_ms[HK_N];       /* longest handler run */
  atomic_llong dur_min_ms[HK_N];       /* shortest (initially INT64_MAX) */
  atomic_llong big_max_sent;           /* max bytes a BIG handler got
                                          queued before its failing send */
  atomic_llong big_fail_after_ms_max;  /* BIG: handler start -> failing
                                          send returned */
  atomic_llong big_fail_after_ms_min;
  atomic_llong last_end_ms[HK_N];      /* h2_now_ms() of the last end */
} hsrv_shared;

/* Non-zero in ThreadSanitizer / AddressSanitizer builds.  Their runtimes
 * keep shadow memory and per-thread history, so RSS there says nothing
 * about the library and everything runs several times slower: RSS bounds
 * and tight liveness windows are asserted in plain builds only (and
 * printed in every build).  Functional outcomes are asserted always. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define HUTIL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define HUTIL_SANITIZED 1
#endif
#endif
#ifndef HUTIL_SANITIZED
#define HUTIL_SANITIZED 0
#endif

/* CK_TIMEOUT_MULTIPLIER (>= 1; 1 when unset): CI sets 4 for the TSan and
 * ASan runs.  Timing headroom is multiplied by it. */
double hutil_mult(void);

typedef struct {
  int max_workers;            /* 0 = library default */
  uint32_t max_streams;       /* 0 = default */
  int64_t queue_timeout_ms;   /* -1 = default */
  size_t send_buffer;         /* 0 = default */
  int max_per_conn;           /* 0 = default share of handlers per conn */
  int max_resets_per_s;       /* 0 = default (500) */
} hsrv_cfg;

typedef struct {
  pid_t pid;
  int port;
  int ctl_fd;   /* commands to the child */
  int rep_fd;   /* replies from the child */
  hsrv_shared *sh;
} hsrv;

/** Fork a server child and wait for its port.  |cfg| may be NULL.
 * Returns 0 or -1 (printed). */
int hsrv_start(hsrv *h, const hsrv_cfg *cfg);
/** Graceful shutdown in the child (tri_server_shutdown(drain_ms)); waits
 * up to |timeout_ms| for it to return.  Returns the elapsed ms or -1. */
long hsrv_shutdown(hsrv *h, int64_t drain_ms, int timeout_ms);
/**
 * Library budgets (lib/budget.h) of the server child after it freed its
 * server: the child shuts down (|drain_ms|), calls tri_server_free() and
 * polls tri__budgets_get() for up to |settle_ms| until every counter that
 * must return to zero did.  Returns 0 when all are zero, 1 when some are
 * not (|report| names them), -1 when the child did not answer within
 * |timeout_ms|.  The child can only be killed afterwards.
 */
int hsrv_free_budgets(hsrv *h, int64_t drain_ms, int settle_ms,
                      int timeout_ms, char *report, size_t cap);
/** The same check in this process (after it freed its channels). */
int budgets_settle(int settle_ms, char *report, size_t cap);
/** SIGKILL the child and reap it; unmap shared memory. */
void hsrv_kill(hsrv *h);
/** Resident set size of |pid| in KiB (/proc/PID/statm), or -1. */
long rss_kb(pid_t pid);
/** Count of handlers of kind |k| that ended with |rc|. */
int hsrv_rc(const hsrv *h, int k, int rc);
/** "TRI_CANCELLED:3 TRI_OK:1" summary of end codes of kind |k|. */
const char *hsrv_rc_summary(const hsrv *h, int k);
/** Wait until started[k] >= n (or ended[k] >= n with |ended|). 0 / -1. */
int hsrv_wait_count(const hsrv *h, int k, int n, int ended, int timeout_ms);

/* ---------------------------------------------------------------- */

typedef struct {
  int port;
  tri_channel *ch;
  pthread_t t;
  int running;
  atomic_int stop;
  int64_t *ok_at;          /* ms of each success (written by the thread) */
  long ok_cap;
  atomic_long n_ok;
  atomic_long n_fail;
  int64_t fail_at[64];
  int fail_code[64];
  char first_fail_msg[200];
  int64_t max_call_ms;
} healthy;

typedef struct {
  double per_s;
  long calls;
  long fails;
  int64_t max_gap_ms;     /* longest time without a success */
  int windows, empty_windows;
} hstats;

/** Start a client thread doing unary echo calls (2 s deadline each) on
 * its own channel to 127.0.0.1:|port|.  0 or -1. */
int healthy_start(healthy *hc, int port);
void healthy_stop(healthy *hc);
/** Statistics of the window [from_ms, to_ms) (h2_now_ms() scale), with
 * |win_ms| windows for empty_windows.  Call after healthy_stop(). */
hstats healthy_stats(const healthy *hc, int64_t from_ms, int64_t to_ms,
                     int win_ms);

/* ---------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  pthread_t t;
  int running;
  atomic_int stop;
  atomic_long peak_kb;
  atomic_long last_kb;
} rssmon;

void rssmon_start(rssmon *m, pid_t pid);
void rssmon_reset_peak(rssmon *m);
void rssmon_stop(rssmon *m);

/* ---------------------------------------------------------------- */

/*
 * One attack measurement: a healthy client and an RSS monitor on an hsrv.
 * measure_begin() starts both and records a 1 s baseline; the test then
 * attacks; measure_end() keeps observing until at least |min_attack_ms|
 * after the attack began, stops everything, prints
 *   measure: <name> healthy_calls_per_s=.. baseline=.. fails=..
 *            max_gap_ms=.. empty_100ms_windows=.. rss_kb before=.. peak=..
 *            after=..
 * and fills the result.
 */
typedef struct {
  hsrv *srv;
  healthy hc;
  rssmon mon;
  int64_t t_base0, t_attack0, t_attack1;
  long rss_before_kb, rss_peak_kb, rss_after_kb;
  hstats base, attack;
} measure;

int measure_begin(measure *m, hsrv *srv);
void measure_attack_start(measure *m);
void measure_end(measure *m, const char *name, int min_attack_ms);

#endif /* HUTIL_H */
