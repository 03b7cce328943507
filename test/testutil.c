/*
 * Helpers for the loopback integration suites; see testutil.h.
 * Public API of libtriplestream plus POSIX and Linux /proc; the one
 * internal hook is lib/budget.h (tu_budgets_settle()).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "testutil.h"

#include "budget.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int
tu_threads_named(const char *name)
{
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL) {
    char path[300], comm[64] = "";
    FILE *f;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    f = fopen(path, "r");
    if (f == NULL)
      continue; /* ended meanwhile */
    if (fgets(comm, sizeof comm, f) != NULL) {
      comm[strcspn(comm, "\n")] = '\0';
      n += strcmp(comm, name) == 0;
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

int64_t
tu_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
tu_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
tu_sleep_ms(int ms)
{
  struct timespec ts, rem;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &rem) == -1 && errno == EINTR)
    ts = rem;
}

/* ---------------------------------------------------------------- */

double
tu_mult(void)
{
  const char *e = getenv("CK_TIMEOUT_MULTIPLIER");
  char *end = NULL;
  double m;

  if (e == NULL || *e == '\0')
    return 1.0;
  m = strtod(e, &end);
  if (end == e || !(m >= 1.0) || m > 1000.0)
    return 1.0;
  return m;
}

int64_t
tu_bound_ms(int64_t promise_ms, int64_t headroom_ms)
{
  return promise_ms + (int64_t)((double)headroom_ms * tu_mult());
}

static int
budgets_zero(const tri__budgets *b)
{
  return b->streams == 0 && b->conns == 0 && b->rq_bytes == 0 &&
         b->conn_rq_bytes == 0 && b->partial_bytes == 0 &&
         b->ring_bytes == 0 && b->conn_owed == 0 && b->spare_bytes == 0 &&
         b->quiet_conns == 0 && b->resolvers == 0;
}

int
tu_budgets_settle(int timeout_ms)
{
  int64_t end = tu_now_ms() + (int64_t)((double)timeout_ms * tu_mult());
  tri__budgets b;
  long i;

  /* Bounded: at most timeout / 2 ms polls (and the clock check). */
  for (i = 0; i < 1000000; i++) {
    tri__budgets_get(&b);
    if (budgets_zero(&b))
      return 0;
    if (tu_now_ms() > end)
      break;
    tu_sleep_ms(2);
  }
  fprintf(stderr,
          "testutil: library budgets not back to zero %d ms after the "
          "test freed everything: streams=%lld conns=%lld rq_bytes=%lld "
          "conn_rq_bytes=%lld partial_bytes=%lld ring_bytes=%lld "
          "conn_owed=%lld spare_bytes=%lld quiet_conns=%lld resolvers=%lld "
          "(loops=%lld)\n",
          timeout_ms, (long long)b.streams, (long long)b.conns,
          (long long)b.rq_bytes, (long long)b.conn_rq_bytes,
          (long long)b.partial_bytes, (long long)b.ring_bytes,
          (long long)b.conn_owed, (long long)b.spare_bytes,
          (long long)b.quiet_conns, (long long)b.resolvers,
          (long long)b.loops);
  return -1;
}

