/*
 * fuzz_client_conn: arbitrary bytes from a server, into a tri client.
 *
 * A fake server socket (127.0.0.1:0, opened once) answers a tri channel
 * with the fuzz input.  Per input: create a channel, open one stream
 * (byte 0 picks unary / server-streaming use and the deadline), accept
 * the connection, write an optional valid server SETTINGS frame (byte 0
 * bit 0) and the input, half-close; the client meanwhile sends its request
 * and reads until the stream ends (bounded by a 200 ms deadline).  Then
 * the stream and channel are freed: the client's I/O thread and the
 * channel teardown run for every input.  Byte 0 bit 5 makes the stream a
 * Triple unary call (doc/PROTOCOL.md 14: bare body, plain HTTP answer).
 */
#include <stdio.h>
#include <stdlib.h>

#include <triplestream/triplestream.h>

#include "fuzz_net.h"
#include "triple.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_lfd = -1, g_port;
static char g_target[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  g_lfd = fz_listen(&g_port);
  if (g_lfd < 0)
    abort();
  snprintf(g_target, sizeof(g_target), "127.0.0.1:%d", g_port);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  data++;
  size--;

  tri_channel_opts *co = tri_channel_opts_new();
  tri_channel_opts_set_connect_timeout_ms(co, 1000);
  tri_channel_opts_set_max_recv_size(co, 64 * 1024);
  tri_channel *ch = NULL;
  if (tri_channel_new(&ch, g_target, co) != TRI_OK)
    abort();
  tri_channel_opts_free(co);
  tri_call_opts *o = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(o, 200);
  if (flags & 4)
    tri_call_opts_set_compression(o, "gzip");
  if (flags & 8)
    tri_call_opts_add_metadata(o, "x-key-bin", "\x00\xff", 2);
  tri_stream *s = NULL;
  if (flags & 32) {
    tri_call_opts_set_protocol(o, TRI_PROTOCOL_TRIPLE);
    if (tri__stream_open_unary(ch, "/f.Svc/Unary", o, &s) != TRI_OK)
      abort();
  } else if (tri_stream_open(ch, "/f.Svc/Bidi", o, &s) != TRI_OK) {
    abort();
  }

  struct pollfd p = {g_lfd, POLLIN, 0};
  int fd = -1;
  if (poll(&p, 1, 1000) == 1)
    fd = accept(g_lfd, NULL, NULL);
  if (fd >= 0) {
    fz_nonblock(fd);
    if (flags & 1) {
      static const uint8_t settings[] = "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
      fz_write(fd, settings, sizeof(settings) - 1, 100);
    }
    fz_write(fd, data, size, 100);
    shutdown(fd, SHUT_WR);
  }
  if (flags & 32)
    tri__stream_send_bare_last(s, "request", 7);
  else
    tri_stream_send_ex(s, "request", 7, TRI_SEND_LAST, 50);
  tri_buf *m = NULL;
  for (int i = 0; i < 64; i++) {
    int rc = (flags & 16) ? tri_stream_recv(s, &m)
                          : tri_stream_recv_ex(s, &m, 200);
    if (rc != TRI_OK)
      break;
    tri_buf_free(m);
    m = NULL;
  }
  const tri_metadata *md = tri_stream_headers(s, 0);
  (void)tri_metadata_count(md);
  const char *msg = NULL;
  tri_stream_wait_status(s, 300, &msg);
  md = tri_stream_trailers(s);
  for (size_t i = 0; i < tri_metadata_count(md); i++) {
    const char *k;
    const void *v;
    size_t vl;
    tri_metadata_get(md, i, &k, &v, &vl);
  }
  tri_stream_free(s);
  tri_call_opts_free(o);
  if (fd >= 0) {
    fz_drain(fd, 1, 20);
    close(fd);
  }
  tri_channel_free(ch);
  return 0;
}
