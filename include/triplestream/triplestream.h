/*
 * libtriplestream: blocking gRPC / Apache Dubbo Triple streams over HTTP/2
 * for threaded C programs.
 *
 * This header is the reference manual.  Every declaration says:
 *   Ownership      who owns pointers passed in and out, and whether the
 *                  library keeps an argument after the call returns;
 *   Thread safety  "any thread" = safe concurrently on the same object;
 *                  "one thread at a time" = the caller serialises;
 *   Blocking       whether and until when the call can block;
 *   Returns        the codes it can return.
 *
 * Status codes: one enum, tri_code.  Values >= 0 are gRPC status codes as
 * carried on the wire (grpc-status); values < 0 are local conditions that
 * never travel (end of stream, wait timeout, misuse, out of memory).
 */
#ifndef TRIPLESTREAM_H
#define TRIPLESTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <triplestream/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BUILDING_TRIPLESTREAM) && defined(__GNUC__)
#define TRI_API __attribute__((visibility("default")))
#else
#define TRI_API
#endif

/* ------------------------------------------------------------------ */
/* Status codes                                                        */
/* ------------------------------------------------------------------ */

/*
 * X-macro list: name, value, text.  Append only; never renumber.
 * 0..16 are the gRPC status codes (doc/PROTOCOL.md section 10).
 */
#define TRI_CODE_MAP(X)                                                    \
  X(TRI_OK, 0, "ok")                                                       \
  X(TRI_CANCELLED, 1, "cancelled")                                         \
  X(TRI_UNKNOWN, 2, "unknown error")                                       \
  X(TRI_INVALID_ARGUMENT, 3, "invalid argument")                           \
  X(TRI_DEADLINE_EXCEEDED, 4, "deadline exceeded")                         \
  X(TRI_NOT_FOUND, 5, "not found")                                         \
  X(TRI_ALREADY_EXISTS, 6, "already exists")                               \
  X(TRI_PERMISSION_DENIED, 7, "permission denied")                         \
  X(TRI_RESOURCE_EXHAUSTED, 8, "resource exhausted")                       \
  X(TRI_FAILED_PRECONDITION, 9, "failed precondition")                     \
  X(TRI_ABORTED, 10, "aborted")                                            \
  X(TRI_OUT_OF_RANGE, 11, "out of range")                                  \
  X(TRI_UNIMPLEMENTED, 12, "unimplemented")                                \
  X(TRI_INTERNAL, 13, "internal error")                                    \
  X(TRI_UNAVAILABLE, 14, "unavailable")                                    \
  X(TRI_DATA_LOSS, 15, "data loss")                                        \
  X(TRI_UNAUTHENTICATED, 16, "unauthenticated")                            \
  X(TRI_EOF, -1, "end of stream")                                          \
  X(TRI_ETIMEDOUT, -2, "wait timed out; the stream is still usable")       \
  X(TRI_EINVAL, -3, "invalid argument to a library call")                  \
  X(TRI_ENOMEM, -4, "out of memory")                                       \
  X(TRI_ESTATE, -5, "operation not valid in the stream's current state")   \
  X(TRI_ENOSPC, -6, "message larger than the caller's buffer")             \
  X(TRI_ESYS, -7, "system call failed")

typedef enum {
#define TRI__CODE_ENUM(name, val, text) name = val,
  TRI_CODE_MAP(TRI__CODE_ENUM)
#undef TRI__CODE_ENUM
} tri_code;

/**
 * Describe a status code.
 *
 * Ownership: returns a static string; never NULL (unknown codes give a
 *   generic text).
 * Thread safety: any thread.
 * Since: 0.1
 */
TRI_API const char *tri_strerror(int code);

/**
 * Name of a status code as spelled in this header ("TRI_CANCELLED"), or
 * "TRI_?" for an unknown value.
 *
 * Ownership: static string, never NULL.  Thread safety: any thread.
 * Since: 0.1
 */
TRI_API const char *tri_code_name(int code);

/**
 * Why the last failing library call on this thread failed, in a sentence
 * that names the bad part and, where there is one, the setting that
 * changes it: "target 'localhost': missing port (expected HOST:PORT, ...)",
 * "bind 127.0.0.1:50051: Address already in use", or, after a failed
 * tri_unary_call(), the call's status message ("cannot resolve
 * 'nohost.invalid': Domain name not found").  Calls that succeed leave it
 * unchanged (like errno); "" before any failure.
 *
 * Ownership: thread-local storage, valid until the next failing library
 *   call on the same thread; copy it to keep it.
 * Thread safety: any thread; each thread has its own.
 * Since: 0.2
 */
TRI_API const char *tri_last_error(void);

/**
 * Library version string ("0.1.0"), for checking the header against the
 * library actually loaded (compare with TRI_VERSION).
 *
 * Ownership: static string.  Thread safety: any thread.  Since: 0.1
 */
TRI_API const char *tri_version(void);

/* ------------------------------------------------------------------ */
/* Opaque handles                                                      */
/* ------------------------------------------------------------------ */

typedef struct tri_channel tri_channel;           /* client connection  */
typedef struct tri_channel_opts tri_channel_opts; /* channel settings   */
typedef struct tri_call_opts tri_call_opts;       /* per-call settings  */
typedef struct tri_stream tri_stream;             /* one RPC, any kind  */
typedef struct tri_server tri_server;             /* listener + workers */
typedef struct tri_server_opts tri_server_opts;   /* server settings    */
typedef struct tri_metadata tri_metadata;         /* key/value list     */
typedef struct tri_buf tri_buf;                   /* one received message */
typedef struct tri_tls_opts tri_tls_opts;         /* TLS settings       */
typedef struct tri_auth tri_auth;                 /* a peer's TLS identity */
typedef struct tri_io_group tri_io_group;         /* I/O threads channels share */

/* ------------------------------------------------------------------ */
/* Metadata                                                            */
/* ------------------------------------------------------------------ */

/**
 * Create an empty metadata list.
 *
 * Ownership: the caller owns the result; free with tri_metadata_free().
 * Thread safety: a list is used by one thread at a time.
 * Returns: the list, or NULL when out of memory.
 * Since: 0.1
 */
TRI_API tri_metadata *tri_metadata_new(void);

/**
 * Free a metadata list.  NULL is allowed.
 * Ownership: takes |md|.  Thread safety: one thread at a time.  Since: 0.1
 */
TRI_API void tri_metadata_free(tri_metadata *md);

/**
 * Append one entry.  Keys are lowercase [0-9a-z_.-]+ and must not start
 * with "grpc-" (reserved, doc/PROTOCOL.md 2.12, 2.14).  For keys ending in
 * "-bin" the value is raw bytes (the library base64-encodes on the wire);
 * other values must be printable ASCII 0x20..0x7E.  Duplicate keys are kept
 * in order (2.13).
 *
 * Ownership: key and value are copied; nothing is kept.
 * Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL for a bad key or value (list unchanged);
 *   TRI_ENOMEM.
 * Since: 0.1
 */
TRI_API int tri_metadata_add(tri_metadata *md, const char *key,
                             const void *value, size_t value_len);

/** tri_metadata_add() with a NUL-terminated value.  Since: 0.1 */
TRI_API int tri_metadata_add_str(tri_metadata *md, const char *key,
                                 const char *value);

/**
 * Number of entries.  NULL counts as empty.
 * Thread safety: any thread once the list is no longer modified.  Since: 0.1
 */
TRI_API size_t tri_metadata_count(const tri_metadata *md);

/**
 * Entry |i| (0-based).  The value is NUL-terminated for convenience (the
 * terminator is not counted in *|value_len|); "-bin" values are decoded.
 *
 * Ownership: *|key| and *|value| point into |md| and stay valid until it is
 *   freed (for lists owned by a stream: until the stream is freed).
 * Thread safety: any thread once the list is no longer modified.
 * Returns: TRI_OK; TRI_EINVAL if |i| is out of range.
 * Since: 0.1
 */
TRI_API int tri_metadata_get(const tri_metadata *md, size_t i,
                             const char **key, const void **value,
                             size_t *value_len);

/**
 * First value for |key|, or NULL.  |value_len| may be NULL.
 * Ownership: as tri_metadata_get().  Since: 0.1
 */
TRI_API const void *tri_metadata_find(const tri_metadata *md, const char *key,
                                      size_t *value_len);

/* ------------------------------------------------------------------ */
/* Received messages                                                   */
/* ------------------------------------------------------------------ */

/** Flag of tri_buf_flags(): the message arrived compressed on the wire. */
#define TRI_BUF_COMPRESSED 0x01u

/**
 * Bytes of a received message (decompressed).  Never NULL, even for an
 * empty message, and always followed by one NUL byte that
 * tri_buf_len() does not count, so a text payload can be used as a C
 * string (a payload may itself contain NUL bytes).
 * Ownership: valid until tri_buf_free(|b|).  Thread safety: any thread;
 *   the buffer is the caller's.  Since: 0.1
 */
TRI_API const uint8_t *tri_buf_data(const tri_buf *b);
/** Length of a received message.  Since: 0.1 */
TRI_API size_t tri_buf_len(const tri_buf *b);
/** TRI_BUF_* flags of a received message.  Since: 0.1 */
TRI_API unsigned tri_buf_flags(const tri_buf *b);
/** Free a received message.  NULL is allowed.  Since: 0.1 */
TRI_API void tri_buf_free(tri_buf *b);

