/*
 * Client load balancing and connectivity (doc/DESIGN.md "Channels and
 * subchannels", doc/PROTOCOL.md 17):
 *
 *   - the channel's address list: resolved (DNS, re-resolved on
 *     connection loss at most every 30 s), static (ipv4:/ipv6:/unix:) or
 *     posted by a registry watch (ZooKeeper); one entry point,
 *     update_addrs(), for all of them;
 *   - subchannels: pick_first has one, over all addresses in order;
 *     round_robin one per address.  Each has a connectivity state and
 *     gRPC's connection backoff between failed attempts;
 *   - the channel's aggregated state, published under lb->st_mu for
 *     tri_channel_state() / tri_channel_wait_state_change();
 *   - picking a READY connection for a new stream, or holding it in the
 *     pending list (wait-for-ready, or while connecting), or failing it
 *     fast in TRANSIENT_FAILURE.
 *
 * Threads: everything but the tri__lb_state/wait/shutdown/post functions
 * runs on the loop's I/O thread.  lb->st_mu and lb->post_mu are leaves:
 * no other lock is taken while holding them, and the I/O thread holds
 * them only to copy a few fields.
 */
#include "tri_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conn.h"

#define RESOLVE_MIN_INTERVAL_MS 30000 /* naming: re-resolve at most every */
#define BACKOFF_MULTIPLIER 1.6        /* connection-backoff.md */
#define BACKOFF_JITTER 0.2

typedef struct tri__subch {
  tri__list link;                  /* lb->subs */
  struct tri__lb *lb;
  struct sockaddr_storage *addrs;  /* pick_first: all, round_robin: one */
  socklen_t *lens;
  int naddrs;
  char name[320];                  /* for messages */
  int state;                       /* TRI_CHANNEL_* */
  tri__conn *conn;                 /* current attempt or connection */
  /* connection backoff: the current backoff (0: the next attempt is a
   * first one) and the deadline of the current attempt's backoff */
  int64_t backoff_ns;
  int64_t deadline_ns;
  int64_t ready_backoff_ns;        /* backoff_ns when it last got READY */
  int unused_streak;               /* connections in a row gone unused
                                      (went_unused) ... */
  int64_t unused_at_ns;            /* ... the last of them then */
  int64_t retry_at_ns;             /* TRANSIENT_FAILURE: next attempt, 0 */
  char err[512];                   /* why the last attempt failed */
} tri__subch;

typedef struct tri__lb {
  tri__loop *l;
  tri__list subs;
  int nsubs;
  tri__list pending;               /* streams (io_link) without a conn */
  unsigned rr_next;
  int kicked;                      /* left IDLE once: connect on demand */
  int requeued;                    /* pending grew since serve_pending */
  /* the address list's source */
  int have_addrs;
  int64_t res_last_ns;             /* last resolution started (0 never) */
  int64_t res_retry_ns;            /* after a failed resolution */
  int64_t res_backoff_ns;
  int res_wanted;                  /* re-resolve when allowed */
  char res_err[512];               /* the source's failure, "" none */
  /* posted lists (post_mu, a leaf) */
  tri__mutex post_mu;
  struct sockaddr_storage *posted;
  socklen_t *posted_lens;
  int nposted, posted_set;
  char posted_err[512];
  /* the state as the I/O thread last computed it (I/O thread only) */
  int cur;
  char cur_err[512];
  /* published state (st_mu, a leaf) */
  tri__mutex st_mu;
  tri__cond st_cv;
  int st;                          /* TRI_CHANNEL_* */
  int waiters;
  int closing;
  /* keepalive interval for new connections: doubled after GOAWAY
   * ENHANCE_YOUR_CALM "too_many_pings" (A8) */
  int64_t ka_ms;
} tri__lb;

static void publish(tri__lb *lb);
static void sub_connect(tri__subch *sub);

/* ---- helpers ------------------------------------------------------------ */

static int addr_eq(const struct sockaddr_storage *a, socklen_t al,
                   const struct sockaddr_storage *b, socklen_t bl) {
  return al == bl && memcmp(a, b, al) == 0;
}

