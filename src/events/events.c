/*
 * The events core: handles, publishes, subscriptions and messages, on the
 * caller's loop. Backends (backend_memory.c, backend_nats.c) only move
 * bytes; see events-internal.h for who does what and on which thread.
 */
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

#include "events/events-internal.h"

static void ev_unref(msvc_events_t *ev);
static void sub_unref(msvc_events_sub_t *sub);
static void close_step(msvc_events_t *ev);

/* ---- options ------------------------------------------------------------- */

void msvc_events_opts_init(msvc_events_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_event_bytes = MSVC_EVENTS_DEFAULT_MAX_BYTES;
  opts->publish_timeout_ms = 5000;
  opts->max_pending_publishes = 4096;
  opts->reconnect_min_ms = 250;
  opts->reconnect_max_ms = 5000;
  opts->ready_grace_ms = 15000;
}

void msvc_events_stream_opts_init(msvc_events_stream_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->replicas = 1;
}

void msvc_events_sub_opts_init(msvc_events_sub_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_unacked = 64;
  opts->max_deliveries = 5;
  opts->ack_wait_ms = 30000;
  opts->backoff_min_ms = 500;
  opts->backoff_max_ms = 30000;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *arg) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s%s%s%s", msg, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
}

/* ---- headers ------------------------------------------------------------- */

void msvc__ev_hdrs_free(msvc__ev_hdr_t *h, size_t n) {
  if (h == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    msvc__free(h[i].name); /* value shares the allocation */
  msvc__free(h);
}

static int hdr_set(msvc__ev_hdr_t *h, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);

  h->name = msvc__malloc(nl + vl + 2);
  if (h->name == NULL)
    return MSVC_ENOMEM;
  memcpy(h->name, name, nl + 1);
  h->value = h->name + nl + 1;
  memcpy(h->value, value, vl + 1);
  return MSVC_OK;
}

/* Copies n public headers plus `extra` empty slots at the end. */
static int hdrs_from_public(const msvc_events_header_t *src, size_t n, size_t extra,
                            msvc__ev_hdr_t **out) {
  msvc__ev_hdr_t *h;

  *out = NULL;
  if (n == 0 && extra == 0)
    return MSVC_OK;
  if (n > 64)
    return MSVC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!msvc__ev_header_valid(src[i].name, src[i].value))
      return MSVC_EINVAL;
  h = msvc__calloc(n + extra, sizeof(*h));
  if (h == NULL)
    return MSVC_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (hdr_set(&h[i], src[i].name, src[i].value) != MSVC_OK) {
      msvc__ev_hdrs_free(h, n + extra);
      return MSVC_ENOMEM;
    }
  *out = h;
  return MSVC_OK;
}

int msvc__ev_hdrs_copy(const msvc__ev_hdr_t *src, size_t n, msvc__ev_hdr_t **out) {
  msvc__ev_hdr_t *h;

  *out = NULL;
  if (n == 0)
    return MSVC_OK;
  h = msvc__calloc(n, sizeof(*h));
  if (h == NULL)
    return MSVC_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (hdr_set(&h[i], src[i].name, src[i].value) != MSVC_OK) {
      msvc__ev_hdrs_free(h, n);
      return MSVC_ENOMEM;
    }
  *out = h;
  return MSVC_OK;
}

/* ---- metrics -------------------------------------------------------------- */

static msvc_metrics_family_t *family(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                                     const char *name, const char *help,
                                     const char *const *labels, size_t nlabels) {
  static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *f = NULL;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = help;
  o.label_names = labels;
  o.label_count = nlabels;
  if (type == MSVC_METRICS_HISTOGRAM) {
    o.buckets = buckets;
    o.bucket_count = sizeof(buckets) / sizeof(buckets[0]);
  }
  if (msvc_metrics_family_new(reg, type, &o, &f) != MSVC_OK)
    return NULL;
  return f;
}

static void metrics_init(msvc_events_t *ev) {
  static const char *const subject[] = {"subject"};
  static const char *const subject_result[] = {"subject", "result"};
  static const char *const durable[] = {"durable"};
  msvc_metrics_registry_t *reg = ev->opts.metrics;

  if (reg == NULL)
    return;
  ev->m_published = family(reg, MSVC_METRICS_COUNTER, "msvc_events_published_total",
                           "Events published, by subject and result (ok, error, timeout).",
                           subject_result, 2);
  ev->m_consumed = family(reg, MSVC_METRICS_COUNTER, "msvc_events_consumed_total",
                          "Messages handed to subscription handlers.", subject, 1);
  ev->m_acked = family(reg, MSVC_METRICS_COUNTER, "msvc_events_acked_total",
                       "Messages acknowledged.", subject, 1);
  ev->m_nacked = family(reg, MSVC_METRICS_COUNTER, "msvc_events_nacked_total",
                        "Messages negatively acknowledged (redelivered later).", subject, 1);
  ev->m_dead = family(reg, MSVC_METRICS_COUNTER, "msvc_events_dead_lettered_total",
                      "Messages moved to a dead-letter subject.", subject, 1);
  ev->m_latency = family(reg, MSVC_METRICS_HISTOGRAM, "msvc_events_publish_duration_seconds",
                         "Time from publish to the broker's acknowledgement.", subject, 1);
  ev->m_lag = family(reg, MSVC_METRICS_GAUGE, "msvc_events_consumer_lag",
                     "Messages the durable consumer has not been given yet.", durable, 1);
}

static void count(msvc_metrics_family_t *f, const char *subject, const char *result) {
  const char *values[2] = {subject, result};
  msvc_metrics_counter_t *c;

  if (f != NULL && msvc_metrics_counter_get(f, values, result ? 2 : 1, &c) == MSVC_OK)
    msvc_metrics_counter_inc(c);
}

