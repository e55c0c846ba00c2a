/*
 * The reverse proxy at its edges: HEAD answers keep the upstream's length,
 * and a client that leaves while its request is forwarded costs nothing
 * (the upstream call is cancelled, the proxy serves on). A gateway server
 * and the instances run on the test's loop.
 */
#include "call_helpers.h"

TestSuite(call_proxy, .timeout = 60);

static harness_t *gw_h;

static void api(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_proxy_opts_t po;

  (void)res;
  (void)data;
  msvc_service_proxy_opts_init(&po);
  po.service = gw_h->svc;
  po.strip_prefix = "/api";
  cr_assert_eq(msvc__caller_proxy(gw_h->caller, req, &po), MSVC_OK);
}

static msvc_http_server_t *gw_start(harness_t *h) {
  msvc_http_server_t *gw;

  gw_h = h;
  cr_assert_eq(msvc_http_server_new(&h->loop, NULL, &gw), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(gw, "*", "/api/*", api, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(gw, "127.0.0.1", 0), MSVC_OK);
  return gw;
}

typedef struct got_s {
  int calls, err, status;
  char clen[32], te[32];
  size_t body_len;
  uint64_t took;
} got_t;

static void got_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                     void *data) {
  got_t *g = data;
  const char *v;

  (void)call;
  g->calls++;
  g->err = err;
  if (res == NULL)
    return;
  g->status = msvc_http_response_status(res);
  msvc_http_response_body(res, &g->body_len);
  v = msvc_http_response_header(res, "Content-Length");
  snprintf(g->clen, sizeof(g->clen), "%s", v != NULL ? v : "-");
  v = msvc_http_response_header(res, "Transfer-Encoding");
  snprintf(g->te, sizeof(g->te), "%s", v != NULL ? v : "-");
}

static bool got_finished(void *arg) { return ((got_t *)arg)->calls > 0; }

static void fetch(harness_t *h, msvc_http_client_t *cl, int port, const char *method,
                  const char *target, got_t *g) {
  msvc_http_request_t r;
  uint64_t t0 = msvc_now_ms();

  memset(g, 0, sizeof(*g));
  msvc_http_request_init(&r);
  r.method = method;
  r.host = "127.0.0.1";
  r.port = port;
  r.target = target;
  r.timeouts.total_ms = 3000;
  r.on_done = got_done;
  r.data = g;
  cr_assert_eq(msvc_http_client_request(cl, &r, NULL), MSVC_OK);
  cr_assert(h_run_until(h, got_finished, g, 5000));
  g->took = msvc_now_ms() - t0;
  cr_assert_eq(g->err, MSVC_OK, "%s %s: %s", method, target, msvc_err_name(g->err));
}

Test(call_proxy, head_keeps_the_upstream_length) {
  harness_t h;
  msvc_http_server_t *gw;
  msvc_http_client_t *cl;
  got_t g;
  char want[16];
  int port;

  h_init(&h, "calls-head", MSVC_LB_ROUND_ROBIN, 1000);
  h_add_instance(&h, 0);
  gw = gw_start(&h);
  port = msvc_http_server_port(gw);
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &cl), MSVC_OK);
  snprintf(want, sizeof(want), "%zu", strlen(H_DOC));

  /* the length of what a GET gets (streamed back, so chunked), a HEAD
   * announces; and nobody waits for a body */
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_eq(g.body_len, strlen(H_DOC));
  fetch(&h, cl, port, "HEAD", "/api/doc", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(g.clen, want, "HEAD through the proxy said Content-Length %s", g.clen);
  cr_assert_eq(g.body_len, 0);
  cr_assert_lt(g.took, 1000, "the HEAD took %llu ms", (unsigned long long)g.took);
  /* the pooled connection is still in step: a GET after the HEAD */
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.body_len, strlen(H_DOC));
  cr_assert_eq(msvc_http_client_connections(cl, "127.0.0.1", port), 1);

  /* an upstream answer without a length stays without one */
  fetch(&h, cl, port, "HEAD", "/api/echo/x", &g);
  cr_assert_eq(g.status, 201);
  cr_assert_str_eq(g.clen, "-");
  cr_assert_str_eq(g.te, "chunked");
  cr_assert_eq(g.body_len, 0);
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.body_len, strlen(H_DOC));

  msvc_http_client_close(cl, NULL, NULL);
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
}
