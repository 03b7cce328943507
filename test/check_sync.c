/*
 * Unit tests for lib/sync.c, lib/clock.c and lib/wakeup.c.  Threads are
 * ordered with mutex/condition handshakes, not sleeps; time asserts are
 * one-sided ("not before") or generous upper bounds.
 */
#include "tri_int.h"
#include "core.h" /* tri__thread_create */

#include <check.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#define MS TRI__NS_PER_MS

/* ------------------------------------------------------------- clock */

START_TEST(clock_basics) {
  int64_t a = tri__now_ns(), b = tri__now_ns(), d;
  int ms;

  ck_assert_int_gt(a, 0);
  ck_assert_int_ge(b, a);

  ck_assert_int_eq(tri__deadline_after_ms(-1), TRI__NO_DEADLINE);
  ck_assert_int_eq(tri__deadline_after_ms(-100), TRI__NO_DEADLINE);
  ck_assert_int_eq(tri__deadline_after_ms(INT64_MAX), INT64_MAX);
  ck_assert_int_eq(tri__deadline_after_ms(INT64_MAX / MS), INT64_MAX);
  d = tri__deadline_after_ms(10);
  ck_assert_int_ge(d, b + 10 * MS);
  ck_assert_int_lt(d, tri__now_ns() + 10 * MS + 1);
  ck_assert_int_ge(tri__deadline_after_ms(0), b);

  ck_assert_int_eq(tri__deadline_min(-1, -1), TRI__NO_DEADLINE);
  ck_assert_int_eq(tri__deadline_min(-1, 5), 5);
  ck_assert_int_eq(tri__deadline_min(5, -1), 5);
  ck_assert_int_eq(tri__deadline_min(7, 5), 5);
  ck_assert_int_eq(tri__deadline_min(5, 7), 5);
  ck_assert_int_eq(tri__deadline_min(0, 7), 0);

  ck_assert_int_eq(tri__deadline_poll_ms(TRI__NO_DEADLINE), -1);
  ck_assert_int_eq(tri__deadline_poll_ms(0), 0);
  ck_assert_int_eq(tri__deadline_poll_ms(tri__now_ns() - MS), 0);
  ck_assert_int_eq(tri__deadline_poll_ms(INT64_MAX), INT_MAX);
  /* rounds up: anything still ahead is at least 1 ms */
  ms = tri__deadline_poll_ms(tri__now_ns() + 1000 * MS + MS / 2);
  ck_assert_int_ge(ms, 1);
  ck_assert_int_le(ms, 1001);
  ck_assert_int_ge(tri__deadline_poll_ms(tri__now_ns() + 3 * MS + 1), 1);
}
END_TEST

/* -------------------------------------------------------------- sync */

START_TEST(mutex_basics) {
  tri__mutex mu;
  tri__cond cv;

  tri__mutex_init(&mu);
  tri__cond_init(&cv);
  tri__mutex_lock(&mu);
  tri__cond_signal(&cv);    /* no waiter: no effect */
  tri__cond_broadcast(&cv);
  tri__mutex_unlock(&mu);
  tri__cond_destroy(&cv);
  tri__mutex_destroy(&mu);
}
END_TEST

START_TEST(cond_wait_until_times_out) {
  tri__mutex mu;
  tri__cond cv;
  int64_t t0, deadline;
  int rv;

  tri__mutex_init(&mu);
  tri__cond_init(&cv);
  tri__mutex_lock(&mu);
  ck_assert_int_eq(tri__cond_wait_until(&cv, &mu, tri__now_ns() - MS),
                   ETIMEDOUT);
  ck_assert_int_eq(tri__cond_wait_until(&cv, &mu, 0), ETIMEDOUT);
  /* a near deadline: never returns ETIMEDOUT before it (loop over
   * spurious wake-ups, as callers do) */
  t0 = tri__now_ns();
  deadline = t0 + 20 * MS;
  while ((rv = tri__cond_wait_until(&cv, &mu, deadline)) == 0)
    ;
  ck_assert_int_eq(rv, ETIMEDOUT);
  ck_assert_int_ge(tri__now_ns(), deadline);
  ck_assert_int_lt(tri__now_ns() - deadline, 2000 * MS);
  tri__mutex_unlock(&mu);
  tri__cond_destroy(&cv);
  tri__mutex_destroy(&mu);
}
END_TEST