/* ------------------------------------------------------------------ */
/* Client: channel                                                     */
/* ------------------------------------------------------------------ */

/**
 * Create channel options with defaults:
 *   connect timeout 20000 ms (doc/PROTOCOL.md 1.7 MIN_CONNECT_TIMEOUT; a call's
 *   own deadline also bounds connecting), max receive message 4 MiB (3.5),
 *   per-stream send buffer 256 KiB, per-stream receive queue 1 MiB.
 *
 * Ownership: the caller owns the result; free with tri_channel_opts_free().
 *   Options are copied by tri_channel_new(); they can be freed after it.
 * Thread safety: one thread at a time.
 * Returns: the options or NULL when out of memory.
 * Since: 0.1
 */
TRI_API tri_channel_opts *tri_channel_opts_new(void);
/** Free channel options; NULL allowed.  Since: 0.1 */
TRI_API void tri_channel_opts_free(tri_channel_opts *o);
/** Connect timeout in ms (> 0).  Returns TRI_OK or TRI_EINVAL.  Since: 0.1 */
TRI_API int tri_channel_opts_set_connect_timeout_ms(tri_channel_opts *o,
                                                    int64_t ms);
/** Default max receive message size for calls (bytes, > 0).  Since: 0.1 */
TRI_API int tri_channel_opts_set_max_recv_size(tri_channel_opts *o,
                                               size_t bytes);
/**
 * Per-stream send buffer (bytes, >= 1024).  tri_stream_send() blocks while
 * the buffer is full; it drains as HTTP/2 flow control lets bytes out.
 * Since: 0.1
 */
TRI_API int tri_channel_opts_set_send_buffer(tri_channel_opts *o,
                                             size_t bytes);
/**
 * Per-stream receive queue (bytes, >= 1024): complete messages the
 * application has not taken yet.  Past it the library stops returning
 * HTTP/2 window to the peer, so a slow reader bounds memory.  Since: 0.1
 */
TRI_API int tri_channel_opts_set_recv_queue(tri_channel_opts *o, size_t bytes);
/**
 * How long a thread blocked in tri_stream_recv() on this channel's
 * streams (and a unary call waiting for its answer) first stays on the
 * CPU, watching for the answer, before it sleeps on the stream's
 * condition variable; in microseconds, 0 .. 10000.  Default 200, or the
 * environment variable TRI_SPIN_US (read once per process) when it holds
 * a number in that range (anything else is ignored).  0 never spins.
 * Only a recv that follows a send on the same stream spins (it waits
 * for an answer a round trip away); a reader of a stream of messages
 * does not.
 *
 * An answer that comes within the budget (a round trip on loopback or a
 * fast LAN) then costs no sleep and wake-up: on a 2-CPU virtual machine
 * one-at-a-time round trips and calls ran 1.6 to 1.8 times as fast.  The
 * thread gives the CPU away between looks (sched_yield), at most half
 * the CPUs this process may run on spin at once (none with one CPU),
 * and a thread whose spin did not
 * pay off parks at once on its next 1, 2, 4 ... 64 waits, so waits that
 * are long cost little.  Set 0 where CPU time matters more than
 * latency (battery, busy shared hosts).  Only the wait's start changes:
 * wake-ups, deadlines and cancellation behave as with 0
 * (doc/DESIGN.md, "Spinning before a wait").
 *
 * Ownership: none.
 * Thread safety: one thread at a time per options object.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (|o| NULL, us < 0 or us > 10000).
 * Since: 0.3
 */
TRI_API int tri_channel_opts_set_spin_us(tri_channel_opts *o, int us);
/**
 * Send HTTP/2 PINGs after |ms| without reading anything and close the
 * connection (calls fail UNAVAILABLE) if nothing arrives within
 * |timeout_ms|.  0 disables (the default).  Values below 10000 are raised
 * to 10000 (doc/PROTOCOL.md 8.6).  Pings go out only while a call is open
 * unless tri_channel_opts_set_keepalive_permit_without_calls() (gRPC A8).
 * Since: 0.1
 */
TRI_API int tri_channel_opts_set_keepalive(tri_channel_opts *o, int64_t ms,
                                           int64_t timeout_ms);

/**
 * Budget of unread received messages per connection (bytes, >= 65536;
 * default 64 MiB): complete messages queued on its streams that the
 * application has not read.  Past it the library stops returning
 * connection-level HTTP/2 window until the application reads, so many
 * slow readers cannot grow memory without bound.  A message still being
 * received is not counted (it cannot be read before it is complete); it is
 * bounded by the stream's window and the receive size limit.  Since: 0.1
 */
TRI_API int tri_channel_opts_set_conn_recv_queue(tri_channel_opts *o,
                                                 size_t bytes);

/* ------------------------------------------------------------------ */
/* TLS and mutual TLS                                                  */
/* ------------------------------------------------------------------ */

/*
 * One tri_tls_opts describes either side's TLS: a channel uses the CA
 * settings to verify the server, the server name to check and send (SNI),
 * and an optional certificate and key of its own (mutual TLS); a server
 * uses its certificate and key, optional per-name certificates (SNI), and
 * the CA settings and client_auth mode to verify client certificates.
 * Every connection negotiates TLS 1.2 or 1.3 with ALPN "h2" (HTTP/2 over
 * TLS, RFC 9113 section 3.2; TLS 1.2 with ECDHE and AEAD ciphers only,
 * section 9.2).  Files are PEM and are read when the channel or server is
 * created (and again by tri_server_reload_tls()), not by the setters.
 *
 * Needs a library built with OpenSSL 3 (configure --with-openssl, on when
 * libssl-dev is found).  In a build without it the tri_tls_opts functions
 * work, but tri_channel_opts_set_tls() and tri_server_opts_set_tls()
 * return TRI_UNIMPLEMENTED; a channel created anyway with those options
 * never talks in clear text: its calls end with TRI_UNIMPLEMENTED "TLS is
 * not available: ...", and tri_server_new() refuses such options.
 */

/** Client certificate policy of a TLS server
 * (tri_tls_opts_set_client_auth()). */
enum {
  TRI_TLS_CLIENT_NONE = 0,  /* do not ask for a client certificate */
  TRI_TLS_CLIENT_REQUEST,   /* ask; a client may send none, but one it
                               sends must verify against the CA */
  TRI_TLS_CLIENT_REQUIRE    /* a verified client certificate is required */
};

/**
 * Create empty TLS options: no CA (a channel then verifies servers with
 * the system's CA store), no certificate, no server name override,
 * TRI_TLS_CLIENT_NONE.
 *
 * Ownership: the caller owns the result; free with tri_tls_opts_free().
 *   tri_channel_opts_set_tls() and tri_server_opts_set_tls() copy it.
 * Thread safety: one thread at a time.
 * Returns: the options, or NULL when out of memory.
 * Since: 0.2
 */
TRI_API tri_tls_opts *tri_tls_opts_new(void);
/** Free TLS options; NULL allowed.  Ownership: takes |o|.  Thread
 * safety: once, with no other call on |o| running.  Since: 0.2 */
TRI_API void tri_tls_opts_free(tri_tls_opts *o);

/**
 * Trust the CA certificates in the PEM file |path| (NULL: none).  A
 * channel verifies the server's chain with them; a server verifies
 * client certificates with them and names them in its certificate request.
 * Setting a CA file or directory turns the system CA store off unless
 * tri_tls_opts_set_use_system_ca() turns it on again.
 *
 * Ownership: |path| is copied.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (empty path); TRI_ENOMEM.
 * Since: 0.2
 */
TRI_API int tri_tls_opts_set_ca_file(tri_tls_opts *o, const char *path);
/** Trust the CA certificates of an OpenSSL hashed directory (c_rehash);
 * NULL: none.  The directory must exist and be readable when the channel
 * or server is created (checked then); OpenSSL reads its files lazily,
 * during verification, on the I/O thread.  Ownership, thread safety,
 * returns: as tri_tls_opts_set_ca_file().  Since: 0.2 */
TRI_API int tri_tls_opts_set_ca_dir(tri_tls_opts *o, const char *path);
/**
 * Also trust the system's CA store (|on| non-zero) or not.  Default: on
 * for a channel without a CA file or directory, off otherwise (and off
 * for client certificates on a server unless set).  On a server with
 * client certificates, the system store accepts any publicly trusted
 * client-auth certificate: prefer a CA file of your own there.
 * Ownership: nothing kept.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL.  Since: 0.2
 */
TRI_API int tri_tls_opts_set_use_system_ca(tri_tls_opts *o, int on);

/**
 * The certificate chain (PEM, leaf first) and private key (PEM) this side
 * presents: required for a server (its default certificate); optional for
 * a channel (mutual TLS).  Both NULL clears them.
 *
 * Ownership: the paths are copied.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (one NULL, or an empty path); TRI_ENOMEM.
 * Since: 0.2
 */
TRI_API int tri_tls_opts_set_cert_key(tri_tls_opts *o, const char *cert_file,
                                      const char *key_file);

