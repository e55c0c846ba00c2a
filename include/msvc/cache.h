/**
 * @file msvc/cache.h
 * @brief A shared HTTP response cache for GET answers of other services
 *        (a gateway's or a backend-for-frontend's), driven by the
 *        answers' `Cache-Control`, with `ETag` revalidation,
 *        `stale-if-error`, a byte cap and LRU eviction.
 *
 * A pure object: no loop, no I/O, thread-safe, the time passed in
 * (`now_ms`, a monotonic clock such as msvc_now_ms()). The service block
 * uses it for calls and the reverse proxy (msvc_service_get_cached(),
 * msvc_service_proxy_opts_t::cache); docs/cache.md is the guide.
 *
 * **Keys and users.** An entry is found by a URI (what the caller makes
 * of the service and the target) and, for answers that belong to one
 * user, an identity (the request's `Authorization` value). An answer is
 * stored *shared* (one entry for every caller) only when nothing ties it
 * to a user: it is not `private`, has no `Vary: Authorization`, and either
 * came for a request without credentials or says `public`, `s-maxage` or
 * `must-revalidate` (RFC 9111 3.5). Every other storable answer is stored
 * under the identity of the request that got it and is only ever given to
 * a request with the very same identity; without an identity such an
 * answer is not stored at all. One user's private answer is therefore
 * never served to another.
 *
 * **Freshness.** `s-maxage`, else `max-age`, minus the upstream's `Age`;
 * `Expires` and heuristic freshness are not used (an answer without
 * `max-age` is kept only when it has an `ETag`, and revalidated on every
 * use). `no-store` is never stored; `no-cache` is stored when it has an
 * `ETag` and revalidated on every use.
 *
 * **stale-if-error.** An entry past its freshness may still answer when
 * the upstream fails (refused, timed out, 5xx), for as long as its
 * `stale-if-error` allows (or the cache's default), unless `no-cache`,
 * `must-revalidate` or `proxy-revalidate` forbid stale answers.
 */
#ifndef MSVC_CACHE_H
#define MSVC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/error.h>
#include <msvc/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Cache-Control ---------------------------------------------------------- */

/** @brief `no-store` was present. */
#define MSVC_CACHE_CC_NO_STORE (1u << 0)
/** @brief `no-cache` was present (a qualified `no-cache="f"` counts as
 *         unqualified). */
#define MSVC_CACHE_CC_NO_CACHE (1u << 1)
/** @brief `private` was present (qualified counts as unqualified). */
#define MSVC_CACHE_CC_PRIVATE (1u << 2)
/** @brief `public` was present. */
#define MSVC_CACHE_CC_PUBLIC (1u << 3)
/** @brief `must-revalidate` was present. */
#define MSVC_CACHE_CC_MUST_REVALIDATE (1u << 4)
/** @brief `proxy-revalidate` was present. */
#define MSVC_CACHE_CC_PROXY_REVALIDATE (1u << 5)
/** @brief `max-age` was present; its value is in msvc_cache_cc_t::max_age. */
#define MSVC_CACHE_CC_MAX_AGE (1u << 6)
/** @brief `s-maxage` was present; value in msvc_cache_cc_t::s_maxage. */
#define MSVC_CACHE_CC_S_MAXAGE (1u << 7)
/** @brief `stale-if-error` was present; value in
 *         msvc_cache_cc_t::stale_if_error. */
#define MSVC_CACHE_CC_STALE_IF_ERROR (1u << 8)
/** @brief The value was not a valid directive list (bad syntax or a bad
 *         number): the cache stores nothing from such an answer. */
#define MSVC_CACHE_CC_MALFORMED (1u << 31)

/** @brief Largest delta-seconds value kept; larger ones are clamped to it
 *         (RFC 9111 1.2.2). */
#define MSVC_CACHE_DELTA_MAX 2147483648u

/** @brief A parsed `Cache-Control` value. */
typedef struct msvc_cache_cc_s {
  uint32_t flags;          /**< MSVC_CACHE_CC_* bits. */
  uint32_t max_age;        /**< Seconds, when MSVC_CACHE_CC_MAX_AGE. */
  uint32_t s_maxage;       /**< Seconds, when MSVC_CACHE_CC_S_MAXAGE. */
  uint32_t stale_if_error; /**< Seconds, when MSVC_CACHE_CC_STALE_IF_ERROR. */
} msvc_cache_cc_t;

