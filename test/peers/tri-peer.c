/*
 * tri-peer: libtriplestream's side of the peer tests (test/peers/).  A
 * server and a client of tri.peer.v1.PeerService
 * (test/peers/proto/tri/peer/v1/peer.proto) built on the stubs that
 * protoc-gen-triplestream generates.
 *
 *   tri-peer server [--port=N] [--group=G --version=V] [--name=NAME]
 *       Serves every method on 127.0.0.1 (port 0: any), prints
 *       "listening on 127.0.0.1:PORT", stops on SIGTERM/SIGINT.  With a
 *       group or version the methods are registered only under them
 *       (tri_server_register_versioned()), so a call for another group
 *       gets UNIMPLEMENTED; without, the generated register function is
 *       used.  Behaviour per method: see peer.proto.
 *
 *   tri-peer client --server_host=H --server_port=P [--protocol=grpc|triple]
 *       [--codec=proto|json] [--group=G --version=V] [--cases=a,b]
 *       [--label=L] [--cancel_bound_ms=N] [--close_bound_ms=N]
 *       Runs the cases, one line each: "PASS Lcase (detail)" or
 *       "FAIL Lcase: why"; exit status = number of failures.
 *       --protocol=triple / --codec=json use tri_call_opts_set_protocol()
 *       and tri_call_opts_set_codec(); a library without them fails every
 *       case with that reason.
 *
 * Timing bounds (printed with every measured time):
 *   cancel      the server's handler sees CANCELLED within --cancel_bound_ms
 *               (default 100) of our tri_stream_cancel();
 *   close_hold  our recv blocked on a stream the server never closes
 *               returns within --close_bound_ms (default 50: the library
 *               wakes blocked calls at once, p99 < 20 ms in integ_cancel,
 *               plus headroom) of tri_stream_cancel(); both bounds are
 *               multiplied by CK_TIMEOUT_MULTIPLIER;
 *   deadline    a 200 ms deadline ends DEADLINE_EXCEEDED in [200, 500) ms
 *               (500 = 200 + 300 x CK_TIMEOUT_MULTIPLIER), and the server's
 *               handler knew the deadline (at most 200 ms left at its start).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tri/peer/v1/peer.tri.h"
#include "peers/tri-peer-features.h"

#define PFX "tri__peer__v1__peer_service__"

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *opt(int argc, char **argv, const char *name,
                       const char *def) {
  size_t n = strlen(name);
  for (int i = 2; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
        argv[i][2 + n] == '=')
      return argv[i] + 3 + n;
  return def;
}

static int mult(void) {
  const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
  int v = m ? atoi(m) : 1;
  return v < 1 ? 1 : v > 20 ? 20 : v;
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* How held calls ended, for "report:TAG" (see peer.proto). */
#define NREC 256
static struct {
  char tag[128];
  int code;
  int64_t nanos;
  int64_t deadline_ms;
} recs[NREC];
static int nrec;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cv;

static const char *srv_name = "tri-peer";
static const char *srv_group = "";
static const char *srv_version = "";

static void note(const char *tag, int code, int64_t deadline_ms) {
  int64_t now = wall_ns();
  if (tag == NULL || *tag == '\0')
    return;
  pthread_mutex_lock(&rec_mu);
  int i = nrec < NREC ? nrec++ : NREC - 1;
  snprintf(recs[i].tag, sizeof recs[i].tag, "%s", tag);
  recs[i].code = code;
  recs[i].nanos = now;
  recs[i].deadline_ms = deadline_ms;
  pthread_cond_broadcast(&rec_cv);
  pthread_mutex_unlock(&rec_mu);
}

static int find_record(const char *tag, int wait_ms, int *code,
                       int64_t *nanos, int64_t *deadline_ms) {
  struct timespec until;
  int found = 0;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += wait_ms / 1000;
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&rec_mu);
  for (;;) {
    for (int i = 0; i < nrec; i++)
      if (strcmp(recs[i].tag, tag) == 0) {
        *code = recs[i].code;
        *nanos = recs[i].nanos;
        *deadline_ms = recs[i].deadline_ms;
        found = 1;
      }
    if (found || pthread_cond_timedwait(&rec_cv, &rec_mu, &until) == ETIMEDOUT)
      break;
  }
  for (int i = 0; !found && i < nrec; i++)
    if (strcmp(recs[i].tag, tag) == 0) {
      *code = recs[i].code;
      *nanos = recs[i].nanos;
      *deadline_ms = recs[i].deadline_ms;
      found = 1;
    }
  pthread_mutex_unlock(&rec_mu);
  return found;
}

static void fill(Tri__Peer__V1__PeerResponse *r, const char *payload,
                 int index) {
  r->payload = (char *)payload;
  r->index = index;
  r->served_by = (char *)srv_name;
  r->group = (char *)srv_group;
  r->version = (char *)srv_version;
}

