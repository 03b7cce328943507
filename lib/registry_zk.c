/*
 * Dubbo's ZooKeeper registry (doc/PROTOCOL.md 18) through the ZooKeeper C
 * client (libzookeeper-mt): provider watches for zookeeper:// channels and
 * provider registration for servers.  The URL helpers at the top do not
 * need ZooKeeper.
 *
 * Threads: every ZooKeeper call is made by the object's own "tri-zk"
 * thread.  The C client's threads only run zk_watcher(), which sets event
 * bits under the object's mutex (a leaf) and signals its thread.  The
 * user's callback (watch) runs on the tri-zk thread with no lock held.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "core.h"
#include "headers.h"
#include "registry_zk.h"

/* ---- URL helpers ------------------------------------------------------- */

int tri__zk_url_encode(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                *p == '.';
    if (o + (plain ? 1 : 3) >= outlen)
      return -1;
    if (plain) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  if (o >= outlen)
    return -1;
  out[o] = '\0';
  return 0;
}

int tri__zk_url_decode(const char *in, size_t len, char *out,
                       size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)in[i];
    if (c == '%') {
      int h, l;
      if (i + 2 >= len)
        return -1;
      h = tri__hex_value((unsigned char)in[i + 1]);
      l = tri__hex_value((unsigned char)in[i + 2]);
      if (h < 0 || l < 0)
        return -1;
      c = h * 16 + l;
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (c == '\0' || o + 1 >= outlen)
      return -1;
    out[o++] = (char)c;
  }
  if (o >= outlen)
    return -1;
  out[o] = '\0';
  return 0;
}

/* Value of query parameter |key| in |q| ("k=v&k=v"), decoded into |out|;
 * 1 found, 0 absent, -1 malformed. */
