/*
 * Core objects shared by stream.c (caller side), conn.c (I/O thread),
 * channel.c (client) and server.c (server, worker pool).
 *
 * Threads: caller threads (application, handler workers), one I/O thread
 * per channel or server ("tri-io", owns every nghttp2 session and socket of
 * its loop), the process-wide timer thread ("tri-timer").
 *
 * Lock order (never take a lock to the left while holding one to the
 * right; doc/DESIGN.md explains each):
 *
 *   server.mu -> pool.mu -> stream.mu -> loop.cmd_mu -> (wheel lock)
 *                                        loop.cmd_mu -> (rx.mu)
 *
 * The wheel lock (timer.c), a shared I/O thread's rx.mu (loop.c) and the
 * wakeup fd are leaves.  No lock is held
 * while user code (handlers) runs.  The I/O thread takes stream.mu only for
 * short copies; it never waits on a condition.
 */
#ifndef TRI_CORE_H
#define TRI_CORE_H

#include "tri_int.h"

#include <sys/socket.h>

#include "frame.h"
#include "headers.h"
#include "timer.h"

typedef struct tri__loop tri__loop;

/* Per-connection share of the server's handler threads.  Refcounted: the
 * connection and each of its server streams hold a reference, so a handler
 * still running after its connection closed can give its slot back. */
typedef struct tri__quota {
  int refs;    /* atomic */
  int running; /* handlers running for this connection (pool.mu) */
  int queued;  /* its streams waiting for a worker (pool.mu) */
} tri__quota;

static inline void tri__quota_unref(tri__quota *q) {
  if (q != NULL && __atomic_sub_fetch(&q->refs, 1, __ATOMIC_ACQ_REL) == 0)
    tri__free(q);
}
typedef struct tri__conn tri__conn;
typedef struct tri__pool tri__pool;
typedef struct tri__tls_ctx tri__tls_ctx;

/*
 * Who is at the other end of a connection (lib/peer.c): its address and,
 * for TLS, the identity the handshake proved.  Created by the I/O thread
 * (address at accept/connect, TLS fields when the handshake completes,
 * before any stream can see it), immutable afterwards, refcounted: the
 * connection and each of its streams hold a reference, so a handler can
 * read it until it returns even if the connection is gone.
 */
struct tri_auth {
  char *version;      /* "TLSv1.3" */
  char *cipher;
  char *subject;      /* "" without a peer certificate */
  char *server_name;  /* server: SNI asked for; client: name verified */
  char **sans;        /* "DNS:...", "IP:...", "URI:..." */
  size_t nsans;
};
typedef struct tri__peer {
  int refs;           /* atomic */
  int has_tls;        /* auth is filled in */
  struct tri_auth auth;
  char addr[120];     /* "127.0.0.1:54321", "[::1]:1", "unix:PATH" */
} tri__peer;

/* Stream side. */
enum { TRI__CLIENT = 0, TRI__SERVER = 1 };

/* Pending work for the I/O thread, set under loop.cmd_mu (s->ops). */
enum {
  TRI__OP_OPEN = 1u << 0,    /* client: attach and submit request HEADERS */
  TRI__OP_DATA = 1u << 1,    /* send ring has bytes, or the send side
                                closed: resume the data provider         */
  TRI__OP_END = 1u << 2,     /* final status set locally: s->end_action  */
  TRI__OP_WINDOW = 1u << 3,  /* app consumed: give back stream window    */
  TRI__OP_HEADERS = 1u << 4  /* server: submit response HEADERS          */
};

/* Defaults (README "Limits"). */
#define TRI__SPARES 4 /* received blocks a stream keeps for reuse */
#define TRI__SPARE_MAX ((int64_t)8 * 1024 * 1024) /* ... all streams, bytes */
#define TRI__DEF_MAX_RECV (4u * 1024 * 1024)   /* doc/PROTOCOL.md 3.5 */
#define TRI__DEF_SEND_BUF (256u * 1024)
#define TRI__DEF_RECV_QUEUE (1024u * 1024)
#define TRI__DEF_CONNECT_MS 20000              /* doc/PROTOCOL.md 1.7 */
#define TRI__STREAM_WINDOW (1u * 1024 * 1024)  /* SETTINGS_INITIAL_WINDOW */
#define TRI__BULK_WINDOW (4u * 1024 * 1024)    /* a stream that streams */
#define TRI__BULK_AFTER (2u * 1024 * 1024)     /* ... after this much */
#define TRI__CONN_WINDOW (16u * 1024 * 1024)
#define TRI__MAX_FRAME (256u * 1024)           /* SETTINGS_MAX_FRAME_SIZE */
#define TRI__MAX_HEADER_LIST (32u * 1024)      /* doc/PROTOCOL.md 1.5 */
#define TRI__DEF_CONN_RQ (64u * 1024 * 1024)   /* unread bytes per conn */
#define TRI__DEF_HANDSHAKE_MS 10000
/* How long a server's shutdown waits, after the drain, for sockets to
 * take the final trailers and GOAWAY (all loops together). */
