/*
 * Local recording for the admin page's tracez view: the recent and the
 * slowest traces of each local root's name, kept in memory in fixed-size
 * records. Nothing here allocates after msvc__tracez_enable() except a
 * route's slot the first time its name is seen, and nothing waits but for
 * the store's own lock (a copy of a few hundred bytes under it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>

#include "trace/trace-internal.h"

struct msvc__tracez_s {
  uv_mutex_t mu;
  /* Spans with a local parent, waiting for their root (a ring; an empty
   * trace_id marks a slot taken or never used). */
  msvc__tracez_span_t pending[MSVC__TRACEZ_PENDING];
  uint32_t pending_next;
  msvc__tracez_route_t *routes[MSVC__TRACEZ_ROUTES];
  uint32_t nroutes;
  msvc__tracez_stats_t stats;
};

int msvc__tracez_enable(msvc_tracer_t *t) {
  struct msvc__tracez_s *z;

  if (t == NULL)
    return MSVC_EINVAL;
  if (t->tracez != NULL)
    return MSVC_OK;
  if ((z = msvc__calloc(1, sizeof(*z))) == NULL)
    return MSVC_ENOMEM;
  if (uv_mutex_init(&z->mu) != 0) {
    msvc__free(z);
    return MSVC_ENOMEM;
  }
  t->tracez = z;
  return MSVC_OK;
}

void msvc__tracez_free(struct msvc__tracez_s *z) {
  uint32_t i;

  if (z == NULL)
    return;
  for (i = 0; i < z->nroutes; i++)
    msvc__free(z->routes[i]);
  uv_mutex_destroy(&z->mu);
  msvc__free(z);
}

static void copy_trunc(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);

  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Attributes that say something the name does not: the first few that fit. */
static void detail_of(const msvc_span_t *s, char *out, size_t cap) {
  size_t used = 0;
  uint32_t i;

  out[0] = '\0';
  for (i = 0; i < s->nattrs && used + 1 < cap; i++) {
    const msvc__trace_attr_t *a = &s->attrs[i];
    int w;

    if (strcmp(a->key, "http.request.method") == 0 || strcmp(a->key, "http.route") == 0)
      continue;
    switch (a->type) {
    case MSVC__ATTR_STR:
      w = snprintf(out + used, cap - used, "%s%s=%s", used ? " " : "", a->key, a->v.s);
      break;
    case MSVC__ATTR_INT:
      w = snprintf(out + used, cap - used, "%s%s=%" PRId64, used ? " " : "", a->key, a->v.i);
      break;
    case MSVC__ATTR_BOOL:
      w = snprintf(out + used, cap - used, "%s%s=%s", used ? " " : "", a->key,
                   a->v.b ? "true" : "false");
      break;
    default:
      w = snprintf(out + used, cap - used, "%s%s=%g", used ? " " : "", a->key, a->v.d);
      break;
    }
    if (w < 0 || (size_t)w >= cap - used) {
      out[used] = '\0'; /* a cut attribute says less than none */
      break;
    }
    used += (size_t)w;
  }
}

static void span_rec(const msvc_span_t *s, msvc__tracez_span_t *r) {
  memcpy(r->trace_id, s->ctx.trace_id, sizeof(r->trace_id));
  memcpy(r->span_id, s->ctx.span_id, sizeof(r->span_id));
  memcpy(r->parent_id, s->parent_id, sizeof(r->parent_id));
  r->kind = (uint8_t)s->kind;
  r->status = (uint8_t)s->status;
  r->start_ns = s->start_ns;
  r->end_ns = s->end_ns;
  copy_trunc(r->name, sizeof(r->name), s->name);
  detail_of(s, r->detail, sizeof(r->detail));
}

static msvc__tracez_route_t *route_of(struct msvc__tracez_s *z, const char *name) {
  msvc__tracez_route_t *r;
  uint32_t i;

  for (i = 0; i < z->nroutes; i++)
    if (strncmp(z->routes[i]->name, name, sizeof(r->name) - 1) == 0)
      return z->routes[i];
  if (z->nroutes == MSVC__TRACEZ_ROUTES || (r = msvc__calloc(1, sizeof(*r))) == NULL)
    return NULL;
  copy_trunc(r->name, sizeof(r->name), name);
  z->routes[z->nroutes++] = r;
  return r;
}

