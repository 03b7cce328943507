/*
 * The event loops and their threads.  A loop (a channel's or a server's)
 * runs on one "tri-io" thread (tri__rx), which owns every socket and
 * nghttp2 session of its loops: a thread of its own, or a thread of a
 * tri_io_group that several channels share (conn.h, doc/DESIGN.md).
 * Callers reach a loop through the op queue: per-stream op bits
 * (TRI__OP_*) queued on loop->ops under loop->cmd_mu plus the thread's
 * wake-up fd (wakeup.c); posting never allocates.
 *
 * Threads: rx_main() and everything it calls run on the I/O thread.
 * tri__stream_unlock_post(), tri__loop_open(), tri__loop_stop(),
 * tri__loop_drain(), tri__loop_nstreams(), loop creation/join and the
 * tri_io_group functions run on caller threads.
 *
 * Lock order: stream.mu -> loop.cmd_mu -> rx.mu (core.h).
 */
#include "tri_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "budget.h"
#include "conn.h"

#define MAX_EVENTS 64

/* The thread this is, when it is an I/O thread (NULL elsewhere). */
static __thread tri__rx *io_rx;

/* ---- wake-ups held until the end of an iteration ---------------------- */

int tri__loop_defer_wake(tri_stream *s, unsigned which) {
  tri__rx *rx = io_rx;
  /* Only receivers: a sender waiting for ring space is woken at once, so
   * it refills the ring while this thread is still writing. */
  if (rx == NULL || s->loop == NULL || s->loop->rx != rx ||
      (which & TRI__WAKE_SND))
    return 0;
  if (s->wake_bits == 0) {
    tri__stream_ref(s);
    tri__list_insert_tail(&rx->wakes, &s->wake_link);
  }
  s->wake_bits |= which;
  return 1;
}

int tri__loop_defer_kick(struct tri_server *srv) {
  tri__rx *rx = io_rx;
  if (rx == NULL || rx->srv != srv)
    return 0;
  rx->pool_kicks++;
  return 1;
}

/* When the workers for dispatched streams are signalled (rx->kick_state).
 * Signalling a sleeping worker costs the I/O thread a futex wake-up
 * (about 9 % of its time with 1000 busy connections, perf).  An epoll
 * batch with events on several sockets signals once at its first
 * dispatch, so a handler starts as early as before, and once more at its
 * end for what the batch queued meanwhile.  Between the two, workers
 * that take a stream while more are queued wake each other (server.c,
 * worker_main) on their own CPU; a stream queued after that chain
 * stopped waits for the end of the batch.  A batch with one socket (one
 * busy connection, perhaps with the wake-up fd) kicks after each
 * chunk. */
enum { KICK_NOW = 0, KICK_FIRST, KICK_AT_END };

static void kick_workers(tri__rx *rx) {
  if (rx->pool_kicks == 0 || rx->kick_state == KICK_AT_END)
    return;
  unsigned n = rx->pool_kicks;
  rx->pool_kicks = 0;
  if (rx->kick_state == KICK_FIRST)
    rx->kick_state = KICK_AT_END;
  tri__server_kick(rx->srv, n);
}

/* After each chunk read and before the thread sleeps (or exits): one
 * broadcast per stream, no lock held, and the workers for what was
 * dispatched (kick_workers). */
static void flush_wakes(tri__rx *rx) {
  for (int guard = 0; !tri__list_empty(&rx->wakes) && guard < 1000000;
       guard++) {
    tri_stream *s = tri__container_of(rx->wakes.next, tri_stream, wake_link);
    unsigned bits = s->wake_bits;
    tri__list_remove(&s->wake_link);
    s->wake_bits = 0;
    if (bits & TRI__WAKE_RCV)
      tri__stream_rcv_broadcast(s);
    if (bits & TRI__WAKE_SND)
      tri__cond_broadcast(&s->snd_cv);
    tri__stream_unref(s);
  }
  kick_workers(rx);
}

void tri__loop_flush_wakes(tri__loop *l) { flush_wakes(l->rx); }

/* ---- posting from caller threads -------------------------------------- */

/* |l| went from nothing posted to something (cmd_mu held): 1 when its
 * thread is to be woken.  A shared thread also learns which loop.  (No
 * post can come after the loop left: teardown detached every stream
 * under stream.mu and cmd_mu, and stopping refuses new ones.) */
static int wake_loop_locked(tri__loop *l) {
  tri__rx *rx = l->rx;
  int wake = 1;
  if (rx->shared) {
    tri__mutex_lock(&rx->mu);
    TRI__ASSERT(!l->left);
    wake = tri__list_empty(&rx->ready);
    if (tri__list_linked(&l->ready_link)) {
      wake = 0; /* listed already: its thread was woken then */
    } else {
      tri__list_insert_tail(&rx->ready, &l->ready_link);
      __atomic_store_n(&rx->nready, rx->nready + 1, __ATOMIC_RELEASE);
    }
    tri__mutex_unlock(&rx->mu);
  }
  return wake;
}

