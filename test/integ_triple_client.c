/*
 * integ_triple_client: the client side of Triple's HTTP unary form
 * (doc/PROTOCOL.md "Triple unary (client)") and of the JSON codec, against
 * a scripted HTTP/2 server written here on nghttp2's server API (loopback,
 * its own thread, poll() loop).  The server records the request it got
 * (every header, the body) so the tests assert exactly what the client
 * sent; the :path selects the answer:
 *   /t.S/Ok        200, the SimpleResponse (proto or JSON, as asked), a
 *                  response header, a "trailer-" header and HTTP/2 trailers
 *   /t.S/Echo      200, the request body as the response
 *   /t.S/NotFound  404 {"code":"not_found","message":"no such thing"}
 *   /t.S/Numeric   500 {"status":7,"message":"denied"}
 *   /t.S/Dubbo408  408 {"status":31,"message":"server side timeout"}
 *   /t.S/Bare503   503 without a body
 *   /t.S/Html400   400 with a text/html body
 *   /t.S/Slow      never answers (deadline)
 *   /t.S/Grpc      a gRPC answer (streaming calls, application/grpc+json)
 *   /t.S/GzipResp  200, the Ok body gzip-compressed (content-encoding)
 *   /t.S/TextOk    200 with content-type text/plain
 *   /t.S/GzipErr   404, a gzip-compressed {"code":"not_found",...} body
 * Every wait is bounded; every test ends with the budgets at zero.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <triplestream/protobuf.h>
#include <triplestream/triplestream.h>

#include "grpc/testing/messages.pb-c.h"
#include "testutil.h"

/* The test links the library's convenience archive: its gzip coder makes
 * the compressed response. */
#include "compress.h"

/* ---- the scripted server ---- */

#define MAXH 64

typedef struct {
  int32_t id;
  char path[128];
  char ctype[128];
  uint8_t body[65536];
  size_t blen;
  /* response body being sent */
  uint8_t out[65536];
  size_t olen, opos;
  int trailers; /* send HTTP/2 trailers after the body */
  int grpc;     /* gRPC trailers */
} sv_stream;

typedef struct {
  int lfd, port, stop_pipe[2];
  pthread_t th;
  pthread_mutex_t mu;
  /* the last request, for the tests (mu) */
  char hdrs[MAXH][2][256];
  int nh;
  uint8_t body[65536];
  size_t blen;
  int nreq;
  /* per connection (server thread only) */
  sv_stream *streams[64];
} sv;

static sv g;

static sv_stream *find(int32_t id) {
  for (int i = 0; i < 64; i++)
    if (g.streams[i] && g.streams[i]->id == id)
      return g.streams[i];
  return NULL;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f,
                            void *ud) {
  (void)s;
  (void)ud;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  for (int i = 0; i < 64; i++)
    if (g.streams[i] == NULL) {
      g.streams[i] = calloc(1, sizeof(sv_stream));
      g.streams[i]->id = f->hd.stream_id;
      pthread_mutex_lock(&g.mu);
      g.nh = 0;
      g.blen = 0;
      pthread_mutex_unlock(&g.mu);
      return 0;
    }
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *val,
                     size_t vlen, uint8_t flags, void *ud) {
  sv_stream *st = find(f->hd.stream_id);
  (void)s;
  (void)flags;
  (void)ud;
  if (st == NULL)
    return 0;
  if (nlen == 5 && memcmp(name, ":path", 5) == 0)
    snprintf(st->path, sizeof st->path, "%.*s", (int)vlen, val);
  if (nlen == 12 && memcmp(name, "content-type", 12) == 0)
    snprintf(st->ctype, sizeof st->ctype, "%.*s", (int)vlen, val);
  pthread_mutex_lock(&g.mu);
  if (g.nh < MAXH) {
    snprintf(g.hdrs[g.nh][0], 256, "%.*s", (int)nlen, name);
    snprintf(g.hdrs[g.nh][1], 256, "%.*s", (int)vlen, val);
    g.nh++;
  }
  pthread_mutex_unlock(&g.mu);
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *ud) {
  sv_stream *st = find(id);
  (void)s;
  (void)flags;
  (void)ud;
  if (st != NULL && st->blen + len <= sizeof st->body) {
    memcpy(st->body + st->blen, data, len);
    st->blen += len;
  }
  return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf,
                         size_t len, uint32_t *flags, nghttp2_data_source *src,
                         void *ud) {
  sv_stream *st = src->ptr;
  size_t n = st->olen - st->opos;
  (void)ud;
  if (n > len)
    n = len;
  memcpy(buf, st->out + st->opos, n);
  st->opos += n;
  if (st->opos == st->olen) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trailers || st->grpc) {
      nghttp2_nv t1[] = {
          {(uint8_t *)"x-trl2", (uint8_t *)"t2", 6, 2, 0},
      };
      nghttp2_nv t2[] = {
          {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0},
      };
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(s, id, st->grpc ? t2 : t1, 1);
    }
  }
  return (ssize_t)n;
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), 0}

