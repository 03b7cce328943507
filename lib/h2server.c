/*
 * Server side of a loop: accepting (with back-off when descriptors run
 * out), request validation and dispatch, responses (headers, data,
 * trailers or trailers-only), the protections of doc/PROTOCOL.md 13.1
 * (rapid reset, header bombs), idle connections and graceful drain.
 *
 * Threads: the I/O thread only.
 */
#include "tri_int.h"

#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "budget.h"
#include "compress.h"
#include "conn.h"
#include "edge.h"
#include "nv.h"
#include "status.h"

/* How long accepting pauses when the process is out of descriptors (or
 * memory); a closing connection, on any loop of the server, resumes it
 * sooner (conn.c fd_close). */
int tri__accept_backoff_ms = 100;
/* How long the real GOAWAY waits for the ACK of the drain PING. */
#define DRAIN_PING_TIMEOUT_MS 10000

/* ---- accepting --------------------------------------------------------- */

static void listen_watch(tri__loop *l, int on) {
  uint32_t reg = on ? 0 : EPOLLIN; /* what it is now */
  if (l->listen_fd < 0 || l->accept_paused == !on)
    return;
  l->accept_paused = !on;
  __atomic_store_n(&l->accept_blocked, !on, __ATOMIC_RELEASE);
  tri__loop_ep_set(l, &l->listen_src, on ? EPOLLIN : 0, &reg);
}

/* The client's address; a Unix-socket client has none of its own, so
 * the socket's path stands for it. */
static tri__peer *accepted_peer(int fd, const struct sockaddr_storage *ss,
                                socklen_t sl) {
  if (ss->ss_family == AF_UNIX &&
      sl <= (socklen_t)offsetof(struct sockaddr_un, sun_path) + 1) {
    struct sockaddr_storage ls;
    socklen_t ll = sizeof(ls);
    if (getsockname(fd, (struct sockaddr *)&ls, &ll) == 0)
      return tri__peer_new(&ls, ll, "unix:");
    return tri__peer_new(NULL, 0, "unix:");
  }
  return tri__peer_new(ss, sl, "?");
}

/* Serve the accepted socket |fd| on |l|, whose nconns counts it already;
 * on failure the socket is closed and the count given back. */
