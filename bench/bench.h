/*
 * Shared helpers of the benchmark programs: a monotonic nanosecond clock,
 * medians over repeated runs, and the result line that docs/reference.md describes:
 *
 *   {"bench":"lb_pick_round_robin_10","impl":"libmsvc","metric":"ns_per_op",
 *    "value":12.3,"unit":"ns","runs":5,"min":12.1,"max":12.9,
 *    "ratio_vs":"mutex_baseline","ratio":0.21}
 *
 * Lines go to stdout and, when MSVC_BENCH_RESULTS names a file, are appended
 * to it too. MSVC_BENCH_QUICK=1 asks every benchmark for a short run (the CI
 * smoke test), which programs read with bench_quick().
 */
#ifndef MSVC_BENCH_H
#define MSVC_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_stat_s {
  double median;
  double min;
  double max;
  int runs;
} bench_stat_t;

static inline double bench_now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_quick(void) {
  const char *q = getenv("MSVC_BENCH_QUICK");
  return q != NULL && *q != '\0' && strcmp(q, "0") != 0;
}

/* Runs to take a median over: 5 normally, 3 in a quick run. */
static inline int bench_runs(void) {
  return bench_quick() ? 3 : 5;
}

static int bench__cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts samples in place. */
static inline bench_stat_t bench_stats(double *samples, int n) {
  bench_stat_t s = {0, 0, 0, n};

  if (n <= 0)
    return s;
  qsort(samples, (size_t)n, sizeof(double), bench__cmp_double);
  s.min = samples[0];
  s.max = samples[n - 1];
  s.median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  return s;
}

/* Emits one result line. ratio_vs may be NULL (no comparison); the ratio is
 * this figure divided by the peer's, in the same run. */
static inline void bench_emit(const char *bench, const char *impl,
                              const char *metric, const char *unit,
                              bench_stat_t s, const char *ratio_vs,
                              double ratio) {
  char line[512];
  int n;
  const char *path = getenv("MSVC_BENCH_RESULTS");

  n = snprintf(line, sizeof(line),
               "{\"bench\":\"%s\",\"impl\":\"%s\",\"metric\":\"%s\","
               "\"value\":%.6g,\"unit\":\"%s\",\"runs\":%d,\"min\":%.6g,"
               "\"max\":%.6g",
               bench, impl, metric, s.median, unit, s.runs, s.min, s.max);
  if (ratio_vs != NULL && n > 0 && (size_t)n < sizeof(line))
    n += snprintf(line + n, sizeof(line) - (size_t)n,
                  ",\"ratio_vs\":\"%s\",\"ratio\":%.4g", ratio_vs, ratio);
  if (n > 0 && (size_t)n < sizeof(line) - 2)
    snprintf(line + n, sizeof(line) - (size_t)n, "}");
  puts(line);
  fflush(stdout);
  if (path != NULL && *path != '\0') {
    FILE *f = fopen(path, "a");
    if (f != NULL) {
      fprintf(f, "%s\n", line);
      fclose(f);
    }
  }
}

/* Prevents the compiler from optimising a computed value away. */
#define BENCH_KEEP(x) __asm__ volatile("" : : "r"(x) : "memory")

#endif /* MSVC_BENCH_H */
