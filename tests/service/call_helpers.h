/*
 * Scaffolding for the tests of calls by name: a private loop that runs the
 * caller, a memory registry and a few plain HTTP servers standing in for the
 * instances of a called service, plus a bounded load generator.
 */
#ifndef TEST_CALL_HELPERS_H
#define TEST_CALL_HELPERS_H

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/http.h>
#include <msvc/middleware.h>
#include <msvc/registry.h>
#include <msvc/service.h>

#include "service/call-internal.h"

#define H_MAX_INST 4

typedef struct harness_s harness_t;

typedef struct inst_s {
  harness_t *h;
  msvc_http_server_t *srv;
  int port;
  uint32_t delay_ms;
  int hits;
  int drips_cut; /* /drip answers that stopped early, their client gone */
  bool lease_seen;
  int lease_status;
  /* what the last request carried (for propagation checks) */
  char seen_rid[160];
  char seen_tp[80];
  char seen_auth[80];
} inst_t;

struct harness_s {
  uv_loop_t loop;
  uv_timer_t tick;
  msvc_registry_t *reg;
  msvc_metrics_registry_t *metrics;
  msvc__caller_t *caller;
  char svc[64];
  inst_t inst[H_MAX_INST];
  int ninst;
  int delayed; /* delayed answers still pending */
  bool caller_closed;
};

/* ---- instances ------------------------------------------------------------ */

typedef struct delayed_s {
  uv_timer_t t;
  msvc_http_res_t *res;
  inst_t *in;
} delayed_t;

static inline void h__delayed_closed(uv_handle_t *hd) {
  delayed_t *d = hd->data;
  d->in->h->delayed--;
  free(d);
}

static inline void h__answer(msvc_http_res_t *res, inst_t *in) {
  char body[64];
  int n = snprintf(body, sizeof(body), "hello %d", in->port);

  msvc_http_res_header(res, "X-Port", body + 6);
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static inline void h__on_delay(uv_timer_t *t) {
  delayed_t *d = t->data;

  h__answer(d->res, d->in);
  uv_close((uv_handle_t *)&d->t, h__delayed_closed);
}

static inline void h__copy_header(msvc_http_req_t *req, const char *name, char *out, size_t cap) {
  const char *v = msvc_http_req_header(req, name);
  snprintf(out, cap, "%s", v != NULL ? v : "");
}

static inline void h__hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;

  in->hits++;
  h__copy_header(req, "X-Request-Id", in->seen_rid, sizeof(in->seen_rid));
  h__copy_header(req, "traceparent", in->seen_tp, sizeof(in->seen_tp));
  h__copy_header(req, "Authorization", in->seen_auth, sizeof(in->seen_auth));
  if (in->delay_ms > 0) {
    delayed_t *d = calloc(1, sizeof(*d));
    cr_assert_not_null(d);
    d->res = res;
    d->in = in;
    d->t.data = d;
    uv_timer_init(&in->h->loop, &d->t);
    uv_timer_start(&d->t, h__on_delay, in->delay_ms, 0);
    in->h->delayed++;
    return;
  }
  h__answer(res, in);
}

/* Echoes what arrived, streamed in three pieces, for the proxy test. */
static inline void h__echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char line[512];
  const char *names[] = {"X-Forwarded-For", "X-Request-Id", "traceparent",
                         "Authorization", "X-Hop", "X-Custom", "Connection"};
  size_t i, blen = 0;
  const char *body = msvc_http_req_body(req, &blen);

  (void)data;
  msvc_http_res_header(res, "X-Up", "1");
  msvc_http_res_header(res, "Keep-Alive", "timeout=5");
  cr_assert_eq(msvc_http_res_start(res, 201, "text/plain"), MSVC_OK);
  snprintf(line, sizeof(line), "%s %s\n", msvc_http_req_method(req), msvc_http_req_target(req));
  msvc_http_res_write(res, line, strlen(line));
  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    const char *v = msvc_http_req_header(req, names[i]);
    snprintf(line, sizeof(line), "%s=%s\n", names[i], v != NULL ? v : "-");
    msvc_http_res_write(res, line, strlen(line));
  }
  snprintf(line, sizeof(line), "body=%.*s\n", (int)blen, body != NULL ? body : "");
  msvc_http_res_write(res, line, strlen(line));
  msvc_http_res_end(res);
}

