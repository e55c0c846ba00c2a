/* Registration rules, lookups, the series limit and removal. */
#include <malloc.h>
#include <math.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From the sanitizer runtime; declared here since not every compiler ships
 * <sanitizer/allocator_interface.h>. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void) {
  return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void) {
  return mallinfo2().uordblks;
}
#endif

static int try_register(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                        const char *name, const char *const *labels, size_t n) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam = (void *)1;
  int rc;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = "Help.";
  o.label_names = labels;
  o.label_count = n;
  rc = msvc_metrics_family_new(reg, type, &o, &fam);
  if (rc != MSVC_OK)
    cr_assert_null(fam, "a failed registration leaves out NULL");
  return rc;
}

Test(metrics_registry, names_validated) {
  static const char *const le[] = {"le"}, *const dunder[] = {"__x"}, *const dup[] = {"a", "a"},
                           *const dash[] = {"a-b"}, *const colon[] = {"a:b"},
                           *const digit[] = {"1a"}, *const null_name[] = {NULL};
  msvc_metrics_registry_t *reg;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "ok_total", NULL, 0), MSVC_OK);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "ns:sub_metric", NULL, 0), MSVC_OK);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "_leading", NULL, 0), MSVC_OK);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, NULL, NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "9lives", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "has space", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "dash-ed", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "__reserved", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "caf\xc3\xa9", NULL, 0), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_HISTOGRAM, "h1", le, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "c1", le, 1), MSVC_OK,
               "le is reserved only on histograms");
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g1", dunder, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g2", dup, 2), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g3", dash, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g4", colon, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g5", digit, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g6", null_name, 1), MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "g7", NULL, 2), MSVC_EINVAL);
  cr_assert_eq(try_register(reg, (msvc_metrics_type_t)9, "g8", NULL, 0), MSVC_EINVAL);
  cr_assert(msvc_metrics_name_valid("a:b_c9"));
  cr_assert(!msvc_metrics_label_name_valid("a:b"));
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, bad_help_and_too_many_labels) {
  const char *labels[MSVC_METRICS_MAX_LABELS + 1];
  char names[MSVC_METRICS_MAX_LABELS + 1][8];
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  size_t i;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_metrics_family_opts_init(&o);
  o.name = "x";
  o.help = "bad \xff utf-8";
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &o, &fam), MSVC_EINVAL);
  for (i = 0; i <= MSVC_METRICS_MAX_LABELS; i++) {
    snprintf(names[i], sizeof(names[i]), "l%zu", i);
    labels[i] = names[i];
  }
  o.help = NULL;
  o.label_names = labels;
  o.label_count = MSVC_METRICS_MAX_LABELS + 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &o, &fam), MSVC_EINVAL);
  o.label_count = MSVC_METRICS_MAX_LABELS;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &o, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, NULL, &fam), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &o, NULL), MSVC_EINVAL);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, reregistration_and_mismatch) {
  static const char *const ab[] = {"a", "b"}, *const ba[] = {"b", "a"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *f1, *f2;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  f1 = family(reg, MSVC_METRICS_COUNTER, "things_total", "Things.", ab, 2);
  f2 = family(reg, MSVC_METRICS_COUNTER, "things_total", "Other help is fine.", ab, 2);
  cr_assert_eq(f1, f2, "same definition gives the same family");
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "things_total", ab, 2),
               MSVC_EMETRIC_MISMATCH);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "things_total", ba, 2),
               MSVC_EMETRIC_MISMATCH);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "things_total", ab, 1),
               MSVC_EMETRIC_MISMATCH);
  cr_assert_eq(msvc_metrics_family_type(f1), MSVC_METRICS_COUNTER);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, sample_name_clashes) {
  msvc_metrics_registry_t *reg;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  family(reg, MSVC_METRICS_HISTOGRAM, "rpc_seconds", "RPC.", NULL, 0);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "rpc_seconds_count", NULL, 0),
               MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "rpc_seconds_sum", NULL, 0),
               MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "rpc_seconds_bucket", NULL, 0),
               MSVC_EMETRIC_NAME);
  family(reg, MSVC_METRICS_COUNTER, "jobs_total", "Jobs.", NULL, 0);
  cr_assert_eq(try_register(reg, MSVC_METRICS_GAUGE, "jobs", NULL, 0), MSVC_EMETRIC_NAME,
               "OpenMetrics names the counter family 'jobs'");
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "jobs", NULL, 0), MSVC_EMETRIC_NAME);
  family(reg, MSVC_METRICS_GAUGE, "temp", "T.", NULL, 0);
  cr_assert_eq(try_register(reg, MSVC_METRICS_HISTOGRAM, "te", NULL, 0), MSVC_OK);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "temp_total", NULL, 0),
               MSVC_EMETRIC_NAME);
  cr_assert_eq(try_register(reg, MSVC_METRICS_COUNTER, "msvc_metrics_dropped_series", NULL, 0),
               MSVC_EMETRIC_NAME);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, buckets) {
  double b[5], inf_last[] = {1, 2, INFINITY}, bad[] = {1, 1}, nan[] = {NAN};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  msvc_metrics_histogram_t *h;

  cr_assert_eq(msvc_metrics_buckets_linear(1, 0.5, 5, b), MSVC_OK);
  cr_assert_eq(b[0], 1);
  cr_assert_eq(b[4], 3);
  cr_assert_eq(msvc_metrics_buckets_exponential(0.001, 10, 4, b), MSVC_OK);
  cr_assert_float_eq(b[3], 1.0, 1e-12);
  cr_assert_eq(msvc_metrics_buckets_linear(1, 0, 5, b), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_buckets_linear(1, 1, 0, b), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_buckets_linear(1, 1, MSVC_METRICS_MAX_BUCKETS + 1, b), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_buckets_exponential(0, 2, 3, b), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_buckets_exponential(1, 1, 3, b), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_buckets_exponential(1e300, 1e10, 3, b), MSVC_EINVAL);

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_metrics_family_opts_init(&o);
  o.name = "h";
  o.buckets = inf_last;
  o.bucket_count = 3;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_OK);
  cr_assert_eq(fam->f.bound_count, 2, "a last +Inf is implicit");
  cr_assert_eq(msvc_metrics_histogram_get(fam, NULL, 0, &h), MSVC_OK);
  msvc_metrics_histogram_observe(h, 5);
  cr_assert_eq(msvc_metrics_histogram_count(h), 1);
  cr_assert_eq(msvc_metrics_histogram_sum(h), 5);
  o.bucket_count = 2;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_OK,
               "the same bounds without the explicit +Inf");
  o.bucket_count = 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam),
               MSVC_EMETRIC_MISMATCH, "same name, other buckets");
  o.name = "h2";
  o.buckets = bad;
  o.bucket_count = 2;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_EINVAL);
  o.buckets = nan;
  o.bucket_count = 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_EINVAL);
  o.buckets = NULL;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_EINVAL);
  o.buckets = inf_last + 2;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &fam), MSVC_EINVAL,
               "+Inf alone leaves no bound");
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, lookups) {
  static const char *const l[] = {"a", "b"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c1, *c2, *c3;
  msvc_metrics_gauge_t *g;
  const char *v1[] = {"x", "y"}, *v2[] = {"x", "y"}, *v3[] = {"xy", ""}, *bad[] = {"\xc0\x80", "y"};
  const char *nul[] = {NULL, "y"};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_COUNTER, "c_total", "C.", l, 2);
  cr_assert_eq(msvc_metrics_counter_get(fam, v1, 2, &c1), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(fam, v2, 2, &c2), MSVC_OK);
  cr_assert_eq(c1, c2, "same values, same child");
  cr_assert_eq(msvc_metrics_counter_get(fam, v3, 2, &c3), MSVC_OK);
  cr_assert_neq(c1, c3);
  cr_assert_eq(msvc_metrics_family_size(fam), 2);
  cr_assert_eq(msvc_metrics_counter_get(fam, v1, 1, &c1), MSVC_EMETRIC_LABELS);
  cr_assert_null(c1);
  cr_assert_eq(msvc_metrics_counter_get(fam, NULL, 2, &c1), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_counter_get(fam, bad, 2, &c1), MSVC_EINVAL, "overlong UTF-8");
  cr_assert_eq(msvc_metrics_counter_get(fam, nul, 2, &c1), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_gauge_get(fam, v1, 2, &g), MSVC_EMETRIC_MISMATCH);
  cr_assert_eq(msvc_metrics_counter_get(NULL, v1, 2, &c1), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_counter_add(c3, -1), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_counter_add(c3, NAN), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_counter_add(c3, INFINITY), MSVC_EINVAL);
  cr_assert_eq(msvc_metrics_counter_add(c3, 0.25), MSVC_OK);
  msvc_metrics_counter_inc(c3);
  cr_assert_eq(msvc_metrics_counter_value(c3), 1.25);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, gauge_ops) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_gauge_t *g;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_GAUGE, "inflight", "In flight.", NULL, 0);
  cr_assert_eq(msvc_metrics_gauge_get(fam, NULL, 0, &g), MSVC_OK);
  msvc_metrics_gauge_inc(g);
  msvc_metrics_gauge_inc(g);
  msvc_metrics_gauge_dec(g);
  msvc_metrics_gauge_add(g, 2.5);
  cr_assert_eq(msvc_metrics_gauge_value(g), 3.5);
  msvc_metrics_gauge_set(g, -1);
  cr_assert_eq(msvc_metrics_gauge_value(g), -1);
  cr_assert_eq(msvc_metrics_family_remove(fam, NULL, 0), MSVC_EINVAL,
               "a family without labels has no removable child");
  cr_assert_eq(msvc_metrics_family_clear(fam), MSVC_EINVAL);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, cardinality_cap_counts_drops) {
  static const char *const l[] = {"user"};
  msvc_metrics_registry_opts_t ro;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam, *dropped;
  msvc_metrics_counter_t *c;
  char value[16], *out;
  const char *v[1] = {value};
  int i;

  msvc_metrics_registry_opts_init(&ro);
  ro.max_series_per_family = 5;
  cr_assert_eq(msvc_metrics_registry_new(&ro, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_COUNTER, "logins_total", "Logins.", l, 1);
  for (i = 0; i < 8; i++) {
    snprintf(value, sizeof(value), "u%d", i);
    c = (void *)1;
    cr_assert_eq(msvc_metrics_counter_get(fam, v, 1, &c),
                 i < 5 ? MSVC_OK : MSVC_EMETRIC_CARDINALITY, "series %d", i);
    if (i >= 5)
      cr_assert_null(c);
  }
  cr_assert_eq(msvc_metrics_family_size(fam), 5);
  /* An existing child is still found at the limit. */
  snprintf(value, sizeof(value), "u0");
  cr_assert_eq(msvc_metrics_counter_get(fam, v, 1, &c), MSVC_OK);
  dropped = family(reg, MSVC_METRICS_COUNTER, "msvc_metrics_dropped_series_total",
                   "Series refused because their family reached its series limit.",
                   (const char *const[]){"metric"}, 1);
  snprintf(value, sizeof(value), "logins_total");
  cr_assert_eq(msvc_metrics_counter_get(dropped, v, 1, &c), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_value(c), 3);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "msvc_metrics_dropped_series_total{metric=\"logins_total\"} 3\n"));
  msvc_free(out);
  /* Removing a child makes room again. */
  snprintf(value, sizeof(value), "u1");
  cr_assert_eq(msvc_metrics_family_remove(fam, v, 1), MSVC_OK);
  snprintf(value, sizeof(value), "u9");
  cr_assert_eq(msvc_metrics_counter_get(fam, v, 1, &c), MSVC_OK);
  msvc_metrics_registry_free(reg);
  ro.max_series_per_family = 0;
  cr_assert_eq(msvc_metrics_registry_new(&ro, &reg), MSVC_EINVAL);
}

