/*
 * GET calls through a response cache (msvc/cache.h): a fresh entry
 * answers at once (from the loop, never inside the call that asked), an
 * expired one is revalidated with If-None-Match, and a failed call falls
 * back to an entry still within its stale-if-error. The reverse proxy
 * uses the same path for its GET requests.
 */
#include <stdio.h>

#include <msvc/cache.h>

#include "call-internal.h"

typedef struct cget_s {
  msvc__caller_t *c;
  msvc_cache_t *cache;
  char *uri;
  char *identity;
  msvc_cache_entry_t *entry; /* found by the lookup, or NULL */
  msvc_service_cached_fn done;
  void *data;
  uv_timer_t timer; /* delivers a fresh hit from the loop */
} cget_t;

static void cget_free(cget_t *g) {
  msvc_cache_entry_release(g->entry);
  msvc__free(g->uri);
  msvc__free(g->identity);
  msvc__free(g);
}

static void on_timer_closed(uv_handle_t *h) {
  cget_free(msvc__container_of((uv_timer_t *)h, cget_t, timer));
}

static const char *req_header(const msvc_service_request_t *req, const char *name) {
  size_t i;

  for (i = 0; i < req->nheaders; i++)
    if (msvc__strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

static void deliver_entry(cget_t *g, const msvc_cache_entry_t *e, msvc_cache_result_t how) {
  msvc_service_cached_t r;

  memset(&r, 0, sizeof(r));
  r.status = msvc_cache_entry_status(e);
  r.content_type = msvc_cache_entry_header(e, "Content-Type");
  r.body = msvc_cache_entry_body(e, &r.body_len);
  r.result = how;
  r.age_s = how == MSVC_CACHE_MISS ? 0 : msvc_cache_entry_age_s(e, msvc_now_ms());
  r.entry = e;
  msvc_cache_note(g->cache, how);
  g->done(&r, g->data);
}

static void on_hit(uv_timer_t *t) {
  cget_t *g = msvc__container_of(t, cget_t, timer);

  deliver_entry(g, g->entry, MSVC_CACHE_HIT);
  uv_close((uv_handle_t *)&g->timer, on_timer_closed);
}

/* The response's headers as the cache reads them. */
static int as_cache_response(const msvc_http_response_t *res, msvc_cache_response_t *out) {
  size_t i, n = msvc_http_response_header_count(res);
  const char **names = msvc__calloc(n + 1, sizeof(*names));
  const char **values = msvc__calloc(n + 1, sizeof(*values));

  memset(out, 0, sizeof(*out));
  if (names == NULL || values == NULL) {
    msvc__free(names);
    msvc__free(values);
    return MSVC_ENOMEM;
  }
  for (i = 0; i < n; i++)
    if (msvc_http_response_header_at(res, i, &names[out->nheaders], &values[out->nheaders]) ==
        0)
      out->nheaders++;
  out->status = msvc_http_response_status(res);
  out->names = names;
  out->values = values;
  out->body = msvc_http_response_body(res, &out->body_len);
  if (out->body == NULL)
    out->body_len = 0;
  return MSVC_OK;
}

static void cache_response_free(msvc_cache_response_t *r) {
  msvc__free((void *)r->names);
  msvc__free((void *)r->values);
}

static void deliver_upstream(cget_t *g, int err, const msvc_http_response_t *res) {
  msvc_service_cached_t r;

  memset(&r, 0, sizeof(r));
  r.err = err;
  r.result = MSVC_CACHE_MISS;
  if (err == 0) {
    r.status = msvc_http_response_status(res);
    r.content_type = msvc_http_response_header(res, "Content-Type");
    r.body = msvc_http_response_body(res, &r.body_len);
    r.res = res;
  }
  if (err != MSVC_ECANCELED)
    msvc_cache_note(g->cache, MSVC_CACHE_MISS);
  g->done(&r, g->data);
}

static void on_upstream(int err, const msvc_http_response_t *res, void *data) {
  cget_t *g = data;
  uint64_t now = msvc_now_ms();
  int status = err == 0 ? msvc_http_response_status(res) : 0;
  msvc_cache_response_t cr;
  msvc_cache_entry_t *e = NULL;

  if (err == 0 && status == 304 && g->entry != NULL &&
      as_cache_response(res, &cr) == 0) {
    int rc = msvc_cache_revalidated(g->cache, g->uri, g->identity, g->entry, &cr, now, &e);
    cache_response_free(&cr);
    if (rc == 0) {
      deliver_entry(g, e, MSVC_CACHE_REVALIDATED);
      msvc_cache_entry_release(e);
      cget_free(g);
      return;
    }
  }
  if (err != MSVC_ECANCELED && msvc_service_dependency_failed(err, status) &&
      g->entry != NULL && msvc_cache_entry_stale_ok(g->entry, now)) {
    deliver_entry(g, g->entry, MSVC_CACHE_STALE);
    cget_free(g);
    return;
  }
  if (err == 0 && status != 304 && as_cache_response(res, &cr) == 0) {
    msvc_cache_store(g->cache, g->uri, g->identity, &cr, now, &e);
    cache_response_free(&cr);
  }
  if (e != NULL) {
    deliver_entry(g, e, MSVC_CACHE_MISS);
    msvc_cache_entry_release(e);
  } else {
    deliver_upstream(g, err, res);
  }
  cget_free(g);
}

/* The call, with If-None-Match when there is an entry to revalidate. */
static int ask_upstream(cget_t *g, const char *service, const msvc_service_request_t *req) {
  msvc_service_request_t sr = *req;
  msvc_http_header_t *h;
  const char *etag = g->entry != NULL ? msvc_cache_entry_header(g->entry, "ETag") : NULL;
  size_t i, n = 0;
  int rc;

  h = msvc__calloc(req->nheaders + 1, sizeof(*h));
  if (h == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < req->nheaders; i++) {
    if (etag != NULL && (msvc__strcasecmp(req->headers[i].name, "If-None-Match") == 0 ||
                         msvc__strcasecmp(req->headers[i].name, "If-Modified-Since") == 0))
      continue;
    h[n++] = req->headers[i];
  }
  if (etag != NULL)
    h[n++] = (msvc_http_header_t){"If-None-Match", etag};
  sr.headers = h;
  sr.nheaders = n;
  sr.on_done = on_upstream;
  sr.data = g;
  sr.on_chunk = NULL;
  rc = msvc__caller_call(g->c, service, &sr, NULL, NULL);
  msvc__free(h);
  return rc;
}

static bool request_says(const msvc_service_request_t *req, uint32_t flag) {
  const char *v = req_header(req, "Cache-Control");
  msvc_cache_cc_t cc;

  if (v == NULL || msvc_cache_cc_parse(v, strlen(v), &cc) != 0)
    return false;
  if (flag == MSVC_CACHE_CC_NO_CACHE && (cc.flags & MSVC_CACHE_CC_MAX_AGE) && cc.max_age == 0)
    return true;
  return (cc.flags & flag) != 0;
}

/* A call around the cache: the answer is passed on as it is. */
static void on_bypass(int err, const msvc_http_response_t *res, void *data) {
  cget_t *g = data;
  msvc_service_cached_t r;

  memset(&r, 0, sizeof(r));
  r.err = err;
  r.result = MSVC_CACHE_BYPASS;
  if (err == 0) {
    r.status = msvc_http_response_status(res);
    r.content_type = msvc_http_response_header(res, "Content-Type");
    r.body = msvc_http_response_body(res, &r.body_len);
    r.res = res;
  }
  g->done(&r, g->data);
  cget_free(g);
}

int msvc__caller_get_cached(msvc__caller_t *c, msvc_cache_t *cache, const char *service,
                            const msvc_service_request_t *req, msvc_service_cached_fn done,
                            void *data) {
  const char *auth, *target;
  call_loop_t *lc;
  cget_t *g;
  int st, rc;

  if (c == NULL || cache == NULL || req == NULL || done == NULL ||
      !msvc__call_name_valid(service) ||
      (req->method != NULL && strcmp(req->method, "GET") != 0))
    return MSVC_EINVAL;
  if ((lc = msvc__call_loop_current(c)) == NULL)
    return MSVC_ESTATE;
  g = msvc__calloc(1, sizeof(*g));
  if (g == NULL)
    return MSVC_ENOMEM;
  g->c = c;
  g->cache = cache;
  g->done = done;
  g->data = data;
  if (request_says(req, MSVC_CACHE_CC_NO_STORE)) {
    msvc_service_request_t sr = *req;
    sr.on_done = on_bypass;
    sr.data = g;
    sr.on_chunk = NULL;
    rc = msvc__caller_call(c, service, &sr, NULL, NULL);
    if (rc != 0)
      cget_free(g);
    return rc;
  }
  auth = req_header(req, "Authorization");
  if (auth == NULL && req->forward_auth && req->parent != NULL)
    auth = msvc_http_req_header(req->parent, "Authorization");
  target = req->target != NULL ? req->target : "/";
  g->uri = msvc__malloc(strlen(service) + strlen(target) + 2);
  if (g->uri == NULL || (auth != NULL && (g->identity = msvc__strdup(auth)) == NULL)) {
    cget_free(g);
    return MSVC_ENOMEM;
  }
  sprintf(g->uri, "%s %s", service, target);
  st = msvc_cache_lookup(cache, g->uri, g->identity, msvc_now_ms(), &g->entry);
  if (st == MSVC_CACHE_FRESH && !request_says(req, MSVC_CACHE_CC_NO_CACHE)) {
    uv_timer_init(lc->loop, &g->timer);
    uv_timer_start(&g->timer, on_hit, 0, 0);
    return MSVC_OK;
  }
  rc = ask_upstream(g, service, req);
  if (rc != 0)
    cget_free(g);
  return rc;
}

int msvc_service_get_cached(msvc_service_t *svc, msvc_cache_t *cache, const char *service,
                            const msvc_service_request_t *req, msvc_service_cached_fn done,
                            void *data) {
  if (svc == NULL)
    return MSVC_EINVAL;
  if (msvc_service_state(svc) == MSVC_SERVICE_STOPPED)
    return MSVC_ESTATE;
  return msvc__caller_get_cached(msvc__service_caller(svc), cache, service, req, done, data);
}

/* ---- the proxy's GET path ------------------------------------------------------------ */

typedef struct pcache_s {
  msvc_http_res_t *res;
  char *service;
  char *inm; /* the client's If-None-Match, or NULL */
} pcache_t;

/* Whether an If-None-Match list names the ETag (weak comparison). */
static bool etag_matches(const char *list, const char *etag) {
  size_t el;

  if (list == NULL || etag == NULL)
    return false;
  if (strncmp(etag, "W/", 2) == 0)
    etag += 2;
  el = strlen(etag);
  while (*list != '\0') {
    size_t n;
    list += strspn(list, " \t,");
    if (*list == '*')
      return true;
    if (strncmp(list, "W/", 2) == 0)
      list += 2;
    n = strcspn(list, ",");
    while (n > 0 && (list[n - 1] == ' ' || list[n - 1] == '\t'))
      n--;
    if (n == el && strncmp(list, etag, n) == 0)
      return true;
    list += strcspn(list, ",");
  }
  return false;
}

static void send_entry(pcache_t *p, const msvc_service_cached_t *r) {
  const msvc_cache_entry_t *e = r->entry;
  size_t i, n = msvc_cache_entry_header_count(e);
  char age[24];

  for (i = 0; i < n; i++) {
    const char *name, *value;
    if (msvc_cache_entry_header_at(e, i, &name, &value) == 0 &&
        msvc__strcasecmp(name, "Content-Type") != 0)
      msvc_http_res_header(p->res, name, value);
  }
  snprintf(age, sizeof(age), "%llu", (unsigned long long)r->age_s);
  msvc_http_res_header(p->res, "Age", age);
  if (r->result == MSVC_CACHE_STALE)
    msvc_http_res_header(p->res, "Warning", "110 - \"Response is Stale\"");
  if (r->status == 200 && etag_matches(p->inm, msvc_cache_entry_header(e, "ETag"))) {
    msvc_http_res_send(p->res, 304, NULL, NULL, 0);
    return;
  }
  msvc_http_res_send(p->res, r->status, r->content_type, r->body, r->body_len);
}

static void send_response(pcache_t *p, const msvc_service_cached_t *r) {
  const msvc_http_response_t *res = r->res;
  const char *conn = msvc_http_response_header(res, "Connection");
  size_t i, n = msvc_http_response_header_count(res);

  for (i = 0; i < n; i++) {
    const char *name, *value;
    if (msvc_http_response_header_at(res, i, &name, &value) != 0 ||
        msvc__proxy_skip_response_header(name, conn))
      continue;
    msvc_http_res_header(p->res, name, value);
  }
  msvc_http_res_send(p->res, r->status, r->content_type, r->body, r->body_len);
}

static void on_proxy_cached(const msvc_service_cached_t *r, void *data) {
  pcache_t *p = data;
  char upper[16];
  size_t i;

  if (r->err != 0) {
    msvc_service_res_upstream_error(p->res, p->service, r->err);
  } else {
    snprintf(upper, sizeof(upper), "%s", msvc_cache_result_name(r->result));
    for (i = 0; upper[i] != '\0'; i++)
      upper[i] = (char)(upper[i] >= 'a' && upper[i] <= 'z' ? upper[i] - 32 : upper[i]);
    msvc_http_res_header(p->res, "X-Cache", upper);
    if (r->entry != NULL)
      send_entry(p, r);
    else
      send_response(p, r);
  }
  msvc__free(p->service);
  msvc__free(p->inm);
  msvc__free(p);
}

int msvc__proxy_cached(msvc__caller_t *c, msvc_cache_t *cache, const char *service,
                       msvc_http_req_t *req, const msvc_service_request_t *sr) {
  msvc_service_request_t cr = *sr;
  const char *inm = msvc_http_req_header(req, "If-None-Match");
  msvc_http_header_t *h;
  pcache_t *p;
  size_t i, n = 0;
  int rc = MSVC_ENOMEM;

  p = msvc__calloc(1, sizeof(*p));
  h = msvc__calloc(sr->nheaders + 1, sizeof(*h));
  if (p == NULL || h == NULL || (p->service = msvc__strdup(service)) == NULL ||
      (inm != NULL && (p->inm = msvc__strdup(inm)) == NULL))
    goto fail;
  p->res = msvc_http_req_res(req);
  /* The cache answers the client's conditions itself, from what it holds. */
  for (i = 0; i < sr->nheaders; i++)
    if (msvc__strcasecmp(sr->headers[i].name, "If-None-Match") != 0 &&
        msvc__strcasecmp(sr->headers[i].name, "If-Modified-Since") != 0)
      h[n++] = sr->headers[i];
  cr.headers = h;
  cr.nheaders = n;
  rc = msvc__caller_get_cached(c, cache, service, &cr, on_proxy_cached, p);
  msvc__free(h);
  if (rc == 0)
    return MSVC_OK;
  h = NULL;
fail:
  msvc__free(h);
  if (p != NULL) {
    msvc__free(p->service);
    msvc__free(p->inm);
  }
  msvc__free(p);
  return rc;
}
