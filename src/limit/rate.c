/*
 * Token buckets keyed by a string, in a bounded, lock-striped table.
 *
 * Arithmetic: with a share of n instances a token is period_ms * n units
 * and a bucket gains `rate` units per millisecond, so it gains rate / n
 * tokens per period; its capacity is burst * period_ms units (burst / n
 * tokens), raised to one token when that is less. Everything is an
 * integer: a bucket checked a million times over a day is exactly where
 * the formula says it is. Buckets store units, so changing n keeps each
 * bucket's fill ratio without touching it.
 *
 * Memory: each shard owns a fixed array of entries (one cache line each)
 * and a chained hash index over them (16 bytes per entry, kept apart from
 * the buckets); nothing is allocated after creation.
 * A new key in a full shard takes the place of another, chosen by a clock
 * hand (second chance: a recently used entry has its mark cleared and is
 * passed over once), preferably one whose bucket has refilled, since
 * nothing is lost by forgetting it. A hit only sets the mark when it is
 * clear, so the steady state writes nothing but the bucket itself. Keys
 * hash with a per-limiter random seed, so a client cannot aim its keys at
 * one chain.
 *
 * Concurrency: a check of a key already held takes no shard-wide lock and
 * writes nothing shared but its own entry. It looks the key up without a
 * lock, locks the entry (a byte in the entry's own cache line), and checks
 * that the shard's sequence number has not moved since before the lookup;
 * the writers that change a shard's chains or reuse its entries (a new key,
 * an eviction) hold the shard lock and keep the sequence odd while they
 * work, locking every entry they touch. Threads checking different keys
 * therefore share no written cache line; the counters of allowed and
 * refused checks are kept per thread slot. A lookup that raced with a
 * writer, or a key not held, takes the locked path.
 */
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/limit.h>

#include "msvc-internal.h"

#define NIL UINT32_MAX
#define EVICT_SCAN 8u
#define MAX_SHARE 65536u

/* A key's bucket: written by every check of the key. */
typedef struct entry_s {
  uint64_t units;
  uint64_t last_ms;
  uint8_t ref;        /* used since the clock hand last passed */
  _Atomic uint8_t lk; /* the entry's lock */
  char key[MSVC_LIMIT_KEY_MAX];
  char pad[14];
} entry_t;

typedef char entry_is_one_line[sizeof(entry_t) == 64 ? 1 : -1];

/* What a lookup compares, apart from the bucket: a chain walks these and
 * reads an entry only when the whole hash matches. The buckets of other
 * keys in the chain, which other threads keep writing, stay out of the
 * walk; these records change only when a key comes or goes. */
typedef struct ix_s {
  uint64_t hash;
  uint32_t chain; /* next entry of the same hash bucket */
  uint8_t klen;
  uint8_t digest; /* key holds a digest of a longer key */
} ix_t;

typedef struct shard_s {
  atomic_flag lock;
  _Atomic uint32_t seq; /* odd while the chains or entries change */
  uint32_t used;
  uint32_t hand; /* the clock hand */
  entry_t *e;
  ix_t *ix; /* one per entry */
  uint32_t *heads;
  uint64_t evicted;
  uint64_t lossy;
  char pad[64];
} shard_t;

/* Counters of the checks a thread made, one cache line per slot. */
#define SLOTS 16
typedef struct slot_s {
  _Atomic uint64_t allowed;
  _Atomic uint64_t refused;
  char pad[48];
} slot_t;

static _Atomic uint32_t next_slot;
static _Thread_local uint32_t my_slot = UINT32_MAX;

struct msvc_limit_rate_s {
  uint64_t seed[2];
  uint64_t rate;
  uint64_t period;
  uint64_t burst;
  uint32_t per_shard;
  uint32_t bucket_mask;
  uint32_t shard_bits;
  uint32_t nshards;
  _Atomic uint32_t share;
  shard_t *shards;
  void *entries_mem;
  entry_t *entries; /* entries_mem aligned to a cache line */
  ix_t *index;
  uint32_t *heads;
  void *slots_mem;
  slot_t *slots; /* slots_mem aligned to a cache line */
};

