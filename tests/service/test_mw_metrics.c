/* The metrics middleware and the /metrics handler on a live server: counts
 * by route pattern, histogram buckets, content negotiation, promtool. */
#include <malloc.h>
#include <sys/wait.h>

#include "helpers.h"

typedef struct fixture_s {
  msvc_metrics_registry_t *reg;
  msvc_mw_metrics_t *mm;
  uv_loop_t *loop;
} fixture_t;

static void on_ok(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "ok", 2);
}

static void on_created(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 201, "text/plain", "made", 4);
}

/* Answers after 120 ms from a timer: lands above the 0.05 s bucket. */
static void slow_closed(uv_handle_t *h) {
  free(h);
}

static void slow_fire(uv_timer_t *tm) {
  msvc_http_res_send(tm->data, 200, "text/plain", "slow", 4);
  uv_close((uv_handle_t *)tm, slow_closed);
}

static void on_slow(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  uv_timer_t *tm = malloc(sizeof(*tm));

  (void)req;
  uv_timer_init(data, tm);
  tm->data = res;
  uv_timer_start(tm, slow_fire, 120, 0);
}

/* Never answers until the client goes away. */
static atomic_int hang_seen;

static void hang_cancelled(msvc_http_req_t *req, void *data) {
  (void)data;
  msvc_http_res_send(msvc_http_req_res(req), 200, NULL, NULL, 0);
}

static void on_hang(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  msvc_http_req_on_cancel(req, hang_cancelled, NULL);
  atomic_fetch_add(&hang_seen, 1);
}

static void setup_metrics(msvc_http_server_t *srv, void *data) {
  fixture_t *f = data;
  static const double buckets[] = {0.05, 10};
  msvc_mw_metrics_opts_t o;

  msvc_mw_metrics_opts_init(&o);
  o.registry = f->reg;
  o.buckets = buckets;
  o.bucket_count = 2;
  cr_assert_eq(msvc_mw_metrics_new(srv, &o, &f->mm), MSVC_OK);
  cr_assert_eq(msvc_mw_metrics_route(srv, "/metrics", f->reg), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/:id", on_ok, NULL, NULL),
               MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "POST", "/users", on_created, NULL, NULL),
               MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hang", on_hang, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/slow", on_slow,
                                      msvc_http_server_loop(srv), NULL),
               MSVC_OK);
}

static void fixture_start(fixture_t *f, srvthread_t *t) {
  memset(f, 0, sizeof(*f));
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->reg), MSVC_OK);
  st_start(t, setup_metrics, f);
}

static void traffic(int port) {
  static const char *const paths[] = {"/users/1", "/users/2", "/users/abc%20def"};
  resp_t r;
  size_t i;

  for (i = 0; i < 3; i++) {
    cr_assert_eq(cl_get(port, paths[i], "", &r), 200);
    resp_free(&r);
  }
  cr_assert_eq(cl_request(port,
                          "POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                          "Connection: close\r\n\r\n{}",
                          &r),
               201);
  resp_free(&r);
  cr_assert_eq(cl_get(port, "/nope", "", &r), 404);
  resp_free(&r);
  cr_assert_eq(cl_get(port, "/users/1/deeper/still", "", &r), 404);
  resp_free(&r);
  cr_assert_eq(cl_request(port, "DELETE /users/9 HTTP/1.1\r\nHost: x\r\n"
                                "Connection: close\r\n\r\n", &r),
               405);
  resp_free(&r);
  cr_assert_eq(cl_get(port, "/slow", "", &r), 200);
  resp_free(&r);
}

static void expect_line(const char *body, const char *line) {
  char pat[512];

  snprintf(pat, sizeof(pat), "\n%s\n", line);
  cr_expect_not_null(strstr(body, pat), "missing line: %s\nin:\n%s", line, body);
}

