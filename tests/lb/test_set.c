/* Endpoint sets, tickets, exclusions, panic mode, slow start, statistics. */
#include <msvc/log.h>

#include "lb_test.h"

static const uint32_t ones[64] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                  1, 1, 1, 1};

static msvc_lb_status_t status_at(msvc_lb_t *lb, uint64_t now_ms) {
  msvc_lb_status_t st;

  cr_assert_eq(msvc_lb_status(lb, now_ms, &st), MSVC_OK);
  return st;
}

Test(lb_set, options_and_lifecycle) {
  msvc_lb_opts_t o;
  msvc_lb_t *lb = (msvc_lb_t *)&o;

  msvc_lb_free(NULL);
  msvc_lb_opts_init(NULL);
  msvc_lb_opts_init(&o);
  cr_assert_eq(o.policy, MSVC_LB_ROUND_ROBIN);
  cr_assert_eq(o.max_excluded_percent, 50);
  cr_assert_eq(o.slow_start_ms, 0);
  cr_assert_eq(msvc_lb_new(&o, NULL), MSVC_EINVAL);
  o.max_excluded_percent = 101;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_EINVAL);
  cr_assert_null(lb);
  msvc_lb_opts_init(&o);
  o.policy = (msvc_lb_policy_t)3;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_EINVAL);
  msvc_lb_opts_init(&o);
  o.size = 4;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_EINVAL);
  msvc_lb_opts_init(&o);
  o.slow_start_ms = MSVC_LB_MAX_SLOW_START_MS + 1;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_new(NULL, &lb), MSVC_OK);
  msvc_lb_free(lb);
}

Test(lb_set, empty_set_has_no_endpoints) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, true);
  msvc_lb_ticket_t t;

  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_ENO_ENDPOINTS);
  lbt_set(lb, ones, 2, 0);
  cr_assert_eq(msvc_lb_update(lb, NULL, 0, 1), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 1, &t), MSVC_ENO_ENDPOINTS);
  cr_assert_eq(msvc_lb_pick(NULL, 1, &t), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_pick(lb, 1, NULL), MSVC_EINVAL);
  msvc_lb_free(lb);
}

Test(lb_set, bad_sets_are_refused_and_change_nothing) {
  char longid[MSVC_LB_MAX_ID_LEN + 2];
  msvc_lb_endpoint_t eps[2] = {{"a:1", 1, NULL}, {"b:1", 1, NULL}};
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, true);

  lbt_set(lb, ones, 3, 0);
  memset(longid, 'x', sizeof(longid) - 1);
  longid[sizeof(longid) - 1] = '\0';
  cr_assert_eq(msvc_lb_update(NULL, eps, 2, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_update(lb, NULL, 2, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_update(lb, eps, MSVC_LB_MAX_ENDPOINTS + 1, 0),
               MSVC_ETOOLARGE);
  eps[1].id = NULL;
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_EINVAL);
  eps[1].id = "";
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_EINVAL);
  eps[1].id = longid;
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_EINVAL);
  longid[MSVC_LB_MAX_ID_LEN] = '\0';
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_OK);
  eps[1].id = "b:1";
  eps[1].weight = 0;
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_EINVAL);
  eps[1].weight = MSVC_LB_MAX_WEIGHT + 1;
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_EINVAL);
  eps[1].weight = MSVC_LB_MAX_WEIGHT;
  cr_assert_eq(msvc_lb_update(lb, eps, 2, 0), MSVC_OK);
  /* a repeated id, found after a new endpoint was already prepared */
  lbt_set(lb, ones, 3, 0);
  {
    msvc_lb_endpoint_t dup[3] = {
        {"new:1", 1, NULL}, {"10.0.0.1:80", 1, NULL}, {"10.0.0.1:80", 2, NULL}};
    static lbt_stats_t st;

    cr_assert_eq(msvc_lb_update(lb, dup, 3, 0), MSVC_EINVAL);
    lbt_stats(lb, 0, &st);
    cr_assert_eq(st.n, 3);
    cr_assert_str_eq(st.ids[1], "10.0.0.1:80");
    cr_assert_eq(st.st[1].weight, 1);
  }
  cr_assert_eq(status_at(lb, 0).endpoints, 3);
  msvc_lb_free(lb);
}

