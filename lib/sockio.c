/*
 * The socket reader and writer of a connection, and nghttp2's data
 * provider: DATA frames go to the socket straight from a stream's send
 * ring (NGHTTP2_DATA_FLAG_NO_COPY + writev), saving the ring -> nghttp2 ->
 * output-buffer copies of every payload byte.
 *
 * Threads: the I/O thread only; it takes stream.mu for the ring.
 *
 * Every write uses MSG_NOSIGNAL (sendmsg), so a peer that vanished gives
 * EPIPE here, never a SIGPIPE that would kill a program that does not
 * ignore it.
 *
 * TLS connections (c->tls) read and write through tls.c with the same
 * contracts: conn_recv() and conn_writev() below are the only places that
 * choose.  What a TLS write does not take stays in wbuf exactly as on
 * the plain path, which is also what OpenSSL needs to retry a write.
 */
#include "tri_int.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "budget.h"
#include "conn.h"
#include "edge.h"

/* ---- output buffer ---------------------------------------------------- */

int tri__conn_wappend(tri__conn *c, const void *p, size_t n) {
  if (c->wlen + n > c->wcap) {
    size_t cap = c->wcap ? c->wcap : TRI__WBUF_FIRST;
    while (cap < c->wlen + n)
      cap *= 2;
    uint8_t *nb = tri__realloc(c->wbuf, cap);
    if (nb == NULL)
      return -1;
    c->wbuf = nb;
    c->wcap = cap;
  }
  memcpy(c->wbuf + c->wlen, p, n);
  c->wlen += n;
  return 0;
}

static ssize_t conn_writev(tri__conn *c, struct iovec *iov, int n) {
  struct msghdr mh;
  ssize_t w;
  if (c->tls != NULL) {
    w = tri__tls_writev(c, iov, n);
  } else {
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n;
    do
      w = sendmsg(c->src.fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
  }
  if (w > 0)
    c->wsent += (uint64_t)w;
  return w;
}

static ssize_t conn_recv(tri__conn *c, uint8_t *buf, size_t len) {
  if (c->tls != NULL)
    return tri__tls_read(c, buf, len);
  return recv(c->src.fd, buf, len, 0);
}

static int writable(const tri__conn *c) {
  /* A server speaks only after the client's first bytes: they tell
   * HTTP/2 from HTTP/1.1 (http1.c), and an HTTP/1.1 client must not get
   * our SETTINGS frame (RFC 9113 §3.4 lets the server preface wait). */
  return c->src.fd >= 0 && c->phase >= TRI__CONN_HANDSHAKE &&
         c->phase != TRI__CONN_CLOSED &&
         !(c->is_server && c->phase == TRI__CONN_HANDSHAKE &&
           (c->last_read_ns == 0 ||
            c->magic_seen < NGHTTP2_CLIENT_MAGIC_LEN) && c->h1 == NULL);
}

int tri__sock_flush_rounds = 1024;

/* Serialize pending frames and write them; coalesces up to
 * TRI__WRITE_COALESCE bytes per write.  Returns -1 when the connection
 * failed.  After tri__sock_flush_rounds writes it stops even if more
 * output could be made, so one fast reader cannot keep the loop from the
 * other connections; it then watches EPOLLOUT, which the writable socket
 * reports at once, so the next pass goes on (nothing else may come:
 * every byte the peer wanted may already be queued here). */
int tri__sock_flush(tri__conn *c) {
  int rounds;
  if (!writable(c))
    return 0;
  for (rounds = 0; rounds < tri__sock_flush_rounds; rounds++) {
    /* HTTP/1.1 (http1.c): no nghttp2 output */
    if (c->h1 != NULL && tri__h1_produce(c) != 0)
      return -1;
    while (c->h1 == NULL && c->wlen - c->woff < TRI__WRITE_COALESCE) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(c->sess, &p);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      if (tri__conn_wappend(c, p, (size_t)n) != 0)
        return -1;
    }
    if (c->wlen == c->woff)
      break;
    struct iovec iov = {c->wbuf + c->woff, c->wlen - c->woff};
    ssize_t w = conn_writev(c, &iov, 1);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        tri__conn_watch(c, EPOLLIN | EPOLLOUT);
        return 0;
      }
      return -1;
    }
    c->woff += (size_t)w;
    if (c->woff == c->wlen)
      c->woff = c->wlen = 0;
  }
  tri__conn_watch(c, c->wlen == c->woff && rounds < tri__sock_flush_rounds &&
                            !tri__tls_read_wants_out(c)
                        ? EPOLLIN
                        : EPOLLIN | EPOLLOUT);
  return 0;
}

