/*
 * call_overhead: what discovery, breakers, the balancer, retries and the
 * call metrics cost on top of a plain pooled client request.
 *
 * Two hello instances run on one loop in a thread of their own (pinned to
 * one core); the load runs on the main thread (pinned to the other) as a
 * closed loop of 32 concurrent requests, alternating between the two
 * implementations in the same run:
 *
 *   libmsvc  msvc_service_call()'s path (msvc__caller_call) through a static
 *            registry naming both instances;
 *   direct   msvc_http_client_request() to the same instances, taking turns.
 *
 * Reported: requests per second and p99 latency of each, with the ratio of
 * libmsvc to direct.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/log.h>
#include <msvc/registry.h>
#include <msvc/service.h>

#include "bench.h"
#include "service/call-internal.h"

#define CONCURRENCY 32
#define MAX_SAMPLES 2000000

typedef struct servers_s {
  uv_loop_t loop;
  uv_async_t stop;
  msvc_http_server_t *srv[2];
  int port[2];
} servers_t;

static void hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "Hello, World!", 13);
}

static void on_stop(uv_async_t *a) {
  servers_t *s = a->data;

  msvc_http_server_close(s->srv[0], NULL, NULL);
  msvc_http_server_close(s->srv[1], NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void pin(int cpu) {
  cpu_set_t set;

  if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
    return;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void servers_main(void *arg) {
  servers_t *s = arg;

  pin(1);
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static int servers_start(servers_t *s, uv_thread_t *th) {
  int i;

  if (uv_loop_init(&s->loop) != 0 || uv_async_init(&s->loop, &s->stop, on_stop) != 0)
    return -1;
  s->stop.data = s;
  for (i = 0; i < 2; i++) {
    if (msvc_http_server_new(&s->loop, NULL, &s->srv[i]) != 0 ||
        msvc_http_server_route(s->srv[i], "GET", "/hello", hello, NULL, NULL) != 0 ||
        msvc_http_server_listen(s->srv[i], "127.0.0.1", 0) != 0)
      return -1;
    s->port[i] = msvc_http_server_port(s->srv[i]);
  }
  return uv_thread_create(th, servers_main, s);
}

/* ---- the load ---------------------------------------------------------------- */

typedef struct load_s {
  uv_loop_t *loop;
  msvc__caller_t *caller;
  msvc_http_client_t *client;
  const int *ports;
  bool use_caller;
  uint64_t end_ns;
  int in_flight;
  uint64_t done;
  uint64_t errors;
  unsigned next_port;
  double *lat_ms;
  size_t nlat;
} load_t;

typedef struct one_s {
  load_t *l;
  double t0;
} one_t;

static void start_one(load_t *l);

static void finish_one(one_t *o, bool ok) {
  load_t *l = o->l;
  double now = bench_now_ns();

  l->in_flight--;
  if (ok) {
    l->done++;
    if (l->nlat < MAX_SAMPLES)
      l->lat_ms[l->nlat++] = (now - o->t0) / 1e6;
  } else {
    l->errors++;
  }
  free(o);
  if (now < (double)l->end_ns)
    start_one(l);
}

static void on_call(int err, const msvc_http_response_t *res, void *data) {
  finish_one(data, err == 0 && msvc_http_response_status(res) == 200);
}

static void on_direct(msvc_http_call_t *c, int err, const msvc_http_response_t *res,
                      void *data) {
  (void)c;
  finish_one(data, err == 0 && msvc_http_response_status(res) == 200);
}

static void start_one(load_t *l) {
  one_t *o = calloc(1, sizeof(*o));
  int r;

  if (o == NULL)
    return;
  o->l = l;
  o->t0 = bench_now_ns();
  if (l->use_caller) {
    msvc_service_request_t req;

    msvc_service_request_init(&req);
    req.target = "/hello";
    req.on_done = on_call;
    req.data = o;
    r = msvc__caller_call(l->caller, "bench-hello", &req, NULL, NULL);
  } else {
    msvc_http_request_t req;

    msvc_http_request_init(&req);
    req.host = "127.0.0.1";
    req.port = l->ports[l->next_port++ % 2];
    req.target = "/hello";
    req.on_done = on_direct;
    req.data = o;
    r = msvc_http_client_request(l->client, &req, NULL);
  }
  if (r != 0) {
    free(o);
    l->errors++;
    return;
  }
  l->in_flight++;
}

