/*
 * Two threads on one breaker: the half-open probe limit holds, transitions
 * are delivered as one ordered chain, and no outcome is lost.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/breaker.h>
#include <msvc/error.h>

#define PERMITTED 3
#define GEN_SLOTS 4096

typedef struct shared_s {
  msvc_breaker_t *b;
  atomic_int in_flight;
  atomic_int max_in_flight;
  atomic_int probes[2];
  atomic_ullong clock;
  atomic_int per_gen[GEN_SLOTS];
  atomic_int worst_per_gen;
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

/* Each thread grabs as many probes as it can before returning any, so the
 * two together ask for twice the limit. */
static void *probe_worker(void *arg) {
  worker_t *w = arg;
  shared_t *sh = w->sh;
  int i, k;

  for (i = 0; i < sh->iterations; i++) {
    msvc_breaker_permit_t p[PERMITTED];
    int got = 0;

    for (k = 0; k < PERMITTED; k++) {
      if (msvc_breaker_acquire(sh->b, 1, &p[got]) != MSVC_OK)
        continue;
      note_max(&sh->max_in_flight, atomic_fetch_add(&sh->in_flight, 1) + 1);
      atomic_fetch_add(&sh->probes[w->id], 1);
      got++;
    }
    busy(200);
    for (k = 0; k < got; k++) {
      atomic_fetch_sub(&sh->in_flight, 1);
      cr_assert_eq(msvc_breaker_record(sh->b, &p[k], MSVC_BREAKER_IGNORED, 0,
                                       1),
                   MSVC_OK);
    }
  }
  return NULL;
}

Test(breaker_threads, half_open_never_exceeds_permitted_probes,
     .timeout = 60) {
  msvc_breaker_options_t o;
  shared_t sh;
  pthread_t t[2];
  worker_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  sh.iterations = 200000;
  msvc_breaker_options_init(&o);
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
    pthread_join(t[i], NULL);
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
  int half_opens;
} chain_t;

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
    c->half_opens++;
  pthread_mutex_unlock(&c->mu);
}

static void hold_probe(shared_t *sh, const msvc_breaker_permit_t *p,
                       int delta) {
  /* The permit's state and generation; see breaker.c. */
  unsigned slot;

  if ((p->token & 15u) != MSVC_BREAKER_HALF_OPEN)
    return;
  slot = (unsigned)((p->token >> 4) % GEN_SLOTS);
  note_max(&sh->worst_per_gen, atomic_fetch_add(&sh->per_gen[slot], delta) +
                                   delta);
}

static void *chaos_worker(void *arg) {
  worker_t *w = arg;
  shared_t *sh = w->sh;
  uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1);
  int i, k;

  for (i = 0; i < sh->iterations; i++) {
    msvc_breaker_permit_t p[2];
    msvc_breaker_outcome_t out[2];
    uint64_t now = atomic_fetch_add(&sh->clock, 1);
    int got = 0;

    for (k = 0; k < 2; k++) {
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
      cr_assert_eq(msvc_breaker_record(sh->b, &p[k], out[k], 0, now),
                   MSVC_OK);
    }
  }
  return NULL;
}

Test(breaker_threads, chaos_keeps_probe_limit_and_ordered_events,
     .timeout = 60) {
  msvc_breaker_options_t o;
  shared_t sh;
  chain_t chain;
  pthread_t t[2];
  worker_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  memset(&chain, 0, sizeof(chain));
  pthread_mutex_init(&chain.mu, NULL);
  chain.last_to = MSVC_BREAKER_CLOSED;
  sh.iterations = 200000;
  msvc_breaker_options_init(&o);
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
    w[i].sh = &sh;
    w[i].id = i;
    cr_assert_eq(pthread_create(&t[i], NULL, chaos_worker, &w[i]), 0);
  }
  for (i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  cr_assert_leq(atomic_load(&sh.worst_per_gen), PERMITTED);
  cr_assert_gt(chain.half_opens, 10, "only %d half-open episodes",
               chain.half_opens);
  cr_assert_eq(chain.broken_links, 0, "events out of order");
  cr_assert_eq(chain.last_to, msvc_breaker_state(sh.b));
  msvc_breaker_free(sh.b);
  pthread_mutex_destroy(&chain.mu);
}

static void *count_worker(void *arg) {
  worker_t *w = arg;
  int i;

  for (i = 0; i < w->sh->iterations; i++) {
    msvc_breaker_permit_t p;

    cr_assert_eq(msvc_breaker_acquire(w->sh->b, 5000, &p), MSVC_OK);
    cr_assert_eq(msvc_breaker_record(w->sh->b, &p,
                                     i % 2 ? MSVC_BREAKER_FAILURE
                                           : MSVC_BREAKER_SUCCESS,
                                     0, 5000),
                 MSVC_OK);
  }
  return NULL;
}

static void no_outcome_lost(msvc_breaker_window_t type) {
  msvc_breaker_options_t o;
  msvc_breaker_stats_t st;
  shared_t sh;
  pthread_t t[2];
  worker_t w[2];
  int i;

  memset(&sh, 0, sizeof(sh));
  sh.iterations = 50000;
  msvc_breaker_options_init(&o);
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
    pthread_join(t[i], NULL);
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
