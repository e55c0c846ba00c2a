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
 * - least-connection picks the lowest in-flight / weight, ties going to the
 *   endpoint whose count changed longest ago (picked or released), so equal
 *   endpoints take turns. Endpoints of one weight (a class) with the same
 *   count form a queue (a level), in that order: a pick takes the head of
 *   a level and appends it to the level one count up, a release to the
 *   level one count down, both O(1) since a class keeps its levels in a
 *   list by count. A heap holds one entry per class, for the head of its
 *   lowest level, ordered by load then by that endpoint's sequence number:
 *   O(log w) for w distinct weights, whatever the number of endpoints.
 *   Endpoints in their slow-start ramp change weight with time, so they
 *   stay in a short side list compared on every pick and join their class
 *   when their ramp ends (the snapshot is rebuilt then).
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

/* A least_conn heap key: in flight << 32 | class << 12 | weight. */
#define LC_ONE (UINT64_C(1) << 32) /* one request in flight, in a heap key */
#define LC_CLASS_SHIFT 12
#define LC_WEIGHT(key) ((key) & ((1u << LC_CLASS_SHIFT) - 1))
#define LC_CLASS(key) ((uint32_t)(key) >> LC_CLASS_SHIFT)
#define LC_INFLIGHT(key) ((key) >> 32)
_Static_assert(MSVC_LB_MAX_WEIGHT < (1u << LC_CLASS_SHIFT),
               "a weight fits below the class in a heap key");

/* Load a/ea below load b/eb (in flight over effective weight), ties going
 * to the one whose count changed longest ago. Sequence numbers wrap, so
 * they are compared by difference. */
static int load_cmp(uint64_t ia, uint64_t ea, uint32_t ta, uint64_t ib,
                    uint64_t eb, uint32_t tb) {
  uint64_t l = ia * eb, r = ib * ea;

  if (l != r)
    return l < r ? -1 : 1;
  if (ta != tb)
    return (int32_t)(ta - tb) < 0 ? -1 : 1;
  return 0;
}

/* load_cmp() < 0 on two classes' entries, then the index; bitwise so that
 * the compiler can choose without a branch (which way a heap comparison
 * goes is not predictable). EDF has edf_less(). */
static inline bool heap_less(const msvc_lb_t *lb, const lb_hent_t *a,
                             const lb_hent_t *b) {
  uint64_t l = LC_INFLIGHT(a->key) * LC_WEIGHT(b->key);
  uint64_t r = LC_INFLIGHT(b->key) * LC_WEIGHT(a->key);
  int32_t d = (int32_t)(a->tie - b->tie);

  (void)lb;
  return (l < r) | ((l == r) & ((d < 0) | ((d == 0) & (a->idx < b->idx))));
}

static void heap_put(lb_snap_t *s, uint32_t i, const lb_hent_t *e) {
  s->heap[i] = *e;
  s->pos[LC_CLASS(e->key)] = i;
}

/* A 4-ary heap: half the height of a binary one, and the four children of
 * a node share one cache line. */
#define LB_HEAP_ARITY 4
/* Puts e, the new key of the entry at i, in its place. e comes by value:
 * reading back the entry just written would stall on the store. */
