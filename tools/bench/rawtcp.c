/*
 * tri-rawtcp: the architectural floor for tri-bench - plain loopback TCP,
 * no HTTP/2, no framing, no library.
 *
 *   tri-rawtcp [--workload=W1,W2] [--quick] [--procs] [--cpu=none|same|split]
 *              [--handoff] [--n=100000] [--size=64] [--bytes=1073741824]
 *              [--chunk=65536]
 *
 * W1: ping-pong, |size| bytes each way on one TCP_NODELAY connection,
 *     |n| round trips (after 1000 untimed) -> round trips/s, p50/p99.
 * W2: bulk, one side writes |bytes| in |chunk|-byte write()s, the other
 *     reads them and answers one byte at the end -> MB/s (10^6 bytes).
 * The echo / sink side runs in a second thread (default) or, with --procs,
 * in a forked process.  --cpu=same pins both sides to CPU 0, split pins
 * them to CPUs 0 and 1 (cross-CPU wake-ups), none leaves it to the kernel.
 *
 * Output: one line per result, the same format as tri-bench (see
 * bench-common.h), impl=raw, with case=W1 and case=W2.big so the rows line
 * up with tri-bench's:
 *
 *   tri-bench impl=raw workload=W1 case=W1 metric=rt_per_s value=.. \
 *       p50_us=.. p99_us=.. n=.. secs=.. mode=threads cpu=none ok=1
 *   tri-bench impl=raw workload=W2 case=W2.big metric=MB_per_s value=.. \
 *       bytes=.. chunk=.. secs=.. mode=threads cpu=none ok=1
 *
 * --handoff: the W1 ping-pong through the thread hand-offs of the
 * library's design (caller -> op queue + eventfd -> I/O thread with epoll
 * -> condition variable -> caller, on both sides): the floor of the
 * architecture, case=W1.floor (see run_handoff).
 * --handoff --workload=W5: the floor of tri-bench's W5 (a cancel waking a
 * thread blocked in receive), case=W5 impl=raw (see run_cancel_floor).
 *
 * Every socket has 30 s send / receive timeouts, so nothing blocks forever.
 */
#define _GNU_SOURCE 1

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-common.h"

#define PROG "tri-rawtcp"

static long n_rt = 100000, warm = 1000, w5_reps = 1000;
static size_t msg_size = 64, chunk = 65536;
static long long total_bytes = 1LL << 30;
static int use_procs, cpu_mode; /* 0 none, 1 same, 2 split */
static const char *cpu_names[] = {"none", "same", "split"};

static void pin(int side) {
  cpu_set_t set;
  if (cpu_mode == 0 || side < 0) /* < 0: keep the creator's affinity */
    return;
  CPU_ZERO(&set);
  CPU_SET(cpu_mode == 2 ? side : 0, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    perror(PROG ": sched_setaffinity");
}

static void sock_opts(int fd) {
  int one = 1;
  struct timeval tv = {30, 0};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int listen_any(int *port) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static int connect_to(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  sock_opts(fd);
  return fd;
}

static int read_full(int fd, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)p + got, n - got);
    if (r <= 0) {
      if (r < 0 && errno == EINTR)
        continue;
      return -1;
    }
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *p, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t w = write(fd, (const char *)p + put, n - put);
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      return -1;
    }
    put += (size_t)w;
  }
  return 0;
}

/* write_full on a non-blocking socket: poll() while it is full. */
static int write_full_nb(int fd, const void *p, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t w = write(fd, (const char *)p + put, n - put);
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = {fd, POLLOUT, 0};
      if (poll(&pf, 1, 30000) <= 0)
        return -1;
      continue;
    }
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      return -1;
    }
    put += (size_t)w;
  }
  return 0;
}

/* The passive side: accept one connection, then echo (W1) or sink (W2). */
typedef struct {
  int lfd;
  int bulk;
} peer_arg;

