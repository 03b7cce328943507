/*
 * TLS (OpenSSL 3) for channels and servers: the public tri_tls_opts, the
 * contexts built from them, and TLS on a connection: a non-blocking
 * handshake driven by the loop's epoll, reads and writes that keep the
 * plain path's contracts (lib/sockio.c), and a best-effort close_notify.
 *
 * Threads: options and contexts on caller threads (tri_channel_new(),
 * tri_server_new(), tri_server_reload_tls()); everything on a connection
 * on its loop's I/O thread.  A context is immutable once built and
 * refcounted: the channel's loop or the server (its current one, under
 * server.tls_mu) and every connection made with it hold a reference, so a
 * reload swaps the server's pointer and connections keep the context
 * they started with.  OpenSSL's own objects are thread safe for this use
 * (an SSL_CTX shared by SSL objects on one thread while another thread
 * builds a new SSL_CTX).
 *
 * Sockets: the SSL object reads and writes through a BIO of our own
 * (recv, and send with MSG_NOSIGNAL) so a vanished peer is EPIPE, never
 * SIGPIPE, as on the clear-text path.
 *
 * Writes and SSL_ERROR_WANT_WRITE.  SSL_write_ex() that cannot finish
 * leaves one encrypted record (or two, see below) inside OpenSSL, and the
 * next SSL_write must offer the same bytes again, starting at the same
 * place, at least as many.  sockio.c keeps every byte not reported
 * written in the connection's write buffer, and the next write always
 * starts with that buffer: the same bytes, from the same place, at least
 * as many (the buffer only grows at its end).  Only the address changes
 * when the buffer moves or the bytes came from a stream's ring before:
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows that.
 * SSL_MODE_ENABLE_PARTIAL_WRITE makes SSL_write_ex() report each record
 * written, so bytes written are counted exactly; it also means a retry
 * may finish the pending record and block on the next one, leaving
 * OpenSSL holding more than one record's worth: that is why a retry never
 * offers less than everything pending (no coalescing while a write is
 * pending, tls->wpending).
 */
#include "tri_int.h"

#include <sys/stat.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"

/* ---- options (every build) -------------------------------------------- */

struct tri__sni {
  char *name, *cert, *key;
};

struct tri_tls_opts {
  char *ca_file, *ca_dir;
  int system_ca;         /* -1 default, 0, 1 */
  char *cert, *key;
  char *server_name;
  int client_auth;       /* TRI_TLS_CLIENT_* */
  struct tri__sni *sni;
  size_t nsni;
};

TRI_API tri_tls_opts *tri_tls_opts_new(void) {
  tri_tls_opts *o = tri__calloc(1, sizeof(*o));
  if (o != NULL)
    o->system_ca = -1;
  return o;
}

TRI_API void tri_tls_opts_free(tri_tls_opts *o) {
  if (o == NULL)
    return;
  tri__free(o->ca_file);
  tri__free(o->ca_dir);
  tri__free(o->cert);
  tri__free(o->key);
  tri__free(o->server_name);
  for (size_t i = 0; i < o->nsni; i++) {
    tri__free(o->sni[i].name);
    tri__free(o->sni[i].cert);
    tri__free(o->sni[i].key);
  }
  tri__free(o->sni);
  tri__free(o);
}

/* Replace *dst with a copy of |v| (NULL clears; "" is invalid). */
static int set_path(char **dst, const char *v) {
  char *d = NULL;
  if (v != NULL) {
    if (*v == '\0')
      return TRI_EINVAL;
    if ((d = tri__strdup(v)) == NULL)
      return TRI_ENOMEM;
  }
  tri__free(*dst);
  *dst = d;
  return TRI_OK;
}

/* A host name or numeric address: letters, digits, '.', '-', '_', ':'
 * (IPv6); with |wild|, "*." may start it. */
static int name_valid(const char *n, int wild) {
  size_t len;
  if (n == NULL || (len = strlen(n)) == 0 || len > 253)
    return 0;
  if (wild && n[0] == '*') {
    if (n[1] != '.' || n[2] == '\0')
      return 0;
    n += 2;
  }
  if (strchr(n, ':') != NULL) { /* only an IPv6 literal has colons */
    struct in6_addr a6;
    return !wild && inet_pton(AF_INET6, n, &a6) == 1;
  }
  for (const char *p = n; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
      return 0;
  }
  return 1;
}

TRI_API int tri_tls_opts_set_ca_file(tri_tls_opts *o, const char *path) {
  return o ? set_path(&o->ca_file, path) : TRI_EINVAL;
}

