/**
 * @file msvc/common.h
 * @brief Definitions every libmsvc header shares: the export macro, the
 *        library's free function and the clock type of the pure blocks.
 */
#ifndef MSVC_COMMON_H
#define MSVC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
#if defined(MSVC_BUILDING) && defined(__GNUC__)
#define MSVC_API __attribute__((visibility("default")))
#else
#define MSVC_API
#endif
/** @endcond */

/**
 * @brief Release memory that a libmsvc function handed to the caller.
 *
 * Functions that return a non-const buffer (for example an exposition text or
 * a signed token) say so in their documentation; that buffer belongs to the
 * caller and is released with this function, never with the C library's
 * free() (the library may be built with another allocator).
 *
 * @param ptr  The buffer, or NULL (a no-op).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_free(void *ptr);

/**
 * @brief A clock the pure blocks call for "now".
 *
 * The balancer, breaker, JWT verifier and metrics never read the time
 * themselves on their decision paths: they take it as a parameter or through
 * a clock like this one, so tests can drive time without sleeping.
 *
 * @param data  The pointer registered together with the clock.
 * @return Milliseconds on a monotonic (or, where documented, a wall) clock.
 */
typedef uint64_t (*msvc_clock_fn)(void *data);

/**
 * @brief Milliseconds on the system's monotonic clock.
 * @return CLOCK_MONOTONIC in milliseconds. Thread-safe.
 * @since 0.1
 */
MSVC_API uint64_t msvc_now_ms(void);

/**
 * @brief Milliseconds since the Unix epoch (wall clock).
 * @return CLOCK_REALTIME in milliseconds. Thread-safe.
 * @since 0.1
 */
MSVC_API uint64_t msvc_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_COMMON_H */
