/* What every events backend must do, written once and run against each
 * (memory:// always, nats:// against a real nats-server). Each scenario
 * takes the URI and unique names (stream, subject prefix, durable), so runs
 * against one broker do not see each other. */
#ifndef MSVC_TEST_EVENTS_CONFORMANCE_H
#define MSVC_TEST_EVENTS_CONFORMANCE_H

#include "fixture.h"

typedef struct names_s {
  char stream[64];
  char prefix[64];  /* e.g. "t123" */
  char filter[80];  /* "t123.>" */
  char subject[96]; /* "t123.created" */
  char durable[64];
} names_t;

static inline void names_init(names_t *n, const char *tag) {
  unsigned r = (unsigned)(uv_hrtime() % 1000000u) ^ (unsigned)getpid();

  snprintf(n->stream, sizeof(n->stream), "S%s%u", tag, r);
  snprintf(n->prefix, sizeof(n->prefix), "%s%u", tag, r);
  snprintf(n->filter, sizeof(n->filter), "%s.>", n->prefix);
  snprintf(n->subject, sizeof(n->subject), "%s.created", n->prefix);
  snprintf(n->durable, sizeof(n->durable), "svc%s%u", tag, r);
}

static inline msvc_events_sub_t *subscribe(msvc_events_t *ev, const names_t *n, got_t *g,
                                           const msvc_events_sub_opts_t *base) {
  msvc_events_sub_opts_t o;
  msvc_events_sub_t *sub = NULL;

  if (base != NULL)
    o = *base;
  else
    msvc_events_sub_opts_init(&o);
  o.stream = n->stream;
  o.subject = n->filter;
  if (o.durable == NULL)
    o.durable = n->durable;
  cr_assert_eq(msvc_events_subscribe(ev, &o, got_handler, g, &sub), MSVC_OK);
  return sub;
}

static inline void publish_n(uv_loop_t *loop, msvc_events_t *ev, const char *subject, int count,
                             const msvc_events_header_t *hdrs, size_t nh) {
  pubrec_t p;
  char data[64];

  pubrec_init(&p);
  for (int i = 0; i < count; i++) {
    msvc_event_t e = {.type = subject, .headers = hdrs, .header_count = nh};
    snprintf(data, sizeof(data), "{\"n\":%d}", i);
    e.data = data;
    e.data_len = strlen(data);
    cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
    cr_assert_eq(p.calls, 0, "no callback from inside publish");
    if (i % 256 == 255)
      wait_count(loop, &p.calls, i + 1, 10000); /* stay under the pending bound */
  }
  cr_assert(wait_count(loop, &p.calls, count, 15000), "acks: %d of %d", p.calls, count);
  cr_assert_eq(p.ok, count, "stored: %d of %d (last %s)", p.ok, count,
               msvc_strerror(p.last_status));
  cr_assert_not(p.wrong_thread, "publish callback off the loop thread");
}

/* Publish, acknowledgement, delivery with headers and data on the loop. */
static inline void conf_publish_consume(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  pubrec_t p;
  msvc_events_header_t hdrs[2] = {
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
      {"X-Request-Id", "req-42"}};
  msvc_event_t e = {.type = "order.created", .id = "fixed-id-1", .data = "{\"id\":1}",
                    .data_len = 8, .headers = hdrs, .header_count = 2};

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "pc");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, uri, "/order-service");
  ensure_stream(&loop, ev, n.stream, n.filter);
  e.subject = n.subject;
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert_eq(p.calls, 0);
  cr_assert(wait_count(&loop, &p.calls, 1, 5000));
  cr_assert_eq(p.last_status, MSVC_OK, "%s", msvc_strerror(p.last_status));
  cr_assert_str_eq(p.last_id, "fixed-id-1");
  subscribe(ev, &n, g, NULL);
  cr_assert(wait_count(&loop, &g->n, 1, 5000), "nothing delivered");
  cr_assert_str_eq(g->ids[0], "fixed-id-1");
  cr_assert_eq(g->deliveries[0], 1);
  cr_assert_str_eq(g->subject, n.subject);
  cr_assert_str_eq(g->traceparent, hdrs[0].value);
  cr_assert_str_eq(g->request_id, "req-42");
  cr_assert_str_eq(g->data, "{\"id\":1}");
  cr_assert_not(g->wrong_thread, "handler off the loop thread");
  run_for(&loop, 100);
  cr_assert_eq(g->n, 1, "acknowledged message delivered again");
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}

