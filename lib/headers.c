#include "tri_int.h"

/*
 * Metadata lists and header value codings: key/value rules (doc/PROTOCOL.md
 * 2.12-2.15), base64 for -bin keys, grpc-timeout (2.7, 2.8), grpc-message
 * percent-encoding (4.5).  Pure code, no I/O, any thread; a list is
 * modified by one thread at a time.
 */

#include "headers.h"

/* ---- metadata list ---- */

void tri__md_init(tri_metadata *md) {
  md->e = NULL;
  md->n = 0;
  md->cap = 0;
}

void tri__md_cleanup(tri_metadata *md) {
  size_t i;

  for (i = 0; i < md->n; i++)
    tri__free(md->e[i].val); /* the key shares its block */
  tri__free(md->e);
  tri__md_init(md);
}

static int md_reserve(tri_metadata *md, size_t extra) {
  size_t cap;
  tri__md_entry *e;

  if (md->cap - md->n >= extra)
    return TRI_OK;
  if (extra > SIZE_MAX / sizeof(*e) - md->n)
    return TRI_ENOMEM;
  cap = md->cap ? md->cap : 4;
  while (cap - md->n < extra)
    cap = cap > SIZE_MAX / sizeof(*e) / 2 ? md->n + extra : cap * 2;
  e = tri__realloc(md->e, cap * sizeof(*e));
  if (e == NULL)
    return TRI_ENOMEM;
  md->e = e;
  md->cap = cap;
  return TRI_OK;
}

int tri__md_add_raw(tri_metadata *md, const char *key, size_t klen,
                    const uint8_t *val, size_t vlen) {
  tri__md_entry *ent;
  char *k;
  uint8_t *v;

  /* Value and key in one block (the value first, so it keeps malloc's
   * alignment; freed through it): one allocation per header on the
   * server's I/O thread, not two. */
  if (md_reserve(md, 1) != TRI_OK || klen > SIZE_MAX / 2 - 1 ||
      vlen > SIZE_MAX / 2 - 1)
    return TRI_ENOMEM;
  v = tri__malloc(vlen + 1 + klen + 1);
  if (v == NULL)
    return TRI_ENOMEM;
  k = (char *)v + vlen + 1;
  if (klen > 0)
    memcpy(k, key, klen);
  k[klen] = '\0';
  if (vlen > 0)
    memcpy(v, val, vlen);
  v[vlen] = 0;
  ent = &md->e[md->n++];
  ent->key = k;
  ent->val = v;
  ent->len = vlen;
  return TRI_OK;
}

int tri__md_append(tri_metadata *dst, const tri_metadata *src) {
  size_t i, n0 = dst->n;

  if (md_reserve(dst, src->n) != TRI_OK)
    return TRI_ENOMEM;
  for (i = 0; i < src->n; i++) {
    const tri__md_entry *s = &src->e[i];

    if (tri__md_add_raw(dst, s->key, strlen(s->key), s->val, s->len) !=
        TRI_OK) {
      /* A failed call changes nothing: drop what was appended. */
      while (dst->n > n0) {
        dst->n--;
        tri__free(dst->e[dst->n].val);
      }
      return TRI_ENOMEM;
    }
  }
  return TRI_OK;
}

/* ---- key and value rules ---- */

