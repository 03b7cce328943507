/*
 * echo_server: bidi echo over libtriplestream.
 *
 *   echo_server [--port N]      (default 50051; 0 picks a free port)
 *
 * Listens on 127.0.0.1, prints "listening on 127.0.0.1:PORT" once ready,
 * and serves ECHO_METHOD through the stubs generated from echo.proto
 * (echo.tri.h: a handler table registered with echo__echo__tri_register()):
 * every EchoMsg is sent back.  The handler never
 * ends a call by itself; it reports how each call ended (client
 * half-close, cancel, deadline...).  SIGINT or SIGTERM shuts it down
 * gracefully.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"

/* Bound on messages per call, so even this loop has an end. */
#define ECHO_MAX_MESSAGES 100000000L

static atomic_int n_calls;

/* One line on stdout, flushed (stdout may be a pipe or a file). */
static void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void
say(const char *fmt, ...)
{
  va_list ap;

  flockfile(stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
  funlockfile(stdout);
}

static int
echo_bidi(Echo__Echo__Bidi_Server *call, void *user_data)
{
  int id = atomic_fetch_add(&n_calls, 1) + 1;
  long n;

  (void)user_data;
  say("server: stream %d started: %s (deadline: %lld ms)\n", id,
      tri_stream_method(call->stream),
      (long long)tri_stream_remaining_ms(call->stream));
  for (n = 0; n < ECHO_MAX_MESSAGES; n++) {
    Echo__EchoMsg *m = NULL;
    int rv = echo__echo__bidi__server_recv(call, &m, -1);

    if (rv == TRI_EOF) {
      say("server: stream %d ended: client half-closed (%s) after %ld "
          "messages; finishing with TRI_OK\n",
          id, tri_code_name(rv), n);
      return tri_stream_finish(call->stream, TRI_OK, NULL) == TRI_OK
                 ? TRI_OK
                 : TRI_UNKNOWN;
    }
    if (rv != TRI_OK) {
      say("server: stream %d ended: %s (%s) after %ld messages\n", id,
          tri_code_name(rv), tri_strerror(rv), n);
      return rv >= 0 ? rv : TRI_UNKNOWN;
    }
    rv = echo__echo__bidi__server_send(call, m);
    echo__echo_msg__free_unpacked(m, NULL);
    if (rv != TRI_OK) {
      say("server: stream %d ended while sending: %s (%s)\n", id,
          tri_code_name(rv), tri_strerror(rv));
      return rv >= 0 ? rv : TRI_UNKNOWN;
    }
  }
  say("server: stream %d: too many messages\n", id);
  return TRI_RESOURCE_EXHAUSTED;
}

/* The service implementation: kept for the life of the server. */
static const Echo__Echo_Handlers echo_impl = {
    .bidi = echo_bidi,
};

static void
usage(const char *prog)
{
  fprintf(stderr, "usage: %s [--port N]   (default %d; 0 = any free port)\n",
          prog, ECHO_DEFAULT_PORT);
}

int
main(int argc, char **argv)
{
  tri_server *srv = NULL;
  char addr[64];
  sigset_t sigs;
  int port = ECHO_DEFAULT_PORT, i, rv, sig = 0;

  for (i = 1; i < argc; i++) {
    const char *v = NULL;
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      v = argv[++i];
    else if (strncmp(argv[i], "--port=", 7) == 0)
      v = argv[i] + 7;
    if (v == NULL || echo_parse_port(v, &port) != 0) {
      usage(argv[0]);
      return 2;
    }
  }

  /* Block the shutdown signals before the library starts its threads, so
   * they inherit the mask and sigwait() below receives them. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  rv = tri_server_new(&srv, NULL);
  if (rv != TRI_OK) {
    fprintf(stderr, "server: tri_server_new: %s (%s)\n", tri_code_name(rv),
            tri_strerror(rv));
    return 1;
  }
  rv = echo__echo__tri_register(srv, &echo_impl, NULL);
  if (rv == TRI_OK) {
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    rv = tri_server_bind(srv, addr);
  }
  if (rv == TRI_OK)
    rv = tri_server_start(srv);
  if (rv != TRI_OK) {
    fprintf(stderr, "server: cannot serve on 127.0.0.1:%d: %s (%s)\n", port,
            tri_code_name(rv), tri_strerror(rv));
    tri_server_free(srv);
    return 1;
  }
  say("listening on 127.0.0.1:%d\n", tri_server_port(srv));

  if (sigwait(&sigs, &sig) != 0)
    sig = 0;
  say("server: signal %d, shutting down\n", sig);
  tri_server_shutdown(srv, 1000);
  tri_server_free(srv);
  say("server: bye (%d calls)\n", atomic_load(&n_calls));
  return 0;
}
