#include "tri_int.h"

/*
 * The Triple HTTP unary form, client side (doc/PROTOCOL.md "Triple unary
 * (client)"; Triple specification 3.1).  A unary call opened with
 * TRI_PROTOCOL_TRIPLE sends the bare message as the request body and reads
 * the response as a plain HTTP response: status 200 and the message as
 * the body, or an error status with a JSON error body.  This file holds the
 * parts that differ from gRPC: request headers, response headers, the body
 * and the final status.  gRPC streams never come here (s->triple is NULL).
 *
 * Threads: tri__triple_new/free on caller threads; the rest on the I/O
 * thread only (t is then I/O-private).
 */

#include <stdlib.h>

#include "budget.h"
#include "compress.h"
#include "status.h"
#include "triple_io.h"

struct tri__triple {
  int json;          /* codec: application/json, else application/proto */
  /* response, I/O thread */
  char *ctype;       /* content-type as received */
  int enc;           /* content-encoding: TRI__ENC_*, -1 unknown */
  char *enc_name;
  uint8_t *body;     /* bytes received so far */
  size_t len, cap;
  int failed;        /* the call already ended here (too big, no memory) */
  char tmo[24];      /* tri-service-timeout value (outlives the nv list) */
};

struct tri__triple *tri__triple_new(int json) {
  struct tri__triple *t = tri__calloc(1, sizeof(*t));

  if (t != NULL)
    t->json = json;
  return t;
}

/* The body buffer is counted as partial bytes (lib/budget.h), as a
 * deframer's partial message is; this gives it back. */
static void body_release(struct tri__triple *t) {
  if (t->cap > 0)
    tri__budget_add(TRI__B_PARTIAL, -(int64_t)t->cap);
  tri__free(t->body);
  t->body = NULL;
  t->len = t->cap = 0;
}

void tri__triple_free(struct tri__triple *t) {
  if (t == NULL)
    return;
  body_release(t);
  tri__free(t->ctype);
  tri__free(t->enc_name);
  tri__free(t);
}

/* ---- request ----------------------------------------------------------- */

void tri__triple_request_headers(tri__conn *c, tri_stream *s, tri__nv *b) {
  tri__loop *l = c->loop;
  struct tri__triple *t = s->triple;

  tri__nv_adds(b, ":method", "POST");
  tri__nv_adds(b, ":scheme", c->tls ? "https" : "http");
  tri__nv_adds(b, ":path", s->method);
  tri__nv_adds(b, ":authority", l->ccfg.target.authority);
  tri__nv_adds(b, "content-type",
               t->json ? "application/json" : "application/proto");
  tri__nv_adds(b, "tri-protocol-version", "1.0.0");
  if (s->deadline_ns != TRI__NO_DEADLINE) {
    /* Whole milliseconds left, rounded up (submit_request already failed
     * the call if none is left). */
    int64_t left = s->deadline_ns - tri__now_ns();
    int n;

    if (left < 1)
      left = 1;
    n = snprintf(t->tmo, sizeof t->tmo, "%lld",
                 (long long)((left + 999999) / 1000000));
    tri__nv_add(b, "tri-service-timeout", t->tmo, (size_t)n,
                NGHTTP2_NV_FLAG_NO_INDEX);
    /* dubbo-go's Triple server reads only this one (doc/PROTOCOL.md 14). */
    tri__nv_add(b, "triple-timeout-ms", t->tmo, (size_t)n,
                NGHTTP2_NV_FLAG_NO_INDEX);
  }
  tri__nv_adds(b, "user-agent", "triplestream/" PACKAGE_VERSION);
  if (s->enc_out != TRI__ENC_IDENTITY)
    tri__nv_adds(b, "content-encoding", tri__enc_name(s->enc_out));
  tri__nv_adds(b, "accept-encoding", tri__enc_accept_list());
  if (s->group)
    tri__nv_adds(b, "tri-service-group", s->group);
  if (s->version)
    tri__nv_adds(b, "tri-service-version", s->version);
  tri__nv_add_md(b, &s->req_md);
}

/* ---- response ---------------------------------------------------------- */

static int name_is(const uint8_t *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && memcmp(name, lit, n) == 0;
}

