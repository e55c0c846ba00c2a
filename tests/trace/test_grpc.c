/*
 * gRPC calls traced over real sockets: a service serves orders.v1.Orders
 * and calls itself by name through gRPC while serving GET /go/...; the
 * spans it exports to a collector run by the test must show, per call, a
 * client span and a server span named `orders.v1.Orders/GetOrder`, linked
 * through the traceparent carried in the call's metadata, with the rpc.*
 * attributes and statuses of OpenTelemetry's conventions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/grpc.h>
#include <msvc/log.h>
#include <msvc/service.h>

#include "orders/v1/orders.pb-c.h"
#include "service/helpers.h"

/* ---- a collector: keeps every span posted ---------------------------------- */

static int col_fd, col_port;
static uv_thread_t col_thread;
static cJSON *col_spans; /* array, touched by the collector thread until joined */
static atomic_int col_stop;

static void col_serve(int cfd) {
  static char buf[1 << 21];
  size_t len = 0, need = 0;
  char *body = NULL;

  while (len < sizeof(buf) - 1) {
    ssize_t r = read(cfd, buf + len, sizeof(buf) - 1 - len);
    if (r <= 0) return;
    len += (size_t)r;
    buf[len] = '\0';
    if (body == NULL && (body = strstr(buf, "\r\n\r\n")) != NULL) {
      const char *cl = strcasestr(buf, "Content-Length:");
      body += 4;
      need = cl != NULL ? strtoul(cl + 15, NULL, 10) : 0;
    }
    if (body != NULL && len - (size_t)(body - buf) >= need) break;
  }
  if (body != NULL) {
    cJSON *j = cJSON_ParseWithLength(body, need);
    const cJSON *rs, *ss, *sp;

    cJSON_ArrayForEach(rs, cJSON_GetObjectItem(j, "resourceSpans"))
      cJSON_ArrayForEach(ss, cJSON_GetObjectItem(rs, "scopeSpans"))
        cJSON_ArrayForEach(sp, cJSON_GetObjectItem(ss, "spans"))
          cJSON_AddItemToArray(col_spans, cJSON_Duplicate(sp, true));
    cJSON_Delete(j);
  }
  (void)!write(cfd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
               58);
}

static void col_main(void *arg) {
  (void)arg;
  while (!atomic_load(&col_stop)) {
    int cfd = accept(col_fd, NULL, NULL);
    if (cfd < 0) continue;
    col_serve(cfd);
    close(cfd);
  }
}

static void col_start(void) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof(a);
  char url[64];

  col_spans = cJSON_CreateArray();
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  col_fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(bind(col_fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(col_fd, 16), 0);
  getsockname(col_fd, (struct sockaddr *)&a, &al);
  col_port = ntohs(a.sin_port);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/traces", col_port);
  setenv("MSVC_OTLP_ENDPOINT", url, 1);
  setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1); /* the collector reads JSON */
  cr_assert_eq(uv_thread_create(&col_thread, col_main, NULL), 0);
}

static void col_stop_join(void) {
  int fd;

  atomic_store(&col_stop, 1);
  fd = cl_connect(col_port); /* wakes accept() */
  if (fd >= 0) close(fd);
  uv_thread_join(&col_thread);
  close(col_fd);
}

/* ---- the service --------------------------------------------------------------- */

typedef struct harness_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  msvc_service_t *svc;
  msvc_grpc_server_t *grpc;
  msvc_registry_lease_t *lease;
  int port;
  atomic_int ready, loop_done;
} harness_t;

static harness_t H;

/* id 1: found; 404: NOT_FOUND (the caller's mistake); 500: INTERNAL. */
static void on_get(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Orders__V1__GetOrderRequest *req = (const Orders__V1__GetOrderRequest *)msg;
  Orders__V1__Order o = ORDERS__V1__ORDER__INIT;

  (void)data;
  if (req->id == 404) {
    msvc_grpc_call_finish(call, MSVC_GRPC_NOT_FOUND, "no such order");
  } else if (req->id == 500) {
    msvc_grpc_call_finish(call, MSVC_GRPC_INTERNAL, "the database went away");
  } else {
    o.id = req->id;
    msvc_grpc_call_reply(call, &o.base);
  }
}

