/*
 * Target strings of channels and server addresses, with error messages
 * that name the bad part and say what would work (tri_last_error()).
 *
 *   HOST:PORT, [V6]:PORT       TCP; HOST is a name or a numeric address
 *   dns:///HOST:PORT           the same, spelled as a gRPC name URI
 *   unix:PATH, unix:///PATH    a Unix-domain socket
 *   unix-abstract:NAME         a Linux abstract socket
 *
 * Threads: any.  Pure code.
 */
#include "tri_int.h"

#include <stdlib.h>
#include <sys/un.h>

#include "core.h"

#define EXPECTED                                                             \
  "expected HOST:PORT, [V6]:PORT, dns:///HOST:PORT, unix:PATH or "         \
  "unix-abstract:NAME"

static int starts(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

static int host_port(const char *t, const char *hp, tri__target *out,
                     int bind) {
  const char *colon, *hs, *he, *p;
  char *end;
  long pn;

  if (hp[0] == '[') {
    he = strchr(hp, ']');
    if (he == NULL)
      return tri__fail(TRI_EINVAL, "target '%s': missing ']' after the IPv6 "
                       "address (%s)", t, EXPECTED);
    if (he[1] != ':')
      return tri__fail(TRI_EINVAL, "target '%s': missing port after ']' "
                       "(%s)", t, EXPECTED);
    hs = hp + 1;
    colon = he + 1;
  } else {
    colon = strrchr(hp, ':');
    if (colon == NULL)
      return tri__fail(TRI_EINVAL, "target '%s': missing port (%s)", t,
                       EXPECTED);
    if (memchr(hp, ':', (size_t)(colon - hp)) != NULL)
      return tri__fail(TRI_EINVAL, "target '%s': an IPv6 address needs "
                       "brackets: [%.*s]:%s", t, (int)(colon - hp), hp,
                       colon + 1);
    hs = hp;
    he = colon;
  }
  if (he == hs)
    return tri__fail(TRI_EINVAL, "target '%s': missing host (%s)", t,
                     EXPECTED);
  if ((size_t)(he - hs) >= sizeof(out->host))
    return tri__fail(TRI_EINVAL, "target '%s': host longer than %zu bytes",
                     t, sizeof(out->host) - 1);
  p = colon + 1;
  if (*p == '\0')
    return tri__fail(TRI_EINVAL, "target '%s': missing port (%s)", t,
                     EXPECTED);
  for (const char *q = p; *q; q++)
    if (*q < '0' || *q > '9')
      return tri__fail(TRI_EINVAL, "target '%s': port '%s' is not a number",
                       t, p);
  pn = strtol(p, &end, 10);
  if (pn < (bind ? 0 : 1) || pn > 65535 || strlen(p) > 5)
    return tri__fail(TRI_EINVAL, "target '%s': port %s is out of range "
                     "(%d-65535)", t, p, bind ? 0 : 1);
  out->kind = TRI__T_TCP;
  memcpy(out->host, hs, (size_t)(he - hs));
  out->host[he - hs] = '\0';
  snprintf(out->port, sizeof(out->port), "%ld", pn);
  snprintf(out->authority, sizeof(out->authority), "%s", hp);
  snprintf(out->where, sizeof(out->where), "%s", hp);
  return TRI_OK;
}

int tri__target_parse(const char *t, int bind, tri__target *out) {
  const char *scheme_end;

  memset(out, 0, sizeof(*out));
  if (t == NULL)
    return tri__fail(TRI_EINVAL, "target is NULL (%s)", EXPECTED);
  if (*t == '\0')
    return tri__fail(TRI_EINVAL, "target is empty (%s)", EXPECTED);
  for (const char *p = t; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
      return tri__fail(TRI_EINVAL, "target '%s': contains white space or a "
                       "control character at offset %d", t, (int)(p - t));
  if (starts(t, "unix-abstract:")) {
    const char *name = t + strlen("unix-abstract:");
    if (*name == '\0')
      return tri__fail(TRI_EINVAL, "target '%s': missing socket name", t);
    if (strlen(name) + 1 > sizeof(((struct sockaddr_un *)0)->sun_path))
      return tri__fail(TRI_EINVAL, "target '%s': name longer than %zu "
                       "bytes", t,
                       sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    out->kind = TRI__T_ABSTRACT;
    snprintf(out->path, sizeof(out->path), "%s", name);
    snprintf(out->authority, sizeof(out->authority), "localhost");
    snprintf(out->where, sizeof(out->where), "%s", t);
    return TRI_OK;
  }
  if (starts(t, "unix:")) {
    const char *path = t + strlen("unix:");
    if (starts(path, "//"))
      path += 2; /* unix:///abs/path */
    if (*path == '\0')
      return tri__fail(TRI_EINVAL, "target '%s': missing socket path", t);
    if (strlen(path) + 1 > sizeof(((struct sockaddr_un *)0)->sun_path))
      return tri__fail(TRI_EINVAL, "target '%s': socket path longer than "
                       "%zu bytes", t,
                       sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    out->kind = TRI__T_UNIX;
    snprintf(out->path, sizeof(out->path), "%s", path);
    snprintf(out->authority, sizeof(out->authority), "localhost");
    snprintf(out->where, sizeof(out->where), "unix:%s", path);
    return TRI_OK;
  }
  if (starts(t, "dns:")) {
    if (!starts(t, "dns:///")) {
      if (starts(t, "dns://"))
        return tri__fail(TRI_EINVAL, "target '%s': a DNS server in the "
                         "target is not supported; use dns:///HOST:PORT (or "
                         "TRI_DNS_SERVERS)", t);
      return tri__fail(TRI_EINVAL, "target '%s': expected dns:///HOST:PORT",
                       t);
    }
    return host_port(t, t + strlen("dns:///"), out, bind);
  }
  scheme_end = strstr(t, "://");
  if (scheme_end != NULL) {
    if (starts(t, "http://") || starts(t, "https://") ||
        starts(t, "grpc://") || starts(t, "tri://"))
      return tri__fail(TRI_EINVAL, "target '%s': not a URL; use HOST:PORT "
                       "(e.g. '%.*s')", t,
                       (int)strcspn(scheme_end + 3, "/"), scheme_end + 3);
    return tri__fail(TRI_EINVAL, "target '%s': scheme '%.*s' is not "
                     "supported (%s)", t, (int)(scheme_end - t), t,
                     EXPECTED);
  }
  return host_port(t, t, out, bind);
}

socklen_t tri__target_sockaddr_un(const tri__target *t, struct sockaddr_un *un) {
  memset(un, 0, sizeof(*un));
  un->sun_family = AF_UNIX;
  if (t->kind == TRI__T_ABSTRACT) {
    /* Linux abstract namespace: a leading NUL, the name, no terminator */
    memcpy(un->sun_path + 1, t->path, strlen(t->path));
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                       strlen(t->path));
  }
  memcpy(un->sun_path, t->path, strlen(t->path) + 1);
  return (socklen_t)sizeof(*un);
}