/**
 * Channel: the name to verify the server's certificate against and to send
 * as SNI, instead of the target's host (gRPC's ssl_target_name_override);
 * it is also sent as :authority.  A DNS name ("api.example.com") or a
 * numeric address ("10.0.0.1", "::1"; checked against IP SANs, no SNI).
 * NULL: the target's host ("localhost" for Unix sockets).  Names are
 * matched to the certificate's DNS SANs only, never its subject CN
 * (wildcards only as a whole left-most label, RFC 6125).  Ignored by
 * servers.
 *
 * Ownership: |name| is not kept.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (empty or with characters a host name cannot
 *   have); TRI_ENOMEM.
 * Since: 0.2
 */
TRI_API int tri_tls_opts_set_server_name(tri_tls_opts *o, const char *name);

/**
 * Server: ask for client certificates (TRI_TLS_CLIENT_*).  REQUEST and
 * REQUIRE verify what the client sends against the CA file/directory,
 * which must then be set.  Ignored by channels.
 * Ownership: nothing kept.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (unknown mode).  Since: 0.2
 */
TRI_API int tri_tls_opts_set_client_auth(tri_tls_opts *o, int mode);

/**
 * Server: present |cert_file| / |key_file| to clients that ask for |name|
 * with SNI ("api.example.com", or "*.example.com" for any one label in
 * its place; case-insensitive).  The first matching entry wins; clients
 * that send no SNI or an unlisted name get the default certificate of
 * tri_tls_opts_set_cert_key().  Ignored by channels.
 *
 * Ownership: the strings are copied.  Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (NULL or a malformed name); TRI_ENOMEM.
 * Since: 0.2
 */
TRI_API int tri_tls_opts_add_sni_cert(tri_tls_opts *o, const char *name,
                                      const char *cert_file,
                                      const char *key_file);

/**
 * Make the channel's connections TLS with |tls| (NULL: clear text again,
 * the default).  The files are loaded by tri_channel_new(), which fails
 * with TRI_EINVAL and a message naming the file if one cannot be used.
 * A failed handshake ends the calls waiting for the connection with
 * TRI_UNAVAILABLE "TLS handshake with HOST:PORT failed: REASON", e.g.
 * "certificate verify failed: unable to get local issuer certificate" or
 * "peer did not negotiate h2 (ALPN)"; the connect timeout (and each
 * call's deadline) bounds the handshake.
 *
 * Ownership: |tls| is copied; nothing is kept.
 * Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL; TRI_ENOMEM; TRI_UNIMPLEMENTED when the
 *   library was built without OpenSSL (tri_last_error() says so; the
 *   options still ask for TLS, see above).
 * Since: 0.2
 */
TRI_API int tri_channel_opts_set_tls(tri_channel_opts *o,
                                     const tri_tls_opts *tls);

/**
 * Create a channel to |target| (README "Targets and load balancing",
 * doc/PROTOCOL.md 17):
 *   "HOST:PORT", "[V6ADDR]:PORT", "dns:///HOST:PORT"  every A and AAAA
 *       record of HOST (resolved asynchronously with c-ares on the
 *       channel's I/O thread; again after a connection loss, at most every
 *       30 s);
 *   "ipv4:A:P[,A:P...]", "ipv6:[A]:P[,[A]:P...]"  fixed addresses;
 *   "unix:PATH" (or "unix:///PATH"), "unix-abstract:NAME";
 *   "zookeeper://ZKHOST:PORT[,...]/INTERFACE[?group=G&version=V]"  the
 *       Dubbo providers of INTERFACE speaking tri (needs a build with
 *       libzookeeper, else TRI_UNIMPLEMENTED).
 * An IPv6 address needs brackets.  Cleartext HTTP/2 with prior knowledge
 * (doc/PROTOCOL.md 1.1), or HTTP/2 over TLS when the options ask for it
 * (tri_channel_opts_set_tls()).  The channel starts IDLE and connects on
 * the first stream (or tri_channel_state(ch, 1)); the load-balancing
 * policy (tri_channel_opts_set_lb_policy()) decides over how many of the
 * addresses; lost connections are remade on demand, failed attempts are
 * retried with backoff (tri_channel_opts_set_backoff()).  All of a
 * channel's connections share its one I/O thread: its own, or one of an
 * I/O group (tri_channel_opts_set_io_group()).
 *
 * Ownership: |target| and |opts| (NULL = defaults) are copied.  The caller
 *   owns *|out|; free with tri_channel_free().
 * Thread safety: any thread.
 * Blocking: no (name resolution happens when connecting).
 * Returns: TRI_OK; TRI_EINVAL (malformed target: tri_last_error() names
 *   the bad part, e.g. "target 'localhost': missing port (expected ...)";
 *   or TLS files that cannot be used, named with the reason);
 *   TRI_UNAVAILABLE (the options' I/O group was created before a fork()
 *   in the parent); TRI_ENOMEM; TRI_ESYS.
 * Since: 0.1
 */
TRI_API int tri_channel_new(tri_channel **out, const char *target,
                            const tri_channel_opts *opts);

/**
 * Connectivity state of a channel (gRPC connectivity-semantics-and-api.md;
 * doc/DESIGN.md "Channels and subchannels").
 *   IDLE                no connection and none wanted (new channel, or the
 *                       connection was lost or drained; the next call
 *                       connects);
 *   CONNECTING          an attempt is in progress;
 *   READY               a connection is up (pick_first) or at least one
 *                       (round_robin);
 *   TRANSIENT_FAILURE   the last attempts failed; reattempts follow the
 *                       backoff.  Calls fail at once with UNAVAILABLE and
 *                       the reason unless they wait for ready
 *                       (tri_call_opts_set_wait_for_ready());
 *   SHUTDOWN            tri_channel_free() has begun.
 * Since: 0.3
 */
typedef enum tri_channel_state {
  TRI_CHANNEL_IDLE = 0,
  TRI_CHANNEL_CONNECTING = 1,
  TRI_CHANNEL_READY = 2,
  TRI_CHANNEL_TRANSIENT_FAILURE = 3,
  TRI_CHANNEL_SHUTDOWN = 4
} tri_channel_state_t;

/**
 * The channel's connectivity state now; with |try_to_connect| non-zero an
 * IDLE channel starts connecting (the state returned is still IDLE).
 *
 * Ownership: none.
 * Thread safety: any thread.
 * Blocking: no.
 * Returns: a TRI_CHANNEL_* value (TRI_CHANNEL_SHUTDOWN for NULL).
 * Since: 0.3
 */
TRI_API int tri_channel_state(tri_channel *ch, int try_to_connect);

/**
 * Wait until the channel's state differs from |last| (a value from
 * tri_channel_state()), at most |timeout_ms| (-1: no limit).
 * tri_channel_free() from another thread wakes the waiter (the state is
 * then TRI_CHANNEL_SHUTDOWN) and waits for it to return before freeing;
 * calling this after tri_channel_free() has returned is a use after free.
 *
 * Ownership: none.
 * Thread safety: any thread, any number of waiters.
 * Blocking: until the state changes, the timeout, or tri_channel_free().
 * Returns: TRI_OK (the state changed: read it with tri_channel_state());
 *   TRI_DEADLINE_EXCEEDED (timeout, state unchanged); TRI_UNAVAILABLE when
 *   |last| is TRI_CHANNEL_SHUTDOWN and the channel is shut down (it never
 *   changes again); TRI_EINVAL (NULL, bad |last|).
 * Since: 0.3
 */
TRI_API int tri_channel_wait_state_change(tri_channel *ch, int last,
                                          int64_t timeout_ms);

/**
 * Load-balancing policy (gRPC load-balancing.md): "pick_first" (the
 * default: one connection, to the first address that answers, in order)
 * or "round_robin" (one connection per address; calls go to the READY
 * ones in turn; a failing address is skipped until it reconnects).
 *
 * Ownership: |name| is not kept.  Thread safety: one thread at a time.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL, or an unknown name:
 *   tri_last_error() lists the known ones).
 * Since: 0.3
 */
TRI_API int tri_channel_opts_set_lb_policy(tri_channel_opts *o,
                                           const char *name);

/**
 * Connection backoff (gRPC connection-backoff.md): the first reattempt
 * comes |initial_ms| after the start of the failed attempt, each next one
 * 1.6 times later (jitter +-20 %), at most |max_ms|.  Defaults 1000 and
 * 120000.  A connection that was READY and is lost is remade at once (on
 * demand); the backoff applies only between failed attempts.
 *
 * Ownership: none.  Thread safety: one thread at a time.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL, initial_ms <= 0, max_ms <
 *   initial_ms).
 * Since: 0.3
 */
TRI_API int tri_channel_opts_set_backoff(tri_channel_opts *o,
                                         int64_t initial_ms, int64_t max_ms);

/**
 * Create a group of |nthreads| I/O threads ("tri-io") that many channels
 * can share (tri_channel_opts_set_io_group()).  By default each channel
 * has an I/O thread of its own, which is the fastest for one busy
 * channel; a program with hundreds of channels, most of them idle, saves
 * a thread and its stack per channel by sharing a few.  A channel stays
 * on the thread it was placed on (the one with the fewest channels when
 * it is created); a pass of a shared thread handles only the channels
 * that have work, so idle channels cost it nothing.  Every blocking call
 * keeps its ways out (close, cancel, deadline, peer, connection loss) on
 * a shared thread.
 *
 * Ownership: the caller owns *|out| and drops it with tri_io_group_free();
 *   each channel placed on the group holds a reference of its own, so the
 *   group may be freed before its channels.
 * Thread safety: any thread.
 * Blocking: no (starts the threads).
 * Returns: TRI_OK; TRI_EINVAL (|out| NULL, |nthreads| < 1 or > 256);
 *   TRI_ENOMEM; TRI_ESYS (a thread could not be started).
 * Since: 0.3
 */
