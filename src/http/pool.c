/*
 * Client connections and the keep-alive pool of each endpoint.
 *
 * A connection reads all the time, idle or busy: bytes or an EOF arriving
 * on an idle connection mean the server closed it (or broke the protocol),
 * and it leaves the pool at once instead of failing the next request. The
 * race that remains (the server closes while our request is in flight) is
 * handled by the call path: a reused connection that dies before the first
 * response byte sends an idempotent request again on a fresh connection.
 */
#include <stdio.h>
#include <string.h>

#include "http/client.h"

static void conn_on_read(void *owner, const char *data, size_t len);
static void conn_on_end(void *owner, int status);
static void conn_on_closed(void *owner);

static const msvc__transport_events_t conn_events = {
    conn_on_read, conn_on_end, conn_on_closed};

msvc__endpoint_t *msvc__endpoint_get(msvc_http_client_t *c, const char *host,
                                     int port, bool tls, bool create) {
  msvc__queue_t *q;
  msvc__endpoint_t *ep;

  msvc__queue_foreach(q, &c->endpoints) {
    ep = msvc__container_of(q, msvc__endpoint_t, node);
    if (ep->port == port && ep->tls == tls && strcmp(ep->host, host) == 0)
      return ep;
  }
  if (!create)
    return NULL;
  ep = msvc__calloc(1, sizeof(*ep));
  if (ep == NULL)
    return NULL;
  ep->host = msvc__strdup(host);
  if (ep->host == NULL) {
    msvc__free(ep);
    return NULL;
  }
  snprintf(ep->key, sizeof(ep->key), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
           host, port);
  ep->c = c;
  ep->port = port;
  ep->tls = tls;
  msvc__queue_init(&ep->idle);
  msvc__queue_init(&ep->waiting);
  msvc__queue_init(&ep->h2conns);
  msvc__queue_insert_tail(&c->endpoints, &ep->node);
  return ep;
}

void msvc__endpoint_free(msvc__endpoint_t *ep) {
  msvc__queue_remove(&ep->node);
  msvc__free(ep->host);
  msvc__free(ep);
}

bool msvc__endpoint_full(const msvc__endpoint_t *ep) {
  const msvc_http_client_opts_t *o = &ep->c->o;

  return ep->nidle == 0 && ep->nconns >= o->max_conns_per_endpoint &&
         ep->nwaiting >= o->max_queued_per_endpoint;
}

static void conn_maybe_free(msvc__cconn_t *conn) {
  msvc_http_client_t *c = conn->ep->c;

  if (conn->handles > 0 || conn->resolving)
    return;
  msvc__http_parser_free(&conn->parser);
  msvc__free(conn);
  c->nconns--;
  msvc__client_maybe_closed(c);
}

static void on_idle_timer_closed(uv_handle_t *h) {
  msvc__cconn_t *conn = h->data;

  conn->handles--;
  conn_maybe_free(conn);
}

static void conn_on_closed(void *owner) {
  msvc__cconn_t *conn = owner;

  conn->handles--;
  conn_maybe_free(conn);
}

static void conn_new(msvc__endpoint_t *ep, msvc_http_call_t *call);

/* A connection slot freed up: the first waiting call gets a new one. */
static void ep_kick(msvc__endpoint_t *ep) {
  msvc_http_call_t *call;

  if (ep->nwaiting == 0 || ep->nconns >= ep->c->o.max_conns_per_endpoint ||
      ep->c->closing)
    return;
  call = msvc__container_of(ep->waiting.next, msvc_http_call_t, wnode);
  msvc__queue_remove(&call->wnode);
  ep->nwaiting--;
  conn_new(ep, call);
}

void msvc__cconn_close(msvc__cconn_t *conn) {
  msvc__endpoint_t *ep = conn->ep;

  if (conn->closing)
    return;
  conn->closing = true;
  conn->call = NULL;
  if (conn->idle) {
    msvc__queue_remove(&conn->node);
    conn->idle = false;
    ep->nidle--;
  }
  ep->nconns--;
  uv_close((uv_handle_t *)&conn->idle_timer, on_idle_timer_closed);
  msvc__transport_close(conn->tr);
  ep_kick(ep);
}

