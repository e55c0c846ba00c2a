/**
 * @file msvc/registry.h
 * @brief Service registration and discovery behind one interface, with the
 *        backend chosen by a URI.
 *
 * A registry lets a process announce an instance of a service (register it
 * with a TTL; libmsvc keeps it alive with heartbeats until it is
 * deregistered) and find the instances of other services (resolve once, or
 * watch and be told the full new set whenever it changes).
 *
 * Backends, chosen by URI (`MSVC_REGISTRY`):
 *
 * | URI | backend |
 * |---|---|
 * | `memory://` | a table shared by every registry of this process |
 * | `local:///path/to/dir`, `local://` (default directory) | one JSON file per instance on this machine |
 * | `static://svc=host:port,host:port;svc2=host:port` | a fixed, read-only table |
 * | `etcd://host:port[,host:port...]` | accepted by the parser; not available in this version (MSVC_ENOTSUP) |
 * | `dns://?domain=D[&server=ip:port]` | DNS discovery (Kubernetes headless Services), when built with c-ares |
 *
 * `dns://` looks a service N up as SRV `_https._tcp.N.D` (instances are
 * then called over TLS: metadata `scheme=https`), else SRV `_http._tcp.N.D`,
 * else A/AAAA of `N.D` with a default port. SRV weights become instance
 * weights. A watched service is looked up again when its records' TTL runs
 * out, bounded and jittered. NXDOMAIN for every name (confirmed by a second
 * look) empties the set; SERVFAIL, timeouts and malformed answers keep the
 * last known set. Registering succeeds without announcing anything: the
 * platform publishes instances. Other parameters: `port=` (default port
 * for A/AAAA, 80), `min_ttl_ms=` (1000), `max_ttl_ms=` (60000),
 * `timeout_ms=` (per try, 1000), `tries=` (3). Without the system's
 * resolver configuration, `server=` names one server by numeric address.
 * A library built without c-ares refuses `dns://` with MSVC_ENOTSUP and a
 * message saying it was built without DNS support.
 *
 * Every backend shares the same hygiene: bursts of changes are debounced
 * into one callback; a backend that cannot be reached never turns a
 * non-empty set into an empty one (the last known set is delivered again,
 * flagged stale); a service that really has no instances is reported as an
 * empty, fresh set; failed operations are retried with jittered backoff.
 *
 * Threading: a registry and everything made from it belong to the thread
 * that runs its `uv_loop_t`; call its functions from that thread only.
 * Sets (msvc_registry_set_t) are immutable and reference-counted with
 * atomics, so a set may be handed to other threads and released there.
 * Callbacks are never called from inside the function that registered them.
 */
#ifndef MSVC_REGISTRY_H
#define MSVC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A registry bound to one loop and one backend. Opaque. */
typedef struct msvc_registry_s msvc_registry_t;
/** @brief One registered instance, kept alive until deregistered. Opaque. */
typedef struct msvc_registry_lease_s msvc_registry_lease_t;
/** @brief A watch on one service name. Opaque. */
typedef struct msvc_registry_watch_s msvc_registry_watch_t;
/** @brief An immutable, reference-counted snapshot of a service's
 *         instances, sorted by id. Opaque. */
typedef struct msvc_registry_set_s msvc_registry_set_t;

/** @brief Limits that every backend enforces on an instance. */
enum {
  /** Longest service name or instance id, in bytes. Names use only
   *  `A-Z a-z 0-9 . _ -` and do not start with a dot. */
  MSVC_REGISTRY_NAME_MAX = 128,
  /** Longest address, in bytes. */
  MSVC_REGISTRY_ADDRESS_MAX = 255,
  /** Most metadata entries per instance. */
  MSVC_REGISTRY_META_MAX = 64,
  /** Largest serialized instance, in bytes. */
  MSVC_REGISTRY_PAYLOAD_MAX = 65536,
  /** Largest weight. */
  MSVC_REGISTRY_WEIGHT_MAX = 1000000
};

/** @brief One metadata entry: a string key and a string value. */
typedef struct msvc_registry_meta_s {
  const char *key;   /**< Non-empty UTF-8 text. */
  const char *value; /**< UTF-8 text, may be empty. */
} msvc_registry_meta_t;

