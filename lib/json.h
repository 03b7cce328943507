/*
 * proto3 JSON mapping over protobuf-c descriptors (doc/PROTOCOL.md "JSON
 * mapping"): the codec behind Triple's application/json and gRPC's
 * application/grpc+json.  Pure code, any thread.  Needs jansson
 * (HAVE_JANSSON); without it both functions return TRI_UNIMPLEMENTED.
 */
#ifndef TRI_JSON_H
#define TRI_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* proto3 JSON (an object, or the Triple array form "[{...}]" with one
 * element) -> protobuf binary of |d|.  *out is malloc'd (free()); on
 * success with an empty message *out may be a 1-byte allocation and
 * *out_len 0.  Returns TRI_OK; TRI_INVALID_ARGUMENT with a message in err
 * (bad JSON, unknown field name, wrong type, int out of range, bad base64
 * ...); TRI_ENOMEM; TRI_UNIMPLEMENTED (no jansson). */
int tri__json_to_pb(const ProtobufCMessageDescriptor *d, const char *json,
                    size_t len, uint8_t **out, size_t *out_len, char *err,
                    size_t errlen);

/* protobuf binary of |d| -> proto3 JSON object text.  *out malloc'd,
 * NUL-terminated.  Returns TRI_OK; TRI_INTERNAL (bytes do not parse as d,
 * message in err); TRI_ENOMEM; TRI_UNIMPLEMENTED. */
int tri__pb_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *pb,
                    size_t len, char **out, size_t *out_len, char *err,
                    size_t errlen);

#endif /* TRI_JSON_H */
