/*
 * The byte stream under an HTTP connection. The HTTP code (server and client
 * connections) only talks to this interface: plain TCP is one
 * implementation, TLS is meant to be another that wraps a TCP transport, so
 * the HTTP code is never duplicated for it.
 *
 * Life cycle: created by an implementation's constructor, started with
 * read_start, closed once with close; the transport calls on_closed when its
 * memory is gone (from a libuv close callback, never synchronously).
 */
#ifndef MSVC_HTTP_TRANSPORT_H
#define MSVC_HTTP_TRANSPORT_H

#include <stddef.h>

#include <uv.h>

typedef struct msvc__transport_s msvc__transport_t;

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

/* A TCP transport on loop; *stream is the handle to uv_accept into or
 * connect with before read_start. */
int msvc__tcp_transport_new(uv_loop_t *loop, msvc__transport_t **out,
                            uv_stream_t **stream);

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

#endif /* MSVC_HTTP_TRANSPORT_H */
