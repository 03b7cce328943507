/*
 * fuzz_server_conn: arbitrary bytes from a client, into a real tri_server.
 *
 * The library has no in-memory transport, so LLVMFuzzerInitialize starts
 * one tri_server on 127.0.0.1:0 in this process (handlers: unary echo,
 * bidi echo, a streaming sender, a handler that fails) and every input is
 * written to a fresh TCP connection to it.  Byte 0 is a flag byte: bit 0
 * prepends a valid client preface + empty SETTINGS (so most inputs get
 * past the preface check), bit 1 half-closes immediately instead of
 * waiting for the server to go quiet.  Then the server's answer is read
 * until it closes, is quiet for 5 ms, or 100 ms pass; then half-close and
 * wait (<= 200 ms) for the server to close.  The server's I/O and worker
 * threads run in this process, so their coverage and sanitizer reports
 * count.  Per-input time stays in milliseconds.
 */
#include <stdio.h>
#include <stdlib.h>

#include <triplestream/triplestream.h>

#include "fuzz_net.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int g_port = -1;

static int h_unary(tri_stream *s, void *ud) {
  tri_buf *m = NULL;
  if (tri_stream_recv(s, &m) != TRI_OK)
    return TRI_OK;
  tri_stream_add_header(s, "x-echo", "1", 1);
  tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
  tri_buf_free(m);
  return TRI_OK;
}

static int h_bidi(tri_stream *s, void *ud) {
  tri_buf *m = NULL;
  for (int i = 0; i < 64 && tri_stream_recv_ex(s, &m, 200) == TRI_OK; i++) {
    tri_stream_send_ex(s, tri_buf_data(m), tri_buf_len(m), 0, 50);
    tri_buf_free(m);
    m = NULL;
  }
  const tri_metadata *md = tri_stream_headers(s, 0);
  (void)tri_metadata_count(md);
  tri_stream_add_trailer(s, "x-trailer-bin", "\x01\x02", 2);
  return tri_stream_finish(s, TRI_OK, NULL) == TRI_OK ? TRI_OK : TRI_OK;
}

static int h_stream(tri_stream *s, void *ud) {
  static const uint8_t buf[4096];
  tri_stream_set_compression(s, "gzip");
  for (int i = 0; i < 8; i++)
    if (tri_stream_send_ex(s, buf, sizeof(buf), 0, 50) != TRI_OK)
      break;
  return TRI_OK;
}

static int h_fail(tri_stream *s, void *ud) {
  tri_stream_finish(s, TRI_INVALID_ARGUMENT, "bad \xff request %");
  return 99;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  tri_server_opts *o = tri_server_opts_new();
  tri_server *srv = NULL;
  tri_server_opts_set_max_workers(o, 16);
  tri_server_opts_set_queue_timeout_ms(o, 20);
  tri_server_opts_set_max_recv_size(o, 64 * 1024);
  if (tri_server_new(&srv, o) != TRI_OK)
    abort();
  tri_server_opts_free(o);
  tri_server_register(srv, "/f.Svc/Unary", h_unary, NULL);
  tri_server_register(srv, "/f.Svc/Bidi", h_bidi, NULL);
  tri_server_register(srv, "/f.Svc/Stream", h_stream, NULL);
  tri_server_register(srv, "/f.Svc/Fail", h_fail, NULL);
  tri_server_register_versioned(srv, "/f.Svc/Unary", "g1", "1.0", h_unary,
                                NULL);
  if (tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_start(srv) != TRI_OK)
    abort();
  g_port = tri_server_port(srv);
  /* The server lives until the process exits (reachable: no leak). */
  static tri_server *keep;
  keep = srv;
  (void)keep;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t flags = data[0];
  data++;
  size--;
  int fd = fz_connect(g_port);
  if (fd < 0)
    return 0;
  if (flags & 1) {
    static const uint8_t pre[] = FZ_PREFACE "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    fz_write(fd, pre, sizeof(pre) - 1, 100);
  }
  fz_write(fd, data, size, 100);
  if (!(flags & 2))
    if (fz_drain(fd, 5, 100)) {
      close(fd);
      return 0;
    }
  shutdown(fd, SHUT_WR);
  fz_drain(fd, 200, 200);
  close(fd);
  return 0;
}
