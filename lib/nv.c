/*
 * Header lists for nghttp2 (nv.h).  I/O thread only.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "nv.h"

void tri__nv_init(tri__nv *b) {
  memset(b, 0, sizeof(*b));
  b->nv = b->inline_nv;
  b->cap = TRI__ARRAY_LEN(b->inline_nv);
}

void tri__nv_free(tri__nv *b) {
  for (size_t i = 0; i < b->nowned; i++)
    tri__free(b->owned[i]);
  tri__free(b->owned);
  if (b->nv != b->inline_nv)
    tri__free(b->nv);
  b->nv = b->inline_nv;
  b->n = b->nowned = b->owned_cap = 0;
  b->owned = NULL;
}

static int keep(tri__nv *b, char *p) {
  if (b->nowned == b->owned_cap) {
    size_t cap = b->owned_cap ? b->owned_cap * 2 : 8;
    char **no = tri__realloc(b->owned, cap * sizeof(*no));
    if (no == NULL) {
      tri__free(p);
      b->failed = 1;
      return -1;
    }
    b->owned = no;
    b->owned_cap = cap;
  }
  b->owned[b->nowned++] = p;
  return 0;
}

int tri__nv_own(tri__nv *b, char *p) { return keep(b, p); }

void tri__nv_add(tri__nv *b, const char *name, const char *value,
                 size_t vlen, uint8_t flags) {
  if (b->n == b->cap) {
    size_t cap = b->cap * 2;
    nghttp2_nv *nn = tri__malloc(cap * sizeof(*nn));
    if (nn == NULL) {
      b->failed = 1;
      return;
    }
    memcpy(nn, b->nv, b->n * sizeof(*nn));
    if (b->nv != b->inline_nv)
      tri__free(b->nv);
    b->nv = nn;
    b->cap = cap;
  }
  nghttp2_nv *nv = &b->nv[b->n++];
  nv->name = (uint8_t *)(uintptr_t)name;
  nv->namelen = strlen(name);
  nv->value = (uint8_t *)(uintptr_t)value;
  nv->valuelen = vlen;
  nv->flags = flags;
}

void tri__nv_adds(tri__nv *b, const char *name, const char *value) {
  tri__nv_add(b, name, value, strlen(value), NGHTTP2_NV_FLAG_NONE);
}

void tri__nv_add_md(tri__nv *b, const tri_metadata *md) {
  for (size_t i = 0; i < md->n; i++) {
    const tri__md_entry *e = &md->e[i];
    if (tri__md_key_is_bin(e->key, strlen(e->key))) {
      char *enc = tri__malloc(tri__b64_encoded_len(e->len) + 1);
      if (enc == NULL || keep(b, enc) != 0) {
        b->failed = 1;
        return;
      }
      size_t n = tri__b64_encode(e->val, e->len, enc);
      tri__nv_add(b, e->key, enc, n, NGHTTP2_NV_FLAG_NONE);
    } else {
      tri__nv_add(b, e->key, (const char *)e->val, e->len,
                  NGHTTP2_NV_FLAG_NONE);
    }
  }
}

void tri__nv_add_status(tri__nv *b, int code, const char *msg) {
  static const char *const codes[] = {"0", "1", "2", "3", "4", "5",
                                      "6", "7", "8", "9", "10", "11",
                                      "12", "13", "14", "15", "16"};
  char num[16], *dup;
  if (code >= 0 && code < (int)TRI__ARRAY_LEN(codes)) {
    tri__nv_adds(b, "grpc-status", codes[code]); /* static: no malloc */
  } else {
    snprintf(num, sizeof(num), "%d", code);
    dup = tri__strdup(num);
    if (dup == NULL || keep(b, dup) != 0) {
      b->failed = 1;
      return;
    }
    tri__nv_adds(b, "grpc-status", dup);
  }
  if (msg != NULL && *msg) {
    char *enc = tri__pct_encode(msg, strlen(msg), NULL);
    if (enc == NULL || keep(b, enc) != 0) {
      b->failed = 1;
      return;
    }
    tri__nv_adds(b, "grpc-message", enc);
  }
}

void tri__nv_not_sent(char *buf, size_t n, const char *what,
                      const nghttp2_frame *f, int lib_error) {
  size_t bytes = 0;
  for (size_t i = 0; i < f->headers.nvlen; i++)
    bytes += f->headers.nva[i].namelen + f->headers.nva[i].valuelen;
  snprintf(buf, n, "%s not sent (%zu fields, %zu bytes%s): %s", what,
           f->headers.nvlen, bytes,
           lib_error == NGHTTP2_ERR_FRAME_SIZE_ERROR
               ? "; one HTTP/2 header block holds 64 KiB"
               : "",
           nghttp2_strerror(lib_error));
}