#define TRI__FINAL_FLUSH_MS 1000
extern int tri__final_flush_ms; /* that; tests under valgrind raise it */

/*
 * The stream state machine (doc/DESIGN.md "Stream states").  Everything a
 * caller thread and the I/O thread share about a stream's progress is in
 * these three fields plus the final status, all under s->mu, and changes
 * only through tri__stream_ev_locked().
 */
enum tri__send_state {
  TRI__SEND_OPEN = 0, /* the application may send */
  TRI__SEND_CLOSING,  /* client half-close or server finish asked: no more
                         sends; queued bytes drain, then END_STREAM (client)
                         or trailers (server) */
  TRI__SEND_DONE      /* END_STREAM or trailers handed to nghttp2, or the
                         send side abandoned (reset, connection lost) */
};
enum tri__recv_state {
  TRI__RECV_OPEN = 0,
  TRI__RECV_EOS       /* the peer ended its side (END_STREAM) */
};
enum tri__hdrs_state {
  TRI__HDRS_NONE = 0,
  TRI__HDRS_REQUESTED, /* server: response HEADERS asked of the I/O thread */
  TRI__HDRS_DONE       /* server: submitted; client: response headers
                          published (or the call ended without any) */
};
/* How the I/O thread ends a stream whose final status was set locally. */
enum tri__end_action {
  TRI__END_NONE = 0,  /* nothing to send (peer or connection ended it) */
  TRI__END_RESET,     /* RST_STREAM(CANCEL) */
  TRI__END_STATUS     /* server: trailers carrying the final status */
};
/* Events of tri__stream_ev_locked(). */
enum tri__stream_ev {
  TRI__EV_CLOSE_SEND, /* client: the application half-closes */
  TRI__EV_FINISH,     /* server: the handler (or library) finishes */
  TRI__EV_SEND_DONE,  /* I/O: END_STREAM / trailers submitted, or the send
                         side is abandoned */
  TRI__EV_PEER_EOS,   /* I/O: the peer's END_STREAM arrived */
  TRI__EV_HDRS_REQ,   /* server: response headers wanted */
  TRI__EV_HDRS_DONE,  /* server: headers submitted; client: published */
  TRI__EV_END,        /* the final status (first cause wins) */
  TRI__EV_RETRY       /* client, I/O: the server refused the stream before
                         answering (REFUSED_STREAM, or above a GOAWAY's
                         last-stream-id): send it again, once, from the
                         kept request bytes (doc/PROTOCOL.md 17.6) */
};
/* Request bytes a client stream keeps for a transparent retry; a request
 * longer than this is not retried. */
#define TRI__REPLAY_MAX (64u * 1024)

struct tri_stream {
  int refs;                 /* atomic */
  int side;                 /* TRI__CLIENT / TRI__SERVER, immutable */
  unsigned fork_gen;        /* tri__fork_gen() at creation, immutable */

  tri__mutex mu;            /* protects fields marked (mu) */
  tri__cond rcv_cv;         /* messages, headers, final status */
  tri__cond snd_cv;         /* send ring space, send side closed, final */
  unsigned rcv_seq;         /* atomic: incremented before each broadcast
                               of rcv_cv, watched by a spinning recv
                               (tri__spin_watch) */
  int answer_due;           /* (mu) this side sent since recv last took a
                               message: the next recv waits for an answer
                               a round trip away, and only such a recv
                               spins */

