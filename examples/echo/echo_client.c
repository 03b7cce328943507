/*
 * echo_client: drives the bidi echo service of echo_server.
 *
 *   echo_client [--port N] [--mode=echo|cancel|deadline]
 *
 * Opens a bidi stream with the stubs generated from echo.proto
 * (echo.tri.h), sends 5 EchoMsg and reads the 5 echoes, then:
 *   echo      half-closes; recv returns TRI_EOF and the status is TRI_OK;
 *   cancel    blocks in recv for a 6th echo that never comes while a
 *             second thread calls echo__echo__bidi__cancel(); recv returns
 *             TRI_CANCELLED, and the time from cancel to return is printed;
 *   deadline  the call has a 500 ms deadline; the blocked recv returns
 *             TRI_DEADLINE_EXCEEDED.
 * Exits 0 when the outcome is the expected one, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "echo.h"

#define N_MESSAGES 5
#define DEADLINE_MS 500

/* The canceller waits until main announces it is about to block in recv,
 * gives it CANCEL_DELAY_MS to get there, then cancels. */
#define CANCEL_DELAY_MS 200

struct canceller {
  Echo__Echo__Bidi_Client *call;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int about_to_recv;
  atomic_llong cancel_at_us;
};

static void
sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L}, rem;
  while (nanosleep(&ts, &rem) == -1 && errno == EINTR)
    ts = rem;
}

static void *
canceller_main(void *p)
{
  struct canceller *c = p;
  struct timespec until;
  int ready;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&c->mu);
  while (!c->about_to_recv)
    if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
      break;
  ready = c->about_to_recv;
  pthread_mutex_unlock(&c->mu);
  if (!ready)
    fprintf(stderr, "client: main thread never reached recv; cancelling\n");
  else
    sleep_ms(CANCEL_DELAY_MS);
  atomic_store(&c->cancel_at_us, (long long)echo_now_us());
  echo__echo__bidi__cancel(c->call);
  return NULL;
}

static void
usage(const char *prog)
{
  fprintf(stderr, "usage: %s [--port N] [--mode=echo|cancel|deadline]\n",
          prog);
}

static void
print_status(tri_stream *s)
{
  const char *msg = NULL;
  int st = tri_stream_wait_status(s, 5000, &msg);
  printf("client: final status %s (%s)%s%s%s\n", tri_code_name(st),
         tri_strerror(st), msg && *msg ? ": \"" : "", msg && *msg ? msg : "",
         msg && *msg ? "\"" : "");
}

