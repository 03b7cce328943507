/*
 * Target strings of channels and server addresses, with error messages
 * that name the bad part and say what would work (tri_last_error()).
 *
 *   HOST:PORT, [V6]:PORT       TCP; HOST is a name or a numeric address
 *   dns:///HOST:PORT           the same, spelled as a gRPC name URI
 *   unix:PATH, unix:///PATH    a Unix-domain socket
 *   unix-abstract:NAME         a Linux abstract socket
 *   ipv4:A:P[,A:P...]          static IPv4 addresses (gRPC naming.md)
 *   ipv6:[A]:P[,[A]:P...]      static IPv6 addresses
 *   zookeeper://H:P[,H:P...]/INTERFACE[?group=G&version=V]
 *                              Dubbo providers registered in ZooKeeper
 *
 * Lists and registries are channel targets only.
 *
 * Threads: any.  Pure code.
 */
#include "tri_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>

#include "core.h"

#define EXPECTED_BIND                                                        \
  "expected HOST:PORT, [V6]:PORT, dns:///HOST:PORT, unix:PATH or "         \
  "unix-abstract:NAME"
#define EXPECTED_CHANNEL                                                     \
  "expected HOST:PORT, [V6]:PORT, dns:///HOST:PORT, ipv4:ADDR:PORT[,...], " \
  "ipv6:[ADDR]:PORT[,...], unix:PATH, unix-abstract:NAME or "              \
  "zookeeper://HOST:PORT[,...]/INTERFACE"
#define EXPECTED (bind ? EXPECTED_BIND : EXPECTED_CHANNEL)

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

/* ipv4:A:P,... / ipv6:[A]:P,... (gRPC naming.md): numeric addresses,
 * each with its port. */
static int addr_list(const char *t, int v6, tri__target *out) {
  const char *p = t + 5;
  const char *fam = v6 ? "IPv6" : "IPv4";

  if (starts(p, "//"))
    p += 2; /* ipv4:///A:P is read like ipv4:A:P */
  if (*p == '\0')
    return tri__fail(TRI_EINVAL, "target '%s': no address after '%.5s' "
                     "(expected %s)", t, t,
                     v6 ? "ipv6:[ADDR]:PORT[,...]" : "ipv4:ADDR:PORT[,...]");
  out->addrs = tri__calloc(TRI__MAX_ADDRS, sizeof(*out->addrs));
  out->addr_lens = tri__calloc(TRI__MAX_ADDRS, sizeof(*out->addr_lens));
  if (out->addrs == NULL || out->addr_lens == NULL) {
    tri__target_free(out);
    return tri__fail(TRI_ENOMEM, "out of memory parsing target '%s'", t);
  }
  out->kind = TRI__T_LIST;
  while (*p) {
    size_t n = strcspn(p, ",");
    char el[300], host[INET6_ADDRSTRLEN + 2];
    const char *colon, *hs, *he;
    long port = -1;
    char *end;

    if (n == 0 || n >= sizeof(el)) {
      tri__target_free(out);
      return tri__fail(TRI_EINVAL, "target '%s': %s", t,
                       n == 0 ? "empty element in the address list"
                              : "address list element too long");
    }
    memcpy(el, p, n);
    el[n] = '\0';
    if (v6) {
      hs = el[0] == '[' ? el + 1 : NULL;
      he = hs ? strchr(hs, ']') : NULL;
      colon = he && he[1] == ':' ? he + 1 : NULL;
    } else {
      hs = el;
      colon = strrchr(el, ':');
      he = colon;
    }
    if (colon != NULL && colon[1] != '\0' && strlen(colon + 1) <= 5 &&
        strspn(colon + 1, "0123456789") == strlen(colon + 1))
      port = strtol(colon + 1, &end, 10);
    if (hs == NULL || he == NULL || colon == NULL || port < 1 ||
        port > 65535 || (size_t)(he - hs) >= sizeof(host)) {
      tri__target_free(out);
      return tri__fail(TRI_EINVAL, "target '%s': '%s' is not an %s "
                       "address with a port (expected %s)", t, el, fam,
                       v6 ? "[ADDR]:PORT" : "ADDR:PORT");
    }
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (out->naddrs >= TRI__MAX_ADDRS) {
      tri__target_free(out);
      return tri__fail(TRI_EINVAL, "target '%s': more than %d addresses",
                       t, TRI__MAX_ADDRS);
    }
    struct sockaddr_storage *ss = &out->addrs[out->naddrs];
    if (v6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
      a->sin6_family = AF_INET6;
      a->sin6_port = htons((uint16_t)port);
      if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
        port = -1;
      out->addr_lens[out->naddrs] = sizeof(*a);
    } else {
      struct sockaddr_in *a = (struct sockaddr_in *)ss;
      a->sin_family = AF_INET;
      a->sin_port = htons((uint16_t)port);
      if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        port = -1;
      out->addr_lens[out->naddrs] = sizeof(*a);
    }
    if (port < 0) {
      tri__target_free(out);
      return tri__fail(TRI_EINVAL, "target '%s': '%s' is not a numeric %s "
                       "address", t, host, fam);
    }
    if (out->naddrs == 0) {
      /* The first address stands for the target (:authority, TLS name,
       * messages). */
      snprintf(out->host, sizeof(out->host), "%s", host);
      snprintf(out->port, sizeof(out->port), "%ld", port);
      snprintf(out->authority, sizeof(out->authority), "%s", el);
    }
    out->naddrs++;
    p += n;
    if (*p == ',')
      p++;
    if (*p == '\0' && p[-1] == ',') {
      tri__target_free(out);
      return tri__fail(TRI_EINVAL, "target '%s': empty element in the "
                       "address list", t);
    }
  }
  snprintf(out->where, sizeof(out->where), "%s", t);
  return TRI_OK;
}