Test(lb_set, update_keeps_statistics_of_survivors) {
  msvc_lb_endpoint_t a[3] = {{"a:1", 1, "zone=x"}, {"b:1", 1, NULL},
                             {"c:1", 1, NULL}};
  msvc_lb_endpoint_t b[3] = {{"c:1", 2, "v=2"}, {"d:1", 1, NULL},
                             {"a:1", 1, "zone=x"}};
  static lbt_stats_t st;
  msvc_lb_ticket_t held[6];
  bool is_b[6];
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 0, true);
  size_t i;

  cr_assert_eq(msvc_lb_update(lb, a, 3, 0), MSVC_OK);
  for (i = 0; i < 6; i++) /* two each */
    cr_assert_eq(msvc_lb_pick(lb, 0, &held[i]), MSVC_OK);
  cr_assert_eq(msvc_lb_update(lb, b, 3, 10), MSVC_OK);
  lbt_stats(lb, 10, &st);
  cr_assert_eq(st.n, 3);
  cr_assert_str_eq(st.ids[0], "c:1");
  cr_assert_eq(st.st[0].inflight, 2);
  cr_assert_eq(st.st[0].picks, 2);
  cr_assert_eq(st.st[0].weight, 2);
  cr_assert_str_eq(st.ids[1], "d:1");
  cr_assert_eq(st.st[1].inflight, 0);
  cr_assert_eq(st.st[1].picks, 0);
  cr_assert_str_eq(st.ids[2], "a:1");
  cr_assert_eq(st.st[2].inflight, 2);
  /* least_conn goes on from the kept counts: d is idle, so it comes first */
  {
    msvc_lb_ticket_t t;
    cr_assert_eq(msvc_lb_pick(lb, 10, &t), MSVC_OK);
    cr_assert_str_eq(t.endpoint, "d:1");
    cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_OK);
  }
  /* b left the set, but its tickets are still good and still counted */
  cr_assert_eq(status_at(lb, 10).inflight, 6);
  for (i = 0; i < 6; i++) {
    is_b[i] = strcmp(held[i].endpoint, "b:1") == 0;
    if (is_b[i])
      cr_assert_eq(msvc_lb_done(lb, &held[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  }
  cr_assert_eq(status_at(lb, 10).inflight, 4);
  /* b is recycled at the next update; its ids are reused by newcomers */
  cr_assert_eq(msvc_lb_update(lb, a, 3, 20), MSVC_OK);
  lbt_stats(lb, 20, &st);
  cr_assert_str_eq(st.ids[1], "b:1");
  cr_assert_eq(st.st[1].picks, 0, "b came back as a new endpoint");
  cr_assert_eq(st.st[0].picks, 2);
  for (i = 0; i < 6; i++) {
    if (!is_b[i])
      cr_assert_eq(msvc_lb_done(lb, &held[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  }
  cr_assert_eq(status_at(lb, 20).inflight, 0);
  msvc_lb_free(lb);
}

static void double_return(bool track) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, track);
  msvc_lb_ticket_t t, u, forged;

  lbt_set(lb, ones, 1, 0);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_OK);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_ETICKET);
  /* the second return must not eat another ticket's count when tracked */
  cr_assert_eq(msvc_lb_pick(lb, 0, &u), MSVC_OK);
  if (track)
    cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_ETICKET);
  cr_assert_eq(status_at(lb, 0).inflight, 1);
  forged = u;
  forged.slot_ = 12345;
  cr_assert_eq(msvc_lb_done(lb, &forged, MSVC_LB_SUCCESS, 1), MSVC_ETICKET);
  forged = u;
  forged.gen_++;
  cr_assert_eq(msvc_lb_done(lb, &forged, MSVC_LB_SUCCESS, 1), MSVC_ETICKET);
  cr_assert_eq(msvc_lb_done(lb, &u, (msvc_lb_outcome_t)7, 1), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_done(lb, NULL, MSVC_LB_SUCCESS, 1), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_done(NULL, &u, MSVC_LB_SUCCESS, 1), MSVC_EINVAL);
  cr_assert_eq(status_at(lb, 0).inflight, 1);
  cr_assert_eq(msvc_lb_done(lb, &u, MSVC_LB_SUCCESS, 1), MSVC_OK);
  cr_assert_eq(status_at(lb, 0).inflight, 0);
  /* a ticket of an endpoint that left and was recycled */
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  u = t;
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_OK);
  cr_assert_eq(msvc_lb_update(lb, NULL, 0, 1), MSVC_OK);
  lbt_set(lb, ones + 1, 1, 2);
  cr_assert_eq(msvc_lb_done(lb, &u, MSVC_LB_SUCCESS, 1), MSVC_ETICKET);
  msvc_lb_free(lb);
}