static void conn_start(tri__loop *l, int fd, const struct sockaddr_storage *ss,
                       socklen_t sl) {
  if (l->draining || l->tearing_down) {
    close(fd);
    __atomic_sub_fetch(&l->nconns, 1, __ATOMIC_RELAXED);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  tri__conn *c = tri__conn_new(l, fd, 1);
  if (c == NULL) {
    close(fd);
    __atomic_sub_fetch(&l->nconns, 1, __ATOMIC_RELAXED);
    return;
  }
  __atomic_add_fetch(&l->served, 1, __ATOMIC_RELAXED);
  /* From here tri__conn_close() gives the count back. */
  /* The TLS handshake (if any), the client preface and SETTINGS must
   * all arrive within the handshake timeout (slowloris). */
  c->phase = TRI__CONN_HANDSHAKE;
  c->phase_deadline = tri__deadline_after_ms(l->cfg.handshake_ms);
  c->idle_since_ns = tri__now_ns();
  if (l->cfg.max_age_ms > 0 && l->cfg.max_age_ms != INT64_MAX) {
    /* A9: +-10 % jitter, so connections made together do not all go
     * away together. */
    int64_t age = tri__ms_to_ns(l->cfg.max_age_ms);
    int64_t j = age / 10;
    if (j > 0) {
      int64_t d = (int64_t)(((uint64_t)random() << 31 ^ (uint64_t)random()) %
                            (uint64_t)(2 * j + 1)) - j;
      /* Saturating: an age of centuries must not wrap into the past. */
      age = d > 0 ? tri__deadline_add(age, d) : age + d;
    }
    c->age_deadline_ns = tri__deadline_add(c->idle_since_ns, age);
  }
  c->peer = accepted_peer(fd, ss, sl);
  if (c->peer == NULL) {
    tri__conn_close(c, "failed");
    return;
  }
  if (l->cfg.tls) {
    /* The context current now: a reload affects later accepts only. */
    tri__tls_ctx *ctx = tri__server_tls_get(l->srv);
    int rv = ctx != NULL ? tri__tls_start(c, ctx, NULL) : -1;
    tri__tls_ctx_unref(ctx);
    if (rv != 0) {
      tri__conn_close(c, "failed");
      return;
    }
  }
  tri__conn_watch(c, EPOLLIN);
}

/* The loop a new connection goes to: the one with the fewest connections,
 * searching from the one after the last pick, so ties take turns.  Its
 * count is raised at once, so a burst of accepts spreads too. */
static tri__loop *pick_loop(tri__loop *l) {
  tri__loop *best = l;
  if (l->npeers > 1) {
    int best_n = -1;
    for (int i = 0; i < l->npeers; i++) {
      tri__loop *p = l->peers[(l->rr + (unsigned)i) % (unsigned)l->npeers];
      int n = __atomic_load_n(&p->nconns, __ATOMIC_RELAXED);
      if (best_n < 0 || n < best_n) {
        best = p;
        best_n = n;
      }
    }
    l->rr++;
  }
  __atomic_add_fetch(&best->nconns, 1, __ATOMIC_RELAXED);
  return best;
}

void tri__server_adopted(tri__loop *l, struct tri__adopt *a) {
  conn_start(l, a->fd, &a->ss, a->sl);
  tri__free(a);
}

void (*tri__accept_fail_hook)(void);

void tri__server_accept(tri__loop *l) {
  int armed = 0;
  for (int i = 0; i < 64 && l->listen_fd >= 0; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(l->listen_fd, (struct sockaddr *)&ss, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                   errno == ENOMEM)) {
      if (tri__accept_fail_hook != NULL)
        tri__accept_fail_hook();
      if (!armed) {
        /* Publish the pause first, then try once more: another loop
         * that closes a descriptor after this store sees it and posts
         * TRI__LOOP_ACCEPT (conn.c fd_close); one that closed before
         * it freed the descriptor this try takes.  Either way no
         * close is missed (a store after the failed try alone would
         * miss the ones in between). */
        __atomic_store_n(&l->accept_blocked, 1, __ATOMIC_SEQ_CST);
        armed = 1;
        i--; /* the retry is not one of the 64 (once: |armed|) */
        continue;
      }
      /* The pending connection stays in the backlog and the listening
       * socket stays readable: with level-triggered epoll, retrying now
       * would spin.  Stop watching it until a descriptor frees up (a
       * connection closes) or the back-off passes. */
      l->accept_paused_until = tri__deadline_after_ms(tri__accept_backoff_ms);
      listen_watch(l, 0);
      return;
    }
    if (armed) {
      /* the retry found a descriptor, or nothing to accept: not paused */
      __atomic_store_n(&l->accept_blocked, l->accept_paused,
                       __ATOMIC_RELEASE);
      armed = 0;
    }
    if (fd < 0)
      return; /* EAGAIN, or a per-connection error (ECONNABORTED...) */
    if (l->draining) {
      close(fd);
      continue;
    }
    tri__loop *to = pick_loop(l);
    if (to != l) {
      struct tri__adopt *a = tri__malloc(sizeof(*a));
      if (a != NULL) {
        a->fd = fd;
        a->ss = ss;
        a->sl = sl;
        if (tri__loop_adopt(to, a) == 0)
          continue;
        tri__free(a);
      }
      /* Out of memory, or that loop is stopping: serve it here. */
      __atomic_sub_fetch(&to->nconns, 1, __ATOMIC_RELAXED);
      __atomic_add_fetch(&l->nconns, 1, __ATOMIC_RELAXED);
    }
    conn_start(l, fd, &ss, sl);
  }
}

/* Loop-level work: resume accepting after a back-off. */
void tri__server_tick(tri__loop *l, int64_t now, int64_t *next) {
  if (!l->accept_paused || l->listen_fd < 0)
    return;
  if (now >= l->accept_paused_until) {
    listen_watch(l, 1);
  } else {
    *next = tri__deadline_min(*next, l->accept_paused_until);
  }
}

/* The drain PING's opaque data: only its ACK sends the real GOAWAY, not
 * the ACK of a keepalive PING that was already on its way. */
static const uint8_t drain_opaque[8] = {'t', 'r', 'i', 'd', 'r', 'a', 'i', 'n'};

/* Count |c| in loop->drain_waits (tri_server_shutdown waits while it is
 * counted) unless it is HTTP/1.1, whose requests are streams already
 * counted and which never answers a PING. */
static void drain_count(tri__conn *c) {
  if (c->drain_ping && !c->drain_counted && c->h1 == NULL) {
    c->drain_counted = 1;
    __atomic_add_fetch(&c->loop->drain_waits, 1, __ATOMIC_RELAXED);
  }
}

/* Heads-up GOAWAY (last-stream-id 2^31-1) and the drain PING.  A READY
 * connection, or one in its preface that has sent bytes (preface,
 * SETTINGS and requests may come in one write), is counted until the real
 * GOAWAY or its close: requests may still cross the heads-up meanwhile. */
