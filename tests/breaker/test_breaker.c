/*
 * State machine of the circuit breaker, driven by scripts with an injected
 * clock: each scenario is a list of steps and the exact list of transitions
 * the callback must have seen.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msvc/breaker.h>
#include <msvc/error.h>


enum { END, ACQ, REC, CALLS, STATE, MOVE, RESET, UNTIL, STATS };

#define S MSVC_BREAKER_SUCCESS
#define F MSVC_BREAKER_FAILURE
#define I MSVC_BREAKER_IGNORED
#define OK MSVC_OK
#define EOPEN MSVC_EBREAKER_OPEN

typedef struct step_s {
  int op;
  uint64_t t;    /* now_ms */
  int n;         /* permit slot, or how many calls */
  int arg;       /* outcome, or a state */
  uint64_t dur;  /* duration; UNTIL: expected open_until; STATS: calls */
  int expect;    /* return code, or the expected state */
} step_t;

typedef struct scenario_s {
  const char *name;
  void (*configure)(msvc_breaker_opts_t *o);
  const char *transitions;
  step_t steps[32];
} scenario_t;

typedef struct log_s {
  char text[1024];
} log_t;

static void on_transition(void *data, msvc_breaker_t *b,
                          msvc_breaker_state_t from, msvc_breaker_state_t to,
                          msvc_breaker_reason_t reason, uint64_t now_ms) {
  log_t *log = data;
  size_t len = strlen(log->text);

  (void)b;
  snprintf(log->text + len, sizeof(log->text) - len, "%s%llu:%s>%s:%s",
           len ? " " : "", (unsigned long long)now_ms,
           msvc_breaker_state_name(from), msvc_breaker_state_name(to),
           msvc_breaker_reason_name(reason));
}

/* Small numbers so every threshold edge is reachable in a few steps. */
static void count10(msvc_breaker_opts_t *o) {
  o->window_type = MSVC_BREAKER_WINDOW_COUNT;
  o->window_calls = 10;
  o->minimum_calls = 10;
  o->failure_rate_threshold = 50;
  o->wait_in_open_ms = 1000;
  o->wait_in_open_max_ms = 3000;
  o->backoff_reset_ms = 60000;
  o->permitted_calls_in_half_open = 2;
  o->max_wait_in_half_open_ms = 5000;
}

static void clamp_min(msvc_breaker_opts_t *o) {
  count10(o);
  o->window_calls = 4;
  o->minimum_calls = 1000;
}

static void slow4(msvc_breaker_opts_t *o) {
  count10(o);
  o->minimum_calls = 4;
  o->slow_call_duration_ms = 100;
  o->slow_call_rate_threshold = 50;
  o->failure_rate_threshold = 100;
}

static void probes4(msvc_breaker_opts_t *o) {
  count10(o);
  o->minimum_calls = 2;
  o->permitted_calls_in_half_open = 4;
}

static void time3(msvc_breaker_opts_t *o) {
  count10(o);
  o->window_type = MSVC_BREAKER_WINDOW_TIME;
  o->window_seconds = 3;
  o->minimum_calls = 4;
}

static void no_half_open_timeout(msvc_breaker_opts_t *o) {
  count10(o);
  o->minimum_calls = 2;
  o->max_wait_in_half_open_ms = 0;
}

