/*
 * libtriplestream: protobuf-c conveniences.  Include after
 * <triplestream/triplestream.h>; needs <protobuf-c/protobuf-c.h>.
 */
#ifndef TRIPLESTREAM_PROTOBUF_H
#define TRIPLESTREAM_PROTOBUF_H

#include <protobuf-c/protobuf-c.h>
#include <triplestream/triplestream.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Serialize |msg| and send it as one message (see tri_stream_send()).
 *
 * Ownership: |msg| is borrowed, not kept.
 * Thread safety, Blocking, Returns: as tri_stream_send(); TRI_ENOMEM when
 *   the serialized copy cannot be allocated.
 * Since: 0.1
 */
TRI_API int tri_stream_send_msg(tri_stream *s, const ProtobufCMessage *msg);

/**
 * Receive one message and unpack it as |desc|.
 *
 * Ownership: on TRI_OK *|out| belongs to the caller; free it with
 *   protobuf_c_message_free_unpacked(*out, NULL).
 * Thread safety, Blocking: as tri_stream_recv_ex().
 * Returns: as tri_stream_recv_ex(), plus TRI_INTERNAL when the bytes do not
 *   parse as |desc| (doc/PROTOCOL.md 5.5).  The call then ends: a server
 *   stream answers INTERNAL "cannot parse request of N bytes as pkg.Msg"
 *   in its trailers (so the client learns why), a client stream is reset
 *   and reports the same kind of message (tri_last_error(),
 *   tri_stream_wait_status()).
 * Since: 0.1
 */
TRI_API int tri_stream_recv_msg(tri_stream *s,
                                const ProtobufCMessageDescriptor *desc,
                                ProtobufCMessage **out, int timeout_ms);

/**
 * Unary call with protobuf-c messages; see tri_unary_call().
 *
 * Ownership: on TRI_OK *|resp| belongs to the caller
 *   (protobuf_c_message_free_unpacked()).  |stream_out| as in
 *   tri_unary_call().
 * Returns: as tri_unary_call(); TRI_INTERNAL for an unparsable response.
 * Since: 0.1
 */
TRI_API int tri_unary_call_msg(tri_channel *ch, const char *method,
                               const tri_call_opts *opts,
                               const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               ProtobufCMessage **resp,
                               tri_stream **stream_out);

#ifdef __cplusplus
}
#endif

#endif /* TRIPLESTREAM_PROTOBUF_H */
