/*
 * The gRPC server that interop.py's Python client calls: orders.v1.Orders
 * with behaviours chosen by the request, and the health service, on a
 * libmsvc service (memory registry). Prints "PORT <n>" once ready; stops on
 * SIGTERM.
 *
 * GetOrder(id):
 *   404         NOT_FOUND with a non-ASCII message
 *   999         never answers (deadline and cancellation tests); the
 *               cancellation is counted
 *   998         answers with the number of cancellations seen (total_cents)
 *   1000 + k    an order whose item's sku is k KiB long (large replies)
 *   other       the order; metadata `x-echo` comes back as a header and
 *               `x-blob-bin` as a trailer
 * ListOrders(user_id, limit): `limit` orders; user 7 gets one every 20 ms
 * (until cancelled).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include <msvc/grpc.h>
#include <msvc/service.h>

#include "orders/v1/orders.pb-c.h"

static int cancellations;

static void fill_order(Orders__V1__Order *o, Orders__V1__Item *item, Orders__V1__Item **items,
                       int64_t id, char *sku) {
  orders__v1__order__init(o);
  orders__v1__item__init(item);
  item->sku = sku;
  item->quantity = 2;
  item->unit_price_cents = 150;
  items[0] = item;
  o->id = id;
  o->user_id = 7;
  o->n_items = 1;
  o->items = items;
  o->total_cents = 300;
  o->status = "created";
  o->created_at = "2026-01-01T00:00:00Z";
}

static void on_cancel(msvc_grpc_call_t *call, int code, void *data) {
  (void)data;
  (void)code;
  cancellations++;
  msvc_grpc_call_finish(call, MSVC_GRPC_CANCELLED, NULL);
}

static void on_get(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__GetOrderRequest *req = (const void *)msg;
  const msvc_grpc_metadata_t *md = msvc_grpc_call_metadata(call);
  Orders__V1__Order o;
  Orders__V1__Item item, *items[1];
  char sku[32], *big = NULL;
  const char *v;
  size_t len;

  (void)data;
  if (req->id == 404) {
    msvc_grpc_call_finish(call, MSVC_GRPC_NOT_FOUND, "order 404 not found (caf\xc3\xa9)");
    return;
  }
  if (req->id == 999) {
    msvc_grpc_call_on_cancel(call, on_cancel, NULL);
    return;
  }
  snprintf(sku, sizeof(sku), "sku-%lld", (long long)req->id);
  fill_order(&o, &item, items, req->id, sku);
  if (req->id == 998)
    o.total_cents = cancellations;
  if (req->id > 1000 && req->id < 1000 + 16384) {
    size_t n = (size_t)(req->id - 1000) * 1024;

    big = malloc(n + 1);
    if (big == NULL) {
      msvc_grpc_call_finish(call, MSVC_GRPC_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    memset(big, 'k', n);
    big[n] = '\0';
    item.sku = big;
  }
  if ((v = msvc_grpc_metadata_get(md, "x-echo", &len)) != NULL)
    msvc_grpc_call_header(call, "x-echo", v, len);
  if ((v = msvc_grpc_metadata_get(md, "x-blob-bin", &len)) != NULL)
    msvc_grpc_call_trailer(call, "x-blob-bin", v, len);
  msvc_grpc_call_reply(call, &o.base);
  free(big);
}

typedef struct stream_s {
  uv_timer_t timer;
  msvc_grpc_call_t *call;
  int sent;
  int limit;
} stream_t;

static void on_stream_closed(uv_handle_t *h) { free(h); }

static int send_one(msvc_grpc_call_t *call, int i) {
  Orders__V1__Order o;
  Orders__V1__Item item, *items[1];
  char sku[32];

  snprintf(sku, sizeof(sku), "sku-%d", i);
  fill_order(&o, &item, items, i + 1, sku);
  return msvc_grpc_call_send(call, &o.base);
}

static void on_stream_tick(uv_timer_t *t) {
  stream_t *s = (stream_t *)t;

  /* One message a tick, and none while 64 KiB wait for the client's
   * flow-control window. */
  if (s->sent < s->limit && msvc_grpc_call_pending(s->call) < 65536 &&
      send_one(s->call, s->sent) == MSVC_OK)
    s->sent++;
  if (s->sent >= s->limit) {
    msvc_grpc_call_finish(s->call, MSVC_GRPC_OK, NULL);
    uv_close((uv_handle_t *)t, on_stream_closed);
  }
}

static void on_stream_cancel(msvc_grpc_call_t *call, int code, void *data) {
  stream_t *s = data;

  (void)code;
  cancellations++;
  msvc_grpc_call_finish(call, MSVC_GRPC_CANCELLED, NULL);
  uv_close((uv_handle_t *)&s->timer, on_stream_closed);
}

static void on_list(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__ListOrdersRequest *req = (const void *)msg;
  uv_loop_t *loop = data;
  stream_t *s;
  int i;

  if (req->user_id != 7) {
    for (i = 0; i < req->limit; i++)
      if (send_one(call, i) != MSVC_OK)
        break;
    msvc_grpc_call_finish(call, MSVC_GRPC_OK, NULL);
    return;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    msvc_grpc_call_finish(call, MSVC_GRPC_RESOURCE_EXHAUSTED, NULL);
    return;
  }
  s->call = call;
  s->limit = req->limit;
  uv_timer_init(loop, &s->timer);
  uv_timer_start(&s->timer, on_stream_tick, 20, 20);
  msvc_grpc_call_on_cancel(call, on_stream_cancel, s);
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  (void)data;
  if (status != MSVC_OK) {
    fprintf(stderr, "start failed: %s\n", msvc_strerror(status));
    exit(1);
  }
  printf("PORT %d\n", msvc_service_port(svc));
  fflush(stdout);
}

int main(void) {
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  msvc_service_opts_t opts;
  msvc_http_server_opts_t sopts;
  msvc_grpc_server_t *grpc = NULL;
  char err[MSVC_ERRMSG_MAX];
  int rc;

  uv_loop_init(&loop);
  msvc_http_server_opts_init(&sopts);
  sopts.max_body_bytes = 8u << 20;
  msvc_service_opts_init(&opts);
  opts.registry_uri = "memory://";
  opts.server = &sopts;
  opts.on_ready = on_ready;
  opts.access_log = false;
  rc = msvc_service_new(&loop, "grpc-interop", &opts, &svc, err, sizeof(err));
  if (rc != MSVC_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  rc = msvc_grpc_server_new(NULL, &grpc);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_unary(grpc, &orders__v1__orders__descriptor, "GetOrder", on_get, NULL);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_stream(grpc, &orders__v1__orders__descriptor, "ListOrders", on_list,
                                 &loop);
  if (rc == MSVC_OK)
    rc = msvc_grpc_server_mount_service(grpc, svc);
  if (rc == MSVC_OK) {
    rc = msvc_service_run(svc); /* frees the service */
  } else {
    msvc_service_free(svc);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (rc != MSVC_OK)
    fprintf(stderr, "grpc interop server: %s\n", msvc_strerror(rc));
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc_grpc_server_free(grpc);
  uv_loop_close(&loop);
  return rc == MSVC_OK ? 0 : 1;
}