/* Waits until the call ends (client cancel, deadline), records how. */
static int hold_until_end(tri_stream *s, const char *tag) {
  int64_t dl = tri_stream_remaining_ms(s);
  int code = tri_stream_wait_status(s, 60000, NULL);
  note(tag, code, dl);
  return code == TRI_ETIMEDOUT ? TRI_DEADLINE_EXCEEDED : code;
}

static _Thread_local char payload_buf[256];
static _Thread_local char report_buf[64];

static int h_unary(Tri__Peer__V1__PeerService__Unary_Server *call, void *ud) {
  const Tri__Peer__V1__PeerRequest *q = call->req;
  (void)ud;
  if (strncmp(q->payload, "report:", 7) == 0) {
    int code;
    int64_t ns, dl;
    if (!find_record(q->payload + 7, q->sleep_ms > 0 ? q->sleep_ms : 2000,
                     &code, &ns, &dl)) {
      tri_stream_finish(call->stream, TRI_NOT_FOUND, "no record of that tag");
      return TRI_NOT_FOUND;
    }
    snprintf(report_buf, sizeof report_buf, "%s", tri_code_name(code));
    fill(&call->resp, report_buf, code);
    call->resp.unix_nanos = ns;
    call->resp.deadline_ms = dl;
    return TRI_OK;
  }
  if (q->hold)
    return hold_until_end(call->stream, q->tag);
  if (q->sleep_ms > 0) {
    int64_t dl = tri_stream_remaining_ms(call->stream);
    int code = tri_stream_wait_status(call->stream, q->sleep_ms, NULL);
    if (code != TRI_ETIMEDOUT) {
      note(q->tag, code, dl);
      return code;
    }
  }
  if (q->status != 0) {
    tri_stream_finish(call->stream, q->status, q->message);
    return q->status;
  }
  snprintf(payload_buf, sizeof payload_buf, "%s", q->payload);
  fill(&call->resp, payload_buf, 0);
  call->resp.data = q->data; /* the request lives until the response is sent */
  return TRI_OK;
}

static int h_server_stream(Tri__Peer__V1__PeerService__ServerStream_Server *call,
                           void *ud) {
  const Tri__Peer__V1__PeerRequest *q = call->req;
  (void)ud;
  for (int i = 0; i < q->count; i++) {
    Tri__Peer__V1__PeerResponse r = TRI__PEER__V1__PEER_RESPONSE__INIT;
    char p[300];
    snprintf(p, sizeof p, "%s-%d", q->payload, i);
    fill(&r, p, i);
    int rv = tri__peer__v1__peer_service__server_stream__server_send(call, &r);
    if (rv != TRI_OK)
      return rv;
  }
  if (q->hold)
    return hold_until_end(call->stream, q->tag);
  if (q->status != 0) {
    tri_stream_finish(call->stream, q->status, q->message);
    return q->status;
  }
  return TRI_OK;
}

static _Thread_local char joined[4096];

static int h_client_stream(Tri__Peer__V1__PeerService__ClientStream_Server *call,
                           void *ud) {
  Tri__Peer__V1__PeerRequest *m;
  size_t len = 0;
  int n = 0, rv;
  (void)ud;
  joined[0] = '\0';
  while ((rv = tri__peer__v1__peer_service__client_stream__server_recv(
              call, &m, -1)) == TRI_OK) {
    len += (size_t)snprintf(joined + len, sizeof joined - len, "%s%s",
                            n ? "," : "", m->payload);
    if (len >= sizeof joined)
      len = sizeof joined - 1;
    n++;
    tri__peer__v1__peer_request__free_unpacked(m, NULL);
  }
  if (rv != TRI_EOF)
    return rv;
  fill(&call->resp, joined, n);
  return TRI_OK;
}

static int h_bidi(Tri__Peer__V1__PeerService__Bidi_Server *call, void *ud) {
  Tri__Peer__V1__PeerRequest *m;
  int rv;
  (void)ud;
  for (int i = 0;; i++) {
    rv = tri__peer__v1__peer_service__bidi__server_recv(call, &m, -1);
    if (rv != TRI_OK)
      return rv == TRI_EOF ? TRI_OK : rv;
    Tri__Peer__V1__PeerResponse r = TRI__PEER__V1__PEER_RESPONSE__INIT;
    fill(&r, m->payload, i);
    rv = tri__peer__v1__peer_service__bidi__server_send(call, &r);
    if (rv == TRI_OK && m->hold) {
      /* Never close: block in recv until the call ends; the client does
       * not send again, so only a cancel or the deadline wakes it. */
      char tag[128];
      int64_t dl = tri_stream_remaining_ms(call->stream);
      Tri__Peer__V1__PeerRequest *more = NULL;
      snprintf(tag, sizeof tag, "%s", m->tag);
      tri__peer__v1__peer_request__free_unpacked(m, NULL);
      do {
        if (more)
          tri__peer__v1__peer_request__free_unpacked(more, NULL);
        more = NULL;
        rv = tri__peer__v1__peer_service__bidi__server_recv(call, &more, -1);
      } while (rv == TRI_OK);
      if (rv == TRI_EOF) /* half-closed but not cancelled: keep holding */
        rv = tri_stream_wait_status(call->stream, 60000, NULL);
      note(tag, rv, dl);
      return rv;
    }
    tri__peer__v1__peer_request__free_unpacked(m, NULL);
    if (rv != TRI_OK)
      return rv;
  }
}

