/*
 * The server's protocol edges (edge.h, doc/PROTOCOL.md 16): Triple's HTTP
 * unary protocol (Triple spec §3.1), gRPC with JSON messages
 * (application/grpc+json) and gRPC-Web (PROTOCOL-WEB: binary and base64
 * "-text", proto and JSON), on the same port and in front of the same
 * handlers as gRPC.  Handlers always see protobuf bytes: requests are
 * translated before they are queued, responses as they leave the send
 * ring (copied, not zero-copy: these are not the fast path).
 *
 * Threads: the connection's I/O thread only; it takes stream.mu for the
 * ring and the state machine, as sockio.c does.
 */
#include "tri_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

#include "compress.h"
#include "conn.h"
#include "edge.h"
#include "json.h"
#include "nv.h"
#include "status.h"

#ifdef HAVE_JANSSON
#include <jansson.h>
#endif


/* Headers a browser may read on a gRPC-Web or Triple response (CORS). */
#define EXPOSE_HEADERS                                                     \
  "grpc-status,grpc-message,grpc-status-details-bin,grpc-encoding,"        \
  "grpc-accept-encoding,tri-service-version,tri-service-group,"            \
  "tri-exception-code,content-encoding"
/* Request headers a preflight allows when the browser asks for none. */
#define ALLOW_HEADERS                                                      \
  "content-type,x-grpc-web,x-user-agent,grpc-timeout,grpc-encoding,"      \
  "grpc-accept-encoding,tri-service-timeout,tri-service-group,"           \
  "tri-service-version,tri-protocol-version,connect-protocol-version"

struct tri__edge {
  int kind;                  /* enum tri__edge_kind */
  int json;                  /* messages are JSON */
  int text;                  /* gRPC-Web base64 ("-text") */
  int h1;                    /* HTTP/1.1 connection */
  char ctype[80];            /* response content-type */
  const ProtobufCMessageDescriptor *req_desc, *resp_desc;
  int http_status;           /* forced HTTP status, 0 = from the code */
  int no_body;               /* answer without a body (415 unknown type) */
  char *origin;              /* allowed CORS origin to echo, or NULL */
  char *acrh;                /* preflight: Access-Control-Request-Headers */
  int preflight;
  int req_enc;               /* content-encoding of the request body */
  int resp_flags;            /* unary: frame flags of the response */
  /* Triple unary request body */
  uint8_t *body;
  size_t blen, bcap;
  int too_big;
  /* gRPC-Web text request: base64 characters of an incomplete group */
  char b64[4];
  size_t nb64;
  /* response */
  int started;               /* head submitted / written */
  int nmsg;                  /* unary: response messages taken */
  uint8_t *resp;             /* unary: the response message (protobuf) */
  size_t resp_len;
  uint8_t *out;              /* bytes ready to go out */
  size_t olen, ooff, ocap;
  uint8_t tc[2];             /* text: bytes waiting for a full group */
  size_t ntc;
  int tail;                  /* the end is in |out| */
};

void tri__edge_free(struct tri__edge *e) {
  if (e == NULL)
    return;
  tri__free(e->origin);
  tri__free(e->acrh);
  tri__free(e->body);
  tri__free(e->resp);
  tri__free(e->out);
  tri__free(e);
}

/* ---- small helpers ----------------------------------------------------- */

static const char *code_str(int code) {
  /* The lower-case names of Connect and dubbo-go's triple wire errors. */
  static const char *const names[] = {
      "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded",
      "not_found", "already_exists", "permission_denied",
      "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
      "unimplemented", "internal", "unavailable", "data_loss",
      "unauthenticated"};
  return code >= 0 && code <= 16 ? names[code] : "unknown";
}

/* HTTP status of a Triple unary error (Triple spec §3.1, the table
 * dubbo-go's triple protocol uses, which is Connect's). */
static int http_of_code(int code) {
  static const int map[] = {200, 408, 500, 400, 408, 404, 409, 403,
                            429, 412, 409, 400, 404, 500, 503, 500, 401};
  return code >= 0 && code <= 16 ? map[code] : 500;
}

static const char *reason(int st) {
  switch (st) {
  case 200: return "OK";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 431: return "Request Header Fields Too Large";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  default: return "Status";
  }
}
const char *tri__edge_reason(int st) { return reason(st); }

static int out_reserve(struct tri__edge *e, size_t more) {
  if (e->olen + more <= e->ocap)
    return 0;
  size_t cap = e->ocap ? e->ocap : 1024;
  while (cap < e->olen + more)
    cap *= 2;
  uint8_t *nb = tri__realloc(e->out, cap);
  if (nb == NULL)
    return -1;
  e->out = nb;
  e->ocap = cap;
  return 0;
}

static int out_put(struct tri__edge *e, const void *p, size_t n) {
  if (n == 0)
    return 0;
  if (out_reserve(e, n) != 0)
    return -1;
  memcpy(e->out + e->olen, p, n);
  e->olen += n;
  return 0;
}

/* Padded base64 of |n| bytes appended to out (n % 3 == 0 except last). */
static int out_b64(struct tri__edge *e, const uint8_t *p, size_t n) {
  size_t enc = (n + 2) / 3 * 4;
  if (out_reserve(e, enc) != 0)
    return -1;
  size_t w = tri__b64_encode(p, n, (char *)e->out + e->olen);
  while (w < enc)
    e->out[e->olen + w++] = '=';
  e->olen += enc;
  return 0;
}

/* Response bytes for the wire: base64 in whole groups for -text (the
 * last 1-2 bytes wait for more, or for |flush|), else as they are. */
