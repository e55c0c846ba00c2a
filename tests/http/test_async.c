/* Asynchronous handlers, cancellation, middleware, drain and worker loops. */
#include "http/helpers.h"
#include "http/server.h"

static tsrv_t ts;
static msvc_http_req_t *pending;
static atomic_int got, cancelled, answered, drained, drain_timedout;
static int late_rc;
static char mw_log[256];
static atomic_int after_status, after_calls;
static char after_route[64];
static uint64_t after_dur;
static int route_marker = 42;

static void on_cancel(msvc_http_req_t *req, void *data) {
  (void)data;
  cr_assert_eq(req, pending);
  cr_assert(msvc_http_req_cancelled(req));
  atomic_store(&cancelled, 1);
}

static void h_async(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  pending = req;
  msvc_http_req_on_cancel(req, on_cancel, NULL);
  atomic_fetch_add(&got, 1);
}

static void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void h_secret(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *who = msvc_http_req_get(req, "who");
  (void)data;
  msvc_http_res_send(res, 200, NULL, who, strlen(who));
}

/* Runs on the loop thread: answer the request the handler kept. */
static void answer_now(tsrv_t *t) {
  (void)t;
  late_rc = msvc_http_res_send(msvc_http_req_res(pending), 200, NULL, "late", 4);
  pending = NULL;
  atomic_store(&answered, 1);
}

static int mw_a_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  strcat(mw_log, "a");
  msvc_http_req_set(req, "who", strdup("alice"), free);
  return MSVC_HTTP_NEXT;
}

static void mw_a_after(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t ns, void *data) {
  const char *route = msvc_http_req_route(req);
  (void)data;
  strcat(mw_log, "A");
  snprintf(after_route, sizeof(after_route), "%s", route != NULL ? route : "(none)");
  after_dur = ns;
  atomic_store(&after_status, msvc_http_res_status(res));
  atomic_fetch_add(&after_calls, 1);
}

static int mw_auth_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const msvc_http_route_opts_t *o = msvc_http_req_route_opts(req);
  (void)data;
  strcat(mw_log, "b");
  if (o != NULL && (o->flags & MSVC_HTTP_ROUTE_AUTH) != 0) {
    cr_assert_eq(o->data, &route_marker);
    if (msvc_http_req_header(req, "Authorization") == NULL) {
      msvc_http_res_error(res, 401, "UNAUTHENTICATED", "A bearer token is required.");
      return MSVC_HTTP_STOP;
    }
  }
  return MSVC_HTTP_NEXT;
}

static void mw_auth_after(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t ns, void *data) {
  (void)req;
  (void)res;
  (void)ns;
  (void)data;
  strcat(mw_log, "B");
}

static int mw_pause_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *route = msvc_http_req_route(req);
  (void)res;
  (void)data;
  if (route != NULL && strcmp(route, "/paused") == 0) {
    pending = req;
    atomic_fetch_add(&got, 1);
    return MSVC_HTTP_PAUSE;
  }
  return MSVC_HTTP_NEXT;
}

static void resume_now(tsrv_t *t) {
  (void)t;
  late_rc = msvc_http_req_resume(pending);
  pending = NULL;
  atomic_store(&answered, 1);
}

static void setup(msvc_http_server_t *srv) {
  msvc_http_route_opts_t auth = {sizeof(auth), MSVC_HTTP_ROUTE_AUTH, &route_marker};
  msvc_http_middleware_t a = {"a", mw_a_before, mw_a_after, NULL};
  msvc_http_middleware_t b = {"auth", mw_auth_before, mw_auth_after, NULL};
  msvc_http_middleware_t c = {"pause", mw_pause_before, NULL, NULL};

  cr_assert_eq(msvc_http_server_route(srv, "GET", "/async", h_async, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/secret", h_secret, NULL, &auth), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/paused", h_secret, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_use(srv, &a), MSVC_OK);
  cr_assert_eq(msvc_http_server_use(srv, &b), MSVC_OK);
  cr_assert_eq(msvc_http_server_use(srv, &c), MSVC_OK);
}

static void start(void) {
  pending = NULL;
  atomic_store(&got, 0);
  atomic_store(&cancelled, 0);
  atomic_store(&answered, 0);
  atomic_store(&drained, 0);
  atomic_store(&drain_timedout, 0);
  atomic_store(&after_calls, 0);
  late_rc = 12345;
  mw_log[0] = '\0';
  tsrv_start(&ts, NULL, setup);
}

static void stop(void) {
  tsrv_stop(&ts);
}

TestSuite(http_async, .init = start, .fini = stop, .timeout = 20);

Test(http_async, handler_answers_later) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  tsrv_call(&ts, answer_now);
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(r.body, "late");
  cr_assert(wait_for(&answered, 1, 5000));
  cr_assert_eq(late_rc, MSVC_OK);
  tresp_free(&r);
  tc_close(c);
  free(c);
}

