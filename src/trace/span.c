/*
 * The tracer and its spans: recording, sampling and the hand-off to the
 * exporter's queue. Nothing here does I/O or waits for the exporter: a span
 * end pushes the span with one compare-and-swap, and takes a lock only to
 * wake the exporter once per full batch.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <msvc/error.h>
#include <msvc/trace.h>

#include "trace/trace-internal.h"

void msvc_tracer_opts_init(msvc_tracer_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->sample_ratio = 1.0;
  opts->slow_ms = 1000;
  opts->queue_max = 2048;
  opts->batch_max = 512;
  opts->delay_ms = 1000;
  opts->timeout_ms = 5000;
  opts->retries = 3;
}

uint64_t msvc__trace_now_ns(const msvc_tracer_t *t) {
  struct timespec ts;

  if (t->clock != NULL)
    return t->clock(t->clock_data);
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int counters(msvc_tracer_t *t, msvc_metrics_registry_t *reg) {
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *exp, *drop;
  const char *reason = "reason";
  const char *v;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_trace_spans_exported_total";
  fo.help = "Spans accepted by the OTLP collector.";
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &exp)) != MSVC_OK)
    return rc;
  if ((rc = msvc_metrics_counter_get(exp, NULL, 0, &t->m_exported)) != MSVC_OK)
    return rc;
  fo.name = "msvc_trace_spans_dropped_total";
  fo.help = "Spans lost before the collector took them (queue_full, export_failed, "
            "shutdown).";
  fo.label_names = &reason;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &drop)) != MSVC_OK)
    return rc;
  v = "queue_full";
  if ((rc = msvc_metrics_counter_get(drop, &v, 1, &t->m_dropped_full)) != MSVC_OK)
    return rc;
  v = "export_failed";
  if ((rc = msvc_metrics_counter_get(drop, &v, 1, &t->m_dropped_failed)) != MSVC_OK)
    return rc;
  v = "shutdown";
  return msvc_metrics_counter_get(drop, &v, 1, &t->m_dropped_shutdown);
}

static char *dup_or_null(const char *s, int *rc) {
  char *d;

  if (s == NULL)
    return NULL;
  d = msvc__strdup(s);
  if (d == NULL)
    *rc = MSVC_ENOMEM;
  return d;
}

static void tracer_release(msvc_tracer_t *t) {
  size_t i;

  for (i = 0; i < t->nresource; i++) {
    msvc__free(t->resource[i].key);
    msvc__free(t->resource[i].value);
  }
  msvc__free(t->resource);
  msvc__free(t->resource_json);
  msvc__free(t->resource_pb);
  msvc__free(t->scope_pb);
  msvc__free(t->service_name);
  msvc__free(t->service_version);
  msvc__free(t->instance_id);
  msvc__free(t->host);
  msvc__free(t->port);
  msvc__free(t->path);
  /* Spans ended while a shutdown was freeing the queue. */
  msvc__trace_take_inbox(t);
  if (t->nbacklog > 0)
    msvc__trace_count_dropped(t, NULL, t->nbacklog);
  for (msvc_span_t *s = t->backlog, *next; s != NULL; s = next) {
    next = s->next;
    msvc__trace_span_free(s);
  }
  for (msvc_span_t *s = atomic_load(&t->pool), *next; s != NULL; s = next) {
    next = s->next;
    msvc__free(s);
  }
  msvc__tracez_free(t->tracez);
  msvc__free(t);
}