static int lower_ascii(int c) {
  return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive equality of |key|/|len| with the NUL-terminated
 * lower-case |lit|.  Received names are lower case (RFC 9113 8.2.1), so
 * the exact comparison settles nearly every call; inlined, the length of
 * the literal is a constant. */
static inline int key_eq(const char *key, size_t len, const char *lit) {
  size_t i;

  if (strlen(lit) != len)
    return 0;
  if (memcmp(key, lit, len) == 0)
    return 1;
  for (i = 0; i < len; i++) {
    if (lit[i] == '\0' || lower_ascii((unsigned char)key[i]) != lit[i])
      return 0;
  }
  return lit[len] == '\0';
}

int tri__md_key_valid(const char *key, size_t len) {
  size_t i;

  if (key == NULL || len == 0)
    return 0;
  for (i = 0; i < len; i++) {
    char c = key[i];

    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
  }
  /* 2.14: grpc-* names are the protocol's. */
  if (len >= 5 && memcmp(key, "grpc-", 5) == 0)
    return 0;
  return 1;
}

int tri__md_ascii_value_valid(const uint8_t *v, size_t len) {
  size_t i;

  if (v == NULL)
    return len == 0;
  for (i = 0; i < len; i++) {
    if (v[i] < 0x20 || v[i] > 0x7E)
      return 0;
  }
  return 1;
}

int tri__md_key_is_bin(const char *key, size_t len) {
  return key != NULL && len >= 4 && key_eq(key + len - 4, 4, "-bin");
}

int tri__md_is_reserved(const char *key, size_t len) {
  /* Dispatch on length first: this runs once per received header. */
  if (key == NULL || len == 0)
    return 0;
  if (key[0] == ':') /* pseudo-headers */
    return 1;
  switch (len) {
  case 2:
    return key_eq(key, len, "te");
  case 10:
    return key_eq(key, len, "user-agent");
  case 11:
    return key_eq(key, len, "grpc-status");
  case 12:
    return key_eq(key, len, "content-type") ||
           key_eq(key, len, "grpc-message") ||
           key_eq(key, len, "grpc-timeout");
  case 13:
    return key_eq(key, len, "grpc-encoding");
  case 17:
    return key_eq(key, len, "grpc-message-type");
  case 20:
    return key_eq(key, len, "grpc-accept-encoding");
  case 23:
    return key_eq(key, len, "grpc-status-details-bin");
  default:
    return 0;
  }
}

/* ---- base64, RFC 4648 section 4 ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t tri__b64_encoded_len(size_t n) {
  return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t tri__b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i, o = 0;

  for (i = 0; i + 3 <= n; i += 3) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) |
                 (uint32_t)in[i + 2];

    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;

    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);

    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = b64_alphabet[(v >> 6) & 63];
  }
  return o;
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/* 2.12: accept padded and unpadded input.  Non-zero bits left over in the
 * last character are ignored, as most decoders do. */
int tri__b64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen) {
  size_t i, o = 0, pad = 0;
  uint32_t acc = 0;
  int bits = 0;

  if (n > 0 && in[n - 1] == '=') {
    pad = (n > 1 && in[n - 2] == '=') ? 2 : 1;
    if (n % 4 != 0)
      return -1;
    n -= pad;
    /* "xx==" leaves 2 chars in the last group, "xxx=" leaves 3. */
    if (n % 4 != 4 - pad)
      return -1;
  }
  if (n % 4 == 1)
    return -1;
  for (i = 0; i < n; i++) {
    int v = b64_value(in[i]);

    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  *outlen = o;
  return 0;
}

int tri__md_add_wire(tri_metadata *md, const char *key, size_t klen,
                     const uint8_t *val, size_t vlen) {
  const char *v = (const char *)val;
  size_t start = 0;
  uint8_t *tmp;

  if (!tri__md_key_is_bin(key, klen))
    return tri__md_add_raw(md, key, klen, val, vlen);

  /* Decoded pieces are never longer than the encoded value. */
  tmp = tri__malloc(vlen + 3);
  if (tmp == NULL)
    return TRI_ENOMEM;
  /* 2.12, 2.13: a peer may have joined several values with ','. */
  for (;;) {
    size_t end = start, b, e, dlen;

    while (end < vlen && v[end] != ',')
      end++;
    b = start;
    e = end;
    while (b < e && (v[b] == ' ' || v[b] == '\t'))
      b++;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
      e--;
    if (tri__b64_decode(v + b, e - b, tmp, &dlen) == 0 &&
        tri__md_add_raw(md, key, klen, tmp, dlen) != TRI_OK) {
      tri__free(tmp);
      return TRI_ENOMEM;
    }
    /* an undecodable piece is skipped: it must not fail the call (2.15) */
    if (end >= vlen)
      break;
    start = end + 1;
  }
  tri__free(tmp);
  return TRI_OK;
}

/* ---- grpc-timeout (2.7, 2.8) ---- */

#define TIMEOUT_MAX_VALUE INT64_C(99999999) /* 8 digits */

static const struct {
  char unit;
  int64_t ns;
} timeout_units[] = {
    {'n', INT64_C(1)},
    {'u', INT64_C(1000)},
    {'m', INT64_C(1000000)},
    {'S', INT64_C(1000000000)},
    {'M', INT64_C(60000000000)},
    {'H', INT64_C(3600000000000)},
};

size_t tri__timeout_encode(int64_t ns, char *out) {
  size_t i;
  int64_t v = 0;
  char unit = 'H';

  if (ns < 0)
    ns = 0; /* callers fail expired deadlines locally; never negative */
  /* Finest unit first; round up so the server never sees less time.  Even
   * INT64_MAX ns is only ~2.6e6 hours, so 'H' always fits. */
  for (i = 0; i < TRI__ARRAY_LEN(timeout_units); i++) {
    int64_t u = timeout_units[i].ns;

    v = ns / u + (ns % u != 0);
    unit = timeout_units[i].unit;
    if (v <= TIMEOUT_MAX_VALUE)
      break;
  }
  /* v has at most 8 digits here; no snprintf on the per-call path. */
  char tmp[24];
  size_t n = 0, len = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < sizeof(tmp));
  while (n > 0)
    out[len++] = tmp[--n];
  out[len++] = unit;
  out[len] = '\0';
  return len;
}

