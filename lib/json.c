#include "tri_int.h"

/*
 * proto3 JSON mapping (doc/PROTOCOL.md "JSON mapping"; the mapping of
 * protobuf.dev "ProtoJSON Format") over the protobuf-c descriptors that
 * protoc-gen-c emits: no generated code of its own.
 *
 * JSON -> binary builds an unpacked protobuf-c message field by field
 * (everything malloc'd, so protobuf_c_message_free_unpacked(m, NULL) frees
 * a partial one on error), then packs it.  Binary -> JSON unpacks with
 * protobuf-c and walks the fields.  jansson parses and prints the JSON
 * text.  Base64 is the library's own RFC 4648 coder (lib/headers.c, used
 * for -bin metadata too), so the codec behaves the same with or without
 * OpenSSL.
 *
 * What protobuf-c's descriptors do not carry, and how it is handled:
 * - json_name: computed as protoc does (lowerCamelCase: drop '_' and
 *   capitalise the next letter); a custom json_name option is not seen.
 * - map fields: a repeated field of a nested "<CamelCaseName>Entry" message
 *   with exactly the fields key = 1 and value = 2 (the shape protoc gives
 *   every map<K, V>).
 * - well-known types: recognised by full descriptor name.
 * Nesting is limited to TRI__JSON_MAX_DEPTH messages in both directions.
 */

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>

#include "headers.h"
#include "json.h"
#include "triple.h"

#ifdef HAVE_JANSSON
#include <jansson.h>

#define TRI__JSON_MAX_DEPTH 100

/* Timestamp range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL
/* Duration range: +-10,000 years. */
#define DUR_MAX_SECONDS 315576000000LL

typedef struct {
  char *err;
  size_t errlen;
  int depth;
} jctx;

/* JSON text nesting (arrays and objects, outside strings) the parser is
 * allowed to see: two levels per message (an object, and the array of a
 * repeated field or the Struct/ListValue level around it) plus Triple's
 * outer array, so nothing the message limit accepts is refused.  Checked
 * before jansson runs: its own limit (JSON_PARSER_MAX_DEPTH, 2048 in
 * jansson 2.14) costs about 190 KB of stack in its recursive parser, more
 * than a handler thread may have. */
#define TRI__JSON_MAX_TEXT_DEPTH (2 * TRI__JSON_MAX_DEPTH + 2)

static int text_depth_ok(const char *s, size_t len) {
  int depth = 0, in_str = 0;
  size_t i;

  for (i = 0; i < len; i++) {
    char ch = s[i];

    if (in_str) {
      if (ch == '\\')
        i++; /* the escaped character cannot end the string */
      else if (ch == '"')
        in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '[' || ch == '{') {
      if (++depth > TRI__JSON_MAX_TEXT_DEPTH)
        return 0;
    } else if (ch == ']' || ch == '}') {
      depth--;
    }
  }
  return 1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
jfail(jctx *c, int st, const char *fmt, ...) {
  va_list ap;

  if (c->err != NULL && c->errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
  }
  return st;
}

#define BAD(c, ...) jfail((c), TRI_INVALID_ARGUMENT, __VA_ARGS__)

/* ---- names ---- */

/* The JSON name protoc derives from a field name (lowerCamelCase). */
static void json_name(const char *name, char *buf, size_t n) {
  size_t o = 0;
  int up = 0;

  for (; *name != '\0' && o + 1 < n; name++) {
    if (*name == '_') {
      up = 1;
      continue;
    }
    buf[o++] = (up && *name >= 'a' && *name <= 'z') ? (char)(*name - 32)
                                                    : *name;
    up = 0;
  }
  buf[o] = '\0';
}

/* 1 if |key| is |name|'s JSON name. */
static int json_name_eq(const char *name, const char *key) {
  int up = 0;

  for (; *name != '\0'; name++) {
    char ch;

    if (*name == '_') {
      up = 1;
      continue;
    }
    ch = (up && *name >= 'a' && *name <= 'z') ? (char)(*name - 32) : *name;
    up = 0;
    if (*key++ != ch)
      return 0;
  }
  return *key == '\0';
}

static const ProtobufCFieldDescriptor *
field_by_json_key(const ProtobufCMessageDescriptor *d, const char *key) {
  unsigned i;

  for (i = 0; i < d->n_fields; i++)
    if (json_name_eq(d->fields[i].name, key))
      return &d->fields[i];
  for (i = 0; i < d->n_fields; i++)
    if (strcmp(d->fields[i].name, key) == 0)
      return &d->fields[i];
  return NULL;
}

/* protoc names the entry message of map<K, V> field_name "FieldNameEntry". */
static int is_map_field(const ProtobufCFieldDescriptor *f) {
  const ProtobufCMessageDescriptor *e;
  const char *p, *q;
  int up = 1;

  if (f->label != PROTOBUF_C_LABEL_REPEATED ||
      f->type != PROTOBUF_C_TYPE_MESSAGE)
    return 0;
  e = f->descriptor;
  if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
      strcmp(e->fields[0].name, "key") != 0 ||
      strcmp(e->fields[1].name, "value") != 0)
    return 0;
  q = e->short_name;
  for (p = f->name; *p != '\0'; p++) {
    char ch;

    if (*p == '_') {
      up = 1;
      continue;
    }
    ch = (up && *p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
    up = 0;
    if (*q++ != ch)
      return 0;
  }
  return strcmp(q, "Entry") == 0;
}

enum {
  WKT_NONE,
  WKT_TIMESTAMP,
  WKT_DURATION,
  WKT_WRAPPER,
  WKT_STRUCT,
  WKT_LIST,
  WKT_VALUE,
  WKT_FIELDMASK,
  WKT_ANY
};

static int wkt_kind(const ProtobufCMessageDescriptor *d) {
  const char *n = d->name;

  if (strncmp(n, "google.protobuf.", 16) != 0)
    return WKT_NONE;
  n += 16;
  if (strcmp(n, "Timestamp") == 0)
    return WKT_TIMESTAMP;
  if (strcmp(n, "Duration") == 0)
    return WKT_DURATION;
  if (strcmp(n, "Struct") == 0)
    return WKT_STRUCT;
  if (strcmp(n, "ListValue") == 0)
    return WKT_LIST;
  if (strcmp(n, "Value") == 0)
    return WKT_VALUE;
  if (strcmp(n, "FieldMask") == 0)
    return WKT_FIELDMASK;
  if (strcmp(n, "Any") == 0)
    return WKT_ANY;
  if (strcmp(n, "DoubleValue") == 0 || strcmp(n, "FloatValue") == 0 ||
      strcmp(n, "Int64Value") == 0 || strcmp(n, "UInt64Value") == 0 ||
      strcmp(n, "Int32Value") == 0 || strcmp(n, "UInt32Value") == 0 ||
      strcmp(n, "BoolValue") == 0 || strcmp(n, "StringValue") == 0 ||
      strcmp(n, "BytesValue") == 0)
    return WKT_WRAPPER;
  return WKT_NONE; /* Empty and the rest: ordinary messages */
}

static int is_null_value_enum(const ProtobufCFieldDescriptor *f) {
  return f->type == PROTOBUF_C_TYPE_ENUM &&
         strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                "google.protobuf.NullValue") == 0;
}