Test(mw_metrics, counts_by_route_pattern, .timeout = 30) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  char ct[128];

  fixture_start(&f, &t);
  traffic(t.port);
  cr_assert_eq(cl_get(t.port, "/metrics", "", &r), 200);
  cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof(ct)),
                   "text/plain; version=0.0.4; charset=utf-8");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"GET\",route=\"/users/:id\","
                      "status=\"200\"} 3");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"POST\",route=\"/users\","
                      "status=\"201\"} 1");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"GET\",route=\"unmatched\","
                      "status=\"404\"} 2");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"DELETE\",route=\"unmatched\","
                      "status=\"405\"} 1");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"GET\",route=\"/slow\","
                      "status=\"200\"} 1");
  /* Raw paths never become label values. */
  cr_expect_null(strstr(r.body, "/users/1"));
  cr_expect_null(strstr(r.body, "/users/2"));
  cr_expect_null(strstr(r.body, "abc"));
  cr_expect_null(strstr(r.body, "/nope"));
  cr_expect_null(strstr(r.body, "deeper"));
  /* Histogram: the slow request is above 0.05 s, the fast ones below. */
  expect_line(r.body, "msvc_http_server_request_duration_seconds_bucket{method=\"GET\","
                      "route=\"/slow\",le=\"0.05\"} 0");
  expect_line(r.body, "msvc_http_server_request_duration_seconds_bucket{method=\"GET\","
                      "route=\"/slow\",le=\"10\"} 1");
  expect_line(r.body, "msvc_http_server_request_duration_seconds_bucket{method=\"GET\","
                      "route=\"/slow\",le=\"+Inf\"} 1");
  expect_line(r.body, "msvc_http_server_request_duration_seconds_count{method=\"GET\","
                      "route=\"/slow\"} 1");
  expect_line(r.body, "msvc_http_server_request_duration_seconds_bucket{method=\"GET\","
                      "route=\"/users/:id\",le=\"0.05\"} 3");
  expect_line(r.body, "msvc_http_server_request_duration_seconds_count{method=\"GET\","
                      "route=\"unmatched\"} 2");
  /* The scrape's own connection is open while it is served. */
  cr_expect(strstr(r.body, "\nmsvc_http_server_connections 1\n") != NULL ||
                strstr(r.body, "\nmsvc_http_server_connections 2\n") != NULL,
            "%s", r.body);
  cr_expect_not_null(strstr(r.body, "\nprocess_resident_memory_bytes "));
  resp_free(&r);

  /* The scrape itself was counted once it finished. */
  cr_assert_eq(cl_get(t.port, "/metrics", "", &r), 200);
  expect_line(r.body, "msvc_http_server_requests_total{method=\"GET\",route=\"/metrics\","
                      "status=\"200\"} 1");
  resp_free(&r);
  st_stop(&t);
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}

Test(mw_metrics, openmetrics_negotiated, .timeout = 30) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  char ct[128];

  fixture_start(&f, &t);
  traffic(t.port);
  cr_assert_eq(cl_get(t.port, "/metrics", "Accept: application/openmetrics-text; "
                                          "version=1.0.0,text/plain;q=0.5\r\n", &r),
               200);
  cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof(ct)),
                   MSVC_METRICS_CONTENT_TYPE_OPENMETRICS);
  cr_assert_gt(r.body_len, 6);
  cr_assert_str_eq(r.body + r.body_len - 6, "# EOF\n");
  expect_line(r.body, "msvc_http_server_requests_total{method=\"GET\",route=\"/users/:id\","
                      "status=\"200\"} 3");
  cr_expect_null(strstr(r.body, "/users/1"));
  resp_free(&r);
  /* A plain Accept gets the text format. */
  cr_assert_eq(cl_get(t.port, "/metrics", "Accept: text/plain\r\n", &r), 200);
  cr_assert_str_eq(resp_header(&r, "Content-Type", ct, sizeof(ct)),
                   MSVC_METRICS_CONTENT_TYPE_TEXT);
  cr_assert_null(strstr(r.body, "# EOF"));
  resp_free(&r);
  st_stop(&t);
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}

Test(mw_metrics, live_output_passes_promtool, .timeout = 60) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  char path[] = "/tmp/msvc-mw-promtool-XXXXXX", cmd[256];
  int fd, status;

  if (system("command -v promtool >/dev/null 2>&1") != 0)
    cr_skip_test("promtool is not installed");
  fixture_start(&f, &t);
  traffic(t.port);
  cr_assert_eq(cl_get(t.port, "/metrics", "", &r), 200);
  st_stop(&t);
  fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
  close(fd);
  resp_free(&r);
  snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
  status = system(cmd);
  unlink(path);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "promtool rejected it");
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}

/* Two servers on two loops record into one registry: the series and the
 * connection gauge are sums, and freeing a middleware takes its share of
 * the gauge back. */
