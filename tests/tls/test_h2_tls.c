/*
 * HTTP/2 over TLS: ALPN picks h2 for a client that offers it (nghttp) and
 * http/1.1 for one that does not (curl --http1.1), on the same port.
 */
#include <msvc/http_client.h>
#include <msvc/tls.h>

#include "http/helpers.h"

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)data;
  msvc_http_res_header(res, "X-Version", msvc_http_req_version(req) == 20 ? "2" : "1");
  msvc_http_res_send(res, 200, "text/plain", "hello", 5);
}

static void routes(msvc_http_server_t *srv) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];

  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = LIBMSVC_TEST_BINARY_DIR "/tests/tls/certs/server.crt";
  o.key_file = LIBMSVC_TEST_BINARY_DIR "/tests/tls/certs/server.key";
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_http_server_set_tls(srv, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL);
}

static char *run(const char *cmd) {
  FILE *f = popen(cmd, "r");
  static char out[65536];
  size_t n;

  cr_assert_not_null(f);
  n = fread(out, 1, sizeof(out) - 1, f);
  out[n] = '\0';
  pclose(f);
  return out;
}

TestSuite(h2_tls, .timeout = 60);

Test(h2_tls, alpn_chooses_h2_or_http11) {
  tsrv_t t;
  char cmd[300], *out;

  tsrv_start(&t, NULL, routes);
  snprintf(cmd, sizeof(cmd), "nghttp -v https://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "negotiated protocol: h2") != NULL, "%s", out);
  cr_expect(strstr(out, "x-version: 2") != NULL, "%s", out);
  snprintf(cmd, sizeof(cmd), "curl -sk --http1.1 -i https://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
  cr_expect(strstr(out, "X-Version: 1") != NULL, "%s", out);
  tsrv_stop(&t);
}

static int done, ok, version, closed;

static void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  (void)call;
  (void)data;
  done++;
  if (err == MSVC_OK && msvc_http_response_status(res) == 200) {
    ok++;
    version = msvc_http_response_version(res);
  }
}

static void client_closed(void *data) {
  (void)data;
  closed = 1;
}

Test(h2_tls, client_speaks_h2_over_tls) {
  tsrv_t t;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  msvc_http_request_t r;
  char url[128], err[256];
  int i;

  tsrv_start(&t, NULL, routes);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  o.ca_file = LIBMSVC_TEST_BINARY_DIR "/tests/tls/certs/ca.crt";
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_http_client_set_tls(c, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "https://localhost:%d/hello", t.port);
  r.url = url;
  r.http2 = true;
  r.on_done = on_done;
  for (i = 0; i < 3; i++)
    cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  for (i = 0; i < 5000 && done < 3; i++)
    uv_run(&loop, UV_RUN_ONCE);
  cr_expect_eq(ok, 3);
  cr_expect_eq(version, 20);
  msvc_http_client_close(c, client_closed, NULL);
  for (i = 0; i < 5000 && !closed; i++)
    uv_run(&loop, UV_RUN_ONCE);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  tsrv_stop(&t);
}

static void hello_only(msvc_http_server_t *srv) {
  routes(srv);
}

Test(h2_tls, http2_off_means_alpn_http11_only) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  char cmd[300], *out;

  msvc_http_server_opts_init(&o);
  o.http2 = false;
  tsrv_start(&t, &o, hello_only);
  snprintf(cmd, sizeof(cmd), "curl -sk -i https://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
  tsrv_stop(&t);
}

Test(h2_tls, too_many_connections_get_goaway_over_h2) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  char cmd[300], *out;
  int idle;

  msvc_http_server_opts_init(&o);
  o.max_connections = 1;
  tsrv_start(&t, &o, hello_only);
  idle = tc_connect(t.port); /* holds the only slot, mid-handshake */
  while (msvc_http_server_connections(t.srv) < 1)
    sleep_ms(1);
  snprintf(cmd, sizeof(cmd), "nghttp -v https://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "GOAWAY") != NULL, "%s", out);
  cr_expect(strstr(out, "too many connections") != NULL, "%s", out);
  close(idle);
  tsrv_stop(&t);
}