static const Tri__Peer__V1__PeerService_Handlers handlers = {
    .unary = h_unary,
    .server_stream = h_server_stream,
    .client_stream = h_client_stream,
    .bidi = h_bidi,
};

/* Versioned registrations: the generated register function registers
 * without group/version, so these adapters decode the request the way
 * the generated ones do and call the same handlers. */
static Tri__Peer__V1__PeerRequest *recv_request(tri_stream *s, int *rv) {
  tri_buf *b;
  Tri__Peer__V1__PeerRequest *q;
  *rv = tri_stream_recv(s, &b);
  if (*rv == TRI_EOF) {
    tri_stream_finish(s, TRI_UNIMPLEMENTED, "no request message");
    *rv = TRI_UNIMPLEMENTED;
  }
  if (*rv != TRI_OK)
    return NULL;
  q = tri__peer__v1__peer_request__unpack(NULL, tri_buf_len(b),
                                          tri_buf_data(b));
  tri_buf_free(b);
  if (q == NULL) {
    tri_stream_finish(s, TRI_INTERNAL, "cannot parse request");
    *rv = TRI_INTERNAL;
  }
  return q;
}

static int send_response(tri_stream *s, const Tri__Peer__V1__PeerResponse *r) {
  size_t n = tri__peer__v1__peer_response__get_packed_size(r);
  uint8_t *buf = malloc(n ? n : 1);
  int rv;
  if (buf == NULL)
    return TRI_RESOURCE_EXHAUSTED;
  tri__peer__v1__peer_response__pack(r, buf);
  rv = tri_stream_send(s, buf, n);
  free(buf);
  return rv;
}

static int v_unary(tri_stream *s, void *ud) {
  int rv;
  Tri__Peer__V1__PeerService__Unary_Server call = {.stream = s};
  Tri__Peer__V1__PeerRequest *q = recv_request(s, &rv);
  (void)ud;
  if (q == NULL)
    return rv;
  call.req = q;
  tri__peer__v1__peer_response__init(&call.resp);
  rv = h_unary(&call, NULL);
  if (rv == TRI_OK)
    rv = send_response(s, &call.resp);
  tri__peer__v1__peer_request__free_unpacked(q, NULL);
  return rv;
}

static int v_server_stream(tri_stream *s, void *ud) {
  int rv;
  Tri__Peer__V1__PeerService__ServerStream_Server call = {.stream = s};
  Tri__Peer__V1__PeerRequest *q = recv_request(s, &rv);
  (void)ud;
  if (q == NULL)
    return rv;
  call.req = q;
  rv = h_server_stream(&call, NULL);
  tri__peer__v1__peer_request__free_unpacked(q, NULL);
  return rv;
}

static int v_client_stream(tri_stream *s, void *ud) {
  Tri__Peer__V1__PeerService__ClientStream_Server call = {.stream = s};
  int rv;
  (void)ud;
  tri__peer__v1__peer_response__init(&call.resp);
  rv = h_client_stream(&call, NULL);
  return rv == TRI_OK ? send_response(s, &call.resp) : rv;
}

static int v_bidi(tri_stream *s, void *ud) {
  Tri__Peer__V1__PeerService__Bidi_Server call = {.stream = s};
  (void)ud;
  return h_bidi(&call, NULL);
}

static int run_server(int argc, char **argv) {
  tri_server *srv;
  char addr[64];
  const char *group = opt(argc, argv, "group", NULL);
  const char *version = opt(argc, argv, "version", NULL);
  int rv;
  pthread_condattr_t ca;

  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rec_cv, &ca);
  srv_name = opt(argc, argv, "name", "tri-peer");
  srv_group = group ? group : "";
  srv_version = version ? version : "";
  snprintf(addr, sizeof addr, "127.0.0.1:%s", opt(argc, argv, "port", "0"));
  if (tri_server_new(&srv, NULL) != TRI_OK) {
    fprintf(stderr, "tri-peer server: %s\n", tri_last_error());
    return 1;
  }
  if (group == NULL && version == NULL) {
    rv = tri__peer__v1__peer_service__tri_register(srv, &handlers, NULL);
  } else {
    rv = tri_server_register_versioned(srv, TRI__PEER__V1__PEER_SERVICE__UNARY__PATH,
                                       group, version, v_unary, NULL);
    if (rv == TRI_OK)
      rv = tri_server_register_versioned(
          srv, TRI__PEER__V1__PEER_SERVICE__SERVER_STREAM__PATH, group,
          version, v_server_stream, NULL);
    if (rv == TRI_OK)
      rv = tri_server_register_versioned(
          srv, TRI__PEER__V1__PEER_SERVICE__CLIENT_STREAM__PATH, group,
          version, v_client_stream, NULL);
    if (rv == TRI_OK)
      rv = tri_server_register_versioned(srv, TRI__PEER__V1__PEER_SERVICE__BIDI__PATH,
                                         group, version, v_bidi, NULL);
  }
  if (rv != TRI_OK || tri_server_bind(srv, addr) != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 2000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "tri-peer server: %s\n", tri_last_error());
    tri_server_free(srv);
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", tri_server_port(srv));
  fflush(stdout);
  tri_server_wait(srv);
  tri_server_free(srv);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

