/*
 * proxy: forwards every request it receives to one of its upstreams with
 * libmsvc's HTTP client (keep-alive pool), and sends the upstream's answer
 * back. With several upstreams, libmsvc's balancer chooses one per request.
 *
 *   proxy --upstream 127.0.0.1:8080 [--upstream HOST:PORT ...] [--port N]
 *         [--conns N] [--lb round_robin|least_conn|p2c]
 *
 * The policy comes from --lb, else MSVC_LB, else round_robin. Listens on
 * 127.0.0.1 (MSVC_HOST to change) and prints its address. An upstream
 * failure becomes a 502 (504 on timeout) in the library's JSON error format.
 * SIGINT or SIGTERM stops it.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/lb.h>

#define MAX_UPSTREAMS 16

typedef struct upstream_s {
  char id[140]; /* host:port, the balancer's endpoint id */
  char host[128];
  int port;
} upstream_t;

typedef struct proxy_s {
  uv_loop_t *loop;
  msvc_http_server_t *srv;
  msvc_http_client_t *client;
  msvc_lb_t *lb;
  uv_signal_t sigint, sigterm;
  upstream_t up[MAX_UPSTREAMS];
  size_t nup;
} proxy_t;

/* One forwarded request: the balancer's ticket is returned when it ends. */
typedef struct hop_s {
  proxy_t *p;
  msvc_http_req_t *req;
  msvc_http_call_t *call;
  msvc_lb_ticket_t ticket;
  uint64_t t0_ms;
  bool client_gone; /* req is no longer ours to touch */
} hop_t;

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

static void hop_end(hop_t *h, bool ok) {
  uint64_t now = uv_now(h->p->loop);

  (void)msvc_lb_done(h->p->lb, &h->ticket, ok ? MSVC_LB_SUCCESS : MSVC_LB_FAILURE,
                     (now - h->t0_ms) * 1000u);
  free(h);
}

static void on_upstream(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                        void *data) {
  hop_t *h = data;
  msvc_http_req_t *req = h->req;
  bool gone = h->client_gone;
  msvc_http_res_t *out;
  const char *type, *body;
  size_t len;

  (void)call;
  /* A client that left says nothing about the upstream. */
  hop_end(h, err == MSVC_ECANCELED ||
                 (err == MSVC_OK && msvc_http_response_status(res) < 500));
  if (gone)
    return;
  msvc_http_req_on_cancel(req, NULL, NULL);
  out = msvc_http_req_res(req);
  if (err != MSVC_OK) {
    (void)msvc_http_res_error(out, err == MSVC_ETIMEDOUT ? 504 : 502, "UNAVAILABLE",
                              msvc_strerror(err));
    return;
  }
  type = msvc_http_response_header(res, "content-type");
  body = msvc_http_response_body(res, &len);
  (void)msvc_http_res_send(out, msvc_http_response_status(res), type, body, len);
}

/* The upstream call ends with MSVC_ECANCELED later, from the loop. */
static void on_client_gone(msvc_http_req_t *req, void *data) {
  hop_t *h = data;

  (void)req;
  h->client_gone = true;
  msvc_http_call_cancel(h->call);
}

static const upstream_t *find_upstream(const proxy_t *p, const char *id) {
  size_t i;

  for (i = 0; i < p->nup; i++)
    if (strcmp(p->up[i].id, id) == 0)
      return &p->up[i];
  return &p->up[0];
}

static void forward(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  proxy_t *p = data;
  msvc_http_header_t hdrs[32];
  msvc_http_request_t r;
  msvc_http_call_t *call;
  const upstream_t *up;
  hop_t *h = malloc(sizeof(*h));
  size_t i, n = 0, count = msvc_http_req_header_count(req);
  int rc;

  if (h == NULL) {
    (void)msvc_http_res_error(res, 503, "UNAVAILABLE", "out of memory");
    return;
  }
  h->p = p;
  h->req = req;
  h->call = NULL;
  h->client_gone = false;
  h->t0_ms = uv_now(p->loop);
  if ((rc = msvc_lb_pick(p->lb, h->t0_ms, &h->ticket)) != MSVC_OK) {
    free(h);
    (void)msvc_http_res_error(res, 503, "UNAVAILABLE", msvc_strerror(rc));
    return;
  }
  up = find_upstream(p, h->ticket.endpoint);

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
  r.host = up->host;
  r.port = up->port;
  r.target = msvc_http_req_target(req);
  r.headers = hdrs;
  r.nheaders = n;
  r.body = msvc_http_req_body(req, &r.body_len);
  r.timeouts.first_byte_ms = 10000;
  r.on_done = on_upstream;
  r.data = h;
  rc = msvc_http_client_request(p->client, &r, &call);
  if (rc != MSVC_OK) {
    hop_end(h, false);
    (void)msvc_http_res_error(res, rc == MSVC_EHTTP_POOL_FULL ? 503 : 502, "UNAVAILABLE",
                              msvc_strerror(rc));
    return;
  }
  h->call = call;
  msvc_http_req_on_cancel(req, on_client_gone, h);
}