static int tracer_setup(msvc_tracer_t *t, const msvc_tracer_opts_t *o) {
  int rc = MSVC_OK;

  t->service_name = dup_or_null(o->service_name, &rc);
  t->service_version = dup_or_null(o->service_version, &rc);
  t->instance_id = dup_or_null(o->instance_id, &rc);
  if (rc != MSVC_OK)
    return rc;
  if (o->resource_attrs != NULL &&
      (rc = msvc__trace_parse_resource_attrs(o->resource_attrs, &t->resource,
                                             &t->nresource)) != MSVC_OK)
    return rc;
  if (o->endpoint != NULL &&
      (rc = msvc__trace_split_url(o->endpoint, &t->host, &t->port, &t->path)) != MSVC_OK)
    return rc;
  t->sample_all = o->sample_ratio >= 1.0;
  t->sample_threshold = (uint64_t)ldexp(o->sample_ratio, 64);
  t->slow_ns = (uint64_t)o->slow_ms * 1000000u;
  t->queue_max = o->queue_max != 0 ? o->queue_max : 2048;
  t->batch_max = o->batch_max != 0 ? o->batch_max : 512;
  t->delay_ms = o->delay_ms != 0 ? o->delay_ms : 1000;
  t->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : 5000;
  t->retries = o->retries;
  /* Options from before the protocol field get the default. */
  t->protocol = o->size >= offsetof(msvc_tracer_opts_t, protocol) + sizeof(o->protocol)
                    ? o->protocol
                    : MSVC_OTLP_HTTP_PROTOBUF;
  t->clock = o->clock;
  t->clock_data = o->clock_data;
  t->export_fd = -1;
  atomic_init(&t->inbox, NULL);
  atomic_init(&t->count, 0);
  atomic_init(&t->stopped, false);
  atomic_init(&t->pool, NULL);
  atomic_flag_clear(&t->pool_busy);
  if ((rc = msvc__trace_encode_resource(t)) != MSVC_OK ||
      (rc = msvc__trace_encode_resource_pb(t)) != MSVC_OK)
    return rc;
  if (o->metrics != NULL && (rc = counters(t, o->metrics)) != MSVC_OK)
    return rc;
  return MSVC_OK;
}

int msvc_tracer_new(const msvc_tracer_opts_t *opts, msvc_tracer_t **out) {
  msvc_tracer_t *t;
  int rc;

  if (opts == NULL || out == NULL || opts->service_name == NULL ||
      opts->service_name[0] == '\0' || !(opts->sample_ratio >= 0.0) ||
      !(opts->sample_ratio <= 1.0) ||
      (opts->size >= offsetof(msvc_tracer_opts_t, protocol) + sizeof(opts->protocol) &&
       opts->protocol != MSVC_OTLP_HTTP_PROTOBUF && opts->protocol != MSVC_OTLP_HTTP_JSON))
    return MSVC_EINVAL;
  t = msvc__calloc(1, sizeof(*t));
  if (t == NULL)
    return MSVC_ENOMEM;
  if ((rc = tracer_setup(t, opts)) != MSVC_OK) {
    tracer_release(t);
    return rc;
  }
  if (uv_mutex_init(&t->mu) != 0) {
    tracer_release(t);
    return MSVC_ENOMEM;
  }
  if (uv_cond_init(&t->cond) != 0) {
    uv_mutex_destroy(&t->mu);
    tracer_release(t);
    return MSVC_ENOMEM;
  }
  if (t->host != NULL && (rc = msvc__trace_export_start(t)) != MSVC_OK) {
    uv_cond_destroy(&t->cond);
    uv_mutex_destroy(&t->mu);
    tracer_release(t);
    return rc;
  }
  *out = t;
  return MSVC_OK;
}

void msvc__trace_count_dropped(msvc_tracer_t *t, msvc_metrics_counter_t *c, uint64_t n) {
  atomic_fetch_add(&t->dropped, n);
  if (c != NULL)
    msvc_metrics_counter_add(c, (double)n);
}

