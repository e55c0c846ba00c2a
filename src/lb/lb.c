/*
 * Balancer lifecycle, endpoint sets, exclusions and the snapshot machinery.
 * The policies themselves and pick/done live in sched.c.
 */
#include <stdlib.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <msvc/log.h>

#include "lb/lb-internal.h"

#define LB_MAX_SLOTS ((uint32_t)LB_MAX_CHUNKS * LB_CHUNK_SIZE)

void msvc_lb_opts_init(msvc_lb_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->policy = MSVC_LB_ROUND_ROBIN;
  opts->max_excluded_percent = 50;
  opts->slow_start_ms = 0;
#ifdef NDEBUG
  opts->track_tickets = false;
#else
  opts->track_tickets = true;
#endif
}

static const char *const policy_names[] = {"round_robin", "least_conn", "p2c"};

int msvc_lb_policy_parse(const char *name, msvc_lb_policy_t *policy) {
  size_t i;

  if (name == NULL || policy == NULL)
    return MSVC_EINVAL;
  for (i = 0; i < MSVC__ARRAY_SIZE(policy_names); i++) {
    if (strcmp(name, policy_names[i]) == 0) {
      *policy = (msvc_lb_policy_t)i;
      return MSVC_OK;
    }
  }
  return MSVC_EINVAL;
}

const char *msvc_lb_policy_name(msvc_lb_policy_t policy) {
  if ((unsigned)policy >= MSVC__ARRAY_SIZE(policy_names))
    return "unknown";
  return policy_names[policy];
}

/* ---- reader side of the snapshot: pin, unpin, grace period ---------------
 * Two ways to announce a reader, both shared by every balancer:
 *
 * - the fast one: a thread owns one of LB_READERS process-wide reader
 *   records and makes its sequence number odd while it reads and even
 *   again when done, with plain stores, no locked instruction. What orders
 *   that store before the snapshot load is the writer's membarrier(2),
 *   which runs a full barrier on every thread of the process between the
 *   writer's pointer swap and its look at the records: a reader that still
 *   loaded the old pointer has its odd number visible by then. This is the
 *   scheme of userspace RCU's membarrier flavour; it needs Linux 4.14.
 * - the fallback (no membarrier, or more threads than records): the
 *   per-shard counters below, one locked add in and one out. A thread keeps
 *   one shard for life, so two threads usually count on different cache
 *   lines. The epoch parity tells new readers which of the two counters to
 *   use, so that a writer waiting for one of them to drain is not held up by
 *   readers that arrive after the swap. */
#define LB_READERS 256
#define LB_PIN_FAST 2u /* msvc__lb_pin's answer when a record was used */

typedef struct lb_reader_s {
  _Atomic uint32_t seq; /* odd while its thread reads a snapshot */
  _Atomic bool used;
  char pad[LB_CACHELINE - sizeof(uint32_t) - sizeof(bool)];
} lb_reader_t;

typedef struct lb_tls_s {
  unsigned shard;     /* 0 = not assigned yet */
  lb_reader_t *reader; /* NULL: not tried yet; &no_reader: fallback */
} lb_tls_t;

static _Thread_local lb_tls_t tls;
static atomic_uint next_shard;
static _Alignas(LB_CACHELINE) lb_reader_t readers[LB_READERS];
static _Atomic uint32_t nreaders; /* records ever handed out: writers scan these */
static lb_reader_t no_reader;
static pthread_once_t readers_once = PTHREAD_ONCE_INIT;
static pthread_key_t readers_key;
static bool fast_readers; /* set once, before any record is handed out */

static long membarrier_call(int cmd) {
#if defined(__linux__) && defined(__NR_membarrier)
  return syscall(__NR_membarrier, cmd, 0, 0);
#else
  (void)cmd;
  return -1;
#endif
}

/* At thread exit: the record goes back (its number is even, outside reads). */
static void reader_release(void *arg) {
  lb_reader_t *r = arg;

  atomic_store_explicit(&r->used, false, memory_order_release);
}

