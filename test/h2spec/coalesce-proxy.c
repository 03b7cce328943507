/*
 * coalesce-proxy: the loopback TCP relay between h2spec and the server in
 * test/h2spec/run_h2spec.sh.
 *
 *   coalesce-proxy --target=PORT [--quiet-ms=N] [--max-seconds=N]
 *
 * Listens on 127.0.0.1 (ephemeral port), prints "listening on
 * 127.0.0.1:PORT" once ready, and relays every accepted connection to
 * 127.0.0.1:TARGET.  Bytes from the server are passed on at once.  Bytes
 * from the client are held until the client has sent nothing for N ms
 * (default 25) and then written with one send(), so the frames that
 * h2spec writes back to back for one test case reach the server together.
 *
 * Why: TCP may split a byte stream anywhere, and every split is legal, but
 * h2spec's verdicts depend on it.  Our server answers a request that is
 * not gRPC at once (415, then RST_STREAM(NO_ERROR), RFC 9113 section 8.1);
 * when h2spec's next, deliberately bad frame on that stream arrives in a
 * later read, the stream is already closed and the frame is ignored
 * (section 5.1), so the case fails; when it arrives in the same read, the
 * server reports the error and the case passes.  Holding the burst makes
 * the second interleaving, the one h2spec means to test, the only one.
 *
 * A connection closed by one side (FIN) is closed towards the other once
 * the pending bytes are written; a reset or error on one side resets the
 * other.  At most 64 connections at once; the relay exits on SIGTERM,
 * SIGINT or after --max-seconds (default 1800).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESS 64
#define BUF_CAP (4u * 1024 * 1024) /* h2spec's largest burst is ~300 KB */

struct dir {
  unsigned char *buf;
  size_t len, off, cap;
  int eof;  /* the sending side closed (FIN) */
  int shut; /* FIN passed on to the receiving side */
};

struct sess {
  int used;
  int cfd, sfd; /* client (h2spec) side, server side */
  struct dir c2s, s2c;
  int64_t c2s_last_ms; /* last bytes from the client */
};

static volatile sig_atomic_t stop_flag;
static struct sess sessions[MAX_SESS];

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: coalesce-proxy --target=PORT [--quiet-ms=N] "
                  "[--max-seconds=N]\n");
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Close |fd| with a reset rather than a FIN. */
static void close_reset(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

static void dir_free(struct dir *d) {
  free(d->buf);
  memset(d, 0, sizeof(*d));
}

static void sess_free(struct sess *s) {
  dir_free(&s->c2s);
  dir_free(&s->s2c);
  s->used = 0;
}

/* A reset or an error on one side: pass it on, drop the connection. */
static void sess_abort(struct sess *s) {
  /* What the server already said still goes out first, best effort. */
  if (s->s2c.len > s->s2c.off)
    (void)send(s->cfd, s->s2c.buf + s->s2c.off, s->s2c.len - s->s2c.off,
               MSG_NOSIGNAL | MSG_DONTWAIT);
  close_reset(s->cfd);
  close_reset(s->sfd);
  sess_free(s);
}

/* Read what |fd| has into |d|: 1 got bytes or nothing yet, 0 EOF,
 * -1 error. */
static int dir_read(struct dir *d, int fd) {
  if (d->len == d->cap) {
    size_t ncap = d->cap ? d->cap * 2 : 64 * 1024;
    if (ncap > BUF_CAP)
      ncap = BUF_CAP;
    if (ncap == d->cap)
      return 1; /* full: not polled for input until it drains */
    unsigned char *nb = realloc(d->buf, ncap);
    if (nb == NULL)
      return -1;
    d->buf = nb;
    d->cap = ncap;
  }
  ssize_t n = recv(fd, d->buf + d->len, d->cap - d->len, MSG_DONTWAIT);
  if (n > 0) {
    d->len += (size_t)n;
    return 1;
  }
  if (n == 0)
    return 0;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1 : -1;
}

/* Write what |d| holds to |fd|: 0 ok (maybe partly), -1 error. */
static int dir_write(struct dir *d, int fd) {
  while (d->off < d->len) {
    ssize_t n = send(fd, d->buf + d->off, d->len - d->off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    d->off += (size_t)n;
  }
  d->off = d->len = 0;
  return 0;
}

static int c2s_due(const struct sess *s, int64_t now, long quiet_ms) {
  return s->c2s.len > s->c2s.off &&
         (s->c2s.eof || now - s->c2s_last_ms >= quiet_ms);
}

static void do_accept(int lfd, int target) {
  for (int i = 0; i < 16; i++) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
      return;
    struct sess *s = NULL;
    for (int k = 0; k < MAX_SESS; k++)
      if (!sessions[k].used) {
        s = &sessions[k];
        break;
      }
    int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)target);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A blocking connect on loopback: done or refused at once. */
    if (s == NULL || sfd < 0 ||
        connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      fprintf(stderr, "coalesce-proxy: %s\n",
              s == NULL ? "too many connections" : strerror(errno));
      if (sfd >= 0)
        close(sfd);
      close_reset(cfd);
      continue;
    }
    set_nodelay(cfd);
    set_nodelay(sfd);
    memset(s, 0, sizeof(*s));
    s->used = 1;
    s->cfd = cfd;
    s->sfd = sfd;
  }
}

/* One connection after poll(): move bytes, pass FINs on, close when both
 * directions are done.  |rc|, |rs|: revents of the client and server fd. */
