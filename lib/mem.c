#include "tri_int.h"

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
