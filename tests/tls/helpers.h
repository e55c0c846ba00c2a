/*
 * Scaffolding of the TLS tests: certificates made by gen_certs.sh, external
 * peers (curl, openssl, nginx) run as child processes on the test's own
 * loop, a hello server and a client call that runs the loop until done.
 */
#ifndef TEST_TLS_HELPERS_H
#define TEST_TLS_HELPERS_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/metrics.h>
#include <msvc/tls.h>

/* ---- certificates ---------------------------------------------------------- */

static char cert_dir[512];

/* ctest makes them once (fixture); a test binary run by hand makes its own. */
static inline const char *certs(void) {
  struct stat st;
  char cmd[1400], probe[600];
  const char *env = getenv("MSVC_TLS_TEST_CERTS");

  if (cert_dir[0] != '\0')
    return cert_dir;
  snprintf(cert_dir, sizeof(cert_dir), "%s",
           env != NULL ? env : LIBMSVC_TEST_BINARY_DIR "/tests/tls/certs");
  snprintf(probe, sizeof(probe), "%s/expired.crt", cert_dir);
  if (stat(probe, &st) != 0) {
    snprintf(cmd, sizeof(cmd), "sh '%s/tests/tls/gen_certs.sh' '%s' >/dev/null 2>&1",
             LIBMSVC_TEST_SOURCE_DIR, cert_dir);
    cr_assert_eq(system(cmd), 0, "gen_certs.sh failed");
  }
  return cert_dir;
}

/* Path of a file in the certificate directory (rotating static buffers). */
static inline const char *cf(const char *name) {
  static char bufs[8][600];
  static int next;
  char *b = bufs[next++ % 8];

  snprintf(b, 600, "%s/%s", certs(), name);
  return b;
}

static inline msvc_tls_config_t *server_cfg(const char *crt, const char *key,
                                            msvc_tls_client_auth_t auth,
                                            msvc_metrics_registry_t *reg) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];
  int rc;

  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = cf(crt);
  o.key_file = cf(key);
  o.client_auth = auth;
  o.ca_file = auth != MSVC_TLS_AUTH_NONE ? cf("ca.crt") : NULL;
  o.metrics = reg;
  rc = msvc_tls_config_new(&o, &cfg, err, sizeof(err));
  cr_assert_eq(rc, MSVC_OK, "server config: %s", err);
  return cfg;
}

static inline msvc_tls_config_t *client_cfg(const char *ca, const char *crt,
                                            const char *key, const char *name,
                                            msvc_metrics_registry_t *reg) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];
  int rc;

  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  o.ca_file = cf(ca);
  o.cert_file = crt != NULL ? cf(crt) : NULL;
  o.key_file = key != NULL ? cf(key) : NULL;
  o.server_name = name;
  o.metrics = reg;
  rc = msvc_tls_config_new(&o, &cfg, err, sizeof(err));
  cr_assert_eq(rc, MSVC_OK, "client config: %s", err);
  return cfg;
}

/* ---- child processes -------------------------------------------------------- */

static inline void flag_closed(uv_handle_t *h) {
  *(bool *)h->data = true;
}

typedef struct proc_s {
  uv_process_t p;
  int64_t status;
  int signal;
  bool exited;
  bool closed;
} proc_t;

static inline void proc_closed(uv_handle_t *h) {
  ((proc_t *)h->data)->closed = true;
}

static inline void proc_exit(uv_process_t *p, int64_t status, int sig) {
  proc_t *pr = p->data;

  pr->status = status;
  pr->signal = sig;
  pr->exited = true;
  uv_close((uv_handle_t *)p, proc_closed);
}

/* Starts argv with stdout and stderr into out_path (NULL: /dev/null) and
 * stdin from /dev/null. */
static inline void proc_start(uv_loop_t *loop, proc_t *pr, char **argv,
                              const char *out_path) {
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  int in = open("/dev/null", O_RDONLY);
  int out = open(out_path != NULL ? out_path : "/dev/null",
                 O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int rc;

  memset(pr, 0, sizeof(*pr));
  memset(&o, 0, sizeof(o));
  io[0].flags = UV_INHERIT_FD;
  io[0].data.fd = in;
  io[1].flags = UV_INHERIT_FD;
  io[1].data.fd = out;
  io[2].flags = UV_INHERIT_FD;
  io[2].data.fd = out;
  o.file = argv[0];
  o.args = argv;
  o.stdio = io;
  o.stdio_count = 3;
  o.exit_cb = proc_exit;
  pr->p.data = pr;
  rc = uv_spawn(loop, &pr->p, &o);
  close(in);
  close(out);
  cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], uv_strerror(rc));
}

static inline void run_until(uv_loop_t *loop, const bool *flag) {
  while (!*flag)
    uv_run(loop, UV_RUN_ONCE);
}

/* Runs argv to its end; returns its exit status. */
static inline int proc_run(uv_loop_t *loop, char **argv, const char *out_path) {
  proc_t pr;

  proc_start(loop, &pr, argv, out_path);
  run_until(loop, &pr.closed);
  return pr.signal != 0 ? 128 + pr.signal : (int)pr.status;
}

