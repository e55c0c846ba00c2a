/* Spans, sampling decisions and the OTLP JSON encoding, with an injected
 * clock and no exporter thread. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/trace.h>

#include "msvc-internal.h"
#include "trace/trace-internal.h"

static uint64_t fake_now;
static uint64_t fake_clock(void *data) {
  (void)data;
  return fake_now;
}

static msvc_tracer_t *tracer(double ratio, uint32_t slow_ms) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;

  msvc_tracer_opts_init(&o);
  o.service_name = "svc";
  o.service_version = "1.2.3";
  o.instance_id = "inst-1";
  o.sample_ratio = ratio;
  o.slow_ms = slow_ms;
  o.clock = fake_clock;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  return t;
}

static msvc_span_t *run(msvc_tracer_t *t, const msvc_trace_ctx_t *parent, uint64_t dur_ms,
                        bool error) {
  msvc_span_t *s;

  fake_now = 1000000000000ull;
  cr_assert_eq(msvc_trace_span_start(t, "op", MSVC_SPAN_INTERNAL, parent, &s), MSVC_OK);
  fake_now += dur_ms * 1000000ull;
  if (error)
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, "boom");
  return s;
}

static uint64_t kept(msvc_tracer_t *t) {
  msvc_tracer_stats_t st;
  msvc_tracer_stats(t, &st);
  return st.kept;
}

Test(trace_span, options_checked) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;

  msvc_tracer_opts_init(&o);
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL); /* no name */
  o.service_name = "x";
  o.sample_ratio = 1.5;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL);
  o.sample_ratio = 0.5;
  o.endpoint = "https://collector:4318/v1/traces";
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL);
  o.endpoint = "http://:4318";
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL);
  o.endpoint = NULL;
  o.resource_attrs = "novalue";
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL);
}

Test(trace_span, off_tracer_is_a_no_op) {
  msvc_span_t *s = (msvc_span_t *)1;

  cr_assert_eq(msvc_trace_span_start(NULL, "x", MSVC_SPAN_INTERNAL, NULL, &s), MSVC_OK);
  cr_assert_null(s);
  cr_assert_eq(msvc_trace_span_set_str(NULL, "k", "v"), MSVC_OK);
  cr_assert_eq(msvc_trace_span_add_event(NULL, "e", NULL), MSVC_OK);
  cr_assert_null(msvc_trace_span_ctx(NULL));
  msvc_trace_span_end(NULL);
}