static tri_channel *ch;
static const char *label = "";
static const char *cli_group, *cli_version, *cli_protocol, *cli_codec;
static int failures;
static char last_why[512];

static void pass(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void pass(const char *name, const char *fmt, ...) {
  char d[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d, sizeof d, fmt, ap);
  va_end(ap);
  printf("PASS %s%s%s%s%s\n", label, name, *d ? " (" : "", d, *d ? ")" : "");
  fflush(stdout);
}

static void fail(const char *name, const char *fmt, ...) {
  char d[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d, sizeof d, fmt, ap);
  va_end(ap);
  printf("FAIL %s%s: %s\n", label, name, d);
  fflush(stdout);
  failures++;
}

/* Call options for this run: protocol, codec, group/version, timeout. */
static tri_call_opts *mkopts(int64_t timeout_ms, const char *group) {
  tri_call_opts *o = tri_call_opts_new();
  if (o == NULL)
    return NULL;
  if (timeout_ms > 0)
    tri_call_opts_set_timeout_ms(o, timeout_ms);
  if (group)
    tri_call_opts_set_service_group(o, group);
  if (cli_version)
    tri_call_opts_set_service_version(o, cli_version);
#ifdef PEER_HAVE_PROTOCOL
  if (strcmp(cli_protocol, "triple") == 0 &&
      tri_call_opts_set_protocol(o, TRI_PROTOCOL_TRIPLE) != TRI_OK) {
    snprintf(last_why, sizeof last_why, "tri_call_opts_set_protocol(TRIPLE): %s",
             tri_last_error());
    tri_call_opts_free(o);
    return NULL;
  }
#endif
#ifdef PEER_HAVE_CODEC
  if (strcmp(cli_codec, "json") == 0 &&
      tri_call_opts_set_codec(o, "json") != TRI_OK) {
    snprintf(last_why, sizeof last_why, "tri_call_opts_set_codec(\"json\"): %s",
             tri_last_error());
    tri_call_opts_free(o);
    return NULL;
  }
#endif
  return o;
}

/* Unary call; on failure fills why with "CODE: message". */
static int unary(const Tri__Peer__V1__PeerRequest *q, int64_t timeout_ms,
                 const char *group, Tri__Peer__V1__PeerResponse **r,
                 char *why, size_t whylen) {
  tri_stream *s = NULL;
  tri_call_opts *o = mkopts(timeout_ms, group);
  int rv;
  *r = NULL;
  if (o == NULL) {
    snprintf(why, whylen, "%s", last_why);
    return TRI_EINVAL;
  }
  rv = tri__peer__v1__peer_service__unary__call(ch, o, q, r, &s);
  if (rv != TRI_OK) {
    const char *msg = "";
    if (s)
      tri_stream_wait_status(s, 0, &msg);
    snprintf(why, whylen, "%s: %s", tri_code_name(rv), msg);
  }
  tri_stream_free(s);
  tri_call_opts_free(o);
  return rv;
}

static int seq;
static void mktag(char *tag, size_t n, const char *name) {
  snprintf(tag, n, "tri-%d-%s-%s-%d", (int)getpid(), cli_protocol, name, ++seq);
}

/* Asks the server how the call tagged |tag| ended. */
static int server_report(const char *tag, int *code, int64_t *ns,
                         int64_t *deadline_ms, char *why, size_t whylen) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char p[200];
  snprintf(p, sizeof p, "report:%s", tag);
  q.payload = p;
  q.sleep_ms = 2000;
  int rv = unary(&q, 5000, cli_group, &r, why, whylen);
  if (rv != TRI_OK)
    return rv;
  *code = r->index;
  *ns = r->unix_nanos;
  *deadline_ms = r->deadline_ms;
  tri__peer__v1__peer_response__free_unpacked(r, NULL);
  return TRI_OK;
}

static void case_unary(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  uint8_t data[] = {0, 1, 2, 0xff};
  char why[600];
  q.payload = (char *)"hello from tri-peer";
  q.data.data = data;
  q.data.len = sizeof data;
  if (unary(&q, 5000, cli_group, &r, why, sizeof why) != TRI_OK) {
    fail(name, "%s", why);
    return;
  }
  if (strcmp(r->payload, q.payload) != 0 || r->data.len != sizeof data ||
      memcmp(r->data.data, data, sizeof data) != 0)
    fail(name, "echo mismatch: payload '%s', %zu data bytes", r->payload,
         r->data.len);
  else if (r->served_by == NULL || *r->served_by == '\0')
    fail(name, "response has no served_by");
  else
    pass(name, "served by %s", r->served_by);
  tri__peer__v1__peer_response__free_unpacked(r, NULL);
}

