/* The server object: options, routes, middleware, listener, drain, close. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <msvc/work.h>

#include "http/server.h"

#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000
/* On EMFILE, this many idle connections go to make room for the next. */
#define EMFILE_SHED 8

/* What a caller compiled against 0.1 passes as size: the options it knows
 * are taken, the ones added since keep their defaults. */
#define OPTS_SIZE_0_1 offsetof(msvc_http_server_opts_t, body_deadline_ms)

uint32_t msvc__http_auto_max_connections(void) {
  struct rlimit rl;
  rlim_t soft, n;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 10000;
  soft = rl.rlim_cur;
  /* Descriptors the process needs besides the connections it serves: the
   * listener, loop internals, upstream calls, the registry, logs, and a
   * health probe that must still get in when every slot is taken. */
  n = soft > 32 + soft / 8 ? soft - 32 - soft / 8 : 0;
  if (n < 8)
    n = 8;
  return n > 10000 ? 10000 : (uint32_t)n;
}

long msvc__http_raise_fd_limit(void) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -errno;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t old = rl.rlim_cur;
    /* The hard limit may be "unlimited" on paper; the kernel caps it at
     * nr_open, and 2^20 descriptors is more than any loop here serves. */
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20)
                      ? (rlim_t)1 << 20
                      : rl.rlim_max;
    if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
      rl.rlim_cur = old;
  }
  return rl.rlim_cur == RLIM_INFINITY ? (long)(1 << 20) : (long)rl.rlim_cur;
}

void msvc_http_server_opts_init(msvc_http_server_opts_t *o) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->max_header_bytes = 8192;
  o->max_headers = 100;
  o->max_body_bytes = 1024 * 1024;
  o->header_timeout_ms = 10000;
  o->body_timeout_ms = 30000;
  o->keepalive_timeout_ms = 5000;
  o->max_connections = 0; /* sized from the descriptor limit at listen */
  o->max_pipeline = 32;
  o->backlog = 511;
  o->reuseport = false;
  o->body_deadline_ms = 30000;
  o->min_body_rate = 1024;
  o->body_rate_grace_ms = 5000;
  o->http2 = true;
  o->h2_max_streams = 100;
  o->h2_window = 262144;
}

static bool opts_valid(const msvc_http_server_opts_t *o) {
  return o->max_header_bytes >= 64 &&
         o->max_header_bytes <= (1u << 24) && o->max_headers > 0 &&
         o->header_timeout_ms > 0 && o->body_timeout_ms > 0 &&
         o->keepalive_timeout_ms > 0 &&
         o->max_pipeline > 0 && o->backlog > 0 && o->body_deadline_ms > 0 &&
         (!o->http2 || (o->h2_max_streams > 0 && o->h2_window >= 1024 &&
                        o->h2_window <= (1u << 30)));
}

int msvc_http_server_new(uv_loop_t *loop, const msvc_http_server_opts_t *opts,
                         msvc_http_server_t **out) {
  msvc_http_server_t *srv;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || out == NULL)
    return MSVC_EINVAL;
  srv = msvc__calloc(1, sizeof(*srv));
  if (srv == NULL)
    return MSVC_ENOMEM;
  msvc_http_server_opts_init(&srv->opts);
  if (opts != NULL && opts->size >= sizeof(*opts))
    srv->opts = *opts;
  else if (opts != NULL && opts->size >= OPTS_SIZE_0_1)
    memcpy(&srv->opts, opts, opts->size); /* older callers: defaults after */
  if (opts != NULL && opts->size < OPTS_SIZE_0_1) {
    msvc__free(srv);
    return MSVC_EINVAL;
  }
  srv->opts.size = sizeof(srv->opts);
  if (!opts_valid(&srv->opts)) {
    msvc__free(srv);
    return MSVC_EINVAL;
  }
  srv->loop = loop;
  srv->max_conns = srv->opts.max_connections != 0 ? srv->opts.max_connections
                                                  : msvc__http_auto_max_connections();
  srv->lim.max_head_bytes = srv->opts.max_header_bytes;
  srv->lim.max_headers = srv->opts.max_headers;
  srv->lim.max_body = srv->opts.max_body_bytes;
  msvc__queue_init(&srv->conns);
  msvc__queue_init(&srv->idle);
  rc = uv_tcp_init(loop, &srv->listener);
  if (rc != 0) {
    msvc__free(srv);
    return rc;
  }
  uv_timer_init(loop, &srv->drain_timer);
  uv_timer_init(loop, &srv->accept_timer);
  srv->accept_timer.data = srv;
  srv->handles = 3;
  *out = srv;
  return MSVC_OK;
}

