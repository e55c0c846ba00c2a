/*
 * Balancer micro-benchmarks: nanoseconds per pick + done for each policy at
 * 2, 10, 100, 1,000 and 10,000 endpoints, on one thread and on two threads
 * sharing one balancer (the _2t figure is wall time divided by the picks of
 * both threads, so a perfect scale-up halves it). Beside each, in the same
 * run, the naive way: a linear scan under a mutex.
 *
 * Round-robin is measured with equal weights (its common case) as
 * lb_pick_round_robin_<n>, and with mixed weights as
 * lb_pick_round_robin_weighted_<n>; the other policies with mixed weights.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <msvc/error.h>
#include <msvc/lb.h>

#include "bench.h"
#include "msvc-internal.h"

#define MAX_EPS 10000

static const size_t sizes[] = {2, 10, 100, 1000, 10000};

typedef struct variant_s {
  const char *name;
  msvc_lb_policy_t policy;
  bool weighted;
} variant_t;

static const variant_t variants[] = {
    {"round_robin", MSVC_LB_ROUND_ROBIN, false},
    {"round_robin_weighted", MSVC_LB_ROUND_ROBIN, true},
    {"least_conn", MSVC_LB_LEAST_CONN, true},
    {"p2c", MSVC_LB_P2C, true},
};

static char ids[MAX_EPS][24];
static uint32_t weights[MAX_EPS];

/* ---- the naive baseline -------------------------------------------------- */
typedef struct naive_s {
  pthread_mutex_t mu;
  msvc_lb_policy_t policy;
  size_t n;
  uint64_t inflight[MAX_EPS];
  uint64_t picks[MAX_EPS];
  int64_t current[MAX_EPS];
  uint64_t w[MAX_EPS];
  size_t next;
} naive_t;

static size_t naive_pick(naive_t *nv) {
  size_t best = 0, i;

  pthread_mutex_lock(&nv->mu);
  if (nv->policy == MSVC_LB_P2C) {
    size_t a = (size_t)msvc__rand_below(nv->n);
    size_t b = (size_t)msvc__rand_below(nv->n - 1);
    b += b >= a;
    best = nv->inflight[b] * nv->w[a] < nv->inflight[a] * nv->w[b] ? b : a;
  } else if (nv->policy == MSVC_LB_LEAST_CONN) {
    for (i = 1; i < nv->n; i++) {
      size_t j = (nv->next + i) % nv->n;
      if (nv->inflight[j] * nv->w[best] < nv->inflight[best] * nv->w[j])
        best = j;
    }
    nv->next++;
  } else {
    int64_t total = 0;
    for (i = 0; i < nv->n; i++) {
      nv->current[i] += (int64_t)nv->w[i];
      total += (int64_t)nv->w[i];
      if (nv->current[i] > nv->current[best])
        best = i;
    }
    nv->current[best] -= total;
  }
  nv->inflight[best]++;
  nv->picks[best]++;
  pthread_mutex_unlock(&nv->mu);
  return best;
}

static void naive_done(naive_t *nv, size_t i) {
  pthread_mutex_lock(&nv->mu);
  nv->inflight[i]--;
  pthread_mutex_unlock(&nv->mu);
}

/* ---- one run ------------------------------------------------------------- */
typedef struct job_s {
  msvc_lb_t *lb;
  naive_t *nv;
  uint64_t ops;
  pthread_barrier_t *start;
  int failed;
  double t0, t1; /* the job's own start and end, ns */
} job_t;

static void *run_job(void *arg) {
  job_t *j = arg;
  uint64_t i;

  if (j->start != NULL)
    pthread_barrier_wait(j->start);
  j->t0 = bench_now_ns();
  if (j->lb != NULL) {
    msvc_lb_ticket_t t;
    for (i = 0; i < j->ops; i++) {
      if (msvc_lb_pick(j->lb, 1000, &t) != MSVC_OK ||
          msvc_lb_done(j->lb, &t, MSVC_LB_SUCCESS, 100) != MSVC_OK)
        j->failed = 1;
    }
  } else {
    for (i = 0; i < j->ops; i++)
      naive_done(j->nv, naive_pick(j->nv));
  }
  j->t1 = bench_now_ns();
  return NULL;
}