void tri__stream_unlock_post(tri_stream *s) {
  unsigned ops = s->post_bits;
  tri__loop *l = s->loop;
  int wake;

  s->post_bits = 0;
  if (ops == 0 || l == NULL) {
    tri__mutex_unlock(&s->mu);
    tri__stream_flush_held_wakes(s);
    return;
  }
  tri__mutex_lock(&l->cmd_mu);
  wake = tri__list_empty(&l->ops) && l->loop_ops == 0;
  s->ops |= ops;
  if (!tri__list_linked(&s->op_link))
    tri__list_insert_tail(&l->ops, &s->op_link);
  else
    wake = 0;
  tri__mutex_unlock(&s->mu);
  /* A cancel's waiters first: they are what the caller waits for; the
   * I/O thread's part (RST_STREAM) can follow. */
  tri__stream_flush_held_wakes(s);
  if (wake && wake_loop_locked(l))
    tri__wakeup_signal(&l->rx->wake);
  tri__mutex_unlock(&l->cmd_mu);
}

static void post_loop_op(tri__loop *l, unsigned op) {
  tri__rx *rx = l->rx; /* outlives |l|, which the caller keeps alive */
  tri__mutex_lock(&l->cmd_mu);
  int wake = tri__list_empty(&l->ops) && l->loop_ops == 0;
  l->loop_ops |= op;
  if (op & TRI__LOOP_STOP)
    l->stopping = 1;
  if (wake)
    wake = wake_loop_locked(l);
  tri__mutex_unlock(&l->cmd_mu);
  if (wake)
    tri__wakeup_signal(&rx->wake);
}

int tri__loop_adopt(tri__loop *to, struct tri__adopt *a) {
  tri__mutex_lock(&to->cmd_mu);
  if (to->stopping) {
    tri__mutex_unlock(&to->cmd_mu);
    return -1;
  }
  int wake = tri__list_empty(&to->ops) && to->loop_ops == 0;
  a->next = to->adopt;
  to->adopt = a;
  to->loop_ops |= TRI__LOOP_ADOPT;
  if (wake)
    wake = wake_loop_locked(to);
  tri__mutex_unlock(&to->cmd_mu);
  if (wake)
    tri__wakeup_signal(&to->rx->wake);
  return 0;
}

void tri__loop_stop(tri__loop *l) { post_loop_op(l, TRI__LOOP_STOP); }
void tri__loop_post(tri__loop *l, unsigned op) { post_loop_op(l, op); }
void tri__loop_drain(tri__loop *l) { post_loop_op(l, TRI__LOOP_DRAIN); }

int tri__loop_nstreams(tri__loop *l) {
  return __atomic_load_n(&l->nstreams, __ATOMIC_ACQUIRE);
}

int tri__loop_usable(const tri__loop *l) {
  return l != NULL && l->fork_gen == tri__fork_gen();
}

int tri__loop_open(tri__loop *l, tri_stream *s) {
  int rv = TRI_OK;
  if (!tri__loop_usable(l))
    return TRI_UNAVAILABLE; /* inherited through fork(): no I/O thread */
  tri__mutex_lock(&s->mu);
  tri__mutex_lock(&l->cmd_mu);
  if (l->stopping) {
    rv = TRI_UNAVAILABLE;
  } else {
    tri__stream_ref(s); /* the loop's reference, dropped by detach */
    __atomic_add_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
    s->loop = l;
  }
  tri__mutex_unlock(&l->cmd_mu);
  if (rv == TRI_OK)
    tri__stream_post_locked(s, TRI__OP_OPEN);
  tri__stream_unlock_post(s);
  return rv;
}

/* ---- epoll ------------------------------------------------------------- */

void tri__loop_ep_set(tri__loop *l, tri__src *src, uint32_t events,
                      uint32_t *registered) {
  struct epoll_event ev;
  if (src->fd < 0 || *registered == events)
    return;
  src->loop = l;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = src;
  if (events == 0)
    epoll_ctl(l->rx->epfd, EPOLL_CTL_DEL, src->fd, NULL);
  else
    epoll_ctl(l->rx->epfd, *registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
              src->fd, &ev);
  *registered = events;
}

