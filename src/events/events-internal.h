/*
 * Internals of the events block: the structures behind the public handles
 * and the backend vtable.
 *
 * Division of labour. The core (events.c) owns everything a caller sees:
 * envelopes, publish bookkeeping and timeouts, subscriptions, messages,
 * flow-control credits, the dead-letter decision, metrics, and the one
 * uv_async_t through which anything happening on another thread reaches
 * the loop. A backend only moves bytes: it publishes a body, ensures a
 * stream, feeds deliveries of a subscription and settles them.
 *
 * Threads. Backend completions (msvc__ev_publish_done(), msvc__ev_deliver(),
 * msvc__ev_set_state(), ...) may be called from ANY thread: they only push
 * an item onto the core's inbox (lock-free) and wake the loop. The core runs the
 * item on the loop thread. That is what lets a client library call back on
 * its own threads while every user callback still runs on the loop.
 */
#ifndef MSVC_EVENTS_INTERNAL_H
#define MSVC_EVENTS_INTERNAL_H

#include <stdatomic.h>

#include <uv.h>

#include <msvc/events.h>
#include <msvc/metrics.h>

#include "msvc-internal.h"

#define MSVC__EV_COMPONENT "events"

typedef struct msvc__ev_backend_s msvc__ev_backend_t;
typedef struct msvc__ev_item_s msvc__ev_item_t;
typedef struct msvc__ev_pub_s msvc__ev_pub_t;
typedef struct msvc__ev_stream_req_s msvc__ev_stream_req_t;
typedef struct msvc__ev_delivery_s msvc__ev_delivery_t;

/* An item handed to the loop through the inbox; run() executes on the loop
 * thread (or with closing = true when the handle is torn down first, to
 * release it). */
struct msvc__ev_item_s {
  msvc__queue_t node;
  msvc__ev_item_t *inext; /* link in the inbox (a lock-free stack) */
  void (*run)(msvc_events_t *ev, msvc__ev_item_t *item, bool closing);
};

/* One header owned by its container: name and value in one allocation. */
typedef struct msvc__ev_hdr_s {
  char *name;
  char *value;
} msvc__ev_hdr_t;

/* A publish in flight. The backend reads subject/body/headers/msg_id and
 * completes with msvc__ev_publish_done() exactly once. */
struct msvc__ev_pub_s {
  msvc__ev_item_t item;
  msvc__queue_t node; /* ev->pubs */
  msvc_events_t *ev;
  char *subject;
  char *body;
  size_t len;
  msvc__ev_hdr_t *headers;
  size_t header_count;
  char id[MSVC_EVENTS_ID_MAX + 1];
  uint64_t started_ms;  /* monotonic, for latency and the timeout */
  msvc_events_publish_cb cb;
  void *cb_data;
  void (*internal_done)(msvc_events_t *ev, msvc__ev_pub_t *pub, int status);
  void *internal_data;
  int status;
  atomic_int completed; /* the backend completed (any thread) */
  bool finished;        /* the caller was told (loop thread) */
  void *bdata;
  /* The backend's index of publishes in flight, without an allocation:
   * its key (nats: the natsMsg handed over) and the next of its bucket. */
  const void *bkey;
  msvc__ev_pub_t *bnext;
  struct msvc_span_s *span; /* producer span (trace.c), when tracing */
};

struct msvc__ev_stream_req_s {
  msvc__ev_item_t item;
  msvc_events_t *ev;
  char *name;
  char **subjects;
  size_t subject_count;
  unsigned replicas;
  uint64_t max_age_ms;
  uint64_t duplicate_window_ms;
  msvc_events_done_cb cb;
  void *cb_data;
  int status;
};

/* A delivery from the backend: the core copies nothing; it takes ownership
 * of the strings (allocated with msvc__malloc) and of token (released with
 * ops->release when the message is freed without settlement reaching the
 * backend). */
struct msvc__ev_delivery_s {
  msvc__ev_item_t item;
  msvc_events_sub_t *sub;
  char *subject;
  char *body;
  size_t len;
  msvc__ev_hdr_t *headers;
  size_t header_count;
  uint32_t deliveries;
  uint64_t pending; /* messages still waiting for this consumer, for lag */
  void *token;      /* the backend's handle on the message */
};

