/*
 * Calls through the public service API: a real service (with worker loops)
 * whose handlers call, fan out to and proxy to the instances of another
 * service, on the test's loop; the instances are plain servers registered
 * in the same memory registry.
 */
#include "call_helpers.h"

TestSuite(call_service, .timeout = 60);

static msvc_service_t *front;
static harness_t H;

typedef struct answer_s {
  msvc_http_res_t *res;
} answer_t;

static void via_done(int err, const msvc_http_response_t *r, void *data) {
  msvc_http_res_t *res = data;
  size_t len = 0;
  const char *body;

  if (err != 0) {
    msvc_service_res_upstream_error(res, H.svc, err);
    return;
  }
  body = msvc_http_response_body(r, &len);
  msvc_http_res_send(res, msvc_http_response_status(r), "text/plain", body, len);
}

static void via(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_request_t sr;

  (void)data;
  msvc_service_request_init(&sr);
  sr.target = "/hello";
  sr.parent = req;
  sr.on_done = via_done;
  sr.data = res;
  if (msvc_service_call(front, H.svc, &sr, NULL) != MSVC_OK)
    msvc_http_res_error(res, 500, "INTERNAL", "call refused");
}

static void fan_done(const msvc_service_result_t *r, size_t n, void *data) {
  msvc_http_res_t *res = data;
  char body[256];
  int len;

  len = snprintf(body, sizeof(body), "%zu:%d:%d:%s|%s", n, r[0].status, r[1].err,
                 r[0].body != NULL ? r[0].body : "", msvc_err_name(r[1].err));
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)len);
}

static void fan(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_fanout_t *fo;
  msvc_service_request_t sr;

  (void)data;
  cr_assert_eq(msvc_service_fanout_new(front, 500, fan_done, res, &fo), MSVC_OK);
  msvc_service_request_init(&sr);
  sr.target = "/hello";
  sr.parent = req;
  cr_assert_eq(msvc_service_fanout_add(fo, H.svc, &sr), 0);
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-svc-nobody", &sr), 1);
  cr_assert_eq(msvc_service_fanout_start(fo), MSVC_OK);
}

static void api(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_proxy_opts_t po;

  (void)data;
  msvc_service_proxy_opts_init(&po);
  po.service = H.svc;
  po.strip_prefix = "/api";
  if (msvc_service_proxy(front, req, &po) != MSVC_OK)
    msvc_http_res_error(res, 500, "INTERNAL", "proxy refused");
}

static int ready_status = 1;
static bool stopped;

static void on_ready(msvc_service_t *svc, int status, void *data) {
  (void)svc;
  (void)data;
  ready_status = status;
}

static void on_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  (void)data;
  stopped = true;
}

static bool is_ready(void *arg) { return *(int *)arg != 1; }
static bool is_stopped(void *arg) { return *(bool *)arg; }

typedef struct got_s {
  int calls, err, status;
  char body[1024];
} got_t;

static void got_done(msvc_http_call_t *c, int err, const msvc_http_response_t *res, void *data) {
  got_t *g = data;
  size_t len = 0;
  const char *b;

  (void)c;
  g->calls++;
  g->err = err;
  if (res != NULL) {
    g->status = msvc_http_response_status(res);
    b = msvc_http_response_body(res, &len);
    snprintf(g->body, sizeof(g->body), "%.*s", (int)len, b);
  }
}

static bool got_finished(void *arg) { return ((got_t *)arg)->calls > 0; }

static void get(msvc_http_client_t *cl, const char *target, got_t *g) {
  msvc_http_request_t r;

  memset(g, 0, sizeof(*g));
  msvc_http_request_init(&r);
  r.host = "127.0.0.1";
  r.port = msvc_service_port(front);
  r.target = target;
  r.on_done = got_done;
  r.data = g;
  cr_assert_eq(msvc_http_client_request(cl, &r, NULL), MSVC_OK);
  cr_assert(h_run_until(&H, got_finished, g, 10000), "no answer to %s", target);
  cr_assert_eq(g->err, MSVC_OK, "%s", msvc_err_name(g->err));
}

Test(call_service, call_fanout_and_proxy_through_a_service_with_workers) {
  msvc_service_opts_t o;
  msvc_http_client_t *cl;
  char err[256];
  got_t g;
  int i, hits;
  inst_t *a, *b;
  msvc_service_request_t sr;

  unsetenv("MSVC_SERVICE_NAME");
  unsetenv("MSVC_JWT_JWKS_URL");
  unsetenv("MSVC_JWT_JWKS_FILE");
  h_init(&H, "calls-svc-back", MSVC_LB_ROUND_ROBIN, 1000);
  a = h_add_instance(&H, 0);
  b = h_add_instance(&H, 0);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.port = 0;
  o.workers = 2;
  o.handle_signals = false;
  o.access_log = false;
  o.metrics = H.metrics;
  o.on_ready = on_ready;
  o.on_stopped = on_stopped;
  cr_assert_eq(msvc_service_new(&H.loop, "calls-svc-front", &o, &front, err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_eq(msvc_service_route(front, "GET", "/via", via, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(front, "GET", "/fan", fan, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(front, "*", "/api/*", api, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_start(front), MSVC_OK);
  cr_assert(h_run_until(&H, is_ready, &ready_status, 10000));
  cr_assert_eq(ready_status, MSVC_OK);
  cr_assert_eq(msvc_http_client_new(&H.loop, NULL, &cl), MSVC_OK);

  /* requests land on either worker; each calls from its own loop */
  for (i = 0; i < 40; i++) {
    get(cl, "/via", &g);
    cr_assert_eq(g.status, 200, "%d %s", g.status, g.body);
    cr_assert_eq(strncmp(g.body, "hello ", 6), 0, "%s", g.body);
  }
  hits = a->hits + b->hits;
  cr_assert_eq(hits, 40);
  cr_assert_gt(a->hits, 0);
  cr_assert_gt(b->hits, 0);

  get(cl, "/fan", &g);
  cr_assert_eq(g.status, 200);
  cr_assert(strstr(g.body, "2:200:") == g.body, "%s", g.body);
  cr_assert(strstr(g.body, "|ENO_ENDPOINTS") != NULL, "%s", g.body);

  get(cl, "/api/echo/z?k=v", &g);
  cr_assert_eq(g.status, 201, "%d %s", g.status, g.body);
  cr_assert(strstr(g.body, "GET /echo/z?k=v\n") != NULL, "%s", g.body);

  cr_assert_eq(h_requests(&H, "200"), 41);
  cr_assert_eq(h_requests(&H, "201"), 1);
  {
    const char *v[2] = {"calls-svc-nobody", "no_endpoints"};
    msvc_metrics_counter_t *c;
    cr_assert_eq(msvc_metrics_counter_get(H.caller->f_requests, v, 2, &c), MSVC_OK);
    cr_assert_eq(msvc_metrics_counter_value(c), 1);
  }

  msvc_http_client_close(cl, NULL, NULL);
  cr_assert_eq(msvc_service_stop(front, NULL, NULL), MSVC_OK);
  cr_assert(h_run_until(&H, is_stopped, &stopped, 20000), "service did not stop");
  msvc_service_request_init(&sr);
  sr.on_done = via_done;
  cr_assert_eq(msvc_service_call(front, H.svc, &sr, NULL), MSVC_ESTATE);
  msvc_service_free(front);
  h_close(&H);
}
