/*
 * Adaptive concurrency limit: gradient down, additive up.
 *
 * The admission path is a compare-and-swap on the in-flight count against
 * the published limit. Releases add their latency to the current window
 * under a mutex that admissions never take; the release that finds the
 * window long enough (window_ms and window_min_samples) recomputes the
 * limit:
 *
 *   gradient = tolerance * baseline / mean latency of the window
 *   gradient < 1: limit = min(limit, most in flight) * max(gradient, 0.5)
 *                                                     (queueing: back off)
 *   otherwise, if at least half the limit was used:
 *                 limit = L + max(1, sqrt(L))         (room: probe upward)
 *                 where L is the limit in force (the published, rounded one)
 *
 * The baseline is the no-load latency: it moves halfway down to any lower
 * window mean and rises by 1% per window (0.1% while requests are being
 * shed), so it follows a service that became slower for good without
 * following the queue that overload builds. Slow windows are not acted on
 * until three come in a row (a burst of slow requests in a mixed workload
 * is not congestion), unless a window shed or dropped requests. The
 * default floor (512) is above the connection counts a healthy service
 * meets, so a default limit never sheds one: only a real overload, whose
 * queue grows past the floor, reaches it. Like any latency-based limit it cannot tell
 * a service that started overloaded from a slow one: the first windows set
 * the baseline.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/limit.h>

#include "msvc-internal.h"

#define DRIFT 1.01
#define DRIFT_SHEDDING 1.001
#define MIN_GRADIENT 0.5
#define SUSTAINED 3

struct msvc_limit_adaptive_s {
  _Atomic uint32_t inflight;
  char pad0[60];
  _Atomic uint32_t limit;
  _Atomic uint32_t max_inflight; /* highest in-flight count this window */
  _Atomic uint64_t shed;         /* refusals this window */
  _Atomic uint64_t baseline_pub;
  char pad1[40];

  pthread_mutex_t mu;
  msvc_limit_adaptive_opts_t o;
  double limit_f;
  double baseline_us;
  uint64_t window_start_ms;
  uint64_t sum_us;
  uint64_t max_us;
  uint32_t count;
  uint32_t drops;
  uint32_t congested; /* slow windows in a row */
};

void msvc_limit_adaptive_opts_init(msvc_limit_adaptive_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->initial = 1000;
  opts->min_limit = 512;
  opts->max_limit = 5000;
  opts->tolerance = 2.0;
  opts->window_ms = 100;
  opts->window_min_samples = 20;
}

int msvc_limit_adaptive_new(const msvc_limit_adaptive_opts_t *opts,
                            msvc_limit_adaptive_t **out) {
  msvc_limit_adaptive_opts_t o;
  msvc_limit_adaptive_t *cl;

  if (out == NULL) return MSVC_EINVAL;
  *out = NULL;
  if (opts == NULL)
    msvc_limit_adaptive_opts_init(&o);
  else if (opts->size < sizeof(o))
    return MSVC_EINVAL;
  else
    o = *opts;
  if (o.min_limit < 1 || o.min_limit > o.max_limit || o.initial < o.min_limit ||
      o.initial > o.max_limit || !(o.tolerance >= 1.0 && o.tolerance <= 100.0) ||
      o.window_ms < 1 || o.window_ms > 600000 || o.window_min_samples < 1)
    return MSVC_EINVAL;
  cl = msvc__calloc(1, sizeof(*cl));
  if (cl == NULL) return MSVC_ENOMEM;
  if (pthread_mutex_init(&cl->mu, NULL) != 0) {
    msvc__free(cl);
    return MSVC_ENOMEM;
  }
  cl->o = o;
  cl->limit_f = o.initial;
  atomic_init(&cl->limit, o.initial);
  atomic_init(&cl->inflight, 0);
  atomic_init(&cl->max_inflight, 0);
  atomic_init(&cl->shed, 0);
  atomic_init(&cl->baseline_pub, 0);
  *out = cl;
  return MSVC_OK;
}

void msvc_limit_adaptive_free(msvc_limit_adaptive_t *cl) {
  if (cl == NULL) return;
  pthread_mutex_destroy(&cl->mu);
  msvc__free(cl);
}