static void on_idle_timeout(uv_timer_t *t) {
  msvc__cconn_close(t->data);
}

static int parse_head(void *ud, msvc__http_head_t *head) {
  msvc__cconn_t *conn = ud;
  msvc_http_call_t *call = conn->call;

  if (head->status >= 100 && head->status < 200) {
    /* 1xx answers precede the real one; llhttp ends them without a body. */
    conn->informational = true;
    msvc__http_parser_recycle(&conn->parser, head);
    return 0;
  }
  if (call == NULL) {
    msvc__http_head_free(head);
    return MSVC_EHTTP_BAD_RESPONSE;
  }
  call->res.head = head;
  return 0;
}

static int parse_body(void *ud, const char *data, size_t len) {
  msvc__cconn_t *conn = ud;
  msvc_http_call_t *call = conn->call;

  if (call == NULL || conn->closing)
    return MSVC_ECANCELED;
  if (call->on_chunk != NULL) {
    call->streamed = true;
    call->on_chunk(call, &call->res, data, len, call->data);
    /* The callback may have cancelled the call, which closed us. */
    return conn->closing ? MSVC_ECANCELED : 0;
  }
  msvc__buf_append(&call->res.body, data, len);
  return call->res.body.err;
}

static int parse_done(void *ud) {
  msvc__cconn_t *conn = ud;

  if (conn->informational)
    conn->informational = false;
  else
    conn->msg_done = true;
  return 0;
}

static const msvc__http_parser_cbs_t parser_cbs = {parse_head, parse_body, parse_done};

/* Errors of the shared parser, as the client reports them. */
static int parse_error(int rc) {
  switch (rc) {
  case MSVC_EHTTP_HEADERS_TOO_LARGE:
  case MSVC_EHTTP_BODY_TOO_LARGE:
  case MSVC_ETOOLARGE:
    return MSVC_ETOOLARGE;
  case MSVC_ENOMEM:
  case MSVC_ECANCELED:
    return rc;
  default:
    return MSVC_EHTTP_BAD_RESPONSE;
  }
}

static void conn_on_read(void *owner, const char *data, size_t len) {
  msvc__cconn_t *conn = owner;
  msvc_http_call_t *call = conn->call;
  size_t off = 0, used;
  int rc;

  if (conn->closing)
    return;
  if (call == NULL) {
    /* Nothing was asked: a pooled connection must stay silent. */
    msvc__cconn_close(conn);
    return;
  }
  if (!call->got_bytes) {
    call->got_bytes = true;
    call->state = ST_RECEIVING;
    call->dl_phase = 0;
    msvc__call_arm(call);
  }
  while (off < len) {
    rc = msvc__http_parser_feed(&conn->parser, data + off, len - off, &used);
    off += used;
    if (conn->closing || conn->call != call)
      return;
    if (rc < 0) {
      msvc__call_attempt_end(call, parse_error(rc), false);
      return;
    }
    if (rc == MSVC__HTTP_MESSAGE_DONE && conn->msg_done) {
      /* Bytes past the response were not asked for: do not reuse. */
      bool keep = off == len && call->res.head->keep_alive;
      msvc__call_attempt_end(call, 0, keep);
      return;
    }
    if (rc == 0)
      break;
  }
}

static void conn_on_end(void *owner, int status) {
  msvc__cconn_t *conn = owner;
  msvc_http_call_t *call = conn->call;
  int rc;

  if (conn->closing)
    return;
  if (call == NULL) {
    msvc__cconn_close(conn);
    return;
  }
  if (status == UV_EOF && call->got_bytes) {
    /* A body delimited by the close ends here. */
    rc = msvc__http_parser_finish(&conn->parser);
    if (rc == MSVC__HTTP_MESSAGE_DONE && conn->msg_done) {
      msvc__call_attempt_end(call, 0, false);
      return;
    }
    msvc__call_attempt_end(call, rc < 0 && rc != MSVC_EHTTP_PARSE ? parse_error(rc)
                                                                 : MSVC_ECONNRESET,
                           false);
    return;
  }
  if (!call->got_bytes && conn->uses > 0) {
    msvc__cconn_close(conn);
    msvc__call_stale(call);
    return;
  }
  msvc__call_attempt_end(call, status == UV_EOF || status == UV_EPIPE ? MSVC_ECONNRESET
                                                                      : status,
                         false);
}

