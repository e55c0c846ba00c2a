/**
 * @file msvc/grpc.h
 * @brief gRPC over HTTP/2: status codes, metadata, a server for unary and
 *        server-streaming methods and a client that calls them.
 *
 * Messages are Protocol Buffers handled by protobuf-c: methods are
 * registered with the generated `ProtobufCServiceDescriptor` of a service
 * and its method name, and requests and replies are the generated message
 * structs. libmsvc's header does not include `protobuf-c/protobuf-c.h`; it
 * only names its types, so a program that uses these functions includes its
 * generated `*.pb-c.h` files itself.
 *
 * The functions exist only in a library configured with gRPC (the CMake
 * option `LIBMSVC_WITH_GRPC`, on when protobuf-c, protoc-c, zlib and
 * nghttp2 are found; the configure step prints whether it is). A program
 * that uses them links protobuf-c itself (`libprotobuf-c`) for its
 * generated code.
 *
 * Thread safety: the code and metadata helpers are pure and thread-safe
 * (a metadata list is not shared between threads while it is modified).
 * Servers, clients and calls are bound to one loop and used from its thread.
 */
#ifndef MSVC_GRPC_H
#define MSVC_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/error.h>
#include <msvc/http.h>
#include <msvc/http_client.h>
#include <msvc/metrics.h>
#include <msvc/service.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
struct ProtobufCMessage;
struct ProtobufCServiceDescriptor;
/** @endcond */

/**
 * @brief The gRPC status codes, with the values of the gRPC specification.
 * @since 0.3
 */
typedef enum msvc_grpc_code_e {
  MSVC_GRPC_OK = 0,                   /**< Success. */
  MSVC_GRPC_CANCELLED = 1,            /**< Cancelled by the caller. */
  MSVC_GRPC_UNKNOWN = 2,              /**< An error with no better code. */
  MSVC_GRPC_INVALID_ARGUMENT = 3,     /**< The request is invalid. */
  MSVC_GRPC_DEADLINE_EXCEEDED = 4,    /**< The deadline passed. */
  MSVC_GRPC_NOT_FOUND = 5,            /**< No such entity. */
  MSVC_GRPC_ALREADY_EXISTS = 6,       /**< The entity exists. */
  MSVC_GRPC_PERMISSION_DENIED = 7,    /**< Known caller, not allowed. */
  MSVC_GRPC_RESOURCE_EXHAUSTED = 8,   /**< Overload, quota, size limit. */
  MSVC_GRPC_FAILED_PRECONDITION = 9,  /**< The system is not in the state required. */
  MSVC_GRPC_ABORTED = 10,             /**< Aborted, e.g. by a conflict. */
  MSVC_GRPC_OUT_OF_RANGE = 11,        /**< Past the valid range. */
  MSVC_GRPC_UNIMPLEMENTED = 12,       /**< No such method. */
  MSVC_GRPC_INTERNAL = 13,            /**< An invariant broke. */
  MSVC_GRPC_UNAVAILABLE = 14,         /**< Try again later (maybe elsewhere). */
  MSVC_GRPC_DATA_LOSS = 15,           /**< Unrecoverable data loss. */
  MSVC_GRPC_UNAUTHENTICATED = 16      /**< No valid credentials. */
} msvc_grpc_code_t;

/** @brief Default largest message a server or client accepts (4 MiB, as
 *         other gRPC implementations). @since 0.3 */
#define MSVC_GRPC_DEFAULT_MAX_RECV (4u * 1024u * 1024u)
/** @brief Default largest message a server or client sends. @since 0.3 */
#define MSVC_GRPC_DEFAULT_MAX_SEND (4u * 1024u * 1024u)

/**
 * @brief The name of a status code as the specification spells it.
 * @param code  A status code.
 * @return "OK", "UNAVAILABLE", ...; "UNKNOWN" for a value out of range.
 *         Static, never NULL. Thread-safe.
 * @since 0.3
 */
MSVC_API const char *msvc_grpc_code_name(int code);

/**
 * @brief The status code that reports a libmsvc error to a gRPC peer.
 *
 * The table is in docs/grpc.md: no endpoints, open breakers and refused or
 * reset connections give UNAVAILABLE; timeouts DEADLINE_EXCEEDED; a full
 * worker queue, a reached limit or a message over the size limit
 * RESOURCE_EXHAUSTED; cancellation CANCELLED; draining UNAVAILABLE; a
 * malformed message INTERNAL; anything else UNKNOWN.
 *
 * @param err  #MSVC_OK or a negative libmsvc / libuv code.
 * @return The code (#MSVC_GRPC_OK for #MSVC_OK). Thread-safe.
 * @since 0.3
 */
