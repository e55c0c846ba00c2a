/**
 * @file msvc/http.h
 * @brief HTTP/1.1 server on libuv: router with path parameters, middleware,
 *        limits, keep-alive, pipelining, asynchronous handlers, graceful
 *        drain and worker loops sharing one port.
 *
 * A server lives on one `uv_loop_t` that the caller owns and runs. Every
 * object of this header is bound to that loop and is not thread-safe: use it
 * only from the loop's thread (worker loops each get their own server, see
 * msvc_http_workers_start()).
 *
 * A request is answered by calling one of the finishing functions on its
 * response (msvc_http_res_send(), msvc_http_res_json(), msvc_http_res_error(),
 * msvc_http_res_end() after msvc_http_res_start()), either inside the handler
 * or later. The request and response objects stay valid until that call,
 * even if the client has gone away in between (the call then returns
 * MSVC_ECLOSED); a handler that learns of the disconnection through
 * msvc_http_req_on_cancel() must still finish the response once to release
 * it.
 */
#ifndef MSVC_HTTP_H
#define MSVC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/error.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/** @brief An HTTP server bound to one loop. */
typedef struct msvc_http_server_s msvc_http_server_t;
/** @brief One request being served. */
typedef struct msvc_http_req_s msvc_http_req_t;
/** @brief The response to one request. */
typedef struct msvc_http_res_s msvc_http_res_t;

/** @brief Route flag: the route needs an authenticated caller (read by an
 *         authentication middleware). */
#define MSVC_HTTP_ROUTE_AUTH 0x1u

/** @brief Server options; fill with msvc_http_server_opts_init(). */
typedef struct msvc_http_server_opts_s {
  size_t size;                   /**< sizeof(msvc_http_server_opts_t). */
  size_t max_header_bytes;       /**< Request line + headers; 8192 (431 above). */
  uint32_t max_headers;          /**< Header fields; 100 (431 above). */
  uint64_t max_body_bytes;       /**< Request body; 1 MiB (413 above). */
  uint32_t header_timeout_ms;    /**< Whole head must arrive within this from
                                      accept or from the request's first byte;
                                      10000. */
  uint32_t body_timeout_ms;      /**< Longest silence while a body is read,
                                      and longest time one write of responses
                                      may take; 30000. */
  uint32_t keepalive_timeout_ms; /**< Idle time between requests; 5000. */
  uint32_t max_connections;      /**< Open connections. At the limit a new
                                      connection replaces the connection that
                                      has been idle between requests the
                                      longest; with none idle it is answered
                                      503 and closed. 0 (the default): sized
                                      when the server starts listening from
                                      the soft descriptor limit
                                      (RLIMIT_NOFILE), less a reserve of 32 +
                                      1/8 of it for outgoing calls, files and
                                      probes, at most 10000 (864 under
                                      `ulimit -n 1024`); worker loops share
                                      it. */
  uint32_t max_pipeline;         /**< Requests parsed ahead of their answers; 32. */
  int backlog;                   /**< listen() backlog; 511. */
  bool reuseport;                /**< Set SO_REUSEPORT (worker loops); false. */
  uint32_t body_deadline_ms;     /**< The whole body must arrive within this
                                      from the end of the request head,
                                      however steadily it trickles: else 408
                                      and close; 30000. @since 0.2 */
  uint32_t min_body_rate;        /**< Bytes per second a body must average,
                                      counted from the end of the head once
                                      body_rate_grace_ms has passed: else 408
                                      and close; 1024. 0 turns the check off.
                                      @since 0.2 */
  uint32_t body_rate_grace_ms;   /**< Time before min_body_rate applies; 5000.
                                      @since 0.2 */
  bool http2;                    /**< Serve HTTP/2 as well: cleartext with
                                      prior knowledge (h2c) on the same port,
                                      recognised by its connection preface,
                                      and `h2` chosen by ALPN over TLS. True
                                      by default when the library is built
                                      with nghttp2 (LIBMSVC_HAVE_NGHTTP2),
                                      else ignored. @since 0.3 */
  uint32_t h2_max_streams;       /**< HTTP/2: streams a client may have
                                      open at once
                                      (SETTINGS_MAX_CONCURRENT_STREAMS);
                                      100. @since 0.3 */
  uint32_t h2_window;            /**< HTTP/2: receive window of each stream
                                      in bytes (SETTINGS_INITIAL_WINDOW_SIZE);
                                      the connection's window is four times
                                      it; 262144. @since 0.3 */
} msvc_http_server_opts_t;