static uint64_t rng_next(void) {
  static __thread uint64_t x;
  if (x == 0)
    x = (uint64_t)tri__now_ns() ^ (uint64_t)(uintptr_t)&x;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

/* The backoff after |cur|: MULTIPLIER times longer, at most |max|.  The
 * comparison is made in double and >= so that the conversion back is
 * always in range (2^63, the double nearest INT64_MAX, is not). */
static int64_t backoff_grow(int64_t cur, int64_t max) {
  double b = (double)cur * BACKOFF_MULTIPLIER;
  return b >= (double)max ? max : (int64_t)b;
}

/* uniform in [-1, 1] */
static double rng_unit(void) {
  return (double)(rng_next() >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static int conn_usable(const tri__conn *c) {
  return c != NULL && c->phase == TRI__CONN_READY && !c->goaway &&
         c->sub != NULL;
}

/* ---- subchannels -------------------------------------------------------- */

static tri__subch *sub_new(tri__lb *lb, const struct sockaddr_storage *addrs,
                           const socklen_t *lens, int n) {
  tri__subch *sub = tri__calloc(1, sizeof(*sub));
  if (sub == NULL)
    return NULL;
  sub->addrs = tri__calloc((size_t)n, sizeof(*sub->addrs));
  sub->lens = tri__calloc((size_t)n, sizeof(*sub->lens));
  if (sub->addrs == NULL || sub->lens == NULL) {
    tri__free(sub->addrs);
    tri__free(sub->lens);
    tri__free(sub);
    return NULL;
  }
  memcpy(sub->addrs, addrs, (size_t)n * sizeof(*addrs));
  memcpy(sub->lens, lens, (size_t)n * sizeof(*lens));
  sub->naddrs = n;
  sub->lb = lb;
  sub->state = TRI_CHANNEL_IDLE;
  if (lb->l->ccfg.round_robin)
    tri__sockaddr_str(&addrs[0], lens[0], sub->name, sizeof(sub->name));
  else
    snprintf(sub->name, sizeof(sub->name), "%s", lb->l->ccfg.target.where);
  tri__list_insert_tail(&lb->subs, &sub->link);
  lb->nsubs++;
  return sub;
}

/* The connection no longer belongs to a subchannel: no new streams; the
 * ones waiting for a slot go back to the pending list; client_tick closes
 * it when its last stream ends (a drain). */
static void conn_orphan(tri__conn *c) {
  tri__loop *l = c->loop;
  c->sub = NULL;
  c->goaway = 1;
  while (!tri__list_empty(&c->waiting)) {
    tri_stream *s = tri__container_of(c->waiting.next, tri_stream, io_link);
    tri__list_remove(&s->io_link);
    tri__lb_requeue(l, s);
  }
}

static void sub_free(tri__subch *sub) {
  tri__lb *lb = sub->lb;
  if (sub->conn != NULL)
    conn_orphan(sub->conn);
  sub->conn = NULL;
  tri__list_remove(&sub->link);
  lb->nsubs--;
  tri__free(sub->addrs);
  tri__free(sub->lens);
  tri__free(sub);
}

/* Start an attempt (IDLE, or TRANSIENT_FAILURE whose backoff ran out).
 * connection-backoff.md: the first attempt's backoff deadline is start +
 * INITIAL_BACKOFF; each next one grows by MULTIPLIER up to MAX_BACKOFF,
 * with +-JITTER, measured from the start of that attempt. */
static void sub_connect(tri__subch *sub) {
  tri__lb *lb = sub->lb;
  tri__loop *l = lb->l;
  int64_t now = tri__now_ns();
  int64_t init = tri__ms_to_ns(l->ccfg.backoff_initial_ms);
  int64_t max = tri__ms_to_ns(l->ccfg.backoff_max_ms);

  if (sub->conn != NULL || l->tearing_down)
    return;
  if (sub->backoff_ns == 0) {
    sub->backoff_ns = init;
    sub->deadline_ns = tri__deadline_add(now, init);
  } else {
    int64_t j;
    sub->backoff_ns = backoff_grow(sub->backoff_ns, max);
    j = (int64_t)(BACKOFF_JITTER * rng_unit() * (double)sub->backoff_ns);
    /* Saturating: a backoff of centuries must not wrap into the past
     * (a retry at once, for ever). */
    sub->deadline_ns = tri__deadline_add(
        now, j > 0 ? tri__deadline_add(sub->backoff_ns, j)
                   : sub->backoff_ns + j);
  }
  sub->retry_at_ns = 0;
  tri__conn *c = tri__conn_new(l, -1, 0);
  if (c == NULL) {
    snprintf(sub->err, sizeof(sub->err), "out of memory creating a "
             "connection to %s", sub->name);
    sub->state = TRI_CHANNEL_TRANSIENT_FAILURE;
    sub->retry_at_ns = sub->deadline_ns;
    publish(lb);
    return;
  }
  c->addrs = tri__calloc((size_t)sub->naddrs, sizeof(*c->addrs));
  c->addr_lens = tri__calloc((size_t)sub->naddrs, sizeof(*c->addr_lens));
  if (c->addrs != NULL && c->addr_lens != NULL) {
    memcpy(c->addrs, sub->addrs, (size_t)sub->naddrs * sizeof(*c->addrs));
    memcpy(c->addr_lens, sub->lens,
           (size_t)sub->naddrs * sizeof(*c->addr_lens));
    c->naddrs = sub->naddrs;
  }
  c->sub = sub;
  c->ka_ms = lb->ka_ms;
  sub->conn = c;
  /* "Sticky" TRANSIENT_FAILURE: a retry does not report CONNECTING, so
   * calls keep failing fast until a connection is READY. */
  if (sub->state != TRI_CHANNEL_TRANSIENT_FAILURE)
    sub->state = TRI_CHANNEL_CONNECTING;
  publish(lb);
  tri__client_connect(c); /* may close c at once: tri__lb_conn_closed */
}

/* Addresses of the subchannel's connection in use (pick_first keeps a
 * READY connection whose address is still listed). */
static int list_has(const struct sockaddr_storage *addrs,
                    const socklen_t *lens, int n,
                    const struct sockaddr_storage *a, socklen_t al) {
  for (int i = 0; i < n; i++)
    if (addr_eq(&addrs[i], lens[i], a, al))
      return 1;
  return 0;
}

/* ---- the address list --------------------------------------------------- */

static int demand(const tri__lb *lb) {
  return lb->kicked;
}

static void update_addrs(tri__lb *lb, const struct sockaddr_storage *addrs,
                         const socklen_t *lens, int n) {
  tri__loop *l = lb->l;
  tri__list *it, *nx;

  lb->have_addrs = 1;
  lb->res_err[0] = '\0';
  if (!l->ccfg.round_robin) {
    tri__subch *old = lb->nsubs ? tri__container_of(lb->subs.next,
                                                    tri__subch, link)
                                : NULL;
    if (old != NULL) {
      int same = old->naddrs == n;
      for (int i = 0; same && i < n; i++)
        same = addr_eq(&old->addrs[i], old->lens[i], &addrs[i], lens[i]);
      if (same)
        return;
      tri__conn *c = old->conn;
      if (c != NULL && c->phase == TRI__CONN_READY && c->next_addr > 0 &&
          list_has(addrs, lens, n, &c->addrs[c->next_addr - 1],
                   c->addr_lens[c->next_addr - 1])) {
        /* still listed: keep the connection, take the new list for the
         * next reconnect */
        tri__subch *nsub = sub_new(lb, addrs, lens, n);
        if (nsub == NULL)
          return;
        tri__list_remove(&nsub->link);
        tri__list_insert_tail(lb->subs.next, &nsub->link); /* first */
        nsub->conn = c;
        nsub->state = old->state;
        c->sub = nsub;
        old->conn = NULL;
        sub_free(old);
        publish(lb);
        return;
      }
      sub_free(old);
    }
    if (n > 0) {
      tri__subch *sub = sub_new(lb, addrs, lens, n);
      if (sub != NULL && demand(lb))
        sub_connect(sub);
    }
    publish(lb);
    return;
  }
  /* round_robin: keep the subchannels of addresses still listed, drain
   * the others, add the new ones. */
  for (it = lb->subs.next; it != &lb->subs; it = nx) {
    tri__subch *sub = tri__container_of(it, tri__subch, link);
    nx = it->next;
    if (!list_has(addrs, lens, n, &sub->addrs[0], sub->lens[0]))
      sub_free(sub);
  }
  for (int i = 0; i < n; i++) {
    int found = 0;
    for (it = lb->subs.next; it != &lb->subs && !found; it = it->next) {
      tri__subch *sub = tri__container_of(it, tri__subch, link);
      found = addr_eq(&sub->addrs[0], sub->lens[0], &addrs[i], lens[i]);
    }
    if (found || list_has(addrs, lens, i, &addrs[i], lens[i]))
      continue; /* kept, or a duplicate in the list */
    tri__subch *sub = sub_new(lb, &addrs[i], &lens[i], 1);
    if (sub != NULL && demand(lb))
      sub_connect(sub);
  }
  publish(lb);
}

static int target_resolves(const tri__loop *l) {
  return l->ccfg.target.kind == TRI__T_TCP;
}

static void start_resolve(tri__lb *lb) {
  lb->res_last_ns = tri__now_ns();
  lb->res_wanted = 0;
  tri__resolve_start(lb->l);
  publish(lb);
}

void tri__lb_resolved(tri__loop *l, const struct sockaddr_storage *addrs,
                      const socklen_t *lens, int n, const char *err) {
  tri__lb *lb = l->lb;
  if (n == 0) {
    /* Keep using the addresses we had (naming: a failed re-resolution
     * does not drop working connections); retry with backoff. */
    int64_t init = tri__ms_to_ns(l->ccfg.backoff_initial_ms);
    int64_t max = tri__ms_to_ns(l->ccfg.backoff_max_ms);
    lb->res_backoff_ns = lb->res_backoff_ns == 0
                             ? init
                             : backoff_grow(lb->res_backoff_ns, max);
    lb->res_retry_ns = tri__deadline_add(tri__now_ns(), lb->res_backoff_ns);
    if (!lb->have_addrs || lb->nsubs == 0) {
      snprintf(lb->res_err, sizeof(lb->res_err), "%s",
               err ? err : "no address");
      lb->res_wanted = 1;
    }
    publish(lb);
    return;
  }
  lb->res_backoff_ns = 0;
  lb->res_retry_ns = 0;
  update_addrs(lb, addrs, lens, n);
}

/* ---- picking ------------------------------------------------------------ */

static tri__conn *pick(tri__lb *lb) {
  tri__list *it;
  if (lb->nsubs == 0)
    return NULL;
  if (!lb->l->ccfg.round_robin) {
    tri__subch *sub = tri__container_of(lb->subs.next, tri__subch, link);
    return sub->state == TRI_CHANNEL_READY && conn_usable(sub->conn)
               ? sub->conn
               : NULL;
  }
  /* round_robin: the next READY subchannel after the last pick */
  unsigned start = lb->rr_next % (unsigned)lb->nsubs, i = 0;
  for (int pass = 0; pass < 2; pass++) {
    i = 0;
    for (it = lb->subs.next; it != &lb->subs; it = it->next, i++) {
      tri__subch *sub = tri__container_of(it, tri__subch, link);
      if ((pass == 0 && i < start) || (pass == 1 && i >= start))
        continue;
      if (sub->state == TRI_CHANNEL_READY && conn_usable(sub->conn)) {
        lb->rr_next = i + 1;
        return sub->conn;
      }
    }
  }
  return NULL;
}

static void fail_stream(tri__loop *l, tri_stream *s, const char *msg) {
  tri__io_end(s, TRI_UNAVAILABLE, msg, 0, TRI__END_NONE);
  tri__conn_detach(l, s);
}

/* Place pending streams on READY connections; in TRANSIENT_FAILURE fail
 * those that do not wait for ready. */
static void serve_pending(tri__lb *lb) {
  tri__loop *l = lb->l;
  for (int guard = 0; guard < 1000000 && !tri__list_empty(&lb->pending);
       guard++) {
    tri__conn *c = pick(lb);
    if (c == NULL)
      break;
    tri_stream *s = tri__container_of(lb->pending.next, tri_stream,
                                      io_link);
    tri__list_remove(&s->io_link);
    tri__client_attach(c, s);
  }
  if (lb->cur == TRI_CHANNEL_TRANSIENT_FAILURE) {
    tri__list *it, *nx;
    for (it = lb->pending.next; it != &lb->pending; it = nx) {
      tri_stream *s = tri__container_of(it, tri_stream, io_link);
      nx = it->next;
      if (!s->wait_for_ready)
        fail_stream(l, s, lb->cur_err);
    }
  }
}

static void kick(tri__lb *lb) {
  tri__loop *l = lb->l;
  tri__list *it;
  lb->kicked = 1;
  if (lb->nsubs == 0) {
    if (target_resolves(l) && l->resolving == NULL &&
        tri__now_ns() >= lb->res_retry_ns)
      start_resolve(lb);
    publish(lb);
    return;
  }
  for (it = lb->subs.next; it != &lb->subs; it = it->next) {
    tri__subch *sub = tri__container_of(it, tri__subch, link);
    if (sub->state == TRI_CHANNEL_IDLE && sub->conn == NULL)
      sub_connect(sub);
    if (!l->ccfg.round_robin)
      break;
  }
  publish(lb);
}

void tri__lb_requeue(tri__loop *l, tri_stream *s) {
  s->conn = NULL;
  s->io_state = TRI__IO_WAITING;
  tri__list_insert_tail(&l->lb->pending, &s->io_link);
  l->lb->requeued = 1;
}

int tri__lb_requeued(const tri__loop *l) {
  return l->lb != NULL && l->lb->requeued;
}

void tri__lb_open(tri__loop *l, tri_stream *s) {
  tri__lb *lb = l->lb;
  tri__conn *c = pick(lb);
  if (c != NULL) {
    tri__client_attach(c, s);
    return;
  }
  if (lb->cur == TRI_CHANNEL_TRANSIENT_FAILURE && !s->wait_for_ready) {
    fail_stream(l, s, lb->cur_err); /* fail fast (wait-for-ready off) */
    return;
  }
  tri__lb_requeue(l, s);
  kick(lb); /* IDLE: connect on demand */
}

/* ---- connection events -------------------------------------------------- */

void tri__lb_conn_ready(tri__conn *c) {
  tri__subch *sub = c->sub;
  if (sub == NULL)
    return;
  sub->state = TRI_CHANNEL_READY;
  sub->ready_backoff_ns = sub->backoff_ns; /* went_unused() restores it */
  sub->backoff_ns = 0; /* the next failure starts from INITIAL_BACKOFF */
  c->ready_ns = tri__now_ns();
  sub->retry_at_ns = 0;
  sub->err[0] = '\0';
  publish(sub->lb);
}

/* A connection that got READY and goes away (GOAWAY or closed) within
 * UNUSED_READY_MS without having carried a single stream while streams
 * waited for it (or round_robin, which reconnects at once anyway): a
 * server that sends its SETTINGS and a GOAWAY at once, or closes right
 * after its SETTINGS.  Taken as a READY connection lost each time, it
 * would reconnect at once with the backoff reset, thousands of times a
 * second, and the streams waiting would never be placed (a call without
 * deadline would never end).  Once may be a server that is draining or
 * restarting (behind one address, the next connection may well reach a
 * healthy one): that is an ordinary READY -> IDLE, reconnecting at once.
 * The second in a row counts as a failed attempt: the backoff goes on
 * from the value this attempt had (INITIAL_BACKOFF for the first, then
 * growing), the subchannel is in TRANSIENT_FAILURE (calls that do not
 * wait for ready fail UNAVAILABLE with the caller's sub->err).  1 then,
 * else 0 and nothing changed but the streak.  A connection that
 * carried a stream, or lived longer, or went while nothing waited, ends
 * the streak, and so does UNUSED_STREAK_MS without such a connection. */
#define UNUSED_READY_MS 1000
#define UNUSED_STREAK_MS 10000
static int went_unused(tri__conn *c, tri__subch *sub) {
  tri__lb *lb = sub->lb;
  int64_t now = tri__now_ns();
  if (c->carried || c->ready_ns == 0 ||
      now - c->ready_ns >= tri__ms_to_ns(UNUSED_READY_MS) ||
      (tri__list_empty(&lb->pending) && tri__list_empty(&c->waiting) &&
       !c->loop->ccfg.round_robin)) {
    /* used, or lived, or nothing waited (and nothing reconnects: no
     * storm): an ordinary READY -> IDLE */
    sub->unused_streak = 0;
    return 0;
  }
  if (sub->unused_streak > 0 &&
      now - sub->unused_at_ns >= tri__ms_to_ns(UNUSED_STREAK_MS))
    sub->unused_streak = 0; /* long ago: a drain now is a first one */
  sub->unused_at_ns = now;
  if (++sub->unused_streak < 2)
    return 0;
  sub->backoff_ns = sub->ready_backoff_ns;
  sub->state = TRI_CHANNEL_TRANSIENT_FAILURE;
  sub->retry_at_ns = sub->deadline_ns > now ? sub->deadline_ns : now;
  return 1;
}

void tri__lb_conn_goaway(tri__conn *c, uint32_t code, const uint8_t *data,
                         size_t len) {
  tri__lb *lb = c->loop->lb;
  tri__subch *sub = c->sub;
  if (code == NGHTTP2_ENHANCE_YOUR_CALM && len == 14 &&
      memcmp(data, "too_many_pings", 14) == 0 && lb->ka_ms > 0 &&
      lb->ka_ms != INT64_MAX) {
    /* A8: the server thinks we ping too often: double the interval for
     * new connections. */
    lb->ka_ms = lb->ka_ms > INT64_MAX / 2 ? INT64_MAX : lb->ka_ms * 2;
  }
  if (sub == NULL || c->phase != TRI__CONN_READY)
    return; /* not READY yet: the attempt fails when the server closes */
  /* The connection drains its streams; the subchannel is IDLE and
   * reconnects on demand (connectivity-semantics: READY -> IDLE). */
  sub->conn = NULL;
  conn_orphan(c);
  lb->res_wanted = 1;
  if (went_unused(c, sub)) {
    snprintf(sub->err, sizeof(sub->err),
             "server sent GOAWAY (HTTP/2 error %u) before any stream", code);
    publish(lb);
    return;
  }
  sub->state = TRI_CHANNEL_IDLE;
  if (c->loop->ccfg.round_robin || !tri__list_empty(&lb->pending))
    sub_connect(sub);
  publish(lb);
}

void tri__lb_conn_closed(tri__conn *c, int was_ready, const char *why) {
  tri__lb *lb = c->loop->lb;
  tri__subch *sub = c->sub;
  if (sub == NULL || lb == NULL)
    return;
  c->sub = NULL;
  sub->conn = NULL;
  lb->res_wanted = 1; /* naming: re-resolve on connection loss */
  if (c->loop->tearing_down)
    return;
  if (was_ready && went_unused(c, sub)) {
    /* closed right after its SETTINGS: a failed attempt */
    snprintf(sub->err, sizeof(sub->err), "%.480s before any stream", why);
  } else if (was_ready) {
    sub->state = TRI_CHANNEL_IDLE;
    sub->backoff_ns = 0;
    if (c->loop->ccfg.round_robin || !tri__list_empty(&lb->pending))
      sub_connect(sub);
  } else {
    snprintf(sub->err, sizeof(sub->err), "%s", why);
    sub->state = TRI_CHANNEL_TRANSIENT_FAILURE;
    int64_t now = tri__now_ns();
    sub->retry_at_ns = sub->deadline_ns > now ? sub->deadline_ns : now;
  }
  publish(lb);
}

const char *tri__lb_sub_name(const tri__subch *sub) { return sub->name; }

int tri__lb_permit_without_calls(const tri__loop *l) {
  return l->ccfg.keepalive_permit_without_calls;
}

/* ---- the loop ----------------------------------------------------------- */

void tri__lb_tick(tri__loop *l, int64_t now, int64_t *next) {
  tri__lb *lb = l->lb;
  tri__list *it, *nx;

  if (lb == NULL)
    return;
  if (target_resolves(l) && l->resolving == NULL && lb->kicked) {
    int64_t at = -1;
    if (lb->res_err[0] || (!lb->have_addrs && lb->res_last_ns != 0))
      at = lb->res_retry_ns; /* failed: backoff */
    else if (lb->res_wanted)
      at = lb->res_last_ns + tri__ms_to_ns(RESOLVE_MIN_INTERVAL_MS);
    if (at >= 0) {
      if (now >= at)
        start_resolve(lb);
      else
        *next = tri__deadline_min(*next, at);
    }
  }
  for (it = lb->subs.next; it != &lb->subs; it = nx) {
    tri__subch *sub = tri__container_of(it, tri__subch, link);
    nx = it->next;
    if (sub->state == TRI_CHANNEL_TRANSIENT_FAILURE && sub->conn == NULL &&
        sub->retry_at_ns != 0) {
      if (now >= sub->retry_at_ns)
        sub_connect(sub);
      else
        *next = tri__deadline_min(*next, sub->retry_at_ns);
    } else if (sub->state == TRI_CHANNEL_IDLE && sub->conn == NULL &&
               lb->kicked &&
               (l->ccfg.round_robin || !tri__list_empty(&lb->pending))) {
      sub_connect(sub);
    }
  }
  if (!tri__list_empty(&lb->pending))
    serve_pending(lb);
  lb->requeued = 0; /* what is still pending waits for a connection */
}

static int parse_host_port(const char *hp, struct sockaddr_storage *ss,
                           socklen_t *len) {
  char host[INET6_ADDRSTRLEN + 2];
  const char *colon = strrchr(hp, ':');
  const char *hs = hp, *he;
  char *end;
  long port;

  if (colon == NULL)
    return -1;
  he = colon;
  if (hp[0] == '[') {
    hs = hp + 1;
    he = colon > hp && colon[-1] == ']' ? colon - 1 : NULL;
    if (he == NULL)
      return -1;
  }
  if (he <= hs || (size_t)(he - hs) >= sizeof(host))
    return -1;
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return -1;
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    return 0;
  }
  memset(ss, 0, sizeof(*ss));
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a6);
    return 0;
  }
  return -1;
}

