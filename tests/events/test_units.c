/* The pure parts of the events block: CloudEvents envelopes, subjects and
 * names, the nack backoff, the dedup window (with two threads for real). */
#include <criterion/criterion.h>
#include <string.h>

#include <uv.h>

#include <msvc/events.h>

#include "events/events-internal.h"

/* ---- envelope ----------------------------------------------------------- */

Test(events_envelope, builds_every_required_attribute) {
  msvc_event_t e = {.type = "order.created", .id = "ev-1", .source = "/order-service",
                    .time = "2026-12-04T10:00:00.000Z", .data = "{\"id\":7}", .data_len = 8};
  char *json;
  size_t len;

  cr_assert_eq(msvc_events_envelope_build(&e, &json, &len), MSVC_OK);
  cr_assert_str_eq(json, "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"/order-service\","
                         "\"type\":\"order.created\",\"time\":\"2026-12-04T10:00:00.000Z\","
                         "\"datacontenttype\":\"application/json\",\"data\":{\"id\":7}}");
  cr_assert_eq(len, strlen(json));
  msvc_free(json);
}

Test(events_envelope, round_trips_through_the_parser) {
  msvc_event_t e = {.type = "payment.declined", .data = "{\"order_id\":3,\"reason\":\"x\"}"};
  msvc_events_envelope_t *env;
  const msvc_event_t *p;
  char *json;
  size_t len;

  e.data_len = strlen(e.data);
  cr_assert_eq(msvc_events_envelope_build(&e, &json, &len), MSVC_OK);
  cr_assert_eq(msvc_events_envelope_parse(json, len, &env, NULL), MSVC_OK);
  p = msvc_events_envelope_event(env);
  cr_assert_str_eq(p->type, "payment.declined");
  cr_assert_str_eq(p->source, "/msvc");
  cr_assert_eq(strlen(p->id), 32, "generated ids are 32 hex digits");
  cr_assert_eq(strspn(p->id, "0123456789abcdef"), 32);
  cr_assert_eq(strlen(p->time), 24, "RFC 3339 with milliseconds: %s", p->time);
  cr_assert_str_eq(p->datacontenttype, "application/json");
  cr_assert_str_eq(p->data, "{\"order_id\":3,\"reason\":\"x\"}");
  msvc_events_envelope_free(env);
  msvc_free(json);
}

Test(events_envelope, generated_ids_differ) {
  char a[33], b[33];

  msvc_events_id_generate(a);
  msvc_events_id_generate(b);
  cr_assert_str_neq(a, b);
}

Test(events_envelope, text_data_is_a_json_string) {
  msvc_event_t e = {.type = "note", .datacontenttype = "text/plain", .data = "say \"hi\"\n",
                    .data_len = 9};
  msvc_events_envelope_t *env;
  char *json;
  size_t len;

  cr_assert_eq(msvc_events_envelope_build(&e, &json, &len), MSVC_OK);
  cr_assert(strstr(json, "\"data\":\"say \\\"hi\\\"\\n\"") != NULL, "%s", json);
  cr_assert_eq(msvc_events_envelope_parse(json, len, &env, NULL), MSVC_OK);
  cr_assert_str_eq(msvc_events_envelope_event(env)->data, "say \"hi\"\n");
  msvc_events_envelope_free(env);
  msvc_free(json);
}

Test(events_envelope, refuses_bad_events_at_build) {
  msvc_event_t e = {.type = "t", .data = "{nope", .data_len = 5};
  char long_id[MSVC_EVENTS_ID_MAX + 2];
  char *json;

  cr_assert_eq(msvc_events_envelope_build(&e, &json, NULL), MSVC_EINVAL, "data not JSON");
  e = (msvc_event_t){.type = NULL};
  cr_assert_eq(msvc_events_envelope_build(&e, &json, NULL), MSVC_EINVAL, "no type");
  e = (msvc_event_t){.type = ""};
  cr_assert_eq(msvc_events_envelope_build(&e, &json, NULL), MSVC_EINVAL, "empty type");
  memset(long_id, 'a', sizeof(long_id) - 1);
  long_id[sizeof(long_id) - 1] = '\0';
  e = (msvc_event_t){.type = "t", .id = long_id};
  cr_assert_eq(msvc_events_envelope_build(&e, &json, NULL), MSVC_EINVAL, "id too long");
  e = (msvc_event_t){.type = "t", .id = "a\nb"};
  cr_assert_eq(msvc_events_envelope_build(&e, &json, NULL), MSVC_EINVAL, "control char");
}