/* ---- inbox: anything from any thread reaches the loop here ---------------- */

void msvc__ev_post(msvc_events_t *ev, msvc__ev_item_t *item) {
  msvc__ev_item_t *head = atomic_load_explicit(&ev->inbox, memory_order_relaxed);

  do
    item->inext = head;
  while (!atomic_compare_exchange_weak_explicit(&ev->inbox, &head, item, memory_order_release,
                                                memory_order_relaxed));
  /* Only the item that finds the stack empty wakes the loop: the others
   * land in a stack the loop has yet to take, and it takes all at once. */
  if (head == NULL)
    uv_async_send(&ev->async);
}

static void report_state(msvc_events_t *ev);

/* Runs every item waiting now (not those posted while running, which wake
 * the async again). */
static void drain_inbox(msvc_events_t *ev, bool closing) {
  msvc__ev_item_t *item = atomic_exchange_explicit(&ev->inbox, NULL, memory_order_acquire);
  msvc__ev_item_t *fifo = NULL;

  while (item != NULL) { /* newest first: reverse into posting order */
    msvc__ev_item_t *next = item->inext;
    item->inext = fifo;
    fifo = item;
    item = next;
  }
  while (fifo != NULL) {
    item = fifo;
    fifo = item->inext;
    item->inext = NULL;
    item->run(ev, item, closing);
  }
}

static void on_async(uv_async_t *h) {
  msvc_events_t *ev = msvc__container_of(h, msvc_events_t, async);

  ev->refs++; /* an item may release the last subscription */
  report_state(ev);
  drain_inbox(ev, false);
  if (ev->closing == 0 && ev->backend != NULL && ev->backend->ops->wake != NULL)
    ev->backend->ops->wake(ev->backend);
  ev_unref(ev);
}

/* ---- state ------------------------------------------------------------------ */

void msvc__ev_set_state(msvc_events_t *ev, msvc_events_state_t state) {
  atomic_store(&ev->state, (int)state);
  uv_async_send(&ev->async);
}

static void report_state(msvc_events_t *ev) {
  msvc_events_state_t s = (msvc_events_state_t)atomic_load(&ev->state);

  if (ev->closing != 0 || s == ev->reported_state)
    return;
  if (s == MSVC_EVENTS_CONNECTED) {
    ev->ever_connected = true;
    ev->down_since_ms = 0;
  } else if (ev->down_since_ms == 0) {
    ev->down_since_ms = uv_now(ev->loop) > 0 ? uv_now(ev->loop) : 1;
  }
  ev->reported_state = s;
  if (ev->state_cb != NULL)
    ev->state_cb(ev, s, ev->state_data);
}

msvc_events_state_t msvc_events_state(const msvc_events_t *ev) {
  if (ev == NULL || ev->closing != 0)
    return MSVC_EVENTS_CLOSED;
  return (msvc_events_state_t)atomic_load(&((msvc_events_t *)ev)->state);
}

bool msvc_events_ready(const msvc_events_t *ev, const char **detail) {
  const char *d;
  bool ok;

  switch (msvc_events_state(ev)) {
  case MSVC_EVENTS_CONNECTED:
    d = "connected";
    ok = true;
    break;
  case MSVC_EVENTS_CLOSED:
    d = "closed";
    ok = false;
    break;
  default: {
    /* Readiness follows the state seen on the loop, with a grace period, so
     * a broker restart does not flip the service out of rotation. */
    uint64_t since = ev->down_since_ms != 0 ? ev->down_since_ms : ev->created_ms;
    uint64_t down = uv_now(ev->loop) - since;
    ok = down < ev->opts.ready_grace_ms;
    d = !ok ? "unreachable" : ev->ever_connected ? "reconnecting" : "connecting";
    break;
  }
  }
  if (detail != NULL)
    *detail = d;
  return ok;
}

void msvc_events_on_state(msvc_events_t *ev, msvc_events_state_cb cb, void *data) {
  if (ev == NULL)
    return;
  ev->state_cb = cb;
  ev->state_data = data;
}

const char *msvc_events_backend(const msvc_events_t *ev) {
  return ev != NULL && ev->backend != NULL ? ev->backend->ops->name : "";
}

/* ---- handle ----------------------------------------------------------------- */

static void ev_free(msvc_events_t *ev) {
  msvc__free(ev->uri);
  msvc__free(ev->source);
  msvc__free(ev->name);
  msvc__free(ev);
}

static void ev_unref(msvc_events_t *ev) {
  if (--ev->refs == 0)
    ev_free(ev);
}