/**
 * @brief Parse a `Cache-Control` value (RFC 9111 5.2).
 *
 * Directive names are case-insensitive; values may be tokens or quoted
 * strings; unknown directives are skipped. A directive given twice keeps
 * its smallest value. A number that is not delta-seconds (`max-age=abc`,
 * `max-age=-1`), an unterminated quoted string or a stray character sets
 * #MSVC_CACHE_CC_MALFORMED (what was understood is still reported).
 *
 * @param value  The value (several header lines joined with commas);
 *               borrowed; need not be NUL-terminated. NULL means absent.
 * @param len    Its length in bytes.
 * @param out    Receives the directives (zeroed first).
 * @return #MSVC_OK; MSVC_EINVAL for a NULL @p out, or a NULL @p value
 *         with a nonzero @p len.
 * @note Thread-safe; never allocates.
 * @since 0.3
 */
MSVC_API int msvc_cache_cc_parse(const char *value, size_t len, msvc_cache_cc_t *out);

/* ---- the cache -------------------------------------------------------------- */

/** @brief A response cache (opaque). */
typedef struct msvc_cache_s msvc_cache_t;

/** @brief One stored answer (opaque, immutable, reference-counted). */
typedef struct msvc_cache_entry_s msvc_cache_entry_t;

/** @brief How a request was answered, the `result` label of
 *         `msvc_cache_requests_total`. */
typedef enum msvc_cache_result_e {
  MSVC_CACHE_HIT = 0,         /**< A fresh entry answered. */
  MSVC_CACHE_MISS = 1,        /**< The upstream answered (nothing usable). */
  MSVC_CACHE_STALE = 2,       /**< The upstream failed: a stale entry
                                   answered within stale-if-error. */
  MSVC_CACHE_REVALIDATED = 3, /**< A stale entry answered after the
                                   upstream confirmed it (304). */
  MSVC_CACHE_BYPASS = 4       /**< Not cacheable (method, request
                                   `no-store`): the cache was not asked.
                                   Not counted in the metric. */
} msvc_cache_result_t;

/** @brief What msvc_cache_lookup() found. */
typedef enum msvc_cache_state_e {
  MSVC_CACHE_ABSENT = 0, /**< No entry. */
  MSVC_CACHE_FRESH = 1,  /**< An entry usable as it is. */
  MSVC_CACHE_EXPIRED = 2 /**< An entry to revalidate before use (or to
                              use on an upstream error, see
                              msvc_cache_entry_stale_ok()). */
} msvc_cache_state_t;

/** @brief Options of a cache; fill with msvc_cache_opts_init(). */
typedef struct msvc_cache_opts_s {
  size_t size;            /**< sizeof(msvc_cache_opts_t), set by the init. */
  /** Name, the `cache` label of the metrics (copied); default "default". */
  const char *name;
  /** Most bytes held (keys, headers, bodies and bookkeeping); least
   *  recently used entries go to make room. 4096..2^40; default 16 MiB. */
  uint64_t max_bytes;
  /** Largest single entry; 0 (the default): an eighth of max_bytes. */
  uint64_t max_entry_bytes;
  /** stale-if-error, in seconds, for answers that do not state one
   *  (0, the default: such answers are never served stale). */
  uint32_t default_stale_if_error_s;
  /** Where `msvc_cache_requests_total` and `msvc_cache_evictions_total`
   *  go; NULL: the default registry. Borrowed: must outlive the cache. */
  msvc_metrics_registry_t *registry;
  /** No metrics at all (tests, benchmarks); default false. */
  bool no_metrics;
} msvc_cache_opts_t;

/** @brief An answer offered to the cache. Everything is borrowed for the
 *         call. */
typedef struct msvc_cache_response_s {
  int status;                  /**< HTTP status. */
  const char *const *names;    /**< Header names. */
  const char *const *values;   /**< Header values, one per name. */
  size_t nheaders;             /**< Number of headers. */
  const void *body;            /**< Body bytes, or NULL. */
  size_t body_len;             /**< Body length. */
} msvc_cache_response_t;

/** @brief Counters of a cache. */
typedef struct msvc_cache_stats_s {
  uint64_t hits;        /**< MSVC_CACHE_HIT answers. */
  uint64_t misses;      /**< MSVC_CACHE_MISS answers. */
  uint64_t stale;       /**< MSVC_CACHE_STALE answers. */
  uint64_t revalidated; /**< MSVC_CACHE_REVALIDATED answers. */
  uint64_t entries;     /**< Entries held now. */
  uint64_t bytes;       /**< Bytes held now (never above max_bytes). */
  uint64_t evictions;   /**< Entries dropped for room. */
} msvc_cache_stats_t;

