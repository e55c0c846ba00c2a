/*
 * A service with its admin pages on, for the browser test: it calls a
 * service whose instances refuse connections (so breakers, balancers and
 * the registry page have something to show), limits /hello by client
 * address (the limits page), adds a page of its own through
 * msvc_admin_section_add(), prints "admin=PORT public=PORT" once
 * ready, and runs until SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <msvc/admin.h>
#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/service.h>

static void on_back(int err, const msvc_http_response_t *res, void *data) {
  msvc_http_req_t *req = data;

  (void)res;
  if (err != MSVC_OK) msvc_service_res_upstream_error(msvc_http_req_res(req), "back", err);
  else msvc_http_res_send(msvc_http_req_res(req), 200, "text/plain", "ok", 2);
}

static void on_go(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_request_t r;
  int rc;

  msvc_service_request_init(&r);
  r.target = "/x";
  r.parent = req;
  r.on_done = on_back;
  r.data = req;
  if ((rc = msvc_service_call(data, "back", &r, NULL)) != MSVC_OK)
    msvc_http_res_error(res, 500, "INTERNAL", msvc_strerror(rc));
}

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello", 5);
}

/* What another block's page would look like: its state as JSON. */
static int demo_section(struct msvc_service_s *svc, cJSON *out, void *data) {
  cJSON *rows = cJSON_AddArrayToObject(out, "limits"), *row;

  (void)data;
  cJSON_AddStringToObject(out, "service", msvc_service_name(svc));
  row = cJSON_CreateObject();
  cJSON_AddStringToObject(row, "route", "POST /login");
  cJSON_AddNumberToObject(row, "limit_per_s", 10);
  cJSON_AddStringToObject(row, "state", "ok");
  cJSON_AddStringToObject(row, "note", "<escaped & shown as text>");
  cJSON_AddItemToArray(rows, row);
  return MSVC_OK;
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  static const msvc_registry_meta_t meta[] = {{"zone", "a"}, {"version", "2"}};
  msvc_registry_instance_t in;
  int i;

  (void)data;
  if (status != MSVC_OK) return;
  for (i = 0; i < 2; i++) {
    msvc_registry_instance_init(&in);
    in.service = "back";
    in.address = "127.0.0.1";
    in.port = (uint16_t)(1 + i);
    in.weight = 100;
    in.metadata = meta;
    in.nmetadata = 2;
    (void)msvc_registry_register(msvc_service_registry(svc), &in, 60000, NULL, NULL, NULL);
  }
  printf("admin=%d public=%d\n", msvc_admin_port(svc), msvc_service_port(svc));
  fflush(stdout);
}

int main(void) {
  msvc_service_opts_t o;
  msvc_breaker_opts_t bo;
  msvc_mw_ratelimit_opts_t ro;
  msvc_mw_ratelimit_t *rl = NULL;
  msvc_service_t *svc;
  uv_loop_t loop;
  char err[256];
  int rc;

  uv_loop_init(&loop);
  msvc_breaker_opts_init(&bo);
  bo.window_calls = 4;
  bo.minimum_calls = 2;
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.breaker = &bo;
  o.access_log = false;
  o.admin = "127.0.0.1:0";
  o.on_ready = on_ready;
  msvc_mw_ratelimit_opts_init(&ro);
  ro.name = "hello-per-client";
  ro.route = "/hello";
  if (msvc_admin_section_add("example", "Example section", demo_section, NULL) != MSVC_OK ||
      msvc_mw_ratelimit_new(&ro, &rl) != MSVC_OK ||
      msvc_service_new(&loop, "pages-demo", &o, &svc, err, sizeof(err)) != MSVC_OK) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  msvc_service_use(svc, msvc_mw_ratelimit_middleware(rl));
  msvc_service_route(svc, "GET", "/go", on_go, svc, 0);
  msvc_service_route(svc, "GET", "/hello", on_hello, NULL, 0);
  rc = msvc_service_run(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  msvc_admin_section_remove("example");
  msvc_mw_ratelimit_free(rl);
  return rc == MSVC_OK ? 0 : 1;
}
