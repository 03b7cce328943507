/*
 * Connections: lifetime (create, close), attaching and detaching streams,
 * and the nghttp2 callback table, which hands each event to the client
 * (h2client.c) or server (h2server.c) side.
 *
 * Threads: the I/O thread of the connection's loop only.
 */
#include "tri_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "budget.h"
#include "conn.h"
#include "edge.h"
#include "nv.h"
#include "triple_io.h"

tri_stream *tri__conn_stream(tri__conn *c, int32_t id) {
  if (c->phase == TRI__CONN_CLOSED)
    return NULL;
  return nghttp2_session_get_stream_user_data(c->sess, id);
}

void tri__conn_set_error(tri__conn *c, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  tri__free(c->error);
  c->error = tri__strdup(buf);
}

void tri__io_end(tri_stream *s, int code, const char *msg, int drop,
                 int action) {
  tri__mutex_lock(&s->mu);
  tri__stream_ev_locked(s, TRI__EV_END, code, msg, drop, action);
  /* A dropped queue may ask for window back: this is the I/O thread, so
   * do it here instead of posting to ourselves. */
  s->post_bits &= ~(unsigned)TRI__OP_WINDOW;
  tri__mutex_unlock(&s->mu);
  if (s->conn != NULL && s->conn->phase != TRI__CONN_CLOSED)
    tri__flow_return_owed(s->conn);
}

void tri__conn_watch(tri__conn *c, uint32_t events) {
  tri__loop_ep_set(c->loop, &c->src, events, &c->ep_events);
}

void tri__conn_detach(tri__loop *l, tri_stream *s) {
  tri__conn *c = s->conn;

  if (s->io_state == TRI__IO_CLOSED)
    return;
  if (c != NULL && s->id > 0 && c->phase != TRI__CONN_CLOSED)
    nghttp2_session_set_stream_user_data(c->sess, s->id, NULL);
  s->io_state = TRI__IO_CLOSED;
  if (tri__list_linked(&s->io_link)) {
    tri__list_remove(&s->io_link);
    if (c != NULL && s->id > 0)
      c->nsubmitted--; /* a slot may be free for a waiting stream */
  }
  tri__deframer_cleanup(&s->df);
  tri__mutex_lock(&s->mu);
  /* Nothing the stream still holds counts against the connection any
   * more; messages already queued stay readable. */
  s->partial_bytes = 0;
  tri__stream_uncount_locked(s);
  s->post_bits &= ~(unsigned)TRI__OP_WINDOW; /* returned below */
  s->rq_conn = NULL;
  tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  tri__mutex_lock(&l->cmd_mu);
  if (tri__list_linked(&s->op_link))
    tri__list_remove(&s->op_link);
  s->ops = 0;
  s->loop = NULL;
  s->post_bits = 0; /* nobody to post to any more */
  tri__mutex_unlock(&l->cmd_mu);
  tri__mutex_unlock(&s->mu);
  if (c != NULL && c->phase != TRI__CONN_CLOSED)
    tri__flow_return_owed(c);
  if (tri__timer_stop(&s->deadline_timer))
    tri__stream_unref(s);
  __atomic_sub_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
  tri__stream_unref(s); /* the loop's reference */
}

/* ---- lifetime ---------------------------------------------------------- */

#define LINGER_MS 2000
#define LINGER_MAX 256

typedef struct {
  tri__src src; /* first: epoll data.ptr */
  int64_t deadline;
  tri__list link;
} linger;

/* Close a connection's descriptor; one is free now, so a server paused
 * on EMFILE may accept again (tri__server_tick): at once when this loop
 * is the one that accepts, else the first close after the pause tells
 * the listening loop (which outlives the posting: h2server.c). */
