/*
 * The I/O loop: one thread ("tri-io") per channel or server owns every
 * socket and nghttp2 session of that loop.  No other thread touches
 * nghttp2 (STYLE.md 3).  Callers reach it through per-stream op bits queued
 * on loop->ops under loop->cmd_mu plus an eventfd wake-up (wakeup.c).
 *
 * Threads: everything here runs on the I/O thread except tri__stream_unlock(),
 * tri__loop_open(), tri__loop_stop(), tri__loop_drain(),
 * tri__loop_nstreams() and loop creation/join, which callers use.
 *
 * Lock order: stream.mu -> loop.cmd_mu (core.h).  The I/O thread takes
 * stream.mu only for short copies and never waits on a condition, so a
 * slow application can never stall other streams.
 *
 * Flow control (PROTOCOL.md 8.10, 13.4): automatic WINDOW_UPDATE is off.
 * Connection window is returned as soon as bytes are parsed; stream window
 * is returned while the stream's queue of unread complete messages is below
 * its limit, else owed (s->unacked) until the application reads.
 */
#include "tri_int.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "budget.h"
#include "compress.h"
#include "core.h"
#include "status.h"

#define READ_CHUNK (256 * 1024)
#define WRITE_COALESCE (64 * 1024)
#define MAX_EVENTS 64

enum io_state { IO_IDLE = 0, IO_WAITING, IO_OPEN, IO_CLOSED };
enum { LOOP_STOP = 1u << 0, LOOP_DRAIN = 1u << 1 };

struct tri__conn {
  tri__loop *loop;
  int fd;
  nghttp2_session *sess;
  int is_server;
  int connecting;          /* client: connect() in progress */
  int handshaking;         /* client: no SETTINGS from the server yet */
  int64_t connect_deadline;
  struct addrinfo *ai_head, *ai_next;
  int dead;                /* being torn down: callbacks do nothing */
  int goaway;              /* GOAWAY received: no new streams here */
  int drain_ping;          /* server: heads-up GOAWAY + PING sent */
  int64_t last_read_ns;    /* keepalive: idle is measured from reads */
  int64_t idle_since_ns;   /* server: no stream open since, or 0 */
  size_t rq_total;         /* atomic: unread bytes queued on its streams */
  size_t conn_owed;        /* connection window withheld (I/O thread) */
  int owed_flag;           /* atomic: conn_owed > 0 */
  tri__quota *quota;       /* server: handler share of this connection */
  int64_t rst_window_ns;   /* server: start of the reset-counting second */
  int rst_count;           /* client RST_STREAMs in that second */
  int big_headers;         /* oversized request header lists seen */
  int fatal;               /* nghttp2 error that ended the session */
  int64_t ping_sent_ns;    /* keepalive PING outstanding since, or 0 */
  tri__list link;          /* loop->conns */
  tri__list waiting;       /* client streams waiting for the connection */
  tri__list streams;       /* streams submitted to nghttp2 */
  uint8_t *wbuf;
  size_t wlen, woff, wcap;
  uint32_t ep_events;      /* registered epoll events */
};

struct tri__loop {
  pthread_t thread;
  int started;
  int epfd;
  tri__wakeup wake;
  uint8_t *rbuf;           /* READ_CHUNK; one connection is read at a time */

  tri__mutex cmd_mu;       /* leaf (but for the wheel); protects: */
  tri__list ops;           /*   streams with pending op bits */
  unsigned lops;           /*   LOOP_* requests */
  int stopping;            /*   no new streams */

  int nstreams;            /* atomic: streams attached to this loop */
  tri__list conns;         /* I/O thread */
  int is_server;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;

  /* client */
  struct tri_channel *ch;
  char *host, *port, *authority;
  int64_t connect_ms;
  int64_t keepalive_ms, keepalive_timeout_ms;
  size_t conn_rq_limit;
  tri__conn *cur;
  int tearing_down;

  /* server */
  struct tri_server *srv;
  int listen_fd;
  tri__srv_cfg cfg;
  int draining;
};

static int tag_wake, tag_listen;

/* ---- small helpers ---------------------------------------------------- */

static tri_stream *stream_of(nghttp2_session *sess, int32_t id) {
  return nghttp2_session_get_stream_user_data(sess, id);
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL, 0);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

typedef struct {
  nghttp2_nv nv[64];
  size_t n;
  char *owned[64];
  size_t nowned;
  int overflow;
} nvbuf;

static void nv_add(nvbuf *b, const char *name, const char *value,
                   size_t vlen) {
  if (b->n >= TRI__ARRAY_LEN(b->nv)) {
    b->overflow = 1;
    return;
  }
  nghttp2_nv *nv = &b->nv[b->n++];
  nv->name = (uint8_t *)(uintptr_t)name;
  nv->namelen = strlen(name);
  nv->value = (uint8_t *)(uintptr_t)value;
  nv->valuelen = vlen;
  nv->flags = NGHTTP2_NV_FLAG_NONE;
}

static void nv_adds(nvbuf *b, const char *name, const char *value) {
  nv_add(b, name, value, strlen(value));
}

static void nv_keep(nvbuf *b, char *p) {
  if (p == NULL)
    return;
  if (b->nowned < TRI__ARRAY_LEN(b->owned))
    b->owned[b->nowned++] = p;
  else
    tri__free(p); /* cannot happen: nv and owned have the same size */
}

/* Application metadata: -bin values go out base64 without padding (2.12). */
static void nv_add_md(nvbuf *b, const tri_metadata *md) {
  for (size_t i = 0; i < md->n; i++) {
    const tri__md_entry *e = &md->e[i];
    if (tri__md_key_is_bin(e->key, strlen(e->key))) {
      char *enc = tri__malloc(tri__b64_encoded_len(e->len) + 1);
      if (enc == NULL) {
        b->overflow = 1;
        return;
      }
      size_t n = tri__b64_encode(e->val, e->len, enc);
      nv_add(b, e->key, enc, n);
      nv_keep(b, enc);
    } else {
      nv_add(b, e->key, (const char *)e->val, e->len);
    }
  }
}

static void nv_free(nvbuf *b) {
  for (size_t i = 0; i < b->nowned; i++)
    tri__free(b->owned[i]);
}

/* ---- posting from caller threads -------------------------------------- */

void tri__stream_unlock(tri_stream *s) {
  unsigned ops = s->post_bits;
  tri__loop *l = s->loop;
  int wake;

  s->post_bits = 0;
  if (ops == 0 || l == NULL) {
    tri__mutex_unlock(&s->mu);
    return;
  }
  tri__mutex_lock(&l->cmd_mu);
  wake = tri__list_empty(&l->ops) && l->lops == 0;
  s->ops |= ops;
  if (!tri__list_linked(&s->op_link))
    tri__list_insert_tail(&l->ops, &s->op_link);
  else
    wake = 0;
  tri__mutex_unlock(&s->mu);
  if (wake)
    tri__wakeup_signal(&l->wake);
  tri__mutex_unlock(&l->cmd_mu);
}

static void post_loop_op(tri__loop *l, unsigned op) {
  int wake;
  tri__mutex_lock(&l->cmd_mu);
  wake = tri__list_empty(&l->ops) && l->lops == 0;
  l->lops |= op;
  if (op & LOOP_STOP)
    l->stopping = 1;
  tri__mutex_unlock(&l->cmd_mu);
  if (wake)
    tri__wakeup_signal(&l->wake);
}

void tri__loop_stop(tri__loop *l) { post_loop_op(l, LOOP_STOP); }
void tri__loop_drain(tri__loop *l) { post_loop_op(l, LOOP_DRAIN); }

int tri__loop_nstreams(tri__loop *l) {
  return __atomic_load_n(&l->nstreams, __ATOMIC_ACQUIRE);
}

