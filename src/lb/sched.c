/*
 * The policies, msvc_lb_pick() and msvc_lb_done().
 *
 * Round-robin with equal weights and p2c run lock-free on a pinned snapshot.
 * Weighted round-robin and least-connection need state ordered across picks,
 * kept in the scheduler under a spin lock held for a few dozen instructions:
 *
 * - up to LB_SWRR_MAX eligible endpoints, weighted round-robin is nginx's
 *   smooth algorithm itself (every pick adds each weight to its endpoint's
 *   running total, takes the largest and subtracts the sum from it), which
 *   is O(n) but n is small, and gives its exact sequence;
 * - above that, earliest deadline first: an endpoint due at d is next due
 *   at d + period, period inversely proportional to its weight, first due
 *   half a period in so that light endpoints are spread between heavy ones
 *   rather than bunched at the start, ties to the endpoint listed first.
 *   Endpoints of one weight start due together and so stay due together:
 *   in each round of their period they come up in list order. The heap
 *   therefore holds one entry per distinct weight (at most
 *   MSVC_LB_MAX_WEIGHT, whatever the number of endpoints), keyed by the
 *   group's deadline and its next member, and gives exactly the sequence
 *   of one entry per endpoint. An endpoint in its slow-start ramp, whose
 *   period changes with time, is a group of its own;
 * - least-connection keeps a heap ordered by in-flight / weight, then by the
 *   sequence number of the last pick, so equal endpoints take turns.
 *   Endpoints in their slow-start ramp change weight with time, which would
 *   break heap order, so they stay in a short side list compared on every
 *   pick and join the heap when their ramp ends (the snapshot is rebuilt
 *   then).
 */
#include "lb/lb-internal.h"

/* EDF periods are LB_EDF_SCALE / effective weight in thousandths. */
#define LB_EDF_SCALE (UINT64_C(1) << 42)
#define LB_EDF_REBASE (UINT64_C(1) << 62)

static uint64_t inflight_of(lb_ep_t *ep) {
  return atomic_load_explicit(&ep->pc, memory_order_relaxed) & LB_INFL_MASK;
}

static void count_pick(lb_ep_t *ep) {
  atomic_fetch_add_explicit(&ep->pc, LB_PICK_ONE + 1, memory_order_relaxed);
}

/* least_conn changes an endpoint's counts only under the scheduler lock, so
 * a plain load and store will do there (readers still see whole values). */
static void count_pick_locked(lb_ep_t *ep) {
  uint64_t pc = atomic_load_explicit(&ep->pc, memory_order_relaxed);

  atomic_store_explicit(&ep->pc, pc + LB_PICK_ONE + 1, memory_order_relaxed);
}

#define LC_ONE (UINT64_C(1) << 32) /* one request in flight, in a heap key */
#define LC_WEIGHT(key) ((key) & UINT32_MAX)
#define LC_INFLIGHT(key) ((key) >> 32)

/* Load a/ea below load b/eb (in flight over effective weight), ties going
 * to the one picked longest ago. Sequence numbers wrap, so they are
 * compared by difference. */
static int load_cmp(uint64_t ia, uint64_t ea, uint32_t ta, uint64_t ib,
                    uint64_t eb, uint32_t tb) {
  uint64_t l = ia * eb, r = ib * ea;

  if (l != r)
    return l < r ? -1 : 1;
  if (ta != tb)
    return (int32_t)(ta - tb) < 0 ? -1 : 1;
  return 0;
}

static bool heap_less(const msvc_lb_t *lb, const lb_hent_t *a,
                      const lb_hent_t *b) {
  if (lb->sched.mode == LB_SCHED_LC) {
    int c = load_cmp(LC_INFLIGHT(a->key), LC_WEIGHT(a->key), a->tie,
                     LC_INFLIGHT(b->key), LC_WEIGHT(b->key), b->tie);
    if (c != 0)
      return c < 0;
  } else if (a->key != b->key) {
    return a->key < b->key;
  }
  return a->idx < b->idx;
}

static void heap_put(lb_snap_t *s, uint32_t i, const lb_hent_t *e) {
  s->heap[i] = *e;
  s->pos[e->idx] = i;
}

/* A 4-ary heap: half the height of a binary one, and the four children of
 * a node share one cache line. */