void tri__triple_header(tri_stream *s, const nghttp2_frame *f,
                        const uint8_t *name, size_t nlen, const uint8_t *val,
                        size_t vlen) {
  struct tri__triple *t = s->triple;
  /* The first block is the response headers even when it ends the
   * stream (a plain HTTP answer without a body). */
  int trailers = s->hdr_block > 0;
  (void)f;

  if (!trailers && name_is(name, nlen, "content-type")) {
    tri__free(t->ctype);
    t->ctype = tri__strndup((const char *)val, vlen);
    return;
  }
  if (!trailers && name_is(name, nlen, "content-encoding")) {
    int enc = tri__enc_from_name((const char *)val, vlen);

    t->enc = enc == TRI__ENC_UNKNOWN ? -1 : enc;
    tri__free(t->enc_name);
    t->enc_name = tri__strndup((const char *)val, vlen);
    return;
  }
  if (name_is(name, nlen, "content-length") ||
      name_is(name, nlen, "accept-encoding") ||
      name_is(name, nlen, "tri-protocol-version") ||
      tri__md_is_reserved((const char *)name, nlen))
    return;
  /* Triple 3.1: trailing metadata travels as "trailer-" headers. */
  if (nlen > 8 && memcmp(name, "trailer-", 8) == 0) {
    tri__md_add_wire(&s->io_trl, (const char *)name + 8, nlen - 8, val, vlen);
    return;
  }
  tri__md_add_wire(trailers ? &s->io_trl : &s->io_hdrs, (const char *)name,
                   nlen, val, vlen);
}

/* The call's end from here (body too large, out of memory): no more body
 * is wanted, the stream is reset. */
static void triple_fail(tri__conn *c, tri_stream *s, int code,
                        const char *msg) {
  s->triple->failed = 1;
  body_release(s->triple);
  tri__client_publish_headers(s);
  tri__io_end(s, code, msg, 1, TRI__END_RESET);
  nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                            NGHTTP2_CANCEL);
}

int tri__triple_data(tri__conn *c, tri_stream *s, const uint8_t *data,
                     size_t len) {
  struct tri__triple *t = s->triple;

  /* The body is bounded by max_recv (below), so its window goes back at
   * once: nothing is withheld for a unary response. */
  nghttp2_session_consume(c->sess, s->id, len);
  if (t->failed)
    return 0;
  if (len > s->max_recv || t->len > s->max_recv - len) {
    char buf[200];

    snprintf(buf, sizeof buf,
             "response body of more than %zu bytes exceeds %s %zu (%s)",
             s->max_recv, s->max_recv_hint, s->max_recv, s->max_recv_setter);
    triple_fail(c, s, TRI_RESOURCE_EXHAUSTED, buf);
    return 0;
  }
  if (t->len + len > t->cap) {
    size_t cap = t->cap ? t->cap : 1024;
    uint8_t *nb;

    while (cap < t->len + len)
      cap *= 2;
    nb = tri__realloc(t->body, cap);
    if (nb == NULL) {
      triple_fail(c, s, TRI_RESOURCE_EXHAUSTED,
                  "out of memory receiving the response");
      return 0;
    }
    tri__budget_add(TRI__B_PARTIAL, (int64_t)cap - (int64_t)t->cap);
    t->body = nb;
    t->cap = cap;
  }
  memcpy(t->body + t->len, data, len);
  t->len += len;
  return 0;
}

/* 1 if content-type |ct| is |want|, possibly with parameters. */
static int ctype_is(const char *ct, const char *want) {
  size_t n = strlen(want);

  return ct != NULL && strncmp(ct, want, n) == 0 &&
         (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Queue the response message for the caller's tri_stream_recv(). */
static void queue_response(tri_stream *s, tri_buf *m) {
  int wake;

  tri__mutex_lock(&s->mu);
  if (s->drop) {
    tri__mutex_unlock(&s->mu);
    tri__free(m);
    return;
  }
  tri__list_insert_tail(&s->rq, &m->link);
  s->rq_bytes += m->len;
  tri__budget_add(TRI__B_RQ, (int64_t)m->len);
  wake = s->rcv_waiters > 0;
  tri__mutex_unlock(&s->mu);
  if (wake)
    tri__stream_rcv_broadcast(s);
}

/* Triple spec 3.1.3: an HTTP status without a usable code in the body is
 * mapped as Connect maps it (not with gRPC's table of 5.1). */
static int triple_status_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return TRI_INVALID_ARGUMENT;
  case 401:
    return TRI_UNAUTHENTICATED;
  case 403:
    return TRI_PERMISSION_DENIED;
  case 404:
    return TRI_UNIMPLEMENTED;
  case 408:
    return TRI_DEADLINE_EXCEEDED;
  case 409:
    return TRI_ABORTED;
  case 412:
    return TRI_FAILED_PRECONDITION;
  case 413:
  case 431:
    return TRI_RESOURCE_EXHAUSTED;
  case 415:
    return TRI_INTERNAL;
  case 429:
  case 502:
  case 503:
  case 504:
    return TRI_UNAVAILABLE;
  default:
    return TRI_UNKNOWN;
  }
}

