/* Exposition in both formats, checked against golden files, plus escaping,
 * special values and the choice of format from an Accept header. */
#include <math.h>

#include "helpers.h"

/* One of each type, with labels, in a private registry. */
static msvc_metrics_registry_t *sample_registry(void) {
  static const char *const req_labels[] = {"method", "code"};
  static const char *const lat_labels[] = {"route"};
  static const double bounds[] = {0.1, 0.5, 1};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *req, *temp, *lat;
  msvc_metrics_family_opts_t o;
  msvc_metrics_counter_t *c;
  msvc_metrics_gauge_t *g;
  msvc_metrics_histogram_t *h;
  const char *v1[] = {"GET", "200"}, *v2[] = {"POST", "500"}, *r[] = {"/users/:id"};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  req = family(reg, MSVC_METRICS_COUNTER, "app_requests_total", "Requests handled.",
               req_labels, 2);
  temp = family(reg, MSVC_METRICS_GAUGE, "app_temperature_celsius", "Current temperature.",
                NULL, 0);
  msvc_metrics_family_opts_init(&o);
  o.name = "app_latency_seconds";
  o.help = "Request latency.";
  o.label_names = lat_labels;
  o.label_count = 1;
  o.buckets = bounds;
  o.bucket_count = 3;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &lat), MSVC_OK);

  cr_assert_eq(msvc_metrics_counter_get(req, v1, 2, &c), MSVC_OK);
  msvc_metrics_counter_inc(c);
  msvc_metrics_counter_inc(c);
  cr_assert_eq(msvc_metrics_counter_get(req, v2, 2, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_add(c, 1.5), MSVC_OK);
  cr_assert_eq(msvc_metrics_gauge_get(temp, NULL, 0, &g), MSVC_OK);
  msvc_metrics_gauge_set(g, -3.25);
  cr_assert_eq(msvc_metrics_histogram_get(lat, r, 1, &h), MSVC_OK);
  msvc_metrics_histogram_observe(h, 0.05);
  msvc_metrics_histogram_observe(h, 0.1);
  msvc_metrics_histogram_observe(h, 0.7);
  msvc_metrics_histogram_observe(h, 3);
  return reg;
}

