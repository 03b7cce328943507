/*
 * Metadata rules, base64 for -bin keys, grpc-timeout and grpc-message
 * encodings (doc/PROTOCOL.md 2.7, 2.8, 2.12-2.15, 4.5).  Pure code, any thread.
 */
#ifndef TRI_HEADERS_H
#define TRI_HEADERS_H

#include "tri_int.h"

typedef struct {
  char *key;          /* NUL-terminated, lowercase */
  uint8_t *val;       /* decoded value, NUL-terminated (not counted);
                         the block that holds the key too (freed
                         through val: tri__md_add_raw) */
  size_t len;
} tri__md_entry;

struct tri_metadata {
  tri__md_entry *e;
  size_t n, cap;
};

void tri__md_init(tri_metadata *md);    /* embedded lists */
void tri__md_cleanup(tri_metadata *md);
/* Copy all entries of |src| to the end of |dst|.  TRI_OK / TRI_ENOMEM. */
int tri__md_append(tri_metadata *dst, const tri_metadata *src);

/* 1 if |key| (length |len|) is a valid application key: 1+ of [0-9a-z_.-],
 * and not reserved "grpc-" prefixed. */
int tri__md_key_valid(const char *key, size_t len);
/* The value of hex digit |c| (either case), or -1. */
int tri__hex_value(int c);
/* 1 if an ASCII value is valid: bytes 0x20..0x7E. */
int tri__md_ascii_value_valid(const uint8_t *v, size_t len);
/* 1 if |key| ends in "-bin". */
int tri__md_key_is_bin(const char *key, size_t len);
/* 1 if |key| is reserved and not handed to applications (2.15):
 * pseudo-headers, content-type, user-agent, te, grpc-encoding,
 * grpc-accept-encoding, grpc-message, grpc-status, grpc-timeout,
 * grpc-status-details-bin, grpc-message-type. */
int tri__md_is_reserved(const char *key, size_t len);

/* Append without validation (key copied and lowercased? no: as given). */
int tri__md_add_raw(tri_metadata *md, const char *key, size_t klen,
                    const uint8_t *val, size_t vlen);
/* Append a header as received from the wire: for -bin keys split the value
 * on ',' and base64-decode each piece (padded or unpadded); a piece that is
 * not valid base64 is skipped (never fails the call).  TRI_OK/TRI_ENOMEM. */
int tri__md_add_wire(tri_metadata *md, const char *key, size_t klen,
                     const uint8_t *val, size_t vlen);

/* Base64 (RFC 4648 section 4, standard alphabet). */
size_t tri__b64_encoded_len(size_t n);  /* unpadded length */
/* Unpadded encode into |out| (tri__b64_encoded_len(n) bytes, no NUL);
 * returns the length written. */
size_t tri__b64_encode(const uint8_t *in, size_t n, char *out);
/* Decode padded or unpadded input into |out| (at least n*3/4+3 bytes).
 * Returns 0 and *outlen, or -1 on invalid input. */
int tri__b64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen);

/* grpc-timeout (2.7): encode |ns| (> 0) choosing the finest unit whose
 * value fits in 8 digits, rounding up.  Writes a NUL-terminated string into
 * |out| (at least 16 bytes); returns its length. */
size_t tri__timeout_encode(int64_t ns, char *out);
/* Parse strictly (2.8): 1-8 digits then one of H M S m u n.  Returns 0 and
 * *ns (saturated to INT64_MAX) or -1 when malformed. */
int tri__timeout_parse(const char *s, size_t len, int64_t *ns);

/* grpc-message percent-encoding (4.5): bytes outside 0x20..0x7E and '%'
 * become %XX (uppercase).  Returns a tri__malloc'd NUL-terminated string
 * (length in *outlen if not NULL), NULL when out of memory. */
char *tri__pct_encode(const char *msg, size_t len, size_t *outlen);
/* Decode leniently: a bad escape is kept literally.  tri__malloc'd,
 * NUL-terminated; NULL when out of memory. */
char *tri__pct_decode(const char *s, size_t len);

#endif /* TRI_HEADERS_H */
