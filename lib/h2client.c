/*
 * Client side of a loop: resolving and connecting (with the connect and
 * handshake timeouts), submitting requests, reading responses (headers,
 * trailers, broken or foreign answers: doc/PROTOCOL.md 5), keepalive.
 *
 * Threads: the I/O thread only.
 */
#include "tri_int.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "compress.h"
#include "conn.h"
#include "nv.h"
#include "status.h"
#include "triple_io.h"

static void submit_request(tri__conn *c, tri_stream *s);

/* ---- connecting -------------------------------------------------------- */

/* Start a non-blocking connect to the next resolved address; 0 when one
 * is in progress, -1 when none is left. */
static int try_connect(tri__conn *c) {
  while (c->next_addr < c->naddrs) {
    int i = c->next_addr++;
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[i];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
    if (fd < 0) {
      c->last_errno = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, sa, c->addr_lens[i]) == 0 || errno == EINPROGRESS) {
      if (c->src.fd >= 0) {
        tri__loop_ep_del(c->loop, c->src.fd);
        close(c->src.fd);
      }
      c->src.fd = fd;
      c->ep_events = 0;
      c->phase = TRI__CONN_CONNECTING;
      tri__conn_watch(c, EPOLLOUT);
      return 0;
    }
    c->last_errno = errno;
    close(fd);
  }
  return -1;
}

/* The address (or target) a connection tries, for messages. */
static const char *conn_where(const tri__conn *c) {
  tri__loop *l = c->loop;
  if (l->ccfg.round_robin && c->sub != NULL)
    return tri__lb_sub_name(c->sub);
  return l->ccfg.target.where;
}

static void connect_failed(tri__conn *c) {
  tri__conn_set_error(c, "cannot connect to %s: %s", conn_where(c),
                      c->last_errno ? strerror(c->last_errno)
                                    : "no usable address");
  tri__conn_close(c, "failed");
}

void tri__client_connect(tri__conn *c) {
  /* 1.7: the connect timeout bounds connecting, TLS and the settings */
  c->phase = TRI__CONN_CONNECTING;
  c->phase_deadline = tri__deadline_after_ms(c->loop->ccfg.connect_ms);
  c->next_addr = 0;
  if (try_connect(c) != 0)
    connect_failed(c);
}

/* 0, or -1 (c->error says why) when the connection cannot go on. */
static int conn_connected(tri__conn *c) {
  tri__loop *l = c->loop;
  int i = c->next_addr - 1;

  /* The connect timeout runs on until the server's SETTINGS arrive:
   * before that its SETTINGS_MAX_CONCURRENT_STREAMS is unknown and streams
   * beyond it would be refused (1.3).  It bounds the TLS handshake too. */
  c->last_read_ns = 0; /* nothing read yet (tri__sock_read) */
  c->peer = tri__peer_new(i >= 0 ? &c->addrs[i] : NULL,
                          i >= 0 ? c->addr_lens[i] : 0, l->ccfg.target.where);
  if (c->peer == NULL) {
    tri__conn_set_error(c, "out of memory connecting to %s",
                        l->ccfg.target.where);
    return -1;
  }
  if (l->ccfg.tls != NULL) {
    if (tri__tls_start(c, l->ccfg.tls, l->ccfg.tls_name) != 0) {
      tri__conn_set_error(c, "cannot start TLS with %s: out of memory",
                          l->ccfg.target.where);
      return -1;
    }
    return tri__tls_handshake(c) < 0 ? -1 : 0; /* ClientHello */
  }
  c->phase = TRI__CONN_HANDSHAKE;
  tri__conn_watch(c, EPOLLIN);
  return 0;
}

