/*
 * libmsvc's gRPC client against libmsvc's gRPC server on a private loop
 * (h2c on 127.0.0.1, port 0): what the interop tests cannot see from
 * outside, such as the handler's cancel callback on a deadline, health
 * changes during a Watch, registration errors, and no handle left behind.
 */
#include <string.h>

#include <criterion/criterion.h>
#include <protobuf-c/protobuf-c.h>

#include <msvc/grpc.h>
#include <msvc/http.h>
#include <msvc/http_client.h>

#include "grpc/health/v1/health.pb-c.h"
#include "orders/v1/orders.pb-c.h"

typedef struct fx_s {
  uv_loop_t loop;
  msvc_http_server_t *http;
  msvc_http_client_t *client;
  msvc_grpc_server_t *grpc;
  msvc_grpc_target_t to;
  msvc_grpc_serving_t health;
  int cancels;
  int cancel_code;
  int done;
  int code;
  int64_t reply_id;
  size_t reply_sku_len;
  int messages;
  int statuses[4];
  int nested_code;
  uint64_t nested_ms;
} fx_t;

static fx_t fx;

static void on_cancel(msvc_grpc_call_t *call, int code, void *data) {
  (void)data;
  fx.cancels++;
  fx.cancel_code = code;
  msvc_grpc_call_finish(call, code, NULL);
}

static void on_nested_done(msvc_grpc_client_call_t *c, const msvc_grpc_status_t *st,
                           const ProtobufCMessage *reply, void *data) {
  msvc_grpc_call_t *outer = data;

  (void)c;
  (void)reply;
  fx.nested_code = st->code;
  fx.nested_ms = uv_now(&fx.loop) - fx.nested_ms;
  msvc_grpc_call_finish(outer, st->code, "nested call failed");
}

static void on_outer_cancel(msvc_grpc_call_t *call, int code, void *data) {
  (void)call;
  (void)code;
  (void)data; /* the nested call's completion releases the call */
}

/* id 500: calls GetOrder(999) of this server while serving, with no
 * timeout of its own: it must inherit this call's deadline. */
static void nested(msvc_grpc_call_t *call) {
  Orders__V1__GetOrderRequest req = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  msvc_grpc_call_opts_t o;

  msvc_grpc_call_opts_init(&o);
  o.parent = msvc_grpc_call_http_req(call);
  req.id = 999;
  uv_update_time(&fx.loop);
  fx.nested_ms = uv_now(&fx.loop);
  msvc_grpc_call_on_cancel(call, on_outer_cancel, NULL);
  if (msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "GetOrder", &req.base, &o,
                       NULL, on_nested_done, call, NULL) != MSVC_OK)
    msvc_grpc_call_finish(call, MSVC_GRPC_INTERNAL, "invoke failed");
}

static void on_get(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__GetOrderRequest *req = (const void *)msg;
  Orders__V1__Order o = ORDERS__V1__ORDER__INIT;
  Orders__V1__Item item = ORDERS__V1__ITEM__INIT, *items[1] = {&item};
  static char sku[100001];

  (void)data;
  if (req->id == 500) {
    nested(call);
    return;
  }
  if (req->id == 999) { /* never answers */
    msvc_grpc_call_on_cancel(call, on_cancel, NULL);
    return;
  }
  memset(sku, 's', sizeof(sku) - 1);
  item.sku = sku;
  o.id = req->id;
  o.items = items;
  o.n_items = 1;
  msvc_grpc_call_reply(call, &o.base);
}

static msvc_grpc_serving_t health_of(const char *name, void *data) {
  (void)data;
  return name[0] == '\0' ? fx.health : MSVC_GRPC_SERVICE_UNKNOWN;
}

