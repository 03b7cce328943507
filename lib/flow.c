/*
 * Flow control and the unread-bytes budgets (doc/PROTOCOL.md 8.10, 13.4;
 * RFC 9113 §5.2, §6.9).
 *
 * Automatic WINDOW_UPDATE is off.  Every byte of a complete message queued
 * for the application is counted, until the application reads it, against
 * two budgets:
 *
 *   stream   s->rq_limit unread bytes: past it the stream window is owed
 *            (s->unacked) until the application reads;
 *   conn     c->rq_total against the connection's limit: past it the
 *            connection window is withheld (c->conn_owed) until bytes are
 *            given back, so many stalled streams cannot grow memory
 *            without bound.
 *
 * Bytes are given back on exactly one path each: a read takes one
 * message's bytes back (tri__flow_dequeued_locked); a dropped queue, a
 * detached stream or a destroyed one gives back everything it still
 * counts (tri__stream_uncount_locked, idempotent).  The process counters
 * of budget.h mirror every change, so tests can check that all of it
 * returns to zero.
 *
 * Threads: the I/O thread, except tri__flow_dequeued_locked() and
 * tri__stream_uncount_locked(), which run on any thread under s->mu.
 */
#include "tri_int.h"

#include "budget.h"
#include "compress.h"
#include "conn.h"
#include "edge.h"
#include "status.h"

size_t tri__flow_conn_limit(const tri__conn *c) {
  return c->is_server ? c->loop->cfg.conn_rq_limit
                      : c->loop->ccfg.conn_rq_limit;
}

/* Count |n| more bytes held for |s| against its connection (s->mu). */
static void count_locked(tri__conn *c, tri_stream *s, size_t n) {
  if (n == 0)
    return;
  if (s->rq_conn == NULL)
    s->rq_conn = c;
  s->conn_bytes += n;
  __atomic_add_fetch(&c->rq_total, n, __ATOMIC_RELAXED);
  tri__budget_add(TRI__B_CONN_RQ, (int64_t)n);
}

/* Give |n| counted bytes back (s->mu); returns 1 when the connection has
 * window withheld and is now under its limit. */
static int uncount_locked(tri_stream *s, size_t n) {
  tri__conn *c = s->rq_conn;
  size_t left;
  if (c == NULL || n == 0)
    return 0;
  TRI__ASSERT(n <= s->conn_bytes);
  if (n > s->conn_bytes)
    n = s->conn_bytes;
  s->conn_bytes -= n;
  left = __atomic_sub_fetch(&c->rq_total, n, __ATOMIC_RELAXED);
  tri__budget_add(TRI__B_CONN_RQ, -(int64_t)n);
  return __atomic_load_n(&c->owed_flag, __ATOMIC_RELAXED) &&
         left < tri__flow_conn_limit(c);
}

void tri__stream_uncount_locked(tri_stream *s) {
  if (uncount_locked(s, s->conn_bytes))
    tri__stream_post_locked(s, TRI__OP_WINDOW);
}

void tri__flow_dequeued_locked(tri_stream *s, size_t len) {
  int want = uncount_locked(s, TRI__MIN(len, s->conn_bytes));
  if (s->unacked > 0 && s->rq_bytes < s->rq_limit)
    want = 1; /* the stream window was owed */
  if (want && !s->window_posted) {
    s->window_posted = 1;
    tri__stream_post_locked(s, TRI__OP_WINDOW);
  }
}

/* Give back connection window withheld while the connection's unread
 * bytes were over budget, once they are under it again. */
void tri__flow_return_owed(tri__conn *c) {
  if (c->conn_owed == 0 || c->phase == TRI__CONN_CLOSED ||
      __atomic_load_n(&c->rq_total, __ATOMIC_RELAXED) >=
          tri__flow_conn_limit(c))
    return;
  nghttp2_session_consume_connection(c->sess, c->conn_owed);
  tri__budget_add(TRI__B_OWED, -(int64_t)c->conn_owed);
  c->conn_owed = 0;
  __atomic_store_n(&c->owed_flag, 0, __ATOMIC_RELAXED);
}