static int is_value_msg(const ProtobufCFieldDescriptor *f) {
  return f->type == PROTOBUF_C_TYPE_MESSAGE &&
         wkt_kind(f->descriptor) == WKT_VALUE;
}

static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return 8;
  case PROTOBUF_C_TYPE_FLOAT:
    return sizeof(float);
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_ENUM:
    return sizeof(int);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
  default:
    return sizeof(void *);
  }
}

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off) ((const void *)((const char *)(msg) + (off)))

/* ======================= JSON -> protobuf ======================= */

static int msg_from_json(jctx *c, const ProtobufCMessageDescriptor *d,
                         json_t *v, ProtobufCMessage **out);

/* strtod() for a number inside a JSON string: JSON's number syntax only,
 * so hexadecimal ("0x10") and C's "inf"/"nan" spellings stop at once. */
static double json_strtod(const char *s, char **end) {
  const char *p;

  for (p = s; *p != '\0'; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
          *p == 'e' || *p == 'E')) {
      *end = (char *)s;
      return 0;
    }
  return strtod(s, end);
}

/* Integral value of a JSON number or numeric string within [lo, hi]. */
static int get_i64(jctx *c, const char *fname, json_t *v, int64_t lo,
                   int64_t hi, int64_t *out) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);

    if (x < lo || x > hi)
      return BAD(c, "field \"%s\": %lld is out of range", fname,
                 (long long)x);
    *out = (int64_t)x;
    return TRI_OK;
  }
  if (json_is_real(v) || json_is_string(v)) {
    double dv;

    if (json_is_string(v)) {
      const char *s = json_string_value(v);
      size_t n = json_string_length(v);
      char *end;
      long long x;

      if (n == 0 || strlen(s) != n || s[0] == ' ' || s[0] == '+' ||
          (s[0] >= '\t' && s[0] <= '\r'))
        return BAD(c, "field \"%s\": \"%s\" is not an integer", fname, s);
      errno = 0;
      x = strtoll(s, &end, 10);
      if (*end == '\0') {
        if (errno == ERANGE || x < lo || x > hi)
          return BAD(c, "field \"%s\": %s is out of range", fname, s);
        *out = (int64_t)x;
        return TRI_OK;
      }
      dv = json_strtod(s, &end);
      if (*end != '\0' || !isfinite(dv))
        return BAD(c, "field \"%s\": \"%s\" is not an integer", fname, s);
    } else {
      dv = json_real_value(v);
    }
    if (dv != floor(dv))
      return BAD(c, "field \"%s\": %g is not an integer", fname, dv);
    if (!(dv >= (double)lo && dv < -(double)INT64_MIN) || dv > (double)hi)
      return BAD(c, "field \"%s\": %g is out of range", fname, dv);
    *out = (int64_t)dv;
    if (*out < lo || *out > hi)
      return BAD(c, "field \"%s\": %g is out of range", fname, dv);
    return TRI_OK;
  }
  return BAD(c, "field \"%s\": expected an integer", fname);
}

static int get_u64(jctx *c, const char *fname, json_t *v, uint64_t hi,
                   uint64_t *out) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);

    if (x < 0 || (uint64_t)x > hi)
      return BAD(c, "field \"%s\": %lld is out of range", fname,
                 (long long)x);
    *out = (uint64_t)x;
    return TRI_OK;
  }
  if (json_is_real(v) || json_is_string(v)) {
    double dv;

    if (json_is_string(v)) {
      const char *s = json_string_value(v);
      size_t n = json_string_length(v);
      char *end;
      unsigned long long x;

      if (n == 0 || strlen(s) != n || !(s[0] >= '0' && s[0] <= '9')) {
        if (n > 0 && s[0] == '-' && strlen(s) == n)
          goto as_double;
        return BAD(c, "field \"%s\": \"%s\" is not an unsigned integer",
                   fname, s);
      }
      errno = 0;
      x = strtoull(s, &end, 10);
      if (*end == '\0') {
        if (errno == ERANGE || x > hi)
          return BAD(c, "field \"%s\": %s is out of range", fname, s);
        *out = (uint64_t)x;
        return TRI_OK;
      }
    as_double:
      dv = json_strtod(s, &end);
      if (*end != '\0' || !isfinite(dv))
        return BAD(c, "field \"%s\": \"%s\" is not an integer", fname, s);
    } else {
      dv = json_real_value(v);
    }
    if (dv != floor(dv))
      return BAD(c, "field \"%s\": %g is not an integer", fname, dv);
    if (dv < 0 || dv >= 18446744073709551616.0 || (uint64_t)dv > hi)
      return BAD(c, "field \"%s\": %g is out of range", fname, dv);
    *out = (uint64_t)dv;
    return TRI_OK;
  }
  return BAD(c, "field \"%s\": expected an unsigned integer", fname);
}

static int get_double(jctx *c, const char *fname, json_t *v, int is_float,
                      double *out) {
  double dv;

  if (json_is_number(v)) {
    dv = json_number_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;

    if (strcmp(s, "NaN") == 0) {
      *out = NAN;
      return TRI_OK;
    }
    if (strcmp(s, "Infinity") == 0) {
      *out = INFINITY;
      return TRI_OK;
    }
    if (strcmp(s, "-Infinity") == 0) {
      *out = -INFINITY;
      return TRI_OK;
    }
    if (s[0] == '\0' || strlen(s) != json_string_length(v) ||
        (s[0] >= '\t' && s[0] <= '\r') || s[0] == ' ')
      return BAD(c, "field \"%s\": \"%s\" is not a number", fname, s);
    errno = 0;
    dv = json_strtod(s, &end);
    if (*end != '\0' || !isfinite(dv))
      return BAD(c, "field \"%s\": \"%s\" is not a number", fname, s);
  } else {
    return BAD(c, "field \"%s\": expected a number", fname);
  }
  if (is_float && isfinite(dv) && (dv > FLT_MAX || dv < -FLT_MAX))
    return BAD(c, "field \"%s\": %g is out of range for a float", fname, dv);
  *out = dv;
  return TRI_OK;
}

/* Base64, standard or URL-safe alphabet, padded or not (proto3 JSON
 * accepts both).  *out malloc'd. */
