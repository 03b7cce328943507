/*
 * protoc-gen-triplestream: internal interfaces.
 *
 * main.c   reads the CodeGeneratorRequest, writes the response (I/O only);
 * names.c  protobuf-c's naming rules and C keyword handling (pure);
 * emit.c   the .tri.h / .tri.c text for one .proto file (pure);
 * sbuf.c   growable strings and the allocation pool everything uses.
 *
 * Memory: the plugin is a short-lived filter.  Allocation failure prints a
 * message and exits 1 (xmalloc()); names live in a pool freed at the end.
 */
#ifndef CODEGEN_H
#define CODEGEN_H

#include <stdarg.h>
#include <stddef.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto cg_file;
typedef Google__Protobuf__Compiler__CodeGeneratorRequest cg_request;

/* ---- sbuf.c --------------------------------------------------------- */

/* A growable NUL-terminated string.  Zero-initialise, then append. */
typedef struct sbuf {
  char *p;
  size_t len;
  size_t cap;
} sbuf;

void *xmalloc(size_t n);
char *xstrdup(const char *s);
void sb_puts(sbuf *b, const char *s);
void sb_putc(sbuf *b, char c);
void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
void sb_vprintf(sbuf *b, const char *fmt, va_list ap);
/* Give up the buffer: the caller owns the returned string (never NULL). */
char *sb_take(sbuf *b);
void sb_free(sbuf *b);

/* Pool of strings freed together (one per generated file). */
typedef struct cg_pool {
  char **items;
  size_t n;
  size_t cap;
} cg_pool;

/* Keep |s| (owned) in |pool|; returns |s|. */
char *pool_keep(cg_pool *pool, char *s);
char *pool_printf(cg_pool *pool, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
void pool_free(cg_pool *pool);

/* ---- names.c -------------------------------------------------------- */

/* protobuf-c's rules (protoc-c/c_helpers.cc), reimplemented:
 *   camel_to_lower("GetHTTPThing") = "get_httpthing"
 *   camel_to_upper("GetFeature")   = "GET_FEATURE"
 *   to_camel("inner_msg")          = "InnerMsg"
 *   full_name_to_c("a.b.Outer.Inner") = "A__B__Outer__Inner"  (types)
 *   full_name_to_lower(...)        = "a__b__outer__inner"     (functions)
 *   full_name_to_upper(...)        = "A__B__OUTER__INNER"     (macros)
 * Empty components (leading dot) are skipped.  Results go to |pool|. */
char *camel_to_lower(cg_pool *pool, const char *s);
char *camel_to_upper(cg_pool *pool, const char *s);
char *to_camel(cg_pool *pool, const char *s);
char *full_name_to_c(cg_pool *pool, const char *full);
char *full_name_to_lower(cg_pool *pool, const char *full);
char *full_name_to_upper(cg_pool *pool, const char *full);

/* Non-zero if |s| is a C (C11/C23) or C++ keyword, or a name the
 * generated code reserves, so it cannot be a struct member as is. */
int is_reserved_name(const char *s);

/* "a/b/x.proto" -> "a/b/x" (also strips ".protodevel"). */
char *strip_proto(cg_pool *pool, const char *filename);

/* Include guard for |filename|: "TRIPLESTREAM_" + identifier + suffix;
 * characters other than [A-Za-z0-9] become "_XX" (hex), as protobuf-c. */
char *guard_name(cg_pool *pool, const char *filename, const char *suffix);

/* Append |comment| to |out| as the lines of a doc comment body
 * (" * text\n" each), with comment delimiters defused and trailing blank
 * lines dropped.  Does nothing for NULL or blank text. */
void put_comment_lines(sbuf *out, const char *comment);

/* ---- emit.c --------------------------------------------------------- */

/* Version printed in the generated files' banner. */
#define CG_VERSION PACKAGE_VERSION

/*
 * Generate the header and source for |file| (a member of |req|).
 * On success returns 0 and sets *|h| / *|c| (owned by the caller; both
 * NULL when the file has no service).  On error returns -1 and sets *|err|
 * (owned) to a message for CodeGeneratorResponse.error.
 */
int emit_file(const cg_request *req, const cg_file *file, char **h_name,
              char **h, char **c_name, char **c, char **err);

#endif /* CODEGEN_H */
