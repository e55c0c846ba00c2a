/*
 * The adaptive concurrency limit, driven by an injected clock and
 * synthetic latencies: it sheds above the limit, shrinks when latency
 * builds up, grows back when latency is fine and the limit is used.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include <msvc/error.h>
#include <msvc/limit.h>

#include "limit/limit-internal.h"

#define NPERMITS 2000

static msvc_limit_permit_t permits[NPERMITS];

static msvc_limit_adaptive_t *make(uint32_t initial, uint32_t min, uint32_t max,
                                   bool fixed) {
  msvc_limit_adaptive_opts_t o;
  msvc_limit_adaptive_t *cl;

  msvc_limit_adaptive_opts_init(&o);
  o.initial = initial;
  o.min_limit = min;
  o.max_limit = max;
  o.fixed = fixed;
  o.tolerance = 2.0;
  o.window_ms = 100;
  o.window_min_samples = 10;
  cr_assert_eq(msvc_limit_adaptive_new(&o, &cl), MSVC_OK);
  return cl;
}

/* One window: `hold` requests in flight at once (as many as the limit
 * lets in), all answered after latency_us; repeated until the window has
 * enough samples, then time moves past the window. */
static uint32_t window(msvc_limit_adaptive_t *cl, uint64_t *t, uint32_t hold,
                       uint64_t latency_us) {
  uint32_t samples = 0, i, got;

  while (samples < 10) {
    for (got = 0; got < hold && got < NPERMITS; got++)
      if (msvc__limit_adaptive_acquire_at(cl, *t, *t * 1000, &permits[got]) != MSVC_OK) break;
    for (i = 0; i < got; i++)
      msvc_limit_adaptive_release(cl, &permits[i], MSVC_LIMIT_SUCCESS, latency_us, *t);
    samples += got;
    *t += 1;
  }
  *t += 100;
  /* The sample that closes the window. */
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, *t, *t * 1000, &permits[0]), MSVC_OK);
  msvc_limit_adaptive_release(cl, &permits[0], MSVC_LIMIT_SUCCESS, latency_us, *t);
  return msvc_limit_adaptive_limit(cl);
}

Test(limit_adaptive, sheds_above_the_limit) {
  msvc_limit_adaptive_t *cl = make(3, 1, 10, true);
  msvc_limit_permit_t p[4];

  cr_assert_eq(msvc_limit_adaptive_acquire(cl, 0, &p[0]), MSVC_OK);
  cr_assert_eq(msvc_limit_adaptive_acquire(cl, 0, &p[1]), MSVC_OK);
  cr_assert_eq(msvc_limit_adaptive_acquire(cl, 0, &p[2]), MSVC_OK);
  cr_assert_eq(msvc_limit_adaptive_inflight(cl), 3);
  cr_assert_eq(msvc_limit_adaptive_acquire(cl, 0, &p[3]), MSVC_ELIMIT);
  cr_assert_not(p[3].held);
  msvc_limit_adaptive_release(cl, &p[1], MSVC_LIMIT_SUCCESS, 5000000, 10);
  msvc_limit_adaptive_release(cl, &p[1], MSVC_LIMIT_SUCCESS, 5000000, 10); /* twice: ignored */
  cr_assert_eq(msvc_limit_adaptive_inflight(cl), 2);
  cr_assert_eq(msvc_limit_adaptive_acquire(cl, 0, &p[3]), MSVC_OK);
  msvc_limit_adaptive_release(cl, &p[0], MSVC_LIMIT_IGNORED, 0, 10);
  msvc_limit_adaptive_release(cl, &p[2], MSVC_LIMIT_DROPPED, 0, 10);
  msvc_limit_adaptive_release(cl, &p[3], MSVC_LIMIT_SUCCESS, 1, 10);
  cr_assert_eq(msvc_limit_adaptive_inflight(cl), 0);
  cr_assert_eq(msvc_limit_adaptive_limit(cl), 3, "a fixed limit never moves");
  msvc_limit_adaptive_free(cl);
}

