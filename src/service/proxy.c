/*
 * Reverse proxy: an incoming request forwarded to a service by name through
 * msvc__caller_call(), its answer streamed back. Hop-by-hop headers (RFC
 * 9110 7.6.1: the fixed list plus whatever the Connection header names)
 * stay on their hop in both directions.
 */
#include <stdint.h>
#include <stdio.h>

#include "call-internal.h"

typedef struct proxy_s {
  msvc_http_res_t *res;
  char *service;
  /* An unsafe method through a cached proxy: what it changed is dropped
   * from the cache once it succeeds (RFC 9111 4.4). */
  msvc_cache_t *cache;
  char *cache_uri;
  char *cache_identity;
  bool started;
  bool head; /* a HEAD request: the answer has a length but no body */
} proxy_t;

static const char *const hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Connection", "TE", "Trailer", "Trailers", "Transfer-Encoding", "Upgrade"};

/* Whether name appears as a token of a Connection header value. */
static bool named_in(const char *conn, const char *name) {
  size_t n = strlen(name);

  while (conn != NULL && *conn != '\0') {
    size_t len;
    conn += strspn(conn, " \t,");
    len = strcspn(conn, " \t,");
    if (len == n && msvc__strncasecmp(conn, name, n) == 0)
      return true;
    conn += len;
  }
  return false;
}

static bool is_hop(const char *name, const char *conn) {
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(hop_by_hop); i++)
    if (msvc__strcasecmp(name, hop_by_hop[i]) == 0)
      return true;
  return named_in(conn, name);
}

void msvc_service_proxy_opts_init(msvc_service_proxy_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->forward_auth = true;
}

/* The upstream target: the path with strip_prefix removed (only at a
 * segment boundary) and add_prefix put in front, then the query. */
static char *rewrite_target(const char *target, const msvc_service_proxy_opts_t *o) {
  size_t plen = strcspn(target, "?"), sl = o->strip_prefix ? strlen(o->strip_prefix) : 0;
  const char *rest = target;
  msvc__buf_t b;

  if (sl > 0 && o->strip_prefix[sl - 1] == '/')
    sl--;
  if (sl > 0 && plen >= sl && strncmp(target, o->strip_prefix, sl) == 0 &&
      (target[sl] == '/' || target[sl] == '?' || target[sl] == '\0'))
    rest = target + sl;
  msvc__buf_init(&b, 0);
  if (o->add_prefix != NULL && o->add_prefix[0] != '\0') {
    size_t al = strlen(o->add_prefix);
    if (o->add_prefix[0] != '/')
      msvc__buf_putc(&b, '/');
    msvc__buf_append(&b, o->add_prefix, o->add_prefix[al - 1] == '/' ? al - 1 : al);
  }
  if (rest[0] != '/')
    msvc__buf_putc(&b, '/');
  msvc__buf_puts(&b, rest);
  return msvc__buf_detach(&b, NULL);
}

static bool skip_request_header(const msvc_http_req_t *req, const char *name,
                                 const char *conn) {
  if (is_hop(name, conn) || msvc__strcasecmp(name, "Host") == 0 ||
      msvc__strcasecmp(name, "Content-Length") == 0 ||
      msvc__strcasecmp(name, "Expect") == 0 || /* the body is already here */
      msvc__strcasecmp(name, "Authorization") == 0 ||
      msvc__strcasecmp(name, "X-Forwarded-For") == 0 ||
      msvc__strcasecmp(name, MSVC_MW_REQUEST_ID_HEADER) == 0)
    return true;
  /* With the trace middleware the call sends a child of this hop's trace;
   * without it the incoming context goes on unchanged. */
  return msvc_mw_trace(req) != NULL && (msvc__strcasecmp(name, "traceparent") == 0 ||
                                        msvc__strcasecmp(name, "tracestate") == 0);
}

static char *forwarded_for(const msvc_http_req_t *req) {
  const char *prev = msvc_http_req_header(req, "X-Forwarded-For");
  char peer[80];
  char *colon;
  msvc__buf_t b;

  if (msvc_http_req_peer(req, peer, sizeof(peer)) != 0)
    snprintf(peer, sizeof(peer), "unknown");
  colon = strrchr(peer, ':'); /* "ip:port" or "[v6]:port" */
  if (colon != NULL && strchr(peer, '.') != NULL)
    *colon = '\0';
  else if (peer[0] == '[' && (colon = strstr(peer, "]:")) != NULL)
    colon[1] = '\0';
  msvc__buf_init(&b, 0);
  if (prev != NULL && prev[0] != '\0')
    msvc__buf_printf(&b, "%s, ", prev);
  msvc__buf_puts(&b, peer);
  return msvc__buf_detach(&b, NULL);
}

