/*
 * The hot path: updates of counters, gauges and histograms through cached
 * child handles, plus the per-thread slots that let sharded metrics be
 * updated without read-modify-write instructions.
 */
#include <math.h>
#include <unistd.h>

#include "metrics/metrics-internal.h"

#define MAX_SLOTS 64u

_Thread_local unsigned msvc__tls_slot;

static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t slots_key;
static bool slots_key_ok;
static unsigned slots_count;
static bool slots_used[MAX_SLOTS];

/* A slot's values stay in every metric after its thread ends; the next
 * thread given the slot keeps adding to them. The lock orders the old
 * owner's last store before the new owner's first load. */
static void on_thread_exit(void *p) {
  unsigned index = (unsigned)((uintptr_t)p - 1);

  pthread_mutex_lock(&slots_lock);
  if (index < MAX_SLOTS)
    slots_used[index] = false;
  pthread_mutex_unlock(&slots_lock);
}

static void slots_init(void) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned n;

  /* Twice the CPUs covers the usual one-loop-per-core service plus a few
   * helper threads; more threads than that share the overflow cell. */
  n = ncpu > 0 ? (unsigned)ncpu * 2u : 4u;
  if (n < 4)
    n = 4;
  if (n > MAX_SLOTS)
    n = MAX_SLOTS;
  slots_count = n;
  slots_key_ok = pthread_key_create(&slots_key, on_thread_exit) == 0;
}

unsigned msvc__metrics_slots(void) {
  pthread_once(&slots_once, slots_init);
  return slots_count;
}

unsigned msvc__metrics_slot_acquire(void) {
  unsigned i, n = msvc__metrics_slots(), word = ((n + 1) << 1) | 1u;

  /* Without a key the slot could never be handed back, so such a thread
   * stays on the shared cell. */
  if (slots_key_ok) {
    pthread_mutex_lock(&slots_lock);
    for (i = 0; i < n; i++) {
      if (!slots_used[i]) {
        if (pthread_setspecific(slots_key, (void *)(uintptr_t)(i + 1)) == 0) {
          slots_used[i] = true;
          word = (i + 1) << 1;
        }
        break;
      }
    }
    pthread_mutex_unlock(&slots_lock);
  }
  msvc__tls_slot = word;
  return word;
}

static inline void *cell_of(const msvc__child_t *c, unsigned index) {
  return c->cells + (size_t)index * c->fam->cell_size;
}

/* The calling thread's cell. An unsharded child has a stride of 0, so
 * every thread lands on its one cell, and updates it atomically. */
static inline void *my_cell(const msvc__child_t *c, bool *exclusive) {
  unsigned w = msvc__metrics_slot();

  *exclusive = (w & 1u) == 0 && c->sharded;
  return c->cells + (size_t)((w >> 1) - 1) * c->stride;
}

