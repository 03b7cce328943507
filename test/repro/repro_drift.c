/* Reproducer: unread bytes of streams that end with data queued (cancel,
 * free) are never subtracted from the connection's unread total.  With
 * conn_recv_queue at its minimum (65536) the connection then withholds
 * window for good, and after the 16 MiB connection window a healthy stream
 * on the same connection stalls. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <triplestream/triplestream.h>
#include "testutil.h"

static int h_sink(tri_stream *s, void *ud) { /* never reads */
  (void)ud;
  for (int i = 0; i < 6000 && tri_stream_send_headers(s) == TRI_OK; i++)
    tu_sleep_ms(5);
  return TRI_CANCELLED;
}
static int h_reader(tri_stream *s, void *ud) { /* reads until EOF */
  tri_buf *m;
  (void)ud;
  while (tri_stream_recv(s, &m) == TRI_OK)
    tri_buf_free(m);
  return TRI_OK;
}

int main(int argc, char **argv) {
  int sinks = argc > 1 ? atoi(argv[1]) : 4;
  tu_method ms[] = {{"/r.R/Sink", h_sink, NULL}, {"/r.R/Read", h_reader, NULL}};
  tri_server_opts *so = tri_server_opts_new();
  tri_server_opts_set_conn_recv_queue(so, 65536);
  int port;
  tri_server *srv = tu_server_start(ms, 2, so, &port);
  tri_channel *ch = tu_channel_new(port, NULL);
  static unsigned char buf[256 * 1024];
  tri_stream *s;
  if (!srv || !ch)
    return 2;
  for (int i = 0; i < sinks; i++) { /* 512 KiB unread, then cancel */
    tri_stream_open(ch, "/r.R/Sink", NULL, &s);
    tri_stream_send(s, buf, sizeof buf);
    tri_stream_send(s, buf, sizeof buf);
    tu_sleep_ms(100);
    tri_stream_free(s);
  }
  tu_sleep_ms(200);
  tri_stream_open(ch, "/r.R/Read", NULL, &s);
  long sent = 0;
  int64_t t0 = tu_now_ms();
  for (int i = 0; i < 160; i++) { /* 40 MiB to a reader that keeps up */
    int rv = tri_stream_send_ex(s, buf, sizeof buf, 0, 3000);
    if (rv != TRI_OK) {
      printf("BUG: send to a reader that keeps up: %s after %ld KiB "
             "(%lld ms)\n", tri_code_name(rv), sent / 1024,
             (long long)(tu_now_ms() - t0));
      tri_stream_free(s);
      tri_channel_free(ch);
      tri_server_free(srv);
      return 1;
    }
    sent += sizeof buf;
  }
  tri_stream_close_send(s);
  printf("ok: %ld KiB sent in %lld ms, status %s\n", sent / 1024,
         (long long)(tu_now_ms() - t0),
         tri_code_name(tri_stream_wait_status(s, 5000, NULL)));
  tri_stream_free(s);
  tri_channel_free(ch);
  tri_server_free(srv);
  return 0;
}
