/*
 * Internals of the balancer, shared by lb.c (set, exclusions, lifecycle),
 * sched.c (the policies) and track.c (ticket tracking).
 *
 * Memory model in one paragraph. Endpoint records live in slots of a chunked
 * table whose chunks never move or go away before the balancer does, so a
 * ticket can name its endpoint by slot and generation and msvc_lb_done() can
 * always look at it safely. The set pickers choose from is an immutable
 * snapshot published through one atomic pointer; lock-free pickers announce
 * themselves in per-thread-shard reader counters while they hold it, and a
 * writer that replaced it waits until each counter has been seen at zero
 * before freeing the old one (a small sleepable RCU). Policies that need
 * ordered state (weighted round-robin, least-connection) keep it in a
 * scheduler guarded by a spin lock, swapped together with the snapshot.
 */
#ifndef MSVC_LB_INTERNAL_H
#define MSVC_LB_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <msvc/lb.h>

#include "msvc-internal.h"

/* picks and in-flight share one word so a pick is a single atomic add. */
#define LB_INFL_BITS 24
#define LB_INFL_MASK ((UINT64_C(1) << LB_INFL_BITS) - 1)
#define LB_PICK_ONE (UINT64_C(1) << LB_INFL_BITS)

#define LB_CHUNK_BITS 8
#define LB_CHUNK_SIZE (1u << LB_CHUNK_BITS)
#define LB_MAX_CHUNKS 4096 /* 1M slots: set plus endpoints draining */
#define LB_NO_POS UINT32_MAX
#define LB_SHARDS 16
#define LB_SWRR_MAX 32 /* up to here nginx's exact O(n) sequence */
#define LB_CACHELINE 64

typedef struct lb_ep_s {
  /* hot, read and written by pickers */
  _Atomic uint64_t pc; /* picks << LB_INFL_BITS | inflight */
  _Atomic uint32_t gen;
  _Atomic uint32_t weight;
  _Atomic uint64_t excluded_until; /* 0 = never excluded */
  _Atomic uint64_t ramp_start;     /* slow start began here */
  _Atomic uint64_t failures;
  _Atomic uint64_t latency_ewma_us;
  /* guarded by the scheduler lock */
  int64_t swrr_current;
  /* sequence number of its last pick, or under least_conn of its last pick
   * or release; wrapping: compared as a difference */
  uint32_t last_pick;
  uint32_t sidx; /* index in the scheduler's snapshot, LB_NO_POS if none */
  /* guarded by the writer mutex */
  uint32_t slot;
  bool in_set;
  bool retired;
  bool mark;
  char *id; /* immutable while the slot is live */
  char *metadata;
} lb_ep_t;

/* A heap entry carries its own keys, so that sifting reads one compact
 * array instead of endpoint records scattered over memory. */
typedef struct lb_hent_s {
  uint64_t key; /* EDF: deadline; least_conn: see LC_ONE in sched.c */
  uint32_t tie; /* EDF: group; least_conn: last_pick of idx */
  uint32_t idx; /* eps[] index of the group's or the class's next */
} lb_hent_t;

/* Weighted round-robin above LB_SWRR_MAX: endpoints of one weight share a
 * period and, being first due together, stay due together, so EDF can keep
 * one heap entry per weight rather than per endpoint (see sched.c). */
typedef struct lb_grp_s {
  uint64_t period;
  uint32_t first; /* members[first, end): eps[] indices, ascending */
  uint32_t end;
  uint32_t cur; /* next member due at the group's deadline */
  bool ramp;    /* a ramping endpoint alone: period recomputed per pick */
} lb_grp_t;

/* least_conn: the eligible endpoints of one weight (a class) with the same
 * count in flight form a level, a queue in the order their counts last
 * changed; a class keeps its levels in a list by count. The heap holds one
 * entry per class, for its first level's first endpoint (see sched.c). */