TRI_API int tri_tls_opts_set_ca_dir(tri_tls_opts *o, const char *path) {
  return o ? set_path(&o->ca_dir, path) : TRI_EINVAL;
}

TRI_API int tri_tls_opts_set_use_system_ca(tri_tls_opts *o, int on) {
  if (o == NULL)
    return TRI_EINVAL;
  o->system_ca = on != 0;
  return TRI_OK;
}

TRI_API int tri_tls_opts_set_cert_key(tri_tls_opts *o, const char *cert_file,
                                      const char *key_file) {
  char *c = NULL, *k = NULL;
  if (o == NULL || (cert_file == NULL) != (key_file == NULL))
    return TRI_EINVAL;
  if (set_path(&c, cert_file) != TRI_OK)
    return cert_file && *cert_file ? TRI_ENOMEM : TRI_EINVAL;
  int rv = set_path(&k, key_file);
  if (rv != TRI_OK) {
    tri__free(c);
    return rv;
  }
  tri__free(o->cert);
  tri__free(o->key);
  o->cert = c;
  o->key = k;
  return TRI_OK;
}

TRI_API int tri_tls_opts_set_server_name(tri_tls_opts *o, const char *name) {
  if (o == NULL || (name != NULL && !name_valid(name, 0)))
    return TRI_EINVAL;
  return set_path(&o->server_name, name);
}

TRI_API int tri_tls_opts_set_client_auth(tri_tls_opts *o, int mode) {
  if (o == NULL || mode < TRI_TLS_CLIENT_NONE || mode > TRI_TLS_CLIENT_REQUIRE)
    return TRI_EINVAL;
  o->client_auth = mode;
  return TRI_OK;
}

TRI_API int tri_tls_opts_add_sni_cert(tri_tls_opts *o, const char *name,
                                      const char *cert_file,
                                      const char *key_file) {
  if (o == NULL || !name_valid(name, 1) || cert_file == NULL ||
      key_file == NULL || *cert_file == '\0' || *key_file == '\0')
    return TRI_EINVAL;
  struct tri__sni *n = tri__realloc(o->sni, (o->nsni + 1) * sizeof(*n));
  if (n == NULL)
    return TRI_ENOMEM;
  o->sni = n;
  struct tri__sni *e = &n[o->nsni];
  e->name = tri__strdup(name);
  e->cert = tri__strdup(cert_file);
  e->key = tri__strdup(key_file);
  if (e->name == NULL || e->cert == NULL || e->key == NULL) {
    tri__free(e->name);
    tri__free(e->cert);
    tri__free(e->key);
    return TRI_ENOMEM;
  }
  o->nsni++;
  return TRI_OK;
}

tri_tls_opts *tri__tls_opts_dup(const tri_tls_opts *o) {
  tri_tls_opts *d = tri_tls_opts_new();
  if (d == NULL)
    return NULL;
  d->system_ca = o->system_ca;
  d->client_auth = o->client_auth;
  if (set_path(&d->ca_file, o->ca_file) != TRI_OK ||
      set_path(&d->ca_dir, o->ca_dir) != TRI_OK ||
      set_path(&d->cert, o->cert) != TRI_OK ||
      set_path(&d->key, o->key) != TRI_OK ||
      set_path(&d->server_name, o->server_name) != TRI_OK)
    goto fail;
  for (size_t i = 0; i < o->nsni; i++)
    if (tri_tls_opts_add_sni_cert(d, o->sni[i].name, o->sni[i].cert,
                                  o->sni[i].key) != TRI_OK)
      goto fail;
  return d;
fail:
  tri_tls_opts_free(d);
  return NULL;
}

const char *tri__tls_opts_server_name(const tri_tls_opts *o) {
  return o ? o->server_name : NULL;
}

#ifdef HAVE_OPENSSL

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

int tri__tls_available(void) { return 1; }

/* ---- contexts ----------------------------------------------------------- */

struct tri__tls_ctx {
  int refs;                /* atomic */
  int is_server;
  SSL_CTX *ctx;            /* default certificate */
  struct {
    char *name;
    SSL_CTX *ctx;
  } *sni;                  /* server: certificates chosen by SNI */
  size_t nsni;
};

void tri__tls_ctx_ref(tri__tls_ctx *t) {
  __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
}

void tri__tls_ctx_unref(tri__tls_ctx *t) {
  if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  SSL_CTX_free(t->ctx);
  for (size_t i = 0; i < t->nsni; i++) {
    SSL_CTX_free(t->sni[i].ctx);
    tri__free(t->sni[i].name);
  }
  tri__free(t->sni);
  tri__free(t);
}

