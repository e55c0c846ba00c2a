/*
 * Private to the calls half of the service block (call*.c, fanout.c,
 * proxy.c): the caller's per-service targets and per-endpoint state.
 *
 * Threads: targets, endpoints, balancers and breakers are shared by every
 * loop attached to the caller. A target's endpoint array is guarded by its
 * mutex; endpoints are reference-counted so that an attempt in flight on a
 * worker keeps its breaker alive while the main loop swaps the set. Loop
 * contexts (one per attached loop: its client and its calls) are touched
 * only from their own thread, except for the list that links them, which
 * the caller's mutex guards.
 */
#ifndef MSVC_CALL_INTERNAL_H
#define MSVC_CALL_INTERNAL_H

#include <stdatomic.h>

#include <msvc/log.h>
#include <msvc/middleware.h>

#include "../msvc-internal.h"
#include "service-internal.h"

#define CALL_LOG "call"

/* Targets a loop context remembers for its calls. */
#define CALL_RECENT_TARGETS 4

typedef struct call_target_s call_target_t;
typedef struct call_loop_s call_loop_t;

/* Status labels of msvc_http_client_requests_total and _attempts_total
 * that are not HTTP codes; every error maps to one of them. */
enum {
  CALL_ST_TIMEOUT,
  CALL_ST_REFUSED,
  CALL_ST_RESET,
  CALL_ST_BREAKER_OPEN,
  CALL_ST_NO_ENDPOINTS,
  CALL_ST_COUNT
};

/* Which counter an outcome goes to. */
typedef enum { CALL_COUNT_REQUEST, CALL_COUNT_ATTEMPT } call_count_t;

/* Counter handles of one family for one service, made on first use. */
typedef struct call_counters_s {
  _Atomic(msvc_metrics_counter_t *) by_code[1000];
  _Atomic(msvc_metrics_counter_t *) by_err[CALL_ST_COUNT];
} call_counters_t;

typedef struct call_endpoint_s {
  atomic_int refs;
  call_target_t *target;
  char *id;   /* "host:port", as the balancer knows it */
  char *host; /* what the client connects to */
  int port;
  /* The instance registered scheme=https; a later set may change it, so
   * attempts on other loops read it atomically. */
  atomic_bool tls;
  msvc_breaker_t *breaker;
  msvc_metrics_counter_t *picks;
  msvc_metrics_gauge_t *inflight;
  msvc_metrics_gauge_t *state;
  /* Registrations (hashes of instance ids) seen at this address in the last
   * set, and those of the set being applied; main loop only. A new one
   * means the instance came back, and an open breaker probes it at once. */
  uint64_t regs[4];
  uint8_t nregs;
  uint64_t next_regs[4];
  uint8_t next_nregs;
} call_endpoint_t;

struct call_target_s {
  msvc__caller_t *caller;
  char *name;
  msvc_lb_t *lb;
  uv_mutex_t mu; /* guards eps */
  call_endpoint_t **eps;
  _Atomic size_t neps; /* written under mu, read anywhere */
  /* 0 before the first set, 1 once one was delivered, a negative code when
   * the watch could not be started. Read by every loop. */
  atomic_int ready;
  msvc_registry_watch_t *watch; /* main loop only */
  bool watch_wanted;            /* queued for the main loop (caller mutex) */
  bool stale_eps;               /* the last set could not be applied: the
                                   next call has it applied again (caller
                                   mutex) */
  /* watch_wanted and not stale_eps: a call may take the target from its
   * loop's recent ones without the caller mutex. Written under it. */
  atomic_bool settled;
  call_target_t *next;          /* caller's list (caller mutex) */
  call_target_t *next_pending;  /* watches to start (caller mutex) */
  msvc_metrics_histogram_t *duration;
  msvc_metrics_counter_t *retries;
  call_counters_t requests; /* one per call, its final outcome */
  call_counters_t attempts; /* one per attempt sent */
  uint64_t changed_wall_ms; /* last set delivered (main loop; admin pages) */
};