/* Why a flush failed, for tri__conn_close(). */
static const char *flush_failure(const tri__conn *c) {
  const char *why = tri__h1_broken(c);
  return why ? why : "write failed";
}

int tri__sock_flush_or_close(tri__conn *c) {
  if (tri__sock_flush(c) != 0) {
    tri__conn_close(c, flush_failure(c));
    return 1;
  }
  if (c->h1 != NULL) {
    if (!tri__h1_finished(c))
      return 0;
    tri__conn_close(c, "finished");
    return 1;
  }
  if (!nghttp2_session_want_read(c->sess) &&
      !nghttp2_session_want_write(c->sess) && c->wlen == c->woff) {
    tri__conn_close(c, "finished"); /* GOAWAY exchanged, nothing left */
    return 1;
  }
  return 0;
}

/* nghttp2 stops serialising after a fatal receive error (flood, bad
 * frame), so tell the peer why with a GOAWAY written by hand (RFC 9113
 * §6.8): 9-byte frame header, last stream id, error code.  Best effort,
 * never blocks.  Not for a bad preface: that peer does not speak HTTP/2. */
void tri__sock_raw_goaway(tri__conn *c) {
  uint32_t code;
  uint8_t f[17];

  if (c->src.fd < 0 || c->fatal == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
    return;
  code = c->fatal == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
                                         : NGHTTP2_PROTOCOL_ERROR;
  uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(c->sess);
  memset(f, 0, sizeof(f));
  f[2] = 8;                     /* length */
  f[3] = NGHTTP2_GOAWAY;        /* type; flags 0; stream 0 */
  f[9] = (uint8_t)(last >> 24);
  f[10] = (uint8_t)(last >> 16);
  f[11] = (uint8_t)(last >> 8);
  f[12] = (uint8_t)last;
  f[13] = (uint8_t)(code >> 24);
  f[14] = (uint8_t)(code >> 16);
  f[15] = (uint8_t)(code >> 8);
  f[16] = (uint8_t)code;
  /* wbuf holds whole frames, so the GOAWAY lands on a frame boundary. */
  if (tri__conn_wappend(c, f, sizeof(f)) != 0)
    return;
  struct iovec iov = {c->wbuf + c->woff, c->wlen - c->woff};
  ssize_t w = conn_writev(c, &iov, 1); /* non-blocking socket */
  (void)w;
}

/* Returns 0, -1 (closed or failed), -2 (fatal HTTP/2 error). */
int tri__sock_read(tri__conn *c) {
  /* Bounded per wake-up so one busy connection cannot starve others. */
  for (int i = 0; i < 16; i++) {
    uint8_t *rbuf = c->loop->rx->rbuf;
    ssize_t n = conn_recv(c, rbuf, TRI__READ_CHUNK);
    if (n == 0) {
      c->peer_gone = 1;
      if (!c->is_server && c->tls == NULL && c->error == NULL &&
          c->phase == TRI__CONN_HANDSHAKE && c->last_read_ns == 0)
        /* A TLS server closes without a word on reading our preface. */
        tri__conn_set_error(c, "peer at %s closed the connection without "
                            "answering the HTTP/2 preface (a TLS server? "
                            "see tri_channel_opts_set_tls)",
                            c->loop->ccfg.target.where);
      return -1;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      c->peer_gone = 1;
      return -1;
    }
    if (!c->is_server && c->phase == TRI__CONN_HANDSHAKE &&
        c->last_read_ns == 0 && n >= 5 && memcmp(rbuf, "HTTP/", 5) == 0) {
      /* An HTTP/1 server read our preface as a bad request; nghttp2 would
       * only see an oversized frame.  Say what happened. */
      size_t vlen = 0;
      while (vlen < (size_t)n && vlen < 16 && rbuf[vlen] != ' ' &&
             rbuf[vlen] != '\r' && rbuf[vlen] != '\n')
        vlen++;
      tri__conn_set_error(c, "peer at %s answered %.*s: it does not speak "
                          "HTTP/2 with prior knowledge (h2c)",
                          c->loop->ccfg.target.where, (int)vlen,
                          (const char *)rbuf);
      return -1;
    }
    if (!c->is_server && c->tls == NULL && c->phase == TRI__CONN_HANDSHAKE &&
        c->last_read_ns == 0 && n >= 3 && (rbuf[0] == 0x15 || rbuf[0] == 0x16)
        && rbuf[1] == 0x03 && rbuf[2] <= 0x04) {
      /* A TLS record (alert or handshake) where SETTINGS should be: the
       * server wants TLS and read our preface as a bad ClientHello. */
      tri__conn_set_error(c, "peer at %s answered with TLS: it expects a "
                          "TLS client (tri_channel_opts_set_tls)",
                          c->loop->ccfg.target.where);
      return -1;
    }
    int first = c->last_read_ns == 0;
    c->last_read_ns = tri__now_ns();
    c->quiet_since_ns = 0; /* frames may follow: not quiet, not trimmed */
    if (c->h2mem.trimmed) {
      c->h2mem.trimmed = 0;
      tri__budget_add(TRI__B_QUIET, -1);
    }
    c->ping_sent_ns = 0;
    size_t replay = 0; /* preface bytes already read, now HTTP/1.1 */
    if ((first || (c->magic_seen > 0 &&
                   c->magic_seen < NGHTTP2_CLIENT_MAGIC_LEN)) &&
        c->is_server && c->h1 == NULL && c->phase == TRI__CONN_HANDSHAKE) {
      /* Not the HTTP/2 preface: HTTP/1.1 (http1.c).  Bytes that are all
       * a prefix of the preface ("P" of "POST") decide nothing yet. */
      const uint8_t *magic = (const uint8_t *)NGHTTP2_CLIENT_MAGIC;
      size_t seen = c->magic_seen;
      size_t k = TRI__MIN((size_t)n, NGHTTP2_CLIENT_MAGIC_LEN - seen);
      if (memcmp(rbuf, magic + seen, k) == 0) {
        c->magic_seen = seen + k;
      } else {
        uint8_t head[NGHTTP2_CLIENT_MAGIC_LEN];
        memcpy(head, magic, seen);
        memcpy(head + seen, rbuf, k);
        c->magic_seen = NGHTTP2_CLIENT_MAGIC_LEN; /* decided */
        if (tri__h1_detect(c, head, seen + k))
          replay = seen;
        if (c->h1 != NULL)
          tri__server_drain_uncount(c); /* no PING on HTTP/1.1 */
      }
    }
    if (c->h1 != NULL) {
      int hr = replay > 0 ? tri__h1_read(c, (const uint8_t *)
                                            NGHTTP2_CLIENT_MAGIC, replay)
                          : 0;
      if (hr == 0)
        hr = tri__h1_read(c, rbuf, (size_t)n);
      tri__loop_flush_wakes(c->loop); /* as after an HTTP/2 chunk */
      if (hr != 0)
        return -1;
      if ((size_t)n < TRI__READ_CHUNK && c->tls == NULL)
        return 0;
      continue;
    }
    ssize_t r = nghttp2_session_mem_recv(c->sess, rbuf, (size_t)n);
    /* Wake whom this chunk concerns: once per stream (a whole unary
     * response is one chunk), yet early enough that a streaming reader
     * works while the next chunk is parsed. */
    tri__loop_flush_wakes(c->loop);
    if (r < 0) {
      TRI_DEBUGF("nghttp2_session_mem_recv: %s\n", nghttp2_strerror((int)r));
      c->fatal = (int)r;
      if (!c->is_server) {
        tri__conn_set_error(c, "peer at %s broke the HTTP/2 protocol: %s",
                            c->loop->ccfg.target.where,
                            nghttp2_strerror((int)r));
      }
      return -2;
    }
    /* A short read drained the socket: epoll (level-triggered) reports
     * more later, so skip the recv() that would only say EAGAIN.  (A TLS
     * read stops short of a full chunk for want of room for one more
     * record, not because the socket is empty.) */
    if ((size_t)n < TRI__READ_CHUNK && c->tls == NULL)
      return 0;
  }
  return 0;
}

void tri__sock_event(tri__conn *c, uint32_t ev) {
  if (c->phase == TRI__CONN_CONNECTING) {
    tri__client_connect_event(c, ev);
    return;
  }
  if (c->phase == TRI__CONN_TLS) {
    int r = tri__tls_handshake(c);
    if (r < 0) {
      tri__conn_close(c, "closed: TLS handshake failed");
      return;
    }
    if (r == 0)
      return;
    /* Done: read what came with the last flight, write the preface. */
  }
  if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) ||
      ((ev & EPOLLOUT) && tri__tls_read_wants_out(c))) {
    int r = tri__sock_read(c);
    if (r == -2) {
      tri__sock_flush(c); /* what nghttp2 still queued, then our GOAWAY */
      tri__sock_raw_goaway(c);
      tri__conn_close(c, "closed: protocol error");
      return;
    }
    if (r < 0) {
      tri__conn_close(c, "closed by peer");
      return;
    }
  }
  if (tri__sock_flush(c) != 0)
    tri__conn_close(c, flush_failure(c));
}

