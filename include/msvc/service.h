/**
 * @file msvc/service.h
 * @brief The service object: one HTTP service with configuration from the
 *        environment, the built-in endpoints, registration, resilient calls
 *        to other services by name, and graceful shutdown.
 *
 * A service wires the other blocks together the way a production service
 * needs them:
 *
 * - configuration from the `MSVC_*` environment (explicit options win);
 * - an HTTP server with the default middleware chain: request id, W3C trace
 *   context, access log, metrics, and JWT authentication on the routes
 *   registered with #MSVC_HTTP_ROUTE_AUTH;
 * - the built-in routes `GET /health`, `GET /ready` and `GET /metrics`;
 * - registration in the registry once it listens, deregistration first
 *   when it stops;
 * - msvc_service_call(): discovery, per-endpoint circuit breakers, the
 *   balancer, a pooled client, retries within a budget, and metrics, behind
 *   one call by service name; msvc_service_fanout_new() and
 *   msvc_service_proxy() built on it.
 *
 * The smallest complete service:
 *
 * @code
 * static void hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
 *   (void)req; (void)data;
 *   msvc_http_res_send(res, 200, "text/plain", "Hello, World!", 13);
 * }
 *
 * int main(void) {
 *   msvc_service_t *svc;
 *   char err[256];
 *
 *   if (msvc_service_new(uv_default_loop(), "hello", NULL, &svc, err, sizeof(err)) != 0) {
 *     fprintf(stderr, "%s\n", err);
 *     return 2;
 *   }
 *   msvc_service_route(svc, "GET", "/hello", hello, NULL, 0);
 *   return msvc_service_run(svc) == 0 ? 0 : 1;
 * }
 * @endcode
 *
 * Threads: a service belongs to the thread that runs its loop. Every
 * function here must be called from that thread, except msvc_service_call()
 * and the fan-out and proxy helpers, which may also be called from the
 * handlers of worker loops (`MSVC_WORKERS` > 1) on their own threads.
 */
#ifndef MSVC_SERVICE_H
#define MSVC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/breaker.h>
#include <msvc/cache.h>
#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/lb.h>
#include <msvc/limit.h>
#include <msvc/metrics.h>
#include <msvc/registry.h>
#include <msvc/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A service (opaque). */
typedef struct msvc_service_s msvc_service_t;

/** @brief Where a service is in its life. */
typedef enum msvc_service_state_e {
  MSVC_SERVICE_NEW = 0,      /**< Created; routes may be added. */
  MSVC_SERVICE_STARTING = 1, /**< Listening; registration in progress. */
  MSVC_SERVICE_READY = 2,    /**< Listening and registered: `/ready` is 200. */
  MSVC_SERVICE_STOPPING = 3, /**< Deregistering and draining. */
  MSVC_SERVICE_STOPPED = 4   /**< Everything closed; free it. */
} msvc_service_state_t;

/**
 * @brief Told when the service becomes ready, or fails to start.
 * @param svc     The service.
 * @param status  #MSVC_OK when ready, else why start-up failed (the service
 *                then stops by itself and its stop callback follows).
 * @param data    The pointer given in the options.
 */
typedef void (*msvc_service_ready_cb)(msvc_service_t *svc, int status, void *data);

/**
 * @brief Told when a stop has finished: deregistered, drained, every handle
 *        of the service closed.
 * @param svc   The service; free it here or later with msvc_service_free().
 * @param data  The pointer given to msvc_service_stop() or in the options.
 */
typedef void (*msvc_service_stopped_cb)(msvc_service_t *svc, void *data);

/**
 * @brief A readiness check, run on every `GET /ready`.
 * @param svc     The service.
 * @param detail  Receives a short reason when not ready (a static or
 *                service-owned string), may be left alone.
 * @param data    The pointer given to msvc_service_add_check().
 * @return true when this part of the service is ready.
 */
typedef bool (*msvc_service_check_fn)(msvc_service_t *svc, const char **detail,
                                      void *data);

/**
 * @brief Options of a service; fill with msvc_service_opts_init().
 *
 * Every setting has three layers, first one set wins: the field here,
 * then the environment variable named beside it (the twelve-factor layer,
 * see docs/service.md), then the default. A field left at its "unset"
 * value falls through to the environment. Strings are copied (or the files
 * they name read) by msvc_service_new().
 *
 * Settings that only make sense together are taken together: when either
 * of tls_cert_file / tls_key_file is set, both come from the options (and
 * likewise tls_client_cert_file / tls_client_key_file, and the key source
 * jwt_jwks_url / jwt_jwks_file), so a certificate is never paired with a
 * key from another layer. The `MSVC_JWT_*` variables are read as one group
 * unless every JWT field is set: a variable that is set must then be valid
 * even where a field overrides it.
 *
 * The structure grows at its end; a program built against an older header
 * passes its smaller `size` and gets the defaults for the newer fields.
 */
