/* bff: dashboards and gateway routes (see app.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>
#include <msvc/middleware.h>

#include "app.h"
#include "dashboard.h"
#include "ex.h"

#define LOG "bff"
#define USERS "user-service"
#define ORDERS "order-service"

/* A dashboard's two calls run together; both together must fit in this. */
#define DASHBOARD_DEADLINE_MS 3000

/* A dashboard request waiting for its fan-out (and, with BFF_ORDERS_GRPC,
 * for the gRPC order lookup beside it). */
typedef struct view_s {
  msvc_http_res_t *res;
  dashboard_kind_t kind;
  int64_t user_id;
  int waiting;      /* answers still to come */
  bool answered;    /* the response went out already (user-service failed) */
  cJSON *user;
  cJSON *orders;    /* order-service's answer, or NULL: degraded */
  bool orders_stale; /* orders is the cache's last good answer */
} view_t;

/* One of the dashboard's answers is in: the last one builds it. */
static void view_settle(view_t *v) {
  if (--v->waiting > 0)
    return;
  if (!v->answered)
    ex_res_json(v->res, 200, dashboard_build_stale(v->kind, v->user,
                                                   dashboard_orders(v->orders), v->orders_stale));
  cJSON_Delete(v->user);
  cJSON_Delete(v->orders);
  free(v);
}

/* The user of a user-service answer; false when the request was answered
 * (404, or user-service failing). */
static bool user_of(const msvc_service_result_t *r, view_t *v, cJSON **user) {
  char msg[EX_MSG_MAX];

  *user = NULL;
  if (r->err == MSVC_OK && r->status == 404) {
    snprintf(msg, sizeof(msg), "The user with ID %" PRId64 " was not found.", v->user_id);
    msvc_http_res_error(v->res, 404, "USER_NOT_FOUND", msg);
    return false;
  }
  if (r->err == MSVC_OK && r->status == 200)
    *user = cJSON_ParseWithLength(r->body, r->body_len);
  if (*user == NULL || !cJSON_IsObject(*user)) {
    if (r->err == MSVC_OK)
      MSVC_LOG_W(LOG, "user-service answered %d with an unusable body", r->status);
    cJSON_Delete(*user);
    *user = NULL;
    msvc_service_res_upstream_error(v->res, USERS,
                                    r->err != MSVC_OK ? r->err : MSVC_EUPSTREAM_UNAVAILABLE);
    return false;
  }
  return true;
}

/* The parsed order-service answer, or NULL when the dashboard must do
 * without it. */