int msvc_events_new(uv_loop_t *loop, const char *uri, const msvc_events_opts_t *opts,
                    msvc_events_t **out, char *err, size_t errlen) {
  msvc_events_t *ev;
  msvc_events_opts_t o;
  int rc;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (loop == NULL || uri == NULL || out == NULL) {
    set_err(err, errlen, "events: NULL argument", NULL);
    return MSVC_EINVAL;
  }
  *out = NULL;
  msvc_events_opts_init(&o);
  if (opts != NULL && !msvc__opts_copy(&o, sizeof(o), opts)) {
    set_err(err, errlen, "events: options not initialised", NULL);
    return MSVC_EINVAL;
  }
  if (o.max_event_bytes < 256 || o.publish_timeout_ms == 0 || o.max_pending_publishes == 0 ||
      o.reconnect_min_ms == 0 || o.reconnect_max_ms < o.reconnect_min_ms) {
    set_err(err, errlen, "events: option out of range", NULL);
    return MSVC_EINVAL;
  }
  ev = msvc__calloc(1, sizeof(*ev));
  if (ev == NULL)
    return MSVC_ENOMEM;
  ev->loop = loop;
  ev->opts = o;
  ev->refs = 1;
  ev->reported_state = MSVC_EVENTS_CONNECTING;
  atomic_init(&ev->state, MSVC_EVENTS_CONNECTING);
  atomic_init(&ev->inbox, NULL);
  msvc__queue_init(&ev->pubs);
  msvc__queue_init(&ev->subs);
  msvc__queue_init(&ev->msgs);
  ev->uri = msvc__strdup(uri);
  ev->source = msvc__strdup(o.source != NULL ? o.source : "/msvc");
  ev->name = msvc__strdup(o.name != NULL ? o.name : ev->source);
  if (ev->uri == NULL || ev->source == NULL || ev->name == NULL) {
    msvc__free(ev->uri);
    msvc__free(ev->source);
    msvc__free(ev->name);
    msvc__free(ev);
    return MSVC_ENOMEM;
  }
  ev->opts.source = ev->source;
  ev->opts.name = ev->name;
  if (strncmp(uri, "memory://", 9) == 0) {
    rc = msvc__ev_memory_new(ev, uri, &ev->backend, err, errlen);
  } else if (strncmp(uri, "nats://", 7) == 0) {
#ifdef MSVC_HAVE_NATS
    rc = msvc__ev_nats_new(ev, uri, &ev->backend, err, errlen);
#else
    set_err(err, errlen, "events: this build has no NATS backend (libnats not found):", uri);
    rc = MSVC_ENOTSUP;
#endif
  } else {
    set_err(err, errlen, "events: unknown URI scheme (memory://, nats://host:port):", uri);
    rc = MSVC_EURI;
  }
  if (rc != MSVC_OK) {
    ev_free(ev);
    return rc;
  }
  uv_async_init(loop, &ev->async, on_async);
  uv_timer_init(loop, &ev->timer);
  uv_unref((uv_handle_t *)&ev->timer);
  ev->open_handles = 2;
  ev->created_ms = uv_now(loop);
  metrics_init(ev);
  rc = ev->backend->ops->start(ev->backend);
  if (rc != MSVC_OK) {
    set_err(err, errlen, "events: backend failed to start:", msvc_strerror(rc));
    /* The handles exist: close them properly before failing. */
    ev->start_failed = true;
    msvc_events_close(ev, NULL, NULL);
    return rc;
  }
  *out = ev;
  return MSVC_OK;
}

/* ---- publishing ----------------------------------------------------------- */

static void pub_free(msvc__ev_pub_t *pub) {
  msvc__ev_trace_published(pub, MSVC_ECANCELED);
  msvc__free(pub->subject);
  msvc__free(pub->body);
  msvc__ev_hdrs_free(pub->headers, pub->header_count);
  msvc__free(pub);
}

static void pub_finish(msvc_events_t *ev, msvc__ev_pub_t *pub, int status) {
  if (pub->finished)
    return;
  pub->finished = true;
  msvc__ev_trace_published(pub, status);
  if (pub->internal_done == NULL) {
    count(ev->m_published, pub->subject,
          status == MSVC_OK ? "ok" : status == MSVC_ETIMEDOUT ? "timeout" : "error");
    if (status == MSVC_OK && ev->m_latency != NULL) {
      msvc_metrics_histogram_t *h;
      const char *v[1] = {pub->subject};
      if (msvc_metrics_histogram_get(ev->m_latency, v, 1, &h) == MSVC_OK)
        msvc_metrics_histogram_observe(h, (double)(uv_now(ev->loop) - pub->started_ms) / 1e3);
    }
  }
  if (pub->internal_done != NULL)
    pub->internal_done(ev, pub, status);
  else if (pub->cb != NULL)
    pub->cb(status, pub->id, pub->cb_data);
}

static void on_pub_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  msvc__ev_pub_t *pub = msvc__container_of(item, msvc__ev_pub_t, item);

  (void)closing;
  msvc__queue_remove(&pub->node);
  ev->pending_pubs--;
  pub_finish(ev, pub, pub->status);
  pub_free(pub);
}

void msvc__ev_publish_done(msvc__ev_pub_t *pub, int status) {
  pub->status = status;
  atomic_store(&pub->completed, 1);
  msvc__ev_post(pub->ev, &pub->item);
}

static void arm_timer(msvc_events_t *ev);

static void on_timer(uv_timer_t *t) {
  msvc_events_t *ev = msvc__container_of(t, msvc_events_t, timer);
  uint64_t now = uv_now(ev->loop);
  msvc__queue_t *q, *next;

  ev->refs++;
  for (q = ev->pubs.next; q != &ev->pubs; q = next) {
    msvc__ev_pub_t *pub = msvc__container_of(q, msvc__ev_pub_t, node);
    next = q->next;
    if (pub->started_ms + ev->opts.publish_timeout_ms > now)
      break;
    pub_finish(ev, pub, MSVC_ETIMEDOUT); /* freed when the backend completes */
  }
  arm_timer(ev);
  ev_unref(ev);
}

static void arm_timer(msvc_events_t *ev) {
  msvc__queue_t *q;

  if (ev->closing >= 2)
    return;
  msvc__queue_foreach(q, &ev->pubs) {
    msvc__ev_pub_t *pub = msvc__container_of(q, msvc__ev_pub_t, node);
    uint64_t due, now = uv_now(ev->loop);
    if (pub->finished)
      continue;
    due = pub->started_ms + ev->opts.publish_timeout_ms;
    uv_timer_start(&ev->timer, on_timer, due > now ? due - now : 0, 0);
    return;
  }
  uv_timer_stop(&ev->timer);
}

