/* Status code helpers (doc/PROTOCOL.md 5.1, 6.1, 10).  Pure code, any thread. */
#ifndef TRI_STATUS_H
#define TRI_STATUS_H

#include "tri_int.h"

/* 1 if |code| is a gRPC wire status 0..16. */
int tri__code_is_wire(int code);
/* Status synthesised from an HTTP :status when grpc-status is missing
 * (5.1).  1xx is the caller's business (skip that header block). */
int tri__status_from_http(int http_status);
/* Status for an RST_STREAM error code received without trailers (6.1). */
int tri__status_from_rst(uint32_t h2_error_code);
/* Parse a grpc-status value: decimal, no sign.  Returns the code (values
 * above 16 are passed through as read, e.g. dubbo-go's 17, 10.2), or -1
 * when unparsable (caller reports TRI_UNKNOWN, 5.3). */
int tri__status_parse(const char *s, size_t len);
/* Map any status we may expose to the application: values outside 0..16
 * from a peer become TRI_UNKNOWN except 17 which is kept (10.2). */

#endif /* TRI_STATUS_H */