typedef struct lb_lvl_s {
  uint32_t count;      /* requests in flight of each member */
  uint32_t cls;        /* its class */
  uint32_t head, tail; /* eps[] indices, linked through lb_lnk_t */
  uint32_t prev, next; /* the class's levels by count; next: free list */
} lb_lvl_t;

typedef struct lb_lnk_s {
  uint32_t prev, next; /* in its level's queue */
  uint32_t lvl;        /* LB_NO_POS for an endpoint in its ramp */
} lb_lnk_t;

typedef struct lb_cls_s {
  uint32_t weight;
  uint32_t first; /* the level with the fewest in flight */
  uint32_t last;  /* the level with the most */
} lb_cls_t;

typedef struct lb_snap_s {
  uint32_t total;    /* endpoints in the set */
  uint32_t n;        /* eligible: the ones picks choose among */
  uint32_t excluded; /* excluded at build time */
  uint32_t nramp;    /* eligible endpoints still ramping up */
  bool panic;
  bool uniform; /* eligible weights equal and nobody ramping */
  lb_ep_t **all;
  lb_ep_t **eps;
  lb_ep_t **ramp;  /* least_conn: ramping endpoints, kept out of the heap */
  lb_hent_t *heap; /* scheduler's heap storage */
  union {
    uint32_t *pos;     /* least_conn: heap position of class i */
    uint32_t *members; /* EDF: eps[] indices, grouped by lb_grp_t */
  };
  union {
    lb_grp_t *grp; /* EDF: the groups, one per weight or ramping endpoint */
    lb_cls_t *cls; /* least_conn: the classes, one per weight */
  };
  lb_lvl_t *lvl;     /* least_conn: pool of n + 1 levels */
  lb_lnk_t *lnk;     /* least_conn: links of eps[i] */
  uint32_t lvl_free; /* least_conn: first free level */
} lb_snap_t;

enum { LB_SCHED_NONE, LB_SCHED_SWRR, LB_SCHED_EDF, LB_SCHED_LC };

typedef struct lb_sched_s {
  int mode;
  lb_snap_t *snap; /* the snapshot whose arrays it uses */
  uint32_t nheap;
  uint64_t vt;  /* EDF virtual time */
  uint32_t seq; /* least_conn pick sequence: ties go to the oldest */
} lb_sched_t;

typedef struct lb_shard_s {
  _Atomic long readers[2];
  _Atomic uint32_t cursor;
  char pad[LB_CACHELINE - 2 * sizeof(long) - sizeof(uint32_t)];
} lb_shard_t;

typedef struct lb_track_s {
  pthread_mutex_t mu;
  uint64_t *keys; /* open addressing, 0 = empty */
  size_t cap;
  size_t count;
} lb_track_t;

struct msvc_lb_s {
  lb_shard_t shards[LB_SHARDS];
  _Atomic(lb_snap_t *) snap;
  _Atomic uint64_t valid_until; /* first time the snapshot goes stale */
  _Atomic unsigned epoch;
  _Atomic bool sched_lock;
  lb_sched_t sched;
  msvc_lb_opts_t opts;
  bool track;
  lb_track_t tracker;
  _Atomic uint64_t serial;
  /* writer side */
  pthread_mutex_t wmu;
  bool had_set;
  _Atomic(lb_ep_t *) chunks[LB_MAX_CHUNKS];
  _Atomic uint32_t nslots;
  uint32_t *free_slots;
  uint32_t nfree;
  uint32_t free_cap;
  lb_ep_t **retired;
  uint32_t nretired;
  uint32_t retired_cap;
  lb_ep_t **index; /* current set by id, open addressing */
  uint32_t index_cap;
};

/* ---- lb.c --------------------------------------------------------------- */
lb_ep_t *msvc__lb_slot(msvc_lb_t *lb, uint32_t slot);
/* Rebuilds the snapshot when its time has come; never blocks a picker on a
 * busy writer (the stale snapshot is still correct to use for a moment). */
