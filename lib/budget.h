/*
 * Process-wide resource counters: every byte or object that a stream or
 * connection budget counts is added here when it is taken and subtracted on
 * the one path that gives it back.  With no stream and no connection open
 * all counters are zero; tests assert that after each scenario
 * (tri__budgets_get(), reachable because tests link the convenience
 * library).
 *
 * Threads: any.  Counters are relaxed atomics; a snapshot taken while
 * streams are active is approximate, one taken when everything is closed is
 * exact.
 */
#ifndef TRI_BUDGET_H
#define TRI_BUDGET_H

#include "tri_int.h"

typedef struct {
  int64_t streams;       /* live struct tri_stream objects */
  int64_t conns;         /* live connections (client and server) */
  int64_t loops;         /* live I/O loops */
  int64_t rq_bytes;      /* complete messages queued, not yet read */
  int64_t conn_rq_bytes; /* the same bytes as counted by their connection */
  int64_t partial_bytes; /* bytes held by deframers (partial messages) */
  int64_t ring_bytes;    /* send-ring allocations */
  int64_t conn_owed;     /* connection window withheld from peers */
  int64_t spare_bytes;   /* received blocks streams keep for reuse
                            (at most TRI__SPARE_MAX) */
  int64_t quiet_conns;   /* connections (client and server) that gave
                            their buffers back while quiet (conn.c
                            tri__conn_trim_if_quiet) */
  int64_t resolvers;     /* live c-ares channels (resolve.c: only while a
                            name is being resolved) */
} tri__budgets;

enum tri__budget_id {
  TRI__B_STREAMS,
  TRI__B_CONNS,
  TRI__B_LOOPS,
  TRI__B_RQ,
  TRI__B_CONN_RQ,
  TRI__B_PARTIAL,
  TRI__B_RING,
  TRI__B_OWED,
  TRI__B_SPARE,
  TRI__B_QUIET,
  TRI__B_RESOLVERS,
  TRI__B_COUNT
};

extern int64_t tri__budget_ctr[TRI__B_COUNT];

static inline void tri__budget_add(enum tri__budget_id id, int64_t n) {
  __atomic_add_fetch(&tri__budget_ctr[id], n, __ATOMIC_RELAXED);
}

/* Test accessor: a snapshot of every counter. */
void tri__budgets_get(tri__budgets *out);

#endif /* TRI_BUDGET_H */
