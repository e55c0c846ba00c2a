/*
 * HTTP client: against libmsvc's own server, the keep-alive pool, the stale
 * connection rule, cancellation, streaming both ways and retries.
 */
#include "client_helpers.h"

TestSuite(http_client_pool, .timeout = 20);

/* ---- against libmsvc's own server ---------------------------------------- */

static void echo_handler(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);
  (void)data;
  msvc_http_res_header(res, "X-Test", msvc_http_req_method(req));
  msvc_http_res_send(res, 200, "text/plain", body, len);
}

Test(http_client_pool, post_to_own_server_and_pool_reuse) {
  fixture_t fx;
  msvc_http_server_t *srv;
  result_t r;
  msvc_http_request_t req;
  char url[64];
  int i;

  fx_init(&fx, NULL);
  cr_assert_eq(msvc_http_server_new(&fx.loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "*", "/echo", echo_handler, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(srv, "127.0.0.1", 0), MSVC_OK);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", msvc_http_server_port(srv));
  for (i = 0; i < 5; i++) {
    memset(&r, 0, sizeof(r));
    msvc_http_request_init(&req);
    req.method = "POST";
    req.url = url;
    req.body = "ping";
    req.body_len = 4;
    req.on_done = on_done;
    req.data = &r;
    cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
    fx_run_until(&fx, &r.done, 1);
    cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ping");
    cr_assert_str_eq(r.header, "POST");
    cr_assert_eq(msvc_http_server_connections(srv), 1, "one pooled connection");
  }
  cr_assert(fx.at.last_reused);
  msvc_http_server_close(srv, NULL, NULL);
  fx_close(&fx);
}

/* ---- the pool ------------------------------------------------------------- */

Test(http_client_pool, sequential_requests_reuse_one_connection) {
  fixture_t fx;
  raw_t raw;
  result_t r;
  int i;

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  for (i = 0; i < 10; i++) {
    memset(&r, 0, sizeof(r));
    cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
    fx_run_until(&fx, &r.done, 1);
    cr_assert_eq(r.err, 0);
  }
  cr_assert_eq(raw.accepted, 1);
  cr_assert_eq(raw.requests, 10);
  cr_assert_eq(msvc_http_client_connections(fx.client, "127.0.0.1", raw.port), 1);
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, connection_limit_and_queue) {
  fixture_t fx;
  raw_t raw;
  result_t r[6];
  msvc_http_client_opts_t o;
  int i, done = 0;

  msvc_http_client_opts_init(&o);
  o.max_conns_per_endpoint = 2;
  o.max_queued_per_endpoint = 3;
  fx_init(&fx, &o);
  raw_start(&fx.loop, &raw, RAW_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  memset(r, 0, sizeof(r));
  for (i = 0; i < 5; i++)
    cr_assert_eq(get(&fx, raw.port, "GET", "/", &r[i], NULL, NULL), MSVC_OK);
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r[5], NULL, NULL), MSVC_EHTTP_POOL_FULL);
  while (done < 5) {
    uv_run(&fx.loop, UV_RUN_ONCE);
    for (done = 0, i = 0; i < 5; i++)
      done += r[i].done;
  }
  for (i = 0; i < 5; i++)
    cr_assert_eq(r[i].err, 0);
  cr_assert_eq(r[5].done, 0);
  cr_assert_eq(raw.accepted, 2, "accepted %d", raw.accepted);
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, idle_connections_expire) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_http_client_opts_t o;

  msvc_http_client_opts_init(&o);
  o.idle_timeout_ms = 20;
  fx_init(&fx, &o);
  raw_start(&fx.loop, &raw, RAW_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(msvc_http_client_connections(fx.client, "127.0.0.1", raw.port), 1);
  while (raw.open > 0)
    uv_run(&fx.loop, UV_RUN_ONCE);
  cr_assert_eq(msvc_http_client_connections(fx.client, "127.0.0.1", raw.port), 0);
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, stale_keepalive_close_goes_out_fresh) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_STALE, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  memset(&r, 0, sizeof(r));
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "ok");
  cr_assert_eq(raw.accepted, 2);
  cr_assert_eq(fx.at.n, 2, "the stale connection is not an attempt");
  cr_assert_eq(fx.at.failures, 0);
  /* A POST is not sent twice: the server may have seen it. */
  memset(&r, 0, sizeof(r));
  cr_assert_eq(get(&fx, raw.port, "POST", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNRESET);
  cr_assert_eq(raw.requests, 4);
  raw_stop(&raw);
  fx_close(&fx);
}

