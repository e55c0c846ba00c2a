/**
 * @file trace.h
 * @brief Distributed tracing: spans with W3C trace context, sampling, and
 *        export over OTLP/HTTP (protobuf or JSON).
 *
 * A tracer (msvc_tracer_t) makes spans. A span has a name, a kind, a start
 * and an end, attributes, events and a status; it belongs to a trace and
 * has a parent (another span of this process, or the caller's span named
 * by an incoming `traceparent`). When a span ends the tracer decides
 * whether to keep it and hands kept spans to its exporter thread, which
 * sends them in batches to an OTLP/HTTP collector (`POST <endpoint>`, as
 * binary protobuf, `Content-Type: application/x-protobuf`, by default, or
 * as JSON, `application/json`; see #msvc_otlp_protocol_t).
 *
 * Sampling:
 * - a span with a parent follows the parent's sampled flag (parent-based);
 * - a new root is sampled with probability `sample_ratio`;
 * - whatever the flag, a span that ends with #MSVC_SPAN_STATUS_ERROR or
 *   lasts at least `slow_ms` is kept too ("always keep"). Every span is
 *   recorded (a few hundred bytes, one allocation) and the decision is
 *   taken at its end, so nothing is buffered beyond the span itself. The
 *   price: in a trace that was not sampled only the failed or slow spans
 *   themselves are exported, not their fast siblings, and a kept child may
 *   point at a parent that was never exported.
 *
 * The export never blocks the caller: span ends push onto a bounded queue;
 * when the queue is full the span is dropped and counted.
 *
 * Thread safety: a tracer is thread-safe. A span belongs to one thread at a
 * time (the loop that serves the request); it may be handed to another
 * thread (a worker-pool job) and back, never used by two at once.
 */
#ifndef MSVC_TRACE_H
#define MSVC_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Buffer size of a formatted `traceparent` (55 characters + NUL). */
#define MSVC_TRACE_TRACEPARENT_LEN 56
/** @brief Longest `tracestate` kept or sent, in bytes (W3C: at least 512). */
#define MSVC_TRACE_TRACESTATE_MAX 512
/** @brief Most list members of a `tracestate` (W3C: 32). */
#define MSVC_TRACE_TRACESTATE_MEMBERS 32
/** @brief Attributes kept per span; more are counted as dropped. */
#define MSVC_TRACE_MAX_ATTRS 32
/** @brief Events kept per span; more are counted as dropped. */
#define MSVC_TRACE_MAX_EVENTS 16

/** @brief A tracer: sampling, queue and exporter. */
typedef struct msvc_tracer_s msvc_tracer_t;
/** @brief One span, from msvc_trace_span_start() to msvc_trace_span_end(). */
typedef struct msvc_span_s msvc_span_t;

/** @brief Span kinds, numbered as in OTLP. */
typedef enum msvc_span_kind_e {
  MSVC_SPAN_INTERNAL = 1, /**< Work inside the process. */
  MSVC_SPAN_SERVER = 2,   /**< Serving an incoming request. */
  MSVC_SPAN_CLIENT = 3,   /**< An outgoing request. */
  MSVC_SPAN_PRODUCER = 4, /**< Publishing a message. */
  MSVC_SPAN_CONSUMER = 5  /**< Handling a delivered message. */
} msvc_span_kind_t;

/** @brief Span status, numbered as in OTLP. */
typedef enum msvc_span_status_e {
  MSVC_SPAN_STATUS_UNSET = 0, /**< Default. */
  MSVC_SPAN_STATUS_OK = 1,    /**< Explicitly successful. */
  MSVC_SPAN_STATUS_ERROR = 2  /**< Failed: such a span is always kept. */
} msvc_span_status_t;

/** @brief A span context: what `traceparent` carries. */
typedef struct msvc_trace_ctx_s {
  char trace_id[33]; /**< 32 lower-case hex digits, not all zero. */
  char span_id[17];  /**< 16 lower-case hex digits, not all zero. */
  uint8_t flags;     /**< Trace flags; bit 0 (#MSVC_TRACE_SAMPLED) is sampled. */
  bool remote;       /**< Parsed from a header rather than made here. */
} msvc_trace_ctx_t;

/** @brief The sampled bit of the trace flags. */
#define MSVC_TRACE_SAMPLED 0x01u