void tri__lb_post_addrs(tri__loop *l, const char *const *hp, size_t n,
                        const char *empty_msg) {
  tri__lb *lb = l->lb;
  struct sockaddr_storage *a = NULL;
  socklen_t *lens = NULL;
  int m = 0;

  if (n > TRI__MAX_ADDRS)
    n = TRI__MAX_ADDRS;
  if (n > 0) {
    a = tri__calloc(n, sizeof(*a));
    lens = tri__calloc(n, sizeof(*lens));
    if (a == NULL || lens == NULL) {
      tri__free(a);
      tri__free(lens);
      return; /* keep the previous list */
    }
    for (size_t i = 0; i < n; i++)
      if (hp[i] != NULL && parse_host_port(hp[i], &a[m], &lens[m]) == 0)
        m++;
  }
  tri__mutex_lock(&lb->post_mu);
  tri__free(lb->posted);
  tri__free(lb->posted_lens);
  lb->posted = a;
  lb->posted_lens = lens;
  lb->nposted = m;
  lb->posted_set = 1;
  snprintf(lb->posted_err, sizeof(lb->posted_err), "%s",
           empty_msg ? empty_msg : "the address list is empty");
  tri__mutex_unlock(&lb->post_mu);
  tri__loop_post(l, TRI__LOOP_ADDRS);
}