void msvc__lb_refresh(msvc_lb_t *lb, uint64_t now_ms);
unsigned msvc__lb_pin(msvc_lb_t *lb, lb_shard_t **shard);
void msvc__lb_unpin(lb_shard_t *shard, unsigned e);

/* When slow start for ep begins: it joined, or its exclusion ended. */
static inline uint64_t msvc__lb_ramp_origin(lb_ep_t *ep) {
  uint64_t rs = atomic_load_explicit(&ep->ramp_start, memory_order_relaxed);
  uint64_t ex = atomic_load_explicit(&ep->excluded_until, memory_order_relaxed);

  return rs > ex ? rs : ex;
}

/* In its slow-start ramp at now_ms (an endpoint still excluded is not: it is
 * only picked in panic mode, at its full weight). */
static inline bool msvc__lb_ramping(const msvc_lb_t *lb, lb_ep_t *ep,
                                    uint64_t now_ms) {
  uint64_t win = lb->opts.slow_start_ms, origin;

  if (win == 0)
    return false;
  /* 0 is "never": a member of the first set that was never excluded */
  origin = msvc__lb_ramp_origin(ep);
  return origin != 0 && origin <= now_ms && now_ms - origin < win;
}

/* Weight in effect at now_ms, in thousandths: 10% at the start of the ramp,
 * growing linearly to 100%. */
static inline uint64_t msvc__lb_eff(const msvc_lb_t *lb, lb_ep_t *ep,
                                    uint64_t now_ms) {
  uint64_t w = atomic_load_explicit(&ep->weight, memory_order_relaxed);
  uint64_t win = lb->opts.slow_start_ms;

  if (!msvc__lb_ramping(lb, ep, now_ms))
    return w * 1000;
  /* win <= MSVC_LB_MAX_SLOW_START_MS keeps the product far from overflow */
  return w * 100 + w * 900 * (now_ms - msvc__lb_ramp_origin(ep)) / win;
}

/* The scheduler lock: test and test-and-set with exponential backoff. A
 * thread that finds the lock taken waits 1, 2, 4 ... up to
 * LB_LOCK_BACKOFF_MAX `pause`s between looks (about 12 us at the cap on a
 * current x86 core) rather than re-reading the line at once: with two
 * threads picking without a pause, a plain spin made the lock, the heap and
 * the counts change cores on every pick (6 to 8 times the one-thread cost
 * per pick), where backing off lets the holder take several picks in a row
 * with its lines in its own cache. Like a mutex, it is not fair under
 * contention. A thread still waiting at the cap yields after each round,
 * for a holder that was preempted. */
#define LB_LOCK_BACKOFF_MAX 1024u

static inline void msvc__lb_lock(msvc_lb_t *lb) {
  unsigned backoff = 1, i;

  while (atomic_exchange_explicit(&lb->sched_lock, true,
                                  memory_order_acquire)) {
    do {
      for (i = 0; i < backoff; i++)
        msvc__cpu_relax();
      if (backoff < LB_LOCK_BACKOFF_MAX)
        backoff <<= 1;
      else
        sched_yield();
    } while (atomic_load_explicit(&lb->sched_lock, memory_order_relaxed));
  }
}

static inline void msvc__lb_unlock(msvc_lb_t *lb) {
  atomic_store_explicit(&lb->sched_lock, false, memory_order_release);
}

/* ---- sched.c ------------------------------------------------------------ */
/* Points the scheduler at a new snapshot; caller holds the scheduler lock. */
void msvc__lb_sched_install(msvc_lb_t *lb, lb_snap_t *snap, uint64_t now_ms);

/* ---- track.c ------------------------------------------------------------ */
int msvc__lb_track_init(lb_track_t *t);
void msvc__lb_track_destroy(lb_track_t *t);
int msvc__lb_track_add(lb_track_t *t, uint64_t serial);
/* false when the serial is not outstanding */
bool msvc__lb_track_remove(lb_track_t *t, uint64_t serial);
size_t msvc__lb_track_count(lb_track_t *t);

#endif /* MSVC_LB_INTERNAL_H */