/**
 * @brief Parse a `traceparent` header value (W3C Trace Context level 1).
 *
 * Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`; a higher
 * version may append `-...`, which is ignored; version `ff`, upper-case hex
 * and all-zero ids are invalid. Spaces and tabs around the value are
 * tolerated.
 *
 * @param s    The value (need not be NUL-terminated); NULL is invalid.
 * @param len  Its length.
 * @param out  Receives the caller's trace id, span id and flags, remote set.
 *             Untouched on error.
 * @return #MSVC_OK, or MSVC_EINVAL for an invalid value or a NULL out.
 * @note Thread-safe; pure.
 * @since 0.2
 */
MSVC_API int msvc_trace_traceparent_parse(const char *s, size_t len,
                                          msvc_trace_ctx_t *out);

/**
 * @brief Format a context as a version `00` `traceparent`.
 * @param ctx  The context.
 * @param out  Buffer of at least #MSVC_TRACE_TRACEPARENT_LEN bytes.
 * @param cap  Its size.
 * @return #MSVC_OK; MSVC_EINVAL for NULL or invalid ids; MSVC_ERANGE when
 *         cap is too small.
 * @note Thread-safe; pure.
 * @since 0.2
 */
MSVC_API int msvc_trace_traceparent_format(const msvc_trace_ctx_t *ctx,
                                           char *out, size_t cap);

/**
 * @brief Check and normalise a `tracestate` header value.
 *
 * Follows W3C Trace Context: a comma-separated list of `key=value` members
 * (keys `[a-z0-9][a-z0-9_*\/-]{0,255}` or `tenant@system`, values of 1..256
 * printable characters other than `,` and `=`, no trailing space), optional
 * spaces and tabs around members, empty members allowed. A list with an
 * invalid member, a duplicate key or more than
 * #MSVC_TRACE_TRACESTATE_MEMBERS members is discarded as a whole. A valid
 * list longer than #MSVC_TRACE_TRACESTATE_MAX is cut as the specification
 * allows: members longer than 128 bytes go first, then members from the
 * end.
 *
 * @param s    The value (need not be NUL-terminated).
 * @param len  Its length.
 * @param out  Receives the normalised list (members joined by `,`).
 * @param cap  Its size; #MSVC_TRACE_TRACESTATE_MAX + 1 always suffices.
 * @return The length written (0 for an empty list), or MSVC_EINVAL when the
 *         value must be discarded, or MSVC_ERANGE when cap is too small.
 * @note Thread-safe; pure.
 * @since 0.2
 */
MSVC_API int msvc_trace_tracestate_normalize(const char *s, size_t len,
                                             char *out, size_t cap);

/** @brief Encoding of the OTLP/HTTP export requests. */
typedef enum msvc_otlp_protocol_e {
  /** `http/protobuf`: the binary ExportTraceServiceRequest,
   *  `Content-Type: application/x-protobuf` (the default, as in OTLP). */
  MSVC_OTLP_HTTP_PROTOBUF = 0,
  /** `http/json`: the OTLP JSON mapping, `Content-Type: application/json`. */
  MSVC_OTLP_HTTP_JSON = 1
} msvc_otlp_protocol_t;

/** @brief Clock that returns Unix time in nanoseconds (tests inject one). */
typedef uint64_t (*msvc_trace_clock_fn)(void *data);

/** @brief Options of a tracer; fill with msvc_tracer_opts_init(). */
typedef struct msvc_tracer_opts_s {
  size_t size;                 /**< Set by msvc_tracer_opts_init(). */
  const char *service_name;    /**< Resource `service.name` (required). */
  const char *service_version; /**< Resource `service.version`, or NULL. */
  const char *instance_id;     /**< Resource `service.instance.id`, or NULL. */
  /** More resource attributes, `k=v,k2=v2` as in `OTEL_RESOURCE_ATTRIBUTES`
   *  (values percent-decoded), or NULL. */
  const char *resource_attrs;
  /** OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`; only
   *  `http://` is supported. NULL: spans are recorded and sampled but kept
   *  nowhere (no thread is started). */
  const char *endpoint;
  double sample_ratio;  /**< 0..1 for new roots (default 1). */
  uint32_t slow_ms;     /**< Keep spans at least this long (default 1000; 0 off). */
  uint32_t queue_max;   /**< Spans waiting for export (default 2048). */
  uint32_t batch_max;   /**< Spans per request (default 512). */
  uint32_t delay_ms;    /**< Longest wait before a partial batch goes (default 1000). */
  uint32_t timeout_ms;  /**< Per export request (default 5000). */
  uint32_t retries;     /**< Retries after 429/502/503/504 (default 3). */
  /** Registry for `msvc_trace_spans_exported_total` and
   *  `msvc_trace_spans_dropped_total{reason}`, or NULL for none. Borrowed;
   *  must outlive the tracer. */
  msvc_metrics_registry_t *metrics;
  msvc_trace_clock_fn clock; /**< NULL: the real-time clock. */
  void *clock_data;          /**< Passed to clock. */
  /** Encoding of the export requests (default #MSVC_OTLP_HTTP_PROTOBUF).
   *  @since 0.3 */
  msvc_otlp_protocol_t protocol;
} msvc_tracer_opts_t;

