/* Request objects: life cycle, dispatch through middleware, accessors. */
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http/server.h"

msvc_http_req_t *msvc__req_new(msvc__conn_t *c) {
  msvc_http_req_t *req = c->spare;

  if (req != NULL)
    c->spare = NULL;
  else if ((req = msvc__calloc(1, sizeof(*req))) == NULL)
    return NULL;
  req->conn = c;
  req->srv = c->srv;
  msvc__queue_init(&req->node);
  msvc__buf_init(&req->body, 0);
  msvc__buf_init(&req->trailers, 64 * 1024);
  msvc__buf_init(&req->out, 0);
  /* the storage a recycled object kept (empty and NUL-terminated) */
  req->hdrs.len = 0;
  req->hdrs.err = MSVC_OK;
  req->hdrs.max = 64 * 1024;
  return req;
}

static bool is_inline(const msvc_http_req_t *req, const msvc__alloc_t *a) {
  return a >= req->inline_allocs &&
         a < req->inline_allocs + MSVC__REQ_INLINE_ALLOCS;
}

/* A record for the allocs list: an inline one while there is one left. */
static msvc__alloc_t *alloc_record(msvc_http_req_t *req) {
  if (req->ninline < MSVC__REQ_INLINE_ALLOCS)
    return &req->inline_allocs[req->ninline++];
  return msvc__malloc(sizeof(msvc__alloc_t));
}

void msvc__req_reset(msvc_http_req_t *req) {
  msvc__alloc_t *a = req->allocs;
  char *hdrs = req->hdrs.data;
  size_t hdrs_cap = req->hdrs.cap;

  while (a != NULL) {
    msvc__alloc_t *next = a->next;
    if (a->free_fn != NULL)
      a->free_fn(a->value);
    if (!is_inline(req, a))
      msvc__free(a);
    a = next;
  }
  if (hdrs_cap > MSVC__REQ_KEEP_HDRS) {
    msvc__free(hdrs);
    hdrs = NULL;
    hdrs_cap = 0;
  }
  msvc__http_head_free(req->head);
  msvc__buf_free(&req->body);
  msvc__buf_free(&req->trailers);
  msvc__buf_free(&req->out);
  msvc__free(req->allow);
  /* the inline records and the arena need no clearing */
  memset(req, 0, offsetof(msvc_http_req_t, inline_allocs));
  req->hdrs.data = hdrs;
  req->hdrs.cap = hdrs_cap;
  if (hdrs != NULL)
    hdrs[0] = '\0';
}

void msvc__req_destroy(msvc_http_req_t *req) {
  if (req == NULL)
    return;
  msvc__req_reset(req);
  msvc__free(req->hdrs.data);
  msvc__free(req);
}

void msvc__req_release(msvc_http_req_t *req) {
  msvc__conn_t *c = req->conn;

  if (c != NULL && !c->closing && c->spare == NULL) {
    msvc__http_parser_recycle(&c->parser, req->head);
    req->head = NULL;
    msvc__req_reset(req);
    c->spare = req;
    return;
  }
  msvc__req_destroy(req);
}

void msvc__req_run_after(msvc_http_req_t *req) {
  msvc_http_server_t *srv = req->srv;
  uint64_t dur;
  size_t i;

  if (req->after_done)
    return;
  req->after_done = true;
  dur = uv_hrtime() - req->t0;
  for (i = req->mw_next; i-- > 0;)
    if (srv->mw[i].after != NULL)
      srv->mw[i].after(req, &req->res, dur, srv->mw[i].data);
}

void msvc__req_detach(msvc_http_req_t *req) {
  req->conn = NULL;
  if (req->state == RES_DONE) {
    if (!req->running)
      msvc__req_destroy(req);
    return;
  }
  req->cancelled = true;
  msvc__req_run_after(req);
  if (req->cancel_fn != NULL)
    req->cancel_fn(req, req->cancel_data);
}

static void answer_unrouted(msvc_http_req_t *req) {
  if (req->route_status == 405) {
    if (req->allow != NULL)
      msvc_http_res_header(&req->res, "Allow", req->allow);
    msvc_http_res_error(&req->res, 405, "METHOD_NOT_ALLOWED",
                        "The method is not allowed on this resource.");
  } else {
    msvc_http_res_error(&req->res, 404, "NOT_FOUND",
                        "No resource matches the request path.");
  }
}

