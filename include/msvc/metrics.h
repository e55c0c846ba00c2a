/**
 * @file msvc/metrics.h
 * @brief Prometheus metrics: counters, gauges and histograms with labels,
 *        exposition in the Prometheus text format 0.0.4 and OpenMetrics, and
 *        a process collector.
 *
 * A registry holds metric families; a family has a fixed list of label
 * names and one child per tuple of label values. A child handle is looked
 * up once (the lookup takes a lock and may allocate) and then updated as
 * often as needed without any lock or allocation:
 *
 * @code
 * msvc_metrics_family_t *fam;
 * msvc_metrics_counter_t *ok;
 * const char *labels[] = {"method", "status"};
 * const char *values[] = {"GET", "200"};
 * msvc_metrics_family_opts_t o;
 *
 * msvc_metrics_family_opts_init(&o);
 * o.name = "app_requests_total";
 * o.help = "Requests handled.";
 * o.label_names = labels;
 * o.label_count = 2;
 * msvc_metrics_family_new(NULL, MSVC_METRICS_COUNTER, &o, &fam);
 * msvc_metrics_counter_get(fam, values, 2, &ok);
 * msvc_metrics_counter_inc(ok); // lock-free, allocation-free
 * @endcode
 *
 * This header has no I/O and no event loop; every function is thread-safe
 * unless its documentation says otherwise. See the metrics guide for the
 * design and its pitfalls.
 */
#ifndef MSVC_METRICS_H
#define MSVC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A set of metric families exposed together. */
typedef struct msvc_metrics_registry_s msvc_metrics_registry_t;
/** @brief A metric family: one name, one type, fixed label names. */
typedef struct msvc_metrics_family_s msvc_metrics_family_t;
/** @brief A counter child: a cacheable handle owned by its family. */
typedef struct msvc_metrics_counter_s msvc_metrics_counter_t;
/** @brief A gauge child: a cacheable handle owned by its family. */
typedef struct msvc_metrics_gauge_s msvc_metrics_gauge_t;
/** @brief A histogram child: a cacheable handle owned by its family. */
typedef struct msvc_metrics_histogram_s msvc_metrics_histogram_t;

/** @brief The type of a metric family. */
typedef enum msvc_metrics_type_e {
  MSVC_METRICS_COUNTER = 0,  /**< Only goes up (reset by a restart). */
  MSVC_METRICS_GAUGE = 1,    /**< Goes up and down. */
  MSVC_METRICS_HISTOGRAM = 2 /**< Observations counted in buckets. */
} msvc_metrics_type_t;

/** @brief Exposition formats. */
typedef enum msvc_metrics_format_e {
  /** Prometheus text format 0.0.4. */
  MSVC_METRICS_FORMAT_TEXT = 0,
  /** OpenMetrics 1.0.0 text (ends with `# EOF`). */
  MSVC_METRICS_FORMAT_OPENMETRICS = 1
} msvc_metrics_format_t;

/** @brief Content-Type of the Prometheus text format 0.0.4. */
#define MSVC_METRICS_CONTENT_TYPE_TEXT "text/plain; version=0.0.4; charset=utf-8"
/** @brief Content-Type of OpenMetrics 1.0.0. */
#define MSVC_METRICS_CONTENT_TYPE_OPENMETRICS \
  "application/openmetrics-text; version=1.0.0; charset=utf-8"

/** @brief Number of buckets in #MSVC_METRICS_DEFAULT_BUCKETS_INIT. */
#define MSVC_METRICS_DEFAULT_BUCKET_COUNT 11
/**
 * @brief Initialiser of the default histogram buckets, in seconds, the same
 *        as the Prometheus client libraries' (0.005 to 10).
 */