static void respond(nghttp2_session *s, sv_stream *st, const char *status,
                    const char *ctype, const void *body, size_t blen,
                    int extra) {
  nghttp2_nv nv[5] = {NV(":status", status), NV("content-type", ctype ? ctype : ""),
                      NV("x-resp", "hv"), NV("trailer-x-trl", "tv"),
                      NV("x-bin-bin", "AAE")};
  nghttp2_data_provider prd;
  size_t n = ctype ? 2 : 1;

  if (extra)
    n = 5;
  if (ctype == NULL)
    nv[1] = nv[2];
  memcpy(st->out, body, blen);
  st->olen = blen;
  prd.source.ptr = st;
  prd.read_callback = read_body;
  nghttp2_submit_response(s, st->id, nv, n,
                          blen > 0 || st->trailers || st->grpc ? &prd : NULL);
}

static const uint8_t OK_PB[] = {0x0a, 0x0a, 0x12, 0x08, 0, 0, 0, 0,
                                0,    0,    0,    0}; /* payload.body */

static void answer(nghttp2_session *s, sv_stream *st) {
  int json = strncmp(st->ctype, "application/json", 16) == 0;

  pthread_mutex_lock(&g.mu);
  memcpy(g.body, st->body, st->blen);
  g.blen = st->blen;
  g.nreq++;
  pthread_mutex_unlock(&g.mu);
  if (strcmp(st->path, "/t.S/Ok") == 0) {
    static const char js[] = "{\"payload\":{\"body\":\"AAAAAAAAAAA=\"}}";
    st->trailers = 1;
    if (json)
      respond(s, st, "200", "application/json", js, strlen(js), 1);
    else
      respond(s, st, "200", "application/proto", OK_PB, sizeof OK_PB, 1);
  } else if (strcmp(st->path, "/t.S/Echo") == 0) {
    respond(s, st, "200", json ? "application/json" : "application/proto",
            st->body, st->blen, 0);
  } else if (strcmp(st->path, "/t.S/NotFound") == 0) {
    static const char e[] = "{\"code\":\"not_found\",\"message\":\"no such "
                            "thing\"}";
    respond(s, st, "404", "application/json", e, strlen(e), 0);
  } else if (strcmp(st->path, "/t.S/Numeric") == 0) {
    static const char e[] = "{\"status\":7,\"message\":\"denied\"}";
    respond(s, st, "500", "application/json", e, strlen(e), 0);
  } else if (strcmp(st->path, "/t.S/Dubbo408") == 0) {
    /* Triple spec 3.1.2's error body: a Dubbo status number (31: server
     * side timeout), not a gRPC code */
    static const char e[] = "{\"status\":31,\"message\":\"server side "
                            "timeout\"}";
    respond(s, st, "408", "application/json", e, strlen(e), 0);
  } else if (strcmp(st->path, "/t.S/Bare503") == 0) {
    respond(s, st, "503", NULL, "", 0, 0);
  } else if (strcmp(st->path, "/t.S/Html400") == 0) {
    static const char e[] = "<html>bad</html>";
    respond(s, st, "400", "text/html", e, strlen(e), 0);
  } else if (strcmp(st->path, "/t.S/Grpc") == 0) {
    /* one gRPC message: the request's own message echoed */
    uint8_t m[600];
    size_t n = st->blen > 500 ? 500 : st->blen;
    memcpy(m, st->body, n);
    st->grpc = 1;
    respond(s, st, "200", st->ctype, m, n, 0);
  }
  else if (strcmp(st->path, "/t.S/GzipResp") == 0 ||
           strcmp(st->path, "/t.S/GzipErr") == 0) {
    /* GzipErr: Triple spec 3.1.2, an error body is compressed too */
    static const char e[] = "{\"code\":\"not_found\",\"message\":\"gz\"}";
    int err = strcmp(st->path, "/t.S/GzipErr") == 0;
    uint8_t *z = NULL;
    size_t zl = 0;
    nghttp2_nv nv[3] = {NV(":status", "200"),
                        NV("content-type", "application/proto"),
                        NV("content-encoding", "gzip")};
    nghttp2_data_provider prd;
    if (err) {
      nghttp2_nv e0 = NV(":status", "404"),
                 e1 = NV("content-type", "application/json");
      nv[0] = e0;
      nv[1] = e1;
    }
    if (tri__compress(TRI__ENC_GZIP, err ? (const uint8_t *)e : OK_PB,
                      err ? strlen(e) : sizeof OK_PB, &z, &zl) !=
            TRI_OK ||
        zl > sizeof st->out) {
      free(z);
      return;
    }
    memcpy(st->out, z, zl);
    free(z);
    st->olen = zl;
    prd.source.ptr = st;
    prd.read_callback = read_body;
    nghttp2_submit_response(s, st->id, nv, 3, &prd);
  } else if (strcmp(st->path, "/t.S/TextOk") == 0) {
    respond(s, st, "200", "text/plain", "hi", 2, 0);
  }
  /* /t.S/Slow: no answer */
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
  sv_stream *st;
  (void)ud;
  if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
      !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  st = find(f->hd.stream_id);
  if (st != NULL)
    answer(s, st);
  return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud) {
  (void)s;
  (void)err;
  (void)ud;
  for (int i = 0; i < 64; i++)
    if (g.streams[i] && g.streams[i]->id == id) {
      free(g.streams[i]);
      g.streams[i] = NULL;
    }
  return 0;
}

