/*
 * Helpers for the loopback integration suites (test/integ_*.c).  They use
 * the public API of libtriplestream plus POSIX, with one internal hook:
 * tu_budgets_settle() reads the library's process-wide budget counters
 * (lib/budget.h, tri__budgets_get(); the suites link the convenience
 * library) so that every test can assert that everything it took was
 * given back.
 *
 * None of these helpers calls ck_assert: they return an error value and
 * print why on stderr, so they can also be used from handler threads and
 * from forked server processes, where a Check assertion would be
 * meaningless.  The test asserts on the return value.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <triplestream/triplestream.h>

/* Built with a sanitizer (compile-time): tests that cannot work under one
 * say so where they use these. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif

/* Per-test timeout (seconds) for tcase_set_timeout(); Check scales it by
 * CK_TIMEOUT_MULTIPLIER. */
#define TU_TCASE_TIMEOUT 60

/*
 * Bound on waits for a precondition that the test itself arranges (a
 * handler started, a thread went to sleep, a server noticed a frame), in
 * ms.  It only keeps a broken run from hanging: it is NOT the bound of a
 * timing assertion.  A test that asserts how long the library took uses
 * tu_bound_ms() with the promised time and a stated headroom.
 */
#define TU_WAIT_MS 5000

/* ---------------------------------------------------------------- */
/* Timing thresholds                                                 */
/* ---------------------------------------------------------------- */

/*
 * A timing assertion is "what the behaviour promises + stated headroom":
 * a 200 ms deadline must end in [200, 200 + headroom).  Headroom absorbs
 * scheduling on a loaded machine (CI shares 2 cores with other jobs), not
 * slowness of the library.  Under sanitizers and valgrind everything runs
 * several times slower; CI says so with CK_TIMEOUT_MULTIPLIER (4 for TSan
 * and ASan, 20 for valgrind), and the headroom is multiplied by it.
 */

/* Headroom for one wake-up or one reaction to an event that the library
 * should handle at once (a cancel waking a blocked thread, a timer firing,
 * an answer that is already known): the measured cancel -> wake-up p99 is
 * well under 1 ms; 200 ms covers a woken thread and the I/O thread each
 * waiting for a CPU behind other jobs on a 2-core machine. */
#define TU_HEADROOM_MS 200

/*
 * Assert that something that started at |t0_us| and ended at |end_us|
 * (tu_now_us()) took at least |min_ms| and less than
 * tu_bound_ms(|promise_ms|, |headroom_ms|).  A macro so that ck_assert
 * runs in the test, not in a helper.
 */
#define TU_ASSERT_ELAPSED(what, min_ms, promise_ms, headroom_ms, t0_us,     \
                          end_us)                                          \
  do {                                                                     \
    int64_t tu_el_ = (int64_t)(end_us) - (int64_t)(t0_us);                 \
    int64_t tu_lo_ = (int64_t)(min_ms);                                    \
    int64_t tu_hi_ = tu_bound_ms((promise_ms), (headroom_ms));             \
    ck_assert_msg(tu_el_ >= tu_lo_ * 1000,                                 \
                  "%s: took %lld us, must not end before %lld ms", (what), \
                  (long long)tu_el_, (long long)tu_lo_);                   \
    ck_assert_msg(tu_el_ < tu_hi_ * 1000,                                  \
                  "%s: took %lld us, bound %lld ms (%lld promised + %lld " \
                  "headroom x %.0f)",                                      \
                  (what), (long long)tu_el_, (long long)tu_hi_,            \
                  (long long)(promise_ms), (long long)(headroom_ms),       \
                  tu_mult());                                              \
  } while (0)

/* Something the library should do at once (a wake-up on cancel, an
 * answer that is already known). */
#define TU_ASSERT_PROMPT(what, t0_us, end_us)                               \
  TU_ASSERT_ELAPSED((what), 0, 0, TU_HEADROOM_MS, (t0_us), (end_us))

/* A timeout or deadline of |ms| started at or after |t0_us|: it must not
 * end early, and must end within TU_HEADROOM_MS (scaled) after. */
#define TU_ASSERT_EXPIRED(what, ms, t0_us, end_us)                          \
  TU_ASSERT_ELAPSED((what), (ms), (ms), TU_HEADROOM_MS, (t0_us), (end_us))

/** CK_TIMEOUT_MULTIPLIER (>= 1; 1 when unset or invalid). */
double tu_mult(void);
/** Upper bound for a timing assertion: |promise_ms| + |headroom_ms| *
 * tu_mult(). */
int64_t tu_bound_ms(int64_t promise_ms, int64_t headroom_ms);

/* ---------------------------------------------------------------- */
/* Library budgets (the one internal hook)                           */
/* ---------------------------------------------------------------- */