/* ---- cancellation and streaming ------------------------------------------ */

Test(http_client_pool, cancel_pending_call) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_SILENT, NULL);
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  while (raw.requests == 0)
    uv_run(&fx.loop, UV_RUN_ONCE);
  msvc_http_call_cancel(r.call);
  cr_assert_eq(r.done, 0, "no callback inside cancel");
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECANCELED);
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, close_cancels_calls) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_SILENT, NULL);
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  raw_stop(&raw);
  fx_close(&fx);
  cr_assert_eq(r.done, 1);
  cr_assert_eq(r.err, MSVC_ECANCELED);
}

Test(http_client_pool, endless_chunked_stream_then_cancel) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_http_request_t req;

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_STREAM, NULL);
  msvc_http_request_init(&req);
  req.host = "127.0.0.1";
  req.port = raw.port;
  req.target = "/v3/watch";
  req.method = "POST";
  req.timeouts.total_ms = 0; /* a watch lasts as long as it is wanted */
  req.on_chunk = on_chunk;
  req.on_done = on_done;
  req.data = &r;
  r.cancel_after = 20;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECANCELED);
  cr_assert_eq(r.chunks, 20);
  raw_stop(&raw);
  fx_close(&fx);
}

/* ---- retries -------------------------------------------------------------- */

Test(http_client_pool, retries_503_then_succeeds) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_retry_opts_t ro;
  msvc_retry_t *retry;

  msvc_retry_opts_init(&ro);
  ro.base_ms = 1;
  ro.cap_ms = 2;
  cr_assert_eq(msvc_retry_new(&ro, &retry), MSVC_OK);
  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_SEQUENCE, NULL);
  raw.replies[0] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  raw.replies[1] = "HTTP/1.1 502 Bad Gateway\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n";
  raw.replies[2] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes";
  raw.replies[3] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.status, 200);
  cr_assert_str_eq(r.body, "yes");
  cr_assert_eq(fx.at.n, 3);
  /* A POST gets the 503 as it is. */
  memset(&r, 0, sizeof(r));
  cr_assert_eq(get(&fx, raw.port, "POST", "/", &r, NULL, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.status, 503);
  cr_assert_eq(fx.at.n, 4);
  raw_stop(&raw);
  fx_close(&fx);
  msvc_retry_free(retry);
}

Test(http_client_pool, attempts_exhausted_reports_last_error) {
  fixture_t fx;
  result_t r = {0};
  raw_t raw;
  int port;
  msvc_retry_opts_t ro;
  msvc_retry_t *retry;

  msvc_retry_opts_init(&ro);
  ro.base_ms = 1;
  ro.cap_ms = 1;
  ro.max_attempts = 4;
  cr_assert_eq(msvc_retry_new(&ro, &retry), MSVC_OK);
  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY, "");
  port = raw.port;
  raw_stop(&raw);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  cr_assert_eq(get(&fx, port, "GET", "/", &r, NULL, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNREFUSED);
  cr_assert_eq(fx.at.n, 4);
  cr_assert_eq(fx.at.failures, 4);
  fx_close(&fx);
  msvc_retry_free(retry);
}

/* ---- what may be sent again ------------------------------------------------ */

static msvc_retry_t *quick_retry(uint32_t attempts) {
  msvc_retry_opts_t ro;
  msvc_retry_t *retry;

  msvc_retry_opts_init(&ro);
  ro.base_ms = 1;
  ro.cap_ms = 1;
  ro.max_attempts = attempts;
  cr_assert_eq(msvc_retry_new(&ro, &retry), MSVC_OK);
  return retry;
}

/* A POST with a body, and an Idempotency-Key when key is not NULL. */
static int post(fixture_t *fx, int port, const char *key, result_t *r, msvc_retry_t *retry) {
  msvc_http_request_t req;
  const msvc_http_header_t hd[] = {{"Idempotency-Key", key}};
  int rc;

  memset(r, 0, sizeof(*r));
  msvc_http_request_init(&req);
  req.method = "POST";
  req.host = "127.0.0.1";
  req.port = port;
  req.target = "/orders";
  req.body = "{}";
  req.body_len = 2;
  req.headers = hd;
  req.nheaders = key != NULL ? 1 : 0;
  req.on_done = on_done;
  req.data = r;
  req.retry = retry;
  r->in_request = true;
  rc = msvc_http_client_request(fx->client, &req, &r->call);
  r->in_request = false;
  return rc;
}