int msvc_http_server_set_tls(msvc_http_server_t *srv, struct msvc_tls_config_s *cfg) {
  if (srv == NULL)
    return MSVC_EINVAL;
#ifdef MSVC_HAVE_TLS
  if (cfg != NULL && msvc__tls_config_role(cfg) != MSVC_TLS_SERVER)
    return MSVC_EINVAL;
  msvc_tls_config_free(srv->tls);
  srv->tls = msvc_tls_config_ref(cfg);
  return MSVC_OK;
#else
  (void)cfg;
  return MSVC_ENOTSUP;
#endif
}

int msvc_http_server_set_work(msvc_http_server_t *srv, msvc_work_t *w) {
  if (srv == NULL || (w != NULL && msvc_work_loop(w) != srv->loop))
    return MSVC_EINVAL;
  srv->work = w;
  return MSVC_OK;
}

int msvc_http_server_route(msvc_http_server_t *srv, const char *method,
                           const char *pattern, msvc_http_handler_fn handler,
                           void *data, const msvc_http_route_opts_t *opts) {
  if (srv == NULL)
    return MSVC_EINVAL;
  return msvc__router_add(&srv->router, method, pattern, handler, data, opts);
}

int msvc_http_server_use(msvc_http_server_t *srv, const msvc_http_middleware_t *mw) {
  msvc_http_middleware_t *v;

  if (srv == NULL || mw == NULL || (mw->before == NULL && mw->after == NULL))
    return MSVC_EINVAL;
  if (srv->nmw >= UINT16_MAX)
    return MSVC_ELIMIT;
  v = msvc__realloc(srv->mw, (srv->nmw + 1) * sizeof(*v));
  if (v == NULL)
    return MSVC_ENOMEM;
  v[srv->nmw++] = *mw;
  srv->mw = v;
  return MSVC_OK;
}

static void accept_one(msvc_http_server_t *srv);

static void on_accept_retry(uv_timer_t *t) {
  msvc_http_server_t *srv = t->data;

  if (!srv->closing && !srv->draining)
    accept_one(srv);
}

/* libuv keeps a connection it accepted until uv_accept() takes it, and stops
 * watching the listener meanwhile: a connection left untaken (the transport
 * could not be allocated) would deafen the server for good. It is taken on
 * a timer instead, backing off while memory stays short. */
static void accept_one(msvc_http_server_t *srv) {
  int rc = msvc__conn_accept(srv);

  /* Any other failure may have come before uv_accept(): try again; if the
   * connection was taken after all, the retry finds UV_EAGAIN and stops. */
  if (rc == 0 || rc == UV_EAGAIN) {
    srv->accept_backoff_ms = 0;
    return;
  }
  srv->accept_backoff_ms = srv->accept_backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS
                           : srv->accept_backoff_ms * 2 > ACCEPT_BACKOFF_MAX_MS
                               ? ACCEPT_BACKOFF_MAX_MS
                               : srv->accept_backoff_ms * 2;
  uv_timer_start(&srv->accept_timer, on_accept_retry, srv->accept_backoff_ms, 0);
}

static void on_connection(uv_stream_t *listener, int status) {
  msvc_http_server_t *srv = msvc__container_of(listener, msvc_http_server_t, listener);
  int i;

  if (srv->closing || srv->draining)
    return;
  if (status == UV_EMFILE || status == UV_ENFILE) {
    /* libuv has already accepted and closed what was waiting (it keeps a
     * spare descriptor for that). Idle keep-alive connections give their
     * descriptors back so that the next clients get in. */
    for (i = 0; i < EMFILE_SHED && msvc__conn_shed_idle(srv); i++)
      ;
    return;
  }
  if (status < 0 || uv_is_active((uv_handle_t *)&srv->accept_timer))
    return;
  accept_one(srv);
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return MSVC_EINVAL;
}

/* libuv 1.44 has no SO_REUSEPORT flag: the socket is made here, the option
 * set, and the descriptor handed to libuv before bind. */
static int open_reuseport(msvc_http_server_t *srv, int family) {
  int one = 1, fd, rc;

  fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  rc = uv_tcp_open(&srv->listener, fd);
  if (rc != 0)
    close(fd);
  return rc;
}

static int bound_port(msvc_http_server_t *srv) {
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss);

  if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int msvc_http_server_listen(msvc_http_server_t *srv, const char *host, int port) {
  struct sockaddr_storage ss;
  int rc;

  if (srv == NULL || host == NULL || port < 0 || port > 65535)
    return MSVC_EINVAL;
  if (srv->listening || srv->closing || srv->draining)
    return MSVC_ESTATE;
  memset(&ss, 0, sizeof(ss));
  if (parse_addr(host, port, &ss) != 0)
    return MSVC_EINVAL;
  if (srv->opts.reuseport && (rc = open_reuseport(srv, ss.ss_family)) != 0)
    return rc;
  rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, srv->opts.backlog, on_connection);
  if (rc != 0)
    return rc;
  srv->listening = true;
  srv->port = bound_port(srv);
  /* The limit may have been raised since the server was made. */
  if (srv->opts.max_connections == 0)
    srv->max_conns = msvc__http_auto_max_connections();
  return MSVC_OK;
}