static void run_chain(msvc_http_req_t *req) {
  msvc_http_server_t *srv = req->srv;

  while (req->mw_next < srv->nmw) {
    const msvc_http_middleware_t *mw = &srv->mw[req->mw_next++];
    if (mw->before != NULL) {
      int r = mw->before(req, &req->res, mw->data);
      if (r == MSVC_HTTP_PAUSE) {
        req->paused = true;
        return;
      }
      if (r != MSVC_HTTP_NEXT)
        return;
    }
    if (req->state != RES_NEW || req->cancelled)
      return;
  }
  if (req->match.route != NULL)
    req->match.route->handler(req, &req->res, req->match.route->data);
  else
    answer_unrouted(req);
}

/* Runs the chain with the request pinned: even if the handler finishes the
 * response at once, the request is released only after the handler returns,
 * so a second answer from it fails cleanly instead of reaching a recycled
 * object. */
static void run_pinned(msvc_http_req_t *req) {
  msvc__conn_t *c;
  bool was = req->running;

  req->running = true;
  run_chain(req);
  req->running = was;
  /* Resumed from inside another pin (a worker pool's done function): the
   * outer one releases the request when it lets go. */
  if (was || req->state != RES_DONE)
    return;
  c = req->conn;
  if (c == NULL)
    msvc__req_destroy(req);
  else if (c->in_read)
    msvc__conn_collect(c);
  else
    msvc__conn_flush(c);
}

/* Pins a request across a callback that may finish it (a worker pool's
 * done function), as run_pinned() does around the handler. */
bool msvc__req_hold(msvc_http_req_t *req) {
  bool was = req->running;

  req->running = true;
  return was;
}

void msvc__req_unhold(msvc_http_req_t *req, bool was) {
  msvc__conn_t *c;

  req->running = was;
  if (was || req->state != RES_DONE)
    return;
  c = req->conn;
  if (c == NULL)
    msvc__req_destroy(req);
  else if (c->in_read)
    msvc__conn_collect(c);
  else
    msvc__conn_flush(c);
}

void msvc__req_dispatch(msvc_http_req_t *req) {
  msvc_http_server_t *srv = req->srv;
  const msvc__http_head_t *h = req->head;
  msvc__buf_t allow;

  if (srv->draining) {
    msvc__res_error_close(req, 503, "SHUTTING_DOWN", "The server is shutting down.");
    return;
  }
  msvc__buf_init(&allow, 4096);
  req->route_status = msvc__router_match(
      &srv->router, llhttp_method_name((llhttp_method_t)h->method),
      msvc__http_head_str(h, h->target), req->path_len, &req->match, &allow);
  if (req->route_status != 200)
    req->match.route = NULL;
  if (req->route_status == 405 && allow.err == MSVC_OK && allow.len > 0)
    req->allow = msvc__buf_detach(&allow, NULL);
  msvc__buf_free(&allow);
  run_pinned(req);
}

int msvc_http_req_resume(msvc_http_req_t *req) {
  if (req == NULL || !req->paused)
    return MSVC_ESTATE;
  req->paused = false;
  if (req->state != RES_NEW || req->cancelled)
    return MSVC_OK;
  run_pinned(req);
  return MSVC_OK;
}

/* ---- accessors ---------------------------------------------------------- */

const char *msvc_http_req_method(const msvc_http_req_t *req) {
  if (req == NULL || req->head == NULL)
    return "";
  return llhttp_method_name((llhttp_method_t)req->head->method);
}

const char *msvc_http_req_target(const msvc_http_req_t *req) {
  if (req == NULL || req->head == NULL)
    return "";
  return msvc__http_head_str(req->head, req->head->target);
}

const char *msvc_http_req_path(const msvc_http_req_t *req, size_t *len) {
  const char *t = msvc_http_req_target(req);

  if (len != NULL)
    *len = req != NULL && req->head != NULL ? req->path_len : 0;
  return t;
}

const char *msvc_http_req_header(const msvc_http_req_t *req, const char *name) {
  if (req == NULL || req->head == NULL || name == NULL)
    return NULL;
  return msvc__http_head_get(req->head, name);
}

size_t msvc_http_req_header_count(const msvc_http_req_t *req) {
  return req != NULL && req->head != NULL ? req->head->nfields : 0;
}

