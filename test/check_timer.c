/*
 * Unit tests for lib/timer.c: the hashed wheel (pure, driven with a fake
 * clock) and the process-wide "tri-timer" thread (real clock, generous
 * upper bounds only; never tight timing asserts).
 */
#include "tri_int.h"

#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "timer.h"

#define MS TRI__NS_PER_MS

/* ------------------------------------------------------------ helpers */

static size_t list_len(const tri__list *h) {
  size_t n = 0;
  const tri__list *p;
  for (p = h->next; p != h; p = p->next)
    n++;
  return n;
}

static int bitmap_empty(const tri__wheel *w) {
  size_t i;
  for (i = 0; i < TRI__ARRAY_LEN(w->bitmap); i++)
    if (w->bitmap[i] != 0)
      return 0;
  return 1;
}

static void noop_cb(tri__timer *t) { (void)t; }

static tri__timer *pop(tri__list *l) {
  tri__timer *t;
  if (tri__list_empty(l))
    return NULL;
  t = tri__container_of(l->next, tri__timer, link);
  tri__list_remove(&t->link);
  return t;
}

static void wadd(tri__wheel *w, tri__timer *t, int64_t expiry) {
  tri__timer_init(t, noop_cb);
  t->expiry_ns = expiry;
  tri__wheel_add(w, t);
}

/* xorshift: deterministic "random" numbers for reproducible tests */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* ------------------------------------------------------------- wheel */

static tri__wheel wh; /* 16 KiB: keep it off the stack */

START_TEST(wheel_ordering_and_far_entries) {
  tri__timer a, b, c, d, e, far1, far2;
  tri__list out;

  tri__wheel_init(&wh, 0);
  ck_assert_int_eq(tri__wheel_next(&wh, 0), TRI__NO_DEADLINE);
  wadd(&wh, &a, 5 * MS);
  wadd(&wh, &b, 1 * MS);
  wadd(&wh, &c, 3 * MS);
  wadd(&wh, &d, 1 * MS + MS / 2);
  wadd(&wh, &e, 3 * MS - 1);              /* same tick as c, earlier */
  wadd(&wh, &far1, 1029 * MS);            /* same slot as a, next lap */
  wadd(&wh, &far2, 5000 * MS + 123);      /* several laps away */
  ck_assert_uint_eq(wh.count, 7);

  ck_assert_int_eq(tri__wheel_next(&wh, 0), 1 * MS);
  tri__list_init(&out);
  tri__wheel_collect(&wh, 1 * MS - 1, &out);
  ck_assert(tri__list_empty(&out));
  tri__wheel_collect(&wh, 1 * MS, &out);
  ck_assert_ptr_eq(pop(&out), &b);
  ck_assert(tri__list_empty(&out));

  ck_assert_int_eq(tri__wheel_next(&wh, 1 * MS), 1 * MS + MS / 2);
  /* one collect covering several ticks returns them sorted by expiry */
  tri__wheel_collect(&wh, 3 * MS, &out);
  ck_assert_uint_eq(list_len(&out), 3);
  ck_assert_ptr_eq(pop(&out), &d);
  ck_assert_ptr_eq(pop(&out), &e);
  ck_assert_ptr_eq(pop(&out), &c);

  ck_assert_int_eq(tri__wheel_next(&wh, 3 * MS), 5 * MS);
  tri__wheel_collect(&wh, 5 * MS, &out);
  ck_assert_ptr_eq(pop(&out), &a); /* far1 shares the slot, stays */
  ck_assert(tri__list_empty(&out));
  ck_assert_uint_eq(wh.count, 2);

  /* next is a lower bound, never later than the earliest entry */
  {
    int64_t nx = tri__wheel_next(&wh, 5 * MS);
    ck_assert_int_ge(nx, 5 * MS);
    ck_assert_int_le(nx, 1029 * MS);
  }
  tri__wheel_collect(&wh, 1029 * MS - 1, &out);
  ck_assert(tri__list_empty(&out));
  tri__wheel_collect(&wh, 1029 * MS, &out);
  ck_assert_ptr_eq(pop(&out), &far1);
  ck_assert(tri__list_empty(&out));

  ck_assert_int_le(tri__wheel_next(&wh, 1029 * MS), 5000 * MS + 123);
  /* step through the laps in between: far2 must not fire early */
  {
    int64_t now;
    for (now = 1030 * MS; now < 5000 * MS; now += 7 * MS + 3) {
      tri__wheel_collect(&wh, now, &out);
      ck_assert(tri__list_empty(&out));
    }
  }
  tri__wheel_collect(&wh, 5000 * MS + 122, &out);
  ck_assert(tri__list_empty(&out));
  ck_assert_int_eq(tri__wheel_next(&wh, 5000 * MS + 122), 5000 * MS + 123);
  tri__wheel_collect(&wh, 5000 * MS + 123, &out);
  ck_assert_ptr_eq(pop(&out), &far2);
  ck_assert_uint_eq(wh.count, 0);
  ck_assert(bitmap_empty(&wh));
  ck_assert_int_eq(tri__wheel_next(&wh, 6000 * MS), TRI__NO_DEADLINE);
}
END_TEST