int tri__loop_open(tri__loop *l, tri_stream *s) {
  int rv = TRI_OK;
  tri__mutex_lock(&s->mu);
  tri__mutex_lock(&l->cmd_mu);
  if (l->stopping) {
    rv = TRI_UNAVAILABLE;
  } else {
    tri__stream_ref(s); /* the loop's reference, dropped by detach() */
    __atomic_add_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
    s->loop = l;
  }
  tri__mutex_unlock(&l->cmd_mu);
  if (rv == TRI_OK)
    tri__stream_post_locked(s, TRI__OP_OPEN);
  tri__stream_unlock(s);
  return rv;
}

/* ---- stream detach and final status ----------------------------------- */

static size_t conn_rq_limit(const tri__conn *c) {
  return c->is_server ? c->loop->cfg.conn_rq_limit : c->loop->conn_rq_limit;
}

/* I/O thread: give back connection window withheld while the connection's
 * unread bytes were over budget, once they are under it again. */
static void conn_return_owed(tri__conn *c) {
  if (c->conn_owed == 0 ||
      __atomic_load_n(&c->rq_total, __ATOMIC_RELAXED) >= conn_rq_limit(c))
    return;
  nghttp2_session_consume_connection(c->sess, c->conn_owed);
  c->conn_owed = 0;
  __atomic_store_n(&c->owed_flag, 0, __ATOMIC_RELAXED);
}

void tri__conn_unqueued_locked(tri_stream *s, size_t len) {
  tri__conn *c = s->acct;
  if (c == NULL)
    return;
  size_t left = __atomic_sub_fetch(&c->rq_total, len, __ATOMIC_RELAXED);
  if (__atomic_load_n(&c->owed_flag, __ATOMIC_RELAXED) &&
      left < conn_rq_limit(c) && !s->window_posted) {
    s->window_posted = 1;
    tri__stream_post_locked(s, TRI__OP_WINDOW);
  }
}

/* The I/O side is done with |s|: unlink it everywhere, drop the loop's
 * reference.  Caller threads may still hold their own. */
static void detach(tri__loop *l, tri_stream *s) {
  if (s->io_state == IO_CLOSED)
    return;
  if (s->conn != NULL && s->conn->sess != NULL && s->id > 0 &&
      !s->conn->dead)
    nghttp2_session_set_stream_user_data(s->conn->sess, s->id, NULL);
  s->io_state = IO_CLOSED;
  if (tri__list_linked(&s->io_link))
    tri__list_remove(&s->io_link);
  tri__mutex_lock(&s->mu);
  if (s->acct != NULL) {
    /* What is still unread no longer counts against the connection. */
    __atomic_sub_fetch(&s->acct->rq_total, s->rq_bytes, __ATOMIC_RELAXED);
    s->acct = NULL;
  }
  tri__mutex_lock(&l->cmd_mu);
  if (tri__list_linked(&s->op_link))
    tri__list_remove(&s->op_link);
  s->ops = 0;
  s->loop = NULL;
  tri__mutex_unlock(&l->cmd_mu);
  tri__mutex_unlock(&s->mu);
  if (s->conn != NULL && !s->conn->dead)
    conn_return_owed(s->conn);
  if (tri__timer_stop(&s->deadline_timer))
    tri__stream_unref(s);
  __atomic_sub_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
  tri__stream_unref(s);
}

static void set_final(tri_stream *s, int code, const char *msg, int drop) {
  tri__mutex_lock(&s->mu);
  tri__stream_final_locked(s, code, msg, drop);
  tri__mutex_unlock(&s->mu);
}

/* ---- connection lifetime ---------------------------------------------- */

static void ep_update(tri__conn *c, uint32_t events) {
  if (c->fd < 0 || c->ep_events == events)
    return;
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = c;
  epoll_ctl(c->loop->epfd, c->ep_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
            c->fd, &ev);
  c->ep_events = events;
}

/* Fail every stream of |c| and free it.  Client calls get UNAVAILABLE,
 * server calls CANCELLED (PROTOCOL.md 8.12). */
static void conn_close(tri__conn *c, const char *why) {
  tri__loop *l = c->loop;
  int code = c->is_server ? TRI_CANCELLED : TRI_UNAVAILABLE;
  char msg[160];

  snprintf(msg, sizeof(msg), "connection %s", why);
  c->dead = 1;
  while (!tri__list_empty(&c->waiting)) {
    tri_stream *s = tri__container_of(c->waiting.next, tri_stream, io_link);
    set_final(s, code, msg, 0);
    detach(l, s);
  }
  while (!tri__list_empty(&c->streams)) {
    tri_stream *s = tri__container_of(c->streams.next, tri_stream, io_link);
    set_final(s, code, msg, 0);
    detach(l, s);
  }
  if (c->fd >= 0) {
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  if (c->sess)
    nghttp2_session_del(c->sess);
  if (c->ai_head)
    freeaddrinfo(c->ai_head);
  if (l->cur == c)
    l->cur = NULL;
  tri__list_remove(&c->link);
  tri__quota_unref(c->quota);
  tri__free(c->wbuf);
  tri__free(c);
  tri__budget_add(TRI__B_CONNS, -1);
}

static tri__conn *conn_alloc(tri__loop *l, int fd, int is_server) {
  tri__conn *c = tri__calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->loop = l;
  c->fd = fd;
  c->is_server = is_server;
  tri__list_init(&c->waiting);
  tri__list_init(&c->streams);
  tri__list_init(&c->link);
  int rv = is_server ? nghttp2_session_server_new2(&c->sess, l->cbs, c, l->opt)
                     : nghttp2_session_client_new2(&c->sess, l->cbs, c, l->opt);
  if (rv != 0) {
    tri__free(c);
    return NULL;
  }
  nghttp2_settings_entry iv[5];
  size_t niv = 0;
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
      tri__free(c);
      return NULL;
    }
    c->quota->refs = 1;
  }
  tri__list_insert_tail(&l->conns, &c->link);
  tri__budget_add(TRI__B_CONNS, 1);
  return c;
}

/* Client: start a non-blocking connect to the next resolved address. */
static int conn_try_connect(tri__conn *c) {
  while (c->ai_next != NULL) {
    struct addrinfo *ai = c->ai_next;
    c->ai_next = ai->ai_next;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0)
      continue;
    set_nonblock(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
        errno == EINPROGRESS) {
      if (c->fd >= 0) {
        epoll_ctl(c->loop->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
      }
      c->fd = fd;
      c->ep_events = 0;
      c->connecting = 1;
      ep_update(c, EPOLLOUT);
      return 0;
    }
    close(fd);
  }
  return -1;
}

static void submit_request(tri__conn *c, tri_stream *s);
static int wbuf_append(tri__conn *c, const uint8_t *p, size_t n);

static void conn_connected(tri__conn *c) {
  c->connecting = 0;
  c->handshaking = 1; /* the connect timeout runs until server SETTINGS */
  c->last_read_ns = tri__now_ns();
  if (c->ai_head) {
    freeaddrinfo(c->ai_head);
    c->ai_head = c->ai_next = NULL;
  }
  ep_update(c, EPOLLIN);
  /* Waiting streams go out when the server's SETTINGS arrive
   * (conn_settled): before that its SETTINGS_MAX_CONCURRENT_STREAMS is
   * unknown and streams beyond it would be refused (PROTOCOL.md 1.3). */
}

/* Client: the server's first SETTINGS arrived; submit what waited. */
static void conn_settled(tri__conn *c) {
  c->handshaking = 0;
  while (!tri__list_empty(&c->waiting)) {
    tri_stream *s = tri__container_of(c->waiting.next, tri_stream, io_link);
    tri__list_remove(&s->io_link);
    submit_request(c, s);
  }
}