static void fd_close(tri__loop *l, int fd) {
  close(fd);
  if (!l->is_server)
    return;
  l->accept_paused_until = 0;
  tri__loop *ls = l->listener;
  if (ls != NULL && ls != l &&
      __atomic_exchange_n(&ls->accept_blocked, 0, __ATOMIC_SEQ_CST))
    tri__loop_post(ls, TRI__LOOP_ACCEPT);
}

/* Discard what the peer still sends; 1 when it is done (EOF or error). */
static int drain_input(tri__loop *l, int fd) {
  for (int i = 0; i < 16; i++) {
    ssize_t n = recv(fd, l->rx->rbuf, TRI__READ_CHUNK, MSG_DONTWAIT);
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }
  return 0;
}

static void linger_free(tri__loop *l, linger *g) {
  tri__loop_ep_del(l, g->src.fd);
  fd_close(l, g->src.fd);
  tri__list_remove(&g->link);
  l->nlingering--;
  tri__free(g);
}

/* Close |fd| of a connection we end while the peer may still be writing:
 * closing a socket with unread input makes the kernel send a reset, which
 * can destroy our last frames (RFC 9113 §6.8 GOAWAY) before the peer reads
 * them.  Send FIN, then read and discard until the peer closes. */
static void close_lingering(tri__loop *l, int fd) {
  linger *g = NULL;
  shutdown(fd, SHUT_WR);
  if (drain_input(l, fd) || l->tearing_down || l->nlingering >= LINGER_MAX ||
      (g = tri__calloc(1, sizeof(*g))) == NULL) {
    fd_close(l, fd);
    return;
  }
  uint32_t reg = 0;
  g->src.kind = TRI__SRC_LINGER;
  g->src.fd = fd;
  g->deadline = tri__deadline_after_ms(LINGER_MS);
  tri__list_insert_tail(&l->lingering, &g->link);
  l->nlingering++;
  tri__loop_ep_set(l, &g->src, EPOLLIN, &reg);
}

void tri__linger_event(tri__loop *l, tri__src *src) {
  linger *g = (linger *)src;
  if (drain_input(l, g->src.fd))
    linger_free(l, g);
}

void tri__linger_tick(tri__loop *l, int64_t now, int64_t *next) {
  tri__list *n, *nx;
  for (n = l->lingering.next; n != &l->lingering; n = nx) {
    linger *g = tri__container_of(n, linger, link);
    nx = n->next;
    if (now >= g->deadline)
      linger_free(l, g);
    else
      *next = tri__deadline_min(*next, g->deadline);
  }
}

void tri__linger_close_all(tri__loop *l) {
  while (!tri__list_empty(&l->lingering))
    linger_free(l, tri__container_of(l->lingering.next, linger, link));
}

/* A quiet HTTP/2 connection (ready, |busy| false: no stream of the
 * caller's kind, nothing to write, nothing read) gives memory it does not
 * need back after TRIM_AFTER_MS: its output buffer (our own; it grows
 * again on the next write) and the pages of nghttp2's frame buffer
 * (h2mem.h).  Idle connections then cost what an idle session holds, not
 * what their busiest moment needed.  A connection that keeps working is
 * never quiet that long, so this costs it nothing.  Server connections
 * (h2server.c) and client ones (h2client.c) alike. */
#define TRIM_AFTER_MS 100

void tri__conn_trim_if_quiet(tri__conn *c, int busy, int64_t now,
                             int64_t *next) {
  if (c->h2mem.trimmed)
    return;
  if (busy || c->phase != TRI__CONN_READY || c->wlen != c->woff ||
      nghttp2_session_want_write(c->sess)) {
    c->quiet_since_ns = 0;
    return;
  }
  if (c->quiet_since_ns == 0)
    c->quiet_since_ns = now;
  int64_t due = c->quiet_since_ns + tri__ms_to_ns(TRIM_AFTER_MS);
  if (now < due) {
    *next = tri__deadline_min(*next, due);
    return;
  }
  tri__free(c->wbuf); /* empty (wlen == woff, both reset to 0) */
  c->wbuf = NULL;
  c->wlen = c->woff = c->wcap = 0;
  tri__h2mem_trim(&c->h2mem); /* sets trimmed even where it cannot */
  tri__budget_add(TRI__B_QUIET, 1); /* back on the next read or close */
}

