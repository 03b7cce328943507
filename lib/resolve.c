/*
 * Name resolution for client connections, without ever blocking the I/O
 * thread.  With c-ares (the resolver gRPC core and curl use), queries run
 * on the loop itself: c-ares' sockets are watched by the loop's epoll and
 * its timeouts bound the loop's sleep, so a slow or silent DNS server
 * delays only the connection that waits for it; the connect timeout and
 * every call's deadline still apply, and tri_channel_free() returns at
 * once.  Results (and failures, reported as "cannot resolve 'HOST': why")
 * are delivered to lb.c (the channel's address list) from the loop, never
 * from inside tri__resolve_start().  A resolution asks for every A and
 * AAAA record; all of them become the channel's addresses.  The c-ares
 * channel lives only while a name is being resolved: numeric addresses
 * never create one, and it is destroyed once its answer is handed over.
 *
 * TRI_DNS_SERVERS (environment): "host:port[,host:port...]" replaces the
 * name servers of /etc/resolv.conf for the process's channels (tests and
 * unusual deployments).
 *
 * Without c-ares (configure --without-cares) only numeric addresses and
 * "localhost" resolve.
 *
 * Threads: the I/O thread only; the loop's teardown frees the resolver
 * there (tri__resolve_free()).
 */
#include "tri_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "budget.h"

#ifdef HAVE_CARES
#include <ares.h>
#endif

/* One query of the loop (l->resolving).  The loop may cancel it before
 * the answer: then l is NULL and the answer only frees the query. */
struct tri__resolve {
  tri__loop *l;
  void *dns;               /* the loop's dns_state (c-ares queries) */
  int done;
  int64_t deadline;        /* the connect timeout bounds it */
  char err[400];           /* empty on success */
  struct sockaddr_storage addrs[TRI__MAX_ADDRS];
  socklen_t lens[TRI__MAX_ADDRS];
  int naddrs;
};

#define DNS_MAX_FDS 16

typedef struct {
#ifdef HAVE_CARES
  ares_channel ch;
#endif
  tri__src src[DNS_MAX_FDS];
  uint32_t reg[DNS_MAX_FDS];
  int queries;             /* in flight */
  int ready;               /* an answer waits for tri__resolve_tick() */
} dns_state;

static void add_addr(tri__resolve *r, const struct sockaddr *sa,
                     socklen_t len) {
  if (r->naddrs >= TRI__MAX_ADDRS || len > sizeof(r->addrs[0]))
    return;
  memcpy(&r->addrs[r->naddrs], sa, len);
  r->lens[r->naddrs++] = len;
}

static void finish(tri__loop *l, tri__resolve *r) {
  dns_state *d = l->dns;
  r->done = 1;
  if (d != NULL)
    d->ready = 1;
}

#ifdef HAVE_CARES

static pthread_once_t g_ares_once = PTHREAD_ONCE_INIT;
static int g_ares_init;

static void ares_once(void) { g_ares_init = ares_library_init(ARES_LIB_INIT_ALL); }

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
                          int writable) {
  tri__loop *l = data;
  dns_state *d = l->dns;
  int i, free_slot = -1;
  uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);

  for (i = 0; i < DNS_MAX_FDS; i++) {
    if (d->src[i].fd == fd)
      break;
    if (d->src[i].fd < 0 && free_slot < 0)
      free_slot = i;
  }
  if (i == DNS_MAX_FDS) {
    if (ev == 0 || free_slot < 0)
      return; /* over DNS_MAX_FDS: served by the timeout processing */
    i = free_slot;
    d->src[i].fd = fd;
    d->reg[i] = 0;
  }
  tri__loop_ep_set(l, &d->src[i], ev, &d->reg[i]);
  if (ev == 0)
    d->src[i].fd = -1;
}

static void on_answer(void *arg, int status, int timeouts,
                      struct ares_addrinfo *res) {
  tri__resolve *r = arg;
  (void)timeouts;
  ((dns_state *)r->dns)->queries--; /* answered, orphaned or not */
  if (r->l == NULL) { /* cancelled */
    if (res)
      ares_freeaddrinfo(res);
    tri__free(r);
    return;
  }
  tri__loop *l = r->l;
  if (status == ARES_SUCCESS && res != NULL) {
    for (struct ares_addrinfo_node *n = res->nodes; n != NULL; n = n->ai_next)
      add_addr(r, n->ai_addr, (socklen_t)n->ai_addrlen);
  }
  if (r->naddrs == 0)
    snprintf(r->err, sizeof(r->err), "cannot resolve '%s': %s", l->ccfg.target.host,
             status == ARES_SUCCESS ? "no address" : ares_strerror(status));
  if (res)
    ares_freeaddrinfo(res);
  finish(l, r);
}