static void drain_ping_send(tri__conn *c) {
  nghttp2_submit_shutdown_notice(c->sess);
  nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, drain_opaque);
  c->drain_ping = 1;
  c->drain_ping_ns = tri__now_ns();
  if (c->phase == TRI__CONN_READY ||
      (c->phase == TRI__CONN_HANDSHAKE && c->last_read_ns != 0))
    drain_count(c);
}

void tri__server_settled(tri__conn *c) {
  /* A connection whose preface arrives after the drain began may carry
   * requests pipelined behind it: wait for it as for the others. */
  drain_count(c);
}

void tri__server_drain_uncount(tri__conn *c) {
  if (c->drain_counted) {
    c->drain_counted = 0;
    /* Release: a stream this connection opened before (nstreams) is
     * seen by whoever sees this decrement (server_busy). */
    __atomic_sub_fetch(&c->loop->drain_waits, 1, __ATOMIC_RELEASE);
  }
}

int tri__server_drain_waits(tri__loop *l) {
  /* Until the loop has run its drain op, its connections are not counted
   * yet: count that as one more to wait for. */
  if (!__atomic_load_n(&l->drain_sent, __ATOMIC_ACQUIRE))
    return 1;
  return __atomic_load_n(&l->drain_waits, __ATOMIC_ACQUIRE);
}

/* Graceful GOAWAY of one connection (8.3, A9): a heads-up GOAWAY with
 * last-stream-id 2^31-1 and a PING; on its ACK the real GOAWAY with the
 * last processed stream id and |debug|.  Streams in flight go on. */
static void goaway_graceful(tri__conn *c, const char *debug) {
  if (c->drain_ping || c->goaway)
    return;
  drain_ping_send(c);
  c->goaway = 1;
  c->goaway_debug = debug;
}

/* The real GOAWAY after the heads-up: last processed stream id and the
 * debug data of the cause. */
static void goaway_final(tri__conn *c) {
  const char *d = c->goaway_debug;
  c->drain_ping = 0;
  c->goaway = 1; /* no second heads-up from a max_idle/max_age tick */
  tri__server_drain_uncount(c);
  nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(c->sess),
                        NGHTTP2_NO_ERROR, (const uint8_t *)d,
                        d ? strlen(d) : 0);
}

void tri__server_drain(tri__loop *l) {
  tri__list *n;
  l->draining = 1;
  if (l->listen_fd >= 0) {
    /* Close at once: new connections are refused, not left in a backlog
     * nobody accepts from.  The loop owns the listening socket. */
    tri__loop_ep_del(l, l->listen_fd);
    close(l->listen_fd);
    l->listen_fd = -1;
  }
  for (n = l->conns.next; n != &l->conns; n = n->next) {
    tri__conn *c = tri__container_of(n, tri__conn, link);
    /* 8.3 / 13.6: heads-up GOAWAY, then a PING; its ACK sends the real
     * GOAWAY with the last processed stream id. */
    if (c->drain_ping || c->goaway_debug != NULL)
      continue; /* a graceful GOAWAY (max age/idle) is on its way */
    drain_ping_send(c);
  }
  __atomic_store_n(&l->drain_sent, 1, __ATOMIC_RELEASE);
}

/* Per-iteration work of a server connection: handshake and idle timeouts,
 * flushing, closing a finished session, trimming a quiet one. */