static tri__conn *client_conn(tri__loop *l) {
  if (l->cur != NULL && !l->cur->goaway && !l->cur->dead)
    return l->cur;
  tri__conn *c = conn_alloc(l, -1, 0);
  if (c == NULL)
    return NULL;
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* Blocking resolution on the I/O thread: numeric and /etc/hosts names
   * resolve at once; a slow resolver only delays this channel. */
  if (getaddrinfo(l->host, l->port, &hints, &c->ai_head) != 0) {
    c->ai_head = NULL;
  }
  c->ai_next = c->ai_head;
  c->connect_deadline = tri__deadline_after_ms(l->connect_ms);
  c->connecting = 1;
  l->cur = c;
  return c;
}

/* ---- client: request submission --------------------------------------- */

static ssize_t data_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *ud);
static void submit_trailers(tri__conn *c, tri_stream *s);

static void submit_request(tri__conn *c, tri_stream *s) {
  tri__loop *l = c->loop;
  nvbuf b;
  char tmo[32];
  int32_t id;

  memset(&b, 0, sizeof(b));
  s->conn = c;
  if (s->deadline_ns != TRI__NO_DEADLINE) {
    int64_t left = s->deadline_ns - tri__now_ns();
    if (left <= 0) {
      /* 2.7: an expired deadline fails locally, nothing is sent. */
      set_final(s, TRI_DEADLINE_EXCEEDED, "deadline exceeded", 1);
      detach(l, s);
      return;
    }
    tri__timeout_encode(left, tmo);
  }
  /* 2: pseudo-headers, then grpc-timeout, call definition, metadata. */
  nv_adds(&b, ":method", "POST");
  nv_adds(&b, ":scheme", "http");
  nv_adds(&b, ":path", s->method);
  nv_adds(&b, ":authority", l->authority);
  if (s->deadline_ns != TRI__NO_DEADLINE) {
    nv_adds(&b, "grpc-timeout", tmo);
    /* A fresh value per call: indexing it would only fill the HPACK table
     * and slow every later lookup. */
    b.nv[b.n - 1].flags = NGHTTP2_NV_FLAG_NO_INDEX;
  }
  /* 2.6: the +proto subtype, as Dubbo Java and dubbo-go clients send. */
  nv_adds(&b, "content-type", "application/grpc+proto");
  nv_adds(&b, "te", "trailers");
  nv_adds(&b, "user-agent", "grpc-c-triplestream/" PACKAGE_VERSION);
  if (s->enc_out != TRI__ENC_IDENTITY)
    nv_adds(&b, "grpc-encoding", tri__enc_name(s->enc_out));
  nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  if (s->group)
    nv_adds(&b, "tri-service-group", s->group);
  if (s->version)
    nv_adds(&b, "tri-service-version", s->version);
  nv_add_md(&b, &s->req_md);
  if (b.overflow) {
    nv_free(&b);
    set_final(s, TRI_INTERNAL, "too much request metadata", 1);
    detach(l, s);
    return;
  }
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = data_read_cb;
  id = nghttp2_submit_request(c->sess, NULL, b.nv, b.n, &prd, s);
  nv_free(&b);
  if (id < 0) {
    set_final(s, TRI_UNAVAILABLE, nghttp2_strerror(id), 0);
    detach(l, s);
    return;
  }
  s->id = id;
  s->io_state = IO_OPEN;
  tri__list_insert_tail(&c->streams, &s->io_link);
}

/* ---- server: responses ------------------------------------------------ */

static void add_status(nvbuf *b, int code, const char *msg, char *codebuf) {
  snprintf(codebuf, 16, "%d", code);
  nv_adds(b, "grpc-status", codebuf);
  if (msg != NULL && *msg) {
    char *enc = tri__pct_encode(msg, strlen(msg), NULL);
    if (enc) {
      nv_adds(b, "grpc-message", enc);
      nv_keep(b, enc);
    }
  }
}

static const char *resp_ctype(const tri_stream *s) {
  return s->req_ctype && strncmp(s->req_ctype, "application/grpc", 16) == 0
             ? s->req_ctype
             : "application/grpc";
}

/* Trailers-only response (4.4): one HEADERS frame with END_STREAM. */
static void respond_status(tri__conn *c, tri_stream *s, int code,
                           const char *msg, const tri_metadata *md1,
                           const tri_metadata *md2) {
  nvbuf b;
  char codebuf[16];
  memset(&b, 0, sizeof(b));
  nv_adds(&b, ":status", "200");
  nv_adds(&b, "content-type", resp_ctype(s));
  nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  add_status(&b, code, msg, codebuf);
  if (md1)
    nv_add_md(&b, md1);
  if (md2)
    nv_add_md(&b, md2);
  nghttp2_submit_response(c->sess, s->id, b.nv, b.n, NULL);
  nv_free(&b);
  s->resp_submitted = 1;
  s->trailers_sent = 1;
}

/* Plain HTTP error for non-gRPC requests (4.8). */
static void respond_http(tri__conn *c, tri_stream *s, const char *status) {
  nvbuf b;
  memset(&b, 0, sizeof(b));
  nv_adds(&b, ":status", status);
  nghttp2_submit_response(c->sess, s->id, b.nv, b.n, NULL);
  s->resp_submitted = 1;
  s->trailers_sent = 1;
}

static void submit_response_headers(tri__conn *c, tri_stream *s) {
  nvbuf b;
  nghttp2_data_provider prd;
  memset(&b, 0, sizeof(b));
  nv_adds(&b, ":status", "200");
  nv_adds(&b, "content-type", resp_ctype(s));
  if (s->enc_out != TRI__ENC_IDENTITY)
    nv_adds(&b, "grpc-encoding", tri__enc_name(s->enc_out));
  nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  tri__mutex_lock(&s->mu);
  nv_add_md(&b, &s->out_hdrs);
  tri__mutex_unlock(&s->mu);
  prd.source.ptr = s;
  prd.read_callback = data_read_cb;
  nghttp2_submit_response(c->sess, s->id, b.nv, b.n, &prd);
  nv_free(&b);
  s->resp_submitted = 1;
}

static void submit_trailers(tri__conn *c, tri_stream *s) {
  nvbuf b;
  char codebuf[16];
  memset(&b, 0, sizeof(b));
  /* finish_code/msg and out_trl are immutable once s->finished is set. */
  add_status(&b, s->finish_code, s->finish_msg, codebuf);
  nv_add_md(&b, &s->out_trl);
  nghttp2_submit_trailer(c->sess, s->id, b.nv, b.n);
  nv_free(&b);
  s->trailers_sent = 1;
}

/* Server: end |s| towards the client with |code| in trailers (or a
 * trailers-only response), dropping whatever was queued to send. */
static void server_end(tri__conn *c, tri_stream *s, int code,
                       const char *msg) {
  int resp;
  tri__mutex_lock(&s->mu);
  if (!s->finished) {
    s->finished = 1;
    s->finish_code = code;
    s->finish_msg = tri__strdup(msg);
  }
  s->send_closed = 1;
  s->sb_len = 0;
  s->sb_head = 0;
  resp = s->resp_submitted;
  tri__mutex_unlock(&s->mu);
  if (s->trailers_sent)
    return;
  if (!resp)
    respond_status(c, s, s->finish_code, s->finish_msg, NULL, &s->out_trl);
  else
    nghttp2_session_resume_data(c->sess, s->id);
}

/* Server-detected failure of one stream (over-limit message, bad
 * compression): the handler sees |code|, the client gets it in trailers. */
static void server_fail(tri__conn *c, tri_stream *s, int code,
                        const char *msg) {
  set_final(s, code, msg, 1);
  server_end(c, s, code, msg);
}

/* ---- data provider (both sides) --------------------------------------- */

/* Wake a sender blocked on a full ring once the space it waits for is
 * there (or the ring is empty), not on every frame (s->mu held). */
static int sender_wakeable(const tri_stream *s) {
  return s->snd_waiters > 0 &&
         (s->sb_len == 0 ||
          (s->sb_len < s->sb_base && s->sb_base - s->sb_len >= s->snd_need));
}

