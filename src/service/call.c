/*
 * One call by service name: wait for the first endpoint set, pick an
 * endpoint whose breaker lets the attempt through, send it on this loop's
 * client, record the outcome, and retry elsewhere while the policy, the
 * budget and the deadline allow.
 *
 * A call has one timer, used for whatever it is waiting for between two
 * attempts: the first endpoint set, a backoff, or the deferred delivery of
 * an outcome that was known at once (on_done never runs inside
 * msvc_service_call()). It is made on first use: a call answered at the
 * first attempt never touches it, which spares the loop a handle per call.
 */
#include <stddef.h>
#include <stdio.h>

#include <msvc/trace.h>

#include "../http/client_own.h"
#include "../http/grpc_error.h"
#include "call-internal.h"

enum { PH_NONE, PH_PARK, PH_BACKOFF, PH_FINISH, PH_FLIGHT, PH_DONE };

/* How often a call parked before the first endpoint set looks again. The
 * set arrives on the main loop while the call may sit on a worker's. */
#define PARK_POLL_MS 2
/* Most picks one attempt may take to get past open breakers. */
#define MAX_PICKS 16

/* Room in the call itself for its strings and headers: a GET with a request
 * id and a traceparent fits, so the common call makes one allocation
 * instead of seven (longer strings and more headers go to the heap). */
#define INLINE_TEXT 320
#define INLINE_HEADERS 6

/* Calls made while serving one incoming request, for its cancellation. */
typedef struct parent_calls_s {
  msvc__queue_t calls;
} parent_calls_t;

struct msvc_service_call_s {
  msvc__queue_t node;        /* loop context's calls */
  msvc__queue_t parent_node; /* parent_calls_t, when linked */
  call_loop_t *lc;
  call_target_t *t;
  bool has_timer; /* timer was initialised */
  int phase;
  int pending_err;
  bool cancelled;
  bool linked_parent;
  bool streamed;
  char *method;
  char *target;
  msvc_http_header_t *headers;
  size_t nheaders;
  void *body;
  size_t body_len;
  bool retryable; /* may run twice: marked, or an Idempotency-Key */
  bool http2;     /* attempts go over HTTP/2 */
  uint64_t deadline_ms;
  msvc_service_response_fn on_done;
  msvc_http_chunk_fn on_chunk;
  void *data;
  /* the attempt in flight */
  msvc_http_call_t *hc;
  call_endpoint_t *ep;
  msvc_lb_ticket_t ticket;
  msvc_breaker_permit_t permit;
  uint64_t attempt_t0_us;
  uint64_t t0_us;  /* the call's start */
  bool last_sent;  /* the last attempt's request went out */
  uint32_t attempts;
  msvc_span_t *span; /* client span, when tracing; retries are its events */
  size_t text_used;  /* bytes of text[] taken */
  bool heap_text;    /* some string did not fit in text[] */
  /* headers[own_from .. own_from + own_n): the request id and traceparent
   * the call made or checked itself, which the client need not check */
  size_t own_from, own_n;
  bool ctx_names; /* headers from own_from on are the context's, constant names */
  msvc_service_call_t *next_free; /* loop context's spare calls */
  /* From here on the call is not cleared when made: avoid[] is an empty
   * string, the rest is written before it is read. */
  char avoid[MSVC_LB_MAX_ID_LEN + 1]; /* endpoint of the last failure */
  uv_timer_t timer; /* initialised on first use (has_timer) */
  msvc_http_header_t inline_headers[INLINE_HEADERS];
  char text[INLINE_TEXT];
};

/* Spare calls a loop context keeps for its next calls: a call is about a
 * kilobyte, and clearing a fresh one cost more than the rest of starting
 * it. */
#define MAX_SPARE_CALLS 64

static void start_attempt(msvc_service_call_t *call);
static void start_attempt_at(msvc_service_call_t *call, uint64_t t_us);

static uint64_t now_us(void) { return uv_hrtime() / 1000; }

/* ---- requests --------------------------------------------------------------- */

/* The method msvc_service_request_init() sets: known to be a token. */
static const char default_method[] = "GET";

/* The length of s if it is fit to go into a request head (no CR or LF; a
 * name also non-empty, with no colon or space), else SIZE_MAX. strcspn()
 * looks at many bytes at a time (a loop took one), and where it stops at
 * the end of s it has measured s as well. */
static size_t text_len(const char *s, bool name) {
  size_t n;

  if (s == NULL)
    return SIZE_MAX;
  n = strcspn(s, name ? "\r\n: " : "\r\n");
  return s[n] == '\0' && !(name && n == 0) ? n : SIZE_MAX;
}

static bool header_text_ok(const char *s, bool name) { return text_len(s, name) != SIZE_MAX; }

static bool has_header(const msvc_service_request_t *req, const char *name) {
  size_t i;

  for (i = 0; i < req->nheaders; i++)
    if (msvc__strcasecmp(req->headers[i].name, name) == 0)
      return true;
  return false;
}

