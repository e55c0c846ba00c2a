/**
 * @file http_client.h
 * @brief Asynchronous HTTP/1.1 client: keep-alive pool per endpoint,
 *        per-request timeouts, cancellation, streamed responses, and a
 *        standalone retry policy with a retry budget.
 *
 * Everything runs on a loop the caller owns. A client and its calls are
 * bound to that loop's thread and are not thread-safe; the retry policy is a
 * pure object and is thread-safe. Callbacks never run inside the call that
 * started the work: they always come from the loop.
 */
#ifndef MSVC_HTTP_CLIENT_H
#define MSVC_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A retry policy with its retry budget (see msvc_retry_new()). */
typedef struct msvc_retry_s msvc_retry_t;

/** @brief Retry on a failed connection attempt (refused, DNS, connect error). */
#define MSVC_RETRY_ON_CONNECT 0x01u
/** @brief Retry on a timeout (connect, first byte). */
#define MSVC_RETRY_ON_TIMEOUT 0x02u
/** @brief Retry when an established connection was reset or closed early. */
#define MSVC_RETRY_ON_RESET 0x04u
/** @brief Retry on a 502 Bad Gateway response. */
#define MSVC_RETRY_ON_502 0x08u
/** @brief Retry on a 503 Service Unavailable response. */
#define MSVC_RETRY_ON_503 0x10u
/** @brief Retry on a 504 Gateway Timeout response. */
#define MSVC_RETRY_ON_504 0x20u
/** @brief Retry on a 429 Too Many Requests response (a rate limit of the
 *         server, often per instance: another may accept). @since 0.2 */
#define MSVC_RETRY_ON_429 0x40u
/** @brief The default set: every condition above. */
#define MSVC_RETRY_ON_DEFAULT 0x7fu

/** @brief Retry policy options; fill with msvc_retry_opts_init(). */
typedef struct msvc_retry_opts_s {
  /** sizeof(msvc_retry_opts_t), set by msvc_retry_opts_init(). */
  size_t size;
  /** Attempts in all, the first included (default 3; 1 disables retries). */
  uint32_t max_attempts;
  /** Backoff base in milliseconds (default 25). */
  uint32_t base_ms;
  /** Backoff cap in milliseconds, also the cap for Retry-After (default 1000). */
  uint32_t cap_ms;
  /** Conditions that may be retried, MSVC_RETRY_ON_* bits (default all). */
  uint32_t retry_on;
  /** Retries may reach this fraction of the requests in the window (default 0.2). */
  double budget_ratio;
  /** Retries always allowed per second of the window (default 10). */
  uint32_t budget_min_per_s;
  /** Length of the budget's sliding window in milliseconds (default 10000). */
  uint32_t budget_window_ms;
  /** Monotonic clock in milliseconds; NULL uses msvc_now_ms(). */
  msvc_clock_fn clock;
  /** Passed to clock. */
  void *clock_data;
  /** Random source for the jitter; NULL uses the library's generator. */
  uint64_t (*rand)(void *data);
  /** Passed to rand. */
  void *rand_data;
} msvc_retry_opts_t;

/** @brief The outcome of one attempt, as given to msvc_retry_check(). */
typedef struct msvc_retry_attempt_s {
  /** Attempts made so far, this one included (1 after the first). */
  uint32_t attempt;
  /** The request method ("GET"); idempotent methods may be retried. */
  const char *method;
  /** The caller marked the request safe to repeat whatever its method
   *  (an `Idempotency-Key` header counts as such a mark). */
  bool retryable;
  /** 0 when a response arrived, else the error (MSVC_ETIMEDOUT, ...). */
  int err;
  /** The response status when err is 0. */
  int status;
  /** The response's Retry-After value (delay-seconds form), or NULL. */
  const char *retry_after;
  /** No byte of the request went out in this attempt (connection refused,
   *  connect timeout, a pooled connection found closed before the write):
   *  the server cannot have acted on it, so it may be sent again whatever
   *  its method. Leave false when unsure. @since 0.2 */
  bool not_sent;
} msvc_retry_attempt_t;

