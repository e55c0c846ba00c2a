/* The nats:// backend against a real nats-server with JetStream: the
 * conformance scenarios, then the broker's own failures (killed mid-run,
 * unreachable at start). */
#include "conformance.h"
#include "nats_server.h"

static natsd_t S;

static void setup(void) {
  if (!natsd_available())
    cr_skip_test("nats-server is not installed");
  natsd_init(&S);
  natsd_start(&S);
}

static void teardown(void) {
  natsd_stop(&S);
}

TestSuite(events_nats, .init = setup, .fini = teardown, .timeout = 30);

Test(events_nats, publish_and_consume) { conf_publish_consume(S.uri); }
Test(events_nats, no_stream) { conf_no_stream(S.uri); }
Test(events_nats, shared_durable) { conf_shared_durable(S.uri, 200); }
Test(events_nats, nack_redelivers) { conf_nack_redelivers(S.uri); }
Test(events_nats, poison_dead_letters) { conf_poison_dead_letters(S.uri); }
Test(events_nats, flow_control) { conf_flow_control(S.uri); }
Test(events_nats, unacked_go_to_other) { conf_unacked_go_to_other(S.uri); }
Test(events_nats, duplicate_id) { conf_duplicate_id(S.uri); }
Test(events_nats, oversized) { conf_oversized(S.uri); }

/* A body that is not a CloudEvents envelope (a foreign producer, a broken
 * one) never reaches the handler: it is nacked as malformed up to the
 * limit, then dead-lettered with the reason, and the consumer goes on. */
Test(events_nats, malformed_envelope_dead_letters) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g)), *dl = calloc(1, sizeof(*dl));
  msvc_events_sub_opts_t o, od;
  msvc_events_sub_t *dsub;
  char dlq_subject[128], durable[96];

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "mal");
  got_init(g, SETTLE_ACK);
  got_init(dl, SETTLE_ACK);
  ev = open_events(&loop, S.uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  msvc_events_sub_opts_init(&o);
  o.max_deliveries = 2;
  o.backoff_min_ms = 10;
  subscribe(ev, &n, g, &o);
  natsd_raw_publish(&S, n.subject, "{not json");
  snprintf(dlq_subject, sizeof(dlq_subject), "%s%s", MSVC_EVENTS_DLQ_PREFIX, n.durable);
  snprintf(durable, sizeof(durable), "dlq-%s", n.durable);
  msvc_events_sub_opts_init(&od);
  od.stream = MSVC_EVENTS_DLQ_STREAM;
  od.subject = dlq_subject;
  od.durable = durable;
  od.accept_raw = true; /* what is dead-lettered here is no envelope */
  cr_assert_eq(msvc_events_subscribe(ev, &od, got_handler, dl, &dsub), MSVC_OK);
  cr_assert(wait_count(&loop, &dl->n, 1, 8000), "nothing dead-lettered");
  cr_assert(strncmp(dl->reason_hdr, "malformed envelope", 18) == 0, "reason: %s",
            dl->reason_hdr);
  cr_assert_str_eq(dl->data, "{not json", "the body is kept as it came");
  cr_assert_str_eq(dl->ids[0], "");
  cr_assert_str_eq(dl->orig_subject, n.subject);
  cr_assert_eq(g->n, 0, "the handler saw a malformed message");
  publish_n(&loop, ev, n.subject, 1, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 1, 5000), "the consumer stopped after a poison message");
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
  free(dl);
}

typedef struct kill_run_s {
  uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  pubrec_t p;
  int sent;
  char ids[1000][40];
} kill_run_t;

static void on_published_keep(int status, const char *id, void *data) {
  kill_run_t *k = data;

  k->p.calls++;
  if (status == MSVC_OK)
    k->p.ok++;
  k->p.last_status = status;
  (void)id;
}

/* Publish with retry by id until every event is acknowledged, as an outbox
 * relay does: the same id each time. */
