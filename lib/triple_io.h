/*
 * The Triple HTTP unary form, client side: the I/O thread's part
 * (lib/triple.c).  Included by the I/O files only (doc/DESIGN.md).
 */
#ifndef TRI_TRIPLE_IO_H
#define TRI_TRIPLE_IO_H

#include "tri_int.h"

#include <nghttp2/nghttp2.h>

#include "conn.h"
#include "nv.h"
#include "triple.h"

/* I/O thread. */
void tri__triple_request_headers(tri__conn *c, tri_stream *s, tri__nv *b);
void tri__triple_header(tri_stream *s, const nghttp2_frame *f,
                        const uint8_t *name, size_t nlen, const uint8_t *val,
                        size_t vlen);
void tri__triple_frame(tri__conn *c, tri_stream *s, const nghttp2_frame *f);
int tri__triple_data(tri__conn *c, tri_stream *s, const uint8_t *data,
                     size_t len);

#endif /* TRI_TRIPLE_IO_H */
