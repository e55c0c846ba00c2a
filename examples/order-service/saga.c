/*
 * order-service's side of the order saga: it publishes order.created
 * through its outbox (see orders_create_pending()) and consumes the payment
 * decisions, moving each pending order to confirmed or cancelled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>

#include "app.h"
#include "ex.h"
#include "order.h"

#define LOG "order-service"

#ifndef EX_HAVE_EVENTS
int app_events_open(app_t *app, char *err, size_t errlen) {
  (void)app;
  if (ex_env("MSVC_EVENTS", NULL) != NULL) {
    snprintf(err, errlen, "MSVC_EVENTS: this build has no events block");
    return -1;
  }
  return 0;
}

void app_events_close(app_t *app) {
  (void)app;
}
#else

/* One payment event on its way through the database. The message's
 * strings stay valid until it is settled, i.e. until apply_done(). */
typedef struct apply_s {
  app_t *app;
  ex_bus_t *bus; /* lives until the pool has run every done function */
  msvc_events_msg_t *msg;
  const char *event_id;
  const char *type;
  int64_t order_id;
  char *reason;
  orders_apply_t out;
} apply_t;

static void apply_work(void *data) {
  apply_t *a = data;

  a->out = orders_apply_payment(a->app->orders, a->event_id, a->order_id, a->type, a->reason,
                                ex_outbox_now_ms());
}

static void apply_done(void *data, int status) {
  apply_t *a = data;
  char why[80];

  if (status != MSVC_OK) {
    msvc_events_nack(a->msg, 0, "not processed (shutting down or overloaded)");
  } else {
    switch (a->out) {
    case ORDERS_APPLY_MOVED:
      MSVC_LOG_I(LOG, "order %lld %s (%s, event %s)", (long long)a->order_id,
                 strcmp(a->type, "payment.authorized") == 0 ? ORDER_STATUS_CONFIRMED
                                                            : ORDER_STATUS_CANCELLED,
                 a->type, a->event_id);
      /* fall through */
    case ORDERS_APPLY_DUPLICATE:
    case ORDERS_APPLY_SETTLED:
      ex_bus_processed(a->bus, a->msg);
      break;
    case ORDERS_APPLY_UNKNOWN:
      snprintf(why, sizeof(why), "no order %lld", (long long)a->order_id);
      msvc_events_term(a->msg, why);
      break;
    case ORDERS_APPLY_INVALID:
      msvc_events_term(a->msg, "not a payment decision");
      break;
    default:
      msvc_events_nack(a->msg, 0, "database error");
      break;
    }
  }
  free(a->reason);
  free(a);
}

/* Reads {"order_id": N, "reason": "..."|null} from the event's data. */
static bool parse_payment(const msvc_event_t *ev, int64_t *order_id, char **reason) {
  cJSON *data = ev->data != NULL ? cJSON_ParseWithLength(ev->data, ev->data_len) : NULL;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(data, "reason");
  char msg[EX_MSG_MAX];
  bool ok = cJSON_IsObject(data) &&
            ex_json_int(data, "", "order_id", 1, EX_JSON_INT_MAX, order_id, msg, sizeof(msg));

  *reason = NULL;
  if (ok && cJSON_IsString(r) && r->valuestring != NULL) {
    *reason = strdup(r->valuestring);
    ok = *reason != NULL;
  }
  cJSON_Delete(data);
  return ok;
}

static void on_payment(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  app_t *app = data;
  const msvc_event_t *ev = msvc_events_msg_event(msg);
  apply_t *a;
  int rc;

  (void)sub;
  a = calloc(1, sizeof(*a));
  if (a == NULL) {
    msvc_events_nack(msg, 0, "out of memory");
    return;
  }
  a->app = app;
  a->bus = app->bus;
  a->msg = msg;
  a->event_id = ev->id;
  a->type = ev->type;
  if (!parse_payment(ev, &a->order_id, &a->reason)) {
    free(a);
    msvc_events_term(msg, "data is not {\"order_id\":N,\"status\",\"reason\"}");
    return;
  }
  rc = msvc_work_submit(ex_bus_pool(app->bus), apply_work, apply_done, a, NULL);
  if (rc != MSVC_OK) {
    free(a->reason);
    free(a);
    msvc_events_nack(msg, 1000, "busy");
  }
}

int app_events_open(app_t *app, char *err, size_t errlen) {
  ex_bus_opts_t o;

  if (msvc_service_events(app->svc) == NULL)
    return 0;
  memset(&o, 0, sizeof(o));
  o.stream = "ORDERS";
  o.subjects = "order.>";
  o.peer_stream = "PAYMENTS";
  o.peer_subjects = "payment.>";
  o.subject = "payment.*";
  o.durable = "order-service";
  o.handler = on_payment;
  o.data = app;
  return ex_bus_open(app->svc, orders_db(app->orders), &o, &app->bus, err, errlen) == MSVC_OK
             ? 0
             : -1;
}

void app_events_close(app_t *app) {
  ex_bus_t *bus = app->bus;

  app->bus = NULL;
  ex_bus_close(bus, NULL, NULL);
}
#endif