static int dns_init(tri__loop *l, char *err, size_t errlen) {
  dns_state *d;
  struct ares_options o;
  const char *servers = getenv("TRI_DNS_SERVERS");
  int rv;

  pthread_once(&g_ares_once, ares_once);
  if (g_ares_init != ARES_SUCCESS) {
    snprintf(err, errlen, "c-ares: %s", ares_strerror(g_ares_init));
    return -1;
  }
  d = tri__calloc(1, sizeof(*d));
  if (d == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < DNS_MAX_FDS; i++) {
    d->src[i].kind = TRI__SRC_DNS;
    d->src[i].fd = -1;
  }
  memset(&o, 0, sizeof(o));
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = l;
  o.timeout = 2000; /* ms per try; the connect timeout bounds the total */
  o.tries = 3;
  rv = ares_init_options(&d->ch, &o,
                         ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
                             ARES_OPT_TRIES);
  if (rv == ARES_SUCCESS && servers != NULL && *servers)
    rv = ares_set_servers_ports_csv(d->ch, servers);
  if (rv != ARES_SUCCESS) {
    snprintf(err, errlen, "c-ares: %s", ares_strerror(rv));
    tri__free(d);
    return -1;
  }
  l->dns = d;
  tri__budget_add(TRI__B_RESOLVERS, 1);
  return 0;
}

#endif /* HAVE_CARES */