Test(http_client_pool, refused_post_is_retried) {
  fixture_t fx;
  result_t r;
  raw_t raw;
  int port;
  msvc_retry_t *retry = quick_retry(3);

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY, "");
  port = raw.port;
  raw_stop(&raw);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
  cr_assert_eq(post(&fx, port, NULL, &r, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNREFUSED, "%s", msvc_err_name(r.err));
  cr_assert_not(r.sent, "nothing went out");
  cr_assert_eq(fx.at.n, 3, "the refused POST was tried %d times", fx.at.n);
  fx_close(&fx);
  msvc_retry_free(retry);
}

Test(http_client_pool, post_cut_after_sending_is_retried_only_with_a_key) {
  fixture_t fx;
  result_t r;
  raw_t raw;
  msvc_retry_t *retry = quick_retry(3);

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_RESET, NULL);
  cr_assert_eq(post(&fx, raw.port, NULL, &r, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNRESET, "%s", msvc_err_name(r.err));
  cr_assert(r.sent);
  cr_assert_eq(fx.at.n, 1, "a POST that went out is not sent again");
  cr_assert_eq(raw.requests, 1);
  /* the same with a key: sent three times */
  cr_assert_eq(post(&fx, raw.port, "k-1", &r, retry), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, MSVC_ECONNRESET, "%s", msvc_err_name(r.err));
  cr_assert_eq(fx.at.n, 4);
  cr_assert_eq(raw.requests, 4);
  raw_stop(&raw);
  fx_close(&fx);
  msvc_retry_free(retry);
}

Test(http_client_pool, pooled_connection_dead_before_the_write_goes_out_fresh) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(msvc_http_client_connections(fx.client, "127.0.0.1", raw.port), 1);
  /* The server drops the pooled connection and the POST takes it before
   * the loop could notice: the write fails at once, nothing went out. */
  raw_reset_last(&raw);
  cr_assert_eq(post(&fx, raw.port, NULL, &r, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0, "%s", msvc_err_name(r.err));
  cr_assert_str_eq(r.body, "ok");
  cr_assert(r.sent);
  cr_assert_eq(raw.accepted, 2);
  cr_assert_eq(raw.requests, 2, "the POST reached the server once");
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, head_then_get_on_one_connection) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};

  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, RAW_SEQUENCE, NULL);
  raw.replies[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  raw.replies[1] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  cr_assert_eq(get(&fx, raw.port, "HEAD", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.body_len, 0);
  memset(&r, 0, sizeof(r));
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r, NULL, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0);
  cr_assert_str_eq(r.body, "hello");
  cr_assert_eq(raw.accepted, 1);
  raw_stop(&raw);
  fx_close(&fx);
}

static void count_chunk(msvc_http_call_t *call, const msvc_http_response_t *res,
                        const char *buf, size_t len, void *data) {
  result_t *r = data;

  (void)call;
  cr_assert_eq(msvc_http_response_status(res), 200);
  cr_assert_lt(r->body_len + len, sizeof(r->header));
  memcpy(r->header + r->body_len, buf, len);
  r->body_len += len;
  r->chunks++;
}

static void stream_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                        void *data) {
  result_t *r = data;

  (void)call;
  r->done++;
  r->err = err;
  cr_assert_not_null(res);
  cr_assert_eq(msvc_http_response_body(res, NULL)[0], '\0', "streamed, not buffered");
}

Test(http_client_pool, finite_stream_is_not_capped) {
  fixture_t fx;
  raw_t raw;
  result_t r = {0};
  msvc_http_client_opts_t o;
  msvc_http_request_t req;

  msvc_http_client_opts_init(&o);
  o.max_response_body = 4; /* applies to buffered bodies only */
  fx_init(&fx, &o);
  raw_start(&fx.loop, &raw, RAW_TRICKLE,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "6\r\n{\"a\":1\r\n2\r\n}\n\r\n0\r\n\r\n");
  msvc_http_request_init(&req);
  req.host = "127.0.0.1";
  req.port = raw.port;
  req.on_chunk = count_chunk;
  req.on_done = stream_done;
  req.data = &r;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  cr_assert_eq(r.err, 0);
  cr_assert_eq(r.body_len, 8);
  cr_assert_eq(memcmp(r.header, "{\"a\":1}\n", 8), 0);
  cr_assert_gt(r.chunks, 1, "a trickled body arrives in pieces");
  raw_stop(&raw);
  fx_close(&fx);
}