void tri__conn_close(tri__conn *c, const char *why) {
  tri__loop *l = c->loop;
  int code = c->is_server ? TRI_CANCELLED : TRI_UNAVAILABLE;
  char msg[520];

  if (c->error != NULL)
    snprintf(msg, sizeof(msg), "%s", c->error);
  else
    snprintf(msg, sizeof(msg), "connection %s", why);
  /* Streams first, while the session still exists; then mark it closed
   * so that nothing below reaches nghttp2 any more. */
  while (!tri__list_empty(&c->waiting)) {
    tri_stream *s = tri__container_of(c->waiting.next, tri_stream, io_link);
    if (!c->is_server && !l->tearing_down) {
      /* never sent: back to the channel, which places it elsewhere or
       * fails it with the channel's state */
      tri__list_remove(&s->io_link);
      tri__lb_requeue(l, s);
      continue;
    }
    tri__io_end(s, code, msg, 0, TRI__END_NONE);
    tri__conn_detach(l, s);
  }
  while (!tri__list_empty(&c->streams)) {
    tri_stream *s = tri__container_of(c->streams.next, tri_stream, io_link);
    tri__io_end(s, code, msg, 0, TRI__END_NONE);
    tri__conn_detach(l, s);
  }
  int was = c->phase;
  c->phase = TRI__CONN_CLOSED;
  if (c->src.fd >= 0 && tri__h1_cut(c)) {
    /* An HTTP/1.1 response cut short: reset, so it cannot pass for a
     * whole one; no close_notify, no lingering (peer_gone). */
    struct linger lg = {1, 0};
    (void)setsockopt(c->src.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    c->peer_gone = 1;
  }
  tri__tls_close(c); /* close_notify first, while the socket is open */
  if (c->src.fd >= 0) {
    tri__loop_ep_del(l, c->src.fd);
    if (c->peer_gone || was < TRI__CONN_TLS) /* not connected yet */
      fd_close(l, c->src.fd);
    else
      close_lingering(l, c->src.fd);
  }
  tri__flow_conn_closed(c);
  tri__h1_free(c);
  nghttp2_session_del(c->sess);
  TRI__ASSERT(tri__h2mem_mapped(&c->h2mem) == 0);
  if (c->h2mem.trimmed)
    tri__budget_add(TRI__B_QUIET, -1);
  tri__list_remove(&c->link);
  tri__conn_unsched(c);
  if (!c->is_server)
    tri__lb_conn_closed(c, was == TRI__CONN_READY, msg); /* may connect */
  tri__free(c->addrs);
  tri__free(c->addr_lens);
  tri__quota_unref(c->quota);
  tri__peer_unref(c->peer);
  if (l->is_server)
    tri__server_drain_uncount(c); /* reads c: before the free */
  tri__free(c->wbuf);
  tri__free(c->error);
  tri__free(c);
  tri__budget_add(TRI__B_CONNS, -1);
  if (l->is_server)
    __atomic_sub_fetch(&l->nconns, 1, __ATOMIC_RELAXED);
}

tri__conn *tri__conn_new(tri__loop *l, int fd, int is_server) {
  nghttp2_settings_entry iv[5];
  size_t niv = 0;
  tri__conn *c = tri__calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->src.kind = TRI__SRC_CONN;
  c->src.fd = fd;
  c->loop = l;
  c->is_server = is_server;
  tri__list_init(&c->waiting);
  tri__list_init(&c->streams);
  tri__list_init(&c->link);
  tri__list_init(&c->touch_link);
  c->tick.at = TRI__NO_DEADLINE;
  c->h2mem.pool = l->rx->pgpool;
  int rv = tri__h2_session_new(&c->sess, is_server, l->cbs, c, l->opt,
                               &c->h2mem);
  if (rv != 0) {
    tri__free(c);
    return NULL;
  }
  iv[niv].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  iv[niv++].value = TRI__STREAM_WINDOW;
  /* 1.6: accept large DATA frames; fewer frames per large message. */
  iv[niv].settings_id = NGHTTP2_SETTINGS_MAX_FRAME_SIZE;
  iv[niv++].value = TRI__MAX_FRAME;
  iv[niv].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
  iv[niv++].value =
      is_server ? (uint32_t)l->cfg.max_header_list : TRI__MAX_HEADER_LIST;
  if (is_server) {
    iv[niv].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
    iv[niv++].value = l->cfg.max_streams;
  } else {
    iv[niv].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH; /* 1.4 */
    iv[niv++].value = 0;
  }
  nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, niv);
  nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0,
                                        TRI__CONN_WINDOW);
  if (is_server) {
    c->quota = tri__calloc(1, sizeof(*c->quota));
    if (c->quota == NULL) {
      nghttp2_session_del(c->sess);
      TRI__ASSERT(tri__h2mem_mapped(&c->h2mem) == 0);
      tri__free(c);
      return NULL;
    }
    c->quota->refs = 1;
  }
  tri__list_insert_tail(&l->conns, &c->link);
  tri__conn_touch(c);
  tri__budget_add(TRI__B_CONNS, 1);
  return c;
}

