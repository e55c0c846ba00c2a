/*
 * Spans of the events block: a producer span per publish and a consumer
 * span per delivery, linked across the broker by the `traceparent` header
 * the message already carries. With a tracer, the header is rewritten to
 * the new span's context on the way out and on the way in, so a handler
 * that passes the header on (to an event it publishes, to a call it makes)
 * continues the trace from its consumer span.
 */
#include <stdio.h>
#include <string.h>

#include <msvc/trace.h>

#include "events/events-internal.h"

static msvc__ev_hdr_t *find_tp(msvc__ev_hdr_t *h, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (h[i].name != NULL && msvc__strcasecmp(h[i].name, "traceparent") == 0)
      return &h[i];
  return NULL;
}

static msvc_span_t *start(msvc_events_t *ev, const char *subject, msvc__ev_hdr_t *h, size_t n,
                          msvc_span_kind_t kind, const char *op) {
  msvc__ev_hdr_t *tp = find_tp(h, n);
  msvc_trace_ctx_t parent;
  msvc_span_t *s = NULL;
  char name[256], value[MSVC_TRACE_TRACEPARENT_LEN];

  /* Only messages that belong to a trace get spans: an event published
   * outside any request starts none. */
  if (ev->opts.tracer == NULL || tp == NULL || tp->value == NULL ||
      msvc_trace_traceparent_parse(tp->value, strnlen(tp->value, 512), &parent) != MSVC_OK)
    return NULL;
  snprintf(name, sizeof(name), "%s %s", subject, op);
  if (msvc_trace_span_start(ev->opts.tracer, name, kind, &parent, &s) != MSVC_OK || s == NULL)
    return NULL;
  msvc_trace_span_set_str(s, "messaging.system", ev->backend != NULL
                                                     ? ev->backend->ops->name : "unknown");
  msvc_trace_span_set_str(s, "messaging.destination.name", subject);
  msvc_trace_span_set_str(s, "messaging.operation.type", op);
  /* A header's value shares one allocation with its name; any value that
   * parsed is at least as long as a version 00 one, so ours fits in place. */
  if (msvc_trace_traceparent_format(msvc_trace_span_ctx(s), value, sizeof(value)) == MSVC_OK &&
      strlen(tp->value) >= strlen(value))
    memcpy(tp->value, value, sizeof(value));
  return s;
}

void msvc__ev_trace_publish(msvc_events_t *ev, msvc__ev_pub_t *pub) {
  pub->span = start(ev, pub->subject, pub->headers, pub->header_count, MSVC_SPAN_PRODUCER,
                    "publish");
  if (pub->span != NULL)
    msvc_trace_span_set_str(pub->span, "messaging.message.id", pub->id);
}

void msvc__ev_trace_published(msvc__ev_pub_t *pub, int status) {
  if (pub->span == NULL)
    return;
  if (status != 0)
    msvc_trace_span_set_status(pub->span, MSVC_SPAN_STATUS_ERROR, msvc_strerror(status));
  msvc_trace_span_end(pub->span);
  pub->span = NULL;
}

void msvc__ev_trace_consume(msvc_events_t *ev, msvc_events_msg_t *msg) {
  msvc__ev_delivery_t *d = msg->d;

  msg->span = start(ev, d->subject, d->headers, d->header_count, MSVC_SPAN_CONSUMER, "process");
  if (msg->span != NULL) {
    msvc_trace_span_set_int(msg->span, "messaging.message.delivery_count", d->deliveries);
    if (msg->event.id != NULL)
      msvc_trace_span_set_str(msg->span, "messaging.message.id", msg->event.id);
  }
}

void msvc__ev_trace_settled(msvc_events_msg_t *msg, int how, const char *reason) {
  if (msg->span == NULL)
    return;
  if (how != MSVC__EV_ACK)
    msvc_trace_span_set_status(msg->span, MSVC_SPAN_STATUS_ERROR,
                               reason != NULL ? reason : how == MSVC__EV_NACK ? "nack" : "term");
  msvc_trace_span_end(msg->span);
  msg->span = NULL;
}
