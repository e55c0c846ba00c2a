/*
 * The verified-token cache: a bounded LRU map from a token to its verified
 * claims. The hash only picks a bucket; equality is decided on the whole
 * token, so a hash collision (or a crafted one) can never return another
 * token's claims, and the hash need not be cryptographic.
 */
#include "jwt/jwt-internal.h"

#include <pthread.h>

typedef struct cache_entry_s {
  msvc__queue_t lru; /* most recently used at the head */
  struct cache_entry_s *next_in_bucket;
  uint64_t hash;
  size_t len;
  msvc_jwt_claims_t *claims;
  char token[];
} cache_entry_t;

struct jwt_cache_s {
  pthread_mutex_t mu;
  size_t cap, count, nbuckets;
  uint64_t seed;
  cache_entry_t **buckets;
  msvc__queue_t lru;
  uint64_t hits, misses, evictions, dropped;
};

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

/* Eight bytes per step: a 500-byte token hashes in a few tens of ns. The
 * per-cache random seed keeps bucket placement unpredictable to a client. */
uint64_t msvc__jwt_token_hash(uint64_t seed, const char *p, size_t len) {
  uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL), w;

  while (len >= 8) {
    memcpy(&w, p, 8);
    h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    p += 8;
    len -= 8;
  }
  w = 0;
  memcpy(&w, p, len);
  h = (h ^ mix(w ^ len)) * 0x9e3779b97f4a7c15ULL;
  return mix(h);
}

int msvc__jwt_cache_new(size_t cap, jwt_cache_t **out) {
  jwt_cache_t *c = msvc__calloc(1, sizeof(*c));

  if (c == NULL)
    return MSVC_ENOMEM;
  c->cap = cap;
  c->nbuckets = 16;
  while (c->nbuckets < cap * 2) /* load factor at most 1/2 */
    c->nbuckets <<= 1;
  c->buckets = msvc__calloc(c->nbuckets, sizeof(*c->buckets));
  if (c->buckets == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
    msvc__free(c->buckets);
    msvc__free(c);
    return MSVC_ENOMEM;
  }
  c->seed = msvc__rand64();
  msvc__queue_init(&c->lru);
  *out = c;
  return MSVC_OK;
}

static void entry_free(cache_entry_t *e) {
  msvc_jwt_claims_free(e->claims);
  msvc__free(e);
}

void msvc__jwt_cache_free(jwt_cache_t *c) {
  msvc__queue_t *q;

  if (c == NULL)
    return;
  while (!msvc__queue_empty(&c->lru)) {
    q = c->lru.next;
    msvc__queue_remove(q);
    entry_free(msvc__container_of(q, cache_entry_t, lru));
  }
  pthread_mutex_destroy(&c->mu);
  msvc__free(c->buckets);
  msvc__free(c);
}

/* Finds the entry and the link that points at it (for unlinking). */
static cache_entry_t **find(jwt_cache_t *c, uint64_t h, const char *token, size_t len) {
  cache_entry_t **link = &c->buckets[h & (c->nbuckets - 1)];

  for (; *link != NULL; link = &(*link)->next_in_bucket) {
    cache_entry_t *e = *link;

    if (e->hash == h && e->len == len && memcmp(e->token, token, len) == 0)
      return link;
  }
  return NULL;
}

static void unlink_entry(jwt_cache_t *c, cache_entry_t **link) {
  cache_entry_t *e = *link;

  *link = e->next_in_bucket;
  msvc__queue_remove(&e->lru);
  c->count--;
}

msvc_jwt_claims_t *msvc__jwt_cache_get(jwt_cache_t *c, const char *token, size_t len) {
  uint64_t h = msvc__jwt_token_hash(c->seed, token, len);
  msvc_jwt_claims_t *claims = NULL;
  cache_entry_t **link;

  pthread_mutex_lock(&c->mu);
  link = find(c, h, token, len);
  if (link != NULL) {
    msvc__queue_remove(&(*link)->lru);
    msvc__queue_insert_head(&c->lru, &(*link)->lru);
    claims = msvc__jwt_claims_ref((*link)->claims);
    c->hits++;
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  return claims;
}

void msvc__jwt_cache_put(jwt_cache_t *c, const char *token, size_t len,
                         msvc_jwt_claims_t *claims) {
  uint64_t h = msvc__jwt_token_hash(c->seed, token, len);
  cache_entry_t *e = msvc__malloc(sizeof(*e) + len), *victim = NULL;
  cache_entry_t **link;

  if (e == NULL)
    return; /* a cache that cannot grow is only slower */
  e->hash = h;
  e->len = len;
  memcpy(e->token, token, len);
  e->claims = msvc__jwt_claims_ref(claims);
  pthread_mutex_lock(&c->mu);
  if (find(c, h, token, len) != NULL) { /* another thread was first */
    pthread_mutex_unlock(&c->mu);
    entry_free(e);
    return;
  }
  if (c->count >= c->cap) {
    cache_entry_t *old = msvc__container_of(c->lru.prev, cache_entry_t, lru);

    unlink_entry(c, find(c, old->hash, old->token, old->len));
    victim = old;
    c->evictions++;
  }
  link = &c->buckets[h & (c->nbuckets - 1)];
  e->next_in_bucket = *link;
  *link = e;
  msvc__queue_insert_head(&c->lru, &e->lru);
  c->count++;
  pthread_mutex_unlock(&c->mu);
  if (victim != NULL)
    entry_free(victim);
}

void msvc__jwt_cache_drop(jwt_cache_t *c, const char *token, size_t len, bool key_gone) {
  uint64_t h = msvc__jwt_token_hash(c->seed, token, len);
  cache_entry_t **link, *e = NULL;

  pthread_mutex_lock(&c->mu);
  link = find(c, h, token, len);
  if (link != NULL) {
    e = *link;
    unlink_entry(c, link);
    if (key_gone)
      c->dropped++;
  }
  pthread_mutex_unlock(&c->mu);
  if (e != NULL)
    entry_free(e);
}

void msvc__jwt_cache_stats(jwt_cache_t *c, msvc_jwt_cache_stats_t *st) {
  pthread_mutex_lock(&c->mu);
  st->hits = c->hits;
  st->misses = c->misses;
  st->evictions = c->evictions;
  st->dropped = c->dropped;
  st->entries = c->count;
  pthread_mutex_unlock(&c->mu);
}