struct waiter {
  tri__mutex mu;
  tri__cond cv;       /* the condition under test */
  tri__cond ready_cv; /* waiter -> main: "I am about to wait" */
  int waiting;
  int flag;
  int rv;
  int64_t deadline;
};

static void *waiter_main(void *arg) {
  struct waiter *w = arg;
  int rv = 0;

  tri__mutex_lock(&w->mu);
  w->waiting = 1;
  tri__cond_signal(&w->ready_cv);
  /* The mutex is held from setting |waiting| until the wait releases it,
   * so main cannot signal before we are really waiting. */
  while (!w->flag && rv != ETIMEDOUT)
    rv = tri__cond_wait_until(&w->cv, &w->mu, w->deadline);
  w->rv = rv;
  tri__mutex_unlock(&w->mu);
  return NULL;
}

static void run_waiter(int64_t deadline, int broadcast) {
  struct waiter w;
  pthread_t th;
  int64_t t0 = tri__now_ns();

  memset(&w, 0, sizeof(w));
  tri__mutex_init(&w.mu);
  tri__cond_init(&w.cv);
  tri__cond_init(&w.ready_cv);
  w.deadline = deadline;
  ck_assert_int_eq(pthread_create(&th, NULL, waiter_main, &w), 0);
  tri__mutex_lock(&w.mu);
  while (!w.waiting)
    tri__cond_wait(&w.ready_cv, &w.mu);
  w.flag = 1;
  if (broadcast)
    tri__cond_broadcast(&w.cv);
  else
    tri__cond_signal(&w.cv);
  tri__mutex_unlock(&w.mu);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(w.rv, 0);
  ck_assert_int_eq(w.flag, 1);
  ck_assert_int_lt(tri__now_ns() - t0, 5000 * MS);
  tri__cond_destroy(&w.ready_cv);
  tri__cond_destroy(&w.cv);
  tri__mutex_destroy(&w.mu);
}

START_TEST(cond_wait_until_wakes_on_signal) {
  run_waiter(tri__now_ns() + 30000 * MS, 0);
}
END_TEST

START_TEST(cond_wait_forever_wakes_on_broadcast) {
  run_waiter(TRI__NO_DEADLINE, 1);
}
END_TEST

/* ------------------------------------------------------------ spin */

/* Spinning is allowed at all here: half the CPUs this process may run
 * on, as lib/sync.c counts them. */
static int can_spin(void) {
  cpu_set_t set;
  long n = sched_getaffinity(0, sizeof(set), &set) == 0
               ? CPU_COUNT(&set)
               : sysconf(_SC_NPROCESSORS_ONLN);
  return n > 1;
}

/* Clear this thread's spin back-off (it is per thread, and valgrind runs
 * the tests in one process, CK_FORK=no): a spin whose counter has
 * already moved ends the back-off; waits skipped by it return 0 first. */
static void spin_reset(void) {
  unsigned seq = 1;
  for (int i = 0; i < 200 && can_spin(); i++)
    if (tri__spin_watch(&seq, 0, 1000 * MS, TRI__NO_DEADLINE) == 1)
      return;
  ck_assert_msg(!can_spin(), "spin back-off did not clear in 200 waits");
}

struct bumper {
  unsigned *seq;
  tri__mutex mu;
  tri__cond cv;
  int go;
};