void tri__loop_ep_del(tri__loop *l, int fd) {
  if (fd >= 0)
    epoll_ctl(l->rx->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- per-stream ops from callers -------------------------------------- */

static void run_ops(tri__loop *l, tri_stream *s, unsigned ops) {
  tri__conn *c;
  int action;

  if (ops & TRI__OP_OPEN) {
    tri__client_open(l, s);
    return; /* the rest applies once it is submitted */
  }
  if (s->io_state == TRI__IO_WAITING) {
    if (ops & TRI__OP_END)
      tri__conn_detach(l, s); /* never reached the wire */
    return;
  }
  c = s->conn;
  if (s->io_state != TRI__IO_OPEN || c == NULL ||
      c->phase == TRI__CONN_CLOSED)
    return;
  tri__conn_touch(c);
  if (ops & TRI__OP_END) {
    tri__mutex_lock(&s->mu);
    action = s->end_action;
    tri__mutex_unlock(&s->mu);
    if (action == TRI__END_RESET) {
      /* 7.1: RST_STREAM(CANCEL); the close callback detaches. */
      nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                                NGHTTP2_CANCEL);
      tri__mutex_lock(&s->mu);
      tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
      tri__mutex_unlock(&s->mu);
    }
    /* TRI__END_STATUS (server): the status goes out in trailers after
     * whatever frame is in flight; tri__server_ops() below does it. */
  }
  if (ops & TRI__OP_WINDOW)
    tri__flow_window_op(c, s);
  if (c->is_server)
    tri__server_ops(c, s, ops);
  else if (ops & TRI__OP_DATA)
    nghttp2_session_resume_data(c->sess, s->id);
  tri__flow_return_owed(c); /* a dropped queue may have freed budget */
}

/* Returns the loop-level ops taken. */
static unsigned drain_ops(tri__loop *l) {
  tri__list local;
  unsigned lops;
  struct tri__adopt *adopt;

  tri__mutex_lock(&l->cmd_mu);
  tri__list_move(&l->ops, &local);
  lops = l->loop_ops;
  l->loop_ops = 0;
  adopt = l->adopt;
  l->adopt = NULL;
  tri__mutex_unlock(&l->cmd_mu);
  while (adopt != NULL) {
    struct tri__adopt *next = adopt->next;
    tri__server_adopted(l, adopt); /* closes it when tearing down */
    adopt = next;
  }
  for (int guard = 0; !tri__list_empty(&local) && guard < 1000000; guard++) {
    tri_stream *s = tri__container_of(local.next, tri_stream, op_link);
    unsigned ops;
    tri__mutex_lock(&l->cmd_mu);
    tri__list_remove(&s->op_link);
    ops = s->ops;
    s->ops = 0;
    tri__mutex_unlock(&l->cmd_mu);
    /* run_ops may detach |s| and drop the loop's reference; ours keeps
     * it alive until run_ops is done with it. */
    tri__stream_ref(s);
    run_ops(l, s, ops);
    tri__stream_unref(s);
  }
  return lops;
}

/* ---- which server connections a pass ticks ---------------------------- */

/* A min-heap of tri__hnode by deadline (1-based pos).  I/O thread. */
static int heap_less(tri__heap *h, size_t a, size_t b) {
  return h->v[a]->at < h->v[b]->at;
}

static void heap_swap(tri__heap *h, size_t a, size_t b) {
  tri__hnode *t = h->v[a];
  h->v[a] = h->v[b];
  h->v[b] = t;
  h->v[a]->pos = a + 1;
  h->v[b]->pos = b + 1;
}

static void heap_up(tri__heap *h, size_t i) {
  while (i > 0 && heap_less(h, i, (i - 1) / 2)) {
    heap_swap(h, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(tri__heap *h, size_t i) {
  for (;;) {
    size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
    if (a < h->len && heap_less(h, a, m))
      m = a;
    if (b < h->len && heap_less(h, b, m))
      m = b;
    if (m == i)
      return;
    heap_swap(h, i, m);
    i = m;
  }
}

static void heap_remove(tri__heap *h, tri__hnode *n) {
  size_t i = n->pos - 1, last = h->len - 1;
  n->pos = 0;
  if (i != last) {
    h->v[i] = h->v[last];
    h->v[i]->pos = i + 1;
  }
  h->len--;
  if (i < h->len) {
    heap_up(h, i);
    heap_down(h, i);
  }
}

/* |n|'s next deadline is |at|: (re)placed in the heap, or out of it.
 * -1 when the heap cannot grow (out of memory). */
static int sched_at(tri__heap *h, tri__hnode *n, int64_t at) {
  if (n->pos != 0 && at == n->at)
    return 0; /* a busy connection's usual case: where it was */
  n->at = at;
  if (at == TRI__NO_DEADLINE) {
    if (n->pos != 0)
      heap_remove(h, n);
    return 0;
  }
  if (n->pos == 0) {
    if (h->len == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 64;
      tri__hnode **v = tri__realloc(h->v, cap * sizeof(*v));
      if (v == NULL)
        return -1;
      h->v = v;
      h->cap = cap;
    }
    h->v[h->len++] = n;
    n->pos = h->len;
    heap_up(h, h->len - 1);
  } else {
    heap_up(h, n->pos - 1);
    heap_down(h, n->pos - 1);
  }
  return 0;
}

static uint64_t conn_ticks; /* atomic */

uint64_t tri__conn_ticks(void) {
  return __atomic_load_n(&conn_ticks, __ATOMIC_RELAXED);
}

void tri__conn_touch(tri__conn *c) {
  tri__loop *l = c->loop;
  if (l->is_server && c->phase != TRI__CONN_CLOSED &&
      !tri__list_linked(&c->touch_link))
    tri__list_insert_tail(&l->touched, &c->touch_link);
}

void tri__conn_unsched(tri__conn *c) {
  tri__loop *l = c->loop;
  if (tri__list_linked(&c->touch_link))
    tri__list_remove(&c->touch_link);
  if (c->tick.pos != 0)
    heap_remove(&l->heap, &c->tick);
  if (l->ticking == c)
    l->ticking = NULL;
}

static void touch_all(tri__loop *l) {
  for (tri__list *n = l->conns.next; n != &l->conns; n = n->next)
    tri__conn_touch(tri__container_of(n, tri__conn, link));
}

/* Tick the server connections that were touched or whose deadline has
 * come (tri__server_conn_tick: timeouts, flushing, closing, trimming),
 * and fold the earliest remaining deadline into *next. */
static void tick_server_conns(tri__loop *l, int64_t now, int64_t *next) {
  tri__list batch;
  uint64_t ticks = 0;

  while (l->heap.len > 0 && l->heap.v[0]->at <= now) {
    tri__conn *c = tri__container_of(l->heap.v[0], tri__conn, tick);
    heap_remove(&l->heap, &c->tick);
    tri__conn_touch(c);
  }
  /* This pass ticks what is touched now; a touch from within a tick
   * (none today) would wait for the next pass instead of looping. */
  tri__list_move(&l->touched, &batch);
  while (!tri__list_empty(&batch)) {
    tri__conn *c = tri__container_of(batch.next, tri__conn, touch_link);
    int64_t at = TRI__NO_DEADLINE;
    tri__list_remove(&c->touch_link);
    l->ticking = c;
    tri__server_conn_tick(c, now, &at);
    ticks++;
    if (l->ticking == c && sched_at(&l->heap, &c->tick, at) != 0) {
      /* No memory for the heap: ticked every pass (as every connection
       * once was) until there is; its deadline still bounds the sleep. */
      tri__conn_touch(c);
      *next = tri__deadline_min(*next, at);
    }
    l->ticking = NULL; /* (NULL already if it closed: c is freed) */
  }
  if (l->heap.len > 0)
    *next = tri__deadline_min(*next, l->heap.v[0]->at);
  if (ticks > 0) /* one shared write per pass, not per connection */
    __atomic_add_fetch(&conn_ticks, ticks, __ATOMIC_RELAXED);
}

/* ---- the loop --------------------------------------------------------- */

void tri__loop_set_final_flush(tri__loop *l, int64_t until) {
  /* The stop posted after this (tri__loop_stop, under cmd_mu) publishes
   * it to the loop's thread. */
  l->final_flush_until = until;
}

/* Whether |c| still has something to write: bytes in its buffer or
 * frames nghttp2 has queued. */
static int has_output(tri__conn *c) {
  return c->wlen != c->woff ||
         (c->h1 == NULL && nghttp2_session_want_write(c->sess));
}

/*
 * The teardown's last frames (UNAVAILABLE trailers, GOAWAY) go out after
 * whatever was already queued.  A client that stopped reading for a
 * moment has a full socket buffer, and the teardown's single flush
 * (tri__sock_flush never blocks) would leave them in our buffer: the
 * client then saw a closed connection instead of the status.  So, when
 * the server asked for it (l->final_flush_until), wait for the sockets
 * that still have output to become writable and flush again, until they
 * are empty or the deadline passes; a connection whose write fails is
 * closed at once, one that takes nothing FINAL_STUCK_MAX times in a row
 * although poll() says it is writable (TLS waiting to read) then.
 * Bounded by the deadline and by the number of rounds.  I/O thread.
 */
#define FINAL_STUCK_MAX 64

static void final_flush(tri__loop *l) {
  struct pollfd *pf;
  tri__conn **pc;
  size_t total = 0;
  tri__list *it;

  if (l->final_flush_until <= 0)
    return;
  /* Connections only leave from here on: the arrays fit every round. */
  for (it = l->conns.next; it != &l->conns; it = it->next)
    total++;
  pf = tri__calloc(total, sizeof(*pf));
  pc = tri__calloc(total, sizeof(*pc));
  for (int round = 0; pf != NULL && pc != NULL && round < 100000; round++) {
    int64_t left = l->final_flush_until - tri__now_ns();
    size_t n = 0;
    if (left <= 0)
      break;
    for (it = l->conns.next; it != &l->conns && n < total; it = it->next) {
      tri__conn *c = tri__container_of(it, tri__conn, link);
      if (c->phase != TRI__CONN_CLOSED && c->src.fd >= 0 && has_output(c)) {
        pf[n].fd = c->src.fd;
        pf[n].events = POLLOUT;
        pf[n].revents = 0;
        pc[n++] = c;
      }
    }
    if (n == 0)
      break;
    int r = poll(pf, (nfds_t)n, (int)((left + 999999) / 1000000));
    if (r < 0 && errno != EINTR)
      break;
    for (size_t i = 0; r > 0 && i < n; i++) {
      tri__conn *c = pc[i];
      if (pf[i].revents == 0)
        continue;
      uint64_t before = c->wsent;
      if ((pf[i].revents & POLLNVAL) || tri__sock_flush(c) != 0) {
        tri__conn_close(c, "closed"); /* c is freed */
        continue;
      }
      /* Writable yet nothing went out: a TLS write waiting for input
       * (never read here), or the last piece of a record.  A few rounds
       * for the latter, then give up rather than spin. */
      if (c->wsent != before || !has_output(c))
        c->final_stuck = 0;
      else if (++c->final_stuck >= FINAL_STUCK_MAX)
        tri__conn_close(c, "closed");
    }
  }
  /* (Out of memory: no wait, the best effort of a single flush.) */
  tri__free(pf);
  tri__free(pc);
}

static void teardown(tri__loop *l) {
  /* Streams that were opened but never reached a connection. */
  l->tearing_down = 1;
  drain_ops(l);
  tri__lb_teardown(l); /* streams waiting for a READY connection */
  for (tri__list *it = l->conns.next, *nx; it != &l->conns; it = nx) {
    tri__conn *c = tri__container_of(it, tri__conn, link);
    nx = it->next;
    if (c->is_server && c->phase != TRI__CONN_CLOSED) {
      /* Graceful end of what the drain did not finish: the clients get
       * UNAVAILABLE in trailers (gRPC's "server going away", which retry
       * logic understands), after whatever frame is in flight; handlers
       * blocked in the library wake with the same status. */
      tri__list *n;
      for (n = c->streams.next; n != &c->streams; n = n->next) {
        tri_stream *s = tri__container_of(n, tri_stream, io_link);
        tri__io_end(s, TRI_UNAVAILABLE, "server shutting down", 1,
                    TRI__END_STATUS);
        tri__server_ops(c, s, TRI__OP_END);
      }
      nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->sess),
                            NGHTTP2_NO_ERROR, NULL, 0);
    } else {
      tri__list *lists[2] = {&c->waiting, &c->streams};
      for (int i = 0; i < 2; i++) {
        for (tri__list *n = lists[i]->next; n != lists[i]; n = n->next) {
          tri_stream *s = tri__container_of(n, tri_stream, io_link);
          if (s->id > 0 && s->io_state == TRI__IO_OPEN)
            nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                                      NGHTTP2_CANCEL); /* 7.1 */
          tri__io_end(s, TRI_CANCELLED, "channel closed", 1, TRI__END_NONE);
        }
      }
    }
    tri__sock_flush(c); /* never blocks; final_flush waits, if asked */
  }
  final_flush(l);
  while (!tri__list_empty(&l->conns))
    tri__conn_close(tri__container_of(l->conns.next, tri__conn, link),
                    "closed"); /* detaches every stream */
  drain_ops(l); /* posts raced with the teardown: streams are detached */
  /* The rest of what the thread polls for it: a shared thread goes on
   * polling, and must never see these again. */
  tri__linger_close_all(l);
  tri__resolve_free(l);
}

/* One pass of |l|: its posted work, then its ticks, its next deadline
 * folded into *next.  1 when it stopped: torn down, nothing of it is
 * left on the thread. */
static int loop_pass(tri__loop *l, int64_t *next) {
  unsigned lops = drain_ops(l);
  if (lops & TRI__LOOP_STOP) {
    teardown(l);
    return 1;
  }
  if ((lops & TRI__LOOP_DRAIN) && !l->draining)
    tri__server_drain(l);
  if (lops & (TRI__LOOP_CONNECT | TRI__LOOP_ADDRS))
    tri__lb_loop_ops(l, lops);

  int64_t now = tri__now_ns();
  if (l->is_server) {
    if (lops & TRI__LOOP_ACCEPT)
      l->accept_paused_until = 0; /* a descriptor is free again */
    tri__server_tick(l, now, next);
    /* The drain changes every connection (heads-up GOAWAY, PING);
     * an adopted one was touched when it was made. */
    if (lops & TRI__LOOP_DRAIN)
      touch_all(l);
  } else {
    tri__resolve_tick(l);
    tri__lb_tick(l, now, next);
  }
  if (l->is_server) {
    tick_server_conns(l, now, next);
  } else {
    /* A channel has a connection or a few: each is ticked every pass. */
    tri__list *n, *nx;
    for (n = l->conns.next; n != &l->conns; n = nx) {
      nx = n->next;
      tri__client_tick(tri__container_of(n, tri__conn, link), now, next);
    }
    *next = tri__resolve_next(l, *next);
    if (tri__lb_requeued(l))
      *next = now; /* place it in the next pass, without sleeping */
  }
  /* After the ticks: a connection a tick closed (handshake or keepalive
   * timeout, max age) lingers from now on, and its deadline counts. */
  tri__linger_tick(l, now, next);
  return 0;
}

static void due(tri__rx *rx, tri__loop *l) {
  if (!tri__list_linked(&l->due_link))
    tri__list_insert_tail(&rx->due, &l->due_link);
}

/* A stopped loop leaves its shared thread; its joiner may free it as soon
 * as rx->mu is released. */
static void leave(tri__rx *rx, tri__loop *l) {
  flush_wakes(rx); /* its streams' waiters, before the join returns */
  if (l->due_at.pos != 0)
    heap_remove(&rx->heap, &l->due_at);
  if (tri__list_linked(&l->due_link))
    tri__list_remove(&l->due_link);
  tri__mutex_lock(&rx->mu);
  if (tri__list_linked(&l->ready_link)) {
    tri__list_remove(&l->ready_link); /* (nready only overcounts) */
  }
  l->left = 1;
  tri__cond_broadcast(&rx->cv);
  tri__mutex_unlock(&rx->mu);
}

static uint64_t shared_runs; /* atomic */

uint64_t tri__shared_loop_runs(void) {
  return __atomic_load_n(&shared_runs, __ATOMIC_RELAXED);
}

/* A pass of a shared thread: the loops posted to, touched by an event or
 * whose deadline came.  1 when the thread is to end. */
static int shared_pass(tri__rx *rx, int64_t *next) {
  tri__list run;
  uint64_t runs = 0;

  /* A post that finds the list empty wakes the thread, so an empty list
   * seen here without the lock is never a post lost: it comes with a
   * wake-up, and the next pass takes it. */
  if (__atomic_load_n(&rx->nready, __ATOMIC_ACQUIRE) > 0) {
    tri__mutex_lock(&rx->mu);
    for (int guard = 0; !tri__list_empty(&rx->ready) && guard < 1000000;
         guard++) {
      tri__loop *l = tri__container_of(rx->ready.next, tri__loop,
                                        ready_link);
      tri__list_remove(&l->ready_link);
      due(rx, l);
    }
    __atomic_store_n(&rx->nready, 0, __ATOMIC_RELAXED);
    tri__mutex_unlock(&rx->mu);
  }
  int64_t now = tri__now_ns();
  while (rx->heap.len > 0 && rx->heap.v[0]->at <= now) {
    tri__loop *l = tri__container_of(rx->heap.v[0], tri__loop, due_at);
    heap_remove(&rx->heap, &l->due_at);
    due(rx, l);
  }
  tri__list_move(&rx->due, &run);
  while (!tri__list_empty(&run)) {
    tri__loop *l = tri__container_of(run.next, tri__loop, due_link);
    int64_t at = TRI__NO_DEADLINE;
    tri__list_remove(&l->due_link);
    runs++;
    if (loop_pass(l, &at)) {
      leave(rx, l);
    } else if (sched_at(&rx->heap, &l->due_at, at) != 0) {
      due(rx, l); /* no memory for the heap: run every pass until there is */
      *next = tri__deadline_min(*next, at);
    }
  }
  if (rx->heap.len > 0)
    *next = tri__deadline_min(*next, rx->heap.v[0]->at);
  if (runs > 0)
    __atomic_add_fetch(&shared_runs, runs, __ATOMIC_RELAXED);
  /* group_end sets |ending| when the last reference went: every channel
   * placed here is freed, so no loop is left. */
  return __atomic_load_n(&rx->ending, __ATOMIC_ACQUIRE);
}

static void *rx_main(void *arg) {
  tri__rx *rx = arg;
  struct epoll_event evs[MAX_EVENTS];

  io_rx = rx;
  for (;;) {
    int64_t next = TRI__NO_DEADLINE;
    if (rx->shared ? shared_pass(rx, &next) : loop_pass(rx->only, &next)) {
      flush_wakes(rx);
      break;
    }
    flush_wakes(rx);
    int nev = epoll_wait(rx->epfd, evs, MAX_EVENTS, tri__deadline_poll_ms(next));
    rx->kick_state = KICK_NOW;
    /* A server's loop: several connections in this batch? */
    for (int i = 0, socks = 0; rx->srv != NULL && i < nev; i++)
      if (((tri__src *)evs[i].data.ptr)->kind != TRI__SRC_WAKE &&
          ++socks > 1) {
        rx->kick_state = KICK_FIRST;
        break;
      }
    for (int i = 0; i < nev; i++) {
      tri__src *src = evs[i].data.ptr;
      tri__loop *l = src->loop;
      switch (src->kind) {
      case TRI__SRC_WAKE:
        tri__wakeup_drain(&rx->wake);
        continue;
      case TRI__SRC_LISTEN:
        tri__server_accept(l);
        break;
      case TRI__SRC_DNS:
        tri__resolve_event(l, src, evs[i].events);
        break;
      case TRI__SRC_LINGER:
        tri__linger_event(l, src);
        break;
      default:
        tri__conn_touch((tri__conn *)src);
        tri__sock_event((tri__conn *)src, evs[i].events);
        break;
      }
      if (rx->shared)
        due(rx, l);
    }
    rx->kick_state = KICK_NOW;
    kick_workers(rx); /* what the batch queued after its first kick */
  }
  io_rx = NULL;
  return NULL;
}

/* ---- threads ---------------------------------------------------------- */

static void rx_free(tri__rx *rx) {
  if (rx == NULL)
    return;
  if (rx->wake_src.fd >= 0)
    tri__wakeup_close(&rx->wake);
  if (rx->epfd >= 0)
    close(rx->epfd);
  tri__free(rx->rbuf);
  tri__free(rx->heap.v);
  tri__pgpool_free(rx->pgpool); /* every session is deleted */
  tri__cond_destroy(&rx->cv);
  tri__mutex_destroy(&rx->mu);
  tri__free(rx);
}

/* NULL on failure, the errno in *err (0: out of memory). */
static tri__rx *rx_new(int shared, int *err) {
  struct epoll_event ev;
  tri__rx *rx = tri__calloc(1, sizeof(*rx));
  int rv;
  *err = 0;
  if (rx == NULL)
    return NULL;
  rx->shared = shared;
  rx->wake_src.kind = TRI__SRC_WAKE;
  rx->wake_src.fd = -1;
  tri__list_init(&rx->wakes);
  tri__list_init(&rx->ready);
  tri__list_init(&rx->due);
  tri__mutex_init(&rx->mu);
  tri__cond_init(&rx->cv);
  rx->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (rx->epfd < 0) {
    *err = errno;
    goto fail;
  }
  rx->rbuf = tri__malloc(TRI__READ_CHUNK);
  rx->pgpool = tri__pgpool_new(); /* optional */
  if (rx->rbuf == NULL)
    goto fail;
  rv = tri__wakeup_init(&rx->wake);
  if (rv != 0) {
    *err = -rv;
    goto fail;
  }
  rx->wake_src.fd = tri__wakeup_fd(&rx->wake);
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &rx->wake_src;
  if (epoll_ctl(rx->epfd, EPOLL_CTL_ADD, rx->wake_src.fd, &ev) != 0) {
    *err = errno;
    goto fail;
  }
  return rx;

fail:
  rx_free(rx);
  return NULL;
}

static int rx_start(tri__rx *rx) {
  int rv = tri__thread_create(&rx->thread, NULL, rx_main, rx, "tri-io");
  if (rv != 0)
    return -rv;
  rx->started = 1;
  return 0;
}

/* ---- I/O groups (public) ---------------------------------------------- */

struct tri_io_group {
  int refs;                /* atomic: the user's, and one per channel */
  unsigned fork_gen;
  int n;
  tri__rx *rx[];
};

static void group_end(tri_io_group *g) {
  for (int i = 0; i < g->n; i++) {
    tri__rx *rx = g->rx[i];
    if (rx == NULL)
      continue;
    if (rx->started) {
      /* No channel is left: each held a reference. */
      __atomic_store_n(&rx->ending, 1, __ATOMIC_RELEASE);
      tri__wakeup_signal(&rx->wake);
      pthread_join(rx->thread, NULL);
    }
    rx_free(rx);
  }
  tri__free(g);
}

TRI_API int tri_io_group_new(int nthreads, tri_io_group **out) {
  if (out == NULL || nthreads < 1 || nthreads > 256)
    return tri__fail(TRI_EINVAL, "tri_io_group_new: %s",
                     out == NULL ? "out is NULL"
                                 : "nthreads must be 1 to 256");
  *out = NULL;
  tri_io_group *g = tri__calloc(1, sizeof(*g) + (size_t)nthreads *
                                                    sizeof(g->rx[0]));
  if (g == NULL)
    return tri__fail(TRI_ENOMEM, "out of memory creating an I/O group");
  g->refs = 1;
  g->fork_gen = tri__fork_gen();
  g->n = nthreads;
  for (int i = 0; i < nthreads; i++) {
    int rv, err;
    g->rx[i] = rx_new(1, &err);
    if (g->rx[i] == NULL) {
      group_end(g);
      return tri__fail_create(err, "an I/O group's thread");
    }
    rv = rx_start(g->rx[i]);
    if (rv != 0) {
      group_end(g);
      return tri__fail(TRI_ESYS, "cannot start an I/O group's thread: %s",
                       strerror(-rv));
    }
  }
  *out = g;
  return TRI_OK;
}

static void io_group_unref(tri_io_group *g) {
  if (g == NULL || g->fork_gen != tri__fork_gen())
    return; /* the parent's: its threads are not here; abandoned */
  if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
    group_end(g);
}

TRI_API void tri_io_group_free(tri_io_group *g) { io_group_unref(g); }

tri__rx *tri__io_group_take(tri_io_group *g) {
  tri__rx *best = NULL;
  int fewest = 0;
  if (g == NULL || g->fork_gen != tri__fork_gen())
    return NULL;
  __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < g->n; i++) {
    int n = __atomic_load_n(&g->rx[i]->nloops, __ATOMIC_RELAXED);
    if (best == NULL || n < fewest) {
      best = g->rx[i];
      fewest = n;
    }
  }
  /* Counted at once, so channels created at the same time spread. */
  __atomic_add_fetch(&best->nloops, 1, __ATOMIC_RELAXED);
  return best;
}