Test(http_async, client_leaving_cancels_and_late_answer_is_safe) {
  tconn_t *c = malloc(sizeof(*c));

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  tc_close(c);
  cr_assert(wait_for(&cancelled, 1, 5000), "cancel hook not called");
  cr_assert(wait_for(&after_calls, 1, 5000));
  cr_assert_eq(atomic_load(&after_status), 499);
  tsrv_call(&ts, answer_now);
  cr_assert(wait_for(&answered, 1, 5000));
  cr_assert_eq(late_rc, MSVC_ECLOSED);
  free(c);
}

Test(http_async, pipelined_after_async_waits_its_turn) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  sleep_ms(20); /* give a wrongly ordered answer the chance to show up */
  tsrv_call(&ts, answer_now);
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(r.body, "late");
  tresp_free(&r);
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(r.body, "hello, world!");
  tresp_free(&r);
  tc_close(c);
  free(c);
}

Test(http_async, middleware_order_short_circuit_and_observation) {
  tresp_t r;
  char v[256];

  cr_assert_eq(tc_exchange(ts.port, "GET /secret HTTP/1.1\r\nHost: t\r\n\r\n", &r), 401);
  cr_assert(strstr(r.body, "\"code\":\"UNAUTHENTICATED\"") != NULL);
  cr_assert_str_eq(tresp_header(&r, "WWW-Authenticate", v, sizeof(v)),
                   "Bearer error=\"invalid_token\", error_description=\"A bearer token is required.\"");
  tresp_free(&r);
  cr_assert(wait_for(&after_calls, 1, 5000));
  cr_assert_str_eq(mw_log, "abBA", "before in order, after in reverse");
  cr_assert_eq(atomic_load(&after_status), 401);
  cr_assert_str_eq(after_route, "/secret");
  cr_assert_gt(after_dur, 0);

  mw_log[0] = '\0';
  cr_assert_eq(tc_exchange(ts.port, "GET /secret HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "alice", "a value attached by middleware reaches the handler");
  tresp_free(&r);
  cr_assert(wait_for(&after_calls, 2, 5000));
  cr_assert_str_eq(mw_log, "abBA");

  cr_assert_eq(tc_exchange(ts.port, "GET /none HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
  tresp_free(&r);
  cr_assert(wait_for(&after_calls, 3, 5000));
  cr_assert_eq(atomic_load(&after_status), 404);
  cr_assert_str_eq(after_route, "(none)", "no pattern for unmatched requests");
}

Test(http_async, middleware_pause_and_resume) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /paused HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  tsrv_call(&ts, resume_now);
  cr_assert(tc_read(c, &r, false));
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(r.body, "alice");
  cr_assert(wait_for(&answered, 1, 5000));
  cr_assert_eq(late_rc, MSVC_OK);
  tresp_free(&r);
  tc_close(c);
  free(c);
}

static void on_drained(void *data, bool timedout) {
  (void)data;
  atomic_store(&drain_timedout, timedout ? 1 : 0);
  atomic_store(&drained, 1);
}

static void drain_now(tsrv_t *t) {
  cr_assert_eq(msvc_http_server_drain(t->srv, 3000, on_drained, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_drain(t->srv, 3000, on_drained, NULL), MSVC_ESTATE);
}

static void drain_fast(tsrv_t *t) {
  cr_assert_eq(msvc_http_server_drain(t->srv, 100, on_drained, NULL), MSVC_OK);
}

Test(http_async, drain_finishes_in_flight_and_refuses_new_work) {
  tconn_t *busy = malloc(sizeof(*busy)), *idle = malloc(sizeof(*idle));
  tconn_t *partial = malloc(sizeof(*partial));
  tresp_t r;
  char v[32];

  tc_open(idle, ts.port);
  tc_sends(idle->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(idle, &r, false));
  tresp_free(&r);
  tc_open(partial, ts.port);
  tc_sends(partial->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n");
  tc_open(busy, ts.port);
  tc_sends(busy->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  while (msvc_http_server_connections(ts.srv) < 3)
    sleep_ms(1);

  tsrv_call(&ts, drain_now);
  cr_assert(tc_closed(idle), "idle connections are closed at once");

  tc_sends(partial->fd, "\r\n");
  cr_assert(tc_read(partial, &r, false));
  cr_assert_eq(r.status, 503);
  cr_assert(strstr(r.body, "SHUTTING_DOWN") != NULL);
  cr_assert_str_eq(tresp_header(&r, "Connection", v, sizeof(v)), "close");
  tresp_free(&r);
  cr_assert(tc_closed(partial));

  cr_assert_eq(atomic_load(&drained), 0, "a request is still in flight");
  tsrv_call(&ts, answer_now);
  cr_assert(tc_read(busy, &r, false));
  cr_assert_str_eq(r.body, "late");
  cr_assert_str_eq(tresp_header(&r, "Connection", v, sizeof(v)), "close");
  tresp_free(&r);
  cr_assert(tc_closed(busy));
  cr_assert(wait_for(&drained, 1, 5000));
  cr_assert_eq(atomic_load(&drain_timedout), 0);

  tc_close(idle);
  tc_close(partial);
  tc_close(busy);
  free(idle);
  free(partial);
  free(busy);
}

Test(http_async, drain_deadline_cuts_and_cancels) {
  tconn_t *c = malloc(sizeof(*c));

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  tsrv_call(&ts, drain_fast);
  cr_assert(wait_for(&drained, 1, 5000));
  cr_assert_eq(atomic_load(&drain_timedout), 1);
  cr_assert_eq(atomic_load(&cancelled), 1);
  cr_assert(tc_closed(c));
  tsrv_call(&ts, answer_now);
  cr_assert(wait_for(&answered, 1, 5000));
  cr_assert_eq(late_rc, MSVC_ECLOSED);
  tc_close(c);
  free(c);
}

Test(http_async, answer_after_server_closed) {
  tconn_t *c = malloc(sizeof(*c));
  msvc_http_req_t *req;

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(wait_for(&got, 1, 5000));
  req = pending;
  tsrv_stop(&ts);
  cr_assert_eq(atomic_load(&cancelled), 1);
  /* The loop is gone; the request object is still the handler's. */
  cr_assert_eq(msvc_http_res_send(msvc_http_req_res(req), 200, NULL, "x", 1), MSVC_ECLOSED);
  tc_close(c);
  free(c);
  /* fini stops again: restart a fresh server for it. */
  tsrv_start(&ts, NULL, setup);
}

/* ---- worker loops ------------------------------------------------------- */

static void h_who(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char b[16];
  int n = snprintf(b, sizeof(b), "%u", (unsigned)(uintptr_t)data);
  (void)req;
  msvc_http_res_send(res, 200, NULL, b, (size_t)n);
}

static int worker_setup(msvc_http_server_t *srv, unsigned index, void *data) {
  (void)data;
  return msvc_http_server_route(srv, "GET", "/who", h_who, (void *)(uintptr_t)index, NULL);
}



Test(http_workers, two_loops_both_serve, .timeout = 30) {
  msvc_http_workers_t *w;
  bool seen[2] = {false, false};
  int i, port;

  cr_assert_eq(msvc_http_workers_start(2, "127.0.0.1", 0, NULL, worker_setup, NULL, &w), MSVC_OK);
  port = msvc_http_workers_port(w);
  cr_assert_gt(port, 0);
  for (i = 0; i < 400 && !(seen[0] && seen[1]); i++) {
    tresp_t r;
    cr_assert_eq(tc_exchange(port, "GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r), 200);
    seen[atoi(r.body) & 1] = true;
    tresp_free(&r);
  }
  cr_assert(seen[0] && seen[1], "SO_REUSEPORT spread connections over both workers");
  cr_assert_eq(msvc__http_workers_stop_rc(w, 1000), 0, "a worker loop leaked a handle");
}

/* Setup attaches a timer to each worker's loop; only teardown can close it
 * before the worker closes its loop. */
static uv_timer_t worker_timers[2];
static atomic_int teardowns;

static int worker_setup_timer(msvc_http_server_t *srv, unsigned index, void *data) {
  int rc = uv_timer_init(msvc_http_server_loop(srv), &worker_timers[index]);

  if (rc != 0)
    return rc;
  if (data != NULL && index == 1)
    return MSVC_EINVAL; /* the second worker fails after attaching */
  return worker_setup(srv, index, NULL);
}

static void worker_teardown(uv_loop_t *loop, unsigned index, void *data) {
  (void)data;
  cr_assert_eq(worker_timers[index].loop, loop);
  uv_close((uv_handle_t *)&worker_timers[index], NULL);
  atomic_fetch_add(&teardowns, 1);
}

Test(http_workers, teardown_releases_what_setup_attached, .timeout = 30) {
  msvc_http_workers_t *w;
  tresp_t r;

  atomic_store(&teardowns, 0);
  cr_assert_eq(msvc_http_workers_start_ex(2, "127.0.0.1", 0, NULL, worker_setup_timer,
                                          worker_teardown, NULL, &w),
               MSVC_OK);
  cr_assert_eq(tc_exchange(msvc_http_workers_port(w),
                           "GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r),
               200);
  tresp_free(&r);
  cr_assert_eq(atomic_load(&teardowns), 0);
  cr_assert_eq(msvc__http_workers_stop_rc(w, 1000), 0, "a timer outlived its worker");
  cr_assert_eq(atomic_load(&teardowns), 2);
}

Test(http_workers, teardown_runs_when_a_setup_fails, .timeout = 30) {
  msvc_http_workers_t *w;

  atomic_store(&teardowns, 0);
  cr_assert_eq(msvc_http_workers_start_ex(2, "127.0.0.1", 0, NULL, worker_setup_timer,
                                          worker_teardown, &teardowns, &w),
               MSVC_EINVAL);
  cr_assert_null(w);
  cr_assert_eq(atomic_load(&teardowns), 2);
}

Test(http_workers, bad_arguments) {
  msvc_http_workers_t *w;

  cr_assert_eq(msvc_http_workers_start(0, "127.0.0.1", 0, NULL, NULL, NULL, &w), MSVC_EINVAL);
  cr_assert_eq(msvc_http_workers_start(2, "not-an-ip", 0, NULL, NULL, NULL, &w), MSVC_EINVAL);
  msvc_http_workers_stop(NULL, 0);
}
