#include "tri_int.h"

/*
 * Monotonic time and saturating deadline arithmetic.
 *
 * Threads: any.  Pure functions of the monotonic clock; no state.
 *
 * Deadlines are absolute tri__now_ns() values; TRI__NO_DEADLINE (-1)
 * means "none".  Additions saturate at INT64_MAX instead of wrapping, so
 * a huge timeout is "practically never" rather than "already passed"
 * (curl's TIME-KEEPING rules).
 */

#include <limits.h>
#include <stdlib.h>
#include <time.h>

#include "core.h" /* tri__ms_to_ns */

#define NS_PER_SEC INT64_C(1000000000)

int64_t tri__now_ns(void) {
  struct timespec ts;

  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    /* Cannot happen with a valid clock id; treat as a bug like sync.c. */
    fprintf(stderr, "libtriplestream: clock_gettime(CLOCK_MONOTONIC) "
                    "failed: %s\n", strerror(errno));
    abort();
  }
  return (int64_t)ts.tv_sec * NS_PER_SEC + (int64_t)ts.tv_nsec;
}

int64_t tri__deadline_add(int64_t base_ns, int64_t ns) {
  return ns > INT64_MAX - base_ns ? INT64_MAX : base_ns + ns;
}

int64_t tri__deadline_after_ms(int64_t ms) {
  if (ms < 0)
    return TRI__NO_DEADLINE;
  return tri__deadline_add(tri__now_ns(), tri__ms_to_ns(ms));
}

int64_t tri__deadline_min(int64_t a, int64_t b) {
  if (a < 0)
    return b < 0 ? TRI__NO_DEADLINE : b;
  if (b < 0)
    return a;
  return a < b ? a : b;
}

int tri__deadline_poll_ms(int64_t deadline_ns) {
  int64_t now, diff, ms;

  if (deadline_ns < 0)
    return -1;
  now = tri__now_ns();
  if (deadline_ns <= now)
    return 0;
  diff = deadline_ns - now;
  /* Round up so poll() never returns before the deadline. */
  ms = diff / TRI__NS_PER_MS + (diff % TRI__NS_PER_MS != 0);
  if (ms > INT_MAX)
    return INT_MAX;
  return (int)ms;
}
