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
 *                 limit = L + min(L * (gradient - 1), max(1, sqrt(L)))
 *                                                     (room: probe upward)
 *
 * A limit below MSVC__LIMIT_SLOTS keeps its fraction: n + f lets n requests
 * in, and one more once the one in service longest has been served
 * (1 - f) / n of the no-load latency (with n in service, one leaves every
 * latency / n): the request admitted behind it waits about f / n of a
 * request at most.
 * That makes 1.5 a real limit between 1 (a resource idle while the next
 * request travels) and 2 (a whole request's wait in the queue). The
 * permits of a small limit therefore note their start, a clock read and a
 * compare-and-swap in one of MSVC__LIMIT_SLOTS slots; larger limits are
 * rounded and cost neither.
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
#include <time.h>

#include <msvc/limit.h>

#include "msvc-internal.h"
#include "limit-internal.h"

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
  _Atomic uint64_t value_bits;   /* the limit with its fraction, a double's bits */
  _Atomic uint64_t gate_us;      /* time in service that opens one more; 0: none */
  _Atomic uint64_t left_us;      /* when the last noted permit left */
  char pad1[16];
  _Atomic uint64_t starts[MSVC__LIMIT_SLOTS]; /* permits' starts (us), 0: free */

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

static void publish_value(msvc_limit_adaptive_t *cl, double v) {
  uint64_t bits;

  memcpy(&bits, &v, sizeof(bits));
  atomic_store_explicit(&cl->value_bits, bits, memory_order_relaxed);
}

static uint64_t mono_us(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + 1u;
}

/* A small limit in force as its whole part and a gate for the fraction
 * (none below 5% of a request); a large one rounded. With n requests in
 * service one leaves every latency / n, so the gate is (1 - f) of that. */
static void publish_limit(msvc_limit_adaptive_t *cl, double lim) {
  uint32_t whole = (uint32_t)(lim + 0.5);
  uint64_t gate = 0;

  if (lim < MSVC__LIMIT_SLOTS) {
    double frac;

    whole = (uint32_t)floor(lim);
    frac = lim - (double)whole;
    if (frac >= 0.05) {
      gate = (uint64_t)((1.0 - frac) * cl->baseline_us / (double)whole);
      if (gate == 0) gate = 1;
    }
  }
  atomic_store_explicit(&cl->gate_us, gate, memory_order_relaxed);
  atomic_store_explicit(&cl->limit, whole, memory_order_relaxed);
  publish_value(cl, lim);
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
  atomic_init(&cl->inflight, 0);
  atomic_init(&cl->max_inflight, 0);
  atomic_init(&cl->shed, 0);
  atomic_init(&cl->baseline_pub, 0);
  atomic_init(&cl->left_us, 0);
  for (size_t i = 0; i < MSVC__LIMIT_SLOTS; i++) atomic_init(&cl->starts[i], 0);
  publish_limit(cl, (double)o.initial);
  *out = cl;
  return MSVC_OK;
}

void msvc_limit_adaptive_free(msvc_limit_adaptive_t *cl) {
  if (cl == NULL) return;
  pthread_mutex_destroy(&cl->mu);
  msvc__free(cl);
}

/* The fraction's request: open once the request in service longest has
 * been served long enough. It came in when the oldest permit did, or, if
 * it waited in a queue, when the last permit left: a queued request's age
 * is no progress. Permits of a larger limit that came down have no start
 * noted; they make the oldest look younger, so the gate opens later,
 * never sooner. */
static bool extra_open(msvc_limit_adaptive_t *cl, uint64_t *now_us) {
  uint64_t gate = atomic_load_explicit(&cl->gate_us, memory_order_relaxed);
  uint64_t oldest = UINT64_MAX, s, since;

  if (gate == 0) return false;
  for (size_t i = 0; i < MSVC__LIMIT_SLOTS; i++) {
    s = atomic_load_explicit(&cl->starts[i], memory_order_relaxed);
    if (s != 0 && s < oldest) oldest = s;
  }
  if (oldest == UINT64_MAX) return false;
  since = atomic_load_explicit(&cl->left_us, memory_order_relaxed);
  if (since < oldest) since = oldest;
  if (*now_us == 0) *now_us = mono_us();
  return *now_us > since && *now_us - since >= gate;
}

static void note_start(msvc_limit_adaptive_t *cl, uint64_t *now_us, msvc_limit_permit_t *p) {
  uint64_t free_slot;

  if (*now_us == 0) *now_us = mono_us();
  for (size_t i = 0; i < MSVC__LIMIT_SLOTS; i++) {
    free_slot = 0;
    if (atomic_load_explicit(&cl->starts[i], memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong_explicit(&cl->starts[i], &free_slot, *now_us,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
      p->slot = (uint16_t)(i + 1);
      return;
    }
  }
}

int msvc__limit_adaptive_acquire_at(msvc_limit_adaptive_t *cl, uint64_t now_ms,
                                    uint64_t now_us, msvc_limit_permit_t *p) {
  uint32_t cur, lim, seen;

  if (cl == NULL || p == NULL) return MSVC_EINVAL;
  p->held = false;
  p->slot = 0;
  cur = atomic_load_explicit(&cl->inflight, memory_order_relaxed);
  do {
    lim = atomic_load_explicit(&cl->limit, memory_order_relaxed);
    if (cur >= lim && !(cur == lim && extra_open(cl, &now_us))) {
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
  if (lim < MSVC__LIMIT_SLOTS && !cl->o.fixed) note_start(cl, &now_us, p);
  p->start_ms = now_ms;
  p->held = true;
  return MSVC_OK;
}

int msvc_limit_adaptive_acquire(msvc_limit_adaptive_t *cl, uint64_t now_ms,
                                msvc_limit_permit_t *p) {
  return msvc__limit_adaptive_acquire_at(cl, now_ms, 0, p);
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
    /* By the room the gradient shows, at most the root: a small limit
     * near its tolerance creeps up by a fraction of a request instead of
     * doubling its queue, a large one far below it grows by its root. */
    double room = lim * (gradient - 1.0), most = fmax(1.0, sqrt(lim));

    lim += room < most ? room : most;
  }
  if (lim < cl->o.min_limit) lim = cl->o.min_limit;
  if (lim > cl->o.max_limit) lim = cl->o.max_limit;
  cl->limit_f = lim;
  cl->baseline_us *= shed > 0 ? DRIFT_SHEDDING : DRIFT;
  atomic_store_explicit(&cl->baseline_pub, (uint64_t)cl->baseline_us, memory_order_relaxed);
  publish_limit(cl, lim);
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
  if (p->slot > 0 && p->slot <= MSVC__LIMIT_SLOTS) {
    /* Its start plus its latency: when it left, without a clock read. */
    uint64_t left = atomic_exchange_explicit(&cl->starts[p->slot - 1], 0,
                                             memory_order_relaxed) + latency_us;
    uint64_t seen = atomic_load_explicit(&cl->left_us, memory_order_relaxed);

    while (left > seen &&
           !atomic_compare_exchange_weak_explicit(&cl->left_us, &seen, left,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
  }
  p->slot = 0;
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

double msvc_limit_adaptive_value(const msvc_limit_adaptive_t *cl) {
  uint64_t bits;
  double v;

  if (cl == NULL) return 0.0;
  bits = atomic_load_explicit(&((msvc_limit_adaptive_t *)cl)->value_bits,
                              memory_order_relaxed);
  memcpy(&v, &bits, sizeof(v));
  return v;
}

uint32_t msvc_limit_adaptive_inflight(const msvc_limit_adaptive_t *cl) {
  return cl == NULL ? 0 : atomic_load(&((msvc_limit_adaptive_t *)cl)->inflight);
}

uint64_t msvc_limit_adaptive_baseline_us(const msvc_limit_adaptive_t *cl) {
  return cl == NULL ? 0 : atomic_load(&((msvc_limit_adaptive_t *)cl)->baseline_pub);
}
