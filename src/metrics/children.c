/*
 * Children of a family: one per tuple of label values, found through a
 * chained hash table and listed in creation order for exposition.
 */
#include <stdlib.h>

#include "metrics/metrics-internal.h"

/* FNV-1a, started from a per-family random seed so that label values
 * chosen to collide cannot be prepared in advance. */
static uint64_t hash_values(uint64_t seed, const char *const *values, size_t count) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  size_t i;

  for (i = 0; i < count; i++) {
    const unsigned char *p = (const unsigned char *)values[i];
    for (; *p != '\0'; p++)
      h = (h ^ *p) * 1099511628211ULL;
    /* A separator no UTF-8 text contains, so ("ab","c") != ("a","bc"). */
    h = (h ^ 0xFF) * 1099511628211ULL;
  }
  return h;
}

static bool child_matches(const msvc__child_t *c, const char *const *values, size_t count) {
  const char *p = c->values;
  size_t i;

  for (i = 0; i < count; i++) {
    size_t n = strlen(values[i]);
    if ((size_t)(p - c->values) + n + 1 > c->values_len || memcmp(p, values[i], n) != 0 ||
        p[n] != '\0')
      return false;
    p += n + 1;
  }
  return (size_t)(p - c->values) == c->values_len;
}

static void child_free(msvc__child_t *c) {
  if (c == NULL)
    return;
  msvc__free(c->cells_raw);
  msvc__free(atomic_load(&c->exemplars));
  msvc__free(c->values);
  msvc__free(c->labels_text);
  msvc__free(c);
}

static int child_labels(msvc__child_t *c, const msvc__family_t *f,
                        const char *const *values, size_t count) {
  msvc__buf_t b;
  size_t i, total = 0;

  for (i = 0; i < count; i++)
    total += strlen(values[i]) + 1;
  c->values = msvc__malloc(total);
  if (c->values == NULL)
    return MSVC_ENOMEM;
  c->values_len = total;
  total = 0;
  msvc__buf_init(&b, 0);
  for (i = 0; i < count; i++) {
    size_t n = strlen(values[i]);
    memcpy(c->values + total, values[i], n + 1);
    total += n + 1;
    if (i > 0)
      msvc__buf_putc(&b, ',');
    msvc__buf_puts(&b, f->label_names[i]);
    msvc__buf_append(&b, "=\"", 2);
    msvc__metrics_escape_label(&b, values[i], n);
    msvc__buf_putc(&b, '"');
  }
  c->labels_text = msvc__buf_detach(&b, &c->labels_len);
  return c->labels_text == NULL ? MSVC_ENOMEM : MSVC_OK;
}

static int child_new(msvc__family_t *f, const char *const *values, size_t count,
                     uint64_t hash, msvc__child_t **out) {
  msvc__child_t *c = msvc__calloc(1, sizeof(*c));
  size_t bytes;

  if (c == NULL)
    return MSVC_ENOMEM;
  c->fam = f;
  c->hash = hash;
  msvc__queue_init(&c->node);
  atomic_init(&c->gauge, 0.0);
  if (child_labels(c, f, values, count) != MSVC_OK) {
    child_free(c);
    return MSVC_ENOMEM;
  }
  if (f->ncells > 0) {
    /* Cells start on a cache line so that no two shards share one. Zeroed
     * memory is a valid 0 for both the integer and the double atomics on
     * every platform we build for. */
    bytes = (size_t)f->ncells * f->cell_size;
    c->cells_raw = msvc__calloc(1, bytes + MSVC__CACHE_LINE);
    if (c->cells_raw == NULL) {
      child_free(c);
      return MSVC_ENOMEM;
    }
    c->cells = (char *)(((uintptr_t)c->cells_raw + MSVC__CACHE_LINE - 1) &
                        ~(uintptr_t)(MSVC__CACHE_LINE - 1));
    c->sharded = f->ncells > 1;
    c->stride = c->sharded ? f->cell_size : 0;
  }
  *out = c;
  return MSVC_OK;
}

