/* Internals shared by the middleware sources. */
#ifndef MSVC_SERVICE_MW_INTERNAL_H
#define MSVC_SERVICE_MW_INTERNAL_H

#include <stddef.h>

/* The trace context middleware, opening a server span per request when
 * tracer is not NULL (the tracer must outlive the server). */
struct msvc_http_server_s;
struct msvc_tracer_s;
int msvc__mw_trace_use_tracer(struct msvc_http_server_s *srv, struct msvc_tracer_s *tracer);

/* What the admin page shows of a rate limit middleware. */
#include <msvc/limit.h>

typedef struct msvc__mw_ratelimit_info_s {
  const char *name, *key, *header, *method, *route;
  uint32_t rate, period_ms, burst, max_keys, share;
  msvc_limit_rate_stats_t stats;
} msvc__mw_ratelimit_info_t;

/* Calls fn for every live rate limit middleware of the process, under a
 * lock that msvc_mw_ratelimit_new() and _free() take. */
void msvc__mw_ratelimit_foreach(void (*fn)(const msvc__mw_ratelimit_info_t *info, void *arg),
                                void *arg);

/* What the admin page shows of a concurrency limit middleware. */
typedef struct msvc__mw_concurrency_info_s {
  msvc_limit_adaptive_opts_t opts;
  uint64_t shed;
} msvc__mw_concurrency_info_t;

struct msvc_mw_concurrency_s;
void msvc__mw_concurrency_info(const struct msvc_mw_concurrency_s *m,
                               msvc__mw_concurrency_info_t *out);

#endif /* MSVC_SERVICE_MW_INTERNAL_H */
