/**
 * @file msvc/jwks.h
 * @brief Remote JWK Sets: fetched over HTTP into a key set, cached, refreshed
 *        in the background and refetched when a token names an unknown key.
 *
 * A fetcher (#msvc_jwks_fetcher_t) owns an HTTP client on the caller's loop
 * and keeps one key set (#msvc_jwt_keyset_t) filled from a URL:
 * - the first fetch starts from msvc_jwks_fetcher_new();
 * - the next one starts when the document's `Cache-Control: max-age` runs
 *   out, clamped to [min_refresh_ms, max_refresh_ms] (defaults 1 min and
 *   24 h; 10 min when the answer has no max-age); the keys keep serving
 *   meanwhile, so no request ever waits for a refresh;
 * - a token whose `kid` the set does not hold triggers one refetch through
 *   the key set's unknown-kid hook: single-flight, at most one per
 *   cooldown (default 30 s);
 * - a failed fetch (network error, status other than 200, a document over
 *   the size cap, a document that is not a usable JWK Set) never touches
 *   the keys: the last good keys keep serving (stale-if-error), the error
 *   is counted, and the fetch is tried again after min_refresh_ms.
 *
 * Fetches are counted in msvc_jwks_fetcher_stats() and, when a metrics
 * registry is given, in the counter `msvc_jwt_jwks_fetches_total{result}`
 * with result `ok`, `network` (no response), `status` (an answer other
 * than 200), `too_large` (over max_size) or `bad_document`.
 *
 * `https://` URLs are fetched over TLS: the server's certificate must
 * chain to the CA bundle of the `tls` option (by default the system
 * bundle, #MSVC_TLS_SYSTEM_CA in msvc/tls.h) and carry the URL's host name
 * (or IP address). A failed handshake is a `network` failure.
 */
#ifndef MSVC_JWKS_H
#define MSVC_JWKS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <msvc/common.h>
#include <msvc/jwt.h>
#include <msvc/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A JWK Set fetcher bound to one loop and one key set. */
typedef struct msvc_jwks_fetcher_s msvc_jwks_fetcher_t;

/**
 * @brief Told after every fetch, on the loop thread.
 * @param data  The pointer given in the options.
 * @param err   #MSVC_OK when the keys were replaced, else why not (the old
 *              keys stay).
 */
typedef void (*msvc_jwks_fetch_fn)(void *data, int err);

/**
 * @brief Called when a closed fetcher has been released.
 * @param data  The pointer given to msvc_jwks_fetcher_close().
 */
typedef void (*msvc_jwks_close_cb)(void *data);

/**
 * @brief Receives the outcome of a fetch made by a #msvc_jwks_get_fn hook.
 * @param arg            The pointer the hook was given.
 * @param err            #MSVC_OK when a response arrived, else why not
 *                       (MSVC_ECANCELED after a cancellation).
 * @param status         The response status when err is #MSVC_OK.
 * @param body           The response body (borrowed for the call), or NULL.
 * @param len            Its length.
 * @param cache_control  The response's Cache-Control value, or NULL.
 */
typedef void (*msvc_jwks_got_fn)(void *arg, int err, int status, const char *body,
                                 size_t len, const char *cache_control);

/**
 * @brief Fetches the JWK Set document in place of the fetcher's own HTTP
 *        client, for example through service discovery.
 * @param data        The `get_data` option.
 * @param url         The fetcher's URL; borrowed for the call.
 * @param timeout_ms  Total timeout of the fetch.
 * @param done        To be called exactly once, later, from the fetcher's
 *                    loop (never from inside the hook), also after a
 *                    cancellation.
 * @param arg         Passed to @p done.
 * @param handle      Receives what the cancel hook takes.
 * @return #MSVC_OK when @p done will be called, else an error code (then
 *         @p done is not called).
 */
typedef int (*msvc_jwks_get_fn)(void *data, const char *url, uint32_t timeout_ms,
                                msvc_jwks_got_fn done, void *arg, void **handle);

/**
 * @brief Cancels a fetch started by a #msvc_jwks_get_fn hook; its completion
 *        still runs, with MSVC_ECANCELED.
 * @param handle  What the fetch hook returned in its @p handle argument.
 */
typedef void (*msvc_jwks_cancel_fn)(void *handle);

struct msvc_tls_config_s;

