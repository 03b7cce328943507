/*
 * fuzz_deframer: gRPC message deframing (lib/frame.h) and decompression
 * (lib/compress.h) of peer-controlled bytes, with receive limits.
 * Input: byte 0 picks the length limit, byte 1 the feed chunk size and
 * the content coding; the rest is the DATA byte stream.  Each complete
 * compressed-flagged message is decompressed with a 256 KiB limit.
 * Properties: the deframer never returns a message longer than its limit,
 * consumes at least one byte per call while input remains, and a
 * decompressed message never exceeds its limit.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "compress.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
  fprintf(stderr, "fuzz_deframer: property violated: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t limits[4] = {0, 16, 4096, 4u * 1024 * 1024};
  static const int encs[3] = {TRI__ENC_GZIP, TRI__ENC_DEFLATE,
                              TRI__ENC_IDENTITY};
  if (size < 2)
    return 0;
  size_t max = limits[data[0] & 3];
  size_t chunk = 1 + (data[1] & 0x3f) * ((data[1] & 0x40) ? 97 : 1);
  int enc = encs[(data[1] >> 6) % 3];
  const uint8_t *p = data + 2;
  size_t n = size - 2;

  if (data[0] & 0x80) {
    /* Whole input straight into the decompressor. */
    tri_buf *out = NULL;
    int rc = tri__decompress(enc, p, n, 256 * 1024, &out);
    if (rc == TRI_OK && out->len > 256 * 1024)
      fail("decompressed past the limit");
    tri_buf_free(out);
    return 0;
  }

  tri__deframer d;
  tri__deframer_init(&d, max);
  size_t off = 0;
  int guard = 0;
  while (off < n && guard++ < 1000000) {
    size_t len = n - off < chunk ? n - off : chunk;
    size_t used = 0;
    tri_buf *m = NULL;
    const char *err = NULL;
    int rc = tri__deframer_feed(&d, p + off, len, &used, &m, &err);
    if (rc != TRI_OK) {
      if (err == NULL)
        fail("error without a message");
      break;
    }
    if (used > len)
      fail("consumed more than given");
    if (used == 0 && m == NULL)
      fail("no progress");
    off += used;
    if (m != NULL) {
      if (m->len > max)
        fail("message longer than the limit");
      if (m->flags & TRI_BUF_COMPRESSED) {
        tri_buf *out = NULL;
        int r2 = tri__decompress(enc, m->data, m->len, 256 * 1024, &out);
        if (r2 == TRI_OK && out->len > 256 * 1024)
          fail("decompressed past the limit");
        tri_buf_free(out);
      }
      tri_buf_free(m);
    }
  }
  (void)tri__deframer_partial(&d);
  tri__deframer_cleanup(&d);
  return 0;
}