static void serve_conn(int fd) {
  nghttp2_session_callbacks *cb;
  nghttp2_session *s;
  nghttp2_settings_entry iv[1] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};

  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb,
                                                          on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session_server_new(&s, cb, NULL);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  for (;;) {
    const uint8_t *out;
    ssize_t n;
    struct pollfd p[2] = {{fd, POLLIN, 0}, {g.stop_pipe[0], POLLIN, 0}};
    uint8_t buf[16384];

    while ((n = nghttp2_session_mem_send(s, &out)) > 0)
      if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
        goto done;
    if (poll(p, 2, 10000) <= 0 || p[1].revents)
      break;
    n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)n) < 0)
      break;
  }
done:
  nghttp2_session_del(s);
  for (int i = 0; i < 64; i++) {
    free(g.streams[i]);
    g.streams[i] = NULL;
  }
  close(fd);
}

static void *sv_main(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd p[2] = {{g.lfd, POLLIN, 0}, {g.stop_pipe[0], POLLIN, 0}};
    int fd;
    if (poll(p, 2, 30000) <= 0 || p[1].revents)
      return NULL;
    fd = accept(g.lfd, NULL, NULL);
    if (fd >= 0)
      serve_conn(fd);
  }
}

static void sv_start(void) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int one = 1;

  memset(&g, 0, sizeof g);
  pthread_mutex_init(&g.mu, NULL);
  ck_assert_int_eq(pipe(g.stop_pipe), 0);
  g.lfd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(g.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(g.lfd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(g.lfd, 8), 0);
  getsockname(g.lfd, (struct sockaddr *)&a, &al);
  g.port = ntohs(a.sin_port);
  ck_assert_int_eq(pthread_create(&g.th, NULL, sv_main, NULL), 0);
}

