/* raw_client: the README's raw-API client, in full.  Sends "hello" on
 * /demo.Echo/Bidi and prints the echo.  Usage: raw_client [HOST:PORT]
 * (default 127.0.0.1:50052). */
#include <stdio.h>

#include <triplestream/triplestream.h>

int main(int argc, char **argv) {
  const char *target = argc > 1 ? argv[1] : "127.0.0.1:50052";
  tri_channel *ch;
  tri_stream *s;
  tri_buf *msg;
  int rv;
  tri_call_opts *o = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(o, 5000);          /* deadline: 5 s */
  if (tri_channel_new(&ch, target, NULL) != TRI_OK ||
      tri_stream_open(ch, "/demo.Echo/Bidi", o, &s) != TRI_OK) {
    fprintf(stderr, "raw_client: %s\n", tri_last_error());
    return 1;
  }
  tri_stream_send(s, "hello", 5);                 /* blocks only on backpressure */
  tri_stream_close_send(s);                       /* no more requests */
  while ((rv = tri_stream_recv(s, &msg)) == TRI_OK) {
    printf("got %zu bytes: %.*s\n", tri_buf_len(msg), (int)tri_buf_len(msg),
           (const char *)tri_buf_data(msg));
    tri_buf_free(msg);
  }
  const char *why;
  int status = tri_stream_wait_status(s, -1, &why);
  printf("status %s %s\n", tri_code_name(status), why);
  tri_stream_free(s);                             /* from any thread, any time */
  tri_channel_free(ch);
  tri_call_opts_free(o);
  return status == TRI_OK ? 0 : 1;
}
