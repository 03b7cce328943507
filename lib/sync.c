#include "tri_int.h"

/*
 * Mutex and condition-variable wrappers.
 *
 * Threads: any (callers, the I/O thread, the timer thread, workers).
 *
 * A failing pthread call here is a bug in the library (double unlock,
 * destroying a locked mutex, ...), never a run-time condition, so every
 * failure prints a message and aborts (libuv's uv_mutex_lock does the same).
 * With --enable-debug (TRI_DEBUG) mutexes are PTHREAD_MUTEX_ERRORCHECK so
 * relocking or unlocking a mutex we do not own is caught instead of
 * deadlocking or silently succeeding.  Conditions wait on CLOCK_MONOTONIC
 * so deadlines are immune to wall-clock steps.
 */

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void fatal(const char *what, int rv) {
  /* strerror() is not thread-safe in theory; we abort right after. */
  fprintf(stderr, "libtriplestream: %s failed: %s (%d)\n", what,
          strerror(rv), rv);
  fflush(stderr);
  abort();
}

void tri__mutex_init(tri__mutex *mu) {
  pthread_mutexattr_t attr;
  int rv;

  rv = pthread_mutexattr_init(&attr);
  if (rv != 0)
    fatal("pthread_mutexattr_init", rv);
#ifdef TRI_DEBUG
  rv = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  if (rv != 0)
    fatal("pthread_mutexattr_settype", rv);
#endif
  rv = pthread_mutex_init(&mu->m, &attr);
  if (rv != 0)
    fatal("pthread_mutex_init", rv);
  rv = pthread_mutexattr_destroy(&attr);
  if (rv != 0)
    fatal("pthread_mutexattr_destroy", rv);
}

void tri__mutex_destroy(tri__mutex *mu) {
  int rv = pthread_mutex_destroy(&mu->m);
  if (rv != 0)
    fatal("pthread_mutex_destroy", rv);
}

void tri__mutex_lock(tri__mutex *mu) {
  int rv = pthread_mutex_lock(&mu->m);
  if (rv != 0)
    fatal("pthread_mutex_lock", rv);
}

void tri__mutex_unlock(tri__mutex *mu) {
  int rv = pthread_mutex_unlock(&mu->m);
  if (rv != 0)
    fatal("pthread_mutex_unlock", rv);
}

void tri__cond_init(tri__cond *cv) {
  pthread_condattr_t attr;
  int rv;

  rv = pthread_condattr_init(&attr);
  if (rv != 0)
    fatal("pthread_condattr_init", rv);
  rv = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rv != 0)
    fatal("pthread_condattr_setclock", rv);
  rv = pthread_cond_init(&cv->c, &attr);
  if (rv != 0)
    fatal("pthread_cond_init", rv);
  rv = pthread_condattr_destroy(&attr);
  if (rv != 0)
    fatal("pthread_condattr_destroy", rv);
}

void tri__cond_destroy(tri__cond *cv) {
  int rv = pthread_cond_destroy(&cv->c);
  if (rv != 0)
    fatal("pthread_cond_destroy", rv);
}

void tri__cond_signal(tri__cond *cv) {
  int rv = pthread_cond_signal(&cv->c);
  if (rv != 0)
    fatal("pthread_cond_signal", rv);
}

void tri__cond_broadcast(tri__cond *cv) {
  int rv = pthread_cond_broadcast(&cv->c);
  if (rv != 0)
    fatal("pthread_cond_broadcast", rv);
}

void tri__cond_wait(tri__cond *cv, tri__mutex *mu) {
  int rv = pthread_cond_wait(&cv->c, &mu->m);
  if (rv != 0)
    fatal("pthread_cond_wait", rv);
}

int tri__cond_wait_until(tri__cond *cv, tri__mutex *mu, int64_t deadline_ns) {
  struct timespec ts;
  int rv;

  if (deadline_ns < 0) {
    tri__cond_wait(cv, mu);
    return 0;
  }
  ts.tv_sec = (time_t)(deadline_ns / INT64_C(1000000000));
  ts.tv_nsec = (long)(deadline_ns % INT64_C(1000000000));
  rv = pthread_cond_timedwait(&cv->c, &mu->m, &ts);
  switch (rv) {
  case 0:
    return 0;
  case ETIMEDOUT:
    return ETIMEDOUT;
  case EINTR:
    /* POSIX forbids EINTR here, but some old systems returned it: it is
     * a spurious wake-up, and the caller loops on its predicate. */
    return 0;
  default:
    fatal("pthread_cond_timedwait", rv);
  }
  return 0; /* not reached */
}