/**
 * @brief Per-route options, read by middleware through the request.
 *
 * Fill with msvc_http_route_opts_init() before setting fields, so that a
 * program built against this header keeps working when fields are added.
 */
typedef struct msvc_http_route_opts_s {
  size_t size;    /**< sizeof(msvc_http_route_opts_t), set by the init. */
  uint32_t flags; /**< MSVC_HTTP_ROUTE_* bits; 0 by default. */
  void *data;     /**< Opaque pointer for middleware; borrowed for the
                       server's lifetime. */
} msvc_http_route_opts_t;

/**
 * @brief Fill route options with their defaults (no flags, no data).
 * @param opts  Options to fill; must not be NULL.
 * @note Thread-safe; touches only @p opts.
 * @since 0.2
 */
MSVC_API void msvc_http_route_opts_init(msvc_http_route_opts_t *opts);

/**
 * @brief A route handler.
 * @param req   The request; valid until the response is finished.
 * @param res   Its response, to be finished once (now or later).
 * @param data  The pointer given with the route.
 */
typedef void (*msvc_http_handler_fn)(msvc_http_req_t *req, msvc_http_res_t *res,
                                     void *data);

/** @brief What a middleware's before-hook returns. */
typedef enum msvc_http_next_e {
  MSVC_HTTP_NEXT = 0,  /**< Go on to the next middleware or the handler. */
  MSVC_HTTP_STOP = 1,  /**< The middleware answered (or will answer) itself. */
  MSVC_HTTP_PAUSE = 2  /**< Resume later with msvc_http_req_resume(). */
} msvc_http_next_t;

/**
 * @brief A middleware: hooks run around every request, in the order added.
 *
 * `before` runs after routing (so the route is known, or NULL for 404/405)
 * and before the handler; `after` runs once when the response is finished or
 * the request is cancelled, in reverse order, for every middleware whose
 * before-hook ran (or that has none). Either hook may be NULL.
 */
typedef struct msvc_http_middleware_s {
  const char *name; /**< For logs; borrowed for the server's lifetime. */
  /** @brief Returns a msvc_http_next_t value. */
  int (*before)(msvc_http_req_t *req, msvc_http_res_t *res, void *data);
  /** @brief Sees the final status (msvc_http_res_status()) and the time from
   *         the end of the request head to the end of the response. */
  void (*after)(msvc_http_req_t *req, msvc_http_res_t *res,
                uint64_t duration_ns, void *data);
  void *data; /**< Passed to both hooks; borrowed. */
} msvc_http_middleware_t;

/** @brief Called when msvc_http_server_close() has released everything.
 *  @param data The pointer given to msvc_http_server_close(). */
typedef void (*msvc_http_close_cb)(void *data);
/** @brief Called when a drain is over.
 *  @param data     The pointer given to msvc_http_server_drain().
 *  @param timedout True if connections were cut at the deadline. */
typedef void (*msvc_http_drain_cb)(void *data, bool timedout);
/** @brief Tells an asynchronous handler that its client went away.
 *  @param req  The request (still valid; finish its response once).
 *  @param data The pointer given to msvc_http_req_on_cancel(). */
typedef void (*msvc_http_cancel_fn)(msvc_http_req_t *req, void *data);

/**
 * @brief Fill options with the defaults listed in msvc_http_server_opts_t.
 * @param opts  Options to fill.
 * @since 0.1
 */
MSVC_API void msvc_http_server_opts_init(msvc_http_server_opts_t *opts);

struct msvc_tls_config_s;