  /* immutable after creation */
  char *method;             /* method_buf, or allocated when longer */
  char method_buf[64];
  int64_t deadline_ns;      /* TRI__NO_DEADLINE if none */
  size_t max_recv;
  const char *max_recv_hint;   /* "this channel's limit"... (static) */
  const char *max_recv_setter; /* the call that raises it (static) */
  size_t rq_limit;          /* unread bytes before the stream window is
                               withheld */
  size_t sb_limit;          /* configured send buffer bound */
  int64_t spin_ns;          /* recv spins this long before parking */
  int hdrs_at_end;          /* server: response headers only at the end
                               (Triple unary, edge.c); set before
                               dispatch, then immutable */
  int enc_out;              /* compression for outgoing messages (server:
                               settable until headers are requested) */

  /* client request (immutable after open) */
  tri_metadata req_md;
  char *group, *version;
  /* Unary calls only (lib/triple.c): the Triple HTTP unary form, NULL for
   * gRPC; |json|: gRPC form with application/grpc+json. */
  struct tri__triple *triple;
  int json;
  int wait_for_ready;       /* wait for READY instead of failing fast */

  /* ---- state machine (mu) ---- */
  int send_state;           /* enum tri__send_state */
  int app_closed;           /* the application closed its send side
                               (CLOSE_SEND or FINISH), as opposed to the
                               stream ending under it */
  int recv_state;           /* enum tri__recv_state */
  int hdrs_state;           /* enum tri__hdrs_state */
  int final;                /* final status set; also read atomically by
                               the I/O thread as a hint */
  int final_code;
  char *final_msg;
  int drop;                 /* final status came with "drop what is
                               queued": recv reports it at once */
  int end_action;           /* enum tri__end_action, with final */
  /* server: the status the trailers carry.  Set by FINISH; replaced by a
   * later error END while the response is still incomplete (so a cut
   * response never ends with OK). */
  int finish_code;
  char *finish_msg;

  /* receive queue (mu) */
  tri__list rq;
  size_t rq_bytes;          /* bytes of complete messages queued */
  size_t partial_bytes;     /* bytes held by the deframer (I/O writes) */
  size_t conn_bytes;        /* queued + partial bytes counted against
                               rq_conn's budget */
  tri__conn *rq_conn;       /* connection whose unread budget those bytes
                               count against; NULL once detached */
  size_t unacked;           /* received bytes whose stream window is owed */
  int window_posted;
  int rcv_waiters;
  tri_metadata hdrs;        /* peer's initial metadata: server: request
                               headers (complete before dispatch); client:
                               published at HDRS_DONE, then immutable */
  tri_metadata trl;         /* client: trailing metadata, published with the
                               final status, then immutable */

  /* send ring (mu) */
  uint8_t *sb;
  size_t sb_cap;            /* ring allocation (> sb_limit while it holds
                               one oversized message) */
  size_t sb_head, sb_len;
  size_t sb_inflight;       /* bytes at the ring's head that nghttp2 has
                               framed and will write (never discarded) */
  int sb_writing;           /* the I/O thread is writing the in-flight
                               bytes with mu released: the ring's block
                               must not move or be freed until it clears */
  size_t snd_need;          /* free bytes the blocked sender waits for */
  /* client: bytes already written, kept until the response begins so a
   * refused stream can be sent again (TRI__EV_RETRY) */
  uint8_t *replay;
  size_t replay_len, replay_cap;
  int replay_off;           /* not retryable (any more) */
  int snd_waiters;
  int io_deferred;          /* the data provider returned DEFERRED */

  /* server response (mu until submitted) */
  tri_metadata out_hdrs;
  tri_metadata out_trl;
  int accept_enc_mask;      /* server: codings the client accepts */

  /* link to the I/O thread (mu): NULL once detached */
  tri__loop *loop;
  unsigned ops;             /* (loop.cmd_mu) pending TRI__OP_* */
  unsigned post_bits;       /* (mu) ops handed over at unlock */
  tri__list op_link;        /* (loop.cmd_mu) in loop->ops */

  tri__timer deadline_timer; /* holds a stream ref while armed */

  /* The connection's peer (ref): server: set before dispatch; client: set
   * once by the I/O thread when the request is submitted (atomic). */
  tri__peer *peer;

