/* Out of memory at every allocation of an operation in turn: the operation
 * fails with MSVC_ENOMEM and leaves the balancer exactly as it was (the
 * sanitizer build also proves nothing leaks). The library's calls to the C
 * allocator are wrapped at link time (-Wl,--wrap). */
#include <stdlib.h>

#include "lb_test.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *ptr, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static int fail_in; /* 0 = off; n = the n-th allocation from now fails */

static bool should_fail(void) {
  return fail_in > 0 && --fail_in == 0;
}

void *__wrap_malloc(size_t size) {
  return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size) {
  return should_fail() ? NULL : __real_calloc(count, size);
}

void *__wrap_realloc(void *ptr, size_t size) {
  return should_fail() ? NULL : __real_realloc(ptr, size);
}

static void same_as_before(msvc_lb_t *lb, const lbt_stats_t *before) {
  static lbt_stats_t now;
  size_t i;

  lbt_stats(lb, 0, &now);
  cr_assert_eq(now.n, before->n);
  for (i = 0; i < now.n; i++) {
    cr_assert_str_eq(now.ids[i], before->ids[i]);
    cr_assert_eq(now.st[i].picks, before->st[i].picks);
    cr_assert_eq(now.st[i].inflight, before->st[i].inflight);
    cr_assert_eq(now.st[i].weight, before->st[i].weight);
    cr_assert_eq(now.st[i].excluded, before->st[i].excluded);
  }
}

Test(lb_oom, update_fails_cleanly_at_every_allocation) {
  static lbt_stats_t before;
  static const uint32_t w[6] = {1, 2, 3, 4, 5, 6};
  msvc_lb_endpoint_t next[5] = {{"10.0.0.1:80", 7, "changed"},
                                {"new-a:1", 1, NULL},
                                {"10.0.0.2:80", 3, NULL},
                                {"new-b:1", 1, "m"},
                                {"new-c:1", 2, NULL}};
  msvc_lb_ticket_t t[4];
  msvc_lb_t *lb = lbt_new(MSVC_LB_LEAST_CONN, 1000, true);
  int k, rc = MSVC_ENOMEM, i;

  lbt_set(lb, w, 3, 0);
  for (i = 0; i < 4; i++)
    cr_assert_eq(msvc_lb_pick(lb, 0, &t[i]), MSVC_OK);
  lbt_stats(lb, 0, &before);
  for (k = 1; k < 100 && rc != MSVC_OK; k++) {
    fail_in = k;
    rc = msvc_lb_update(lb, next, 5, 10);
    fail_in = 0;
    if (rc != MSVC_OK) {
      cr_assert_eq(rc, MSVC_ENOMEM);
      same_as_before(lb, &before);
      cr_assert_eq(msvc_lb_done(lb, &t[0], MSVC_LB_SUCCESS, 1), MSVC_OK);
      cr_assert_eq(msvc_lb_pick(lb, 0, &t[0]), MSVC_OK);
      lbt_stats(lb, 0, &before);
    }
  }
  cr_assert_eq(rc, MSVC_OK);
  cr_assert_gt(k, 5, "expected several allocations, saw %d", k - 1);
  cr_assert_eq(status_inflight(lb), 4);
  for (i = 0; i < 4; i++)
    cr_assert_eq(msvc_lb_done(lb, &t[i], MSVC_LB_SUCCESS, 1), MSVC_OK);
  msvc_lb_free(lb);
}

Test(lb_oom, exclusion_and_pick_fail_cleanly) {
  static lbt_stats_t before;
  static const uint32_t w[3] = {1, 1, 1};
  msvc_lb_t *lb = lbt_new(MSVC_LB_P2C, 0, true);
  msvc_lb_ticket_t t;
  int rc;

  lbt_set(lb, w, 3, 0);
  lbt_stats(lb, 0, &before);
  fail_in = 1;
  rc = msvc_lb_exclude(lb, "10.0.0.1:80", 100, 0);
  fail_in = 0;
  cr_assert_eq(rc, MSVC_ENOMEM);
  same_as_before(lb, &before);
  /* the ticket record cannot be stored: the pick is undone */
  fail_in = 1;
  rc = msvc_lb_pick(lb, 0, &t);
  fail_in = 0;
  cr_assert_eq(rc, MSVC_ENOMEM);
  cr_assert_eq(status_inflight(lb), 0);
  msvc_lb_free(lb);
}

Test(lb_oom, new_fails_cleanly) {
  msvc_lb_t *lb = (msvc_lb_t *)&fail_in;
  int k, rc = MSVC_ENOMEM;

  for (k = 1; k < 20 && rc != MSVC_OK; k++) {
    fail_in = k;
    rc = msvc_lb_new(NULL, &lb);
    fail_in = 0;
    if (rc != MSVC_OK) {
      cr_assert_eq(rc, MSVC_ENOMEM);
      cr_assert_null(lb);
    }
  }
  cr_assert_eq(rc, MSVC_OK);
  cr_assert_gt(k, 2);
  msvc_lb_free(lb);
}
