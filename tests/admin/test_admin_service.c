/*
 * The admin listener of a real service over real sockets: the JSON forms
 * follow the live state (a breaker opens, an instance leaves), the pages
 * never answer on the public port, secrets are redacted, the token is
 * checked, and bad input gets the documented errors.
 *
 * The service runs on a loop of its own in a thread; the test thread is
 * the client. Work that must run on the loop (registering peers) goes
 * through an async handle.
 */
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include <msvc/admin.h>
#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>

#include "service/helpers.h"

#define TOKEN "0123456789abcdef-admin-token"

typedef struct harness_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  msvc_service_t *svc;
  int port, admin_port;
  atomic_int ready, stopped, loop_done;
  atomic_int todo; /* 1 register two peers, 2 drop the first, 3 stop, 4 self as back */
  atomic_int done;
  msvc_registry_lease_t *leases[2];
  int close_rc;
  msvc_service_opts_t opts;
  msvc_breaker_opts_t bo;
  atomic_int created; /* 1 made and started, 2 failed */
  int new_rc, early_port;
  char err[256];
} harness_t;

static harness_t H;

static void wait_for(atomic_int *v, int want, int ms, const char *what) {
  for (int i = 0; i < ms / 5 && atomic_load(v) != want; i++) usleep(5000);
  cr_assert_eq(atomic_load(v), want, "timed out waiting for %s", what);
}

static void on_stopped_cb(msvc_service_t *svc, void *data) {
  harness_t *h = data;

  (void)svc;
  uv_close((uv_handle_t *)&h->wake, NULL);
  atomic_store(&h->stopped, 1);
}

static void on_ready_cb(msvc_service_t *svc, int status, void *data) {
  harness_t *h = data;

  cr_assert_eq(status, MSVC_OK);
  h->admin_port = msvc_admin_port(svc);
  atomic_store(&h->ready, 1);
}

/* Two instances of "back" on ports where nothing listens: every call to
 * them fails, which opens their breakers. */
static void register_peers(harness_t *h) {
  static const msvc_registry_meta_t meta[] = {{"zone", "z<1>"}};
  msvc_registry_instance_t in;
  int i;

  for (i = 0; i < 2; i++) {
    msvc_registry_instance_init(&in);
    in.service = "back";
    in.address = "127.0.0.1";
    in.port = (uint16_t)(1 + i); /* reserved ports: refused at once */
    in.weight = 100;
    in.metadata = meta;
    in.nmetadata = 1;
    cr_assert_eq(msvc_registry_register(msvc_service_registry(h->svc), &in, 60000, NULL,
                                        NULL, &h->leases[i]),
                 MSVC_OK);
  }
}

/* "back" is this service itself: GET /go then calls its own slow /x. */
static void register_self(harness_t *h) {
  msvc_registry_instance_t in;

  msvc_registry_instance_init(&in);
  in.service = "back";
  in.address = "127.0.0.1";
  in.port = (uint16_t)h->port;
  cr_assert_eq(msvc_registry_register(msvc_service_registry(h->svc), &in, 60000, NULL,
                                      NULL, &h->leases[0]),
               MSVC_OK);
}

static void on_wake(uv_async_t *a) {
  harness_t *h = a->data;

  switch (atomic_exchange(&h->todo, 0)) {
  case 1: register_peers(h); break;
  case 2:
    msvc_registry_deregister(h->leases[0], NULL, NULL);
    h->leases[0] = NULL;
    break;
  case 3: msvc_service_stop(h->svc, on_stopped_cb, h); break;
  case 4: register_self(h); break;
  default: return;
  }
  atomic_store(&h->done, 1);
}

static void do_on_loop(harness_t *h, int what) {
  atomic_store(&h->done, 0);
  atomic_store(&h->todo, what);
  uv_async_send(&h->wake);
  if (what != 3) wait_for(&h->done, 1, 10000, "the loop to do it");
}

