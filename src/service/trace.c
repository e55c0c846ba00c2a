/*
 * Tracing in the service object: the configuration (MSVC_TRACE_SAMPLE,
 * MSVC_OTLP_ENDPOINT and the standard OTEL_* variables, the protocol
 * included), the tracer's life
 * (made with the service, flushed when it stops), and the server span that
 * the trace context middleware opens for every request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>
#include <msvc/trace.h>

#include "service/service-core.h"
#include "trace/trace-internal.h"

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

static int bad(char *err, size_t errlen, const char *var, const char *v, const char *accepted) {
  snprintf(err, errlen, "%s: bad value '%.64s' (accepted: %s)", var, v, accepted);
  return MSVC_ECONFIG;
}

static int set(char **dst, const char *v) {
  msvc__free(*dst);
  *dst = v != NULL ? msvc__strdup(v) : NULL;
  return v == NULL || *dst != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static bool parse_ratio(const char *v, double *out) {
  char *end;
  double d;

  errno = 0;
  d = strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= 0.0 && d <= 1.0))
    return false;
  *out = d;
  return true;
}

/* The base URL of OTEL_EXPORTER_OTLP_ENDPOINT gets the signal's path; the
 * per-signal variable and ours are used as they are when they have a path,
 * and get /v1/traces when they are a bare host:port (the common mistake). */
static int endpoint_url(const char *v, bool is_base, char **out) {
  size_t n = strlen(v);
  const char *slash = strncmp(v, "http://", 7) == 0 ? strchr(v + 7, '/') : NULL;
  bool append = is_base || slash == NULL;

  while (append && n > 0 && v[n - 1] == '/')
    n--;
  *out = msvc__malloc(n + sizeof("/v1/traces"));
  if (*out == NULL)
    return MSVC_ENOMEM;
  memcpy(*out, v, n);
  strcpy(*out + n, append ? "/v1/traces" : "");
  return MSVC_OK;
}

/* OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL;
 * http/protobuf when neither is set, as OTLP exporters do. gRPC is not
 * offered: it is refused by name rather than quietly sent over HTTP. */
