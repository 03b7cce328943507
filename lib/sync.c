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

#include <stdlib.h>
#include <time.h>

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
