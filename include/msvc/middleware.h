/**
 * @file msvc/middleware.h
 * @brief The standard HTTP server middlewares: request metrics, the
 *        `/metrics` endpoint, request ids, W3C trace context, the access
 *        log and JWT authentication.
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
 * JWT authentication (msvc_mw_jwt_new()) goes after them, so that even
 * refused requests are logged and counted:
 *
 * @code
 * msvc_mw_jwt_opts_t jo;
 * msvc_mw_jwt_t *jwt;
 * msvc_http_route_opts_t auth = {sizeof(auth), MSVC_HTTP_ROUTE_AUTH, NULL};
 *
 * msvc_mw_jwt_opts_init(&jo);
 * msvc_mw_jwt_opts_env(&jo, err, sizeof(err)); // MSVC_JWT_* variables
 * msvc_mw_jwt_new(srv, &jo, &jwt);
 * msvc_http_server_route(srv, "GET", "/orders/:id", on_order, NULL, &auth);
 * // in on_order: msvc_mw_jwt_subject(req) is the caller
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
#include <msvc/jwks.h>
#include <msvc/jwt.h>
#include <msvc/limit.h>
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

struct msvc_span_s;

/**
 * @brief The server span of a request (msvc/trace.h), when the service
 *        traces (an OTLP endpoint is configured).
 *
 * Use its context as the parent of spans around your own work:
 * `msvc_trace_span_start(msvc_service_tracer(svc), "db.query",
 * MSVC_SPAN_INTERNAL, msvc_trace_span_ctx(msvc_mw_span(req)), &s)`.
 *
 * @param req  The request.
 * @return The span, or NULL when tracing is off; borrowed until the
 *         response is finished (the middleware ends it then).
 * @since 0.2
 */
MSVC_API struct msvc_span_s *msvc_mw_span(const msvc_http_req_t *req);

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
 * `request_id`, `trace_id` and `span_id` (when those middlewares ran before
 * it, else "-") and `peer` ("ip:port", "-" once the client is gone). Nothing is built
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

/* ---- JWT authentication --------------------------------------------------- */

/** @brief Longest `Authorization` header value the JWT middleware reads, in
 *         bytes; a longer one is refused before any decoding. */
#define MSVC_MW_JWT_HEADER_MAX 16384

/** @brief The JWT authentication middleware of one server. */
typedef struct msvc_mw_jwt_s msvc_mw_jwt_t;

