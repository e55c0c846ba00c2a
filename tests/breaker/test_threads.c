/*
 * Two threads on one breaker: the half-open probe limit holds, transitions
 * are delivered as one ordered chain, and no outcome is lost.
 *
 * Workers never call cr_assert_*: a failing assertion leaves the test by a
 * longjmp, which from a thread other than the test's is undefined. They
 * count what went wrong and the test thread asserts after the join. What a
 * test claims does not depend on how the scheduler interleaves the threads:
 * anything that needs the threads to overlap is arranged in lockstep.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/breaker.h>
#include <msvc/error.h>

#define PERMITTED 3
#define LOCKSTEP_ROUNDS 300
#define MIN_HALF_OPENS 10
/* Permits a chaos worker holds at once; two workers, so at most this many
 * times two HALF_OPEN generations have probes out at any moment. */
#define CHAOS_HELD 2
#define LIVE_GENS (2 * CHAOS_HELD)

typedef struct live_gen_s {
  uint64_t gen;
  int probes;
} live_gen_t;

typedef struct shared_s {
  msvc_breaker_t *b;
  atomic_int in_flight;
  atomic_int max_in_flight;
  atomic_int probes[2];
  atomic_int errors;
  atomic_int step;
  atomic_ullong clock;
  /* HALF_OPEN probes out, per generation (chaos test) */
  pthread_mutex_t gen_mu;
  live_gen_t live[LIVE_GENS];
  int worst_per_gen;
  int iterations;
} shared_t;

static void note_max(atomic_int *max, int v) {
  int cur = atomic_load(max);

  while (v > cur && !atomic_compare_exchange_weak(max, &cur, v))
    ;
}

/* Holds the probe for a moment so that the other thread really does try
 * while it is out. */
static void busy(int n) {
  static _Thread_local volatile unsigned sink;
  int i;

  for (i = 0; i < n; i++)
    sink = sink + (unsigned)i;
}

typedef struct worker_s {
  shared_t *sh;
  int id;
} worker_t;

/* Asks for up to `want` probes; returns how many were granted. */
static int take(worker_t *w, msvc_breaker_permit_t *p, int want) {
  shared_t *sh = w->sh;
  int k, got = 0;

  for (k = 0; k < want; k++) {
    if (msvc_breaker_acquire(sh->b, 1, &p[got]) != MSVC_OK)
      continue;
    note_max(&sh->max_in_flight, atomic_fetch_add(&sh->in_flight, 1) + 1);
    atomic_fetch_add(&sh->probes[w->id], 1);
    got++;
  }
  return got;
}

static void give_back(worker_t *w, msvc_breaker_permit_t *p, int got) {
  shared_t *sh = w->sh;
  int k;

  for (k = 0; k < got; k++) {
    atomic_fetch_sub(&sh->in_flight, 1);
    if (msvc_breaker_record(sh->b, &p[k], MSVC_BREAKER_IGNORED, 0, 1) !=
        MSVC_OK)
      atomic_fetch_add(&sh->errors, 1);
  }
}

static void wait_step(shared_t *sh, int step) {
  while (atomic_load(&sh->step) != step)
    sched_yield();
}

/* Rounds in lockstep: one thread holds 1..PERMITTED probes while the other
 * asks for the whole limit and must get exactly the rest. The limit is met
 * across threads in every round, whatever the scheduler does. */
static void lockstep(worker_t *w) {
  shared_t *sh = w->sh;
  int r;

  for (r = 0; r < LOCKSTEP_ROUNDS; r++) {
    msvc_breaker_permit_t p[PERMITTED];
    int held = 1 + r % PERMITTED;
    int got;

    if (w->id == r % 2) {
      wait_step(sh, 3 * r);
      got = take(w, p, held);
      if (got != held)
        atomic_fetch_add(&sh->errors, 1);
      atomic_store(&sh->step, 3 * r + 1);
      wait_step(sh, 3 * r + 2);
      give_back(w, p, got);
      atomic_store(&sh->step, 3 * r + 3);
    } else {
      wait_step(sh, 3 * r + 1);
      got = take(w, p, PERMITTED);
      if (got != PERMITTED - held)
        atomic_fetch_add(&sh->errors, 1);
      give_back(w, p, got);
      atomic_store(&sh->step, 3 * r + 2);
    }
  }
}

/* Then free running: each thread grabs as many probes as it can before
 * returning any, so the two together ask for twice the limit. */
static void *probe_worker(void *arg) {
  worker_t *w = arg;
  int i;

  lockstep(w);
  for (i = 0; i < w->sh->iterations; i++) {
    msvc_breaker_permit_t p[PERMITTED];
    int got = take(w, p, PERMITTED);

    busy(200);
    give_back(w, p, got);
  }
  return NULL;
}