Test(metrics_expose, text_golden) {
  msvc_metrics_registry_t *reg = sample_registry();
  char *out = expose(reg, MSVC_METRICS_FORMAT_TEXT);

  assert_golden(out, "basic.prom");
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, openmetrics_golden) {
  msvc_metrics_registry_t *reg = sample_registry();
  char *out = expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS);

  assert_golden(out, "basic.om");
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, escaping_and_special_values) {
  static const char *const labels[] = {"path", "note"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam, *g;
  msvc_metrics_gauge_t *child;
  const char *v1[] = {"C:\\dir\\file", "say \"hi\"\nbye"};
  const char *v2[] = {"+inf", "\xc3\xa9t\xc3\xa9"};
  const char *v3[] = {"-inf", ""};
  const char *v4[] = {"nan", "}{,="};
  char *text, *om;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_GAUGE, "odd_values",
               "Help with a backslash \\ a \"quote\"\nand a second line.", labels, 2);
  cr_assert_eq(msvc_metrics_gauge_get(fam, v1, 2, &child), MSVC_OK);
  msvc_metrics_gauge_set(child, 1e-9);
  cr_assert_eq(msvc_metrics_gauge_get(fam, v2, 2, &child), MSVC_OK);
  msvc_metrics_gauge_set(child, INFINITY);
  cr_assert_eq(msvc_metrics_gauge_get(fam, v3, 2, &child), MSVC_OK);
  msvc_metrics_gauge_set(child, -INFINITY);
  cr_assert_eq(msvc_metrics_gauge_get(fam, v4, 2, &child), MSVC_OK);
  msvc_metrics_gauge_set(child, NAN);
  g = family(reg, MSVC_METRICS_GAUGE, "big_and_small", "", NULL, 0);
  cr_assert_eq(msvc_metrics_gauge_get(g, NULL, 0, &child), MSVC_OK);
  msvc_metrics_gauge_set(child, 0.1);
  text = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  om = expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS);
  assert_golden(text, "escaping.prom");
  assert_golden(om, "escaping.om");
  /* Spot checks, so a wrong golden file cannot hide the rules. */
  cr_assert_not_null(strstr(text, "path=\"C:\\\\dir\\\\file\",note=\"say \\\"hi\\\"\\nbye\""));
  cr_assert_not_null(strstr(text, "# HELP odd_values Help with a backslash "
                                  "\\\\ a \"quote\"\\nand"));
  cr_assert_not_null(strstr(om, "# HELP odd_values Help with a backslash "
                                "\\\\ a \\\"quote\\\"\\nand"));
  cr_assert_not_null(strstr(text, "} +Inf\n"));
  cr_assert_not_null(strstr(text, "} -Inf\n"));
  cr_assert_not_null(strstr(text, "} NaN\n"));
  cr_assert_not_null(strstr(text, "big_and_small 0.1\n"));
  cr_assert_null(strstr(text, "# HELP big_and_small"), "empty help gives no HELP line");
  cr_assert_null(strstr(text, "inf\n"));
  msvc_free(text);
  msvc_free(om);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, histogram_buckets_cumulative_and_inf_equals_count) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_histogram_t *h;
  char *out;
  int i;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_HISTOGRAM, "work_seconds", "Work.", NULL, 0);
  cr_assert_eq(msvc_metrics_histogram_get(fam, NULL, 0, &h), MSVC_OK);
  for (i = 0; i < 100; i++)
    msvc_metrics_histogram_observe(h, i * 0.125);
  msvc_metrics_histogram_observe(h, NAN);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  assert_golden(out, "histogram_default.prom");
  cr_assert_not_null(strstr(out, "work_seconds_bucket{le=\"+Inf\"} 101\n"));
  cr_assert_not_null(strstr(out, "work_seconds_count 101\n"));
  cr_assert_not_null(strstr(out, "work_seconds_sum NaN\n"));
  cr_assert_not_null(strstr(out, "work_seconds_bucket{le=\"0.005\"} 1\n"));
  cr_assert_not_null(strstr(out, "work_seconds_bucket{le=\"10\"} 81\n"));
  cr_assert_eq(msvc_metrics_histogram_count(h), 101);
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, families_sorted_and_contiguous_empty_left_out) {
  static const char *const l[] = {"k"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *b, *a;
  msvc_metrics_counter_t *c;
  const char *v1[] = {"1"}, *v2[] = {"2"};
  char *out;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  b = family(reg, MSVC_METRICS_COUNTER, "b_total", "B.", l, 1);
  a = family(reg, MSVC_METRICS_COUNTER, "a_total", "A.", l, 1);
  family(reg, MSVC_METRICS_COUNTER, "unused_total", "Never used.", l, 1);
  cr_assert_eq(msvc_metrics_counter_get(b, v1, 1, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(a, v1, 1, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(b, v2, 1, &c), MSVC_OK);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_str_eq(out, "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"1\"} 0\n"
                        "# HELP b_total B.\n# TYPE b_total counter\nb_total{k=\"1\"} 0\n"
                        "b_total{k=\"2\"} 0\n");
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, empty_registry) {
  msvc_metrics_registry_t *reg;
  char *out;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_str_eq(out, "");
  msvc_free(out);
  out = expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS);
  cr_assert_str_eq(out, "# EOF\n");
  msvc_free(out);
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_expose(reg, (msvc_metrics_format_t)7, &out, NULL), MSVC_EINVAL);
  cr_assert_null(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, counter_without_total_suffix_in_openmetrics) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;
  char *out;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_COUNTER, "jobs", "Jobs.", NULL, 0);
  cr_assert_eq(msvc_metrics_counter_get(fam, NULL, 0, &c), MSVC_OK);
  msvc_metrics_counter_inc(c);
  out = expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS);
  cr_assert_str_eq(out, "# HELP jobs Jobs.\n# TYPE jobs counter\njobs_total 1\n# EOF\n");
  msvc_free(out);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_str_eq(out, "# HELP jobs Jobs.\n# TYPE jobs counter\njobs 1\n");
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_expose, number_formatting) {
  char num[32];

  msvc__metrics_format_double(0.1, num);
  cr_assert_str_eq(num, "0.1");
  msvc__metrics_format_double(1e21, num);
  cr_assert_str_eq(num, "1e+21");
  msvc__metrics_format_double(-42, num);
  cr_assert_str_eq(num, "-42");
  msvc__metrics_format_double(1.0 / 3.0, num);
  cr_assert_eq(strtod(num, NULL), 1.0 / 3.0);
  msvc__metrics_format_double(9007199254740993.0 * 4, num);
  cr_assert_eq(strtod(num, NULL), 9007199254740993.0 * 4);
  msvc__metrics_format_double(-0.0, num);
  cr_assert_str_eq(num, "0");
  msvc__metrics_format_u64(UINT64_MAX, num);
  cr_assert_str_eq(num, "18446744073709551615");
}