/* Takes ownership of body and headers (also on failure). */
static int publish_body(msvc_events_t *ev, const char *subject, char *body, size_t len,
                        msvc__ev_hdr_t *headers, size_t header_count, const char *id,
                        msvc_events_publish_cb cb, void *data, msvc__ev_pub_t **out) {
  msvc__ev_pub_t *pub;
  bool internal = out != NULL;

  if (ev->closing != 0 && !internal) {
    msvc__free(body);
    msvc__ev_hdrs_free(headers, header_count);
    return MSVC_ECLOSED;
  }
  /* A dead-letter publish carries what the broker gave us, whatever size. */
  if (!internal && len > ev->opts.max_event_bytes) {
    msvc__free(body);
    msvc__ev_hdrs_free(headers, header_count);
    return MSVC_ETOOLARGE;
  }
  if (!internal && ev->pending_pubs >= ev->opts.max_pending_publishes) {
    msvc__free(body);
    msvc__ev_hdrs_free(headers, header_count);
    return MSVC_EEVENTS_BUSY;
  }
  pub = msvc__calloc(1, sizeof(*pub));
  if (pub == NULL || (pub->subject = msvc__strdup(subject)) == NULL) {
    msvc__free(pub);
    msvc__free(body);
    msvc__ev_hdrs_free(headers, header_count);
    return MSVC_ENOMEM;
  }
  pub->item.run = on_pub_item;
  pub->ev = ev;
  pub->body = body;
  pub->len = len;
  pub->headers = headers;
  pub->header_count = header_count;
  snprintf(pub->id, sizeof(pub->id), "%s", id);
  pub->started_ms = uv_now(ev->loop);
  pub->cb = cb;
  pub->cb_data = data;
  msvc__queue_insert_tail(&ev->pubs, &pub->node);
  ev->pending_pubs++;
  if (out != NULL)
    *out = pub;
  if (!uv_is_active((uv_handle_t *)&ev->timer))
    arm_timer(ev);
  if (!internal)
    msvc__ev_trace_publish(ev, pub);
  ev->backend->ops->publish(ev->backend, pub);
  return MSVC_OK;
}

int msvc_events_publish(msvc_events_t *ev, const msvc_event_t *event, msvc_events_publish_cb cb,
                        void *data) {
  char id[MSVC_EVENTS_ID_MAX + 1];
  const char *subject;
  msvc__ev_hdr_t *hdrs;
  char *body;
  size_t len;
  int rc;

  if (ev == NULL || event == NULL)
    return MSVC_EINVAL;
  if (ev->closing != 0)
    return MSVC_ECLOSED;
  subject = event->subject != NULL ? event->subject : event->type;
  if (subject == NULL || !msvc__ev_subject_valid(subject, false))
    return MSVC_EINVAL;
  if (event->header_count > 0 && event->headers == NULL)
    return MSVC_EINVAL;
  rc = msvc__ev_envelope_build(event, ev->source, id, &body, &len);
  if (rc != MSVC_OK)
    return rc;
  rc = hdrs_from_public(event->headers, event->header_count, 0, &hdrs);
  if (rc != MSVC_OK) {
    msvc__free(body);
    return rc;
  }
  return publish_body(ev, subject, body, len, hdrs, event->header_count, id, cb, data, NULL);
}

int msvc_events_publish_envelope(msvc_events_t *ev, const char *subject, const char *envelope,
                                 size_t len, const msvc_events_header_t *headers,
                                 size_t header_count, msvc_events_publish_cb cb, void *data) {
  msvc_events_envelope_t *env;
  msvc__ev_hdr_t *hdrs;
  char id[MSVC_EVENTS_ID_MAX + 1];
  char *body;
  int rc;

  if (ev == NULL || subject == NULL || envelope == NULL || (header_count > 0 && headers == NULL))
    return MSVC_EINVAL;
  if (ev->closing != 0)
    return MSVC_ECLOSED;
  if (!msvc__ev_subject_valid(subject, false))
    return MSVC_EINVAL;
  if (len > ev->opts.max_event_bytes)
    return MSVC_ETOOLARGE;
  rc = msvc_events_envelope_parse(envelope, len, &env, NULL);
  if (rc != MSVC_OK)
    return rc;
  snprintf(id, sizeof(id), "%s", msvc_events_envelope_event(env)->id);
  msvc_events_envelope_free(env);
  rc = hdrs_from_public(headers, header_count, 0, &hdrs);
  if (rc != MSVC_OK)
    return rc;
  body = msvc__strndup(envelope, len);
  if (body == NULL) {
    msvc__ev_hdrs_free(hdrs, header_count);
    return MSVC_ENOMEM;
  }
  return publish_body(ev, subject, body, len, hdrs, header_count, id, cb, data, NULL);
}

/* ---- streams ---------------------------------------------------------------- */

static void stream_req_free(msvc__ev_stream_req_t *req) {
  for (size_t i = 0; i < req->subject_count; i++)
    msvc__free(req->subjects[i]);
  msvc__free(req->subjects);
  msvc__free(req->name);
  msvc__free(req);
}

static void on_stream_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  msvc__ev_stream_req_t *req = msvc__container_of(item, msvc__ev_stream_req_t, item);

  (void)closing;
  ev->pending_other--;
  if (req->status != MSVC_OK)
    msvc_log_write(MSVC_LOG_WARN, MSVC__EV_COMPONENT, NULL, 0, "stream %s: %s", req->name,
                   msvc_strerror(req->status));
  if (req->cb != NULL)
    req->cb(req->status, req->cb_data);
  stream_req_free(req);
}

void msvc__ev_stream_done(msvc__ev_stream_req_t *req, int status) {
  req->status = status;
  msvc__ev_post(req->ev, &req->item);
}