/* GET /go calls "back" and answers with the outcome. */
static void on_back(int err, const msvc_http_response_t *res, void *data) {
  msvc_http_req_t *req = data;

  (void)res;
  if (err != MSVC_OK) msvc_service_res_upstream_error(msvc_http_req_res(req), "back", err);
  else msvc_http_res_send(msvc_http_req_res(req), 200, "text/plain", "ok", 2);
}

static void on_go(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_request_t r;

  (void)res;
  msvc_service_request_init(&r);
  r.target = "/x";
  r.parent = req;
  r.on_done = on_back;
  r.data = req;
  int rc = msvc_service_call(data, "back", &r, NULL);
  if (rc != MSVC_OK) msvc_http_res_error(res, 500, "INTERNAL", msvc_strerror(rc));
}

/* A rate limit the service installs when set (the limits page test). */
static msvc_mw_ratelimit_t *RL;

static void on_ping(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "pong", 4);
}

/* GET /x answers after SLOW_MS; GET /fast at once. */
#define SLOW_MS 120
typedef struct slow_s {
  uv_timer_t timer;
  msvc_http_res_t *res;
} slow_t;

static void on_slow_closed(uv_handle_t *t) { free(t->data); }

static void on_slow_due(uv_timer_t *t) {
  slow_t *s = t->data;

  msvc_http_res_send(s->res, 200, "text/plain", "slow", 4);
  t->data = s;
  uv_close((uv_handle_t *)t, on_slow_closed);
}

static void on_slow_x(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  slow_t *s = calloc(1, sizeof(*s));

  (void)req;
  s->res = res;
  uv_timer_init(data, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, on_slow_due, SLOW_MS, 0);
}

static void on_fast(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "fast", 4);
}

/* The service is made on its loop's thread: calls by name run on the
 * thread that created the service (or a worker's). */
static void loop_thread(void *arg) {
  harness_t *h = arg;

  h->new_rc = msvc_service_new(&h->loop, "front", &h->opts, &h->svc, h->err,
                               sizeof(h->err));
  if (h->new_rc == MSVC_OK)
    h->new_rc = msvc_service_route(h->svc, "GET", "/go", on_go, h->svc, 0);
  if (h->new_rc == MSVC_OK)
    h->new_rc = msvc_service_route(h->svc, "GET", "/ping", on_ping, NULL, 0);
  if (h->new_rc == MSVC_OK && RL != NULL)
    h->new_rc = msvc_service_use(h->svc, msvc_mw_ratelimit_middleware(RL));
  if (h->new_rc == MSVC_OK)
    h->new_rc = msvc_service_route(h->svc, "GET", "/x", on_slow_x, &h->loop, 0);
  if (h->new_rc == MSVC_OK)
    h->new_rc = msvc_service_route(h->svc, "GET", "/fast", on_fast, NULL, 0);
  if (h->new_rc == MSVC_OK) h->early_port = msvc_admin_port(h->svc);
  if (h->new_rc == MSVC_OK) h->new_rc = msvc_service_start(h->svc);
  if (h->new_rc == MSVC_OK) h->port = msvc_service_port(h->svc);
  atomic_store(&h->created, h->new_rc == MSVC_OK ? 1 : 2);
  if (h->new_rc != MSVC_OK) {
    msvc_service_free(h->svc);
    uv_close((uv_handle_t *)&h->wake, NULL);
  }
  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->close_rc = uv_loop_close(&h->loop);
  atomic_store(&h->loop_done, 1);
}

