/*
 * The event loop: one thread ("tri-io") per channel or server owns every
 * socket and nghttp2 session of that loop.  Callers reach it through the
 * op queue: per-stream op bits (TRI__OP_*) queued on loop->ops under
 * loop->cmd_mu plus a wake-up fd (wakeup.c); posting never allocates.
 *
 * Threads: loop_main() and everything it calls run on the I/O thread.
 * tri__stream_unlock_post(), tri__loop_open(), tri__loop_stop(),
 * tri__loop_drain(), tri__loop_nstreams() and loop creation/join run on
 * caller threads.
 *
 * Lock order: stream.mu -> loop.cmd_mu (core.h).
 */
#include "tri_int.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "budget.h"
#include "conn.h"

#define MAX_EVENTS 64

/* The loop whose I/O thread this is (NULL on other threads). */
static __thread tri__loop *io_loop;

/* ---- wake-ups held until the end of an iteration ---------------------- */

int tri__loop_defer_wake(tri_stream *s, unsigned which) {
  tri__loop *l = io_loop;
  /* Only receivers: a sender waiting for ring space is woken at once, so
   * it refills the ring while this thread is still writing. */
  if (l == NULL || s->loop != l || (which & TRI__WAKE_SND))
    return 0;
  if (s->wake_bits == 0) {
    tri__stream_ref(s);
    tri__list_insert_tail(&l->wakes, &s->wake_link);
  }
  s->wake_bits |= which;
  return 1;
}

int tri__loop_defer_kick(struct tri_server *srv) {
  tri__loop *l = io_loop;
  if (l == NULL || l->srv != srv)
    return 0;
  l->pool_kicks++;
  return 1;
}

/* After each chunk read and before the loop sleeps (or exits): one
 * broadcast per stream, no lock held, and the workers for what was
 * dispatched. */
void tri__loop_flush_wakes(tri__loop *l) {
  for (int guard = 0; !tri__list_empty(&l->wakes) && guard < 1000000;
       guard++) {
    tri_stream *s = tri__container_of(l->wakes.next, tri_stream, wake_link);
    unsigned bits = s->wake_bits;
    tri__list_remove(&s->wake_link);
    s->wake_bits = 0;
    if (bits & TRI__WAKE_RCV)
      tri__cond_broadcast(&s->rcv_cv);
    if (bits & TRI__WAKE_SND)
      tri__cond_broadcast(&s->snd_cv);
    tri__stream_unref(s);
  }
  if (l->pool_kicks > 0) {
    unsigned n = l->pool_kicks;
    l->pool_kicks = 0;
    tri__server_kick(l->srv, n);
  }
}

/* ---- posting from caller threads -------------------------------------- */

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
  if (wake)
    tri__wakeup_signal(&l->wake);
  tri__mutex_unlock(&l->cmd_mu);
}

static void post_loop_op(tri__loop *l, unsigned op) {
  int wake;
  tri__mutex_lock(&l->cmd_mu);
  wake = tri__list_empty(&l->ops) && l->loop_ops == 0;
  l->loop_ops |= op;
  if (op & TRI__LOOP_STOP)
    l->stopping = 1;
  tri__mutex_unlock(&l->cmd_mu);
  if (wake)
    tri__wakeup_signal(&l->wake);
}

int tri__loop_adopt(tri__loop *to, struct tri__adopt *a) {
  int wake;
  tri__mutex_lock(&to->cmd_mu);
  if (to->stopping) {
    tri__mutex_unlock(&to->cmd_mu);
    return -1;
  }
  wake = tri__list_empty(&to->ops) && to->loop_ops == 0;
  a->next = to->adopt;
  to->adopt = a;
  to->loop_ops |= TRI__LOOP_ADOPT;
  tri__mutex_unlock(&to->cmd_mu);
  if (wake)
    tri__wakeup_signal(&to->wake);
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
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = src;
  if (events == 0)
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, src->fd, NULL);
  else
    epoll_ctl(l->epfd, *registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, src->fd,
              &ev);
  *registered = events;
}