TRI_API int tri_io_group_new(int nthreads, tri_io_group **out);

/**
 * Drop the caller's reference to |g| (NULL: no-op).  The threads end when
 * the last channel placed on the group is freed too; then this call (or
 * that tri_channel_free()) joins them.  A group inherited through fork()
 * is abandoned: its threads belong to the parent.
 *
 * Ownership: |g| must not be used by the caller afterwards.
 * Thread safety: any thread, once per tri_io_group_new().
 * Blocking: joins the threads when it drops the last reference.
 * Since: 0.3
 */
TRI_API void tri_io_group_free(tri_io_group *g);

/**
 * Place channels created with |o| on a thread of |g| instead of a thread
 * of their own (NULL: their own, the default).  See tri_io_group_new().
 *
 * Ownership: |g| is not referenced by |o|: it must stay valid until the
 *   last tri_channel_new() with these options returns; each channel
 *   takes its own reference.
 * Thread safety: one thread at a time.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (|o| NULL).
 * Since: 0.3
 */
TRI_API int tri_channel_opts_set_io_group(tri_channel_opts *o,
                                          tri_io_group *g);

/**
 * Keepalive PINGs also while no call is open (gRPC A8
 * GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS).  Off by default: most servers
 * (grpc-go, dubbo-go, gRPC C++) answer pings on an idle connection with
 * GOAWAY ENHANCE_YOUR_CALM "too_many_pings".  Needs
 * tri_channel_opts_set_keepalive().  After such a GOAWAY the channel
 * doubles its keepalive interval for new connections.
 *
 * Ownership: none.  Thread safety: one thread at a time.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL).
 * Since: 0.3
 */
TRI_API int tri_channel_opts_set_keepalive_permit_without_calls(
    tri_channel_opts *o, int permit);

/**
 * Free a channel: cancels every stream still open on it (their blocked
 * callers return TRI_CANCELLED), closes the connection and joins the I/O
 * thread.  Streams opened on it stay valid handles (free them as usual)
 * but every call on them fails with the final status.  NULL allowed.
 *
 * Ownership: takes |ch|.
 * Thread safety: call once, from a thread that is not inside another call
 *   on |ch| (other threads may be blocked on its streams: they are woken).
 * Blocking: until the I/O thread has exited (bounded; it never waits on
 *   the application).
 * Since: 0.1
 */
TRI_API void tri_channel_free(tri_channel *ch);

/* ------------------------------------------------------------------ */
/* Client: call options                                                */
/* ------------------------------------------------------------------ */

/**
 * Create call options: no deadline, no metadata, the channel's max receive
 * size, no compression.
 *
 * Ownership: caller owns; tri_call_opts_free().  Options are copied when a
 *   stream is opened, so one object can serve many calls.
 * Thread safety: one thread at a time while being modified; any thread may
 *   use an unmodified object in tri_stream_open().
 * Since: 0.1
 */
TRI_API tri_call_opts *tri_call_opts_new(void);
/** Free call options; NULL allowed.  Since: 0.1 */
TRI_API void tri_call_opts_free(tri_call_opts *o);
/**
 * Deadline relative to the moment the stream is opened, in ms (> 0);
 * -1 removes it.  Sent as grpc-timeout (doc/PROTOCOL.md 2.7), enforced locally
 * by the timer thread, and bounds connecting and waiting for a stream slot.
 * Since: 0.1
 */
TRI_API int tri_call_opts_set_timeout_ms(tri_call_opts *o, int64_t ms);
/**
 * Append request metadata; same rules as tri_metadata_add().
 * Returns TRI_OK, TRI_EINVAL, TRI_ENOMEM.  Since: 0.1
 */
TRI_API int tri_call_opts_add_metadata(tri_call_opts *o, const char *key,
                                       const void *value, size_t value_len);
/** Max size of one received message for this call (bytes, > 0).  Since: 0.1 */
TRI_API int tri_call_opts_set_max_recv_size(tri_call_opts *o, size_t bytes);
/**
 * Compress request messages with |encoding| ("gzip", "deflate", "identity"
 * or NULL for none).  Returns TRI_UNIMPLEMENTED if this build lacks it.
 * Since: 0.1
 */
TRI_API int tri_call_opts_set_compression(tri_call_opts *o,
                                          const char *encoding);
/**
 * Dubbo service group / version (tri-service-group, tri-service-version
 * headers, doc/PROTOCOL.md 11.4); NULL clears.  Copied.  Since: 0.1
 */
TRI_API int tri_call_opts_set_service_group(tri_call_opts *o,
                                            const char *group);
/** See tri_call_opts_set_service_group().  Since: 0.1 */
TRI_API int tri_call_opts_set_service_version(tri_call_opts *o,
                                              const char *version);
/**
 * Wait for ready (gRPC): while the channel is in TRANSIENT_FAILURE (or
 * connecting), the call waits for a READY connection instead of failing
 * at once with UNAVAILABLE.  The wait is bounded by the call's deadline
 * and ends with cancel or tri_channel_free().  Off by default.
 *
 * Ownership: none.  Thread safety: one thread at a time.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL).
 * Since: 0.3
 */
TRI_API int tri_call_opts_set_wait_for_ready(tri_call_opts *o, int on);

/** Wire protocols of tri_call_opts_set_protocol(). */
enum {
  TRI_PROTOCOL_GRPC = 0,  /* gRPC over HTTP/2 (default) */
  TRI_PROTOCOL_TRIPLE = 1 /* Triple's HTTP unary form for unary calls */
};

/**
 * Choose the wire form of unary calls (doc/PROTOCOL.md "Triple unary
 * (client)").  TRI_PROTOCOL_GRPC (the default): every call is a gRPC call
 * (length-prefixed messages, grpc-status in trailers).
 * TRI_PROTOCOL_TRIPLE: tri_unary_call(), tri_unary_call_msg() and the
 * generated unary stubs send the Triple HTTP unary form over HTTP/2: the
 * bare message as the request body, content-type application/proto (or
 * application/json, see tri_call_opts_set_codec()), tri-protocol-version
 * 1.0.0, the deadline as tri-service-timeout (ms; still enforced locally),
 * group/version as tri-service-group/-version, metadata as headers and
 * compression as content-encoding.  The response is HTTP 200 with the bare
 * message, or an error: a JSON body {"code": "not_found", "message": ...}
 * (a Connect-style code name, or a numeric code/status) gives that status;
 * otherwise the HTTP status is mapped to a code (5.1).  Response headers
 * become the response metadata, "trailer-"-prefixed headers and HTTP/2
 * trailers the trailing metadata.
 * Streaming calls (tri_stream_open()) always use the gRPC form, whatever
 * this says: the Triple specification carries streams only that way.
 *
 * Ownership: none.  Thread safety: as the other setters.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL, or an unknown protocol).
 * Since: 0.3
 */
TRI_API int tri_call_opts_set_protocol(tri_call_opts *o, int protocol);

/**
 * Message codec of unary calls: "proto" (binary protobuf, the default) or
 * "json" (the proto3 JSON mapping, doc/PROTOCOL.md "JSON mapping").  With
 * "json" a Triple unary call sends application/json and a gRPC unary call
 * application/grpc+json; the library converts between the protobuf-c
 * messages and JSON with their descriptors, so it needs
 * tri_unary_call_msg() or a generated stub: tri_unary_call() with "json"
 * fails with TRI_EINVAL (it has no descriptors).  Streaming calls always
 * use "proto".
 *
 * Ownership: |codec| is not kept.  Thread safety: as the other setters.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL or unknown name); TRI_UNIMPLEMENTED
 *   for "json" in a build without jansson (configure --with-jansson).
 * Since: 0.3
 */
TRI_API int tri_call_opts_set_codec(tri_call_opts *o, const char *codec);

/* ------------------------------------------------------------------ */
/* Streams: client side                                                */
/* ------------------------------------------------------------------ */

/**
 * Open a stream (any RPC kind) for |method|, a full path
 * "/package.Service/Method".  Request HEADERS go out at once (doc/PROTOCOL.md
 * 11.9), so the server sees the call before the first message.  When the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached the stream waits for a
 * slot until its deadline (1.3); when the channel is not connected it
 * connects.  Neither wait happens in this call: its outcome shows in the
 * first send/recv.
 *
 * Ownership: |method| and |opts| are copied.  The caller owns *|out| and
 *   must tri_stream_free() it.
 * Thread safety: any thread.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (bad method path); TRI_ENOMEM;
 *   TRI_UNAVAILABLE when the channel is being freed.
 * Since: 0.1
 */
TRI_API int tri_stream_open(tri_channel *ch, const char *method,
                            const tri_call_opts *opts, tri_stream **out);

