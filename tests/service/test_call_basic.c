/*
 * Calls by name, one behaviour at a time: argument checks, no endpoints,
 * 4xx answers, cancellation, timeouts turned into 504 with the request's
 * context propagated, fan-out, the reverse proxy, calls from a worker loop
 * and the JWK Set fetch hook.
 */
#include <msvc/jwks.h>

#include "call_helpers.h"

TestSuite(call_basic, .timeout = 60);

typedef struct one_s {
  int calls;
  int err;
  int status;
  char body[256];
  uint64_t t0, took;
} one_t;

static void one_done(int err, const msvc_http_response_t *res, void *data) {
  one_t *o = data;
  size_t len = 0;
  const char *b;

  o->calls++;
  o->err = err;
  o->took = msvc_now_ms() - o->t0;
  if (res != NULL) {
    o->status = msvc_http_response_status(res);
    b = msvc_http_response_body(res, &len);
    snprintf(o->body, sizeof(o->body), "%.*s", (int)len, b);
  }
}

static bool one_finished(void *arg) { return ((one_t *)arg)->calls > 0; }

static void call_one(harness_t *h, const char *svc, const char *target, one_t *o) {
  msvc_service_request_t req;

  memset(o, 0, sizeof(*o));
  msvc_service_request_init(&req);
  req.target = target;
  req.on_done = one_done;
  req.data = o;
  o->t0 = msvc_now_ms();
  cr_assert_eq(msvc__caller_call(h->caller, svc, &req, NULL, NULL), MSVC_OK);
  cr_assert_eq(o->calls, 0, "on_done ran inside the call");
  cr_assert(h_run_until(h, one_finished, o, 10000));
}

