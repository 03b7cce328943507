/*
 * h2raw: raw HTTP/2 frames for attacking a tri_server (see h2raw.h).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "h2raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

int64_t h2_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h2_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

const char *h2_errname(uint32_t code) {
  static const char *names[] = {
      "NO_ERROR",        "PROTOCOL_ERROR",     "INTERNAL_ERROR",
      "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
      "FRAME_SIZE_ERROR", "REFUSED_STREAM",    "CANCEL",
      "COMPRESSION_ERROR", "CONNECT_ERROR",    "ENHANCE_YOUR_CALM",
      "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};
  static __thread char buf[16];
  if (code < sizeof(names) / sizeof(names[0]))
    return names[code];
  snprintf(buf, sizeof(buf), "0x%x", code);
  return buf;
}

/* ---- buffer ------------------------------------------------------------ */

void h2buf_put(h2buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
      fprintf(stderr, "h2raw: out of memory\n");
      abort();
    }
    b->p = p;
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
}

void h2buf_put8(h2buf *b, uint8_t v) { h2buf_put(b, &v, 1); }

void h2buf_put32(h2buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  h2buf_put(b, x, 4);
}

void h2buf_reset(h2buf *b) { b->len = 0; }

void h2buf_free(h2buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---- frames ------------------------------------------------------------ */

void h2_frame(h2buf *b, uint8_t type, uint8_t flags, uint32_t sid,
              const void *payload, size_t len) {
  uint8_t h[9];
  h[0] = (uint8_t)(len >> 16);
  h[1] = (uint8_t)(len >> 8);
  h[2] = (uint8_t)len;
  h[3] = type;
  h[4] = flags;
  h[5] = (uint8_t)((sid >> 24) & 0x7f);
  h[6] = (uint8_t)(sid >> 16);
  h[7] = (uint8_t)(sid >> 8);
  h[8] = (uint8_t)sid;
  h2buf_put(b, h, 9);
  h2buf_put(b, payload, len);
}

void h2_settings(h2buf *b, const uint32_t (*settings)[2], size_t n) {
  uint8_t p[6 * 16];
  size_t len = 0;
  for (size_t i = 0; i < n && i < 16; i++) {
    uint32_t id = settings[i][0], v = settings[i][1];
    p[len++] = (uint8_t)(id >> 8);
    p[len++] = (uint8_t)id;
    p[len++] = (uint8_t)(v >> 24);
    p[len++] = (uint8_t)(v >> 16);
    p[len++] = (uint8_t)(v >> 8);
    p[len++] = (uint8_t)v;
  }
  h2_frame(b, H2_SETTINGS, 0, 0, p, len);
}

void h2_preface(h2buf *b, const uint32_t (*settings)[2], size_t n) {
  h2buf_put(b, H2_PREFACE, H2_PREFACE_LEN);
  h2_settings(b, settings, n);
}

void h2_ping(h2buf *b, uint64_t opaque) {
  uint8_t p[8];
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(opaque >> (56 - 8 * i));
  h2_frame(b, H2_PING, 0, 0, p, 8);
}

void h2_rst(h2buf *b, uint32_t sid, uint32_t code) {
  uint8_t p[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16),
                  (uint8_t)(code >> 8), (uint8_t)code};
  h2_frame(b, H2_RST_STREAM, 0, sid, p, 4);
}

void h2_window_update(h2buf *b, uint32_t sid, uint32_t inc) {
  uint8_t p[4] = {(uint8_t)((inc >> 24) & 0x7f), (uint8_t)(inc >> 16),
                  (uint8_t)(inc >> 8), (uint8_t)inc};
  h2_frame(b, H2_WINDOW_UPDATE, 0, sid, p, 4);
}

void h2_goaway(h2buf *b, uint32_t last_sid, uint32_t code) {
  uint8_t p[8] = {(uint8_t)((last_sid >> 24) & 0x7f), (uint8_t)(last_sid >> 16),
                  (uint8_t)(last_sid >> 8), (uint8_t)last_sid,
                  (uint8_t)(code >> 24), (uint8_t)(code >> 16),
                  (uint8_t)(code >> 8), (uint8_t)code};
  h2_frame(b, H2_GOAWAY, 0, 0, p, 8);
}

void h2_grpc_msg(h2buf *b, const void *data, uint32_t len) {
  h2buf_put8(b, 0);
  h2buf_put32(b, len);
  h2buf_put(b, data, len);
}

/* ---- HPACK ------------------------------------------------------------- */

