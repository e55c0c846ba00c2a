/*
 * Routes are kept pre-split into segments, and a request path is matched by
 * walking it once per route without copying or allocating: parameters are
 * recorded as spans of the raw path and decoded only when asked for. A
 * linear scan is plenty for the tens of routes a microservice has.
 */
#include <stddef.h>
#include <string.h>

#include "http/server.h"

static bool valid_method(const char *m) {
  size_t i;

  if (strcmp(m, "*") == 0)
    return true;
  for (i = 0; m[i] != '\0'; i++)
    if (m[i] < 'A' || m[i] > 'Z')
      return false;
  return i > 0 && i < 32;
}

static int split_pattern(msvc__route_t *rt) {
  const char *p = rt->pattern;

  if (p[0] != '/')
    return MSVC_EHTTP_ROUTE;
  rt->nsegs = 0;
  if (p[1] == '\0')
    return MSVC_OK;
  p++;
  for (;;) {
    const char *end = strchr(p, '/');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    msvc__seg_t *s;

    if (rt->nsegs == MSVC__HTTP_MAX_SEGS || len > UINT16_MAX)
      return MSVC_EHTTP_ROUTE;
    s = &rt->segs[rt->nsegs++];
    s->s = p;
    s->len = (uint16_t)len;
    s->kind = SEG_LIT;
    if (len == 1 && p[0] == '*') {
      s->kind = SEG_WILD;
      if (end != NULL)
        return MSVC_EHTTP_ROUTE; /* '*' only as the last segment */
    } else if (len > 0 && p[0] == ':') {
      if (len == 1)
        return MSVC_EHTTP_ROUTE;
      s->kind = SEG_PARAM;
      s->s = p + 1;
      s->len = (uint16_t)(len - 1);
    } else if (memchr(p, '*', len) != NULL || memchr(p, ':', len) != NULL ||
               memchr(p, '?', len) != NULL) {
      return MSVC_EHTTP_ROUTE;
    }
    if (end == NULL)
      break;
    p = end + 1;
  }
  return MSVC_OK;
}

static int count_params(const msvc__route_t *rt) {
  int n = 0;
  uint16_t i;

  for (i = 0; i < rt->nsegs; i++)
    n += rt->segs[i].kind != SEG_LIT;
  return n;
}

/* The rank of a route's i-th segment when two routes match one path: a
 * literal beats a parameter beats the wildcard. A route that has already
 * ended matched the rest of the path exactly, so it ranks as a literal:
 * `/admin` beats `/admin/` followed by `*` for the path `/admin`. */
static int seg_rank(const msvc__route_t *rt, uint16_t i) {
  if (i >= rt->nsegs)
    return SEG_LIT;
  return rt->segs[i].kind;
}

/* >0 when a is more specific than b, <0 when less, 0 when the same shape:
 * decided at the first segment where they differ, so the longest literal
 * prefix wins whatever the order the routes were added in. */
static int specificity(const msvc__route_t *a, const msvc__route_t *b) {
  uint16_t i, n = a->nsegs > b->nsegs ? a->nsegs : b->nsegs;

  for (i = 0; i < n; i++) {
    int ra = seg_rank(a, i), rb = seg_rank(b, i);
    if (ra != rb)
      return rb - ra;
  }
  /* Same shape: an explicit method beats "*". */
  return (a->method[0] != '*') - (b->method[0] != '*');
}

/* Two routes of one method whose patterns differ only in parameter names
 * would match the same paths with nothing to choose between them. */
static bool same_shape(const msvc__route_t *a, const msvc__route_t *b) {
  uint16_t i;

  if (a->nsegs != b->nsegs || strcmp(a->method, b->method) != 0)
    return false;
  for (i = 0; i < a->nsegs; i++) {
    if (a->segs[i].kind != b->segs[i].kind)
      return false;
    if (a->segs[i].kind == SEG_LIT &&
        (a->segs[i].len != b->segs[i].len ||
         memcmp(a->segs[i].s, b->segs[i].s, a->segs[i].len) != 0))
      return false;
  }
  return true;
}

void msvc_http_route_opts_init(msvc_http_route_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
}

