/*
 * fuzz_headers: the header-value parsers a peer controls (lib/headers.h,
 * lib/status.h): grpc-timeout, grpc-message percent-decoding, metadata
 * from the wire (-bin base64), base64, grpc-status.  Besides memory
 * safety it checks round-trip properties and aborts when one fails:
 *   timeout: parse(encode(ns)) succeeds and is >= ns (rounded up);
 *   message: pct_decode(pct_encode(x)) == x for any bytes x;
 *   base64:  decode(encode(decode(x))) == decode(x).
 * Input: first byte selects the parser, the rest is the value.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "headers.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
  fprintf(stderr, "fuzz_headers: property violated: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  /* An exact-size copy so ASan sees any over-read of the value. */
  size_t n = size - 1;
  char *v = malloc(n ? n : 1);
  if (v == NULL)
    return 0;
  memcpy(v, data + 1, n);

  switch (sel % 6) {
  case 0: { /* grpc-timeout */
    int64_t ns;
    if (tri__timeout_parse(v, n, &ns) == 0 && ns > 0) {
      char enc[32];
      int64_t back;
      size_t el = tri__timeout_encode(ns, enc);
      if (el == 0 || el >= 16 || strlen(enc) != el)
        fail("timeout_encode length");
      if (tri__timeout_parse(enc, el, &back) != 0)
        fail("timeout_encode output does not parse");
      if (back < ns)
        fail("timeout round trip shortened the deadline");
    }
    break;
  }
  case 1: { /* grpc-message */
    char *d = tri__pct_decode(v, n);
    if (d != NULL) {
      size_t dl = strlen(d); /* may stop at a decoded NUL: fine */
      size_t el = 0;
      char *e = tri__pct_encode(d, dl, &el);
      if (e != NULL) {
        char *d2 = tri__pct_decode(e, el);
        if (d2 != NULL && strcmp(d, d2) != 0)
          fail("pct_decode(pct_encode(x)) != x");
        tri__free(d2);
        tri__free(e);
      }
      tri__free(d);
    }
    break;
  }
  case 2:
  case 3: { /* metadata from the wire: key\0value; sel 3 forces -bin */
    char *z = memchr(v, 0, n);
    size_t klen = z ? (size_t)(z - v) : n / 2;
    const uint8_t *val = (const uint8_t *)v + (z ? klen + 1 : klen);
    size_t vlen = n - (size_t)(val - (const uint8_t *)v);
    tri_metadata md;
    tri__md_init(&md);
    if (sel % 6 == 3) {
      char *key = malloc(klen + 5);
      if (key) {
        memcpy(key, v, klen);
        memcpy(key + klen, "-bin", 4);
        tri__md_add_wire(&md, key, klen + 4, val, vlen);
        free(key);
      }
    } else {
      tri__md_add_wire(&md, v, klen, val, vlen);
    }
    for (size_t i = 0; i < md.n; i++) {
      const char *k;
      const void *vv;
      size_t vl;
      if (tri_metadata_get(&md, i, &k, &vv, &vl) == TRI_OK && vv != NULL &&
          ((const uint8_t *)vv)[vl] != 0)
        fail("metadata value not NUL-terminated");
    }
    (void)tri__md_key_valid(v, klen);
    (void)tri__md_is_reserved(v, klen);
    tri__md_cleanup(&md);
    break;
  }
  case 4: { /* base64 */
    uint8_t *out = malloc(n * 3 / 4 + 3);
    size_t ol;
    if (out && tri__b64_decode(v, n, out, &ol) == 0) {
      char *e = malloc(tri__b64_encoded_len(ol) + 1);
      uint8_t *out2 = malloc(ol + 3);
      if (e && out2) {
        size_t el = tri__b64_encode(out, ol, e);
        size_t ol2;
        if (tri__b64_decode(e, el, out2, &ol2) != 0 || ol2 != ol ||
            memcmp(out, out2, ol) != 0)
          fail("base64 round trip");
      }
      free(e);
      free(out2);
    }
    free(out);
    break;
  }
  case 5: { /* grpc-status */
    int c = tri__status_parse(v, n);
    if (c < -1)
      fail("status_parse returned < -1");
    break;
  }
  }
  free(v);
  return 0;
}
