/*
 * Growable strings and a string pool for protoc-gen-triplestream.
 * Thread: single-threaded tool.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"

void *
xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);

  if (p == NULL) {
    fputs("protoc-gen-triplestream: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

char *
xstrdup(const char *s)
{
  size_t n = strlen(s) + 1;

  return memcpy(xmalloc(n), s, n);
}

static void
sb_reserve(sbuf *b, size_t more)
{
  size_t cap;
  char *p;

  if (b->len + more + 1 <= b->cap)
    return;
  cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1)
    cap *= 2;
  p = xmalloc(cap);
  if (b->p != NULL) {
    memcpy(p, b->p, b->len + 1);
    free(b->p);
  }
  b->p = p;
  b->cap = cap;
}

void
sb_puts(sbuf *b, const char *s)
{
  size_t n = strlen(s);

  sb_reserve(b, n);
  memcpy(b->p + b->len, s, n + 1);
  b->len += n;
}

void
sb_putc(sbuf *b, char c)
{
  sb_reserve(b, 1);
  b->p[b->len++] = c;
  b->p[b->len] = '\0';
}

void
sb_vprintf(sbuf *b, const char *fmt, va_list ap)
{
  va_list ap2;
  int n;

  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) {
    fputs("protoc-gen-triplestream: formatting failed\n", stderr);
    exit(1);
  }
  sb_reserve(b, (size_t)n);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void
sb_printf(sbuf *b, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  sb_vprintf(b, fmt, ap);
  va_end(ap);
}

char *
sb_take(sbuf *b)
{
  char *p;

  if (b->p == NULL)
    return xstrdup("");
  p = b->p;
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

void
sb_free(sbuf *b)
{
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

char *
pool_keep(cg_pool *pool, char *s)
{
  if (pool->n == pool->cap) {
    size_t cap = pool->cap ? pool->cap * 2 : 64;
    char **items = xmalloc(cap * sizeof *items);

    if (pool->n)
      memcpy(items, pool->items, pool->n * sizeof *items);
    free(pool->items);
    pool->items = items;
    pool->cap = cap;
  }
  pool->items[pool->n++] = s;
  return s;
}

char *
pool_printf(cg_pool *pool, const char *fmt, ...)
{
  sbuf b = {0};
  va_list ap;

  va_start(ap, fmt);
  sb_vprintf(&b, fmt, ap);
  va_end(ap);
  return pool_keep(pool, sb_take(&b));
}

void
pool_free(cg_pool *pool)
{
  size_t i;

  for (i = 0; i < pool->n; i++)
    free(pool->items[i]);
  free(pool->items);
  pool->items = NULL;
  pool->n = pool->cap = 0;
}
