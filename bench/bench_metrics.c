/*
 * Metrics hot path and exposition, each beside a baseline that does the
 * same work with one mutex per metric (the design of the older C client):
 *
 *   metrics_counter_inc        one thread incrementing one counter
 *   metrics_counter_inc_2t     two threads incrementing the same counter
 *                              (ns_per_op is per thread; ops_per_s in total)
 *   metrics_histogram_observe  one thread, default buckets
 *   metrics_counter_lookup     labelled lookup without a cached handle
 *   metrics_expose_10k         text exposition of 10,000 series
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <msvc/metrics.h>

#include "bench.h"

#define MAX_RUNS 9

/* ---- the mutex baseline ------------------------------------------------ */
typedef struct mutex_counter_s {
  pthread_mutex_t lock;
  double value;
} mutex_counter_t;

typedef struct mutex_hist_s {
  pthread_mutex_t lock;
  double bounds[MSVC_METRICS_DEFAULT_BUCKET_COUNT];
  uint64_t counts[MSVC_METRICS_DEFAULT_BUCKET_COUNT + 1];
  double sum;
} mutex_hist_t;

static void mutex_inc(mutex_counter_t *c) {
  pthread_mutex_lock(&c->lock);
  c->value += 1;
  pthread_mutex_unlock(&c->lock);
}

static void mutex_observe(mutex_hist_t *h, double v) {
  size_t i = 0;

  pthread_mutex_lock(&h->lock);
  while (i < MSVC_METRICS_DEFAULT_BUCKET_COUNT && !(v <= h->bounds[i]))
    i++;
  h->counts[i]++;
  h->sum += v;
  pthread_mutex_unlock(&h->lock);
}

/* ---- workloads ------------------------------------------------------------ */
typedef struct work_s {
  msvc_metrics_counter_t *c;
  mutex_counter_t *mc;
  long n;
} work_t;

static void *inc_libmsvc(void *arg) {
  work_t *w = arg;
  long i;

  for (i = 0; i < w->n; i++)
    msvc_metrics_counter_inc(w->c);
  return NULL;
}

static void *inc_mutex(void *arg) {
  work_t *w = arg;
  long i;

  for (i = 0; i < w->n; i++)
    mutex_inc(w->mc);
  return NULL;
}

/* Wall time of nthreads running fn at once, in ns. */
static double run_threads(int nthreads, void *(*fn)(void *), work_t *w) {
  pthread_t t[2];
  double t0 = bench_now_ns();
  int i;

  for (i = 1; i < nthreads; i++)
    pthread_create(&t[i], NULL, fn, w);
  fn(w);
  for (i = 1; i < nthreads; i++)
    pthread_join(t[i], NULL);
  return bench_now_ns() - t0;
}

static void bench_counter(msvc_metrics_counter_t *c, long n) {
  mutex_counter_t mc = {PTHREAD_MUTEX_INITIALIZER, 0};
  work_t w = {c, &mc, n};
  double lib1[MAX_RUNS], base1[MAX_RUNS], lib2[MAX_RUNS], base2[MAX_RUNS];
  double tput_lib[MAX_RUNS], tput_base[MAX_RUNS];
  bench_stat_t l1, b1, l2, b2, tl, tb;
  int r, runs = bench_runs();

  run_threads(1, inc_libmsvc, &w); /* warm up: the thread's shard slot */
  for (r = 0; r < runs; r++) {
    lib1[r] = run_threads(1, inc_libmsvc, &w) / (double)n;
    base1[r] = run_threads(1, inc_mutex, &w) / (double)n;
    lib2[r] = run_threads(2, inc_libmsvc, &w) / (double)n;
    base2[r] = run_threads(2, inc_mutex, &w) / (double)n;
    tput_lib[r] = 2e9 / lib2[r];
    tput_base[r] = 2e9 / base2[r];
  }
  l1 = bench_stats(lib1, runs);
  b1 = bench_stats(base1, runs);
  l2 = bench_stats(lib2, runs);
  b2 = bench_stats(base2, runs);
  tl = bench_stats(tput_lib, runs);
  tb = bench_stats(tput_base, runs);
  bench_emit("metrics_counter_inc", "mutex_baseline", "ns_per_op", "ns", b1, NULL, 0);
  bench_emit("metrics_counter_inc", "libmsvc", "ns_per_op", "ns", l1, "mutex_baseline",
             l1.median / b1.median);
  bench_emit("metrics_counter_inc_2t", "mutex_baseline", "ns_per_op", "ns", b2, NULL, 0);
  bench_emit("metrics_counter_inc_2t", "libmsvc", "ns_per_op", "ns", l2, "mutex_baseline",
             l2.median / b2.median);
  bench_emit("metrics_counter_inc_2t", "mutex_baseline", "ops_per_s", "ops/s", tb, NULL, 0);
  bench_emit("metrics_counter_inc_2t", "libmsvc", "ops_per_s", "ops/s", tl, "mutex_baseline",
             tl.median / tb.median);
  fprintf(stderr, "counter: 2 threads give %.2fx the throughput of 1 thread\n",
          tl.median / (1e9 / l1.median));
}