void tri__server_conn_tick(tri__conn *c, int64_t now, int64_t *next) {
  tri__loop *l = c->loop;

  if (c->h1 != NULL) {
    tri__h1_tick(c, now, next); /* HTTP/1.1 (http1.c) */
    return;
  }

  if (c->phase == TRI__CONN_TLS || c->phase == TRI__CONN_HANDSHAKE) {
    if (now >= c->phase_deadline) {
      if (c->phase == TRI__CONN_TLS) {
        char why[120];
        snprintf(why, sizeof(why), "not complete within the handshake "
                 "timeout (%lld ms)", (long long)l->cfg.handshake_ms);
        tri__server_tls_failed(l->srv, c->peer ? c->peer->addr : "?", why);
      }
      tri__conn_close(c, c->phase == TRI__CONN_TLS
                             ? "closed: no TLS handshake within the "
                               "handshake timeout"
                             : "closed: no HTTP/2 preface within the "
                               "handshake timeout");
      return;
    }
    *next = tri__deadline_min(*next, c->phase_deadline);
  }
  /* Flush first: the last stream often closes while its frames go out,
   * and the idle deadline must be known before the loop sleeps. */
  if (tri__sock_flush_or_close(c))
    return;
  int sent = 0;
  if (l->cfg.idle_ms > 0 && l->cfg.idle_ms != INT64_MAX) {
    if (!tri__list_empty(&c->streams)) {
      c->idle_since_ns = 0;
    } else {
      if (c->idle_since_ns == 0)
        c->idle_since_ns = now;
      int64_t idle = tri__ms_to_ns(l->cfg.idle_ms);
      int64_t dl = tri__deadline_add(c->idle_since_ns, idle);
      if (now >= dl && !c->goaway) {
        /* 8.4, A9 max_idle: the same graceful GOAWAY as max_age, so a
         * request the client sends meanwhile is still served. */
        goaway_graceful(c, "max_idle");
        sent = 1;
      } else if (!c->goaway) {
        *next = tri__deadline_min(*next, dl);
      }
    }
  }
  if (c->phase == TRI__CONN_READY && c->age_deadline_ns != 0) {
    /* A9 max_connection_age, then max_connection_age_grace. */
    if (!c->goaway && now >= c->age_deadline_ns) {
      goaway_graceful(c, "max_age");
      sent = 1;
      int64_t g = l->cfg.max_age_grace_ms;
      if (g != INT64_MAX) {
        g = tri__ms_to_ns(g);
        c->grace_deadline_ns = tri__deadline_add(now, g);
      }
    } else if (!c->goaway) {
      *next = tri__deadline_min(*next, c->age_deadline_ns);
    }
  }
  if (c->drain_ping && c->phase == TRI__CONN_READY) {
    /* A client that never answers the drain PING still gets the real
     * GOAWAY (and so the connection closes once idle), as gRPC's
     * servers do after a while. */
    int64_t dl = c->drain_ping_ns + tri__ms_to_ns(DRAIN_PING_TIMEOUT_MS);
    if (now >= dl) {
      goaway_final(c);
      sent = 1;
    } else {
      *next = tri__deadline_min(*next, dl);
    }
  }
  if (c->grace_deadline_ns != 0) {
    if (now >= c->grace_deadline_ns) {
      tri__conn_close(c, "closed: max connection age grace over");
      return;
    }
    *next = tri__deadline_min(*next, c->grace_deadline_ns);
  }
  if (c->phase == TRI__CONN_READY && l->cfg.ka_time_ms > 0 &&
      l->cfg.ka_time_ms != INT64_MAX) {
    /* Server keepalive (A8's server side): PING after ka_time without
     * reading; nothing read within ka_timeout closes the connection. */
    int64_t ka = tri__ms_to_ns(l->cfg.ka_time_ms);
    int64_t kto = tri__ms_to_ns(l->cfg.ka_timeout_ms);
    int64_t base = c->last_read_ns != 0 ? c->last_read_ns : c->idle_since_ns;
    if (c->ping_sent_ns != 0) {
      int64_t dl = tri__deadline_add(c->ping_sent_ns, kto);
      if (now >= dl) {
        tri__conn_close(c, "closed: keepalive timeout");
        return;
      }
      *next = tri__deadline_min(*next, dl);
    } else {
      int64_t due = tri__deadline_add(base, ka);
      if (now >= due) {
        nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
        c->ping_sent_ns = now;
        sent = 1;
        *next = tri__deadline_min(*next, tri__deadline_add(now, kto));
      } else {
        *next = tri__deadline_min(*next, due);
      }
    }
  }
  if (sent && tri__sock_flush_or_close(c)) /* what was submitted here */
    return;
  tri__conn_trim_if_quiet(c, !tri__list_empty(&c->streams), now, next);
}

/* ---- requests ---------------------------------------------------------- */