Test(lb_tickets, double_return_is_refused_tracked) { double_return(true); }
Test(lb_tickets, double_return_is_refused_untracked) { double_return(false); }

typedef struct capture_s {
  int lines;
  char last[512];
} capture_t;

static void capture_sink(void *data, msvc_log_level_t level, const char *line,
                         size_t len) {
  capture_t *c = data;

  (void)level;
  c->lines++;
  snprintf(c->last, sizeof(c->last), "%.*s", (int)len, line);
}

Test(lb_tickets, never_returned_are_reported) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, true);
  msvc_lb_ticket_t t;
  capture_t cap = {0, ""};

  lbt_set(lb, ones, 4, 0);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  msvc_log_set_sink(capture_sink, &cap);
  msvc_lb_free(lb);
  msvc_log_reset();
  cr_assert_eq(cap.lines, 1);
  cr_assert(strstr(cap.last, "2 ticket(s) never returned") != NULL, "%s",
            cap.last);
}

/* ---- exclusions ---------------------------------------------------------- */
static void exclusion_by_policy(msvc_lb_policy_t policy) {
  msvc_lb_t *lb = lbt_new(policy, 0, true);
  size_t i;

  lbt_set(lb, ones, 4, 0);
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.2:80", 1000, 0), MSVC_OK);
  cr_assert_eq(msvc_lb_exclude(lb, "nope:1", 1000, 0), MSVC_ENOTFOUND);
  cr_assert_eq(msvc_lb_exclude(lb, NULL, 1000, 0), MSVC_EINVAL);
  for (i = 0; i < 3000; i++)
    cr_assert_neq(lbt_pick_done(lb, i % 1000), 2);
  /* back at its time, without any call but picks */
  for (i = 0; i < 3000; i++)
    if (lbt_pick_done(lb, 1000) == 2)
      break;
  cr_assert_lt(i, 3000, "the endpoint never came back");
  /* and lifted early */
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.1:80", 5000, 1000), MSVC_OK);
  cr_assert_eq(status_at(lb, 1000).excluded, 1);
  cr_assert_eq(msvc_lb_include(lb, "10.0.0.1:80", 1001), MSVC_OK);
  cr_assert_eq(status_at(lb, 1001).excluded, 0);
  cr_assert_eq(status_at(lb, 1001).eligible, 4);
  cr_assert_eq(msvc_lb_include(lb, "nope:1", 1001), MSVC_ENOTFOUND);
  msvc_lb_free(lb);
}

Test(lb_exclusion, excluded_endpoints_are_skipped) {
  exclusion_by_policy(MSVC_LB_ROUND_ROBIN);
  exclusion_by_policy(MSVC_LB_LEAST_CONN);
  exclusion_by_policy(MSVC_LB_P2C);
}