int msvc_http_req_header_at(const msvc_http_req_t *req, size_t i,
                            const char **name, const char **value) {
  const msvc__http_field_t *f;

  if (req == NULL || req->head == NULL || i >= req->head->nfields)
    return MSVC_ERANGE;
  f = &req->head->fields[i];
  if (name != NULL)
    *name = msvc__http_head_str(req->head, f->name);
  if (value != NULL)
    *value = msvc__http_head_str(req->head, f->value);
  return MSVC_OK;
}

/* Percent-decodes into out (at least n+1 bytes); a malformed escape is kept
 * as it is. Returns the decoded length. */
static size_t pct_decode(char *out, const char *s, size_t n, bool plus) {
  size_t i, o = 0;

  for (i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = msvc__hex_digit(s[i + 1])) >= 0 &&
        (lo = msvc__hex_digit(s[i + 2])) >= 0) {
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = plus && s[i] == '+' ? ' ' : s[i];
    }
  }
  out[o] = '\0';
  return o;
}

static char *keep_decoded(msvc_http_req_t *req, const char *s, size_t n, bool plus) {
  msvc__alloc_t *a;
  char *out;

  if (n < sizeof(req->scratch) - req->scratch_used) {
    out = req->scratch + req->scratch_used;
    req->scratch_used += (uint16_t)(pct_decode(out, s, n, plus) + 1);
    return out;
  }
  a = msvc__malloc(sizeof(*a) + n + 1);
  if (a == NULL)
    return NULL;
  out = (char *)(a + 1);
  pct_decode(out, s, n, plus);
  a->key = NULL;
  a->value = NULL;
  a->free_fn = NULL;
  a->next = req->allocs;
  req->allocs = a;
  return out;
}

const char *msvc_http_req_param(msvc_http_req_t *req, const char *name) {
  uint16_t i;

  if (req == NULL || name == NULL || req->match.route == NULL)
    return NULL;
  for (i = 0; i < req->match.nparams; i++) {
    const msvc__param_t *p = &req->match.params[i];
    bool hit = p->seg->kind == SEG_WILD
                   ? strcmp(name, "*") == 0
                   : strlen(name) == p->seg->len && memcmp(name, p->seg->s, p->seg->len) == 0;
    if (hit)
      return keep_decoded(req, msvc_http_req_target(req) + p->off, p->len, false);
  }
  return NULL;
}

const char *msvc_http_req_query(msvc_http_req_t *req, const char *name) {
  const char *t, *p, *end;
  size_t nlen;
  char key[256];

  if (req == NULL || name == NULL || req->head == NULL)
    return NULL;
  t = msvc_http_req_target(req);
  end = t + req->head->target_len;
  p = t + req->path_len;
  if (p >= end || *p != '?')
    return NULL;
  nlen = strlen(name);
  if (nlen >= sizeof(key))
    return NULL;
  for (p++; p < end;) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp != NULL ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    const char *kend = eq != NULL ? eq : stop;
    const char *hash = memchr(p, '#', (size_t)(stop - p));

    if (hash != NULL && hash < kend)
      break;
    if ((size_t)(kend - p) < sizeof(key) &&
        pct_decode(key, p, (size_t)(kend - p), true) == nlen &&
        memcmp(key, name, nlen) == 0) {
      if (eq == NULL)
        return keep_decoded(req, "", 0, true);
      if (hash != NULL && hash < stop)
        stop = hash;
      return keep_decoded(req, eq + 1, (size_t)(stop - eq - 1), true);
    }
    p = stop + 1;
  }
  return NULL;
}

const char *msvc_http_req_body(const msvc_http_req_t *req, size_t *len) {
  if (len != NULL)
    *len = req != NULL ? req->body.len : 0;
  return req != NULL && req->body.data != NULL ? req->body.data : "";
}

/* cJSON ends its strings at a NUL, so a name or a value holding "\u0000"
 * (or a raw NUL) would reach the handler silently cut short: refused. */
static bool has_nul(const char *s, size_t len) {
  bool in_str = false;
  size_t i;

  for (i = 0; i < len; i++) {
    if (s[i] == '\0')
      return true;
    if (!in_str) {
      in_str = s[i] == '"';
      continue;
    }
    if (s[i] == '"') {
      in_str = false;
    } else if (s[i] == '\\' && i + 1 < len) {
      if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
        return true;
      i++; /* the escaped character */
    }
  }
  return false;
}

/* Only white space may follow the document. */
static bool only_space(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
      return false;
  return true;
}

