/*
 * Emit NAME.tri.h / NAME.tri.c for one .proto file (pure: strings in,
 * strings out).
 *
 * Per service S in package p (C names as protobuf-c spells them: type
 * prefix P__S, function prefix p__s, macro prefix P__S), per method M
 * (function infix m = CamelToLower(M)):
 *
 *   client   unary             p__s__m__call()
 *            server-streaming  P__S__M_Client + open(req) / recv / cancel / free
 *            client-streaming  P__S__M_Client + open / send / close_and_recv /
 *                              cancel / free
 *            bidi              P__S__M_Client + open / send / recv / close_send /
 *                              cancel / free
 *   server   P__S__M_Server (streaming kinds) + server_send / server_recv,
 *            the handler table P__S_Handlers, p__s__tri_register()
 *   paths    P__S__M__PATH
 *
 * protoc-c already defines p__s__m() (its closure-style caller), p__s__init
 * and p__s__descriptor, so every name here has a suffix those cannot have;
 * emit_file() still checks the whole set for collisions and reports them
 * as an error rather than emitting code that does not compile.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"

typedef Google__Protobuf__ServiceDescriptorProto svc_proto;
typedef Google__Protobuf__MethodDescriptorProto method_proto;
typedef Google__Protobuf__DescriptorProto msg_proto;

/* FileDescriptorProto field numbers used in SourceCodeInfo paths. */
#define FILE_SERVICE_FIELD 6
#define SERVICE_METHOD_FIELD 2

enum { KIND_UNARY, KIND_SERVER_STREAM, KIND_CLIENT_STREAM, KIND_BIDI };

typedef struct cg_type {
  char *c;     /* Pkg__Msg */
  char *lower; /* pkg__msg */
  int nested;  /* protobuf-c makes __free_unpacked() for top-level only */
} cg_type;

typedef struct cg_method {
  const method_proto *d;
  int kind;
  int deprecated;
  int idempotency; /* MethodOptions.IdempotencyLevel, 0 = unknown */
  const char *comment;
  char *lower;  /* function infix */
  char *member; /* handler table member */
  char *camel;  /* type infix */
  char *upper;  /* macro infix */
  char *path;   /* "/pkg.Svc/Method" */
  cg_type in;
  cg_type out;
} cg_method;

typedef struct cg_service {
  const svc_proto *d;
  int deprecated;
  const char *comment;
  char *full;  /* "pkg.Svc" (wire name) */
  char *c;     /* type prefix */
  char *lower; /* function prefix */
  char *upper; /* macro prefix */
  cg_method *m;
  size_t n;
} cg_service;

typedef struct gen {
  const cg_request *req;
  const cg_file *file;
  cg_pool pool;
  cg_service *svc;
  size_t n_svc;
  sbuf err;
  /* Global names this file defines, plus protoc-c's own, for the
   * collision check. */
  const char **names;
  size_t n_names;
  size_t cap_names;
  int need_fail;     /* tri_gen_fail() is used */
  int need_recv_one; /* tri_gen_recv_one() is used */
} gen;

/* ------------------------------------------------------------------ */
/* Descriptor look-ups                                                 */
/* ------------------------------------------------------------------ */

static const char *
file_package(const cg_file *f)
{
  return f->package ? f->package : "";
}

/* Read a base-128 varint from [*p, end); -1 when truncated. */
static int
read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  unsigned shift = 0;

  *v = 0;
  while (*p < end && shift < 64) {
    uint8_t byte = *(*p)++;

    *v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80))
      return 0;
    shift += 7;
  }
  return -1;
}

/*
 * protobuf-c's file option (pb_c_file).c_package: extension 1019 of
 * FileOptions holding ProtobufCFileOptions, whose field 6 is c_package.
 * protoc passes it on as bytes we have no descriptor for, so it arrives
 * as an unknown field and is decoded by hand.  Returns a pool string or
 * NULL when unset.
 */
static char *
file_c_package(gen *g, const cg_file *f)
{
  const ProtobufCMessage *opts;
  unsigned i;

  if (f->options == NULL)
    return NULL;
  opts = &f->options->base;
  for (i = 0; i < opts->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &opts->unknown_fields[i];
    const uint8_t *p = u->data, *end = u->data + u->len;
    char *found = NULL;

    uint64_t body;

    if (u->tag != 1019 || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
      continue;
    /* protobuf-c keeps the field's length prefix in data. */
    if (read_varint(&p, end, &body) < 0 || body > (uint64_t)(end - p))
      continue;
    end = p + body;
    while (p < end) {
      uint64_t key, v;

      if (read_varint(&p, end, &key) < 0)
        break;
      switch (key & 7) {
      case 0:
        if (read_varint(&p, end, &v) < 0)
          p = end;
        break;
      case 1:
        p = (end - p >= 8) ? p + 8 : end;
        break;
      case 5:
        p = (end - p >= 4) ? p + 4 : end;
        break;
      case 2:
        if (read_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p)) {
          p = end;
          break;
        }
        if ((key >> 3) == 6) {
          found = xmalloc((size_t)v + 1);
          memcpy(found, p, (size_t)v);
          found[v] = '\0';
          pool_keep(&g->pool, found);
        }
        p += v;
        break;
      default:
        p = end;
        break;
      }
    }
    if (found != NULL && found[0] != '\0')
      return found;
  }
  return NULL;
}

/* Find message |rel| ("Outer.Inner") among |msgs|. */
static int
has_message(msg_proto *const *msgs, size_t n, const char *rel)
{
  const char *dot = strchr(rel, '.');
  size_t len = dot ? (size_t)(dot - rel) : strlen(rel);
  size_t i;

  for (i = 0; i < n; i++) {
    const char *name = msgs[i]->name ? msgs[i]->name : "";

    if (strlen(name) != len || strncmp(name, rel, len) != 0)
      continue;
    if (dot == NULL)
      return 1;
    if (has_message(msgs[i]->nested_type, msgs[i]->n_nested_type, dot + 1))
      return 1;
  }
  return 0;
}

