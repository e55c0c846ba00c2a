/* The service object with events: MSVC_EVENTS read and checked, the handle
 * it exposes, the readiness check, the close at stop. */
#include "http/helpers.h"

#include <msvc/service.h>

#include "fixture.h"

typedef struct ready_get_s {
  int port;
  tresp_t r;
  atomic_int done;
} ready_get_t;

static void get_ready(void *arg) {
  ready_get_t *g = arg;

  tc_exchange(g->port, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &g->r);
  atomic_store(&g->done, 1);
}

static bool flag_set(void *arg) {
  return atomic_load((atomic_int *)arg) != 0;
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  (void)svc;
  *(int *)data = status == MSVC_OK ? 1 : -1;
}

static void on_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  *(int *)data = 1;
}

static bool int_set(void *arg) {
  return *(int *)arg != 0;
}

Test(events_service, bad_variable_stops_startup, .timeout = 10) {
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  msvc_service_opts_t o;
  char err[MSVC_ERRMSG_MAX];

  cr_assert_eq(uv_loop_init(&loop), 0);
  setenv("MSVC_EVENTS", "kafka://localhost:9092", 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert(strstr(err, "MSVC_EVENTS") != NULL && strstr(err, "nats://") != NULL, "%s", err);
  unsetenv("MSVC_EVENTS");
  finish_loop(&loop);
}

Test(events_service, exposes_events_and_reports_readiness, .timeout = 20) {
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  msvc_service_opts_t o;
  msvc_events_t *ev;
  char err[MSVC_ERRMSG_MAX];
  int ready = 0, stopped = 0;
  ready_get_t *g = calloc(1, sizeof(*g));
  uv_thread_t th;
  got_t *got = calloc(1, sizeof(*got));
  msvc_events_sub_opts_t so;
  msvc_events_sub_t *sub;
  msvc_event_t e = {.type = "svc.created", .data = "{}", .data_len = 2};
  pubrec_t p;

  cr_assert_eq(uv_loop_init(&loop), 0);
  setenv("MSVC_EVENTS", "memory://", 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  o.on_ready = on_ready;
  o.on_stopped = on_stopped;
  o.data = &ready;
  cr_assert_eq(msvc_service_new(&loop, "order-service", &o, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  unsetenv("MSVC_EVENTS");
  ev = msvc_service_events(svc);
  cr_assert_not_null(ev);
  cr_assert_str_eq(msvc_events_backend(ev), "memory");
  cr_assert_eq(msvc_service_start(svc), MSVC_OK);
  cr_assert(run_until(&loop, int_set, &ready, 5000));
  cr_assert_eq(ready, 1);

  /* the source is the service's name */
  got_init(got, SETTLE_ACK);
  ensure_stream(&loop, ev, "SVCTEST", "svc.>");
  msvc_events_sub_opts_init(&so);
  so.stream = "SVCTEST";
  so.subject = "svc.>";
  so.durable = "reader";
  cr_assert_eq(msvc_events_subscribe(ev, &so, got_handler, got, &sub), MSVC_OK);
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &got->n, 1, 5000));

  g->port = msvc_service_port(svc);
  cr_assert_eq(uv_thread_create(&th, get_ready, g), 0);
  cr_assert(run_until(&loop, flag_set, &g->done, 5000));
  uv_thread_join(&th);
  cr_assert_eq(g->r.status, 200, "%s", g->r.head);
  tresp_free(&g->r);

  o.data = &stopped;
  cr_assert_eq(msvc_service_stop(svc, on_stopped, &stopped), MSVC_OK);
  cr_assert(run_until(&loop, int_set, &stopped, 10000), "service did not stop");
  msvc_service_free(svc);
  finish_loop(&loop);
  free(g);
  free(got);
}