struct call_loop_s {
  msvc__caller_t *caller;
  uv_loop_t *loop;
  msvc_http_client_t *client;
  msvc__queue_t calls; /* calls started on this loop */
  msvc_service_call_t *spare_calls; /* finished calls kept for reuse */
  size_t nspare_calls;
  /* Targets this loop called last; targets live as long as the caller. */
  call_target_t *recent[CALL_RECENT_TARGETS];
  unsigned recent_next; /* the slot the next new one takes */
  bool closing;
  bool client_closed;
  bool main;
  void (*closed_cb)(call_loop_t *lc);
  call_loop_t *next_thread; /* this thread's attached loops */
  call_loop_t *next_caller; /* caller's list (caller mutex) */
};

struct msvc__caller_s {
  msvc__caller_opts_t opts;
  char *self_name;
  msvc_retry_t *retry;
  uv_mutex_t mu; /* guards targets, pending, loops */
  call_target_t *targets;
  call_target_t *pending;
  call_loop_t *loops;
  call_loop_t *main_lc;
  uv_async_t wake; /* main loop: start watches asked for by workers */
  atomic_bool closing;
  int close_pending;
  void (*close_cb)(void *data);
  void *close_data;
  msvc_metrics_family_t *f_requests, *f_attempts, *f_duration, *f_retries;
  msvc_metrics_family_t *f_state, *f_transitions, *f_picks, *f_inflight;
};

/* call_caller.c */
call_loop_t *msvc__call_loop_current(msvc__caller_t *c);
/* The target of name among those lc called recently, when its watch runs
 * as wanted (no lock taken); NULL sends the call to msvc__call_target_get. */
call_target_t *msvc__call_target_recent(call_loop_t *lc, const char *name);
int msvc__call_target_get(msvc__caller_t *c, call_loop_t *lc, const char *name,
                          call_target_t **out);
call_endpoint_t *msvc__call_endpoint_find(call_target_t *t, const char *id);
void msvc__call_endpoint_unref(call_endpoint_t *ep);
/* Counts an outcome: a response's status when err is 0, else err mapped to
 * one of the labels; sent says whether the request went out (it decides
 * the label of an error without a closer one). Cancellations are not
 * counted. */
void msvc__call_count(call_target_t *t, call_count_t which, int err, int status,
                      bool sent);
/* The status label an outcome is counted under (a static string, or the
 * code written into buf). */
const char *msvc__call_status_label(int err, int status, bool sent, char buf[8]);
bool msvc__call_name_valid(const char *name);
void msvc__call_loop_maybe_closed(call_loop_t *lc);

/* call.c */
void msvc__call_cancel_all(call_loop_t *lc);
/* Frees the spare calls a loop context keeps for reuse. */
void msvc__call_spares_free(call_loop_t *lc);
/* msvc_service_call() on a caller; on_chunk, when set, streams the response
 * body (a response that has begun streaming is never retried). */
int msvc__caller_call(msvc__caller_t *c, const char *service,
                      const msvc_service_request_t *req, msvc_http_chunk_fn on_chunk,
                      msvc_service_call_t **out);

/* A call whose client span is the child of `within` (a span of the
 * caller's, e.g. a fan-out's) rather than of the request's server span;
 * within NULL is msvc__caller_call(). */
struct msvc_trace_ctx_s;
int msvc__caller_call_within(msvc__caller_t *c, const char *service,
                             const msvc_service_request_t *req, msvc_http_chunk_fn on_chunk,
                             const struct msvc_trace_ctx_s *within, msvc_service_call_t **out);

/* fanout.c, proxy.c: the public helpers on a caller. */
int msvc__caller_fanout_new(msvc__caller_t *c, uint32_t deadline_ms,
                            msvc_service_fanout_fn done, void *data,
                            msvc_service_fanout_t **out);
int msvc__caller_proxy(msvc__caller_t *c, msvc_http_req_t *req,
                       const msvc_service_proxy_opts_t *opts);

/* cache_get.c: GET through a response cache, for calls and the proxy. */
int msvc__caller_get_cached(msvc__caller_t *c, msvc_cache_t *cache, const char *service,
                            const msvc_service_request_t *req, msvc_service_cached_fn done,
                            void *data);
int msvc__proxy_cached(msvc__caller_t *c, msvc_cache_t *cache, const char *service,
                       msvc_http_req_t *req, const msvc_service_request_t *sr);
/* proxy.c: whether an upstream response header stays off the client's answer. */
bool msvc__proxy_skip_response_header(const char *name, const char *conn);

#endif /* MSVC_CALL_INTERNAL_H */
