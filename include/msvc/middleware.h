/**
 * @file msvc/middleware.h
 * @brief The standard HTTP server middlewares: request metrics, the
 *        `/metrics` endpoint, request ids, W3C trace context and the access
 *        log.
 *
 * Each piece is installed on a server with msvc_http_server_use() under the
 * hood, in the order the caller chooses. The recommended order, which a
 * service object follows, is request id, trace context, access log,
 * metrics (so the access log and the handler both see the id and the trace):
 *
 * @code
 * msvc_mw_metrics_t *mm;
 *
 * msvc_mw_request_id_use(srv);
 * msvc_mw_trace_use(srv);
 * msvc_mw_access_log_use(srv);
 * msvc_mw_metrics_new(srv, NULL, &mm);          // default registry
 * msvc_mw_metrics_route(srv, "/metrics", NULL); // exposes it
 * // ... run the loop, close the server, then:
 * msvc_mw_metrics_free(mm);
 * @endcode
 *
 * Middleware state is bound to one server and its loop: install and use it
 * from the loop's thread only. The parsing and formatting functions
 * (msvc_mw_traceparent_parse(), msvc_mw_traceparent_format(),
 * msvc_mw_request_id_valid()) are pure and thread-safe.
 */
#ifndef MSVC_MIDDLEWARE_H
#define MSVC_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/error.h>
#include <msvc/http.h>
#include <msvc/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- request metrics ----------------------------------------------------- */

/** @brief Route label of requests that matched no route (404 and 405). */
#define MSVC_MW_UNMATCHED_ROUTE "unmatched"

/** @brief The metrics middleware of one server. */
typedef struct msvc_mw_metrics_s msvc_mw_metrics_t;

/** @brief Options of the metrics middleware; fill with
 *         msvc_mw_metrics_opts_init(). */
typedef struct msvc_mw_metrics_opts_s {
  size_t size; /**< sizeof(msvc_mw_metrics_opts_t). */
  /** Registry to record into; NULL (the default) for the default registry.
   *  Borrowed: it must outlive the middleware. */
  msvc_metrics_registry_t *registry;
  /** Duration histogram bounds in seconds; NULL (the default) for the
   *  default buckets. Copied by the registry. */
  const double *buckets;
  /** Number of bounds in buckets. */
  size_t bucket_count;
  /** Route label of unmatched requests; NULL (the default) for
   *  #MSVC_MW_UNMATCHED_ROUTE. Copied. */
  const char *unmatched_route;
} msvc_mw_metrics_opts_t;

/**
 * @brief Fill metrics middleware options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.1
 */
MSVC_API void msvc_mw_metrics_opts_init(msvc_mw_metrics_opts_t *opts);

/**
 * @brief Create the metrics middleware and install it on a server.
 *
 * Registers (or finds) `msvc_http_server_requests_total{method,route,status}`,
 * `msvc_http_server_request_duration_seconds{method,route}` and
 * `msvc_http_server_connections` in the registry and appends a middleware
 * that records every request that reaches the middleware chain by its
 * route pattern (msvc_http_req_route()), never by its raw path. Child
 * handles are cached per route and method, so a request in the steady state
 * costs no label lookup and no allocation.
 *
 * The connection gauge is the sum over every server that records into the
 * registry: each middleware adds the change of its own server's count,
 * read when a request starts and when it ends, and takes its share back
 * when freed.
 *
 * @param srv   The server; it keeps a pointer to the middleware until it
 *              is closed.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the middleware.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL argument, a too small size or
 *         bad buckets; MSVC_EMETRIC_MISMATCH when one of the three names
 *         is already registered with another type, labels or buckets;
 *         MSVC_EMETRIC_NAME when a name clashes with another family's
 *         series; MSVC_ENOMEM. Nothing is installed on failure.
 * @note Ownership: the caller frees the middleware with
 *       msvc_mw_metrics_free() after the server is closed (its close
 *       callback has run). Loop thread only.
 * @since 0.1
 */
MSVC_API int msvc_mw_metrics_new(msvc_http_server_t *srv,
                                 const msvc_mw_metrics_opts_t *opts,
                                 msvc_mw_metrics_t **out);

/**
 * @brief Bring the connection gauge up to date with the server now.
 * @param m  The middleware, or NULL (a no-op).
 * @note Loop thread only. Requests do this on their own; call it from a
 *       timer when connections open and close without requests for long.
 * @since 0.1
 */