/**
 * @brief Serves TLS (or stops serving it) on connections accepted from now on.
 *
 * Connections already open keep the configuration they started with, so
 * calling this again with a new configuration swaps certificates without
 * a restart (see also msvc_tls_config_reload()).
 * @param srv  The server.
 * @param cfg  A server configuration from msvc_tls_config_new() (see
 *             msvc/tls.h); the server takes its own reference. NULL serves
 *             plain HTTP.
 * @return #MSVC_OK, MSVC_EINVAL (NULL server, a client configuration), or
 *         MSVC_ENOTSUP when libmsvc was built without TLS.
 * @note Not thread-safe: call it on the server's loop thread.
 * @since 0.1
 */
MSVC_API int msvc_http_server_set_tls(msvc_http_server_t *srv, struct msvc_tls_config_s *cfg);

struct msvc_work_s;

/**
 * @brief Runs the TLS handshakes of the server's connections on a worker
 *        pool instead of its loop.
 *
 * A full handshake costs the server a private-key signature and a key
 * exchange, milliseconds of CPU with Mbed TLS; on the loop they delay every
 * request of every connection already open. With a pool, each step of a
 * handshake that has input to work on runs on a pool thread (one at a time
 * per connection), and the loop goes on serving meanwhile. A step waits in
 * the pool's queue at most until the handshake's deadline
 * (msvc_tls_opts_t::handshake_timeout_ms); when the queue is full, or the
 * pool is draining, the step runs on the loop as it would without a pool.
 * The service object sets its own pool (msvc_service_work()) on its
 * servers.
 *
 * @param srv  The server.
 * @param w    A pool bound to the server's loop (msvc/work.h), borrowed: it
 *             must stay open until the server has closed (close the server
 *             first). NULL: handshakes run on the loop (the default).
 * @return #MSVC_OK, MSVC_EINVAL (NULL server, a pool of another loop).
 * @note Not thread-safe: call it on the server's loop thread. Connections
 *       already open keep the pool they started with.
 * @since 0.3
 */
MSVC_API int msvc_http_server_set_work(msvc_http_server_t *srv, struct msvc_work_s *w);

/**
 * @brief Create a server on a loop.
 * @param loop  The caller's loop; must outlive the server.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the server.
 * @return #MSVC_OK, MSVC_EINVAL (NULL argument, zero limit), MSVC_ENOMEM.
 * @note Free with msvc_http_server_close(). Loop thread only.
 * @since 0.1
 */
MSVC_API int msvc_http_server_new(uv_loop_t *loop,
                                  const msvc_http_server_opts_t *opts,
                                  msvc_http_server_t **out);

/**
 * @brief Add a route.
 * @param srv      The server (before or after listening).
 * @param method   "GET", "POST", ... or "*" for any method. Copied.
 * @param pattern  Path pattern starting with `/`: literal segments, `:name`
 *                 parameters and, as the last segment only, `*`, which
 *                 matches the rest of the path (`/users/:id`, `/files/`
 *                 followed by `*`). Copied. When several routes match,
 *                 the first segment where they differ decides: a literal
 *                 wins over a parameter, a parameter over `*`, and a
 *                 pattern that ends there (the path matched exactly) over
 *                 `*`; registration order never matters.
 * @param handler  Called for matching requests.
 * @param data     Passed to the handler; borrowed.
 * @param opts     Per-route options (copied), or NULL.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_EHTTP_ROUTE (malformed pattern, the
 *         same method and pattern twice, or a pattern of the same method
 *         that differs only in parameter names), MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_server_route(msvc_http_server_t *srv, const char *method,
                                    const char *pattern,
                                    msvc_http_handler_fn handler, void *data,
                                    const msvc_http_route_opts_t *opts);

/**
 * @brief Append a middleware to the chain.
 * @param srv  The server.
 * @param mw   The middleware (copied; its name and data are borrowed).
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_server_use(msvc_http_server_t *srv,
                                  const msvc_http_middleware_t *mw);

/**
 * @brief Start listening.
 * @param srv   The server (once).
 * @param host  An IPv4 or IPv6 address literal, e.g. "127.0.0.1".
 * @param port  0 for any free port (see msvc_http_server_port()).
 * @return #MSVC_OK, MSVC_EINVAL (bad address), MSVC_ESTATE (already
 *         listening or closing), or a libuv code (MSVC_EADDRINUSE, ...).
 * @since 0.1
 */
