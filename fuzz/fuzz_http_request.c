/*
 * Bytes from a client, through the whole server connection path: pre-scan,
 * llhttp, limits, router, middleware, handlers (synchronous, streaming,
 * JSON, deferred), pipelining and back-pressure, over an in-memory
 * transport instead of a socket.
 *
 * Input: the first byte picks how the rest is cut into reads (1 to 64 bytes,
 * or all at once); the rest is what the client sends.
 */
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/http.h>

#include "http/attach.h"
#include "http/transport_mem.h"

static msvc_http_req_t *deferred;

static void h_text(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void h_params(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *id = msvc_http_req_param(req, "id");
  const char *q = msvc_http_req_query(req, "q");
  const char *star = msvc_http_req_param(req, "*");
  char peer[64];
  (void)data;
  msvc_http_req_peer(req, peer, sizeof(peer));
  msvc_http_res_header(res, "X-Q", q != NULL ? q : "-");
  msvc_http_res_send(res, 200, NULL, id != NULL ? id : star, strlen(id != NULL ? id : star != NULL ? star : ""));
}

static void h_json(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  cJSON *doc;
  (void)data;
  if (msvc_http_req_json(req, &doc) != MSVC_OK)
    return;
  msvc_http_res_json(res, 200, doc);
  cJSON_Delete(doc);
}

static void h_stream(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);
  (void)data;
  msvc_http_res_start(res, 200, NULL);
  msvc_http_res_write(res, body, len);
  msvc_http_res_end(res);
}

/* Answers the previous deferred request when the next one arrives, so
 * responses are produced out of order and must be put back in order. */
static void h_defer(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  if (deferred != NULL)
    msvc_http_res_send(msvc_http_req_res(deferred), 202, NULL, "later", 5);
  deferred = req;
}

static int mw_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const msvc_http_route_opts_t *o = msvc_http_req_route_opts(req);
  (void)data;
  if (o != NULL && (o->flags & MSVC_HTTP_ROUTE_AUTH) != 0 &&
      msvc_http_req_header(req, "Authorization") == NULL) {
    msvc_http_res_error(res, 401, "UNAUTHENTICATED", "token \"required\"");
    return MSVC_HTTP_STOP;
  }
  return MSVC_HTTP_NEXT;
}

static void mw_after(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t ns, void *data) {
  (void)ns;
  (void)data;
  (void)msvc_http_req_route(req);
  (void)msvc_http_res_status(res);
}

static void setup(msvc_http_server_t *srv) {
  msvc_http_route_opts_t auth = {sizeof(auth), MSVC_HTTP_ROUTE_AUTH, NULL};
  msvc_http_middleware_t mw = {"fuzz", mw_before, mw_after, NULL};

  msvc_http_server_route(srv, "GET", "/hello", h_text, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/users/:id", h_params, NULL, NULL);
  msvc_http_server_route(srv, "*", "/files/*", h_params, NULL, NULL);
  msvc_http_server_route(srv, "POST", "/json", h_json, NULL, NULL);
  msvc_http_server_route(srv, "PUT", "/stream", h_stream, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/defer", h_defer, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/secret", h_text, NULL, &auth);
  msvc_http_server_use(srv, &mw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_http_server_opts_t o;
  msvc__transport_t *tr;
  size_t step, pos = 0;
  int stalls = 0;

  if (size < 1)
    return 0;
  step = data[0] % 65 == 0 ? size : data[0] % 65;
  data++;
  size--;
  if (uv_loop_init(&loop) != 0)
    return 0;
  msvc_http_server_opts_init(&o);
  o.max_header_bytes = 2048;
  o.max_headers = 16;
  o.max_body_bytes = 4096;
  o.max_pipeline = 4;
  if (msvc_http_server_new(&loop, &o, &srv) != MSVC_OK) {
    uv_loop_close(&loop);
    return 0;
  }
  setup(srv);
  deferred = NULL;
  if (msvc__mem_transport_new(&loop, 1 << 20, &tr) == 0 &&
      msvc__conn_attach(srv, tr) == MSVC_OK) {
    while (pos < size && stalls < 4 && msvc_http_server_connections(srv) > 0) {
      size_t n = size - pos < step ? size - pos : step;
      if (msvc__mem_transport_push(tr, (const char *)data + pos, n)) {
        pos += n;
        stalls = 0;
      } else {
        stalls++;
      }
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (msvc_http_server_connections(srv) > 0)
      msvc__mem_transport_eof(tr);
  }
  if (deferred != NULL)
    msvc_http_res_send(msvc_http_req_res(deferred), 200, NULL, NULL, 0);
  msvc_http_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}
