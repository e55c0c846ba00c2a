/*
 * Circuit breaker micro-benchmarks: one acquire + one record of a success
 * on a CLOSED breaker with the default options (time window), from one
 * thread and from two threads sharing the breaker. The baseline is the
 * obvious design: one mutex around a count window.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <msvc/breaker.h>
#include <msvc/error.h>

#include "bench.h"

/* ---- the baseline: a mutex-protected breaker ---- */

typedef struct naive_s {
  pthread_mutex_t mu;
  int open;
  uint8_t ring[100];
  unsigned head, filled, failures;
} naive_t;

static int naive_acquire(naive_t *n) {
  int open;

  pthread_mutex_lock(&n->mu);
  open = n->open;
  pthread_mutex_unlock(&n->mu);
  return open ? -1 : 0;
}

static void naive_record(naive_t *n, int failed) {
  pthread_mutex_lock(&n->mu);
  if (n->filled == 100)
    n->failures -= n->ring[n->head];
  else
    n->filled++;
  n->ring[n->head] = (uint8_t)failed;
  n->failures += (unsigned)failed;
  n->head = (n->head + 1) % 100;
  if (n->filled >= 20 && n->failures * 2 >= n->filled)
    n->open = 1;
  pthread_mutex_unlock(&n->mu);
}

/* ---- workloads ---- */

typedef struct job_s {
  msvc_breaker_t *b;
  naive_t *n;
  long iters;
  uint64_t t0;
  int failed;
} job_t;

static void *run_breaker(void *arg) {
  job_t *j = arg;
  long i;

  for (i = 0; i < j->iters; i++) {
    msvc_breaker_permit_t p;
    uint64_t now = j->t0 + (uint64_t)(i >> 10); /* ~1 ms per 1024 calls */

    if (msvc_breaker_acquire(j->b, now, &p) == MSVC_OK)
      msvc_breaker_record(j->b, &p, MSVC_BREAKER_SUCCESS, 1, now);
    else
      j->failed++;
  }
  return NULL;
}

static void *run_naive(void *arg) {
  job_t *j = arg;
  long i;

  for (i = 0; i < j->iters; i++) {
    if (naive_acquire(j->n) == 0)
      naive_record(j->n, 0);
    else
      j->failed++;
  }
  return NULL;
}

/* Runs `threads` copies of fn, thread i on breaker b[i]; returns elapsed
 * ns. */
static double timed_on(void *(*fn)(void *), msvc_breaker_t **b, naive_t *n,
                       int threads, long iters) {
  pthread_t t[2];
  job_t jobs[2];
  double start;
  int i;

  for (i = 0; i < threads; i++)
    jobs[i] = (job_t){b[i], n, iters, 1000000, 0};
  start = bench_now_ns();
  if (threads == 1) {
    fn(&jobs[0]);
  } else {
    for (i = 0; i < threads; i++)
      pthread_create(&t[i], NULL, fn, &jobs[i]);
    for (i = 0; i < threads; i++)
      pthread_join(t[i], NULL);
  }
  for (i = 0; i < threads; i++)
    if (jobs[i].failed)
      fprintf(stderr, "bench_breaker: %d calls rejected\n", jobs[i].failed);
  return bench_now_ns() - start;
}

/* The same on one shared breaker. */
static double timed(void *(*fn)(void *), msvc_breaker_t *b, naive_t *n,
                    int threads, long iters) {
  msvc_breaker_t *own[2] = {b, b};
  return timed_on(fn, own, n, threads, iters);
}

typedef struct figures_s {
  bench_stat_t ns_1t;
  bench_stat_t ops_2t;
} figures_t;

static figures_t measure(void *(*fn)(void *), long iters) {
  double ns[5], ops[5];
  int r, runs = bench_runs();
  figures_t f;

  for (r = 0; r < runs; r++) {
    msvc_breaker_t *b = NULL;
    naive_t n = {PTHREAD_MUTEX_INITIALIZER, 0, {0}, 0, 0, 0};

    if (msvc_breaker_new(NULL, &b) != MSVC_OK) {
      fprintf(stderr, "bench_breaker: cannot create a breaker\n");
      exit(1);
    }
    ns[r] = timed(fn, b, &n, 1, iters) / (double)iters;
    ops[r] = 2.0 * (double)iters / (timed(fn, b, &n, 2, iters) / 1e9);
    msvc_breaker_free(b);
  }
  f.ns_1t = bench_stats(ns, runs);
  f.ops_2t = bench_stats(ops, runs);
  return f;
}

/* Two threads on two separate breakers: what the machine gives two
 * threads that share nothing, the ceiling for the shared-breaker figure. */
static double independent_ops(long iters) {
  double ops[5];
  int r, runs = bench_runs();

  for (r = 0; r < runs; r++) {
    msvc_breaker_t *b[2] = {NULL, NULL};

    if (msvc_breaker_new(NULL, &b[0]) != MSVC_OK ||
        msvc_breaker_new(NULL, &b[1]) != MSVC_OK) {
      fprintf(stderr, "bench_breaker: cannot create a breaker\n");
      exit(1);
    }
    ops[r] = 2.0 * (double)iters /
             (timed_on(run_breaker, b, NULL, 2, iters) / 1e9);
    msvc_breaker_free(b[0]);
    msvc_breaker_free(b[1]);
  }
  return bench_stats(ops, runs).median;
}

int main(void) {
  long iters = bench_quick() ? 200000 : 5000000;
  figures_t lib, base;
  double indep;

  lib = measure(run_breaker, iters);
  base = measure(run_naive, iters);
  indep = independent_ops(iters);
  bench_emit("breaker_acquire_record", "libmsvc", "ns_per_op", "ns", lib.ns_1t,
             "mutex_baseline", lib.ns_1t.median / base.ns_1t.median);
  bench_emit("breaker_acquire_record", "mutex_baseline", "ns_per_op", "ns",
             base.ns_1t, NULL, 0);
  bench_emit("breaker_acquire_record_2t", "libmsvc", "ops_per_s", "ops/s",
             lib.ops_2t, "mutex_baseline",
             lib.ops_2t.median / base.ops_2t.median);
  bench_emit("breaker_acquire_record_2t", "mutex_baseline", "ops_per_s",
             "ops/s", base.ops_2t, NULL, 0);
  fprintf(stderr,
          "bench_breaker: two threads vs one: libmsvc %.2fx, "
          "mutex_baseline %.2fx, two unshared breakers %.2fx\n",
          lib.ops_2t.median * lib.ns_1t.median / 1e9,
          base.ops_2t.median * base.ns_1t.median / 1e9,
          indep * lib.ns_1t.median / 1e9);
  return 0;
}