Test(lb_exclusion, budget_then_panic) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, true);
  msvc_lb_status_t st;
  size_t seen[4] = {0}, i;

  lbt_set(lb, ones, 4, 0);
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.0:80", 100, 0), MSVC_OK);
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.1:80", 200, 0), MSVC_OK);
  st = status_at(lb, 0);
  cr_assert_eq(st.excluded, 2);
  cr_assert_eq(st.eligible, 2);
  cr_assert_not(st.panic, "50%% is within the default budget");
  for (i = 0; i < 100; i++)
    cr_assert_geq(lbt_pick_done(lb, 0), 2);
  /* a third exclusion is beyond the budget: picks ignore them all */
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.2:80", 300, 0), MSVC_OK);
  st = status_at(lb, 0);
  cr_assert(st.panic);
  cr_assert_eq(st.excluded, 3);
  cr_assert_eq(st.eligible, 4);
  for (i = 0; i < 400; i++)
    seen[lbt_pick_done(lb, 50)]++;
  for (i = 0; i < 4; i++)
    cr_assert_eq(seen[i], 100, "panic mode picks among all");
  /* the first exclusion runs out: back within budget */
  st = status_at(lb, 100);
  cr_assert_not(st.panic);
  cr_assert_eq(st.excluded, 2);
  cr_assert_eq(st.eligible, 2);
  /* every endpoint excluded is panic too, even with a budget of 100% */
  msvc_lb_free(lb);
  {
    msvc_lb_opts_t o;
    msvc_lb_ticket_t t;

    msvc_lb_opts_init(&o);
    o.max_excluded_percent = 100;
    cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_OK);
    lbt_set(lb, ones, 2, 0);
    cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.0:80", 100, 0), MSVC_OK);
    cr_assert_not(status_at(lb, 0).panic);
    cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.1:80", 100, 0), MSVC_OK);
    cr_assert(status_at(lb, 0).panic);
    cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
    cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_OK);
    msvc_lb_free(lb);
  }
}

Test(lb_exclusion, survives_set_updates) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, true);
  size_t i;

  lbt_set(lb, ones, 3, 0);
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.1:80", 1000, 0), MSVC_OK);
  lbt_set(lb, ones, 4, 10);
  cr_assert_eq(status_at(lb, 10).excluded, 1);
  for (i = 0; i < 1000; i++)
    cr_assert_neq(lbt_pick_done(lb, 10), 1);
  msvc_lb_free(lb);
}

/* ---- slow start ---------------------------------------------------------- */
static uint32_t eff_of(msvc_lb_t *lb, uint64_t now_ms, size_t idx) {
  static lbt_stats_t st;

  lbt_stats(lb, now_ms, &st);
  cr_assert_lt(idx, st.n);
  return st.st[idx].effective_weight_milli;
}

Test(lb_slow_start, ramps_linearly_from_ten_percent) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 10000, true);
  static const uint32_t w[] = {2, 2, 2};

  lbt_set(lb, w, 2, 0);
  cr_assert_eq(eff_of(lb, 0, 0), 2000, "the first set does not ramp");
  lbt_set(lb, w, 3, 1000);
  cr_assert_eq(eff_of(lb, 1000, 2), 200);
  cr_assert_eq(eff_of(lb, 6000, 2), 1100);
  cr_assert_eq(eff_of(lb, 10999, 2), 1999);
  cr_assert_eq(eff_of(lb, 11000, 2), 2000);
  /* coming back from an exclusion ramps again, from the end of it */
  cr_assert_eq(msvc_lb_exclude(lb, "10.0.0.2:80", 20000, 12000), MSVC_OK);
  cr_assert_eq(eff_of(lb, 20000, 2), 200);
  cr_assert_eq(eff_of(lb, 25000, 2), 1100);
  cr_assert_eq(eff_of(lb, 30000, 2), 2000);
  msvc_lb_free(lb);
}

