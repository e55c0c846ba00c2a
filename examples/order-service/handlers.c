/* order-service: configuration and request handlers (see app.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/work.h>

#include "app.h"
#include "ex.h"
#include "order.h"

#define LOG "order-service"
#define USERS "user-service"

int app_open(app_t *app, char *err, size_t errlen) {
  const char *db = ex_env("ORDER_DB", "order-service.db");
  char why[MSVC_ERRMSG_MAX];

  if (orders_open(db, &app->orders, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "ORDER_DB: %s", why);
    return -1;
  }
  MSVC_LOG_I(LOG, "database %s", db);
  return 0;
}

void app_close(app_t *app) {
  orders_close(app->orders);
  memset(app, 0, sizeof(*app));
}

/* The caller's user id, from the verified token; false when answered. */
static bool caller(msvc_http_req_t *req, msvc_http_res_t *res, int64_t *id) {
  const char *sub = msvc_mw_jwt_subject(req);

  if (sub != NULL && ex_parse_id(sub, id))
    return true;
  msvc_http_res_error(res, 403, "PERMISSION_DENIED", "The token does not name a user.");
  return false;
}

/* A POST /orders waiting for user-service to confirm the caller exists. */
typedef struct pending_s {
  app_t *app;
  msvc_http_res_t *res;
  cJSON *body; /* owns the strings the parsed order borrows */
  int64_t user_id;
  order_new_t order;
  char *items;    /* the items as stored: the request's fingerprint */
  char *idem_key; /* the Idempotency-Key header, or NULL */
  char traceparent[MSVC_MW_TRACEPARENT_LEN]; /* passed on with the event */
  char request_id[130];
  cJSON *doc;     /* the stored order, set by store_work() */
  ex_store_rc_t store_rc;
} pending_t;

static void pending_free(pending_t *p) {
  cJSON_Delete(p->body);
  cJSON_free(p->items);
  free(p->idem_key);
  free(p);
}

/* Answers 201 with an order; doc is consumed. */
static void send_created(msvc_http_res_t *res, cJSON *doc, bool replayed) {
  cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
  char where[40];

  snprintf(where, sizeof(where), "/orders/%.0f", cJSON_IsNumber(id) ? id->valuedouble : 0.0);
  msvc_http_res_header(res, "Location", where);
  if (replayed)
    msvc_http_res_header(res, "Idempotent-Replayed", "true");
  ex_res_json(res, 201, doc);
}

/*
 * A request whose key the caller used before: the same items get the
 * first order again (201, as the first time, marked Idempotent-Replayed),
 * other items 422. false when the key is new.
 */
static bool replay(pending_t *p) {
  cJSON *doc = NULL;
  bool same = false;
  ex_store_rc_t rc;

  rc = orders_find_key(p->app->orders, p->user_id, p->idem_key, p->items, &same, &doc);
  if (rc == EX_STORE_NOT_FOUND)
    return false;
  if (rc != EX_STORE_OK) {
    ex_res_internal(p->res);
  } else if (same) {
    send_created(p->res, doc, true);
    return true;
  } else {
    msvc_http_res_error(p->res, 422, "IDEMPOTENCY_KEY_REUSED",
                        "This Idempotency-Key was used for a different order.");
  }
  cJSON_Delete(doc);
  return true;
}

/* Runs on a thread of the worker pool: the insert may wait for another
 * instance's write (up to the busy timeout), which must not hold up the
 * loop. Touches only p. */
static void store_work(void *data) {
  pending_t *p = data;

#ifdef EX_HAVE_EVENTS
  if (p->app->events) {
    msvc_events_header_t h[2];
    size_t n = 0;

    if (p->traceparent[0] != '\0')
      h[n++] = (msvc_events_header_t){"traceparent", p->traceparent};
    if (p->request_id[0] != '\0')
      h[n++] = (msvc_events_header_t){"X-Request-Id", p->request_id};
    p->store_rc = orders_create_pending(p->app->orders, p->user_id, p->items,
                                        p->order.total_cents, ex_now_s(), p->idem_key, h, n,
                                        &p->doc);
    if (p->store_rc == EX_STORE_OK)
      ex_bus_kick(p->app->bus);
    return;
  }
#endif
  p->store_rc = orders_create(p->app->orders, p->user_id, p->items, p->order.total_cents,
                              ex_now_s(), p->idem_key, &p->doc);
}

