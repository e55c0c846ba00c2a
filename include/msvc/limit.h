/**
 * @file msvc/limit.h
 * @brief Rate limits (token buckets keyed by a string) and an adaptive
 *        concurrency limit that learns how much a service can take from its
 *        own latency.
 *
 * Both are pure objects: no loop, no I/O, thread-safe, and the time is
 * passed in (`now_ms`, milliseconds on a monotonic clock such as
 * msvc_now_ms()), so tests drive them without sleeping. The HTTP
 * middleware built on them lives in msvc/middleware.h.
 *
 * **Token buckets.** A rate limiter holds one bucket per key (a client
 * address, an account, a route, ...). A bucket holds up to `burst` tokens
 * and gains `rate` tokens every `period_ms`; a request takes one token (or
 * `cost`) and is refused when there are not enough. The arithmetic is
 * exact: tokens are counted in integer units of 1 / (period_ms x share)
 * token, so no rounding error accumulates, whatever the rate.
 *
 * Key memory is bounded: the table holds at most `max_keys` buckets,
 * spread over lock-striped shards. When a shard is full the bucket
 * evicted is, among those a clock hand passes (second chance for recently
 * used ones), one that has refilled (forgetting a full bucket loses
 * nothing); only when none has does a partly used bucket go, and such
 * losses are counted
 * (msvc_limit_rate_stats()). A client rotating through a million keys
 * therefore costs a fixed amount of memory.
 *
 * **Cluster share.** A limit declared for a whole service is enforced by
 * each of its `n` instances as `rate / n` with a burst of `burst / n` (at
 * least one token): msvc_limit_rate_set_share() changes `n` at any time,
 * keeping each bucket's fill ratio. See docs/limits.md for the error
 * bound while instances come and go.
 *
 * **Adaptive concurrency.** msvc_limit_adaptive_acquire() lets a request in
 * while fewer than `limit` are in flight; msvc_limit_adaptive_release()
 * reports its latency. Once per window the limit is recomputed: when the
 * window's mean latency exceeds `tolerance` times the no-load latency (a
 * slowly rising low mark of past windows) three windows in a row, or in a
 * window that shed requests, the limit becomes the most requests that were
 * in flight in the window (or the limit, if lower) times that gradient (at
 * most halved); when latency is fine and the limit was actually used, it
 * grows by about its square root.
 */
#ifndef MSVC_LIMIT_H
#define MSVC_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token buckets --------------------------------------------------------- */

/** @brief Longest key stored as it is; longer keys are stored as a keyed
 *         128-bit digest (two different long keys share a bucket only by a
 *         collision of that digest). */
#define MSVC_LIMIT_KEY_MAX 32

/** @brief A set of token buckets, one per key. */
typedef struct msvc_limit_rate_s msvc_limit_rate_t;

/** @brief Options of a rate limiter; fill with msvc_limit_rate_opts_init(). */
typedef struct msvc_limit_rate_opts_s {
  size_t size;        /**< sizeof(msvc_limit_rate_opts_t), set by the init. */
  uint32_t rate;      /**< Tokens added per period, 1..10^9. Default 10. */
  uint32_t period_ms; /**< The period, 1..86400000 ms. Default 1000. */
  uint32_t burst;     /**< Bucket size in tokens, 1..10^9. Default 20. */
  /** Most keys held at once, 16..2^26. Default 65536. Memory is 64 bytes
   *  per key (one cache line) plus 20 to 24 bytes of index, reserved up
   *  front. */
  uint32_t max_keys;
  /** Shards (lock stripes), a power of two 1..1024; 0 (the default)
   *  picks 64, fewer for a small table. */
  uint32_t shards;
} msvc_limit_rate_opts_t;

/** @brief The answer to one check. */
typedef struct msvc_limit_result_s {
  bool allowed;       /**< The request may go ahead (tokens taken). */
  uint32_t limit;     /**< This instance's bucket size in whole tokens. */
  uint32_t remaining; /**< Whole tokens left after this check. */
  /** When refused: milliseconds until the tokens asked for are there
   *  (0 when allowed). Never 0 for a refusal that could ever succeed;
   *  UINT64_MAX when the cost exceeds the bucket size. */
  uint64_t retry_after_ms;
  /** Milliseconds until the bucket is full again. */
  uint64_t reset_ms;
} msvc_limit_result_t;

/** @brief Counters of a rate limiter. */
typedef struct msvc_limit_rate_stats_s {
  uint64_t allowed;        /**< Checks that went ahead. */
  uint64_t refused;        /**< Checks refused. */
  uint64_t keys;           /**< Buckets held now. */
  uint64_t evicted;        /**< Full buckets forgotten (lossless). */
  uint64_t evicted_lossy;  /**< Partly used buckets forgotten for room: a
                                steadily growing count means max_keys is
                                too small for the traffic. */
} msvc_limit_rate_stats_t;