Test(call_basic, bad_arguments) {
  harness_t h;
  one_t o;
  msvc_service_request_t req;
  msvc_http_header_t bad = {"X-Bad", "a\r\nb"};

  h_init(&h, "calls-args", MSVC_LB_ROUND_ROBIN, 1000);
  memset(&o, 0, sizeof(o));
  msvc_service_request_init(&req);
  cr_assert_eq(msvc__caller_call(h.caller, "calls-args", &req, NULL, NULL), MSVC_EINVAL);
  req.on_done = one_done;
  req.data = &o;
  cr_assert_eq(msvc__caller_call(h.caller, "bad name", &req, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc__caller_call(h.caller, NULL, &req, NULL, NULL), MSVC_EINVAL);
  req.headers = &bad;
  req.nheaders = 1;
  cr_assert_eq(msvc__caller_call(h.caller, "calls-args", &req, NULL, NULL), MSVC_EINVAL);
  req.nheaders = 0;
  req.target = "no-slash";
  cr_assert_eq(msvc__caller_call(h.caller, "calls-args", &req, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_service_call(NULL, "x", &req, NULL), MSVC_EINVAL);
  uv_run(&h.loop, UV_RUN_NOWAIT);
  cr_assert_eq(o.calls, 0);
  h_close(&h);
}

Test(call_basic, dependency_failed_taxonomy) {
  cr_assert(msvc_service_dependency_failed(MSVC_OK, 500));
  cr_assert(msvc_service_dependency_failed(MSVC_OK, 503));
  cr_assert_not(msvc_service_dependency_failed(MSVC_OK, 404));
  cr_assert_not(msvc_service_dependency_failed(MSVC_OK, 429));
  cr_assert_not(msvc_service_dependency_failed(MSVC_OK, 200));
  cr_assert(msvc_service_dependency_failed(MSVC_ECONNREFUSED, 0));
  cr_assert(msvc_service_dependency_failed(MSVC_ECONNRESET, 0));
  cr_assert(msvc_service_dependency_failed(MSVC_ETIMEDOUT, 0));
  cr_assert(msvc_service_dependency_failed(MSVC_ENO_ENDPOINTS, 0));
  cr_assert(msvc_service_dependency_failed(MSVC_EBREAKER_OPEN, 0));
  cr_assert_not(msvc_service_dependency_failed(MSVC_ECANCELED, 0));
}

Test(call_basic, no_endpoints_at_once) {
  harness_t h;
  one_t o;

  h_init(&h, "calls-nobody", MSVC_LB_ROUND_ROBIN, 1000);
  call_one(&h, "calls-nobody", "/hello", &o);
  cr_assert_eq(o.err, MSVC_ENO_ENDPOINTS, "%s", msvc_err_name(o.err));
  cr_assert_lt(o.took, 1000);
  cr_assert_eq(h_requests(&h, "no_endpoints"), 1);
  /* the set is known now: the next one does not even wait for it */
  call_one(&h, "calls-nobody", "/hello", &o);
  cr_assert_eq(o.err, MSVC_ENO_ENDPOINTS);
  cr_assert_lt(o.took, 100);
  h_close(&h);
}

/* A call keeps short strings and a few headers inside itself; longer ones,
 * and more headers, must arrive just the same. */
Test(call_basic, long_strings_and_many_headers) {
  harness_t h;
  one_t o;
  inst_t *in;
  char target[600], rid[150], big[200];
  msvc_http_header_t hd[4];
  msvc_service_request_t req;

  h_init(&h, "calls-long", MSVC_LB_ROUND_ROBIN, 1000);
  in = h_add_instance(&h, 0);
  /* short: everything fits in the call */
  call_one(&h, "calls-long", "/hello", &o);
  cr_assert_eq(o.status, 200);
  cr_assert_eq(strlen(in->seen_rid), 32, "%s", in->seen_rid);
  /* a target longer than the call's own room */
  snprintf(target, sizeof(target), "/hello?q=%0*d", 500, 7);
  call_one(&h, "calls-long", target, &o);
  cr_assert_eq(o.status, 200);
  cr_assert_eq(in->hits, 2);
  /* four headers of the caller's (plus the context's) with long values */
  memset(rid, 'r', sizeof(rid) - 1);
  rid[sizeof(rid) - 1] = '\0';
  memset(big, 'v', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  hd[0] = (msvc_http_header_t){"X-Request-Id", rid};
  hd[1] = (msvc_http_header_t){"X-A", big};
  hd[2] = (msvc_http_header_t){"X-B", big};
  hd[3] = (msvc_http_header_t){"Authorization", "Bearer long-call"};
  memset(&o, 0, sizeof(o));
  msvc_service_request_init(&req);
  req.target = target;
  req.headers = hd;
  req.nheaders = 4;
  req.on_done = one_done;
  req.data = &o;
  cr_assert_eq(msvc__caller_call(h.caller, "calls-long", &req, NULL, NULL), MSVC_OK);
  cr_assert(h_run_until(&h, one_finished, &o, 10000));
  cr_assert_eq(o.status, 200, "%d %s", o.status, msvc_err_name(o.err));
  cr_assert_str_eq(in->seen_rid, rid);
  cr_assert_str_eq(in->seen_auth, "Bearer long-call");
  h_close(&h);
}

Test(call_basic, client_errors_are_not_failures) {
  harness_t h;
  load_t l;
  inst_t *in;

  h_init(&h, "calls-4xx", MSVC_LB_ROUND_ROBIN, 1000);
  in = h_add_instance(&h, 0);
  memset(&l, 0, sizeof(l));
  l.h = &h;
  l.target = "/nope";
  l.timeout_ms = 3000;
  l.concurrency = 4;
  l.total = 40;
  load_run(&l, 20000);
  cr_assert_eq(l.failed, 40);
  cr_assert_eq(l.last_err, MSVC_OK);
  cr_assert_eq(l.last_status, 404);
  cr_assert_eq(h_requests(&h, "404"), 40);
  cr_assert_eq(h_breaker_state(&h, in), 0);
  cr_assert_eq(h_transitions(&h, in, MSVC_BREAKER_OPEN), 0);
  cr_assert_eq(msvc_metrics_counter_value(h.caller->targets->retries), 0);
  h_close(&h);
}

static void cancel_done(int err, const msvc_http_response_t *res, void *data) {
  one_done(err, res, data);
}

Test(call_basic, cancel) {
  harness_t h;
  one_t o;
  msvc_service_request_t req;
  msvc_service_call_t *call;

  h_init(&h, "calls-cancel", MSVC_LB_ROUND_ROBIN, 1000);
  h_add_instance(&h, 300);
  memset(&o, 0, sizeof(o));
  msvc_service_request_init(&req);
  req.target = "/hello";
  req.on_done = cancel_done;
  req.data = &o;
  cr_assert_eq(msvc__caller_call(h.caller, "calls-cancel", &req, NULL, &call), MSVC_OK);
  msvc_service_call_cancel(call);
  cr_assert_eq(o.calls, 0);
  cr_assert(h_run_until(&h, one_finished, &o, 5000));
  cr_assert_eq(o.err, MSVC_ECANCELED);

  /* and once the attempt is on the wire */
  memset(&o, 0, sizeof(o));
  cr_assert_eq(msvc__caller_call(h.caller, "calls-cancel", &req, NULL, &call), MSVC_OK);
  uv_run(&h.loop, UV_RUN_NOWAIT);
  uv_run(&h.loop, UV_RUN_NOWAIT);
  msvc_service_call_cancel(call);
  cr_assert(h_run_until(&h, one_finished, &o, 5000));
  cr_assert_eq(o.err, MSVC_ECANCELED);
  cr_assert_eq(o.calls, 1);
  h_close(&h);
}

/* ---- a front service whose handler calls the instances ------------------------ */

typedef struct front_s {
  harness_t *h;
  msvc_http_server_t *srv;
  const char *callee;
  bool forward_auth;
  uint32_t timeout_ms;
} front_t;

typedef struct front_call_s {
  msvc_http_res_t *res;
  const char *callee;
} front_call_t;

static void front_done(int err, const msvc_http_response_t *r, void *data) {
  front_call_t *fc = data;

  if (err != 0)
    msvc_service_res_upstream_error(fc->res, fc->callee, err);
  else
    msvc_http_res_send(fc->res, msvc_http_response_status(r), "text/plain", "via", 3);
  free(fc);
}

static void front_handler(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  front_t *f = data;
  front_call_t *fc = calloc(1, sizeof(*fc));
  msvc_service_request_t sr;

  cr_assert_not_null(fc);
  fc->res = res;
  fc->callee = f->callee;
  msvc_service_request_init(&sr);
  sr.target = "/hello";
  sr.parent = req;
  sr.forward_auth = f->forward_auth;
  sr.timeout_ms = f->timeout_ms;
  sr.on_done = front_done;
  sr.data = fc;
  cr_assert_eq(msvc__caller_call(f->h->caller, f->callee, &sr, NULL, NULL), MSVC_OK);
}

typedef struct proxy_route_s {
  harness_t *h;
} proxy_route_t;

static void proxy_handler(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  proxy_route_t *p = data;
  msvc_service_proxy_opts_t po;

  msvc_service_proxy_opts_init(&po);
  po.service = p->h->svc;
  po.strip_prefix = "/api";
  cr_assert_eq(msvc__caller_proxy(p->h->caller, req, &po), MSVC_OK);
  (void)res;
}

static void front_start(front_t *f, harness_t *h, proxy_route_t *pr) {
  f->h = h;
  cr_assert_eq(msvc_http_server_new(&h->loop, NULL, &f->srv), MSVC_OK);
  cr_assert_eq(msvc_mw_request_id_use(f->srv), MSVC_OK);
  cr_assert_eq(msvc_mw_trace_use(f->srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(f->srv, "GET", "/front", front_handler, f, NULL),
               MSVC_OK);
  if (pr != NULL)
    cr_assert_eq(msvc_http_server_route(f->srv, "*", "/api/*", proxy_handler, pr, NULL),
                 MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(f->srv, "127.0.0.1", 0), MSVC_OK);
}

/* A plain client request to the front server. */
typedef struct got_s {
  int calls;
  int err;
  int status;
  char body[2048];
  char retry_after[16];
  char x_up[16];
  bool keep_alive_seen;
} got_t;

static void got_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                     void *data) {
  got_t *g = data;
  size_t len = 0;
  const char *v;

  (void)call;
  g->calls++;
  g->err = err;
  if (res == NULL)
    return;
  g->status = msvc_http_response_status(res);
  v = msvc_http_response_body(res, &len);
  snprintf(g->body, sizeof(g->body), "%.*s", (int)len, v);
  v = msvc_http_response_header(res, "Retry-After");
  snprintf(g->retry_after, sizeof(g->retry_after), "%s", v != NULL ? v : "");
  v = msvc_http_response_header(res, "X-Up");
  snprintf(g->x_up, sizeof(g->x_up), "%s", v != NULL ? v : "");
  g->keep_alive_seen = msvc_http_response_header(res, "Keep-Alive") != NULL;
}

static bool got_finished(void *arg) { return ((got_t *)arg)->calls > 0; }

static void fetch(harness_t *h, msvc_http_client_t *cl, int port, const char *method,
                  const char *target, const msvc_http_header_t *hd, size_t n,
                  const char *body, got_t *g) {
  msvc_http_request_t r;

  memset(g, 0, sizeof(*g));
  msvc_http_request_init(&r);
  r.method = method;
  r.host = "127.0.0.1";
  r.port = port;
  r.target = target;
  r.headers = hd;
  r.nheaders = n;
  r.body = body;
  r.body_len = body != NULL ? strlen(body) : 0;
  r.on_done = got_done;
  r.data = g;
  cr_assert_eq(msvc_http_client_request(cl, &r, NULL), MSVC_OK);
  cr_assert(h_run_until(h, got_finished, g, 10000));
  cr_assert_eq(g->err, MSVC_OK, "%s", msvc_err_name(g->err));
}

#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"

Test(call_basic, context_auth_and_upstream_errors) {
  harness_t h;
  front_t f;
  inst_t *in;
  msvc_http_client_t *cl;
  got_t g;
  const msvc_http_header_t hd[] = {
      {"X-Request-Id", "rid-test-1"},
      {"traceparent", "00-" TRACE_ID "-00f067aa0ba902b7-01"},
      {"Authorization", "Bearer abc"}};

  memset(&f, 0, sizeof(f));
  h_init(&h, "calls-ctx", MSVC_LB_ROUND_ROBIN, 1000);
  in = h_add_instance(&h, 0);
  front_start(&f, &h, NULL);
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &cl), MSVC_OK);

  /* answered: the id, a child of the trace, and no Authorization */
  f.callee = "calls-ctx";
  f.timeout_ms = 2000;
  fetch(&h, cl, msvc_http_server_port(f.srv), "GET", "/front", hd, 3, NULL, &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(in->seen_rid, "rid-test-1");
  cr_assert_eq(strncmp(in->seen_tp, "00-" TRACE_ID "-", 36), 0, "%s", in->seen_tp);
  cr_assert_neq(strcmp(in->seen_tp + 36, "00f067aa0ba902b7-01"), 0);
  cr_assert_str_eq(in->seen_auth, "");

  /* forwarded when asked; a slow answer becomes 504 UPSTREAM_TIMEOUT */
  f.forward_auth = true;
  f.timeout_ms = 100;
  in->delay_ms = 400;
  fetch(&h, cl, msvc_http_server_port(f.srv), "GET", "/front", hd, 3, NULL, &g);
  cr_assert_eq(g.status, 504);
  cr_assert(strstr(g.body, "UPSTREAM_TIMEOUT") != NULL, "%s", g.body);
  cr_assert_str_eq(in->seen_auth, "Bearer abc");
  cr_assert_geq(h_requests(&h, "timeout"), 1);

  /* nobody there: 503 UPSTREAM_UNAVAILABLE with Retry-After */
  f.callee = "calls-ctx-nobody";
  fetch(&h, cl, msvc_http_server_port(f.srv), "GET", "/front", hd, 3, NULL, &g);
  cr_assert_eq(g.status, 503);
  cr_assert(strstr(g.body, "UPSTREAM_UNAVAILABLE") != NULL, "%s", g.body);
  cr_assert_str_neq(g.retry_after, "");

  msvc_http_client_close(cl, NULL, NULL);
  msvc_http_server_close(f.srv, NULL, NULL);
  h_close(&h);
}

Test(call_basic, proxy_rewrites_and_streams) {
  harness_t h;
  front_t f;
  proxy_route_t pr;
  msvc_http_client_t *cl;
  got_t g;
  const msvc_http_header_t hd[] = {{"X-Custom", "1"},
                                   {"Connection", "keep-alive, X-Hop"},
                                   {"X-Hop", "secret"},
                                   {"Authorization", "Bearer t"},
                                   {"X-Forwarded-For", "192.0.2.7"},
                                   {"Content-Type", "text/plain"}};

  memset(&f, 0, sizeof(f));
  h_init(&h, "calls-proxy", MSVC_LB_ROUND_ROBIN, 1000);
  h_add_instance(&h, 0);
  pr.h = &h;
  front_start(&f, &h, &pr);
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &cl), MSVC_OK);
  fetch(&h, cl, msvc_http_server_port(f.srv), "POST", "/api/echo/x?q=1", hd, 6, "hi", &g);
  cr_assert_eq(g.status, 201, "%d %s", g.status, g.body);
  cr_assert_str_eq(g.x_up, "1");
  cr_assert_not(g.keep_alive_seen);
  cr_assert(strstr(g.body, "POST /echo/x?q=1\n") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "X-Forwarded-For=192.0.2.7, 127.0.0.1\n") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "X-Request-Id=-\n") == NULL, "%s", g.body);
  cr_assert(strstr(g.body, "traceparent=00-") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "Authorization=Bearer t\n") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "X-Hop=-\n") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "X-Custom=1\n") != NULL, "%s", g.body);
  cr_assert(strstr(g.body, "body=hi\n") != NULL, "%s", g.body);

  /* a prefix that is only a prefix of a segment is left alone */
  fetch(&h, cl, msvc_http_server_port(f.srv), "GET", "/api/echo", NULL, 0, NULL, &g);
  cr_assert(strstr(g.body, "GET /echo\n") != NULL, "%s", g.body);

  msvc_http_client_close(cl, NULL, NULL);
  msvc_http_server_close(f.srv, NULL, NULL);
  h_close(&h);
}

