/*
 * The calling side of shedding: a peer answering 429 or 503 OVERLOADED is
 * overloaded, not broken, so its breaker stays closed; any other 503 still
 * opens it. A 429 is retried after its Retry-After.
 */
#include "service/call_helpers.h"

TestSuite(call_shed, .timeout = 60);

static void on_overloaded(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;

  (void)req;
  in->hits++;
  msvc_http_res_header(res, "Retry-After", "0");
  msvc_http_res_error(res, 503, "OVERLOADED", "shed");
}

static void on_limited(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;

  (void)req;
  in->hits++;
  msvc_http_res_header(res, "Retry-After", "0");
  msvc_http_res_error(res, 429, "RATE_LIMITED", "slow down");
}

static void on_broken(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;

  (void)req;
  in->hits++;
  msvc_http_res_error(res, 503, "UNAVAILABLE", "broken");
}

typedef struct run_s {
  harness_t *h;
  const char *method;
  const char *target;
  int total, started, done, status_seen, breaker_open;
} run_t;

static void start_one(run_t *r);

static void on_done(int err, const msvc_http_response_t *res, void *data) {
  run_t *r = data;

  r->done++;
  if (err == MSVC_EBREAKER_OPEN || err == MSVC_EUPSTREAM_UNAVAILABLE) r->breaker_open++;
  if (res != NULL) r->status_seen = msvc_http_response_status(res);
  if (r->started < r->total) start_one(r);
}

static void start_one(run_t *r) {
  msvc_service_request_t req;

  msvc_service_request_init(&req);
  req.method = r->method;
  req.target = r->target;
  req.timeout_ms = 3000;
  req.on_done = on_done;
  req.data = r;
  r->started++;
  cr_assert_eq(msvc__caller_call(r->h->caller, r->h->svc, &req, NULL, NULL), MSVC_OK);
}

static bool finished(void *arg) {
  run_t *r = arg;
  return r->done == r->total;
}

static void run(run_t *r, harness_t *h, const char *method, const char *target, int total) {
  memset(r, 0, sizeof(*r));
  r->h = h;
  r->method = method;
  r->target = target;
  r->total = total;
  start_one(r);
  cr_assert(h_run_until(h, finished, r, 30000), "%d of %d calls done", r->done, total);
}

Test(call_shed, overloaded_peer_does_not_open_the_breaker) {
  harness_t h;
  inst_t *in;
  run_t r;

  h_init(&h, "busy", MSVC_LB_ROUND_ROBIN, 60000);
  in = h_add_instance(&h, 0);
  cr_assert_eq(msvc_http_server_route(in->srv, "POST", "/shed", on_overloaded, in, NULL),
               MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "POST", "/broken", on_broken, in, NULL),
               MSVC_OK);
  run(&r, &h, "POST", "/shed", 30);
  cr_assert_eq(in->hits, 30, "every call reached the peer (%d)", in->hits);
  cr_assert_eq(r.status_seen, 503);
  cr_assert_eq(h_breaker_state(&h, in), 0, "closed");
  /* The same peer failing for real opens it. */
  in->hits = 0;
  run(&r, &h, "POST", "/broken", 30);
  cr_assert_lt(in->hits, 30, "the breaker opened (%d calls reached the peer)", in->hits);
  cr_assert_gt(r.breaker_open, 0);
  h_close(&h);
}

Test(call_shed, rate_limited_get_is_retried_after_retry_after) {
  harness_t h;
  inst_t *in;
  run_t r;

  h_init(&h, "limited", MSVC_LB_ROUND_ROBIN, 60000);
  in = h_add_instance(&h, 0);
  cr_assert_eq(msvc_http_server_route(in->srv, "GET", "/limited", on_limited, in, NULL),
               MSVC_OK);
  run(&r, &h, "GET", "/limited", 1);
  cr_assert_eq(r.status_seen, 429);
  cr_assert_eq(in->hits, 3, "three attempts (the default), got %d", in->hits);
  cr_assert_eq(h_breaker_state(&h, in), 0);
  h_close(&h);
}
