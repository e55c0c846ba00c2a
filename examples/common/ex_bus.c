/* The event side of an example service (see ex_bus.h). */
#include "ex_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

#include "ex.h"

#define LOG "events"
#define RETRY_MS 1000

struct ex_bus_s {
  msvc_service_t *svc;
  msvc_events_t *ev;
  msvc_work_t *pool;
  ex_relay_t *relay;
  msvc_events_sub_t *sub;
  msvc_events_dedup_t *dedup; /* event ids processed lately */
  ex_bus_opts_t opts;
  uv_timer_t retry;
  int ensured;  /* streams ensured so far (of 2) */
  bool closing;
  int pending; /* things still closing */
  void (*close_cb)(void *data);
  void *close_data;
};

bool ex_bus_live(const ex_bus_t *bus) {
  msvc_service_state_t st;

  if (bus == NULL || bus->closing)
    return false;
  st = msvc_service_state(bus->svc);
  return st == MSVC_SERVICE_NEW || st == MSVC_SERVICE_STARTING || st == MSVC_SERVICE_READY;
}

static bool relay_live(void *data) {
  return ex_bus_live(data);
}

static void ensure_streams(ex_bus_t *bus);

static uint64_t now_ms(const ex_bus_t *bus) {
  return uv_now(msvc_service_loop(bus->svc));
}

static void on_message(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  ex_bus_t *bus = data;

  if (msvc_events_dedup_seen(bus->dedup, msvc_events_msg_event(msg)->id, now_ms(bus))) {
    msvc_events_ack(msg); /* processed moments ago: a redelivery */
    return;
  }
  bus->opts.handler(sub, msg, bus->opts.data);
}

void ex_bus_processed(ex_bus_t *bus, msvc_events_msg_t *msg) {
  (void)msvc_events_dedup_mark(bus->dedup, msvc_events_msg_event(msg)->id, now_ms(bus));
  msvc_events_ack(msg);
}

static void subscribe(ex_bus_t *bus) {
  msvc_events_sub_opts_t so;
  int rc;

  msvc_events_sub_opts_init(&so);
  so.stream = bus->opts.peer_stream;
  so.subject = bus->opts.subject;
  so.durable = bus->opts.durable;
  so.max_unacked = 128;
  /* Short enough that an instance killed mid-batch hands its messages to
   * the other instances within seconds. */
  so.ack_wait_ms = 5000;
  so.max_deliveries = 20;
  rc = msvc_events_subscribe(bus->ev, &so, on_message, bus, &bus->sub);
  if (rc != MSVC_OK)
    MSVC_LOG_E(LOG, "cannot subscribe to %s: %s", so.subject, msvc_strerror(rc));
  else
    MSVC_LOG_I(LOG, "consuming %s from stream %s as %s", so.subject, so.stream, so.durable);
}

static void on_retry(uv_timer_t *t) {
  ensure_streams(t->data);
}

static void on_ensured(int status, void *data) {
  ex_bus_t *bus = data;

  if (!ex_bus_live(bus))
    return;
  if (status != MSVC_OK) {
    /* Both are asked again: ensuring is idempotent. */
    if (bus->ensured >= 0)
      MSVC_LOG_W(LOG, "cannot set up the streams: %s (retrying)", msvc_strerror(status));
    bus->ensured = -1;
    if (!uv_is_active((uv_handle_t *)&bus->retry))
      uv_timer_start(&bus->retry, on_retry, RETRY_MS, 0);
    return;
  }
  if (bus->ensured >= 0 && ++bus->ensured == 2 && bus->sub == NULL)
    subscribe(bus);
}

static int ensure_one(ex_bus_t *bus, const char *name, const char *subjects) {
  msvc_events_stream_opts_t so;
  const char *subs[1] = {subjects};

  msvc_events_stream_opts_init(&so);
  so.name = name;
  so.subjects = subs;
  so.subject_count = 1;
  return msvc_events_stream_ensure(bus->ev, &so, on_ensured, bus);
}