static void publish_until_acked(kill_run_t *k, int i, int *acked) {
  msvc_event_t e = {.type = "order.created"};
  char data[32];
  int before;

  e.subject = k->n.subject;
  e.id = k->ids[i];
  snprintf(data, sizeof(data), "{\"n\":%d}", i);
  e.data = data;
  e.data_len = strlen(data);
  for (int attempt = 0; attempt < 100; attempt++) {
    before = k->p.calls;
    if (msvc_events_publish(k->ev, &e, on_published_keep, k) != MSVC_OK) {
      run_for(&k->loop, 50);
      continue;
    }
    wait_count(&k->loop, &k->p.calls, before + 1, 8000);
    if (k->p.last_status == MSVC_OK) {
      (*acked)++;
      return;
    }
    run_for(&k->loop, 100);
  }
  cr_assert_fail("event %d never acknowledged: %s", i, msvc_strerror(k->p.last_status));
}

/* SIGKILL the broker in the middle of a run and start it again on the same
 * store: every event acknowledged before or after is consumed, none lost,
 * and the handle came back by itself. */
Test(events_nats, broker_killed_mid_run_loses_nothing) {
  kill_run_t *k = calloc(1, sizeof(*k));
  got_t *g = calloc(1, sizeof(*g));
  msvc_events_sub_opts_t o;
  int acked = 0, total = 300;

  cr_assert_eq(uv_loop_init(&k->loop), 0);
  names_init(&k->n, "kill");
  got_init(g, SETTLE_ACK);
  pubrec_init(&k->p);
  k->ev = open_events(&k->loop, S.uri, "/order-service");
  ensure_stream(&k->loop, k->ev, k->n.stream, k->n.filter);
  msvc_events_sub_opts_init(&o);
  o.ack_wait_ms = 2000;
  subscribe(k->ev, &k->n, g, &o);
  for (int i = 0; i < total; i++) {
    snprintf(k->ids[i], sizeof(k->ids[i]), "ev-%d", i);
    if (i == total / 2) {
      natsd_kill(&S, SIGKILL);
      run_for(&k->loop, 200);
      cr_assert_neq(msvc_events_state(k->ev), MSVC_EVENTS_CONNECTED, "no disconnect seen");
      cr_assert(msvc_events_ready(k->ev, NULL), "readiness flipped on a short outage");
      natsd_start(&S);
    }
    publish_until_acked(k, i, &acked);
  }
  cr_assert_eq(acked, total);
  for (int i = 0; i < 600 && got_distinct(g, NULL) < total; i++)
    run_for(&k->loop, 25);
  cr_assert_eq(got_distinct(g, NULL), total, "consumed %d distinct of %d", got_distinct(g, NULL),
               total);
  cr_assert_eq(msvc_events_state(k->ev), MSVC_EVENTS_CONNECTED);
  close_events(&k->loop, k->ev);
  finish_loop(&k->loop);
  free(k);
  free(g);
}

/* The broker goes away before this handle ever published: nothing is
 * pending, and losing the connection must not trip over that (libnats has
 * no list of pending publishes yet). The handle comes back by itself. */
Test(events_nats, broker_lost_before_any_publish) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "early");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, S.uri, "/t");
  for (int i = 0; i < 400 && msvc_events_state(ev) != MSVC_EVENTS_CONNECTED; i++)
    run_for(&loop, 25);
  cr_assert_eq(msvc_events_state(ev), MSVC_EVENTS_CONNECTED);
  natsd_kill(&S, SIGKILL);
  for (int i = 0; i < 400 && msvc_events_state(ev) == MSVC_EVENTS_CONNECTED; i++)
    run_for(&loop, 25);
  cr_assert_neq(msvc_events_state(ev), MSVC_EVENTS_CONNECTED, "no disconnect seen");
  run_for(&loop, 200); /* the disconnection is handled on libnats' thread */
  natsd_start(&S);
  ensure_stream(&loop, ev, n.stream, n.filter);
  subscribe(ev, &n, g, NULL);
  publish_n(&loop, ev, n.subject, 5, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 5, 10000), "consumed %d of 5", g->n);
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}

typedef struct killer_s {
  pid_t pid;
  int delay_ms;
} killer_t;

static void killer_main(void *arg) {
  const killer_t *k = arg;

  natsd_sleep_ms(k->delay_ms);
  kill(k->pid, SIGKILL);
}

/* The broker dies while the loop is in the middle of publishing: libnats
 * reports the disconnection on its own thread while the loop is inside a
 * publish, and taking back the unacknowledged ones must not free a message
 * that publish still uses. Every publish gets its callback, and the handle
 * goes on after each restart. */