/* ---- fan-out ------------------------------------------------------------------ */

typedef struct fo_seen_s {
  int calls;
  size_t n;
  int err[3];
  int status[3];
  char body[3][64];
  char ctype[64];
  uint64_t t0, took;
} fo_seen_t;

static void fo_done(const msvc_service_result_t *r, size_t n, void *data) {
  fo_seen_t *s = data;
  size_t i;

  s->calls++;
  s->n = n;
  s->took = msvc_now_ms() - s->t0;
  for (i = 0; i < n && i < 3; i++) {
    s->err[i] = r[i].err;
    s->status[i] = r[i].status;
    snprintf(s->body[i], sizeof(s->body[i]), "%s", r[i].body != NULL ? r[i].body : "");
  }
  snprintf(s->ctype, sizeof(s->ctype), "%s", r[0].content_type ? r[0].content_type : "");
}

static bool fo_finished(void *arg) { return ((fo_seen_t *)arg)->calls > 0; }

Test(call_basic, fanout_with_failure_and_deadline) {
  harness_t h;
  msvc_service_fanout_t *fo;
  msvc_service_request_t req;
  fo_seen_t s;
  inst_t *in;
  char want[32];

  h_init(&h, "calls-fan", MSVC_LB_ROUND_ROBIN, 1000);
  in = h_add_instance(&h, 0);
  h_add_instance_as(&h, "calls-fan-slow", 2000);
  memset(&s, 0, sizeof(s));
  cr_assert_eq(msvc__caller_fanout_new(h.caller, 300, fo_done, &s, &fo), MSVC_OK);
  msvc_service_request_init(&req);
  req.target = "/hello";
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-fan", &req), 0);
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-fan-nobody", &req), 1);
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-fan-slow", &req), 2);
  cr_assert_eq(msvc_service_fanout_add(fo, "bad name", &req), MSVC_EINVAL);
  s.t0 = msvc_now_ms();
  cr_assert_eq(msvc_service_fanout_start(fo), MSVC_OK);
  cr_assert_eq(msvc_service_fanout_start(fo), MSVC_ESTATE);
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-fan", &req), MSVC_ESTATE);
  cr_assert_eq(s.calls, 0);
  cr_assert(h_run_until(&h, fo_finished, &s, 5000));
  cr_assert_eq(s.n, 3);
  cr_assert_eq(s.err[0], MSVC_OK);
  cr_assert_eq(s.status[0], 200);
  snprintf(want, sizeof(want), "hello %d", in->port);
  cr_assert_str_eq(s.body[0], want);
  cr_assert_str_eq(s.ctype, "text/plain");
  cr_assert_eq(s.err[1], MSVC_ENO_ENDPOINTS, "%s", msvc_err_name(s.err[1]));
  cr_assert_eq(s.err[2], MSVC_ETIMEDOUT, "%s", msvc_err_name(s.err[2]));
  cr_assert_lt(s.took, 1500);

  /* an empty fan-out completes too, and one never started is just freed */
  memset(&s, 0, sizeof(s));
  cr_assert_eq(msvc__caller_fanout_new(h.caller, 100, fo_done, &s, &fo), MSVC_OK);
  cr_assert_eq(msvc_service_fanout_start(fo), MSVC_OK);
  cr_assert(h_run_until(&h, fo_finished, &s, 5000));
  cr_assert_eq(s.n, 0);
  cr_assert_eq(msvc__caller_fanout_new(h.caller, 100, fo_done, &s, &fo), MSVC_OK);
  cr_assert_eq(msvc_service_fanout_add(fo, "calls-fan", &req), 0);
  msvc_service_fanout_free(fo);
  h_close(&h);
}

