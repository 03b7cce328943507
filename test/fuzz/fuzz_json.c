/*
 * fuzz_json: the proto3 JSON codec (lib/json.c) on what a peer sends in an
 * application/json or application/grpc+json body, parsed as
 * tri.jsontest.All (every field kind and the well-known types).  Besides
 * memory safety it checks a round-trip property and aborts when it fails:
 *   if json_to_pb(x) = b succeeds, pb_to_json(b) = j succeeds, and
 *   pb_to_json(json_to_pb(j)) = j  (the printed form is a fixed point).
 * First input byte: 0 = the bytes are JSON, 1 = they are protobuf binary
 * (pb_to_json must never crash on any bytes).
 */
#include "tri_int.h"

#include <stdlib.h>

#include "json.h"
#include "tri/jsontest/jsontest.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
  fprintf(stderr, "fuzz_json: property violated: %s\n", what);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const ProtobufCMessageDescriptor *d = &tri__jsontest__all__descriptor;
  char err[256], *j = NULL, *j2 = NULL;
  uint8_t *b = NULL, *b2 = NULL;
  size_t bl, jl, bl2, jl2, n;
  char *v;

  if (size < 1)
    return 0;
  n = size - 1;
  v = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
  if (v == NULL)
    return 0;
  memcpy(v, data + 1, n);
  if (data[0] & 1) {
    if (tri__pb_to_json(d, (const uint8_t *)v, n, &j, &jl, err, sizeof err) ==
        TRI_OK && strlen(j) != jl)
      fail("pb_to_json length");
    goto out;
  }
  if (tri__json_to_pb(d, v, n, &b, &bl, err, sizeof err) != TRI_OK)
    goto out;
  if (tri__pb_to_json(d, b, bl, &j, &jl, err, sizeof err) != TRI_OK)
    fail(err);
  if (tri__json_to_pb(d, j, jl, &b2, &bl2, err, sizeof err) != TRI_OK)
    fail(err);
  if (tri__pb_to_json(d, b2, bl2, &j2, &jl2, err, sizeof err) != TRI_OK)
    fail(err);
  if (jl != jl2 || memcmp(j, j2, jl) != 0)
    fail("printed JSON is not a fixed point");
out:
  free(b);
  free(b2);
  free(j);
  free(j2);
  free(v);
  return 0;
}