long
tu_proc_status_kb(const char *field)
{
  char line[256];
  size_t fl = strlen(field);
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "re");

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
      kb = strtol(line + fl + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

int
tu_reset_peak_rss(void)
{
  FILE *f = fopen("/proc/self/clear_refs", "we");
  int rv;

  if (f == NULL)
    return -1;
  rv = fputs("5", f) < 0 ? -1 : 0;
  if (fclose(f) != 0)
    rv = -1;
  return rv;
}

/* ---------------------------------------------------------------- */

tri_server *
tu_server_start(const tu_method *methods, size_t n,
                const tri_server_opts *opts, int *port)
{
  tri_server *srv = NULL;
  size_t i;
  int rv;

  rv = tri_server_new(&srv, opts);
  if (rv != TRI_OK) {
    fprintf(stderr, "testutil: tri_server_new: %s\n", tu_code(rv));
    return NULL;
  }
  for (i = 0; i < n; i++) {
    rv = tri_server_register(srv, methods[i].method, methods[i].fn,
                             methods[i].user_data);
    if (rv != TRI_OK) {
      fprintf(stderr, "testutil: tri_server_register(%s): %s\n",
              methods[i].method, tu_code(rv));
      goto fail;
    }
  }
  rv = tri_server_bind(srv, "127.0.0.1:0");
  if (rv != TRI_OK) {
    fprintf(stderr, "testutil: tri_server_bind: %s (%s)\n", tu_code(rv),
            strerror(errno));
    goto fail;
  }
  rv = tri_server_start(srv);
  if (rv != TRI_OK) {
    fprintf(stderr, "testutil: tri_server_start: %s\n", tu_code(rv));
    goto fail;
  }
  *port = tri_server_port(srv);
  if (*port <= 0) {
    fprintf(stderr, "testutil: tri_server_port: %d\n", *port);
    goto fail;
  }
  return srv;

fail:
  tri_server_free(srv);
  return NULL;
}

tri_channel *
tu_channel_new(int port, const tri_channel_opts *opts)
{
  char target[64];
  tri_channel *ch = NULL;
  int rv;

  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  rv = tri_channel_new(&ch, target, opts);
  if (rv != TRI_OK) {
    fprintf(stderr, "testutil: tri_channel_new(%s): %s\n", target,
            tu_code(rv));
    return NULL;
  }
  return ch;
}

static int
bound_socket(int *port)
{
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  int fd;

  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int
tu_unused_port(void)
{
  int port, fd = bound_socket(&port);
  if (fd < 0)
    return -1;
  close(fd);
  return port;
}

int
tu_silent_listener(int *port)
{
  int fd = bound_socket(port);
  if (fd < 0)
    return -1;
  if (listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int
tu_raw_connect(int port)
{
  struct sockaddr_in sa;
  int fd;

  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int
tu_wait_peer_close(int fd, int timeout_ms)
{
  int64_t end = tu_now_ms() + timeout_ms;
  char buf[4096];

  for (;;) {
    int64_t left = end - tu_now_ms();
    struct pollfd pfd;
    ssize_t n;
    int pr;

    if (left <= 0)
      return -1;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    pr = poll(&pfd, 1, (int)left);
    if (pr < 0) {
      if (errno == EINTR)
        continue;
      return 0; /* poll failure on our own fd: treat as closed */
    }
    if (pr == 0)
      return -1;
    n = read(fd, buf, sizeof(buf));
    if (n == 0)
      return 0;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return 0; /* ECONNRESET and friends: closed */
    }
    /* Data (e.g. a GOAWAY or an HTTP/1.1 error answer): keep draining. */
  }
}

/* ---------------------------------------------------------------- */

/* ---------------------------------------------------------------- */
/* DNS responder                                                     */
/* ---------------------------------------------------------------- */

static void *
dns_main(void *p)
{
  tu_dns *d = p;
  uint8_t q[1500], a[1600];
  while (!atomic_load(&d->stop)) {
    struct pollfd pfd = {d->fd, POLLIN, 0};
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    size_t off, alen;
    ssize_t n;
    uint16_t qtype;
    int mode;
    if (poll(&pfd, 1, 20) != 1)
      continue;
    n = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
    if (n < 12)
      continue;
    atomic_fetch_add(&d->queries, 1);
    /* the question: labels up to the root, then type and class */
    for (off = 12; off < (size_t)n && q[off] != 0; off += (size_t)q[off] + 1)
      if ((q[off] & 0xc0) != 0)
        break;
    if (off >= (size_t)n || q[off] != 0 || off + 5 > (size_t)n)
      continue;
    qtype = (uint16_t)((q[off + 1] << 8) | q[off + 2]);
    if (qtype == 1)
      atomic_fetch_add(&d->a_queries, 1);
    mode = atomic_load(&d->mode);
    if (mode == TU_DNS_SILENT)
      continue;
    off += 5;
    memcpy(a, q, off);
    a[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
    a[3] = (uint8_t)(0x80 | (mode == TU_DNS_NXDOMAIN ? 3 : 0)); /* RA */
    a[4] = 0;
    a[5] = 1; /* QDCOUNT */
    a[6] = a[7] = a[8] = a[9] = a[10] = a[11] = 0;
    alen = off;
    if (mode == TU_DNS_A && qtype == 1) {
      int k, na = atomic_load(&d->naddrs);
      for (k = 1; k <= na && k <= 8; k++) {
        const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60,
                              0,    4,    127, 0, 0, (uint8_t)k};
        memcpy(a + alen, rr, sizeof(rr));
        alen += sizeof(rr);
      }
      a[7] = (uint8_t)(k - 1); /* ANCOUNT */
    }
    sendto(d->fd, a, alen, 0, (struct sockaddr *)&from, fl);
  }
  return NULL;
}

int
tu_dns_start(tu_dns *d, int mode, int naddrs)
{
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  char env[64];
  memset(d, 0, sizeof(*d));
  atomic_store(&d->mode, mode);
  atomic_store(&d->naddrs, naddrs);
  d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (d->fd < 0 || bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(d->fd, (struct sockaddr *)&sa, &sl) != 0) {
    fprintf(stderr, "tu_dns_start: %s\n", strerror(errno));
    if (d->fd >= 0)
      close(d->fd);
    return -1;
  }
  d->port = ntohs(sa.sin_port);
  snprintf(env, sizeof(env), "127.0.0.1:%d", d->port);
  if (setenv("TRI_DNS_SERVERS", env, 1) != 0 ||
      tu_thread_start(&d->t, dns_main, d) != 0) {
    unsetenv("TRI_DNS_SERVERS");
    close(d->fd);
    return -1;
  }
  return 0;
}

void
tu_dns_stop(tu_dns *d)
{
  atomic_store(&d->stop, 1);
  tu_thread_join(d->t, TU_WAIT_MS, NULL);
  close(d->fd);
  unsetenv("TRI_DNS_SERVERS"); /* later tests of a CK_FORK=no process */
}

int
tu_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
  int rv = pthread_create(t, NULL, fn, arg);
  if (rv != 0)
    fprintf(stderr, "testutil: pthread_create: %s\n", strerror(rv));
  return rv;
}

int
tu_thread_join(pthread_t t, int timeout_ms, void **ret)
{
  struct timespec ts;
  int rv;

  if (timeout_ms < 0)
    return pthread_join(t, ret);
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  do
    rv = pthread_timedjoin_np(t, ret, &ts);
  while (rv == EINTR);
  return rv;
}

int
tu_sem_wait(sem_t *sem, int timeout_ms)
{
  struct timespec ts;
  int rv;

  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  do
    rv = sem_timedwait(sem, &ts);
  while (rv == -1 && errno == EINTR);
  return rv == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- */

void
tu_blocker_init(tu_blocker *b)
{
  sem_init(&b->arrived, 0, 0);
  atomic_store(&b->tid, 0);
}

void
tu_blocker_destroy(tu_blocker *b)
{
  sem_destroy(&b->arrived);
}

void
tu_blocker_arrive(tu_blocker *b)
{
  atomic_store(&b->tid, (int)syscall(SYS_gettid));
  sem_post(&b->arrived);
}

/* State letter of a thread of this process, or 0 if unreadable. */
static char
thread_state(int tid)
{
  char path[64], buf[512];
  const char *p;
  FILE *f;
  size_t n;

  snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
  f = fopen(path, "re");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* "tid (comm) S ..."; comm may hold spaces and parens: use the last ')'. */
  p = strrchr(buf, ')');
  if (p == NULL || p[1] != ' ' || p[2] == '\0')
    return 0;
  return p[2];
}

int
tu_blocker_wait(tu_blocker *b, int timeout_ms, int settle_ms)
{
  int64_t end = tu_now_ms() + timeout_ms;
  int tid, seen = 0, rv = 0;
  const int confirm = 3;

  if (tu_sem_wait(&b->arrived, timeout_ms) != 0)
    return -1;
  tid = atomic_load(&b->tid);
  for (;;) {
    char st = thread_state(tid);
    if (st == 0) {
      rv = 1; /* no /proc: settle time only */
      break;
    }
    if (st == 'S') {
      if (++seen >= confirm)
        break;
    } else {
      seen = 0;
    }
    if (tu_now_ms() > end)
      return -1;
    tu_sleep_ms(1);
  }
  if (settle_ms > 0)
    tu_sleep_ms(settle_ms);
  return rv;
}

/* ---------------------------------------------------------------- */

void
tu_fill(void *buf, size_t len, uint32_t seed)
{
  uint8_t *p = buf;
  uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  size_t i;

  for (i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)(x >> 7);
  }
}

long
tu_check_fill(const void *buf, size_t len, uint32_t seed)
{
  const uint8_t *p = buf;
  uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  size_t i;

  for (i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    if (p[i] != (uint8_t)(x >> 7))
      return (long)i;
  }
  return -1;
}

const char *
tu_code(int code)
{
  static _Thread_local char ring[4][96];
  static _Thread_local unsigned next;
  char *b = ring[next++ % 4];

  snprintf(b, sizeof(ring[0]), "%s (%d, %s)", tri_code_name(code), code,
           tri_strerror(code));
  return b;
}

/* ---------------------------------------------------------------- */

int
tu_echo_handler(tri_stream *s, void *user_data)
{
  int i, rv;

  (void)user_data;
  for (i = 0; i < 1000000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    if (rv == TRI_EOF)
      return TRI_OK;
    if (rv != TRI_OK)
      return rv >= 0 ? rv : TRI_INTERNAL;
    rv = tri_stream_send(s, tri_buf_data(m), tri_buf_len(m));
    tri_buf_free(m);
    if (rv != TRI_OK)
      return rv >= 0 ? rv : TRI_INTERNAL;
  }
  return TRI_OUT_OF_RANGE;
}

void
tu_hang_init(tu_hang *h)
{
  sem_init(&h->started, 0, 0);
  sem_init(&h->ended, 0, 0);
  tu_blocker_init(&h->blocked);
  atomic_store(&h->n_started, 0);
  atomic_store(&h->n_ended, 0);
  atomic_store(&h->last_rc, INT32_MIN);
  atomic_store(&h->draining, 0);
  atomic_store(&h->remaining_ms, -2);
  atomic_store(&h->ended_us, 0);
}

void
tu_hang_destroy(tu_hang *h)
{
  sem_destroy(&h->started);
  sem_destroy(&h->ended);
  tu_blocker_destroy(&h->blocked);
}

int
tu_hang_handler(tri_stream *s, void *user_data)
{
  tu_hang *h = user_data;
  int i, rv = TRI_OK;

  atomic_store(&h->remaining_ms, (long long)tri_stream_remaining_ms(s));
  atomic_fetch_add(&h->n_started, 1);
  sem_post(&h->started);
  tu_blocker_arrive(&h->blocked);
  for (i = 0; i < 1000000; i++) {
    tri_buf *m = NULL;
    rv = tri_stream_recv(s, &m);
    if (rv != TRI_OK)
      break;
    tri_buf_free(m);
  }
  atomic_store(&h->ended_us, (long long)tu_now_us());
  atomic_store(&h->draining, tri_stream_server_draining(s));
  atomic_store(&h->last_rc, rv);
  atomic_fetch_add(&h->n_ended, 1);
  sem_post(&h->ended);
  return rv >= 0 ? rv : TRI_OK;
}