/* ---- a worker loop on its own thread ------------------------------------------------ */

typedef struct worker_s {
  harness_t *h;
  uv_loop_t loop;
  uv_thread_t thread;
  int started, done, ok;
  atomic_int finished;
  int loop_close;
} worker_t;

static void worker_start_one(worker_t *w);

static void worker_done(int err, const msvc_http_response_t *res, void *data) {
  worker_t *w = data;

  w->done++;
  if (err == 0 && msvc_http_response_status(res) == 200)
    w->ok++;
  if (w->started < 200)
    worker_start_one(w);
}

static void worker_start_one(worker_t *w) {
  msvc_service_request_t req;

  msvc_service_request_init(&req);
  req.target = "/hello";
  req.on_done = worker_done;
  req.data = w;
  w->started++;
  cr_assert_eq(msvc__caller_call(w->h->caller, "calls-worker", &req, NULL, NULL), MSVC_OK);
}

static void worker_main(void *arg) {
  worker_t *w = arg;
  int i;

  uv_loop_init(&w->loop);
  cr_assert_eq(msvc__caller_attach(w->h->caller, &w->loop), MSVC_OK);
  for (i = 0; i < 8; i++)
    worker_start_one(w);
  while (w->done < 200 && uv_run(&w->loop, UV_RUN_ONCE) != 0)
    ;
  msvc__caller_detach(w->h->caller, &w->loop);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  w->loop_close = uv_loop_close(&w->loop);
  atomic_store(&w->finished, 1);
}