  /* ---- I/O thread only ---- */
  unsigned wake_bits;       /* TRI__WAKE_*: broadcasts held until the end
                               of the loop iteration (tri__stream_wake) */
  tri__list wake_link;      /* in the loop's list of held wake-ups */
  tri__conn *conn;
  int32_t id;               /* HTTP/2 stream id, 0 before submit */
  int io_state;             /* attachment: enum in conn.h */
  tri__list io_link;        /* conn->waiting or conn->streams */
  tri__deframer df;
  tri_buf *spare[TRI__SPARES]; /* received messages' blocks the application
                               gave back, for the next ones (atomic slots,
                               any thread; tri__stream_recycle) */
  int enc_in;               /* grpc-encoding of the peer's messages */
  size_t rx_total;          /* bytes received (window growth) */
  int bulk_window;          /* stream window raised to TRI__BULK_WINDOW */
  /* client response parsing */
  tri_metadata io_hdrs;     /* headers being received, published later */
  tri_metadata io_trl;
  int http_status;
  int got_ctype;
  char *bad_ctype;
  int hdr_block;            /* header blocks seen (1xx skipped) */
  int skip_block;           /* current block is a 1xx */
  int grpc_status;          /* parsed grpc-status, -1 none, -2 bad */
  char *grpc_message;
  int rst_rcvd;             /* the server sent RST_STREAM (a reset
                               without it is our nghttp2's, for an
                               HTTP/2 error of the server) */
  /* server request parsing */
  int resp_hdrs_sent;       /* our response HEADERS reached the socket
                               (rapid-reset accounting, h2server.c) */
  size_t hdr_bytes;
  int hdr_too_big;
  char *req_ctype;
  int req_post;             /* :method POST */
  int req_options;          /* :method OPTIONS (CORS preflight) */
  char *req_group, *req_version;
  int64_t timeout_ns;       /* parsed grpc-timeout, -1 none */
  int bad_timeout;
  int enc_req_unknown;
  char *enc_name;           /* unknown grpc-encoding as received */

  /* server: Triple unary, gRPC-Web, JSON (lib/edge.c), or NULL for
   * plain gRPC.  I/O thread, but for what edge.h says. */
  struct tri__edge *edge;

  /* server only */
  struct tri_server *srv;
  tri__quota *quota;        /* its connection's handler share (ref) */
  void *handler;            /* const struct tri__method * */
  tri__list wq_link;        /* (pool.mu) in pool->queue */
  tri__timer queue_timer;   /* bounded wait for a worker */
};

/* The send side is closing: the application finished (or half-closed), or
 * the stream ended with a status the server still has to send; queued
 * bytes drain, then END_STREAM or trailers (s->mu held). */
static inline int tri__stream_send_ending(const tri_stream *s) {
  return s->send_state == TRI__SEND_CLOSING ||
         (s->send_state == TRI__SEND_OPEN && s->final &&
          s->end_action == TRI__END_STATUS);
}

/* ---- target.c ---- */
#define TRI__MAX_ADDRS 64  /* addresses of one target (resolved or listed) */
enum {
  TRI__T_TCP = 0,  /* HOST:PORT or dns:///HOST:PORT: resolved (DNS) */
  TRI__T_UNIX,
  TRI__T_ABSTRACT,
  TRI__T_LIST,     /* ipv4:A:P,... / ipv6:[A]:P,...: static addresses */
  TRI__T_ZK        /* zookeeper://ZKHOSTS/INTERFACE?group=&version= */
};
typedef struct {
  int kind;             /* TRI__T_* */
  char host[256];       /* TCP: the name; ZK: the ZooKeeper host list */
  char port[8];
  char path[108];       /* Unix socket path or abstract name */
  char authority[300];  /* :authority to send */
  char where[300];      /* for messages: "HOST:PORT" or "unix:PATH" */
  /* TRI__T_LIST */
  int naddrs;
  struct sockaddr_storage *addrs; /* naddrs entries (owned: target_free) */
  socklen_t *addr_lens;
  /* TRI__T_ZK */
  char iface[256], group[128], version[128];
} tri__target;
/* Parse a channel target (|bind| 0) or server address (|bind| 1: port 0
 * allowed, no lists, no registries).  TRI_OK, or TRI_EINVAL with
 * tri_last_error() naming the bad part.  Free with tri__target_free(). */
int tri__target_parse(const char *t, int bind, tri__target *out);
void tri__target_free(tri__target *t);
/* "127.0.0.1:80", "[::1]:80", "unix:PATH" of a socket address. */
void tri__sockaddr_str(const struct sockaddr_storage *sa, socklen_t len,
                       char *out, size_t outlen);