START_TEST(wheel_long_sleep_collects_far_entries) {
  /* A collect that jumps more than a full lap scans every slot. */
  tri__timer t[4];
  tri__list out;

  tri__wheel_init(&wh, 0);
  wadd(&wh, &t[0], 2500 * MS);
  wadd(&wh, &t[1], 10 * MS);
  wadd(&wh, &t[2], 1500 * MS);
  wadd(&wh, &t[3], 9000 * MS);
  tri__list_init(&out);
  tri__wheel_collect(&wh, 3000 * MS, &out);
  ck_assert_uint_eq(list_len(&out), 3);
  ck_assert_ptr_eq(pop(&out), &t[1]);
  ck_assert_ptr_eq(pop(&out), &t[2]);
  ck_assert_ptr_eq(pop(&out), &t[0]);
  ck_assert_uint_eq(wh.count, 1);
  ck_assert_int_le(tri__wheel_next(&wh, 3000 * MS), 9000 * MS);
  ck_assert_int_ge(tri__wheel_next(&wh, 3000 * MS), 3000 * MS);
  tri__wheel_collect(&wh, 9000 * MS, &out);
  ck_assert_ptr_eq(pop(&out), &t[3]);
  ck_assert(bitmap_empty(&wh));
}
END_TEST

START_TEST(wheel_remove) {
  tri__timer a, b, c;
  tri__list out;

  tri__wheel_init(&wh, 100 * MS);
  /* removing the only entry empties the bitmap */
  wadd(&wh, &a, 200 * MS);
  ck_assert(!bitmap_empty(&wh));
  tri__wheel_remove(&wh, &a);
  ck_assert(bitmap_empty(&wh));
  ck_assert_uint_eq(wh.count, 0);
  ck_assert(!tri__list_linked(&a.link));
  ck_assert_int_eq(tri__wheel_next(&wh, 100 * MS), TRI__NO_DEADLINE);

  /* two in one slot: removing one keeps the bit */
  wadd(&wh, &a, 200 * MS);
  wadd(&wh, &b, 200 * MS - 5);
  wadd(&wh, &c, 300 * MS);
  tri__wheel_remove(&wh, &a);
  ck_assert(!bitmap_empty(&wh));
  ck_assert_int_eq(tri__wheel_next(&wh, 100 * MS), 200 * MS - 5);
  tri__wheel_remove(&wh, &b);
  ck_assert_int_eq(tri__wheel_next(&wh, 100 * MS), 300 * MS);
  tri__list_init(&out);
  tri__wheel_collect(&wh, 299 * MS, &out);
  ck_assert(tri__list_empty(&out));
  tri__wheel_collect(&wh, 400 * MS, &out);
  ck_assert_ptr_eq(pop(&out), &c);
  ck_assert(bitmap_empty(&wh));
  /* a removed far entry, too */
  wadd(&wh, &a, 400 * MS + 3000 * MS);
  tri__wheel_remove(&wh, &a);
  ck_assert(bitmap_empty(&wh));
  ck_assert_uint_eq(wh.count, 0);
}
END_TEST

START_TEST(wheel_past_expiry) {
  tri__timer a, b;
  tri__list out;

  tri__wheel_init(&wh, 50 * MS);
  tri__list_init(&out);
  tri__wheel_collect(&wh, 60 * MS, &out);
  wadd(&wh, &a, 10 * MS);      /* long overdue */
  wadd(&wh, &b, -5);           /* negative */
  ck_assert_int_eq(tri__wheel_next(&wh, 60 * MS), 60 * MS);
  tri__wheel_collect(&wh, 60 * MS, &out);
  ck_assert_uint_eq(list_len(&out), 2);
  ck_assert_ptr_eq(pop(&out), &b);
  ck_assert_ptr_eq(pop(&out), &a);
  ck_assert(bitmap_empty(&wh));
}
END_TEST

