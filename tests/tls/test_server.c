/* Our TLS server against real clients (curl, openssl s_client) and raw bytes. */
#include "tls/helpers.h"

static char out_path[128];

static void init(void) {
  snprintf(out_path, sizeof(out_path), "/tmp/msvc-tls-test-out.%d", (int)getpid());
  certs();
}

static void fini(void) {
  unlink(out_path);
}

TestSuite(tls_server, .init = init, .fini = fini, .timeout = 60);

/* curl to https://localhost:port/path, localhost pinned to 127.0.0.1. */
static int curl(uv_loop_t *loop, int port, const char *path, const char *crt,
                const char *key) {
  char url[128], resolve[64], *argv[16];
  int n = 0;

  snprintf(url, sizeof(url), "https://localhost:%d%s", port, path);
  snprintf(resolve, sizeof(resolve), "localhost:%d:127.0.0.1", port);
  argv[n++] = "/usr/bin/curl";
  argv[n++] = "-sS";
  argv[n++] = "--max-time";
  argv[n++] = "10";
  argv[n++] = "--resolve";
  argv[n++] = resolve;
  argv[n++] = "--cacert";
  argv[n++] = (char *)cf("ca.crt");
  if (crt != NULL) {
    argv[n++] = "--cert";
    argv[n++] = (char *)cf(crt);
    argv[n++] = "--key";
    argv[n++] = (char *)cf(key);
  }
  argv[n++] = url;
  argv[n] = NULL;
  return proc_run(loop, argv, out_path);
}

typedef struct fixture_s {
  uv_loop_t loop;
  msvc_metrics_registry_t *reg;
  msvc_http_server_t *srv;
  int port;
} fixture_t;

static void start(fixture_t *f, const char *crt, const char *key,
                  msvc_tls_client_auth_t auth) {
  msvc_tls_config_t *cfg;

  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->reg), MSVC_OK);
  cfg = server_cfg(crt, key, auth, f->reg);
  f->srv = hello_server(&f->loop, cfg);
  msvc_tls_config_free(cfg); /* the server holds its own reference */
  f->port = msvc_http_server_port(f->srv);
}

static void stop(fixture_t *f) {
  close_all(&f->loop, f->srv, NULL);
  msvc_metrics_registry_free(f->reg);
}

Test(tls_server, curl_gets_hello) {
  fixture_t f;
  char *text = NULL;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE);
  cr_assert_eq(curl(&f.loop, f.port, "/hello", NULL, NULL), 0, "%s", slurp(out_path));
  cr_assert_str_eq(slurp(out_path), "hello");
  cr_assert_eq(curl(&f.loop, f.port, "/whoami", NULL, NULL), 0);
  cr_assert_str_eq(slurp(out_path), "-|-|-|1");
  cr_assert_eq(hs_count(f.reg, "ok"), 2);
  cr_assert_eq(msvc_metrics_expose(f.reg, MSVC_METRICS_FORMAT_TEXT, &text, NULL), MSVC_OK);
  cr_assert(strstr(text, "msvc_tls_handshake_duration_seconds_count 2") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_tls_certificate_expiry_timestamp_seconds{role=\"server\"}") !=
                NULL, "%s", text);
  msvc_free(text);
  stop(&f);
}

Test(tls_server, curl_rsa_certificate) {
  fixture_t f;

  start(&f, "server-rsa.crt", "server-rsa.key", MSVC_TLS_AUTH_NONE);
  cr_assert_eq(curl(&f.loop, f.port, "/hello", NULL, NULL), 0, "%s", slurp(out_path));
  cr_assert_str_eq(slurp(out_path), "hello");
  stop(&f);
}

Test(tls_server, mutual_tls_identity) {
  fixture_t f;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_REQUIRE);
  cr_assert_eq(curl(&f.loop, f.port, "/whoami", "client.crt", "client.key"), 0, "%s",
               slurp(out_path));
  cr_assert_str_eq(slurp(out_path),
                   "CN=client, O=libmsvc tests|spiffe://example.org/ns/test/sa/client|"
                   "client.example|1");
  /* No certificate, and one from another CA: refused during the handshake. */
  cr_assert_neq(curl(&f.loop, f.port, "/whoami", NULL, NULL), 0);
  cr_assert_neq(curl(&f.loop, f.port, "/whoami", "other-client.crt", "other-client.key"), 0);
  cr_assert_eq(hs_count(f.reg, "ok"), 1);
  cr_assert_eq(hs_count(f.reg, "failed"), 2);
  stop(&f);
}