/**
 * @brief Fill cache options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.3
 */
MSVC_API void msvc_cache_opts_init(msvc_cache_opts_t *opts);

/**
 * @brief Create a cache.
 * @param opts  Options (copied), or NULL for the defaults.
 * @param out   Receives the cache.
 * @return #MSVC_OK; MSVC_EINVAL (NULL @p out, options not filled by
 *         msvc_cache_opts_init(), a size out of range); MSVC_ENOMEM; a
 *         metrics error (msvc_metrics_family_new()).
 * @note Free with msvc_cache_free().
 * @since 0.3
 */
MSVC_API int msvc_cache_new(const msvc_cache_opts_t *opts, msvc_cache_t **out);

/**
 * @brief Free a cache and every entry nobody holds.
 * @param c  The cache, or NULL (a no-op). No other call may be running on
 *           it; entries still held stay valid until released.
 * @since 0.3
 */
MSVC_API void msvc_cache_free(msvc_cache_t *c);

/**
 * @brief Find the entry for a URI.
 *
 * The entry stored under @p identity is looked for first, then the shared
 * one. A found entry moves to the front of the LRU order.
 *
 * @param c         The cache.
 * @param uri       The URI key (NUL-terminated; borrowed).
 * @param identity  The request's credentials (its `Authorization`
 *                  value), or NULL for an anonymous request.
 * @param now_ms    Current time in milliseconds (monotonic).
 * @param out       Receives a reference to the entry (release it with
 *                  msvc_cache_entry_release()) unless the answer is
 *                  #MSVC_CACHE_ABSENT (then NULL).
 * @return A msvc_cache_state_t, or MSVC_EINVAL.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API int msvc_cache_lookup(msvc_cache_t *c, const char *uri, const char *identity,
                               uint64_t now_ms, msvc_cache_entry_t **out);

/**
 * @brief Offer an upstream answer to the cache.
 *
 * Stored when the status is one RFC 9110 calls cacheable by default (200,
 * 203, 204, 300, 301, 308, 404, 405, 410, 414, 501), its `Cache-Control`
 * is well-formed, has no `no-store`, and gives a freshness lifetime or the
 * answer has an `ETag`; not with `Set-Cookie`, nor with a `Vary` naming
 * anything but `Authorization`; not larger than the entry cap. Shared or
 * per identity as the file comment says. A stored answer replaces the
 * entry of the same key; an answer with `no-store` removes it.
 *
 * @param c         The cache.
 * @param uri       The URI key; borrowed.
 * @param identity  The credentials of the request that got the answer,
 *                  or NULL.
 * @param res       The answer; borrowed, copied when stored.
 * @param now_ms    When it arrived (monotonic milliseconds).
 * @param out       Receives a reference to the new entry when stored
 *                  (release it), else NULL; may be NULL.
 * @return 1 when stored, 0 when the answer may not be stored,
 *         MSVC_EINVAL, MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API int msvc_cache_store(msvc_cache_t *c, const char *uri, const char *identity,
                              const msvc_cache_response_t *res, uint64_t now_ms,
                              msvc_cache_entry_t **out);

/**
 * @brief Freshen an entry with a `304 Not Modified`: its headers replace
 *        the stored ones of the same names, the body stays, the age starts
 *        again (RFC 9111 4.3.4).
 * @param c         The cache.
 * @param uri       The URI key the entry was found under.
 * @param identity  The request's credentials, as given to the lookup.
 * @param old       The entry revalidated (still held by the caller).
 * @param res304    The 304's headers (status and body are ignored).
 * @param now_ms    When it arrived.
 * @param out       Receives a reference to the freshened entry (release
 *                  it). When the new headers forbid storing (`no-store`)
 *                  the entry is removed but still given here, for this
 *                  one answer.
 * @return #MSVC_OK, MSVC_EINVAL, MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API int msvc_cache_revalidated(msvc_cache_t *c, const char *uri, const char *identity,
                                    const msvc_cache_entry_t *old,
                                    const msvc_cache_response_t *res304, uint64_t now_ms,
                                    msvc_cache_entry_t **out);

/**
 * @brief Drop the entries of a URI (the shared one and the one of
 *        @p identity), e.g. after an unsafe method succeeded on it.
 * @param c         The cache.
 * @param uri       The URI key.
 * @param identity  Credentials, or NULL for the shared entry only.
 * @return The number of entries dropped, or MSVC_EINVAL.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API int msvc_cache_invalidate(msvc_cache_t *c, const char *uri, const char *identity);

/**
 * @brief Count how a request was answered (statistics and
 *        `msvc_cache_requests_total`).
 * @param c       The cache.
 * @param result  The outcome; #MSVC_CACHE_BYPASS is ignored.
 * @note Thread-safe, lock-free.
 * @since 0.3
 */