static bool worker_finished(void *arg) { return atomic_load(&((worker_t *)arg)->finished); }

Test(call_basic, worker_loop_calls) {
  harness_t h;
  worker_t w;
  inst_t *a, *b;

  h_init(&h, "calls-worker", MSVC_LB_ROUND_ROBIN, 1000);
  a = h_add_instance(&h, 0);
  b = h_add_instance(&h, 0);
  memset(&w, 0, sizeof(w));
  w.h = &h;
  cr_assert_eq(uv_thread_create(&w.thread, worker_main, &w), 0);
  cr_assert(h_run_until(&h, worker_finished, &w, 20000), "worker did not finish");
  cr_assert_eq(uv_thread_join(&w.thread), 0);
  cr_assert_eq(w.ok, 200, "%d of 200 calls succeeded", w.ok);
  cr_assert_eq(w.loop_close, 0, "a handle of the worker loop leaked");
  cr_assert_eq(a->hits + b->hits, 200);
  cr_assert_gt(a->hits, 50);
  cr_assert_gt(b->hits, 50);
  cr_assert_eq(h_requests(&h, "200"), 200);
  h_close(&h);
}

/* ---- the JWK Set fetch hook ------------------------------------------------------------ */

typedef struct fetched_s {
  int calls;
  int err;
} fetched_t;