static void on_reply(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                     const ProtobufCMessage *reply, void *data) {
  msvc_http_req_t *req = data;
  char body[16];
  int n = snprintf(body, sizeof(body), "%d", st->code);

  (void)call;
  (void)reply;
  msvc_http_res_send(msvc_http_req_res(req), 200, "text/plain", body, (size_t)n);
}

/* GET /go/<id>: calls GetOrder on "self" by name, as part of the request. */
static void on_go(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  Orders__V1__GetOrderRequest g = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  msvc_grpc_target_t to = {.svc = data, .service = "self"};
  msvc_grpc_call_opts_t o;
  int rc;

  g.id = atoi(msvc_http_req_param(req, "id"));
  msvc_grpc_call_opts_init(&o);
  o.parent = req;
  o.timeout_ms = 5000;
  rc = msvc_grpc_invoke(&to, &orders__v1__orders__descriptor, "GetOrder", &g.base, &o, NULL,
                        on_reply, req, NULL);
  if (rc != MSVC_OK) msvc_http_res_error(res, 500, "INTERNAL", msvc_strerror(rc));
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  harness_t *h = data;
  msvc_registry_instance_t in;

  cr_assert_eq(status, MSVC_OK);
  h->port = msvc_service_port(svc);
  msvc_registry_instance_init(&in);
  in.service = "self";
  in.address = "127.0.0.1";
  in.port = (uint16_t)h->port;
  cr_assert_eq(msvc_registry_register(msvc_service_registry(svc), &in, 60000, NULL, NULL,
                                      &h->lease),
               MSVC_OK);
  atomic_store(&h->ready, 1);
}

static void on_stopped(msvc_service_t *svc, void *data) {
  harness_t *h = data;

  (void)svc;
  uv_close((uv_handle_t *)&h->wake, NULL);
}

static void on_wake(uv_async_t *a) {
  harness_t *h = a->data;

  msvc_service_stop(h->svc, on_stopped, h);
}

