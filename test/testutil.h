/*
 * Helpers for the loopback integration suites (test/integ_*.c).  They use
 * only the public API of libtriplestream plus POSIX.
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

/* Per-test timeout (seconds) for tcase_set_timeout(); Check scales it by
 * CK_TIMEOUT_MULTIPLIER. */
#define TU_TCASE_TIMEOUT 60

/* Generous upper bound used by "returned within" assertions, in ms. */
#define TU_WAIT_MS 5000

/* ---------------------------------------------------------------- */
/* Clocks                                                            */
/* ---------------------------------------------------------------- */

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
 * recv that ended it returned in |last_rc|, records
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