typedef struct msvc_service_opts_s {
  size_t size; /**< sizeof(msvc_service_opts_t), set by msvc_service_opts_init(). */
  /** Listen address; NULL: `MSVC_HOST`, else "127.0.0.1". */
  const char *host;
  /** Listen port, 0 for any free one; -1 (unset): `MSVC_PORT`, else 0. */
  int port;
  /** "host:port" registered for peers; NULL: `MSVC_ADVERTISE`, else the
   *  listen address and the bound port. */
  const char *advertise;
  /** Registry URI; NULL: `MSVC_REGISTRY`, else msvc_registry_default_uri(). */
  const char *registry_uri;
  /** Lease / heartbeat TTL in ms; 0: `MSVC_REGISTRY_TTL_MS`, else 10000. */
  uint32_t registry_ttl_ms;
  /** Balancing policy of calls; -1 (unset): `MSVC_LB`, else round robin. */
  int lb_policy;
  /** Worker loops sharing the port; 0: `MSVC_WORKERS`, else 1. */
  unsigned workers;
  /** Version registered with the instance; NULL: the library's version. */
  const char *version;
  /** Metadata registered with the instance (copied); NULL for none. */
  const msvc_registry_meta_t *metadata;
  /** Number of metadata entries. */
  size_t nmetadata;
  /** Weight registered with the instance; 0: 100. */
  uint32_t weight;
  /** Longest drain at stop before open connections are cut (default 10000 ms). */
  uint32_t drain_timeout_ms;
  /** Stop on SIGTERM and SIGINT (a second SIGINT stops at once), reload
   *  the TLS files on SIGHUP, and ignore SIGPIPE unless the program set a
   *  handler of its own (a peer that closes while an answer is written
   *  must fail that write, not end the process); default true. Without
   *  it, the program must ignore SIGPIPE itself. */
  bool handle_signals;
  /** Log one line per request (msvc_mw_access_log_use()); default true. */
  bool access_log;
  /** Server limits and timeouts; NULL for msvc_http_server_opts_init()'s. Copied. */
  const msvc_http_server_opts_t *server;
  /** Metrics registry of the service (`/metrics`); NULL: the default registry.
   *  Borrowed: it must outlive the service. */
  msvc_metrics_registry_t *metrics;
  /** Breaker options for each endpoint called; NULL for the service
   *  defaults (count window of 20 calls, 10 minimum, 50% failures, 5 s
   *  first open period, 3 probes). Copied. */
  const msvc_breaker_opts_t *breaker;
  /** Retry policy of calls; NULL for the defaults (3 attempts, 10% budget).
   *  Copied. */
  const msvc_retry_opts_t *retry;
  /** Default total timeout of one call, retries included (default 10000 ms). */
  uint32_t call_timeout_ms;
  /** Called when ready (or when start-up failed); NULL for none. */
  msvc_service_ready_cb on_ready;
  /** Called when a stop started by a signal, a failed start or
   *  msvc_service_stop() with no callback has finished; NULL for none. */
  msvc_service_stopped_cb on_stopped;
  /** Passed to on_ready and on_stopped. */
  void *data;

  /* ---- @since 0.2: the settings that were only in the environment ---- */

  /** PEM certificate chain (leaf first) to listen with TLS; NULL:
   *  `MSVC_TLS_CERT`, else plain HTTP. Needs tls_key_file. */
  const char *tls_cert_file;
  /** PEM private key of tls_cert_file; NULL: `MSVC_TLS_KEY`. */
  const char *tls_key_file;
  /** PEM CA bundle: peers' certificates are checked against it (servers
   *  called, and clients when tls_client_auth asks for certificates);
   *  NULL: `MSVC_TLS_CA`, else the system bundle. */
  const char *tls_ca_file;
  /** Client certificates the server asks for, an msvc_tls_client_auth_t
   *  (`MSVC_TLS_AUTH_NONE`, `_OPTIONAL`, `_REQUIRE`); -1 (unset):
   *  `MSVC_TLS_CLIENT_AUTH`, else none. Anything but none needs a CA and a
   *  server certificate. */
  int tls_client_auth;
  /** PEM certificate presented on outgoing calls (mutual TLS); NULL:
   *  `MSVC_TLS_CLIENT_CERT`, else none. Needs tls_client_key_file. */
  const char *tls_client_cert_file;
  /** PEM private key of tls_client_cert_file; NULL: `MSVC_TLS_CLIENT_KEY`. */
  const char *tls_client_key_file;
  /** URL of the JWK Set that verifies tokens (`http://HOST[:PORT]/PATH`,
   *  HOST may be a service name, found through discovery; or
   *  `https://HOST[:PORT]/PATH`, fetched over TLS with the certificate
   *  checked against the CA bundle); NULL:
   *  `MSVC_JWT_JWKS_URL`. At most one of jwt_jwks_url and jwt_jwks_file. */
  const char *jwt_jwks_url;
  /** Path of a JWK Set file that verifies tokens (read here); NULL:
   *  `MSVC_JWT_JWKS_FILE`. */
  const char *jwt_jwks_file;
  /** The exact `iss` tokens must carry; NULL: `MSVC_JWT_ISSUER`, else no
   *  issuer check. */
  const char *jwt_issuer;
  /** An audience tokens' `aud` must contain; NULL: `MSVC_JWT_AUDIENCE`,
   *  else no audience check. */
  const char *jwt_audience;
  /** Clock skew allowed on `exp` and `nbf`, 0..86400 s; -1 (unset):
   *  `MSVC_JWT_LEEWAY_S`, else 30. */
  int32_t jwt_leeway_s;
  /** Log level, an msvc_log_level_t; -1 (unset): `MSVC_LOG_LEVEL`, else
   *  the logger's current level. The logger is process-wide. */
  int log_level;
  /** Log format, an msvc_log_format_t; -1 (unset): `MSVC_LOG_FORMAT`, else
   *  the logger's current format. */
  int log_format;
  /** Threads of each loop's worker pool, 1..256; 0: `MSVC_WORK_THREADS`,
   *  else 4 (see msvc_service_work()). */
  unsigned work_threads;
  /** Jobs each loop's worker pool lets wait, 1..1000000; 0:
   *  `MSVC_WORK_QUEUE`, else 256. */
  unsigned work_queue;
  /** Whether a token without `exp` is refused (`missing_exp`): 1 yes, 0 no;
   *  -1 (unset): `MSVC_JWT_REQUIRE_EXP`, else yes.
   *  @since 0.2 */
  int jwt_require_exp;
  /** Event backend URI (`memory://`, `nats://host:port`); NULL:
   *  `MSVC_EVENTS`, else no events (msvc_service_events() gives NULL).
   *  @since 0.2 */
  const char *events_uri;
  /** Address of the admin listener, `host:port` (port 0: any free one;
   *  see msvc/admin.h); NULL: `MSVC_ADMIN`, else no admin listener.
   *  @since 0.2 */
  const char *admin;
  /** Bearer token the admin listener asks for (16..256 printable
   *  characters); NULL: `MSVC_ADMIN_TOKEN`, else none. @since 0.2 */
  const char *admin_token;
} msvc_service_opts_t;

