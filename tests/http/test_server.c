#include <cjson/cJSON.h>

#include "http/helpers.h"
#include "msvc-internal.h"

static void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void h_user(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char body[512];
  const char *q = msvc_http_req_query(req, "q");
  (void)data;
  snprintf(body, sizeof(body), "id=%s q=%s route=%s", msvc_http_req_param(req, "id"),
           q != NULL ? q : "(none)", msvc_http_req_route(req));
  msvc_http_res_send(res, 200, "text/plain", body, strlen(body));
}

static void h_static(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, NULL, "me", 2);
}

static void h_wild(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *rest = msvc_http_req_param(req, "*");
  (void)data;
  msvc_http_res_send(res, 200, NULL, rest, strlen(rest));
}

static void h_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *b = msvc_http_req_body(req, &len);
  (void)data;
  msvc_http_res_send(res, 200, "application/octet-stream", b, len);
}

static void h_headers(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char body[1024];
  size_t i, n = 0;
  (void)data;
  body[0] = '\0';
  for (i = 0; i < msvc_http_req_header_count(req); i++) {
    const char *name, *value;
    msvc_http_req_header_at(req, i, &name, &value);
    if (strcasecmp(name, "X-Rep") == 0)
      n += (size_t)snprintf(body + n, sizeof(body) - n, "[%s]", value);
  }
  msvc_http_res_header(res, "X-Seen", msvc_http_req_header(req, "x-REP") ? "yes" : "no");
  msvc_http_res_send(res, 200, NULL, body, n);
}

static void h_json(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  cJSON *in, *out;
  (void)data;
  if (msvc_http_req_json(req, &in) != MSVC_OK)
    return;
  out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "n", cJSON_GetObjectItem(in, "n")->valuedouble + 1);
  msvc_http_res_json(res, 201, out);
  cJSON_Delete(out);
  cJSON_Delete(in);
}

static void h_stream(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  cr_assert_eq(msvc_http_res_start(res, 200, "text/plain"), MSVC_OK);
  msvc_http_res_write(res, "abc", 3);
  msvc_http_res_write(res, "defg", 4);
  cr_assert_eq(msvc_http_res_end(res), MSVC_OK);
  cr_assert_eq(msvc_http_res_end(res), MSVC_ESTATE);
}

static void h_big(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t n = 16u << 20;
  char *body = msvc__malloc(n);
  (void)req;
  (void)data;
  memset(body, 'x', n);
  msvc_http_res_send_owned(res, 200, NULL, body, n);
}

