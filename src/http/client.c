/*
 * HTTP client calls: request serialization, timeouts, attempts and retries,
 * and completion. A call has one timer that serves every purpose in turn
 * (connect or first-byte timeout, the total deadline, the retry backoff and
 * a deferred completion), so a call costs one libuv handle.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/client.h"
#include "http/client_own.h"
#include "http/grpc_error.h"
#include "http/h2.h"

void msvc_http_client_opts_init(msvc_http_client_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->max_conns_per_endpoint = 64;
  o->max_idle_per_endpoint = 32;
  o->idle_timeout_ms = 30000;
  o->max_queued_per_endpoint = 1024;
  o->max_response_head = 16384;
  o->max_response_headers = 100;
  o->max_response_body = 8u * 1024 * 1024;
  o->h2_conns_per_endpoint = 1;
}

void msvc_http_request_init(msvc_http_request_t *r) {
  memset(r, 0, sizeof(*r));
  r->method = "GET";
  r->target = "/";
  r->timeouts.connect_ms = 5000;
  r->timeouts.total_ms = 30000;
}

int msvc_http_client_new(uv_loop_t *loop, const msvc_http_client_opts_t *opts,
                         msvc_http_client_t **out) {
  msvc_http_client_t *c;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  if (loop == NULL)
    return MSVC_EINVAL;
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL)
    return MSVC_ENOMEM;
  msvc_http_client_opts_init(&c->o);
  if ((opts != NULL && !msvc__opts_copy(&c->o, sizeof(c->o), opts)) ||
      c->o.max_conns_per_endpoint == 0 || c->o.max_response_head < 64 ||
      c->o.max_response_headers == 0 || c->o.idle_timeout_ms == 0) {
    msvc__free(c);
    return MSVC_EINVAL;
  }
  c->loop = loop;
  msvc__queue_init(&c->endpoints);
  msvc__queue_init(&c->calls);
  (void)uv_timer_init(loop, &c->closer);
  c->closer.data = c;
  *out = c;
  return MSVC_OK;
}

static void on_closer_closed(uv_handle_t *h) {
  msvc_http_client_t *c = h->data;
  msvc_http_client_close_cb cb = c->close_cb;
  void *data = c->close_data;

  while (!msvc__queue_empty(&c->endpoints))
    msvc__endpoint_free(msvc__container_of(c->endpoints.next, msvc__endpoint_t, node));
#ifdef MSVC_HAVE_TLS
  msvc_tls_config_free(c->tls);
#endif
  msvc__free(c);
  if (cb != NULL)
    cb(data);
}

void msvc__client_maybe_closed(msvc_http_client_t *c) {
  if (!c->closing || c->close_started || c->nconns > 0 || c->ncalls > 0)
    return;
  c->close_started = true;
  uv_close((uv_handle_t *)&c->closer, on_closer_closed);
}

void msvc_http_client_close(msvc_http_client_t *c, msvc_http_client_close_cb cb,
                            void *data) {
  msvc__queue_t *q, *next;

  if (c == NULL || c->closing)
    return;
  c->closing = true;
  c->close_cb = cb;
  c->close_data = data;
  c->in_api++;
  for (q = c->calls.next; q != &c->calls; q = next) {
    next = q->next;
    msvc_http_call_cancel(msvc__container_of(q, msvc_http_call_t, node));
  }
  msvc__queue_foreach(q, &c->endpoints) {
    msvc__pool_close_idle(msvc__container_of(q, msvc__endpoint_t, node));
#ifdef MSVC_HAVE_NGHTTP2
    msvc__h2c_close_all(msvc__container_of(q, msvc__endpoint_t, node));
#endif
  }
  c->in_api--;
  msvc__client_maybe_closed(c);
}

int msvc_http_client_set_tls(msvc_http_client_t *c, struct msvc_tls_config_s *cfg) {
  if (c == NULL)
    return MSVC_EINVAL;
#ifdef MSVC_HAVE_TLS
  if (cfg != NULL && msvc__tls_config_role(cfg) != MSVC_TLS_CLIENT)
    return MSVC_EINVAL;
  msvc_tls_config_free(c->tls);
  c->tls = msvc_tls_config_ref(cfg);
  return MSVC_OK;
#else
  (void)cfg;
  return MSVC_ENOTSUP;
#endif
}

/* An https URL without a configuration set trusts the system CA bundle. */
static int client_tls_ready(msvc_http_client_t *c) {
#ifdef MSVC_HAVE_TLS
  if (c->tls != NULL)
    return 0;
  return msvc__tls_default_client(&c->tls) == 0 ? 0 : MSVC_ETLS;
#else
  (void)c;
  return MSVC_ENOTSUP;
#endif
}

