/*
 * What the admin pages show of calls to other services: the registry's
 * view of each service called, its balancer, the breaker of each endpoint
 * and the main loop's connections to it. Read on the main loop, the only
 * thread that changes a target's endpoint array, so the array is read
 * without its lock; balancers and breakers are thread-safe.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include <msvc/error.h>

#include "call-internal.h"

typedef int (*target_fn)(msvc__caller_t *c, call_target_t *t, cJSON *list);

static int each_target(msvc__caller_t *c, cJSON *out, const char *key, target_fn fn) {
  cJSON *list = cJSON_AddArrayToObject(out, key);
  call_target_t *t;
  int rc = MSVC_OK;

  if (list == NULL) return MSVC_ENOMEM;
  if (c == NULL) return MSVC_OK;
  uv_mutex_lock(&c->mu);
  for (t = c->targets; t != NULL && rc == MSVC_OK; t = t->next)
    rc = fn(c, t, list);
  uv_mutex_unlock(&c->mu);
  return rc;
}

static cJSON *add_obj(cJSON *list) {
  cJSON *o = cJSON_CreateObject();

  if (o != NULL) cJSON_AddItemToArray(list, o);
  return o;
}

static void add_time(cJSON *o, const char *key, uint64_t wall_ms) {
  char ts[MSVC__RFC3339_LEN];

  if (wall_ms == 0) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  msvc__format_rfc3339_ms(wall_ms, ts);
  cJSON_AddStringToObject(o, key, ts);
}

/* ---- registry ------------------------------------------------------------- */

static cJSON *instance_json(const msvc_registry_instance_t *in) {
  cJSON *o = cJSON_CreateObject(), *meta;
  size_t i;

  if (o == NULL) return NULL;
  cJSON_AddStringToObject(o, "id", in->id != NULL ? in->id : "");
  cJSON_AddStringToObject(o, "address", in->address != NULL ? in->address : "");
  cJSON_AddNumberToObject(o, "port", in->port);
  cJSON_AddNumberToObject(o, "weight", in->weight);
  cJSON_AddStringToObject(o, "version", in->version != NULL ? in->version : "");
  meta = cJSON_AddObjectToObject(o, "metadata");
  for (i = 0; meta != NULL && i < in->nmetadata; i++)
    cJSON_AddStringToObject(meta, in->metadata[i].key, in->metadata[i].value);
  return o;
}

static int registry_target(msvc__caller_t *c, call_target_t *t, cJSON *list) {
  cJSON *o = add_obj(list), *insts;
  msvc_registry_set_t *set = t->watch != NULL ? msvc_registry_watch_set(t->watch) : NULL;
  int ready = atomic_load(&t->ready);
  size_t i, n = set != NULL ? msvc_registry_set_count(set) : 0;

  (void)c;
  if (o == NULL) return MSVC_ENOMEM;
  cJSON_AddStringToObject(o, "service", t->name);
  cJSON_AddStringToObject(o, "watch", ready < 0 ? msvc_strerror(ready)
                                      : set == NULL ? "pending"
                                      : msvc_registry_set_stale(set) ? "stale" : "ok");
  cJSON_AddNumberToObject(o, "count", (double)n);
  add_time(o, "last_change", t->changed_wall_ms);
  insts = cJSON_AddArrayToObject(o, "instances");
  if (insts == NULL) return MSVC_ENOMEM;
  for (i = 0; i < n; i++) {
    cJSON *in = instance_json(msvc_registry_set_at(set, i));
    if (in == NULL) return MSVC_ENOMEM;
    cJSON_AddItemToArray(insts, in);
  }
  return MSVC_OK;
}

int msvc__caller_admin_registry(msvc__caller_t *c, cJSON *out) {
  return each_target(c, out, "services", registry_target);
}

/* ---- balancers ------------------------------------------------------------ */

static call_endpoint_t *endpoint_of(call_target_t *t, const char *id) {
  size_t i, n = atomic_load(&t->neps);

  for (i = 0; i < n; i++)
    if (strcmp(t->eps[i]->id, id) == 0) return t->eps[i];
  return NULL;
}

typedef struct lb_walk_s {
  call_target_t *t;
  cJSON *list;
  uint64_t now;
  int rc;
} lb_walk_t;

static const char *why_excluded(call_endpoint_t *ep, bool excluded) {
  if (!excluded) return "";
  if (ep == NULL) return "left the set";
  switch (msvc_breaker_state(ep->breaker)) {
  case MSVC_BREAKER_OPEN: return "breaker open";
  case MSVC_BREAKER_FORCED_OPEN: return "breaker forced open";
  case MSVC_BREAKER_HALF_OPEN: return "breaker probing";
  default: return "excluded";
  }
}

static int on_lb_endpoint(const msvc_lb_endpoint_stats_t *s, void *data) {
  lb_walk_t *w = data;
  cJSON *o = add_obj(w->list);

  if (o == NULL) {
    w->rc = MSVC_ENOMEM;
    return 1;
  }
  cJSON_AddStringToObject(o, "endpoint", s->id);
  cJSON_AddNumberToObject(o, "weight", s->weight);
  cJSON_AddNumberToObject(o, "effective_weight", s->effective_weight_milli / 1000.0);
  cJSON_AddNumberToObject(o, "inflight", (double)s->inflight);
  cJSON_AddNumberToObject(o, "picks", (double)s->picks);
  cJSON_AddNumberToObject(o, "failures", (double)s->failures);
  cJSON_AddNumberToObject(o, "latency_ewma_ms", (double)s->latency_ewma_us / 1000.0);
  cJSON_AddStringToObject(o, "state", s->excluded ? "excluded" : "ok");
  cJSON_AddStringToObject(o, "why", why_excluded(endpoint_of(w->t, s->id), s->excluded));
  cJSON_AddStringToObject(o, "metadata", s->metadata);
  return 0;
}