static inline void proc_stop(uv_loop_t *loop, proc_t *pr) {
  if (!pr->exited)
    uv_process_kill(&pr->p, SIGTERM);
  run_until(loop, &pr->closed);
}

static inline char *slurp(const char *path) {
  static char buf[65536];
  FILE *f = fopen(path, "rb");
  size_t n = 0;

  buf[0] = '\0';
  if (f != NULL) {
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

/* A port that was free a moment ago, for peers that cannot bind port 0. */
static inline int free_port(uv_loop_t *loop) {
  uv_tcp_t t;
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = (int)sizeof(ss), port;
  bool closed = false;

  uv_tcp_init(loop, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  t.data = &closed;
  uv_close((uv_handle_t *)&t, flag_closed);
  run_until(loop, &closed);
  return port;
}

typedef struct probe_s {
  uv_tcp_t tcp;
  uv_connect_t req;
  int status;
  bool done;
  bool closed;
} probe_t;

static inline void probe_closed(uv_handle_t *h) {
  ((probe_t *)h->data)->closed = true;
}

static inline void probe_connected(uv_connect_t *req, int status) {
  probe_t *p = req->data;

  p->status = status;
  p->done = true;
}

/* Waits until something accepts connections on the port (5 s at most). */
static inline void wait_port(uv_loop_t *loop, int port) {
  struct sockaddr_in a;
  int i;

  uv_ip4_addr("127.0.0.1", port, &a);
  for (i = 0; i < 100; i++) {
    probe_t p;
    memset(&p, 0, sizeof(p));
    uv_tcp_init(loop, &p.tcp);
    p.tcp.data = &p;
    p.req.data = &p;
    cr_assert_eq(uv_tcp_connect(&p.req, &p.tcp, (const struct sockaddr *)&a,
                                probe_connected), 0);
    run_until(loop, &p.done);
    uv_close((uv_handle_t *)&p.tcp, probe_closed);
    run_until(loop, &p.closed);
    if (p.status == 0)
      return;
    usleep(50000);
  }
  cr_assert_fail("port %d never opened", port);
}

/* ---- our server and client ---------------------------------------------------- */

static inline void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello", 5);
}

/* Echoes the client's identity: "subject|first URI|first DNS|secure". */
static inline void h_whoami(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char body[1024];
  const char *s = msvc_tls_req_peer_subject(req);
  const char *u = msvc_tls_req_peer_san(req, MSVC_TLS_SAN_URI, 0);
  const char *d = msvc_tls_req_peer_san(req, MSVC_TLS_SAN_DNS, 0);
  int n;

  (void)data;
  n = snprintf(body, sizeof(body), "%s|%s|%s|%d", s ? s : "-", u ? u : "-", d ? d : "-",
               msvc_tls_req_secure(req));
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static inline msvc_http_server_t *hello_server(uv_loop_t *loop, msvc_tls_config_t *cfg) {
  msvc_http_server_t *srv;

  cr_assert_eq(msvc_http_server_new(loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/whoami", h_whoami, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_set_tls(srv, cfg), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(srv, "127.0.0.1", 0), MSVC_OK);
  return srv;
}

typedef struct result_s {
  int err;
  int status;
  char body[8192];
  bool done;
} result_t;

static inline void on_result(msvc_http_call_t *call, int err,
                             const msvc_http_response_t *res, void *data) {
  result_t *r = data;
  size_t len = 0;
  const char *b;

  (void)call;
  r->err = err;
  if (res != NULL) {
    r->status = msvc_http_response_status(res);
    b = msvc_http_response_body(res, &len);
    if (len >= sizeof(r->body))
      len = sizeof(r->body) - 1;
    memcpy(r->body, b, len);
  }
  r->body[len] = '\0';
  r->done = true;
}

/* GETs url and runs the loop until the answer (or the error) is in. */
static inline result_t fetch(uv_loop_t *loop, msvc_http_client_t *c, const char *url) {
  msvc_http_request_t req;
  result_t r;

  memset(&r, 0, sizeof(r));
  msvc_http_request_init(&req);
  req.url = url;
  req.on_done = on_result;
  req.data = &r;
  req.timeouts.total_ms = 5000;
  cr_assert_eq(msvc_http_client_request(c, &req, NULL), MSVC_OK);
  run_until(loop, &r.done);
  return r;
}

static inline void close_all(uv_loop_t *loop, msvc_http_server_t *srv,
                             msvc_http_client_t *c) {
  if (srv != NULL)
    msvc_http_server_close(srv, NULL, NULL);
  if (c != NULL)
    msvc_http_client_close(c, NULL, NULL);
  cr_assert_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(loop), 0, "a handle leaked");
}

/* Value of msvc_tls_handshakes_total{result=...} in reg. */
static inline double hs_count(msvc_metrics_registry_t *reg, const char *result) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *f;
  msvc_metrics_counter_t *c;
  const char *label = "result";

  msvc_metrics_family_opts_init(&o);
  o.name = "msvc_tls_handshakes_total";
  o.help = "TLS handshakes by result (ok, resumed, failed, timeout)";
  o.label_names = &label;
  o.label_count = 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &f), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(f, &result, 1, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

#endif /* TEST_TLS_HELPERS_H */