/* Waits for the test's go, then bumps the counter as a waker does. */
static void *bump_main(void *p) {
  struct bumper *b = p;
  tri__mutex_lock(&b->mu);
  while (!b->go)
    tri__cond_wait(&b->cv, &b->mu);
  tri__mutex_unlock(&b->mu);
  __atomic_add_fetch(b->seq, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* A spin sees the counter move (budget 30 s, beyond the check's 15 s
 * timeout: only the bump ends it in time). */
START_TEST(spin_sees_counter_move) {
  unsigned seq = 7;
  struct bumper b = {.seq = &seq};
  pthread_t t;
  int64_t t0;
  int moved;

  spin_reset();
  tri__mutex_init(&b.mu);
  tri__cond_init(&b.cv);
  ck_assert_int_eq(tri__thread_create(&t, NULL, bump_main, &b, "bump"), 0);
  tri__mutex_lock(&b.mu);
  b.go = 1; /* it may bump before or while we spin: both must count */
  tri__mutex_unlock(&b.mu);
  tri__cond_signal(&b.cv);
  t0 = tri__now_ns();
  moved = tri__spin_watch(&seq, 7, 30000 * MS, TRI__NO_DEADLINE);
  pthread_join(t, NULL);
  if (can_spin()) {
    ck_assert_int_eq(moved, 1);
    /* the check's timeout (15 s) is the bound; this says it plainly */
    ck_assert_int_lt(tri__now_ns() - t0, 10000 * MS);
  } else {
    ck_assert_int_eq(moved, 0); /* one CPU: never spins */
  }
  tri__cond_destroy(&b.cv);
  tri__mutex_destroy(&b.mu);
}
END_TEST

/* A counter that has already moved returns at once; budget 0 never
 * spins. */
START_TEST(spin_budget_and_seen) {
  unsigned seq = 3;
  spin_reset();
  ck_assert_int_eq(tri__spin_watch(&seq, 3, 0, TRI__NO_DEADLINE), 0);
  ck_assert_int_eq(tri__spin_watch(&seq, 2, 30000 * MS, TRI__NO_DEADLINE),
                   can_spin());
}
END_TEST

/* A spin ends at its budget, and at the caller's deadline when that
 * comes first; after a spin that found nothing, the next wait does not
 * spin at all (back-off), then spinning resumes.  A spin cut short by
 * the deadline does not back off. */
START_TEST(spin_budget_deadline_backoff) {
  unsigned seq = 0;
  int64_t t0, el;

  if (!can_spin())
    return; /* nothing to time: never spins (spin_budget_and_seen) */
  spin_reset();
  t0 = tri__now_ns();
  ck_assert_int_eq(tri__spin_watch(&seq, 0, 20 * MS, TRI__NO_DEADLINE), 0);
  el = tri__now_ns() - t0;
  ck_assert_int_ge(el, 20 * MS); /* the whole budget */
  /* back-off: this one returns without spinning, though it could spin
   * for 30 s (the check's timeout would end the test) */
  ck_assert_int_eq(tri__spin_watch(&seq, 0, 30000 * MS, TRI__NO_DEADLINE),
                   0);
  /* spinning again, now cut by the deadline (1 ms) not the 30 s budget */
  t0 = tri__now_ns();
  ck_assert_int_eq(tri__spin_watch(&seq, 0, 30000 * MS, t0 + MS), 0);
  el = tri__now_ns() - t0;
  ck_assert_int_ge(el, MS);
  ck_assert_int_lt(el, 10000 * MS);
  /* ... and, cut by its deadline, set no back-off: this one spins */
  t0 = tri__now_ns();
  ck_assert_int_eq(tri__spin_watch(&seq, 0, 30000 * MS, t0 + MS), 0);
  ck_assert_int_ge(tri__now_ns() - t0, MS);
  spin_reset();
}
END_TEST

START_TEST(thread_name) {
#ifdef HAVE_PTHREAD_SETNAME_NP
  char buf[32];

  tri__thread_name(pthread_self(), "tri-a-very-long-thread-name");
  ck_assert_int_eq(pthread_getname_np(pthread_self(), buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "tri-a-very-long");
  tri__thread_name(pthread_self(), "tri-io");
  ck_assert_int_eq(pthread_getname_np(pthread_self(), buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "tri-io");
#else
  tri__thread_name(pthread_self(), "tri-io"); /* a no-op; must not crash */
#endif
}
END_TEST

/* A thread that names nothing itself and waits until told to end. */
static void *wait_on_pipe(void *arg) {
  int fd = *(int *)arg;
  char c;
  while (read(fd, &c, 1) < 0 && errno == EINTR)
    ;
  return NULL;
}

/* tri__thread_create names the thread before it returns: ps and /proc
 * show "tri-timer" even if the thread has not run yet (integ_regress D11b
 * counted library threads by name right after a call, and once found
 * the timer thread still under its creator's name). */
START_TEST(thread_named_at_creation) {
  pthread_t t;
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  ck_assert_int_eq(tri__thread_create(&t, NULL, wait_on_pipe, &p[0],
                                      "tri-named"), 0);
#ifdef HAVE_PTHREAD_SETNAME_NP
  {
    char buf[32];
    ck_assert_int_eq(pthread_getname_np(t, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "tri-named");
  }
#endif
  ck_assert_int_eq(write(p[1], "x", 1), 1);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  close(p[0]);
  close(p[1]);
}
END_TEST

/* ------------------------------------------------------------ wakeup */

static int readable(int fd, int timeout_ms) {
  struct pollfd p;
  int rv;

  p.fd = fd;
  p.events = POLLIN;
  p.revents = 0;
  do
    rv = poll(&p, 1, timeout_ms);
  while (rv == -1 && errno == EINTR);
  ck_assert_int_ge(rv, 0);
  return rv == 1 && (p.revents & POLLIN);
}

START_TEST(wakeup_coalesces) {
  tri__wakeup w;
  int i;

  ck_assert_int_eq(tri__wakeup_init(&w), 0);
  ck_assert_int_ge(tri__wakeup_fd(&w), 0);
  ck_assert(!readable(tri__wakeup_fd(&w), 0));
  for (i = 0; i < 10; i++)
    tri__wakeup_signal(&w);
  ck_assert(readable(tri__wakeup_fd(&w), 0));
  tri__wakeup_drain(&w);
  ck_assert(!readable(tri__wakeup_fd(&w), 0));
  tri__wakeup_drain(&w); /* draining an empty fd is fine */
  ck_assert(!readable(tri__wakeup_fd(&w), 0));
  /* after a drain the next signal writes again */
  tri__wakeup_signal(&w);
  ck_assert(readable(tri__wakeup_fd(&w), 0));
  tri__wakeup_drain(&w);
  ck_assert(!readable(tri__wakeup_fd(&w), 0));
  tri__wakeup_close(&w);
  tri__wakeup_close(&w); /* idempotent */
  tri__wakeup_signal(&w); /* after close: ignored, no crash */
}
END_TEST

struct sig_arg {
  tri__wakeup *w;
  pthread_barrier_t *bar;
  int n;
};

static void *signaller(void *arg) {
  struct sig_arg *a = arg;
  int i;

  pthread_barrier_wait(a->bar);
  for (i = 0; i < a->n; i++)
    tri__wakeup_signal(a->w);
  return NULL;
}

START_TEST(wakeup_from_other_thread) {
  tri__wakeup w;
  pthread_barrier_t bar;
  pthread_t th;
  struct sig_arg a;
  int64_t t0;

  ck_assert_int_eq(tri__wakeup_init(&w), 0);
  ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
  a.w = &w;
  a.bar = &bar;
  a.n = 1;
  ck_assert_int_eq(pthread_create(&th, NULL, signaller, &a), 0);
  t0 = tri__now_ns();
  pthread_barrier_wait(&bar);
  ck_assert(readable(tri__wakeup_fd(&w), 10000));
  ck_assert_int_lt(tri__now_ns() - t0, 5000 * MS);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  tri__wakeup_drain(&w);
  ck_assert(!readable(tri__wakeup_fd(&w), 0));
  pthread_barrier_destroy(&bar);
  tri__wakeup_close(&w);
}
END_TEST

#define NSIG_THREADS 4
#define NSIG_ROUNDS 50
struct race_arg {
  tri__wakeup *w;
  pthread_barrier_t *bar;
  int n;
  int *done; /* atomic: signallers finished */
};

static void *race_signaller(void *arg) {
  struct race_arg *a = arg;
  int i;

  pthread_barrier_wait(a->bar);
  for (i = 0; i < a->n; i++)
    tri__wakeup_signal(a->w);
  __atomic_add_fetch(a->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

START_TEST(wakeup_no_lost_wakeup) {
  /* Signallers race with a draining poller; once they are done, a set
   * pending flag must come with a readable fd, or every later signal would
   * be swallowed (a lost wake-up).  Many short rounds make the window
   * between drain's read and its flag update likely to be hit. */
  tri__wakeup w;
  pthread_barrier_t bar;
  pthread_t th[NSIG_THREADS];
  struct race_arg a;
  int i, round, done;

  ck_assert_int_eq(tri__wakeup_init(&w), 0);
  for (round = 0; round < NSIG_ROUNDS; round++) {
    ck_assert_int_eq(pthread_barrier_init(&bar, NULL, NSIG_THREADS + 1), 0);
    done = 0;
    a.w = &w;
    a.bar = &bar;
    a.n = 2000;
    a.done = &done;
    for (i = 0; i < NSIG_THREADS; i++)
      ck_assert_int_eq(pthread_create(&th[i], NULL, race_signaller, &a), 0);
    pthread_barrier_wait(&bar);
    while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) < NSIG_THREADS)
      if (readable(tri__wakeup_fd(&w), 1))
        tri__wakeup_drain(&w);
    for (i = 0; i < NSIG_THREADS; i++)
      ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&bar);
    if (__atomic_load_n(&w.pending, __ATOMIC_SEQ_CST))
      ck_assert_msg(readable(tri__wakeup_fd(&w), 0),
                    "round %d: pending set but fd not readable", round);
    /* and a fresh signal after a drain is always seen */
    tri__wakeup_drain(&w);
    ck_assert(!readable(tri__wakeup_fd(&w), 0));
    tri__wakeup_signal(&w);
    ck_assert(readable(tri__wakeup_fd(&w), 0));
    tri__wakeup_drain(&w);
  }
  tri__wakeup_close(&w);
}
END_TEST

static Suite *sync_suite(void) {
  Suite *s = suite_create("sync");
  TCase *tc;

  tc = tcase_create("clock");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, clock_basics);
  suite_add_tcase(s, tc);

  tc = tcase_create("sync");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, mutex_basics);
  tcase_add_test(tc, cond_wait_until_times_out);
  tcase_add_test(tc, cond_wait_until_wakes_on_signal);
  tcase_add_test(tc, cond_wait_forever_wakes_on_broadcast);
  tcase_add_test(tc, thread_name);
  tcase_add_test(tc, thread_named_at_creation);
  suite_add_tcase(s, tc);

  tc = tcase_create("spin");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, spin_sees_counter_move);
  tcase_add_test(tc, spin_budget_and_seen);
  tcase_add_test(tc, spin_budget_deadline_backoff);
  suite_add_tcase(s, tc);

  tc = tcase_create("wakeup");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, wakeup_coalesces);
  tcase_add_test(tc, wakeup_from_other_thread);
  tcase_add_test(tc, wakeup_no_lost_wakeup);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(sync_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
