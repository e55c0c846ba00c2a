/**
 * @file msvc/breaker.h
 * @brief Circuit breaker: stop calling a dependency that keeps failing, and
 *        probe it carefully before trusting it again.
 *
 * A breaker watches the outcomes of calls to one dependency (an endpoint or
 * a whole service) over a sliding window and moves between three states:
 *
 * - **CLOSED**: calls go through; outcomes are recorded. When the window holds
 *   at least `minimum_calls` outcomes and the failure rate or the slow-call
 *   rate reaches its threshold, the breaker opens.
 * - **OPEN**: calls are rejected with MSVC_EBREAKER_OPEN for `wait_in_open_ms`
 *   (doubled on every re-open in a row, up to `wait_in_open_max_ms`).
 * - **HALF_OPEN**: reached on the first msvc_breaker_acquire() after the wait
 *   (no timer is needed). At most `permitted_calls_in_half_open` probes are
 *   let through; their outcomes close the breaker again or re-open it.
 *
 * Operators can also pin it in FORCED_OPEN (reject everything), DISABLED
 * (allow everything, keep recording) or METRICS_ONLY (allow everything,
 * record and evaluate, count would-be openings, never change state).
 *
 * The breaker is a pure object: it never reads a clock nor starts a timer.
 * Every call that depends on time takes `now_ms`, milliseconds on a
 * monotonic clock (msvc_now_ms() in production, a counter in tests).
 *
 * Typical use:
 *
 *     msvc_breaker_permit_t permit;
 *     if (msvc_breaker_acquire(b, msvc_now_ms(), &permit) != MSVC_OK)
 *       return fail_fast();                        // MSVC_EBREAKER_OPEN
 *     uint64_t start = msvc_now_ms();
 *     int rc = do_the_call();
 *     uint64_t end = msvc_now_ms();
 *     msvc_breaker_record(b, &permit, classify(rc), end - start, end);
 *
 * Thread safety: every function may be called from any thread on the same
 * breaker, except msvc_breaker_free(). See docs/breaker.md for the guide.
 */
#ifndef MSVC_BREAKER_H
#define MSVC_BREAKER_H

#include <stdbool.h>
#include <stdint.h>
#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief An opaque circuit breaker. */
typedef struct msvc_breaker_s msvc_breaker_t;

/**
 * @brief States of a breaker.
 *
 * The first three values are also the values of the
 * `msvc_breaker_state` gauge (0 closed, 1 open, 2 half-open); exporters map
 * FORCED_OPEN to 1 and DISABLED and METRICS_ONLY to 0.
 */
typedef enum msvc_breaker_state_e {
  MSVC_BREAKER_CLOSED = 0,      /**< Calls go through and are recorded. */
  MSVC_BREAKER_OPEN = 1,        /**< Calls are rejected until the wait ends. */
  MSVC_BREAKER_HALF_OPEN = 2,   /**< A limited number of probes go through. */
  MSVC_BREAKER_FORCED_OPEN = 3, /**< Operator: reject every call. */
  MSVC_BREAKER_DISABLED = 4,    /**< Operator: allow every call, record. */
  MSVC_BREAKER_METRICS_ONLY = 5 /**< Operator: allow, record, evaluate. */
} msvc_breaker_state_t;

/** @brief Why a transition happened; passed to the transition callback. */
typedef enum msvc_breaker_reason_e {
  MSVC_BREAKER_REASON_FAILURE_RATE = 0, /**< Failure rate reached. */
  MSVC_BREAKER_REASON_SLOW_CALL_RATE = 1, /**< Slow-call rate reached. */
  MSVC_BREAKER_REASON_WAIT_ELAPSED = 2, /**< OPEN wait over: now probing. */
  MSVC_BREAKER_REASON_PROBES_SUCCEEDED = 3, /**< Half-open probes healthy. */
  MSVC_BREAKER_REASON_PROBES_FAILED = 4, /**< Half-open probes unhealthy. */
  MSVC_BREAKER_REASON_HALF_OPEN_TIMEOUT = 5, /**< Probes never reported. */
  MSVC_BREAKER_REASON_MANUAL = 6,       /**< msvc_breaker_transition(). */
  MSVC_BREAKER_REASON_RESET = 7         /**< msvc_breaker_reset(). */
} msvc_breaker_reason_t;

