/*
 * Request metrics middleware and the /metrics handler.
 *
 * The hot path is the after-hook. Route patterns are owned by the server and
 * method names are llhttp's static strings, so the pair of pointers
 * identifies a (route, method) series without looking at the characters: a
 * small open-addressing table keyed by those pointers holds the histogram
 * child and the counter children seen so far for each status. Only the
 * first request of a new (route, method, status) builds label strings and
 * takes the family's lock; every later one is a table probe and two atomic
 * updates.
 */
#include <stdio.h>

#include <msvc/middleware.h>
#include <msvc/trace.h>

#include "msvc-internal.h"

typedef struct status_slot_s {
  int status;
  msvc_metrics_counter_t *counter;
} status_slot_t;

typedef struct entry_s {
  const char *route; /* pattern pointer; NULL for unmatched requests */
  const char *method;
  bool used;
  msvc_metrics_histogram_t *hist;
  status_slot_t *st;
  uint32_t nst;
  uint32_t cap;
} entry_t;

struct msvc_mw_metrics_s {
  msvc_http_server_t *srv;
  msvc_metrics_family_t *requests;
  msvc_metrics_family_t *duration;
  msvc_metrics_gauge_t *conns;
  uint32_t reported; /* this server's share already added to the gauge */
  entry_t *tab;
  size_t cap; /* power of two */
  size_t n;
  char *unmatched;
};

void msvc_mw_metrics_opts_init(msvc_mw_metrics_opts_t *o) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
}

static int register_families(msvc_mw_metrics_t *m, const msvc_mw_metrics_opts_t *o) {
  static const char *const req_labels[] = {"method", "route", "status"};
  static const char *const dur_labels[] = {"method", "route"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *conns;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_requests_total";
  fo.help = "HTTP requests served, by method, route pattern and status.";
  fo.label_names = req_labels;
  fo.label_count = 3;
  if ((rc = msvc_metrics_family_new(o->registry, MSVC_METRICS_COUNTER, &fo,
                                    &m->requests)) != MSVC_OK)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_request_duration_seconds";
  fo.help = "Time from the end of the request head to the end of the response.";
  fo.label_names = dur_labels;
  fo.label_count = 2;
  fo.buckets = o->buckets;
  fo.bucket_count = o->bucket_count;
  if ((rc = msvc_metrics_family_new(o->registry, MSVC_METRICS_HISTOGRAM, &fo,
                                    &m->duration)) != MSVC_OK)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_connections";
  fo.help = "Open client connections of the HTTP servers.";
  if ((rc = msvc_metrics_family_new(o->registry, MSVC_METRICS_GAUGE, &fo, &conns)) !=
      MSVC_OK)
    return rc;
  return msvc_metrics_gauge_get(conns, NULL, 0, &m->conns);
}

void msvc_mw_metrics_refresh(msvc_mw_metrics_t *m) {
  uint32_t now;

  if (m == NULL)
    return;
  /* Each server adds only the change of its own count, so any number of
   * servers and worker loops can share the one unlabelled gauge. */
  now = msvc_http_server_connections(m->srv);
  if (now != m->reported) {
    msvc_metrics_gauge_add(m->conns, (double)now - (double)m->reported);
    m->reported = now;
  }
}

static size_t slot_of(const msvc_mw_metrics_t *m, const char *route, const char *method) {
  uintptr_t h = (uintptr_t)route * 0x9e3779b97f4a7c15ull ^ (uintptr_t)method;

  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return (size_t)h & (m->cap - 1);
}

static entry_t *probe(const msvc_mw_metrics_t *m, const char *route, const char *method) {
  size_t i = slot_of(m, route, method);

  for (;;) {
    entry_t *e = &m->tab[i];
    if (!e->used || (e->route == route && e->method == method))
      return e;
    i = (i + 1) & (m->cap - 1);
  }
}

static int grow(msvc_mw_metrics_t *m) {
  entry_t *old = m->tab;
  size_t oldcap = m->cap, i;

  m->tab = msvc__calloc(oldcap * 2, sizeof(*m->tab));
  if (m->tab == NULL) {
    m->tab = old;
    return MSVC_ENOMEM;
  }
  m->cap = oldcap * 2;
  for (i = 0; i < oldcap; i++)
    if (old[i].used)
      *probe(m, old[i].route, old[i].method) = old[i];
  msvc__free(old);
  return MSVC_OK;
}

static const char *route_label(const msvc_mw_metrics_t *m, const char *route) {
  return route != NULL ? route : m->unmatched;
}

/* The entry of (route, method), created on first sight. NULL when the
 * histogram child cannot be had (series limit, memory): that request goes
 * unrecorded and a later one tries again. */
static entry_t *entry_for(msvc_mw_metrics_t *m, const char *route, const char *method) {
  entry_t *e = probe(m, route, method);
  const char *values[2];

  if (e->used)
    return e;
  if ((m->n + 1) * 2 > m->cap) {
    if (grow(m) != MSVC_OK)
      return NULL;
    e = probe(m, route, method);
  }
  values[0] = method;
  values[1] = route_label(m, route);
  if (msvc_metrics_histogram_get(m->duration, values, 2, &e->hist) != MSVC_OK)
    return NULL;
  e->used = true;
  e->route = route;
  e->method = method;
  m->n++;
  return e;
}

static msvc_metrics_counter_t *counter_for(msvc_mw_metrics_t *m, entry_t *e, int status) {
  char code[16];
  const char *values[3];
  msvc_metrics_counter_t *c;
  uint32_t i;

  for (i = 0; i < e->nst; i++)
    if (e->st[i].status == status)
      return e->st[i].counter;
  if (e->nst == e->cap) {
    uint32_t cap = e->cap == 0 ? 4 : e->cap * 2;
    status_slot_t *st = msvc__realloc(e->st, cap * sizeof(*st));
    if (st == NULL)
      return NULL;
    e->st = st;
    e->cap = cap;
  }
  snprintf(code, sizeof(code), "%d", status);
  values[0] = e->method;
  values[1] = route_label(m, e->route);
  values[2] = code;
  if (msvc_metrics_counter_get(m->requests, values, 3, &c) != MSVC_OK)
    return NULL;
  e->st[e->nst].status = status;
  e->st[e->nst].counter = c;
  e->nst++;
  return c;
}

static int metrics_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)res;
  msvc_mw_metrics_refresh(data);
  return MSVC_HTTP_NEXT;
}