void tri__lb_loop_ops(tri__loop *l, unsigned ops) {
  tri__lb *lb = l->lb;
  if (lb == NULL)
    return;
  if (ops & TRI__LOOP_ADDRS) {
    struct sockaddr_storage *a;
    socklen_t *lens;
    int n, set;
    char err[512];
    tri__mutex_lock(&lb->post_mu);
    a = lb->posted;
    lens = lb->posted_lens;
    n = lb->nposted;
    set = lb->posted_set;
    snprintf(err, sizeof(err), "%s", lb->posted_err);
    lb->posted = NULL;
    lb->posted_lens = NULL;
    lb->posted_set = 0;
    tri__mutex_unlock(&lb->post_mu);
    if (set) {
      if (n > 0) {
        update_addrs(lb, a, lens, n);
      } else {
        /* an empty provider list: nothing to connect to */
        tri__list *it, *nx;
        for (it = lb->subs.next; it != &lb->subs; it = nx) {
          nx = it->next;
          sub_free(tri__container_of(it, tri__subch, link));
        }
        lb->have_addrs = 0;
        snprintf(lb->res_err, sizeof(lb->res_err), "%s", err);
        publish(lb);
      }
    }
    tri__free(a);
    tri__free(lens);
  }
  if (ops & TRI__LOOP_CONNECT)
    kick(lb);
}