#define NRAND 2000
static tri__timer rt[NRAND];

START_TEST(wheel_random_never_early) {
  tri__list out;
  int64_t now = 7 * MS + 11, prev = now;
  size_t i, fired = 0;
  static char done[NRAND];

  memset(done, 0, sizeof(done));
  tri__wheel_init(&wh, now);
  for (i = 0; i < NRAND; i++)
    wadd(&wh, &rt[i], now + (int64_t)(rnd() % (4000 * (uint64_t)MS)));
  /* remove a tenth at random */
  for (i = 0; i < NRAND; i += 10) {
    tri__wheel_remove(&wh, &rt[i]);
    done[i] = 2;
  }
  tri__list_init(&out);
  while (wh.count > 0) {
    int64_t nx = tri__wheel_next(&wh, now), min = INT64_MAX, last = -1;
    tri__timer *t;
    for (i = 0; i < NRAND; i++)
      if (!done[i] && rt[i].expiry_ns < min)
        min = rt[i].expiry_ns;
    ck_assert_int_ge(nx, now);
    ck_assert_int_le(nx, min);
    prev = now;
    /* small steps mostly, sometimes a jump of more than one lap */
    if (rnd() % 50 == 0)
      now += (int64_t)(rnd() % (2000 * (uint64_t)MS));
    else
      now += (int64_t)(rnd() % (uint64_t)(3 * MS));
    if (rnd() % 4 == 0 && nx > prev)
      now = nx; /* land exactly on the next expiry */
    tri__wheel_collect(&wh, now, &out);
    while ((t = pop(&out)) != NULL) {
      size_t k = (size_t)(t - rt);
      ck_assert_int_le(t->expiry_ns, now);   /* not early */
      ck_assert_int_gt(t->expiry_ns, prev);  /* not late */
      ck_assert_int_ge(t->expiry_ns, last);  /* batch sorted */
      last = t->expiry_ns;
      ck_assert_int_eq(done[k], 0);
      done[k] = 1;
      fired++;
    }
    for (i = 0; i < NRAND; i++)
      if (!done[i])
        ck_assert_int_gt(rt[i].expiry_ns, now);
  }
  ck_assert_uint_eq(fired, NRAND - NRAND / 10);
  ck_assert(bitmap_empty(&wh));
}
END_TEST

/* ------------------------------------------------------ timer thread */

/* Test-side synchronisation: plain pthreads, not the code under test. */
static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcv = PTHREAD_COND_INITIALIZER;

typedef struct {
  tri__timer t;
  int64_t expiry;
  int64_t fired_at;
  int count;
  int rearm_left;
} ttimer;

static int fired_total;

static void count_cb(tri__timer *t) {
  ttimer *x = tri__container_of(t, ttimer, t);
  int64_t now = tri__now_ns();
  pthread_mutex_lock(&tmu);
  if (x->count++ == 0)
    x->fired_at = now;
  fired_total++;
  pthread_cond_broadcast(&tcv);
  pthread_mutex_unlock(&tmu);
}

static int wait_fired(int n, int timeout_ms) {
  struct timespec ts;
  int ok;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&tmu);
  while (fired_total < n)
    if (pthread_cond_timedwait(&tcv, &tmu, &ts) == ETIMEDOUT)
      break;
  ok = fired_total >= n;
  pthread_mutex_unlock(&tmu);
  return ok;
}

static int get_fired_total(void) {
  int n;
  pthread_mutex_lock(&tmu);
  n = fired_total;
  pthread_mutex_unlock(&tmu);
  return n;
}

static void arm(ttimer *x, tri__timer_cb cb, int64_t expiry) {
  memset(x, 0, sizeof(*x));
  tri__timer_init(&x->t, cb);
  x->expiry = expiry;
  tri__timer_start(&x->t, expiry);
}

#define NTHREAD_TIMERS 200
static ttimer tt[NTHREAD_TIMERS];