static void *peer(void *p) {
  peer_arg *a = p;
  int fd;
  pin(1);
  fd = accept(a->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  sock_opts(fd);
  if (!a->bulk) {
    char *buf = malloc(msg_size);
    for (long i = 0; buf && i < warm + n_rt; i++)
      if (read_full(fd, buf, msg_size) != 0 ||
          write_full(fd, buf, msg_size) != 0)
        break;
    free(buf);
  } else {
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    long long got = 0;
    while (buf && got < total_bytes) {
      ssize_t r = read(fd, buf, cap);
      if (r <= 0) {
        if (r < 0 && errno == EINTR)
          continue;
        break;
      }
      got += r;
    }
    if (got == total_bytes)
      (void)write_full(fd, "k", 1);
    free(buf);
  }
  close(fd);
  return NULL;
}

/* Start the passive side as a thread or a process. */
static int start_peer(peer_arg *a, pthread_t *th, pid_t *pid) {
  if (use_procs) {
    fflush(NULL);
    *pid = fork();
    if (*pid < 0)
      return -1;
    if (*pid == 0) {
      peer(a);
      _exit(0);
    }
    return 0;
  }
  *pid = -1;
  return pthread_create(th, NULL, peer, a) == 0 ? 0 : -1;
}

static void stop_peer(pthread_t th, pid_t pid) {
  if (pid > 0)
    waitpid(pid, NULL, 0);
  else
    pthread_join(th, NULL);
}

static int run_pingpong(void) {
  int port, lfd = listen_any(&port), fd, ok = 1;
  peer_arg a = {lfd, 0};
  pthread_t th;
  pid_t pid;
  char *buf = malloc(msg_size), extra[256];
  int64_t *lat = malloc(sizeof *lat * (size_t)n_rt), t0 = 0, t1;

  if (lfd < 0 || !buf || !lat || start_peer(&a, &th, &pid) != 0) {
    fprintf(stderr, PROG ": W1 setup failed\n");
    return -1;
  }
  pin(0);
  fd = connect_to(port);
  memset(buf, 'x', msg_size);
  for (long i = 0; fd >= 0 && i < warm + n_rt; i++) {
    int64_t s;
    if (i == warm)
      t0 = bench_now_ns();
    s = bench_now_ns();
    if (write_full(fd, buf, msg_size) != 0 ||
        read_full(fd, buf, msg_size) != 0) {
      ok = 0;
      break;
    }
    if (i >= warm)
      lat[i - warm] = bench_now_ns() - s;
  }
  t1 = bench_now_ns();
  if (fd >= 0)
    close(fd);
  else
    ok = 0;
  stop_peer(th, pid);
  close(lfd);
  if (ok) {
    double secs = (double)(t1 - t0) / 1e9;
    bench_lat_extra(extra, sizeof extra, lat, (size_t)n_rt);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " secs=%.3f size=%zu mode=%s cpu=%s ok=1", secs, msg_size,
             use_procs ? "procs" : "threads", cpu_names[cpu_mode]);
    bench_line("raw", "W1", "W1", "rt_per_s", (double)n_rt / secs, extra);
  } else {
    fprintf(stderr, PROG ": W1 failed\n");
  }
  free(buf);
  free(lat);
  return ok ? 0 : -1;
}