/* Value of a URL query parameter, percent-decoding not supported: Dubbo
 * group and version names are plain tokens. */
static int zk_target(const char *t, tri__target *out) {
  const char *p, *slash, *q;
  size_t n;

  if (!starts(t, "zookeeper://"))
    return tri__fail(TRI_EINVAL, "target '%s': expected "
                     "zookeeper://HOST:PORT[,HOST:PORT...]/INTERFACE"
                     "[?group=G&version=V]", t);
  p = t + strlen("zookeeper://");
  slash = strchr(p, '/');
  n = slash ? (size_t)(slash - p) : strlen(p);
  if (n == 0)
    return tri__fail(TRI_EINVAL, "target '%s': missing ZooKeeper "
                     "HOST:PORT before '/INTERFACE'", t);
  if (n >= sizeof(out->host))
    return tri__fail(TRI_EINVAL, "target '%s': ZooKeeper host list longer "
                     "than %zu bytes", t, sizeof(out->host) - 1);
  /* every ZooKeeper server needs HOST:PORT */
  for (const char *e = p; e < p + n;) {
    size_t m = strcspn(e, ",/");
    const char *c = memchr(e, ':', m);
    if (m == 0 || c == NULL || c == e || c + 1 == e + m ||
        strspn(c + 1, "0123456789") != (size_t)(e + m - c - 1))
      return tri__fail(TRI_EINVAL, "target '%s': ZooKeeper server '%.*s' "
                       "is not HOST:PORT", t, (int)m, e);
    e += m;
    if (*e == ',')
      e++;
  }
  memcpy(out->host, p, n);
  out->host[n] = '\0';
  if (slash == NULL || slash[1] == '\0' || slash[1] == '?')
    return tri__fail(TRI_EINVAL, "target '%s': missing INTERFACE after the "
                     "ZooKeeper servers (zookeeper://HOST:PORT/INTERFACE)",
                     t);
  q = strchr(slash + 1, '?');
  n = q ? (size_t)(q - slash - 1) : strlen(slash + 1);
  if (n >= sizeof(out->iface) || memchr(slash + 1, '/', n) != NULL)
    return tri__fail(TRI_EINVAL, "target '%s': interface '%.*s' is not a "
                     "Java interface name", t, (int)n, slash + 1);
  memcpy(out->iface, slash + 1, n);
  out->iface[n] = '\0';
  for (p = q ? q + 1 : NULL; p != NULL && *p;) {
    size_t m = strcspn(p, "&");
    char *dst = NULL;
    size_t cap = 0;
    if (m > 6 && strncmp(p, "group=", 6) == 0) {
      dst = out->group, cap = sizeof(out->group);
      p += 6, m -= 6;
    } else if (m > 8 && strncmp(p, "version=", 8) == 0) {
      dst = out->version, cap = sizeof(out->version);
      p += 8, m -= 8;
    }
    if (dst == NULL)
      return tri__fail(TRI_EINVAL, "target '%s': query parameter '%.*s' is "
                       "not supported (group=G, version=V)", t, (int)m, p);
    if (m >= cap)
      return tri__fail(TRI_EINVAL, "target '%s': value '%.*s' too long", t,
                       (int)m, p);
    memcpy(dst, p, m);
    dst[m] = '\0';
    p += m;
    if (*p == '&')
      p++;
  }
  out->kind = TRI__T_ZK;
  snprintf(out->authority, sizeof(out->authority), "%s", out->iface);
  snprintf(out->where, sizeof(out->where), "%s", t);
  return TRI_OK;
}

void tri__target_free(tri__target *t) {
  tri__free(t->addrs);
  tri__free(t->addr_lens);
  t->addrs = NULL;
  t->addr_lens = NULL;
  t->naddrs = 0;
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
  if (starts(t, "ipv4:") || starts(t, "ipv6:")) {
    if (bind)
      return tri__fail(TRI_EINVAL, "target '%s': address lists are for "
                       "channels; bind one address (%s)", t, EXPECTED);
    return addr_list(t, t[3] == '6', out);
  }
  if (starts(t, "zookeeper:")) {
    if (bind)
      return tri__fail(TRI_EINVAL, "target '%s': a registry is for "
                       "channels; bind one address (%s)", t, EXPECTED);
    return zk_target(t, out);
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