/* ---- the channel's state ------------------------------------------------- */

/* connectivity-semantics-and-api.md and the LB policies' aggregation:
 * pick_first reports its subchannel's state; round_robin READY if any is
 * READY, else CONNECTING if any connects, else IDLE if any is idle, else
 * TRANSIENT_FAILURE. */
static int aggregate(tri__lb *lb, const char **err) {
  tri__list *it;
  int any[5] = {0, 0, 0, 0, 0};
  const char *e = NULL;

  *err = "";
  if (lb->nsubs == 0) {
    if (lb->res_err[0]) {
      *err = lb->res_err;
      return TRI_CHANNEL_TRANSIENT_FAILURE;
    }
    return lb->kicked ? TRI_CHANNEL_CONNECTING : TRI_CHANNEL_IDLE;
  }
  for (it = lb->subs.next; it != &lb->subs; it = it->next) {
    tri__subch *sub = tri__container_of(it, tri__subch, link);
    any[sub->state] = 1;
    if (sub->state == TRI_CHANNEL_TRANSIENT_FAILURE && e == NULL)
      e = sub->err;
    if (!lb->l->ccfg.round_robin)
      break;
  }
  if (any[TRI_CHANNEL_READY])
    return TRI_CHANNEL_READY;
  if (any[TRI_CHANNEL_CONNECTING])
    return TRI_CHANNEL_CONNECTING;
  if (any[TRI_CHANNEL_IDLE])
    return TRI_CHANNEL_IDLE;
  *err = e ? e : "";
  return TRI_CHANNEL_TRANSIENT_FAILURE;
}