int msvc_tracer_shutdown(msvc_tracer_t *t, uint32_t timeout_ms) {
  size_t left;

  if (t == NULL)
    return MSVC_OK;
  uv_mutex_lock(&t->mu);
  if (!t->stopping) {
    t->stopping = true;
    t->deadline_ms = msvc_now_ms() + timeout_ms;
  }
  uv_cond_broadcast(&t->cond);
  uv_mutex_unlock(&t->mu);
  if (t->thread_on) {
    uv_thread_join(&t->thread);
    t->thread_on = false;
  }
  /* What the thread could not send before the deadline. A span that ends
   * while this runs may still land in the inbox: the tracer's release
   * frees it. */
  atomic_store(&t->stopped, true);
  msvc__trace_take_inbox(t);
  left = t->nbacklog;
  while (t->backlog != NULL) {
    msvc_span_t *next = t->backlog->next;
    msvc__trace_span_free(t->backlog);
    t->backlog = next;
  }
  t->backlog_tail = NULL;
  t->nbacklog = 0;
  atomic_fetch_sub(&t->count, left);
  if (left > 0)
    msvc__trace_count_dropped(t, t->m_dropped_shutdown, left);
  return left > 0 ? MSVC_ETIMEDOUT : MSVC_OK;
}

void msvc_tracer_free(msvc_tracer_t *t) {
  if (t == NULL)
    return;
  msvc_tracer_shutdown(t, 2000);
  uv_cond_destroy(&t->cond);
  uv_mutex_destroy(&t->mu);
  tracer_release(t);
}

void msvc_tracer_stats(msvc_tracer_t *t, msvc_tracer_stats_t *out) {
  if (t == NULL || out == NULL)
    return;
  out->started = atomic_load(&t->started);
  out->kept = atomic_load(&t->kept);
  out->exported = atomic_load(&t->exported);
  out->dropped = atomic_load(&t->dropped);
  out->queued = atomic_load(&t->count);
}

/* ---- spans ------------------------------------------------------------------ */

/* A copy of str[0..n) with a NUL, in the arena when it fits. */
static inline char *span_strndup(msvc_span_t *s, const char *str, size_t n) {
  char *d;

  if (n < sizeof(s->arena) - s->arena_used) {
    d = s->arena + s->arena_used;
    s->arena_used += n + 1;
  } else {
    if ((d = msvc__malloc(n + 1)) == NULL)
      return NULL;
    s->nheap++;
  }
  memcpy(d, str, n);
  d[n] = '\0';
  return d;
}

static void span_strfree(msvc_span_t *s, char *p) {
  if (p != NULL && (p < s->arena || p >= s->arena + sizeof(s->arena)))
    msvc__free(p);
}

/* A spent span from the pool, else a new one. An empty pool (tracing
 * without export, or a low ratio) costs one load. */
static msvc_span_t *span_alloc(msvc_tracer_t *t) {
  msvc_span_t *s = NULL;

  if (atomic_load_explicit(&t->pool, memory_order_relaxed) != NULL &&
      !atomic_flag_test_and_set_explicit(&t->pool_busy, memory_order_acquire)) {
    s = atomic_load_explicit(&t->pool, memory_order_acquire);
    while (s != NULL && !atomic_compare_exchange_weak_explicit(
                            &t->pool, &s, s->next, memory_order_acquire, memory_order_acquire))
      ;
    atomic_flag_clear_explicit(&t->pool_busy, memory_order_release);
    if (s != NULL)
      atomic_fetch_sub_explicit(&t->npool, 1, memory_order_relaxed);
  }
  return s != NULL ? s : msvc__malloc(sizeof(*s));
}

static bool ctx_ok(const msvc_trace_ctx_t *c) {
  return msvc__trace_hex_ok(c->trace_id, 32, true) && c->trace_id[32] == '\0' &&
         msvc__trace_hex_ok(c->span_id, 16, true) && c->span_id[16] == '\0';
}

