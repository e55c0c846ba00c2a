/* payment-service: the HTTP API and the consumer of order events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/work.h>

#include "app.h"
#include "ex.h"

#define LOG "payment-service"

int app_open(app_t *app, char *err, size_t errlen) {
  const char *db = ex_env("PAYMENT_DB", "payment-service.db");
  const char *delay = ex_env("PAYMENT_DELAY_MS", "0");
  char why[MSVC_ERRMSG_MAX];
  int64_t ms;

  if (!ex_parse_int(delay, 0, 10000, &ms)) {
    snprintf(err, errlen, "PAYMENT_DELAY_MS: bad value '%.32s' (accepted: 0 to 10000)", delay);
    return -1;
  }
  app->delay_ms = (unsigned)ms;
  if (payments_open(db, &app->payments, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "PAYMENT_DB: %s", why);
    return -1;
  }
  MSVC_LOG_I(LOG, "database %s", db);
  return 0;
}

void app_close(app_t *app) {
  payments_close(app->payments);
  memset(app, 0, sizeof(*app));
}

/* ---- GET /payments?order_id=N --------------------------------------------- */

static void on_list_payments(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  const char *sub = msvc_mw_jwt_subject(req);
  const char *param = msvc_http_req_query(req, "order_id");
  int64_t user, order;
  cJSON *doc, *list;

  if (sub == NULL || !ex_parse_id(sub, &user)) {
    msvc_http_res_error(res, 403, "PERMISSION_DENIED", "The token does not name a user.");
    return;
  }
  if (param == NULL) {
    ex_res_invalid(res, "order_id: is required");
    return;
  }
  if (!ex_parse_id(param, &order)) {
    ex_res_invalid(res, "order_id: must be a positive integer");
    return;
  }
  /* Another user's order reads as one without payments: ids of other
   * users' orders are not revealed. The read is one indexed row on the
   * loop's own connection, which never waits for a writer (WAL). */
  doc = cJSON_CreateObject();
  list = doc != NULL ? cJSON_AddArrayToObject(doc, "payments") : NULL;
  if (list == NULL || payments_list(app->payments, order, user, list) != 0) {
    cJSON_Delete(doc);
    ex_res_internal(res);
    return;
  }
  ex_res_json(res, 200, doc);
}

int app_routes(app_t *app, msvc_service_t *svc) {
  app->svc = svc;
  return msvc_service_route(svc, "GET", "/payments", on_list_payments, app,
                            MSVC_HTTP_ROUTE_AUTH);
}

/* ---- order.created -------------------------------------------------------- */

/* One order event on its way through the database. The message's strings
 * stay valid until it is settled, i.e. until decide_done(). */
typedef struct decision_s {
  app_t *app;
  ex_bus_t *bus; /* lives until the pool has run every done function */
  msvc_events_msg_t *msg;
  const char *event_id;
  payment_order_t order;
  msvc_events_header_t headers[2];
  size_t nheaders;
  const char *status;
  payments_rc_t rc;
} decision_t;

static void decide_work(void *data) {
  decision_t *d = data;
  unsigned delay = d->app->delay_ms;

  /* A stand-in for the payment provider's round trip (PAYMENT_DELAY_MS),
   * on a pool thread, never on the loop. */
  if (delay > 0)
    uv_sleep(delay);
  d->rc = payments_process(d->app->payments, d->event_id, &d->order, d->headers, d->nheaders,
                           &d->status);
  if (d->rc == PAYMENTS_DECIDED)
    ex_bus_kick(d->bus);
}

static void decide_done(void *data, int status) {
  decision_t *d = data;

  if (status != MSVC_OK || d->rc == PAYMENTS_ERROR) {
    msvc_events_nack(d->msg, 0, status != MSVC_OK ? "not processed" : "database error");
  } else {
    if (d->rc == PAYMENTS_DECIDED)
      MSVC_LOG_I(LOG, "order %lld: payment %s (event %s)", (long long)d->order.order_id,
                 d->status, d->event_id);
    ex_bus_processed(d->bus, d->msg);
  }
  free(d);
}

static void on_order_created(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  app_t *app = data;
  const msvc_event_t *ev = msvc_events_msg_event(msg);
  const char *names[2] = {"traceparent", "X-Request-Id"};
  char why[EX_MSG_MAX + 16];
  decision_t *d;
  size_t i;

  (void)sub;
  if (strcmp(ev->type, "order.created") != 0) {
    msvc_events_term(msg, "not an order.created event");
    return;
  }
  d = calloc(1, sizeof(*d));
  if (d == NULL) {
    msvc_events_nack(msg, 0, "out of memory");
    return;
  }
  if (!payment_order_parse(ev->data, ev->data_len, &d->order, why, sizeof(why))) {
    free(d);
    msvc_events_term(msg, why); /* can never succeed: dead-letter it */
    return;
  }
  d->app = app;
  d->bus = app->bus;
  d->msg = msg;
  d->event_id = ev->id;
  if (msvc_events_msg_deliveries(msg) > 1)
    MSVC_LOG_I(LOG, "order %lld: event %s redelivered (delivery %u)",
               (long long)d->order.order_id, ev->id, (unsigned)msvc_events_msg_deliveries(msg));
  /* The decision's event continues the order's trace. */
  for (i = 0; i < 2; i++) {
    const char *v = msvc_events_msg_header(msg, names[i]);

    if (v != NULL)
      d->headers[d->nheaders++] = (msvc_events_header_t){names[i], v};
  }
  if (msvc_work_submit(ex_bus_pool(app->bus), decide_work, decide_done, d, NULL) != MSVC_OK) {
    free(d);
    msvc_events_nack(msg, 1000, "busy");
  }
}

int app_events_open(app_t *app, char *err, size_t errlen) {
  ex_bus_opts_t o;

  if (msvc_service_events(app->svc) == NULL) {
    MSVC_LOG_W(LOG, "MSVC_EVENTS is not set: no order event will reach this service");
    return 0;
  }
  memset(&o, 0, sizeof(o));
  o.stream = "PAYMENTS";
  o.subjects = "payment.>";
  o.peer_stream = "ORDERS";
  o.peer_subjects = "order.>";
  o.subject = "order.created";
  o.durable = "payment-service";
  o.handler = on_order_created;
  o.data = app;
  return ex_bus_open(app->svc, payments_db(app->payments), &o, &app->bus, err, errlen) ==
                 MSVC_OK
             ? 0
             : -1;
}

void app_events_close(app_t *app) {
  ex_bus_t *bus = app->bus;

  app->bus = NULL;
  ex_bus_close(bus, NULL, NULL);
}