void tri__client_connect_event(tri__conn *c, uint32_t ev) {
  int err = 0;
  socklen_t len = sizeof(err);

  if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
    return;
  if (getsockopt(c->src.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0) {
    c->last_errno = err;
    if (try_connect(c) != 0)
      connect_failed(c);
    return;
  }
  if (conn_connected(c) != 0) {
    tri__conn_close(c, "failed"); /* c->error says why */
    return;
  }
  if (tri__sock_flush(c) != 0)
    tri__conn_close(c, "write failed");
}

/* Room for one more request under the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS.  Requests beyond it wait here, in
 * c->waiting, not in nghttp2's queue: a call that ends while it waits
 * (deadline, cancel, free) is then detached at once, where nghttp2 would
 * hold a queued request until a slot freed (1.3). */
static int has_slot(const tri__conn *c) {
  uint32_t max = nghttp2_session_get_remote_settings(
      c->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return (uint32_t)c->nsubmitted < max;
}

/* Submit waiting streams while there are slots (I/O thread, outside
 * nghttp2 callbacks: from the loop's tick). */
static void submit_waiting(tri__conn *c) {
  for (int guard = 0; guard < 100000 && !tri__list_empty(&c->waiting) &&
                      c->phase == TRI__CONN_READY && !c->goaway &&
                      has_slot(c);
       guard++) {
    tri_stream *s = tri__container_of(c->waiting.next, tri_stream, io_link);
    tri__list_remove(&s->io_link);
    submit_request(c, s);
  }
}

/* The server's first SETTINGS arrived: the subchannel is READY (it
 * places pending streams here); submit what waited. */
void tri__client_settled(tri__conn *c) {
  tri__lb_conn_ready(c);
  submit_waiting(c);
}

/* Per-iteration work of a client connection: timeouts and keepalive. */
void tri__client_tick(tri__conn *c, int64_t now, int64_t *next) {
  tri__loop *l = c->loop;

  if (c->sub == NULL && c->nsubmitted == 0 &&
      tri__list_empty(&c->waiting)) {
    /* Orphaned (GOAWAY, address removed) and drained: close.  A client
     * may end its side with GOAWAY too (RFC 9113 section 6.8). */
    if (c->phase == TRI__CONN_READY && !c->fatal)
      nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR,
                            NULL, 0);
    tri__sock_flush(c);
    tri__conn_close(c, "drained");
    return;
  }
  if (c->phase <= TRI__CONN_HANDSHAKE) {
    if (now >= c->phase_deadline) {
      if (c->phase <= TRI__CONN_CONNECTING)
        tri__conn_set_error(c, "cannot connect to %s: timed out after %lld "
                            "ms (tri_channel_opts_set_connect_timeout_ms)",
                            conn_where(c), (long long)l->ccfg.connect_ms);
      else if (c->phase == TRI__CONN_TLS)
        tri__conn_set_error(c, "TLS handshake with %s failed: not complete "
                            "within %lld ms "
                            "(tri_channel_opts_set_connect_timeout_ms)",
                            l->ccfg.target.where,
                            (long long)l->ccfg.connect_ms);
      else
        tri__conn_set_error(c, "peer at %s accepted the connection but sent "
                            "no HTTP/2 settings within %lld ms: is it an "
                            "HTTP/2 (gRPC) server?",
                            l->ccfg.target.where,
                            (long long)l->ccfg.connect_ms);
      tri__conn_close(c, "timed out");
      return;
    }
    *next = tri__deadline_min(*next, c->phase_deadline);
    if (c->phase < TRI__CONN_HANDSHAKE)
      return;
  }
  if (c->phase == TRI__CONN_READY)
    submit_waiting(c); /* slots freed since the last tick */
  if (c->phase == TRI__CONN_READY && c->ka_ms > 0 &&
      c->ka_ms != INT64_MAX &&
      (c->nsubmitted > 0 || c->ping_sent_ns != 0 ||
       tri__lb_permit_without_calls(l))) {
    /* 8.6, A8: PING after keepalive_ms without reading, while a call is
     * open (or always with permit_without_calls); no bytes at all within
     * the timeout closes the transport (calls UNAVAILABLE).  The
     * intervals saturate: INT64_MAX ms means never. */
    int64_t ka = tri__ms_to_ns(c->ka_ms);
    int64_t kto = tri__ms_to_ns(l->ccfg.keepalive_timeout_ms);
    if (c->ping_sent_ns != 0) {
      int64_t dl = tri__deadline_add(c->ping_sent_ns, kto);
      if (now >= dl) {
        tri__conn_close(c, "closed: keepalive timeout");
        return;
      }
      *next = tri__deadline_min(*next, dl);
    } else {
      int64_t due = tri__deadline_add(c->last_read_ns, ka);
      if (now >= due) {
        nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
        c->ping_sent_ns = now;
        *next = tri__deadline_min(*next, tri__deadline_add(now, kto));
      } else {
        *next = tri__deadline_min(*next, due);
      }
    }
  }
  if (tri__sock_flush_or_close(c))
    return;
  /* Our own RST_STREAMs (a cancel, a deadline, a freed stream) close their
   * streams only as the flush above writes them: a slot freed there is
   * for the next pass, which must not wait for the next event (1.3). */
  if (c->phase == TRI__CONN_READY && !c->goaway &&
      !tri__list_empty(&c->waiting) && has_slot(c))
    *next = now;
  tri__conn_trim_if_quiet(c, c->nsubmitted > 0 ||
                                 !tri__list_empty(&c->streams) ||
                                 !tri__list_empty(&c->waiting),
                          now, next);
}

/* ---- requests ---------------------------------------------------------- */

void tri__client_open(tri__loop *l, tri_stream *s) {
  if (l->tearing_down)
    tri__io_end(s, TRI_CANCELLED, "channel closed", 1, TRI__END_NONE);
  else if (l->ccfg.tls_unavailable)
    /* TLS was asked for: never fall back to clear text. */
    tri__io_end(s, TRI_UNIMPLEMENTED, TRI__TLS_UNAVAILABLE, 0,
                TRI__END_NONE);
  if (__atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
    tri__conn_detach(l, s);
    return;
  }
  tri__lb_open(l, s); /* a READY connection, pending, or failed fast */
}

void tri__client_attach(tri__conn *c, tri_stream *s) {
  s->conn = c;
  if (c->phase != TRI__CONN_READY || !has_slot(c) ||
      !tri__list_empty(&c->waiting)) {
    s->io_state = TRI__IO_WAITING; /* in order, behind earlier ones */
    tri__list_insert_tail(&c->waiting, &s->io_link);
  } else {
    submit_request(c, s);
  }
}

static void submit_request(tri__conn *c, tri_stream *s) {
  tri__loop *l = c->loop;
  tri__nv b;
  char tmo[32];
  int32_t id;
  nghttp2_data_provider prd;

  s->conn = c;
  if (s->deadline_ns != TRI__NO_DEADLINE) {
    int64_t left = s->deadline_ns - tri__now_ns();
    if (left <= 0) {
      /* 2.7: an expired deadline fails locally, nothing is sent. */
      tri__io_end(s, TRI_DEADLINE_EXCEEDED, "deadline exceeded", 1,
                  TRI__END_NONE);
      tri__conn_detach(l, s);
      return;
    }
    tri__timeout_encode(left, tmo);
  }
  tri__nv_init(&b);
  if (s->triple != NULL) {
    tri__triple_request_headers(c, s, &b); /* Triple unary form */
    goto built;
  }
  /* 2: pseudo-headers, then grpc-timeout, call definition, metadata. */
  tri__nv_adds(&b, ":method", "POST");
  tri__nv_adds(&b, ":scheme", c->tls ? "https" : "http");
  tri__nv_adds(&b, ":path", s->method);
  tri__nv_adds(&b, ":authority", l->ccfg.target.authority);
  if (s->deadline_ns != TRI__NO_DEADLINE)
    /* A fresh value per call: indexing it would only fill the HPACK table
     * and slow every later lookup. */
    tri__nv_add(&b, "grpc-timeout", tmo, strlen(tmo),
                NGHTTP2_NV_FLAG_NO_INDEX);
  /* 2.6: the +proto subtype, as Dubbo Java and dubbo-go clients send. */
  tri__nv_adds(&b, "content-type", s->json ? "application/grpc+json"
                                            : "application/grpc+proto");
  tri__nv_adds(&b, "te", "trailers");
  tri__nv_adds(&b, "user-agent", "grpc-c-triplestream/" PACKAGE_VERSION);
  if (s->enc_out != TRI__ENC_IDENTITY)
    tri__nv_adds(&b, "grpc-encoding", tri__enc_name(s->enc_out));
  tri__nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  if (s->group)
    tri__nv_adds(&b, "tri-service-group", s->group);
  if (s->version)
    tri__nv_adds(&b, "tri-service-version", s->version);
  tri__nv_add_md(&b, &s->req_md);
built:
  if (b.failed) {
    tri__nv_free(&b);
    tri__io_end(s, TRI_RESOURCE_EXHAUSTED,
                "out of memory building the request headers", 1,
                TRI__END_NONE);
    tri__conn_detach(l, s);
    return;
  }
  prd.source.ptr = s;
  prd.read_callback = tri__data_read_cb;
  id = nghttp2_submit_request(c->sess, NULL, b.nv, b.n, &prd, s);
  tri__nv_free(&b);
  if (id < 0) {
    tri__io_end(s, TRI_UNAVAILABLE, nghttp2_strerror(id), 0, TRI__END_NONE);
    tri__conn_detach(l, s);
    return;
  }
  s->id = id;
  s->io_state = TRI__IO_OPEN;
  tri__list_insert_tail(&c->streams, &s->io_link);
  c->nsubmitted++;
  c->carried = 1; /* lb.c went_unused */
  if (c->peer != NULL && s->peer == NULL) {
    /* Once: tri_stream_peer() readers see NULL or the complete peer. */
    tri__peer_ref(c->peer);
    __atomic_store_n(&s->peer, c->peer, __ATOMIC_RELEASE);
  }
}

/* ---- responses --------------------------------------------------------- */

static char *dupn(const uint8_t *v, size_t n) {
  return tri__strndup((const char *)v, n);
}

static int hdr_is(const uint8_t *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && memcmp(name, lit, n) == 0;
}

void tri__client_header(tri_stream *s, const nghttp2_frame *f,
                        const uint8_t *name, size_t nlen,
                        const uint8_t *val, size_t vlen) {
  /* The first non-1xx block is the response headers (nghttp2 labels the
   * one after a 1xx HCAT_HEADERS); a later block, or one that ends the
   * stream, carries trailers.  Both are collected in I/O-private lists
   * and published to callers once complete. */
  int trailers = s->hdr_block > 0 || (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
  if (hdr_is(name, nlen, ":status")) {
    int st = 0;
    for (size_t i = 0; i < vlen && i < 4; i++)
      st = st * 10 + (val[i] - '0');
    s->http_status = st;
    s->skip_block = st >= 100 && st < 200; /* 5.1: skip 1xx blocks */
    return;
  }
  if (s->skip_block)
    return;
  if (s->triple != NULL) { /* Triple unary form: lib/triple.c */
    tri__triple_header(s, f, name, nlen, val, vlen);
    return;
  }
  if (hdr_is(name, nlen, "content-type")) {
    if (vlen >= 16 && memcmp(val, "application/grpc", 16) == 0 &&
        (vlen == 16 || val[16] == '+' || val[16] == ';')) {
      s->got_ctype = 1;
    } else {
      tri__free(s->bad_ctype);
      s->bad_ctype = dupn(val, vlen);
    }
    return;
  }
  if (hdr_is(name, nlen, "grpc-status")) {
    s->grpc_status = tri__status_parse((const char *)val, vlen);
    if (s->grpc_status < 0)
      s->grpc_status = -2; /* present but unparsable: UNKNOWN (5.3) */
    return;
  }
  if (hdr_is(name, nlen, "grpc-message")) {
    tri__free(s->grpc_message);
    s->grpc_message = tri__pct_decode((const char *)val, vlen);
    return;
  }
  if (hdr_is(name, nlen, "grpc-encoding")) {
    int enc = tri__enc_from_name((const char *)val, vlen);
    s->enc_in = enc == TRI__ENC_UNKNOWN ? -1 : enc;
    if (enc == TRI__ENC_UNKNOWN) {
      tri__free(s->enc_name);
      s->enc_name = dupn(val, vlen);
    }
    return;
  }
  if (tri__md_is_reserved((const char *)name, nlen))
    return;
  tri__md_add_wire(trailers ? &s->io_trl : &s->io_hdrs, (const char *)name,
                   nlen, val, vlen);
}

/* Publish the response headers collected so far (once). */
void tri__client_publish_headers(tri_stream *s) {
  tri__mutex_lock(&s->mu);
  if (s->hdrs_state != TRI__HDRS_DONE) {
    tri_metadata tmp = s->hdrs; /* empty */
    s->hdrs = s->io_hdrs;
    s->io_hdrs = tmp;
    tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
  }
  tri__mutex_unlock(&s->mu);
}

/* The response is complete (trailers, trailers-only, or a foreign answer):
 * the final status from what arrived, with the trailers published. */
static void client_complete(tri__conn *c, tri_stream *s) {
  int code;
  char buf[200];
  const char *msg;

  if (s->grpc_status >= 0) {
    code = s->grpc_status;
    if (code > 16)
      code = TRI_UNKNOWN; /* 10.2 */
    msg = s->grpc_message ? s->grpc_message : "";
  } else if (s->grpc_status == -2) {
    code = TRI_UNKNOWN;
    msg = "unparsable grpc-status";
  } else if (s->http_status != 200 && s->http_status != 0) {
    code = tri__status_from_http(s->http_status); /* 5.1 */
    snprintf(buf, sizeof(buf), "HTTP status %d without grpc-status",
             s->http_status);
    msg = buf;
  } else if (!s->got_ctype && s->hdr_block <= 1) {
    code = TRI_UNKNOWN; /* 5.2 */
    snprintf(buf, sizeof(buf), "response content-type '%s' is not gRPC",
             s->bad_ctype ? s->bad_ctype : "(none)");
    msg = buf;
  } else {
    code = TRI_INTERNAL; /* 5.3 */
    msg = "trailers without grpc-status";
  }
  if (code == TRI_OK && tri__deframer_partial(&s->df)) {
    code = TRI_INTERNAL;
    msg = "stream ended inside a message";
  }
  tri__client_publish_headers(s);
  tri__mutex_lock(&s->mu);
  if (!s->final) {
    tri_metadata tmp = s->trl; /* empty */
    s->trl = s->io_trl;
    s->io_trl = tmp;
  }
  tri__stream_ev_locked(s, TRI__EV_END, code, msg, 0, TRI__END_NONE);
  tri__mutex_unlock(&s->mu);
  tri__client_end(c, s);
}

/* The call has its final status from the peer: if our side of the stream
 * is still open, reset it, so it does not hold a stream slot (and the
 * loop a reference) until the server thinks of resetting it (RFC 9113
 * §8.1: a response may complete before the request). */
void tri__client_end(tri__conn *c, tri_stream *s) {
  int open;
  tri__mutex_lock(&s->mu);
  open = s->send_state != TRI__SEND_DONE;
  if (open)
    tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  if (open)
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                              NGHTTP2_CANCEL);
}

void tri__client_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f) {
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

  if (s == NULL)
    return;
  if (f->hd.type == NGHTTP2_RST_STREAM) {
    s->rst_rcvd = 1; /* on_stream_close follows: tri__client_closed */
    return;
  }
  if (end) {
    tri__mutex_lock(&s->mu);
    tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
    tri__mutex_unlock(&s->mu);
  }
  if (s->triple != NULL) { /* Triple unary form: lib/triple.c */
    tri__triple_frame(c, s, f);
    return;
  }
  if (f->hd.type == NGHTTP2_DATA) {
    if (end) {
      /* 5.3: END_STREAM on DATA, no trailers. */
      tri__client_publish_headers(s);
      tri__io_end(s, TRI_INTERNAL, "server ended the stream without trailers",
                  0, TRI__END_NONE);
      tri__client_end(c, s);
    }
    return;
  }
  if (f->hd.type != NGHTTP2_HEADERS)
    return;
  if (s->skip_block) {
    s->skip_block = 0;
    s->http_status = 0; /* 5.1: skip 1xx, wait for the next block */
    return;
  }
  s->hdr_block++;
  if (s->hdr_block == 1) {
    if (!end && (s->http_status != 200 || !s->got_ctype)) {
      /* 5.1, 5.2: not a gRPC response.  End the call from what the
       * headers say and do not parse the body as gRPC frames. */
      client_complete(c, s);
      return;
    }
    if (!end)
      tri__client_publish_headers(s);
  }
  if (end)
    client_complete(c, s);
}