typedef enum msvc__ev_settle_e {
  MSVC__EV_ACK = 0,
  MSVC__EV_NACK = 1,
  MSVC__EV_TERM = 2
} msvc__ev_settle_t;

/* The backend vtable. Every operation is called on the loop thread; the
 * completions may come from any thread, but never from inside the call for
 * publish (the core does not rely on it, but keeps the rule anyway). */
typedef struct msvc__ev_ops_s {
  const char *name;
  /* Start connecting; report with msvc__ev_set_state(). */
  int (*start)(msvc__ev_backend_t *b);
  /* -> msvc__ev_stream_done(req, status) */
  void (*stream_ensure)(msvc__ev_backend_t *b, msvc__ev_stream_req_t *req);
  /* -> msvc__ev_publish_done(pub, status) */
  void (*publish)(msvc__ev_backend_t *b, msvc__ev_pub_t *pub);
  /* Join the durable consumer; deliveries with msvc__ev_deliver(), never
   * more than msvc__ev_sub_credits() unsettled. */
  int (*sub_start)(msvc__ev_backend_t *b, msvc_events_sub_t *sub);
  /* The core settled messages or grew credits: the backend may fetch more. */
  void (*sub_credit)(msvc__ev_backend_t *b, msvc_events_sub_t *sub);
  /* Settle a delivered message; consumes token. */
  void (*settle)(msvc__ev_backend_t *b, msvc_events_sub_t *sub, void *token,
                 msvc__ev_settle_t how, uint32_t delay_ms);
  /* Release a token without settling (the broker redelivers later). May be
   * called after sub_stop, never after close. */
  void (*release)(msvc__ev_backend_t *b, void *token);
  /* Stop feeding the subscription; afterwards call msvc__ev_sub_stopped()
   * (possibly from inside); no delivery is posted after that call. */
  void (*sub_stop)(msvc__ev_backend_t *b, msvc_events_sub_t *sub);
  /* Runs on the loop each time the inbox was drained (memory: pump). */
  void (*wake)(msvc__ev_backend_t *b);
  /* Tear down: every sub is stopped; complete outstanding work (publishes
   * with MSVC_ECLOSED), then call msvc__ev_backend_closed() (possibly from
   * inside). */
  void (*close)(msvc__ev_backend_t *b);
} msvc__ev_ops_t;

struct msvc__ev_backend_s {
  const msvc__ev_ops_t *ops;
  msvc_events_t *ev;
};

struct msvc_events_sub_s {
  msvc_events_t *ev;
  msvc__queue_t node; /* ev->subs */
  char *stream;
  char *subject;
  char *durable;
  char *dead_letter;
  bool dlq_default;
  msvc_events_sub_opts_t opts; /* strings point at the copies above */
  msvc_events_handler_fn handler;
  void *data;
  atomic_uint unacked;   /* posted by the backend, not settled */
  atomic_uint refs;      /* the sub itself + each delivery and message */
  bool closing;          /* sub_close called: no more handler calls */
  bool stopped;          /* the backend has let go */
  uint64_t lag;          /* last pending count reported */
  msvc_metrics_gauge_t *m_lag;
  void *bdata;
};

struct msvc_events_msg_s {
  msvc__queue_t node; /* ev->msgs */
  msvc_events_sub_t *sub;
  msvc__ev_pub_t *dead_pub; /* dead-letter publish in flight */
  msvc__ev_delivery_t *d;
  msvc_events_envelope_t *env;
  msvc_event_t event; /* env's event, with the delivery's headers */
  msvc_events_header_t *hdrs;
  struct msvc_span_s *span; /* consumer span (trace.c), when tracing */
};