/** @brief Options of the JWT middleware; fill with msvc_mw_jwt_opts_init(). */
typedef struct msvc_mw_jwt_opts_s {
  size_t size; /**< sizeof(msvc_mw_jwt_opts_t). */
  /** The checks a token must pass (algorithms, issuer, audiences, leeway,
   *  required claims, ...), filled by msvc_jwt_verify_opts_init() with
   *  three changes: `cache_size` and `neg_cache_size` are 1024, so the
   *  verified-token and refused-token caches are on (0 turns one off), and
   *  `require_exp` is true (a token without `exp` is refused). Copied by
   *  msvc_mw_jwt_new(). */
  msvc_jwt_verify_opts_t verify;
  /** One more accepted audience besides `verify.audiences`, or NULL (the
   *  default). msvc_mw_jwt_opts_env() sets it from `MSVC_JWT_AUDIENCE`.
   *  Copied. */
  const char *audience;
  /** The keys. NULL (the default): the middleware makes an empty key set of
   *  its own, reachable through msvc_mw_jwt_keyset(). Otherwise borrowed:
   *  the set must outlive the middleware. */
  msvc_jwt_keyset_t *keyset;
  /** A JWK Set file loaded into the key set by msvc_mw_jwt_new(), or NULL
   *  (the default). Read once; copied. */
  const char *jwks_file;
  /** Registry that counts `msvc_jwt_verifications_total{result}`; NULL (the
   *  default) for the default registry. Borrowed: it must outlive the
   *  middleware. */
  msvc_metrics_registry_t *registry;
  /** Route flag bits that mark a route as needing a token; a route whose
   *  msvc_http_route_opts_t flags share a bit with it is checked. Default
   *  #MSVC_HTTP_ROUTE_AUTH. */
  uint32_t route_flags;
  /** `realm` parameter of the `WWW-Authenticate` challenge, or NULL (the
   *  default) for none. Copied; quotes, backslashes and control characters
   *  are dropped. */
  const char *realm;
  /** An `http://` or `https://` URL of a JWK Set kept in the key set by a fetcher of the
   *  middleware's own (msvc/jwks.h: cached, refreshed in the background,
   *  refetched on an unknown `kid`, stale-if-error, fetches counted in
   *  `msvc_jwt_jwks_fetches_total{result}` of @ref registry), or NULL (the
   *  default). The first fetch completes after msvc_mw_jwt_new() returns;
   *  until then a token is answered 503 with `Retry-After` (counted as
   *  `unknown_kid`). Copied. */
  const char *jwks_url;
  /** The loop the fetcher of @ref jwks_url runs on; NULL (the default) for
   *  the server's loop. Borrowed: it must outlive the middleware. */
  uv_loop_t *loop;
  /** Fetch hook given to the fetcher of an `http://` @ref jwks_url (see
   *  msvc_jwks_opts_t::get; an `https://` one is always fetched by the
   *  fetcher's own client), or NULL (the default: the fetcher's own
   *  client). With it set, msvc_mw_jwt_opts_env() also accepts a service
   *  name as the URL's host (the service object sets it so that
   *  `MSVC_JWT_JWKS_URL` is resolved through discovery). */
  msvc_jwks_get_fn jwks_get;
  /** Cancel hook matching @ref jwks_get; required with it. */
  msvc_jwks_cancel_fn jwks_get_cancel;
  /** Passed to @ref jwks_get; borrowed: it must outlive the middleware. */
  void *jwks_get_data;
  /** Client TLS configuration for an `https://` @ref jwks_url (see
   *  msvc_jwks_opts_t::tls), or NULL (the default: the system CA bundle).
   *  The fetcher takes its own reference.
   *  @since 0.2 */
  struct msvc_tls_config_s *jwks_tls;
  /** Where a public-key signature check runs (RS*, PS*, ES* tokens not in
   *  the verified-token cache: 1 to 1.5 ms of CPU each for ES256). NULL
   *  (the default): on the loop, inside the before-hook. Otherwise a
   *  function returning the worker pool (msvc/work.h) of the request's loop,
   *  or NULL for "on the loop this time": the request is then paused, the
   *  check runs on a pool thread, and the request goes on (or is answered
   *  401) on its loop when it is done. A full pool answers 503 `OVERLOADED`
   *  with `Retry-After`, a draining one 503 `SHUTTING_DOWN`. Cached tokens,
   *  refused-token cache hits, HMAC tokens and refusals the header decides
   *  are still answered on the loop: they cost microseconds. The service
   *  object sets this to its per-loop pools. Called on the loop.
   *  @since 0.2 */
  struct msvc_work_s *(*work)(const msvc_http_req_t *req, void *arg);
  /** Passed to @ref work; borrowed. @since 0.2 */
  void *work_arg;
} msvc_mw_jwt_opts_t;