static void parse_fails(const char *text, const char *why_part) {
  msvc_events_envelope_t *env = (void *)1;
  const char *why = NULL;

  cr_assert_eq(msvc_events_envelope_parse(text, strlen(text), &env, &why),
               MSVC_EEVENTS_ENVELOPE, "accepted %s", text);
  cr_assert_null(env);
  cr_assert_not_null(why);
  cr_assert(strstr(why, why_part) != NULL, "%s: why '%s', wanted '%s'", text, why, why_part);
}

Test(events_envelope, parser_names_the_problem) {
  parse_fails("", "not JSON");
  parse_fails("{\"id\":", "not JSON");
  parse_fails("[1]", "not a JSON object");
  parse_fails("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", "specversion");
  parse_fails("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
              "not 1.0");
  parse_fails("{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}", "id");
  parse_fails("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}", "id");
  parse_fails("{\"specversion\":\"1.0\",\"id\":1,\"source\":\"/s\",\"type\":\"t\"}", "id");
  parse_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}", "source");
  parse_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\"}", "type");
  parse_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
              "\"time\":5}",
              "time");
  parse_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
              "\"data_base64\":\"AA==\"}",
              "data_base64");
}

Test(events_envelope, parser_takes_minimal_and_extended_events) {
  const char *min = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
                    "\"traceparent\":\"00-x\"}";
  msvc_events_envelope_t *env;
  const msvc_event_t *e;

  cr_assert_eq(msvc_events_envelope_parse(min, strlen(min), &env, NULL), MSVC_OK);
  e = msvc_events_envelope_event(env);
  cr_assert_str_eq(e->time, "");
  cr_assert_str_eq(e->datacontenttype, "");
  cr_assert_null(e->data);
  msvc_events_envelope_free(env);
}

/* ---- subjects and names -------------------------------------------------- */

Test(events_subject, validity) {
  cr_assert(msvc__ev_subject_valid("order.created", false));
  cr_assert(msvc__ev_subject_valid("a", false));
  cr_assert_not(msvc__ev_subject_valid("", false));
  cr_assert_not(msvc__ev_subject_valid("a..b", false));
  cr_assert_not(msvc__ev_subject_valid(".a", false));
  cr_assert_not(msvc__ev_subject_valid("a.", false));
  cr_assert_not(msvc__ev_subject_valid("a b", false));
  cr_assert_not(msvc__ev_subject_valid("a.*", false));
  cr_assert(msvc__ev_subject_valid("a.*", true));
  cr_assert(msvc__ev_subject_valid("a.>", true));
  cr_assert_not(msvc__ev_subject_valid("a.>.b", true));
  cr_assert_not(msvc__ev_subject_valid("a.b*", true));
}

Test(events_subject, wildcard_matching) {
  cr_assert(msvc__ev_subject_match("order.created", "order.created"));
  cr_assert_not(msvc__ev_subject_match("order.created", "order.created.x"));
  cr_assert_not(msvc__ev_subject_match("order.created", "order"));
  cr_assert(msvc__ev_subject_match("order.*", "order.created"));
  cr_assert_not(msvc__ev_subject_match("order.*", "order.a.b"));
  cr_assert(msvc__ev_subject_match("order.>", "order.a.b"));
  cr_assert_not(msvc__ev_subject_match("order.>", "order"));
  cr_assert(msvc__ev_subject_match(">", "x"));
  cr_assert(msvc__ev_subject_match("*.created", "payment.created"));
  cr_assert_not(msvc__ev_subject_match("orders.*", "order.created"));
}

Test(events_subject, names_and_headers) {
  cr_assert(msvc__ev_name_valid("payment-service_2"));
  cr_assert_not(msvc__ev_name_valid("a.b"));
  cr_assert_not(msvc__ev_name_valid(""));
  cr_assert(msvc__ev_header_valid("traceparent", "00-abc-def-01"));
  cr_assert_not(msvc__ev_header_valid("bad name", "v"));
  cr_assert_not(msvc__ev_header_valid("X", "a\r\nInjected: 1"));
}

/* ---- backoff --------------------------------------------------------------- */

