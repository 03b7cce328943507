/*
 * zk_peer: the libtriplestream side of test/peers/run_dubbogo_zk.sh.
 *
 *   zk_peer provider ZK_HOST:PORT
 *       serves tri.zk.v1.EchoService (Unary, Bidi; messages are
 *       google.protobuf.StringValue, answered with "c:" + value) on
 *       127.0.0.1, registered in ZooKeeper as a Dubbo provider; prints
 *       "listening on 127.0.0.1:PORT"; SIGTERM deregisters and drains.
 *   zk_peer consumer ZK_HOST:PORT
 *       finds a tri.zk.v1.EchoService provider through the ZooKeeper
 *       provider watch (lib/registry_zk.c, what zookeeper:// channels use),
 *       calls Unary and Bidi, prints PASS/FAIL lines; exit status =
 *       failures.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <triplestream/triplestream.h>

#include "registry_zk.h"

#define IFACE "tri.zk.v1.EchoService"

/* google.protobuf.StringValue: field 1, a string (short ones only). */
static size_t sv_encode(uint8_t *out, const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b);
  out[0] = 0x0a;
  out[1] = (uint8_t)n;
  memcpy(out + 2, a, strlen(a));
  memcpy(out + 2 + strlen(a), b, strlen(b));
  return n + 2;
}

static int sv_decode(const tri_buf *m, char *out, size_t outlen) {
  const uint8_t *d = tri_buf_data(m);
  size_t len = tri_buf_len(m);
  if (len == 0) {
    out[0] = '\0';
    return 0;
  }
  if (len < 2 || d[0] != 0x0a || d[1] != len - 2 || len - 2 >= outlen)
    return -1;
  memcpy(out, d + 2, len - 2);
  out[len - 2] = '\0';
  return 0;
}

static int answer(tri_stream *s, const tri_buf *m) {
  char v[100];
  uint8_t out[128];
  if (sv_decode(m, v, sizeof v) != 0)
    return tri_stream_finish(s, TRI_INVALID_ARGUMENT, "not a short "
                             "StringValue");
  return tri_stream_send(s, out, sv_encode(out, "c:", v));
}

static int h_unary(tri_stream *s, void *ud) {
  tri_buf *m;
  (void)ud;
  int rv = tri_stream_recv(s, &m);
  if (rv != TRI_OK)
    return rv == TRI_EOF ? TRI_INVALID_ARGUMENT : rv;
  rv = answer(s, m);
  tri_buf_free(m);
  return rv;
}

static int h_bidi(tri_stream *s, void *ud) {
  tri_buf *m;
  int rv;
  (void)ud;
  while ((rv = tri_stream_recv(s, &m)) == TRI_OK) {
    rv = answer(s, m);
    tri_buf_free(m);
    if (rv != TRI_OK)
      return rv;
  }
  return rv == TRI_EOF ? TRI_OK : rv;
}

static int provider(const char *zk) {
  char uri[300];
  tri_server *srv;
  tri_server_opts *o = tri_server_opts_new();
  snprintf(uri, sizeof uri, "zookeeper://%s?application=zk-peer", zk);
  if (tri_server_opts_set_registry(o, uri) != TRI_OK ||
      tri_server_new(&srv, o) != TRI_OK ||
      tri_server_register(srv, "/" IFACE "/Unary", h_unary, NULL) != 0 ||
      tri_server_register(srv, "/" IFACE "/Bidi", h_bidi, NULL) != 0 ||
      tri_server_bind(srv, "127.0.0.1:0") != TRI_OK ||
      tri_server_shutdown_on_signals(srv, 2000) != TRI_OK ||
      tri_server_start(srv) != TRI_OK) {
    fprintf(stderr, "zk_peer provider: %s\n", tri_last_error());
    return 1;
  }
  tri_server_opts_free(o);
  printf("listening on 127.0.0.1:%d\n", tri_server_port(srv));
  fflush(stdout);
  tri_server_wait(srv);
  tri_server_free(srv);
  return 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char found[300];

static void on_providers(void *ud, const char *const *hp, size_t n) {
  (void)ud;
  pthread_mutex_lock(&mu);
  if (n > 0 && found[0] == '\0')
    snprintf(found, sizeof found, "%s", hp[0]);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static int consumer(const char *zk) {
  tri__zk_watch *w;
  char err[256], v[100];
  uint8_t req[128];
  int fails = 0;
  if (tri__zk_watch_new(&w, zk, IFACE, NULL, NULL, on_providers, NULL, err,
                        sizeof err) != TRI_OK) {
    printf("FAIL watch: %s\n", err);
    return 1;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 30;
  pthread_mutex_lock(&mu);
  while (found[0] == '\0')
    if (pthread_cond_timedwait(&cv, &mu, &ts) != 0)
      break;
  pthread_mutex_unlock(&mu);
  tri__zk_watch_free(w);
  if (found[0] == '\0') {
    printf("FAIL no provider of " IFACE " in ZooKeeper within 30 s\n");
    return 1;
  }
  printf("found provider %s\n", found);

  tri_channel *ch;
  tri_call_opts *co = tri_call_opts_new();
  tri_call_opts_set_timeout_ms(co, 10000);
  if (tri_channel_new(&ch, found, NULL) != TRI_OK) {
    printf("FAIL channel: %s\n", tri_last_error());
    return 1;
  }
  tri_buf *resp;
  size_t n = sv_encode(req, "hello", "");
  int rv = tri_unary_call(ch, "/" IFACE "/Unary", co, req, n, &resp, NULL);
  if (rv != TRI_OK) {
    printf("FAIL unary: %s\n", tri_last_error());
    fails++;
  } else {
    if (sv_decode(resp, v, sizeof v) == 0 && strcmp(v, "go:hello") == 0) {
      printf("PASS unary \"%s\"\n", v);
    } else {
      printf("FAIL unary: unexpected answer\n");
      fails++;
    }
    tri_buf_free(resp);
  }

  tri_stream *s;
  char got[200] = "";
  if (tri_stream_open(ch, "/" IFACE "/Bidi", co, &s) != TRI_OK) {
    printf("FAIL bidi open: %s\n", tri_last_error());
    fails++;
  } else {
    const char *msgs[] = {"a", "b", "c"};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
      tri_buf *m;
      n = sv_encode(req, msgs[i], "");
      ok = tri_stream_send(s, req, n) == TRI_OK &&
           tri_stream_recv(s, &m) == TRI_OK;
      if (ok) {
        ok = sv_decode(m, v, sizeof v) == 0;
        strcat(got, v);
        strcat(got, ";");
        tri_buf_free(m);
      }
    }
    tri_stream_close_send(s);
    const char *why = "";
    int st = tri_stream_wait_status(s, 10000, &why);
    if (ok && st == TRI_OK && strcmp(got, "go:a;go:b;go:c;") == 0) {
      printf("PASS bidi \"%s\"\n", got);
    } else {
      printf("FAIL bidi: got \"%s\", status %s %s\n", got,
             tri_code_name(st), why);
      fails++;
    }
    tri_stream_free(s);
  }
  tri_channel_free(ch);
  tri_call_opts_free(co);
  return fails;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: zk_peer provider|consumer ZK_HOST:PORT\n");
    return 2;
  }
  if (strcmp(argv[1], "provider") == 0)
    return provider(argv[2]);
  if (strcmp(argv[1], "consumer") == 0)
    return consumer(argv[2]);
  return 2;
}