static void bench_histogram(msvc_metrics_histogram_t *h, long n) {
  static const double bounds[] = MSVC_METRICS_DEFAULT_BUCKETS_INIT;
  mutex_hist_t mh;
  double vals[256], lib[MAX_RUNS], base[MAX_RUNS], t0;
  bench_stat_t l, b;
  int r, runs = bench_runs();
  long i;

  memset(&mh, 0, sizeof(mh));
  pthread_mutex_init(&mh.lock, NULL);
  memcpy(mh.bounds, bounds, sizeof(bounds));
  /* Spread over every bucket, +Inf included. */
  for (i = 0; i < 256; i++)
    vals[i] = (double)((i * 7919) % 1200) / 100.0;
  for (r = 0; r < runs; r++) {
    t0 = bench_now_ns();
    for (i = 0; i < n; i++)
      msvc_metrics_histogram_observe(h, vals[i & 255]);
    lib[r] = (bench_now_ns() - t0) / (double)n;
    t0 = bench_now_ns();
    for (i = 0; i < n; i++)
      mutex_observe(&mh, vals[i & 255]);
    base[r] = (bench_now_ns() - t0) / (double)n;
  }
  l = bench_stats(lib, runs);
  b = bench_stats(base, runs);
  bench_emit("metrics_histogram_observe", "mutex_baseline", "ns_per_op", "ns", b, NULL, 0);
  bench_emit("metrics_histogram_observe", "libmsvc", "ns_per_op", "ns", l, "mutex_baseline",
             l.median / b.median);
  pthread_mutex_destroy(&mh.lock);
}

static void bench_lookup(msvc_metrics_family_t *fam, long n) {
  static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
  static const char *const codes[] = {"200", "404", "500"};
  double samples[MAX_RUNS], t0;
  int r, runs = bench_runs();
  long i;

  for (r = 0; r < runs; r++) {
    t0 = bench_now_ns();
    for (i = 0; i < n; i++) {
      const char *v[] = {methods[i & 3], "/users/:id", codes[i % 3]};
      msvc_metrics_counter_t *c;
      if (msvc_metrics_counter_get(fam, v, 3, &c) == MSVC_OK)
        msvc_metrics_counter_inc(c);
    }
    samples[r] = (bench_now_ns() - t0) / (double)n;
  }
  bench_emit("metrics_counter_lookup", "libmsvc", "ns_per_op", "ns",
             bench_stats(samples, runs), NULL, 0);
}

/* 10,000 series: 100 routes x 100 instances of one labelled counter. */
static void bench_expose(void) {
  static mutex_counter_t mcs[10000];
  msvc_metrics_registry_opts_t ro;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  static const char *const labels[] = {"route", "instance"};
  double lib[MAX_RUNS], base[MAX_RUNS], t0;
  char route[32], inst[32], line[256];
  const char *v[] = {route, inst};
  int i, r, runs = bench_runs();

  msvc_metrics_registry_opts_init(&ro);
  ro.max_series_per_family = 10000;
  msvc_metrics_family_opts_init(&o);
  o.name = "bench_requests_total";
  o.help = "Requests.";
  o.label_names = labels;
  o.label_count = 2;
  if (msvc_metrics_registry_new(&ro, &reg) != MSVC_OK ||
      msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &fam) != MSVC_OK)
    return;
  for (i = 0; i < 10000; i++) {
    msvc_metrics_counter_t *c;
    snprintf(route, sizeof(route), "/api/r%d", i / 100);
    snprintf(inst, sizeof(inst), "10.0.0.%d:80", i % 100);
    if (msvc_metrics_counter_get(fam, v, 2, &c) == MSVC_OK)
      msvc_metrics_counter_add(c, i * 1.5);
    pthread_mutex_init(&mcs[i].lock, NULL);
    mcs[i].value = i * 1.5;
  }
  for (r = 0; r < runs; r++) {
    char *out;
    size_t len = 0, total = 0;

    t0 = bench_now_ns();
    if (msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &out, &len) == MSVC_OK)
      msvc_free(out);
    lib[r] = bench_now_ns() - t0;
    /* The baseline builds each line with snprintf under each metric's lock. */
    t0 = bench_now_ns();
    for (i = 0; i < 10000; i++) {
      pthread_mutex_lock(&mcs[i].lock);
      total += (size_t)snprintf(line, sizeof(line),
                                "bench_requests_total{route=\"/api/r%d\","
                                "instance=\"10.0.0.%d:80\"} %g\n",
                                i / 100, i % 100, mcs[i].value);
      pthread_mutex_unlock(&mcs[i].lock);
    }
    base[r] = bench_now_ns() - t0;
    BENCH_KEEP(total);
    BENCH_KEEP(len);
  }
  bench_stat_t l = bench_stats(lib, runs), b = bench_stats(base, runs);
  bench_emit("metrics_expose_10k", "mutex_baseline", "ns_per_op", "ns", b, NULL, 0);
  bench_emit("metrics_expose_10k", "libmsvc", "ns_per_op", "ns", l, "mutex_baseline",
             l.median / b.median);
  msvc_metrics_registry_free(reg);
}

int main(void) {
  static const char *const lookup_labels[] = {"method", "route", "status"};
  long n = bench_quick() ? 2000000 : 50000000;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *cf, *hf, *lf;
  msvc_metrics_counter_t *c;
  msvc_metrics_histogram_t *h;

  if (msvc_metrics_registry_new(NULL, &reg) != MSVC_OK)
    return 1;
  msvc_metrics_family_opts_init(&o);
  o.name = "bench_hits_total";
  if (msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &cf) != MSVC_OK ||
      msvc_metrics_counter_get(cf, NULL, 0, &c) != MSVC_OK)
    return 1;
  o.name = "bench_seconds";
  if (msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &o, &hf) != MSVC_OK ||
      msvc_metrics_histogram_get(hf, NULL, 0, &h) != MSVC_OK)
    return 1;
  o.name = "bench_requests_total";
  o.label_names = lookup_labels;
  o.label_count = 3;
  if (msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, &lf) != MSVC_OK)
    return 1;
  bench_counter(c, n);
  bench_histogram(h, n / 5);
  bench_lookup(lf, n / 50);
  bench_expose();
  msvc_metrics_registry_free(reg);
  return 0;
}