/**
 * Unary call: send |req|, half-close, receive exactly one response.
 *
 * Ownership: |req| is copied.  On TRI_OK *|resp| belongs to the caller
 *   (tri_buf_free()).  If |stream_out| is not NULL the finished stream is
 *   returned in it whenever one was opened, whatever the outcome (read its
 *   headers, trailers and status message; tri_stream_free() it); it is
 *   NULL when the call failed before opening one (TRI_EINVAL, TRI_ENOMEM,
 *   a channel being freed).  Otherwise the stream is freed.  On failure
 *   tri_last_error() holds the status message, so one call after the
 *   unary call says why.
 * Thread safety: any thread.
 * Blocking: until the call ends; bounded by the deadline in |opts|.
 * Returns: TRI_OK, or the call's failing status (TRI_UNAVAILABLE,
 *   TRI_DEADLINE_EXCEEDED, a status from the server, ...); a response
 *   count other than one with status OK gives TRI_UNIMPLEMENTED (5.4);
 *   TRI_EINVAL when |opts| chose the "json" codec, which needs
 *   descriptors (tri_unary_call_msg()).  The wire form follows
 *   tri_call_opts_set_protocol().
 * Since: 0.1
 */
TRI_API int tri_unary_call(tri_channel *ch, const char *method,
                           const tri_call_opts *opts, const void *req,
                           size_t req_len, tri_buf **resp,
                           tri_stream **stream_out);

/* ------------------------------------------------------------------ */
/* Streams: both sides                                                 */
/* ------------------------------------------------------------------ */

/** Flags for tri_stream_send_ex(). */
#define TRI_SEND_NO_COMPRESS 0x01u /* this message goes out uncompressed */
/* The last message: after it the client half-closes, and the server
 * finishes the call with status OK (tri_stream_finish(s, TRI_OK, NULL)),
 * both in the same write as the message (one wake-up of the I/O thread,
 * one TCP segment for a small response and its trailers).  A server adds
 * its trailers before such a send; after it, tri_stream_add_trailer(),
 * tri_stream_finish() and further sends return TRI_ESTATE.  (Before 0.3
 * servers ignored the flag.) */
#define TRI_SEND_LAST 0x02u

/**
 * Send one message: blocks while the stream's bounded send buffer is full
 * (HTTP/2 flow control), then returns once the whole message is queued.
 * Equivalent to tri_stream_send_ex(s, data, len, 0, -1).
 *
 * Ownership: |data| is copied; not kept.
 * Thread safety: one sender per stream at a time; concurrently with recv,
 *   cancel and status calls from other threads.
 * Blocking: until queued, or the stream ends (cancel, deadline, reset,
 *   connection loss, server finished).
 * Returns: TRI_OK; TRI_EOF if the stream already ended with status OK, or
 *   (client) after tri_stream_close_send(); otherwise the stream's final
 *   status (TRI_CANCELLED, TRI_DEADLINE_EXCEEDED, TRI_UNAVAILABLE, ...).
 *   On server streams after tri_stream_finish(): TRI_ESTATE.
 * Since: 0.1
 */
TRI_API int tri_stream_send(tri_stream *s, const void *data, size_t len);

/**
 * tri_stream_send() with TRI_SEND_* |flags| and its own |timeout_ms|
 * (-1 = none, 0 = do not wait).  All or nothing: the call waits until the
 * whole message fits in the send buffer (a message larger than the buffer
 * waits for it to be empty), and on TRI_ETIMEDOUT nothing of the message
 * was queued, so it is never cut in half on the wire.  The stream stays
 * usable after TRI_ETIMEDOUT.
 * Since: 0.1
 */
TRI_API int tri_stream_send_ex(tri_stream *s, const void *data, size_t len,
                               unsigned flags, int timeout_ms);

/**
 * Receive the next message into a buffer the library allocates.
 * Equivalent to tri_stream_recv_ex(s, msg, -1).
 *
 * Ownership: on TRI_OK *|msg| belongs to the caller (tri_buf_free()).
 * Thread safety: one receiver per stream at a time; concurrently with
 *   send, cancel and status calls from other threads.
 * Blocking: until a message, end of stream, cancel, deadline, reset or
 *   connection loss.  Holds no library lock while blocked.
 * Returns: TRI_OK; TRI_EOF when the peer finished cleanly (client: final
 *   status OK; server: client half-closed); otherwise the final status
 *   (TRI_CANCELLED, TRI_DEADLINE_EXCEEDED, TRI_UNAVAILABLE,
 *   TRI_RESOURCE_EXHAUSTED for an over-limit message, or the server's
 *   status).  Messages that arrived before the peer ended the stream are
 *   delivered first, except when the call ended locally or was cut off:
 *   a cancel or deadline, and on a server also a client reset, a limit
 *   the library enforced (over-size, bad compression) or a shutdown drop
 *   what is queued and report the status at once.
 * Since: 0.1
 */
TRI_API int tri_stream_recv(tri_stream *s, tri_buf **msg);

/**
 * tri_stream_recv() with its own |timeout_ms| (-1 = none, 0 = poll).
 * Returns TRI_ETIMEDOUT when it passes; the stream stays usable.
 * Since: 0.1
 */
TRI_API int tri_stream_recv_ex(tri_stream *s, tri_buf **msg, int timeout_ms);

/**
 * Receive the next message into the caller's buffer |buf| of |cap| bytes.
 * *|len| gets the message length.  If the message is longer than |cap|,
 * returns TRI_ENOSPC with *|len| = its length and leaves it queued, so a
 * retry with a larger buffer (or tri_stream_recv()) gets it.
 *
 * Ownership: |buf| is the caller's and not kept.
 * Thread safety, Blocking, other Returns: as tri_stream_recv_ex().
 * Since: 0.1
 */
TRI_API int tri_stream_recv_into(tri_stream *s, void *buf, size_t cap,
                                 size_t *len, int timeout_ms);

/**
 * Client: half-close (END_STREAM); the server sees end of input.  Queued
 * messages still go out first.  Idempotent.
 * Server: not valid (use tri_stream_finish()).
 *
 * Thread safety: any thread.  Blocking: no.
 * Returns: TRI_OK (also when already half-closed or ended); TRI_ESTATE on
 *   a server stream.
 * Since: 0.1
 */
TRI_API int tri_stream_close_send(tri_stream *s);

/**
 * Cancel the stream: RST_STREAM(CANCEL) goes to the peer, and every thread
 * blocked on |s| returns TRI_CANCELLED at once (doc/PROTOCOL.md 7.1, 7.4).  No
 * effect on a stream that has already ended.  Frees nothing: other threads
 * may keep using |s| until it is freed.
 *
 * Thread safety: any thread, any time, any number of times.
 * Blocking: no.
 * Since: 0.1
 */
TRI_API void tri_stream_cancel(tri_stream *s);

/**
 * Release the caller's handle.  A stream that has not ended is cancelled
 * first.  Memory goes when the library's own references (I/O thread,
 * timer, threads still inside calls on |s|) are dropped too, so a thread
 * blocked in tri_stream_recv() on |s| is woken with TRI_CANCELLED, never
 * left with a dangling pointer.  NULL allowed.
 *
 * Ownership: takes the caller's reference.
 * Thread safety: once per handle; other threads blocked in calls on |s|
 *   are woken; no new calls may start after it.
 * Blocking: no.
 * Since: 0.1
 */
TRI_API void tri_stream_free(tri_stream *s);

/**
 * Wait for the stream's final status (client) and return it: TRI_OK or an
 * error status.  |message| (may be NULL) gets the status message ("" when
 * none).  Does not consume messages; call after recv returned TRI_EOF or an
 * error, or after cancel.
 *
 * Ownership: *|message| is valid until the stream is freed.
 * Thread safety: any thread.
 * Blocking: until the stream ends or |timeout_ms| (-1 = none) passes.
 * Returns: the final status, or TRI_ETIMEDOUT.
 * Since: 0.1
 */
TRI_API int tri_stream_wait_status(tri_stream *s, int timeout_ms,
                                   const char **message);

/**
 * The peer's initial metadata.  Client: the response headers, waiting for
 * them up to |timeout_ms| (-1 = until they arrive or the stream ends; a
 * trailers-only response has none, so an empty list is returned).  Server:
 * the request headers (no wait).  Reserved headers (doc/PROTOCOL.md 2.15) are
 * not included.
 *
 * Ownership: the list belongs to |s| and lives until tri_stream_free().
 * Thread safety: any thread.
 * Returns: the list (possibly empty), or NULL on TRI_ETIMEDOUT.
 * Since: 0.1
 */
TRI_API const tri_metadata *tri_stream_headers(tri_stream *s, int timeout_ms);

/**
 * Client: the trailing metadata (without grpc-status / grpc-message),
 * valid once the stream has ended; empty before.  Server: NULL.
 * Ownership: belongs to |s|.  Thread safety: any thread.  Since: 0.1
 */
TRI_API const tri_metadata *tri_stream_trailers(tri_stream *s);

/**
 * Method path of the stream ("/pkg.Service/Method").
 * Ownership: belongs to |s|.  Thread safety: any thread.  Since: 0.1
 */
TRI_API const char *tri_stream_method(const tri_stream *s);