/**
 * @brief Fills opts with the defaults documented on each field.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_retry_opts_init(msvc_retry_opts_t *opts);

/**
 * @brief Creates a retry policy.
 * @param opts  Options, copied; NULL for the defaults.
 * @param out   Receives the policy; free it with msvc_retry_free().
 * @return #MSVC_OK, MSVC_EINVAL for out NULL, max_attempts 0, cap_ms below
 *         base_ms, a negative budget ratio or a window under 10 ms, or
 *         MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_retry_new(const msvc_retry_opts_t *opts, msvc_retry_t **out);

/**
 * @brief Frees a policy; NULL is a no-op.
 * @param r  The policy; no client or caller may still use it.
 * @since 0.1
 */
MSVC_API void msvc_retry_free(msvc_retry_t *r);

/**
 * @brief Counts one new request (a first attempt) into the retry budget.
 *
 * The budget allows retries up to budget_ratio of the requests counted in
 * the window, plus budget_min_per_s per second of it. Call this once per
 * logical request, not per attempt.
 * @param r  The policy. Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_retry_note_request(msvc_retry_t *r);

/**
 * @brief Decides whether an attempt's outcome is retried, and after how long.
 *
 * A retry needs: attempts left, a request that may run twice (an
 * idempotent method: GET, HEAD, OPTIONS, TRACE, PUT, DELETE; or one marked
 * retryable) or that never left (not_sent), an outcome named in retry_on,
 * and room in the budget. The delay is "full jitter": a uniform draw in
 * [0, min(cap, base * 2^(attempt-1))]; a Retry-After larger than that draw
 * is honoured, and a Retry-After beyond cap_ms ends the retries (since
 * 0.2; before, the wait was cut to cap_ms): a server that asks for more
 * time than the policy allows is not asked again sooner. A granted retry is counted against the budget,
 * except the retry of a request that never left: it put no load on any
 * server, so the attempt limit alone bounds it. The policy never sleeps:
 * the caller waits the delay and may send the retry to another endpoint.
 * @param r         The policy. Thread-safe.
 * @param a         The attempt's outcome; borrowed for the call.
 * @param delay_ms  Receives the delay before the retry when 1 is returned.
 * @return 1 to retry, 0 when the outcome is final (success, not retryable,
 *         or attempts exhausted), MSVC_ERETRY_BUDGET when a retry would be
 *         allowed but the budget is spent, MSVC_EINVAL for a NULL argument.
 * @since 0.1
 */
MSVC_API int msvc_retry_check(msvc_retry_t *r, const msvc_retry_attempt_t *a,
                              uint32_t *delay_ms);

/**
 * @brief Whether a method is idempotent in the sense of RFC 9110 9.2.2.
 * @param method  Method name, case-sensitive ("GET").
 * @return true for GET, HEAD, OPTIONS, TRACE, PUT and DELETE.
 * @since 0.1
 */
MSVC_API bool msvc_http_method_idempotent(const char *method);

/** @brief A client: a pool of keep-alive connections per endpoint. */
typedef struct msvc_http_client_s msvc_http_client_t;
/** @brief One request in flight; valid until its completion callback ends. */
typedef struct msvc_http_call_s msvc_http_call_t;
/** @brief A received response; valid only during the callback that gives it. */
typedef struct msvc_http_response_s msvc_http_response_t;

/** @brief What the attempt hook is told after each attempt. */
typedef struct msvc_http_attempt_s {
  /** "host:port" the attempt went to. */
  const char *endpoint;
  /** 0 when a response arrived, else the attempt's error code. */
  int err;
  /** Response status when err is 0, else 0. */
  int status;
  /** Attempt number of this request, from 1. */
  uint32_t attempt;
  /** Time from the attempt's start to its outcome, microseconds. */
  uint64_t duration_us;
  /** The attempt used a pooled connection. */
  bool reused;
  /** The request's user data (msvc_http_request_t::data). */
  void *request_data;
} msvc_http_attempt_t;