/**
 * @brief Fill JWT middleware options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_mw_jwt_opts_init(msvc_mw_jwt_opts_t *opts);

/**
 * @brief Overlay the JWT settings of a service's environment on options.
 *
 * Reads `MSVC_JWT_JWKS_FILE` (sets @p opts->jwks_file; the file must load as
 * a JWK Set with at least one usable key), `MSVC_JWT_ISSUER` (sets
 * `verify.issuer`), `MSVC_JWT_AUDIENCE` (sets @p opts->audience) and
 * `MSVC_JWT_LEEWAY_S` (sets `verify.leeway_s`: a decimal integer from 0 to
 * 86400) and `MSVC_JWT_REQUIRE_EXP` (sets `verify.require_exp`: `true` or
 * `false`). An unset variable leaves its option alone; a set but empty one
 * is a bad value.
 *
 * `MSVC_JWT_JWKS_URL` sets @p opts->jwks_url. It must be
 * `https://HOST[:PORT]/PATH` with HOST an IP literal or a DNS name (fetched
 * over TLS, the certificate checked against that name), or
 * `http://HOST[:PORT]/PATH` with HOST an IP literal (IPv6 in brackets) or
 * `localhost`, or, when @p opts->jwks_get is set, a service name (letters,
 * digits, `.`, `_`, `-`) that the hook resolves; any other host is refused
 * (EINVAL). Setting both `MSVC_JWT_JWKS_FILE` and `MSVC_JWT_JWKS_URL` is
 * refused.
 *
 * @param opts    Options filled by msvc_mw_jwt_opts_init(). The strings set
 *                point into the environment: pass the options to
 *                msvc_mw_jwt_new() (which copies them) before changing
 *                those variables.
 * @param err     Receives, on failure, one line naming the variable and the
 *                accepted values; may be NULL.
 * @param errlen  Size of @p err.
 * @return #MSVC_OK; MSVC_EINVAL for a bad value or a NULL or unfilled
 *         @p opts; MSVC_ENOMEM.
 *         On failure @p opts may be partly changed.
 * @note Not thread-safe against threads that change the environment.
 * @since 0.1
 */
MSVC_API int msvc_mw_jwt_opts_env(msvc_mw_jwt_opts_t *opts, char *err, size_t errlen);

/**
 * @brief Create the JWT authentication middleware and install it on a
 *        server.
 *
 * For every request whose route is marked with one of @p opts->route_flags
 * (see msvc_http_route_opts_t), reads `Authorization: Bearer <token>` (the
 * scheme in any case, one space, then exactly one token; at most
 * #MSVC_MW_JWT_HEADER_MAX bytes; one such header only) and verifies the
 * token. On success the handler runs and finds the claims with
 * msvc_mw_jwt_claims(). On failure the handler does not run: the answer is
 * 401 with the JSON error body of code `UNAUTHENTICATED` and a
 * `WWW-Authenticate: Bearer` challenge, which carries
 * `error="invalid_token"` and an `error_description` when a token was
 * presented, and no error code when none was (RFC 6750 §3.1). Routes
 * without the flag, and unmatched requests, pass untouched.
 *
 * Every verification of a presented token, cache hits included, is counted
 * in `msvc_jwt_verifications_total{result}` (label values as
 * msvc_jwt_result_name()); a header that names Bearer but does not hold
 * exactly one token counts as `malformed`. Requests with no Bearer
 * credentials are not counted.
 *
 * @param srv   The server; it keeps a pointer to the middleware until it
 *              is closed.
 * @param opts  Options (copied, strings included), or NULL for the
 *              defaults.
 * @param out   Receives the middleware.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL argument, options not filled by
 *         msvc_mw_jwt_opts_init() or invalid verifier options;
 *         MSVC_EJWT_BAD_KEY, MSVC_ETOOLARGE or a negated errno value when
 *         the JWK Set file does not load (msvc_jwt_errmsg() tells why);
 *         MSVC_EURI or MSVC_ENOTSUP for a jwks_url the fetcher refuses
 *         (msvc_jwks_fetcher_new()); MSVC_EMETRIC_MISMATCH or MSVC_EMETRIC_NAME when the counter's
 *         name is taken by another family; MSVC_ENOMEM. Nothing is
 *         installed on failure.
 * @note Ownership: the caller frees the middleware with msvc_mw_jwt_free()
 *       after the server is closed (its close callback has run). Loop
 *       thread only; the verifier and key set it uses are thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_mw_jwt_new(msvc_http_server_t *srv, const msvc_mw_jwt_opts_t *opts,
                             msvc_mw_jwt_t **out);

/**
 * @brief Free the JWT middleware, its verifier and its own key set.
 * @param m  The middleware, or NULL (a no-op). Its server must have been
 *           closed. Claims handed out stay valid until their responses end.
 * @note Call it from the thread that ran the server's loop, after the
 *       server's close callback. With @ref msvc_mw_jwt_opts_t::jwks_url
 *       the key fetcher is closed here and releases its handles from the
 *       loop: run the loop again (until uv_run() returns 0) before
 *       uv_loop_close().
 * @since 0.1
 */
