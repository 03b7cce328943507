#include "tri_int.h"

/*
 * Hashed timer wheel and the process-wide timer thread.
 *
 * Threads: the wheel (tri__wheel_*) is a plain data structure used under
 * its owner's lock (the timer thread's |g_mu|, or a unit test).
 * tri__timer_start/stop may be called from any thread; callbacks run on
 * the "tri-timer" thread; tri__timers_acquire/release from any thread
 * (channel/server creation and destruction), including a timer callback.
 *
 * Lock order:  g_life_mu  ->  g_mu (the wheel lock).
 *   g_mu is a leaf: nothing else is ever taken while holding it, and
 *   callbacks run with NO lock held, so they may take stream locks, arm or
 *   stop timers (even their own), or drop the last timer reference.
 *   g_life_mu only guards the refcount and the thread handle; the timer
 *   thread never takes it.
 *
 * Timer states (all transitions under g_mu):
 *   IDLE   -> ARMED   tri__timer_start
 *   ARMED  -> IDLE    tri__timer_stop (returns 1)
 *   ARMED  -> FIRING  the thread collects it into its batch
 *   FIRING -> IDLE    the thread takes it off the batch, just before the
 *                     callback (see below)
 *   FIRING -> ARMED   tri__timer_start while still waiting in the batch:
 *                     taken out of the batch, fires once at the new time
 *   FIRING -> IDLE    tri__timer_stop before its callback started
 *                     (returns 1: the callback will not run)
 * tri__timer_stop on an IDLE timer returns 0 and changes nothing.
 *
 * The state goes back to IDLE before the callback runs, not after it: the
 * callback may drop the last reference to the object that embeds the
 * timer (a stream freed by its deadline), so the thread must never touch
 * the timer once the callback has started.  For stop() this is the same
 * contract: 0 means "not armed or its callback is running/has run".
 *
 * The wheel: 1 ms ticks, TRI__WHEEL_SLOTS slots.  An entry's tick is
 * ceil(expiry_ns / tick) (never below cur_tick), so a tick is processed
 * only once all its entries are due: nothing fires early.  Entries more
 * than a revolution away share the slot (tick % SLOTS) and are skipped
 * until their expiry_ns has passed.  A bitmap of non-empty slots makes
 * finding the next slot a few word scans.  tri__wheel_next returns the
 * exact earliest expiry when it is within reach (it walks the earliest
 * non-empty slots), so the thread sleeps until that instant rather than to
 * a tick boundary: wake-ups are typically well under 1 ms late.
 */

#include <stdlib.h>
#include <sys/prctl.h>

#include "core.h"
#include "timer.h"

#define SLOT_MASK ((int64_t)TRI__WHEEL_SLOTS - 1)
#define BITMAP_WORDS (TRI__WHEEL_SLOTS / 64)
/* tri__wheel_next walks at most this many slots before settling for a
 * lower bound (only reached when the near slots hold far-future entries). */
#define NEXT_MAX_SLOTS 64

enum { TIMER_IDLE = 0, TIMER_ARMED, TIMER_FIRING };

/* The timer thread wakes this long before a deadline more than this far
 * away, then waits again for the rest.  A timed wait of milliseconds or
 * more ends late by the time the idle CPU takes to come back (measured on
 * a 2-vCPU VM: a 20 ms wait ended 95 us late at the median, 484 us at
 * p99); a wait of under a millisecond started from a running CPU ends
 * 40 us late (p99 about 110 us).  The cost is one more wake-up per
 * sleep. */
#define TIMER_PREWAKE_NS INT64_C(500000)

/* ---------------------------------------------------------------- wheel */

static int64_t floor_div_tick(int64_t ns) {
  int64_t q = ns / TRI__WHEEL_TICK_NS;
  if (ns % TRI__WHEEL_TICK_NS != 0 && ns < 0)
    q--;
  return q;
}

static int64_t ceil_div_tick(int64_t ns) {
  int64_t q = ns / TRI__WHEEL_TICK_NS;
  if (ns % TRI__WHEEL_TICK_NS != 0 && ns > 0)
    q++;
  return q;
}

static size_t slot_of(int64_t tick) { return (size_t)(tick & SLOT_MASK); }

static void bit_set(tri__wheel *w, size_t s) {
  w->bitmap[s / 64] |= UINT64_C(1) << (s % 64);
}

static void bit_clear(tri__wheel *w, size_t s) {
  w->bitmap[s / 64] &= ~(UINT64_C(1) << (s % 64));
}

static int bit_test(const tri__wheel *w, size_t s) {
  return (int)((w->bitmap[s / 64] >> (s % 64)) & 1);
}