Test(breaker_threads, half_open_never_exceeds_permitted_probes,
     .timeout = 60) {
  msvc_breaker_opts_t o;
  shared_t sh;
  pthread_t t[2];
  worker_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  sh.iterations = 200000;
  msvc_breaker_opts_init(&o);
  o.permitted_calls_in_half_open = PERMITTED;
  o.max_wait_in_half_open_ms = 0;
  cr_assert_eq(msvc_breaker_new(&o, &sh.b), MSVC_OK);
  cr_assert_eq(msvc_breaker_transition(sh.b, MSVC_BREAKER_HALF_OPEN, 1),
               MSVC_OK);
  for (i = 0; i < 2; i++) {
    w[i].sh = &sh;
    w[i].id = i;
    cr_assert_eq(pthread_create(&t[i], NULL, probe_worker, &w[i]), 0);
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_join(t[i], NULL), 0);
  cr_assert_eq(atomic_load(&sh.errors), 0,
               "%d lockstep rounds or records went wrong",
               atomic_load(&sh.errors));
  cr_assert_leq(atomic_load(&sh.max_in_flight), PERMITTED,
                "%d probes were in flight at once",
                atomic_load(&sh.max_in_flight));
  /* ... and the limit itself was reached, so it was really tested. */
  cr_assert_eq(atomic_load(&sh.max_in_flight), PERMITTED);
  cr_assert_gt(atomic_load(&sh.probes[0]), 0);
  cr_assert_gt(atomic_load(&sh.probes[1]), 0);
  cr_assert_eq(msvc_breaker_state(sh.b), MSVC_BREAKER_HALF_OPEN);
  msvc_breaker_free(sh.b);
}

/* Chaos: both threads make calls with mixed outcomes while a shared clock
 * moves, so the breaker cycles through every state. Probes of one HALF_OPEN
 * episode are counted by the generation carried in their permit. */
typedef struct chain_s {
  pthread_mutex_t mu;
  msvc_breaker_state_t last_to;
  int transitions;
  int broken_links;
  atomic_int half_opens;
} chain_t;

typedef struct chaos_s {
  worker_t w;
  chain_t *chain;
} chaos_t;

static void on_chain(void *data, msvc_breaker_t *b, msvc_breaker_state_t from,
                     msvc_breaker_state_t to, msvc_breaker_reason_t reason,
                     uint64_t now_ms) {
  chain_t *c = data;

  (void)b;
  (void)reason;
  (void)now_ms;
  pthread_mutex_lock(&c->mu);
  if (from != c->last_to)
    c->broken_links++;
  c->last_to = to;
  c->transitions++;
  if (to == MSVC_BREAKER_HALF_OPEN)
    atomic_fetch_add(&c->half_opens, 1);
  pthread_mutex_unlock(&c->mu);
}

/* Counts a HALF_OPEN probe of the permit's generation in (delta 1) or out
 * (delta -1). Generations are told apart exactly, however many there were:
 * a thread preempted while holding a probe must not see its count merged
 * with that of a much later episode. */
static void hold_probe(shared_t *sh, const msvc_breaker_permit_t *p,
                       int delta) {
  /* The permit's state and generation; see breaker.c. */
  uint64_t gen = p->token >> 4;
  live_gen_t *slot = NULL;
  int i;

  if ((p->token & 15u) != MSVC_BREAKER_HALF_OPEN)
    return;
  pthread_mutex_lock(&sh->gen_mu);
  for (i = 0; i < LIVE_GENS; i++) {
    if (sh->live[i].probes > 0 && sh->live[i].gen == gen) {
      slot = &sh->live[i];
      break;
    }
    if (slot == NULL && sh->live[i].probes == 0)
      slot = &sh->live[i];
  }
  if (slot == NULL || (delta < 0 && (slot->probes == 0 || slot->gen != gen))) {
    atomic_fetch_add(&sh->errors, 1);
  } else {
    slot->gen = gen;
    slot->probes += delta;
    if (slot->probes > sh->worst_per_gen)
      sh->worst_per_gen = slot->probes;
  }
  pthread_mutex_unlock(&sh->gen_mu);
}

/* Runs at least `iterations` rounds, and on until the breaker has been
 * half-open often enough for the test to mean something: how many
 * episodes a fixed number of rounds yields depends on the interleaving. */
static void *chaos_worker(void *arg) {
  chaos_t *cw = arg;
  shared_t *sh = cw->w.sh;
  uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(cw->w.id + 1);
  int i, k;

  for (i = 0; i < sh->iterations ||
              atomic_load(&cw->chain->half_opens) <= MIN_HALF_OPENS;
       i++) {
    msvc_breaker_permit_t p[CHAOS_HELD];
    msvc_breaker_outcome_t out[CHAOS_HELD];
    uint64_t now = atomic_fetch_add(&sh->clock, 1);
    int got = 0;

    for (k = 0; k < CHAOS_HELD; k++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      out[got] = (seed >> 33) % 3 == 0 ? MSVC_BREAKER_SUCCESS
                                       : MSVC_BREAKER_FAILURE;
      if ((seed >> 40) % 7 == 0)
        out[got] = MSVC_BREAKER_IGNORED;
      if (msvc_breaker_acquire(sh->b, now, &p[got]) != MSVC_OK)
        continue;
      hold_probe(sh, &p[got], 1);
      got++;
    }
    busy(100);
    for (k = 0; k < got; k++) {
      hold_probe(sh, &p[k], -1);
      if (msvc_breaker_record(sh->b, &p[k], out[k], 0, now) != MSVC_OK)
        atomic_fetch_add(&sh->errors, 1);
    }
  }
  return NULL;
}

