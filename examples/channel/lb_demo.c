/*
 * Targets and load balancing (README "Targets and load balancing").
 *
 * Starts three servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (one port;
 * Linux routes all of 127/8 to the loopback), then calls them through one
 * channel with the target and policy given:
 *
 *   lb_demo [round_robin|pick_first]
 *
 * and prints how many calls each server answered and the channel's state.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <triplestream/triplestream.h>

static atomic_int hits[3];

static int hello(tri_stream *s, void *ud) {
  tri_buf *req = NULL;
  if (tri_stream_recv(s, &req) != TRI_OK)
    return TRI_INVALID_ARGUMENT;
  atomic_fetch_add((atomic_int *)ud, 1);
  int rv = tri_stream_send(s, tri_buf_data(req), tri_buf_len(req));
  tri_buf_free(req);
  return rv == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

int main(int argc, char **argv) {
  const char *policy = argc > 1 ? argv[1] : "round_robin";
  const char *ips[3] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
  tri_server *srv[3];
  int port = 0;
  char addr[64], target[256];

  for (int i = 0; i < 3; i++) {
    if (tri_server_new(&srv[i], NULL) != TRI_OK ||
        tri_server_register(srv[i], "/demo.Hello/Say", hello, &hits[i]) !=
            TRI_OK)
      return 1;
    snprintf(addr, sizeof addr, "%s:%d", ips[i], port);
    if (tri_server_bind(srv[i], addr) != TRI_OK ||
        tri_server_start(srv[i]) != TRI_OK) {
      fprintf(stderr, "server %s: %s\n", addr, tri_last_error());
      return 1;
    }
    port = tri_server_port(srv[i]); /* the others take the same port */
  }

  /* A fixed list; "dns:///name:port" would take every A/AAAA record of
   * the name, "zookeeper://zk:2181/org.example.Hello" the providers
   * registered in ZooKeeper. */
  snprintf(target, sizeof target, "ipv4:127.0.0.1:%d,127.0.0.2:%d,"
           "127.0.0.3:%d", port, port, port);
  tri_channel_opts *o = tri_channel_opts_new();
  tri_channel *ch = NULL;
  if (tri_channel_opts_set_lb_policy(o, policy) != TRI_OK ||
      tri_channel_new(&ch, target, o) != TRI_OK) {
    fprintf(stderr, "channel: %s\n", tri_last_error());
    return 1;
  }
  tri_channel_opts_free(o);
  printf("state before the first call: %d (TRI_CHANNEL_IDLE)\n",
         tri_channel_state(ch, 0));

  tri_call_opts *co = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(co, 5000);
  tri_call_opts_set_wait_for_ready(co, 1); /* ride out the connecting */
  int failed = 0;
  /* round_robin spreads calls over the READY connections: until all three
   * have answered SETTINGS the first calls go to those that have. */
  for (int i = 0; i < 1000 && (atomic_load(&hits[0]) == 0 ||
                                (strcmp(policy, "round_robin") == 0 &&
                                 (atomic_load(&hits[1]) == 0 ||
                                  atomic_load(&hits[2]) == 0)));
       i++) {
    tri_buf *resp = NULL;
    tri_unary_call(ch, "/demo.Hello/Say", co, "hi", 2, &resp, NULL);
    tri_buf_free(resp);
  }
  for (int i = 0; i < 3; i++)
    atomic_store(&hits[i], 0);
  for (int i = 0; i < 30; i++) {
    tri_buf *resp = NULL;
    if (tri_unary_call(ch, "/demo.Hello/Say", co, "hi", 2, &resp, NULL) !=
        TRI_OK) {
      fprintf(stderr, "call %d: %s\n", i, tri_last_error());
      failed++;
    }
    tri_buf_free(resp);
  }
  printf("%s over %s\n", policy, target);
  for (int i = 0; i < 3; i++)
    printf("  %s answered %d calls\n", ips[i], atomic_load(&hits[i]));
  printf("state after: %d (TRI_CHANNEL_READY = %d)\n",
         tri_channel_state(ch, 0), TRI_CHANNEL_READY);
  tri_call_opts_free(co);
  tri_channel_free(ch);
  for (int i = 0; i < 3; i++)
    tri_server_free(srv[i]);
  return failed ? 1 : 0;
}
