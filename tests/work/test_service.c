/* The service's worker pools: configuration from the environment, one pool
 * per loop, a full queue, and a stop with queued and running jobs. */
#include <msvc/log.h>
#include <msvc/service.h>
#include <msvc/work.h>

#include "http/helpers.h"
#include "http/server.h"

typedef struct svc_harness_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  msvc_service_t *svc;
  int port;
  atomic_int ready, stopped, loop_done;
  int close_rc;
  uv_mutex_t mu;
  msvc_work_t *seen[8];
  int nseen;
} svc_harness_t;

static svc_harness_t H;
static atomic_int gate_open, started, submitted;

static void job_gated(void *data) {
  (void)data;
  atomic_fetch_add(&started, 1);
  for (int i = 0; i < 10000 && !atomic_load(&gate_open); i++)
    sleep_ms(1);
}

static void on_job_done(msvc_http_req_t *req, void *data, int status) {
  (void)data;
  if (status == MSVC_OK)
    msvc_http_res_send(msvc_http_req_res(req), 200, "text/plain", "done", 4);
}

static void note_pool(msvc_work_t *w) {
  uv_mutex_lock(&H.mu);
  for (int i = 0; i < H.nseen; i++)
    if (H.seen[i] == w) {
      uv_mutex_unlock(&H.mu);
      return;
    }
  if (H.nseen < 8)
    H.seen[H.nseen++] = w;
  uv_mutex_unlock(&H.mu);
}

static void h_job(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_work_t *w = msvc_service_work(H.svc, req);

  (void)res;
  (void)data;
  cr_assert_not_null(w);
  cr_assert_eq(msvc_work_loop(w), msvc_http_server_loop(req->srv));
  note_pool(w);
  atomic_fetch_add(&submitted, 1);
  msvc_work_submit_req(w, req, 0, job_gated, on_job_done, NULL);
}

static void on_ready_cb(msvc_service_t *svc, int status, void *data) {
  (void)svc;
  (void)data;
  if (status == MSVC_OK)
    atomic_store(&H.ready, 1);
}

static void on_stopped_cb(msvc_service_t *svc, void *data) {
  (void)svc;
  (void)data;
  atomic_store(&H.stopped, 1);
}

static void on_wake(uv_async_t *a) {
  (void)a;
  msvc_service_stop(H.svc, NULL, NULL);
  uv_close((uv_handle_t *)&H.wake, NULL);
}

static void loop_main(void *arg) {
  (void)arg;
  uv_run(&H.loop, UV_RUN_DEFAULT);
  H.close_rc = uv_loop_close(&H.loop);
  atomic_store(&H.loop_done, 1);
}

