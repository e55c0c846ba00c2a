/* The three policies: exact sequences, long-run shares, minimum choice. */
#include <stdlib.h>

#include "lb_test.h"

/* nginx's smooth weighted round-robin, written out plainly as the oracle. */
typedef struct swrr_ref_s {
  size_t n;
  int64_t w[64];
  int64_t cur[64];
} swrr_ref_t;

static size_t swrr_ref_next(swrr_ref_t *r) {
  int64_t total = 0;
  size_t i, best = 0;

  for (i = 0; i < r->n; i++) {
    r->cur[i] += r->w[i];
    total += r->w[i];
    if (r->cur[i] > r->cur[best])
      best = i;
  }
  r->cur[best] -= total;
  return best;
}

Test(lb_round_robin, smooth_sequence_5_1_1) {
  static const uint32_t w[] = {5, 1, 1};
  const char *want = "aabacaaaabacaa";
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, true);
  size_t i;

  lbt_set(lb, w, 3, 0);
  for (i = 0; want[i] != '\0'; i++) {
    size_t got = lbt_pick_done(lb, 0);
    cr_assert_eq((char)('a' + got), want[i], "pick %zu: got %c", i,
                 (char)('a' + got));
  }
  msvc_lb_free(lb);
}

Test(lb_round_robin, smooth_sequences_match_nginx) {
  static const uint32_t sets[][6] = {
      {4, 2, 1, 0}, {1, 1, 2, 0}, {3, 7, 0}, {10, 9, 8, 7, 6, 5},
      {1000, 1, 0}, {2, 3, 5, 7, 11, 0}};
  size_t s;

  for (s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
    msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, false);
    swrr_ref_t ref;
    size_t n = 0, i;

    memset(&ref, 0, sizeof(ref));
    while (n < 6 && sets[s][n] != 0) {
      ref.w[n] = sets[s][n];
      n++;
    }
    ref.n = n;
    lbt_set(lb, sets[s], n, 0);
    for (i = 0; i < 3000; i++) {
      size_t want = swrr_ref_next(&ref), got = lbt_pick_done(lb, 0);
      cr_assert_eq(got, want, "set %zu pick %zu: got %zu want %zu", s, i, got,
                   want);
    }
    msvc_lb_free(lb);
  }
}

Test(lb_round_robin, random_weights_match_nginx_up_to_32) {
  uint32_t w[32];
  swrr_ref_t ref;
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, false);
  size_t i;

  srand(7);
  memset(&ref, 0, sizeof(ref));
  ref.n = 32;
  for (i = 0; i < 32; i++)
    ref.w[i] = w[i] = 1 + (uint32_t)(rand() % 1000);
  lbt_set(lb, w, 32, 0);
  for (i = 0; i < 20000; i++)
    cr_assert_eq(lbt_pick_done(lb, 0), swrr_ref_next(&ref), "pick %zu", i);
  msvc_lb_free(lb);
}

Test(lb_round_robin, equal_weights_cycle) {
  static const uint32_t w[] = {3, 3, 3, 3};
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, false);
  size_t i, first;

  lbt_set(lb, w, 4, 0);
  first = lbt_pick_done(lb, 0);
  for (i = 1; i < 400; i++)
    cr_assert_eq(lbt_pick_done(lb, 0), (first + i) % 4);
  msvc_lb_free(lb);
}

/* Above 32 endpoints the EDF scheduler takes over: shares must stay within
 * 1% of the weights, and a light endpoint must not wait much longer than
 * its period between two turns. */
static void check_shares(size_t n, unsigned seed, uint64_t rounds) {
  static uint32_t w[4096];
  static uint64_t count[4096], last[4096], maxgap[4096];
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, false);
  uint64_t total = 0, picks, i;

  srand(seed);
  for (i = 0; i < n; i++) {
    w[i] = 1 + (uint32_t)(rand() % 100);
    total += w[i];
    count[i] = last[i] = maxgap[i] = 0;
  }
  lbt_set(lb, w, n, 0);
  picks = total * rounds;
  for (i = 1; i <= picks; i++) {
    size_t e = lbt_pick_done(lb, 0);
    if (i - last[e] > maxgap[e])
      maxgap[e] = i - last[e];
    last[e] = i;
    count[e]++;
  }
  for (i = 0; i < n; i++) {
    double want = (double)picks * w[i] / (double)total;
    cr_assert_leq(abs((int)((double)count[i] - want)), (int)(want / 100) + 1,
                  "endpoint %zu weight %u: %llu picks, want %.0f", (size_t)i,
                  w[i], (unsigned long long)count[i], want);
    cr_assert_leq(maxgap[i], 2 * total / w[i] + 2,
                  "endpoint %zu weight %u waited %llu picks", (size_t)i, w[i],
                  (unsigned long long)maxgap[i]);
  }
  msvc_lb_free(lb);
}

