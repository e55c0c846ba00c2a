/*
 * Calls by name over HTTP/2: the balancer still picks an endpoint per call
 * (both instances get calls), each call is a stream on that endpoint's
 * connection, and the call's context (X-Request-Id) reaches the instance.
 */
#include "call_helpers.h"
#include "service/service-core.h"

TestSuite(call_h2, .timeout = 60);

typedef struct h2calls_s {
  int done;
  int ok;
  int v2;
} h2calls_t;

static void h2_done(int err, const msvc_http_response_t *res, void *data) {
  h2calls_t *c = data;

  c->done++;
  if (err == MSVC_OK && msvc_http_response_status(res) == 200)
    c->ok++;
  if (res != NULL && msvc_http_response_version(res) == 20)
    c->v2++;
}

static bool all_done(void *arg) { return ((h2calls_t *)arg)->done >= 20; }

Test(call_h2, balanced_per_call_over_multiplexed_connections) {
  harness_t h;
  inst_t *a, *b;
  h2calls_t c;
  msvc_service_request_t req;
  msvc_http_header_t rid = {"X-Request-Id", "h2-call-1"};
  int i;

  h_init(&h, "calls-h2", MSVC_LB_ROUND_ROBIN, 1000);
  a = h_add_instance(&h, 0);
  b = h_add_instance(&h, 0);
  memset(&c, 0, sizeof(c));
  msvc_service_request_init(&req);
  req.target = "/hello";
  req.headers = &rid;
  req.nheaders = 1;
  req.http2 = true;
  req.on_done = h2_done;
  req.data = &c;
  for (i = 0; i < 20; i++)
    cr_assert_eq(msvc__caller_call(h.caller, "calls-h2", &req, NULL, NULL), MSVC_OK);
  cr_assert(h_run_until(&h, all_done, &c, 10000));
  cr_expect_eq(c.ok, 20);
  cr_expect_eq(c.v2, 20);
  cr_expect_gt(a->hits, 0);
  cr_expect_gt(b->hits, 0);
  cr_expect_eq(a->hits + b->hits, 20);
  cr_expect_str_eq(a->seen_rid, "h2-call-1");
  cr_expect_eq(msvc_http_server_connections(a->srv), 1);
  h_close(&h);
}

/* MSVC_HTTP2: 0 or 1 switch the listener's HTTP/2; anything else is refused
 * with a line naming the variable. */
Test(call_h2, msvc_http2_variable) {
  msvc__svc_config_t cfg;
  msvc_service_opts_t o;
  char err[256];

  msvc_service_opts_init(&o);
  unsetenv("MSVC_HTTP2");
  cr_assert_eq(msvc__svc_config_load(&cfg, "h2env", &o, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_expect(cfg.server.http2);
  msvc__svc_config_free(&cfg);
  setenv("MSVC_HTTP2", "0", 1);
  cr_assert_eq(msvc__svc_config_load(&cfg, "h2env", &o, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_expect(!cfg.server.http2);
  msvc__svc_config_free(&cfg);
  setenv("MSVC_HTTP2", "yes", 1);
  cr_expect_eq(msvc__svc_config_load(&cfg, "h2env", &o, err, sizeof(err)), MSVC_ECONFIG);
  cr_expect(strncmp(err, "MSVC_HTTP2", 10) == 0 && strstr(err, "0 or 1") != NULL, "%s", err);
  unsetenv("MSVC_HTTP2");
}
