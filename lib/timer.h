/*
 * Deadlines: a hashed timer wheel run by one process-wide thread
 * ("tri-timer"), started by the first channel or server and stopped when
 * the last one is freed.  Entries are intrusive (no allocation to arm or
 * cancel).  Expired entries are collected under the wheel lock, then their
 * callbacks run on the timer thread with no library lock held (lock order:
 * the wheel lock is a leaf; callbacks may take stream locks).
 */
#ifndef TRI_TIMER_H
#define TRI_TIMER_H

#include "tri_int.h"

typedef struct tri__timer tri__timer;
typedef void (*tri__timer_cb)(tri__timer *t);

struct tri__timer {
  tri__list link;       /* wheel slot list or the expired batch */
  int64_t expiry_ns;    /* absolute, tri__now_ns() scale */
  tri__timer_cb cb;
  int state;            /* internal: idle / armed / firing */
};

/* Reference the process-wide timer thread, starting it if needed.
 * Returns 0 or -errno. */
int tri__timers_acquire(void);
/* Drop the reference; the last one stops and joins the thread.  No timer
 * may be armed by the caller at that point. */
void tri__timers_release(void);

void tri__timer_init(tri__timer *t, tri__timer_cb cb);
/* Arm (or re-arm) |t| to fire at |expiry_ns|; a time in the past fires on
 * the timer thread as soon as possible.  Never calls |cb| itself. */
void tri__timer_start(tri__timer *t, int64_t expiry_ns);
/* Disarm.  Returns 1 when |t| was armed and now will not fire; 0 when it
 * was not armed, or its callback has been collected to run (or is running):
 * then the callback owns whatever reference was given for it. */
int tri__timer_stop(tri__timer *t);
/* Wait until the timer callback running right now, if any, has returned
 * (not from a timer callback).  Objects whose timers may still be firing
 * call this after stopping them and before freeing what the callbacks
 * touch. */
void tri__timers_quiesce(void);

/* ---- the wheel itself, exposed for unit tests (check_timer.c) ---- */
#define TRI__WHEEL_SLOTS 1024       /* power of two */
#define TRI__WHEEL_TICK_NS INT64_C(1000000) /* 1 ms */
typedef struct {
  tri__list slot[TRI__WHEEL_SLOTS];
  uint64_t bitmap[TRI__WHEEL_SLOTS / 64]; /* non-empty slots */
  int64_t cur_tick;   /* every tick < cur_tick has been processed */
  size_t count;
} tri__wheel;

void tri__wheel_init(tri__wheel *w, int64_t now_ns);
void tri__wheel_add(tri__wheel *w, tri__timer *t);     /* t->expiry_ns set */
void tri__wheel_remove(tri__wheel *w, tri__timer *t);  /* t must be in w */
/* Move every entry with expiry_ns <= now_ns to |out| and advance. */
void tri__wheel_collect(tri__wheel *w, int64_t now_ns, tri__list *out);
/* Earliest time the wheel needs attention (a lower bound of the next
 * expiry, >= now), or TRI__NO_DEADLINE when empty. */
int64_t tri__wheel_next(const tri__wheel *w, int64_t now_ns);

#endif /* TRI_TIMER_H */
