/**
 * @file msvc/lb.h
 * @brief Load balancing: pick an endpoint of a service for each call.
 *
 * A balancer holds one endpoint set (ids `host:port`, weights, metadata) and
 * one policy. Each call asks for a ticket with msvc_lb_pick(), sends its
 * request to the ticket's endpoint and gives the ticket back with
 * msvc_lb_done(), which is how the balancer knows how many requests each
 * endpoint has in flight.
 *
 * Policies and their cost per pick (n endpoints in the set, e of them
 * eligible, r of them in their slow-start ramp, w distinct weights among
 * the e - r others, at most #MSVC_LB_MAX_WEIGHT):
 *
 * | policy | pick | done |
 * |---|---|---|
 * | #MSVC_LB_ROUND_ROBIN, equal weights | O(1), lock-free | O(1), lock-free |
 * | #MSVC_LB_ROUND_ROBIN, weights, e <= 32 | O(e) under a spin lock (nginx's smooth weighted sequence) | O(1), lock-free |
 * | #MSVC_LB_ROUND_ROBIN, weights, e > 32 | O(log(w + r)) under a spin lock (earliest deadline first) | O(1), lock-free |
 * | #MSVC_LB_LEAST_CONN | O(log w + r) under a spin lock | O(log w) under the same lock |
 * | #MSVC_LB_P2C | O(1), lock-free | O(1), lock-free |
 *
 * Updating the set, excluding an endpoint or an exclusion running out costs
 * O(n) and happens off the pick path's fast lane: a pick never sees a
 * half-updated set, and pickers never wait for an update (an update waits
 * for pickers that are between two instructions of a pick, never for
 * outstanding tickets).
 *
 * Time is always passed in (milliseconds of a monotonic clock such as
 * msvc_now_ms()); the balancer never reads a clock itself.
 *
 * Thread safety: every function may be called from any thread at the same
 * time, except msvc_lb_free(), which must be the last call.
 */
#ifndef MSVC_LB_H
#define MSVC_LB_H

#include <stdbool.h>
#include <stdint.h>
#include <msvc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A balancer (opaque). */
typedef struct msvc_lb_s msvc_lb_t;

/** @brief Most endpoints one set may hold. */
#define MSVC_LB_MAX_ENDPOINTS 65536

/** @brief Longest endpoint id, in bytes, without the terminating NUL. */
#define MSVC_LB_MAX_ID_LEN 255

/** @brief Largest endpoint weight (the smallest is 1). */
#define MSVC_LB_MAX_WEIGHT 1000

/** @brief Longest slow-start window, in milliseconds (one day). */
#define MSVC_LB_MAX_SLOW_START_MS 86400000u

/** @brief How a balancer chooses among the eligible endpoints. */
typedef enum msvc_lb_policy_e {
  /** Smooth weighted round-robin: each endpoint gets its weight's share,
   *  spread evenly over time (weights 5,1,1 give a a b a c a a). */
  MSVC_LB_ROUND_ROBIN = 0,
  /** The endpoint with the fewest requests in flight relative to its weight;
   *  equal candidates take turns. */
  MSVC_LB_LEAST_CONN = 1,
  /** Power of two choices: two distinct endpoints drawn at random, the one
   *  with fewer requests in flight relative to its weight wins. */
  MSVC_LB_P2C = 2
} msvc_lb_policy_t;

/** @brief How the call that held a ticket went. */
typedef enum msvc_lb_outcome_e {
  MSVC_LB_SUCCESS = 0, /**< The endpoint answered. */
  MSVC_LB_FAILURE = 1  /**< The call failed (connect error, timeout, 5xx...). */
} msvc_lb_outcome_t;

/** @brief Balancer options; fill with msvc_lb_opts_init() first. */
typedef struct msvc_lb_opts_s {
  /** sizeof(msvc_lb_opts_t), set by msvc_lb_opts_init(). */
  size_t size;
  /** Policy; default #MSVC_LB_ROUND_ROBIN. */
  msvc_lb_policy_t policy;
  /** Most endpoints, in percent of the set, that exclusions may take out of
   *  rotation (0..100, default 50). When more are excluded, or all are, the
   *  balancer enters panic mode and picks among every endpoint. */
  unsigned max_excluded_percent;
  /** Slow-start window in milliseconds (default 0 = off). An endpoint that
   *  joins the set after the first update, or comes back from an exclusion,
   *  starts at 10% of its weight and ramps up linearly to 100% over this
   *  window; at most #MSVC_LB_MAX_SLOW_START_MS. 30000 is a reasonable
   *  value. */
  uint64_t slow_start_ms;
  /** Keep a record of every outstanding ticket so that a ticket returned
   *  twice is always caught and tickets never returned are reported by
   *  msvc_lb_free() (one mutex-protected hash operation per pick and per
   *  done). Default: on in builds without NDEBUG, off otherwise. */
  bool track_tickets;
} msvc_lb_opts_t;