/**
 * @brief Fill tracer options with their defaults.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.2
 */
MSVC_API void msvc_tracer_opts_init(msvc_tracer_opts_t *opts);

/**
 * @brief Make a tracer and, with an endpoint, start its exporter thread.
 * @param opts  Options (copied).
 * @param out   Receives the tracer.
 * @return #MSVC_OK; MSVC_EINVAL for a missing service name, a ratio outside
 *         0..1, an endpoint that is not `http://host[:port][/path]`, an
 *         unknown protocol or bad resource attributes; MSVC_ENOMEM; a libuv code if the thread
 *         cannot start.
 * @note Free with msvc_tracer_free().
 * @since 0.2
 */
MSVC_API int msvc_tracer_new(const msvc_tracer_opts_t *opts, msvc_tracer_t **out);

/**
 * @brief Export what is queued, waiting at most timeout_ms, then stop the
 *        exporter. Spans ended afterwards are dropped (counted).
 * @param t           The tracer, or NULL (no-op).
 * @param timeout_ms  Deadline for the flush.
 * @return #MSVC_OK when everything queued was sent, MSVC_ETIMEDOUT when the
 *         deadline cut the flush short (the rest is counted as dropped).
 * @note Blocks the calling thread for up to timeout_ms; thread-safe.
 * @since 0.2
 */
MSVC_API int msvc_tracer_shutdown(msvc_tracer_t *t, uint32_t timeout_ms);

/**
 * @brief Shut the tracer down (with a 2 s flush if not done yet) and free
 *        it. Every span must have ended.
 * @param t  The tracer, or NULL (no-op).
 * @since 0.2
 */
MSVC_API void msvc_tracer_free(msvc_tracer_t *t);

/** @brief Counters of a tracer. */
typedef struct msvc_tracer_stats_s {
  uint64_t started;  /**< Spans started. */
  uint64_t kept;     /**< Spans that passed sampling. */
  uint64_t exported; /**< Spans the collector accepted. */
  uint64_t dropped;  /**< Spans lost: queue full, export failed, shut down. */
  uint64_t queued;   /**< Spans waiting now. */
} msvc_tracer_stats_t;

/**
 * @brief Read a tracer's counters.
 * @param t    The tracer.
 * @param out  Receives them.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API void msvc_tracer_stats(msvc_tracer_t *t, msvc_tracer_stats_t *out);

/**
 * @brief Start a span.
 * @param t       The tracer.
 * @param name    Span name (copied). Use a low-cardinality name: a route
 *                pattern, never a raw path.
 * @param kind    Its kind.
 * @param parent  Parent context (a local span's msvc_trace_span_ctx() or a
 *                parsed `traceparent`), or NULL to start a trace.
 * @param out     Receives the span.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @note The span must be ended with msvc_trace_span_end(), which frees it.
 *       Thread-safe with respect to the tracer.
 * @since 0.2
 */
MSVC_API int msvc_trace_span_start(msvc_tracer_t *t, const char *name,
                                   msvc_span_kind_t kind,
                                   const msvc_trace_ctx_t *parent,
                                   msvc_span_t **out);

/**
 * @brief The span's own context: its trace id, span id and flags.
 * @param s  The span.
 * @return Borrowed until the span ends. Pass it as the parent of a child or
 *         format it into the `traceparent` of an outgoing request.
 * @since 0.2
 */