static void heap_fix(msvc_lb_t *lb, uint32_t i, lb_hent_t e) {
  lb_snap_t *s = lb->sched.snap;
  uint32_t n = lb->sched.nheap, at = i;

  while (i > 0) {
    uint32_t parent = (i - 1) / LB_HEAP_ARITY;

    if (!heap_less(lb, &e, &s->heap[parent]))
      break;
    heap_put(s, i, &s->heap[parent]);
    i = parent;
  }
  while (i == at) {
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
    i = at = best;
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

/* ---- least_conn's levels ------------------------------------------------ */

/* Stable sort of ord[0, n) by key[ord[k]], a byte at a time, skipping the
 * bytes all keys share; tmp is scratch of n. Returns the array holding the
 * result: ord or tmp. */
static uint32_t *radix_sort(uint32_t *ord, uint32_t *tmp, const uint32_t *key,
                            uint32_t n) {
  unsigned shift;

  for (shift = 0; n > 0 && shift < 32; shift += 8) {
    uint32_t count[256] = {0}, k, sum = 0, *t;

    for (k = 0; k < n; k++)
      count[key[ord[k]] >> shift & 255]++;
    if (count[key[ord[0]] >> shift & 255] == n)
      continue;
    for (k = 0; k < 256; k++) {
      uint32_t c = count[k];

      count[k] = sum;
      sum += c;
    }
    for (k = 0; k < n; k++)
      tmp[count[key[ord[k]] >> shift & 255]++] = ord[k];
    t = ord;
    ord = tmp;
    tmp = t;
  }
  return ord;
}

static void lvl_append(lb_snap_t *s, uint32_t m, uint32_t i) {
  lb_lvl_t *l = &s->lvl[m];

  s->lnk[i] = (lb_lnk_t){l->tail, LB_NO_POS, m};
  if (l->tail != LB_NO_POS)
    s->lnk[l->tail].next = i;
  else
    l->head = i;
  l->tail = i;
}

/* A new, empty level of class c for count, linked between prev and next. */
static uint32_t lvl_new(lb_snap_t *s, uint32_t c, uint32_t count,
                        uint32_t prev, uint32_t next) {
  uint32_t m = s->lvl_free;

  s->lvl_free = s->lvl[m].next;
  s->lvl[m] = (lb_lvl_t){count, c, LB_NO_POS, LB_NO_POS, prev, next};
  if (prev != LB_NO_POS)
    s->lvl[prev].next = m;
  else
    s->cls[c].first = m;
  if (next != LB_NO_POS)
    s->lvl[next].prev = m;
  else
    s->cls[c].last = m;
  return m;
}

/* The heap entry of class c after its first level changed. */
static void cls_rekey(msvc_lb_t *lb, uint32_t c) {
  lb_snap_t *s = lb->sched.snap;
  const lb_lvl_t *f = &s->lvl[s->cls[c].first];
  lb_hent_t e = {f->count * LC_ONE + (c << LC_CLASS_SHIFT) + s->cls[c].weight,
                 s->eps[f->head]->last_pick, f->head};

  heap_fix(lb, s->pos[c], e);
}

/* eps[i] went one count up or down: from the head (pick) or anywhere
 * (release) of its level to the end of the neighbouring one. */
static void lc_move(msvc_lb_t *lb, uint32_t i, bool up) {
  lb_snap_t *s = lb->sched.snap;
  lb_lnk_t k = s->lnk[i];
  uint32_t m = k.lvl, c = s->lvl[m].cls, to;
  uint32_t count = up ? s->lvl[m].count + 1 : s->lvl[m].count - 1;

  to = up ? s->lvl[m].next : s->lvl[m].prev;
  if ((to == LB_NO_POS || s->lvl[to].count != count) && k.prev == LB_NO_POS &&
      k.next == LB_NO_POS) {
    /* alone at its level, with no level next to it: the level moves */
    s->lvl[m].count = count;
    cls_rekey(lb, c);
    return;
  }
  if (to == LB_NO_POS || s->lvl[to].count != count)
    to = up ? lvl_new(s, c, count, m, s->lvl[m].next)
            : lvl_new(s, c, count, s->lvl[m].prev, m);
  if (k.prev != LB_NO_POS)
    s->lnk[k.prev].next = k.next;
  else
    s->lvl[m].head = k.next;
  if (k.next != LB_NO_POS)
    s->lnk[k.next].prev = k.prev;
  else
    s->lvl[m].tail = k.prev;
  lvl_append(s, to, i);
  if (s->lvl[m].head == LB_NO_POS) {
    lb_lvl_t *l = &s->lvl[m];

    if (l->prev != LB_NO_POS)
      s->lvl[l->prev].next = l->next;
    else
      s->cls[c].first = l->next;
    if (l->next != LB_NO_POS)
      s->lvl[l->next].prev = l->prev;
    else
      s->cls[c].last = l->prev;
    l->next = s->lvl_free;
    s->lvl_free = m;
  }
  cls_rekey(lb, c);
}

/* Sorts the eligible endpoints into classes and levels. The order of the
 * last changes is kept: endpoints are sorted by it, given fresh sequence
 * numbers in that order (so that no two are equal), then sorted by count
 * (stable), and appended in that order. O(n), scratch in the heap's
 * storage, which takes the classes' entries last. */
static void lc_build(msvc_lb_t *lb, lb_snap_t *s, uint64_t now_ms) {
  lb_sched_t *sc = &lb->sched;
  uint32_t n = s->n, *ord = (uint32_t *)(void *)s->heap, *tmp = ord + n;
  uint32_t *age = tmp + n, *cnt = age + n, *o;
  uint32_t by_weight[MSVC_LB_MAX_WEIGHT + 1];
  uint32_t ncls = 0, nramp = 0, i, j, c;

  for (i = 0; i < n; i++) {
    ord[i] = i;
    /* oldest first: the largest age, the smallest key */
    age[i] = UINT32_MAX - (sc->seq - s->eps[i]->last_pick);
    cnt[i] = (uint32_t)inflight_of(s->eps[i]);
  }
  o = radix_sort(ord, tmp, age, n);
  for (j = 0; j < n; j++)
    s->eps[o[j]]->last_pick = sc->seq - n + 1 + j;
  o = radix_sort(o, o == ord ? tmp : ord, cnt, n);
  for (i = 0; i <= n; i++)
    s->lvl[i].next = i < n ? i + 1 : LB_NO_POS;
  s->lvl_free = 0;
  memset(by_weight, 0xff, sizeof(by_weight));
  for (j = 0; j < n; j++) {
    lb_ep_t *ep;
    uint32_t w, m;

    i = o[j];
    ep = s->eps[i];
    if (msvc__lb_ramping(lb, ep, now_ms)) {
      s->lnk[i].lvl = LB_NO_POS;
      s->ramp[nramp++] = ep;
      continue;
    }
    w = atomic_load_explicit(&ep->weight, memory_order_relaxed);
    c = by_weight[w];
    if (c == UINT32_MAX) {
      c = by_weight[w] = ncls++;
      s->cls[c] = (lb_cls_t){w, LB_NO_POS, LB_NO_POS};
    }
    m = s->cls[c].last;
    if (m == LB_NO_POS || s->lvl[m].count != cnt[i])
      m = lvl_new(s, c, cnt[i], m, LB_NO_POS);
    lvl_append(s, m, i);
  }
  s->nramp = nramp;
  sc->nheap = 0;
  for (c = 0; c < ncls; c++) {
    const lb_lvl_t *f = &s->lvl[s->cls[c].first];
    lb_hent_t e = {f->count * LC_ONE + (c << LC_CLASS_SHIFT) +
                       s->cls[c].weight,
                   s->eps[f->head]->last_pick, f->head};

    heap_append(s, &sc->nheap, &e);
  }
  heapify(lb);
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
    sc->mode = LB_SCHED_LC;
    lc_build(lb, s, now_ms);
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
    const lb_hent_t *top = &s->heap[0];

    best = s->eps[top->idx];
    bi = LC_INFLIGHT(top->key);
    be = LC_WEIGHT(top->key) * 1000;
    bt = top->tie;
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
  if (s->lnk[best->sidx].lvl != LB_NO_POS)
    lc_move(lb, best->sidx, true);
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
  if (ok && lb->sched.mode == LB_SCHED_LC && ep->sidx != LB_NO_POS) {
    ep->last_pick = ++lb->sched.seq;
    if (lb->sched.snap->lnk[ep->sidx].lvl != LB_NO_POS)
      lc_move(lb, ep->sidx, false);
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
