/*
 * The seam between the service object (service.c: configuration, server,
 * lifecycle) and its calls to other services (call.c and friends:
 * discovery, breakers, balancer, client pools, retries, call metrics).
 *
 * The service creates one caller at msvc_service_new() and hands it the
 * main loop; worker loops attach to it from their own threads so that each
 * loop has a client pool of its own, while balancers, breakers and metrics
 * are shared.
 */
#ifndef MSVC_SERVICE_INTERNAL_H
#define MSVC_SERVICE_INTERNAL_H

#include <msvc/service.h>

typedef struct msvc__caller_s msvc__caller_t;

typedef struct msvc__caller_opts_s {
  uv_loop_t *loop;                   /* main loop: watches run here */
  msvc_registry_t *registry;         /* borrowed; outlives the caller */
  msvc_metrics_registry_t *metrics;  /* borrowed */
  msvc_lb_policy_t policy;
  msvc_breaker_opts_t breaker;    /* per endpoint */
  msvc_retry_opts_t retry;
  uint32_t call_timeout_ms;
  const char *self_name;             /* for logs; copied */
  /* Client side of TLS for every attached loop's client; NULL for plain
   * HTTP only. Borrowed: the clients take references of their own. */
  struct msvc_tls_config_s *tls;
  /* Client spans of outgoing calls; NULL: tracing off. Borrowed. */
  struct msvc_tracer_s *tracer;
} msvc__caller_opts_t;

/* Creates handles on the main loop at once (an async handle, the main
 * loop's client): release it with msvc__caller_close() and let the loop run
 * its callback before msvc__caller_free(), even if no call was made. */
int msvc__caller_new(const msvc__caller_opts_t *opts, msvc__caller_t **out);

/* Worker loops: attach on the worker's thread before it serves, detach on
 * the same thread after its server has drained. Detaching closes that
 * loop's client; the worker runs its loop afterwards to release it. The
 * main loop is attached by msvc__caller_new(). */
int msvc__caller_attach(msvc__caller_t *c, uv_loop_t *loop);
void msvc__caller_detach(msvc__caller_t *c, uv_loop_t *loop);

/* Stop: cancel every call in flight (MSVC_ECANCELED), close watches and the
 * main loop's client; cb runs (from the loop) once all of it is released.
 * Calls made after this fail with MSVC_ESTATE. */
void msvc__caller_close(msvc__caller_t *c, void (*cb)(void *data), void *data);
/* After the close callback, and once every worker loop has detached. */
void msvc__caller_free(msvc__caller_t *c);

/* Used by msvc_service_call() and the helpers built on it. */
msvc__caller_t *msvc__service_caller(const msvc_service_t *svc);

/* Fetches a document by URL for the JWK Set fetcher when the URL's host is
 * a service name: the fetch hook of msvc_jwks_opts_t (msvc_jwks_get_fn),
 * with the caller as its data. Main loop only. *handle receives what
 * msvc__caller_jwks_cancel() takes; done then still runs, with
 * MSVC_ECANCELED. */
int msvc__caller_jwks_get(void *caller, const char *url, uint32_t timeout_ms,
                          void (*done)(void *arg, int err, int status,
                                       const char *body, size_t len,
                                       const char *cache_control),
                          void *arg, void **handle);
void msvc__caller_jwks_cancel(void *handle);

/* The caller's state for the admin pages (call_admin.c), each as an array
 * added to out under the given key. Main loop only. */
struct cJSON;
int msvc__caller_admin_registry(msvc__caller_t *c, struct cJSON *out);
int msvc__caller_admin_balancers(msvc__caller_t *c, struct cJSON *out);
int msvc__caller_admin_breakers(msvc__caller_t *c, struct cJSON *out);
int msvc__caller_admin_pools(msvc__caller_t *c, struct cJSON *out);

#endif /* MSVC_SERVICE_INTERNAL_H */