bool msvc__proxy_skip_response_header(const char *name, const char *conn) {
  return is_hop(name, conn) || msvc__strcasecmp(name, "Content-Length") == 0 ||
         msvc__strcasecmp(name, "Content-Type") == 0 || msvc__strcasecmp(name, "Date") == 0 ||
         msvc__strcasecmp(name, MSVC_MW_REQUEST_ID_HEADER) == 0;
}

static void copy_response_headers(msvc_http_res_t *out, const msvc_http_response_t *res) {
  const char *conn = msvc_http_response_header(res, "Connection");
  size_t i, n = msvc_http_response_header_count(res);

  for (i = 0; i < n; i++) {
    const char *name, *value;
    if (msvc_http_response_header_at(res, i, &name, &value) != 0)
      continue;
    if (is_hop(name, conn) || msvc__strcasecmp(name, "Content-Length") == 0 ||
        msvc__strcasecmp(name, "Content-Type") == 0 || msvc__strcasecmp(name, "Date") == 0 ||
        msvc__strcasecmp(name, MSVC_MW_REQUEST_ID_HEADER) == 0)
      continue;
    msvc_http_res_header(out, name, value);
  }
}

static void on_proxy_chunk(msvc_http_call_t *hc, const msvc_http_response_t *res,
                           const char *buf, size_t len, void *data) {
  proxy_t *p = data;

  (void)hc;
  if (!p->started) {
    p->started = true;
    copy_response_headers(p->res, res);
    msvc_http_res_start(p->res, msvc_http_response_status(res),
                        msvc_http_response_header(res, "Content-Type"));
  }
  msvc_http_res_write(p->res, buf, len);
}

/* A Content-Length value, digits only; false when absent or malformed. */
static bool content_length(const msvc_http_response_t *res, size_t *out) {
  const char *v = msvc_http_response_header(res, "Content-Length");
  size_t n = 0;

  if (v == NULL || *v == '\0')
    return false;
  for (; *v >= '0' && *v <= '9'; v++) {
    if (n > (SIZE_MAX - 9) / 10)
      return false;
    n = n * 10 + (size_t)(*v - '0');
  }
  *out = n;
  return *v == '\0';
}

/* The answer to a HEAD carries the length the upstream announced (RFC 9110
 * 9.3.2: what a GET would have had), without a body. An answer without
 * one goes out chunked, which claims no length either. */
static void send_head_answer(msvc_http_res_t *out, const msvc_http_response_t *res) {
  int status = msvc_http_response_status(res);
  const char *ctype = msvc_http_response_header(res, "Content-Type");
  size_t n;

  if (content_length(res, &n)) {
    msvc_http_res_send(out, status, ctype, NULL, n);
    return;
  }
  if (msvc_http_res_start(out, status, ctype) == MSVC_OK)
    msvc_http_res_end(out);
}

static void proxy_free(proxy_t *p) {
  if (p == NULL)
    return;
  msvc__free(p->service);
  msvc__free(p->cache_uri);
  msvc__free(p->cache_identity);
  msvc__free(p);
}

/* Remembers what an unsafe request through a cached proxy may change. */
static int note_unsafe(proxy_t *p, const msvc_service_proxy_opts_t *o, msvc_http_req_t *req,
                       const char *target) {
  const char *m = msvc_http_req_method(req);
  const char *auth = o->forward_auth ? msvc_http_req_header(req, "Authorization") : NULL;
  msvc__buf_t b;

  /* the safe methods change nothing */
  if (o->cache == NULL || strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
      strcmp(m, "OPTIONS") == 0 || strcmp(m, "TRACE") == 0)
    return MSVC_OK;
  msvc__buf_init(&b, 0);
  msvc__buf_printf(&b, "%s %s", o->service, target);
  p->cache_uri = msvc__buf_detach(&b, NULL);
  if (p->cache_uri == NULL || (auth != NULL && (p->cache_identity = msvc__strdup(auth)) == NULL))
    return MSVC_ENOMEM;
  p->cache = o->cache;
  return MSVC_OK;
}