/* Streams 40 pieces, one every 25 ms, and stops early once its client is
 * gone (a write then fails). */
typedef struct drip_s {
  uv_timer_t t;
  msvc_http_res_t *res;
  inst_t *in;
  int sent;
} drip_t;

static inline void h__drip_closed(uv_handle_t *hd) {
  drip_t *d = hd->data;
  d->in->h->delayed--;
  free(d);
}

static inline void h__drip_tick(uv_timer_t *t) {
  drip_t *d = t->data;
  char piece[32];
  int n = snprintf(piece, sizeof(piece), "piece %d\n", d->sent);

  if (d->sent == 40 || msvc_http_res_write(d->res, piece, (size_t)n) != MSVC_OK) {
    d->in->drips_cut += d->sent < 40;
    msvc_http_res_end(d->res);
    uv_close((uv_handle_t *)&d->t, h__drip_closed);
    return;
  }
  d->sent++;
}

static inline void h__drip(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;
  drip_t *d = calloc(1, sizeof(*d));

  (void)req;
  cr_assert_not_null(d);
  in->hits++;
  d->res = res;
  d->in = in;
  d->t.data = d;
  uv_timer_init(&in->h->loop, &d->t);
  uv_timer_start(&d->t, h__drip_tick, 25, 25);
  in->h->delayed++;
  cr_assert_eq(msvc_http_res_start(res, 200, "text/plain"), MSVC_OK);
}

/* 83 bytes, as the example upstream announced. */
#define H_DOC                                                                   \
  "{\"id\":71234,\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\","         \
  "\"created\":\"2024-01-02\"}"

static inline void h__doc(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  inst_t *in = data;

  (void)req;
  in->hits++;
  msvc_http_res_send(res, 200, "application/json", H_DOC, strlen(H_DOC));
}

#define H_JWKS \
  "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"alg\":\"HS256\"," \
  "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}"

static inline void h__jwks(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_header(res, "Cache-Control", "max-age=300");
  msvc_http_res_send(res, 200, "application/json", H_JWKS, strlen(H_JWKS));
}

static inline void h__listen(inst_t *in, int port) {
  cr_assert_eq(msvc_http_server_new(&in->h->loop, NULL, &in->srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "GET", "/hello", h__hello, in, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "*", "/echo/*", h__echo, in, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "GET", "/doc", h__doc, in, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "GET", "/drip", h__drip, in, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(in->srv, "GET", "/.well-known/jwks.json", h__jwks, in,
                                      NULL),
               MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(in->srv, "127.0.0.1", port), MSVC_OK);
  in->port = msvc_http_server_port(in->srv);
}

static inline void h__on_lease(msvc_registry_lease_t *l, int status, void *data) {
  inst_t *in = data;
  (void)l;
  in->lease_seen = true;
  in->lease_status = status;
}

/* ---- a raw instance that cuts every request it reads ---------------------- */

/* Reads each request head whole, then resets the connection: the request
 * went out and was cut before any answer. */
typedef struct cutter_s {
  uv_tcp_t listener;
  int port;
  int requests;      /* request heads read before the cut */
  const char *reply; /* written before the cut when set */
} cutter_t;

typedef struct cutter_conn_s {
  uv_tcp_t tcp;
  cutter_t *cut;
  char tail[4];
  bool closing;
} cutter_conn_t;

static inline void h__cutter_freed(uv_handle_t *hd) { free(hd->data); }

static inline void h__cutter_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b) {
  static char buf[16384];
  (void)hd;
  (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

static inline void h__cutter_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  cutter_conn_t *cc = s->data;
  ssize_t i;

  if (cc->closing)
    return;
  if (n < 0) {
    cc->closing = true;
    uv_close((uv_handle_t *)&cc->tcp, h__cutter_freed);
    return;
  }
  for (i = 0; i < n; i++) {
    memmove(cc->tail, cc->tail + 1, 3);
    cc->tail[3] = b->base[i];
    if (memcmp(cc->tail, "\r\n\r\n", 4) == 0) {
      cc->cut->requests++;
      cc->closing = true;
      if (cc->cut->reply != NULL) {
        uv_buf_t rb = uv_buf_init((char *)cc->cut->reply, (unsigned)strlen(cc->cut->reply));
        cr_assert_eq(uv_try_write((uv_stream_t *)&cc->tcp, &rb, 1), (int)rb.len);
        uv_close((uv_handle_t *)&cc->tcp, h__cutter_freed);
        return;
      }
      uv_tcp_close_reset(&cc->tcp, h__cutter_freed);
      return;
    }
  }
}

static inline void h__cutter_accept(uv_stream_t *l, int status) {
  cutter_t *cut = l->data;
  cutter_conn_t *cc = calloc(1, sizeof(*cc));

  cr_assert_eq(status, 0);
  cr_assert_not_null(cc);
  cc->cut = cut;
  uv_tcp_init(l->loop, &cc->tcp);
  cc->tcp.data = cc;
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&cc->tcp), 0);
  uv_read_start((uv_stream_t *)&cc->tcp, h__cutter_alloc, h__cutter_read);
}