/**
 * @brief A pick: which endpoint to call, and the receipt to give back.
 *
 * Held by the caller by value (nothing is allocated per pick) and returned
 * exactly once with msvc_lb_done(). Fields ending in an underscore are
 * private to the balancer.
 */
typedef struct msvc_lb_ticket_s {
  /** The endpoint's id (`host:port`). Borrowed: valid until the ticket is
   *  returned with msvc_lb_done(), even if the endpoint leaves the set. */
  const char *endpoint;
  /** Private: the endpoint's slot. */
  uint32_t slot_;
  /** Private: the slot's generation when the ticket was issued. */
  uint32_t gen_;
  /** Private: the ticket's serial number when tickets are tracked, else 0. */
  uint64_t serial_;
} msvc_lb_ticket_t;

/** @brief One endpoint of a set given to msvc_lb_update(). */
typedef struct msvc_lb_endpoint_s {
  /** Identity, usually `host:port`: 1..#MSVC_LB_MAX_ID_LEN bytes, unique in
   *  the set. An endpoint whose id was in the previous set keeps its
   *  statistics. */
  const char *id;
  /** Weight, 1..#MSVC_LB_MAX_WEIGHT. */
  uint32_t weight;
  /** Free-form metadata (for example `zone=a,version=2`), or NULL. */
  const char *metadata;
} msvc_lb_endpoint_t;

/** @brief What msvc_lb_foreach() reports about one endpoint. */
typedef struct msvc_lb_endpoint_stats_s {
  /** The endpoint's id. Borrowed for the callback only. */
  const char *id;
  /** The endpoint's metadata ("" when none). Borrowed for the callback only. */
  const char *metadata;
  /** Configured weight. */
  uint32_t weight;
  /** Weight in effect now, in thousandths of a weight unit: weight * 1000
   *  outside slow start, from weight * 100 up during the ramp. */
  uint32_t effective_weight_milli;
  /** Tickets ever issued for the endpoint (the `msvc_lb_picks_total`
   *  counter). */
  uint64_t picks;
  /** Tickets issued and not yet returned (the `msvc_lb_endpoint_inflight`
   *  gauge). */
  uint64_t inflight;
  /** Tickets returned with #MSVC_LB_FAILURE. */
  uint64_t failures;
  /** Exponentially weighted moving average of the latencies given to
   *  msvc_lb_done(), in microseconds (0 before the first). */
  uint64_t latency_ewma_us;
  /** Excluded now (whether or not panic mode overrides it). */
  bool excluded;
} msvc_lb_endpoint_stats_t;

/** @brief A balancer's state as a whole, from msvc_lb_status(). */
typedef struct msvc_lb_status_s {
  /** Endpoints in the set. */
  uint32_t endpoints;
  /** Endpoints excluded now. */
  uint32_t excluded;
  /** Endpoints picks choose among now (all of them in panic mode). */
  uint32_t eligible;
  /** True when exclusions exceed their budget (or cover every endpoint) and
   *  picks therefore ignore them. */
  bool panic;
  /** Tickets outstanding, including those of endpoints that left the set. */
  uint64_t inflight;
} msvc_lb_status_t;

/**
 * @brief Receives one endpoint's statistics from msvc_lb_foreach().
 * @param stats  The endpoint's figures; valid during the call only.
 * @param data   The pointer given to msvc_lb_foreach().
 * @return 0 to go on, anything else to stop.
 */
typedef int (*msvc_lb_stats_cb)(const msvc_lb_endpoint_stats_t *stats,
                                void *data);

/**
 * @brief Fill options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.1
 */
MSVC_API void msvc_lb_opts_init(msvc_lb_opts_t *opts);