static inline void lock(shard_t *s) {
  unsigned spins = 0;

  while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire)) {
    msvc__cpu_relax();
    if (++spins > 64) {
      spins = 0;
      sched_yield();
    }
  }
}

static inline void unlock(shard_t *s) {
  atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

static inline void elock(entry_t *e) {
  unsigned spins = 0;

  while (atomic_exchange_explicit(&e->lk, 1, memory_order_acquire) != 0) {
    msvc__cpu_relax();
    if (++spins > 64) {
      spins = 0;
      sched_yield();
    }
  }
}

static inline void eunlock(entry_t *e) {
  atomic_store_explicit(&e->lk, 0, memory_order_release);
}

/* A writer of a shard's structure: shard lock held, sequence odd. */
static inline void write_begin(shard_t *s) {
  lock(s);
  atomic_fetch_add_explicit(&s->seq, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}

static inline void write_end(shard_t *s) {
  atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
  unlock(s);
}

static inline slot_t *slot_of(msvc_limit_rate_t *rl) {
  if (my_slot == UINT32_MAX)
    my_slot = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % SLOTS;
  return &rl->slots[my_slot];
}

static inline uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  return x ^ (x >> 32);
}

static uint64_t hash_bytes(uint64_t seed, const unsigned char *p, size_t len) {
  uint64_t h = seed ^ ((uint64_t)len * 0x9e3779b97f4a7c15ull), w;

  for (; len >= 8; p += 8, len -= 8) {
    memcpy(&w, p, 8);
    h = mix(h ^ w) + 0x632be59bd9b4e019ull;
  }
  w = 0;
  memcpy(&w, p, len);
  return mix(h ^ w ^ ((uint64_t)len << 56));
}

void msvc_limit_rate_opts_init(msvc_limit_rate_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->rate = 10;
  opts->period_ms = 1000;
  opts->burst = 20;
  opts->max_keys = 65536;
}

static bool opts_valid(const msvc_limit_rate_opts_t *o) {
  return o->size >= sizeof(*o) && o->rate >= 1 && o->rate <= 1000000000u &&
         o->period_ms >= 1 && o->period_ms <= 86400000u && o->burst >= 1 &&
         o->burst <= 1000000000u && o->max_keys >= 16 && o->max_keys <= (1u << 26) &&
         o->shards <= 1024 && (o->shards & (o->shards - 1)) == 0;
}

static uint32_t pow2_at_least(uint32_t n) {
  uint32_t p = 1;

  while (p < n) p <<= 1;
  return p;
}

int msvc_limit_rate_new(const msvc_limit_rate_opts_t *opts, msvc_limit_rate_t **out) {
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl;
  uint32_t i, nb;

  if (out == NULL) return MSVC_EINVAL;
  *out = NULL;
  if (opts == NULL)
    msvc_limit_rate_opts_init(&o);
  else if (opts->size < sizeof(o))
    return MSVC_EINVAL;
  else
    o = *opts;
  if (!opts_valid(&o)) return MSVC_EINVAL;
  if (o.shards == 0) {
    o.shards = 64;
    while (o.shards > 1 && o.max_keys / o.shards < 256) o.shards >>= 1;
  }
  rl = msvc__calloc(1, sizeof(*rl));
  if (rl == NULL) return MSVC_ENOMEM;
  rl->seed[0] = msvc__rand64();
  rl->seed[1] = msvc__rand64() | 1;
  rl->rate = o.rate;
  rl->period = o.period_ms;
  rl->burst = o.burst;
  rl->nshards = o.shards;
  while ((1u << rl->shard_bits) < o.shards) rl->shard_bits++;
  rl->per_shard = (o.max_keys + o.shards - 1) / o.shards;
  nb = pow2_at_least(rl->per_shard);
  rl->bucket_mask = nb - 1;
  atomic_init(&rl->share, 1);
  rl->shards = msvc__calloc(o.shards, sizeof(shard_t));
  rl->entries_mem = msvc__calloc((size_t)o.shards * rl->per_shard + 1, sizeof(entry_t));
  rl->entries = (entry_t *)(((uintptr_t)rl->entries_mem + 63) & ~(uintptr_t)63);
  rl->index = msvc__calloc((size_t)o.shards * rl->per_shard, sizeof(ix_t));
  rl->heads = msvc__malloc((size_t)o.shards * nb * sizeof(uint32_t));
  rl->slots_mem = msvc__calloc(SLOTS + 1, sizeof(slot_t));
  rl->slots = (slot_t *)(((uintptr_t)rl->slots_mem + 63) & ~(uintptr_t)63);
  if (rl->shards == NULL || rl->entries_mem == NULL || rl->index == NULL || rl->heads == NULL ||
      rl->slots_mem == NULL) {
    msvc_limit_rate_free(rl);
    return MSVC_ENOMEM;
  }
  memset(rl->heads, 0xff, (size_t)o.shards * nb * sizeof(uint32_t));
  for (i = 0; i < o.shards; i++) {
    shard_t *s = &rl->shards[i];

    atomic_flag_clear(&s->lock);
    s->e = rl->entries + (size_t)i * rl->per_shard;
    s->ix = rl->index + (size_t)i * rl->per_shard;
    s->heads = rl->heads + (size_t)i * nb;
  }
  *out = rl;
  return MSVC_OK;
}

void msvc_limit_rate_free(msvc_limit_rate_t *rl) {
  if (rl == NULL) return;
  msvc__free(rl->shards);
  msvc__free(rl->entries_mem);
  msvc__free(rl->index);
  msvc__free(rl->heads);
  msvc__free(rl->slots_mem);
  msvc__free(rl);
}

/* ---- hash chains (shard locked) ----------------------------------------------- */

static void chain_remove(msvc_limit_rate_t *rl, shard_t *s, uint32_t i) {
  uint32_t *p = &s->heads[s->ix[i].hash & rl->bucket_mask];

  while (*p != NIL && *p != i) p = &s->ix[*p].chain;
  if (*p == i) *p = s->ix[i].chain;
}

/* ---- arithmetic ------------------------------------------------------------------- */

static inline uint64_t capacity(const msvc_limit_rate_t *rl, uint64_t token) {
  uint64_t cap = rl->burst * rl->period;

  return cap < token ? token : cap;
}

/* Brings a bucket up to now_ms. */
static inline void refill(const msvc_limit_rate_t *rl, entry_t *e, uint64_t cap,
                          uint64_t now_ms) {
  uint64_t dt, add;

  /* A smaller share lowers the cap (one token each, with more instances
   * than burst tokens): at once, even with no time passed. */
  if (e->units > cap) e->units = cap;
  if (now_ms <= e->last_ms) return;
  dt = now_ms - e->last_ms;
  e->last_ms = now_ms;
  if (e->units >= cap) {
    e->units = cap;
    return;
  }
  /* No division on the hot path; an overflowing product is past full. */
  if (__builtin_mul_overflow(dt, rl->rate, &add) || add >= cap - e->units)
    e->units = cap;
  else
    e->units += add;
}

static inline uint64_t div_ceil(uint64_t a, uint64_t b) {
  return a / b + (a % b != 0);
}

/* A free entry, or the one to forget: the first full bucket the clock hand
 * meets within EVICT_SCAN entries (forgetting it loses nothing), else the
 * first it met unmarked, else where it stopped. */
static uint32_t take_entry(msvc_limit_rate_t *rl, shard_t *s, uint64_t cap,
                           uint64_t now_ms) {
  uint32_t n, i = 0, victim = NIL, fallback = NIL;

  if (s->used < rl->per_shard) return s->used++;
  for (n = 0; n < EVICT_SCAN; n++) {
    entry_t *e;

    i = s->hand;
    s->hand = s->hand + 1 == s->used ? 0 : s->hand + 1;
    e = &s->e[i];
    elock(e);
    refill(rl, e, cap, now_ms);
    if (e->units >= cap) {
      eunlock(e);
      victim = i;
      break;
    }
    if (!e->ref && fallback == NIL) fallback = i;
    e->ref = 0;
    eunlock(e);
  }
  if (victim != NIL) {
    s->evicted++;
  } else {
    victim = fallback != NIL ? fallback : i;
    s->lossy++;
  }
  chain_remove(rl, s, victim);
  return victim;
}

/* ---- check ----------------------------------------------------------------------- */

/* The stored form of a key: itself, or a digest of a long one. */
typedef struct skey_s {
  const void *p;
  uint64_t h;
  uint8_t len;
  uint8_t digest;
  unsigned char buf[16];
} skey_t;

static void skey(const msvc_limit_rate_t *rl, const void *key, size_t len, skey_t *k) {
  if (key == NULL) key = ""; /* the empty key; no NULL reaches memcpy */
  k->h = hash_bytes(rl->seed[0], key, len);
  k->digest = 0;
  if (len > MSVC_LIMIT_KEY_MAX) {
    uint64_t h2 = hash_bytes(rl->seed[1], key, len);

    memcpy(k->buf, &k->h, 8);
    memcpy(k->buf + 8, &h2, 8);
    k->p = k->buf;
    k->len = 16;
    k->digest = 1;
  } else {
    k->p = key;
    k->len = (uint8_t)len;
  }
}

static inline shard_t *shard_of(msvc_limit_rate_t *rl, uint64_t h) {
  return &rl->shards[rl->shard_bits == 0 ? 0 : h >> (64 - rl->shard_bits)];
}

/* The entry of a key, or NIL; the shard is locked. */
static uint32_t find(const msvc_limit_rate_t *rl, shard_t *s, const skey_t *k) {
  uint32_t i;

  for (i = s->heads[k->h & rl->bucket_mask]; i != NIL; i = s->ix[i].chain) {
    const ix_t *x = &s->ix[i];

    if (x->hash == k->h && x->klen == k->len && x->digest == k->digest &&
        memcmp(s->e[i].key, k->p, k->len) == 0)
      return i;
  }
  return NIL;
}

/* Takes the tokens from a held, locked entry and fills the answer. */
static int take(msvc_limit_rate_t *rl, entry_t *e, uint64_t token, uint64_t cap,
                uint64_t need, msvc_limit_result_t *res) {
  int rc;

  if (e->units >= need) {
    e->units -= need;
    rc = MSVC_OK;
  } else {
    rc = MSVC_ELIMIT;
  }
  if (res != NULL) {
    uint64_t lim = cap / token, rem = e->units / token;

    res->allowed = rc == MSVC_OK;
    res->limit = lim > UINT32_MAX ? UINT32_MAX : (uint32_t)lim;
    res->remaining = rem > UINT32_MAX ? UINT32_MAX : (uint32_t)rem;
    res->reset_ms = div_ceil(cap - e->units, rl->rate);
    if (rc == MSVC_OK)
      res->retry_after_ms = 0;
    else if (need > cap)
      res->retry_after_ms = UINT64_MAX;
    else
      res->retry_after_ms = div_ceil(need - e->units, rl->rate);
  }
  return rc;
}

/* The entry of a key, locked, found without the shard lock; NULL when the
 * key is not held or a writer got in the way. */
static entry_t *find_fast(const msvc_limit_rate_t *rl, shard_t *s, const skey_t *k) {
  uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire), i;
  entry_t *e;

  if (seq & 1) return NULL;
  i = find(rl, s, k);
  if (i == NIL) return NULL;
  e = &s->e[i];
  elock(e);
  atomic_thread_fence(memory_order_acquire);
  if (atomic_load_explicit(&s->seq, memory_order_relaxed) == seq) return e;
  eunlock(e);
  return NULL;
}

