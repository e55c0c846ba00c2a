/* Our TLS client against openssl s_server, nginx and our own server. */
#include <msvc/log.h>

#include "tls/helpers.h"

static char logged[2048];

static void sink(void *data, msvc_log_level_t level, const char *line, size_t len) {
  size_t have = strlen(logged);

  (void)data;
  (void)level;
  if (have + len < sizeof(logged))
    memcpy(logged + have, line, len + 1);
}

static char tmp[64];

static void init(void) {
  certs();
  snprintf(tmp, sizeof(tmp), "/tmp/msvc-tls-client-XXXXXX");
  cr_assert_not_null(mkdtemp(tmp));
}

static void fini(void) {
  char cmd[128];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    cr_log_warn("could not remove %s", tmp);
}

TestSuite(tls_client, .init = init, .fini = fini, .timeout = 60);

typedef struct fixture_s {
  uv_loop_t loop;
  msvc_metrics_registry_t *reg;  /* the server's handshakes */
  msvc_metrics_registry_t *creg; /* the client's */
  msvc_http_server_t *srv;
  msvc_http_client_t *c;
  char url[128];
} fixture_t;

/* Our server with crt/key (NULL: none) and a client trusting ca.crt. */
static void start(fixture_t *f, const char *crt, const char *key,
                  msvc_tls_client_auth_t auth, const char *client_crt,
                  const char *client_key, const char *name) {
  msvc_tls_config_t *cfg;

  memset(f, 0, sizeof(*f));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->reg), MSVC_OK);
  if (crt != NULL) {
    cfg = server_cfg(crt, key, auth, f->reg);
    f->srv = hello_server(&f->loop, cfg);
    msvc_tls_config_free(cfg);
    snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%d", msvc_http_server_port(f->srv));
  }
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->creg), MSVC_OK);
  cfg = client_cfg("ca.crt", client_crt, client_key, name, f->creg);
  cr_assert_eq(msvc_http_client_new(&f->loop, NULL, &f->c), MSVC_OK);
  cr_assert_eq(msvc_http_client_set_tls(f->c, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
}

static void stop(fixture_t *f) {
  close_all(&f->loop, f->srv, f->c);
  msvc_metrics_registry_free(f->reg);
  msvc_metrics_registry_free(f->creg);
}

static result_t get(fixture_t *f, const char *path) {
  char url[192];

  snprintf(url, sizeof(url), "%s%s", f->url, path);
  return fetch(&f->loop, f->c, url);
}

Test(tls_client, ip_endpoint_checked_against_ip_names) {
  fixture_t f;
  result_t r;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  r = get(&f, "/hello");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(r.body, "hello");
  /* The same host and port over plain HTTP is another pool endpoint. */
  snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d", msvc_http_server_port(f.srv));
  r = get(&f, "/hello");
  cr_assert_neq(r.err, 0);
  stop(&f);
}

Test(tls_client, wrong_name_refused) {
  fixture_t f;
  result_t r;

  start(&f, "wrong.crt", "wrong.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  msvc_log_set_level(MSVC_LOG_DEBUG);
  msvc_log_set_sink(sink, NULL);
  r = get(&f, "/hello");
  msvc_log_reset();
  cr_assert_eq(r.err, MSVC_ETLS_CERT, "%s", msvc_strerror(r.err));
  /* The reason is logged for the operator: the name does not match. */
  cr_assert(strstr(logged, "client handshake with 127.0.0.1:") != NULL &&
                strstr(logged, "CN") != NULL, "%s", logged);
  stop(&f);
  /* Pinned to the name the certificate does carry: accepted. */
  start(&f, "wrong.crt", "wrong.key", MSVC_TLS_AUTH_NONE, NULL, NULL, "wrong.example");
  r = get(&f, "/hello");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  stop(&f);
  /* Pinned to a name it does not carry: refused. */
  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL, NULL, "other.example");
  r = get(&f, "/hello");
  cr_assert_eq(r.err, MSVC_ETLS_CERT, "%s", msvc_strerror(r.err));
  stop(&f);
}

Test(tls_client, expired_server_refused) {
  fixture_t f;
  result_t r;

  start(&f, "expired.crt", "expired.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  r = get(&f, "/hello");
  cr_assert_eq(r.err, MSVC_ETLS_CERT, "%s", msvc_strerror(r.err));
  stop(&f);
}

Test(tls_client, untrusted_server_refused) {
  fixture_t f;
  msvc_tls_config_t *cfg;
  result_t r;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  cfg = client_cfg("other-ca.crt", NULL, NULL, NULL, NULL);
  cr_assert_eq(msvc_http_client_set_tls(f.c, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  r = get(&f, "/hello");
  cr_assert_eq(r.err, MSVC_ETLS_CERT, "%s", msvc_strerror(r.err));
  stop(&f);
}

Test(tls_client, mutual_tls_with_our_server) {
  fixture_t f;
  result_t r;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_REQUIRE, "client.crt", "client.key",
        NULL);
  r = get(&f, "/whoami");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "CN=client, O=libmsvc tests|spiffe://example.org/ns/test/sa/"
                           "client|client.example|1");
  stop(&f);
  /* Without a client certificate the server ends the handshake. */
  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_REQUIRE, NULL, NULL, NULL);
  r = get(&f, "/whoami");
  cr_assert(r.err == MSVC_ETLS || r.err == MSVC_ECONNRESET, "%s", msvc_strerror(r.err));
  stop(&f);
}

/* Each request on a new connection ("Connection: close"). */
static result_t get_close(fixture_t *f, const char *path) {
  msvc_http_request_t req;
  msvc_http_header_t h = {"Connection", "close"};
  char url[192];
  result_t r;

  memset(&r, 0, sizeof(r));
  snprintf(url, sizeof(url), "%s%s", f->url, path);
  msvc_http_request_init(&req);
  req.url = url;
  req.headers = &h;
  req.nheaders = 1;
  req.on_done = on_result;
  req.data = &r;
  cr_assert_eq(msvc_http_client_request(f->c, &req, NULL), MSVC_OK);
  run_until(&f->loop, &r.done);
  return r;
}

Test(tls_client, sessions_resume_per_endpoint) {
  fixture_t f;
  result_t r;
  int i;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  for (i = 0; i < 3; i++) {
    r = get_close(&f, "/hello");
    cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  }
  /* Both ends tell a resumed session from a full handshake. */
  cr_assert_eq(hs_count(f.reg, "ok"), 1);
  cr_assert_eq(hs_count(f.reg, "resumed"), 2);
  cr_assert_eq(hs_count(f.creg, "ok"), 1);
  cr_assert_eq(hs_count(f.creg, "resumed"), 2);
  stop(&f);
}

/* ---- external servers ---------------------------------------------------------- */

Test(tls_client, against_openssl_s_server) {
  fixture_t f;
  proc_t srv;
  char accept[32], *argv[] = {"/usr/bin/openssl", "s_server", "-accept", accept, "-cert",
                              (char *)cf("server-rsa.crt"), "-key",
                              (char *)cf("server-rsa.key"), "-www", "-naccept", "10", NULL};
  int port;
  result_t r;

  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, NULL, NULL, "localhost");
  port = free_port(&f.loop);
  snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
  proc_start(&f.loop, &srv, argv, NULL);
  wait_port(&f.loop, port);
  snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d", port);
  r = get(&f, "/");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_eq(r.status, 200);
  cr_assert(strstr(r.body, "Protocol  : TLSv1.2") != NULL, "%s", r.body);
  cr_assert(strstr(r.body, "ECDHE-RSA") != NULL && strstr(r.body, "GCM") != NULL, "%s",
            r.body);
  proc_stop(&f.loop, &srv);
  stop(&f);
}