/* The final status of a non-200 response. */
static void error_status(tri_stream *s, int *code, char **msg) {
  struct tri__triple *t = s->triple;
  char buf[300];
  int jcode, found = 0;
  char *jmsg = NULL;
  tri_buf *plain = NULL;

  /* Spec 3.1.2: with content-encoding the error body is compressed too. */
  if (t->len > 0 && t->enc > TRI__ENC_IDENTITY &&
      tri__decompress(t->enc, t->body, t->len, s->max_recv, &plain) !=
          TRI_OK)
    plain = NULL;
  if (plain != NULL)
    found = tri__json_error_body((const char *)plain->data, plain->len,
                                 &jcode, &jmsg);
  else if (t->len > 0 && t->enc <= TRI__ENC_IDENTITY)
    found = tri__json_error_body((const char *)t->body, t->len, &jcode,
                                 &jmsg);
  tri_buf_free(plain);
  if (found) {
    /* 0, or a number that is no gRPC code (a Dubbo status such as 31,
     * spec 3.1.2): the HTTP status says which error it is. */
    if (jcode == TRI_OK || jcode < 0 || jcode > 16)
      jcode = triple_status_from_http(s->http_status);
    *code = jcode;
    if (jmsg != NULL) {
      *msg = jmsg;
    } else {
      snprintf(buf, sizeof buf, "HTTP status %d", s->http_status);
      *msg = tri__strdup(buf);
    }
    return;
  }
  tri__free(jmsg);
  *code = triple_status_from_http(s->http_status);
  if (t->len > 0)
    snprintf(buf, sizeof buf,
             "HTTP status %d without a Triple error body (%zu bytes of %s)",
             s->http_status, t->len, t->ctype ? t->ctype : "no content-type");
  else
    snprintf(buf, sizeof buf, "HTTP status %d without a Triple error body",
             s->http_status);
  *msg = tri__strdup(buf);
}

/* The response is complete: its final status, and the message at 200. */
static void triple_complete(tri__conn *c, tri_stream *s) {
  struct tri__triple *t = s->triple;
  int code = TRI_OK;
  char *msg = NULL, buf[300];

  tri__client_publish_headers(s);
  if (t->failed)
    return;
  if (s->http_status == 200) {
    const char *want = t->json ? "application/json" : "application/proto";
    tri_buf *m = NULL;

    if (t->ctype != NULL && !ctype_is(t->ctype, want)) {
      code = TRI_INTERNAL;
      snprintf(buf, sizeof buf, "response content-type '%s' is not %s",
               t->ctype, want);
      msg = tri__strdup(buf);
    } else if (t->enc < 0) {
      code = TRI_INTERNAL;
      snprintf(buf, sizeof buf,
               "response content-encoding '%s' is not supported; "
               "supported: %s",
               t->enc_name ? t->enc_name : "?", tri__enc_accept_list());
      msg = tri__strdup(buf);
    } else if (t->enc != TRI__ENC_IDENTITY) {
      int rv = tri__decompress(t->enc, t->body, t->len, s->max_recv, &m);

      if (rv == TRI_OK)
        m->flags |= TRI_BUF_COMPRESSED; /* as a gRPC compressed message */

      if (rv != TRI_OK) {
        code = rv == TRI_RESOURCE_EXHAUSTED ? rv : TRI_INTERNAL;
        if (rv == TRI_RESOURCE_EXHAUSTED)
          snprintf(buf, sizeof buf,
                   "decompressed response exceeds %s %zu (%s)",
                   s->max_recv_hint, s->max_recv, s->max_recv_setter);
        else
          snprintf(buf, sizeof buf, "cannot decompress the response (%s)",
                   tri__enc_name(t->enc));
        msg = tri__strdup(buf);
      }
    } else {
      m = tri__buf_new(t->len);
      if (m == NULL) {
        code = TRI_RESOURCE_EXHAUSTED;
        msg = tri__strdup("out of memory receiving the response");
      } else if (t->len > 0) {
        memcpy(m->data, t->body, t->len);
      }
    }
    if (m != NULL)
      queue_response(s, m);
  } else {
    error_status(s, &code, &msg);
  }
  body_release(t);
  tri__mutex_lock(&s->mu);
  if (!s->final) {
    tri_metadata tmp = s->trl; /* empty */
    s->trl = s->io_trl;
    s->io_trl = tmp;
  }
  tri__stream_ev_locked(s, TRI__EV_END, code,
                        msg ? msg : (code == TRI_OK ? "" : "out of memory"),
                        0, TRI__END_NONE);
  tri__mutex_unlock(&s->mu);
  tri__free(msg);
  tri__client_end(c, s);
}

void tri__triple_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f) {
  int end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

  if (f->hd.type == NGHTTP2_HEADERS) {
    if (s->skip_block) {
      s->skip_block = 0;
      s->http_status = 0; /* 5.1: skip 1xx, wait for the next block */
      return;
    }
    s->hdr_block++;
    if (s->hdr_block == 1 && !end)
      tri__client_publish_headers(s);
  } else if (f->hd.type != NGHTTP2_DATA) {
    return;
  }
  if (end)
    triple_complete(c, s);
}
