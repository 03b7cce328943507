/* raw_server: the README's raw-API server, in full.  Echoes every message
 * of /demo.Echo/Bidi back as bytes.  Usage: raw_server [PORT] (default
 * 50052; 0 picks one and prints it).  SIGINT/SIGTERM shut it down. */
#include <stdio.h>
#include <stdlib.h>

#include <triplestream/triplestream.h>

static int echo(tri_stream *s, void *user_data) {
  tri_buf *m;
  int rv;
  (void)user_data;
  while ((rv = tri_stream_recv(s, &m)) == TRI_OK) {
    rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rv != TRI_OK)
      return rv;               /* cancelled, deadline, reset: woken at once */
  }
  return rv == TRI_EOF ? TRI_OK : rv;   /* returned code becomes the status */
}

int main(int argc, char **argv) {
  char addr[64];
  tri_server *srv;
  snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 1 ? argv[1] : "50052");
  if (tri_server_new(&srv, NULL) != TRI_OK ||
      tri_server_register(srv, "/demo.Echo/Bidi", echo, NULL) != TRI_OK ||
      tri_server_bind(srv, addr) != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 2000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "raw_server: %s\n", tri_last_error());
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", tri_server_port(srv));
  fflush(stdout);
  tri_server_wait(srv);        /* until SIGINT/SIGTERM */
  tri_server_free(srv);
  return 0;
}
