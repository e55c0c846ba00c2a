/*
 * The reverse proxy at its edges: HEAD answers keep the upstream's length,
 * and a client that leaves while its request is forwarded costs nothing
 * (the upstream call is cancelled, the proxy serves on). A gateway server
 * and the instances run on the test's loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call_helpers.h"

TestSuite(call_proxy, .timeout = 60);

static harness_t *gw_h;

static void api(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_proxy_opts_t po;

  (void)res;
  (void)data;
  msvc_service_proxy_opts_init(&po);
  po.service = gw_h->svc;
  po.strip_prefix = "/api";
  cr_assert_eq(msvc__caller_proxy(gw_h->caller, req, &po), MSVC_OK);
}

static msvc_http_server_t *gw_start(harness_t *h) {
  msvc_http_server_t *gw;

  gw_h = h;
  cr_assert_eq(msvc_http_server_new(&h->loop, NULL, &gw), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(gw, "*", "/api/*", api, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(gw, "127.0.0.1", 0), MSVC_OK);
  return gw;
}

typedef struct got_s {
  int calls, err, status;
  char clen[32], te[32];
  size_t body_len;
  uint64_t took;
} got_t;

static void got_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                     void *data) {
  got_t *g = data;
  const char *v;

  (void)call;
  g->calls++;
  g->err = err;
  if (res == NULL)
    return;
  g->status = msvc_http_response_status(res);
  msvc_http_response_body(res, &g->body_len);
  v = msvc_http_response_header(res, "Content-Length");
  snprintf(g->clen, sizeof(g->clen), "%s", v != NULL ? v : "-");
  v = msvc_http_response_header(res, "Transfer-Encoding");
  snprintf(g->te, sizeof(g->te), "%s", v != NULL ? v : "-");
}

static bool got_finished(void *arg) { return ((got_t *)arg)->calls > 0; }

static void fetch(harness_t *h, msvc_http_client_t *cl, int port, const char *method,
                  const char *target, got_t *g) {
  msvc_http_request_t r;
  uint64_t t0 = msvc_now_ms();

  memset(g, 0, sizeof(*g));
  msvc_http_request_init(&r);
  r.method = method;
  r.host = "127.0.0.1";
  r.port = port;
  r.target = target;
  r.timeouts.total_ms = 3000;
  r.on_done = got_done;
  r.data = g;
  cr_assert_eq(msvc_http_client_request(cl, &r, NULL), MSVC_OK);
  cr_assert(h_run_until(h, got_finished, g, 5000));
  g->took = msvc_now_ms() - t0;
  cr_assert_eq(g->err, MSVC_OK, "%s %s: %s", method, target, msvc_err_name(g->err));
}

Test(call_proxy, head_keeps_the_upstream_length) {
  harness_t h;
  msvc_http_server_t *gw;
  msvc_http_client_t *cl;
  got_t g;
  char want[16];
  int port;

  h_init(&h, "calls-head", MSVC_LB_ROUND_ROBIN, 1000);
  h_add_instance(&h, 0);
  gw = gw_start(&h);
  port = msvc_http_server_port(gw);
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &cl), MSVC_OK);
  snprintf(want, sizeof(want), "%zu", strlen(H_DOC));

  /* the length of what a GET gets (streamed back, so chunked), a HEAD
   * announces; and nobody waits for a body */
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_eq(g.body_len, strlen(H_DOC));
  fetch(&h, cl, port, "HEAD", "/api/doc", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(g.clen, want, "HEAD through the proxy said Content-Length %s", g.clen);
  cr_assert_eq(g.body_len, 0);
  cr_assert_lt(g.took, 1000, "the HEAD took %llu ms", (unsigned long long)g.took);
  /* the pooled connection is still in step: a GET after the HEAD */
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.body_len, strlen(H_DOC));
  cr_assert_eq(msvc_http_client_connections(cl, "127.0.0.1", port), 1);

  /* an upstream answer without a length stays without one */
  fetch(&h, cl, port, "HEAD", "/api/echo/x", &g);
  cr_assert_eq(g.status, 201);
  cr_assert_str_eq(g.clen, "-");
  cr_assert_str_eq(g.te, "chunked");
  cr_assert_eq(g.body_len, 0);
  fetch(&h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.body_len, strlen(H_DOC));

  msvc_http_client_close(cl, NULL, NULL);
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
}

/* ---- a client that leaves while its request is forwarded -------------------- */

