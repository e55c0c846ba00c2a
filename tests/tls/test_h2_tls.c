/*
 * HTTP/2 over TLS: ALPN picks h2 for a client that offers it (nghttp) and
 * http/1.1 for one that does not (curl --http1.1), on the same port.
 */
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
