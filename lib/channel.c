/*
 * Client channel: target parsing, channel and call options, opening
 * streams, the unary helper.
 *
 * Threads: any caller thread.  The channel's I/O loop (conn.c) does all
 * network work; a channel holds one loop for its whole life.
 */
#include "tri_int.h"

#include <stdlib.h>

#include "compress.h"
#include "core.h"
#include "json.h"
#include "triple.h"
#include "registry_zk.h"

struct tri_channel_opts {
  int64_t connect_ms;
  size_t max_recv;
  size_t send_buf;
  size_t recv_queue;
  int64_t keepalive_ms, keepalive_timeout_ms;
  int keepalive_permit_without_calls;
  size_t conn_recv_queue;
  int round_robin;
  int64_t backoff_initial_ms, backoff_max_ms;
  tri_tls_opts *tls;        /* owned; NULL = clear text */
  tri_io_group *group;      /* not owned; NULL = a thread of its own */
  int spin_us;              /* recv spin budget (tri__spin_watch) */
};

struct tri_call_opts {
  int64_t timeout_ms;       /* -1 none */
  tri_metadata md;
  size_t max_recv;          /* 0 = channel default */
  int enc;
  char *group, *version;
  int protocol;             /* TRI_PROTOCOL_* (unary calls) */
  int json;                 /* codec "json" (unary calls with descriptors) */
  int wait_for_ready;
};

struct tri_channel {
  tri_channel_opts opts;
  tri__loop *loop;
  tri_io_group *group;      /* a reference, or NULL */
  struct tri__rx *group_rx; /* the thread of it the loop runs on */
  char *target;
  tri__zk_watch *zk;        /* zookeeper:// targets */
};

/* ---- channel options -------------------------------------------------- */

static void channel_opts_defaults(tri_channel_opts *o) {
  o->connect_ms = TRI__DEF_CONNECT_MS;
  o->max_recv = TRI__DEF_MAX_RECV;
  o->send_buf = TRI__DEF_SEND_BUF;
  o->recv_queue = TRI__DEF_RECV_QUEUE;
  o->spin_us = tri__spin_default_us();
  o->keepalive_ms = 0;
  o->keepalive_timeout_ms = 20000;
  o->conn_recv_queue = TRI__DEF_CONN_RQ;
  o->backoff_initial_ms = 1000;  /* connection-backoff.md */
  o->backoff_max_ms = 120000;
}

TRI_API tri_channel_opts *tri_channel_opts_new(void) {
  tri_channel_opts *o = tri__calloc(1, sizeof(*o));
  if (o)
    channel_opts_defaults(o);
  return o;
}

TRI_API void tri_channel_opts_free(tri_channel_opts *o) {
  if (o == NULL)
    return;
  tri_tls_opts_free(o->tls);
  tri__free(o);
}

TRI_API int tri_channel_opts_set_tls(tri_channel_opts *o,
                                     const tri_tls_opts *tls) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_channel_opts_set_tls: opts is NULL");
  return tri__tls_opts_replace(&o->tls, tls, "tri_channel_opts_set_tls");
}

