/**
 * @file msvc/log.h
 * @brief Leveled, structured logging: text or JSON lines to a pluggable sink.
 *
 * libmsvc logs through one process-wide logger. It has a level, a format
 * (human-readable text or one JSON object per line) and a sink, the function
 * that receives each finished line (stderr by default). Services configure it
 * from `MSVC_LOG_LEVEL` and `MSVC_LOG_FORMAT`; tests install their own sink
 * to capture lines and call msvc_log_reset() to go back to the defaults.
 *
 * A line carries a level, a component (the block or program that wrote it,
 * e.g. "http" or "registry"), a message and optional key/value fields:
 *
 *     2026-11-26T10:00:00.123Z INFO  registry: registered id=a1b2 service=users
 *     {"ts":"2026-11-26T10:00:00.123Z","level":"info","component":"registry",
 *      "msg":"registered","id":"a1b2","service":"users"}
 *
 * Thread safety: every function here may be called from any thread. The
 * configuration is read atomically on every call; a sink may be called from
 * several threads at once and must be thread-safe itself (the default sink
 * writes each line with a single write(2)).
 */
#ifndef MSVC_LOG_H
#define MSVC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Severity of a log line; a logger drops lines below its level. */
typedef enum msvc_log_level_e {
  MSVC_LOG_TRACE = 0, /**< Very detailed tracing, per byte or per event. */
  MSVC_LOG_DEBUG = 1, /**< Diagnostics for developers. */
  MSVC_LOG_INFO = 2,  /**< Normal operation worth recording (the default). */
  MSVC_LOG_WARN = 3,  /**< Something unexpected that was handled. */
  MSVC_LOG_ERROR = 4, /**< An operation failed. */
  MSVC_LOG_OFF = 5    /**< As a level: log nothing. */
} msvc_log_level_t;

/** @brief How a line is rendered. */
typedef enum msvc_log_format_e {
  MSVC_LOG_FORMAT_TEXT = 0, /**< `time LEVEL component: message k=v ...` */
  MSVC_LOG_FORMAT_JSON = 1  /**< One JSON object per line. */
} msvc_log_format_t;

/** @brief One key/value field of a structured line. Both are borrowed. */
typedef struct msvc_log_field_s {
  const char *key;   /**< Field name; should be a plain identifier. */
  const char *value; /**< Field value; any UTF-8 text, escaped as needed. */
} msvc_log_field_t;

/**
 * @brief Receives each rendered line.
 * @param data   The pointer given to msvc_log_set_sink().
 * @param level  The line's level.
 * @param line   The rendered line, ending in '\\n', NUL-terminated; valid
 *               only during the call.
 * @param len    Length of @p line without the NUL.
 */
typedef void (*msvc_log_sink_fn)(void *data, msvc_log_level_t level,
                                 const char *line, size_t len);

/**
 * @brief Set the lowest level that is logged.
 * @param level  The new level; #MSVC_LOG_OFF silences the logger.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_log_set_level(msvc_log_level_t level);

/**
 * @brief The current level.
 * @return The lowest level that is logged. Thread-safe.
 * @since 0.1
 */
MSVC_API msvc_log_level_t msvc_log_get_level(void);

/**
 * @brief Choose text or JSON lines.
 * @param format  The new format.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_log_set_format(msvc_log_format_t format);

/**
 * @brief Send lines to @p sink instead of stderr.
 * @param sink  The new sink, or NULL for the default (stderr).
 * @param data  Passed to every call of @p sink; borrowed until the sink is
 *              replaced or msvc_log_reset() is called.
 * @note Thread-safe. A line being written by another thread while the sink
 *       is replaced may still reach the previous sink.
 * @since 0.1
 */
MSVC_API void msvc_log_set_sink(msvc_log_sink_fn sink, void *data);

/**
 * @brief Restore the defaults: level info, text format, stderr sink.
 * @note Thread-safe. Meant for tests and for embedding applications that
 *       take the logger over and give it back.
 * @since 0.1
 */
