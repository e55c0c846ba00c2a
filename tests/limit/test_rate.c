/*
 * Token buckets: exact arithmetic against an injected clock, bounded key
 * memory under a flood, the cluster share, and two threads at once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/limit.h>

static msvc_limit_rate_t *make(uint32_t rate, uint32_t period, uint32_t burst,
                               uint32_t max_keys) {
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl;

  msvc_limit_rate_opts_init(&o);
  o.rate = rate;
  o.period_ms = period;
  o.burst = burst;
  o.max_keys = max_keys;
  cr_assert_eq(msvc_limit_rate_new(&o, &rl), MSVC_OK);
  return rl;
}

static int check(msvc_limit_rate_t *rl, const char *key, uint64_t now,
                 msvc_limit_result_t *r) {
  return msvc_limit_rate_check(rl, key, strlen(key), 1, now, r);
}

Test(limit_rate, burst_then_refill_exactly) {
  msvc_limit_rate_t *rl = make(10, 1000, 5, 1024); /* 10/s, burst 5 */
  msvc_limit_result_t r;
  int i;

  for (i = 0; i < 5; i++) {
    cr_assert_eq(check(rl, "a", 1000, &r), MSVC_OK);
    cr_assert_eq(r.limit, 5);
    cr_assert_eq(r.remaining, (uint32_t)(4 - i));
  }
  cr_assert_eq(check(rl, "a", 1000, &r), MSVC_ELIMIT);
  cr_assert_not(r.allowed);
  cr_assert_eq(r.retry_after_ms, 100); /* one token per 100 ms */
  cr_assert_eq(r.reset_ms, 500);
  /* 99 ms: still nothing; 100 ms: exactly one token. */
  cr_assert_eq(check(rl, "a", 1099, &r), MSVC_ELIMIT);
  cr_assert_eq(r.retry_after_ms, 1);
  cr_assert_eq(check(rl, "a", 1100, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 0);
  cr_assert_eq(check(rl, "a", 1100, &r), MSVC_ELIMIT);
  /* Other keys are independent. */
  cr_assert_eq(check(rl, "b", 1100, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 4);
  /* A long idle time refills to the burst, never above. */
  cr_assert_eq(check(rl, "a", 1000000, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 4);
  /* Time going backwards adds nothing. */
  cr_assert_eq(check(rl, "a", 10, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 3);
  msvc_limit_rate_free(rl);
}

/* 3 tokens per 7 ms does not divide evenly: after 7000 ms exactly 3000
 * tokens have been granted, with no drift. */
Test(limit_rate, no_rounding_drift) {
  msvc_limit_rate_t *rl = make(3, 7, 2, 64);
  msvc_limit_result_t r;
  uint64_t t, granted = 0;

  while (check(rl, "k", 0, &r) == MSVC_OK) { /* the initial burst */
  }
  for (t = 1; t <= 7000; t++)
    while (check(rl, "k", t, &r) == MSVC_OK) granted++;
  cr_assert_eq(granted, 3000);
  msvc_limit_rate_free(rl);
}

Test(limit_rate, cost_and_impossible_cost) {
  msvc_limit_rate_t *rl = make(1, 1000, 10, 64);
  msvc_limit_result_t r;

  cr_assert_eq(msvc_limit_rate_check(rl, "x", 1, 4, 0, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 6);
  cr_assert_eq(msvc_limit_rate_check(rl, "x", 1, 7, 0, &r), MSVC_ELIMIT);
  cr_assert_eq(r.retry_after_ms, 1000);
  cr_assert_eq(r.remaining, 6, "a refusal takes nothing");
  cr_assert_eq(msvc_limit_rate_check(rl, "x", 1, 11, 0, &r), MSVC_ELIMIT);
  cr_assert_eq(r.retry_after_ms, UINT64_MAX);
  cr_assert_eq(msvc_limit_rate_check(rl, "x", 1, UINT32_MAX, 0, &r), MSVC_ELIMIT);
  cr_assert_eq(msvc_limit_rate_check(rl, "x", 1, 0, 0, &r), MSVC_EINVAL);
  cr_assert_eq(msvc_limit_rate_check(rl, NULL, 1, 1, 0, &r), MSVC_EINVAL);
  cr_assert_eq(msvc_limit_rate_check(rl, NULL, 0, 1, 0, &r), MSVC_OK);
  msvc_limit_rate_free(rl);
}

Test(limit_rate, refund_gives_back_up_to_the_burst) {
  msvc_limit_rate_t *rl = make(1, 1000, 2, 64);
  msvc_limit_result_t r;

  cr_assert_eq(check(rl, "k", 0, &r), MSVC_OK);
  cr_assert_eq(check(rl, "k", 0, &r), MSVC_OK);
  cr_assert_eq(check(rl, "k", 0, &r), MSVC_ELIMIT);
  cr_assert_eq(msvc_limit_rate_refund(rl, "k", 1, 1, 0), MSVC_OK);
  cr_assert_eq(check(rl, "k", 0, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 0);
  cr_assert_eq(msvc_limit_rate_refund(rl, "k", 1, 5, 0), MSVC_OK);
  cr_assert_eq(check(rl, "k", 0, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 1, "never above the burst");
  cr_assert_eq(msvc_limit_rate_refund(rl, "unknown", 7, 1, 0), MSVC_OK);
  cr_assert_eq(msvc_limit_rate_refund(rl, "k", 1, 0, 0), MSVC_EINVAL);
  msvc_limit_rate_free(rl);
}

Test(limit_rate, bad_options) {
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl;

  msvc_limit_rate_opts_init(&o);
  o.rate = 0;
  cr_assert_eq(msvc_limit_rate_new(&o, &rl), MSVC_EINVAL);
  msvc_limit_rate_opts_init(&o);
  o.shards = 3;
  cr_assert_eq(msvc_limit_rate_new(&o, &rl), MSVC_EINVAL);
  msvc_limit_rate_opts_init(&o);
  o.size = 1;
  cr_assert_eq(msvc_limit_rate_new(&o, &rl), MSVC_EINVAL);
  cr_assert_eq(msvc_limit_rate_new(NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_limit_rate_new(NULL, &rl), MSVC_OK);
  msvc_limit_rate_free(rl);
  msvc_limit_rate_free(NULL);
}

Test(limit_rate, long_keys_are_distinct) {
  msvc_limit_rate_t *rl = make(1, 1000, 1, 64);
  char a[200], b[200];

  memset(a, 'x', sizeof(a) - 1);
  a[sizeof(a) - 1] = '\0';
  memcpy(b, a, sizeof(a));
  b[150] = 'y';
  cr_assert_eq(check(rl, a, 0, NULL), MSVC_OK);
  cr_assert_eq(check(rl, a, 0, NULL), MSVC_ELIMIT);
  cr_assert_eq(check(rl, b, 0, NULL), MSVC_OK);
  msvc_limit_rate_free(rl);
}

/* A million distinct keys: the table never holds more than its cap, and a
 * key that was in use survives because full buckets are evicted first. */
Test(limit_rate, key_flood_stays_under_cap, .timeout = 60) {
  msvc_limit_rate_t *rl = make(1, 1000, 3, 4096);
  msvc_limit_rate_stats_t st;
  msvc_limit_result_t r;
  char key[32];
  uint32_t i;

  /* The victim uses two of its three tokens. */
  cr_assert_eq(check(rl, "victim", 0, &r), MSVC_OK);
  cr_assert_eq(check(rl, "victim", 0, &r), MSVC_OK);
  for (i = 0; i < 1000000; i++) {
    snprintf(key, sizeof(key), "k%u", i);
    (void)check(rl, key, 0, NULL);
    if (i % 100000 == 0) {
      cr_assert_eq(msvc_limit_rate_stats(rl, &st), MSVC_OK);
      cr_assert_leq(st.keys, 4096);
    }
  }
  cr_assert_eq(msvc_limit_rate_stats(rl, &st), MSVC_OK);
  cr_assert_leq(st.keys, 4096);
  cr_assert_eq(st.allowed, 1000002);
  cr_assert_gt(st.evicted_lossy, 0, "the flood's own buckets are partly used");
  msvc_limit_rate_free(rl);
}

/* Eviction prefers a refilled bucket over a partly used one, even one the
 * clock hand meets first. */
Test(limit_rate, eviction_prefers_full_buckets) {
  msvc_limit_rate_opts_t o;
  msvc_limit_rate_t *rl;
  msvc_limit_rate_stats_t st;
  msvc_limit_result_t r;
  char key[16];
  int i;

  msvc_limit_rate_opts_init(&o);
  o.rate = 1;
  o.period_ms = 1000;
  o.burst = 2;
  o.max_keys = 16;
  o.shards = 1;
  cr_assert_eq(msvc_limit_rate_new(&o, &rl), MSVC_OK);
  /* The victim empties its bucket first, so the clock hand meets it
   * first; the fillers take one token each. */
  cr_assert_eq(msvc_limit_rate_check(rl, "victim", 6, 2, 0, &r), MSVC_OK);
  for (i = 0; i < 15; i++) {
    snprintf(key, sizeof(key), "f%d", i);
    cr_assert_eq(check(rl, key, 0, &r), MSVC_OK);
  }
  /* At 1000 ms the fillers are full again, the victim is not: a new key
   * takes a filler's place. */
  cr_assert_eq(check(rl, "new", 1000, &r), MSVC_OK);
  cr_assert_eq(msvc_limit_rate_stats(rl, &st), MSVC_OK);
  cr_assert_eq(st.evicted, 1);
  cr_assert_eq(st.evicted_lossy, 0);
  cr_assert_eq(st.keys, 16);
  /* The victim kept its state: one token, not a fresh bucket of two. */
  cr_assert_eq(check(rl, "victim", 1000, &r), MSVC_OK);
  cr_assert_eq(r.remaining, 0);
  msvc_limit_rate_free(rl);
}

/* The share follows instances joining and leaving: 100 per second for the
 * cluster is 50 each with two instances, 25 with four, 100 with one. */
Test(limit_rate, cluster_share_follows_instances) {
  msvc_limit_rate_t *rl = make(100, 1000, 100, 64);
  msvc_limit_result_t r;
  uint64_t t = 0;
  int n;

  cr_assert_eq(msvc_limit_rate_share(rl), 1);
  cr_assert_eq(msvc_limit_rate_set_share(rl, 2), MSVC_OK);
  for (n = 0; check(rl, "k", t, &r) == MSVC_OK; n++) {
  }
  cr_assert_eq(n, 50, "burst 100 / 2 instances");
  cr_assert_eq(r.limit, 50);
  t += 1000;
  for (n = 0; check(rl, "k", t, &r) == MSVC_OK; n++) {
  }
  cr_assert_eq(n, 50, "rate 100/s / 2 instances");
  /* Two more instances join. */
  cr_assert_eq(msvc_limit_rate_set_share(rl, 4), MSVC_OK);
  t += 1000;
  for (n = 0; check(rl, "k", t, &r) == MSVC_OK; n++) {
  }
  cr_assert_eq(n, 25);
  cr_assert_eq(r.limit, 25);
  cr_assert_eq(r.retry_after_ms, 40); /* 25 tokens/s */
  /* Three leave: the last one takes the whole limit. */
  cr_assert_eq(msvc_limit_rate_set_share(rl, 0), MSVC_OK);
  cr_assert_eq(msvc_limit_rate_share(rl), 1);
  t += 1000;
  for (n = 0; check(rl, "k", t, &r) == MSVC_OK; n++) {
  }
  cr_assert_eq(n, 100);
  /* More instances than burst tokens: each keeps one token. */
  cr_assert_eq(msvc_limit_rate_set_share(rl, 1000), MSVC_OK);
  t += 100000;
  cr_assert_eq(check(rl, "k", t, &r), MSVC_OK);
  cr_assert_eq(r.limit, 1);
  cr_assert_eq(check(rl, "k", t, &r), MSVC_ELIMIT);
  cr_assert_eq(r.retry_after_ms, 10000); /* 0.1 token/s */
  /* Back to one instance at the same millisecond: never above the burst. */
  cr_assert_eq(msvc_limit_rate_set_share(rl, 1000), MSVC_OK);
  cr_assert_eq(check(rl, "fresh", t, &r), MSVC_OK);
  cr_assert_eq(msvc_limit_rate_refund(rl, "fresh", 5, 1, t), MSVC_OK); /* full */
  cr_assert_eq(msvc_limit_rate_set_share(rl, 1), MSVC_OK);
  cr_assert_eq(check(rl, "fresh", t, &r), MSVC_OK);
  cr_assert_eq(r.limit, 100);
  cr_assert_eq(r.remaining, 99);
  cr_assert_eq(msvc_limit_rate_set_share(rl, 70000), MSVC_EINVAL);
  msvc_limit_rate_free(rl);
}

typedef struct worker_s {
  msvc_limit_rate_t *rl;
  int id;
  int allowed;
} worker_t;

static void *hammer(void *arg) {
  worker_t *w = arg;
  char key[16];
  int i;

  for (i = 0; i < 200000; i++) {
    snprintf(key, sizeof(key), "%s", i % 2 == 0 ? "shared" : (w->id ? "b" : "a"));
    if (msvc_limit_rate_check(w->rl, key, strlen(key), 1, 0, NULL) == MSVC_OK)
      w->allowed++;
  }
  return NULL;
}

/* Two threads on one key at a frozen clock: exactly the burst passes. */
Test(limit_rate, two_threads_exact_burst, .timeout = 30) {
  msvc_limit_rate_t *rl = make(1, 1000, 1000, 64);
  worker_t w[2] = {{rl, 0, 0}, {rl, 1, 0}};
  pthread_t t[2];

  cr_assert_eq(pthread_create(&t[0], NULL, hammer, &w[0]), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, hammer, &w[1]), 0);
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  cr_assert_eq(w[0].allowed + w[1].allowed, 3000, "1000 shared + 1000 a + 1000 b");
  msvc_limit_rate_free(rl);
}

/* Two threads churning a small table (new keys evicting old ones while
 * the other thread checks held keys without the shard lock): every check
 * is counted once, and the table never holds more than its cap. */
static void *churn(void *arg) {
  worker_t *w = arg;
  char key[16];
  int i;

  for (i = 0; i < 100000; i++) {
    snprintf(key, sizeof(key), "k%d", (i * 7 + w->id * 13) % 64);
    if (msvc_limit_rate_check(w->rl, key, strlen(key), 1, (uint64_t)i / 64, NULL) == MSVC_OK)
      w->allowed++;
  }
  return NULL;
}

Test(limit_rate, two_threads_churn_counted_once, .timeout = 30) {
  msvc_limit_rate_t *rl = make(1, 10, 3, 16);
  worker_t w[2] = {{rl, 0, 0}, {rl, 1, 0}};
  msvc_limit_rate_stats_t st;
  pthread_t t[2];

  cr_assert_eq(pthread_create(&t[0], NULL, churn, &w[0]), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, churn, &w[1]), 0);
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  cr_assert_eq(msvc_limit_rate_stats(rl, &st), MSVC_OK);
  cr_assert_eq(st.allowed + st.refused, 200000);
  cr_assert_eq(st.allowed, (uint64_t)(w[0].allowed + w[1].allowed));
  cr_assert_leq(st.keys, 16);
  cr_assert_gt(st.evicted + st.evicted_lossy, 0);
  msvc_limit_rate_free(rl);
}