/**
 * @brief Fill options with their defaults ("unset" where the environment
 *        may decide).
 * @param opts  Options to fill; must not be NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_service_opts_init(msvc_service_opts_t *opts);

/**
 * @brief Create a service: read its configuration, create its server,
 *        middleware, built-in routes and registry. Nothing listens yet.
 *
 * `MSVC_SERVICE_NAME`, when set, overrides @p name (@p name is the
 * program's own default; the variable renames one deployment). Every other
 * setting comes from @p opts, else from its `MSVC_*` variable, else its
 * default (see msvc_service_opts_t). The JWT key source may name a service
 * instead of a host (`http://user-service/.well-known/jwks.json`), which
 * is then resolved through discovery (a service named by its own URL
 * registers before it has keys and becomes ready once they are in), or be
 * an `https://` URL, fetched directly with the certificate checked against
 * the CA bundle (tls_ca_file or `MSVC_TLS_CA`, else the system one). The
 * log level and format are applied
 * to the process-wide logger. A server certificate (tls_cert_file or
 * `MSVC_TLS_CERT`) makes every loop's server serve TLS (the instance then
 * registers the metadata `scheme=https`); calls to `scheme=https`
 * instances use TLS, with a client certificate when one is set; the
 * certificate and key files are read here.
 *
 * @param loop    The loop the service runs on; borrowed, must outlive it.
 * @param name    Service name (see #MSVC_REGISTRY_NAME_MAX for its syntax).
 * @param opts    Options, or NULL for the defaults.
 * @param out     Receives the service.
 * @param err     Receives, on failure, one line naming the variable or
 *                option and the accepted values (for the program to print
 *                before exiting with status 2); may be NULL.
 * @param errlen  Size of @p err.
 * @return #MSVC_OK; MSVC_ECONFIG for a bad environment variable or option
 *         (@p err says which); MSVC_EINVAL for NULL arguments or options not
 *         filled by msvc_service_opts_init(); MSVC_EURI for a bad registry
 *         URI; MSVC_ENOMEM. Nothing is left behind on failure.
 * @note Ownership: the caller frees the service with msvc_service_free()
 *       once it is stopped (or was never started).
 * @since 0.1
 */
