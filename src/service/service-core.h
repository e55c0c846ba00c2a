/*
 * Private state of the service object, shared by its configuration
 * (config.c), its lifecycle (service.c) and its worker loops
 * (service_workers.c). Nothing outside these files looks inside.
 */
#ifndef MSVC_SERVICE_CORE_H
#define MSVC_SERVICE_CORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/events.h>
#include <msvc/jwks.h>
#include <msvc/middleware.h>
#include <msvc/service.h>
#include <msvc/tls.h>

#include "../msvc-internal.h"
#include "service-internal.h"

/* The resolved configuration: options over environment over defaults.
 * Every string is owned. */
typedef struct msvc__svc_config_s {
  char *name;
  char *host;
  int port;
  char *advertise_host; /* NULL: the listen host */
  int advertise_port;   /* 0: the bound port */
  char *registry_uri;
  uint32_t registry_ttl_ms;
  msvc_lb_policy_t lb_policy;
  unsigned workers;
  char *version;
  msvc_registry_meta_t *metadata; /* keys and values owned */
  size_t nmetadata;
  uint32_t weight;
  uint32_t drain_timeout_ms;
  bool handle_signals;
  bool access_log;
  msvc_http_server_opts_t server;
  msvc_metrics_registry_t *metrics; /* borrowed */
  msvc_breaker_opts_t breaker;
  msvc_retry_opts_t retry;
  uint32_t call_timeout_ms;
  /* JWT: the strings of jwt point into the owned copies below. */
  bool jwt_enabled;
  msvc_mw_jwt_opts_t jwt;
  char *jwt_file;
  char *jwt_url;
  char *jwt_issuer;
  char *jwt_audience;
  const char *jwt_key_what; /* the option or variable that set the key source */
  /* TLS from MSVC_TLS_*: the server side when MSVC_TLS_CERT is set, the
   * client side (outgoing calls) when any of the variables is. One
   * reference each, released by msvc__svc_config_free(). */
  msvc_tls_config_t *tls_server;
  msvc_tls_config_t *tls_client;
  /* Worker pool of each loop (MSVC_WORK_THREADS / MSVC_WORK_QUEUE). */
  unsigned work_threads;
  unsigned work_queue;
  /* Event backend URI (MSVC_EVENTS); NULL: no events. */
  char *events_uri;
  /* Adaptive concurrency limit (MSVC_CONCURRENCY*), limit.c. */
  bool concurrency_on;
  msvc_limit_adaptive_opts_t concurrency;
  /* Tracing (trace.c): endpoint NULL = no tracer. */
  char *trace_endpoint;
  char *trace_resource;
  char *trace_service_name;
  double trace_sample;
  uint32_t trace_slow_ms;
  int trace_protocol; /* msvc_otlp_protocol_t */
} msvc__svc_config_t;

/* Reads options and environment into cfg. On failure cfg holds nothing and
 * err says which variable or option is wrong. */
int msvc__svc_config_load(msvc__svc_config_t *cfg, const char *name,
                          const msvc_service_opts_t *opts, char *err, size_t errlen);
void msvc__svc_config_free(msvc__svc_config_t *cfg);

/* Tracing (trace.c): the variables, the tracer, its flush at the stop. */
int msvc__svc_trace_config(msvc__svc_config_t *cfg, char *err, size_t errlen);
void msvc__svc_trace_config_free(msvc__svc_config_t *cfg);
int msvc__svc_trace_create(msvc_service_t *svc, char *err, size_t errlen);
/* Starts the tracer's flush on the thread pool, bounded by what is left of
 * the drain deadline; done runs on the loop once it is over. Returns false
 * (and never calls done) when there was nothing to wait for or it ran at
 * once. */
bool msvc__svc_trace_flush(msvc_service_t *svc, void (*done)(msvc_service_t *svc));

/* A route or a middleware added by the user, replayed on every worker. */
typedef struct msvc__svc_route_s {
  msvc__queue_t link;
  char *method;
  char *pattern;
  msvc_http_handler_fn handler;
  void *data;
  msvc_http_route_opts_t ropts;
} msvc__svc_route_t;

typedef struct msvc__svc_mw_s {
  msvc__queue_t link;
  msvc_http_middleware_t mw;
} msvc__svc_mw_t;

typedef struct msvc__svc_check_s {
  msvc__queue_t link;
  char *name;
  msvc_service_check_fn fn;
  void *data;
} msvc__svc_check_t;

/* What one loop's server carries: the main loop's, or a worker's. */
typedef struct msvc__svc_loop_s {
  msvc_http_server_t *srv;
  msvc_mw_metrics_t *mw_metrics;
  msvc_mw_jwt_t *mw_jwt;
  bool attached; /* a worker's loop attached to the caller */
  struct msvc_work_s *work; /* this loop's worker pool (work.c) */
  /* A worker's: wakes it to cut its drain short (a second stop signal).
   * cut_open is guarded by the service's cut_mu: the main thread sends only
   * while the worker has not closed the handle. */
  uv_async_t cut;
  bool cut_open;
} msvc__svc_loop_t;

