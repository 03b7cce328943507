/*
 * proto3 JSON mapping for protobuf-c messages (lib/json.c).
 */
#ifndef TRI_JSON_H
#define TRI_JSON_H

#include "tri_int.h"

#include <protobuf-c/protobuf-c.h>

int tri__json_to_pb(const ProtobufCMessageDescriptor *d, const char *json, size_t len, uint8_t **out, size_t *out_len, char *err, size_t errlen); /* accepts {..} and [{..}]; TRI_OK / TRI_INVALID_ARGUMENT / TRI_ENOMEM / TRI_UNIMPLEMENTED */
int tri__pb_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *pb, size_t len, char **out, size_t *out_len, char *err, size_t errlen); /* TRI_OK / TRI_INTERNAL / TRI_ENOMEM / TRI_UNIMPLEMENTED */

#endif /* TRI_JSON_H */