static void loop_main(void *arg) {
  harness_t *h = arg;
  msvc_service_opts_t o;
  char err[256];

  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  o.access_log = false;
  o.on_ready = on_ready;
  o.data = h;
  cr_assert_eq(msvc_service_new(&h->loop, "traced", &o, &h->svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(msvc_grpc_server_new(NULL, &h->grpc), MSVC_OK);
  cr_assert_eq(msvc_grpc_server_unary(h->grpc, &orders__v1__orders__descriptor, "GetOrder",
                                      on_get, NULL),
               MSVC_OK);
  cr_assert_eq(msvc_grpc_server_mount_service(h->grpc, h->svc), MSVC_OK);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/go/:id", on_go, h->svc, 0), MSVC_OK);
  cr_assert_eq(msvc_service_start(h->svc), MSVC_OK);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  atomic_store(&h->loop_done, 1);
}

/* ---- checks ---------------------------------------------------------------------- */

static const char *attr(const cJSON *span, const char *key, char *out, size_t cap) {
  const cJSON *a;

  cJSON_ArrayForEach(a, cJSON_GetObjectItem(span, "attributes")) {
    const cJSON *v;
    if (strcmp(cJSON_GetObjectItem(a, "key")->valuestring, key) != 0) continue;
    v = cJSON_GetObjectItem(a, "value");
    if (cJSON_GetObjectItem(v, "stringValue") != NULL)
      snprintf(out, cap, "%s", cJSON_GetObjectItem(v, "stringValue")->valuestring);
    else if (cJSON_GetObjectItem(v, "intValue") != NULL)
      snprintf(out, cap, "%s", cJSON_GetObjectItem(v, "intValue")->valuestring);
    else
      snprintf(out, cap, "?");
    return out;
  }
  return NULL;
}

static int status_of(const cJSON *span) {
  return cJSON_GetObjectItem(cJSON_GetObjectItem(span, "status"), "code")->valueint;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* The span of that kind whose parent is parent_id (or any, with NULL)
 * and whose name is name. */
static const cJSON *find_span(const char *name, int kind, const char *trace_id,
                              const char *parent_id) {
  const cJSON *s;

  cJSON_ArrayForEach(s, col_spans) {
    if (strcmp(str(s, "name"), name) != 0 || cJSON_GetObjectItem(s, "kind")->valueint != kind)
      continue;
    if (trace_id != NULL && strcmp(str(s, "traceId"), trace_id) != 0) continue;
    if (parent_id != NULL && strcmp(str(s, "parentSpanId"), parent_id) != 0) continue;
    return s;
  }
  return NULL;
}

/* The chain of one GET /go/:id: its client span and the callee's server
 * span, linked and described alike. Returns the status code. */
static int check_call(const cJSON *http) {
  const cJSON *client, *server;
  char v[64], code[16];

  client = find_span("orders.v1.Orders/GetOrder", 3, str(http, "traceId"),
                     str(http, "spanId"));
  cr_assert_not_null(client, "no gRPC client span under GET /go/:id");
  server = find_span("orders.v1.Orders/GetOrder", 2, str(http, "traceId"),
                     str(client, "spanId"));
  cr_assert_not_null(server, "no gRPC server span under the client span");
  cr_assert_not_null(attr(client, "rpc.grpc.status_code", code, sizeof(code)));
  for (int i = 0; i < 2; i++) {
    const cJSON *s = i == 0 ? client : server;
    cr_assert_str_eq(attr(s, "rpc.system", v, sizeof(v)), "grpc");
    cr_assert_str_eq(attr(s, "rpc.service", v, sizeof(v)), "orders.v1.Orders");
    cr_assert_str_eq(attr(s, "rpc.method", v, sizeof(v)), "GetOrder");
    cr_assert_str_eq(attr(s, "rpc.grpc.status_code", v, sizeof(v)), code);
  }
  /* A client marks every code but OK an error; a server not NOT_FOUND. */
  cr_assert_eq(status_of(client), strcmp(code, "0") == 0 ? 0 : 2, "client, code %s", code);
  cr_assert_eq(status_of(server), strcmp(code, "13") == 0 ? 2 : 0, "server, code %s", code);
  return atoi(code);
}

Test(trace_grpc, spans_of_grpc_calls_follow_the_conventions, .timeout = 60) {
  resp_t r;

  memset(&H, 0, sizeof(H));
  msvc_log_set_level(MSVC_LOG_OFF);
  unsetenv("MSVC_ADMIN");
  unsetenv("MSVC_PORT");
  unsetenv("MSVC_WORKERS");
  setenv("MSVC_TRACE_SAMPLE", "1", 1);
  col_start();
  cr_assert_eq(uv_loop_init(&H.loop), 0);
  cr_assert_eq(uv_async_init(&H.loop, &H.wake, on_wake), 0);
  H.wake.data = &H;
  cr_assert_eq(uv_thread_create(&H.thread, loop_main, &H), 0);
  for (int i = 0; i < 2000 && !atomic_load(&H.ready); i++) usleep(5000);
  cr_assert(atomic_load(&H.ready));

  cr_assert_eq(cl_get(H.port, "/go/1", "", &r), 200, "%s", r.body);
  cr_assert_str_eq(r.body, "0");
  resp_free(&r);
  cr_assert_eq(cl_get(H.port, "/go/404", "", &r), 200);
  cr_assert_str_eq(r.body, "5");
  resp_free(&r);
  cr_assert_eq(cl_get(H.port, "/go/500", "", &r), 200);
  cr_assert_str_eq(r.body, "13");
  resp_free(&r);

  /* Stopping flushes the tracer: every span has reached the collector. */
  uv_async_send(&H.wake);
  for (int i = 0; i < 4000 && !atomic_load(&H.loop_done); i++) usleep(5000);
  cr_assert(atomic_load(&H.loop_done));
  uv_thread_join(&H.thread);
  cr_assert_eq(uv_loop_close(&H.loop), 0, "a handle leaked");
  msvc_grpc_server_free(H.grpc);
  msvc_service_free(H.svc);
  col_stop_join();
  unsetenv("MSVC_OTLP_ENDPOINT");
  unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");

  /* Every span of the three calls went out (they are sampled). */
  {
    const cJSON *sp;
    int seen = 0;

    cJSON_ArrayForEach(sp, col_spans) {
      if (strcmp(str(sp, "name"), "GET /go/:id") != 0) continue;
      switch (check_call(sp)) {
      case 0: seen |= 1; break;
      case 5: seen |= 2; break;
      case 13: seen |= 4; break;
      default: cr_assert_fail("unexpected code");
      }
    }
    cr_assert_eq(seen, 7, "calls seen: %d", seen);
  }
  cJSON_Delete(col_spans);
  unsetenv("MSVC_TRACE_SAMPLE");
}