static void publish(tri__lb *lb) {
  const char *err;
  int st = aggregate(lb, &err);

  if (st == lb->cur && strcmp(err, lb->cur_err) == 0)
    return;
  lb->cur = st;
  snprintf(lb->cur_err, sizeof(lb->cur_err), "%s", err);
  tri__mutex_lock(&lb->st_mu);
  if (!lb->closing) {
    if (st != lb->st)
      tri__cond_broadcast(&lb->st_cv);
    lb->st = st;
  }
  tri__mutex_unlock(&lb->st_mu);
  if (st == TRI_CHANNEL_TRANSIENT_FAILURE)
    serve_pending(lb); /* fails the ones that do not wait for ready */
}

int tri__lb_state(tri__loop *l, int try_to_connect) {
  tri__lb *lb = l->lb;
  int st;
  tri__mutex_lock(&lb->st_mu);
  st = lb->st;
  tri__mutex_unlock(&lb->st_mu);
  if (try_to_connect && st == TRI_CHANNEL_IDLE)
    tri__loop_post(l, TRI__LOOP_CONNECT);
  return st;
}

int tri__lb_wait_change(tri__loop *l, int last, int64_t timeout_ms) {
  tri__lb *lb = l->lb;
  int64_t dl = timeout_ms < 0 ? TRI__NO_DEADLINE
                              : tri__deadline_after_ms(timeout_ms);
  int rv = TRI_OK;

  tri__mutex_lock(&lb->st_mu);
  lb->waiters++;
  while (lb->st == last && !lb->closing) {
    if (tri__cond_wait_until(&lb->st_cv, &lb->st_mu, dl) != 0 &&
        tri__now_ns() >= dl) {
      rv = lb->st == last ? TRI_DEADLINE_EXCEEDED : TRI_OK;
      break;
    }
  }
  if (lb->closing && last == TRI_CHANNEL_SHUTDOWN)
    rv = TRI_UNAVAILABLE; /* SHUTDOWN never changes */
  lb->waiters--;
  if (lb->closing && lb->waiters == 0)
    tri__cond_broadcast(&lb->st_cv); /* tri__lb_shutdown waits for this */
  tri__mutex_unlock(&lb->st_mu);
  return rv;
}

