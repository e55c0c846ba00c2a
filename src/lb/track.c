/*
 * Ticket tracking: the set of serial numbers of outstanding tickets, so that
 * a second return of the same ticket is told apart from a legitimate return
 * of another ticket of the same endpoint. Open addressing with linear probing
 * and backward-shift deletion (no tombstones, so long runs stay fast).
 */
#include "lb/lb-internal.h"

#define TRACK_MIN_CAP 64

static size_t slot_of(uint64_t key, size_t cap) {
  /* serials are sequential: mix them so neighbours spread out */
  key ^= key >> 33;
  key *= UINT64_C(0xff51afd7ed558ccd);
  key ^= key >> 33;
  return (size_t)key & (cap - 1);
}

int msvc__lb_track_init(lb_track_t *t) {
  memset(t, 0, sizeof(*t));
  if (pthread_mutex_init(&t->mu, NULL) != 0)
    return MSVC_ENOMEM;
  return MSVC_OK;
}

void msvc__lb_track_destroy(lb_track_t *t) {
  msvc__free(t->keys);
  t->keys = NULL;
  pthread_mutex_destroy(&t->mu);
}

static void insert_key(uint64_t *keys, size_t cap, uint64_t key) {
  size_t i = slot_of(key, cap);

  while (keys[i] != 0)
    i = (i + 1) & (cap - 1);
  keys[i] = key;
}

static int grow(lb_track_t *t) {
  size_t cap = t->cap ? t->cap * 2 : TRACK_MIN_CAP, i;
  uint64_t *keys = msvc__calloc(cap, sizeof(*keys));

  if (keys == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < t->cap; i++)
    if (t->keys[i] != 0)
      insert_key(keys, cap, t->keys[i]);
  msvc__free(t->keys);
  t->keys = keys;
  t->cap = cap;
  return MSVC_OK;
}

int msvc__lb_track_add(lb_track_t *t, uint64_t serial) {
  int rc = MSVC_OK;

  pthread_mutex_lock(&t->mu);
  if ((t->count + 1) * 2 > t->cap)
    rc = grow(t);
  if (rc == MSVC_OK) {
    insert_key(t->keys, t->cap, serial);
    t->count++;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* Closes the gap at hole by moving back later entries of the same run. */
static void delete_at(lb_track_t *t, size_t hole) {
  size_t mask = t->cap - 1, j = hole;

  for (;;) {
    size_t home;

    j = (j + 1) & mask;
    if (t->keys[j] == 0)
      break;
    home = slot_of(t->keys[j], t->cap);
    /* keys[j] may move to hole when hole lies cyclically in [home, j) */
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      t->keys[hole] = t->keys[j];
      hole = j;
    }
  }
  t->keys[hole] = 0;
}

bool msvc__lb_track_remove(lb_track_t *t, uint64_t serial) {
  bool found = false;

  pthread_mutex_lock(&t->mu);
  if (t->cap != 0 && serial != 0) {
    size_t i = slot_of(serial, t->cap);

    while (t->keys[i] != 0) {
      if (t->keys[i] == serial) {
        delete_at(t, i);
        t->count--;
        found = true;
        break;
      }
      i = (i + 1) & (t->cap - 1);
    }
  }
  pthread_mutex_unlock(&t->mu);
  return found;
}

size_t msvc__lb_track_count(lb_track_t *t) {
  size_t n;

  pthread_mutex_lock(&t->mu);
  n = t->count;
  pthread_mutex_unlock(&t->mu);
  return n;
}