int msvc_events_stream_ensure(msvc_events_t *ev, const msvc_events_stream_opts_t *opts,
                              msvc_events_done_cb cb, void *data) {
  msvc_events_stream_opts_t o;
  msvc__ev_stream_req_t *req;

  if (ev == NULL || opts == NULL)
    return MSVC_EINVAL;
  if (ev->closing != 0)
    return MSVC_ECLOSED;
  msvc_events_stream_opts_init(&o);
  if (!msvc__opts_copy(&o, sizeof(o), opts))
    return MSVC_EINVAL;
  if (!msvc__ev_name_valid(o.name) || o.subjects == NULL || o.subject_count == 0 ||
      o.subject_count > 64 || o.replicas < 1 || o.replicas > 5)
    return MSVC_EINVAL;
  for (size_t i = 0; i < o.subject_count; i++)
    if (!msvc__ev_subject_valid(o.subjects[i], true))
      return MSVC_EINVAL;
  req = msvc__calloc(1, sizeof(*req));
  if (req == NULL)
    return MSVC_ENOMEM;
  req->item.run = on_stream_item;
  req->ev = ev;
  req->name = msvc__strdup(o.name);
  req->subjects = msvc__calloc(o.subject_count, sizeof(char *));
  if (req->name == NULL || req->subjects == NULL) {
    stream_req_free(req);
    return MSVC_ENOMEM;
  }
  for (size_t i = 0; i < o.subject_count; i++) {
    req->subjects[i] = msvc__strdup(o.subjects[i]);
    req->subject_count = i + 1;
    if (req->subjects[i] == NULL) {
      stream_req_free(req);
      return MSVC_ENOMEM;
    }
  }
  req->replicas = o.replicas;
  req->max_age_ms = o.max_age_ms;
  req->duplicate_window_ms = o.duplicate_window_ms;
  req->cb = cb;
  req->cb_data = data;
  ev->pending_other++;
  ev->backend->ops->stream_ensure(ev->backend, req);
  return MSVC_OK;
}

/* ---- subscriptions --------------------------------------------------------- */

static void sub_free(msvc_events_sub_t *sub) {
  msvc_events_t *ev = sub->ev;

  msvc__free(sub->stream);
  msvc__free(sub->subject);
  msvc__free(sub->durable);
  msvc__free(sub->dead_letter);
  msvc__free(sub);
  ev_unref(ev);
}

static void sub_unref(msvc_events_sub_t *sub) {
  if (atomic_fetch_sub(&sub->refs, 1) == 1)
    sub_free(sub);
}

uint32_t msvc__ev_sub_credits(const msvc_events_sub_t *sub) {
  unsigned used = atomic_load(&((msvc_events_sub_t *)sub)->unacked);

  if (sub->closing || used >= sub->opts.max_unacked)
    return 0;
  return sub->opts.max_unacked - used;
}