static void setup(void) {
  memset(&fx, 0, sizeof(fx));
  fx.health = MSVC_GRPC_NOT_SERVING;
  cr_assert_eq(uv_loop_init(&fx.loop), 0);
  cr_assert_eq(msvc_http_server_new(&fx.loop, NULL, &fx.http), MSVC_OK);
  cr_assert_eq(msvc_grpc_server_new(NULL, &fx.grpc), MSVC_OK);
  cr_assert_eq(msvc_grpc_server_unary(fx.grpc, &orders__v1__orders__descriptor, "GetOrder",
                                      on_get, NULL), MSVC_OK);
  cr_assert_eq(msvc_grpc_server_health(fx.grpc, health_of, NULL), MSVC_OK);
  cr_assert_eq(msvc_grpc_server_mount(fx.grpc, fx.http), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(fx.http, "127.0.0.1", 0), MSVC_OK);
  cr_assert_eq(msvc_http_client_new(&fx.loop, NULL, &fx.client), MSVC_OK);
  fx.to = (msvc_grpc_target_t){.client = fx.client, .loop = &fx.loop, .host = "127.0.0.1",
                               .port = msvc_http_server_port(fx.http)};
}

static void teardown(void) {
  msvc_http_client_close(fx.client, NULL, NULL);
  msvc_http_server_close(fx.http, NULL, NULL);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  msvc_grpc_server_free(fx.grpc);
  cr_assert_eq(uv_loop_close(&fx.loop), 0, "a handle leaked");
}

/* Runs the loop until n calls are done (bounded). */
static void run_until(int n) {
  int i;

  for (i = 0; i < 100000 && fx.done < n; i++)
    uv_run(&fx.loop, UV_RUN_ONCE);
  cr_assert_geq(fx.done, n, "calls did not finish");
}

static void on_done(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                    const ProtobufCMessage *reply, void *data) {
  const Orders__V1__Order *o = (const void *)reply;

  (void)call;
  (void)data;
  fx.code = st->code;
  if (o != NULL) {
    fx.reply_id = o->id;
    fx.reply_sku_len = o->n_items == 1 ? strlen(o->items[0]->sku) : 0;
  }
  fx.done++;
}

static int get(int64_t id, const msvc_grpc_call_opts_t *o) {
  Orders__V1__GetOrderRequest req = ORDERS__V1__GET_ORDER_REQUEST__INIT;

  req.id = id;
  return msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "GetOrder", &req.base, o,
                          NULL, on_done, NULL, NULL);
}

TestSuite(grpc_server, .init = setup, .fini = teardown, .timeout = 20);

Test(grpc_server, unary_with_gzip_both_ways) {
  msvc_grpc_call_opts_t o;

  msvc_grpc_call_opts_init(&o);
  o.gzip = true;
  cr_assert_eq(get(7, &o), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_OK);
  cr_assert_eq(fx.reply_id, 7);
  cr_assert_eq(fx.reply_sku_len, 100000);
}

Test(grpc_server, deadline_cancels_the_handler) {
  msvc_grpc_call_opts_t o;
  int i;

  msvc_grpc_call_opts_init(&o);
  o.timeout_ms = 100;
  cr_assert_eq(get(999, &o), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_DEADLINE_EXCEEDED);
  for (i = 0; i < 1000 && fx.cancels == 0; i++)
    uv_run(&fx.loop, UV_RUN_ONCE);
  cr_assert_eq(fx.cancels, 1, "the handler is told once");
  cr_assert(fx.cancel_code == MSVC_GRPC_DEADLINE_EXCEEDED ||
            fx.cancel_code == MSVC_GRPC_CANCELLED);
}

Test(grpc_server, deadline_propagates_to_nested_calls) {
  msvc_grpc_call_opts_t o;
  int i;

  msvc_grpc_call_opts_init(&o);
  o.timeout_ms = 200;
  cr_assert_eq(get(500, &o), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_DEADLINE_EXCEEDED);
  for (i = 0; i < 10000 && fx.nested_code == 0; i++)
    uv_run(&fx.loop, UV_RUN_ONCE);
  cr_assert_eq(fx.nested_code, MSVC_GRPC_DEADLINE_EXCEEDED);
  cr_assert_lt(fx.nested_ms, 5000, "inherited, not the 10 s default: %llu ms",
               (unsigned long long)fx.nested_ms);
}