MSVC_API const msvc_trace_ctx_t *msvc_trace_span_ctx(const msvc_span_t *s);

/**
 * @brief Rename a span (e.g. once the route is known).
 * @param s     The span.
 * @param name  New name (copied).
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM (the old name stays).
 * @since 0.2
 */
MSVC_API int msvc_trace_span_set_name(msvc_span_t *s, const char *name);

/**
 * @brief Set a string attribute; an existing key is replaced. Beyond
 *        #MSVC_TRACE_MAX_ATTRS attributes are dropped and counted.
 * @param s      The span, or NULL (tracing off: nothing happens, #MSVC_OK).
 * @param key    Attribute key, e.g. "http.route"; copied.
 * @param value  Its value; copied.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, MSVC_ERANGE (limit).
 * @note Not thread-safe: the span's owner only.
 * @since 0.2
 */
MSVC_API int msvc_trace_span_set_str(msvc_span_t *s, const char *key,
                                     const char *value);
/**
 * @brief Set an integer attribute, as msvc_trace_span_set_str().
 * @param s      The span, or NULL.
 * @param key    Attribute key; copied.
 * @param value  Its value.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, MSVC_ERANGE.
 * @since 0.2
 */
MSVC_API int msvc_trace_span_set_int(msvc_span_t *s, const char *key, int64_t value);
/**
 * @brief Set a boolean attribute, as msvc_trace_span_set_str().
 * @param s      The span, or NULL.
 * @param key    Attribute key; copied.
 * @param value  Its value.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, MSVC_ERANGE.
 * @since 0.2
 */
MSVC_API int msvc_trace_span_set_bool(msvc_span_t *s, const char *key, bool value);
/**
 * @brief Set a floating-point attribute, as msvc_trace_span_set_str().
 * @param s      The span, or NULL.
 * @param key    Attribute key; copied.
 * @param value  Its value (NaN and infinities are exported as strings).
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, MSVC_ERANGE.
 * @since 0.2
 */
MSVC_API int msvc_trace_span_set_double(msvc_span_t *s, const char *key, double value);

/**
 * @brief Add a timestamped event. Beyond #MSVC_TRACE_MAX_EVENTS events are
 *        dropped and counted.
 * @param s        The span, or NULL (nothing happens, #MSVC_OK).
 * @param name     Event name, e.g. "retry"; copied.
 * @param message  Value of the event's `message` attribute, or NULL for
 *                 none; copied.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, MSVC_ERANGE (limit).
 * @since 0.2
 */
MSVC_API int msvc_trace_span_add_event(msvc_span_t *s, const char *name,
                                       const char *message);

/**
 * @brief Set the span's status; an error status makes the span kept
 *        whatever the sampling.
 * @param s        The span, or NULL (nothing happens).
 * @param status   Unset, ok or error.
 * @param message  Description of an error (copied), or NULL; ignored for
 *                 other statuses, as OTLP asks.
 * @since 0.2
 */
MSVC_API void msvc_trace_span_set_status(msvc_span_t *s, msvc_span_status_t status,
                                         const char *message);

/**
 * @brief Whether the span is sampled (will be kept even if it ends well).
 * @param s  The span, or NULL (false).
 * @return true when its trace flags say sampled.
 * @since 0.2
 */
MSVC_API bool msvc_trace_span_sampled(const msvc_span_t *s);

/**
 * @brief Whether the span would be kept if it ended now: sampled, failed
 *        (status set to error) or already slower than the threshold.
 *
 * Set the status first, then ask: attributes that are costly to build can
 * be skipped for a span that will be dropped anyway (the service's own
 * spans do so).
 *
 * @param s  The span, or NULL (false).
 * @return true when it would be kept, and always while the tracer records
 *         spans locally for a service's admin page (its tracez view shows
 *         every span with its attributes).
 * @since 0.2
 */
MSVC_API bool msvc_trace_span_wanted(const msvc_span_t *s);

/**
 * @brief End a span now: decide, queue it for export or free it.
 * @param s  The span, or NULL (no-op). Invalid afterwards.
 * @note Never blocks: a full queue drops the span (counted).
 * @since 0.2
 */
MSVC_API void msvc_trace_span_end(msvc_span_t *s);

#ifdef __cplusplus
}
#endif

#endif /* MSVC_TRACE_H */