/**
 * @brief Observer of attempts (for balancers, breakers and metrics).
 * @param data  The pointer given in the client options.
 * @param a     Valid only during the call.
 */
typedef void (*msvc_http_attempt_fn)(void *data, const msvc_http_attempt_t *a);

/** @brief Client options; fill with msvc_http_client_opts_init(). */
typedef struct msvc_http_client_opts_s {
  /** sizeof(msvc_http_client_opts_t), set by msvc_http_client_opts_init(). */
  size_t size;
  /** Connections per endpoint, idle and busy (default 64). */
  uint32_t max_conns_per_endpoint;
  /** Idle connections kept per endpoint (default 32). */
  uint32_t max_idle_per_endpoint;
  /** An idle connection is closed after this long (default 30000 ms). */
  uint32_t idle_timeout_ms;
  /** Requests waiting per endpoint when all connections are busy (default 1024). */
  uint32_t max_queued_per_endpoint;
  /** Largest status line + headers of a response (default 16384 bytes). */
  uint32_t max_response_head;
  /** Largest number of header fields in a response (default 100). */
  uint32_t max_response_headers;
  /** Largest buffered response body (default 8 MiB); streamed bodies are not capped. */
  uint64_t max_response_body;
  /** Called after every attempt; NULL for none. */
  msvc_http_attempt_fn on_attempt;
  /** Passed to on_attempt. */
  void *attempt_data;
  /** Send every request over HTTP/2 (as if msvc_http_request_t::http2 were
   *  set); false by default. @since 0.3 */
  bool http2;
  /** HTTP/2 connections per endpoint, each carrying many requests at once
   *  (default 1); a new one opens when all are at the server's stream
   *  limit. @since 0.3 */
  uint32_t h2_conns_per_endpoint;
} msvc_http_client_opts_t;

/**
 * @brief Called when a closed client is released.
 * @param data  The pointer given to msvc_http_client_close().
 */
typedef void (*msvc_http_client_close_cb)(void *data);

/** @brief One header of a request. */
typedef struct msvc_http_header_s {
  const char *name;  /**< Field name, no CR, LF or colon. */
  const char *value; /**< Field value, no CR or LF. */
} msvc_http_header_t;

/**
 * @brief Completion of a call.
 * @param call  The call; gone when the callback returns.
 * @param err   #MSVC_OK when a response arrived (any status), else
 *              MSVC_ECONNREFUSED, MSVC_ETIMEDOUT, MSVC_ECONNRESET (closed
 *              or reset before the response was complete), MSVC_EHTTP_DNS,
 *              MSVC_ETOOLARGE (response head or body over the limit),
 *              MSVC_EHTTP_BAD_RESPONSE, MSVC_EHTTP_POOL_FULL,
 *              MSVC_ECANCELED, MSVC_ENOMEM, or another libuv code. After
 *              retries, this is the last attempt's outcome.
 * @param res   The response when err is #MSVC_OK, else NULL. Borrowed for
 *              the callback.
 * @param data  The request's data.
 */
typedef void (*msvc_http_response_fn)(msvc_http_call_t *call, int err,
                                      const msvc_http_response_t *res,
                                      void *data);

/**
 * @brief Receives a streamed body piece by piece.
 * @param call  The call.
 * @param res   Status and headers (the body accessor returns nothing).
 * @param buf   Bytes of the decoded body; valid only during the call.
 * @param len   Their number.
 * @param data  The request's data.
 * @note The call may be cancelled from here with msvc_http_call_cancel().
 */
typedef void (*msvc_http_chunk_fn)(msvc_http_call_t *call,
                                   const msvc_http_response_t *res,
                                   const char *buf, size_t len, void *data);

