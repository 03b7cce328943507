/*
 * The I/O layer: what the files of the I/O thread share.  Everything
 * declared here runs on a loop's I/O thread ("tri-io") unless its comment
 * says otherwise.  No other thread ever touches nghttp2 or a socket.
 *
 *   loop.c      the event loop, the cross-thread op queue, loop lifetime
 *   conn.c      connection lifetime, stream attach/detach, the nghttp2
 *               callback table (dispatching to the two sides)
 *   sockio.c    the socket reader and writer, including zero-copy DATA
 *   h2client.c  client side: resolve, connect, requests, responses
 *   h2server.c  server side: accept, request validation, responses
 *   flow.c      flow-control windows and the unread-bytes budgets
 *   nv.c        building nghttp2 header lists
 *   resolve.c   asynchronous name resolution (c-ares) on the loop
 *   lb.c        client: address lists, subchannels (pick_first,
 *               round_robin), connectivity state, backoff, picking
 *   tls.c       TLS on a connection (OpenSSL): handshake, reads, writes
 *
 * Lock order (core.h): stream.mu -> loop.cmd_mu.  The I/O thread takes
 * stream.mu only for short copies and state transitions; it never waits
 * on a condition.
 */
#ifndef TRI_CONN_H
#define TRI_CONN_H

#include "tri_int.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <nghttp2/nghttp2.h>

#include "core.h"
#include "h2mem.h"

#define TRI__READ_CHUNK (256 * 1024)
#define TRI__WRITE_COALESCE (64 * 1024)
#define TRI__WBUF_FIRST 512 /* first output buffer: an idle connection needs little */
/* DATA frames up to this size are copied into wbuf and written with the
 * frames around them; larger ones go from the send ring (writev). */
#define TRI__COPY_DATA_MAX (16 * 1024)

/* Attachment of a stream to the I/O side (s->io_state, I/O thread only). */
enum tri__io_state {
  TRI__IO_IDLE = 0,  /* posted, not yet seen by the loop */
  TRI__IO_WAITING,   /* client: waiting for its connection */
  TRI__IO_OPEN,      /* submitted to nghttp2 */
  TRI__IO_CLOSED     /* detached: the loop's reference is gone */
};

/* What an epoll registration points at. */
enum tri__src_kind { TRI__SRC_WAKE = 1, TRI__SRC_LISTEN, TRI__SRC_CONN,
                     TRI__SRC_DNS, TRI__SRC_LINGER };
typedef struct {
  int kind;
  int fd;
  struct tri__loop *loop;  /* whose it is (set by tri__loop_ep_set); NULL
                              for the thread's own wake-up fd */
} tri__src;

/* A min-heap entry by deadline (loop.c): server connections by their next
 * tick, loops of a shared I/O thread by theirs. */
typedef struct {
  int64_t at;              /* the deadline (TRI__NO_DEADLINE: none) */
  size_t pos;              /* 1 + index in the heap, 0 if not in it */
} tri__hnode;
typedef struct {
  tri__hnode **v;
  size_t len, cap;
} tri__heap;

/* Connection phases (c->phase). */
enum tri__conn_phase {
  TRI__CONN_RESOLVING = 0, /* client: name resolution in progress */
  TRI__CONN_CONNECTING,    /* client: non-blocking connect() */
  TRI__CONN_TLS,           /* TLS handshake (tls.c), same deadline */
  TRI__CONN_HANDSHAKE,     /* no SETTINGS from the peer yet */
  TRI__CONN_READY,
  TRI__CONN_CLOSED         /* conn_close() ran; about to be freed */
};

typedef struct tri__resolve tri__resolve;
typedef struct tri__tls tri__tls;