struct msvc_events_s {
  uv_loop_t *loop;
  char *uri;
  char *source;
  char *name;
  msvc_events_opts_t opts;
  msvc__ev_backend_t *backend;
  uv_async_t async;
  uv_timer_t timer; /* publish timeouts */
  /* Items posted from any thread, newest first: a Treiber stack that a
   * poster pushes with one compare-and-swap and the loop empties with one
   * exchange. A mutex here put the loop and the client library's threads
   * on one futex for every acknowledgement and delivery. */
  _Atomic(msvc__ev_item_t *) inbox;
  msvc__queue_t pubs;
  msvc__queue_t subs;
  msvc__queue_t msgs; /* messages handed out, not settled */
  size_t pending_pubs;
  size_t pending_other; /* stream requests in flight */
  unsigned refs; /* the handle + each subscription struct alive */
  uint64_t created_ms;
  msvc_events_state_t reported_state;
  bool start_failed;
  bool backend_closed;
  bool close_started;
  _Atomic int state;        /* msvc_events_state_t */
  bool ever_connected;
  uint64_t down_since_ms;   /* monotonic; 0 while connected */
  msvc_events_state_cb state_cb;
  void *state_data;
  int closing; /* 0 open, 1 backend closing, 2 handles closing */
  int open_handles;
  msvc_events_close_cb close_cb;
  void *close_data;
  /* metrics (NULL without a registry) */
  msvc_metrics_family_t *m_published;
  msvc_metrics_family_t *m_consumed;
  msvc_metrics_family_t *m_acked;
  msvc_metrics_family_t *m_nacked;
  msvc_metrics_family_t *m_dead;
  msvc_metrics_family_t *m_latency;
  msvc_metrics_family_t *m_lag;
};

/* ---- core, callable from any thread -------------------------------------- */
void msvc__ev_post(msvc_events_t *ev, msvc__ev_item_t *item);
void msvc__ev_publish_done(msvc__ev_pub_t *pub, int status);
void msvc__ev_stream_done(msvc__ev_stream_req_t *req, int status);
/* d->sub must be set; d is owned by the core from here on. */
void msvc__ev_deliver(msvc__ev_delivery_t *d);
void msvc__ev_set_state(msvc_events_t *ev, msvc_events_state_t state);

/* ---- core, loop thread only ---------------------------------------------- */
void msvc__ev_sub_stopped(msvc_events_sub_t *sub);
void msvc__ev_backend_closed(msvc_events_t *ev);
/* How many more messages the subscription may hand out now. */
uint32_t msvc__ev_sub_credits(const msvc_events_sub_t *sub);
/* A delivery whose run() the core knows; the backend fills the rest. */
msvc__ev_delivery_t *msvc__ev_delivery_new(msvc_events_sub_t *sub);
void msvc__ev_delivery_free(msvc__ev_delivery_t *d);

/* Spans (trace.c): a no-op without opts.tracer or a traceparent header. */
void msvc__ev_trace_publish(msvc_events_t *ev, msvc__ev_pub_t *pub);
void msvc__ev_trace_published(msvc__ev_pub_t *pub, int status);
void msvc__ev_trace_consume(msvc_events_t *ev, msvc_events_msg_t *msg);
void msvc__ev_trace_settled(msvc_events_msg_t *msg, int how, const char *reason);
void msvc__ev_hdrs_free(msvc__ev_hdr_t *h, size_t n);
int msvc__ev_hdrs_copy(const msvc__ev_hdr_t *src, size_t n, msvc__ev_hdr_t **out);

/* ---- backends ------------------------------------------------------------- */
int msvc__ev_memory_new(msvc_events_t *ev, const char *uri, msvc__ev_backend_t **out,
                        char *err, size_t errlen);
#ifdef MSVC_HAVE_NATS
int msvc__ev_nats_new(msvc_events_t *ev, const char *uri, msvc__ev_backend_t **out,
                      char *err, size_t errlen);
#endif

/* ---- helpers (envelope.c) ------------------------------------------------ */
/* msvc_events_envelope_build() with the handle's default source; id_out
 * (MSVC_EVENTS_ID_MAX + 1 bytes, may be NULL) receives the event id. */
int msvc__ev_envelope_build(const msvc_event_t *e, const char *default_source, char *id_out,
                            char **out, size_t *len);
/* Whether subject is a valid NATS-style subject (tokens split by '.'); with
 * wildcards allowed, '*' and a final '>' are tokens of their own. */
bool msvc__ev_subject_valid(const char *s, bool wildcards);
/* Whether a concrete subject matches a filter with wildcards. */
bool msvc__ev_subject_match(const char *filter, const char *subject);
/* Stream and durable names: [A-Za-z0-9_-]{1,64}. */
bool msvc__ev_name_valid(const char *s);
/* Header names are tokens, values have no CR/LF. */
bool msvc__ev_header_valid(const char *name, const char *value);

#endif /* MSVC_EVENTS_INTERNAL_H */