static int emit(struct tri__edge *e, const uint8_t *p, size_t n, int flush) {
  if (!e->text)
    return out_put(e, p, n);
  while (n > 0 && e->ntc > 0 && e->ntc < 3) {
    /* complete the pending group */
    uint8_t g[3];
    memcpy(g, e->tc, e->ntc);
    size_t k = TRI__MIN(3 - e->ntc, n);
    memcpy(g + e->ntc, p, k);
    p += k;
    n -= k;
    if (e->ntc + k < 3) {
      memcpy(e->tc, g, e->ntc + k);
      e->ntc += k;
      break;
    }
    e->ntc = 0;
    if (out_b64(e, g, 3) != 0)
      return -1;
  }
  size_t whole = n / 3 * 3;
  if (whole > 0 && out_b64(e, p, whole) != 0)
    return -1;
  if (n > whole) {
    memcpy(e->tc + e->ntc, p + whole, n - whole);
    e->ntc += n - whole;
  }
  if (flush && e->ntc > 0) {
    if (out_b64(e, e->tc, e->ntc) != 0)
      return -1;
    e->ntc = 0;
  }
  return 0;
}

#ifndef HAVE_JANSSON
/* Without jansson: a JSON string body with the characters RFC 8259 §7
 * requires escaped; a byte outside ASCII becomes U+FFFD, so the body is
 * valid JSON whatever the message holds. */
static void json_str(char *dst, size_t cap, const char *s) {
  size_t o = 0;
  for (; s && *s && o + 8 < cap; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      dst[o++] = '\\';
      dst[o++] = (char)ch;
    } else if (ch < 0x20 || ch >= 0x80) {
      o += (size_t)snprintf(dst + o, cap - o, "\\u%04x",
                            ch < 0x20 ? ch : 0xfffdu);
    } else {
      dst[o++] = (char)ch;
    }
  }
  dst[o] = '\0';
}
#endif

/* The base media type: lower case, without parameters or spaces. */
/* ASCII only: tolower() would ask the locale for every character. */
static char lower_ascii(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void media_type(const char *ct, char *out, size_t cap) {
  size_t o = 0;
  for (; ct && *ct && *ct != ';' && o + 1 < cap; ct++)
    if (*ct != ' ' && *ct != '\t')
      out[o++] = lower_ascii(*ct);
  out[o] = '\0';
}

/* An Accept-Encoding list (RFC 9110 §12.5.3) as "a,b": lower case,
 * parameters (q-values) dropped. */
static void enc_list(const char *in, char *out, size_t cap) {
  size_t o = 0;
  int skip = 0;
  for (; in && *in && o + 2 < cap; in++) {
    if (*in == ',') {
      skip = 0;
      if (o > 0 && out[o - 1] != ',')
        out[o++] = ',';
    } else if (*in == ';') {
      skip = 1;
    } else if (!skip && *in != ' ' && *in != '\t') {
      out[o++] = lower_ascii(*in);
    }
  }
  out[o] = '\0';
}

static const char *md_str(const tri_stream *s, const char *key) {
  size_t n;
  const void *v = tri_metadata_find(&s->hdrs, key, &n);
  return v;
}

/* Is |origin| allowed by the server's list ("*" or comma-separated)? */
static int origin_allowed(const char *list, const char *origin) {
  size_t ol = strlen(origin);
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == ',')
      p++;
    const char *q = p;
    while (*q && *q != ',')
      q++;
    const char *r = q;
    while (r > p && r[-1] == ' ')
      r--;
    if ((r - p == 1 && *p == '*') ||
        ((size_t)(r - p) == ol && strncasecmp(p, origin, ol) == 0))
      return 1;
    p = q;
  }
  return 0;
}

static struct tri__edge *edge_new(tri__conn *c, tri_stream *s) {
  struct tri__edge *e = tri__calloc(1, sizeof(*e));
  if (e == NULL)
    return NULL;
  e->h1 = c->h1 != NULL;
  const char *origin = md_str(s, "origin");
  if (origin != NULL && c->loop->cfg.cors[0] != '\0' &&
      origin_allowed(c->loop->cfg.cors, origin))
    e->origin = tri__strdup(origin);
  s->edge = e;
  return e;
}

/* ---- starting a response ------------------------------------------------ */

static void add_cors(tri__nv *b, const struct tri__edge *e) {
  if (e->origin == NULL)
    return;
  tri__nv_adds(b, "access-control-allow-origin", e->origin);
  tri__nv_adds(b, "vary", "origin");
  if (!e->preflight)
    tri__nv_adds(b, "access-control-expose-headers", EXPOSE_HEADERS);
}

/* Submit (HTTP/2) or write (HTTP/1.1) the head; the body comes from
 * tri__edge_pull / tri__edge_read_cb. */
static void start(tri__conn *c, tri_stream *s, int status, tri__nv *b,
                  int body) {
  struct tri__edge *e = s->edge;
  e->started = 1;
  if (b->failed) {
    if (c->h1 == NULL)
      nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, s->id,
                                NGHTTP2_INTERNAL_ERROR);
    else
      tri__h1_start(c, s, 500, NULL, 0);
    return;
  }
  if (c->h1 != NULL) {
    tri__h1_start(c, s, status, b->nv, b->n);
    return;
  }
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = tri__edge_read_cb;
  nghttp2_submit_response(c->sess, s->id, b->nv, b->n, body ? &prd : NULL);
}

static void add_status_line(tri__nv *b, int status) {
  char num[8];
  snprintf(num, sizeof(num), "%d", status);
  char *d = tri__strdup(num);
  if (d == NULL || tri__nv_own(b, d) != 0) {
    b->failed = 1;
    return;
  }
  tri__nv_adds(b, ":status", d);
}

/* Trailing metadata of a unary response as "trailer-" headers (Triple
 * §3.1 carries no HTTP trailers). */
