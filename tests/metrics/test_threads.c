/* Concurrent updates give exact totals: two threads on one counter (each on
 * its own shard), more threads than shards (sharing the overflow cell),
 * histograms and gauges, and exposition racing with updates. */
#include <pthread.h>

#include "helpers.h"

#define PER_THREAD 1000000

typedef struct job_s {
  msvc_metrics_counter_t *c;
  msvc_metrics_histogram_t *h;
  msvc_metrics_gauge_t *g;
  msvc_metrics_registry_t *reg;
  int n;
} job_t;

static void *count_work(void *arg) {
  job_t *j = arg;
  int i;

  for (i = 0; i < j->n; i++) {
    msvc_metrics_counter_inc(j->c);
    if (j->h != NULL)
      msvc_metrics_histogram_observe(j->h, (i % 4) * 0.5);
    if (j->g != NULL)
      msvc_metrics_gauge_inc(j->g);
  }
  if (j->c != NULL)
    msvc_metrics_counter_add(j->c, 0.5);
  return NULL;
}

static void run_threads(int nthreads, job_t *job) {
  pthread_t t[64];
  int i;

  for (i = 0; i < nthreads; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, count_work, job), 0);
  for (i = 0; i < nthreads; i++)
    pthread_join(t[i], NULL);
}

static msvc_metrics_counter_t *new_counter(msvc_metrics_registry_t *reg, unsigned flags) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;

  msvc_metrics_family_opts_init(&o);
  o.name = "hits_total";
  o.flags = flags;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(fam, NULL, 0, &c), MSVC_OK);
  return c;
}

Test(metrics_threads, two_threads_exact_count) {
  msvc_metrics_registry_t *reg;
  job_t job = {0};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  job.c = new_counter(reg, 0);
  job.n = PER_THREAD;
  run_threads(2, &job);
  cr_assert_eq(msvc_metrics_counter_value(job.c), 2.0 * PER_THREAD + 1.0);
  msvc_metrics_registry_free(reg);
}

Test(metrics_threads, more_threads_than_shards_exact_count) {
  msvc_metrics_registry_t *reg;
  job_t job = {0};
  int n = (int)msvc__metrics_slots() + 4;

  cr_assert_leq(n, 64);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  job.c = new_counter(reg, 0);
  job.n = PER_THREAD / 10;
  run_threads(n, &job);
  cr_assert_eq(msvc_metrics_counter_value(job.c), (double)n * (PER_THREAD / 10) + 0.5 * n);
  msvc_metrics_registry_free(reg);
}

Test(metrics_threads, unsharded_exact_count) {
  msvc_metrics_registry_t *reg;
  job_t job = {0};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  job.c = new_counter(reg, MSVC_METRICS_UNSHARDED);
  job.n = PER_THREAD / 2;
  run_threads(2, &job);
  cr_assert_eq(msvc_metrics_counter_value(job.c), (double)PER_THREAD + 1.0);
  msvc_metrics_registry_free(reg);
}

static void *expose_loop(void *arg) {
  job_t *j = arg;
  int i;

  for (i = 0; i < 200; i++) {
    char *out = NULL;
    if (msvc_metrics_expose(j->reg, MSVC_METRICS_FORMAT_TEXT, &out, NULL) != MSVC_OK)
      return (void *)1;
    msvc_free(out);
  }
  return NULL;
}

Test(metrics_threads, histogram_and_gauge_exact_while_exposing) {
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_t *hf, *gf;
  job_t job = {0};
  pthread_t scraper;
  void *res;
  char *out;
  int n = 200000;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  job.reg = reg;
  job.c = new_counter(reg, 0);
  hf = family(reg, MSVC_METRICS_HISTOGRAM, "op_seconds", "Ops.", NULL, 0);
  gf = family(reg, MSVC_METRICS_GAUGE, "level", "Level.", NULL, 0);
  cr_assert_eq(msvc_metrics_histogram_get(hf, NULL, 0, &job.h), MSVC_OK);
  cr_assert_eq(msvc_metrics_gauge_get(gf, NULL, 0, &job.g), MSVC_OK);
  job.n = n;
  cr_assert_eq(pthread_create(&scraper, NULL, expose_loop, &job), 0);
  run_threads(2, &job);
  pthread_join(scraper, &res);
  cr_assert_null(res);
  cr_assert_eq(msvc_metrics_histogram_count(job.h), 2u * (unsigned)n);
  /* Observations cycle through 0, 0.5, 1, 1.5: the sum is exact in binary. */
  cr_assert_eq(msvc_metrics_histogram_sum(job.h), 2.0 * (n / 4) * 3.0);
  cr_assert_eq(msvc_metrics_gauge_value(job.g), 2.0 * n);
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "op_seconds_bucket{le=\"0.5\"} 200000\n"));
  cr_assert_not_null(strstr(out, "op_seconds_bucket{le=\"1\"} 300000\n"));
  cr_assert_not_null(strstr(out, "op_seconds_bucket{le=\"+Inf\"} 400000\n"));
  cr_assert_not_null(strstr(out, "op_seconds_count 400000\n"));
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

static void *lookup_loop(void *arg) {
  job_t *j = arg;
  msvc_metrics_family_t *fam;
  msvc_metrics_family_opts_t o;
  static const char *const l[] = {"k"};
  char v[16];
  const char *vals[1] = {v};
  int i;

  msvc_metrics_family_opts_init(&o);
  o.name = "churn_total";
  o.label_names = l;
  o.label_count = 1;
  if (msvc_metrics_family_new(j->reg, MSVC_METRICS_COUNTER, &o, &fam) != MSVC_OK)
    return (void *)1;
  for (i = 0; i < 20000; i++) {
    msvc_metrics_counter_t *c;
    snprintf(v, sizeof(v), "%d", i % 97);
    if (msvc_metrics_counter_get(fam, vals, 1, &c) == MSVC_OK)
      msvc_metrics_counter_inc(c);
    if (i % 13 == 0)
      msvc_metrics_family_remove(fam, vals, 1);
  }
  return NULL;
}

/* Lookups, removals and exposition from three threads at once (the
 * sanitizer build turns a race on the tables into a crash). */
Test(metrics_threads, churn_with_exposition) {
  msvc_metrics_registry_t *reg;
  job_t job = {0};
  pthread_t a, b, s;
  void *ra, *rb, *rs;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  job.reg = reg;
  cr_assert_eq(pthread_create(&a, NULL, lookup_loop, &job), 0);
  cr_assert_eq(pthread_create(&s, NULL, expose_loop, &job), 0);
  pthread_join(a, &ra);
  cr_assert_eq(pthread_create(&b, NULL, lookup_loop, &job), 0);
  pthread_join(b, &rb);
  pthread_join(s, &rs);
  cr_assert_null(ra);
  cr_assert_null(rb);
  cr_assert_null(rs);
  msvc_metrics_registry_free(reg);
}