MSVC_API void msvc_mw_metrics_refresh(msvc_mw_metrics_t *m);

/**
 * @brief Free the metrics middleware.
 *
 * The recorded series stay in the registry; this server's share of the
 * connection gauge is taken back.
 *
 * @param m  The middleware, or NULL (a no-op). Its server must have been
 *           closed (the middleware is still in its chain until then).
 * @since 0.1
 */
MSVC_API void msvc_mw_metrics_free(msvc_mw_metrics_t *m);

/**
 * @brief A route handler that answers with an exposition of a registry.
 *
 * The format follows the request's `Accept` header
 * (msvc_metrics_negotiate()): OpenMetrics when the scraper asks for
 * `application/openmetrics-text`, else the text format 0.0.4 with
 * `Content-Type: text/plain; version=0.0.4; charset=utf-8`. A failure to
 * render answers 500 INTERNAL.
 *
 * @param req   The request.
 * @param res   Its response, finished by the call.
 * @param data  The registry (msvc_metrics_registry_t *), or NULL for the
 *              default registry.
 * @since 0.1
 */
MSVC_API void msvc_mw_metrics_handler(msvc_http_req_t *req, msvc_http_res_t *res,
                                      void *data);

/**
 * @brief Route `GET path` to msvc_mw_metrics_handler() and make sure the
 *        registry has the process collector.
 * @param srv   The server.
 * @param path  Route pattern, usually "/metrics". Copied.
 * @param reg   The registry, or NULL for the default registry; borrowed for
 *              the server's lifetime.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_EHTTP_ROUTE (bad or duplicate
 *         pattern); MSVC_EMETRIC_MISMATCH or MSVC_EMETRIC_NAME when a
 *         process metric name is taken by another family; MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_mw_metrics_route(msvc_http_server_t *srv, const char *path,
                                   msvc_metrics_registry_t *reg);

/* ---- request id ---------------------------------------------------------- */

/** @brief Header that carries the request id. */
#define MSVC_MW_REQUEST_ID_HEADER "X-Request-Id"
/** @brief Longest request id accepted from a client, in bytes. */
#define MSVC_MW_REQUEST_ID_MAX 128

/**
 * @brief Whether a string is acceptable as an incoming request id.
 *
 * Accepted: 1 to #MSVC_MW_REQUEST_ID_MAX bytes, each visible ASCII
 * (0x21 to 0x7e). Anything else (empty, too long, spaces, control or
 * non-ASCII bytes) is replaced by a generated id.
 *
 * @param s    The candidate; may be NULL (not valid).
 * @param len  Its length in bytes.
 * @return true when valid.
 * @note Thread-safe; pure.
 * @since 0.1
 */
MSVC_API bool msvc_mw_request_id_valid(const char *s, size_t len);

/**
 * @brief Install the request id middleware.
 *
 * Reuses a valid incoming `X-Request-Id`, else generates one (32 lower-case
 * hex digits, random), sets it as the `X-Request-Id` response header and
 * keeps it for msvc_mw_request_id().
 *
 * @param srv  The server.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @note The middleware keeps no state of its own: nothing to free.
 * @since 0.1
 */
MSVC_API int msvc_mw_request_id_use(msvc_http_server_t *srv);

/**
 * @brief The id of a request, as set by the request id middleware.
 * @param req  The request.
 * @return The id, NUL-terminated, or NULL when the middleware did not run;
 *         borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_mw_request_id(const msvc_http_req_t *req);

/* ---- W3C trace context --------------------------------------------------- */

/** @brief Buffer size for a formatted `traceparent` (55 characters + NUL). */
#define MSVC_MW_TRACEPARENT_LEN 56

/** @brief The trace context of one hop. */
typedef struct msvc_mw_trace_s {
  char trace_id[33];  /**< 32 lower-case hex digits, not all zero. */
  char span_id[17];   /**< This hop's span id: 16 hex digits, not all zero. */
  char parent_id[17]; /**< Caller's span id, or "" when this hop started the
                           trace. */
  uint8_t flags;      /**< Trace flags (bit 0: sampled). */
} msvc_mw_trace_t;