Test(grpc_server, reply_over_client_limit) {
  msvc_grpc_call_opts_t o;

  msvc_grpc_call_opts_init(&o);
  o.max_recv = 1000;
  cr_assert_eq(get(8, &o), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_RESOURCE_EXHAUSTED);
}

Test(grpc_server, client_cancel) {
  Orders__V1__GetOrderRequest req = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  msvc_grpc_client_call_t *call = NULL;
  int i;

  req.id = 999;
  cr_assert_eq(msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "GetOrder", &req.base,
                                NULL, NULL, on_done, NULL, &call), MSVC_OK);
  for (i = 0; i < 200; i++)
    uv_run(&fx.loop, UV_RUN_NOWAIT);
  msvc_grpc_client_call_cancel(call);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_CANCELLED);
  for (i = 0; i < 1000 && fx.cancels == 0; i++)
    uv_run(&fx.loop, UV_RUN_ONCE);
  cr_assert_eq(fx.cancels, 1);
  cr_assert_eq(fx.cancel_code, MSVC_GRPC_CANCELLED);
}

static void on_health(msvc_grpc_client_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Grpc__Health__V1__HealthCheckResponse *r = (const void *)msg;

  (void)data;
  if (fx.messages < 4)
    fx.statuses[fx.messages] = r->status;
  fx.messages++;
  if (fx.messages == 1)
    fx.health = MSVC_GRPC_SERVING; /* the watch sees the change */
  else
    msvc_grpc_client_call_cancel(call);
}

Test(grpc_server, health_watch_follows_changes) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

  req.service = "";
  cr_assert_eq(msvc_grpc_invoke(&fx.to, &grpc__health__v1__health__descriptor, "Watch",
                                &req.base, NULL, on_health, on_done, NULL, NULL), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.messages, 2);
  cr_assert_eq(fx.statuses[0], MSVC_GRPC_NOT_SERVING);
  cr_assert_eq(fx.statuses[1], MSVC_GRPC_SERVING);
  cr_assert_eq(fx.code, MSVC_GRPC_CANCELLED);
  req.service = "no.Such";
  fx.done = 0;
  cr_assert_eq(msvc_grpc_invoke(&fx.to, &grpc__health__v1__health__descriptor, "Check",
                                &req.base, NULL, NULL, on_done, NULL, NULL), MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_NOT_FOUND);
}

static void on_list_done(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                         const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  (void)data;
  fx.code = st->code;
  fx.done++;
}

static void on_list_msg(msvc_grpc_client_call_t *call, const ProtobufCMessage *msg,
                        void *data) {
  (void)call;
  (void)msg;
  (void)data;
  fx.messages++;
}

Test(grpc_server, unregistered_method_is_unimplemented) {
  Orders__V1__ListOrdersRequest req = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;

  cr_assert_eq(msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "ListOrders",
                                &req.base, NULL, on_list_msg, on_list_done, NULL, NULL),
               MSVC_OK);
  run_until(1);
  cr_assert_eq(fx.code, MSVC_GRPC_UNIMPLEMENTED);
  cr_assert_eq(fx.messages, 0);
}

Test(grpc_server, bad_arguments) {
  Orders__V1__ListOrdersRequest wrong = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;
  msvc_grpc_target_t none = {0};

  cr_assert_eq(msvc_grpc_server_unary(fx.grpc, &orders__v1__orders__descriptor, "Nope", on_get,
                                      NULL), MSVC_ENOTFOUND);
  cr_assert_eq(msvc_grpc_server_unary(fx.grpc, NULL, "GetOrder", on_get, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "GetOrder",
                                &wrong.base, NULL, NULL, on_done, NULL, NULL), MSVC_EINVAL,
               "request of another type");
  cr_assert_eq(msvc_grpc_invoke(&none, &orders__v1__orders__descriptor, "GetOrder",
                                &wrong.base, NULL, NULL, on_done, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_grpc_invoke(&fx.to, &orders__v1__orders__descriptor, "Nope", &wrong.base,
                                NULL, NULL, on_done, NULL, NULL), MSVC_EINVAL);
}
