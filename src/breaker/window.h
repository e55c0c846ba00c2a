/*
 * Sliding windows of call outcomes for the circuit breaker.
 *
 * A window is split into stripes, each with its own tiny lock and its own
 * counters, so that threads recording successes on a healthy breaker never
 * write to the same cache line. A thread always uses the same stripe. Totals
 * are only summed when a rate has to be judged, which the breaker does on
 * bad outcomes only.
 *
 * - A time window has one bucket per second per stripe; the sum over all
 *   stripes is exact whatever thread recorded what.
 * - A count window ("the last N outcomes") needs one global order, so it has
 *   a single stripe holding a ring of N outcomes.
 *
 * Each stripe remembers the breaker generation it belongs to: an outcome
 * whose permit came from another generation is dropped under the stripe's
 * lock, so a window emptied by a transition never sees a stale outcome.
 */
#ifndef MSVC_BREAKER_WINDOW_H
#define MSVC_BREAKER_WINDOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MSVC__BW_FAILURE 1u
#define MSVC__BW_SLOW 2u

/* Stripes of a time window; a power of two. */
#define MSVC__BW_TIME_STRIPES 8u

typedef struct msvc__bw_counts_s {
  uint64_t calls;
  uint64_t failures;
  uint64_t slow;
} msvc__bw_counts_t;

typedef struct msvc__bw_bucket_s {
  uint64_t sec;
  uint32_t calls;
  uint32_t failures;
  uint32_t slow;
  uint32_t unused;
} msvc__bw_bucket_t;

/* One cache line per stripe: the lock and the counters written together. */
typedef union msvc__bw_stripe_u {
  struct {
    atomic_int lock;
    uint32_t head;    /* count ring: next slot to write */
    uint32_t filled;  /* count ring: slots holding an outcome */
    bool started;     /* time window: last_sec is meaningful */
    uint64_t gen;
    uint64_t last_sec; /* time window: newest second seen */
    uint64_t calls;
    uint64_t failures;
    uint64_t slow;
    void *slots;      /* uint8_t[size] or msvc__bw_bucket_t[size] */
  } s;
  char line[128];
} msvc__bw_stripe_t;

typedef struct msvc__bw_s {
  bool count_based;
  uint32_t size;     /* outcomes (count) or seconds (time) */
  uint32_t nstripes;
  msvc__bw_stripe_t *stripes;
  void *raw;         /* allocation holding stripes and their slots */
} msvc__bw_t;

int msvc__bw_init(msvc__bw_t *w, bool count_based, uint32_t size,
                  uint64_t gen);
void msvc__bw_free(msvc__bw_t *w);

/* Adds one outcome (MSVC__BW_* bits) to the calling thread's stripe.
 * Returns false, counting nothing, if the stripe belongs to another
 * generation than `gen`. */
bool msvc__bw_record(msvc__bw_t *w, uint64_t gen, unsigned bits,
                     uint64_t now_ms);

/* Sums every stripe as of now_ms. */
void msvc__bw_totals(msvc__bw_t *w, uint64_t now_ms, msvc__bw_counts_t *out);

/* Empties the window and moves it to generation `gen`. */
void msvc__bw_reset(msvc__bw_t *w, uint64_t gen);

#endif /* MSVC_BREAKER_WINDOW_H */