struct tri__conn {
  tri__src src;            /* first: epoll data.ptr */
  tri__loop *loop;
  nghttp2_session *sess;
  tri__h2mem h2mem;        /* sess's allocator (h2mem.h) */
  int is_server;
  int phase;               /* enum tri__conn_phase */
  int64_t phase_deadline;  /* resolve/connect/handshake must end by */
  int goaway;              /* GOAWAY received or sent: no new streams */
  int drain_ping;          /* server: heads-up GOAWAY + PING sent */
  int drain_counted;       /* server: counted in loop->drain_waits */
  int fatal;               /* nghttp2 error that ended the session */
  int peer_gone;           /* the peer closed (EOF) or reset the socket */
  tri__tls *tls;           /* TLS state, or NULL for clear text */
  struct tri__h1 *h1;      /* server: HTTP/1.1 connection (http1.c), or
                              NULL for HTTP/2 */
  size_t magic_seen;       /* server: bytes read so far, all a prefix of
                              the HTTP/2 preface (HTTP/1.1 undecided) */
  tri__peer *peer;         /* address and TLS identity (ref), or NULL
                              before connected */
  /* client: its subchannel (lb.c), or NULL once orphaned (GOAWAY,
   * address removed): then no new streams; it closes when the last one
   * ends.  Addresses to try, in order (a copy of the subchannel's). */
  struct tri__subch *sub;
  struct sockaddr_storage *addrs;
  socklen_t *addr_lens;
  int naddrs, next_addr;
  int64_t ka_ms;           /* keepalive interval for this connection */
  int64_t ready_ns;        /* client: when it got READY, or 0 */
  int carried;             /* client: a request was submitted on it */
  int last_errno;          /* last connect() failure */
  char *error;             /* why the connection failed, for messages */
  /* keepalive and idleness */
  int64_t last_read_ns;
  int64_t ping_sent_ns;    /* keepalive PING outstanding since, or 0 */
  int64_t idle_since_ns;   /* server: no stream open since, or 0 */
  int64_t quiet_since_ns;  /* no stream, nothing to write and nothing
                              read since, or 0 (tri__conn_trim_if_quiet) */
  /* flow control (flow.c) */
  size_t rq_total;         /* atomic: unread bytes held for its streams */
  size_t conn_owed;        /* connection window withheld (I/O thread) */
  int owed_flag;           /* atomic: conn_owed > 0 */
  /* server protection */
  tri__quota *quota;       /* handler share of this connection */
  int64_t rst_window_ns;   /* start of the reset-counting second */
  int rst_count;           /* client RST_STREAMs in that second */
  int big_headers;         /* oversized request header lists seen */
  /* server: keepalive enforcement (A8) and connection age (A9) */
  int64_t ping_recv_ns;    /* last PING from the client counted, or 0 */
  int ping_strikes;        /* PINGs too early since we last sent data */
  int64_t age_deadline_ns; /* max connection age (jittered), or 0 */
  int64_t grace_deadline_ns; /* age grace: close then, or 0 */
  const char *goaway_debug; /* debug data of the GOAWAY after the drain
                               PING's ACK (static string) or NULL */
  int64_t drain_ping_ns;   /* when the heads-up GOAWAY + PING went out */
  /* server loops tick a connection only when it needs it (loop.c) */
  tri__list touch_link;    /* loop->touched: to tick in the next pass */
  tri__hnode tick;         /* its next deadline, in loop->heap */
  /* lists */
  tri__list link;          /* loop->conns */
  tri__list waiting;       /* client streams waiting for the connection */
  tri__list streams;       /* streams submitted to nghttp2 */
  int nsubmitted;          /* length of streams (client: against the
                              peer's SETTINGS_MAX_CONCURRENT_STREAMS) */
  /* output not yet taken by the socket */
  uint8_t *wbuf;
  size_t wlen, woff, wcap;
  uint64_t wsent;          /* bytes the socket (or TLS) has taken, ever:
                              progress for http1.c's stall timeout */
  unsigned final_stuck;    /* loop.c final_flush: rounds in a row that
                              poll() said writable and nothing went out */
  uint32_t ep_events;      /* registered epoll events */
};

/* The thread side of loops: one "tri-io" thread with its epoll set and
 * wake-up fd.  A server loop, and a channel made without an I/O group,
 * has one of its own (private: it runs that loop every pass, as it always
 * did).  Each thread of a tri_io_group is shared by the channels placed
 * on it: a pass runs only the loops that are due (posted to, an event on
 * one of their sockets, or their deadline come), so one busy channel does
 * not pay for a thousand idle ones.
 *
 * Lock order: stream.mu -> loop.cmd_mu -> rx.mu (a leaf). */
