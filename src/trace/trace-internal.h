/*
 * Inside the trace block: the span and tracer layouts shared by span.c
 * (recording and sampling), encode.c (OTLP JSON), encode_pb.c (OTLP
 * protobuf) and export.c (the thread that posts batches).
 */
#ifndef MSVC_TRACE_INTERNAL_H
#define MSVC_TRACE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/trace.h>

#include "msvc-internal.h"

enum { MSVC__ATTR_STR, MSVC__ATTR_INT, MSVC__ATTR_BOOL, MSVC__ATTR_DOUBLE };

typedef struct msvc__trace_attr_s {
  char *key;
  uint32_t key_len;
  uint8_t type;
  bool key_static; /* borrowed lower ASCII: never freed nor checked */
  uint32_t val_len; /* string values: strlen(v.s) */
  union {
    char *s;
    int64_t i;
    bool b;
    double d;
  } v;
} msvc__trace_attr_t;

typedef struct msvc__trace_event_s {
  char *name;
  char *message; /* NULL: no attribute */
  uint64_t time_ns;
} msvc__trace_event_t;

struct msvc_span_s {
  msvc_tracer_t *tracer;
  msvc_span_t *next; /* in the tracer's inbox, backlog or pool */
  msvc_trace_ctx_t ctx;
  char parent_id[17]; /* "" for a root */
  bool parent_remote;
  char *name;
  uint32_t name_len;
  /* Strings this span put on the heap since its start; none (the common
   * case) lets a span be cleared without a look at its attributes. */
  uint32_t nheap;
  msvc_span_kind_t kind;
  msvc_span_status_t status;
  char *status_msg;
  uint64_t start_ns, end_ns;
  uint32_t nattrs, dropped_attrs;
  uint32_t nevents, dropped_events;
  /* inline_attrs until a ninth attribute, then MSVC_TRACE_MAX_ATTRS slots
   * on the heap: a typical span stays one allocation. */
  msvc__trace_attr_t *attrs;
  msvc__trace_attr_t inline_attrs[8];
  msvc__trace_event_t *events; /* MSVC_TRACE_MAX_EVENTS, made on first use */
  /* Short strings (name, attribute keys and values) are copied here rather
   * than allocated one by one: a typical server span then costs one
   * allocation. Longer ones go to the heap. */
  size_t arena_used;
  char arena[400];
};

typedef struct msvc__trace_kv_s {
  char *key;
  char *value;
} msvc__trace_kv_t;

struct msvc_tracer_s {
  char *service_name;
  char *service_version;
  char *instance_id;
  msvc__trace_kv_t *resource; /* extra resource attributes */
  size_t nresource;
  char *resource_json; /* the encoded "resource" object, made once */
  /* The ResourceSpans field 1 (resource) and the ScopeSpans field 1
   * (scope), tags and lengths included, in protobuf; made once. */
  unsigned char *resource_pb, *scope_pb;
  size_t resource_pb_len, scope_pb_len;
  msvc_otlp_protocol_t protocol;

  /* endpoint, split; host NULL: no exporter */
  char *host;
  char *port;
  char *path;

  uint64_t sample_threshold; /* a root is sampled when rand64 < this */
  bool sample_all;
  uint64_t slow_ns;
  uint32_t queue_max, batch_max, delay_ms, timeout_ms, retries;
  msvc_trace_clock_fn clock;
  void *clock_data;

  msvc_metrics_counter_t *m_exported;
  msvc_metrics_counter_t *m_dropped_full;
  msvc_metrics_counter_t *m_dropped_failed;
  msvc_metrics_counter_t *m_dropped_shutdown;

  _Atomic uint64_t started, kept, exported, dropped;

  /* The hand-off between span ends and the exporter thread takes no lock:
   * an ended span is pushed on inbox (a stack, newest first) with one
   * compare-and-swap, and the exporter takes the whole stack at once and
   * keeps it, oldest first, in its backlog. count (inbox + backlog) bounds
   * the queue at queue_max. The mutex and the condition variable serve
   * only to wake the exporter: when a batch is full, on its timer, or at
   * shutdown. */
  _Atomic(msvc_span_t *) inbox;
  _Atomic size_t count;
  _Atomic bool stopped; /* no more spans accepted */
  msvc_span_t *backlog, *backlog_tail; /* the exporter's (after join: anyone's) */
  size_t nbacklog;
  uv_mutex_t mu;
  uv_cond_t cond;
  bool stopping;    /* under mu: shutdown asked, flush until deadline */
  uint64_t deadline_ms; /* monotonic, for the flush */
  bool thread_on;
  uv_thread_t thread;
  int export_fd; /* the exporter's kept connection, -1: none */

  /* Spans the exporter has sent, cleared and kept for reuse: a span is
   * then allocated and freed by no one at a high sampling ratio, and never
   * freed on a thread other than the one that made it. A stack: the
   * exporter pushes whole batches, one thread at a time pops (pool_busy;
   * a thread that finds it taken allocates), so no popped span can come
   * back on top while a pop is under way. */
  _Atomic(msvc_span_t *) pool;
  _Atomic uint32_t npool;
  atomic_flag pool_busy;

  /* Local recording for the admin page (tracez.c); NULL when off. Set
   * once before the first span. */
  struct msvc__tracez_s *tracez;
};

bool msvc__trace_hex_ok(const char *s, size_t n, bool reject_zero);
void msvc__trace_random_id(char *out, size_t ndigits);
uint64_t msvc__trace_now_ns(const msvc_tracer_t *t);