/* A publish to a subject no stream holds fails, and says so. */
static inline void conf_no_stream(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  pubrec_t p;
  char subject[64];
  msvc_event_t e = {.type = "x"};

  cr_assert_eq(uv_loop_init(&loop), 0);
  snprintf(subject, sizeof(subject), "nostream%u.x", (unsigned)getpid());
  e.subject = subject;
  ev = open_events(&loop, uri, "/t");
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &p.calls, 1, 10000));
  cr_assert_eq(p.last_status, MSVC_EEVENTS_NO_STREAM, "%s", msvc_err_name(p.last_status));
  close_events(&loop, ev);
  finish_loop(&loop);
}

typedef struct two_s {
  const got_t *a, *b;
  int each;
} two_t;

static inline bool both_hold(void *arg) {
  const two_t *t = arg;
  return t->a->n >= t->each && t->b->n >= t->each;
}

/* Two instances of one service share a durable: each message goes to one of
 * them, never to both, and another service's durable gets every message.
 *
 * Which instance gets a message is the broker's choice (a pull consumer
 * serves whoever asks first), so a fast instance may take everything and
 * that is correct. What is guaranteed is the flow-control bound: an
 * instance never holds more than max_unacked unsettled messages. So both
 * handlers first HOLD what they get: the first instance stops at its bound
 * and the rest can only go to the other one, whatever the scheduling. Then
 * everything is acknowledged and the remainder flows to whichever asks. */
static inline void conf_shared_durable(const char *uri, int count) {
  static uv_loop_t loop;
  msvc_events_t *a, *b, *c;
  names_t n;
  got_t *ga = calloc(1, sizeof(got_t)), *gb = calloc(1, sizeof(got_t)),
        *gc = calloc(1, sizeof(got_t));
  msvc_events_sub_opts_t o, oc;
  msvc_events_sub_t *sa, *sb;
  two_t held = {ga, gb, 4};

  cr_assert_geq(count, 2 * held.each + 1);
  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "sd");
  got_init(ga, SETTLE_HOLD);
  got_init(gb, SETTLE_HOLD);
  got_init(gc, SETTLE_ACK);
  a = open_events(&loop, uri, "/a");
  b = open_events(&loop, uri, "/b");
  c = open_events(&loop, uri, "/c");
  ensure_stream(&loop, a, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_unacked = (uint32_t)held.each;
  sa = subscribe(a, &n, ga, &o);
  sb = subscribe(b, &n, gb, &o);
  msvc_events_sub_opts_init(&oc);
  oc.durable = "other-service";
  subscribe(c, &n, gc, &oc);
  publish_n(&loop, a, n.subject, count, NULL, 0);
  /* Phase 1: both instances fill up to their bound, and no further. */
  cr_assert(run_until(&loop, both_hold, &held, 15000), "held: a %d, b %d (bound %d each)",
            ga->n, gb->n, held.each);
  run_for(&loop, 200);
  cr_assert_eq(ga->n, held.each, "instance a holds %d, bound %d", ga->n, held.each);
  cr_assert_eq(gb->n, held.each, "instance b holds %d, bound %d", gb->n, held.each);
  cr_assert_eq(msvc_events_sub_unacked(sa), (uint32_t)held.each);
  cr_assert_eq(msvc_events_sub_unacked(sb), (uint32_t)held.each);
  cr_assert_eq(got_distinct(ga, gb), 2 * held.each, "a message went to both instances");
  /* Phase 2: settle, and the rest flows; every message once in all. */
  ga->mode = SETTLE_ACK;
  gb->mode = SETTLE_ACK;
  for (int i = 0; i < ga->nheld; i++)
    cr_assert_eq(msvc_events_ack(ga->held[i]), MSVC_OK);
  for (int i = 0; i < gb->nheld; i++)
    cr_assert_eq(msvc_events_ack(gb->held[i]), MSVC_OK);
  for (int i = 0; i < 600 && (ga->n + gb->n < count || gc->n < count); i++)
    run_for(&loop, 25);
  run_for(&loop, 200);
  cr_assert_eq(ga->n + gb->n, count, "shared durable: %d + %d deliveries for %d", ga->n, gb->n,
               count);
  cr_assert_eq(got_distinct(ga, gb), count, "a message went to both instances");
  cr_assert_eq(gc->n, count, "the other service's durable got %d of %d", gc->n, count);
  cr_assert_eq(got_distinct(gc, NULL), count);
  close_events(&loop, a);
  close_events(&loop, b);
  close_events(&loop, c);
  finish_loop(&loop);
  free(ga);
  free(gb);
  free(gc);
}