int msvc_limit_adaptive_acquire(msvc_limit_adaptive_t *cl, uint64_t now_ms,
                                msvc_limit_permit_t *p) {
  uint32_t cur, lim, seen;

  if (cl == NULL || p == NULL) return MSVC_EINVAL;
  p->held = false;
  cur = atomic_load_explicit(&cl->inflight, memory_order_relaxed);
  do {
    lim = atomic_load_explicit(&cl->limit, memory_order_relaxed);
    if (cur >= lim) {
      atomic_fetch_add_explicit(&cl->shed, 1, memory_order_relaxed);
      return MSVC_ELIMIT;
    }
  } while (!atomic_compare_exchange_weak_explicit(&cl->inflight, &cur, cur + 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed));
  seen = atomic_load_explicit(&cl->max_inflight, memory_order_relaxed);
  while (cur + 1 > seen &&
         !atomic_compare_exchange_weak_explicit(&cl->max_inflight, &seen, cur + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
  p->start_ms = now_ms;
  p->held = true;
  return MSVC_OK;
}

/* End of a window: the mutex is held. */
static void update(msvc_limit_adaptive_t *cl, uint64_t now_ms) {
  double mean = (double)cl->sum_us / cl->count, gradient, lim = cl->limit_f;
  uint32_t used = atomic_exchange_explicit(&cl->max_inflight, 0, memory_order_relaxed);
  uint64_t shed = atomic_exchange_explicit(&cl->shed, 0, memory_order_relaxed);

  uint32_t now_in = atomic_load_explicit(&cl->inflight, memory_order_relaxed);

  if (now_in > used) used = now_in;
  if (mean < 1.0) mean = 1.0;
  /* Halfway down to a lower mean: one lucky window of a mixed workload
   * does not set the baseline on its own. */
  if (cl->baseline_us <= 0.0)
    cl->baseline_us = mean;
  else if (mean < cl->baseline_us)
    cl->baseline_us = (cl->baseline_us + mean) / 2.0;
  gradient = cl->o.tolerance * cl->baseline_us / mean;
  if (cl->drops > 0 && gradient > 0.9) gradient = 0.9;
  /* Slow windows alone (a burst of slow requests of a mixed workload)
   * are not congestion; SUSTAINED in a row, or one that shed or dropped
   * requests, are. */
  if (gradient < 1.0 && ++cl->congested < SUSTAINED && shed == 0 && cl->drops == 0)
    gradient = 1.0;
  if (gradient >= 1.0 && cl->o.tolerance * cl->baseline_us >= mean)
    cl->congested = 0;
  /* Backing off from what was in use, not from an idle limit far above
   * it, reaches a working limit at once. */
  if (gradient < 1.0)
    lim = (used > 0 && used < lim ? (double)used : lim) *
          (gradient < MIN_GRADIENT ? MIN_GRADIENT : gradient);
  else if (cl->congested > 0) {
    /* a first slow window: hold */
  } else if ((double)used * 2.0 >= lim) {
    /* From the limit in force, not from the fraction a back-off left
     * behind: 1.45 (published as 1) grows to 2, where adding the root to
     * the fraction would publish 3 and triple a small service's queue. */
    double in_force = floor(lim + 0.5);

    lim = in_force + fmax(1.0, sqrt(in_force));
  }
  if (lim < cl->o.min_limit) lim = cl->o.min_limit;
  if (lim > cl->o.max_limit) lim = cl->o.max_limit;
  cl->limit_f = lim;
  /* Rounded, not truncated: a small limit backing off from 2 by a mild
   * gradient stays at 2 instead of halving the service's throughput. */
  atomic_store_explicit(&cl->limit, (uint32_t)(lim + 0.5), memory_order_relaxed);
  cl->baseline_us *= shed > 0 ? DRIFT_SHEDDING : DRIFT;
  atomic_store_explicit(&cl->baseline_pub, (uint64_t)cl->baseline_us, memory_order_relaxed);
  cl->window_start_ms = now_ms;
  cl->sum_us = 0;
  cl->max_us = 0;
  cl->count = 0;
  cl->drops = 0;
}

void msvc_limit_adaptive_release(msvc_limit_adaptive_t *cl, msvc_limit_permit_t *p,
                                 msvc_limit_outcome_t outcome, uint64_t latency_us,
                                 uint64_t now_ms) {
  if (cl == NULL || p == NULL || !p->held) return;
  p->held = false;
  atomic_fetch_sub_explicit(&cl->inflight, 1, memory_order_release);
  if (cl->o.fixed || outcome == MSVC_LIMIT_IGNORED) return;
  pthread_mutex_lock(&cl->mu);
  if (cl->count == 0 && cl->window_start_ms == 0) cl->window_start_ms = now_ms;
  if (outcome == MSVC_LIMIT_DROPPED) {
    cl->drops++;
    if (latency_us < cl->max_us) latency_us = cl->max_us;
  }
  cl->sum_us += latency_us;
  if (latency_us > cl->max_us) cl->max_us = latency_us;
  cl->count++;
  if (cl->count >= cl->o.window_min_samples &&
      now_ms >= cl->window_start_ms + cl->o.window_ms)
    update(cl, now_ms);
  pthread_mutex_unlock(&cl->mu);
}

uint32_t msvc_limit_adaptive_limit(const msvc_limit_adaptive_t *cl) {
  return cl == NULL ? 0 : atomic_load(&((msvc_limit_adaptive_t *)cl)->limit);
}

uint32_t msvc_limit_adaptive_inflight(const msvc_limit_adaptive_t *cl) {
  return cl == NULL ? 0 : atomic_load(&((msvc_limit_adaptive_t *)cl)->inflight);
}

uint64_t msvc_limit_adaptive_baseline_us(const msvc_limit_adaptive_t *cl) {
  return cl == NULL ? 0 : atomic_load(&((msvc_limit_adaptive_t *)cl)->baseline_pub);
}
