/*
 * Server: method registry, listener, the bounded handler pool, graceful
 * shutdown.
 *
 * Threads: the application thread (new/register/bind/start/shutdown/free),
 * the server's I/O thread (tri__server_dispatch), worker threads
 * ("tri-worker") running handlers, the timer thread (queue timeouts).
 *
 * Lock order: pool.mu -> stream.mu (core.h).  No lock is held while a
 * handler runs.  The pool is bounded twice: at most max_workers threads
 * (created on demand, joined at shutdown) and at most max_queue streams
 * waiting for one, each for at most queue_timeout; past either bound a
 * stream is answered RESOURCE_EXHAUSTED at once (never unbounded queues or
 * threads).
 */
#include "tri_int.h"

#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include "core.h"
#include "edge.h"
#include "registry_zk.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>
#include <triplestream/protobuf.h>

struct tri_server_opts {
  int max_workers;
  uint32_t max_streams;
  int64_t queue_timeout_ms;
  size_t max_recv, send_buf, recv_queue, worker_stack;
  int64_t handshake_ms, idle_ms;
  size_t max_header_list, conn_recv_queue;
  int max_per_conn;        /* 0 = max_workers / 8, at least 16 */
  int max_resets_per_s;
  int64_t min_ping_ms;     /* A8 enforcement */
  int permit_ping_idle;
  int64_t max_age_ms, max_age_grace_ms; /* A9 */
  int64_t ka_time_ms, ka_timeout_ms;    /* server keepalive PINGs */
  int io_threads;          /* I/O loops (>= 1) */
  int spin_us;             /* handlers' recv spin budget */
  tri_tls_opts *tls;       /* owned; NULL = clear text */
  char cors[1024];         /* allowed CORS origins ("" = CORS off) */
  int has_registry;        /* tri_server_opts_set_registry() */
  tri__zk_uri registry;    /* (by value: the struct is copied) */
};

struct tri__method {
  char *path;
  char *group, *version;  /* NULL = none */
  tri_handler_fn fn;
  void *ud;
  void (*destroy)(void *ud);
  /* Message types (tri_server_register_typed), or NULL: what the edge
   * needs to translate JSON (lib/edge.c). */
  const ProtobufCMessageDescriptor *req_desc, *resp_desc;
};

struct tri__pool {
  tri__mutex mu;
  tri__cond cv;            /* work queued or stop */
  tri__list queue;         /* streams waiting for a worker (wq_link) */
  size_t qlen, max_queue;
  int idle;                /* workers waiting on cv */
  int waking;              /* of those, signalled and not yet awake */
  int64_t wake_stamp;      /* last time waking rose from 0 or fell */
  int wake_cap;            /* most wake-ups in flight: CPUs we may use */
  int nthreads, max_threads;
  pthread_t *threads;
  int stop;
  int busy;                /* handlers running */
  int per_conn;            /* max handlers running per connection */
};

struct tri_server {
  tri_server_opts opts;
  struct tri__method *methods;
  size_t nmethods;
  int listen_fd;
  int port;
  int started;
  int draining;            /* atomic */
  int shut;
  tri__mutex mu;           /* shutdown serialisation; protects: */
  tri__cond down_cv;       /*   broadcast when shutdown is complete */
  int down;                /*   shutdown complete */
  tri__loop **loops;       /* opts.io_threads loops; [0] listens */
  int nloops;              /* started loops (0 before start, after stop) */
  struct tri__pool pool;
  int timers;
  /* tri_server_shutdown_on_signals() */
  pthread_t sig_thread;
  int sig_started;
  int64_t sig_grace_ms;
  int sig_stop;            /* atomic: free() asks the thread to exit */
  int sig_caught;          /* atomic: the signal that shut it down */
  unsigned fork_gen;       /* tri__fork_gen() at creation, immutable */
  /* TLS: opts.tls is the server's own copy (read again on reload). */
  tri__mutex tls_mu;       /* leaf; protects: */
  tri__tls_ctx *tls_ctx;   /*   the context new connections get */
  int64_t tls_log_ns;      /*   last stderr report (I/O threads) */
  uint64_t tls_unlogged;   /*   failures since then */
  uint64_t tls_failures;   /* atomic: failed handshakes */
  /* ZooKeeper registration (under mu: start and shutdown) */
  struct sockaddr_storage bound; /* tri_server_bind()'s address */
  socklen_t bound_len;           /* 0: not TCP */
  tri__zk_reg *reg;
};

/* ---- options ---------------------------------------------------------- */

static void server_opts_defaults(tri_server_opts *o) {
  o->max_workers = 256;
  o->max_streams = 1024;
  o->queue_timeout_ms = 1000;
  o->max_recv = TRI__DEF_MAX_RECV;
  o->send_buf = TRI__DEF_SEND_BUF;
  o->recv_queue = TRI__DEF_RECV_QUEUE;
  o->spin_us = tri__spin_default_us();
  o->worker_stack = 256 * 1024;
  o->handshake_ms = TRI__DEF_HANDSHAKE_MS;
  o->idle_ms = 0;
  o->max_header_list = TRI__MAX_HEADER_LIST;
  o->conn_recv_queue = TRI__DEF_CONN_RQ;
  o->max_per_conn = 0;
  o->max_resets_per_s = 500;
  o->min_ping_ms = 300000;
  o->permit_ping_idle = 0;
  o->max_age_ms = 0;
  o->max_age_grace_ms = INT64_MAX;
  o->ka_time_ms = 0;
  o->ka_timeout_ms = 20000;
  o->io_threads = 1;
}

TRI_API tri_server_opts *tri_server_opts_new(void) {
  tri_server_opts *o = tri__calloc(1, sizeof(*o));
  if (o)
    server_opts_defaults(o);
  return o;
}

TRI_API void tri_server_opts_free(tri_server_opts *o) {
  if (o == NULL)
    return;
  tri_tls_opts_free(o->tls);
  tri__free(o);
}

TRI_API int tri_server_opts_set_tls(tri_server_opts *o,
                                    const tri_tls_opts *tls) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_tls: opts is NULL");
  return tri__tls_opts_replace(&o->tls, tls, "tri_server_opts_set_tls");
}

