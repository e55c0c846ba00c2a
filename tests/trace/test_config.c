/*
 * Tracing configuration of a service: bad values of MSVC_TRACE_SAMPLE,
 * MSVC_TRACE_SLOW_MS, MSVC_OTLP_ENDPOINT and the OTEL_* variables stop
 * start-up with one line naming the variable; MSVC_* wins over OTEL_*.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>

#include "service/service-core.h"
#include "trace/trace-internal.h"

static const char *const vars[] = {
    "MSVC_TRACE_SAMPLE", "MSVC_TRACE_SLOW_MS", "MSVC_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME",
    "MSVC_SERVICE_NAME", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
};

static uv_loop_t loop;

static void clean_env(void) {
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    unsetenv(vars[i]);
  setenv("MSVC_REGISTRY", "memory://", 1);
  msvc_log_set_level(MSVC_LOG_OFF);
}

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  clean_env();
}

static void teardown(void) {
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
  msvc_log_reset();
}

TestSuite(trace_config, .init = setup, .fini = teardown, .timeout = 30);

static const struct {
  const char *var, *value, *expect;
} bad[] = {
    {"MSVC_TRACE_SAMPLE", "1.5", "ratio from 0 to 1"},
    {"MSVC_TRACE_SAMPLE", "-0.1", "ratio from 0 to 1"},
    {"MSVC_TRACE_SAMPLE", "half", "ratio from 0 to 1"},
    {"OTEL_TRACES_SAMPLER_ARG", "2", "ratio from 0 to 1"},
    {"MSVC_TRACE_SLOW_MS", "fast", "milliseconds"},
    {"MSVC_OTLP_ENDPOINT", "https://collector:4318", "http://host:port"},
    {"MSVC_OTLP_ENDPOINT", "collector:4318", "http://host:port"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4318", "http://host:port"},
    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:99999/v1/traces", "http://host:port"},
    {"OTEL_RESOURCE_ATTRIBUTES", "team", "key=value"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf, http/json"},
    {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml", "http/protobuf, http/json"},
};

Test(trace_config, every_bad_value_names_its_variable) {
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msvc_service_t *svc = (msvc_service_t *)1;
    char err[512] = "";
    int rc;

    clean_env();
    setenv(bad[i].var, bad[i].value, 1);
    rc = msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err));
    cr_expect_eq(rc, MSVC_ECONFIG, "%s=%s: %s (%s)", bad[i].var, bad[i].value,
                 msvc_strerror(rc), err);
    cr_expect_null(svc);
    cr_expect_eq(strncmp(err, bad[i].var, strlen(bad[i].var)), 0, "%s", err);
    cr_expect_not_null(strstr(err, bad[i].expect), "%s", err);
    cr_expect_null(strchr(err, '\n'), "one line: %s", err);
  }
}

static msvc_service_t *made(void) {
  msvc_service_t *svc = NULL;
  char err[512] = "";

  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK, "%s",
               err);
  return svc;
}

Test(trace_config, msvc_wins_and_urls_get_the_traces_path) {
  msvc_service_t *svc;

  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318/", 1);
  svc = made();
  cr_assert_str_eq(svc->cfg.trace_endpoint, "http://otel:4318/v1/traces");
  cr_assert_not_null(msvc_service_tracer(svc));
  msvc_service_free(svc);

  setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4318/custom", 1);
  svc = made();
  cr_assert_str_eq(svc->cfg.trace_endpoint, "http://otel:4318/custom");
  msvc_service_free(svc);

  setenv("MSVC_OTLP_ENDPOINT", "http://127.0.0.1:4318", 1);
  setenv("OTEL_TRACES_SAMPLER_ARG", "0.5", 1);
  setenv("MSVC_TRACE_SAMPLE", "0.25", 1);
  setenv("OTEL_SERVICE_NAME", "otel-name", 1);
  svc = made();
  cr_assert_str_eq(svc->cfg.trace_endpoint, "http://127.0.0.1:4318/v1/traces");
  cr_assert_float_eq(svc->cfg.trace_sample, 0.25, 1e-9);
  cr_assert_str_eq(svc->cfg.trace_service_name, "otel-name");
  msvc_service_free(svc);

  setenv("MSVC_SERVICE_NAME", "msvc-name", 1);
  svc = made();
  cr_assert_null(svc->cfg.trace_service_name, "MSVC_SERVICE_NAME wins");
  msvc_service_free(svc);
}

Test(trace_config, no_endpoint_no_tracer) {
  msvc_service_t *svc;

  setenv("MSVC_TRACE_SAMPLE", "0.1", 1);
  svc = made();
  cr_assert_null(msvc_service_tracer(svc));
  cr_assert_float_eq(svc->cfg.trace_sample, 0.1, 1e-9);
  msvc_service_free(svc);
}

Test(trace_config, protocol_protobuf_by_default_json_on_request) {
  msvc_service_t *svc;

  setenv("MSVC_OTLP_ENDPOINT", "http://127.0.0.1:4318", 1);
  svc = made();
  cr_assert_eq(svc->cfg.trace_protocol, MSVC_OTLP_HTTP_PROTOBUF);
  cr_assert_eq(svc->tracer->protocol, MSVC_OTLP_HTTP_PROTOBUF);
  msvc_service_free(svc);

  setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1);
  svc = made();
  cr_assert_eq(svc->tracer->protocol, MSVC_OTLP_HTTP_JSON);
  msvc_service_free(svc);

  /* the per-signal variable wins */
  setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", 1);
  svc = made();
  cr_assert_eq(svc->tracer->protocol, MSVC_OTLP_HTTP_PROTOBUF);
  msvc_service_free(svc);
}