/**
 * Milliseconds left before the stream's deadline, or -1 if it has none
 * (server: from the client's grpc-timeout).  Thread safety: any thread.
 * Since: 0.1
 */
TRI_API int64_t tri_stream_remaining_ms(const tri_stream *s);

/**
 * The peer's address: server: the client's ("127.0.0.1:54321",
 * "[::1]:54321", or "unix:PATH" for a Unix socket, PATH being the
 * socket's own path); client: the server address the stream's connection
 * went to ("" until the stream is on a connection).  With or without TLS.
 *
 * Ownership: belongs to |s|; valid until the stream is freed (for a
 *   handler: until it returns).
 * Thread safety: any thread.  Blocking: no.
 * Returns: the address, never NULL.
 * Since: 0.2
 */
TRI_API const char *tri_stream_peer(const tri_stream *s);

/**
 * The TLS identity of the stream's connection, or NULL when it is not TLS
 * (or, on a client, not yet connected).  Server: what the client proved
 * (tri_auth_peer_subject() is its verified certificate's subject, "" when
 * it sent none); client: the server's certificate.  Use it to authorise a
 * call in a handler.
 *
 * Ownership: belongs to |s|, valid until the stream is freed (for a
 *   handler: until it returns).  The accessors' strings live as long.
 * Thread safety: any thread; the identity never changes.
 * Since: 0.2
 */
TRI_API const tri_auth *tri_stream_auth(const tri_stream *s);
/* The tri_auth_* accessors: |a| from tri_stream_auth() (NULL gives NULL
 * or 0); returned strings live as long as |a|; any thread. */
/** Negotiated protocol: "TLSv1.3" or "TLSv1.2".  Since: 0.2 */
TRI_API const char *tri_auth_tls_version(const tri_auth *a);
/** Negotiated cipher suite, OpenSSL's name ("TLS_AES_256_GCM_SHA384").
 * Since: 0.2 */
TRI_API const char *tri_auth_cipher(const tri_auth *a);
/**
 * Subject of the peer's verified certificate in RFC 2253 form
 * ("CN=client,O=Example"), or "" when the peer presented none (a server
 * with TRI_TLS_CLIENT_NONE or _REQUEST).  Only verified certificates
 * get this far: a certificate that fails verification fails the
 * handshake.  Since: 0.2
 */
TRI_API const char *tri_auth_peer_subject(const tri_auth *a);
/** Number of subject alternative names of the peer's certificate (0
 * without one).  Since: 0.2 */
TRI_API size_t tri_auth_peer_san_count(const tri_auth *a);
/**
 * Subject alternative name |i| of the peer's certificate, typed:
 * "DNS:api.example.com", "IP:127.0.0.1", "IP:::1", "URI:spiffe://x/y",
 * "email:a@example.com" (other kinds: "other:"); NULL when |i| is out of
 * range.  Bytes outside printable ASCII (and '\\') are escaped as \\xNN,
 * so an embedded NUL cannot shorten a name.  Since: 0.2
 */
TRI_API const char *tri_auth_peer_san(const tri_auth *a, size_t i);
/** Server: the name the client asked for with SNI ("" if none); client:
 * the name the server's certificate was verified against.  Since: 0.2 */
TRI_API const char *tri_auth_server_name(const tri_auth *a);

/* ------------------------------------------------------------------ */
/* Streams: server side                                                */
/* ------------------------------------------------------------------ */

/**
 * Server: add response header metadata before the headers go out (they go
 * out at the first send, tri_stream_send_headers(), a recv that has to
 * wait, or finish).  Same key rules as tri_metadata_add().  Size: see
 * tri_stream_finish().
 * Thread safety: the handler's thread.
 * Returns: TRI_OK; TRI_EINVAL; TRI_ESTATE when headers are already out or
 *   on a client stream.
 * Since: 0.1
 */
TRI_API int tri_stream_add_header(tri_stream *s, const char *key,
                                  const void *value, size_t value_len);

/**
 * Server: add trailing metadata, sent with the final status.  Size: see
 * tri_stream_finish().
 * Returns: TRI_OK; TRI_EINVAL; TRI_ESTATE after finish or on a client.
 * Since: 0.1
 */
TRI_API int tri_stream_add_trailer(tri_stream *s, const char *key,
                                   const void *value, size_t value_len);

/**
 * Server: send the response headers now (without a message).  Idempotent.
 * Returns: TRI_OK; TRI_ESTATE on a client stream; the final status if the
 *   stream has ended.  Blocking: no.  Since: 0.1
 */
TRI_API int tri_stream_send_headers(tri_stream *s);

/**
 * Server: end the call with |code| (0..16) and |message| (may be NULL;
 * UTF-8, percent-encoded on the wire, doc/PROTOCOL.md 4.5).  Queued messages go
 * out first, then trailers.  Returns without waiting for the peer.  After
 * it, send fails with TRI_ESTATE; recv still works until the client's end
 * of input.  Only the first call counts.
 *
 * Size: the response headers, and the trailers with grpc-status and the
 * percent-encoded |message|, must each fit in one HTTP/2 header block
 * (64 KiB by nghttp2's estimate: names and values plus a few bytes per
 * field).  One that does not is never sent: the stream is reset
 * (RST_STREAM INTERNAL_ERROR), the client gets TRI_INTERNAL and the
 * stream's final status (tri_stream_wait_status()) is TRI_INTERNAL too.
 * This call has returned TRI_OK by then when the trailers were refused,
 * or returns TRI_INTERNAL when the response headers already were.
 *
 * Ownership: |message| is copied.
 * Thread safety: the handler's thread (or any thread; only one wins).
 * Returns: TRI_OK; TRI_EINVAL for a code outside 0..16; TRI_ESTATE on a
 *   client or an already finished stream; the stream's final status if
 *   the client cancelled or the deadline passed (nothing is sent then).
 * Since: 0.1
 */
TRI_API int tri_stream_finish(tri_stream *s, int code, const char *message);

/**
 * Server: compress response messages with |encoding| ("gzip", "deflate",
 * "identity" or NULL for none), announced in grpc-encoding.  If the client
 * did not list the coding in grpc-accept-encoding, messages go out
 * uncompressed (doc/PROTOCOL.md 9.6).  TRI_SEND_NO_COMPRESS still turns it off
 * per message (9.7).
 *
 * Thread safety: the handler's thread.
 * Returns: TRI_OK; TRI_UNIMPLEMENTED (coding not built in); TRI_ESTATE
 *   after the response headers went out, or on a client stream.
 * Since: 0.1
 */
TRI_API int tri_stream_set_compression(tri_stream *s, const char *encoding);

/**
 * Server: non-zero while the server is shutting down gracefully (the
 * handler should wrap up).  Client: 0.  Thread safety: any thread.
 * Since: 0.1
 */
TRI_API int tri_stream_server_draining(const tri_stream *s);

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/**
 * A method handler.  Runs on a worker thread with |s| (borrowed: valid
 * until the handler returns; do not free it) and the |user_data| given at
 * registration.  The handler reads requests with tri_stream_recv*(),
 * answers with tri_stream_send*(), and ends with tri_stream_finish().  If
 * it returns without finishing, the library finishes with its return value
 * (0..16; anything else becomes TRI_UNKNOWN).
 *
 * Thread safety: handlers run concurrently on different streams.
 * Since: 0.1
 */
typedef int (*tri_handler_fn)(tri_stream *s, void *user_data);

/**
 * Create server options with defaults: 256 max handler threads (started on
 * demand), 1024 max concurrent streams per connection, a stream waiting for
 * a free worker gives up after 1000 ms (RESOURCE_EXHAUSTED), max receive
 * message 4 MiB, send buffer 256 KiB and receive queue 1 MiB per stream,
 * handler thread stack 256 KiB.
 *
 * Ownership: caller owns; copied by tri_server_new().
 * Thread safety: one thread at a time.  Since: 0.1
 */
TRI_API tri_server_opts *tri_server_opts_new(void);
/** Free server options; NULL allowed.  Since: 0.1 */
TRI_API void tri_server_opts_free(tri_server_opts *o);
/** Max handler (worker) threads, >= 1.  Since: 0.1 */
TRI_API int tri_server_opts_set_max_workers(tri_server_opts *o, int n);
/** SETTINGS_MAX_CONCURRENT_STREAMS advertised per connection, >= 1.  Since: 0.1 */
TRI_API int tri_server_opts_set_max_concurrent_streams(tri_server_opts *o,
                                                       uint32_t n);
/** How long a new stream waits for a free worker, in ms (>= 0).  Since: 0.1 */
TRI_API int tri_server_opts_set_queue_timeout_ms(tri_server_opts *o,
                                                 int64_t ms);
/** Max size of one received message (bytes, > 0).  Since: 0.1 */
TRI_API int tri_server_opts_set_max_recv_size(tri_server_opts *o,
                                              size_t bytes);
/** Per-stream send buffer (bytes, >= 1024).  Since: 0.1 */
TRI_API int tri_server_opts_set_send_buffer(tri_server_opts *o, size_t bytes);
/** Per-stream receive queue (bytes, >= 1024).  Since: 0.1 */
TRI_API int tri_server_opts_set_recv_queue(tri_server_opts *o, size_t bytes);
/** Stack size of handler threads (bytes, >= 65536).  Since: 0.1 */
TRI_API int tri_server_opts_set_worker_stack(tri_server_opts *o,
                                             size_t bytes);