static void table_grow(msvc__family_t *f) {
  size_t size = f->table_size * 2, i;
  msvc__child_t **t = msvc__calloc(size, sizeof(*t));

  /* A failed grow only makes chains longer; lookups stay correct. */
  if (t == NULL)
    return;
  for (i = 0; i < f->table_size; i++) {
    msvc__child_t *c = f->table[i], *next;
    for (; c != NULL; c = next) {
      next = c->hnext;
      c->hnext = t[c->hash & (size - 1)];
      t[c->hash & (size - 1)] = c;
    }
  }
  msvc__free(f->table);
  f->table = t;
  f->table_size = size;
}

static void table_insert(msvc__family_t *f, msvc__child_t *c) {
  msvc__child_t **slot = &f->table[c->hash & (f->table_size - 1)];

  c->hnext = *slot;
  *slot = c;
  msvc__queue_insert_tail(&f->children, &c->node);
  f->nchildren++;
  if (f->nchildren > f->table_size)
    table_grow(f);
}

static msvc__child_t *table_find(const msvc__family_t *f, const char *const *values,
                                 size_t count, uint64_t hash, msvc__child_t ***prev) {
  msvc__child_t **p = &f->table[hash & (f->table_size - 1)];

  for (; *p != NULL; p = &(*p)->hnext) {
    if ((*p)->hash == hash && child_matches(*p, values, count)) {
      if (prev != NULL)
        *prev = p;
      return *p;
    }
  }
  return NULL;
}

int msvc__child_create_solo(msvc__family_t *f) {
  msvc__child_t *c;
  int rc = child_new(f, NULL, 0, hash_values(f->hash_seed, NULL, 0), &c);

  if (rc != MSVC_OK)
    return rc;
  table_insert(f, c);
  f->solo = c;
  return MSVC_OK;
}

void msvc__family_free_children(msvc__family_t *f) {
  while (!msvc__queue_empty(&f->children)) {
    msvc__child_t *c = msvc__container_of(f->children.next, msvc__child_t, node);
    msvc__queue_remove(&c->node);
    child_free(c);
  }
  if (f->table != NULL)
    memset(f->table, 0, f->table_size * sizeof(*f->table));
  f->nchildren = 0;
  f->solo = NULL;
}

static void record_drop(msvc__family_t *f) {
  msvc_metrics_family_t *dropped = f->reg->dropped;
  const char *value = f->name;
  msvc_metrics_counter_t *c;

  if (dropped != NULL && &dropped->f != f &&
      msvc_metrics_counter_get(dropped, &value, 1, &c) == MSVC_OK)
    msvc_metrics_counter_inc(c);
}

static int check_values(const msvc__family_t *f, const char *const *values, size_t count) {
  size_t i;

  if (count != f->label_count)
    return MSVC_EMETRIC_LABELS;
  if (count > 0 && values == NULL)
    return MSVC_EINVAL;
  for (i = 0; i < count; i++)
    if (values[i] == NULL || !msvc__utf8_valid(values[i], strlen(values[i])))
      return MSVC_EINVAL;
  return MSVC_OK;
}

static int child_get(msvc_metrics_family_t *fam, msvc_metrics_type_t type,
                     const char *const *values, size_t count, msvc__child_t **out) {
  msvc__family_t *f;
  msvc__child_t *c;
  uint64_t hash;
  int rc;

  if (fam == NULL || out == NULL)
    return MSVC_EINVAL;
  f = &fam->f;
  if (f->type != type)
    return MSVC_EMETRIC_MISMATCH;
  if ((rc = check_values(f, values, count)) != MSVC_OK)
    return rc;
  if (count == 0) {
    *out = f->solo;
    return MSVC_OK;
  }
  hash = hash_values(f->hash_seed, values, count);
  pthread_mutex_lock(&f->lock);
  c = table_find(f, values, count, hash, NULL);
  if (c == NULL) {
    if (f->nchildren >= f->max_series) {
      pthread_mutex_unlock(&f->lock);
      record_drop(f);
      return MSVC_EMETRIC_CARDINALITY;
    }
    rc = child_new(f, values, count, hash, &c);
    if (rc == MSVC_OK)
      table_insert(f, c);
  }
  pthread_mutex_unlock(&f->lock);
  *out = c;
  return rc;
}

