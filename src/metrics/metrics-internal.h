/*
 * Internals of the metrics block, shared by its source files and tests.
 */
#ifndef MSVC_METRICS_INTERNAL_H
#define MSVC_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <msvc/metrics.h>

#include "msvc-internal.h"

#define MSVC__CACHE_LINE 64

/* ---- per-thread shards ---------------------------------------------------
 * Each thread that updates a sharded metric is given a slot number once. A
 * slot below msvc__metrics_slots() belongs to that thread alone, so it writes
 * its cell of every sharded metric with a relaxed load + store (no
 * read-modify-write, no cache line shared with another writer). Threads
 * that find every slot taken share one more cell, at index
 * msvc__metrics_slots(), and update it with atomic read-modify-writes. */
/* The calling thread's slot as one word: 0 before its first update, else
 * ((index + 1) << 1) | shared. */
unsigned msvc__metrics_slots(void);
unsigned msvc__metrics_slot_acquire(void);

extern _Thread_local unsigned msvc__tls_slot
#if defined(__GNUC__)
    __attribute__((tls_model("initial-exec")))
#endif
    ;

static inline unsigned msvc__metrics_slot(void) {
  unsigned w = msvc__tls_slot;

  if (MSVC__LIKELY(w != 0))
    return w;
  return msvc__metrics_slot_acquire();
}

/* ---- children --------------------------------------------------------- */
/* A counter cell: whole increments and fractional adds kept apart, so
 * integer counts stay exact past 2^53 and inc() needs no float maths. */
typedef struct msvc__counter_cell_s {
  _Atomic uint64_t n;
  _Atomic double f;
} msvc__counter_cell_t;

/* A histogram cell: counts[nbounds + 1] (the last is +Inf, not cumulative)
 * followed by the sum. */
typedef struct msvc__hist_cell_s {
  _Atomic double sum;
  _Atomic uint64_t counts[];
} msvc__hist_cell_t;

typedef struct msvc__family_s msvc__family_t;

/* The exemplar of one bucket (OpenMetrics), set = 0 until the first. */
typedef struct msvc__exemplar_s {
  char trace_id[33];
  char span_id[17];
  bool set;
  double value;
  uint64_t wall_ms;
} msvc__exemplar_t;

typedef struct msvc__child_s {
  /* Hot fields first: what an update reads sits in one cache line. */
  char *cells;                 /* ncells cells of stride bytes */
  size_t stride;               /* cell size when sharded, 0 when not */
  bool sharded;
  msvc__queue_t node;          /* family's list, creation order */
  struct msvc__child_s *hnext; /* hash chain */
  uint64_t hash;
  msvc__family_t *fam;
  void *cells_raw;             /* unaligned allocation of cells */
  /* Label values: NUL-separated raw values for matching, and the escaped
   * `a="x",b="y"` text for exposition. */
  char *values;
  size_t values_len;
  char *labels_text;
  size_t labels_len;
  _Atomic double gauge;        /* gauges only */
  /* Histograms with exemplars: bound_count + 1 slots, made on first use,
   * guarded by ex_lock (writers and the exposition copy a slot). */
  _Atomic(msvc__exemplar_t *) exemplars;
  atomic_flag ex_lock;
} msvc__child_t;

/* Copies bucket b's exemplar of c into out; false when there is none. */
bool msvc__child_exemplar(const msvc__child_t *c, size_t b, msvc__exemplar_t *out);

struct msvc_metrics_counter_s {
  msvc__child_t c;
};
struct msvc_metrics_gauge_s {
  msvc__child_t c;
};
struct msvc_metrics_histogram_s {
  msvc__child_t c;
};

struct msvc__family_s {
  msvc_metrics_registry_t *reg;
  msvc_metrics_type_t type;
  char *name;
  char *help;
  char *om_name; /* OpenMetrics family name (counter without _total) */
  char **label_names;
  size_t label_count;
  double *bounds;
  size_t bound_count;
  char **bound_text; /* formatted le values, "+Inf" last */
  size_t max_series;
  unsigned ncells; /* 1 when unsharded */
  size_t cell_size;
  pthread_mutex_t lock;
  msvc__queue_t children;
  size_t nchildren;
  msvc__child_t **table;
  size_t table_size; /* power of two */
  uint64_t hash_seed;
  msvc__child_t *solo; /* the child of a family without labels */
};

struct msvc_metrics_family_s {
  msvc__family_t f;
};

typedef struct msvc__hook_s {
  msvc_metrics_collect_fn fn;
  void *data;
} msvc__hook_t;

struct msvc_metrics_registry_s {
  pthread_mutex_t lock;
  msvc_metrics_family_t **families; /* sorted by name */
  size_t nfamilies;
  size_t cap;
  size_t max_series;
  msvc__hook_t *hooks;
  size_t nhooks;
  void *process; /* process collector state, freed with the registry */
  bool is_default;
  msvc_metrics_family_t *dropped;
};

/* ---- helpers shared between files ------------------------------------- */
/* Creates the one child of a family without labels. */
int msvc__child_create_solo(msvc__family_t *f);
/* Frees every child (registry teardown); the family lock is not taken. */
void msvc__family_free_children(msvc__family_t *f);

/* Valid UTF-8 without NUL bytes (NUL cannot appear in a C string anyway). */
bool msvc__utf8_valid(const char *s, size_t len);
/* Escaping of the text formats; help_quote also escapes '"' (OpenMetrics). */
void msvc__metrics_escape_label(msvc__buf_t *b, const char *s, size_t len);
void msvc__metrics_escape_help(msvc__buf_t *b, const char *s, bool quote);
/* Shortest text that reads back as the same double; +Inf, -Inf, NaN. */
size_t msvc__metrics_format_double(double v, char out[32]);
size_t msvc__metrics_format_u64(uint64_t v, char out[24]);

/* Sets a counter to an absolute value (process collector). */
void msvc__metrics_counter_set(msvc_metrics_counter_t *c, double v);
/* Reads a child's values; histogram counts[] gets bound_count + 1 entries. */
double msvc__child_counter_value(const msvc__child_t *c);
void msvc__child_hist_read(const msvc__child_t *c, uint64_t *counts, double *sum);

/* Process values, read from a /proc-like tree (tests pass a fake one). */
typedef struct msvc__process_stats_s {
  double cpu_seconds;
  double resident_bytes;
  double virtual_bytes;
  double open_fds;
  double max_fds;
  double start_time_seconds;
  unsigned have; /* bit per field above, in order */
} msvc__process_stats_t;

int msvc__process_read(const char *self_dir, const char *stat_path,
                       msvc__process_stats_t *out);
/* The process collector reading another tree than /proc/self, /proc/stat. */
int msvc__process_collector_register_at(msvc_metrics_registry_t *reg, const char *self_dir,
                                        const char *stat_path);

#endif /* MSVC_METRICS_INTERNAL_H */