MSVC_API int msvc_http_server_listen(msvc_http_server_t *srv, const char *host,
                                     int port);

/**
 * @brief The port the server listens on.
 * @param srv  The server.
 * @return The bound port, or 0 when not listening.
 * @since 0.1
 */
MSVC_API int msvc_http_server_port(const msvc_http_server_t *srv);

/**
 * @brief Number of open client connections.
 * @param srv  The server.
 * @return The count.
 * @since 0.1
 */
MSVC_API uint32_t msvc_http_server_connections(const msvc_http_server_t *srv);

/**
 * @brief The loop the server runs on.
 * @param srv  The server.
 * @return The loop given to msvc_http_server_new().
 * @since 0.1
 */
MSVC_API uv_loop_t *msvc_http_server_loop(const msvc_http_server_t *srv);

/**
 * @brief Shut down gracefully.
 *
 * Stops accepting, closes idle connections, lets requests in flight finish
 * (their responses carry `Connection: close`), answers new requests on open
 * connections with 503 SHUTTING_DOWN, and cuts what is left at the deadline.
 * The server stays allocated: call msvc_http_server_close() afterwards.
 *
 * @param srv         The server.
 * @param timeout_ms  Deadline for requests in flight.
 * @param cb          Called once (from the loop, never from this call) when
 *                    no connection is left; may be NULL.
 * @param data        Passed to cb.
 * @return #MSVC_OK, MSVC_ESTATE (already draining or closing), MSVC_EINVAL.
 * @since 0.1
 */
MSVC_API int msvc_http_server_drain(msvc_http_server_t *srv, uint32_t timeout_ms,
                                    msvc_http_drain_cb cb, void *data);

/**
 * @brief Close the server and every connection now, then free it.
 *
 * Requests in flight are cancelled (their cancel hooks run); their handlers
 * may still finish them safely. Memory is released from libuv close
 * callbacks; cb runs after that.
 *
 * @param srv   The server, or NULL (a no-op).
 * @param cb    Called once when everything is released; may be NULL.
 * @param data  Passed to cb.
 * @since 0.1
 */
MSVC_API void msvc_http_server_close(msvc_http_server_t *srv,
                                     msvc_http_close_cb cb, void *data);

/* ---- requests ----------------------------------------------------------- */

/**
 * @brief The request method, e.g. "GET".
 * @param req  The request.
 * @return A static string.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_method(const msvc_http_req_t *req);

/**
 * @brief The request target as received ("/users/7?x=1").
 * @param req  The request.
 * @return Borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_target(const msvc_http_req_t *req);

/**
 * @brief The path part of the target, not decoded ("/users/7").
 * @param req  The request.
 * @param len  Receives the length (the path is not NUL-terminated).
 * @return Borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_path(const msvc_http_req_t *req, size_t *len);

/**
 * @brief First value of a request header, by case-insensitive name.
 * @param req   The request.
 * @param name  Header name.
 * @return The value, or NULL; borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_header(const msvc_http_req_t *req,
                                          const char *name);

/**
 * @brief Number of header fields, repeated ones included.
 * @param req  The request.
 * @return The count.
 * @since 0.1
 */
MSVC_API size_t msvc_http_req_header_count(const msvc_http_req_t *req);

/**
 * @brief One header field by position, in the order received.
 * @param req    The request.
 * @param i      Index below msvc_http_req_header_count().
 * @param name   Receives the name; borrowed until the response is finished.
 * @param value  Receives the value; borrowed likewise.
 * @return #MSVC_OK or MSVC_ERANGE.
 * @since 0.1
 */
MSVC_API int msvc_http_req_header_at(const msvc_http_req_t *req, size_t i,
                                     const char **name, const char **value);

