/*
 * HTTP/2 frames from a client, through the server connection: preface
 * detection, the nghttp2 session (HPACK, flow control, stream states,
 * limits), streams turned into requests, the router and handlers
 * (synchronous, streamed with trailers, deferred, cancelled), responses
 * framed back, over an in-memory transport instead of a socket.
 *
 * Input: the first byte picks how the rest is cut into reads (1 to 64
 * bytes, or all at once); the rest is what the client sends after its
 * connection preface and an empty SETTINGS frame, which the target sends
 * first so that the fuzzer spends its time on frames.
 */
#include <stdint.h>
#include <string.h>

#include <msvc/http.h>

#include "http/attach.h"
#include "http/transport_mem.h"

static msvc_http_req_t *deferred;

static void h_text(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void h_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);

  (void)data;
  msvc_http_res_header(res, "X-Te", msvc_http_req_header(req, "te") != NULL ? "1" : "0");
  msvc_http_res_send(res, 200, "application/octet-stream", body, len);
}

static void h_stream(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  static char big[40000];
  (void)req;
  (void)data;
  msvc_http_res_start(res, 200, "application/grpc");
  msvc_http_res_write(res, "abc", 3);
  msvc_http_res_write(res, big, sizeof(big));
  msvc_http_res_trailer(res, "grpc-status", "0");
  msvc_http_res_end(res);
}

/* A reset stream's request stays with its handler, which still answers
 * it (the answer is dropped): the deferred request is kept either way. */
static void on_cancel(msvc_http_req_t *req, void *data) {
  (void)req;
  (void)data;
}

/* Answers the previous deferred request when the next one arrives. */
static void h_defer(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  if (deferred != NULL)
    msvc_http_res_send(msvc_http_req_res(deferred), 202, NULL, "later", 5);
  deferred = req;
  msvc_http_req_on_cancel(req, on_cancel, NULL);
}

static void setup(msvc_http_server_t *srv) {
  msvc_http_server_route(srv, "GET", "/", h_text, NULL, NULL);
  msvc_http_server_route(srv, "POST", "/echo", h_echo, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/stream", h_stream, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/defer", h_defer, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char start[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
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
  o.h2_max_streams = 8;
  o.h2_window = 4096;
  if (msvc_http_server_new(&loop, &o, &srv) != MSVC_OK) {
    uv_loop_close(&loop);
    return 0;
  }
  setup(srv);
  deferred = NULL;
  if (msvc__mem_transport_new(&loop, 1 << 20, &tr) == 0 &&
      msvc__conn_attach(srv, tr) == MSVC_OK &&
      msvc__mem_transport_push(tr, start, sizeof(start) - 1)) {
    uv_run(&loop, UV_RUN_NOWAIT);
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
