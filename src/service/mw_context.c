/*
 * Per-request context middlewares: request id, W3C trace context, access
 * log. The id and the trace share one attribute of the request, so a
 * request that runs both costs one allocation for them rather than two.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/trace.h>

#include "http/server.h"
#include "msvc-internal.h"
#include "service/mw-internal.h"
#include "trace/trace-internal.h"

/* Attribute key: a string with static storage, as msvc_http_req_set()
 * borrows it. */
static const char ctx_key[] = "msvc.mw.context";

typedef struct ctx_s {
  bool has_id;
  bool has_trace;
  char request_id[MSVC_MW_REQUEST_ID_MAX + 1];
  msvc_mw_trace_t trace;
  const char *tracestate; /* borrowed from the request's headers */
  msvc_span_t *span;      /* the server span, when a tracer is on */
  char tracestate_buf[MSVC_TRACE_TRACESTATE_MAX + 1];
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
  ctx_t *c = p;
  ctx_cache_t *cc;

  msvc_trace_span_end(c->span); /* a request released before its end */
  cc = ctx_cache();
  if (cc != NULL && cc->n < CTX_CACHE)
    cc->items[cc->n++] = c;
  else
    msvc__free(c);
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
  c->span = NULL;
  c->tracestate_buf[0] = '\0';
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
    len = 32;
    msvc__hex_random(c->request_id, len);
  }
  c->has_id = true;
  /* A valid id or hex digits: a field value as it stands. */
  if (msvc__res_header_trusted(res, MSVC_MW_REQUEST_ID_HEADER,
                               sizeof(MSVC_MW_REQUEST_ID_HEADER) - 1, c->request_id,
                               len) == MSVC_ENOMEM)
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

static void trace_start_span(ctx_t *c, msvc_tracer_t *tracer, const msvc_mw_trace_t *in,
                             const char *method) {
  msvc_trace_ctx_t parent;
  const msvc_trace_ctx_t *sc;

  if (in != NULL) {
    memcpy(parent.trace_id, in->trace_id, sizeof(parent.trace_id));
    memcpy(parent.span_id, in->parent_id, sizeof(parent.span_id));
    parent.flags = in->flags;
    parent.remote = true;
  }
  /* Without memory the request is served untraced, with the context that
   * msvc_mw_trace_child() made. */
  if (msvc_trace_span_start(tracer, method, MSVC_SPAN_SERVER, in != NULL ? &parent : NULL,
                            &c->span) != MSVC_OK || c->span == NULL)
    return;
  /* The span is this hop: its ids (and, for a new root, the sampling
   * decision in its flags) are what outgoing calls carry on. */
  sc = msvc_trace_span_ctx(c->span);
  memcpy(c->trace.trace_id, sc->trace_id, sizeof(c->trace.trace_id));
  memcpy(c->trace.span_id, sc->span_id, sizeof(c->trace.span_id));
  if (in != NULL)
    memcpy(c->trace.parent_id, in->parent_id, sizeof(c->trace.parent_id));
  else
    c->trace.parent_id[0] = '\0';
  c->trace.flags = sc->flags;
}

static int trace_before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *tp = msvc_http_req_header(req, "traceparent");
  const char *ts;
  msvc_mw_trace_t in;
  ctx_t *c = ctx_get_or_add(req);
  bool valid;
  int n;

  if (c == NULL)
    return answer_oom(res);
  /* Anything much longer than a traceparent is invalid: bound the scan. */
  valid = tp != NULL && msvc_mw_traceparent_parse(tp, strnlen(tp, 512), &in) == MSVC_OK;
  /* tracestate only with a valid traceparent, and only when it is valid
   * itself: a malformed list is dropped whole, a long one cut. */
  ts = valid ? msvc_http_req_header(req, "tracestate") : NULL;
  n = ts != NULL ? msvc_trace_tracestate_normalize(ts, strnlen(ts, 32 * 1024),
                                                    c->tracestate_buf,
                                                    sizeof(c->tracestate_buf))
                 : -1;
  c->tracestate = n > 0 ? c->tracestate_buf : NULL;
  c->has_trace = true;
  /* With a tracer the span's ids are this hop's; without one (or without
   * memory for the span) a context of its own. */
  if (data != NULL)
    trace_start_span(c, data, valid ? &in : NULL, msvc_http_req_method(req));
  if (c->span == NULL)
    msvc_mw_trace_child(valid ? &in : NULL, &c->trace);
  return MSVC_HTTP_NEXT;
}

static void trace_after(msvc_http_req_t *req, msvc_http_res_t *res, uint64_t duration_ns,
                        void *data) {
  ctx_t *c = ctx_of(req);
  const char *route = msvc_http_req_route(req), *method = msvc_http_req_method(req);
  char name[256], code[16];
  size_t plen, ml, rl;
  const char *path;
  int status = msvc_http_res_status(res);
  msvc_span_t *s;

  (void)duration_ns;
  (void)data;
  if (c == NULL || (s = c->span) == NULL)
    return;
  c->span = NULL;
  if (status >= 500)
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, NULL);
  /* A span that will be dropped (not sampled, fast, fine) is not worth
   * its attributes. */
  if (!msvc_trace_span_wanted(s)) {
    msvc_trace_span_end(s);
    return;
  }
  /* Never the raw path in the name: ids in paths would make every request
   * a span name of its own. A gRPC method has named its span already. */
  ml = strlen(method);
  rl = route != NULL ? strlen(route) : 0;
  if (!msvc__trace_span_has_attr(s, "rpc.system")) {
    const char *r = route != NULL ? route : MSVC_MW_UNMATCHED_ROUTE;
    size_t nl = route != NULL ? rl : strlen(r);

    /* Concatenated by hand: this runs for every kept request. */
    if (ml + 1 + nl < sizeof(name)) {
      memcpy(name, method, ml);
      name[ml] = ' ';
      memcpy(name + ml + 1, r, nl);
      msvc__trace_span_set_name_n(s, name, ml + 1 + nl);
    }
  }
  /* The keys are the library's own (borrowed, not copied) and every length
   * is known: the values are copied once, straight into the span. */
  msvc__trace_span_set_strn(s, MSVC__TRACE_KEY("http.request.method"), method, ml);
  if (route != NULL)
    msvc__trace_span_set_strn(s, MSVC__TRACE_KEY("http.route"), route, rl);
  path = msvc_http_req_path(req, &plen);
  if (path != NULL && plen < 2048)
    msvc__trace_span_set_strn(s, MSVC__TRACE_KEY("url.path"), path, plen);
  msvc__trace_span_set_intk(s, MSVC__TRACE_KEY("http.response.status_code"), status);
  if (status >= 500) {
    int cl = snprintf(code, sizeof(code), "%d", status);
    msvc__trace_span_set_strn(s, MSVC__TRACE_KEY("error.type"), code, (size_t)cl);
  }
  msvc_trace_span_end(s);
}

int msvc__mw_trace_use_tracer(msvc_http_server_t *srv, msvc_tracer_t *tracer) {
  msvc_http_middleware_t mw = {"trace_context", trace_before,
                               tracer != NULL ? trace_after : NULL, tracer};

  return msvc_http_server_use(srv, &mw);
}

int msvc_mw_trace_use(msvc_http_server_t *srv) {
  return msvc__mw_trace_use_tracer(srv, NULL);
}

msvc_span_t *msvc_mw_span(const msvc_http_req_t *req) {
  const ctx_t *c = ctx_of(req);

  return c != NULL ? c->span : NULL;
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
        {"span_id", t != NULL ? t->span_id : "-"},
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