/**
 * @brief One instance of a service.
 *
 * When passed in (msvc_registry_register()), every pointer is borrowed for
 * the call and copied. When read from a set, every pointer belongs to the
 * set and lives as long as the set.
 *
 * Serialized as the JSON object
 * `{"id","service","address","port","weight","version","metadata":{}}`.
 */
typedef struct msvc_registry_instance_s {
  const char *id;      /**< Unique id; NULL at registration to generate one. */
  const char *service; /**< Service name (see MSVC_REGISTRY_NAME_MAX). */
  const char *address; /**< Host name or IP address peers connect to. */
  uint16_t port;       /**< TCP port, 1..65535. */
  uint32_t weight;     /**< Relative weight for balancing; 0 takes no traffic. */
  const char *version; /**< Free-form version text; NULL means "". */
  const msvc_registry_meta_t *metadata; /**< Entries, or NULL. */
  size_t nmetadata;                     /**< Number of entries. */
} msvc_registry_instance_t;

/** @brief The operations whose failures are counted, for
 *         `msvc_registry_errors_total{backend,op}`. */
typedef enum msvc_registry_op_e {
  MSVC_REGISTRY_OP_REGISTER = 0,   /**< First announcement of an instance. */
  MSVC_REGISTRY_OP_HEARTBEAT = 1,  /**< Keeping an instance alive. */
  MSVC_REGISTRY_OP_DEREGISTER = 2, /**< Removing an instance. */
  MSVC_REGISTRY_OP_RESOLVE = 3,    /**< One-off lookup. */
  MSVC_REGISTRY_OP_WATCH = 4,      /**< Refreshing a watched service. */
  MSVC_REGISTRY_OP_COUNT = 5       /**< Number of operations. */
} msvc_registry_op_t;

/** @brief What a registry event reports. */
typedef enum msvc_registry_event_type_e {
  /** An operation failed: `backend`, `op` and `error` are set. */
  MSVC_REGISTRY_EVENT_ERROR = 0,
  /** A watch delivered a set: `service`, `instances` and `stale` are set.
   *  This is `msvc_registry_instances{service}`. */
  MSVC_REGISTRY_EVENT_INSTANCES = 1
} msvc_registry_event_type_t;

/** @brief An event passed to the hook set with
 *         msvc_registry_set_event_hook(). Valid only during the call. */
typedef struct msvc_registry_event_s {
  msvc_registry_event_type_t type; /**< What happened. */
  const char *backend;             /**< "memory", "local", "static", ... */
  msvc_registry_op_t op;           /**< Failed operation (ERROR). */
  int error;                       /**< Its error code (ERROR). */
  const char *service;             /**< Service concerned, or NULL. */
  size_t instances;                /**< Set size (INSTANCES). */
  bool stale;                      /**< Set is the last known one (INSTANCES). */
} msvc_registry_event_t;

/** @brief Options of a registry. Fill with msvc_registry_opts_init(). */
typedef struct msvc_registry_opts_s {
  size_t size;              /**< sizeof(msvc_registry_opts_t). */
  uint32_t debounce_ms;     /**< Quiet time before a change is delivered (10). */
  uint32_t debounce_max_ms; /**< Longest a change waits during a burst (200). */
  uint32_t rescan_ms;       /**< Periodic re-read of watched services by
                                 backends without reliable push (1000). */
  uint32_t retry_min_ms;    /**< First retry delay after a failure (100). */
  uint32_t retry_max_ms;    /**< Cap of the jittered exponential backoff (5000). */
} msvc_registry_opts_t;

/**
 * @brief Called when a registry has finished closing.
 * @param data  The pointer given to msvc_registry_close().
 */
typedef void (*msvc_registry_close_cb)(void *data);

/**
 * @brief Reports the state of a lease: after its first announcement, and
 *        whenever it changes between healthy and failing.
 * @param lease   The lease.
 * @param status  #MSVC_OK when the instance is visible, else the error of
 *                the last attempt (it keeps being retried).
 * @param data    The pointer given to msvc_registry_register().
 */
typedef void (*msvc_registry_lease_cb)(msvc_registry_lease_t *lease,
                                       int status, void *data);

/**
 * @brief Called once when a deregistration has finished and the lease is
 *        gone.
 * @param status  #MSVC_OK, or the error met while removing the instance.
 * @param data    The pointer given to msvc_registry_deregister().
 */
typedef void (*msvc_registry_done_cb)(int status, void *data);

