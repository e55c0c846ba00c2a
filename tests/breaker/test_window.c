#include <criterion/criterion.h>

#include "breaker/window.h"
#include "msvc-internal.h"

static void totals(msvc__bw_t *w, uint64_t now, uint64_t calls,
                   uint64_t failures, uint64_t slow) {
  msvc__bw_counts_t c;

  msvc__bw_totals(w, now, &c);
  cr_assert_eq(c.calls, calls, "calls %llu != %llu",
               (unsigned long long)c.calls, (unsigned long long)calls);
  cr_assert_eq(c.failures, failures, "failures %llu != %llu",
               (unsigned long long)c.failures, (unsigned long long)failures);
  cr_assert_eq(c.slow, slow, "slow %llu != %llu", (unsigned long long)c.slow,
               (unsigned long long)slow);
}

Test(breaker_window, count_ring_evicts_oldest) {
  msvc__bw_t w;
  int i;

  cr_assert_eq(msvc__bw_init(&w, true, 3, 1), MSVC_OK);
  cr_assert_eq(w.nstripes, 1);
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE, 0));
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_SLOW, 0));
  cr_assert(msvc__bw_record(&w, 1, 0, 0));
  totals(&w, 0, 3, 1, 1);
  cr_assert(msvc__bw_record(&w, 1, 0, 0)); /* evicts the failure */
  totals(&w, 0, 3, 0, 1);
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE | MSVC__BW_SLOW, 0));
  totals(&w, 0, 3, 1, 1); /* evicted the slow one, added both */
  for (i = 0; i < 3; i++)
    cr_assert(msvc__bw_record(&w, 1, 0, 999999)); /* time is irrelevant */
  totals(&w, 999999, 3, 0, 0);
  msvc__bw_free(&w);
}

Test(breaker_window, time_buckets_roll_over) {
  msvc__bw_t w;

  cr_assert_eq(msvc__bw_init(&w, false, 3, 1), MSVC_OK);
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE, 10000)); /* sec 10 */
  cr_assert(msvc__bw_record(&w, 1, 0, 10999));
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_SLOW, 11000));     /* sec 11 */
  cr_assert(msvc__bw_record(&w, 1, 0, 12500));                 /* sec 12 */
  totals(&w, 12999, 4, 1, 1);
  /* sec 13: window is 11..13, second 10 has gone */
  totals(&w, 13000, 2, 0, 1);
  /* sec 14: only second 12 left */
  totals(&w, 14000, 1, 0, 0);
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE, 14001));
  totals(&w, 14001, 2, 1, 0);
  msvc__bw_free(&w);
}

Test(breaker_window, gap_longer_than_window_empties_it) {
  msvc__bw_t w;
  int i;

  cr_assert_eq(msvc__bw_init(&w, false, 5, 1), MSVC_OK);
  for (i = 0; i < 5; i++)
    cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE, 1000u * (uint64_t)i));
  totals(&w, 4000, 5, 5, 0);
  totals(&w, 4000 + 3600u * 1000u, 0, 0, 0);
  /* a record after a long gap starts from an empty window too */
  cr_assert(msvc__bw_record(&w, 1, 0, 1000000000u));
  totals(&w, 1000000000u, 1, 0, 0);
  msvc__bw_free(&w);
}

Test(breaker_window, clock_going_back_lands_in_newest_bucket) {
  msvc__bw_t w;

  cr_assert_eq(msvc__bw_init(&w, false, 2, 1), MSVC_OK);
  cr_assert(msvc__bw_record(&w, 1, 0, 50000));
  cr_assert(msvc__bw_record(&w, 1, MSVC__BW_FAILURE, 1000)); /* backwards */
  totals(&w, 50000, 2, 1, 0);
  totals(&w, 51000, 2, 1, 0);
  totals(&w, 52000, 0, 0, 0);
  msvc__bw_free(&w);
}

Test(breaker_window, generation_mismatch_is_dropped_and_reset_empties) {
  msvc__bw_t w;

  cr_assert_eq(msvc__bw_init(&w, false, 10, 7), MSVC_OK);
  cr_assert_not(msvc__bw_record(&w, 6, MSVC__BW_FAILURE, 0));
  cr_assert(msvc__bw_record(&w, 7, MSVC__BW_FAILURE, 0));
  totals(&w, 0, 1, 1, 0);
  msvc__bw_reset(&w, 8);
  totals(&w, 0, 0, 0, 0);
  cr_assert_not(msvc__bw_record(&w, 7, 0, 0));
  cr_assert(msvc__bw_record(&w, 8, 0, 0));
  totals(&w, 0, 1, 0, 0);
  msvc__bw_free(&w);
}

Test(breaker_window, stripes_sit_on_separate_cache_lines) {
  msvc__bw_t w;

  cr_assert_eq(msvc__bw_init(&w, false, 10, 1), MSVC_OK);
  cr_assert_eq(w.nstripes, MSVC__BW_TIME_STRIPES);
  cr_assert_eq((uintptr_t)w.stripes % 64, 0);
  cr_assert_geq(sizeof(msvc__bw_stripe_t), 64);
  cr_assert_geq((uintptr_t)w.stripes[1].s.slots,
                (uintptr_t)w.stripes[0].s.slots + 10 * sizeof(msvc__bw_bucket_t));
  msvc__bw_free(&w);
}
