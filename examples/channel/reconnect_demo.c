/*
 * Keepalive and connection management, client half (README "Keepalive
 * and connection management").
 *
 * One long-lived channel with keepalive; its server goes away and comes
 * back on the same port.  Shows: the channel's states, a call failing fast
 * while nothing listens, a wait-for-ready call that waits for the server,
 * and the idle channel serving the next call with no action of ours.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <triplestream/triplestream.h>

static const char *names[] = {"IDLE", "CONNECTING", "READY",
                              "TRANSIENT_FAILURE", "SHUTDOWN"};

static int echo(tri_stream *s, void *ud) {
  tri_buf *req = NULL;
  (void)ud;
  if (tri_stream_recv(s, &req) != TRI_OK)
    return TRI_INVALID_ARGUMENT;
  int rv = tri_stream_send(s, tri_buf_data(req), tri_buf_len(req));
  tri_buf_free(req);
  return rv == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

static tri_server *serve(int port) {
  tri_server *srv = NULL;
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  if (tri_server_new(&srv, NULL) != TRI_OK ||
      tri_server_register(srv, "/demo.Echo/Say", echo, NULL) != TRI_OK ||
      tri_server_bind(srv, addr) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "server: %s\n", tri_last_error());
    tri_server_free(srv);
    return NULL;
  }
  return srv;
}

static int call(tri_channel *ch, int wait_for_ready) {
  tri_call_opts *o = tri_call_opts_new();
  tri_buf *resp = NULL;
  tri_call_opts_set_timeout_ms(o, 5000);
  tri_call_opts_set_wait_for_ready(o, wait_for_ready);
  int rv = tri_unary_call(ch, "/demo.Echo/Say", o, "hi", 2, &resp, NULL);
  tri_buf_free(resp);
  tri_call_opts_free(o);
  return rv;
}

static void *late_call(void *ch) {
  int rv = call(ch, 1);
  printf("wait-for-ready call: %s\n", tri_code_name(rv));
  return (void *)(long)rv;
}

int main(void) {
  tri_server *srv = serve(0);
  if (srv == NULL)
    return 1;
  int port = tri_server_port(srv);
  char target[32];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);

  tri_channel_opts *o = tri_channel_opts_new();
  /* PING after 30 s without reading while a call is open (A8); pings on
   * an idle connection stay off (permit_without_calls): servers answer
   * those with GOAWAY too_many_pings. */
  tri_channel_opts_set_keepalive(o, 30000, 10000);
  tri_channel_opts_set_backoff(o, 200, 2000); /* 200 ms, x1.6, max 2 s */
  tri_channel *ch = NULL;
  if (tri_channel_new(&ch, target, o) != TRI_OK)
    return 1;
  tri_channel_opts_free(o);

  printf("first call: %s\n", tri_code_name(call(ch, 0)));
  printf("state: %s\n", names[tri_channel_state(ch, 0)]);

  tri_server_free(srv); /* the server goes away */
  int st = tri_channel_state(ch, 0);
  while (st == TRI_CHANNEL_READY &&
         tri_channel_wait_state_change(ch, st, 5000) == TRI_OK)
    st = tri_channel_state(ch, 0);
  printf("after the server left: %s\n", names[st]);

  int rv = call(ch, 0); /* nothing listens: fails fast, says why */
  printf("call while down: %s (%s)\n", tri_code_name(rv), tri_last_error());
  printf("state: %s\n", names[tri_channel_state(ch, 0)]);

  pthread_t t;
  pthread_create(&t, NULL, late_call, ch); /* waits for READY */
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  srv = serve(port); /* back on the same port */
  void *ret;
  pthread_join(t, &ret);
  printf("call after the restart: %s\n", tri_code_name(call(ch, 0)));
  printf("state: %s\n", names[tri_channel_state(ch, 0)]);
  tri_channel_free(ch);
  tri_server_free(srv);
  return (long)ret == TRI_OK ? 0 : 1;
}