static const scenario_t scenarios[] = {
  {"opens_at_exact_failure_rate", count10,
   "0:closed>open:failure_rate",
   {{CALLS, 0, 5, S, 0, OK}, {CALLS, 0, 4, F, 0, OK},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED}, /* 4/9: too few calls */
    {CALLS, 0, 1, F, 0, OK},                  /* 5/10 = 50% */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN},
    {UNTIL, 0, 0, 0, 1000, 0},
    {CALLS, 0, 1, S, 0, EOPEN}}},
  {"opens_when_the_window_slides_to_threshold", count10,
   "0:closed>open:failure_rate",
   {{CALLS, 0, 6, S, 0, OK}, {CALLS, 0, 4, F, 0, OK},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED}, /* 4/10: below */
    {CALLS, 0, 1, F, 0, OK}, /* evicts a success: 5/10 */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"below_minimum_calls_never_opens", count10, "",
   {{CALLS, 0, 9, F, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {STATS, 0, 0, 0, 9, 0}}},
  {"success_never_opens_but_next_failure_does", count10,
   "0:closed>open:failure_rate",
   {{CALLS, 0, 5, F, 0, OK}, {CALLS, 0, 5, S, 0, OK},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {CALLS, 0, 1, F, 0, OK}, /* evicts a failure: still 5/10 */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"ignored_outcomes_do_not_count", count10, "",
   {{CALLS, 0, 50, I, 0, OK}, {CALLS, 0, 4, F, 0, OK},
    {STATS, 0, 0, 0, 4, 0}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED}}},
  {"minimum_calls_is_clamped_to_count_window", clamp_min,
   "0:closed>open:failure_rate",
   {{CALLS, 0, 3, F, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {CALLS, 0, 1, F, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"slow_call_rate_edge", slow4, "0:closed>open:slow_call_rate",
   {{CALLS, 0, 2, S, 100, OK}, /* exactly the limit: not slow */
    {CALLS, 0, 1, S, 101, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {STATS, 0, 0, 0, 3, 0},
    {CALLS, 0, 1, S, 101, OK}, /* 2/4 slow */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"open_wait_then_probes_close", count10,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "1002:half_open>closed:probes_succeeded",
   {{CALLS, 0, 10, F, 0, OK},
    {ACQ, 999, 0, 0, 0, EOPEN},
    {ACQ, 1000, 0, 0, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN},
    {ACQ, 1000, 1, 0, 0, OK},
    {ACQ, 1000, 2, 0, 0, EOPEN}, /* both probes out */
    {REC, 1001, 0, S, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN},
    {REC, 1002, 1, S, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {STATS, 1002, 0, 0, 0, 0}, /* fresh window */
    {CALLS, 1002, 1, S, 0, OK}}},
  {"failed_probes_reopen_early_with_doubled_wait", probes4,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "1001:half_open>open:probes_failed",
   {{CALLS, 0, 2, F, 0, OK},
    {ACQ, 1000, 0, 0, 0, OK}, {ACQ, 1000, 1, 0, 0, OK},
    {ACQ, 1000, 2, 0, 0, OK},
    {REC, 1001, 0, F, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN},
    {REC, 1001, 1, F, 0, OK}, /* 2 of 4 already fail: no need to wait */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN},
    {UNTIL, 0, 0, 0, 3001, 0},
    {REC, 1002, 2, S, 0, OK}, /* late probe: dropped, not an error */
    {ACQ, 3000, 0, 0, 0, EOPEN}}},
  {"ignored_probe_frees_its_slot", count10,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed",
   {{CALLS, 0, 10, F, 0, OK},
    {ACQ, 1000, 0, 0, 0, OK}, {ACQ, 1000, 1, 0, 0, OK},
    {ACQ, 1000, 2, 0, 0, EOPEN},
    {REC, 1000, 0, I, 0, OK},
    {ACQ, 1000, 2, 0, 0, OK},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN}}},
  {"backoff_doubles_caps_and_resets", probes4,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "1000:half_open>open:probes_failed 3000:open>half_open:wait_elapsed "
   "3000:half_open>open:probes_failed 6000:open>half_open:wait_elapsed "
   "6000:half_open>open:probes_failed 9000:open>half_open:wait_elapsed "
   "9000:half_open>closed:probes_succeeded 9000:closed>open:failure_rate "
   "12000:open>half_open:wait_elapsed 12000:half_open>closed:probes_succeeded "
   "72000:closed>open:failure_rate",
   {{CALLS, 0, 2, F, 0, OK}, {UNTIL, 0, 0, 0, 1000, 0},
    {CALLS, 1000, 2, F, 0, OK}, {UNTIL, 0, 0, 0, 3000, 0},
    {CALLS, 3000, 2, F, 0, OK}, {UNTIL, 0, 0, 0, 6000, 0}, /* capped */
    {CALLS, 6000, 2, F, 0, OK}, {UNTIL, 0, 0, 0, 9000, 0},
    {CALLS, 9000, 4, S, 0, OK},
    {CALLS, 9000, 2, F, 0, OK}, /* re-open soon after closing: still grows */
    {UNTIL, 0, 0, 0, 12000, 0},
    {CALLS, 12000, 4, S, 0, OK},
    {CALLS, 72000, 2, F, 0, OK}, /* after a stable minute: from the start */
    {UNTIL, 0, 0, 0, 73000, 0}}},
  {"stuck_half_open_returns_to_open", count10,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "6000:half_open>open:half_open_timeout",
   {{CALLS, 0, 10, F, 0, OK},
    {ACQ, 1000, 0, 0, 0, OK}, {ACQ, 1000, 1, 0, 0, OK},
    {ACQ, 5999, 2, 0, 0, EOPEN},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN},
    {ACQ, 6000, 2, 0, 0, EOPEN},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN},
    {UNTIL, 0, 0, 0, 8000, 0},
    {REC, 6001, 0, S, 0, OK}, /* the lost probe finally answers */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"half_open_without_timeout_waits_forever", no_half_open_timeout,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed",
   {{CALLS, 0, 2, F, 0, OK},
    {ACQ, 1000, 0, 0, 0, OK}, {ACQ, 1000, 1, 0, 0, OK},
    {ACQ, 99000000, 2, 0, 0, EOPEN},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_HALF_OPEN}}},
  {"time_window_rolls_over", time3, "5999:closed>open:failure_rate",
   {{CALLS, 0, 3, F, 0, OK}, /* second 0 */
    {CALLS, 3000, 1, F, 0, OK}, /* second 0 has left the window */
    {STATS, 3000, 0, 0, 1, 0},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {CALLS, 4000, 1, S, 0, OK}, {CALLS, 5000, 1, S, 0, OK},
    {CALLS, 5999, 1, F, 0, OK}, /* 2 of 4 in seconds 3..5 */
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_OPEN}}},
  {"time_window_gap_forgets_everything", time3, "",
   {{CALLS, 0, 3, F, 0, OK}, {STATS, 2999, 0, 0, 3, 0},
    {CALLS, 3600000, 1, F, 0, OK}, {STATS, 3600000, 0, 0, 1, 0},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED}}},
  {"forced_open_rejects_until_moved", count10,
   "0:closed>forced_open:manual 10000000:forced_open>closed:manual",
   {{MOVE, 0, 0, MSVC_BREAKER_FORCED_OPEN, 0, OK},
    {MOVE, 0, 0, MSVC_BREAKER_FORCED_OPEN, 0, OK}, /* no-op, no event */
    {ACQ, 5000000, 0, 0, 0, EOPEN},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_FORCED_OPEN},
    {MOVE, 10000000, 0, MSVC_BREAKER_CLOSED, 0, OK},
    {CALLS, 10000000, 1, S, 0, OK}}},
  {"disabled_allows_and_records_but_never_opens", count10,
   "0:closed>disabled:manual",
   {{MOVE, 0, 0, MSVC_BREAKER_DISABLED, 0, OK},
    {CALLS, 0, 20, F, 0, OK}, {STATS, 0, 0, 0, 10, 0},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_DISABLED}}},
  {"metrics_only_evaluates_but_never_rejects", count10,
   "0:closed>metrics_only:manual",
   {{MOVE, 0, 0, MSVC_BREAKER_METRICS_ONLY, 0, OK},
    {CALLS, 0, 12, F, 0, OK}, {STATS, 0, 0, 0, 10, 0},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_METRICS_ONLY}}},
  {"manual_open_and_half_open", count10,
   "5:closed>open:manual 6:open>half_open:manual "
   "7:half_open>closed:probes_succeeded",
   {{MOVE, 5, 0, MSVC_BREAKER_OPEN, 0, OK}, {UNTIL, 0, 0, 0, 1005, 0},
    {MOVE, 6, 0, MSVC_BREAKER_HALF_OPEN, 0, OK},
    {CALLS, 7, 2, S, 0, OK}, {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED}}},
  {"reset_closes_and_forgets_backoff", probes4,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "1000:half_open>open:probes_failed 1500:open>closed:reset "
   "1500:closed>open:failure_rate",
   {{CALLS, 0, 2, F, 0, OK}, {CALLS, 1000, 2, F, 0, OK},
    {UNTIL, 0, 0, 0, 3000, 0},
    {RESET, 1500, 0, 0, 0, OK}, {RESET, 1500, 0, 0, 0, OK},
    {STATE, 0, 0, 0, 0, MSVC_BREAKER_CLOSED},
    {CALLS, 1500, 2, F, 0, OK}, {UNTIL, 0, 0, 0, 2500, 0}}},
  {"stale_closed_permit_is_dropped", count10,
   "0:closed>open:failure_rate 1000:open>half_open:wait_elapsed "
   "1000:half_open>closed:probes_succeeded",
   {{ACQ, 0, 5, 0, 0, OK}, /* taken while closed, answered much later */
    {CALLS, 0, 10, F, 0, OK},
    {CALLS, 1000, 2, S, 0, OK},
    {REC, 1000, 5, F, 0, OK},
    {STATS, 1000, 0, 0, 0, 0}}},
  {"permits_are_single_use", count10, "",
   {{ACQ, 0, 0, 0, 0, OK}, {REC, 0, 0, S, 0, OK},
    {REC, 0, 0, S, 0, MSVC_EBREAKER_PERMIT},
    {REC, 0, 9, S, 0, MSVC_EBREAKER_PERMIT}, /* never acquired */
    {STATS, 0, 0, 0, 1, 0}}},
};

