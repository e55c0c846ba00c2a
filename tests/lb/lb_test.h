/* Helpers shared by the balancer's test files. */
#ifndef LB_TEST_H
#define LB_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/lb.h>

static inline msvc_lb_t *lbt_new(msvc_lb_policy_t policy, uint64_t slow_ms,
                                 bool track) {
  msvc_lb_opts_t o;
  msvc_lb_t *lb = NULL;

  msvc_lb_opts_init(&o);
  o.policy = policy;
  o.slow_start_ms = slow_ms;
  o.track_tickets = track;
  cr_assert_eq(msvc_lb_new(&o, &lb), MSVC_OK);
  return lb;
}

/* Endpoints named "10.0.0.<i>:80" with the given weights. */
static inline void lbt_set(msvc_lb_t *lb, const uint32_t *weights, size_t n,
                           uint64_t now_ms) {
  static char ids[4096][32];
  msvc_lb_endpoint_t eps[4096];
  size_t i;

  cr_assert_leq(n, 4096);
  for (i = 0; i < n; i++) {
    snprintf(ids[i], sizeof(ids[i]), "10.0.%zu.%zu:80", i / 256, i % 256);
    eps[i].id = ids[i];
    eps[i].weight = weights[i];
    eps[i].metadata = NULL;
  }
  cr_assert_eq(msvc_lb_update(lb, eps, n, now_ms), MSVC_OK);
}

/* Index of an endpoint named by lbt_set(). */
static inline size_t lbt_index(const char *id) {
  unsigned a, b;

  cr_assert_eq(sscanf(id, "10.0.%u.%u:80", &a, &b), 2, "odd id %s", id);
  return (size_t)a * 256 + b;
}

/* One pick given back at once; returns the endpoint's index. */
static inline size_t lbt_pick_done(msvc_lb_t *lb, uint64_t now_ms) {
  msvc_lb_ticket_t t;
  size_t i;

  cr_assert_eq(msvc_lb_pick(lb, now_ms, &t), MSVC_OK);
  i = lbt_index(t.endpoint);
  cr_assert_eq(msvc_lb_done(lb, &t, MSVC_LB_SUCCESS, 100), MSVC_OK);
  return i;
}

typedef struct lbt_stats_s {
  size_t n;
  msvc_lb_endpoint_stats_t st[4096];
  char ids[4096][32];
} lbt_stats_t;

static inline int lbt_collect(const msvc_lb_endpoint_stats_t *s, void *data) {
  lbt_stats_t *c = data;

  c->st[c->n] = *s;
  snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", s->id);
  c->st[c->n].id = c->ids[c->n];
  c->st[c->n].metadata = NULL;
  c->n++;
  return 0;
}

static inline void lbt_stats(msvc_lb_t *lb, uint64_t now_ms, lbt_stats_t *c) {
  c->n = 0;
  cr_assert_eq(msvc_lb_foreach(lb, now_ms, lbt_collect, c), MSVC_OK);
}

static inline uint64_t status_inflight(msvc_lb_t *lb) {
  msvc_lb_status_t st;

  cr_assert_eq(msvc_lb_status(lb, 0, &st), MSVC_OK);
  return st.inflight;
}

#endif
