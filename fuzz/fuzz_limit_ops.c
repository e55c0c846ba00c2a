/*
 * Drives one rate limiter with an arbitrary sequence of checks, refunds,
 * share changes and time steps, and checks after every step that no key
 * was granted more than its bucket could ever hold plus what it regained:
 * the units taken from a key (a token is period x share units) never
 * exceed the largest bucket it had, plus rate units per millisecond since
 * it first appeared, plus the units given back. Also: the answer's fields
 * agree with the return code, and the table never holds more keys than
 * its cap. A second, small limiter takes a flood of keys for the cap.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/limit.h>

#define KEYS 24

typedef struct model_s {
  bool seen;
  uint64_t first_ms;
  uint64_t taken;    /* units */
  uint64_t refunded; /* units */
  uint64_t cap_max;  /* units */
} model_t;

static void check(int ok) {
  if (!ok) __builtin_trap();
}

static uint8_t next(const uint8_t **p, const uint8_t *end) {
  return *p < end ? *(*p)++ : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p = data, *end = data + size;
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl, *small;
  msvc_limit_rate_stats_t st;
  model_t m[KEYS];
  uint64_t now = 1000;
  uint32_t share = 1;
  char key[80];
  unsigned flood = 0;

  msvc_limit_rate_opts_init(&o);
  o.rate = 1u + next(&p, end) % 50;
  o.period_ms = 1u + (uint32_t)next(&p, end) * 7u;
  o.burst = 1u + next(&p, end) % 20;
  o.max_keys = 64;
  o.shards = 1; /* no key is forgotten: the model holds */
  if (msvc_limit_rate_new(&o, &rl) != MSVC_OK) return 0;
  o.max_keys = 16;
  o.shards = 4;
  if (msvc_limit_rate_new(&o, &small) != MSVC_OK) {
    msvc_limit_rate_free(rl);
    return 0;
  }
  memset(m, 0, sizeof(m));
  while (p < end) {
    uint8_t op = next(&p, end), k = next(&p, end) % KEYS, arg = next(&p, end);
    uint64_t token = (uint64_t)o.period_ms * share;
    uint64_t cap = (uint64_t)o.burst * o.period_ms > token ? (uint64_t)o.burst * o.period_ms
                                                           : token;
    msvc_limit_result_t r;
    size_t len;
    int rc;

    /* Keys 0..7 short, 8.. long (stored as digests). */
    len = (size_t)snprintf(key, sizeof(key), k < 8 ? "k%u" : "a-long-key-%u-%060u", k, k);
    switch (op % 5) {
    case 0: /* check */
    case 1: {
      uint32_t cost = 1u + arg % 4;

      if (!m[k].seen) {
        m[k].seen = true;
        m[k].first_ms = now;
      }
      if (cap > m[k].cap_max) m[k].cap_max = cap;
      rc = msvc_limit_rate_check(rl, key, len, cost, now, &r);
      check(rc == MSVC_OK || rc == MSVC_ELIMIT);
      check(r.allowed == (rc == MSVC_OK));
      check(r.remaining <= r.limit && r.limit >= 1);
      check(rc == MSVC_OK ? r.retry_after_ms == 0 : r.retry_after_ms > 0);
      if (rc == MSVC_OK) m[k].taken += token * cost;
      check(m[k].taken <= m[k].cap_max + (now - m[k].first_ms) * o.rate + m[k].refunded);
      break;
    }
    case 2: /* refund */
      check(msvc_limit_rate_refund(rl, key, len, 1u + arg % 2, now) == MSVC_OK);
      if (m[k].seen) m[k].refunded += token * (1u + arg % 2);
      break;
    case 3: /* share */
      share = arg % 9;
      check(msvc_limit_rate_set_share(rl, share) == MSVC_OK);
      if (share == 0) share = 1;
      check(msvc_limit_rate_share(rl) == share);
      break;
    default: /* time, and a few keys of the flood */
      now += arg % 2 == 0 ? arg : (uint64_t)arg * 1000;
      for (int i = 0; i < 4; i++, flood++) {
        len = (size_t)snprintf(key, sizeof(key), "f%u", flood);
        rc = msvc_limit_rate_check(small, key, len, 1, now, NULL);
        check(rc == MSVC_OK || rc == MSVC_ELIMIT);
      }
      check(msvc_limit_rate_stats(small, &st) == MSVC_OK && st.keys <= 16);
      break;
    }
  }
  check(msvc_limit_rate_stats(rl, &st) == MSVC_OK && st.keys <= KEYS);
  msvc_limit_rate_free(rl);
  msvc_limit_rate_free(small);
  return 0;
}