static void check(msvc_breaker_t *b, const scenario_t *sc, size_t i,
                  msvc_breaker_permit_t *permits) {
  const step_t *st = &sc->steps[i];
  msvc_breaker_stats_t stats;
  int k, rc = OK;

  switch (st->op) {
  case ACQ:
    rc = msvc_breaker_acquire(b, st->t, &permits[st->n]);
    break;
  case REC:
    rc = msvc_breaker_record(b, &permits[st->n], st->arg, st->dur, st->t);
    break;
  case CALLS:
    for (k = 0; k < st->n && rc == OK; k++) {
      msvc_breaker_permit_t p;

      rc = msvc_breaker_acquire(b, st->t, &p);
      if (rc == OK)
        cr_assert_eq(msvc_breaker_record(b, &p, st->arg, st->dur, st->t), OK);
    }
    break;
  case STATE:
    cr_assert_eq((int)msvc_breaker_state(b), st->expect,
                 "%s step %zu: state %s",
                 sc->name, i, msvc_breaker_state_name(msvc_breaker_state(b)));
    return;
  case MOVE:
    rc = msvc_breaker_transition(b, st->arg, st->t);
    break;
  case RESET:
    rc = msvc_breaker_reset(b, st->t);
    break;
  case UNTIL:
  case STATS:
    cr_assert_eq(msvc_breaker_stats(b, st->t, &stats), OK);
    if (st->op == UNTIL)
      cr_assert_eq(stats.open_until_ms, st->dur, "%s step %zu: until %llu",
                   sc->name, i, (unsigned long long)stats.open_until_ms);
    else
      cr_assert_eq(stats.calls, st->dur, "%s step %zu: calls %llu", sc->name,
                   i, (unsigned long long)stats.calls);
    return;
  }
  cr_assert_eq(rc, st->expect, "%s step %zu: rc %s", sc->name, i,
               msvc_err_name(rc));
}