/* OpenSSL's reason for the oldest error queued on this thread, or
 * |dflt|; clears the queue. */
static const char *ssl_err_reason(char *buf, size_t cap, const char *dflt) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r != NULL)
    snprintf(buf, cap, "%s", r);
  else if (e != 0)
    ERR_error_string_n(e, buf, cap);
  else
    snprintf(buf, cap, "%s", dflt);
  ERR_clear_error();
  return buf;
}

/* A file OpenSSL could not use: say which and why (errno first: "No such
 * file or directory" is clearer than OpenSSL's "system lib"). */
static int file_fail(const char *what, const char *path) {
  char buf[256];
  if (access(path, R_OK) != 0) {
    int e = errno;
    ERR_clear_error();
    return tri__fail(TRI_EINVAL, "TLS %s '%s': %s", what, path, strerror(e));
  }
  return tri__fail(TRI_EINVAL, "TLS %s '%s': %s", what, path,
                   ssl_err_reason(buf, sizeof(buf), "cannot be used"));
}

/* RFC 9113 section 3.2: "h2" over TLS; a server picks it or refuses. */
/* 1 if the PEM file |path| holds an encrypted key (PKCS#8 "ENCRYPTED
 * PRIVATE KEY", or a legacy "Proc-Type: 4,ENCRYPTED" header). */
static int pem_encrypted(const char *path) {
  char buf[4096];
  size_t n;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, "ENCRYPTED") != NULL;
}

static int no_passphrase(char *buf, int size, int rwflag, void *ud) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)ud;
  return 0; /* no pass phrase: loading an encrypted key fails */
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen)
      break;
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* Case-insensitive; "*.example.com" matches one whole left-most label. */
static int sni_match(const char *pat, const char *name) {
  if (pat[0] == '*' && pat[1] == '.') {
    const char *dot = strchr(name, '.');
    if (dot == NULL || dot == name)
      return 0;
    return strcasecmp(dot + 1, pat + 2) == 0;
  }
  return strcasecmp(pat, name) == 0;
}