void tri__flow_conn_closed(tri__conn *c) {
  tri__budget_add(TRI__B_OWED, -(int64_t)c->conn_owed);
  c->conn_owed = 0;
  TRI__ASSERT(__atomic_load_n(&c->rq_total, __ATOMIC_RELAXED) == 0);
}

void tri__flow_window_op(tri__conn *c, tri_stream *s) {
  size_t n;
  tri__mutex_lock(&s->mu);
  n = s->unacked;
  s->unacked = 0;
  s->window_posted = 0;
  tri__mutex_unlock(&s->mu);
  if (n)
    nghttp2_session_consume_stream(c->sess, s->id, n);
  tri__flow_return_owed(c);
}

/* Append |n| messages to s->rq; |held| is the deframer's partial byte
 * count after them.  Returns 1 when the stream window must be withheld.
 *
 * Only complete queued messages count against the connection budget:
 * the application can always free them by reading.  A partial message
 * can only be freed by more bytes arriving, so counting it would let
 * partial messages on several streams hold the connection window back
 * for ever (every stream waiting for bytes nobody lets the peer send).
 * Partial bytes are bounded by the streams' windows and max_recv, and
 * tracked in s->partial_bytes and the process counters. */
static int queue_msgs(tri__conn *c, tri_stream *s, tri_buf **msgs, size_t n,
                      size_t held, size_t chunk) {
  int wake = 0, owe;
  size_t before;
  tri__mutex_lock(&s->mu);
  before = s->rq_bytes;
  for (size_t i = 0; i < n; i++) {
    tri_buf *m = msgs[i];
    if (s->drop) {
      tri__free(m);
      continue;
    }
    tri__list_insert_tail(&s->rq, &m->link);
    s->rq_bytes += m->len;
    tri__budget_add(TRI__B_RQ, (int64_t)m->len);
    wake = 1;
  }
  if (!s->drop) {
    s->partial_bytes = held;
    count_locked(c, s, s->rq_bytes - before);
  }
  wake = wake && s->rcv_waiters > 0;
  owe = s->rq_bytes >= s->rq_limit;
  if (owe)
    s->unacked += chunk;
  tri__mutex_unlock(&s->mu);
  /* After unlocking (on the I/O thread: at the end of the iteration, so
   * the headers, messages and trailers of one read wake once). */
  if (wake)
    tri__stream_wake(s, TRI__WAKE_RCV);
  return owe;
}

/* Decompress |*m| if flagged (3.4, 9.4).  Returns TRI_OK or a status with
 * *err set. */
static int inflate_msg(tri_stream *s, tri_buf **m, const char **err) {
  static _Thread_local char ebuf[200];
  tri_buf *d = NULL;
  int rv;

  if (!((*m)->flags & TRI_BUF_COMPRESSED))
    return TRI_OK;
  if (s->enc_in == TRI__ENC_IDENTITY || s->enc_in < 0) {
    if (s->enc_in < 0) {
      snprintf(ebuf, sizeof(ebuf),
               "message compressed with grpc-encoding '%s', which is not "
               "supported; supported: %s",
               s->enc_name ? s->enc_name : "?", tri__enc_accept_list());
      *err = ebuf;
    } else {
      *err = "compressed flag set without grpc-encoding";
    }
    return TRI_INTERNAL;
  }
  rv = tri__decompress(s->enc_in, (*m)->data, (*m)->len, s->max_recv, &d);
  if (rv == TRI_RESOURCE_EXHAUSTED) {
    snprintf(ebuf, sizeof(ebuf),
             "decompressed message exceeds %s %zu (%s)", s->max_recv_hint,
             s->max_recv, s->max_recv_setter);
    *err = ebuf;
    return rv;
  }
  if (rv != TRI_OK) {
    snprintf(ebuf, sizeof(ebuf), "cannot decompress message (%s)",
             tri__enc_name(s->enc_in));
    *err = ebuf;
    return rv;
  }
  d->flags |= TRI_BUF_COMPRESSED;
  tri__free(*m);
  *m = d;
  return TRI_OK;
}

void tri__flow_queue_one(tri__conn *c, tri_stream *s, tri_buf *m) {
  queue_msgs(c, s, &m, 1, 0, 0);
}