static inline void h_cutter_start(uv_loop_t *loop, cutter_t *cut) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof(ss);

  memset(cut, 0, sizeof(*cut));
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_init(loop, &cut->listener), 0);
  cut->listener.data = cut;
  cr_assert_eq(uv_tcp_bind(&cut->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&cut->listener, 64, h__cutter_accept), 0);
  uv_tcp_getsockname(&cut->listener, (struct sockaddr *)&ss, &len);
  cut->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static inline void h_cutter_stop(cutter_t *cut) { uv_close((uv_handle_t *)&cut->listener, NULL); }

/* ---- running the loop ------------------------------------------------------- */

static inline void h__tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until pred(arg) holds or ms have passed; returns pred's
 * last value. */
static inline bool h_run_until(harness_t *h, bool (*pred)(void *), void *arg, uint64_t ms) {
  uint64_t end = msvc_now_ms() + ms;

  uv_timer_start(&h->tick, h__tick, 2, 2);
  while (!pred(arg) && msvc_now_ms() < end)
    uv_run(&h->loop, UV_RUN_ONCE);
  uv_timer_stop(&h->tick);
  return pred(arg);
}

static inline bool h__lease_seen(void *arg) { return ((inst_t *)arg)->lease_seen; }

static inline inst_t *h_add_instance_as(harness_t *h, const char *svc, uint32_t delay_ms) {
  inst_t *in;
  msvc_registry_instance_t ri;

  cr_assert_lt(h->ninst, H_MAX_INST);
  in = &h->inst[h->ninst++];
  in->h = h;
  in->delay_ms = delay_ms;
  h__listen(in, 0);
  msvc_registry_instance_init(&ri);
  ri.service = svc;
  ri.address = "127.0.0.1";
  ri.port = (uint16_t)in->port;
  ri.weight = 100;
  cr_assert_eq(msvc_registry_register(h->reg, &ri, 5000, h__on_lease, in, NULL), MSVC_OK);
  cr_assert(h_run_until(h, h__lease_seen, in, 5000), "registration not seen");
  cr_assert_eq(in->lease_status, MSVC_OK);
  return in;
}

static inline inst_t *h_add_instance(harness_t *h, uint32_t delay_ms) {
  return h_add_instance_as(h, h->svc, delay_ms);
}

typedef struct h_lease_s {
  bool seen;
  int status;
  msvc_registry_lease_t *lease;
} h_lease_t;

static inline void h__on_port_lease(msvc_registry_lease_t *l, int status, void *data) {
  h_lease_t *hl = data;
  (void)l;
  hl->seen = true;
  hl->status = status;
}

static inline bool h__port_lease_seen(void *arg) { return ((h_lease_t *)arg)->seen; }

/* Registers 127.0.0.1:port under the harness's service, whatever listens
 * there (a new registration, with a new instance id, each time). */