static int servername_cb(SSL *ssl, int *al, void *arg) {
  tri__tls_ctx *t = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  (void)al;
  if (name == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  for (size_t i = 0; i < t->nsni; i++) {
    if (sni_match(t->sni[i].name, name)) {
      /* The SSL takes its own reference to the context. */
      if (SSL_set_SSL_CTX(ssl, t->sni[i].ctx) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK; /* no match: the default certificate */
}

/* One SSL_CTX with the settings of |o| and the certificate |cert|/|key|
 * (may be NULL for a client). */
static int build_ctx(const tri_tls_opts *o, int is_server, const char *cert,
                     const char *key, SSL_CTX **out) {
  char buf[256];
  int rv;
  SSL_CTX *c = SSL_CTX_new(is_server ? TLS_server_method()
                                     : TLS_client_method());
  if (c == NULL)
    return tri__fail(TRI_ENOMEM, "TLS: cannot create a context: %s",
                     ssl_err_reason(buf, sizeof(buf), "out of memory"));
  /* RFC 9113 section 9.2: TLS 1.2 or later, no renegotiation, no
   * compression, and for TLS 1.2 only ephemeral key exchange with AEAD
   * ciphers (TLS 1.3's suites all qualify). */
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_IGNORE_UNEXPECTED_EOF);
  /* See the file comment: partial writes, retries from a moved buffer. */
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    rv = tri__fail(TRI_EINVAL, "TLS: cipher list: %s",
                   ssl_err_reason(buf, sizeof(buf), "rejected"));
    goto fail;
  }
  if (o->ca_file != NULL && SSL_CTX_load_verify_file(c, o->ca_file) != 1) {
    rv = file_fail("CA file", o->ca_file);
    goto fail;
  }
  if (o->ca_dir != NULL) {
    /* OpenSSL reads a CA directory lazily, during verification: check
     * now that it is a readable directory, or every handshake would fail
     * later with a misleading reason. */
    struct stat st;
    if (stat(o->ca_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(o->ca_dir, R_OK | X_OK) != 0) {
      rv = tri__fail(TRI_EINVAL, "TLS CA directory '%s': %s", o->ca_dir,
                     errno ? strerror(errno) : "not a directory");
      goto fail;
    }
  }
  if (o->ca_dir != NULL && SSL_CTX_load_verify_dir(c, o->ca_dir) != 1) {
    rv = file_fail("CA directory", o->ca_dir);
    goto fail;
  }
  int system_ca = o->system_ca >= 0
                      ? o->system_ca
                      : !is_server && o->ca_file == NULL && o->ca_dir == NULL;
  if (system_ca && SSL_CTX_set_default_verify_paths(c) != 1) {
    rv = tri__fail(TRI_EINVAL, "TLS: cannot load the system CA store: %s",
                   ssl_err_reason(buf, sizeof(buf), "failed"));
    goto fail;
  }
  /* Never prompt on a terminal for a pass phrase (that would block the
   * caller, or a reload thread): encrypted keys fail with a message. */
  SSL_CTX_set_default_passwd_cb(c, no_passphrase);
  if (cert != NULL) {
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
      rv = file_fail("certificate chain", cert);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
      unsigned long e = ERR_peek_last_error();
      if ((ERR_GET_LIB(e) == ERR_LIB_PEM &&
           ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ) ||
          pem_encrypted(key)) {
        ERR_clear_error();
        rv = tri__fail(TRI_EINVAL, "TLS private key '%s' is encrypted: "
                       "encrypted private keys are not supported", key);
        goto fail;
      }
      if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
          ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        rv = tri__fail(TRI_EINVAL, "TLS private key '%s' does not match the "
                       "certificate '%s'", key, cert);
      } else {
        rv = file_fail("private key", key);
      }
      goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
      ERR_clear_error();
      rv = tri__fail(TRI_EINVAL, "TLS private key '%s' does not match the "
                     "certificate '%s'", key, cert);
      goto fail;
    }
  }
  if (is_server) {
    int mode = SSL_VERIFY_NONE;
    if (o->client_auth == TRI_TLS_CLIENT_REQUEST)
      mode = SSL_VERIFY_PEER;
    else if (o->client_auth == TRI_TLS_CLIENT_REQUIRE)
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, NULL);
    /* Session resumption with client certificates needs an id context. */
    SSL_CTX_set_session_id_context(c, (const unsigned char *)"triplestream",
                                   12);
    if (o->client_auth != TRI_TLS_CLIENT_NONE && o->ca_file != NULL) {
      /* Name the acceptable CAs in the certificate request. */
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
      if (names == NULL) {
        rv = file_fail("CA file", o->ca_file);
        goto fail;
      }
      SSL_CTX_set_client_CA_list(c, names);
    }
    SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* Returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x02h2", 3) != 0) {
      rv = tri__fail(TRI_ENOMEM, "TLS: cannot set ALPN");
      goto fail;
    }
  }
  *out = c;
  return TRI_OK;
fail:
  SSL_CTX_free(c);
  return rv;
}

int tri__tls_ctx_new(const tri_tls_opts *o, int is_server,
                     tri__tls_ctx **out) {
  int rv;
  *out = NULL;
  if (is_server && (o->cert == NULL || o->key == NULL))
    return tri__fail(TRI_EINVAL, "TLS server without a certificate: set "
                     "one with tri_tls_opts_set_cert_key()");
  if (is_server && o->client_auth != TRI_TLS_CLIENT_NONE &&
      o->ca_file == NULL && o->ca_dir == NULL && o->system_ca != 1)
    return tri__fail(TRI_EINVAL, "TLS server asks for client certificates "
                     "but has no CA to verify them: set "
                     "tri_tls_opts_set_ca_file()");
  tri__tls_ctx *t = tri__calloc(1, sizeof(*t));
  if (t == NULL)
    return tri__fail(TRI_ENOMEM, "out of memory creating a TLS context");
  t->refs = 1;
  t->is_server = is_server;
  rv = build_ctx(o, is_server, o->cert, o->key, &t->ctx);
  if (rv != TRI_OK)
    goto fail;
  if (is_server && o->nsni > 0) {
    t->sni = tri__calloc(o->nsni, sizeof(*t->sni));
    if (t->sni == NULL) {
      rv = tri__fail(TRI_ENOMEM, "out of memory creating a TLS context");
      goto fail;
    }
    for (size_t i = 0; i < o->nsni; i++) {
      rv = build_ctx(o, 1, o->sni[i].cert, o->sni[i].key, &t->sni[i].ctx);
      if (rv != TRI_OK)
        goto fail;
      t->nsni++;
      if ((t->sni[i].name = tri__strdup(o->sni[i].name)) == NULL) {
        rv = tri__fail(TRI_ENOMEM, "out of memory creating a TLS context");
        goto fail;
      }
    }
    SSL_CTX_set_tlsext_servername_callback(t->ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
  }
  /* Leave nothing in the caller thread's OpenSSL error queue (an
   * application using OpenSSL itself would read it). */
  ERR_clear_error();
  *out = t;
  return TRI_OK;
fail:
  tri__tls_ctx_unref(t);
  return rv;
}

/* ---- the socket BIO ----------------------------------------------------- */

struct tri__tls {
  SSL *ssl;
  tri__tls_ctx *ctx;       /* reference: SNI contexts live as long */
  char *name;              /* client: the name verified */
  int done;                /* handshake complete */
  int failed;              /* fatal TLS error: no close_notify */
  int wpending;            /* a write returned WANT_*: retry the same bytes */
  int rd_want_out;         /* a read needs the socket writable */
  int eof;                 /* recv() returned 0 */
  int sys_errno;           /* last recv/send failure */
  uint8_t first[9];        /* first bytes received, for messages */
  size_t nfirst;
};

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len) {
  tri__conn *c = BIO_get_data(b);
  ssize_t w;
  BIO_clear_retry_flags(b);
  do
    w = send(c->src.fd, buf, (size_t)len, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_write(b);
    else
      c->tls->sys_errno = errno;
    return -1;
  }
  return (int)w;
}