Test(tls_server, optional_client_auth) {
  fixture_t f;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_OPTIONAL);
  cr_assert_eq(curl(&f.loop, f.port, "/whoami", NULL, NULL), 0, "%s", slurp(out_path));
  cr_assert_str_eq(slurp(out_path), "-|-|-|1");
  cr_assert_eq(curl(&f.loop, f.port, "/whoami", "client.crt", "client.key"), 0);
  cr_assert(strncmp(slurp(out_path), "CN=client", 9) == 0);
  cr_assert_neq(curl(&f.loop, f.port, "/whoami", "other-client.crt", "other-client.key"), 0);
  stop(&f);
}

static int s_client(uv_loop_t *loop, int port, const char *version, const char *ciphers) {
  char connect[64];
  char *argv[] = {"/usr/bin/openssl", "s_client", "-connect", connect, (char *)version,
                  "-CAfile", (char *)cf("ca.crt"), "-verify_return_error",
                  ciphers != NULL ? "-cipher" : NULL, (char *)ciphers, NULL};

  snprintf(connect, sizeof(connect), "127.0.0.1:%d", port);
  return proc_run(loop, argv, out_path);
}

Test(tls_server, old_protocols_refused) {
  fixture_t f;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE);
  cr_assert_eq(s_client(&f.loop, f.port, "-tls1_2", NULL), 0, "%s", slurp(out_path));
  cr_assert(strstr(slurp(out_path), "Verify return code: 0 (ok)") != NULL);
  cr_assert(strstr(slurp(out_path), "TLSv1.2") != NULL);
  /* SECLEVEL=0 so that OpenSSL really offers the old versions. */
  cr_assert_neq(s_client(&f.loop, f.port, "-tls1_1", "DEFAULT@SECLEVEL=0"), 0);
  cr_assert_neq(s_client(&f.loop, f.port, "-tls1", "DEFAULT@SECLEVEL=0"), 0);
  cr_assert_eq(curl(&f.loop, f.port, "/hello", NULL, NULL), 0, "still serving");
  stop(&f);
}

Test(tls_server, cbc_suites_refused) {
  fixture_t f;
  char connect[64];
  char *argv[] = {"/usr/bin/openssl", "s_client", "-connect", connect, "-tls1_2",
                  "-cipher", "ECDHE-ECDSA-AES128-SHA256", NULL};

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE);
  snprintf(connect, sizeof(connect), "127.0.0.1:%d", f.port);
  cr_assert_neq(proc_run(&f.loop, argv, out_path), 0);
  stop(&f);
}

/* ---- plaintext and stalled clients, on a raw socket ------------------------ */

typedef struct raw_s {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  const char *send;
  size_t got;
  int end;
  bool ended;
  bool closed;
} raw_t;

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[4096];
  (void)h;
  (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  raw_t *r = s->data;
  (void)b;
  if (n > 0)
    r->got += (size_t)n;
  if (n < 0) {
    r->end = (int)n;
    r->ended = true;
    uv_read_stop(s);
  }
}

static void raw_written(uv_write_t *w, int status) {
  (void)w;
  (void)status;
}

static void raw_connected(uv_connect_t *c, int status) {
  raw_t *r = c->data;
  uv_buf_t b;

  cr_assert_eq(status, 0);
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
  if (r->send != NULL) {
    b = uv_buf_init((char *)r->send, (unsigned)strlen(r->send));
    uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, raw_written);
  }
}

static void raw_closed(uv_handle_t *h) {
  ((raw_t *)h->data)->closed = true;
}

/* Connects, sends text (if any) and waits for the server to end it. */
static int raw_session(uv_loop_t *loop, int port, const char *text) {
  raw_t r;
  struct sockaddr_in a;

  memset(&r, 0, sizeof(r));
  r.send = text;
  uv_tcp_init(loop, &r.tcp);
  r.tcp.data = &r;
  r.creq.data = &r;
  uv_ip4_addr("127.0.0.1", port, &a);
  cr_assert_eq(uv_tcp_connect(&r.creq, &r.tcp, (const struct sockaddr *)&a, raw_connected), 0);
  run_until(loop, &r.ended);
  uv_close((uv_handle_t *)&r.tcp, raw_closed);
  run_until(loop, &r.closed);
  return r.end;
}