/**
 * @brief The outcome of a call, as classified by the caller.
 *
 * The service layer's taxonomy: connection failures, timeouts and 5xx are
 * failures; 4xx, cancellation by the caller and local overload (a 429 we
 * generated ourselves) are ignored, because they say nothing about the
 * health of the dependency.
 */
typedef enum msvc_breaker_outcome_e {
  MSVC_BREAKER_SUCCESS = 0, /**< The dependency answered properly. */
  MSVC_BREAKER_FAILURE = 1, /**< The dependency failed. */
  MSVC_BREAKER_IGNORED = 2  /**< Not counted: neither success nor failure. */
} msvc_breaker_outcome_t;

/** @brief How the sliding window is measured. */
typedef enum msvc_breaker_window_e {
  /** The last `window_seconds` seconds, one bucket per second (default). */
  MSVC_BREAKER_WINDOW_TIME = 0,
  /** The last `window_calls` recorded outcomes. */
  MSVC_BREAKER_WINDOW_COUNT = 1
} msvc_breaker_window_t;

/**
 * @brief Called after each state change.
 *
 * Calls are delivered one at a time and in the order the transitions
 * happened, with no lock of the breaker held. The callback may therefore
 * call any function of this header on the same breaker (read the state or
 * the statistics, acquire, record, even transition or reset it: a
 * transition caused from inside the callback is delivered after this call
 * returns, never recursively). It must not call msvc_breaker_free() on it.
 * It may run on a thread other than the one whose call caused the change
 * (whichever thread is currently delivering), so it must be thread-safe,
 * and it should be quick: other transitions of this breaker queue up behind
 * it.
 *
 * @param data    The `on_transition_data` pointer of the options.
 * @param b       The breaker.
 * @param from    The state left.
 * @param to      The state entered.
 * @param reason  Why.
 * @param now_ms  The time passed to the call that caused the change.
 */
typedef void (*msvc_breaker_transition_cb)(void *data, msvc_breaker_t *b,
                                           msvc_breaker_state_t from,
                                           msvc_breaker_state_t to,
                                           msvc_breaker_reason_t reason,
                                           uint64_t now_ms);

/**
 * @brief Configuration of a breaker. Fill with msvc_breaker_opts_init(),
 *        then change what you need.
 */
typedef struct msvc_breaker_opts_s {
  /** Set by msvc_breaker_opts_init(); lets later versions grow the
   *  struct without breaking callers. Do not change it. */
  size_t size;
  /** Window kind. Default #MSVC_BREAKER_WINDOW_TIME. */
  msvc_breaker_window_t window_type;
  /** Size of a time window in seconds, 1..3600. Default 10. */
  uint32_t window_seconds;
  /** Size of a count window in calls, 1..100000. Default 100. */
  uint32_t window_calls;
  /** Outcomes the window must hold before any rate is judged, at least 1.
   *  Clamped to `window_calls` with a count window (a larger value could
   *  never be reached). Default 20. */
  uint32_t minimum_calls;
  /** Failure rate in percent, (0, 100], at which the breaker opens.
   *  Default 50. */
  double failure_rate_threshold;
  /** Slow-call rate in percent, (0, 100], at which the breaker opens.
   *  Default 100 (only when every call is slow). */
  double slow_call_rate_threshold;
  /** A call that took longer than this (strictly) is slow. Default 60000. */
  uint64_t slow_call_duration_ms;
  /** First OPEN period, at least 1. Default 30000 (30 s). */
  uint64_t wait_in_open_ms;
  /** Cap of the doubled OPEN period, at least `wait_in_open_ms`.
   *  Default 300000 (5 min). */
  uint64_t wait_in_open_max_ms;
  /** Random spread of each OPEN period, as a fraction in [0, 1): a wait W
   *  becomes uniform in [W - W*jitter, W + W*jitter]. Default 0. */
  double wait_jitter;
  /** A CLOSED period at least this long ends a run of re-opens: the next
   *  OPEN period starts again from `wait_in_open_ms`. Default 300000. */
  uint64_t backoff_reset_ms;
  /** Probes allowed in HALF_OPEN, 1..10000; their outcomes decide.
   *  Default 5. */
  uint32_t permitted_calls_in_half_open;
  /** A HALF_OPEN state whose probes have not all reported after this long
   *  goes back to OPEN. 0 waits forever (not recommended: a lost probe
   *  then keeps the breaker half-open for good). Default 30000. */
  uint64_t max_wait_in_half_open_ms;
  /** Transition callback, or NULL. */
  msvc_breaker_transition_cb on_transition;
  /** Passed to `on_transition`; borrowed for the breaker's lifetime. */
  void *on_transition_data;
} msvc_breaker_opts_t;

