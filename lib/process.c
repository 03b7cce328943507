/*
 * Process-level concerns: fork() and signals.
 *
 * fork(): only the forking thread exists in the child, so every library
 * thread (I/O loops, the timer, handler workers) is gone there and any lock
 * one of them held stays locked.  The child handler bumps a generation
 * counter; channels, servers and streams remember the generation they were
 * created in and, when it differs, fail every call at once without taking
 * a lock (TRI_UNAVAILABLE, "created before fork()").  New objects created
 * in the child work normally (the timer module restarts its thread; see
 * timer.c).
 *
 * Signals: library threads are created with every asynchronous signal
 * blocked, so a process-directed signal (SIGINT, SIGTERM, SIGCHLD, ...) is
 * always delivered to an application thread, never to tri-io/tri-timer/
 * tri-worker.  Synchronous faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGTRAP, SIGSYS) stay unblocked: blocking them is undefined.  Sockets are
 * written with MSG_NOSIGNAL, so a vanished peer never raises SIGPIPE.
 *
 * Threads: any.
 */
#include "tri_int.h"

#include <signal.h>

#include "core.h"

static unsigned g_fork_gen; /* atomic */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void atfork_child(void) {
  tri__spin_atfork_child();
  __atomic_add_fetch(&g_fork_gen, 1, __ATOMIC_RELEASE);
}

static void process_init(void) { pthread_atfork(NULL, NULL, atfork_child); }

unsigned tri__fork_gen(void) {
  pthread_once(&g_once, process_init);
  return __atomic_load_n(&g_fork_gen, __ATOMIC_ACQUIRE);
}

int tri__thread_create(pthread_t *t, const pthread_attr_t *attr,
                       void *(*fn)(void *), void *arg, const char *name) {
  sigset_t all, old;
  int rv;

  pthread_once(&g_once, process_init);
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGTRAP);
  sigdelset(&all, SIGSYS);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
  rv = pthread_create(t, attr, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rv == 0)
    tri__thread_name(*t, name);
  return rv;
}

int64_t tri__ms_to_ns(int64_t ms) {
  if (ms <= 0)
    return 0;
  if (ms > INT64_MAX / TRI__NS_PER_MS)
    return INT64_MAX;
  return ms * TRI__NS_PER_MS;
}
