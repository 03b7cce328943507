/*
 * h2raw: a deliberately dumb HTTP/2 client for the hardening suites.
 *
 * It writes frames byte by byte as the attacker wants them (no flow
 * control, no state machine, no politeness), encodes header blocks by hand
 * (HPACK literal-without-indexing, plus the raw primitives an attacker
 * needs: indexed fields and literals with incremental indexing), and reads
 * what the server answers on a background thread, decoding HEADERS with
 * nghttp2's HPACK inflater only to count grpc-status values.
 *
 * Everything works over loopback TCP only (127.0.0.1).  Every blocking
 * operation takes a timeout.  Helpers abort() on out-of-memory: they are
 * test code.
 */
#ifndef H2RAW_H
#define H2RAW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Frame types (RFC 9113 section 6). */
enum {
  H2_DATA = 0x0,
  H2_HEADERS = 0x1,
  H2_PRIORITY = 0x2,
  H2_RST_STREAM = 0x3,
  H2_SETTINGS = 0x4,
  H2_PUSH_PROMISE = 0x5,
  H2_PING = 0x6,
  H2_GOAWAY = 0x7,
  H2_WINDOW_UPDATE = 0x8,
  H2_CONTINUATION = 0x9,
  H2_NTYPES = 10
};

/* Flags. */
enum {
  H2_F_END_STREAM = 0x01,
  H2_F_ACK = 0x01,
  H2_F_END_HEADERS = 0x04,
  H2_F_PADDED = 0x08,
  H2_F_PRIORITY = 0x20
};

/* SETTINGS identifiers. */
enum {
  H2_S_HEADER_TABLE_SIZE = 0x1,
  H2_S_ENABLE_PUSH = 0x2,
  H2_S_MAX_CONCURRENT_STREAMS = 0x3,
  H2_S_INITIAL_WINDOW_SIZE = 0x4,
  H2_S_MAX_FRAME_SIZE = 0x5,
  H2_S_MAX_HEADER_LIST_SIZE = 0x6
};

/* Error codes (RFC 9113 section 7). */
enum {
  H2_NO_ERROR = 0x0,
  H2_PROTOCOL_ERROR = 0x1,
  H2_INTERNAL_ERROR = 0x2,
  H2_FLOW_CONTROL_ERROR = 0x3,
  H2_SETTINGS_TIMEOUT = 0x4,
  H2_STREAM_CLOSED = 0x5,
  H2_FRAME_SIZE_ERROR = 0x6,
  H2_REFUSED_STREAM = 0x7,
  H2_CANCEL = 0x8,
  H2_COMPRESSION_ERROR = 0x9,
  H2_CONNECT_ERROR = 0xa,
  H2_ENHANCE_YOUR_CALM = 0xb,
  H2_INADEQUATE_SECURITY = 0xc,
  H2_HTTP_1_1_REQUIRED = 0xd
};

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/** "ENHANCE_YOUR_CALM" etc., or "0x.." (static/thread-local buffer). */
const char *h2_errname(uint32_t code);

/* ---------------------------------------------------------------- */
/* Growable byte buffer                                              */
/* ---------------------------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} h2buf;

void h2buf_put(h2buf *b, const void *data, size_t n);
void h2buf_put8(h2buf *b, uint8_t v);
void h2buf_put32(h2buf *b, uint32_t v); /* big endian */
void h2buf_reset(h2buf *b);             /* len = 0, keeps memory */
void h2buf_free(h2buf *b);

/** Append one frame: 9-byte header then |len| payload bytes. */
void h2_frame(h2buf *b, uint8_t type, uint8_t flags, uint32_t sid,
              const void *payload, size_t len);
/** Append the client connection preface and a SETTINGS frame with |n|
 * (id, value) pairs. */
void h2_preface(h2buf *b, const uint32_t (*settings)[2], size_t n);
void h2_settings(h2buf *b, const uint32_t (*settings)[2], size_t n);
void h2_ping(h2buf *b, uint64_t opaque);
void h2_rst(h2buf *b, uint32_t sid, uint32_t code);
void h2_window_update(h2buf *b, uint32_t sid, uint32_t inc);
void h2_goaway(h2buf *b, uint32_t last_sid, uint32_t code);
/** Append a gRPC length-prefixed message to |b| (not a frame). */
void h2_grpc_msg(h2buf *b, const void *data, uint32_t len);

/* ---------------------------------------------------------------- */
/* HPACK by hand (RFC 7541)                                          */
/* ---------------------------------------------------------------- */

