/*
 * Streams, caller side: the blocking API (send, recv, close_send, cancel,
 * status) for both client streams and server handler streams, and the
 * stream state machine every thread goes through.
 *
 * Threads: any caller thread; the I/O thread changes the same state under
 * s->mu through tri__stream_ev_locked(); the timer thread calls
 * deadline_fired().
 *
 * Safety: a stream's progress is three small states (send, receive,
 * response headers) plus the final status, all under s->mu, all changed by
 * tri__stream_ev_locked() and nothing else (doc/DESIGN.md "Stream states"
 * has the table).  Waiters loop on predicates over those states with
 * monotonic deadlines; every transition that can end a wait broadcasts the
 * condition concerned, so close, cancel, deadline and peer events wake
 * every waiter at once.  Each public entry point holds a reference for its
 * duration, so tri_stream_free() from one thread never pulls memory from
 * under a thread blocked in another call.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "budget.h"
#include "compress.h"
#include "core.h"
#include "edge.h"
#include "status.h"
#include "triple.h"

static const tri_metadata empty_md;

static void deadline_fired(tri__timer *t) {
  tri_stream *s = tri__container_of(t, tri_stream, deadline_timer);
  /* doc/PROTOCOL.md 7.2: a deadline is a local cancellation reported as
   * DEADLINE_EXCEEDED; queued messages are dropped.  A server tells the
   * client in trailers (7.3), a client resets the stream. */
  tri__stream_abort(s, TRI_DEADLINE_EXCEEDED, "deadline exceeded", 1,
                    s->side == TRI__SERVER ? TRI__END_STATUS
                                           : TRI__END_RESET);
  tri__stream_unref(s);
}

tri_stream *tri__stream_new(int side, size_t max_recv, size_t rq_limit,
                            size_t sb_limit) {
  tri_stream *s = tri__calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->refs = 1;
  s->side = side;
  s->fork_gen = tri__fork_gen();
  tri__budget_add(TRI__B_STREAMS, 1);
  tri__mutex_init(&s->mu);
  tri__cond_init(&s->rcv_cv);
  tri__cond_init(&s->snd_cv);
  s->deadline_ns = TRI__NO_DEADLINE;
  s->max_recv = max_recv;
  s->max_recv_hint = "this server's limit";
  s->max_recv_setter = "tri_server_opts_set_max_recv_size";
  s->rq_limit = rq_limit;
  s->sb_limit = sb_limit;
  s->spin_ns = tri__spin_default_us() * INT64_C(1000);
  tri__md_init(&s->req_md);
  tri__md_init(&s->hdrs);
  tri__md_init(&s->trl);
  tri__md_init(&s->io_hdrs);
  tri__md_init(&s->io_trl);
  tri__md_init(&s->out_hdrs);
  tri__md_init(&s->out_trl);
  tri__list_init(&s->rq);
  tri__list_init(&s->op_link);
  tri__list_init(&s->io_link);
  tri__list_init(&s->wq_link);
  tri__list_init(&s->wake_link);
  tri__timer_init(&s->deadline_timer, deadline_fired);
  tri__deframer_init(&s->df, max_recv);
  s->grpc_status = -1;
  s->timeout_ns = -1;
  s->replay_off = side == TRI__SERVER; /* only clients retry */
  return s;
}

void tri__stream_rcv_broadcast(tri_stream *s) {
  __atomic_add_fetch(&s->rcv_seq, 1, __ATOMIC_RELEASE);
  tri__cond_broadcast(&s->rcv_cv);
}

/* A caller thread ending a stream (cancel, deadline, free) holds its own
 * broadcasts until it has let go of s->mu (tri__stream_unlock_post), so
 * the woken waiters do not wake into a held lock. */
static __thread struct {
  tri_stream *s;
  unsigned bits;
} held_wakes;

void tri__stream_flush_held_wakes(tri_stream *s) {
  unsigned bits = held_wakes.bits;
  if (held_wakes.s != s)
    return;
  held_wakes.s = NULL;
  held_wakes.bits = 0;
  if (bits & TRI__WAKE_RCV)
    tri__stream_rcv_broadcast(s);
  if (bits & TRI__WAKE_SND)
    tri__cond_broadcast(&s->snd_cv);
}

void tri__stream_wake(tri_stream *s, unsigned which) {
  if (held_wakes.s == s) {
    held_wakes.bits |= which;
    return;
  }
  if ((which & TRI__WAKE_RCV) && tri__loop_defer_wake(s, TRI__WAKE_RCV))
    which &= ~(unsigned)TRI__WAKE_RCV; /* at the end of the I/O chunk */
  if (which & TRI__WAKE_RCV)
    tri__stream_rcv_broadcast(s);
  if (which & TRI__WAKE_SND)
    tri__cond_broadcast(&s->snd_cv);
}

int tri__stream_set_method(tri_stream *s, const char *p, size_t n) {
  if (s->method != s->method_buf)
    tri__free(s->method);
  if (n < sizeof(s->method_buf)) {
    memcpy(s->method_buf, p, n);
    s->method_buf[n] = '\0';
    s->method = s->method_buf;
    return TRI_OK;
  }
  s->method = tri__strndup(p, n);
  return s->method != NULL ? TRI_OK : TRI_ENOMEM;
}