/**
 * Time a new connection has to complete the TLS handshake (with TLS) and
 * send the HTTP/2 preface and SETTINGS, in ms (> 0; default 10000);
 * slower connections are closed (slowloris).  On HTTP/1.1 connections it
 * also bounds each request head and each gap in a request body (counted
 * from the last read, and from the head's parsing at the earliest, so a
 * pipelined request's time starts when it is its turn): a body that stops
 * coming closes the connection and ends its handler's stream.
 * Since: 0.1
 */
TRI_API int tri_server_opts_set_handshake_timeout_ms(tri_server_opts *o,
                                                     int64_t ms);
/**
 * Close connections that have had no open stream for |ms| (gRPC A9's
 * max_connection_idle) with the graceful GOAWAY of max connection age,
 * debug data "max_idle" (doc/PROTOCOL.md 8.4).  0 (default) = never.
 * HTTP/1.1 connections: closed after |ms| between requests (0: 60 s,
 * HTTP keep-alive), and reset when output waits |ms| with no progress
 * (the client reads nothing), a stream open or not.
 * Since: 0.1
 */
TRI_API int tri_server_opts_set_idle_timeout_ms(tri_server_opts *o,
                                                int64_t ms);
/**
 * Max request header list size in bytes, counted as name + value + 32 per
 * field and advertised in SETTINGS_MAX_HEADER_LIST_SIZE (>= 1024; default
 * 32768, doc/PROTOCOL.md 1.5).  Larger requests get RESOURCE_EXHAUSTED.
 * Since: 0.1
 */
TRI_API int tri_server_opts_set_max_header_list(tri_server_opts *o,
                                                size_t bytes);
/** Unread received bytes per connection; see
 * tri_channel_opts_set_conn_recv_queue().  Since: 0.1 */
TRI_API int tri_server_opts_set_conn_recv_queue(tri_server_opts *o,
                                                size_t bytes);

/**
 * Max handlers running at once for one client connection (>= 1; 0 = the
 * default, max_workers / 8 but at least 16).  Streams of a connection at
 * its share wait like any other (then RESOURCE_EXHAUSTED), so a few
 * connections that open streams and go silent cannot take every handler
 * thread from the others.  Raise it for one client that needs many
 * concurrent handlers.  Since: 0.1
 */
TRI_API int tri_server_opts_set_max_handlers_per_conn(tri_server_opts *o,
                                                      int n);
/**
 * RST_STREAMs a client may send per second on one connection before it is
 * closed with GOAWAY(ENHANCE_YOUR_CALM) (rapid reset, CVE-2023-44487);
 * default 500, 0 = no limit of ours (nghttp2's own still applies).
 * Since: 0.1
 */
TRI_API int tri_server_opts_set_max_resets_per_s(tri_server_opts *o, int n);

/**
 * Keepalive enforcement (gRPC A8, doc/PROTOCOL.md 8.8): a client PING
 * that comes less than |min_ping_interval_ms| after the previous one
 * (default 300000, 5 minutes; 0 = any rate), or, when
 * |permit_without_calls| is 0 (the default), less than 2 hours after it
 * while the connection has no open stream, is a strike; strikes start
 * over whenever the server sends HEADERS or DATA.  The third strike
 * answers GOAWAY(ENHANCE_YOUR_CALM) with debug data "too_many_pings";
 * streams in flight finish, then the connection closes.  Clients set up
 * with tri_channel_opts_set_keepalive() at or above the interval are
 * never refused.
 * Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (NULL, negative interval).
 * Since: 0.3
 */
TRI_API int tri_server_opts_set_keepalive_enforcement(
    tri_server_opts *o, int64_t min_ping_interval_ms,
    int permit_without_calls);
/**
 * Max connection age (gRPC A9, doc/PROTOCOL.md 8.13): |ms| (+-10 % jitter
 * per connection) after it was accepted, a connection gets a graceful
 * GOAWAY: first GOAWAY(NO_ERROR) with last-stream-id 2^31-1 and a PING,
 * on the PING's ACK the GOAWAY with the last stream processed and debug
 * data "max_age".  Streams in flight go on (for at most the grace, see
 * below); clients open new connections for new calls.  An HTTP/1.1
 * connection (no GOAWAY there) is closed after the first response whose
 * head is written past the age; that head says "connection: close".  It
 * is never closed between requests or after a response that said
 * keep-alive, so an idle one lasts until its next request or its idle
 * timeout.  0 (default) = unlimited.
 * Returns: TRI_OK; TRI_EINVAL.  Since: 0.3
 */
TRI_API int tri_server_opts_set_max_connection_age_ms(tri_server_opts *o,
                                                      int64_t ms);
/**
 * Grace after the max connection age GOAWAY (A9): streams still open
 * |ms| later are cancelled and the connection is closed.  On HTTP/1.1:
 * the request in progress at the age, if any, still running |ms| later.  Default:
 * unlimited (INT64_MAX).
 * Returns: TRI_OK; TRI_EINVAL.  Since: 0.3
 */
TRI_API int tri_server_opts_set_max_connection_age_grace_ms(
    tri_server_opts *o, int64_t ms);
/**
 * Server keepalive: PING a client after |time_ms| without receiving
 * anything from it (0 = off, the default; at least 1000), and close the
 * connection if nothing arrives within |timeout_ms| (> 0; default 20000)
 * after the PING, so dead clients (a host gone without a FIN) do not hold
 * connections for ever.
 * Returns: TRI_OK; TRI_EINVAL.  Since: 0.3
 */
TRI_API int tri_server_opts_set_keepalive(tri_server_opts *o, int64_t time_ms,
                                          int64_t timeout_ms);

/**
 * Number of I/O threads ("tri-io") the server runs (n >= 1; default 1).
 * Each has its own event loop; accepted connections are spread over them,
 * each to the loop with the fewest connections (ties in turn), and
 * everything about a connection (its socket, HTTP/2 session, TLS, idle
 * timeout, budgets) stays on that loop.  More than one helps when one
 * I/O thread is the bottleneck: many busy connections on a machine with
 * cores to spare.  Handlers still run on the worker pool.
 *
 * Ownership: none.
 * Thread safety: one thread at a time per options object.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (|o| NULL, n < 1 or n > 256).
 * Since: 0.3
 */
TRI_API int tri_server_opts_set_io_threads(tri_server_opts *o, int n);

/**
 * The spin budget of handlers' tri_stream_recv() (microseconds,
 * 0 .. 10000; default 200 or TRI_SPIN_US): as
 * tri_channel_opts_set_spin_us(), for the server's streams.  (Idle
 * worker threads waiting for the next call do not spin.)
 *
 * Ownership: none.
 * Thread safety: one thread at a time per options object.
 * Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (|o| NULL, us < 0 or us > 10000).
 * Since: 0.3
 */
TRI_API int tri_server_opts_set_spin_us(tri_server_opts *o, int us);

/**
 * Serve TLS with |tls| (NULL: clear text, the default): its certificate
 * and key (required), SNI certificates, client_auth mode and CA.  Every
 * connection then needs a TLS handshake with ALPN "h2" first; the
 * handshake timeout (tri_server_opts_set_handshake_timeout_ms) covers it
 * together with the HTTP/2 preface.  tri_server_new() loads the files and
 * fails with TRI_EINVAL and a message naming the file if one cannot be
 * used.  Failed handshakes are counted (tri_server_tls_handshake_failures())
 * and reported on stderr, at most one line per 10 s per server
 * ("libtriplestream: TLS handshake with 127.0.0.1:54321 failed: REASON"
 * with the number of failures left unreported since the last line).
 *
 * Ownership: |tls| is copied (the server keeps the copy for
 *   tri_server_reload_tls()).
 * Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL; TRI_ENOMEM; TRI_UNIMPLEMENTED when the
 *   library was built without OpenSSL.
 * Since: 0.2
 */
TRI_API int tri_server_opts_set_tls(tri_server_opts *o,
                                    const tri_tls_opts *tls);

/**
 * Allow browsers from |origins| to call the server with gRPC-Web or
 * Triple's unary protocol (CORS, doc/PROTOCOL.md 16.8): a comma-separated
 * list of origins ("https://app.example.com,http://localhost:8080") or
 * "*" for any.  Requests from an allowed Origin get
 * Access-Control-Allow-Origin and Access-Control-Expose-Headers (grpc-status,
 * grpc-message, tri-*); CORS preflights (OPTIONS with Origin and
 * Access-Control-Request-Method) from an allowed origin are answered 204
 * with the allowed methods and headers, others 403.  Default: none (CORS
 * off: no CORS headers, every preflight 403).  NULL or "" turns it off.
 *
 * Ownership: |origins| is copied.
 * Thread safety: one thread at a time.  Blocking: no.
 * Returns: TRI_OK; TRI_EINVAL (NULL opts, control bytes, longer than
 *   1023 bytes).
 * Since: 0.3
 */
TRI_API int tri_server_opts_set_cors_origins(tri_server_opts *o,
                                             const char *origins);