/* A nack comes back after its delay, counted as the second delivery. */
static inline void conf_nack_redelivers(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  msvc_events_sub_opts_t o;
  uint64_t t0;

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "nk");
  got_init(g, SETTLE_NACK);
  g->nack_delay_ms = 300;
  ev = open_events(&loop, uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_deliveries = 10;
  subscribe(ev, &n, g, &o);
  publish_n(&loop, ev, n.subject, 1, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 1, 5000));
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  g->mode = SETTLE_ACK;
  cr_assert(wait_count(&loop, &g->n, 2, 5000), "not redelivered");
  uv_update_time(&loop);
  cr_assert_geq(uv_now(&loop) - t0, 250, "redelivered before its delay");
  cr_assert_str_eq(g->ids[0], g->ids[1], "the id must survive redelivery");
  cr_assert_eq(g->deliveries[0], 1);
  cr_assert_eq(g->deliveries[1], 2);
  run_for(&loop, 400);
  cr_assert_eq(g->n, 2);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}

/* A poison message: nacked up to the limit, then on the dead-letter subject
 * with the reason; the consumer goes on with the next message. */
static inline void conf_poison_dead_letters(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g)), *dl = calloc(1, sizeof(*dl));
  msvc_events_sub_opts_t o, od;
  msvc_events_sub_t *dsub = NULL;
  char dlq_subject[128];

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "pz");
  got_init(g, SETTLE_NACK);
  g->nack_delay_ms = 20;
  g->reason = "wrong type";
  got_init(dl, SETTLE_ACK);
  ev = open_events(&loop, uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_deliveries = 3;
  subscribe(ev, &n, g, &o);
  publish_n(&loop, ev, n.subject, 1, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 3, 5000), "deliveries: %d", g->n);
  /* read the dead-letter subject */
  snprintf(dlq_subject, sizeof(dlq_subject), "%s%s", MSVC_EVENTS_DLQ_PREFIX, n.durable);
  msvc_events_sub_opts_init(&od);
  od.stream = MSVC_EVENTS_DLQ_STREAM;
  od.subject = dlq_subject;
  {
    char durable[80];
    snprintf(durable, sizeof(durable), "dlq-%s", n.durable);
    od.durable = durable;
    cr_assert_eq(msvc_events_subscribe(ev, &od, got_handler, dl, &dsub), MSVC_OK);
  }
  cr_assert(wait_count(&loop, &dl->n, 1, 5000), "nothing dead-lettered");
  cr_assert_str_eq(dl->reason_hdr, "wrong type");
  cr_assert_str_eq(dl->orig_subject, n.subject);
  cr_assert_str_eq(dl->deliveries_hdr, "3");
  cr_assert_str_eq(dl->ids[0], g->ids[0], "dead-lettered with its id");
  run_for(&loop, 300);
  cr_assert_eq(g->n, 3, "delivered again after dead-lettering");
  /* the consumer goes on */
  g->mode = SETTLE_ACK;
  publish_n(&loop, ev, n.subject, 1, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 4, 5000));
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
  free(dl);
}

/* Flow control: no more than max_unacked messages held by the handler. */
static inline void conf_flow_control(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  msvc_events_sub_opts_t o;
  msvc_events_sub_t *sub;

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "fc");
  got_init(g, SETTLE_HOLD);
  ev = open_events(&loop, uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_unacked = 3;
  sub = subscribe(ev, &n, g, &o);
  publish_n(&loop, ev, n.subject, 10, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 3, 5000));
  run_for(&loop, 300);
  cr_assert_eq(g->n, 3, "handler holds %d, bound is 3", g->n);
  cr_assert_eq(msvc_events_sub_unacked(sub), 3);
  cr_assert_eq(msvc_events_ack(g->held[0]), MSVC_OK);
  cr_assert(wait_count(&loop, &g->n, 4, 5000), "no message after an ack");
  run_for(&loop, 200);
  cr_assert_eq(g->n, 4);
  g->mode = SETTLE_ACK;
  for (int i = 1; i < g->nheld; i++)
    cr_assert_eq(msvc_events_ack(g->held[i]), MSVC_OK);
  cr_assert(wait_count(&loop, &g->n, 10, 5000), "got %d of 10", g->n);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}

/* An instance goes away holding a message: the other one gets it after the
 * ack wait. Settling the orphan afterwards says it is closed. */
