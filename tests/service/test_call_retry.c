/*
 * What a call may send again: a request that never left (refused
 * connection) goes to another instance whatever its method; a POST that
 * went out and was cut is not sent again unless it carries an
 * Idempotency-Key. Real sockets: plain servers, a closed port and a raw
 * listener that resets every request it reads.
 */
#include "call_helpers.h"

TestSuite(call_retry, .timeout = 60);

typedef struct post_run_s {
  harness_t *h;
  const char *key; /* Idempotency-Key value, or NULL */
  int total;
  int started;
  int done;
  int ok; /* 201 from /echo */
  int failed;
  int last_err;
  int last_status;
  int errs_reset;
} post_run_t;

static void post_start_one(post_run_t *p);

static void post_done(int err, const msvc_http_response_t *res, void *data) {
  post_run_t *p = data;
  int status = res != NULL ? msvc_http_response_status(res) : 0;

  p->done++;
  if (err == 0 && status == 201) {
    p->ok++;
  } else {
    p->failed++;
    p->last_err = err;
    p->last_status = status;
    if (err == MSVC_ECONNRESET)
      p->errs_reset++;
  }
  if (p->started < p->total)
    post_start_one(p);
}

static void post_start_one(post_run_t *p) {
  msvc_service_request_t req;
  msvc_http_header_t hd[2] = {{"Content-Type", "text/plain"}, {"Idempotency-Key", NULL}};
  char key[64];

  msvc_service_request_init(&req);
  req.method = "POST";
  req.target = "/echo/orders";
  req.body = "{}";
  req.body_len = 2;
  req.headers = hd;
  req.nheaders = 1;
  if (p->key != NULL) {
    snprintf(key, sizeof(key), "%s-%d", p->key, p->started);
    hd[1].value = key;
    req.nheaders = 2;
  }
  req.timeout_ms = 3000;
  req.on_done = post_done;
  req.data = p;
  p->started++;
  cr_assert_eq(msvc__caller_call(p->h->caller, p->h->svc, &req, NULL, NULL), MSVC_OK);
}

static bool post_finished(void *arg) {
  post_run_t *p = arg;
  return p->done == p->total;
}

/* total POSTs, concurrency at a time. */
static void post_run(post_run_t *p, harness_t *h, const char *key, int total,
                     int concurrency) {
  int i;

  memset(p, 0, sizeof(*p));
  p->h = h;
  p->key = key;
  p->total = total;
  for (i = 0; i < concurrency && p->started < total; i++)
    post_start_one(p);
  cr_assert(h_run_until(h, post_finished, p, 30000), "%d of %d POSTs done", p->done, total);
}

static double retries(harness_t *h) {
  return msvc_metrics_counter_value(h->caller->targets->retries);
}

Test(call_retry, refused_post_goes_to_the_other_instance) {
  harness_t h;
  post_run_t p;
  inst_t *dead;

  /* a short open period: the dead instance is probed again and again */
  h_init(&h, "calls-post-refused", MSVC_LB_ROUND_ROBIN, 200);
  h_add_instance(&h, 0);
  dead = h_add_instance(&h, 0);
  h_kill(dead);
  post_run(&p, &h, NULL, 400, 4);
  cr_log_info("POST with one of two instances refusing: %d of %d failed, %.0f retries",
              p.failed, p.total, retries(&h));
  cr_assert_eq(p.failed, 0, "%d POSTs failed (last %s, status %d)", p.failed,
               msvc_err_name(p.last_err), p.last_status);
  cr_assert_gt(h_requests(&h, "201"), 0);
  cr_assert_gt(retries(&h), 0, "the refused attempts were retried");
  h_close(&h);
}

Test(call_retry, post_cut_after_sending_is_not_retried) {
  harness_t h;
  post_run_t p;
  cutter_t cut;
  h_lease_t hl;

  h_init(&h, "calls-post-cut", MSVC_LB_ROUND_ROBIN, 60000);
  h_add_instance(&h, 0);
  h_cutter_start(&h.loop, &cut);
  h_register_port(&h, cut.port, &hl);
  post_run(&p, &h, NULL, 8, 1);
  cr_log_info("POST without a key: %d of %d cut, %d reached the cutter", p.failed, p.total,
              cut.requests);
  /* every POST the cutter read failed, and none went anywhere else */
  cr_assert_gt(cut.requests, 0);
  cr_assert_eq(p.failed, cut.requests);
  cr_assert_eq(p.errs_reset, p.failed, "last error %s", msvc_err_name(p.last_err));
  cr_assert_eq(p.ok, p.total - cut.requests);
  cr_assert_eq(retries(&h), 0);
  h_cutter_stop(&cut);
  h_close(&h);
}