static int b64_from_json(jctx *c, const char *fname, json_t *v,
                         ProtobufCBinaryData *out) {
  const char *s;
  size_t n, i, ol = 0;
  char *t;
  uint8_t *buf;

  if (!json_is_string(v))
    return BAD(c, "field \"%s\": expected a base64 string", fname);
  s = json_string_value(v);
  n = json_string_length(v);
  t = tri__malloc(n + 1);
  buf = tri__malloc(n / 4 * 3 + 3);
  if (t == NULL || buf == NULL) {
    tri__free(t);
    tri__free(buf);
    return jfail(c, TRI_ENOMEM, "out of memory");
  }
  for (i = 0; i < n; i++)
    t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
  if (tri__b64_decode(t, n, buf, &ol) != 0) {
    tri__free(t);
    tri__free(buf);
    return BAD(c, "field \"%s\": invalid base64", fname);
  }
  tri__free(t);
  out->data = buf;
  out->len = ol;
  return TRI_OK;
}

static int enum_from_json(jctx *c, const ProtobufCFieldDescriptor *f,
                          const char *fname, json_t *v, int *out) {
  const ProtobufCEnumDescriptor *ed = f->descriptor;

  if (is_null_value_enum(f)) {
    /* google.protobuf.NullValue has one value, printed as null. */
    if (json_is_null(v) ||
        (json_is_string(v) &&
         strcmp(json_string_value(v), "NULL_VALUE") == 0) ||
        (json_is_integer(v) && json_integer_value(v) == 0)) {
      *out = 0;
      return TRI_OK;
    }
    return BAD(c, "field \"%s\": google.protobuf.NullValue must be null",
               fname);
  }
  if (json_is_string(v)) {
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value_by_name(ed,
                                                     json_string_value(v));

    if (ev == NULL)
      return BAD(c, "field \"%s\": \"%s\" is not a value of %s", fname,
                 json_string_value(v), ed->name);
    *out = ev->value;
    return TRI_OK;
  }
  if (json_is_number(v)) {
    int64_t x;
    int st = get_i64(c, fname, v, INT32_MIN, INT32_MAX, &x);

    if (st != TRI_OK)
      return st;
    *out = (int)x; /* proto3 enums are open: any int32 */
    return TRI_OK;
  }
  return BAD(c, "field \"%s\": expected an enum name or number", fname);
}

/* Parse one value of |f|'s type into |slot| (a field or array element).
 * |is_key|: |v| is a map key string. */
static int value_from_json(jctx *c, const ProtobufCFieldDescriptor *f,
                           const char *fname, json_t *v, void *slot,
                           int is_key) {
  int64_t i;
  uint64_t u;
  double dv;
  int st;

  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    if ((st = get_i64(c, fname, v, INT32_MIN, INT32_MAX, &i)) != TRI_OK)
      return st;
    *(int32_t *)slot = (int32_t)i;
    return TRI_OK;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    if ((st = get_i64(c, fname, v, INT64_MIN, INT64_MAX, &i)) != TRI_OK)
      return st;
    *(int64_t *)slot = i;
    return TRI_OK;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    if ((st = get_u64(c, fname, v, UINT32_MAX, &u)) != TRI_OK)
      return st;
    *(uint32_t *)slot = (uint32_t)u;
    return TRI_OK;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    if ((st = get_u64(c, fname, v, UINT64_MAX, &u)) != TRI_OK)
      return st;
    *(uint64_t *)slot = u;
    return TRI_OK;
  case PROTOBUF_C_TYPE_FLOAT:
    if ((st = get_double(c, fname, v, 1, &dv)) != TRI_OK)
      return st;
    *(float *)slot = (float)dv;
    return TRI_OK;
  case PROTOBUF_C_TYPE_DOUBLE:
    if ((st = get_double(c, fname, v, 0, &dv)) != TRI_OK)
      return st;
    *(double *)slot = dv;
    return TRI_OK;
  case PROTOBUF_C_TYPE_BOOL:
    if (is_key && json_is_string(v)) {
      if (strcmp(json_string_value(v), "true") == 0)
        *(protobuf_c_boolean *)slot = 1;
      else if (strcmp(json_string_value(v), "false") == 0)
        *(protobuf_c_boolean *)slot = 0;
      else
        return BAD(c, "field \"%s\": map key \"%s\" is not a bool", fname,
                   json_string_value(v));
      return TRI_OK;
    }
    if (!json_is_boolean(v))
      return BAD(c, "field \"%s\": expected true or false", fname);
    *(protobuf_c_boolean *)slot = json_is_true(v);
    return TRI_OK;
  case PROTOBUF_C_TYPE_ENUM:
    return enum_from_json(c, f, fname, v, (int *)slot);
  case PROTOBUF_C_TYPE_STRING: {
    char *s;

    if (!json_is_string(v))
      return BAD(c, "field \"%s\": expected a string", fname);
    if (strlen(json_string_value(v)) != json_string_length(v))
      return BAD(c, "field \"%s\": string contains U+0000", fname);
    s = tri__strdup(json_string_value(v));
    if (s == NULL)
      return jfail(c, TRI_ENOMEM, "out of memory");
    *(char **)slot = s;
    return TRI_OK;
  }
  case PROTOBUF_C_TYPE_BYTES:
    return b64_from_json(c, fname, v, (ProtobufCBinaryData *)slot);
  case PROTOBUF_C_TYPE_MESSAGE:
    if (json_is_null(v) && !is_value_msg(f))
      return BAD(c, "field \"%s\": null is not a message here", fname);
    return msg_from_json(c, f->descriptor, v, (ProtobufCMessage **)slot);
  default:
    return BAD(c, "field \"%s\": unsupported field type", fname);
  }
}

/* A map field from a JSON object: one entry message per member. */
static int map_from_json(jctx *c, ProtobufCMessage *m,
                         const ProtobufCFieldDescriptor *f, const char *fname,
                         json_t *v) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  size_t *np = MEMBER(m, f->quantifier_offset);
  ProtobufCMessage **arr;
  const char *key;
  json_t *val;
  int st;

  if (!json_is_object(v))
    return BAD(c, "field \"%s\": expected an object (map)", fname);
  if (json_object_size(v) == 0)
    return TRI_OK;
  arr = tri__calloc(json_object_size(v), sizeof(*arr));
  if (arr == NULL)
    return jfail(c, TRI_ENOMEM, "out of memory");
  *(ProtobufCMessage ***)MEMBER(m, f->offset) = arr;
  json_object_foreach(v, key, val) {
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    ProtobufCMessage *e = tri__calloc(1, ed->sizeof_message);
    json_t *kj;

    if (e == NULL)
      return jfail(c, TRI_ENOMEM, "out of memory");
    ed->message_init(e);
    arr[(*np)++] = e;
    kj = json_string(key);
    if (kj == NULL)
      return jfail(c, TRI_ENOMEM, "out of memory");
    st = value_from_json(c, kf, fname, kj, MEMBER(e, kf->offset), 1);
    json_decref(kj);
    if (st != TRI_OK)
      return st;
    if (json_is_null(val) && !is_value_msg(vf) && !is_null_value_enum(vf))
      return BAD(c, "field \"%s\": map value for \"%s\" is null", fname, key);
    st = value_from_json(c, vf, fname, val, MEMBER(e, vf->offset), 0);
    if (st != TRI_OK)
      return st;
  }
  return TRI_OK;
}