void hp_int(h2buf *b, uint8_t first, int prefix_bits, uint64_t v) {
  uint64_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    h2buf_put8(b, (uint8_t)(first | v));
    return;
  }
  h2buf_put8(b, (uint8_t)(first | max));
  v -= max;
  while (v >= 128) {
    h2buf_put8(b, (uint8_t)(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  h2buf_put8(b, (uint8_t)v);
}

static void hp_str(h2buf *b, const void *s, size_t n) {
  hp_int(b, 0x00, 7, n); /* H = 0: no Huffman */
  h2buf_put(b, s, n);
}

void hp_lit(h2buf *b, const char *name, const void *val, size_t vlen) {
  h2buf_put8(b, 0x00);
  hp_str(b, name, strlen(name));
  hp_str(b, val, vlen);
}

void hp_lits(h2buf *b, const char *name, const char *val) {
  hp_lit(b, name, val, strlen(val));
}

void hp_lit_index(h2buf *b, const char *name, const void *val, size_t vlen) {
  h2buf_put8(b, 0x40);
  hp_str(b, name, strlen(name));
  hp_str(b, val, vlen);
}

void hp_indexed(h2buf *b, uint32_t index) { hp_int(b, 0x80, 7, index); }

void hp_grpc_request(h2buf *b, const char *path, const char *timeout) {
  hp_lits(b, ":method", "POST");
  hp_lits(b, ":scheme", "http");
  hp_lits(b, ":path", path);
  hp_lits(b, ":authority", "127.0.0.1");
  hp_lits(b, "content-type", "application/grpc");
  hp_lits(b, "te", "trailers");
  if (timeout != NULL)
    hp_lits(b, "grpc-timeout", timeout);
}

/* ---- sockets ----------------------------------------------------------- */

int h2_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int fl = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  return fd;
}

int h2_write_all(int fd, const void *data, size_t n, int timeout_ms,
                 size_t *written) {
  const uint8_t *p = data;
  size_t off = 0;
  int64_t deadline = h2_now_ms() + timeout_ms;
  int rv = 0;

  while (off < n) {
    ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      rv = -1;
      break;
    }
    int64_t left = deadline - h2_now_ms();
    if (left <= 0) {
      rv = -2;
      break;
    }
    struct pollfd pfd = {fd, POLLOUT, 0};
    poll(&pfd, 1, left > 100 ? 100 : (int)left);
  }
  if (written)
    *written = off;
  return rv;
}

void h2_close_reset(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

/* Read exactly |n| bytes within the deadline.  0, or -1. */
static int read_exact(int fd, uint8_t *out, size_t n, int64_t deadline) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = recv(fd, out + off, n - off, 0);
    if (r > 0) {
      off += (size_t)r;
      continue;
    }
    if (r == 0)
      return -1;
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    int64_t left = deadline - h2_now_ms();
    if (left <= 0)
      return -1;
    struct pollfd pfd = {fd, POLLIN, 0};
    poll(&pfd, 1, (int)left);
  }
  return 0;
}

int h2_read_exact(int fd, void *out, size_t n, int timeout_ms) {
  return read_exact(fd, out, n, h2_now_ms() + timeout_ms);
}

int h2_handshake(int fd, const uint32_t (*settings)[2], size_t n,
                 int timeout_ms) {
  return h2_handshake2(fd, settings, n, timeout_ms, NULL);
}