static inline void h_register_port(harness_t *h, int port, h_lease_t *hl) {
  msvc_registry_instance_t ri;

  memset(hl, 0, sizeof(*hl));
  msvc_registry_instance_init(&ri);
  ri.service = h->svc;
  ri.address = "127.0.0.1";
  ri.port = (uint16_t)port;
  ri.weight = 100;
  cr_assert_eq(msvc_registry_register(h->reg, &ri, 5000, h__on_port_lease, hl, &hl->lease),
               MSVC_OK);
  cr_assert(h_run_until(h, h__port_lease_seen, hl, 5000), "registration not seen");
  cr_assert_eq(hl->status, MSVC_OK);
}

/* Gone at once: every connection cut, the port closed, still registered. */
static inline void h_kill(inst_t *in) {
  msvc_http_server_close(in->srv, NULL, NULL);
  in->srv = NULL;
}

static inline void h_restart(inst_t *in) { h__listen(in, in->port); }

static inline void h_init(harness_t *h, const char *svc, msvc_lb_policy_t policy,
                   uint64_t open_ms) {
  msvc__caller_opts_t co;

  memset(h, 0, sizeof(*h));
  snprintf(h->svc, sizeof(h->svc), "%s", svc);
  cr_assert_eq(uv_loop_init(&h->loop), 0);
  cr_assert_eq(uv_timer_init(&h->loop, &h->tick), 0);
  cr_assert_eq(msvc_registry_new(&h->loop, "memory://", NULL, &h->reg), MSVC_OK);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &h->metrics), MSVC_OK);
  memset(&co, 0, sizeof(co));
  co.loop = &h->loop;
  co.registry = h->reg;
  co.metrics = h->metrics;
  co.policy = policy;
  msvc_breaker_opts_init(&co.breaker);
  co.breaker.window_type = MSVC_BREAKER_WINDOW_COUNT;
  co.breaker.window_calls = 20;
  co.breaker.minimum_calls = 10;
  co.breaker.failure_rate_threshold = 50;
  co.breaker.wait_in_open_ms = open_ms;
  co.breaker.wait_in_open_max_ms = open_ms * 2;
  co.breaker.permitted_calls_in_half_open = 3;
  msvc_retry_opts_init(&co.retry);
  co.call_timeout_ms = 5000;
  co.self_name = "tester";
  cr_assert_eq(msvc__caller_new(&co, &h->caller), MSVC_OK);
}

static inline void h__caller_closed(void *data) { ((harness_t *)data)->caller_closed = true; }
static inline bool h__is_closed(void *arg) { return ((harness_t *)arg)->caller_closed; }
static inline bool h__no_delayed(void *arg) { return ((harness_t *)arg)->delayed == 0; }