Test(tls_client, expired_openssl_s_server_refused) {
  fixture_t f;
  proc_t srv;
  char accept[32], *argv[] = {"/usr/bin/openssl", "s_server", "-accept", accept, "-cert",
                              (char *)cf("expired.crt"), "-key", (char *)cf("expired.key"),
                              "-www", "-naccept", "10", NULL};
  int port;
  result_t r;

  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, NULL, NULL, "localhost");
  port = free_port(&f.loop);
  snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
  proc_start(&f.loop, &srv, argv, NULL);
  wait_port(&f.loop, port);
  snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d", port);
  r = get(&f, "/");
  cr_assert_eq(r.err, MSVC_ETLS_CERT, "%s", msvc_strerror(r.err));
  proc_stop(&f.loop, &srv);
  stop(&f);
}

Test(tls_client, against_nginx_with_mutual_tls) {
  fixture_t f;
  proc_t srv;
  char conf[256], text[2048], prefix[128];
  char *argv[] = {"/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e", "stderr", NULL};
  FILE *fp;
  int port;
  result_t r;

  if (access("/usr/sbin/nginx", X_OK) != 0)
    cr_skip_test("nginx is not installed");
  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, "client.crt", "client.key", "localhost");
  port = free_port(&f.loop);
  snprintf(prefix, sizeof(prefix), "%s/", tmp);
  snprintf(conf, sizeof(conf), "%s/nginx.conf", tmp);
  snprintf(text, sizeof(text),
           "daemon off; master_process off; pid %s/nginx.pid; error_log stderr;\n"
           "events { worker_connections 64; }\n"
           "http { access_log off; client_body_temp_path %s; proxy_temp_path %s;\n"
           "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"
           "  server { listen 127.0.0.1:%d ssl;\n"
           "    ssl_certificate %s; ssl_certificate_key %s;\n"
           "    ssl_client_certificate %s; ssl_verify_client on;\n"
           "    ssl_protocols TLSv1.2;\n"
           "    location / { return 200 \"nginx $ssl_client_s_dn\"; } } }\n",
           tmp, tmp, tmp, tmp, tmp, tmp, port, cf("server.crt"), cf("server.key"),
           cf("ca.crt"));
  fp = fopen(conf, "w");
  cr_assert_not_null(fp);
  fputs(text, fp);
  fclose(fp);
  proc_start(&f.loop, &srv, argv, NULL);
  wait_port(&f.loop, port);
  snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d", port);
  r = get(&f, "/");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_eq(r.status, 200);
  cr_assert(strstr(r.body, "nginx ") == r.body && strstr(r.body, "CN=client") != NULL,
            "%s", r.body);
  proc_stop(&f.loop, &srv);
  stop(&f);
}