static int run_bulk(void) {
  int port, lfd = listen_any(&port), fd, ok = 1;
  peer_arg a = {lfd, 1};
  pthread_t th;
  pid_t pid;
  char *buf = malloc(chunk), ack, extra[256];
  long long put = 0;
  int64_t t0, t1;

  if (lfd < 0 || !buf || start_peer(&a, &th, &pid) != 0) {
    fprintf(stderr, PROG ": W2 setup failed\n");
    return -1;
  }
  pin(0);
  fd = connect_to(port);
  memset(buf, 'x', chunk);
  t0 = bench_now_ns();
  while (fd >= 0 && put < total_bytes) {
    size_t n = total_bytes - put < (long long)chunk ? (size_t)(total_bytes - put)
                                                    : chunk;
    if (write_full(fd, buf, n) != 0) {
      ok = 0;
      break;
    }
    put += (long long)n;
  }
  if (fd < 0 || !ok || read_full(fd, &ack, 1) != 0)
    ok = 0;
  t1 = bench_now_ns();
  if (fd >= 0)
    close(fd);
  stop_peer(th, pid);
  close(lfd);
  free(buf);
  if (!ok) {
    fprintf(stderr, PROG ": W2 failed\n");
    return -1;
  }
  {
    double secs = (double)(t1 - t0) / 1e9;
    snprintf(extra, sizeof extra,
             "bytes=%lld chunk=%zu secs=%.3f mode=%s cpu=%s ok=1",
             total_bytes, chunk, secs, use_procs ? "procs" : "threads",
             cpu_names[cpu_mode]);
    bench_line("raw", "W2", "W2.big", "MB_per_s",
               (double)total_bytes / 1e6 / secs, extra);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* --handoff: the floor of the library's architecture                  */
/* ------------------------------------------------------------------ */

/*
 * The W1 ping-pong again, but on each side the socket belongs to an I/O
 * thread and the message goes through the hand-offs libtriplestream makes
 * (doc/DESIGN.md, "How a caller talks to the I/O thread"):
 *
 *   caller: lock the op mutex, queue the message, write the eventfd if the
 *           queue was empty, unlock; then wait on the stream's condition
 *           variable for the answer
 *   I/O thread: epoll_wait on {eventfd, socket}; eventfd -> read it, take
 *           the queue under the mutex, write() the socket; socket -> read()
 *           the message, put it in the receive slot under the stream
 *           mutex, signal the condition variable
 *
 * Client: the main thread is the caller.  Server: a handler thread is the
 * caller (receive, then send the same bytes back), as a tri_server worker
 * runs a handler.  No HTTP/2, no framing, no protobuf, no allocation per
 * message: what is left is the cost of the design's wake-ups (4 thread
 * hand-offs and 2 socket hops per round trip).  Rows: case=W1.floor.
 */
typedef struct {
  int sock, efd, ep;
  /* op queue (the loop's cmd_mu and ops list) */
  pthread_mutex_t cmd_mu;
  char *out;
  int out_full;
  int stop;
  /* receive slot (the stream's mu, rq and condition) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *in;
  size_t in_have; /* I/O thread only */
  int in_ready, closed;
  int answer_due;   /* the caller sent since it last took a message */
  pthread_t io;
} hside;

static void ho_deadline(struct timespec *ts, int secs) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += secs;
}

static int ho_init(hside *h, int sock) {
  pthread_condattr_t ca;
  struct epoll_event ev;
  memset(h, 0, sizeof *h);
  h->sock = sock;
  h->out = malloc(msg_size);
  h->in = malloc(msg_size);
  h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  h->ep = epoll_create1(EPOLL_CLOEXEC);
  if (!h->out || !h->in || h->efd < 0 || h->ep < 0)
    return -1;
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
  pthread_mutex_init(&h->cmd_mu, NULL);
  pthread_mutex_init(&h->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cv, &ca);
  pthread_condattr_destroy(&ca);
  ev.events = EPOLLIN;
  ev.data.fd = h->efd;
  if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->efd, &ev) != 0)
    return -1;
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = sock;
  return epoll_ctl(h->ep, EPOLL_CTL_ADD, sock, &ev);
}

static void ho_fini(hside *h) {
  close(h->ep);
  close(h->efd);
  pthread_mutex_destroy(&h->cmd_mu);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h->out);
  free(h->in);
}

static void ho_wake(hside *h) {
  uint64_t one = 1;
  if (write(h->efd, &one, sizeof one) < 0 && errno != EAGAIN)
    perror(PROG ": eventfd write");
}

/* Caller: queue one message for the I/O thread. */
static void ho_send(hside *h, const char *msg) {
  int was_empty;
  pthread_mutex_lock(&h->cmd_mu);
  memcpy(h->out, msg, msg_size);
  was_empty = !h->out_full;
  h->out_full = 1;
  pthread_mutex_unlock(&h->cmd_mu);
  h->answer_due = 1; /* the caller's own field */
  if (was_empty)
    ho_wake(h);
}

/* The library's spin before a wait (lib/sync.c tri__spin_watch;
 * tri_channel_opts_set_spin_us, default 200 us; TRI_SPIN_US or
 * --spin-us=N here, as there): watch the slot, giving the CPU away
 * between looks, before parking; only when the caller sent since it
 * last took a message (an answer is due: every recv of the ping-pong but
 * the server's first); at most half the CPUs this process may use spin
 * at once (none on one CPU).  The library's back-off after a spin that
 * found nothing is left out: in this ping-pong every answer comes within
 * the budget on a machine where the library's does (check the p99 in
 * the row against spin_us). */