int msvc_trace_span_start(msvc_tracer_t *t, const char *name, msvc_span_kind_t kind,
                          const msvc_trace_ctx_t *parent, msvc_span_t **out) {
  msvc_span_t *s;

  if (out != NULL)
    *out = NULL;
  if (t == NULL)
    return out != NULL ? MSVC_OK : MSVC_EINVAL; /* tracing off: no span */
  if (name == NULL || out == NULL || kind < MSVC_SPAN_INTERNAL || kind > MSVC_SPAN_CONSUMER)
    return MSVC_EINVAL;
  s = span_alloc(t);
  if (s == NULL)
    return MSVC_ENOMEM;
  s->arena_used = 0;
  s->nheap = 0;
  s->name_len = (uint32_t)strlen(name);
  s->name = span_strndup(s, name, s->name_len);
  if (s->name == NULL) {
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  s->tracer = t;
  s->kind = kind;
  s->status = MSVC_SPAN_STATUS_UNSET;
  s->status_msg = NULL;
  s->nattrs = s->dropped_attrs = s->nevents = s->dropped_events = 0;
  s->events = NULL;
  s->attrs = s->inline_attrs;
  s->end_ns = 0;
  if (parent != NULL && ctx_ok(parent)) {
    memcpy(s->ctx.trace_id, parent->trace_id, sizeof(s->ctx.trace_id));
    memcpy(s->parent_id, parent->span_id, sizeof(s->parent_id));
    s->parent_remote = parent->remote;
    s->ctx.flags = parent->flags; /* parent-based */
  } else {
    msvc__trace_random_id(s->ctx.trace_id, 32);
    s->parent_id[0] = '\0';
    s->parent_remote = false;
    s->ctx.flags = (t->sample_all || msvc__rand64() < t->sample_threshold)
                       ? MSVC_TRACE_SAMPLED : 0;
  }
  msvc__trace_random_id(s->ctx.span_id, 16);
  s->ctx.remote = false;
  atomic_fetch_add_explicit(&t->started, 1, memory_order_relaxed);
  s->start_ns = msvc__trace_now_ns(t);
  *out = s;
  return MSVC_OK;
}

const msvc_trace_ctx_t *msvc_trace_span_ctx(const msvc_span_t *s) {
  return s != NULL ? &s->ctx : NULL;
}

bool msvc_trace_span_sampled(const msvc_span_t *s) {
  return s != NULL && (s->ctx.flags & MSVC_TRACE_SAMPLED) != 0;
}

int msvc__trace_span_set_name_n(msvc_span_t *s, const char *name, size_t len) {
  char *d;

  if (s == NULL)
    return MSVC_OK;
  if (name == NULL || len > UINT32_MAX)
    return MSVC_EINVAL;
  if ((d = span_strndup(s, name, len)) == NULL)
    return MSVC_ENOMEM;
  span_strfree(s, s->name);
  s->name = d;
  s->name_len = (uint32_t)len;
  return MSVC_OK;
}

int msvc_trace_span_set_name(msvc_span_t *s, const char *name) {
  return msvc__trace_span_set_name_n(s, name, name != NULL ? strlen(name) : 0);
}

static void attr_clear(msvc_span_t *s, msvc__trace_attr_t *a) {
  if (a->type == MSVC__ATTR_STR)
    span_strfree(s, a->v.s);
  a->type = MSVC__ATTR_INT;
}

/* The slot for key (key_len bytes; borrowed when key_static): the existing
 * one (value cleared) or a new one. */
static int attr_slot(msvc_span_t *s, const char *key, size_t key_len, bool key_static,
                     msvc__trace_attr_t **out) {
  msvc__trace_attr_t *a;
  uint32_t i;

  if (key == NULL || key_len == 0 || key_len > UINT32_MAX)
    return MSVC_EINVAL;
  for (i = 0; i < s->nattrs; i++)
    if (s->attrs[i].key_len == key_len && memcmp(s->attrs[i].key, key, key_len) == 0) {
      attr_clear(s, &s->attrs[i]);
      *out = &s->attrs[i];
      return MSVC_OK;
    }
  if (s->nattrs == MSVC_TRACE_MAX_ATTRS) {
    s->dropped_attrs++;
    return MSVC_ERANGE;
  }
  if (s->attrs == s->inline_attrs && s->nattrs == MSVC__ARRAY_SIZE(s->inline_attrs)) {
    msvc__trace_attr_t *more = msvc__malloc(MSVC_TRACE_MAX_ATTRS * sizeof(*more));
    if (more == NULL)
      return MSVC_ENOMEM;
    memcpy(more, s->inline_attrs, sizeof(s->inline_attrs));
    s->attrs = more;
  }
  a = &s->attrs[s->nattrs];
  a->key = key_static ? (char *)key : span_strndup(s, key, key_len);
  if (a->key == NULL)
    return MSVC_ENOMEM;
  a->key_len = (uint32_t)key_len;
  a->key_static = key_static;
  a->type = MSVC__ATTR_INT;
  a->v.i = 0;
  s->nattrs++;
  *out = a;
  return MSVC_OK;
}

static int set_strn(msvc_span_t *s, const char *key, size_t key_len, bool key_static,
                    const char *value, size_t value_len) {
  msvc__trace_attr_t *a;
  char *d;
  int rc;

  if (value_len > UINT32_MAX)
    return MSVC_ERANGE;
  if ((rc = attr_slot(s, key, key_len, key_static, &a)) != MSVC_OK)
    return rc;
  if ((d = span_strndup(s, value, value_len)) == NULL)
    return MSVC_ENOMEM; /* the key stays, with the integer 0 */
  a->type = MSVC__ATTR_STR;
  a->v.s = d;
  a->val_len = (uint32_t)value_len;
  return MSVC_OK;
}

int msvc_trace_span_set_str(msvc_span_t *s, const char *key, const char *value) {
  if (s == NULL)
    return MSVC_OK;
  if (value == NULL || key == NULL)
    return MSVC_EINVAL;
  return set_strn(s, key, strlen(key), false, value, strlen(value));
}

int msvc__trace_span_set_strn(msvc_span_t *s, const char *key, size_t key_len,
                              const char *value, size_t value_len) {
  if (s == NULL)
    return MSVC_OK;
  if (value == NULL)
    return MSVC_EINVAL;
  return set_strn(s, key, key_len, true, value, value_len);
}

int msvc__trace_span_set_intk(msvc_span_t *s, const char *key, size_t key_len, int64_t value) {
  msvc__trace_attr_t *a;
  int rc = s != NULL ? attr_slot(s, key, key_len, true, &a) : MSVC_OK;

  if (rc == MSVC_OK && s != NULL) {
    a->type = MSVC__ATTR_INT;
    a->v.i = value;
  }
  return rc;
}

/* The slot of a key given by a caller (copied). */
static int attr_slot_copy(msvc_span_t *s, const char *key, msvc__trace_attr_t **out) {
  return attr_slot(s, key, key != NULL ? strlen(key) : 0, false, out);
}

int msvc_trace_span_set_int(msvc_span_t *s, const char *key, int64_t value) {
  msvc__trace_attr_t *a;
  int rc = s != NULL ? attr_slot_copy(s, key, &a) : MSVC_OK;

  if (rc == MSVC_OK && s != NULL) {
    a->type = MSVC__ATTR_INT;
    a->v.i = value;
  }
  return rc;
}

int msvc_trace_span_set_bool(msvc_span_t *s, const char *key, bool value) {
  msvc__trace_attr_t *a;
  int rc = s != NULL ? attr_slot_copy(s, key, &a) : MSVC_OK;

  if (rc == MSVC_OK && s != NULL) {
    a->type = MSVC__ATTR_BOOL;
    a->v.b = value;
  }
  return rc;
}

int msvc_trace_span_set_double(msvc_span_t *s, const char *key, double value) {
  msvc__trace_attr_t *a;
  int rc = s != NULL ? attr_slot_copy(s, key, &a) : MSVC_OK;

  if (rc == MSVC_OK && s != NULL) {
    a->type = MSVC__ATTR_DOUBLE;
    a->v.d = value;
  }
  return rc;
}

int msvc_trace_span_add_event(msvc_span_t *s, const char *name, const char *message) {
  msvc__trace_event_t *e;

  if (s == NULL)
    return MSVC_OK;
  if (name == NULL)
    return MSVC_EINVAL;
  if (s->nevents == MSVC_TRACE_MAX_EVENTS) {
    s->dropped_events++;
    return MSVC_ERANGE;
  }
  if (s->events == NULL &&
      (s->events = msvc__calloc(MSVC_TRACE_MAX_EVENTS, sizeof(*s->events))) == NULL)
    return MSVC_ENOMEM;
  e = &s->events[s->nevents];
  e->name = msvc__strdup(name);
  e->message = message != NULL ? msvc__strdup(message) : NULL;
  if (e->name == NULL || (message != NULL && e->message == NULL)) {
    msvc__free(e->name);
    msvc__free(e->message);
    return MSVC_ENOMEM;
  }
  e->time_ns = msvc__trace_now_ns(s->tracer);
  s->nevents++;
  return MSVC_OK;
}

void msvc_trace_span_set_status(msvc_span_t *s, msvc_span_status_t status,
                                const char *message) {
  if (s == NULL || status < MSVC_SPAN_STATUS_UNSET || status > MSVC_SPAN_STATUS_ERROR)
    return;
  msvc__free(s->status_msg);
  s->status_msg = NULL;
  s->status = status;
  /* OTLP: the message belongs to an error status only. */
  if (status == MSVC_SPAN_STATUS_ERROR && message != NULL)
    s->status_msg = msvc__strdup(message);
}

bool msvc__trace_span_has_attr(const msvc_span_t *s, const char *key) {
  uint32_t i;

  for (i = 0; s != NULL && i < s->nattrs; i++)
    if (strcmp(s->attrs[i].key, key) == 0)
      return true;
  return false;
}

msvc_tracer_t *msvc__trace_span_tracer(const msvc_span_t *s) {
  return s != NULL ? s->tracer : NULL;
}

/* Releases what a span holds besides itself. Strings in the arena and
 * borrowed keys need nothing: a span whose strings all fit (nheap 0) has
 * nothing to look at in its attributes. */
static void span_clear(msvc_span_t *s) {
  uint32_t i;

  if (s->nheap > 0) {
    for (i = 0; i < s->nattrs; i++) {
      attr_clear(s, &s->attrs[i]);
      if (!s->attrs[i].key_static)
        span_strfree(s, s->attrs[i].key);
    }
    span_strfree(s, s->name);
  }
  if (s->attrs != s->inline_attrs)
    msvc__free(s->attrs);
  if (s->events != NULL) {
    for (i = 0; i < s->nevents; i++) {
      msvc__free(s->events[i].name);
      msvc__free(s->events[i].message);
    }
    msvc__free(s->events);
  }
  msvc__free(s->status_msg);
}

void msvc__trace_span_free(msvc_span_t *s) {
  span_clear(s);
  msvc__free(s);
}

void msvc__trace_span_recycle(msvc_tracer_t *t, msvc_span_t *const *spans, size_t n) {
  msvc_span_t *head = NULL, *tail = NULL;
  size_t i, room, kept = 0;

  /* Two batches: the exporter returns one while the loop may not have
   * used up the last. */
  room = atomic_load_explicit(&t->npool, memory_order_relaxed);
  room = room < 2u * t->batch_max ? 2u * t->batch_max - room : 0;
  for (i = 0; i < n; i++) {
    span_clear(spans[i]);
    if (kept == room) {
      msvc__free(spans[i]);
      continue;
    }
    spans[i]->next = head;
    head = spans[i];
    if (tail == NULL)
      tail = head;
    kept++;
  }
  if (head == NULL)
    return;
  atomic_fetch_add_explicit(&t->npool, (uint32_t)kept, memory_order_relaxed);
  tail->next = atomic_load_explicit(&t->pool, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&t->pool, &tail->next, head,
                                                memory_order_release, memory_order_relaxed))
    ;
}