MSVC_API msvc_grpc_code_t msvc_grpc_code_from_error(int err);

/**
 * @brief The status code of a response that was not a gRPC response, from
 *        its HTTP status, as the gRPC specification maps them.
 *
 * 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
 * UNIMPLEMENTED, 429 / 502 / 503 / 504 UNAVAILABLE, anything else UNKNOWN.
 *
 * @param status  An HTTP status code.
 * @return The code. Thread-safe.
 * @since 0.3
 */
MSVC_API msvc_grpc_code_t msvc_grpc_code_from_http(int status);

/* ---- metadata ------------------------------------------------------------------------ */

/** @brief An ordered list of metadata entries (header or trailer pairs). */
typedef struct msvc_grpc_metadata_s msvc_grpc_metadata_t;

/**
 * @brief Make an empty metadata list.
 * @param out  Receives the list; free it with msvc_grpc_metadata_free().
 * @return #MSVC_OK, MSVC_EINVAL for NULL out, MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_metadata_new(msvc_grpc_metadata_t **out);

/**
 * @brief Release a metadata list.
 * @param md  The list, or NULL (a no-op).
 * @since 0.3
 */
MSVC_API void msvc_grpc_metadata_free(msvc_grpc_metadata_t *md);

/**
 * @brief Add an entry.
 *
 * Keys are lower-cased and must be made of `0-9 a-z _ - .`; keys starting
 * with `grpc-` are reserved and refused. A key ending in `-bin` carries
 * binary bytes (sent base64-encoded, received decoded); any other key's
 * value must be printable ASCII (0x20..0x7e).
 *
 * @param md     The list.
 * @param key    The key (copied).
 * @param value  The value bytes (copied).
 * @param len    Their length.
 * @return #MSVC_OK; MSVC_EINVAL for a bad key or value; MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_metadata_add(msvc_grpc_metadata_t *md, const char *key,
                                    const void *value, size_t len);

/**
 * @brief The number of entries.
 * @param md  The list, or NULL (0).
 * @return The count.
 * @since 0.3
 */
MSVC_API size_t msvc_grpc_metadata_count(const msvc_grpc_metadata_t *md);

/**
 * @brief The first value of a key.
 * @param md   The list, or NULL.
 * @param key  The key (case-insensitive).
 * @param len  Receives the value's length, or NULL.
 * @return The value (NUL-terminated; a `-bin` value is the decoded bytes,
 *         which may hold NULs), borrowed until the list changes or is
 *         freed; NULL when absent.
 * @since 0.3
 */
MSVC_API const char *msvc_grpc_metadata_get(const msvc_grpc_metadata_t *md, const char *key,
                                            size_t *len);

/**
 * @brief The entry at a position.
 * @param md     The list.
 * @param i      0 .. count - 1.
 * @param key    Receives the key (borrowed like msvc_grpc_metadata_get()'s value).
 * @param value  Receives the value.
 * @param len    Receives the value's length.
 * @return #MSVC_OK, or MSVC_ERANGE past the end.
 * @since 0.3
 */
MSVC_API int msvc_grpc_metadata_at(const msvc_grpc_metadata_t *md, size_t i, const char **key,
                                   const char **value, size_t *len);

/* ---- server ------------------------------------------------------------------------------- */

/** @brief A set of gRPC methods, served through one or more HTTP servers. */
typedef struct msvc_grpc_server_s msvc_grpc_server_t;
/** @brief One incoming call, from its request until msvc_grpc_call_finish(). */
typedef struct msvc_grpc_call_s msvc_grpc_call_t;

/** @brief Server options; fill with msvc_grpc_server_opts_init(). */
typedef struct msvc_grpc_server_opts_s {
  size_t size;     /**< sizeof(msvc_grpc_server_opts_t), set by the init. */
  size_t max_recv; /**< Largest request message (decompressed);
                        #MSVC_GRPC_DEFAULT_MAX_RECV. Beyond it the call ends
                        with RESOURCE_EXHAUSTED. The HTTP server's
                        `max_body_bytes` (1 MiB by default) bounds the
                        request body first: raise it for larger messages. */
  size_t max_send; /**< Largest reply message; #MSVC_GRPC_DEFAULT_MAX_SEND. */
  bool gzip;       /**< Compress replies with gzip when the client accepts
                        it (`grpc-accept-encoding`); true. */
  uint32_t route_flags; /**< Flags of the routes msvc_grpc_server_mount_service()
                        adds, e.g. #MSVC_HTTP_ROUTE_AUTH so that every call
                        needs a valid bearer token in its `authorization`
                        metadata (a call without one ends UNAUTHENTICATED);
                        0. The health service's routes never take them. */
  msvc_metrics_registry_t *metrics; /**< Where the counter
                        `msvc_grpc_server_handled_total{service,method,code}`
                        goes; NULL: the service's registry with
                        msvc_grpc_server_mount_service(), none with
                        msvc_grpc_server_mount(). Borrowed. */
} msvc_grpc_server_opts_t;