static long spin_us = 200;
static int spinners, spin_cap = -1; /* atomic */

static void ho_spin(hside *h) {
  int64_t end = bench_now_ns() + spin_us * 1000;
  int n, cap;
  if (spin_us <= 0 || !h->answer_due)
    return;
  cap = __atomic_load_n(&spin_cap, __ATOMIC_RELAXED);
  if (cap < 0) {
    cpu_set_t set;
    long c = sched_getaffinity(0, sizeof set, &set) == 0
                 ? CPU_COUNT(&set)
                 : sysconf(_SC_NPROCESSORS_ONLN);
    cap = c > 1 ? (int)(c / 2) : 0;
    __atomic_store_n(&spin_cap, cap, __ATOMIC_RELAXED);
  }
  n = __atomic_load_n(&spinners, __ATOMIC_RELAXED);
  do {
    if (n >= cap)
      return;
  } while (!__atomic_compare_exchange_n(&spinners, &n, n + 1, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  while (!__atomic_load_n(&h->in_ready, __ATOMIC_ACQUIRE) &&
         !__atomic_load_n(&h->closed, __ATOMIC_ACQUIRE) &&
         bench_now_ns() < end)
    sched_yield();
  __atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
}

/* Caller: wait for one message (at most 30 s).  0, or -1 at the end. */
static int ho_recv(hside *h, char *msg) {
  struct timespec dl;
  int rc = 0;
  ho_spin(h);
  ho_deadline(&dl, 30);
  pthread_mutex_lock(&h->mu);
  while (!h->in_ready && !h->closed)
    if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT) {
      h->closed = 1;
      fprintf(stderr, PROG ": handoff: no message in 30 s\n");
    }
  if (h->in_ready) {
    memcpy(msg, h->in, msg_size);
    h->in_ready = 0;
    h->answer_due = 0;
  } else {
    rc = -1;
  }
  pthread_mutex_unlock(&h->mu);
  return rc;
}

static void *ho_io(void *p) {
  hside *h = p;
  pin(-1);
  for (;;) {
    struct epoll_event evs[2];
    int n = epoll_wait(h->ep, evs, 2, 30000);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* error or 30 s of silence */
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd == h->efd) {
        uint64_t v;
        int full, stop;
        char buf[1 << 16];
        if (read(h->efd, &v, sizeof v) < 0 && errno != EAGAIN)
          goto out;
        pthread_mutex_lock(&h->cmd_mu);
        full = h->out_full;
        stop = h->stop;
        if (full)
          memcpy(buf, h->out, msg_size < sizeof buf ? msg_size : sizeof buf);
        h->out_full = 0;
        pthread_mutex_unlock(&h->cmd_mu);
        if (stop)
          goto out;
        /* loopback, 64 bytes: the socket buffer has room; a full buffer
         * is waited for with poll() rather than EPOLLOUT bookkeeping */
        if (full && write_full_nb(h->sock, buf, msg_size) != 0)
          goto out;
      } else {
        for (;;) {
          ssize_t r = read(h->sock, h->in + h->in_have,
                           msg_size - h->in_have);
          if (r < 0 && errno == EINTR)
            continue;
          if (r < 0 && errno == EAGAIN)
            break;
          if (r <= 0)
            goto out;
          h->in_have += (size_t)r;
          if (h->in_have == msg_size) {
            h->in_have = 0;
            pthread_mutex_lock(&h->mu);
            __atomic_store_n(&h->in_ready, 1, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&h->mu);
            /* after the unlock: the woken caller does not block on mu */
            pthread_cond_signal(&h->cv);
            break; /* one message per round trip: the peer waits for us */
          }
        }
      }
    }
  }