static ssize_t data_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = stream_of(sess, id);
  size_t n;
  int trailers = 0;

  /* Look the stream up rather than trusting src->ptr: a stream detached
   * during teardown may already be freed while nghttp2 still holds its
   * data provider. */
  if (s == NULL || s != src->ptr)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  tri__mutex_lock(&s->mu);
  /* The bytes stay in the ring: send_data_cb writes them from there. */
  n = s->sb ? TRI__MIN(length, s->sb_len) : 0;
  if (n > 0)
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (s->sb_len == n && s->send_closed) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->side == TRI__SERVER) {
      /* 13.2: end DATA without END_STREAM, then trailers carry it. */
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      trailers = 1;
    }
  } else if (n == 0) {
    s->io_deferred = 1;
    tri__mutex_unlock(&s->mu);
    return NGHTTP2_ERR_DEFERRED;
  }
  tri__mutex_unlock(&s->mu);
  if (trailers && !s->trailers_sent)
    submit_trailers(c, s);
  (void)buf;
  return (ssize_t)n;
}

/* NGHTTP2_DATA_FLAG_NO_COPY: write the DATA frame straight from the send
 * ring with writev (after whatever is already waiting in wbuf, to keep the
 * order); what the socket does not take is appended to wbuf.  Saves the
 * ring -> nghttp2 -> wbuf copies of every payload byte. */
