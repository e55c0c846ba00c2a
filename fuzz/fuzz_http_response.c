/*
 * Bytes from a server, through the client's whole receive path: the shared
 * pre-scan and llhttp glue in response mode, 1xx skipping, HEAD handling,
 * body caps, streaming both ways, keep-alive reuse, queueing behind one connection,
 * and the stale-connection rule, over in-memory transports.
 *
 * Input: byte 0 picks how the rest is cut into reads (1 to 64 bytes, or all
 * at once); byte 1 picks the requests (count, methods, streaming, retries);
 * the rest is what the server answers.
 */
#include <stdint.h>
#include <string.h>

#include <msvc/http_client.h>

#include "http/client_factory.h"
#include "http/transport_mem.h"

static msvc__transport_t *cur;

static int factory(void *data, uv_loop_t *loop, const char *host, int port,
                   msvc__transport_t **out) {
  (void)data;
  (void)host;
  (void)port;
  if (msvc__mem_transport_new(loop, 1 << 16, out) != 0)
    return MSVC_ENOMEM;
  cur = *out;
  return 0;
}

static void on_chunk(msvc_http_call_t *call, const msvc_http_response_t *res,
                     const char *buf, size_t len, void *data) {
  (void)res;
  (void)data;
  /* A consumer that gives up mid-stream on some inputs. */
  if (len > 0 && buf[0] == 'X')
    msvc_http_call_cancel(call);
}

static void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  size_t i, n, len;
  const char *name, *value;

  (void)call;
  (void)err;
  (void)data;
  if (res == NULL)
    return;
  (void)msvc_http_response_status(res);
  (void)msvc_http_response_body(res, &len);
  n = msvc_http_response_header_count(res);
  for (i = 0; i < n; i++)
    (void)msvc_http_response_header_at(res, i, &name, &value);
  (void)msvc_http_response_header(res, "content-type");
}

/* A streamed request body of three pieces. */
static int source(msvc_http_call_t *call, const char **buf, size_t *len, void *data) {
  static int pieces;
  (void)call;
  (void)data;
  if (pieces++ % 4 == 3) {
    *len = 0;
    return 0;
  }
  *buf = "piece";
  *len = 5;
  return 0;
}

static void start(msvc_http_client_t *c, uint8_t bits, msvc_retry_t *retry) {
  static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE"};
  msvc_http_request_t req;
  int i, n = 1 + (bits & 3);

  for (i = 0; i < n; i++) {
    msvc_http_request_init(&req);
    req.host = "127.0.0.1";
    req.port = 8080;
    req.target = "/fuzz";
    req.method = methods[(bits >> 2) & 3];
    if ((bits & 0x80) != 0 && i == 0) {
      req.body_source = source;
    } else {
      req.body = "{}";
      req.body_len = 2;
    }
    req.on_done = on_done;
    req.on_chunk = (bits & 0x10) != 0 && i == 0 ? on_chunk : NULL;
    req.retry = (bits & 0x20) != 0 ? retry : NULL;
    req.retryable = (bits & 0x40) != 0;
    (void)msvc_http_client_request(c, &req, NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_client_opts_t o;
  msvc_retry_opts_t ro;
  msvc_retry_t *retry = NULL;
  size_t step, pos = 0;
  int stalls = 0;

  if (size < 2)
    return 0;
  step = data[0] % 65 == 0 ? size : data[0] % 65;
  if (uv_loop_init(&loop) != 0)
    return 0;
  msvc_http_client_opts_init(&o);
  o.max_conns_per_endpoint = 1;
  o.max_response_head = 1024;
  o.max_response_headers = 16;
  o.max_response_body = 4096;
  msvc_retry_opts_init(&ro);
  ro.base_ms = 0;
  ro.cap_ms = 0;
  if (msvc_http_client_new(&loop, &o, &c) != MSVC_OK ||
      msvc_retry_new(&ro, &retry) != MSVC_OK) {
    msvc_http_client_close(c, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
  }
  msvc__http_client_set_factory(c, factory, NULL);
  cur = NULL;
  start(c, data[1], retry);
  data += 2;
  size -= 2;
  uv_run(&loop, UV_RUN_NOWAIT);
  while (pos < size && stalls < 4) {
    size_t n = size - pos < step ? size - pos : step;
    /* With one connection per endpoint, "none open" means the last
     * transport is closing and must not be touched. */
    if (msvc_http_client_connections(c, "127.0.0.1", 8080) == 0)
      cur = NULL;
    if (cur != NULL && msvc__mem_transport_push(cur, (const char *)data + pos, n)) {
      pos += n;
      stalls = 0;
    } else {
      stalls++;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  if (msvc_http_client_connections(c, "127.0.0.1", 8080) > 0 && cur != NULL)
    msvc__mem_transport_eof(cur);
  uv_run(&loop, UV_RUN_NOWAIT);
  msvc_http_client_close(c, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  msvc_retry_free(retry);
  return 0;
}
