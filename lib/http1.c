/*
 * HTTP/1.1 on the server's port (doc/PROTOCOL.md 16.9): a connection whose
 * first bytes are not the HTTP/2 preface is parsed with http-parser
 * (Debian libhttp-parser-dev) and served Triple's unary protocol and
 * gRPC-Web, through the same streams, handlers and edge (edge.c) as
 * HTTP/2.  One request is in flight per connection: after a request's
 * body the parser is paused until its response is written, so pipelined
 * requests are answered in order.
 *
 * Threads: the connection's I/O thread only.  Without http-parser the
 * entry points do nothing and such connections are closed by nghttp2's
 * preface check, as before.
 */
#include "tri_int.h"

#include <linux/sockios.h> /* SIOCOUTQ */
#include <sys/ioctl.h>

#include "conn.h"
#include "edge.h"

#ifdef HAVE_HTTP_PARSER

#include <ctype.h>
#include <strings.h>
#include <sys/epoll.h>

#include <http_parser.h>

#include "nv.h"

#define H1_MAX_URL 8192
/* Received bytes kept unparsed while a response is pending (pipelining);
 * beyond it the connection is closed. */
#define H1_MAX_INBUF (1024 * 1024)
/* An idle keep-alive connection is closed after this long (or the
 * server's idle timeout, if set). */
#define H1_KEEPALIVE_MS 60000
#define H1_OUT_CHUNK (16 * 1024)

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct tri__h1 {
  http_parser p;
  tri__conn *c;
  tri_stream *cur;         /* request being read or answered */
  int32_t next_id;
  /* the request head */
  char *url;
  size_t urllen;
  char *hn, *hv;           /* header being collected */
  size_t hnlen, hvlen, hncap, hvcap;
  int in_value;
  int expect_continue;     /* "Expect: 100-continue" */
  size_t hdr_bytes;
  int head_bad;            /* over a limit: 431/414 */
  int head_done;
  size_t body_bytes;
  int msg_done;            /* whole request read */
  int keep_alive, http10;
  int64_t req_start;       /* first byte of the request's head */
  int64_t body_since;      /* the head parsed (and 100 Continue sent) */
  int64_t idle_since;
  /* the response */
  int resp_started, resp_chunked, resp_done;
  int close_after;         /* close once the response is written */
  int age_over;            /* past the max connection age: the next
                              response head says connection: close */
  int32_t age_id;          /* the request in progress at the age, or 0 */
  int64_t stall_since;     /* output unwritten, no progress since, or 0 */
  uint64_t stall_sent;     /* c->wsent then */
  int stall_outq;          /* the socket's send queue then, or -1 */
  int closing;             /* no more requests: close once the current
                              response (if any) is written */
  int kill;                /* close as soon as what is written went out */
  int resume;              /* parse buffered input at the next tick */
  int broken;              /* output could not be buffered (out of
                              memory): close without writing more, since
                              what is buffered may end mid-response */
  int cut;                 /* a started response will not be complete:
                              the connection ends with a reset */
  /* received, not parsed (parser paused) */
  uint8_t *in;
  size_t inlen, incap;
};

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap : 64;
  while (nc < need)
    nc *= 2;
  char *nb = tri__realloc(*buf, nc);
  if (nb == NULL)
    return -1;
  *buf = nb;
  *cap = nc;
  return 0;
}

/* Buffer response bytes.  A failure (out of memory) is sticky: the
 * connection closes at the next flush (tri__h1_produce), so the client
 * never gets a response with a hole in it. */
static void out(tri__conn *c, const void *p, size_t n) {
  if (!c->h1->broken && tri__conn_wappend(c, p, n) != 0)
    c->h1->broken = c->h1->cut = 1;
}

/* A response the connection writes without a stream (bad request line,
 * head over the limits): then it closes. */