static cJSON *orders_of(const msvc_service_result_t *r) {
  cJSON *doc = NULL;

  if (r->err == MSVC_OK && r->status == 200)
    doc = cJSON_ParseWithLength(r->body, r->body_len);
  if (dashboard_orders(doc) == NULL) {
    if (r->err != MSVC_OK)
      MSVC_LOG_W(LOG, "order-service unavailable (%s): serving a degraded dashboard",
                 msvc_strerror(r->err));
    else
      MSVC_LOG_W(LOG, "order-service answered %d: serving a degraded dashboard", r->status);
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

static void on_fanout_done(const msvc_service_result_t *results, size_t n, void *data) {
  view_t *v = data;

  if (n >= 1 && user_of(&results[0], v, &v->user)) {
    if (n == 2) /* no cache (BFF_CACHE=off): the orders came in the fan-out */
      v->orders = orders_of(&results[1]);
  } else {
    if (n == 0)
      ex_res_internal(v->res);
    v->answered = true;
  }
  view_settle(v);
}

/* The orders, through the dashboards' cache: within their
 * stale-if-error, order-service failing still shows the last good ones. */
static void on_orders_cached(const msvc_service_cached_t *r, void *data) {
  view_t *v = data;
  msvc_service_result_t res = {ORDERS, r->err, r->status, r->content_type, r->body,
                               r->body_len};

  v->orders = orders_of(&res);
  v->orders_stale = v->orders != NULL && r->result == MSVC_CACHE_STALE;
  if (v->orders_stale)
    MSVC_LOG_W(LOG, "order-service unavailable: serving its last good answer (%llu s old)",
               (unsigned long long)r->age_s);
  view_settle(v);
}

#ifdef EX_HAVE_GRPC
static void on_grpc_orders(cJSON *doc, void *data) {
  view_t *v = data;

  v->orders = doc;
  view_settle(v);
}
#endif

/* Adds the two calls of a dashboard and starts them. */
static int fan_out(app_t *app, msvc_http_req_t *req, view_t *v) {
  msvc_service_fanout_t *fo = NULL;
  msvc_service_request_t call;
  char users[48], orders[64];
  int rc;

  snprintf(users, sizeof(users), "/users/%" PRId64, v->user_id);
  snprintf(orders, sizeof(orders), "/orders?user_id=%" PRId64, v->user_id);
  rc = msvc_service_fanout_new(app->svc, DASHBOARD_DEADLINE_MS, on_fanout_done, v, &fo);
  if (rc != MSVC_OK)
    return rc;
  msvc_service_request_init(&call);
  call.parent = req;
  call.forward_auth = true; /* order-service checks the token itself */
  call.target = users;
  rc = msvc_service_fanout_add(fo, USERS, &call);
  if (rc >= 0 && !app->orders_grpc && app->dashboard_cache == NULL) {
    call.target = orders;
    rc = msvc_service_fanout_add(fo, ORDERS, &call);
  }
  if (rc < 0) {
    msvc_service_fanout_free(fo);
    return rc;
  }
  v->waiting = app->orders_grpc || app->dashboard_cache != NULL ? 2 : 1;
  rc = msvc_service_fanout_start(fo);
  if (rc == MSVC_OK && !app->orders_grpc && app->dashboard_cache != NULL) {
    /* Beside the fan-out, within the same deadline. A failure to start it
     * leaves the dashboard degraded. */
    call.target = orders;
    call.timeout_ms = DASHBOARD_DEADLINE_MS;
    if (msvc_service_get_cached(app->svc, app->dashboard_cache, ORDERS, &call,
                                on_orders_cached, v) != MSVC_OK)
      v->waiting = 1;
  }
#ifdef EX_HAVE_GRPC
  /* After the fan-out started (its answer never comes before this returns):
   * a failure to start the lookup leaves the dashboard degraded. */
  if (rc == MSVC_OK && app->orders_grpc &&
      bff_orders_grpc(app, req, v->user_id, DASHBOARD_DEADLINE_MS, on_grpc_orders, v) !=
          MSVC_OK)
    v->waiting = 1;
#endif
  return rc;
}

static void dashboard(msvc_http_req_t *req, msvc_http_res_t *res, app_t *app,
                      dashboard_kind_t kind) {
  const char *sub = msvc_mw_jwt_subject(req);
  int64_t id, caller;
  view_t *v;
  int rc;

  if (sub == NULL || !ex_parse_id(sub, &caller) ||
      !ex_parse_id(msvc_http_req_param(req, "id"), &id) || id != caller) {
    msvc_http_res_error(res, 403, "PERMISSION_DENIED", "You may only read your own dashboard.");
    return;
  }
  v = calloc(1, sizeof(*v));
  if (v == NULL) {
    ex_res_internal(res);
    return;
  }
  v->res = res;
  v->kind = kind;
  v->user_id = id;
  rc = fan_out(app, req, v);
  if (rc != MSVC_OK) {
    MSVC_LOG_E(LOG, "cannot start the dashboard calls: %s", msvc_strerror(rc));
    ex_res_internal(res);
    free(v);
  }
}

static void on_web(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  dashboard(req, res, data, DASHBOARD_WEB);
}

static void on_mobile(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  dashboard(req, res, data, DASHBOARD_MOBILE);
}

static void on_gateway(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const gateway_t *gw = data;
  msvc_service_proxy_opts_t opts;

  msvc_service_proxy_opts_init(&opts);
  opts.service = gw->service;
  opts.strip_prefix = "/api";
  opts.forward_auth = true;
  opts.cache = gw->app->gateway_cache;
  if (msvc_service_proxy(gw->app->svc, req, &opts) != MSVC_OK)
    ex_res_internal(res);
}

int app_user_rate(unsigned *rate, char *err, size_t errlen) {
  const char *v = ex_env("BFF_USER_RATE", NULL);
  char *end;
  unsigned long n;

  *rate = 20;
  if (v == NULL) return 0;
  n = strtoul(v, &end, 10);
  if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > 100000) {
    snprintf(err, errlen, "BFF_USER_RATE: bad value \"%.32s\" (accepted: requests per "
             "second per user, 1..100000)", v);
    return -1;
  }
  *rate = (unsigned)n;
  return 0;
}

/* Each signed-in user's requests (the token's sub, on the routes that
 * need a token): rate per second, bursts of twice that. Anonymous gateway
 * requests are not counted here. */
static int per_user_limit(app_t *app, msvc_service_t *svc, unsigned rate) {
  msvc_mw_ratelimit_opts_t o;
  int rc;

  msvc_mw_ratelimit_opts_init(&o);
  o.name = "bff_user";
  o.key = MSVC_MW_RATELIMIT_BY_SUBJECT;
  o.rate.rate = rate;
  o.rate.period_ms = 1000;
  o.rate.burst = rate * 2;
  o.registry = msvc_service_metrics(svc);
  if ((rc = msvc_mw_ratelimit_new(&o, &app->per_user)) != MSVC_OK) return rc;
  return msvc_service_use(svc, msvc_mw_ratelimit_middleware(app->per_user));
}

void app_close(app_t *app) {
  msvc_mw_ratelimit_free(app->per_user);
  app->per_user = NULL;
  msvc_cache_free(app->gateway_cache);
  msvc_cache_free(app->dashboard_cache);
  app->gateway_cache = app->dashboard_cache = NULL;
}

/* Two caches, so that what the gateway serves and what the dashboards show
 * are counted (and sized) apart: the label cache="gateway" or "dashboard"
 * of msvc_cache_requests_total. */
static int caches(app_t *app, msvc_service_t *svc) {
  const char *on = ex_env("BFF_CACHE", "on");
  msvc_cache_opts_t o;
  int rc;

  if (strcmp(on, "off") == 0) {
    MSVC_LOG_I(LOG, "no response cache (BFF_CACHE=off)");
    return MSVC_OK;
  }
  if (strcmp(on, "on") != 0) {
    MSVC_LOG_E(LOG, "BFF_CACHE: bad value \"%.32s\" (accepted: on, off)", on);
    return MSVC_ECONFIG;
  }

  msvc_cache_opts_init(&o);
  o.registry = msvc_service_metrics(svc);
  o.max_bytes = 32u << 20;
  o.name = "gateway";
  if ((rc = msvc_cache_new(&o, &app->gateway_cache)) != MSVC_OK)
    return rc;
  o.max_bytes = 16u << 20;
  o.name = "dashboard";
  return msvc_cache_new(&o, &app->dashboard_cache);
}

int app_routes(app_t *app, msvc_service_t *svc, unsigned user_rate) {
  const struct {
    const char *pattern;
    gateway_t *gw;
  } gateway[] = {
      {"/api/login", &app->users},   {"/api/users", &app->users},
      {"/api/users/*", &app->users}, {"/api/orders", &app->orders},
      {"/api/orders/*", &app->orders},
  };
  size_t i;
  int rc;

  app->svc = svc;
#ifdef EX_HAVE_GRPC
  app->orders_grpc = strcmp(ex_env("BFF_ORDERS_GRPC", "0"), "1") == 0;
  if (app->orders_grpc)
    MSVC_LOG_I(LOG, "dashboards read orders over gRPC (BFF_ORDERS_GRPC=1)");
#endif
  app->users = (gateway_t){app, USERS};
  app->orders = (gateway_t){app, ORDERS};
  if ((rc = per_user_limit(app, svc, user_rate)) != MSVC_OK) return rc;
  if ((rc = caches(app, svc)) != MSVC_OK) return rc;
  rc = msvc_service_route(svc, "GET", "/web/users/:id/dashboard", on_web, app,
                          MSVC_HTTP_ROUTE_AUTH);
  if (rc == MSVC_OK)
    rc = msvc_service_route(svc, "GET", "/mobile/users/:id/dashboard", on_mobile, app,
                            MSVC_HTTP_ROUTE_AUTH);
  for (i = 0; i < sizeof(gateway) / sizeof(gateway[0]) && rc == MSVC_OK; i++)
    rc = msvc_service_route(svc, "*", gateway[i].pattern, on_gateway, gateway[i].gw, 0);
  return rc;
}
