/* Plain TCP under the transport interface. */
#include <stdio.h>

#include "http/transport.h"
#include "msvc-internal.h"

typedef struct tcp_transport_s tcp_transport_t;

typedef struct tcp_write_s {
  uv_write_t req;
  tcp_transport_t *tt;
  msvc__transport_write_cb cb;
  void *arg;
} tcp_write_t;

struct tcp_transport_s {
  msvc__transport_t base;
  uv_tcp_t tcp;
  /* Write and shutdown requests are allocated when needed: most responses
   * leave through uv_try_write(), and an idle connection should not carry
   * some 300 bytes it rarely uses. */
  uint32_t nwrites; /* uv_write() requests in flight */
  bool closing;
};

/* One read buffer per thread: every byte is consumed or copied inside the
 * read callback, so connections never each hold 64 KiB while idle. */
static _Thread_local char read_buf[MSVC__TRANSPORT_READ_BUF];
static _Thread_local bool read_buf_busy;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  if (read_buf_busy) {
    /* Only if a read callback re-enters the loop, which ours never do. */
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  read_buf_busy = true;
  buf->base = read_buf;
  buf->len = sizeof(read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tcp_transport_t *tt = msvc__container_of(s, tcp_transport_t, tcp);

  if (buf->base == read_buf)
    read_buf_busy = false;
  if (nread > 0)
    tt->base.ev->on_read(tt->base.owner, buf->base, (size_t)nread);
  else if (nread < 0)
    tt->base.ev->on_end(tt->base.owner, (int)nread);
}

static int tcp_read_start(msvc__transport_t *t) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  return uv_read_start((uv_stream_t *)&tt->tcp, on_alloc, on_read);
}

static int tcp_read_stop(msvc__transport_t *t) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  return uv_read_stop((uv_stream_t *)&tt->tcp);
}

static void on_write(uv_write_t *req, int status) {
  tcp_write_t *w = msvc__container_of(req, tcp_write_t, req);
  msvc__transport_write_cb cb = w->cb;
  tcp_transport_t *tt = w->tt;
  void *arg = w->arg;

  tt->nwrites--;
  msvc__free(w);
  if (cb != NULL)
    cb(&tt->base, status, arg);
}

/* Writes what the socket takes now. Besides saving the write request, this
 * avoids libuv 1.44 re-registering the socket with epoll after every
 * completed uv_write (one system call per response). Returns the bytes
 * written or a negative code; *rest/nrest describe what is left. */
static ssize_t try_write(tcp_transport_t *tt, const uv_buf_t *bufs, unsigned n,
                         uv_buf_t *rest, unsigned *nrest) {
  int wrote;
  size_t left;
  unsigned i, k = 0;

  *nrest = 0;
  if (n > 8 || tt->nwrites > 0 || uv_stream_get_write_queue_size((uv_stream_t *)&tt->tcp) > 0)
    return UV_EAGAIN;
  wrote = uv_try_write((uv_stream_t *)&tt->tcp, bufs, n);
  if (wrote < 0)
    return wrote;
  left = (size_t)wrote;
  for (i = 0; i < n; i++) {
    if (left >= bufs[i].len) {
      left -= bufs[i].len;
      continue;
    }
    rest[k] = uv_buf_init(bufs[i].base + left, (unsigned)(bufs[i].len - left));
    left = 0;
    k++;
  }
  *nrest = k;
  return wrote;
}

static int tcp_write(msvc__transport_t *t, const uv_buf_t *bufs, unsigned n,
                     msvc__transport_write_cb cb, void *arg) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  tcp_write_t *w;
  uv_buf_t rest[8];
  unsigned nrest;
  ssize_t wrote;
  int rc;

  if (tt->closing)
    return MSVC_ECLOSED;
  wrote = try_write(tt, bufs, n, rest, &nrest);
  if (wrote >= 0 && nrest == 0)
    return MSVC__TRANSPORT_WROTE;
  if (wrote < 0 && wrote != UV_EAGAIN)
    return (int)wrote;
  if (wrote > 0) {
    bufs = rest;
    n = nrest;
  }
  if ((w = msvc__malloc(sizeof(*w))) == NULL)
    return MSVC_ENOMEM;
  w->tt = tt;
  w->cb = cb;
  w->arg = arg;
  rc = uv_write(&w->req, (uv_stream_t *)&tt->tcp, bufs, n, on_write);
  if (rc != 0)
    msvc__free(w);
  else
    tt->nwrites++;
  return rc;
}

/* libuv calls this before the handle's close callback, even when the
 * handle is closed first (UV_ECANCELED). */
static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  msvc__free(req);
}

static int tcp_shutdown(msvc__transport_t *t) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  uv_shutdown_t *req;
  int rc;

  if (tt->closing)
    return MSVC_ECLOSED;
  if ((req = msvc__malloc(sizeof(*req))) == NULL)
    return MSVC_ENOMEM;
  rc = uv_shutdown(req, (uv_stream_t *)&tt->tcp, on_shutdown);
  if (rc != 0)
    msvc__free(req);
  return rc;
}

static void on_closed(uv_handle_t *h) {
  tcp_transport_t *tt = msvc__container_of(h, tcp_transport_t, tcp);
  const msvc__transport_events_t *ev = tt->base.ev;
  void *owner = tt->base.owner;

  msvc__free(tt);
  if (ev != NULL && ev->on_closed != NULL)
    ev->on_closed(owner);
}

static void tcp_close(msvc__transport_t *t) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  if (tt->closing)
    return;
  tt->closing = true;
  uv_close((uv_handle_t *)&tt->tcp, on_closed);
}

static int tcp_peer(msvc__transport_t *t, char *out, size_t len) {
  tcp_transport_t *tt = (tcp_transport_t *)t;
  struct sockaddr_storage ss;
  int sl = (int)sizeof(ss), rc;
  char ip[64];
  int port;

  rc = uv_tcp_getpeername(&tt->tcp, (struct sockaddr *)&ss, &sl);
  if (rc != 0)
    return rc;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    rc = uv_ip6_name(a, ip, sizeof(ip));
    port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    rc = uv_ip4_name(a, ip, sizeof(ip));
    port = ntohs(a->sin_port);
  }
  if (rc != 0)
    return rc;
  if ((size_t)snprintf(out, len, "%s:%d", ip, port) >= len)
    return MSVC_ERANGE;
  return 0;
}

static const msvc__transport_ops_t tcp_ops = {
    tcp_read_start, tcp_read_stop, tcp_write, tcp_shutdown, tcp_close, tcp_peer, NULL, NULL,
};

int msvc__tcp_transport_new(uv_loop_t *loop, msvc__transport_t **out,
                            uv_stream_t **stream) {
  tcp_transport_t *tt = msvc__calloc(1, sizeof(*tt));
  int rc;

  *out = NULL;
  if (tt == NULL)
    return MSVC_ENOMEM;
  rc = uv_tcp_init(loop, &tt->tcp);
  if (rc != 0) {
    msvc__free(tt);
    return rc;
  }
  tt->base.ops = &tcp_ops;
  *out = &tt->base;
  *stream = (uv_stream_t *)&tt->tcp;
  return 0;
}