static int query_get(const char *q, const char *key, char *out,
                     size_t outlen) {
  size_t kl = strlen(key);
  const char *p = q;
  while (p != NULL && *p) {
    const char *amp = strchr(p, '&');
    size_t seg = amp ? (size_t)(amp - p) : strlen(p);
    if (seg > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
      if (tri__zk_url_decode(p + kl + 1, seg - kl - 1, out, outlen) != 0)
        return -1;
      return 1;
    }
    if (seg == kl && strncmp(p, key, kl) == 0) {
      if (outlen > 0)
        out[0] = '\0';
      return 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  return 0;
}

/* Dubbo's matching of one of group/version: "*" on our side takes any;
 * otherwise both must be equal, absent and empty being the same. */
static int gv_match(const char *want, const char *have) {
  if (want != NULL && strcmp(want, "*") == 0)
    return 1;
  if (want == NULL)
    want = "";
  return strcmp(want, have) == 0;
}

int tri__zk_provider_match(const char *url, const char *interface,
                           const char *group, const char *version, char *hp,
                           size_t hplen) {
  char val[512];
  const char *p, *hs, *he, *path, *q;
  int rv;

  if (strncmp(url, "tri://", 6) != 0)
    return 0; /* dubbo://, rest://, grpc://...: not ours to call */
  hs = url + 6;
  path = strchr(hs, '/');
  q = strchr(hs, '?');
  he = path != NULL && (q == NULL || path < q) ? path : q;
  if (he == NULL)
    he = hs + strlen(hs);
  if (path != NULL && q != NULL && path > q)
    path = NULL; /* a '/' inside the query: no path */
  if (he == hs || (size_t)(he - hs) >= hplen)
    return 0;
  /* host:port, host must not be empty and port must be numeric */
  p = he;
  while (p > hs && p[-1] >= '0' && p[-1] <= '9')
    p--;
  if (p == he || p - 1 <= hs || p[-1] != ':' || he - p > 5)
    return 0;
  for (const char *c = hs; c < he; c++)
    if ((unsigned char)*c <= 0x20 || *c == '@')
      return 0;
  if (q == NULL)
    q = "";
  else
    q++;
  /* The URL's path is the interface (older providers may put a
   * context path before it: then the interface parameter decides). */
  rv = query_get(q, "interface", val, sizeof(val));
  if (rv < 0)
    return 0;
  if (rv == 1) {
    if (strcmp(val, interface) != 0)
      return 0;
  } else {
    size_t il = strlen(interface);
    if (path == NULL ||
        strncmp(path + 1, interface, il) != 0 ||
        (path[1 + il] != '\0' && path[1 + il] != '?'))
      return 0;
  }
  if ((rv = query_get(q, "side", val, sizeof(val))) < 0 ||
      (rv == 1 && strcmp(val, "provider") != 0))
    return 0;
  if ((rv = query_get(q, "category", val, sizeof(val))) < 0 ||
      (rv == 1 && strcmp(val, "providers") != 0))
    return 0;
  if ((rv = query_get(q, "protocol", val, sizeof(val))) < 0 ||
      (rv == 1 && strcmp(val, "tri") != 0))
    return 0;
  if ((rv = query_get(q, "enabled", val, sizeof(val))) < 0 ||
      (rv == 1 && strcmp(val, "false") == 0))
    return 0;
  if ((rv = query_get(q, "group", val, sizeof(val))) < 0)
    return 0;
  if (!gv_match(group, rv == 1 ? val : ""))
    return 0;
  if ((rv = query_get(q, "version", val, sizeof(val))) < 0)
    return 0;
  if (!gv_match(version, rv == 1 ? val : ""))
    return 0;
  memcpy(hp, hs, (size_t)(he - hs));
  hp[he - hs] = '\0';
  return 1;
}

int tri__zk_uri_parse(const char *uri, tri__zk_uri *out) {
  const char *p, *q, *e;
  char val[256];
  int rv;

  memset(out, 0, sizeof(*out));
  snprintf(out->application, sizeof(out->application), "libtriplestream");
  snprintf(out->root, sizeof(out->root), "dubbo");
  out->session_ms = 30000;
  if (uri == NULL || strncmp(uri, "zookeeper://", 12) != 0)
    return tri__fail(TRI_EINVAL, "registry '%s': only zookeeper://host:port"
                     "[,host:port...] is supported", uri ? uri : "(null)");
  p = uri + 12;
  q = strchr(p, '?');
  e = q ? q : p + strlen(p);
  while (e > p && e[-1] == '/')
    e--;
  if (e == p)
    return tri__fail(TRI_EINVAL, "registry '%s': no ZooKeeper host", uri);
  if ((size_t)(e - p) >= sizeof(out->hosts))
    return tri__fail(TRI_EINVAL, "registry '%s': host list too long", uri);
  for (const char *c = p; c < e; c++)
    if ((unsigned char)*c <= 0x20 || *c == '/' || *c == '@')
      return tri__fail(TRI_EINVAL, "registry '%s': bad character in the "
                       "host list (host:port[,host:port...])", uri);
  /* every element host:port with a numeric port */
  for (const char *s = p; s < e;) {
    const char *comma = memchr(s, ',', (size_t)(e - s));
    const char *end = comma ? comma : e;
    const char *colon = NULL;
    for (const char *c = s; c < end; c++)
      if (*c == ':')
        colon = c;
    long port = 0;
    int ok = colon != NULL && colon > s && colon + 1 < end &&
             end - colon <= 6;
    for (const char *c = colon ? colon + 1 : end; ok && c < end; c++) {
      if (*c < '0' || *c > '9')
        ok = 0;
      else
        port = port * 10 + (*c - '0');
    }
    if (!ok || port < 1 || port > 65535)
      return tri__fail(TRI_EINVAL, "registry '%s': '%.*s' is not host:port",
                       uri, (int)(end - s), s);
    s = comma ? comma + 1 : e;
  }
  memcpy(out->hosts, p, (size_t)(e - p));
  out->hosts[e - p] = '\0';
  if (q == NULL)
    return tri__zk_available() ? TRI_OK
                               : tri__fail(TRI_UNIMPLEMENTED, "%s",
                                           TRI__ZK_UNAVAILABLE);
  q++;
  rv = query_get(q, "application", val, sizeof(val));
  if (rv < 0 || (rv == 1 && (val[0] == '\0' ||
                             strlen(val) >= sizeof(out->application))))
    return tri__fail(TRI_EINVAL, "registry '%s': bad application", uri);
  if (rv == 1)
    snprintf(out->application, sizeof(out->application), "%s", val);
  rv = query_get(q, "root", val, sizeof(val));
  if (rv < 0 || (rv == 1 && (val[0] == '\0' || strchr(val, '/') != NULL ||
                             strlen(val) >= sizeof(out->root))))
    return tri__fail(TRI_EINVAL, "registry '%s': bad root", uri);
  if (rv == 1)
    snprintf(out->root, sizeof(out->root), "%s", val);
  rv = query_get(q, "session", val, sizeof(val));
  if (rv == 1) {
    char *end;
    long ms = strtol(val, &end, 10);
    if (*end != '\0' || ms < 1000 || ms > 600000)
      return tri__fail(TRI_EINVAL, "registry '%s': session must be 1000.."
                       "600000 ms", uri);
    out->session_ms = (int)ms;
  } else if (rv < 0) {
    return tri__fail(TRI_EINVAL, "registry '%s': bad session", uri);
  }
  if (!tri__zk_available())
    return tri__fail(TRI_UNIMPLEMENTED, "%s", TRI__ZK_UNAVAILABLE);
  return TRI_OK;
}

#ifndef HAVE_ZOOKEEPER

int tri__zk_available(void) { return 0; }

int tri__zk_watch_new(tri__zk_watch **out, const char *zk_hosts,
                      const char *interface, const char *group,
                      const char *version, tri__zk_providers_fn fn, void *ud,
                      char *err, size_t errlen) {
  (void)zk_hosts;
  (void)interface;
  (void)group;
  (void)version;
  (void)fn;
  (void)ud;
  if (out)
    *out = NULL;
  if (err && errlen)
    snprintf(err, errlen, "%s", TRI__ZK_UNAVAILABLE);
  return TRI_UNIMPLEMENTED;
}

void tri__zk_watch_free(tri__zk_watch *w) { (void)w; }

int tri__zk_reg_new(tri__zk_reg **out, const tri__zk_uri *uri,
                    const char *ip, int port, const tri__zk_service *svcs,
                    size_t n) {
  (void)uri;
  (void)ip;
  (void)port;
  (void)svcs;
  (void)n;
  *out = NULL;
  return tri__fail(TRI_UNIMPLEMENTED, "%s", TRI__ZK_UNAVAILABLE);
}

void tri__zk_reg_free(tri__zk_reg *r) { (void)r; }
int tri__zk_reg_registered(tri__zk_reg *r) {
  (void)r;
  return 0;
}

#else /* HAVE_ZOOKEEPER */

#include <pthread.h>
#include <time.h>
#include <unistd.h>
#define THREADED 1 /* the synchronous API of the multi-threaded client */
#include <zookeeper/zookeeper.h>

int tri__zk_available(void) { return 1; }

/* Session timeout of a watch's own session (only matters after it lost
 * ZooKeeper: a longer one keeps its watches across short outages). */
#define WATCH_SESSION_MS 10000
/* Waits between attempts to create a handle or re-read after an error. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum { EV_CHILD = 1u << 0, EV_CONNECTED = 1u << 1, EV_EXPIRED = 1u << 2 };

/* What the C client's threads share with the tri-zk thread. */
typedef struct {
  tri__mutex mu;           /* leaf */
  tri__cond cv;
  unsigned events;         /* EV_* since the thread last looked */
  int stop;
} zk_sig;

static void sig_init(zk_sig *g) {
  tri__mutex_init(&g->mu);
  tri__cond_init(&g->cv);
}

static void sig_destroy(zk_sig *g) {
  tri__cond_destroy(&g->cv);
  tri__mutex_destroy(&g->mu);
}

static void sig_post(zk_sig *g, unsigned ev) {
  tri__mutex_lock(&g->mu);
  g->events |= ev;
  tri__cond_signal(&g->cv);
  tri__mutex_unlock(&g->mu);
}

/* Wait until an event, stop, or |deadline|; returns the events taken, or
 * -1 on stop. */
static int sig_wait(zk_sig *g, int64_t deadline) {
  unsigned ev;
  tri__mutex_lock(&g->mu);
  for (int i = 0; i < 1000000 && !g->stop && g->events == 0 &&
                  tri__now_ns() < deadline;
       i++)
    tri__cond_wait_until(&g->cv, &g->mu, deadline);
  if (g->stop) {
    tri__mutex_unlock(&g->mu);
    return -1;
  }
  ev = g->events;
  g->events = 0;
  tri__mutex_unlock(&g->mu);
  return (int)ev;
}

/* The C client's watcher (its completion thread): session state changes
 * and one-shot node watches become event bits for the tri-zk thread. */
static void zk_watcher(zhandle_t *zh, int type, int state, const char *path,
                       void *ctx) {
  zk_sig *g = ctx;
  (void)zh;
  (void)path;
  if (g == NULL)
    return;
  if (type == ZOO_SESSION_EVENT) {
    if (state == ZOO_CONNECTED_STATE)
      sig_post(g, EV_CONNECTED);
    else if (state == ZOO_EXPIRED_SESSION_STATE ||
             state == ZOO_AUTH_FAILED_STATE)
      sig_post(g, EV_EXPIRED);
    return;
  }
  sig_post(g, EV_CHILD);
}

/* The C client logs connection attempts at INFO through this; it stays
 * quiet unless TRI_ZK_LOG is set (our own failures are reported by us). */
static void zk_log(const char *msg) {
  static int on = -1;
  if (on < 0) {
    const char *e = getenv("TRI_ZK_LOG");
    on = e != NULL && *e != '\0' && strcmp(e, "0") != 0;
  }
  if (on)
    fprintf(stderr, "libtriplestream: zookeeper: %s\n", msg);
}

static zhandle_t *zk_open(const char *hosts, int session_ms, zk_sig *g) {
  return zookeeper_init2(hosts, zk_watcher, session_ms, NULL, g, 0, zk_log);
}

static int64_t backoff_next(int64_t *cur) {
  int64_t ms = *cur;
  *cur = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
  /* +-20 % jitter (connection-backoff) */
  int64_t j = ms / 5;
  if (j > 0)
    ms += (int64_t)(random() % (2 * j + 1)) - j;
  return ms;
}

/* ---- watch ------------------------------------------------------------- */

struct tri__zk_watch {
  zk_sig sig;              /* first: the watcher's context */
  pthread_t thread;
  char *hosts, *interface, *group, *version, *path;
  tri__zk_providers_fn fn;
  void *ud;
  /* tri-zk thread only */
  zhandle_t *zh;
  char **last;             /* sorted "host:port" last reported */
  size_t nlast;
  int reported;            /* reported at least once */
};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    tri__free(v[i]);
  tri__free(v);
}

/* Turn the children of the providers node into the sorted, deduplicated
 * "host:port" list of matching providers and report it if it changed.
 * No lock is held. */
static void watch_report(tri__zk_watch *w, const struct String_vector *sv) {
  size_t n = 0;
  char **v = tri__calloc(sv->count > 0 ? (size_t)sv->count : 1,
                         sizeof(char *));
  if (v == NULL)
    return; /* keep the last list; the next change tries again */
  for (int32_t i = 0; i < sv->count; i++) {
    const char *name = sv->data[i];
    size_t len = strlen(name);
    char *url = tri__malloc(len + 1);
    char hp[300];
    if (url == NULL)
      continue;
    if (tri__zk_url_decode(name, len, url, len + 1) == 0 &&
        tri__zk_provider_match(url, w->interface, w->group, w->version, hp,
                               sizeof(hp))) {
      v[n] = tri__strdup(hp);
      if (v[n] != NULL)
        n++;
    }
    tri__free(url);
  }
  qsort(v, n, sizeof(char *), cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < n; i++) {
    if (u > 0 && strcmp(v[u - 1], v[i]) == 0) {
      tri__free(v[i]);
      continue;
    }
    v[u++] = v[i];
  }
  n = u;
  int same = w->reported && n == w->nlast;
  for (size_t i = 0; same && i < n; i++)
    same = strcmp(v[i], w->last[i]) == 0;
  if (same) {
    strv_free(v, n);
    return;
  }
  strv_free(w->last, w->nlast);
  w->last = v;
  w->nlast = n;
  w->reported = 1;
  tri__mutex_lock(&w->sig.mu);
  int stop = w->sig.stop;
  tri__mutex_unlock(&w->sig.mu);
  if (!stop) /* free() joins this thread: after that, never again */
    w->fn(w->ud, (const char *const *)w->last, w->nlast);
}

/* Read the providers with a watch set; 0 done, -1 try again later. */
static int watch_fetch(tri__zk_watch *w) {
  struct String_vector sv = {0, NULL};
  int rc = zoo_wget_children(w->zh, w->path, zk_watcher, &w->sig, &sv);
  if (rc == ZOK) {
    watch_report(w, &sv);
    deallocate_String_vector(&sv);
    return 0;
  }
  if (rc == ZNONODE) {
    /* No provider ever registered: a true empty list.  Watch for the
     * node to appear. */
    struct Stat st;
    rc = zoo_wexists(w->zh, w->path, zk_watcher, &w->sig, &st);
    if (rc == ZOK)
      return -1; /* created meanwhile: read again */
    if (rc != ZNONODE)
      return -1;
    static const struct String_vector empty = {0, NULL};
    watch_report(w, &empty);
    return 0;
  }
  return -1; /* connection loss, session expired...: keep the last list */
}

static void *watch_main(void *arg) {
  tri__zk_watch *w = arg;
  int64_t backoff = BACKOFF_MIN_MS;
  int need = 1;            /* a read is due */
  int64_t retry_at = 0;    /* earliest next handle creation / re-read */

  for (int iter = 0; iter < INT32_MAX; iter++) {
    int64_t now = tri__now_ns();
    if (w->zh == NULL && now >= retry_at) {
      w->zh = zk_open(w->hosts, WATCH_SESSION_MS, &w->sig);
      if (w->zh == NULL)
        retry_at = now + tri__ms_to_ns(backoff_next(&backoff));
      need = 1;
    }
    if (w->zh != NULL && need && now >= retry_at &&
        zoo_state(w->zh) == ZOO_CONNECTED_STATE) {
      if (watch_fetch(w) == 0) {
        need = 0;
        backoff = BACKOFF_MIN_MS;
      } else {
        retry_at = now + tri__ms_to_ns(backoff_next(&backoff));
      }
    }
    /* Wake for the next event; poll at most every second (a retry due,
     * or a connected state whose event we consumed before reading). */
    int64_t dl = now + tri__ms_to_ns(1000);
    if ((need || w->zh == NULL) && retry_at > now && retry_at < dl)
      dl = retry_at;
    int ev = sig_wait(&w->sig, dl);
    if (ev < 0)
      break;
    if (ev & EV_EXPIRED) {
      /* A new session: its watches start from scratch.  The list stays
       * as it was until the new session reads it. */
      zookeeper_close(w->zh);
      w->zh = NULL;
      retry_at = 0;
      need = 1;
    }
    if (ev & (EV_CHILD | EV_CONNECTED))
      need = 1;
  }
  if (w->zh != NULL)
    zookeeper_close(w->zh);
  w->zh = NULL;
  return NULL;
}

static void watch_destroy(tri__zk_watch *w) {
  strv_free(w->last, w->nlast);
  tri__free(w->hosts);
  tri__free(w->interface);
  tri__free(w->group);
  tri__free(w->version);
  tri__free(w->path);
  sig_destroy(&w->sig);
  tri__free(w);
}

int tri__zk_watch_new(tri__zk_watch **out, const char *zk_hosts,
                      const char *interface, const char *group,
                      const char *version, tri__zk_providers_fn fn, void *ud,
                      char *err, size_t errlen) {
  char enc[512], path[600];
  tri__zk_watch *w;
  int rv;

  if (out)
    *out = NULL;
  if (out == NULL || zk_hosts == NULL || *zk_hosts == '\0' ||
      interface == NULL || *interface == '\0' || fn == NULL) {
    if (err && errlen)
      snprintf(err, errlen, "zookeeper watch: %s",
               fn == NULL || out == NULL ? "bad arguments"
               : interface == NULL || *interface == '\0'
                   ? "no interface (zookeeper://HOST:PORT/INTERFACE)"
                   : "no ZooKeeper host");
    return TRI_EINVAL;
  }
  if (tri__zk_url_encode(interface, enc, sizeof(enc)) != 0) {
    if (err && errlen)
      snprintf(err, errlen, "zookeeper watch: interface name too long");
    return TRI_EINVAL;
  }
  snprintf(path, sizeof(path), "/dubbo/%s/providers", enc);
  w = tri__calloc(1, sizeof(*w));
  if (w == NULL)
    goto nomem;
  sig_init(&w->sig);
  w->fn = fn;
  w->ud = ud;
  w->hosts = tri__strdup(zk_hosts);
  w->interface = tri__strdup(interface);
  w->group = tri__strdup(group);
  w->version = tri__strdup(version);
  w->path = tri__strdup(path);
  if (!w->hosts || !w->interface || !w->path || (group && !w->group) ||
      (version && !w->version)) {
    watch_destroy(w);
    goto nomem;
  }
  rv = tri__thread_create(&w->thread, NULL, watch_main, w, "tri-zk");
  if (rv != 0) {
    watch_destroy(w);
    if (err && errlen)
      snprintf(err, errlen, "zookeeper watch: cannot start a thread: %s",
               strerror(rv));
    return TRI_ESYS;
  }
  *out = w;
  return TRI_OK;
nomem:
  if (err && errlen)
    snprintf(err, errlen, "zookeeper watch: out of memory");
  return TRI_ENOMEM;
}

void tri__zk_watch_free(tri__zk_watch *w) {
  if (w == NULL)
    return;
  tri__mutex_lock(&w->sig.mu);
  w->sig.stop = 1;
  tri__cond_broadcast(&w->sig.cv);
  tri__mutex_unlock(&w->sig.mu);
  pthread_join(w->thread, NULL); /* closes the handle: no more watchers */
  watch_destroy(w);
}

/* ---- registration ------------------------------------------------------ */

struct tri__zk_reg {
  zk_sig sig;              /* first: the watcher's context */
  pthread_t thread;
  tri__zk_uri uri;
  size_t n;
  char **parents;          /* "/dubbo/IFACE/providers" per node */
  char **nodes;            /* full path of each provider node */
  int registered;          /* atomic: every node created in this session */
  zhandle_t *zh;           /* tri-zk thread only */
};

/* Create |path| and its parents as persistent nodes (EXISTS is fine). */
static int ensure_path(zhandle_t *zh, const char *path) {
  char buf[1200];
  size_t len = strlen(path);
  if (len >= sizeof(buf))
    return ZBADARGUMENTS;
  memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char c = buf[i];
    buf[i] = '\0';
    int rc = zoo_create(zh, buf, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    buf[i] = c;
    if (rc != ZOK && rc != ZNODEEXISTS)
      return rc;
  }
  return ZOK;
}

/* Create every provider node in the current session; ZOK when all exist. */
static int reg_create_all(tri__zk_reg *r) {
  const clientid_t *me = zoo_client_id(r->zh);
  for (size_t i = 0; i < r->n; i++) {
    int rc = ensure_path(r->zh, r->parents[i]);
    if (rc != ZOK)
      return rc;
    rc = zoo_create(r->zh, r->nodes[i], NULL, -1, &ZOO_OPEN_ACL_UNSAFE,
                    ZOO_EPHEMERAL, NULL, 0);
    if (rc == ZNODEEXISTS) {
      /* Ours already, or left by an older session of ours that has not
       * expired yet (same URL): replace the latter. */
      struct Stat st;
      rc = zoo_exists(r->zh, r->nodes[i], 0, &st);
      if (rc == ZOK && me != NULL && st.ephemeralOwner == me->client_id)
        continue;
      if (rc == ZOK)
        zoo_delete(r->zh, r->nodes[i], -1);
      rc = zoo_create(r->zh, r->nodes[i], NULL, -1, &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, NULL, 0);
    }
    if (rc != ZOK)
      return rc;
  }
  return ZOK;
}

static void *reg_main(void *arg) {
  tri__zk_reg *r = arg;
  int64_t backoff = BACKOFF_MIN_MS, retry_at = 0;
  int need = 1;
  int64_t log_ns = 0;

  for (int iter = 0; iter < INT32_MAX; iter++) {
    int64_t now = tri__now_ns();
    if (r->zh == NULL && now >= retry_at) {
      r->zh = zk_open(r->uri.hosts, r->uri.session_ms, &r->sig);
      if (r->zh == NULL)
        retry_at = now + tri__ms_to_ns(backoff_next(&backoff));
      need = 1;
    }
    if (r->zh != NULL && need && now >= retry_at &&
        zoo_state(r->zh) == ZOO_CONNECTED_STATE) {
      int rc = reg_create_all(r);
      if (rc == ZOK) {
        need = 0;
        backoff = BACKOFF_MIN_MS;
        __atomic_store_n(&r->registered, 1, __ATOMIC_RELEASE);
      } else {
        retry_at = now + tri__ms_to_ns(backoff_next(&backoff));
        if (now - log_ns > 10 * INT64_C(1000000000)) {
          log_ns = now;
          fprintf(stderr, "libtriplestream: registering with ZooKeeper %s "
                  "failed: %s (retrying)\n", r->uri.hosts, zerror(rc));
        }
      }
    }
    int64_t dl = now + tri__ms_to_ns(1000);
    if ((need || r->zh == NULL) && retry_at > now && retry_at < dl)
      dl = retry_at;
    int ev = sig_wait(&r->sig, dl);
    if (ev < 0)
      break;
    if (ev & EV_EXPIRED) {
      /* The session and its ephemeral nodes are gone: a new session
       * registers again (as Dubbo's providers do). */
      __atomic_store_n(&r->registered, 0, __ATOMIC_RELEASE);
      zookeeper_close(r->zh);
      r->zh = NULL;
      retry_at = 0;
      need = 1;
    }
    if (ev & EV_CONNECTED)
      need = 1; /* cheap: nodes that exist are kept */
  }
  if (r->zh != NULL) {
    /* Deregister first, explicitly: closing the session would remove
     * the ephemeral nodes too, but only if the close reaches the server;
     * a delete is confirmed.  A session that is reconnecting (ZooKeeper
     * restarting, a server of the ensemble gone) gets up to 2 s to come
     * back; otherwise the nodes go when the session expires. */
    for (int i = 0; i < 100 && (zoo_state(r->zh) == ZOO_CONNECTING_STATE ||
                                zoo_state(r->zh) == ZOO_ASSOCIATING_STATE);
         i++) {
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    if (zoo_state(r->zh) == ZOO_CONNECTED_STATE)
      for (size_t i = 0; i < r->n; i++)
        zoo_delete(r->zh, r->nodes[i], -1);
    zookeeper_close(r->zh);
    r->zh = NULL;
  }
  return NULL;
}

static void reg_destroy(tri__zk_reg *r) {
  for (size_t i = 0; i < r->n; i++) {
    if (r->parents)
      tri__free(r->parents[i]);
    if (r->nodes)
      tri__free(r->nodes[i]);
  }
  tri__free(r->parents);
  tri__free(r->nodes);
  sig_destroy(&r->sig);
  tri__free(r);
}

/* The provider URL of Dubbo's registry layout (PROTOCOL.md 18.2). */
static int provider_url(char *buf, size_t len, const tri__zk_uri *uri,
                        const char *ip, int port, const tri__zk_service *s,
                        int64_t ts_ms) {
  const char *g = s->group && *s->group ? s->group : NULL;
  const char *v = s->version && *s->version ? s->version : NULL;
  int host6 = strchr(ip, ':') != NULL;
  /* Parameters in Dubbo's order (sorted by key). */
  int n = snprintf(buf, len,
                   "tri://%s%s%s:%d/%s?anyhost=false&application=%s"
                   "&category=providers&deprecated=false&dubbo=2.0.2"
                   "&dynamic=true&generic=false%s%s&interface=%s"
                   "&methods=%s&pid=%ld&protocol=tri&release=libtriplestream-%s"
                   "&serialization=protobuf&side=provider&timestamp=%lld%s%s",
                   host6 ? "[" : "", ip, host6 ? "]" : "", port,
                   s->interface, uri->application, g ? "&group=" : "",
                   g ? g : "", s->interface, s->methods, (long)getpid(),
                   TRI_VERSION, (long long)ts_ms,
                   v ? "&version=" : "", v ? v : "");
  return n > 0 && (size_t)n < len ? 0 : -1;
}

int tri__zk_reg_new(tri__zk_reg **out, const tri__zk_uri *uri,
                    const char *ip, int port, const tri__zk_service *svcs,
                    size_t n) {
  char url[4096], enc[12288], ienc[512];
  struct timespec now;
  tri__zk_reg *r;
  int rv;

  *out = NULL;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  r = tri__calloc(1, sizeof(*r));
  if (r == NULL)
    return tri__fail(TRI_ENOMEM, "out of memory");
  sig_init(&r->sig);
  r->uri = *uri;
  r->parents = tri__calloc(n ? n : 1, sizeof(char *));
  r->nodes = tri__calloc(n ? n : 1, sizeof(char *));
  r->n = n;
  if (r->parents == NULL || r->nodes == NULL) {
    reg_destroy(r);
    return tri__fail(TRI_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (provider_url(url, sizeof(url), uri, ip, port, &svcs[i], ts) != 0 ||
        tri__zk_url_encode(url, enc, sizeof(enc)) != 0 ||
        tri__zk_url_encode(svcs[i].interface, ienc, sizeof(ienc)) != 0) {
      reg_destroy(r);
      return tri__fail(TRI_EINVAL, "registry: provider URL of '%s' too long",
                       svcs[i].interface);
    }
    size_t pl = strlen(uri->root) + strlen(ienc) + 16;
    r->parents[i] = tri__malloc(pl);
    r->nodes[i] = tri__malloc(pl + strlen(enc) + 1);
    if (r->parents[i] == NULL || r->nodes[i] == NULL) {
      reg_destroy(r);
      return tri__fail(TRI_ENOMEM, "out of memory");
    }
    snprintf(r->parents[i], pl, "/%s/%s/providers", uri->root, ienc);
    snprintf(r->nodes[i], pl + strlen(enc) + 1, "%s/%s", r->parents[i], enc);
  }
  rv = tri__thread_create(&r->thread, NULL, reg_main, r, "tri-zk");
  if (rv != 0) {
    reg_destroy(r);
    return tri__fail(TRI_ESYS, "registry: cannot start a thread: %s",
                     strerror(rv));
  }
  *out = r;
  return TRI_OK;
}

void tri__zk_reg_free(tri__zk_reg *r) {
  if (r == NULL)
    return;
  tri__mutex_lock(&r->sig.mu);
  r->sig.stop = 1;
  tri__cond_broadcast(&r->sig.cv);
  tri__mutex_unlock(&r->sig.mu);
  pthread_join(r->thread, NULL); /* deletes the nodes, closes */
  reg_destroy(r);
}

int tri__zk_reg_registered(tri__zk_reg *r) {
  return r ? __atomic_load_n(&r->registered, __ATOMIC_ACQUIRE) : 0;
}

#endif /* HAVE_ZOOKEEPER */