#define LB_HEAP_ARITY 4
static void sift_up(msvc_lb_t *lb, uint32_t i) {
  lb_snap_t *s = lb->sched.snap;
  lb_hent_t e = s->heap[i];

  while (i > 0) {
    uint32_t parent = (i - 1) / LB_HEAP_ARITY;

    if (!heap_less(lb, &e, &s->heap[parent]))
      break;
    heap_put(s, i, &s->heap[parent]);
    i = parent;
  }
  heap_put(s, i, &e);
}

static void sift_down(msvc_lb_t *lb, uint32_t i) {
  lb_snap_t *s = lb->sched.snap;
  lb_hent_t e = s->heap[i];
  uint32_t n = lb->sched.nheap;

  for (;;) {
    uint32_t first = LB_HEAP_ARITY * i + 1, c, best;

    if (first >= n)
      break;
    best = first;
    for (c = first + 1; c < first + LB_HEAP_ARITY && c < n; c++)
      if (heap_less(lb, &s->heap[c], &s->heap[best]))
        best = c;
    if (!heap_less(lb, &s->heap[best], &e))
      break;
    heap_put(s, i, &s->heap[best]);
    i = best;
  }
  heap_put(s, i, &e);
}

static void heapify(msvc_lb_t *lb) {
  uint32_t i = lb->sched.nheap / 2;

  while (i-- > 0)
    sift_down(lb, i);
}

static uint64_t edf_period(msvc_lb_t *lb, lb_ep_t *ep, uint64_t now_ms) {
  return LB_EDF_SCALE / msvc__lb_eff(lb, ep, now_ms);
}

static void heap_append(lb_snap_t *s, uint32_t *n, const lb_hent_t *e) {
  heap_put(s, (*n)++, e);
}

/* Deadline, then index; bitwise so that the compiler can pick without a
 * branch (which way a heap comparison goes is not predictable). */
static inline bool edf_less(const lb_hent_t *a, const lb_hent_t *b) {
  return (a->key < b->key) | ((a->key == b->key) & (a->idx < b->idx));
}

/* sift_down() for EDF, which keeps no positions */
static void edf_sift_down(lb_snap_t *s, uint32_t i, uint32_t n) {
  lb_hent_t e = s->heap[i];

  for (;;) {
    uint32_t first = LB_HEAP_ARITY * i + 1, c, best;

    if (first >= n)
      break;
    best = first;
    for (c = first + 1; c < first + LB_HEAP_ARITY && c < n; c++)
      best = edf_less(&s->heap[c], &s->heap[best]) ? c : best;
    if (!edf_less(&s->heap[best], &e))
      break;
    s->heap[i] = s->heap[best];
    i = best;
  }
  s->heap[i] = e;
}

/* Sorts eps[] into groups of one weight (a ramping endpoint alone), each
 * in list order, in O(n) with no allocation, and puts one heap entry per
 * group: deadline half a period in, the group's first member next. */
static void edf_group(msvc_lb_t *lb, lb_snap_t *s, uint64_t now_ms) {
  uint32_t by_weight[MSVC_LB_MAX_WEIGHT + 1];
  uint32_t ng = 0, i, g;

  memset(by_weight, 0xff, sizeof(by_weight));
  for (i = 0; i < s->n; i++) {
    lb_ep_t *ep = s->eps[i];
    uint32_t w = atomic_load_explicit(&ep->weight, memory_order_relaxed);
    bool ramp = msvc__lb_ramping(lb, ep, now_ms);

    g = ramp || w > MSVC_LB_MAX_WEIGHT ? UINT32_MAX : by_weight[w];
    if (g == UINT32_MAX) {
      g = ng++;
      s->grp[g] = (lb_grp_t){edf_period(lb, ep, now_ms), 0, 0, 0, ramp};
      if (!ramp && w <= MSVC_LB_MAX_WEIGHT)
        by_weight[w] = g;
    }
    s->grp[g].end++; /* a count, until the offsets below */
    s->heap[i].tie = g; /* scratch: the heap is filled last */
  }
  for (i = 0, g = 0; g < ng; g++) {
    uint32_t count = s->grp[g].end;

    s->grp[g].first = s->grp[g].cur = i;
    i += count;
    s->grp[g].end = i;
  }
  for (i = 0; i < s->n; i++)
    s->members[s->grp[s->heap[i].tie].cur++] = i;
  for (g = 0; g < ng; g++) {
    lb_grp_t *gr = &s->grp[g];
    lb_hent_t e = {gr->period / 2, g, s->members[gr->first]};

    gr->cur = gr->first;
    s->heap[g] = e;
  }
  lb->sched.nheap = ng;
}