/**
 * @brief A path parameter of the matched route, percent-decoded.
 * @param req   The request.
 * @param name  Parameter name without the colon; "*" for the wildcard.
 * @return The value, or NULL; borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_param(msvc_http_req_t *req, const char *name);

/**
 * @brief First value of a query-string parameter, percent-decoded (`+` is a
 *        space).
 * @param req   The request.
 * @param name  Parameter name (compared after decoding).
 * @return The value ("" for a bare key), or NULL when absent or on memory
 *         shortage; borrowed until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_query(msvc_http_req_t *req, const char *name);

/**
 * @brief The request body, complete (chunked bodies are decoded).
 * @param req  The request.
 * @param len  Receives the length; may be NULL.
 * @return The bytes, NUL-terminated for convenience, never NULL; borrowed
 *         until the response is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_body(const msvc_http_req_t *req, size_t *len);

/**
 * @brief Parse the body as JSON, answering bad input itself.
 *
 * Requires `Content-Type: application/json` (answers 415
 * UNSUPPORTED_MEDIA_TYPE) and valid JSON (answers 400 INVALID_ARGUMENT).
 * Also answered 400: a NUL character in the body (`\u0000` or a raw NUL
 * byte), which cJSON's C strings would silently cut short, and anything
 * but white space after the document. @since 0.2 for these two.
 *
 * @param req  The request.
 * @param out  Receives the parsed document, the caller's to cJSON_Delete().
 * @return #MSVC_OK, MSVC_EJSON or MSVC_ENOTSUP when the response was already
 *         sent (the handler must not answer again), MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_req_json(msvc_http_req_t *req, struct cJSON **out);

/**
 * @brief The pattern of the matched route ("/users/:id").
 * @param req  The request.
 * @return The pattern, or NULL when no route matched; borrowed for the
 *         server's lifetime.
 * @since 0.1
 */
MSVC_API const char *msvc_http_req_route(const msvc_http_req_t *req);

/**
 * @brief Options of the matched route.
 * @param req  The request.
 * @return The options, or NULL when no route matched; borrowed for the
 *         server's lifetime.
 * @since 0.1
 */
MSVC_API const msvc_http_route_opts_t *msvc_http_req_route_opts(const msvc_http_req_t *req);

/**
 * @brief The peer's address as "ip:port".
 * @param req  The request.
 * @param out  Buffer.
 * @param len  Its size (64 is enough).
 * @return #MSVC_OK, MSVC_ECLOSED (client gone), MSVC_ERANGE, a libuv code.
 * @since 0.1
 */
MSVC_API int msvc_http_req_peer(const msvc_http_req_t *req, char *out, size_t len);

/**
 * @brief Attach a value to the request for later middleware and handlers.
 * @param req       The request.
 * @param key       Key; borrowed (use a string literal). Setting it again
 *                  replaces (and frees) the previous value.
 * @param value     The value.
 * @param free_fn   Called with value when the request is released; may be NULL.
 * @return #MSVC_OK, MSVC_ENOMEM (free_fn is then called at once).
 * @since 0.1
 */
MSVC_API int msvc_http_req_set(msvc_http_req_t *req, const char *key, void *value,
                               void (*free_fn)(void *));

/**
 * @brief A value attached with msvc_http_req_set().
 * @param req  The request.
 * @param key  Key.
 * @return The value, or NULL.
 * @since 0.1
 */
MSVC_API void *msvc_http_req_get(const msvc_http_req_t *req, const char *key);

/**
 * @brief Be told when the client goes away before the response is finished.
 * @param req   The request.
 * @param fn    Called at most once, from the loop; NULL removes it.
 * @param data  Passed to fn.
 * @since 0.1
 */
MSVC_API void msvc_http_req_on_cancel(msvc_http_req_t *req, msvc_http_cancel_fn fn,
                                      void *data);

/**
 * @brief Whether the client went away (the response goes nowhere).
 * @param req  The request.
 * @return True once cancelled.
 * @since 0.1
 */
MSVC_API bool msvc_http_req_cancelled(const msvc_http_req_t *req);

/**
 * @brief Continue the middleware chain after a before-hook returned
 *        MSVC_HTTP_PAUSE.
 * @param req  The request.
 * @return #MSVC_OK, MSVC_ESTATE (not paused).
 * @since 0.1
 */
MSVC_API int msvc_http_req_resume(msvc_http_req_t *req);

