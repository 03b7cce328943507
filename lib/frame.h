/*
 * gRPC message framing (doc/PROTOCOL.md 3.1-3.5): 1 flag byte, 4-byte
 * big-endian length, payload.  Pure code, no I/O, any thread; a deframer
 * is used by one thread at a time (the connection's I/O thread).
 */
#ifndef TRI_FRAME_H
#define TRI_FRAME_H

#include "tri_int.h"

#define TRI__FRAME_HDR_LEN 5
#define TRI__FRAME_FLAG_COMPRESSED 0x01u

/* A received message.  Link is used by the stream's receive queue. */
struct tri_buf {
  tri__list link;
  size_t len;
  size_t cap;       /* payload bytes the block holds (>= len) */
  unsigned flags;   /* TRI_BUF_* */
  uint8_t *data;    /* == bytes unless set otherwise */
  uint8_t bytes[];  /* len bytes, plus one NUL for safety */
};

/* Allocate a message of |len| bytes (data = bytes, bytes[len] = 0), link
 * initialised.  NULL when out of memory. */
tri_buf *tri__buf_new(size_t len);

/* Write the 5-byte prefix. */
void tri__frame_put_header(uint8_t out[TRI__FRAME_HDR_LEN], int compressed,
                           uint32_t len);

typedef struct {
  uint8_t hdr[TRI__FRAME_HDR_LEN];
  size_t hdr_have;     /* bytes of hdr collected */
  tri_buf *cur;        /* message being filled; NULL until its first
                          payload byte arrives */
  size_t want;         /* announced length of the current message */
  size_t have;         /* payload bytes received */
  size_t cap;          /* payload bytes cur can hold (grows with have) */
  size_t max_len;      /* limit on the length prefix */
  int err;             /* first error; the deframer is unusable after */
  uint32_t rejected_len; /* the announced length refused (err set) */
  tri_buf *spare;      /* a block to fill next instead of a new one
                          (tri__stream_recycle); owned by the deframer */
} tri__deframer;

void tri__deframer_init(tri__deframer *d, size_t max_len);
void tri__deframer_cleanup(tri__deframer *d); /* frees a partial message */
/* Free a spare receive block kept for the next message (NULL: none) and
 * take it off TRI__B_SPARE.  Any thread. */
void tri__spare_drop(tri_buf *b);

/*
 * Feed bytes.  Consumes up to |len| bytes and stops after the first
 * complete message: *|consumed| says how many bytes were used, *|out| is the
 * message (caller owns; flags has TRI_BUF_COMPRESSED when the compressed
 * bit was set) or NULL when more bytes are needed.  Callers loop until all
 * bytes are consumed.
 * Returns TRI_OK, or on bad input (the deframer is then unusable):
 *   TRI_RESOURCE_EXHAUSTED  length prefix > max_len (checked before any
 *                           allocation); *errmsg says sizes
 *   TRI_INTERNAL            reserved flag bits set (3.1)
 *   TRI_ENOMEM              allocation failed
 * |errmsg| (may be NULL) receives a static or thread-local description.
 */
int tri__deframer_feed(tri__deframer *d, const uint8_t *data, size_t len,
                       size_t *consumed, tri_buf **out, const char **errmsg);

/* Non-zero while a message is partly received (end of stream now would be
 * a truncated message, doc/PROTOCOL.md 6.3 / 5.3). */
int tri__deframer_partial(const tri__deframer *d);

#endif /* TRI_FRAME_H */
