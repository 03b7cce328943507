#include "tri_int.h"

/*
 * gRPC length-prefixed message framing (doc/PROTOCOL.md 3.1-3.5).
 * Pure code, no I/O.  Any thread; one deframer is fed by one thread at a
 * time (the connection's I/O thread).
 */

#include <inttypes.h>

#include "budget.h"
#include "frame.h"

/* First allocation for a message whose bytes have started to arrive; the
 * buffer then grows with the bytes actually received, never ahead of them
 * by more than this or a doubling (a peer announcing 4 GiB and sending 10
 * bytes costs 10 bytes plus this, not 4 GiB). */
#define DEFRAME_MIN_CAP ((size_t)16 * 1024)

/* Bytes of a tri_buf holding |len| payload bytes plus the safety NUL. */
static int buf_size(size_t len, size_t *out) {
  size_t hdr = offsetof(tri_buf, bytes);

  if (len > SIZE_MAX - hdr - 1)
    return -1;
  *out = hdr + len + 1;
  return 0;
}

tri_buf *tri__buf_new(size_t len) {
  tri_buf *b;
  size_t sz;

  if (buf_size(len, &sz) != 0)
    return NULL;
  b = tri__malloc(sz);
  if (b == NULL)
    return NULL;
  tri__list_init(&b->link);
  b->len = len;
  b->cap = len;
  b->flags = 0;
  b->data = b->bytes;
  b->bytes[len] = 0;
  return b;
}

void tri__frame_put_header(uint8_t out[TRI__FRAME_HDR_LEN], int compressed,
                           uint32_t len) {
  out[0] = compressed ? TRI__FRAME_FLAG_COMPRESSED : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}

void tri__deframer_init(tri__deframer *d, size_t max_len) {
  memset(d->hdr, 0, sizeof(d->hdr));
  d->hdr_have = 0;
  d->cur = NULL;
  d->spare = NULL;
  d->have = 0;
  d->cap = 0;
  d->want = 0;
  d->err = TRI_OK;
  d->max_len = max_len;
}

void tri__spare_drop(tri_buf *b) {
  if (b == NULL)
    return;
  tri__budget_add(TRI__B_SPARE, -(int64_t)b->cap);
  tri__free(b);
}

void tri__deframer_cleanup(tri__deframer *d) {
  if (d->cur != NULL)
    tri__budget_add(TRI__B_PARTIAL, -(int64_t)d->cap);
  tri__free(d->cur);
  d->cur = NULL;
  tri__spare_drop(d->spare);
  d->spare = NULL;
  d->hdr_have = 0;
  d->have = 0;
  d->cap = 0;
  d->want = 0;
}

int tri__deframer_partial(const tri__deframer *d) {
  return d->hdr_have > 0 || d->have > 0;
}

/*
 * Validate a complete 5-byte prefix and allocate its message.  On error the
 * header stays complete (hdr_have == 5) and cur NULL, so feeding again
 * reports the same error: the deframer is unusable, never inconsistent.
 */
static int start_message(tri__deframer *d, const char **errmsg) {
  /* Thread-local so the text can carry sizes without shared state. */
  static _Thread_local char msgbuf[128];
  uint32_t len = ((uint32_t)d->hdr[1] << 24) | ((uint32_t)d->hdr[2] << 16) |
                 ((uint32_t)d->hdr[3] << 8) | (uint32_t)d->hdr[4];

  /* 3.1: only bit 0x01 is defined in gRPC; 0x80 is gRPC-Web trailers. */
  if (d->hdr[0] & ~TRI__FRAME_FLAG_COMPRESSED) {
    if (errmsg)
      *errmsg = "reserved flag bits set in gRPC message prefix";
    return TRI_INTERNAL;
  }
  /* 3.5: check the prefix before allocating anything. */
  if ((uint64_t)len > (uint64_t)d->max_len) {
    d->rejected_len = len;
    if (errmsg) {
      snprintf(msgbuf, sizeof(msgbuf),
               "received message larger than max (%" PRIu32 " vs. %zu)", len,
               d->max_len);
      *errmsg = msgbuf;
    }
    return TRI_RESOURCE_EXHAUSTED;
  }
  d->want = len;
  d->cur = NULL; /* allocated as bytes arrive (grow()) */
  d->have = 0;
  d->cap = 0;
  return TRI_OK;
}

