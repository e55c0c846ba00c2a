/*
 * hello_mw: the hello example's routes served with the default middleware
 * of a libmsvc service switched on (request id, trace context, request
 * metrics; access log off), which is what a real service pays per request.
 *
 *   GET /hello        -> "hello, world!"
 *   GET /hello/:name  -> {"message":"hello, <name>!"}
 *   GET /metrics      -> the metrics it recorded
 *
 *   hello_mw [--port N] [--delay-ms N]
 *
 * --delay-ms answers every request that many milliseconds late (without
 * blocking the loop): the slow backend of the load-balancing skew benchmark.
 * Benchmark use only.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/http.h>
#include <msvc/middleware.h>

static uint64_t delay_ms;

typedef struct late_s {
  uv_timer_t timer;
  msvc_http_req_t *req; /* NULL once the client went away */
} late_t;

static void send_hello(msvc_http_res_t *res) {
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void on_late_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_late(uv_timer_t *t) {
  late_t *l = t->data;

  if (l->req != NULL) {
    msvc_http_req_on_cancel(l->req, NULL, NULL);
    send_hello(msvc_http_req_res(l->req));
  }
  uv_close((uv_handle_t *)t, on_late_closed);
}

static void on_gone(msvc_http_req_t *req, void *data) {
  late_t *l = data;

  (void)req;
  l->req = NULL;
}

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  late_t *l;

  if (delay_ms == 0) {
    send_hello(res);
    return;
  }
  if ((l = calloc(1, sizeof(*l))) == NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory");
    return;
  }
  l->req = req;
  uv_timer_init((uv_loop_t *)data, &l->timer);
  l->timer.data = l;
  uv_timer_start(&l->timer, on_late, delay_ms, 0);
  msvc_http_req_on_cancel(req, on_gone, l);
}

static void on_hello_name(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char msg[512];
  cJSON *doc = cJSON_CreateObject();

  (void)data;
  snprintf(msg, sizeof(msg), "hello, %s!", msvc_http_req_param(req, "name"));
  if (doc == NULL || cJSON_AddStringToObject(doc, "message", msg) == NULL)
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory");
  else
    msvc_http_res_json(res, 200, doc);
  cJSON_Delete(doc);
}

typedef struct app_s {
  uv_signal_t sig;
  msvc_http_server_t *srv;
  msvc_mw_metrics_t *metrics;
} app_t;

static void on_server_closed(void *data) {
  app_t *app = data;

  msvc_mw_metrics_free(app->metrics);
  app->metrics = NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
  app_t *app = s->data;

  (void)signum;
  uv_close((uv_handle_t *)s, NULL);
  msvc_http_server_close(app->srv, on_server_closed, app);
}

int main(int argc, char **argv) {
  static app_t app;
  uv_loop_t loop;
  msvc_http_server_t *srv;
  int port = 0, i, rc;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc) {
      delay_ms = strtoull(argv[++i], NULL, 10);
    } else {
      fprintf(stderr, "usage: hello_mw [--port N] [--delay-ms N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  if ((rc = msvc_http_server_new(&loop, NULL, &srv)) != MSVC_OK ||
      (rc = msvc_mw_request_id_use(srv)) != MSVC_OK ||
      (rc = msvc_mw_trace_use(srv)) != MSVC_OK ||
      (rc = msvc_mw_metrics_new(srv, NULL, &app.metrics)) != MSVC_OK ||
      (rc = msvc_http_server_route(srv, "GET", "/hello", on_hello, &loop, NULL)) != MSVC_OK ||
      (rc = msvc_http_server_route(srv, "GET", "/hello/:name", on_hello_name, NULL,
                                   NULL)) != MSVC_OK ||
      (rc = msvc_mw_metrics_route(srv, "/metrics", NULL)) != MSVC_OK ||
      (rc = msvc_http_server_listen(srv, "127.0.0.1", port)) != MSVC_OK) {
    fprintf(stderr, "hello_mw: %s\n", msvc_strerror(rc));
    return 1;
  }
  printf("listening on http://127.0.0.1:%d\n", msvc_http_server_port(srv));
  fflush(stdout);
  app.srv = srv;
  app.sig.data = &app;
  uv_signal_init(&loop, &app.sig);
  uv_signal_start(&app.sig, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