/**
 * @brief Supplies a streamed request body, sent with chunked encoding
 *        (over HTTP/2: as DATA frames).
 *
 * Called each time the previous piece has been handed to the socket (over
 * HTTP/2: framed, as the stream's flow-control window allows).
 * @param call  The call.
 * @param buf   Receives the next piece; it must stay valid until the
 *              source is called again or the call completes.
 * @param len   Receives its length; 0 ends the body.
 * @param data  The request's data.
 * @return 0, or a negative code that ends the call with that error.
 * @note A streamed body cannot be replayed: once a byte of such a request
 *       has gone out it is never retried nor sent again after a stale
 *       pooled connection. (The source is first called after the head was
 *       written, so a request refused before that may still be retried.)
 */
typedef int (*msvc_http_body_source_fn)(msvc_http_call_t *call, const char **buf,
                                        size_t *len, void *data);

/** @brief Per-request timeouts in milliseconds; 0 means none. */
typedef struct msvc_http_timeouts_s {
  uint32_t connect_ms;    /**< Establishing a new connection. */
  uint32_t first_byte_ms; /**< From the request being sent to the first response byte. */
  uint32_t total_ms;      /**< The whole call, queueing and retries included. */
} msvc_http_timeouts_t;

/** @brief A request; fill with msvc_http_request_init(). All fields are copied. */
typedef struct msvc_http_request_s {
  /** Method (default "GET"). */
  const char *method;
  /** "http://host[:port]/path?query" or "https://..."; or NULL and
   *  host/port/target below (plain HTTP). */
  const char *url;
  /** Host name or IP address (used when url is NULL). */
  const char *host;
  /** Port (used when url is NULL). */
  int port;
  /** Request target, "/path?query" (used when url is NULL; default "/"). */
  const char *target;
  /** Extra headers; Host and Content-Length are added unless given. */
  const msvc_http_header_t *headers;
  /** Number of headers. */
  size_t nheaders;
  /** Body bytes, or NULL. */
  const void *body;
  /** Body length. */
  size_t body_len;
  /** Stream the request body from this source instead (body must be NULL,
   *  and no Content-Length or Transfer-Encoding header given). */
  msvc_http_body_source_fn body_source;
  /** Timeouts (default connect 5000, first byte 0, total 30000). */
  msvc_http_timeouts_t timeouts;
  /** Safe to send twice even if the method is not idempotent. A request
   *  with an `Idempotency-Key` header is treated as if this were set. A
   *  request that never left (refused, connect timeout, a pooled
   *  connection found closed before the write) is sent again on a fresh
   *  connection, or retried, whatever its method. */
  bool retryable;
  /** Same-endpoint retries with this policy (borrowed; must outlive the
   *  call); NULL for a single attempt. */
  msvc_retry_t *retry;
  /** Cap of this request's buffered response body; 0 uses the client's
   *  max_response_body. */
  uint64_t max_response_body;
  /** Stream the body to this callback instead of buffering it; NULL buffers. */
  msvc_http_chunk_fn on_chunk;
  /** Completion callback; required. */
  msvc_http_response_fn on_done;
  /** Passed to the callbacks and to the attempt hook. */
  void *data;
  /** With host/port (url NULL): connect with TLS, as an `https://` URL
   *  would (default false). */
  bool tls;
  /** Send this request over HTTP/2 (default false): cleartext with prior
   *  knowledge for `http://`, ALPN `h2` for `https://`. Requests to one
   *  endpoint share its multiplexed connection(s); the response's trailers
   *  are then available (msvc_http_response_trailer()) and cancelling the
   *  call resets only its stream. Needs a library built with nghttp2, else
   *  the request fails with MSVC_ENOTSUP. @since 0.3 */
  bool http2;
} msvc_http_request_t;

/**
 * @brief Fills opts with the defaults documented on each field.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_http_client_opts_init(msvc_http_client_opts_t *opts);

/**
 * @brief Creates a client on a loop.
 * @param loop  The caller's loop; must outlive the client.
 * @param opts  Options, copied; NULL for the defaults.
 * @param out   Receives the client; release it with msvc_http_client_close().
 * @return #MSVC_OK, MSVC_EINVAL (NULL loop or out; max_conns_per_endpoint,
 *         max_response_headers or idle_timeout_ms of 0; max_response_head
 *         under 64), or MSVC_ENOMEM.
 * @note Not thread-safe: use the client only on its loop's thread.
 * @since 0.1
 */