Test(metrics_registry, per_family_limit_overrides_registry) {
  static const char *const l[] = {"k"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  msvc_metrics_gauge_t *g;
  const char *a[] = {"a"}, *b[] = {"b"};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_metrics_family_opts_init(&o);
  o.name = "tiny";
  o.label_names = l;
  o.label_count = 1;
  o.max_series = 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &o, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_gauge_get(fam, a, 1, &g), MSVC_OK);
  cr_assert_eq(msvc_metrics_gauge_get(fam, b, 1, &g), MSVC_EMETRIC_CARDINALITY);
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, remove_and_clear) {
  static const char *const l[] = {"id"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_histogram_t *h, *h2;
  const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"};
  char *out;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_HISTOGRAM, "job_seconds", "Jobs.", l, 1);
  cr_assert_eq(msvc_metrics_histogram_get(fam, a, 1, &h), MSVC_OK);
  msvc_metrics_histogram_observe(h, 1);
  cr_assert_eq(msvc_metrics_histogram_get(fam, b, 1, &h), MSVC_OK);
  cr_assert_eq(msvc_metrics_family_remove(fam, a, 1), MSVC_OK);
  cr_assert_eq(msvc_metrics_family_remove(fam, a, 1), MSVC_ENOTFOUND);
  cr_assert_eq(msvc_metrics_family_remove(fam, c, 1), MSVC_ENOTFOUND);
  cr_assert_eq(msvc_metrics_family_remove(fam, a, 2), MSVC_EMETRIC_LABELS);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_null(strstr(out, "id=\"a\""));
  cr_assert_not_null(strstr(out, "job_seconds_count{id=\"b\"} 0\n"));
  msvc_free(out);
  /* A re-created child starts from zero. */
  cr_assert_eq(msvc_metrics_histogram_get(fam, a, 1, &h2), MSVC_OK);
  cr_assert_eq(msvc_metrics_histogram_count(h2), 0);
  cr_assert_eq(msvc_metrics_family_clear(fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_family_size(fam), 0);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_str_eq(out, "");
  msvc_free(out);
  cr_assert_eq(msvc_metrics_histogram_get(fam, c, 1, &h), MSVC_OK);
  cr_assert_eq(msvc_metrics_family_size(fam), 1);
  cr_assert_eq(msvc_metrics_family_clear(NULL), MSVC_EINVAL);
  msvc_metrics_registry_free(reg);
}

/* Ephemeral labels must not leak: after many rounds of creating and
 * removing children the heap is back where it started (the sanitizer build
 * also checks that nothing is left at exit). */
Test(metrics_registry, removal_frees_memory) {
  static const char *const l[] = {"conn"};
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;
  char value[32];
  const char *v[1] = {value};
  size_t base, after_first = 0, now;
  int round, i;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_COUNTER, "conn_bytes_total", "Bytes.", l, 1);
  base = heap_in_use();
  for (round = 0; round < 20; round++) {
    for (i = 0; i < 500; i++) {
      snprintf(value, sizeof(value), "r%d-c%d", round, i);
      cr_assert_eq(msvc_metrics_counter_get(fam, v, 1, &c), MSVC_OK);
      msvc_metrics_counter_inc(c);
    }
    cr_assert_gt(heap_in_use(), base + 500 * 64, "children take memory");
    for (i = 0; i < 250; i++) {
      snprintf(value, sizeof(value), "r%d-c%d", round, i);
      cr_assert_eq(msvc_metrics_family_remove(fam, v, 1), MSVC_OK);
    }
    cr_assert_eq(msvc_metrics_family_clear(fam), MSVC_OK);
    now = heap_in_use();
    if (round == 0)
      after_first = now;
    /* The hash table may keep its grown size; nothing else may stay. */
    cr_assert_leq(now, after_first, "round %d: %zu bytes in use, %zu after round 0", round,
                  now, after_first);
  }
  cr_assert_lt(after_first - base, 64 * 1024, "only the grown table remains");
  msvc_metrics_registry_free(reg);
}