static void sv_stop(void) {
  ck_assert_int_eq(write(g.stop_pipe[1], "x", 1), 1);
  pthread_join(g.th, NULL);
  close(g.lfd);
  close(g.stop_pipe[0]);
  close(g.stop_pipe[1]);
  pthread_mutex_destroy(&g.mu);
}

/* The value of request header |name| ("" if absent; NULL-safe copy). */
static const char *req_hdr(const char *name) {
  static char v[256];
  v[0] = '\0';
  pthread_mutex_lock(&g.mu);
  for (int i = 0; i < g.nh; i++)
    if (strcmp(g.hdrs[i][0], name) == 0) {
      snprintf(v, sizeof v, "%s", g.hdrs[i][1]);
      pthread_mutex_unlock(&g.mu);
      return v;
    }
  pthread_mutex_unlock(&g.mu);
  return NULL;
}

static const char *md_get(const tri_metadata *md, const char *key,
                          size_t *len) {
  for (size_t i = 0; i < tri_metadata_count(md); i++) {
    const char *k;
    const void *v;
    size_t vl;
    tri_metadata_get(md, i, &k, &v, &vl);
    if (strcmp(k, key) == 0) {
      if (len)
        *len = vl;
      return v;
    }
  }
  return NULL;
}

static tri_channel *ch;
static tri_call_opts *opts;

static void setup(void) {
  sv_start();
  ch = tu_channel_new(g.port, NULL);
  ck_assert_ptr_nonnull(ch);
  opts = tri_call_opts_new();
  ck_assert_int_eq(tri_call_opts_set_protocol(opts, TRI_PROTOCOL_TRIPLE),
                   TRI_OK);
}

static void teardown(void) {
  tri_call_opts_free(opts);
  tri_channel_free(ch);
  sv_stop();
  ck_assert_int_eq(tu_budgets_settle(2000), 0);
}

static const uint8_t REQ[] = {0x10, 0x08}; /* SimpleRequest{response_size 8} */

START_TEST(test_request_form_and_success) {
  tri_buf *resp = NULL;
  tri_stream *s = NULL;
  const char *v;
  size_t vl;
  int ms;

  ck_assert_int_eq(tri_call_opts_set_timeout_ms(opts, 5000), TRI_OK);
  ck_assert_int_eq(tri_call_opts_set_service_group(opts, "g1"), TRI_OK);
  ck_assert_int_eq(tri_call_opts_set_service_version(opts, "1.0"), TRI_OK);
  ck_assert_int_eq(tri_call_opts_add_metadata(opts, "x-md", "v", 1), TRI_OK);
  ck_assert_int_eq(
      tri_call_opts_add_metadata(opts, "x-raw-bin", "\x00\x01", 2), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Ok", opts, REQ, sizeof REQ, &resp,
                                  &s),
                   TRI_OK);
  /* the request, header by header, and the bare body */
  ck_assert_str_eq(req_hdr(":method"), "POST");
  ck_assert_str_eq(req_hdr(":path"), "/t.S/Ok");
  ck_assert_str_eq(req_hdr(":scheme"), "http");
  ck_assert_str_eq(req_hdr("content-type"), "application/proto");
  ck_assert_str_eq(req_hdr("tri-protocol-version"), "1.0.0");
  ms = atoi(req_hdr("tri-service-timeout"));
  ck_assert_msg(ms > 4000 && ms <= 5000, "tri-service-timeout %d", ms);
  ck_assert_int_eq(atoi(req_hdr("triple-timeout-ms")), ms);
  ck_assert_str_eq(req_hdr("tri-service-group"), "g1");
  ck_assert_str_eq(req_hdr("tri-service-version"), "1.0");
  ck_assert_str_eq(req_hdr("x-md"), "v");
  ck_assert_str_eq(req_hdr("x-raw-bin"), "AAE");
  ck_assert_ptr_null(req_hdr("grpc-timeout"));
  ck_assert_ptr_null(req_hdr("te"));
  ck_assert_ptr_null(req_hdr("content-encoding"));
  ck_assert_uint_eq(g.blen, sizeof REQ);
  ck_assert(memcmp(g.body, REQ, sizeof REQ) == 0);
  /* the response: bare body, headers, trailer- headers and trailers */
  ck_assert_uint_eq(tri_buf_len(resp), 12);
  ck_assert(memcmp(tri_buf_data(resp), "\x0a\x0a\x12\x08", 4) == 0);
  v = md_get(tri_stream_headers(s, 0), "x-resp", &vl);
  ck_assert(v != NULL && vl == 2 && memcmp(v, "hv", 2) == 0);
  v = md_get(tri_stream_headers(s, 0), "x-bin-bin", &vl);
  ck_assert(v != NULL && vl == 2 && memcmp(v, "\x00\x01", 2) == 0);
  ck_assert_ptr_null(md_get(tri_stream_headers(s, 0), "trailer-x-trl", NULL));
  v = md_get(tri_stream_trailers(s), "x-trl", &vl);
  ck_assert(v != NULL && vl == 2 && memcmp(v, "tv", 2) == 0);
  v = md_get(tri_stream_trailers(s), "x-trl2", &vl);
  ck_assert(v != NULL && vl == 2 && memcmp(v, "t2", 2) == 0);
  ck_assert_int_eq(tri_stream_wait_status(s, 0, NULL), TRI_OK);
  tri_buf_free(resp);
  tri_stream_free(s);
}
END_TEST