/**
 * @brief The response of a request.
 * @param req  The request.
 * @return Its response (same lifetime).
 * @since 0.1
 */
MSVC_API msvc_http_res_t *msvc_http_req_res(msvc_http_req_t *req);

/**
 * @brief The request of a response.
 * @param res  The response.
 * @return Its request (same lifetime).
 * @since 0.1
 */
MSVC_API msvc_http_req_t *msvc_http_res_req(msvc_http_res_t *res);

/* ---- responses ---------------------------------------------------------- */

/**
 * @brief Add a response header (repeats allowed).
 * @param res    The response, before its head is sent.
 * @param name   Header name (copied); must be a token.
 * @param value  Value (copied); no CR or LF.
 * @return #MSVC_OK, MSVC_EINVAL (bad name or value), MSVC_EHTTP_RESPONDED,
 *         MSVC_ENOMEM.
 * @note Content-Length, Transfer-Encoding, Date and Connection are set by
 *       the server.
 * @since 0.1
 */
MSVC_API int msvc_http_res_header(msvc_http_res_t *res, const char *name,
                                  const char *value);

/**
 * @brief Ask for the connection to be closed after this response.
 *
 * Over HTTP/2 the other streams of the connection are not cut: once this
 * request's stream has ended, the server sends GOAWAY(NO_ERROR), finishes
 * the streams already open and then closes the connection.
 * @param res  The response.
 * @since 0.1
 */
MSVC_API void msvc_http_res_close_connection(msvc_http_res_t *res);

/**
 * @brief Send a complete response and finish it.
 * @param res           The response.
 * @param status        100 < status < 1000, not 1xx.
 * @param content_type  Content-Type, or NULL for none.
 * @param body          Body bytes (copied), may be NULL when len is 0.
 *                      The answer to a HEAD request never carries them:
 *                      body may then be NULL with any len.
 * @param len           Body length, sent as Content-Length (for HEAD, the
 *                      length a GET would have had).
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_EHTTP_RESPONDED (already sent),
 *         MSVC_ECLOSED (client gone; the response is released anyway),
 *         MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_res_send(msvc_http_res_t *res, int status,
                                const char *content_type, const void *body,
                                size_t len);

/**
 * @brief Like msvc_http_res_send(), taking ownership of body.
 * @param res           The response.
 * @param status        Status code.
 * @param content_type  Content-Type, or NULL.
 * @param body          Allocated with a libmsvc allocator (or any buffer
 *                      msvc_free() can release); freed by the server in all
 *                      cases, errors included.
 * @param len           Body length.
 * @return As msvc_http_res_send().
 * @since 0.1
 */
MSVC_API int msvc_http_res_send_owned(msvc_http_res_t *res, int status,
                                      const char *content_type, void *body,
                                      size_t len);

/**
 * @brief Send a JSON document (Content-Type: application/json) and finish.
 * @param res     The response.
 * @param status  Status code.
 * @param json    The document; borrowed (not freed).
 * @return As msvc_http_res_send().
 * @since 0.1
 */
MSVC_API int msvc_http_res_json(msvc_http_res_t *res, int status,
                                const struct cJSON *json);

/**
 * @brief Send the JSON error body `{"error":{"code":...,"message":...}}` and
 *        finish.
 *
 * Adds `WWW-Authenticate: Bearer error="invalid_token", error_description=
 * "<message>"` to a 401 and `Retry-After: 1` to a 503 when they were not set
 * with msvc_http_res_header(), and `Connection: close` to 503
 * SHUTTING_DOWN. Set `Allow` for a 405 yourself (the router does for its own).
 *
 * @param res      The response.
 * @param status   Status code (4xx or 5xx).
 * @param code     Error code, e.g. "NOT_FOUND" (copied, JSON-escaped).
 * @param message  Human-readable message (copied, JSON-escaped). Bytes that
 *                 are not well-formed UTF-8 (as a percent-decoded path may
 *                 hold) become U+FFFD, so the body is always valid JSON and
 *                 UTF-8 (since 0.2).
 * @return As msvc_http_res_send().
 * @since 0.1
 */