Test(mw_metrics, servers_share_a_registry, .timeout = 30) {
  srvthread_t a, b;
  fixture_t fa, fb;
  msvc_metrics_family_t *fam;
  msvc_metrics_family_opts_t fo;
  msvc_metrics_counter_t *c;
  msvc_metrics_gauge_t *g;
  const char *v[] = {"GET", "/users/:id", "200"};
  resp_t r;
  int i;

  memset(&fb, 0, sizeof(fb));
  fixture_start(&fa, &a);
  fb.reg = fa.reg;
  st_start(&b, setup_metrics, &fb);
  for (i = 0; i < 4; i++) {
    cr_assert_eq(cl_get(i % 2 ? a.port : b.port, "/users/5", "", &r), 200);
    resp_free(&r);
  }
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_requests_total";
  fo.label_names = (const char *const[]){"method", "route", "status"};
  fo.label_count = 3;
  cr_assert_eq(msvc_metrics_family_new(fa.reg, MSVC_METRICS_COUNTER, &fo, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(fam, v, 3, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_value(c), 4.0);

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_connections";
  cr_assert_eq(msvc_metrics_family_new(fa.reg, MSVC_METRICS_GAUGE, &fo, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_gauge_get(fam, NULL, 0, &g), MSVC_OK);
  cr_assert_geq(msvc_metrics_gauge_value(g), 0.0);
  st_stop(&a);
  st_stop(&b);
  msvc_mw_metrics_free(fa.mm);
  msvc_mw_metrics_free(fb.mm);
  cr_assert_eq(msvc_metrics_gauge_value(g), 0.0, "every share was taken back");
  msvc_metrics_registry_free(fa.reg);
}

/* Worker loops: one middleware per worker, all recording into one
 * registry from their own threads. */
typedef struct workers_fx_s {
  msvc_metrics_registry_t *reg;
  msvc_mw_metrics_t *mm[2];
} workers_fx_t;

static int worker_setup(msvc_http_server_t *srv, unsigned index, void *data) {
  workers_fx_t *w = data;
  msvc_mw_metrics_opts_t o;
  int rc;

  msvc_mw_metrics_opts_init(&o);
  o.registry = w->reg;
  if ((rc = msvc_mw_metrics_new(srv, &o, &w->mm[index])) != MSVC_OK)
    return rc;
  if ((rc = msvc_mw_metrics_route(srv, "/metrics", w->reg)) != MSVC_OK)
    return rc;
  return msvc_http_server_route(srv, "GET", "/users/:id", on_ok, NULL, NULL);
}

Test(mw_metrics, worker_loops_sum_into_one_registry, .timeout = 30) {
  workers_fx_t w;
  msvc_http_workers_t *ws;
  resp_t r;
  char *text;
  int i;

  memset(&w, 0, sizeof(w));
  cr_assert_eq(msvc_metrics_registry_new(NULL, &w.reg), MSVC_OK);
  cr_assert_eq(msvc_http_workers_start(2, "127.0.0.1", 0, NULL, worker_setup, &w, &ws),
               MSVC_OK);
  for (i = 0; i < 40; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/users/%d", i);
    cr_assert_eq(cl_get(msvc_http_workers_port(ws), path, "", &r), 200);
    resp_free(&r);
  }
  msvc_http_workers_stop(ws, 1000);
  msvc_mw_metrics_free(w.mm[0]);
  msvc_mw_metrics_free(w.mm[1]);
  cr_assert_eq(msvc_metrics_expose(w.reg, MSVC_METRICS_FORMAT_TEXT, &text, NULL), MSVC_OK);
  expect_line(text, "msvc_http_server_requests_total{method=\"GET\",route=\"/users/:id\","
                    "status=\"200\"} 40");
  expect_line(text, "msvc_http_server_request_duration_seconds_count{method=\"GET\","
                    "route=\"/users/:id\"} 40");
  expect_line(text, "msvc_http_server_connections 0");
  msvc_free(text);
  msvc_metrics_registry_free(w.reg);
}

/* Steady state: once a (route, method, status) has been seen, recording a
 * request allocates nothing. Two probe middlewares sandwich the metrics
 * middleware, so their after-hooks run right before and right after its
 * own, on the loop thread, while the client is blocked waiting for the
 * answer; the heap in use must not change in between. */
static size_t heap_before;
static long heap_growth_max;
static atomic_int heap_samples;

static void probe_inner(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t ns, void *d) {
  (void)req;
  (void)res;
  (void)ns;
  (void)d;
  heap_before = mallinfo2().uordblks;
}

static void probe_outer(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t ns, void *d) {
  long growth = (long)mallinfo2().uordblks - (long)heap_before;

  (void)req;
  (void)res;
  (void)ns;
  (void)d;
  if (growth > heap_growth_max)
    heap_growth_max = growth;
  atomic_fetch_add(&heap_samples, 1);
}

static void setup_probed(msvc_http_server_t *srv, void *data) {
  msvc_http_middleware_t outer = {"outer", NULL, probe_outer, NULL};
  msvc_http_middleware_t inner = {"inner", NULL, probe_inner, NULL};

  cr_assert_eq(msvc_http_server_use(srv, &outer), MSVC_OK);
  setup_metrics(srv, data);
  cr_assert_eq(msvc_http_server_use(srv, &inner), MSVC_OK);
}

Test(mw_metrics, steady_state_allocates_nothing, .timeout = 30) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  int i;

#if defined(__SANITIZE_ADDRESS__)
  cr_skip_test("the sanitizer's allocator does not report heap use");
#endif
  memset(&f, 0, sizeof(f));
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f.reg), MSVC_OK);
  st_start(&t, setup_probed, &f);
  traffic(t.port); /* first sight of every series */
  heap_growth_max = 0;
  atomic_store(&heap_samples, 0);
  for (i = 0; i < 20; i++) {
    cr_assert_eq(cl_get(t.port, i % 2 ? "/users/7" : "/nope", "", &r), i % 2 ? 200 : 404);
    resp_free(&r);
  }
  st_stop(&t);
  cr_assert_eq(atomic_load(&heap_samples), 20);
  cr_assert_eq(heap_growth_max, 0, "the metrics after-hook allocated %ld bytes",
               heap_growth_max);
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}

