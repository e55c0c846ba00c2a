/*
 * The seam between the HTTP code and the layers under it. The HTTP server
 * and client talk to a byte stream through the interface below and never
 * to a particular implementation; plain TCP (src/http) is one, TLS
 * (src/tls) is another that wraps a TCP transport, the fuzz targets' memory
 * transport a third.
 *
 * This header is the only thing src/http and src/tls share: neither block
 * includes the other's headers (the build checks it, see
 * cmake/LibmsvcLayering.cmake and docs/architecture.md).
 *
 * Life cycle: created by an implementation's constructor, started with
 * read_start, closed once with close; the transport calls on_closed when its
 * memory is gone (from a libuv close callback, never synchronously).
 */
#ifndef MSVC_TRANSPORT_H
#define MSVC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

typedef struct msvc__transport_s msvc__transport_t;

/* Kinds of subject alternative names, in the order of msvc_tls_san_t. */
#define MSVC__SAN_KINDS 3

/* The identity a secure transport verified for its peer. */
typedef struct msvc__peer_identity_s {
  char *subject;                 /* distinguished name, one line */
  char **names[MSVC__SAN_KINDS]; /* by kind, NULL-terminated arrays */
  size_t count[MSVC__SAN_KINDS];
} msvc__peer_identity_t;

/* Called with every write's outcome (0 or a negative libuv code). */
typedef void (*msvc__transport_write_cb)(msvc__transport_t *t, int status,
                                         void *arg);

/* Events the transport's owner receives. */
typedef struct msvc__transport_events_s {
  /* Plaintext bytes; valid only during the call. */
  void (*on_read)(void *owner, const char *data, size_t len);
  /* The peer closed (UV_EOF) or the stream failed (other negative code). */
  void (*on_end)(void *owner, int status);
  /* Everything is released; the owner may free itself. */
  void (*on_closed)(void *owner);
} msvc__transport_events_t;

typedef struct msvc__transport_ops_s {
  int (*read_start)(msvc__transport_t *t);
  int (*read_stop)(msvc__transport_t *t);
  /* Returns 0 when the write was queued (cb runs later; bufs must stay
   * valid until then), MSVC__TRANSPORT_WROTE when everything was written at
   * once (cb is not called), or a negative code. At most one write is in
   * flight per owner in this library, but implementations must accept
   * queued writes. */
  int (*write)(msvc__transport_t *t, const uv_buf_t *bufs, unsigned nbufs,
               msvc__transport_write_cb cb, void *arg);
  /* Half-close after pending writes. */
  int (*shutdown)(msvc__transport_t *t);
  void (*close)(msvc__transport_t *t);
  /* Peer address as "ip:port" into out; 0 or a negative code. */
  int (*peer)(msvc__transport_t *t, char *out, size_t len);
  /* Whether the stream is encrypted; when it is and peer is not NULL,
   * *peer receives the verified identity of the other end (NULL when it
   * showed no certificate), valid until the transport is closed. NULL for a
   * plain stream (TCP, memory). */
  bool (*secure)(msvc__transport_t *t, const msvc__peer_identity_t **peer);
  /* The protocol ALPN chose ("h2", "http/1.1"), or NULL: none, or not a
   * TLS stream. May be NULL itself. */
  const char *(*alpn)(msvc__transport_t *t);
} msvc__transport_ops_t;

struct msvc__transport_s {
  const msvc__transport_ops_t *ops;
  const msvc__transport_events_t *ev;
  void *owner;
};

#define MSVC__TRANSPORT_WROTE 1

/* Read buffers are shared per loop thread: an owner must consume or copy the
 * bytes in on_read. */
#define MSVC__TRANSPORT_READ_BUF 65536

static inline int msvc__transport_read_start(msvc__transport_t *t) {
  return t->ops->read_start(t);
}
static inline int msvc__transport_read_stop(msvc__transport_t *t) {
  return t->ops->read_stop(t);
}
static inline int msvc__transport_write(msvc__transport_t *t, const uv_buf_t *b,
                                        unsigned n, msvc__transport_write_cb cb,
                                        void *arg) {
  return t->ops->write(t, b, n, cb, arg);
}
static inline void msvc__transport_close(msvc__transport_t *t) {
  t->ops->close(t);
}

static inline bool msvc__transport_secure(msvc__transport_t *t,
                                          const msvc__peer_identity_t **peer) {
  if (peer != NULL)
    *peer = NULL;
  return t != NULL && t->ops->secure != NULL && t->ops->secure(t, peer);
}

static inline const char *msvc__transport_alpn(msvc__transport_t *t) {
  return t != NULL && t->ops->alpn != NULL ? t->ops->alpn(t) : NULL;
}

/* ---- the TLS layer, as the HTTP code sees it -----------------------------
 * Implemented in src/tls; the HTTP sources that use them are compiled with
 * MSVC_HAVE_TLS only when that block is part of the build. No Mbed TLS type
 * appears here. */
struct msvc_tls_config_s;

/* Wraps an accepted TCP transport in a server-side TLS transport. The
 * result owns inner; on failure inner has been closed. */
int msvc__tls_wrap_server(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, msvc__transport_t **out);
/* The same; with h2 false, ALPN offers http/1.1 only (HTTP/2 turned off
 * on that server), else h2 too when the library has HTTP/2. */
int msvc__tls_wrap_server_alpn(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                               msvc__transport_t *inner, bool h2,
                               msvc__transport_t **out);
/* Wraps a TCP transport that is about to connect to host:port. Same
 * ownership as msvc__tls_wrap_server(). */
int msvc__tls_wrap_client(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, const char *host, int port,
                          msvc__transport_t **out);
/* The same, offering only `h2` by ALPN (an HTTP/2 connection); the owner
 * checks msvc__transport_alpn() once data arrives. */
int msvc__tls_wrap_client_h2(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                             msvc__transport_t *inner, const char *host, int port,
                             msvc__transport_t **out);
/* Runs the handshake's steps on pool w (NULL: on the loop); call before
 * the transport starts reading. */
struct msvc_work_s;
void msvc__tls_set_work(msvc__transport_t *tls, struct msvc_work_s *w);
/* A client configuration trusting the system CA bundle. */
int msvc__tls_default_client(struct msvc_tls_config_s **out);
/* The role (msvc_tls_role_t) a configuration was made for. */
int msvc__tls_config_role(const struct msvc_tls_config_s *cfg);

#endif /* MSVC_TRANSPORT_H */