static void add_trailer_md(tri__nv *b, const tri_metadata *md) {
  for (size_t i = 0; i < md->n; i++) {
    const char *k;
    const void *v;
    size_t vl;
    if (tri_metadata_get(md, i, &k, &v, &vl) != TRI_OK)
      continue;
    int bin = tri__md_key_is_bin(k, strlen(k));
    size_t vcap = bin ? tri__b64_encoded_len(vl) + 1 : vl + 1;
    char *name = tri__malloc(strlen(k) + 9);
    char *val = tri__malloc(vcap);
    if (name == NULL || val == NULL || tri__nv_own(b, name) != 0 ||
        tri__nv_own(b, val) != 0) {
      b->failed = 1;
      return;
    }
    snprintf(name, strlen(k) + 9, "trailer-%s", k);
    size_t n;
    if (bin) {
      n = tri__b64_encode(v, vl, val);
    } else {
      memcpy(val, v, vl);
      n = vl;
    }
    tri__nv_add(b, name, val, n, NGHTTP2_NV_FLAG_NONE);
  }
}

/* Take complete messages out of the send ring (s->mu held): the frame
 * header and payload of the first one into *|out| (caller frees).
 * Returns 1 with a message, 0 with none. */
static int ring_take_locked(tri_stream *s, uint8_t **out, size_t *len,
                            int *flags) {
  uint8_t h[TRI__FRAME_HDR_LEN];
  if (s->sb == NULL || s->sb_len < TRI__FRAME_HDR_LEN)
    return 0;
  for (size_t i = 0; i < TRI__FRAME_HDR_LEN; i++)
    h[i] = s->sb[(s->sb_head + i) % s->sb_cap];
  size_t n = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) |
             ((size_t)h[3] << 8) | h[4];
  if (s->sb_len < TRI__FRAME_HDR_LEN + n)
    return 0; /* cannot happen: messages enter the ring whole */
  uint8_t *p = tri__malloc(n + 1);
  if (p == NULL)
    return -1;
  for (size_t i = 0; i < n; i++)
    p[i] = s->sb[(s->sb_head + TRI__FRAME_HDR_LEN + i) % s->sb_cap];
  tri__stream_ring_consumed_locked(s, TRI__FRAME_HDR_LEN + n);
  *out = p;
  *len = n;
  *flags = h[0];
  return 1;
}

/* ---- Triple unary --------------------------------------------------- */

/* Pull response messages out of the ring as the handler sends them: the
 * first is the answer, a second one ends the call (a streaming method
 * called in the unary form).  Returns 0, or -1 with the code and message set. */
static int unary_take_locked(tri_stream *s, int *code, const char **msg) {
  struct tri__edge *e = s->edge;
  uint8_t *p;
  size_t n;
  int fl, r;
  while ((r = ring_take_locked(s, &p, &n, &fl)) == 1) {
    if (e->nmsg++ == 0) {
      e->resp = p;
      e->resp_len = n;
      e->resp_flags = fl; /* compressed with s->enc_out: 16.3 */
    } else {
      tri__free(p);
      *code = TRI_UNIMPLEMENTED;
      *msg = "the method sent more than one response message: it streams, "
             "and Triple's unary form (HTTP/1.1, application/proto or json) "
             "carries one; call it with gRPC or gRPC-Web";
      return -1;
    }
  }
  if (r < 0) {
    *code = TRI_RESOURCE_EXHAUSTED;
    *msg = "out of memory";
    return -1;
  }
  s->io_deferred = 1; /* the next send posts OP_DATA: keep taking */
  return 0;
}

/* Build the JSON error body for |code| into e->out:
 * {"code":"not_found","message":"...","status":5}. */
static void error_body(struct tri__edge *e, int code, const char *msg) {
  e->olen = e->ooff = 0;
#ifdef HAVE_JANSSON
  /* jansson escapes and prints; it takes UTF-8 only (RFC 8259 §8.1), so
   * a byte it rejects (jansson checks each candidate sequence) becomes
   * U+FFFD. */
  const char *m = msg ? msg : "";
  size_t len = strlen(m);
  json_t *js = json_stringn(m, len);
  if (js == NULL) {
    char *u = tri__malloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; u != NULL && i < len;) {
      size_t k = 1;
      unsigned char ch = (unsigned char)m[i];
      if (ch >= 0xc0)
        k = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
      json_t *t = k <= len - i ? json_stringn(m + i, k) : NULL;
      if (t != NULL) {
        json_decref(t);
        memcpy(u + o, m + i, k);
        o += k;
        i += k;
      } else {
        memcpy(u + o, "\xef\xbf\xbd", 3);
        o += 3;
        i++;
      }
    }
    js = u != NULL ? json_stringn(u, o) : NULL;
    tri__free(u);
  }
  json_t *o = js != NULL ? json_pack("{s:s,s:o,s:i}", "code", code_str(code),
                                     "message", js, "status", code)
                         : NULL;
  char *d = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)
                      : NULL;
  json_decref(o);
  if (d != NULL) {
    out_put(e, d, strlen(d));
    free(d);
    return;
  }
  /* out of memory: the body without its message */
  char buf[96];
  int n = snprintf(buf, sizeof(buf),
                   "{\"code\":\"%s\",\"message\":\"\",\"status\":%d}",
                   code_str(code), code);
  out_put(e, buf, (size_t)n);
#else
  char esc[1024], buf[1200];
  json_str(esc, sizeof(esc), msg ? msg : "");
  int n = snprintf(buf, sizeof(buf),
                   "{\"code\":\"%s\",\"message\":\"%s\",\"status\":%d}",
                   code_str(code), esc, code);
  out_put(e, buf, (size_t)n);
#endif
}