static int bio_read(BIO *b, char *buf, int len) {
  tri__conn *c = BIO_get_data(b);
  tri__tls *t = c->tls;
  ssize_t n;
  BIO_clear_retry_flags(b);
  do
    n = recv(c->src.fd, buf, (size_t)len, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) {
    t->eof = 1;
    return 0;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      BIO_set_retry_read(b);
    else
      t->sys_errno = errno;
    return -1;
  }
  if (t->nfirst < sizeof(t->first)) {
    size_t k = TRI__MIN(sizeof(t->first) - t->nfirst, (size_t)n);
    memcpy(t->first + t->nfirst, buf, k);
    t->nfirst += k;
  }
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  tri__conn *c = BIO_get_data(b);
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF: /* tells OpenSSL a read of 0 was the peer closing */
    return c != NULL && c->tls != NULL && c->tls->eof;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "triplestream socket");
  if (m == NULL)
    return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  g_bio_method = m; /* one per process, never freed */
}

/* ---- a connection's TLS ------------------------------------------------- */

int tri__tls_start(tri__conn *c, tri__tls_ctx *ctx, const char *name) {
  tri__tls *t;
  BIO *b;

  pthread_once(&g_bio_once, bio_method_init);
  if (g_bio_method == NULL || (t = tri__calloc(1, sizeof(*t))) == NULL)
    return -1;
  t->ssl = SSL_new(ctx->ctx);
  b = g_bio_method ? BIO_new(g_bio_method) : NULL;
  if (t->ssl == NULL || b == NULL || (name && !(t->name = tri__strdup(name))))
    goto fail;
  BIO_set_data(b, c);
  SSL_set_bio(t->ssl, b, b); /* the SSL owns the BIO now */
  b = NULL;
  if (ctx->is_server) {
    SSL_set_accept_state(t->ssl);
  } else {
    unsigned char ip[16];
    const char *n = name ? name : "localhost";
    SSL_set_connect_state(t->ssl);
    if (inet_pton(AF_INET, n, ip) == 1 || inet_pton(AF_INET6, n, ip) == 1) {
      /* A numeric address: checked against IP SANs; no SNI (RFC 6066
       * section 3 allows only host names there). */
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), n) != 1)
        goto fail;
    } else {
      SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      if (SSL_set1_host(t->ssl, n) != 1 ||
          SSL_set_tlsext_host_name(t->ssl, n) != 1)
        goto fail;
    }
  }
  t->ctx = ctx;
  tri__tls_ctx_ref(ctx);
  c->tls = t;
  c->phase = TRI__CONN_TLS;
  return 0;
fail:
  ERR_clear_error();
  BIO_free(b);
  SSL_free(t->ssl);
  tri__free(t->name);
  tri__free(t);
  return -1;
}

/* Why a TLS operation that returned |ret| with SSL_get_error() |err|
 * failed, in words (clears the thread's error queue). */