MSVC_API int msvc_service_new(uv_loop_t *loop, const char *name,
                              const msvc_service_opts_t *opts, msvc_service_t **out,
                              char *err, size_t errlen);

/**
 * @brief Add a route, on every worker loop.
 * @param svc      The service, not yet started.
 * @param method   Method, e.g. "GET"; copied.
 * @param pattern  Pattern as msvc_http_server_route(); copied.
 * @param handler  The handler; runs on the loop (worker) that received the
 *                 request.
 * @param data     Passed to the handler; shared by every worker.
 * @param flags    #MSVC_HTTP_ROUTE_AUTH to require a valid bearer token
 *                 (JWT must then be configured), or 0.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_EHTTP_ROUTE for a bad or conflicting
 *         pattern (the built-in routes included); MSVC_ESTATE once started;
 *         MSVC_ECONFIG when #MSVC_HTTP_ROUTE_AUTH is asked and no JWT key
 *         source is configured; MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_service_route(msvc_service_t *svc, const char *method,
                                const char *pattern, msvc_http_handler_fn handler,
                                void *data, uint32_t flags);

/**
 * @brief Add a middleware after the default ones (so it sees the request
 *        id, the trace context and the verified claims).
 * @param svc  The service, not yet started.
 * @param mw   The middleware; copied (its data is borrowed and must
 *             outlive the service, and be safe to use from every worker).
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ESTATE once started; MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_service_use(msvc_service_t *svc, const msvc_http_middleware_t *mw);

/**
 * @brief Add a readiness check reported by `GET /ready` under @p name.
 * @param svc    The service.
 * @param name   Key in the `checks` object; copied.
 * @param fn     The check; runs on the loop thread that serves `/ready`.
 * @param data   Passed to @p fn.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ESTATE once started; MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_service_add_check(msvc_service_t *svc, const char *name,
                                    msvc_service_check_fn fn, void *data);

/**
 * @brief Start: listen, then register; ready once the registration is
 *        visible (the on_ready option is then called).
 * @param svc  The service.
 * @return #MSVC_OK when listening (registration goes on in the
 *         background); MSVC_ESTATE when already started; a libuv code such
 *         as MSVC_EADDRINUSE when the address cannot be bound (the service
 *         stays NEW and may be freed).
 * @since 0.1
 */
MSVC_API int msvc_service_start(msvc_service_t *svc);

/**
 * @brief Stop gracefully: deregister (peers stop sending), make `/ready`
 *        answer 503, drain the server (in-flight requests finish; new ones
 *        get 503 `SHUTTING_DOWN` with `Connection: close`) up to the drain
 *        timeout, then close watches, pools, timers and signal handlers.
 * @param svc   The service.
 * @param cb    Called when everything is closed; NULL uses the on_stopped
 *              option.
 * @param data  Passed to @p cb.
 * @return #MSVC_OK; MSVC_ESTATE when not started or already stopping (the
 *         callback of the first stop still runs).
 * @note After the callback the loop has no handle of the service left.
 * @since 0.1
 */
MSVC_API int msvc_service_stop(msvc_service_t *svc, msvc_service_stopped_cb cb,
                               void *data);

/**
 * @brief Start, run the loop until the service has stopped (by a signal or
 *        msvc_service_stop()), and free the service.
 * @param svc  The service; freed on return, whatever the result.
 * @return #MSVC_OK after a clean stop; the start error otherwise.
 * @since 0.1
 */
MSVC_API int msvc_service_run(msvc_service_t *svc);

/**
 * @brief Free a service that is stopped or was never started.
 * @param svc  The service, or NULL (a no-op).
 * @note A service never started releases its handles from the loop: run
 *       the loop (until uv_run() returns 0) before uv_loop_close(). A
 *       service still running is stopped first and freed when its stop has
 *       finished.
 * @since 0.1
 */
MSVC_API void msvc_service_free(msvc_service_t *svc);

/**
 * @brief The service's tracer, for spans around your own work (msvc/trace.h).
 * @param svc  The service.
 * @return The tracer, or NULL when tracing is off (no `MSVC_OTLP_ENDPOINT`
 *         or `OTEL_EXPORTER_OTLP_*` endpoint, and no admin listener, whose
 *         traces page records spans locally); the span functions accept
 *         that NULL and then record nothing. Owned by the service; valid
 *         until msvc_service_free(). Thread-safe.
 * @since 0.2
 */
