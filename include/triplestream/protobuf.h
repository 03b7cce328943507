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
 * tri_stream_send_msg() with TRI_SEND_* |flags| and its own |timeout_ms|,
 * as tri_stream_send_ex().  With TRI_SEND_LAST a server handler's single
 * response goes out with its trailers (status OK) in one write.
 *
 * Ownership: |msg| is borrowed, not kept.
 * Thread safety, Blocking, Returns: as tri_stream_send_ex(); TRI_ENOMEM
 *   when the serialized copy cannot be allocated.
 * Since: 0.3
 */
TRI_API int tri_stream_send_msg_ex(tri_stream *s, const ProtobufCMessage *msg,
                                   unsigned flags, int timeout_ms);

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

/**
 * Register |fn| like tri_server_register_full() and tell the server the
 * method's request and response message types, so that the same handler
 * also serves JSON: Triple's unary protocol with application/json,
 * application/grpc+json and gRPC-Web with +json (doc/PROTOCOL.md 16).  The
 * handler is unchanged: it always receives and sends protobuf bytes; the
 * server translates at the edge with the proto3 JSON mapping.  Generated
 * stubs (protoc-gen-triplestream) register through this function.  A
 * method registered without types answers JSON requests with HTTP 415.
 *
 * Ownership: |method|, |group|, |version| are copied; |req| and |resp|
 *   are borrowed and must outlive the server (generated descriptors are
 *   static); |user_data| as in tri_server_register_full() (|destroy| may
 *   be NULL).
 * Thread safety: before tri_server_start(), one thread at a time.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (bad path, NULL handler, missing or invalid
 *   descriptor); TRI_ENOMEM; TRI_ESTATE after start.
 * Since: 0.3
 */
TRI_API int tri_server_register_typed(tri_server *srv, const char *method,
                                      const char *group, const char *version,
                                      const ProtobufCMessageDescriptor *req,
                                      const ProtobufCMessageDescriptor *resp,
                                      tri_handler_fn fn, void *user_data,
                                      void (*destroy)(void *user_data));

#ifdef __cplusplus
}
#endif

#endif /* TRIPLESTREAM_PROTOBUF_H */
