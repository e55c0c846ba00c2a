/*
 * The life of a service on real sockets: start, registration, readiness,
 * the built-in routes, a graceful stop under load (SIGTERM), a second
 * SIGINT, worker loops, and a loop left with no handle at the end.
 *
 * The service runs on a loop of its own in a thread; the test thread is
 * the client and sends signals to the process.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>

#include "service/helpers.h"
#include "service/service-core.h"
#include "tls/helpers.h"

#define NAME "lifecycle"
#define NHELD 50
#define JWKS LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/jwks.json"

typedef struct harness_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  uv_timer_t release;
  msvc_service_t *svc;
  int port;
  atomic_int ready;
  atomic_int stopped;
  atomic_int loop_done;
  atomic_int stop_asked;
  int close_rc;
  /* held requests of GET /slow */
  msvc_http_res_t *held[NHELD + 8];
  atomic_int nheld;
  atomic_int answered;
  /* the registry as a peer sees it */
  bool watch;
  atomic_int seen;
  atomic_int gone;
  atomic_int connect_when_gone; /* 1: the listener still took connections */
  /* worker loops */
  uv_mutex_t mu;
  uv_thread_t threads[4];
  int nthreads;
} harness_t;

static harness_t H;

static void wait_for(atomic_int *v, int want, int ms, const char *what) {
  for (int i = 0; i < ms / 5 && atomic_load(v) != want; i++)
    usleep(5000);
  cr_assert_eq(atomic_load(v), want, "timed out waiting for %s", what);
}

static int try_connect(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
  close(fd);
  return rc;
}

/* ---- handlers (loop threads) --------------------------------------------- */

static void on_slow(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  harness_t *h = data;
  int i = atomic_fetch_add(&h->nheld, 1);

  (void)req;
  if (i >= NHELD + 8) {
    msvc_http_res_error(res, 500, "INTERNAL", "too many");
    return;
  }
  h->held[i] = res;
}

static void on_cancel_finish(msvc_http_req_t *req, void *data) {
  (void)data;
  msvc_http_res_send(msvc_http_req_res(req), 200, NULL, NULL, 0);
}

static void on_forever(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  harness_t *h = data;

  (void)res;
  msvc_http_req_on_cancel(req, on_cancel_finish, NULL);
  atomic_fetch_add(&h->nheld, 1);
}

static void on_who(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  harness_t *h = data;
  uv_thread_t self = uv_thread_self();
  int i;

  (void)req;
  uv_mutex_lock(&h->mu);
  for (i = 0; i < h->nthreads; i++)
    if (uv_thread_equal(&h->threads[i], &self)) break;
  if (i == h->nthreads && h->nthreads < 4) h->threads[h->nthreads++] = self;
  uv_mutex_unlock(&h->mu);
  msvc_http_res_send(res, 200, "text/plain", "me", 2);
}

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello", 5);
}

static void release_held(uv_timer_t *t) {
  harness_t *h = t->data;
  int n = atomic_load(&h->nheld);

  for (int i = 0; i < n && i < NHELD + 8; i++)
    if (h->held[i] != NULL && msvc_http_res_send(h->held[i], 200, "text/plain", "ok", 2) == 0)
      atomic_fetch_add(&h->answered, 1);
}

/* ---- the registry, as a peer sees it ----------------------------------------- */

static void on_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set, void *data) {
  harness_t *h = data;
  const char *id = msvc_service_instance_id(h->svc);
  bool present = false;

  (void)w;
  for (size_t i = 0; id != NULL && i < msvc_registry_set_count(set); i++)
    present = present || strcmp(msvc_registry_set_at(set, i)->id, id) == 0;
  if (present) {
    atomic_store(&h->seen, 1);
  } else if (atomic_load(&h->seen) && !atomic_load(&h->gone)) {
    /* Peers are told before the listener closes. */
    atomic_store(&h->connect_when_gone, try_connect(h->port) == 0 ? 1 : -1);
    atomic_store(&h->gone, 1);
    uv_timer_start(&h->release, release_held, 2000, 0);
  }
}

/* ---- the service's loop ---------------------------------------------------- */

static void on_ready_cb(msvc_service_t *svc, int status, void *data) {
  harness_t *h = data;

  cr_assert_eq(status, MSVC_OK);
  if (h->watch)
    cr_assert_eq(msvc_registry_watch(msvc_service_registry(svc), NAME, on_watch, h, NULL),
                 MSVC_OK);
  atomic_store(&h->ready, 1);
}

static void on_stopped_cb(msvc_service_t *svc, void *data) {
  harness_t *h = data;

  cr_assert_eq(msvc_service_state(svc), MSVC_SERVICE_STOPPED);
  uv_close((uv_handle_t *)&h->wake, NULL);
  uv_close((uv_handle_t *)&h->release, NULL);
  atomic_store(&h->stopped, 1);
}

