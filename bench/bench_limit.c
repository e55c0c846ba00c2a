/*
 * Rate limit checks: msvc_limit_rate_check() on a table of 65536 keys, each
 * thread cycling over 4096 keys of its own (a busy service's clients), the
 * clock moving 1 ms every 1024 checks. Lines:
 *   ratelimit_check     libmsvc  ns_per_op  one thread
 *   ratelimit_check_2t  libmsvc  ns_per_op  two threads on one limiter:
 *                                           wall time / checks of both, with
 *                                           the ratio to the one-thread figure
 *                                           (0.5 is perfect scaling)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <msvc/error.h>
#include <msvc/limit.h>

#include "bench.h"

#define KEYS 4096

typedef struct job_s {
  msvc_limit_rate_t *rl;
  char (*keys)[24];
  size_t *lens;
  long iters;
  long refused;
} job_t;

static void *run(void *arg) {
  job_t *j = arg;
  long i;

  for (i = 0; i < j->iters; i++) {
    unsigned k = (unsigned)i & (KEYS - 1);

    if (msvc_limit_rate_check(j->rl, j->keys[k], j->lens[k], 1, 1000 + ((uint64_t)i >> 10),
                              NULL) != MSVC_OK)
      j->refused++;
  }
  return NULL;
}

static char keys[2][KEYS][24];
static size_t lens[2][KEYS];

static double timed(int threads, long iters) {
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl;
  pthread_t t[2];
  job_t jobs[2];
  double start, ns;
  int i;

  msvc_limit_rate_opts_init(&o);
  o.rate = 1000000; /* refused checks cost the same; keep most allowed */
  o.period_ms = 1000;
  o.burst = 1000000;
  o.max_keys = 65536;
  if (msvc_limit_rate_new(&o, &rl) != MSVC_OK) {
    fprintf(stderr, "bench_limit: cannot create a limiter\n");
    exit(1);
  }
  for (i = 0; i < threads; i++) jobs[i] = (job_t){rl, keys[i], lens[i], iters, 0};
  run(&(job_t){rl, keys[0], lens[0], KEYS, 0}); /* keys in place */
  if (threads == 2) run(&(job_t){rl, keys[1], lens[1], KEYS, 0});
  start = bench_now_ns();
  if (threads == 1) {
    run(&jobs[0]);
  } else {
    for (i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, &jobs[i]);
    for (i = 0; i < threads; i++) pthread_join(t[i], NULL);
  }
  ns = (bench_now_ns() - start) / ((double)iters * threads);
  msvc_limit_rate_free(rl);
  return ns;
}

int main(void) {
  long iters = bench_quick() ? 500000 : 10000000;
  double one[5], two[5];
  int r, runs = bench_runs(), t, k;
  bench_stat_t s1, s2;

  for (t = 0; t < 2; t++)
    for (k = 0; k < KEYS; k++)
      lens[t][k] = (size_t)snprintf(keys[t][k], sizeof(keys[t][k]), "10.%d.%d.%d", t,
                                    k >> 8, k & 255);
  for (r = 0; r < runs; r++) {
    one[r] = timed(1, iters);
    two[r] = timed(2, iters);
  }
  s1 = bench_stats(one, runs);
  s2 = bench_stats(two, runs);
  bench_emit("ratelimit_check", "libmsvc", "ns_per_op", "ns", s1, NULL, 0);
  bench_emit("ratelimit_check_2t", "libmsvc", "ns_per_op", "ns", s2, "ratelimit_check",
             s2.median / s1.median);
  return 0;
}