/**
 * @brief Receives the result of msvc_registry_resolve().
 * @param status  #MSVC_OK with a set (possibly empty, or stale), or an
 *                error with @p set NULL.
 * @param set     The instances; borrowed for the call, take a reference
 *                with msvc_registry_set_ref() to keep it.
 * @param data    The pointer given to msvc_registry_resolve().
 */
typedef void (*msvc_registry_resolve_cb)(int status, msvc_registry_set_t *set,
                                         void *data);

/**
 * @brief Receives the full new set of a watched service.
 * @param watch  The watch.
 * @param set    The instances; borrowed for the call (also reachable with
 *               msvc_registry_watch_set() until the next delivery).
 * @param data   The pointer given to msvc_registry_watch().
 */
typedef void (*msvc_registry_watch_cb)(msvc_registry_watch_t *watch,
                                       msvc_registry_set_t *set, void *data);

/**
 * @brief Receives registry events, for metrics.
 * @param data  The pointer given to msvc_registry_set_event_hook().
 * @param ev    The event; valid only during the call.
 */
typedef void (*msvc_registry_event_fn)(void *data,
                                       const msvc_registry_event_t *ev);

/**
 * @brief Fill @p opts with the defaults.
 * @param opts  Options to fill; must not be NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_registry_opts_init(msvc_registry_opts_t *opts);

/**
 * @brief Zero an instance and set its weight to 1.
 * @param inst  Instance to fill; must not be NULL.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_registry_instance_init(msvc_registry_instance_t *inst);

/**
 * @brief The URI used when `MSVC_REGISTRY` is unset:
 *        `local://$XDG_RUNTIME_DIR/msvc` when that variable holds an
 *        absolute path, else `local://${TMPDIR:-/tmp}/msvc-<uid>` with the
 *        effective user id (a directory of that user alone).
 * @param out  Receives a NUL-terminated string that the caller frees with
 *             msvc_free().
 * @return #MSVC_OK, MSVC_EINVAL when @p out is NULL, MSVC_ENOMEM.
 * @note Reads the environment (not safe against concurrent setenv()).
 * @since 0.1
 */
MSVC_API int msvc_registry_default_uri(char **out);

/**
 * @brief Check a registry URI without opening anything.
 *
 * Gives the same verdict as msvc_registry_new() would for the URI's syntax.
 * For `local://` an existing directory (and its ancestors) is also checked
 * as msvc_registry_new() checks it, without creating anything.
 *
 * @param uri         The URI.
 * @param err      Receives a one-line message naming the problem and the
 *                    accepted forms, or NULL.
 * @param errlen  Size of @p err.
 * @return #MSVC_OK; MSVC_EURI for a malformed or unknown URI; MSVC_EACCES
 *         for a `local://` directory that is not private to the effective
 *         user (a symbolic link, another user's, writable by group or
 *         others, below an ancestor anyone may write without the sticky
 *         bit); a system error when it cannot be inspected (-ENOTDIR, ...);
 *         MSVC_ENOTSUP for a `dns://` URI when the library was built
 *         without DNS support; MSVC_ENOMEM.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int msvc_registry_check_uri(const char *uri, char *err,
                                     size_t errlen);

/**
 * @brief Open a registry on a caller-owned loop.
 *
 * For `local://` the directory is created (mode 0700) when missing, and
 * refused when it is not private to the effective user (see
 * msvc_registry_check_uri()); the check is repeated at every operation.
 * Instance files of another user, or writable by others, never reach a set
 * and count as errors of the operation that met them.
 *
 * @param loop  The loop; borrowed until the close callback.
 * @param uri   The backend URI; NULL means `MSVC_REGISTRY`, or the default
 *              (msvc_registry_default_uri()) when that is unset or empty.
 *              Copied.
 * @param opts  Options, or NULL for the defaults. Copied.
 * @param out   Receives the registry; close it with msvc_registry_close().
 * @return #MSVC_OK; MSVC_EURI (the reason is logged, and given by
 *         msvc_registry_check_uri()); MSVC_ENOTSUP for etcd; MSVC_EINVAL;
 *         MSVC_EACCES for an unsafe directory; MSVC_ENOMEM; a system error
 *         from creating the directory.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API int msvc_registry_new(uv_loop_t *loop, const char *uri,
                               const msvc_registry_opts_t *opts,
                               msvc_registry_t **out);

/**
 * @brief Close a registry: stop every watch, deregister every lease (the
 *        instances are removed at once), then release everything.
 *
 * Pending resolve callbacks still run. Memory is released once libuv is done
 * with the registry's handles; @p cb is called last.
 *
 * @param reg   The registry, or NULL (a no-op).
 * @param cb    Called when closed, or NULL.
 * @param data  Passed to @p cb.
 * @note Loop thread only. Leases and watches of @p reg must not be used
 *       after this call.
 * @since 0.1
 */