/*
 * C names of the message type |full| (".pkg.Outer.Inner" as protoc writes
 * method input/output types): found in whichever file of the request
 * defines it, so that file's c_package applies, as in protoc-c.
 */
static int
resolve_type(gen *g, const char *full, cg_type *t)
{
  size_t i;

  if (full == NULL || full[0] != '.') {
    sb_printf(&g->err, "unexpected type name \"%s\"", full ? full : "");
    return -1;
  }
  for (i = 0; i < g->req->n_proto_file; i++) {
    const cg_file *f = g->req->proto_file[i];
    const char *pkg = file_package(f);
    size_t plen = strlen(pkg);
    const char *rel;
    char *cpkg, *qualified;

    if (plen > 0) {
      if (strncmp(full + 1, pkg, plen) != 0 || full[1 + plen] != '.')
        continue;
      rel = full + 2 + plen;
    } else {
      rel = full + 1;
    }
    if (!has_message(f->message_type, f->n_message_type, rel))
      continue;
    cpkg = file_c_package(g, f);
    if (cpkg == NULL)
      cpkg = (char *)pkg;
    qualified = cpkg[0] ? pool_printf(&g->pool, "%s.%s", cpkg, rel)
                        : pool_printf(&g->pool, "%s", rel);
    t->c = full_name_to_c(&g->pool, qualified);
    t->lower = full_name_to_lower(&g->pool, qualified);
    t->nested = strchr(rel, '.') != NULL;
    return 0;
  }
  sb_printf(&g->err, "cannot find message type %s in the request", full);
  return -1;
}

/* Leading comment of the element at |path|, or NULL. */
static const char *
leading_comment(const cg_file *f, const int32_t *path, size_t n)
{
  size_t i;

  if (f->source_code_info == NULL)
    return NULL;
  for (i = 0; i < f->source_code_info->n_location; i++) {
    const Google__Protobuf__SourceCodeInfo__Location *loc =
      f->source_code_info->location[i];

    if (loc->n_path == n &&
        memcmp(loc->path, path, n * sizeof *path) == 0 &&
        loc->leading_comments != NULL && loc->leading_comments[0] != '\0')
      return loc->leading_comments;
  }
  return NULL;
}

static void
add_name(gen *g, const char *name)
{
  if (g->n_names == g->cap_names) {
    size_t cap = g->cap_names ? g->cap_names * 2 : 64;
    const char **v = xmalloc(cap * sizeof *v);

    if (g->n_names)
      memcpy(v, g->names, g->n_names * sizeof *v);
    free(g->names);
    g->names = v;
    g->cap_names = cap;
  }
  g->names[g->n_names++] = name;
}