void msvc__lb_sched_install(msvc_lb_t *lb, lb_snap_t *s, uint64_t now_ms) {
  lb_sched_t *sc = &lb->sched;
  uint32_t i;

  for (i = 0; sc->snap != NULL && i < sc->snap->n; i++)
    sc->snap->eps[i]->sidx = LB_NO_POS;
  sc->snap = s;
  sc->nheap = 0;
  sc->vt = 0;
  for (i = 0; i < s->n; i++) {
    s->eps[i]->sidx = i;
    s->pos[i] = LB_NO_POS;
  }
  if (lb->opts.policy == MSVC_LB_LEAST_CONN) {
    uint32_t nramp = 0;

    sc->mode = LB_SCHED_LC;
    for (i = 0; i < s->n; i++) {
      lb_ep_t *ep = s->eps[i];
      lb_hent_t e = {inflight_of(ep) * LC_ONE +
                         atomic_load_explicit(&ep->weight, memory_order_relaxed),
                     ep->last_pick, i};

      if (msvc__lb_ramping(lb, ep, now_ms))
        s->ramp[nramp++] = ep;
      else
        heap_append(s, &sc->nheap, &e);
    }
    s->nramp = nramp;
    heapify(lb);
  } else if (lb->opts.policy == MSVC_LB_P2C || s->uniform) {
    sc->mode = LB_SCHED_NONE;
  } else if (s->n <= LB_SWRR_MAX) {
    sc->mode = LB_SCHED_SWRR;
  } else {
    sc->mode = LB_SCHED_EDF;
    edf_group(lb, s, now_ms);
    for (i = sc->nheap / 2; i-- > 0;)
      edf_sift_down(s, i, sc->nheap);
  }
}

static lb_ep_t *swrr_pick(msvc_lb_t *lb, uint64_t now_ms) {
  lb_snap_t *s = lb->sched.snap;
  lb_ep_t *best = NULL;
  int64_t total = 0;
  uint32_t i;

  for (i = 0; i < s->n; i++) {
    lb_ep_t *ep = s->eps[i];
    int64_t w = (int64_t)msvc__lb_eff(lb, ep, now_ms);

    ep->swrr_current += w;
    total += w;
    if (best == NULL || ep->swrr_current > best->swrr_current)
      best = ep;
  }
  best->swrr_current -= total;
  return best;
}

static void edf_rebase(msvc_lb_t *lb) {
  lb_snap_t *s = lb->sched.snap;
  uint64_t base = s->heap[0].key;
  uint32_t i;

  /* order is preserved: every deadline is at least the smallest */
  for (i = 0; i < lb->sched.nheap; i++)
    s->heap[i].key -= base;
  lb->sched.vt -= base;
}

/* The top group's next member is due; the group's deadline moves on by a
 * period once all its members had their turn. Periods of groups that do not
 * ramp were worked out at install: a pick reads no endpoint record and
 * divides nothing. */
static lb_ep_t *edf_pick(msvc_lb_t *lb, uint64_t now_ms) {
  lb_snap_t *s = lb->sched.snap;
  lb_hent_t *top = &s->heap[0];
  lb_grp_t *g = &s->grp[top->tie];
  lb_ep_t *ep = s->eps[top->idx];

  lb->sched.vt = top->key;
  if (++g->cur == g->end) {
    g->cur = g->first;
    top->key += g->ramp ? edf_period(lb, ep, now_ms) : g->period;
  }
  top->idx = s->members[g->cur];
  edf_sift_down(s, 0, lb->sched.nheap);
  if (MSVC__UNLIKELY(lb->sched.vt > LB_EDF_REBASE))
    edf_rebase(lb);
  return ep;
}