/* The socket address of a Unix or abstract target; returns its length. */
struct sockaddr_un;
socklen_t tri__target_sockaddr_un(const tri__target *t,
                                  struct sockaddr_un *un);

/* ---- stream.c ---- */
/* Which condition of a stream a wake-up is for. */
enum { TRI__WAKE_RCV = 1u << 0, TRI__WAKE_SND = 1u << 1 };
/* Wake the waiters of |which| conditions of |s| (s->mu held or not).  On
 * an I/O thread the broadcast is held until the end of the loop
 * iteration, so a response whose headers, message and trailers arrive
 * together wakes its caller once, after the I/O thread let go of the
 * stream; on any other thread it happens now. */
void tri__stream_wake(tri_stream *s, unsigned which);
/* Broadcast rcv_cv after bumping rcv_seq (wakes a spinning recv too).
 * Any thread, s->mu held or not. */
void tri__stream_rcv_broadcast(tri_stream *s);
/* Broadcasts a caller thread held for |s| while ending it under s->mu
 * (tri__stream_abort); called with s->mu released. */
void tri__stream_flush_held_wakes(tri_stream *s);
tri_stream *tri__stream_new(int side, size_t max_recv, size_t rq_limit,
                            size_t sb_limit);
void tri__stream_ref(tri_stream *s);
/* Set s->method to |n| bytes at |p| (a short one in the stream itself,
 * no malloc).  TRI_OK or TRI_ENOMEM (then s->method is NULL). */
int tri__stream_set_method(tri_stream *s, const char *p, size_t n);
void tri__stream_unref(tri_stream *s);
/* The one transition function of the stream state machine (s->mu held).
 * |code|, |msg|, |drop| and |action| are used by TRI__EV_FINISH (code,
 * msg) and TRI__EV_END (all four).  Wakes the waiters a transition
 * concerns.  Returns 1 if the state changed, 0 if the event was a no-op in
 * the current state (e.g. a second END: first cause wins). */
int tri__stream_ev_locked(tri_stream *s, int ev, int code, const char *msg,
                          int drop, int action);
/* End the stream locally with |code|/|msg| (cancel, deadline, shutdown,
 * library-detected error): TRI__EV_END, then post OP_END to the I/O
 * thread if still attached.  Returns 1 if this call set the final status. */
int tri__stream_abort(tri_stream *s, int code, const char *msg, int drop,
                      int action);
/* Ask for |ops| on the stream's loop; caller holds s->mu.  The request is
 * handed over by tri__stream_unlock_post().  No-op when detached. */
void tri__stream_post_locked(tri_stream *s, unsigned ops);
/* Release s->mu, handing posted ops to the loop (conn.c).  Every path that
 * may have posted releases the lock with this.  The stream lock is dropped
 * before the wake-up write, so a thread woken on the stream does not block
 * on it; the loop lock is held across the write so the loop cannot be
 * freed under it. */
void tri__stream_unlock_post(tri_stream *s);
/* Arm the deadline timer if the stream has a deadline (takes a ref). */
void tri__stream_arm_deadline(tri_stream *s);
/* I/O thread: drop |n| bytes from the ring's head after they were written
 * (s->mu held); wakes a sender waiting for that space. */
void tri__stream_ring_consumed_locked(tri_stream *s, size_t n);
/* Free a received message |b| of |s|, or keep its block (TRI__SPARES per
 * stream, 4 to 256 KiB each, TRI__SPARE_MAX bytes in the process, counted
 * in TRI__B_SPARE) for the deframer's next message.  Any thread, no lock;
 * the caller holds a reference on |s|. */
void tri__stream_recycle(tri_stream *s, tri_buf *b);
/* The I/O thread: hand a kept block to the deframer (frame.c). */
void tri__stream_take_spare(tri_stream *s);
/* Client, before tri__loop_open(): queue |data| as the stream's only
 * message and close its send side, so OP_OPEN submits the request's
 * HEADERS, DATA and END_STREAM at once (one op, one wake-up).  TRI_OK,
 * TRI_EINVAL, TRI_ENOMEM or a compression error. */
int tri__stream_prefill_last(tri_stream *s, const void *data, size_t len);
/* tri_stream_recv() of a message after which more of the same answer is
 * awaited: the next recv may spin as this one did (s->answer_due;
 * doc/DESIGN.md, "Spinning before a wait").  A unary call's response,
 * before its trailers.  Caller thread, no lock held. */