START_TEST(test_msg_and_empty_body) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  ProtobufCMessage *out = NULL;
  tri_buf *resp = NULL;

  req.response_size = 8;
  ck_assert_int_eq(tri_unary_call_msg(ch, "/t.S/Ok", opts, &req.base,
                                      &grpc__testing__simple_response__descriptor,
                                      &out, NULL),
                   TRI_OK);
  ck_assert_ptr_nonnull(((Grpc__Testing__SimpleResponse *)out)->payload);
  ck_assert_uint_eq(
      ((Grpc__Testing__SimpleResponse *)out)->payload->body.len, 8);
  protobuf_c_message_free_unpacked(out, NULL);
  ck_assert_ptr_null(req_hdr("tri-service-timeout")); /* no deadline */
  ck_assert_ptr_null(req_hdr("triple-timeout-ms"));
  /* an empty request and an empty response are one message each */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Echo", opts, "", 0, &resp, NULL),
                   TRI_OK);
  ck_assert_uint_eq(g.blen, 0);
  ck_assert_uint_eq(tri_buf_len(resp), 0);
  tri_buf_free(resp);
}
END_TEST

START_TEST(test_errors) {
  tri_buf *resp = (tri_buf *)1;
  tri_stream *s = NULL;
  const char *msg;

#ifdef HAVE_JANSSON
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/NotFound", opts, REQ, sizeof REQ,
                                  &resp, &s),
                   TRI_NOT_FOUND);
  ck_assert_ptr_null(resp);
  ck_assert_str_eq(tri_last_error(), "no such thing");
  ck_assert_int_eq(tri_stream_wait_status(s, 0, &msg), TRI_NOT_FOUND);
  ck_assert_str_eq(msg, "no such thing");
  tri_stream_free(s);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Numeric", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_PERMISSION_DENIED);
  ck_assert_str_eq(tri_last_error(), "denied");
  /* A number that is no gRPC code: the HTTP status decides (Triple spec
   * 3.1.3), the message stays. */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Dubbo408", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_DEADLINE_EXCEEDED);
  ck_assert_str_eq(tri_last_error(), "server side timeout");
  /* A compressed error body is read after decompressing it. */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/GzipErr", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_NOT_FOUND);
  ck_assert_str_eq(tri_last_error(), "gz");