/* Whether the span has an attribute of that key. */
bool msvc__trace_span_has_attr(const msvc_span_t *s, const char *key);
/* Setters for the spans the library makes itself: key has static storage
 * and is lower ASCII (it is borrowed, not copied), value has a known
 * length (no NUL needed). Same results as msvc_trace_span_set_str() and
 * msvc_trace_span_set_int(). */
#define MSVC__TRACE_KEY(k) (k), (sizeof(k) - 1)
int msvc__trace_span_set_strn(msvc_span_t *s, const char *key, size_t key_len,
                              const char *value, size_t value_len);
int msvc__trace_span_set_intk(msvc_span_t *s, const char *key, size_t key_len, int64_t value);
/* msvc_trace_span_set_name() with the name's length. */
int msvc__trace_span_set_name_n(msvc_span_t *s, const char *name, size_t len);
/* The tracer that made the span. */
msvc_tracer_t *msvc__trace_span_tracer(const msvc_span_t *s);

/* Frees a span that ended (or was never queued). */
void msvc__trace_span_free(msvc_span_t *s);
/* Clears n exported spans and keeps them for reuse (the pool is bounded;
 * the rest are freed). Any thread. */
void msvc__trace_span_recycle(msvc_tracer_t *t, msvc_span_t *const *spans, size_t n);

/* Encodes the resource object once (at msvc_tracer_new()). */
int msvc__trace_encode_resource(msvc_tracer_t *t);
/* Appends one ExportTraceServiceRequest in OTLP JSON. The buffer's err says
 * whether it worked. */
void msvc__trace_encode(const msvc_tracer_t *t, msvc_span_t *const *spans, size_t n,
                        msvc__buf_t *out);

/* encode_pb.c: the same in protobuf (application/x-protobuf). */
int msvc__trace_encode_resource_pb(msvc_tracer_t *t);
/* Appends one ExportTraceServiceRequest in protobuf. The message begins at
 * out->data + *start, a few bytes after the buffer's previous end (the
 * bytes between are unused). Returns MSVC_OK, or the buffer's error. */
int msvc__trace_encode_pb(const msvc_tracer_t *t, msvc_span_t *const *spans, size_t n,
                          msvc__buf_t *out, size_t *start);

/* Parses "k=v,k2=v2" (percent-encoded values) into kv pairs. */
int msvc__trace_parse_resource_attrs(const char *s, msvc__trace_kv_t **out, size_t *n);

/* export.c */
int msvc__trace_split_url(const char *url, char **host, char **port, char **path);
int msvc__trace_export_start(msvc_tracer_t *t);
/* Sends one body; returns the HTTP status, or a negative error. */
int msvc__trace_http_post(msvc_tracer_t *t, const char *body, size_t len,
                          uint32_t timeout_ms);
void msvc__trace_count_dropped(msvc_tracer_t *t, msvc_metrics_counter_t *c, uint64_t n);
/* Moves what span ends pushed since the last call to the end of the
 * backlog, oldest first. The exporter thread only, or anyone once it has
 * ended. Returns how many were moved. */
size_t msvc__trace_take_inbox(msvc_tracer_t *t);

/* ---- tracez.c: recent and slowest local traces, in memory --------------
 * Every span that ends is offered, sampled or not. A span with a local
 * parent waits in a small window of pending spans; when a local root (no
 * parent, or a remote one) ends, the pending spans of its trace are taken
 * with it as one trace, kept among the recent and the slowest traces of
 * its name. Children that end after their root are not seen. Bounded:
 * MSVC__TRACEZ_ROUTES names, MSVC__TRACEZ_KEEP traces of each kind per
 * name, MSVC__TRACEZ_SPANS spans per trace (about 1 MiB at most). */
#define MSVC__TRACEZ_ROUTES 32u
#define MSVC__TRACEZ_KEEP 5u
#define MSVC__TRACEZ_SPANS 12u
#define MSVC__TRACEZ_PENDING 256u

typedef struct msvc__tracez_span_s {
  char trace_id[33], span_id[17], parent_id[17];
  uint8_t kind, status;
  uint64_t start_ns, end_ns;
  char name[64];
  char detail[128]; /* a few attributes, "k=v k=v" */
} msvc__tracez_span_t;

typedef struct msvc__tracez_trace_s {
  uint32_t nspans;  /* spans[0] is the local root */
  uint32_t dropped; /* children beyond MSVC__TRACEZ_SPANS */
  msvc__tracez_span_t spans[MSVC__TRACEZ_SPANS];
} msvc__tracez_trace_t;

typedef struct msvc__tracez_route_s {
  char name[64];
  uint64_t count, errors;
  uint32_t nrecent, recent_next, nslow;
  msvc__tracez_trace_t recent[MSVC__TRACEZ_KEEP]; /* a ring */
  msvc__tracez_trace_t slow[MSVC__TRACEZ_KEEP];   /* slowest first */
} msvc__tracez_route_t;

typedef struct msvc__tracez_stats_s {
  uint64_t spans;      /* offered */
  uint64_t traces;     /* local roots recorded */
  uint64_t untracked;  /* roots of names beyond MSVC__TRACEZ_ROUTES */
} msvc__tracez_stats_t;

/* Turns local recording on; call before any span starts. */
int msvc__tracez_enable(msvc_tracer_t *t);
void msvc__tracez_free(struct msvc__tracez_s *z);
void msvc__tracez_record(struct msvc__tracez_s *z, const msvc_span_t *s);
/* A copy of every route (msvc__free() it), most requested first.
 * MSVC_ENOENT when recording is off. Thread-safe. */
int msvc__tracez_snapshot(msvc_tracer_t *t, msvc__tracez_route_t **out, size_t *n,
                          msvc__tracez_stats_t *stats);

#endif