static int send_data_cb(nghttp2_session *sess, nghttp2_frame *frame,
                        const uint8_t *framehd, size_t length,
                        nghttp2_data_source *src, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = stream_of(sess, frame->hd.stream_id);
  struct iovec iov[4];
  int n = 0, wake, rv = 0;
  size_t pend = c->wlen - c->woff, left;
  ssize_t w = 0;

  if (s == NULL || s != src->ptr)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* detached, see above */
  if (frame->data.padlen > 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* we never ask for padding */
  /* Output already waiting: a peer that does not read must not make us
   * buffer its frames without bound.  nghttp2 calls again later with the
   * same frame; EPOLLOUT drives the retry. */
  if (pend >= WRITE_COALESCE || c->connecting || c->fd < 0)
    return NGHTTP2_ERR_WOULDBLOCK;
  tri__mutex_lock(&s->mu);
  if (length > s->sb_len) {
    tri__mutex_unlock(&s->mu);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (pend > 0)
    iov[n++] = (struct iovec){c->wbuf + c->woff, pend};
  iov[n++] = (struct iovec){(void *)(uintptr_t)framehd, 9};
  size_t first = TRI__MIN(length, s->sb_cap - s->sb_head);
  if (first > 0)
    iov[n++] = (struct iovec){s->sb + s->sb_head, first};
  if (length > first)
    iov[n++] = (struct iovec){s->sb, length - first};
  if (!c->connecting && c->fd >= 0) {
    do
      w = writev(c->fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        rv = NGHTTP2_ERR_CALLBACK_FAILURE;
      w = 0;
    }
  }
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
        wbuf_append(c, (const uint8_t *)iov[i].iov_base + k,
                    iov[i].iov_len - k) != 0)
      rv = NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  tri__stream_ring_get(s, NULL, length);
  wake = sender_wakeable(s);
  tri__mutex_unlock(&s->mu);
  if (wake)
    tri__cond_broadcast(&s->snd_cv);
  return rv;
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

/* Send DATA frames as large as flow control and the peer's
 * SETTINGS_MAX_FRAME_SIZE allow (PROTOCOL.md 1.6), not nghttp2's 16 KiB. */
static ssize_t read_length_cb(nghttp2_session *sess, uint8_t type, int32_t id,
                              int32_t conn_win, int32_t stream_win,
                              uint32_t max_frame, void *ud) {
  int64_t n = TRI__MIN((int64_t)conn_win, (int64_t)stream_win);
  n = TRI__MIN(n, (int64_t)max_frame);
  n = TRI__MIN(n, (int64_t)TRI__MAX_FRAME);
  (void)sess;
  (void)type;
  (void)id;
  (void)ud;
  return n < 1 ? 1 : (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f,
                            void *ud) {
  tri__conn *c = ud;
  tri__loop *l = c->loop;
  if (c->dead || !c->is_server || f->hd.type != NGHTTP2_HEADERS ||
      f->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  tri_stream *s = tri__stream_new(TRI__SERVER, l->cfg.max_recv,
                                  l->cfg.rq_limit, l->cfg.sb_cap);
  if (s == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST this stream */
  s->srv = l->srv;
  s->quota = c->quota;
  __atomic_add_fetch(&c->quota->refs, 1, __ATOMIC_RELAXED);
  s->conn = c;
  s->id = f->hd.stream_id;
  s->io_state = IO_OPEN;
  s->loop = l; /* the creation reference is the loop's */
  __atomic_add_fetch(&l->nstreams, 1, __ATOMIC_RELEASE);
  tri__list_insert_tail(&c->streams, &s->io_link);
  nghttp2_session_set_stream_user_data(sess, s->id, s);
  return 0;
}

static char *dupn(const uint8_t *v, size_t n) {
  return tri__strndup((const char *)v, n);
}

static int hdr_is(const uint8_t *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && memcmp(name, lit, n) == 0;
}

static int on_server_header(tri__conn *c, tri_stream *s, size_t limit,
                            const uint8_t *name, size_t nlen,
                            const uint8_t *val, size_t vlen) {
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
  if (hdr_is(name, nlen, ":path")) {
    tri__free(s->method);
    s->method = dupn(val, vlen);
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
      tri__free(s->enc_req_name);
      s->enc_req_name = dupn(val, vlen);
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

static void on_client_header(tri_stream *s, const nghttp2_frame *f,
                             const uint8_t *name, size_t nlen,
                             const uint8_t *val, size_t vlen) {
  /* The first non-1xx block is the response headers (nghttp2 labels the
   * one after a 1xx HCAT_HEADERS); a later block, or one that ends the
   * stream, carries trailers. */
  int trailers = s->resp_done || (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
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
      tri__free(s->enc_req_name);
      s->enc_req_name = dupn(val, vlen);
    }
    return;
  }
  if (tri__md_is_reserved((const char *)name, nlen))
    return;
  tri__mutex_lock(&s->mu);
  tri__md_add_wire(trailers ? &s->trl : &s->hdrs, (const char *)name, nlen,
                   val, vlen);
  tri__mutex_unlock(&s->mu);
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *val,
                     size_t vlen, uint8_t flags, void *ud) {
  tri__conn *c = ud;
  if (c->dead || f->hd.type != NGHTTP2_HEADERS)
    return 0;
  tri_stream *s = stream_of(sess, f->hd.stream_id);
  if (s == NULL || s->io_state != IO_OPEN)
    return 0;
  if (c->is_server)
    return on_server_header(c, s, c->loop->cfg.max_header_list, name, nlen,
                            val, vlen);
  else
    on_client_header(s, f, name, nlen, val, vlen);
  return 0;
}

/* Client: the response is complete (trailers or trailers-only). */
static void client_complete(tri_stream *s) {
  int code;
  char buf[200];
  const char *msg;

  if (s->grpc_status >= 0) {
    code = s->grpc_status;
    if (code > 16 && code != 17)
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
  set_final(s, code, msg, 0);
}

static void server_headers_done(tri__conn *c, tri_stream *s, int end) {
  const char *msg = NULL;
  char buf[200];
  int rv;

  if (end)
    s->peer_eof = 1;
  if (s->hdr_too_big) {
    snprintf(buf, sizeof(buf), "request headers exceed %zu bytes",
             c->loop->cfg.max_header_list);
    respond_status(c, s, TRI_RESOURCE_EXHAUSTED, buf, NULL, NULL);
    set_final(s, TRI_RESOURCE_EXHAUSTED, buf, 1);
    return;
  }
  if (s->req_ctype == NULL ||
      strncmp(s->req_ctype, "application/grpc", 16) != 0) {
    respond_http(c, s, "415"); /* 4.8 */
    set_final(s, TRI_INTERNAL, "request content-type is not gRPC", 1);
    return;
  }
  if (s->bad_timeout) {
    respond_status(c, s, TRI_INTERNAL, "malformed grpc-timeout", NULL, NULL);
    set_final(s, TRI_INTERNAL, "malformed grpc-timeout", 1);
    return;
  }
  if (s->enc_req_unknown) {
    /* 9.3: UNIMPLEMENTED naming both, with grpc-accept-encoding. */
    snprintf(buf, sizeof(buf),
             "grpc-encoding '%s' is not supported; supported: %s",
             s->enc_req_name ? s->enc_req_name : "", tri__enc_accept_list());
    respond_status(c, s, TRI_UNIMPLEMENTED, buf, NULL, NULL);
    set_final(s, TRI_UNIMPLEMENTED, buf, 1);
    return;
  }
  if (s->timeout_ns >= 0) {
    int64_t now = tri__now_ns();
    s->deadline_ns =
        s->timeout_ns > INT64_MAX - now ? INT64_MAX : now + s->timeout_ns;
  }
  rv = tri__server_dispatch(c->loop->srv, s, &msg);
  if (rv != TRI_OK) {
    respond_status(c, s, rv, msg, NULL, NULL);
    set_final(s, rv, msg, 1);
    return;
  }
  tri__stream_arm_deadline(s); /* 7.3 */
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f,
                         void *ud) {
  tri__conn *c = ud;
  tri_stream *s;
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

  if (c->dead)
    return 0;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    s = stream_of(sess, f->hd.stream_id);
    if (s == NULL || s->io_state != IO_OPEN)
      return 0;
    if (c->is_server) {
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        server_headers_done(c, s, end);
      } else if (end) {
        /* Request trailers: end of input. */
        tri__mutex_lock(&s->mu);
        s->peer_eof = 1;
        tri__cond_broadcast(&s->rcv_cv);
        tri__mutex_unlock(&s->mu);
      }
      if (end)
        s->remote_closed = 1;
      return 0;
    }
    if (s->skip_block) {
      s->skip_block = 0;
      s->http_status = 0; /* 5.1: skip 1xx, wait for the next block */
      return 0;
    }
    s->hdr_block++;
    if (!s->resp_done) {
      s->resp_done = 1;
      tri__mutex_lock(&s->mu);
      s->hdrs_ready = 1;
      tri__cond_broadcast(&s->rcv_cv);
      tri__mutex_unlock(&s->mu);
      if (!end && (s->http_status != 200 || !s->got_ctype)) {
        /* 5.1, 5.2: not a gRPC response.  End the call from what the
         * headers say and do not parse the body as gRPC frames. */
        client_complete(s);
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_CANCEL);
        return 0;
      }
    }
    if (end) {
      s->remote_closed = 1;
      client_complete(s);
    }
    return 0;
  case NGHTTP2_DATA:
    if (!end)
      return 0;
    s = stream_of(sess, f->hd.stream_id);
    if (s == NULL || s->io_state != IO_OPEN)
      return 0;
    s->remote_closed = 1;
    if (c->is_server) {
      if (tri__deframer_partial(&s->df)) {
        server_fail(c, s, TRI_INTERNAL, "request ended inside a message");
        return 0;
      }
      tri__mutex_lock(&s->mu);
      s->peer_eof = 1;
      tri__cond_broadcast(&s->rcv_cv);
      tri__mutex_unlock(&s->mu);
    } else {
      set_final(s, TRI_INTERNAL,
                "server ended the stream without trailers", 0); /* 5.3 */
    }
    return 0;
  case NGHTTP2_SETTINGS:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && c->handshaking) {
      if (c->is_server)
        c->handshaking = 0;
      else
        conn_settled(c);
    }
    return 0;
  case NGHTTP2_RST_STREAM:
    s = stream_of(sess, f->hd.stream_id);
    if (c->is_server && c->loop->cfg.max_resets_per_s > 0 &&
        (s == NULL || !s->resp_submitted)) {
      /* Rapid reset (CVE-2023-44487): more client resets in one second
       * than the limit ends the connection with ENHANCE_YOUR_CALM, before
       * nghttp2's own limiter (which answers INTERNAL_ERROR).  Only
       * streams reset before we answered count: cancelling a call that is
       * already streaming is ordinary client behaviour. */
      int64_t now = tri__now_ns();
      if (now - c->rst_window_ns > 1000 * TRI__NS_PER_MS) {
        c->rst_window_ns = now;
        c->rst_count = 0;
      }
      if (++c->rst_count > c->loop->cfg.max_resets_per_s)
        nghttp2_session_terminate_session2(
            sess, nghttp2_session_get_last_proc_stream_id(sess),
            NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return 0;
  case NGHTTP2_GOAWAY:
    c->goaway = 1; /* 8.1: no new streams here; nghttp2 closes streams
                      above last-stream-id with REFUSED_STREAM */
    if (c->loop->cur == c)
      c->loop->cur = NULL;
    return 0;
  case NGHTTP2_PING:
    if (c->is_server && (f->hd.flags & NGHTTP2_FLAG_ACK) && c->drain_ping) {
      /* 8.3: the client has seen the heads-up; now the real GOAWAY. */
      c->drain_ping = 0;
      nghttp2_submit_goaway(sess, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(sess),
                            NGHTTP2_NO_ERROR, NULL, 0);
    }
    return 0;
  default:
    return 0;
  }
}

/* Append |n| messages to s->rq and account |len| received bytes for flow
 * control (*owe set when the stream window must be withheld). */
static void queue_msgs(tri__conn *c, tri_stream *s, tri_buf **msgs, size_t n,
                       size_t len, int *owe) {
  int wake = 0;
  tri__mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    tri_buf *m = msgs[i];
    if (s->drop) {
      tri__free(m);
      continue;
    }
    tri__list_insert_tail(&s->rq, &m->link);
    s->rq_bytes += m->len;
    if (s->acct == NULL)
      s->acct = c;
    __atomic_add_fetch(&c->rq_total, m->len, __ATOMIC_RELAXED);
    wake = 1;
  }
  wake = wake && s->rcv_waiters > 0;
  if (owe != NULL) {
    *owe = s->rq_bytes >= s->rq_limit;
    if (*owe)
      s->unacked += len;
  }
  tri__mutex_unlock(&s->mu);
  /* Broadcast: status and header waiters share rcv_cv with the receiver. */
  if (wake)
    tri__cond_broadcast(&s->rcv_cv);
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud) {
  tri__conn *c = ud;
  size_t off = 0, nmsg = 0;
  tri_buf *batch[32];
  int owe;

  if (c->dead)
    return 0;
  tri_stream *s = stream_of(sess, id);
  if (s == NULL || s->io_state != IO_OPEN ||
      __atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
    /* Nobody will read it: give all of the window back. */
    nghttp2_session_consume(sess, id, len);
    return 0;
  }
  /* Connection window: returned at once while the connection's unread
   * bytes are under budget, else withheld until the application reads, so
   * many stalled streams cannot grow memory without bound (13.4). */
  if (__atomic_load_n(&c->rq_total, __ATOMIC_RELAXED) < conn_rq_limit(c)) {
    nghttp2_session_consume_connection(sess, len);
  } else {
    c->conn_owed += len;
    __atomic_store_n(&c->owed_flag, 1, __ATOMIC_RELAXED);
  }
  while (off < len) {
    size_t used = 0;
    tri_buf *m = NULL;
    const char *err = NULL;
    int rv = tri__deframer_feed(&s->df, data + off, len - off, &used, &m,
                                &err);
    off += used;
    if (rv == TRI_OK && m != NULL && (m->flags & TRI_BUF_COMPRESSED)) {
      if (s->enc_in == TRI__ENC_IDENTITY || s->enc_in < 0) {
        static __thread char ebuf[200];
        rv = TRI_INTERNAL; /* 3.4, 9.4 */
        if (s->enc_in < 0) {
          snprintf(ebuf, sizeof(ebuf),
                   "message compressed with grpc-encoding '%s', which is "
                   "not supported; supported: %s",
                   s->enc_req_name ? s->enc_req_name : "?",
                   tri__enc_accept_list());
          err = ebuf;
        } else {
          err = "compressed flag set without grpc-encoding";
        }
      } else {
        tri_buf *d = NULL;
        rv = tri__decompress(s->enc_in, m->data, m->len, s->max_recv, &d);
        if (rv == TRI_OK) {
          d->flags |= TRI_BUF_COMPRESSED;
          tri__free(m);
          m = d;
        } else {
          err = rv == TRI_RESOURCE_EXHAUSTED
                    ? "decompressed message larger than the receive limit"
                    : "cannot decompress message";
        }
      }
      if (rv != TRI_OK) {
        tri__free(m);
        m = NULL;
      }
    }
    if (rv != TRI_OK) {
      char buf[200];
      queue_msgs(c, s, batch, nmsg, 0, NULL); /* dropped with the stream */
      nmsg = 0;
      snprintf(buf, sizeof(buf), "%s", err ? err : tri_strerror(rv));
      nghttp2_session_consume_stream(sess, id, len);
      if (c->is_server) {
        server_fail(c, s, rv, buf);
      } else {
        set_final(s, rv, buf, 1);
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id,
                                  NGHTTP2_CANCEL); /* 6.3 */
      }
      return 0;
    }
    if (m != NULL) {
      if (nmsg == TRI__ARRAY_LEN(batch)) {
        /* a full batch goes first: order on the stream must be kept */
        queue_msgs(c, s, batch, nmsg, 0, NULL);
        nmsg = 0;
      }
      batch[nmsg++] = m;
    }
  }
  /* One lock round for the whole chunk; the waiter is signalled after the
   * lock is released so it does not wake into a held mutex. */
  queue_msgs(c, s, batch, nmsg, len, &owe);
  if (!owe) {
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
  (void)flags;
  return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t err,
                           void *ud) {
  tri__conn *c = ud;
  char buf[120];
  if (c->dead)
    return 0;
  tri_stream *s = stream_of(sess, id);
  if (s == NULL || s->io_state == IO_CLOSED)
    return 0;
  if (c->is_server) {
    if (s->trailers_sent && err == NGHTTP2_NO_ERROR)
      set_final(s, TRI_OK, "", 0);
    else if (err == NGHTTP2_CANCEL || err == NGHTTP2_NO_ERROR)
      set_final(s, TRI_CANCELLED, "call cancelled by the client", 1);
    else {
      snprintf(buf, sizeof(buf), "stream reset (HTTP/2 error %u)", err);
      set_final(s, TRI_CANCELLED, buf, 1);
    }
  } else if (err != NGHTTP2_NO_ERROR) {
    int code = tri__status_from_rst(err); /* 6.1 */
    if (err == NGHTTP2_REFUSED_STREAM)
      snprintf(buf, sizeof(buf), "stream refused by the server");
    else if (err == NGHTTP2_CANCEL)
      snprintf(buf, sizeof(buf), "stream cancelled by the server");
    else if (err == NGHTTP2_ENHANCE_YOUR_CALM)
      snprintf(buf, sizeof(buf), "bandwidth exhausted (the server sent "
               "RST_STREAM ENHANCE_YOUR_CALM)"); /* 6.1 */
    else
      snprintf(buf, sizeof(buf), "stream reset by the server (HTTP/2 "
               "error %u)", err);
    set_final(s, code, buf, 0);
  } else {
    /* 4.7: RST_STREAM(NO_ERROR) after trailers is a normal end (final is
     * already set then); without trailers it is INTERNAL (6.1). */
    set_final(s, TRI_INTERNAL, "stream closed without a status", 0);
  }
  detach(c->loop, s);
  return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *f,
                         void *ud) {
  tri__conn *c = ud;
  if (c->dead || !c->is_server || f->hd.type != NGHTTP2_HEADERS ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  tri_stream *s = stream_of(sess, f->hd.stream_id);
  /* 4.7: trailers before the client's END_STREAM: RST_STREAM(NO_ERROR). */
  if (s != NULL && !s->remote_closed)
    nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_NO_ERROR);
  return 0;
}

static int on_frame_not_send(nghttp2_session *sess, const nghttp2_frame *f,
                             int lib_error, void *ud) {
  tri__conn *c = ud;
  if (c->dead || f->hd.type != NGHTTP2_HEADERS)
    return 0;
  tri_stream *s = stream_of(sess, f->hd.stream_id);
  if (s == NULL || s->io_state != IO_OPEN)
    return 0;
  if (!c->is_server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    /* Never went out (cancelled while queued, GOAWAY): safe to retry. */
    set_final(s, TRI_UNAVAILABLE, nghttp2_strerror(lib_error), 0);
    detach(c->loop, s);
  }
  return 0;
}

/* ---- per-stream ops from callers -------------------------------------- */

static void run_ops(tri__loop *l, tri_stream *s, unsigned ops) {
  tri__conn *c = s->conn;

  if (ops & TRI__OP_OPEN) {
    if (l->tearing_down)
      set_final(s, TRI_CANCELLED, "channel closed", 1);
    if (__atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
      detach(l, s);
      return;
    }
    c = client_conn(l);
    if (c == NULL) {
      set_final(s, TRI_UNAVAILABLE, "out of memory creating connection", 0);
      detach(l, s);
      return;
    }
    s->conn = c;
    if (c->connecting || c->handshaking) {
      s->io_state = IO_WAITING;
      tri__list_insert_tail(&c->waiting, &s->io_link);
    } else {
      submit_request(c, s);
    }
    if (s->io_state == IO_CLOSED)
      return;
  }
  if (s->io_state == IO_WAITING) {
    if (ops & TRI__OP_CANCEL)
      detach(l, s);
    return;
  }
  if (s->io_state != IO_OPEN || c == NULL || c->dead)
    return;
  if (ops & TRI__OP_CANCEL) {
    int code;
    tri__mutex_lock(&s->mu);
    code = s->final_code;
    tri__mutex_unlock(&s->mu);
    if (c->is_server && code == TRI_DEADLINE_EXCEEDED && !s->trailers_sent) {
      /* 7.3: an expired call ends with grpc-status 4 in trailers (as
       * C-core and dubbo-go do), so a client whose own timer has not fired
       * yet still reports DEADLINE_EXCEEDED rather than CANCELLED. */
      server_end(c, s, TRI_DEADLINE_EXCEEDED, "deadline exceeded");
      return;
    }
    /* 7.1: RST_STREAM(CANCEL); on_stream_close() detaches. */
    nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                              NGHTTP2_CANCEL);
    return;
  }
  if (ops & TRI__OP_WINDOW) {
    size_t n;
    tri__mutex_lock(&s->mu);
    n = s->unacked;
    s->unacked = 0;
    s->window_posted = 0;
    tri__mutex_unlock(&s->mu);
    if (n)
      nghttp2_session_consume_stream(c->sess, s->id, n);
    conn_return_owed(c);
  }
  if (c->is_server && (ops & (TRI__OP_HEADERS | TRI__OP_FINISH)) &&
      !s->resp_submitted && !s->trailers_sent) {
    int finished, empty;
    tri__mutex_lock(&s->mu);
    finished = s->finished;
    empty = s->sb_len == 0;
    tri__mutex_unlock(&s->mu);
    if (finished && empty)
      respond_status(c, s, s->finish_code, s->finish_msg, &s->out_hdrs,
                     &s->out_trl); /* 4.4 trailers-only */
    else
      submit_response_headers(c, s);
    ops &= ~TRI__OP_DATA;
  }
  if (ops & (TRI__OP_DATA | TRI__OP_FINISH))
    nghttp2_session_resume_data(c->sess, s->id);
}

/* Returns the loop-level ops taken. */
static unsigned drain_ops(tri__loop *l) {
  tri__list local;
  unsigned lops;

  tri__mutex_lock(&l->cmd_mu);
  tri__list_move(&l->ops, &local);
  lops = l->lops;
  l->lops = 0;
  tri__mutex_unlock(&l->cmd_mu);
  for (int guard = 0; !tri__list_empty(&local) && guard < 1000000; guard++) {
    tri_stream *s = tri__container_of(local.next, tri_stream, op_link);
    unsigned ops;
    tri__mutex_lock(&l->cmd_mu);
    tri__list_remove(&s->op_link);
    ops = s->ops;
    s->ops = 0;
    tri__mutex_unlock(&l->cmd_mu);
    run_ops(l, s, ops);
  }
  return lops;
}

/* ---- socket I/O ------------------------------------------------------- */

static int wbuf_append(tri__conn *c, const uint8_t *p, size_t n) {
  if (c->wlen + n > c->wcap) {
    size_t cap = c->wcap ? c->wcap : WRITE_COALESCE;
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

/* Serialize pending frames and write them; coalesces up to
 * WRITE_COALESCE bytes per write.  Returns -1 when the connection failed. */
static int conn_flush(tri__conn *c) {
  if (c->connecting || c->fd < 0)
    return 0;
  for (int rounds = 0; rounds < 1024; rounds++) {
    while (c->wlen - c->woff < WRITE_COALESCE) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(c->sess, &p);
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      if (wbuf_append(c, p, (size_t)n) != 0)
        return -1;
    }
    if (c->wlen == c->woff)
      break;
    ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                     MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        ep_update(c, EPOLLIN | EPOLLOUT);
        return 0;
      }
      return -1;
    }
    c->woff += (size_t)w;
    if (c->woff == c->wlen)
      c->woff = c->wlen = 0;
  }
  if (c->wlen == c->woff)
    ep_update(c, EPOLLIN);
  else
    ep_update(c, EPOLLIN | EPOLLOUT);
  return 0;
}

/* nghttp2 stops serialising after a fatal receive error (flood, bad
 * frame), so tell the peer why with a GOAWAY written by hand: 9-byte frame
 * header, last stream id, error code.  Best effort, never blocks.  Not for
 * a bad preface: that peer does not speak HTTP/2. */
static void conn_raw_goaway(tri__conn *c) {
  uint32_t code;
  uint8_t f[17];

  if (c->fd < 0 || c->sess == NULL || c->fatal == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
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
  if (wbuf_append(c, f, sizeof(f)) != 0)
    return;
  ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                   MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)w;
}

static int conn_read(tri__conn *c) {
  /* Bounded per wake-up so one busy connection cannot starve others. */
  for (int i = 0; i < 16; i++) {
    uint8_t *rbuf = c->loop->rbuf;
    ssize_t n = recv(c->fd, rbuf, READ_CHUNK, 0);
    if (n == 0)
      return -1;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -1;
    }
    c->last_read_ns = tri__now_ns();
    c->ping_sent_ns = 0;
    ssize_t r = nghttp2_session_mem_recv(c->sess, rbuf, (size_t)n);
    if (r < 0) {
      TRI_DEBUGF("nghttp2_session_mem_recv: %s\n", nghttp2_strerror((int)r));
      c->fatal = (int)r;
      return -2;
    }
    if (c->dead)
      return -1;
    /* A short read drained the socket: epoll (level-triggered) reports
     * more later, so skip the recv() that would only say EAGAIN. */
    if ((size_t)n < READ_CHUNK)
      return 0;
  }
  return 0;
}

static void conn_event(tri__conn *c, uint32_t ev) {
  if (c->connecting) {
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
      if (err == 0) {
        conn_connected(c);
      } else if (conn_try_connect(c) != 0) {
        char why[120];
        snprintf(why, sizeof(why), "failed: %s", strerror(err));
        conn_close(c, why);
        return;
      }
    }
    if (c->connecting)
      return;
  }
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    int r = conn_read(c);
    if (r == -2) {
      conn_flush(c); /* what nghttp2 still queued, then our GOAWAY */
      conn_raw_goaway(c);
      conn_close(c, "protocol error");
      return;
    }
    if (r < 0) {
      conn_close(c, "closed by peer");
      return;
    }
  }
  if (conn_flush(c) != 0)
    conn_close(c, "write failed");
}