static inline void conf_unacked_go_to_other(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *a, *b;
  names_t n;
  got_t *ga = calloc(1, sizeof(got_t)), *gb = calloc(1, sizeof(got_t));
  msvc_events_sub_opts_t o;
  msvc_events_sub_t *sa;

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "ua");
  got_init(ga, SETTLE_HOLD);
  got_init(gb, SETTLE_ACK);
  a = open_events(&loop, uri, "/a");
  b = open_events(&loop, uri, "/b");
  ensure_stream(&loop, a, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.ack_wait_ms = 700;
  sa = subscribe(a, &n, ga, &o);
  publish_n(&loop, a, n.subject, 1, NULL, 0);
  cr_assert(wait_count(&loop, &ga->n, 1, 5000));
  msvc_events_sub_close(sa);
  subscribe(b, &n, gb, &o);
  cr_assert(wait_count(&loop, &gb->n, 1, 5000), "not redelivered to the other instance");
  cr_assert_str_eq(gb->ids[0], ga->ids[0]);
  cr_assert_eq(gb->deliveries[0], 2);
  cr_assert_eq(msvc_events_ack(ga->held[0]), MSVC_ECLOSED);
  close_events(&loop, a);
  close_events(&loop, b);
  finish_loop(&loop);
  free(ga);
  free(gb);
}

/* The same event id published twice is stored once. */
static inline void conf_duplicate_id(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  pubrec_t p;
  msvc_event_t e = {.type = "t", .id = "same-id", .data = "1", .data_len = 1};

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "dup");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  e.subject = n.subject;
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert_eq(msvc_events_publish(ev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &p.calls, 2, 5000));
  cr_assert_eq(p.ok, 2, "a duplicate counts as stored");
  subscribe(ev, &n, g, NULL);
  cr_assert(wait_count(&loop, &g->n, 1, 5000));
  run_for(&loop, 300);
  cr_assert_eq(g->n, 1, "duplicate stored twice");
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}

/* A message larger than the consumer accepts is never handed over and ends
 * on the dead-letter subject as "oversized". */
static inline void conf_oversized(const char *uri) {
  static uv_loop_t loop;
  msvc_events_t *pubev, *subev;
  msvc_events_opts_t eo;
  names_t n;
  got_t *g = calloc(1, sizeof(*g)), *dl = calloc(1, sizeof(*dl));
  msvc_events_sub_opts_t o, od;
  msvc_events_sub_t *dsub;
  char err[MSVC_ERRMSG_MAX], dlq_subject[128], durable[96], big[2048];
  pubrec_t p;
  msvc_event_t e = {.type = "t"};

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "big");
  got_init(g, SETTLE_ACK);
  got_init(dl, SETTLE_ACK);
  pubev = open_events(&loop, uri, "/t");
  msvc_events_opts_init(&eo);
  eo.max_event_bytes = 1024;
  cr_assert_eq(msvc_events_new(&loop, uri, &eo, &subev, err, sizeof(err)), MSVC_OK, "%s", err);
  ensure_stream(&loop, pubev, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_deliveries = 2;
  o.backoff_min_ms = 10;
  subscribe(subev, &n, g, &o);
  memset(big, 'x', sizeof(big));
  big[0] = '"';
  big[sizeof(big) - 2] = '"';
  big[sizeof(big) - 1] = '\0';
  e.subject = n.subject;
  e.data = big;
  e.data_len = strlen(big);
  pubrec_init(&p);
  cr_assert_eq(msvc_events_publish(subev, &e, on_published, &p), MSVC_ETOOLARGE);
  cr_assert_eq(msvc_events_publish(pubev, &e, on_published, &p), MSVC_OK);
  cr_assert(wait_count(&loop, &p.calls, 1, 5000));
  snprintf(dlq_subject, sizeof(dlq_subject), "%s%s", MSVC_EVENTS_DLQ_PREFIX, n.durable);
  snprintf(durable, sizeof(durable), "dlq-%s", n.durable);
  msvc_events_sub_opts_init(&od);
  od.stream = MSVC_EVENTS_DLQ_STREAM;
  od.subject = dlq_subject;
  od.durable = durable;
  cr_assert_eq(msvc_events_subscribe(pubev, &od, got_handler, dl, &dsub), MSVC_OK);
  cr_assert(wait_count(&loop, &dl->n, 1, 8000), "nothing dead-lettered");
  cr_assert_str_eq(dl->reason_hdr, "oversized");
  cr_assert_eq(g->n, 0, "the handler saw an oversized message");
  close_events(&loop, subev);
  close_events(&loop, pubev);
  finish_loop(&loop);
  free(g);
  free(dl);
}

#endif /* MSVC_TEST_EVENTS_CONFORMANCE_H */