static void case_unary_error(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char why[600];
  q.status = TRI_PERMISSION_DENIED;
  q.message = (char *)"peer says no";
  int rv = unary(&q, 5000, cli_group, &r, why, sizeof why);
  if (rv == TRI_OK) {
    fail(name, "call succeeded; expected PERMISSION_DENIED");
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
  } else if (rv != TRI_PERMISSION_DENIED || strstr(why, ": peer says no") == NULL)
    fail(name, "got %s; expected TRI_PERMISSION_DENIED: peer says no", why);
  else
    pass(name, "%s", why);
}

static void case_server_stream(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerService__ServerStream_Client c;
  Tri__Peer__V1__PeerResponse *r;
  tri_call_opts *o = mkopts(5000, cli_group);
  int n = 0, rv;
  const char *msg = "";
  if (o == NULL) {
    fail(name, "%s", last_why);
    return;
  }
  q.payload = (char *)"s";
  q.count = 5;
  rv = tri__peer__v1__peer_service__server_stream__open(ch, o, &q, &c);
  tri_call_opts_free(o);
  if (rv != TRI_OK) {
    fail(name, "open: %s", tri_code_name(rv));
    return;
  }
  while ((rv = tri__peer__v1__peer_service__server_stream__recv(&c, &r, -1)) ==
         TRI_OK) {
    char want[32];
    snprintf(want, sizeof want, "s-%d", n);
    if (r->index != n || strcmp(r->payload, want) != 0) {
      fail(name, "message %d: index %d payload '%s'", n, r->index, r->payload);
      tri__peer__v1__peer_response__free_unpacked(r, NULL);
      tri__peer__v1__peer_service__server_stream__free(&c);
      return;
    }
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
    n++;
  }
  int st = tri_stream_wait_status(c.stream, 5000, &msg);
  if (rv != TRI_EOF || st != TRI_OK)
    fail(name, "after %d messages: %s, status %s %s", n, tri_code_name(rv),
         tri_code_name(st), msg);
  else if (n != 5)
    fail(name, "%d messages, expected 5", n);
  else
    pass(name, "5 messages, status OK");
  tri__peer__v1__peer_service__server_stream__free(&c);
}

static void case_client_stream(const char *name) {
  Tri__Peer__V1__PeerService__ClientStream_Client c;
  Tri__Peer__V1__PeerResponse *r;
  tri_call_opts *o = mkopts(5000, cli_group);
  static char pa[] = "a", pb[] = "b", pc[] = "c";
  static char *parts[] = {pa, pb, pc};
  int rv;
  if (o == NULL) {
    fail(name, "%s", last_why);
    return;
  }
  rv = tri__peer__v1__peer_service__client_stream__open(ch, o, &c);
  tri_call_opts_free(o);
  if (rv != TRI_OK) {
    fail(name, "open: %s", tri_code_name(rv));
    return;
  }
  for (int i = 0; i < 3; i++) {
    Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
    q.payload = parts[i];
    if ((rv = tri__peer__v1__peer_service__client_stream__send(&c, &q)) !=
        TRI_OK) {
      fail(name, "send %d: %s", i, tri_code_name(rv));
      tri__peer__v1__peer_service__client_stream__free(&c);
      return;
    }
  }
  rv = tri__peer__v1__peer_service__client_stream__close_and_recv(&c, &r);
  if (rv != TRI_OK) {
    const char *msg = "";
    tri_stream_wait_status(c.stream, 0, &msg);
    fail(name, "%s: %s", tri_code_name(rv), msg);
  } else {
    if (strcmp(r->payload, "a,b,c") != 0 || r->index != 3)
      fail(name, "got '%s'/%d, expected 'a,b,c'/3", r->payload, r->index);
    else
      pass(name, "3 messages in, 'a,b,c' out");
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
  }
  tri__peer__v1__peer_service__client_stream__free(&c);
}