static void start_with(const char *token, unsigned workers) {
  msvc_service_opts_t *o = &H.opts;

  memset(&H, 0, sizeof(H));
  msvc_log_set_level(MSVC_LOG_OFF);
  unsetenv("MSVC_ADMIN");
  unsetenv("MSVC_ADMIN_TOKEN");
  unsetenv("MSVC_PORT");
  unsetenv("MSVC_WORKERS");
  setenv("MSVC_TEST_SECRET_KEY", "hunter2-do-not-show", 1);
  setenv("MSVC_TEST_DSN", "nats://alice:s3cret-pw@127.0.0.1:4222", 1);
  cr_assert_eq(uv_loop_init(&H.loop), 0);
  cr_assert_eq(uv_async_init(&H.loop, &H.wake, on_wake), 0);
  H.wake.data = &H;
  msvc_service_opts_init(o);
  msvc_breaker_opts_init(&H.bo);
  H.bo.window_calls = 4;
  H.bo.minimum_calls = 2;
  H.bo.wait_in_open_ms = 60000;
  H.bo.wait_in_open_max_ms = 60000;
  o->breaker = &H.bo;
  o->registry_uri = "memory://";
  o->handle_signals = false;
  o->access_log = false;
  o->admin = "127.0.0.1:0";
  o->admin_token = token;
  o->workers = workers;
  o->on_ready = on_ready_cb;
  o->data = &H;
  cr_assert_eq(uv_thread_create(&H.thread, loop_thread, &H), 0);
  for (int i = 0; i < 2000 && atomic_load(&H.created) == 0; i++) usleep(5000);
  cr_assert_eq(atomic_load(&H.created), 1, "service: %s (%s)", msvc_strerror(H.new_rc),
               H.err);
  cr_assert_eq(H.early_port, MSVC_ESTATE);
  wait_for(&H.ready, 1, 10000, "ready");
  cr_assert_gt(H.admin_port, 0);
  cr_assert_neq(H.admin_port, H.port);
}

static void start(const char *token) { start_with(token, 1); }

static void stop(void) {
  do_on_loop(&H, 3);
  wait_for(&H.loop_done, 1, 20000, "the loop to end");
  cr_assert_eq(uv_thread_join(&H.thread), 0);
  cr_assert_eq(H.close_rc, 0, "a handle was left on the loop");
  msvc_service_free(H.svc);
}

TestSuite(admin_service, .timeout = 60);

static cJSON *get_json(int port, const char *path, const char *headers) {
  resp_t r;
  cJSON *j;

  cr_assert_eq(cl_get(port, path, headers, &r), 200, "GET %s", path);
  j = cJSON_Parse(r.body);
  cr_assert_not_null(j, "JSON of %s: %s", path, r.body);
  resp_free(&r);
  return j;
}

/* The array under key holding the object whose field f is v. */
static const cJSON *find(const cJSON *arr, const char *f, const char *v) {
  const cJSON *e;

  cJSON_ArrayForEach(e, arr) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, f);
    if (cJSON_IsString(x) && strcmp(x->valuestring, v) == 0) return e;
  }
  return NULL;
}

static int registry_count(void) {
  cJSON *j = get_json(H.admin_port, "/debug/registry?format=json", "");
  const cJSON *back = find(cJSON_GetObjectItem(j, "services"), "service", "back");
  int n = back != NULL ? cJSON_GetObjectItem(back, "count")->valueint : -1;

  cJSON_Delete(j);
  return n;
}

