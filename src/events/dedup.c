/*
 * The idempotent-consumer window: the last N event ids marked done, each for
 * at most a TTL. A ring keeps them in marking order (the oldest is the one
 * to forget), a chained hash table over the ring's slots finds them. Pure
 * code behind one mutex; time comes from the caller.
 */
#include <string.h>

#include <uv.h>

#include "events/events-internal.h"

#define NIL SIZE_MAX

typedef struct slot_s {
  char *id; /* NULL: free */
  uint64_t at_ms;
  size_t next; /* next slot in the same bucket */
  size_t bucket;
} slot_t;

struct msvc_events_dedup_s {
  uv_mutex_t lock;
  size_t capacity;
  uint64_t ttl_ms;
  slot_t *slots;
  size_t head;  /* oldest */
  size_t count;
  size_t *buckets;
  size_t nbuckets; /* power of two */
};

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */

  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

int msvc_events_dedup_new(size_t capacity, uint64_t ttl_ms, msvc_events_dedup_t **out) {
  msvc_events_dedup_t *d;
  size_t nb = 16;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  if (capacity < 1 || capacity > 10000000)
    return MSVC_EINVAL;
  while (nb < capacity * 2)
    nb *= 2;
  d = msvc__calloc(1, sizeof(*d));
  if (d == NULL)
    return MSVC_ENOMEM;
  d->slots = msvc__calloc(capacity, sizeof(*d->slots));
  d->buckets = msvc__malloc(nb * sizeof(*d->buckets));
  if (d->slots == NULL || d->buckets == NULL || uv_mutex_init(&d->lock) != 0) {
    msvc__free(d->slots);
    msvc__free(d->buckets);
    msvc__free(d);
    return MSVC_ENOMEM;
  }
  for (size_t i = 0; i < nb; i++)
    d->buckets[i] = NIL;
  d->nbuckets = nb;
  d->capacity = capacity;
  d->ttl_ms = ttl_ms;
  *out = d;
  return MSVC_OK;
}

void msvc_events_dedup_free(msvc_events_dedup_t *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->capacity; i++)
    msvc__free(d->slots[i].id);
  msvc__free(d->slots);
  msvc__free(d->buckets);
  uv_mutex_destroy(&d->lock);
  msvc__free(d);
}

/* Forget the oldest id. */
static void drop_oldest(msvc_events_dedup_t *d) {
  slot_t *s = &d->slots[d->head];
  size_t *link = &d->buckets[s->bucket];

  while (*link != d->head)
    link = &d->slots[*link].next;
  *link = s->next;
  msvc__free(s->id);
  s->id = NULL;
  d->head = (d->head + 1) % d->capacity;
  d->count--;
}

static void expire(msvc_events_dedup_t *d, uint64_t now_ms) {
  while (d->ttl_ms != 0 && d->count > 0 && d->slots[d->head].at_ms + d->ttl_ms <= now_ms)
    drop_oldest(d);
}

static slot_t *find(msvc_events_dedup_t *d, const char *id, size_t bucket) {
  for (size_t i = d->buckets[bucket]; i != NIL; i = d->slots[i].next)
    if (strcmp(d->slots[i].id, id) == 0)
      return &d->slots[i];
  return NULL;
}

bool msvc_events_dedup_seen(msvc_events_dedup_t *d, const char *id, uint64_t now_ms) {
  bool seen;

  if (d == NULL || id == NULL)
    return false;
  uv_mutex_lock(&d->lock);
  expire(d, now_ms);
  seen = find(d, id, hash(id) & (d->nbuckets - 1)) != NULL;
  uv_mutex_unlock(&d->lock);
  return seen;
}

int msvc_events_dedup_mark(msvc_events_dedup_t *d, const char *id, uint64_t now_ms) {
  size_t bucket, i;
  char *copy;

  if (d == NULL || id == NULL || *id == '\0')
    return MSVC_EINVAL;
  bucket = hash(id) & (d->nbuckets - 1);
  uv_mutex_lock(&d->lock);
  expire(d, now_ms);
  if (find(d, id, bucket) != NULL) {
    uv_mutex_unlock(&d->lock);
    return MSVC_EEXIST;
  }
  copy = msvc__strdup(id);
  if (copy == NULL) {
    uv_mutex_unlock(&d->lock);
    return MSVC_ENOMEM;
  }
  if (d->count == d->capacity)
    drop_oldest(d);
  i = (d->head + d->count) % d->capacity;
  d->slots[i].id = copy;
  d->slots[i].at_ms = now_ms;
  d->slots[i].bucket = bucket;
  d->slots[i].next = d->buckets[bucket];
  d->buckets[bucket] = i;
  d->count++;
  uv_mutex_unlock(&d->lock);
  return MSVC_OK;
}

size_t msvc_events_dedup_size(msvc_events_dedup_t *d) {
  size_t n;

  if (d == NULL)
    return 0;
  uv_mutex_lock(&d->lock);
  n = d->count;
  uv_mutex_unlock(&d->lock);
  return n;
}