TRI_API int tri_server_opts_set_registry(tri_server_opts *o,
                                         const char *uri) {
  tri__zk_uri u;
  int rv;
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_registry: opts is "
                     "NULL");
  if (uri == NULL) {
    o->has_registry = 0;
    return TRI_OK;
  }
  rv = tri__zk_uri_parse(uri, &u);
  if (rv != TRI_OK)
    return rv;
  o->registry = u;
  o->has_registry = 1;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_keepalive_enforcement(
    tri_server_opts *o, int64_t min_ping_interval_ms,
    int permit_without_calls) {
  if (o == NULL || min_ping_interval_ms < 0)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_keepalive_enforcement:"
                     " %s", o == NULL ? "opts is NULL"
                                      : "min_ping_interval_ms < 0");
  o->min_ping_ms = min_ping_interval_ms;
  o->permit_ping_idle = permit_without_calls != 0;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_connection_age_ms(tri_server_opts *o,
                                                      int64_t ms) {
  if (o == NULL || ms < 0)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_max_connection_age_ms:"
                     " %s", o == NULL ? "opts is NULL" : "ms < 0");
  o->max_age_ms = ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_connection_age_grace_ms(
    tri_server_opts *o, int64_t ms) {
  if (o == NULL || ms < 0)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_max_connection_age_"
                     "grace_ms: %s", o == NULL ? "opts is NULL" : "ms < 0");
  o->max_age_grace_ms = ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_keepalive(tri_server_opts *o, int64_t time_ms,
                                          int64_t timeout_ms) {
  if (o == NULL || time_ms < 0 || timeout_ms <= 0)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_keepalive: %s",
                     o == NULL ? "opts is NULL"
                     : time_ms < 0 ? "time_ms < 0" : "timeout_ms <= 0");
  /* At least 1 s between PINGs: below that a client enforcing A8 with
   * gRPC's defaults would call them abuse. */
  o->ka_time_ms = time_ms == 0 ? 0 : time_ms < 1000 ? 1000 : time_ms;
  o->ka_timeout_ms = timeout_ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_workers(tri_server_opts *o, int n) {
  if (o == NULL || n < 1)
    return TRI_EINVAL;
  o->max_workers = n;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_concurrent_streams(tri_server_opts *o,
                                                       uint32_t n) {
  if (o == NULL || n < 1)
    return TRI_EINVAL;
  o->max_streams = n;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_queue_timeout_ms(tri_server_opts *o,
                                                 int64_t ms) {
  if (o == NULL || ms < 0)
    return TRI_EINVAL;
  o->queue_timeout_ms = ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_recv_size(tri_server_opts *o,
                                              size_t bytes) {
  if (o == NULL || bytes == 0 || bytes > UINT32_MAX)
    return TRI_EINVAL;
  o->max_recv = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_send_buffer(tri_server_opts *o,
                                            size_t bytes) {
  if (o == NULL || bytes < 1024)
    return TRI_EINVAL;
  o->send_buf = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_recv_queue(tri_server_opts *o, size_t bytes) {
  if (o == NULL || bytes < 1024)
    return TRI_EINVAL;
  o->recv_queue = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_worker_stack(tri_server_opts *o,
                                             size_t bytes) {
  if (o == NULL || bytes < 65536)
    return TRI_EINVAL;
  o->worker_stack = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_handshake_timeout_ms(tri_server_opts *o,
                                                     int64_t ms) {
  if (o == NULL || ms <= 0)
    return TRI_EINVAL;
  o->handshake_ms = ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_idle_timeout_ms(tri_server_opts *o,
                                                int64_t ms) {
  if (o == NULL || ms < 0)
    return TRI_EINVAL;
  o->idle_ms = ms;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_header_list(tri_server_opts *o,
                                                size_t bytes) {
  if (o == NULL || bytes < 1024 || bytes > UINT32_MAX)
    return TRI_EINVAL;
  o->max_header_list = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_conn_recv_queue(tri_server_opts *o,
                                                size_t bytes) {
  if (o == NULL || bytes < 65536)
    return TRI_EINVAL;
  o->conn_recv_queue = bytes;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_handlers_per_conn(tri_server_opts *o,
                                                      int n) {
  if (o == NULL || n < 0)
    return TRI_EINVAL;
  o->max_per_conn = n;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_max_resets_per_s(tri_server_opts *o, int n) {
  if (o == NULL || n < 0)
    return TRI_EINVAL;
  o->max_resets_per_s = n;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_cors_origins(tri_server_opts *o,
                                             const char *origins) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_cors_origins: opts "
                     "is NULL");
  if (origins == NULL)
    origins = "";
  if (strlen(origins) >= sizeof(o->cors))
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_cors_origins: the "
                     "list is longer than %zu bytes", sizeof(o->cors) - 1);
  for (const char *p = origins; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
      return tri__fail(TRI_EINVAL, "tri_server_opts_set_cors_origins: "
                       "control or non-ASCII byte in the list");
  snprintf(o->cors, sizeof(o->cors), "%s", origins);
  return TRI_OK;
}

TRI_API int tri_server_opts_set_io_threads(tri_server_opts *o, int n) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_io_threads: opts is "
                     "NULL");
  if (n < 1 || n > 256)
    return tri__fail(TRI_EINVAL, "tri_server_opts_set_io_threads: n must be "
                     "1..256, not %d", n);
  o->io_threads = n;
  return TRI_OK;
}

TRI_API int tri_server_opts_set_spin_us(tri_server_opts *o, int us) {
  int rv = tri__spin_us_check("tri_server_opts_set_spin_us", o != NULL, us);
  if (rv == TRI_OK)
    o->spin_us = us;
  return rv;
}

/* ---- server object ---------------------------------------------------- */

TRI_API int tri_server_new(tri_server **out, const tri_server_opts *opts) {
  tri__tls_ctx *tls_ctx = NULL;
  tri_tls_opts *tls = NULL;
  int rv;

  if (out == NULL)
    return TRI_EINVAL;
  *out = NULL;
  if (opts != NULL && opts->tls != NULL) {
    /* Never serve clear text when TLS was asked for. */
    if (!tri__tls_available())
      return tri__fail(TRI_UNIMPLEMENTED, TRI__TLS_UNAVAILABLE);
    if ((tls = tri__tls_opts_dup(opts->tls)) == NULL)
      return tri__fail(TRI_ENOMEM, "out of memory copying TLS options");
    rv = tri__tls_ctx_new(tls, 1, &tls_ctx); /* reads the files */
    if (rv != TRI_OK) {
      tri_tls_opts_free(tls);
      return rv;
    }
  }
  tri_server *srv = tri__calloc(1, sizeof(*srv));
  if (srv == NULL) {
    tri__tls_ctx_unref(tls_ctx);
    tri_tls_opts_free(tls);
    return TRI_ENOMEM;
  }
  if (opts)
    srv->opts = *opts;
  else
    server_opts_defaults(&srv->opts);
  srv->opts.tls = tls;
  srv->tls_ctx = tls_ctx;
  tri__mutex_init(&srv->tls_mu);
  srv->listen_fd = -1;
  srv->port = -1;
  srv->fork_gen = tri__fork_gen();
  tri__mutex_init(&srv->mu);
  tri__cond_init(&srv->down_cv);
  tri__mutex_init(&srv->pool.mu);
  tri__cond_init(&srv->pool.cv);
  tri__list_init(&srv->pool.queue);
  srv->pool.max_threads = srv->opts.max_workers;
  {
    /* The CPUs this process may run on (affinity, cpusets), not all the
     * machine's: more woken threads than that cannot start sooner. */
    cpu_set_t set;
    long ncpu = sched_getaffinity(0, sizeof(set), &set) == 0
                    ? CPU_COUNT(&set)
                    : sysconf(_SC_NPROCESSORS_ONLN);
    srv->pool.wake_cap = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
  }
  srv->pool.max_queue = (size_t)srv->opts.max_workers * 4 + 64;
  srv->pool.per_conn = srv->opts.max_per_conn > 0
                           ? srv->opts.max_per_conn
                           : TRI__MAX(16, srv->opts.max_workers / 8);
  srv->pool.threads = tri__calloc((size_t)srv->pool.max_threads,
                                  sizeof(pthread_t));
  if (srv->pool.threads == NULL) {
    tri__tls_ctx_unref(srv->tls_ctx);
    tri_tls_opts_free(srv->opts.tls);
    tri__mutex_destroy(&srv->tls_mu);
    tri__cond_destroy(&srv->pool.cv);
    tri__mutex_destroy(&srv->pool.mu);
    tri__cond_destroy(&srv->down_cv);
    tri__mutex_destroy(&srv->mu);
    tri__free(srv);
    return TRI_ENOMEM;
  }
  *out = srv;
  return TRI_OK;
}

static int method_path_valid(const char *m) {
  if (m == NULL || m[0] != '/' || strchr(m + 1, '/') == NULL)
    return 0;
  for (const char *p = m; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return 0;
  return 1;
}

static int streq_null(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

static int register_method(tri_server *srv, const char *method,
                           const char *group, const char *version,
                           const ProtobufCMessageDescriptor *req,
                           const ProtobufCMessageDescriptor *resp,
                           tri_handler_fn fn, void *user_data,
                           void (*destroy)(void *user_data)) {
  if (srv == NULL || fn == NULL || !method_path_valid(method))
    return TRI_EINVAL;
  if (srv->started)
    return TRI_ESTATE;
  if (group && *group == '\0')
    group = NULL;
  if (version && *version == '\0')
    version = NULL;
  for (size_t i = 0; i < srv->nmethods; i++) {
    struct tri__method *m = &srv->methods[i];
    if (strcmp(m->path, method) == 0 && streq_null(m->group, group) &&
        streq_null(m->version, version)) {
      if (m->destroy)
        m->destroy(m->ud);
      m->fn = fn;
      m->ud = user_data;
      m->destroy = destroy;
      m->req_desc = req;
      m->resp_desc = resp;
      return TRI_OK;
    }
  }
  struct tri__method *nm =
      tri__realloc(srv->methods, (srv->nmethods + 1) * sizeof(*nm));
  if (nm == NULL)
    return TRI_ENOMEM;
  srv->methods = nm;
  struct tri__method *m = &nm[srv->nmethods];
  memset(m, 0, sizeof(*m));
  m->path = tri__strdup(method);
  m->group = tri__strdup(group);
  m->version = tri__strdup(version);
  if (m->path == NULL || (group && !m->group) || (version && !m->version)) {
    tri__free(m->path);
    tri__free(m->group);
    tri__free(m->version);
    return TRI_ENOMEM;
  }
  m->fn = fn;
  m->ud = user_data;
  m->destroy = destroy;
  m->req_desc = req;
  m->resp_desc = resp;
  srv->nmethods++;
  return TRI_OK;
}

TRI_API int tri_server_register_full(tri_server *srv, const char *method,
                                     const char *group, const char *version,
                                     tri_handler_fn fn, void *user_data,
                                     void (*destroy)(void *user_data)) {
  return register_method(srv, method, group, version, NULL, NULL, fn,
                         user_data, destroy);
}

static int desc_ok(const ProtobufCMessageDescriptor *d) {
  return d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

TRI_API int tri_server_register_typed(tri_server *srv, const char *method,
                                      const char *group, const char *version,
                                      const ProtobufCMessageDescriptor *req,
                                      const ProtobufCMessageDescriptor *resp,
                                      tri_handler_fn fn, void *user_data,
                                      void (*destroy)(void *user_data)) {
  if (!desc_ok(req) || !desc_ok(resp))
    return tri__fail(TRI_EINVAL, "tri_server_register_typed: request and "
                     "response descriptors are required");
  return register_method(srv, method, group, version, req, resp, fn,
                         user_data, destroy);
}

TRI_API int tri_server_register_versioned(tri_server *srv, const char *method,
                                          const char *group,
                                          const char *version,
                                          tri_handler_fn fn, void *user_data) {
  return tri_server_register_full(srv, method, group, version, fn, user_data,
                                  NULL);
}

TRI_API int tri_server_register(tri_server *srv, const char *method,
                                tri_handler_fn fn, void *user_data) {
  return tri_server_register_versioned(srv, method, NULL, NULL, fn,
                                       user_data);
}

/* Path equality, or (11.12) equality but for the case of the method's
 * first letter (Java "greet" vs Go "Greet"). */
static int path_match(const char *reg, const char *req, int loose) {
  if (!loose)
    return strcmp(reg, req) == 0;
  const char *rs = strrchr(reg, '/'), *qs = strrchr(req, '/');
  if (rs == NULL || qs == NULL || rs - reg != qs - req ||
      strncmp(reg, req, (size_t)(rs - reg)) != 0)
    return 0;
  rs++;
  qs++;
  if (*rs == '\0' || *qs == '\0')
    return 0;
  char a = *rs, b = *qs;
  if (a >= 'A' && a <= 'Z')
    a = (char)(a - 'A' + 'a');
  if (b >= 'A' && b <= 'Z')
    b = (char)(b - 'A' + 'a');
  return a == b && strcmp(rs + 1, qs + 1) == 0;
}

/* Lookup with Dubbo Java's fallback chain (doc/PROTOCOL.md 11.4): exact
 * (path, group, version), then (path, group, "1.0.0"), then the path's
 * default registration (no group, no version). */
static const struct tri__method *lookup(const tri_server *srv,
                                        const char *path, const char *group,
                                        const char *version, int *path_seen) {
  *path_seen = 0;
  for (int loose = 0; loose < 2; loose++) {
    const struct tri__method *by_default = NULL, *by_100 = NULL;
    for (size_t i = 0; i < srv->nmethods; i++) {
      const struct tri__method *m = &srv->methods[i];
      if (!path_match(m->path, path, loose))
        continue;
      *path_seen = 1;
      if (streq_null(m->group, group) && streq_null(m->version, version))
        return m;
      if (streq_null(m->group, group) && m->version &&
          strcmp(m->version, "1.0.0") == 0 && version == NULL)
        by_100 = m;
      if (m->group == NULL && m->version == NULL)
        by_default = m;
    }
    if (by_100)
      return by_100;
    if (by_default)
      return by_default;
    if (*path_seen)
      return NULL;
  }
  return NULL;
}

/* ---- worker pool ------------------------------------------------------ */

/* First queued stream whose connection is under its handler share
 * (pool.mu held); at shutdown any stream, so every handler still runs. */
static tri_stream *pick_locked(tri_server *srv) {
  struct tri__pool *p = &srv->pool;
  tri__list *n;
  int scanned = 0;

  for (n = p->queue.next; n != &p->queue && scanned < 100000;
       n = n->next, scanned++) {
    tri_stream *s = tri__container_of(n, tri_stream, wq_link);
    if (p->stop || s->quota == NULL || s->quota->running < p->per_conn)
      return s;
  }
  return NULL;
}

/*
 * Whether to signal one more sleeping worker (pool.mu held); counts it in
 * p->waking if so.  Workers are woken one after another rather than one
 * per queued stream: a worker that takes a stream while more are queued
 * wakes the next (worker_main), and one that finishes a handler takes the
 * next stream without sleeping.  So every queued stream still reaches a
 * worker even if each handler blocks, but short handlers are run by the
 * few workers already awake instead of a thundering herd of context
 * switches.  At most wake_cap wake-ups are in flight: more threads than
 * CPUs cannot start sooner.
 */
static int wake_one_locked(struct tri__pool *p) {
  if (p->qlen > (size_t)p->waking && p->idle > p->waking &&
      p->waking < p->wake_cap) {
    if (p->waking++ == 0)
      p->wake_stamp = tri__now_ns();
    return 1;
  }
  return 0;
}

static void *worker_main(void *arg) {
  tri_server *srv = arg;
  struct tri__pool *p = &srv->pool;

  for (;;) {
    tri_stream *s;
    tri__mutex_lock(&p->mu);
    while ((s = pick_locked(srv)) == NULL && !p->stop) {
      p->idle++;
      tri__cond_wait(&p->cv, &p->mu);
      p->idle--;
      if (p->waking > 0) {
        p->waking--; /* (a spurious wake-up only makes it signal more) */
        p->wake_stamp = tri__now_ns();
      }
    }
    if (s == NULL) {
      tri__mutex_unlock(&p->mu);
      break;
    }
    tri__list_remove(&s->wq_link);
    p->qlen--;
    p->busy++;
    if (s->quota) {
      s->quota->queued--;
      s->quota->running++;
    }
    /* The next queued stream gets a worker even if this handler blocks. */
    int chain = wake_one_locked(p);
    tri__mutex_unlock(&p->mu);
    if (chain)
      tri__cond_signal(&p->cv);
    if (tri__timer_stop(&s->queue_timer))
      tri__stream_unref(s);

    /* The handler runs even when the stream already ended (client
     * cancel, over-limit message while queued): its first call returns
     * the final status, so it always observes how the call ended. */
    const struct tri__method *m = s->handler;
    int rv = m->fn(s, m->ud); /* no library lock held */
    int code = tri__code_is_wire(rv) ? rv : TRI_UNKNOWN;
    tri__stream_finish(s, code,
                       code == rv ? NULL : "handler returned without a status");
    tri__mutex_lock(&p->mu);
    p->busy--;
    /* A stream held back by this connection's share may run now: this
     * worker takes it next (pick_locked), and wakes another if more are
     * queued, so no wake-up here. */
    if (s->quota)
      s->quota->running--;
    tri__mutex_unlock(&p->mu);
    tri__stream_unref(s);
  }
  return NULL;
}

static void queue_timer_fired(tri__timer *t) {
  tri_stream *s = tri__container_of(t, tri_stream, queue_timer);
  tri_server *srv = s->srv;
  int removed = 0;

  tri__mutex_lock(&srv->pool.mu);
  if (tri__list_linked(&s->wq_link)) {
    tri__list_remove(&s->wq_link);
    srv->pool.qlen--;
    if (s->quota)
      s->quota->queued--;
    removed = 1;
  }
  tri__mutex_unlock(&srv->pool.mu);
  if (removed) {
    tri__stream_finish(s, TRI_RESOURCE_EXHAUSTED,
                       "server busy: no free handler thread");
    tri__stream_unref(s); /* the queue's reference */
  }
  tri__stream_unref(s); /* the timer's reference */
}

void tri__server_kick(tri_server *srv, unsigned n) {
  struct tri__pool *p = &srv->pool;
  unsigned k = 0;
  tri__mutex_lock(&p->mu);
  /* Self-repair: a wake-up takes microseconds, so wake-ups counted in
   * flight with none arriving for 100 ms were lost (were a signal ever
   * lost, p->waking would otherwise stay high and throttle every later
   * wake-up).  Never true in normal operation. */
  if (p->waking > 0 && tri__now_ns() - p->wake_stamp > tri__ms_to_ns(100))
    p->waking = 0;
  /* A worker that finished a handler meanwhile may have taken the
   * stream already: no wake-up for that one (wake_one_locked). */
  while (k < n && wake_one_locked(p))
    k++;
  tri__mutex_unlock(&p->mu);
  while (k-- > 0)
    tri__cond_signal(&p->cv);
}

/* I/O thread.  Returns TRI_OK or a status to answer at once. */
static int pool_submit(tri_server *srv, tri_stream *s, const char **msg) {
  struct tri__pool *p = &srv->pool;
  int rv = TRI_OK;

  tri__mutex_lock(&p->mu);
  if (p->stop) {
    rv = TRI_UNAVAILABLE;
    *msg = "server shutting down";
  } else if (p->qlen >= p->max_queue) {
    rv = TRI_RESOURCE_EXHAUSTED;
    *msg = "server busy: handler queue full";
  } else if (s->quota != NULL && s->quota->queued >= p->per_conn) {
    /* One connection may not fill the shared queue either. */
    rv = TRI_RESOURCE_EXHAUSTED;
    *msg = "server busy: this connection's share of handlers is in use";
  } else {
    /* Every queued stream needs its own worker.  Workers signalled but
     * not yet awake are still counted in p->idle, so compare the idle
     * count with the queue length (this stream included), not with 0. */
    size_t want = p->qlen + 1;
    if ((size_t)p->idle < want && p->nthreads < p->max_threads) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, srv->opts.worker_stack);
      if (tri__thread_create(&p->threads[p->nthreads], &attr, worker_main,
                             srv, "tri-worker") == 0)
        p->nthreads++;
      pthread_attr_destroy(&attr);
    }
    if (p->nthreads == 0) {
      rv = TRI_UNAVAILABLE;
      *msg = "server cannot start a handler thread";
    } else {
      tri__stream_ref(s); /* the queue's reference */
      tri__list_insert_tail(&p->queue, &s->wq_link);
      p->qlen++;
      if (s->quota)
        s->quota->queued++;
      /* On the I/O thread the worker is woken at the end of the
       * iteration, when the rest of the request (its DATA in the same
       * read) is queued too and the pool lock is free. */
      if (p->idle > 0 && !tri__loop_defer_kick(srv) && wake_one_locked(p))
        tri__cond_signal(&p->cv);
      /* Bounded wait for a worker (none may be free, or its connection
       * may be at its share); the worker that picks it stops the timer. */
      tri__stream_ref(s); /* the queue timer's reference */
      tri__timer_start(&s->queue_timer,
                       tri__deadline_after_ms(srv->opts.queue_timeout_ms));
    }
  }
  tri__mutex_unlock(&p->mu);
  return rv;
}

int tri__server_dispatch(tri_server *srv, tri_stream *s, const char **msg) {
  static __thread char buf[256];
  int seen;
  const struct tri__method *m;

  if (s->method == NULL) {
    *msg = "missing :path";
    return TRI_UNIMPLEMENTED;
  }
  m = lookup(srv, s->method, s->req_group, s->req_version, &seen);
  if (m == NULL) {
    if (seen)
      snprintf(buf, sizeof(buf),
               "no implementation found for service group '%s' and service "
               "version '%s'",
               s->req_group ? s->req_group : "",
               s->req_version ? s->req_version : "");
    else
      snprintf(buf, sizeof(buf), "unknown method %s", s->method);
    *msg = buf;
    return TRI_UNIMPLEMENTED; /* 4.9 */
  }
  s->handler = (void *)(uintptr_t)m;
  if (s->edge != NULL) {
    /* The edge translates JSON with the method's types (edge.c). */
    int rv = tri__edge_method(s, m->req_desc, m->resp_desc, msg);
    if (rv != TRI_OK)
      return rv;
  }
  tri__timer_init(&s->queue_timer, queue_timer_fired);
  return pool_submit(srv, s, msg);
}

int tri__server_draining(const tri_server *srv) {
  return __atomic_load_n(&srv->draining, __ATOMIC_ACQUIRE);
}

/* ---- TLS -------------------------------------------------------------- */

tri__tls_ctx *tri__server_tls_get(tri_server *srv) {
  tri__tls_ctx *t;
  tri__mutex_lock(&srv->tls_mu);
  t = srv->tls_ctx;
  if (t != NULL)
    tri__tls_ctx_ref(t);
  tri__mutex_unlock(&srv->tls_mu);
  return t;
}

#define TLS_LOG_EVERY_NS (10 * 1000 * TRI__NS_PER_MS)

void tri__server_tls_failed(tri_server *srv, const char *peer,
                            const char *why) {
  int64_t now = tri__now_ns();
  uint64_t unlogged;
  __atomic_add_fetch(&srv->tls_failures, 1, __ATOMIC_RELAXED);
  /* Every I/O thread of the server gets here: the log state is under
   * tls_mu (a leaf), the line is written after it.  One line per 10 s at
   * most, so a flood of bad handshakes cannot flood the log. */
  tri__mutex_lock(&srv->tls_mu);
  if (srv->tls_log_ns != 0 && now - srv->tls_log_ns < TLS_LOG_EVERY_NS) {
    srv->tls_unlogged++;
    tri__mutex_unlock(&srv->tls_mu);
    return;
  }
  /* Never block the I/O thread on a full stderr pipe nobody reads: the
   * line is skipped (and counted) when stderr cannot take it now. */
  struct pollfd pf = {STDERR_FILENO, POLLOUT, 0};
  if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT)) {
    srv->tls_unlogged++;
    tri__mutex_unlock(&srv->tls_mu);
    return;
  }
  unlogged = srv->tls_unlogged;
  srv->tls_log_ns = now;
  srv->tls_unlogged = 0;
  tri__mutex_unlock(&srv->tls_mu);
  if (unlogged > 0)
    fprintf(stderr, "libtriplestream: TLS handshake with %s failed: %s (and "
            "%llu more failed handshakes not reported since the last "
            "line)\n", peer, why, (unsigned long long)unlogged);
  else
    fprintf(stderr, "libtriplestream: TLS handshake with %s failed: %s\n",
            peer, why);
}

TRI_API uint64_t tri_server_tls_handshake_failures(const tri_server *srv) {
  return srv ? __atomic_load_n(&srv->tls_failures, __ATOMIC_RELAXED) : 0;
}

TRI_API int tri_server_reload_tls(tri_server *srv) {
  tri__tls_ctx *t = NULL, *old;
  int rv;

  if (srv == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_reload_tls: server is NULL");
  if (!tri__tls_available())
    return tri__fail(TRI_UNIMPLEMENTED, TRI__TLS_UNAVAILABLE);
  if (srv->opts.tls == NULL)
    return tri__fail(TRI_ESTATE, "tri_server_reload_tls: the server has no "
                     "TLS (tri_server_opts_set_tls)");
  /* Read and check every file here, on the caller's thread; the I/O
   * thread only ever sees a complete context. */
  rv = tri__tls_ctx_new(srv->opts.tls, 1, &t);
  if (rv != TRI_OK)
    return rv; /* the old context stays */
  tri__mutex_lock(&srv->tls_mu);
  old = srv->tls_ctx;
  srv->tls_ctx = t;
  tri__mutex_unlock(&srv->tls_mu);
  /* Connections made with the old one hold their own references. */
  tri__tls_ctx_unref(old);
  return TRI_OK;
}

/* ---- listening -------------------------------------------------------- */

/* Bind and listen on a Unix-domain socket (path or abstract name). */
static int bind_unix(const tri__target *t, int *out_fd) {
  struct sockaddr_un un;
  socklen_t len;
  int fd;

  len = tri__target_sockaddr_un(t, &un);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return tri__fail(TRI_ESYS, "bind %s: socket: %s", t->where,
                     strerror(errno));
  if (bind(fd, (struct sockaddr *)&un, len) != 0 || listen(fd, 1024) != 0) {
    int e = errno;
    close(fd);
    return tri__fail(TRI_ESYS, "bind %s: %s%s", t->where, strerror(e),
                     e == EADDRINUSE && t->kind == TRI__T_UNIX
                         ? " (remove the stale socket file first)"
                         : "");
  }
  *out_fd = fd;
  return TRI_OK;
}

TRI_API int tri_server_bind(tri_server *srv, const char *host_port) {
  struct addrinfo hints, *res = NULL, *ai;
  tri__target t;
  int fd = -1, rv, err = 0;

  if (srv == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_bind: server is NULL");
  if (srv->started || srv->listen_fd >= 0)
    return tri__fail(TRI_ESTATE, "tri_server_bind: the server is already "
                     "%s", srv->started ? "started" : "bound");
  rv = tri__target_parse(host_port, 1, &t);
  if (rv != TRI_OK)
    return rv;
  if (t.kind != TRI__T_TCP) {
    rv = bind_unix(&t, &fd);
    if (rv != TRI_OK)
      return rv;
    srv->port = 0;
    srv->listen_fd = fd;
    return TRI_OK;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  rv = getaddrinfo(t.host[0] ? t.host : NULL, t.port, &hints, &res);
  if (rv != 0)
    return tri__fail(TRI_EINVAL, "bind %s: cannot resolve '%s': %s",
                     t.where, t.host, gai_strerror(rv));
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
      break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    return tri__fail(TRI_ESYS, "bind %s: %s", t.where,
                     strerror(err ? err : EADDRNOTAVAIL));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    err = errno;
    close(fd);
    return tri__fail(TRI_ESYS, "bind %s: getsockname: %s", t.where,
                     strerror(err));
  }
  memcpy(&srv->bound, &ss, sl);
  srv->bound_len = sl;
  srv->port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  srv->listen_fd = fd;
  return TRI_OK;
}

TRI_API int tri_server_port(const tri_server *srv) {
  return srv ? srv->port : -1;
}

static int registry_start(tri_server *srv);

/* Stop and join the first |n| loops (the listening one first: once it
 * is gone nobody hands sockets to the others), then free them: until a
 * loop's thread has ended it may post to the listening loop (conn.c
 * fd_close), so none is freed before all have stopped. */
static void loops_join_free(tri__loop **loops, int n) {
  /* Stop them all before joining any: each teardown may wait for slow
   * readers until the shutdown's one deadline (loop.c final_flush), and
   * handlers on every loop wake at once.  The listening loop first; one
   * that is stopping refuses connections handed to it (tri__loop_adopt),
   * and the listener closes them. */
  for (int i = 0; i < n; i++)
    if (tri__loop_usable(loops[i]))
      tri__loop_stop(loops[i]);
  for (int i = 0; i < n; i++)
    tri__loop_join(loops[i]);
  for (int i = 0; i < n; i++)
    tri__loop_join_free(loops[i]);
}

TRI_API int tri_server_start(tri_server *srv) {
  int rv = TRI_OK, err = 0;
  tri__srv_cfg cfg;

  if (srv == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_start: server is NULL");
  if (srv->fork_gen != tri__fork_gen())
    return tri__fail(TRI_UNAVAILABLE, "tri_server_start: the server was "
                     "created before fork(); create one in this process");
  /* Under srv->mu: a shutdown (another thread, or a signal after
   * tri_server_shutdown_on_signals()) may run at the same time. */
  tri__mutex_lock(&srv->mu);
  if (srv->started || srv->listen_fd < 0 || srv->shut) {
    rv = tri__fail(TRI_ESTATE, "tri_server_start: %s",
                   srv->started  ? "already started"
                   : srv->shut   ? "the server was shut down"
                                 : "not bound (call tri_server_bind first)");
    goto out;
  }
  if (tri__timers_acquire() != 0) {
    rv = tri__fail(TRI_ESYS, "cannot start the timer thread");
    goto out;
  }
  cfg.max_recv = srv->opts.max_recv;
  cfg.rq_limit = srv->opts.recv_queue;
  cfg.spin_ns = srv->opts.spin_us * INT64_C(1000);
  cfg.sb_limit = srv->opts.send_buf;
  cfg.max_streams = srv->opts.max_streams;
  cfg.max_header_list = srv->opts.max_header_list;
  cfg.conn_rq_limit = srv->opts.conn_recv_queue;
  cfg.handshake_ms = srv->opts.handshake_ms;
  cfg.idle_ms = srv->opts.idle_ms;
  cfg.max_resets_per_s = srv->opts.max_resets_per_s;
  cfg.min_ping_ms = srv->opts.min_ping_ms;
  cfg.permit_ping_idle = srv->opts.permit_ping_idle;
  cfg.max_age_ms = srv->opts.max_age_ms;
  cfg.max_age_grace_ms = srv->opts.max_age_grace_ms;
  cfg.ka_time_ms = srv->opts.ka_time_ms;
  cfg.ka_timeout_ms = srv->opts.ka_timeout_ms;
  cfg.tls = srv->tls_ctx != NULL;
  snprintf(cfg.cors, sizeof(cfg.cors), "%s", srv->opts.cors);
  if (srv->opts.has_registry) {
    /* Providers appear in the registry now; clients that find them
     * connect into the listen backlog until the loops accept. */
    rv = registry_start(srv);
    if (rv != TRI_OK) {
      tri__timers_release();
      goto out;
    }
  }
  int n = srv->opts.io_threads >= 1 ? srv->opts.io_threads : 1;
  srv->loops = tri__calloc((size_t)n, sizeof(*srv->loops));
  for (int i = 0; srv->loops != NULL && i < n; i++) {
    /* Loop 0 owns (and closes) the listening socket and hands accepted
     * sockets to the others (h2server.c). */
    srv->loops[i] = tri__loop_new_server(srv, i == 0 ? srv->listen_fd : -1,
                                         &cfg, &err);
    if (srv->loops[i] == NULL) {
      loops_join_free(srv->loops, i); /* loop 0 closes the socket */
      tri__free(srv->loops);
      srv->loops = NULL;
      /* Loop 0 failing leaves the socket with the server (a later start
       * may work; tri_server_free closes it); after it, it is already -1
       * and joining loop 0 closed it. */
      tri__zk_reg_free(srv->reg);
      srv->reg = NULL;
      tri__timers_release();
      rv = tri__fail_create(err, "the server's I/O loop");
      goto out;
    }
    srv->listen_fd = -1;
  }
  if (srv->loops == NULL) {
    tri__zk_reg_free(srv->reg);
    srv->reg = NULL;
    tri__timers_release();
    rv = tri__fail(TRI_ENOMEM, "cannot create the server's I/O loops");
    goto out;
  }
  tri__loop_set_peers(srv->loops[0], srv->loops, n);
  /* The others first: the listener may hand them sockets at once. */
  for (int i = n - 1; i >= 0; i--) {
    if (tri__loop_start(srv->loops[i]) != 0) {
      loops_join_free(srv->loops, n); /* started or not */
      tri__free(srv->loops);
      srv->loops = NULL;
      tri__zk_reg_free(srv->reg);
      srv->reg = NULL;
      tri__timers_release();
      rv = tri__fail(TRI_ESYS, "cannot start the server's I/O threads");
      goto out;
    }
  }
  srv->nloops = n;
  srv->timers = 1;
  srv->started = 1;
out:
  tri__mutex_unlock(&srv->mu);
  return rv;
}

/* ---- registry (doc/PROTOCOL.md 18.2) ---------------------------------- */

/* The address to publish: the bound one, or for a wildcard bind the first
 * non-loopback address of the host (loopback when there is none). */
static void publish_ip(const tri_server *srv, char *ip, size_t len) {
  const struct sockaddr_storage *ss = &srv->bound;
  int any = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    any = a->sin_addr.s_addr == htonl(INADDR_ANY);
    inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)len);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    any = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)len);
  }
  if (!any)
    return;
  snprintf(ip, len, "%s", ss->ss_family == AF_INET ? "127.0.0.1" : "::1");
  struct ifaddrs *ifs = NULL, *i;
  if (getifaddrs(&ifs) != 0)
    return;
  for (int pass = 0; pass < 2; pass++) { /* IPv4 first, as Dubbo does */
    for (i = ifs; i != NULL; i = i->ifa_next) {
      if (i->ifa_addr == NULL || (i->ifa_flags & IFF_LOOPBACK) ||
          !(i->ifa_flags & IFF_UP))
        continue;
      if (pass == 0 && i->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
                  ip, (socklen_t)len);
        freeifaddrs(ifs);
        return;
      }
      if (pass == 1 && ss->ss_family == AF_INET6 &&
          i->ifa_addr->sa_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        if (IN6_IS_ADDR_LINKLOCAL(a))
          continue;
        inet_ntop(AF_INET6, a, ip, (socklen_t)len);
        freeifaddrs(ifs);
        return;
      }
    }
  }
  freeifaddrs(ifs);
}

/* Start registering every interface the server serves: one provider node
 * per (interface, group, version), methods from "/INTERFACE/Method". */
static int registry_start(tri_server *srv) {
  tri__zk_service *svcs;
  char **methods;
  size_t n = 0;
  char ip[INET6_ADDRSTRLEN + 1];
  int rv;

  if (srv->bound_len == 0 || (srv->bound.ss_family != AF_INET &&
                              srv->bound.ss_family != AF_INET6))
    return tri__fail(TRI_EINVAL, "tri_server_start: a registry needs a TCP "
                     "address (tri_server_bind(\"IP:PORT\"))");
  if (srv->nmethods == 0)
    return tri__fail(TRI_EINVAL, "tri_server_start: a registry needs at "
                     "least one registered method");
  svcs = tri__calloc(srv->nmethods, sizeof(*svcs));
  methods = tri__calloc(srv->nmethods, sizeof(char *));
  char **ifaces = tri__calloc(srv->nmethods, sizeof(char *));
  if (svcs == NULL || methods == NULL || ifaces == NULL) {
    rv = tri__fail(TRI_ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < srv->nmethods; i++) {
    const struct tri__method *m = &srv->methods[i];
    const char *slash = strchr(m->path + 1, '/');
    size_t il = (size_t)(slash - (m->path + 1));
    size_t k;
    for (k = 0; k < n; k++)
      if (strlen(svcs[k].interface) == il &&
          strncmp(svcs[k].interface, m->path + 1, il) == 0 &&
          streq_null(svcs[k].group, m->group) &&
          streq_null(svcs[k].version, m->version))
        break;
    if (k == n) {
      ifaces[n] = tri__strndup(m->path + 1, il);
      if (ifaces[n] == NULL) {
        rv = tri__fail(TRI_ENOMEM, "out of memory");
        goto out;
      }
      svcs[n].interface = ifaces[n];
      svcs[n].group = m->group;
      svcs[n].version = m->version;
      n++;
    }
    const char *mn = slash + 1;
    size_t ol = methods[k] ? strlen(methods[k]) : 0;
    char *nm = tri__realloc(methods[k], ol + strlen(mn) + 2);
    if (nm == NULL) {
      rv = tri__fail(TRI_ENOMEM, "out of memory");
      goto out;
    }
    if (ol == 0)
      strcpy(nm, mn);
    else
      sprintf(nm + ol, ",%s", mn);
    methods[k] = nm;
    svcs[k].methods = nm;
  }
  publish_ip(srv, ip, sizeof(ip));
  rv = tri__zk_reg_new(&srv->reg, &srv->opts.registry, ip, srv->port, svcs,
                       n);
out:
  for (size_t i = 0; i < srv->nmethods; i++) {
    if (methods)
      tri__free(methods[i]);
    if (ifaces)
      tri__free(ifaces[i]);
  }
  tri__free(methods);
  tri__free(ifaces);
  tri__free(svcs);
  return rv;
}

/* ---- shutdown --------------------------------------------------------- */

/* Streams the server's loops still hold, and connections whose drain
 * PING is unanswered: a connection without streams is not done while the
 * client may still send requests it wrote before it saw the heads-up
 * GOAWAY; they are served until the real GOAWAY (PING ACK, or 10 s).
 * Connections that have sent nothing, or are in TLS, are not waited for
 * (doc/PROTOCOL.md 8.3). */
static int server_busy(tri_server *srv) {
  int n = 0;
  for (int i = 0; i < srv->nloops; i++) {
    /* drain_waits first: its decrement comes after the stream count of
     * a request read with the drain PING's ACK (acquire / release). */
    int waits = tri__server_drain_waits(srv->loops[i]);
    n += waits + tri__loop_nstreams(srv->loops[i]);
  }
  return n;
}

int tri__server_loop_served(const tri_server *srv, int i, uint64_t *served,
                            int *conns) {
  if (srv == NULL || i < 0 || i >= srv->nloops)
    return -1;
  tri__loop_conn_counts(srv->loops[i], served, conns);
  return 0;
}

int tri__final_flush_ms = TRI__FINAL_FLUSH_MS;

TRI_API void tri_server_shutdown(tri_server *srv, int64_t drain_ms) {
  struct tri__pool *p;

  if (srv == NULL)
    return;
  if (srv->fork_gen != tri__fork_gen())
    return; /* inherited through fork(): the parent's threads, not ours */
  tri__mutex_lock(&srv->mu);
  if (srv->shut) {
    tri__mutex_unlock(&srv->mu);
    return;
  }
  srv->shut = 1;
  __atomic_store_n(&srv->draining, 1, __ATOMIC_RELEASE);
  p = &srv->pool;
  if (srv->reg != NULL) {
    /* 18.2: leave the registry first, so clients stop choosing this
     * server before it sends GOAWAY and drains. */
    tri__zk_reg_free(srv->reg);
    srv->reg = NULL;
  }
  if (srv->nloops > 0) {
    /* GOAWAY and stop accepting; let streams in flight finish. */
    for (int i = 0; i < srv->nloops; i++)
      tri__loop_drain(srv->loops[i]);
    int64_t until = tri__deadline_after_ms(drain_ms < 0 ? 0 : drain_ms);
    for (int i = 0; i < 1000000 && server_busy(srv) > 0 &&
                    tri__now_ns() < until;
         i++) {
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  tri__mutex_lock(&p->mu);
  p->stop = 1; /* no new dispatch */
  tri__mutex_unlock(&p->mu);
  if (srv->nloops > 0) {
    /* One deadline for every loop (all are stopped at once): the final
     * frames of what the drain did not finish reach clients that read
     * within it (doc/DESIGN.md, "Shutdown"). */
    int64_t flush_until = tri__deadline_after_ms(tri__final_flush_ms);
    for (int i = 0; i < srv->nloops; i++)
      tri__loop_set_final_flush(srv->loops[i], flush_until);
    /* Cancels what remains: handlers blocked in recv/send wake
     * (loops_join_free: every loop stopped, the listening one first). */
    loops_join_free(srv->loops, srv->nloops);
    tri__free(srv->loops);
    srv->loops = NULL;
    srv->nloops = 0;
  }
  tri__mutex_lock(&p->mu);
  tri__cond_broadcast(&p->cv);
  int n = p->nthreads;
  tri__mutex_unlock(&p->mu);
  for (int i = 0; i < n; i++)
    pthread_join(p->threads[i], NULL);
  /* Streams that never got a worker: drop the queue's references. */
  tri__mutex_lock(&p->mu);
  while (!tri__list_empty(&p->queue)) {
    tri_stream *s = tri__container_of(p->queue.next, tri_stream, wq_link);
    tri__list_remove(&s->wq_link);
    p->qlen--;
    if (s->quota)
      s->quota->queued--;
    tri__mutex_unlock(&p->mu);
    if (tri__timer_stop(&s->queue_timer))
      tri__stream_unref(s);
    tri__stream_unref(s);
    tri__mutex_lock(&p->mu);
  }
  tri__mutex_unlock(&p->mu);
  /* A queue timer that fired just before it was stopped may still be
   * inside its callback, which takes pool.mu: wait for it before the
   * server can be freed. */
  tri__timers_quiesce();
  if (srv->listen_fd >= 0) {
    close(srv->listen_fd);
    srv->listen_fd = -1;
  }
  if (srv->timers) {
    srv->timers = 0;
    tri__timers_release();
  }
  srv->down = 1;
  tri__cond_broadcast(&srv->down_cv);
  tri__mutex_unlock(&srv->mu);
}

TRI_API int tri_server_wait(tri_server *srv) {
  if (srv == NULL)
    return tri__fail(TRI_EINVAL, "tri_server_wait: server is NULL");
  if (srv->fork_gen != tri__fork_gen())
    return tri__fail(TRI_UNAVAILABLE, "tri_server_wait: the server was "
                     "created before fork()");
  tri__mutex_lock(&srv->mu);
  while (!srv->down)
    tri__cond_wait(&srv->down_cv, &srv->mu);
  tri__mutex_unlock(&srv->mu);
  return TRI_OK;
}

/* The signals tri_server_shutdown_on_signals() turns into a shutdown. */
static void shutdown_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
}

static void *signal_main(void *arg) {
  tri_server *srv = arg;
  sigset_t set;
  int sig = 0;

  shutdown_signals(&set);
  for (int i = 0; i < 1000000; i++) {
    if (sigwait(&set, &sig) != 0)
      continue;
    if (__atomic_load_n(&srv->sig_stop, __ATOMIC_ACQUIRE))
      return NULL; /* woken by tri_server_free() */
    __atomic_store_n(&srv->sig_caught, sig, __ATOMIC_RELEASE);
    tri_server_shutdown(srv, srv->sig_grace_ms);
    return NULL;
  }
  return NULL;
}

TRI_API int tri_server_shutdown_on_signals(tri_server *srv,
                                           int64_t grace_ms) {
  sigset_t set, old;
  int rv;

  if (srv == NULL || grace_ms < 0)
    return tri__fail(TRI_EINVAL, "tri_server_shutdown_on_signals: %s",
                     srv == NULL ? "server is NULL" : "grace_ms < 0");
  if (srv->sig_started)
    return tri__fail(TRI_ESTATE, "tri_server_shutdown_on_signals: already "
                     "called for this server");
  shutdown_signals(&set);
  /* Blocked here, so in every thread this one creates from now on; the
   * signal thread takes them with sigwait(). */
  rv = pthread_sigmask(SIG_BLOCK, &set, &old);
  if (rv != 0)
    return tri__fail(TRI_ESYS, "pthread_sigmask: %s", strerror(rv));
  srv->sig_grace_ms = grace_ms;
  rv = pthread_create(&srv->sig_thread, NULL, signal_main, srv);
  if (rv == 0)
    tri__thread_name(srv->sig_thread, "tri-signal");
  if (rv != 0) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return tri__fail(TRI_ESYS, "cannot start the signal thread: %s",
                     strerror(rv));
  }
  srv->sig_started = 1;
  return TRI_OK;
}

TRI_API int tri_server_signal(const tri_server *srv) {
  return srv ? __atomic_load_n(&srv->sig_caught, __ATOMIC_ACQUIRE) : 0;
}

TRI_API void tri_server_free(tri_server *srv) {
  if (srv == NULL)
    return;
  if (srv->fork_gen != tri__fork_gen())
    return; /* inherited through fork(): abandoned, see shutdown */
  if (srv->sig_started) {
    /* The signal thread either shut the server down already or still
     * waits in sigwait(): wake it with a signal only it takes. */
    __atomic_store_n(&srv->sig_stop, 1, __ATOMIC_RELEASE);
    pthread_kill(srv->sig_thread, SIGTERM);
    pthread_join(srv->sig_thread, NULL);
  }
  tri_server_shutdown(srv, 0);
  for (size_t i = 0; i < srv->nmethods; i++) {
    if (srv->methods[i].destroy)
      srv->methods[i].destroy(srv->methods[i].ud);
    tri__free(srv->methods[i].path);
    tri__free(srv->methods[i].group);
    tri__free(srv->methods[i].version);
  }
  tri__free(srv->methods);
  tri__free(srv->pool.threads);
  tri__tls_ctx_unref(srv->tls_ctx); /* connections (and their refs) gone */
  tri_tls_opts_free(srv->opts.tls);
  tri__mutex_destroy(&srv->tls_mu);
  tri__cond_destroy(&srv->pool.cv);
  tri__mutex_destroy(&srv->pool.mu);
  tri__cond_destroy(&srv->down_cv);
  tri__mutex_destroy(&srv->mu);
  tri__free(srv);
}