MSVC_API void msvc_mw_jwt_free(msvc_mw_jwt_t *m);

/**
 * @brief The key set the middleware verifies with, e.g. to load or rotate
 *        keys (msvc_jwt_keyset_load_jwks(), msvc_jwt_keyset_replace()).
 * @param m  The middleware.
 * @return The set (the caller's, or the middleware's own), borrowed until
 *         msvc_mw_jwt_free(); NULL for a NULL @p m.
 * @note The key set functions are thread-safe.
 * @since 0.1
 */
MSVC_API msvc_jwt_keyset_t *msvc_mw_jwt_keyset(const msvc_mw_jwt_t *m);

/**
 * @brief The verifier the middleware uses, e.g. for
 *        msvc_jwt_verifier_cache_stats().
 * @param m  The middleware.
 * @return The verifier, borrowed until msvc_mw_jwt_free(); NULL for a NULL
 *         @p m.
 * @note The verifier functions are thread-safe.
 * @since 0.1
 */
MSVC_API msvc_jwt_verifier_t *msvc_mw_jwt_verifier(const msvc_mw_jwt_t *m);

/**
 * @brief The verified claims of a request, as set by the JWT middleware.
 * @param req  The request.
 * @return The claims, or NULL when the route needs no token or the
 *         middleware did not run; borrowed until the response is finished
 *         (the request releases them). Read them with the
 *         msvc_jwt_claims_*() getters.
 * @note Loop thread only, like the request.
 * @since 0.1
 */
MSVC_API const msvc_jwt_claims_t *msvc_mw_jwt_claims(const msvc_http_req_t *req);

/**
 * @brief The `sub` claim of a request's verified token.
 * @param req  The request.
 * @return The subject, or NULL when there are no claims or no string
 *         `sub`; borrowed until the response is finished.
 * @note Loop thread only, like the request.
 * @since 0.1
 */
MSVC_API const char *msvc_mw_jwt_subject(const msvc_http_req_t *req);

/* ---- rate limits ----------------------------------------------------------- */

/** @brief A rate limit middleware: token buckets (msvc/limit.h) keyed by
 *         something of the request. */
typedef struct msvc_mw_ratelimit_s msvc_mw_ratelimit_t;

/** @brief What a rate limit counts requests by. */
typedef enum msvc_mw_ratelimit_key_e {
  /** The client's IP address (see
   *  msvc_mw_ratelimit_opts_t::forwarded_hops). */
  MSVC_MW_RATELIMIT_BY_ADDRESS = 0,
  /** The route: one bucket per method and route pattern, for every client. */
  MSVC_MW_RATELIMIT_BY_ROUTE = 1,
  /** The value of a request header (msvc_mw_ratelimit_opts_t::header). */
  MSVC_MW_RATELIMIT_BY_HEADER = 2,
  /** The `sub` claim of the verified token (install after the JWT
   *  middleware). */
  MSVC_MW_RATELIMIT_BY_SUBJECT = 3
} msvc_mw_ratelimit_key_t;

/** @brief Options of a rate limit middleware; fill with
 *         msvc_mw_ratelimit_opts_init(). */
