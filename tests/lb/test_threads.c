/* Two threads for real: exact counts after millions of picks, and set
 * updates and exclusions racing with picks. */
#include <pthread.h>
#include <stdatomic.h>

#include "lb_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define LB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LB_SANITIZED 1
#endif
#endif

/* Ten million picks and releases in all; a tenth of that under the
 * sanitizers, which are ten to twenty times slower and would otherwise
 * outlast the test's time limit. Either way every count must be exact. */
#ifdef LB_SANITIZED
#define LB_TOTAL_OPS 1000000u
#else
#define LB_TOTAL_OPS 10000000u
#endif

#define WINDOW 8 /* tickets each thread keeps in flight */

typedef struct worker_s {
  msvc_lb_t *lb;
  uint64_t ops;
  /* keep going past ops until another thread did this many rounds */
  _Atomic uint64_t *rounds;
  uint64_t min_rounds;
  uint64_t errors;
  uint64_t picks;
} worker_t;

static void *work(void *arg) {
  worker_t *w = arg;
  msvc_lb_ticket_t ring[WINDOW];
  uint64_t i, held = 0;

  for (i = 0; i < w->ops || (w->rounds != NULL &&
                             atomic_load(w->rounds) < w->min_rounds);
       i++) {
    size_t slot = (size_t)(i % WINDOW);
    if (held == WINDOW) {
      w->errors += msvc_lb_done(w->lb, &ring[slot], MSVC_LB_SUCCESS, i & 1023) != MSVC_OK;
      held--;
    }
    if (msvc_lb_pick(w->lb, 1000 + i / 1000, &ring[slot]) == MSVC_OK) {
      held++;
      w->picks++;
    } else {
      w->errors++;
    }
  }
  for (; held > 0; i++, held--) {
    size_t slot = (size_t)(i % WINDOW);
    w->errors += msvc_lb_done(w->lb, &ring[slot], MSVC_LB_SUCCESS, 1) != MSVC_OK;
  }
  return NULL;
}

static void run_two(msvc_lb_t *lb, uint64_t total, worker_t w[2],
                    _Atomic uint64_t *rounds, uint64_t min_rounds) {
  pthread_t th[2];
  int i;

  for (i = 0; i < 2; i++) {
    w[i].lb = lb;
    w[i].ops = total / 2;
    w[i].rounds = rounds;
    w[i].min_rounds = min_rounds;
    w[i].errors = w[i].picks = 0;
    cr_assert_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_join(th[i], NULL), 0);
}

static void exact_counts(msvc_lb_policy_t policy, const uint32_t *weights,
                         size_t n) {
  static lbt_stats_t st;
  msvc_lb_t *lb = lbt_new(policy, 0, false);
  msvc_lb_status_t s;
  worker_t w[2];
  uint64_t picks = 0;
  size_t i;

  lbt_set(lb, weights, n, 0);
  run_two(lb, LB_TOTAL_OPS, w, NULL, 0);
  cr_assert_eq(w[0].errors + w[1].errors, 0);
  cr_assert_eq(w[0].picks + w[1].picks, LB_TOTAL_OPS);
  lbt_stats(lb, 0, &st);
  for (i = 0; i < st.n; i++) {
    cr_assert_eq(st.st[i].inflight, 0, "%s has %llu in flight", st.ids[i],
                 (unsigned long long)st.st[i].inflight);
    picks += st.st[i].picks;
  }
  cr_assert_eq(picks, LB_TOTAL_OPS);
  cr_assert_eq(msvc_lb_status(lb, 0, &s), MSVC_OK);
  cr_assert_eq(s.inflight, 0);
  msvc_lb_free(lb);
}

static const uint32_t equal8[8] = {1, 1, 1, 1, 1, 1, 1, 1};
static const uint32_t mixed8[8] = {5, 1, 1, 3, 2, 8, 1, 4};

Test(lb_threads, round_robin_exact, .timeout = 240) {
  exact_counts(MSVC_LB_ROUND_ROBIN, equal8, 8);
}
Test(lb_threads, weighted_round_robin_exact, .timeout = 240) {
  exact_counts(MSVC_LB_ROUND_ROBIN, mixed8, 8);
}
Test(lb_threads, least_conn_exact, .timeout = 240) {
  exact_counts(MSVC_LB_LEAST_CONN, mixed8, 8);
}
Test(lb_threads, p2c_exact, .timeout = 240) {
  exact_counts(MSVC_LB_P2C, mixed8, 8);
}

/* ---- updates racing with picks ------------------------------------------ */
typedef struct churn_s {
  msvc_lb_t *lb;
  atomic_bool stop;
  _Atomic uint64_t rounds;
  uint64_t errors;
} churn_t;

static void *churn(void *arg) {
  churn_t *c = arg;
  static const uint32_t w[40] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4,
                                 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8,
                                 9, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  msvc_lb_endpoint_t eps[40];
  char ids[40][32];
  uint64_t r = 0;
  size_t i;

  while (!atomic_load(&c->stop)) {
    /* sets of 3..40 endpoints drawn from 60 ids, overlapping from round to
     * round, crossing the 32-endpoint line between the two schedulers */
    size_t n = 3 + (size_t)(r * 7 % 38), base = (size_t)(r * 13 % 20);
    uint64_t now = 1000 + r;

    for (i = 0; i < n; i++) {
      snprintf(ids[i], sizeof(ids[i]), "10.1.0.%zu:80", base + i);
      eps[i].id = ids[i];
      eps[i].weight = w[i];
      eps[i].metadata = (r & 1) ? "odd" : "even";
    }
    c->errors += msvc_lb_update(c->lb, eps, n, now) != MSVC_OK;
    (void)msvc_lb_exclude(c->lb, ids[r % n], now + 3, now);
    if (r % 3 == 0)
      (void)msvc_lb_include(c->lb, ids[r % n], now + 1);
    r++;
    atomic_store(&c->rounds, r);
  }
  return NULL;
}

static void churn_with(msvc_lb_policy_t policy, bool track) {
  msvc_lb_opts_t o;
  msvc_lb_t *lb;
  msvc_lb_status_t s;
  churn_t c;
  pthread_t th;
  worker_t w[2];

  msvc_lb_opts_init(&o);
  o.policy = policy;
  o.track_tickets = track;
  o.slow_start_ms = 5;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_OK);
  lbt_set(lb, equal8, 8, 1000);
  c.lb = lb;
  atomic_init(&c.stop, false);
  atomic_init(&c.rounds, 0);
  c.errors = 0;
  cr_assert_eq(pthread_create(&th, NULL, churn, &c), 0);
  run_two(lb, LB_TOTAL_OPS / 10, w, &c.rounds, 200);
  atomic_store(&c.stop, true);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_geq(atomic_load(&c.rounds), 200);
  cr_assert_eq(c.errors, 0);
  cr_assert_eq(w[0].errors + w[1].errors, 0, "%llu errors",
               (unsigned long long)(w[0].errors + w[1].errors));
  cr_assert_eq(msvc_lb_status(lb, UINT64_MAX / 2, &s), MSVC_OK);
  cr_assert_eq(s.inflight, 0);
  msvc_lb_free(lb);
}

Test(lb_threads, updates_race_with_round_robin, .timeout = 240) {
  churn_with(MSVC_LB_ROUND_ROBIN, true);
}
Test(lb_threads, updates_race_with_least_conn, .timeout = 240) {
  churn_with(MSVC_LB_LEAST_CONN, false);
}
Test(lb_threads, updates_race_with_p2c, .timeout = 240) {
  churn_with(MSVC_LB_P2C, true);
}
