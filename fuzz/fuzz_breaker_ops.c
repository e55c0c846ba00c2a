/*
 * Drives one breaker with an arbitrary sequence of operations (acquire,
 * record with any outcome and duration, time jumps, operator transitions,
 * resets) and checks its invariants after every step: a valid state, never
 * more probes out than permitted, a permit count that matches what was
 * handed out, and errors only where the API documents them.
 */
#include <stdint.h>
#include <string.h>

#include <msvc/breaker.h>
#include <msvc/error.h>

#define SLOTS 8

typedef struct fuzz_s {
  msvc_breaker_t *b;
  msvc_breaker_permit_t permits[SLOTS];
  int held[SLOTS];
  uint64_t now;
  uint32_t permitted;
} fuzz_t;

static void check(int ok) {
  if (!ok)
    __builtin_trap();
}

static void configure(msvc_breaker_opts_t *o, const uint8_t *d) {
  msvc_breaker_opts_init(o);
  o->window_type = d[0] & 1 ? MSVC_BREAKER_WINDOW_COUNT
                            : MSVC_BREAKER_WINDOW_TIME;
  o->window_seconds = 1u + d[1] % 8u;
  o->window_calls = 1u + d[1] % 16u;
  o->minimum_calls = 1u + d[2] % 20u;
  o->failure_rate_threshold = 1.0 + (double)(d[3] % 100u);
  o->slow_call_rate_threshold = 1.0 + (double)(d[4] % 100u);
  o->slow_call_duration_ms = d[5];
  o->wait_in_open_ms = 1u + d[6];
  o->wait_in_open_max_ms = o->wait_in_open_ms * (1u + d[7] % 8u);
  o->permitted_calls_in_half_open = 1u + d[0] % 4u;
  o->max_wait_in_half_open_ms = (uint64_t)(d[6] % 4u) * 100u;
  o->backoff_reset_ms = 1000u * (d[7] % 4u);
}

static void step(fuzz_t *f, uint8_t op, uint8_t arg) {
  unsigned slot = arg % SLOTS;
  msvc_breaker_stats_t st;
  int rc;

  switch (op % 6) {
  case 0:
  case 1:
    if (f->held[slot])
      break;
    rc = msvc_breaker_acquire(f->b, f->now, &f->permits[slot]);
    check(rc == MSVC_OK || rc == MSVC_EBREAKER_OPEN);
    f->held[slot] = rc == MSVC_OK;
    break;
  case 2:
    rc = msvc_breaker_record(f->b, &f->permits[slot],
                             (msvc_breaker_outcome_t)(arg % 3),
                             (uint64_t)(arg >> 2) * 4u, f->now);
    check(rc == (f->held[slot] ? MSVC_OK : MSVC_EBREAKER_PERMIT));
    f->held[slot] = 0;
    break;
  case 3:
    f->now += (uint64_t)arg * (arg > 200 ? 1000u : 7u);
    break;
  case 4:
    check(msvc_breaker_transition(f->b, (msvc_breaker_state_t)(arg % 6),
                                  f->now) == MSVC_OK);
    break;
  case 5:
    check(msvc_breaker_reset(f->b, f->now) == MSVC_OK);
    break;
  }
  check(msvc_breaker_stats(f->b, f->now, &st) == MSVC_OK);
  check(st.state <= MSVC_BREAKER_METRICS_ONLY);
  check(st.probes_in_flight <= f->permitted);
  check(st.calls >= st.failures && st.calls >= st.slow_calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_breaker_opts_t o;
  fuzz_t f;
  size_t i;

  if (size < 8)
    return 0;
  memset(&f, 0, sizeof(f));
  configure(&o, data);
  f.permitted = o.permitted_calls_in_half_open;
  f.now = 1000000;
  if (msvc_breaker_new(&o, &f.b) != MSVC_OK)
    return 0;
  for (i = 8; i + 1 < size; i += 2)
    step(&f, data[i], data[i + 1]);
  msvc_breaker_free(f.b);
  return 0;
}