static void ensure_streams(ex_bus_t *bus) {
  int rc;

  if (!ex_bus_live(bus))
    return;
  bus->ensured = 0;
  rc = ensure_one(bus, bus->opts.stream, bus->opts.subjects);
  if (rc == MSVC_OK)
    rc = ensure_one(bus, bus->opts.peer_stream, bus->opts.peer_subjects);
  if (rc != MSVC_OK) {
    MSVC_LOG_E(LOG, "cannot ask for the streams: %s", msvc_strerror(rc));
    bus->ensured = -1;
    uv_timer_start(&bus->retry, on_retry, RETRY_MS, 0);
  }
}

int ex_bus_open(msvc_service_t *svc, ex_db_set_t *dbs, const ex_bus_opts_t *opts,
                ex_bus_t **out, char *err, size_t errlen) {
  ex_bus_t *bus = calloc(1, sizeof(*bus));
  msvc_work_opts_t wo;
  ex_relay_opts_t ro;
  uv_loop_t *loop = msvc_service_loop(svc);
  int rc;

  *out = NULL;
  if (bus == NULL) {
    snprintf(err, errlen, "events: out of memory");
    return MSVC_ENOMEM;
  }
  bus->svc = svc;
  bus->opts = *opts;
  /* The service made the handle from MSVC_EVENTS and closes it after its
   * HTTP drain; everything here stops using it before then (ex_bus_live()). */
  bus->ev = msvc_service_events(svc);
  if (bus->ev == NULL) {
    snprintf(err, errlen, "events: MSVC_EVENTS is not set");
    free(bus);
    return MSVC_EINVAL;
  }
  rc = msvc_events_dedup_new(opts->dedup_capacity > 0 ? opts->dedup_capacity : 10000,
                             opts->dedup_ttl_ms > 0 ? opts->dedup_ttl_ms : 600000, &bus->dedup);
  if (rc != MSVC_OK) {
    snprintf(err, errlen, "events: cannot make the dedup window: %s", msvc_strerror(rc));
    free(bus);
    return rc;
  }
  msvc_work_opts_init(&wo);
  wo.threads = 2;
  wo.queue = 1024;
  rc = msvc_work_new(loop, &wo, &bus->pool);
  ex_relay_opts_init(&ro);
  ro.live = relay_live;
  ro.live_data = bus;
  ro.poll_ms = 250;
  if (rc == MSVC_OK)
    rc = ex_relay_new(loop, bus->ev, dbs, bus->pool, &ro, &bus->relay);
  if (rc != MSVC_OK) {
    snprintf(err, errlen, "events: cannot start the outbox relay: %s", msvc_strerror(rc));
    if (bus->pool != NULL)
      msvc_work_close(bus->pool, NULL, NULL);
    msvc_events_dedup_free(bus->dedup);
    free(bus);
    return rc;
  }
  uv_timer_init(loop, &bus->retry);
  bus->retry.data = bus;
  ensure_streams(bus);
  MSVC_LOG_I(LOG, "events on %s: publishing into %s through the outbox",
             msvc_events_backend(bus->ev), opts->stream);
  *out = bus;
  return MSVC_OK;
}

msvc_work_t *ex_bus_pool(ex_bus_t *bus) {
  return bus->pool;
}

void ex_bus_kick(ex_bus_t *bus) {
  if (bus != NULL)
    ex_relay_kick(bus->relay);
}

static void one_closed(void *data) {
  ex_bus_t *bus = data;

  if (--bus->pending == 0) {
    void (*cb)(void *) = bus->close_cb;
    void *cb_data = bus->close_data;

    msvc_events_dedup_free(bus->dedup);
    free(bus);
    if (cb != NULL)
      cb(cb_data);
  }
}

static void on_retry_closed(uv_handle_t *h) {
  one_closed(h->data);
}

void ex_bus_close(ex_bus_t *bus, void (*cb)(void *data), void *data) {
  if (bus == NULL) {
    if (cb != NULL)
      cb(data);
    return;
  }
  if (bus->closing)
    return;
  bus->closing = true;
  bus->close_cb = cb;
  bus->close_data = data;
  /* One for each part, plus one held until every close is asked. The
   * subscription went with the service's events handle. */
  bus->pending = 1 + 3;
  bus->sub = NULL;
  uv_close((uv_handle_t *)&bus->retry, on_retry_closed);
  ex_relay_close(bus->relay, one_closed, bus);
  msvc_work_close(bus->pool, one_closed, bus);
  one_closed(bus);
}