START_TEST(thread_many_fire_once) {
  int i;
  int64_t start;

  fired_total = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  start = tri__now_ns();
  for (i = 0; i < NTHREAD_TIMERS; i++)
    arm(&tt[i], count_cb, start + (int64_t)(rnd() % (300 * (uint64_t)MS)));
  ck_assert(wait_fired(NTHREAD_TIMERS, 10000));
  usleep(50 * 1000); /* room for a (wrong) second firing */
  pthread_mutex_lock(&tmu);
  ck_assert_int_eq(fired_total, NTHREAD_TIMERS);
  for (i = 0; i < NTHREAD_TIMERS; i++) {
    ck_assert_int_eq(tt[i].count, 1);
    ck_assert_int_ge(tt[i].fired_at, tt[i].expiry);
    ck_assert_int_lt(tt[i].fired_at - tt[i].expiry, 2000 * MS);
  }
  pthread_mutex_unlock(&tmu);
  for (i = 0; i < NTHREAD_TIMERS; i++)
    ck_assert_int_eq(tri__timer_stop(&tt[i].t), 0);
  tri__timers_release();
}
END_TEST

START_TEST(thread_stop_before_expiry) {
  static ttimer a;

  fired_total = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  arm(&a, count_cb, tri__now_ns() + 150 * MS);
  ck_assert_int_eq(tri__timer_stop(&a.t), 1);
  ck_assert_int_eq(tri__timer_stop(&a.t), 0); /* idempotent */
  usleep(300 * 1000);
  ck_assert_int_eq(get_fired_total(), 0);
  /* re-arm after stop works, and moving a timer earlier wakes the thread */
  tri__timer_start(&a.t, tri__now_ns() + 60000 * MS);
  tri__timer_start(&a.t, tri__now_ns() + 5 * MS);
  ck_assert(wait_fired(1, 5000));
  ck_assert_int_eq(tri__timer_stop(&a.t), 0);
  tri__timers_release();
}
END_TEST

START_TEST(thread_stop_after_fire) {
  static ttimer a, b;

  fired_total = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  arm(&a, count_cb, tri__now_ns());
  arm(&b, count_cb, tri__now_ns() - 50 * MS); /* past: fires asap */
  ck_assert(wait_fired(2, 5000));
  ck_assert_int_eq(tri__timer_stop(&a.t), 0);
  ck_assert_int_eq(tri__timer_stop(&b.t), 0);
  pthread_mutex_lock(&tmu);
  ck_assert_int_eq(a.count, 1);
  ck_assert_int_eq(b.count, 1);
  pthread_mutex_unlock(&tmu);
  tri__timers_release();
}
END_TEST

static void rearm_cb(tri__timer *t) {
  ttimer *x = tri__container_of(t, ttimer, t);
  int again;
  pthread_mutex_lock(&tmu);
  x->count++;
  again = x->rearm_left-- > 0;
  pthread_mutex_unlock(&tmu);
  if (again) {
    x->expiry = tri__now_ns() + 2 * MS;
    tri__timer_start(t, x->expiry);
  }
  pthread_mutex_lock(&tmu);
  fired_total++;
  pthread_cond_broadcast(&tcv);
  pthread_mutex_unlock(&tmu);
}

START_TEST(thread_rearm_from_callback) {
  static ttimer a;

  fired_total = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  tri__timer_init(&a.t, rearm_cb);
  a.rearm_left = 4;
  a.count = 0;
  tri__timer_start(&a.t, tri__now_ns() + 1 * MS);
  ck_assert(wait_fired(5, 5000));
  usleep(30 * 1000);
  pthread_mutex_lock(&tmu);
  ck_assert_int_eq(a.count, 5);
  pthread_mutex_unlock(&tmu);
  ck_assert_int_eq(tri__timer_stop(&a.t), 0);
  tri__timers_release();
}
END_TEST

START_TEST(thread_acquire_release_restart) {
  static ttimer a, b, c;
  int round;

  fired_total = 0;
  for (round = 0; round < 2; round++) {
    ck_assert_int_eq(tri__timers_acquire(), 0);
    ck_assert_int_eq(tri__timers_acquire(), 0);
    tri__timers_release(); /* still one reference: thread keeps running */
    arm(&a, count_cb, tri__now_ns() + 2 * MS);
    ck_assert(wait_fired(2 * round + 1, 5000));
    tri__timers_release(); /* last reference: stops and joins */
    ck_assert_int_eq(tri__timers_acquire(), 0);
    arm(&b, count_cb, tri__now_ns() + 1 * MS);
    ck_assert(wait_fired(2 * round + 2, 5000));
    tri__timers_release();
  }
  /* a timer armed while no thread runs fires once one is started */
  arm(&c, count_cb, tri__now_ns());
  usleep(20 * 1000);
  ck_assert_int_eq(get_fired_total(), 4);
  ck_assert_int_eq(tri__timers_acquire(), 0);
  ck_assert(wait_fired(5, 5000));
  tri__timers_release();
}
END_TEST

