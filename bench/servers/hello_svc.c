/*
 * hello_svc: GET /hello served by a whole libmsvc service object (request
 * id, trace context, request metrics, a registry in memory; access log off),
 * configured only through its environment. The tracing benchmark runs it
 * with tracing off and on (MSVC_OTLP_ENDPOINT, MSVC_TRACE_SAMPLE).
 * Benchmark use only.
 */
#include <stdio.h>
#include <string.h>

#include <msvc/service.h>

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

int main(void) {
  uv_loop_t loop;
  msvc_service_opts_t o;
  msvc_service_t *svc;
  char err[512];
  int rc;

  uv_loop_init(&loop);
  msvc_service_opts_init(&o);
  o.access_log = false;
  rc = msvc_service_new(&loop, "hello-svc", &o, &svc, err, sizeof(err));
  if (rc != MSVC_OK) {
    fprintf(stderr, "hello_svc: %s\n", err);
    return rc == MSVC_ECONFIG ? 2 : 1;
  }
  if (msvc_service_route(svc, "GET", "/hello", on_hello, NULL, 0) != MSVC_OK)
    return 1;
  rc = msvc_service_run(svc);
  uv_loop_close(&loop);
  return rc == MSVC_OK ? 0 : 1;
}