Test(trace_span, parent_based_and_ratio) {
  msvc_tracer_t *none = tracer(0.0, 0), *all = tracer(1.0, 0);
  msvc_trace_ctx_t p = {"0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, true};
  msvc_span_t *s;
  int i;

  /* ratio 0: roots are never sampled, a sampled parent still is followed */
  for (i = 0; i < 100; i++)
    msvc_trace_span_end(run(none, NULL, 1, false));
  cr_assert_eq(kept(none), 0);
  s = run(none, &p, 1, false);
  cr_assert(msvc_trace_span_sampled(s));
  cr_assert_str_eq(msvc_trace_span_ctx(s)->trace_id, p.trace_id);
  cr_assert_str_eq(s->parent_id, p.span_id);
  cr_assert_str_neq(msvc_trace_span_ctx(s)->span_id, p.span_id);
  msvc_trace_span_end(s);
  cr_assert_eq(kept(none), 1);
  /* ratio 1 with an unsampled parent: not kept */
  p.flags = 0;
  msvc_trace_span_end(run(all, &p, 1, false));
  cr_assert_eq(kept(all), 0);
  msvc_trace_span_end(run(all, NULL, 1, false));
  cr_assert_eq(kept(all), 1);
  msvc_tracer_free(none);
  msvc_tracer_free(all);
}

Test(trace_span, ratio_is_roughly_respected) {
  msvc_tracer_t *t = tracer(0.1, 0);
  int i;

  for (i = 0; i < 20000; i++)
    msvc_trace_span_end(run(t, NULL, 0, false));
  cr_assert(kept(t) > 1500 && kept(t) < 2500, "kept %llu of 20000",
            (unsigned long long)kept(t));
  msvc_tracer_free(t);
}

Test(trace_span, errors_and_slow_spans_are_always_kept) {
  msvc_tracer_t *t = tracer(0.0, 250);

  msvc_trace_span_end(run(t, NULL, 249, false));
  cr_assert_eq(kept(t), 0);
  msvc_trace_span_end(run(t, NULL, 250, false));
  cr_assert_eq(kept(t), 1);
  msvc_trace_span_end(run(t, NULL, 1, true));
  cr_assert_eq(kept(t), 2);
  msvc_tracer_free(t);
  t = tracer(0.0, 0); /* slow keep off */
  msvc_trace_span_end(run(t, NULL, 100000, false));
  cr_assert_eq(kept(t), 0);
  msvc_tracer_free(t);
}

Test(trace_span, attributes_and_events_are_bounded) {
  msvc_tracer_t *t = tracer(1.0, 0);
  msvc_span_t *s = run(t, NULL, 1, false);
  char k[16];
  int i;

  for (i = 0; i < MSVC_TRACE_MAX_ATTRS; i++) {
    snprintf(k, sizeof(k), "k%d", i);
    cr_assert_eq(msvc_trace_span_set_int(s, k, i), MSVC_OK);
  }
  cr_assert_eq(msvc_trace_span_set_str(s, "one.more", "v"), MSVC_ERANGE);
  cr_assert_eq(msvc_trace_span_set_str(s, "k3", "replaced"), MSVC_OK);
  cr_assert_eq(s->attrs[3].type, MSVC__ATTR_STR);
  for (i = 0; i < MSVC_TRACE_MAX_EVENTS; i++)
    cr_assert_eq(msvc_trace_span_add_event(s, "e", NULL), MSVC_OK);
  cr_assert_eq(msvc_trace_span_add_event(s, "e", "x"), MSVC_ERANGE);
  cr_assert_eq(s->dropped_attrs, 1);
  cr_assert_eq(s->dropped_events, 1);
  msvc_trace_span_end(s);
  msvc_tracer_free(t);
}

Test(trace_span, json_encoding) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;
  msvc_trace_ctx_t p = {"0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, true};
  msvc_span_t *s;
  msvc__buf_t b;

  msvc_tracer_opts_init(&o);
  o.service_name = "svc \"q\"";
  o.service_version = "1.2.3";
  o.instance_id = "inst-1";
  o.resource_attrs = "deployment.environment=prod,team=a%2Cb, service.name=ignored";
  o.clock = fake_clock;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  fake_now = 1700000000123456789ull;
  cr_assert_eq(msvc_trace_span_start(t, "GET /users/:id", MSVC_SPAN_SERVER, &p, &s), 0);
  msvc_trace_span_set_str(s, "http.route", "/users/:id");
  msvc_trace_span_set_int(s, "http.response.status_code", -5);
  msvc_trace_span_set_bool(s, "b", true);
  msvc_trace_span_set_double(s, "d", 0.5);
  msvc_trace_span_set_str(s, "ctl\t", "a\x01\x7f\"\\b\xc3\xa9");
  /* Longer than a word: the escapes sit past the first eight bytes. */
  msvc_trace_span_set_str(s, "long.key.name", "0123456789abcdef\"ghij\x1f\xc3\xa9\xc3\xa9");
  msvc_trace_span_set_str(s, "long.clean", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 ~ spaces and more");
  fake_now += 1000;
  msvc_trace_span_add_event(s, "retry", "status 503");
  fake_now += 1000;
  msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, "bad\nthing");
  s->end_ns = fake_now;
  msvc__buf_init(&b, 0);
  msvc__trace_encode(t, &s, 1, &b);
  cr_assert_eq(b.err, MSVC_OK);
  cr_assert(msvc__json_valid(b.data, b.len), "%s", b.data);
#define HAS(x) cr_assert_not_null(strstr(b.data, x), "missing %s in %s", x, b.data)
  HAS("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  HAS("{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc \\\"q\\\"\"}}");
  HAS("{\"key\":\"service.version\",\"value\":{\"stringValue\":\"1.2.3\"}}");
  HAS("{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":\"inst-1\"}}");
  HAS("{\"key\":\"deployment.environment\",\"value\":{\"stringValue\":\"prod\"}}");
  HAS("{\"key\":\"team\",\"value\":{\"stringValue\":\"a,b\"}}");
  HAS("\"scopeSpans\":[{\"scope\":{\"name\":\"libmsvc\"");
  HAS("\"traceId\":\"0af7651916cd43dd8448eb211c80319c\"");
  HAS("\"parentSpanId\":\"b7ad6b7169203331\"");
  HAS("\"name\":\"GET /users/:id\",\"kind\":2");
  HAS("\"startTimeUnixNano\":\"1700000000123456789\"");
  HAS("\"endTimeUnixNano\":\"1700000000123458789\"");
  HAS("{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"-5\"}}");
  HAS("{\"key\":\"b\",\"value\":{\"boolValue\":true}}");
  HAS("{\"key\":\"d\",\"value\":{\"doubleValue\":0.5}}");
  HAS("{\"key\":\"long.key.name\",\"value\":{\"stringValue\":\"0123456789abcdef\\\"ghij\\u001f\xc3\xa9\xc3\xa9\"}}");
  HAS("{\"key\":\"long.clean\",\"value\":{\"stringValue\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 ~ spaces and more\"}}");
  HAS("{\"key\":\"ctl\\t\",\"value\":{\"stringValue\":\"a\\u0001\\u007f\\\"\\\\b\xc3\xa9\"}}");
  HAS("\"events\":[{\"timeUnixNano\":\"1700000000123457789\",\"name\":\"retry\"");
  HAS("\"status\":{\"code\":2,\"message\":\"bad\\nthing\"}");
  cr_assert_null(strstr(b.data, "ignored"));
  msvc__buf_free(&b);
  msvc__trace_span_free(s);
  msvc_tracer_free(t);
}