static lb_ep_t *lc_pick(msvc_lb_t *lb, uint64_t now_ms) {
  lb_snap_t *s = lb->sched.snap;
  lb_ep_t *best = NULL;
  uint64_t bi = 0, be = 0;
  uint32_t i, bt = 0;

  if (lb->sched.nheap > 0) {
    best = s->eps[s->heap[0].idx];
    bi = LC_INFLIGHT(s->heap[0].key);
    be = LC_WEIGHT(s->heap[0].key) * 1000;
    bt = s->heap[0].tie;
  }
  for (i = 0; i < s->nramp; i++) {
    lb_ep_t *ep = s->ramp[i];
    uint64_t e = msvc__lb_eff(lb, ep, now_ms), in = inflight_of(ep);

    if (best == NULL || load_cmp(in, e, ep->last_pick, bi, be, bt) < 0) {
      best = ep;
      bi = in;
      be = e;
      bt = ep->last_pick;
    }
  }
  count_pick_locked(best);
  best->last_pick = ++lb->sched.seq;
  if (s->pos[best->sidx] != LB_NO_POS) {
    uint32_t p = s->pos[best->sidx];

    s->heap[p].key += LC_ONE;
    s->heap[p].tie = best->last_pick;
    sift_down(lb, p);
  }
  return best;
}

/* Locked policies; the pick is counted under the lock, so least_conn's heap
 * always orders by the counts it sees. */
static lb_ep_t *sched_pick(msvc_lb_t *lb, uint64_t now_ms) {
  lb_ep_t *ep = NULL;

  msvc__lb_lock(lb);
  if (lb->sched.snap->n > 0) {
    switch (lb->sched.mode) {
    case LB_SCHED_LC:
      ep = lc_pick(lb, now_ms);
      break;
    case LB_SCHED_SWRR:
      ep = swrr_pick(lb, now_ms);
      count_pick(ep);
      break;
    case LB_SCHED_EDF:
      ep = edf_pick(lb, now_ms);
      count_pick(ep);
      break;
    default: /* the set turned uniform since the caller looked */
      ep = lb->sched.snap->eps[lb->sched.seq++ % lb->sched.snap->n];
      count_pick(ep);
      break;
    }
  }
  msvc__lb_unlock(lb);
  return ep;
}

static lb_ep_t *p2c_pick(msvc_lb_t *lb, const lb_snap_t *s, uint64_t now_ms) {
  lb_ep_t *a, *b;
  uint64_t i, j, ea, eb;

  if (s->n == 1) {
    a = s->eps[0];
  } else {
    /* without replacement: with two endpoints the lighter always wins */
    i = msvc__rand_below(s->n);
    j = msvc__rand_below(s->n - 1);
    j += j >= i;
    a = s->eps[i];
    b = s->eps[j];
    if (s->nramp == 0) {
      ea = atomic_load_explicit(&a->weight, memory_order_relaxed);
      eb = atomic_load_explicit(&b->weight, memory_order_relaxed);
    } else {
      ea = msvc__lb_eff(lb, a, now_ms);
      eb = msvc__lb_eff(lb, b, now_ms);
    }
    if (inflight_of(b) * ea < inflight_of(a) * eb)
      a = b;
  }
  count_pick(a);
  return a;
}

/* Lock-free policies, on the snapshot pinned for the duration. NULL with
 * *locked set when the set needs the scheduler (weighted round-robin). */
static lb_ep_t *pinned_pick(msvc_lb_t *lb, uint64_t now_ms, bool *locked) {
  lb_shard_t *sh;
  unsigned e = msvc__lb_pin(lb, &sh);
  const lb_snap_t *s = atomic_load(&lb->snap);
  lb_ep_t *ep = NULL;

  if (s->n == 0) {
    /* no endpoints */
  } else if (lb->opts.policy == MSVC_LB_P2C) {
    ep = p2c_pick(lb, s, now_ms);
  } else if (s->uniform) {
    /* no read-modify-write: threads that share a shard may now and then
     * take the same turn, which costs evenness nothing measurable */
    uint32_t c = atomic_load_explicit(&sh->cursor, memory_order_relaxed);
    atomic_store_explicit(&sh->cursor, c + 1, memory_order_relaxed);
    ep = s->eps[c % s->n];
    count_pick(ep);
  } else {
    *locked = true;
  }
  msvc__lb_unpin(sh, e);
  return ep;
}

/* Takes one in-flight request off ep; false when it had none (the ticket was
 * a duplicate). A CAS rather than a plain subtraction so that a bad ticket
 * never makes the count visibly wrong, even for a moment. */
