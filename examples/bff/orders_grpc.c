/*
 * The bff's order lookups over gRPC (BFF_ORDERS_GRPC=1): ListOrders of
 * orders.v1.Orders on order-service, found by name like the REST call,
 * with the caller's token as `authorization` metadata. The streamed orders
 * are gathered into the JSON shape of the REST answer ({"orders":[...]}),
 * so the dashboards are built the same way either way.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/grpc.h>
#include <msvc/log.h>

#include "app.h"
#include "orders/v1/orders.pb-c.h"

#define LOG "bff"

typedef struct list_s {
  cJSON *doc;    /* {"orders":[...]} */
  cJSON *orders; /* its array */
  bool oom;
  bff_orders_fn done;
  void *data;
} list_t;

static void on_order(msvc_grpc_client_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__Order *o = (const void *)msg;
  list_t *l = data;
  cJSON *j = cJSON_CreateObject(), *items = j != NULL ? cJSON_AddArrayToObject(j, "items") : NULL;
  size_t i;
  bool ok = items != NULL;

  (void)call;
  ok = ok && cJSON_AddNumberToObject(j, "id", (double)o->id) != NULL &&
       cJSON_AddNumberToObject(j, "user_id", (double)o->user_id) != NULL &&
       cJSON_AddNumberToObject(j, "total_cents", (double)o->total_cents) != NULL &&
       cJSON_AddStringToObject(j, "status", o->status) != NULL &&
       cJSON_AddStringToObject(j, "created_at", o->created_at) != NULL;
  for (i = 0; ok && i < o->n_items; i++) {
    cJSON *it = cJSON_CreateObject();

    ok = it != NULL && cJSON_AddItemToArray(items, it) &&
         cJSON_AddStringToObject(it, "sku", o->items[i]->sku) != NULL &&
         cJSON_AddNumberToObject(it, "quantity", o->items[i]->quantity) != NULL &&
         cJSON_AddNumberToObject(it, "unit_price_cents",
                                 (double)o->items[i]->unit_price_cents) != NULL;
  }
  if (!ok || !cJSON_AddItemToArray(l->orders, j)) {
    cJSON_Delete(j);
    l->oom = true;
  }
}

static void on_done(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                    const ProtobufCMessage *reply, void *data) {
  list_t *l = data;

  (void)call;
  (void)reply;
  if (st->code != MSVC_GRPC_OK || l->oom) {
    MSVC_LOG_W(LOG, "order-service over gRPC: %s (%s): serving a degraded dashboard",
               msvc_grpc_code_name(st->code), l->oom ? "out of memory" : st->message);
    cJSON_Delete(l->doc);
    l->doc = NULL;
  }
  l->done(l->doc, l->data);
  free(l);
}

int bff_orders_grpc(app_t *app, msvc_http_req_t *req, int64_t user_id, uint32_t timeout_ms,
                    bff_orders_fn done, void *data) {
  Orders__V1__ListOrdersRequest lr = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;
  msvc_grpc_target_t target = {.svc = app->svc, .service = "order-service"};
  msvc_grpc_call_opts_t opts;
  msvc_grpc_metadata_t *md = NULL;
  const char *auth = msvc_http_req_header(req, "Authorization");
  list_t *l = calloc(1, sizeof(*l));
  int rc;

  if (l == NULL || (l->doc = cJSON_CreateObject()) == NULL ||
      (l->orders = cJSON_AddArrayToObject(l->doc, "orders")) == NULL) {
    if (l != NULL)
      cJSON_Delete(l->doc);
    free(l);
    return MSVC_ENOMEM;
  }
  l->done = done;
  l->data = data;
  lr.user_id = user_id;
  msvc_grpc_call_opts_init(&opts);
  opts.timeout_ms = timeout_ms;
  opts.parent = req;
  rc = msvc_grpc_metadata_new(&md);
  if (rc == MSVC_OK && auth != NULL)
    rc = msvc_grpc_metadata_add(md, "authorization", auth, strlen(auth));
  opts.metadata = md;
  if (rc == MSVC_OK)
    rc = msvc_grpc_invoke(&target, &orders__v1__orders__descriptor, "ListOrders", &lr.base,
                          &opts, on_order, on_done, l, NULL);
  msvc_grpc_metadata_free(md);
  if (rc != MSVC_OK) {
    cJSON_Delete(l->doc);
    free(l);
  }
  return rc;
}
