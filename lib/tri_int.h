/*
 * Internal declarations shared by lib/.  Include first in every lib/ file.
 *
 * Bare section numbers in lib/ comments ("5.1:", "(7.3)") are sections of
 * doc/PROTOCOL.md, which cites the public specifications (RFC 9113, gRPC's
 * PROTOCOL-HTTP2, the Triple specification) for each.
 * Internal non-static functions carry the tri__ prefix; they are hidden
 * from the shared library by -fvisibility=hidden and the version script,
 * but reachable from the unit tests that link the convenience library.
 */
#ifndef TRI_INT_H
#define TRI_INT_H

#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <triplestream/triplestream.h>

#define tri__container_of(ptr, type, member)                                \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define TRI__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TRI__MIN(a, b) ((a) < (b) ? (a) : (b))
#define TRI__MAX(a, b) ((a) > (b) ? (a) : (b))

#ifdef TRI_DEBUG
#define TRI_DEBUGF(...) tri__debugf(__VA_ARGS__)
void tri__debugf(const char *fmt, ...);
/* Invariant checks of --enable-debug builds: abort with the location. */
#define TRI__ASSERT(cond)                                                    \
  ((cond) ? (void)0 : tri__assert_fail(#cond, __FILE__, __LINE__))
void tri__assert_fail(const char *what, const char *file, int line);
#else
#define TRI_DEBUGF(...)                                                      \
  do {                                                                       \
  } while (0)
#define TRI__ASSERT(cond) ((void)0)
#endif

/* ---- mem.c: every allocation of the library goes through these. ---- */
void *tri__malloc(size_t n);
void *tri__calloc(size_t nmemb, size_t size);
void *tri__realloc(void *p, size_t n);
void tri__free(void *p);
char *tri__strdup(const char *s);          /* NULL in -> NULL out */
char *tri__strndup(const char *s, size_t n);
/* Tests only: |fn| (NULL: none) is asked before every allocation of |n|
 * bytes by the wrappers above; nonzero makes it fail as out of memory.
 * Set and cleared from any thread; called on the allocating thread. */
typedef int (*tri__mem_fail_fn)(size_t n);
void tri__mem_set_fail_hook(tri__mem_fail_fn fn);

/* ---- sync.c: lock and condition wrappers.  Failures are bugs: abort
 * with a message (never returned).  Conditions use CLOCK_MONOTONIC. ---- */
typedef struct {
  pthread_mutex_t m;
} tri__mutex;
typedef struct {
  pthread_cond_t c;
} tri__cond;

void tri__mutex_init(tri__mutex *mu);
void tri__mutex_destroy(tri__mutex *mu);
void tri__mutex_lock(tri__mutex *mu);
void tri__mutex_unlock(tri__mutex *mu);
void tri__cond_init(tri__cond *cv); /* monotonic clock */
void tri__cond_destroy(tri__cond *cv);
void tri__cond_signal(tri__cond *cv);
void tri__cond_broadcast(tri__cond *cv);
void tri__cond_wait(tri__cond *cv, tri__mutex *mu);
/* Wait until the monotonic time |deadline_ns| (tri__now_ns() scale);
 * deadline_ns < 0 waits forever.  Returns 0 when woken (maybe spuriously),
 * ETIMEDOUT when the deadline has passed.  Callers loop on a predicate. */
int tri__cond_wait_until(tri__cond *cv, tri__mutex *mu, int64_t deadline_ns);

/* Spin before parking (doc/DESIGN.md, "Spinning before a wait"): watch
 * the counter |*seq|, which a waker increments (atomically) before it
 * broadcasts, for at most |budget_ns| and not past |deadline_ns|
 * (TRI__NO_DEADLINE: none), giving the CPU away between looks.  Returns
 * 1 once *seq differs from |seen|, 0 when it gave up or did not spin
 * (budget 0, too many threads spinning, or this thread's recent spins
 * did not pay off; "too many" is half the CPUs this process may run
 * on, so none with one).  Call with no lock held; the caller re-checks its
 * predicate under its lock either way.  Any thread. */
int tri__spin_watch(const unsigned *seq, unsigned seen, int64_t budget_ns,
                    int64_t deadline_ns);
/* The spin budget of new streams when their options do not set one:
 * TRI__DEF_SPIN_US, or the environment's TRI_SPIN_US (0 .. 10000) read
 * once. */
#define TRI__DEF_SPIN_US 200
#define TRI__SPIN_MAX_US 10000
int tri__spin_default_us(void);
/* Reset the spinning state in the child of fork() (process.c). */
void tri__spin_atfork_child(void);

/* Name thread |t| ("tri-io", "tri-timer", "tri-worker"; best effort,
 * Linux keeps 15 characters).  tri__thread_create names the library's
 * threads with it. */
void tri__thread_name(pthread_t t, const char *name);

/* ---- clock.c: monotonic time in nanoseconds, saturating arithmetic. ---- */
#define TRI__NS_PER_MS INT64_C(1000000)
#define TRI__NO_DEADLINE INT64_C(-1)
int64_t tri__now_ns(void);
/* now + ms, saturating at INT64_MAX; ms < 0 gives TRI__NO_DEADLINE. */
int64_t tri__deadline_after_ms(int64_t ms);
/* |base_ns| + |ns| (both >= 0), saturating at INT64_MAX: a timeout of
 * "never" stays never instead of wrapping into the past. */
int64_t tri__deadline_add(int64_t base_ns, int64_t ns);
/* Earlier of two deadlines where TRI__NO_DEADLINE (-1) means "none". */
int64_t tri__deadline_min(int64_t a, int64_t b);
/* ms until |deadline_ns| rounded up, 0 if passed, -1 if none; clamps to
 * INT_MAX for poll(). */
int tri__deadline_poll_ms(int64_t deadline_ns);

/* ---- wakeup.c: eventfd (pipe fallback) used to wake an I/O thread.
 * tri__wakeup_signal() may be called from any thread; a pending flag
 * coalesces signals so only the first after a drain writes.  The I/O
 * thread polls tri__wakeup_fd() and calls tri__wakeup_drain(). ---- */
typedef struct {
  int rfd, wfd;         /* same fd for eventfd */
  int pending;          /* atomic */
} tri__wakeup;
int tri__wakeup_init(tri__wakeup *w); /* 0 or -errno */
void tri__wakeup_close(tri__wakeup *w);
void tri__wakeup_signal(tri__wakeup *w);
void tri__wakeup_drain(tri__wakeup *w);
static inline int tri__wakeup_fd(const tri__wakeup *w) { return w->rfd; }

/* ---- intrusive doubly linked list (libuv-style queue). ---- */
typedef struct tri__list {
  struct tri__list *next, *prev;
} tri__list;
static inline void tri__list_init(tri__list *h) { h->next = h->prev = h; }
static inline int tri__list_empty(const tri__list *h) { return h->next == h; }
static inline void tri__list_insert_tail(tri__list *h, tri__list *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void tri__list_remove(tri__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}
static inline int tri__list_linked(const tri__list *n) {
  return n->next != n;
}
/* Move every element of |from| to the (empty) list |to|. */
static inline void tri__list_move(tri__list *from, tri__list *to) {
  if (tri__list_empty(from)) {
    tri__list_init(to);
    return;
  }
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  tri__list_init(from);
}

#endif /* TRI_INT_H */