MSVC_API void msvc_registry_close(msvc_registry_t *reg,
                                  msvc_registry_close_cb cb, void *data);

/**
 * @brief The backend's name: "memory", "local", "static", "etcd" or "dns".
 * @param reg  The registry.
 * @return A static string.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API const char *msvc_registry_backend(const msvc_registry_t *reg);

/**
 * @brief How long peers may go on sending to an instance after it is
 *        deregistered: the time a graceful shutdown keeps serving before
 *        it closes its listener.
 *
 * Backends that tell watchers of a change (local, etcd, memory) answer the
 * debounce bound of the options plus 100 ms: 300 ms by default. With
 * `dns://` peers learn only at their next resolution, so the answer is
 * `min_ttl_ms + timeout_ms` of the URI plus the debounce bound (2.2 s by
 * default). That covers records whose TTL is at most `min_ttl_ms`; for
 * records with a longer TTL, raise `min_ttl_ms` to it (peers resolve at
 * the TTL anyway).
 *
 * @param reg  The registry, or NULL (answers 0).
 * @return Milliseconds, assuming peers use the same options and URI.
 * @note Loop thread only.
 * @since 0.3
 */
MSVC_API uint64_t msvc_registry_notice_ms(const msvc_registry_t *reg);

/**
 * @brief How many times an operation has failed on this registry.
 * @param reg  The registry.
 * @param op   The operation.
 * @return The count, for `msvc_registry_errors_total{backend,op}`; 0 for an
 *         unknown @p op.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API uint64_t msvc_registry_errors(const msvc_registry_t *reg,
                                       msvc_registry_op_t op);

/**
 * @brief The lower-case name of an operation ("register", "heartbeat",
 *        "deregister", "resolve", "watch").
 * @param op  The operation.
 * @return A static string; "unknown" outside the enum.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_registry_op_name(msvc_registry_op_t op);

/**
 * @brief Install a hook that sees every error and every delivered set.
 * @param reg   The registry.
 * @param fn    The hook, or NULL to remove it.
 * @param data  Passed to @p fn; borrowed until replaced or the registry
 *              closes.
 * @note Loop thread only; the hook runs on the loop thread.
 * @since 0.1
 */
MSVC_API void msvc_registry_set_event_hook(msvc_registry_t *reg,
                                           msvc_registry_event_fn fn,
                                           void *data);

/**
 * @brief Register an instance and keep it alive until deregistered.
 *
 * The instance is validated and copied at once; it is announced from the
 * loop shortly after, then refreshed every @p ttl_ms / 3. Peers treat it as
 * gone when no heartbeat arrived for @p ttl_ms.
 *
 * @param reg     The registry.
 * @param inst    The instance; borrowed for the call. A NULL id gets a
 *                random 128-bit one (32 hex digits).
 * @param ttl_ms  Time to live, 30..86400000 ms.
 * @param cb      Told when the instance is visible and when its state
 *                changes; may be NULL.
 * @param data    Passed to @p cb.
 * @param out     Receives the lease, or NULL when the caller does not need
 *                it (the registry deregisters it at close).
 * @return #MSVC_OK; MSVC_EINVAL for a bad instance or TTL; MSVC_ENOTSUP on
 *         a read-only backend (static); MSVC_ECLOSED when closing;
 *         MSVC_ENOMEM.
 * @note Loop thread only. The lease belongs to the registry; it is freed by
 *       msvc_registry_deregister() or msvc_registry_close().
 * @since 0.1
 */
MSVC_API int msvc_registry_register(msvc_registry_t *reg,
                                    const msvc_registry_instance_t *inst,
                                    uint32_t ttl_ms, msvc_registry_lease_cb cb,
                                    void *data, msvc_registry_lease_t **out);