Test(events_backoff, doubles_caps_and_jitters_downwards) {
  /* rnd 0: no jitter taken off */
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 1, 0), 500);
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 2, 0), 1000);
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 4, 0), 4000);
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 10, 0), 30000);
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 1000, 0), 30000, "no overflow");
  cr_assert_eq(msvc_events_backoff_ms(500, 30000, 0, 0), 500, "0 counts as the first");
  for (uint64_t r = 0; r < 2000; r += 7) {
    uint32_t d = msvc_events_backoff_ms(500, 30000, 4, r);
    cr_assert(d >= 3200 && d <= 4000, "delay %u", d);
    cr_assert_geq(msvc_events_backoff_ms(500, 30000, 1, r), 500);
  }
  cr_assert_eq(msvc_events_backoff_ms(100, 50, 3, 0), 100, "a cap below min is min");
}

/* ---- dedup window ------------------------------------------------------------ */

Test(events_dedup, remembers_marked_ids) {
  msvc_events_dedup_t *d;

  cr_assert_eq(msvc_events_dedup_new(4, 0, &d), MSVC_OK);
  cr_assert_not(msvc_events_dedup_seen(d, "a", 0));
  cr_assert_eq(msvc_events_dedup_mark(d, "a", 0), MSVC_OK);
  cr_assert(msvc_events_dedup_seen(d, "a", 1));
  cr_assert_eq(msvc_events_dedup_mark(d, "a", 2), MSVC_EEXIST);
  cr_assert_eq(msvc_events_dedup_size(d), 1);
  cr_assert_eq(msvc_events_dedup_mark(d, "", 2), MSVC_EINVAL);
  msvc_events_dedup_free(d);
  msvc_events_dedup_free(NULL);
  cr_assert_eq(msvc_events_dedup_new(0, 0, &d), MSVC_EINVAL);
}

Test(events_dedup, forgets_the_oldest_beyond_capacity) {
  msvc_events_dedup_t *d;
  char id[16];

  cr_assert_eq(msvc_events_dedup_new(3, 0, &d), MSVC_OK);
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof(id), "id-%d", i);
    cr_assert_eq(msvc_events_dedup_mark(d, id, (uint64_t)i), MSVC_OK);
  }
  cr_assert_eq(msvc_events_dedup_size(d), 3);
  cr_assert_not(msvc_events_dedup_seen(d, "id-6", 10));
  cr_assert(msvc_events_dedup_seen(d, "id-7", 10));
  cr_assert(msvc_events_dedup_seen(d, "id-9", 10));
  msvc_events_dedup_free(d);
}

Test(events_dedup, forgets_after_the_ttl) {
  msvc_events_dedup_t *d;

  cr_assert_eq(msvc_events_dedup_new(100, 1000, &d), MSVC_OK);
  cr_assert_eq(msvc_events_dedup_mark(d, "a", 0), MSVC_OK);
  cr_assert_eq(msvc_events_dedup_mark(d, "b", 500), MSVC_OK);
  cr_assert(msvc_events_dedup_seen(d, "a", 999));
  cr_assert_not(msvc_events_dedup_seen(d, "a", 1000));
  cr_assert(msvc_events_dedup_seen(d, "b", 1000));
  cr_assert_eq(msvc_events_dedup_size(d), 1);
  cr_assert_eq(msvc_events_dedup_mark(d, "a", 1001), MSVC_OK, "marked again once forgotten");
  msvc_events_dedup_free(d);
}

typedef struct {
  msvc_events_dedup_t *d;
  int base;
  int marked;
} dedup_thread_t;

static void dedup_worker(void *arg) {
  dedup_thread_t *t = arg;
  char id[32];

  for (int i = 0; i < 20000; i++) {
    /* both threads race on the same ids: exactly one wins each */
    snprintf(id, sizeof(id), "ev-%d", i);
    if (msvc_events_dedup_mark(t->d, id, (uint64_t)i) == MSVC_OK)
      t->marked++;
  }
}

Test(events_dedup, two_threads_mark_each_id_once) {
  msvc_events_dedup_t *d;
  dedup_thread_t a = {0}, b = {0};
  uv_thread_t ta, tb;

  cr_assert_eq(msvc_events_dedup_new(100000, 0, &d), MSVC_OK);
  a.d = b.d = d;
  cr_assert_eq(uv_thread_create(&ta, dedup_worker, &a), 0);
  cr_assert_eq(uv_thread_create(&tb, dedup_worker, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  cr_assert_eq(a.marked + b.marked, 20000);
  cr_assert_eq(msvc_events_dedup_size(d), 20000);
  msvc_events_dedup_free(d);
}