static void release_cb(tri__timer *t) {
  /* drops the last reference from the timer thread itself */
  tri__timers_release();
  count_cb(t);
}

START_TEST(thread_release_from_callback) {
  static ttimer a, b;

  fired_total = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  arm(&a, release_cb, tri__now_ns() + 1 * MS);
  ck_assert(wait_fired(1, 5000));
  ck_assert_int_eq(tri__timers_acquire(), 0);
  arm(&b, count_cb, tri__now_ns() + 1 * MS);
  ck_assert(wait_fired(2, 5000));
  tri__timers_release();
  usleep(20 * 1000); /* let the detached old thread finish exiting */
}
END_TEST

/* A timer collected in the same batch as a blocked callback is FIRING:
 * stop() takes it out of the batch and returns 1 (its callback will not
 * run: the caller owns whatever reference the timer held), and start()
 * puts it back in the wheel so it runs once, at the new time. */
static int in_a, go_a;
static void blocking_cb(tri__timer *t) {
  pthread_mutex_lock(&tmu);
  in_a = 1;
  pthread_cond_broadcast(&tcv);
  while (!go_a)
    pthread_cond_wait(&tcv, &tmu);
  pthread_mutex_unlock(&tmu);
  count_cb(t);
}

START_TEST(thread_rearm_while_collected) {
  static ttimer a, b;
  int64_t now = tri__now_ns(), new_expiry;

  fired_total = 0;
  in_a = go_a = 0;
  ck_assert_int_eq(tri__timers_acquire(), 0);
  tri__timer_init(&a.t, blocking_cb);
  tri__timer_init(&b.t, count_cb);
  /* a armed first and due first: if this thread is descheduled between
   * the two starts (ThreadSanitizer runs), b may miss a's batch, but it
   * can never run before a; either way it has not started when a's
   * callback blocks. */
  a.expiry = now + 20 * MS;
  b.expiry = now + 20 * MS + 1; /* same batch, after a */
  tri__timer_start(&a.t, a.expiry);
  tri__timer_start(&b.t, b.expiry);
  pthread_mutex_lock(&tmu);
  while (!in_a)
    pthread_cond_wait(&tcv, &tmu);
  pthread_mutex_unlock(&tmu);
  /* a's callback is running; b is collected (or still armed) behind it */
  ck_assert_int_eq(tri__timer_stop(&a.t), 0);
  ck_assert_int_eq(tri__timer_stop(&b.t), 1);
  new_expiry = tri__now_ns() + 20 * MS;
  b.expiry = new_expiry;
  tri__timer_start(&b.t, new_expiry);
  pthread_mutex_lock(&tmu);
  go_a = 1;
  pthread_cond_broadcast(&tcv);
  pthread_mutex_unlock(&tmu);
  ck_assert(wait_fired(2, 5000));
  usleep(40 * 1000);
  pthread_mutex_lock(&tmu);
  ck_assert_int_eq(a.count, 1);
  ck_assert_int_eq(b.count, 1);
  ck_assert_int_ge(b.fired_at, new_expiry);
  pthread_mutex_unlock(&tmu);
  tri__timers_release();
}
END_TEST

static Suite *timer_suite(void) {
  Suite *s = suite_create("timer");
  TCase *tc;

  tc = tcase_create("wheel");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, wheel_ordering_and_far_entries);
  tcase_add_test(tc, wheel_long_sleep_collects_far_entries);
  tcase_add_test(tc, wheel_remove);
  tcase_add_test(tc, wheel_past_expiry);
  tcase_add_test(tc, wheel_random_never_early);
  suite_add_tcase(s, tc);

  tc = tcase_create("thread");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, thread_many_fire_once);
  tcase_add_test(tc, thread_stop_before_expiry);
  tcase_add_test(tc, thread_stop_after_fire);
  tcase_add_test(tc, thread_rearm_from_callback);
  tcase_add_test(tc, thread_rearm_while_collected);
  tcase_add_test(tc, thread_acquire_release_restart);
  tcase_add_test(tc, thread_release_from_callback);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(timer_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