/* ns per pick + done over ops picks spread on nthreads threads. Each job
 * times itself: on a machine with as many cores as jobs, the thread that
 * started them may not run again before one has finished, so its clock
 * would miss the start. */
static double measure(msvc_lb_t *lb, naive_t *nv, uint64_t ops, int nthreads) {
  pthread_t th[2];
  pthread_barrier_t start;
  job_t jobs[2];
  double t0, t1;
  int i;

  pthread_barrier_init(&start, NULL, (unsigned)nthreads);
  for (i = 0; i < nthreads; i++) {
    jobs[i] = (job_t){lb, nv, ops / (uint64_t)nthreads, &start, 0, 0, 0};
    pthread_create(&th[i], NULL, run_job, &jobs[i]);
  }
  for (i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&start);
  t0 = jobs[0].t0;
  t1 = jobs[0].t1;
  for (i = 0; i < nthreads; i++) {
    if (jobs[i].failed)
      fprintf(stderr, "bench_lb: a pick or done failed\n");
    t0 = jobs[i].t0 < t0 ? jobs[i].t0 : t0;
    t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
  }
  return (t1 - t0) / (double)ops;
}

static msvc_lb_t *make_lb(const variant_t *v, size_t n) {
  static msvc_lb_endpoint_t eps[MAX_EPS];
  msvc_lb_opts_t o;
  msvc_lb_t *lb;
  size_t i;

  msvc_lb_opts_init(&o);
  o.policy = v->policy;
  o.track_tickets = false;
  if (msvc_lb_new(&o, &lb) != MSVC_OK)
    return NULL;
  for (i = 0; i < n; i++) {
    eps[i].id = ids[i];
    eps[i].weight = v->weighted ? weights[i] : 1;
    eps[i].metadata = NULL;
  }
  if (msvc_lb_update(lb, eps, n, 0) != MSVC_OK) {
    msvc_lb_free(lb);
    return NULL;
  }
  return lb;
}

static void bench_one(const variant_t *v, size_t n, int nthreads) {
  static naive_t nv;
  double mine[5], base[5];
  uint64_t ops = bench_quick() ? 200000 : 2000000;
  /* the baseline scans: give it fewer picks at large sizes */
  uint64_t base_ops = v->policy == MSVC_LB_P2C ? ops : ops * 10 / (10 + n / 10);
  int runs = bench_runs(), r;
  char name[96];
  bench_stat_t sm, sb;
  msvc_lb_t *lb = make_lb(v, n);
  size_t i;

  if (lb == NULL) {
    fprintf(stderr, "bench_lb: cannot build a balancer of %zu\n", n);
    return;
  }
  memset(&nv, 0, sizeof(nv));
  pthread_mutex_init(&nv.mu, NULL);
  nv.policy = v->policy;
  nv.n = n;
  for (i = 0; i < n; i++)
    nv.w[i] = v->weighted ? weights[i] : 1;
  for (r = 0; r < runs; r++) {
    mine[r] = measure(lb, NULL, ops, nthreads);
    base[r] = measure(NULL, &nv, base_ops < 1000 ? 1000 : base_ops, nthreads);
  }
  pthread_mutex_destroy(&nv.mu);
  msvc_lb_free(lb);
  sm = bench_stats(mine, runs);
  sb = bench_stats(base, runs);
  snprintf(name, sizeof(name), "lb_pick_%s_%zu%s", v->name, n,
           nthreads == 2 ? "_2t" : "");
  bench_emit(name, "libmsvc", "ns_per_op", "ns", sm, "naive_baseline",
             sm.median / sb.median);
  bench_emit(name, "naive_baseline", "ns_per_op", "ns", sb, NULL, 0);
}

int main(void) {
  size_t v, s, i;

  for (i = 0; i < MAX_EPS; i++) {
    snprintf(ids[i], sizeof(ids[i]), "10.%zu.%zu.%zu:8080", i / 65536,
             i / 256 % 256, i % 256);
    weights[i] = 1 + (uint32_t)(i * 7919 % 10);
  }
  for (v = 0; v < MSVC__ARRAY_SIZE(variants); v++) {
    for (s = 0; s < MSVC__ARRAY_SIZE(sizes); s++) {
      bench_one(&variants[v], sizes[s], 1);
      bench_one(&variants[v], sizes[s], 2);
    }
  }
  return 0;
}