/**
 * @brief A permission to make one call, returned by msvc_breaker_acquire().
 *
 * Lives in the caller's memory (a stack variable or a field of the request).
 * Its fields are private to the breaker; do not change them.
 */
typedef struct msvc_breaker_permit_s {
  uint64_t token; /**< Private: state and generation at acquire time. */
} msvc_breaker_permit_t;

/**
 * @brief Counters and window figures of a breaker, from
 *        msvc_breaker_stats().
 */
typedef struct msvc_breaker_stats_s {
  msvc_breaker_state_t state; /**< Current state. */
  uint64_t calls;             /**< Outcomes in the window, ignored ones
                                   excluded (in HALF_OPEN: the probes'). */
  uint64_t failures;          /**< Failures in the window. */
  uint64_t slow_calls;        /**< Slow calls in the window. */
  double failure_rate;   /**< Percent; -1 while fewer than minimum_calls. */
  double slow_call_rate; /**< Percent; -1 while fewer than minimum_calls. */
  uint64_t not_permitted; /**< Calls rejected since creation. */
  uint64_t threshold_breaches; /**< Evaluations that found a threshold
                                    reached (openings, and would-be openings
                                    in METRICS_ONLY). */
  uint64_t transitions;  /**< State changes since creation. */
  uint32_t probes_in_flight; /**< HALF_OPEN probes not yet recorded. */
  uint32_t reopens_in_a_row; /**< Doublings applied to the next OPEN wait. */
  uint64_t open_until_ms; /**< End of the current OPEN wait, or 0. */
  uint64_t events_dropped; /**< Transition callbacks lost to out-of-memory. */
} msvc_breaker_stats_t;

/**
 * @brief Fill options with the defaults documented on each field.
 * @param opts  Options to fill; must not be NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_breaker_opts_init(msvc_breaker_opts_t *opts);

/**
 * @brief Create a breaker, CLOSED, with an empty window.
 * @param opts  Options, copied; NULL means all defaults.
 * @param out   Receives the breaker on success; set to NULL on failure.
 * @return #MSVC_OK; MSVC_EINVAL if `out` is NULL or `opts->size` is not this
 *         version's; MSVC_ECONFIG if an option is out of its range;
 *         MSVC_ENOMEM.
 * @note The caller owns the breaker and frees it with msvc_breaker_free().
 *       Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_breaker_new(const msvc_breaker_opts_t *opts,
                              msvc_breaker_t **out);

/**
 * @brief Destroy a breaker.
 * @param b  The breaker, or NULL (a no-op). No other call on it may be in
 *           progress or follow.
 * @since 0.1
 */
MSVC_API void msvc_breaker_free(msvc_breaker_t *b);

/**
 * @brief Decide whether a call may go ahead.
 *
 * In OPEN, the first call after the wait moves the breaker to HALF_OPEN and
 * becomes a probe. In HALF_OPEN, a call is a probe while fewer than
 * `permitted_calls_in_half_open` probes have been handed out; otherwise it
 * is rejected (and a HALF_OPEN state older than `max_wait_in_half_open_ms`
 * goes back to OPEN).
 *
 * @param b       The breaker. Thread-safe.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @param permit  Receives the permit on success; must not be NULL.
 * @return #MSVC_OK with a permit, or MSVC_EBREAKER_OPEN when calls are being
 *         rejected; MSVC_EINVAL if `b` or `permit` is NULL. Every permit must
 *         be returned with msvc_breaker_record(), with
 *         #MSVC_BREAKER_IGNORED if the call was never made.
 * @since 0.1
 */
MSVC_API int msvc_breaker_acquire(msvc_breaker_t *b, uint64_t now_ms,
                                  msvc_breaker_permit_t *permit);

/**
 * @brief Report the outcome of a call made under a permit.
 *
 * The outcome counts in the window of the state the permit was acquired in;
 * if the breaker has changed state since (or been reset), it is dropped,
 * so a late answer from before an opening never pollutes the new window.
 * Only a failure or a slow call can open a CLOSED breaker: a success lowers
 * the rates and is never the reason traffic stops.
 *
 * @param b            The breaker. Thread-safe.
 * @param permit       The permit from msvc_breaker_acquire(); marked used.
 * @param outcome      The caller's classification of the call.
 * @param duration_ms  How long the call took (compared with
 *                     `slow_call_duration_ms`; ignored for
 *                     #MSVC_BREAKER_IGNORED).
 * @param now_ms       Current time in milliseconds (monotonic).
 * @return #MSVC_OK (also when the outcome was dropped as stale);
 *         MSVC_EBREAKER_PERMIT if the permit was already recorded or was
 *         never handed out; MSVC_EINVAL for a NULL argument or an unknown
 *         outcome.
 * @since 0.1
 */