static void setup_routes(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/big", h_big, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/:id", h_user, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "DELETE", "/users/:id", h_user, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/me", h_static, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/files/*", h_wild, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "POST", "/echo", h_echo, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/headers", h_headers, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "POST", "/json", h_json, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/stream", h_stream, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/:id", h_user, NULL, NULL),
               MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/a/*/b", h_user, NULL, NULL),
               MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "nope", h_user, NULL, NULL),
               MSVC_EHTTP_ROUTE);
}

static tsrv_t ts;

static void start_default(void) {
  tsrv_start(&ts, NULL, setup_routes);
}

static void start_small(void) {
  msvc_http_server_opts_t o;
  msvc_http_server_opts_init(&o);
  o.max_header_bytes = 1024;
  o.max_headers = 10;
  o.max_body_bytes = 100;
  o.header_timeout_ms = 200;
  o.keepalive_timeout_ms = 300;
  o.body_timeout_ms = 300;
  o.max_pipeline = 4;
  tsrv_start(&ts, &o, setup_routes);
}

static void stop(void) {
  tsrv_stop(&ts);
}

TestSuite(http_server, .init = start_default, .fini = stop, .timeout = 20);

Test(http_server, listens_on_ephemeral_port) {
  cr_assert_gt(msvc_http_server_port(ts.srv), 0);
}

Test(http_server, routes_params_and_query) {
  tresp_t r;
  char v[128];

  cr_assert_eq(tc_exchange(ts.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "hello, world!");
  cr_assert_not_null(tresp_header(&r, "Date", v, sizeof(v)));
  cr_assert_str_eq(tresp_header(&r, "Content-Type", v, sizeof(v)), "text/plain");
  tresp_free(&r);

  cr_assert_eq(tc_exchange(ts.port, "GET /users/a%20b?q=x+y%21&z HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "id=a b q=x y! route=/users/:id");
  tresp_free(&r);

  cr_assert_eq(tc_exchange(ts.port, "GET /users/me HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "me", "a literal segment beats a parameter");
  tresp_free(&r);

  cr_assert_eq(tc_exchange(ts.port, "GET /files/a/b/c.txt HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "a/b/c.txt");
  tresp_free(&r);

  cr_assert_eq(tc_exchange(ts.port, "GET /users/ HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
  tresp_free(&r);
}

Test(http_server, not_found_and_method_not_allowed) {
  tresp_t r;
  char v[128];

  cr_assert_eq(tc_exchange(ts.port, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
  cr_assert(strstr(r.body, "\"code\":\"NOT_FOUND\"") != NULL, "%s", r.body);
  cr_assert_str_eq(tresp_header(&r, "Content-Type", v, sizeof(v)), "application/json");
  tresp_free(&r);

  cr_assert_eq(tc_exchange(ts.port, "PUT /users/7 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 405);
  cr_assert_str_eq(tresp_header(&r, "Allow", v, sizeof(v)), "GET, HEAD, DELETE");
  cr_assert_str_eq(r.body, "{\"error\":{\"code\":\"METHOD_NOT_ALLOWED\",\"message\":"
                           "\"The method is not allowed on this resource.\"}}");
  tresp_free(&r);
}

Test(http_server, head_has_length_but_no_body) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;
  char v[64];

  tc_open(c, ts.port);
  tc_sends(c->fd, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(c, &r, true));
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(tresp_header(&r, "Content-Length", v, sizeof(v)), "13");
  tresp_free(&r);
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(r.body, "hello, world!", "no stray body bytes after HEAD");
  tresp_free(&r);
  tc_close(c);
  free(c);
}

Test(http_server, keep_alive_serves_many_requests) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;
  int i;

  tc_open(c, ts.port);
  for (i = 0; i < 20; i++) {
    tc_sends(c->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
  }
  cr_assert_eq(msvc_http_server_connections(ts.srv), 1);
  tc_close(c);
  free(c);
}

Test(http_server, pipelined_answers_in_order) {
  tconn_t *c = malloc(sizeof(*c));
  char req[4096];
  size_t n = 0;
  tresp_t r;
  int i;

  for (i = 0; i < 40; i++)
    n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /users/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
  tc_open(c, ts.port);
  tc_send(c->fd, req, n);
  for (i = 0; i < 40; i++) {
    char want[64];
    cr_assert(tc_read(c, &r, false));
    snprintf(want, sizeof(want), "id=%d q=(none) route=/users/:id", i);
    cr_assert_str_eq(r.body, want);
    tresp_free(&r);
  }
  tc_close(c);
  free(c);
}

Test(http_server, connection_close_and_http10) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;
  char v[64];

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(tresp_header(&r, "Connection", v, sizeof(v)), "close");
  tresp_free(&r);
  cr_assert(tc_closed(c));
  tc_close(c);

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /hello HTTP/1.0\r\n\r\n");
  cr_assert(tc_read(c, &r, false));
  cr_assert_eq(r.status, 200);
  tresp_free(&r);
  cr_assert(tc_closed(c), "HTTP/1.0 without keep-alive closes");
  tc_close(c);

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(tresp_header(&r, "Connection", v, sizeof(v)), "keep-alive");
  tresp_free(&r);
  tc_close(c);
  free(c);
}

Test(http_server, request_bodies_length_and_chunked) {
  tresp_t r;

  cr_assert_eq(tc_exchange(ts.port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", &r), 200);
  cr_assert_str_eq(r.body, "hello");
  tresp_free(&r);
  cr_assert_eq(tc_exchange(ts.port,
                           "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                           &r),
               200);
  cr_assert_str_eq(r.body, "abcdefg");
  tresp_free(&r);
}

Test(http_server, expect_100_continue) {
  tconn_t *c = malloc(sizeof(*c));
  char buf[64];
  ssize_t n;
  tresp_t r;

  tc_open(c, ts.port);
  tc_sends(c->fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  n = recv(c->fd, buf, sizeof(buf) - 1, 0);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
  cr_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
  tc_sends(c->fd, "ok");
  cr_assert(tc_read(c, &r, false));
  cr_assert_str_eq(r.body, "ok");
  tresp_free(&r);
  tc_close(c);
  free(c);
}

Test(http_server, repeated_headers_and_case_insensitive_lookup) {
  tresp_t r;
  char v[16];

  cr_assert_eq(tc_exchange(ts.port, "GET /headers HTTP/1.1\r\nHost: t\r\nx-rep: 1\r\nX-REP: 2\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "[1][2]");
  cr_assert_str_eq(tresp_header(&r, "X-Seen", v, sizeof(v)), "yes");
  tresp_free(&r);
}

Test(http_server, json_helpers) {
  tresp_t r;

  cr_assert_eq(tc_exchange(ts.port,
                           "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           "Content-Length: 7\r\n\r\n{\"n\":1}",
                           &r),
               201);
  cr_assert_str_eq(r.body, "{\"n\":2}");
  tresp_free(&r);
  cr_assert_eq(tc_exchange(ts.port,
                           "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           "Content-Length: 4\r\n\r\n{\"n\"",
                           &r),
               400);
  cr_assert(strstr(r.body, "INVALID_ARGUMENT") != NULL);
  tresp_free(&r);
  cr_assert_eq(tc_exchange(ts.port,
                           "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 7\r\n\r\n{\"n\":1}",
                           &r),
               415);
  cr_assert(strstr(r.body, "UNSUPPORTED_MEDIA_TYPE") != NULL);
  tresp_free(&r);
}

Test(http_server, chunked_streaming_response) {
  tresp_t r;
  char v[32];

  cr_assert_eq(tc_exchange(ts.port, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(tresp_header(&r, "Transfer-Encoding", v, sizeof(v)), "chunked");
  cr_assert_str_eq(r.body, "abcdefg");
  tresp_free(&r);
}

Test(http_server, malformed_request_lines_get_400_and_close) {
  static const char *bad[] = {
      "GET\r\n\r\n",
      "GET /hello\r\n\r\n",
      "GET /hello HTTP/9.9\r\n\r\n",
      "G@T /hello HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /he llo HTTP/1.1\r\nHost: t\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
      "GET /hello HTTP/1.1\nHost: x\n\n",
      " GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
  };
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tconn_t *c = malloc(sizeof(*c));
    tresp_t r;
    tc_open(c, ts.port);
    tc_sends(c->fd, bad[i]);
    cr_assert(tc_read(c, &r, false), "no answer to vector %zu", i);
    cr_assert_eq(r.status, 400, "vector %zu got %d", i, r.status);
    cr_assert(strstr(r.body, "\"code\":\"INVALID_ARGUMENT\"") != NULL);
    tresp_free(&r);
    cr_assert(tc_closed(c));
    tc_close(c);
    free(c);
  }
}

TestSuite(http_limits, .init = start_small, .fini = stop, .timeout = 20);

static int status_of(const char *raw) {
  tresp_t r;
  int st = tc_exchange(ts.port, raw, &r);
  tresp_free(&r);
  return st;
}

Test(http_limits, body_too_large_is_413) {
  char req[512];

  cr_assert_eq(status_of("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n"), 413);
  snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "65\r\n%0101d\r\n0\r\n\r\n", 0);
  cr_assert_eq(status_of(req), 413);
  cr_assert_eq(status_of("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
                         "0123456789012345678901234567890123456789012345678901234567890123456789"
                         "012345678901234567890123456789"),
               200);
}

Test(http_limits, headers_too_large_or_too_many_is_431) {
  char req[4096];
  size_t n;
  int i;

  n = (size_t)snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
  memset(req + n, 'a', 1100);
  n += 1100;
  snprintf(req + n, sizeof(req) - n, "\r\n\r\n");
  cr_assert_eq(status_of(req), 431);

  n = (size_t)snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: t\r\n");
  for (i = 0; i < 11; i++)
    n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: v\r\n", i);
  snprintf(req + n, sizeof(req) - n, "\r\n");
  cr_assert_eq(status_of(req), 431);

  n = (size_t)snprintf(req, sizeof(req), "GET /");
  memset(req + n, 'u', 1100);
  n += 1100;
  snprintf(req + n, sizeof(req) - n, " HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert_eq(status_of(req), 431, "a long request line counts too");
}

Test(http_limits, slowloris_closed_by_header_timeout) {
  tconn_t *c = malloc(sizeof(*c));
  uint64_t t0 = uv_hrtime();
  int i;

  tc_open(c, ts.port);
  /* Trickle a header byte every 50 ms: the 200 ms deadline from accept
   * holds however slowly the bytes come. */
  for (i = 0; i < 20; i++) {
    tc_sends(c->fd, i == 0 ? "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: " : "a");
    sleep_ms(50);
    if (uv_hrtime() - t0 > 400000000u)
      break;
  }
  cr_assert(tc_closed(c));
  cr_assert_lt((uv_hrtime() - t0) / 1000000u, 1500u);
  tc_close(c);
  free(c);
}