int tri__server_begin(tri__conn *c, int32_t id) {
  tri__loop *l = c->loop;
  tri_stream *s = tri__stream_new(TRI__SERVER, l->cfg.max_recv,
                                  l->cfg.rq_limit, l->cfg.sb_limit);
  if (s == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST this stream */
  s->spin_ns = l->cfg.spin_ns;
  s->srv = l->srv;
  s->quota = c->quota;
  __atomic_add_fetch(&c->quota->refs, 1, __ATOMIC_RELAXED);
  s->conn = c;
  s->id = id;
  s->io_state = TRI__IO_OPEN;
  s->peer = c->peer; /* complete before any stream exists */
  if (s->peer != NULL)
    tri__peer_ref(s->peer);
  s->loop = l; /* the creation reference is the loop's */
  __atomic_add_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
  tri__list_insert_tail(&c->streams, &s->io_link);
  c->nsubmitted++;
  nghttp2_session_set_stream_user_data(c->sess, id, s);
  return 0;
}

static char *dupn(const uint8_t *v, size_t n) {
  return tri__strndup((const char *)v, n);
}

static int hdr_is(const uint8_t *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && memcmp(name, lit, n) == 0;
}

int tri__server_header(tri__conn *c, tri_stream *s, const nghttp2_frame *f,
                       const uint8_t *name, size_t nlen,
                       const uint8_t *val, size_t vlen) {
  size_t limit = c->loop->cfg.max_header_list;

  /* Request trailers carry nothing we use: the handler may already be
   * reading s->hdrs, which is complete (and immutable) once dispatched. */
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  /* 1.5: name + value + 32 per field against the advertised limit. */
  s->hdr_bytes += nlen + vlen + 32;
  if (s->hdr_bytes > limit) {
    if (!s->hdr_too_big)
      c->big_headers++;
    s->hdr_too_big = 1;
    /* Far past the limit (an HPACK bomb), or a peer that keeps sending
     * oversized header lists: stop decoding for it at all.  Every byte
     * decoded here is I/O-thread time taken from the other connections. */
    if (s->hdr_bytes > 4 * limit || c->big_headers >= 3) {
      nghttp2_session_terminate_session2(
          c->sess, nghttp2_session_get_last_proc_stream_id(c->sess),
          NGHTTP2_ENHANCE_YOUR_CALM);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (hdr_is(name, nlen, ":method")) {
    s->req_post = hdr_is(val, vlen, "POST");
    s->req_options = hdr_is(val, vlen, "OPTIONS");
  } else if (hdr_is(name, nlen, ":path")) {
    (void)tri__stream_set_method(s, (const char *)val, vlen); /* NULL:
                                                               answered */
  } else if (hdr_is(name, nlen, "content-type")) {
    tri__free(s->req_ctype);
    s->req_ctype = dupn(val, vlen);
  } else if (hdr_is(name, nlen, "grpc-timeout")) {
    int64_t ns;
    if (tri__timeout_parse((const char *)val, vlen, &ns) == 0)
      s->timeout_ns = ns;
    else
      s->bad_timeout = 1;
  } else if (hdr_is(name, nlen, "grpc-encoding")) {
    int enc = tri__enc_from_name((const char *)val, vlen);
    if (enc == TRI__ENC_UNKNOWN) {
      s->enc_req_unknown = 1;
      tri__free(s->enc_name);
      s->enc_name = dupn(val, vlen);
    } else {
      s->enc_in = enc;
    }
  } else if (hdr_is(name, nlen, "grpc-accept-encoding")) {
    for (int e = TRI__ENC_GZIP; e <= TRI__ENC_DEFLATE; e++)
      if (tri__enc_in_list(e, (const char *)val, vlen))
        s->accept_enc_mask |= 1 << e;
  } else if (hdr_is(name, nlen, "tri-service-group")) {
    tri__free(s->req_group);
    s->req_group = dupn(val, vlen);
  } else if (hdr_is(name, nlen, "tri-service-version")) {
    tri__free(s->req_version);
    s->req_version = dupn(val, vlen);
  }
  if (!tri__md_is_reserved((const char *)name, nlen))
    tri__md_add_wire(&s->hdrs, (const char *)name, nlen, val, vlen);
  return 0;
}

/* ---- responses --------------------------------------------------------- */

static const char *resp_ctype(const tri_stream *s) {
  return s->req_ctype && strncmp(s->req_ctype, "application/grpc", 16) == 0
             ? s->req_ctype
             : "application/grpc";
}

/* Trailers-only response (4.4): one HEADERS frame with END_STREAM, with
 * the status the stream finishes with (s->mu not held). */
static void respond_status(tri__conn *c, tri_stream *s) {
  tri__nv b;
  if (s->edge != NULL && tri__edge_respond(c, s))
    return; /* Triple unary, gRPC-Web: edge.c */
  tri__nv_init(&b);
  tri__nv_adds(&b, ":status", "200");
  tri__nv_adds(&b, "content-type", resp_ctype(s));
  tri__nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  tri__mutex_lock(&s->mu);
  tri__nv_add_status(&b, s->finish_code, s->finish_msg);
  tri__nv_add_md(&b, &s->out_hdrs);
  tri__nv_add_md(&b, &s->out_trl);
  tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
  tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  if (b.failed)
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                              NGHTTP2_INTERNAL_ERROR);
  else
    nghttp2_submit_response(c->sess, s->id, b.nv, b.n, NULL);
  tri__nv_free(&b);
}

/* Answer a request before dispatch (validation failed): trailers-only
 * with |code|, the stream ends with it. */
static void reject(tri__conn *c, tri_stream *s, int code, const char *msg) {
  tri__mutex_lock(&s->mu);
  s->finish_code = code;
  tri__free(s->finish_msg);
  s->finish_msg = tri__strdup(msg);
  tri__stream_ev_locked(s, TRI__EV_END, code, msg, 1, TRI__END_NONE);
  tri__mutex_unlock(&s->mu);
  respond_status(c, s);
}

static void submit_response_headers(tri__conn *c, tri_stream *s) {
  tri__nv b;
  nghttp2_data_provider prd;
  tri__nv_init(&b);
  tri__nv_adds(&b, ":status", "200");
  tri__nv_adds(&b, "content-type", resp_ctype(s));
  tri__mutex_lock(&s->mu);
  if (s->enc_out != TRI__ENC_IDENTITY)
    tri__nv_adds(&b, "grpc-encoding", tri__enc_name(s->enc_out));
  tri__nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  tri__nv_add_md(&b, &s->out_hdrs);
  tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  prd.source.ptr = s;
  /* JSON messages are translated on the way out (edge.c). */
  prd.read_callback = s->edge ? tri__edge_read_cb : tri__data_read_cb;
  if (b.failed)
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                              NGHTTP2_INTERNAL_ERROR);
  else
    nghttp2_submit_response(c->sess, s->id, b.nv, b.n, &prd);
  tri__nv_free(&b);
}

/* Called from the data provider once the ring is empty and the send side
 * closed: the trailers, with the status the stream finishes with. */
void tri__server_submit_trailers(tri__conn *c, tri_stream *s) {
  tri__nv b;
  int done;
  tri__nv_init(&b);
  tri__mutex_lock(&s->mu);
  done = s->send_state == TRI__SEND_DONE;
  if (!done) {
    tri__nv_add_status(&b, s->finish_code, s->finish_msg);
    tri__nv_add_md(&b, &s->out_trl);
    tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  }
  tri__mutex_unlock(&s->mu);
  if (!done) {
    if (b.failed)
      nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                                NGHTTP2_INTERNAL_ERROR);
    else
      nghttp2_submit_trailer(c->sess, s->id, b.nv, b.n);
  }
  tri__nv_free(&b);
}