int tri__stream_recv_more(tri_stream *s, tri_buf **msg);
/* tri_stream_send_ex() of a |plen|-byte message that |fill| writes
 * straight into the send ring with tri__stream_ring_put_locked() (exactly
 * plen bytes, s->mu held; it must not block), once the ring has room: no
 * intermediate buffer (tri_stream_send_msg packs protobuf this way).
 * Uncompressed only; |flags| may hold TRI_SEND_LAST. */
typedef void (*tri__fill_fn)(void *ctx, tri_stream *s);
int tri__stream_send_fill(tri_stream *s, size_t plen, unsigned flags,
                          int timeout_ms, tri__fill_fn fill, void *ctx);
void tri__stream_ring_put_locked(tri_stream *s, const uint8_t *p, size_t n);
/* Server: finish with |code| (any thread); see tri_stream_finish(). */
int tri__stream_finish(tri_stream *s, int code, const char *message);
/* Give back every byte the stream still counts against its connection's
 * unread budget and the process counters (s->mu held).  Idempotent. */
void tri__stream_uncount_locked(tri_stream *s);

/* ---- loop.c: the I/O loop (one thread) ---- */
struct tri_channel;
struct tri_server;
typedef struct {
  tri__target target;        /* where to connect */
  tri__tls_ctx *tls;         /* TLS context (owned by the loop), or NULL */
  char tls_name[256];        /* name to verify and send as SNI */
  int tls_unavailable;       /* TLS asked for in a build without OpenSSL */
  int64_t connect_ms;
  int64_t keepalive_ms;      /* 0 = off; INT64_MAX = never */
  int64_t keepalive_timeout_ms;
  int keepalive_permit_without_calls;
  size_t conn_rq_limit;
  int round_robin;           /* LB policy: 0 pick_first, 1 round_robin */
  int64_t backoff_initial_ms, backoff_max_ms;
} tri__client_cfg;
/* |rx|: a thread of an I/O group (tri__io_group_take), or NULL for a
 * thread of the channel's own. */
struct tri__rx;
tri__loop *tri__loop_new_client(struct tri_channel *ch,
                                const tri__client_cfg *cfg,
                                struct tri__rx *rx, int *err);
/* A reference to |g| and the thread of it with the fewest channels
 * (counted from now on); NULL when |g| came from the parent of a fork()
 * (any thread).  tri__io_group_put() gives both back, once the channel's
 * loop is gone or was never made. */
struct tri__rx *tri__io_group_take(tri_io_group *g);
void tri__io_group_put(tri_io_group *g, struct tri__rx *rx);

typedef struct {
  size_t max_recv, rq_limit, sb_limit;
  int64_t spin_ns;           /* handlers' recv spin budget */
  uint32_t max_streams;
  size_t max_header_list;
  size_t conn_rq_limit;      /* unread bytes per connection */
  int64_t handshake_ms;      /* client preface + SETTINGS */
  int64_t idle_ms;           /* 0 = never close idle connections */
  int max_resets_per_s;      /* client RST_STREAMs before ENHANCE_YOUR_CALM */
  int64_t min_ping_ms;       /* A8: client PINGs closer are strikes */
  int permit_ping_idle;      /* A8: PINGs without open streams allowed */
  int64_t max_age_ms;        /* A9: 0 = unlimited */
  int64_t max_age_grace_ms;  /* A9: INT64_MAX = unlimited */
  int64_t ka_time_ms;        /* server keepalive PING: 0 = off */
  int64_t ka_timeout_ms;
  int tls;                   /* TLS: tri__server_tls_get() at accept */
  char cors[1024];           /* allowed CORS origins, "" = off (edge.c) */
} tri__srv_cfg;
tri__loop *tri__loop_new_server(struct tri_server *srv, int listen_fd,
                                const tri__srv_cfg *cfg, int *err);
/* Before start: |l| listens for a server of |n| loops |peers| (itself
 * included), which outlive it, and spreads connections over them. */
void tri__loop_set_peers(tri__loop *l, tri__loop **peers, int n);
/* Connections a server loop has taken so far, and has now (any thread). */
void tri__loop_conn_counts(tri__loop *l, uint64_t *served, int *conns);
/* Server connections of |l| whose drain PING is unanswered (any thread;
 * h2server.c). */