MSVC_API int msvc_http_res_error(msvc_http_res_t *res, int status,
                                 const char *code, const char *message);

/**
 * @brief Start a streamed response (chunked; close-delimited for HTTP/1.0).
 * @param res           The response.
 * @param status        Status code.
 * @param content_type  Content-Type, or NULL.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_EHTTP_RESPONDED, MSVC_ECLOSED (client
 *         gone), MSVC_ENOMEM. Unless it returned MSVC_EINVAL or
 *         MSVC_EHTTP_RESPONDED, finish with msvc_http_res_end().
 * @since 0.1
 */
MSVC_API int msvc_http_res_start(msvc_http_res_t *res, int status,
                                 const char *content_type);

/**
 * @brief Send a piece of a streamed response.
 * @param res   The response, started.
 * @param data  Bytes (copied).
 * @param len   Length; 0 is a no-op.
 * @return #MSVC_OK, MSVC_ESTATE (not started or finished), MSVC_ECLOSED,
 *         MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_res_write(msvc_http_res_t *res, const void *data, size_t len);

/**
 * @brief Finish a streamed response.
 * @param res  The response, started.
 * @return #MSVC_OK, MSVC_ESTATE, MSVC_ECLOSED (released anyway), MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_http_res_end(msvc_http_res_t *res);

/**
 * @brief The status sent (or about to be sent).
 * @param res  The response.
 * @return The status, 0 if none yet, 499 if the client went away first.
 * @since 0.1
 */
MSVC_API int msvc_http_res_status(const msvc_http_res_t *res);

/**
 * @brief Whether the response head has been produced.
 * @param res  The response.
 * @return True after a send/json/error/start call.
 * @since 0.1
 */
MSVC_API bool msvc_http_res_started(const msvc_http_res_t *res);

/**
 * @brief The protocol version the request arrived with.
 * @param req  The request.
 * @return 10 (HTTP/1.0), 11 (HTTP/1.1) or 20 (HTTP/2); 0 for NULL.
 * @note A request over HTTP/2 is served by the same router, middleware and
 *       handlers as one over HTTP/1.1: its pseudo-headers become the method
 *       and target, `:authority` is also visible as `Host`, and header
 *       names are lower case (lookups are case-insensitive anyway).
 * @since 0.3
 */
MSVC_API int msvc_http_req_version(const msvc_http_req_t *req);

/**
 * @brief Adds a trailer field, sent after the body.
 *
 * Over HTTP/2 the trailers go out in a HEADERS frame that ends the stream,
 * after the last DATA frame (what gRPC needs for `grpc-status`). A response
 * with trailers and no body (msvc_http_res_send() with an empty body, or
 * msvc_http_res_start() then msvc_http_res_end()) still sends its head and
 * then its trailers. Over HTTP/1.1 they end a chunked (streamed) response;
 * on a response with a Content-Length, or over HTTP/1.0, they are dropped.
 * @param res    The response; trailers may be added until it ends.
 * @param name   Field name (a token; not Content-Length, Transfer-Encoding,
 *               Connection or a pseudo-header); copied.
 * @param value  Field value without CR or LF; copied.
 * @return #MSVC_OK, MSVC_EINVAL for a bad name or value,
 *         MSVC_EHTTP_RESPONDED once the response has ended, MSVC_ELIMIT
 *         beyond 64 KiB of trailers, MSVC_ENOMEM.
 * @note Loop thread only.
 * @since 0.3
 */
MSVC_API int msvc_http_res_trailer(msvc_http_res_t *res, const char *name,
                                   const char *value);

/**
 * @brief Bytes written to a streamed response that have not yet gone to
 *        the connection.
 *
 * Over HTTP/2 a stream's body waits for the peer's flow-control window; a
 * handler producing a long stream should stop writing while this grows
 * beyond what it wants to hold and continue from a timer or its next event.
 * Over HTTP/1.1 output goes straight to the connection and this returns 0.
 * @param res  The response.
 * @return The number of bytes held back; 0 for NULL.
 * @since 0.3
 */
MSVC_API size_t msvc_http_res_pending(const msvc_http_res_t *res);