typedef struct msvc_mw_ratelimit_opts_s {
  size_t size; /**< sizeof(msvc_mw_ratelimit_opts_t). */
  /** Name of the limit: the `limit` label of
   *  `msvc_ratelimit_rejected_total`. Default "default". Copied. */
  const char *name;
  /** What to count by. Default #MSVC_MW_RATELIMIT_BY_ADDRESS. A request
   *  without the header counts against one bucket shared by every such
   *  request; a request without a verified subject (a route that needs no
   *  token) is not limited by a #MSVC_MW_RATELIMIT_BY_SUBJECT limit. */
  msvc_mw_ratelimit_key_t key;
  /** Header name for #MSVC_MW_RATELIMIT_BY_HEADER. Copied. */
  const char *header;
  /** Only requests of this method, or NULL (the default) for any. Copied. */
  const char *method;
  /** Only requests of this route pattern (as given to the router, e.g.
   *  "/login"), or NULL (the default) for every matched route except
   *  `/health`, `/ready` and `/metrics`. Unmatched requests are never
   *  limited. Copied. */
  const char *route;
  /** For #MSVC_MW_RATELIMIT_BY_ADDRESS: proxies of your own in front of
   *  the service, each appending the address it saw to
   *  `X-Forwarded-For` (as msvc_service_proxy() does). 0 (the default):
   *  the peer address. 1: the last address of the header when present
   *  (the client as the proxy saw it), else the peer. Anyone who can reach
   *  the service without the proxy can then choose their key: use it only
   *  when the service is reachable through the proxies alone. */
  unsigned forwarded_hops;
  /** Rate, period, burst and key table size. */
  msvc_limit_rate_opts_t rate;
  /** Add `RateLimit-Limit`/`-Remaining`/`-Reset` to answers that pass too,
   *  not only to 429s. Default true. */
  bool headers_on_success;
  /** Registry of the rejection counter, or NULL for the default one.
   *  Borrowed: it must outlive the middleware. */
  msvc_metrics_registry_t *registry;
} msvc_mw_ratelimit_opts_t;

/**
 * @brief Fill rate limit middleware options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_mw_ratelimit_opts_init(msvc_mw_ratelimit_opts_t *opts);

/**
 * @brief Create a rate limit middleware.
 *
 * A request over its limit gets 429 with the JSON error body of code
 * `RATE_LIMITED`, `Retry-After` (whole seconds, at least 1) and the
 * `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
 * of the IETF RateLimit header fields draft; the handler does not run.
 * Refusals are counted in `msvc_ratelimit_rejected_total{limit}`.
 *
 * The middleware is not bound to a server: install the same one on every
 * server of a program (msvc_http_server_use() with
 * msvc_mw_ratelimit_middleware(), or msvc_service_use(), which replays it
 * on worker loops) and they share its buckets.
 *
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the middleware.
 * @return #MSVC_OK; MSVC_EINVAL (NULL @p out, unfilled options, bad rate
 *         options, #MSVC_MW_RATELIMIT_BY_HEADER without a header name);
 *         MSVC_EMETRIC_MISMATCH or MSVC_EMETRIC_NAME when the counter's
 *         name is taken; MSVC_ENOMEM.
 * @note Ownership: free with msvc_mw_ratelimit_free() once every server
 *       using it is closed. Thread-safe: servers on several loops may use
 *       it at once.
 * @since 0.2
 */
MSVC_API int msvc_mw_ratelimit_new(const msvc_mw_ratelimit_opts_t *opts,
                                   msvc_mw_ratelimit_t **out);

/**
 * @brief The middleware to install.
 * @param m  The rate limit.
 * @return The middleware description, borrowed until
 *         msvc_mw_ratelimit_free(); NULL for a NULL @p m.
 * @since 0.2
 */
MSVC_API const msvc_http_middleware_t *msvc_mw_ratelimit_middleware(const msvc_mw_ratelimit_t *m);

/**
 * @brief The token buckets behind the middleware, e.g. to set a cluster
 *        share or read statistics.
 * @param m  The rate limit.
 * @return The limiter, borrowed until msvc_mw_ratelimit_free(); NULL for
 *         a NULL @p m.
 * @since 0.2
 */
MSVC_API msvc_limit_rate_t *msvc_mw_ratelimit_limiter(const msvc_mw_ratelimit_t *m);

/**
 * @brief Free a rate limit middleware.
 * @param m  The middleware, or NULL (a no-op). Every server it was
 *           installed on must be closed.
 * @since 0.2
 */
MSVC_API void msvc_mw_ratelimit_free(msvc_mw_ratelimit_t *m);

/**
 * @brief Add the `RateLimit-Limit`, `RateLimit-Remaining` and
 *        `RateLimit-Reset` headers of a check to a response.
 * @param res  The response, before it is sent.
 * @param r    The result of msvc_limit_rate_check().
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_EHTTP_RESPONDED, MSVC_ENOMEM.
 * @since 0.2
 */