/* A request of a sampled trace (one whose spans are exported) lends its
 * ids to the bucket it lands in: an exemplar, shown to OpenMetrics
 * scrapers. The trace middleware's after hook runs after this one, so its
 * span is still open here. */
static void observe(msvc_metrics_histogram_t *h, msvc_http_req_t *req, double seconds) {
  msvc_span_t *span = msvc_mw_span(req);
  const msvc_trace_ctx_t *ctx;

  if (span == NULL || !msvc_trace_span_sampled(span)) {
    msvc_metrics_histogram_observe(h, seconds);
    return;
  }
  /* A span's ids were checked when it started: not again. */
  ctx = msvc_trace_span_ctx(span);
  msvc__metrics_histogram_observe_exemplar_ok(h, seconds, ctx->trace_id, ctx->span_id,
                                              msvc_wall_ms());
}

static void metrics_after(msvc_http_req_t *req, msvc_http_res_t *res,
                          uint64_t duration_ns, void *data) {
  msvc_mw_metrics_t *m = data;
  entry_t *e = entry_for(m, msvc_http_req_route(req), msvc_http_req_method(req));

  if (e != NULL) {
    msvc_metrics_counter_t *c = counter_for(m, e, msvc_http_res_status(res));
    if (c != NULL)
      msvc_metrics_counter_inc(c);
    observe(e->hist, req, (double)duration_ns / 1e9);
  }
  msvc_mw_metrics_refresh(m);
}

static void metrics_destroy(msvc_mw_metrics_t *m) {
  size_t i;

  for (i = 0; m->tab != NULL && i < m->cap; i++)
    msvc__free(m->tab[i].st);
  msvc__free(m->tab);
  msvc__free(m->unmatched);
  msvc__free(m);
}

int msvc_mw_metrics_new(msvc_http_server_t *srv, const msvc_mw_metrics_opts_t *opts,
                        msvc_mw_metrics_t **out) {
  msvc_mw_metrics_opts_t o;
  msvc_http_middleware_t mw = {"metrics", metrics_before, metrics_after, NULL};
  msvc_mw_metrics_t *m;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (srv == NULL || out == NULL || (opts != NULL && opts->size < sizeof(*opts)))
    return MSVC_EINVAL;
  if (opts != NULL)
    o = *opts;
  else
    msvc_mw_metrics_opts_init(&o);
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL)
    return MSVC_ENOMEM;
  m->srv = srv;
  m->cap = 16;
  m->tab = msvc__calloc(m->cap, sizeof(*m->tab));
  m->unmatched = msvc__strdup(o.unmatched_route != NULL ? o.unmatched_route
                                                        : MSVC_MW_UNMATCHED_ROUTE);
  rc = m->tab == NULL || m->unmatched == NULL ? MSVC_ENOMEM : register_families(m, &o);
  mw.data = m;
  if (rc == MSVC_OK)
    rc = msvc_http_server_use(srv, &mw);
  if (rc != MSVC_OK) {
    metrics_destroy(m);
    return rc;
  }
  *out = m;
  return MSVC_OK;
}

void msvc_mw_metrics_free(msvc_mw_metrics_t *m) {
  if (m == NULL)
    return;
  if (m->reported > 0)
    msvc_metrics_gauge_add(m->conns, -(double)m->reported);
  metrics_destroy(m);
}

/* ---- /metrics ------------------------------------------------------------ */

void msvc_mw_metrics_handler(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *ctype = NULL;
  msvc_metrics_format_t fmt =
      msvc_metrics_negotiate(msvc_http_req_header(req, "Accept"), &ctype);
  char *body = NULL;
  size_t len = 0;

  if (msvc_metrics_expose(data, fmt, &body, &len) != MSVC_OK) {
    msvc_http_res_error(res, 500, "INTERNAL", "The metrics could not be rendered.");
    return;
  }
  msvc_http_res_send_owned(res, 200, ctype, body, len);
}

int msvc_mw_metrics_route(msvc_http_server_t *srv, const char *path,
                          msvc_metrics_registry_t *reg) {
  int rc;

  if (srv == NULL || path == NULL)
    return MSVC_EINVAL;
  if (reg == NULL && msvc_metrics_default_registry() == NULL)
    return MSVC_ENOMEM;
  if ((rc = msvc_metrics_process_collector_register(reg)) != MSVC_OK)
    return rc;
  return msvc_http_server_route(srv, "GET", path, msvc_mw_metrics_handler, reg, NULL);
}