Test(events_nats, broker_killed_while_publishing) {
  static uv_loop_t loop;
  static pubrec_t p;
  msvc_events_t *ev;
  names_t n;
  char data[32];
  int sent = 0;

  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "kp");
  pubrec_init(&p);
  ev = open_events(&loop, S.uri, "/t");
  ensure_stream(&loop, ev, n.stream, n.filter);
  for (int round = 0; round < 3; round++) {
    killer_t k = {S.pid, 100};
    uv_thread_t t;
    uint64_t end;

    cr_assert_eq(uv_thread_create(&t, killer_main, &k), 0);
    uv_update_time(&loop);
    end = uv_now(&loop) + 2000;
    /* Publish without waiting, until the disconnection has been seen. */
    while (msvc_events_state(ev) == MSVC_EVENTS_CONNECTED && uv_now(&loop) < end) {
      msvc_event_t e = {.type = "x", .subject = n.subject, .data = data};
      snprintf(data, sizeof(data), "{\"n\":%d}", sent);
      e.data_len = strlen(data);
      if (msvc_events_publish(ev, &e, on_published, &p) == MSVC_OK)
        sent++;
      uv_run(&loop, UV_RUN_NOWAIT);
      uv_update_time(&loop);
    }
    uv_thread_join(&t);
    natsd_kill(&S, SIGKILL);
    cr_assert_neq(msvc_events_state(ev), MSVC_EVENTS_CONNECTED, "no disconnect seen");
    run_for(&loop, 100);
    natsd_start(&S);
    for (int i = 0; i < 400 && msvc_events_state(ev) != MSVC_EVENTS_CONNECTED; i++)
      run_for(&loop, 25);
    cr_assert_eq(msvc_events_state(ev), MSVC_EVENTS_CONNECTED, "round %d: not back", round);
  }
  cr_assert(wait_count(&loop, &p.calls, sent, 15000), "callbacks: %d of %d", p.calls, sent);
  cr_assert_gt(p.ok, 0);
  publish_n(&loop, ev, n.subject, 5, NULL, 0);
  close_events(&loop, ev);
  finish_loop(&loop);
}

/* Nothing listens at first: the handle says so, retries with backoff and
 * works as soon as the broker appears; what was asked meanwhile completes. */
Test(events_nats, unreachable_at_start_then_appears) {
  static uv_loop_t loop;
  msvc_events_t *ev;
  names_t n;
  got_t *g = calloc(1, sizeof(*g));
  const char *detail = NULL;
  int status = 1;
  msvc_events_stream_opts_t so;
  const char *subjects[1];
  uv_rusage_t ru0, ru1;
  double cpu_ms;

  natsd_kill(&S, SIGTERM);
  cr_assert_eq(uv_loop_init(&loop), 0);
  names_init(&n, "late");
  got_init(g, SETTLE_ACK);
  ev = open_events(&loop, S.uri, "/t");
  subjects[0] = n.filter;
  msvc_events_stream_opts_init(&so);
  so.name = n.stream;
  so.subjects = subjects;
  so.subject_count = 1;
  cr_assert_eq(msvc_events_stream_ensure(ev, &so, on_done_status, &status), MSVC_OK);
  subscribe(ev, &n, g, NULL);
  uv_getrusage(&ru0);
  run_for(&loop, 1500);
  uv_getrusage(&ru1);
  cpu_ms = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e3 +
           (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e3 +
           (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e3 +
           (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e3;
  cr_assert_lt(cpu_ms, 300, "busy while the broker is away: %.0f ms CPU in 1.5 s", cpu_ms);
  cr_assert_eq(msvc_events_state(ev), MSVC_EVENTS_CONNECTING);
  cr_assert(msvc_events_ready(ev, &detail));
  cr_assert_str_eq(detail, "connecting");
  cr_assert_eq(status, 1, "stream request completed without a broker");
  natsd_start(&S);
  cr_assert(run_until(&loop, status_set, &status, 15000), "no connection after the broker came");
  cr_assert_eq(status, MSVC_OK, "%s", msvc_strerror(status));
  publish_n(&loop, ev, n.subject, 5, NULL, 0);
  cr_assert(wait_count(&loop, &g->n, 5, 10000), "consumed %d of 5", g->n);
  cr_assert(msvc_events_ready(ev, &detail));
  cr_assert_str_eq(detail, "connected");
  close_events(&loop, ev);
  finish_loop(&loop);
  free(g);
}
