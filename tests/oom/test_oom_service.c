/* Out-of-memory sweep over the service object: new, a route, start on a
 * private loop, run until ready (or until a failed start has wound down),
 * call itself by name (discovery, balancer, breaker, HTTP client and
 * server), stop. After the injected failure, calls must work again within
 * a bounded time: a failed allocation may cost a call, not a service. */
#include <msvc/metrics.h>
#include <msvc/service.h>

#include "oom/oom.h"

typedef struct svc_seen_s {
  int ready;
  int ready_status;
  int stopped;
} svc_seen_t;

static void on_ready(msvc_service_t *svc, int status, void *data) {
  svc_seen_t *s = data;

  (void)svc;
  s->ready++;
  s->ready_status = status;
}

static void on_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  ((svc_seen_t *)data)->stopped++;
}

static bool is_ready(void *arg) {
  return ((svc_seen_t *)arg)->ready > 0;
}

static bool is_stopped(void *arg) {
  return ((svc_seen_t *)arg)->stopped > 0;
}

typedef struct svc_call_s {
  bool done;
  int err;
  int status;
} svc_call_t;

static void on_call_done(int err, const msvc_http_response_t *res,
                         void *data) {
  svc_call_t *c = data;

  c->done = true;
  c->err = err;
  c->status = err == 0 ? msvc_http_response_status(res) : 0;
}

static bool call_done(void *arg) {
  return ((svc_call_t *)arg)->done;
}

/* The service calls itself by name: discovery, balancer, breaker, retry
 * and the HTTP client, answered by its own server. */
static int call_self(oom_loop_t *l, msvc_service_t *svc, svc_call_t *c) {
  msvc_service_request_t req;
  int rc;

  memset(c, 0, sizeof(*c));
  msvc_service_request_init(&req);
  req.target = "/hello";
  req.timeout_ms = 3000;
  req.on_done = on_call_done;
  req.data = c;
  OOM_CALL(rc, msvc_service_call(svc, "oom-svc", &req, NULL), out);
  cr_assert(oom_run_until(l, call_done, c, 5000), "N=%lu: the call wedged",
            oom_n);
out:
  return rc;
}

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hi", 2);
}

static unsigned long first_no_endpoints;

static void sleep_ms(int ms) {
  struct timespec ts = {0, (long)ms * 1000000L};

  nanosleep(&ts, NULL);
}

static int service_scenario(void *arg) {
  static const msvc_registry_meta_t meta[] = {{"zone", "a"}};
  msvc_metrics_registry_t *metrics = NULL;
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  svc_seen_t seen = {0, 0, 0};
  svc_call_t first, second;
  uint64_t recover_by = uv_hrtime() / 1000000 + 3000;
  char err[256];
  oom_loop_t l;
  int rc;

  (void)arg;
  cr_assert_eq(oom_loop_init(&l), 0);
  OOM_CALL(rc, msvc_metrics_registry_new(NULL, &metrics), out);
  msvc_service_opts_init(&o);
  o.port = 0;
  o.registry_uri = "memory://";
  o.handle_signals = false;
  o.access_log = false;
  o.workers = 1;
  o.metrics = metrics;
  o.metadata = meta;
  o.nmetadata = 1;
  o.drain_timeout_ms = 100;
  o.on_ready = on_ready;
  o.on_stopped = on_stopped;
  o.data = &seen;
  OOM_CALL(rc, msvc_service_new(&l.loop, "oom-svc", &o, &svc, err,
                                sizeof(err)), out);
  OOM_CALL(rc, msvc_service_route(svc, "GET", "/hello", on_hello, NULL, 0),
           out);
  rc = msvc_service_start(svc);
  if (rc != 0) {
    cr_assert_eq(rc, MSVC_ENOMEM, "N=%lu: start: %s", oom_n, msvc_err_name(rc));
    goto out;
  }
  cr_assert(oom_run_until(&l, is_ready, &seen, 5000),
            "N=%lu: never ready nor failed", oom_n);
  if (seen.ready_status != 0) {
    cr_assert_eq(seen.ready_status, MSVC_ENOMEM, "N=%lu: start-up: %s", oom_n,
                 msvc_err_name(seen.ready_status));
    rc = seen.ready_status;
    cr_assert(oom_run_until(&l, is_stopped, &seen, 5000),
              "N=%lu: a failed start did not wind down", oom_n);
    goto out;
  }
  cr_assert_eq(msvc_service_state(svc), MSVC_SERVICE_READY);
  rc = call_self(&l, svc, &first);
  if (!msvc__fault_hit()) {
    cr_assert(rc == 0 && first.err == 0 && first.status == 200,
              "N=%lu: rc %d err %s status %d", oom_n, rc,
              msvc_err_name(first.err), first.status);
  } else if (rc == 0) {
    /* A failed discovery read is an empty stale set until the retry:
     * "no endpoints" is the call's honest outcome meanwhile. */
    cr_assert(first.err == 0 || first.err == MSVC_ENOMEM ||
                  first.err == MSVC_ENO_ENDPOINTS,
              "N=%lu: err %s", oom_n, msvc_err_name(first.err));
    if (first.err == MSVC_ENO_ENDPOINTS)
      first_no_endpoints++;
  }
  /* After the failure, calls must work again within a bounded time (the
   * registry's retry), never stay broken. */
  do {
    rc = call_self(&l, svc, &second);
    if (!msvc__fault_hit() || (rc == 0 && second.err == 0))
      break;
    sleep_ms(20);
  } while (uv_hrtime() / 1000000 < recover_by);
  cr_assert(rc == 0 && second.err == 0 && second.status == 200,
            "N=%lu: calls did not recover: rc %d err %s status %d", oom_n, rc,
            msvc_err_name(second.err), second.status);
  cr_assert_eq(msvc_service_stop(svc, on_stopped, &seen), MSVC_OK);
  cr_assert(oom_run_until(&l, is_stopped, &seen, 5000),
            "N=%lu: the stop did not finish", oom_n);
out:
  if (svc != NULL && msvc_service_state(svc) != MSVC_SERVICE_NEW)
    cr_assert(oom_run_until(&l, is_stopped, &seen, 5000),
              "N=%lu: the service did not stop", oom_n);
  msvc_service_free(svc);
  oom_loop_finish(&l);
  msvc_metrics_registry_free(metrics);
  return rc;
}

Test(oom, service_start_stop, .init = oom_init, .timeout = 280) {
  oom_stats_t st;

  oom_sweep("service start, call, stop", service_scenario, NULL, 100000, 1,
            &st);
  fprintf(stderr, "oom service start, call, stop: %lu first calls answered "
          "ENO_ENDPOINTS while discovery retried\n", first_no_endpoints);
}