/**
 * Poll the library's budget counters (tri__budgets_get()) every 2 ms until
 * streams, conns, rq_bytes, conn_rq_bytes, partial_bytes, ring_bytes and
 * conn_owed are all zero: returns 0.  After |timeout_ms| (scaled by
 * tu_mult(): this is a wait, the counters drop as the last references
 * go) prints the non-zero counters on stderr and returns -1.  Call it
 * after the test freed every server, channel and stream it made.
 */
int tu_budgets_settle(int timeout_ms);

/* ---------------------------------------------------------------- */
/* Memory of this process                                            */
/* ---------------------------------------------------------------- */

/** A "Vm...:" field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or
 * -1. */
long tu_proc_status_kb(const char *field);
/** Reset this process's peak RSS (VmHWM) to the current RSS (writes "5"
 * to /proc/self/clear_refs).  0, or -1 when the kernel does not allow it
 * (VmHWM then keeps the peak of the whole process life). */
int tu_reset_peak_rss(void);

/* ---------------------------------------------------------------- */
/* Clocks                                                            */
/* ---------------------------------------------------------------- */

/** Threads of this process named exactly |name| (/proc/self/task/N/comm),
 * or -1 without /proc. */
int tu_threads_named(const char *name);

/** Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
int64_t tu_now_ms(void);
/** Monotonic clock in microseconds. */
int64_t tu_now_us(void);
/** Sleep |ms| milliseconds (restarts after EINTR). */
void tu_sleep_ms(int ms);

/* ---------------------------------------------------------------- */
/* Server and channel                                                */
/* ---------------------------------------------------------------- */

/** One method registration for tu_server_start(). */
typedef struct {
  const char *method;   /* "/test.Echo/Bidi" */
  tri_handler_fn fn;
  void *user_data;
} tu_method;

/**
 * Create, register |n| methods, bind to 127.0.0.1:0 and start a server.
 * |opts| may be NULL.  On success returns the server and stores the bound
 * port in *|port|; on failure prints the reason and returns NULL.
 * Free with tri_server_free().
 */
tri_server *tu_server_start(const tu_method *methods, size_t n,
                            const tri_server_opts *opts, int *port);

/**
 * Create a channel to 127.0.0.1:|port|.  |opts| may be NULL.  Returns NULL
 * (after printing why) on failure.
 */
tri_channel *tu_channel_new(int port, const tri_channel_opts *opts);

/**
 * A port on 127.0.0.1 where nothing listens right now: bind port 0, read
 * the port, close the socket.  Returns the port or -1.
 */
int tu_unused_port(void);

/**
 * A raw TCP listener on 127.0.0.1:0 that never accepts (the kernel still
 * completes handshakes into the backlog, so connects succeed but nothing is
 * ever answered).  Returns the socket and stores the port, or -1.
 */
int tu_silent_listener(int *port);

/** Connect a raw TCP socket to 127.0.0.1:|port|; returns the fd or -1. */
int tu_raw_connect(int port);

/**
 * Wait until |fd| is closed by the peer: read and discard until read()
 * returns 0 or fails (ECONNRESET...), for at most |timeout_ms|.
 * Returns 0 when closed, -1 on timeout.
 */
int tu_wait_peer_close(int fd, int timeout_ms);

/* ---------------------------------------------------------------- */
/* A DNS responder for the library's resolver                        */
/* ---------------------------------------------------------------- */

/* What it answers (tu_dns.mode; may change while it runs):
 *   TU_DNS_A        A queries: tu_dns.naddrs records, 127.0.0.1 up to
 *                   127.0.0.naddrs (1-8); any other query: no records
 *   TU_DNS_EMPTY    every query: no records (NOERROR)
 *   TU_DNS_NXDOMAIN every query: NXDOMAIN
 *   TU_DNS_SILENT   nothing (queries are counted, never answered) */
enum { TU_DNS_A, TU_DNS_EMPTY, TU_DNS_NXDOMAIN, TU_DNS_SILENT };

typedef struct {
  int fd, port;
  pthread_t t;
  atomic_int stop;
  atomic_int mode;      /* TU_DNS_* */
  atomic_int naddrs;    /* TU_DNS_A: how many A records */
  atomic_int queries;   /* every query received */
  atomic_int a_queries; /* A queries received */
} tu_dns;

/**
 * Start a responder on UDP 127.0.0.1:0 in a thread and point the library
 * at it (TRI_DNS_SERVERS).  Returns 0, or -1 (printed).
 */
int tu_dns_start(tu_dns *d, int mode, int naddrs);
/** Stop it, join its thread, unset TRI_DNS_SERVERS. */
void tu_dns_stop(tu_dns *d);

/* ---------------------------------------------------------------- */
/* Threads                                                           */
/* ---------------------------------------------------------------- */