/* Transparent retry (doc/PROTOCOL.md 17.6): a stream the server refused
 * before answering goes back to the channel and out again, once, on
 * whatever connection the channel picks.  1 if it was requeued. */
int tri__client_retry(tri__conn *c, tri_stream *s) {
  int ok;
  if (s->hdr_block > 0 || s->http_status != 0 || s->rx_total > 0 ||
      c->loop->tearing_down)
    return 0; /* response bytes arrived: the application may know */
  tri__mutex_lock(&s->mu);
  ok = tri__stream_ev_locked(s, TRI__EV_RETRY, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  if (!ok)
    return 0;
  if (s->id > 0 && c->phase != TRI__CONN_CLOSED)
    nghttp2_session_set_stream_user_data(c->sess, s->id, NULL);
  if (tri__list_linked(&s->io_link)) {
    tri__list_remove(&s->io_link);
    if (s->id > 0)
      c->nsubmitted--;
  }
  s->id = 0;
  tri__deframer_cleanup(&s->df);
  tri__md_cleanup(&s->io_hdrs);
  tri__md_cleanup(&s->io_trl);
  tri__md_init(&s->io_hdrs);
  tri__md_init(&s->io_trl);
  s->skip_block = 0;
  s->rst_rcvd = 0;
  s->grpc_status = -1;
  tri__lb_requeue(c->loop, s); /* placed by the next loop iteration */
  return 1;
}

int tri__client_closed(tri__conn *c, tri_stream *s, uint32_t err) {
  char buf[120];
  if (err == NGHTTP2_REFUSED_STREAM && tri__client_retry(c, s))
    return 1;
  tri__client_publish_headers(s);
  if (err != NGHTTP2_NO_ERROR) {
    int code = tri__status_from_rst(err); /* 6.1 */
    if (err == NGHTTP2_REFUSED_STREAM)
      snprintf(buf, sizeof(buf), "stream refused by the server");
    else if (err == NGHTTP2_CANCEL)
      snprintf(buf, sizeof(buf), "stream cancelled by the server");
    else if (err == NGHTTP2_ENHANCE_YOUR_CALM)
      snprintf(buf, sizeof(buf), "bandwidth exhausted (the server sent "
               "RST_STREAM ENHANCE_YOUR_CALM)"); /* 6.1 */
    else if (!s->rst_rcvd)
      /* nghttp2 reset it: the server broke the protocol on this stream
       * (a window overflow, a malformed header block...) */
      snprintf(buf, sizeof(buf), "stream reset by this client after an "
               "HTTP/2 error of the server (%s)",
               nghttp2_http2_strerror(err));
    else
      snprintf(buf, sizeof(buf), "stream reset by the server (HTTP/2 "
               "error %u)", err);
    tri__io_end(s, code, buf, 0, TRI__END_NONE);
  } else {
    /* 4.7: RST_STREAM(NO_ERROR) after trailers is a normal end (final is
     * already set then); without trailers it is INTERNAL (6.1). */
    tri__io_end(s, TRI_INTERNAL, "stream closed without a status", 0,
                TRI__END_NONE);
  }
  return 0;
}