int msvc__router_add(msvc__router_t *r, const char *method, const char *pattern,
                     msvc_http_handler_fn handler, void *data,
                     const msvc_http_route_opts_t *opts) {
  msvc__route_t *rt;
  size_t i;
  int rc;

  if (method == NULL || pattern == NULL || handler == NULL)
    return MSVC_EINVAL;
  if (opts != NULL && opts->size < offsetof(msvc_http_route_opts_t, flags) + sizeof(opts->flags))
    return MSVC_EINVAL;
  if (!valid_method(method))
    return MSVC_EHTTP_ROUTE;
  for (i = 0; i < r->n; i++)
    if (strcmp(r->routes[i]->method, method) == 0 &&
        strcmp(r->routes[i]->pattern, pattern) == 0)
      return MSVC_EHTTP_ROUTE;
  rt = msvc__calloc(1, sizeof(*rt));
  if (rt == NULL)
    return MSVC_ENOMEM;
  rt->method = msvc__strdup(method);
  rt->pattern = msvc__strdup(pattern);
  rc = MSVC_ENOMEM;
  if (rt->method == NULL || rt->pattern == NULL)
    goto fail;
  rc = split_pattern(rt);
  if (rc == MSVC_OK && count_params(rt) > MSVC__HTTP_MAX_PARAMS)
    rc = MSVC_EHTTP_ROUTE;
  for (i = 0; rc == MSVC_OK && i < r->n; i++)
    if (same_shape(rt, r->routes[i]))
      rc = MSVC_EHTTP_ROUTE;
  if (rc != MSVC_OK)
    goto fail;
  rt->handler = handler;
  rt->data = data;
  msvc_http_route_opts_init(&rt->opts);
  if (opts != NULL)
    (void)msvc__opts_copy(&rt->opts, sizeof(rt->opts), opts); /* size checked above */
  if (r->n == r->cap) {
    size_t cap = r->cap == 0 ? 8 : r->cap * 2;
    msvc__route_t **v = msvc__realloc(r->routes, cap * sizeof(*v));
    rc = MSVC_ENOMEM;
    if (v == NULL)
      goto fail;
    r->routes = v;
    r->cap = cap;
  }
  r->routes[r->n++] = rt;
  return MSVC_OK;

fail:
  msvc__free(rt->method);
  msvc__free(rt->pattern);
  msvc__free(rt);
  return rc;
}

void msvc__router_free(msvc__router_t *r) {
  size_t i;

  for (i = 0; i < r->n; i++) {
    msvc__free(r->routes[i]->method);
    msvc__free(r->routes[i]->pattern);
    msvc__free(r->routes[i]);
  }
  msvc__free(r->routes);
  memset(r, 0, sizeof(*r));
}

/* Matches the path against one route's segments, recording parameters. */
static bool match_path(const msvc__route_t *rt, const char *path, size_t len,
                       msvc__match_t *m) {
  size_t pos = 1; /* after the leading '/' */
  uint16_t i;

  m->nparams = 0;
  if (len == 0 || path[0] != '/')
    return false;
  if (rt->nsegs == 0)
    return len == 1;
  for (i = 0; i < rt->nsegs; i++) {
    const msvc__seg_t *s = &rt->segs[i];
    const char *slash;
    size_t seglen;

    if (s->kind == SEG_WILD) {
      size_t from = pos > len ? len : pos;
      m->params[m->nparams].seg = s;
      m->params[m->nparams].off = (uint32_t)from;
      m->params[m->nparams].len = (uint32_t)(len - from);
      m->nparams++;
      return true;
    }
    if (pos > len)
      return false;
    slash = memchr(path + pos, '/', len - pos);
    seglen = slash != NULL ? (size_t)(slash - (path + pos)) : len - pos;
    if (s->kind == SEG_LIT) {
      if (seglen != s->len || memcmp(path + pos, s->s, seglen) != 0)
        return false;
    } else {
      if (seglen == 0)
        return false;
      m->params[m->nparams].seg = s;
      m->params[m->nparams].off = (uint32_t)pos;
      m->params[m->nparams].len = (uint32_t)seglen;
      m->nparams++;
    }
    pos += seglen + 1;
  }
  return pos == len + 1;
}

static bool method_ok(const msvc__route_t *rt, const char *method) {
  if (rt->method[0] == '*' || strcmp(rt->method, method) == 0)
    return true;
  /* HEAD is served by GET routes (the body is then left out). */
  return strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0;
}

static void add_allow(msvc__buf_t *allow, const char *method) {
  size_t mlen = strlen(method);
  const char *p = allow->data;

  /* Skip a method already listed. */
  while (p != NULL && *p != '\0') {
    const char *end = strchr(p, ',');
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    if (n == mlen && memcmp(p, method, n) == 0)
      return;
    p = end != NULL ? end + 2 : NULL;
  }
  if (allow->len > 0)
    msvc__buf_puts(allow, ", ");
  msvc__buf_puts(allow, method);
}

int msvc__router_match(const msvc__router_t *r, const char *method,
                       const char *path, size_t len, msvc__match_t *m,
                       msvc__buf_t *allow) {
  msvc__match_t tmp;
  const msvc__route_t *best = NULL;
  bool path_seen = false;
  size_t i;

  for (i = 0; i < r->n; i++) {
    const msvc__route_t *rt = r->routes[i];
    if (!match_path(rt, path, len, &tmp))
      continue;
    path_seen = true;
    if (!method_ok(rt, method))
      continue;
    if (best == NULL || specificity(rt, best) > 0) {
      best = rt;
      *m = tmp;
      m->route = rt;
    }
  }
  if (best != NULL)
    return 200;
  if (!path_seen)
    return 404;
  for (i = 0; allow != NULL && i < r->n; i++) {
    const msvc__route_t *rt = r->routes[i];
    if (!match_path(rt, path, len, &tmp))
      continue;
    if (rt->method[0] == '*')
      continue;
    add_allow(allow, rt->method);
    if (strcmp(rt->method, "GET") == 0)
      add_allow(allow, "HEAD");
  }
  return 405;
}