/* First non-empty slot in [from, TRI__WHEEL_SLOTS), or -1. */
static int64_t bit_next(const tri__wheel *w, size_t from) {
  size_t i = from / 64;
  uint64_t word;

  if (from >= TRI__WHEEL_SLOTS)
    return -1;
  word = w->bitmap[i] & (~UINT64_C(0) << (from % 64));
  for (;;) {
    if (word != 0)
      return (int64_t)(i * 64 + (size_t)__builtin_ctzll(word));
    if (++i == BITMAP_WORDS)
      return -1;
    word = w->bitmap[i];
  }
}

/* Distance in slots from |start| to the next non-empty slot, circularly,
 * or -1 when the wheel is empty. */
static int64_t bit_next_circular(const tri__wheel *w, size_t start) {
  int64_t s = bit_next(w, start);

  if (s >= 0)
    return s - (int64_t)start;
  s = bit_next(w, 0);
  if (s < 0 || (size_t)s >= start)
    return -1;
  return s + TRI__WHEEL_SLOTS - (int64_t)start;
}

void tri__wheel_init(tri__wheel *w, int64_t now_ns) {
  size_t i;

  for (i = 0; i < TRI__WHEEL_SLOTS; i++)
    tri__list_init(&w->slot[i]);
  memset(w->bitmap, 0, sizeof(w->bitmap));
  w->cur_tick = floor_div_tick(now_ns);
  w->count = 0;
}

void tri__wheel_add(tri__wheel *w, tri__timer *t) {
  int64_t tick = ceil_div_tick(t->expiry_ns);
  size_t s;

  if (tick < w->cur_tick)
    tick = w->cur_tick; /* already due: the next collect takes it */
  s = slot_of(tick);
  tri__list_insert_tail(&w->slot[s], &t->link);
  bit_set(w, s);
  w->count++;
}

void tri__wheel_remove(tri__wheel *w, tri__timer *t) {
  tri__list *prev = t->link.prev;
  tri__list *next = t->link.next;

  tri__list_remove(&t->link);
  w->count--;
  /* prev == next only when the one node left is the slot head, i.e. the
   * slot became empty; the head's index gives the bit to clear. */
  if (prev == next) {
    ptrdiff_t s = prev - w->slot;
    if (s >= 0 && s < TRI__WHEEL_SLOTS)
      bit_clear(w, (size_t)s);
  }
}

/* Insert |t| into |out| keeping it sorted by expiry (stable).  Batches are
 * mostly collected in expiry order, so the walk from the tail is short. */
static void out_insert_sorted(tri__list *out, tri__timer *t) {
  tri__list *pos = out->prev;

  while (pos != out &&
         tri__container_of(pos, tri__timer, link)->expiry_ns > t->expiry_ns)
    pos = pos->prev;
  /* insert after pos */
  t->link.prev = pos;
  t->link.next = pos->next;
  pos->next->prev = &t->link;
  pos->next = &t->link;
}

static void collect_slot(tri__wheel *w, size_t s, int64_t now_ns,
                         tri__list *out) {
  tri__list *head = &w->slot[s];
  tri__list *n, *nx;

  if (!bit_test(w, s))
    return;
  for (n = head->next; n != head; n = nx) {
    tri__timer *t = tri__container_of(n, tri__timer, link);
    nx = n->next;
    if (t->expiry_ns <= now_ns) {
      tri__list_remove(n);
      w->count--;
      out_insert_sorted(out, t);
    }
  }
  if (tri__list_empty(head))
    bit_clear(w, s);
}

void tri__wheel_collect(tri__wheel *w, int64_t now_ns, tri__list *out) {
  int64_t now_tick = floor_div_tick(now_ns);
  int64_t first = w->cur_tick;
  /* Ticks <= now_tick are wholly due; tick now_tick + 1 may hold entries
   * due at exactly now_ns, so it is scanned too but not marked done. */
  int64_t last = now_tick + 1;
  int64_t tick;

  if (w->count > 0) {
    if (last < first)
      last = first;
    if (last - first + 1 >= TRI__WHEEL_SLOTS) {
      size_t s;
      for (s = 0; s < TRI__WHEEL_SLOTS; s++)
        collect_slot(w, s, now_ns, out);
    } else {
      for (tick = first; tick <= last; tick++)
        collect_slot(w, slot_of(tick), now_ns, out);
    }
  }
  if (now_tick + 1 > w->cur_tick)
    w->cur_tick = now_tick + 1;
}

