/* Reproducer: finish(OK) with messages still queued, then the call's
 * deadline passes -> the server sends grpc-status 0 and drops the queued
 * messages (client sees OK with a truncated response stream).
 * A raw HTTP/2 client (test/hardening/h2raw) sends grpc-timeout 200m and
 * a stream window of 1024 bytes, so at most 1 KiB of the 80 KiB response
 * can go out before the deadline. */
#include <stdio.h>
#include <string.h>
#include <triplestream/triplestream.h>
#include "h2raw.h"
#include "testutil.h"

static int h_send20(tri_stream *s, void *ud) {
  static unsigned char buf[4096];
  (void)ud;
  for (int i = 0; i < 20; i++)
    if (tri_stream_send(s, buf, sizeof buf) != TRI_OK)
      return TRI_INTERNAL;
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_INTERNAL;
}

int main(void) {
  tu_method m = {"/r.R/S", h_send20, NULL};
  int port, fd;
  tri_server *srv = tu_server_start(&m, 1, NULL, &port);
  const uint32_t set[][2] = {{H2_S_INITIAL_WINDOW_SIZE, 1024}};
  h2buf b = {0}, hb = {0}, msg = {0};
  h2reader r;

  fd = h2_connect(port, 0);
  if (srv == NULL || fd < 0 || h2_handshake(fd, set, 1, 2000) != 0)
    return 2;
  memset(&r, 0, sizeof r);
  h2reader_start(&r, fd, 1);
  hp_grpc_request(&hb, "/r.R/S", "200m");
  h2_frame(&b, H2_HEADERS, H2_F_END_HEADERS, 1, hb.p, hb.len);
  h2_grpc_msg(&msg, "x", 1);
  h2_frame(&b, H2_DATA, H2_F_END_STREAM, 1, msg.p, msg.len);
  h2_write_all(fd, b.p, b.len, 2000, NULL);
  h2_sleep_ms(400); /* a slow reader: past the 200 ms deadline ... */
  h2buf_reset(&b);
  h2_window_update(&b, 1, 1 << 20); /* ... then it reads */
  h2_window_update(&b, 0, 1 << 20);
  h2_write_all(fd, b.p, b.len, 2000, NULL);
  h2_sleep_ms(400);
  printf("DATA bytes received: %ld of %d; grpc-status 0 seen %ld times, "
         "grpc-status 4 %ld times\n", atomic_load(&r.data_bytes), 20 * 4101,
         atomic_load(&r.grpc_status[0]), atomic_load(&r.grpc_status[4]));
  int bug = atomic_load(&r.grpc_status[0]) > 0 &&
            atomic_load(&r.data_bytes) < 20 * 4101;
  printf("%s\n", bug ? "BUG: status OK for a truncated response stream"
                     : "ok: no OK status for the truncated stream");
  h2reader_stop(&r);
  h2_close_reset(fd);
  tri_server_free(srv);
  return bug;
}