/* Connects to port and sends raw; the loop accepts later. */
static int raw_send(int port, const char *raw) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  cr_assert_geq(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(send(fd, raw, strlen(raw), MSG_NOSIGNAL), (ssize_t)strlen(raw));
  return fd;
}

/* Leaves: a plain close, or a reset when abort. */
static void raw_leave(int fd, bool abort) {
  struct linger lg = {1, 0};

  if (abort)
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(fd);
}

typedef struct leave_s {
  harness_t *h;
  inst_t *in;
  int fd;
  size_t got; /* bytes the client read before leaving */
} leave_t;

static bool upstream_hit(void *arg) {
  leave_t *l = arg;
  return l->in->hits > 0;
}

/* Reads what the proxy sent so far, without blocking. */
static bool head_arrived(void *arg) {
  leave_t *l = arg;
  char buf[4096];
  ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);

  if (n > 0)
    l->got += (size_t)n;
  return l->got > 0;
}

/* The upstream call is over and its connection gone. */
static bool upstream_released(void *arg) {
  leave_t *l = arg;
  return msvc__queue_empty(&l->h->caller->main_lc->calls) &&
         msvc_http_server_connections(l->in->srv) == 0;
}

static void still_serves(harness_t *h, int port) {
  msvc_http_client_t *cl;
  got_t g;

  cr_assert_eq(msvc_http_client_new(&h->loop, NULL, &cl), MSVC_OK);
  fetch(h, cl, port, "GET", "/api/doc", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_eq(g.body_len, strlen(H_DOC));
  msvc_http_client_close(cl, NULL, NULL);
}

static void leave_while_waiting(bool abort) {
  harness_t h;
  msvc_http_server_t *gw;
  leave_t l;
  uint64_t t0;

  h_init(&h, abort ? "calls-leave-rst" : "calls-leave-fin", MSVC_LB_ROUND_ROBIN, 1000);
  memset(&l, 0, sizeof(l));
  l.h = &h;
  l.in = h_add_instance(&h, 2000); /* answers /hello after 2 s */
  gw = gw_start(&h);
  l.fd = raw_send(msvc_http_server_port(gw),
                  "GET /api/hello HTTP/1.1\r\nHost: gw\r\n\r\n");
  cr_assert(h_run_until(&h, upstream_hit, &l, 5000), "the call did not reach upstream");
  cr_assert_not(msvc__queue_empty(&h.caller->main_lc->calls));
  t0 = msvc_now_ms();
  raw_leave(l.fd, abort);
  cr_assert(h_run_until(&h, upstream_released, &l, 1500),
            "the upstream call outlived its client (calls %s, upstream connections %u)",
            msvc__queue_empty(&h.caller->main_lc->calls) ? "done" : "running",
            msvc_http_server_connections(l.in->srv));
  cr_log_info("%s: upstream call released %llu ms after the client left",
              abort ? "reset" : "close", (unsigned long long)(msvc_now_ms() - t0));
  cr_assert_eq(h_requests(&h, "200"), 0);
  still_serves(&h, msvc_http_server_port(gw));
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
}

Test(call_proxy, client_closes_while_the_upstream_call_waits) { leave_while_waiting(false); }

Test(call_proxy, client_resets_while_the_upstream_call_waits) { leave_while_waiting(true); }

Test(call_proxy, client_leaves_while_the_answer_streams) {
  harness_t h;
  msvc_http_server_t *gw;
  leave_t l;

  h_init(&h, "calls-leave-stream", MSVC_LB_ROUND_ROBIN, 1000);
  memset(&l, 0, sizeof(l));
  l.h = &h;
  l.in = h_add_instance(&h, 0);
  gw = gw_start(&h);
  l.fd = raw_send(msvc_http_server_port(gw), "GET /api/drip HTTP/1.1\r\nHost: gw\r\n\r\n");
  cr_assert(h_run_until(&h, head_arrived, &l, 5000), "nothing was streamed back");
  raw_leave(l.fd, true);
  cr_assert(h_run_until(&h, upstream_released, &l, 1500),
            "the upstream call outlived its client (calls %s, upstream connections %u)",
            msvc__queue_empty(&h.caller->main_lc->calls) ? "done" : "running",
            msvc_http_server_connections(l.in->srv));
  cr_assert(h_run_until(&h, h__no_delayed, &h, 2000));
  cr_assert_eq(l.in->drips_cut, 1, "the upstream streamed to the end");
  still_serves(&h, msvc_http_server_port(gw));
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
}