static void on_wake(uv_async_t *a) {
  harness_t *h = a->data;

  if (atomic_exchange(&h->stop_asked, 0) == 1) {
    cr_assert_eq(msvc_service_stop(h->svc, on_stopped_cb, h), MSVC_OK);
    cr_assert_eq(msvc_service_stop(h->svc, NULL, NULL), MSVC_ESTATE);
  }
}

static void loop_main(void *arg) {
  harness_t *h = arg;

  uv_run(&h->loop, UV_RUN_DEFAULT);
  h->close_rc = uv_loop_close(&h->loop);
  atomic_store(&h->loop_done, 1);
}

static void h_new(harness_t *h, msvc_service_opts_t *o) {
  char err[256] = "";

  cr_assert_eq(uv_loop_init(&h->loop), 0);
  cr_assert_eq(uv_async_init(&h->loop, &h->wake, on_wake), 0);
  h->wake.data = h;
  cr_assert_eq(uv_timer_init(&h->loop, &h->release), 0);
  h->release.data = h;
  uv_mutex_init(&h->mu);
  o->on_ready = on_ready_cb;
  o->on_stopped = on_stopped_cb;
  o->data = h;
  o->access_log = false;
  cr_assert_eq(msvc_service_new(&h->loop, NAME, o, &h->svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/slow", on_slow, h, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/forever", on_forever, h, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/who", on_who, h, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/hello", on_hello, h, 0), MSVC_OK);
}

static void h_run(harness_t *h) {
  cr_assert_eq(msvc_service_start(h->svc), MSVC_OK);
  cr_assert_eq(msvc_service_start(h->svc), MSVC_ESTATE);
  cr_assert_eq(msvc_service_route(h->svc, "GET", "/late", on_hello, h, 0), MSVC_ESTATE);
  h->port = msvc_service_port(h->svc);
  cr_assert_gt(h->port, 0);
  cr_assert_eq(uv_thread_create(&h->thread, loop_main, h), 0);
}

/* Waits for the loop to end and checks that the service left nothing. */
static void h_join(harness_t *h) {
  wait_for(&h->loop_done, 1, 20000, "the loop to end");
  cr_assert_eq(uv_thread_join(&h->thread), 0);
  cr_assert_eq(atomic_load(&h->stopped), 1, "stop callback");
  cr_assert_eq(h->close_rc, 0, "a handle of the service was left on the loop");
  msvc_service_free(h->svc);
  uv_mutex_destroy(&h->mu);
}

static void quiet(void) {
  memset(&H, 0, sizeof(H));
  msvc_log_set_level(MSVC_LOG_OFF);
  unsetenv("MSVC_PORT");
  unsetenv("MSVC_WORKERS");
  unsetenv("MSVC_SERVICE_NAME");
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_JWKS_URL");
}

TestSuite(service_lifecycle, .init = quiet, .timeout = 60);

/* ---- client helpers ------------------------------------------------------- */

static int get(int port, const char *path, resp_t *r) {
  char raw[256];

  snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
           path);
  return cl_request(port, raw, r);
}

static void send_all(int fd, const char *s) {
  size_t off = 0, n = strlen(s);

  while (off < n) {
    ssize_t k = send(fd, s + off, n - off, MSG_NOSIGNAL);
    cr_assert_gt(k, 0, "send: %s", strerror(errno));
    off += (size_t)k;
  }
}

/* Reads until the server closes; returns the bytes (caller frees). */
static char *read_to_eof(int fd) {
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);

  for (;;) {
    ssize_t n;
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    n = recv(fd, buf + len, cap - len - 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  return buf;
}

/* ---- tests ------------------------------------------------------------------ */

/* Instance files of NAME in a local registry directory. */
static int count_instances(const char *dir) {
  char sub[256];
  DIR *d;
  struct dirent *e;
  int n = 0;

  snprintf(sub, sizeof(sub), "%s/%s", dir, NAME);
  if ((d = opendir(sub)) == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (e->d_name[0] != '.' && len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) n++;
  }
  closedir(d);
  return n;
}

Test(service_lifecycle, ready_only_once_registered_local) {
  msvc_service_opts_t o;
  char dir[] = "/tmp/msvc-svc-XXXXXX", uri[256], path[128];
  resp_t r;
  int fd;

  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/reg", dir);
  snprintf(uri, sizeof(uri), "local://%s", path);
  msvc_service_opts_init(&o);
  o.registry_uri = uri;
  o.handle_signals = true;
  h_new(&H, &o);
  /* Make the registry fail: its directory becomes a file. */
  cr_assert_eq(rmdir(path), 0, "%s", strerror(errno));
  fd = open(path, O_CREAT | O_WRONLY, 0600);
  cr_assert_geq(fd, 0);
  close(fd);
  h_run(&H);

  cr_assert_eq(get(H.port, "/health", &r), 200);
  cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
  resp_free(&r);
  cr_assert_eq(get(H.port, "/ready", &r), 503);
  cr_assert_not_null(strstr(r.body, "\"status\":\"not_ready\""), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "\"checks\":{"), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "\"registered\":"), "%s", r.body);
  cr_assert_null(strstr(r.body, "\"registered\":\"ok\""), "%s", r.body);
  resp_free(&r);
  cr_assert_eq(atomic_load(&H.ready), 0);

  /* Repair it: the lease's retry registers, and the service is ready. */
  cr_assert_eq(unlink(path), 0);
  cr_assert_eq(mkdir(path, 0700), 0);
  wait_for(&H.ready, 1, 15000, "readiness");
  cr_assert_eq(get(H.port, "/ready", &r), 200);
  cr_assert_str_eq(r.body, "{\"status\":\"ready\"}");
  resp_free(&r);
  cr_assert_eq(msvc_service_state(H.svc), MSVC_SERVICE_READY);

  /* The instance is in the directory, where peers look for it. */
  cr_assert_eq(count_instances(path), 1, "one instance file");

  cr_assert_eq(raise(SIGTERM), 0);
  h_join(&H);
  cr_assert_eq(count_instances(path), 0, "the instance was deregistered");
  cr_assert_neq(try_connect(H.port), 0, "the listener is closed");
  {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
  }
}