Test(lb_round_robin, edf_shares_within_one_percent) {
  check_shares(40, 1, 200);
  check_shares(1000, 2, 100);
}

Test(lb_round_robin, swrr_shares_within_one_percent) {
  check_shares(20, 3, 200);
}

/* The EDF sequence itself, against the rule written out plainly: period
 * 2^42 / (weight * 1000), first due half a period in, earliest deadline
 * first, ties to the endpoint listed first. Fixed periods are worked out
 * once per set, so a pick must still give exactly this order. */
Test(lb_round_robin, edf_sequence_matches_deadline_rule) {
  static uint32_t w[1000];
  static uint64_t period[1000], due[1000];
  const size_t sizes[] = {33, 1000};
  size_t k, i, pick;

  for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t n = sizes[k];
    msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, false);

    for (i = 0; i < n; i++) {
      w[i] = 1 + (uint32_t)(i * 7919 % 10);
      period[i] = (UINT64_C(1) << 42) / ((uint64_t)w[i] * 1000);
      due[i] = period[i] / 2;
    }
    lbt_set(lb, w, n, 0);
    for (pick = 0; pick < 20000; pick++) {
      size_t want = 0;

      for (i = 1; i < n; i++)
        if (due[i] < due[want])
          want = i;
      due[want] += period[want];
      cr_assert_eq(lbt_pick_done(lb, 0), want, "n %zu, pick %zu", n, pick);
    }
    msvc_lb_free(lb);
  }
}

/* The same rule with up to 1,000 distinct weights (one heap entry each)
 * and with endpoints in their slow-start ramp, whose period is worked out
 * again at each of their turns from the weight in effect then. */
static uint64_t ramp_period(uint32_t w, bool ramps, uint64_t now) {
  uint64_t eff = ramps ? w * 100 + w * 900 * (now - 1000) / 10000 : w * 1000;

  return (UINT64_C(1) << 42) / eff;
}

Test(lb_round_robin, edf_sequence_with_ramps_and_many_weights) {
  static uint32_t w[1500];
  static uint64_t due[1500];
  const size_t sizes[] = {60, 1500};
  size_t k, i, pick;

  for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t n = sizes[k], old = n * 2 / 3;
    msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 10000, false);

    for (i = 0; i < n; i++)
      w[i] = n < 100 ? 1 + (uint32_t)(i % 4) : 1 + (uint32_t)(i * 7919 % 1000);
    /* the first set does not ramp; the endpoints added at t=1000 do */
    lbt_set(lb, w, old, 0);
    lbt_set(lb, w, n, 1000);
    for (i = 0; i < n; i++)
      due[i] = ramp_period(w[i], i >= old, 1000) / 2;
    for (pick = 0; pick < 20000; pick++) {
      uint64_t now = 1000 + pick / 4;
      size_t want = 0;

      for (i = 1; i < n; i++)
        if (due[i] < due[want])
          want = i;
      due[want] += ramp_period(w[want], want >= old, now);
      cr_assert_eq(lbt_pick_done(lb, now), want, "n %zu, pick %zu", n, pick);
    }
    msvc_lb_free(lb);
  }
}