static void on_fetch(void *data, int err) {
  fetched_t *f = data;
  f->calls++;
  f->err = err;
}

static bool fetched(void *arg) { return ((fetched_t *)arg)->calls > 0; }

Test(call_basic, jwks_through_discovery) {
  harness_t h;
  msvc_jwks_opts_t jo;
  msvc_jwks_fetcher_t *fetcher;
  msvc_jwt_keyset_t *ks;
  fetched_t fe = {0, 0};
  msvc_mw_jwt_opts_t mo;
  char err[256];

  h_init(&h, "calls-jwks", MSVC_LB_ROUND_ROBIN, 1000);
  h_add_instance(&h, 0);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  msvc_jwks_opts_init(&jo);
  jo.url = "http://calls-jwks/.well-known/jwks.json";
  jo.keyset = ks;
  jo.on_fetch = on_fetch;
  jo.on_fetch_data = &fe;
  jo.get = msvc__caller_jwks_get;
  cr_assert_eq(msvc_jwks_fetcher_new(&h.loop, &jo, &fetcher), MSVC_EINVAL,
               "a fetch hook needs its cancel hook");
  jo.get_cancel = msvc__caller_jwks_cancel;
  jo.get_data = h.caller;
  cr_assert_eq(msvc_jwks_fetcher_new(&h.loop, &jo, &fetcher), MSVC_OK);
  cr_assert(h_run_until(&h, fetched, &fe, 5000));
  cr_assert_eq(fe.err, MSVC_OK, "%s", msvc_err_name(fe.err));
  cr_assert_eq(msvc_jwt_keyset_count(ks), 1);
  /* closing with a fetch in flight waits for its cancelled completion */
  cr_assert_eq(msvc_jwks_fetcher_refresh(fetcher), MSVC_OK);
  msvc_jwks_fetcher_close(fetcher, NULL, NULL);
  uv_run(&h.loop, UV_RUN_NOWAIT);

  /* the environment may then name a service */
  setenv("MSVC_JWT_JWKS_URL", "http://user-service/.well-known/jwks.json", 1);
  unsetenv("MSVC_JWT_JWKS_FILE");
  msvc_mw_jwt_opts_init(&mo);
  cr_assert_eq(msvc_mw_jwt_opts_env(&mo, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strstr(err, "MSVC_JWT_JWKS_URL") != NULL);
  mo.jwks_get = msvc__caller_jwks_get;
  mo.jwks_get_cancel = msvc__caller_jwks_cancel;
  mo.jwks_get_data = h.caller;
  cr_assert_eq(msvc_mw_jwt_opts_env(&mo, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_str_eq(mo.jwks_url, "http://user-service/.well-known/jwks.json");
  setenv("MSVC_JWT_JWKS_URL", "http://bad name/x", 1);
  cr_assert_eq(msvc_mw_jwt_opts_env(&mo, err, sizeof(err)), MSVC_EINVAL);
  unsetenv("MSVC_JWT_JWKS_URL");

  h_close(&h);
  msvc_jwt_keyset_free(ks);
}