int tri__server_drain_waits(tri__loop *l);
int tri__loop_start(tri__loop *l);
/* On |l|'s own I/O thread: hold the wake-up of |s| (TRI__WAKE_* bits)
 * until the end of the iteration; returns 0 elsewhere (then the caller
 * broadcasts itself). */
int tri__loop_defer_wake(tri_stream *s, unsigned which);
/* On a server's I/O thread: one more idle worker to signal at the end of
 * the iteration (tri__server_kick); 0 elsewhere. */
int tri__loop_defer_kick(struct tri_server *srv);
/* Post loop-level work (any thread). */
void tri__loop_stop(tri__loop *l);       /* cancel all, close, exit */
/* Before stopping a server loop (the owner's thread): its teardown may
 * wait until |until| (tri__now_ns() scale) for its connections' final
 * frames to be written (loop.c final_flush). */
void tri__loop_set_final_flush(tri__loop *l, int64_t until);
void tri__loop_drain(tri__loop *l);      /* server: GOAWAY, stop accepting */
void tri__loop_join_free(tri__loop *l);  /* after stop: join and free */
/* Stop and join only (once; tri__loop_join_free frees later): a server
 * joins all its loops before it frees any, since one loop may post to
 * another (TRI__LOOP_ACCEPT) until its thread has ended. */
void tri__loop_join(tri__loop *l);
/* Number of streams the loop still has attached (any thread; approximate). */
int tri__loop_nstreams(tri__loop *l);
/* Attach a stream created by a caller: takes a ref, posts OP_OPEN.
 * Returns TRI_OK or TRI_UNAVAILABLE when the loop is stopping or belongs
 * to the parent of a fork(). */
int tri__loop_open(tri__loop *l, tri_stream *s);
/* 1 if |l| was created in this process (not inherited through fork()). */
int tri__loop_usable(const tri__loop *l);
/* Post loop-level TRI__LOOP_* work (any thread). */
void tri__loop_post(tri__loop *l, unsigned op);

/* ---- channel.c ---- */
/* The channel's generic "address list changed" entry (any thread, no
 * library lock held): the ZooKeeper watch calls it; |host_ports| are
 * "ip:port" / "[v6]:port" strings.  Connections to removed addresses
 * drain; new ones join. */
void tri__channel_update_addrs(struct tri_channel *ch,
                               const char *const *host_ports, size_t n);

/* The checks of tri_channel_opts_set_spin_us and tri_server_opts_set_spin_us
 * (|who|): TRI_OK when |have_opts| and |us| is 0 .. TRI__SPIN_MAX_US, else
 * TRI_EINVAL through tri__fail (lib/channel.c). */
int tri__spin_us_check(const char *who, int have_opts, int us);

/* ---- lb.c: the channel's connectivity state (caller threads) ---- */
/* TRI_CHANNEL_* now; |try_to_connect| leaves IDLE (posts to the loop). */
int tri__lb_state(tri__loop *l, int try_to_connect);
/* Wait until the state differs from |last|: TRI_OK, TRI_DEADLINE_EXCEEDED
 * after |timeout_ms| (-1: no limit). */
int tri__lb_wait_change(tri__loop *l, int last, int64_t timeout_ms);
/* SHUTDOWN: wake every waiter and wait until they have left (before the
 * loop is freed). */
void tri__lb_shutdown(tri__loop *l);
/* A new address list from another thread (the ZooKeeper watch):
 * "ip:port" strings; malformed entries are skipped. */
void tri__lb_post_addrs(tri__loop *l, const char *const *host_ports,
                        size_t n, const char *empty_msg);

/* ---- flow.c ---- */
/* A caller took |len| bytes off s->rq (s->mu held): give them back to the
 * budgets and ask for window if it was withheld. */
void tri__flow_dequeued_locked(tri_stream *s, size_t len);

/* ---- server.c ---- */
/* Called on the I/O thread when a request's headers are complete; takes a
 * new reference for the dispatch when it accepts.  Returns TRI_OK, or a
 * status for an immediate trailers-only answer (msg set). */
int tri__server_dispatch(struct tri_server *srv, tri_stream *s,
                         const char **msg);
int tri__server_draining(const struct tri_server *srv);
/* Wake up to |n| idle workers for streams still queued (any thread, no
 * lock held). */
