/* Retry policy: backoff sequence, budget and method rules, on an injected
 * clock and random source. */
#include <criterion/criterion.h>

#include <msvc/http_client.h>

typedef struct fake_s {
  uint64_t now;
  uint64_t rnd[16];
  size_t n, i;
} fake_t;

static uint64_t fake_clock(void *d) {
  return ((fake_t *)d)->now;
}

static uint64_t fake_rand(void *d) {
  fake_t *f = d;
  uint64_t v = f->rnd[f->i % f->n];
  f->i++;
  return v;
}

static msvc_retry_t *make(fake_t *f, uint32_t attempts) {
  msvc_retry_opts_t o;
  msvc_retry_t *r;

  msvc_retry_opts_init(&o);
  o.max_attempts = attempts;
  o.base_ms = 10;
  o.cap_ms = 100;
  o.clock = fake_clock;
  o.clock_data = f;
  o.rand = fake_rand;
  o.rand_data = f;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_OK);
  return r;
}

static int check(msvc_retry_t *r, uint32_t attempt, const char *m, int err, int status,
                 uint32_t *delay) {
  msvc_retry_attempt_t a = {attempt, m, false, err, status, NULL, false};
  return msvc_retry_check(r, &a, delay);
}

Test(retry, full_jitter_sequence_doubles_then_caps) {
  /* One less than a multiple of every (ceiling + 1): each draw is the top
   * of its range, so the delays show the ceilings themselves. */
  fake_t f = {.rnd = {11u * 7 * 41 * 81 * 101 - 1}, .n = 1};
  msvc_retry_t *r = make(&f, 10);
  static const uint32_t want[] = {10, 20, 40, 80, 100, 100};
  uint32_t d, i;

  for (i = 0; i < 6; i++) {
    cr_assert_eq(check(r, i + 1, "GET", MSVC_ECONNREFUSED, 0, &d), 1);
    cr_assert_eq(d, want[i], "attempt %u: %u", i + 1, d);
  }
  msvc_retry_free(r);
}