MSVC_API int msvc_mw_ratelimit_headers(msvc_http_res_t *res, const msvc_limit_result_t *r);

/**
 * @brief Answer 429 `RATE_LIMITED` for a refused check, with
 *        `Retry-After` and the RateLimit headers: for handlers that check a
 *        limit of their own (for example per account, once the body is
 *        parsed).
 * @param res  The response; finished by the call.
 * @param r    The refused result of msvc_limit_rate_check().
 * @return As msvc_http_res_error().
 * @since 0.2
 */
MSVC_API int msvc_mw_ratelimit_reject(msvc_http_res_t *res, const msvc_limit_result_t *r);

/* ---- adaptive concurrency limit (load shedding) ------------------------------- */

/** @brief A concurrency limit middleware: sheds what exceeds an adaptive
 *         (or fixed) limit of requests in flight. */
typedef struct msvc_mw_concurrency_s msvc_mw_concurrency_t;

/** @brief Options of the concurrency limit middleware; fill with
 *         msvc_mw_concurrency_opts_init(). */
typedef struct msvc_mw_concurrency_opts_s {
  size_t size; /**< sizeof(msvc_mw_concurrency_opts_t). */
  /** The limit (msvc/limit.h), conservative by default. */
  msvc_limit_adaptive_opts_t limit;
  /** Registry of the gauges and the counter, or NULL for the default one.
   *  Borrowed: it must outlive the middleware. */
  msvc_metrics_registry_t *registry;
} msvc_mw_concurrency_opts_t;

/**
 * @brief Fill concurrency middleware options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_mw_concurrency_opts_init(msvc_mw_concurrency_opts_t *opts);

/**
 * @brief Create a concurrency limit middleware.
 *
 * Each request of a matched route takes a permit of the limit; when none
 * is left it is answered at once with 503 `OVERLOADED` and `Retry-After: 1`
 * (the handler does not run) and counted in
 * `msvc_http_server_shed_total`. `/health`, `/ready`, `/metrics` and
 * unmatched requests never take a permit and are never shed. The time
 * from the end of the request head to the end of the response is the
 * latency the limit learns from; a 503 from the handler counts as a
 * dropped request, a client that went away as no sample. The gauges
 * `msvc_http_server_concurrency_limit` and `msvc_http_server_inflight`
 * follow the limit.
 *
 * Like the rate limit, one middleware may be installed on several servers
 * (worker loops), which then share the limit.
 *
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the middleware.
 * @return #MSVC_OK; MSVC_EINVAL (unfilled or bad options);
 *         MSVC_EMETRIC_MISMATCH, MSVC_EMETRIC_NAME; MSVC_ENOMEM.
 * @note Free with msvc_mw_concurrency_free() once its servers are closed.
 *       Thread-safe.
 * @since 0.2
 */
MSVC_API int msvc_mw_concurrency_new(const msvc_mw_concurrency_opts_t *opts,
                                     msvc_mw_concurrency_t **out);

/**
 * @brief The middleware to install.
 * @param m  The concurrency limit.
 * @return The description, borrowed until msvc_mw_concurrency_free(); NULL
 *         for NULL.
 * @since 0.2
 */
MSVC_API const msvc_http_middleware_t *msvc_mw_concurrency_middleware(const msvc_mw_concurrency_t *m);

/**
 * @brief The limit behind the middleware (current limit, in flight).
 * @param m  The concurrency limit.
 * @return The limit, borrowed until msvc_mw_concurrency_free(); NULL for
 *         NULL.
 * @since 0.2
 */
MSVC_API msvc_limit_adaptive_t *msvc_mw_concurrency_limit(const msvc_mw_concurrency_t *m);

/**
 * @brief Free a concurrency limit middleware.
 * @param m  The middleware, or NULL (a no-op). Its servers must be closed.
 * @since 0.2
 */
MSVC_API void msvc_mw_concurrency_free(msvc_mw_concurrency_t *m);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_MIDDLEWARE_H */