/* The call is over (finish, error, deadline): answer in one go. */
static void unary_render(tri__conn *c, tri_stream *s) {
  struct tri__edge *e = s->edge;
  int code;
  char *msg;
  const char *terr = NULL;
  int tcode = TRI_OK;
  tri__nv b;

  tri__nv_init(&b);
  tri__mutex_lock(&s->mu);
  if (unary_take_locked(s, &tcode, &terr) != 0 && s->finish_code == TRI_OK) {
    s->finish_code = tcode;
    tri__free(s->finish_msg);
    s->finish_msg = tri__strdup(terr);
  }
  code = s->finish_code;
  msg = tri__strdup(s->finish_msg ? s->finish_msg : "");
  tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
  tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);

  int status = e->http_status;
  const char *ctype = "application/json";
  if (e->preflight || e->no_body) {
    e->olen = 0;
  } else if (code == TRI_OK && status == 0) {
    uint8_t *body = e->resp;
    size_t blen = e->resp_len;
    char *js = NULL;
    tri_buf *plain = NULL;
    int enc = TRI__ENC_IDENTITY;
    if (e->resp_flags & TRI__FRAME_FLAG_COMPRESSED) {
      /* The handler compressed (tri_stream_set_compression, allowed by
       * the request's accept-encoding): the message is the whole body,
       * so it goes out as it is with content-encoding (RFC 9110 §8.4);
       * JSON is translated from the plain bytes and compressed again. */
      tri__mutex_lock(&s->mu);
      enc = s->enc_out;
      tri__mutex_unlock(&s->mu);
      if (e->json) {
        if (tri__decompress(enc, body, blen, SIZE_MAX / 2, &plain) !=
            TRI_OK) {
          code = TRI_INTERNAL;
          tri__free(msg);
          msg = tri__strdup("cannot decompress the response message");
        } else {
          body = plain->data;
          blen = plain->len;
        }
      }
    }
    if (e->json && code == TRI_OK) {
      char err[256] = "";
      size_t jl = 0;
      int rv = tri__pb_to_json(e->resp_desc,
                               body ? body : (const uint8_t *)"", blen, &js,
                               &jl, err, sizeof(err));
      if (rv != TRI_OK) {
        code = TRI_INTERNAL;
        tri__free(msg);
        msg = tri__strdup(err[0] ? err : "cannot encode the response as JSON");
      } else {
        body = (uint8_t *)js;
        blen = jl;
      }
    }
    if (code == TRI_OK) {
      ctype = e->ctype;
      uint8_t *z = NULL;
      size_t zl = 0;
      if (enc != TRI__ENC_IDENTITY && !e->json) {
        out_put(e, body, blen); /* compressed already */
        tri__nv_adds(&b, "content-encoding", tri__enc_name(enc));
      } else if (enc != TRI__ENC_IDENTITY &&
                 tri__compress(enc, body, blen, &z, &zl) == TRI_OK) {
        out_put(e, z, zl);
        tri__nv_adds(&b, "content-encoding", tri__enc_name(enc));
        tri__free(z);
      } else {
        out_put(e, body, blen);
      }
      status = 200;
    }
    tri__free(js);
    tri__free(plain);
  }
  if (status == 0 || (code != TRI_OK && !e->preflight && !e->no_body)) {
    if (status == 0)
      status = http_of_code(code);
    error_body(e, code, msg);
    ctype = "application/json";
  }
  tri__free(msg);
  /* :status first (HTTP/2 pseudo-header), then the rest. */
  tri__nv h;
  tri__nv_init(&h);
  add_status_line(&h, status);
  if (e->olen > 0 || !e->preflight) {
    if (!e->no_body || e->olen > 0)
      tri__nv_adds(&h, "content-type", ctype);
  }
  for (size_t i = 0; i < b.n; i++)
    tri__nv_add(&h, (const char *)b.nv[i].name, (const char *)b.nv[i].value,
                b.nv[i].valuelen, NGHTTP2_NV_FLAG_NONE);
  if (e->preflight) {
    tri__nv_adds(&h, "access-control-allow-methods", "POST, OPTIONS");
    tri__nv_adds(&h, "access-control-allow-headers",
                 e->acrh ? e->acrh : ALLOW_HEADERS);
    tri__nv_adds(&h, "access-control-max-age", "86400");
  } else if (!e->no_body) {
    tri__nv_add_md(&h, &s->out_hdrs);
    add_trailer_md(&h, &s->out_trl);
  }
  if (status == 405)
    tri__nv_adds(&h, "allow", "POST, OPTIONS");
  if (status == 415)
    tri__nv_adds(&h, "accept-post",
                 "application/proto, application/json, application/grpc, "
                 "application/grpc+json, application/grpc-web, "
                 "application/grpc-web-text");
  add_cors(&h, e);
  if (b.failed)
    h.failed = 1;
  e->tail = 1;
  start(c, s, status, &h, e->olen > 0);
  tri__nv_free(&h);
  tri__nv_free(&b);
}

/* ---- gRPC-Web --------------------------------------------------------- */