/* Set field |f| of |m| from |v| (not null, or null for Value / NullValue). */
static int field_from_json(jctx *c, ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *f, json_t *v) {
  char fname[256];
  int st;

  json_name(f->name, fname, sizeof fname);
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    size_t *np = MEMBER(m, f->quantifier_offset);
    size_t esz = elem_size(f->type), k, n;
    char *arr;

    if (is_map_field(f))
      return map_from_json(c, m, f, fname, v);
    if (!json_is_array(v))
      return BAD(c, "field \"%s\": expected an array", fname);
    n = json_array_size(v);
    if (n == 0)
      return TRI_OK;
    arr = tri__calloc(n, esz);
    if (arr == NULL)
      return jfail(c, TRI_ENOMEM, "out of memory");
    *(void **)MEMBER(m, f->offset) = arr;
    for (k = 0; k < n; k++) {
      json_t *e = json_array_get(v, k);

      if (json_is_null(e) && !is_value_msg(f) && !is_null_value_enum(f))
        return BAD(c, "field \"%s\": null element in an array", fname);
      /* Count the element first: a failed string/message element is NULL,
       * which protobuf_c_message_free_unpacked() skips. */
      (*np)++;
      st = value_from_json(c, f, fname, e, arr + k * esz, 0);
      if (st != TRI_OK)
        return st;
    }
    return TRI_OK;
  }
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *cp = MEMBER(m, f->quantifier_offset);

    if (*cp != 0)
      return BAD(c, "field \"%s\": another member of its oneof is set too",
                 fname);
    if (f->type == PROTOBUF_C_TYPE_STRING)
      *(char **)MEMBER(m, f->offset) = NULL;
    *cp = f->id;
  } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
             f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE) {
    *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
  }
  return value_from_json(c, f, fname, v, MEMBER(m, f->offset), 0);
}

static const ProtobufCFieldDescriptor *
field_named(const ProtobufCMessageDescriptor *d, const char *name) {
  return protobuf_c_message_descriptor_get_field_by_name(d, name);
}

static int days_from_civil(int64_t y, unsigned mo, unsigned d, int64_t *out) {
  int64_t era;
  unsigned yoe, doy, doe;

  y -= mo <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = (unsigned)(y - era * 400);
  doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *out = era * 146097 + (int64_t)doe - 719468;
  return 0;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  int64_t era, yy;
  unsigned doe, yoe, doy, mp;

  z += 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = (unsigned)(z - era * 146097);
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  yy = (int64_t)yoe + era * 400;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

static int digits(const char **p, int n, int *out) {
  int v = 0, i;

  for (i = 0; i < n; i++) {
    if ((*p)[i] < '0' || (*p)[i] > '9')
      return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

/* Fraction ".d{1,9}" at *p (optional): nanoseconds. */
static int frac_nanos(const char **p, int *nanos) {
  int n = 0, k = 0;

  *nanos = 0;
  if (**p != '.')
    return 0;
  (*p)++;
  while (**p >= '0' && **p <= '9') {
    if (k == 9)
      return -1;
    n = n * 10 + (**p - '0');
    k++;
    (*p)++;
  }
  if (k == 0)
    return -1;
  for (; k < 9; k++)
    n *= 10;
  *nanos = n;
  return 0;
}

/* RFC 3339 (protobuf's Timestamp JSON form). */
static int parse_timestamp(const char *s, int64_t *secs, int *nanos) {
  const char *p = s;
  int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
  int64_t days;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
      *p++ != '-' || digits(&p, 2, &d) || (*p != 'T' && *p != 't'))
    return -1;
  p++;
  if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) ||
      *p++ != ':' || digits(&p, 2, &se))
    return -1;
  if (frac_nanos(&p, nanos) != 0)
    return -1;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    sign = *p++ == '-' ? -1 : 1;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 ||
        om > 59)
      return -1;
  } else {
    return -1;
  }
  if (*p != '\0' || y < 1 || mo < 1 || mo > 12 || d < 1 ||
      d > mdays[mo - 1] || h > 23 || mi > 59 || se > 59)
    return -1;
  if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    return -1;
  days_from_civil(y, (unsigned)mo, (unsigned)d, &days);
  *secs = days * 86400 + h * 3600 + mi * 60 + se -
          (int64_t)sign * (oh * 3600 + om * 60);
  if (*secs < TS_MIN_SECONDS || *secs > TS_MAX_SECONDS)
    return -1;
  return 0;
}

/* "-1.5s" (protobuf's Duration JSON form). */
static int parse_duration(const char *s, int64_t *secs, int *nanos) {
  const char *p = s;
  int neg = 0;
  int64_t v = 0;
  int nd = 0;

  if (*p == '-') {
    neg = 1;
    p++;
  }
  while (*p >= '0' && *p <= '9') {
    if (++nd > 12)
      return -1;
    v = v * 10 + (*p - '0');
    p++;
  }
  if (nd == 0 || frac_nanos(&p, nanos) != 0 || *p != 's' || p[1] != '\0')
    return -1;
  if (v > DUR_MAX_SECONDS)
    return -1;
  *secs = neg ? -v : v;
  if (neg)
    *nanos = -*nanos;
  return 0;
}

static void set_i64_field(ProtobufCMessage *m, const char *name, int64_t v) {
  const ProtobufCFieldDescriptor *f = field_named(m->descriptor, name);

  if (f != NULL)
    *(int64_t *)MEMBER(m, f->offset) = v;
}

static void set_i32_field(ProtobufCMessage *m, const char *name, int32_t v) {
  const ProtobufCFieldDescriptor *f = field_named(m->descriptor, name);

  if (f != NULL)
    *(int32_t *)MEMBER(m, f->offset) = v;
}

