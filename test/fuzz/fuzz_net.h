/*
 * Loopback socket helpers shared by fuzz_server_conn.c and
 * fuzz_client_conn.c (header-only; each target includes it once).
 */
#ifndef FUZZ_NET_H
#define FUZZ_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FZ_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

static int64_t fz_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fz_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Write what the peer takes within |ms|; stop on error. */
static void fz_write(int fd, const uint8_t *p, size_t n, int ms) {
  int64_t dl = fz_now_ms() + ms;
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return;
    int64_t left = dl - fz_now_ms();
    if (left <= 0)
      return;
    struct pollfd pfd = {fd, POLLOUT, 0};
    poll(&pfd, 1, (int)left);
  }
}

/* Read and discard until EOF/error, |quiet_ms| without data, or |ms|
 * in total.  Returns 1 on EOF/error. */
static int fz_drain(int fd, int quiet_ms, int ms) {
  int64_t dl = fz_now_ms() + ms;
  char buf[16384];
  for (;;) {
    int64_t left = dl - fz_now_ms();
    if (left <= 0)
      return 0;
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, left < quiet_ms ? (int)left : quiet_ms);
    if (pr == 0)
      return 0;
    if (pr < 0)
      continue;
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r == 0)
      return 1;
    if (r < 0 && errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK)
      return 1;
  }
}

static int fz_listen(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(fd, 16) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
    return -1;
  *port = ntohs(sa.sin_port);
  return fd;
}

static int fz_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fz_nonblock(fd);
  return fd;
}

#endif /* FUZZ_NET_H */