/**
 * @brief Fill rate limiter options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API void msvc_limit_rate_opts_init(msvc_limit_rate_opts_t *opts);

/**
 * @brief Create a rate limiter.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the limiter.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL @p out, options not filled by
 *         msvc_limit_rate_opts_init() or a value out of range; MSVC_ENOMEM.
 * @note Ownership: free with msvc_limit_rate_free(). The whole table is
 *       allocated here: checks never allocate.
 * @since 0.2
 */
MSVC_API int msvc_limit_rate_new(const msvc_limit_rate_opts_t *opts,
                                 msvc_limit_rate_t **out);

/**
 * @brief Free a rate limiter.
 * @param rl  The limiter, or NULL (a no-op). No other call may be running
 *            on it.
 * @since 0.2
 */
MSVC_API void msvc_limit_rate_free(msvc_limit_rate_t *rl);

/**
 * @brief Take @p cost tokens from the bucket of a key, if it has them.
 *
 * A key seen for the first time starts with a full bucket. A refused
 * check takes nothing.
 *
 * @param rl      The limiter.
 * @param key     The key bytes (any bytes; borrowed for the call).
 * @param len     Their length; 0 is a valid (empty) key.
 * @param cost    Tokens asked for, at least 1.
 * @param now_ms  Current time in milliseconds (monotonic). A time earlier
 *                than a bucket's last update counts as no time passed.
 * @param res     Receives the answer; may be NULL.
 * @return #MSVC_OK when allowed, MSVC_ELIMIT when refused, MSVC_EINVAL for
 *         a NULL @p rl, a NULL @p key with a nonzero @p len, or a zero cost.
 * @note Thread-safe; a key already held is checked under a lock of its
 *       own entry only (threads on different keys do not contend); never
 *       allocates.
 * @since 0.2
 */
MSVC_API int msvc_limit_rate_check(msvc_limit_rate_t *rl, const void *key, size_t len,
                                   uint32_t cost, uint64_t now_ms,
                                   msvc_limit_result_t *res);

/**
 * @brief Give back tokens taken for an attempt that should not count.
 *
 * For limits on failures: take a token when an attempt starts (so that
 * attempts in parallel cannot all pass), and give it back when the attempt
 * succeeds. The bucket never goes above its size. A key no longer held
 * (forgotten for room) is left alone: it starts full anyway.
 *
 * @param rl      The limiter.
 * @param key     The key bytes, as given to msvc_limit_rate_check().
 * @param len     Their length.
 * @param cost    Tokens to give back, at least 1.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @return #MSVC_OK; MSVC_EINVAL as msvc_limit_rate_check().
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API int msvc_limit_rate_refund(msvc_limit_rate_t *rl, const void *key, size_t len,
                                    uint32_t cost, uint64_t now_ms);

/**
 * @brief Make the limits this instance's share of a cluster-wide limit.
 *
 * With @p n instances, each enforces `rate / n` and a burst of
 * `max(burst / n, 1)` tokens, computed exactly. Buckets keep their fill
 * ratio: a full bucket stays full.
 *
 * @param rl  The limiter.
 * @param n   Live instances of the service, this one included; 0 is taken
 *            as 1. At most 65536.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL @p rl or an @p n too large.
 * @note Thread-safe; checks running at the same time use the old or the
 *       new share.
 * @since 0.2
 */
MSVC_API int msvc_limit_rate_set_share(msvc_limit_rate_t *rl, uint32_t n);

/**
 * @brief The instance count of the current share (1 until set).
 * @param rl  The limiter.
 * @return The count; 0 for a NULL @p rl.
 * @since 0.2
 */
MSVC_API uint32_t msvc_limit_rate_share(const msvc_limit_rate_t *rl);

/**
 * @brief Read a limiter's counters.
 * @param rl   The limiter.
 * @param out  Receives the counters.
 * @return #MSVC_OK, MSVC_EINVAL.
 * @note Thread-safe; the counters are read shard by shard, not as one
 *       snapshot.
 * @since 0.2
 */
MSVC_API int msvc_limit_rate_stats(msvc_limit_rate_t *rl, msvc_limit_rate_stats_t *out);

/* ---- adaptive concurrency ---------------------------------------------------- */

/** @brief An adaptive (or fixed) concurrency limit. */
typedef struct msvc_limit_adaptive_s msvc_limit_adaptive_t;

/** @brief Options of a concurrency limit; fill with
 *         msvc_limit_adaptive_opts_init(). The defaults are conservative:
 *         a service under normal load never meets the limit. */
typedef struct msvc_limit_adaptive_opts_s {
  size_t size;           /**< sizeof(msvc_limit_adaptive_opts_t). */
  uint32_t initial;      /**< Starting limit; default 1000. */
  /** Lowest limit, at least 1; default 512, above the connection counts
   *  of a healthy service, so that the default never sheds one. Lower it
   *  for a service whose capacity is known to be small. */
  uint32_t min_limit;
  uint32_t max_limit;    /**< Highest limit; default 5000. */
  /** Latency, as a multiple of the no-load latency, that the limit
   *  tolerates before it shrinks; 1.0..100. Default 2.0. */
  double tolerance;
  uint32_t window_ms;    /**< Shortest window between updates; default 100. */
  uint32_t window_min_samples; /**< Fewest samples per update; default 20. */
  /** Fixed limit: never adapt, stay at @ref initial. Default false. */
  bool fixed;
} msvc_limit_adaptive_opts_t;