void tri__io_group_put(tri_io_group *g, struct tri__rx *rx) {
  if (g == NULL || g->fork_gen != tri__fork_gen())
    return;
  __atomic_sub_fetch(&rx->nloops, 1, __ATOMIC_RELAXED);
  io_group_unref(g);
}

/* ---- creation --------------------------------------------------------- */

int tri__conn_callbacks_new(nghttp2_session_callbacks **out);

/* |rx| NULL: a private thread of its own.  NULL on failure, the errno
 * in *err (0: out of memory). */
static tri__loop *loop_alloc(int is_server, tri__rx *rx, int *err) {
  tri__loop *l = tri__calloc(1, sizeof(*l));
  *err = 0;
  if (l == NULL)
    return NULL;
  l->is_server = is_server;
  l->fork_gen = tri__fork_gen();
  l->listen_fd = -1;
  tri__list_init(&l->ops);
  tri__list_init(&l->conns);
  tri__list_init(&l->touched);
  tri__list_init(&l->lingering);
  tri__list_init(&l->ready_link);
  tri__list_init(&l->due_link);
  tri__mutex_init(&l->cmd_mu);
  l->rx = rx != NULL ? rx : rx_new(0, err);
  if (l->rx == NULL)
    goto fail;
  if (!l->rx->shared)
    l->rx->only = l;
  if (tri__conn_callbacks_new(&l->cbs) != 0)
    goto fail;
  if (nghttp2_option_new(&l->opt) != 0)
    goto fail_cbs;
  nghttp2_option_set_no_auto_window_update(l->opt, 1); /* 13.4 */
  if (is_server) {
#ifdef HAVE_NGHTTP2_OPTION_SET_STREAM_RESET_RATE_LIMIT
    /* 13.1: our own limiter (h2server.c) closes rapid-reset connections
     * first, counting only streams reset before we answered; nghttp2's
     * counts every reset, so it stays a generous backstop that does not
     * cut off clients that legitimately cancel many calls. */
    nghttp2_option_set_stream_reset_rate_limit(l->opt, 10000, 1000);
#endif
#ifdef HAVE_NGHTTP2_OPTION_SET_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(l->opt, 8); /* 13.1 */
#endif
  }
  tri__budget_add(TRI__B_LOOPS, 1);
  return l;

fail_cbs:
  nghttp2_session_callbacks_del(l->cbs);
fail:
  if (rx == NULL)
    rx_free(l->rx);
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l);
  return NULL;
}