/* ---- reload under load ------------------------------------------------------------ */

typedef struct load_s {
  fixture_t *f;
  msvc_tls_config_t *cfg;
  const char *dir;
  int started, completed, failed, reloads, bad_reloads;
  int total;
  bool done;
} load_t;

static void load_next(load_t *l);

static void swap_files(load_t *l) {
  char cmd[1200];
  const char *which = l->reloads % 2 == 0 ? "server2" : "server";

  /* New files appear by rename, as a deployment tool would write them. */
  snprintf(cmd, sizeof(cmd),
           "cp '%s/%s.crt' '%s/n.crt' && cp '%s/%s.key' '%s/n.key' && "
           "mv '%s/n.key' '%s/tls.key' && mv '%s/n.crt' '%s/tls.crt'",
           certs(), which, l->dir, certs(), which, l->dir, l->dir, l->dir, l->dir, l->dir);
  cr_assert_eq(system(cmd), 0);
}

static void load_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                      void *data) {
  load_t *l = data;

  (void)call;
  l->completed++;
  if (err != 0 || msvc_http_response_status(res) != 200)
    l->failed++;
  if (l->completed % 10 == 0) {
    swap_files(l);
    if (msvc_tls_config_reload(l->cfg, NULL, 0) == 0)
      l->reloads++;
    else
      l->bad_reloads++;
  }
  if (l->completed == l->total)
    l->done = true;
  else
    load_next(l);
}

static void load_next(load_t *l) {
  msvc_http_request_t req;
  msvc_http_header_t h = {"Connection", "close"};
  char url[192];

  if (l->started == l->total)
    return;
  l->started++;
  snprintf(url, sizeof(url), "%s/hello", l->f->url);
  msvc_http_request_init(&req);
  req.url = url;
  /* Every other request on a new connection: handshakes span reloads. */
  req.headers = &h;
  req.nheaders = l->started % 2;
  req.on_done = load_done;
  req.data = l;
  cr_assert_eq(msvc_http_client_request(l->f->c, &req, NULL), MSVC_OK);
}

