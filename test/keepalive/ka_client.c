/*
 * ka_client: one channel with keepalive against a peer server, for
 * test/keepalive/run_keepalive_py.sh.
 *
 *   ka_client TARGET KEEPALIVE_MS PERMIT_WITHOUT_CALLS SECONDS
 *
 * Makes one call to /test.Ka/Ping, stays idle for SECONDS while watching
 * the channel's connectivity state, then makes another call.  Prints every
 * state change ("state T_MS NAME") and "left_ready=N" (times the channel
 * left READY: a GOAWAY or a closed connection), and exits 0 when both
 * calls succeeded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <triplestream/triplestream.h>

static const char *names[] = {"IDLE", "CONNECTING", "READY",
                              "TRANSIENT_FAILURE", "SHUTDOWN"};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int call(tri_channel *ch) {
  tri_call_opts *o = tri_call_opts_new();
  tri_buf *resp = NULL;
  tri_call_opts_set_timeout_ms(o, 10000);
  int rv = tri_unary_call(ch, "/test.Ka/Ping", o, "ping", 4, &resp, NULL);
  if (rv != TRI_OK)
    fprintf(stderr, "call: %s: %s\n", tri_code_name(rv), tri_last_error());
  tri_buf_free(resp);
  tri_call_opts_free(o);
  return rv;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: ka_client TARGET KEEPALIVE_MS PERMIT SECONDS\n");
    return 2;
  }
  tri_channel_opts *o = tri_channel_opts_new();
  tri_channel *ch = NULL;
  if (tri_channel_opts_set_keepalive(o, atoll(argv[2]), 5000) != TRI_OK ||
      tri_channel_opts_set_keepalive_permit_without_calls(o, atoi(argv[3])) !=
          TRI_OK ||
      tri_channel_new(&ch, argv[1], o) != TRI_OK) {
    fprintf(stderr, "channel: %s\n", tri_last_error());
    return 2;
  }
  tri_channel_opts_free(o);
  long long t0 = now_ms(), end = t0 + atoll(argv[4]) * 1000;
  int rc = call(ch) == TRI_OK ? 0 : 1, left_ready = 0;
  int st = tri_channel_state(ch, 0);
  printf("state %lld %s\n", now_ms() - t0, names[st]);
  while (now_ms() < end) {
    if (tri_channel_wait_state_change(ch, st, end - now_ms()) != TRI_OK)
      break;
    int ns = tri_channel_state(ch, 0);
    if (st == TRI_CHANNEL_READY && ns != TRI_CHANNEL_READY)
      left_ready++;
    st = ns;
    printf("state %lld %s\n", now_ms() - t0, names[st]);
    fflush(stdout);
    if (st == TRI_CHANNEL_IDLE)
      tri_channel_state(ch, 1); /* reconnect, keep pinging */
  }
  if (call(ch) != TRI_OK)
    rc = 1;
  printf("left_ready=%d\n", left_ready);
  tri_channel_free(ch);
  return rc;
}
