/*
 * TLS through the service object: MSVC_TLS_* read at creation, every
 * loop's server on TLS, scheme=https registered, callers speaking TLS to
 * such instances (mutual TLS with a client certificate), curl as an outside
 * peer, and SIGHUP reloading the files.
 */
#include <msvc/log.h>
#include <msvc/registry.h>
#include <msvc/service.h>

#include "helpers.h"

TestSuite(service_tls, .timeout = 60);

static const char *const tls_vars[] = {"MSVC_TLS_CERT",        "MSVC_TLS_KEY",
                                       "MSVC_TLS_CA",          "MSVC_TLS_CLIENT_AUTH",
                                       "MSVC_TLS_CLIENT_CERT", "MSVC_TLS_CLIENT_KEY"};

static void tls_env_clear(void) {
  for (size_t i = 0; i < sizeof(tls_vars) / sizeof(tls_vars[0]); i++)
    unsetenv(tls_vars[i]);
}

/* The environment of a backend that requires client certificates. */
static void env_mtls_server(void) {
  tls_env_clear();
  setenv("MSVC_TLS_CERT", cf("server.crt"), 1);
  setenv("MSVC_TLS_KEY", cf("server.key"), 1);
  setenv("MSVC_TLS_CA", cf("ca.crt"), 1);
  setenv("MSVC_TLS_CLIENT_AUTH", "require", 1);
}

/* The environment of a caller; with_cert adds its client certificate. */
static void env_caller(bool with_cert) {
  tls_env_clear();
  setenv("MSVC_TLS_CA", cf("ca.crt"), 1);
  if (with_cert) {
    setenv("MSVC_TLS_CLIENT_CERT", cf("client.crt"), 1);
    setenv("MSVC_TLS_CLIENT_KEY", cf("client.key"), 1);
  }
}

typedef struct node_s {
  msvc_service_t *svc;
  int ready; /* 1 until on_ready */
  char tag[16];
} node_t;

static void node_ready(msvc_service_t *svc, int status, void *data) {
  (void)svc;
  ((node_t *)data)->ready = status;
}

static void h_tag(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  node_t *n = data;

  (void)req;
  msvc_http_res_send(res, 200, "text/plain", n->tag, strlen(n->tag));
}

/* Creates and starts a service from the current environment and waits
 * until it is registered. */
static void node_start(uv_loop_t *loop, node_t *n, const char *name, const char *tag,
                       unsigned workers, bool signals) {
  msvc_service_opts_t o;
  char err[512] = "";
  int rc;

  memset(n, 0, sizeof(*n));
  n->ready = 1;
  snprintf(n->tag, sizeof(n->tag), "%s", tag);
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = signals;
  o.access_log = false;
  o.workers = workers;
  o.on_ready = node_ready;
  o.data = n;
  rc = msvc_service_new(loop, name, &o, &n->svc, err, sizeof(err));
  cr_assert_eq(rc, MSVC_OK, "%s: %s (%s)", name, msvc_err_name(rc), err);
  cr_assert_eq(msvc_service_route(n->svc, "GET", "/tag", h_tag, n, 0), MSVC_OK);
  cr_assert_eq(msvc_service_start(n->svc), MSVC_OK);
  while (n->ready == 1)
    uv_run(loop, UV_RUN_ONCE);
  cr_assert_eq(n->ready, MSVC_OK, "%s not ready: %s", name, msvc_err_name(n->ready));
}

static void nodes_stop(uv_loop_t *loop, node_t *nodes, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (nodes[i].svc != NULL)
      cr_assert_eq(msvc_service_stop(nodes[i].svc, NULL, NULL), MSVC_OK);
  uv_run(loop, UV_RUN_DEFAULT);
  for (i = 0; i < n; i++) {
    if (nodes[i].svc == NULL)
      continue;
    cr_assert_eq(msvc_service_state(nodes[i].svc), MSVC_SERVICE_STOPPED);
    msvc_service_free(nodes[i].svc);
  }
  cr_assert_eq(uv_loop_close(loop), 0, "a handle leaked");
  tls_env_clear();
}

typedef struct answer_s {
  int err;
  int status;
  char body[256];
  bool done;
} answer_t;

static void answer_done(int err, const msvc_http_response_t *res, void *data) {
  answer_t *a = data;
  size_t len = 0;
  const char *b;

  a->err = err;
  if (res != NULL) {
    a->status = msvc_http_response_status(res);
    b = msvc_http_response_body(res, &len);
    snprintf(a->body, sizeof(a->body), "%.*s", (int)len, b);
  }
  a->done = true;
}

static answer_t call_by_name(uv_loop_t *loop, msvc_service_t *from, const char *to) {
  msvc_service_request_t r;
  answer_t a;

  memset(&a, 0, sizeof(a));
  msvc_service_request_init(&r);
  r.target = "/tag";
  r.timeout_ms = 5000;
  r.on_done = answer_done;
  r.data = &a;
  cr_assert_eq(msvc_service_call(from, to, &r, NULL), MSVC_OK);
  run_until(loop, &a.done);
  return a;
}