/**
 * @brief A method handler.
 *
 * Called on the loop that received the call, once its request message has
 * been read. The handler (now or later) answers with msvc_grpc_call_reply()
 * (unary), or msvc_grpc_call_send() any number of times then
 * msvc_grpc_call_finish() (server streaming), or msvc_grpc_call_finish()
 * with an error code.
 *
 * @param call  The call; valid until it is finished.
 * @param req   The request message, of the method's input type (cast it to
 *              the generated struct); owned by the call.
 * @param data  The pointer given at registration.
 */
typedef void (*msvc_grpc_handler_fn)(msvc_grpc_call_t *call,
                                     const struct ProtobufCMessage *req, void *data);

/**
 * @brief Told that a call was cut short: the client cancelled it (or went
 *        away), or its deadline passed.
 *
 * The client has already been answered (for a deadline, with
 * DEADLINE_EXCEEDED); further sends fail with MSVC_ECANCELED. The handler
 * must still call msvc_grpc_call_finish() to release the call (now or when
 * its pending work completes).
 *
 * @param call  The call.
 * @param code  MSVC_GRPC_CANCELLED or MSVC_GRPC_DEADLINE_EXCEEDED.
 * @param data  The pointer given to msvc_grpc_call_on_cancel().
 */
typedef void (*msvc_grpc_cancel_fn)(msvc_grpc_call_t *call, int code, void *data);

/**
 * @brief Fill server options with their defaults.
 * @param opts  Options to fill; NULL is a no-op.
 * @since 0.3
 */
MSVC_API void msvc_grpc_server_opts_init(msvc_grpc_server_opts_t *opts);

/**
 * @brief Make an empty server (no methods yet).
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the server; free it with msvc_grpc_server_free()
 *              after every HTTP server it is mounted on has closed.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_new(const msvc_grpc_server_opts_t *opts,
                                  msvc_grpc_server_t **out);

/**
 * @brief Release a server.
 * @param srv  The server, or NULL (a no-op).
 * @note Call once the HTTP servers it was mounted on have closed (so no
 *       call is in flight), from the loop thread.
 * @since 0.3
 */
MSVC_API void msvc_grpc_server_free(msvc_grpc_server_t *srv);

/**
 * @brief Register a unary method.
 * @param srv     The server, not yet mounted.
 * @param svc     The generated service descriptor (e.g.
 *                `orders__v1__orders__descriptor`); borrowed for the
 *                server's lifetime (generated descriptors are static).
 * @param method  The method's name in the .proto, e.g. "GetOrder".
 * @param fn      The handler.
 * @param data    Passed to fn; borrowed.
 * @return #MSVC_OK; MSVC_EINVAL (NULL argument or not a service
 *         descriptor); MSVC_ENOTFOUND (no such method); MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_unary(msvc_grpc_server_t *srv,
                                    const struct ProtobufCServiceDescriptor *svc,
                                    const char *method, msvc_grpc_handler_fn fn, void *data);

/**
 * @brief Register a server-streaming method (one request, many replies).
 * @param srv     The server, not yet mounted.
 * @param svc     The generated service descriptor; borrowed.
 * @param method  The method's name.
 * @param fn      The handler.
 * @param data    Passed to fn; borrowed.
 * @return As msvc_grpc_server_unary().
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_stream(msvc_grpc_server_t *srv,
                                     const struct ProtobufCServiceDescriptor *svc,
                                     const char *method, msvc_grpc_handler_fn fn, void *data);

/** @brief Serving status of the health service (grpc.health.v1). */
typedef enum msvc_grpc_serving_e {
  MSVC_GRPC_SERVING_UNKNOWN = 0,        /**< Not known yet. */
  MSVC_GRPC_SERVING = 1,                /**< Ready for calls. */
  MSVC_GRPC_NOT_SERVING = 2,            /**< Not ready (starting, draining). */
  MSVC_GRPC_SERVICE_UNKNOWN = 3         /**< No such service name. */
} msvc_grpc_serving_t;