int h2_handshake2(int fd, const uint32_t (*settings)[2], size_t n,
                  int timeout_ms, uint32_t server_settings[7]) {
  h2buf b = {0};
  int64_t deadline = h2_now_ms() + timeout_ms;
  int rv = -1;

  h2_preface(&b, settings, n);
  if (h2_write_all(fd, b.p, b.len, timeout_ms, NULL) != 0)
    goto out;
  for (int frames = 0; frames < 64; frames++) {
    uint8_t h[9];
    if (read_exact(fd, h, 9, deadline) != 0)
      goto out;
    size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    if (len > 1u << 20)
      goto out;
    uint8_t *payload = malloc(len + 1);
    if (payload == NULL)
      abort();
    if (read_exact(fd, payload, len, deadline) != 0) {
      free(payload);
      goto out;
    }
    if (h[3] == H2_SETTINGS && !(h[4] & H2_F_ACK) && server_settings) {
      for (size_t o = 0; o + 6 <= len; o += 6) {
        uint32_t id = ((uint32_t)payload[o] << 8) | payload[o + 1];
        uint32_t v = ((uint32_t)payload[o + 2] << 24) |
                     ((uint32_t)payload[o + 3] << 16) |
                     ((uint32_t)payload[o + 4] << 8) | payload[o + 5];
        if (id >= 1 && id <= 6)
          server_settings[id] = v;
      }
    }
    free(payload);
    if (h[3] == H2_SETTINGS && !(h[4] & H2_F_ACK)) {
      h2buf_reset(&b);
      h2_frame(&b, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
      rv = h2_write_all(fd, b.p, b.len, timeout_ms, NULL) == 0 ? 0 : -1;
      goto out;
    }
  }
out:
  h2buf_free(&b);
  return rv;
}

/* ---- reader ------------------------------------------------------------ */

struct rd_state {
  nghttp2_hd_inflater *inf;
  h2buf hblock;      /* header block being collected */
  int in_headers;
};

static void rd_header_block(h2reader *r, struct rd_state *st) {
  const uint8_t *in = st->hblock.p;
  size_t inlen = st->hblock.len;
  long status = -1;
  int saw_grpc_status = 0;

  for (int guard = 0; guard < 100000; guard++) {
    nghttp2_nv nv;
    int fl = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(st->inf, &nv, &fl, in, inlen, 1);
    if (rv < 0)
      break;
    in += rv;
    inlen -= (size_t)rv;
    if (fl & NGHTTP2_HD_INFLATE_EMIT) {
      if (nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0) {
        if (!(nv.valuelen == 3 && memcmp(nv.value, "200", 3) == 0))
          atomic_fetch_add(&r->http_non200, 1);
      } else if (nv.namelen == 11 && memcmp(nv.name, "grpc-status", 11) == 0) {
        char tmp[12];
        size_t n = nv.valuelen < 11 ? nv.valuelen : 11;
        memcpy(tmp, nv.value, n);
        tmp[n] = 0;
        status = strtol(tmp, NULL, 10);
        saw_grpc_status = 1;
      }
    }
    if (fl & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(st->inf);
      break;
    }
    if (inlen == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))
      break;
  }
  if (saw_grpc_status)
    atomic_fetch_add(&r->grpc_status[status >= 0 && status <= 16 ? status : 17],
                     1);
}

static void rd_frame(h2reader *r, struct rd_state *st, const uint8_t *h,
                     const uint8_t *p, size_t len) {
  uint8_t type = h[3], flags = h[4];
  if (type < H2_NTYPES)
    atomic_fetch_add(&r->frames[type], 1);
  switch (type) {
  case H2_DATA:
    atomic_fetch_add(&r->data_bytes, (long)len);
    break;
  case H2_RST_STREAM:
    if (len >= 4) {
      uint32_t code = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                      ((uint32_t)p[2] << 8) | p[3];
      atomic_fetch_add(&r->rst_by_code[code < 16 ? code : 15], 1);
    }
    break;
  case H2_GOAWAY:
    if (len >= 8) {
      uint32_t last = ((uint32_t)(p[0] & 0x7f) << 24) | ((uint32_t)p[1] << 16) |
                      ((uint32_t)p[2] << 8) | p[3];
      uint32_t code = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) |
                      ((uint32_t)p[6] << 8) | p[7];
      size_t dl = len - 8 < sizeof(r->goaway_debug) - 1
                      ? len - 8
                      : sizeof(r->goaway_debug) - 1;
      memcpy(r->goaway_debug, p + 8, dl);
      r->goaway_debug[dl] = 0;
      atomic_store(&r->goaway_code, code);
      atomic_store(&r->goaway_last_sid, last);
      atomic_store(&r->goaway_at_ms, h2_now_ms());
      atomic_fetch_add(&r->goaways, 1);
    }
    break;
  case H2_HEADERS:
  case H2_CONTINUATION:
    if (!r->decode_headers)
      break;
    if (type == H2_HEADERS) {
      size_t off = 0, pad = 0;
      h2buf_reset(&st->hblock);
      if (flags & H2_F_PADDED) {
        if (len < 1)
          break;
        pad = p[0];
        off = 1;
      }
      if (flags & H2_F_PRIORITY)
        off += 5;
      if (off + pad > len)
        break;
      h2buf_put(&st->hblock, p + off, len - off - pad);
    } else {
      h2buf_put(&st->hblock, p, len);
    }
    if (flags & H2_F_END_HEADERS)
      rd_header_block(r, st);
    break;
  default:
    break;
  }
}

