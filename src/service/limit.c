/*
 * The service's limits: the adaptive concurrency limit every service runs
 * by default (MSVC_CONCURRENCY*), and cluster-wide rate limits whose share
 * follows the live instance count that discovery reports for the
 * service's own name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service-core.h"

#define LIMIT_MAX 1000000u

static const char *env(const char *name) {
  const char *v = getenv(name);

  return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool parse_count(const char *s, uint32_t *out) {
  char *end;
  unsigned long v;

  if (s[0] < '0' || s[0] > '9') return false;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 1 || v > LIMIT_MAX) return false;
  *out = (uint32_t)v;
  return true;
}

static int bad(char *err, size_t errlen, const char *var, const char *v, const char *accepted) {
  snprintf(err, errlen, "%s: bad value \"%.64s\" (accepted: %s)", var, v, accepted);
  return MSVC_ECONFIG;
}

int msvc__svc_limit_load(msvc__svc_config_t *cfg, char *err, size_t errlen) {
  msvc_limit_adaptive_opts_t *o = &cfg->concurrency;
  const char *v;
  uint32_t n;

  msvc__svc_limit_admin();
  msvc_limit_adaptive_opts_init(o);
  cfg->concurrency_on = true;
  if ((v = env("MSVC_CONCURRENCY")) != NULL) {
    if (strcmp(v, "off") == 0) {
      cfg->concurrency_on = false;
      return MSVC_OK;
    }
    if (strcmp(v, "adaptive") != 0) {
      if (!parse_count(v, &n))
        return bad(err, errlen, "MSVC_CONCURRENCY", v,
                   "adaptive, off, or a fixed limit 1..1000000");
      o->fixed = true;
      o->initial = o->min_limit = o->max_limit = n;
      return MSVC_OK;
    }
  }
  if ((v = env("MSVC_CONCURRENCY_MIN")) != NULL && !parse_count(v, &o->min_limit))
    return bad(err, errlen, "MSVC_CONCURRENCY_MIN", v, "an integer 1..1000000");
  if ((v = env("MSVC_CONCURRENCY_MAX")) != NULL && !parse_count(v, &o->max_limit))
    return bad(err, errlen, "MSVC_CONCURRENCY_MAX", v, "an integer 1..1000000");
  /* A maximum below the default floor, with no floor given, lowers it. */
  if (env("MSVC_CONCURRENCY_MIN") == NULL && o->min_limit > o->max_limit)
    o->min_limit = o->max_limit;
  if (o->min_limit > o->max_limit) {
    snprintf(err, errlen, "MSVC_CONCURRENCY_MIN (%u) is above MSVC_CONCURRENCY_MAX (%u)",
             o->min_limit, o->max_limit);
    return MSVC_ECONFIG;
  }
  if ((v = env("MSVC_CONCURRENCY_TOLERANCE")) != NULL) {
    char *end;
    double t;

    errno = 0;
    t = strtod(v, &end);
    if (errno != 0 || *end != '\0' || !(t >= 1.0 && t <= 100.0))
      return bad(err, errlen, "MSVC_CONCURRENCY_TOLERANCE", v, "a number 1.0..100");
    o->tolerance = t;
  }
  if (o->initial < o->min_limit) o->initial = o->min_limit;
  if (o->initial > o->max_limit) o->initial = o->max_limit;
  return MSVC_OK;
}

int msvc__svc_limit_use(msvc_service_t *svc, msvc_http_server_t *srv) {
  int rc;

  if (!svc->cfg.concurrency_on) return MSVC_OK;
  if (svc->concurrency == NULL) {
    msvc_mw_concurrency_opts_t co;

    /* Made with the main loop's server, before any worker starts: the
     * workers share it. */
    msvc_mw_concurrency_opts_init(&co);
    co.limit = svc->cfg.concurrency;
    co.registry = svc->cfg.metrics;
    if ((rc = msvc_mw_concurrency_new(&co, &svc->concurrency)) != MSVC_OK) return rc;
  }
  return msvc_http_server_use(srv, msvc_mw_concurrency_middleware(svc->concurrency));
}

msvc_limit_adaptive_t *msvc_service_concurrency(const msvc_service_t *svc) {
  return svc == NULL ? NULL : msvc_mw_concurrency_limit(svc->concurrency);
}

/* The service's own instances changed: every cluster-wide limit takes its
 * new share. An empty set (not registered yet, or the registry lost us)
 * counts as this instance alone. */
static void on_own_instances(msvc_registry_watch_t *w, msvc_registry_set_t *set, void *data) {
  msvc_limit_rate_t *rl = data;
  size_t n = set != NULL ? msvc_registry_set_count(set) : 0;

  (void)w;
  if (n > 65536) n = 65536;
  (void)msvc_limit_rate_set_share(rl, (uint32_t)n);
}

int msvc_service_ratelimit_cluster(msvc_service_t *svc, msvc_limit_rate_t *rl) {
  if (svc == NULL || rl == NULL) return MSVC_EINVAL;
  if (msvc_service_state(svc) != MSVC_SERVICE_NEW || svc->started) return MSVC_ESTATE;
  return msvc_registry_watch(svc->registry, svc->cfg.name, on_own_instances, rl, NULL);
}