MSVC_API int msvc_http_client_new(uv_loop_t *loop, const msvc_http_client_opts_t *opts,
                                  msvc_http_client_t **out);

/**
 * @brief Closes every connection, cancels every call, then frees the client.
 *
 * Pending calls complete with MSVC_ECANCELED from the loop; cb runs after
 * the last handle is closed.
 * @param c     The client; NULL is a no-op.
 * @param cb    Called once everything is released; may be NULL.
 * @param data  Passed to cb.
 * @since 0.1
 */
MSVC_API void msvc_http_client_close(msvc_http_client_t *c,
                                     msvc_http_client_close_cb cb, void *data);

struct msvc_tls_config_s;

/**
 * @brief Sets the TLS configuration used for `https://` URLs.
 *
 * Without one, the first `https://` request creates a configuration that
 * trusts the system CA bundle and verifies host names. Connections already
 * open keep the configuration they were made with.
 * @param c    The client.
 * @param cfg  A client configuration from msvc_tls_config_new() (see
 *             msvc/tls.h); the client takes its own reference. NULL goes
 *             back to the default.
 * @return #MSVC_OK, MSVC_EINVAL (NULL client, a server configuration), or
 *         MSVC_ENOTSUP when libmsvc was built without TLS.
 * @note Not thread-safe: call it on the client's loop thread. Pool
 *       endpoints are keyed by scheme, host and port, so `http://h:1` and
 *       `https://h:1` never share a connection.
 * @since 0.1
 */
MSVC_API int msvc_http_client_set_tls(msvc_http_client_t *c, struct msvc_tls_config_s *cfg);

/**
 * @brief Fills a request with defaults (GET, timeouts as documented).
 * @param req  Request to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_http_request_init(msvc_http_request_t *req);

/**
 * @brief Starts a request.
 *
 * The request is copied. The completion callback runs later from the loop,
 * exactly once, unless this function returns an error (then it never runs).
 * @param c    The client.
 * @param req  The request.
 * @param out  Receives the call handle (for msvc_http_call_cancel()); may be
 *             NULL. Valid until the completion callback returns.
 * @return #MSVC_OK, MSVC_EINVAL (missing callback, bad method, header or
 *         target with CR/LF), MSVC_EURI (malformed URL), MSVC_ENOTSUP (a
 *         scheme other than http and https, or https in a build without
 *         TLS), MSVC_ETLS (the default TLS configuration could not be
 *         built), MSVC_EHTTP_POOL_FULL (the endpoint's
 *         queue is full), MSVC_ECLOSED (client closing) or MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_client_request(msvc_http_client_t *c,
                                      const msvc_http_request_t *req,
                                      msvc_http_call_t **out);

/**
 * @brief Cancels a call; its callback then runs from the loop with
 *        MSVC_ECANCELED. A call already completing is left alone.
 * @param call  The call, before its completion callback has returned.
 * @since 0.1
 */
MSVC_API void msvc_http_call_cancel(msvc_http_call_t *call);

/**
 * @brief Whether any byte of the request went out in the call's last
 *        attempt.
 *
 * False means the server cannot have seen the request: the connection was
 * refused or timed out, the name did not resolve, or a pooled connection
 * was found closed before the write. Such a request may be sent again to
 * another server whatever its method (see msvc_retry_attempt_t::not_sent).
 * A byte handed to the socket counts as sent even if the peer never read
 * it; over TLS, a request queued behind the handshake counts as sent.
 * @param call  The call, during its on_done or on_chunk callback.
 * @return true when a byte may have reached the server; false for NULL.
 * @note Not thread-safe: call it on the client's loop thread.
 * @since 0.2
 */
MSVC_API bool msvc_http_call_sent(const msvc_http_call_t *call);

/**
 * @brief Connections the client holds to an endpoint (idle and busy).
 * @param c     The client.
 * @param host  Host as given in requests.
 * @param port  Port.
 * @return The count; 0 for an unknown endpoint.
 * @since 0.1
 */