/* One timed run; returns requests per second and sets *p99. */
static double run_once(load_t *l, double seconds, double *p99) {
  double t0 = bench_now_ns(), el;
  bench_stat_t st;
  int i;

  l->done = 0;
  l->errors = 0;
  l->nlat = 0;
  l->end_ns = (uint64_t)(t0 + seconds * 1e9);
  for (i = 0; i < CONCURRENCY; i++)
    start_one(l);
  while (l->in_flight > 0)
    uv_run(l->loop, UV_RUN_ONCE);
  el = (bench_now_ns() - t0) / 1e9;
  st = bench_stats(l->lat_ms, (int)l->nlat);
  (void)st;
  *p99 = l->nlat > 0 ? l->lat_ms[(size_t)((double)(l->nlat - 1) * 0.99)] : 0;
  if (l->errors > 0)
    fprintf(stderr, "bench_call: %llu failed requests (%s)\n",
            (unsigned long long)l->errors, l->use_caller ? "libmsvc" : "direct");
  return (double)l->done / el;
}

static int make_caller(uv_loop_t *loop, const int *ports, msvc_registry_t **reg,
                       msvc_metrics_registry_t **m, msvc__caller_t **c) {
  char uri[128];
  msvc__caller_opts_t co;

  snprintf(uri, sizeof(uri), "static://bench-hello=127.0.0.1:%d,127.0.0.1:%d", ports[0],
           ports[1]);
  if (msvc_registry_new(loop, uri, NULL, reg) != 0 ||
      msvc_metrics_registry_new(NULL, m) != 0)
    return -1;
  memset(&co, 0, sizeof(co));
  co.loop = loop;
  co.registry = *reg;
  co.metrics = *m;
  co.policy = MSVC_LB_ROUND_ROBIN;
  msvc_breaker_opts_init(&co.breaker);
  msvc_retry_opts_init(&co.retry);
  co.call_timeout_ms = 10000;
  return msvc__caller_new(&co, c);
}

static void on_closed(void *data) { *(int *)data = 1; }

int main(void) {
  servers_t s;
  uv_thread_t th;
  uv_loop_t loop;
  msvc_registry_t *reg = NULL;
  msvc_metrics_registry_t *metrics = NULL;
  load_t l;
  double secs = bench_quick() ? 0.4 : 2.0, p99;
  double rps[2][8], lat[2][8];
  bench_stat_t r_lib, r_dir, p_lib, p_dir;
  int runs = bench_runs(), i, closed = 0;

  msvc_log_set_level(MSVC_LOG_WARN);
  memset(&s, 0, sizeof(s));
  memset(&l, 0, sizeof(l));
  if (servers_start(&s, &th) != 0 || uv_loop_init(&loop) != 0) {
    fprintf(stderr, "bench_call: cannot start the instances\n");
    return 1;
  }
  pin(0);
  l.loop = &loop;
  l.ports = s.port;
  l.lat_ms = malloc(sizeof(double) * MAX_SAMPLES);
  if (l.lat_ms == NULL || make_caller(&loop, s.port, &reg, &metrics, &l.caller) != 0 ||
      msvc_http_client_new(&loop, NULL, &l.client) != 0) {
    fprintf(stderr, "bench_call: setup failed\n");
    return 1;
  }
  /* warm both paths: connections pooled, the endpoint set delivered */
  l.use_caller = true;
  run_once(&l, 0.2, &p99);
  l.use_caller = false;
  run_once(&l, 0.2, &p99);
  for (i = 0; i < runs; i++) {
    l.use_caller = false;
    rps[1][i] = run_once(&l, secs, &lat[1][i]);
    l.use_caller = true;
    rps[0][i] = run_once(&l, secs, &lat[0][i]);
  }
  r_lib = bench_stats(rps[0], runs);
  r_dir = bench_stats(rps[1], runs);
  p_lib = bench_stats(lat[0], runs);
  p_dir = bench_stats(lat[1], runs);
  bench_emit("call_overhead", "libmsvc", "rps", "req/s", r_lib, "direct",
             r_lib.median / r_dir.median);
  bench_emit("call_overhead", "direct", "rps", "req/s", r_dir, NULL, 0);
  bench_emit("call_overhead", "libmsvc", "p99_ms", "ms", p_lib, "direct",
             p_dir.median > 0 ? p_lib.median / p_dir.median : 0);
  bench_emit("call_overhead", "direct", "p99_ms", "ms", p_dir, NULL, 0);

  msvc_http_client_close(l.client, NULL, NULL);
  msvc__caller_close(l.caller, on_closed, &closed);
  while (!closed)
    uv_run(&loop, UV_RUN_ONCE);
  msvc_registry_close(reg, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc__caller_free(l.caller);
  uv_loop_close(&loop);
  msvc_metrics_registry_free(metrics);
  uv_async_send(&s.stop);
  uv_thread_join(&th);
  uv_loop_close(&s.loop);
  free(l.lat_ms);
  return 0;
}