int msvc_http_req_json(msvc_http_req_t *req, struct cJSON **out) {
  const char *ct;
  size_t len;
  const char *body, *end = NULL;
  cJSON *doc;

  if (req == NULL || out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  ct = msvc_http_req_header(req, "Content-Type");
  if (ct == NULL || msvc__strncasecmp(ct, "application/json", 16) != 0 ||
      (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
    msvc_http_res_error(&req->res, 415, "UNSUPPORTED_MEDIA_TYPE",
                        "The request body must be application/json.");
    return MSVC_ENOTSUP;
  }
  body = msvc_http_req_body(req, &len);
  if (has_nul(body, len)) {
    msvc_http_res_error(&req->res, 400, "INVALID_ARGUMENT",
                        "The request body holds a NUL character (\\u0000), "
                        "which is not accepted in JSON strings.");
    return MSVC_EJSON;
  }
  doc = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (doc != NULL && (end == NULL || !only_space(end, body + len))) {
    cJSON_Delete(doc);
    doc = NULL;
  }
  /* A valid body that cJSON could not parse ran out of memory: that is not
   * the client's fault, and the handler answers it. */
  if (doc == NULL && msvc__json_parse_error(body, len) == MSVC_ENOMEM)
    return MSVC_ENOMEM;
  if (doc == NULL) {
    msvc_http_res_error(&req->res, 400, "INVALID_ARGUMENT",
                        "The request body is not valid JSON.");
    return MSVC_EJSON;
  }
  *out = doc;
  return MSVC_OK;
}

const char *msvc_http_req_route(const msvc_http_req_t *req) {
  return req != NULL && req->match.route != NULL ? req->match.route->pattern : NULL;
}

const msvc_http_route_opts_t *msvc_http_req_route_opts(const msvc_http_req_t *req) {
  return req != NULL && req->match.route != NULL ? &req->match.route->opts : NULL;
}

int msvc_http_req_peer(const msvc_http_req_t *req, char *out, size_t len) {
  if (req == NULL || out == NULL || len == 0)
    return MSVC_EINVAL;
  if (req->conn == NULL || req->conn->closing)
    return MSVC_ECLOSED;
  return req->conn->tr->ops->peer(req->conn->tr, out, len);
}

int msvc_http_req_set(msvc_http_req_t *req, const char *key, void *value,
                      void (*free_fn)(void *)) {
  msvc__alloc_t *a;

  if (req == NULL || key == NULL)
    return MSVC_EINVAL;
  for (a = req->allocs; a != NULL; a = a->next) {
    if (a->key != NULL && (a->key == key || strcmp(a->key, key) == 0)) {
      if (a->free_fn != NULL)
        a->free_fn(a->value);
      a->value = value;
      a->free_fn = free_fn;
      return MSVC_OK;
    }
  }
  a = alloc_record(req);
  if (a == NULL) {
    if (free_fn != NULL)
      free_fn(value);
    return MSVC_ENOMEM;
  }
  a->key = key;
  a->value = value;
  a->free_fn = free_fn;
  a->next = req->allocs;
  req->allocs = a;
  return MSVC_OK;
}

void *msvc_http_req_get(const msvc_http_req_t *req, const char *key) {
  const msvc__alloc_t *a;

  if (req == NULL || key == NULL)
    return NULL;
  for (a = req->allocs; a != NULL; a = a->next)
    if (a->key != NULL && (a->key == key || strcmp(a->key, key) == 0))
      return a->value;
  return NULL;
}

void msvc_http_req_on_cancel(msvc_http_req_t *req, msvc_http_cancel_fn fn, void *data) {
  if (req == NULL)
    return;
  req->cancel_fn = fn;
  req->cancel_data = data;
}

bool msvc_http_req_cancelled(const msvc_http_req_t *req) {
  return req != NULL && req->cancelled;
}

int msvc_http_req_version(const msvc_http_req_t *req) {
  if (req == NULL || req->head == NULL)
    return 0;
  return req->head->http_major * 10 + req->head->http_minor;
}

msvc_http_res_t *msvc_http_req_res(msvc_http_req_t *req) {
  return req != NULL ? &req->res : NULL;
}

msvc_http_req_t *msvc_http_res_req(msvc_http_res_t *res) {
  return res != NULL ? msvc__container_of(res, msvc_http_req_t, res) : NULL;
}