static void readers_init(void) {
  if (pthread_key_create(&readers_key, reader_release) != 0)
    return;
#if defined(__linux__) && defined(__NR_membarrier)
  if (membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
    fast_readers = true;
#endif
}

static lb_reader_t *reader_claim(void) {
  uint32_t i, n;

  (void)pthread_once(&readers_once, readers_init);
  if (!fast_readers)
    return &no_reader;
  for (i = 0; i < LB_READERS; i++) {
    bool expect = false;

    if (atomic_load_explicit(&readers[i].used, memory_order_relaxed) ||
        !atomic_compare_exchange_strong(&readers[i].used, &expect, true))
      continue;
    if (pthread_setspecific(readers_key, &readers[i]) != 0) {
      atomic_store(&readers[i].used, false);
      return &no_reader;
    }
    n = atomic_load(&nreaders);
    while (n < i + 1 && !atomic_compare_exchange_weak(&nreaders, &n, i + 1)) {
    }
    return &readers[i];
  }
  return &no_reader;
}

unsigned msvc__lb_pin(msvc_lb_t *lb, lb_shard_t **shard) {
  unsigned s = tls.shard, e;
  lb_reader_t *r = tls.reader;
  lb_shard_t *sh;

  if (MSVC__UNLIKELY(s == 0 || r == NULL)) {
    s = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
            LB_SHARDS + 1;
    tls.shard = s;
    tls.reader = r = reader_claim();
  }
  sh = &lb->shards[s - 1];
  *shard = sh;
  if (MSVC__LIKELY(r != &no_reader)) {
    uint32_t q = atomic_load_explicit(&r->seq, memory_order_relaxed);

    atomic_store_explicit(&r->seq, q + 1, memory_order_relaxed);
    /* the compiler must not move the snapshot load above the store; the
     * processor is kept in order by the writer's membarrier */
    atomic_signal_fence(memory_order_seq_cst);
    return LB_PIN_FAST;
  }
  e = atomic_load(&lb->epoch) & 1;
  atomic_fetch_add(&sh->readers[e], 1);
  return e;
}

void msvc__lb_unpin(lb_shard_t *shard, unsigned e) {
  if (MSVC__LIKELY(e == LB_PIN_FAST)) {
    lb_reader_t *r = tls.reader;
    uint32_t q = atomic_load_explicit(&r->seq, memory_order_relaxed);

    atomic_store_explicit(&r->seq, q + 1, memory_order_release);
    return;
  }
  atomic_fetch_sub_explicit(&shard->readers[e], 1, memory_order_release);
}

static void wait_drained(msvc_lb_t *lb, unsigned parity) {
  unsigned i, spins = 0;

  for (i = 0; i < LB_SHARDS; i++) {
    while (atomic_load(&lb->shards[i].readers[parity]) != 0) {
      if (++spins > 64) {
        spins = 0;
        sched_yield();
      }
    }
  }
}

/* Waits for every record seen inside a read to leave it (its number
 * changes), which is not held up by reads that begin later. */
static void wait_readers(void) {
  uint32_t i, n = atomic_load(&nreaders);
  unsigned spins = 0;

  for (i = 0; i < n; i++) {
    uint32_t q = atomic_load_explicit(&readers[i].seq, memory_order_acquire);

    if ((q & 1) == 0)
      continue;
    while (atomic_load_explicit(&readers[i].seq, memory_order_acquire) == q) {
      if (++spins > 64) {
        spins = 0;
        sched_yield();
      }
    }
  }
}

/* After the snapshot pointer was replaced: returns once no reader can still
 * hold the old one. Every counter is seen at zero after the swap, so any
 * reader not yet finished incremented after that moment and therefore loaded
 * the new pointer. Flipping the epoch first keeps the counter we wait on from
 * being refilled by newcomers. */
static void synchronize(msvc_lb_t *lb) {
  unsigned e = atomic_load(&lb->epoch);

  if (fast_readers) {
    /* cannot fail once registered; a failure would be a kernel bug */
    (void)membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    wait_readers();
  }
  atomic_store(&lb->epoch, e + 1);
  wait_drained(lb, e & 1);
  atomic_store(&lb->epoch, e + 2);
  wait_drained(lb, (e + 1) & 1);
}

/* ---- slots ------------------------------------------------------------- */
lb_ep_t *msvc__lb_slot(msvc_lb_t *lb, uint32_t slot) {
  lb_ep_t *chunk;

  if (slot >= atomic_load_explicit(&lb->nslots, memory_order_acquire))
    return NULL;
  chunk = atomic_load_explicit(&lb->chunks[slot >> LB_CHUNK_BITS],
                               memory_order_acquire);
  return chunk == NULL ? NULL : &chunk[slot & (LB_CHUNK_SIZE - 1)];
}

/* A free slot for a new endpoint; the writer mutex is held. */
static int slot_take(msvc_lb_t *lb, lb_ep_t **out) {
  uint32_t slot, n = atomic_load_explicit(&lb->nslots, memory_order_relaxed);
  lb_ep_t *ep;

  if (lb->nfree > 0) {
    slot = lb->free_slots[--lb->nfree];
  } else {
    uint32_t c = n >> LB_CHUNK_BITS;
    uint32_t *fs;

    if (n >= LB_MAX_SLOTS)
      return MSVC_ELIMIT;
    /* room for every slot, so that giving one back can never fail */
    if (n + 1 > lb->free_cap) {
      uint32_t cap = lb->free_cap ? 2 * lb->free_cap : LB_CHUNK_SIZE;

      fs = msvc__realloc(lb->free_slots, (size_t)cap * sizeof(*fs));
      if (fs == NULL)
        return MSVC_ENOMEM;
      lb->free_slots = fs;
      lb->free_cap = cap;
    }
    if (atomic_load_explicit(&lb->chunks[c], memory_order_relaxed) == NULL) {
      lb_ep_t *chunk = msvc__calloc(LB_CHUNK_SIZE, sizeof(*chunk));
      uint32_t i;

      if (chunk == NULL)
        return MSVC_ENOMEM;
      for (i = 0; i < LB_CHUNK_SIZE; i++)
        chunk[i].sidx = LB_NO_POS;
      atomic_store_explicit(&lb->chunks[c], chunk, memory_order_release);
    }
    slot = n;
    atomic_store_explicit(&lb->nslots, n + 1, memory_order_release);
  }
  ep = msvc__lb_slot(lb, slot);
  ep->slot = slot;
  *out = ep;
  return MSVC_OK;
}

/* Frees an endpoint's strings and makes its slot reusable; the new
 * generation invalidates any ticket still naming it. */
static void slot_give_back(msvc_lb_t *lb, lb_ep_t *ep) {
  msvc__free(ep->id);
  msvc__free(ep->metadata);
  ep->id = NULL;
  ep->metadata = NULL;
  ep->in_set = false;
  ep->retired = false;
  atomic_fetch_add_explicit(&ep->gen, 1, memory_order_release);
  lb->free_slots[lb->nfree++] = ep->slot;
}

/* Endpoints that left the set are recycled once their last ticket is back. */
static void reclaim(msvc_lb_t *lb) {
  uint32_t i = 0;

  while (i < lb->nretired) {
    lb_ep_t *ep = lb->retired[i];

    if ((atomic_load(&ep->pc) & LB_INFL_MASK) == 0) {
      slot_give_back(lb, ep);
      lb->retired[i] = lb->retired[--lb->nretired];
    } else {
      i++;
    }
  }
}

/* ---- id index of the current set ---------------------------------------- */
static uint32_t hash_id(const char *s) {
  uint32_t h = 2166136261u;

  while (*s != '\0')
    h = (h ^ (unsigned char)*s++) * 16777619u;
  return h;
}

static uint32_t index_cap_for(size_t n) {
  uint32_t cap = 16;

  while (cap < 2 * n)
    cap <<= 1;
  return cap;
}

static lb_ep_t *index_find(lb_ep_t **idx, uint32_t cap, const char *id) {
  uint32_t i;

  if (cap == 0)
    return NULL;
  for (i = hash_id(id) & (cap - 1); idx[i] != NULL; i = (i + 1) & (cap - 1))
    if (strcmp(idx[i]->id, id) == 0)
      return idx[i];
  return NULL;
}

static void index_put(lb_ep_t **idx, uint32_t cap, lb_ep_t *ep) {
  uint32_t i = hash_id(ep->id) & (cap - 1);

  while (idx[i] != NULL)
    i = (i + 1) & (cap - 1);
  idx[i] = ep;
}

/* ---- snapshots ---------------------------------------------------------- */
static lb_snap_t *snap_alloc(const msvc_lb_t *lb, uint32_t total) {
  size_t t = total;
  bool lc = lb->opts.policy == MSVC_LB_LEAST_CONN;
  /* + LB_CACHELINE: room to align the heap so that each group of four
   * siblings (entries 4i+1..4i+4, 16 bytes each) fills one cache line */
  lb_snap_t *s = msvc__calloc(
      1, sizeof(*s) + 3 * t * sizeof(lb_ep_t *) + t * sizeof(lb_grp_t) +
             LB_CACHELINE + t * sizeof(lb_hent_t) + t * sizeof(uint32_t) +
             (lc ? (t + 1) * sizeof(lb_lvl_t) + t * sizeof(lb_lnk_t) : 0));
  lb_ep_t **arr;
  uintptr_t h;

  if (s == NULL)
    return NULL;
  arr = (lb_ep_t **)(void *)(s + 1);
  s->all = arr;
  s->eps = arr + t;
  s->ramp = arr + 2 * t;
  s->grp = (lb_grp_t *)(void *)(arr + 3 * t);
  h = (uintptr_t)(s->grp + t) + sizeof(lb_hent_t);
  h = (h + LB_CACHELINE - 1) / LB_CACHELINE * LB_CACHELINE - sizeof(lb_hent_t);
  s->heap = (lb_hent_t *)h;
  s->pos = (uint32_t *)(void *)(s->heap + t);
  if (lc) {
    s->lvl = (lb_lvl_t *)(void *)(s->pos + t);
    s->lnk = (lb_lnk_t *)(void *)(s->lvl + t + 1);
  }
  s->total = total;
  return s;
}

static bool excluded_at(lb_ep_t *ep, uint64_t now_ms) {
  return atomic_load_explicit(&ep->excluded_until, memory_order_relaxed) > now_ms;
}

/* Decides eligibility and panic for all[] at now_ms; returns the first time
 * this view goes stale (an exclusion ends or a ramp completes). */
static uint64_t snap_fill(msvc_lb_t *lb, lb_snap_t *s, uint64_t now_ms) {
  uint64_t next = UINT64_MAX, win = lb->opts.slow_start_ms;
  uint32_t i, limit, w0 = 0;

  s->excluded = 0;
  for (i = 0; i < s->total; i++)
    s->excluded += excluded_at(s->all[i], now_ms);
  limit = (uint32_t)((uint64_t)s->total * lb->opts.max_excluded_percent / 100);
  s->panic = s->total > 0 && (s->excluded > limit || s->excluded == s->total);
  s->n = 0;
  s->nramp = 0;
  s->uniform = true;
  for (i = 0; i < s->total; i++) {
    lb_ep_t *ep = s->all[i];
    uint32_t w = atomic_load_explicit(&ep->weight, memory_order_relaxed);

    if (excluded_at(ep, now_ms)) {
      uint64_t until = atomic_load_explicit(&ep->excluded_until,
                                            memory_order_relaxed);
      next = until < next ? until : next;
      if (!s->panic)
        continue;
    }
    s->eps[s->n++] = ep;
    if (msvc__lb_ramping(lb, ep, now_ms)) {
      uint64_t end = msvc__lb_ramp_origin(ep) + win;
      s->nramp++;
      next = end < next ? end : next;
    }
    if (s->n == 1)
      w0 = w;
    else if (w != w0)
      s->uniform = false;
  }
  if (s->nramp > 0)
    s->uniform = false;
  return next;
}

/* Publishes s (filled for now_ms) and retires the previous snapshot. The
 * writer mutex is held. */
static void install(msvc_lb_t *lb, lb_snap_t *s, uint64_t now_ms,
                    uint64_t valid_until) {
  lb_snap_t *old;

  msvc__lb_lock(lb);
  msvc__lb_sched_install(lb, s, now_ms);
  old = atomic_exchange(&lb->snap, s);
  msvc__lb_unlock(lb);
  atomic_store(&lb->valid_until, valid_until);
  synchronize(lb);
  msvc__free(old);
  reclaim(lb);
}

/* Same set, new view: after an exclusion changed or its time ran out. */
static int rebuild(msvc_lb_t *lb, uint64_t now_ms) {
  lb_snap_t *cur = atomic_load(&lb->snap);
  lb_snap_t *s = snap_alloc(lb, cur->total);
  uint64_t until;

  if (s == NULL)
    return MSVC_ENOMEM;
  if (cur->total > 0)
    memcpy(s->all, cur->all, cur->total * sizeof(*s->all));
  until = snap_fill(lb, s, now_ms);
  install(lb, s, now_ms, until);
  return MSVC_OK;
}

void msvc__lb_refresh(msvc_lb_t *lb, uint64_t now_ms) {
  if (pthread_mutex_trylock(&lb->wmu) != 0)
    return;
  if (now_ms >= atomic_load(&lb->valid_until))
    (void)rebuild(lb, now_ms);
  pthread_mutex_unlock(&lb->wmu);
}

/* ---- lifecycle ---------------------------------------------------------- */
int msvc_lb_new(const msvc_lb_opts_t *opts, msvc_lb_t **out) {
  msvc_lb_opts_t def;
  lb_snap_t *empty;
  msvc_lb_t *lb;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  msvc_lb_opts_init(&def);
  if (opts == NULL)
    opts = &def;
  if (opts->size < sizeof(*opts) || (unsigned)opts->policy > MSVC_LB_P2C ||
      opts->max_excluded_percent > 100 ||
      opts->slow_start_ms > MSVC_LB_MAX_SLOW_START_MS)
    return MSVC_EINVAL;
  lb = msvc__calloc(1, sizeof(*lb));
  if (lb == NULL)
    return MSVC_ENOMEM;
  lb->opts = *opts;
  lb->track = opts->track_tickets;
  atomic_store(&lb->valid_until, UINT64_MAX);
  /* a ticket of another balancer is then very unlikely to match */
  atomic_store(&lb->serial, (msvc__rand64() >> 1) | 1);
  lb->sched.mode = LB_SCHED_NONE;
  if (msvc__lb_track_init(&lb->tracker) != MSVC_OK) {
    msvc__free(lb);
    return MSVC_ENOMEM;
  }
  if (pthread_mutex_init(&lb->wmu, NULL) != 0) {
    msvc__lb_track_destroy(&lb->tracker);
    msvc__free(lb);
    return MSVC_ENOMEM;
  }
  empty = snap_alloc(lb, 0);
  if (empty == NULL) {
    msvc_lb_free(lb);
    return MSVC_ENOMEM;
  }
  atomic_store(&lb->snap, empty);
  msvc__lb_sched_install(lb, empty, 0);
  *out = lb;
  return MSVC_OK;
}

void msvc_lb_free(msvc_lb_t *lb) {
  uint32_t c;

  if (lb == NULL)
    return;
  if (lb->track && msvc__lb_track_count(&lb->tracker) > 0)
    msvc_log_write(MSVC_LOG_WARN, "lb", NULL, 0,
                   "balancer freed with %zu ticket(s) never returned",
                   msvc__lb_track_count(&lb->tracker));
  for (c = 0; c < LB_MAX_CHUNKS; c++) {
    lb_ep_t *chunk = atomic_load(&lb->chunks[c]);
    uint32_t i;

    if (chunk == NULL)
      break;
    for (i = 0; i < LB_CHUNK_SIZE; i++) {
      msvc__free(chunk[i].id);
      msvc__free(chunk[i].metadata);
    }
    msvc__free(chunk);
  }
  msvc__free(atomic_load(&lb->snap));
  msvc__free(lb->free_slots);
  msvc__free(lb->retired);
  msvc__free(lb->index);
  msvc__lb_track_destroy(&lb->tracker);
  pthread_mutex_destroy(&lb->wmu);
  msvc__free(lb);
}

/* ---- updates ------------------------------------------------------------ */
static int validate_set(const msvc_lb_endpoint_t *eps, size_t n) {
  size_t i;

  if (n > MSVC_LB_MAX_ENDPOINTS)
    return MSVC_ETOOLARGE;
  if (n > 0 && eps == NULL)
    return MSVC_EINVAL;
  for (i = 0; i < n; i++) {
    size_t len;

    if (eps[i].id == NULL || eps[i].weight < 1 ||
        eps[i].weight > MSVC_LB_MAX_WEIGHT)
      return MSVC_EINVAL;
    len = strlen(eps[i].id);
    if (len == 0 || len > MSVC_LB_MAX_ID_LEN)
      return MSVC_EINVAL;
  }
  return MSVC_OK;
}

/* Everything an update allocates, gathered before anything is changed so
 * that a failure leaves the balancer exactly as it was. */
typedef struct lb_update_s {
  size_t n;
  lb_ep_t **eps;   /* the new set, in order */
  bool *fresh;     /* eps[i] was created by this update */
  char **meta;     /* new metadata strings, NULL = unchanged */
  lb_ep_t **index; /* id index of the new set */
  uint32_t index_cap;
  lb_snap_t *snap;
} lb_update_t;

static void update_release(msvc_lb_t *lb, lb_update_t *u, bool failed) {
  size_t i;

  for (i = 0; i < u->n && u->eps != NULL; i++) {
    if (u->meta != NULL)
      msvc__free(u->meta[i]);
    if (failed && u->eps[i] != NULL) {
      u->eps[i]->mark = false;
      if (u->fresh[i])
        slot_give_back(lb, u->eps[i]);
    }
  }
  msvc__free(u->eps);
  msvc__free(u->fresh);
  msvc__free(u->meta);
  if (failed) {
    msvc__free(u->index);
    msvc__free(u->snap);
  }
}

static int fresh_endpoint(msvc_lb_t *lb, const msvc_lb_endpoint_t *src,
                          uint64_t now_ms, lb_ep_t **out) {
  lb_ep_t *ep;
  int rc = slot_take(lb, &ep);

  if (rc != MSVC_OK)
    return rc;
  ep->id = msvc__strdup(src->id);
  ep->metadata = msvc__strdup(src->metadata != NULL ? src->metadata : "");
  if (ep->id == NULL || ep->metadata == NULL) {
    slot_give_back(lb, ep);
    return MSVC_ENOMEM;
  }
  atomic_store(&ep->pc, 0);
  atomic_store(&ep->weight, src->weight);
  atomic_store(&ep->excluded_until, 0);
  /* the very first set is the starting state, not a newcomer */
  atomic_store(&ep->ramp_start, lb->had_set ? now_ms : 0);
  atomic_store(&ep->failures, 0);
  atomic_store(&ep->latency_ewma_us, 0);
  ep->swrr_current = 0;
  ep->last_pick = 0;
  /* sidx is left alone: the scheduler reset it, under its lock, when the
   * slot's previous endpoint left, and a stray second return of one of that
   * endpoint's tickets may still be reading it */
  ep->in_set = false;
  ep->retired = false;
  *out = ep;
  return MSVC_OK;
}

static int update_prepare(msvc_lb_t *lb, const msvc_lb_endpoint_t *src,
                          uint64_t now_ms, lb_update_t *u) {
  size_t i, n = u->n;
  uint32_t total = atomic_load(&lb->snap)->total, need = lb->nretired + total;

  u->eps = msvc__calloc(n ? n : 1, sizeof(*u->eps));
  u->fresh = msvc__calloc(n ? n : 1, sizeof(*u->fresh));
  u->meta = msvc__calloc(n ? n : 1, sizeof(*u->meta));
  u->index_cap = index_cap_for(n);
  u->index = msvc__calloc(u->index_cap, sizeof(*u->index));
  u->snap = snap_alloc(lb, (uint32_t)n);
  if (!u->eps || !u->fresh || !u->meta || !u->index || !u->snap)
    return MSVC_ENOMEM;
  if (need > lb->retired_cap) {
    lb_ep_t **r = msvc__realloc(lb->retired, need * sizeof(*r));
    if (r == NULL)
      return MSVC_ENOMEM;
    lb->retired = r;
    lb->retired_cap = need;
  }
  for (i = 0; i < n; i++) {
    const char *md = src[i].metadata != NULL ? src[i].metadata : "";
    lb_ep_t *ep = index_find(lb->index, lb->index_cap, src[i].id);

    if (index_find(u->index, u->index_cap, src[i].id) != NULL)
      return MSVC_EINVAL; /* the same id twice */
    if (ep != NULL) {
      ep->mark = true;
      u->eps[i] = ep;
      if (strcmp(ep->metadata, md) != 0 && (u->meta[i] = msvc__strdup(md)) == NULL)
        return MSVC_ENOMEM;
    } else {
      int rc = fresh_endpoint(lb, &src[i], now_ms, &u->eps[i]);
      if (rc != MSVC_OK)
        return rc;
      u->fresh[i] = true;
    }
    index_put(u->index, u->index_cap, u->eps[i]);
  }
  return MSVC_OK;
}

/* Nothing here can fail. */
static void update_commit(msvc_lb_t *lb, const msvc_lb_endpoint_t *src,
                          uint64_t now_ms, lb_update_t *u) {
  lb_snap_t *cur = atomic_load(&lb->snap);
  uint64_t until;
  size_t i;

  for (i = 0; i < cur->total; i++) {
    lb_ep_t *ep = cur->all[i];

    if (!ep->mark) {
      ep->in_set = false;
      ep->retired = true;
      lb->retired[lb->nretired++] = ep;
    }
  }
  for (i = 0; i < u->n; i++) {
    lb_ep_t *ep = u->eps[i];

    ep->mark = false;
    ep->in_set = true;
    atomic_store(&ep->weight, src[i].weight);
    if (u->meta[i] != NULL) {
      msvc__free(ep->metadata);
      ep->metadata = u->meta[i];
      u->meta[i] = NULL;
    }
    u->snap->all[i] = ep;
  }
  msvc__free(lb->index);
  lb->index = u->index;
  lb->index_cap = u->index_cap;
  lb->had_set = true;
  until = snap_fill(lb, u->snap, now_ms);
  install(lb, u->snap, now_ms, until);
}

int msvc_lb_update(msvc_lb_t *lb, const msvc_lb_endpoint_t *endpoints,
                   size_t n, uint64_t now_ms) {
  lb_update_t u;
  int rc;

  if (lb == NULL)
    return MSVC_EINVAL;
  rc = validate_set(endpoints, n);
  if (rc != MSVC_OK)
    return rc;
  memset(&u, 0, sizeof(u));
  u.n = n;
  pthread_mutex_lock(&lb->wmu);
  rc = update_prepare(lb, endpoints, now_ms, &u);
  if (rc == MSVC_OK)
    update_commit(lb, endpoints, now_ms, &u);
  update_release(lb, &u, rc != MSVC_OK);
  pthread_mutex_unlock(&lb->wmu);
  return rc;
}

/* ---- exclusions --------------------------------------------------------- */
static int set_exclusion(msvc_lb_t *lb, const char *id, uint64_t until_ms,
                         uint64_t now_ms) {
  lb_ep_t *ep;
  uint64_t old;
  int rc;

  if (lb == NULL || id == NULL)
    return MSVC_EINVAL;
  pthread_mutex_lock(&lb->wmu);
  ep = index_find(lb->index, lb->index_cap, id);
  if (ep == NULL) {
    pthread_mutex_unlock(&lb->wmu);
    return MSVC_ENOTFOUND;
  }
  old = atomic_load(&ep->excluded_until);
  if (until_ms > now_ms)
    atomic_store(&ep->excluded_until, until_ms);
  else if (old > now_ms) /* lifted early: slow start begins now */
    atomic_store(&ep->excluded_until, now_ms);
  rc = rebuild(lb, now_ms);
  if (rc != MSVC_OK)
    atomic_store(&ep->excluded_until, old);
  pthread_mutex_unlock(&lb->wmu);
  return rc;
}

int msvc_lb_exclude(msvc_lb_t *lb, const char *id, uint64_t until_ms,
                    uint64_t now_ms) {
  return set_exclusion(lb, id, until_ms, now_ms);
}

int msvc_lb_include(msvc_lb_t *lb, const char *id, uint64_t now_ms) {
  return set_exclusion(lb, id, now_ms, now_ms);
}

/* ---- reading ------------------------------------------------------------ */
static int lock_fresh(msvc_lb_t *lb, uint64_t now_ms) {
  pthread_mutex_lock(&lb->wmu);
  if (now_ms >= atomic_load(&lb->valid_until))
    return rebuild(lb, now_ms);
  return MSVC_OK;
}

int msvc_lb_status(msvc_lb_t *lb, uint64_t now_ms, msvc_lb_status_t *status) {
  lb_snap_t *s;
  uint32_t i, nslots;
  int rc;

  if (lb == NULL || status == NULL)
    return MSVC_EINVAL;
  rc = lock_fresh(lb, now_ms);
  s = atomic_load(&lb->snap);
  memset(status, 0, sizeof(*status));
  status->endpoints = s->total;
  status->eligible = s->n;
  status->panic = s->panic;
  for (i = 0; i < s->total; i++)
    status->excluded += excluded_at(s->all[i], now_ms);
  nslots = atomic_load(&lb->nslots);
  for (i = 0; i < nslots; i++) {
    lb_ep_t *ep = msvc__lb_slot(lb, i);
    if (ep->in_set || ep->retired)
      status->inflight += atomic_load(&ep->pc) & LB_INFL_MASK;
  }
  pthread_mutex_unlock(&lb->wmu);
  return rc;
}

int msvc_lb_foreach(msvc_lb_t *lb, uint64_t now_ms, msvc_lb_stats_cb cb,
                    void *data) {
  lb_snap_t *s;
  uint32_t i;

  if (lb == NULL || cb == NULL)
    return MSVC_EINVAL;
  (void)lock_fresh(lb, now_ms);
  s = atomic_load(&lb->snap);
  for (i = 0; i < s->total; i++) {
    lb_ep_t *ep = s->all[i];
    uint64_t pc = atomic_load(&ep->pc);
    msvc_lb_endpoint_stats_t st;

    st.id = ep->id;
    st.metadata = ep->metadata;
    st.weight = atomic_load(&ep->weight);
    st.effective_weight_milli = (uint32_t)msvc__lb_eff(lb, ep, now_ms);
    st.picks = pc >> LB_INFL_BITS;
    st.inflight = pc & LB_INFL_MASK;
    st.failures = atomic_load(&ep->failures);
    st.latency_ewma_us = atomic_load(&ep->latency_ewma_us);
    st.excluded = excluded_at(ep, now_ms);
    if (cb(&st, data) != 0)
      break;
  }
  pthread_mutex_unlock(&lb->wmu);
  return MSVC_OK;
}