static uint64_t dur(const msvc__tracez_trace_t *t) {
  return t->spans[0].end_ns - t->spans[0].start_ns;
}

/* Children in the order they started, after the root. */
static void gather(struct msvc__tracez_s *z, msvc__tracez_trace_t *tr) {
  uint32_t i, j;

  for (i = 0; i < MSVC__TRACEZ_PENDING; i++) {
    msvc__tracez_span_t *p = &z->pending[i];

    if (p->trace_id[0] == '\0' || memcmp(p->trace_id, tr->spans[0].trace_id, 32) != 0)
      continue;
    if (tr->nspans < MSVC__TRACEZ_SPANS) {
      for (j = tr->nspans; j > 1 && tr->spans[j - 1].start_ns > p->start_ns; j--)
        tr->spans[j] = tr->spans[j - 1];
      tr->spans[j] = *p;
      tr->nspans++;
    } else {
      tr->dropped++;
    }
    p->trace_id[0] = '\0';
  }
}

static void keep_slow(msvc__tracez_route_t *r, const msvc__tracez_trace_t *tr) {
  uint64_t d = dur(tr);
  uint32_t i;

  if (r->nslow == MSVC__TRACEZ_KEEP && d <= dur(&r->slow[r->nslow - 1]))
    return;
  i = r->nslow < MSVC__TRACEZ_KEEP ? r->nslow++ : r->nslow - 1;
  for (; i > 0 && dur(&r->slow[i - 1]) < d; i--)
    r->slow[i] = r->slow[i - 1];
  r->slow[i] = *tr;
}

void msvc__tracez_record(struct msvc__tracez_s *z, const msvc_span_t *s) {
  /* Root records are built on the stack, outside the lock. */
  msvc__tracez_trace_t tr;
  msvc__tracez_route_t *r;
  bool root = s->parent_id[0] == '\0' || s->parent_remote;

  if (!root) {
    msvc__tracez_span_t rec;

    span_rec(s, &rec);
    uv_mutex_lock(&z->mu);
    z->stats.spans++;
    z->pending[z->pending_next] = rec;
    z->pending_next = (z->pending_next + 1) % MSVC__TRACEZ_PENDING;
    uv_mutex_unlock(&z->mu);
    return;
  }
  tr.nspans = 1;
  tr.dropped = 0;
  span_rec(s, &tr.spans[0]);
  uv_mutex_lock(&z->mu);
  z->stats.spans++;
  z->stats.traces++;
  gather(z, &tr);
  if ((r = route_of(z, s->name)) == NULL) {
    z->stats.untracked++;
  } else {
    r->count++;
    if (s->status == MSVC_SPAN_STATUS_ERROR)
      r->errors++;
    r->recent[r->recent_next] = tr;
    r->recent_next = (r->recent_next + 1) % MSVC__TRACEZ_KEEP;
    if (r->nrecent < MSVC__TRACEZ_KEEP)
      r->nrecent++;
    keep_slow(r, &tr);
  }
  uv_mutex_unlock(&z->mu);
}

int msvc__tracez_snapshot(msvc_tracer_t *t, msvc__tracez_route_t **out, size_t *n,
                          msvc__tracez_stats_t *stats) {
  struct msvc__tracez_s *z = t != NULL ? t->tracez : NULL;
  msvc__tracez_route_t *copy;
  size_t i, j;

  *out = NULL;
  *n = 0;
  if (z == NULL)
    return MSVC_ENOENT;
  /* Sized for the worst case up front: the lock is not held across an
   * allocation. */
  if ((copy = msvc__malloc(MSVC__TRACEZ_ROUTES * sizeof(*copy))) == NULL)
    return MSVC_ENOMEM;
  uv_mutex_lock(&z->mu);
  /* Most requested first: pointers are sorted in place (a handful). */
  for (i = 1; i < z->nroutes; i++) {
    msvc__tracez_route_t *tmp = z->routes[i];
    for (j = i; j > 0 && z->routes[j - 1]->count < tmp->count; j--)
      z->routes[j] = z->routes[j - 1];
    z->routes[j] = tmp;
  }
  for (i = 0; i < z->nroutes; i++)
    copy[i] = *z->routes[i];
  *n = z->nroutes;
  if (stats != NULL)
    *stats = z->stats;
  uv_mutex_unlock(&z->mu);
  *out = copy;
  return MSVC_OK;
}