/* ---- worker loops ------------------------------------------------------- */

/** @brief A group of threads, each with its own loop and server on one port. */
typedef struct msvc_http_workers_s msvc_http_workers_t;

/**
 * @brief Sets up one worker's server (routes, middleware); runs on that
 *        worker's thread.
 * @param srv    The worker's server, not yet listening.
 * @param index  Worker number, 0 to n-1.
 * @param data   The pointer given to msvc_http_workers_start().
 * @return #MSVC_OK or an error code (start-up then fails).
 */
typedef int (*msvc_http_worker_setup_fn)(msvc_http_server_t *srv, unsigned index,
                                         void *data);

/**
 * @brief Start n threads, each with a private loop and a server listening on
 *        the same host and port with SO_REUSEPORT.
 *
 * Worker 0 binds first (so port 0 picks one free port that the others then
 * share). Returns once every worker listens or one failed.
 *
 * @param n      Number of workers, 1 to 256.
 * @param host   Address literal.
 * @param port   Port, or 0 for any free port.
 * @param opts   Server options (copied; reuseport is forced on), or NULL.
 * @param setup  Called on each worker thread before it listens.
 * @param data   Passed to setup; must be safe to use from every worker.
 * @param out    Receives the group.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, or the first worker's error.
 * @note Stop and free with msvc_http_workers_stop().
 * @since 0.1
 */
MSVC_API int msvc_http_workers_start(unsigned n, const char *host, int port,
                                     const msvc_http_server_opts_t *opts,
                                     msvc_http_worker_setup_fn setup, void *data,
                                     msvc_http_workers_t **out);

/**
 * @brief Releases what a worker's setup attached to its loop; runs on that
 *        worker's thread.
 *
 * Called once per worker whose thread started, after its server has closed
 * (or failed to start, setup included) and before the worker runs its loop
 * for the last time: handles closed here are released before the loop is
 * closed, so the worker ends without leaks.
 *
 * @param loop   The worker's loop (still open).
 * @param index  Worker number, 0 to n-1.
 * @param data   The pointer given to msvc_http_workers_start_ex().
 * @since 0.2
 */
typedef void (*msvc_http_worker_teardown_fn)(uv_loop_t *loop, unsigned index,
                                             void *data);

/**
 * @brief msvc_http_workers_start() with a teardown hook: for setups that
 *        attach per-loop state (timers, clients, caches) to each worker.
 *
 * @param n         Number of workers, 1 to 256.
 * @param host      Address literal.
 * @param port      Port, or 0 for any free port.
 * @param opts      Server options (copied; reuseport is forced on), or NULL.
 * @param setup     Called on each worker thread before it listens, or NULL.
 * @param teardown  Called on each worker thread once its server is closed
 *                  (see msvc_http_worker_teardown_fn), or NULL.
 * @param data      Passed to setup and teardown; must be safe to use from
 *                  every worker.
 * @param out       Receives the group.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM, or the first worker's error
 *         (teardown has then run for every worker that started).
 * @note Stop and free with msvc_http_workers_stop(); teardown runs during
 *       that call, on the workers' threads. Thread-safe as far as setup and
 *       teardown are.
 * @since 0.2
 */
MSVC_API int msvc_http_workers_start_ex(unsigned n, const char *host, int port,
                                        const msvc_http_server_opts_t *opts,
                                        msvc_http_worker_setup_fn setup,
                                        msvc_http_worker_teardown_fn teardown,
                                        void *data, msvc_http_workers_t **out);

/**
 * @brief The port every worker listens on.
 * @param w  The group.
 * @return The port.
 * @since 0.1
 */
MSVC_API int msvc_http_workers_port(const msvc_http_workers_t *w);

/**
 * @brief Drain every worker's server (see msvc_http_server_drain()), join the
 *        threads and free the group.
 * @param w           The group, or NULL (a no-op).
 * @param timeout_ms  Drain deadline.
 * @note Blocks the calling thread until every worker has stopped. Call it
 *       from a thread that is not a worker.
 * @since 0.1
 */
MSVC_API void msvc_http_workers_stop(msvc_http_workers_t *w, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_HTTP_H */
