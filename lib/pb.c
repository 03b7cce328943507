/*
 * protobuf-c conveniences on top of the byte API.
 *
 * Threads: any caller thread; same rules as the byte calls they wrap.
 */
#include "tri_int.h"

#include <triplestream/protobuf.h>

#include "core.h"
#include "triple.h"

/* doc/PROTOCOL.md 5.5: a message that does not parse ends the call with
 * INTERNAL and says so.  A server answers it in trailers (the client sees
 * INTERNAL "cannot parse request as pkg.Msg", not a reset that reads as a
 * cancellation); a client resets the stream and reports it locally. */
static int unparsable(tri_stream *s, const ProtobufCMessageDescriptor *desc,
                      size_t len) {
  char msg[300];
  int server = s->side == TRI__SERVER;
  snprintf(msg, sizeof(msg), "cannot parse %s of %zu bytes as %s",
           server ? "request" : "response", len, desc->name);
  tri__stream_abort(s, TRI_INTERNAL, msg, 1,
                    server ? TRI__END_STATUS : TRI__END_RESET);
  return tri__fail(TRI_INTERNAL, "%s", msg);
}

/* protobuf-c output straight into a stream's send ring. */
typedef struct {
  ProtobufCBuffer base;
  tri_stream *s;
} ring_sink;

static void ring_sink_append(ProtobufCBuffer *b, size_t len,
                             const uint8_t *data) {
  tri__stream_ring_put_locked(((ring_sink *)b)->s, data, len);
}

static void pack_into_ring(void *ctx, tri_stream *s) {
  ring_sink sink = {{ring_sink_append}, s};
  protobuf_c_message_pack_to_buffer(ctx, &sink.base);
}

/* Messages this large are packed into the send ring directly (one copy
 * of their bytes fields less); smaller ones through a stack buffer. */
#define PACK_INTO_RING_MIN 4096

TRI_API int tri_stream_send_msg_ex(tri_stream *s, const ProtobufCMessage *msg,
                                   unsigned flags, int timeout_ms) {
  uint8_t small[512];
  uint8_t *buf = small;
  size_t n;
  int rv;

  if (s == NULL || msg == NULL)
    return TRI_EINVAL;
  n = protobuf_c_message_get_packed_size(msg);
  if (n >= PACK_INTO_RING_MIN && s->enc_out == 0 && s->triple == NULL &&
      !s->json && !(flags & TRI_SEND_NO_COMPRESS))
    return tri__stream_send_fill(s, n, flags, timeout_ms, pack_into_ring,
                                 (void *)msg);
  if (n > sizeof(small)) {
    buf = tri__malloc(n);
    if (buf == NULL)
      return TRI_ENOMEM;
  }
  protobuf_c_message_pack(msg, buf);
  rv = tri_stream_send_ex(s, buf, n, flags, timeout_ms);
  if (buf != small)
    tri__free(buf);
  return rv;
}

TRI_API int tri_stream_send_msg(tri_stream *s, const ProtobufCMessage *msg) {
  return tri_stream_send_msg_ex(s, msg, 0, -1);
}

TRI_API int tri_stream_recv_msg(tri_stream *s,
                                const ProtobufCMessageDescriptor *desc,
                                ProtobufCMessage **out, int timeout_ms) {
  tri_buf *b = NULL;
  int rv;

  if (out == NULL)
    return TRI_EINVAL;
  *out = NULL;
  if (s == NULL || desc == NULL)
    return TRI_EINVAL;
  tri__stream_ref(s); /* for the whole call, as every public call does */
  rv = tri_stream_recv_ex(s, &b, timeout_ms);
  if (rv == TRI_OK) {
    *out = protobuf_c_message_unpack(desc, NULL, tri_buf_len(b),
                                     tri_buf_data(b));
    if (*out == NULL) {
      size_t len = tri_buf_len(b);
      tri_buf_free(b);
      rv = unparsable(s, desc, len);
    } else {
      tri__stream_recycle(s, b); /* its block may take the next message */
    }
  }
  tri__stream_unref(s);
  return rv;
}

TRI_API int tri_unary_call_msg(tri_channel *ch, const char *method,
                               const tri_call_opts *opts,
                               const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               ProtobufCMessage **resp,
                               tri_stream **stream_out) {
  uint8_t small[512];
  uint8_t *buf = small;
  tri_buf *rb = NULL;
  size_t n;
  int rv;

  if (stream_out)
    *stream_out = NULL;
  if (resp == NULL || req == NULL || resp_desc == NULL)
    return TRI_EINVAL;
  *resp = NULL;
  n = protobuf_c_message_get_packed_size(req);
  if (n > sizeof(small)) {
    buf = tri__malloc(n);
    if (buf == NULL)
      return TRI_ENOMEM;
  }
  protobuf_c_message_pack(req, buf);
  rv = tri__unary_call(ch, method, opts, buf, n, req->descriptor, resp_desc,
                       &rb, stream_out);
  if (buf != small)
    tri__free(buf);
  if (rv != TRI_OK)
    return rv;
  *resp = protobuf_c_message_unpack(resp_desc, NULL, tri_buf_len(rb),
                                    tri_buf_data(rb));
  if (*resp == NULL) {
    rv = tri__fail(TRI_INTERNAL, "cannot parse response of %zu bytes as %s",
                   tri_buf_len(rb), resp_desc->name);
    tri_buf_free(rb);
    return rv;
  }
  tri_buf_free(rb);
  return TRI_OK;
}