typedef struct resolved_s {
  atomic_int done;
  int count;
  int port;
  char id[160];
} resolved_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  resolved_t *rs = data;

  cr_assert_eq(status, MSVC_OK);
  rs->count = (int)msvc_registry_set_count(set);
  if (rs->count > 0) {
    rs->port = msvc_registry_set_at(set, 0)->port;
    snprintf(rs->id, sizeof(rs->id), "%s", msvc_registry_set_at(set, 0)->id);
  }
  atomic_store(&rs->done, 1);
}

/* Resolves NAME through a registry of our own on a loop of our own. */
static void resolve_memory(resolved_t *rs) {
  uv_loop_t loop;
  msvc_registry_t *reg;

  memset(rs, 0, sizeof(*rs));
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_registry_new(&loop, "memory://", NULL, &reg), MSVC_OK);
  cr_assert_eq(msvc_registry_resolve(reg, NAME, on_resolved, rs), MSVC_OK);
  while (!atomic_load(&rs->done))
    uv_run(&loop, UV_RUN_ONCE);
  msvc_registry_close(reg, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(service_lifecycle, sigterm_under_load_answers_everything) {
  msvc_service_opts_t o;
  resolved_t rs;
  int fds[NHELD];
  char *out;

  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.drain_timeout_ms = 10000;
  H.watch = true;
  h_new(&H, &o);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  wait_for(&H.seen, 1, 10000, "the watcher to see the instance");
  resolve_memory(&rs);
  cr_assert_eq(rs.count, 1);
  cr_assert_eq(rs.port, H.port);
  cr_assert_str_eq(rs.id, msvc_service_instance_id(H.svc));

  for (int i = 0; i < NHELD; i++) {
    fds[i] = cl_connect(H.port);
    send_all(fds[i], "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  wait_for(&H.nheld, NHELD, 10000, "50 requests in flight");
  cr_assert_eq(raise(SIGTERM), 0);

  wait_for(&H.gone, 1, 10000, "the watcher to see the instance gone");
  cr_assert_eq(atomic_load(&H.connect_when_gone), 1,
               "the listener closed before peers saw the instance gone");
  /* Then the listener closes: new connections are refused. */
  for (int i = 0; i < 400 && try_connect(H.port) == 0; i++)
    usleep(5000);
  cr_assert_neq(try_connect(H.port), 0, "the listener is still open");
  cr_assert_eq(msvc_service_state(H.svc), MSVC_SERVICE_STOPPING);
  /* A new request on an open connection during the drain is refused. */
  send_all(fds[0], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");

  for (int i = 0; i < NHELD; i++) {
    out = read_to_eof(fds[i]);
    cr_assert_eq(strncmp(out, "HTTP/1.1 200 ", 13), 0, "request %d: %.80s", i, out);
    cr_assert_not_null(strstr(out, "\r\n\r\nok"), "request %d", i);
    if (i == 0) {
      const char *second = strstr(out + 13, "HTTP/1.1 ");
      cr_assert_not_null(second, "no answer to the request sent while draining: %s", out);
      cr_assert_eq(strncmp(second, "HTTP/1.1 503 ", 13), 0, "%.80s", second);
      cr_assert_not_null(strstr(second, "SHUTTING_DOWN"), "%s", second);
    }
    free(out);
    close(fds[i]);
  }
  h_join(&H);
  cr_assert_eq(atomic_load(&H.answered), NHELD);
  resolve_memory(&rs);
  cr_assert_eq(rs.count, 0, "still registered");
}

Test(service_lifecycle, second_sigint_stops_at_once) {
  msvc_service_opts_t o;
  uint64_t t0;
  int fd;
  char *out;

  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.drain_timeout_ms = 30000;
  h_new(&H, &o);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  fd = cl_connect(H.port);
  send_all(fd, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
  wait_for(&H.nheld, 1, 10000, "the request to be held");
  t0 = uv_hrtime();
  cr_assert_eq(raise(SIGINT), 0);
  for (int i = 0; i < 1000 && msvc_service_state(H.svc) != MSVC_SERVICE_STOPPING; i++)
    usleep(2000);
  cr_assert_eq(msvc_service_state(H.svc), MSVC_SERVICE_STOPPING);
  cr_assert_eq(raise(SIGINT), 0);
  h_join(&H);
  cr_assert_lt((uv_hrtime() - t0) / 1000000, 5000, "the drain was not cut");
  out = read_to_eof(fd);
  cr_assert_null(strstr(out, "HTTP/1.1 200"), "the held request was not cut: %s", out);
  free(out);
  close(fd);
}

Test(service_lifecycle, workers_share_the_port) {
  msvc_service_opts_t o;
  resp_t r;

  setenv("MSVC_JWT_JWKS_FILE", JWKS, 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.workers = 2;
  h_new(&H, &o);
  cr_assert_eq(msvc_service_route(H.svc, "GET", "/me", on_hello, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_OK);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  for (int i = 0; i < 200; i++) {
    cr_assert_eq(get(H.port, "/who", &r), 200);
    resp_free(&r);
    uv_mutex_lock(&H.mu);
    int n = H.nthreads;
    uv_mutex_unlock(&H.mu);
    if (n == 2 && i >= 10) break;
  }
  cr_assert_eq(H.nthreads, 2, "both workers serve");
  /* Every worker verifies tokens with the one key set. */
  for (int i = 0; i < 8; i++) {
    cr_assert_eq(get(H.port, "/me", &r), 401);
    resp_free(&r);
  }
  cr_assert_eq(get(H.port, "/ready", &r), 200);
  resp_free(&r);
  cr_assert_eq(get(H.port, "/metrics", &r), 200);
  cr_assert_not_null(strstr(r.body, "msvc_http_server_requests_total"), "%s", r.body);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
  cr_assert_neq(try_connect(H.port), 0);
}

Test(service_lifecycle, metrics_pass_promtool) {
  msvc_service_opts_t o;
  char path[] = "/tmp/msvc-metrics-XXXXXX", cmd[256];
  resp_t r;
  FILE *f;
  int fd, rc;

  if (system("command -v promtool >/dev/null 2>&1") != 0) cr_skip_test("no promtool");
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  cr_assert_eq(get(H.port, "/hello", &r), 200);
  resp_free(&r);
  cr_assert_eq(get(H.port, "/nothing-here", &r), 404);
  resp_free(&r);
  cr_assert_eq(get(H.port, "/metrics", &r), 200);
  cr_assert_not_null(strstr(r.head, "text/plain; version=0.0.4"), "%s", r.head);
  cr_assert_not_null(strstr(r.body, "route=\"/hello\""), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "process_"), "process collector");
  cr_assert_not_null(strstr(r.body, "msvc_registry_errors_total{backend=\"memory\","
                                    "op=\"register\"} 0"),
                     "registry error series start at 0: %s", r.body);
  fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  f = fdopen(fd, "w");
  fwrite(r.body, 1, r.body_len, f);
  fclose(f);
  resp_free(&r);
  snprintf(cmd, sizeof(cmd), "promtool check metrics < %s >/dev/null 2>&1", path);
  rc = system(cmd);
  unlink(path);
  cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "promtool check metrics failed");
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
}

Test(service_lifecycle, jwt_routes_refuse_without_token) {
  msvc_service_opts_t o;
  resp_t r;

  setenv("MSVC_JWT_JWKS_FILE", JWKS, 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  cr_assert_eq(msvc_service_route(H.svc, "GET", "/me", on_hello, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_OK);
  h_run(&H);
  cr_assert_eq(get(H.port, "/me", &r), 401);
  cr_assert_not_null(strstr(r.body, "UNAUTHENTICATED"), "%s", r.body);
  resp_free(&r);
  cr_assert_eq(get(H.port, "/hello", &r), 200);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
  unsetenv("MSVC_JWT_JWKS_FILE");
}

Test(service_lifecycle, port_in_use_leaves_the_service_new) {
  msvc_service_opts_t o;
  msvc_service_t *a, *b;
  uv_loop_t loop;
  char err[256];

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  cr_assert_eq(msvc_service_new(&loop, "one", &o, &a, err, sizeof(err)), MSVC_OK);
  cr_assert_eq(msvc_service_start(a), MSVC_OK);
  o.port = msvc_service_port(a);
  cr_assert_eq(msvc_service_new(&loop, "two", &o, &b, err, sizeof(err)), MSVC_OK);
  cr_assert_eq(msvc_service_start(b), MSVC_EADDRINUSE);
  cr_assert_eq(msvc_service_state(b), MSVC_SERVICE_NEW);
  msvc_service_free(b);
  cr_assert_eq(msvc_service_stop(a, NULL, NULL), MSVC_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(msvc_service_state(a), MSVC_SERVICE_STOPPED);
  msvc_service_free(a);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

static bool db_check(msvc_service_t *svc, const char **detail, void *data) {
  atomic_int *up = data;

  (void)svc;
  if (atomic_load(up)) return true;
  *detail = "db \"down\"";
  return false;
}

Test(service_lifecycle, failing_check_makes_ready_503) {
  msvc_service_opts_t o;
  static atomic_int up;
  resp_t r;

  atomic_store(&up, 0);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  cr_assert_eq(msvc_service_add_check(H.svc, "db", db_check, &up), MSVC_OK);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  cr_assert_eq(get(H.port, "/ready", &r), 503);
  cr_assert_not_null(strstr(r.body, "\"registered\":\"ok\""), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "\"db\":\"db \\\"down\\\"\""), "%s", r.body);
  cr_assert_not_null(strstr(r.body, "\"draining\":\"no\""), "%s", r.body);
  resp_free(&r);
  atomic_store(&up, 1);
  cr_assert_eq(get(H.port, "/ready", &r), 200);
  resp_free(&r);
  cr_assert_eq(get(H.port, "/hello", &r), 200);
  cr_assert_not_null(strstr(r.head, "X-Request-Id:"), "%s", r.head);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
}

static void on_ready_fail(msvc_service_t *svc, int status, void *data) {
  harness_t *h = data;

  (void)svc;
  atomic_store(&h->ready, status == MSVC_OK ? 1 : -1);
}

Test(service_lifecycle, refused_registration_stops_the_service) {
  msvc_service_opts_t o;

  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  /* A version the registry refuses (the options would have caught it). */
  msvc__free(H.svc->cfg.version);
  H.svc->cfg.version = msvc__malloc(300);
  memset(H.svc->cfg.version, 'v', 299);
  H.svc->cfg.version[299] = '\0';
  H.svc->on_ready = on_ready_fail;
  h_run(&H);
  wait_for(&H.ready, -1, 10000, "the start failure");
  h_join(&H);
}

Test(service_lifecycle, static_registry_is_ready_at_once) {
  msvc_service_opts_t o;
  resp_t r;

  msvc_service_opts_init(&o);
  o.registry_uri = "static://other=127.0.0.1:1";
  h_new(&H, &o);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  cr_assert_eq(get(H.port, "/ready", &r), 200);
  resp_free(&r);
  cr_assert_eq(raise(SIGTERM), 0);
  h_join(&H);
}

/* ---- the key set comes before the registration ------------------------------ */

static atomic_int jwks_up;

static void on_jwks(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  FILE *f;
  char *buf;
  long n;

  (void)req;
  (void)data;
  if (!atomic_load(&jwks_up)) {
    msvc_http_res_error(res, 503, "UNAVAILABLE", "not yet");
    return;
  }
  f = fopen(JWKS, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  msvc_http_res_send(res, 200, "application/json", buf, (size_t)n);
  free(buf);
}

static void jwks_routes(msvc_http_server_t *srv, void *data) {
  (void)data;
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/jwks.json", on_jwks, NULL, NULL),
               MSVC_OK);
}

/* Peers must not be sent requests whose tokens the instance cannot check
 * yet: until the first key set arrives it is neither registered nor ready. */
Test(service_lifecycle, registers_only_after_the_first_key_set) {
  msvc_service_opts_t o;
  srvthread_t keys;
  char url[128];
  resp_t r;

  atomic_store(&jwks_up, 0);
  st_start(&keys, jwks_routes, NULL);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/jwks.json", keys.port);
  setenv("MSVC_JWT_JWKS_URL", url, 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  h_run(&H);
  usleep(300 * 1000);
  cr_assert_eq(atomic_load(&H.ready), 0, "ready before any key arrived");
  cr_assert_null(msvc_service_instance_id(H.svc), "registered before any key arrived");
  cr_assert_eq(get(H.port, "/ready", &r), 503);
  cr_assert_not_null(strstr(r.body, "\"jwks\":\"pending\""), "%s", r.body);
  resp_free(&r);
  atomic_store(&jwks_up, 1);
  wait_for(&H.ready, 1, 15000, "readiness once the keys are served");
  cr_assert_eq(get(H.port, "/ready", &r), 200, "%s", r.body);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
  st_stop(&keys);
  unsetenv("MSVC_JWT_JWKS_URL");
}

static void tls_jwks_routes(msvc_http_server_t *srv, void *data) {
  msvc_tls_config_t *cfg = server_cfg("server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL);

  (void)data;
  cr_assert_eq(msvc_http_server_set_tls(srv, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  jwks_routes(srv, data);
}

/* MSVC_JWT_JWKS_URL may be https://: fetched over TLS, the certificate
 * checked against MSVC_TLS_CA. */
Test(service_lifecycle, fetches_its_key_set_over_https) {
  msvc_service_opts_t o;
  srvthread_t keys;
  char url[128];
  resp_t r;

  atomic_store(&jwks_up, 1);
  st_start(&keys, tls_jwks_routes, NULL);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/jwks.json", keys.port);
  setenv("MSVC_JWT_JWKS_URL", url, 1);
  setenv("MSVC_TLS_CA", cf("ca.crt"), 1);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  h_new(&H, &o);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness once the keys came over https");
  cr_assert_gt(msvc_jwt_keyset_count(H.svc->keyset), 0);
  cr_assert_eq(get(H.port, "/ready", &r), 200, "%s", r.body);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
  st_stop(&keys);
  unsetenv("MSVC_JWT_JWKS_URL");
  unsetenv("MSVC_TLS_CA");
}

/* Signs claims with the fixtures' P-256 key (kid ec-256 of their JWK Set). */
static char *fixture_token(const char *claims) {
  char path[512], *pem, *tok = NULL;
  msvc_jwt_key_t *key = NULL;
  FILE *f;
  long n;

  snprintf(path, sizeof(path), "%s/tests/jwt/interop/fixtures/ec256-private.pem",
           LIBMSVC_TEST_SOURCE_DIR);
  f = fopen(path, "rb");
  cr_assert_not_null(f);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  pem = malloc((size_t)n);
  cr_assert_eq(fread(pem, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  cr_assert_eq(msvc_jwt_key_from_pem(pem, (size_t)n, 0, "ec-256", &key), MSVC_OK);
  cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_ES256, claims, &tok), MSVC_OK);
  msvc_jwt_key_free(key);
  free(pem);
  return tok;
}

static int get_with_token(int port, const char *tok, resp_t *r) {
  char raw[2048];

  snprintf(raw, sizeof(raw),
           "GET /me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n\r\n", tok);
  return cl_request(port, raw, r);
}

/* The service refuses tokens without exp unless MSVC_JWT_REQUIRE_EXP=false. */
static void require_exp_case(const char *env, int option, int want) {
  msvc_service_opts_t o;
  char *forever = fixture_token("{\"sub\":\"7\"}");
  char *dated = fixture_token("{\"sub\":\"7\",\"exp\":4102444800}");
  resp_t r;

  memset(&H, 0, sizeof(H));
  setenv("MSVC_JWT_JWKS_FILE", JWKS, 1);
  if (env != NULL) setenv("MSVC_JWT_REQUIRE_EXP", env, 1);
  msvc_service_opts_init(&o);
  cr_assert_eq(o.jwt_require_exp, -1);
  o.registry_uri = "memory://";
  o.jwt_require_exp = option;
  h_new(&H, &o);
  cr_assert_eq(msvc_service_route(H.svc, "GET", "/me", on_hello, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_OK);
  h_run(&H);
  wait_for(&H.ready, 1, 10000, "readiness");
  cr_assert_eq(get_with_token(H.port, forever, &r), want, "%s", r.body);
  if (want == 401)
    cr_assert_not_null(strstr(r.head, "no expiry time"), "%s", r.head);
  resp_free(&r);
  cr_assert_eq(get_with_token(H.port, dated, &r), 200, "%s", r.body);
  resp_free(&r);
  atomic_store(&H.stop_asked, 1);
  uv_async_send(&H.wake);
  h_join(&H);
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_REQUIRE_EXP");
  msvc_free(forever);
  msvc_free(dated);
}

Test(service_lifecycle, tokens_without_exp_are_refused_by_default) {
  require_exp_case(NULL, -1, 401);
  require_exp_case("false", -1, 200);
  /* The option wins over the variable, both ways. */
  require_exp_case("true", 0, 200);
  require_exp_case("false", 1, 401);
}

/* A client that resets its connection while an answer is written must not
 * end the process: a service that handles signals ignores SIGPIPE, unless
 * the program installed a handler of its own. */
static void own_sigpipe(int sig) {
  (void)sig;
}

Test(service_lifecycle, handles_sigpipe_unless_the_program_does) {
  msvc_service_opts_t o;
  msvc_service_t *svc;
  struct sigaction sa;
  uv_loop_t loop;
  char err[256];

  signal(SIGPIPE, SIG_DFL);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  cr_assert_eq(msvc_service_new(&loop, "pipes", &o, &svc, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_service_start(svc), MSVC_OK);
  cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
  cr_assert(sa.sa_handler == SIG_IGN, "SIGPIPE still ends the process");
  cr_assert_eq(msvc_service_stop(svc, NULL, NULL), MSVC_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc_service_free(svc);

  signal(SIGPIPE, own_sigpipe);
  cr_assert_eq(msvc_service_new(&loop, "pipes", &o, &svc, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_service_start(svc), MSVC_OK);
  cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
  cr_assert(sa.sa_handler == own_sigpipe, "the program's own SIGPIPE handler was replaced");
  cr_assert_eq(msvc_service_stop(svc, NULL, NULL), MSVC_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc_service_free(svc);
  signal(SIGPIPE, SIG_DFL);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- a service that serves its own key set --------------------------------- */

typedef struct self_keys_s {
  uv_loop_t loop;
  uv_timer_t deadline;
  msvc_service_t *svc[2];
  int ready;
  int stopped;
  bool timed_out;
  int status; /* of the last /ready, -1 for no answer */
  uint64_t t0, ready_ms[2];
} self_keys_t;

static void self_got(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                     void *data) {
  (void)call;
  ((self_keys_t *)data)->status = err == MSVC_OK ? msvc_http_response_status(res) : -1;
}

static void self_ready(msvc_service_t *svc, int status, void *data) {
  self_keys_t *s = data;

  cr_assert_eq(status, MSVC_OK);
  s->ready_ms[s->svc[0] == svc ? 0 : 1] = (uv_hrtime() - s->t0) / 1000000;
  if (++s->ready == 2) uv_timer_stop(&s->deadline);
}

static void self_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  ((self_keys_t *)data)->stopped++;
}

static void self_deadline(uv_timer_t *t) {
  self_keys_t *s = t->data;

  s->timed_out = true;
}

/* One environment for every service, as a config map gives it: user-service
 * is told to fetch its keys from user-service. Only its own instances can
 * serve them, so waiting for them before registering would wait for ever.
 * Two instances started together must both be ready within 5 s. */
Test(service_lifecycle, own_key_set_two_instances_start_together) {
  static self_keys_t s;
  msvc_service_opts_t o;
  char err[256];

  memset(&s, 0, sizeof(s));
  atomic_store(&jwks_up, 1);
  setenv("MSVC_JWT_JWKS_URL", "http://self-keys/jwks.json", 1);
  cr_assert_eq(uv_loop_init(&s.loop), 0);
  cr_assert_eq(uv_timer_init(&s.loop, &s.deadline), 0);
  s.deadline.data = &s;
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  o.access_log = false;
  o.on_ready = self_ready;
  o.on_stopped = self_stopped;
  o.data = &s;
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(msvc_service_new(&s.loop, "self-keys", &o, &s.svc[i], err, sizeof(err)),
                 MSVC_OK, "%s", err);
    cr_assert_eq(msvc_service_route(s.svc[i], "GET", "/jwks.json", on_jwks, NULL, 0),
                 MSVC_OK);
    cr_assert_eq(msvc_service_route(s.svc[i], "GET", "/me", on_hello, NULL,
                                    MSVC_HTTP_ROUTE_AUTH), MSVC_OK);
  }
  s.t0 = uv_hrtime();
  for (int i = 0; i < 2; i++) cr_assert_eq(msvc_service_start(s.svc[i]), MSVC_OK);
  cr_assert_eq(uv_timer_start(&s.deadline, self_deadline, 5000, 0), 0);
  while (s.ready < 2 && !s.timed_out) uv_run(&s.loop, UV_RUN_ONCE);
  cr_assert_eq(s.ready, 2, "%d of 2 instances ready after 5 s (%s, %s)", s.ready,
               msvc_service_state(s.svc[0]) == MSVC_SERVICE_READY ? "ready" : "not ready",
               msvc_service_state(s.svc[1]) == MSVC_SERVICE_READY ? "ready" : "not ready");
  cr_log_info("both instances ready after %llu and %llu ms",
              (unsigned long long)s.ready_ms[0], (unsigned long long)s.ready_ms[1]);
  fprintf(stderr, "cold start: instances ready after %llu and %llu ms\n",
          (unsigned long long)s.ready_ms[0], (unsigned long long)s.ready_ms[1]);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(msvc_service_state(s.svc[i]), MSVC_SERVICE_READY);
    cr_assert_gt(msvc_jwt_keyset_count(s.svc[i]->keyset), 0);
    cr_assert_not_null(msvc_service_instance_id(s.svc[i]));
  }
  /* /ready of each answers 200: asked with a client on the same loop. */
  for (int i = 0; i < 2; i++) {
    msvc_http_client_t *c;
    msvc_http_request_t rq;
    char url[64];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ready", msvc_service_port(s.svc[i]));
    cr_assert_eq(msvc_http_client_new(&s.loop, NULL, &c), MSVC_OK);
    msvc_http_request_init(&rq);
    rq.url = url;
    rq.on_done = self_got;
    rq.data = &s;
    s.status = 0;
    cr_assert_eq(msvc_http_client_request(c, &rq, NULL), MSVC_OK);
    while (s.status == 0) uv_run(&s.loop, UV_RUN_ONCE);
    cr_assert_eq(s.status, 200, "instance %d: /ready answers %d", i, s.status);
    msvc_http_client_close(c, NULL, NULL);
  }
  for (int i = 0; i < 2; i++) cr_assert_eq(msvc_service_stop(s.svc[i], NULL, NULL), MSVC_OK);
  uv_close((uv_handle_t *)&s.deadline, NULL);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  cr_assert_eq(s.stopped, 2);
  for (int i = 0; i < 2; i++) msvc_service_free(s.svc[i]);
  cr_assert_eq(uv_loop_close(&s.loop), 0, "a handle of the services was left on the loop");
  unsetenv("MSVC_JWT_JWKS_URL");
}

/* ---- a second stop signal, in a process of its own ---------------------------- */

static int child_pipe = -1;

static void child_ready(msvc_service_t *svc, int status, void *data) {
  char line[32];
  int n;

  (void)data;
  n = snprintf(line, sizeof(line), "P%05d\n", status == MSVC_OK ? msvc_service_port(svc) : 0);
  if (write(child_pipe, line, (size_t)n) != n) _exit(5);
}

static void child_forever(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  msvc_http_req_on_cancel(req, on_cancel_finish, NULL);
  if (write(child_pipe, "H\n", 2) != 2) _exit(5);
}

/* The child: a service with a long drain deadline, run to its end. */
static void child_main(unsigned workers, int fd) {
  msvc_service_opts_t o;
  msvc_service_t *svc;
  uv_loop_t loop;
  char err[256];
  int rc;

  child_pipe = fd;
  if (uv_loop_init(&loop) != 0) _exit(3);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.workers = workers;
  o.drain_timeout_ms = 30000;
  o.access_log = false;
  o.on_ready = child_ready;
  if (msvc_service_new(&loop, "cut-short", &o, &svc, err, sizeof(err)) != MSVC_OK ||
      msvc_service_route(svc, "GET", "/forever", child_forever, NULL, 0) != MSVC_OK)
    _exit(3);
  rc = msvc_service_run(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(rc == MSVC_OK && uv_loop_close(&loop) == 0 ? 0 : 4);
}

/* Reads one line from the child, waiting at most ms. */
static bool child_line(int fd, char *buf, size_t cap, int ms) {
  size_t n = 0;

  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};

    if (poll(&p, 1, ms) <= 0 || read(fd, buf + n, 1) != 1) return false;
    if (buf[n++] == '\n') break;
  }
  buf[n] = '\0';
  return true;
}

static int ready_status(int port) {
  resp_t r;
  int st = get(port, "/ready", &r);

  if (st > 0) resp_free(&r);
  return st;
}

/* A request is held for ever; the first signal starts a graceful stop whose
 * drain would wait 30 s for it; the second one must cut it: the process
 * exits cleanly at once and the held request gets no answer. */
static void second_signal_cuts(unsigned workers, int first, int second) {
  int fds[2], status = 0, port, fd;
  char line[32], *out;
  uint64_t t0;
  pid_t pid;

  cr_assert_eq(pipe(fds), 0);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child_main(workers, fds[1]);
  }
  close(fds[1]);
  cr_assert(child_line(fds[0], line, sizeof(line), 10000), "the child never became ready");
  cr_assert_eq(line[0], 'P', "%s", line);
  port = atoi(line + 1);
  cr_assert_gt(port, 0);
  fd = cl_connect(port);
  send_all(fd, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(child_line(fds[0], line, sizeof(line), 10000), "the request was not held");
  cr_assert_str_eq(line, "H\n");
  cr_assert_eq(kill(pid, first), 0);
  /* Stopping: /ready turns 503 (or the listener is closed already). */
  for (int i = 0; i < 500 && ready_status(port) == 200; i++) usleep(10000);
  cr_assert_neq(ready_status(port), 200, "the first signal did not start a stop");
  usleep(400 * 1000); /* past the deregistration grace: the drain is under way */
  t0 = uv_hrtime();
  cr_assert_eq(kill(pid, second), 0);
  for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++) usleep(10000);
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("the second signal did not cut the 30 s drain short");
  }
  cr_assert_lt((uv_hrtime() - t0) / 1000000, 5000);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ended badly (%d)",
            status);
  out = read_to_eof(fd);
  cr_assert_null(strstr(out, "HTTP/1.1 200"), "the held request was answered: %s", out);
  free(out);
  close(fd);
  close(fds[0]);
}

Test(service_lifecycle, second_sigint_cuts_the_drain_of_worker_loops) {
  second_signal_cuts(2, SIGINT, SIGINT);
}

Test(service_lifecycle, second_sigterm_cuts_the_drain) {
  second_signal_cuts(1, SIGTERM, SIGTERM);
}
