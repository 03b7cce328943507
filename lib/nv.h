/*
 * Building nghttp2 header lists (I/O thread).  A list grows as needed: no
 * metadata entry is ever dropped for lack of room (an allocation failure
 * is reported, never silent).
 */
#ifndef TRI_NV_H
#define TRI_NV_H

#include "tri_int.h"

#include <nghttp2/nghttp2.h>

#include "headers.h"

typedef struct {
  nghttp2_nv *nv;
  size_t n, cap;
  char **owned;           /* strings freed with the list */
  size_t nowned, owned_cap;
  int failed;             /* an allocation failed: the list is incomplete */
  nghttp2_nv inline_nv[16];
} tri__nv;

void tri__nv_init(tri__nv *b);
void tri__nv_free(tri__nv *b);
/* Add a field; |name| and |value| must outlive the list (or be owned). */
void tri__nv_add(tri__nv *b, const char *name, const char *value,
                 size_t vlen, uint8_t flags);
/* The list frees |p| (tri__malloc'd) with itself; on failure |p| is freed
 * now and b->failed set.  0 or -1. */
int tri__nv_own(tri__nv *b, char *p);
void tri__nv_adds(tri__nv *b, const char *name, const char *value);
/* Application metadata; -bin values go out base64 without padding
 * (doc/PROTOCOL.md 2.12). */
void tri__nv_add_md(tri__nv *b, const tri_metadata *md);
/* grpc-status and (percent-encoded) grpc-message (4.5). */
void tri__nv_add_status(tri__nv *b, int code, const char *msg);
/* Why nghttp2 did not send the HEADERS frame |f| (on_frame_not_send,
 * |lib_error|), for a status message: "|what| not sent (N fields, M
 * bytes...): nghttp2's reason", into |buf| of |n| bytes. */
void tri__nv_not_sent(char *buf, size_t n, const char *what,
                      const nghttp2_frame *f, int lib_error);

#endif /* TRI_NV_H */