typedef struct tri__rx {
  pthread_t thread;
  int started;
  int shared;              /* a tri_io_group's thread */
  int epfd;
  tri__wakeup wake;
  tri__src wake_src;
  uint8_t *rbuf;           /* TRI__READ_CHUNK; one connection read at a time */
  tri__pgpool *pgpool;     /* page slots for its sessions (h2mem.h), or
                              NULL: they use the heap */
  /* wake-ups held until the end of the iteration (I/O thread) */
  tri__list wakes;         /* streams with wake_bits (a reference each) */
  unsigned pool_kicks;     /* server: workers to signal */
  int kick_state;          /* I/O thread: KICK_NOW, or in an epoll batch
                              of several events: KICK_FIRST until its
                              first kick, then KICK_AT_END (loop.c) */
  struct tri_server *srv;  /* private server loop: whose workers */
  struct tri__loop *only;  /* private: its loop */

  /* shared */
  tri__mutex mu;           /* leaf; protects: */
  tri__cond cv;            /*   a loop left (tri__loop_join waits) */
  tri__list ready;         /*   loops posted to (loop.ready_link) */
  int nready;              /*   atomic: 0 when |ready| is empty (it may
                                overcount: a loop that left) */
  int nloops;              /* atomic: channels placed on it (placement) */
  int ending;              /* atomic: its group is gone: exit */
  tri__list due;           /* I/O thread: loops an event touched */
  tri__heap heap;          /* I/O thread: loops by next deadline */
} tri__rx;

struct tri__loop {
  tri__rx *rx;             /* its thread (owned unless rx->shared) */
  int started;             /* running on rx */
  int joined;              /* tri__loop_join has run (the owner's thread) */
  unsigned fork_gen;       /* tri__fork_gen() at creation */
  tri__src listen_src;
  /* on a shared rx */
  tri__list ready_link;    /* rx->mu: on rx->ready */
  tri__list due_link;      /* I/O thread: on rx->due */
  tri__hnode due_at;       /* I/O thread: its next deadline, rx->heap */
  int left;                /* rx->mu: stopped and off rx (join waits) */

  tri__mutex cmd_mu;       /* leaf (but for the wheel); protects: */
  tri__list ops;           /*   streams with pending op bits */
  unsigned loop_ops;       /*   TRI__LOOP_* requests */
  int stopping;            /*   no new streams */

  int nstreams;            /* atomic: streams attached to this loop */
  tri__list conns;         /* I/O thread */
  int is_server;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;

  /* client */
  struct tri_channel *ch;
  tri__client_cfg ccfg;    /* target and client settings (a copy) */
  int tearing_down;
  void *dns;               /* resolve.c state, created on first use */
  tri__resolve *resolving; /* the pending resolution, or NULL */
  struct tri__lb *lb;      /* lb.c: subchannels, pending streams, state */

  /* server */
  struct tri_server *srv;
  int listen_fd;
  tri__srv_cfg cfg;
  int draining;
  /* Set by the server before it stops the loop (tri_server_shutdown):
   * until then (tri__now_ns() scale) the teardown waits for sockets to
   * take the final trailers and GOAWAY (loop.c final_flush); 0: best
   * effort, never blocks. */
  int64_t final_flush_until;
  /* Which connections the pass ticks (loop.c tick_server_conns): those
   * touched since (socket event, stream op, new), and those whose
   * deadline (tick_at) has come, from a min-heap by tick_at.  The other
   * connections are not looked at, so a pass costs what moved, not the
   * number of connections. */
  tri__list touched;
  tri__heap heap;          /* connections by tick.at */
  tri__conn *ticking;      /* the one being ticked; NULL once it closed */
  int accept_paused;       /* listening socket unwatched (EMFILE) */
  int64_t accept_paused_until; /* ... until then, or a conn closes */
  int accept_blocked;      /* atomic: accept_paused, for the other loops:
                              the first of them to close a descriptor
                              clears it and posts TRI__LOOP_ACCEPT */
  tri__loop *listener;     /* server: the loop that accepts (loop 0, or
                              itself); set before start, freed after
                              every loop of the server has stopped */
  tri__list lingering;     /* closed by us: draining the peer's input */
  int nlingering;
  /* server with several loops (tri_server_opts_set_io_threads) */
  struct tri__adopt *adopt; /* (cmd_mu) sockets the listening loop
                               accepted for this one, newest first */
  int nconns;              /* atomic: connections on this loop, counted
                              from the moment the listener picks it */
  int drain_waits;         /* atomic: HTTP/2 connections (READY, or in
                              the preface with bytes read) whose drain
                              PING is unanswered: requests may still cross
                              the heads-up GOAWAY (tri_server_shutdown
                              waits; h2server.c drain_count) */
  int drain_sent;          /* atomic: tri__server_drain has run */
  uint64_t served;         /* atomic: connections this loop has taken */
  tri__loop **peers;       /* listening loop: every loop of the server
                              (itself included); they outlive it */
  int npeers;
  unsigned rr;             /* listening loop: where the next search starts */
};

