/* Producer and consumer spans of the events block (memory:// broker): one
 * trace across the broker, linked by the traceparent header. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/trace.h>

#include "events/fixture.h"
#include "events/conformance.h"
#include "trace/trace-internal.h"

/* Spans wait in the tracer's queue: the exporter posts only after a minute
 * (to a port nobody listens on), so the test reads them there. */
static msvc_tracer_t *holding_tracer(void) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;

  msvc_tracer_opts_init(&o);
  o.service_name = "events-test";
  o.endpoint = "http://127.0.0.1:9/v1/traces";
  o.delay_ms = 60000;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  return t;
}

static msvc_span_t *queued(msvc_tracer_t *t, msvc_span_kind_t kind) {
  msvc_span_t *found = NULL;

  /* The exporter never takes them (no full batch, a long delay): they are
   * still in the inbox, newest first. */
  for (msvc_span_t *s = atomic_load(&t->inbox); s != NULL; s = s->next)
    if (s->kind == kind && found == NULL)
      found = s;
  return found;
}

Test(trace_events, publish_and_consume_are_linked, .timeout = 20) {
  static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  uv_loop_t loop;
  msvc_events_opts_t o;
  msvc_events_t *ev;
  msvc_tracer_t *t = holding_tracer();
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  pubrec_t p;
  msvc_span_t *prod, *cons;
  msvc_events_header_t hdrs[1] = {{"traceparent", tp}};
  msvc_event_t e = {.type = "order.created", .data = "{\"id\":1}", .data_len = 8,
                    .headers = hdrs, .header_count = 1};
  char err[MSVC_ERRMSG_MAX], want[MSVC_TRACE_TRACEPARENT_LEN];

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "tr");
  got_init(g, SETTLE_ACK);
  msvc_events_opts_init(&o);
  o.source = "/order-service";
  o.tracer = t;
  cr_assert_eq(msvc_events_new(&loop, "memory://", &o, &ev, err, sizeof(err)), MSVC_OK, "%s", err);
  ensure_stream(&loop, ev, n.stream, n.filter);
  e.subject = n.subject;
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &p.calls, 1, 5000));
  subscribe(ev, &n, g, NULL);
  cr_assert(wait_count(&loop, &g->n, 1, 5000), "nothing delivered");

  prod = queued(t, MSVC_SPAN_PRODUCER);
  cons = queued(t, MSVC_SPAN_CONSUMER);
  cr_assert_not_null(prod, "no producer span");
  cr_assert_not_null(cons, "no consumer span");
  cr_assert_str_eq(prod->ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  cr_assert_str_eq(prod->parent_id, "00f067aa0ba902b7");
  cr_assert_str_eq(cons->ctx.trace_id, prod->ctx.trace_id);
  cr_assert_str_eq(cons->parent_id, prod->ctx.span_id, "consumer is the producer's child");
  cr_assert_eq(cons->status, MSVC_SPAN_STATUS_UNSET);
  cr_assert_not_null(strstr(prod->name, " publish"));
  cr_assert_not_null(strstr(cons->name, " process"));
  /* the handler saw the consumer span's context: passing it on continues
   * the trace from there */
  msvc_trace_traceparent_format(&cons->ctx, want, sizeof(want));
  cr_assert_str_eq(g->traceparent, want);

  close_events(&loop, ev);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_tracer_shutdown(t, 0);
  msvc_tracer_free(t);
  free(g);
}

Test(trace_events, no_traceparent_no_span, .timeout = 20) {
  uv_loop_t loop;
  msvc_events_opts_t o;
  msvc_events_t *ev;
  msvc_tracer_t *t = holding_tracer();
  msvc_tracer_stats_t st;
  names_t n;
  pubrec_t p;
  msvc_event_t e = {.type = "order.created", .data = "{}", .data_len = 2};
  char err[MSVC_ERRMSG_MAX];

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "tn");
  msvc_events_opts_init(&o);
  o.tracer = t;
  cr_assert_eq(msvc_events_new(&loop, "memory://", &o, &ev, err, sizeof(err)), MSVC_OK);
  ensure_stream(&loop, ev, n.stream, n.filter);
  e.subject = n.subject;
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &p.calls, 1, 5000));
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.started, 0);
  close_events(&loop, ev);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_tracer_free(t);
}