Test(admin_service, pages_follow_the_live_state) {
  const cJSON *svc, *ep;
  cJSON *j;
  resp_t r;
  int i, n = -1;

  start(NULL);
  j = get_json(H.admin_port, "/debug/?format=json", "");
  svc = cJSON_GetObjectItem(j, "service");
  cr_assert_str_eq(cJSON_GetObjectItem(svc, "name")->valuestring, "front");
  cr_assert_str_eq(cJSON_GetObjectItem(svc, "state")->valuestring, "ready");
  cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "registry"), "backend")
                       ->valuestring, "memory");
  cJSON_Delete(j);

  do_on_loop(&H, 1);
  /* Calls fail (nothing listens on ports 1 and 2) until both breakers open. */
  for (i = 0; i < 40; i++) {
    cr_assert_geq(cl_get(H.port, "/go", "", &r), 500);
    resp_free(&r);
    j = get_json(H.admin_port, "/debug/breakers?format=json", "");
    ep = find(cJSON_GetObjectItem(j, "endpoints"), "endpoint", "127.0.0.1:1");
    n = ep != NULL && strcmp(cJSON_GetObjectItem(ep, "state")->valuestring, "open") == 0;
    if (n) cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(ep, "next_probe_in_ms")));
    cJSON_Delete(j);
    if (n) break;
  }
  if (n != 1) {
    char *txt;
    j = get_json(H.admin_port, "/debug/breakers?format=json", "");
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    j = get_json(H.admin_port, "/debug/registry?format=json", "");
    fprintf(stderr, "%s\n", cJSON_PrintUnformatted(j));
    cl_get(H.port, "/go", "", &r);
    fprintf(stderr, "%s\n", r.body);
    cr_assert_eq(n, 1, "the breaker of 127.0.0.1:1 never showed open: %s", txt);
  }
  j = get_json(H.admin_port, "/debug/balancers?format=json", "");
  ep = find(cJSON_GetObjectItem(find(cJSON_GetObjectItem(j, "services"), "service", "back"),
                                "endpoints"),
            "endpoint", "127.0.0.1:1");
  cr_assert_not_null(ep);
  cr_assert_str_eq(cJSON_GetObjectItem(ep, "state")->valuestring, "excluded");
  cr_assert_str_eq(cJSON_GetObjectItem(ep, "why")->valuestring, "breaker open");
  cJSON_Delete(j);

  j = get_json(H.admin_port, "/debug/pools?format=json", "");
  ep = find(cJSON_GetObjectItem(j, "client"), "endpoint", "127.0.0.1:2");
  cr_assert_not_null(ep);
  cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(ep, "idle")));
  cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(ep, "queued")));
  cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "server"), "connections")));
  cJSON_Delete(j);

  cr_assert_eq(registry_count(), 2);
  do_on_loop(&H, 2);
  for (i = 0; i < 400 && (n = registry_count()) != 1; i++) usleep(10000);
  cr_assert_eq(n, 1, "the removed instance is still listed");

  /* The request ring saw the calls to /go, with their 5xx, and requests
   * that no route took. */
  cr_assert_eq(cl_get(H.port, "/nope", "", &r), 404);
  resp_free(&r);
  j = get_json(H.admin_port, "/debug/requests?format=json", "");
  cr_assert_not_null(find(cJSON_GetObjectItem(j, "routes"), "route", "GET (no route)"));
  ep = find(cJSON_GetObjectItem(j, "routes"), "route", "GET /go");
  cr_assert_not_null(ep);
  cr_assert_geq(cJSON_GetObjectItem(ep, "errors")->valuedouble, 1);
  cJSON_Delete(j);
  stop();
}

Test(admin_service, never_on_the_public_port) {
  static const char *const pages[] = {"/debug/", "/debug/config", "/debug/breakers",
                                      "/debug/loglevel"};
  resp_t r;
  size_t i;

  start(NULL);
  for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
    cr_assert_eq(cl_get(H.port, pages[i], "", &r), 404, "%s on the public port", pages[i]);
    cr_assert_null(strstr(r.body, "<html"));
    resp_free(&r);
  }
  /* ... and the admin listener serves no application route. */
  cr_assert_eq(cl_get(H.admin_port, "/go", "", &r), 404);
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/health", "", &r), 404);
  resp_free(&r);
  stop();
}

Test(admin_service, secrets_are_redacted) {
  resp_t r;

  start(TOKEN);
  cr_assert_eq(cl_get(H.admin_port, "/debug/config?format=json",
                      "Authorization: Bearer " TOKEN "\r\n", &r), 200);
  cr_assert_null(strstr(r.body, "hunter2"), "%s", r.body);
  cr_assert_null(strstr(r.body, "s3cret-pw"), "%s", r.body);
  cr_assert_null(strstr(r.body, TOKEN), "the admin token shows");
  cr_assert_not_null(strstr(r.body, "\"MSVC_TEST_SECRET_KEY\":\"[redacted]\""), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "nats://alice:[redacted]@127.0.0.1:4222"), "%s", r.body);
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/config", "Authorization: Bearer " TOKEN "\r\n",
                      &r), 200);
  cr_assert_null(strstr(r.body, "hunter2"));
  cr_assert_null(strstr(r.body, TOKEN));
  resp_free(&r);
  stop();
}

