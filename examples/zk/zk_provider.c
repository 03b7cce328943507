/* zk_provider: the README's "Service discovery with ZooKeeper" server, in
 * full.  Serves /demo.Echo/Bidi, registers it in ZooKeeper as a Dubbo
 * provider (/dubbo/demo.Echo/providers/tri%3A%2F%2F...), and recycles
 * connections the way gRPC's A8/A9 describe.  Usage:
 *   zk_provider ZK_HOST:PORT [PORT]     (PORT 0 picks one and prints it)
 * SIGINT/SIGTERM: leave the registry, then drain for 5 s. */
#include <stdio.h>

#include <triplestream/triplestream.h>

static int echo(tri_stream *s, void *user_data) {
  tri_buf *m;
  int rv;
  (void)user_data;
  while ((rv = tri_stream_recv(s, &m)) == TRI_OK) {
    rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rv != TRI_OK)
      return rv;
  }
  return rv == TRI_EOF ? TRI_OK : rv;
}

int main(int argc, char **argv) {
  char addr[64], registry[300];
  tri_server *srv;
  tri_server_opts *o = tri_server_opts_new();
  if (argc < 2) {
    fprintf(stderr, "usage: zk_provider ZK_HOST:PORT [PORT]\n");
    return 2;
  }
  snprintf(registry, sizeof registry,
           "zookeeper://%s?application=zk-demo&session=10000", argv[1]);
  snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 2 ? argv[2] : "50053");
  if (tri_server_opts_set_registry(o, registry) != TRI_OK ||
      /* A8: refuse clients that PING more often than every 10 s */
      tri_server_opts_set_keepalive_enforcement(o, 10000, 1) != TRI_OK ||
      /* A9: move clients to fresh connections every 30 min (+-10 %),
       * letting calls in flight finish for up to 1 min */
      tri_server_opts_set_max_connection_age_ms(o, 30 * 60 * 1000) != TRI_OK ||
      tri_server_opts_set_max_connection_age_grace_ms(o, 60000) != TRI_OK ||
      tri_server_new(&srv, o) != TRI_OK ||
      tri_server_register(srv, "/demo.Echo/Bidi", echo, NULL) != TRI_OK ||
      tri_server_bind(srv, addr) != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 5000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "zk_provider: %s\n", tri_last_error());
    return 1;
  }
  tri_server_opts_free(o);
  printf("listening on 127.0.0.1:%d, registered in %s\n",
         tri_server_port(srv), registry);
  fflush(stdout);
  tri_server_wait(srv);
  tri_server_free(srv);
  return 0;
}
