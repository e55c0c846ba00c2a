/*
 * Calls under faults: an instance dies mid-load and comes back, one is slow,
 * all are down. Three plain servers on the test's loop stand in for the
 * instances; the load is bounded in count and time.
 */
#include "call_helpers.h"

TestSuite(call_faults, .timeout = 120);

typedef struct kill_plan_s {
  load_t l;
  inst_t *victim;
  int phase;
  int killed_at;
  int hits_at_restart;
  bool saw_open;
} kill_plan_t;

static void kill_step(load_t *l) {
  kill_plan_t *k = (kill_plan_t *)l;
  harness_t *h = l->h;
  double st = h_breaker_state(h, k->victim);

  if (st == 1)
    k->saw_open = true;
  if (k->phase == 0 && l->done >= 600) {
    h_kill(k->victim);
    k->killed_at = l->done;
    k->phase = 1;
  } else if (k->phase == 1 && st == 1 && l->done >= k->killed_at + 600) {
    h_restart(k->victim);
    k->hits_at_restart = k->victim->hits;
    k->phase = 2;
  } else if (k->phase == 2 && st == 0 && k->victim->hits >= k->hits_at_restart + 50 &&
             h_transitions(h, k->victim, MSVC_BREAKER_CLOSED) >= 1) {
    k->phase = 3;
    l->total = l->started; /* enough: let the calls in flight finish */
  }
}

Test(call_faults, instance_dies_and_returns) {
  harness_t h;
  kill_plan_t k;
  inst_t *a, *c;

  h_init(&h, "calls-kill", MSVC_LB_ROUND_ROBIN, 300);
  a = h_add_instance(&h, 0);
  k.victim = NULL;
  memset(&k, 0, sizeof(k));
  k.victim = h_add_instance(&h, 0);
  c = h_add_instance(&h, 0);
  k.l.h = &h;
  k.l.target = "/hello";
  k.l.timeout_ms = 3000;
  k.l.concurrency = 24;
  k.l.total = 60000; /* a ceiling: the plan stops the load much earlier */
  k.l.on_each = kill_step;
  load_run(&k.l, 60000);

  cr_log_info("%d calls, %.0f retries, victim answered %d after its restart", k.l.done,
              msvc_metrics_counter_value(h.caller->targets->retries),
              k.victim->hits - k.hits_at_restart);
  cr_assert_eq(k.phase, 3, "plan stopped in phase %d after %d calls", k.phase, k.l.done);
  cr_assert_eq(k.l.failed, 0, "%d calls failed (last %s, status %d)", k.l.failed,
               msvc_err_name(k.l.last_err), k.l.last_status);
  cr_assert_geq(k.l.done, 1500);
  /* its breaker opened, probed, and closed again; traffic came back */
  cr_assert(k.saw_open);
  cr_assert_geq(h_transitions(&h, k.victim, MSVC_BREAKER_OPEN), 1);
  cr_assert_geq(h_transitions(&h, k.victim, MSVC_BREAKER_HALF_OPEN), 1);
  cr_assert_geq(h_transitions(&h, k.victim, MSVC_BREAKER_CLOSED), 1);
  cr_assert_eq(h_breaker_state(&h, k.victim), 0);
  cr_assert_geq(k.victim->hits, k.hits_at_restart + 50);
  /* the others never tripped */
  cr_assert_eq(h_transitions(&h, a, MSVC_BREAKER_OPEN), 0);
  cr_assert_eq(h_transitions(&h, c, MSVC_BREAKER_OPEN), 0);
  /* the failures were absorbed by retries: counted as attempts, while
   * every call ended in a 200 */
  cr_assert_gt(h_attempts(&h, "refused") + h_attempts(&h, "reset"), 0);
  cr_assert_gt(msvc_metrics_counter_value(h.caller->targets->retries), 0);
  cr_assert_eq(h_requests(&h, "200"), (double)k.l.done);
  cr_assert_eq(h_requests(&h, "refused") + h_requests(&h, "reset"), 0);
  cr_assert_gt(h_picks(&h, k.victim), 0);
  h_close(&h);
}

static void slow_share(msvc_lb_policy_t policy, const char *svc) {
  harness_t h;
  load_t l;

  h_init(&h, svc, policy, 1000);
  h_add_instance(&h, 0);
  h_add_instance(&h, 0);
  h_add_instance(&h, 15);
  memset(&l, 0, sizeof(l));
  l.h = &h;
  l.target = "/hello";
  l.timeout_ms = 3000;
  l.concurrency = 16;
  l.total = 1500;
  load_run(&l, 60000);
  cr_assert_eq(l.failed, 0);
  cr_log_info("%s: fast %d, %d; slow %d", msvc_lb_policy_name(policy), l.by_inst[0],
              l.by_inst[1], l.by_inst[2]);
  cr_assert_lt(l.by_inst[2] * 2, l.by_inst[0], "%s gave the slow one %d vs %d",
               msvc_lb_policy_name(policy), l.by_inst[2], l.by_inst[0]);
  cr_assert_lt(l.by_inst[2] * 2, l.by_inst[1], "%s gave the slow one %d vs %d",
               msvc_lb_policy_name(policy), l.by_inst[2], l.by_inst[1]);
  h_close(&h);
}