static void do_accept(tri__loop *l) {
  for (int i = 0; i < 64; i++) {
    int fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (l->draining) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tri__conn *c = conn_alloc(l, fd, 1);
    if (c == NULL) {
      close(fd);
      continue;
    }
    /* The client preface and SETTINGS must arrive within the handshake
     * timeout (slowloris on the preface). */
    c->handshaking = 1;
    c->connect_deadline = tri__deadline_after_ms(l->cfg.handshake_ms);
    c->idle_since_ns = tri__now_ns();
    ep_update(c, EPOLLIN);
  }
}

static void start_drain(tri__loop *l) {
  tri__list *n;
  l->draining = 1;
  if (l->listen_fd >= 0) {
    /* Close at once: new connections are refused, not left in a backlog
     * nobody accepts from.  The loop owns the listening socket. */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->listen_fd, NULL);
    close(l->listen_fd);
    l->listen_fd = -1;
  }
  for (n = l->conns.next; n != &l->conns; n = n->next) {
    tri__conn *c = tri__container_of(n, tri__conn, link);
    if (c->dead)
      continue;
    /* 8.3 / 13.6: heads-up GOAWAY, then a PING; its ACK sends the real
     * GOAWAY with the last processed stream id. */
    nghttp2_submit_shutdown_notice(c->sess);
    nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
    c->drain_ping = 1;
  }
}

