/*
 * http_cost: CPU time and allocations per request of the HTTP server's own
 * path, without the kernel. The server runs on a private loop and serves one
 * connection over the in-memory transport; requests are pushed as a client
 * would write them (one per write, or a batch per write), the answers are
 * dropped. Reported: thread CPU time per request (the minimum over 7 rounds)
 * and the allocations libmsvc made per request (malloc, calloc and realloc
 * called from the library, counted by wrapping them at link time; the
 * memory transport's one record per write is included).
 *
 *   http_cost [--mw] [--headers] [--path /hello/bob] [--batch 16]
 *             [--requests 200000]
 *
 * --headers sends eight headers (Host, and the usual set of curl or a
 * browser with a token) instead of Host alone.
 * --mw turns on the default middleware of a service (request id, trace
 * context, request metrics), as bench/servers/hello_mw does. The routes are
 * hello's: GET /hello (text) and GET /hello/:name (a cJSON document).
 * Used to measure changes of the request path (docs/PERFORMANCE.md); not a
 * benchmark of its own, so it prints text, not result lines.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <msvc/http.h>
#include <msvc/middleware.h>

#include "http/attach.h"
#include "http/transport_mem.h"

static unsigned long nalloc;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) {
  nalloc++;
  return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
  nalloc++;
  return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
  nalloc++;
  return __real_realloc(p, n);
}

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void on_hello_name(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char msg[512];
  cJSON *doc = cJSON_CreateObject();

  (void)data;
  snprintf(msg, sizeof(msg), "hello, %s!", msvc_http_req_param(req, "name"));
  if (doc == NULL || cJSON_AddStringToObject(doc, "message", msg) == NULL)
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory");
  else
    msvc_http_res_json(res, 200, doc);
  cJSON_Delete(doc);
}

static double thread_ns(void) {
  struct timespec t;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  static const char more[] = "User-Agent: curl/8.5.0\r\nAccept: application/json\r\n"
                              "Accept-Encoding: gzip, deflate\r\nAccept-Language: en-US\r\n"
                              "Connection: keep-alive\r\nCache-Control: no-cache\r\n"
                              "Authorization: Bearer abc.def.ghi\r\n";
  const char *path = "/hello", *extra = "";
  long batch = 1, requests = 200000, rounds, r, k;
  int mw = 0, i;
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_mw_metrics_t *metrics = NULL;
  msvc__transport_t *tr;
  static char wire[65536];
  size_t len = 0;
  double best = 1e300;
  unsigned long allocs = 0;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--mw") == 0) {
      mw = 1;
    } else if (strcmp(argv[i], "--headers") == 0) {
      extra = more;
    } else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
      batch = atol(argv[++i]);
    } else if (strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
      requests = atol(argv[++i]);
    } else {
      fprintf(stderr, "usage: http_cost [--mw] [--headers] [--path P] [--batch N] "
                      "[--requests N]\n");
      return 2;
    }
  }
  if (batch < 1 || batch > 256 || requests < batch || strlen(path) > 200) {
    fprintf(stderr, "http_cost: bad arguments\n");
    return 2;
  }
  for (k = 0; k < batch; k++)
    len += (size_t)snprintf(wire + len, sizeof(wire) - len,
                            "GET %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n%s\r\n", path,
                            extra);
  uv_loop_init(&loop);
  if (msvc_http_server_new(&loop, NULL, &srv) != MSVC_OK ||
      (mw && (msvc_mw_request_id_use(srv) != MSVC_OK || msvc_mw_trace_use(srv) != MSVC_OK ||
              msvc_mw_metrics_new(srv, NULL, &metrics) != MSVC_OK)) ||
      msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL) != MSVC_OK ||
      msvc_http_server_route(srv, "GET", "/hello/:name", on_hello_name, NULL, NULL) !=
          MSVC_OK ||
      msvc__mem_transport_new(&loop, 1, &tr) != MSVC_OK || msvc__conn_attach(srv, tr) != MSVC_OK) {
    fprintf(stderr, "http_cost: cannot set the server up\n");
    return 1;
  }
  /* warm up: the connection's request object, buffers and metrics series */
  for (k = 0; k < 2000; k++) {
    msvc__mem_transport_push(tr, wire, len);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  rounds = requests / batch;
  for (r = 0; r < 7; r++) {
    unsigned long a0 = nalloc;
    double t0 = thread_ns(), per;

    for (k = 0; k < rounds; k++) {
      msvc__mem_transport_push(tr, wire, len);
      uv_run(&loop, UV_RUN_NOWAIT);
    }
    per = (thread_ns() - t0) / (double)(rounds * batch);
    best = per < best ? per : best;
    allocs = nalloc - a0;
  }
  printf("%s%s%s, %ld per write: %.0f ns per request, %.2f allocations per request\n", path,
         mw ? " with middleware" : "", *extra != '\0' ? ", eight headers" : "", batch, best,
         (double)allocs / (double)(rounds * batch));
  /* the process ends here: the OS takes the loop, server and metrics back */
  return 0;
}