static int fieldmask_from_json(jctx *c, ProtobufCMessage *m, json_t *v) {
  const ProtobufCFieldDescriptor *f = field_named(m->descriptor, "paths");
  const char *s, *p;
  size_t n = 1, *np;
  char **arr;

  if (!json_is_string(v))
    return BAD(c, "%s: expected a string", m->descriptor->name);
  if (f == NULL)
    return BAD(c, "%s: no paths field", m->descriptor->name);
  s = json_string_value(v);
  if (*s == '\0')
    return TRI_OK;
  for (p = s; *p; p++)
    n += *p == ',';
  arr = tri__calloc(n, sizeof(char *));
  if (arr == NULL)
    return jfail(c, TRI_ENOMEM, "out of memory");
  *(char ***)MEMBER(m, f->offset) = arr;
  np = MEMBER(m, f->quantifier_offset);
  for (p = s;;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p), k, o = 0, up = 0;
    char *path;

    for (k = 0; k < len; k++)
      up += p[k] >= 'A' && p[k] <= 'Z';
    path = tri__malloc(len + up + 1);
    if (path == NULL)
      return jfail(c, TRI_ENOMEM, "out of memory");
    arr[(*np)++] = path;
    for (k = 0; k < len; k++) {
      if (p[k] == '_')
        return BAD(c, "%s: path \"%.*s\" is not lowerCamelCase",
                   m->descriptor->name, (int)len, p);
      if (p[k] >= 'A' && p[k] <= 'Z') {
        path[o++] = '_';
        path[o++] = (char)(p[k] + 32);
      } else {
        path[o++] = p[k];
      }
    }
    path[o] = '\0';
    if (e == NULL)
      break;
    p = e + 1;
  }
  return TRI_OK;
}

static int value_msg_from_json(jctx *c, ProtobufCMessage *m, json_t *v) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *which;
  const ProtobufCFieldDescriptor *f;

  switch (json_typeof(v)) {
  case JSON_NULL:
    which = "null_value";
    break;
  case JSON_TRUE:
  case JSON_FALSE:
    which = "bool_value";
    break;
  case JSON_INTEGER:
  case JSON_REAL:
    which = "number_value";
    break;
  case JSON_STRING:
    which = "string_value";
    break;
  case JSON_OBJECT:
    which = "struct_value";
    break;
  case JSON_ARRAY:
  default:
    which = "list_value";
    break;
  }
  f = field_named(d, which);
  if (f == NULL)
    return BAD(c, "%s: no field %s", d->name, which);
  return field_from_json(c, m, f, v);
}

static int msg_from_json(jctx *c, const ProtobufCMessageDescriptor *d,
                         json_t *v, ProtobufCMessage **out) {
  ProtobufCMessage *m;
  const char *key;
  json_t *val;
  unsigned char *seen = NULL;
  int st = TRI_OK, kind;

  if (c->depth >= TRI__JSON_MAX_DEPTH)
    return BAD(c, "%s: messages nested deeper than %d", d->name,
               TRI__JSON_MAX_DEPTH);
  m = tri__calloc(1, d->sizeof_message);
  if (m == NULL)
    return jfail(c, TRI_ENOMEM, "out of memory");
  d->message_init(m);
  *out = m; /* the caller's message owns it from here on */
  c->depth++;
  kind = wkt_kind(d);
  switch (kind) {
  case WKT_TIMESTAMP:
  case WKT_DURATION: {
    int64_t secs = 0;
    int nanos = 0;
    int bad;

    if (!json_is_string(v)) {
      st = BAD(c, "%s: expected a string", d->name);
      break;
    }
    bad = kind == WKT_TIMESTAMP
              ? parse_timestamp(json_string_value(v), &secs, &nanos)
              : parse_duration(json_string_value(v), &secs, &nanos);
    if (bad) {
      st = BAD(c, "%s: \"%s\" is not a valid %s", d->name,
               json_string_value(v),
               kind == WKT_TIMESTAMP
                   ? "RFC 3339 time between years 1 and 9999"
                   : "duration (\"1.5s\", at most 315576000000 s)");
      break;
    }
    set_i64_field(m, "seconds", secs);
    set_i32_field(m, "nanos", nanos);
    break;
  }
  case WKT_WRAPPER:
    if (d->n_fields != 1 || json_is_null(v))
      st = BAD(c, "%s: expected a value", d->name);
    else
      st = field_from_json(c, m, &d->fields[0], v);
    break;
  case WKT_STRUCT:
    if (!json_is_object(v) || field_named(d, "fields") == NULL)
      st = BAD(c, "%s: expected an object", d->name);
    else
      st = field_from_json(c, m, field_named(d, "fields"), v);
    break;
  case WKT_LIST:
    if (!json_is_array(v) || field_named(d, "values") == NULL)
      st = BAD(c, "%s: expected an array", d->name);
    else
      st = field_from_json(c, m, field_named(d, "values"), v);
    break;
  case WKT_VALUE:
    st = value_msg_from_json(c, m, v);
    break;
  case WKT_FIELDMASK:
    st = fieldmask_from_json(c, m, v);
    break;
  case WKT_ANY:
    st = BAD(c, "google.protobuf.Any is not supported in JSON (no type "
                "registry)");
    break;
  default:
    if (!json_is_object(v)) {
      st = BAD(c, "%s: expected a JSON object", d->name);
      break;
    }
    seen = tri__calloc(d->n_fields ? d->n_fields : 1, 1);
    if (seen == NULL) {
      st = jfail(c, TRI_ENOMEM, "out of memory");
      break;
    }
    json_object_foreach(v, key, val) {
      const ProtobufCFieldDescriptor *f = field_by_json_key(d, key);
      size_t idx;

      if (f == NULL) {
        st = BAD(c, "unknown field \"%s\" in %s", key, d->name);
        break;
      }
      idx = (size_t)(f - d->fields);
      if (seen[idx]) {
        st = BAD(c, "field \"%s\" of %s given twice", f->name, d->name);
        break;
      }
      seen[idx] = 1;
      if (json_is_null(val) && !is_value_msg(f) && !is_null_value_enum(f))
        continue; /* null: the default */
      st = field_from_json(c, m, f, val);
      if (st != TRI_OK)
        break;
    }
    tri__free(seen);
    break;
  }
  c->depth--;
  return st;
}

