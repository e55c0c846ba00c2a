/*
 * The admin page of the limits, /debug/limits: the service's adaptive
 * concurrency limit and every rate limit middleware of the process. The
 * numbers are read from the live objects (atomics and the limiters' own
 * counters), so the page costs the request path nothing.
 */
#include <cjson/cJSON.h>
#include <uv.h>

#include <msvc/admin.h>
#include <msvc/error.h>

#include "mw-internal.h"
#include "service-core.h"

#define SECTION "limits"

static bool add_num(cJSON *o, const char *k, double v) {
  return cJSON_AddNumberToObject(o, k, v) != NULL;
}

static bool add_str(cJSON *o, const char *k, const char *v) {
  return cJSON_AddStringToObject(o, k, v != NULL ? v : "") != NULL;
}

static int concurrency(msvc_service_t *svc, cJSON *out) {
  cJSON *c = cJSON_AddObjectToObject(out, "concurrency");
  msvc__mw_concurrency_info_t in;
  msvc_limit_adaptive_t *cl;
  bool ok;

  if (c == NULL) return MSVC_ENOMEM;
  if (svc->concurrency == NULL) /* off, or not started yet */
    return add_str(c, "mode", svc->cfg.concurrency_on ? "not started" : "off")
               ? MSVC_OK : MSVC_ENOMEM;
  cl = msvc_mw_concurrency_limit(svc->concurrency);
  msvc__mw_concurrency_info(svc->concurrency, &in);
  ok = add_str(c, "mode", in.opts.fixed ? "fixed" : "adaptive") &&
       add_num(c, "limit", msvc_limit_adaptive_limit(cl)) &&
       add_num(c, "in_flight", msvc_limit_adaptive_inflight(cl)) &&
       add_num(c, "min_limit", in.opts.min_limit) &&
       add_num(c, "max_limit", in.opts.max_limit) &&
       add_num(c, "tolerance", in.opts.tolerance) &&
       add_num(c, "shed", (double)in.shed) &&
       add_num(c, "baseline_us", (double)msvc_limit_adaptive_baseline_us(cl));
  return ok ? MSVC_OK : MSVC_ENOMEM;
}

typedef struct rows_s {
  cJSON *list;
  int rc;
} rows_t;

static void rate_row(const msvc__mw_ratelimit_info_t *in, void *arg) {
  rows_t *r = arg;
  cJSON *o;
  uint32_t n = in->share == 0 ? 1 : in->share;
  double burst = (double)in->burst / n;

  if (r->rc != MSVC_OK) return;
  o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddItemToArray(r->list, o)) {
    cJSON_Delete(o);
    r->rc = MSVC_ENOMEM;
    return;
  }
  if (!(add_str(o, "name", in->name) && add_str(o, "key", in->key) &&
        (in->header == NULL || add_str(o, "header", in->header)) &&
        add_str(o, "scope", in->route == NULL ? "every route"
                                              : in->route) &&
        (in->method == NULL || add_str(o, "method", in->method)) &&
        add_num(o, "rate", in->rate) && add_num(o, "period_ms", in->period_ms) &&
        add_num(o, "burst", in->burst) && add_num(o, "keys", (double)in->stats.keys) &&
        add_num(o, "max_keys", in->max_keys) &&
        add_num(o, "evicted", (double)in->stats.evicted) &&
        add_num(o, "evicted_lossy", (double)in->stats.evicted_lossy) &&
        add_num(o, "allowed", (double)in->stats.allowed) &&
        add_num(o, "rejected", (double)in->stats.refused) &&
        add_num(o, "instances", n) &&
        add_num(o, "instance_rate", (double)in->rate / n) &&
        add_num(o, "instance_burst", burst < 1.0 ? 1.0 : burst)))
    r->rc = MSVC_ENOMEM;
}

static int render(struct msvc_service_s *svc, cJSON *out, void *data) {
  rows_t r;
  int rc;

  (void)data;
  if ((rc = concurrency(svc, out)) != MSVC_OK) return rc;
  r.list = cJSON_AddArrayToObject(out, "rate_limits");
  r.rc = r.list == NULL ? MSVC_ENOMEM : MSVC_OK;
  if (r.rc == MSVC_OK) msvc__mw_ratelimit_foreach(rate_row, &r);
  return r.rc;
}

static void add_section(void) {
  /* A page of the application's own under the same name wins. */
  (void)msvc_admin_section_add(SECTION, "Limits", render, NULL);
}

void msvc__svc_limit_admin(void) {
  static uv_once_t once = UV_ONCE_INIT;

  uv_once(&once, add_section);
}