static void web_headers(tri__conn *c, tri_stream *s) {
  struct tri__edge *e = s->edge;
  tri__nv b;
  tri__nv_init(&b);
  tri__nv_adds(&b, ":status", "200");
  tri__nv_adds(&b, "content-type", e->ctype);
  tri__mutex_lock(&s->mu);
  if (s->enc_out != TRI__ENC_IDENTITY)
    tri__nv_adds(&b, "grpc-encoding", tri__enc_name(s->enc_out));
  tri__nv_adds(&b, "grpc-accept-encoding", tri__enc_accept_list());
  tri__nv_add_md(&b, &s->out_hdrs);
  tri__stream_ev_locked(s, TRI__EV_HDRS_DONE, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  add_cors(&b, e);
  start(c, s, 200, &b, 1);
  tri__nv_free(&b);
}

/* The trailer frame (PROTOCOL-WEB "Protocol differences vs gRPC over
 * HTTP/2"): flag 0x80, then "name:value\r\n" lines (s->mu held). */
static int web_trailers_locked(tri_stream *s, struct tri__edge *e) {
  tri__nv b;
  size_t len = 0;
  tri__nv_init(&b);
  tri__nv_add_status(&b, s->finish_code, s->finish_msg);
  tri__nv_add_md(&b, &s->out_trl);
  if (b.failed) {
    tri__nv_free(&b);
    return -1;
  }
  for (size_t i = 0; i < b.n; i++)
    len += b.nv[i].namelen + 1 + b.nv[i].valuelen + 2;
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  tri__frame_put_header(hdr, 0, (uint32_t)len);
  hdr[0] = 0x80;
  int rv = emit(e, hdr, sizeof(hdr), 0);
  for (size_t i = 0; i < b.n && rv == 0; i++) {
    rv |= emit(e, b.nv[i].name, b.nv[i].namelen, 0);
    rv |= emit(e, (const uint8_t *)":", 1, 0);
    rv |= emit(e, b.nv[i].value, b.nv[i].valuelen, 0);
    rv |= emit(e, (const uint8_t *)"\r\n", 2, 0);
  }
  if (rv == 0)
    rv = emit(e, NULL, 0, 1);
  tri__nv_free(&b);
  return rv;
}

/* One response message out of the ring, translated for the wire. */
static int put_msg(struct tri__edge *e, const uint8_t *p, size_t n,
                   int flags) {
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  char *js = NULL;
  size_t jl = 0;
  if (e->json && !(flags & TRI__FRAME_FLAG_COMPRESSED)) {
    char err[200];
    if (tri__pb_to_json(e->resp_desc, p, n, &js, &jl, err, sizeof(err)) !=
        TRI_OK)
      return -1;
    p = (const uint8_t *)js;
    n = jl;
  }
  tri__frame_put_header(hdr, flags & TRI__FRAME_FLAG_COMPRESSED, (uint32_t)n);
  int rv = emit(e, hdr, sizeof(hdr), 0);
  if (rv == 0)
    rv = emit(e, p, n, 0);
  tri__free(js);
  return rv;
}

/* More response bytes into e->out.  1 added, 0 nothing yet, -1 the
 * response cannot be completed. */
static int refill(tri_stream *s) {
  struct tri__edge *e = s->edge;
  uint8_t *p;
  size_t n;
  int fl, r;

  tri__mutex_lock(&s->mu);
  if (s->final && s->end_action != TRI__END_STATUS) {
    tri__mutex_unlock(&s->mu);
    return -1; /* reset or connection lost */
  }
  r = ring_take_locked(s, &p, &n, &fl);
  if (r == 1) {
    tri__mutex_unlock(&s->mu);
    r = put_msg(e, p, n, fl);
    tri__free(p);
    if (r != 0) {
      tri__io_end(s, TRI_INTERNAL, "cannot encode a response message as "
                  "JSON", 1, TRI__END_STATUS);
      return 1; /* the status goes out in the trailer frame */
    }
    return 1;
  }
  if (r == 0 && tri__stream_send_ending(s) && s->sb_len == 0) {
    if (e->kind == TRI__EDGE_WEB) {
      r = web_trailers_locked(s, e);
      tri__stream_ev_locked(s, TRI__EV_SEND_DONE, 0, NULL, 0, 0);
    }
    e->tail = 1;
    tri__mutex_unlock(&s->mu);
    return r < 0 ? -1 : 1;
  }
  if (r == 0)
    s->io_deferred = 1; /* the next send or finish posts OP_DATA */
  tri__mutex_unlock(&s->mu);
  return r < 0 ? -1 : 0;
}

ssize_t tri__edge_pull(tri_stream *s, uint8_t *buf, size_t cap, int *eof) {
  struct tri__edge *e = s->edge;
  size_t got = 0;
  *eof = 0;
  for (int guard = 0; guard < 1024; guard++) {
    if (e->ooff < e->olen) {
      size_t k = TRI__MIN(cap - got, e->olen - e->ooff);
      memcpy(buf + got, e->out + e->ooff, k);
      e->ooff += k;
      got += k;
      if (got == cap)
        break;
      continue;
    }
    e->ooff = e->olen = 0;
    if (e->tail) {
      *eof = 1;
      break;
    }
    int r = refill(s);
    if (r < 0)
      return got > 0 ? (ssize_t)got : -1;
    if (r == 0)
      break;
  }
  if (e->tail && e->ooff >= e->olen)
    *eof = 1;
  return (ssize_t)got;
}

int tri__edge_keep_open(const tri_stream *s) {
  return !s->edge->too_big;
}

int64_t tri__edge_body_len(const tri_stream *s) {
  const struct tri__edge *e = s->edge;
  return e->kind == TRI__EDGE_UNARY && e->tail ? (int64_t)(e->olen - e->ooff)
                                               : -1;
}

ssize_t tri__edge_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                          size_t length, uint32_t *flags,
                          nghttp2_data_source *src, void *ud) {
  tri__conn *c = ud;
  tri_stream *s = tri__conn_stream(c, id);
  int eof = 0;
  (void)sess;
  if (s == NULL || s != src->ptr || s->edge == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  ssize_t n = tri__edge_pull(s, buf, length, &eof);
  if (n < 0)
    return NGHTTP2_ERR_DEFERRED; /* a reset follows (or came) */
  if (eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->edge->kind == TRI__EDGE_GRPC_JSON) {
      /* 13.2: trailers carry END_STREAM. */
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      tri__server_submit_trailers(c, s);
    }
    return n;
  }
  if (n == 0)
    return NGHTTP2_ERR_DEFERRED;
  return n;
}

/* ---- requests ---------------------------------------------------------- */