int tri__timeout_parse(const char *s, size_t len, int64_t *ns) {
  size_t i, ndig;
  int64_t v = 0, u = 0;

  if (s == NULL || len < 2 || len > 9)
    return -1;
  ndig = len - 1;
  for (i = 0; i < ndig; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  for (i = 0; i < TRI__ARRAY_LEN(timeout_units); i++) {
    if (timeout_units[i].unit == s[ndig])
      u = timeout_units[i].ns;
  }
  if (u == 0)
    return -1;
  *ns = v > INT64_MAX / u ? INT64_MAX : v * u;
  return 0;
}

/* ---- grpc-message percent-encoding (4.5) ---- */

static int pct_needs_escape(uint8_t c) {
  return c < 0x20 || c > 0x7E || c == '%';
}

char *tri__pct_encode(const char *msg, size_t len, size_t *outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i, n = 0, o = 0;
  char *r;

  if (msg == NULL)
    len = 0;
  for (i = 0; i < len; i++)
    n += pct_needs_escape((uint8_t)msg[i]) ? 3 : 1;
  if (n < len) /* overflow */
    return NULL;
  r = tri__malloc(n + 1);
  if (r == NULL)
    return NULL;
  for (i = 0; i < len; i++) {
    uint8_t c = (uint8_t)msg[i];

    if (pct_needs_escape(c)) {
      r[o++] = '%';
      r[o++] = hex[c >> 4];
      r[o++] = hex[c & 15];
    } else {
      r[o++] = (char)c;
    }
  }
  r[o] = '\0';
  if (outlen != NULL)
    *outlen = o;
  return r;
}

int tri__hex_value(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* 4.5: decoding never fails; a bad escape is kept as is. */
char *tri__pct_decode(const char *s, size_t len) {
  size_t i = 0, o = 0;
  char *r;

  if (s == NULL)
    len = 0;
  if (len == SIZE_MAX)
    return NULL;
  r = tri__malloc(len + 1);
  if (r == NULL)
    return NULL;
  while (i < len) {
    int hi, lo;

    if (s[i] == '%' && len - i >= 3 && (hi = tri__hex_value((unsigned char)s[i + 1])) >= 0 &&
        (lo = tri__hex_value((unsigned char)s[i + 2])) >= 0) {
      r[o++] = (char)((hi << 4) | lo);
      i += 3;
    } else {
      r[o++] = s[i++];
    }
  }
  r[o] = '\0';
  return r;
}

/* ---- public metadata API ---- */

tri_metadata *tri_metadata_new(void) {
  tri_metadata *md = tri__malloc(sizeof(*md));

  if (md != NULL)
    tri__md_init(md);
  return md;
}

void tri_metadata_free(tri_metadata *md) {
  if (md == NULL)
    return;
  tri__md_cleanup(md);
  tri__free(md);
}

int tri_metadata_add(tri_metadata *md, const char *key, const void *value,
                     size_t value_len) {
  size_t klen;

  if (md == NULL || key == NULL || (value == NULL && value_len > 0))
    return TRI_EINVAL;
  klen = strlen(key);
  if (!tri__md_key_valid(key, klen))
    return TRI_EINVAL;
  /* -bin values are raw bytes, base64-encoded on the wire (2.12). */
  if (!tri__md_key_is_bin(key, klen) &&
      !tri__md_ascii_value_valid(value, value_len))
    return TRI_EINVAL;
  return tri__md_add_raw(md, key, klen, value, value_len);
}

int tri_metadata_add_str(tri_metadata *md, const char *key,
                         const char *value) {
  if (value == NULL)
    return TRI_EINVAL;
  return tri_metadata_add(md, key, value, strlen(value));
}

size_t tri_metadata_count(const tri_metadata *md) {
  return md != NULL ? md->n : 0;
}

int tri_metadata_get(const tri_metadata *md, size_t i, const char **key,
                     const void **value, size_t *value_len) {
  if (md == NULL || i >= md->n)
    return TRI_EINVAL;
  if (key != NULL)
    *key = md->e[i].key;
  if (value != NULL)
    *value = md->e[i].val;
  if (value_len != NULL)
    *value_len = md->e[i].len;
  return TRI_OK;
}

const void *tri_metadata_find(const tri_metadata *md, const char *key,
                              size_t *value_len) {
  size_t i;

  if (md == NULL || key == NULL)
    return NULL;
  for (i = 0; i < md->n; i++) {
    if (strcmp(md->e[i].key, key) == 0) {
      if (value_len != NULL)
        *value_len = md->e[i].len;
      return md->e[i].val;
    }
  }
  return NULL;
}