/* The request's own arguments, and the lengths of its method and target
 * (of the defaults when they are NULL) for the copy; the service name is
 * checked by the caller unless it is one the loop called already. */
static int validate(const msvc_service_request_t *req, size_t *method_len,
                    size_t *target_len) {
  size_t i;

  if (req == NULL || req->on_done == NULL)
    return MSVC_EINVAL;
  if (req->nheaders > 0 && req->headers == NULL)
    return MSVC_EINVAL;
  if (req->body == NULL && req->body_len > 0)
    return MSVC_EINVAL;
  *method_len = req->method == NULL || req->method == default_method
                    ? sizeof(default_method) - 1
                    : text_len(req->method, true);
  if (*method_len == SIZE_MAX)
    return MSVC_EINVAL;
  *target_len = req->target != NULL ? text_len(req->target, false) : 1;
  if (*target_len == SIZE_MAX || (req->target != NULL && req->target[0] != '/'))
    return MSVC_EINVAL;
  for (i = 0; i < req->nheaders; i++)
    if (!header_text_ok(req->headers[i].name, true) ||
        !header_text_ok(req->headers[i].value, false))
      return MSVC_EINVAL;
  return MSVC_OK;
}

/* A copy of s (len bytes) owned by the call: in its own text[] while that
 * has room. */
static char *keep_n(msvc_service_call_t *call, const char *s, size_t len) {
  char *p;

  if (len + 1 > INLINE_TEXT - call->text_used) {
    call->heap_text = true;
    return msvc__strndup(s, len);
  }
  p = call->text + call->text_used;
  memcpy(p, s, len);
  p[len] = '\0';
  call->text_used += len + 1;
  return p;
}

static void drop(msvc_service_call_t *call, const char *p) {
  uintptr_t a = (uintptr_t)p, lo = (uintptr_t)call->text;

  if (a < lo || a >= lo + INLINE_TEXT)
    msvc__free((char *)p);
}