/** Integer with an N-bit prefix; |first| holds the pattern bits. */
void hp_int(h2buf *b, uint8_t first, int prefix_bits, uint64_t v);
/** Literal field without indexing, new name (0x00 pattern). */
void hp_lit(h2buf *b, const char *name, const void *val, size_t vlen);
void hp_lits(h2buf *b, const char *name, const char *val);
/** Literal field with incremental indexing, new name (0x40 pattern). */
void hp_lit_index(h2buf *b, const char *name, const void *val, size_t vlen);
/** Indexed field (0x80 pattern). */
void hp_indexed(h2buf *b, uint32_t index);
/**
 * A complete gRPC request header block for |path|: :method POST, :scheme
 * http, :path, :authority, content-type application/grpc, te trailers and,
 * when |timeout| is not NULL, grpc-timeout (e.g. "3S").
 */
void hp_grpc_request(h2buf *b, const char *path, const char *timeout);

/* ---------------------------------------------------------------- */
/* Sockets                                                           */
/* ---------------------------------------------------------------- */

/**
 * TCP connect to 127.0.0.1:|port| (blocking connect, then non-blocking
 * socket, TCP_NODELAY).  |rcvbuf| > 0 sets SO_RCVBUF before connecting
 * (a small window for "never reads" tests).  Returns the fd or -1.
 */
int h2_connect(int port, int rcvbuf);

/**
 * Write all of |data| within |timeout_ms| (poll for POLLOUT between
 * partial writes).  Returns 0; -1 on a socket error (errno kept: EPIPE,
 * ECONNRESET mean the peer closed); -2 on timeout (*|written| tells how
 * much went out, if not NULL).
 */
int h2_write_all(int fd, const void *data, size_t n, int timeout_ms,
                 size_t *written);

/** Read exactly |n| bytes within |timeout_ms|.  0, or -1 (EOF, error,
 * timeout). */
int h2_read_exact(int fd, void *out, size_t n, int timeout_ms);

/** Close with SO_LINGER {1, 0}: the kernel sends RST. */
void h2_close_reset(int fd);

/**
 * Synchronous handshake on a fresh connection: send the preface with the
 * given settings, read until the server's (non-ACK) SETTINGS arrives (other
 * frames are skipped), ACK it.  Returns 0 or -1 (closed, timeout, garbage).
 */
int h2_handshake(int fd, const uint32_t (*settings)[2], size_t n,
                 int timeout_ms);
/** h2_handshake() that also stores the server's SETTINGS values in
 * |server_settings| (indexed by identifier 1..6; entries not sent are left
 * as they were, so preset the RFC defaults). */
int h2_handshake2(int fd, const uint32_t (*settings)[2], size_t n,
                  int timeout_ms, uint32_t server_settings[7]);

/* ---------------------------------------------------------------- */
/* Background reader                                                 */
/* ---------------------------------------------------------------- */

/*
 * Reads the socket on its own thread until EOF, an error or stop, parses
 * frames, and counts what the server said.  It never writes.  The
 * attacking thread writes meanwhile (HTTP/2 frames may be read and written
 * concurrently on one TCP socket).
 */
typedef struct {
  int fd;
  pthread_t t;
  int started;
  atomic_int stop;
  atomic_int closed;           /* EOF or read error seen */
  atomic_int close_errno;      /* 0 for EOF, ECONNRESET, ... */
  atomic_llong closed_at_ms;   /* h2_now_ms() when closed */
  atomic_int goaways;          /* GOAWAY frames seen */
  atomic_uint goaway_code;     /* error code of the last one */
  atomic_uint goaway_last_sid;
  atomic_llong goaway_at_ms;
  char goaway_debug[128];      /* debug data of the last GOAWAY */
  atomic_long frames[H2_NTYPES];
  atomic_long rst_by_code[16]; /* RST_STREAM by error code (0..15) */
  atomic_long grpc_status[18]; /* trailers / trailers-only grpc-status; 17 = other */
  atomic_long http_non200;     /* :status other than 200 */
  atomic_long data_bytes;
  atomic_long bytes;           /* everything read */
  int decode_headers;          /* set before start: run the HPACK inflater */
} h2reader;

/** Start reading |fd| (set decode_headers before if wanted). */
void h2reader_start(h2reader *r, int fd, int decode_headers);
/** Wait up to |timeout_ms| for EOF/error; 0 when closed, -1 otherwise. */
int h2reader_wait_closed(h2reader *r, int timeout_ms);
/** Wait up to |timeout_ms| for GOAWAY or close; 0 when either, else -1. */
int h2reader_wait_goaway_or_close(h2reader *r, int timeout_ms);
/** Stop and join the thread (does not close the fd). */
void h2reader_stop(h2reader *r);
/** One-line summary of what was seen, for messages (thread-local buffer). */
const char *h2reader_summary(h2reader *r);

/** Monotonic milliseconds. */
int64_t h2_now_ms(void);
void h2_sleep_ms(int ms);

#endif /* H2RAW_H */