/** pthread_create() wrapper; returns 0 or the error (printed). */
int tu_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/**
 * Join |t|, waiting at most |timeout_ms| (pthread_timedjoin_np).  Returns 0
 * when joined (*|ret| gets the result if not NULL) or ETIMEDOUT when the
 * thread is still running (it is then NOT joined; the test should fail,
 * and Check's fork mode reaps the process).
 */
int tu_thread_join(pthread_t t, int timeout_ms, void **ret);

/* ---------------------------------------------------------------- */
/* Semaphores with a timeout                                         */
/* ---------------------------------------------------------------- */

/** sem_timedwait() for |timeout_ms| (EINTR retried).  0 or -1 on timeout. */
int tu_sem_wait(sem_t *sem, int timeout_ms);

/* ---------------------------------------------------------------- */
/* "Is that thread really blocked?"                                  */
/* ---------------------------------------------------------------- */

/*
 * How a test knows that another thread is blocked inside a library call
 * (tri_stream_recv() ...) before it cancels, so that it tests the wake-up
 * path and not the "already cancelled" path (a cancel that lands before the
 * thread blocks would pass even if wake-ups were broken):
 *
 *   1. The blocking thread calls tu_blocker_arrive() immediately before the
 *      blocking call.  That records its kernel thread id and posts a
 *      semaphore.
 *   2. The test calls tu_blocker_wait(): it waits for the semaphore, then
 *      polls /proc/self/task/<tid>/stat every millisecond until the thread
 *      state is 'S' (interruptible sleep: a futex wait, i.e. a condition
 *      wait inside the library) in |confirm| consecutive polls, then sleeps
 *      |settle_ms| more.  A thread briefly sleeping on a contended mutex on
 *      its way in also shows 'S'; the consecutive polls and the settle time
 *      make that unlikely.
 *
 * If /proc is not readable the poll is skipped and only the settle time is
 * used (tu_blocker_wait() returns 1 then).  Either way the tests stay
 * correct if the thread is not yet blocked: a cancel before the blocking
 * call must give the same result; only the path exercised differs.
 */
typedef struct {
  sem_t arrived;
  atomic_int tid;      /* kernel tid of the blocking thread, 0 = not yet */
} tu_blocker;

void tu_blocker_init(tu_blocker *b);
void tu_blocker_destroy(tu_blocker *b);
/** Called by the thread that is about to block. */
void tu_blocker_arrive(tu_blocker *b);
/**
 * Wait (at most |timeout_ms|) until the thread that called
 * tu_blocker_arrive() sleeps in the kernel, then |settle_ms| more.
 * Returns 0 (confirmed through /proc), 1 (no /proc; settle only), -1 on
 * timeout (the thread never arrived or never slept).
 */
int tu_blocker_wait(tu_blocker *b, int timeout_ms, int settle_ms);

/** Default settle time after the thread is seen sleeping. */
#define TU_SETTLE_MS 50

/* ---------------------------------------------------------------- */
/* Handlers shared by the suites                                     */
/* ---------------------------------------------------------------- */

/**
 * Bidi echo: sends every received message back until the client
 * half-closes, then finishes OK.  A failing recv/send ends the handler
 * with that status.  |user_data| is ignored.
 */
int tu_echo_handler(tri_stream *s, void *user_data);

/**
 * State of tu_hang_handler(), passed as its user_data.  The handler posts
 * |started|, calls tu_blocker_arrive(&blocked) and blocks in
 * tri_stream_recv() (messages that do arrive are dropped), stores what the
 * recv that ended it returned in |last_rc| and when in |ended_us|,
 * records
 * tri_stream_server_draining() and tri_stream_remaining_ms() and posts
 * |ended|.  It never sends anything.  |blocked| is only meaningful when
 * one hang stream at a time is running.
 */
typedef struct {
  sem_t started;
  sem_t ended;
  tu_blocker blocked;
  atomic_int n_started;
  atomic_int n_ended;
  atomic_int last_rc;        /* INT32_MIN until a handler ended */
  atomic_int draining;       /* server_draining() when recv returned */
  atomic_llong remaining_ms; /* remaining_ms() at handler start */
  atomic_llong ended_us;     /* tu_now_us() when the last recv returned */
} tu_hang;

void tu_hang_init(tu_hang *h);
void tu_hang_destroy(tu_hang *h);
int tu_hang_handler(tri_stream *s, void *user_data);

/* ---------------------------------------------------------------- */
/* Misc                                                              */
/* ---------------------------------------------------------------- */

/** Fill |buf| with a deterministic pattern derived from |seed|. */
void tu_fill(void *buf, size_t len, uint32_t seed);
/** Index of the first byte that differs from tu_fill(|seed|), or -1. */
long tu_check_fill(const void *buf, size_t len, uint32_t seed);

/** "TRI_CANCELLED (cancelled)" for messages; static per-thread buffer. */
const char *tu_code(int code);

#endif /* TESTUTIL_H */