int msvc_http_server_port(const msvc_http_server_t *srv) {
  return srv != NULL && srv->listening ? srv->port : 0;
}

uint32_t msvc_http_server_connections(const msvc_http_server_t *srv) {
  return srv != NULL ? srv->nconns : 0;
}

uv_loop_t *msvc_http_server_loop(const msvc_http_server_t *srv) {
  return srv != NULL ? srv->loop : NULL;
}

static void maybe_free(msvc_http_server_t *srv) {
  msvc_http_close_cb cb;
  void *data;

  if (!srv->closing || srv->handles > 0 || srv->nconns > 0)
    return;
  cb = srv->close_cb;
  data = srv->close_data;
  msvc__router_free(&srv->router);
  msvc__conn_cache_free(srv);
  msvc__free(srv->mw);
#ifdef MSVC_HAVE_TLS
  msvc_tls_config_free(srv->tls);
#endif
  msvc__free(srv);
  if (cb != NULL)
    cb(data);
}

static void on_handle_closed(uv_handle_t *h) {
  msvc_http_server_t *srv = h->data;

  srv->handles--;
  maybe_free(srv);
}

static void close_listener(msvc_http_server_t *srv) {
  if (srv->listener_closed)
    return;
  srv->listener_closed = true;
  srv->listener.data = srv;
  uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
}

static void report_drained(msvc_http_server_t *srv, bool timedout) {
  msvc_http_drain_cb cb = srv->drain_cb;

  if (srv->drain_reported)
    return;
  srv->drain_reported = true;
  if (!srv->closing)
    uv_timer_stop(&srv->drain_timer);
  if (cb != NULL)
    cb(srv->drain_data, timedout);
}

void msvc__server_conn_gone(msvc_http_server_t *srv) {
  srv->nconns--;
  if (srv->draining && srv->nconns == 0 && !srv->closing)
    report_drained(srv, srv->drain_timedout);
  maybe_free(srv);
}

static void close_all(msvc_http_server_t *srv) {
  msvc__queue_t *q = srv->conns.next;

  /* A connection leaves the list only in its close callback; taking the
   * next element first keeps this walk safe should that ever change. */
  while (q != &srv->conns) {
    msvc__queue_t *next = q->next;
    msvc__conn_close(msvc__container_of(q, msvc__conn_t, node));
    q = next;
  }
}

static void on_drain_timer(uv_timer_t *t) {
  msvc_http_server_t *srv = msvc__container_of(t, msvc_http_server_t, drain_timer);

  if (srv->nconns == 0) {
    report_drained(srv, false);
    return;
  }
  /* Deadline: cut what is left; the report follows when the last
   * connection's memory is gone. */
  srv->drain_timedout = true;
  close_all(srv);
}

int msvc_http_server_drain(msvc_http_server_t *srv, uint32_t timeout_ms,
                           msvc_http_drain_cb cb, void *data) {
  msvc__queue_t *q;

  if (srv == NULL)
    return MSVC_EINVAL;
  if (srv->draining || srv->closing)
    return MSVC_ESTATE;
  srv->draining = true;
  if (srv->drain_hook != NULL)
    srv->drain_hook(srv->drain_hook_data, timeout_ms);
  srv->drain_cb = cb;
  srv->drain_data = data;
  close_listener(srv);
  for (q = srv->conns.next; q != &srv->conns;) {
    msvc__queue_t *next = q->next;
    msvc__conn_drain(msvc__container_of(q, msvc__conn_t, node));
    q = next;
  }
  /* Even with nothing open the callback comes from the loop, not from here. */
  uv_timer_start(&srv->drain_timer, on_drain_timer,
                 srv->nconns == 0 ? 0 : timeout_ms, 0);
  return MSVC_OK;
}

void msvc__http_server_drain_cut(msvc_http_server_t *srv) {
  if (srv == NULL || !srv->draining || srv->closing || srv->drain_reported)
    return;
  uv_timer_start(&srv->drain_timer, on_drain_timer, 0, 0);
}

void msvc_http_server_close(msvc_http_server_t *srv, msvc_http_close_cb cb,
                            void *data) {
  if (srv == NULL || srv->closing)
    return;
  srv->closing = true;
  srv->close_cb = cb;
  srv->close_data = data;
  close_listener(srv);
  srv->drain_timer.data = srv;
  uv_timer_stop(&srv->drain_timer);
  uv_close((uv_handle_t *)&srv->drain_timer, on_handle_closed);
  uv_close((uv_handle_t *)&srv->accept_timer, on_handle_closed);
  close_all(srv);
}

void msvc__http_server_on_drain(msvc_http_server_t *srv,
                                void (*fn)(void *data, uint32_t timeout_ms),
                                void *data) {
  srv->drain_hook = fn;
  srv->drain_hook_data = data;
}