static inline void atomic_add_double(_Atomic double *p, double v) {
  double old = atomic_load_explicit(p, memory_order_relaxed);

  while (!atomic_compare_exchange_weak_explicit(p, &old, old + v, memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

/* Only the owner thread writes an exclusive cell, so a load and a store are
 * enough; both are atomic so that a concurrent scrape never reads a torn
 * value. */
static inline void owner_add_u64(_Atomic uint64_t *p, uint64_t v) {
  atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

static inline void owner_add_double(_Atomic double *p, double v) {
  atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

void msvc_metrics_counter_inc(msvc_metrics_counter_t *c) {
  bool ex;
  msvc__counter_cell_t *cell = my_cell(&c->c, &ex);

  if (MSVC__LIKELY(ex))
    owner_add_u64(&cell->n, 1);
  else
    atomic_fetch_add_explicit(&cell->n, 1, memory_order_relaxed);
}

int msvc_metrics_counter_add(msvc_metrics_counter_t *c, double v) {
  bool ex;
  msvc__counter_cell_t *cell;

  if (c == NULL || !(v >= 0) || isinf(v))
    return MSVC_EINVAL;
  cell = my_cell(&c->c, &ex);
  if (ex)
    owner_add_double(&cell->f, v);
  else
    atomic_add_double(&cell->f, v);
  return MSVC_OK;
}

double msvc__child_counter_value(const msvc__child_t *c) {
  uint64_t n = 0;
  double f = 0;
  unsigned i;

  for (i = 0; i < c->fam->ncells; i++) {
    msvc__counter_cell_t *cell = cell_of(c, i);
    n += atomic_load_explicit(&cell->n, memory_order_relaxed);
    f += atomic_load_explicit(&cell->f, memory_order_relaxed);
  }
  return (double)n + f;
}

double msvc_metrics_counter_value(const msvc_metrics_counter_t *c) {
  return msvc__child_counter_value(&c->c);
}

/* Meant for unsharded counters that only a collector writes; a sharded one
 * has its other cells cleared so that the sum is the value set. */
void msvc__metrics_counter_set(msvc_metrics_counter_t *c, double v) {
  unsigned i;

  for (i = 0; i < c->c.fam->ncells; i++) {
    msvc__counter_cell_t *cell = cell_of(&c->c, i);
    atomic_store_explicit(&cell->n, 0, memory_order_relaxed);
    atomic_store_explicit(&cell->f, i == 0 ? v : 0.0, memory_order_relaxed);
  }
}

void msvc_metrics_gauge_set(msvc_metrics_gauge_t *g, double v) {
  atomic_store_explicit(&g->c.gauge, v, memory_order_relaxed);
}

void msvc_metrics_gauge_add(msvc_metrics_gauge_t *g, double v) {
  atomic_add_double(&g->c.gauge, v);
}

void msvc_metrics_gauge_inc(msvc_metrics_gauge_t *g) {
  atomic_add_double(&g->c.gauge, 1.0);
}

void msvc_metrics_gauge_dec(msvc_metrics_gauge_t *g) {
  atomic_add_double(&g->c.gauge, -1.0);
}

double msvc_metrics_gauge_value(const msvc_metrics_gauge_t *g) {
  return atomic_load_explicit(&g->c.gauge, memory_order_relaxed);
}

static inline size_t bucket_index(const msvc__family_t *f, double v) {
  const double *b = f->bounds;
  size_t lo = 0, hi = f->bound_count;

  /* NaN compares false everywhere and so lands in +Inf (index bound_count). */
  if (hi <= 16) {
    while (lo < hi && !(v <= b[lo]))
      lo++;
    return lo;
  }
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= b[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo < f->bound_count && !(v <= b[lo]))
    lo = f->bound_count;
  return lo;
}

static void observe_at(msvc_metrics_histogram_t *h, size_t i, double v) {
  bool ex;
  msvc__hist_cell_t *cell = my_cell(&h->c, &ex);

  if (MSVC__LIKELY(ex)) {
    owner_add_u64(&cell->counts[i], 1);
    owner_add_double(&cell->sum, v);
  } else {
    atomic_fetch_add_explicit(&cell->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&cell->sum, v);
  }
}

void msvc_metrics_histogram_observe(msvc_metrics_histogram_t *h, double v) {
  observe_at(h, bucket_index(h->c.fam, v), v);
}

/* s is the caller's C string, maybe shorter than n: its length first, so
 * that the word-at-a-time check reads nothing past its end. */
static bool ex_hex(const char *s, size_t n) {
  return strnlen(s, n + 1) == n && msvc__hex_lower_ok(s, n);
}

static void ex_lock(msvc__child_t *c) {
  while (atomic_flag_test_and_set_explicit(&c->ex_lock, memory_order_acquire))
    ;
}

static void ex_unlock(msvc__child_t *c) {
  atomic_flag_clear_explicit(&c->ex_lock, memory_order_release);
}

static void keep_exemplar(msvc_metrics_histogram_t *h, size_t b, double v,
                          const char *trace_id, const char *span_id, uint64_t wall_ms) {
  msvc__child_t *c = &h->c;
  msvc__exemplar_t *ex, *fresh;

  ex = atomic_load_explicit(&c->exemplars, memory_order_acquire);
  if (ex == NULL) {
    fresh = msvc__calloc(c->fam->bound_count + 1, sizeof(*fresh));
    if (fresh == NULL)
      return;
    if (!atomic_compare_exchange_strong(&c->exemplars, &ex, fresh))
      msvc__free(fresh); /* another thread was first: ex is theirs */
    else
      ex = fresh;
  }
  ex_lock(c);
  memcpy(ex[b].trace_id, trace_id, 33);
  if (span_id != NULL)
    memcpy(ex[b].span_id, span_id, 17);
  else
    ex[b].span_id[0] = '\0';
  ex[b].value = v;
  ex[b].wall_ms = wall_ms;
  ex[b].set = true;
  ex_unlock(c);
}

void msvc_metrics_histogram_observe_exemplar(msvc_metrics_histogram_t *h, double v,
                                             const char *trace_id, const char *span_id,
                                             uint64_t wall_ms) {
  size_t b = bucket_index(h->c.fam, v);

  observe_at(h, b, v);
  if (trace_id == NULL || !ex_hex(trace_id, 32) || (span_id != NULL && !ex_hex(span_id, 16)))
    return;
  keep_exemplar(h, b, v, trace_id, span_id, wall_ms);
}

void msvc__metrics_histogram_observe_exemplar_ok(msvc_metrics_histogram_t *h, double v,
                                                 const char *trace_id, const char *span_id,
                                                 uint64_t wall_ms) {
  size_t b = bucket_index(h->c.fam, v);

  observe_at(h, b, v);
  keep_exemplar(h, b, v, trace_id, span_id, wall_ms);
}

bool msvc__child_exemplar(const msvc__child_t *c, size_t b, msvc__exemplar_t *out) {
  msvc__child_t *m = (msvc__child_t *)c;
  msvc__exemplar_t *ex = atomic_load_explicit(&m->exemplars, memory_order_acquire);

  if (ex == NULL)
    return false;
  ex_lock(m);
  *out = ex[b];
  ex_unlock(m);
  return out->set;
}

void msvc__child_hist_read(const msvc__child_t *c, uint64_t *counts, double *sum) {
  const msvc__family_t *f = c->fam;
  unsigned i;
  size_t b;

  *sum = 0;
  for (b = 0; b <= f->bound_count; b++)
    counts[b] = 0;
  for (i = 0; i < f->ncells; i++) {
    msvc__hist_cell_t *cell = cell_of(c, i);
    *sum += atomic_load_explicit(&cell->sum, memory_order_relaxed);
    for (b = 0; b <= f->bound_count; b++)
      counts[b] += atomic_load_explicit(&cell->counts[b], memory_order_relaxed);
  }
}

uint64_t msvc_metrics_histogram_count(const msvc_metrics_histogram_t *h) {
  uint64_t counts[MSVC_METRICS_MAX_BUCKETS + 1], total = 0;
  double sum;
  size_t b;

  msvc__child_hist_read(&h->c, counts, &sum);
  for (b = 0; b <= h->c.fam->bound_count; b++)
    total += counts[b];
  return total;
}

double msvc_metrics_histogram_sum(const msvc_metrics_histogram_t *h) {
  uint64_t counts[MSVC_METRICS_MAX_BUCKETS + 1];
  double sum;

  msvc__child_hist_read(&h->c, counts, &sum);
  return sum;
}

int msvc_metrics_buckets_linear(double start, double width, size_t count, double *out) {
  size_t i;

  if (out == NULL || count == 0 || count > MSVC_METRICS_MAX_BUCKETS || !isfinite(start) ||
      !isfinite(width) || !(width > 0) || !isfinite(start + width * (double)(count - 1)))
    return MSVC_EINVAL;
  for (i = 0; i < count; i++)
    out[i] = start + width * (double)i;
  return MSVC_OK;
}

int msvc_metrics_buckets_exponential(double start, double factor, size_t count,
                                     double *out) {
  size_t i;
  double v = start;

  if (out == NULL || count == 0 || count > MSVC_METRICS_MAX_BUCKETS || !isfinite(start) ||
      !(start > 0) || !isfinite(factor) || !(factor > 1))
    return MSVC_EINVAL;
  for (i = 1; i < count; i++) {
    v *= factor;
    if (!isfinite(v))
      return MSVC_EINVAL;
  }
  v = start;
  for (i = 0; i < count; i++) {
    out[i] = v;
    v *= factor;
  }
  return MSVC_OK;
}
