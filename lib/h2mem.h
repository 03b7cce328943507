/*
 * nghttp2's allocator (mem.c).  Each session gets one tri__h2mem.
 *
 * nghttp2 allocates two page-sized buffers when it creates a session: its
 * stream table (zeroed) and its outbound frame buffer (one maximum-size
 * frame plus header).  From the heap both cost resident memory at once:
 * calloc() writes the whole table and heap pages are shared with whatever
 * else lives there.  An idle connection touches neither beyond the first
 * few bytes of the frame buffer, so these two get page slots of their
 * own instead, from the loop's tri__pgpool: the kernel then backs only
 * the pages nghttp2 writes.
 *
 * A tri__pgpool carves page-aligned slots out of 1 MiB anonymous
 * mappings.  A slot given back returns its pages to the kernel
 * (madvise MADV_DONTNEED) and is kept for the next block of its size, so
 * connections coming and going cost no mmap or munmap, the mappings are
 * never split, and their number grows with the peak of live sessions /
 * 40 or so, not with each session (vm.max_map_count).
 *
 * Only allocations of one to 16 pages made while the session is being
 * created take slots (at most TRI__H2MEM_MAPS); everything later, the
 * per-stream allocations on the hot path included, comes from the heap.
 * Without a slot (no pool, none left) a block comes from the heap too.
 *
 * A connection (server or client) that has stayed quiet (no stream,
 * nothing to write) gives the frame buffer's pages back too
 * (tri__h2mem_trim): the frame buffer is scratch space that nghttp2 fills with each outgoing
 * frame and resets once the frame has gone out
 * (active_outbound_item_reset in nghttp2_session.c), so between frames
 * its bytes are dead.  Which block that is: the only uninitialised
 * (malloc, not calloc) block of a page or more that nghttp2 allocates at
 * creation.  Trimming is enabled for the nghttp2 versions this was read
 * and tested against (1.40 to 1.69; test/check_mem runs a session
 * through trims on the build's version).
 *
 * Thread-safety: a tri__pgpool belongs to one I/O loop and a tri__h2mem
 * to one session; both are used only by the loop's thread, which creates
 * and deletes its connections' sessions (or by one thread at a time
 * while no loop thread runs).
 */
#ifndef TRI_H2MEM_H
#define TRI_H2MEM_H

#include "tri_int.h"

#include <nghttp2/nghttp2.h>

#define TRI__H2MEM_MAPS 4

typedef struct tri__pgpool tri__pgpool;

/* A pool of page slots, or NULL (out of memory). */
tri__pgpool *tri__pgpool_new(void);
/* Unmaps everything: every session using |p| must be deleted first. */
void tri__pgpool_free(tri__pgpool *p);
/* The mappings |p| holds (tests). */
size_t tri__pgpool_chunks(const tri__pgpool *p);

typedef struct tri__h2mem {
  tri__pgpool *pool;           /* slots from here; NULL: heap only */
  void *map[TRI__H2MEM_MAPS];  /* mapped blocks, NULL when free */
  size_t len[TRI__H2MEM_MAPS]; /* their lengths (whole pages) */
  unsigned char scratch[TRI__H2MEM_MAPS]; /* allocated uninitialised */
  int creating;                /* within tri__h2_session_new */
  int can_trim;                /* this nghttp2 version's frame buffer is
                                  known to be scratch between frames */
  int trimmed;                 /* scratch pages given back; cleared by
                                  the connection when it reads again */
} tri__h2mem;

/* nghttp2_session_{server,client}_new3 with |m| as the allocator; |m|
 * must stay put (zeroed but for m->pool before the call) until the
 * session is deleted.  nghttp2's return value. */
int tri__h2_session_new(nghttp2_session **sess, int is_server,
                        const nghttp2_session_callbacks *cbs, void *user_data,
                        const nghttp2_option *opt, tri__h2mem *m);

/* Blocks of |m| still mapped: 0 once its session is deleted. */
int tri__h2mem_mapped(const tri__h2mem *m);

/* Give the pages of the session's scratch blocks back to the kernel
 * (madvise MADV_DONTNEED: they read as zero when nghttp2 next writes
 * them).  Only while nghttp2 has nothing to send and no frame in flight
 * (nghttp2_session_want_write() == 0 and every byte it produced taken);
 * once until m->trimmed is cleared.  Bytes given back. */
size_t tri__h2mem_trim(tri__h2mem *m);

#endif