Test(call_retry, post_with_idempotency_key_is_retried) {
  harness_t h;
  post_run_t p;
  cutter_t cut;
  h_lease_t hl;

  h_init(&h, "calls-post-key", MSVC_LB_ROUND_ROBIN, 60000);
  h_add_instance(&h, 0);
  h_cutter_start(&h.loop, &cut);
  h_register_port(&h, cut.port, &hl);
  post_run(&p, &h, "order", 8, 1);
  cr_log_info("POST with a key: %d of %d failed, %d cut and retried", p.failed, p.total,
              cut.requests);
  cr_assert_gt(cut.requests, 0);
  cr_assert_eq(p.failed, 0, "last %s, status %d", msvc_err_name(p.last_err), p.last_status);
  cr_assert_eq(retries(&h), cut.requests);
  h_cutter_stop(&cut);
  h_close(&h);
}

/* ---- the same through the reverse proxy, as a client of the gateway sees it -- */

static harness_t *proxy_h;

static void api(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_proxy_opts_t po;

  (void)res;
  (void)data;
  msvc_service_proxy_opts_init(&po);
  po.service = proxy_h->svc;
  po.strip_prefix = "/api";
  cr_assert_eq(msvc__caller_proxy(proxy_h->caller, req, &po), MSVC_OK);
}

typedef struct gw_run_s {
  harness_t *h;
  msvc_http_client_t *cl;
  int port;
  int total, started, done, ok, failed, last_status, last_err;
} gw_run_t;

static void gw_start_one(gw_run_t *g);

static void gw_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  gw_run_t *g = data;
  int status = res != NULL ? msvc_http_response_status(res) : 0;

  (void)call;
  g->done++;
  if (err == 0 && status == 201) {
    g->ok++;
  } else {
    g->failed++;
    g->last_status = status;
    g->last_err = err;
  }
  if (g->started < g->total)
    gw_start_one(g);
}

static void gw_start_one(gw_run_t *g) {
  msvc_http_request_t r;
  const msvc_http_header_t hd[] = {{"Content-Type", "application/json"}};

  msvc_http_request_init(&r);
  r.method = "POST";
  r.host = "127.0.0.1";
  r.port = g->port;
  r.target = "/api/echo/users";
  r.headers = hd;
  r.nheaders = 1;
  r.body = "{\"name\":\"x\"}";
  r.body_len = strlen(r.body);
  r.on_done = gw_done;
  r.data = g;
  g->started++;
  cr_assert_eq(msvc_http_client_request(g->cl, &r, NULL), MSVC_OK);
}

static bool gw_finished(void *arg) {
  gw_run_t *g = arg;
  return g->done == g->total;
}

Test(call_retry, post_through_the_proxy_with_one_instance_dead) {
  harness_t h;
  msvc_http_server_t *gw;
  gw_run_t g;
  inst_t *dead;
  int i;

  h_init(&h, "calls-post-gw", MSVC_LB_ROUND_ROBIN, 300);
  /* Breakers that never open: the balancer keeps sending every second
   * POST to the dead instance, as sparse traffic meets it after each open
   * period. Only the retry can save those. */
  h.caller->opts.breaker.minimum_calls = 100000;
  h.caller->opts.breaker.window_calls = 100000;
  proxy_h = &h;
  h_add_instance(&h, 0);
  dead = h_add_instance(&h, 0);
  h_kill(dead);
  cr_assert_eq(msvc_http_server_new(&h.loop, NULL, &gw), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(gw, "*", "/api/*", api, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(gw, "127.0.0.1", 0), MSVC_OK);
  memset(&g, 0, sizeof(g));
  g.h = &h;
  g.port = msvc_http_server_port(gw);
  g.total = 400;
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &g.cl), MSVC_OK);
  for (i = 0; i < 8; i++)
    gw_start_one(&g);
  cr_assert(h_run_until(&h, gw_finished, &g, 30000), "%d of %d done", g.done, g.total);
  cr_log_info("POST through the proxy, one of two instances dead: %d of %d failed "
              "(%.1f %%)",
              g.failed, g.total, 100.0 * g.failed / g.total);
  cr_assert_eq(g.failed, 0, "%d failed, last status %d, err %s", g.failed, g.last_status,
               msvc_err_name(g.last_err));
  msvc_http_client_close(g.cl, NULL, NULL);
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
}