static void case_bidi(const char *name) {
  Tri__Peer__V1__PeerService__Bidi_Client c;
  Tri__Peer__V1__PeerResponse *r;
  tri_call_opts *o = mkopts(5000, cli_group);
  static char px[] = "x", py[] = "y", pz[] = "z";
  static char *parts[] = {px, py, pz};
  int rv;
  if (o == NULL) {
    fail(name, "%s", last_why);
    return;
  }
  rv = tri__peer__v1__peer_service__bidi__open(ch, o, &c);
  tri_call_opts_free(o);
  if (rv != TRI_OK) {
    fail(name, "open: %s", tri_code_name(rv));
    return;
  }
  for (int i = 0; i < 3; i++) {
    Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
    q.payload = parts[i];
    if ((rv = tri__peer__v1__peer_service__bidi__send(&c, &q)) != TRI_OK ||
        (rv = tri__peer__v1__peer_service__bidi__recv(&c, &r, 5000)) != TRI_OK) {
      fail(name, "message %d: %s", i, tri_code_name(rv));
      tri__peer__v1__peer_service__bidi__free(&c);
      return;
    }
    int ok = strcmp(r->payload, parts[i]) == 0 && r->index == i;
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
    if (!ok) {
      fail(name, "echo %d mismatch", i);
      tri__peer__v1__peer_service__bidi__free(&c);
      return;
    }
  }
  tri__peer__v1__peer_service__bidi__close_send(&c);
  rv = tri__peer__v1__peer_service__bidi__recv(&c, &r, 5000);
  int st = tri_stream_wait_status(c.stream, 5000, NULL);
  if (rv != TRI_EOF || st != TRI_OK) {
    if (rv == TRI_OK)
      tri__peer__v1__peer_response__free_unpacked(r, NULL);
    fail(name, "after close_send: recv %s, status %s", tri_code_name(rv),
         tri_code_name(st));
  } else {
    pass(name, "3 echoes in step, then EOF and status OK");
  }
  tri__peer__v1__peer_service__bidi__free(&c);
}

static void case_group_version(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char why[600];
  q.payload = (char *)"gv";
  if (unary(&q, 5000, cli_group, &r, why, sizeof why) != TRI_OK) {
    fail(name, "%s", why);
    return;
  }
  const char *g = cli_group ? cli_group : "", *v = cli_version ? cli_version : "";
  if (strcmp(r->group, g) != 0 || strcmp(r->version, v) != 0)
    fail(name, "served by registration '%s'/'%s', expected '%s'/'%s'",
         r->group, r->version, g, v);
  else
    pass(name, "group '%s' version '%s'", r->group, r->version);
  tri__peer__v1__peer_response__free_unpacked(r, NULL);
}

static void case_group_mismatch(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char why[600];
  q.payload = (char *)"gv";
  int rv = unary(&q, 5000, "no-such-group", &r, why, sizeof why);
  if (rv == TRI_OK) {
    fail(name, "group no-such-group was served by '%s'/'%s'; expected UNIMPLEMENTED",
         r->group, r->version);
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
  } else if (rv != TRI_UNIMPLEMENTED) {
    fail(name, "got %s; expected UNIMPLEMENTED", why);
  } else {
    pass(name, "%s", why);
  }
}

/* 200 ms deadline on a call the server holds: DEADLINE_EXCEEDED here in
 * [200, 500) ms; the server's handler sees its call end no earlier than
 * the deadline, DEADLINE_EXCEEDED (its own timer, from the timeout header)
 * or CANCELLED (our reset at our deadline arrived first: the two race by
 * design, both within microseconds). */
static void case_deadline(const char *name) {
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char why[600], tag[160], rwhy[600];
  int code;
  int64_t ns, dl;
  mktag(tag, sizeof tag, name);
  q.hold = 1;
  q.tag = tag;
  int64_t w0 = wall_ns(), t0 = mono_ns();
  int rv = unary(&q, 200, cli_group, &r, why, sizeof why);
  double el = (double)(mono_ns() - t0) / 1e6;
  if (rv == TRI_OK)
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
  if (rv != TRI_DEADLINE_EXCEEDED) {
    fail(name, "client got %s after %.1f ms; expected DEADLINE_EXCEEDED",
         rv == TRI_OK ? "OK" : why, el);
    return;
  }
  if (el < 200 || el >= 200 + 300 * mult()) {
    fail(name, "DEADLINE_EXCEEDED after %.1f ms, outside [200, %d)", el,
         200 + 300 * mult());
    return;
  }
  if (server_report(tag, &code, &ns, &dl, rwhy, sizeof rwhy) != TRI_OK) {
    fail(name, "client DEADLINE_EXCEEDED after %.1f ms; server report: %s", el,
         rwhy);
    return;
  }
  double sel = (double)(ns - w0) / 1e6;
  if (dl < 0 || dl > 200)
    fail(name, "client DEADLINE_EXCEEDED after %.1f ms, but the server's "
         "handler saw %s deadline at its start (%lld ms left; -1: none): "
         "the timeout did not reach it", el, dl < 0 ? "no" : "a later",
         (long long)dl);
  else if (code != TRI_DEADLINE_EXCEEDED && code != TRI_CANCELLED)
    fail(name, "server's handler saw %s", tri_code_name(code));
  else if (sel < 195 || sel >= 200 + 300 * mult())
    fail(name, "server's handler saw %s %.1f ms after the call started, "
         "outside [195, %d)", tri_code_name(code), sel, 200 + 300 * mult());
  else
    pass(name, "client DEADLINE_EXCEEDED after %.1f ms; server's handler had "
         "%lld ms left at its start and saw %s after %.1f ms", el,
         (long long)dl, tri_code_name(code), sel);
}

/* The server holds a bidi stream; we cancel; its handler must see
 * CANCELLED within the bound. */
