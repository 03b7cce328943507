/*
 * Apache Dubbo's ZooKeeper registry (doc/PROTOCOL.md 18), through the
 * ZooKeeper C client (libzookeeper-mt).  Interface-level layout:
 *
 *   /dubbo/INTERFACE/providers/URL-ENCODED-PROVIDER-URL   (ephemeral)
 *
 * Client side: a watch over one interface's providers, reporting the
 * "ip:port" of every Triple provider whose group and version match.
 * Server side: a registrar that writes a server's provider nodes and keeps
 * them there across session expiry until it is freed.
 *
 * Without HAVE_ZOOKEEPER every entry point fails with TRI_UNIMPLEMENTED and
 * TRI__ZK_UNAVAILABLE as the message.
 *
 * Threads: each watch and each registrar runs one thread of its own
 * ("tri-zk", all asynchronous signals blocked) that makes every ZooKeeper
 * call; the C client's own two threads only set flags for it.
 */
#ifndef TRI_REGISTRY_ZK_H
#define TRI_REGISTRY_ZK_H

#include <stddef.h>
#include <stdint.h>

#define TRI__ZK_UNAVAILABLE                                                  \
  "ZooKeeper is not available: libtriplestream was built without the "      \
  "ZooKeeper C client (install libzookeeper-mt-dev and configure "          \
  "--with-zookeeper)"

/* 1 when built with the ZooKeeper C client. */
int tri__zk_available(void);

typedef struct tri__zk_watch tri__zk_watch;
/* Called on the ZooKeeper client's thread with no library lock held, every time the matching provider list changes (and once at start): |host_ports| are "ip:port" strings of providers whose protocol is tri and group/version match. */
typedef void (*tri__zk_providers_fn)(void *ud, const char *const *host_ports, size_t n);
int tri__zk_watch_new(tri__zk_watch **out, const char *zk_hosts, const char *interface, const char *group, const char *version, tri__zk_providers_fn fn, void *ud, char *err, size_t errlen);
void tri__zk_watch_free(tri__zk_watch *w); /* when it returns, fn is never called again */

/* ---- server side ------------------------------------------------------ */

/* A parsed registry URI "zookeeper://host:port[,host:port...][/][?k=v&...]"
 * (keys: application, session (ms), root (default "dubbo")). */
typedef struct {
  char hosts[1024];        /* "host:port,host:port" for zookeeper_init */
  char application[128];
  char root[128];          /* "dubbo" */
  int session_ms;          /* session timeout asked for (default 30000) */
} tri__zk_uri;
/* TRI_OK, or TRI_EINVAL with a message (tri__fail) naming what is wrong;
 * TRI_UNIMPLEMENTED without ZooKeeper support. */
int tri__zk_uri_parse(const char *uri, tri__zk_uri *out);

/* One provider record: an interface served with one group/version. */
typedef struct {
  const char *interface;
  const char *group;       /* NULL or "" = none */
  const char *version;     /* NULL or "" = none */
  const char *methods;     /* "M1,M2" */
} tri__zk_service;

typedef struct tri__zk_reg tri__zk_reg;
/* Start registering |n| services of a provider at |ip|:|port| (copied).
 * Returns at once; the registrar's thread connects, creates the parent
 * nodes and the ephemeral provider nodes, and does it again after a
 * session expiry.  TRI_OK, TRI_ENOMEM, TRI_ESYS (thread), or
 * TRI_UNIMPLEMENTED. */
int tri__zk_reg_new(tri__zk_reg **out, const tri__zk_uri *uri,
                    const char *ip, int port, const tri__zk_service *svcs,
                    size_t n);
/* Delete the provider nodes (if connected: at most about 2 s), close the
 * session, stop the thread, free.  NULL allowed. */
void tri__zk_reg_free(tri__zk_reg *r);
/* 1 once every node of |r| exists in ZooKeeper (tests). */
int tri__zk_reg_registered(tri__zk_reg *r);

/* Helpers, exposed for the unit tests and the fuzz target. */
/* URL-encode |in| as Dubbo does (java.net.URLEncoder / Go's
 * url.QueryEscape agree on this subset): 0 or -1 when it does not fit. */
int tri__zk_url_encode(const char *in, char *out, size_t outlen);
/* Percent-decode (and '+' -> ' '); -1 on a malformed escape or no room. */
int tri__zk_url_decode(const char *in, size_t len, char *out, size_t outlen);
/* Parse a decoded provider URL; 1 if it is a Triple provider of
 * |interface| with a matching group/version ("*" matches any; NULL/"" is
 * none), writing "host:port" into |hp|; 0 if it does not match or is
 * malformed. */
int tri__zk_provider_match(const char *url, const char *interface,
                           const char *group, const char *version, char *hp,
                           size_t hplen);

#endif /* TRI_REGISTRY_ZK_H */