/* A client that leaves before its answer is counted with status 499. */
Test(mw_metrics, cancelled_request_counts_499, .timeout = 30) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  int fd, i;
  bool seen = false;
  const char *req = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";

  atomic_store(&hang_seen, 0);
  fixture_start(&f, &t);
  fd = cl_connect(t.port);
  cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
  for (i = 0; i < 5000 && atomic_load(&hang_seen) == 0; i++)
    sleep_ms(1);
  cr_assert_eq(atomic_load(&hang_seen), 1);
  close(fd);
  /* The server learns of the close from its loop: poll, bounded. */
  for (i = 0; i < 200 && !seen; i++) {
    cr_assert_eq(cl_get(t.port, "/metrics", "", &r), 200);
    seen = strstr(r.body, "\nmsvc_http_server_requests_total{method=\"GET\",route=\"/hang\","
                          "status=\"499\"} 1\n") != NULL;
    resp_free(&r);
    if (!seen)
      sleep_ms(10);
  }
  cr_assert(seen, "no 499 series");
  st_stop(&t);
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}

Test(mw_metrics, bad_arguments) {
  msvc_mw_metrics_t *mm = (msvc_mw_metrics_t *)1;
  msvc_mw_metrics_opts_t o;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  msvc_http_server_t *srv;
  uv_loop_t loop;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_server_new(&loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_mw_metrics_new(NULL, NULL, &mm), MSVC_EINVAL);
  cr_assert_null(mm);
  cr_assert_eq(msvc_mw_metrics_new(srv, NULL, NULL), MSVC_EINVAL);
  msvc_mw_metrics_opts_init(&o);
  o.size = 1;
  cr_assert_eq(msvc_mw_metrics_new(srv, &o, &mm), MSVC_EINVAL);
  /* A name already taken with another type is refused, nothing leaks. */
  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_server_connections";
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam), MSVC_OK);
  msvc_mw_metrics_opts_init(&o);
  o.registry = reg;
  cr_assert_eq(msvc_mw_metrics_new(srv, &o, &mm), MSVC_EMETRIC_MISMATCH);
  cr_assert_null(mm);
  cr_assert_eq(msvc_mw_metrics_route(srv, NULL, reg), MSVC_EINVAL);
  msvc_mw_metrics_free(NULL);
  msvc_mw_metrics_refresh(NULL);
  msvc_http_server_close(srv, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_metrics_registry_free(reg);
}