Test(limit_adaptive, bad_options) {
  msvc_limit_adaptive_opts_t o;
  msvc_limit_adaptive_t *cl;

  msvc_limit_adaptive_opts_init(&o);
  o.min_limit = 0;
  cr_assert_eq(msvc_limit_adaptive_new(&o, &cl), MSVC_EINVAL);
  msvc_limit_adaptive_opts_init(&o);
  o.initial = 6000;
  cr_assert_eq(msvc_limit_adaptive_new(&o, &cl), MSVC_EINVAL);
  msvc_limit_adaptive_opts_init(&o);
  o.tolerance = 0.5;
  cr_assert_eq(msvc_limit_adaptive_new(&o, &cl), MSVC_EINVAL);
  cr_assert_eq(msvc_limit_adaptive_new(NULL, &cl), MSVC_OK);
  cr_assert_eq(msvc_limit_adaptive_limit(cl), 1000);
  msvc_limit_adaptive_free(cl);
  msvc_limit_adaptive_free(NULL);
  cr_assert_eq(msvc_limit_adaptive_acquire(NULL, 0, NULL), MSVC_EINVAL);
}

/* A service of 4 parallel servers taking 2 ms each: with L requests in
 * flight, latency is 2 ms x L / 4. The limit must come down to where the
 * queue stays within the tolerance (about 2 x 4), then grow back when the
 * overload is over. */
Test(limit_adaptive, learns_the_limit_from_latency) {
  msvc_limit_adaptive_t *cl = make(100, 2, 400, false);
  uint64_t t = 1000;
  uint32_t lim = 0;
  int i;

  /* Unloaded: a few in flight at 2 ms. The limit is not used, so it does
   * not grow; the baseline settles at 2 ms. */
  for (i = 0; i < 5; i++)
    lim = window(cl, &t, 3, 2000);
  cr_assert_eq(lim, 100);
  cr_assert_eq(msvc_limit_adaptive_baseline_us(cl) / 100, 2000 * 101 / 10000,
               "baseline ~2 ms (+1%% drift), got %llu",
               (unsigned long long)msvc_limit_adaptive_baseline_us(cl));
  /* Overloaded: every permit is taken, queueing grows with the limit. */
  for (i = 0; i < 30; i++) {
    uint32_t l = msvc_limit_adaptive_limit(cl);
    uint64_t lat = l <= 4 ? 2000 : 2000ull * l / 4;

    lim = window(cl, &t, NPERMITS, lat);
  }
  cr_assert_leq(lim, 16, "limit %u after overload", lim);
  cr_assert_geq(lim, 2);
  /* The overload is over: latency is back to 2 ms with the limit in use. */
  for (i = 0; i < 20; i++)
    lim = window(cl, &t, msvc_limit_adaptive_limit(cl), 2000);
  cr_assert_geq(lim, 100, "limit %u after recovery", lim);
  msvc_limit_adaptive_free(cl);
}

/* A back-off leaves a fraction behind (2 x 0.7 = 1.4: one request, and a
 * second late in the first one's time); the next good window grows it by
 * at most one request, to 2.x. Growing by the root of the rounded limit
 * would put 3 in force and triple the queue of a resource that serves one
 * request at a time. */
Test(limit_adaptive, grows_from_the_limit_in_force) {
  msvc_limit_adaptive_t *cl = make(2, 1, 100, false);
  uint64_t t = 1000;

  cr_assert_eq(window(cl, &t, 1, 1000), 3, "baseline 1 ms, half used: 2 + sqrt 2");
  cr_assert_eq(window(cl, &t, NPERMITS, 2886), 2, "gradient 0.7 from 3 in use");
  cr_assert_eq(window(cl, &t, NPERMITS, 2886), 1, "gradient 0.7 from 2 in use: 1.4");
  cr_assert_eq(window(cl, &t, NPERMITS, 1000), 2, "1.4 grows to 2.x, not 3");
  msvc_limit_adaptive_free(cl);
}

/* Growth follows the room the gradient shows: latency at 3/4 of what the
 * tolerance allows grows a limit of 2 by a third, not by its root. */
Test(limit_adaptive, grows_by_the_room_it_sees) {
  msvc_limit_adaptive_t *cl = make(2, 1, 100, false);
  uint64_t t = 1000;
  double v;

  window(cl, &t, 1, 1000); /* baseline 1 ms (1.01 after drift); 3.41 */
  cr_assert_float_eq(msvc_limit_adaptive_value(cl), 2.0 + sqrt(2.0), 1e-6);
  window(cl, &t, 3, 2020); /* gradient 1.0: at the tolerance, no growth */
  v = msvc_limit_adaptive_value(cl);
  cr_assert_float_eq(v, 2.0 + sqrt(2.0), 1e-3, "held at %f", v);
  window(cl, &t, 3, 1515); /* gradient 2 x 1.0201 / 1.515 = 1.347 */
  v = msvc_limit_adaptive_value(cl);
  cr_assert(v > 3.414 + 1.0 && v < 3.414 + 1.3, "grew to %f", v);
  msvc_limit_adaptive_free(cl);
}

