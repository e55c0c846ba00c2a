/*
 * Fan-out: several calls at once, one completion. Each member keeps a copy
 * of its request until the start and a copy of its outcome afterwards, so
 * the results outlive the individual calls. The overall deadline cancels
 * what is still running; those members report MSVC_ETIMEDOUT.
 */
#include <msvc/trace.h>

#include "call-internal.h"

typedef struct member_s {
  msvc_service_fanout_t *fo;
  char *service;
  char *method;
  char *target;
  msvc_http_header_t *headers;
  size_t nheaders;
  void *body;
  size_t body_len;
  msvc_service_request_t req; /* points into the copies above */
  msvc_service_call_t *call;
  bool running;
  msvc_service_result_t res; /* strings owned by the member */
} member_t;

struct msvc_service_fanout_s {
  msvc__caller_t *c;
  uint32_t deadline_ms;
  msvc_service_fanout_fn done;
  void *data;
  member_t **m;
  size_t n, cap;
  msvc_service_result_t *results; /* made at the start, filled at the end */
  size_t running;
  bool started;
  bool timed_out;
  bool starting;
  uv_timer_t timer;
  msvc_span_t *span; /* the fan-out, parent of its calls' spans (tracing) */
};

static void member_free(member_t *m) {
  size_t i;

  for (i = 0; i < m->nheaders; i++) {
    msvc__free((char *)m->headers[i].name);
    msvc__free((char *)m->headers[i].value);
  }
  msvc__free(m->headers);
  msvc__free(m->service);
  msvc__free(m->method);
  msvc__free(m->target);
  msvc__free(m->body);
  msvc__free((char *)m->res.content_type);
  msvc__free((char *)m->res.body);
  msvc__free(m);
}

static void fanout_free(msvc_service_fanout_t *fo) {
  size_t i;

  for (i = 0; i < fo->n; i++)
    member_free(fo->m[i]);
  msvc__free(fo->m);
  msvc__free(fo->results);
  msvc_trace_span_end(fo->span); /* only if it never completed */
  msvc__free(fo);
}

int msvc__caller_fanout_new(msvc__caller_t *c, uint32_t deadline_ms,
                            msvc_service_fanout_fn done, void *data,
                            msvc_service_fanout_t **out) {
  msvc_service_fanout_t *fo;

  if (out != NULL)
    *out = NULL;
  if (c == NULL || done == NULL || out == NULL || deadline_ms == 0)
    return MSVC_EINVAL;
  fo = msvc__calloc(1, sizeof(*fo));
  if (fo == NULL)
    return MSVC_ENOMEM;
  fo->c = c;
  fo->deadline_ms = deadline_ms;
  fo->done = done;
  fo->data = data;
  *out = fo;
  return MSVC_OK;
}

int msvc_service_fanout_new(msvc_service_t *svc, uint32_t deadline_ms,
                            msvc_service_fanout_fn done, void *data,
                            msvc_service_fanout_t **out) {
  if (svc == NULL)
    return MSVC_EINVAL;
  return msvc__caller_fanout_new(msvc__service_caller(svc), deadline_ms, done, data, out);
}

static int copy_member(member_t *m, const char *service, const msvc_service_request_t *req) {
  size_t i;

  m->req = *req;
  m->service = msvc__strdup(service);
  m->method = msvc__strdup(req->method != NULL ? req->method : "GET");
  m->target = msvc__strdup(req->target != NULL ? req->target : "/");
  m->headers = msvc__calloc(req->nheaders + 1, sizeof(*m->headers));
  if (m->service == NULL || m->method == NULL || m->target == NULL || m->headers == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < req->nheaders; i++) {
    m->headers[i].name = msvc__strdup(req->headers[i].name);
    m->headers[i].value = msvc__strdup(req->headers[i].value);
    m->nheaders++;
    if (m->headers[i].name == NULL || m->headers[i].value == NULL)
      return MSVC_ENOMEM;
  }
  if (req->body_len > 0) {
    if ((m->body = msvc__malloc(req->body_len)) == NULL)
      return MSVC_ENOMEM;
    memcpy(m->body, req->body, req->body_len);
    m->body_len = req->body_len;
  }
  m->req.method = m->method;
  m->req.target = m->target;
  m->req.headers = m->headers;
  m->req.body = m->body;
  m->res.service = m->service;
  return MSVC_OK;
}

int msvc_service_fanout_add(msvc_service_fanout_t *fo, const char *service,
                            const msvc_service_request_t *req) {
  member_t *m;
  int r;

  if (fo == NULL || req == NULL || !msvc__call_name_valid(service) ||
      (req->nheaders > 0 && req->headers == NULL) ||
      (req->body == NULL && req->body_len > 0))
    return MSVC_EINVAL;
  if (fo->started)
    return MSVC_ESTATE;
  if (fo->n >= (size_t)INT32_MAX)
    return MSVC_ENOMEM;
  if (fo->n == fo->cap) {
    size_t cap = fo->cap ? fo->cap * 2 : 4;
    member_t **a = msvc__realloc(fo->m, cap * sizeof(*a));
    if (a == NULL)
      return MSVC_ENOMEM;
    fo->m = a;
    fo->cap = cap;
  }
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL)
    return MSVC_ENOMEM;
  m->fo = fo;
  r = copy_member(m, service, req);
  if (r != 0) {
    member_free(m);
    return r;
  }
  fo->m[fo->n] = m;
  /* sized at the start, for the members there are then */
  msvc__free(fo->results);
  fo->results = NULL;
  return (int)fo->n++;
}

