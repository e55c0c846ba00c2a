/*
 * grpc_unary: calls per second and p99 latency of one unary call
 * (GetOrder: id in, an order of one item out), libmsvc's gRPC client
 * against libmsvc's gRPC server over h2c, beside the same call as
 * HTTP/1.1 + JSON (POST with {"id":N}, the order as JSON back) through
 * libmsvc's HTTP client and server, in the same run.
 *
 * Client and server share one loop and one thread: the figures compare the
 * two protocols' work per call without the cost of waking a second core
 * (see DESIGN's note on this machine), with WINDOW calls in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include <msvc/grpc.h>
#include <msvc/http.h>
#include <msvc/http_client.h>

#include "bench.h"
#include "orders/v1/orders.pb-c.h"

#define WINDOW 16
#define MAX_SAMPLES 2000000

typedef struct run_s {
  uv_loop_t *loop;
  msvc_http_client_t *client;
  msvc_grpc_target_t target;
  int port;
  bool grpc;
  double t_end_ns;
  double *lat;
  size_t nlat;
  int inflight;
  long errors;
} run_t;

typedef struct slot_s {
  run_t *run;
  double t0;
} slot_t;

/* ---- server ------------------------------------------------------------------------------ */

static void on_grpc_get(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__GetOrderRequest *req = (const void *)msg;
  Orders__V1__Order o = ORDERS__V1__ORDER__INIT;
  Orders__V1__Item item = ORDERS__V1__ITEM__INIT, *items[1] = {&item};

  (void)data;
  item.sku = "book";
  item.quantity = 2;
  item.unit_price_cents = 1250;
  o.id = req->id;
  o.user_id = 7;
  o.items = items;
  o.n_items = 1;
  o.total_cents = 2500;
  o.status = "created";
  o.created_at = "2026-01-01T00:00:00Z";
  msvc_grpc_call_reply(call, &o.base);
}

static void on_json_get(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  cJSON *in = NULL, *o, *items, *item;

  (void)data;
  if (msvc_http_req_json(req, &in) != MSVC_OK)
    return;
  o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", cJSON_GetNumberValue(cJSON_GetObjectItem(in, "id")));
  cJSON_AddNumberToObject(o, "user_id", 7);
  items = cJSON_AddArrayToObject(o, "items");
  item = cJSON_CreateObject();
  cJSON_AddStringToObject(item, "sku", "book");
  cJSON_AddNumberToObject(item, "quantity", 2);
  cJSON_AddNumberToObject(item, "unit_price_cents", 1250);
  cJSON_AddItemToArray(items, item);
  cJSON_AddNumberToObject(o, "total_cents", 2500);
  cJSON_AddStringToObject(o, "status", "created");
  cJSON_AddStringToObject(o, "created_at", "2026-01-01T00:00:00Z");
  msvc_http_res_json(res, 200, o);
  cJSON_Delete(o);
  cJSON_Delete(in);
}

/* ---- client ------------------------------------------------------------------------------ */

static void issue(run_t *r);

static void completed(run_t *r, slot_t *s, bool ok) {
  double now = bench_now_ns();

  if (!ok)
    r->errors++;
  else if (r->nlat < MAX_SAMPLES)
    r->lat[r->nlat++] = (now - s->t0) / 1e6;
  free(s);
  r->inflight--;
  if (now < r->t_end_ns)
    issue(r);
}

static void on_grpc_done(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                         const ProtobufCMessage *reply, void *data) {
  slot_t *s = data;

  (void)call;
  completed(s->run, s, st->code == MSVC_GRPC_OK && reply != NULL);
}

static void on_json_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                         void *data) {
  slot_t *s = data;
  bool ok = false;

  (void)call;
  if (err == MSVC_OK && msvc_http_response_status(res) == 200) {
    size_t len;
    const char *body = msvc_http_response_body(res, &len);
    cJSON *doc = cJSON_ParseWithLength(body, len);

    ok = doc != NULL && cJSON_GetObjectItem(doc, "total_cents") != NULL;
    cJSON_Delete(doc);
  }
  completed(s->run, s, ok);
}