Test(http_client_pool, total_timeout_while_queued) {
  fixture_t fx;
  raw_t raw;
  result_t r1 = {0}, r2 = {0};
  msvc_http_client_opts_t o;
  msvc_http_timeouts_t slow = {1000, 0, 0}, quick = {1000, 0, 40};

  msvc_http_client_opts_init(&o);
  o.max_conns_per_endpoint = 1;
  fx_init(&fx, &o);
  raw_start(&fx.loop, &raw, RAW_SILENT, NULL);
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r1, &slow, NULL), MSVC_OK);
  cr_assert_eq(get(&fx, raw.port, "GET", "/", &r2, &quick, NULL), MSVC_OK);
  fx_run_until(&fx, &r2.done, 1);
  cr_assert_eq(r2.err, MSVC_ETIMEDOUT);
  cr_assert_eq(r1.done, 0);
  msvc_http_call_cancel(r1.call);
  fx_run_until(&fx, &r1.done, 1);
  cr_assert_eq(r1.err, MSVC_ECANCELED);
  raw_stop(&raw);
  fx_close(&fx);
}

typedef struct upload_s {
  result_t r;
  int pieces;
} upload_t;

static int upload_source(msvc_http_call_t *call, const char **buf, size_t *len,
                         void *data) {
  static const char *const parts[] = {"alpha,", "beta,", "gamma"};
  upload_t *u = data;

  (void)call;
  cr_assert_not(u->r.in_request, "the source ran inside the request call");
  if (u->pieces == 3) {
    *len = 0;
    return 0;
  }
  *buf = parts[u->pieces];
  *len = strlen(parts[u->pieces]);
  u->pieces++;
  return 0;
}

static void upload_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                        void *data) {
  on_done(call, err, res, &((upload_t *)data)->r);
}

static int failing_source(msvc_http_call_t *call, const char **buf, size_t *len,
                          void *data) {
  (void)call;
  (void)buf;
  (void)len;
  (void)data;
  return MSVC_EIO;
}

Test(http_client_pool, streamed_request_body) {
  fixture_t fx;
  msvc_http_server_t *srv;
  upload_t u;
  msvc_http_request_t req;

  fx_init(&fx, NULL);
  cr_assert_eq(msvc_http_server_new(&fx.loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "*", "/echo", echo_handler, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(srv, "127.0.0.1", 0), MSVC_OK);
  memset(&u, 0, sizeof(u));
  msvc_http_request_init(&req);
  req.method = "PUT";
  req.host = "127.0.0.1";
  req.port = msvc_http_server_port(srv);
  req.target = "/echo";
  req.body_source = upload_source;
  req.on_done = upload_done;
  req.data = &u;
  for (int i = 0; i < 2; i++) {
    /* The second upload goes out on the pooled connection. */
    memset(&u, 0, sizeof(u));
    u.r.in_request = true;
    cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
    u.r.in_request = false;
    fx_run_until(&fx, &u.r.done, 1);
    cr_assert_eq(u.r.err, 0, "%s", msvc_strerror(u.r.err));
    cr_assert_eq(u.r.status, 200);
    cr_assert_str_eq(u.r.body, "alpha,beta,gamma");
  }
  cr_assert(fx.at.last_reused);
  /* A source that fails ends the call with its error. */
  memset(&u, 0, sizeof(u));
  req.body_source = failing_source;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_OK);
  fx_run_until(&fx, &u.r.done, 1);
  cr_assert_eq(u.r.err, MSVC_EIO);
  /* Framing of its own is refused. */
  req.body = "x";
  req.body_len = 1;
  cr_assert_eq(msvc_http_client_request(fx.client, &req, NULL), MSVC_EINVAL);
  msvc_http_server_close(srv, NULL, NULL);
  fx_close(&fx);
}