Test(tls_client, reload_under_load_fails_nothing) {
  fixture_t f;
  msvc_tls_opts_t o;
  load_t l;
  char crt[128], key[128], err[256];
  int i;

  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  memset(&l, 0, sizeof(l));
  l.f = &f;
  l.dir = tmp;
  l.total = 200;
  swap_files(&l);
  l.reloads = 1;
  snprintf(crt, sizeof(crt), "%s/tls.crt", tmp);
  snprintf(key, sizeof(key), "%s/tls.key", tmp);
  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = crt;
  o.key_file = key;
  o.metrics = f.reg;
  cr_assert_eq(msvc_tls_config_new(&o, &l.cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  f.srv = hello_server(&f.loop, l.cfg);
  snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d", msvc_http_server_port(f.srv));
  for (i = 0; i < 8; i++)
    load_next(&l);
  run_until(&f.loop, &l.done);
  cr_assert_eq(l.failed, 0, "%d of %d requests failed", l.failed, l.total);
  cr_assert_gt(l.reloads, 10);
  cr_assert_eq(l.bad_reloads, 0);
  msvc_tls_config_free(l.cfg);
  stop(&f);
}

/* ---- a server that accepts and never answers ------------------------------------- */

typedef struct mute_s {
  uv_tcp_t listener;
  uv_tcp_t conn;
  bool accepted;
  int closed;
} mute_t;

static void mute_closed(uv_handle_t *h) {
  ((mute_t *)h->data)->closed++;
}

static void mute_accept(uv_stream_t *l, int status) {
  mute_t *m = l->data;

  cr_assert_eq(status, 0);
  uv_tcp_init(l->loop, &m->conn);
  m->conn.data = m;
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&m->conn), 0);
  m->accepted = true;
}

Test(tls_client, stalled_server_handshake_times_out) {
  fixture_t f;
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  mute_t m;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss);
  result_t r;

  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  o.ca_file = cf("ca.crt");
  o.handshake_timeout_ms = 200;
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_http_client_set_tls(f.c, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  memset(&m, 0, sizeof(m));
  uv_tcp_init(&f.loop, &m.listener);
  m.listener.data = &m;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&m.listener, (const struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&m.listener, 8, mute_accept), 0);
  uv_tcp_getsockname(&m.listener, (struct sockaddr *)&ss, &len);
  snprintf(f.url, sizeof(f.url), "https://127.0.0.1:%d",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
  r = get(&f, "/hello");
  cr_assert_eq(r.err, MSVC_ETLS_TIMEOUT, "%s", msvc_strerror(r.err));
  cr_assert(m.accepted);
  uv_close((uv_handle_t *)&m.listener, mute_closed);
  uv_close((uv_handle_t *)&m.conn, mute_closed);
  stop(&f);
}

Test(tls_client, host_and_port_request_with_tls) {
  fixture_t f;
  msvc_http_request_t req;
  result_t r;

  start(&f, "server.crt", "server.key", MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  memset(&r, 0, sizeof(r));
  msvc_http_request_init(&req);
  req.host = "127.0.0.1";
  req.port = msvc_http_server_port(f.srv);
  req.target = "/hello";
  req.tls = true;
  req.on_done = on_result;
  req.data = &r;
  cr_assert_eq(msvc_http_client_request(f.c, &req, NULL), MSVC_OK);
  run_until(&f.loop, &r.done);
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "hello");
  stop(&f);
}

Test(tls_client, plain_server_has_no_peer_identity) {
  fixture_t f;
  result_t r;

  start(&f, NULL, NULL, MSVC_TLS_AUTH_NONE, NULL, NULL, NULL);
  f.srv = hello_server(&f.loop, NULL);
  snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d", msvc_http_server_port(f.srv));
  r = get(&f, "/whoami");
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "-|-|-|0");
  stop(&f);
}