static inline void h_close(harness_t *h) {
  int i;

  cr_assert(h_run_until(h, h__no_delayed, h, 10000), "delayed answers still pending");
  msvc__caller_close(h->caller, h__caller_closed, h);
  cr_assert(h_run_until(h, h__is_closed, h, 5000), "caller did not close");
  for (i = 0; i < h->ninst; i++)
    if (h->inst[i].srv != NULL)
      msvc_http_server_close(h->inst[i].srv, NULL, NULL);
  msvc_registry_close(h->reg, NULL, NULL);
  uv_close((uv_handle_t *)&h->tick, NULL);
  cr_assert_eq(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
  msvc__caller_free(h->caller);
  cr_assert_eq(uv_loop_close(&h->loop), 0, "a handle leaked");
  msvc_metrics_registry_free(h->metrics);
}

/* ---- metrics ---------------------------------------------------------------------- */

/* msvc_http_client_requests_total{service,status}: calls, final outcome. */
static inline double h_requests(harness_t *h, const char *status) {
  const char *v[2] = {h->svc, status};
  msvc_metrics_counter_t *c;
  cr_assert_eq(msvc_metrics_counter_get(h->caller->f_requests, v, 2, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

/* msvc_http_client_attempts_total{service,status}. */
static inline double h_attempts(harness_t *h, const char *status) {
  const char *v[2] = {h->svc, status};
  msvc_metrics_counter_t *c;
  cr_assert_eq(msvc_metrics_counter_get(h->caller->f_attempts, v, 2, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

static inline void h_ep(const inst_t *in, char *out, size_t cap) {
  snprintf(out, cap, "127.0.0.1:%d", in->port);
}

static inline double h_breaker_state(harness_t *h, const inst_t *in) {
  char ep[32];
  const char *v[2] = {h->svc, ep};
  msvc_metrics_gauge_t *g;

  h_ep(in, ep, sizeof(ep));
  cr_assert_eq(msvc_metrics_gauge_get(h->caller->f_state, v, 2, &g), MSVC_OK);
  return msvc_metrics_gauge_value(g);
}

static inline double h_transitions(harness_t *h, const inst_t *in, msvc_breaker_state_t to) {
  char ep[32];
  const char *v[3] = {h->svc, ep, msvc_breaker_state_name(to)};
  msvc_metrics_counter_t *c;

  h_ep(in, ep, sizeof(ep));
  cr_assert_eq(msvc_metrics_counter_get(h->caller->f_transitions, v, 3, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

static inline double h_picks(harness_t *h, const inst_t *in) {
  char ep[32];
  const char *v[2] = {h->svc, ep};
  msvc_metrics_counter_t *c;

  h_ep(in, ep, sizeof(ep));
  cr_assert_eq(msvc_metrics_counter_get(h->caller->f_picks, v, 2, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

/* ---- load -------------------------------------------------------------------------- */

typedef struct load_s {
  harness_t *h;
  const char *target;
  uint32_t timeout_ms;
  int concurrency;
  int total;   /* stop starting calls after this many */
  int started;
  int done;
  int ok;      /* err 0 and status 200 */
  int failed;
  int last_err;
  int last_status;
  int by_inst[H_MAX_INST];
  uint64_t max_fail_ms; /* slowest failed call */
  void (*on_each)(struct load_s *l);
} load_t;

typedef struct load_call_s {
  load_t *l;
  uint64_t t0;
} load_call_t;

static inline void load_start_one(load_t *l);

static inline void load__done(int err, const msvc_http_response_t *res, void *data) {
  load_call_t *lc = data;
  load_t *l = lc->l;
  int status = res != NULL ? msvc_http_response_status(res) : 0;
  uint64_t took = msvc_now_ms() - lc->t0;
  int i;

  free(lc);
  l->done++;
  if (err == 0 && status == 200) {
    const char *port = msvc_http_response_header(res, "X-Port");
    l->ok++;
    for (i = 0; port != NULL && i < l->h->ninst; i++)
      if (l->h->inst[i].port == atoi(port))
        l->by_inst[i]++;
  } else {
    l->failed++;
    l->last_err = err;
    l->last_status = status;
    if (took > l->max_fail_ms)
      l->max_fail_ms = took;
  }
  if (l->on_each != NULL)
    l->on_each(l);
  if (l->started < l->total)
    load_start_one(l);
}

static inline void load_start_one(load_t *l) {
  msvc_service_request_t req;
  load_call_t *lc = calloc(1, sizeof(*lc));

  cr_assert_not_null(lc);
  lc->l = l;
  lc->t0 = msvc_now_ms();
  msvc_service_request_init(&req);
  req.target = l->target;
  req.timeout_ms = l->timeout_ms;
  req.on_done = load__done;
  req.data = lc;
  l->started++;
  cr_assert_eq(msvc__caller_call(l->h->caller, l->h->svc, &req, NULL, NULL), MSVC_OK);
}

static inline bool load__finished(void *arg) {
  load_t *l = arg;
  return l->done == l->started && l->started >= l->total;
}

/* Runs total calls, concurrency at a time, within ms. */
static inline void load_run(load_t *l, uint64_t ms) {
  int i;

  for (i = 0; i < l->concurrency && l->started < l->total; i++)
    load_start_one(l);
  cr_assert(h_run_until(l->h, load__finished, l, ms), "load did not finish: %d of %d",
            l->done, l->total);
}

#endif /* TEST_CALL_HELPERS_H */