static void teardown(tri__loop *l) {
  /* Streams that were opened but never reached a connection. */
  l->tearing_down = 1;
  drain_ops(l);
  while (!tri__list_empty(&l->conns)) {
    tri__conn *c = tri__container_of(l->conns.next, tri__conn, link);
    tri__list *lists[2] = {&c->waiting, &c->streams};
    for (int i = 0; i < 2; i++) {
      while (!tri__list_empty(lists[i])) {
        tri_stream *s = tri__container_of(lists[i]->next, tri_stream, io_link);
        if (!c->dead && s->id > 0 && s->io_state == IO_OPEN)
          nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                                    NGHTTP2_CANCEL); /* 7.1 */
        set_final(s, c->is_server ? TRI_CANCELLED : TRI_CANCELLED,
                  c->is_server ? "server shutting down" : "channel closed",
                  1);
        detach(l, s);
      }
    }
    if (c->is_server) {
      nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->sess),
                            NGHTTP2_NO_ERROR, NULL, 0);
    }
    conn_flush(c);
    conn_close(c, "closed");
  }
  drain_ops(l); /* posts raced with the teardown: streams are detached */
}

static void *loop_main(void *arg) {
  tri__loop *l = arg;
  struct epoll_event evs[MAX_EVENTS];

  tri__thread_set_name("tri-io");
  for (;;) {
    unsigned lops = drain_ops(l);
    if (lops & LOOP_STOP) {
      teardown(l);
      break;
    }
    if ((lops & LOOP_DRAIN) && !l->draining)
      start_drain(l);

    int64_t next = TRI__NO_DEADLINE, now = tri__now_ns();
    tri__list *n, *nx;
    for (n = l->conns.next; n != &l->conns; n = nx) {
      tri__conn *c = tri__container_of(n, tri__conn, link);
      nx = n->next;
      if (c->connecting && c->fd < 0) {
        /* resolution done in client_conn(); start the first attempt */
        if (conn_try_connect(c) != 0) {
          conn_close(c, "failed: cannot connect to any address");
          continue;
        }
      }
      if (c->connecting) {
        if (now >= c->connect_deadline) {
          conn_close(c, "timed out while connecting");
          continue;
        }
        next = tri__deadline_min(next, c->connect_deadline);
        continue;
      }
      if (c->handshaking) {
        /* Client: a listener that accepts but never speaks HTTP/2 must not
         * hold calls forever.  Server: a peer that never completes its
         * preface (slowloris) is dropped. */
        if (now >= c->connect_deadline) {
          conn_close(c, c->is_server
                            ? "closed: no HTTP/2 preface within the "
                              "handshake timeout"
                            : "timed out waiting for the server's HTTP/2 "
                              "settings");
          continue;
        }
        next = tri__deadline_min(next, c->connect_deadline);
      }
      if (c->is_server && l->cfg.idle_ms > 0 && !c->dead) {
        if (!tri__list_empty(&c->streams)) {
          c->idle_since_ns = 0;
        } else {
          if (c->idle_since_ns == 0)
            c->idle_since_ns = now;
          int64_t dl = c->idle_since_ns + l->cfg.idle_ms * TRI__NS_PER_MS;
          if (now >= dl && !c->goaway) {
            /* 8.4: max_idle */
            c->goaway = 1;
            nghttp2_submit_goaway(
                c->sess, NGHTTP2_FLAG_NONE,
                nghttp2_session_get_last_proc_stream_id(c->sess),
                NGHTTP2_NO_ERROR, (const uint8_t *)"max_idle", 8);
          } else if (!c->goaway) {
            next = tri__deadline_min(next, dl);
          }
        }
      }
      if (!c->is_server && l->keepalive_ms > 0) {
        /* 8.6: PING after keepalive_ms without reading; no bytes at all
         * within the timeout closes the transport (calls UNAVAILABLE). */
        if (c->ping_sent_ns != 0) {
          int64_t dl = c->ping_sent_ns + l->keepalive_timeout_ms * TRI__NS_PER_MS;
          if (now >= dl) {
            conn_close(c, "keepalive timeout");
            continue;
          }
          next = tri__deadline_min(next, dl);
        } else {
          int64_t due = c->last_read_ns + l->keepalive_ms * TRI__NS_PER_MS;
          if (now >= due) {
            nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL);
            c->ping_sent_ns = now;
            next = tri__deadline_min(
                next, now + l->keepalive_timeout_ms * TRI__NS_PER_MS);
          } else {
            next = tri__deadline_min(next, due);
          }
        }
      }
      if (conn_flush(c) != 0) {
        conn_close(c, "write failed");
        continue;
      }
      if (!nghttp2_session_want_read(c->sess) &&
          !nghttp2_session_want_write(c->sess) && c->wlen == c->woff) {
        conn_close(c, "finished");
        continue;
      }
    }
    int nev = epoll_wait(l->epfd, evs, MAX_EVENTS, tri__deadline_poll_ms(next));
    for (int i = 0; i < nev; i++) {
      void *p = evs[i].data.ptr;
      if (p == &tag_wake) {
        tri__wakeup_drain(&l->wake);
      } else if (p == &tag_listen) {
        do_accept(l);
      } else {
        conn_event(p, evs[i].events);
      }
    }
  }
  return NULL;
}

