/*
 * call_overhead: what discovery, breakers, the balancer, retries and the
 * call metrics cost on top of a plain pooled client request.
 *
 * Two hello instances run on one loop in a thread of their own (pinned to
 * one core); the load runs on the main thread (pinned to the other) as a
 * closed loop of 32 concurrent requests. Every run interleaves the two
 * implementations in short slices (ABBA order, the same pooled connections
 * kept across slices, both warmed first), and the figures are medians over
 * the runs:
 *
 *   libmsvc  msvc_service_call()'s path (msvc__caller_call) through a static
 *            registry naming both instances;
 *   direct   msvc_http_client_request() to the same instances, taking turns.
 *
 * Reported: requests per second and p99 latency of each, with the ratio of
 * libmsvc to direct.
 *
 * MSVC_BENCH_CALL_ONLY=libmsvc (or direct) loads that path alone in every
 * slice, for counting what one path does (strace -c, valgrind); the
 * figures of the other path and the ratio are then meaningless.
 * MSVC_BENCH_CALL_REQUESTS=N stops starting requests after N of them (the
 * warm-up included), so that instruction counts per request compare over
 * the same work whatever the speed of the machine.
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
#define SLICES 8 /* slices of each path per run */

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
  int cur;  /* the path loaded: 0 libmsvc (the caller), 1 direct */
  int only; /* -1, or the one path loaded in every slice */
  uint64_t end_ns;
  int in_flight;
  uint64_t done;
  uint64_t total; /* requests done over the whole program */
  uint64_t started; /* requests started over the whole program */
  uint64_t limit;   /* 0, or the most requests to start */
  uint64_t errors;
  unsigned next_port;
  double *lat_ms[2];
  size_t nlat[2];
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
    l->total++;
    if (l->nlat[l->cur] < MAX_SAMPLES)
      l->lat_ms[l->cur][l->nlat[l->cur]++] = (now - o->t0) / 1e6;
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
  one_t *o;
  int r;

  if (l->limit != 0 && l->started >= l->limit)
    return;
  o = calloc(1, sizeof(*o));
  if (o == NULL)
    return;
  l->started++;
  o->l = l;
  o->t0 = bench_now_ns();
  if (l->cur == 0) {
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

/* One slice of load on the current path, added to the counters; returns
 * its length in seconds (the drain of the last requests included). */
static double slice(load_t *l, double seconds) {
  double t0 = bench_now_ns();

  l->end_ns = (uint64_t)(t0 + seconds * 1e9);
  for (int i = 0; i < CONCURRENCY; i++)
    start_one(l);
  while (l->in_flight > 0)
    uv_run(l->loop, UV_RUN_ONCE);
  return (bench_now_ns() - t0) / 1e9;
}

/* One measured run of both paths: SLICES slices of each, taking turns and
 * swapping which one goes first in every pair, so that a change of the
 * machine's load during the run hits both alike. rps[k] is the requests
 * of path k over its time (0: libmsvc, 1: direct), p99[k] over all its
 * samples of the run. ratios[j] (SLICES of them, unless NULL) is libmsvc's
 * rate over direct's in the j-th pair of adjacent slices. */
static void run_pair(load_t *l, double seconds, double rps[2], double p99[2], double *ratios) {
  double el[2] = {0, 0}, slen = seconds / SLICES, srps[2] = {0, 0};
  uint64_t done[2] = {0, 0};

  for (int k = 0; k < 2; k++)
    l->nlat[k] = 0;
  for (int i = 0; i < 2 * SLICES; i++) {
    int k = (i % 2) ^ ((i / 2) % 2); /* 0 1 1 0 0 1 1 0 ... */

    l->cur = l->only >= 0 ? l->only : k;
    l->done = 0;
    l->errors = 0;
    double e = slice(l, slen);

    el[k] += e;
    done[k] += l->done;
    srps[k] = e > 0 ? (double)l->done / e : 0;
    if (i % 2 == 1 && ratios != NULL)
      ratios[i / 2] = srps[1] > 0 ? srps[0] / srps[1] : 0;
    if (l->errors > 0)
      fprintf(stderr, "bench_call: %llu failed requests (%s)\n",
              (unsigned long long)l->errors, k == 0 ? "libmsvc" : "direct");
  }
  for (int k = 0; k < 2; k++) {
    size_t n = l->nlat[k];

    (void)bench_stats(l->lat_ms[k], (int)n); /* sorts */
    p99[k] = n > 0 ? l->lat_ms[k][(size_t)((double)(n - 1) * 0.99)] : 0;
    rps[k] = el[k] > 0 ? (double)done[k] / el[k] : 0;
  }
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
  double secs = bench_quick() ? 0.4 : 2.0, pr[2], pl[2];
  double rps[2][8], lat[2][8], pair[8 * SLICES];
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
  l.only = -1;
  if (getenv("MSVC_BENCH_CALL_ONLY") != NULL)
    l.only = strcmp(getenv("MSVC_BENCH_CALL_ONLY"), "direct") == 0 ? 1 : 0;
  if (getenv("MSVC_BENCH_CALL_REQUESTS") != NULL)
    l.limit = strtoull(getenv("MSVC_BENCH_CALL_REQUESTS"), NULL, 10);
  l.lat_ms[0] = malloc(sizeof(double) * MAX_SAMPLES);
  l.lat_ms[1] = malloc(sizeof(double) * MAX_SAMPLES);
  if (l.lat_ms[0] == NULL || l.lat_ms[1] == NULL || make_caller(&loop, s.port, &reg, &metrics, &l.caller) != 0 ||
      msvc_http_client_new(&loop, NULL, &l.client) != 0) {
    fprintf(stderr, "bench_call: setup failed\n");
    return 1;
  }
  /* warm both paths: connections pooled, the endpoint set delivered */
  run_pair(&l, 0.4, pr, pl, NULL);
  for (i = 0; i < runs; i++) {
    run_pair(&l, secs, pr, pl, &pair[i * SLICES]);
    rps[0][i] = pr[0];
    rps[1][i] = pr[1];
    lat[0][i] = pl[0];
    lat[1][i] = pl[1];
  }
  r_lib = bench_stats(rps[0], runs);
  r_dir = bench_stats(rps[1], runs);
  p_lib = bench_stats(lat[0], runs);
  p_dir = bench_stats(lat[1], runs);
  /* The ratio is the median of the ratios of adjacent slices, each pair
   * measured under the same load; the medians of the rates, above, follow
   * the load of the whole run. */
  bench_emit("call_overhead", "libmsvc", "rps", "req/s", r_lib, "direct",
             bench_stats(pair, runs * SLICES).median);
  bench_emit("call_overhead", "direct", "rps", "req/s", r_dir, NULL, 0);
  bench_emit("call_overhead", "libmsvc", "p99_ms", "ms", p_lib, "direct",
             p_dir.median > 0 ? p_lib.median / p_dir.median : 0);
  bench_emit("call_overhead", "direct", "p99_ms", "ms", p_dir, NULL, 0);

  if (l.only >= 0)
    fprintf(stderr, "bench_call: %llu requests, all %s\n", (unsigned long long)l.total,
            l.only == 0 ? "libmsvc" : "direct");
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
  free(l.lat_ms[0]);
  free(l.lat_ms[1]);
  return 0;
}
