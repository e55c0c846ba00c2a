/*
 * proxy: forwards every request it receives to one upstream with libmsvc's
 * HTTP client (keep-alive pool), and sends the upstream's answer back.
 *
 *   proxy --upstream 127.0.0.1:8080 [--port N] [--conns N]
 *
 * Listens on 127.0.0.1 (MSVC_HOST to change) and prints its address. An
 * upstream failure becomes a 502 (504 on timeout) in the CONTRACTS error
 * format. SIGINT or SIGTERM stops it.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msvc/http.h>
#include <msvc/http_client.h>

typedef struct proxy_s {
  uv_loop_t *loop;
  msvc_http_server_t *srv;
  msvc_http_client_t *client;
  uv_signal_t sigint, sigterm;
  char host[128];
  int port;
} proxy_t;

/* Request headers that describe the hop rather than the request. */
static bool hop_header(const char *name) {
  static const char *const hop[] = {"connection", "keep-alive", "host", "content-length",
                                    "transfer-encoding", "te", "upgrade",
                                    "proxy-connection"};
  size_t i;

  for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if (strcasecmp(name, hop[i]) == 0)
      return true;
  return false;
}

static void on_upstream(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                        void *data) {
  msvc_http_req_t *req = data;
  msvc_http_res_t *out = msvc_http_req_res(req);
  const char *type, *body;
  size_t len;

  (void)call;
  msvc_http_req_on_cancel(req, NULL, NULL);
  if (err != MSVC_OK) {
    (void)msvc_http_res_error(out, err == MSVC_ETIMEDOUT ? 504 : 502, "UNAVAILABLE",
                              msvc_strerror(err));
    return;
  }
  type = msvc_http_response_header(res, "content-type");
  body = msvc_http_response_body(res, &len);
  (void)msvc_http_res_send(out, msvc_http_response_status(res), type, body, len);
}

static void on_client_gone(msvc_http_req_t *req, void *data) {
  (void)req;
  msvc_http_call_cancel(data);
}

static void forward(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  proxy_t *p = data;
  msvc_http_header_t hdrs[32];
  msvc_http_request_t r;
  msvc_http_call_t *call;
  size_t i, n = 0, count = msvc_http_req_header_count(req);
  int rc;

  for (i = 0; i < count && n < 32; i++) {
    const char *name, *value;
    if (msvc_http_req_header_at(req, i, &name, &value) == MSVC_OK && !hop_header(name)) {
      hdrs[n].name = name;
      hdrs[n].value = value;
      n++;
    }
  }
  msvc_http_request_init(&r);
  r.method = msvc_http_req_method(req);
  r.host = p->host;
  r.port = p->port;
  r.target = msvc_http_req_target(req);
  r.headers = hdrs;
  r.nheaders = n;
  r.body = msvc_http_req_body(req, &r.body_len);
  r.timeouts.first_byte_ms = 10000;
  r.on_done = on_upstream;
  r.data = req;
  rc = msvc_http_client_request(p->client, &r, &call);
  if (rc != MSVC_OK) {
    (void)msvc_http_res_error(res, rc == MSVC_EHTTP_POOL_FULL ? 503 : 502, "UNAVAILABLE",
                              msvc_strerror(rc));
    return;
  }
  msvc_http_req_on_cancel(req, on_client_gone, call);
}

static void on_signal(uv_signal_t *s, int signum) {
  proxy_t *p = s->data;

  (void)signum;
  uv_close((uv_handle_t *)&p->sigint, NULL);
  uv_close((uv_handle_t *)&p->sigterm, NULL);
  msvc_http_server_close(p->srv, NULL, NULL);
  msvc_http_client_close(p->client, NULL, NULL);
}

static int parse_upstream(const char *s, proxy_t *p) {
  const char *colon = strrchr(s, ':');
  char *end;
  long port;

  if (colon == NULL || (size_t)(colon - s) >= sizeof(p->host) || colon == s)
    return -1;
  port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return -1;
  memcpy(p->host, s, (size_t)(colon - s));
  p->host[colon - s] = '\0';
  p->port = (int)port;
  return 0;
}

static int parse_args(int argc, char **argv, proxy_t *p, int *port,
                      msvc_http_client_opts_t *co) {
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--upstream") == 0 && i + 1 < argc) {
      if (parse_upstream(argv[++i], p) != 0)
        return -1;
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      *port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
      co->max_conns_per_endpoint = (uint32_t)atoi(argv[++i]);
      co->max_idle_per_endpoint = co->max_conns_per_endpoint;
    } else {
      return -1;
    }
  }
  return p->port > 0 && *port >= 0 && *port <= 65535 ? 0 : -1;
}

int main(int argc, char **argv) {
  static proxy_t p;
  msvc_http_client_opts_t co;
  uv_loop_t loop;
  const char *host = getenv("MSVC_HOST");
  int port = 0, rc;

  msvc_http_client_opts_init(&co);
  if (parse_args(argc, argv, &p, &port, &co) != 0) {
    fprintf(stderr, "usage: proxy --upstream HOST:PORT [--port N] [--conns N]\n");
    return 2;
  }
  if (host == NULL)
    host = "127.0.0.1";
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  p.loop = &loop;
  if ((rc = msvc_http_client_new(&loop, &co, &p.client)) != MSVC_OK ||
      (rc = msvc_http_server_new(&loop, NULL, &p.srv)) != MSVC_OK ||
      (rc = msvc_http_server_route(p.srv, "*", "/*", forward, &p, NULL)) != MSVC_OK ||
      (rc = msvc_http_server_listen(p.srv, host, port)) != MSVC_OK) {
    fprintf(stderr, "proxy: %s\n", msvc_strerror(rc));
    return 1;
  }
  printf("listening on http://%s:%d\n", host, msvc_http_server_port(p.srv));
  fflush(stdout);
  uv_signal_init(&loop, &p.sigint);
  uv_signal_init(&loop, &p.sigterm);
  p.sigint.data = &p;
  p.sigterm.data = &p;
  uv_signal_start(&p.sigint, on_signal, SIGINT);
  uv_signal_start(&p.sigterm, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