/* Ops posted by callers (and END with a status to send). */
void tri__server_ops(tri__conn *c, tri_stream *s, unsigned ops) {
  int hdrs_state, send_state, action, final, empty, ending;

  if (s->edge != NULL && tri__edge_ops(c, s, ops))
    return;
  tri__mutex_lock(&s->mu);
  hdrs_state = s->hdrs_state;
  send_state = s->send_state;
  ending = tri__stream_send_ending(s);
  action = s->final ? s->end_action : TRI__END_NONE;
  final = s->final;
  empty = s->sb_len == 0;
  tri__mutex_unlock(&s->mu);
  if (final && action != TRI__END_STATUS)
    return; /* reset (run_ops) or ended by the peer: nothing to send */
  if (send_state == TRI__SEND_DONE)
    return;
  if (hdrs_state != TRI__HDRS_DONE) {
    if (!(ops & (TRI__OP_HEADERS | TRI__OP_END | TRI__OP_DATA)))
      return;
    if (ending && empty)
      respond_status(c, s); /* 4.4 trailers-only */
    else
      submit_response_headers(c, s);
    return;
  }
  if (final) {
    /* Ended with an error (deadline, limit, shutdown): what was queued is
     * discarded but for the DATA frame nghttp2 is writing.  The trailers
     * go now, not from the data provider: nghttp2 calls it only while the
     * client's windows are open, and a client that stopped reading, or
     * other streams using up the connection window, would hold them back
     * (RFC 9113 6.9 controls DATA only).  They follow that frame (HEADERS
     * queue behind the frame being written), and nghttp2 drops the
     * stream's deferred DATA once they have shut our side
     * (doc/PROTOCOL.md 7.3). */
    tri__server_submit_trailers(c, s);
    return;
  }
  if (ending && empty && s->edge == NULL) {
    /* Every DATA byte is written: the trailers go now too.  Through the
     * data provider they would wait for the client's window whenever the
     * last DATA used it up (nghttp2 calls the provider only while it is
     * open), and a client that reads the message only with its status
     * would never send the WINDOW_UPDATE; it also spares an empty DATA
     * frame.  nghttp2 drops the stream's deferred DATA item once the
     * trailers have shut our side.  (Not for JSON over HTTP/2, edge.c:
     * its translated message leaves the ring before it is written.) */
    tri__server_submit_trailers(c, s);
    return;
  }
  if (ops & (TRI__OP_DATA | TRI__OP_END | TRI__OP_HEADERS))
    nghttp2_session_resume_data(c->sess, s->id);
}

/* Server-detected failure of one stream (over-limit message, bad
 * compression): the handler sees |code|, the client gets it in trailers
 * after whatever frame is in flight. */