/* Back on the loop. Any status but MSVC_OK is answered by the pool. */
static void store_done(msvc_http_req_t *req, void *data, int status) {
  pending_t *p = data;

  (void)req;
  if (status != MSVC_OK) {
    /* answered by the pool */
  } else if (p->store_rc == EX_STORE_OK) {
    send_created(p->res, p->doc, false);
    p->doc = NULL;
  } else if (p->store_rc != EX_STORE_CONFLICT || p->idem_key == NULL || !replay(p)) {
    /* A conflict means a request with the same key was stored while this
     * one checked the user: replay() answers it as that one's repeat. */
    ex_res_internal(p->res);
  }
  cJSON_Delete(p->doc);
  pending_free(p);
}

static void store_order(pending_t *p) {
  msvc_http_req_t *req = msvc_http_res_req(p->res);
  const msvc_mw_trace_t *trace = msvc_mw_trace(req);
  const char *rid = msvc_mw_request_id(req);

  /* The event carries the request's trace and id, so that its consumers'
   * work joins the same trace. */
  if (trace == NULL ||
      msvc_mw_traceparent_format(trace, p->traceparent, sizeof(p->traceparent)) != MSVC_OK)
    p->traceparent[0] = '\0';
  snprintf(p->request_id, sizeof(p->request_id), "%s", rid != NULL ? rid : "");
  if (msvc_work_submit_req(msvc_service_work(p->app->svc, req), req, 0, store_work,
                           store_done, p) != MSVC_OK)
    pending_free(p); /* answered: 503 OVERLOADED when the queue is full */
}

static void on_user_checked(int err, const msvc_http_response_t *r, void *data) {
  pending_t *p = data;
  int status = err == MSVC_OK ? msvc_http_response_status(r) : 0;
  char msg[EX_MSG_MAX];

  if (err == MSVC_OK && status == 200) {
    store_order(p); /* p is the job's now */
    return;
  } else if (err == MSVC_OK && status == 404) {
    snprintf(msg, sizeof(msg), "The user with ID %" PRId64 " was not found.", p->user_id);
    msvc_http_res_error(p->res, 422, "USER_NOT_FOUND", msg);
  } else {
    if (err == MSVC_OK)
      MSVC_LOG_W(LOG, "user-service answered %d to a user check", status);
    msvc_service_res_upstream_error(p->res, USERS, err != MSVC_OK ? err : MSVC_EUPSTREAM_UNAVAILABLE);
  }
  pending_free(p);
}

static void check_user(pending_t *p, msvc_http_req_t *req) {
  msvc_service_request_t call;
  char target[48];
  int rc;

  snprintf(target, sizeof(target), "/users/%" PRId64, p->user_id);
  msvc_service_request_init(&call);
  call.method = "GET";
  call.target = target;
  call.parent = req; /* request id, trace context, cancellation */
  call.forward_auth = true;
  call.on_done = on_user_checked;
  call.data = p;
  rc = msvc_service_call(p->app->svc, USERS, &call, NULL);
  if (rc != MSVC_OK) {
    MSVC_LOG_E(LOG, "cannot call user-service: %s", msvc_strerror(rc));
    msvc_service_res_upstream_error(p->res, USERS, rc);
    pending_free(p);
  }
}

/* The parts of a POST /orders beyond its JSON: the canonical items and the
 * Idempotency-Key. false when the request was answered. */
static bool prepare(pending_t *p, msvc_http_req_t *req) {
  const char *key = msvc_http_req_header(req, "Idempotency-Key");
  cJSON *items = order_items_json(&p->order);

  p->items = items != NULL ? cJSON_PrintUnformatted(items) : NULL;
  cJSON_Delete(items);
  if (p->items == NULL) {
    ex_res_internal(p->res);
    return false;
  }
  if (key == NULL)
    return true;
  if (!order_idem_key_valid(key)) {
    ex_res_invalid(p->res, "Idempotency-Key: must be 1 to 255 visible ASCII characters");
    return false;
  }
  p->idem_key = strdup(key);
  if (p->idem_key == NULL) {
    ex_res_internal(p->res);
    return false;
  }
  return !replay(p); /* a repeat needs no user check */
}

