/*
 * Per-request context middlewares: request id, W3C trace context, access
 * log. The id and the trace share one attribute of the request, so a
 * request that runs both costs one allocation for them rather than two.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include <msvc/log.h>
#include <msvc/middleware.h>

#include "msvc-internal.h"
#include "service/mw-internal.h"

/* Attribute key: a string with static storage, as msvc_http_req_set()
 * borrows it. */
static const char ctx_key[] = "msvc.mw.context";

typedef struct ctx_s {
  bool has_id;
  bool has_trace;
  char request_id[MSVC_MW_REQUEST_ID_MAX + 1];
  msvc_mw_trace_t trace;
  const char *tracestate; /* borrowed from the request's headers */
} ctx_t;

/* Contexts are recycled through a short per-thread list, so that a request
 * allocates none in the steady state; a thread's list is freed when the
 * thread ends (the main thread's stays reachable until the process does). */
#define CTX_CACHE 64

typedef struct ctx_cache_s {
  ctx_t *items[CTX_CACHE];
  unsigned n;
} ctx_cache_t;

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool cache_key_ok;
static _Thread_local ctx_cache_t *tls_cache;

static void cache_destroy(void *p) {
  ctx_cache_t *cc = p;

  while (cc->n > 0)
    msvc__free(cc->items[--cc->n]);
  msvc__free(cc);
  tls_cache = NULL;
}

static void cache_key_init(void) {
  cache_key_ok = pthread_key_create(&cache_key, cache_destroy) == 0;
}

/* This thread's list; NULL when it cannot have one (no memory). */
static ctx_cache_t *ctx_cache(void) {
  ctx_cache_t *cc = tls_cache;

  if (MSVC__LIKELY(cc != NULL))
    return cc;
  pthread_once(&cache_once, cache_key_init);
  if (!cache_key_ok || (cc = msvc__calloc(1, sizeof(*cc))) == NULL)
    return NULL;
  if (pthread_setspecific(cache_key, cc) != 0) {
    msvc__free(cc);
    return NULL;
  }
  tls_cache = cc;
  return cc;
}

static void ctx_free(void *p) {
  ctx_cache_t *cc = ctx_cache();

  if (cc != NULL && cc->n < CTX_CACHE)
    cc->items[cc->n++] = p;
  else
    msvc__free(p);
}

static ctx_t *ctx_alloc(void) {
  ctx_cache_t *cc = tls_cache;
  ctx_t *c;

  if (cc == NULL || cc->n == 0)
    return msvc__calloc(1, sizeof(ctx_t));
  c = cc->items[--cc->n];
  c->has_id = false;
  c->has_trace = false;
  c->tracestate = NULL;
  return c;
}

static ctx_t *ctx_of(const msvc_http_req_t *req) {
  return msvc_http_req_get(req, ctx_key);
}

static ctx_t *ctx_get_or_add(msvc_http_req_t *req) {
  ctx_t *c = ctx_of(req);

  if (c != NULL)
    return c;
  c = ctx_alloc();
  if (c == NULL)
    return NULL;
  /* On failure msvc_http_req_set() has already freed c through ctx_free. */
  if (msvc_http_req_set(req, ctx_key, c, ctx_free) != MSVC_OK)
    return NULL;
  return c;
}

/* An out-of-memory answer from a middleware: the handler never runs. */
static int answer_oom(msvc_http_res_t *res) {
  msvc_http_res_error(res, 503, "UNAVAILABLE", "The server is out of memory.");
  return MSVC_HTTP_STOP;
}

/* ---- request id ------------------------------------------------------- */

static int request_id_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *in = msvc_http_req_header(req, MSVC_MW_REQUEST_ID_HEADER);
  size_t len = in != NULL ? strnlen(in, MSVC_MW_REQUEST_ID_MAX + 1) : 0;
  ctx_t *c = ctx_get_or_add(req);

  (void)data;
  if (c == NULL)
    return answer_oom(res);
  if (msvc_mw_request_id_valid(in, len)) {
    memcpy(c->request_id, in, len);
    c->request_id[len] = '\0';
  } else {
    msvc__mw_hex_random(c->request_id, 32);
  }
  c->has_id = true;
  if (msvc_http_res_header(res, MSVC_MW_REQUEST_ID_HEADER, c->request_id) == MSVC_ENOMEM)
    return answer_oom(res);
  return MSVC_HTTP_NEXT;
}

