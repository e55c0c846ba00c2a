/*
 * HTTP client: response framings and precise errors, against raw servers
 * that misbehave on purpose. Every test ends with uv_loop_close() == 0.
 */
#include "client_helpers.h"

TestSuite(http_client, .timeout = 20);

/* ---- framings ------------------------------------------------------------- */

Test(http_client, content_length) {
  result_t r = raw_once(RAW_REPLY,
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello",
                        "GET", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(r.body, "hello");
  cr_assert_str_eq(r.header, "yes");
}

Test(http_client, chunked) {
  result_t r = raw_once(RAW_REPLY,
                        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                        "GET", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 201);
  cr_assert_str_eq(r.body, "abcde");
}

Test(http_client, read_until_close) {
  result_t r = raw_once(RAW_REPLY, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof",
                        "GET", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_str_eq(r.body, "until eof");
}

Test(http_client, informational_skipped) {
  result_t r = raw_once(RAW_REPLY,
                        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        "GET", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(r.body, "ok");
}

Test(http_client, head_has_no_body) {
  result_t r = raw_once(RAW_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                        "HEAD", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 200);
  cr_assert_eq(r.body_len, 0);
}

Test(http_client, no_content) {
  result_t r = raw_once(RAW_REPLY, "HTTP/1.1 204 No Content\r\n\r\n", "DELETE", NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 204);
}

/* ---- precise errors ------------------------------------------------------- */

Test(http_client, garbage_is_bad_response) {
  result_t r = raw_once(RAW_REPLY, "SSH-2.0-OpenSSH_9.2\r\n\r\n", "GET", NULL);
  cr_assert_eq(r.err, MSVC_EHTTP_BAD_RESPONSE, "%s", msvc_strerror(r.err));
}

Test(http_client, smuggling_shapes_refused) {
  result_t r = raw_once(RAW_REPLY,
                        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
                        "GET", NULL);
  cr_assert_eq(r.err, MSVC_EHTTP_BAD_RESPONSE);
  r = raw_once(RAW_REPLY, "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", "GET", NULL);
  cr_assert_eq(r.err, MSVC_EHTTP_BAD_RESPONSE);
}

Test(http_client, close_mid_response_is_reset) {
  result_t r = raw_once(RAW_REPLY,
                        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort",
                        "GET", NULL);
  cr_assert_eq(r.err, MSVC_ECONNRESET, "%s", msvc_strerror(r.err));
}

Test(http_client, reset_is_reset) {
  result_t r = raw_once(RAW_RESET, NULL, "GET", NULL);
  cr_assert_eq(r.err, MSVC_ECONNRESET, "%s", msvc_strerror(r.err));
}

Test(http_client, silence_times_out_on_first_byte) {
  msvc_http_timeouts_t to = {1000, 50, 5000};
  uint64_t t0 = uv_hrtime();
  result_t r = raw_once(RAW_SILENT, NULL, "GET", &to);

  cr_assert_eq(r.err, MSVC_ETIMEDOUT);
  cr_assert_lt((uv_hrtime() - t0) / 1000000, 2000);
}

Test(http_client, silence_times_out_on_total) {
  msvc_http_timeouts_t to = {1000, 0, 60};
  result_t r = raw_once(RAW_SILENT, NULL, "GET", &to);
  cr_assert_eq(r.err, MSVC_ETIMEDOUT);
}

Test(http_client, trickled_bytes_arrive_whole) {
  result_t r = raw_once(RAW_TRICKLE,
                        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", "GET",
                        NULL);
  cr_assert_eq(r.err, 0);
  cr_assert_str_eq(r.body, "0123456789");
}

Test(http_client, huge_body_is_too_large) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_http_client_opts_t o;

  msvc_http_client_opts_init(&o);
  o.max_response_body = 16;
  fx_init(&fx, &o);
  raw_start(&fx.loop, &raw, RAW_REPLY,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n");
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ETOOLARGE);
  memset(&r, 0, sizeof(r));
  raw.reply = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ETOOLARGE);
  /* A request may set its own cap. */
  memset(&r, 0, sizeof(r));
  {
    msvc_http_request_t req;
    msvc_http_request_init(&req);
    req.host = "127.0.0.1";
    req.port = raw.port;
    req.max_response_body = 2000000000;
    req.on_done = on_done;
    req.data = &r;
    raw.reply = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789";
    cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
    fx_run_until(&fx, &r.done, 1);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.body_len, 20);
  }
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client, refused) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  int port;

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY, "");
  port = raw.port;
  raw_stop(&raw);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  cr_assert_eq(get(&fx, port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNREFUSED, "%s", msvc_strerror(r.err));
  cr_assert_eq(fx.at.n, 1);
  cr_assert_eq(fx.at.last_err, MSVC_ECONNREFUSED);
  fx_close(&fx);
}