static int push_header_n(msvc_service_call_t *call, const char *name, size_t name_len,
                         const char *value, size_t value_len) {
  msvc_http_header_t *h = &call->headers[call->nheaders];

  h->name = keep_n(call, name, name_len);
  h->value = keep_n(call, value, value_len);
  call->nheaders++;
  return h->name != NULL && h->value != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static int push_header(msvc_service_call_t *call, const char *name, const char *value) {
  return push_header_n(call, name, strlen(name), value, strlen(value));
}

/* A header of the call's context: its name is a constant, not copied. */
static int push_ctx_header(msvc_service_call_t *call, const char *name, const char *value,
                           size_t value_len) {
  msvc_http_header_t *h = &call->headers[call->nheaders];

  h->name = name;
  h->value = keep_n(call, value, value_len);
  call->nheaders++;
  return h->value != NULL ? MSVC_OK : MSVC_ENOMEM;
}

/* A fresh request id as the value of a context header, drawn straight into
 * the call's text when it has room. */
static int push_new_id(msvc_service_call_t *call) {
  char idbuf[33];
  msvc_http_header_t *h;

  if (33 > INLINE_TEXT - call->text_used) {
    msvc__hex_random(idbuf, 32);
    return push_ctx_header(call, MSVC_MW_REQUEST_ID_HEADER, idbuf, 32);
  }
  h = &call->headers[call->nheaders++];
  h->name = MSVC_MW_REQUEST_ID_HEADER;
  h->value = call->text + call->text_used;
  msvc__hex_random(call->text + call->text_used, 32);
  call->text_used += 33;
  return MSVC_OK;
}

/* The headers that tie the call to the request being served. */
/* A client span for the call, child of the request's server span; its
 * context is what the callee sees as its parent. */
static int client_span(msvc_service_call_t *call, msvc_tracer_t *tracer, const char *service,
                       const msvc_mw_trace_t *pt, const msvc_trace_ctx_t *within,
                       char tp[MSVC_MW_TRACEPARENT_LEN]) {
  msvc_trace_ctx_t parent;
  char name[160];

  if (within != NULL) {
    parent = *within; /* a span of the caller's own, e.g. a fan-out's */
  } else {
    memcpy(parent.trace_id, pt->trace_id, sizeof(parent.trace_id));
    memcpy(parent.span_id, pt->span_id, sizeof(parent.span_id));
    parent.flags = pt->flags;
    parent.remote = false;
  }
  snprintf(name, sizeof(name), "%s %s", call->method, service);
  if (msvc_trace_span_start(tracer, name, MSVC_SPAN_CLIENT, &parent, &call->span) != 0 ||
      call->span == NULL)
    return MSVC_ENOMEM;
  if (msvc_trace_span_sampled(call->span)) {
    msvc_trace_span_set_str(call->span, "http.request.method", call->method);
    msvc_trace_span_set_str(call->span, "peer.service", service);
    msvc_trace_span_set_str(call->span, "url.path", call->target);
  }
  return msvc_trace_traceparent_format(msvc_trace_span_ctx(call->span), tp,
                                       MSVC_MW_TRACEPARENT_LEN);
}

static int context_headers(msvc_service_call_t *call, const msvc_service_request_t *req,
                           msvc_tracer_t *tracer, const char *service,
                           const msvc_trace_ctx_t *within) {
  msvc_http_req_t *p = req->parent;
  const msvc_mw_trace_t *pt = p != NULL ? msvc_mw_trace(p) : NULL;
  const char *rid = p != NULL ? msvc_mw_request_id(p) : NULL;
  char tp[MSVC_MW_TRACEPARENT_LEN];
  msvc_mw_trace_t child;
  int r = MSVC_OK;

  call->own_from = call->nheaders;
  call->ctx_names = true;
  if (!has_header(req, MSVC_MW_REQUEST_ID_HEADER)) {
    size_t len = 0;

    if (rid == NULL && p != NULL)
      rid = msvc_http_req_header(p, MSVC_MW_REQUEST_ID_HEADER);
    if (rid == NULL || !msvc_mw_request_id_valid(rid, len = strlen(rid)))
      r = push_new_id(call);
    else
      r = push_ctx_header(call, MSVC_MW_REQUEST_ID_HEADER, rid, len);
    call->own_n = call->nheaders - call->own_from; /* checked, or made here */
  }
  /* A trace is continued, never started here: a call made outside any
   * request has no trace to belong to. */
  if (r == 0 && pt != NULL && !has_header(req, "traceparent") &&
      (tracer != NULL ? client_span(call, tracer, service, pt, within, tp) == 0
                      : msvc_mw_trace_child(pt, &child) == 0 &&
                            msvc_mw_traceparent_format(&child, tp, sizeof(tp)) == 0)) {
    r = push_ctx_header(call, "traceparent", tp, strlen(tp));
    call->own_n = call->nheaders - call->own_from; /* checked, or made here */
    if (r == 0 && msvc_mw_tracestate(p) != NULL &&
        !has_header(req, "tracestate"))
      r = push_ctx_header(call, "tracestate", msvc_mw_tracestate(p),
                          strlen(msvc_mw_tracestate(p)));
  }
  if (r == 0 && req->forward_auth && p != NULL && !has_header(req, "Authorization") &&
      msvc_http_req_header(p, "Authorization") != NULL)
    r = push_ctx_header(call, "Authorization", msvc_http_req_header(p, "Authorization"),
                        strlen(msvc_http_req_header(p, "Authorization")));
  return r;
}

/* A call with its fields cleared, from the loop context's spares when it
 * has one. */
static msvc_service_call_t *call_alloc(call_loop_t *lc) {
  msvc_service_call_t *call = lc->spare_calls;

  if (call != NULL) {
    lc->spare_calls = call->next_free;
    lc->nspare_calls--;
  } else if ((call = msvc__malloc(sizeof(*call))) == NULL) {
    return NULL;
  }
  memset(call, 0, offsetof(msvc_service_call_t, avoid));
  call->avoid[0] = '\0';
  return call;
}

void msvc__call_spares_free(call_loop_t *lc) {
  msvc_service_call_t *call;

  while ((call = lc->spare_calls) != NULL) {
    lc->spare_calls = call->next_free;
    msvc__free(call);
  }
  lc->nspare_calls = 0;
}

/* Releases what the call owns, then the call itself: kept as a spare for
 * the next call of its loop context while that one is open. */
static void call_free(msvc_service_call_t *call, call_loop_t *lc) {
  size_t i;

  if (call->heap_text) {
    for (i = 0; i < call->nheaders; i++) {
      if (!call->ctx_names || i < call->own_from) /* context names are constants */
        drop(call, call->headers[i].name);
      drop(call, call->headers[i].value);
    }
    drop(call, call->method);
    drop(call, call->target);
  }
  if (call->headers != call->inline_headers)
    msvc__free(call->headers);
  msvc__free(call->body);
  msvc_trace_span_end(call->span);
  if (!lc->closing && lc->nspare_calls < MAX_SPARE_CALLS) {
    call->next_free = lc->spare_calls;
    lc->spare_calls = call;
    lc->nspare_calls++;
    return;
  }
  msvc__free(call);
}

/* method_len and target_len: as validate() found them. */
static int copy_request(msvc_service_call_t *call, const msvc_service_request_t *req,
                        size_t method_len, size_t target_len, msvc_tracer_t *tracer,
                        const char *service, const msvc_trace_ctx_t *within) {
  size_t i;
  int r;

  call->method = keep_n(call, req->method != NULL ? req->method : default_method, method_len);
  call->target = keep_n(call, req->target != NULL ? req->target : "/", target_len);
  /* the caller's headers and at most four of the context's */
  call->headers = req->nheaders + 4 <= INLINE_HEADERS
                      ? call->inline_headers
                      : msvc__calloc(req->nheaders + 4, sizeof(*call->headers));
  if (call->method == NULL || call->target == NULL || call->headers == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < req->nheaders; i++)
    if ((r = push_header(call, req->headers[i].name, req->headers[i].value)) != 0)
      return r;
  if (req->body_len > 0) {
    call->body = msvc__malloc(req->body_len);
    if (call->body == NULL)
      return MSVC_ENOMEM;
    memcpy(call->body, req->body, req->body_len);
    call->body_len = req->body_len;
  }
  return context_headers(call, req, tracer, service, within);
}

/* ---- parent request ------------------------------------------------------------ */

static void on_parent_cancel(msvc_http_req_t *req, void *data) {
  parent_calls_t *pc = data;
  msvc__queue_t *q;

  (void)req;
  msvc__queue_foreach(q, &pc->calls)
    msvc_service_call_cancel(msvc__container_of(q, msvc_service_call_t, parent_node));
}

/* The request is released while calls made for it still run: they go on,
 * detached from it. */
static void free_parent_calls(void *data) {
  parent_calls_t *pc = data;

  while (!msvc__queue_empty(&pc->calls)) {
    msvc__queue_t *q = pc->calls.next;
    msvc_service_call_t *call = msvc__container_of(q, msvc_service_call_t, parent_node);
    msvc__queue_remove(q);
    call->linked_parent = false;
  }
  msvc__free(pc);
}

static int link_parent(msvc_service_call_t *call, msvc_http_req_t *parent) {
  static const char key[] = "msvc.service.calls";
  parent_calls_t *pc = msvc_http_req_get(parent, key);

  if (pc == NULL) {
    pc = msvc__calloc(1, sizeof(*pc));
    if (pc == NULL)
      return MSVC_ENOMEM;
    msvc__queue_init(&pc->calls);
    if (msvc_http_req_set(parent, key, pc, free_parent_calls) != 0)
      return MSVC_ENOMEM;
    msvc_http_req_on_cancel(parent, on_parent_cancel, pc);
  }
  msvc__queue_insert_tail(&pc->calls, &call->parent_node);
  call->linked_parent = true;
  return MSVC_OK;
}

/* ---- completion ------------------------------------------------------------------ */

static void call_release(msvc_service_call_t *call) {
  call_loop_t *lc = call->lc;

  msvc__queue_remove(&call->node);
  call_free(call, lc);
  msvc__call_loop_maybe_closed(lc);
}

static void on_call_closed(uv_handle_t *h) {
  call_release(msvc__container_of((uv_timer_t *)h, msvc_service_call_t, timer));
}

static void on_timer(uv_timer_t *timer);

static void arm(msvc_service_call_t *call, uint64_t ms) {
  if (!call->has_timer) {
    /* uv_timer_init() cannot fail on a live loop */
    uv_timer_init(call->lc->loop, &call->timer);
    call->has_timer = true;
  }
  uv_timer_start(&call->timer, on_timer, ms, 0);
}

static void span_outcome(msvc_service_call_t *call, int err, const msvc_http_response_t *res) {
  msvc_span_t *s = call->span;
  int status = res != NULL ? msvc_http_response_status(res) : 0;
  char code[16];

  call->span = NULL;
  if (err != 0)
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, msvc_strerror(err));
  else if (status >= 400)
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, NULL);
  if (msvc_trace_span_wanted(s)) {
    if (call->attempts > 1)
      msvc_trace_span_set_int(s, "http.request.resend_count", call->attempts - 1);
    if (status != 0)
      msvc_trace_span_set_int(s, "http.response.status_code", status);
    if (err != 0) {
      msvc_trace_span_set_str(s, "error.type", msvc_err_name(err));
    } else if (status >= 400) {
      snprintf(code, sizeof(code), "%d", status);
      msvc_trace_span_set_str(s, "error.type", code);
    }
  }
  msvc_trace_span_end(s);
}