tri__loop *tri__loop_new_client(struct tri_channel *ch,
                                const tri__client_cfg *cfg, tri__rx *rx,
                                int *err) {
  tri__loop *l = loop_alloc(0, rx, err);
  if (l == NULL)
    return NULL;
  l->ch = ch;
  l->ccfg = *cfg;
  if (tri__lb_new(l) != 0) {
    l->ccfg.tls = NULL; /* still the caller's, as is the target */
    l->ccfg.target.addrs = NULL;
    l->ccfg.target.addr_lens = NULL;
    tri__loop_join_free(l);
    return NULL;
  }
  return l;
}

tri__loop *tri__loop_new_server(struct tri_server *srv, int listen_fd,
                                const tri__srv_cfg *cfg, int *err) {
  uint32_t reg = 0;
  tri__loop *l = loop_alloc(1, NULL, err);
  if (l == NULL)
    return NULL;
  l->srv = srv;
  l->rx->srv = srv;
  l->listen_fd = listen_fd;
  l->cfg = *cfg;
  l->listen_src.kind = TRI__SRC_LISTEN;
  l->listen_src.fd = listen_fd;
  tri__loop_ep_set(l, &l->listen_src, EPOLLIN, &reg);
  return l;
}

void tri__loop_set_peers(tri__loop *l, tri__loop **peers, int n) {
  l->peers = peers;
  l->npeers = n;
  for (int i = 0; i < n; i++)
    peers[i]->listener = l;
}

