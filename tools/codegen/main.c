/*
 * protoc-gen-triplestream: protoc plugin that writes typed
 * libtriplestream stubs (NAME.tri.h / NAME.tri.c) for the services of
 * each .proto, next to protobuf-c's NAME.pb-c.h / NAME.pb-c.c.
 *
 *   protoc-c --plugin=protoc-gen-triplestream=/path/to/it \
 *            --c_out=OUT --triplestream_out=OUT foo.proto
 *
 * Protocol: protoc writes a CodeGeneratorRequest to stdin and reads a
 * CodeGeneratorResponse from stdout.  Problems with the .proto files go in
 * the response's error field (protoc prints it and fails); only I/O
 * trouble makes this program exit non-zero.
 *
 * Thread: single-threaded.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen.h"

typedef Google__Protobuf__Compiler__CodeGeneratorResponse cg_response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File cg_out_file;

/* Requests above this are refused (descriptor sets are far smaller). */
#define MAX_REQUEST (256u * 1024 * 1024)

static int
read_all(FILE *in, uint8_t **data, size_t *len)
{
  size_t cap = 64 * 1024, n = 0;
  uint8_t *buf = xmalloc(cap);

  for (;;) {
    size_t got;

    if (n == cap) {
      uint8_t *nb;

      if (cap >= MAX_REQUEST) {
        free(buf);
        fputs("protoc-gen-triplestream: request too large\n", stderr);
        return -1;
      }
      nb = xmalloc(cap * 2);
      memcpy(nb, buf, n);
      free(buf);
      buf = nb;
      cap *= 2;
    }
    got = fread(buf + n, 1, cap - n, in);
    n += got;
    if (got == 0) {
      if (ferror(in)) {
        fprintf(stderr, "protoc-gen-triplestream: reading stdin: %s\n",
                strerror(errno));
        free(buf);
        return -1;
      }
      break;
    }
  }
  *data = buf;
  *len = n;
  return 0;
}

static const cg_file *
find_file(const cg_request *req, const char *name)
{
  size_t i;

  for (i = 0; i < req->n_proto_file; i++)
    if (req->proto_file[i]->name != NULL &&
        strcmp(req->proto_file[i]->name, name) == 0)
      return req->proto_file[i];
  return NULL;
}

static void
add_output(cg_response *resp, char *name, char *content)
{
  cg_out_file *f = xmalloc(sizeof *f);
  cg_out_file **v = xmalloc((resp->n_file + 1) * sizeof *v);

  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = name;
  f->content = content;
  if (resp->n_file)
    memcpy(v, resp->file, resp->n_file * sizeof *v);
  free(resp->file);
  v[resp->n_file++] = f;
  resp->file = v;
}

static void
usage(FILE *out)
{
  fputs("Usage: protoc-c --plugin=protoc-gen-triplestream=PATH \\\n"
        "         --c_out=DIR --triplestream_out=DIR FILE.proto...\n"
        "A protoc plugin: reads a CodeGeneratorRequest on stdin and writes\n"
        "FILE.tri.h / FILE.tri.c (typed libtriplestream stubs) for every\n"
        "file that declares a service.\n",
        out);
}

int
main(int argc, char **argv)
{
  uint8_t *data = NULL, *outbuf;
  size_t len = 0, outlen, i;
  cg_request *req;
  cg_response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  char *err = NULL;
  int rv = 0;

  if (argc > 1) {
    if (strcmp(argv[1], "--version") == 0) {
      printf("protoc-gen-triplestream %s\n", CG_VERSION);
      return 0;
    }
    usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  if (read_all(stdin, &data, &len) < 0)
    return 1;
  req = google__protobuf__compiler__code_generator_request__unpack(NULL, len,
                                                                   data);
  free(data);
  if (req == NULL) {
    fputs("protoc-gen-triplestream: stdin is not a CodeGeneratorRequest "
          "(run me from protoc)\n",
          stderr);
    return 1;
  }

  /* proto3 "optional" only changes messages, which protoc-c handles. */
  resp.has_supported_features = 1;
  resp.supported_features =
    GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  if (req->parameter != NULL && req->parameter[0] != '\0') {
    sbuf b = {0};

    sb_printf(&b, "protoc-gen-triplestream takes no options (got \"%s\")",
              req->parameter);
    err = sb_take(&b);
  }
  for (i = 0; err == NULL && i < req->n_file_to_generate; i++) {
    const cg_file *f = find_file(req, req->file_to_generate[i]);
    char *h_name, *h, *c_name, *c;

    if (f == NULL) {
      sbuf b = {0};

      sb_printf(&b, "%s: not in the request", req->file_to_generate[i]);
      err = sb_take(&b);
      break;
    }
    if (emit_file(req, f, &h_name, &h, &c_name, &c, &err) < 0)
      break;
    if (h != NULL) {
      add_output(&resp, h_name, h);
      add_output(&resp, c_name, c);
    }
  }
  if (err != NULL) {
    /* protoc reports the error and writes none of the files. */
    resp.error = err;
  }

  outlen = google__protobuf__compiler__code_generator_response__get_packed_size(
    &resp);
  outbuf = xmalloc(outlen);
  google__protobuf__compiler__code_generator_response__pack(&resp, outbuf);
  if (fwrite(outbuf, 1, outlen, stdout) != outlen || fflush(stdout) != 0) {
    fprintf(stderr, "protoc-gen-triplestream: writing stdout: %s\n",
            strerror(errno));
    rv = 1;
  }
  free(outbuf);
  for (i = 0; i < resp.n_file; i++) {
    free(resp.file[i]->name);
    free(resp.file[i]->content);
    free(resp.file[i]);
  }
  free(resp.file);
  free(err);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
  return rv;
}