int64_t tri__wheel_next(const tri__wheel *w, int64_t now_ns) {
  int64_t best = INT64_MAX;
  int64_t d = 0;
  int visited = 0;

  if (w->count == 0)
    return TRI__NO_DEADLINE;
  while (d < TRI__WHEEL_SLOTS) {
    int64_t rel = bit_next_circular(w, slot_of(w->cur_tick + d));
    int64_t lower;
    const tri__list *head, *n;

    if (rel < 0)
      break;
    d += rel;
    if (d >= TRI__WHEEL_SLOTS)
      break;
    /* Any entry in the slot |d| ahead has tick >= cur_tick + d (only the
     * current slot may hold clamped, overdue entries), so its expiry is
     * above this bound. */
    lower = (w->cur_tick + d - 1) * TRI__WHEEL_TICK_NS + 1;
    if (d > 0 && lower >= best)
      break;
    if (d > 0 && ++visited > NEXT_MAX_SLOTS) {
      best = TRI__MIN(best, lower);
      break;
    }
    head = &w->slot[slot_of(w->cur_tick + d)];
    for (n = head->next; n != head; n = n->next) {
      const tri__timer *t = tri__container_of(n, const tri__timer, link);
      if (t->expiry_ns < best)
        best = t->expiry_ns;
    }
    d++;
  }
  if (best == INT64_MAX)
    return TRI__NO_DEADLINE; /* unreachable while count > 0 */
  return best < now_ns ? now_ns : best;
}

/* --------------------------------------------------------- timer thread */

static tri__mutex g_life_mu = {PTHREAD_MUTEX_INITIALIZER};
static int g_refs;          /* under g_life_mu */
static pthread_t g_thread;  /* under g_life_mu, valid while g_refs > 0 */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static tri__mutex g_mu;     /* the wheel lock: a leaf */
static tri__cond g_cv;      /* wakes the timer thread */
static tri__wheel g_wheel;  /* under g_mu */
/* Generation of the thread that should be running; a thread exits when
 * the value differs from the one it started with.  Under g_mu. */
static uint64_t g_gen;
/* What the thread sleeps until: INT64_MAX = no deadline, INT64_MIN = awake
 * (or a wake-up is already on its way), so start() need not signal. */
static int64_t g_sleep_until = INT64_MIN;

/* A callback is running on the timer thread (g_mu); g_cb_seq counts
 * callback starts, so tri__timers_quiesce() can wait for the one running
 * now without waiting for later ones. */
static int g_in_cb;
static _Thread_local int t_on_timer_thread;
static uint64_t g_cb_seq;
static tri__cond g_quiet_cv;

/* fork(): hold both locks across it so the child gets them in a known
 * state; the child has no timer thread, so it starts from scratch (the
 * parent's armed timers belong to objects the child cannot use). */
static void atfork_prepare(void) {
  tri__mutex_lock(&g_life_mu);
  tri__mutex_lock(&g_mu);
}

static void atfork_parent(void) {
  tri__mutex_unlock(&g_mu);
  tri__mutex_unlock(&g_life_mu);
}

static void atfork_child(void) {
  g_refs = 0;
  g_gen++;
  g_sleep_until = INT64_MIN;
  g_in_cb = 0;
  tri__cond_init(&g_cv);
  tri__cond_init(&g_quiet_cv);
  tri__wheel_init(&g_wheel, tri__now_ns());
  /* Re-initialised, not unlocked: the child's thread has a new id, so an
   * error-checking mutex would refuse an unlock by "another" thread. */
  tri__mutex_init(&g_mu);
  tri__mutex_init(&g_life_mu);
}