int msvc_events_subscribe(msvc_events_t *ev, const msvc_events_sub_opts_t *opts,
                          msvc_events_handler_fn handler, void *data, msvc_events_sub_t **out) {
  msvc_events_sub_opts_t o;
  msvc_events_sub_t *sub;
  int rc;

  if (ev == NULL || opts == NULL || handler == NULL || out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  if (ev->closing != 0)
    return MSVC_ECLOSED;
  msvc_events_sub_opts_init(&o);
  if (!msvc__opts_copy(&o, sizeof(o), opts))
    return MSVC_EINVAL;
  if (o.stream == NULL || !msvc__ev_name_valid(o.stream) || o.durable == NULL ||
      !msvc__ev_name_valid(o.durable) || o.subject == NULL ||
      !msvc__ev_subject_valid(o.subject, true) || o.max_unacked < 1 ||
      o.max_unacked > 100000 || o.max_deliveries < 1 || o.max_deliveries > 1000 ||
      o.ack_wait_ms < 10 || o.backoff_min_ms < 1 || o.backoff_max_ms < o.backoff_min_ms ||
      (o.dead_letter != NULL && !msvc__ev_subject_valid(o.dead_letter, false)))
    return MSVC_EINVAL;
  sub = msvc__calloc(1, sizeof(*sub));
  if (sub == NULL)
    return MSVC_ENOMEM;
  sub->ev = ev;
  sub->stream = msvc__strdup(o.stream);
  sub->subject = msvc__strdup(o.subject);
  sub->durable = msvc__strdup(o.durable);
  if (o.dead_letter != NULL) {
    sub->dead_letter = msvc__strdup(o.dead_letter);
  } else {
    size_t n = strlen(MSVC_EVENTS_DLQ_PREFIX) + strlen(o.durable) + 1;
    sub->dead_letter = msvc__malloc(n);
    if (sub->dead_letter != NULL)
      snprintf(sub->dead_letter, n, "%s%s", MSVC_EVENTS_DLQ_PREFIX, o.durable);
    sub->dlq_default = true;
  }
  if (sub->stream == NULL || sub->subject == NULL || sub->durable == NULL ||
      sub->dead_letter == NULL) {
    msvc__free(sub->stream);
    msvc__free(sub->subject);
    msvc__free(sub->durable);
    msvc__free(sub->dead_letter);
    msvc__free(sub);
    return MSVC_ENOMEM;
  }
  o.stream = sub->stream;
  o.subject = sub->subject;
  o.durable = sub->durable;
  o.dead_letter = sub->dead_letter;
  sub->opts = o;
  sub->handler = handler;
  sub->data = data;
  atomic_init(&sub->refs, 1);
  atomic_init(&sub->unacked, 0);
  if (ev->m_lag != NULL) {
    const char *v[1] = {sub->durable};
    (void)msvc_metrics_gauge_get(ev->m_lag, v, 1, &sub->m_lag);
  }
  ev->refs++;
  rc = ev->backend->ops->sub_start(ev->backend, sub);
  if (rc != MSVC_OK) {
    sub_free(sub);
    return rc;
  }
  msvc__queue_insert_tail(&ev->subs, &sub->node);
  *out = sub;
  return MSVC_OK;
}

void msvc__ev_sub_stopped(msvc_events_sub_t *sub) {
  msvc_events_t *ev = sub->ev;

  sub->stopped = true;
  msvc__queue_remove(&sub->node);
  sub_unref(sub);
  if (ev->closing == 1)
    close_step(ev);
}

void msvc_events_sub_close(msvc_events_sub_t *sub) {
  if (sub == NULL || sub->closing)
    return;
  sub->closing = true;
  sub->ev->backend->ops->sub_stop(sub->ev->backend, sub);
}

uint32_t msvc_events_sub_unacked(const msvc_events_sub_t *sub) {
  return sub != NULL ? atomic_load(&((msvc_events_sub_t *)sub)->unacked) : 0;
}

/* ---- deliveries and messages ---------------------------------------------- */

void msvc__ev_delivery_free(msvc__ev_delivery_t *d) {
  msvc__free(d->subject);
  msvc__free(d->body);
  msvc__ev_hdrs_free(d->headers, d->header_count);
  msvc__free(d);
}

/* The delivery leaves the core without reaching the backend again. */
static void delivery_drop(msvc_events_t *ev, msvc__ev_delivery_t *d) {
  msvc_events_sub_t *sub = d->sub;

  if (d->token != NULL && ev->backend != NULL && !ev->backend_closed)
    ev->backend->ops->release(ev->backend, d->token);
  d->token = NULL;
  atomic_fetch_sub(&sub->unacked, 1);
  msvc__ev_delivery_free(d);
  sub_unref(sub);
}

static void msg_free(msvc_events_msg_t *msg) {
  msvc_events_t *ev = msg->sub->ev;

  msvc__queue_remove(&msg->node);
  msvc__ev_trace_settled(msg, MSVC__EV_TERM, "not settled");
  msvc_events_envelope_free(msg->env);
  msvc__free(msg->hdrs);
  if (msg->d != NULL)
    delivery_drop(ev, msg->d);
  msvc__free(msg);
}

static void settle(msvc_events_msg_t *msg, msvc__ev_settle_t how, uint32_t delay_ms) {
  msvc_events_sub_t *sub = msg->sub;
  msvc_events_t *ev = sub->ev;
  msvc__ev_delivery_t *d = msg->d;

  bool credit;

  msvc__ev_trace_settled(msg, how, NULL);
  if (d->token != NULL && !ev->backend_closed && ev->closing == 0) {
    /* A message of a closed subscription goes back to the broker as it is:
     * the ack wait hands it to another member. */
    if (sub->closing)
      ev->backend->ops->release(ev->backend, d->token);
    else
      ev->backend->ops->settle(ev->backend, sub, d->token, how, delay_ms);
    d->token = NULL;
  }
  credit = ev->closing == 0 && !sub->closing && ev->backend->ops->sub_credit != NULL;
  atomic_fetch_add(&sub->refs, 1);
  msg_free(msg);
  if (credit)
    ev->backend->ops->sub_credit(ev->backend, sub);
  sub_unref(sub);
}

static int msg_closed(const msvc_events_msg_t *msg) {
  return msg->sub->closing || msg->sub->ev->closing != 0 || msg->d->token == NULL;
}

int msvc_events_ack(msvc_events_msg_t *msg) {
  int rc;

  if (msg == NULL)
    return MSVC_EINVAL;
  rc = msg_closed(msg) ? MSVC_ECLOSED : MSVC_OK;
  if (rc == MSVC_OK)
    count(msg->sub->ev->m_acked, msg->d->subject, NULL);
  settle(msg, MSVC__EV_ACK, 0);
  return rc;
}

typedef struct dlq_ctx_s {
  msvc_events_msg_t *msg;
  uint32_t delay_ms;
} dlq_ctx_t;

static void on_dead_lettered(msvc_events_t *ev, msvc__ev_pub_t *pub, int status) {
  msvc_events_msg_t *msg = pub->internal_data;

  pub->internal_data = NULL;
  if (msg == NULL)
    return;
  if (status == MSVC_OK) {
    count(ev->m_dead, msg->d->subject, NULL);
    msvc_log_write(MSVC_LOG_WARN, MSVC__EV_COMPONENT, NULL, 0,
                   "event %s on %s dead-lettered to %s after %u deliveries",
                   msg->event.id != NULL ? msg->event.id : "(not an envelope)", msg->d->subject,
                   msg->sub->dead_letter, (unsigned)msg->d->deliveries);
    settle(msg, MSVC__EV_TERM, 0);
  } else {
    /* The dead-letter subject did not take it: try again on a later delivery. */
    msvc_log_write(MSVC_LOG_ERROR, MSVC__EV_COMPONENT, NULL, 0,
                   "dead-lettering event on %s to %s failed: %s", msg->d->subject,
                   msg->sub->dead_letter, msvc_strerror(status));
    settle(msg, MSVC__EV_NACK,
           msvc_events_backoff_ms(msg->sub->opts.backoff_min_ms, msg->sub->opts.backoff_max_ms,
                                  msg->d->deliveries, msvc__rand64()));
  }
}

static void dead_letter(msvc_events_msg_t *msg, const char *reason) {
  msvc_events_sub_t *sub = msg->sub;
  msvc_events_t *ev = sub->ev;
  msvc__ev_delivery_t *d = msg->d;
  size_t n = d->header_count;
  msvc__ev_hdr_t *hdrs = NULL;
  msvc__ev_pub_t *pub = NULL;
  char deliveries[16], *body;
  size_t keep = 0;

  snprintf(deliveries, sizeof(deliveries), "%u", (unsigned)d->deliveries);
  hdrs = msvc__calloc(n + 3, sizeof(*hdrs));
  body = msvc__malloc(d->len + 1);
  if (hdrs == NULL || body == NULL)
    goto oom;
  memcpy(body, d->body, d->len);
  body[d->len] = '\0';
  for (size_t i = 0; i < n; i++) {
    /* A message dead-lettered twice keeps only the latest reason. */
    if (msvc__strcasecmp(d->headers[i].name, MSVC_EVENTS_HDR_REASON) == 0 ||
        msvc__strcasecmp(d->headers[i].name, MSVC_EVENTS_HDR_SUBJECT) == 0 ||
        msvc__strcasecmp(d->headers[i].name, MSVC_EVENTS_HDR_DELIVERIES) == 0 ||
        msvc__strcasecmp(d->headers[i].name, "Nats-Msg-Id") == 0)
      continue;
    if (hdr_set(&hdrs[keep], d->headers[i].name, d->headers[i].value) != MSVC_OK)
      goto oom;
    keep++;
  }
  if (hdr_set(&hdrs[keep], MSVC_EVENTS_HDR_REASON, reason) != MSVC_OK)
    goto oom;
  keep++;
  if (hdr_set(&hdrs[keep], MSVC_EVENTS_HDR_SUBJECT, d->subject) != MSVC_OK)
    goto oom;
  keep++;
  if (hdr_set(&hdrs[keep], MSVC_EVENTS_HDR_DELIVERIES, deliveries) != MSVC_OK)
    goto oom;
  keep++;
  if (publish_body(ev, sub->dead_letter, body, d->len, hdrs, keep,
                   msg->event.id != NULL ? msg->event.id : "", NULL, NULL, &pub) != MSVC_OK) {
    body = NULL;
    hdrs = NULL;
    goto oom;
  }
  pub->internal_done = on_dead_lettered;
  pub->internal_data = msg;
  msg->dead_pub = pub;
  return;

oom:
  msvc__free(body);
  msvc__ev_hdrs_free(hdrs, n + 3);
  settle(msg, MSVC__EV_NACK,
         msvc_events_backoff_ms(sub->opts.backoff_min_ms, sub->opts.backoff_max_ms,
                                d->deliveries, msvc__rand64()));
}

int msvc_events_nack(msvc_events_msg_t *msg, uint32_t delay_ms, const char *reason) {
  msvc_events_sub_t *sub;

  if (msg == NULL)
    return MSVC_EINVAL;
  if (msg_closed(msg) || msg->dead_pub != NULL) {
    if (msg->dead_pub == NULL)
      settle(msg, MSVC__EV_NACK, 0);
    return MSVC_ECLOSED;
  }
  sub = msg->sub;
  if (reason == NULL)
    reason = "nack";
  count(sub->ev->m_nacked, msg->d->subject, NULL);
  if (msg->d->deliveries >= sub->opts.max_deliveries) {
    dead_letter(msg, reason);
    return MSVC_OK;
  }
  if (delay_ms == 0)
    delay_ms = msvc_events_backoff_ms(sub->opts.backoff_min_ms, sub->opts.backoff_max_ms,
                                      msg->d->deliveries, msvc__rand64());
  settle(msg, MSVC__EV_NACK, delay_ms);
  return MSVC_OK;
}

int msvc_events_term(msvc_events_msg_t *msg, const char *reason) {
  if (msg == NULL)
    return MSVC_EINVAL;
  if (msg_closed(msg) || msg->dead_pub != NULL) {
    if (msg->dead_pub == NULL)
      settle(msg, MSVC__EV_NACK, 0);
    return MSVC_ECLOSED;
  }
  dead_letter(msg, reason != NULL ? reason : "terminated");
  return MSVC_OK;
}

const msvc_event_t *msvc_events_msg_event(const msvc_events_msg_t *msg) {
  return msg != NULL ? &msg->event : NULL;
}

const char *msvc_events_msg_subject(const msvc_events_msg_t *msg) {
  return msg != NULL ? msg->d->subject : NULL;
}

const char *msvc_events_msg_header(const msvc_events_msg_t *msg, const char *name) {
  if (msg == NULL || name == NULL)
    return NULL;
  for (size_t i = 0; i < msg->d->header_count; i++)
    if (msvc__strcasecmp(msg->d->headers[i].name, name) == 0)
      return msg->d->headers[i].value;
  return NULL;
}

uint32_t msvc_events_msg_deliveries(const msvc_events_msg_t *msg) {
  return msg != NULL ? msg->d->deliveries : 0;
}

const char *msvc_events_msg_body(const msvc_events_msg_t *msg, size_t *len) {
  if (msg == NULL)
    return NULL;
  if (len != NULL)
    *len = msg->d->len;
  return msg->d->body;
}

void msvc__ev_deliver(msvc__ev_delivery_t *d) {
  atomic_fetch_add(&d->sub->unacked, 1);
  atomic_fetch_add(&d->sub->refs, 1);
  msvc__ev_post(d->sub->ev, &d->item);
}

/* A message the handler never sees: malformed, oversized, or delivered once
 * more than allowed (its earlier deliveries were never settled in time). */
static void auto_reject(msvc_events_msg_t *msg, const char *reason) {
  msvc_log_write(MSVC_LOG_WARN, MSVC__EV_COMPONENT, NULL, 0,
                 "message on %s rejected (delivery %u): %s", msg->d->subject,
                 (unsigned)msg->d->deliveries, reason);
  if (msg->d->deliveries > msg->sub->opts.max_deliveries)
    dead_letter(msg, reason);
  else
    (void)msvc_events_nack(msg, 0, reason);
}

static void on_delivery_item(msvc_events_t *ev, msvc__ev_item_t *item, bool closing) {
  msvc__ev_delivery_t *d = msvc__container_of(item, msvc__ev_delivery_t, item);
  msvc_events_sub_t *sub = d->sub;
  msvc_events_msg_t *msg;
  const char *why = NULL;
  char reason[128];
  int rc;

  if (closing || sub->closing || ev->closing != 0) {
    delivery_drop(ev, d);
    return;
  }
  if (sub->m_lag != NULL)
    msvc_metrics_gauge_set(sub->m_lag, (double)d->pending);
  msg = msvc__calloc(1, sizeof(*msg));
  if (msg == NULL) {
    delivery_drop(ev, d); /* redelivered after ack_wait */
    return;
  }
  msg->sub = sub;
  msg->d = d;
  msvc__queue_insert_tail(&ev->msgs, &msg->node);
  if (d->len > ev->opts.max_event_bytes) {
    if (!sub->opts.accept_raw) {
      auto_reject(msg, "oversized");
      return;
    }
    rc = MSVC_ETOOLARGE; /* not parsed: handed over as it is */
  } else {
    rc = msvc_events_envelope_parse(d->body, d->len, &msg->env, &why);
  }
  if (rc == MSVC_ENOMEM) {
    msg_free(msg);
    return;
  }
  if (rc != MSVC_OK && !sub->opts.accept_raw) {
    snprintf(reason, sizeof(reason), "malformed envelope: %s", why ? why : "?");
    auto_reject(msg, reason);
    return;
  }
  if (rc == MSVC_OK)
    msg->event = *msvc_events_envelope_event(msg->env);
  else
    msg->event = (msvc_event_t){.type = "", .id = "", .source = "", .time = "",
                                .datacontenttype = "application/octet-stream",
                                .data = d->body, .data_len = d->len};
  msg->event.subject = d->subject;
  msvc__ev_trace_consume(ev, msg);
  if (d->header_count > 0) {
    msg->hdrs = msvc__calloc(d->header_count, sizeof(*msg->hdrs));
    if (msg->hdrs == NULL) {
      msg_free(msg);
      return;
    }
    for (size_t i = 0; i < d->header_count; i++) {
      msg->hdrs[i].name = d->headers[i].name;
      msg->hdrs[i].value = d->headers[i].value;
    }
    msg->event.headers = msg->hdrs;
    msg->event.header_count = d->header_count;
  }
  if (d->deliveries > sub->opts.max_deliveries) {
    auto_reject(msg, "not acknowledged in time");
    return;
  }
  count(ev->m_consumed, d->subject, NULL);
  sub->handler(sub, msg, sub->data);
}

/* Backends allocate deliveries with this so the core can run them. */
msvc__ev_delivery_t *msvc__ev_delivery_new(msvc_events_sub_t *sub) {
  msvc__ev_delivery_t *d = msvc__calloc(1, sizeof(*d));

  if (d != NULL) {
    d->item.run = on_delivery_item;
    d->sub = sub;
  }
  return d;
}

/* ---- close ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  msvc_events_t *ev = h->data;
  msvc_events_close_cb cb;
  void *data;

  if (--ev->open_handles > 0)
    return;
  cb = ev->close_cb;
  data = ev->close_data;
  ev_unref(ev);
  if (cb != NULL)
    cb(data);
}

void msvc__ev_backend_closed(msvc_events_t *ev) {
  msvc__queue_t *q;

  ev->backend_closed = true;
  /* Whatever the backend completed on its way out. */
  drain_inbox(ev, true);
  /* Publishes it never completed (it must have, but be safe). */
  while (!msvc__queue_empty(&ev->pubs)) {
    msvc__ev_pub_t *pub;
    q = ev->pubs.next;
    pub = msvc__container_of(q, msvc__ev_pub_t, node);
    msvc__queue_remove(q);
    ev->pending_pubs--;
    pub_finish(ev, pub, MSVC_ECLOSED);
    pub_free(pub);
  }
  ev->backend = NULL;
  ev->closing = 2;
  ev->async.data = ev;
  ev->timer.data = ev;
  uv_close((uv_handle_t *)&ev->async, on_handle_closed);
  uv_close((uv_handle_t *)&ev->timer, on_handle_closed);
}

