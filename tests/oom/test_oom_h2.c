/* Out-of-memory sweep over HTTP/2: the library's client calls the library's
 * server on one loop, over one multiplexed h2c connection (a POST whose
 * answer streams with trailers, then a GET). At every failing allocation
 * nothing may crash, wedge or leak, and after the failure a call succeeds:
 * one failed allocation may cost a call or a connection, never the server
 * or the client. (nghttp2 allocates with the C library; its failures are
 * not injected.) */
#include <string.h>

#include <msvc/http.h>
#include <msvc/http_client.h>

#include "oom/oom.h"

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello h2", 8);
}

/* The body back as a gRPC-like stream: head, two writes, a trailer. */
static void on_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);

  (void)data;
  /* Whatever start says (but EINVAL or RESPONDED), end() finishes it. */
  if (msvc_http_res_start(res, 200, "application/grpc") != MSVC_OK) {
    msvc_http_res_end(res);
    return;
  }
  msvc_http_res_write(res, body, len / 2);
  msvc_http_res_write(res, body + len / 2, len - len / 2);
  msvc_http_res_trailer(res, "grpc-status", "0");
  msvc_http_res_end(res);
}

typedef struct call_s {
  const char *want;
  bool done;
  int err;
  int status;
} call_t;

static void on_call_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                         void *data) {
  call_t *c = data;
  size_t len = 0;
  const char *body;

  (void)call;
  c->done = true;
  c->err = err;
  if (err != 0)
    return;
  c->status = msvc_http_response_status(res);
  if (c->status != 200)
    return;
  body = msvc_http_response_body(res, &len);
  cr_assert_eq(len, strlen(c->want), "N=%lu", oom_n);
  cr_assert_eq(memcmp(body, c->want, len), 0, "N=%lu", oom_n);
  /* A trailer the handler could not add is missing, but nothing else. */
  if (strcmp(c->want, "hello h2") != 0 && !msvc__fault_hit())
    cr_assert_str_eq(msvc_http_response_trailer(res, "grpc-status"), "0", "N=%lu", oom_n);
}

static bool call_done(void *arg) {
  return ((call_t *)arg)->done;
}

static int h2_call(oom_loop_t *l, msvc_http_client_t *cli, int port, bool post, call_t *c) {
  static const char body[] = "0123456789abcdefghij";
  msvc_http_request_t req;
  int rc;

  memset(c, 0, sizeof(*c));
  msvc_http_request_init(&req);
  req.host = "127.0.0.1";
  req.port = port;
  req.http2 = true;
  if (post) {
    req.method = "POST";
    req.target = "/echo";
    req.body = body;
    req.body_len = sizeof(body) - 1;
    c->want = body;
  } else {
    req.target = "/hello";
    c->want = "hello h2";
  }
  req.timeouts.total_ms = 3000;
  req.on_done = on_call_done;
  req.data = c;
  OOM_CALL(rc, msvc_http_client_request(cli, &req, NULL), out);
  cr_assert(oom_run_until(l, call_done, c, 5000), "N=%lu: the call wedged", oom_n);
out:
  return rc;
}

static void on_closed(void *data) {
  (*(int *)data)++;
}

static int h2_scenario(void *arg) {
  msvc_http_server_t *srv = NULL;
  msvc_http_client_t *cli = NULL;
  call_t first, second;
  oom_loop_t l;
  int rc, closed = 0, port;
  bool failed_before;

  (void)arg;
  rc = oom_loop_init(&l);
  if (rc != 0)
    return rc;
  OOM_CALL(rc, msvc_http_server_new(&l.loop, NULL, &srv), out);
  OOM_CALL(rc, msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL), out);
  OOM_CALL(rc, msvc_http_server_route(srv, "POST", "/echo", on_echo, NULL, NULL), out);
  OOM_CALL(rc, msvc_http_server_listen(srv, "127.0.0.1", 0), out);
  port = msvc_http_server_port(srv);
  OOM_CALL(rc, msvc_http_client_new(&l.loop, NULL, &cli), out);
  OOM_CALL(rc, h2_call(&l, cli, port, true, &first), out);
  failed_before = msvc__fault_hit();
  if (!failed_before)
    cr_assert(first.err == 0 && first.status == 200, "N=%lu: err %d status %d", oom_n,
              first.err, first.status);
  rc = h2_call(&l, cli, port, false, &second);
  if (failed_before)
    cr_assert(rc == 0 && second.err == 0 && second.status == 200,
              "N=%lu: after one failed allocation: rc %d err %d status %d", oom_n, rc,
              second.err, second.status);
out:
  if (cli != NULL)
    msvc_http_client_close(cli, on_closed, &closed);
  if (srv != NULL)
    msvc_http_server_close(srv, on_closed, &closed);
  oom_loop_finish(&l);
  cr_assert_eq(closed, (srv != NULL) + (cli != NULL));
  return rc;
}

Test(oom, h2_calls, .init = oom_init, .timeout = 240) {
  oom_stats_t st;

  oom_sweep("h2 calls", h2_scenario, NULL, 100000, 1, &st);
}
