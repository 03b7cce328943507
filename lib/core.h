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
 *
 * The wheel lock (timer.c) and the wakeup fd are leaves.  No lock is held
 * while user code (handlers) runs.  The I/O thread takes stream.mu only for
 * short copies; it never waits on a condition.
 */
#ifndef TRI_CORE_H
#define TRI_CORE_H

#include "tri_int.h"
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

/* Stream side. */
enum { TRI__CLIENT = 0, TRI__SERVER = 1 };

/* Pending work for the I/O thread, set under loop.cmd_mu (s->ops). */
enum {
  TRI__OP_OPEN = 1u << 0,    /* client: attach and submit request HEADERS */
  TRI__OP_DATA = 1u << 1,    /* send ring has bytes or END: resume data  */
  TRI__OP_CANCEL = 1u << 2,  /* local abort: RST_STREAM(CANCEL)          */
  TRI__OP_WINDOW = 1u << 3,  /* app consumed: give back stream window    */
  TRI__OP_HEADERS = 1u << 4, /* server: submit response HEADERS          */
  TRI__OP_FINISH = 1u << 5   /* server: trailers after queued data       */
};

/* Defaults (README "Limits"). */
#define TRI__DEF_MAX_RECV (4u * 1024 * 1024)   /* PROTOCOL.md 3.5 */
#define TRI__DEF_SEND_BUF (256u * 1024)
#define TRI__DEF_RECV_QUEUE (1024u * 1024)
#define TRI__DEF_CONNECT_MS 20000              /* PROTOCOL.md 1.7 */
#define TRI__STREAM_WINDOW (1u * 1024 * 1024)  /* SETTINGS_INITIAL_WINDOW */
#define TRI__BULK_WINDOW (4u * 1024 * 1024)    /* a stream that streams */
#define TRI__BULK_AFTER (2u * 1024 * 1024)     /* ... after this much */
#define TRI__CONN_WINDOW (16u * 1024 * 1024)
#define TRI__MAX_FRAME (256u * 1024)           /* SETTINGS_MAX_FRAME_SIZE */
#define TRI__MAX_HEADER_LIST (32u * 1024)      /* PROTOCOL.md 1.5 */
#define TRI__DEF_CONN_RQ (64u * 1024 * 1024)   /* unread bytes per conn */
#define TRI__DEF_HANDSHAKE_MS 10000

struct tri_stream {
  int refs;                 /* atomic */
  int side;                 /* TRI__CLIENT / TRI__SERVER, immutable */

  tri__mutex mu;            /* protects fields marked (mu) */
  tri__cond rcv_cv;         /* messages, headers, final status */
  tri__cond snd_cv;         /* send ring space, final status */

  /* immutable after creation */
  char *method;
  int64_t deadline_ns;      /* TRI__NO_DEADLINE if none */
  size_t max_recv;
  size_t rq_limit;
  size_t sb_base;           /* configured send buffer */
  int enc_out;              /* compression for outgoing messages */

  /* client request (immutable after open) */
  tri_metadata req_md;
  char *group, *version;

  /* final status (mu).  Set once: first cause wins. */
  int final;
  int final_code;
  char *final_msg;
  int drop;                 /* local abort: queued messages are dropped */
  int peer_eof;             /* server: client half-closed (END_STREAM) */

  /* receive queue (mu) */
  tri__list rq;
  size_t rq_bytes;
  size_t unacked;           /* received bytes whose stream window is owed */
  int window_posted;
  int rcv_waiters;
  int hdrs_ready;           /* client: response headers arrived / ended */
  tri_metadata hdrs;        /* peer's initial metadata */
  tri_metadata trl;         /* client: peer's trailing metadata */

  /* send ring (mu) */
  uint8_t *sb;
  size_t sb_cap;            /* current ring size (> sb_base while it holds
                               one oversized message) */
  size_t sb_head, sb_len;
  size_t snd_need;          /* free bytes the blocked sender waits for */
  int snd_waiters;
  int send_closed;          /* client: half-close asked; server: finish */
  int io_deferred;          /* I/O side returned NGHTTP2_ERR_DEFERRED */

  /* server response (mu until headers/trailers are submitted) */
  tri_metadata out_hdrs;
  tri_metadata out_trl;
  int hdrs_requested;       /* OP_HEADERS posted */
  int finished;             /* tri_stream_finish() or library finish */
  int finish_code;
  char *finish_msg;
  int accept_enc_mask;      /* server: codings the client accepts */

  /* link to the I/O thread (mu): NULL once detached */
  tri__loop *loop;
  tri__conn *acct;          /* connection whose unread-bytes budget this
                               stream's queue counts against (mu) */
  unsigned ops;             /* (loop.cmd_mu) pending TRI__OP_* */
  unsigned post_bits;       /* (mu) ops to hand over at unlock */
  tri__list op_link;        /* (loop.cmd_mu) in loop->ops */

  tri__timer deadline_timer; /* holds a stream ref while armed */

