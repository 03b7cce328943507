#include "tri_int.h"

/*
 * Per-message compression (doc/PROTOCOL.md 3.4, 3.5, 9): identity, gzip
 * (zlib windowBits 31) and deflate (zlib-wrapped, windowBits 15, 9.1).
 * Pure code, any thread; every call uses a fresh zlib context (3.4).
 */

#include <limits.h>

#include "compress.h"

#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

static const char *const enc_names[] = {"identity", "gzip", "deflate"};

static int enc_built_in(int enc) {
#ifdef HAVE_ZLIB
  return enc == TRI__ENC_IDENTITY || enc == TRI__ENC_GZIP ||
         enc == TRI__ENC_DEFLATE;
#else
  return enc == TRI__ENC_IDENTITY;
#endif
}

int tri__enc_from_name(const char *name, size_t len) {
  int i;

  if (name == NULL)
    return TRI__ENC_UNKNOWN;
  for (i = 0; i < (int)TRI__ARRAY_LEN(enc_names); i++) {
    if (strlen(enc_names[i]) == len && memcmp(enc_names[i], name, len) == 0)
      return enc_built_in(i) ? i : TRI__ENC_UNKNOWN;
  }
  return TRI__ENC_UNKNOWN;
}

const char *tri__enc_name(int enc) {
  if (enc < 0 || enc >= (int)TRI__ARRAY_LEN(enc_names))
    return NULL;
  return enc_names[enc];
}

const char *tri__enc_accept_list(void) {
#ifdef HAVE_ZLIB
  return "identity,gzip,deflate";
#else
  return "identity";
#endif
}

/* Tokens are separated by ',' with optional spaces or tabs around them. */
int tri__enc_in_list(int enc, const char *list, size_t len) {
  const char *name = tri__enc_name(enc);
  size_t nlen, start = 0;

  if (name == NULL || list == NULL)
    return 0;
  nlen = strlen(name);
  while (start <= len) {
    size_t end = start, b, e;

    while (end < len && list[end] != ',')
      end++;
    b = start;
    e = end;
    while (b < e && (list[b] == ' ' || list[b] == '\t'))
      b++;
    while (e > b && (list[e - 1] == ' ' || list[e - 1] == '\t'))
      e--;
    if (e - b == nlen && memcmp(list + b, name, nlen) == 0)
      return 1;
    start = end + 1;
  }
  return 0;
}

#ifdef HAVE_ZLIB
static int window_bits(int enc) { return enc == TRI__ENC_GZIP ? 31 : 15; }

static int zlib_compress(int enc, const uint8_t *in, size_t n, uint8_t **out,
                         size_t *outlen) {
  static const uint8_t none[1] = {0};
  z_stream zs;
  uint8_t *buf, *nb;
  size_t cap, have = 0, left = n;
  int zr, rv;

  memset(&zs, 0, sizeof(zs));
  zr = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(enc),
                    8, Z_DEFAULT_STRATEGY);
  if (zr == Z_MEM_ERROR)
    return TRI_ENOMEM;
  if (zr != Z_OK)
    return TRI_INTERNAL;
  /* deflateBound() is exact enough for one pass; grow if it is not. */
  cap = n <= (size_t)(ULONG_MAX / 2) ? (size_t)deflateBound(&zs, (uLong)n)
                                     : n;
  if (cap < 64)
    cap = 64;
  buf = tri__malloc(cap);
  if (buf == NULL) {
    rv = TRI_ENOMEM;
    goto fail_buf;
  }
  zs.next_in = (Bytef *)(n > 0 ? in : none); /* zlib takes non-const */
  for (;;) {
    size_t chunk_in, chunk_out;

    if (have == cap) {
      if (cap > SIZE_MAX / 2) {
        rv = TRI_ENOMEM;
        goto fail;
      }
      nb = tri__realloc(buf, cap * 2);
      if (nb == NULL) {
        rv = TRI_ENOMEM;
        goto fail;
      }
      buf = nb;
      cap *= 2;
    }
    /* avail_in/avail_out are uInt: feed large buffers in pieces. */
    if (zs.avail_in == 0) {
      chunk_in = TRI__MIN(left, (size_t)UINT_MAX);
      zs.avail_in = (uInt)chunk_in;
      left -= chunk_in;
    }
    chunk_out = TRI__MIN(cap - have, (size_t)UINT_MAX);
    zs.next_out = buf + have;
    zs.avail_out = (uInt)chunk_out;
    zr = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
    have += chunk_out - zs.avail_out;
    if (zr == Z_STREAM_END)
      break;
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      rv = zr == Z_MEM_ERROR ? TRI_ENOMEM : TRI_INTERNAL;
      goto fail;
    }
  }
  deflateEnd(&zs);
  *out = buf;
  *outlen = have;
  return TRI_OK;

fail:
  tri__free(buf);
fail_buf:
  deflateEnd(&zs);
  return rv;
}
#endif /* HAVE_ZLIB */