/* status: res's, 0 without one; t_us: the clock when the outcome was known
 * (for the call's duration). */
static void finish_at(msvc_service_call_t *call, int err, const msvc_http_response_t *res,
                      int status, uint64_t t_us) {
  call->phase = PH_DONE;
  if (call->span != NULL)
    span_outcome(call, err, res);
  if (call->linked_parent) {
    msvc__queue_remove(&call->parent_node);
    call->linked_parent = false;
  }
  /* One count and one duration per call, with its final outcome; attempts
   * were counted as they ended. */
  if (err != MSVC_ECANCELED) {
    msvc__call_count(call->t, CALL_COUNT_REQUEST, err, status, call->last_sent);
    if (call->t->duration != NULL)
      msvc_metrics_histogram_observe(call->t->duration,
                                     (double)(t_us - call->t0_us) / 1e6);
  }
  call->on_done(err, res, call->data);
  if (call->has_timer)
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
  else
    call_release(call);
}

static void finish(msvc_service_call_t *call, int err, const msvc_http_response_t *res) {
  finish_at(call, err, res, res != NULL ? msvc_http_response_status(res) : 0, now_us());
}

static void on_timer(uv_timer_t *timer) {
  msvc_service_call_t *call = msvc__container_of(timer, msvc_service_call_t, timer);
  int ready;

  if (call->phase == PH_FINISH) {
    finish(call, call->pending_err, NULL);
    return;
  }
  if (call->cancelled || call->lc->closing) {
    finish(call, MSVC_ECANCELED, NULL);
    return;
  }
  if (call->phase == PH_PARK) {
    ready = atomic_load(&call->t->ready);
    if (ready == 0 && msvc_now_ms() < call->deadline_ms) {
      arm(call, PARK_POLL_MS);
      return;
    }
  }
  start_attempt(call);
}