MSVC_API msvc_tracer_t *msvc_service_tracer(const msvc_service_t *svc);

/** @brief The service's name. @param svc The service. @return Owned by the service. @since 0.1 */
MSVC_API const char *msvc_service_name(const msvc_service_t *svc);
/** @brief The bound port, or a negative code before start. @param svc The service. @return The port. @since 0.1 */
MSVC_API int msvc_service_port(const msvc_service_t *svc);
/** @brief The current state. @param svc The service. @return The state. @since 0.1 */
MSVC_API msvc_service_state_t msvc_service_state(const msvc_service_t *svc);
/** @brief The id the instance registered under (NULL before start). @param svc The service. @return Owned by the service. @since 0.1 */
MSVC_API const char *msvc_service_instance_id(const msvc_service_t *svc);
/** @brief The loop the service runs on. @param svc The service. @return Borrowed. @since 0.1 */
MSVC_API uv_loop_t *msvc_service_loop(const msvc_service_t *svc);
/** @brief The registry (for watches of one's own). @param svc The service. @return Owned by the service. @since 0.1 */
MSVC_API msvc_registry_t *msvc_service_registry(const msvc_service_t *svc);
/**
 * @brief The worker pool of the loop that serves a request.
 *
 * Every loop of a service (the main loop, or each worker loop with
 * `MSVC_WORKERS` > 1) has a pool of its own, sized by `MSVC_WORK_THREADS`
 * (default 4) and bounded by `MSVC_WORK_QUEUE` (default 256 queued jobs).
 * Its threads start with the first job. When the service drains, jobs not
 * yet started are cancelled (a request's answer is then 503
 * `SHUTTING_DOWN`) and running jobs finish within the drain timeout.
 *
 * @param svc  The service.
 * @param req  A request being served by the service, or NULL for the main
 *             loop's pool.
 * @return The pool (owned by the service; valid until the service stops),
 *         or NULL for NULL svc or a request of another server.
 * @note Call from the loop thread serving req.
 * @since 0.2
 */
MSVC_API struct msvc_work_s *msvc_service_work(msvc_service_t *svc,
                                               const msvc_http_req_t *req);

/**
 * @brief The service's events handle (see msvc/events.h).
 *
 * Made by msvc_service_new() from the option `events_uri` or `MSVC_EVENTS`
 * (unset: no events), with the service's name as CloudEvents `source`
 * (`/<name>`) and its metrics registry. It connects in the background; the
 * readiness check `events` reports the broker's state and fails only when
 * the broker has been unreachable longer than a grace period (15 s), so a
 * broker restart does not take the service out of rotation. The handle is
 * closed when the service stops, after the HTTP drain.
 *
 * @param svc  The service.
 * @return The handle (owned by the service; valid until it stops), or NULL
 *         when events are off or svc is NULL.
 * @note Call from the main loop's thread.
 * @since 0.2
 */
MSVC_API struct msvc_events_s *msvc_service_events(const msvc_service_t *svc);

/** @brief The metrics registry `/metrics` exposes. @param svc The service. @return Borrowed. @since 0.1 */
MSVC_API msvc_metrics_registry_t *msvc_service_metrics(const msvc_service_t *svc);

/**
 * @brief The service's concurrency limit (see msvc_mw_concurrency_new()).
 *
 * Every service sheds what exceeds an adaptive concurrency limit with 503
 * `OVERLOADED`, `/health`, `/ready` and `/metrics` excepted. The
 * defaults are conservative; `MSVC_CONCURRENCY` (`adaptive`, `off` or a
 * fixed limit), `MSVC_CONCURRENCY_MIN`, `MSVC_CONCURRENCY_MAX` and
 * `MSVC_CONCURRENCY_TOLERANCE` tune it (docs/limits.md).
 *
 * @param svc  The service.
 * @return The limit, shared by every worker loop and owned by the service
 *         (valid until msvc_service_free()); NULL with `MSVC_CONCURRENCY=off`.
 * @note Thread-safe reads (msvc_limit_adaptive_limit()).
 * @since 0.2
 */
MSVC_API msvc_limit_adaptive_t *msvc_service_concurrency(const msvc_service_t *svc);

/**
 * @brief Make a rate limit cluster-wide: this instance enforces its share,
 *        the limit divided by the live instances of the service that
 *        discovery reports (msvc_limit_rate_set_share()).
 *
 * The service watches its own name in the registry and updates the share
 * on every change. While instances come and go each one may use an old
 * count for as long as discovery takes to tell it (docs/limits.md gives
 * the bound).
 *
 * @param svc  The service, not yet started.
 * @param rl   The limiter (e.g. msvc_mw_ratelimit_limiter()); borrowed: it
 *             must outlive the service.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ESTATE once started; a registry
 *         error (msvc_registry_watch()).
 * @note Main loop thread only.
 * @since 0.2
 */