MSVC_API void msvc_log_reset(void);

/**
 * @brief Configure level and format from `MSVC_LOG_LEVEL` and
 *        `MSVC_LOG_FORMAT`.
 *
 * Unset variables leave the current setting. On a bad value nothing is
 * changed and, when @p err is not NULL, a one-line message naming the
 * variable and the accepted values is written into it.
 *
 * @param err     Buffer for the error message, or NULL.
 * @param errlen  Size of @p err in bytes.
 * @return #MSVC_OK, or MSVC_ECONFIG on a bad value.
 * @note Thread-safe, but reads the environment, which other threads must not
 *       modify at the same time (a getenv() rule).
 * @since 0.1
 */
MSVC_API int msvc_log_configure_from_env(char *err, size_t errlen);

/**
 * @brief Parse a level name: trace, debug, info, warn (or warning), error, off.
 * @param name   The name, case-insensitive.
 * @param level  Receives the level on success.
 * @return #MSVC_OK, or MSVC_EINVAL for NULL or an unknown name.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_log_level_parse(const char *name, msvc_log_level_t *level);

/**
 * @brief The lower-case name of a level ("info", ...).
 * @param level  A level.
 * @return A static string; "unknown" for a value outside the enum.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_log_level_name(msvc_log_level_t level);

/**
 * @brief Whether a line at @p level would be written.
 *
 * Lets a caller skip building expensive arguments.
 *
 * @param level  The level the caller wants to log at.
 * @return true when @p level is at or above the current level.
 * @note Thread-safe; one relaxed atomic load.
 * @since 0.1
 */
MSVC_API bool msvc_log_enabled(msvc_log_level_t level);

/**
 * @brief Write one line with printf-style message and structured fields.
 *
 * Lines longer than 8 KiB are truncated, marked with "..." and still end in
 * a newline. Nothing is allocated on the heap.
 *
 * @param level      The line's level.
 * @param component  Who is logging ("http", "user-service", ...); NULL is
 *                   written as "-".
 * @param fields     Key/value fields, or NULL; borrowed for the call.
 * @param nfields    Number of entries in @p fields.
 * @param fmt        printf format of the message.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_log_write(msvc_log_level_t level, const char *component,
                             const msvc_log_field_t *fields, size_t nfields,
                             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/**
 * @brief msvc_log_write() taking a va_list.
 * @param level      The line's level.
 * @param component  Who is logging; NULL is written as "-".
 * @param fields     Key/value fields, or NULL; borrowed for the call.
 * @param nfields    Number of entries in @p fields.
 * @param fmt        printf format of the message.
 * @param ap         The message's arguments.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_log_writev(msvc_log_level_t level, const char *component,
                              const msvc_log_field_t *fields, size_t nfields,
                              const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 0)))
#endif
    ;

/** @brief Log at error level with no fields: MSVC_LOG_E("http", "fmt", ...). */
#define MSVC_LOG_E(component, ...) \
  msvc_log_write(MSVC_LOG_ERROR, (component), NULL, 0, __VA_ARGS__)
/** @brief Log at warn level with no fields. */
#define MSVC_LOG_W(component, ...) \
  msvc_log_write(MSVC_LOG_WARN, (component), NULL, 0, __VA_ARGS__)
/** @brief Log at info level with no fields. */
#define MSVC_LOG_I(component, ...) \
  msvc_log_write(MSVC_LOG_INFO, (component), NULL, 0, __VA_ARGS__)
/** @brief Log at debug level with no fields; skips argument evaluation when
 *         debug is off. */
#define MSVC_LOG_D(component, ...)                                    \
  do {                                                                \
    if (msvc_log_enabled(MSVC_LOG_DEBUG))                             \
      msvc_log_write(MSVC_LOG_DEBUG, (component), NULL, 0, __VA_ARGS__); \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif /* MSVC_LOG_H */