/* Delivers an outcome known without a response, from the loop. */
static void finish_later(msvc_service_call_t *call, int err) {
  call->phase = PH_FINISH;
  call->pending_err = err;
  arm(call, 0);
}

/* ---- attempts ----------------------------------------------------------------------- */

static bool attempt_failed(int err, int status) {
  if (err == MSVC_ECANCELED)
    return false;
  return err != 0 || status >= 500;
}

/* The peer shed the request (429, or 503 OVERLOADED): it is overloaded,
 * not broken, so its breaker must not open on it, while the balancer and
 * a retry steer away from it. */
static bool peer_shed(int status, const msvc_http_response_t *res) {
  const char *body;
  size_t len;

  if (status == 429) return true;
  if (status != 503 || res == NULL) return false;
  body = msvc_http_response_body(res, &len);
  return body != NULL && len < 4096 &&
         memmem(body, len, "\"code\":\"OVERLOADED\"", 19) != NULL;
}

static void end_attempt(msvc_service_call_t *call, int err, int status, bool sent,
                        const msvc_http_response_t *res, uint64_t t_us) {
  call_endpoint_t *ep = call->ep;
  uint64_t dur_us = t_us - call->attempt_t0_us;
  msvc_breaker_outcome_t bo;
  /* A gRPC answer is a 200 whatever its status: the status decides. */
  msvc__grpc_peer_t g = err == 0 ? msvc__grpc_peer_outcome(res) : MSVC__GRPC_PEER_FINE;
  bool shed = err == 0 && (peer_shed(status, res) || g == MSVC__GRPC_PEER_OVERLOADED);

  if (err == MSVC_ECANCELED || shed)
    bo = MSVC_BREAKER_IGNORED;
  else
    bo = attempt_failed(err, status) || g == MSVC__GRPC_PEER_FAILED ? MSVC_BREAKER_FAILURE
                                                                    : MSVC_BREAKER_SUCCESS;
  msvc_breaker_record(ep->breaker, &call->permit, bo, dur_us / 1000, t_us / 1000);
  msvc_lb_done(call->t->lb, &call->ticket,
               bo == MSVC_BREAKER_FAILURE || shed ? MSVC_LB_FAILURE : MSVC_LB_SUCCESS,
               dur_us);
  if (ep->inflight != NULL)
    msvc_metrics_gauge_dec(ep->inflight);
  msvc__call_count(call->t, CALL_COUNT_ATTEMPT, err, status, sent);
  call->last_sent = sent;
  if (bo == MSVC_BREAKER_FAILURE || shed)
    snprintf(call->avoid, sizeof(call->avoid), "%s", ep->id);
  msvc__call_endpoint_unref(ep);
  call->ep = NULL;
}

/* Whether to go again after a failed attempt, and after how long; status
 * is res's (0 without one). */
static bool want_retry(msvc_service_call_t *call, int err, const msvc_http_response_t *res,
                       int status, bool sent, uint64_t now_ms, uint32_t *delay) {
  msvc_retry_attempt_t a;

  if (call->streamed || call->cancelled || call->lc->closing ||
      (!attempt_failed(err, status) && status != 429))
    return false;
  memset(&a, 0, sizeof(a));
  a.attempt = call->attempts;
  a.method = call->method;
  a.retryable = call->retryable;
  /* Refused, timed out while connecting, or a dead pooled connection: the
   * request never left, so another endpoint may have it whatever the
   * method. */
  a.not_sent = !sent;
  a.err = err;
  a.status = status;
  a.retry_after = res != NULL ? msvc_http_response_header(res, "Retry-After") : NULL;
  if (msvc_retry_check(call->t->caller->retry, &a, delay) != 1)
    return false;
  return now_ms + *delay < call->deadline_ms;
}

