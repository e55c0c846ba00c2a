/*
 * The built-in pages, each as the JSON object its `?format=json` form
 * answers with (render.c draws the HTML from the same object). They read
 * the live service on its main loop.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <msvc/error.h>
#include <msvc/events.h>
#include <msvc/log.h>
#include <msvc/version.h>
#include <msvc/work.h>

#include "../service/service-core.h"
#include "admin-internal.h"

extern char **environ;

static void add_time(cJSON *o, const char *key, uint64_t wall_ms) {
  char ts[MSVC__RFC3339_LEN];

  msvc__format_rfc3339_ms(wall_ms, ts);
  cJSON_AddStringToObject(o, key, ts);
}

static const char *state_name(msvc_service_state_t st) {
  switch (st) {
  case MSVC_SERVICE_NEW: return "new";
  case MSVC_SERVICE_STARTING: return "starting";
  case MSVC_SERVICE_READY: return "ready";
  case MSVC_SERVICE_STOPPING: return "draining";
  default: return "stopped";
  }
}

/* The same checks `GET /ready` runs, with their answers. */
static void ready_checks(msvc_service_t *svc, cJSON *o) {
  msvc_service_state_t st = msvc_service_state(svc);
  int ls = atomic_load(&svc->lease_status);
  msvc__queue_t *q;

  cJSON_AddStringToObject(o, "listening", st >= MSVC_SERVICE_STARTING &&
                                              st <= MSVC_SERVICE_READY ? "ok" : "no");
  cJSON_AddStringToObject(o, "registered",
                          st >= MSVC_SERVICE_STOPPING ? "deregistered"
                          : st == MSVC_SERVICE_NEW || ls == 1 ? "pending"
                          : ls == MSVC_OK ? "ok" : msvc_strerror(ls));
  if (svc->jwks != NULL)
    cJSON_AddStringToObject(o, "jwks", msvc_jwt_keyset_count(svc->keyset) > 0 ? "ok"
                                                                           : "pending");
  msvc__queue_foreach(q, &svc->checks) {
    msvc__svc_check_t *c = msvc__container_of(q, msvc__svc_check_t, link);
    const char *detail = NULL;
    bool pass = c->fn(svc, &detail, c->data);

    cJSON_AddStringToObject(o, c->name, pass ? "ok" : detail != NULL ? detail : "failing");
  }
}

static int page_overview(msvc__admin_t *a, cJSON *out) {
  msvc_service_t *svc = a->svc;
  cJSON *s = cJSON_AddObjectToObject(out, "service");
  cJSON *b = cJSON_AddObjectToObject(out, "build");
  cJSON *l = cJSON_AddObjectToObject(out, "listeners");
  cJSON *r = cJSON_AddObjectToObject(out, "registry");
  cJSON *c = cJSON_AddObjectToObject(out, "ready checks");
  char addr[128], uri[512];
  uint64_t now = msvc_wall_ms();

  if (s == NULL || b == NULL || l == NULL || r == NULL || c == NULL) return MSVC_ENOMEM;
  cJSON_AddStringToObject(s, "name", svc->cfg.name);
  cJSON_AddStringToObject(s, "version", svc->cfg.version != NULL ? svc->cfg.version : "");
  cJSON_AddStringToObject(s, "instance_id", svc->instance_id != NULL ? svc->instance_id : "");
  cJSON_AddStringToObject(s, "state", state_name(msvc_service_state(svc)));
  cJSON_AddNumberToObject(s, "uptime_s", (double)((now - a->created_wall_ms) / 1000));
  add_time(s, "started_at", a->created_wall_ms);
  cJSON_AddNumberToObject(s, "pid", (double)getpid());
  cJSON_AddStringToObject(b, "libmsvc", MSVC_VERSION_STRING);
#ifdef __VERSION__
  cJSON_AddStringToObject(b, "compiler", __VERSION__);
#endif
#ifdef NDEBUG
  cJSON_AddBoolToObject(b, "assertions", false);
#else
  cJSON_AddBoolToObject(b, "assertions", true);
#endif
  snprintf(addr, sizeof(addr), "%s:%d", svc->cfg.host, svc->port);
  cJSON_AddStringToObject(l, "public", addr);
  snprintf(addr, sizeof(addr), "%s:%d", a->host, msvc__admin_bound_port(a));
  cJSON_AddStringToObject(l, "admin", addr);
  cJSON_AddNumberToObject(l, "workers", svc->cfg.workers);
  cJSON_AddBoolToObject(l, "tls", svc->cfg.tls_server != NULL);
  cJSON_AddBoolToObject(l, "admin_token", a->token != NULL);
  cJSON_AddStringToObject(r, "backend", svc->registry != NULL
                                            ? msvc_registry_backend(svc->registry) : "");
  msvc__admin_redact("MSVC_REGISTRY", svc->cfg.registry_uri, uri, sizeof(uri));
  cJSON_AddStringToObject(r, "uri", uri);
  cJSON_AddNumberToObject(r, "ttl_ms", svc->cfg.registry_ttl_ms);
  ready_checks(svc, c);
  return MSVC_OK;
}