/**
 * @brief Tells the health service the status of a service name.
 * @param service  The name asked about ("" for the whole server).
 * @param data     The pointer given to msvc_grpc_server_health().
 * @return Its status.
 */
typedef msvc_grpc_serving_t (*msvc_grpc_health_fn)(const char *service, void *data);

/**
 * @brief Serve the standard health service `grpc.health.v1.Health`.
 *
 * `Check` answers with fn's status (NOT_FOUND for #MSVC_GRPC_SERVICE_UNKNOWN);
 * `Watch` sends the status at once and again whenever it changes (looked at
 * every 250 ms) until the client cancels. msvc_grpc_server_mount_service()
 * calls this with the service's readiness unless it was called before.
 *
 * @param srv   The server, not yet mounted.
 * @param fn    Status of a name.
 * @param data  Passed to fn; borrowed.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn fn,
                                     void *data);

/**
 * @brief Serve the registered methods through an HTTP server: each becomes
 *        the route `POST /<package>.<Service>/<Method>`.
 *
 * gRPC needs HTTP/2: the server must have it on (the default). The HTTP
 * server's middleware runs for gRPC calls as for any request.
 *
 * @param srv   The gRPC server.
 * @param http  The HTTP server, before it listens.
 * @return #MSVC_OK, MSVC_EINVAL, or msvc_http_server_route()'s errors.
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_mount(msvc_grpc_server_t *srv, msvc_http_server_t *http);

/**
 * @brief Serve the registered methods through a service (on every worker
 *        loop), with the health service wired to its readiness.
 *
 * Health reports SERVING for "" and for the names of the registered gRPC
 * services while the service is ready (listening and registered), and
 * NOT_SERVING before and while it drains.
 *
 * @param srv  The gRPC server; it must outlive the service.
 * @param svc  The service, not yet started.
 * @return #MSVC_OK, MSVC_EINVAL, or msvc_service_route()'s errors.
 * @since 0.3
 */
MSVC_API int msvc_grpc_server_mount_service(msvc_grpc_server_t *srv,
                                            msvc_service_t *svc);

/**
 * @brief Send one reply message of a server-streaming call (or the one
 *        reply of a unary call, to be followed by msvc_grpc_call_finish()).
 * @param call  The call.
 * @param msg   The message, of the method's output type; packed at once
 *              (borrowed for the call only).
 * @return #MSVC_OK; MSVC_EINVAL (wrong type, finished call); MSVC_ESTATE (a
 *         second reply of a unary call); MSVC_ETOOLARGE (over max_send:
 *         nothing sent); MSVC_ECANCELED (cut short); MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_call_send(msvc_grpc_call_t *call, const struct ProtobufCMessage *msg);

/**
 * @brief Answer a unary call with its reply and status OK, and release it.
 * @param call  The call; released in every case.
 * @param msg   The reply, of the method's output type (borrowed).
 * @return #MSVC_OK, or msvc_grpc_call_send()'s error (the call then ended
 *         with RESOURCE_EXHAUSTED, INTERNAL or the error's code).
 * @since 0.3
 */
MSVC_API int msvc_grpc_call_reply(msvc_grpc_call_t *call, const struct ProtobufCMessage *msg);

/**
 * @brief End a call with a status, and release it.
 * @param call     The call; invalid afterwards.
 * @param code     A #msvc_grpc_code_t. OK for a unary call that sent no
 *                 reply is turned into INTERNAL.
 * @param message  Status message (copied, percent-encoded on the wire), or NULL.
 * @return #MSVC_OK, MSVC_EINVAL (NULL or finished call).
 * @note After a cancellation this only releases the call.
 * @since 0.3
 */
MSVC_API int msvc_grpc_call_finish(msvc_grpc_call_t *call, int code, const char *message);

/**
 * @brief Add response metadata, sent as headers before the first message.
 * @param call   The call, before its first send.
 * @param key    Key (see msvc_grpc_metadata_add()).
 * @param value  Bytes (copied).
 * @param len    Their length.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_EHTTP_RESPONDED (already started), MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_call_header(msvc_grpc_call_t *call, const char *key, const void *value,
                                   size_t len);

/**
 * @brief Add trailing metadata, sent with the status.
 * @param call   The call, not finished.
 * @param key    Key (see msvc_grpc_metadata_add()).
 * @param value  Bytes (copied).
 * @param len    Their length.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @since 0.3
 */
