/*
 * stress_model: a seeded, randomized model test of the blocking stream API.
 *
 * Several worker threads open streams on one channel and drive random
 * sequences of operations (send, send_ex with a timeout, recv, recv_ex,
 * recv_into, close_send, cancel, wait_status, headers, unary calls), while
 * a helper thread per worker cancels, frees or half-closes the stream while
 * the worker is blocked in it, a disruptor thread shuts down, frees or
 * SIGKILLs the server (in-process, or a forked and exec'd child) and
 * restarts it on the same port, and a watchdog aborts on a call stuck past
 * its bound.  Every call is checked against a model of what it may return
 * (the contract in include/triplestream/triplestream.h):
 *
 *  - Messages carry (stream id, sequence number, length, checksum).  Both
 *    sides check that each is delivered at most once, in order and intact
 *    (the server finishes DATA_LOSS "model violation" otherwise).
 *  - The server's behaviour is scripted by the client in metadata
 *    ("x-script"): echo until EOF, echo N then OK, finish with a code and
 *    message after K messages, abort (return a code without reading),
 *    never reply (hold until cancelled), send N then OK, slow reader, sink
 *    (never reads).  The handler reports in trailers whether it finished OK
 *    (x-fin), what it sent (x-sent), what it received (x-recv) and whether
 *    it saw end of input (x-eof).
 *  - Final status: once set it never changes (every call that reports it
 *    and wait_status twice agree, message included); OK only if the
 *    handler finished OK (x-fin) and, when read to TRI_EOF, every message
 *    the handler sent was received; if the handler saw end of input, every
 *    send that returned TRI_OK was received (x-recv); the script's error
 *    code and exact message; CANCELLED only after a local cancel/free or a
 *    server disruption; DEADLINE_EXCEEDED only with a deadline and never
 *    before it; UNAVAILABLE only around a server disruption.
 *  - Returns: send after close_send returned -> TRI_EOF (or the final
 *    status), never TRI_OK; a send blocked while another thread calls
 *    close_send may return TRI_OK only if the message is delivered (the
 *    x-recv check); after a local cancel -> the final status; recv
 *    after a local cancel never delivers a message when the call ended
 *    CANCELLED; TRI_EOF from recv only with final status OK; TRI_ETIMEDOUT
 *    only from calls with a timeout and never before it; TRI_ENOSPC only
 *    from recv_into with a too small buffer, with the length, leaving the
 *    message queued; close_send returns TRI_OK; no TRI_ESTATE / TRI_EINVAL.
 *    tri_unary_call: OK only for one response and status OK (the response
 *    intact); TRI_UNIMPLEMENTED for 0 or 2 responses with OK (5.4); else
 *    the script's status.
 *  - The helper acts only while the worker is inside a call on the stream
 *    (seen sleeping in /proc), so a free never precedes a new call.
 *  - Bounds: every call has one, from its own timeout (+500 ms), the
 *    stream's deadline (+500 ms), a cancel or free from another thread
 *    (+200 ms), "already ended" (500 ms), or guaranteed progress (3 s; e.g.
 *    recv of an echo that is due; + 15 s in rounds with a connection
 *    receive budget at its minimum, where other streams' unread data may
 *    hold the connection window while their scenario lasts, at most 5 s
 *    of steps).  A call that returns late fails; one
 *    still blocked 5 s past its bound makes the watchdog print the stream's
 *    op log and exit 1.  Calls with no bound are never issued.
 *  - After each round (streams, channel, server freed) the library's
 *    budget counters (tri__budgets_get) return to zero within 2 s, and
 *    every thread of the round joins within a bound.
 *
 * Reproducibility: --seed=N fixes the operation sequence of every scenario
 * (derived from seed, round, worker and scenario number); the thread
 * interleaving and the timing are not reproducible.  On failure the seed
 * and the op log of the stream are printed.
 *
 * Usage: stress_model [--seed=N] [--seconds=S] [--threads=T] [--slack=X]
 *        stress_model --seed=N --replay=ROUND.WORKER.SCENARIO [--seconds=S]
 * (--replay repeats the op sequence of one failed scenario until it fails
 * again.)
 * TRI_STRESS_SECONDS overrides --seconds (default 60).  --slack multiplies
 * every time bound (default: CK_TIMEOUT_MULTIPLIER if set, at least 4 in
 * sanitizer builds).  The last line is
 * "stress_model: N passed, M failed" (scenarios); exit 0 when M is 0.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <triplestream/triplestream.h>

#include "budget.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/* Share of rounds (percent) with a forked server, and with the minimum
 * connection receive budget (65536) on each side; compile-time knobs for
 * exploring, e.g. -DSTRESS_FORKED_PCT=100. */
#ifndef STRESS_FORKED_PCT
#define STRESS_FORKED_PCT 40
#endif
#ifndef STRESS_SMALL_CONNQ_PCT
#define STRESS_SMALL_CONNQ_PCT 40
#endif

/* Sanitizer builds run several times slower: time bounds x4 at least. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define STRESS_SANITIZED 1
#endif
#endif
#ifndef STRESS_SANITIZED
#define STRESS_SANITIZED 0
#endif

#define MAX_THREADS 16
#define MAX_MSG (320 * 1024)
#define MH 24                     /* message header bytes */
#define MAGIC 0x4c444f4du         /* "MODL" */
#define SAFE_BYTES (16 * 1024)    /* in flight: always fits the windows */
#define NONE INT64_MAX

static int g_slack = 1;
#define WAKE_MS (200 * g_slack)       /* cancel/free -> blocked call back */
#define DL_SLACK_MS (500 * g_slack)   /* deadline -> call back */
#define TMO_SLACK_MS (500 * g_slack)  /* own timeout -> call back */
#define NONBLOCK_MS (500 * g_slack)   /* "Blocking: no" / already ended */
#define PROMPT_MS (3000 * g_slack)    /* progress is guaranteed */
#define GRACE_MS (5000 * g_slack)     /* watchdog: bound + this = stuck */
/* With a connection's receive budget at its minimum (65536), the unread
 * data of any other stream on it may withhold connection window until
 * that stream is read or freed (documented).  Scenarios last at most
 * SCEN_CAP_MS of steps plus their end, so progress that depends on the
 * connection is then only guaranteed within PROMPT_MS + HOLD_MS. */
#define SCEN_CAP_MS (5000 * g_slack)
#define HOLD_MS (15000 * g_slack)
#define EARLY_US 1000                 /* clock-read tolerance for "not
                                         before": 1 ms */

static uint64_t g_seed;
static int g_replay, g_rp_round, g_rp_worker; /* --replay=R.W.K */
static long g_rp_scen;
static int g_seconds = 60;
static int g_threads = 4;
static int64_t g_t0;            /* us, program start */
static const char *g_self = "/proc/self/exe";

static atomic_long g_ops, g_pass, g_fail, g_round_fail, g_rounds;
static atomic_long g_helper_acted[4], g_helper_skipped, g_final_seen[18],
    g_disruptions;