MSVC_API void msvc_cache_note(msvc_cache_t *c, msvc_cache_result_t result);

/**
 * @brief Read a cache's counters.
 * @param c    The cache.
 * @param out  Receives them.
 * @return #MSVC_OK, MSVC_EINVAL.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API int msvc_cache_stats(msvc_cache_t *c, msvc_cache_stats_t *out);

/**
 * @brief The label of a result ("hit", "miss", "stale", "revalidated",
 *        "bypass"); also the `X-Cache` value the proxy sends, upper-cased.
 * @param r  The result.
 * @return A static string ("unknown" for a value out of range).
 * @since 0.3
 */
MSVC_API const char *msvc_cache_result_name(msvc_cache_result_t r);

/* ---- entries ---------------------------------------------------------------- */

/**
 * @brief Take another reference to an entry.
 * @param e  The entry.
 * @return @p e.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API msvc_cache_entry_t *msvc_cache_entry_ref(msvc_cache_entry_t *e);

/**
 * @brief Release a reference; the last one frees the entry.
 * @param e  The entry, or NULL.
 * @note Thread-safe.
 * @since 0.3
 */
MSVC_API void msvc_cache_entry_release(msvc_cache_entry_t *e);

/** @brief The stored status. @param e The entry. @return The status. @since 0.3 */
MSVC_API int msvc_cache_entry_status(const msvc_cache_entry_t *e);

/**
 * @brief The stored body.
 * @param e    The entry.
 * @param len  Receives its length; may be NULL.
 * @return The body, NUL-terminated (borrowed while the entry is held).
 * @since 0.3
 */
MSVC_API const char *msvc_cache_entry_body(const msvc_cache_entry_t *e, size_t *len);

/** @brief Number of stored headers. @param e The entry. @return The count. @since 0.3 */
MSVC_API size_t msvc_cache_entry_header_count(const msvc_cache_entry_t *e);

/**
 * @brief One stored header.
 * @param e      The entry.
 * @param i      Index, below msvc_cache_entry_header_count().
 * @param name   Receives its name (borrowed while the entry is held).
 * @param value  Receives its value (likewise).
 * @return #MSVC_OK, MSVC_EINVAL for an index out of range.
 * @since 0.3
 */
MSVC_API int msvc_cache_entry_header_at(const msvc_cache_entry_t *e, size_t i,
                                        const char **name, const char **value);

/**
 * @brief A stored header by name (case-insensitive; the first one).
 * @param e     The entry.
 * @param name  The name.
 * @return The value (borrowed while the entry is held), or NULL.
 * @since 0.3
 */
MSVC_API const char *msvc_cache_entry_header(const msvc_cache_entry_t *e, const char *name);

/**
 * @brief The entry's age (RFC 9111 4.2.3): the upstream's `Age` plus the
 *        time since it was stored.
 * @param e       The entry.
 * @param now_ms  Current time (monotonic milliseconds).
 * @return Whole seconds.
 * @since 0.3
 */
MSVC_API uint64_t msvc_cache_entry_age_s(const msvc_cache_entry_t *e, uint64_t now_ms);

/**
 * @brief Whether the entry may answer now in place of a failed upstream:
 *        within its stale-if-error window and not forbidden by
 *        `no-cache`, `must-revalidate` or `proxy-revalidate`.
 * @param e       The entry.
 * @param now_ms  Current time.
 * @return true when it may be served stale. A fresh entry also gives true.
 * @since 0.3
 */
MSVC_API bool msvc_cache_entry_stale_ok(const msvc_cache_entry_t *e, uint64_t now_ms);

/**
 * @brief Whether the entry is still fresh.
 * @param e       The entry.
 * @param now_ms  Current time.
 * @return true while it may be used without asking the upstream.
 * @since 0.3
 */
MSVC_API bool msvc_cache_entry_fresh(const msvc_cache_entry_t *e, uint64_t now_ms);

/**
 * @brief Whether the entry is one user's (stored under an identity).
 * @param e  The entry.
 * @return true for a per-identity entry, false for a shared one.
 * @since 0.3
 */
MSVC_API bool msvc_cache_entry_private(const msvc_cache_entry_t *e);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_CACHE_H */
