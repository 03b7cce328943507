/*
 * Naming rules for generated identifiers (pure; no I/O).
 *
 * The type and function names of messages must be exactly those protoc-c
 * gives them, so these follow protobuf-c's CamelToLower / ToCamel /
 * FullNameToC family: same inputs, same outputs (ASCII, locale-free).
 */
#include <config.h>

#include <string.h>

#include "codegen.h"

static int
is_upper(char c)
{
  return c >= 'A' && c <= 'Z';
}

static char
lower(char c)
{
  return is_upper(c) ? (char)(c - 'A' + 'a') : c;
}

static char
upper(char c)
{
  return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* CamelToLower / CamelToUpper: an '_' goes before each upper-case letter
 * that follows a non-upper-case one ("was_upper" starts true, so there is
 * never a leading '_'). */
static void
camel_split(sbuf *b, const char *s, int to_upper)
{
  int was_upper = 1;

  for (; *s; s++) {
    int up = is_upper(*s);

    if (up && !was_upper)
      sb_putc(b, '_');
    sb_putc(b, to_upper ? upper(*s) : lower(*s));
    was_upper = up;
  }
}

char *
camel_to_lower(cg_pool *pool, const char *s)
{
  sbuf b = {0};

  camel_split(&b, s, 0);
  return pool_keep(pool, sb_take(&b));
}

char *
camel_to_upper(cg_pool *pool, const char *s)
{
  sbuf b = {0};

  camel_split(&b, s, 1);
  return pool_keep(pool, sb_take(&b));
}

/* ToCamel: drop '_' and capitalise the letter after it (and the first). */
static void
camel_join(sbuf *b, const char *s)
{
  int next_upper = 1;

  for (; *s; s++) {
    if (*s == '_') {
      next_upper = 1;
    } else if (next_upper) {
      sb_putc(b, upper(*s));
      next_upper = 0;
    } else {
      sb_putc(b, *s);
    }
  }
}

char *
to_camel(cg_pool *pool, const char *s)
{
  sbuf b = {0};

  camel_join(&b, s);
  return pool_keep(pool, sb_take(&b));
}

enum { STYLE_C, STYLE_LOWER, STYLE_UPPER };

static char *
full_name(cg_pool *pool, const char *full, int style)
{
  sbuf b = {0};
  sbuf piece = {0};
  const char *p = full;

  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);

    if (n > 0) {
      size_t i;

      piece.len = 0;
      for (i = 0; i < n; i++)
        sb_putc(&piece, p[i]);
      if (b.len > 0)
        sb_puts(&b, "__");
      if (style == STYLE_C)
        camel_join(&b, piece.p);
      else
        camel_split(&b, piece.p, style == STYLE_UPPER);
    }
    p += n;
    if (*p == '.')
      p++;
  }
  sb_free(&piece);
  return pool_keep(pool, sb_take(&b));
}

char *
full_name_to_c(cg_pool *pool, const char *full)
{
  return full_name(pool, full, STYLE_C);
}

char *
full_name_to_lower(cg_pool *pool, const char *full)
{
  return full_name(pool, full, STYLE_LOWER);
}

char *
full_name_to_upper(cg_pool *pool, const char *full)
{
  return full_name(pool, full, STYLE_UPPER);
}

/* C11 + C23 keywords, C++ keywords (the headers are C++-clean), and the
 * member names the generated handler table uses for itself. */
static const char *const reserved[] = {
  "_Alignas", "_Alignof", "_Atomic", "_BitInt", "_Bool", "_Complex",
  "_Decimal128", "_Decimal32", "_Decimal64", "_Generic", "_Imaginary",
  "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof",
  "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
  "case", "catch", "char", "char16_t", "char32_t", "char8_t", "class",
  "compl", "concept", "const", "const_cast", "consteval", "constexpr",
  "constinit", "continue", "co_await", "co_return", "co_yield", "decltype",
  "default", "delete", "do", "double", "dynamic_cast", "else", "enum",
  "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
  "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept",
  "not", "not_eq", "nullptr", "operator", "or", "or_eq", "private",
  "protected", "public", "register", "reinterpret_cast", "requires",
  "restrict", "return", "short", "signed", "sizeof", "static",
  "static_assert", "static_cast", "struct", "switch", "template", "this",
  "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
  "typeof", "typeof_unqual", "union", "unsigned", "using", "virtual", "void",
  "volatile", "wchar_t", "while", "xor", "xor_eq",
  /* generated table members */
  "release_response",
};

int
is_reserved_name(const char *s)
{
  size_t i;

  for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcmp(s, reserved[i]) == 0)
      return 1;
  return 0;
}

char *
strip_proto(cg_pool *pool, const char *filename)
{
  size_t n = strlen(filename);
  char *s;

  if (n > 6 && strcmp(filename + n - 6, ".proto") == 0)
    n -= 6;
  else if (n > 11 && strcmp(filename + n - 11, ".protodevel") == 0)
    n -= 11;
  s = xmalloc(n + 1);
  memcpy(s, filename, n);
  s[n] = '\0';
  return pool_keep(pool, s);
}

char *
guard_name(cg_pool *pool, const char *filename, const char *suffix)
{
  static const char hex[] = "0123456789ABCDEF";
  sbuf b = {0};
  const unsigned char *p;

  sb_puts(&b, "TRIPLESTREAM_GEN_");
  for (p = (const unsigned char *)filename; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9')) {
      sb_putc(&b, upper((char)*p));
    } else {
      sb_putc(&b, '_');
      sb_putc(&b, hex[*p >> 4]);
      sb_putc(&b, hex[*p & 15]);
    }
  }
  sb_puts(&b, suffix);
  return pool_keep(pool, sb_take(&b));
}

void
put_comment_lines(sbuf *out, const char *comment)
{
  const char *p, *end;

  if (comment == NULL)
    return;
  /* Drop trailing blank lines and whitespace. */
  end = comment + strlen(comment);
  while (end > comment && (end[-1] == '\n' || end[-1] == ' ' ||
                           end[-1] == '\t' || end[-1] == '\r'))
    end--;
  p = comment;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *q;
    const char *te = le;

    while (te > p && (te[-1] == ' ' || te[-1] == '\t' || te[-1] == '\r'))
      te--;
    sb_puts(out, " *");
    if (te > p && *p == '/')
      sb_putc(out, ' ');
    for (q = p; q < te; q++) {
      /* Defuse comment delimiters: "*" "/" and "/" "*" get a space. */
      if (q > p && ((q[-1] == '*' && *q == '/') ||
                    (q[-1] == '/' && *q == '*')))
        sb_putc(out, ' ');
      sb_putc(out, *q);
    }
    sb_putc(out, '\n');
    p = nl ? nl + 1 : end;
  }
}