Test(breaker, scripted_scenarios) {
  size_t s, i;

  for (s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++) {
    const scenario_t *sc = &scenarios[s];
    msvc_breaker_permit_t permits[10];
    msvc_breaker_opts_t o;
    msvc_breaker_t *b;
    log_t log = {{0}};

    memset(permits, 0, sizeof(permits));
    msvc_breaker_opts_init(&o);
    sc->configure(&o);
    o.on_transition = on_transition;
    o.on_transition_data = &log;
    cr_assert_eq(msvc_breaker_new(&o, &b), OK, "%s", sc->name);
    for (i = 0; i < 32 && sc->steps[i].op != END; i++)
      check(b, sc, i, permits);
    cr_assert_str_eq(log.text, sc->transitions, "%s: transitions\n  got  %s",
                     sc->name, log.text);
    msvc_breaker_free(b);
  }
}

/* One out-of-range field per case. */
static void bad_window_type(msvc_breaker_opts_t *o) { o->window_type = 7; }
static void bad_seconds0(msvc_breaker_opts_t *o) { o->window_seconds = 0; }
static void bad_seconds(msvc_breaker_opts_t *o) { o->window_seconds = 3601; }
static void bad_calls0(msvc_breaker_opts_t *o) {
  o->window_type = MSVC_BREAKER_WINDOW_COUNT;
  o->window_calls = 0;
}
static void bad_calls(msvc_breaker_opts_t *o) {
  o->window_type = MSVC_BREAKER_WINDOW_COUNT;
  o->window_calls = 100001;
}
static void bad_minimum(msvc_breaker_opts_t *o) { o->minimum_calls = 0; }
static void bad_rate0(msvc_breaker_opts_t *o) {
  o->failure_rate_threshold = 0;
}
static void bad_rate(msvc_breaker_opts_t *o) {
  o->failure_rate_threshold = 100.5;
}
static void bad_rate_nan(msvc_breaker_opts_t *o) {
  o->failure_rate_threshold = NAN;
}
static void bad_slow_rate(msvc_breaker_opts_t *o) {
  o->slow_call_rate_threshold = -1;
}
static void bad_wait(msvc_breaker_opts_t *o) { o->wait_in_open_ms = 0; }
static void bad_wait_max(msvc_breaker_opts_t *o) {
  o->wait_in_open_max_ms = o->wait_in_open_ms - 1;
}
static void bad_jitter(msvc_breaker_opts_t *o) { o->wait_jitter = 1.0; }
static void bad_jitter_neg(msvc_breaker_opts_t *o) {
  o->wait_jitter = -0.1;
}
static void bad_probes0(msvc_breaker_opts_t *o) {
  o->permitted_calls_in_half_open = 0;
}
static void bad_probes(msvc_breaker_opts_t *o) {
  o->permitted_calls_in_half_open = 10001;
}