static int data_chunk(tri__conn *c, tri_stream *s, const uint8_t *data,
                      size_t len);

int tri__flow_data_chunk(tri__conn *c, tri_stream *s, const uint8_t *data,
                         size_t len) {
  uint8_t *tmp = NULL;
  int rv = 0;
  /* Triple unary bodies, gRPC-Web text (edge.c). */
  if (s->edge == NULL || tri__edge_data_in(c, s, &data, &len, &tmp))
    rv = data_chunk(c, s, data, len);
  tri__free(tmp);
  return rv;
}

static int data_chunk(tri__conn *c, tri_stream *s, const uint8_t *data,
                      size_t len) {
  nghttp2_session *sess = c->sess;
  int32_t id = s->id;
  size_t off = 0, nmsg = 0;
  tri_buf *batch[32];

  /* Connection window: returned at once while the connection's unread
   * bytes are under budget, else withheld until they are given back. */
  if (__atomic_load_n(&c->rq_total, __ATOMIC_RELAXED) <
      tri__flow_conn_limit(c)) {
    nghttp2_session_consume_connection(sess, len);
  } else {
    c->conn_owed += len;
    tri__budget_add(TRI__B_OWED, (int64_t)len);
    __atomic_store_n(&c->owed_flag, 1, __ATOMIC_RELAXED);
  }
  while (off < len) {
    size_t used = 0;
    tri_buf *m = NULL;
    const char *err = NULL;
    int rv;
    tri__stream_take_spare(s);
    rv = tri__deframer_feed(&s->df, data + off, len - off, &used, &m,
                                &err);
    off += used;
    if (rv == TRI_OK && m != NULL) {
      rv = inflate_msg(s, &m, &err);
      if (rv == TRI_OK && s->edge != NULL)
        rv = tri__edge_msg_in(s, &m, &err); /* JSON to protobuf */
      if (rv != TRI_OK) {
        tri__free(m);
        m = NULL;
      }
    }
    if (rv != TRI_OK) {
      char buf[200];
      queue_msgs(c, s, batch, nmsg, s->df.have, 0); /* dropped below */
      if (rv == TRI_RESOURCE_EXHAUSTED && s->df.rejected_len > 0)
        snprintf(buf, sizeof(buf),
                 "received message of %lu bytes exceeds %s %zu (%s)",
                 (unsigned long)s->df.rejected_len, s->max_recv_hint,
                 s->max_recv, s->max_recv_setter); /* 3.5 */
      else
        snprintf(buf, sizeof(buf), "%s", err ? err : tri_strerror(rv));
      nghttp2_session_consume_stream(sess, id, len);
      if (c->is_server) {
        tri__server_fail(c, s, rv, buf);
      } else {
        /* The messages before the rejected one stay readable; recv
         * reports the status after them (tri_stream_recv). */
        tri__io_end(s, rv, buf, 0, TRI__END_RESET);
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id,
                                  NGHTTP2_CANCEL); /* 6.3 */
      }
      return 0;
    }
    if (m != NULL) {
      if (nmsg == TRI__ARRAY_LEN(batch)) {
        /* a full batch goes first: order on the stream must be kept */
        queue_msgs(c, s, batch, nmsg, s->df.have, 0);
        nmsg = 0;
      }
      batch[nmsg++] = m;
    }
  }
  /* One lock round for the whole chunk; the waiter is signalled after the
   * lock is released so it does not wake into a held mutex. */
  if (!queue_msgs(c, s, batch, nmsg, s->df.have, len)) {
    nghttp2_session_consume_stream(sess, id, len);
    /* A stream that keeps receiving while its reader keeps up gets a
     * larger window (fewer stalls on bulk transfers); idle and slow
     * streams keep the small one, so the memory bound stays. */
    s->rx_total += len;
    if (!s->bulk_window && s->rx_total >= TRI__BULK_AFTER) {
      s->bulk_window = 1;
      nghttp2_session_set_local_window_size(sess, NGHTTP2_FLAG_NONE, id,
                                            TRI__BULK_WINDOW);
    }
  }
  return 0;
}