static int
check_collisions(gen *g)
{
  size_t i, j;

  for (i = 0; i < g->n_names; i++)
    for (j = i + 1; j < g->n_names; j++)
      if (strcmp(g->names[i], g->names[j]) == 0) {
        sb_printf(&g->err,
                  "%s: generated name %s is defined twice (two methods whose "
                  "names differ only in case or '_', or a method name that "
                  "clashes with protoc-c's or this plugin's own names)",
                  g->file->name, g->names[i]);
        return -1;
      }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Model                                                               */
/* ------------------------------------------------------------------ */

static int
build_method(gen *g, cg_service *s, size_t si, size_t mi)
{
  const method_proto *d = s->d->method[mi];
  cg_method *m = &s->m[mi];
  int32_t path[4];
  size_t k;

  memset(m, 0, sizeof *m);
  m->d = d;
  if (d->name == NULL || d->name[0] == '\0') {
    sb_printf(&g->err, "%s: method without a name", s->full);
    return -1;
  }
  m->kind = d->client_streaming ? (d->server_streaming ? KIND_BIDI
                                                        : KIND_CLIENT_STREAM)
                                 : (d->server_streaming ? KIND_SERVER_STREAM
                                                        : KIND_UNARY);
  if (d->options != NULL) {
    m->deprecated = d->options->has_deprecated && d->options->deprecated;
    if (d->options->has_idempotency_level)
      m->idempotency = (int)d->options->idempotency_level;
  }
  path[0] = FILE_SERVICE_FIELD;
  path[1] = (int32_t)si;
  path[2] = SERVICE_METHOD_FIELD;
  path[3] = (int32_t)mi;
  m->comment = leading_comment(g->file, path, 4);
  m->lower = camel_to_lower(&g->pool, d->name);
  m->member = is_reserved_name(m->lower)
                ? pool_printf(&g->pool, "%s_", m->lower)
                : m->lower;
  m->camel = to_camel(&g->pool, d->name);
  m->upper = camel_to_upper(&g->pool, d->name);
  m->path = pool_printf(&g->pool, "/%s/%s", s->full, d->name);
  if (resolve_type(g, d->input_type, &m->in) < 0 ||
      resolve_type(g, d->output_type, &m->out) < 0)
    return -1;

  /* protoc-c's closure-style caller for this method. */
  add_name(g, pool_printf(&g->pool, "%s__%s", s->lower, m->lower));
  add_name(g, pool_printf(&g->pool, "%s__%s__PATH", s->upper, m->upper));
  /* Handler table members share one namespace. */
  add_name(g, pool_printf(&g->pool, "%s_Handlers.%s", s->c, m->member));
  add_name(g, pool_printf(&g->pool, "%s__%s__serve", s->lower, m->lower));
  g->need_fail |= m->kind != KIND_BIDI;
  g->need_recv_one |= m->kind == KIND_UNARY || m->kind == KIND_SERVER_STREAM;
  add_name(g, pool_printf(&g->pool, "%s__%s_Server", s->c, m->camel));
  if (m->kind == KIND_UNARY) {
    add_name(g, pool_printf(&g->pool, "%s__%s__call", s->lower, m->lower));
    return 0;
  }
  add_name(g, pool_printf(&g->pool, "%s__%s_Client", s->c, m->camel));
  {
    static const char *const verbs[] = {
      "open",  "send",       "recv",           "close_send",  "close_and_recv",
      "cancel", "free",      "server_send",    "server_recv",
    };

    for (k = 0; k < sizeof verbs / sizeof verbs[0]; k++)
      add_name(g, pool_printf(&g->pool, "%s__%s__%s", s->lower, m->lower,
                              verbs[k]));
  }
  return 0;
}

static int
build_model(gen *g)
{
  const cg_file *f = g->file;
  const char *pkg = file_package(f);
  char *cpkg = file_c_package(g, f);
  size_t i, j;

  g->n_svc = 0;
  g->svc = xmalloc((f->n_service ? f->n_service : 1) * sizeof *g->svc);
  if (cpkg == NULL)
    cpkg = (char *)pkg;
  for (i = 0; i < f->n_service; i++) {
    cg_service *s = &g->svc[i];
    const char *name = f->service[i]->name ? f->service[i]->name : "";
    char *cname;
    int32_t path[2];

    memset(s, 0, sizeof *s);
    g->n_svc = i + 1;
    s->d = f->service[i];
    s->full = pkg[0] ? pool_printf(&g->pool, "%s.%s", pkg, name)
                     : pool_printf(&g->pool, "%s", name);
    cname = cpkg[0] ? pool_printf(&g->pool, "%s.%s", cpkg, name)
                    : pool_printf(&g->pool, "%s", name);
    s->c = full_name_to_c(&g->pool, cname);
    s->lower = full_name_to_lower(&g->pool, cname);
    s->upper = full_name_to_upper(&g->pool, cname);
    s->deprecated = s->d->options != NULL && s->d->options->has_deprecated &&
                    s->d->options->deprecated;
    if (f->options != NULL && f->options->has_deprecated &&
        f->options->deprecated)
      s->deprecated = 1;
    path[0] = FILE_SERVICE_FIELD;
    path[1] = (int32_t)i;
    s->comment = leading_comment(f, path, 2);
    s->n = s->d->n_method;
    s->m = xmalloc((s->n ? s->n : 1) * sizeof *s->m);
    add_name(g, pool_printf(&g->pool, "%s__init", s->lower));
    add_name(g, pool_printf(&g->pool, "%s__descriptor", s->lower));
    add_name(g, pool_printf(&g->pool, "%s__tri_register", s->lower));
    add_name(g, pool_printf(&g->pool, "%s_Handlers", s->c));
    add_name(g, pool_printf(&g->pool, "%s_Handlers.release_response", s->c));
    for (j = 0; j < s->n; j++)
      if (build_method(g, s, i, j) < 0) {
        s->n = j;
        return -1;
      }
  }
  return check_collisions(g);
}

/* ------------------------------------------------------------------ */
/* Header                                                              */
/* ------------------------------------------------------------------ */

static const char *
kind_text(int kind)
{
  switch (kind) {
  case KIND_UNARY:
    return "unary";
  case KIND_SERVER_STREAM:
    return "server-streaming";
  case KIND_CLIENT_STREAM:
    return "client-streaming";
  default:
    return "bidirectional streaming";
  }
}

/* " PROTOBUF_C__DEPRECATED" (protobuf-c.h's attribute macro) or "". */
static const char *
depr_attr(const cg_service *s, const cg_method *m)
{
  return (s->deprecated || (m && m->deprecated)) ? " PROTOBUF_C__DEPRECATED"
                                                 : "";
}

/* How to free a |t| message held in *|var|, for doc comments.  Returns a
 * static buffer: use once per call. */
static const char *
free_hint(const cg_type *t, const char *var)
{
  static char buf[512];

  if (t->nested)
    snprintf(buf, sizeof buf,
             "protobuf_c_message_free_unpacked(&(*%s)->base, NULL)", var);
  else
    snprintf(buf, sizeof buf, "%s__free_unpacked(*%s, NULL)", t->lower, var);
  return buf;
}

/* The method's doc comment opening: proto comment, kind, path, options. */
static void
method_doc_head(sbuf *o, const cg_service *s, const cg_method *m,
                const char *what)
{
  sb_puts(o, "/**\n");
  sb_printf(o, " * %s: %s method %s (%s -> %s).\n", what,
            kind_text(m->kind), m->path, m->in.c, m->out.c);
  if (m->comment != NULL) {
    sb_puts(o, " *\n");
    put_comment_lines(o, m->comment);
  }
  if (m->deprecated || s->deprecated)
    sb_puts(o, " *\n * Deprecated: the .proto marks this method "
               "\"deprecated = true\".\n");
  if (m->idempotency == 1)
    sb_puts(o, " *\n * Idempotency: NO_SIDE_EFFECTS (safe to retry).\n");
  else if (m->idempotency == 2)
    sb_puts(o, " *\n * Idempotency: IDEMPOTENT (safe to retry).\n");
}

static void
emit_client_decls(sbuf *o, const cg_service *s, const cg_method *m)
{
  const char *dep = depr_attr(s, m);
  const char *p = s->lower, *n = m->lower;

  if (m->kind == KIND_UNARY) {
    method_doc_head(o, s, m, "Client");
    sb_puts(
      o,
      " *\n"
      " * Sends |req|, half-closes and waits for the one response\n"
      " * (tri_unary_call_msg()).\n"
      " *\n"
      " * Ownership: |req| is borrowed.  On TRI_OK *|resp| belongs to the\n");
    sb_printf(o,
              " *   caller: free it with %s.  If\n"
              " *   |stream_out| is not NULL it gets the finished stream "
              "whatever\n"
              " *   the outcome (status message, trailers; "
              "tri_stream_free() it).\n",
              free_hint(&m->out, "resp"));
    sb_puts(o,
            " * Thread safety: any thread.\n"
            " * Blocking: until the call ends; bounded by the deadline in "
            "|opts|.\n"
            " * Returns: TRI_OK; TRI_EINVAL (NULL |req| or |resp|); or the "
            "call's\n"
            " *   failing status, as tri_unary_call_msg().\n"
            " */\n");
    sb_printf(o,
              "int %s__%s__call(tri_channel *ch, const tri_call_opts *opts,\n"
              "    const %s *req, %s **resp,\n"
              "    tri_stream **stream_out)%s;\n\n",
              p, n, m->in.c, m->out.c, dep);
    return;
  }

  method_doc_head(o, s, m, "Client");
  sb_printf(o,
            " *\n"
            " * Open the call; |call| (caller's storage) gets the stream.\n");
  if (m->kind == KIND_SERVER_STREAM)
    sb_puts(o, " * Sends |req| and half-closes, then read the responses\n"
               " * with the recv function until it returns TRI_EOF.\n");
  sb_puts(o,
          " *\n"
          " * Ownership: call the free function on |call| afterwards, "
          "whatever\n"
          " *   this returns (call->stream is NULL when nothing was "
          "opened).\n"
          " *   |opts| is copied");
  sb_puts(o, m->kind == KIND_SERVER_STREAM ? "; |req| is borrowed.\n" : ".\n");
  sb_puts(o, " * Thread safety: any thread.\n"
             " * Returns: TRI_OK; TRI_EINVAL; as tri_stream_open()");
  sb_puts(o, m->kind == KIND_SERVER_STREAM ? " and tri_stream_send().\n"
                                           : ".\n");
  sb_puts(o, " */\n");
  sb_printf(o, "int %s__%s__open(tri_channel *ch, const tri_call_opts *opts,\n"
               "    ",
            p, n);
  if (m->kind == KIND_SERVER_STREAM)
    sb_printf(o, "const %s *req, ", m->in.c);
  sb_printf(o, "%s__%s_Client *call)%s;\n\n", s->c, m->camel, dep);

  if (m->kind == KIND_CLIENT_STREAM || m->kind == KIND_BIDI) {
    sb_printf(o,
              "/**\n"
              " * Send one request on a %s call (tri_stream_send_msg()).\n"
              " * Ownership: |msg| is borrowed.  Thread safety: one sender "
              "at a time.\n"
              " * Returns: as tri_stream_send().\n"
              " */\n"
              "int %s__%s__send(%s__%s_Client *call, const %s *msg);\n\n",
              m->path, p, n, s->c, m->camel, m->in.c);
  }
  if (m->kind == KIND_SERVER_STREAM || m->kind == KIND_BIDI) {
    sb_printf(o,
              "/**\n"
              " * Receive the next response of a %s call.\n"
              " * Ownership: on TRI_OK *|msg| belongs to the caller\n"
              " *   (%s).\n"
              " * Thread safety: one receiver at a time.\n"
              " * Blocking: up to |timeout_ms| (-1 = none).\n"
              " * Returns: TRI_OK; TRI_EOF when the server finished with "
              "status OK;\n"
              " *   as tri_stream_recv_msg().\n"
              " */\n"
              "int %s__%s__recv(%s__%s_Client *call, %s **msg, "
              "int timeout_ms);\n\n",
              m->path, free_hint(&m->out, "msg"), p, n, s->c, m->camel,
              m->out.c);
  }
  if (m->kind == KIND_BIDI) {
    sb_printf(o,
              "/** Half-close the %s call (tri_stream_close_send()). */\n"
              "int %s__%s__close_send(%s__%s_Client *call);\n\n",
              m->path, p, n, s->c, m->camel);
  }
  if (m->kind == KIND_CLIENT_STREAM) {
    sb_printf(o,
              "/**\n"
              " * Half-close the %s call and wait for its one response.\n"
              " * Ownership: on TRI_OK *|resp| belongs to the caller\n"
              " *   (%s).\n"
              " * Blocking: until the call ends (deadline from the call "
              "options).\n"
              " * Returns: TRI_OK; the call's failing status; "
              "TRI_UNIMPLEMENTED\n"
              " *   when the server sent no response or more than one.\n"
              " */\n"
              "int %s__%s__close_and_recv(%s__%s_Client *call, %s **resp);\n\n",
              m->path, free_hint(&m->out, "resp"), p, n, s->c, m->camel,
              m->out.c);
  }
  sb_printf(o,
            "/** Cancel the %s call (tri_stream_cancel()); any thread. */\n"
            "void %s__%s__cancel(%s__%s_Client *call);\n\n"
            "/**\n"
            " * Release the call's stream (cancelling it if still open) and "
            "set\n"
            " * call->stream to NULL.  NULL |call| and repeated calls are "
            "allowed.\n"
            " */\n"
            "void %s__%s__free(%s__%s_Client *call);\n\n",
            m->path, p, n, s->c, m->camel, p, n, s->c, m->camel);
}

static void
emit_server_decls(sbuf *o, const cg_service *s, const cg_method *m)
{
  const char *p = s->lower, *n = m->lower;

  if (m->kind == KIND_SERVER_STREAM || m->kind == KIND_BIDI) {
    sb_printf(o,
              "/**\n"
              " * Server: send one response on a %s call.\n"
              " * Ownership: |msg| is borrowed.  Thread safety: the "
              "handler's thread.\n"
              " * Returns: as tri_stream_send().\n"
              " */\n"
              "int %s__%s__server_send(%s__%s_Server *call, const %s *msg);\n\n",
              m->path, p, n, s->c, m->camel, m->out.c);
  }
  if (m->kind == KIND_CLIENT_STREAM || m->kind == KIND_BIDI) {
    sb_printf(o,
              "/**\n"
              " * Server: receive the next request of a %s call.\n"
              " * Ownership: on TRI_OK *|msg| belongs to the handler\n"
              " *   (%s).\n"
              " * Blocking: up to |timeout_ms| (-1 = none).\n"
              " * Returns: TRI_OK; TRI_EOF once the client half-closed; as\n"
              " *   tri_stream_recv_msg().\n"
              " */\n"
              "int %s__%s__server_recv(%s__%s_Server *call, %s **msg,\n"
              "    int timeout_ms);\n\n",
              m->path, free_hint(&m->in, "msg"), p, n, s->c, m->camel,
              m->in.c);
  }
}

static void
emit_handler_member(sbuf *o, const cg_service *s, const cg_method *m)
{
  sb_puts(o, "  /**\n");
  sb_printf(o, "   * %s (%s).\n", m->path, kind_text(m->kind));
  if (m->comment != NULL) {
    sbuf tmp = {0};
    const char *line;

    put_comment_lines(&tmp, m->comment);
    for (line = tmp.p; line && *line;) {
      const char *nl = strchr(line, '\n');

      sb_puts(o, "  ");
      while (line < nl)
        sb_putc(o, *line++);
      sb_putc(o, '\n');
      line = nl + 1;
    }
    sb_free(&tmp);
  }
  if (m->deprecated || s->deprecated)
    sb_puts(o, "   * Deprecated in the .proto.\n");
  switch (m->kind) {
  case KIND_UNARY:
    sb_puts(o, "   * Read call->req, fill call->resp and return TRI_OK to "
               "send it, or\n"
               "   * return a status (0..16).\n");
    break;
  case KIND_SERVER_STREAM:
    sb_puts(o, "   * Read call->req, send responses with the server_send "
               "function,\n"
               "   * return the status.\n");
    break;
  case KIND_CLIENT_STREAM:
    sb_puts(o, "   * Read requests with the server_recv function until "
               "TRI_EOF, fill\n"
               "   * call->resp and return TRI_OK to send it, or return a "
               "status.\n");
    break;
  default:
    sb_puts(o, "   * Use the server_recv and server_send functions; return "
               "the status.\n");
    break;
  }
  sb_puts(o, "   */\n");
  sb_printf(o, "  int (*%s)(%s__%s_Server *call, void *user_data);\n",
            m->member, s->c, m->camel);
}

static void
emit_service_header(sbuf *o, const cg_service *s)
{
  size_t i;
  int any_resp = 0;

  sb_puts(o, "/* ------------------------------------------------------------------ */\n");
  sb_printf(o, "/* Service %s */\n", s->full);
  sb_puts(o, "/* ------------------------------------------------------------------ */\n\n");
  if (s->comment != NULL || s->deprecated) {
    sb_puts(o, "/*\n");
    if (s->comment != NULL)
      put_comment_lines(o, s->comment);
    if (s->deprecated)
      sb_printf(o, "%s * Deprecated: the .proto marks service %s deprecated.\n",
                s->comment ? " *\n" : "", s->full);
    sb_puts(o, " */\n\n");
  }

  for (i = 0; i < s->n; i++)
    sb_printf(o, "#define %s__%s__PATH \"%s\"\n", s->upper, s->m[i].upper,
              s->m[i].path);
  sb_puts(o, "\n");

  for (i = 0; i < s->n; i++) {
    const cg_method *m = &s->m[i];
    int has_req = m->kind == KIND_UNARY || m->kind == KIND_SERVER_STREAM;
    int has_resp = m->kind == KIND_UNARY || m->kind == KIND_CLIENT_STREAM;

    if (m->kind != KIND_UNARY)
      sb_printf(o,
                "/** Client side of a %s call; open it with %s__%s__open(). "
                "*/\n"
                "typedef struct %s__%s_Client {\n"
                "  tri_stream *stream; /* for metadata and status; owned */\n"
                "} %s__%s_Client;\n\n",
                m->path, s->lower, m->lower, s->c, m->camel, s->c, m->camel);
    sb_printf(o,
              "/**\n"
              " * Server side of a %s call, given to its handler (every "
              "kind of\n"
              " * call gets one; the library owns it).\n"
              " */\n"
              "typedef struct %s__%s_Server {\n"
              "  tri_stream *stream; /* borrowed: valid while the handler "
              "runs */\n",
              m->path, s->c, m->camel);
    if (has_req)
      sb_printf(o,
                "  /* The request, decoded by the library; valid while the "
                "handler\n"
                "   * runs. */\n"
                "  const %s *req;\n",
                m->in.c);
    if (has_resp)
      sb_printf(o,
                "  /* The response, initialised empty (%s__init()): fill it "
                "and\n"
                "   * return TRI_OK to send it.  Its fields may point at "
                "static,\n"
                "   * stack or heap data: the library frees none of it "
                "(release_response\n"
                "   * in the handler table can free what the handler "
                "allocated, once\n"
                "   * it is sent).  A static reply can be copied in whole: "
                "call->resp =\n"
                "   * my_reply; */\n"
                "  %s resp;\n",
                m->out.lower, m->out.c);
    sb_printf(o, "} %s__%s_Server;\n\n", s->c, m->camel);
  }

  for (i = 0; i < s->n; i++)
    emit_client_decls(o, s, &s->m[i]);
  for (i = 0; i < s->n; i++)
    emit_server_decls(o, s, &s->m[i]);

  sb_printf(o,
            "/**\n"
            " * Handlers of service %s.  A NULL member leaves its method\n"
            " * unregistered (clients get UNIMPLEMENTED).  Every handler "
            "runs on a\n"
            " * server worker thread, concurrently with others, and gets "
            "the\n"
            " * |user_data| given to %s__tri_register().  It may call\n"
            " * tri_stream_finish() itself to send a status message; "
            "otherwise the\n"
            " * returned status (0..16) ends the call.\n"
            " */\n"
            "typedef struct %s_Handlers {\n",
            s->full, s->lower, s->c);
  for (i = 0; i < s->n; i++) {
    emit_handler_member(o, s, &s->m[i]);
    any_resp |= s->m[i].kind == KIND_UNARY ||
                s->m[i].kind == KIND_CLIENT_STREAM;
  }
  sb_puts(o,
          "  /**\n"
          "   * Optional.  Called with call->resp of a unary or "
          "client-streaming\n"
          "   * handler once it was sent (or not, on failure), so the "
          "handler can\n"
          "   * free what it allocated for it.  NULL: nothing to release "
          "(static\n"
          "   * or stack data, or memory the handler manages itself).\n"
          "   */\n"
          "  void (*release_response)(ProtobufCMessage *resp, void "
          "*user_data);\n");
  (void)any_resp;
  sb_printf(o, "} %s_Handlers;\n\n", s->c);

  sb_printf(o,
            "/**\n"
            " * Register every non-NULL handler of |impl| on |srv| under its "
            "path\n"
            " * (\"/%s/Method\").  Call before tri_server_start().\n"
            " *\n"
            " * Ownership: |impl| and |user_data| are kept and must outlive "
            "|srv|.\n"
            " *   One small binding record is allocated per method and "
            "freed by\n"
            " *   tri_server_free().\n"
            " * Thread safety: as tri_server_register().\n"
            " * Returns: TRI_OK; TRI_EINVAL (NULL |srv| or |impl|); "
            "TRI_ENOMEM; as\n"
            " *   tri_server_register() (methods before the failing one stay "
            "registered).\n"
            " */\n"
            "int %s__tri_register(tri_server *srv, const %s_Handlers *impl,\n"
            "    void *user_data);\n\n",
            s->full, s->lower, s->c);
}

static char *
emit_header(gen *g, const char *base)
{
  sbuf o = {0};
  size_t i;
  char *guard = guard_name(&g->pool, g->file->name, "__TRI_H");

  sb_printf(&o,
            "/* Generated by protoc-gen-triplestream %s from %s.  DO NOT "
            "EDIT. */\n\n"
            "#ifndef %s\n#define %s\n\n"
            "#include <triplestream/triplestream.h>\n"
            "#include <triplestream/protobuf.h>\n\n"
            "#include \"%s.pb-c.h\"\n\n"
            "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
            CG_VERSION, g->file->name, guard, guard, base);
  for (i = 0; i < g->n_svc; i++)
    emit_service_header(&o, &g->svc[i]);
  sb_printf(&o, "#ifdef __cplusplus\n}\n#endif\n\n#endif /* %s */\n", guard);
  return sb_take(&o);
}

/* ------------------------------------------------------------------ */
/* Source                                                              */
/* ------------------------------------------------------------------ */

static void
emit_helpers(sbuf *o, const gen *g)
{
  if (g->need_fail)
    sb_puts(o,
            "/* End a call with |code| and a message; returns |code|. */\n"
            "static int\n"
            "tri_gen_fail(tri_stream *s, int code, const char *message)\n"
            "{\n"
            "  (void)tri_stream_finish(s, code, message);\n"
            "  return code;\n"
            "}\n\n");
  if (!g->need_recv_one)
    return;
  sb_puts(o,
          "/*\n"
          " * The request of a unary or server-streaming call: exactly one\n"
          " * message, then the client's half-close (doc/PROTOCOL.md 5.4).\n"
          " */\n"
          "static int\n"
          "tri_gen_recv_one(tri_stream *s, const ProtobufCMessageDescriptor "
          "*desc,\n"
          "                 ProtobufCMessage **out)\n"
          "{\n"
          "  ProtobufCMessage *msg = NULL, *extra = NULL;\n"
          "  int rv;\n"
          "\n"
          "  rv = tri_stream_recv_msg(s, desc, &msg, -1);\n"
          "  if (rv == TRI_EOF)\n"
          "    return tri_gen_fail(s, TRI_UNIMPLEMENTED,\n"
          "                        \"expected one request message, got "
          "none\");\n"
          "  if (rv != TRI_OK)\n"
          "    return rv;\n"
          "  rv = tri_stream_recv_msg(s, desc, &extra, -1);\n"
          "  if (rv == TRI_EOF) {\n"
          "    *out = msg;\n"
          "    return TRI_OK;\n"
          "  }\n"
          "  protobuf_c_message_free_unpacked(msg, NULL);\n"
          "  if (rv != TRI_OK)\n"
          "    return rv;\n"
          "  protobuf_c_message_free_unpacked(extra, NULL);\n"
          "  return tri_gen_fail(s, TRI_UNIMPLEMENTED,\n"
          "                      \"expected one request message, got "
          "more\");\n"
          "}\n\n");
}

static void
emit_client_defs(sbuf *o, const cg_service *s, const cg_method *m)
{
  const char *p = s->lower, *n = m->lower, *C = s->c, *cm = m->camel;

  if (m->kind == KIND_UNARY) {
    sb_printf(o,
              "int\n"
              "%s__%s__call(tri_channel *ch, const tri_call_opts *opts,\n"
              "    const %s *req, %s **resp,\n"
              "    tri_stream **stream_out)\n"
              "{\n"
              "  ProtobufCMessage *out = NULL;\n"
              "  int rv;\n"
              "\n"
              "  if (req == NULL || resp == NULL) {\n"
              "    if (stream_out != NULL)\n"
              "      *stream_out = NULL;\n"
              "    return TRI_EINVAL;\n"
              "  }\n"
              "  rv = tri_unary_call_msg(ch, %s__%s__PATH, opts, &req->base,\n"
              "                          &%s__descriptor, &out, stream_out);\n"
              "  if (rv == TRI_OK)\n"
              "    *resp = (%s *)out;\n"
              "  return rv;\n"
              "}\n\n",
              p, n, m->in.c, m->out.c, s->upper, m->upper, m->out.lower,
              m->out.c);
    return;
  }

  sb_printf(o, "int\n%s__%s__open(tri_channel *ch, const tri_call_opts *opts,\n    ",
            p, n);
  if (m->kind == KIND_SERVER_STREAM)
    sb_printf(o, "const %s *req, ", m->in.c);
  sb_printf(o,
            "%s__%s_Client *call)\n"
            "{\n"
            "  tri_stream *s = NULL;\n"
            "  int rv;\n"
            "\n"
            "  if (call == NULL)\n"
            "    return TRI_EINVAL;\n"
            "  call->stream = NULL;\n",
            C, cm);
  if (m->kind == KIND_SERVER_STREAM)
    sb_puts(o, "  if (req == NULL)\n    return TRI_EINVAL;\n");
  sb_printf(o,
            "  rv = tri_stream_open(ch, %s__%s__PATH, opts, &s);\n"
            "  if (rv != TRI_OK)\n"
            "    return rv;\n"
            "  call->stream = s;\n",
            s->upper, m->upper);
  if (m->kind == KIND_SERVER_STREAM)
    sb_puts(o, "  rv = tri_stream_send_msg(s, &req->base);\n"
               "  if (rv == TRI_OK)\n"
               "    rv = tri_stream_close_send(s);\n"
               "  return rv;\n");
  else
    sb_puts(o, "  return TRI_OK;\n");
  sb_puts(o, "}\n\n");

  if (m->kind == KIND_CLIENT_STREAM || m->kind == KIND_BIDI)
    sb_printf(o,
              "int\n"
              "%s__%s__send(%s__%s_Client *call, const %s *msg)\n"
              "{\n"
              "  if (call == NULL || call->stream == NULL || msg == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  return tri_stream_send_msg(call->stream, &msg->base);\n"
              "}\n\n",
              p, n, C, cm, m->in.c);
  if (m->kind == KIND_SERVER_STREAM || m->kind == KIND_BIDI)
    sb_printf(o,
              "int\n"
              "%s__%s__recv(%s__%s_Client *call, %s **msg, int timeout_ms)\n"
              "{\n"
              "  ProtobufCMessage *out = NULL;\n"
              "  int rv;\n"
              "\n"
              "  if (call == NULL || call->stream == NULL || msg == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  rv = tri_stream_recv_msg(call->stream, &%s__descriptor, "
              "&out,\n"
              "                           timeout_ms);\n"
              "  if (rv == TRI_OK)\n"
              "    *msg = (%s *)out;\n"
              "  return rv;\n"
              "}\n\n",
              p, n, C, cm, m->out.c, m->out.lower, m->out.c);
  if (m->kind == KIND_BIDI)
    sb_printf(o,
              "int\n"
              "%s__%s__close_send(%s__%s_Client *call)\n"
              "{\n"
              "  if (call == NULL || call->stream == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  return tri_stream_close_send(call->stream);\n"
              "}\n\n",
              p, n, C, cm);
  if (m->kind == KIND_CLIENT_STREAM)
    sb_printf(o,
              "int\n"
              "%s__%s__close_and_recv(%s__%s_Client *call, %s **resp)\n"
              "{\n"
              "  ProtobufCMessage *out = NULL, *extra = NULL;\n"
              "  int rv;\n"
              "\n"
              "  if (call == NULL || call->stream == NULL || resp == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  rv = tri_stream_close_send(call->stream);\n"
              "  if (rv != TRI_OK)\n"
              "    return rv;\n"
              "  rv = tri_stream_recv_msg(call->stream, &%s__descriptor, "
              "&out, -1);\n"
              "  if (rv == TRI_EOF)\n"
              "    return TRI_UNIMPLEMENTED; /* OK status, no response */\n"
              "  if (rv != TRI_OK)\n"
              "    return rv;\n"
              "  rv = tri_stream_recv_msg(call->stream, &%s__descriptor, "
              "&extra, -1);\n"
              "  if (rv == TRI_EOF) {\n"
              "    *resp = (%s *)out;\n"
              "    return TRI_OK;\n"
              "  }\n"
              "  if (rv == TRI_OK) {\n"
              "    protobuf_c_message_free_unpacked(extra, NULL);\n"
              "    tri_stream_cancel(call->stream);\n"
              "    rv = TRI_UNIMPLEMENTED; /* more than one response */\n"
              "  }\n"
              "  protobuf_c_message_free_unpacked(out, NULL);\n"
              "  return rv;\n"
              "}\n\n",
              p, n, C, cm, m->out.c, m->out.lower, m->out.lower, m->out.c);
  sb_printf(o,
            "void\n"
            "%s__%s__cancel(%s__%s_Client *call)\n"
            "{\n"
            "  if (call != NULL && call->stream != NULL)\n"
            "    tri_stream_cancel(call->stream);\n"
            "}\n\n"
            "void\n"
            "%s__%s__free(%s__%s_Client *call)\n"
            "{\n"
            "  if (call == NULL)\n"
            "    return;\n"
            "  tri_stream_free(call->stream);\n"
            "  call->stream = NULL;\n"
            "}\n\n",
            p, n, C, cm, p, n, C, cm);
}

static void
emit_server_defs(sbuf *o, const cg_service *s, const cg_method *m)
{
  const char *p = s->lower, *n = m->lower, *C = s->c, *cm = m->camel;

  if (m->kind == KIND_SERVER_STREAM || m->kind == KIND_BIDI)
    sb_printf(o,
              "int\n"
              "%s__%s__server_send(%s__%s_Server *call, const %s *msg)\n"
              "{\n"
              "  if (call == NULL || call->stream == NULL || msg == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  return tri_stream_send_msg(call->stream, &msg->base);\n"
              "}\n\n",
              p, n, C, cm, m->out.c);
  if (m->kind == KIND_CLIENT_STREAM || m->kind == KIND_BIDI)
    sb_printf(o,
              "int\n"
              "%s__%s__server_recv(%s__%s_Server *call, %s **msg,\n"
              "    int timeout_ms)\n"
              "{\n"
              "  ProtobufCMessage *in = NULL;\n"
              "  int rv;\n"
              "\n"
              "  if (call == NULL || call->stream == NULL || msg == NULL)\n"
              "    return TRI_EINVAL;\n"
              "  rv = tri_stream_recv_msg(call->stream, &%s__descriptor, &in,\n"
              "                           timeout_ms);\n"
              "  if (rv == TRI_OK)\n"
              "    *msg = (%s *)in;\n"
              "  return rv;\n"
              "}\n\n",
              p, n, C, cm, m->in.c, m->in.lower, m->in.c);
}

/* The tri_handler_fn registered for |m|: decodes, calls the table. */
static void
emit_trampoline(sbuf *o, const cg_service *s, const cg_method *m)
{
  const char *p = s->lower, *n = m->lower, *C = s->c, *cm = m->camel;

  sb_printf(o,
            "static int\n"
            "%s__%s__serve(tri_stream *s, void *arg)\n"
            "{\n"
            "  const struct %s__tri_binding *b = arg;\n",
            p, n, p);
  sb_printf(o, "  %s__%s_Server call;\n", C, cm);
  if (m->kind == KIND_UNARY || m->kind == KIND_SERVER_STREAM)
    sb_puts(o, "  ProtobufCMessage *req = NULL;\n");
  sb_puts(o, "  int rv;\n\n  memset(&call, 0, sizeof call);\n"
             "  call.stream = s;\n");
  if (m->kind == KIND_UNARY || m->kind == KIND_SERVER_STREAM)
    sb_printf(o,
              "  rv = tri_gen_recv_one(s, &%s__descriptor, &req);\n"
              "  if (rv != TRI_OK)\n"
              "    return rv;\n"
              "  call.req = (const %s *)req;\n",
              m->in.lower, m->in.c);
  if (m->kind == KIND_UNARY || m->kind == KIND_CLIENT_STREAM)
    sb_printf(o, "  %s__init(&call.resp);\n", m->out.lower);
  sb_printf(o, "  rv = b->impl->%s(&call, b->user_data);\n", m->member);
  if (m->kind == KIND_UNARY || m->kind == KIND_CLIENT_STREAM)
    sb_printf(o,
              "  if (rv == TRI_OK)\n"
              "    rv = tri_stream_send_msg_ex(s, &call.resp.base, "
              "TRI_SEND_LAST, -1);\n"
              "  if (b->impl->release_response != NULL)\n"
              "    b->impl->release_response(&call.resp.base, "
              "b->user_data);\n");
  if (m->kind == KIND_UNARY || m->kind == KIND_SERVER_STREAM)
    sb_puts(o, "  protobuf_c_message_free_unpacked(req, NULL);\n");
  sb_puts(o, "  return rv;\n}\n\n");
}

static void
emit_service_source(sbuf *o, const cg_service *s)
{
  size_t i;
  int any_resp = 0;

  sb_puts(o, "/* ------------------------------------------------------------------ */\n");
  sb_printf(o, "/* Service %s */\n", s->full);
  sb_puts(o, "/* ------------------------------------------------------------------ */\n\n");
  for (i = 0; i < s->n; i++) {
    emit_client_defs(o, s, &s->m[i]);
    emit_server_defs(o, s, &s->m[i]);
    any_resp |= s->m[i].kind == KIND_UNARY ||
                s->m[i].kind == KIND_CLIENT_STREAM;
  }
  sb_printf(o,
            "/* What each registered handler gets as its user data. */\n"
            "struct %s__tri_binding {\n"
            "  const %s_Handlers *impl;\n"
            "  void *user_data;\n"
            "};\n\n",
            s->lower, s->c);
  (void)any_resp;
  for (i = 0; i < s->n; i++)
    emit_trampoline(o, s, &s->m[i]);

  sb_printf(o,
            "int\n"
            "%s__tri_register(tri_server *srv, const %s_Handlers *impl,\n"
            "    void *user_data)\n"
            "{\n"
            "  struct %s__tri_binding *b;\n"
            "  int rv = TRI_OK;\n"
            "\n"
            "  if (srv == NULL || impl == NULL)\n"
            "    return TRI_EINVAL;\n",
            s->lower, s->c, s->lower);
  /* One binding per method, owned by the server (freed through the
   * destroy callback when the server is freed or the path re-registered). */
  for (i = 0; i < s->n; i++)
    sb_printf(o,
              "  if (rv == TRI_OK && impl->%s != NULL) {\n"
              "    b = malloc(sizeof *b);\n"
              "    if (b == NULL)\n"
              "      return TRI_ENOMEM;\n"
              "    b->impl = impl;\n"
              "    b->user_data = user_data;\n"
              "    rv = tri_server_register_typed(srv, %s__%s__PATH, NULL, NULL,\n"
              "        &%s__descriptor, &%s__descriptor,\n"
              "        %s__%s__serve, b, free);\n"
              "    if (rv != TRI_OK)\n"
              "      free(b);\n"
              "  }\n",
              s->m[i].member, s->upper, s->m[i].upper, s->m[i].in.lower,
              s->m[i].out.lower, s->lower, s->m[i].lower);
  sb_puts(o,
          "  return rv;\n"
          "}\n\n");
}

static char *
emit_source(gen *g, const char *base)
{
  sbuf o = {0};
  size_t i;

  sb_printf(&o,
            "/* Generated by protoc-gen-triplestream %s from %s.  DO NOT "
            "EDIT. */\n\n"
            "#include <stdlib.h>\n#include <string.h>\n\n"
            "#include \"%s.tri.h\"\n\n",
            CG_VERSION, g->file->name, base);
  emit_helpers(&o, g);
  for (i = 0; i < g->n_svc; i++)
    emit_service_source(&o, &g->svc[i]);
  return sb_take(&o);
}

/* ------------------------------------------------------------------ */

int
emit_file(const cg_request *req, const cg_file *file, char **h_name, char **h,
          char **c_name, char **c, char **err)
{
  gen g;
  size_t i;
  int rv = -1;

  memset(&g, 0, sizeof g);
  g.req = req;
  g.file = file;
  *h_name = *h = *c_name = *c = *err = NULL;
  if (file->name == NULL) {
    *err = xstrdup("a file in the request has no name");
    return -1;
  }
  if (file->n_service == 0)
    return 0;
  if (build_model(&g) == 0) {
    const char *base = strip_proto(&g.pool, file->name);

    *h_name = xstrdup(pool_printf(&g.pool, "%s.tri.h", base));
    *c_name = xstrdup(pool_printf(&g.pool, "%s.tri.c", base));
    *h = emit_header(&g, base);
    *c = emit_source(&g, base);
    rv = 0;
  } else {
    *err = sb_take(&g.err);
  }
  for (i = 0; i < g.n_svc; i++)
    free(g.svc[i].m);
  free(g.svc);
  free(g.names);
  sb_free(&g.err);
  pool_free(&g.pool);
  return rv;
}