void tri__stream_ref(tri_stream *s) {
  __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

static void drop_queue_locked(tri_stream *s) {
  while (!tri__list_empty(&s->rq)) {
    tri__list *n = s->rq.next;
    tri__list_remove(n);
    tri__free(tri__container_of(n, tri_buf, link));
  }
  tri__budget_add(TRI__B_RQ, -(int64_t)s->rq_bytes);
  s->rq_bytes = 0;
}

static void ring_free_locked(tri_stream *s) {
  if (s->sb != NULL) {
    tri__budget_add(TRI__B_RING, -(int64_t)s->sb_cap);
    tri__free(s->sb);
    s->sb = NULL;
  }
  s->sb_cap = s->sb_limit;
  s->sb_head = s->sb_len = s->sb_inflight = 0;
}

/* The stream can no longer be retried: free the kept request bytes. */
static void replay_drop_locked(tri_stream *s) {
  s->replay_off = 1;
  if (s->replay != NULL) {
    tri__budget_add(TRI__B_RING, -(int64_t)s->replay_cap);
    tri__free(s->replay);
    s->replay = NULL;
  }
  s->replay_len = s->replay_cap = 0;
}

/* Keep the |n| bytes at the ring's head that were just written. */
static void replay_keep_locked(tri_stream *s, size_t n) {
  if (s->replay_len + n > TRI__REPLAY_MAX) {
    replay_drop_locked(s);
    return;
  }
  if (s->replay_len + n > s->replay_cap) {
    size_t cap = s->replay_cap ? s->replay_cap : 256;
    while (cap < s->replay_len + n)
      cap *= 2;
    uint8_t *nb = tri__realloc(s->replay, cap);
    if (nb == NULL) {
      replay_drop_locked(s);
      return;
    }
    tri__budget_add(TRI__B_RING, (int64_t)(cap - s->replay_cap));
    s->replay = nb;
    s->replay_cap = cap;
  }
  size_t first = TRI__MIN(n, s->sb_cap - s->sb_head);
  memcpy(s->replay + s->replay_len, s->sb + s->sb_head, first);
  if (n > first)
    memcpy(s->replay + s->replay_len + first, s->sb, n - first);
  s->replay_len += n;
}

/* TRI__EV_RETRY: the ring becomes the kept bytes followed by what was
 * not written yet.  0, or -1 when out of memory. */
static int replay_restore_locked(tri_stream *s) {
  size_t total = s->replay_len + s->sb_len;
  if (s->replay_len == 0)
    return 0; /* nothing went out: the ring is the whole request */
  size_t cap = TRI__MAX(total, s->sb_limit);
  uint8_t *nb = tri__malloc(cap);
  if (nb == NULL)
    return -1;
  memcpy(nb, s->replay, s->replay_len);
  if (s->sb_len > 0) {
    size_t first = TRI__MIN(s->sb_len, s->sb_cap - s->sb_head);
    memcpy(nb + s->replay_len, s->sb + s->sb_head, first);
    if (s->sb_len > first)
      memcpy(nb + s->replay_len + first, s->sb, s->sb_len - first);
  }
  ring_free_locked(s);
  tri__budget_add(TRI__B_RING, (int64_t)cap);
  s->sb = nb;
  s->sb_cap = cap;
  s->sb_head = 0;
  s->sb_len = total;
  return 0;
}

static void stream_destroy(tri_stream *s) {
  TRI__ASSERT(s->rq_conn == NULL && s->conn_bytes == 0);
  drop_queue_locked(s);
  ring_free_locked(s);
  replay_drop_locked(s);
  tri__deframer_cleanup(&s->df);
  for (int i = 0; i < TRI__SPARES; i++)
    tri__spare_drop(__atomic_exchange_n(&s->spare[i], NULL, __ATOMIC_ACQ_REL));
  tri__md_cleanup(&s->req_md);
  tri__md_cleanup(&s->hdrs);
  tri__md_cleanup(&s->trl);
  tri__md_cleanup(&s->io_hdrs);
  tri__md_cleanup(&s->io_trl);
  tri__md_cleanup(&s->out_hdrs);
  tri__md_cleanup(&s->out_trl);
  if (s->method != s->method_buf)
    tri__free(s->method);
  tri__free(s->final_msg);
  tri__triple_free(s->triple);
  tri__free(s->finish_msg);
  tri__free(s->group);
  tri__free(s->version);
  tri__free(s->bad_ctype);
  tri__free(s->grpc_message);
  tri__free(s->req_ctype);
  tri__free(s->req_group);
  tri__free(s->req_version);
  tri__free(s->enc_name);
  tri__edge_free(s->edge);
  tri__quota_unref(s->quota);
  tri__peer_unref(s->peer);
  tri__cond_destroy(&s->rcv_cv);
  tri__cond_destroy(&s->snd_cv);
  tri__mutex_destroy(&s->mu);
  tri__free(s);
  tri__budget_add(TRI__B_STREAMS, -1);
}

void tri__stream_unref(tri_stream *s) {
  if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
    stream_destroy(s);
}

void tri__stream_arm_deadline(tri_stream *s) {
  if (s->deadline_ns == TRI__NO_DEADLINE)
    return;
  tri__stream_ref(s);
  tri__timer_start(&s->deadline_timer, s->deadline_ns);
}

void tri__stream_post_locked(tri_stream *s, unsigned ops) {
  if (s->loop != NULL)
    s->post_bits |= ops;
}

/* ---- the state machine ------------------------------------------------ */

/* Throw away what the send ring holds beyond the frame nghttp2 is already
 * writing (s->sb_inflight): those bytes must still go out whole, or the
 * DATA frame header nghttp2 wrote would lie (doc/DESIGN.md "Send ring"). */
static void ring_discard_locked(tri_stream *s) {
  if (s->sb_len > s->sb_inflight)
    s->sb_len = s->sb_inflight;
  if (s->sb_len == 0)
    ring_free_locked(s);
}

/* NULL stands for "" (readers say so): an OK status costs no malloc. */
static void set_str(char **dst, const char *msg) {
  tri__free(*dst);
  *dst = msg != NULL && *msg ? tri__strdup(msg) : NULL;
}

#ifdef TRI_DEBUG
/* The invariants every transition must keep (--enable-debug). */
static void check_invariants_locked(const tri_stream *s) {
  TRI__ASSERT(s->send_state >= TRI__SEND_OPEN &&
              s->send_state <= TRI__SEND_DONE);
  TRI__ASSERT(s->recv_state == TRI__RECV_OPEN ||
              s->recv_state == TRI__RECV_EOS);
  TRI__ASSERT(s->side == TRI__SERVER || s->hdrs_state != TRI__HDRS_REQUESTED);
  TRI__ASSERT(!s->drop || (s->final && tri__list_empty(&s->rq)));
  TRI__ASSERT(s->sb_inflight <= s->sb_len);
  TRI__ASSERT(s->sb_len <= s->sb_cap || s->sb == NULL);
  TRI__ASSERT(s->final || s->end_action == TRI__END_NONE);
  TRI__ASSERT(!s->app_closed || s->send_state != TRI__SEND_OPEN);
  TRI__ASSERT(s->rq_conn != NULL || s->conn_bytes == 0);
}
#define CHECK_INVARIANTS(s) check_invariants_locked(s)
#else
#define CHECK_INVARIANTS(s) ((void)0)
#endif

/*
 * Transition table (doc/DESIGN.md "Stream states"):
 *
 *   event       from                        to            side
 *   CLOSE_SEND  send OPEN                   CLOSING       client
 *   FINISH      send OPEN                   CLOSING       server
 *   SEND_DONE   send OPEN or CLOSING        DONE          both
 *   PEER_EOS    recv OPEN                   EOS           both
 *   HDRS_REQ    hdrs NONE                   REQUESTED     server
 *   HDRS_DONE   hdrs NONE or REQUESTED      DONE          both
 *   END         final 0                     1             both
 *   RETRY       send DONE/CLOSING/OPEN      CLOSING (app  client
 *               (final 0, hdrs NONE,        closed) or
 *               recv OPEN, bytes kept)      OPEN
 *
 * Anything else is a no-op returning 0.  END moves no other state; on a
 * server whose response is still incomplete it replaces the status the
 * trailers will carry and empties the send ring, so a cut response can
 * never end with OK (with TRI__END_STATUS the send side then counts as
 * closing: tri__stream_send_ending()).
 */
int tri__stream_ev_locked(tri_stream *s, int ev, int code, const char *msg,
                          int drop, int action) {
  int changed = 0;

  switch (ev) {
  case TRI__EV_CLOSE_SEND:
  case TRI__EV_FINISH:
    TRI__ASSERT(ev == TRI__EV_CLOSE_SEND ? s->side == TRI__CLIENT
                                         : s->side == TRI__SERVER);
    if (s->send_state != TRI__SEND_OPEN || s->final)
      break;
    s->send_state = TRI__SEND_CLOSING;
    s->app_closed = 1;
    if (ev == TRI__EV_FINISH) {
      s->finish_code = code;
      set_str(&s->finish_msg, msg);
    }
    tri__stream_wake(s, TRI__WAKE_SND); /* blocked senders: side closed */
    changed = 1;
    break;
  case TRI__EV_SEND_DONE:
    if (s->send_state == TRI__SEND_DONE)
      break;
    s->send_state = TRI__SEND_DONE;
    tri__stream_wake(s, TRI__WAKE_SND);
    changed = 1;
    break;
  case TRI__EV_PEER_EOS:
    if (s->recv_state != TRI__RECV_OPEN)
      break;
    s->recv_state = TRI__RECV_EOS;
    tri__stream_wake(s, TRI__WAKE_RCV);
    changed = 1;
    break;
  case TRI__EV_HDRS_REQ:
    TRI__ASSERT(s->side == TRI__SERVER);
    if (s->hdrs_state != TRI__HDRS_NONE || s->final)
      break;
    s->hdrs_state = TRI__HDRS_REQUESTED;
    changed = 1;
    break;
  case TRI__EV_HDRS_DONE:
    if (s->hdrs_state == TRI__HDRS_DONE)
      break;
    s->hdrs_state = TRI__HDRS_DONE;
    if (s->side == TRI__CLIENT)
      replay_drop_locked(s); /* the server answered: never retried */
    tri__stream_wake(s, TRI__WAKE_RCV);
    changed = 1;
    break;
  case TRI__EV_END:
    if (s->final)
      break;
    /* 7.2: a client call that ends CANCELLED (e.g. the server's reset)
     * after its deadline passed reports DEADLINE_EXCEEDED. */
    if (s->side == TRI__CLIENT && code == TRI_CANCELLED &&
        s->deadline_ns != TRI__NO_DEADLINE &&
        tri__now_ns() >= s->deadline_ns) {
      code = TRI_DEADLINE_EXCEEDED;
      msg = "deadline exceeded";
    }
    __atomic_store_n(&s->final, 1, __ATOMIC_RELEASE);
    s->final_code = code;
    set_str(&s->final_msg, msg);
    s->end_action = action;
    if (drop) {
      s->drop = 1;
      drop_queue_locked(s);
      tri__stream_uncount_locked(s);
    }
    if (s->side == TRI__CLIENT) {
      /* Whatever headers were published stay; none will be any more. */
      s->hdrs_state = TRI__HDRS_DONE;
    } else if (s->send_state != TRI__SEND_DONE && code != TRI_OK) {
      /* The response is incomplete: what is still queued will not be
       * delivered, so the trailers (if any go out) carry this status,
       * never the handler's earlier OK. */
      s->finish_code = code;
      set_str(&s->finish_msg, msg);
      ring_discard_locked(s);
    }
    if (s->side == TRI__CLIENT && (drop || action == TRI__END_RESET))
      ring_discard_locked(s); /* nothing more will be sent */
    if (s->side == TRI__CLIENT)
      replay_drop_locked(s);
    tri__stream_wake(s, TRI__WAKE_RCV | TRI__WAKE_SND);
    changed = 1;
    break;
  case TRI__EV_RETRY:
    /* Only a client stream the server never answered, once, with every
     * byte it sent still kept. */
    if (s->side != TRI__CLIENT || s->final || s->replay_off ||
        s->hdrs_state != TRI__HDRS_NONE || s->recv_state != TRI__RECV_OPEN)
      break;
    if (replay_restore_locked(s) != 0)
      break;
    replay_drop_locked(s); /* once */
    s->sb_inflight = 0;
    s->io_deferred = 0;
    s->send_state = s->app_closed ? TRI__SEND_CLOSING : TRI__SEND_OPEN;
    tri__stream_wake(s, TRI__WAKE_SND);
    changed = 1;
    break;
  default:
    TRI__ASSERT(!"unknown stream event");
    break;
  }
  CHECK_INVARIANTS(s);
  return changed;
}

int tri__stream_abort(tri_stream *s, int code, const char *msg, int drop,
                      int action) {
  int set;

  tri__mutex_lock(&s->mu);
  if (held_wakes.s == NULL)
    held_wakes.s = s; /* broadcast once s->mu is free */
  set = tri__stream_ev_locked(s, TRI__EV_END, code, msg, drop, action);
  if (set)
    tri__stream_post_locked(s, TRI__OP_END);
  tri__stream_unlock_post(s); /* broadcasts, then wakes the I/O thread */
  tri__stream_flush_held_wakes(s); /* when nothing was posted */
  if (set && tri__timer_stop(&s->deadline_timer))
    tri__stream_unref(s); /* the timer's reference; ours keeps s alive */
  return set;
}

/* What send/recv report once the stream has ended (s->mu held). */
static int final_rv(const tri_stream *s) {
  return s->final_code == TRI_OK ? TRI_EOF : s->final_code;
}

/* Streams inherited through fork() belong to threads that do not exist in
 * this process: every call on them fails at once, touching no lock. */
static int forked(const tri_stream *s) {
  return s->fork_gen != tri__fork_gen();
}

/* ---- receive ---------------------------------------------------------- */

/* recv_common's mode: the message into a tri_buf or into the caller's
 * buffer; RECV_MORE: more of the same answer is awaited after it (the
 * taken message leaves answer_due set, so the next recv may spin). */
enum { RECV_BUF = 0, RECV_INTO = 1, RECV_MORE = 2 };

static void request_headers_locked(tri_stream *s) {
  /* 11.9: a server that blocks before sending anything still sends its
   * response HEADERS, so clients that wait for them get out. */
  if (s->side == TRI__SERVER && !s->hdrs_at_end &&
      tri__stream_ev_locked(s, TRI__EV_HDRS_REQ, 0, NULL, 0, 0))
    tri__stream_post_locked(s, TRI__OP_HEADERS);
}

/* Predicate of recv: a result is ready (s->mu held). */
static int recv_ready(const tri_stream *s) {
  return !tri__list_empty(&s->rq) || s->final ||
         (s->side == TRI__SERVER && s->recv_state == TRI__RECV_EOS);
}

static int recv_common(tri_stream *s, int mode, tri_buf **msg, void *buf,
                       size_t cap, size_t *len, int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? TRI__NO_DEADLINE
                                    : tri__deadline_after_ms(timeout_ms);
  tri_buf *got = NULL;
  int spun = 0, rv;

  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  while (!recv_ready(s) && timeout_ms != 0) {
    request_headers_locked(s);
    if (s->post_bits != 0) {
      /* The response HEADERS go out before this recv waits (11.9): hand
       * them to the I/O thread now, not at the next unlock_post. */
      tri__stream_unlock_post(s);
      tri__mutex_lock(&s->mu);
      continue;
    }
    s->rcv_waiters++;
    if (!spun && s->spin_ns > 0 && s->answer_due) {
      /* Counted as a waiter, so what would wake it bumps rcv_seq.  The
       * predicate is checked again after the spin, whatever its result:
       * a wake-up that came while the lock was let go is not lost. */
      unsigned seen = __atomic_load_n(&s->rcv_seq, __ATOMIC_ACQUIRE);
      spun = 1;
      tri__mutex_unlock(&s->mu);
      (void)tri__spin_watch(&s->rcv_seq, seen, s->spin_ns, deadline);
      tri__mutex_lock(&s->mu);
      s->rcv_waiters--;
      continue;
    }
    int r = tri__cond_wait_until(&s->rcv_cv, &s->mu, deadline);
    s->rcv_waiters--;
    if (r == ETIMEDOUT)
      break;
  }
  if (!tri__list_empty(&s->rq)) {
    tri_buf *b = tri__container_of(s->rq.next, tri_buf, link);
    if (mode & RECV_INTO) {
      *len = b->len;
      if (b->len > cap) {
        rv = TRI_ENOSPC;
        goto out;
      }
    }
    tri__list_remove(&b->link);
    if (!(mode & RECV_MORE))
      s->answer_due = 0;
    s->rq_bytes -= b->len;
    tri__budget_add(TRI__B_RQ, -(int64_t)b->len);
    tri__flow_dequeued_locked(s, b->len);
    if (!(mode & RECV_INTO))
      *msg = b;
    else
      got = b; /* copied below, without the lock */
    rv = TRI_OK;
  } else if (s->side == TRI__SERVER && s->recv_state == TRI__RECV_EOS &&
             !s->drop) {
    rv = TRI_EOF;
  } else if (s->final) {
    rv = final_rv(s);
  } else {
    if (timeout_ms == 0)
      request_headers_locked(s);
    rv = TRI_ETIMEDOUT;
  }
out:
  tri__stream_unlock_post(s);
  if (got != NULL) {
    if (got->len)
      memcpy(buf, got->data, got->len);
    tri__stream_recycle(s, got);
  }
  tri__stream_unref(s);
  return rv;
}

TRI_API int tri_stream_recv_ex(tri_stream *s, tri_buf **msg, int timeout_ms) {
  if (s == NULL || msg == NULL)
    return TRI_EINVAL;
  *msg = NULL;
  return recv_common(s, RECV_BUF, msg, NULL, 0, NULL, timeout_ms);
}

TRI_API int tri_stream_recv(tri_stream *s, tri_buf **msg) {
  return tri_stream_recv_ex(s, msg, -1);
}

int tri__stream_recv_more(tri_stream *s, tri_buf **msg) {
  *msg = NULL;
  return recv_common(s, RECV_BUF | RECV_MORE, msg, NULL, 0, NULL, -1);
}

TRI_API int tri_stream_recv_into(tri_stream *s, void *buf, size_t cap,
                                 size_t *len, int timeout_ms) {
  if (s == NULL || len == NULL || (buf == NULL && cap > 0))
    return TRI_EINVAL;
  *len = 0;
  return recv_common(s, RECV_INTO, NULL, buf, cap, len, timeout_ms);
}

/* Blocks kept for reuse: below this, malloc's own caches do as well; above
 * the top, an idle stream would hold too much. */
#define RECYCLE_MIN ((size_t)4 * 1024)
#define RECYCLE_MAX ((size_t)256 * 1024)

void tri__stream_recycle(tri_stream *s, tri_buf *b) {
  /* Not for a stream that has ended: no message will come to fill it,
   * and it would hold its share of TRI__SPARE_MAX until freed. */
  if (b != NULL && b->cap >= RECYCLE_MIN && b->cap <= RECYCLE_MAX &&
      b->data == b->bytes && !__atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
    /* Counted first, so concurrent recyclers cannot pass the bound
     * together; given back if it is passed or no slot is free. */
    int64_t kept = __atomic_add_fetch(&tri__budget_ctr[TRI__B_SPARE],
                                      (int64_t)b->cap, __ATOMIC_RELAXED);
    if (kept <= TRI__SPARE_MAX) {
      for (int i = 0; i < TRI__SPARES; i++) {
        tri_buf *none = NULL;
        if (__atomic_compare_exchange_n(&s->spare[i], &none, b, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
          return;
      }
    }
    tri__budget_add(TRI__B_SPARE, -(int64_t)b->cap);
  }
  tri__free(b);
}

void tri__stream_take_spare(tri_stream *s) {
  if (s->df.spare != NULL || s->df.cur != NULL)
    return;
  for (int i = 0; i < TRI__SPARES; i++)
    if (__atomic_load_n(&s->spare[i], __ATOMIC_RELAXED) != NULL) {
      s->df.spare = __atomic_exchange_n(&s->spare[i], NULL, __ATOMIC_ACQ_REL);
      if (s->df.spare != NULL)
        return;
    }
}

/* ---- send ------------------------------------------------------------- */

/* Copy |n| bytes into the ring (space checked by the caller). */
static void ring_put(tri_stream *s, const uint8_t *p, size_t n) {
  size_t tail = (s->sb_head + s->sb_len) % s->sb_cap;
  size_t first = TRI__MIN(n, s->sb_cap - tail);
  memcpy(s->sb + tail, p, first);
  if (n > first)
    memcpy(s->sb, p + first, n - first);
  s->sb_len += n;
}

/* Copy the ring's |n| first bytes to |out| (linear). */
static void ring_copy_out(const tri_stream *s, uint8_t *out, size_t n) {
  size_t first = TRI__MIN(n, s->sb_cap - s->sb_head);
  memcpy(out, s->sb + s->sb_head, first);
  if (n > first)
    memcpy(out + first, s->sb, n - first);
}

/* Wake a sender blocked on a full ring once the space it waits for is
 * there (or the ring is empty), not on every frame (s->mu held). */
static int sender_wakeable(const tri_stream *s) {
  return s->snd_waiters > 0 &&
         (s->sb_len == 0 ||
          (s->sb_len < s->sb_limit && s->sb_limit - s->sb_len >= s->snd_need));
}

void tri__stream_ring_consumed_locked(tri_stream *s, size_t n) {
  TRI__ASSERT(n <= s->sb_len);
  n = TRI__MIN(n, s->sb_len);
  if (!s->replay_off && n > 0)
    replay_keep_locked(s, n); /* client: until the response begins */
  s->sb_head = (s->sb_head + n) % (s->sb_cap ? s->sb_cap : 1);
  s->sb_len -= n;
  s->sb_inflight = n >= s->sb_inflight ? 0 : s->sb_inflight - n;
  if (s->sb_len == 0) {
    s->sb_head = 0;
    if (s->sb_cap > s->sb_limit)
      ring_free_locked(s); /* an oversized message went out */
  }
  if (sender_wakeable(s))
    tri__stream_wake(s, TRI__WAKE_SND);
}

/* Make the ring's allocation hold |want| bytes (s->mu held).  The ring
 * starts small and doubles, so an idle or lightly used stream costs a few
 * hundred bytes, not the whole send buffer. */
static int ring_reserve(tri_stream *s, size_t want) {
  size_t cap;
  uint8_t *nb;

  if (s->sb != NULL && s->sb_cap >= want)
    return TRI_OK;
  cap = s->sb != NULL ? s->sb_cap : 256;
  while (cap < want)
    cap *= 2;
  if (cap > TRI__MAX(s->sb_limit, want))
    cap = TRI__MAX(s->sb_limit, want);
  nb = tri__malloc(cap);
  if (nb == NULL)
    return TRI_ENOMEM;
  tri__budget_add(TRI__B_RING, (int64_t)cap);
  if (s->sb != NULL) {
    ring_copy_out(s, nb, s->sb_len); /* linearise */
    tri__budget_add(TRI__B_RING, -(int64_t)s->sb_cap);
    tri__free(s->sb);
  }
  s->sb = nb;
  s->sb_cap = cap;
  s->sb_head = 0;
  return TRI_OK;
}

/* Whether |total| more bytes may be queued now (s->mu held): 1 when they
 * fit in the send buffer (or it is empty); 0 when they do not; -1 when
 * they fit but need a new block while the I/O thread writes from the
 * current one with s->mu released (s->sb_writing, tri__send_data_cb). */
static int ring_fits(const tri_stream *s, size_t total) {
  if (s->sb_len + total > s->sb_limit && s->sb_len != 0)
    return 0;
  return s->sb_writing && s->sb_cap < s->sb_len + total ? -1 : 1;
}

/* What a send reports once it cannot go out (s->mu held): the caller's
 * own close comes first (a server after finish: TRI_ESTATE, a client after
 * close_send: TRI_EOF), whatever ended the stream since; otherwise the
 * final status. */
static int send_closed_rv(const tri_stream *s) {
  if (s->app_closed && s->side == TRI__SERVER)
    return TRI_ESTATE;
  if (s->final && s->final_code != TRI_OK)
    return s->final_code;
  return s->side == TRI__SERVER ? TRI_ESTATE : TRI_EOF;
}

/* Queue |hdr| + |payload| (s->mu held), all or nothing: wait (bounded by
 * |deadline|) until the whole framed message fits in the send buffer, so a
 * timeout never leaves half a message behind and the stream stays usable.
 * A message larger than the buffer waits for it to be empty and is then
 * taken whole: memory stays bounded by max(send buffer, the message the
 * caller already holds).  Every wake-up re-checks the send state: a send
 * side closed by another thread while this one waited (close_send,
 * finish) fails the send, so no message is queued after END_STREAM. */
static int write_locked(tri_stream *s, const uint8_t *hdr, size_t hlen,
                        const uint8_t *payload, size_t plen,
                        int64_t deadline, tri__fill_fn fill, void *ctx) {
  size_t total = hlen + plen;
  int rv;

  for (;;) {
    if (s->side == TRI__CLIENT && s->final)
      return final_rv(s);
    if (s->send_state != TRI__SEND_OPEN || s->final)
      return send_closed_rv(s);
    int fits = ring_fits(s, total), r;
    if (fits > 0)
      break;
    s->snd_need = total > s->sb_limit ? s->sb_limit : total;
    s->snd_waiters++;
    /* A message that fits only waits for the I/O thread's non-blocking
     * write to end (it wakes senders right after): that is no wait for
     * space, so even a zero timeout takes it, as before that write ran
     * unlocked. */
    r = fits < 0 ? (tri__cond_wait(&s->snd_cv, &s->mu), 0)
                 : tri__cond_wait_until(&s->snd_cv, &s->mu, deadline);
    s->snd_waiters--;
    if (r == ETIMEDOUT && s->send_state == TRI__SEND_OPEN && !s->final &&
        ring_fits(s, total) == 0)
      return TRI_ETIMEDOUT;
  }
  rv = ring_reserve(s, s->sb_len + total);
  if (rv != TRI_OK)
    return rv;
  if (hlen)
    ring_put(s, hdr, hlen);
  if (plen && fill != NULL) {
    size_t before = s->sb_len;
    fill(ctx, s); /* tri__stream_ring_put_locked(), plen bytes */
    TRI__ASSERT(s->sb_len - before == plen);
    (void)before;
  } else if (plen) {
    ring_put(s, payload, plen);
  }
  s->answer_due = 1;
  request_headers_locked(s);
  if (s->io_deferred) {
    s->io_deferred = 0;
    tri__stream_post_locked(s, TRI__OP_DATA);
  }
  return TRI_OK;
}

/* Client half-close (s->mu held). */
static void close_send_locked(tri_stream *s) {
  if (tri__stream_ev_locked(s, TRI__EV_CLOSE_SEND, 0, NULL, 0, 0) &&
      s->io_deferred) {
    s->io_deferred = 0;
    tri__stream_post_locked(s, TRI__OP_DATA);
  }
}

static int finish_locked(tri_stream *s, int code, const char *message);

/* TRI_SEND_LAST after a queued message (s->mu held): the client
 * half-closes, the server finishes with OK.  Under the same lock as the
 * message, so the I/O thread is woken once and writes both together. */
static void send_last_locked(tri_stream *s) {
  if (s->side == TRI__CLIENT)
    close_send_locked(s);
  else
    (void)finish_locked(s, TRI_OK, NULL); /* open: the message was taken */
}

TRI_API int tri_stream_send_ex(tri_stream *s, const void *data, size_t len,
                               unsigned flags, int timeout_ms) {
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  uint8_t *comp = NULL;
  const uint8_t *payload = data;
  size_t plen = len;
  int compressed = 0, rv;

  if (s == NULL || (data == NULL && len > 0) ||
      len > UINT32_MAX - TRI__FRAME_HDR_LEN)
    return TRI_EINVAL;
  if (forked(s))
    return TRI_UNAVAILABLE;
  if (s->enc_out != 0 && !(flags & TRI_SEND_NO_COMPRESS)) {
    /* 3.4: a fresh context per message. */
    rv = tri__compress(s->enc_out, data, len, &comp, &plen);
    if (rv != TRI_OK)
      return rv;
    if (plen > UINT32_MAX) {
      tri__free(comp);
      return TRI_EINVAL;
    }
    payload = comp;
    compressed = 1;
  }
  tri__frame_put_header(hdr, compressed, (uint32_t)plen);

  int64_t deadline = timeout_ms < 0 ? TRI__NO_DEADLINE
                                    : tri__deadline_after_ms(timeout_ms);
  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  rv = write_locked(s, hdr, TRI__FRAME_HDR_LEN, payload, plen, deadline,
                    NULL, NULL);
  if (rv == TRI_OK && (flags & TRI_SEND_LAST))
    send_last_locked(s);
  tri__stream_unlock_post(s); /* one wake-up for the message and its end */
  tri__stream_unref(s);
  tri__free(comp);
  return rv;
}

int tri__stream_prefill_last(tri_stream *s, const void *data, size_t len) {
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  uint8_t *comp = NULL;
  const uint8_t *payload = data;
  size_t plen = len;
  int compressed = 0, rv;

  TRI__ASSERT(s->side == TRI__CLIENT && s->loop == NULL);
  if ((data == NULL && len > 0) || len > UINT32_MAX - TRI__FRAME_HDR_LEN)
    return TRI_EINVAL;
  if (s->enc_out != 0) {
    rv = tri__compress(s->enc_out, data, len, &comp, &plen);
    if (rv != TRI_OK)
      return rv;
    if (plen > UINT32_MAX) {
      tri__free(comp);
      return TRI_EINVAL;
    }
    payload = comp;
    compressed = 1;
  }
  tri__frame_put_header(hdr, compressed, (uint32_t)plen);
  tri__mutex_lock(&s->mu);
  rv = write_locked(s, hdr, TRI__FRAME_HDR_LEN, payload, plen,
                    TRI__NO_DEADLINE, NULL, NULL); /* the ring is empty */
  if (rv == TRI_OK)
    close_send_locked(s);
  tri__stream_unlock_post(s); /* not attached: nothing is posted */
  tri__free(comp);
  return rv;
}

/* Triple unary form (lib/triple.c): |len| bytes as the whole request body,
 * no length prefix, then half-close. */
int tri__stream_send_bare_last(tri_stream *s, const void *data, size_t len) {
  int rv;

  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  rv = write_locked(s, NULL, 0, data, len, TRI__NO_DEADLINE, NULL, NULL);
  if (rv == TRI_OK)
    close_send_locked(s);
  tri__stream_unlock_post(s);
  tri__stream_unref(s);
  return rv;
}

void tri__stream_ring_put_locked(tri_stream *s, const uint8_t *p, size_t n) {
  ring_put(s, p, n);
}

int tri__stream_send_fill(tri_stream *s, size_t plen, unsigned flags,
                          int timeout_ms, tri__fill_fn fill, void *ctx) {
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  int rv;

  if (plen > UINT32_MAX - TRI__FRAME_HDR_LEN)
    return TRI_EINVAL;
  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__frame_put_header(hdr, 0, (uint32_t)plen);
  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  rv = write_locked(s, hdr, TRI__FRAME_HDR_LEN, NULL, plen,
                    timeout_ms < 0 ? TRI__NO_DEADLINE
                                   : tri__deadline_after_ms(timeout_ms),
                    fill, ctx);
  if (rv == TRI_OK && (flags & TRI_SEND_LAST))
    send_last_locked(s);
  tri__stream_unlock_post(s);
  tri__stream_unref(s);
  return rv;
}

TRI_API int tri_stream_send(tri_stream *s, const void *data, size_t len) {
  return tri_stream_send_ex(s, data, len, 0, -1);
}

TRI_API int tri_stream_close_send(tri_stream *s) {
  if (s == NULL)
    return TRI_EINVAL;
  if (s->side != TRI__CLIENT)
    return TRI_ESTATE;
  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__mutex_lock(&s->mu);
  close_send_locked(s);
  tri__stream_unlock_post(s);
  return TRI_OK;
}

/* ---- ending ----------------------------------------------------------- */

TRI_API void tri_stream_cancel(tri_stream *s) {
  if (s == NULL || forked(s))
    return;
  tri__stream_abort(s, TRI_CANCELLED, "cancelled by the application", 1,
                    TRI__END_RESET);
}

TRI_API void tri_stream_free(tri_stream *s) {
  if (s == NULL)
    return;
  if (s->side == TRI__SERVER)
    return; /* borrowed by the handler; the library owns it */
  if (forked(s))
    return; /* the parent's; its memory is abandoned in this process */
  tri__stream_abort(s, TRI_CANCELLED, "stream freed by the application", 1,
                    TRI__END_RESET);
  tri__stream_unref(s);
}

TRI_API int tri_stream_wait_status(tri_stream *s, int timeout_ms,
                                   const char **message) {
  int64_t deadline = timeout_ms < 0 ? TRI__NO_DEADLINE
                                    : tri__deadline_after_ms(timeout_ms);
  int rv;

  if (message)
    *message = "";
  if (s == NULL)
    return TRI_EINVAL;
  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  while (!s->final && timeout_ms != 0) {
    if (tri__cond_wait_until(&s->rcv_cv, &s->mu, deadline) == ETIMEDOUT)
      break;
  }
  if (s->final) {
    rv = s->final_code;
    if (message)
      *message = s->final_msg ? s->final_msg : "";
  } else {
    rv = TRI_ETIMEDOUT;
  }
  tri__stream_unlock_post(s);
  tri__stream_unref(s);
  return rv;
}

TRI_API const tri_metadata *tri_stream_headers(tri_stream *s,
                                               int timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? TRI__NO_DEADLINE
                                    : tri__deadline_after_ms(timeout_ms);
  const tri_metadata *md = NULL;

  if (s == NULL)
    return NULL;
  if (s->side == TRI__SERVER)
    return &s->hdrs; /* complete before the handler runs, then immutable */
  if (forked(s))
    return NULL;
  tri__stream_ref(s);
  tri__mutex_lock(&s->mu);
  while (s->hdrs_state != TRI__HDRS_DONE && timeout_ms != 0) {
    if (tri__cond_wait_until(&s->rcv_cv, &s->mu, deadline) == ETIMEDOUT)
      break;
  }
  if (s->hdrs_state == TRI__HDRS_DONE)
    md = &s->hdrs; /* published once by the I/O thread, then immutable */
  tri__stream_unlock_post(s);
  tri__stream_unref(s);
  return md;
}

TRI_API const tri_metadata *tri_stream_trailers(tri_stream *s) {
  const tri_metadata *md;
  if (s == NULL || s->side == TRI__SERVER || forked(s))
    return NULL;
  tri__mutex_lock(&s->mu);
  md = s->final ? &s->trl : &empty_md; /* published with the final status */
  tri__stream_unlock_post(s);
  return md;
}

TRI_API const char *tri_stream_method(const tri_stream *s) {
  return s && s->method ? s->method : "";
}

TRI_API int64_t tri_stream_remaining_ms(const tri_stream *s) {
  if (s == NULL || s->deadline_ns == TRI__NO_DEADLINE)
    return -1;
  int64_t left = s->deadline_ns - tri__now_ns();
  return left <= 0 ? 0 : (left + TRI__NS_PER_MS - 1) / TRI__NS_PER_MS;
}

/* ---- server side ------------------------------------------------------ */

/* Server: append to the response headers or trailers while they can
 * still go out (headers until they are requested, trailers until finish). */
static int add_out_md(tri_stream *s, int trailers, const char *key,
                      const void *value, size_t value_len) {
  int rv;
  if (s == NULL || key == NULL)
    return TRI_EINVAL;
  if (s->side != TRI__SERVER)
    return TRI_ESTATE;
  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__mutex_lock(&s->mu);
  if (trailers ? s->send_state != TRI__SEND_OPEN
               : s->hdrs_state != TRI__HDRS_NONE)
    rv = TRI_ESTATE;
  else
    rv = tri_metadata_add(trailers ? &s->out_trl : &s->out_hdrs, key, value,
                          value_len);
  tri__stream_unlock_post(s);
  return rv;
}

TRI_API int tri_stream_add_header(tri_stream *s, const char *key,
                                  const void *value, size_t value_len) {
  return add_out_md(s, 0, key, value, value_len);
}

TRI_API int tri_stream_add_trailer(tri_stream *s, const char *key,
                                   const void *value, size_t value_len) {
  return add_out_md(s, 1, key, value, value_len);
}

TRI_API int tri_stream_send_headers(tri_stream *s) {
  int rv = TRI_OK;
  if (s == NULL)
    return TRI_EINVAL;
  if (s->side != TRI__SERVER)
    return TRI_ESTATE;
  if (forked(s))
    return TRI_UNAVAILABLE;
  tri__mutex_lock(&s->mu);
  if (s->final && s->final_code != TRI_OK)
    rv = s->final_code;
  else
    request_headers_locked(s);
  tri__stream_unlock_post(s);
  return rv;
}

/* The server ends the call with |code| (s->mu held): trailers after what
 * is queued.  Posts; the caller's unlock wakes the I/O thread. */
static int finish_locked(tri_stream *s, int code, const char *message) {
  if (s->app_closed)
    return TRI_ESTATE; /* finished before */
  if (s->final) {
    /* Already ended (deadline, cancel, limit): the client gets (or got)
     * that status, not the handler's. */
    return s->final_code == TRI_OK ? TRI_ESTATE : s->final_code;
  }
  tri__stream_ev_locked(s, TRI__EV_FINISH, code, message, 0, 0);
  request_headers_locked(s);
  s->io_deferred = 0;
  tri__stream_post_locked(s, TRI__OP_HEADERS | TRI__OP_DATA);
  return TRI_OK;
}

int tri__stream_finish(tri_stream *s, int code, const char *message) {
  int rv;
  tri__mutex_lock(&s->mu);
  rv = finish_locked(s, code, message);
  tri__stream_unlock_post(s);
  return rv;
}

TRI_API int tri_stream_finish(tri_stream *s, int code, const char *message) {
  if (s == NULL || !tri__code_is_wire(code))
    return TRI_EINVAL;
  if (s->side != TRI__SERVER)
    return TRI_ESTATE;
  if (forked(s))
    return TRI_UNAVAILABLE;
  return tri__stream_finish(s, code, message);
}

TRI_API int tri_stream_set_compression(tri_stream *s, const char *encoding) {
  int enc, rv = TRI_OK;
  if (s == NULL)
    return TRI_EINVAL;
  if (s->side != TRI__SERVER)
    return TRI_ESTATE;
  enc = encoding ? tri__enc_from_name(encoding, strlen(encoding))
                 : TRI__ENC_IDENTITY;
  if (enc == TRI__ENC_UNKNOWN)
    return TRI_UNIMPLEMENTED;
  if (forked(s))
    return TRI_UNAVAILABLE;
  /* 9.6: never send a coding the client cannot decode. */
  if (enc != TRI__ENC_IDENTITY && !(s->accept_enc_mask & (1 << enc)))
    enc = TRI__ENC_IDENTITY;
  tri__mutex_lock(&s->mu);
  if (s->hdrs_state != TRI__HDRS_NONE)
    rv = TRI_ESTATE;
  else
    s->enc_out = enc;
  tri__stream_unlock_post(s);
  return rv;
}

TRI_API int tri_stream_server_draining(const tri_stream *s) {
  if (s == NULL || s->side != TRI__SERVER || s->srv == NULL)
    return 0;
  return tri__server_draining(s->srv);
}