int tri__json_to_pb(const ProtobufCMessageDescriptor *d, const char *json,
                    size_t len, uint8_t **out, size_t *out_len, char *err,
                    size_t errlen) {
  jctx c = {err, errlen, 0};
  json_error_t je;
  json_t *root, *v;
  ProtobufCMessage *m = NULL;
  size_t i, n;
  int st;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (d == NULL || out == NULL || out_len == NULL ||
      (json == NULL && len > 0))
    return jfail(&c, TRI_INVALID_ARGUMENT, "bad arguments");
  *out = NULL;
  *out_len = 0;
  /* An empty body is the empty message. */
  for (i = 0; i < len; i++)
    if (json[i] != ' ' && json[i] != '\t' && json[i] != '\r' &&
        json[i] != '\n')
      break;
  if (i == len) {
    root = json_object();
  } else if (!text_depth_ok(json, len)) {
    return BAD(&c, "invalid JSON: nested deeper than %d arrays/objects",
               TRI__JSON_MAX_TEXT_DEPTH);
  } else {
    root = json_loadb(json, len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                          JSON_ALLOW_NUL,
                      &je);
    if (root == NULL)
      return BAD(&c, "invalid JSON at line %d column %d: %s", je.line,
                 je.column, je.text);
  }
  if (root == NULL)
    return jfail(&c, TRI_ENOMEM, "out of memory");
  v = root;
  /* Triple's application/json request form: the arguments as an array. */
  if (json_is_array(root) && wkt_kind(d) != WKT_LIST &&
      wkt_kind(d) != WKT_VALUE) {
    if (json_array_size(root) != 1) {
      size_t n_el = json_array_size(root);

      json_decref(root);
      return BAD(&c, "a JSON array body must hold exactly one message, not "
                     "%zu",
                 n_el);
    }
    v = json_array_get(root, 0);
  }
  st = msg_from_json(&c, d, v, &m);
  json_decref(root);
  if (st == TRI_OK) {
    n = protobuf_c_message_get_packed_size(m);
    *out = tri__malloc(n);
    if (*out == NULL) {
      st = jfail(&c, TRI_ENOMEM, "out of memory");
    } else {
      *out_len = protobuf_c_message_pack(m, *out);
    }
  }
  if (m != NULL)
    protobuf_c_message_free_unpacked(m, NULL);
  return st;
}

/* ======================= protobuf -> JSON ======================= */

static int msg_to_json(jctx *c, const ProtobufCMessage *m, json_t **out);

static json_t *real_to_json(double dv) {
  if (isnan(dv))
    return json_string("NaN");
  if (isinf(dv))
    return json_string(dv > 0 ? "Infinity" : "-Infinity");
  return json_real(dv);
}

static int b64_to_json(jctx *c, const ProtobufCBinaryData *b, json_t **out) {
  size_t n = tri__b64_encoded_len(b->len), o;
  char *s = tri__malloc(n + 3);

  if (s == NULL)
    return jfail(c, TRI_ENOMEM, "out of memory");
  o = tri__b64_encode(b->data, b->len, s);
  while (o % 4 != 0)
    s[o++] = '=';
  *out = json_stringn(s, o);
  tri__free(s);
  return *out ? TRI_OK : jfail(c, TRI_ENOMEM, "out of memory");
}

static int value_to_json(jctx *c, const ProtobufCFieldDescriptor *f,
                         const void *slot, json_t **out) {
  char buf[32];

  *out = NULL;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *out = json_integer(*(const int32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *out = json_integer(*(const uint32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)slot);
    *out = json_string(buf);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    snprintf(buf, sizeof buf, "%llu",
             (unsigned long long)*(const uint64_t *)slot);
    *out = json_string(buf);
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    *out = real_to_json(*(const float *)slot);
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    *out = real_to_json(*(const double *)slot);
    break;
  case PROTOBUF_C_TYPE_BOOL:
    *out = json_boolean(*(const protobuf_c_boolean *)slot);
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumValue *ev;
    int x = *(const int *)slot;

    if (is_null_value_enum(f)) {
      *out = json_null();
      break;
    }
    ev = protobuf_c_enum_descriptor_get_value(f->descriptor, x);
    *out = ev ? json_string(ev->name) : json_integer(x);
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)slot;

    *out = json_string(s ? s : "");
    if (*out == NULL)
      return jfail(c, TRI_INTERNAL, "field %s: string is not valid UTF-8",
                   f->name);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES:
    return b64_to_json(c, (const ProtobufCBinaryData *)slot, out);
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sm = *(ProtobufCMessage *const *)slot;

    if (sm == NULL) { /* a map entry without a value: the empty message */
      ProtobufCMessage *e;
      const ProtobufCMessageDescriptor *sd = f->descriptor;
      int st;

      e = tri__calloc(1, sd->sizeof_message);
      if (e == NULL)
        return jfail(c, TRI_ENOMEM, "out of memory");
      sd->message_init(e);
      st = msg_to_json(c, e, out);
      protobuf_c_message_free_unpacked(e, NULL);
      return st;
    }
    return msg_to_json(c, sm, out);
  }
  default:
    return jfail(c, TRI_INTERNAL, "field %s: unsupported type", f->name);
  }
  return *out ? TRI_OK : jfail(c, TRI_ENOMEM, "out of memory");
}

/* Map entries -> JSON object (keys as strings; later duplicates win). */
static int map_to_json(jctx *c, const ProtobufCFieldDescriptor *f,
                       ProtobufCMessage *const *arr, size_t n, json_t *obj) {
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
  size_t i;
  int st;

  for (i = 0; i < n; i++) {
    const ProtobufCMessage *e = arr[i];
    const void *k = CMEMBER(e, kf->offset);
    char buf[32];
    const char *key = buf;
    json_t *jv;

    switch (kf->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      snprintf(buf, sizeof buf, "%d", (int)*(const int32_t *)k);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      snprintf(buf, sizeof buf, "%u", (unsigned)*(const uint32_t *)k);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)k);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      snprintf(buf, sizeof buf, "%llu",
               (unsigned long long)*(const uint64_t *)k);
      break;
    case PROTOBUF_C_TYPE_BOOL:
      key = *(const protobuf_c_boolean *)k ? "true" : "false";
      break;
    case PROTOBUF_C_TYPE_STRING:
      key = *(char *const *)k ? *(char *const *)k : "";
      break;
    default:
      return jfail(c, TRI_INTERNAL, "field %s: unsupported map key type",
                   f->name);
    }
    st = value_to_json(c, vf, CMEMBER(e, vf->offset), &jv);
    if (st != TRI_OK)
      return st;
    if (json_object_set_new(obj, key, jv) != 0)
      return jfail(c, TRI_INTERNAL, "field %s: map key is not valid UTF-8",
                   f->name);
  }
  return TRI_OK;
}

/* Is singular field |f| of |m| present (to be printed)? */
static int field_present(const ProtobufCMessage *m,
                         const ProtobufCFieldDescriptor *f) {
  const void *slot = CMEMBER(m, f->offset);

  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    return *(const uint32_t *)CMEMBER(m, f->quantifier_offset) == f->id;
  if (f->label == PROTOBUF_C_LABEL_REQUIRED)
    return 1;
  if (f->type == PROTOBUF_C_TYPE_MESSAGE)
    return *(void *const *)slot != NULL;
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
    if (f->type == PROTOBUF_C_TYPE_STRING)
      return *(char *const *)slot != NULL &&
             *(char *const *)slot != f->default_value;
    return *(const protobuf_c_boolean *)CMEMBER(m, f->quantifier_offset);
  }
  /* proto3 implicit presence: the default value is not printed. */
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return *(const uint32_t *)slot != 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return *(const uint64_t *)slot != 0;
  case PROTOBUF_C_TYPE_FLOAT:
    return *(const float *)slot != 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    return *(const double *)slot != 0;
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)slot != 0;
  case PROTOBUF_C_TYPE_ENUM:
    return *(const int *)slot != 0;
  case PROTOBUF_C_TYPE_STRING:
    return *(char *const *)slot != NULL && **(char *const *)slot != '\0';
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)slot)->len != 0;
  default:
    return 0;
  }
}