static const char *tls_reason(tri__conn *c, int err, char *buf, size_t cap) {
  tri__tls *t = c->tls;
  unsigned long e = ERR_peek_error();

  if (t->nfirst >= 5 && !c->is_server && !t->done && t->first[0] == 0 &&
      t->first[3] == 0x04 && (t->first[4] & ~1u) == 0) {
    /* The start of an HTTP/2 SETTINGS frame (length < 64 KiB, type 4,
     * flags 0 or ACK) where a TLS record header should be (a record
     * type is 20..24, never 0): a clear-text server. */
    ERR_clear_error();
    snprintf(buf, cap, "the server answered in clear-text HTTP/2: it does "
             "not use TLS");
    return buf;
  }
  if (t->nfirst >= 5 && c->is_server && !t->done &&
      memcmp(t->first, "PRI *", 5) == 0) {
    ERR_clear_error();
    snprintf(buf, cap, "clear-text HTTP/2 from a client that does not use "
             "TLS");
    return buf;
  }
  if (err == SSL_ERROR_SSL && e != 0) {
    const char *r = ERR_reason_error_string(e);
    long v = SSL_get_verify_result(t->ssl);
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK)
      snprintf(buf, cap, "%s: %s", r ? r : "certificate verify failed",
               X509_verify_cert_error_string(v));
    else if (r != NULL)
      snprintf(buf, cap, "%s", r);
    else
      ERR_error_string_n(e, buf, cap);
  } else if (t->sys_errno != 0) {
    snprintf(buf, cap, "%s", strerror(t->sys_errno));
  } else {
    snprintf(buf, cap, "connection closed by the peer");
  }
  ERR_clear_error();
  return buf;
}

static void handshake_failed(tri__conn *c, const char *why) {
  tri__loop *l = c->loop;
  c->tls->failed = 1;
  if (c->is_server)
    tri__server_tls_failed(l->srv, c->peer ? c->peer->addr : "?", why);
  else
    tri__conn_set_error(c, "TLS handshake with %s failed: %s",
                        l->ccfg.target.where, why);
}

/* Subject alternative names of |cert| into the peer, typed. */
static int add_sans(tri__peer *p, X509 *cert) {
  GENERAL_NAMES *g = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  char buf[512], ip[INET6_ADDRSTRLEN];
  int rv = 0;
  if (g == NULL)
    return 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(g) && i < 64 && rv == 0; i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(g, i);
    const ASN1_STRING *str = NULL;
    const char *kind = "other";
    switch (gn->type) {
    case GEN_DNS:
      kind = "DNS";
      str = gn->d.dNSName;
      break;
    case GEN_URI:
      kind = "URI";
      str = gn->d.uniformResourceIdentifier;
      break;
    case GEN_EMAIL:
      kind = "email";
      str = gn->d.rfc822Name;
      break;
    case GEN_IPADD: {
      int len = ASN1_STRING_length(gn->d.iPAddress);
      const unsigned char *d = ASN1_STRING_get0_data(gn->d.iPAddress);
      if ((len == 4 && inet_ntop(AF_INET, d, ip, sizeof(ip))) ||
          (len == 16 && inet_ntop(AF_INET6, d, ip, sizeof(ip))))
        snprintf(buf, sizeof(buf), "IP:%s", ip);
      else
        snprintf(buf, sizeof(buf), "IP:?");
      rv = tri__peer_add_san(p, buf);
      continue;
    }
    default:
      break;
    }
    if (str != NULL) {
      /* Escape NUL and control bytes (\xNN): a SAN "a\0.evil" must not
       * reach an authorisation check as "a". */
      const unsigned char *d = ASN1_STRING_get0_data(str);
      int len = ASN1_STRING_length(str);
      size_t o = (size_t)snprintf(buf, sizeof(buf), "%s:", kind);
      for (int k = 0; k < len && o + 5 < sizeof(buf); k++) {
        if (d[k] < 0x20 || d[k] >= 0x7f || d[k] == '\\')
          o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", d[k]);
        else
          buf[o++] = (char)d[k];
      }
      buf[o < sizeof(buf) ? o : sizeof(buf) - 1] = '\0';
    } else
      snprintf(buf, sizeof(buf), "other:");
    rv = tri__peer_add_san(p, buf);
  }
  GENERAL_NAMES_free(g);
  return rv;
}

/* The handshake is done: record what it proved in the connection's peer
 * (before any stream can see it). */
static int fill_auth(tri__conn *c) {
  tri__tls *t = c->tls;
  tri__peer *p = c->peer;
  char *subject = NULL;
  int rv = 0;

  if (p == NULL)
    return 0;
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
  if (cert != NULL) {
    BIO *m = BIO_new(BIO_s_mem());
    char *d = NULL;
    long n;
    if (m != NULL &&
        X509_NAME_print_ex(m, X509_get_subject_name(cert), 0,
                           XN_FLAG_RFC2253) >= 0 &&
        (n = BIO_get_mem_data(m, &d)) >= 0)
      subject = tri__strndup(d ? d : "", (size_t)n);
    BIO_free(m);
    if (subject == NULL)
      rv = -1;
  }
  const char *sn = c->is_server
                       ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)
                       : t->name;
  if (rv == 0)
    rv = tri__peer_set_tls(p, SSL_get_version(t->ssl),
                           SSL_get_cipher_name(t->ssl), subject, sn);
  if (rv == 0 && cert != NULL)
    rv = add_sans(p, cert);
  tri__free(subject);
  X509_free(cert);
  ERR_clear_error();
  return rv;
}