enum {
  TRI__LOOP_STOP = 1u << 0,
  TRI__LOOP_DRAIN = 1u << 1,
  TRI__LOOP_ADOPT = 1u << 2,
  TRI__LOOP_CONNECT = 1u << 3, /* client: tri_channel_state(ch, 1) */
  TRI__LOOP_ADDRS = 1u << 4,   /* client: an address list was posted */
  TRI__LOOP_ACCEPT = 1u << 5   /* server: another loop freed a descriptor
                                  while accepting was paused (EMFILE) */
};

/* An accepted socket handed from the listening loop to another one. */
struct tri__adopt {
  struct tri__adopt *next;
  int fd;
  socklen_t sl;
  struct sockaddr_storage ss;
};

/* ---- loop.c ---- */
void tri__loop_ep_set(tri__loop *l, tri__src *src, uint32_t events,
                      uint32_t *registered);
void tri__loop_ep_del(tri__loop *l, int fd);
/* Listening loop: hand the accepted socket |a| to the loop |to| (whose
 * nconns already counts it).  0, or -1 when |to| is stopping (then the
 * caller still owns |a|). */
int tri__loop_adopt(tri__loop *to, struct tri__adopt *a);
/* Do the wake-ups held since the last flush (tri__loop_defer_wake). */
void tri__loop_flush_wakes(tri__loop *l);
/* Server loops: |c| changed (I/O thread), tick it in the next pass.  A
 * no-op on client loops, which tick every connection every pass. */
void tri__conn_touch(tri__conn *c);
/* |c| is closing: out of the touched list and the heap. */
void tri__conn_unsched(tri__conn *c);
/* Server connection ticks so far, every loop of the process (tests). */
uint64_t tri__conn_ticks(void);
/* Loop passes run by the shared threads of I/O groups so far (tests). */
uint64_t tri__shared_loop_runs(void);

/* ---- conn.c ---- */
tri__conn *tri__conn_new(tri__loop *l, int fd, int is_server);
/* Fail every stream of |c| (client UNAVAILABLE, server CANCELLED, with
 * |why| as the message), close the socket, free |c|. */
void tri__conn_close(tri__conn *c, const char *why);
/* Give a quiet connection's buffers back (conn.c); from its tick.  |busy|:
 * it has streams (or requests waiting) of its own. */
void tri__conn_trim_if_quiet(tri__conn *c, int busy, int64_t now,
                             int64_t *next);
/* Sockets we closed while the peer may still be sending (conn.c):
 * half-closed, read and discarded until the peer closes or 2 s pass, so
 * our last frames (GOAWAY) are not destroyed by a TCP reset. */
void tri__linger_event(tri__loop *l, tri__src *src);
void tri__linger_tick(tri__loop *l, int64_t now, int64_t *next);
void tri__linger_close_all(tri__loop *l);
/* Register the connection's socket for |events|. */
void tri__conn_watch(tri__conn *c, uint32_t events);
/* The I/O side is done with |s|: unlink it, give back its budgets, drop
 * the loop's reference.  Caller threads may still hold their own. */
void tri__conn_detach(tri__loop *l, tri_stream *s);
/* TRI__EV_END from the I/O thread. */
void tri__io_end(tri_stream *s, int code, const char *msg, int drop,
                 int action);