Test(http_client, dns_failure) {
  fixture_t fx;
  result_t r = {0};
  msvc_http_request_t req;

  fx_init(&fx, NULL);
  msvc_http_request_init(&req);
  req.url = "http://no-such-host.invalid:8080/x";
  req.on_done = on_done;
  req.data = &r;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_EHTTP_DNS, "%s", msvc_strerror(r.err));
  fx_close(&fx);
}

Test(http_client, bad_requests_fail_synchronously) {
  fixture_t fx;
  result_t r = {0};
  msvc_http_request_t req;
  msvc_http_header_t bad = {"X-A", "one\r\nInjected: yes"};

  fx_init(&fx, NULL);
  msvc_http_request_init(&req);
  req.on_done = on_done;
  req.data = &r;
  req.url = "ftp://example.com/"; /* https is served when TLS is built in */
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_ENOTSUP);
  req.url = "http://user@example.com/";
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EURI);
  req.url = "http://example.com:99999/";
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EURI);
  req.url = "not a url";
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EURI);
  req.url = "http://127.0.0.1:1/a b";
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EINVAL);
  req.url = "http://127.0.0.1:1/";
  req.method = "G T";
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EINVAL);
  req.method = "GET";
  req.headers = &bad;
  req.nheaders = 1;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EINVAL);
  req.nheaders = 0;
  req.on_done = NULL;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EINVAL);
  cr_assert_eq(r.done, 0);
  fx_close(&fx);
}


Test(http_client, options_and_accessors) {
  uv_loop_t loop;
  msvc_http_client_t *c = (msvc_http_client_t *)1;
  msvc_http_client_opts_t o;
  const char *name, *value;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(NULL, NULL, &c), MSVC_EINVAL);
  cr_assert_null(c);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, NULL), MSVC_EINVAL);
  msvc_http_client_opts_init(&o);
  o.max_conns_per_endpoint = 0;
  cr_assert_eq(msvc_http_client_new(&loop, &o, &c), MSVC_EINVAL);
  msvc_http_client_opts_init(&o);
  o.max_response_head = 10;
  cr_assert_eq(msvc_http_client_new(&loop, &o, &c), MSVC_EINVAL);
  msvc_http_client_close(NULL, NULL, NULL);
  cr_assert_eq(msvc_http_client_request(NULL, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_http_client_connections(NULL, "h", 1), 0);
  msvc_http_call_cancel(NULL);
  cr_assert_eq(msvc_http_response_status(NULL), 0);
  cr_assert_null(msvc_http_response_header(NULL, "x"));
  cr_assert_eq(msvc_http_response_header_count(NULL), 0);
  cr_assert_eq(msvc_http_response_header_at(NULL, 0, &name, &value), MSVC_ERANGE);
  cr_assert_str_eq(msvc_http_response_body(NULL, NULL), "");
  /* A client that did nothing closes cleanly too. */
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  cr_assert_eq(msvc_http_client_connections(c, "127.0.0.1", 80), 0);
  msvc_http_client_close(c, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
}

Test(http_client, headers_by_position_and_url_target) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_http_request_t req;
  char url[96];

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY,
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Test: a\r\nX-Other: b\r\n\r\n");
  msvc_http_request_init(&req);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/p/q?x=1#frag", raw.port);
  req.url = url;
  req.on_done = on_done;
  req.data = &r;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0);
  cr_assert_str_eq(r.header, "a");
  cr_assert_str_eq(raw.last_line, "GET /p/q?x=1 HTTP/1.1", "the fragment stays home");
  raw_stop(&raw);
  fx_close(&fx);
}