/**
 * @brief Parse a `traceparent` header value.
 *
 * Follows the W3C Trace Context rules: `version-traceid-parentid-flags`
 * with lower-case hex fields of 2, 32, 16 and 2 digits; version `ff`,
 * all-zero trace or parent ids and upper-case hex are invalid; version `00`
 * must be exactly 55 characters; a higher version may carry more fields
 * after a `-`, which are ignored. Optional spaces or tabs around the value
 * are tolerated.
 *
 * @param s    The value; may be NULL (invalid).
 * @param len  Its length in bytes.
 * @param out  Receives trace_id, parent_id (the header's parent id) and
 *             flags; span_id is set to "". Untouched on error.
 * @return #MSVC_OK, or MSVC_EINVAL for a NULL out or an invalid value.
 * @note Thread-safe; pure.
 * @since 0.1
 */
MSVC_API int msvc_mw_traceparent_parse(const char *s, size_t len,
                                       msvc_mw_trace_t *out);

/**
 * @brief Make a context for this hop: keep the caller's trace and give it
 *        a new span id, or start a new trace.
 * @param parent  A context parsed from the incoming header, or NULL to start
 *                a new trace (random trace id, flags 0).
 * @param out     Receives the context (may be the same object as parent).
 * @return #MSVC_OK, or MSVC_EINVAL for a NULL out.
 * @note Thread-safe; ids come from a fast non-cryptographic generator.
 * @since 0.1
 */
MSVC_API int msvc_mw_trace_child(const msvc_mw_trace_t *parent,
                                 msvc_mw_trace_t *out);

/**
 * @brief Format the `traceparent` to send on an outgoing call made while
 *        serving a request: version 00, this hop's trace id and span id
 *        (the callee's parent) and flags.
 * @param t    The context.
 * @param out  Buffer of at least #MSVC_MW_TRACEPARENT_LEN bytes.
 * @param cap  Its size.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL argument or a context whose ids
 *         are not valid; MSVC_ERANGE when cap is too small.
 * @note Thread-safe; pure.
 * @since 0.1
 */
MSVC_API int msvc_mw_traceparent_format(const msvc_mw_trace_t *t, char *out,
                                        size_t cap);

/**
 * @brief Install the trace context middleware.
 *
 * Parses an incoming `traceparent`; when it is valid, keeps its trace id
 * and flags and records its parent id; when it is absent or invalid,
 * starts a new trace. Either way this hop gets a new span id. The incoming
 * `tracestate` is kept (msvc_mw_tracestate()) only with a valid
 * `traceparent`, as the specification asks.
 *
 * @param srv  The server.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @note The middleware keeps no state of its own: nothing to free.
 * @since 0.1
 */
MSVC_API int msvc_mw_trace_use(msvc_http_server_t *srv);

/**
 * @brief The trace context of a request, as set by the trace middleware.
 * @param req  The request.
 * @return The context, or NULL when the middleware did not run; borrowed
 *         until the response is finished.
 * @since 0.1
 */
MSVC_API const msvc_mw_trace_t *msvc_mw_trace(const msvc_http_req_t *req);

/**
 * @brief The incoming `tracestate` to forward with the `traceparent`.
 * @param req  The request.
 * @return The header's value, or NULL when absent, when the `traceparent`
 *         was invalid or when the middleware did not run; borrowed until the
 *         response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_mw_tracestate(const msvc_http_req_t *req);

/* ---- access log ---------------------------------------------------------- */

/** @brief Component name of access log lines. */
#define MSVC_MW_ACCESS_LOG_COMPONENT "access"

/**
 * @brief Install the access log middleware.
 *
 * Writes one info-level line per request through the logger (msvc/log.h),
 * in its format (text or JSON), with component
 * #MSVC_MW_ACCESS_LOG_COMPONENT, message "request" and the fields `method`,
 * `route` (the pattern, or #MSVC_MW_UNMATCHED_ROUTE), `path` (the raw
 * target without its query string), `status` (499 when the client went
 * away first), `duration_ms`, `bytes_in` (request body bytes),
 * `request_id` and `trace_id` (when those middlewares ran before it, else
 * "-") and `peer` ("ip:port", "-" once the client is gone). Nothing is built
 * when the logger's level is above info.
 *
 * @param srv  The server.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @note The middleware keeps no state of its own: nothing to free. Leave
 *       it out (or raise the log level) where a line per request costs too
 *       much, e.g. in benchmarks.
 * @since 0.1
 */
MSVC_API int msvc_mw_access_log_use(msvc_http_server_t *srv);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_MIDDLEWARE_H */