Test(metrics_registry, default_registry) {
  msvc_metrics_registry_t *def = msvc_metrics_default_registry();
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;
  char *out;

  cr_assert_not_null(def);
  cr_assert_eq(msvc_metrics_default_registry(), def);
  fam = family(NULL, MSVC_METRICS_COUNTER, "default_things_total", "Things.", NULL, 0);
  cr_assert_eq(msvc_metrics_counter_get(fam, NULL, 0, &c), MSVC_OK);
  msvc_metrics_counter_inc(c);
  out = expose(NULL, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "default_things_total 1\n"));
  cr_assert_not_null(strstr(out, "\nprocess_open_fds "));
  msvc_free(out);
  msvc_metrics_registry_free(def); /* ignored: the default registry stays */
  cr_assert_eq(msvc_metrics_default_registry(), def);
  cr_assert_eq(msvc_metrics_process_collector_register(NULL), MSVC_OK);
}

static int hook_calls;
static void on_hook(msvc_metrics_registry_t *reg, void *data) {
  msvc_metrics_gauge_t *g = data;

  (void)reg;
  hook_calls++;
  msvc_metrics_gauge_set(g, hook_calls);
}

Test(metrics_registry, collect_hooks_run_before_exposition) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *fam;
  msvc_metrics_gauge_t *g;
  char *out;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  fam = family(reg, MSVC_METRICS_GAUGE, "queue_depth", "Depth.", NULL, 0);
  cr_assert_eq(msvc_metrics_gauge_get(fam, NULL, 0, &g), MSVC_OK);
  cr_assert_eq(msvc_metrics_collect_hook_add(reg, on_hook, g), MSVC_OK);
  cr_assert_eq(msvc_metrics_collect_hook_add(reg, NULL, g), MSVC_EINVAL);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "queue_depth 1\n"));
  msvc_free(out);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "queue_depth 2\n"));
  msvc_free(out);
  msvc_metrics_registry_free(reg);
  msvc_metrics_registry_free(NULL);
}
