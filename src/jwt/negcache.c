/*
 * The refused-token cache: a bounded LRU map from a token to the code and
 * detail it was refused with. A forged ES256 token costs a P-256 signature
 * check (about a millisecond); sent again and again, it would cost that
 * every time. Remembering the verdict makes a repeat as cheap as a lookup.
 *
 * Entries hold the whole token, so a hash collision can never refuse
 * another token; they are bounded both in number and in bytes, so that
 * large tokens cannot make the cache grow beyond what its size promises.
 * Each entry carries the key set generation it was decided under: a key
 * set change (a new key could make a "bad signature" good) makes every
 * older entry a miss, dropped on sight.
 */
#include "jwt/jwt-internal.h"

#include <pthread.h>
#include <stdio.h>

/* Average bytes of token per entry allowed before the LRU ones go. */
#define JWT_NEG_BYTES_PER_ENTRY 1024

typedef struct neg_entry_s {
  msvc__queue_t lru; /* most recently used at the head */
  struct neg_entry_s *next_in_bucket;
  uint64_t hash;
  uint64_t gen;
  int code;
  size_t len;
  char msg[JWT_NEG_MSG_MAX];
  char token[];
} neg_entry_t;

struct jwt_negcache_s {
  pthread_mutex_t mu;
  size_t cap, count, nbuckets, bytes, max_bytes;
  uint64_t seed;
  neg_entry_t **buckets;
  msvc__queue_t lru;
  uint64_t hits, misses, evictions, dropped;
};

int msvc__jwt_neg_new(size_t cap, jwt_negcache_t **out) {
  jwt_negcache_t *c = msvc__calloc(1, sizeof(*c));

  if (c == NULL)
    return MSVC_ENOMEM;
  c->cap = cap;
  c->max_bytes = cap * JWT_NEG_BYTES_PER_ENTRY;
  c->nbuckets = 16;
  while (c->nbuckets < cap * 2)
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

void msvc__jwt_neg_free(jwt_negcache_t *c) {
  if (c == NULL)
    return;
  while (!msvc__queue_empty(&c->lru)) {
    msvc__queue_t *q = c->lru.next;

    msvc__queue_remove(q);
    msvc__free(msvc__container_of(q, neg_entry_t, lru));
  }
  pthread_mutex_destroy(&c->mu);
  msvc__free(c->buckets);
  msvc__free(c);
}

static neg_entry_t **find(jwt_negcache_t *c, uint64_t h, const char *token, size_t len) {
  neg_entry_t **link = &c->buckets[h & (c->nbuckets - 1)];

  for (; *link != NULL; link = &(*link)->next_in_bucket) {
    neg_entry_t *e = *link;

    if (e->hash == h && e->len == len && memcmp(e->token, token, len) == 0)
      return link;
  }
  return NULL;
}

/* Unlinks the entry *link points at; the caller frees it. */
static neg_entry_t *unlink_entry(jwt_negcache_t *c, neg_entry_t **link) {
  neg_entry_t *e = *link;

  *link = e->next_in_bucket;
  msvc__queue_remove(&e->lru);
  c->count--;
  c->bytes -= e->len;
  return e;
}

int msvc__jwt_neg_get(jwt_negcache_t *c, const char *token, size_t len, uint64_t gen,
                      char msg[JWT_NEG_MSG_MAX]) {
  uint64_t h = msvc__jwt_token_hash(c->seed, token, len);
  neg_entry_t **link, *stale = NULL;
  int code = MSVC_OK;

  pthread_mutex_lock(&c->mu);
  link = find(c, h, token, len);
  if (link != NULL && (*link)->gen != gen) {
    stale = unlink_entry(c, link);
    c->dropped++;
    link = NULL;
  }
  if (link != NULL) {
    neg_entry_t *e = *link;

    msvc__queue_remove(&e->lru);
    msvc__queue_insert_head(&c->lru, &e->lru);
    code = e->code;
    memcpy(msg, e->msg, JWT_NEG_MSG_MAX);
    c->hits++;
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  msvc__free(stale);
  return code;
}

void msvc__jwt_neg_put(jwt_negcache_t *c, const char *token, size_t len, uint64_t gen,
                       int code, const char *msg) {
  uint64_t h = msvc__jwt_token_hash(c->seed, token, len);
  neg_entry_t *e, **link;
  msvc__queue_t victims;

  if (len > c->max_bytes)
    return;
  e = msvc__malloc(sizeof(*e) + len);
  if (e == NULL)
    return; /* a cache that cannot grow is only slower */
  e->hash = h;
  e->gen = gen;
  e->code = code;
  e->len = len;
  snprintf(e->msg, sizeof(e->msg), "%s", msg);
  memcpy(e->token, token, len);
  msvc__queue_init(&victims);
  pthread_mutex_lock(&c->mu);
  if ((link = find(c, h, token, len)) != NULL) /* another thread was first, or stale */
    msvc__queue_insert_tail(&victims, &unlink_entry(c, link)->lru);
  while (c->count > 0 && (c->count >= c->cap || c->bytes + len > c->max_bytes)) {
    neg_entry_t *old = msvc__container_of(c->lru.prev, neg_entry_t, lru);

    msvc__queue_insert_tail(&victims, &unlink_entry(c, find(c, old->hash, old->token,
                                                            old->len))->lru);
    c->evictions++;
  }
  link = &c->buckets[h & (c->nbuckets - 1)];
  e->next_in_bucket = *link;
  *link = e;
  msvc__queue_insert_head(&c->lru, &e->lru);
  c->count++;
  c->bytes += len;
  pthread_mutex_unlock(&c->mu);
  while (!msvc__queue_empty(&victims)) {
    msvc__queue_t *q = victims.next;

    msvc__queue_remove(q);
    msvc__free(msvc__container_of(q, neg_entry_t, lru));
  }
}

void msvc__jwt_neg_stats(jwt_negcache_t *c, msvc_jwt_cache_stats_t *st) {
  pthread_mutex_lock(&c->mu);
  st->hits = c->hits;
  st->misses = c->misses;
  st->evictions = c->evictions;
  st->dropped = c->dropped;
  st->entries = c->count;
  pthread_mutex_unlock(&c->mu);
}