MSVC_API int msvc_service_ratelimit_cluster(msvc_service_t *svc, msvc_limit_rate_t *rl);

/* ---- calls to other services -------------------------------------------- */

/** @brief One call in flight (opaque). */
typedef struct msvc_service_call_s msvc_service_call_t;

/**
 * @brief Completion of a call.
 * @param err   #MSVC_OK when a response arrived (any status: a 5xx that
 *              survived retries is given as it is); MSVC_ENO_ENDPOINTS when
 *              the service has no instance; MSVC_EBREAKER_OPEN when every
 *              instance's breaker is open; MSVC_ETIMEDOUT when the call's
 *              timeout ran out; MSVC_ECONNREFUSED, MSVC_ECONNRESET or
 *              another client error of the last attempt; MSVC_ECANCELED
 *              when cancelled (by msvc_service_call_cancel(), the incoming
 *              request going away, or the service stopping).
 * @param res   The response when err is #MSVC_OK, else NULL; borrowed for
 *              the callback.
 * @param data  The request's data.
 */
typedef void (*msvc_service_response_fn)(int err, const msvc_http_response_t *res,
                                         void *data);

/** @brief A call by service name; fill with msvc_service_request_init().
 *         Everything is copied. */
typedef struct msvc_service_request_s {
  const char *method;  /**< Default "GET". */
  const char *target;  /**< "/path?query"; default "/". */
  const msvc_http_header_t *headers; /**< Extra headers, or NULL. */
  size_t nheaders;     /**< Their number. */
  const void *body;    /**< Body bytes, or NULL. */
  size_t body_len;     /**< Body length. */
  /** The incoming request being served, or NULL. Its `X-Request-Id` and a
   *  child of its trace context (`traceparent`, `tracestate`) go on the
   *  call, and the call is cancelled if that request's client goes away. */
  msvc_http_req_t *parent;
  /** Copy the parent's `Authorization` header onto the call; default false. */
  bool forward_auth;
  /** Total timeout, retries included; 0 for the service's default. */
  uint32_t timeout_ms;
  /** Safe to send twice even if the method is not idempotent. A request
   *  with an `Idempotency-Key` header is treated as if this were set. */
  bool retryable;
  /** Completion; required. Never called from inside msvc_service_call(). */
  msvc_service_response_fn on_done;
  /** Passed to on_done. */
  void *data;
  /** Send each attempt over HTTP/2 (msvc_http_request_t::http2): the
   *  balancer still picks an endpoint per attempt, and the attempt is a
   *  stream on that endpoint's multiplexed connection; default false.
   *  @since 0.3 */
  bool http2;
  /** Receive the body piece by piece as it arrives, or NULL (whole body in
   *  on_done's response). Once a piece has arrived the call is not retried.
   *  @since 0.3 */
  msvc_http_chunk_fn on_chunk;
} msvc_service_request_t;

/**
 * @brief Fill a call request with its defaults.
 * @param req  Request to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_service_request_init(msvc_service_request_t *req);

/**
 * @brief Call another service by name.
 *
 * The first call to a service starts a watch on it, kept until the service
 * stops. Each attempt: the endpoints of the current set whose breakers are
 * not open (the balancer's exclusion, within its budget) → balancer pick →
 * pooled connection. Refused, reset, timed out and 5xx attempts are
 * failures of the endpoint (breaker, balancer, metrics); 4xx answers and
 * cancellations are not. A failed attempt is retried on another endpoint
 * where possible, with backoff, within the retry budget, when the request
 * never left (connection refused, connect timeout, a pooled connection
 * found closed before the write: any method), or when it may run twice
 * (an idempotent method, `retryable`, or an `Idempotency-Key` header).
 * Counted in `msvc_http_client_requests_total` (one per call, final
 * outcome), `msvc_http_client_attempts_total` (one per attempt),
 * `msvc_http_client_request_duration_seconds`,
 * `msvc_http_client_retries_total`, `msvc_breaker_*` and `msvc_lb_*`.
 *
 * @param svc      The service (started).
 * @param service  Name of the service to call; copied.
 * @param req      The request.
 * @param out      Receives the call handle (valid until on_done returns), or
 *                 NULL.
 * @return #MSVC_OK (on_done will be called exactly once); MSVC_EINVAL for
 *         bad arguments (on_done is then not called); MSVC_ESTATE when the
 *         service is stopped; MSVC_ENOMEM.
 * @note Loop thread, or a worker loop's thread from its handlers.
 * @since 0.1
 */