/* ---- nghttp2 callbacks: dispatch to the two sides ---------------------- */

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f,
                            void *ud) {
  tri__conn *c = ud;
  (void)sess;
  if (!c->is_server || f->hd.type != NGHTTP2_HEADERS ||
      f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  return tri__server_begin(c, f->hd.stream_id);
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *val,
                     size_t vlen, uint8_t flags, void *ud) {
  tri__conn *c = ud;
  (void)sess;
  (void)flags;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  tri_stream *s = tri__conn_stream(c, f->hd.stream_id);
  if (s == NULL || s->io_state != TRI__IO_OPEN)
    return 0;
  if (c->is_server)
    return tri__server_header(c, s, f, name, nlen, val, vlen);
  tri__client_header(s, f, name, nlen, val, vlen);
  return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f,
                         void *ud) {
  tri__conn *c = ud;
  tri_stream *s = NULL;
  (void)sess;

  if (c->phase == TRI__CONN_CLOSED)
    return 0;
  switch (f->hd.type) {
  case NGHTTP2_SETTINGS:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK) &&
        c->phase == TRI__CONN_HANDSHAKE) {
      c->phase = TRI__CONN_READY;
      if (!c->is_server)
        tri__client_settled(c);
      else
        tri__server_settled(c);
    }
    return 0;
  case NGHTTP2_GOAWAY:
    c->goaway = 1; /* 8.1: no new streams here; nghttp2 closes streams
                      above last-stream-id with REFUSED_STREAM */
    if (!c->is_server)
      tri__lb_conn_goaway(c, f->goaway.error_code, f->goaway.opaque_data,
                          f->goaway.opaque_data_len);
    return 0;
  case NGHTTP2_HEADERS:
  case NGHTTP2_DATA:
  case NGHTTP2_RST_STREAM:
  case NGHTTP2_PING:
    if (f->hd.stream_id != 0) {
      s = tri__conn_stream(c, f->hd.stream_id);
      if (f->hd.type == NGHTTP2_RST_STREAM && c->is_server) {
        tri__server_rst_received(c, s);
        return 0;
      }
      if (s == NULL || s->io_state != TRI__IO_OPEN)
        return 0;
    }
    if (c->is_server)
      tri__server_frame(c, s, f);
    else
      tri__client_frame(c, s, f);
    return 0;
  default:
    return 0;
  }
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, id);
  (void)flags;
  if (s == NULL || s->io_state != TRI__IO_OPEN ||
      __atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
    /* Nobody will read it: give all of the window back. */
    nghttp2_session_consume(sess, id, len);
    return 0;
  }
  if (s->triple != NULL) /* Triple unary form: a bare body */
    return tri__triple_data(c, s, data, len);
  return tri__flow_data_chunk(c, s, data, len);
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t err,
                           void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, id);
  (void)sess;
  if (s == NULL || s->io_state == TRI__IO_CLOSED)
    return 0;
  if (c->is_server)
    tri__server_closed(c, s, err);
  else if (tri__client_closed(c, s, err))
    return 0; /* requeued: sent again elsewhere */
  tri__conn_detach(c->loop, s);
  return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *f,
                         void *ud) {
  tri__conn *c = ud;
  (void)sess;
  if (!c->is_server && f->hd.type == NGHTTP2_GOAWAY &&
      f->goaway.error_code != NGHTTP2_NO_ERROR && c->error == NULL) {
    /* Our nghttp2 ends the connection over the server's protocol error
     * (RFC 9113 5.4.1): say so, rather than "connection finished". */
    tri__conn_set_error(c, "this client closed the connection to %s after "
                        "an HTTP/2 error of the server (%s)",
                        c->loop->ccfg.target.where,
                        nghttp2_http2_strerror(f->goaway.error_code));
  }
  if (c->is_server &&
      (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA))
    tri__server_data_sent(c);
  if (c->is_server && f->hd.type == NGHTTP2_HEADERS) {
    tri_stream *hs = tri__conn_stream(c, f->hd.stream_id);
    if (hs != NULL)
      hs->resp_hdrs_sent = 1;
  }
  /* Trailers, or the END_STREAM DATA of an edge response (edge.c). */
  if (!c->is_server ||
      (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  tri_stream *s = tri__conn_stream(c, f->hd.stream_id);
  if (s != NULL)
    tri__server_frame_sent(c, s, f);
  return 0;
}

static int on_frame_not_send(nghttp2_session *sess, const nghttp2_frame *f,
                             int lib_error, void *ud) {
  tri__conn *c = ud;
  (void)sess;
  if (c->is_server && f->hd.type == NGHTTP2_HEADERS) {
    tri_stream *hs = tri__conn_stream(c, f->hd.stream_id);
    if (hs != NULL)
      tri__server_headers_not_sent(c, hs, f, lib_error);
    return 0;
  }
  if (c->is_server || f->hd.type != NGHTTP2_HEADERS ||
      f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  tri_stream *s = tri__conn_stream(c, f->hd.stream_id);
  if (s == NULL || s->io_state != TRI__IO_OPEN)
    return 0;
  if (lib_error == NGHTTP2_ERR_FRAME_SIZE_ERROR) {
    /* The request itself cannot go out (a header block over nghttp2's
     * 64 KiB): another connection would refuse it too. */
    char buf[200];
    tri__nv_not_sent(buf, sizeof(buf), "request headers", f, lib_error);
    tri__io_end(s, TRI_INTERNAL, buf, 1, TRI__END_NONE);
    tri__conn_detach(c->loop, s);
    return 0;
  }
  /* Never went out (cancelled while queued, GOAWAY): safe to retry. */
  if (tri__client_retry(c, s))
    return 0;
  tri__io_end(s, TRI_UNAVAILABLE, nghttp2_strerror(lib_error), 0,
              TRI__END_NONE);
  tri__conn_detach(c->loop, s);
  return 0;
}

int tri__conn_callbacks_new(nghttp2_session_callbacks **out);
int tri__conn_callbacks_new(nghttp2_session_callbacks **out) {
  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return -1;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                            on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs,
                                                           on_frame_not_send);
  nghttp2_session_callbacks_set_data_source_read_length_callback(
      cbs, tri__read_length_cb);
  nghttp2_session_callbacks_set_send_data_callback(cbs, tri__send_data_cb);
  *out = cbs;
  return 0;
}