static int parse_ms(const char *v, int64_t *ns) {
  int64_t ms = 0;
  int digits = 0;
  for (; *v; v++, digits++) {
    if (*v < '0' || *v > '9' || digits >= 18)
      return -1;
    ms = ms * 10 + (*v - '0');
  }
  if (digits == 0)
    return -1;
  /* Senders truncate the time left to whole ms (dubbo-go does): one more
   * ms keeps the server's deadline from coming before the client's, as
   * grpc-timeout's rounding up does for gRPC (2.7). */
  *ns = tri__ms_to_ns(ms) + TRI__NS_PER_MS;
  return 0;
}

/* Answer at once with |status| and, unless |code| is OK, a JSON error. */
static int answer(tri__conn *c, tri_stream *s, int status, int code,
                  const char *msg, int no_body) {
  struct tri__edge *e = s->edge;
  e->http_status = status;
  e->no_body = no_body;
  tri__mutex_lock(&s->mu);
  s->finish_code = code;
  tri__free(s->finish_msg);
  s->finish_msg = tri__strdup(msg);
  tri__stream_ev_locked(s, TRI__EV_END, code, msg, 1, TRI__END_NONE);
  tri__mutex_unlock(&s->mu);
  unary_render(c, s);
  return -1;
}

int tri__edge_classify(tri__conn *c, tri_stream *s) {
  char mt[80];
  const char *sub = NULL;
  struct tri__edge *e;
  int h1 = c->h1 != NULL;
  const char *ct = s->req_ctype;

  /* Plain gRPC over HTTP/2, spelled as gRPC clients spell it: what the
   * checks below would conclude, without normalising the media type. */
  if (!h1 && !s->req_options && ct != NULL &&
      (strcmp(ct, "application/grpc") == 0 ||
       strcmp(ct, "application/grpc+proto") == 0))
    return 0;
  media_type(ct, mt, sizeof(mt));
  if (s->req_options && md_str(s, "origin") != NULL &&
      md_str(s, "access-control-request-method") != NULL) {
    /* CORS preflight (Fetch standard "CORS-preflight request"). */
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_UNARY;
    e->preflight = e->origin != NULL;
    const char *h = md_str(s, "access-control-request-headers");
    if (h != NULL)
      e->acrh = tri__strdup(h);
    if (!e->preflight)
      return answer(c, s, 403, TRI_PERMISSION_DENIED,
                    "CORS: origin not allowed", 0);
    return answer(c, s, 204, TRI_OK, NULL, 1);
  }
  if (strncmp(mt, "application/grpc-web", 20) == 0) {
    sub = mt + 20;
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_WEB;
    if (strncmp(sub, "-text", 5) == 0) {
      e->text = 1;
      sub += 5;
    }
    if (strcmp(sub, "+json") == 0) {
      e->json = 1;
    } else if (*sub != '\0' && strcmp(sub, "+proto") != 0) {
      return answer(c, s, 415, TRI_UNIMPLEMENTED,
                    "gRPC-Web with this message codec is not supported "
                    "(proto and json are)", 0);
    }
    snprintf(e->ctype, sizeof(e->ctype), "%s", mt);
    if (e->json)
      s->accept_enc_mask = 0; /* responses uncompressed: translated */
  } else if (strcmp(mt, "application/grpc+json") == 0 ||
             (h1 && strncmp(mt, "application/grpc", 16) == 0)) {
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_GRPC_JSON;
    e->json = 1;
    snprintf(e->ctype, sizeof(e->ctype), "%s", mt);
    s->accept_enc_mask = 0;
    if (h1)
      return answer(c, s, 415, TRI_UNIMPLEMENTED,
                    "gRPC needs HTTP/2 (trailers); over HTTP/1.1 use "
                    "gRPC-Web (application/grpc-web) or Triple "
                    "(application/proto, application/json)", 0);
  } else if (strncmp(mt, "application/grpc", 16) == 0) {
    return 0; /* plain gRPC */
  } else if (strcmp(mt, "application/proto") == 0 ||
             strcmp(mt, "application/json") == 0) {
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_UNARY;
    e->json = mt[12] == 'j';
    /* One HTTP response at the end: metadata may be added until then,
     * and the first send already reaches the edge (unary_take_locked). */
    s->hdrs_at_end = 1;
    s->io_deferred = 1;
    snprintf(e->ctype, sizeof(e->ctype), "%s", mt);
    /* Whole-body codings (RFC 9110 §8.4): the request's is undone here;
     * the response is compressed when the handler asks
     * (tri_stream_set_compression) and accept-encoding allows, as
     * grpc-accept-encoding does for gRPC (9.6). */
    const char *ce = md_str(s, "content-encoding");
    const char *ae = md_str(s, "accept-encoding");
    s->accept_enc_mask = 0;
    if (ce != NULL) {
      char low[32];
      media_type(ce, low, sizeof(low));
      int enc = tri__enc_from_name(low, strlen(low));
      if (enc == TRI__ENC_UNKNOWN ||
          (enc != TRI__ENC_IDENTITY &&
           !tri__enc_in_list(enc, tri__enc_accept_list(),
                             strlen(tri__enc_accept_list()))))
        return answer(c, s, 415, TRI_UNIMPLEMENTED,
                      "content-encoding not supported; supported: identity, "
                      "gzip, deflate", 0);
      e->req_enc = enc;
    }
    for (int enc = TRI__ENC_GZIP; ae != NULL && enc <= TRI__ENC_DEFLATE;
         enc++) {
      char low[256];
      enc_list(ae, low, sizeof(low));
      if (tri__enc_in_list(enc, low, strlen(low)) &&
          tri__enc_in_list(enc, tri__enc_accept_list(),
                           strlen(tri__enc_accept_list())))
        s->accept_enc_mask |= 1 << enc;
    }
    /* The spec's tri-service-timeout, or dubbo-go's Triple-Timeout-Ms
     * (its triple protocol, after Connect's Connect-Timeout-Ms). */
    const char *to = md_str(s, "tri-service-timeout");
    const char *toname = "tri-service-timeout";
    if (to == NULL) {
      to = md_str(s, "triple-timeout-ms");
      toname = "triple-timeout-ms";
    }
    if (to != NULL && s->timeout_ns < 0) {
      int64_t ns;
      char why[96];
      snprintf(why, sizeof(why), "malformed %s (milliseconds)", toname);
      if (parse_ms(to, &ns) != 0)
        return answer(c, s, 400, TRI_INVALID_ARGUMENT, why, 0);
      s->timeout_ns = ns;
    }
  } else if (h1) {
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_UNARY;
    /* Not a protocol of ours at all (a browser's GET, a scanner): answer
     * and close, as the HTTP/2-only server closed such connections. */
    tri__h1_close_after(c);
    return answer(c, s, 415, TRI_UNIMPLEMENTED, "unsupported content-type",
                  1);
  } else {
    /* HTTP/2: the bare 415 of doc/PROTOCOL.md 4.8 (no body), through
     * the edge so the client may finish sending (tri__edge_keep_open). */
    if ((e = edge_new(c, s)) == NULL)
      return 0;
    e->kind = TRI__EDGE_UNARY;
    return answer(c, s, 415, TRI_UNIMPLEMENTED, "unsupported content-type",
                  1);
  }
  if (!s->req_post)
    return answer(c, s, 405, TRI_UNIMPLEMENTED, "only POST is supported", 0);
  return 1;
}