Test(admin_service, token_and_bad_input) {
  char big[12000], raw[13000], hv[256];
  resp_t r;

  memset(&r, 0, sizeof(r));

  start(TOKEN);
  cr_assert_eq(cl_get(H.admin_port, "/debug/", "", &r), 401);
  cr_assert_str_eq(resp_header(&r, "WWW-Authenticate", hv, sizeof(hv)),
                   "Bearer realm=\"msvc-admin\"");
  cr_assert_not_null(strstr(r.body, "\"UNAUTHENTICATED\""));
  cr_assert_not_null(resp_header(&r, "X-Request-Id", hv, sizeof(hv)));
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/", "Authorization: Bearer wrong-token-xxxxxxxxx\r\n",
                      &r), 401);
  cr_assert_not_null(resp_header(&r, "WWW-Authenticate", hv, sizeof(hv)));
  cr_assert_not_null(strstr(hv, "invalid_token"), "%s", hv);
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/", "Authorization: Bearer " TOKEN "x\r\n", &r),
               401);
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/", "Authorization: Bearer " TOKEN "\r\n", &r),
               200);
  cr_assert_not_null(strstr(r.body, "<!DOCTYPE html>"));
  cr_assert_not_null(resp_header(&r, "Content-Security-Policy", hv, sizeof(hv)));
  resp_free(&r);
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
  cr_assert_eq(cl_get(H.admin_port, "/debug/nope", AUTH, &r), 404);
  cr_assert_not_null(strstr(r.body, "\"NOT_FOUND\""));
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/?format=xml", AUTH, &r), 400);
  cr_assert_not_null(strstr(r.body, "\"INVALID_ARGUMENT\""));
  resp_free(&r);
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(raw, sizeof(raw), "GET /debug/?q=%s HTTP/1.1\r\nHost: h\r\n" AUTH
           "Connection: close\r\n\r\n", big);
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 431);
  cr_assert_not_null(strstr(r.body, "\"HEADERS_TOO_LARGE\""));
  resp_free(&r);
  /* Log level: POST only, valid names only, same origin only. */
  snprintf(raw, sizeof(raw), "POST /debug/loglevel?format=json HTTP/1.1\r\nHost: h\r\n"
           AUTH "Content-Type: application/json\r\nContent-Length: 17\r\n"
           "Connection: close\r\n\r\n{\"level\":\"debug\"}");
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 200, "%s", r.body);
  cr_assert_not_null(strstr(r.body, "\"level\":\"debug\""));
  resp_free(&r);
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_DEBUG);
  msvc_log_set_level(MSVC_LOG_OFF);
  snprintf(raw, sizeof(raw), "POST /debug/loglevel HTTP/1.1\r\nHost: h\r\n" AUTH
           "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n"
           "Connection: close\r\n\r\nlevel=loud!");
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 400);
  resp_free(&r);
  snprintf(raw, sizeof(raw), "POST /debug/loglevel HTTP/1.1\r\nHost: h\r\n" AUTH
           "Content-Type: application/json\r\nContent-Length: 9\r\n"
           "Connection: close\r\n\r\n{\"level\":");
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 400);
  cr_assert_not_null(strstr(r.body, "\"INVALID_ARGUMENT\""));
  resp_free(&r);
  snprintf(raw, sizeof(raw), "POST /debug/loglevel HTTP/1.1\r\nHost: h\r\n" AUTH
           "Origin: http://evil.example\r\nContent-Length: 10\r\n"
           "Connection: close\r\n\r\nlevel=info");
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 403);
  resp_free(&r);
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_OFF);
  snprintf(raw, sizeof(raw), "POST /debug/loglevel HTTP/1.1\r\nHost: h\r\n"
           "Content-Length: 10\r\nConnection: close\r\n\r\nlevel=info");
  cr_assert_eq(cl_request(H.admin_port, raw, &r), 401);
  resp_free(&r);
  cr_assert_eq(cl_get(H.admin_port, "/debug/loglevel", AUTH, &r), 200);
  resp_free(&r);
  stop();
}