/**
 * @brief Parse a policy name as `MSVC_LB` spells it.
 * @param name    `round_robin`, `least_conn` or `p2c` (exact, lower case).
 * @param policy  Receives the policy.
 * @return #MSVC_OK, or MSVC_EINVAL for NULL arguments or an unknown name.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_lb_policy_parse(const char *name, msvc_lb_policy_t *policy);

/**
 * @brief The name of a policy, as msvc_lb_policy_parse() accepts it.
 * @param policy  A policy.
 * @return A static string; "unknown" for a value outside the enum.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_lb_policy_name(msvc_lb_policy_t policy);

/**
 * @brief Create a balancer with an empty endpoint set.
 * @param opts  Options, or NULL for the defaults; copied.
 * @param out   Receives the balancer, which the caller frees with
 *              msvc_lb_free(); set to NULL on failure.
 * @return #MSVC_OK; MSVC_EINVAL when @p out is NULL, the policy is unknown,
 *         max_excluded_percent is above 100, slow_start_ms is above
 *         #MSVC_LB_MAX_SLOW_START_MS or opts->size is too small;
 *         MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_lb_new(const msvc_lb_opts_t *opts, msvc_lb_t **out);

/**
 * @brief Destroy a balancer.
 *
 * Tickets still outstanding become invalid; when tickets are tracked, their
 * number is logged as a warning (component "lb").
 *
 * @param lb  The balancer, or NULL (a no-op). No other call on it may be
 *            running or follow.
 * @since 0.1
 */
MSVC_API void msvc_lb_free(msvc_lb_t *lb);

/**
 * @brief Swap in a new endpoint set.
 *
 * Endpoints whose id was already in the set keep their statistics, their
 * in-flight count, their position in the policy's sequence and their
 * exclusion; their weight and metadata are updated. New endpoints start
 * fresh (and in slow start when it is on, except in the very first set).
 * Endpoints that leave stop being picked at once; their outstanding tickets
 * stay valid and are returned as usual. Picks running at the same time see
 * either the whole old set or the whole new one.
 *
 * @param lb         The balancer.
 * @param endpoints  The new set; copied (nothing is kept after the call).
 *                   May be NULL when @p n is 0 (an empty set: picks then
 *                   fail with MSVC_ENO_ENDPOINTS).
 * @param n          Number of endpoints, at most #MSVC_LB_MAX_ENDPOINTS.
 * @param now_ms     Current time in milliseconds (monotonic).
 * @return #MSVC_OK; MSVC_EINVAL for a NULL balancer, a NULL array with
 *         n > 0, an id that is NULL, empty, longer than #MSVC_LB_MAX_ID_LEN
 *         or repeated, or a weight outside 1..#MSVC_LB_MAX_WEIGHT;
 *         MSVC_ETOOLARGE when n is above #MSVC_LB_MAX_ENDPOINTS;
 *         MSVC_ELIMIT when endpoints that left earlier still hold so many
 *         unreturned tickets that no record is free (over a million);
 *         MSVC_ENOMEM.
 *         On any error the balancer keeps its previous set unchanged.
 * @note Thread-safe; O(n). Updates (and exclusions) are serialised.
 * @since 0.1
 */
MSVC_API int msvc_lb_update(msvc_lb_t *lb, const msvc_lb_endpoint_t *endpoints,
                            size_t n, uint64_t now_ms);

/**
 * @brief Choose an endpoint for one call.
 *
 * Chooses among the endpoints that are not excluded (or among all of them in
 * panic mode) according to the policy, counts one more request in flight on
 * the chosen endpoint and fills @p ticket. The ticket must be given back
 * exactly once with msvc_lb_done(); a ticket never returned keeps its
 * endpoint's in-flight count up for good.
 *
 * @param lb      The balancer.
 * @param now_ms  Current time in milliseconds (monotonic): ends exclusions
 *                whose time has come and drives slow start.
 * @param ticket  Receives the ticket (caller-owned storage).
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments; MSVC_ENO_ENDPOINTS when
 *         the set is empty.
 * @note Thread-safe. Cost per policy: see the table at the top of this file.
 *       With ticket tracking on, also MSVC_ENOMEM.
 * @since 0.1
 */
MSVC_API int msvc_lb_pick(msvc_lb_t *lb, uint64_t now_ms,
                          msvc_lb_ticket_t *ticket);