static void raw_answer(tri__conn *c, int status, const char *why) {
  char buf[300];
  int n = snprintf(buf, sizeof(buf),
                   "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
                   "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                   status, tri__edge_reason(status), strlen(why), why);
  out(c, buf, (size_t)n);
  c->h1->closing = 1;
}

/* ---- parser callbacks -------------------------------------------------- */

static int on_message_begin(http_parser *p) {
  struct tri__h1 *h = p->data;
  h->urllen = h->hnlen = h->hvlen = 0;
  h->in_value = 0;
  h->expect_continue = 0;
  h->hdr_bytes = 0;
  h->head_bad = h->head_done = h->msg_done = 0;
  h->body_bytes = 0;
  h->req_start = tri__now_ns();
  h->resp_started = h->resp_done = h->resp_chunked = 0;
  /* The stream exists from the first byte, so headers go straight in. */
  if (tri__server_begin(h->c, h->next_id += 2) != 0) {
    raw_answer(h->c, 503, "out of memory\n");
    return -1;
  }
  h->cur = tri__container_of(h->c->streams.prev, tri_stream, io_link);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  struct tri__h1 *h = p->data;
  if (h->urllen + len > H1_MAX_URL) {
    h->head_bad = 414;
    return 0;
  }
  char *nb = tri__realloc(h->url, h->urllen + len + 1);
  if (nb == NULL)
    return -1;
  h->url = nb;
  memcpy(h->url + h->urllen, at, len);
  h->urllen += len;
  h->url[h->urllen] = '\0';
  return 0;
}

static void feed(struct tri__h1 *h, tri_stream *s, const char *name,
                 size_t nlen, const char *val, size_t vlen) {
  nghttp2_frame f;
  memset(&f, 0, sizeof(f));
  f.hd.type = NGHTTP2_HEADERS;
  f.headers.cat = NGHTTP2_HCAT_REQUEST;
  tri__server_header(h->c, s, &f, (const uint8_t *)name, nlen,
                     (const uint8_t *)val, vlen);
}

static int is_conn_header(const char *n, size_t len) {
  static const char *const hop[] = {"connection", "keep-alive",
                                    "proxy-connection", "transfer-encoding",
                                    "upgrade", "content-length", "host",
                                    "te", "http2-settings"};
  for (size_t i = 0; i < TRI__ARRAY_LEN(hop); i++)
    if (strlen(hop[i]) == len && memcmp(hop[i], n, len) == 0)
      return 1;
  return 0;
}

static void commit_header(struct tri__h1 *h) {
  if (h->hnlen == 0)
    return;
  for (size_t i = 0; i < h->hnlen; i++)
    h->hn[i] = (char)tolower((unsigned char)h->hn[i]);
  /* Trim the value's surrounding whitespace (RFC 9112 §5). */
  size_t b = 0, e = h->hvlen;
  while (b < e && (h->hv[b] == ' ' || h->hv[b] == '\t'))
    b++;
  while (e > b && (h->hv[e - 1] == ' ' || h->hv[e - 1] == '\t'))
    e--;
  if (h->hnlen == 6 && memcmp(h->hn, "expect", 6) == 0 && e - b == 12 &&
      strncasecmp(h->hv + b, "100-continue", 12) == 0)
    h->expect_continue = 1;
  if (h->cur != NULL && !is_conn_header(h->hn, h->hnlen))
    feed(h, h->cur, h->hn, h->hnlen, h->hv + b, e - b);
  h->hnlen = h->hvlen = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct tri__h1 *h = p->data;
  if (h->in_value) {
    commit_header(h);
    h->in_value = 0;
  }
  h->hdr_bytes += len + (h->hnlen == 0 ? 32 : 0);
  if (h->hdr_bytes > h->c->loop->cfg.max_header_list) {
    h->head_bad = 431;
    return 0;
  }
  if (grow(&h->hn, &h->hncap, h->hnlen + len) != 0)
    return -1;
  memcpy(h->hn + h->hnlen, at, len);
  h->hnlen += len;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct tri__h1 *h = p->data;
  h->in_value = 1;
  h->hdr_bytes += len;
  if (h->hdr_bytes > h->c->loop->cfg.max_header_list) {
    h->head_bad = 431;
    return 0;
  }
  if (grow(&h->hv, &h->hvcap, h->hvlen + len) != 0)
    return -1;
  memcpy(h->hv + h->hvlen, at, len);
  h->hvlen += len;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  struct tri__h1 *h = p->data;
  tri__conn *c = h->c;
  tri_stream *s;

  /* RFC 9110 §7.8: a server may ignore Upgrade (h2c is not offered). */
  p->upgrade = 0;
  h->keep_alive = http_should_keep_alive(p);
  h->http10 = p->http_major == 1 && p->http_minor == 0;
  if (c->phase == TRI__CONN_HANDSHAKE)
    c->phase = TRI__CONN_READY; /* the handshake timeout covered it */
  if (h->head_bad) {
    raw_answer(c, h->head_bad, h->head_bad == 414 ? "URI too long\n"
                                                   : "request headers too "
                                                     "large\n");
    return -1;
  }
  s = h->cur;
  h->head_done = 1;
  h->body_since = tri__now_ns();
  const char *m = http_method_str((enum http_method)p->method);
  feed(h, s, ":method", 7, m, strlen(m));
  size_t plen = h->urllen;
  const char *q = h->url ? memchr(h->url, '?', h->urllen) : NULL;
  if (q != NULL)
    plen = (size_t)(q - h->url);
  feed(h, s, ":path", 5, h->url ? h->url : "/", h->url ? plen : 1);
  commit_header(h);
  tri__server_headers_done(c, s, 0);
  if (s->edge == NULL) {
    /* Only out of memory gets here (every HTTP/1.1 request is an edge
     * request or answered by it). */
    tri__io_end(s, TRI_INTERNAL, "out of memory", 1, TRI__END_NONE);
    h->closing = h->kill = 1;
    return -1;
  }
  /* RFC 9110 §10.1.1: a client waiting for 100 Continue (curl, for
   * large bodies) gets it now, unless the request is answered already;
   * otherwise it would wait its timeout before sending the body. */
  if (h->expect_continue && !h->http10 && !h->resp_started &&
      ((p->content_length > 0 && p->content_length != ULLONG_MAX) ||
       (p->flags & F_CHUNKED)) &&
      !__atomic_load_n(&s->final, __ATOMIC_ACQUIRE))
    out(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct tri__h1 *h = p->data;
  tri_stream *s = h->cur;
  h->body_bytes += len;
  if (s == NULL) { /* answered before its body ended: read and dropped */
    if (h->body_bytes <= 2 * h->c->loop->cfg.max_recv + 1024)
      return 0;
    h->closing = 1; /* enough: close (the answer is out already) */
    return -1;
  }
  if (__atomic_load_n(&s->final, __ATOMIC_ACQUIRE)) {
    /* Answered already (or over a limit): the rest is read and dropped,
     * up to the limit, then the connection closes after the answer. */
    if (h->body_bytes > 2 * s->max_recv + 1024) {
      h->close_after = 1; /* its answer goes out, then the close */
      h->closing = 1;
      return -1;
    }
    return 0;
  }
  if (h->body_bytes > 2 * s->max_recv + 1024) {
    tri__server_fail(h->c, s, TRI_RESOURCE_EXHAUSTED,
                     "request body exceeds twice the receive limit");
    h->close_after = 1;
    return 0;
  }
  tri__flow_data_chunk(h->c, s, (const uint8_t *)at, len);
  return 0;
}

static int on_message_complete(http_parser *p) {
  struct tri__h1 *h = p->data;
  tri_stream *s = h->cur;
  h->msg_done = 1;
  if (s == NULL)
    return 0; /* its response is already out: go on with the next */
  if (!__atomic_load_n(&s->final, __ATOMIC_ACQUIRE) &&
      !tri__edge_eos(h->c, s)) {
    if (tri__deframer_partial(&s->df)) {
      tri__server_fail(h->c, s, TRI_INTERNAL,
                       "request ended inside a message");
    } else {
      tri__mutex_lock(&s->mu);
      tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
      tri__mutex_unlock(&s->mu);
    }
  }
  /* One request at a time: the next waits for this response. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connection -------------------------------------------------------- */

int tri__h1_detect(tri__conn *c, const uint8_t *buf, size_t n) {
  size_t k = TRI__MIN(n, sizeof(preface) - 1);
  if (memcmp(buf, preface, k) == 0)
    return 0; /* HTTP/2 (so far) */
  if (n >= 3 && buf[0] == 0x16 && buf[1] == 0x03)
    return 0; /* a TLS ClientHello on a clear-text port: HTTP/2 answers
                 with its SETTINGS before closing, which tells a TLS client
                 what happened (integ_tls) */
  struct tri__h1 *h = tri__calloc(1, sizeof(*h));
  if (h == NULL)
    return 0; /* nghttp2 refuses it: closed, as without HTTP/1.1 */
  http_parser_init(&h->p, HTTP_REQUEST);
  h->p.data = h;
  h->c = c;
  h->next_id = -1;
  h->idle_since = tri__now_ns();
  c->h1 = h;
  return 1;
}

/* Parse what is buffered, as far as the one-request-at-a-time rule lets. */
static int parse(tri__conn *c) {
  struct tri__h1 *h = c->h1;
  if (h->closing || h->inlen == 0)
    return 0;
  if (h->cur != NULL && h->msg_done)
    return 0; /* waiting for the response */
  if (HTTP_PARSER_ERRNO(&h->p) == HPE_PAUSED)
    http_parser_pause(&h->p, 0);
  size_t n = http_parser_execute(&h->p, &settings, (const char *)h->in,
                                 h->inlen);
  enum http_errno err = HTTP_PARSER_ERRNO(&h->p);
  if (err != HPE_OK && err != HPE_PAUSED) {
    /* Garbage as the very first bytes: a peer that speaks neither HTTP/2
     * nor HTTP/1.1 is closed without a word, as before HTTP/1.1 was
     * served (1.2; h2spec's invalid-preface case).  After a request, a
     * broken one gets 400 (RFC 9112 §3). */
    if (c->phase == TRI__CONN_HANDSHAKE) {
      h->closing = 1;
      h->inlen = 0;
      return -1;
    }
    if (h->cur != NULL && !h->head_done) {
      /* the stream of the broken request was never dispatched */
      tri__io_end(h->cur, TRI_INTERNAL, "bad HTTP/1.1 request", 1,
                  TRI__END_NONE);
      tri__conn_detach(c->loop, h->cur);
      h->cur = NULL;
    }
    if (h->cur == NULL && !h->closing) {
      char why[160];
      snprintf(why, sizeof(why), "bad HTTP/1.1 request: %s\n",
               http_errno_description(err));
      raw_answer(c, 400, why);
    } else if (h->cur != NULL && !h->msg_done &&
               !__atomic_load_n(&h->cur->final, __ATOMIC_ACQUIRE)) {
      h->kill = 1; /* a body that broke off: its handler gets CANCELLED */
    }
    h->closing = 1;
    h->inlen = 0;
    return 0;
  }
  if (n < h->inlen)
    memmove(h->in, h->in + n, h->inlen - n);
  h->inlen -= n;
  return 0;
}

int tri__h1_read(tri__conn *c, const uint8_t *buf, size_t n) {
  struct tri__h1 *h = c->h1;
  if (h->closing)
    return 0; /* discard; we close once the answer is out */
  if (h->inlen + n > H1_MAX_INBUF)
    return -1; /* pipelined far beyond the request being answered */
  if (h->inlen + n > h->incap) {
    size_t cap = h->incap ? h->incap : 4096;
    while (cap < h->inlen + n)
      cap *= 2;
    uint8_t *nb = tri__realloc(h->in, cap);
    if (nb == NULL)
      return -1;
    h->in = nb;
    h->incap = cap;
  }
  memcpy(h->in + h->inlen, buf, n);
  h->inlen += n;
  return parse(c);
}

void tri__h1_start(tri__conn *c, tri_stream *s, int status,
                   const nghttp2_nv *nv, size_t n) {
  struct tri__h1 *h = c->h1;
  char line[128];
  if (h == NULL || h->cur != s || h->resp_started)
    return;
  h->resp_started = 1;
  int64_t blen = tri__edge_body_len(s);
  if (blen < 0 && h->http10)
    h->close_after = 1; /* no chunked coding: the close ends the body */
  if (h->age_over ||
      (c->age_deadline_ns != 0 && tri__now_ns() >= c->age_deadline_ns))
    h->close_after = 1; /* max connection age: say so in this head */
  int len = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
                     tri__edge_reason(status));
  out(c, line, (size_t)len);
  for (size_t i = 0; i < n; i++) {
    if (nv[i].namelen > 0 && nv[i].name[0] == ':')
      continue;
    out(c, nv[i].name, nv[i].namelen);
    out(c, ": ", 2);
    out(c, nv[i].value, nv[i].valuelen);
    out(c, "\r\n", 2);
  }
  if (blen >= 0) {
    len = snprintf(line, sizeof(line), "content-length: %lld\r\n",
                   (long long)blen);
    out(c, line, (size_t)len);
  } else if (!h->http10) {
    h->resp_chunked = 1;
    out(c, "transfer-encoding: chunked\r\n", 28);
  }
  if (!h->keep_alive || h->close_after || c->loop->draining)
    out(c, "connection: close\r\n", 19);
  else if (h->http10)
    out(c, "connection: keep-alive\r\n", 24);
  out(c, "\r\n", 2);
}

/* The response of h->cur is written: end the stream, take the next. */
static void response_done(tri__conn *c) {
  struct tri__h1 *h = c->h1;
  tri_stream *s = h->cur;
  h->resp_done = 1;
  tri__mutex_lock(&s->mu);
  tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  tri__stream_ev_locked(s, TRI__EV_END, s->finish_code, s->finish_msg, 0,
                        TRI__END_NONE);
  tri__mutex_unlock(&s->mu);
  h->cur = NULL; /* a body still arriving is read and dropped */
  tri__conn_detach(c->loop, s);
  h->idle_since = tri__now_ns();
  if (h->close_after || !h->keep_alive || c->loop->draining)
    h->closing = 1;
  else
    h->resume = 1; /* the tick parses the next pipelined request */
}

int tri__h1_produce(tri__conn *c) {
  struct tri__h1 *h = c->h1;
  uint8_t buf[H1_OUT_CHUNK];
  for (int guard = 0; guard < 64 && !h->broken; guard++) {
    tri_stream *s = h->cur;
    if (s == NULL || !h->resp_started || h->resp_done ||
        c->wlen - c->woff >= TRI__WRITE_COALESCE)
      break;
    int eof = 0;
    ssize_t n = tri__edge_pull(s, buf, sizeof(buf), &eof);
    if (n < 0) {
      tri__h1_abort(c, s);
      break;
    }
    if (n > 0) {
      if (h->resp_chunked) {
        char sz[24];
        int k = snprintf(sz, sizeof(sz), "%zx\r\n", (size_t)n);
        out(c, sz, (size_t)k);
      }
      out(c, buf, (size_t)n);
      if (h->resp_chunked)
        out(c, "\r\n", 2);
    }
    if (eof && h->resp_chunked)
      out(c, "0\r\n\r\n", 5);
    if (h->broken)
      break; /* not done: the stream ends with the connection */
    if (eof) {
      response_done(c);
      break;
    }
    if (n == 0)
      break; /* the handler has not sent more yet */
  }
  return h->broken ? -1 : 0;
}

const char *tri__h1_broken(const tri__conn *c) {
  return c->h1 != NULL && c->h1->broken
             ? "out of memory buffering an HTTP/1.1 response"
             : NULL;
}

int tri__h1_cut(const tri__conn *c) {
  return c->h1 != NULL && c->h1->cut;
}

void tri__h1_abort(tri__conn *c, tri_stream *s) {
  struct tri__h1 *h = c->h1;
  if (h == NULL || h->cur != s)
    return;
  /* HTTP/1.1 has no way to reset one request: a response cut short is
   * ended by closing the connection (RFC 9112 §9.6). */
  h->close_after = 1;
  h->closing = h->kill = 1;
  if (!h->resp_started)
    raw_answer(c, 500, "call cancelled\n");
  else
    h->cut = 1; /* a body ended by the close would look complete */
}

void tri__h1_close_after(tri__conn *c) {
  if (c->h1 != NULL)
    c->h1->close_after = 1;
}

int tri__h1_finished(const tri__conn *c) {
  const struct tri__h1 *h = c->h1;
  return (h->kill || (h->closing && (h->cur == NULL || h->resp_done))) &&
         c->wlen == c->woff;
}

/* The idle timeout (tri_server_opts_set_idle_timeout_ms, else the keep-alive
 * default) in ns; INT64_MAX when unlimited. */
static int64_t h1_idle_ns(const tri__loop *l) {
  int64_t ms = l->cfg.idle_ms > 0 ? l->cfg.idle_ms : H1_KEEPALIVE_MS;
  return ms == INT64_MAX ? INT64_MAX : tri__ms_to_ns(ms);
}

/* The connection's timeouts: 1 when one closed it, else 0 with the next
 * deadline in *next. */
static int h1_timeouts(tri__conn *c, int64_t now, int64_t *next) {
  struct tri__h1 *h = c->h1;
  tri__loop *l = c->loop;

  if (c->age_deadline_ns != 0 && !h->age_over) {
    /* A9 max_connection_age.  HTTP/1.1 has no GOAWAY, and closing a
     * connection between requests could lose a request already on the
     * wire, so past the age the connection closes after the first
     * response whose head says "connection: close" (tri__h1_start
     * decides when it writes a head).  An idle one waits for its next
     * request or its idle timeout.  The grace bounds the request in
     * progress at the age, not one that came later. */
    if (now >= c->age_deadline_ns) {
      int64_t g = l->cfg.max_age_grace_ms;
      h->age_over = 1;
      h->age_id = h->cur != NULL ? h->cur->id : 0;
      if (h->age_id != 0 && g != INT64_MAX) {
        g = tri__ms_to_ns(g);
        c->grace_deadline_ns = tri__deadline_add(now, g);
      }
    } else {
      *next = tri__deadline_min(*next, c->age_deadline_ns);
    }
  }
  if (c->grace_deadline_ns != 0) {
    if (now < c->grace_deadline_ns) {
      *next = tri__deadline_min(*next, c->grace_deadline_ns);
    } else if (h->cur != NULL && h->cur->id == h->age_id) {
      tri__conn_close(c, "closed: max connection age grace over");
      return 1;
    } else {
      c->grace_deadline_ns = 0; /* that request ended in time */
    }
  }
  if (c->wlen != c->woff) {
    /* Output waits: a peer that reads none of it for the idle timeout
     * is closed, as an idle connection would be.  Otherwise a response
     * in progress, or the last one of a closing connection, could hold
     * the connection for ever.  Progress: the socket took bytes
     * (c->wsent; not what is left in wbuf, which a producer refills as
     * fast as a slow reader drains it), or its send queue shrank (the
     * peer reads what the kernel holds, megabytes on a fast link, long
     * before the socket wants more). */
    int outq = -1;
    if (ioctl(c->src.fd, SIOCOUTQ, &outq) != 0)
      outq = -1;
    if (h->stall_since == 0 || c->wsent != h->stall_sent ||
        (outq >= 0 && outq < h->stall_outq))
      h->stall_since = now;
    h->stall_sent = c->wsent;
    h->stall_outq = outq;
    int64_t dl = tri__deadline_add(h->stall_since, h1_idle_ns(l));
    if (now >= dl) {
      h->cut = 1; /* a reset: what was sent must not pass for whole */
      tri__conn_close(c, "closed: the peer read nothing for the idle "
                         "timeout");
      return 1;
    }
    *next = tri__deadline_min(*next, dl);
  } else {
    h->stall_since = 0;
  }
  if (c->phase == TRI__CONN_HANDSHAKE) {
    if (now >= c->phase_deadline) {
      tri__conn_close(c, "closed: no request within the handshake timeout");
      return 1;
    }
    *next = tri__deadline_min(*next, c->phase_deadline);
  } else if (h->cur != NULL && !h->head_done) {
    /* A request head must arrive within the handshake timeout too. */
    int64_t dl =
        tri__deadline_add(h->req_start, tri__ms_to_ns(l->cfg.handshake_ms));
    if (now >= dl) {
      tri__conn_close(c, "closed: request head not complete in time");
      return 1;
    }
    *next = tri__deadline_min(*next, dl);
  } else if (h->head_done && !h->msg_done && !h->closing) {
    /* A request body must keep coming (slowloris on the body): at most
     * the handshake timeout between two reads, counted from its head at
     * the earliest (a pipelined head is parsed, and its 100 Continue
     * sent, long after its bytes were read).  Reading never pauses
     * inside a body, so a gap is the client's. */
    int64_t hs = tri__ms_to_ns(l->cfg.handshake_ms);
    int64_t base = TRI__MAX(c->last_read_ns, h->body_since);
    int64_t dl = tri__deadline_add(base, hs);
    if (now >= dl) {
      tri__conn_close(c, "closed: request body stalled for the handshake "
                         "timeout");
      return 1;
    }
    *next = tri__deadline_min(*next, dl);
  } else if (h->cur == NULL && !h->closing) {
    int64_t dl = tri__deadline_add(h->idle_since, h1_idle_ns(l));
    if (l->draining && c->wlen != c->woff) {
      /* The last response is still going out: close once it is. */
      h->closing = 1;
    } else if (l->draining || now >= dl) {
      if (h->inlen == 0 || l->draining) {
        tri__conn_close(c, "closed: idle");
        return 1;
      }
    } else {
      *next = tri__deadline_min(*next, dl);
    }
  }
  return 0;
}

void tri__h1_tick(tri__conn *c, int64_t now, int64_t *next) {
  struct tri__h1 *h = c->h1;

  if (h1_timeouts(c, now, next))
    return;
  /* Writing a response may complete it and let the next pipelined
   * request in (resume): parse it and write again, a bounded number of
   * times per iteration; what is left wakes the loop at once. */
  for (int i = 0; i < 16; i++) {
    if (h->resume) {
      h->resume = 0;
      parse(c);
    }
    if (tri__sock_flush_or_close(c))
      return;
    if (!h->resume)
      break;
  }
  if (h->resume)
    *next = now;
  else
    /* The deadlines of what was parsed and of output the flush left
     * unwritten. */
    (void)h1_timeouts(c, now, next);
}

void tri__h1_free(tri__conn *c) {
  struct tri__h1 *h = c->h1;
  if (h == NULL)
    return;
  c->h1 = NULL;
  tri__free(h->url);
  tri__free(h->hn);
  tri__free(h->hv);
  tri__free(h->in);
  tri__free(h);
}

#else /* !HAVE_HTTP_PARSER */

int tri__h1_detect(tri__conn *c, const uint8_t *buf, size_t n) {
  (void)c;
  (void)buf;
  (void)n;
  return 0;
}
int tri__h1_read(tri__conn *c, const uint8_t *buf, size_t n) {
  (void)c;
  (void)buf;
  (void)n;
  return -1;
}
int tri__h1_produce(tri__conn *c) {
  (void)c;
  return 0;
}
const char *tri__h1_broken(const tri__conn *c) {
  (void)c;
  return NULL;
}
int tri__h1_cut(const tri__conn *c) {
  (void)c;
  return 0;
}
int tri__h1_finished(const tri__conn *c) {
  (void)c;
  return 1;
}
void tri__h1_tick(tri__conn *c, int64_t now, int64_t *next) {
  (void)now;
  (void)next;
  tri__sock_flush_or_close(c);
}
void tri__h1_start(tri__conn *c, tri_stream *s, int status,
                   const nghttp2_nv *nv, size_t n) {
  (void)c;
  (void)s;
  (void)status;
  (void)nv;
  (void)n;
}
void tri__h1_abort(tri__conn *c, tri_stream *s) {
  (void)c;
  (void)s;
}
void tri__h1_close_after(tri__conn *c) { (void)c; }
void tri__h1_free(tri__conn *c) { (void)c; }

#endif