/* Stream of an nghttp2 id, or NULL. */
tri_stream *tri__conn_stream(tri__conn *c, int32_t id);
void tri__conn_set_error(tri__conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- sockio.c ---- */
/* Append |n| bytes to the connection's output buffer (grows it).
 * Returns 0, or -1 when it cannot grow (nothing appended). */
int tri__conn_wappend(tri__conn *c, const void *p, size_t n);
int tri__sock_flush(tri__conn *c);            /* -1: connection failed */
/* Writes one flush makes at most before it lets the loop serve the other
 * connections (1024; at least 1); tests lower it, before any loop exists. */
extern int tri__sock_flush_rounds;
/* How long accepting pauses when the process is out of descriptors (or
 * memory), in ms, unless a connection of the server closes first (100;
 * tests raise it, before any loop exists). */
extern int tri__accept_backoff_ms;
/* Tests: called on the listening loop's thread after each accept() that
 * failed for want of descriptors (or memory), before anything else;
 * NULL (the default) for none.  Set before any loop exists. */
extern void (*tri__accept_fail_hook)(void);
/* Flush; close the connection when writing failed or the session has
 * nothing left to read or write: then |c| is freed and 1 returned. */
int tri__sock_flush_or_close(tri__conn *c);
int tri__sock_read(tri__conn *c);             /* 0, -1 closed, -2 fatal */
void tri__sock_raw_goaway(tri__conn *c);
void tri__sock_event(tri__conn *c, uint32_t ev);
ssize_t tri__data_read_cb(nghttp2_session *sess, int32_t id, uint8_t *buf,
                          size_t length, uint32_t *flags,
                          nghttp2_data_source *src, void *ud);
int tri__send_data_cb(nghttp2_session *sess, nghttp2_frame *frame,
                      const uint8_t *framehd, size_t length,
                      nghttp2_data_source *src, void *ud);
ssize_t tri__read_length_cb(nghttp2_session *sess, uint8_t type, int32_t id,
                            int32_t conn_win, int32_t stream_win,
                            uint32_t max_frame, void *ud);

/* ---- h2client.c ---- */
/* Start a connection to the addresses of |c| (c->addrs); may close |c|
 * at once (reported to its subchannel). */
void tri__client_connect(tri__conn *c);
void tri__client_open(tri__loop *l, tri_stream *s);
/* Put |s| on the READY connection |c| (submit or wait for a slot). */
void tri__client_attach(tri__conn *c, tri_stream *s);
void tri__client_tick(tri__conn *c, int64_t now, int64_t *next);
void tri__client_connect_event(tri__conn *c, uint32_t ev);
void tri__client_settled(tri__conn *c);
void tri__client_header(tri_stream *s, const nghttp2_frame *f,
                        const uint8_t *name, size_t nlen,
                        const uint8_t *val, size_t vlen);
void tri__client_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f);
/* The stream closed; 1 if it was requeued for a transparent retry (not
 * to be detached). */
int tri__client_closed(tri__conn *c, tri_stream *s, uint32_t err);
int tri__client_retry(tri__conn *c, tri_stream *s);
void tri__client_end(tri__conn *c, tri_stream *s);
void tri__client_publish_headers(tri_stream *s);

/* ---- h2server.c ---- */
void tri__server_accept(tri__loop *l);
/* Start serving a socket the listening loop handed over (frees |a|). */
void tri__server_adopted(tri__loop *l, struct tri__adopt *a);
void tri__server_tick(tri__loop *l, int64_t now, int64_t *next);
void tri__server_conn_tick(tri__conn *c, int64_t now, int64_t *next);
void tri__server_drain(tri__loop *l);
/* Take |c| out of loop->drain_waits (its drain PING was answered, timed
 * out, or it closed); idempotent. */
void tri__server_drain_uncount(tri__conn *c);
/* The client's SETTINGS arrived (READY): count |c| in drain_waits if its
 * drain PING is unanswered. */
void tri__server_settled(tri__conn *c);
int tri__server_begin(tri__conn *c, int32_t id);
int tri__server_header(tri__conn *c, tri_stream *s, const nghttp2_frame *f,
                       const uint8_t *name, size_t nlen,
                       const uint8_t *val, size_t vlen);
void tri__server_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f);
void tri__server_rst_received(tri__conn *c, tri_stream *s);
void tri__server_closed(tri__conn *c, tri_stream *s, uint32_t err);
void tri__server_frame_sent(tri__conn *c, tri_stream *s,
                            const nghttp2_frame *f);
/* nghttp2 refused to send the response's HEADERS or trailers on an open
 * stream (|lib_error|: a header block over its 64 KiB limit, an HPACK
 * failure): end the stream INTERNAL and reset it, so neither side waits
 * for a response that will never come. */
void tri__server_headers_not_sent(tri__conn *c, tri_stream *s,
                                  const nghttp2_frame *f, int lib_error);
/* A HEADERS or DATA frame went out: PING strikes start over (A8). */
void tri__server_data_sent(tri__conn *c);
void tri__server_ops(tri__conn *c, tri_stream *s, unsigned ops);
void tri__server_fail(tri__conn *c, tri_stream *s, int code,
                      const char *msg);
void tri__server_submit_trailers(tri__conn *c, tri_stream *s);
/* Request headers complete (HTTP/2 or HTTP/1.1): validate, dispatch. */
void tri__server_headers_done(tri__conn *c, tri_stream *s, int end);