#define MSVC_METRICS_DEFAULT_BUCKETS_INIT \
  { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

/** @brief Largest number of label names a family may have. */
#define MSVC_METRICS_MAX_LABELS 16
/** @brief Largest number of bucket bounds a histogram may have. */
#define MSVC_METRICS_MAX_BUCKETS 256

/**
 * @brief Family flag: keep one shared value instead of per-thread shards.
 *
 * Counters and histograms are sharded by default: each thread that updates
 * them writes its own cache line, so threads never contend. A sharded child
 * costs a few hundred bytes; a family with very many children that are
 * rarely updated can save that memory with this flag, at the price of an
 * atomic read-modify-write per update. Gauges are never sharded.
 */
#define MSVC_METRICS_UNSHARDED 0x1u

/** @brief Options of a registry; fill with msvc_metrics_registry_opts_init(). */
typedef struct msvc_metrics_registry_opts_s {
  /** sizeof(msvc_metrics_registry_opts_t), set by the init function. */
  size_t size;
  /**
   * Series limit of each family that does not set its own (default
   * 10000). A lookup that would create a child beyond it fails and is
   * counted in `msvc_metrics_dropped_series_total` (label `metric`: the
   * family's name).
   */
  size_t max_series_per_family;
} msvc_metrics_registry_opts_t;

/** @brief Options of a family; fill with msvc_metrics_family_opts_init(). */
typedef struct msvc_metrics_family_opts_s {
  /** sizeof(msvc_metrics_family_opts_t), set by the init function. */
  size_t size;
  /** Metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`, not starting with `__`. */
  const char *name;
  /** Help text (UTF-8, may be empty; NULL is the same as empty). */
  const char *help;
  /**
   * Label names, `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, no
   * duplicates, `le` not allowed on histograms. Borrowed during the call.
   */
  const char *const *label_names;
  /** Number of label names (0 to #MSVC_METRICS_MAX_LABELS). */
  size_t label_count;
  /**
   * Histogram upper bounds, strictly increasing, no NaN; a last `+Inf` is
   * allowed and dropped (the `+Inf` bucket always exists). NULL gives the
   * default buckets. Ignored for counters and gauges. Borrowed during the
   * call.
   */
  const double *buckets;
  /** Number of bounds in buckets (at most #MSVC_METRICS_MAX_BUCKETS). */
  size_t bucket_count;
  /** Series limit of this family; 0 takes the registry's. */
  size_t max_series;
  /** #MSVC_METRICS_UNSHARDED or 0 (the default). */
  unsigned flags;
} msvc_metrics_family_opts_t;

/**
 * @brief Fill registry options with their defaults.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_metrics_registry_opts_init(msvc_metrics_registry_opts_t *opts);

/**
 * @brief Create a private registry (for tests, or a library that exposes
 *        its own metrics).
 * @param opts  Options, or NULL for the defaults. Copied.
 * @param out   Receives the registry; the caller frees it with
 *              msvc_metrics_registry_free().
 * @return #MSVC_OK, MSVC_EINVAL (NULL out or a zero series limit) or
 *         MSVC_ENOMEM.
 * @note Thread-safe. A new registry has no process collector; add one with
 *       msvc_metrics_process_collector_register().
 * @since 0.1
 */
MSVC_API int msvc_metrics_registry_new(const msvc_metrics_registry_opts_t *opts,
                                       msvc_metrics_registry_t **out);

/**
 * @brief Free a registry with all its families and children.
 * @param reg  The registry, or NULL (a no-op). Must not be the default
 *             registry (ignored if it is).
 * @note Not thread-safe with respect to other uses of the same registry:
 *       every handle obtained from it becomes invalid.
 * @since 0.1
 */
MSVC_API void msvc_metrics_registry_free(msvc_metrics_registry_t *reg);

/**
 * @brief The process-wide default registry, created on first use with the
 *        default options and the process collector.
 * @return The registry (never to be freed by the caller), or NULL if it
 *         could not be created (out of memory).
 * @note Thread-safe. Every function taking a registry also accepts NULL
 *       for this one.
 * @since 0.1
 */
MSVC_API msvc_metrics_registry_t *msvc_metrics_default_registry(void);

/**
 * @brief Fill family options with their defaults (no labels, default
 *        buckets, the registry's series limit, sharded).
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_metrics_family_opts_init(msvc_metrics_family_opts_t *opts);

/**
 * @brief Register a metric family, or find the one already registered
 *        under the same name.
 *
 * Registering again with the same type, label names and buckets returns
 * the existing family, so independent parts of a program can each
 * register what they use.
 *
 * @param reg   The registry, or NULL for the default registry.
 * @param type  Counter, gauge or histogram.
 * @param opts  Name, help, labels, buckets; everything is copied.
 * @param out   Receives the family, owned by the registry (valid until the
 *              registry is freed; never freed by the caller).
 * @return #MSVC_OK; MSVC_EMETRIC_NAME for a bad metric or label name, or
 *         a name whose series would clash with another family's (for
 *         example `x_count` beside a histogram `x`); MSVC_EMETRIC_MISMATCH
 *         when the name exists with another type, labels or buckets;
 *         MSVC_EINVAL for NULL arguments, bad buckets, too many labels or
 *         help text that is not UTF-8; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_metrics_family_new(msvc_metrics_registry_t *reg,
                                     msvc_metrics_type_t type,
                                     const msvc_metrics_family_opts_t *opts,
                                     msvc_metrics_family_t **out);

/**
 * @brief The type of a family.
 * @param fam  The family; must not be NULL.
 * @return Its type.
 * @since 0.1
 */
MSVC_API msvc_metrics_type_t msvc_metrics_family_type(const msvc_metrics_family_t *fam);

/**
 * @brief Number of children (series) a family has now.
 * @param fam  The family; must not be NULL.
 * @return The count. Thread-safe.
 * @since 0.1
 */
MSVC_API size_t msvc_metrics_family_size(msvc_metrics_family_t *fam);

/**
 * @brief Remove the child with the given label values and free it.
 * @param fam     A family with at least one label.
 * @param values  Label values, in the order of the family's label names.
 * @param count   Number of values; must equal the family's label count.
 * @return #MSVC_OK; MSVC_ENOTFOUND when no such child exists;
 *         MSVC_EMETRIC_LABELS for a wrong count; MSVC_EINVAL for NULL
 *         arguments or a family without labels.
 * @note Thread-safe with respect to lookups and exposition, but every
 *       cached handle of the removed child becomes invalid: the caller must
 *       make sure no thread still uses it.
 * @since 0.1
 */
MSVC_API int msvc_metrics_family_remove(msvc_metrics_family_t *fam,
                                        const char *const *values, size_t count);

/**
 * @brief Remove and free every child of a family.
 * @param fam  A family with at least one label.
 * @return #MSVC_OK, or MSVC_EINVAL for NULL or a family without labels.
 * @note Same handle rule as msvc_metrics_family_remove().
 * @since 0.1
 */
MSVC_API int msvc_metrics_family_clear(msvc_metrics_family_t *fam);

/**
 * @brief Find or create the counter child with the given label values.
 *
 * Takes the family's lock and, for a new child, allocates: look a child up
 * once and keep the handle, rather than looking it up on every update.
 *
 * @param fam     A counter family.
 * @param values  Label values (any UTF-8, escaped on output), in the order
 *                of the label names; copied. May be NULL when count is 0.
 * @param count   Number of values; must equal the family's label count.
 * @param out     Receives the child, owned by the family: valid until it is
 *                removed, the family cleared or the registry freed.
 * @return #MSVC_OK; MSVC_EMETRIC_MISMATCH when the family is not a counter;
 *         MSVC_EMETRIC_LABELS for a wrong count; MSVC_EINVAL for NULL
 *         arguments or a value that is not UTF-8; MSVC_EMETRIC_CARDINALITY
 *         when the family's series limit is reached (counted in
 *         `msvc_metrics_dropped_series_total`); MSVC_ENOMEM.
 * @note Ownership: the child belongs to the family; never free it. The
 *       label values are copied. Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_metrics_counter_get(msvc_metrics_family_t *fam,
                                      const char *const *values, size_t count,
                                      msvc_metrics_counter_t **out);

/**
 * @brief Find or create a gauge child; as msvc_metrics_counter_get().
 * @param fam     A gauge family.
 * @param values  Label values; copied.
 * @param count   Number of values.
 * @param out     Receives the child, owned by the family.
 * @return As msvc_metrics_counter_get(), MSVC_EMETRIC_MISMATCH when the
 *         family is not a gauge.
 * @since 0.1
 */
MSVC_API int msvc_metrics_gauge_get(msvc_metrics_family_t *fam,
                                    const char *const *values, size_t count,
                                    msvc_metrics_gauge_t **out);

/**
 * @brief Find or create a histogram child; as msvc_metrics_counter_get().
 * @param fam     A histogram family.
 * @param values  Label values; copied.
 * @param count   Number of values.
 * @param out     Receives the child, owned by the family.
 * @return As msvc_metrics_counter_get(), MSVC_EMETRIC_MISMATCH when the
 *         family is not a histogram.
 * @since 0.1
 */
MSVC_API int msvc_metrics_histogram_get(msvc_metrics_family_t *fam,
                                        const char *const *values, size_t count,
                                        msvc_metrics_histogram_t **out);

/**
 * @brief Add one to a counter. Lock-free and allocation-free.
 * @param c  The counter; must not be NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_metrics_counter_inc(msvc_metrics_counter_t *c);

/**
 * @brief Add a non-negative amount to a counter. Lock-free.
 * @param c  The counter; must not be NULL.
 * @param v  The amount, finite and >= 0.
 * @return #MSVC_OK, or MSVC_EINVAL (counter unchanged) for a negative,
 *         infinite or NaN amount.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_metrics_counter_add(msvc_metrics_counter_t *c, double v);

/**
 * @brief The current value of a counter (sum over its shards).
 * @param c  The counter; must not be NULL.
 * @return The value. Thread-safe.
 * @since 0.1
 */
MSVC_API double msvc_metrics_counter_value(const msvc_metrics_counter_t *c);

/**
 * @brief Set a gauge. Lock-free.
 * @param g  The gauge; must not be NULL.
 * @param v  Any value, including +Inf, -Inf and NaN.
 * @since 0.1
 */
MSVC_API void msvc_metrics_gauge_set(msvc_metrics_gauge_t *g, double v);

/**
 * @brief Add to a gauge (a negative amount subtracts). Lock-free.
 * @param g  The gauge; must not be NULL.
 * @param v  The amount.
 * @since 0.1
 */
MSVC_API void msvc_metrics_gauge_add(msvc_metrics_gauge_t *g, double v);

/**
 * @brief Add one to a gauge. Lock-free.
 * @param g  The gauge; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_metrics_gauge_inc(msvc_metrics_gauge_t *g);

/**
 * @brief Subtract one from a gauge. Lock-free.
 * @param g  The gauge; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_metrics_gauge_dec(msvc_metrics_gauge_t *g);

/**
 * @brief The current value of a gauge.
 * @param g  The gauge; must not be NULL.
 * @return The value. Thread-safe.
 * @since 0.1
 */
MSVC_API double msvc_metrics_gauge_value(const msvc_metrics_gauge_t *g);

/**
 * @brief Record one observation. Lock-free and allocation-free.
 *
 * The observation goes into the first bucket whose bound is >= v (NaN goes
 * only into the `+Inf` bucket) and is added to the sum.
 *
 * @param h  The histogram; must not be NULL.
 * @param v  The observed value.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_metrics_histogram_observe(msvc_metrics_histogram_t *h, double v);

/**
 * @brief Record one observation with an exemplar: the trace it belongs to.
 *
 * As msvc_metrics_histogram_observe(), and the observation becomes the
 * exemplar of its bucket (the latest one wins). Exemplars appear only in
 * the OpenMetrics exposition, as `# {trace_id="...",span_id="..."} value
 * timestamp` after the bucket's line; the text format 0.0.4 is unchanged.
 *
 * @param h         The histogram; must not be NULL.
 * @param v         The observed value.
 * @param trace_id  32 lower-case hex digits; anything else records no
 *                  exemplar (the observation still counts).
 * @param span_id   16 lower-case hex digits, or NULL.
 * @param wall_ms   When it was observed, Unix time in milliseconds.
 * @note Thread-safe. The first exemplar of a series allocates its slots;
 *       later ones take a short per-series spin lock.
 * @since 0.2
 */
MSVC_API void msvc_metrics_histogram_observe_exemplar(msvc_metrics_histogram_t *h, double v,
                                                      const char *trace_id,
                                                      const char *span_id,
                                                      uint64_t wall_ms);

/**
 * @brief Number of observations a histogram has recorded.
 * @param h  The histogram; must not be NULL.
 * @return The count. Thread-safe.
 * @since 0.1
 */
MSVC_API uint64_t msvc_metrics_histogram_count(const msvc_metrics_histogram_t *h);

/**
 * @brief Sum of the observations a histogram has recorded.
 * @param h  The histogram; must not be NULL.
 * @return The sum. Thread-safe.
 * @since 0.1
 */
MSVC_API double msvc_metrics_histogram_sum(const msvc_metrics_histogram_t *h);

/**
 * @brief Fill bounds start, start+width, start+2*width, ...
 * @param start  First bound.
 * @param width  Distance between bounds, > 0.
 * @param count  Number of bounds, 1 to #MSVC_METRICS_MAX_BUCKETS.
 * @param out    Array of at least count doubles, written by the call.
 * @return #MSVC_OK, or MSVC_EINVAL for a bad argument (out untouched).
 * @since 0.1
 */
MSVC_API int msvc_metrics_buckets_linear(double start, double width, size_t count,
                                         double *out);

/**
 * @brief Fill bounds start, start*factor, start*factor^2, ...
 * @param start   First bound, > 0.
 * @param factor  Growth factor, > 1.
 * @param count   Number of bounds, 1 to #MSVC_METRICS_MAX_BUCKETS.
 * @param out     Array of at least count doubles, written by the call.
 * @return #MSVC_OK, or MSVC_EINVAL for a bad argument (out untouched).
 * @since 0.1
 */
MSVC_API int msvc_metrics_buckets_exponential(double start, double factor,
                                              size_t count, double *out);

/**
 * @brief A function a registry calls at the start of every exposition,
 *        to bring computed values (gauges read from elsewhere) up to date.
 * @param reg   The registry being exposed.
 * @param data  The pointer given at registration.
 */
typedef void (*msvc_metrics_collect_fn)(msvc_metrics_registry_t *reg, void *data);

/**
 * @brief Register a function called before every exposition of a registry.
 * @param reg   The registry, or NULL for the default registry.
 * @param fn    The function; called from whichever thread exposes, possibly
 *              from two threads at once. It may update metrics and look
 *              children up, but must not register or remove hooks.
 * @param data  Passed to fn; borrowed until the registry is freed.
 * @return #MSVC_OK, MSVC_EINVAL for a NULL fn, or MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_metrics_collect_hook_add(msvc_metrics_registry_t *reg,
                                           msvc_metrics_collect_fn fn, void *data);

/**
 * @brief Add the process collector to a registry.
 *
 * Registers `process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`
 * and `process_start_time_seconds`, read from `/proc` at every exposition.
 * The default registry has it already. Where `/proc` cannot be read the
 * values that depend on it are left as they were.
 *
 * @param reg  The registry, or NULL for the default registry.
 * @return #MSVC_OK (also when already registered), MSVC_EMETRIC_MISMATCH
 *         or MSVC_EMETRIC_NAME when one of those names is already taken by
 *         another kind of family, or MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_metrics_process_collector_register(msvc_metrics_registry_t *reg);

/**
 * @brief Pick the exposition format for an HTTP `Accept` header.
 *
 * OpenMetrics is chosen when the header lists
 * `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) with a
 * quality at least as high as that of any acceptable text format; in every
 * other case, including a NULL, empty or malformed header, the text format
 * 0.0.4.
 *
 * @param accept        The `Accept` header's value, or NULL.
 * @param content_type  If not NULL, receives the `Content-Type` to send with
 *                      the exposition: a static string, never freed.
 * @return The format to pass to msvc_metrics_expose().
 * @note Thread-safe; no allocation.
 * @since 0.1
 */
MSVC_API msvc_metrics_format_t msvc_metrics_negotiate(const char *accept,
                                                      const char **content_type);

/**
 * @brief Render every series of a registry.
 *
 * Runs the registry's collect hooks, then writes the families in name
 * order, each once with its `# HELP` and `# TYPE` lines and its children in
 * creation order. Families without children are left out.
 *
 * @param reg     The registry, or NULL for the default registry.
 * @param format  Text 0.0.4 or OpenMetrics.
 * @param out     Receives a NUL-terminated string that the caller frees
 *                with msvc_free().
 * @param len     If not NULL, receives its length without the NUL.
 * @return #MSVC_OK, MSVC_EINVAL for a NULL out or unknown format, or
 *         MSVC_ENOMEM (out is then NULL).
 * @note Ownership: the string in out is the caller's, released with
 *       msvc_free(). Thread-safe: updates may go on while a registry is exposed; each
 *       value is read atomically, a family's children under its lock.
 * @since 0.1
 */
MSVC_API int msvc_metrics_expose(msvc_metrics_registry_t *reg,
                                 msvc_metrics_format_t format, char **out,
                                 size_t *len);

/**
 * @brief Whether a string is a valid metric name.
 * @param name  The name, or NULL (not valid).
 * @return 1 if valid, 0 if not.
 * @since 0.1
 */
MSVC_API int msvc_metrics_name_valid(const char *name);

/**
 * @brief Whether a string is a valid label name (reserved `__` prefix
 *        excluded; `le` is accepted here and refused only on histograms).
 * @param name  The name, or NULL (not valid).
 * @return 1 if valid, 0 if not.
 * @since 0.1
 */
MSVC_API int msvc_metrics_label_name_valid(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_METRICS_H */
