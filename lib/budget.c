#include "tri_int.h"

#include "budget.h"

int64_t tri__budget_ctr[TRI__B_COUNT];

void tri__budgets_get(tri__budgets *out) {
  int64_t *c = tri__budget_ctr;
  out->streams = __atomic_load_n(&c[TRI__B_STREAMS], __ATOMIC_ACQUIRE);
  out->conns = __atomic_load_n(&c[TRI__B_CONNS], __ATOMIC_ACQUIRE);
  out->loops = __atomic_load_n(&c[TRI__B_LOOPS], __ATOMIC_ACQUIRE);
  out->rq_bytes = __atomic_load_n(&c[TRI__B_RQ], __ATOMIC_ACQUIRE);
  out->conn_rq_bytes = __atomic_load_n(&c[TRI__B_CONN_RQ], __ATOMIC_ACQUIRE);
  out->partial_bytes = __atomic_load_n(&c[TRI__B_PARTIAL], __ATOMIC_ACQUIRE);
  out->ring_bytes = __atomic_load_n(&c[TRI__B_RING], __ATOMIC_ACQUIRE);
  out->conn_owed = __atomic_load_n(&c[TRI__B_OWED], __ATOMIC_ACQUIRE);
  out->spare_bytes = __atomic_load_n(&c[TRI__B_SPARE], __ATOMIC_ACQUIRE);
  out->quiet_conns = __atomic_load_n(&c[TRI__B_QUIET], __ATOMIC_ACQUIRE);
  out->resolvers = __atomic_load_n(&c[TRI__B_RESOLVERS], __ATOMIC_ACQUIRE);
}