static void on_attempt_done(msvc_http_call_t *hc, int err, const msvc_http_response_t *res,
                            void *data) {
  msvc_service_call_t *call = data;
  /* the answer's status, read once: res may come with an error */
  int res_status = res != NULL ? msvc_http_response_status(res) : 0;
  int status = err == 0 ? res_status : 0;
  bool sent = msvc_http_call_sent(hc);
  uint32_t delay = 0;
  uint64_t now = now_us(); /* for the attempt, its retry and the call */

  call->hc = NULL;
  end_attempt(call, err, status, sent, err == 0 ? res : NULL, now);
  if (call->cancelled && err == 0)
    err = MSVC_ECANCELED;
  if (want_retry(call, err, res, res_status, sent, now / 1000, &delay)) {
    if (call->t->retries != NULL)
      msvc_metrics_counter_inc(call->t->retries);
    if (call->span != NULL) {
      char why[64];
      if (err != 0)
        snprintf(why, sizeof(why), "%s", msvc_err_name(err));
      else
        snprintf(why, sizeof(why), "status %d", status);
      msvc_trace_span_add_event(call->span, "retry", why);
    }
    call->phase = PH_BACKOFF;
    arm(call, delay);
    return;
  }
  finish_at(call, err, err == 0 ? res : NULL, err == 0 ? res_status : 0, now);
}

static void on_attempt_chunk(msvc_http_call_t *hc, const msvc_http_response_t *res,
                             const char *buf, size_t len, void *data) {
  msvc_service_call_t *call = data;

  call->streamed = true;
  if (call->on_chunk != NULL && !call->cancelled)
    call->on_chunk(hc, res, buf, len, call->data);
}

typedef struct held_s {
  msvc_lb_ticket_t tk;
  msvc_lb_outcome_t outcome;
} held_t;

/* Picks an endpoint whose breaker grants a permit, preferring one other
 * than the last that failed. Tickets passed over are held until the end so
 * that least_conn and p2c see them in flight and move on. */
static int pick(msvc_service_call_t *call, uint64_t now) {
  call_target_t *t = call->t;
  held_t held[MAX_PICKS];
  size_t nheld = 0, i;
  bool open_seen = false, avoided = false;
  int r = MSVC_ENO_ENDPOINTS;

  while (nheld < MAX_PICKS) {
    msvc_lb_ticket_t tk;
    call_endpoint_t *ep;

    r = msvc_lb_pick(t->lb, now, &tk);
    if (r != 0)
      break;
    ep = msvc__call_endpoint_find(t, tk.endpoint);
    if (ep == NULL) { /* left the set since the pick */
      held[nheld++] = (held_t){tk, MSVC_LB_SUCCESS};
      r = MSVC_ENO_ENDPOINTS;
      continue;
    }
    if (!avoided && call->avoid[0] != '\0' && strcmp(call->avoid, ep->id) == 0 &&
        t->neps > 1) {
      avoided = true;
      held[nheld++] = (held_t){tk, MSVC_LB_SUCCESS};
      msvc__call_endpoint_unref(ep);
      continue;
    }
    if (msvc_breaker_acquire(ep->breaker, now, &call->permit) != 0) {
      open_seen = true;
      held[nheld++] = (held_t){tk, MSVC_LB_FAILURE};
      msvc__call_endpoint_unref(ep);
      r = MSVC_EBREAKER_OPEN;
      continue;
    }
    call->ep = ep;
    call->ticket = tk;
    r = MSVC_OK;
    break;
  }
  for (i = 0; i < nheld; i++)
    msvc_lb_done(t->lb, &held[i].tk, held[i].outcome, 0);
  if (r != 0 && open_seen)
    r = MSVC_EBREAKER_OPEN;
  return r;
}

static int send_attempt(msvc_service_call_t *call, uint64_t now, uint64_t t_us) {
  msvc_http_request_t hr;
  uint64_t left = call->deadline_ms - now;
  int r;

  msvc_http_request_init(&hr);
  hr.method = call->method;
  hr.host = call->ep->host;
  hr.port = call->ep->port;
  hr.tls = atomic_load(&call->ep->tls);
  hr.target = call->target;
  hr.headers = call->headers;
  hr.nheaders = call->nheaders;
  hr.body = call->body;
  hr.body_len = call->body_len;
  hr.timeouts.connect_ms = (uint32_t)(left < 5000 ? left : 5000);
  hr.timeouts.total_ms = (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left);
  hr.retryable = call->retryable;
  hr.http2 = call->http2;
  hr.on_chunk = call->on_chunk != NULL ? on_attempt_chunk : NULL;
  hr.on_done = on_attempt_done;
  hr.data = call;
  call->attempt_t0_us = t_us;
  call->attempts++;
  if (call->ep->picks != NULL)
    msvc_metrics_counter_inc(call->ep->picks);
  if (call->ep->inflight != NULL)
    msvc_metrics_gauge_inc(call->ep->inflight);
  call->phase = PH_FLIGHT;
  r = msvc__http_client_request_own(call->lc->client, &hr, call->own_from, call->own_n,
                                    &call->hc);
  if (r != 0) {
    /* Refused by our own client (pool full, closing): not the endpoint's
     * fault, so neither its breaker nor the balancer counts it. */
    call->hc = NULL;
    msvc_breaker_record(call->ep->breaker, &call->permit, MSVC_BREAKER_IGNORED, 0, now);
    msvc_lb_done(call->t->lb, &call->ticket, MSVC_LB_SUCCESS, 0);
    if (call->ep->inflight != NULL)
      msvc_metrics_gauge_dec(call->ep->inflight);
    msvc__call_endpoint_unref(call->ep);
    call->ep = NULL;
  }
  return r;
}