/** @brief A permit of msvc_limit_adaptive_acquire(), returned with
 *         msvc_limit_adaptive_release(). */
typedef struct msvc_limit_permit_s {
  uint64_t start_ms; /**< When it was granted. */
  bool held;         /**< Granted and not yet released. */
  /** Where a small limit noted the permit's start (0: nowhere); kept
   *  as it is until the release. */
  uint16_t slot;
} msvc_limit_permit_t;

/** @brief How a request that held a permit ended. */
typedef enum msvc_limit_outcome_e {
  MSVC_LIMIT_SUCCESS = 0, /**< Answered: its latency is a sample. */
  MSVC_LIMIT_DROPPED = 1, /**< Timed out or failed from overload: counted
                               as a sample at the window's worst latency. */
  MSVC_LIMIT_IGNORED = 2  /**< Cancelled by the client: not a sample. */
} msvc_limit_outcome_t;

/**
 * @brief Fill concurrency limit options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_limit_adaptive_opts_init(msvc_limit_adaptive_opts_t *opts);

/**
 * @brief Create a concurrency limit.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the limit.
 * @return #MSVC_OK; MSVC_EINVAL (NULL @p out, unfilled options, min above
 *         max, initial outside them, a bad tolerance or window); MSVC_ENOMEM.
 * @note Free with msvc_limit_adaptive_free().
 * @since 0.2
 */
MSVC_API int msvc_limit_adaptive_new(const msvc_limit_adaptive_opts_t *opts,
                                     msvc_limit_adaptive_t **out);

/**
 * @brief Free a concurrency limit.
 * @param cl  The limit, or NULL (a no-op). No other call may be running.
 * @since 0.2
 */
MSVC_API void msvc_limit_adaptive_free(msvc_limit_adaptive_t *cl);

/**
 * @brief Let one request in if fewer than the limit are in flight.
 *
 * A limit below 32 keeps its fraction: n + f (say 1.5) lets n requests
 * in, and one more once the request in service longest has been served
 * (1 - f) / n of the no-load latency (see msvc_limit_adaptive_baseline_us());
 * a request that waited behind another is in service from the moment that
 * one left. The request admitted behind it then waits about f / n of a
 * request at most. This reads the monotonic clock in microseconds; larger
 * and fixed limits do not.
 * @param cl      The limit.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @param p       Receives the permit.
 * @return #MSVC_OK with a permit, MSVC_ELIMIT when the limit is reached
 *         (shed the request), MSVC_EINVAL.
 * @note Thread-safe: one atomic operation in the common case.
 * @since 0.2
 */
MSVC_API int msvc_limit_adaptive_acquire(msvc_limit_adaptive_t *cl, uint64_t now_ms,
                                         msvc_limit_permit_t *p);

/**
 * @brief Return a permit with the request's outcome and latency.
 * @param cl          The limit.
 * @param p           The permit; released once (a second call is ignored).
 * @param outcome     How the request ended.
 * @param latency_us  Its latency in microseconds (the limit learns from it).
 * @param now_ms      Current time in milliseconds (monotonic).
 * @note Thread-safe. The update at the end of a window runs in the thread
 *       that closes it, under a lock no acquire waits for.
 * @since 0.2
 */
MSVC_API void msvc_limit_adaptive_release(msvc_limit_adaptive_t *cl, msvc_limit_permit_t *p,
                                          msvc_limit_outcome_t outcome,
                                          uint64_t latency_us, uint64_t now_ms);

/**
 * @brief The current limit.
 * @param cl  The limit.
 * @return Requests let in at once whatever their age: the whole part of
 *         a limit below 32, the rounded limit above; 0 for NULL.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API uint32_t msvc_limit_adaptive_limit(const msvc_limit_adaptive_t *cl);

/**
 * @brief The current limit with its fraction (1.5: one request, and a
 *        second one while the first is in the second half of its
 *        no-load latency).
 * @param cl  The limit.
 * @return The limit; 0 for NULL.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API double msvc_limit_adaptive_value(const msvc_limit_adaptive_t *cl);

/**
 * @brief Requests holding a permit now.
 * @param cl  The limit.
 * @return The count; 0 for NULL.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API uint32_t msvc_limit_adaptive_inflight(const msvc_limit_adaptive_t *cl);

/**
 * @brief The no-load latency the limit currently compares against.
 * @param cl  The limit.
 * @return Microseconds; 0 before the first window.
 * @note Thread-safe.
 * @since 0.2
 */
MSVC_API uint64_t msvc_limit_adaptive_baseline_us(const msvc_limit_adaptive_t *cl);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_LIMIT_H */