/* ---- flow.c ---- */
size_t tri__flow_conn_limit(const tri__conn *c);
int tri__flow_data_chunk(tri__conn *c, tri_stream *s, const uint8_t *data,
                         size_t len);
void tri__flow_return_owed(tri__conn *c);
void tri__flow_window_op(tri__conn *c, tri_stream *s);
void tri__flow_conn_closed(tri__conn *c);
/* Queue one complete request message the edge made (edge.c). */
void tri__flow_queue_one(tri__conn *c, tri_stream *s, tri_buf *m);

/* ---- tls.c ---- */
/* Begin TLS on the connected socket of |c| with |ctx| (a reference is
 * taken); |name| (client) is verified and sent as SNI.  Sets phase
 * TRI__CONN_TLS.  0, or -1 when out of memory. */
int tri__tls_start(tri__conn *c, tri__tls_ctx *ctx, const char *name);
/* One step of the handshake, on a socket event: 1 done (phase
 * TRI__CONN_HANDSHAKE, peer identity filled in), 0 in progress (epoll
 * interest set), -1 failed (reported: client c->error, server counted and
 * logged); the caller closes. */
int tri__tls_handshake(tri__conn *c);
/* recv()/sendmsg() through TLS: bytes, 0 at the peer's end, or -1 with
 * errno (EAGAIN: try again on the next event).  A write takes a prefix of
 * |iov|; the rest must be offered again first (see tls.c). */
ssize_t tri__tls_read(tri__conn *c, uint8_t *buf, size_t len);
ssize_t tri__tls_writev(tri__conn *c, const struct iovec *iov, int n);
/* A read stopped because TLS needs to write first: watch EPOLLOUT. */
int tri__tls_read_wants_out(const tri__conn *c);
/* close_notify (best effort, after a complete handshake) and free. */
void tri__tls_close(tri__conn *c);

/* ---- resolve.c ---- */
/* Start resolving the target's HOST:PORT (all A/AAAA records);
 * tri__lb_resolved() is called later from the loop (never from inside
 * this call).  At most one resolution runs per loop. */
void tri__resolve_start(tri__loop *l);
void tri__resolve_cancel(tri__loop *l);
/* Loop integration: timeouts and socket events of the resolver. */
int64_t tri__resolve_next(tri__loop *l, int64_t next);
void tri__resolve_event(tri__loop *l, tri__src *src, uint32_t ev);
void tri__resolve_tick(tri__loop *l);
void tri__resolve_free(tri__loop *l);

/* ---- lb.c (client loops; I/O thread unless stated) ---- */
int tri__lb_new(tri__loop *l);       /* 0 or -1 (out of memory) */
void tri__lb_free(tri__loop *l);     /* after the loop thread ended */
/* A stream to place: on a READY connection, in the pending list, or
 * failed (TRANSIENT_FAILURE without wait-for-ready). */
void tri__lb_open(tri__loop *l, tri_stream *s);
/* Per-iteration work: resolution schedule, backoff timers, drains. */
void tri__lb_tick(tri__loop *l, int64_t now, int64_t *next);
/* Loop ops TRI__LOOP_CONNECT / TRI__LOOP_ADDRS. */
void tri__lb_loop_ops(tri__loop *l, unsigned ops);
/* Resolution result: |n| addresses, or |err| (n == 0). */
void tri__lb_resolved(tri__loop *l, const struct sockaddr_storage *addrs,
                      const socklen_t *lens, int n, const char *err);
/* Connection events. */
void tri__lb_conn_ready(tri__conn *c);
void tri__lb_conn_goaway(tri__conn *c, uint32_t code, const uint8_t *data,
                         size_t len);
void tri__lb_conn_closed(tri__conn *c, int was_ready, const char *why);
/* Streams of a connection that no longer takes new ones go back to the
 * pending list (never sent). */
void tri__lb_requeue(tri__loop *l, tri_stream *s);
/* 1 when a stream went back to the pending list after this pass's
 * tri__lb_tick placed streams (a request refused while the connection
 * wrote, a connection closing): the loop must not sleep before the next
 * pass places it. */
int tri__lb_requeued(const tri__loop *l);
int tri__lb_permit_without_calls(const tri__loop *l);
const char *tri__lb_sub_name(const struct tri__subch *sub);
/* Teardown: fail pending streams; close channel state (SHUTDOWN). */
void tri__lb_teardown(tri__loop *l);

#endif /* TRI_CONN_H */