static size_t share_while_ramping(msvc_lb_policy_t policy, bool hold) {
  msvc_lb_t *lb = lbt_new(policy, 10000, false);
  static msvc_lb_ticket_t t[2100];
  size_t count = 0, i;

  lbt_set(lb, ones, 2, 0);
  lbt_set(lb, ones, 3, 1000);
  /* at t=1000 the newcomer counts for 0.1 against 1 and 1 */
  for (i = 0; i < 2100; i++) {
    cr_assert_eq(msvc_lb_pick(lb, 1000, &t[i]), MSVC_OK);
    count += lbt_index(t[i].endpoint) == 2;
    if (!hold)
      cr_assert_eq(msvc_lb_done(lb, &t[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  }
  for (i = 0; hold && i < 2100; i++)
    cr_assert_eq(msvc_lb_done(lb, &t[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  msvc_lb_free(lb);
  return count;
}

Test(lb_slow_start, every_policy_follows_the_ramp) {
  size_t rr = share_while_ramping(MSVC_LB_ROUND_ROBIN, false);
  size_t lc = share_while_ramping(MSVC_LB_LEAST_CONN, true);
  size_t p2c = share_while_ramping(MSVC_LB_P2C, true);

  cr_assert(rr >= 99 && rr <= 101, "round_robin gave %zu of 2100", rr);
  cr_assert(lc >= 99 && lc <= 101, "least_conn gave %zu of 2100", lc);
  /* p2c: only loads that stay within one pick of the weights */
  cr_assert(p2c >= 90 && p2c <= 110, "p2c gave %zu of 2100", p2c);
}

Test(lb_slow_start, ramp_end_restores_fast_path) {
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 100, false);
  size_t count[3] = {0}, i;

  lbt_set(lb, ones, 2, 0);
  lbt_set(lb, ones, 3, 1);
  for (i = 0; i < 300; i++)
    count[lbt_pick_done(lb, 101)]++;
  for (i = 0; i < 3; i++)
    cr_assert_eq(count[i], 100);
  msvc_lb_free(lb);
}

/* ---- statistics ---------------------------------------------------------- */
static int stop_after_one(const msvc_lb_endpoint_stats_t *s, void *data) {
  (void)s;
  (*(int *)data)++;
  return 1;
}

Test(lb_stats, counts_outcomes_and_latency) {
  msvc_lb_endpoint_t e[2] = {{"a:1", 1, "zone=a"}, {"b:1", 1, NULL}};
  static lbt_stats_t st;
  msvc_lb_t *lb = lbt_new(MSVC_LB_ROUND_ROBIN, 0, true);
  msvc_lb_ticket_t t;
  int calls = 0;

  cr_assert_eq(msvc_lb_update(lb, e, 2, 0), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  cr_assert_str_eq(t.endpoint, "a:1");
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_FAILURE, 800), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 100), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1600), MSVC_OK);
  cr_assert_eq(msvc_lb_pick(lb, 0, &t), MSVC_OK);
  lbt_stats(lb, 0, &st);
  cr_assert_eq(st.n, 2);
  cr_assert_eq(st.st[0].picks, 2);
  cr_assert_eq(st.st[0].failures, 1);
  cr_assert_eq(st.st[0].inflight, 0);
  cr_assert_eq(st.st[0].latency_ewma_us, 800 - 100 + 200);
  cr_assert_eq(st.st[1].picks, 2);
  cr_assert_eq(st.st[1].inflight, 1);
  cr_assert_eq(st.st[1].latency_ewma_us, 100);
  cr_assert_eq(msvc_lb_foreach(lb, 0, stop_after_one, &calls), MSVC_OK);
  cr_assert_eq(calls, 1);
  cr_assert_eq(msvc_lb_foreach(lb, 0, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_status(lb, 0, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 1), MSVC_OK);
  msvc_lb_free(lb);
}

static int check_metadata(const msvc_lb_endpoint_stats_t *s, void *data) {
  (void)data;
  if (strcmp(s->id, "a:1") == 0)
    cr_assert_str_eq(s->metadata, "zone=b");
  else
    cr_assert_str_eq(s->metadata, "");
  return 0;
}

Test(lb_stats, metadata_follows_updates) {
  msvc_lb_endpoint_t e[2] = {{"a:1", 1, "zone=a"}, {"b:1", 1, NULL}};
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, true);

  cr_assert_eq(msvc_lb_update(lb, e, 2, 0), MSVC_OK);
  e[0].metadata = "zone=b";
  cr_assert_eq(msvc_lb_update(lb, e, 2, 0), MSVC_OK);
  cr_assert_eq(msvc_lb_foreach(lb, 0, check_metadata, NULL), MSVC_OK);
  msvc_lb_free(lb);
}