static void on_signal(uv_signal_t *s, int signum) {
  proxy_t *p = s->data;

  (void)signum;
  uv_close((uv_handle_t *)&p->sigint, NULL);
  uv_close((uv_handle_t *)&p->sigterm, NULL);
  msvc_http_server_close(p->srv, NULL, NULL);
  msvc_http_client_close(p->client, NULL, NULL);
}

/* HOST:PORT appended to the upstreams. */

static int parse_upstream(const char *s, proxy_t *p) {
  const char *colon = strrchr(s, ':');
  upstream_t *u = &p->up[p->nup];
  char *end;
  long port;

  if (p->nup == MAX_UPSTREAMS || colon == NULL || (size_t)(colon - s) >= sizeof(u->host) ||
      colon == s)
    return -1;
  port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535)
    return -1;
  memcpy(u->host, s, (size_t)(colon - s));
  u->host[colon - s] = '\0';
  u->port = (int)port;
  /* The id is the argument itself, with the port normalised. */
  memcpy(u->id, s, (size_t)(colon - s));
  snprintf(u->id + (colon - s), sizeof(u->id) - (size_t)(colon - s), ":%ld", port);
  p->nup++;
  return 0;
}

static int parse_args(int argc, char **argv, proxy_t *p, int *port,
                      msvc_http_client_opts_t *co, msvc_lb_opts_t *lo) {
  int i;

  if (getenv("MSVC_LB") != NULL && msvc_lb_policy_parse(getenv("MSVC_LB"), &lo->policy) != 0)
    return -1;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--upstream") == 0 && i + 1 < argc) {
      if (parse_upstream(argv[++i], p) != 0)
        return -1;
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      *port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc) {
      co->max_conns_per_endpoint = (uint32_t)atoi(argv[++i]);
      co->max_idle_per_endpoint = co->max_conns_per_endpoint;
    } else if (strcmp(argv[i], "--lb") == 0 && i + 1 < argc) {
      if (msvc_lb_policy_parse(argv[++i], &lo->policy) != MSVC_OK)
        return -1;
    } else {
      return -1;
    }
  }
  return p->nup > 0 && *port >= 0 && *port <= 65535 ? 0 : -1;
}

static int start_lb(proxy_t *p, const msvc_lb_opts_t *lo) {
  msvc_lb_endpoint_t eps[MAX_UPSTREAMS];
  size_t i;
  int rc;

  for (i = 0; i < p->nup; i++) {
    eps[i].id = p->up[i].id;
    eps[i].weight = 1;
    eps[i].metadata = NULL;
  }
  if ((rc = msvc_lb_new(lo, &p->lb)) != MSVC_OK)
    return rc;
  return msvc_lb_update(p->lb, eps, p->nup, uv_now(p->loop));
}

int main(int argc, char **argv) {
  static proxy_t p;
  msvc_http_client_opts_t co;
  msvc_lb_opts_t lo;
  uv_loop_t loop;
  const char *host = getenv("MSVC_HOST");
  int port = 0, rc;

  msvc_http_client_opts_init(&co);
  msvc_lb_opts_init(&lo);
  if (parse_args(argc, argv, &p, &port, &co, &lo) != 0) {
    fprintf(stderr, "usage: proxy --upstream HOST:PORT [--upstream HOST:PORT ...] [--port N]"
                    " [--conns N] [--lb round_robin|least_conn|p2c]\n");
    return 2;
  }
  if (host == NULL)
    host = "127.0.0.1";
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  p.loop = &loop;
  if ((rc = start_lb(&p, &lo)) != MSVC_OK ||
      (rc = msvc_http_client_new(&loop, &co, &p.client)) != MSVC_OK ||
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
  msvc_lb_free(p.lb);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