/**
 * @brief The id of a lease's instance (given or generated).
 * @param lease  The lease.
 * @return The id, borrowed until the lease is gone.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API const char *msvc_registry_lease_id(const msvc_registry_lease_t *lease);

/**
 * @brief Remove the instance now and release the lease.
 * @param lease  The lease, or NULL (a no-op).
 * @param cb     Called once it is done (the lease is gone by then), or NULL.
 * @param data   Passed to @p cb.
 * @note Loop thread only. The lease must not be used after this call.
 * @since 0.1
 */
MSVC_API void msvc_registry_deregister(msvc_registry_lease_t *lease,
                                       msvc_registry_done_cb cb, void *data);

/**
 * @brief Look up the current instances of a service once.
 * @param reg      The registry.
 * @param service  The service name; copied.
 * @param cb       Receives the result from the loop; must not be NULL.
 * @param data     Passed to @p cb.
 * @return #MSVC_OK when @p cb will be called; MSVC_EINVAL for a bad name;
 *         MSVC_ECLOSED when closing; MSVC_ENOMEM. On error @p cb is not
 *         called.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API int msvc_registry_resolve(msvc_registry_t *reg, const char *service,
                                   msvc_registry_resolve_cb cb, void *data);

/**
 * @brief Watch a service: @p cb receives its full set once at the start and
 *        again after every change (debounced).
 * @param reg      The registry.
 * @param service  The service name; copied.
 * @param cb       Receives each new set; must not be NULL.
 * @param data     Passed to @p cb.
 * @param out      Receives the watch, or NULL (it then lives until the
 *                 registry closes).
 * @return #MSVC_OK; MSVC_EINVAL; MSVC_ECLOSED; MSVC_ENOMEM; a backend error
 *         (for example MSVC_EACCES on an unsafe directory).
 * @note Loop thread only. The watch belongs to the registry.
 * @since 0.1
 */
MSVC_API int msvc_registry_watch(msvc_registry_t *reg, const char *service,
                                 msvc_registry_watch_cb cb, void *data,
                                 msvc_registry_watch_t **out);

/**
 * @brief The set last delivered by a watch.
 * @param watch  The watch.
 * @return The set, borrowed until the next delivery or the end of the
 *         watch (take a reference to keep it), or NULL before the first
 *         delivery.
 * @note Loop thread only.
 * @since 0.1
 */
MSVC_API msvc_registry_set_t *
msvc_registry_watch_set(const msvc_registry_watch_t *watch);

/**
 * @brief Stop a watch; its callback is not called again.
 * @param watch  The watch, or NULL (a no-op).
 * @note Loop thread only. Memory is released from the loop.
 * @since 0.1
 */
MSVC_API void msvc_registry_unwatch(msvc_registry_watch_t *watch);

/**
 * @brief Number of instances in a set.
 * @param set  The set.
 * @return The count (0 for an empty service).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API size_t msvc_registry_set_count(const msvc_registry_set_t *set);

/**
 * @brief One instance of a set; sets are sorted by id.
 * @param set  The set.
 * @param i    Index, below msvc_registry_set_count().
 * @return The instance, owned by the set, or NULL when out of range.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const msvc_registry_instance_t *
msvc_registry_set_at(const msvc_registry_set_t *set, size_t i);

/**
 * @brief Whether a set is the last known one, kept because the backend
 *        could not be reached.
 * @param set  The set.
 * @return true when stale.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API bool msvc_registry_set_stale(const msvc_registry_set_t *set);

/**
 * @brief The service a set belongs to.
 * @param set  The set.
 * @return The name, owned by the set.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *msvc_registry_set_service(const msvc_registry_set_t *set);

/**
 * @brief Take a reference to a set.
 * @param set  The set.
 * @return @p set. Release with msvc_registry_set_unref().
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API msvc_registry_set_t *msvc_registry_set_ref(msvc_registry_set_t *set);

/**
 * @brief Drop a reference; the last one frees the set.
 * @param set  The set, or NULL (a no-op).
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_registry_set_unref(msvc_registry_set_t *set);

/**
 * @brief A metadata value of an instance.
 * @param inst  The instance.
 * @param key   The key.
 * @return The value, owned by @p inst, or NULL when absent.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API const char *
msvc_registry_instance_meta(const msvc_registry_instance_t *inst,
                            const char *key);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_REGISTRY_H */