struct msvc_service_s {
  uv_loop_t *loop;
  msvc__svc_config_t cfg;
  _Atomic int state; /* msvc_service_state_t; read from worker threads */
  msvc_service_ready_cb on_ready;
  msvc_service_stopped_cb on_stopped;
  void *data;

  msvc__queue_t routes;
  msvc__queue_t mws;
  msvc__queue_t checks;

  msvc_registry_t *registry;
  struct msvc_events_s *events; /* NULL without MSVC_EVENTS */
  struct msvc__admin_s *admin;  /* NULL without MSVC_ADMIN (src/admin) */
  struct msvc_tracer_s *tracer; /* NULL without an OTLP endpoint */
  msvc_registry_lease_t *lease;
  char *instance_id;
  _Atomic int lease_status; /* 1: not yet told; else the last status */
  msvc__caller_t *caller;

  /* The JWT key set and its fetcher, shared by every loop's middleware. */
  msvc_jwt_keyset_t *keyset;
  msvc_jwks_fetcher_t *jwks;
  bool register_waits_keys; /* registration held until the first key set */
  bool jwks_self; /* the JWK Set URL names this very service */
  uint32_t self_retry_ms; /* next quick retry of that fetch while starting */

  /* msvc_registry_instances{service}, msvc_registry_errors_total{backend,op} */
  msvc_metrics_family_t *reg_instances;
  msvc_metrics_family_t *reg_errors;

  msvc_mw_concurrency_t *concurrency; /* shared by every loop; limit.c */

  msvc__svc_loop_t main;     /* workers == 1 */
  msvc_http_workers_t *workers; /* workers > 1 */
  msvc__svc_loop_t *wloops;  /* one per worker */
  uv_mutex_t cut_mu;         /* initialised with wloops */
  int port;

  bool signals_on;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_signal_t sighup; /* reloads the TLS files */
  uv_timer_t timer; /* deferred start outcome; bounds the deregistration */
  uv_work_t workers_stop;
  uint32_t workers_drain_ms; /* read by the thread that stops the workers */
  uv_work_t trace_flush;     /* the tracer's flush, off the loop */
  uint64_t drain_deadline_ms; /* msvc_now_ms() by which the drain must end */
  void (*trace_flushed)(msvc_service_t *svc);

  /* stop */
  int stage;            /* lifecycle.c's teardown stage */
  int start_error;      /* start-up failure reported to on_ready */
  bool started;
  bool dereg_pending;   /* deregistration under way */
  bool draining;        /* the server drain (or the workers' stop) under way */
  bool cut;             /* a second SIGINT: close now */
  bool free_when_done;  /* msvc_service_free() of a service never started */
  int pending;          /* handles still closing in the last stage */
  msvc_service_stopped_cb stop_cb;
  void *stop_data;
};

/* Releases everything the service holds, from the loop (lifecycle.c);
 * used by the stop and by msvc_service_free() of a service never started. */
void msvc__svc_teardown(msvc_service_t *svc);

/* Registers the instance, or reports why it cannot (lifecycle.c). */
void msvc__svc_register(msvc_service_t *svc);
/* Registered and, with a JWK Set URL, holding keys: READY (lifecycle.c). */
void msvc__svc_become_ready(msvc_service_t *svc);

/* Installs the default middleware, the built-in routes and the user's
 * routes and middleware on one loop's server (service.c). */
int msvc__svc_setup_server(msvc_service_t *svc, msvc_http_server_t *srv,
                           msvc__svc_loop_t *l);
void msvc__svc_loop_free(msvc__svc_loop_t *l);
/* The loop's worker pool: created with its server, drained with it,
 * closed when the loop's server is released (work.c). */
int msvc__svc_work_setup(msvc_service_t *svc, msvc_http_server_t *srv,
                         msvc__svc_loop_t *l);
void msvc__svc_work_close(msvc__svc_loop_t *l);
/* The concurrency limit: MSVC_CONCURRENCY* into cfg, and its middleware
 * (made on first use, shared by every loop) on a server (limit.c). */
int msvc__svc_limit_load(msvc__svc_config_t *cfg, char *err, size_t errlen);
int msvc__svc_limit_use(msvc_service_t *svc, msvc_http_server_t *srv);
/* Adds the admin page of the limits, once per process (limit_admin.c). */
void msvc__svc_limit_admin(void);
/* Frees the memory of a service whose handles are all released. */
void msvc__svc_free_memory(msvc_service_t *svc);

#endif /* MSVC_SERVICE_CORE_H */