Test(breaker_threads, chaos_keeps_probe_limit_and_ordered_events,
     .timeout = 60) {
  msvc_breaker_opts_t o;
  shared_t sh;
  chain_t chain;
  pthread_t t[2];
  chaos_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  memset(&chain, 0, sizeof(chain));
  pthread_mutex_init(&sh.gen_mu, NULL);
  pthread_mutex_init(&chain.mu, NULL);
  chain.last_to = MSVC_BREAKER_CLOSED;
  sh.iterations = 200000;
  msvc_breaker_opts_init(&o);
  o.window_type = MSVC_BREAKER_WINDOW_COUNT;
  o.window_calls = 20;
  o.minimum_calls = 10;
  o.failure_rate_threshold = 70;
  o.wait_in_open_ms = 50;
  o.wait_in_open_max_ms = 200;
  o.backoff_reset_ms = 1000;
  o.permitted_calls_in_half_open = PERMITTED;
  o.max_wait_in_half_open_ms = 100;
  o.on_transition = on_chain;
  o.on_transition_data = &chain;
  cr_assert_eq(msvc_breaker_new(&o, &sh.b), MSVC_OK);
  for (i = 0; i < 2; i++) {
    w[i].w.sh = &sh;
    w[i].w.id = i;
    w[i].chain = &chain;
    cr_assert_eq(pthread_create(&t[i], NULL, chaos_worker, &w[i]), 0);
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_join(t[i], NULL), 0);
  cr_assert_eq(atomic_load(&sh.errors), 0,
               "%d records failed or probes went uncounted",
               atomic_load(&sh.errors));
  cr_assert_leq(sh.worst_per_gen, PERMITTED,
                "%d probes of one episode were out at once",
                sh.worst_per_gen);
  cr_assert_gt(atomic_load(&chain.half_opens), MIN_HALF_OPENS,
               "only %d half-open episodes", atomic_load(&chain.half_opens));
  cr_assert_eq(chain.broken_links, 0, "events out of order");
  cr_assert_eq(chain.last_to, msvc_breaker_state(sh.b));
  msvc_breaker_free(sh.b);
  pthread_mutex_destroy(&chain.mu);
  pthread_mutex_destroy(&sh.gen_mu);
}

static void *count_worker(void *arg) {
  worker_t *w = arg;
  int i;

  for (i = 0; i < w->sh->iterations; i++) {
    msvc_breaker_permit_t p;

    if (msvc_breaker_acquire(w->sh->b, 5000, &p) != MSVC_OK ||
        msvc_breaker_record(w->sh->b, &p,
                            i % 2 ? MSVC_BREAKER_FAILURE
                                  : MSVC_BREAKER_SUCCESS,
                            0, 5000) != MSVC_OK)
      atomic_fetch_add(&w->sh->errors, 1);
  }
  return NULL;
}

static void no_outcome_lost(msvc_breaker_window_t type) {
  msvc_breaker_opts_t o;
  msvc_breaker_stats_t st;
  shared_t sh;
  pthread_t t[2];
  worker_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  sh.iterations = 50000;
  msvc_breaker_opts_init(&o);
  o.window_type = type;
  o.window_calls = 100000;
  cr_assert_eq(msvc_breaker_new(&o, &sh.b), MSVC_OK);
  cr_assert_eq(msvc_breaker_transition(sh.b, MSVC_BREAKER_DISABLED, 0),
               MSVC_OK);
  for (i = 0; i < 2; i++) {
    w[i].sh = &sh;
    w[i].id = i;
    cr_assert_eq(pthread_create(&t[i], NULL, count_worker, &w[i]), 0);
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_join(t[i], NULL), 0);
  cr_assert_eq(atomic_load(&sh.errors), 0);
  cr_assert_eq(msvc_breaker_stats(sh.b, 5000, &st), MSVC_OK);
  cr_assert_eq(st.calls, 100000);
  cr_assert_eq(st.failures, 50000);
  msvc_breaker_free(sh.b);
}

Test(breaker_threads, no_outcome_lost_time_window, .timeout = 60) {
  no_outcome_lost(MSVC_BREAKER_WINDOW_TIME);
}

Test(breaker_threads, no_outcome_lost_count_window, .timeout = 60) {
  no_outcome_lost(MSVC_BREAKER_WINDOW_COUNT);
}