static void case_cancel(const char *name, int bound_ms) {
  Tri__Peer__V1__PeerService__Bidi_Client c;
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char tag[160], why[600];
  int code, rv;
  int64_t ns, dl;
  tri_call_opts *o = mkopts(10000, cli_group);
  if (o == NULL) {
    fail(name, "%s", last_why);
    return;
  }
  mktag(tag, sizeof tag, name);
  rv = tri__peer__v1__peer_service__bidi__open(ch, o, &c);
  tri_call_opts_free(o);
  if (rv != TRI_OK) {
    fail(name, "open: %s", tri_code_name(rv));
    return;
  }
  q.payload = (char *)"hold";
  q.hold = 1;
  q.tag = tag;
  if ((rv = tri__peer__v1__peer_service__bidi__send(&c, &q)) != TRI_OK ||
      (rv = tri__peer__v1__peer_service__bidi__recv(&c, &r, 5000)) != TRI_OK) {
    fail(name, "hold request: %s", tri_code_name(rv));
    tri__peer__v1__peer_service__bidi__free(&c);
    return;
  }
  tri__peer__v1__peer_response__free_unpacked(r, NULL);
  int64_t tc = wall_ns();
  tri__peer__v1__peer_service__bidi__cancel(&c);
  tri__peer__v1__peer_service__bidi__free(&c);
  if (server_report(tag, &code, &ns, &dl, why, sizeof why) != TRI_OK) {
    fail(name, "server report: %s", why);
    return;
  }
  double lat = (double)(ns - tc) / 1e6;
  if (code != TRI_CANCELLED)
    fail(name, "server's handler saw %s; expected CANCELLED", tri_code_name(code));
  else if (lat >= bound_ms)
    fail(name, "server's handler saw CANCELLED %.2f ms after our cancel; bound %d ms",
         lat, bound_ms);
  else
    pass(name, "server's handler saw CANCELLED %.2f ms after our cancel (bound %d ms)",
         lat, bound_ms);
}

struct recv_arg {
  Tri__Peer__V1__PeerService__Bidi_Client *c;
  int rv;
  int64_t done_ns;
};

static void *recv_thread(void *p) {
  struct recv_arg *a = p;
  Tri__Peer__V1__PeerResponse *r = NULL;
  a->rv = tri__peer__v1__peer_service__bidi__recv(a->c, &r, 30000);
  a->done_ns = mono_ns();
  if (a->rv == TRI_OK)
    tri__peer__v1__peer_response__free_unpacked(r, NULL);
  return NULL;
}

/* The server never closes the bidi stream; we half-close (it still does
 * not), then close it with tri_stream_cancel() while another thread is
 * blocked in recv: that recv returns CANCELLED within the bound. */
static void case_close_hold(const char *name, int bound_ms) {
  Tri__Peer__V1__PeerService__Bidi_Client c;
  Tri__Peer__V1__PeerRequest q = TRI__PEER__V1__PEER_REQUEST__INIT;
  Tri__Peer__V1__PeerResponse *r;
  char tag[160];
  struct recv_arg a = {.c = &c};
  pthread_t th;
  int rv;
  tri_call_opts *o = mkopts(20000, cli_group);
  if (o == NULL) {
    fail(name, "%s", last_why);
    return;
  }
  mktag(tag, sizeof tag, name);
  rv = tri__peer__v1__peer_service__bidi__open(ch, o, &c);
  tri_call_opts_free(o);
  if (rv != TRI_OK) {
    fail(name, "open: %s", tri_code_name(rv));
    return;
  }
  q.payload = (char *)"hold";
  q.hold = 1;
  q.tag = tag;
  if ((rv = tri__peer__v1__peer_service__bidi__send(&c, &q)) != TRI_OK ||
      (rv = tri__peer__v1__peer_service__bidi__recv(&c, &r, 5000)) != TRI_OK) {
    fail(name, "hold request: %s", tri_code_name(rv));
    tri__peer__v1__peer_service__bidi__free(&c);
    return;
  }
  tri__peer__v1__peer_response__free_unpacked(r, NULL);
  tri__peer__v1__peer_service__bidi__close_send(&c);
  rv = tri__peer__v1__peer_service__bidi__recv(&c, &r, 200);
  if (rv != TRI_ETIMEDOUT) {
    if (rv == TRI_OK)
      tri__peer__v1__peer_response__free_unpacked(r, NULL);
    fail(name, "after close_send the held stream gave %s; expected it to stay "
         "open (TRI_ETIMEDOUT after 200 ms)", tri_code_name(rv));
    tri__peer__v1__peer_service__bidi__free(&c);
    return;
  }
  if (pthread_create(&th, NULL, recv_thread, &a) != 0) {
    fail(name, "pthread_create failed");
    tri__peer__v1__peer_service__bidi__free(&c);
    return;
  }
  struct timespec ts = {0, 100 * 1000000}; /* let it block in recv */
  nanosleep(&ts, NULL);
  int64_t t0 = mono_ns();
  tri__peer__v1__peer_service__bidi__cancel(&c);
  int64_t t1 = mono_ns();
  pthread_join(th, NULL);
  tri__peer__v1__peer_service__bidi__free(&c);
  double lat = (double)(a.done_ns - t0) / 1e6, cl = (double)(t1 - t0) / 1e6;
  if (a.rv != TRI_CANCELLED)
    fail(name, "blocked recv returned %s; expected CANCELLED", tri_code_name(a.rv));
  else if (lat >= bound_ms)
    fail(name, "blocked recv returned CANCELLED %.2f ms after the cancel; bound %d ms",
         lat, bound_ms);
  else
    pass(name, "cancel returned in %.3f ms, blocked recv returned CANCELLED "
         "%.3f ms after it (bound %d ms)", cl, lat, bound_ms);
}