Test(retry, jitter_uses_the_random_source) {
  fake_t f = {.rnd = {0, 5, 7, 1000}, .n = 4};
  msvc_retry_t *r = make(&f, 10);
  uint32_t d;

  cr_assert_eq(check(r, 1, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  cr_assert_eq(d, 0);
  cr_assert_eq(check(r, 2, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  cr_assert_eq(d, 5);
  cr_assert_eq(check(r, 3, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  cr_assert_eq(d, 7);
  cr_assert_eq(check(r, 4, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  cr_assert_eq(d, 1000 % 81);
  msvc_retry_free(r);
}

Test(retry, outcomes_and_attempt_limit) {
  fake_t f = {.rnd = {3}, .n = 1};
  msvc_retry_t *r = make(&f, 3);
  uint32_t d;

  cr_assert_eq(check(r, 1, "GET", 0, 200, &d), 0);
  cr_assert_eq(check(r, 1, "GET", 0, 500, &d), 0);
  cr_assert_eq(check(r, 1, "GET", 0, 404, &d), 0);
  cr_assert_eq(check(r, 1, "GET", 0, 502, &d), 1);
  cr_assert_eq(check(r, 1, "GET", 0, 503, &d), 1);
  cr_assert_eq(check(r, 1, "GET", 0, 504, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_ECONNRESET, 0, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_EHTTP_DNS, 0, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_EHTTP_BAD_RESPONSE, 0, &d), 0);
  cr_assert_eq(check(r, 1, "GET", MSVC_ECANCELED, 0, &d), 0);
  cr_assert_eq(check(r, 2, "GET", MSVC_ECONNREFUSED, 0, &d), 1);
  cr_assert_eq(check(r, 3, "GET", MSVC_ECONNREFUSED, 0, &d), 0, "third was the last");
  msvc_retry_free(r);
}

Test(retry, post_only_when_marked) {
  fake_t f = {.rnd = {3}, .n = 1};
  msvc_retry_t *r = make(&f, 3);
  msvc_retry_attempt_t a = {1, "POST", false, MSVC_ECONNRESET, 0, NULL, false};
  uint32_t d;

  cr_assert_eq(msvc_retry_check(r, &a, &d), 0);
  a.method = "PATCH";
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0);
  a.retryable = true;
  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  a.method = "PUT";
  a.retryable = false;
  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  cr_assert(msvc_http_method_idempotent("DELETE"));
  cr_assert_not(msvc_http_method_idempotent("get"));
  cr_assert_not(msvc_http_method_idempotent(NULL));
  msvc_retry_free(r);
}

Test(retry, what_never_left_is_retried_whatever_the_method) {
  fake_t f = {.now = 100000, .rnd = {3}, .n = 1};
  msvc_retry_t *r = make(&f, 3);
  msvc_retry_attempt_t a = {1, "POST", false, MSVC_ECONNREFUSED, 0, NULL, true};
  uint32_t d;

  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  a.err = MSVC_ETIMEDOUT; /* connect timeout */
  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  a.attempt = 3;
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0, "the attempt limit still holds");
  a.attempt = 1;
  a.err = 0;
  a.status = 404;
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0, "a final outcome stays final");
  /* once sent, the method rules again */
  a.not_sent = false;
  a.err = MSVC_ECONNREFUSED;
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0);
  msvc_retry_free(r);
}

Test(retry, what_never_left_does_not_spend_the_budget) {
  fake_t f = {.now = 100000, .rnd = {1}, .n = 1};
  msvc_retry_opts_t o;
  msvc_retry_t *r;
  msvc_retry_attempt_t a = {1, "GET", false, MSVC_ECONNREFUSED, 0, NULL, true};
  uint32_t d;
  int i;

  msvc_retry_opts_init(&o);
  o.budget_ratio = 0;
  o.budget_min_per_s = 0; /* no budget at all */
  o.clock = fake_clock;
  o.clock_data = &f;
  o.rand = fake_rand;
  o.rand_data = &f;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_OK);
  for (i = 0; i < 100; i++)
    cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  a.not_sent = false;
  cr_assert_eq(msvc_retry_check(r, &a, &d), MSVC_ERETRY_BUDGET);
  msvc_retry_free(r);
}

Test(retry, retry_after_honoured_within_cap) {
  fake_t f = {.rnd = {0}, .n = 1};
  msvc_retry_t *r = make(&f, 5);
  msvc_retry_attempt_t a = {1, "GET", false, 0, 503, "0", false};
  uint32_t d;

  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  cr_assert_eq(d, 0);
  a.retry_after = "1"; /* 1000 ms, above the 100 ms cap: not sooner */
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0);
  a.status = 429; /* a rate limit: retried like a 503 */
  a.retry_after = "0";
  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  a.retry_after = "60";
  cr_assert_eq(msvc_retry_check(r, &a, &d), 0);
  a.status = 503;
  a.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT";
  cr_assert_eq(msvc_retry_check(r, &a, &d), 1);
  cr_assert_eq(d, 0, "the date form is ignored");
  msvc_retry_free(r);
}

Test(retry, budget_limits_retries_to_a_ratio_of_requests) {
  fake_t f = {.now = 100000, .rnd = {1}, .n = 1};
  msvc_retry_opts_t o;
  msvc_retry_t *r;
  uint32_t d;
  int i, granted = 0;

  msvc_retry_opts_init(&o);
  o.budget_ratio = 0.2;
  o.budget_min_per_s = 0;
  o.budget_window_ms = 10000;
  o.clock = fake_clock;
  o.clock_data = &f;
  o.rand = fake_rand;
  o.rand_data = &f;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_OK);
  for (i = 0; i < 100; i++)
    msvc_retry_note_request(r);
  for (i = 0; i < 100; i++) {
    int rc = check(r, 1, "GET", MSVC_ECONNREFUSED, 0, &d);
    if (rc == 1)
      granted++;
    else
      cr_assert_eq(rc, MSVC_ERETRY_BUDGET);
  }
  cr_assert_eq(granted, 20, "20%% of 100 requests, got %d", granted);
  /* A whole window later the old requests and retries have aged out. */
  f.now += 11000;
  cr_assert_eq(check(r, 1, "GET", MSVC_ECONNREFUSED, 0, &d), MSVC_ERETRY_BUDGET);
  for (i = 0; i < 10; i++)
    msvc_retry_note_request(r);
  cr_assert_eq(check(r, 1, "GET", MSVC_ECONNREFUSED, 0, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_ECONNREFUSED, 0, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_ECONNREFUSED, 0, &d), MSVC_ERETRY_BUDGET);
  msvc_retry_free(r);
}

Test(retry, budget_minimum_per_second) {
  fake_t f = {.now = 5000, .rnd = {1}, .n = 1};
  msvc_retry_opts_t o;
  msvc_retry_t *r;
  uint32_t d;
  int i;

  msvc_retry_opts_init(&o);
  o.budget_ratio = 0;
  o.budget_min_per_s = 2;
  o.budget_window_ms = 1000;
  o.clock = fake_clock;
  o.clock_data = &f;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_OK);
  for (i = 0; i < 2; i++)
    cr_assert_eq(check(r, 1, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  cr_assert_eq(check(r, 1, "GET", MSVC_ETIMEDOUT, 0, &d), MSVC_ERETRY_BUDGET);
  f.now += 1500;
  cr_assert_eq(check(r, 1, "GET", MSVC_ETIMEDOUT, 0, &d), 1);
  msvc_retry_free(r);
}

Test(retry, bad_options) {
  msvc_retry_opts_t o;
  msvc_retry_t *r = (msvc_retry_t *)1;
  uint32_t d;

  cr_assert_eq(msvc_retry_new(NULL, NULL), MSVC_EINVAL);
  msvc_retry_opts_init(&o);
  o.max_attempts = 0;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_EINVAL);
  cr_assert_null(r);
  msvc_retry_opts_init(&o);
  o.cap_ms = 1;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_EINVAL);
  msvc_retry_opts_init(&o);
  o.budget_ratio = -1;
  cr_assert_eq(msvc_retry_new(&o, &r), MSVC_EINVAL);
  cr_assert_eq(msvc_retry_new(NULL, &r), MSVC_OK);
  cr_assert_eq(msvc_retry_check(r, NULL, &d), MSVC_EINVAL);
  msvc_retry_free(r);
  msvc_retry_free(NULL);
}