void tri__loop_conn_counts(tri__loop *l, uint64_t *served, int *conns) {
  *served = __atomic_load_n(&l->served, __ATOMIC_RELAXED);
  *conns = __atomic_load_n(&l->nconns, __ATOMIC_RELAXED);
}

int tri__loop_start(tri__loop *l) {
  tri__rx *rx = l->rx;
  if (!rx->shared) {
    int rv = rx_start(rx);
    if (rv != 0)
      return rv;
  }
  l->started = 1; /* on a shared thread: from its first post */
  return 0;
}

void tri__loop_join(tri__loop *l) {
  if (l == NULL || !tri__loop_usable(l) || l->joined)
    return; /* the parent's loop: no thread here, its state is abandoned */
  l->joined = 1;
  if (l->started) {
    tri__rx *rx = l->rx;
    tri__loop_stop(l);
    if (rx->shared) {
      /* The thread runs the stop in its next pass (shared_pass), always. */
      tri__mutex_lock(&rx->mu);
      while (!l->left)
        tri__cond_wait(&rx->cv, &rx->mu);
      tri__mutex_unlock(&rx->mu);
    } else {
      pthread_join(rx->thread, NULL);
    }
  } else {
    teardown(l);
  }
  /* Its thread is gone, and teardown closed its lingering sockets:
   * nothing of it may reach the listening loop any more, which a server
   * may free first. */
  l->listener = NULL;
}

void tri__loop_join_free(tri__loop *l) {
  if (l == NULL)
    return;
  if (!tri__loop_usable(l))
    return; /* the parent's loop: no thread here, its state is abandoned */
  tri__loop_join(l); /* its teardown closed the resolver and lingerers */
  tri__lb_free(l);
  tri__tls_ctx_unref(l->ccfg.tls); /* the client's; connections are gone */
  tri__target_free(&l->ccfg.target);
  if (l->listen_fd >= 0)
    close(l->listen_fd);
  nghttp2_option_del(l->opt);
  nghttp2_session_callbacks_del(l->cbs);
  tri__free(l->heap.v); /* empty: every connection is closed */
  if (!l->rx->shared)
    rx_free(l->rx);
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l);
  tri__budget_add(TRI__B_LOOPS, -1);
}
