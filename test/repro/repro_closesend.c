/* Reproducer: a send blocked on a full send buffer, woken after another
 * thread's tri_stream_close_send(), returns TRI_OK although the message is
 * never sent (END_STREAM went out first); the handler sees EOF one message
 * short. */
#include <stdio.h>
#include <triplestream/triplestream.h>
#include "testutil.h"

static atomic_int srv_count;
static int h_slow(tri_stream *s, void *ud) {
  tri_buf *m;
  int n = 0;
  (void)ud;
  for (;;) {
    tu_sleep_ms(2);
    int rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    tri_buf_free(m);
    n++;
  }
  atomic_store(&srv_count, n);
  return TRI_OK;
}
static tri_stream *st;
static void *closer(void *a) {
  (void)a;
  tu_sleep_ms(300);
  tri_stream_close_send(st);
  return NULL;
}
int main(void) {
  tu_method m = {"/r.R/Slow", h_slow, NULL};
  tri_server_opts *so = tri_server_opts_new();
  tri_server_opts_set_recv_queue(so, 4096);
  tri_channel_opts *co = tri_channel_opts_new();
  tri_channel_opts_set_send_buffer(co, 1024);
  int port, ok = 0;
  tri_server *srv = tu_server_start(&m, 1, so, &port);
  tri_channel *ch = tu_channel_new(port, co);
  static unsigned char buf[32 * 1024];
  pthread_t t;
  tri_stream_open(ch, "/r.R/Slow", NULL, &st);
  pthread_create(&t, NULL, closer, NULL);
  for (int i = 0; i < 400; i++) {
    int rv = tri_stream_send(st, buf, sizeof buf);
    if (rv != TRI_OK)
      break;
    ok++;
  }
  pthread_join(t, NULL);
  tri_stream_wait_status(st, 10000, NULL);
  printf("sends returned TRI_OK: %d, handler received: %d -> %s\n", ok,
         atomic_load(&srv_count),
         ok == atomic_load(&srv_count) ? "ok" : "BUG: a TRI_OK send was lost");
  tri_stream_free(st);
  tri_channel_free(ch);
  tri_server_free(srv);
  return ok != atomic_load(&srv_count);
}
