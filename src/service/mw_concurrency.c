/*
 * Concurrency limit middleware: every request of a matched route but the
 * probes takes a permit of an adaptive limit (src/limit) or is shed at
 * once with 503 OVERLOADED. Shedding costs one compare-and-swap and a
 * small canned answer, so a service past its capacity spends its time on
 * the requests it admitted rather than on a queue that only grows.
 */
#include <stdatomic.h>
#include <string.h>

#include <msvc/middleware.h>

#include "msvc-internal.h"
#include "mw-internal.h"
#include "limit/limit-internal.h"

/* The request attachment that marks an admitted request; its value is
 * the permit's slot, as a place in SLOT. */
static const char ADMITTED[] = "msvc.concurrency";
static const char SLOT[MSVC__LIMIT_SLOTS + 1];

struct msvc_mw_concurrency_s {
  msvc_http_middleware_t mw;
  msvc_limit_adaptive_t *cl;
  msvc_metrics_gauge_t *limit_g;
  msvc_metrics_gauge_t *inflight_g;
  msvc_metrics_counter_t *shed;
  msvc_limit_adaptive_opts_t opts;
  _Atomic uint64_t shed_total;
};

void msvc__mw_concurrency_info(const msvc_mw_concurrency_t *m,
                               msvc__mw_concurrency_info_t *out) {
  out->opts = m->opts;
  out->shed = atomic_load_explicit(&((msvc_mw_concurrency_t *)m)->shed_total,
                                   memory_order_relaxed);
}

void msvc_mw_concurrency_opts_init(msvc_mw_concurrency_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  msvc_limit_adaptive_opts_init(&opts->limit);
}

static bool exempt(const char *route) {
  return route == NULL || strcmp(route, "/health") == 0 || strcmp(route, "/ready") == 0 ||
         strcmp(route, "/metrics") == 0;
}

static void publish(msvc_mw_concurrency_t *m) {
  msvc_metrics_gauge_set(m->limit_g, msvc_limit_adaptive_value(m->cl));
  msvc_metrics_gauge_set(m->inflight_g, (double)msvc_limit_adaptive_inflight(m->cl));
}

static int before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_mw_concurrency_t *m = data;
  msvc_limit_permit_t p;
  uint64_t now;

  if (exempt(msvc_http_req_route(req))) return MSVC_HTTP_NEXT;
  now = msvc_now_ms();
  if (msvc_limit_adaptive_acquire(m->cl, now, &p) != MSVC_OK) {
    msvc_metrics_counter_inc(m->shed);
    atomic_fetch_add_explicit(&m->shed_total, 1, memory_order_relaxed);
    msvc_http_res_header(res, "Retry-After", "1");
    msvc_http_res_error(res, 503, "OVERLOADED",
                        "The service is overloaded; retry later.");
    return MSVC_HTTP_STOP;
  }
  /* The permit itself is rebuilt in the after-hook from the duration the
   * server measures; only the fact of admission and the slot travel. */
  if (msvc_http_req_set(req, ADMITTED, (void *)&SLOT[p.slot], NULL) != MSVC_OK) {
    msvc_limit_adaptive_release(m->cl, &p, MSVC_LIMIT_IGNORED, 0, now);
    msvc_http_res_error(res, 503, "OVERLOADED", "out of memory");
    return MSVC_HTTP_STOP;
  }
  return MSVC_HTTP_NEXT;
}

static void after(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t duration_ns,
                  void *data) {
  msvc_mw_concurrency_t *m = data;
  msvc_limit_permit_t p = {0, true, 0};
  msvc_limit_outcome_t outcome = MSVC_LIMIT_SUCCESS;
  int status = msvc_http_res_status(res);
  const char *admitted = msvc_http_req_get(req, ADMITTED);

  if (admitted == NULL) {
    publish(m);
    return;
  }
  p.slot = (uint16_t)(admitted - SLOT);
  if (status == 499 || msvc_http_req_cancelled(req))
    outcome = MSVC_LIMIT_IGNORED;
  else if (status == 503 || status == 504)
    outcome = MSVC_LIMIT_DROPPED;
  msvc_limit_adaptive_release(m->cl, &p, outcome, duration_ns / 1000, msvc_now_ms());
  publish(m);
}

static int metrics(msvc_mw_concurrency_t *m, msvc_metrics_registry_t *reg) {
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_concurrency_limit";
  fo.help = "Requests the server admits at once (adaptive concurrency limit).";
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &fo, &fam)) != MSVC_OK ||
      (rc = msvc_metrics_gauge_get(fam, NULL, 0, &m->limit_g)) != MSVC_OK)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_inflight";
  fo.help = "Requests holding a permit of the concurrency limit.";
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &fo, &fam)) != MSVC_OK ||
      (rc = msvc_metrics_gauge_get(fam, NULL, 0, &m->inflight_g)) != MSVC_OK)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_shed_total";
  fo.help = "Requests shed with 503 OVERLOADED by the concurrency limit.";
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam)) != MSVC_OK)
    return rc;
  return msvc_metrics_counter_get(fam, NULL, 0, &m->shed);
}

int msvc_mw_concurrency_new(const msvc_mw_concurrency_opts_t *opts,
                            msvc_mw_concurrency_t **out) {
  msvc_mw_concurrency_opts_t o;
  msvc_mw_concurrency_t *m;
  int rc;

  if (out == NULL) return MSVC_EINVAL;
  *out = NULL;
  if (opts == NULL)
    msvc_mw_concurrency_opts_init(&o);
  else if (opts->size < sizeof(o))
    return MSVC_EINVAL;
  else
    o = *opts;
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL) return MSVC_ENOMEM;
  m->opts = o.limit;
  rc = msvc_limit_adaptive_new(&o.limit, &m->cl);
  if (rc == MSVC_OK) rc = metrics(m, o.registry);
  if (rc != MSVC_OK) {
    msvc_mw_concurrency_free(m);
    return rc;
  }
  publish(m);
  m->mw.name = "concurrency";
  m->mw.before = before;
  m->mw.after = after;
  m->mw.data = m;
  *out = m;
  return MSVC_OK;
}

const msvc_http_middleware_t *msvc_mw_concurrency_middleware(const msvc_mw_concurrency_t *m) {
  return m == NULL ? NULL : &m->mw;
}

msvc_limit_adaptive_t *msvc_mw_concurrency_limit(const msvc_mw_concurrency_t *m) {
  return m == NULL ? NULL : m->cl;
}

void msvc_mw_concurrency_free(msvc_mw_concurrency_t *m) {
  if (m == NULL) return;
  msvc_limit_adaptive_free(m->cl);
  msvc__free(m);
}