/* ---- creation --------------------------------------------------------- */

static tri__loop *loop_alloc(int is_server) {
  tri__loop *l = tri__calloc(1, sizeof(*l));
  if (l == NULL)
    return NULL;
  l->is_server = is_server;
  l->listen_fd = -1;
  tri__list_init(&l->ops);
  tri__list_init(&l->conns);
  tri__mutex_init(&l->cmd_mu);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->rbuf = tri__malloc(READ_CHUNK);
  if (l->epfd < 0 || l->rbuf == NULL || tri__wakeup_init(&l->wake) != 0)
    goto fail;
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &tag_wake;
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, tri__wakeup_fd(&l->wake), &ev) != 0)
    goto fail_wake;
  if (nghttp2_session_callbacks_new(&l->cbs) != 0)
    goto fail_wake;
  nghttp2_session_callbacks_set_on_begin_headers_callback(l->cbs,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(l->cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(l->cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(l->cbs,
                                                            on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(l->cbs,
                                                         on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(l->cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(l->cbs,
                                                           on_frame_not_send);
  nghttp2_session_callbacks_set_data_source_read_length_callback(
      l->cbs, read_length_cb);
  nghttp2_session_callbacks_set_send_data_callback(l->cbs, send_data_cb);
  if (nghttp2_option_new(&l->opt) != 0)
    goto fail_cbs;
  nghttp2_option_set_no_auto_window_update(l->opt, 1); /* 13.4 */
  if (is_server) {
    /* 13.1: rapid reset and CONTINUATION flood limits.  Our own limiter
     * (on_frame_recv) closes rapid-reset connections first, counting only
     * streams reset before we answered; nghttp2's counts every reset, so
     * it stays as a generous backstop that does not cut off clients that
     * legitimately cancel many calls (Go clients, hedging). */
    nghttp2_option_set_stream_reset_rate_limit(l->opt, 10000, 1000);
    nghttp2_option_set_max_continuations(l->opt, 8);
  }
  return l;

fail_cbs:
  nghttp2_session_callbacks_del(l->cbs);
fail_wake:
  tri__wakeup_close(&l->wake);
fail:
  if (l->epfd >= 0)
    close(l->epfd);
  tri__free(l->rbuf);
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l);
  return NULL;
}

tri__loop *tri__loop_new_client(struct tri_channel *ch, const char *host,
                                const char *port, int64_t connect_ms,
                                const char *authority, int64_t keepalive_ms,
                                int64_t keepalive_timeout_ms,
                                size_t conn_rq_limit) {
  tri__loop *l = loop_alloc(0);
  if (l == NULL)
    return NULL;
  l->ch = ch;
  l->keepalive_ms = keepalive_ms;
  l->keepalive_timeout_ms = keepalive_timeout_ms;
  l->conn_rq_limit = conn_rq_limit;
  l->host = tri__strdup(host);
  l->port = tri__strdup(port);
  l->authority = tri__strdup(authority);
  l->connect_ms = connect_ms;
  if (!l->host || !l->port || !l->authority) {
    tri__loop_join_free(l);
    return NULL;
  }
  return l;
}

tri__loop *tri__loop_new_server(struct tri_server *srv, int listen_fd,
                                const tri__srv_cfg *cfg) {
  tri__loop *l = loop_alloc(1);
  if (l == NULL)
    return NULL;
  l->srv = srv;
  l->listen_fd = listen_fd;
  l->cfg = *cfg;
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &tag_listen;
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  return l;
}

int tri__loop_start(tri__loop *l) {
  int rv = pthread_create(&l->thread, NULL, loop_main, l);
  if (rv != 0)
    return -rv;
  l->started = 1;
  return 0;
}

void tri__loop_join_free(tri__loop *l) {
  if (l == NULL)
    return;
  if (l->started) {
    tri__loop_stop(l);
    pthread_join(l->thread, NULL);
  } else {
    teardown(l);
  }
  if (l->listen_fd >= 0)
    close(l->listen_fd);
  nghttp2_option_del(l->opt);
  nghttp2_session_callbacks_del(l->cbs);
  tri__wakeup_close(&l->wake);
  close(l->epfd);
  tri__free(l->rbuf);
  tri__mutex_destroy(&l->cmd_mu);
  tri__free(l->host);
  tri__free(l->port);
  tri__free(l->authority);
  tri__free(l);
}