int msvc_limit_rate_check(msvc_limit_rate_t *rl, const void *key, size_t len, uint32_t cost,
                          uint64_t now_ms, msvc_limit_result_t *res) {
  uint64_t token, cap, need;
  shard_t *s;
  uint32_t i, share;
  entry_t *e;
  skey_t k;
  int rc;

  if (rl == NULL || (key == NULL && len > 0) || cost == 0) return MSVC_EINVAL;
  skey(rl, key, len, &k);
  share = atomic_load_explicit(&rl->share, memory_order_relaxed);
  token = rl->period * share;
  cap = capacity(rl, token);
  /* A cost above the whole bucket can never pass (and would overflow);
   * one token always fits. */
  need = cost == 1 ? token : cost > cap / token ? cap + 1 : token * cost;
  s = shard_of(rl, k.h);

  if ((e = find_fast(rl, s, &k)) != NULL) {
    refill(rl, e, cap, now_ms);
    if (!e->ref) e->ref = 1;
    rc = take(rl, e, token, cap, need, res);
    eunlock(e);
  } else {
    write_begin(s);
    i = find(rl, s, &k);
    if (i == NIL) {
      i = take_entry(rl, s, cap, now_ms);
      e = &s->e[i];
      elock(e);
      s->ix[i].hash = k.h;
      s->ix[i].klen = k.len;
      s->ix[i].digest = k.digest;
      memcpy(e->key, k.p, k.len);
      e->units = cap;
      e->last_ms = now_ms;
      e->ref = 1;
      s->ix[i].chain = s->heads[k.h & rl->bucket_mask];
      s->heads[k.h & rl->bucket_mask] = i;
    } else {
      e = &s->e[i];
      elock(e);
      refill(rl, e, cap, now_ms);
      if (!e->ref) e->ref = 1;
    }
    rc = take(rl, e, token, cap, need, res);
    eunlock(e);
    write_end(s);
  }
  atomic_fetch_add_explicit(rc == MSVC_OK ? &slot_of(rl)->allowed : &slot_of(rl)->refused, 1,
                            memory_order_relaxed);
  return rc;
}