static atomic_llong g_round_max_us; /* longest call of the round */
static atomic_int g_fatal;
static pthread_mutex_t g_print_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_us(void) { return tu_now_us(); }
static double rel_ms(int64_t t) { return (double)(t - g_t0) / 1000.0; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ */
/* PRNG (splitmix64)                                                   */
/* ------------------------------------------------------------------ */

typedef struct {
  uint64_t s;
} rng;

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint32_t rnd(rng *r) {
  r->s += 0x9e3779b97f4a7c15ull;
  return (uint32_t)(mix64(r->s) >> 32);
}
static uint32_t below(rng *r, uint32_t n) { return n ? rnd(r) % n : 0; }
static int chance(rng *r, int pct) { return (int)below(r, 100) < pct; }
static rng rng_for(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  rng r;
  r.s = mix64(g_seed ^ mix64(a + 0x1234567ull) ^ mix64(b * 31 + 7) ^
              mix64(c * 1000003 + 11) ^ mix64(d * 7919 + 13));
  return r;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static uint32_t fnv1a(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static void msg_build(uint8_t *b, size_t len, uint64_t sid, uint32_t seq) {
  if (len < MH)
    len = MH;
  tu_fill(b + MH, len - MH, (uint32_t)(sid * 2654435761u) ^ (seq * 40503u));
  put32(b, MAGIC);
  put32(b + 4, seq);
  put64(b + 8, sid);
  put32(b + 16, (uint32_t)len);
  put32(b + 20, fnv1a(b + MH, len - MH) ^ seq);
}

/* NULL if |b| is an intact message of stream |sid|; stores its seq. */
static const char *msg_check(const uint8_t *b, size_t len, uint64_t sid,
                             uint32_t *seq) {
  if (len < MH)
    return "shorter than the header";
  if (get32(b) != MAGIC)
    return "bad magic";
  *seq = get32(b + 4);
  if (get64(b + 8) != sid)
    return "message of another stream";
  if (get32(b + 16) != len)
    return "length differs from the header";
  if ((fnv1a(b + MH, len - MH) ^ *seq) != get32(b + 20))
    return "checksum mismatch";
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Server side: scripted handler                                       */
/* ------------------------------------------------------------------ */

#define M_BIDI "/stress.Model/Bidi"
#define M_SSTREAM "/stress.Model/ServerStream"
#define M_CSTREAM "/stress.Model/ClientStream"
#define M_UNARY "/stress.Model/Unary"
#define M_MISSING "/stress.Model/Missing"

/* Status message of the 'F' script: non-ASCII and '%' exercise the
 * grpc-message encoding; the client expects it byte for byte. */
static void fail_message(char *buf, size_t n, int code, uint64_t sid) {
  snprintf(buf, n, "scripted failure %d for %" PRIx64 ": 100%% \xc3\xbc", code,
           sid);
}

typedef struct {
  char kind;
  long a, b;
  uint64_t sid;
} script;

typedef struct {
  uint32_t recv, sent;
  int eof;
} hstate;

static int parse_script(tri_stream *s, script *sp) {
  const tri_metadata *md = tri_stream_headers(s, 0);
  const char *v, *id;
  char buf[64];
  size_t n;

  memset(sp, 0, sizeof(*sp));
  v = tri_metadata_find(md, "x-script", &n);
  id = tri_metadata_find(md, "x-sid", NULL);
  if (v == NULL || id == NULL || n == 0 || n >= sizeof(buf))
    return -1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  sp->kind = buf[0];
  if (sscanf(buf + 1, "%ld %ld", &sp->a, &sp->b) < 0) {
    sp->a = 0;
    sp->b = 0;
  }
  sp->sid = strtoull(id, NULL, 16);
  return 0;
}

static void add_trailers(tri_stream *s, const hstate *h, int fin) {
  char v[32];
  snprintf(v, sizeof(v), "%d", fin);
  tri_stream_add_trailer(s, "x-fin", v, strlen(v));
  snprintf(v, sizeof(v), "%u", h->sent);
  tri_stream_add_trailer(s, "x-sent", v, strlen(v));
  snprintf(v, sizeof(v), "%u", h->recv);
  tri_stream_add_trailer(s, "x-recv", v, strlen(v));
  snprintf(v, sizeof(v), "%d", h->eof);
  tri_stream_add_trailer(s, "x-eof", v, strlen(v));
}

static int h_code(int rv) { return rv >= 0 && rv <= 16 ? rv : TRI_UNKNOWN; }

/* Receive and check the next client message.  Returns TRI_OK with *m set
 * (caller frees) or the recv code; TRI_DATA_LOSS after finishing the call
 * on a model violation. */
static int h_recv(tri_stream *s, const script *sp, hstate *h, tri_buf **m) {
  uint32_t seq = 0;
  const char *bad;
  char why[200];
  int rv = tri_stream_recv(s, m);

  if (rv == TRI_EOF)
    h->eof = 1;
  if (rv != TRI_OK)
    return rv;
  bad = msg_check(tri_buf_data(*m), tri_buf_len(*m), sp->sid, &seq);
  if (bad == NULL && seq != h->recv)
    bad = seq < h->recv ? "duplicate or reordered message" : "gap";
  if (bad != NULL) {
    snprintf(why, sizeof(why),
             "model violation at server: message %u: %s (seq %u, len %zu)",
             h->recv, bad, seq, tri_buf_len(*m));
    tri_buf_free(*m);
    *m = NULL;
    tri_stream_finish(s, TRI_DATA_LOSS, why);
    return TRI_DATA_LOSS;
  }
  h->recv++;
  return TRI_OK;
}

/* Wait, without reading, until the stream has ended (cancel, deadline,
 * server shutdown): tri_stream_send_headers() returns the final status
 * then.  Bounded to 10 minutes. */
static int h_hold(tri_stream *s) {
  for (int i = 0; i < 120000; i++) {
    int rv = tri_stream_send_headers(s);
    if (rv != TRI_OK)
      return h_code(rv);
    tu_sleep_ms(5);
  }
  return TRI_ABORTED;
}

static int model_handler(tri_stream *s, void *ud) {
  script sp;
  hstate h = {0, 0, 0};
  tri_buf *m = NULL;
  uint8_t *out;
  int rv;
  long i;

  (void)ud;
  if (parse_script(s, &sp) != 0) {
    tri_stream_finish(s, TRI_INVALID_ARGUMENT, "model: no x-script");
    return TRI_INVALID_ARGUMENT;
  }
  switch (sp.kind) {
  case 'E': /* echo until EOF, then OK */
  case 'N': /* echo a messages (or until EOF), then OK */
    for (i = 0; i < 1000000 && (sp.kind == 'E' || i < sp.a); i++) {
      rv = h_recv(s, &sp, &h, &m);
      if (rv == TRI_EOF)
        break;
      if (rv != TRI_OK)
        return h_code(rv);
      rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
      tri_buf_free(m);
      m = NULL;
      if (rv != TRI_OK)
        return h_code(rv);
      h.sent++;
    }
    add_trailers(s, &h, 0);
    tri_stream_finish(s, TRI_OK, NULL);
    return TRI_OK;
  case 'F': { /* read a messages (or until EOF), finish(b, message) */
    char msg[160];
    for (i = 0; i < sp.a; i++) {
      rv = h_recv(s, &sp, &h, &m);
      if (rv == TRI_EOF)
        break;
      if (rv != TRI_OK)
        return h_code(rv);
      tri_buf_free(m);
      m = NULL;
    }
    add_trailers(s, &h, (int)sp.b);
    fail_message(msg, sizeof(msg), (int)sp.b, sp.sid);
    tri_stream_finish(s, (int)sp.b, msg);
    return (int)sp.b;
  }
  case 'A': /* abort: return a code without reading or finishing */
    return (int)sp.a;
  case 'H': /* never reply: read and drop until the stream ends */
    for (i = 0; i < 1000000; i++) {
      rv = h_recv(s, &sp, &h, &m);
      if (rv != TRI_OK)
        break;
      tri_buf_free(m);
      m = NULL;
    }
    if (rv == TRI_EOF)
      return h_hold(s);
    return h_code(rv);
  case 'K': /* sink: never read, hold until the stream ends */
    return h_hold(s);
  case 'S': /* send a messages of b bytes, then OK; input ignored */
    out = malloc((size_t)(sp.b < MH ? MH : sp.b));
    if (out == NULL)
      return TRI_RESOURCE_EXHAUSTED;
    for (i = 0; i < sp.a; i++) {
      msg_build(out, (size_t)sp.b, sp.sid, (uint32_t)i);
      rv = tri_stream_send(s, out, (size_t)(sp.b < MH ? MH : sp.b));
      if (rv != TRI_OK) {
        free(out);
        return h_code(rv);
      }
      h.sent++;
    }
    free(out);
    add_trailers(s, &h, 0);
    tri_stream_finish(s, TRI_OK, NULL);
    return TRI_OK;
  case 'R': /* slow reader: a ms between messages, OK after EOF */
    for (i = 0; i < 1000000; i++) {
      tu_sleep_ms((int)sp.a);
      rv = h_recv(s, &sp, &h, &m);
      if (rv == TRI_EOF)
        break;
      if (rv != TRI_OK)
        return h_code(rv);
      tri_buf_free(m);
      m = NULL;
    }
    add_trailers(s, &h, 0);
    tri_stream_finish(s, TRI_OK, NULL);
    return TRI_OK;
  default:
    tri_stream_finish(s, TRI_INVALID_ARGUMENT, "model: unknown script");
    return TRI_INVALID_ARGUMENT;
  }
}

typedef struct {
  size_t recv_queue, send_buf, conn_rq; /* 0 = default */
} srv_cfg;

static tri_server *server_start(const srv_cfg *cfg, int port, int *out_port) {
  static const char *methods[] = {M_BIDI, M_SSTREAM, M_CSTREAM, M_UNARY};
  tri_server_opts *o = tri_server_opts_new();
  tri_server *srv = NULL;
  char hp[64];

  if (o == NULL)
    return NULL;
  tri_server_opts_set_max_workers(o, 256);
  tri_server_opts_set_max_handlers_per_conn(o, 256);
  tri_server_opts_set_queue_timeout_ms(o, 10000);
  tri_server_opts_set_max_resets_per_s(o, 0);
  if (cfg->recv_queue)
    tri_server_opts_set_recv_queue(o, cfg->recv_queue);
  if (cfg->send_buf)
    tri_server_opts_set_send_buffer(o, cfg->send_buf);
  if (cfg->conn_rq)
    tri_server_opts_set_conn_recv_queue(o, cfg->conn_rq);
  if (tri_server_new(&srv, o) != TRI_OK)
    goto fail;
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    if (tri_server_register(srv, methods[i], model_handler, NULL) != TRI_OK)
      goto fail;
  snprintf(hp, sizeof(hp), "127.0.0.1:%d", port);
  /* the port of a server just freed may take a moment to be free */
  for (int tries = 0;; tries++) {
    int rv = tri_server_bind(srv, hp);
    if (rv == TRI_OK)
      break;
    if (tries >= 50 || port == 0)
      goto fail;
    tu_sleep_ms(20);
  }
  if (tri_server_start(srv) != TRI_OK)
    goto fail;
  *out_port = tri_server_port(srv);
  tri_server_opts_free(o);
  return srv;
fail:
  tri_server_free(srv);
  tri_server_opts_free(o);
  return NULL;
}

/* --server-child=PORT --server-cfg=RQ,SB,CRQ: serve until stdin closes. */
static int child_main(int port, const srv_cfg *cfg) {
  int got = 0;
  tri_server *srv;
  char c;

  /* No PR_SET_PDEATHSIG: it fires when the forking *thread* exits (the
   * disruptor).  The parent's death closes our stdin instead. */
  signal(SIGPIPE, SIG_IGN);
  srv = server_start(cfg, port, &got);
  if (srv == NULL) {
    printf("0\n");
    fflush(stdout);
    return 1;
  }
  printf("%d\n", got);
  fflush(stdout);
  for (int i = 0; i < 3600; i++) {
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, 1000) > 0 && read(0, &c, 1) <= 0)
      break;
  }
  tri_server_free(srv);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Op log, failures, watchdog                                          */
/* ------------------------------------------------------------------ */

#define LOGN 64

typedef struct {
  int64_t t0, t1;
  char who; /* 'D' driver, 'H' helper */
  char txt[96];
} logent;

enum { SH_BIDI, SH_SSTREAM, SH_CSTREAM, SH_UNARY, SH_MISSING, SH_N };
/* PLAN_RANDOM: random ops.  PLAN_BULK_UP: 8-32 messages of 128-256 KiB to
 * a fast reader, then drain.  PLAN_BULK_DOWN: the server sends 16-40 such
 * messages.  PLAN_LATE_READ: the server sends 0.9-2.4 MiB and finishes OK,
 * the client reads nothing until about its deadline, then drains: the
 * handler has often finished with messages still queued when the deadline
 * passes. */
enum { PLAN_RANDOM, PLAN_BULK_UP, PLAN_BULK_DOWN, PLAN_LATE_READ };
static const char *plan_name[] = {"random", "bulk-up", "bulk-down",
                                  "late-read"};
static const char *shape_name[SH_N] = {"bidi", "server-stream",
                                       "client-stream", "unary",
                                       "unimplemented"};
static const char *shape_method[SH_N] = {M_BIDI, M_SSTREAM, M_CSTREAM,
                                         M_UNARY, M_MISSING};

/* Helper thread actions. */
enum { HA_NONE, HA_CANCEL, HA_FREE, HA_CLOSE };
static const char *ha_name[] = {"none", "cancel", "free", "close_send"};

typedef struct scen scen;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int posted, done, cutoff, quit;
  int action;
  int64_t at;       /* us: not before */
  scen *sc;
  /* results (written under sc->op_mu) */
  int acted, merged, close_rv;
  int64_t t_act0, t_act1;
} helper;

struct scen {
  int round, worker;
  long idx;
  uint64_t sid;
  int shape;
  char script;
  long sa, sb;
  char script_txt[48];
  int deadline_ms;
  int compress;
  int hold_ms;  /* extra progress allowance: HOLD_MS in small-budget rounds */
  int plan;   /* PLAN_*: random ops, or a fixed bulk / late-read sequence */
  size_t mmin, mmax;
  tri_stream *s;
  /* model */
  int64_t t_open0, t_open1;
  uint32_t sent_ok, recv_next, sent_tried;
  uint64_t bytes_sent, echo_due_bytes, bytes_recvd;
  int64_t close_start, close_done;
  int64_t cancel_start, cancel_done;
  int freed;
  int has_obs, obs_code;
  int64_t obs_t;
  char obs_msg[256];
  int eof_seen;
  int64_t recv_after_cancel;
  size_t enospc_len;
  int64_t dl_first; /* first observation of DEADLINE_EXCEEDED (end time) */
  /* failures */
  int nfail;
  char fails[4][420];
  /* helper protocol */
  pthread_mutex_t op_mu;
  atomic_int in_op;
  atomic_int drv_tid;
  helper *h;
  /* op log */
  pthread_mutex_t log_mu;
  logent log[LOGN];
  unsigned nlog;
};

static void log_add(scen *sc, char who, int64_t t0, int64_t t1,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_add(scen *sc, char who, int64_t t0, int64_t t1,
                    const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&sc->log_mu);
  logent *e = &sc->log[sc->nlog++ % LOGN];
  e->t0 = t0;
  e->t1 = t1;
  e->who = who;
  va_start(ap, fmt);
  vsnprintf(e->txt, sizeof(e->txt), fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&sc->log_mu);
}

static void print_scen_locked(scen *sc, FILE *f) {
  fprintf(f,
          "  stream %016" PRIx64 ": seed=%" PRIu64 " round=%d worker=%d "
          "scenario=%ld shape=%s plan=%s script=\"%s\" deadline=%d ms%s\n",
          sc->sid, g_seed, sc->round, sc->worker, sc->idx,
          shape_name[sc->shape], plan_name[sc->plan], sc->script_txt,
          sc->deadline_ms,
          sc->compress ? " gzip" : "");
  fprintf(f, "  model: sent_ok=%u tried=%u recv_next=%u close=%s "
          "cancel=%s freed=%d final=%s \"%s\"\n",
          sc->sent_ok, sc->sent_tried, sc->recv_next,
          sc->close_done ? "yes" : sc->close_start ? "started" : "no",
          sc->cancel_done ? "yes" : "no", sc->freed,
          sc->has_obs ? tri_code_name(sc->obs_code) : "unknown",
          sc->obs_msg);
  pthread_mutex_lock(&sc->log_mu);
  unsigned n = sc->nlog, first = n > LOGN ? n - LOGN : 0;
  if (first)
    fprintf(f, "  op log (last %d of %u ops):\n", LOGN, n);
  else
    fprintf(f, "  op log (%u ops):\n", n);
  /* in order of start time (the helper's entries interleave) */
  unsigned idx[LOGN], m = 0;
  for (unsigned i = first; i < n; i++) {
    unsigned j = m++;
    while (j > 0 && sc->log[idx[j - 1] % LOGN].t0 > sc->log[i % LOGN].t0) {
      idx[j] = idx[j - 1];
      j--;
    }
    idx[j] = i;
  }
  for (unsigned k = 0; k < m; k++) {
    logent *e = &sc->log[idx[k] % LOGN];
    if (e->who == '!')
      fprintf(f, "    ! +%10.3f ms             %s\n", rel_ms(e->t0), e->txt);
    else if (e->t1)
      fprintf(f, "    %c +%10.3f ms (%8.3f ms) %s\n", e->who, rel_ms(e->t0),
              (double)(e->t1 - e->t0) / 1000.0, e->txt);
    else
      fprintf(f, "    %c +%10.3f ms (  blocked ) %s\n", e->who,
              rel_ms(e->t0), e->txt);
  }
  pthread_mutex_unlock(&sc->log_mu);
}

/* Failure categories for the summary. */
enum {
  FC_LATE, FC_EARLY, FC_BADRC, FC_FINAL, FC_ORDER, FC_LOST, FC_TRUNC,
  FC_SENDOK, FC_CANCELRECV, FC_SERVER, FC_BUDGET, FC_JOIN, FC_OTHER, FC_N
};
static const char *fc_name[FC_N] = {
    "call returned after its bound",
    "call returned before its timeout/deadline",
    "return code outside the model",
    "final status wrong or changed",
    "message out of order / duplicate / corrupt",
    "send returned TRI_OK but the message never arrived",
    "status OK but responses missing",
    "send returned TRI_OK after close_send/cancel/end",
    "recv delivered a message after local cancel",
    "server-side model violation",
    "budgets not back to zero",
    "thread did not join",
    "other"};
static atomic_long g_fc[FC_N];
static atomic_int g_printed;
#define MAX_PRINTED 12

static void failf(scen *sc, int cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(scen *sc, int cat, const char *fmt, ...) {
  va_list ap;
  char buf[320];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  atomic_fetch_add(&g_fc[cat], 1);
  log_add(sc, '!', now_us(), 0, "FAIL: %.84s", buf);
  if (sc->nfail < 4)
    snprintf(sc->fails[sc->nfail], sizeof(sc->fails[0]), "[%s] %s",
             fc_name[cat], buf);
  sc->nfail++;
}

static void round_fail(int round, int cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void round_fail(int round, int cat, const char *fmt, ...) {
  va_list ap;
  atomic_fetch_add(&g_fc[cat], 1);
  atomic_fetch_add(&g_round_fail, 1);
  pthread_mutex_lock(&g_print_mu);
  printf("stress_model: FAIL seed=%" PRIu64 " round=%d: ", g_seed, round);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  pthread_mutex_unlock(&g_print_mu);
}

/* Watchdog: one slot per thread that makes library calls. */
typedef struct {
  int active;
  int64_t t0, hard;
  char what[160];
  scen *sc;
} wdslot;

#define WD_SLOTS (2 * MAX_THREADS + 4)
static wdslot g_wd[WD_SLOTS];
static pthread_mutex_t g_wd_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_wd_stop;

static void wd_enter(int slot, int64_t hard, scen *sc, const char *what) {
  pthread_mutex_lock(&g_wd_mu);
  g_wd[slot].active = 1;
  g_wd[slot].t0 = now_us();
  g_wd[slot].hard = hard;
  g_wd[slot].sc = sc;
  snprintf(g_wd[slot].what, sizeof(g_wd[slot].what), "%s", what);
  pthread_mutex_unlock(&g_wd_mu);
}

static void wd_leave(int slot) {
  pthread_mutex_lock(&g_wd_mu);
  g_wd[slot].active = 0;
  pthread_mutex_unlock(&g_wd_mu);
}

static void *watchdog_main(void *arg) {
  (void)arg;
  for (long i = 0; i < 100000000L && !atomic_load(&g_wd_stop); i++) {
    int64_t now = now_us();
    pthread_mutex_lock(&g_wd_mu);
    for (int k = 0; k < WD_SLOTS; k++) {
      wdslot *w = &g_wd[k];
      if (!w->active || now <= w->hard)
        continue;
      pthread_mutex_lock(&g_print_mu);
      printf("stress_model: FAIL seed=%" PRIu64 ": STUCK: %s blocked for "
             "%.0f ms, %.0f ms past its bound (+ %d ms grace) (slot %d)\n",
             g_seed, w->what, (double)(now - w->t0) / 1000.0,
             (double)(now - w->hard) / 1000.0 + GRACE_MS, GRACE_MS, k);
      if (w->sc)
        printf("stress_model: replay: --seed=%" PRIu64 " --replay=%d.%d.%ld\n",
               g_seed, w->sc->round, w->sc->worker, w->sc->idx);
      if (w->sc)
        print_scen_locked(w->sc, stdout);
      printf("stress_model: other calls in flight:\n");
      for (int j = 0; j < WD_SLOTS; j++)
        if (g_wd[j].active && j != k)
          printf("  slot %d: %s for %.0f ms (stream %016" PRIx64 ")\n", j,
                 g_wd[j].what, (double)(now - g_wd[j].t0) / 1000.0,
                 g_wd[j].sc ? g_wd[j].sc->sid : 0);
      printf("stress_model: op sequences are reproducible with "
             "--seed=%" PRIu64 "; thread interleavings are not\n", g_seed);
      for (int c = 0; c < FC_N; c++)
        if (atomic_load(&g_fc[c]))
          printf("stress_model: %6ld x %s\n", atomic_load(&g_fc[c]),
                 fc_name[c]);
      printf("stress_model: %6d x call stuck (watchdog)\n", 1);
      printf("stress_model: %ld passed, %ld failed\n",
             atomic_load(&g_pass), atomic_load(&g_fail) + 1);
      fflush(stdout);
      _exit(1);
    }
    pthread_mutex_unlock(&g_wd_mu);
    tu_sleep_ms(50);
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Disruptions (per round)                                             */
/* ------------------------------------------------------------------ */

/* Intervals during which the server was being shut down, killed or was
 * down; a stream whose life overlaps one may end UNAVAILABLE/CANCELLED. */
#define MAX_DISRUPT 8
static struct {
  int64_t start, end; /* end = NONE while down */
} g_dis[MAX_DISRUPT];
static int g_ndis;
static pthread_mutex_t g_dis_mu = PTHREAD_MUTEX_INITIALIZER;
/* Connection teardown after a restart (300 ms), plus the channel's
 * connection backoff: attempts that failed while the server was down put
 * the channel in TRANSIENT_FAILURE, where calls fail fast until the next
 * attempt, at most BACKOFF_MAX_MS (+20 % jitter) later (doc/PROTOCOL.md
 * 17.4). */
#define BACKOFF_INITIAL_MS 100
#define BACKOFF_MAX_MS 200
#define DIS_MARGIN_US (300000 + BACKOFF_MAX_MS * 1200)

static int disrupted(int64_t from, int64_t to) {
  int hit = 0;
  pthread_mutex_lock(&g_dis_mu);
  for (int i = 0; i < g_ndis; i++) {
    int64_t e = g_dis[i].end == NONE ? NONE : g_dis[i].end + DIS_MARGIN_US;
    if (g_dis[i].start <= to && e >= from)
      hit = 1;
  }
  pthread_mutex_unlock(&g_dis_mu);
  return hit;
}

enum { D_SHUTDOWN, D_FREE, D_KILL };
static const char *dname[] = {"graceful shutdown", "abrupt free",
                              "SIGKILL of the server process"};

typedef struct {
  int idx;
  uint64_t seed_round;
  int forked;
  srv_cfg scfg;
  size_t ch_send_buf, ch_recv_queue, ch_conn_rq;
  int ndis;
  struct {
    int at_ms, kind, drain_ms, down_ms;
  } dis[3];
  int64_t t_start, t_end;
  /* live */
  tri_server *srv;
  pid_t child;
  int ctl_fd;
  int port;
  tri_channel *ch;
  atomic_int stop;
} round_t;

static pid_t child_spawn(const srv_cfg *cfg, int port, int *out_port,
                         int *ctl_fd) {
  int inp[2], outp[2];
  char a1[48], a2[96];
  char *argv[4];
  pid_t pid;

  if (pipe2(inp, O_CLOEXEC) != 0)
    return -1;
  if (pipe2(outp, O_CLOEXEC) != 0) {
    close(inp[0]);
    close(inp[1]);
    return -1;
  }
  snprintf(a1, sizeof(a1), "--server-child=%d", port);
  snprintf(a2, sizeof(a2), "--server-cfg=%zu,%zu,%zu", cfg->recv_queue,
           cfg->send_buf, cfg->conn_rq);
  argv[0] = (char *)"stress_model-server";
  argv[1] = a1;
  argv[2] = a2;
  argv[3] = NULL;
  pid = fork();
  if (pid == 0) {
    dup2(inp[0], 0);
    dup2(outp[1], 1);
    execv(g_self, argv);
    _exit(127);
  }
  close(inp[0]);
  close(outp[1]);
  if (pid < 0) {
    close(inp[1]);
    close(outp[0]);
    return -1;
  }
  char line[32];
  size_t n = 0;
  int64_t until = now_us() + 10000000;
  while (n < sizeof(line) - 1 && now_us() < until) {
    struct pollfd p = {outp[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t r = read(outp[0], line + n, 1);
    if (r <= 0 || line[n] == '\n')
      break;
    n++;
  }
  line[n] = '\0';
  close(outp[0]);
  *out_port = atoi(line);
  *ctl_fd = inp[1];
  if (*out_port <= 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(inp[1]);
    return -1;
  }
  return pid;
}

static void child_stop(round_t *rd, int sig) {
  if (rd->child <= 0)
    return;
  if (sig)
    kill(rd->child, sig);
  close(rd->ctl_fd); /* EOF on its stdin: frees the server and exits */
  rd->ctl_fd = -1;
  int st;
  for (int i = 0; i < 1000; i++) {
    if (waitpid(rd->child, &st, WNOHANG) == rd->child) {
      rd->child = -1;
      return;
    }
    tu_sleep_ms(10);
  }
  kill(rd->child, SIGKILL);
  waitpid(rd->child, &st, 0);
  rd->child = -1;
}

static int server_up(round_t *rd, int port) {
  int got = 0;
  if (rd->forked) {
    rd->child = child_spawn(&rd->scfg, port, &got, &rd->ctl_fd);
    if (rd->child < 0)
      return -1;
  } else {
    rd->srv = server_start(&rd->scfg, port, &got);
    if (rd->srv == NULL)
      return -1;
  }
  rd->port = got;
  return 0;
}

#define SLOT_DISRUPT (2 * MAX_THREADS)
#define SLOT_MAIN (2 * MAX_THREADS + 1)

static void *disruptor_main(void *arg) {
  round_t *rd = arg;
  for (int i = 0; i < rd->ndis; i++) {
    int64_t at = rd->t_start + (int64_t)rd->dis[i].at_ms * 1000;
    while (now_us() < at && !atomic_load(&rd->stop))
      tu_sleep_ms(5);
    if (atomic_load(&rd->stop))
      break;
    pthread_mutex_lock(&g_dis_mu);
    int k = g_ndis < MAX_DISRUPT ? g_ndis++ : MAX_DISRUPT - 1;
    g_dis[k].start = now_us();
    g_dis[k].end = NONE;
    pthread_mutex_unlock(&g_dis_mu);
    int kind = rd->forked ? D_KILL : rd->dis[i].kind;
    atomic_fetch_add(&g_disruptions, 1);
    pthread_mutex_lock(&g_print_mu);
    printf("stress_model: round %d +%.0f ms: %s (drain %d ms), down %d ms\n",
           rd->idx, (double)(now_us() - rd->t_start) / 1000.0, dname[kind],
           kind == D_SHUTDOWN ? rd->dis[i].drain_ms : 0,
           rd->dis[i].down_ms);
    pthread_mutex_unlock(&g_print_mu);
    wd_enter(SLOT_DISRUPT,
             now_us() + (int64_t)(rd->dis[i].drain_ms + PROMPT_MS) * 1000,
             NULL, dname[kind]);
    if (kind == D_KILL) {
      child_stop(rd, SIGKILL);
    } else {
      if (kind == D_SHUTDOWN)
        tri_server_shutdown(rd->srv, rd->dis[i].drain_ms);
      tri_server_free(rd->srv);
      rd->srv = NULL;
    }
    wd_leave(SLOT_DISRUPT);
    tu_sleep_ms(rd->dis[i].down_ms);
    int rv = -1;
    if (!atomic_load(&rd->stop)) {
      wd_enter(SLOT_DISRUPT, now_us() + 15000000, NULL, "server restart");
      rv = server_up(rd, rd->port);
      wd_leave(SLOT_DISRUPT);
    }
    pthread_mutex_lock(&g_dis_mu);
    g_dis[k].end = rv == 0 ? now_us() : NONE;
    pthread_mutex_unlock(&g_dis_mu);
    if (rv != 0) {
      if (!atomic_load(&rd->stop))
        printf("stress_model: round %d: server restart on port %d failed; "
               "the server stays down\n", rd->idx, rd->port);
      break;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Helper thread: cancel / free / close_send while the driver blocks   */
/* ------------------------------------------------------------------ */

static char thread_state(int tid) {
  char path[64], buf[512];
  const char *p;
  FILE *f;
  size_t n;

  snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
  f = fopen(path, "re");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return 0;
  return p[2];
}

typedef struct {
  int idx;
  round_t *rd;
  pthread_t t, ht;
  helper h;
  scen sc;
  uint8_t *buf;   /* send buffer */
  uint8_t *rbuf;  /* recv_into buffer */
  long nscen;
} worker;

static void *helper_main(void *arg) {
  worker *w = arg;
  helper *h = &w->h;
  for (;;) {
    pthread_mutex_lock(&h->mu);
    while (!h->posted && !h->quit)
      pthread_cond_wait(&h->cv, &h->mu);
    if (h->quit) {
      pthread_mutex_unlock(&h->mu);
      return NULL;
    }
    h->posted = 0;
    pthread_mutex_unlock(&h->mu);

    scen *sc = h->sc;
    /* Wait for the planned time, then until the driver sleeps inside a
     * call on the stream (3 polls in a row), at most 1 s more. */
    int seen = 0, cut = 0;
    int64_t give_up = h->at + 1000000;
    for (int i = 0; i < 100000; i++) {
      pthread_mutex_lock(&h->mu);
      cut = h->cutoff;
      pthread_mutex_unlock(&h->mu);
      if (cut)
        break;
      int64_t now = now_us();
      if (now >= h->at) {
        if (atomic_load(&sc->in_op) &&
            thread_state(atomic_load(&sc->drv_tid)) == 'S')
          seen++;
        else
          seen = 0;
        if (seen >= 3 || now > give_up)
          break;
      }
      tu_sleep_ms(1);
    }
    pthread_mutex_lock(&sc->op_mu);
    if (!cut && atomic_load(&sc->in_op)) {
      wd_enter(MAX_THREADS + w->idx,
               now_us() + (int64_t)(NONBLOCK_MS + GRACE_MS) * 1000, sc,
               ha_name[h->action]);
      h->t_act0 = now_us();
      switch (h->action) {
      case HA_CANCEL:
        tri_stream_cancel(sc->s);
        break;
      case HA_FREE:
        tri_stream_free(sc->s);
        break;
      case HA_CLOSE:
        h->close_rv = tri_stream_close_send(sc->s);
        break;
      }
      h->t_act1 = now_us();
      h->acted = 1;
      atomic_fetch_add(&g_helper_acted[h->action], 1);
      wd_leave(MAX_THREADS + w->idx);
      log_add(sc, 'H', h->t_act0, h->t_act1, "%s (from the helper thread)",
              ha_name[h->action]);
    } else {
      atomic_fetch_add(&g_helper_skipped, 1);
      log_add(sc, 'H', now_us(), now_us(), "%s skipped (driver not in a call)",
              ha_name[h->action]);
    }
    pthread_mutex_unlock(&sc->op_mu);
    pthread_mutex_lock(&h->mu);
    h->done = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
  }
}

static void helper_post(worker *w, int action, int64_t at) {
  helper *h = &w->h;
  pthread_mutex_lock(&h->mu);
  h->action = action;
  h->at = at;
  h->sc = &w->sc;
  h->acted = 0;
  h->merged = 0;
  h->close_rv = TRI_OK;
  h->done = 0;
  h->cutoff = 0;
  h->posted = 1;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  w->sc.h = h;
}

/* The driver is done with its blocking op(s): stop the helper if it has
 * not acted yet and wait until it is idle. */
static void helper_finish(worker *w) {
  helper *h = &w->h;
  int64_t until = now_us() + (int64_t)(2000 + PROMPT_MS) * 1000;
  pthread_mutex_lock(&h->mu);
  h->cutoff = 1;
  while (!h->done && now_us() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
  }
  int done = h->done;
  pthread_mutex_unlock(&h->mu);
  if (!done) {
    pthread_mutex_lock(&g_print_mu);
    printf("stress_model: FAIL seed=%" PRIu64 ": helper thread stuck in "
           "%s\n", g_seed, ha_name[h->action]);
    print_scen_locked(&w->sc, stdout);
    fflush(stdout);
    _exit(1);
  }
  w->sc.h = NULL;
}

/* ------------------------------------------------------------------ */
/* Calls: bounds, timing, merge of the helper's action                 */
/* ------------------------------------------------------------------ */

typedef struct {
  int64_t t0, t1;
  int64_t bound;      /* static bound (absolute us) or NONE */
  const char *bwhy;
  int64_t hb;         /* bound from the helper's cancel/free, or NONE */
  int64_t hclose;     /* the helper's close_send during this call, or 0 */
} opc;

enum { K_SEND, K_RECV, K_STATUS };

static int okable(const scen *sc);

/* How long a call of |kind| may block for lack of progress, in ms, or -1
 * if nothing guarantees it returns (it then needs a timeout, a deadline or
 * a cancel from another thread). */
static int64_t progress_ms_(const scen *sc, int kind, size_t len);

static int64_t progress_ms(const scen *sc, int kind, size_t len) {
  int64_t p = progress_ms_(sc, kind, len);
  return p > NONBLOCK_MS ? p + sc->hold_ms : p;
}

static int64_t progress_ms_(const scen *sc, int kind, size_t len) {
  int closed = sc->close_done != 0;
  uint64_t unread_echo =
      sc->echo_due_bytes > sc->bytes_recvd ? sc->echo_due_bytes - sc->bytes_recvd
                                           : 0;
  if (sc->has_obs || sc->cancel_done)
    return NONBLOCK_MS;
  switch (kind) {
  case K_RECV:
    if (sc->enospc_len)
      return NONBLOCK_MS;
    switch (sc->script) {
    case 'E':
      return sc->recv_next < sc->sent_ok || closed ? PROMPT_MS : -1;
    case 'N':
      return sc->recv_next < sc->sent_ok || sc->sent_ok >= sc->sa || closed
                 ? PROMPT_MS
                 : -1;
    case 'F':
      return sc->sent_ok >= sc->sa || closed ? PROMPT_MS : -1;
    case 'A':
    case 'S':
    case 'U':
      return PROMPT_MS;
    case 'R':
      return closed ? PROMPT_MS + sc->sa * (int64_t)(sc->sent_ok + 1) : -1;
    default:
      return -1;
    }
  case K_SEND:
    if (closed)
      return NONBLOCK_MS;
    switch (sc->script) {
    case 'H':
    case 'F':
    case 'A':
    case 'U':
      return PROMPT_MS;
    case 'E':
      return unread_echo + len <= SAFE_BYTES ? PROMPT_MS : -1;
    case 'N':
      return sc->sent_ok >= sc->sa || unread_echo + len <= SAFE_BYTES
                 ? PROMPT_MS
                 : -1;
    case 'S':
      return sc->bytes_sent + len <= SAFE_BYTES ? PROMPT_MS : -1;
    case 'R':
      return PROMPT_MS + sc->sa * (int64_t)(sc->sent_ok + 1);
    case 'K':
      return sc->bytes_sent + len <= SAFE_BYTES ? PROMPT_MS : -1;
    default:
      return -1;
    }
  case K_STATUS:
    switch (sc->script) {
    case 'A':
    case 'U':
      return PROMPT_MS;
    case 'F':
      return sc->sent_ok >= sc->sa || closed ? PROMPT_MS : -1;
    case 'E':
      return closed && unread_echo <= SAFE_BYTES ? PROMPT_MS : -1;
    case 'N':
      return (sc->sent_ok >= sc->sa || closed) && unread_echo <= SAFE_BYTES
                 ? PROMPT_MS
                 : -1;
    case 'S':
      return (uint64_t)(sc->sa > sc->recv_next ? sc->sa - sc->recv_next : 0) *
                         (uint64_t)sc->sb <=
                     SAFE_BYTES
                 ? PROMPT_MS
                 : -1;
    case 'R':
      return closed ? PROMPT_MS + sc->sa * (int64_t)(sc->sent_ok + 1) : -1;
    default:
      return -1;
    }
  }
  return -1;
}

static int64_t static_bound(const scen *sc, int kind, size_t len, int tmo,
                            const char **why) {
  int64_t t0 = now_us(), b = NONE, p;
  *why = "none";
  if (tmo >= 0) {
    b = t0 + (int64_t)(tmo + TMO_SLACK_MS) * 1000;
    *why = "own timeout + 500 ms";
  }
  if (sc->deadline_ms > 0) {
    int64_t d = max64(t0 + (int64_t)NONBLOCK_MS * 1000,
                      sc->t_open1 + (int64_t)(sc->deadline_ms + DL_SLACK_MS) *
                                        1000);
    if (d < b) {
      b = d;
      *why = "deadline + 500 ms";
    }
  }
  p = progress_ms(sc, kind, len);
  if (p >= 0 && t0 + p * 1000 < b) {
    b = t0 + p * 1000;
    *why = p == NONBLOCK_MS ? "stream ended or closed: no wait"
           : sc->hold_ms    ? "progress is guaranteed (+ hold allowance)"
                            : "progress is guaranteed";
  }
  return b;
}

static void op_begin(worker *w, opc *o, int64_t bound, const char *why,
                     const char *what) {
  scen *sc = &w->sc;
  int64_t hard = bound;
  helper *h = sc->h;
  o->bound = bound;
  o->bwhy = why;
  o->hb = NONE;
  o->hclose = 0;
  if (h != NULL && h->action != HA_CLOSE)
    hard = min64(hard, max64(h->at, now_us()) + 1000000 +
                           (int64_t)WAKE_MS * 1000);
  if (hard == NONE)
    hard = now_us() + 120000000LL;
  char wdesc[160];
  snprintf(wdesc, sizeof(wdesc), "%s (bound: %s%s)", what, why,
           h != NULL ? ", or the helper's action + 200 ms" : "");
  wd_enter(w->idx, hard + (int64_t)GRACE_MS * 1000, sc, wdesc);
  pthread_mutex_lock(&sc->op_mu);
  atomic_store(&sc->in_op, 1);
  pthread_mutex_unlock(&sc->op_mu);
  o->t0 = now_us();
}

static void op_end(worker *w, opc *o) {
  scen *sc = &w->sc;
  o->t1 = now_us();
  pthread_mutex_lock(&sc->op_mu);
  atomic_store(&sc->in_op, 0);
  helper *h = sc->h;
  if (h != NULL && h->acted && !h->merged) {
    h->merged = 1;
    switch (h->action) {
    case HA_FREE:
      sc->freed = 1;
      /* fall through */
    case HA_CANCEL:
      if (!sc->cancel_start) {
        sc->cancel_start = h->t_act0;
        sc->cancel_done = h->t_act1;
      }
      o->hb = max64(o->t0, h->t_act1) + (int64_t)WAKE_MS * 1000;
      break;
    case HA_CLOSE:
      if (!sc->close_start) {
        sc->close_start = h->t_act0;
        sc->close_done = h->t_act1;
      }
      o->hclose = h->t_act1;
      if (h->close_rv != TRI_OK)
        failf(sc, FC_BADRC, "close_send (helper thread) returned %s",
              tri_code_name(h->close_rv));
      break;
    }
  }
  pthread_mutex_unlock(&sc->op_mu);
  wd_leave(w->idx);
  atomic_fetch_add(&g_ops, 1);
  long long d = o->t1 - o->t0, cur = atomic_load(&g_round_max_us);
  while (d > cur && !atomic_compare_exchange_weak(&g_round_max_us, &cur, d))
    ;
}

static double dur_ms(const opc *o) { return (double)(o->t1 - o->t0) / 1000.0; }

static void check_time(scen *sc, const opc *o, const char *what) {
  int64_t b = min64(o->bound, o->hb);
  if (b == NONE || o->t1 <= b)
    return;
  failf(sc, FC_LATE, "%s took %.1f ms; its bound was %.1f ms after start (%s)",
        what, dur_ms(o), (double)(b - o->t0) / 1000.0,
        o->hb <= o->bound ? "cancel/free from another thread + 200 ms"
                          : o->bwhy);
}

static void check_timeout(scen *sc, const opc *o, int tmo, const char *what) {
  if (tmo < 0) {
    failf(sc, FC_BADRC, "%s without a timeout returned TRI_ETIMEDOUT", what);
    return;
  }
  if (o->t1 - o->t0 < (int64_t)tmo * 1000 - EARLY_US)
    failf(sc, FC_EARLY, "%s returned TRI_ETIMEDOUT after %.3f ms, timeout %d ms",
          what, dur_ms(o), tmo);
  if (o->t1 - o->t0 > (int64_t)(tmo + TMO_SLACK_MS) * 1000)
    failf(sc, FC_LATE, "%s returned TRI_ETIMEDOUT after %.1f ms, timeout %d ms",
          what, dur_ms(o), tmo);
}

/* A final status reported by a call (TRI_EOF from recv counts as OK). */
static void note_final(scen *sc, int code, const char *msg, int64_t t,
                       const char *what) {
  if (code == TRI_DEADLINE_EXCEEDED) {
    if (sc->deadline_ms <= 0)
      failf(sc, FC_FINAL, "%s reported DEADLINE_EXCEEDED on a call without "
            "a deadline", what);
    else if (t < sc->t_open0 + (int64_t)sc->deadline_ms * 1000 - EARLY_US)
      failf(sc, FC_EARLY, "%s reported DEADLINE_EXCEEDED %.3f ms after open, "
            "before the %d ms deadline", what, (double)(t - sc->t_open0) / 1000.0,
            sc->deadline_ms);
    if (!sc->dl_first || t < sc->dl_first)
      sc->dl_first = t;
  }
  if (!sc->has_obs) {
    sc->has_obs = 1;
    sc->obs_code = code;
    sc->obs_t = t;
    sc->obs_msg[0] = '\0';
    if (msg)
      snprintf(sc->obs_msg, sizeof(sc->obs_msg), "%s", msg);
    return;
  }
  if (code != sc->obs_code)
    failf(sc, FC_FINAL, "%s reported %s, but the stream had already reported "
          "final status %s \"%s\"", what, tri_code_name(code),
          tri_code_name(sc->obs_code), sc->obs_msg);
  else if (msg && sc->obs_msg[0] && strcmp(msg, sc->obs_msg) != 0)
    failf(sc, FC_FINAL, "%s: status message changed from \"%s\" to \"%s\"",
          what, sc->obs_msg, msg);
  else if (msg && !sc->obs_msg[0])
    snprintf(sc->obs_msg, sizeof(sc->obs_msg), "%s", msg);
}

/* After a call reported the final status: wait_status(0) must give the
 * same code at once. */
static void confirm_final(worker *w, int code, const char *what) {
  scen *sc = &w->sc;
  opc o;
  const char *m = NULL;
  if (sc->freed)
    return;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000,
           "stream ended: no wait", "wait_status(0)");
  int st = tri_stream_wait_status(sc->s, 0, sc->h ? NULL : &m);
  op_end(w, &o);
  log_add(sc, 'D', o.t0, o.t1, "wait_status(0) -> %s \"%.40s\"",
          tri_code_name(st), m ? m : "");
  check_time(sc, &o, "wait_status(0)");
  if (st != code)
    failf(sc, FC_FINAL, "%s reported %s, wait_status(0) right after gave %s",
          what, tri_code_name(code), tri_code_name(st));
  else
    note_final(sc, st, m, o.t1, "wait_status(0)");
}

static int is_final_code(int rv) { return rv >= 1 && rv <= 16; }

/* ------------------------------------------------------------------ */
/* Client operations                                                   */
/* ------------------------------------------------------------------ */

static int do_send(worker *w, size_t len, unsigned flags, int tmo, int plain) {
  scen *sc = &w->sc;
  uint32_t seq = sc->sent_ok;
  const char *why;
  opc o;
  int rv;

  if (len < MH)
    len = MH;
  if (len > MAX_MSG)
    len = MAX_MSG;
  msg_build(w->buf, len, sc->sid, seq);
  int64_t b = static_bound(sc, K_SEND, len, -1, &why);
  if (b == NONE && tmo >= 0) {
    /* the timeout bounds it (the library queues all or nothing) */
    b = now_us() + (int64_t)(tmo + TMO_SLACK_MS) * 1000;
    why = "own timeout + 500 ms";
  }
  char desc[64];
  snprintf(desc, sizeof(desc), "%s seq=%u len=%zu tmo=%d",
           plain ? "send" : "send_ex", seq, len, tmo);
  op_begin(w, &o, b, why, desc);
  if (plain)
    rv = tri_stream_send(sc->s, w->buf, len);
  else
    rv = tri_stream_send_ex(sc->s, w->buf, len, flags, tmo);
  op_end(w, &o);
  if (plain)
    log_add(sc, 'D', o.t0, o.t1, "send seq=%u len=%zu -> %s", seq, len,
            tri_code_name(rv));
  else
    log_add(sc, 'D', o.t0, o.t1, "send_ex seq=%u len=%zu flags=%s%s tmo=%d -> %s",
            seq, len, flags & TRI_SEND_LAST ? "LAST" : "",
            flags & TRI_SEND_NO_COMPRESS ? "NOCOMP" : flags ? "" : "0", tmo,
            tri_code_name(rv));
  if (seq + 1 > sc->sent_tried)
    sc->sent_tried = seq + 1;
  if (rv == TRI_ETIMEDOUT) {
    check_timeout(sc, &o, tmo, "send_ex");
    return rv;
  }
  check_time(sc, &o, plain ? "send" : "send_ex");
  if (rv == TRI_OK) {
    if (sc->close_done && sc->close_done <= o.t0)
      failf(sc, FC_SENDOK, "send seq=%u returned TRI_OK although close_send "
            "returned %.3f ms before the send started", seq,
            (double)(o.t0 - sc->close_done) / 1000.0);
    else if (sc->cancel_done && sc->cancel_done <= o.t0)
      failf(sc, FC_SENDOK, "send seq=%u returned TRI_OK after the stream was "
            "cancelled", seq);
    else if (sc->has_obs && sc->obs_t <= o.t0)
      failf(sc, FC_SENDOK, "send seq=%u returned TRI_OK after the stream had "
            "reported final status %s", seq, tri_code_name(sc->obs_code));
    if (o.hclose)
      log_add(sc, 'D', o.t1, o.t1, "note: this send was blocked while "
              "close_send ran on another thread");
    sc->sent_ok++;
    sc->bytes_sent += len;
    if (sc->script == 'E' || (sc->script == 'N' && seq < (uint32_t)sc->sa))
      sc->echo_due_bytes += len;
    if ((flags & TRI_SEND_LAST) && !plain && !sc->close_start) {
      sc->close_start = o.t0;
      sc->close_done = o.t1;
    }
    return rv;
  }
  if (rv == TRI_EOF) {
    if (sc->close_start && sc->close_start <= o.t1)
      return rv; /* half-closed: TRI_EOF */
    note_final(sc, TRI_OK, NULL, o.t1, "send (TRI_EOF)");
    confirm_final(w, TRI_OK, "send (TRI_EOF)");
    return rv;
  }
  if (is_final_code(rv)) {
    note_final(sc, rv, NULL, o.t1, "send");
    confirm_final(w, rv, "send");
    return rv;
  }
  failf(sc, FC_BADRC, "send seq=%u returned %s", seq, tri_code_name(rv));
  return rv;
}

/* mode 0: tri_stream_recv, 1: recv_ex, 2: recv_into */
static int do_recv(worker *w, int mode, size_t cap, int tmo) {
  scen *sc = &w->sc;
  static const char *names[] = {"recv", "recv_ex", "recv_into"};
  const char *why;
  tri_buf *m = NULL;
  size_t len = 0;
  opc o;
  int rv;

  if (mode == 0)
    tmo = -1;
  int64_t b = static_bound(sc, K_RECV, 0, tmo, &why);
  char desc[64];
  snprintf(desc, sizeof(desc), "%s cap=%zu tmo=%d", names[mode], cap, tmo);
  op_begin(w, &o, b, why, desc);
  if (mode == 0)
    rv = tri_stream_recv(sc->s, &m);
  else if (mode == 1)
    rv = tri_stream_recv_ex(sc->s, &m, tmo);
  else
    rv = tri_stream_recv_into(sc->s, w->rbuf, cap, &len, tmo);
  op_end(w, &o);
  if (o.hclose && o.hb == NONE) {
    /* close_send from the helper: the script now ends by itself */
    int64_t p = progress_ms(sc, K_RECV, 0);
    if (p >= 0)
      o.hb = max64(o.t0, o.hclose) + p * 1000;
  }
  const uint8_t *data = mode == 2 ? w->rbuf : m ? tri_buf_data(m) : NULL;
  size_t n = mode == 2 ? len : m ? tri_buf_len(m) : 0;
  uint32_t seq = 0;
  const char *bad = NULL;
  if (rv == TRI_OK)
    bad = msg_check(data, n, sc->sid, &seq);
  if (mode == 2)
    log_add(sc, 'D', o.t0, o.t1, "recv_into cap=%zu tmo=%d -> %s len=%zu seq=%d",
            cap, tmo, tri_code_name(rv), len, rv == TRI_OK ? (int)seq : -1);
  else
    log_add(sc, 'D', o.t0, o.t1, "%s tmo=%d -> %s len=%zu seq=%d", names[mode],
            tmo, tri_code_name(rv), n, rv == TRI_OK ? (int)seq : -1);
  if (rv == TRI_ETIMEDOUT) {
    check_timeout(sc, &o, tmo, names[mode]);
    return rv;
  }
  check_time(sc, &o, names[mode]);
  switch (rv) {
  case TRI_OK:
    if (sc->enospc_len && n != sc->enospc_len)
      failf(sc, FC_ORDER, "after TRI_ENOSPC (len %zu) the next message has "
            "length %zu", sc->enospc_len, n);
    sc->enospc_len = 0;
    if (bad)
      failf(sc, FC_ORDER, "received message %u: %s (len %zu)", sc->recv_next,
            bad, n);
    else if (seq != sc->recv_next)
      failf(sc, FC_ORDER, "received seq %u, expected %u (%s)", seq,
            sc->recv_next, seq < sc->recv_next ? "duplicate" : "gap");
    else {
      sc->recv_next++;
      sc->bytes_recvd += n;
      if ((sc->script == 'E' || sc->script == 'N') && seq >= sc->sent_ok)
        failf(sc, FC_ORDER, "echo of seq %u, but only %u sends returned "
              "TRI_OK", seq, sc->sent_ok);
      if (sc->script == 'S' && seq >= (uint32_t)sc->sa)
        failf(sc, FC_ORDER, "seq %u, but the handler sends only %ld", seq,
              sc->sa);
    }
    if (sc->eof_seen)
      failf(sc, FC_ORDER, "message received after TRI_EOF");
    if (sc->cancel_done && sc->cancel_done <= o.t0 && !sc->recv_after_cancel)
      sc->recv_after_cancel = o.t1;
    tri_buf_free(m);
    return rv;
  case TRI_EOF:
    sc->eof_seen = 1;
    note_final(sc, TRI_OK, NULL, o.t1, names[mode]);
    confirm_final(w, TRI_OK, "recv (TRI_EOF)");
    return rv;
  case TRI_ENOSPC:
    if (mode != 2)
      failf(sc, FC_BADRC, "%s returned TRI_ENOSPC", names[mode]);
    else if (len <= cap || len < MH)
      failf(sc, FC_BADRC, "recv_into: TRI_ENOSPC with len %zu, cap %zu", len,
            cap);
    else if (sc->enospc_len && sc->enospc_len != len)
      failf(sc, FC_ORDER, "recv_into: TRI_ENOSPC len %zu, earlier %zu", len,
            sc->enospc_len);
    sc->enospc_len = len;
    return rv;
  default:
    if (is_final_code(rv)) {
      note_final(sc, rv, NULL, o.t1, names[mode]);
      confirm_final(w, rv, names[mode]);
    } else {
      failf(sc, FC_BADRC, "%s returned %s", names[mode], tri_code_name(rv));
    }
    return rv;
  }
}

static void do_close(worker *w) {
  scen *sc = &w->sc;
  opc o;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000, "Blocking: no",
           "close_send");
  int rv = tri_stream_close_send(sc->s);
  op_end(w, &o);
  log_add(sc, 'D', o.t0, o.t1, "close_send -> %s", tri_code_name(rv));
  check_time(sc, &o, "close_send");
  if (!sc->close_start) {
    sc->close_start = o.t0;
    sc->close_done = o.t1;
  }
  if (rv != TRI_OK)
    failf(sc, FC_BADRC, "close_send returned %s", tri_code_name(rv));
}

static void do_cancel(worker *w) {
  scen *sc = &w->sc;
  opc o;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000, "Blocking: no",
           "cancel");
  tri_stream_cancel(sc->s);
  op_end(w, &o);
  log_add(sc, 'D', o.t0, o.t1, "cancel");
  check_time(sc, &o, "cancel");
  if (!sc->cancel_start) {
    sc->cancel_start = o.t0;
    sc->cancel_done = o.t1;
  }
}

static int do_wait_status(worker *w, int tmo) {
  scen *sc = &w->sc;
  const char *why, *m = NULL;
  opc o;
  int64_t b = static_bound(sc, K_STATUS, 0, tmo, &why);
  char desc[64];
  snprintf(desc, sizeof(desc), "wait_status tmo=%d", tmo);
  op_begin(w, &o, b, why, desc);
  int rv = tri_stream_wait_status(sc->s, tmo, sc->h ? NULL : &m);
  op_end(w, &o);
  if (o.hclose && o.hb == NONE) {
    int64_t p = progress_ms(sc, K_STATUS, 0);
    if (p >= 0)
      o.hb = max64(o.t0, o.hclose) + p * 1000;
  }
  log_add(sc, 'D', o.t0, o.t1, "wait_status tmo=%d -> %s \"%.40s\"", tmo,
          tri_code_name(rv), m && !sc->freed ? m : "");
  if (rv == TRI_ETIMEDOUT) {
    check_timeout(sc, &o, tmo, "wait_status");
    if (sc->has_obs && sc->obs_t <= o.t0)
      failf(sc, FC_FINAL, "wait_status timed out after the stream had "
            "reported %s", tri_code_name(sc->obs_code));
    return rv;
  }
  check_time(sc, &o, "wait_status");
  if (rv == TRI_OK || is_final_code(rv))
    note_final(sc, rv, sc->freed ? NULL : m, o.t1, "wait_status");
  else
    failf(sc, FC_BADRC, "wait_status returned %s", tri_code_name(rv));
  return rv;
}

static void do_headers(worker *w, int tmo) {
  scen *sc = &w->sc;
  opc o;
  int ended = sc->has_obs;
  int64_t b = now_us() + (int64_t)((ended ? 0 : tmo) + TMO_SLACK_MS) * 1000;
  op_begin(w, &o, b, ended ? "stream ended: no wait" : "own timeout + 500 ms",
           "headers");
  const tri_metadata *md = tri_stream_headers(sc->s, tmo);
  op_end(w, &o);
  log_add(sc, 'D', o.t0, o.t1, "headers tmo=%d -> %s", tmo,
          md ? "list" : "NULL");
  check_time(sc, &o, "headers");
  if (md == NULL) {
    if (o.t1 - o.t0 < (int64_t)tmo * 1000 - EARLY_US)
      failf(sc, FC_EARLY, "headers returned NULL after %.3f ms, timeout %d ms",
            dur_ms(&o), tmo);
    if (ended)
      failf(sc, FC_BADRC, "headers returned NULL after the stream ended");
  }
}

static void do_sleep(worker *w, int ms) {
  int64_t t0 = now_us();
  tu_sleep_ms(ms);
  log_add(&w->sc, 'D', t0, now_us(), "(sleep %d ms)", ms);
}

/* ------------------------------------------------------------------ */
/* Final checks                                                        */
/* ------------------------------------------------------------------ */

static int okable(const scen *sc) {
  switch (sc->script) {
  case 'E':
  case 'R':
    return sc->close_start != 0;
  case 'N':
    return sc->sent_tried >= (uint32_t)sc->sa || sc->close_start != 0;
  case 'S':
    return 1;
  default:
    return 0;
  }
}

static long md_long(const tri_metadata *md, const char *key) {
  const char *v = md ? tri_metadata_find(md, key, NULL) : NULL;
  return v ? strtol(v, NULL, 10) : -1;
}

static void check_final(worker *w) {
  scen *sc = &w->sc;
  if (!sc->has_obs) {
    if (sc->recv_after_cancel)
      log_add(sc, 'D', now_us(), now_us(), "note: final status never read");
    return;
  }
  int code = sc->obs_code, ok = 0;
  int dis = disrupted(sc->t_open0, sc->obs_t);
  int expect_code = sc->script == 'F' ? (int)sc->sb
                    : sc->script == 'A' ? (int)sc->sa
                    : sc->script == 'U' ? TRI_UNIMPLEMENTED
                                        : -100;
  const tri_metadata *trl = sc->freed ? NULL : tri_stream_trailers(sc->s);
  long x_fin = md_long(trl, "x-fin"), x_sent = md_long(trl, "x-sent"),
       x_recv = md_long(trl, "x-recv"), x_eof = md_long(trl, "x-eof");

  if (code == TRI_OK) {
    ok = okable(sc);
    if (ok && !sc->freed) {
      if (x_fin != 0)
        failf(sc, FC_FINAL, "final status OK but the handler did not finish "
              "OK (trailer x-fin=%ld)", x_fin);
      if (sc->eof_seen && x_sent != (long)sc->recv_next)
        failf(sc, FC_TRUNC, "final status OK and recv reached TRI_EOF after "
              "%u messages, but the handler sent %ld", sc->recv_next, x_sent);
    }
  } else if (code == expect_code) {
    ok = 1;
    if (sc->script == 'F' && sc->obs_msg[0] != '\0') {
      char want[160];
      fail_message(want, sizeof(want), code, sc->sid);
      if (strcmp(want, sc->obs_msg) != 0)
        failf(sc, FC_FINAL, "status message \"%s\", the handler sent \"%s\"",
              sc->obs_msg, want);
    }
  } else if (code == TRI_CANCELLED) {
    ok = sc->cancel_start != 0 || dis;
  } else if (code == TRI_DEADLINE_EXCEEDED) {
    ok = sc->deadline_ms > 0;
  } else if (code == TRI_UNAVAILABLE) {
    ok = dis;
  } else if (code == TRI_DATA_LOSS &&
             strncmp(sc->obs_msg, "model violation", 15) == 0) {
    failf(sc, FC_SERVER, "%s", sc->obs_msg);
    ok = 1;
  }
  if (!ok)
    failf(sc, FC_FINAL, "final status %s \"%s\" is not allowed here (script "
          "%s, cancelled=%d, deadline=%d ms, close_send=%d, server "
          "disrupted=%d)", tri_code_name(code), sc->obs_msg, sc->script_txt,
          sc->cancel_start != 0, sc->deadline_ms, sc->close_start != 0, dis);
  if (x_eof == 1 && x_recv != (long)sc->sent_ok)
    failf(sc, x_recv < (long)sc->sent_ok ? FC_LOST : FC_ORDER,
          "the handler saw end of input after %ld messages, but %u sends "
          "returned TRI_OK", x_recv, sc->sent_ok);
  if (sc->recv_after_cancel && code == TRI_CANCELLED)
    failf(sc, FC_CANCELRECV, "recv returned a message %.3f ms after cancel "
          "returned, and the stream ended CANCELLED",
          (double)(sc->recv_after_cancel - sc->cancel_done) / 1000.0);
}

/* wait_status twice: same code, same message. */
static void final_status_twice(worker *w) {
  scen *sc = &w->sc;
  const char *why;
  /* Nothing ends the stream (never-reply script, no deadline, no
   * cancel): only a short timed wait. */
  int tmo = static_bound(sc, K_STATUS, 0, -1, &why) == NONE ? 20 : -1;
  int a = do_wait_status(w, tmo);
  if (sc->freed || a == TRI_ETIMEDOUT)
    return;
  char first[256];
  snprintf(first, sizeof(first), "%s", sc->obs_msg);
  const char *m = NULL;
  opc o;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000,
           "stream ended: no wait", "wait_status (again)");
  int b = tri_stream_wait_status(sc->s, -1, &m);
  op_end(w, &o);
  log_add(sc, 'D', o.t0, o.t1, "wait_status again -> %s \"%.40s\"",
          tri_code_name(b), m ? m : "");
  check_time(sc, &o, "wait_status (again)");
  if (b != a || strcmp(m ? m : "", first) != 0)
    failf(sc, FC_FINAL, "wait_status twice: %s \"%s\" then %s \"%s\"",
          tri_code_name(a), first, tri_code_name(b), m ? m : "");
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

static const int fail_codes[] = {2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16};

static void pick_script(scen *sc, rng *r) {
  uint32_t p = below(r, 100);
  int fc = fail_codes[below(r, sizeof(fail_codes) / sizeof(fail_codes[0]))];
  long n1 = 1 + below(r, 8), k = below(r, 4);
  long ssize = chance(r, 80) ? MH + below(r, 200) : 1024 + below(r, 64 * 1024);
  long sn = below(r, 30);
  long delay = 1 + below(r, 15);
  switch (sc->shape) {
  case SH_BIDI:
    if (p < 26) sc->script = 'E';
    else if (p < 38) { sc->script = 'N'; sc->sa = n1; }
    else if (p < 46) { sc->script = 'F'; sc->sa = k; sc->sb = fc; }
    else if (p < 51) { sc->script = 'A'; sc->sa = fc; }
    else if (p < 63) sc->script = 'H';
    else if (p < 71) { sc->script = 'S'; sc->sa = sn; sc->sb = ssize; }
    else if (p < 88) { sc->script = 'R'; sc->sa = delay; }
    else sc->script = 'K';
    break;
  case SH_SSTREAM:
    if (p < 55) { sc->script = 'S'; sc->sa = sn; sc->sb = ssize; }
    else if (p < 70) { sc->script = 'F'; sc->sa = 1; sc->sb = fc; }
    else if (p < 80) { sc->script = 'A'; sc->sa = fc; }
    else if (p < 90) sc->script = 'H';
    else { sc->script = 'N'; sc->sa = 1; }
    break;
  case SH_CSTREAM:
    if (p < 45) { sc->script = 'R'; sc->sa = delay; }
    else if (p < 60) { sc->script = 'F'; sc->sa = 1 + k; sc->sb = fc; }
    else if (p < 70) { sc->script = 'A'; sc->sa = fc; }
    else if (p < 80) sc->script = 'K';
    else sc->script = 'E';
    break;
  case SH_UNARY:
    if (p < 55) { sc->script = 'N'; sc->sa = 1; }
    else if (p < 67) { sc->script = 'F'; sc->sa = 1; sc->sb = fc; }
    else if (p < 77) { sc->script = 'A'; sc->sa = fc; }
    else if (p < 85) sc->script = 'H';
    else { sc->script = 'S'; sc->sa = below(r, 3); sc->sb = ssize; }
    break;
  default:
    sc->script = 'U';
  }
  switch (sc->script) {
  case 'N': case 'R': case 'A':
    snprintf(sc->script_txt, sizeof(sc->script_txt), "%c %ld", sc->script,
             sc->sa);
    break;
  case 'F': case 'S':
    snprintf(sc->script_txt, sizeof(sc->script_txt), "%c %ld %ld", sc->script,
             sc->sa, sc->sb);
    break;
  default:
    snprintf(sc->script_txt, sizeof(sc->script_txt), "%c", sc->script);
  }
}

static size_t pick_size(const scen *sc, uint32_t v) {
  return sc->mmin + v % (sc->mmax - sc->mmin + 1);
}

static tri_call_opts *make_opts(scen *sc) {
  tri_call_opts *co = tri_call_opts_new();
  char sid[24];
  if (co == NULL)
    return NULL;
  snprintf(sid, sizeof(sid), "%" PRIx64, sc->sid);
  tri_call_opts_add_metadata(co, "x-script", sc->script_txt,
                             strlen(sc->script_txt));
  tri_call_opts_add_metadata(co, "x-sid", sid, strlen(sid));
  if (sc->deadline_ms > 0)
    tri_call_opts_set_timeout_ms(co, sc->deadline_ms);
  if (sc->compress &&
      tri_call_opts_set_compression(co, "gzip") != TRI_OK)
    sc->compress = 0;
  return co;
}

static void scen_init(worker *w, long k, rng *r) {
  scen *sc = &w->sc;
  memset(sc, 0, sizeof(*sc));
  pthread_mutex_init(&sc->op_mu, NULL);
  pthread_mutex_init(&sc->log_mu, NULL);
  atomic_store(&sc->drv_tid, (int)syscall(SYS_gettid));
  sc->round = w->rd->idx;
  sc->worker = w->idx;
  sc->idx = k;
  sc->hold_ms = w->rd->scfg.conn_rq || w->rd->ch_conn_rq ? HOLD_MS : 0;
  sc->sid = ((uint64_t)(w->rd->idx & 0xffff) << 48) |
            ((uint64_t)w->idx << 40) | (uint64_t)k;
  uint32_t p = below(r, 100);
  sc->shape = p < 55 ? SH_BIDI : p < 70 ? SH_SSTREAM : p < 80 ? SH_CSTREAM
              : p < 96 ? SH_UNARY : SH_MISSING;
  pick_script(sc, r);
  if (chance(r, 30) || (sc->shape == SH_UNARY && sc->script == 'H'))
    sc->deadline_ms = 15 + (int)below(r, 600);
  sc->compress = chance(r, 10);
  p = below(r, 1000);
  if (sc->shape == SH_BIDI && p < 15) {
    sc->plan = PLAN_BULK_UP;
    sc->script = 'R';
    sc->sa = 0;
    sc->deadline_ms = 0;
    snprintf(sc->script_txt, sizeof(sc->script_txt), "R 0");
  } else if (sc->shape == SH_BIDI && p < 30) {
    sc->plan = PLAN_BULK_DOWN;
    sc->script = 'S';
    sc->sa = 16 + below(r, 25);
    sc->sb = 128 * 1024 + below(r, 128 * 1024);
    sc->deadline_ms = 0;
  } else if (sc->shape == SH_SSTREAM && p < 250) {
    /* Mostly just over what the client's receive queue and the HTTP/2
     * stream window (1 MiB here) take while nobody reads, so that the
     * handler finishes with the rest still in its send buffer; else
     * 0.9-2.4 MiB. */
    size_t rq = w->rd->ch_recv_queue ? w->rd->ch_recv_queue : 1024 * 1024;
    size_t total = chance(r, 70) ? rq + 1024 * 1024 + 4096 + below(r, 200 * 1024)
                                 : 900 * 1024 + below(r, 1500 * 1024);
    sc->plan = PLAN_LATE_READ;
    sc->script = 'S';
    sc->sa = 24 + below(r, 40);
    sc->sb = (long)total / sc->sa;
    sc->deadline_ms = 40 + (int)below(r, 200);
  }
  if (sc->script == 'S')
    snprintf(sc->script_txt, sizeof(sc->script_txt), "S %ld %ld", sc->sa,
             sc->sb);
  p = below(r, 100);
  if (p < 65) {
    sc->mmin = MH;
    sc->mmax = 256;
  } else if (p < 92) {
    sc->mmin = 1024;
    sc->mmax = 16 * 1024;
  } else {
    sc->mmin = 32 * 1024;
    sc->mmax = 256 * 1024;
  }
}

static void scen_done(worker *w) {
  scen *sc = &w->sc;
  if (sc->has_obs)
    atomic_fetch_add(&g_final_seen[sc->obs_code >= 0 && sc->obs_code <= 16
                                       ? sc->obs_code
                                       : 17],
                     1);
  if (sc->nfail == 0) {
    atomic_fetch_add(&g_pass, 1);
  } else {
    atomic_fetch_add(&g_fail, 1);
    pthread_mutex_lock(&g_print_mu);
    int n = atomic_fetch_add(&g_printed, 1);
    printf("stress_model: FAIL seed=%" PRIu64 " round=%d worker=%d "
           "scenario=%ld stream=%016" PRIx64 " (replay: --seed=%" PRIu64
           " --replay=%d.%d.%ld):\n", g_seed, sc->round, sc->worker, sc->idx,
           sc->sid, g_seed, sc->round, sc->worker, sc->idx);
    for (int i = 0; i < sc->nfail && i < 4; i++)
      printf("  - %s\n", sc->fails[i]);
    if (n < MAX_PRINTED)
      print_scen_locked(sc, stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g_print_mu);
  }
  pthread_mutex_destroy(&sc->op_mu);
  pthread_mutex_destroy(&sc->log_mu);
}

static void do_free(worker *w) {
  scen *sc = &w->sc;
  opc o;
  if (sc->freed)
    return;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000, "Blocking: no",
           "free");
  tri_stream_free(sc->s);
  op_end(w, &o);
  sc->freed = 2;
  log_add(sc, 'D', o.t0, o.t1, "free");
  check_time(sc, &o, "free");
}

/* A blocking op that the helper interrupts with |action|. */
static void blocked_with_helper(worker *w, int action, int delay_ms,
                                uint32_t v) {
  scen *sc = &w->sc;
  char k = sc->script;
  int idle_echo = (k == 'E' && sc->recv_next >= sc->sent_ok) ||
                  (k == 'N' && sc->recv_next >= sc->sent_ok &&
                   sc->sent_ok < (uint32_t)sc->sa) ||
                  (k == 'F' && sc->sent_ok < (uint32_t)sc->sa);
  int what; /* 0 recv, 1 fill sends, 2 wait_status */
  if (sc->close_start || sc->cancel_start || sc->has_obs)
    return;
  if (k == 'H' || k == 'K') {
    if (action == HA_CLOSE)
      action = HA_CANCEL; /* would not wake a recv there */
    what = k == 'K' && v % 2 == 0 ? 1 : v % 3 == 1 ? 2 : 0;
  } else if (k == 'R') {
    what = action == HA_CLOSE ? 1 : 0;
  } else if (idle_echo) {
    what = 0;
  } else {
    return;
  }
  log_add(sc, 'D', now_us(), now_us(), "plan: helper %s in %d ms while %s",
          ha_name[action], delay_ms,
          what == 0 ? "blocked in recv" : what == 1 ? "blocked in send"
                                                    : "blocked in wait_status");
  helper_post(w, action, now_us() + (int64_t)delay_ms * 1000);
  if (what == 0) {
    do_recv(w, v % 4 == 0 ? 2 : v % 4 == 1 ? 1 : 0, MAX_MSG, -1);
  } else if (what == 2) {
    do_wait_status(w, -1);
  } else {
    size_t lo = k == 'R' ? 8 * 1024 : 64 * 1024;
    size_t hi = k == 'R' ? 64 * 1024 : 256 * 1024;
    for (int i = 0; i < 60 && !sc->freed; i++) {
      size_t len = lo + (size_t)((v >> 4) + (uint32_t)i * 7919u) % (hi - lo);
      int rv = do_send(w, len, 0, -1, i % 2);
      if (rv != TRI_OK)
        break;
    }
  }
  helper_finish(w);
}

static void run_stream_scenario(worker *w, rng *r) {
  scen *sc = &w->sc;
  tri_call_opts *co = make_opts(sc);
  opc o;
  int rv, used_helper = 0;

  if (co == NULL)
    return;
  op_begin(w, &o, now_us() + (int64_t)NONBLOCK_MS * 1000, "Blocking: no",
           "open");
  sc->t_open0 = o.t0;
  rv = tri_stream_open(w->rd->ch, shape_method[sc->shape], co, &sc->s);
  op_end(w, &o);
  sc->t_open1 = o.t1;
  tri_call_opts_free(co);
  log_add(sc, 'D', o.t0, o.t1, "open %s deadline=%d -> %s",
          shape_method[sc->shape], sc->deadline_ms, tri_code_name(rv));
  check_time(sc, &o, "open");
  if (rv != TRI_OK) {
    failf(sc, FC_BADRC, "tri_stream_open returned %s", tri_code_name(rv));
    return;
  }
  if (sc->shape == SH_SSTREAM)
    do_send(w, pick_size(sc, rnd(r)), TRI_SEND_LAST, -1, 0);

  int nsteps = 1 + (int)below(r, 24);
  if (sc->plan != PLAN_RANDOM) {
    nsteps = 0;
    if (sc->plan == PLAN_BULK_UP) {
      int n = 8 + (int)below(r, 25);
      for (int i = 0; i < n && !sc->has_obs; i++)
        if (do_send(w, 128 * 1024 + below(r, 128 * 1024), 0, -1, 0) !=
            TRI_OK)
          break;
    } else if (sc->plan == PLAN_LATE_READ) {
      do_sleep(w, sc->deadline_ms - 10 + (int)below(r, 20));
    }
  }
  for (int step = 0; step < nsteps && !sc->freed && !atomic_load(&g_fatal) &&
                     now_us() - sc->t_open0 < (int64_t)SCEN_CAP_MS * 1000;
       step++) {
    uint32_t r1 = rnd(r) % 100, r2 = rnd(r), r3 = rnd(r), r4 = rnd(r);
    int op;
    /* op: 0 send 1 recv 2 close 3 cancel 4 status 5 headers 6 sleep
     *     7 blocked-with-helper */
    if (sc->shape == SH_SSTREAM)
      op = r1 < 5 ? 0 : r1 < 70 ? 1 : r1 < 73 ? 3 : r1 < 80 ? 4 : r1 < 84 ? 5
           : r1 < 90 ? 6 : 7;
    else if (sc->shape == SH_CSTREAM)
      op = r1 < 55 ? 0 : r1 < 65 ? 1 : r1 < 75 ? 2 : r1 < 77 ? 3 : r1 < 82 ? 4
           : r1 < 85 ? 5 : r1 < 90 ? 6 : 7;
    else
      op = r1 < 35 ? 0 : r1 < 65 ? 1 : r1 < 70 ? 2 : r1 < 72 ? 3 : r1 < 78 ? 4
           : r1 < 81 ? 5 : r1 < 87 ? 6 : 7;
    switch (op) {
    case 0: { /* send */
      size_t len = pick_size(sc, r2);
      unsigned flags = (r3 % 10 == 0 ? TRI_SEND_LAST : 0) |
                       (r3 % 7 == 0 ? TRI_SEND_NO_COMPRESS : 0);
      const char *why;
      int tmo = -1, plain = 0;
      int bounded = static_bound(sc, K_SEND, len, -1, &why) != NONE;
      if (r4 % 3 == 2 || !bounded)
        tmo = (int)((r4 >> 8) % 60);
      else if (r4 % 3 == 0 && flags == 0)
        plain = 1;
      do_send(w, len, flags, tmo, plain);
      break;
    }
    case 1: { /* recv */
      int mode = (int)(r2 % 3);
      size_t cap = r3 % 4 == 0 ? (size_t)(r4 % 64) : MAX_MSG;
      int tmo = (int)(r4 % 80);
      const char *why;
      int bounded = static_bound(sc, K_RECV, 0, -1, &why) != NONE;
      if (mode == 0 && !bounded)
        mode = 1;
      if (bounded && (r4 >> 8) % 3 == 0)
        tmo = -1;
      do_recv(w, mode, cap, tmo);
      break;
    }
    case 2:
      do_close(w);
      break;
    case 3:
      do_cancel(w);
      break;
    case 4: {
      const char *why;
      int bounded = static_bound(sc, K_STATUS, 0, -1, &why) != NONE;
      do_wait_status(w, bounded && r2 % 3 == 0 ? -1 : (int)(r3 % 40));
      break;
    }
    case 5:
      do_headers(w, (int)(r2 % 40));
      break;
    case 6:
      do_sleep(w, (int)(r2 % 15));
      break;
    case 7:
      if (!used_helper) {
        int action = r2 % 10 < 4 ? HA_CANCEL : r2 % 10 < 8 ? HA_FREE : HA_CLOSE;
        used_helper = 1;
        blocked_with_helper(w, action, 5 + (int)(r3 % 150), r4);
      }
      break;
    }
  }

  /* End of the scenario. */
  uint32_t e1 = rnd(r) % 100, e2 = rnd(r);
  if (!sc->freed && !atomic_load(&g_fatal)) {
    const char *why;
    int ends_itself = sc->script != 'H' && sc->script != 'K';
    if (sc->plan != PLAN_RANDOM)
      e1 = 0;
    if (e1 < 45 && (ends_itself || sc->deadline_ms > 0 || sc->has_obs ||
                    sc->cancel_done)) {
      /* drain: half-close, read to the end, status twice */
      if (!sc->close_start && !sc->has_obs)
        do_close(w);
      for (int i = 0; i < 100000 && !sc->freed; i++) {
        int bounded = static_bound(sc, K_RECV, 0, -1, &why) != NONE;
        int mode = (int)((e2 + (uint32_t)i) % 3);
        if (!bounded && mode == 0)
          mode = 1;
        rv = do_recv(w, mode, MAX_MSG, bounded ? -1 : PROMPT_MS);
        if (rv == TRI_ETIMEDOUT)
          break; /* nothing guarantees progress here (H, K without a
                    deadline are never drained): give up, free */
        if (rv != TRI_OK)
          break;
      }
      if (!sc->freed)
        final_status_twice(w);
    } else if (e1 < 65) {
      do_cancel(w);
      do_recv(w, (int)(e2 % 3), MAX_MSG, -1);
      final_status_twice(w);
    } else if (e1 < 85 || used_helper) {
      /* free with whatever is unread, without reading the status */
    } else {
      blocked_with_helper(w, HA_FREE, 5 + (int)(e2 % 100), e2 >> 8);
      if (!sc->freed)
        final_status_twice(w);
    }
  }
  check_final(w);
  do_free(w);
}

static void run_unary_scenario(worker *w, rng *r) {
  scen *sc = &w->sc;
  tri_call_opts *co = make_opts(sc);
  tri_stream *so = NULL;
  tri_buf *resp = NULL;
  int want_stream = chance(r, 50);
  size_t len = pick_size(sc, rnd(r));
  opc o;
  int rv;

  if (co == NULL)
    return;
  if (len > 64 * 1024)
    len = 64 * 1024;
  msg_build(w->buf, len, sc->sid, 0);
  int64_t b = sc->deadline_ms > 0
                  ? now_us() + (int64_t)(sc->deadline_ms + DL_SLACK_MS) * 1000
                  : now_us() + (int64_t)(PROMPT_MS + sc->hold_ms) * 1000;
  op_begin(w, &o, b, sc->deadline_ms > 0 ? "deadline + 500 ms"
                                         : "progress is guaranteed",
           "unary_call");
  sc->t_open0 = sc->t_open1 = o.t0;
  rv = tri_unary_call(w->rd->ch, M_UNARY, co, w->buf, len, &resp,
                      want_stream ? &so : NULL);
  op_end(w, &o);
  tri_call_opts_free(co);
  sc->s = so;
  log_add(sc, 'D', o.t0, o.t1, "unary_call len=%zu stream_out=%d -> %s", len,
          want_stream, tri_code_name(rv));
  check_time(sc, &o, "unary_call");
  int dis = disrupted(o.t0, o.t1);
  int ok = 0;
  if (rv == TRI_OK) {
    uint32_t seq = 0;
    const char *bad = resp ? msg_check(tri_buf_data(resp), tri_buf_len(resp),
                                       sc->sid, &seq)
                           : "no response";
    ok = (sc->script == 'N') || (sc->script == 'S' && sc->sa == 1);
    if (bad || seq != 0 ||
        tri_buf_len(resp) != (sc->script == 'N' ? len : (size_t)(sc->sb < MH ? MH : sc->sb)))
      failf(sc, FC_ORDER, "unary response: %s (seq %u, len %zu)",
            bad ? bad : "wrong seq or length", seq, resp ? tri_buf_len(resp) : 0);
    sc->recv_next = 1;
  } else if (sc->script == 'F' && rv == sc->sb) {
    ok = 1;
  } else if (sc->script == 'A' && rv == sc->sa) {
    ok = 1;
  } else if (rv == TRI_UNIMPLEMENTED) {
    ok = sc->script == 'S' && sc->sa != 1; /* 5.4: 0 or 2 responses */
  } else if (rv == TRI_DEADLINE_EXCEEDED) {
    ok = sc->deadline_ms > 0;
    if (ok && o.t1 < o.t0 + (int64_t)sc->deadline_ms * 1000 - EARLY_US)
      failf(sc, FC_EARLY, "unary call: DEADLINE_EXCEEDED after %.3f ms, "
            "deadline %d ms", dur_ms(&o), sc->deadline_ms);
  } else if (rv == TRI_CANCELLED || rv == TRI_UNAVAILABLE) {
    ok = dis;
  } else if (rv == TRI_DATA_LOSS && so) {
    const char *m = "";
    tri_stream_wait_status(so, 0, &m);
    failf(sc, FC_SERVER, "%s", m);
    ok = 1;
  }
  if (!ok)
    failf(sc, FC_FINAL, "unary call returned %s (script %s, deadline %d ms, "
          "server disrupted=%d)", tri_code_name(rv), sc->script_txt,
          sc->deadline_ms, dis);
  tri_buf_free(resp);
  if (so != NULL) {
    /* the finished stream: its status, twice, and the trailers */
    final_status_twice(w);
    if (sc->has_obs) {
      if (rv != TRI_UNIMPLEMENTED && rv != sc->obs_code)
        failf(sc, FC_FINAL, "unary call returned %s, its stream's status "
              "is %s", tri_code_name(rv), tri_code_name(sc->obs_code));
      if (sc->obs_code == TRI_OK) {
        const tri_metadata *trl = tri_stream_trailers(so);
        if (md_long(trl, "x-fin") != 0)
          failf(sc, FC_FINAL, "status OK without x-fin=0 from the handler");
      }
      if (sc->script == 'F' && sc->obs_code == sc->sb) {
        char want[160];
        fail_message(want, sizeof(want), (int)sc->sb, sc->sid);
        if (strcmp(want, sc->obs_msg) != 0)
          failf(sc, FC_FINAL, "status message \"%s\", the handler sent \"%s\"",
                sc->obs_msg, want);
      }
    }
    do_free(w);
  }
}

static void *worker_main(void *arg) {
  worker *w = arg;
  round_t *rd = w->rd;
  if (g_replay && w->idx != g_rp_worker)
    return NULL;
  for (long i = 0; i < 1000000 && now_us() < rd->t_end &&
                   !atomic_load(&rd->stop) && !atomic_load(&g_fatal);
       i++) {
    long k = g_replay ? g_rp_scen : i;
    if (g_replay && atomic_load(&g_fail) > 0)
      break; /* reproduced */
    rng r = rng_for((uint64_t)rd->idx, (uint64_t)w->idx, (uint64_t)k, 0);
    scen_init(w, k, &r);
    if (w->sc.shape == SH_UNARY)
      run_unary_scenario(w, &r);
    else
      run_stream_scenario(w, &r);
    scen_done(w);
    w->nscen++;
  }
  if (g_replay)
    atomic_store(&rd->stop, 1); /* the only worker: end the round */
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Rounds                                                              */
/* ------------------------------------------------------------------ */

static int budgets_zero(const tri__budgets *b) {
  return b->streams == 0 && b->conns == 0 && b->rq_bytes == 0 &&
         b->conn_rq_bytes == 0 && b->partial_bytes == 0 &&
         b->ring_bytes == 0 && b->conn_owed == 0 && b->spare_bytes == 0;
}

static void run_round(int idx, int64_t dur_ms) {
  round_t *rd = calloc(1, sizeof(*rd));
  worker *ws = calloc((size_t)g_threads, sizeof(*ws));
  pthread_t dis_t;
  int dis_started = 0;
  rng r = rng_for((uint64_t)idx, 0xfeed, 0, 1);
  static const size_t sbufs[] = {0, 1024, 4096, 65536};

  if (rd == NULL || ws == NULL) {
    free(rd);
    free(ws);
    return;
  }
  rd->idx = idx;
  rd->child = -1;
  rd->ctl_fd = -1;
  rd->forked = chance(&r, STRESS_FORKED_PCT);
  rd->scfg.recv_queue = chance(&r, 40) ? 4096 : 0;
  rd->scfg.send_buf = chance(&r, 30) ? 2048 : 0;
  rd->scfg.conn_rq = chance(&r, STRESS_SMALL_CONNQ_PCT) ? 65536 : 0;
  rd->ch_send_buf = sbufs[below(&r, 4)];
  rd->ch_recv_queue = chance(&r, 30) ? 4096 : 0;
  rd->ch_conn_rq = chance(&r, STRESS_SMALL_CONNQ_PCT) ? 65536 : 0;
  rd->ndis = (int)below(&r, 3);
  for (int i = 0; i < rd->ndis; i++) {
    static const int drains[] = {0, 50, 300};
    static const int downs[] = {0, 100, 400};
    rd->dis[i].at_ms = (int)(dur_ms * (15 + (int)below(&r, 30) + 40 * i) / 100);
    rd->dis[i].kind = (int)below(&r, 2);
    rd->dis[i].drain_ms = drains[below(&r, 3)];
    rd->dis[i].down_ms = downs[below(&r, 3)];
  }
  pthread_mutex_lock(&g_dis_mu);
  g_ndis = 0;
  pthread_mutex_unlock(&g_dis_mu);

  if (server_up(rd, 0) != 0) {
    round_fail(idx, FC_OTHER, "cannot start the server");
    free(rd);
    free(ws);
    return;
  }
  tri_channel_opts *chopts = tri_channel_opts_new();
  tri_channel_opts_set_backoff(chopts, BACKOFF_INITIAL_MS, BACKOFF_MAX_MS);
  if (rd->ch_send_buf)
    tri_channel_opts_set_send_buffer(chopts, rd->ch_send_buf);
  if (rd->ch_recv_queue)
    tri_channel_opts_set_recv_queue(chopts, rd->ch_recv_queue);
  if (rd->ch_conn_rq)
    tri_channel_opts_set_conn_recv_queue(chopts, rd->ch_conn_rq);
  rd->ch = tu_channel_new(rd->port, chopts);
  tri_channel_opts_free(chopts);
  if (rd->ch == NULL) {
    round_fail(idx, FC_OTHER, "cannot create the channel");
    goto out;
  }
  printf("stress_model: round %d: %.1f s, %s server on port %d (recv_queue "
         "%zu, send_buffer %zu, conn_recv_queue %zu), channel send_buffer "
         "%zu recv_queue %zu conn_recv_queue %zu, %d disruption(s)\n",
         idx, (double)dur_ms / 1000.0, rd->forked ? "forked" : "in-process",
         rd->port, rd->scfg.recv_queue, rd->scfg.send_buf, rd->scfg.conn_rq,
         rd->ch_send_buf, rd->ch_recv_queue, rd->ch_conn_rq, rd->ndis);
  fflush(stdout);
  rd->t_start = now_us();
  rd->t_end = rd->t_start + dur_ms * 1000;
  atomic_store(&g_round_max_us, 0);
  for (int i = 0; i < g_threads; i++) {
    worker *w = &ws[i];
    w->idx = i;
    w->rd = rd;
    w->buf = malloc(MAX_MSG);
    w->rbuf = malloc(MAX_MSG);
    pthread_mutex_init(&w->h.mu, NULL);
    pthread_cond_init(&w->h.cv, NULL);
    if (w->buf == NULL || w->rbuf == NULL ||
        tu_thread_start(&w->ht, helper_main, w) != 0 ||
        tu_thread_start(&w->t, worker_main, w) != 0) {
      fprintf(stderr, "stress_model: cannot start threads\n");
      _exit(1);
    }
  }
  if (rd->ndis > 0 && tu_thread_start(&dis_t, disruptor_main, rd) == 0)
    dis_started = 1;
  while (now_us() < rd->t_end && !atomic_load(&g_fatal) &&
         !atomic_load(&rd->stop))
    tu_sleep_ms(20);
  atomic_store(&rd->stop, 1);

  /* Every scenario is bounded: its calls (at most ~25) each return within
   * their bound.  Allow 60 s for the last ones. */
  int64_t join_until = now_us() + 60000000LL * g_slack;
  for (int i = 0; i < g_threads; i++) {
    int64_t left = (join_until - now_us()) / 1000;
    if (tu_thread_join(ws[i].t, left > 0 ? (int)left : 0, NULL) != 0) {
      round_fail(idx, FC_JOIN, "worker %d did not join within 60 s", i);
      pthread_mutex_lock(&g_print_mu);
      print_scen_locked(&ws[i].sc, stdout);
      printf("stress_model: %ld passed, %ld failed\n", atomic_load(&g_pass),
             atomic_load(&g_fail) + 1);
      fflush(stdout);
      _exit(1);
    }
  }
  for (int i = 0; i < g_threads; i++) {
    pthread_mutex_lock(&ws[i].h.mu);
    ws[i].h.quit = 1;
    pthread_cond_broadcast(&ws[i].h.cv);
    pthread_mutex_unlock(&ws[i].h.mu);
    if (tu_thread_join(ws[i].ht, 5000 * g_slack, NULL) != 0) {
      round_fail(idx, FC_JOIN, "helper %d did not join within 5 s", i);
      _exit(1);
    }
  }
  if (dis_started && tu_thread_join(dis_t, 30000 * g_slack, NULL) != 0) {
    round_fail(idx, FC_JOIN, "disruptor did not join within 30 s");
    _exit(1);
  }
  wd_enter(SLOT_MAIN, now_us() + (int64_t)PROMPT_MS * 1000, NULL,
           "tri_channel_free");
  int64_t t0 = now_us();
  tri_channel_free(rd->ch);
  wd_leave(SLOT_MAIN);
  if (now_us() - t0 > (int64_t)PROMPT_MS * 1000)
    round_fail(idx, FC_LATE, "tri_channel_free took %.0f ms",
               (double)(now_us() - t0) / 1000.0);
out:
  wd_enter(SLOT_MAIN, now_us() + (int64_t)(PROMPT_MS + 10000) * 1000, NULL,
           "server free");
  if (rd->forked)
    child_stop(rd, 0);
  else
    tri_server_free(rd->srv);
  rd->srv = NULL;
  wd_leave(SLOT_MAIN);

  /* Budgets back to zero within 2 s. */
  tri__budgets b;
  int64_t until = now_us() + 2000000LL * g_slack;
  for (int i = 0; i < 100000; i++) {
    tri__budgets_get(&b);
    if (budgets_zero(&b) || now_us() > until)
      break;
    tu_sleep_ms(10);
  }
  if (!budgets_zero(&b))
    round_fail(idx, FC_BUDGET,
               "budgets 2 s after the round: streams=%" PRId64 " conns=%" PRId64
               " loops=%" PRId64 " rq_bytes=%" PRId64 " conn_rq_bytes=%" PRId64
               " partial_bytes=%" PRId64 " ring_bytes=%" PRId64
               " conn_owed=%" PRId64 " spare_bytes=%" PRId64, b.streams,
               b.conns, b.loops, b.rq_bytes, b.conn_rq_bytes, b.partial_bytes,
               b.ring_bytes, b.conn_owed, b.spare_bytes);
  long nscen = 0;
  for (int i = 0; i < g_threads; i++) {
    nscen += ws[i].nscen;
    free(ws[i].buf);
    free(ws[i].rbuf);
    pthread_mutex_destroy(&ws[i].h.mu);
    pthread_cond_destroy(&ws[i].h.cv);
  }
  printf("stress_model: round %d done after %.1f s: %ld scenarios, longest "
         "call %.0f ms; %ld passed, %ld failed so far\n", idx,
         (double)(now_us() - rd->t_start) / 1e6, nscen,
         (double)atomic_load(&g_round_max_us) / 1000.0, atomic_load(&g_pass),
         atomic_load(&g_fail));
  fflush(stdout);
  atomic_fetch_add(&g_rounds, 1);
  free(rd);
  free(ws);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: stress_model [--seed=N] [--seconds=S] [--threads=T] "
          "[--slack=X]\n"
          "       stress_model --seed=N --replay=ROUND.WORKER.SCENARIO "
          "[--seconds=S]\n"
          "  --replay runs the op sequence of one scenario (as printed on "
          "failure)\n  again and again until it fails or S seconds pass; "
          "the round's server\n  and channel settings and disruptions are "
          "those of the original run.\n"
          "  TRI_STRESS_SECONDS overrides --seconds (default 60).\n"
          "  --slack multiplies every time bound (valgrind, sanitizers).\n");
}

int main(int argc, char **argv) {
  int have_seed = 0, have_slack = 0;
  const char *env;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--server-child=", 15) == 0) {
      srv_cfg cfg = {0, 0, 0};
      for (int j = 1; j < argc; j++)
        if (strncmp(argv[j], "--server-cfg=", 13) == 0)
          sscanf(argv[j] + 13, "%zu,%zu,%zu", &cfg.recv_queue, &cfg.send_buf,
                 &cfg.conn_rq);
      return child_main(atoi(argv[i] + 15), &cfg);
    }
  }
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--seed=", 7) == 0) {
      g_seed = strtoull(argv[i] + 7, NULL, 10);
      have_seed = 1;
    } else if (strncmp(argv[i], "--seconds=", 10) == 0) {
      g_seconds = atoi(argv[i] + 10);
    } else if (strncmp(argv[i], "--threads=", 10) == 0) {
      g_threads = atoi(argv[i] + 10);
    } else if (strncmp(argv[i], "--replay=", 9) == 0) {
      if (sscanf(argv[i] + 9, "%d.%d.%ld", &g_rp_round, &g_rp_worker,
                 &g_rp_scen) != 3 || g_rp_worker < 0 ||
          g_rp_worker >= MAX_THREADS) {
        usage();
        return 2;
      }
      g_replay = 1;
    } else if (strncmp(argv[i], "--slack=", 8) == 0) {
      g_slack = atoi(argv[i] + 8);
      have_slack = 1;
    } else {
      usage();
      return 2;
    }
  }
  /* The project's knob for scaling time limits (valgrind, sanitizers)
   * also scales ours, unless --slack was given. */
  env = getenv("CK_TIMEOUT_MULTIPLIER");
  if (!have_slack && env != NULL && atoi(env) > 1)
    g_slack = atoi(env);
  if (!have_slack && STRESS_SANITIZED && g_slack < 4)
    g_slack = 4;
  env = getenv("TRI_STRESS_SECONDS");
  if (env != NULL && *env != '\0')
    g_seconds = atoi(env);
  if (g_seconds < 1)
    g_seconds = 1;
  if (g_seconds > 86400)
    g_seconds = 86400;
  if (g_threads < 1)
    g_threads = 1;
  if (g_threads > MAX_THREADS)
    g_threads = MAX_THREADS;
  if (g_slack < 1)
    g_slack = 1;
  if (!have_seed) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g_seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
             ((uint64_t)getpid() << 16);
    g_seed %= 1000000000000ull;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  printf("stress_model: seed=%" PRIu64 " seconds=%d threads=%d slack=%d "
         "(rerun with --seed=%" PRIu64 "; the op sequence of each scenario "
         "is reproducible, the thread interleaving is not)\n",
         g_seed, g_seconds, g_threads, g_slack, g_seed);
  fflush(stdout);

  g_t0 = now_us();
  pthread_t wd;
  if (tu_thread_start(&wd, watchdog_main, NULL) != 0)
    return 1;
  int64_t t_end = g_t0 + (int64_t)g_seconds * 1000000;
  rng r = rng_for(0, 0, 0, 0xd0);
  if (g_replay) {
    /* one scenario of one round, again and again until it fails */
    if (g_threads <= g_rp_worker)
      g_threads = g_rp_worker + 1;
    printf("stress_model: replaying round %d worker %d scenario %ld for up "
           "to %d s\n", g_rp_round, g_rp_worker, g_rp_scen, g_seconds);
    run_round(g_rp_round, (int64_t)g_seconds * 1000);
    t_end = 0;
  }
  for (int round = 0; round < 1000000 && !atomic_load(&g_fatal); round++) {
    int64_t left = (t_end - now_us()) / 1000;
    if (left < 500)
      break;
    int64_t dur = 3000 + below(&r, 9000);
    if (dur > left)
      dur = left;
    if (left - dur < 2000)
      dur = left; /* no tiny last round */
    run_round(round, dur);
  }
  atomic_store(&g_wd_stop, 1);
  tu_thread_join(wd, 5000, NULL);

  double secs = (double)(now_us() - g_t0) / 1e6;
  long ops = atomic_load(&g_ops);
  printf("stress_model: %ld rounds, %ld scenarios, %ld library calls in "
         "%.1f s (%.0f calls/s)\n", atomic_load(&g_rounds),
         atomic_load(&g_pass) + atomic_load(&g_fail), ops, secs,
         (double)ops / (secs > 0 ? secs : 1));
  printf("stress_model: from another thread while blocked: cancel %ld, "
         "free %ld, close_send %ld (%ld not blocked, skipped); %ld server "
         "disruptions\n", atomic_load(&g_helper_acted[HA_CANCEL]),
         atomic_load(&g_helper_acted[HA_FREE]),
         atomic_load(&g_helper_acted[HA_CLOSE]),
         atomic_load(&g_helper_skipped), atomic_load(&g_disruptions));
  printf("stress_model: final statuses seen:");
  for (int i = 0; i < 18; i++)
    if (atomic_load(&g_final_seen[i]))
      printf(" %s=%ld", i < 17 ? tri_code_name(i) + 4 : "other",
             atomic_load(&g_final_seen[i]));
  printf("\n");
  for (int i = 0; i < FC_N; i++)
    if (atomic_load(&g_fc[i]))
      printf("stress_model: %6ld x %s\n", atomic_load(&g_fc[i]), fc_name[i]);
  long failed = atomic_load(&g_fail) + atomic_load(&g_round_fail);
  if (failed)
    printf("stress_model: FAILED with seed=%" PRIu64 "\n", g_seed);
  printf("stress_model: %ld passed, %ld failed\n", atomic_load(&g_pass),
         failed);
  return failed ? 1 : 0;
}
