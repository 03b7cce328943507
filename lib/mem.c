#include "tri_int.h"

#include "h2mem.h"

/*
 * Allocation wrappers.  Used by every thread (callers, I/O, timer,
 * workers); stateless, so safe from any thread.  This is the only file of
 * lib/ that calls malloc() and friends directly: one place to hook
 * allocation failures in tests and to count memory.
 *
 * A request for zero bytes allocates one byte instead, so NULL always
 * means "out of memory" and never "you asked for nothing".
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Tests' allocation failures (tri__mem_set_fail_hook); NULL in use. */
static tri__mem_fail_fn fail_hook;

void tri__mem_set_fail_hook(tri__mem_fail_fn fn) {
  __atomic_store_n(&fail_hook, fn, __ATOMIC_RELEASE);
}

static int fail_now(size_t n) {
  tri__mem_fail_fn fn = __atomic_load_n(&fail_hook, __ATOMIC_ACQUIRE);
  return fn != NULL && fn(n);
}

void *tri__malloc(size_t n) {
  if (fail_now(n))
    return NULL;
  return malloc(n ? n : 1);
}

void *tri__calloc(size_t nmemb, size_t size) {
  if (fail_now(size != 0 && nmemb > SIZE_MAX / size ? SIZE_MAX
                                                      : nmemb * size))
    return NULL;
  if (nmemb == 0 || size == 0)
    return calloc(1, 1);
  return calloc(nmemb, size); /* calloc checks nmemb * size overflow */
}

/* realloc(p, 0) may free |p| and return NULL, which callers would take for
 * a failure and free again; ask for one byte instead. */
void *tri__realloc(void *p, size_t n) {
  if (fail_now(n))
    return NULL;
  return realloc(p, n ? n : 1);
}

void tri__free(void *p) { free(p); }

char *tri__strdup(const char *s) {
  size_t n;
  char *r;

  if (s == NULL)
    return NULL;
  n = strlen(s);
  r = tri__malloc(n + 1);
  if (r == NULL)
    return NULL;
  memcpy(r, s, n + 1);
  return r;
}

/* At most |n| bytes of |s|, stopping early at a NUL (POSIX strndup). */
char *tri__strndup(const char *s, size_t n) {
  const char *nul;
  char *r;

  if (s == NULL)
    return NULL;
  nul = memchr(s, '\0', n);
  if (nul != NULL)
    n = (size_t)(nul - s);
  if (n == SIZE_MAX)
    return NULL;
  r = tri__malloc(n + 1);
  if (r == NULL)
    return NULL;
  memcpy(r, s, n);
  r[n] = '\0';
  return r;
}

/* ---- page slots for nghttp2's large blocks (h2mem.h) ------------------ */

static size_t page_size(void) {
  static size_t cached; /* every thread computes the same value */
  size_t ps = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (ps == 0) {
    long v = sysconf(_SC_PAGESIZE);
    ps = v > 0 ? (size_t)v : 4096;
    __atomic_store_n(&cached, ps, __ATOMIC_RELAXED);
  }
  return ps;
}

/* Virtual size of each mapping slots are carved from, and the largest
 * slot (in pages); larger blocks come from the heap. */
#define PG_CHUNK ((size_t)1 << 20)
#define PG_MAX_PAGES 16

typedef struct {
  void **v;
  size_t n, cap;
} pg_list;

struct tri__pgpool {
  size_t ps;
  uint8_t *cur;               /* carving point in the newest chunk */
  size_t left;                /* bytes left after cur */
  pg_list chunks;             /* every mapping, for tri__pgpool_free */
  pg_list free[PG_MAX_PAGES + 1]; /* given-back slots by page count:
                                     zero, not resident */
};

static int pg_push(pg_list *l, void *p) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    void **nv = realloc(l->v, cap * sizeof(*nv));
    if (nv == NULL)
      return -1;
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = p;
  return 0;
}

tri__pgpool *tri__pgpool_new(void) {
  tri__pgpool *p = calloc(1, sizeof(*p));
  if (p != NULL)
    p->ps = page_size();
  return p;
}

void tri__pgpool_free(tri__pgpool *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->chunks.n; i++)
    munmap(p->chunks.v[i], PG_CHUNK);
  free(p->chunks.v);
  for (int k = 0; k <= PG_MAX_PAGES; k++)
    free(p->free[k].v);
  free(p);
}

size_t tri__pgpool_chunks(const tri__pgpool *p) { return p->chunks.n; }