MSVC_API int msvc_service_call(msvc_service_t *svc, const char *service,
                               const msvc_service_request_t *req,
                               msvc_service_call_t **out);

/**
 * @brief Cancel a call; its on_done runs with MSVC_ECANCELED (later, never
 *        from inside this function).
 * @param call  The call; NULL is ignored.
 * @since 0.1
 */
MSVC_API void msvc_service_call_cancel(msvc_service_call_t *call);

/**
 * @brief Answer an incoming request with the error of a failed call, in
 *        the JSON error body every libmsvc server uses: 504
 *        `UPSTREAM_TIMEOUT` for MSVC_ETIMEDOUT, else 503
 *        `UPSTREAM_UNAVAILABLE` with `Retry-After`, the message naming
 *        @p service.
 * @param res      The response to send.
 * @param service  The service that could not be reached.
 * @param err      The call's error code.
 * @return What msvc_http_res_error() returns.
 * @since 0.1
 */
MSVC_API int msvc_service_res_upstream_error(msvc_http_res_t *res, const char *service,
                                             int err);

/**
 * @brief Whether a call outcome is a failure of the dependency (refused,
 *        reset, timed out, no endpoints, breaker open, 5xx) rather than of
 *        the caller (4xx, cancellation, own overload).
 * @param err     The call's error code.
 * @param status  The response status when err is #MSVC_OK.
 * @return true for a dependency failure.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API bool msvc_service_dependency_failed(int err, int status);

/* ---- fan-out ------------------------------------------------------------ */

/** @brief Several calls run at once, completed together (opaque). */
typedef struct msvc_service_fanout_s msvc_service_fanout_t;

/** @brief The outcome of one call of a fan-out. */
typedef struct msvc_service_result_s {
  const char *service;      /**< Service called. */
  int err;                  /**< As msvc_service_response_fn; MSVC_ETIMEDOUT
                                 when the overall deadline cut it. */
  int status;               /**< Response status when err is #MSVC_OK. */
  const char *content_type; /**< Response Content-Type, or NULL. */
  const char *body;         /**< Response body (NUL-terminated), or NULL. */
  size_t body_len;          /**< Body length. */
} msvc_service_result_t;

/**
 * @brief Told once when every call of a fan-out has finished or the
 *        deadline has passed.
 * @param results  One per call, in the order added; valid during the call.
 * @param n        Their number.
 * @param data     The pointer given to msvc_service_fanout_new().
 */
typedef void (*msvc_service_fanout_fn)(const msvc_service_result_t *results,
                                       size_t n, void *data);

/**
 * @brief Begin a fan-out.
 * @param svc          The service.
 * @param deadline_ms  Overall deadline; calls still running then are
 *                     cancelled and reported as MSVC_ETIMEDOUT.
 * @param done         The completion; required.
 * @param data         Passed to @p done.
 * @param out          Receives the fan-out.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ENOMEM.
 * @note The fan-out frees itself after @p done returns.
 * @since 0.1
 */
MSVC_API int msvc_service_fanout_new(msvc_service_t *svc, uint32_t deadline_ms,
                                     msvc_service_fanout_fn done, void *data,
                                     msvc_service_fanout_t **out);

/**
 * @brief Add one call to a fan-out not yet started.
 * @param fo       The fan-out.
 * @param service  Service to call; copied.
 * @param req      The request (its on_done and data are ignored); copied.
 * @return The call's index in the results (0, 1, ...), or a negative code
 *         (MSVC_EINVAL, MSVC_ESTATE after start, MSVC_ENOMEM).
 * @since 0.1
 */
MSVC_API int msvc_service_fanout_add(msvc_service_fanout_t *fo, const char *service,
                                     const msvc_service_request_t *req);

/**
 * @brief Start every call of the fan-out.
 * @param fo  The fan-out; @p done always follows, even for no calls.
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ESTATE when already started (or
 *         called from a thread whose loop the service does not run);
 *         MSVC_ENOMEM (the fan-out is then not started and may be freed).
 * @since 0.1
 */
MSVC_API int msvc_service_fanout_start(msvc_service_fanout_t *fo);

/**
 * @brief Abandon a fan-out that was not started and free it.
 * @param fo  The fan-out, or NULL.
 * @since 0.1
 */
MSVC_API void msvc_service_fanout_free(msvc_service_fanout_t *fo);

/* ---- reverse proxy ------------------------------------------------------ */

