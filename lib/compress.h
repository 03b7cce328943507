/*
 * Per-message compression (doc/PROTOCOL.md 3.4, 3.5, 9).  Pure code, any
 * thread; each call uses a fresh zlib context.  Without zlib only identity
 * is available.
 */
#ifndef TRI_COMPRESS_H
#define TRI_COMPRESS_H

#include "tri_int.h"
#include "frame.h"

enum {
  TRI__ENC_UNKNOWN = -1,
  TRI__ENC_IDENTITY = 0,
  TRI__ENC_GZIP = 1,
  TRI__ENC_DEFLATE = 2
};

/* Encoding id for a grpc-encoding token (case-sensitive, as on the wire),
 * TRI__ENC_UNKNOWN when unknown or not built in. */
int tri__enc_from_name(const char *name, size_t len);
/* "identity", "gzip", "deflate" */
const char *tri__enc_name(int enc);
/* Value for grpc-accept-encoding: every coding we decode, e.g.
 * "identity,gzip,deflate" (just "identity" without zlib). */
const char *tri__enc_accept_list(void);
/* 1 if the comma-separated accept list |list| contains |enc|. */
int tri__enc_in_list(int enc, const char *list, size_t len);

/* Compress |n| bytes into a tri__malloc'd buffer.  TRI_OK, TRI_ENOMEM,
 * TRI_UNIMPLEMENTED (encoding not built in), TRI_INTERNAL. */
int tri__compress(int enc, const uint8_t *in, size_t n, uint8_t **out,
                  size_t *outlen);
/* Decompress into a new message of at most |max| bytes, inflating
 * incrementally so an oversized result stops at max+1 bytes (zip-bomb
 * safe).  Returns TRI_OK; TRI_RESOURCE_EXHAUSTED (result larger than
 * |max|); TRI_INTERNAL (corrupt or truncated data); TRI_UNIMPLEMENTED
 * (encoding not built in); TRI_ENOMEM.  *out's flags are 0; the caller sets
 * TRI_BUF_COMPRESSED. */
int tri__decompress(int enc, const uint8_t *in, size_t n, size_t max,
                    tri_buf **out);

#endif /* TRI_COMPRESS_H */
