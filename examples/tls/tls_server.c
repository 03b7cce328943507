/*
 * The README's mutual-TLS server: serves /demo.Echo/Bidi on
 * 127.0.0.1:PORT (argv[2], default 50053) with the certificates in the
 * directory argv[1] (examples/tls/make-certs.sh), accepts only clients
 * with a certificate from ca.pem, and tells each who it is.
 */
#include <stdio.h>
#include <string.h>
#include <triplestream/triplestream.h>

static int whoami(tri_stream *s, void *user_data) {
  const tri_auth *a = tri_stream_auth(s);       /* verified identity */
  char reply[512];
  tri_buf *m;
  int rv = tri_stream_recv(s, &m);              /* the request */
  (void)user_data;
  if (rv != TRI_OK)
    return rv == TRI_EOF ? TRI_INVALID_ARGUMENT : rv;
  tri_buf_free(m);
  snprintf(reply, sizeof reply, "hello %s from %s over %s",
           tri_auth_peer_subject(a), tri_stream_peer(s),
           tri_auth_tls_version(a));
  return tri_stream_send(s, reply, strlen(reply));
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "certs";
  char crt[512], key[512], ca[512], addr[64];
  snprintf(crt, sizeof crt, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  snprintf(addr, sizeof addr, "127.0.0.1:%s", argc > 2 ? argv[2] : "50053");

  tri_tls_opts *tls = tri_tls_opts_new();
  tri_server_opts *so = tri_server_opts_new();
  tri_server *srv = NULL;
  tri_tls_opts_set_cert_key(tls, crt, key);
  tri_tls_opts_set_ca_file(tls, ca);                 /* verify clients */
  tri_tls_opts_set_client_auth(tls, TRI_TLS_CLIENT_REQUIRE);
  if (tri_server_opts_set_tls(so, tls) != TRI_OK ||
      tri_server_new(&srv, so) != TRI_OK ||          /* reads the files */
      tri_server_register(srv, "/demo.Echo/Bidi", whoami, NULL) != TRI_OK ||
      tri_server_bind(srv, addr) != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 2000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "%s\n", tri_last_error());
    return 1;
  }
  tri_tls_opts_free(tls);
  tri_server_opts_free(so);
  printf("listening on 127.0.0.1:%d\n", tri_server_port(srv));
  fflush(stdout);
  tri_server_wait(srv);                /* SIGHUP-style reloads would call
                                          tri_server_reload_tls(srv) */
  tri_server_free(srv);
  return 0;
}