static void issue(run_t *r) {
  static int64_t next_id = 1;
  slot_t *s = malloc(sizeof(*s));
  int rc;

  if (s == NULL)
    return;
  s->run = r;
  s->t0 = bench_now_ns();
  r->inflight++;
  if (r->grpc) {
    Orders__V1__GetOrderRequest req = ORDERS__V1__GET_ORDER_REQUEST__INIT;
    msvc_grpc_call_opts_t o;

    msvc_grpc_call_opts_init(&o);
    o.timeout_ms = 5000;
    req.id = next_id++;
    rc = msvc_grpc_invoke(&r->target, &orders__v1__orders__descriptor, "GetOrder", &req.base,
                          &o, NULL, on_grpc_done, s, NULL);
  } else {
    static const msvc_http_header_t ct = {"Content-Type", "application/json"};
    msvc_http_request_t hr;
    char body[64];

    msvc_http_request_init(&hr);
    hr.method = "POST";
    hr.host = "127.0.0.1";
    hr.port = r->port;
    hr.target = "/orders/get";
    hr.headers = &ct;
    hr.nheaders = 1;
    hr.body_len = (size_t)snprintf(body, sizeof(body), "{\"id\":%lld}", (long long)next_id++);
    hr.body = body;
    hr.timeouts.total_ms = 5000;
    hr.on_done = on_json_done;
    hr.data = s;
    rc = msvc_http_client_request(r->client, &hr, NULL);
  }
  if (rc != MSVC_OK) {
    r->errors++;
    r->inflight--;
    free(s);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One timed run; ops/s and p99 in ms. */
static void one_run(run_t *r, double seconds, double *ops, double *p99) {
  double t0;
  int i;

  r->nlat = 0;
  r->errors = 0;
  /* warm-up: connections open, allocations settle */
  r->t_end_ns = bench_now_ns() + 0.2e9;
  for (i = 0; i < WINDOW; i++)
    issue(r);
  while (r->inflight > 0)
    uv_run(r->loop, UV_RUN_ONCE);
  r->nlat = 0;
  t0 = bench_now_ns();
  r->t_end_ns = t0 + seconds * 1e9;
  for (i = 0; i < WINDOW; i++)
    issue(r);
  while (r->inflight > 0)
    uv_run(r->loop, UV_RUN_ONCE);
  *ops = (double)r->nlat / ((bench_now_ns() - t0) / 1e9);
  qsort(r->lat, r->nlat, sizeof(double), cmp_double);
  *p99 = r->nlat > 0 ? r->lat[(size_t)((double)r->nlat * 0.99)] : 0;
  if (r->errors > 0)
    fprintf(stderr, "grpc_unary (%s): %ld failed calls\n", r->grpc ? "grpc" : "json",
            r->errors);
}

int main(void) {
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_http_client_t *client;
  msvc_grpc_server_t *grpc;
  run_t r;
  double ops[2][5], p99[2][5], seconds = bench_quick() ? 0.5 : 2.0;
  bench_stat_t so[2], sp[2];
  int runs = bench_runs(), i, k;

  uv_loop_init(&loop);
  if (msvc_http_server_new(&loop, NULL, &srv) != MSVC_OK ||
      msvc_grpc_server_new(NULL, &grpc) != MSVC_OK ||
      msvc_grpc_server_unary(grpc, &orders__v1__orders__descriptor, "GetOrder", on_grpc_get,
                             NULL) != MSVC_OK ||
      msvc_grpc_server_mount(grpc, srv) != MSVC_OK ||
      msvc_http_server_route(srv, "POST", "/orders/get", on_json_get, NULL, NULL) != MSVC_OK ||
      msvc_http_server_listen(srv, "127.0.0.1", 0) != MSVC_OK ||
      msvc_http_client_new(&loop, NULL, &client) != MSVC_OK) {
    fprintf(stderr, "grpc_unary: setup failed\n");
    return 1;
  }
  memset(&r, 0, sizeof(r));
  r.loop = &loop;
  r.client = client;
  r.port = msvc_http_server_port(srv);
  r.target = (msvc_grpc_target_t){
      .client = client, .loop = &loop, .host = "127.0.0.1", .port = r.port};
  r.lat = malloc(sizeof(double) * MAX_SAMPLES);
  if (r.lat == NULL)
    return 1;
  /* Alternate the two so that drift of the machine hits both alike. */
  for (i = 0; i < runs; i++)
    for (k = 0; k < 2; k++) {
      r.grpc = k == 0;
      one_run(&r, seconds, &ops[k][i], &p99[k][i]);
    }
  for (k = 0; k < 2; k++) {
    so[k] = bench_stats(ops[k], runs);
    sp[k] = bench_stats(p99[k], runs);
  }
  bench_emit("grpc_unary", "libmsvc", "ops_per_s", "ops/s", so[0], "libmsvc_http1_json",
             so[1].median > 0 ? so[0].median / so[1].median : 0);
  bench_emit("grpc_unary", "libmsvc", "p99_ms", "ms", sp[0], "libmsvc_http1_json",
             sp[1].median > 0 ? sp[0].median / sp[1].median : 0);
  bench_emit("grpc_unary", "libmsvc_http1_json", "ops_per_s", "ops/s", so[1], NULL, 0);
  bench_emit("grpc_unary", "libmsvc_http1_json", "p99_ms", "ms", sp[1], NULL, 0);
  free(r.lat);
  msvc_http_client_close(client, NULL, NULL);
  msvc_http_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc_grpc_server_free(grpc);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