/*
 * Spinning before a wait (doc/DESIGN.md, "Spinning before a wait").
 *
 * Parking on a condition variable and being woken costs two trips
 * through the kernel's scheduler, and on a virtual machine often a
 * halted virtual CPU to wake up.  When the answer a thread waits for
 * is a few tens of microseconds away (a round trip on a fast link, the
 * next message of a busy stream), watching a counter for that long is
 * cheaper than sleeping.  Three limits keep it from wasting a machine:
 *  - sched_yield() between looks, so any thread that can run on this
 *    CPU runs at once (the thread we wait for, often);
 *  - at most half the CPUs this process may run on spin at once (none
 *    with one): the rest are left for the threads doing the work;
 *  - a thread whose spin ended without an answer parks straight away
 *    on its next 1, 2, 4 ... 64 waits (reset by a spin that paid off),
 *    so a thread whose answers come late spins rarely.
 */
static unsigned spin_cap = UINT_MAX; /* atomic; UINT_MAX: not yet known */
static unsigned spinners;            /* atomic */
static _Thread_local struct {
  unsigned skip, backoff;
} spin_tl;

static unsigned spin_cap_get(void) {
  unsigned cap = __atomic_load_n(&spin_cap, __ATOMIC_RELAXED);
  if (cap == UINT_MAX) {
    /* The CPUs this process may run on (affinity, cpusets), as the
     * server's wake_cap counts them: under taskset -c 0 nothing spins. */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0
                 ? CPU_COUNT(&set)
                 : sysconf(_SC_NPROCESSORS_ONLN);
    cap = n > 1 ? (unsigned)(n / 2) : 0;
    __atomic_store_n(&spin_cap, cap, __ATOMIC_RELAXED);
  }
  return cap;
}

int tri__spin_default_us(void) {
  static int def = -1; /* atomic; -1: not read yet */
  int us = __atomic_load_n(&def, __ATOMIC_RELAXED);
  if (us < 0) {
    const char *e = getenv("TRI_SPIN_US");
    char *end;
    long v = e ? strtol(e, &end, 10) : -1;
    us = e && *e && *end == '\0' && v >= 0 && v <= TRI__SPIN_MAX_US
             ? (int)v
             : TRI__DEF_SPIN_US;
    __atomic_store_n(&def, us, __ATOMIC_RELAXED);
  }
  return us;
}

void tri__spin_atfork_child(void) {
  /* The threads counted as spinning are not in the child. */
  __atomic_store_n(&spinners, 0, __ATOMIC_RELAXED);
}

int tri__spin_watch(const unsigned *seq, unsigned seen, int64_t budget_ns,
                    int64_t deadline_ns) {
  unsigned n, cap;
  int64_t start, end;
  uint64_t looks;
  int moved = 0;

  if (budget_ns <= 0)
    return 0;
  if (spin_tl.skip > 0) {
    spin_tl.skip--;
    return 0;
  }
  cap = spin_cap_get();
  n = __atomic_load_n(&spinners, __ATOMIC_RELAXED);
  do {
    if (n >= cap)
      return 0;
  } while (!__atomic_compare_exchange_n(&spinners, &n, n + 1, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  start = tri__now_ns();
  end = tri__deadline_min(tri__deadline_add(start, budget_ns), deadline_ns);
  /* Bounded by |end|; the count (a look takes far more than 10 ns: a
   * clock read and a system call) only guards against a clock that
   * stops. */
  looks = (uint64_t)budget_ns / 10 + 1;
  for (uint64_t i = 0; i < looks; i++) {
    if (__atomic_load_n(seq, __ATOMIC_ACQUIRE) != seen) {
      moved = 1;
      break;
    }
    if (tri__now_ns() >= end)
      break;
    sched_yield();
  }
  __atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
  if (moved) {
    spin_tl.backoff = 0;
  } else if (deadline_ns >= 0 && deadline_ns - start < budget_ns) {
    /* cut short by the caller's deadline: says nothing about whether
     * spinning pays, so no back-off */
  } else {
    spin_tl.backoff = spin_tl.backoff == 0 ? 1
                      : spin_tl.backoff < 64 ? spin_tl.backoff * 2
                                             : 64;
    spin_tl.skip = spin_tl.backoff;
  }
  return moved;
}

void tri__thread_name(pthread_t t, const char *name) {
#ifdef HAVE_PTHREAD_SETNAME_NP
  char buf[16]; /* Linux limit: 15 characters and the NUL */
  size_t n;

  if (name == NULL)
    return;
  n = strlen(name);
  if (n > sizeof(buf) - 1)
    n = sizeof(buf) - 1;
  memcpy(buf, name, n);
  buf[n] = '\0';
  /* Best effort: a name is a debugging aid, never worth failing for. */
  (void)pthread_setname_np(t, buf);
#else
  (void)t;
  (void)name;
#endif
}
