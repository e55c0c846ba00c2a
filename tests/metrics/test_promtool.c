/* A realistic exposition (every metric type, label values that need
 * escaping, special values, the series-limit counter and the process
 * metrics) must pass the real `promtool check metrics`, lint included. */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static int have_promtool(void) {
  return system("command -v promtool >/dev/null 2>&1") == 0;
}

static msvc_metrics_registry_t *realistic_registry(void) {
  static const char *const http_labels[] = {"method", "route", "status"};
  static const char *const dur_labels[] = {"method", "route"};
  static const char *const ep_labels[] = {"service", "endpoint"};
  static const char *const path_labels[] = {"path"};
  msvc_metrics_registry_opts_t ro;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *req, *dur, *conns, *state, *odd, *limited;
  msvc_metrics_counter_t *c;
  msvc_metrics_histogram_t *h;
  msvc_metrics_gauge_t *g;
  const char *v1[] = {"GET", "/users/:id", "200"}, *v2[] = {"POST", "/orders", "503"};
  const char *d1[] = {"GET", "/users/:id"}, *e1[] = {"user-service", "127.0.0.1:8081"};
  const char *p1[] = {"C:\\tmp\\\"quoted\"\nnext line"}, *p2[] = {"\xe2\x9c\x93 ok"};
  const char *p3[] = {"another"};
  int i;

  msvc_metrics_registry_opts_init(&ro);
  ro.max_series_per_family = 2;
  cr_assert_eq(msvc_metrics_registry_new(&ro, &reg), MSVC_OK);
  cr_assert_eq(msvc_metrics_process_collector_register(reg), MSVC_OK);
  req = family(reg, MSVC_METRICS_COUNTER, "msvc_http_server_requests_total",
               "HTTP requests served, by route pattern.", http_labels, 3);
  dur = family(reg, MSVC_METRICS_HISTOGRAM, "msvc_http_server_request_duration_seconds",
               "Time to serve a request.", dur_labels, 2);
  conns = family(reg, MSVC_METRICS_GAUGE, "msvc_http_server_connections",
                 "Open connections.", NULL, 0);
  state = family(reg, MSVC_METRICS_GAUGE, "msvc_breaker_state",
                 "Breaker state: 0 closed, 1 open, 2 half-open.", ep_labels, 2);
  odd = family(reg, MSVC_METRICS_GAUGE, "app_odd_values",
               "Values with \\ backslashes and\na newline in the help.", path_labels, 1);
  limited = family(reg, MSVC_METRICS_COUNTER, "app_limited_total", "Capped family.",
                   path_labels, 1);
  cr_assert_eq(msvc_metrics_counter_get(req, v1, 3, &c), MSVC_OK);
  for (i = 0; i < 41; i++)
    msvc_metrics_counter_inc(c);
  cr_assert_eq(msvc_metrics_counter_get(req, v2, 3, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_add(c, 2.5), MSVC_OK);
  cr_assert_eq(msvc_metrics_histogram_get(dur, d1, 2, &h), MSVC_OK);
  for (i = 0; i < 100; i++)
    msvc_metrics_histogram_observe(h, i * 0.031);
  cr_assert_eq(msvc_metrics_gauge_get(conns, NULL, 0, &g), MSVC_OK);
  msvc_metrics_gauge_set(g, 12);
  cr_assert_eq(msvc_metrics_gauge_get(state, e1, 2, &g), MSVC_OK);
  msvc_metrics_gauge_set(g, 2);
  cr_assert_eq(msvc_metrics_gauge_get(odd, p1, 1, &g), MSVC_OK);
  msvc_metrics_gauge_set(g, INFINITY);
  cr_assert_eq(msvc_metrics_gauge_get(odd, p2, 1, &g), MSVC_OK);
  msvc_metrics_gauge_set(g, NAN);
  cr_assert_eq(msvc_metrics_counter_get(limited, p1, 1, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(limited, p2, 1, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(limited, p3, 1, &c), MSVC_EMETRIC_CARDINALITY);
  return reg;
}

/* Runs promtool on text; returns its exit status and its output. */
static int promtool_check(const char *text, char **output) {
  char in[] = "/tmp/msvc-promtool-in-XXXXXX", cmd[256];
  char outp[] = "/tmp/msvc-promtool-out-XXXXXX";
  int fd_in = mkstemp(in), fd_out = mkstemp(outp), status;
  size_t len = strlen(text);

  cr_assert(fd_in >= 0 && fd_out >= 0);
  cr_assert_eq(write(fd_in, text, len), (ssize_t)len);
  close(fd_in);
  close(fd_out);
  snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", in, outp);
  status = system(cmd);
  *output = read_file(outp);
  unlink(in);
  unlink(outp);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(metrics_promtool, realistic_exposition_passes, .timeout = 60) {
  msvc_metrics_registry_t *reg;
  char *text, *output;
  int rc;

  if (!have_promtool())
    cr_skip_test("promtool not installed (Debian package 'prometheus'): check skipped");
  reg = realistic_registry();
  text = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  /* The exposition really holds what this test claims to check. */
  cr_assert_not_null(strstr(text, "path=\"C:\\\\tmp\\\\\\\"quoted\\\"\\nnext line\""));
  cr_assert_not_null(strstr(text, "} +Inf\n"));
  cr_assert_not_null(strstr(text, "} NaN\n"));
  cr_assert_not_null(strstr(text, "le=\"+Inf\""));
  cr_assert_not_null(strstr(text, "\nprocess_resident_memory_bytes "));
  cr_assert_not_null(
      strstr(text, "msvc_metrics_dropped_series_total{metric=\"app_limited_total\"} 1\n"));
  if (getenv("MSVC_PRINT_EXPOSITION") != NULL)
    fputs(text, stdout);
  rc = promtool_check(text, &output);
  cr_assert_eq(rc, 0, "promtool exit %d:\n%s\n--- exposition ---\n%s", rc,
               output != NULL ? output : "", text);
  cr_assert(output != NULL && output[0] == '\0', "promtool said: %s", output);
  free(output);
  msvc_free(text);
  msvc_metrics_registry_free(reg);
}

/* The checker itself must be able to fail, or the test above proves nothing. */
Test(metrics_promtool, promtool_rejects_broken_text, .timeout = 60) {
  char *output;

  if (!have_promtool())
    cr_skip_test("promtool not installed (Debian package 'prometheus'): check skipped");
  cr_assert_neq(promtool_check("# TYPE x counter\nx{a=\"b} 1\n", &output), 0);
  free(output);
  cr_assert_neq(promtool_check("# TYPE x_total counter\nx_total inf\n", &output), 0);
  free(output);
}
