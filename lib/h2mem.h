/*
 * nghttp2's allocator (mem.c).  Each session gets one tri__h2mem.
 *
 * nghttp2 allocates two page-sized buffers when it creates a session: its
 * stream table (zeroed) and its outbound frame buffer (one maximum-size
 * frame plus header).  From the heap both cost resident memory at once:
 * calloc() writes the whole table and heap pages are shared with whatever
 * else lives there.  An idle connection touches neither beyond the first
 * few bytes of the frame buffer, so these two are given their own
 * anonymous mappings: the kernel then backs only the pages nghttp2
 * writes.  The pages go back to the kernel when the session frees them.
 *
 * Only allocations of a page or more made while the session is being
 * created are mapped (at most TRI__H2MEM_MAPS); everything later, the
 * per-stream allocations on the hot path included, comes from the heap,
 * so a request never costs an mmap().  A failed mmap() falls back to the
 * heap too.
 *
 * A server connection that has stayed quiet (no stream, nothing to
 * write) gives the frame buffer's pages back too (tri__h2mem_trim): the
 * frame buffer is scratch space that nghttp2 fills with each outgoing
 * frame and resets once the frame has gone out
 * (active_outbound_item_reset in nghttp2_session.c), so between frames
 * its bytes are dead.  Which block that is: the only uninitialised
 * (malloc, not calloc) block of a page or more that nghttp2 allocates at
 * creation.  Trimming is enabled for the nghttp2 versions this was read
 * and tested against (1.40 to 1.69; test/check_mem runs a session
 * through trims on the build's version).
 *
 * Thread-safety: a tri__h2mem belongs to one session and is used only by
 * the thread that drives that session (the connection's I/O thread, or
 * the thread that creates or deletes it while no I/O thread runs it).
 */
#ifndef TRI_H2MEM_H
#define TRI_H2MEM_H

#include "tri_int.h"

#include <nghttp2/nghttp2.h>

#define TRI__H2MEM_MAPS 4

typedef struct tri__h2mem {
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
 * must stay put (and zeroed before the first call) until the session is
 * deleted.  nghttp2's return value. */
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