int tri__tls_handshake(tri__conn *c) {
  tri__tls *t = c->tls;
  char buf[300];

  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n != 2 || memcmp(p, "h2", 2) != 0) {
      /* Both sides: HTTP/2 over TLS is ALPN "h2" (RFC 9113 §3.2). */
      handshake_failed(c, c->is_server ? "client did not negotiate h2 (ALPN)"
                                       : "peer did not negotiate h2 (ALPN)");
      return -1;
    }
    if (fill_auth(c) != 0) {
      handshake_failed(c, "out of memory");
      return -1;
    }
    t->done = 1;
    /* HTTP/2 now: preface and SETTINGS, within the same deadline. */
    c->phase = TRI__CONN_HANDSHAKE;
    c->last_read_ns = 0;
    tri__conn_watch(c, EPOLLIN);
    return 1;
  }
  int err = SSL_get_error(t->ssl, r);
  if (err == SSL_ERROR_WANT_READ) {
    tri__conn_watch(c, EPOLLIN);
    return 0;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    tri__conn_watch(c, EPOLLIN | EPOLLOUT);
    return 0;
  }
  handshake_failed(c, tls_reason(c, err, buf, sizeof(buf)));
  return -1;
}

int tri__tls_read_wants_out(const tri__conn *c) {
  return c->tls != NULL && c->tls->rd_want_out;
}

/* A TLS failure after the handshake: the client's calls get the reason
 * (during the HTTP/2 preface it is still the handshake to the user: TLS
 * 1.3 servers reject a client certificate after the client finished). */
static void io_failed(tri__conn *c, int err) {
  char buf[300];
  c->tls->failed = 1;
  tls_reason(c, err, buf, sizeof(buf));
  if (!c->is_server && c->error == NULL) {
    if (c->phase == TRI__CONN_HANDSHAKE)
      tri__conn_set_error(c, "TLS handshake with %s failed: %s",
                          c->loop->ccfg.target.where, buf);
    else
      tri__conn_set_error(c, "connection to %s lost: TLS: %s",
                          c->loop->ccfg.target.where, buf);
  }
}

ssize_t tri__tls_read(tri__conn *c, uint8_t *buf, size_t len) {
  tri__tls *t = c->tls;
  size_t off = 0;

  t->rd_want_out = 0;
  /* Every SSL_read gets room for a whole record (2^14 bytes of
   * plaintext), so no decrypted bytes stay behind in OpenSSL where epoll
   * cannot see them (SSL_pending() stays 0; read-ahead is off, so no raw
   * bytes either): what is left is in the socket, and level-triggered
   * epoll reports it. */
  while (len - off >= 16384 || (off == 0 && len > 0)) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, buf + off, len - off, &n);
    if (r == 1) {
      off += n;
      continue;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ)
      break;
    if (err == SSL_ERROR_WANT_WRITE) {
      t->rd_want_out = 1;
      break;
    }
    if (off > 0) {
      io_failed(c, err); /* keep the reason for the next call's report */
      return (ssize_t)off;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      ERR_clear_error();
      if (!c->is_server && c->error == NULL &&
          c->phase == TRI__CONN_HANDSHAKE && c->last_read_ns == 0)
        /* TLS 1.3 servers check a client certificate after the client
         * finished its handshake; many just close. */
        tri__conn_set_error(c, "TLS handshake with %s failed: connection "
                            "closed by the peer (does it require a client "
                            "certificate? see tri_tls_opts_set_cert_key)",
                            c->loop->ccfg.target.where);
      return 0; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    }
    io_failed(c, err);
    errno = t->sys_errno ? t->sys_errno : EPROTO;
    return -1;
  }
  if (off == 0) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)off;
}

/* Pieces shorter than this are coalesced with what follows into one
 * record of at most TLS_RECORD bytes (a 9-byte frame header alone would
 * cost a 22-byte record and a system call of its own). */
#define TLS_SMALL 2048
#define TLS_RECORD 16384