/* ---- least_conn ---------------------------------------------------------- */
Test(lb_least_conn, always_picks_a_minimum) {
  static lbt_stats_t st;
  static msvc_lb_ticket_t held[4000];
  uint32_t w[50];
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, true);
  size_t nheld = 0, i, k;

  srand(11);
  for (i = 0; i < 50; i++)
    w[i] = 1 + (uint32_t)(rand() % 5);
  lbt_set(lb, w, 50, 0);
  for (k = 0; k < 6000; k++) {
    if (nheld > 0 && (rand() % 3 == 0 || nheld == 4000)) {
      size_t j = (size_t)rand() % nheld;
      cr_assert_eq(msvc_lb_done(lb, &held[j], MSVC_LB_SUCCESS, 5), MSVC_OK);
      held[j] = held[--nheld];
      continue;
    }
    lbt_stats(lb, 0, &st);
    cr_assert_eq(msvc_lb_pick(lb, 0, &held[nheld]), MSVC_OK);
    i = lbt_index(held[nheld].endpoint);
    nheld++;
    /* the chosen one had the least in-flight per weight before the pick */
    for (size_t j = 0; j < st.n; j++)
      cr_assert_leq(st.st[i].inflight * st.st[j].weight,
                    st.st[j].inflight * st.st[i].weight,
                    "pick %zu chose %zu over less loaded %zu", k, i, j);
  }
  while (nheld > 0)
    cr_assert_eq(msvc_lb_done(lb, &held[--nheld], MSVC_LB_SUCCESS, 5), MSVC_OK);
  lbt_stats(lb, 0, &st);
  for (i = 0; i < st.n; i++)
    cr_assert_eq(st.st[i].inflight, 0);
  msvc_lb_free(lb);
}

/* The whole order against the rule written out plainly: the lowest
 * in-flight / weight, ties to the endpoint whose count changed (a pick or
 * a release) longest ago, at first in list order. */
Test(lb_least_conn, order_matches_plain_rule) {
  static uint32_t w[300];
  static uint64_t in[300], stamp[300];
  static msvc_lb_ticket_t held[2000];
  static size_t held_ep[2000];
  const size_t n = 300;
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, false);
  size_t nheld = 0, i, k;
  uint64_t seq = n;

  srand(17);
  for (i = 0; i < n; i++) {
    w[i] = 1 + (uint32_t)(rand() % 7);
    in[i] = 0;
    stamp[i] = i;
  }
  lbt_set(lb, w, n, 0);
  for (k = 0; k < 30000; k++) {
    size_t want = 0, j;

    if (nheld > 0 && (rand() % 2 == 0 || nheld == 2000)) {
      j = (size_t)rand() % nheld;
      cr_assert_eq(msvc_lb_done(lb, &held[j], MSVC_LB_SUCCESS, 5), MSVC_OK);
      in[held_ep[j]]--;
      stamp[held_ep[j]] = seq++;
      held[j] = held[--nheld];
      held_ep[j] = held_ep[nheld];
      continue;
    }
    for (i = 1; i < n; i++) {
      uint64_t l = in[i] * w[want], r = in[want] * w[i];
      if (l < r || (l == r && stamp[i] < stamp[want]))
        want = i;
    }
    cr_assert_eq(msvc_lb_pick(lb, 0, &held[nheld]), MSVC_OK);
    cr_assert_eq(lbt_index(held[nheld].endpoint), want, "step %zu", k);
    held_ep[nheld++] = want;
    in[want]++;
    stamp[want] = seq++;
  }
  for (i = 0; i < nheld; i++)
    cr_assert_eq(msvc_lb_done(lb, &held[i], MSVC_LB_SUCCESS, 5), MSVC_OK);
  msvc_lb_free(lb);
}

Test(lb_least_conn, ties_take_turns) {
  static const uint32_t w[] = {1, 1, 1, 1, 1};
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, false);
  size_t count[5] = {0}, i, prev = 99;

  lbt_set(lb, w, 5, 0);
  for (i = 0; i < 500; i++) {
    size_t e = lbt_pick_done(lb, 0);
    cr_assert_neq(e, prev, "the same endpoint twice in a row");
    prev = e;
    count[e]++;
  }
  for (i = 0; i < 5; i++)
    cr_assert_eq(count[i], 100);
  msvc_lb_free(lb);
}

