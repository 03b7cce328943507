#include "tri_int.h"

/*
 * Status codes: texts and names from the TRI_CODE_MAP table, HTTP status
 * and RST_STREAM mappings (doc/PROTOCOL.md 5.1, 6.1, 10).  Pure code, any
 * thread.
 */

#include <limits.h>

#include "status.h"

int tri__code_is_wire(int code) { return code >= 0 && code <= 16; }

/* 5.1: only when grpc-status is missing; never used by the server. */
int tri__status_from_http(int http_status) {
  switch (http_status) {
  case 400:
    return TRI_INTERNAL;
  case 401:
    return TRI_UNAUTHENTICATED;
  case 403:
    return TRI_PERMISSION_DENIED;
  case 404:
    return TRI_UNIMPLEMENTED;
  case 429:
    return TRI_UNAVAILABLE;
  case 431:
    return TRI_INTERNAL;
  case 502:
  case 503:
  case 504:
    return TRI_UNAVAILABLE;
  default:
    return TRI_UNKNOWN; /* 200 without grpc-status included */
  }
}

/* 6.1.  Codes are the RFC 9113 section 7 values. */
int tri__status_from_rst(uint32_t h2_error_code) {
  switch (h2_error_code) {
  case 0x7: /* REFUSED_STREAM: nothing was processed */
    return TRI_UNAVAILABLE;
  case 0x8: /* CANCEL */
    return TRI_CANCELLED;
  case 0xb: /* ENHANCE_YOUR_CALM */
    return TRI_RESOURCE_EXHAUSTED;
  case 0xc: /* INADEQUATE_SECURITY */
    return TRI_PERMISSION_DENIED;
  default:
    /* NO_ERROR without trailers, PROTOCOL_ERROR, INTERNAL_ERROR,
     * FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, FRAME_SIZE_ERROR,
     * COMPRESSION_ERROR, CONNECT_ERROR, unknown codes; STREAM_CLOSED has
     * no stream to report to, INTERNAL if a caller asks anyway. */
    return TRI_INTERNAL;
  }
}

/* Decimal digits only: no sign, no spaces (4.3).  Leading zeros are
 * tolerated on input. */
int tri__status_parse(const char *s, size_t len) {
  size_t i;
  int v = 0;

  if (s == NULL || len == 0)
    return -1;
  for (i = 0; i < len; i++) {
    int d = s[i] - '0';

    if (s[i] < '0' || s[i] > '9')
      return -1;
    if (v > (INT_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  return v;
}

/* ---- public ---- */

const char *tri_strerror(int code) {
  switch (code) {
#define TRI__CODE_TEXT(name, val, text)                                      \
  case name:                                                                 \
    return text;
    TRI_CODE_MAP(TRI__CODE_TEXT)
#undef TRI__CODE_TEXT
  default:
    return "unknown status code";
  }
}

const char *tri_code_name(int code) {
  switch (code) {
#define TRI__CODE_NAME(name, val, text)                                      \
  case name:                                                                 \
    return #name;
    TRI_CODE_MAP(TRI__CODE_NAME)
#undef TRI__CODE_NAME
  default:
    return "TRI_?";
  }
}

const char *tri_version(void) { return PACKAGE_VERSION; }
