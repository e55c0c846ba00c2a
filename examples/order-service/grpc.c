/*
 * order-service over gRPC: orders.v1.Orders (proto/orders/v1/orders.proto)
 * beside the REST API, on the same port (HTTP/2), from the same store.
 * Every call needs the same bearer token as the REST routes, sent as
 * `authorization` metadata; the health service reports readiness.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/grpc.h>
#include <msvc/log.h>
#include <msvc/middleware.h>

#include "app.h"
#include "ex.h"
#include "orders/v1/orders.pb-c.h"

#define LOG "order-service"

/* An order of the store (JSON, as the REST API shows it) as a message; the
 * strings stay borrowed from doc. Frees nothing; see order_msg_free(). */
static bool order_msg(const cJSON *doc, Orders__V1__Order *o) {
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "items"), *it;
  size_t n = 0;

  orders__v1__order__init(o);
  o->id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "id"));
  o->user_id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "user_id"));
  o->total_cents =
      (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "total_cents"));
  o->status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status"));
  o->created_at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "created_at"));
  if (o->status == NULL)
    o->status = "";
  if (o->created_at == NULL)
    o->created_at = "";
  o->n_items = (size_t)cJSON_GetArraySize(items);
  if (o->n_items == 0)
    return true;
  o->items = calloc(o->n_items, sizeof(*o->items) + sizeof(Orders__V1__Item));
  if (o->items == NULL)
    return false;
  cJSON_ArrayForEach(it, items) {
    Orders__V1__Item *item = (Orders__V1__Item *)(o->items + o->n_items) + n;

    orders__v1__item__init(item);
    item->sku = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "sku"));
    if (item->sku == NULL)
      item->sku = "";
    item->quantity =
        (int32_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "quantity"));
    item->unit_price_cents = (int64_t)cJSON_GetNumberValue(
        cJSON_GetObjectItemCaseSensitive(it, "unit_price_cents"));
    o->items[n++] = item;
    if (n == o->n_items)
      break;
  }
  o->n_items = n;
  return true;
}

/* The caller's user id from the verified token, or 0 (answered). */
static int64_t caller(msvc_grpc_call_t *call) {
  const char *sub = msvc_mw_jwt_subject(msvc_grpc_call_http_req(call));
  int64_t id;

  if (sub != NULL && ex_parse_id(sub, &id))
    return id;
  msvc_grpc_call_finish(call, MSVC_GRPC_PERMISSION_DENIED, "The token does not name a user.");
  return 0;
}

static void on_get(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__GetOrderRequest *req = (const void *)msg;
  app_t *app = data;
  Orders__V1__Order o;
  cJSON *doc = NULL;
  int64_t user = caller(call);
  ex_store_rc_t rc;

  if (user == 0)
    return;
  rc = req->id > 0 ? orders_get(app->orders, req->id, user, &doc) : EX_STORE_NOT_FOUND;
  if (rc == EX_STORE_NOT_FOUND) {
    msvc_grpc_call_finish(call, MSVC_GRPC_NOT_FOUND, "The order was not found.");
  } else if (rc != EX_STORE_OK || !order_msg(doc, &o)) {
    msvc_grpc_call_finish(call, MSVC_GRPC_INTERNAL, "The order could not be read.");
  } else {
    msvc_grpc_call_reply(call, &o.base);
    free(o.items);
  }
  cJSON_Delete(doc);
}

static void on_list(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__ListOrdersRequest *req = (const void *)msg;
  app_t *app = data;
  cJSON *orders = cJSON_CreateArray(), *doc;
  int64_t user = caller(call);
  int sent = 0;

  if (user == 0) {
    cJSON_Delete(orders);
    return;
  }
  if (req->user_id != user) {
    msvc_grpc_call_finish(call, MSVC_GRPC_PERMISSION_DENIED, "You may only list your own orders.");
  } else if (orders == NULL || orders_list(app->orders, user, orders) != EX_STORE_OK) {
    msvc_grpc_call_finish(call, MSVC_GRPC_INTERNAL, "The orders could not be read.");
  } else {
    int code = MSVC_GRPC_OK;

    cJSON_ArrayForEach(doc, orders) {
      Orders__V1__Order o;
      int r;

      if (req->limit > 0 && sent == req->limit)
        break;
      if (!order_msg(doc, &o)) {
        code = MSVC_GRPC_INTERNAL;
        break;
      }
      r = msvc_grpc_call_send(call, &o.base);
      free(o.items);
      if (r != MSVC_OK) {
        code = msvc_grpc_code_from_error(r);
        break;
      }
      sent++;
    }
    msvc_grpc_call_finish(call, code, NULL);
  }
  cJSON_Delete(orders);
}

int app_grpc(app_t *app, msvc_service_t *svc) {
  msvc_grpc_server_opts_t opts;
  int rc;

  msvc_grpc_server_opts_init(&opts);
  opts.route_flags = MSVC_HTTP_ROUTE_AUTH;
  rc = msvc_grpc_server_new(&opts, &app->grpc);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_unary(app->grpc, &orders__v1__orders__descriptor, "GetOrder", on_get,
                                app);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_stream(app->grpc, &orders__v1__orders__descriptor, "ListOrders",
                                 on_list, app);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_mount_service(app->grpc, svc);
  if (rc == MSVC_OK)
    MSVC_LOG_I(LOG, "gRPC: orders.v1.Orders and grpc.health.v1.Health");
  return rc;
}

void app_grpc_free(app_t *app) {
  msvc_grpc_server_free(app->grpc);
  app->grpc = NULL;
}