static bool drop_inflight(lb_ep_t *ep) {
  uint64_t pc = atomic_load_explicit(&ep->pc, memory_order_relaxed);

  do {
    if ((pc & LB_INFL_MASK) == 0)
      return false;
  } while (!atomic_compare_exchange_weak_explicit(
      &ep->pc, &pc, pc - 1, memory_order_release, memory_order_relaxed));
  return true;
}

static bool release(msvc_lb_t *lb, lb_ep_t *ep) {
  uint64_t pc;
  bool ok;

  if (lb->opts.policy != MSVC_LB_LEAST_CONN)
    return drop_inflight(ep);
  msvc__lb_lock(lb);
  pc = atomic_load_explicit(&ep->pc, memory_order_relaxed);
  ok = (pc & LB_INFL_MASK) != 0;
  if (ok)
    atomic_store_explicit(&ep->pc, pc - 1, memory_order_release);
  if (ok && lb->sched.mode == LB_SCHED_LC && ep->sidx != LB_NO_POS &&
      lb->sched.snap->pos[ep->sidx] != LB_NO_POS) {
    uint32_t p = lb->sched.snap->pos[ep->sidx];

    lb->sched.snap->heap[p].key -= LC_ONE;
    sift_up(lb, p);
  }
  msvc__lb_unlock(lb);
  return ok;
}

int msvc_lb_pick(msvc_lb_t *lb, uint64_t now_ms, msvc_lb_ticket_t *ticket) {
  bool locked = lb != NULL && lb->opts.policy == MSVC_LB_LEAST_CONN;
  lb_ep_t *ep = NULL;

  if (lb == NULL || ticket == NULL)
    return MSVC_EINVAL;
  if (MSVC__UNLIKELY(now_ms >= atomic_load_explicit(&lb->valid_until,
                                                    memory_order_relaxed)))
    msvc__lb_refresh(lb, now_ms);
  if (!locked)
    ep = pinned_pick(lb, now_ms, &locked);
  if (locked)
    ep = sched_pick(lb, now_ms);
  if (ep == NULL)
    return MSVC_ENO_ENDPOINTS;
  /* ep cannot be recycled before this ticket is back: it is in flight */
  ticket->endpoint = ep->id;
  ticket->slot_ = ep->slot;
  ticket->gen_ = atomic_load_explicit(&ep->gen, memory_order_relaxed);
  ticket->serial_ = 0;
  if (lb->track) {
    ticket->serial_ = atomic_fetch_add(&lb->serial, 1);
    if (msvc__lb_track_add(&lb->tracker, ticket->serial_) != MSVC_OK) {
      (void)release(lb, ep);
      return MSVC_ENOMEM;
    }
  }
  return MSVC_OK;
}

static void record_outcome(lb_ep_t *ep, msvc_lb_outcome_t outcome,
                           uint64_t latency_us) {
  uint64_t avg = atomic_load_explicit(&ep->latency_ewma_us, memory_order_relaxed);

  if (outcome == MSVC_LB_FAILURE)
    atomic_fetch_add_explicit(&ep->failures, 1, memory_order_relaxed);
  /* a lost update between two threads only skews a moving average */
  avg = avg == 0 ? latency_us : avg - avg / 8 + latency_us / 8;
  atomic_store_explicit(&ep->latency_ewma_us, avg, memory_order_relaxed);
}

int msvc_lb_done(msvc_lb_t *lb, const msvc_lb_ticket_t *ticket,
                 msvc_lb_outcome_t outcome, uint64_t latency_us) {
  lb_ep_t *ep;

  if (lb == NULL || ticket == NULL ||
      (outcome != MSVC_LB_SUCCESS && outcome != MSVC_LB_FAILURE))
    return MSVC_EINVAL;
  ep = msvc__lb_slot(lb, ticket->slot_);
  if (ep == NULL ||
      atomic_load_explicit(&ep->gen, memory_order_acquire) != ticket->gen_ ||
      inflight_of(ep) == 0)
    return MSVC_ETICKET;
  if (lb->track && !msvc__lb_track_remove(&lb->tracker, ticket->serial_))
    return MSVC_ETICKET;
  /* statistics first: once the count drops the slot may be recycled */
  record_outcome(ep, outcome, latency_us);
  if (!release(lb, ep))
    return MSVC_ETICKET;
  return MSVC_OK;
}