int msvc_metrics_counter_get(msvc_metrics_family_t *fam, const char *const *values,
                             size_t count, msvc_metrics_counter_t **out) {
  msvc__child_t *c = NULL;
  int rc = child_get(fam, MSVC_METRICS_COUNTER, values, count, &c);

  if (out != NULL)
    *out = rc == MSVC_OK ? msvc__container_of(c, msvc_metrics_counter_t, c) : NULL;
  return rc;
}

int msvc_metrics_gauge_get(msvc_metrics_family_t *fam, const char *const *values,
                           size_t count, msvc_metrics_gauge_t **out) {
  msvc__child_t *c = NULL;
  int rc = child_get(fam, MSVC_METRICS_GAUGE, values, count, &c);

  if (out != NULL)
    *out = rc == MSVC_OK ? msvc__container_of(c, msvc_metrics_gauge_t, c) : NULL;
  return rc;
}

int msvc_metrics_histogram_get(msvc_metrics_family_t *fam, const char *const *values,
                               size_t count, msvc_metrics_histogram_t **out) {
  msvc__child_t *c = NULL;
  int rc = child_get(fam, MSVC_METRICS_HISTOGRAM, values, count, &c);

  if (out != NULL)
    *out = rc == MSVC_OK ? msvc__container_of(c, msvc_metrics_histogram_t, c) : NULL;
  return rc;
}

int msvc_metrics_family_remove(msvc_metrics_family_t *fam, const char *const *values,
                               size_t count) {
  msvc__family_t *f;
  msvc__child_t *c, **prev = NULL;
  int rc;

  if (fam == NULL || fam->f.label_count == 0)
    return MSVC_EINVAL;
  f = &fam->f;
  if ((rc = check_values(f, values, count)) != MSVC_OK)
    return rc;
  pthread_mutex_lock(&f->lock);
  c = table_find(f, values, count, hash_values(f->hash_seed, values, count), &prev);
  if (c != NULL) {
    *prev = c->hnext;
    msvc__queue_remove(&c->node);
    f->nchildren--;
  }
  pthread_mutex_unlock(&f->lock);
  if (c == NULL)
    return MSVC_ENOTFOUND;
  child_free(c);
  return MSVC_OK;
}

int msvc_metrics_family_clear(msvc_metrics_family_t *fam) {
  msvc__queue_t gone;

  if (fam == NULL || fam->f.label_count == 0)
    return MSVC_EINVAL;
  /* Detach the whole list under the lock, free it outside. */
  msvc__queue_init(&gone);
  pthread_mutex_lock(&fam->f.lock);
  if (!msvc__queue_empty(&fam->f.children)) {
    gone.next = fam->f.children.next;
    gone.prev = fam->f.children.prev;
    gone.next->prev = &gone;
    gone.prev->next = &gone;
    msvc__queue_init(&fam->f.children);
  }
  memset(fam->f.table, 0, fam->f.table_size * sizeof(*fam->f.table));
  fam->f.nchildren = 0;
  pthread_mutex_unlock(&fam->f.lock);
  while (!msvc__queue_empty(&gone)) {
    msvc__child_t *c = msvc__container_of(gone.next, msvc__child_t, node);
    msvc__queue_remove(&c->node);
    child_free(c);
  }
  return MSVC_OK;
}

size_t msvc_metrics_family_size(msvc_metrics_family_t *fam) {
  size_t n;

  pthread_mutex_lock(&fam->f.lock);
  n = fam->f.nchildren;
  pthread_mutex_unlock(&fam->f.lock);
  return n;
}