/* A slot of |pages| pages, zero and not resident, or NULL. */
static void *pg_get(tri__pgpool *p, size_t pages) {
  size_t len = pages * p->ps;
  void *r;

  if (pages == 0 || pages > PG_MAX_PAGES)
    return NULL;
  if (p->free[pages].n > 0)
    return p->free[pages].v[--p->free[pages].n];
  if (p->left < len) {
    /* The rest of the old chunk stays unused: address space only. */
    void *c = mmap(NULL, PG_CHUNK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (c == MAP_FAILED)
      return NULL;
    if (pg_push(&p->chunks, c) != 0) {
      munmap(c, PG_CHUNK);
      return NULL;
    }
    p->cur = c;
    p->left = PG_CHUNK;
  }
  r = p->cur;
  p->cur += len;
  p->left -= len;
  return r;
}

/* Give a slot back: its pages return to the kernel (so it is zero when
 * taken again) and it waits for the next block of its size.  Without
 * room in the list the slot is abandoned (address space only). */
static void pg_put(tri__pgpool *p, void *b, size_t pages) {
  madvise(b, pages * p->ps, MADV_DONTNEED);
  (void)pg_push(&p->free[pages], b);
}

/* ---- nghttp2's allocator (h2mem.h) ------------------------------------ */

static int h2_find(const tri__h2mem *m, const void *p) {
  for (int i = 0; i < TRI__H2MEM_MAPS; i++)
    if (m->map[i] == p)
      return i;
  return -1;
}

/* A block of |n| bytes; zeroed if |zero|.  Slots are zero when taken, so
 * a slot is never written here. */
static void *h2_alloc(tri__h2mem *m, size_t n, int zero) {
  tri__pgpool *pool = m->pool;
  int i;

  if (fail_now(n))
    return NULL;
  if (m->creating && pool != NULL && n >= pool->ps &&
      n <= PG_MAX_PAGES * pool->ps && (i = h2_find(m, NULL)) >= 0) {
    size_t pages = (n + pool->ps - 1) / pool->ps;
    void *p = pg_get(pool, pages);
    if (p != NULL) {
      m->map[i] = p;
      m->len[i] = pages * pool->ps;
      m->scratch[i] = !zero;
      return p;
    }
  }
  return zero ? calloc(1, n ? n : 1) : malloc(n ? n : 1);
}

static void *h2_malloc(size_t n, void *ud) { return h2_alloc(ud, n, 0); }

static void *h2_calloc(size_t nmemb, size_t size, void *ud) {
  if (size != 0 && nmemb > SIZE_MAX / size)
    return NULL;
  return h2_alloc(ud, nmemb * size, 1);
}

static void h2_free(void *p, void *ud) {
  tri__h2mem *m = ud;
  int i;

  if (p == NULL)
    return;
  i = h2_find(m, p);
  if (i < 0) {
    free(p);
    return;
  }
  pg_put(m->pool, p, m->len[i] / m->pool->ps);
  m->map[i] = NULL;
  m->len[i] = 0;
  m->scratch[i] = 0;
}

static void *h2_realloc(void *p, size_t n, void *ud) {
  tri__h2mem *m = ud;
  unsigned char scratch;
  void *q;
  int i, j;

  if (p == NULL)
    return h2_alloc(m, n, 0);
  i = h2_find(m, p);
  if (i < 0) {
    if (fail_now(n))
      return NULL;
    return realloc(p, n ? n : 1);
  }
  if (n <= m->len[i])
    return p; /* the pages beyond |n| stay in the slot until freed */
  scratch = m->scratch[i];
  q = h2_alloc(m, n, 0);
  if (q == NULL)
    return NULL;
  memcpy(q, p, m->len[i]);
  if ((j = h2_find(m, q)) >= 0)
    m->scratch[j] = scratch; /* what the block holds has not changed */
  h2_free(p, m);
  return q;
}

int tri__h2_session_new(nghttp2_session **sess, int is_server,
                        const nghttp2_session_callbacks *cbs, void *user_data,
                        const nghttp2_option *opt, tri__h2mem *m) {
  /* nghttp2 keeps a copy of this table; |m| is its mem_user_data. */
  nghttp2_mem mem = {m, h2_malloc, h2_free, h2_calloc, h2_realloc};
  const nghttp2_info *v = nghttp2_version(0);
  int rv;

  m->creating = 1;
  rv = is_server ? nghttp2_session_server_new3(sess, cbs, user_data, opt, &mem)
                 : nghttp2_session_client_new3(sess, cbs, user_data, opt, &mem);
  m->creating = 0;
  /* 1.40 (0x012800) to 1.69: see h2mem.h */
  m->can_trim = v != NULL && v->version_num >= 0x012800 &&
                v->version_num < 0x014600;
  return rv;
}

size_t tri__h2mem_trim(tri__h2mem *m) {
  size_t n = 0;

  if (m->trimmed)
    return 0;
  m->trimmed = 1; /* also where nothing can be trimmed: tried once */
  if (!m->can_trim)
    return 0;
  for (int i = 0; i < TRI__H2MEM_MAPS; i++)
    if (m->map[i] != NULL && m->scratch[i] &&
        madvise(m->map[i], m->len[i], MADV_DONTNEED) == 0)
      n += m->len[i];
  return n;
}

int tri__h2mem_mapped(const tri__h2mem *m) {
  int n = 0;
  for (int i = 0; i < TRI__H2MEM_MAPS; i++)
    n += m->map[i] != NULL;
  return n;
}

#ifdef TRI_DEBUG
/* Debug trace to stderr, one line per call (--enable-debug builds only). */
void tri__debugf(const char *fmt, ...) {
  va_list ap;
  size_t n = strlen(fmt);

  fputs("[triplestream] ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (n == 0 || fmt[n - 1] != '\n')
    fputc('\n', stderr);
}

void tri__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "libtriplestream: invariant violated at %s:%d: %s\n", file,
          line, what);
  abort();
}
#endif
