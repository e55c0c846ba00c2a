/* OpenMetrics exemplars on histogram buckets: shown in OpenMetrics only,
 * latest per bucket, ignored for malformed ids. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/metrics.h>

#define T1 "0af7651916cd43dd8448eb211c80319c"
#define T2 "4bf92f3577b34da6a3ce929d0e0e4736"

static char *expose(msvc_metrics_registry_t *reg, msvc_metrics_format_t fmt) {
  char *out;
  cr_assert_eq(msvc_metrics_expose(reg, fmt, &out, NULL), MSVC_OK);
  return out;
}

Test(trace_exemplar, buckets_carry_the_latest_trace) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  msvc_metrics_histogram_t *h;
  const double bounds[] = {0.1, 1};
  char *om, *text;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_metrics_family_opts_init(&fo);
  fo.name = "req_seconds";
  fo.help = "h";
  fo.buckets = bounds;
  fo.bucket_count = 2;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &fo, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_histogram_get(fam, NULL, 0, &h), MSVC_OK);
  msvc_metrics_histogram_observe_exemplar(h, 0.05, T1, "b7ad6b7169203331", 1700000000123u);
  msvc_metrics_histogram_observe_exemplar(h, 0.5, T1, NULL, 1700000000200u);
  msvc_metrics_histogram_observe_exemplar(h, 0.6, T2, "00f067aa0ba902b7", 1700000001000u);
  msvc_metrics_histogram_observe_exemplar(h, 5, "NOT-HEX", NULL, 1700000001000u);
  msvc_metrics_histogram_observe_exemplar(h, 5, T1, "short", 1700000001000u);

  om = expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS);
  cr_assert_not_null(strstr(om, "req_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"" T1
                                "\",span_id=\"b7ad6b7169203331\"} 0.05 1700000000.123\n"), "%s", om);
  cr_assert_not_null(strstr(om, "req_seconds_bucket{le=\"1\"} 3 # {trace_id=\"" T2
                                "\",span_id=\"00f067aa0ba902b7\"} 0.6 1700000001.000\n"), "%s", om);
  cr_assert_not_null(strstr(om, "req_seconds_bucket{le=\"+Inf\"} 5\n"), "%s", om);
  cr_assert_not_null(strstr(om, "req_seconds_count 5\n"));
  text = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_null(strstr(text, "# {"), "%s", text);
  cr_assert_not_null(strstr(text, "req_seconds_bucket{le=\"0.1\"} 1\n"));
  msvc_free(om);
  msvc_free(text);
  msvc_metrics_registry_free(reg);
}