static void on_fanout_closed(uv_handle_t *h) {
  fanout_free(msvc__container_of((uv_timer_t *)h, msvc_service_fanout_t, timer));
}

static void complete(msvc_service_fanout_t *fo) {
  size_t i;

  uv_timer_stop(&fo->timer);
  if (fo->span != NULL) {
    if (fo->timed_out)
      msvc_trace_span_set_status(fo->span, MSVC_SPAN_STATUS_ERROR, "deadline reached");
    msvc_trace_span_end(fo->span);
    fo->span = NULL;
  }
  for (i = 0; i < fo->n; i++)
    fo->results[i] = fo->m[i]->res;
  fo->done(fo->results, fo->n, fo->data);
  uv_close((uv_handle_t *)&fo->timer, on_fanout_closed);
}

static char *dup_len(const char *s, size_t len) {
  char *d = msvc__malloc(len + 1);

  if (d != NULL) {
    memcpy(d, s, len);
    d[len] = '\0';
  }
  return d;
}

static void on_member_done(int err, const msvc_http_response_t *res, void *data) {
  member_t *m = data;
  msvc_service_fanout_t *fo = m->fo;

  m->call = NULL;
  m->running = false;
  m->res.err = err == MSVC_ECANCELED && fo->timed_out ? MSVC_ETIMEDOUT : err;
  if (err == 0) {
    const char *ct = msvc_http_response_header(res, "Content-Type");
    size_t len = 0;
    const char *body = msvc_http_response_body(res, &len);

    m->res.status = msvc_http_response_status(res);
    m->res.content_type = ct != NULL ? msvc__strdup(ct) : NULL;
    m->res.body = dup_len(body, len);
    m->res.body_len = m->res.body != NULL ? len : 0;
  }
  if (--fo->running == 0 && !fo->starting)
    complete(fo);
}

static void on_deadline(uv_timer_t *t) {
  msvc_service_fanout_t *fo = msvc__container_of(t, msvc_service_fanout_t, timer);
  size_t i;

  if (fo->running == 0) { /* nothing was started */
    complete(fo);
    return;
  }
  fo->timed_out = true;
  for (i = 0; i < fo->n; i++)
    if (fo->m[i]->running)
      msvc_service_call_cancel(fo->m[i]->call);
}

int msvc_service_fanout_start(msvc_service_fanout_t *fo) {
  call_loop_t *lc;
  size_t i;
  int r;

  if (fo == NULL)
    return MSVC_EINVAL;
  if (fo->started)
    return MSVC_ESTATE;
  lc = msvc__call_loop_current(fo->c);
  if (lc == NULL)
    return MSVC_ESTATE;
  if (fo->results == NULL)
    fo->results = msvc__calloc(fo->n + 1, sizeof(*fo->results));
  if (fo->results == NULL)
    return MSVC_ENOMEM;
  r = uv_timer_init(lc->loop, &fo->timer);
  if (r != 0)
    return r;
  fo->started = true;
  fo->starting = true;
  /* With tracing, one span for the whole fan-out groups its calls. */
  if (fo->n > 0 && fo->m[0]->req.parent != NULL && msvc_mw_span(fo->m[0]->req.parent) != NULL &&
      msvc_trace_span_start(fo->c->opts.tracer, "fanout", MSVC_SPAN_INTERNAL,
                            msvc_trace_span_ctx(msvc_mw_span(fo->m[0]->req.parent)),
                            &fo->span) == MSVC_OK && fo->span != NULL)
    msvc_trace_span_set_int(fo->span, "msvc.fanout.calls", (int64_t)fo->n);
  for (i = 0; i < fo->n; i++) {
    member_t *m = fo->m[i];

    m->req.on_done = on_member_done;
    m->req.data = m;
    r = msvc__caller_call_within(fo->c, m->service, &m->req, NULL,
                                 fo->span != NULL && m->req.parent == fo->m[0]->req.parent
                                     ? msvc_trace_span_ctx(fo->span)
                                     : NULL,
                                 &m->call);
    if (r != 0) {
      m->res.err = r;
      continue;
    }
    m->running = true;
    fo->running++;
  }
  fo->starting = false;
  /* With nothing running the deadline timer fires at once and completes. */
  uv_timer_start(&fo->timer, on_deadline, fo->running > 0 ? fo->deadline_ms : 0, 0);
  return MSVC_OK;
}

void msvc_service_fanout_free(msvc_service_fanout_t *fo) {
  if (fo == NULL || fo->started)
    return;
  fanout_free(fo);
}
