/* Requests handed to a worker pool, over real sockets: slow jobs beside fast
 * requests, clients that leave mid-job, a full queue, and a drain with
 * queued and running jobs. */
#include <msvc/work.h>

#include "http/helpers.h"
#include "http/server.h"

static tsrv_t ts;
static msvc_work_t *pool;
static unsigned pool_threads = 2, pool_queue = 8;
static atomic_int gate_open, started, submitted, done_ok, done_cancelled, done_closed;

static void wait_gate(void) {
  for (int i = 0; i < 10000 && !atomic_load(&gate_open); i++)
    sleep_ms(1);
}

static void job_gated(void *data) {
  (void)data;
  atomic_fetch_add(&started, 1);
  wait_gate();
}

static void job_sleep(void *data) {
  (void)data;
  atomic_fetch_add(&started, 1);
  sleep_ms(300);
}

static void on_job_done(msvc_http_req_t *req, void *data, int status) {
  (void)data;
  if (status == MSVC_OK) {
    atomic_fetch_add(&done_ok, 1);
    msvc_http_res_send(msvc_http_req_res(req), 200, "text/plain", "done", 4);
  } else if (status == MSVC_ECANCELED) {
    atomic_fetch_add(&done_cancelled, 1); /* the pool finishes it */
  } else if (status == MSVC_ECLOSED) {
    atomic_fetch_add(&done_closed, 1); /* the pool answers 503 */
  }
}

static void h_gated(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  atomic_fetch_add(&submitted, 1);
  msvc_work_submit_req(pool, req, 0, job_gated, on_job_done, NULL);
}

static void h_sleep(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  msvc_work_submit_req(pool, req, 0, job_sleep, on_job_done, NULL);
}

static void h_fast(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "fast", 4);
}

static void on_drain(void *data, uint32_t timeout_ms) {
  (void)data;
  msvc_work_drain(pool, timeout_ms);
}

static void setup(msvc_http_server_t *srv) {
  msvc_work_opts_t o;

  msvc_work_opts_init(&o);
  o.threads = pool_threads;
  o.queue = pool_queue;
  cr_assert_eq(msvc_work_new(msvc_http_server_loop(srv), &o, &pool), MSVC_OK);
  msvc__http_server_on_drain(srv, on_drain, NULL);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/gated", h_gated, NULL, NULL), 0);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/sleep", h_sleep, NULL, NULL), 0);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/fast", h_fast, NULL, NULL), 0);
}

static atomic_int closing;

static void close_pool(tsrv_t *t) {
  msvc_work_close(pool, NULL, NULL);
  tsrv__stop(t);
  atomic_store(&closing, 1);
}

/* Closes the pool and the server, then lets gated jobs finish: a job still
 * queued at the close is refused, never started. */
static void stop_all(void) {
  atomic_store(&closing, 0);
  tsrv_call(&ts, close_pool);
  for (int i = 0; i < 5000 && !atomic_load(&closing); i++)
    sleep_ms(1);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_thread_join(&ts.thread), 0);
  cr_assert_eq(uv_loop_close(&ts.loop), 0, "a handle leaked");
}

static void reset(void) {
  pool_threads = 2;
  pool_queue = 8;
  atomic_store(&gate_open, 0);
  atomic_store(&started, 0);
  atomic_store(&submitted, 0);
  atomic_store(&done_ok, 0);
  atomic_store(&done_cancelled, 0);
  atomic_store(&done_closed, 0);
}

TestSuite(work_req, .init = reset, .timeout = 30);

static const char GET_GATED[] = "GET /gated HTTP/1.1\r\nHost: t\r\n\r\n";
static const char GET_SLEEP[] = "GET /sleep HTTP/1.1\r\nHost: t\r\n\r\n";
static const char GET_FAST[] = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";

/* Waits until n requests reached the handler (the last one is queued). */
static void wait_submitted(int n) {
  for (int i = 0; i < 5000 && atomic_load(&submitted) < n; i++)
    sleep_ms(1);
  cr_assert_geq(atomic_load(&submitted), n, "requests did not reach the handler");
}

static void wait_started(int n) {
  for (int i = 0; i < 5000 && atomic_load(&started) < n; i++)
    sleep_ms(1);
  cr_assert_geq(atomic_load(&started), n, "jobs did not start");
}

Test(work_req, slow_jobs_leave_fast_requests_alone) {
  tconn_t *slow = calloc(4, sizeof(*slow)), *fast = calloc(1, sizeof(*fast));
  tresp_t r;
  uint64_t worst = 0;

  memset(&r, 0, sizeof(r));
  tsrv_start(&ts, NULL, setup);
  for (int i = 0; i < 4; i++) {
    tc_open(&slow[i], ts.port);
    tc_sends(slow[i].fd, GET_SLEEP);
  }
  wait_started(2); /* both threads busy for 300 ms, two more queued */
  tc_open(fast, ts.port);
  for (int i = 0; i < 50; i++) {
    uint64_t t0 = uv_hrtime();
    tc_sends(fast->fd, GET_FAST);
    cr_assert(tc_read(fast, &r, false));
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
    if (uv_hrtime() - t0 > worst)
      worst = uv_hrtime() - t0;
  }
  cr_assert_lt(worst, 100000000u, "a fast request waited %.1f ms", (double)worst / 1e6);
  for (int i = 0; i < 4; i++) {
    cr_assert(tc_read(&slow[i], &r, false));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 4);
    tresp_free(&r);
    tc_close(&slow[i]);
  }
  tc_close(fast);
  cr_assert_eq(atomic_load(&done_ok), 4);
  stop_all();
  free(slow);
  free(fast);
}