/* ---- data provider (both sides) --------------------------------------- */

ssize_t tri__data_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                          size_t length, uint32_t *flags,
                          nghttp2_data_source *src, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, id);
  size_t n;
  int trailers = 0;
  (void)sess;
  (void)buf;

  /* Look the stream up rather than trusting src->ptr: a stream detached
   * during teardown may already be freed while nghttp2 still holds its
   * data provider. */
  if (s == NULL || s != src->ptr)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  tri__mutex_lock(&s->mu);
  if (s->send_state == TRI__SEND_DONE ||
      (s->final && s->end_action != TRI__END_STATUS)) {
    /* Ended without a status to send: a reset follows (or came). */
    tri__mutex_unlock(&s->mu);
    return NGHTTP2_ERR_DEFERRED;
  }
  /* The bytes stay in the ring: tri__send_data_cb writes them from there.
   * Until then they are in flight and never discarded. */
  n = s->sb ? TRI__MIN(length, s->sb_len) : 0;
  if (n > 0) {
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    s->sb_inflight = n;
  }
  if (s->sb_len == n && tri__stream_send_ending(s)) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->side == TRI__SERVER) {
      /* 13.2: end DATA without END_STREAM; the trailers carry it. */
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      trailers = 1;
    } else {
      tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
    }
  } else if (n == 0) {
    s->io_deferred = 1;
    tri__mutex_unlock(&s->mu);
    return NGHTTP2_ERR_DEFERRED;
  }
  tri__mutex_unlock(&s->mu);
  if (trailers)
    tri__server_submit_trailers(c, s);
  return (ssize_t)n;
}