/** @brief Fetcher options; fill with msvc_jwks_opts_init(). */
typedef struct msvc_jwks_opts_s {
  size_t size; /**< sizeof(msvc_jwks_opts_t). */
  /** "http://host[:port]/path" or "https://host[:port]/path" of the JWK
   *  Set; required; copied. */
  const char *url;
  /** The key set to fill; required; borrowed: it must outlive the fetcher.
   *  The fetcher installs its unknown-kid hook on it. */
  msvc_jwt_keyset_t *keyset;
  /** Shortest time between two scheduled refreshes, and the retry delay
   *  after a failure (default 60000 ms). */
  uint32_t min_refresh_ms;
  /** Longest time between two refreshes (default 86400000 ms, 24 h). */
  uint32_t max_refresh_ms;
  /** Refresh interval when the answer carries no max-age (default 600000
   *  ms, 10 min), clamped like max-age. */
  uint32_t default_refresh_ms;
  /** Least time between two refetches triggered by unknown key ids
   *  (default 30000 ms). */
  uint32_t cooldown_ms;
  /** Largest accepted document (default 1 MiB, which is also the most
   *  msvc_jwt_keyset_load_jwks() reads). */
  size_t max_size;
  /** Total timeout of one fetch (default 10000 ms). */
  uint32_t timeout_ms;
  /** Registry counting `msvc_jwt_jwks_fetches_total{result}`, or NULL for
   *  none; borrowed: it must outlive the fetcher. */
  msvc_metrics_registry_t *metrics;
  /** Told after every fetch; NULL for none. */
  msvc_jwks_fetch_fn on_fetch;
  /** Passed to on_fetch. */
  void *on_fetch_data;
  /** Fetch hook used instead of the fetcher's own client, or NULL (the
   *  default). The URL must still be `http://`, but its host may then be
   *  anything the hook understands (a service name). */
  msvc_jwks_get_fn get;
  /** Cancels a fetch of @ref get; required with it. */
  msvc_jwks_cancel_fn get_cancel;
  /** Passed to @ref get; borrowed: it must outlive the fetcher. */
  void *get_data;
  /** Client TLS configuration for an `https://` URL (msvc/tls.h: its CA
   *  bundle, and the certificate presented for mutual TLS), or NULL (the
   *  default) for one that trusts the system CA bundle. The fetcher takes
   *  its own reference.
   *  @since 0.2 */
  struct msvc_tls_config_s *tls;
} msvc_jwks_opts_t;

/** @brief Counters of a fetcher (msvc_jwks_fetcher_stats()). */
typedef struct msvc_jwks_stats_s {
  uint64_t fetches;        /**< Fetches completed, successful or not. */
  uint64_t errors;         /**< Fetches that did not replace the keys. */
  uint64_t kid_refetches;  /**< Fetches started by an unknown key id. */
  int last_err;            /**< Outcome of the last fetch (#MSVC_OK or a code). */
  int last_status;         /**< HTTP status of the last answer, 0 for none. */
  uint32_t next_refresh_ms; /**< Delay of the refresh scheduled last. */
} msvc_jwks_stats_t;

/**
 * @brief Fill options with the defaults documented on each field.
 * @param opts  Options to fill; must not be NULL.
 * @since 0.1
 */
MSVC_API void msvc_jwks_opts_init(msvc_jwks_opts_t *opts);

/**
 * @brief Create a fetcher and start its first fetch.
 *
 * The first fetch completes later, from the loop; until then the key set
 * keeps whatever keys it holds.
 * @param loop  The caller's loop; must outlive the fetcher.
 * @param opts  Options (the URL is copied; key set and registry are
 *              borrowed).
 * @param out   Receives the fetcher; release it with
 *              msvc_jwks_fetcher_close().
 * @return #MSVC_OK; MSVC_EINVAL (NULL argument, options not from
 *         msvc_jwks_opts_init(), min_refresh_ms of 0 or above
 *         max_refresh_ms, max_size of 0, a fetch hook without its cancel
 *         hook, a server TLS configuration); MSVC_ENOTSUP (a TLS
 *         configuration in a build without TLS); MSVC_EURI (neither an
 *         `http://` nor an `https://` URL, or an `https://` URL with a
 *         fetch hook); MSVC_EMETRIC_MISMATCH when the
 *         registry holds the counter with other labels; MSVC_ENOMEM; a
 *         libuv code.
 * @note Not thread-safe: use the fetcher on its loop's thread. The unknown-
 *       kid hook it installs may run on any thread (it only wakes the loop).
 * @since 0.1
 */
MSVC_API int msvc_jwks_fetcher_new(uv_loop_t *loop, const msvc_jwks_opts_t *opts,
                                   msvc_jwks_fetcher_t **out);

/**
 * @brief Start a fetch now, unless one is in flight.
 * @param f  The fetcher.
 * @return #MSVC_OK (started, or one already in flight); MSVC_EINVAL;
 *         MSVC_ECLOSED when closing; MSVC_ENOMEM.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API int msvc_jwks_fetcher_refresh(msvc_jwks_fetcher_t *f);

/**
 * @brief Read the fetcher's counters.
 * @param f   The fetcher.
 * @param st  Receives the counters.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API void msvc_jwks_fetcher_stats(const msvc_jwks_fetcher_t *f,
                                      msvc_jwks_stats_t *st);

/**
 * @brief Cancel any fetch in flight, remove the unknown-kid hook from the
 *        key set, and release the fetcher.
 *
 * The key set keeps its keys and stays the caller's; once this call
 * returns the fetcher no longer touches it, so it may be freed at once. No
 * verification may run on another thread while the hook is removed.
 * @param f     The fetcher; NULL is a no-op. Do not use it after this call.
 * @param cb    Called from the loop once everything is released; may be NULL.
 * @param data  Passed to cb.
 * @note Loop thread only. on_fetch is not called for the cancelled fetch.
 * @since 0.1
 */
MSVC_API void msvc_jwks_fetcher_close(msvc_jwks_fetcher_t *f, msvc_jwks_close_cb cb,
                                      void *data);

#ifdef __cplusplus
}
#endif

#endif /* MSVC_JWKS_H */
