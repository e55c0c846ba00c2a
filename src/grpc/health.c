/*
 * grpc.health.v1.Health: Check answers with the status of a name; Watch
 * streams it, sending again when it changes. The status comes from a
 * function (for a service: its readiness), which has no change
 * notification, so each watch looks at it on a timer.
 */
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "../http/server.h"
#include "grpc-internal.h"
#include "grpc/health/v1/health.pb-c.h"

#define WATCH_POLL_MS 250

typedef struct health_s {
  msvc_grpc_health_fn fn;
  void *data;
} health_t;

typedef struct watch_s {
  uv_timer_t timer;
  msvc_grpc_call_t *call;
  char *service;
  int last;
} watch_t;

static msvc_grpc_serving_t status_of(msvc_grpc_server_t *srv, const char *name) {
  msvc_grpc_health_fn fn;
  void *data;

  msvc__grpc_server_health(srv, &fn, &data);
  return fn != NULL ? fn(name, data) : MSVC_GRPC_SERVING;
}

static void on_check(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
  Grpc__Health__V1__HealthCheckResponse res = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  msvc_grpc_serving_t st = status_of(data, req->service != NULL ? req->service : "");

  if (st == MSVC_GRPC_SERVICE_UNKNOWN) {
    msvc_grpc_call_finish(call, MSVC_GRPC_NOT_FOUND, "unknown service");
    return;
  }
  res.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
  msvc_grpc_call_reply(call, &res.base);
}

static void on_watch_closed(uv_handle_t *h) {
  watch_t *w = msvc__container_of((uv_timer_t *)h, watch_t, timer);

  msvc__free(w->service);
  msvc__free(w);
}

static void watch_end(watch_t *w) {
  msvc_grpc_call_finish(w->call, MSVC_GRPC_CANCELLED, NULL);
  uv_close((uv_handle_t *)&w->timer, on_watch_closed);
}

static void watch_send(watch_t *w) {
  Grpc__Health__V1__HealthCheckResponse res = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  msvc_grpc_server_t *srv = msvc_grpc_call_data(w->call);
  int st = (int)status_of(srv, w->service);

  if (st == w->last)
    return;
  w->last = st;
  res.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
  msvc_grpc_call_send(w->call, &res.base);
}

static void on_watch_timer(uv_timer_t *t) {
  watch_send(msvc__container_of(t, watch_t, timer));
}

static void on_watch_cancel(msvc_grpc_call_t *call, int code, void *data) {
  (void)call;
  (void)code;
  watch_end(data);
}

static void on_watch(msvc_grpc_call_t *call, const ProtobufCMessage *msg, void *data) {
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
  msvc_http_req_t *hreq = msvc_grpc_call_http_req(call);
  watch_t *w = msvc__calloc(1, sizeof(*w));

  if (w == NULL ||
      (w->service = msvc__strdup(req->service != NULL ? req->service : "")) == NULL) {
    msvc__free(w);
    msvc_grpc_call_finish(call, MSVC_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  w->call = call;
  w->last = -1;
  msvc_grpc_call_set_data(call, data);
  uv_timer_init(msvc_http_server_loop(hreq->srv), &w->timer);
  uv_timer_start(&w->timer, on_watch_timer, WATCH_POLL_MS, WATCH_POLL_MS);
  msvc_grpc_call_on_cancel(call, on_watch_cancel, w);
  watch_send(w);
}

int msvc_grpc_server_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn fn, void *data) {
  int r;

  if (srv == NULL || fn == NULL)
    return MSVC_EINVAL;
  r = msvc__grpc_server_set_health(srv, fn, data);
  if (r != MSVC_OK)
    return r;
  r = msvc_grpc_server_unary(srv, &grpc__health__v1__health__descriptor, "Check", on_check,
                             srv);
  if (r == MSVC_OK)
    r = msvc_grpc_server_stream(srv, &grpc__health__v1__health__descriptor, "Watch",
                                on_watch, srv);
  return r;
}
