/*
 * Dubbo provider discovery in ZooKeeper (lib/registry_zk.c, built with
 * HAVE_ZOOKEEPER).  The channel (lib/channel.c) watches the providers of
 * a zookeeper:// target through this interface.
 */
#ifndef TRI_REGISTRY_ZK_H
#define TRI_REGISTRY_ZK_H

#include <stddef.h>

typedef struct tri__zk_watch tri__zk_watch;
/* Called on the ZooKeeper client's thread with no library lock held, every time the matching provider list changes (and once at start): |host_ports| are "ip:port" strings of providers whose protocol is tri and group/version match. */
typedef void (*tri__zk_providers_fn)(void *ud, const char *const *host_ports, size_t n);
int tri__zk_watch_new(tri__zk_watch **out, const char *zk_hosts, const char *interface, const char *group, const char *version, tri__zk_providers_fn fn, void *ud, char *err, size_t errlen);
void tri__zk_watch_free(tri__zk_watch *w); /* when it returns, fn is never called again */

#endif /* TRI_REGISTRY_ZK_H */
