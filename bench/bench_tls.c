/*
 * TLS handshakes: libmsvc's client and server on one loop, one thread, each
 * request on a new connection ("Connection: close"), with an ECDSA P-256
 * and an RSA 2048 certificate. Full handshakes (client resumption off)
 * against resumed ones (session tickets); the figure is handshakes per
 * second of one core doing both ends, so it is a ratio that matters here,
 * not the absolute value. bench/bench_tls.sh compares with nginx.
 *
 *   bench_tls                          run the benchmark
 *   bench_tls --serve PORT CERT KEY    serve GET /hello over HTTPS until
 *                                      SIGTERM (for bench/bench_tls.sh),
 *                                      handshakes on a worker pool as the
 *                                      service object runs them
 *                                      (MSVC_BENCH_TLS_LOOP=1: on the loop)
 *
 * Certificates are made in a temporary directory with the openssl CLI.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/tls.h>
#include <msvc/work.h>

#include "bench.h"

static void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static msvc_tls_config_t *make_cfg(msvc_tls_role_t role, const char *crt, const char *key,
                                   const char *ca, uint32_t lifetime) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];

  msvc_tls_opts_init(&o, role);
  o.cert_file = crt;
  o.key_file = key;
  o.ca_file = ca;
  o.session_lifetime_s = lifetime;
  if (role == MSVC_TLS_CLIENT)
    o.server_name = "localhost";
  if (msvc_tls_config_new(&o, &cfg, err, sizeof(err)) != MSVC_OK) {
    fprintf(stderr, "bench_tls: %s\n", err);
    exit(2);
  }
  return cfg;
}

/* ---- --serve ------------------------------------------------------------------ */

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

static int serve(int port, const char *crt, const char *key) {
  uv_loop_t loop;
  uv_signal_t sig;
  msvc_http_server_t *srv;
  msvc_work_t *work = NULL;
  msvc_tls_config_t *cfg = make_cfg(MSVC_TLS_SERVER, crt, key, NULL, 86400);
  const char *on_loop = getenv("MSVC_BENCH_TLS_LOOP");

  uv_loop_init(&loop);
  if ((on_loop == NULL || strcmp(on_loop, "1") != 0) &&
      msvc_work_new(&loop, NULL, &work) != MSVC_OK) {
    fprintf(stderr, "bench_tls: cannot make the worker pool\n");
    return 2;
  }
  if (msvc_http_server_new(&loop, NULL, &srv) != MSVC_OK ||
      msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL) != MSVC_OK ||
      msvc_http_server_set_tls(srv, cfg) != MSVC_OK ||
      msvc_http_server_set_work(srv, work) != MSVC_OK ||
      msvc_http_server_listen(srv, "127.0.0.1", port) != MSVC_OK) {
    fprintf(stderr, "bench_tls: cannot serve on port %d\n", port);
    return 2;
  }
  msvc_tls_config_free(cfg);
  uv_signal_init(&loop, &sig);
  uv_signal_start(&sig, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&sig);
  uv_run(&loop, UV_RUN_DEFAULT);
  msvc_http_server_close(srv, NULL, NULL);
  uv_close((uv_handle_t *)&sig, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the server first: it borrows the pool */
  if (work != NULL)
    msvc_work_close(work, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}

/* ---- handshakes ------------------------------------------------------------------ */

typedef struct run_s {
  msvc_http_client_t *c;
  char url[64];
  int left;
  int failed;
  bool done;
} run_t;

static void next(run_t *r);

static void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  run_t *r = data;

  (void)call;
  if (err != 0 || msvc_http_response_status(res) != 200)
    r->failed++;
  if (--r->left == 0)
    r->done = true;
  else
    next(r);
}

static void next(run_t *r) {
  msvc_http_request_t req;
  msvc_http_header_t h = {"Connection", "close"};

  msvc_http_request_init(&req);
  req.url = r->url;
  req.headers = &h;
  req.nheaders = 1;
  req.on_done = on_done;
  req.data = r;
  if (msvc_http_client_request(r->c, &req, NULL) != MSVC_OK)
    r->failed++;
}