static void sess_step(struct sess *s, short rc, short rs, int64_t now,
                      long quiet_ms) {
  /* Bytes that arrived before a reset are read and passed on first: the
   * reset shows as an error from a later recv(). */
  if ((rc & (POLLIN | POLLHUP | POLLERR)) && !s->c2s.eof) {
    size_t had = s->c2s.len;
    int r = dir_read(&s->c2s, s->cfd);
    if (r < 0) {
      sess_abort(s);
      return;
    }
    if (r == 0)
      s->c2s.eof = 1;
    if (s->c2s.len != had)
      s->c2s_last_ms = now;
  }
  if ((rs & (POLLIN | POLLHUP | POLLERR)) && !s->s2c.eof) {
    int r = dir_read(&s->s2c, s->sfd);
    if (r < 0) {
      sess_abort(s);
      return;
    }
    if (r == 0)
      s->s2c.eof = 1;
  }
  if (((rc & POLLERR) && s->c2s.eof) || ((rs & POLLERR) && s->s2c.eof)) {
    sess_abort(s); /* an error after the FIN: nothing left to read */
    return;
  }
  if (dir_write(&s->s2c, s->cfd) != 0) {
    sess_abort(s);
    return;
  }
  if (c2s_due(s, now, quiet_ms) && dir_write(&s->c2s, s->sfd) != 0) {
    sess_abort(s);
    return;
  }
  if (s->c2s.eof && s->c2s.len == 0 && !s->c2s.shut) {
    shutdown(s->sfd, SHUT_WR);
    s->c2s.shut = 1;
  }
  if (s->s2c.eof && s->s2c.len == 0 && !s->s2c.shut) {
    shutdown(s->cfd, SHUT_WR);
    s->s2c.shut = 1;
  }
  if (s->c2s.shut && s->s2c.shut) {
    close(s->cfd);
    close(s->sfd);
    sess_free(s);
  }
}

int main(int argc, char **argv) {
  long target = -1, quiet_ms = 25, max_s = 1800;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--target=", 9) == 0) {
      if (parse_int(a + 9, 1, 65535, &target) != 0) {
        usage();
        return 2;
      }
    } else if (strncmp(a, "--quiet-ms=", 11) == 0) {
      if (parse_int(a + 11, 0, 10000, &quiet_ms) != 0) {
        usage();
        return 2;
      }
    } else if (strncmp(a, "--max-seconds=", 14) == 0) {
      if (parse_int(a + 14, 1, 86400, &max_s) != 0) {
        usage();
        return 2;
      }
    } else {
      usage();
      return 2;
    }
  }
  if (target < 0) {
    usage();
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in la;
  socklen_t llen = sizeof(la);
  memset(&la, 0, sizeof(la));
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 ||
      listen(lfd, 64) != 0 ||
      getsockname(lfd, (struct sockaddr *)&la, &llen) != 0) {
    perror("coalesce-proxy: listen");
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", ntohs(la.sin_port));
  fflush(stdout);

  int64_t end = now_ms() + max_s * 1000;
  struct pollfd pfd[1 + 2 * MAX_SESS];
  int owner[1 + 2 * MAX_SESS]; /* session index of each pollfd */
  while (!stop_flag) {
    int64_t now = now_ms();
    if (now >= end) {
      fprintf(stderr, "coalesce-proxy: --max-seconds reached\n");
      break;
    }
    int64_t wait = end - now;
    int n = 0;
    pfd[n].fd = lfd;
    pfd[n].events = POLLIN;
    owner[n++] = -1;
    for (int k = 0; k < MAX_SESS; k++) {
      struct sess *s = &sessions[k];
      if (!s->used)
        continue;
      short ec = 0, es = 0;
      if (!s->c2s.eof && s->c2s.len < BUF_CAP)
        ec |= POLLIN;
      if (s->s2c.len > s->s2c.off)
        ec |= POLLOUT;
      if (!s->s2c.eof && s->s2c.len < BUF_CAP)
        es |= POLLIN;
      if (s->c2s.len > s->c2s.off) {
        if (c2s_due(s, now, quiet_ms))
          es |= POLLOUT;
        else if (s->c2s_last_ms + quiet_ms - now < wait)
          wait = s->c2s_last_ms + quiet_ms - now;
      }
      pfd[n].fd = s->cfd;
      pfd[n].events = ec;
      owner[n++] = k;
      pfd[n].fd = s->sfd;
      pfd[n].events = es;
      owner[n++] = k;
    }
    if (wait < 0)
      wait = 0;
    int r = poll(pfd, (nfds_t)n, (int)(wait > 1000 ? 1000 : wait));
    if (r < 0 && errno != EINTR) {
      perror("coalesce-proxy: poll");
      break;
    }
    now = now_ms();
    if (r > 0 && (pfd[0].revents & POLLIN))
      do_accept(lfd, (int)target);
    /* Sessions opened by do_accept() above are not in pfd yet. */
    for (int i = 1; i + 1 < n; i += 2) {
      struct sess *s = &sessions[owner[i]];
      if (s->used && s->cfd == pfd[i].fd)
        sess_step(s, r > 0 ? pfd[i].revents : 0,
                  r > 0 ? pfd[i + 1].revents : 0, now, quiet_ms);
    }
  }
  for (int k = 0; k < MAX_SESS; k++)
    if (sessions[k].used) {
      close(sessions[k].cfd);
      close(sessions[k].sfd);
      sess_free(&sessions[k]);
    }
  close(lfd);
  return 0;
}