Test(breaker, options_are_validated) {
  static void (*const bad[])(msvc_breaker_opts_t *) = {
      bad_window_type, bad_seconds0,  bad_seconds,    bad_calls0,
      bad_calls,       bad_minimum,   bad_rate0,      bad_rate,
      bad_rate_nan,    bad_slow_rate, bad_wait,       bad_wait_max,
      bad_jitter,      bad_jitter_neg, bad_probes0,   bad_probes};
  msvc_breaker_opts_t o;
  msvc_breaker_t *b = NULL;
  size_t i;

  cr_assert_eq(msvc_breaker_new(NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_new(NULL, &b), OK);
  cr_assert_eq(msvc_breaker_state(b), MSVC_BREAKER_CLOSED);
  msvc_breaker_free(b);
  msvc_breaker_free(NULL);
  msvc_breaker_opts_init(NULL);

  msvc_breaker_opts_init(&o);
  o.size = sizeof(o) - 1;
  b = (msvc_breaker_t *)&o;
  cr_assert_eq(msvc_breaker_new(&o, &b), MSVC_EINVAL);
  cr_assert_null(b);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msvc_breaker_opts_init(&o);
    bad[i](&o);
    b = (msvc_breaker_t *)&o;
    cr_assert_eq(msvc_breaker_new(&o, &b), MSVC_ECONFIG, "case %zu", i);
    cr_assert_null(b, "case %zu", i);
  }
}

