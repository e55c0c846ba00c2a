#include "breaker/window.h"

#include <sched.h>
#include <string.h>

#include "msvc-internal.h"

#define LINE 128u

static atomic_uint next_thread_slot;
static _Thread_local unsigned thread_slot_plus1;

/* Threads get consecutive slots on first use, so the first few threads
 * recording on any breaker are guaranteed distinct stripes. */
static unsigned thread_slot(void) {
  if (thread_slot_plus1 == 0)
    thread_slot_plus1 = atomic_fetch_add_explicit(&next_thread_slot, 1,
                                                  memory_order_relaxed) + 1;
  return thread_slot_plus1 - 1;
}

/* A spin lock rather than a mutex: the critical sections are a handful of
 * instructions and a stripe is almost never contended, so the uncontended
 * cost (one exchange, one store) is what matters. Yielding keeps a thread
 * preempted inside the lock from costing others a whole time slice. */
static void stripe_lock(msvc__bw_stripe_t *st) {
  unsigned spins = 0;

  for (;;) {
    if (!atomic_exchange_explicit(&st->s.lock, 1, memory_order_acquire))
      return;
    while (atomic_load_explicit(&st->s.lock, memory_order_relaxed) != 0) {
      if (++spins >= 64) {
        spins = 0;
        sched_yield();
      } else {
        msvc__cpu_relax();
      }
    }
  }
}

static void stripe_unlock(msvc__bw_stripe_t *st) {
  atomic_store_explicit(&st->s.lock, 0, memory_order_release);
}

static size_t round_line(size_t n) {
  return (n + LINE - 1) / LINE * LINE;
}

int msvc__bw_init(msvc__bw_t *w, bool count_based, uint32_t size,
                  uint64_t gen) {
  size_t slot_bytes, per_stripe, total;
  uintptr_t base;
  uint32_t i;

  memset(w, 0, sizeof(*w));
  w->count_based = count_based;
  w->size = size;
  w->nstripes = count_based ? 1u : MSVC__BW_TIME_STRIPES;
  slot_bytes = count_based ? (size_t)size : (size_t)size * sizeof(msvc__bw_bucket_t);
  per_stripe = round_line(slot_bytes);
  total = (size_t)w->nstripes * (sizeof(msvc__bw_stripe_t) + per_stripe);
  w->raw = msvc__calloc(1, total + LINE);
  if (w->raw == NULL)
    return MSVC_ENOMEM;
  base = ((uintptr_t)w->raw + LINE - 1) & ~(uintptr_t)(LINE - 1);
  w->stripes = (msvc__bw_stripe_t *)base;
  base += (size_t)w->nstripes * sizeof(msvc__bw_stripe_t);
  for (i = 0; i < w->nstripes; i++) {
    atomic_init(&w->stripes[i].s.lock, 0);
    w->stripes[i].s.gen = gen;
    w->stripes[i].s.slots = (void *)(base + (size_t)i * per_stripe);
  }
  return MSVC_OK;
}

void msvc__bw_free(msvc__bw_t *w) {
  msvc__free(w->raw);
  w->raw = NULL;
  w->stripes = NULL;
}

static void stripe_add(msvc__bw_stripe_t *st, unsigned bits, int sign) {
  uint64_t one = (uint64_t)(int64_t)sign;

  st->s.calls += one;
  if (bits & MSVC__BW_FAILURE)
    st->s.failures += one;
  if (bits & MSVC__BW_SLOW)
    st->s.slow += one;
}

/* Drops the buckets that fell out of the window between the newest second
 * seen and `sec`. Bounded by the window size however long the gap, so the
 * amortised cost per record stays O(1). */
static void stripe_advance(const msvc__bw_t *w, msvc__bw_stripe_t *st,
                           uint64_t sec) {
  msvc__bw_bucket_t *buckets = st->s.slots;
  uint64_t s;

  if (!st->s.started) {
    st->s.started = true;
    st->s.last_sec = sec;
    return;
  }
  if (sec <= st->s.last_sec)
    return;
  if (sec - st->s.last_sec >= w->size) {
    memset(buckets, 0, (size_t)w->size * sizeof(*buckets));
    st->s.calls = st->s.failures = st->s.slow = 0;
  } else {
    for (s = st->s.last_sec + 1; s <= sec; s++) {
      msvc__bw_bucket_t *b = &buckets[s % w->size];
      st->s.calls -= b->calls;
      st->s.failures -= b->failures;
      st->s.slow -= b->slow;
      memset(b, 0, sizeof(*b));
    }
  }
  st->s.last_sec = sec;
}

static void record_time(const msvc__bw_t *w, msvc__bw_stripe_t *st,
                        unsigned bits, uint64_t now_ms) {
  msvc__bw_bucket_t *b;
  uint64_t sec = now_ms / 1000u;

  stripe_advance(w, st, sec);
  /* A clock that went backwards (or a late outcome) lands in the newest
   * bucket rather than in one that may already have been recycled. */
  if (sec < st->s.last_sec)
    sec = st->s.last_sec;
  b = &((msvc__bw_bucket_t *)st->s.slots)[sec % w->size];
  b->sec = sec;
  b->calls++;
  if (bits & MSVC__BW_FAILURE)
    b->failures++;
  if (bits & MSVC__BW_SLOW)
    b->slow++;
  stripe_add(st, bits, 1);
}

static void record_count(const msvc__bw_t *w, msvc__bw_stripe_t *st,
                         unsigned bits) {
  uint8_t *ring = st->s.slots;

  if (st->s.filled == w->size)
    stripe_add(st, ring[st->s.head], -1);
  else
    st->s.filled++;
  ring[st->s.head] = (uint8_t)bits;
  st->s.head = st->s.head + 1 == w->size ? 0 : st->s.head + 1;
  stripe_add(st, bits, 1);
}

bool msvc__bw_record(msvc__bw_t *w, uint64_t gen, unsigned bits,
                     uint64_t now_ms) {
  msvc__bw_stripe_t *st = &w->stripes[thread_slot() & (w->nstripes - 1)];
  bool ok;

  stripe_lock(st);
  ok = st->s.gen == gen;
  if (ok) {
    if (w->count_based)
      record_count(w, st, bits);
    else
      record_time(w, st, bits, now_ms);
  }
  stripe_unlock(st);
  return ok;
}

void msvc__bw_totals(msvc__bw_t *w, uint64_t now_ms, msvc__bw_counts_t *out) {
  uint32_t i;

  memset(out, 0, sizeof(*out));
  for (i = 0; i < w->nstripes; i++) {
    msvc__bw_stripe_t *st = &w->stripes[i];

    stripe_lock(st);
    if (!w->count_based && st->s.started)
      stripe_advance(w, st, now_ms / 1000u);
    out->calls += st->s.calls;
    out->failures += st->s.failures;
    out->slow += st->s.slow;
    stripe_unlock(st);
  }
}

void msvc__bw_reset(msvc__bw_t *w, uint64_t gen) {
  size_t bytes = w->count_based ? (size_t)w->size
                                : (size_t)w->size * sizeof(msvc__bw_bucket_t);
  uint32_t i;

  for (i = 0; i < w->nstripes; i++) {
    msvc__bw_stripe_t *st = &w->stripes[i];

    stripe_lock(st);
    memset(st->s.slots, 0, bytes);
    st->s.head = st->s.filled = 0;
    st->s.started = false;
    st->s.last_sec = 0;
    st->s.calls = st->s.failures = st->s.slow = 0;
    st->s.gen = gen;
    stripe_unlock(st);
  }
}