/* The fraction of a small limit: 3.41 lets three requests in, and a
 * fourth once the one in service longest has been served 0.59 / 3 of the
 * no-load latency. A request that waited behind one that left is in
 * service since it left. */
Test(limit_adaptive, honours_the_fraction_of_a_small_limit) {
  msvc_limit_adaptive_t *cl = make(2, 1, 100, false);
  msvc_limit_permit_t p[5];
  uint64_t t = 1000, us, gate;
  int i;

  window(cl, &t, 1, 1000);
  cr_assert_eq(msvc_limit_adaptive_limit(cl), 3);
  gate = (uint64_t)((2.0 - sqrt(2.0)) * (double)msvc_limit_adaptive_baseline_us(cl) / 3.0);
  us = t * 1000 + 5000;
  for (i = 0; i < 3; i++)
    cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + (uint64_t)i, &p[i]), MSVC_OK);
  for (i = 0; i < 3; i++) cr_assert(p[i].slot > 0, "a small limit notes the start");
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + gate - 10, &p[3]), MSVC_ELIMIT,
               "the oldest is too young");
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + gate + 10, &p[3]), MSVC_OK,
               "the oldest is near its end");
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + 100000, &p[4]), MSVC_ELIMIT,
               "one request more, not two");
  /* The oldest leaves after 1 ms: the others have been in service since
   * then, not since they came in. */
  msvc_limit_adaptive_release(cl, &p[0], MSVC_LIMIT_SUCCESS, 1000, t);
  cr_assert_eq(p[0].slot, 0);
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + 1000 + gate - 10, &p[0]),
               MSVC_ELIMIT, "in service for less than the gate");
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + 1000 + gate + 10, &p[0]), MSVC_OK);
  for (i = 0; i < 4; i++) msvc_limit_adaptive_release(cl, &p[i], MSVC_LIMIT_IGNORED, 0, t);
  cr_assert_eq(msvc_limit_adaptive_inflight(cl), 0);
  /* Released permits leave no start behind: new ones are young. */
  us += 1000000;
  for (i = 0; i < 3; i++)
    cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us, &p[i]), MSVC_OK);
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, us + gate / 2, &p[3]), MSVC_ELIMIT);
  for (i = 0; i < 3; i++) msvc_limit_adaptive_release(cl, &p[i], MSVC_LIMIT_IGNORED, 0, t);
  msvc_limit_adaptive_free(cl);
}

/* Threads taking and returning permits of a small fractional limit at
 * once: never more than one request beyond the whole part, and every
 * start noted is cleared again. */
typedef struct racer_s {
  msvc_limit_adaptive_t *cl;
  _Atomic uint32_t *most;
  int rounds;
} racer_t;

static void *race(void *arg) {
  racer_t *r = arg;
  msvc_limit_permit_t p;
  int i;

  for (i = 0; i < r->rounds; i++) {
    uint32_t in;

    if (msvc_limit_adaptive_acquire(r->cl, 0, &p) != MSVC_OK) continue;
    in = msvc_limit_adaptive_inflight(r->cl);
    if (in > atomic_load(r->most)) atomic_store(r->most, in);
    msvc_limit_adaptive_release(r->cl, &p, MSVC_LIMIT_IGNORED, (uint64_t)(i % 400), 0);
  }
  return NULL;
}

Test(limit_adaptive, threads_keep_the_fraction_exact) {
  msvc_limit_adaptive_t *cl = make(2, 1, 100, false);
  _Atomic uint32_t most = 0;
  racer_t r = {cl, &most, 20000};
  pthread_t th[4];
  msvc_limit_permit_t p[4];
  uint64_t t = 1000, far = UINT64_C(1) << 60;
  int i;

  window(cl, &t, 1, 1000); /* 3.41: three, and a fourth late */
  for (i = 0; i < 4; i++) cr_assert_eq(pthread_create(&th[i], NULL, race, &r), 0);
  for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
  cr_assert_leq(atomic_load(&most), 4, "%u in flight", atomic_load(&most));
  cr_assert_eq(msvc_limit_adaptive_inflight(cl), 0);
  /* No start left behind: three new permits are the oldest, and too
   * young to open the fourth. */
  for (i = 0; i < 3; i++)
    cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, far, &p[i]), MSVC_OK);
  cr_assert_eq(msvc__limit_adaptive_acquire_at(cl, t, far, &p[3]), MSVC_ELIMIT);
  for (i = 0; i < 3; i++) msvc_limit_adaptive_release(cl, &p[i], MSVC_LIMIT_IGNORED, 0, t);
  msvc_limit_adaptive_free(cl);
}