void tri__server_fail(tri__conn *c, tri_stream *s, int code,
                      const char *msg) {
  tri__io_end(s, code, msg, 1, TRI__END_STATUS);
  tri__server_ops(c, s, TRI__OP_END);
}

void tri__server_headers_done(tri__conn *c, tri_stream *s, int end) {
  const char *msg = NULL;
  char buf[200];
  int rv, edge = 0;

  if (s->hdr_too_big) {
    if (end) {
      tri__mutex_lock(&s->mu);
      tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
      tri__mutex_unlock(&s->mu);
    }
    snprintf(buf, sizeof(buf), "request headers exceed %zu bytes",
             c->loop->cfg.max_header_list);
    reject(c, s, TRI_RESOURCE_EXHAUSTED, buf);
    return;
  }
  /* Triple unary, gRPC-Web, JSON, CORS (edge.c, doc/PROTOCOL.md 14). */
  edge = tri__edge_classify(c, s);
  if (edge < 0)
    return; /* answered */
  if (end && (s->edge == NULL || !edge)) {
    tri__mutex_lock(&s->mu);
    tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
    tri__mutex_unlock(&s->mu);
  }
  if (s->edge == NULL && (s->req_ctype == NULL ||
      strncmp(s->req_ctype, "application/grpc", 16) != 0)) {
    /* 4.8: not gRPC at all: plain HTTP 415. */
    tri__nv b;
    tri__io_end(s, TRI_INTERNAL, "request content-type is not gRPC", 1,
                TRI__END_NONE);
    tri__mutex_lock(&s->mu);
    tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
    tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
    tri__mutex_unlock(&s->mu);
    tri__nv_init(&b);
    tri__nv_adds(&b, ":status", "415");
    nghttp2_submit_response(c->sess, s->id, b.nv, b.n, NULL);
    tri__nv_free(&b);
    return;
  }
  if (s->bad_timeout) {
    reject(c, s, TRI_INTERNAL, "malformed grpc-timeout");
    return;
  }
  if (s->enc_req_unknown) {
    /* 9.3: UNIMPLEMENTED naming both, with grpc-accept-encoding. */
    snprintf(buf, sizeof(buf),
             "grpc-encoding '%s' is not supported; supported: %s",
             s->enc_name ? s->enc_name : "", tri__enc_accept_list());
    reject(c, s, TRI_UNIMPLEMENTED, buf);
    return;
  }
  if (s->timeout_ns >= 0) {
    int64_t now = tri__now_ns();
    s->deadline_ns = tri__deadline_add(now, s->timeout_ns);
  }
  rv = tri__server_dispatch(c->loop->srv, s, &msg);
  if (rv != TRI_OK) {
    reject(c, s, rv, msg);
    return;
  }
  /* An edge request ending with its headers: the (empty) body is
   * complete now that the method's types are known. */
  if (end && s->edge != NULL && !tri__edge_eos(c, s)) {
    tri__mutex_lock(&s->mu);
    tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
    tri__mutex_unlock(&s->mu);
  }
  tri__stream_arm_deadline(s); /* 7.3 */
}

/* A8 enforcement: a PING closer than min_ping_ms to the last one (2 h
 * without open streams unless permitted) is a strike; the third strike
 * since we last sent HEADERS or DATA ends the connection with
 * GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") after its streams finish. */
#define PING_IDLE_MIN_MS (2 * 60 * 60 * 1000)
#define MAX_PING_STRIKES 2

static void ping_received(tri__conn *c) {
  tri__loop *l = c->loop;
  int64_t now = tri__now_ns();
  int64_t min_ms = l->cfg.min_ping_ms;
  if (tri__list_empty(&c->streams) && !l->cfg.permit_ping_idle)
    min_ms = min_ms > PING_IDLE_MIN_MS ? min_ms : PING_IDLE_MIN_MS;
  if (c->ping_recv_ns != 0 && min_ms > 0 &&
      now - c->ping_recv_ns < tri__ms_to_ns(min_ms)) {
    if (++c->ping_strikes > MAX_PING_STRIKES && !c->goaway) {
      static const char why[] = "too_many_pings";
      c->goaway = 1;
      nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->sess),
                            NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why,
                            sizeof(why) - 1);
    }
  }
  c->ping_recv_ns = now;
}

void tri__server_data_sent(tri__conn *c) {
  c->ping_strikes = 0;
  c->ping_recv_ns = 0;
}