size_t msvc__trace_take_inbox(msvc_tracer_t *t) {
  msvc_span_t *s = atomic_exchange_explicit(&t->inbox, NULL, memory_order_acquire);
  msvc_span_t *first = NULL, *last = s;
  size_t n = 0;

  /* newest first: reverse */
  while (s != NULL) {
    msvc_span_t *next = s->next;
    s->next = first;
    first = s;
    s = next;
    n++;
  }
  if (first == NULL)
    return 0;
  if (t->backlog_tail != NULL)
    t->backlog_tail->next = first;
  else
    t->backlog = first;
  t->backlog_tail = last;
  t->nbacklog += n;
  return n;
}

/* Sampled, failed or slow: the three reasons to keep a span. */
static bool keep_at(const msvc_span_t *s, uint64_t end_ns) {
  const msvc_tracer_t *t = s->tracer;

  return (s->ctx.flags & MSVC_TRACE_SAMPLED) != 0 || s->status == MSVC_SPAN_STATUS_ERROR ||
         (t->slow_ns != 0 && end_ns - s->start_ns >= t->slow_ns);
}

static bool keep(const msvc_span_t *s) {
  return keep_at(s, s->end_ns);
}

bool msvc_trace_span_wanted(const msvc_span_t *s) {
  uint64_t now;

  if (s == NULL)
    return false;
  /* The admin page shows every span with its attributes. Sampled or
   * failed is known without reading the clock. */
  if (s->tracer->tracez != NULL || (s->ctx.flags & MSVC_TRACE_SAMPLED) != 0 ||
      s->status == MSVC_SPAN_STATUS_ERROR)
    return true;
  now = msvc__trace_now_ns(s->tracer);
  return keep_at(s, now > s->start_ns ? now : s->start_ns);
}