int tri__compress(int enc, const uint8_t *in, size_t n, uint8_t **out,
                  size_t *outlen) {
  uint8_t *buf;

  if (!enc_built_in(enc))
    return TRI_UNIMPLEMENTED;
  if (enc == TRI__ENC_IDENTITY) {
    buf = tri__malloc(n);
    if (buf == NULL)
      return TRI_ENOMEM;
    if (n > 0)
      memcpy(buf, in, n);
    *out = buf;
    *outlen = n;
    return TRI_OK;
  }
#ifdef HAVE_ZLIB
  return zlib_compress(enc, in, n, out, outlen);
#else
  return TRI_UNIMPLEMENTED;
#endif
}

#ifdef HAVE_ZLIB
/*
 * Inflate into a tri_buf grown in place (doubling) up to max + 1 payload
 * bytes.  As soon as the output passes |max| we stop (3.5, zip bombs): at
 * most max + 1 bytes are ever allocated for the result, whatever the
 * compression ratio.
 */
static int zlib_decompress(int enc, const uint8_t *in, size_t n, size_t max,
                           tri_buf **out) {
  const size_t hdr = offsetof(tri_buf, bytes);
  z_stream zs;
  tri_buf *b = NULL, *nb;
  size_t limit, cap, have = 0, left = n;
  int zr, rv;

  /* Room for one byte past max: producing it proves the message too big. */
  limit = max < SIZE_MAX - hdr - 2 ? max + 1 : SIZE_MAX - hdr - 1;
  cap = n < limit / 4 ? TRI__MAX(n * 4, (size_t)256) : limit;
  cap = TRI__MIN(cap, limit);

  memset(&zs, 0, sizeof(zs));
  zr = inflateInit2(&zs, window_bits(enc));
  if (zr == Z_MEM_ERROR)
    return TRI_ENOMEM;
  if (zr != Z_OK)
    return TRI_INTERNAL;
  b = tri__malloc(hdr + cap + 1);
  if (b == NULL) {
    rv = TRI_ENOMEM;
    goto fail;
  }
  zs.next_in = (Bytef *)in; /* zlib takes non-const; never written */

  for (;;) {
    size_t chunk_in, chunk_out;

    if (zs.avail_in == 0 && left > 0) {
      chunk_in = TRI__MIN(left, (size_t)UINT_MAX);
      zs.avail_in = (uInt)chunk_in;
      left -= chunk_in;
    }
    if (have == cap) {
      if (cap >= limit) {
        rv = TRI_RESOURCE_EXHAUSTED;
        goto fail;
      }
      cap = cap <= limit / 2 ? cap * 2 : limit;
      nb = tri__realloc(b, hdr + cap + 1);
      if (nb == NULL) {
        rv = TRI_ENOMEM;
        goto fail;
      }
      b = nb;
    }
    chunk_out = TRI__MIN(cap - have, (size_t)UINT_MAX);
    zs.next_out = b->bytes + have;
    zs.avail_out = (uInt)chunk_out;
    zr = inflate(&zs, Z_NO_FLUSH);
    have += chunk_out - zs.avail_out;
    if (have > max) {
      rv = TRI_RESOURCE_EXHAUSTED;
      goto fail;
    }
    if (zr == Z_STREAM_END) {
      if (zs.avail_in == 0 && left == 0)
        break;
      /* gzip allows concatenated members (RFC 1952 2.2); anything after
       * a zlib stream is garbage. */
      if (enc != TRI__ENC_GZIP || inflateReset(&zs) != Z_OK) {
        rv = TRI_INTERNAL;
        goto fail;
      }
      continue;
    }
    if (zr == Z_OK)
      continue;
    if (zr == Z_BUF_ERROR) {
      /* No progress: out of input means truncated data (9.5). */
      if (zs.avail_in == 0 && left == 0) {
        rv = TRI_INTERNAL;
        goto fail;
      }
      continue;
    }
    rv = zr == Z_MEM_ERROR ? TRI_ENOMEM : TRI_INTERNAL; /* corrupt */
    goto fail;
  }
  inflateEnd(&zs);

  /* Give back the slack; failing to shrink is harmless. */
  if (cap > have) {
    nb = tri__realloc(b, hdr + have + 1);
    if (nb != NULL)
      b = nb;
  }
  tri__list_init(&b->link); /* only now: realloc may have moved it */
  b->len = have;
  b->cap = have; /* what is known to be there (the shrink may have failed) */
  b->flags = 0;
  b->data = b->bytes;
  b->bytes[have] = 0;
  *out = b;
  return TRI_OK;

fail:
  tri__free(b);
  inflateEnd(&zs);
  return rv;
}
#endif /* HAVE_ZLIB */

int tri__decompress(int enc, const uint8_t *in, size_t n, size_t max,
                    tri_buf **out) {
  tri_buf *b;

  if (!enc_built_in(enc))
    return TRI_UNIMPLEMENTED;
  if (enc == TRI__ENC_IDENTITY) {
    if (n > max)
      return TRI_RESOURCE_EXHAUSTED;
    b = tri__buf_new(n);
    if (b == NULL)
      return TRI_ENOMEM;
    if (n > 0)
      memcpy(b->bytes, in, n);
    *out = b;
    return TRI_OK;
  }
#ifdef HAVE_ZLIB
  return zlib_decompress(enc, in, n, max, out);
#else
  return TRI_UNIMPLEMENTED;
#endif
}