static void start_attempt(msvc_service_call_t *call) { start_attempt_at(call, now_us()); }

/* t_us: the monotonic clock (msvc_now_ms()'s, in microseconds), read by
 * the caller. */
static void start_attempt_at(msvc_service_call_t *call, uint64_t t_us) {
  uint64_t now = t_us / 1000;
  int ready = atomic_load(&call->t->ready);
  int r;

  if (call->cancelled || call->lc->closing) {
    finish_later(call, MSVC_ECANCELED);
    return;
  }
  if (now >= call->deadline_ms) {
    finish_later(call, MSVC_ETIMEDOUT);
    return;
  }
  if (ready == 0) {
    call->phase = PH_PARK;
    arm(call, PARK_POLL_MS);
    return;
  }
  if (ready < 0) {
    finish_later(call, ready == MSVC_ECANCELED || ready == MSVC_ENOMEM ? ready
                                                                     : MSVC_ENO_ENDPOINTS);
    return;
  }
  r = pick(call, now);
  if (r == 0)
    r = send_attempt(call, now, t_us);
  if (r != 0)
    finish_later(call, r);
}

/* ---- API ------------------------------------------------------------------------------ */

void msvc_service_request_init(msvc_service_request_t *req) {
  if (req == NULL)
    return;
  memset(req, 0, sizeof(*req));
  req->method = default_method;
  req->target = "/";
}

int msvc__caller_call(msvc__caller_t *c, const char *service,
                      const msvc_service_request_t *req, msvc_http_chunk_fn on_chunk,
                      msvc_service_call_t **out) {
  return msvc__caller_call_within(c, service, req, on_chunk, NULL, out);
}

int msvc__caller_call_within(msvc__caller_t *c, const char *service,
                             const msvc_service_request_t *req, msvc_http_chunk_fn on_chunk,
                             const msvc_trace_ctx_t *within, msvc_service_call_t **out) {
  call_loop_t *lc;
  msvc_service_call_t *call;
  call_target_t *t;
  uint32_t timeout;
  uint64_t now;
  size_t method_len, target_len;
  int r;

  if (out != NULL)
    *out = NULL;
  if (c == NULL || service == NULL || (r = validate(req, &method_len, &target_len)) != 0)
    return MSVC_EINVAL;
  lc = msvc__call_loop_current(c);
  /* A name the loop called already was valid then. */
  t = lc != NULL ? msvc__call_target_recent(lc, service) : NULL;
  if (t == NULL && !msvc__call_name_valid(service))
    return MSVC_EINVAL;
  if (atomic_load(&c->closing))
    return MSVC_ESTATE;
  if (lc == NULL)
    return MSVC_ESTATE; /* a thread whose loop is not attached */
  call = call_alloc(lc);
  if (call == NULL)
    return MSVC_ENOMEM;
  call->t = t;
  r = copy_request(call, req, method_len, target_len, c->opts.tracer, service, within);
  if (r == 0 && call->t == NULL)
    r = msvc__call_target_get(c, lc, service, &call->t);
  if (r == 0 && req->parent != NULL)
    r = link_parent(call, req->parent);
  if (r != 0) {
    if (call->linked_parent)
      msvc__queue_remove(&call->parent_node);
    call_free(call, lc);
    return r;
  }
  timeout = req->timeout_ms != 0 ? req->timeout_ms : c->opts.call_timeout_ms;
  call->lc = lc;
  call->retryable = req->retryable || has_header(req, "Idempotency-Key");
  call->http2 = req->http2;
  call->on_done = req->on_done;
  call->on_chunk = on_chunk;
  call->data = req->data;
  /* One clock read for the start, the deadline and the first attempt. */
  call->t0_us = now_us();
  now = call->t0_us / 1000;
  call->deadline_ms = now + (timeout != 0 ? timeout : 10000);
  msvc__queue_insert_tail(&lc->calls, &call->node);
  msvc__retry_note_request_at(c->retry, now);
  if (out != NULL)
    *out = call;
  /* The first attempt goes out now; every outcome still arrives from the
   * loop (the client never completes inside its request function, and
   * failures known at once are deferred by finish_later()). */
  start_attempt_at(call, call->t0_us);
  return MSVC_OK;
}