static void start(unsigned workers) {
  msvc_service_opts_t o;
  char err[256] = "";

  cr_assert_eq(uv_loop_init(&H.loop), 0);
  cr_assert_eq(uv_async_init(&H.loop, &H.wake, on_wake), 0);
  uv_mutex_init(&H.mu);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.workers = workers;
  o.access_log = false;
  o.handle_signals = false;
  o.on_ready = on_ready_cb;
  o.on_stopped = on_stopped_cb;
  cr_assert_eq(msvc_service_new(&H.loop, "worktest", &o, &H.svc, err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_eq(msvc_service_route(H.svc, "GET", "/job", h_job, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_start(H.svc), MSVC_OK);
  H.port = msvc_service_port(H.svc);
  cr_assert_eq(uv_thread_create(&H.thread, loop_main, NULL), 0);
  for (int i = 0; i < 5000 && !atomic_load(&H.ready); i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&H.ready), 1);
}

static void stop_and_join(void) {
  uv_async_send(&H.wake);
  for (int i = 0; i < 20000 && !atomic_load(&H.loop_done); i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&H.loop_done), 1, "the loop did not end");
  cr_assert_eq(uv_thread_join(&H.thread), 0);
  cr_assert_eq(atomic_load(&H.stopped), 1);
  cr_assert_eq(H.close_rc, 0, "a handle of the service was left on the loop");
  msvc_service_free(H.svc);
  uv_mutex_destroy(&H.mu);
}

static void reset(void) {
  memset(&H, 0, sizeof(H));
  atomic_store(&gate_open, 0);
  atomic_store(&started, 0);
  atomic_store(&submitted, 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  unsetenv("MSVC_WORK_THREADS");
  unsetenv("MSVC_WORK_QUEUE");
  unsetenv("MSVC_WORKERS");
  unsetenv("MSVC_PORT");
}

TestSuite(work_service, .init = reset, .timeout = 60);

static const char GET_JOB[] = "GET /job HTTP/1.1\r\nHost: t\r\n\r\n";

Test(work_service, bad_settings_are_refused_by_name) {
  uv_loop_t loop;
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  char err[256] = "";
  static const char *const bad[][2] = {{"MSVC_WORK_THREADS", "0"},
                                       {"MSVC_WORK_THREADS", "many"},
                                       {"MSVC_WORK_THREADS", "257"},
                                       {"MSVC_WORK_QUEUE", "0"},
                                       {"MSVC_WORK_QUEUE", "-5"},
                                       {"MSVC_WORK_QUEUE", "1000001"}};

  cr_assert_eq(uv_loop_init(&loop), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    setenv(bad[i][0], bad[i][1], 1);
    cr_assert_eq(msvc_service_new(&loop, "worktest", NULL, &svc, err, sizeof(err)),
                 MSVC_ECONFIG, "%s=%s", bad[i][0], bad[i][1]);
    cr_assert_null(svc);
    cr_assert(strncmp(err, bad[i][0], strlen(bad[i][0])) == 0, "%s", err);
    unsetenv(bad[i][0]);
  }
  msvc_service_opts_init(&o);
  o.work_threads = 257;
  cr_assert_eq(msvc_service_new(&loop, "worktest", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert(strncmp(err, "work_threads option", 19) == 0, "%s", err);
  msvc_service_opts_init(&o);
  o.work_queue = 1000001;
  cr_assert_eq(msvc_service_new(&loop, "worktest", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert(strncmp(err, "work_queue option", 17) == 0, "%s", err);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(work_service, queue_from_environment_and_stop_with_jobs) {
  tconn_t *c = calloc(4, sizeof(*c));
  tresp_t r;

  memset(&r, 0, sizeof(r));
  setenv("MSVC_WORK_THREADS", "1", 1);
  setenv("MSVC_WORK_QUEUE", "1", 1);
  start(1); /* the options are unset: the environment counts */
  tc_open(&c[0], H.port);
  tc_sends(c[0].fd, GET_JOB);
  for (int i = 0; i < 5000 && atomic_load(&started) < 1; i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&started), 1);
  tc_open(&c[1], H.port);
  tc_sends(c[1].fd, GET_JOB);
  for (int i = 0; i < 5000 && atomic_load(&submitted) < 2; i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&submitted), 2);
  tc_open(&c[2], H.port); /* one thread busy, one job queued: full */
  tc_sends(c[2].fd, GET_JOB);
  cr_assert(tc_read(&c[2], &r, false));
  cr_assert_eq(r.status, 503);
  cr_assert_not_null(strstr(r.body, "OVERLOADED"), "%s", r.body);
  tresp_free(&r);
  cr_assert_eq(tc_exchange(H.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_not_null(strstr(r.body, "msvc_work_jobs_total{outcome=\"rejected\"} 1"), "%s",
                     r.body);
  cr_assert_not_null(strstr(r.body, "msvc_work_queue_depth 1"), "%s", r.body);
  tresp_free(&r);
  /* Stop: the queued job is refused, the running one answered. */
  uv_async_send(&H.wake);
  cr_assert(tc_read(&c[1], &r, false));
  cr_assert_eq(r.status, 503);
  cr_assert_not_null(strstr(r.body, "SHUTTING_DOWN"), "%s", r.body);
  tresp_free(&r);
  atomic_store(&gate_open, 1);
  cr_assert(tc_read(&c[0], &r, false));
  cr_assert_eq(r.status, 200);
  tresp_free(&r);
  for (int i = 0; i < 3; i++)
    tc_close(&c[i]);
  for (int i = 0; i < 20000 && !atomic_load(&H.loop_done); i++)
    sleep_ms(1);
  cr_assert_eq(uv_thread_join(&H.thread), 0);
  cr_assert_eq(H.close_rc, 0, "a handle of the service was left on the loop");
  msvc_service_free(H.svc);
  uv_mutex_destroy(&H.mu);
  free(c);
}

Test(work_service, each_worker_loop_has_its_own_pool) {
  tresp_t r;

  atomic_store(&gate_open, 1);
  start(2);
  for (int i = 0; i < 200; i++) {
    cr_assert_eq(tc_exchange(H.port, "GET /job HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    tresp_free(&r);
    uv_mutex_lock(&H.mu);
    int n = H.nseen;
    uv_mutex_unlock(&H.mu);
    if (n == 2 && i >= 10)
      break;
  }
  cr_assert_eq(H.nseen, 2, "both worker loops used a pool of their own");
  cr_assert_neq(H.seen[0], H.seen[1]);
  stop_and_join();
}