Test(tls_server, plaintext_http_is_closed) {
  fixture_t f;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE);
  cr_assert_eq(raw_session(&f.loop, f.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
               UV_EOF);
  cr_assert_eq(hs_count(f.reg, "failed"), 1);
  cr_assert_eq(curl(&f.loop, f.port, "/hello", NULL, NULL), 0, "still serving");
  stop(&f);
}

Test(tls_server, stalled_handshake_times_out) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  fixture_t f;
  uint64_t t0;

  cr_assert_eq(uv_loop_init(&f.loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f.reg), MSVC_OK);
  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = cf("server.crt");
  o.key_file = cf("server.key");
  o.handshake_timeout_ms = 200;
  o.metrics = f.reg;
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, NULL, 0), MSVC_OK);
  f.srv = hello_server(&f.loop, cfg);
  msvc_tls_config_free(cfg);
  f.port = msvc_http_server_port(f.srv);
  t0 = uv_now(&f.loop);
  cr_assert_eq(raw_session(&f.loop, f.port, NULL), UV_EOF);
  cr_assert_lt(uv_now(&f.loop) - t0, 5000);
  cr_assert_eq(hs_count(f.reg, "timeout"), 1);
  stop(&f);
}

/* ---- reload ------------------------------------------------------------------- */

Test(tls_server, swap_config_on_a_running_server) {
  fixture_t f;
  msvc_tls_config_t *cfg;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE);
  cr_assert_eq(s_client(&f.loop, f.port, "-tls1_2", NULL), 0);
  cr_assert(strstr(slurp(out_path), "O = second") == NULL);
  cfg = server_cfg("server2.crt", "server2.key", MSVC_TLS_AUTH_NONE, NULL);
  cr_assert_eq(msvc_http_server_set_tls(f.srv, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  cr_assert_eq(s_client(&f.loop, f.port, "-tls1_2", NULL), 0);
  cr_assert(strstr(slurp(out_path), "O = second") != NULL, "%s", slurp(out_path));
  stop(&f);
}

Test(tls_server, too_many_connections_answered_over_tls) {
  msvc_http_server_opts_t so;
  msvc_tls_config_t *cfg;
  fixture_t f;
  raw_t idle;
  struct sockaddr_in a;

  cr_assert_eq(uv_loop_init(&f.loop), 0);
  f.reg = NULL;
  msvc_http_server_opts_init(&so);
  so.max_connections = 1;
  so.http2 = false; /* curl would take h2 and get GOAWAY (see test_h2_tls.c) */
  cr_assert_eq(msvc_http_server_new(&f.loop, &so, &f.srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(f.srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
  cfg = server_cfg("server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL);
  cr_assert_eq(msvc_http_server_set_tls(f.srv, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  cr_assert_eq(msvc_http_server_listen(f.srv, "127.0.0.1", 0), MSVC_OK);
  f.port = msvc_http_server_port(f.srv);

  /* One connection that never says anything holds the only slot. */
  memset(&idle, 0, sizeof(idle));
  uv_tcp_init(&f.loop, &idle.tcp);
  idle.tcp.data = &idle;
  idle.creq.data = &idle;
  uv_ip4_addr("127.0.0.1", f.port, &a);
  cr_assert_eq(uv_tcp_connect(&idle.creq, &idle.tcp, (const struct sockaddr *)&a,
                              raw_connected), 0);
  while (msvc_http_server_connections(f.srv) < 1)
    uv_run(&f.loop, UV_RUN_ONCE);
  cr_assert_eq(curl(&f.loop, f.port, "/hello", NULL, NULL), 0, "%s", slurp(out_path));
  cr_assert(strstr(slurp(out_path), "too many connections") != NULL, "%s", slurp(out_path));
  uv_close((uv_handle_t *)&idle.tcp, raw_closed);
  run_until(&f.loop, &idle.closed);
  close_all(&f.loop, f.srv, NULL);
}