MSVC_API uint32_t msvc_http_client_connections(const msvc_http_client_t *c,
                                               const char *host, int port);

/** @brief The pool of one endpoint, from msvc_http_client_pool(). */
typedef struct msvc_http_pool_stats_s {
  uint32_t connections; /**< Open or opening, idle or busy. */
  uint32_t idle;        /**< Open and waiting for a request. */
  uint32_t queued;      /**< Requests waiting for a connection. */
} msvc_http_pool_stats_t;

/**
 * @brief The connection pool of one endpoint (for the admin pages).
 * @param c     The client.
 * @param host  Host as given in requests.
 * @param port  Port.
 * @param out   Receives the figures; all 0 for an unknown endpoint.
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments.
 * @note Loop thread of the client.
 * @since 0.2
 */
MSVC_API int msvc_http_client_pool(const msvc_http_client_t *c, const char *host, int port,
                                   msvc_http_pool_stats_t *out);

/**
 * @brief The response status code.
 * @param res  The response.
 * @return The status (100..999).
 * @since 0.1
 */
MSVC_API int msvc_http_response_status(const msvc_http_response_t *res);

/**
 * @brief First value of a header, matched case-insensitively.
 * @param res   The response.
 * @param name  Field name.
 * @return The value (borrowed like the response), or NULL.
 * @since 0.1
 */
MSVC_API const char *msvc_http_response_header(const msvc_http_response_t *res,
                                               const char *name);

/**
 * @brief Number of header fields in the response.
 * @param res  The response.
 * @return The count.
 * @since 0.1
 */
MSVC_API size_t msvc_http_response_header_count(const msvc_http_response_t *res);

/**
 * @brief Header field by position.
 * @param res    The response.
 * @param i      Index below msvc_http_response_header_count().
 * @param name   Receives the name (borrowed).
 * @param value  Receives the value (borrowed).
 * @return #MSVC_OK or MSVC_ERANGE.
 * @since 0.1
 */
MSVC_API int msvc_http_response_header_at(const msvc_http_response_t *res, size_t i,
                                          const char **name, const char **value);

/**
 * @brief The buffered body (NUL-terminated for convenience).
 * @param res  The response.
 * @param len  Receives the length; may be NULL.
 * @return The body, borrowed like the response; "" when empty or streamed.
 * @since 0.1
 */
MSVC_API const char *msvc_http_response_body(const msvc_http_response_t *res,
                                             size_t *len);

/**
 * @brief The protocol version the response came with.
 * @param res  The response.
 * @return 10, 11 or 20 (HTTP/2); 0 for NULL.
 * @since 0.3
 */
MSVC_API int msvc_http_response_version(const msvc_http_response_t *res);

/**
 * @brief A trailer field of the response (case-insensitive name).
 * @param res   The response.
 * @param name  The field name.
 * @return Its first value, borrowed like the response, or NULL (also for
 *         every HTTP/1.x response: their trailers are not kept).
 * @since 0.3
 */
MSVC_API const char *msvc_http_response_trailer(const msvc_http_response_t *res,
                                                const char *name);

/**
 * @brief Number of trailer fields of the response.
 * @param res  The response.
 * @return The count; 0 for NULL or no trailers.
 * @since 0.3
 */
MSVC_API size_t msvc_http_response_trailer_count(const msvc_http_response_t *res);

/**
 * @brief The trailer field at index i.
 * @param res    The response.
 * @param i      Index, from 0.
 * @param name   Receives the name (lower case), borrowed like the response.
 * @param value  Receives the value, borrowed like the response.
 * @return #MSVC_OK or MSVC_ERANGE.
 * @since 0.3
 */
MSVC_API int msvc_http_response_trailer_at(const msvc_http_response_t *res, size_t i,
                                           const char **name, const char **value);

#ifdef __cplusplus
}
#endif

#endif /* MSVC_HTTP_CLIENT_H */