Test(call_faults, slow_instance_gets_less_least_conn) {
  slow_share(MSVC_LB_LEAST_CONN, "calls-slow-lc");
}

Test(call_faults, slow_instance_gets_less_p2c) { slow_share(MSVC_LB_P2C, "calls-slow-p2c"); }

static bool all_open(void *arg) {
  harness_t *h = arg;
  int i;

  for (i = 0; i < h->ninst; i++)
    if (h_breaker_state(h, &h->inst[i]) != 1)
      return false;
  return true;
}

Test(call_faults, all_down_fails_fast) {
  harness_t h;
  load_t warm, fast;
  int i;

  /* a long open period: once open, the breakers stay open for the test */
  h_init(&h, "calls-down", MSVC_LB_ROUND_ROBIN, 30000);
  for (i = 0; i < 3; i++)
    h_add_instance(&h, 0);
  for (i = 0; i < 3; i++)
    h_kill(&h.inst[i]);
  memset(&warm, 0, sizeof(warm));
  warm.h = &h;
  warm.target = "/hello";
  warm.timeout_ms = 2000;
  warm.concurrency = 4;
  warm.total = 60;
  load_run(&warm, 30000);
  cr_assert_eq(warm.ok, 0);
  cr_assert(all_open(&h), "not every breaker opened");

  memset(&fast, 0, sizeof(fast));
  fast.h = &h;
  fast.target = "/hello";
  fast.timeout_ms = 2000;
  fast.concurrency = 8;
  fast.total = 400;
  load_run(&fast, 30000);
  cr_assert_eq(fast.failed, 400);
  cr_assert_eq(fast.last_err, MSVC_EBREAKER_OPEN);
  /* each answered in a small fraction of the 2 s timeout */
  cr_assert_lt(fast.max_fail_ms, 500, "slowest failure took %llu ms",
               (unsigned long long)fast.max_fail_ms);
  cr_assert_geq(h_requests(&h, "breaker_open"), 400);
  h_close(&h);
}

/* ---- the only instance comes back ------------------------------------------ */

typedef struct probe_s {
  harness_t *h;
  int done, ok, last_err;
  bool in_flight;
} probe_t;

static void probe_done(int err, const msvc_http_response_t *res, void *data) {
  probe_t *p = data;

  p->in_flight = false;
  p->done++;
  p->last_err = err;
  if (err == 0 && msvc_http_response_status(res) == 200)
    p->ok++;
}

static bool probe_finished(void *arg) { return !((probe_t *)arg)->in_flight; }

/* One call, run to its end; true when it got a 200. */
static bool probe_once(probe_t *p) {
  msvc_service_request_t req;
  int ok = p->ok;

  msvc_service_request_init(&req);
  req.target = "/hello";
  req.timeout_ms = 1000;
  req.on_done = probe_done;
  req.data = p;
  p->in_flight = true;
  cr_assert_eq(msvc__caller_call(p->h->caller, p->h->svc, &req, NULL, NULL), MSVC_OK);
  cr_assert(h_run_until(p->h, probe_finished, p, 5000));
  return p->ok > ok;
}

Test(call_faults, returning_instance_is_probed_at_once) {
  harness_t h;
  probe_t p;
  inst_t *only;
  h_lease_t again;
  uint64_t t0, took;
  int i;

  /* an open period far longer than the wait the test allows */
  h_init(&h, "calls-return", MSVC_LB_ROUND_ROBIN, 6000);
  only = h_add_instance(&h, 0);
  memset(&p, 0, sizeof(p));
  p.h = &h;
  cr_assert(probe_once(&p));
  h_kill(only);
  for (i = 0; i < 40 && h_breaker_state(&h, only) != 1; i++)
    cr_assert_not(probe_once(&p));
  cr_assert_eq(h_breaker_state(&h, only), 1, "the breaker did not open");
  cr_assert_not(probe_once(&p));
  cr_assert_eq(p.last_err, MSVC_EBREAKER_OPEN);

  /* the process comes back on its port and registers anew */
  t0 = msvc_now_ms();
  h_restart(only);
  h_register_port(&h, only->port, &again);
  while (!probe_once(&p) && msvc_now_ms() - t0 < 4000)
    ;
  took = msvc_now_ms() - t0;
  cr_log_info("first success %llu ms after the restart (open period 6000 ms)",
              (unsigned long long)took);
  cr_assert_lt(took, 1000, "callers waited %llu ms for the returning instance (last %s)",
               (unsigned long long)took, msvc_err_name(p.last_err));
  cr_assert_geq(h_transitions(&h, only, MSVC_BREAKER_HALF_OPEN), 1);
  /* and it takes the traffic again */
  for (i = 0; i < 20; i++)
    cr_assert(probe_once(&p), "call %d: %s", i, msvc_err_name(p.last_err));
  cr_assert_eq(h_breaker_state(&h, only), 0);
  h_close(&h);
}