void msvc_trace_span_end(msvc_span_t *s) {
  msvc_tracer_t *t;
  bool queued = false, wake = false, stopped;

  if (s == NULL)
    return;
  t = s->tracer;
  s->end_ns = msvc__trace_now_ns(t);
  if (s->end_ns < s->start_ns)
    s->end_ns = s->start_ns;
  if (t->tracez != NULL)
    msvc__tracez_record(t->tracez, s);
  if (!keep(s)) {
    msvc__trace_span_free(s);
    return;
  }
  atomic_fetch_add_explicit(&t->kept, 1, memory_order_relaxed);
  if (t->host == NULL) {
    msvc__trace_span_free(s);
    return;
  }
  stopped = atomic_load_explicit(&t->stopped, memory_order_relaxed);
  if (!stopped) {
    size_t n = atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
    if (n < t->queue_max) {
      s->next = atomic_load_explicit(&t->inbox, memory_order_relaxed);
      while (!atomic_compare_exchange_weak_explicit(&t->inbox, &s->next, s,
                                                    memory_order_release, memory_order_relaxed))
        ;
      queued = true;
      wake = n + 1 == t->batch_max;
    } else {
      atomic_fetch_sub_explicit(&t->count, 1, memory_order_relaxed);
    }
  }
  /* Only a full batch wakes the exporter (its timer sends the rest). The
   * lock orders the signal after its check of count, so none is lost. */
  if (wake) {
    uv_mutex_lock(&t->mu);
    uv_cond_signal(&t->cond);
    uv_mutex_unlock(&t->mu);
  }
  if (!queued) {
    msvc__trace_count_dropped(t, stopped ? t->m_dropped_shutdown : t->m_dropped_full, 1);
    msvc__trace_span_free(s);
  }
}