/* Fraction of |nanos| (0..999999999) with 0, 3, 6 or 9 digits. */
static void frac_str(int nanos, char *buf, size_t n) {
  if (nanos == 0)
    buf[0] = '\0';
  else if (nanos % 1000000 == 0)
    snprintf(buf, n, ".%03d", nanos / 1000000);
  else if (nanos % 1000 == 0)
    snprintf(buf, n, ".%06d", nanos / 1000);
  else
    snprintf(buf, n, ".%09d", nanos);
}

static int64_t get_i64_field(const ProtobufCMessage *m, const char *name) {
  const ProtobufCFieldDescriptor *f = field_named(m->descriptor, name);

  return f ? *(const int64_t *)CMEMBER(m, f->offset) : 0;
}

static int32_t get_i32_field(const ProtobufCMessage *m, const char *name) {
  const ProtobufCFieldDescriptor *f = field_named(m->descriptor, name);

  return f ? *(const int32_t *)CMEMBER(m, f->offset) : 0;
}

static int fields_to_json(jctx *c, const ProtobufCMessage *m, json_t *obj) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  unsigned i;
  int st;

  for (i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    char name[256];
    json_t *jv = NULL;

    json_name(f->name, name, sizeof name);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)CMEMBER(m, f->quantifier_offset), k;
      const char *arr = *(char *const *)CMEMBER(m, f->offset);
      size_t esz = elem_size(f->type);

      if (n == 0)
        continue;
      if (is_map_field(f)) {
        jv = json_object();
        if (jv == NULL)
          return jfail(c, TRI_ENOMEM, "out of memory");
        st = map_to_json(c, f, (ProtobufCMessage *const *)(const void *)arr,
                         n, jv);
      } else {
        jv = json_array();
        if (jv == NULL)
          return jfail(c, TRI_ENOMEM, "out of memory");
        st = TRI_OK;
        for (k = 0; k < n && st == TRI_OK; k++) {
          json_t *e;

          st = value_to_json(c, f, arr + k * esz, &e);
          if (st == TRI_OK && json_array_append_new(jv, e) != 0)
            st = jfail(c, TRI_ENOMEM, "out of memory");
        }
      }
    } else {
      if (!field_present(m, f))
        continue;
      st = value_to_json(c, f, CMEMBER(m, f->offset), &jv);
    }
    if (st != TRI_OK) {
      json_decref(jv);
      return st;
    }
    if (json_object_set_new(obj, name, jv) != 0)
      return jfail(c, TRI_ENOMEM, "out of memory");
  }
  return TRI_OK;
}

static int msg_to_json(jctx *c, const ProtobufCMessage *m, json_t **out) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  char buf[80], frac[16];
  int st = TRI_OK;

  *out = NULL;
  if (c->depth >= TRI__JSON_MAX_DEPTH)
    return jfail(c, TRI_INTERNAL, "%s: messages nested deeper than %d",
                 d->name, TRI__JSON_MAX_DEPTH);
  c->depth++;
  switch (wkt_kind(d)) {
  case WKT_TIMESTAMP: {
    int64_t secs = get_i64_field(m, "seconds"), y, days;
    int32_t nanos = get_i32_field(m, "nanos");
    unsigned mo, dd, sod;

    if (secs < TS_MIN_SECONDS || secs > TS_MAX_SECONDS || nanos < 0 ||
        nanos > 999999999) {
      st = jfail(c, TRI_INTERNAL,
                 "%s out of range: seconds %lld nanos %d", d->name,
                 (long long)secs, (int)nanos);
      break;
    }
    days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    sod = (unsigned)(secs - days * 86400);
    civil_from_days(days, &y, &mo, &dd);
    frac_str(nanos, frac, sizeof frac);
    snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02u:%02u:%02u%sZ", (int)y, mo,
             dd, sod / 3600, sod / 60 % 60, sod % 60, frac);
    *out = json_string(buf);
    break;
  }
  case WKT_DURATION: {
    int64_t secs = get_i64_field(m, "seconds");
    int32_t nanos = get_i32_field(m, "nanos");

    if (secs < -DUR_MAX_SECONDS || secs > DUR_MAX_SECONDS ||
        nanos < -999999999 || nanos > 999999999 ||
        (secs > 0 && nanos < 0) || (secs < 0 && nanos > 0)) {
      st = jfail(c, TRI_INTERNAL,
                 "%s out of range: seconds %lld nanos %d", d->name,
                 (long long)secs, (int)nanos);
      break;
    }
    frac_str(nanos < 0 ? -nanos : nanos, frac, sizeof frac);
    snprintf(buf, sizeof buf, "%s%lld%ss",
             (secs < 0 || nanos < 0) ? "-" : "",
             (long long)(secs < 0 ? -secs : secs), frac);
    *out = json_string(buf);
    break;
  }
  case WKT_WRAPPER:
    if (d->n_fields != 1) {
      st = jfail(c, TRI_INTERNAL, "%s: unexpected shape", d->name);
      break;
    }
    st = value_to_json(c, &d->fields[0], CMEMBER(m, d->fields[0].offset),
                       out);
    break;
  case WKT_STRUCT:
  case WKT_LIST: {
    const ProtobufCFieldDescriptor *f =
        field_named(d, wkt_kind(d) == WKT_STRUCT ? "fields" : "values");
    json_t *tmp = json_object();

    if (tmp == NULL) {
      st = jfail(c, TRI_ENOMEM, "out of memory");
      break;
    }
    if (f == NULL) {
      json_decref(tmp);
      st = jfail(c, TRI_INTERNAL, "%s: unexpected shape", d->name);
      break;
    }
    st = fields_to_json(c, m, tmp);
    if (st == TRI_OK) {
      char name[64];

      json_name(f->name, name, sizeof name);
      *out = json_incref(json_object_get(tmp, name));
      if (*out == NULL)
        *out = wkt_kind(d) == WKT_STRUCT ? json_object() : json_array();
    }
    json_decref(tmp);
    break;
  }
  case WKT_VALUE: {
    unsigned i;
    const ProtobufCFieldDescriptor *set = NULL;

    for (i = 0; i < d->n_fields; i++)
      if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
          field_present(m, &d->fields[i]))
        set = &d->fields[i];
    if (set == NULL) {
      st = jfail(c, TRI_INTERNAL, "%s: none of its kinds is set", d->name);
      break;
    }
    if (set->type == PROTOBUF_C_TYPE_DOUBLE &&
        !isfinite(*(const double *)CMEMBER(m, set->offset))) {
      st = jfail(c, TRI_INTERNAL, "%s: number_value is not finite",
                 d->name);
      break;
    }
    st = value_to_json(c, set, CMEMBER(m, set->offset), out);
    break;
  }
  case WKT_FIELDMASK: {
    const ProtobufCFieldDescriptor *f = field_named(d, "paths");
    size_t n = f ? *(const size_t *)CMEMBER(m, f->quantifier_offset) : 0, k,
           total = 1;
    char *const *paths = f ? *(char **const *)CMEMBER(m, f->offset) : NULL;
    char *s, *o;

    for (k = 0; k < n; k++)
      total += strlen(paths[k]) + 1;
    s = o = tri__malloc(total);
    if (s == NULL) {
      st = jfail(c, TRI_ENOMEM, "out of memory");
      break;
    }
    for (k = 0; k < n; k++) {
      if (k > 0)
        *o++ = ',';
      json_name(paths[k], o, total - (size_t)(o - s));
      o += strlen(o);
    }
    *o = '\0';
    *out = json_string(s);
    tri__free(s);
    if (*out == NULL)
      st = jfail(c, TRI_INTERNAL, "%s: path is not valid UTF-8", d->name);
    break;
  }
  case WKT_ANY:
    st = jfail(c, TRI_INTERNAL,
               "google.protobuf.Any is not supported in JSON (no type "
               "registry)");
    break;
  default:
    *out = json_object();
    if (*out == NULL) {
      st = jfail(c, TRI_ENOMEM, "out of memory");
      break;
    }
    st = fields_to_json(c, m, *out);
    break;
  }
  c->depth--;
  if (st == TRI_OK && *out == NULL)
    st = jfail(c, TRI_ENOMEM, "out of memory");
  if (st != TRI_OK) {
    json_decref(*out);
    *out = NULL;
  }
  return st;
}