/* Make room for |need| payload bytes in total (cur may be NULL). */
static int grow(tri__deframer *d, size_t need, const char **errmsg) {
  size_t cap, sz;
  tri_buf *nb;

  if (d->cur != NULL && d->cap >= need)
    return TRI_OK;
  if (d->cur == NULL && d->spare != NULL) {
    nb = d->spare;
    d->spare = NULL;
    tri__budget_add(TRI__B_SPARE, -(int64_t)nb->cap); /* kept no more */
    /* A block the application gave back holds the whole message and is
     * not much larger: fill it, so a stream of large messages allocates
     * (and faults in) nothing per message.  Otherwise it goes. */
    if (nb->cap >= d->want && nb->cap / 2 <= d->want) {
      tri__list_init(&nb->link);
      nb->flags = (d->hdr[0] & TRI__FRAME_FLAG_COMPRESSED) ? TRI_BUF_COMPRESSED
                                                           : 0;
      nb->data = nb->bytes;
      tri__budget_add(TRI__B_PARTIAL, (int64_t)d->want);
      d->cur = nb;
      d->cap = d->want;
      return TRI_OK;
    }
    tri__free(nb);
  }
  cap = d->cap ? d->cap * 2 : DEFRAME_MIN_CAP;
  if (cap < need)
    cap = need;
  if (cap > d->want)
    cap = d->want;
  if (buf_size(cap, &sz) != 0)
    return TRI_ENOMEM;
  nb = tri__realloc(d->cur, sz);
  if (nb == NULL) {
    if (errmsg)
      *errmsg = "out of memory for received message";
    return TRI_ENOMEM;
  }
  if (d->cur == NULL) {
    tri__list_init(&nb->link);
    nb->flags = (d->hdr[0] & TRI__FRAME_FLAG_COMPRESSED) ? TRI_BUF_COMPRESSED
                                                         : 0;
  }
  nb->data = nb->bytes; /* the block may have moved */
  nb->cap = cap;
  tri__budget_add(TRI__B_PARTIAL, (int64_t)cap - (int64_t)d->cap);
  d->cur = nb;
  d->cap = cap;
  return TRI_OK;
}

int tri__deframer_feed(tri__deframer *d, const uint8_t *data, size_t len,
                       size_t *consumed, tri_buf **out, const char **errmsg) {
  size_t used = 0;
  int rv;

  *out = NULL;
  *consumed = 0;
  if (d->err != TRI_OK) {
    if (errmsg)
      *errmsg = "message framing failed earlier on this stream";
    return d->err;
  }

  if (d->hdr_have < TRI__FRAME_HDR_LEN) {
    size_t take = TRI__MIN(TRI__FRAME_HDR_LEN - d->hdr_have, len);

    if (take > 0) {
      memcpy(d->hdr + d->hdr_have, data, take);
      d->hdr_have += take;
      used = take;
    }
    if (d->hdr_have < TRI__FRAME_HDR_LEN) {
      *consumed = used; /* need more bytes */
      return TRI_OK;
    }
    rv = start_message(d, errmsg);
    if (rv != TRI_OK) {
      d->err = rv;
      *consumed = used;
      return rv;
    }
  }

  /* 3.2: payload bytes may arrive in any number of pieces. */
  if (d->have < d->want) {
    size_t take = TRI__MIN(d->want - d->have, len - used);

    if (take > 0) {
      rv = grow(d, d->have + take, errmsg);
      if (rv != TRI_OK) {
        d->err = rv;
        *consumed = used;
        return rv;
      }
      memcpy(d->cur->bytes + d->have, data + used, take);
      d->have += take;
      used += take;
    }
  }
  if (d->have == d->want) { /* complete, zero-length included (3.3) */
    if (d->cur == NULL && grow(d, 0, errmsg) != TRI_OK) {
      *consumed = used;
      return TRI_ENOMEM;
    }
    d->cur->len = d->want;
    d->cur->bytes[d->want] = 0;
    tri__budget_add(TRI__B_PARTIAL, -(int64_t)d->cap);
    *out = d->cur;
    d->cur = NULL;
    d->have = 0;
    d->cap = 0;
    d->want = 0;
    d->hdr_have = 0;
  }

  *consumed = used;
  return TRI_OK;
}

/* ---- public accessors ---- */

const uint8_t *tri_buf_data(const tri_buf *b) {
  static const uint8_t empty[1] = {0};

  return b != NULL ? b->data : empty;
}

size_t tri_buf_len(const tri_buf *b) { return b != NULL ? b->len : 0; }

unsigned tri_buf_flags(const tri_buf *b) { return b != NULL ? b->flags : 0; }

void tri_buf_free(tri_buf *b) { tri__free(b); }
