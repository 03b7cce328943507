/*
 * The README's mutual-TLS client: calls /demo.Echo/Bidi at argv[2]
 * (default 127.0.0.1:50053), verifying the server with ca.pem and
 * presenting client.pem, both from the directory argv[1].
 */
#include <stdio.h>
#include <triplestream/triplestream.h>

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "certs";
  const char *target = argc > 2 ? argv[2] : "127.0.0.1:50053";
  char ca[512], crt[512], key[512];
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  snprintf(crt, sizeof crt, "%s/client.pem", dir);
  snprintf(key, sizeof key, "%s/client.key", dir);

  tri_tls_opts *tls = tri_tls_opts_new();
  tri_channel_opts *co = tri_channel_opts_new();
  tri_call_opts *o = tri_call_opts_new();
  tri_channel *ch = NULL;
  tri_buf *resp = NULL;
  tri_tls_opts_set_ca_file(tls, ca);               /* trust this CA only */
  tri_tls_opts_set_cert_key(tls, crt, key);        /* mutual TLS */
  tri_call_opts_set_timeout_ms(o, 5000);
  int rv = tri_channel_opts_set_tls(co, tls);
  if (rv == TRI_OK)
    rv = tri_channel_new(&ch, target, co);         /* reads the files */
  if (rv == TRI_OK)
    rv = tri_unary_call(ch, "/demo.Echo/Bidi", o, "hi", 2, &resp, NULL);
  if (rv == TRI_OK)
    printf("%s\n", (const char *)tri_buf_data(resp));
  else    /* e.g. "TLS handshake with 127.0.0.1:50053 failed: ..." */
    fprintf(stderr, "%s: %s\n", tri_code_name(rv), tri_last_error());
  tri_buf_free(resp);
  tri_channel_free(ch);
  tri_call_opts_free(o);
  tri_channel_opts_free(co);
  tri_tls_opts_free(tls);
  return rv != TRI_OK;
}
