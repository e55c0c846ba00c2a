/* bff: dashboards and gateway routes (see app.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

/* A dashboard request waiting for its fan-out. */
typedef struct view_s {
  msvc_http_res_t *res;
  dashboard_kind_t kind;
  int64_t user_id;
} view_t;

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
  cJSON *user = NULL, *orders;

  if (n == 2 && user_of(&results[0], v, &user)) {
    orders = orders_of(&results[1]);
    ex_res_json(v->res, 200, dashboard_build(v->kind, user, dashboard_orders(orders)));
    cJSON_Delete(orders);
  } else if (n != 2) {
    ex_res_internal(v->res);
  }
  cJSON_Delete(user);
  free(v);
}

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
  if (rc >= 0) {
    call.target = orders;
    rc = msvc_service_fanout_add(fo, ORDERS, &call);
  }
  if (rc >= 0)
    rc = msvc_service_fanout_start(fo);
  else
    msvc_service_fanout_free(fo);
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
  app->users = (gateway_t){app, USERS};
  app->orders = (gateway_t){app, ORDERS};
  if ((rc = per_user_limit(app, svc, user_rate)) != MSVC_OK) return rc;
  rc = msvc_service_route(svc, "GET", "/web/users/:id/dashboard", on_web, app,
                          MSVC_HTTP_ROUTE_AUTH);
  if (rc == MSVC_OK)
    rc = msvc_service_route(svc, "GET", "/mobile/users/:id/dashboard", on_mobile, app,
                            MSVC_HTTP_ROUTE_AUTH);
  for (i = 0; i < sizeof(gateway) / sizeof(gateway[0]) && rc == MSVC_OK; i++)
    rc = msvc_service_route(svc, "*", gateway[i].pattern, on_gateway, gateway[i].gw, 0);
  return rc;
}