MSVC_API int msvc_grpc_call_trailer(msvc_grpc_call_t *call, const char *key,
                                    const void *value, size_t len);

/**
 * @brief The request metadata (without the protocol's own headers).
 * @param call  The call.
 * @return The list, owned by the call.
 * @since 0.3
 */
MSVC_API const msvc_grpc_metadata_t *msvc_grpc_call_metadata(const msvc_grpc_call_t *call);

/**
 * @brief Be told when the call is cut short (see #msvc_grpc_cancel_fn).
 * @param call  The call.
 * @param fn    Called at most once; NULL removes it.
 * @param data  Passed to fn.
 * @since 0.3
 */
MSVC_API void msvc_grpc_call_on_cancel(msvc_grpc_call_t *call, msvc_grpc_cancel_fn fn,
                                       void *data);

/**
 * @brief Whether the call was cut short.
 * @param call  The call.
 * @return True after a cancellation or a passed deadline.
 * @since 0.3
 */
MSVC_API bool msvc_grpc_call_cancelled(const msvc_grpc_call_t *call);

/**
 * @brief Time left before the caller's deadline (`grpc-timeout`).
 * @param call  The call.
 * @return Milliseconds (0 once passed), or -1 when the caller set none.
 * @since 0.3
 */
MSVC_API int64_t msvc_grpc_call_time_left_ms(const msvc_grpc_call_t *call);

/**
 * @brief The HTTP request carrying the call (for middleware values such as
 *        verified token claims, or as the parent of outgoing calls).
 * @param call  The call.
 * @return The request, or NULL once the call was cut short or answered.
 * @since 0.3
 */
MSVC_API msvc_http_req_t *msvc_grpc_call_http_req(const msvc_grpc_call_t *call);

/**
 * @brief Bytes of sent messages still waiting for the client's HTTP/2
 *        flow-control window.
 *
 * A handler streaming many messages stops sending while this grows beyond
 * what it wants to hold and goes on from a timer or its next event, so a
 * slow client does not make the server buffer the whole stream.
 * @param call  The call.
 * @return The number of bytes held back; 0 for NULL or a call cut short.
 * @since 0.3
 */
MSVC_API size_t msvc_grpc_call_pending(const msvc_grpc_call_t *call);

/**
 * @brief Attach a pointer of the handler's to the call.
 * @param call  The call.
 * @param data  Any pointer (not freed by the call).
 * @since 0.3
 */
MSVC_API void msvc_grpc_call_set_data(msvc_grpc_call_t *call, void *data);

/**
 * @brief The pointer given to msvc_grpc_call_set_data().
 * @param call  The call.
 * @return It, or NULL.
 * @since 0.3
 */
MSVC_API void *msvc_grpc_call_data(const msvc_grpc_call_t *call);

/* ---- client ------------------------------------------------------------------------------- */

/** @brief One outgoing call, until its done callback has returned. */
typedef struct msvc_grpc_client_call_s msvc_grpc_client_call_t;

/**
 * @brief Where a call goes: a service by name (through the service's
 *        discovery, balancer and breakers), or one address.
 *
 * Set either svc and service, or client, loop, host and port.
 */
typedef struct msvc_grpc_target_s {
  msvc_service_t *svc;         /**< The calling service, or NULL. */
  const char *service;         /**< The called service's registered name. */
  msvc_http_client_t *client;  /**< A client for a call to one address, or NULL. */
  uv_loop_t *loop;             /**< The client's loop. */
  const char *host;            /**< Address to call (with client). */
  int port;                    /**< Port to call (with client). */
} msvc_grpc_target_t;

/** @brief Options of one call; fill with msvc_grpc_call_opts_init(). */
typedef struct msvc_grpc_call_opts_s {
  size_t size;          /**< sizeof(msvc_grpc_call_opts_t), set by the init. */
  uint32_t timeout_ms;  /**< Deadline from now, retries included, sent as
                             `grpc-timeout`; 0: 10 s. */
  const msvc_grpc_metadata_t *metadata; /**< Request metadata (copied), or NULL. */
  bool gzip;            /**< Compress the request with gzip; false. Replies
                             may come compressed whatever this says. */
  size_t max_recv;      /**< Largest reply message; #MSVC_GRPC_DEFAULT_MAX_RECV. */
  size_t max_send;      /**< Largest request message; #MSVC_GRPC_DEFAULT_MAX_SEND. */
  uint32_t max_attempts;/**< Attempts of gRPC's retry, 1..5; 3. Only an
                             attempt that ended UNAVAILABLE before any reply
                             message reached the caller is retried, after an
                             exponential backoff with jitter (50 ms doubling,
                             at most 1 s), within the deadline. */
  msvc_http_req_t *parent; /**< The incoming request being served, or NULL.
                             By service name its request id and trace
                             context go on the call, which is cancelled if
                             that request's client goes away, and the call
                             runs on the loop serving it (pass it when
                             calling from a worker loop). When the request
                             is a gRPC call with a deadline, this call's
                             deadline is at most that one (propagation). */
} msvc_grpc_call_opts_t;