void tri__loop_ep_del(tri__loop *l, int fd) {
  if (fd >= 0)
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
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

/* A min-heap of connections by tick_at (1-based heap_pos).  I/O thread. */
static int heap_less(tri__loop *l, size_t a, size_t b) {
  return l->heap[a]->tick_at < l->heap[b]->tick_at;
}

static void heap_swap(tri__loop *l, size_t a, size_t b) {
  tri__conn *t = l->heap[a];
  l->heap[a] = l->heap[b];
  l->heap[b] = t;
  l->heap[a]->heap_pos = a + 1;
  l->heap[b]->heap_pos = b + 1;
}

static void heap_up(tri__loop *l, size_t i) {
  while (i > 0 && heap_less(l, i, (i - 1) / 2)) {
    heap_swap(l, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(tri__loop *l, size_t i) {
  for (;;) {
    size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
    if (a < l->heap_len && heap_less(l, a, m))
      m = a;
    if (b < l->heap_len && heap_less(l, b, m))
      m = b;
    if (m == i)
      return;
    heap_swap(l, i, m);
    i = m;
  }
}

static void heap_remove(tri__loop *l, tri__conn *c) {
  size_t i = c->heap_pos - 1, last = l->heap_len - 1;
  c->heap_pos = 0;
  if (i != last) {
    l->heap[i] = l->heap[last];
    l->heap[i]->heap_pos = i + 1;
  }
  l->heap_len--;
  if (i < l->heap_len) {
    heap_up(l, i);
    heap_down(l, i);
  }
}

/* |c|'s next deadline is |at|: (re)placed in the heap, or out of it.
 * -1 when the heap cannot grow (out of memory). */
static int sched_at(tri__loop *l, tri__conn *c, int64_t at) {
  if (c->heap_pos != 0 && at == c->tick_at)
    return 0; /* a busy connection's usual case: where it was */
  c->tick_at = at;
  if (at == TRI__NO_DEADLINE) {
    if (c->heap_pos != 0)
      heap_remove(l, c);
    return 0;
  }
  if (c->heap_pos == 0) {
    if (l->heap_len == l->heap_cap) {
      size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
      tri__conn **h = tri__realloc(l->heap, cap * sizeof(*h));
      if (h == NULL)
        return -1;
      l->heap = h;
      l->heap_cap = cap;
    }
    l->heap[l->heap_len++] = c;
    c->heap_pos = l->heap_len;
    heap_up(l, l->heap_len - 1);
  } else {
    heap_up(l, c->heap_pos - 1);
    heap_down(l, c->heap_pos - 1);
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
  if (c->heap_pos != 0)
    heap_remove(l, c);
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

  while (l->heap_len > 0 && l->heap[0]->tick_at <= now) {
    tri__conn *c = l->heap[0];
    heap_remove(l, c);
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
    if (l->ticking == c && sched_at(l, c, at) != 0) {
      /* No memory for the heap: ticked every pass (as every connection
       * once was) until there is; its deadline still bounds the sleep. */
      tri__conn_touch(c);
      *next = tri__deadline_min(*next, at);
    }
    l->ticking = NULL; /* (NULL already if it closed: c is freed) */
  }
  if (l->heap_len > 0)
    *next = tri__deadline_min(*next, l->heap[0]->tick_at);
  if (ticks > 0) /* one shared write per pass, not per connection */
    __atomic_add_fetch(&conn_ticks, ticks, __ATOMIC_RELAXED);
}

/* ---- the loop --------------------------------------------------------- */

static void teardown(tri__loop *l) {
  /* Streams that were opened but never reached a connection. */
  l->tearing_down = 1;
  drain_ops(l);
  tri__lb_teardown(l); /* streams waiting for a READY connection */
  while (!tri__list_empty(&l->conns)) {
    tri__conn *c = tri__container_of(l->conns.next, tri__conn, link);
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
    tri__sock_flush(c); /* best effort: never blocks */
    tri__conn_close(c, "closed"); /* detaches every stream */
  }
  drain_ops(l); /* posts raced with the teardown: streams are detached */
}

static void *loop_main(void *arg) {
  tri__loop *l = arg;
  struct epoll_event evs[MAX_EVENTS];

  io_loop = l;
  for (;;) {
    unsigned lops = drain_ops(l);
    if (lops & TRI__LOOP_STOP) {
      teardown(l);
      tri__loop_flush_wakes(l);
      break;
    }
    if ((lops & TRI__LOOP_DRAIN) && !l->draining)
      tri__server_drain(l);
    if (lops & (TRI__LOOP_CONNECT | TRI__LOOP_ADDRS))
      tri__lb_loop_ops(l, lops);

    int64_t next = TRI__NO_DEADLINE, now = tri__now_ns();
    if (l->is_server) {
      if (lops & TRI__LOOP_ACCEPT)
        l->accept_paused_until = 0; /* a descriptor is free again */
      tri__server_tick(l, now, &next);
      /* The drain changes every connection (heads-up GOAWAY, PING);
       * an adopted one was touched when it was made. */
      if (lops & TRI__LOOP_DRAIN)
        touch_all(l);
    } else {
      tri__resolve_tick(l);
      tri__lb_tick(l, now, &next);
    }
    tri__linger_tick(l, now, &next);
    if (l->is_server) {
      tick_server_conns(l, now, &next);
    } else {
      /* A channel has a connection or a few: each is ticked every pass. */
      tri__list *n, *nx;
      for (n = l->conns.next; n != &l->conns; n = nx) {
        nx = n->next;
        tri__client_tick(tri__container_of(n, tri__conn, link), now, &next);
      }
      next = tri__resolve_next(l, next);
      if (tri__lb_requeued(l))
        next = now; /* place it in the next pass, without sleeping */
    }
    tri__loop_flush_wakes(l);
    int nev = epoll_wait(l->epfd, evs, MAX_EVENTS, tri__deadline_poll_ms(next));
    for (int i = 0; i < nev; i++) {
      tri__src *src = evs[i].data.ptr;
      switch (src->kind) {
      case TRI__SRC_WAKE:
        tri__wakeup_drain(&l->wake);
        break;
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
    }
  }
  io_loop = NULL;
  return NULL;
}

/* ---- creation --------------------------------------------------------- */

int tri__conn_callbacks_new(nghttp2_session_callbacks **out);

static tri__loop *loop_alloc(int is_server) {
  uint32_t reg = 0;
  tri__loop *l = tri__calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  l->is_server = is_server;
  l->fork_gen = tri__fork_gen();
  l->listen_fd = -1;
  l->epfd = -1;
  tri__list_init(&l->ops);
  tri__list_init(&l->conns);
  tri__list_init(&l->touched);
  tri__list_init(&l->lingering);
  tri__list_init(&l->wakes);
  tri__mutex_init(&l->cmd_mu);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->rbuf = tri__malloc(TRI__READ_CHUNK);
  l->pgpool = tri__pgpool_new(); /* optional */
  if (l->epfd < 0 || l->rbuf == NULL || tri__wakeup_init(&l->wake) != 0)
    goto fail;
  l->wake_src.kind = TRI__SRC_WAKE;
  l->wake_src.fd = tri__wakeup_fd(&l->wake);
  tri__loop_ep_set(l, &l->wake_src, EPOLLIN, &reg);
  if (tri__conn_callbacks_new(&l->cbs) != 0)
    goto fail_wake;
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
fail_wake:
  tri__wakeup_close(&l->wake);
fail:
  if (l->epfd >= 0)
    close(l->epfd);
  tri__free(l->rbuf);
  tri__pgpool_free(l->pgpool);
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l);
  return NULL;
}

tri__loop *tri__loop_new_client(struct tri_channel *ch,
                                const tri__client_cfg *cfg) {
  tri__loop *l = loop_alloc(0);
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
                                const tri__srv_cfg *cfg) {
  uint32_t reg = 0;
  tri__loop *l = loop_alloc(1);
  if (l == NULL)
    return NULL;
  l->srv = srv;
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
  int rv = tri__thread_create(&l->thread, NULL, loop_main, l, "tri-io");
  if (rv != 0)
    return -rv;
  l->started = 1;
  return 0;
}

void tri__loop_join(tri__loop *l) {
  if (l == NULL || !tri__loop_usable(l) || l->joined)
    return; /* the parent's loop: no thread here, its state is abandoned */
  l->joined = 1;
  if (l->started) {
    tri__loop_stop(l);
    pthread_join(l->thread, NULL);
  } else {
    teardown(l);
  }
  /* Its thread is gone: what closes later (tri__linger_close_all in
   * tri__loop_join_free) must not reach the listening loop, which a
   * server may free first. */
  l->listener = NULL;
}

void tri__loop_join_free(tri__loop *l) {
  if (l == NULL)
    return;
  if (!tri__loop_usable(l))
    return; /* the parent's loop: no thread here, its state is abandoned */
  tri__loop_join(l);
  tri__resolve_free(l);
  tri__lb_free(l);
  tri__linger_close_all(l);
  tri__tls_ctx_unref(l->ccfg.tls); /* the client's; connections are gone */
  tri__target_free(&l->ccfg.target);
  if (l->listen_fd >= 0)
    close(l->listen_fd);
  nghttp2_option_del(l->opt);
  nghttp2_session_callbacks_del(l->cbs);
  tri__wakeup_close(&l->wake);
  close(l->epfd);
  tri__free(l->rbuf);
  tri__free(l->heap); /* empty: every connection is closed */
  tri__pgpool_free(l->pgpool); /* every session is deleted */
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l);
  tri__budget_add(TRI__B_LOOPS, -1);
}