static int page_registry(msvc__admin_t *a, cJSON *out) {
  return msvc__caller_admin_registry(a->svc->caller, out);
}

static int page_balancers(msvc__admin_t *a, cJSON *out) {
  return msvc__caller_admin_balancers(a->svc->caller, out);
}

static int page_breakers(msvc__admin_t *a, cJSON *out) {
  return msvc__caller_admin_breakers(a->svc->caller, out);
}

static int page_pools(msvc__admin_t *a, cJSON *out) {
  msvc_service_t *svc = a->svc;
  cJSON *s = cJSON_AddObjectToObject(out, "server");
  const msvc_http_server_opts_t *o = &svc->cfg.server;

  if (s == NULL) return MSVC_ENOMEM;
  if (svc->cfg.workers <= 1 && svc->main.srv != NULL)
    cJSON_AddNumberToObject(s, "connections", msvc_http_server_connections(svc->main.srv));
  else
    cJSON_AddStringToObject(s, "connections", "see msvc_http_server_connections on /metrics");
  cJSON_AddNumberToObject(s, "workers", svc->cfg.workers);
  cJSON_AddNumberToObject(s, "max_connections", o->max_connections);
  cJSON_AddNumberToObject(s, "max_pipeline", o->max_pipeline);
  cJSON_AddNumberToObject(s, "keepalive_timeout_ms", o->keepalive_timeout_ms);
  return msvc__caller_admin_pools(svc->caller, out);
}

static int on_sub(const msvc_events_sub_info_t *i, void *data) {
  cJSON *o = cJSON_CreateObject();

  if (o == NULL) return 1;
  cJSON_AddStringToObject(o, "stream", i->stream);
  cJSON_AddStringToObject(o, "subject", i->subject);
  cJSON_AddStringToObject(o, "durable", i->durable);
  cJSON_AddNumberToObject(o, "unacked", i->unacked);
  cJSON_AddNumberToObject(o, "lag", (double)i->lag);
  cJSON_AddStringToObject(o, "state", i->closing ? "closing" : "ok");
  cJSON_AddItemToArray(data, o);
  return 0;
}

static const char *events_state(msvc_events_state_t s) {
  switch (s) {
  case MSVC_EVENTS_CONNECTING: return "connecting";
  case MSVC_EVENTS_CONNECTED: return "connected";
  case MSVC_EVENTS_DISCONNECTED: return "disconnected";
  default: return "closed";
  }
}

static int page_work(msvc__admin_t *a, cJSON *out) {
  msvc_service_t *svc = a->svc;
  cJSON *w = cJSON_AddObjectToObject(out, "worker pool (main loop)");
  cJSON *e = cJSON_AddObjectToObject(out, "events");
  msvc_work_stats_t ws;

  if (w == NULL || e == NULL) return MSVC_ENOMEM;
  cJSON_AddNumberToObject(w, "max_threads", svc->cfg.work_threads);
  cJSON_AddNumberToObject(w, "queue_bound", svc->cfg.work_queue);
  if (svc->main.work != NULL && msvc_work_stats(svc->main.work, &ws) == MSVC_OK) {
    cJSON_AddNumberToObject(w, "threads", ws.threads);
    cJSON_AddNumberToObject(w, "queued", ws.queued);
    cJSON_AddNumberToObject(w, "running", ws.running);
    cJSON_AddNumberToObject(w, "done", (double)ws.done);
    cJSON_AddNumberToObject(w, "rejected", (double)ws.rejected);
    cJSON_AddNumberToObject(w, "cancelled", (double)ws.cancelled);
  }
  if (svc->events == NULL) {
    cJSON_AddStringToObject(e, "backend", "off");
    return MSVC_OK;
  }
  cJSON_AddStringToObject(e, "backend", msvc_events_backend(svc->events));
  cJSON_AddStringToObject(e, "state", events_state(msvc_events_state(svc->events)));
  cJSON_AddNumberToObject(e, "pending_publishes",
                          (double)msvc_events_pending_publishes(svc->events));
  {
    cJSON *subs = cJSON_AddArrayToObject(e, "subscriptions");
    if (subs == NULL) return MSVC_ENOMEM;
    (void)msvc_events_subs(svc->events, on_sub, subs);
  }
  return MSVC_OK;
}