#else
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Dubbo408", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_DEADLINE_EXCEEDED);
  /* Without jansson the JSON error body is not read: the HTTP status
   * decides (doc/PROTOCOL.md 14.5). */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/NotFound", opts, REQ, sizeof REQ,
                                  &resp, &s),
                   TRI_UNIMPLEMENTED);
  ck_assert_ptr_null(resp);
  ck_assert_str_eq(tri_last_error(),
                   "HTTP status 404 without a Triple error body (46 bytes of "
                   "application/json)");
  ck_assert_int_eq(tri_stream_wait_status(s, 0, &msg), TRI_UNIMPLEMENTED);
  tri_stream_free(s);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Numeric", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_UNKNOWN);
#endif
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Bare503", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_UNAVAILABLE);
  ck_assert_str_eq(tri_last_error(),
                   "HTTP status 503 without a Triple error body");
  /* Triple spec 3.1.3 maps HTTP statuses as Connect does: 400 is
   * invalid_argument (gRPC's own table says INTERNAL). */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Html400", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_INVALID_ARGUMENT);
  ck_assert_str_eq(tri_last_error(),
                   "HTTP status 400 without a Triple error body (16 bytes of "
                   "text/html)");
}
END_TEST

START_TEST(test_deadline) {
  tri_buf *resp = NULL;
  int64_t t0 = tu_now_us();
  int ms;

  ck_assert_int_eq(tri_call_opts_set_timeout_ms(opts, 200), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Slow", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_DEADLINE_EXCEEDED);
  TU_ASSERT_ELAPSED("Triple unary deadline", 200, 200, TU_HEADROOM_MS, t0,
                    tu_now_us());
  ms = atoi(req_hdr("tri-service-timeout"));
  ck_assert_msg(ms > 100 && ms <= 200, "tri-service-timeout %d", ms);
}
END_TEST

START_TEST(test_gzip_request) {
  tri_buf *resp = NULL;

  ck_assert_int_eq(tri_call_opts_set_compression(opts, "gzip"), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Ok", opts, REQ, sizeof REQ, &resp,
                                  NULL),
                   TRI_OK);
  tri_buf_free(resp);
  ck_assert_str_eq(req_hdr("content-encoding"), "gzip");
  ck_assert_ptr_null(req_hdr("grpc-encoding"));
  ck_assert_uint_gt(g.blen, 10);
  ck_assert(g.body[0] == 0x1f && g.body[1] == 0x8b); /* a gzip member */
}
END_TEST

START_TEST(test_response_checks) {
  tri_buf *resp = NULL;

#ifdef HAVE_ZLIB
  /* a gzip body is undone and flagged as compressed */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/GzipResp", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_OK);
  ck_assert_uint_eq(tri_buf_len(resp), sizeof OK_PB);
  ck_assert(memcmp(tri_buf_data(resp), OK_PB, sizeof OK_PB) == 0);
  ck_assert(tri_buf_flags(resp) & TRI_BUF_COMPRESSED);
  tri_buf_free(resp);
  resp = NULL;
#endif
  /* a foreign content type at 200 */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/TextOk", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_INTERNAL);
  ck_assert_str_eq(tri_last_error(), "response content-type 'text/plain' is "
                                     "not application/proto");
  /* a body over the receive limit */
  ck_assert_int_eq(tri_call_opts_set_max_recv_size(opts, 8), TRI_OK);
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Ok", opts, REQ, sizeof REQ,
                                  &resp, NULL),
                   TRI_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(tri_last_error(),
                   "response body of more than 8 bytes exceeds this call's "
                   "limit 8 (tri_call_opts_set_max_recv_size)");
  ck_assert_ptr_null(resp);
}
END_TEST