Test(breaker, defaults_are_documented_values) {
  msvc_breaker_opts_t o;

  msvc_breaker_opts_init(&o);
  cr_assert_eq(o.size, sizeof(o));
  cr_assert_eq(o.window_type, MSVC_BREAKER_WINDOW_TIME);
  cr_assert_eq(o.window_seconds, 10);
  cr_assert_eq(o.window_calls, 100);
  cr_assert_eq(o.minimum_calls, 20);
  cr_assert_float_eq(o.failure_rate_threshold, 50.0, 1e-9);
  cr_assert_float_eq(o.slow_call_rate_threshold, 100.0, 1e-9);
  cr_assert_eq(o.slow_call_duration_ms, 60000);
  cr_assert_eq(o.wait_in_open_ms, 30000);
  cr_assert_eq(o.wait_in_open_max_ms, 300000);
  cr_assert_eq(o.backoff_reset_ms, 300000);
  cr_assert_eq(o.permitted_calls_in_half_open, 5);
  cr_assert_eq(o.max_wait_in_half_open_ms, 30000);
  cr_assert_null(o.on_transition);
}

Test(breaker, null_and_bad_arguments) {
  msvc_breaker_t *b;
  msvc_breaker_permit_t p;
  msvc_breaker_stats_t st;

  cr_assert_eq(msvc_breaker_new(NULL, &b), OK);
  cr_assert_eq(msvc_breaker_acquire(NULL, 0, &p), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_acquire(b, 0, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_acquire(b, 0, &p), OK);
  cr_assert_eq(msvc_breaker_record(NULL, &p, S, 0, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_record(b, NULL, S, 0, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_record(b, &p, (msvc_breaker_outcome_t)3, 0, 0),
               MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_record(b, &p, (msvc_breaker_outcome_t)-1, 0, 0),
               MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_record(b, &p, S, 0, 0), OK); /* still valid */
  p.token = (uint64_t)1 << 60; /* a generation that never existed */
  cr_assert_eq(msvc_breaker_record(b, &p, S, 0, 0), MSVC_EBREAKER_PERMIT);
  p.token = 1u << 4 | MSVC_BREAKER_OPEN; /* no permit is made in OPEN */
  cr_assert_eq(msvc_breaker_record(b, &p, S, 0, 0), MSVC_EBREAKER_PERMIT);
  cr_assert_eq(msvc_breaker_transition(NULL, MSVC_BREAKER_OPEN, 0),
               MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_transition(b, (msvc_breaker_state_t)6, 0),
               MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_reset(NULL, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_stats(NULL, 0, &st), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_stats(b, 0, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_breaker_state(NULL), MSVC_BREAKER_CLOSED);
  cr_assert_not(msvc_breaker_is_rejecting(NULL, 0));
  cr_assert_str_eq(msvc_breaker_state_name((msvc_breaker_state_t)42),
                   "unknown");
  cr_assert_str_eq(msvc_breaker_reason_name((msvc_breaker_reason_t)42),
                   "unknown");
  cr_assert_str_eq(msvc_err_name(MSVC_EBREAKER_PERMIT), "EBREAKER_PERMIT");
  msvc_breaker_free(b);
}

Test(breaker, stats_report_rates_and_counters) {
  msvc_breaker_opts_t o;
  msvc_breaker_t *b;
  msvc_breaker_permit_t p;
  msvc_breaker_stats_t st;
  int i;

  msvc_breaker_opts_init(&o);
  count10(&o);
  o.minimum_calls = 4;
  o.slow_call_duration_ms = 10;
  o.failure_rate_threshold = 90;
  cr_assert_eq(msvc_breaker_new(&o, &b), OK);
  for (i = 0; i < 3; i++) {
    cr_assert_eq(msvc_breaker_acquire(b, 0, &p), OK);
    cr_assert_eq(msvc_breaker_record(b, &p, i == 0 ? F : S, i == 1 ? 11 : 1,
                                     0), OK);
  }
  cr_assert_eq(msvc_breaker_stats(b, 0, &st), OK);
  cr_assert_eq(st.calls, 3);
  cr_assert_eq(st.failures, 1);
  cr_assert_eq(st.slow_calls, 1);
  cr_assert_float_eq(st.failure_rate, -1.0, 1e-9); /* below minimum */
  cr_assert_eq(msvc_breaker_acquire(b, 0, &p), OK);
  cr_assert_eq(msvc_breaker_record(b, &p, S, 1, 0), OK);
  cr_assert_eq(msvc_breaker_stats(b, 0, &st), OK);
  cr_assert_float_eq(st.failure_rate, 25.0, 1e-9);
  cr_assert_float_eq(st.slow_call_rate, 25.0, 1e-9);
  cr_assert_eq(st.not_permitted, 0);
  cr_assert_eq(msvc_breaker_transition(b, MSVC_BREAKER_FORCED_OPEN, 1), OK);
  for (i = 0; i < 7; i++)
    cr_assert_eq(msvc_breaker_acquire(b, 2, &p), EOPEN);
  cr_assert_eq(msvc_breaker_stats(b, 2, &st), OK);
  cr_assert_eq(st.not_permitted, 7);
  cr_assert_eq(st.transitions, 1);
  cr_assert_eq(st.state, MSVC_BREAKER_FORCED_OPEN);
  cr_assert_eq(st.calls, 0);
  msvc_breaker_free(b);
}

Test(breaker, metrics_only_counts_would_be_openings) {
  msvc_breaker_opts_t o;
  msvc_breaker_t *b;
  msvc_breaker_permit_t p;
  msvc_breaker_stats_t st;
  int i;

  msvc_breaker_opts_init(&o);
  count10(&o);
  o.minimum_calls = 2;
  cr_assert_eq(msvc_breaker_new(&o, &b), OK);
  cr_assert_eq(msvc_breaker_transition(b, MSVC_BREAKER_METRICS_ONLY, 0), OK);
  for (i = 0; i < 5; i++) {
    cr_assert_eq(msvc_breaker_acquire(b, 0, &p), OK);
    cr_assert_eq(msvc_breaker_record(b, &p, F, 0, 0), OK);
  }
  cr_assert_eq(msvc_breaker_stats(b, 0, &st), OK);
  cr_assert_eq(st.threshold_breaches, 4); /* from the 2nd failure on */
  cr_assert_eq(st.state, MSVC_BREAKER_METRICS_ONLY);
  cr_assert_float_eq(st.failure_rate, 100.0, 1e-9);
  msvc_breaker_free(b);
}

Test(breaker, is_rejecting_follows_state_and_time) {
  msvc_breaker_opts_t o;
  msvc_breaker_t *b;
  msvc_breaker_permit_t p[2];
  int i;

  msvc_breaker_opts_init(&o);
  count10(&o);
  cr_assert_eq(msvc_breaker_new(&o, &b), OK);
  cr_assert_not(msvc_breaker_is_rejecting(b, 0));
  for (i = 0; i < 10; i++) {
    cr_assert_eq(msvc_breaker_acquire(b, 0, &p[0]), OK);
    cr_assert_eq(msvc_breaker_record(b, &p[0], F, 0, 0), OK);
  }
  cr_assert(msvc_breaker_is_rejecting(b, 999));
  cr_assert_not(msvc_breaker_is_rejecting(b, 1000));
  cr_assert_eq(msvc_breaker_state(b), MSVC_BREAKER_OPEN); /* no side effect */
  cr_assert_eq(msvc_breaker_acquire(b, 1000, &p[0]), OK);
  cr_assert_not(msvc_breaker_is_rejecting(b, 1000));
  cr_assert_eq(msvc_breaker_acquire(b, 1000, &p[1]), OK);
  cr_assert(msvc_breaker_is_rejecting(b, 1000));
  cr_assert_eq(msvc_breaker_transition(b, MSVC_BREAKER_FORCED_OPEN, 1), OK);
  cr_assert(msvc_breaker_is_rejecting(b, UINT64_MAX));
  cr_assert_eq(msvc_breaker_transition(b, MSVC_BREAKER_DISABLED, 1), OK);
  cr_assert_not(msvc_breaker_is_rejecting(b, 1));
  msvc_breaker_free(b);
}

Test(breaker, jitter_spreads_the_open_wait) {
  msvc_breaker_opts_t o;
  msvc_breaker_stats_t st;
  uint64_t lo = UINT64_MAX, hi = 0;
  int i;

  msvc_breaker_opts_init(&o);
  o.wait_in_open_ms = 1000;
  o.wait_jitter = 0.5;
  for (i = 0; i < 200; i++) {
    msvc_breaker_t *b;

    cr_assert_eq(msvc_breaker_new(&o, &b), OK);
    cr_assert_eq(msvc_breaker_transition(b, MSVC_BREAKER_OPEN, 10000), OK);
    cr_assert_eq(msvc_breaker_stats(b, 10000, &st), OK);
    cr_assert_geq(st.open_until_ms, 10500);
    cr_assert_leq(st.open_until_ms, 11500);
    lo = st.open_until_ms < lo ? st.open_until_ms : lo;
    hi = st.open_until_ms > hi ? st.open_until_ms : hi;
    msvc_breaker_free(b);
  }
  cr_assert_lt(lo, 10900);
  cr_assert_gt(hi, 11100);
}

/* A callback that calls back into the breaker: reading it, and resetting it
 * as soon as it opens. The reset must be delivered after, not inside, the
 * first call, and nothing may deadlock. */
typedef struct reentry_s {
  log_t log;
  int depth;
  int max_depth;
  msvc_breaker_state_t seen_state;
} reentry_t;

static void on_transition_reenter(void *data, msvc_breaker_t *b,
                                  msvc_breaker_state_t from,
                                  msvc_breaker_state_t to,
                                  msvc_breaker_reason_t reason,
                                  uint64_t now_ms) {
  reentry_t *r = data;
  msvc_breaker_stats_t st;
  msvc_breaker_permit_t p;

  r->depth++;
  if (r->depth > r->max_depth)
    r->max_depth = r->depth;
  on_transition(&r->log, b, from, to, reason, now_ms);
  cr_assert_eq(msvc_breaker_stats(b, now_ms, &st), OK);
  r->seen_state = msvc_breaker_state(b);
  if (to == MSVC_BREAKER_OPEN) {
    cr_assert_eq(msvc_breaker_acquire(b, now_ms, &p), EOPEN);
    cr_assert_eq(msvc_breaker_reset(b, now_ms + 1), OK);
  }
  r->depth--;
}

Test(breaker, callback_may_call_back_into_the_breaker) {
  msvc_breaker_opts_t o;
  msvc_breaker_t *b;
  msvc_breaker_permit_t p;
  reentry_t r;
  int i;

  memset(&r, 0, sizeof(r));
  msvc_breaker_opts_init(&o);
  count10(&o);
  o.minimum_calls = 2;
  o.on_transition = on_transition_reenter;
  o.on_transition_data = &r;
  cr_assert_eq(msvc_breaker_new(&o, &b), OK);
  for (i = 0; i < 2; i++) {
    cr_assert_eq(msvc_breaker_acquire(b, 5, &p), OK);
    cr_assert_eq(msvc_breaker_record(b, &p, F, 0, 5), OK);
  }
  cr_assert_str_eq(r.log.text,
                   "5:closed>open:failure_rate 6:open>closed:reset");
  cr_assert_eq(r.max_depth, 1);
  cr_assert_eq(r.seen_state, MSVC_BREAKER_CLOSED);
  cr_assert_eq(msvc_breaker_state(b), MSVC_BREAKER_CLOSED);
  msvc_breaker_free(b);
}