struct neg_case {
  const char *accept;
  msvc_metrics_format_t want;
  const char *ct;
};

Test(metrics_expose, negotiation) {
  static const struct neg_case cases[] = {
      {NULL, MSVC_METRICS_FORMAT_TEXT, MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"", MSVC_METRICS_FORMAT_TEXT, MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"*/*", MSVC_METRICS_FORMAT_TEXT, MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"text/plain;version=0.0.4", MSVC_METRICS_FORMAT_TEXT, MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"application/json", MSVC_METRICS_FORMAT_TEXT, MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"application/openmetrics-text", MSVC_METRICS_FORMAT_OPENMETRICS,
       MSVC_METRICS_CONTENT_TYPE_OPENMETRICS},
      /* What Prometheus 2.x sends. */
      {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
       "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
       MSVC_METRICS_FORMAT_OPENMETRICS, MSVC_METRICS_CONTENT_TYPE_OPENMETRICS},
      {"Application/OpenMetrics-Text; version=0.0.1", MSVC_METRICS_FORMAT_OPENMETRICS,
       "application/openmetrics-text; version=0.0.1; charset=utf-8"},
      {"application/openmetrics-text;version=2.0.0", MSVC_METRICS_FORMAT_TEXT,
       MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"text/plain;q=0.9, application/openmetrics-text;q=0.5", MSVC_METRICS_FORMAT_TEXT,
       MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"application/openmetrics-text;q=0", MSVC_METRICS_FORMAT_TEXT,
       MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"application/openmetrics-text;q=abc", MSVC_METRICS_FORMAT_TEXT,
       MSVC_METRICS_CONTENT_TYPE_TEXT},
      {"application/openmetrics-text;;;", MSVC_METRICS_FORMAT_TEXT,
       MSVC_METRICS_CONTENT_TYPE_TEXT},
      {",,, application/openmetrics-text ;q=1.000 ,", MSVC_METRICS_FORMAT_OPENMETRICS,
       MSVC_METRICS_CONTENT_TYPE_OPENMETRICS},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *ct = NULL;
    msvc_metrics_format_t f = msvc_metrics_negotiate(cases[i].accept, &ct);
    cr_assert_eq(f, cases[i].want, "case %zu: %s", i, cases[i].accept);
    cr_assert_str_eq(ct, cases[i].ct, "case %zu", i);
  }
  cr_assert_eq(msvc_metrics_negotiate("application/openmetrics-text", NULL),
               MSVC_METRICS_FORMAT_OPENMETRICS);
}