/* Fixed and large limits note nothing and have no fraction. */
Test(limit_adaptive, large_and_fixed_limits_keep_no_starts) {
  msvc_limit_adaptive_t *fixed = make(3, 1, 10, true), *large = make(100, 2, 400, false);
  msvc_limit_permit_t p;

  cr_assert_eq(msvc_limit_adaptive_acquire(fixed, 0, &p), MSVC_OK);
  cr_assert_eq(p.slot, 0);
  msvc_limit_adaptive_release(fixed, &p, MSVC_LIMIT_SUCCESS, 1, 0);
  cr_assert_eq(msvc_limit_adaptive_acquire(large, 0, &p), MSVC_OK);
  cr_assert_eq(p.slot, 0);
  msvc_limit_adaptive_release(large, &p, MSVC_LIMIT_SUCCESS, 1, 0);
  cr_assert_float_eq(msvc_limit_adaptive_value(fixed), 3.0, 1e-9);
  cr_assert_float_eq(msvc_limit_adaptive_value(large), 100.0, 1e-9);
  cr_assert_float_eq(msvc_limit_adaptive_value(NULL), 0.0, 1e-9);
  msvc_limit_adaptive_free(fixed);
  msvc_limit_adaptive_free(large);
}

/* Never below min nor above max. */
Test(limit_adaptive, stays_within_bounds) {
  msvc_limit_adaptive_t *cl = make(10, 5, 20, false);
  uint64_t t = 0;
  int i;

  window(cl, &t, 3, 1000);
  for (i = 0; i < 20; i++)
    cr_assert_geq(window(cl, &t, NPERMITS, 1000000), 5);
  for (i = 0; i < 40; i++)
    cr_assert_leq(window(cl, &t, NPERMITS, 1), 20);
  cr_assert_eq(msvc_limit_adaptive_limit(cl), 20);
  msvc_limit_adaptive_free(cl);
}

/* A mixed workload: slow windows are not congestion until three come in
 * a row. */
Test(limit_adaptive, one_slow_window_is_not_congestion) {
  msvc_limit_adaptive_t *cl = make(100, 2, 400, false);
  uint64_t t = 0;
  int i;

  for (i = 0; i < 5; i++) window(cl, &t, 3, 1000);
  cr_assert_eq(window(cl, &t, 3, 20000), 100, "one slow window: hold");
  cr_assert_eq(window(cl, &t, 3, 1000), 100);
  cr_assert_eq(window(cl, &t, 3, 20000), 100);
  cr_assert_eq(window(cl, &t, 3, 20000), 100, "two in a row: still hold");
  cr_assert_lt(window(cl, &t, 3, 20000), 100, "three in a row: back off");
  msvc_limit_adaptive_free(cl);
}

/* The defaults: however slow a mixed workload gets, 256 requests in flight
 * (a load test's keep-alive connections) are never refused. */
Test(limit_adaptive, default_floor_keeps_c256) {
  msvc_limit_adaptive_t *cl;
  msvc_limit_permit_t p[256];
  uint64_t t = 1;
  int w, i;

  cr_assert_eq(msvc_limit_adaptive_new(NULL, &cl), MSVC_OK);
  for (w = 0; w < 10; w++, t += 100) /* quiet: a 100 us baseline */
    for (i = 0; i < 30; i++) {
      cr_assert_eq(msvc_limit_adaptive_acquire(cl, t, &p[0]), MSVC_OK);
      msvc_limit_adaptive_release(cl, &p[0], MSVC_LIMIT_SUCCESS, 100, t);
    }
  for (w = 0; w < 200; w++, t += 100) {
    for (i = 0; i < 256; i++)
      cr_assert_eq(msvc_limit_adaptive_acquire(cl, t, &p[i]), MSVC_OK,
                   "window %d: request %d refused (limit %u)", w, i,
                   msvc_limit_adaptive_limit(cl));
    for (i = 0; i < 256; i++)
      msvc_limit_adaptive_release(cl, &p[i], i % 7 == 0 ? MSVC_LIMIT_DROPPED : MSVC_LIMIT_SUCCESS,
                                  100u * (uint64_t)(1 + (i + w) % 200), t + 99);
  }
  cr_assert_geq(msvc_limit_adaptive_limit(cl), 256);
  msvc_limit_adaptive_free(cl);
}
