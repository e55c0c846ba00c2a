/**
 * @file msvc/error.h
 * @brief Error codes shared by every libmsvc block.
 *
 * Every function that can fail returns an `int`: #MSVC_OK (0) on success or
 * a negative code. Two kinds of codes exist:
 *
 * - System and I/O errors are passed through unchanged as negated `errno`
 *   values, exactly as libuv reports them (on Unix `UV_ECONNREFUSED ==
 *   -ECONNREFUSED`), so a code from libuv and a code from libmsvc can be
 *   compared and printed the same way. The most common ones have names here
 *   (MSVC_ENOMEM, MSVC_EINVAL, ...).
 * - libmsvc's own codes live in a reserved range, -30000 to -31999, one
 *   hundred codes per block. They are listed once, in #MSVC_ERROR_MAP, from
 *   which the enum, msvc_strerror() and msvc_err_name() are generated.
 */
#ifndef MSVC_ERROR_H
#define MSVC_ERROR_H

#include <errno.h>
#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Size of a buffer that holds any error message libmsvc writes, in
 *        full, with its terminating NUL.
 *
 * Functions that explain a failure in a caller's buffer (`char *err,
 * size_t errlen`: msvc_service_new(), msvc_tls_config_new(),
 * msvc_log_configure_from_env(), ...) always terminate it and cut a message
 * that does not fit; with a buffer of this size nothing is cut (only a
 * message quoting file paths of several hundred bytes reaches the limit,
 * and it is cut there).
 *
 * @code
 * char err[MSVC_ERRMSG_MAX];
 * if (msvc_service_new(loop, "greeter", NULL, &svc, err, sizeof(err)) != MSVC_OK)
 *   fprintf(stderr, "%s\n", err);
 * @endcode
 * @since 0.2
 */
#define MSVC_ERRMSG_MAX 512

/**
 * @brief System errors that libmsvc's own functions return, by name.
 *
 * XX(name, value, message). Each is the negated errno value, which is also
 * libuv's code for the same condition on Unix.
 */
#define MSVC_SYS_ERROR_MAP(XX)                                                \
  XX(ENOMEM, -ENOMEM, "out of memory")                                        \
  XX(EINVAL, -EINVAL, "invalid argument")                                     \
  XX(ENOENT, -ENOENT, "no such file or directory")                            \
  XX(EEXIST, -EEXIST, "already exists")                                       \
  XX(EACCES, -EACCES, "permission denied")                                    \
  XX(EIO, -EIO, "i/o error")                                                  \
  XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                     \
  XX(EBUSY, -EBUSY, "resource busy")                                          \
  XX(ENOSPC, -ENOSPC, "no space left on device")                              \
  XX(EMFILE, -EMFILE, "too many open files")                                  \
  XX(ERANGE, -ERANGE, "result out of range")                                  \
  XX(ENOTSUP, -ENOTSUP, "operation not supported")                            \
  XX(ECANCELED, -ECANCELED, "operation canceled")                             \
  XX(ETIMEDOUT, -ETIMEDOUT, "connection timed out")                           \
  XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                       \
  XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                     \
  XX(ECONNABORTED, -ECONNABORTED, "software caused connection abort")         \
  XX(EPIPE, -EPIPE, "broken pipe")                                            \
  XX(EADDRINUSE, -EADDRINUSE, "address already in use")                       \
  XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                  \
  XX(ENOTCONN, -ENOTCONN, "socket is not connected")                          \
  XX(EPROTO, -EPROTO, "protocol error")                                       \
  XX(EMSGSIZE, -EMSGSIZE, "message too long")                                 \
  XX(EOVERFLOW, -EOVERFLOW, "value too large for defined data type")

/**
 * @brief libmsvc's own error codes: XX(name, value, message).
 *
 * Ranges: core -30000, http server -30100, http client -30200, metrics
 * -30300, jwt -30400, balancer -30500, breaker -30600, registry -30700,
 * service -30800, tls -30900, work -31000, events -31100. A code's value
 * never changes
 * once released.
 */
#define MSVC_ERROR_MAP(XX)                                                    \
  /* core */                                                                  \
  XX(EUNKNOWN, -30000, "unknown error")                                       \
  XX(ESTATE, -30001, "operation not valid in the object's current state")     \
  XX(ENOTFOUND, -30002, "not found")                                          \
  XX(ELIMIT, -30003, "configured limit reached")                              \
  XX(ECONFIG, -30004, "invalid configuration value")                          \
  XX(EJSON, -30005, "malformed JSON")                                         \
  XX(ECLOSED, -30006, "object is closing or closed")                          \
  XX(ETOOLARGE, -30007, "input larger than the configured maximum")           \
  XX(EURI, -30008, "malformed URI")                                           \
  /* http server */                                                           \
  XX(EHTTP_PARSE, -30100, "malformed HTTP message")                           \
  XX(EHTTP_HEADERS_TOO_LARGE, -30101, "HTTP headers too large or too many")   \
  XX(EHTTP_BODY_TOO_LARGE, -30102, "HTTP body too large")                     \
  XX(EHTTP_ROUTE, -30103, "invalid or conflicting route pattern")             \
  XX(EHTTP_RESPONDED, -30104, "response already started")                     \
  XX(EHTTP_SHUTTING_DOWN, -30105, "server is draining for shutdown")          \
  /* http client */                                                           \
  XX(EHTTP_BAD_RESPONSE, -30200, "malformed HTTP response")                   \
  XX(EHTTP_DNS, -30201, "host name could not be resolved")                    \
  XX(EHTTP_POOL_FULL, -30202, "connection pool queue is full")                \
  XX(ERETRY_BUDGET, -30203, "retry budget exhausted")                         \
  /* metrics */                                                               \
  XX(EMETRIC_NAME, -30300, "invalid metric or label name")                    \
  XX(EMETRIC_MISMATCH, -30301, "metric exists with another type or labels")   \
  XX(EMETRIC_CARDINALITY, -30302, "metric series limit reached")              \
  XX(EMETRIC_LABELS, -30303, "wrong number of label values")                  \
  /* jwt */                                                                   \
  XX(EJWT_MALFORMED, -30400, "token is malformed")                            \
  XX(EJWT_EXPIRED, -30401, "token has expired")                               \
  XX(EJWT_NOT_YET_VALID, -30402, "token is not yet valid")                    \
  XX(EJWT_BAD_SIGNATURE, -30403, "token signature is invalid")                \
  XX(EJWT_BAD_ISSUER, -30404, "token issuer is not accepted")                 \
  XX(EJWT_BAD_AUDIENCE, -30405, "token audience is not accepted")             \
  XX(EJWT_UNKNOWN_KID, -30406, "no key matches the token's key id")           \
  XX(EJWT_ALG_NOT_ALLOWED, -30407, "token algorithm is not allowed")          \
  XX(EJWT_MISSING_CLAIM, -30408, "a required claim is missing")               \
  XX(EJWT_BAD_KEY, -30409, "key is invalid or unusable")                      \
  XX(EJWT_TOO_OLD, -30410, "token is older than the maximum age")             \
  XX(EJWT_BAD_TYPE, -30411, "token type is not accepted")                     \
  XX(EJWT_MISSING_EXP, -30412, "token has no expiry (\"exp\") claim")          \
  /* balancer */                                                              \
  XX(ENO_ENDPOINTS, -30500, "no endpoints available")                         \
  XX(ETICKET, -30501, "ticket is invalid or already returned")                \
  /* breaker */                                                               \
  XX(EBREAKER_OPEN, -30600, "circuit breaker is open")                        \
  XX(EBREAKER_PERMIT, -30601, "breaker permit is invalid or already used")    \
  /* registry */                                                              \
  XX(EREGISTRY_UNAVAILABLE, -30700, "registry backend unavailable")           \
  XX(EREGISTRY_STALE, -30701, "registry data is stale")                       \
  /* service */                                                               \
  XX(EUPSTREAM_UNAVAILABLE, -30800, "upstream service unavailable")           \
  XX(EUPSTREAM_TIMEOUT, -30801, "upstream service timed out")                 \
  /* tls */                                                                   \
  XX(ETLS, -30900, "TLS failure")                                             \
  XX(ETLS_CERT, -30901, "certificate verification failed")                   \
  XX(ETLS_FILE, -30902, "cannot load certificate or key")                     \
  XX(ETLS_TIMEOUT, -30903, "TLS handshake timed out")                       \
  /* work */                                                                  \
  XX(EWORK_FULL, -31000, "worker pool queue is full")                         \
  /* events */                                                                \
  XX(EEVENTS_UNAVAILABLE, -31100, "event broker unavailable")                 \
  XX(EEVENTS_NO_STREAM, -31101, "no stream holds the subject")                \
  XX(EEVENTS_ENVELOPE, -31102, "malformed CloudEvents envelope")              \
  XX(EEVENTS_BUSY, -31103, "too many publishes awaiting acknowledgement")     \
  XX(EEVENTS_BROKER, -31104, "event broker refused the request")

/** @brief Every error code libmsvc returns by name. */
typedef enum msvc_error_e {
  MSVC_OK = 0, /**< Success. */
/** @cond INTERNAL */
#define MSVC__ERR_ENUM(name, value, msg) MSVC_##name = (value),
  MSVC_SYS_ERROR_MAP(MSVC__ERR_ENUM)
  MSVC_ERROR_MAP(MSVC__ERR_ENUM)
#undef MSVC__ERR_ENUM
/** @endcond */
} msvc_error_t;

/**
 * @brief A human-readable message for an error code.
 *
 * Knows every code in #MSVC_ERROR_MAP and #MSVC_SYS_ERROR_MAP; any other
 * negated errno value is described by the C library; anything else gives
 * "unrecognised error code".
 *
 * @param err  A code returned by a libmsvc (or libuv) function.
 * @return A static string; never NULL, never to be freed. Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_strerror(int err);

/**
 * @brief The symbolic name of an error code, such as "EBREAKER_OPEN".
 *
 * @param err  A code returned by a libmsvc (or libuv) function.
 * @return A static string: "OK" for 0, the code's name without the `MSVC_`
 *         prefix, or "UNKNOWN" for a code this version does not know.
 *         Never NULL, never to be freed. Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_ERROR_H */