void msvc__http_client_set_factory(msvc_http_client_t *c,
                                   msvc__transport_factory_fn fn, void *data) {
  c->factory = fn;
  c->factory_data = data;
}

uint32_t msvc_http_client_connections(const msvc_http_client_t *c, const char *host,
                                      int port) {
  msvc__endpoint_t *ep;

  if (c == NULL || host == NULL)
    return 0;
  ep = msvc__endpoint_get((msvc_http_client_t *)c, host, port, false, false);
  return ep != NULL ? ep->nconns + ep->nh2 : 0;
}

int msvc_http_client_pool(const msvc_http_client_t *c, const char *host, int port,
                          msvc_http_pool_stats_t *out) {
  msvc__endpoint_t *ep;

  if (c == NULL || host == NULL || out == NULL)
    return MSVC_EINVAL;
  memset(out, 0, sizeof(*out));
  ep = msvc__endpoint_get((msvc_http_client_t *)c, host, port, false, false);
  if (ep != NULL) {
    out->connections = ep->nconns;
    out->idle = ep->nidle;
    out->queued = ep->nwaiting;
  }
  return MSVC_OK;
}

/* ---- request validation and serialization ------------------------------ */

static bool is_token(const char *s) {
  if (s == NULL || *s == '\0')
    return false;
  for (; *s; s++)
    if (!msvc__is_tchar((unsigned char)*s))
      return false;
  return true;
}

/* Printable, no spaces: request targets; values also allow SP and HT. */
static bool is_clean(const char *s, bool value) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == 0x7f || (ch < 0x20 && !(value && ch == '\t')) || (!value && ch == ' '))
      return false;
  }
  return true;
}

typedef struct target_s {
  char host[256];
  int port;
  bool tls;
  const char *path; /* into the URL or the request */
  size_t path_len;
  /* the sender's own headers (see validate()), none of those looked for */
  size_t own_from, own_n;
} target_t;

static int parse_port(const char *s, size_t n, int *port) {
  int v = 0;
  size_t i;

  if (n == 0 || n > 5)
    return MSVC_EURI;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return MSVC_EURI;
    v = v * 10 + (s[i] - '0');
  }
  if (v == 0 || v > 65535)
    return MSVC_EURI;
  *port = v;
  return 0;
}

/* "http[s]://host[:port][/path][?query][#fragment]"; userinfo is refused. */
static int parse_url(const char *url, target_t *t) {
  const char *a, *end, *hend, *colon = NULL;
  size_t hlen;

  t->tls = strncasecmp(url, "https://", 8) == 0;
  if (!t->tls && strncasecmp(url, "http://", 7) != 0)
    return strstr(url, "://") != NULL ? MSVC_ENOTSUP : MSVC_EURI;
  a = url + (t->tls ? 8 : 7);
  end = a + strcspn(a, "/?#");
  if (memchr(a, '@', (size_t)(end - a)) != NULL)
    return MSVC_EURI;
  if (*a == '[') {
    hend = memchr(a, ']', (size_t)(end - a));
    if (hend == NULL)
      return MSVC_EURI;
    a++;
    hlen = (size_t)(hend - a);
    if (hend + 1 < end) {
      if (hend[1] != ':')
        return MSVC_EURI;
      colon = hend + 1;
    }
  } else {
    colon = memchr(a, ':', (size_t)(end - a));
    hlen = (size_t)((colon != NULL ? colon : end) - a);
  }
  if (hlen == 0 || hlen >= sizeof(t->host))
    return MSVC_EURI;
  memcpy(t->host, a, hlen);
  t->host[hlen] = '\0';
  t->port = t->tls ? 443 : 80;
  if (colon != NULL && parse_port(colon + 1, (size_t)(end - colon - 1), &t->port) != 0)
    return MSVC_EURI;
  /* "http://h?q" would mean "/?q": rare enough to refuse. */
  if (*end == '?')
    return MSVC_EURI;
  t->path = *end == '/' ? end : "/";
  t->path_len = *end == '/' ? strcspn(end, "#") : 1;
  return 0;
}