out:
  pthread_mutex_lock(&h->mu);
  __atomic_store_n(&h->closed, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* The server side: an I/O thread and a handler thread echoing. */
static void *ho_peer(void *p) {
  peer_arg *a = p;
  hside h;
  char *buf = malloc(msg_size);
  int fd;
  pin(1);
  fd = accept(a->lfd, NULL, NULL);
  if (fd < 0 || !buf) {
    free(buf);
    return NULL;
  }
  sock_opts(fd);
  if (ho_init(&h, fd) != 0 || pthread_create(&h.io, NULL, ho_io, &h) != 0) {
    fprintf(stderr, PROG ": handoff server setup failed\n");
    close(fd);
    free(buf);
    return NULL;
  }
  while (ho_recv(&h, buf) == 0)
    ho_send(&h, buf);
  pthread_mutex_lock(&h.cmd_mu);
  h.stop = 1;
  pthread_mutex_unlock(&h.cmd_mu);
  ho_wake(&h);
  pthread_join(h.io, NULL);
  ho_fini(&h);
  close(fd);
  free(buf);
  return NULL;
}

/* What both hand-off floors set up: the echoing peer (a thread, or a
 * process with --procs) and the client side's socket and I/O thread. */
typedef struct {
  int lfd, fd;
  peer_arg a;
  pthread_t th;
  pid_t pid;
  hside h;
} ho_client;

/* 0, or -1 (said on stderr, nothing left running).  Never returns in
 * the forked peer. */
static int ho_client_open(ho_client *k, const char *what) {
  int port;
  memset(k, 0, sizeof *k);
  k->pid = -1;
  k->lfd = listen_any(&port);
  k->a.lfd = k->lfd;
  if (k->lfd < 0 ||
      (use_procs
           ? (fflush(NULL), (k->pid = fork()) < 0)
           : pthread_create(&k->th, NULL, ho_peer, &k->a) != 0)) {
    fprintf(stderr, PROG ": %s handoff setup failed\n", what);
    if (k->lfd >= 0)
      close(k->lfd);
    return -1;
  }
  if (use_procs && k->pid == 0) {
    ho_peer(&k->a);
    _exit(0);
  }
  pin(0);
  k->fd = connect_to(port);
  if (k->fd < 0 || ho_init(&k->h, k->fd) != 0 ||
      pthread_create(&k->h.io, NULL, ho_io, &k->h) != 0) {
    fprintf(stderr, PROG ": %s handoff client setup failed\n", what);
    if (k->pid > 0) { /* not left blocked in accept() */
      kill(k->pid, SIGKILL);
      waitpid(k->pid, NULL, 0);
    }
    return -1; /* a peer thread goes with the process */
  }
  return 0;
}

static void ho_client_close(ho_client *k) {
  pthread_mutex_lock(&k->h.cmd_mu);
  k->h.stop = 1;
  pthread_mutex_unlock(&k->h.cmd_mu);
  ho_wake(&k->h);
  pthread_join(k->h.io, NULL);
  ho_fini(&k->h);
  shutdown(k->fd, SHUT_RDWR);
  close(k->fd);
  stop_peer(k->th, k->pid);
  close(k->lfd);
}

/*
 * The floor of W5 (tri_stream_cancel waking a thread blocked in
 * tri_stream_recv): per repetition a new thread waits on the receive
 * slot's condition variable; once it is parked (bench_wait_parked, as
 * tri-bench does), the main thread marks the slot cancelled under its
 * mutex, broadcasts after the unlock, and queues a message for its I/O
 * thread, which writes it to the peer (the RST_STREAM's part of a cancel;
 * the echo is read back outside the timing).  The latency is from before
 * the mark to the woken thread's return, as in tri-bench's W5: what the
 * library adds on top of it is its own cost; the rest is the machine's
 * wake-up of a sleeping thread.
 */
typedef struct {
  hside *h;
  int cancelled;     /* h->mu */
  int woke;          /* the waiter saw cancelled (set before t_ret) */
  atomic_long tid;
  atomic_int ready;
  int64_t t_ret;
} cf_arg;

static void *cf_waiter(void *p) {
  cf_arg *a = p;
  struct timespec dl;
  atomic_store(&a->tid, bench_gettid());
  atomic_store(&a->ready, 1);
  ho_deadline(&dl, 30);
  pthread_mutex_lock(&a->h->mu);
  while (!a->cancelled)
    if (pthread_cond_timedwait(&a->h->cv, &a->h->mu, &dl) == ETIMEDOUT)
      break;
  a->woke = a->cancelled;
  pthread_mutex_unlock(&a->h->mu);
  a->t_ret = bench_now_ns();
  return NULL;
}

static int run_cancel_floor(void) {
  int ok = 1;
  ho_client k;
  hside *h = &k.h;
  char *buf = malloc(msg_size), extra[256];
  int64_t *lat = malloc(sizeof *lat * (size_t)w5_reps);
  long n = 0, unparked = 0;

  if (!buf || !lat || ho_client_open(&k, "W5") != 0) {
    free(buf);
    free(lat);
    return -1;
  }
  memset(buf, 'x', msg_size);
  for (long r = 0; r < w5_reps && ok; r++) {
    cf_arg c;
    pthread_t w;
    int64_t t0, end;
    memset(&c, 0, sizeof c);
    c.h = h;
    if (pthread_create(&w, NULL, cf_waiter, &c) != 0) {
      ok = 0;
      break;
    }
    end = bench_now_ns() + INT64_C(5000000000);
    while (!atomic_load(&c.ready) && bench_now_ns() < end)
      bench_sleep_ns(10000);
    if (bench_wait_parked(atomic_load(&c.tid), 1000) != 0)
      unparked++;
    t0 = bench_now_ns();
    pthread_mutex_lock(&h->mu);
    c.cancelled = 1;
    pthread_mutex_unlock(&h->mu);
    pthread_cond_broadcast(&h->cv); /* the waiters first, */
    ho_send(h, buf);                /* then the I/O thread's part */
    pthread_join(w, NULL);
    if (!c.woke) { /* 30 s without the broadcast */
      ok = 0;
      break;
    }
    lat[n++] = c.t_ret - t0;
    if (ho_recv(h, buf) != 0) /* the echo, untimed */
      ok = 0;
  }
  ho_client_close(&k);
  if (ok && n > 0) {
    bench_lat_extra(extra, sizeof extra, lat, (size_t)n);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " not_parked=%ld mode=%s cpu=%s design=handoff ok=1", unparked,
             use_procs ? "procs" : "threads", cpu_names[cpu_mode]);
    bench_line("raw", "W5", "W5", "cancel_wake_p99_us",
               bench_pct_us(lat, (size_t)n, 99.0), extra);
  } else {
    fprintf(stderr, PROG ": W5 handoff failed\n");
  }
  free(buf);
  free(lat);
  return ok ? 0 : -1;
}

