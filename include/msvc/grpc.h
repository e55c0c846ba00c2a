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
 * Built only when the library was configured with gRPC (the CMake option
 * `LIBMSVC_WITH_GRPC`, on when protobuf-c, zlib and nghttp2 are found);
 * `MSVC_HAVE_GRPC` is then defined by `msvc/version.h`'s users through the
 * build system, and this header exists in the installed tree.
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

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
struct ProtobufCMessage;
struct ProtobufCServiceDescriptor;
struct msvc_registry_s;
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

#ifdef __cplusplus
}
#endif
#endif /* MSVC_GRPC_H */