static int balancer_target(msvc__caller_t *c, call_target_t *t, cJSON *list) {
  cJSON *o = add_obj(list);
  msvc_lb_status_t st;
  lb_walk_t w;

  if (o == NULL) return MSVC_ENOMEM;
  memset(&st, 0, sizeof(st));
  w.now = msvc_now_ms();
  (void)msvc_lb_status(t->lb, w.now, &st);
  cJSON_AddStringToObject(o, "service", t->name);
  cJSON_AddStringToObject(o, "policy", msvc_lb_policy_name(c->opts.policy));
  cJSON_AddNumberToObject(o, "eligible", st.eligible);
  cJSON_AddNumberToObject(o, "excluded", st.excluded);
  cJSON_AddBoolToObject(o, "panic", st.panic);
  cJSON_AddNumberToObject(o, "inflight", (double)st.inflight);
  w.t = t;
  w.list = cJSON_AddArrayToObject(o, "endpoints");
  w.rc = w.list != NULL ? MSVC_OK : MSVC_ENOMEM;
  if (w.rc == MSVC_OK) (void)msvc_lb_foreach(t->lb, w.now, on_lb_endpoint, &w);
  return w.rc;
}

int msvc__caller_admin_balancers(msvc__caller_t *c, cJSON *out) {
  return each_target(c, out, "services", balancer_target);
}

/* ---- breakers ------------------------------------------------------------- */

static int breaker_target(msvc__caller_t *c, call_target_t *t, cJSON *list) {
  size_t i, n = atomic_load(&t->neps);
  uint64_t now = msvc_now_ms();

  (void)c;
  for (i = 0; i < n; i++) {
    call_endpoint_t *ep = t->eps[i];
    msvc_breaker_stats_t s;
    cJSON *o;

    if (msvc_breaker_stats(ep->breaker, now, &s) != MSVC_OK) continue;
    if ((o = add_obj(list)) == NULL) return MSVC_ENOMEM;
    cJSON_AddStringToObject(o, "service", t->name);
    cJSON_AddStringToObject(o, "endpoint", ep->id);
    cJSON_AddStringToObject(o, "state", msvc_breaker_state_name(s.state));
    cJSON_AddNumberToObject(o, "calls", (double)s.calls);
    cJSON_AddNumberToObject(o, "failures", (double)s.failures);
    cJSON_AddNumberToObject(o, "slow_calls", (double)s.slow_calls);
    if (s.failure_rate < 0) cJSON_AddNullToObject(o, "failure_rate_pct");
    else cJSON_AddNumberToObject(o, "failure_rate_pct", s.failure_rate);
    if (s.slow_call_rate < 0) cJSON_AddNullToObject(o, "slow_rate_pct");
    else cJSON_AddNumberToObject(o, "slow_rate_pct", s.slow_call_rate);
    cJSON_AddNumberToObject(o, "rejected", (double)s.not_permitted);
    cJSON_AddNumberToObject(o, "transitions", (double)s.transitions);
    cJSON_AddNumberToObject(o, "probes_in_flight", s.probes_in_flight);
    if (s.open_until_ms == 0) {
      cJSON_AddNullToObject(o, "next_probe_in_ms");
      cJSON_AddNullToObject(o, "next_probe_at");
    } else {
      uint64_t left = s.open_until_ms > now ? s.open_until_ms - now : 0;
      cJSON_AddNumberToObject(o, "next_probe_in_ms", (double)left);
      add_time(o, "next_probe_at", msvc_wall_ms() + left);
    }
  }
  return MSVC_OK;
}

int msvc__caller_admin_breakers(msvc__caller_t *c, cJSON *out) {
  return each_target(c, out, "endpoints", breaker_target);
}

/* ---- client pools ----------------------------------------------------------- */

/* The main loop's client only: each worker loop's client belongs to its
 * own thread. */
static int pool_target(msvc__caller_t *c, call_target_t *t, cJSON *list) {
  size_t i, n = atomic_load(&t->neps);

  for (i = 0; i < n; i++) {
    call_endpoint_t *ep = t->eps[i];
    msvc_http_pool_stats_t ps;
    cJSON *o = add_obj(list);

    if (o == NULL) return MSVC_ENOMEM;
    memset(&ps, 0, sizeof(ps));
    if (c->main_lc != NULL && c->main_lc->client != NULL)
      (void)msvc_http_client_pool(c->main_lc->client, ep->host, ep->port, &ps);
    cJSON_AddStringToObject(o, "service", t->name);
    cJSON_AddStringToObject(o, "endpoint", ep->id);
    cJSON_AddBoolToObject(o, "tls", atomic_load(&ep->tls));
    cJSON_AddNumberToObject(o, "connections", ps.connections);
    cJSON_AddNumberToObject(o, "idle", ps.idle);
    cJSON_AddNumberToObject(o, "queued", ps.queued);
  }
  return MSVC_OK;
}

int msvc__caller_admin_pools(msvc__caller_t *c, cJSON *out) {
  return each_target(c, out, "client", pool_target);
}