static int parse_protocol(msvc__svc_config_t *cfg, char *err, size_t errlen) {
  const char *var = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", *v;

  cfg->trace_protocol = MSVC_OTLP_HTTP_PROTOBUF;
  if ((v = env(var)) == NULL)
    v = env(var = "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (v == NULL || strcmp(v, "http/protobuf") == 0)
    return MSVC_OK;
  if (strcmp(v, "http/json") == 0) {
    cfg->trace_protocol = MSVC_OTLP_HTTP_JSON;
    return MSVC_OK;
  }
  return bad(err, errlen, var, v, "http/protobuf, http/json");
}

int msvc__svc_trace_config(msvc__svc_config_t *cfg, char *err, size_t errlen) {
  const char *v, *var;
  char *h = NULL, *p = NULL, *port = NULL, *u = NULL;
  msvc__trace_kv_t *kv = NULL;
  size_t n = 0, i;
  uint64_t slow;
  char *end;
  int rc;

  cfg->trace_sample = 1.0;
  cfg->trace_slow_ms = 1000;
  var = env("MSVC_TRACE_SAMPLE") != NULL ? "MSVC_TRACE_SAMPLE" : "OTEL_TRACES_SAMPLER_ARG";
  if ((v = env(var)) != NULL && !parse_ratio(v, &cfg->trace_sample))
    return bad(err, errlen, var, v, "a ratio from 0 to 1, e.g. 0.1");
  if ((v = env("MSVC_TRACE_SLOW_MS")) != NULL) {
    errno = 0;
    slow = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || errno != 0 || *end != '\0' || slow > 3600000)
      return bad(err, errlen, "MSVC_TRACE_SLOW_MS", v, "milliseconds 0..3600000, 0 = off");
    cfg->trace_slow_ms = (uint32_t)slow;
  }
  var = "MSVC_OTLP_ENDPOINT";
  if ((v = env(var)) == NULL && (v = env(var = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) == NULL)
    v = env(var = "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (v != NULL) {
    if ((rc = endpoint_url(v, strcmp(var, "OTEL_EXPORTER_OTLP_ENDPOINT") == 0, &u)) != 0)
      return rc;
    rc = msvc__trace_split_url(u, &h, &port, &p);
    if (rc == MSVC_OK) {
      /* only the check was wanted */
      msvc__free(h);
      msvc__free(port);
      msvc__free(p);
    }
    if (rc != MSVC_OK) {
      msvc__free(u);
      return rc == MSVC_ENOMEM ? rc
                               : bad(err, errlen, var, v, "http://host:port[/path]");
    }
    cfg->trace_endpoint = u;
  }
  if ((rc = parse_protocol(cfg, err, errlen)) != MSVC_OK)
    return rc;
  if ((v = env("OTEL_RESOURCE_ATTRIBUTES")) != NULL) {
    if ((rc = msvc__trace_parse_resource_attrs(v, &kv, &n)) != MSVC_OK)
      return rc == MSVC_ENOMEM ? rc
                               : bad(err, errlen, "OTEL_RESOURCE_ATTRIBUTES", v,
                                     "key=value pairs separated by commas");
    for (i = 0; i < n; i++) {
      msvc__free(kv[i].key);
      msvc__free(kv[i].value);
    }
    msvc__free(kv);
    if ((rc = set(&cfg->trace_resource, v)) != MSVC_OK)
      return rc;
  }
  /* MSVC_SERVICE_NAME (the registered name) wins; OTEL_SERVICE_NAME names
   * the traces only when that one is unset. */
  if (env("MSVC_SERVICE_NAME") == NULL && (v = env("OTEL_SERVICE_NAME")) != NULL)
    return set(&cfg->trace_service_name, v);
  return MSVC_OK;
}

void msvc__svc_trace_config_free(msvc__svc_config_t *cfg) {
  msvc__free(cfg->trace_endpoint);
  msvc__free(cfg->trace_resource);
  msvc__free(cfg->trace_service_name);
}

int msvc__svc_trace_create(msvc_service_t *svc, char *err, size_t errlen) {
  msvc_tracer_opts_t to;
  char uuid[37], hex[33];
  int rc;

  /* Tracing off: context is still propagated. The admin page turns local
   * recording on (its tracez page) even without a collector. */
  if (svc->cfg.trace_endpoint == NULL && svc->admin == NULL)
    return MSVC_OK;
  msvc_tracer_opts_init(&to);
  to.service_name = svc->cfg.trace_service_name != NULL ? svc->cfg.trace_service_name
                                                        : svc->cfg.name;
  to.service_version = svc->cfg.version;
  /* The registry's instance id comes later (at registration); the
   * resource needs one now and OpenTelemetry asks for a UUID. */
  msvc__trace_random_id(hex, 32);
  snprintf(uuid, sizeof(uuid), "%.8s-%.4s-4%.3s-a%.3s-%.12s", hex, hex + 8, hex + 12,
           hex + 16, hex + 20);
  to.instance_id = uuid;
  to.resource_attrs = svc->cfg.trace_resource;
  to.endpoint = svc->cfg.trace_endpoint;
  to.sample_ratio = svc->cfg.trace_sample;
  to.slow_ms = svc->cfg.trace_slow_ms;
  to.protocol = (msvc_otlp_protocol_t)svc->cfg.trace_protocol;
  to.metrics = svc->cfg.metrics;
  rc = msvc_tracer_new(&to, &svc->tracer);
  if (rc == MSVC_OK && svc->admin != NULL)
    rc = msvc__tracez_enable(svc->tracer);
  if (rc != MSVC_OK)
    snprintf(err, errlen, "tracing: %s", msvc_strerror(rc));
  return rc;
}

/* The flush gets what is left of the drain deadline, but never less than
 * a short floor (a drain that used all of its time would otherwise lose
 * every span of its last requests) and never more than 5 s. */
#define FLUSH_FLOOR_MS 250u
#define FLUSH_MAX_MS 5000u

static uint32_t flush_budget(const msvc_service_t *svc) {
  uint32_t drain = svc->cfg.drain_timeout_ms;
  uint64_t now = msvc_now_ms(), left;
  uint32_t floor = drain < FLUSH_FLOOR_MS ? drain : FLUSH_FLOOR_MS;

  /* A service stopped before it drained: its whole drain time. */
  left = svc->drain_deadline_ms == 0 ? drain
         : svc->drain_deadline_ms > now ? svc->drain_deadline_ms - now : 0;
  if (left < floor) left = floor;
  return left < FLUSH_MAX_MS ? (uint32_t)left : FLUSH_MAX_MS;
}

static void flush_now(msvc_service_t *svc, uint32_t ms) {
  if (msvc_tracer_shutdown(svc->tracer, ms) != MSVC_OK)
    msvc_log_write(MSVC_LOG_WARN, "trace", NULL, 0,
                   "collector did not take every span before the deadline");
}

static void flush_work(uv_work_t *w) {
  msvc_service_t *svc = w->data;

  flush_now(svc, flush_budget(svc));
}

static void flush_done(uv_work_t *w, int status) {
  msvc_service_t *svc = w->data;

  (void)status;
  svc->trace_flushed(svc);
}

bool msvc__svc_trace_flush(msvc_service_t *svc, void (*done)(msvc_service_t *svc)) {
  if (svc->tracer == NULL)
    return false;
  /* Without an exporter thread there is nothing to wait for. */
  if (svc->tracer->thread_on) {
    svc->trace_flush.data = svc;
    svc->trace_flushed = done;
    if (uv_queue_work(svc->loop, &svc->trace_flush, flush_work, flush_done) == 0)
      return true;
  }
  /* No thread pool: blocking the loop, bounded as above, beats losing the
   * spans. */
  flush_now(svc, flush_budget(svc));
  return false;
}

msvc_tracer_t *msvc_service_tracer(const msvc_service_t *svc) {
  return svc != NULL ? svc->tracer : NULL;
}