int msvc_mw_request_id_use(msvc_http_server_t *srv) {
  msvc_http_middleware_t mw = {"request_id", request_id_before, NULL, NULL};

  return msvc_http_server_use(srv, &mw);
}

const char *msvc_mw_request_id(const msvc_http_req_t *req) {
  const ctx_t *c = ctx_of(req);

  return c != NULL && c->has_id ? c->request_id : NULL;
}

/* ---- trace context ---------------------------------------------------- */

static int trace_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *tp = msvc_http_req_header(req, "traceparent");
  msvc_mw_trace_t in;
  ctx_t *c = ctx_get_or_add(req);
  bool valid;

  (void)data;
  if (c == NULL)
    return answer_oom(res);
  /* Anything much longer than a traceparent is invalid: bound the scan. */
  valid = tp != NULL && msvc_mw_traceparent_parse(tp, strnlen(tp, 512), &in) == MSVC_OK;
  msvc_mw_trace_child(valid ? &in : NULL, &c->trace);
  c->tracestate = valid ? msvc_http_req_header(req, "tracestate") : NULL;
  c->has_trace = true;
  return MSVC_HTTP_NEXT;
}

int msvc_mw_trace_use(msvc_http_server_t *srv) {
  msvc_http_middleware_t mw = {"trace_context", trace_before, NULL, NULL};

  return msvc_http_server_use(srv, &mw);
}

const msvc_mw_trace_t *msvc_mw_trace(const msvc_http_req_t *req) {
  const ctx_t *c = ctx_of(req);

  return c != NULL && c->has_trace ? &c->trace : NULL;
}

const char *msvc_mw_tracestate(const msvc_http_req_t *req) {
  const ctx_t *c = ctx_of(req);

  return c != NULL && c->has_trace ? c->tracestate : NULL;
}

/* ---- access log ------------------------------------------------------- */

/* Longest path written to a line; longer ones are cut (the logger cuts the
 * whole line at 8 KiB anyway). */
#define LOG_PATH_MAX 2048

static void access_after(msvc_http_req_t *req, msvc_http_res_t *res,
                         uint64_t duration_ns, void *data) {
  char path[LOG_PATH_MAX + 4], status[16], dur[32], bytes[32], peer[64];
  const msvc_mw_trace_t *t = msvc_mw_trace(req);
  const char *route = msvc_http_req_route(req), *id = msvc_mw_request_id(req);
  const char *p;
  size_t plen, blen;

  (void)data;
  if (!msvc_log_enabled(MSVC_LOG_INFO))
    return;
  p = msvc_http_req_path(req, &plen);
  snprintf(path, sizeof(path), "%.*s%s", (int)(plen > LOG_PATH_MAX ? LOG_PATH_MAX : plen),
           p, plen > LOG_PATH_MAX ? "..." : "");
  msvc_http_req_body(req, &blen);
  snprintf(status, sizeof(status), "%d", msvc_http_res_status(res));
  snprintf(dur, sizeof(dur), "%.3f", (double)duration_ns / 1e6);
  snprintf(bytes, sizeof(bytes), "%zu", blen);
  if (msvc_http_req_peer(req, peer, sizeof(peer)) != MSVC_OK)
    strcpy(peer, "-");
  {
    const msvc_log_field_t f[] = {
        {"method", msvc_http_req_method(req)},
        {"route", route != NULL ? route : MSVC_MW_UNMATCHED_ROUTE},
        {"path", path},
        {"status", status},
        {"duration_ms", dur},
        {"bytes_in", bytes},
        {"request_id", id != NULL ? id : "-"},
        {"trace_id", t != NULL ? t->trace_id : "-"},
        {"peer", peer},
    };
    msvc_log_write(MSVC_LOG_INFO, MSVC_MW_ACCESS_LOG_COMPONENT, f,
                   MSVC__ARRAY_SIZE(f), "request");
  }
}

int msvc_mw_access_log_use(msvc_http_server_t *srv) {
  msvc_http_middleware_t mw = {"access_log", NULL, access_after, NULL};

  return msvc_http_server_use(srv, &mw);
}