  /* I/O thread only */
  tri__conn *conn;
  int32_t id;               /* HTTP/2 stream id, 0 before submit */
  tri__list io_link;        /* conn->waiting or conn->streams */
  tri__deframer df;
  int enc_in;               /* grpc-encoding of the peer's messages */
  int io_state;             /* enum in conn.c */
  int http_status;          /* client: :status of the response */
  int got_ctype;            /* client: content-type was gRPC */
  char *bad_ctype;
  int hdr_block;            /* client: header blocks seen */
  int resp_done;            /* client: response headers block received */
  int skip_block;           /* client: current block is a 1xx */
  int grpc_status;          /* client: parsed grpc-status or -1 */
  char *grpc_message;
  int trailers_sent;        /* server */
  int resp_submitted;       /* server: response HEADERS submitted */
  int remote_closed;        /* peer sent END_STREAM */
  size_t rx_total;          /* bytes received (window growth) */
  int bulk_window;          /* stream window raised to TRI__BULK_WINDOW */
  size_t hdr_bytes;         /* server: request header list size */
  int hdr_too_big;

  /* server only */
  struct tri_server *srv;
  tri__quota *quota;        /* its connection's handler share (ref) */
  void *handler;            /* const struct tri__method * */
  tri__list wq_link;        /* (pool.mu) in pool->queue */
  tri__timer queue_timer;   /* bounded wait for a worker */
  char *req_ctype;          /* request content-type, echoed */
  char *req_group, *req_version;
  int64_t timeout_ns;       /* parsed grpc-timeout, -1 none */
  int bad_timeout;
  int enc_req_unknown;
  char *enc_req_name;
};

/* ---- stream.c ---- */
tri_stream *tri__stream_new(int side, size_t max_recv, size_t rq_limit,
                            size_t sb_cap);
void tri__stream_ref(tri_stream *s);
void tri__stream_unref(tri_stream *s);
/* End the stream locally with |code|/|msg| (cancel, deadline, shutdown,
 * library-detected error).  Drops queued messages when |drop|.  Wakes every
 * waiter and, if the stream is still attached, posts OP_CANCEL.  Returns 1
 * if this call set the final status, 0 if the stream had already ended. */
int tri__stream_abort(tri_stream *s, int code, const char *msg, int drop);
/* Ask for |ops| on the stream's loop; caller holds s->mu.  The request is
 * delivered by tri__stream_unlock(), which every path that posts uses to
 * release s->mu.  No-op when the stream is detached. */
void tri__stream_post_locked(tri_stream *s, unsigned ops);
/* Release s->mu, first handing pending ops to the loop.  The stream lock is
 * dropped before the wake-up write, so a thread woken on the stream does
 * not immediately block on it; the loop lock is held across the write so
 * the loop cannot be freed under it. */
void tri__stream_unlock(tri_stream *s);
/* Arm the deadline timer if the stream has a deadline (takes a ref). */
void tri__stream_arm_deadline(tri_stream *s);
/* Set the final status (s->mu held); wakes every waiter.  Returns 1 if it
 * was set by this call. */
int tri__stream_final_locked(tri_stream *s, int code, const char *msg,
                             int drop);
/* I/O thread: take up to |n| bytes from the send ring (s->mu held);
 * |out| NULL drops them (already written from the ring itself). */
size_t tri__stream_ring_get(tri_stream *s, uint8_t *out, size_t n);
/* Server: finish with |code| (any thread); see tri_stream_finish(). */
int tri__stream_finish(tri_stream *s, int code, const char *message);

/* ---- conn.c: the I/O loop (one thread) ---- */
struct tri_channel;
struct tri_server;
tri__loop *tri__loop_new_client(struct tri_channel *ch, const char *host,
                                const char *port, int64_t connect_ms,
                                const char *authority, int64_t keepalive_ms,
                                int64_t keepalive_timeout_ms,
                                size_t conn_rq_limit);
typedef struct {
  size_t max_recv, rq_limit, sb_cap;
  uint32_t max_streams;
  size_t max_header_list;
  size_t conn_rq_limit;      /* unread bytes per connection */
  int64_t handshake_ms;      /* client preface + SETTINGS */
  int64_t idle_ms;           /* 0 = never close idle connections */
  int max_resets_per_s;      /* client RST_STREAMs before ENHANCE_YOUR_CALM */
} tri__srv_cfg;
tri__loop *tri__loop_new_server(struct tri_server *srv, int listen_fd,
                                const tri__srv_cfg *cfg);
int tri__loop_start(tri__loop *l);
/* Post loop-level work: cancel every stream and exit (client), or drain
 * (server).  Any thread. */
void tri__loop_stop(tri__loop *l);       /* cancel all, close, exit */
void tri__loop_drain(tri__loop *l);      /* server: GOAWAY, stop accepting */
void tri__loop_join_free(tri__loop *l);  /* after stop: join and free */
/* Number of streams the loop still has attached (any thread; approximate). */
int tri__loop_nstreams(tri__loop *l);
/* Attach a stream created by a caller: takes a ref, posts OP_OPEN.
 * Returns TRI_OK or TRI_UNAVAILABLE when the loop is stopping. */
int tri__loop_open(tri__loop *l, tri_stream *s);


/* A caller took |len| bytes off s->rq (s->mu held): update the
 * connection's unread budget and ask for window back if it was withheld. */
void tri__conn_unqueued_locked(tri_stream *s, size_t len);

/* ---- server.c ---- */
/* Called on the I/O thread when a request's headers are complete; takes a
 * new reference for the dispatch when it accepts.  Returns TRI_OK, or a
 * status for an immediate trailers-only answer (msg set). */
int tri__server_dispatch(struct tri_server *srv, tri_stream *s,
                         const char **msg);
int tri__server_draining(const struct tri_server *srv);

#endif /* TRI_CORE_H */