/**
 * @brief Give a ticket back, with how the call went.
 *
 * @param lb          The balancer that issued the ticket.
 * @param ticket      The ticket; its endpoint string is no longer valid
 *                    after this call.
 * @param outcome     #MSVC_LB_SUCCESS or #MSVC_LB_FAILURE (counted per
 *                    endpoint).
 * @param latency_us  How long the call took, in microseconds (averaged per
 *                    endpoint).
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments or an unknown outcome;
 *         MSVC_ETICKET when the ticket was not issued by this balancer or
 *         was already returned. Without ticket tracking, a second return is
 *         caught when the endpoint has nothing else in flight or has left
 *         the set and been recycled; with tracking it is always caught. On
 *         MSVC_ETICKET no count changes.
 * @note Thread-safe; may run on another thread than the pick.
 * @since 0.1
 */
MSVC_API int msvc_lb_done(msvc_lb_t *lb, const msvc_lb_ticket_t *ticket,
                          msvc_lb_outcome_t outcome, uint64_t latency_us);

/**
 * @brief Take an endpoint out of rotation until a given time.
 *
 * Meant for the circuit breaker, outlier detection and failed health checks.
 * The exclusion ends by itself at @p until_ms (the first pick at or after it
 * sees it lifted); the endpoint then goes through slow start when that is
 * on. Excluding an endpoint again replaces its end time. While more than
 * max_excluded_percent of the set (or all of it) is excluded, the balancer is
 * in panic mode and picks among every endpoint, so exclusions can never make
 * a set unreachable.
 *
 * @param lb        The balancer.
 * @param id        The endpoint's id; borrowed for the call.
 * @param until_ms  End of the exclusion (same clock as @p now_ms); a time
 *                  not after @p now_ms lifts any exclusion, as
 *                  msvc_lb_include() does.
 * @param now_ms    Current time in milliseconds (monotonic).
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments; MSVC_ENOTFOUND when no
 *         endpoint of the set has this id; MSVC_ENOMEM (the exclusion is
 *         then not applied).
 * @note Thread-safe; O(n).
 * @since 0.1
 */
MSVC_API int msvc_lb_exclude(msvc_lb_t *lb, const char *id, uint64_t until_ms,
                             uint64_t now_ms);

/**
 * @brief Put an excluded endpoint back into rotation now.
 * @param lb      The balancer.
 * @param id      The endpoint's id; borrowed for the call.
 * @param now_ms  Current time in milliseconds (monotonic); slow start, when
 *                on, begins now.
 * @return #MSVC_OK (also when the endpoint was not excluded); MSVC_EINVAL
 *         for NULL arguments; MSVC_ENOTFOUND; MSVC_ENOMEM.
 * @note Thread-safe; O(n).
 * @since 0.1
 */
MSVC_API int msvc_lb_include(msvc_lb_t *lb, const char *id, uint64_t now_ms);

/**
 * @brief Read the balancer's overall state, panic mode included.
 * @param lb      The balancer.
 * @param now_ms  Current time in milliseconds: exclusions that have run out
 *                are lifted first, so the answer is current.
 * @param status  Receives the state.
 * @return #MSVC_OK; MSVC_EINVAL for NULL arguments; MSVC_ENOMEM when an
 *         expired exclusion could not be lifted (the state is then the
 *         previous one).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_lb_status(msvc_lb_t *lb, uint64_t now_ms,
                            msvc_lb_status_t *status);

/**
 * @brief Report every endpoint of the set, in the order of the last update.
 *
 * For the metrics layer: `picks` feeds `msvc_lb_picks_total{service,endpoint}`
 * and `inflight` feeds `msvc_lb_endpoint_inflight`.
 *
 * @param lb      The balancer.
 * @param now_ms  Current time in milliseconds (for exclusion and slow start).
 * @param cb      Called once per endpoint. It runs while updates are held
 *                off: it must not call msvc_lb_update(), msvc_lb_exclude(),
 *                msvc_lb_include(), msvc_lb_status() or msvc_lb_foreach() on
 *                the same balancer (picks and dones are fine).
 * @param data    Passed to @p cb.
 * @return #MSVC_OK, or MSVC_EINVAL for NULL arguments. A callback's non-zero
 *         return stops the walk and is not an error.
 * @note Thread-safe; O(n).
 * @since 0.1
 */
MSVC_API int msvc_lb_foreach(msvc_lb_t *lb, uint64_t now_ms,
                             msvc_lb_stats_cb cb, void *data);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_LB_H */