static void add_kv(cJSON *o, const char *key, const char *value) {
  char shown[512];

  if (value == NULL) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  msvc__admin_redact(key, value, shown, sizeof(shown));
  cJSON_AddStringToObject(o, key, shown);
}

static int page_config(msvc__admin_t *a, cJSON *out) {
  const msvc__svc_config_t *c = &a->svc->cfg;
  cJSON *e = cJSON_AddObjectToObject(out, "in effect");
  cJSON *env = cJSON_AddObjectToObject(out, "environment (MSVC_*, OTEL_*)");
  char num[64];
  char **p;

  if (e == NULL || env == NULL) return MSVC_ENOMEM;
  add_kv(e, "name", c->name);
  add_kv(e, "host", c->host);
  snprintf(num, sizeof(num), "%d", c->port);
  add_kv(e, "port", num);
  add_kv(e, "advertise_host", c->advertise_host);
  add_kv(e, "registry", c->registry_uri);
  cJSON_AddNumberToObject(e, "registry_ttl_ms", c->registry_ttl_ms);
  add_kv(e, "lb", msvc_lb_policy_name(c->lb_policy));
  cJSON_AddNumberToObject(e, "workers", c->workers);
  cJSON_AddNumberToObject(e, "drain_timeout_ms", c->drain_timeout_ms);
  cJSON_AddNumberToObject(e, "call_timeout_ms", c->call_timeout_ms);
  cJSON_AddNumberToObject(e, "work_threads", c->work_threads);
  cJSON_AddNumberToObject(e, "work_queue", c->work_queue);
  add_kv(e, "events", c->events_uri);
  add_kv(e, "jwt_jwks_url", c->jwt_url);
  add_kv(e, "jwt_jwks_file", c->jwt_file);
  add_kv(e, "jwt_issuer", c->jwt_issuer);
  add_kv(e, "jwt_audience", c->jwt_audience);
  cJSON_AddBoolToObject(e, "tls_server", c->tls_server != NULL);
  cJSON_AddBoolToObject(e, "tls_client", c->tls_client != NULL);
  add_kv(e, "log_level", msvc_log_level_name(msvc_log_get_level()));
  add_kv(e, "admin_token", a->token);
  for (p = environ; p != NULL && *p != NULL; p++) {
    const char *eq = strchr(*p, '=');
    char key[128];
    size_t n;

    if (eq == NULL || (strncmp(*p, "MSVC_", 5) != 0 && strncmp(*p, "OTEL_", 5) != 0 &&
                       strncmp(*p, "USER_", 5) != 0 && strncmp(*p, "ORDER_", 6) != 0))
      continue;
    n = (size_t)(eq - *p);
    if (n >= sizeof(key)) continue;
    memcpy(key, *p, n);
    key[n] = '\0';
    if (cJSON_GetObjectItemCaseSensitive(env, key) == NULL) add_kv(env, key, eq + 1);
  }
  return MSVC_OK;
}

static int page_charts(msvc__admin_t *a, cJSON *out) {
  return msvc__admin_ring_json(a->ring, uv_hrtime() / 1000000u, out);
}

static int page_loglevel(msvc__admin_t *a, cJSON *out) {
  cJSON *l = cJSON_AddArrayToObject(out, "accepted");
  int i;

  (void)a;
  if (l == NULL) return MSVC_ENOMEM;
  cJSON_AddStringToObject(out, "level", msvc_log_level_name(msvc_log_get_level()));
  for (i = MSVC_LOG_TRACE; i <= MSVC_LOG_OFF; i++)
    cJSON_AddItemToArray(l, cJSON_CreateString(msvc_log_level_name((msvc_log_level_t)i)));
  return MSVC_OK;
}

const msvc__admin_page_t msvc__admin_pages[] = {
    {"", "Overview", page_overview},
    {"registry", "Registry", page_registry},
    {"balancers", "Balancers", page_balancers},
    {"breakers", "Breakers", page_breakers},
    {"pools", "Pools", page_pools},
    {"work", "Work & events", page_work},
    {"requests", "Requests", page_charts},
    {"tracez", "Traces", msvc__admin_page_tracez},
    {"config", "Configuration", page_config},
    {"loglevel", "Log level", page_loglevel},
};
const size_t msvc__admin_npages = sizeof(msvc__admin_pages) / sizeof(msvc__admin_pages[0]);