/* ---- registration ------------------------------------------------------------ */

typedef struct looked_s {
  int https, plain, status;
  bool done;
} looked_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  looked_t *l = data;
  size_t i, j;

  l->status = status;
  for (i = 0; set != NULL && i < msvc_registry_set_count(set); i++) {
    const msvc_registry_instance_t *in = msvc_registry_set_at(set, i);
    bool https = false;

    for (j = 0; j < in->nmetadata; j++)
      if (strcmp(in->metadata[j].key, "scheme") == 0 &&
          strcmp(in->metadata[j].value, "https") == 0)
        https = true;
    if (https)
      l->https++;
    else
      l->plain++;
  }
  l->done = true;
}

static looked_t look_up(uv_loop_t *loop, msvc_service_t *svc, const char *name) {
  looked_t l;

  memset(&l, 0, sizeof(l));
  cr_assert_eq(msvc_registry_resolve(msvc_service_registry(svc), name, on_resolved, &l),
               MSVC_OK);
  run_until(loop, &l.done);
  cr_assert_eq(l.status, MSVC_OK);
  return l;
}

/* ---- calls by name ------------------------------------------------------------- */

Test(service_tls, calls_by_name_over_mutual_tls) {
  uv_loop_t loop;
  node_t n[3];
  bool seen_a = false, seen_b = false;
  int i;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  env_mtls_server();
  node_start(&loop, &n[0], "tls-backend", "a", 1, false);
  node_start(&loop, &n[1], "tls-backend", "b", 2, false); /* worker loops too */
  env_caller(true);
  node_start(&loop, &n[2], "tls-front", "front", 1, false);

  looked_t back = look_up(&loop, n[2].svc, "tls-backend");
  looked_t front = look_up(&loop, n[2].svc, "tls-front");
  cr_expect_eq(back.https, 2, "both backends registered scheme=https");
  cr_expect_eq(back.plain, 0);
  cr_expect_eq(front.https, 0, "a service without a certificate serves plain HTTP");
  cr_expect_eq(front.plain, 1);

  for (i = 0; i < 8; i++) {
    answer_t a = call_by_name(&loop, n[2].svc, "tls-backend");

    cr_assert_eq(a.err, MSVC_OK, "call %d: %s", i, msvc_err_name(a.err));
    cr_assert_eq(a.status, 200, "call %d", i);
    seen_a |= strcmp(a.body, "a") == 0;
    seen_b |= strcmp(a.body, "b") == 0;
  }
  cr_expect(seen_a && seen_b, "the balancer reached both instances");
  nodes_stop(&loop, n, 3);
}

Test(service_tls, a_caller_without_client_certificate_is_refused) {
  uv_loop_t loop;
  node_t n[3];
  answer_t a;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  env_mtls_server();
  node_start(&loop, &n[0], "tls-backend", "a", 1, false);
  env_caller(false);
  node_start(&loop, &n[1], "tls-nocert", "x", 1, false);
  tls_env_clear();
  node_start(&loop, &n[2], "plain-front", "y", 1, false);

  a = call_by_name(&loop, n[1].svc, "tls-backend");
  cr_expect_neq(a.err, MSVC_OK, "no client certificate: the call must fail (status %d)",
                a.status);
  cr_expect(msvc_service_dependency_failed(a.err, a.status), "%s is a dependency failure",
            msvc_err_name(a.err));
  a = call_by_name(&loop, n[2].svc, "tls-backend");
  cr_expect_neq(a.err, MSVC_OK, "no TLS at all: the call must fail (status %d)", a.status);

  /* The backend is still well after the refusals. */
  env_caller(true);
  node_t ok;
  node_start(&loop, &ok, "tls-front", "z", 1, false);
  a = call_by_name(&loop, ok.svc, "tls-backend");
  cr_expect_eq(a.err, MSVC_OK, "%s", msvc_err_name(a.err));
  cr_expect_eq(a.status, 200);
  cr_assert_eq(msvc_service_stop(ok.svc, NULL, NULL), MSVC_OK);
  nodes_stop(&loop, n, 3);
  msvc_service_free(ok.svc);
}

/* ---- outside peers ---------------------------------------------------------------- */

static int curl(uv_loop_t *loop, const char *url, bool cert, const char *out) {
  char *argv[12];
  int k = 0;

  argv[k++] = "/usr/bin/curl";
  argv[k++] = "-sS";
  argv[k++] = "--max-time";
  argv[k++] = "5";
  argv[k++] = "--cacert";
  argv[k++] = (char *)cf("ca.crt");
  if (cert) {
    argv[k++] = "--cert";
    argv[k++] = (char *)cf("client.crt");
    argv[k++] = "--key";
    argv[k++] = (char *)cf("client.key");
  }
  argv[k++] = (char *)url;
  argv[k] = NULL;
  return proc_run(loop, argv, out);
}

