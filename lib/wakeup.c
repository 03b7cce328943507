#include "tri_int.h"

/*
 * Wake-up fd: lets any thread interrupt the I/O thread's poll().
 *
 * Threads: tri__wakeup_signal() from any thread (callers, timer thread,
 * workers); tri__wakeup_drain() and polling tri__wakeup_fd() from the I/O
 * thread only; init/close by the owner while no other thread uses it.
 *
 * Coalescing (libuv async.c): |pending| is 0 when the fd is known to be
 * drained.  signal() swaps it to 1 and writes only on the 0 -> 1 edge, so a
 * burst of signals costs one write.  drain() READS THE FD FIRST AND THEN
 * clears |pending|; the caller processes its queue after drain() returns.
 *   - A signal whose swap happens before the clear queued its work before
 *     that, so the processing after drain() sees it; if it writes, the
 *     write is either consumed by the read or lands after it (the fd stays
 *     readable: at worst one spurious wake-up).
 *   - A signal whose swap happens after the clear sees 0 and writes.
 * So |pending| == 1 always comes with a readable fd once signallers are
 * done, and no wake-up is lost.  (Clearing BEFORE the read is wrong: a
 * signal landing between the clear and the read has its write consumed
 * while |pending| stays 1, and every later signal is then swallowed until
 * something else wakes the poller; check_sync's wakeup_no_lost_wakeup
 * catches that.)  All accesses to |pending| are SEQ_CST __atomic builtins.
 */

#include <fcntl.h>
#include <unistd.h>
#ifdef HAVE_SYS_EVENTFD_H
#include <sys/eventfd.h>
#endif

#ifndef HAVE_SYS_EVENTFD_H
static int set_nonblock_cloexec(int fd) {
  int fl;

  fl = fcntl(fd, F_GETFL);
  if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
    return -errno;
  fl = fcntl(fd, F_GETFD);
  if (fl == -1 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
    return -errno;
  return 0;
}
#endif

int tri__wakeup_init(tri__wakeup *w) {
#ifdef HAVE_SYS_EVENTFD_H
  int fd;

  fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd == -1)
    return -errno;
  w->rfd = w->wfd = fd;
#else
  int fds[2];
  int rv;

  if (pipe(fds) == -1)
    return -errno;
  if ((rv = set_nonblock_cloexec(fds[0])) != 0 ||
      (rv = set_nonblock_cloexec(fds[1])) != 0) {
    close(fds[0]);
    close(fds[1]);
    return rv;
  }
  w->rfd = fds[0];
  w->wfd = fds[1];
#endif
  __atomic_store_n(&w->pending, 0, __ATOMIC_SEQ_CST);
  return 0;
}

/* Idempotent: a second close (or a close after a failed init that left
 * the fds at -1) does nothing.  No other thread may signal concurrently. */
void tri__wakeup_close(tri__wakeup *w) {
  if (w->wfd >= 0 && w->wfd != w->rfd)
    close(w->wfd);
  if (w->rfd >= 0)
    close(w->rfd);
  w->rfd = w->wfd = -1;
  __atomic_store_n(&w->pending, 0, __ATOMIC_SEQ_CST);
}

void tri__wakeup_signal(tri__wakeup *w) {
  ssize_t n;

  if (__atomic_exchange_n(&w->pending, 1, __ATOMIC_SEQ_CST) != 0)
    return; /* already pending: the fd is (or is about to be) readable */
  if (w->wfd < 0)
    return;
  do {
#ifdef HAVE_SYS_EVENTFD_H
    uint64_t one = 1;
    n = write(w->wfd, &one, sizeof(one));
#else
    char one = 1;
    n = write(w->wfd, &one, 1);
#endif
  } while (n == -1 && errno == EINTR);
  /* EAGAIN: counter saturated or pipe full, so the fd is readable anyway.
   * Any other error (EBADF at a racy teardown) has nobody to report to. */
}

void tri__wakeup_drain(tri__wakeup *w) {
  ssize_t n;

  if (w->rfd >= 0) {
    for (;;) {
#ifdef HAVE_SYS_EVENTFD_H
      uint64_t cnt;
      n = read(w->rfd, &cnt, sizeof(cnt));
#else
      char buf[64];
      n = read(w->rfd, buf, sizeof(buf));
#endif
#ifdef HAVE_SYS_EVENTFD_H
      if (n > 0)
        break; /* one read resets an eventfd: no second read for EAGAIN */
#else
      if (n > 0)
        continue; /* a pipe may hold more */
#endif
      if (n == -1 && errno == EINTR)
        continue;
      break; /* EAGAIN (empty), EOF or error */
    }
  }
  /* Read first, then clear: see the comment at the top. */
  __atomic_store_n(&w->pending, 0, __ATOMIC_SEQ_CST);
}