static void conn_failed(msvc__cconn_t *conn, int err) {
  msvc_http_call_t *call = conn->call;

  msvc__cconn_close(conn);
  if (call != NULL)
    msvc__call_attempt_end(call, err, false);
}

static void conn_connected(msvc__cconn_t *conn) {
  int rc;

  conn->connected = true;
  rc = msvc__transport_read_start(conn->tr);
  if (rc != 0) {
    conn_failed(conn, rc);
    return;
  }
  if (conn->tcp != NULL)
    (void)uv_tcp_nodelay(conn->tcp, 1);
  if (conn->call != NULL)
    msvc__call_send(conn->call, conn);
  else
    msvc__pool_release(conn, true);
}

static void on_connect(uv_connect_t *req, int status) {
  msvc__cconn_t *conn = msvc__container_of(req, msvc__cconn_t, creq);

  if (conn->closing)
    return;
  if (status < 0) {
    conn_failed(conn, status);
    return;
  }
  conn_connected(conn);
}

static void connect_addr(msvc__cconn_t *conn, const struct sockaddr *addr) {
  int rc = uv_tcp_connect(&conn->creq, conn->tcp, addr, on_connect);

  if (rc != 0)
    conn_failed(conn, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  msvc__cconn_t *conn = msvc__container_of(req, msvc__cconn_t, gai);

  conn->resolving = false;
  if (conn->closing) {
    uv_freeaddrinfo(res);
    conn_maybe_free(conn);
    return;
  }
  if (status < 0 || res == NULL) {
    uv_freeaddrinfo(res);
    conn_failed(conn, status == UV_ENOMEM ? MSVC_ENOMEM : MSVC_EHTTP_DNS);
    return;
  }
  connect_addr(conn, res->ai_addr);
  uv_freeaddrinfo(res);
}

static void conn_start(msvc__cconn_t *conn) {
  msvc__endpoint_t *ep = conn->ep;
  struct sockaddr_storage ss;
  struct addrinfo hints;
  char port[8];
  int rc;

  if (conn->tcp == NULL) {
    conn_connected(conn);
    return;
  }
  if (uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss) == 0) {
    connect_addr(conn, (const struct sockaddr *)&ss);
    return;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%d", ep->port);
  conn->resolving = true;
  rc = uv_getaddrinfo(ep->c->loop, &conn->gai, on_resolved, ep->host, port, &hints);
  if (rc != 0) {
    conn->resolving = false;
    conn_failed(conn, rc == UV_ENOMEM ? MSVC_ENOMEM : MSVC_EHTTP_DNS);
  }
}

static int conn_alloc(msvc__endpoint_t *ep, msvc__cconn_t **out) {
  msvc_http_client_t *c = ep->c;
  msvc__cconn_t *conn = msvc__calloc(1, sizeof(*conn));
  msvc__http_limits_t lim;
  uv_stream_t *stream;
  int rc;

  if (conn == NULL)
    return MSVC_ENOMEM;
  if (c->factory != NULL) {
    rc = c->factory(c->factory_data, c->loop, ep->host, ep->port, &conn->tr);
    stream = NULL;
  } else {
    rc = msvc__tcp_transport_new(c->loop, &conn->tr, &stream);
#ifdef MSVC_HAVE_TLS
    /* TLS wraps the TCP transport; the TCP handle is still connected here. */
    if (rc == 0 && ep->tls)
      rc = msvc__tls_wrap_client(c->tls, c->loop, conn->tr, ep->host, ep->port, &conn->tr);
#endif
  }
  if (rc != 0) {
    msvc__free(conn);
    return rc;
  }
  conn->tcp = (uv_tcp_t *)stream;
  conn->tr->ev = &conn_events;
  conn->tr->owner = conn;
  (void)uv_timer_init(c->loop, &conn->idle_timer);
  conn->idle_timer.data = conn;
  conn->handles = 2;
  conn->ep = ep;
  lim.max_head_bytes = c->o.max_response_head;
  lim.max_headers = c->o.max_response_headers;
  lim.max_body = c->o.max_response_body;
  msvc__http_parser_init(&conn->parser, HTTP_RESPONSE, &lim, &parser_cbs, conn);
  ep->nconns++;
  c->nconns++;
  *out = conn;
  return 0;
}

static void conn_new(msvc__endpoint_t *ep, msvc_http_call_t *call) {
  msvc__cconn_t *conn;
  int rc = conn_alloc(ep, &conn);

  if (rc != 0) {
    msvc__call_attempt_end(call, rc, false);
    return;
  }
  conn->call = call;
  call->conn = conn;
  call->reused = false;
  call->state = ST_CONNECTING;
  call->dl_phase = call->to.connect_ms ? uv_now(ep->c->loop) + call->to.connect_ms : 0;
  msvc__call_arm(call);
  conn_start(conn);
}

static msvc__cconn_t *pop_idle(msvc__endpoint_t *ep) {
  msvc__cconn_t *conn;

  if (ep->nidle == 0)
    return NULL;
  /* Most recently used first: it is the least likely to have timed out. */
  conn = msvc__container_of(ep->idle.prev, msvc__cconn_t, node);
  msvc__queue_remove(&conn->node);
  conn->idle = false;
  ep->nidle--;
  uv_timer_stop(&conn->idle_timer);
  return conn;
}

void msvc__pool_dispatch(msvc_http_call_t *call, bool fresh) {
  msvc__endpoint_t *ep = call->ep;
  msvc__cconn_t *conn = fresh ? NULL : pop_idle(ep);

  if (conn != NULL) {
    conn->call = call;
    call->conn = conn;
    call->reused = true;
    msvc__call_send(call, conn);
    return;
  }
  if (ep->nconns < ep->c->o.max_conns_per_endpoint) {
    conn_new(ep, call);
    return;
  }
  if (ep->nwaiting >= ep->c->o.max_queued_per_endpoint) {
    msvc__call_attempt_end(call, MSVC_EHTTP_POOL_FULL, false);
    return;
  }
  call->state = ST_QUEUED;
  call->dl_phase = 0;
  /* A request sent again after a stale connection keeps its place. */
  if (fresh)
    msvc__queue_insert_head(&ep->waiting, &call->wnode);
  else
    msvc__queue_insert_tail(&ep->waiting, &call->wnode);
  ep->nwaiting++;
  msvc__call_arm(call);
}

void msvc__pool_release(msvc__cconn_t *conn, bool keep) {
  msvc__endpoint_t *ep = conn->ep;
  msvc_http_client_t *c = ep->c;
  msvc_http_call_t *next;

  conn->call = NULL;
  conn->msg_done = false;
  conn->uses++;
  if (!keep || c->closing || msvc__http_parser_busy(&conn->parser)) {
    msvc__cconn_close(conn);
    return;
  }
  if (ep->nwaiting > 0) {
    next = msvc__container_of(ep->waiting.next, msvc_http_call_t, wnode);
    msvc__queue_remove(&next->wnode);
    ep->nwaiting--;
    conn->call = next;
    next->conn = conn;
    next->reused = true;
    msvc__call_send(next, conn);
    return;
  }
  if (ep->nidle >= c->o.max_idle_per_endpoint) {
    msvc__cconn_close(conn);
    return;
  }
  conn->idle = true;
  msvc__queue_insert_tail(&ep->idle, &conn->node);
  ep->nidle++;
  uv_timer_start(&conn->idle_timer, on_idle_timeout, c->o.idle_timeout_ms, 0);
}

void msvc__pool_close_idle(msvc__endpoint_t *ep) {
  while (ep->nidle > 0)
    msvc__cconn_close(msvc__container_of(ep->idle.next, msvc__cconn_t, node));
}
