/* Reproducer: tri_unary_call against a handler that answers two messages
 * and status OK must return TRI_UNIMPLEMENTED (header: "a response count
 * other than one with status OK gives TRI_UNIMPLEMENTED (5.4)"); it often
 * returns TRI_CANCELLED: after its own cancel it prefers the stream's
 * final status, which is now its own CANCELLED. */
#include <stdio.h>
#include <triplestream/triplestream.h>
#include "testutil.h"

static int h_two(tri_stream *s, void *ud) {
  tri_buf *m;
  (void)ud;
  if (tri_stream_recv(s, &m) == TRI_OK)
    tri_buf_free(m);
  tri_stream_send(s, "a", 1);
  tri_stream_send(s, "b", 1);
  return TRI_OK;
}

int main(void) {
  tu_method m = {"/r.R/Two", h_two, NULL};
  int port, n[17] = {0}, other = 0;
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  tri_channel *ch = tu_channel_new(port, NULL);
  if (!srv || !ch)
    return 2;
  for (int i = 0; i < 200; i++) {
    tri_buf *resp = NULL;
    int rv = tri_unary_call(ch, "/r.R/Two", NULL, "q", 1, &resp, NULL);
    if (rv >= 0 && rv <= 16) n[rv]++; else other++;
    tri_buf_free(resp);
  }
  printf("200 unary calls, 2 responses each: UNIMPLEMENTED %d, CANCELLED %d,"
         " OK %d, other %d\n", n[TRI_UNIMPLEMENTED], n[TRI_CANCELLED],
         n[TRI_OK], 200 - n[TRI_UNIMPLEMENTED] - n[TRI_CANCELLED] - n[TRI_OK]);
  tri_channel_free(ch);
  tri_server_free(srv);
  return n[TRI_UNIMPLEMENTED] != 200;
}