/* The case name of the hand-off floor's row (--floor-case). */
static const char *floor_case = "W1.floor";

static int run_handoff(void) {
  int ok = 1;
  ho_client k;
  hside *h = &k.h;
  char *buf = malloc(msg_size), extra[256];
  int64_t *lat = malloc(sizeof *lat * (size_t)n_rt), t0 = 0, t1;

  if (!buf || !lat || ho_client_open(&k, "W1") != 0) {
    free(buf);
    free(lat);
    return -1;
  }
  memset(buf, 'x', msg_size);
  for (long i = 0; i < warm + n_rt; i++) {
    int64_t s;
    if (i == warm)
      t0 = bench_now_ns();
    s = bench_now_ns();
    ho_send(h, buf);
    if (ho_recv(h, buf) != 0) {
      ok = 0;
      break;
    }
    if (i >= warm)
      lat[i - warm] = bench_now_ns() - s;
  }
  t1 = bench_now_ns();
  ho_client_close(&k);
  if (ok) {
    double secs = (double)(t1 - t0) / 1e9;
    bench_lat_extra(extra, sizeof extra, lat, (size_t)n_rt);
    snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
             " secs=%.3f size=%zu mode=%s cpu=%s spin_us=%ld design=handoff"
             " ok=1", secs, msg_size, use_procs ? "procs" : "threads",
             cpu_names[cpu_mode], spin_us);
    bench_line("raw", "W1", floor_case, "rt_per_s", (double)n_rt / secs,
               extra);
  } else {
    fprintf(stderr, PROG ": W1 handoff failed\n");
  }
  free(buf);
  free(lat);
  return ok ? 0 : -1;
}