/** @brief How a call ended. */
typedef struct msvc_grpc_status_s {
  int code;             /**< A #msvc_grpc_code_t. */
  const char *message;  /**< Status message (decoded); "" when none. */
  const msvc_grpc_metadata_t *headers;  /**< Response metadata; may be empty. */
  const msvc_grpc_metadata_t *trailers; /**< Trailing metadata; may be empty. */
  int err;              /**< The libmsvc error when the code was decided on
                             this side (timeout, no endpoints, breaker open,
                             cancelled...), else #MSVC_OK. */
  uint32_t attempts;    /**< Attempts made. */
} msvc_grpc_status_t;

/**
 * @brief Receives each reply message of a server-streaming call.
 * @param call  The call; may be cancelled from here.
 * @param msg   The message (of the method's output type), valid during the
 *              callback only.
 * @param data  The call's data.
 */
typedef void (*msvc_grpc_message_fn)(msvc_grpc_client_call_t *call,
                                     const struct ProtobufCMessage *msg, void *data);

/**
 * @brief Completion of a call: exactly once, from the loop.
 * @param call   The call; invalid after the callback.
 * @param st     Its status; borrowed for the callback.
 * @param reply  A unary call's reply when st->code is OK, else NULL;
 *               borrowed for the callback.
 * @param data   The call's data.
 */
typedef void (*msvc_grpc_done_fn)(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                                  const struct ProtobufCMessage *reply, void *data);

/**
 * @brief Fill call options with their defaults.
 * @param opts  Options to fill; NULL is a no-op.
 * @since 0.3
 */
MSVC_API void msvc_grpc_call_opts_init(msvc_grpc_call_opts_t *opts);

/**
 * @brief Start a call: unary when on_message is NULL (the reply comes to
 *        on_done), server-streaming otherwise.
 *
 * By service name, every attempt is a call of the service (see
 * msvc_service_call()): it waits for the first endpoint set, picks an
 * endpoint per attempt with the balancer, skips endpoints whose breaker is
 * open, and moves on when a request could not be sent. It fails with
 * UNAVAILABLE when no endpoint is known or every breaker is open, and with
 * DEADLINE_EXCEEDED when the deadline passes.
 *
 * @param target      Where to (copied).
 * @param svc         The generated service descriptor; borrowed for the call.
 * @param method      The method's name.
 * @param req         The request, of the method's input type (packed at once).
 * @param opts        Options (copied), or NULL for the defaults.
 * @param on_message  Each streamed reply, or NULL for a unary call.
 * @param on_done     Completion; required; never called from inside this
 *                    function.
 * @param data        Passed to the callbacks.
 * @param out         Receives the call (for msvc_grpc_client_call_cancel()), or NULL.
 * @return #MSVC_OK; MSVC_EINVAL (bad target, unknown method, request of the
 *         wrong type); MSVC_ETOOLARGE (request over max_send); MSVC_ENOMEM;
 *         or the transport's refusal. On error on_done is never called.
 * @note Loop thread only (the service's main loop or a worker loop serving
 *       a request).
 * @since 0.3
 */
MSVC_API int msvc_grpc_invoke(const msvc_grpc_target_t *target,
                              const struct ProtobufCServiceDescriptor *svc, const char *method,
                              const struct ProtobufCMessage *req,
                              const msvc_grpc_call_opts_t *opts, msvc_grpc_message_fn on_message,
                              msvc_grpc_done_fn on_done, void *data,
                              msvc_grpc_client_call_t **out);

/**
 * @brief Cancel a call: its stream is reset and on_done follows with
 *        CANCELLED.
 * @param call  The call, before its done callback; NULL is a no-op.
 * @since 0.3
 */
MSVC_API void msvc_grpc_client_call_cancel(msvc_grpc_client_call_t *call);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_GRPC_H */