static void on_proxy_done(int err, const msvc_http_response_t *res, void *data) {
  proxy_t *p = data;

  if (p->started) {
    /* A body cut short cannot be told apart from a whole one by a reader
     * of a chunked stream unless the connection goes too. */
    if (err != 0)
      msvc_http_res_close_connection(p->res);
    msvc_http_res_end(p->res);
  } else if (err == 0) {
    copy_response_headers(p->res, res);
    if (p->head)
      send_head_answer(p->res, res);
    else
      msvc_http_res_send(p->res, msvc_http_response_status(res),
                         msvc_http_response_header(res, "Content-Type"), NULL, 0);
  } else {
    msvc_service_res_upstream_error(p->res, p->service, err);
  }
  if (p->cache != NULL && err == 0 && msvc_http_response_status(res) < 400)
    msvc_cache_invalidate(p->cache, p->cache_uri, p->cache_identity);
  proxy_free(p);
}

static int build_headers(msvc_http_req_t *req, msvc_http_header_t *h, size_t *n,
                         char *xff) {
  const char *conn = msvc_http_req_header(req, "Connection");
  size_t i, count = msvc_http_req_header_count(req), k = 0;

  for (i = 0; i < count; i++) {
    const char *name, *value;
    if (msvc_http_req_header_at(req, i, &name, &value) != 0 ||
        skip_request_header(req, name, conn))
      continue;
    h[k].name = name;
    h[k].value = value;
    k++;
  }
  h[k].name = "X-Forwarded-For";
  h[k].value = xff;
  *n = k + 1;
  return MSVC_OK;
}

int msvc__caller_proxy(msvc__caller_t *c, msvc_http_req_t *req,
                       const msvc_service_proxy_opts_t *opts) {
  msvc_service_request_t sr;
  msvc_http_header_t *h = NULL;
  proxy_t *p = NULL;
  char *target = NULL, *xff = NULL;
  int r = MSVC_ENOMEM;

  if (c == NULL || req == NULL || opts == NULL || opts->size < sizeof(*opts) ||
      !msvc__call_name_valid(opts->service))
    return MSVC_EINVAL;
  msvc_service_request_init(&sr);
  p = msvc__calloc(1, sizeof(*p));
  target = rewrite_target(msvc_http_req_target(req), opts);
  xff = forwarded_for(req);
  h = msvc__calloc(msvc_http_req_header_count(req) + 1, sizeof(*h));
  if (p == NULL || target == NULL || xff == NULL || h == NULL ||
      (p->service = msvc__strdup(opts->service)) == NULL ||
      note_unsafe(p, opts, req, target) != MSVC_OK)
    goto out;
  p->res = msvc_http_req_res(req);
  p->head = strcmp(msvc_http_req_method(req), "HEAD") == 0;
  build_headers(req, h, &sr.nheaders, xff);
  sr.method = msvc_http_req_method(req);
  sr.target = target;
  sr.headers = h;
  sr.body = msvc_http_req_body(req, &sr.body_len);
  if (sr.body_len == 0)
    sr.body = NULL;
  sr.parent = req;
  sr.forward_auth = opts->forward_auth;
  sr.timeout_ms = opts->timeout_ms;
  sr.on_done = on_proxy_done;
  sr.data = p;
  if (opts->cache != NULL && strcmp(sr.method, "GET") == 0)
    r = msvc__proxy_cached(c, opts->cache, opts->service, req, &sr);
  else
    r = msvc__caller_call(c, opts->service, &sr, on_proxy_chunk, NULL);
  if (r == 0 && opts->cache != NULL && strcmp(sr.method, "GET") == 0)
    goto out; /* p is not used by the cached path */
  if (r == MSVC_ESTATE || r == MSVC_ENOMEM) {
    /* Could not even start: answer now, as a failed call would be. */
    msvc_service_res_upstream_error(p->res, p->service, MSVC_ENO_ENDPOINTS);
    r = MSVC_OK;
    goto out;
  }
  if (r == 0)
    p = NULL; /* owned by the call now */
out:
  proxy_free(p);
  msvc__free(target);
  msvc__free(xff);
  msvc__free(h);
  return r == MSVC_ENOMEM ? MSVC_EINVAL : r;
}

int msvc_service_proxy(msvc_service_t *svc, msvc_http_req_t *req,
                       const msvc_service_proxy_opts_t *opts) {
  if (svc == NULL)
    return MSVC_EINVAL;
  return msvc__caller_proxy(msvc__service_caller(svc), req, opts);
}