static void usage(FILE *f) {
  fprintf(f,
"usage: " PROG " [--workload=W1,W2,W5] [--quick] [--procs] [--cpu=none|same|split]\n"
"       [--handoff] [--n=100000] [--size=64] [--bytes=1073741824]\n"
"       [--chunk=65536] [--w5-reps=1000] [--spin-us=200]\n"
"  --handoff: W1 through the library's thread hand-offs (case W1.floor,\n"
"             or --floor-case=NAME: compare.sh names the run after W3\n"
"             W3.t1.floor);\n"
"             with W5, a cancel's wake-up of a blocked receiver (case W5)\n"
"  --spin-us: the receiving caller spins this long before parking, as\n"
"             the library does (default 200, or TRI_SPIN_US; 0 = off)\n");
}

static long long num(const char *v, long long lo, long long hi) {
  char *end;
  long long x;
  errno = 0;
  x = strtoll(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, PROG ": bad value %s\n", v);
    exit(2);
  }
  return x;
}

int main(int argc, char **argv) {
  int do_w1 = 0, do_w2 = 0, do_w5 = 0, handoff = 0, rc = 0;
  signal(SIGPIPE, SIG_IGN);
  {
    /* read as the library reads it: anything but 0..10000 is ignored */
    const char *e = getenv("TRI_SPIN_US");
    char *end;
    long v = e ? strtol(e, &end, 10) : -1;
    if (e && *e && *end == '\0' && v >= 0 && v <= 10000)
      spin_us = v;
  }
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--quick") == 0) {
      n_rt = 5000;
      warm = 200;
      total_bytes = 256LL << 20;
      w5_reps = 100;
    }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
    } else if (strcmp(a, "--procs") == 0) {
      use_procs = 1;
    } else if (strcmp(a, "--handoff") == 0) {
      handoff = 1;
    } else if (strncmp(a, "--spin-us=", 10) == 0) {
      spin_us = (long)num(a + 10, 0, 10000);
    } else if (strncmp(a, "--floor-case=", 13) == 0 && a[13] != '\0' &&
               strlen(a + 13) < 32 && strchr(a + 13, ' ') == NULL) {
      floor_case = a + 13;
    } else if (strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strncmp(a, "--workload=", 11) == 0) {
      do_w1 |= strstr(a + 11, "W1") != NULL;
      do_w2 |= strstr(a + 11, "W2") != NULL;
      do_w5 |= strstr(a + 11, "W5") != NULL;
    } else if (strcmp(a, "--cpu=none") == 0) {
      cpu_mode = 0;
    } else if (strcmp(a, "--cpu=same") == 0) {
      cpu_mode = 1;
    } else if (strcmp(a, "--cpu=split") == 0) {
      cpu_mode = 2;
    } else if (strncmp(a, "--n=", 4) == 0) {
      n_rt = (long)num(a + 4, 1, 100000000);
    } else if (strncmp(a, "--size=", 7) == 0) {
      msg_size = (size_t)num(a + 7, 1, 1 << 20);
    } else if (strncmp(a, "--bytes=", 8) == 0) {
      total_bytes = num(a + 8, 1, 1LL << 40);
    } else if (strncmp(a, "--w5-reps=", 10) == 0) {
      w5_reps = (long)num(a + 10, 1, 1000000);
    } else if (strncmp(a, "--chunk=", 8) == 0) {
      chunk = (size_t)num(a + 8, 1, 64 << 20);
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (do_w5 && !handoff) {
    fprintf(stderr, PROG ": W5 is a hand-off floor: give --handoff\n");
    return 2;
  }
  if (!do_w1 && !do_w2 && !do_w5)
    do_w1 = do_w2 = 1;
  if (handoff) {
    /* the floors of the design: ping-pong and cancel */
    if ((do_w1 || (!do_w2 && !do_w5)) && run_handoff() != 0)
      rc = 1;
    if (do_w5 && run_cancel_floor() != 0)
      rc = 1;
    return rc;
  }
  if (do_w1 && run_pingpong() != 0)
    rc = 1;
  if (do_w2 && run_bulk() != 0)
    rc = 1;
  return rc;
}