Test(service_tls, curl_reaches_health_over_mutual_tls) {
  uv_loop_t loop;
  node_t n[1];
  char url[128], out[600];
  int port;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  snprintf(out, sizeof(out), "%s/curl-service-mtls.out", certs());
  env_mtls_server();
  node_start(&loop, &n[0], "tls-health", "h", 1, false);
  port = msvc_service_port(n[0].svc);

  snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", port);
  cr_assert_eq(curl(&loop, url, true, out), 0, "curl: %s", slurp(out));
  cr_expect_not_null(strstr(slurp(out), "\"status\":\"ok\""), "%s", slurp(out));
  cr_expect_neq(curl(&loop, url, false, out), 0, "no client certificate was accepted");

  /* Plain HTTP to the TLS port: refused, and the service serves on. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
  cr_expect_neq(curl(&loop, url, true, out), 0, "plain HTTP was served: %s", slurp(out));
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", port);
  cr_expect_eq(curl(&loop, url, true, out), 0, "curl after plain HTTP: %s", slurp(out));
  nodes_stop(&loop, n, 1);
}

Test(service_tls, curl_reaches_health_of_a_tls_service) {
  uv_loop_t loop;
  node_t n[1];
  char url[128], out[600];

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  snprintf(out, sizeof(out), "%s/curl-service-tls.out", certs());
  tls_env_clear();
  setenv("MSVC_TLS_CERT", cf("server.crt"), 1);
  setenv("MSVC_TLS_KEY", cf("server.key"), 1);
  node_start(&loop, &n[0], "tls-open", "o", 2, false);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", msvc_service_port(n[0].svc));
  cr_assert_eq(curl(&loop, url, false, out), 0, "curl: %s", slurp(out));
  cr_expect_not_null(strstr(slurp(out), "\"status\":\"ok\""), "%s", slurp(out));
  nodes_stop(&loop, n, 1);
}

/* ---- SIGHUP ------------------------------------------------------------------------- */

typedef struct logged_s {
  int reloaded, kept;
} logged_t;

static void log_sink(void *data, msvc_log_level_t level, const char *line, size_t len) {
  logged_t *l = data;
  char buf[1024];

  (void)level;
  snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
  if (strstr(buf, "certificates reloaded") != NULL)
    l->reloaded++;
  if (strstr(buf, "old ones stay in use") != NULL)
    l->kept++;
}

static void copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char buf[4096];
  size_t n;

  cr_assert(in != NULL && out != NULL, "copy %s to %s", from, to);
  while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
    cr_assert_eq(fwrite(buf, 1, n, out), n);
  fclose(in);
  fclose(out);
}

static void hup_and_wait(uv_loop_t *loop, logged_t *l, int before) {
  int i;

  cr_assert_eq(uv_kill(getpid(), SIGHUP), 0);
  for (i = 0; i < 200 && l->reloaded + l->kept == before; i++)
    uv_run(loop, UV_RUN_NOWAIT), usleep(10000);
  cr_assert_neq(l->reloaded + l->kept, before, "SIGHUP was not acted on");
}

Test(service_tls, sighup_reloads_and_keeps_old_material_on_a_bad_file) {
  uv_loop_t loop;
  node_t n[1];
  logged_t l = {0, 0};
  char crt[600], key[600], url[128], out[600];

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_INFO);
  msvc_log_set_sink(log_sink, &l);
  snprintf(crt, sizeof(crt), "%s/hup-%d.crt", certs(), (int)getpid());
  snprintf(key, sizeof(key), "%s/hup-%d.key", certs(), (int)getpid());
  snprintf(out, sizeof(out), "%s/curl-hup-%d.out", certs(), (int)getpid());
  copy_file(cf("server.crt"), crt);
  copy_file(cf("server.key"), key);
  tls_env_clear();
  setenv("MSVC_TLS_CERT", crt, 1);
  setenv("MSVC_TLS_KEY", key, 1);
  node_start(&loop, &n[0], "tls-hup", "h", 1, true);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", msvc_service_port(n[0].svc));

  copy_file(cf("server2.crt"), crt);
  copy_file(cf("server2.key"), key);
  hup_and_wait(&loop, &l, 0);
  cr_expect_eq(l.reloaded, 2, "server and client sides reloaded");
  cr_expect_eq(curl(&loop, url, false, out), 0, "curl after reload: %s", slurp(out));

  copy_file(cf("bad.pem"), crt);
  hup_and_wait(&loop, &l, l.reloaded + l.kept);
  cr_expect_geq(l.kept, 1, "a bad file is reported");
  cr_expect_eq(curl(&loop, url, false, out), 0, "curl after a bad reload: %s", slurp(out));

  nodes_stop(&loop, n, 1);
  msvc_log_reset();
  unlink(crt);
  unlink(key);
}