/* Step 1 of a close: every subscription stopped; then what is in flight
 * inside the core is given back to the backend, then the backend closes. */
static void close_step(msvc_events_t *ev) {
  msvc__queue_t *q;

  if (ev->closing != 1 || !msvc__queue_empty(&ev->subs) || ev->close_started)
    return;
  ev->close_started = true;
  drain_inbox(ev, true);
  msvc__queue_foreach(q, &ev->msgs) {
    msvc_events_msg_t *msg = msvc__container_of(q, msvc_events_msg_t, node);
    if (msg->d->token != NULL) {
      ev->backend->ops->release(ev->backend, msg->d->token);
      msg->d->token = NULL;
    }
  }
  ev->backend->ops->close(ev->backend);
}

void msvc_events_close(msvc_events_t *ev, msvc_events_close_cb cb, void *data) {
  msvc__queue_t *q, *next;

  if (ev == NULL || ev->closing != 0)
    return;
  ev->closing = 1;
  ev->close_cb = cb;
  ev->close_data = data;
  atomic_store(&ev->state, MSVC_EVENTS_CLOSED);
  for (q = ev->subs.next; q != &ev->subs; q = next) {
    msvc_events_sub_t *sub = msvc__container_of(q, msvc_events_sub_t, node);
    next = q->next;
    if (!sub->closing) {
      sub->closing = true;
      ev->backend->ops->sub_stop(ev->backend, sub);
    }
  }
  close_step(ev);
}
