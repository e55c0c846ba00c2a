/*
 * The msvc_tls_* metrics of a configuration. Without the metrics block in
 * the build (MSVC_TLS_HAVE_METRICS unset) these are no-ops.
 */
#include "tls/tls-internal.h"

#ifdef MSVC_TLS_HAVE_METRICS
#include <msvc/metrics.h>

static msvc_metrics_family_t *family(msvc_metrics_registry_t *reg,
                                     msvc_metrics_type_t type, const char *name,
                                     const char *help, const char *label) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *f;
  static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,  0.1,    0.25,  1.0};

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = help;
  o.label_names = label != NULL ? &label : NULL;
  o.label_count = label != NULL ? 1 : 0;
  if (type == MSVC_METRICS_HISTOGRAM) {
    o.buckets = buckets;
    o.bucket_count = sizeof(buckets) / sizeof(buckets[0]);
  }
  return msvc_metrics_family_new(reg, type, &o, &f) == 0 ? f : NULL;
}

static void *counter(msvc_metrics_family_t *f, const char *value) {
  msvc_metrics_counter_t *c;
  return f != NULL && msvc_metrics_counter_get(f, &value, 1, &c) == 0 ? c : NULL;
}

void msvc__tls_metrics_init(msvc_tls_config_t *cfg) {
  msvc_metrics_registry_t *reg = cfg->o.metrics;
  msvc_metrics_family_t *f;
  const char *role = cfg->o.role == MSVC_TLS_SERVER ? "server" : "client";
  msvc_metrics_gauge_t *g;
  msvc_metrics_histogram_t *h;

  if (reg == NULL)
    return;
  f = family(reg, MSVC_METRICS_COUNTER, "msvc_tls_handshakes_total",
             "TLS handshakes by result (ok, resumed, failed, timeout)", "result");
  cfg->m.ok = counter(f, "ok");
  cfg->m.resumed = counter(f, "resumed");
  cfg->m.failed = counter(f, "failed");
  cfg->m.timeout = counter(f, "timeout");
  f = family(reg, MSVC_METRICS_HISTOGRAM, "msvc_tls_handshake_duration_seconds",
             "Time from the first handshake byte to its end", NULL);
  if (f != NULL && msvc_metrics_histogram_get(f, NULL, 0, &h) == 0)
    cfg->m.duration = h;
  f = family(reg, MSVC_METRICS_GAUGE, "msvc_tls_certificate_expiry_timestamp_seconds",
             "Expiry of the certificate this process presents", "role");
  if (f != NULL && msvc_metrics_gauge_get(f, &role, 1, &g) == 0)
    cfg->m.expiry = g;
}

void msvc__tls_metrics_handshake(msvc_tls_config_t *cfg, int result, bool resumed,
                                 double seconds) {
  void *c;

  if (result == 0)
    c = resumed ? cfg->m.resumed : cfg->m.ok;
  else
    c = result == MSVC_ETLS_TIMEOUT ? cfg->m.timeout : cfg->m.failed;
  if (c != NULL)
    msvc_metrics_counter_inc(c);
  if (result == 0 && cfg->m.duration != NULL)
    msvc_metrics_histogram_observe(cfg->m.duration, seconds);
}

void msvc__tls_metrics_expiry(msvc_tls_config_t *cfg, int64_t expiry) {
  if (cfg->m.expiry != NULL && expiry > 0)
    msvc_metrics_gauge_set(cfg->m.expiry, (double)expiry);
}

#else

void msvc__tls_metrics_init(msvc_tls_config_t *cfg) {
  (void)cfg;
}

void msvc__tls_metrics_handshake(msvc_tls_config_t *cfg, int result, bool resumed,
                                 double seconds) {
  (void)cfg;
  (void)result;
  (void)resumed;
  (void)seconds;
}

void msvc__tls_metrics_expiry(msvc_tls_config_t *cfg, int64_t expiry) {
  (void)cfg;
  (void)expiry;
}

#endif