/** @brief How msvc_service_proxy() forwards; fill with msvc_service_proxy_opts_init(). */
typedef struct msvc_service_proxy_opts_s {
  size_t size;              /**< sizeof(msvc_service_proxy_opts_t). */
  const char *service;      /**< Service to forward to; required. */
  const char *strip_prefix; /**< Removed from the start of the path
                                 (e.g. "/api"), or NULL. */
  const char *add_prefix;   /**< Put in front of the (stripped) path, or NULL. */
  bool forward_auth;        /**< Forward `Authorization`; default true. */
  uint32_t timeout_ms;      /**< 0 for the service's default call timeout. */
  /** Response cache for GET requests (see msvc_service_get_cached()), or
   *  NULL (the default) for none. Borrowed: must outlive the service.
   *  Answers then carry `X-Cache` and `Age`, stale ones a `Warning`; a
   *  successful unsafe request (POST, PUT, ...) drops the entries of its
   *  URI.
   *  @since 0.3 */
  msvc_cache_t *cache;
} msvc_service_proxy_opts_t;

/**
 * @brief Fill proxy options with their defaults.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_service_proxy_opts_init(msvc_service_proxy_opts_t *opts);

/**
 * @brief Forward an incoming request to a service by name and send its
 *        answer back, streaming the response body.
 *
 * Method, the rewritten path with the query, the end-to-end headers and the
 * body go to the upstream through msvc_service_call() (so discovery, the
 * breakers, the balancer and retries apply), with `X-Request-Id`,
 * `traceparent` and `X-Forwarded-For` added. Hop-by-hop headers are not
 * forwarded either way. A failed call is answered with
 * msvc_service_res_upstream_error().
 *
 * @param svc   The service.
 * @param req   The incoming request (from a handler).
 * @param opts  How to forward; copied.
 * @return #MSVC_OK (the response will be finished); MSVC_EINVAL (nothing
 *         was sent: answer it yourself).
 * @since 0.1
 */
MSVC_API int msvc_service_proxy(msvc_service_t *svc, msvc_http_req_t *req,
                                const msvc_service_proxy_opts_t *opts);

/* ---- cached GET ------------------------------------------------------------ */

/** @brief The answer of msvc_service_get_cached(). Everything is borrowed
 *         for the callback. */
typedef struct msvc_service_cached_s {
  /** #MSVC_OK when there is an answer (from the upstream or the cache),
   *  else the call's error (as msvc_service_response_fn). */
  int err;
  int status;               /**< The answer's status. */
  const char *content_type; /**< Its Content-Type, or NULL. */
  const char *body;         /**< Its body (NUL-terminated), or NULL. */
  size_t body_len;          /**< Body length. */
  msvc_cache_result_t result; /**< How it was answered. */
  uint64_t age_s;           /**< Age of a cached answer, 0 for a new one. */
  /** The entry that answered (hit, stale, revalidated, or a miss that was
   *  stored); NULL when the upstream's answer was not stored. */
  const msvc_cache_entry_t *entry;
  /** The upstream's response when entry is NULL and one arrived, else NULL. */
  const msvc_http_response_t *res;
} msvc_service_cached_t;

/**
 * @brief Told once with the answer of msvc_service_get_cached().
 * @param r     The answer; valid during the call.
 * @param data  The pointer given to msvc_service_get_cached().
 */
typedef void (*msvc_service_cached_fn)(const msvc_service_cached_t *r, void *data);

/**
 * @brief A GET to another service through a response cache.
 *
 * The key is the service name and the target; the identity is the call's
 * `Authorization` (from @p req's headers, or the parent's when
 * forward_auth is set). A fresh entry answers without a call; an expired
 * one is revalidated with `If-None-Match` when it has an `ETag`; an
 * answer is offered to the cache (msvc_cache_store()). When the call fails
 * (an error, or a 5xx) and an entry may still serve within its
 * `stale-if-error`, that entry answers with #MSVC_CACHE_STALE. A request
 * `Cache-Control: no-store` goes around the cache, `no-cache` revalidates.
 * Each answer is counted with msvc_cache_note().
 *
 * @param svc      The service (started).
 * @param cache    The cache; borrowed.
 * @param service  Service to call; copied.
 * @param req      The request; its method must be GET (or NULL); its
 *                 on_done, data and on_chunk are ignored. Copied.
 * @param done     The completion; required. Never called from inside this
 *                 function.
 * @param data     Passed to @p done.
 * @return #MSVC_OK (@p done will be called once); MSVC_EINVAL (bad
 *         arguments, another method); MSVC_ESTATE; MSVC_ENOMEM.
 * @note Loop thread, or a worker loop's thread from its handlers.
 * @since 0.3
 */
MSVC_API int msvc_service_get_cached(msvc_service_t *svc, msvc_cache_t *cache,
                                     const char *service, const msvc_service_request_t *req,
                                     msvc_service_cached_fn done, void *data);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_SERVICE_H */