/**
 * Register the server's services in Apache Dubbo's ZooKeeper registry
 * (doc/PROTOCOL.md 18): |uri| is "zookeeper://HOST:PORT[,HOST:PORT...]"
 * with optional parameters "?application=NAME" (default
 * "libtriplestream"), "session=MS" (ZooKeeper session timeout, 1000..
 * 600000, default 30000: how long a crashed server stays listed) and
 * "root=NAME" (default "dubbo").  At tri_server_start() the server writes,
 * for each interface it serves (from the registered paths
 * "/INTERFACE/Method", group and version from
 * tri_server_register_versioned()), an ephemeral node
 * /dubbo/INTERFACE/providers/URL-ENCODED-URL with the provider URL
 * "tri://IP:PORT/INTERFACE?...&methods=M1,M2&side=provider..." as Dubbo
 * providers do.  IP is the bound address, or for 0.0.0.0 / [::] the
 * host's first non-loopback address.  Registration runs in the
 * background (start does not wait for ZooKeeper; it retries with back-off
 * and registers again after a session expiry).  tri_server_shutdown()
 * (and the signals of tri_server_shutdown_on_signals()) delete the nodes
 * first, then drain.  NULL |uri| removes the registry.
 *
 * Ownership: |uri| is parsed and copied.
 * Thread safety: one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL (malformed: tri_last_error() says what);
 *   TRI_UNIMPLEMENTED when the library was built without the ZooKeeper C
 *   client (libzookeeper-mt-dev).
 * Since: 0.3
 */
TRI_API int tri_server_opts_set_registry(tri_server_opts *o,
                                         const char *uri);

/**
 * Create a server.  Register handlers, bind, then start.
 *
 * Ownership: |opts| (NULL = defaults) is copied; caller owns *|out|
 *   (tri_server_free()).
 * Thread safety: any thread.
 * Returns: TRI_OK; TRI_ENOMEM; TRI_ESYS; TRI_EINVAL (TLS files that cannot
 *   be used: tri_last_error() names the file and why); TRI_UNIMPLEMENTED
 *   (TLS options in a build without OpenSSL).
 * Since: 0.1
 */
TRI_API int tri_server_new(tri_server **out, const tri_server_opts *opts);

/**
 * Register |fn| for the full method path |method| ("/pkg.Service/Method").
 * Unknown methods get UNIMPLEMENTED (doc/PROTOCOL.md 4.9).  A later
 * registration of the same path replaces the earlier one.
 *
 * Ownership: |method| is copied; |user_data| is passed to |fn| as is and
 *   must outlive the server.
 * Thread safety: before tri_server_start(), one thread at a time.
 * Returns: TRI_OK; TRI_EINVAL; TRI_ENOMEM; TRI_ESTATE after start.
 * Since: 0.1
 */
TRI_API int tri_server_register(tri_server *srv, const char *method,
                                tri_handler_fn fn, void *user_data);

/**
 * Register under a Dubbo service group and version (tri-service-group /
 * tri-service-version, doc/PROTOCOL.md 11.4).  NULL group/version match
 * requests that carry none.  Since: 0.1
 */
TRI_API int tri_server_register_versioned(tri_server *srv, const char *method,
                                          const char *group,
                                          const char *version,
                                          tri_handler_fn fn, void *user_data);

/**
 * tri_server_register_versioned() that also takes ownership of
 * |user_data|: |destroy| (may be NULL) is called with it once, when the
 * registration is replaced or the server is freed (after every handler has
 * returned).  On failure nothing is taken and |destroy| is not called.
 * Since: 0.1
 */
TRI_API int tri_server_register_full(tri_server *srv, const char *method,
                                     const char *group, const char *version,
                                     tri_handler_fn fn, void *user_data,
                                     void (*destroy)(void *user_data));

/**
 * Listen on |host_port| ("127.0.0.1:0", "[::1]:50051", "localhost:8080",
 * "unix:/run/app.sock", "unix-abstract:app").  Port 0 picks a free port;
 * tri_server_port() tells which (0 for Unix sockets).
 *
 * Thread safety: before tri_server_start().
 * Returns: TRI_OK; TRI_EINVAL (malformed address); TRI_ESTATE (already
 *   bound or started); TRI_ESYS (bind/listen failed).  tri_last_error()
 *   says which part and why ("bind 127.0.0.1:50051: Address already in
 *   use").
 * Since: 0.1
 */
TRI_API int tri_server_bind(tri_server *srv, const char *host_port);

/** The bound port, or -1 before tri_server_bind().  Since: 0.1 */
TRI_API int tri_server_port(const tri_server *srv);

/**
 * Start the I/O thread and accept connections.
 * Returns: TRI_OK; TRI_ESTATE (not bound, or already started); TRI_ESYS.
 * Since: 0.1
 */
TRI_API int tri_server_start(tri_server *srv);

/**
 * Read the certificate, key, SNI and CA files of the server's TLS options
 * again and use them for connections accepted from now on; connections
 * already open keep the certificates they were made with.  The files are
 * read and checked on the calling thread, then swapped in at once; if any
 * cannot be used, nothing changes and the old certificates stay in use.
 * Typical use: from a SIGHUP-handling thread after renewing certificates.
 *
 * Thread safety: any thread, concurrently with everything but
 *   tri_server_free() (concurrent reloads: the last one to finish wins).
 * Blocking: while the files are read; never waits for the I/O thread.
 * Returns: TRI_OK; TRI_EINVAL (a file cannot be used: tri_last_error()
 *   says which and why); TRI_ESTATE (the server has no TLS);
 *   TRI_UNIMPLEMENTED (no OpenSSL); TRI_ENOMEM.
 * Since: 0.2
 */
TRI_API int tri_server_reload_tls(tri_server *srv);

/**
 * Number of TLS handshakes that failed on this server (bad or missing
 * client certificates, clear-text clients, handshakes not finished
 * within the handshake timeout...) since it was created.  The server also
 * reports them on stderr, one line per 10 s at most, and skips the line
 * when stderr cannot take it at once (the I/O thread never blocks on it).
 * Ownership: nothing.  Thread safety: any thread.  Since: 0.2
 */
TRI_API uint64_t tri_server_tls_handshake_failures(const tri_server *srv);

/**
 * Graceful shutdown: stop accepting, send GOAWAY (doc/PROTOCOL.md 8.3), let
 * streams in flight, and requests that crossed the GOAWAY, finish for up
 * to |drain_ms| (a client that does not answer the drain PING holds it up
 * to 10 s within that), then end what remains
 * with UNAVAILABLE "server shutting down" (sent to clients in trailers,
 * gRPC's status for "server going away"; handlers blocked in recv/send
 * are woken with TRI_UNAVAILABLE), wait for every handler to return and
 * close every connection.
 * tri_stream_server_draining() reports non-zero meanwhile.
 * The last frames (those trailers, then GOAWAY) go out behind what each
 * connection had queued; for a client that is slow to read, the shutdown
 * waits up to 1 s more for its socket to take them, then closes it.
 *
 * Thread safety: any thread, not from a handler.  Idempotent.
 * Blocking: up to |drain_ms| plus the time handlers take to return after
 *   being cancelled, plus up to 1 s for slow readers (above).
 * Since: 0.1
 */
TRI_API void tri_server_shutdown(tri_server *srv, int64_t drain_ms);

/**
 * Block until the server has been shut down (tri_server_shutdown() from
 * another thread, or a signal after tri_server_shutdown_on_signals()), so
 * main() can read: start, wait, free.
 *
 * Thread safety: any thread, any number of threads.
 * Blocking: until the shutdown is complete (handlers returned,
 *   connections closed).
 * Returns: TRI_OK; TRI_EINVAL (NULL); TRI_UNAVAILABLE (server created
 *   before fork() in a parent process).  tri_server_free() must not run
 *   while another thread is still inside tri_server_wait(): free after
 *   the wait returned.
 * Since: 0.2
 */
TRI_API int tri_server_wait(tri_server *srv);

/**
 * Shut |srv| down gracefully (tri_server_shutdown(srv, |grace_ms|)) when
 * the process gets SIGINT, SIGTERM or SIGHUP.  Blocks those three signals
 * in the calling thread and starts a small thread that takes them with
 * sigwait().  Call it from main() before creating other threads: threads
 * inherit the mask, and a thread that does not block them could take the
 * signal instead (the library's own threads always block them).  Typical
 * main(): new, register, bind, start, tri_server_shutdown_on_signals(srv,
 * 5000), tri_server_wait(srv), tri_server_free(srv).
 *
 * A process-directed signal is taken by one thread: use it for one server
 *   per process (shut the others down from that server's main()).
 * Thread safety: once per server, before tri_server_free().
 * Returns: TRI_OK; TRI_EINVAL; TRI_ESTATE (called twice); TRI_ESYS.
 * Since: 0.2
 */
TRI_API int tri_server_shutdown_on_signals(tri_server *srv,
                                           int64_t grace_ms);

/**
 * The signal that shut |srv| down through tri_server_shutdown_on_signals()
 * (SIGINT, SIGTERM, SIGHUP), or 0.  Thread safety: any thread.  Since: 0.2
 */
TRI_API int tri_server_signal(const tri_server *srv);

/**
 * Free the server, shutting it down first with no drain time if needed.
 * NULL allowed.  Not from a handler.  Since: 0.1
 */
TRI_API void tri_server_free(tri_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* TRIPLESTREAM_H */