/* A bad MSVC_ADMIN is a configuration error naming the variable. */
Test(admin_service, bad_variable_is_refused) {
  static const char *const bad[] = {"9901", "127.0.0.1", "127.0.0.1:99999", ":80",
                                    "host:port", "[::1]9901"};
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  uv_loop_t loop;
  char err[256];
  size_t i;

  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    setenv("MSVC_ADMIN", bad[i], 1);
    err[0] = '\0';
    cr_assert_eq(msvc_service_new(&loop, "x", &o, &svc, err, sizeof(err)), MSVC_ECONFIG,
                 "%s", bad[i]);
    cr_assert_not_null(strstr(err, "MSVC_ADMIN"), "%s", err);
    cr_assert_null(strchr(err, '\n'));
  }
  setenv("MSVC_ADMIN", "127.0.0.1:0", 1);
  setenv("MSVC_ADMIN_TOKEN", "short", 1);
  cr_assert_eq(msvc_service_new(&loop, "x", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "MSVC_ADMIN_TOKEN"), "%s", err);
  unsetenv("MSVC_ADMIN_TOKEN");
  setenv("MSVC_PORT", "19999", 1);
  setenv("MSVC_ADMIN", "127.0.0.1:19999", 1);
  cr_assert_eq(msvc_service_new(&loop, "x", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "public port"), "%s", err);
  unsetenv("MSVC_PORT");
  /* On but never started: freeing releases its listener from the loop. */
  cr_assert_eq(msvc_service_new(&loop, "x", &o, &svc, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_admin_port(svc), MSVC_ESTATE);
  msvc_service_free(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  unsetenv("MSVC_ADMIN");
  /* Off by default: no listener, msvc_admin_port() says so. */
  cr_assert_eq(msvc_service_new(&loop, "x", &o, &svc, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_admin_port(svc), MSVC_ENOENT);
  msvc_service_free(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

static int section_fn(struct msvc_service_s *svc, cJSON *out, void *data) {
  cJSON_AddStringToObject(out, "service", msvc_service_name(svc));
  cJSON_AddStringToObject(out, "said", data);
  return MSVC_OK;
}

/* A page another block adds shows on the listener, in both forms, and
 * goes away when removed. */
Test(admin_service, sections_are_served_until_removed) {
  cJSON *j;
  resp_t r;

  cr_assert_eq(msvc_admin_section_add("extra", "Extra <page>", section_fn, "<hi>"), MSVC_OK);
  start(NULL);
  j = get_json(H.admin_port, "/debug/extra?format=json", "");
  cr_assert_str_eq(cJSON_GetObjectItem(j, "service")->valuestring, "front");
  cr_assert_str_eq(cJSON_GetObjectItem(j, "said")->valuestring, "<hi>");
  cJSON_Delete(j);
  cr_assert_eq(cl_get(H.admin_port, "/debug/extra", "", &r), 200);
  cr_assert_not_null(strstr(r.body, "&lt;hi&gt;"));
  cr_assert_not_null(strstr(r.body, "Extra &lt;page&gt;"));
  cr_assert_null(strstr(r.body, "<hi>"));
  resp_free(&r);
  /* Every page lists it in the navigation. */
  cr_assert_eq(cl_get(H.admin_port, "/debug/breakers", "", &r), 200);
  cr_assert_not_null(strstr(r.body, "href=\"/debug/extra\""));
  resp_free(&r);
  cr_assert_eq(msvc_admin_section_remove("extra"), MSVC_OK);
  cr_assert_eq(cl_get(H.admin_port, "/debug/extra", "", &r), 404);
  resp_free(&r);
  stop();
}

/* With worker loops, every loop's requests go into the one ring. */
Test(admin_service, worker_loops_share_the_charts) {
  const cJSON *row;
  cJSON *j;
  resp_t r;
  int i;

  start_with(NULL, 2);
  for (i = 0; i < 20; i++) {
    cr_assert_eq(cl_get(H.port, "/ready", "", &r), 200);
    resp_free(&r);
  }
  j = get_json(H.admin_port, "/debug/requests?format=json", "");
  row = find(cJSON_GetObjectItem(j, "routes"), "route", "GET /ready");
  cr_assert_not_null(row);
  cr_assert_eq(cJSON_GetObjectItem(row, "requests")->valuedouble, 20);
  cJSON_Delete(j);
  stop();
}

static cJSON *rate_row(cJSON *page, const char *name) {
  cJSON *row;

  cJSON_ArrayForEach(row, cJSON_GetObjectItem(page, "rate_limits")) {
    cJSON *n = cJSON_GetObjectItem(row, "name");

    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return row;
  }
  return NULL;
}

static double num(cJSON *o, const char *k) {
  cJSON *v = cJSON_GetObjectItem(o, k);

  cr_assert(cJSON_IsNumber(v), "%s is a number", k);
  return v->valuedouble;
}

/* The limits page follows the live state: a tripped rate limit shows its
 * rejections, the concurrency limit its current value and range. */
Test(admin_service, limits_page_follows_live_state) {
  msvc_mw_ratelimit_opts_t ro;
  cJSON *j, *row, *c;
  resp_t r;
  int i, ok = 0, limited = 0;

  msvc_mw_ratelimit_opts_init(&ro);
  ro.name = "ping-<route>";
  ro.key = MSVC_MW_RATELIMIT_BY_ROUTE;
  ro.route = "/ping";
  ro.rate.rate = 1;
  ro.rate.period_ms = 600000;
  ro.rate.burst = 2;
  ro.rate.max_keys = 64;
  cr_assert_eq(msvc_mw_ratelimit_new(&ro, &RL), MSVC_OK);
  start(NULL);

  j = get_json(H.admin_port, "/debug/limits?format=json", "");
  row = rate_row(j, "ping-<route>");
  cr_assert_not_null(row, "the rate limit is listed");
  cr_assert_eq(num(row, "rejected"), 0);
  cJSON_Delete(j);
  for (i = 0; i < 5; i++) {
    int st = cl_get(H.port, "/ping", "", &r);

    ok += st == 200;
    limited += st == 429;
    resp_free(&r);
  }
  cr_assert_eq(ok, 2);
  cr_assert_eq(limited, 3);

  j = get_json(H.admin_port, "/debug/limits?format=json", "");
  row = rate_row(j, "ping-<route>");
  cr_assert_not_null(row);
  cr_assert_str_eq(cJSON_GetObjectItem(row, "key")->valuestring, "route");
  cr_assert_str_eq(cJSON_GetObjectItem(row, "scope")->valuestring, "/ping");
  cr_assert_eq(num(row, "rejected"), 3);
  cr_assert_eq(num(row, "allowed"), 2);
  cr_assert_eq(num(row, "keys"), 1);
  cr_assert_eq(num(row, "max_keys"), 64);
  cr_assert_eq(num(row, "rate"), 1);
  cr_assert_eq(num(row, "burst"), 2);
  cr_assert_eq(num(row, "instances"), 1);
  cr_assert_eq(num(row, "instance_burst"), 2);
  c = cJSON_GetObjectItem(j, "concurrency");
  cr_assert_not_null(c);
  cr_assert_str_eq(cJSON_GetObjectItem(c, "mode")->valuestring, "adaptive");
  cr_assert_eq(num(c, "limit"), msvc_limit_adaptive_limit(msvc_service_concurrency(H.svc)));
  cr_assert_eq(num(c, "min_limit"), 512);
  cr_assert_eq(num(c, "max_limit"), 5000);
  cr_assert_eq(num(c, "in_flight"), 0);
  cr_assert_eq(num(c, "shed"), 0);
  cJSON_Delete(j);

  cr_assert_eq(cl_get(H.admin_port, "/debug/limits", "", &r), 200);
  cr_assert_not_null(strstr(r.body, "ping-&lt;route&gt;"), "%s", r.body);
  cr_assert_null(strstr(r.body, "ping-<route>"));
  resp_free(&r);
  stop();
  msvc_mw_ratelimit_free(RL);
  RL = NULL;
}

/* The tracez page: the slow route is among the slowest with its client
 * span; the counts follow the requests made. */
Test(admin_service, tracez_shows_slow_requests_with_their_spans) {
  const cJSON *go, *fast, *slowest, *t, *spans, *sp, *root;
  bool client = false;
  cJSON *j;
  resp_t r;
  int i;

  start(NULL);
  do_on_loop(&H, 4);
  for (i = 0; i < 6; i++) {
    cr_assert_eq(cl_get(H.port, "/fast", "", &r), 200);
    resp_free(&r);
  }
  cr_assert_eq(cl_get(H.port, "/go", "", &r), 200, "GET /go: %s", r.body);
  resp_free(&r);
  j = get_json(H.admin_port, "/debug/tracez?format=json", "");
  cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "recording"), "state")
                       ->valuestring, "on");
  fast = find(cJSON_GetObjectItem(j, "routes"), "route", "GET /fast");
  go = find(cJSON_GetObjectItem(j, "routes"), "route", "GET /go");
  cr_assert_not_null(fast);
  cr_assert_not_null(go);
  cr_assert_eq(cJSON_GetObjectItem(fast, "requests")->valuedouble, 6);
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(fast, "recent")), 5);
  cr_assert_eq(cJSON_GetObjectItem(go, "requests")->valuedouble, 1);
  cr_assert_geq(cJSON_GetObjectItem(go, "slowest_ms")->valuedouble, SLOW_MS);
  slowest = cJSON_GetObjectItem(go, "slowest");
  cr_assert_eq(cJSON_GetArraySize(slowest), 1);
  t = cJSON_GetArrayItem(slowest, 0);
  cr_assert_geq(cJSON_GetObjectItem(t, "duration_ms")->valuedouble, SLOW_MS);
  spans = cJSON_GetObjectItem(t, "spans");
  cr_assert_geq(cJSON_GetArraySize(spans), 2);
  root = cJSON_GetArrayItem(spans, 0);
  cr_assert_str_eq(cJSON_GetObjectItem(root, "kind")->valuestring, "server");
  cr_assert_str_eq(cJSON_GetObjectItem(root, "name")->valuestring, "GET /go");
  cJSON_ArrayForEach(sp, spans) {
    if (strcmp(cJSON_GetObjectItem(sp, "kind")->valuestring, "client") != 0) continue;
    client = true;
    cr_assert_str_eq(cJSON_GetObjectItem(sp, "parent_span_id")->valuestring,
                     cJSON_GetObjectItem(root, "span_id")->valuestring);
    cr_assert_geq(cJSON_GetObjectItem(sp, "duration_ms")->valuedouble, SLOW_MS);
  }
  cr_assert(client, "no client span under GET /go");
  /* The callee's own server span is a trace root of its route. */
  cr_assert_not_null(find(cJSON_GetObjectItem(j, "routes"), "route", "GET /x"));
  cJSON_Delete(j);
  cr_assert_eq(cl_get(H.admin_port, "/debug/tracez", "", &r), 200);
  cr_assert_not_null(strstr(r.body, "<svg class=\"wf\""));
  resp_free(&r);
  stop();
}
