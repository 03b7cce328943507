/*
 * Shared bits of the bidi echo example (echo_server.c, echo_client.c).
 *
 * The service is echo.Echo in echo.proto; echo.tri.h holds the stubs
 * protoc-gen-triplestream generates from it at build time.  Its one
 * method, ECHO_METHOD, is a bidirectional stream of EchoMsg: the server
 * sends back every message it receives and never ends the call on its
 * own; the call ends when the client half-closes (status OK), cancels, or
 * its deadline passes.
 */
#ifndef ECHO_H
#define ECHO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "echo.tri.h"

#define ECHO_METHOD ECHO__ECHO__BIDI__PATH /* "/echo.Echo/Bidi" */
#define ECHO_DEFAULT_PORT 50051

/* Monotonic clock in microseconds. */
static inline int64_t
echo_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parse "--port N" / "--port=N"; returns 0 or -1 (bad number). */
static inline int
echo_parse_port(const char *s, int *port)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 0 || v > 65535)
    return -1;
  *port = (int)v;
  return 0;
}

#endif /* ECHO_H */