static int resolve_target(const msvc_http_request_t *r, target_t *t) {
  if (r->url != NULL)
    return parse_url(r->url, t);
  if (r->host == NULL || *r->host == '\0' || strlen(r->host) >= sizeof(t->host) ||
      r->port <= 0 || r->port > 65535)
    return MSVC_EINVAL;
  strcpy(t->host, r->host);
  t->port = r->port;
  t->tls = r->tls;
  t->path = r->target != NULL ? r->target : "/";
  t->path_len = strlen(t->path);
  return 0;
}

/* Whether r has a header name (one of the framing or retry headers the
 * client looks for, never a sender's own). */
static bool has_header(const msvc_http_request_t *r, const target_t *t, const char *name) {
  size_t i;

  for (i = 0; i < r->nheaders; i++) {
    if (i == t->own_from && t->own_n > 0) {
      i += t->own_n - 1;
      continue;
    }
    if (msvc__strcasecmp(r->headers[i].name, name) == 0)
      return true;
  }
  return false;
}

/* Appends to a buffer reserved for all of it (serialize() sizes it). */
static void put(msvc__buf_t *b, const char *s, size_t n) {
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

/* POST, PUT and PATCH announce their length even when it is 0; other
 * methods (GET above all) are told apart by their first letter. */
static bool body_method(const char *m) {
  return m[0] == 'P' &&
         (strcmp(m + 1, "OST") == 0 || strcmp(m + 1, "UT") == 0 || strcmp(m + 1, "ATCH") == 0);
}

static int serialize(const msvc_http_request_t *r, const target_t *t,
                     const msvc__endpoint_t *ep, msvc__buf_t *b) {
  const char *m = r->method != NULL ? r->method : "GET";
  size_t i, need, lens[16]; /* of the first eight names and values */

  /* The whole request in one allocation: a buffer grown piece by piece
   * was reallocated once or twice per request. The estimate may be a few
   * bytes over (the Host and Content-Length lines). */
  need = strlen(m) + t->path_len + sizeof(" HTTP/1.1\r\n") + sizeof("Host: []\r\n") +
         strlen(ep->key) + sizeof("Content-Length: \r\n") + 20 + sizeof("\r\n") +
         r->body_len;
  for (i = 0; i < r->nheaders; i++) {
    size_t nl = strlen(r->headers[i].name), vl = strlen(r->headers[i].value);

    if (i < 8) {
      lens[2 * i] = nl;
      lens[2 * i + 1] = vl;
    }
    need += nl + vl + 4;
  }
  if (msvc__buf_reserve(b, need) != 0)
    return b->err;
  put(b, m, strlen(m));
  put(b, " ", 1);
  put(b, t->path, t->path_len);
  put(b, " HTTP/1.1\r\n", 11);
  if (!has_header(r, t, "host")) {
    /* The port is left out when it is the scheme's default. */
    put(b, "Host: ", 6);
    if (t->port != (ep->tls ? 443 : 80))
      put(b, ep->key, strlen(ep->key));
    else
      msvc__buf_printf(b, strchr(ep->host, ':') ? "[%s]" : "%s", ep->host);
    put(b, "\r\n", 2);
  }
  for (i = 0; i < r->nheaders; i++) {
    put(b, r->headers[i].name, i < 8 ? lens[2 * i] : strlen(r->headers[i].name));
    put(b, ": ", 2);
    put(b, r->headers[i].value, i < 8 ? lens[2 * i + 1] : strlen(r->headers[i].value));
    put(b, "\r\n", 2);
  }
  if (r->body_source != NULL)
    msvc__buf_puts(b, "Transfer-Encoding: chunked\r\n");
  else if ((r->body_len > 0 || body_method(m)) && !has_header(r, t, "content-length") &&
           !has_header(r, t, "transfer-encoding"))
    msvc__buf_printf(b, "Content-Length: %zu\r\n", r->body_len);
  put(b, "\r\n", 2); /* reserved: need counts it */
  if (r->body_len > 0)
    msvc__buf_append(b, r->body, r->body_len);
  return b->err;
}

/* Headers [own_from, own_from + own_n) are the sender's own, valid. */
static int validate(const msvc_http_request_t *r, const target_t *t, size_t own_from,
                    size_t own_n) {
  size_t i;

  if (r->on_done == NULL || (r->body == NULL && r->body_len > 0))
    return MSVC_EINVAL;
  if (r->method != NULL && !is_token(r->method))
    return MSVC_EINVAL;
  if (t->path_len == 0 || (t->path[0] != '/' && t->path[0] != '*'))
    return MSVC_EINVAL;
  for (i = 0; i < t->path_len; i++)
    if ((unsigned char)t->path[i] <= 0x20 || t->path[i] == 0x7f)
      return MSVC_EINVAL;
  if (r->nheaders > 0 && r->headers == NULL)
    return MSVC_EINVAL;
  /* A streamed body is framed by chunks: no other framing may be given. */
  if (r->body_source != NULL &&
      (r->body_len > 0 || has_header(r, t, "content-length") ||
       has_header(r, t, "transfer-encoding")))
    return MSVC_EINVAL;
  for (i = 0; i < r->nheaders; i++) {
    if (i == own_from && own_n > 0) {
      i += own_n - 1;
      continue;
    }
    if (!is_token(r->headers[i].name) || r->headers[i].value == NULL ||
        !is_clean(r->headers[i].value, true))
      return MSVC_EINVAL;
  }
  return 0;
}

/* ---- the life of a call ------------------------------------------------- */

static void on_call_timer(uv_timer_t *t);

void msvc__call_arm(msvc_http_call_t *call) {
  uint64_t now = uv_now(call->c->loop);
  uint64_t dl = call->dl_total;

  if (call->dl_phase != 0 && (dl == 0 || call->dl_phase < dl))
    dl = call->dl_phase;
  if (dl == 0) {
    uv_timer_stop(&call->timer);
    return;
  }
  uv_timer_start(&call->timer, on_call_timer, dl > now ? dl - now : 0, 0);
}

static void on_call_closed(uv_handle_t *h) {
  msvc_http_call_t *call = h->data;
  msvc_http_client_t *c = call->c;

  msvc__free(call);
  c->ncalls--;
  msvc__client_maybe_closed(c);
}

static void call_free(msvc_http_call_t *call) {
  msvc__queue_remove(&call->node);
  msvc__free(call->method);
  msvc__buf_free(&call->out);
  msvc__http_head_free(call->res.head);
  msvc__http_head_free(call->res.trailers);
  msvc__buf_free(&call->res.body);
  msvc__buf_free(&call->h2body);
  msvc__http_head_free(call->h2req);
  uv_close((uv_handle_t *)&call->timer, on_call_closed);
}

static void complete(msvc_http_call_t *call) {
  const msvc_http_response_t *res = NULL;

  call->state = ST_DONE;
  uv_timer_stop(&call->timer);
  if (call->result == 0 && call->res.head != NULL) {
    /* A NUL after the body makes text bodies usable as C strings. */
    msvc__buf_putc(&call->res.body, '\0');
    if (call->res.body.err != MSVC_OK)
      call->result = MSVC_ENOMEM;
    else
      call->res.body.len--;
    res = call->result == 0 ? &call->res : NULL;
  }
  call->on_done(call, call->result, res, call->data);
  call_free(call);
}

/* Completion waits for the loop when a public function is on the stack:
 * callbacks never run inside the call that caused them. */
static void finish(msvc_http_call_t *call, int err) {
  call->result = err;
  if (call->c->in_api > 0) {
    call->state = ST_FINISHING;
    uv_timer_start(&call->timer, on_call_timer, 0, 0);
    return;
  }
  complete(call);
}

static void start_attempt(msvc_http_call_t *call, bool fresh) {
  call->attempt++;
  call->attempt_t0 = uv_hrtime();
  call->got_bytes = false;
  call->sent = false;
  call->dl_phase = 0;
#ifdef MSVC_HAVE_NGHTTP2
  if (call->h2) {
    msvc__h2c_dispatch(call);
    return;
  }
#endif
  msvc__pool_dispatch(call, fresh);
}

static void on_call_timer(uv_timer_t *t) {
  msvc_http_call_t *call = t->data;
  uint64_t now = uv_now(call->c->loop);

  if (call->state == ST_FINISHING) {
    complete(call);
    return;
  }
  if (call->state == ST_BACKOFF) {
    if (call->dl_total != 0 && now >= call->dl_total)
      finish(call, MSVC_ETIMEDOUT);
    else
      start_attempt(call, false);
    return;
  }
  msvc__call_attempt_end(call, MSVC_ETIMEDOUT, false);
}

static void report(msvc_http_call_t *call, int err) {
  msvc_http_attempt_t a;
  msvc_http_client_t *c = call->c;

  if (c->o.on_attempt == NULL)
    return;
  a.endpoint = call->ep->key;
  a.err = err;
  a.status = err == 0 && call->res.head != NULL ? call->res.head->status : 0;
  a.attempt = call->attempt;
  a.duration_us = (uv_hrtime() - call->attempt_t0) / 1000;
  a.reused = call->reused;
  a.request_data = call->data;
  c->o.on_attempt(c->o.attempt_data, &a);
}

/* Asks the policy; on a yes, drops this attempt's response and waits. */
static bool maybe_retry(msvc_http_call_t *call, int err) {
  msvc_retry_attempt_t a;
  uint32_t delay;
  uint64_t now = uv_now(call->c->loop);

  /* A streamed body cannot be replayed once its source was read, which
   * only happens after the head went out. */
  if (call->retry == NULL || call->streamed ||
      (call->body_source != NULL && call->sent) || err == MSVC_ECANCELED ||
      call->c->closing)
    return false;
  memset(&a, 0, sizeof(a));
  a.attempt = call->attempt;
  a.method = call->method;
  a.retryable = call->retryable;
  a.not_sent = !call->sent;
  a.err = err;
  a.status = err == 0 && call->res.head != NULL ? call->res.head->status : 0;
  a.retry_after = err == 0 && call->res.head != NULL
                      ? msvc__http_head_get(call->res.head, "retry-after")
                      : NULL;
  if (msvc_retry_check(call->retry, &a, &delay) != 1)
    return false;
  if (call->dl_total != 0 && now + delay >= call->dl_total)
    return false;
  msvc__http_head_free(call->res.head);
  call->res.head = NULL;
  msvc__http_head_free(call->res.trailers);
  call->res.trailers = NULL;
  call->res.body.len = 0;
  call->state = ST_BACKOFF;
  call->dl_phase = now + delay;
  if (delay == 0)
    call->dl_phase = now; /* still through the loop, never recursively */
  uv_timer_start(&call->timer, on_call_timer, delay, 0);
  return true;
}

void msvc__call_attempt_end(msvc_http_call_t *call, int err, bool keep_conn) {
  msvc__cconn_t *conn = call->conn;

  if (call->state >= ST_FINISHING)
    return;
#ifdef MSVC_HAVE_NGHTTP2
  if (call->h2c != NULL)
    msvc__h2c_abandon(call);
#endif
  if (conn != NULL) {
    call->conn = NULL;
    conn->call = NULL;
    /* An answer that came before the whole request went out leaves the
     * connection in an unknown state. */
    if (conn->writing || call->send_phase != SEND_DONE)
      keep_conn = false;
    if (err == 0)
      msvc__pool_release(conn, keep_conn);
    else
      msvc__cconn_close(conn);
  }
  if (call->state == ST_QUEUED) {
    msvc__queue_remove(&call->wnode);
    call->ep->nwaiting--;
  }
  if (call->state != ST_BACKOFF)
    report(call, err);
  if (maybe_retry(call, err))
    return;
  finish(call, err);
}

void msvc__call_stale(msvc_http_call_t *call) {
  /* The pooled connection was closed by the server: not a failure of the
   * endpoint. A request that never left goes out again whatever it is;
   * once bytes went out, only one that may run twice does, since the
   * server may have processed it before closing. */
  call->conn = NULL;
  if (call->sent &&
      (call->body_source != NULL ||
       (!call->retryable && !msvc_http_method_idempotent(call->method)))) {
    msvc__call_attempt_end(call, MSVC_ECONNRESET, false);
    return;
  }
  call->got_bytes = false;
  msvc__pool_dispatch(call, true);
}

static void write_failed(msvc_http_call_t *call, msvc__cconn_t *conn, int status) {
  if (conn->uses > 0 && !call->got_bytes) {
    msvc__cconn_close(conn);
    msvc__call_stale(call);
    return;
  }
  msvc__call_attempt_end(call, status == UV_EPIPE ? MSVC_ECONNRESET : status, false);
}

/* The next buffers to write: the head (with a memory body), then one chunk
 * per call of a body source, then the last chunk. *n is 0 once all is out. */
static int next_bufs(msvc_http_call_t *call, uv_buf_t *bufs, unsigned *n) {
  const char *piece = NULL;
  size_t len = 0;
  int rc;

  *n = 0;
  if (call->send_phase == SEND_HEAD) {
    bufs[0] = uv_buf_init(call->out.data, (unsigned)call->out.len);
    *n = 1;
    call->send_phase = call->body_source != NULL ? SEND_BODY : SEND_DONE;
    return 0;
  }
  if (call->send_phase != SEND_BODY)
    return 0;
  rc = call->body_source(call, &piece, &len, call->data);
  if (rc < 0)
    return rc;
  if (len == 0 || piece == NULL) {
    bufs[0] = uv_buf_init((char *)"0\r\n\r\n", 5);
    *n = 1;
    call->send_phase = SEND_DONE;
    return 0;
  }
  if (len > UINT32_MAX)
    return MSVC_EINVAL;
  snprintf(call->chunk_head, sizeof(call->chunk_head), "%zx\r\n", len);
  bufs[0] = uv_buf_init(call->chunk_head, (unsigned)strlen(call->chunk_head));
  bufs[1] = uv_buf_init((char *)piece, (unsigned)len);
  bufs[2] = uv_buf_init((char *)"\r\n", 2);
  *n = 3;
  return 0;
}

/* Request sent: the first-byte clock starts. */
static void request_sent(msvc_http_call_t *call) {
  if (call->state != ST_SENDING)
    return;
  call->state = ST_WAITING;
  call->dl_phase = call->to.first_byte_ms ? uv_now(call->c->loop) + call->to.first_byte_ms
                                          : 0;
  msvc__call_arm(call);
}

static void on_written(msvc__transport_t *t, int status, void *arg);
static void send_more(msvc_http_call_t *call, msvc__cconn_t *conn);

static void on_send_resume(uv_timer_t *t) {
  msvc__cconn_t *conn = t->data;

  if (!conn->closing && conn->call != NULL && !conn->writing)
    send_more(conn->call, conn);
}

/* Loops while writes complete at once, so a long streamed body does not
 * recurse. Stops when the answer has started: the server needs no more. */
static void send_more(msvc_http_call_t *call, msvc__cconn_t *conn) {
  uv_buf_t bufs[3];
  unsigned n;
  int rc;

  while (call->state == ST_SENDING && conn->call == call) {
    if (call->send_phase == SEND_BODY && call->c->in_api > 0) {
      /* The source is a callback: not from inside a public call. The idle
       * timer is free while the connection is busy. */
      uv_timer_start(&conn->idle_timer, on_send_resume, 0, 0);
      return;
    }
    rc = next_bufs(call, bufs, &n);
    if (rc < 0) {
      msvc__call_attempt_end(call, rc, false);
      return;
    }
    if (n == 0) {
      request_sent(call);
      return;
    }
    rc = msvc__transport_write(conn->tr, bufs, n, on_written, conn);
    /* Queued or written: the server may see these bytes from now on. A
     * write refused at once (a connection the peer already reset) sent
     * nothing. */
    if (rc >= 0)
      call->sent = true;
    if (rc == 0) {
      conn->writing = true;
      return;
    }
    if (rc < 0) {
      write_failed(call, conn, rc);
      return;
    }
  }
}

static void on_written(msvc__transport_t *t, int status, void *arg) {
  msvc__cconn_t *conn = arg;
  msvc_http_call_t *call = conn->call;

  (void)t;
  conn->writing = false;
  if (conn->closing || call == NULL)
    return;
  if (status < 0)
    write_failed(call, conn, status);
  else
    send_more(call, conn);
}

void msvc__call_send(msvc_http_call_t *call, msvc__cconn_t *conn) {
  call->state = ST_SENDING;
  call->send_phase = SEND_HEAD;
  call->dl_phase = 0;
  conn->msg_done = false;
  conn->parser.skip_body = call->is_head;
  conn->parser.lim.max_body = call->on_chunk != NULL ? 0 : call->max_body;
  msvc__call_arm(call);
  send_more(call, conn);
}

static int call_new(msvc_http_client_t *c, const msvc_http_request_t *r,
                    const target_t *t, msvc__endpoint_t *ep, msvc_http_call_t **out) {
  msvc_http_call_t *call = msvc__calloc(1, sizeof(*call));

  if (call == NULL)
    return MSVC_ENOMEM;
  call->method = msvc__strdup(r->method != NULL ? r->method : "GET");
  msvc__buf_init(&call->out, 0);
  msvc__buf_init(&call->res.body, 0);
  if (call->method == NULL || serialize(r, t, ep, &call->out) != 0) {
    msvc__free(call->method);
    msvc__buf_free(&call->out);
    msvc__free(call);
    return MSVC_ENOMEM;
  }
  call->c = c;
  call->ep = ep;
  call->to = r->timeouts;
  call->max_body = r->max_response_body != 0 ? r->max_response_body
                                             : c->o.max_response_body;
  call->retry = r->retry;
  call->retryable = r->retryable || has_header(r, t, "Idempotency-Key");
  call->on_chunk = r->on_chunk;
  call->body_source = r->body_source;
  call->on_done = r->on_done;
  call->data = r->data;
  call->is_head = strcmp(call->method, "HEAD") == 0;
  msvc__queue_init(&call->wnode);
  (void)uv_timer_init(c->loop, &call->timer);
  call->timer.data = call;
  msvc__queue_insert_tail(&c->calls, &call->node);
  c->ncalls++;
  *out = call;
  return 0;
}

int msvc_http_client_request(msvc_http_client_t *c, const msvc_http_request_t *r,
                             msvc_http_call_t **out) {
  return msvc__http_client_request_own(c, r, 0, 0, out);
}

int msvc__http_client_request_own(msvc_http_client_t *c, const msvc_http_request_t *r,
                                  size_t own_from, size_t own_n, msvc_http_call_t **out) {
  msvc__endpoint_t *ep;
  msvc_http_call_t *call;
  target_t t;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (c == NULL || r == NULL)
    return MSVC_EINVAL;
  if (c->closing)
    return MSVC_ECLOSED;
  t.own_from = own_from;
  t.own_n = own_n;
  if ((rc = resolve_target(r, &t)) != 0 || (rc = validate(r, &t, own_from, own_n)) != 0)
    return rc;
  if (t.tls && (rc = client_tls_ready(c)) != 0)
    return rc;
  ep = msvc__endpoint_get(c, t.host, t.port, t.tls, true);
  if (ep == NULL)
    return MSVC_ENOMEM;
  if (msvc__endpoint_full(ep))
    return MSVC_EHTTP_POOL_FULL;
  if ((rc = call_new(c, r, &t, ep, &call)) != 0)
    return rc;
  if (r->http2 || c->o.http2) {
#ifdef MSVC_HAVE_NGHTTP2
    rc = msvc__h2c_prepare(call, r, t.path, t.path_len);
#else
    rc = MSVC_ENOTSUP;
#endif
    if (rc != 0) {
      call_free(call);
      return rc;
    }
  }
  if (call->to.total_ms != 0)
    call->dl_total = uv_now(c->loop) + call->to.total_ms;
  if (call->retry != NULL)
    msvc_retry_note_request(call->retry);
  c->in_api++;
  start_attempt(call, false);
  c->in_api--;
  if (out != NULL)
    *out = call;
  return MSVC_OK;
}

void msvc_http_call_cancel(msvc_http_call_t *call) {
  if (call == NULL || call->state >= ST_FINISHING)
    return;
  call->cancelled = true;
  call->c->in_api++;
  if (call->state == ST_BACKOFF)
    finish(call, MSVC_ECANCELED);
  else
    msvc__call_attempt_end(call, MSVC_ECANCELED, false);
  call->c->in_api--;
}

bool msvc_http_call_sent(const msvc_http_call_t *call) {
  return call != NULL && call->sent;
}

/* ---- responses ---------------------------------------------------------- */

int msvc_http_response_status(const msvc_http_response_t *res) {
  return res != NULL && res->head != NULL ? res->head->status : 0;
}

const char *msvc__http_response_grpc_status(const msvc_http_response_t *res) {
  const char *s = msvc_http_response_trailer(res, "grpc-status");

  /* An HTTP/1 head says whether it has the field: most answers are not
   * gRPC's, and are not searched. */
  if (s == NULL && res != NULL && res->head != NULL &&
      (!res->head->fields_scanned || res->head->grpc_status))
    s = msvc__http_head_get(res->head, "grpc-status");
  return s;
}

const char *msvc_http_response_header(const msvc_http_response_t *res,
                                      const char *name) {
  if (res == NULL || res->head == NULL || name == NULL)
    return NULL;
  return msvc__http_head_get(res->head, name);
}

size_t msvc_http_response_header_count(const msvc_http_response_t *res) {
  return res != NULL && res->head != NULL ? res->head->nfields : 0;
}

int msvc_http_response_header_at(const msvc_http_response_t *res, size_t i,
                                 const char **name, const char **value) {
  const msvc__http_head_t *h;

  if (res == NULL || res->head == NULL || i >= res->head->nfields)
    return MSVC_ERANGE;
  h = res->head;
  if (name != NULL)
    *name = msvc__http_head_str(h, h->fields[i].name);
  if (value != NULL)
    *value = msvc__http_head_str(h, h->fields[i].value);
  return MSVC_OK;
}

int msvc_http_response_version(const msvc_http_response_t *res) {
  if (res == NULL || res->head == NULL)
    return 0;
  return res->head->http_major * 10 + res->head->http_minor;
}

const char *msvc_http_response_trailer(const msvc_http_response_t *res,
                                       const char *name) {
  if (res == NULL || res->trailers == NULL || name == NULL)
    return NULL;
  return msvc__http_head_get(res->trailers, name);
}

size_t msvc_http_response_trailer_count(const msvc_http_response_t *res) {
  return res != NULL && res->trailers != NULL ? res->trailers->nfields : 0;
}

int msvc_http_response_trailer_at(const msvc_http_response_t *res, size_t i,
                                  const char **name, const char **value) {
  const msvc__http_head_t *h;

  if (res == NULL || res->trailers == NULL || i >= res->trailers->nfields)
    return MSVC_ERANGE;
  h = res->trailers;
  if (name != NULL)
    *name = msvc__http_head_str(h, h->fields[i].name);
  if (value != NULL)
    *value = msvc__http_head_str(h, h->fields[i].value);
  return MSVC_OK;
}

const char *msvc_http_response_body(const msvc_http_response_t *res, size_t *len) {
  if (len != NULL)
    *len = res != NULL ? res->body.len : 0;
  if (res == NULL || res->body.data == NULL)
    return "";
  return res->body.data;
}