void tri__server_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f) {
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      tri__server_headers_done(c, s, end);
    } else if (end && s->edge != NULL && tri__edge_eos(c, s)) {
      return;
    } else if (end && tri__deframer_partial(&s->df)) {
      tri__server_fail(c, s, TRI_INTERNAL, "request ended inside a message");
    } else if (end) {
      /* Request trailers: end of input. */
      tri__mutex_lock(&s->mu);
      tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
      tri__mutex_unlock(&s->mu);
    }
    return;
  case NGHTTP2_DATA:
    if (!end)
      return;
    if (s->edge != NULL && tri__edge_eos(c, s))
      return;
    if (tri__deframer_partial(&s->df)) {
      tri__server_fail(c, s, TRI_INTERNAL, "request ended inside a message");
      return;
    }
    tri__mutex_lock(&s->mu);
    tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
    tri__mutex_unlock(&s->mu);
    return;
  case NGHTTP2_PING:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) {
      ping_received(c);
    } else if (c->drain_ping &&
               memcmp(f->ping.opaque_data, drain_opaque, 8) == 0) {
      /* 8.3: the client has seen the heads-up; now the real GOAWAY. */
      goaway_final(c);
    }
    return;
  default:
    return;
  }
}

void tri__server_rst_received(tri__conn *c, tri_stream *s) {
  if (c->loop->cfg.max_resets_per_s <= 0)
    return;
  if (s != NULL && s->resp_hdrs_sent)
    return;
  /* Rapid reset (CVE-2023-44487): more client resets in one second than
   * the limit ends the connection with ENHANCE_YOUR_CALM, before nghttp2's
   * own limiter (which answers INTERNAL_ERROR).  Only streams reset before
   * our response headers reached the socket count: cancelling a call
   * that is already streaming is ordinary client behaviour, but a reset
   * of a stream whose answer (a quick rejection, say) is still queued
   * behind the attacker's own frames is part of the attack. */
  int64_t now = tri__now_ns();
  if (now - c->rst_window_ns > 1000 * TRI__NS_PER_MS) {
    c->rst_window_ns = now;
    c->rst_count = 0;
  }
  if (++c->rst_count > c->loop->cfg.max_resets_per_s)
    nghttp2_session_terminate_session2(
        c->sess, nghttp2_session_get_last_proc_stream_id(c->sess),
        NGHTTP2_ENHANCE_YOUR_CALM);
}

/* The trailers (or trailers-only response) went out: the stream's final
 * status is the one it carried, and (4.7) if the client has not ended its
 * side, RST_STREAM(NO_ERROR) releases it. */
void tri__server_frame_sent(tri__conn *c, tri_stream *s,
                            const nghttp2_frame *f) {
  int eos;
  tri__mutex_lock(&s->mu);
  eos = s->recv_state == TRI__RECV_EOS;
  tri__stream_ev_locked(s, TRI__EV_END, s->finish_code, s->finish_msg, 0,
                        TRI__END_NONE); /* copies the message */
  tri__mutex_unlock(&s->mu);
  /* An edge response (Triple, gRPC-Web) lets the client finish sending
   * its body (read and dropped): HTTP clients such as curl fail a request
   * whose stream is reset while they still send (16.2). */
  if (!eos && (s->edge == NULL || !tri__edge_keep_open(s)))
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_NO_ERROR);
}

void tri__server_headers_not_sent(tri__conn *c, tri_stream *s,
                                  const nghttp2_frame *f, int lib_error) {
  char buf[200];

  /* Closed or closing streams, and a connection going away, end their
   * streams through on_stream_close and tri__conn_close already. */
  if (lib_error == NGHTTP2_ERR_STREAM_CLOSED ||
      lib_error == NGHTTP2_ERR_STREAM_CLOSING ||
      lib_error == NGHTTP2_ERR_SESSION_CLOSING ||
      s->io_state != TRI__IO_OPEN)
    return;
  tri__nv_not_sent(buf, sizeof(buf),
                   (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
                       ? "response trailers"
                       : "response headers",
                   f, lib_error);
  tri__io_end(s, TRI_INTERNAL, buf, 1, TRI__END_NONE);
  /* 8.1 / PROTOCOL-HTTP2: the client maps INTERNAL_ERROR to INTERNAL. */
  nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                            NGHTTP2_INTERNAL_ERROR);
}

void tri__server_closed(tri__conn *c, tri_stream *s, uint32_t err) {
  char buf[120];
  (void)c;
  if (err == NGHTTP2_CANCEL || err == NGHTTP2_NO_ERROR) {
    tri__io_end(s, TRI_CANCELLED, "call cancelled by the client", 1,
                TRI__END_NONE);
  } else {
    snprintf(buf, sizeof(buf), "stream reset (HTTP/2 error %u)", err);
    tri__io_end(s, TRI_CANCELLED, buf, 1, TRI__END_NONE);
  }
}