int msvc_service_call(msvc_service_t *svc, const char *service,
                      const msvc_service_request_t *req, msvc_service_call_t **out) {
  if (out != NULL)
    *out = NULL;
  if (svc == NULL)
    return MSVC_EINVAL;
  if (msvc_service_state(svc) == MSVC_SERVICE_STOPPED)
    return MSVC_ESTATE;
  return msvc__caller_call(msvc__service_caller(svc), service, req,
                           req != NULL ? req->on_chunk : NULL, out);
}

void msvc_service_call_cancel(msvc_service_call_t *call) {
  if (call == NULL || call->cancelled || call->phase == PH_DONE ||
      call->phase == PH_FINISH)
    return;
  call->cancelled = true;
  if (call->hc != NULL)
    msvc_http_call_cancel(call->hc);
  else
    finish_later(call, MSVC_ECANCELED);
}

void msvc__call_cancel_all(call_loop_t *lc) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &lc->calls)
    msvc_service_call_cancel(msvc__container_of(q, msvc_service_call_t, node));
}

int msvc_service_res_upstream_error(msvc_http_res_t *res, const char *service, int err) {
  char msg[256];

  if (service == NULL)
    service = "a dependency";
  if (err == MSVC_ETIMEDOUT) {
    snprintf(msg, sizeof(msg), "The service %s did not answer in time.", service);
    return msvc_http_res_error(res, 504, "UPSTREAM_TIMEOUT", msg);
  }
  if (err == MSVC_EBREAKER_OPEN || err == MSVC_ENO_ENDPOINTS)
    snprintf(msg, sizeof(msg), "The service %s is unavailable (%s).", service,
             err == MSVC_ENO_ENDPOINTS ? "no instance" : "circuit open");
  else
    snprintf(msg, sizeof(msg), "The service %s is unavailable.", service);
  return msvc_http_res_error(res, 503, "UPSTREAM_UNAVAILABLE", msg);
}

bool msvc_service_dependency_failed(int err, int status) {
  if (err == MSVC_OK)
    return status >= 500;
  return err != MSVC_ECANCELED;
}

/* ---- discovery for the JWK Set fetcher ---------------------------------------------- */

typedef struct jwks_get_s {
  void (*done)(void *arg, int err, int status, const char *body, size_t len,
               const char *cache_control);
  void *arg;
} jwks_get_t;

static void on_jwks_done(int err, const msvc_http_response_t *res, void *data) {
  jwks_get_t *g = data;
  size_t len = 0;
  const char *body = NULL;

  if (err == 0)
    body = msvc_http_response_body(res, &len);
  g->done(g->arg, err, err == 0 ? msvc_http_response_status(res) : 0, body, len,
          err == 0 ? msvc_http_response_header(res, "Cache-Control") : NULL);
  msvc__free(g);
}

/* Splits "http://service[:port]/path" into the service name and target;
 * the port, if any, is ignored: the registry knows where instances are. */
static int split_service_url(const char *url, char *name, size_t cap, const char **target) {
  const char *h, *end;
  size_t n;

  if (url == NULL || strncmp(url, "http://", 7) != 0)
    return MSVC_EURI;
  h = url + 7;
  end = h + strcspn(h, ":/?#");
  n = (size_t)(end - h);
  if (n == 0 || n >= cap)
    return MSVC_EURI;
  memcpy(name, h, n);
  name[n] = '\0';
  if (*end == ':')
    end += strspn(end + 1, "0123456789") + 1;
  *target = *end == '/' ? end : "/";
  return msvc__call_name_valid(name) ? MSVC_OK : MSVC_EURI;
}

int msvc__caller_jwks_get(void *caller, const char *url, uint32_t timeout_ms,
                          void (*done)(void *arg, int err, int status,
                                       const char *body, size_t len,
                                       const char *cache_control),
                          void *arg, void **handle) {
  char name[MSVC_REGISTRY_NAME_MAX + 1];
  const char *target;
  msvc_service_request_t req;
  msvc_service_call_t *call;
  jwks_get_t *g;
  int r;

  if (caller == NULL || done == NULL)
    return MSVC_EINVAL;
  r = split_service_url(url, name, sizeof(name), &target);
  if (r != 0)
    return r;
  g = msvc__calloc(1, sizeof(*g));
  if (g == NULL)
    return MSVC_ENOMEM;
  g->done = done;
  g->arg = arg;
  msvc_service_request_init(&req);
  req.target = target;
  req.timeout_ms = timeout_ms;
  req.on_done = on_jwks_done;
  req.data = g;
  r = msvc__caller_call(caller, name, &req, NULL, &call);
  if (r != 0) {
    msvc__free(g);
    return r;
  }
  if (handle != NULL)
    *handle = call;
  return MSVC_OK;
}

void msvc__caller_jwks_cancel(void *handle) { msvc_service_call_cancel(handle); }