int
main(int argc, char **argv)
{
  const char *mode = "echo";
  tri_channel *ch = NULL;
  tri_call_opts *opts = NULL;
  Echo__Echo__Bidi_Client call = {NULL};
  struct canceller canc;
  pthread_t thr;
  char target[64], msg[64];
  int port = ECHO_DEFAULT_PORT, i, rv, ok = 0;
  int64_t t_open;

  for (i = 1; i < argc; i++) {
    const char *v = NULL;
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      v = argv[++i];
      if (echo_parse_port(v, &port) != 0 || port == 0) {
        usage(argv[0]);
        return 2;
      }
    } else if (strncmp(argv[i], "--port=", 7) == 0) {
      if (echo_parse_port(argv[i] + 7, &port) != 0 || port == 0) {
        usage(argv[0]);
        return 2;
      }
    } else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
      mode = argv[++i];
    } else if (strncmp(argv[i], "--mode=", 7) == 0) {
      mode = argv[i] + 7;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (strcmp(mode, "echo") != 0 && strcmp(mode, "cancel") != 0 &&
      strcmp(mode, "deadline") != 0) {
    usage(argv[0]);
    return 2;
  }

  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  rv = tri_channel_new(&ch, target, NULL);
  if (rv != TRI_OK) {
    fprintf(stderr, "client: tri_channel_new(%s): %s\n", target,
            tri_strerror(rv));
    return 1;
  }
  opts = tri_call_opts_new();
  if (opts == NULL) {
    tri_channel_free(ch);
    return 1;
  }
  if (strcmp(mode, "deadline") == 0)
    tri_call_opts_set_timeout_ms(opts, DEADLINE_MS);

  t_open = echo_now_us();
  rv = echo__echo__bidi__open(ch, opts, &call);
  tri_call_opts_free(opts);
  if (rv != TRI_OK) {
    echo__echo__bidi__free(&call);
    fprintf(stderr, "client: tri_stream_open: %s (%s)\n", tri_code_name(rv),
            tri_strerror(rv));
    tri_channel_free(ch);
    return 1;
  }
  printf("client: mode %s, stream open to %s%s\n", mode, target,
         ECHO_METHOD);

  for (i = 0; i < N_MESSAGES; i++) {
    Echo__EchoMsg out = ECHO__ECHO_MSG__INIT, *m = NULL;
    int len = snprintf(msg, sizeof(msg), "hello %d", i);

    out.data.data = (uint8_t *)msg;
    out.data.len = (size_t)len;
    rv = echo__echo__bidi__send(&call, &out);
    if (rv == TRI_OK)
      rv = echo__echo__bidi__recv(&call, &m, -1);
    if (rv != TRI_OK) {
      printf("client: message %d failed: %s (%s)\n", i, tri_code_name(rv),
             tri_strerror(rv));
      print_status(call.stream);
      goto out;
    }
    if (m->data.len != (size_t)len ||
        memcmp(m->data.data, msg, (size_t)len) != 0) {
      printf("client: echo %d does not match\n", i);
      echo__echo_msg__free_unpacked(m, NULL);
      goto out;
    }
    printf("client: echo %d: %.*s\n", i, (int)m->data.len,
           (const char *)m->data.data);
    echo__echo_msg__free_unpacked(m, NULL);
  }

  if (strcmp(mode, "echo") == 0) {
    Echo__EchoMsg *m = NULL;
    echo__echo__bidi__close_send(&call);
    rv = echo__echo__bidi__recv(&call, &m, -1);
    if (m != NULL)
      echo__echo_msg__free_unpacked(m, NULL);
    printf("client: after half-close recv returned %s (%s)\n",
           tri_code_name(rv), tri_strerror(rv));
    print_status(call.stream);
    ok = rv == TRI_EOF &&
         tri_stream_wait_status(call.stream, 0, NULL) == TRI_OK;
  } else if (strcmp(mode, "cancel") == 0) {
    Echo__EchoMsg *m = NULL;
    int64_t t_ret;

    memset(&canc, 0, sizeof(canc));
    canc.call = &call;
    pthread_mutex_init(&canc.mu, NULL);
    pthread_cond_init(&canc.cv, NULL);
    atomic_store(&canc.cancel_at_us, 0);
    if (pthread_create(&thr, NULL, canceller_main, &canc) != 0) {
      fprintf(stderr, "client: pthread_create failed\n");
      goto out;
    }
    pthread_mutex_lock(&canc.mu);
    canc.about_to_recv = 1;
    pthread_cond_signal(&canc.cv);
    pthread_mutex_unlock(&canc.mu);
    /* the 6th echo never comes */
    rv = echo__echo__bidi__recv(&call, &m, -1);
    t_ret = echo_now_us();
    if (m != NULL)
      echo__echo_msg__free_unpacked(m, NULL);
    pthread_join(thr, NULL);
    printf("client: recv returned %s after %lld us (%s)\n", tri_code_name(rv),
           (long long)(t_ret - atomic_load(&canc.cancel_at_us)),
           tri_strerror(rv));
    print_status(call.stream);
    ok = rv == TRI_CANCELLED;
    pthread_cond_destroy(&canc.cv);
    pthread_mutex_destroy(&canc.mu);
  } else {
    Echo__EchoMsg *m = NULL;
    /* blocks until the deadline */
    rv = echo__echo__bidi__recv(&call, &m, -1);
    if (m != NULL)
      echo__echo_msg__free_unpacked(m, NULL);
    printf("client: recv returned %s after %lld us since open, deadline %d "
           "ms (%s)\n",
           tri_code_name(rv), (long long)(echo_now_us() - t_open),
           DEADLINE_MS, tri_strerror(rv));
    print_status(call.stream);
    ok = rv == TRI_DEADLINE_EXCEEDED;
  }

out:
  echo__echo__bidi__free(&call);
  tri_channel_free(ch);
  printf("client: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