/* Write the DATA frame from the ring with writev, after whatever already
 * waits in wbuf (to keep the order); what the socket does not take is
 * appended to wbuf.  With TLS the same pieces go to SSL_write (small ones
 * coalesced into one record, tls.c): OpenSSL's encryption is the only
 * copy of the payload. */
int tri__send_data_cb(nghttp2_session *sess, nghttp2_frame *frame,
                      const uint8_t *framehd, size_t length,
                      nghttp2_data_source *src, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, frame->hd.stream_id);
  struct iovec iov[4];
  int n = 0, rv = 0;
  size_t pend = c->wlen - c->woff, left;
  ssize_t w;
  (void)sess;

  if (s == NULL || s != src->ptr)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* detached, see above */
  if (frame->data.padlen > 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* we never ask for padding */
  /* Output already waiting: a peer that does not read must not make us
   * buffer its frames without bound.  nghttp2 calls again later with the
   * same frame; EPOLLOUT drives the retry.  The frame's bytes stay in
   * flight (s->sb_inflight) meanwhile, whatever happens to the stream. */
  if (pend >= TRI__WRITE_COALESCE || !writable(c))
    return NGHTTP2_ERR_WOULDBLOCK;
  tri__mutex_lock(&s->mu);
  TRI__ASSERT(length <= s->sb_inflight && length <= s->sb_len);
  if (length > s->sb_len) {
    tri__mutex_unlock(&s->mu);
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* cannot happen: in flight */
  }
  if (length <= TRI__COPY_DATA_MAX) {
    /* A small frame is copied behind what waits in wbuf: the frames
     * nghttp2 serialises next (a server's trailers, a client's next
     * request) then go out in the same single write at the end of the
     * flush, instead of one system call per frame. */
    size_t first = TRI__MIN(length, s->sb_cap - s->sb_head);
    if (tri__conn_wappend(c, framehd, 9) != 0 ||
        (first > 0 && tri__conn_wappend(c, s->sb + s->sb_head, first) != 0) ||
        (length > first && tri__conn_wappend(c, s->sb, length - first) != 0))
      rv = NGHTTP2_ERR_CALLBACK_FAILURE;
    tri__stream_ring_consumed_locked(s, length);
    tri__mutex_unlock(&s->mu);
    return rv;
  }
  if (pend > 0)
    iov[n++] = (struct iovec){c->wbuf + c->woff, pend};
  iov[n++] = (struct iovec){(void *)(uintptr_t)framehd, 9};
  size_t first = TRI__MIN(length, s->sb_cap - s->sb_head);
  if (first > 0)
    iov[n++] = (struct iovec){s->sb + s->sb_head, first};
  if (length > first)
    iov[n++] = (struct iovec){s->sb, length - first};
  /* The write runs with s->mu released, so the sender refills the ring's
   * free part meanwhile instead of blocking on the lock for the whole
   * system call.  The bytes written are in flight (never discarded) and
   * s->sb_writing keeps the block from moving (ring_fits in stream.c);
   * only this thread consumes the ring. */
  s->sb_writing = 1;
  tri__mutex_unlock(&s->mu);
  w = conn_writev(c, iov, n);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    rv = NGHTTP2_ERR_CALLBACK_FAILURE;
  tri__mutex_lock(&s->mu);
  s->sb_writing = 0;
  if (w < 0)
    w = 0;
  left = (size_t)w;
  if (pend > 0) {
    size_t k = TRI__MIN(left, pend);
    c->woff += k;
    left -= k;
    if (c->woff == c->wlen)
      c->woff = c->wlen = 0;
  }
  for (int i = pend > 0 ? 1 : 0; i < n && rv == 0; i++) {
    size_t k = TRI__MIN(left, iov[i].iov_len);
    left -= k;
    if (iov[i].iov_len > k &&
        tri__conn_wappend(c, (const uint8_t *)iov[i].iov_base + k,
                    iov[i].iov_len - k) != 0)
      rv = NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  tri__stream_ring_consumed_locked(s, length);
  tri__mutex_unlock(&s->mu);
  return rv;
}

/* The DATA payload nghttp2's frame buffer holds without growing (its
 * first chunk: a frame header, a padding byte and 16 KiB). */
#define H2_FRAMEBUF_PAYLOAD 16384

/* Send DATA frames as large as flow control and the peer's
 * SETTINGS_MAX_FRAME_SIZE allow (1.6), not nghttp2's 16 KiB, but past
 * 16 KiB no larger than what the ring holds: nghttp2 grows its frame
 * buffer to the length returned here and keeps it for the session's life,
 * so a small message must not make every connection hold a 256 KiB
 * buffer.  The 16 KiB floor costs nothing (the buffer has room) and keeps
 * a ring that is empty for a moment from giving one-byte frames.  Edge
 * streams (edge.c) send from their own buffer, not the ring: they keep
 * the whole length. */
ssize_t tri__read_length_cb(nghttp2_session *sess, uint8_t type, int32_t id,
                            int32_t conn_win, int32_t stream_win,
                            uint32_t max_frame, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, id);
  int64_t n = TRI__MIN((int64_t)conn_win, (int64_t)stream_win);
  n = TRI__MIN(n, (int64_t)max_frame);
  n = TRI__MIN(n, (int64_t)TRI__MAX_FRAME);
  (void)sess;
  (void)type;
  if (s != NULL && s->edge == NULL && n > H2_FRAMEBUF_PAYLOAD) {
    tri__mutex_lock(&s->mu);
    n = TRI__MIN(n, TRI__MAX((int64_t)s->sb_len, H2_FRAMEBUF_PAYLOAD));
    tri__mutex_unlock(&s->mu);
  }
  return n < 1 ? 1 : (ssize_t)n;
}