Test(work_req, client_leaving_cancels_queued_and_drops_running) {
  tconn_t *c = calloc(3, sizeof(*c));
  tresp_t r;

  memset(&r, 0, sizeof(r));
  pool_threads = 1;
  tsrv_start(&ts, NULL, setup);
  tc_open(&c[0], ts.port);
  tc_sends(c[0].fd, GET_GATED);
  wait_started(1);
  tc_open(&c[1], ts.port);
  tc_sends(c[1].fd, GET_GATED);
  wait_submitted(2); /* queued behind the running one */
  tc_close(&c[0]);
  tc_close(&c[1]);
  for (int i = 0; i < 2000 && atomic_load(&done_cancelled) < 1; i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&done_cancelled), 1, "the queued job was not cancelled");
  atomic_store(&gate_open, 1);
  for (int i = 0; i < 2000 && atomic_load(&done_ok) < 1; i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&done_ok), 1, "the running job's done_fn did not run");
  cr_assert_eq(atomic_load(&started), 1, "a cancelled job ran");
  /* The server goes on serving. */
  tc_open(&c[2], ts.port);
  tc_sends(c[2].fd, GET_GATED);
  cr_assert(tc_read(&c[2], &r, false));
  cr_assert_eq(r.status, 200);
  tresp_free(&r);
  tc_close(&c[2]);
  stop_all();
  free(c);
}

Test(work_req, full_queue_answers_503_overloaded) {
  tconn_t *c = calloc(3, sizeof(*c));
  tresp_t r;
  char v[64];
  uint64_t t0;

  memset(&r, 0, sizeof(r));
  pool_threads = 1;
  pool_queue = 1;
  tsrv_start(&ts, NULL, setup);
  tc_open(&c[0], ts.port);
  tc_sends(c[0].fd, GET_GATED);
  wait_started(1);
  tc_open(&c[1], ts.port);
  tc_sends(c[1].fd, GET_GATED);
  wait_submitted(2);
  tc_open(&c[2], ts.port);
  t0 = uv_hrtime();
  tc_sends(c[2].fd, GET_GATED);
  cr_assert(tc_read(&c[2], &r, false));
  cr_assert_lt(uv_hrtime() - t0, 1000000000u, "the refusal was not immediate");
  cr_assert_eq(r.status, 503);
  cr_assert_not_null(strstr(r.body, "\"OVERLOADED\""), "%s", r.body);
  cr_assert_not_null(tresp_header(&r, "Retry-After", v, sizeof(v)));
  cr_assert_str_eq(v, "1");
  tresp_free(&r);
  atomic_store(&gate_open, 1);
  for (int i = 0; i < 2; i++) {
    cr_assert(tc_read(&c[i], &r, false));
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
  }
  for (int i = 0; i < 3; i++)
    tc_close(&c[i]);
  stop_all();
  free(c);
}

static void drain_now(tsrv_t *t) {
  msvc_http_server_drain(t->srv, 5000, NULL, NULL);
}

Test(work_req, drain_answers_running_and_refuses_queued) {
  tconn_t *c = calloc(3, sizeof(*c));
  tresp_t r;

  memset(&r, 0, sizeof(r));
  pool_threads = 1;
  tsrv_start(&ts, NULL, setup);
  tc_open(&c[0], ts.port);
  tc_sends(c[0].fd, GET_GATED);
  wait_started(1);
  tc_open(&c[1], ts.port);
  tc_sends(c[1].fd, GET_GATED);
  wait_submitted(2);
  tsrv_call(&ts, drain_now);
  cr_assert(tc_read(&c[1], &r, false));
  cr_assert_eq(r.status, 503);
  cr_assert_not_null(strstr(r.body, "\"SHUTTING_DOWN\""), "%s", r.body);
  cr_assert(strstr(r.head, "Connection: close") != NULL, "%s", r.head);
  tresp_free(&r);
  cr_assert_eq(atomic_load(&done_closed), 1);
  atomic_store(&gate_open, 1);
  cr_assert(tc_read(&c[0], &r, false));
  cr_assert_eq(r.status, 200, "the running job's answer was lost");
  tresp_free(&r);
  tc_close(&c[0]);
  tc_close(&c[1]);
  stop_all();
  free(c);
}

/* A request whose job is queued when the server closes outright: the job
 * is cancelled and the request released (LeakSanitizer would see it). */
Test(work_req, server_close_with_jobs_queued_and_running) {
  tconn_t *c = calloc(2, sizeof(*c));

  pool_threads = 1;
  tsrv_start(&ts, NULL, setup);
  tc_open(&c[0], ts.port);
  tc_sends(c[0].fd, GET_GATED);
  wait_started(1);
  tc_open(&c[1], ts.port);
  tc_sends(c[1].fd, GET_GATED);
  wait_submitted(2);
  stop_all();
  cr_assert_eq(atomic_load(&done_cancelled) + atomic_load(&done_closed), 1);
  cr_assert_eq(atomic_load(&done_ok), 1);
  tc_close(&c[0]);
  tc_close(&c[1]);
  free(c);
}