static int run_client(int argc, char **argv) {
  char target[256];
  const char *host = opt(argc, argv, "server_host", "127.0.0.1");
  const char *port = opt(argc, argv, "server_port", NULL);
  const char *cases;
  char list[512];
  int cancel_bound = atoi(opt(argc, argv, "cancel_bound_ms", "100")) * mult();
  int close_bound = atoi(opt(argc, argv, "close_bound_ms", "50")) * mult();

  label = opt(argc, argv, "label", "");
  cli_group = opt(argc, argv, "group", NULL);
  cli_version = opt(argc, argv, "version", NULL);
  cli_protocol = opt(argc, argv, "protocol", "grpc");
  cli_codec = opt(argc, argv, "codec", "proto");
  if (port == NULL) {
    fprintf(stderr, "tri-peer client: --server_port is required\n");
    return 2;
  }
  if (strcmp(cli_protocol, "grpc") != 0 && strcmp(cli_protocol, "triple") != 0) {
    fprintf(stderr, "tri-peer client: --protocol must be grpc or triple\n");
    return 2;
  }
  if (strcmp(cli_codec, "proto") != 0 && strcmp(cli_codec, "json") != 0) {
    fprintf(stderr, "tri-peer client: --codec must be proto or json\n");
    return 2;
  }
  snprintf(target, sizeof target, "%s:%s", host, port);
  if (cli_group || cli_version)
    snprintf(list, sizeof list, "unary,unary_error,server_stream,client_stream,"
             "bidi,deadline,cancel,close_hold,group_version,group_mismatch");
  else
    snprintf(list, sizeof list, "unary,unary_error,server_stream,client_stream,"
             "bidi,deadline,cancel,close_hold");
  cases = opt(argc, argv, "cases", list);

  int missing = 0;
#ifndef PEER_HAVE_PROTOCOL
  if (strcmp(cli_protocol, "triple") == 0) {
    snprintf(last_why, sizeof last_why, "--protocol=triple: this libtriplestream "
             "has no tri_call_opts_set_protocol()");
    missing = 1;
  }
#endif
#ifndef PEER_HAVE_CODEC
  if (strcmp(cli_codec, "json") == 0) {
    snprintf(last_why, sizeof last_why, "--codec=json: this libtriplestream has "
             "no tri_call_opts_set_codec()");
    missing = 1;
  }
#endif
  if (!missing && tri_channel_new(&ch, target, NULL) != TRI_OK) {
    fprintf(stderr, "tri-peer client: %s\n", tri_last_error());
    return 1;
  }

  char *dup = strdup(cases), *save = NULL;
  for (char *name = strtok_r(dup, ",", &save); name;
       name = strtok_r(NULL, ",", &save)) {
    if (missing)
      fail(name, "%s", last_why);
    else if (strcmp(name, "unary") == 0)
      case_unary(name);
    else if (strcmp(name, "unary_error") == 0)
      case_unary_error(name);
    else if (strcmp(name, "server_stream") == 0)
      case_server_stream(name);
    else if (strcmp(name, "client_stream") == 0)
      case_client_stream(name);
    else if (strcmp(name, "bidi") == 0)
      case_bidi(name);
    else if (strcmp(name, "deadline") == 0)
      case_deadline(name);
    else if (strcmp(name, "cancel") == 0)
      case_cancel(name, cancel_bound);
    else if (strcmp(name, "close_hold") == 0)
      case_close_hold(name, close_bound);
    else if (strcmp(name, "group_version") == 0)
      case_group_version(name);
    else if (strcmp(name, "group_mismatch") == 0)
      case_group_mismatch(name);
    else
      fail(name, "unknown case");
  }
  free(dup);
  tri_channel_free(ch);
  return failures > 125 ? 125 : failures;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && strcmp(argv[1], "server") == 0)
    return run_server(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "client") == 0)
    return run_client(argc, argv);
  fprintf(stderr, "usage: tri-peer server [--port=N] [--group=G --version=V]\n"
                  "       tri-peer client --server_port=P [--server_host=H] "
                  "[--protocol=grpc|triple] [--codec=proto|json] "
                  "[--group=G --version=V] [--cases=a,b] [--label=L]\n");
  return 2;
}