void tri__server_kick(struct tri_server *srv, unsigned n);
/* Test hook (any thread, while the server runs): connections the server's
 * I/O loop |i| has taken so far and has now.  0, or -1 without loop |i|. */
int tri__server_loop_served(const struct tri_server *srv, int i,
                            uint64_t *served, int *conns);
/* The server's current TLS context with a reference for the caller (the
 * I/O thread, at accept), or NULL.  Takes server.tls_mu (a leaf). */
tri__tls_ctx *tri__server_tls_get(struct tri_server *srv);
/* A TLS handshake from |peer| failed (I/O thread): count it and report it
 * on stderr, at most once per 10 s per server. */
void tri__server_tls_failed(struct tri_server *srv, const char *peer,
                            const char *why);

/* ---- tls.c: contexts (any thread) ---- */
/* Message of every TLS entry point in a build without OpenSSL. */
#define TRI__TLS_UNAVAILABLE                                                 \
  "TLS is not available: libtriplestream was built without OpenSSL "       \
  "(install libssl-dev and configure --with-openssl)"
int tri__tls_available(void);
/* Deep copy (NULL when out of memory). */
tri_tls_opts *tri__tls_opts_dup(const tri_tls_opts *o);
/* Channel and server options: replace *|slot| with a copy of |tls|
 * (NULL clears); |who| names the setter in messages.  The copy is kept
 * even without OpenSSL (TRI_UNIMPLEMENTED), so calls fail instead of going
 * out in clear text. */
int tri__tls_opts_replace(tri_tls_opts **slot, const tri_tls_opts *tls,
                          const char *who);
const char *tri__tls_opts_server_name(const tri_tls_opts *o);
/* Load the files of |o| into a new context for a server (|is_server|) or
 * a client, on the calling thread.  TRI_OK, or TRI_EINVAL / TRI_ENOMEM /
 * TRI_UNIMPLEMENTED with tri_last_error() naming the file and why. */
int tri__tls_ctx_new(const tri_tls_opts *o, int is_server,
                     tri__tls_ctx **out);
void tri__tls_ctx_ref(tri__tls_ctx *t);
void tri__tls_ctx_unref(tri__tls_ctx *t);  /* NULL allowed */

/* ---- peer.c ---- */
/* New peer for the address |sa| (|len| bytes; NULL or an unnamed Unix
 * address: |fallback|, e.g. "unix:PATH").  NULL when out of memory. */
tri__peer *tri__peer_new(const void *sa, size_t len, const char *fallback);
void tri__peer_ref(tri__peer *p);
void tri__peer_unref(tri__peer *p);        /* NULL allowed */
/* Fill the TLS identity (I/O thread, before the peer is shared); strings
 * are copied, NULL is "".  0, or -1 when out of memory. */
int tri__peer_set_tls(tri__peer *p, const char *version, const char *cipher,
                      const char *subject, const char *server_name);
int tri__peer_add_san(tri__peer *p, const char *san);

/* ---- error.c ---- */
/* Record this thread's last error message (tri_last_error()) and return
 * |code|, so failing paths read "return tri__fail(TRI_EINVAL, ...)". */
int tri__fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same with a ready message ("" or NULL: tri_strerror(code)). */
int tri__fail_msg(int code, const char *msg);
/* Creating |what| ("the channel's I/O loop") failed with errno |err|:
 * TRI_ENOMEM when it is ENOMEM or unknown (0), else TRI_ESYS naming the
 * reason ("Too many open files"). */
int tri__fail_create(int err, const char *what);

/* ---- process.c ---- */
/* Incremented in the child of every fork(): objects remember the value
 * they were created with; a mismatch means "inherited from the parent",
 * whose threads do not exist here. */
unsigned tri__fork_gen(void);
/* pthread_create with every asynchronous signal blocked in the new thread
 * (library threads never take a process-directed signal), named |name|
 * before this returns (so ps, top and /proc show it from the start, not
 * only once the thread has run).  0 or errno. */
int tri__thread_create(pthread_t *t, const pthread_attr_t *attr,
                       void *(*fn)(void *), void *arg, const char *name);
/* Milliseconds to nanoseconds, saturating: INT64_MAX stays "never". */
int64_t tri__ms_to_ns(int64_t ms);

#endif /* TRI_CORE_H */