int msvc_limit_rate_refund(msvc_limit_rate_t *rl, const void *key, size_t len, uint32_t cost,
                           uint64_t now_ms) {
  uint64_t token, cap, give;
  shard_t *s;
  entry_t *e;
  skey_t k;

  if (rl == NULL || (key == NULL && len > 0) || cost == 0) return MSVC_EINVAL;
  skey(rl, key, len, &k);
  token = rl->period * atomic_load_explicit(&rl->share, memory_order_relaxed);
  cap = capacity(rl, token);
  give = cost > cap / token ? cap : token * cost;
  s = shard_of(rl, k.h);
  lock(s); /* no writer changes the chains meanwhile */
  {
    uint32_t i = find(rl, s, &k);

    e = i != NIL ? &s->e[i] : NULL;
  }
  if (e != NULL) {
    elock(e);
    refill(rl, e, cap, now_ms);
    e->units = give >= cap - e->units ? cap : e->units + give;
    eunlock(e);
  }
  unlock(s);
  return MSVC_OK;
}

/* ---- share and stats -------------------------------------------------------------- */

int msvc_limit_rate_set_share(msvc_limit_rate_t *rl, uint32_t n) {
  if (rl == NULL || n > MAX_SHARE) return MSVC_EINVAL;
  atomic_store(&rl->share, n == 0 ? 1 : n);
  return MSVC_OK;
}

uint32_t msvc_limit_rate_share(const msvc_limit_rate_t *rl) {
  return rl == NULL ? 0 : atomic_load(&((msvc_limit_rate_t *)rl)->share);
}

int msvc_limit_rate_stats(msvc_limit_rate_t *rl, msvc_limit_rate_stats_t *out) {
  uint32_t i;

  if (rl == NULL || out == NULL) return MSVC_EINVAL;
  memset(out, 0, sizeof(*out));
  for (i = 0; i < rl->nshards; i++) {
    shard_t *s = &rl->shards[i];

    lock(s);
    out->keys += s->used;
    out->evicted += s->evicted;
    out->evicted_lossy += s->lossy;
    unlock(s);
  }
  for (i = 0; i < SLOTS; i++) {
    out->allowed += atomic_load_explicit(&rl->slots[i].allowed, memory_order_relaxed);
    out->refused += atomic_load_explicit(&rl->slots[i].refused, memory_order_relaxed);
  }
  return MSVC_OK;
}