static void timers_init_once(void) {
  tri__mutex_init(&g_mu);
  tri__cond_init(&g_cv);
  tri__cond_init(&g_quiet_cv);
  tri__wheel_init(&g_wheel, tri__now_ns());
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void *timer_thread(void *arg) {
  uint64_t gen = (uint64_t)(uintptr_t)arg;
  tri__list batch;

  /* Deadlines are the one thing this thread sleeps for, and the kernel's
   * default timer slack (50 us) would be added to every one of them. */
  (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  t_on_timer_thread = 1;
  tri__list_init(&batch);
  tri__mutex_lock(&g_mu);
  while (g_gen == gen) {
    int64_t now = tri__now_ns();
    int64_t next;
    tri__list *n;

    tri__wheel_collect(&g_wheel, now, &batch);
    if (!tri__list_empty(&batch)) {
      for (n = batch.next; n != &batch; n = n->next)
        tri__container_of(n, tri__timer, link)->state = TIMER_FIRING;
      /* Pop one at a time under the lock: start() and stop() may take a
       * waiting entry back out of the batch.  Entries collected are due
       * and hold references to their owners, so they all run, even when
       * the thread was released meanwhile (putting them back would leave
       * them, and the references they hold, in a wheel nobody serves). */
      while (!tri__list_empty(&batch)) {
        tri__timer *t = tri__container_of(batch.next, tri__timer, link);
        tri__list_remove(&t->link);
        t->state = TIMER_IDLE; /* t is not touched after the callback */
        g_in_cb = 1;
        g_cb_seq++;
        tri__mutex_unlock(&g_mu);
        t->cb(t);
        tri__mutex_lock(&g_mu);
        g_in_cb = 0;
        tri__cond_broadcast(&g_quiet_cv);
      }
      continue; /* callbacks took time: collect again before sleeping */
    }
    next = tri__wheel_next(&g_wheel, now);
    g_sleep_until = next < 0 ? INT64_MAX : next;
    /* A long sleep first to TIMER_PREWAKE_NS before the deadline, then a
     * short one to it: see TIMER_PREWAKE_NS.  g_sleep_until stays the
     * deadline: an earlier timer still signals, a later one need not. */
    if (next >= 0 && next - now > TIMER_PREWAKE_NS)
      next -= TIMER_PREWAKE_NS;
    (void)tri__cond_wait_until(&g_cv, &g_mu, next);
    g_sleep_until = INT64_MIN;
  }
  tri__mutex_unlock(&g_mu);
  return NULL;
}

int tri__timers_acquire(void) {
  int rv = 0;

  pthread_once(&g_once, timers_init_once);
  tri__mutex_lock(&g_life_mu);
  if (g_refs == 0) {
    uint64_t gen;
    tri__mutex_lock(&g_mu);
    gen = ++g_gen;
    g_sleep_until = INT64_MIN;
    tri__mutex_unlock(&g_mu);
    rv = tri__thread_create(&g_thread, NULL, timer_thread,
                            (void *)(uintptr_t)gen, "tri-timer");
    if (rv != 0) {
      tri__mutex_lock(&g_mu);
      g_gen++; /* no thread runs |gen| */
      tri__mutex_unlock(&g_mu);
      tri__mutex_unlock(&g_life_mu);
      return -rv;
    }
  }
  g_refs++;
  tri__mutex_unlock(&g_life_mu);
  return 0;
}

void tri__timers_release(void) {
  pthread_t th;
  int self;

  tri__mutex_lock(&g_life_mu);
  if (g_refs <= 0) {
    tri__mutex_unlock(&g_life_mu);
    fprintf(stderr, "libtriplestream: tri__timers_release without "
                    "acquire\n");
    abort();
  }
  if (--g_refs > 0) {
    tri__mutex_unlock(&g_life_mu);
    return;
  }
  th = g_thread;
  tri__mutex_lock(&g_mu);
  g_gen++;
  tri__cond_signal(&g_cv);
  tri__mutex_unlock(&g_mu);
  self = pthread_equal(th, pthread_self());
  if (self) {
    /* Released from a timer callback (the last channel freed by a
     * deadline): the thread cannot join itself.  It exits once the
     * callback returns, since its generation is stale. */
    (void)pthread_detach(th);
  } else {
    int rv = pthread_join(th, NULL);
    if (rv != 0) {
      fprintf(stderr, "libtriplestream: pthread_join(tri-timer) failed: "
                      "%s\n", strerror(rv));
      abort();
    }
  }
  tri__mutex_unlock(&g_life_mu);
}

void tri__timer_init(tri__timer *t, tri__timer_cb cb) {
  tri__list_init(&t->link);
  t->expiry_ns = 0;
  t->cb = cb;
  t->state = TIMER_IDLE;
}

void tri__timer_start(tri__timer *t, int64_t expiry_ns) {
  pthread_once(&g_once, timers_init_once);
  tri__mutex_lock(&g_mu);
  if (t->state == TIMER_ARMED)
    tri__wheel_remove(&g_wheel, t);
  else if (t->state == TIMER_FIRING)
    tri__list_remove(&t->link); /* still waiting in the thread's batch */
  t->expiry_ns = expiry_ns;
  t->state = TIMER_ARMED;
  tri__wheel_add(&g_wheel, t);
  if (expiry_ns < g_sleep_until) {
    g_sleep_until = INT64_MIN; /* one wake-up is enough */
    tri__cond_signal(&g_cv);
  }
  tri__mutex_unlock(&g_mu);
}

int tri__timer_stop(tri__timer *t) {
  int rv = 0;

  pthread_once(&g_once, timers_init_once);
  tri__mutex_lock(&g_mu);
  if (t->state == TIMER_ARMED) {
    tri__wheel_remove(&g_wheel, t);
    t->state = TIMER_IDLE;
    rv = 1;
  } else if (t->state == TIMER_FIRING) {
    tri__list_remove(&t->link); /* collected, its callback not started */
    t->state = TIMER_IDLE;
    rv = 1;
  }
  tri__mutex_unlock(&g_mu);
  return rv;
}

void tri__timers_quiesce(void) {
  pthread_once(&g_once, timers_init_once);
  tri__mutex_lock(&g_mu);
  if (g_in_cb && !t_on_timer_thread) {
    uint64_t seq = g_cb_seq;
    for (int i = 0; i < 1000000 && g_in_cb && g_cb_seq == seq; i++)
      tri__cond_wait(&g_quiet_cv, &g_mu);
  }
  tri__mutex_unlock(&g_mu);
}