ssize_t tri__tls_writev(tri__conn *c, const struct iovec *iov, int n) {
  tri__tls *t = c->tls;
  uint8_t small[TLS_RECORD];
  size_t total = 0, off = 0;
  int i = 0;

  while (i < n) {
    const uint8_t *p;
    size_t len, rem = iov[i].iov_len - off;
    if (rem == 0) {
      i++;
      off = 0;
      continue;
    }
    if (!t->wpending && rem < TLS_SMALL && i + 1 < n) {
      /* Gather from this piece on; the record is a prefix of the bytes
       * still to write, so whatever the caller keeps after WANT_WRITE
       * starts with it (see the file comment). */
      size_t k = 0, o = off;
      for (int j = i; j < n && k < sizeof(small); j++, o = 0) {
        size_t m = TRI__MIN(iov[j].iov_len - o, sizeof(small) - k);
        memcpy(small + k, (const uint8_t *)iov[j].iov_base + o, m);
        k += m;
      }
      p = small;
      len = k;
    } else {
      p = (const uint8_t *)iov[i].iov_base + off;
      len = rem;
    }
    size_t w = 0;
    ERR_clear_error();
    int r = SSL_write_ex(t->ssl, p, len, &w);
    if (r != 1) {
      int err = SSL_get_error(t->ssl, r);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        t->wpending = 1;
        if (total > 0)
          return (ssize_t)total;
        errno = EAGAIN;
        return -1;
      }
      io_failed(c, err);
      errno = t->sys_errno ? t->sys_errno : EPIPE;
      return -1;
    }
    t->wpending = 0;
    total += w;
    /* advance w bytes through the pieces */
    while (w > 0 && i < n) {
      size_t k = TRI__MIN(w, iov[i].iov_len - off);
      off += k;
      w -= k;
      if (off == iov[i].iov_len) {
        i++;
        off = 0;
      }
    }
  }
  return (ssize_t)total;
}

void tri__tls_close(tri__conn *c) {
  tri__tls *t = c->tls;
  if (t == NULL)
    return;
  if (t->done && !t->failed && !c->peer_gone && c->src.fd >= 0) {
    /* close_notify, best effort: one try, never waits for the peer's. */
    ERR_clear_error();
    SSL_shutdown(t->ssl);
  }
  ERR_clear_error();
  SSL_free(t->ssl);
  tri__tls_ctx_unref(t->ctx);
  tri__free(t->name);
  tri__free(t);
  c->tls = NULL;
}

#else /* !HAVE_OPENSSL */

int tri__tls_available(void) { return 0; }

struct tri__tls_ctx {
  int refs;
};

void tri__tls_ctx_ref(tri__tls_ctx *t) { (void)t; }
void tri__tls_ctx_unref(tri__tls_ctx *t) { (void)t; }

int tri__tls_ctx_new(const tri_tls_opts *o, int is_server,
                     tri__tls_ctx **out) {
  (void)o;
  (void)is_server;
  *out = NULL;
  return tri__fail(TRI_UNIMPLEMENTED, TRI__TLS_UNAVAILABLE);
}

/* Never called: no context can exist without OpenSSL. */
int tri__tls_start(tri__conn *c, tri__tls_ctx *ctx, const char *name) {
  (void)c;
  (void)ctx;
  (void)name;
  return -1;
}
int tri__tls_handshake(tri__conn *c) {
  (void)c;
  return -1;
}
int tri__tls_read_wants_out(const tri__conn *c) {
  (void)c;
  return 0;
}
ssize_t tri__tls_read(tri__conn *c, uint8_t *buf, size_t len) {
  (void)c;
  (void)buf;
  (void)len;
  errno = EPROTO;
  return -1;
}
ssize_t tri__tls_writev(tri__conn *c, const struct iovec *iov, int n) {
  (void)c;
  (void)iov;
  (void)n;
  errno = EPROTO;
  return -1;
}
void tri__tls_close(tri__conn *c) { (void)c; }

#endif /* HAVE_OPENSSL */

int tri__tls_opts_replace(tri_tls_opts **slot, const tri_tls_opts *tls,
                          const char *who) {
  tri_tls_opts *d = NULL;
  if (tls != NULL && (d = tri__tls_opts_dup(tls)) == NULL)
    return tri__fail(TRI_ENOMEM, "%s: out of memory copying TLS options",
                     who);
  tri_tls_opts_free(*slot);
  *slot = d;
  if (d != NULL && !tri__tls_available())
    return tri__fail(TRI_UNIMPLEMENTED, TRI__TLS_UNAVAILABLE);
  return TRI_OK;
}