int tri__pb_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *pb,
                    size_t len, char **out, size_t *out_len, char *err,
                    size_t errlen) {
  jctx c = {err, errlen, 0};
  static const uint8_t empty[1] = {0};
  ProtobufCMessage *m;
  json_t *root = NULL;
  char *txt;
  int st;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (d == NULL || out == NULL || out_len == NULL || (pb == NULL && len > 0))
    return jfail(&c, TRI_INTERNAL, "bad arguments");
  *out = NULL;
  *out_len = 0;
  m = protobuf_c_message_unpack(d, NULL, len, pb ? pb : empty);
  if (m == NULL)
    return jfail(&c, TRI_INTERNAL, "cannot parse %zu bytes as %s", len,
                 d->name);
  st = msg_to_json(&c, m, &root);
  protobuf_c_message_free_unpacked(m, NULL);
  if (st != TRI_OK)
    return st;
  txt = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER |
                             JSON_ENCODE_ANY);
  json_decref(root);
  if (txt == NULL)
    return jfail(&c, TRI_ENOMEM, "out of memory");
  *out_len = strlen(txt);
  *out = tri__malloc(*out_len + 1);
  if (*out == NULL) {
    free(txt);
    *out_len = 0;
    return jfail(&c, TRI_ENOMEM, "out of memory");
  }
  memcpy(*out, txt, *out_len + 1);
  free(txt);
  return TRI_OK;
}

/* ---- Triple error bodies ---- */

/* Connect-style code names (Triple's error body), gRPC's upper-case names
 * too; the index is the code. */
static int code_from_name(const char *n) {
  static const char *const names[] = {
      "ok",          "canceled",           "unknown",
      "invalid_argument", "deadline_exceeded", "not_found",
      "already_exists",   "permission_denied", "resource_exhausted",
      "failed_precondition", "aborted",        "out_of_range",
      "unimplemented",    "internal",          "unavailable",
      "data_loss",        "unauthenticated"};
  size_t i;

  if (strcasecmp(n, "cancelled") == 0)
    return TRI_CANCELLED;
  for (i = 0; i < TRI__ARRAY_LEN(names); i++)
    if (strcasecmp(n, names[i]) == 0)
      return (int)i;
  return -1;
}

int tri__json_error_body(const char *body, size_t len, int *code,
                         char **msg) {
  json_t *root, *jc, *jm;
  int found = 0;

  *msg = NULL;
  if (!text_depth_ok(body, len))
    return 0; /* no error body of ours nests like that */
  root = json_loadb(body, len, 0, NULL);
  if (root == NULL)
    return 0;
  if (json_is_array(root) && json_array_size(root) == 1) {
    json_t *e = json_incref(json_array_get(root, 0));

    json_decref(root);
    root = e;
  }
  if (json_is_object(root)) {
    jc = json_object_get(root, "code");
    if (jc == NULL || json_is_null(jc))
      jc = json_object_get(root, "status");
    if (json_is_string(jc)) {
      *code = code_from_name(json_string_value(jc));
      found = *code >= 0;
    } else if (json_is_integer(jc)) {
      json_int_t v = json_integer_value(jc);

      *code = v >= 0 && v <= 16 ? (int)v : -1; /* the caller decides */
      found = 1;
    }
    jm = json_object_get(root, "message");
    if (found && json_is_string(jm))
      *msg = tri__strdup(json_string_value(jm));
  }
  json_decref(root);
  return found;
}

#else /* !HAVE_JANSSON */

int tri__json_to_pb(const ProtobufCMessageDescriptor *d, const char *json,
                    size_t len, uint8_t **out, size_t *out_len, char *err,
                    size_t errlen) {
  (void)d;
  (void)json;
  (void)len;
  if (out != NULL)
    *out = NULL;
  if (out_len != NULL)
    *out_len = 0;
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "JSON codec not built in (configure "
                          "--with-jansson)");
  return TRI_UNIMPLEMENTED;
}

int tri__pb_to_json(const ProtobufCMessageDescriptor *d, const uint8_t *pb,
                    size_t len, char **out, size_t *out_len, char *err,
                    size_t errlen) {
  (void)d;
  (void)pb;
  (void)len;
  if (out != NULL)
    *out = NULL;
  if (out_len != NULL)
    *out_len = 0;
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "JSON codec not built in (configure "
                          "--with-jansson)");
  return TRI_UNIMPLEMENTED;
}

int tri__json_error_body(const char *body, size_t len, int *code,
                         char **msg) {
  (void)body;
  (void)len;
  (void)code;
  *msg = NULL;
  return 0; /* nothing is decoded without jansson */
}

#endif /* HAVE_JANSSON */