/* Numeric addresses and Unix sockets at once. */
static int resolve_literal(tri__loop *l, tri__resolve *r) {
  struct addrinfo hints, *res = NULL;
  const tri__target *t = &l->ccfg.target;
  if (t->kind != TRI__T_TCP) {
    struct sockaddr_un un;
    socklen_t len = tri__target_sockaddr_un(t, &un);
    add_addr(r, (struct sockaddr *)&un, len);
    return 0;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  if (getaddrinfo(l->ccfg.target.host, l->ccfg.target.port, &hints, &res) != 0)
    return -1;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
    add_addr(r, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(res);
  return r->naddrs > 0 ? 0 : -1;
}

void tri__resolve_start(tri__loop *l) {
  tri__resolve *r;
  char err[96];

  if (l->resolving != NULL)
    return; /* one at a time */
  r = tri__calloc(1, sizeof(*r));
  if (r == NULL) {
    tri__lb_resolved(l, NULL, NULL, 0, "cannot resolve: out of memory");
    return;
  }
  r->l = l;
  r->deadline = tri__deadline_after_ms(l->ccfg.connect_ms);
  l->resolving = r;
  /* Numeric addresses and Unix sockets need no resolver: a channel to
   * one never creates c-ares state (about 73 KiB per channel). */
  if (resolve_literal(l, r) == 0) {
    finish(l, r);
    return;
  }
  if (l->dns == NULL) {
#ifdef HAVE_CARES
    if (dns_init(l, err, sizeof(err)) != 0) {
      snprintf(r->err, sizeof(r->err), "cannot resolve '%s': %s",
               l->ccfg.target.host, err);
      r->done = 1;
      return; /* no dns state: tri__resolve_next() sees r->done */
    }
#endif
  }
  (void)err;
#ifdef HAVE_CARES
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  ((dns_state *)l->dns)->queries++;
  r->dns = l->dns;
  ares_getaddrinfo(((dns_state *)l->dns)->ch, l->ccfg.target.host, l->ccfg.target.port, &hints,
                   on_answer, r); /* may answer before returning */
#else
  if (strcmp(l->ccfg.target.host, "localhost") == 0) {
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    v4.sin_port = htons((uint16_t)atoi(l->ccfg.target.port));
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    add_addr(r, (struct sockaddr *)&v4, sizeof(v4));
  } else {
    snprintf(r->err, sizeof(r->err),
             "cannot resolve '%s': this build has no DNS resolver "
             "(configure --with-cares)", l->ccfg.target.host);
  }
  finish(l, r);
#endif
}

void tri__resolve_cancel(tri__loop *l) {
  tri__resolve *r = l->resolving;
  if (r == NULL)
    return;
  l->resolving = NULL;
  if (r->done || r->dns == NULL) {
    tri__free(r); /* answered, not yet taken */
    return;
  }
  r->l = NULL; /* on_answer frees it; its query is still driven by
                  tri__resolve_tick() until c-ares answers or times out */
}

/* Destroy the loop's c-ares channel (no resolution of ours waits on it;
 * a cancelled query still in flight is answered by ares_destroy() and
 * freed there).  c-ares calls sock_state_cb while it closes its sockets,
 * so l->dns stays set until it returns. */
static void dns_release(tri__loop *l) {
  dns_state *d = l->dns;
  if (d == NULL)
    return;
#ifdef HAVE_CARES
  ares_destroy(d->ch);
  tri__budget_add(TRI__B_RESOLVERS, -1);
#endif
  tri__free(d);
  l->dns = NULL;
}

static void hand_over(tri__loop *l);

/* Hand a finished query to the channel (lb.c).  Then, once nothing is in
 * flight, the c-ares channel goes too: resolutions are rare (connecting,
 * then at most every RESOLVE_MIN_INTERVAL_MS in lb.c), and a fresh channel
 * for each also re-reads /etc/resolv.conf.  Checked after the hand-over,
 * in the same pass: the loop may sleep long after it (an idle channel
 * whose re-resolution connects nothing). */
void tri__resolve_tick(tri__loop *l) {
  dns_state *d;

  hand_over(l);
  d = l->dns;
  if (d != NULL && l->resolving == NULL && d->queries == 0)
    dns_release(l);
}

static void hand_over(tri__loop *l) {
  dns_state *d = l->dns;
  tri__resolve *r = l->resolving;

#ifdef HAVE_CARES
  if (d != NULL && d->queries > 0)
    ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
#endif
  if (d != NULL)
    d->ready = 0;
  if (r == NULL)
    return;
  if (!r->done && tri__now_ns() >= r->deadline) {
    /* 1.7: the connect timeout bounds the resolution too */
    char msg[400];
    snprintf(msg, sizeof(msg), "cannot resolve '%s': timed out after %lld "
             "ms (tri_channel_opts_set_connect_timeout_ms)",
             l->ccfg.target.host, (long long)l->ccfg.connect_ms);
    tri__resolve_cancel(l);
    tri__lb_resolved(l, NULL, NULL, 0, msg);
    return;
  }
  if (!r->done)
    return;
  l->resolving = NULL;
  if (r->err[0])
    tri__lb_resolved(l, NULL, NULL, 0, r->err);
  else
    tri__lb_resolved(l, r->addrs, r->lens, r->naddrs, NULL);
  tri__free(r);
}

int64_t tri__resolve_next(tri__loop *l, int64_t next) {
  dns_state *d = l->dns;

  if (l->resolving != NULL) {
    if (l->resolving->done)
      return tri__now_ns(); /* answered synchronously: no sleep */
    next = tri__deadline_min(next, l->resolving->deadline);
  }
  if (d == NULL)
    return next;
  if (d->ready)
    return tri__now_ns();
#ifdef HAVE_CARES
  if (d->queries > 0) {
    struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);
    if (tvp != NULL) {
      int64_t t = tri__now_ns() + (int64_t)tvp->tv_sec * 1000000000 +
                  (int64_t)tvp->tv_usec * 1000;
      next = tri__deadline_min(next, t);
    }
  }
#endif
  return next;
}

void tri__resolve_event(tri__loop *l, tri__src *src, uint32_t ev) {
#ifdef HAVE_CARES
  dns_state *d = l->dns;
  if (d == NULL)
    return;
  ares_process_fd(d->ch,
                  (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? src->fd
                                                         : ARES_SOCKET_BAD,
                  (ev & EPOLLOUT) ? src->fd : ARES_SOCKET_BAD);
#else
  (void)l;
  (void)src;
  (void)ev;
#endif
}

void tri__resolve_free(tri__loop *l) {
  tri__resolve_cancel(l);
  dns_release(l); /* pending answers are called back: they free */
}
