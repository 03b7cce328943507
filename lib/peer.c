/*
 * The peer of a connection, as handlers and callers see it:
 * tri_stream_peer() (its address, with or without TLS) and
 * tri_stream_auth() (the identity a TLS handshake proved; lib/tls.c fills
 * it in).
 *
 * Threads: a peer is built on the I/O thread before any stream refers to
 * it and never changes afterwards, so the accessors read it without a
 * lock from any thread.  Streams and the connection hold references.
 */
#include "tri_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core.h"

static void format_addr(char *out, size_t cap, const void *sa, size_t len,
                        const char *fallback) {
  const struct sockaddr *a = sa;
  char ip[INET6_ADDRSTRLEN];

  snprintf(out, cap, "%s", fallback ? fallback : "");
  if (a == NULL || len < sizeof(a->sa_family))
    return;
  if (a->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = sa;
    if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)) != NULL)
      snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
  } else if (a->sa_family == AF_INET6 &&
             len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = sa;
    if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip)) != NULL)
      snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
  } else if (a->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (len <= off)
      return; /* unnamed (a client socket): the fallback */
    size_t n = len - off;
    if (n > sizeof(un->sun_path))
      n = sizeof(un->sun_path);
    if (un->sun_path[0] == '\0' && n > 1)
      snprintf(out, cap, "unix-abstract:%.*s", (int)(n - 1),
               un->sun_path + 1);
    else if (un->sun_path[0] != '\0')
      snprintf(out, cap, "unix:%.*s", (int)strnlen(un->sun_path, n),
               un->sun_path);
  }
}

void tri__sockaddr_str(const struct sockaddr_storage *sa, socklen_t len,
                       char *out, size_t outlen) {
  format_addr(out, outlen, sa, len, "?");
}

tri__peer *tri__peer_new(const void *sa, size_t len, const char *fallback) {
  tri__peer *p = tri__calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->refs = 1;
  format_addr(p->addr, sizeof(p->addr), sa, len, fallback);
  return p;
}

void tri__peer_ref(tri__peer *p) {
  __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void tri__peer_unref(tri__peer *p) {
  if (p == NULL || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
    return;
  tri__free(p->auth.version);
  tri__free(p->auth.cipher);
  tri__free(p->auth.subject);
  tri__free(p->auth.server_name);
  for (size_t i = 0; i < p->auth.nsans; i++)
    tri__free(p->auth.sans[i]);
  tri__free(p->auth.sans);
  tri__free(p);
}

int tri__peer_set_tls(tri__peer *p, const char *version, const char *cipher,
                      const char *subject, const char *server_name) {
  p->auth.version = tri__strdup(version ? version : "");
  p->auth.cipher = tri__strdup(cipher ? cipher : "");
  p->auth.subject = tri__strdup(subject ? subject : "");
  p->auth.server_name = tri__strdup(server_name ? server_name : "");
  if (p->auth.version == NULL || p->auth.cipher == NULL ||
      p->auth.subject == NULL || p->auth.server_name == NULL)
    return -1;
  p->has_tls = 1;
  return 0;
}

int tri__peer_add_san(tri__peer *p, const char *san) {
  char **n = tri__realloc(p->auth.sans, (p->auth.nsans + 1) * sizeof(*n));
  if (n == NULL)
    return -1;
  p->auth.sans = n;
  if ((n[p->auth.nsans] = tri__strdup(san)) == NULL)
    return -1;
  p->auth.nsans++;
  return 0;
}

/* ---- public accessors -------------------------------------------------- */

TRI_API const char *tri_stream_peer(const tri_stream *s) {
  if (s == NULL)
    return "";
  const tri__peer *p = __atomic_load_n(&s->peer, __ATOMIC_ACQUIRE);
  return p ? p->addr : "";
}

TRI_API const tri_auth *tri_stream_auth(const tri_stream *s) {
  if (s == NULL)
    return NULL;
  const tri__peer *p = __atomic_load_n(&s->peer, __ATOMIC_ACQUIRE);
  return p && p->has_tls ? &p->auth : NULL;
}

TRI_API const char *tri_auth_tls_version(const tri_auth *a) {
  return a && a->version ? a->version : "";
}

TRI_API const char *tri_auth_cipher(const tri_auth *a) {
  return a && a->cipher ? a->cipher : "";
}

TRI_API const char *tri_auth_peer_subject(const tri_auth *a) {
  return a && a->subject ? a->subject : "";
}

TRI_API size_t tri_auth_peer_san_count(const tri_auth *a) {
  return a ? a->nsans : 0;
}

TRI_API const char *tri_auth_peer_san(const tri_auth *a, size_t i) {
  return a && i < a->nsans ? a->sans[i] : NULL;
}

TRI_API const char *tri_auth_server_name(const tri_auth *a) {
  return a && a->server_name ? a->server_name : "";
}