START_TEST(test_streams_stay_grpc) {
  tri_stream *s = NULL;
  tri_buf *m = NULL;

  ck_assert_int_eq(tri_stream_open(ch, "/t.S/Grpc", opts, &s), TRI_OK);
  ck_assert_int_eq(tri_stream_send_ex(s, REQ, sizeof REQ, TRI_SEND_LAST, -1),
                   TRI_OK);
  ck_assert_int_eq(tri_stream_recv(s, &m), TRI_OK);
  ck_assert_uint_eq(tri_buf_len(m), sizeof REQ); /* echoed */
  tri_buf_free(m);
  m = NULL;
  ck_assert_int_eq(tri_stream_recv(s, &m), TRI_EOF);
  ck_assert_int_eq(tri_stream_wait_status(s, 5000, NULL), TRI_OK);
  tri_stream_free(s);
  ck_assert_str_eq(req_hdr("content-type"), "application/grpc+proto");
  ck_assert_ptr_null(req_hdr("tri-protocol-version"));
  ck_assert_uint_eq(g.blen, 5 + sizeof REQ); /* length-prefixed */
}
END_TEST

#ifdef HAVE_JANSSON
START_TEST(test_json_codec) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  ProtobufCMessage *out = NULL;
  tri_buf *resp = (tri_buf *)1;

  ck_assert_int_eq(tri_call_opts_set_codec(opts, "json"), TRI_OK);
  req.response_size = 8;
  ck_assert_int_eq(tri_unary_call_msg(ch, "/t.S/Ok", opts, &req.base,
                                      &grpc__testing__simple_response__descriptor,
                                      &out, NULL),
                   TRI_OK);
  ck_assert_str_eq(req_hdr("content-type"), "application/json");
  ck_assert_uint_eq(g.blen, strlen("{\"responseSize\":8}"));
  ck_assert(memcmp(g.body, "{\"responseSize\":8}", g.blen) == 0);
  ck_assert_uint_eq(
      ((Grpc__Testing__SimpleResponse *)out)->payload->body.len, 8);
  protobuf_c_message_free_unpacked(out, NULL);
  /* raw bytes cannot be converted */
  ck_assert_int_eq(tri_unary_call(ch, "/t.S/Ok", opts, REQ, sizeof REQ, &resp,
                                  NULL),
                   TRI_EINVAL);
  ck_assert_ptr_null(resp);
  ck_assert_ptr_nonnull(strstr(tri_last_error(), "tri_unary_call_msg"));
  /* gRPC with the JSON codec: application/grpc+json, framed JSON */
  ck_assert_int_eq(tri_call_opts_set_protocol(opts, TRI_PROTOCOL_GRPC),
                   TRI_OK);
  out = NULL;
  ck_assert_int_eq(tri_unary_call_msg(ch, "/t.S/Grpc", opts, &req.base,
                                      &grpc__testing__simple_request__descriptor,
                                      &out, NULL),
                   TRI_OK);
  ck_assert_str_eq(req_hdr("content-type"), "application/grpc+json");
  ck_assert_uint_eq(g.blen, 5 + strlen("{\"responseSize\":8}"));
  ck_assert_int_eq(((Grpc__Testing__SimpleRequest *)out)->response_size, 8);
  protobuf_c_message_free_unpacked(out, NULL);
}
END_TEST
#endif

START_TEST(test_opts_validation) {
  ck_assert_int_eq(tri_call_opts_set_protocol(opts, 7), TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_set_protocol(NULL, 0), TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_set_codec(opts, "xml"), TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_set_codec(opts, NULL), TRI_EINVAL);
  ck_assert_int_eq(tri_call_opts_set_codec(opts, "proto"), TRI_OK);
#ifdef HAVE_JANSSON
  ck_assert_int_eq(tri_call_opts_set_codec(opts, "json"), TRI_OK);
#else
  ck_assert_int_eq(tri_call_opts_set_codec(opts, "json"), TRI_UNIMPLEMENTED);
#endif
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("triple_client");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_request_form_and_success);
  tcase_add_test(tc, test_msg_and_empty_body);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_deadline);
  tcase_add_test(tc, test_gzip_request);
  tcase_add_test(tc, test_response_checks);
  tcase_add_test(tc, test_streams_stay_grpc);
#ifdef HAVE_JANSSON
  tcase_add_test(tc, test_json_codec);
#endif
  tcase_add_test(tc, test_opts_validation);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