static void on_create_order(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char msg[EX_MSG_MAX];
  pending_t *p;
  int64_t user;
  int rc;

  if (!caller(req, res, &user))
    return;
  p = calloc(1, sizeof(*p));
  if (p == NULL) {
    ex_res_internal(res);
    return;
  }
  p->app = data;
  p->res = res;
  p->user_id = user;
  rc = msvc_http_req_json(req, &p->body);
  if (rc != MSVC_OK) {
    if (rc == MSVC_ENOMEM)
      ex_res_internal(res); /* the other codes were answered already */
    free(p);
    return;
  }
  if (!order_parse(p->body, &p->order, msg, sizeof(msg))) {
    ex_res_invalid(res, msg);
    pending_free(p);
    return;
  }
  if (!prepare(p, req)) {
    pending_free(p);
    return;
  }
  check_user(p, req);
}

/* A user's orders are theirs alone (private), change with every order
 * and saga step (revalidated on every use, max-age=0), and may stand in
 * for a minute when this service cannot answer (stale-if-error). */
#define ORDERS_CACHE_CONTROL "private, max-age=0, stale-if-error=60"

static void order_not_found(msvc_http_res_t *res, const char *id) {
  char msg[EX_MSG_MAX];

  snprintf(msg, sizeof(msg), "The order with ID %.40s was not found.", id);
  msvc_http_res_error(res, 404, "ORDER_NOT_FOUND", msg);
}

static void on_get_order(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  const char *param = msvc_http_req_param(req, "id");
  cJSON *doc = NULL;
  int64_t user, id;
  ex_store_rc_t rc;

  if (!caller(req, res, &user))
    return;
  if (param == NULL || !ex_parse_id(param, &id)) {
    order_not_found(res, param != NULL ? param : "");
    return;
  }
  rc = orders_get(app->orders, id, user, &doc);
  if (rc == EX_STORE_NOT_FOUND)
    order_not_found(res, param);
  else if (rc != EX_STORE_OK)
    ex_res_internal(res);
  else
    ex_res_json_cacheable(req, res, doc, ORDERS_CACHE_CONTROL);
}

static void on_list_orders(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  const char *param = msvc_http_req_query(req, "user_id");
  int64_t user, wanted;
  cJSON *doc, *orders;

  if (!caller(req, res, &user))
    return;
  if (param == NULL) {
    ex_res_invalid(res, "user_id: is required");
    return;
  }
  if (!ex_parse_id(param, &wanted)) {
    ex_res_invalid(res, "user_id: must be a positive integer");
    return;
  }
  if (wanted != user) {
    msvc_http_res_error(res, 403, "PERMISSION_DENIED", "You may only list your own orders.");
    return;
  }
  doc = cJSON_CreateObject();
  orders = doc != NULL ? cJSON_AddArrayToObject(doc, "orders") : NULL;
  if (orders == NULL || orders_list(app->orders, user, orders) != EX_STORE_OK) {
    cJSON_Delete(doc);
    ex_res_internal(res);
    return;
  }
  ex_res_json_cacheable(req, res, doc, ORDERS_CACHE_CONTROL);
}

int app_routes(app_t *app, msvc_service_t *svc) {
  int rc;

  app->svc = svc;
#ifdef EX_HAVE_EVENTS
  /* Decided before any request: an order placed while the broker
   * connection is still being set up waits in the outbox. */
  app->events = msvc_service_events(svc) != NULL;
#endif
  rc = msvc_service_route(svc, "POST", "/orders", on_create_order, app, MSVC_HTTP_ROUTE_AUTH);
  if (rc == MSVC_OK)
    rc = msvc_service_route(svc, "GET", "/orders", on_list_orders, app, MSVC_HTTP_ROUTE_AUTH);
  if (rc == MSVC_OK)
    rc = msvc_service_route(svc, "GET", "/orders/:id", on_get_order, app,
                            MSVC_HTTP_ROUTE_AUTH);
  return rc;
}