TRI_API int tri_channel_opts_set_connect_timeout_ms(tri_channel_opts *o,
                                                    int64_t ms) {
  if (o == NULL || ms <= 0)
    return TRI_EINVAL;
  o->connect_ms = ms;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_max_recv_size(tri_channel_opts *o,
                                               size_t bytes) {
  if (o == NULL || bytes == 0 || bytes > UINT32_MAX)
    return TRI_EINVAL;
  o->max_recv = bytes;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_send_buffer(tri_channel_opts *o,
                                             size_t bytes) {
  if (o == NULL || bytes < 1024)
    return TRI_EINVAL;
  o->send_buf = bytes;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_recv_queue(tri_channel_opts *o,
                                            size_t bytes) {
  if (o == NULL || bytes < 1024)
    return TRI_EINVAL;
  o->recv_queue = bytes;
  return TRI_OK;
}

int tri__spin_us_check(const char *who, int have_opts, int us) {
  if (!have_opts)
    return tri__fail(TRI_EINVAL, "%s: opts is NULL", who);
  if (us < 0 || us > TRI__SPIN_MAX_US)
    return tri__fail(TRI_EINVAL, "%s: us must be 0..%d, not %d", who,
                     TRI__SPIN_MAX_US, us);
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_spin_us(tri_channel_opts *o, int us) {
  int rv = tri__spin_us_check("tri_channel_opts_set_spin_us", o != NULL, us);
  if (rv == TRI_OK)
    o->spin_us = us;
  return rv;
}

TRI_API int tri_channel_opts_set_keepalive(tri_channel_opts *o, int64_t ms,
                                           int64_t timeout_ms) {
  if (o == NULL || ms < 0 || timeout_ms <= 0)
    return TRI_EINVAL;
  o->keepalive_ms = ms == 0 ? 0 : TRI__MAX(ms, 10000); /* 8.6 */
  o->keepalive_timeout_ms = timeout_ms;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_lb_policy(tri_channel_opts *o,
                                           const char *name) {
  if (o == NULL || name == NULL)
    return tri__fail(TRI_EINVAL, "tri_channel_opts_set_lb_policy: %s is "
                     "NULL", o ? "name" : "opts");
  if (strcmp(name, "pick_first") == 0)
    o->round_robin = 0;
  else if (strcmp(name, "round_robin") == 0)
    o->round_robin = 1;
  else
    return tri__fail(TRI_EINVAL, "load-balancing policy '%s' is not "
                     "supported (pick_first or round_robin)", name);
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_backoff(tri_channel_opts *o,
                                         int64_t initial_ms, int64_t max_ms) {
  if (o == NULL || initial_ms <= 0 || max_ms < initial_ms)
    return tri__fail(TRI_EINVAL, "tri_channel_opts_set_backoff: need "
                     "0 < initial_ms <= max_ms");
  o->backoff_initial_ms = initial_ms;
  o->backoff_max_ms = max_ms;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_io_group(tri_channel_opts *o,
                                          tri_io_group *g) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_channel_opts_set_io_group: opts is "
                     "NULL");
  o->group = g;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_keepalive_permit_without_calls(
    tri_channel_opts *o, int permit) {
  if (o == NULL)
    return TRI_EINVAL;
  o->keepalive_permit_without_calls = permit != 0;
  return TRI_OK;
}

TRI_API int tri_channel_opts_set_conn_recv_queue(tri_channel_opts *o,
                                                 size_t bytes) {
  if (o == NULL || bytes < 65536)
    return TRI_EINVAL;
  o->conn_recv_queue = bytes;
  return TRI_OK;
}

/* ---- call options ----------------------------------------------------- */

TRI_API tri_call_opts *tri_call_opts_new(void) {
  tri_call_opts *o = tri__calloc(1, sizeof(*o));
  if (o == NULL)
    return NULL;
  o->timeout_ms = -1;
  tri__md_init(&o->md);
  return o;
}

TRI_API void tri_call_opts_free(tri_call_opts *o) {
  if (o == NULL)
    return;
  tri__md_cleanup(&o->md);
  tri__free(o->group);
  tri__free(o->version);
  tri__free(o);
}

TRI_API int tri_call_opts_set_timeout_ms(tri_call_opts *o, int64_t ms) {
  if (o == NULL || (ms <= 0 && ms != -1))
    return TRI_EINVAL;
  o->timeout_ms = ms;
  return TRI_OK;
}

TRI_API int tri_call_opts_add_metadata(tri_call_opts *o, const char *key,
                                       const void *value, size_t value_len) {
  if (o == NULL)
    return TRI_EINVAL;
  return tri_metadata_add(&o->md, key, value, value_len);
}

TRI_API int tri_call_opts_set_max_recv_size(tri_call_opts *o, size_t bytes) {
  if (o == NULL || bytes == 0 || bytes > UINT32_MAX)
    return TRI_EINVAL;
  o->max_recv = bytes;
  return TRI_OK;
}

TRI_API int tri_call_opts_set_compression(tri_call_opts *o,
                                          const char *encoding) {
  if (o == NULL)
    return TRI_EINVAL;
  if (encoding == NULL) {
    o->enc = TRI__ENC_IDENTITY;
    return TRI_OK;
  }
  int enc = tri__enc_from_name(encoding, strlen(encoding));
  if (enc == TRI__ENC_UNKNOWN)
    return TRI_UNIMPLEMENTED;
  o->enc = enc;
  return TRI_OK;
}

static int set_str(char **dst, const char *v) {
  char *d = NULL;
  if (v != NULL) {
    for (const char *p = v; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
        return TRI_EINVAL;
    d = tri__strdup(v);
    if (d == NULL)
      return TRI_ENOMEM;
  }
  tri__free(*dst);
  *dst = d;
  return TRI_OK;
}

TRI_API int tri_call_opts_set_service_group(tri_call_opts *o,
                                            const char *group) {
  return o ? set_str(&o->group, group) : TRI_EINVAL;
}

TRI_API int tri_call_opts_set_service_version(tri_call_opts *o,
                                              const char *version) {
  return o ? set_str(&o->version, version) : TRI_EINVAL;
}

TRI_API int tri_call_opts_set_protocol(tri_call_opts *o, int protocol) {
  if (o == NULL)
    return tri__fail(TRI_EINVAL, "tri_call_opts_set_protocol: opts is NULL");
  if (protocol != TRI_PROTOCOL_GRPC && protocol != TRI_PROTOCOL_TRIPLE)
    return tri__fail(TRI_EINVAL, "tri_call_opts_set_protocol: unknown "
                     "protocol %d (TRI_PROTOCOL_GRPC or TRI_PROTOCOL_TRIPLE)",
                     protocol);
  o->protocol = protocol;
  return TRI_OK;
}

TRI_API int tri_call_opts_set_codec(tri_call_opts *o, const char *codec) {
  if (o == NULL || codec == NULL)
    return tri__fail(TRI_EINVAL, "tri_call_opts_set_codec: NULL argument");
  if (strcmp(codec, "proto") == 0) {
    o->json = 0;
    return TRI_OK;
  }
  if (strcmp(codec, "json") != 0)
    return tri__fail(TRI_EINVAL, "tri_call_opts_set_codec: unknown codec "
                     "'%s' (\"proto\" or \"json\")", codec);
#ifndef HAVE_JANSSON
  return tri__fail(TRI_UNIMPLEMENTED, "the JSON codec is not built in "
                   "(configure --with-jansson, libjansson-dev)");
#else
  o->json = 1;
  return TRI_OK;
#endif
}

TRI_API int tri_call_opts_set_wait_for_ready(tri_call_opts *o, int on) {
  if (o == NULL)
    return TRI_EINVAL;
  o->wait_for_ready = on != 0;
  return TRI_OK;
}

/* ---- channel ---------------------------------------------------------- */

#ifdef HAVE_ZOOKEEPER
static void zk_providers(void *ud, const char *const *host_ports, size_t n);
#endif

TRI_API int tri_channel_new(tri_channel **out, const char *target,
                            const tri_channel_opts *opts) {
  tri__client_cfg cc;
  struct tri__rx *rx = NULL;
  int rv, lerr;

  if (out == NULL)
    return tri__fail(TRI_EINVAL, "tri_channel_new: out is NULL");
  *out = NULL;
  memset(&cc, 0, sizeof(cc));
  rv = tri__target_parse(target, 0, &cc.target);
  if (rv != TRI_OK)
    return rv;
#ifndef HAVE_ZOOKEEPER
  if (cc.target.kind == TRI__T_ZK)
    return tri__fail(TRI_UNIMPLEMENTED, "target '%s': %s", target,
                     TRI__ZK_UNAVAILABLE);
#endif
  tri_channel *ch = tri__calloc(1, sizeof(*ch));
  if (ch == NULL) {
    tri__target_free(&cc.target);
    return tri__fail(TRI_ENOMEM, "out of memory creating a channel");
  }
  if (opts)
    ch->opts = *opts;
  else
    channel_opts_defaults(&ch->opts);
  ch->opts.tls = NULL; /* used below, not kept */
  if (opts && opts->tls) {
    if (!tri__tls_available()) {
      cc.tls_unavailable = 1;
    } else {
      rv = tri__tls_ctx_new(opts->tls, 0, &cc.tls); /* reads the files */
      if (rv != TRI_OK) {
        tri__target_free(&cc.target);
        tri__free(ch);
        return rv;
      }
      const char *name = tri__tls_opts_server_name(opts->tls);
      if (name != NULL) {
        /* gRPC's ssl_target_name_override: the name stands for the server
         * in :authority too. */
        snprintf(cc.target.authority, sizeof(cc.target.authority),
                 strchr(name, ':') ? "[%s]" : "%s", name); /* IPv6 */
      } else {
        name = cc.target.kind == TRI__T_TCP || cc.target.kind == TRI__T_LIST
                   ? cc.target.host
                   : "localhost";
      }
      snprintf(cc.tls_name, sizeof(cc.tls_name), "%s", name);
    }
  }
  ch->target = tri__strdup(target);
  if (ch->target == NULL) {
    rv = tri__fail(TRI_ENOMEM, "out of memory creating a channel");
    goto fail_ch;
  }
  if (ch->opts.group != NULL) {
    /* Before any thread is started: a child of fork() fails here. */
    rx = tri__io_group_take(ch->opts.group);
    if (rx == NULL) {
      rv = tri__fail(TRI_UNAVAILABLE, "the channel's I/O group was created "
                     "before fork()");
      goto fail_ch;
    }
    ch->group = ch->opts.group; /* the reference just taken */
    ch->group_rx = rx;
  }
  ch->opts.group = NULL; /* ch->group from here on */
  rv = tri__timers_acquire();
  if (rv != 0) {
    rv = tri__fail(TRI_ESYS, "cannot start the timer thread: %s",
                   strerror(-rv));
    goto fail_group;
  }
  cc.connect_ms = ch->opts.connect_ms;
  cc.keepalive_ms = ch->opts.keepalive_ms;
  cc.keepalive_timeout_ms = ch->opts.keepalive_timeout_ms;
  cc.keepalive_permit_without_calls = ch->opts.keepalive_permit_without_calls;
  cc.conn_rq_limit = ch->opts.conn_recv_queue;
  cc.round_robin = ch->opts.round_robin;
  cc.backoff_initial_ms = ch->opts.backoff_initial_ms;
  cc.backoff_max_ms = ch->opts.backoff_max_ms;
  ch->loop = tri__loop_new_client(ch, &cc, rx, &lerr);
  if (ch->loop == NULL) {
    rv = tri__fail_create(lerr, "the channel's I/O loop");
    goto fail_timers;
  }
  rv = tri__loop_start(ch->loop);
  if (rv != 0) {
    rv = tri__fail(TRI_ESYS, "cannot start the channel's I/O thread: %s",
                   strerror(-rv));
    goto fail_loop;
  }
#ifdef HAVE_ZOOKEEPER
  if (cc.target.kind == TRI__T_ZK) {
    char err[256];
    const tri__target *t = &cc.target;
    err[0] = '\0';
    if (tri__zk_watch_new(&ch->zk, t->host, t->iface,
                          t->group[0] ? t->group : NULL,
                          t->version[0] ? t->version : NULL, zk_providers,
                          ch, err, sizeof(err)) != 0) {
      rv = tri__fail(TRI_UNAVAILABLE, "target '%s': %s", target,
                     err[0] ? err : "cannot watch ZooKeeper");
      goto fail_loop;
    }
  }
#endif
  *out = ch;
  return TRI_OK;

fail_loop:
  tri__loop_join_free(ch->loop); /* drops the loop's TLS context, target */
  cc.tls = NULL;
  memset(&cc.target, 0, sizeof(cc.target));
fail_timers:
  tri__timers_release();
fail_group:
  tri__io_group_put(ch->group, ch->group_rx);
fail_ch:
  tri__tls_ctx_unref(cc.tls); /* NULL, or not yet owned by a loop */
  tri__target_free(&cc.target); /* not yet owned by a loop */
  tri__free(ch->target);
  tri__free(ch);
  return rv;
}

#ifdef HAVE_ZOOKEEPER
/* The ZooKeeper client's thread, no library lock held: hand the list to
 * the channel's loop. */
static void zk_providers(void *ud, const char *const *host_ports, size_t n) {
  tri_channel *ch = ud;
  tri__channel_update_addrs(ch, host_ports, n);
}
#endif

void tri__channel_update_addrs(tri_channel *ch, const char *const *host_ports,
                               size_t n) {
  char msg[600];
  snprintf(msg, sizeof(msg), "target '%s': the address list is empty%s",
           ch->target,
           strncmp(ch->target, "zookeeper:", 10) == 0
               ? " (ZooKeeper lists no provider speaking tri with this "
                 "group and version)"
               : "");
  tri__lb_post_addrs(ch->loop, host_ports, n, msg);
}

TRI_API int tri_channel_state(tri_channel *ch, int try_to_connect) {
  if (ch == NULL || !tri__loop_usable(ch->loop))
    return TRI_CHANNEL_SHUTDOWN;
  return tri__lb_state(ch->loop, try_to_connect);
}

TRI_API int tri_channel_wait_state_change(tri_channel *ch, int last,
                                          int64_t timeout_ms) {
  if (ch == NULL || last < TRI_CHANNEL_IDLE || last > TRI_CHANNEL_SHUTDOWN)
    return tri__fail(TRI_EINVAL, "tri_channel_wait_state_change: %s",
                     ch ? "last is not a TRI_CHANNEL_* value"
                        : "channel is NULL");
  if (!tri__loop_usable(ch->loop))
    return tri__fail(TRI_UNAVAILABLE, "channel was created before fork()");
  return tri__lb_wait_change(ch->loop, last, timeout_ms);
}

TRI_API void tri_channel_free(tri_channel *ch) {
  if (ch == NULL)
    return;
  if (!tri__loop_usable(ch->loop))
    return; /* inherited through fork(): its threads and state belong to
               the parent; the handle is abandoned, nothing is touched */
#ifdef HAVE_ZOOKEEPER
  if (ch->zk != NULL)
    tri__zk_watch_free(ch->zk); /* no more address lists after this */
#endif
  /* SHUTDOWN: state waiters wake and leave before the loop goes. */
  tri__lb_shutdown(ch->loop);
  /* Cancels every stream (their waiters wake), closes, joins tri-io. */
  tri__loop_join_free(ch->loop);
  tri__io_group_put(ch->group, ch->group_rx); /* may end its threads */
  tri__timers_release();
  tri__free(ch->target);
  tri__free(ch);
}

/* ---- streams ---------------------------------------------------------- */

static int method_valid(const char *m) {
  /* "/Service/Method": leading slash, one more slash, printable. */
  if (m == NULL || m[0] != '/')
    return 0;
  const char *slash = strchr(m + 1, '/');
  if (slash == NULL || slash == m + 1 || slash[1] == '\0')
    return 0;
  for (const char *p = m; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return 0;
  return 1;
}

/* |unary|: opened by a unary call, which may use the Triple form or the
 * JSON codec (tri_call_opts_set_protocol, tri_call_opts_set_codec);
 * streaming calls are always gRPC with protobuf.  With |prefill| (a gRPC
 * unary call), |req| is queued as the only message and the send side
 * closed before the I/O thread sees the stream, so the whole request
 * (HEADERS, DATA, END_STREAM) is one op and one wake-up. */
static int stream_open_req(tri_channel *ch, const char *method,
                           const tri_call_opts *opts, int unary,
                           int prefill, const void *req, size_t req_len,
                           tri_stream **out) {
  tri_stream *s;
  int rv;

  if (out == NULL)
    return tri__fail(TRI_EINVAL, "tri_stream_open: out is NULL");
  *out = NULL;
  if (ch == NULL)
    return tri__fail(TRI_EINVAL, "tri_stream_open: channel is NULL");
  if (!method_valid(method))
    return tri__fail(TRI_EINVAL, "method '%s': expected "
                     "/package.Service/Method (printable ASCII, no spaces)",
                     method ? method : "(null)");
  size_t max_recv = opts && opts->max_recv ? opts->max_recv
                                           : ch->opts.max_recv;
  s = tri__stream_new(TRI__CLIENT, max_recv, ch->opts.recv_queue,
                      ch->opts.send_buf);
  if (s == NULL)
    return tri__fail(TRI_ENOMEM, "out of memory opening a stream");
  s->spin_ns = ch->opts.spin_us * INT64_C(1000);
  s->max_recv_hint = opts && opts->max_recv
                         ? "this call's limit"
                         : "this channel's limit";
  s->max_recv_setter = opts && opts->max_recv
                           ? "tri_call_opts_set_max_recv_size"
                           : "tri_channel_opts_set_max_recv_size";
  if (tri__stream_set_method(s, method, strlen(method)) != TRI_OK) {
    rv = TRI_ENOMEM;
    goto fail;
  }
  if (opts) {
    if (tri__md_append(&s->req_md, &opts->md) != TRI_OK ||
        (opts->group && (s->group = tri__strdup(opts->group)) == NULL) ||
        (opts->version && (s->version = tri__strdup(opts->version)) == NULL)) {
      rv = TRI_ENOMEM;
      goto fail;
    }
    s->enc_out = opts->enc;
    s->wait_for_ready = opts->wait_for_ready;
    if (opts->timeout_ms > 0)
      s->deadline_ns = tri__deadline_after_ms(opts->timeout_ms);
    if (unary && opts->protocol == TRI_PROTOCOL_TRIPLE) {
      s->triple = tri__triple_new(opts->json);
      if (s->triple == NULL) {
        rv = TRI_ENOMEM;
        goto fail;
      }
    } else if (unary) {
      s->json = opts->json;
    }
  }
  if (prefill && s->triple == NULL) {
    rv = tri__stream_prefill_last(s, req, req_len);
    if (rv != TRI_OK) {
      tri__fail(rv, "tri_unary_call: %s", rv == TRI_EINVAL
                    ? "request is NULL or too large"
                    : "cannot queue the request");
      goto fail;
    }
  }
  /* The deadline also bounds connecting and waiting for a slot (1.3).
   * Armed before the I/O thread sees the stream: if it detached the
   * stream before the timer was armed, nothing would ever stop it and
   * the timer's reference would outlive the call. */
  tri__stream_arm_deadline(s);
  rv = tri__loop_open(ch->loop, s);
  if (rv != TRI_OK) {
    tri__fail(rv, tri__loop_usable(ch->loop)
                      ? "channel is being freed"
                      : "channel was created before fork(); create a new "
                        "one in this process");
    goto fail;
  }
  *out = s;
  return TRI_OK;

fail:
  if (tri__timer_stop(&s->deadline_timer))
    tri__stream_unref(s); /* the timer's reference */
  tri__stream_unref(s);
  return rv;
}

static int stream_open(tri_channel *ch, const char *method,
                       const tri_call_opts *opts, int unary,
                       tri_stream **out) {
  return stream_open_req(ch, method, opts, unary, 0, NULL, 0, out);
}

TRI_API int tri_stream_open(tri_channel *ch, const char *method,
                            const tri_call_opts *opts, tri_stream **out) {
  return stream_open(ch, method, opts, 0, out);
}

int tri__stream_open_unary(tri_channel *ch, const char *method,
                           const tri_call_opts *opts, tri_stream **out) {
  return stream_open(ch, method, opts, 1, out);
}

/* Send the request of a unary call: the Triple form's bare body
 * (compressed whole, content-encoding), or one gRPC message. */
static int unary_send(tri_stream *s, const void *req, size_t req_len) {
  uint8_t *comp = NULL;
  size_t clen = 0;
  int rv;

  if (s->triple == NULL)
    return tri_stream_send_ex(s, req, req_len, TRI_SEND_LAST, -1);
  if (s->enc_out != TRI__ENC_IDENTITY) {
    rv = tri__compress(s->enc_out, req, req_len, &comp, &clen);
    if (rv != TRI_OK)
      return rv;
    req = comp;
    req_len = clen;
  }
  rv = tri__stream_send_bare_last(s, req, req_len);
  tri__free(comp);
  return rv;
}

/* The JSON codec: the response's JSON -> protobuf binary in *|m|. */
static int unary_json_response(const ProtobufCMessageDescriptor *d,
                               tri_buf **m) {
  char err[200];
  uint8_t *pb = NULL;
  size_t n = 0;
  int rv = tri__json_to_pb(d, (const char *)tri_buf_data(*m),
                           tri_buf_len(*m), &pb, &n, err, sizeof err);
  tri_buf *b;

  if (rv != TRI_OK)
    return tri__fail(rv == TRI_ENOMEM ? rv : TRI_INTERNAL,
                     "cannot parse the JSON response of %zu bytes as %s: %s",
                     tri_buf_len(*m), d->name, err);
  b = tri__buf_new(n);
  if (b == NULL) {
    tri__free(pb);
    return tri__fail(TRI_ENOMEM, "out of memory converting the response");
  }
  if (n > 0)
    memcpy(b->data, pb, n);
  b->flags = (*m)->flags; /* TRI_BUF_COMPRESSED */
  tri__free(pb);
  tri_buf_free(*m);
  *m = b;
  return TRI_OK;
}

TRI_API int tri_unary_call(tri_channel *ch, const char *method,
                           const tri_call_opts *opts, const void *req,
                           size_t req_len, tri_buf **resp,
                           tri_stream **stream_out) {
  return tri__unary_call(ch, method, opts, req, req_len, NULL, NULL, resp,
                         stream_out);
}

int tri__unary_call(tri_channel *ch, const char *method,
                    const tri_call_opts *opts, const void *req,
                    size_t req_len, const ProtobufCMessageDescriptor *req_desc,
                    const ProtobufCMessageDescriptor *resp_desc,
                    tri_buf **resp, tri_stream **stream_out) {
  tri_stream *s = NULL;
  tri_buf *first = NULL, *extra = NULL;
  char *jreq = NULL;
  int rv;

  if (stream_out)
    *stream_out = NULL;
  if (resp == NULL)
    return tri__fail(TRI_EINVAL, "tri_unary_call: resp is NULL");
  *resp = NULL;
  if (opts != NULL && opts->json) {
    char err[200];
    size_t jlen = 0;

    if (req_desc == NULL || resp_desc == NULL)
      return tri__fail(TRI_EINVAL,
                       "the JSON codec needs the messages' descriptors: use "
                       "tri_unary_call_msg() or a generated stub, not "
                       "tri_unary_call()");
    rv = tri__pb_to_json(req_desc, req, req_len, &jreq, &jlen, err,
                         sizeof err);
    if (rv != TRI_OK)
      return tri__fail(rv, "cannot encode the request as JSON: %s", err);
    req = jreq;
    req_len = jlen;
  }
  /* The gRPC form goes to the I/O thread whole: one op, one wake-up. */
  int prefill = opts == NULL || opts->protocol != TRI_PROTOCOL_TRIPLE;
  rv = stream_open_req(ch, method, opts, 1, prefill, req, req_len, &s);
  if (rv != TRI_OK) { /* tri_last_error() is set */
    tri__free(jreq);
    return rv;
  }
  if (!prefill)
    rv = unary_send(s, req, req_len);
  tri__free(jreq);
  if (rv == TRI_EOF)
    rv = TRI_OK; /* the server already finished: read its status below */
  if (rv == TRI_OK) {
    rv = tri__stream_recv_more(s, &first); /* the trailers follow */
    if (rv == TRI_OK) {
      rv = tri_stream_recv(s, &extra);
      if (rv == TRI_OK) {
        /* 5.4: more than one response to a unary call.  The call ends
         * with that status (and the stream is reset), so the stream's
         * own final status says the same, not CANCELLED. */
        tri_buf_free(extra);
        tri__stream_abort(s, TRI_UNIMPLEMENTED,
                          "unary call: the server sent more than one "
                          "response", 1, TRI__END_RESET);
        rv = TRI_UNIMPLEMENTED;
      } else if (rv == TRI_EOF) {
        rv = TRI_OK;
      }
    } else if (rv == TRI_EOF) {
      rv = TRI_UNIMPLEMENTED; /* 5.4: OK status without a response */
    }
  }
  if (rv != TRI_OK && rv >= 0) {
    /* prefer the stream's own final status when it has one */
    int st = tri_stream_wait_status(s, 0, NULL);
    if (st != TRI_ETIMEDOUT && st != TRI_OK)
      rv = st;
  }
  if (rv == TRI_OK && opts != NULL && opts->json) {
    rv = unary_json_response(resp_desc, &first);
    if (rv != TRI_OK) {
      tri_buf_free(first);
      first = NULL;
      if (stream_out)
        *stream_out = s;
      else
        tri_stream_free(s);
      return rv; /* tri_last_error() says why */
    }
  }
  if (rv == TRI_OK) {
    *resp = first;
  } else {
    const char *msg = NULL;
    tri_buf_free(first);
    if (tri_stream_wait_status(s, 0, &msg) == TRI_ETIMEDOUT || msg == NULL ||
        *msg == '\0')
      msg = rv == TRI_UNIMPLEMENTED ? "unary call: not exactly one response"
                                    : tri_strerror(rv);
    tri__fail_msg(rv, msg); /* tri_last_error(): why the call failed */
  }
  if (stream_out)
    *stream_out = s;
  else
    tri_stream_free(s);
  return rv;
}