/* Handshakes per second over n connections made one after the other. */
static double handshakes(const char *dir, const char *name, bool resume, int n) {
  char crt[512], key[512], ca[512];
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_tls_config_t *scfg, *ccfg;
  run_t r;
  double t0, t1;

  snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
  snprintf(key, sizeof(key), "%s/%s.key", dir, name);
  snprintf(ca, sizeof(ca), "%s/%s.crt", dir, name);
  scfg = make_cfg(MSVC_TLS_SERVER, crt, key, NULL, 86400);
  ccfg = make_cfg(MSVC_TLS_CLIENT, NULL, NULL, ca, resume ? 86400 : 0);
  uv_loop_init(&loop);
  msvc_http_server_new(&loop, NULL, &srv);
  msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL);
  msvc_http_server_set_tls(srv, scfg);
  msvc_http_server_listen(srv, "127.0.0.1", 0);
  memset(&r, 0, sizeof(r));
  msvc_http_client_new(&loop, NULL, &r.c);
  msvc_http_client_set_tls(r.c, ccfg);
  snprintf(r.url, sizeof(r.url), "https://127.0.0.1:%d/hello", msvc_http_server_port(srv));
  r.left = 1; /* a first connection, so that a resumed run has a session */
  next(&r);
  while (!r.done)
    uv_run(&loop, UV_RUN_ONCE);
  r.done = false;
  r.left = n;
  t0 = bench_now_ns();
  next(&r);
  while (!r.done)
    uv_run(&loop, UV_RUN_ONCE);
  t1 = bench_now_ns();
  msvc_http_client_close(r.c, NULL, NULL);
  msvc_http_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  msvc_tls_config_free(scfg);
  msvc_tls_config_free(ccfg);
  if (r.failed > 0)
    fprintf(stderr, "bench_tls: %d of %d handshakes failed\n", r.failed, n);
  return n / ((t1 - t0) / 1e9);
}

static int make_certs(char *dir, size_t len) {
  char cmd[2048];

  snprintf(dir, len, "%s/msvc-bench-tls.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(dir) == NULL)
    return -1;
  snprintf(cmd, sizeof(cmd),
           "cd '%s' && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
           "-keyout ecdsa.key -out ecdsa.crt -subj /CN=localhost -days 30 "
           "-addext subjectAltName=DNS:localhost >/dev/null 2>&1 && "
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt "
           "-subj /CN=localhost -days 30 -addext subjectAltName=DNS:localhost "
           ">/dev/null 2>&1",
           dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *names[] = {"ecdsa", "rsa"};
  char dir[256], cmd[300], bench[64];
  int n = bench_quick() ? 50 : 300, runs = bench_runs(), i, k;

  if (argc == 5 && strcmp(argv[1], "--serve") == 0)
    return serve(atoi(argv[2]), argv[3], argv[4]);
  if (make_certs(dir, sizeof(dir)) != 0) {
    fprintf(stderr, "bench_tls: openssl could not make certificates\n");
    return 2;
  }
  for (k = 0; k < 2; k++) {
    double full[9], resumed[9];
    bench_stat_t f, r;

    for (i = 0; i < runs; i++) {
      full[i] = handshakes(dir, names[k], false, n / (k == 1 ? 3 : 1));
      resumed[i] = handshakes(dir, names[k], true, n);
    }
    f = bench_stats(full, runs);
    r = bench_stats(resumed, runs);
    snprintf(bench, sizeof(bench), "tls_handshake_full_%s", names[k]);
    bench_emit(bench, "libmsvc", "ops_per_s", "handshakes/s", f, NULL, 0);
    snprintf(bench, sizeof(bench), "tls_handshake_resumed_%s", names[k]);
    bench_emit(bench, "libmsvc", "ops_per_s", "handshakes/s", r, "libmsvc_full",
               f.median > 0 ? r.median / f.median : 0);
  }
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