/* lib/json.c built with jansson?  Asked once (without it the codec
 * answers TRI_UNIMPLEMENTED, and JSON requests get 415). */
static int json_available(const ProtobufCMessageDescriptor *d) {
  static int known = -1; /* atomic */
  int k = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
  if (k >= 0)
    return k;
  uint8_t *pb = NULL;
  size_t n = 0;
  char err[64];
  k = tri__json_to_pb(d, "{}", 2, &pb, &n, err, sizeof(err)) !=
      TRI_UNIMPLEMENTED;
  free(pb);
  __atomic_store_n(&known, k, __ATOMIC_RELEASE);
  return k;
}

int tri__edge_method(tri_stream *s, const ProtobufCMessageDescriptor *req,
                     const ProtobufCMessageDescriptor *resp,
                     const char **msg) {
  struct tri__edge *e = s->edge;
  e->req_desc = req;
  e->resp_desc = resp;
  if (!e->json)
    return TRI_OK;
  if (req == NULL || resp == NULL) {
    e->http_status = 415;
    *msg = "this method was registered without message types, so it takes "
           "protobuf only (application/proto, application/grpc); register "
           "it with tri_server_register_typed() for JSON";
    return TRI_UNIMPLEMENTED;
  }
  if (!json_available(req)) {
    e->http_status = 415;
    *msg = "JSON is not available in this build of libtriplestream";
    return TRI_UNIMPLEMENTED;
  }
  return TRI_OK;
}

/* Decode -text request bytes (whole base64 groups; padding may end any
 * group, as concatenated padded pieces do). */
static int text_decode(struct tri__edge *e, const uint8_t *in, size_t n,
                       uint8_t *out, size_t *olen) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = (char)in[i];
    if (ch == '\r' || ch == '\n' || ch == ' ')
      continue;
    e->b64[e->nb64++] = ch;
    if (e->nb64 == 4) {
      size_t k = 0;
      if (tri__b64_decode(e->b64, 4, out + o, &k) != 0)
        return -1;
      o += k;
      e->nb64 = 0;
    }
  }
  *olen = o;
  return 0;
}