MSVC_API int msvc_breaker_record(msvc_breaker_t *b,
                                 msvc_breaker_permit_t *permit,
                                 msvc_breaker_outcome_t outcome,
                                 uint64_t duration_ms, uint64_t now_ms);

/**
 * @brief The current state, read without locking.
 *
 * Cheap enough to call for every request or every scrape. It reflects the
 * last transition: an OPEN breaker whose wait is over still reads OPEN until
 * the next msvc_breaker_acquire() moves it to HALF_OPEN.
 *
 * @param b  The breaker. Thread-safe.
 * @return The state; #MSVC_BREAKER_CLOSED if `b` is NULL.
 * @since 0.1
 */
MSVC_API msvc_breaker_state_t msvc_breaker_state(const msvc_breaker_t *b);

/**
 * @brief Whether a call would currently be rejected, without taking a
 *        permit. Meant for filters (skip OPEN endpoints when picking one).
 * @param b       The breaker. Thread-safe.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @return true in FORCED_OPEN, in OPEN before the wait ends, and in
 *         HALF_OPEN when every probe has been handed out; false otherwise
 *         and if `b` is NULL.
 * @since 0.1
 */
MSVC_API bool msvc_breaker_is_rejecting(msvc_breaker_t *b, uint64_t now_ms);

/**
 * @brief Move a breaker to a state by hand (operators, tests).
 *
 * OPEN starts a wait computed as after a normal opening; HALF_OPEN starts
 * probing at once; CLOSED starts a fresh window. FORCED_OPEN, DISABLED and
 * METRICS_ONLY stay until another call of this function or
 * msvc_breaker_reset(). Moving to the current state is a no-op (no
 * callback). Every real transition empties the window and is reported to
 * the callback with reason #MSVC_BREAKER_REASON_MANUAL.
 *
 * @param b       The breaker. Thread-safe.
 * @param to      The state to enter.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @return #MSVC_OK; MSVC_EINVAL if `b` is NULL or `to` is not a state;
 *         MSVC_ENOMEM if the transition event could not be queued (the
 *         transition itself happened).
 * @since 0.1
 */
MSVC_API int msvc_breaker_transition(msvc_breaker_t *b,
                                     msvc_breaker_state_t to,
                                     uint64_t now_ms);

/**
 * @brief Return to CLOSED with an empty window and no backoff history.
 *
 * Counters (not permitted, transitions) are kept. The callback is told
 * (reason #MSVC_BREAKER_REASON_RESET) unless the breaker was already CLOSED.
 *
 * @param b       The breaker. Thread-safe.
 * @param now_ms  Current time in milliseconds (monotonic).
 * @return #MSVC_OK; MSVC_EINVAL if `b` is NULL; MSVC_ENOMEM as for
 *         msvc_breaker_transition().
 * @since 0.1
 */
MSVC_API int msvc_breaker_reset(msvc_breaker_t *b, uint64_t now_ms);

/**
 * @brief Read counters and the window's figures.
 * @param b       The breaker. Thread-safe.
 * @param now_ms  Current time, used to age a time window.
 * @param out     Receives the figures; must not be NULL.
 * @return #MSVC_OK; MSVC_EINVAL for a NULL argument.
 * @since 0.1
 */
MSVC_API int msvc_breaker_stats(msvc_breaker_t *b, uint64_t now_ms,
                                msvc_breaker_stats_t *out);

/**
 * @brief The lower-case name of a state, as used in metric labels.
 * @param state  A state.
 * @return "closed", "open", "half_open", "forced_open", "disabled",
 *         "metrics_only", or "unknown"; a static string.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_breaker_state_name(msvc_breaker_state_t state);

/**
 * @brief The lower-case name of a transition reason, for logs.
 * @param reason  A reason.
 * @return "failure_rate", "slow_call_rate", "wait_elapsed",
 *         "probes_succeeded", "probes_failed", "half_open_timeout",
 *         "manual", "reset", or "unknown"; a static string.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_breaker_reason_name(msvc_breaker_reason_t reason);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_BREAKER_H */