Test(http_limits, idle_connection_closed_by_keepalive_timeout) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;
  uint64_t t0;

  tc_open(c, ts.port);
  tc_sends(c->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(c, &r, false));
  tresp_free(&r);
  t0 = uv_hrtime();
  cr_assert(tc_closed(c));
  cr_assert_geq((uv_hrtime() - t0) / 1000000u, 250u);
  tc_close(c);
  free(c);
}

Test(http_limits, deep_pipeline_is_throttled_not_refused) {
  tconn_t *c = malloc(sizeof(*c));
  char req[8192];
  size_t n = 0;
  tresp_t r;
  int i;

  for (i = 0; i < 50; i++)
    n += (size_t)snprintf(req + n, sizeof(req) - n, "GET /users/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
  tc_open(c, ts.port);
  tc_send(c->fd, req, n);
  for (i = 0; i < 50; i++) {
    char want[64];
    cr_assert(tc_read(c, &r, false), "response %d missing", i);
    snprintf(want, sizeof(want), "id=%d q=(none) route=/users/:id", i);
    cr_assert_str_eq(r.body, want);
    tresp_free(&r);
  }
  tc_close(c);
  free(c);
}

static void start_one_conn(void) {
  msvc_http_server_opts_t o;
  msvc_http_server_opts_init(&o);
  o.max_connections = 1;
  tsrv_start(&ts, &o, setup_routes);
}

TestSuite(http_maxconn, .init = start_one_conn, .fini = stop, .timeout = 20);

Test(http_maxconn, beyond_the_limit_gets_503) {
  tconn_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
  tresp_t r;
  char v[16];

  /* The first connection is in the middle of a request, not idle, so it
   * cannot make room for the second. */
  tc_open(a, ts.port);
  tc_sends(a->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\n");
  cr_assert(tc_read(a, &r, false));
  tresp_free(&r);
  tc_open(b, ts.port);
  tc_sends(b->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(b, &r, false));
  cr_assert_eq(r.status, 503);
  cr_assert_str_eq(tresp_header(&r, "Retry-After", v, sizeof(v)), "1");
  tresp_free(&r);
  cr_assert(tc_closed(b));
  tc_close(b);
  /* The first connection is unaffected. */
  tc_sends(a->fd, "Host: t\r\n\r\n");
  cr_assert(tc_read(a, &r, false));
  cr_assert_eq(r.status, 200);
  tresp_free(&r);
  tc_close(a);
  free(a);
  free(b);
}

Test(http_limits, slow_body_closed_by_body_timeout) {
  tconn_t *c = malloc(sizeof(*c));
  uint64_t t0;

  tc_open(c, ts.port);
  tc_sends(c->fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab");
  t0 = uv_hrtime();
  cr_assert(tc_closed(c));
  cr_assert_geq((uv_hrtime() - t0) / 1000000u, 250u);
  tc_close(c);
  free(c);
}

Test(http_limits, client_that_stops_reading_is_let_go) {
  tconn_t *c = malloc(sizeof(*c));
  int rcv = 4096, i;

  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  tc_close(c);
  tc_open(c, ts.port);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  tc_sends(c->fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
  for (i = 0; i < 3000 && msvc_http_server_connections(ts.srv) == 0; i++)
    sleep_ms(1);
  cr_assert_eq(msvc_http_server_connections(ts.srv), 1);
  sleep_ms(100);
  cr_assert_eq(msvc_http_server_connections(ts.srv), 1, "still writing");
  /* Never read: the 16 MiB answer cannot drain, the write deadline ends it. */
  for (i = 0; i < 3000 && msvc_http_server_connections(ts.srv) > 0; i++)
    sleep_ms(1);
  cr_assert_eq(msvc_http_server_connections(ts.srv), 0);
  tc_close(c);
  free(c);
}

/* ---- API misuse: precise errors, nothing leaked ------------------------- */

static void h_misuse(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char *owned = msvc__strdup("owned body");
  (void)data;
  cr_assert_eq(msvc_http_res_header(res, "Bad Name", "v"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-A", "v\r\nX-Injected: 1"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "Content-Length", "5"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-B", "v\nX-Injected: 1"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-C", "v\r"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-(D)", "v"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-\xc3\xa9", "v"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X:E", "v"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "", "v"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "TRANSFER-encoding", "chunked"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_header(res, "X-Ok", "fine"), MSVC_OK);
  cr_assert_eq(msvc_http_res_header(res, "!#$%&'*+-.^_`|~09azAZ", "tokens, \t and \xc3\xa9"),
               MSVC_OK);
  cr_assert_eq(msvc_http_res_send(res, 99, NULL, NULL, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_error(res, 200, "X", "y"), MSVC_EINVAL);
  cr_assert_eq(msvc_http_res_write(res, "x", 1), MSVC_ESTATE);
  cr_assert_eq(msvc_http_req_resume(req), MSVC_ESTATE);
  cr_assert_not(msvc_http_res_started(res));
  cr_assert_eq(msvc_http_req_res(req), res);
  cr_assert_eq(msvc_http_res_req(res), req);
  cr_assert_eq(msvc_http_req_header_at(req, 99, NULL, NULL), MSVC_ERANGE);
  cr_assert_null(msvc_http_req_query(req, "absent"));
  cr_assert_null(msvc_http_req_param(req, "absent"));
  cr_assert_eq(msvc_http_res_send_owned(res, 200, "text/plain", owned, strlen(owned)), MSVC_OK);
  cr_assert(msvc_http_res_started(res));
  cr_assert_eq(msvc_http_res_status(res), 200);
  cr_assert_eq(msvc_http_res_send(res, 200, NULL, NULL, 0), MSVC_EHTTP_RESPONDED);
  cr_assert_eq(msvc_http_res_header(res, "X-Late", "v"), MSVC_EHTTP_RESPONDED);
}

static void setup_misuse(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/misuse", h_misuse, NULL, NULL), MSVC_OK);
}

Test(http_api, misuse_gets_precise_errors, .timeout = 20) {
  tsrv_t t;
  tresp_t r;
  char v[32];

  tsrv_start(&t, NULL, setup_misuse);
  cr_assert_eq(msvc_http_server_listen(t.srv, "127.0.0.1", 0), MSVC_ESTATE);
  cr_assert_eq(tc_exchange(t.port, "GET /misuse HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
  cr_assert_str_eq(r.body, "owned body");
  cr_assert_str_eq(tresp_header(&r, "X-Ok", v, sizeof(v)), "fine");
  cr_assert_null(tresp_header(&r, "X-Injected", v, sizeof(v)));
  tresp_free(&r);
  tsrv_stop(&t);
}

Test(http_api, bad_arguments_and_busy_port, .timeout = 20) {
  uv_loop_t loop;
  msvc_http_server_t *a, *b;
  msvc_http_server_opts_t o;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_http_server_opts_init(&o);
  o.max_headers = 0;
  cr_assert_eq(msvc_http_server_new(&loop, &o, &a), MSVC_EINVAL);
  cr_assert_null(a);
  cr_assert_eq(msvc_http_server_new(NULL, NULL, &a), MSVC_EINVAL);
  cr_assert_eq(msvc_http_server_new(&loop, NULL, &a), MSVC_OK);
  cr_assert_eq(msvc_http_server_new(&loop, NULL, &b), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(a, "not an address", 0), MSVC_EINVAL);
  cr_assert_eq(msvc_http_server_listen(a, "127.0.0.1", 70000), MSVC_EINVAL);
  cr_assert_eq(msvc_http_server_port(a), 0);
  cr_assert_eq(msvc_http_server_listen(a, "127.0.0.1", 0), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(b, "127.0.0.1", msvc_http_server_port(a)),
               MSVC_EADDRINUSE);
  cr_assert_eq(msvc_http_server_use(a, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_http_server_loop(a), &loop);
  msvc_http_server_close(a, NULL, NULL);
  msvc_http_server_close(b, NULL, NULL);
  msvc_http_server_close(NULL, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
}