Test(lb_least_conn, weights_scale_the_load) {
  static const uint32_t w[] = {1, 3};
  msvc_lb_ticket_t t[400];
  size_t count[2] = {0}, i;
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, false);

  lbt_set(lb, w, 2, 0);
  for (i = 0; i < 400; i++) {
    cr_assert_eq(msvc_lb_pick(lb, 0, &t[i]), MSVC_OK);
    count[lbt_index(t[i].endpoint)]++;
  }
  cr_assert_eq(count[0], 100);
  cr_assert_eq(count[1], 300);
  for (i = 0; i < 400; i++)
    cr_assert_eq(msvc_lb_done(lb, &t[i], MSVC_LB_FAILURE, 1), MSVC_OK);
  msvc_lb_free(lb);
}

/* ---- p2c ----------------------------------------------------------------- */
Test(lb_p2c, two_endpoints_never_the_busier) {
  static const uint32_t w[] = {1, 1};
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, false);
  msvc_lb_ticket_t t[3];
  size_t i, x, busier;

  lbt_set(lb, w, 2, 0);
  /* 1 against 0 */
  cr_assert_eq(msvc_lb_pick(lb, 0, &t[0]), MSVC_OK);
  x = lbt_index(t[0].endpoint);
  for (i = 0; i < 100000; i++)
    cr_assert_eq(lbt_pick_done(lb, 0), 1 - x);
  /* 1 against 1, then 2 against 1 */
  cr_assert_eq(msvc_lb_pick(lb, 0, &t[1]), MSVC_OK);
  cr_assert_eq(lbt_index(t[1].endpoint), 1 - x);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t[2]), MSVC_OK);
  busier = lbt_index(t[2].endpoint);
  for (i = 0; i < 100000; i++)
    cr_assert_eq(lbt_pick_done(lb, 0), 1 - busier);
  for (i = 0; i < 3; i++)
    cr_assert_eq(msvc_lb_done(lb, &t[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  msvc_lb_free(lb);
}

Test(lb_p2c, weight_decides_between_two) {
  static const uint32_t w[] = {1, 4};
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, false);
  msvc_lb_ticket_t held[10];
  size_t n = 0, i, on[2] = {0};

  lbt_set(lb, w, 2, 0);
  /* without releasing, the loads follow 1:4 exactly, give or take a tie */
  for (n = 0; n < 10; n++) {
    cr_assert_eq(msvc_lb_pick(lb, 0, &held[n]), MSVC_OK);
    on[lbt_index(held[n].endpoint)]++;
    cr_assert_leq(on[0] * 4, on[1] * 1 + 4, "light endpoint overloaded");
    cr_assert_leq(on[1], on[0] * 4 + 4, "heavy endpoint overloaded");
  }
  for (i = 0; i < n; i++)
    cr_assert_eq(msvc_lb_done(lb, &held[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  msvc_lb_free(lb);
}

Test(lb_p2c, spreads_evenly) {
  static const uint32_t w[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, false);
  size_t count[10] = {0}, i;

  lbt_set(lb, w, 10, 0);
  for (i = 0; i < 100000; i++)
    count[lbt_pick_done(lb, 0)]++;
  for (i = 0; i < 10; i++) {
    cr_assert_gt(count[i], 8000, "endpoint %zu: %zu", i, count[i]);
    cr_assert_lt(count[i], 12000, "endpoint %zu: %zu", i, count[i]);
  }
  msvc_lb_free(lb);
}

Test(lb_policy, names_round_trip) {
  msvc_lb_policy_t p;

  cr_assert_eq(msvc_lb_policy_parse("round_robin", &p), MSVC_OK);
  cr_assert_eq(p, MSVC_LB_ROUND_ROBIN);
  cr_assert_eq(msvc_lb_policy_parse("least_conn", &p), MSVC_OK);
  cr_assert_eq(p, MSVC_LB_LEAST_CONN);
  cr_assert_eq(msvc_lb_policy_parse("p2c", &p), MSVC_OK);
  cr_assert_eq(p, MSVC_LB_P2C);
  cr_assert_eq(msvc_lb_policy_parse("P2C", &p), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_policy_parse("", &p), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_policy_parse(NULL, &p), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_policy_parse("p2c", NULL), MSVC_EINVAL);
  cr_assert_str_eq(msvc_lb_policy_name(MSVC_LB_LEAST_CONN), "least_conn");
  cr_assert_str_eq(msvc_lb_policy_name((msvc_lb_policy_t)9), "unknown");
}