int tri__edge_data_in(tri__conn *c, tri_stream *s, const uint8_t **data,
                      size_t *len, uint8_t **tmp) {
  struct tri__edge *e = s->edge;
  if (e->kind == TRI__EDGE_UNARY) {
    /* The body is bounded by the receive limit, so the windows are given
     * back as it arrives. */
    if (c->h1 == NULL)
      nghttp2_session_consume(c->sess, s->id, *len);
    if (e->too_big)
      return 0;
    if (e->blen + *len > s->max_recv) {
      e->too_big = 1;
      tri__free(e->body);
      e->body = NULL;
      e->blen = e->bcap = 0;
      char buf[160];
      snprintf(buf, sizeof(buf), "request body exceeds %s %zu (%s)",
               s->max_recv_hint, s->max_recv, s->max_recv_setter);
      e->http_status = 413;
      tri__server_fail(c, s, TRI_RESOURCE_EXHAUSTED, buf);
      return 0;
    }
    if (e->blen + *len > e->bcap) {
      size_t cap = e->bcap ? e->bcap : 1024;
      while (cap < e->blen + *len)
        cap *= 2;
      uint8_t *nb = tri__realloc(e->body, cap);
      if (nb == NULL) {
        tri__server_fail(c, s, TRI_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
      }
      e->body = nb;
      e->bcap = cap;
    }
    memcpy(e->body + e->blen, *data, *len);
    e->blen += *len;
    return 0;
  }
  if (e->kind == TRI__EDGE_WEB && e->text) {
    size_t n = 0;
    uint8_t *p = tri__malloc(*len / 4 * 3 + 3);
    if (p == NULL || text_decode(e, *data, *len, p, &n) != 0) {
      tri__free(p);
      if (c->h1 == NULL)
        nghttp2_session_consume(c->sess, s->id, *len);
      tri__server_fail(c, s, TRI_INTERNAL,
                       p == NULL ? "out of memory"
                                 : "gRPC-Web text request is not base64");
      return 0;
    }
    /* The deframer gives back window for the decoded bytes. */
    if (c->h1 == NULL && *len > n)
      nghttp2_session_consume(c->sess, s->id, *len - n);
    *tmp = p;
    *data = p;
    *len = n;
  }
  return 1;
}

int tri__edge_msg_in(tri_stream *s, tri_buf **m, const char **err) {
  static _Thread_local char ebuf[300];
  struct tri__edge *e = s->edge;
  uint8_t *pb = NULL;
  size_t pl = 0;
  if (!e->json)
    return TRI_OK;
  char why[256] = "";
  int rv = tri__json_to_pb(e->req_desc, (const char *)(*m)->data, (*m)->len,
                           &pb, &pl, why, sizeof(why));
  if (rv != TRI_OK) {
    snprintf(ebuf, sizeof(ebuf), "cannot parse the JSON request as %s: %s",
             e->req_desc->name, why[0] ? why : tri_strerror(rv));
    *err = ebuf;
    return rv == TRI_ENOMEM ? TRI_RESOURCE_EXHAUSTED : TRI_INVALID_ARGUMENT;
  }
  tri_buf *b = tri__buf_new(pl);
  if (b == NULL) {
    tri__free(pb);
    *err = "out of memory";
    return TRI_RESOURCE_EXHAUSTED;
  }
  if (pl)
    memcpy(b->data, pb, pl);
  b->flags = (*m)->flags;
  tri__free(pb);
  tri__free(*m);
  *m = b;
  return TRI_OK;
}

int tri__edge_eos(tri__conn *c, tri_stream *s) {
  struct tri__edge *e = s->edge;
  if (e->kind == TRI__EDGE_WEB && e->text && e->nb64 != 0) {
    tri__server_fail(c, s, TRI_INTERNAL,
                     "gRPC-Web text request ends inside a base64 group");
    return 1;
  }
  if (e->kind != TRI__EDGE_UNARY)
    return 0;
  if (e->too_big || __atomic_load_n(&s->final, __ATOMIC_ACQUIRE))
    return 1;
  tri_buf *m = NULL;
  const char *err = NULL;
  int rv = TRI_OK;
  if (e->req_enc != TRI__ENC_IDENTITY) {
    rv = tri__decompress(e->req_enc, e->body ? e->body : (uint8_t *)"",
                         e->blen, s->max_recv, &m);
    if (rv == TRI_RESOURCE_EXHAUSTED) {
      e->http_status = 413;
      err = "decompressed request body exceeds the receive limit";
    } else if (rv != TRI_OK) {
      rv = TRI_INVALID_ARGUMENT;
      err = "cannot decompress the request body";
    }
  } else {
    m = tri__buf_new(e->blen);
    if (m == NULL) {
      rv = TRI_RESOURCE_EXHAUSTED;
      err = "out of memory";
    } else if (e->blen) {
      memcpy(m->data, e->body, e->blen);
    }
  }
  tri__free(e->body);
  e->body = NULL;
  e->blen = e->bcap = 0;
  if (rv == TRI_OK) {
    /* The handler sees the flag as for a compressed gRPC message (9.8). */
    m->flags = e->req_enc != TRI__ENC_IDENTITY ? TRI_BUF_COMPRESSED : 0;
    rv = tri__edge_msg_in(s, &m, &err);
  }
  if (rv != TRI_OK) {
    tri__free(m);
    tri__server_fail(c, s, rv, err);
    return 1;
  }
  tri__flow_queue_one(c, s, m);
  tri__mutex_lock(&s->mu);
  tri__stream_ev_locked(s, TRI__EV_PEER_EOS, 0, NULL, 0, 0);
  tri__mutex_unlock(&s->mu);
  return 1;
}

/* ---- responses ------------------------------------------------------- */

int tri__edge_respond(tri__conn *c, tri_stream *s) {
  struct tri__edge *e = s->edge;
  if (e->kind == TRI__EDGE_GRPC_JSON)
    return 0; /* a gRPC Trailers-Only answer */
  if (e->started)
    return 1;
  if (e->kind == TRI__EDGE_UNARY)
    unary_render(c, s);
  else
    web_headers(c, s);
  return 1;
}

int tri__edge_ops(tri__conn *c, tri_stream *s, unsigned ops) {
  struct tri__edge *e = s->edge;
  int hdrs_state, send_state, action, final, ending;

  if (e->kind == TRI__EDGE_GRPC_JSON)
    return 0; /* gRPC framing and trailers; only the provider differs */
  tri__mutex_lock(&s->mu);
  hdrs_state = s->hdrs_state;
  send_state = s->send_state;
  ending = tri__stream_send_ending(s);
  action = s->final ? s->end_action : TRI__END_NONE;
  final = s->final;
  tri__mutex_unlock(&s->mu);
  if (final && action != TRI__END_STATUS) {
    if (c->h1 != NULL)
      tri__h1_abort(c, s); /* a reset: the connection closes */
    return 1;
  }
  if (send_state == TRI__SEND_DONE && e->started) {
    if (c->h1 == NULL)
      nghttp2_session_resume_data(c->sess, s->id);
    return 1;
  }
  if (e->kind == TRI__EDGE_UNARY) {
    if (e->started)
      return 1;
    if (ending) {
      unary_render(c, s);
      return 1;
    }
    /* Still running: take what it sent (a second message fails it). */
    int code = TRI_OK;
    const char *msg = NULL;
    tri__mutex_lock(&s->mu);
    int r = unary_take_locked(s, &code, &msg);
    tri__mutex_unlock(&s->mu);
    if (r != 0) {
      tri__io_end(s, code, msg, 1, TRI__END_STATUS);
      unary_render(c, s);
    }
    return 1;
  }
  /* gRPC-Web */
  if (hdrs_state != TRI__HDRS_DONE || !e->started) {
    if (ops & (TRI__OP_HEADERS | TRI__OP_END | TRI__OP_DATA))
      web_headers(c, s);
    return 1;
  }
  if (c->h1 == NULL && (ops & (TRI__OP_DATA | TRI__OP_END | TRI__OP_HEADERS)))
    nghttp2_session_resume_data(c->sess, s->id);
  return 1;
}
