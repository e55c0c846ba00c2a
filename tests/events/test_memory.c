/* The memory:// backend: every conformance scenario, and the handle's own
 * rules (arguments, state, close with messages outstanding, metrics). */
#include <msvc/metrics.h>

#include "conformance.h"

#define URI "memory://"

Test(events_memory, publish_and_consume, .timeout = 20) { conf_publish_consume(URI); }
Test(events_memory, no_stream, .timeout = 20) { conf_no_stream(URI); }
Test(events_memory, shared_durable, .timeout = 20) { conf_shared_durable(URI, 200); }
Test(events_memory, nack_redelivers, .timeout = 20) { conf_nack_redelivers(URI); }
Test(events_memory, poison_dead_letters, .timeout = 20) { conf_poison_dead_letters(URI); }
Test(events_memory, flow_control, .timeout = 20) { conf_flow_control(URI); }
Test(events_memory, unacked_go_to_other, .timeout = 20) { conf_unacked_go_to_other(URI); }
Test(events_memory, duplicate_id, .timeout = 20) { conf_duplicate_id(URI); }
Test(events_memory, oversized, .timeout = 20) { conf_oversized(URI); }

Test(events_memory, refuses_bad_arguments, .timeout = 10) {
  uv_loop_t loop;
  msvc_events_t *ev = NULL;
  msvc_events_sub_t *sub;
  msvc_events_sub_opts_t so;
  msvc_events_stream_opts_t st;
  msvc_events_opts_t o;
  char err[MSVC_ERRMSG_MAX];
  const char *subjects[1] = {"a..b"};
  msvc_event_t e = {.type = "bad subject"};

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_events_new(&loop, "kafka://x", NULL, &ev, err, sizeof(err)), MSVC_EURI);
  cr_assert(strstr(err, "kafka://x") != NULL, "%s", err);
  cr_assert_eq(msvc_events_new(&loop, "memory://x", NULL, &ev, err, sizeof(err)), MSVC_EURI);
  cr_assert_eq(msvc_events_new(NULL, URI, NULL, &ev, NULL, 0), MSVC_EINVAL);
  memset(&o, 0, sizeof(o));
  cr_assert_eq(msvc_events_new(&loop, URI, &o, &ev, err, sizeof(err)), MSVC_EINVAL,
               "options without their size");
  ev = open_events(&loop, URI, "/t");
  cr_assert_str_eq(msvc_events_backend(ev), "memory");
  cr_assert_eq(msvc_events_publish(ev, &e, NULL, NULL), MSVC_EINVAL);
  e = (msvc_event_t){.type = "ok", .data = "{", .data_len = 1};
  cr_assert_eq(msvc_events_publish(ev, &e, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_events_publish_envelope(ev, "a", "{}", 2, NULL, 0, NULL, NULL),
               MSVC_EEVENTS_ENVELOPE);
  msvc_events_stream_opts_init(&st);
  st.name = "has.dot";
  cr_assert_eq(msvc_events_stream_ensure(ev, &st, NULL, NULL), MSVC_EINVAL);
  st.name = "OK";
  st.subjects = subjects;
  st.subject_count = 1;
  cr_assert_eq(msvc_events_stream_ensure(ev, &st, NULL, NULL), MSVC_EINVAL);
  msvc_events_sub_opts_init(&so);
  so.stream = "S";
  so.subject = "a.>";
  cr_assert_eq(msvc_events_subscribe(ev, &so, got_handler, NULL, &sub), MSVC_EINVAL,
               "no durable");
  so.durable = "d";
  so.max_unacked = 0;
  cr_assert_eq(msvc_events_subscribe(ev, &so, got_handler, NULL, &sub), MSVC_EINVAL);
  close_events(&loop, ev);
  finish_loop(&loop);
}

Test(events_memory, ready_and_state, .timeout = 10) {
  uv_loop_t loop;
  msvc_events_t *ev;
  const char *detail = NULL;

  cr_assert_eq(uv_loop_init(&loop), 0);
  ev = open_events(&loop, URI, "/t");
  run_for(&loop, 20);
  cr_assert_eq(msvc_events_state(ev), MSVC_EVENTS_CONNECTED);
  cr_assert(msvc_events_ready(ev, &detail));
  cr_assert_str_eq(detail, "connected");
  close_events(&loop, ev);
  cr_assert_eq(msvc_events_state(NULL), MSVC_EVENTS_CLOSED);
  finish_loop(&loop);
}

/* A publish still awaiting its callback at close is told MSVC_ECLOSED or
 * its real outcome, exactly once; a message held across close is freed by
 * its settlement (ASan checks the memory). */
Test(events_memory, close_with_work_outstanding, .timeout = 10) {
  uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  pubrec_t p;
  msvc_event_t e = {.type = "t"};

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "cl");
  got_init(g, SETTLE_HOLD);
  ev = open_events(&loop, URI, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  subscribe(ev, &n, g, NULL);
  publish_n(&loop, ev, n.subject, 2, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 2, 5000));
  e.subject = n.subject;
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  close_events(&loop, ev);
  cr_assert_eq(p.calls, 1, "publish callback calls: %d", p.calls);
  cr_assert_eq(msvc_events_ack(g->held[0]), MSVC_ECLOSED);
  cr_assert_eq(msvc_events_nack(g->held[1], 0, NULL), MSVC_ECLOSED);
  finish_loop(&loop);
  free(g);
}

Test(events_memory, counts_in_metrics, .timeout = 10) {
  uv_loop_t loop;
  msvc_metrics_registry_t *reg;
  msvc_events_opts_t o;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  char *text;
  size_t len;
  char want[256];

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  names_init(&n, "mx");
  got_init(g, SETTLE_ACK);
  msvc_events_opts_init(&o);
  o.metrics = reg;
  cr_assert_eq(msvc_events_new(&loop, URI, &o, &ev, NULL, 0), MSVC_OK);
  ensure_stream(&loop, ev, n.stream, n.filter);
  subscribe(ev, &n, g, NULL);
  publish_n(&loop, ev, n.subject, 3, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 3, 5000));
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &text, &len), MSVC_OK);
  snprintf(want, sizeof(want), "msvc_events_published_total{subject=\"%s\",result=\"ok\"} 3",
           n.subject);
  cr_assert(strstr(text, want) != NULL, "%s", text);
  snprintf(want, sizeof(want), "msvc_events_acked_total{subject=\"%s\"} 3", n.subject);
  cr_assert(strstr(text, want) != NULL, "%s", text);
  snprintf(want, sizeof(want), "msvc_events_consumed_total{subject=\"%s\"} 3", n.subject);
  cr_assert(strstr(text, want) != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_events_publish_duration_seconds_bucket") != NULL);
  cr_assert(strstr(text, "msvc_events_consumer_lag{durable=") != NULL);
  msvc_free(text);
  close_events(&loop, ev);
  finish_loop(&loop);
  msvc_metrics_registry_free(reg);
  free(g);
}