void tri__lb_shutdown(tri__loop *l) {
  tri__lb *lb = l->lb;
  tri__mutex_lock(&lb->st_mu);
  lb->closing = 1;
  lb->st = TRI_CHANNEL_SHUTDOWN;
  tri__cond_broadcast(&lb->st_cv);
  for (int guard = 0; lb->waiters > 0 && guard < 1000000; guard++)
    tri__cond_wait(&lb->st_cv, &lb->st_mu);
  tri__mutex_unlock(&lb->st_mu);
}

void tri__lb_teardown(tri__loop *l) {
  tri__lb *lb = l->lb;
  if (lb == NULL)
    return;
  while (!tri__list_empty(&lb->pending)) {
    tri_stream *s = tri__container_of(lb->pending.next, tri_stream, io_link);
    tri__io_end(s, TRI_CANCELLED, "channel closed", 1, TRI__END_NONE);
    tri__conn_detach(l, s);
  }
}

/* ---- creation ------------------------------------------------------------ */

int tri__lb_new(tri__loop *l) {
  tri__lb *lb = tri__calloc(1, sizeof(*lb));
  if (lb == NULL)
    return -1;
  lb->l = l;
  tri__list_init(&lb->subs);
  tri__list_init(&lb->pending);
  tri__mutex_init(&lb->post_mu);
  tri__mutex_init(&lb->st_mu);
  tri__cond_init(&lb->st_cv);
  lb->st = TRI_CHANNEL_IDLE;
  lb->cur = TRI_CHANNEL_IDLE;
  lb->ka_ms = l->ccfg.keepalive_ms;
  l->lb = lb;
  const tri__target *t = &l->ccfg.target;
  if (t->kind == TRI__T_LIST) {
    update_addrs(lb, t->addrs, t->addr_lens, t->naddrs);
  } else if (t->kind == TRI__T_UNIX || t->kind == TRI__T_ABSTRACT) {
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    len = tri__target_sockaddr_un(t, (struct sockaddr_un *)&ss);
    update_addrs(lb, &ss, &len, 1);
  }
  return 0;
}

void tri__lb_free(tri__loop *l) {
  tri__lb *lb = l->lb;
  if (lb == NULL)
    return;
  while (!tri__list_empty(&lb->subs))
    sub_free(tri__container_of(lb->subs.next, tri__subch, link));
  tri__free(lb->posted);
  tri__free(lb->posted_lens);
  tri__mutex_destroy(&lb->post_mu);
  tri__mutex_destroy(&lb->st_mu);
  tri__cond_destroy(&lb->st_cv);
  tri__free(lb);
  l->lb = NULL;
}