static void *reader_main(void *arg) {
  h2reader *r = arg;
  struct rd_state st;
  h2buf in = {0};
  uint8_t chunk[65536];

  memset(&st, 0, sizeof(st));
  if (nghttp2_hd_inflate_new(&st.inf) != 0)
    abort();
  for (;;) {
    if (atomic_load(&r->stop))
      break;
    struct pollfd pfd = {r->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, 20);
    if (pr <= 0)
      continue;
    ssize_t n = recv(r->fd, chunk, sizeof(chunk), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
      continue;
    if (n <= 0) {
      atomic_store(&r->close_errno, n == 0 ? 0 : errno);
      atomic_store(&r->closed_at_ms, h2_now_ms());
      atomic_store(&r->closed, 1);
      break;
    }
    atomic_fetch_add(&r->bytes, (long)n);
    h2buf_put(&in, chunk, (size_t)n);
    size_t off = 0;
    for (;;) {
      if (in.len - off < 9)
        break;
      const uint8_t *h = in.p + off;
      size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
      if (in.len - off - 9 < len)
        break;
      rd_frame(r, &st, h, h + 9, len);
      off += 9 + len;
    }
    if (off > 0) {
      memmove(in.p, in.p + off, in.len - off);
      in.len -= off;
    }
  }
  nghttp2_hd_inflate_del(st.inf);
  h2buf_free(&st.hblock);
  h2buf_free(&in);
  return NULL;
}

void h2reader_start(h2reader *r, int fd, int decode_headers) {
  memset(r, 0, sizeof(*r));
  r->fd = fd;
  r->decode_headers = decode_headers;
  if (pthread_create(&r->t, NULL, reader_main, r) != 0) {
    fprintf(stderr, "h2raw: cannot start reader thread\n");
    abort();
  }
  r->started = 1;
}

int h2reader_wait_closed(h2reader *r, int timeout_ms) {
  int64_t deadline = h2_now_ms() + timeout_ms;
  while (!atomic_load(&r->closed)) {
    if (h2_now_ms() >= deadline)
      return -1;
    h2_sleep_ms(5);
  }
  return 0;
}

int h2reader_wait_goaway_or_close(h2reader *r, int timeout_ms) {
  int64_t deadline = h2_now_ms() + timeout_ms;
  while (!atomic_load(&r->closed) && atomic_load(&r->goaways) == 0) {
    if (h2_now_ms() >= deadline)
      return -1;
    h2_sleep_ms(5);
  }
  return 0;
}

void h2reader_stop(h2reader *r) {
  if (!r->started)
    return;
  atomic_store(&r->stop, 1);
  pthread_join(r->t, NULL);
  r->started = 0;
}

const char *h2reader_summary(h2reader *r) {
  static __thread char buf[512];
  char st[200] = "";
  size_t o = 0;
  for (int i = 0; i < 18; i++) {
    long v = atomic_load(&r->grpc_status[i]);
    if (v && o < sizeof(st) - 20)
      o += (size_t)snprintf(st + o, sizeof(st) - o, " %s%d:%ld",
                            i == 17 ? ">" : "", i == 17 ? 16 : i, v);
  }
  snprintf(buf, sizeof(buf),
           "closed=%d(errno %d) goaways=%d last_code=%s debug='%s' "
           "frames: HEADERS=%ld DATA=%ld RST=%ld(REFUSED=%ld CANCEL=%ld "
           "PROTOCOL=%ld) SETTINGS=%ld PING=%ld WINDOW_UPDATE=%ld "
           "bytes=%ld grpc-status:[%s] http-non200=%ld",
           atomic_load(&r->closed), atomic_load(&r->close_errno),
           atomic_load(&r->goaways),
           atomic_load(&r->goaways) ? h2_errname(atomic_load(&r->goaway_code))
                                    : "-",
           r->goaway_debug, atomic_load(&r->frames[H2_HEADERS]),
           atomic_load(&r->frames[H2_DATA]),
           atomic_load(&r->frames[H2_RST_STREAM]),
           atomic_load(&r->rst_by_code[H2_REFUSED_STREAM]),
           atomic_load(&r->rst_by_code[H2_CANCEL]),
           atomic_load(&r->rst_by_code[H2_PROTOCOL_ERROR]),
           atomic_load(&r->frames[H2_SETTINGS]),
           atomic_load(&r->frames[H2_PING]),
           atomic_load(&r->frames[H2_WINDOW_UPDATE]), atomic_load(&r->bytes),
           st, atomic_load(&r->http_non200));
  return buf;
}
