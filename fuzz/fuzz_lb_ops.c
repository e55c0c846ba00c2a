/*
 * Drives one balancer with an arbitrary sequence of operations (set updates,
 * picks, returns, second returns, exclusions, inclusions, time jumps, status
 * and statistics reads) and checks its invariants after every step: a pick
 * names an endpoint of the current set that is not excluded unless the
 * balancer says it is in panic mode; the in-flight total equals the tickets
 * held; a held ticket is always accepted once and never twice; errors only
 * where the API documents them.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/lb.h>

#define POOL 12  /* endpoint ids the sets are drawn from */
#define SLOTS 16 /* tickets held at once */

typedef struct fuzz_s {
  msvc_lb_t *lb;
  uint64_t now;
  bool in_set[POOL];
  uint64_t excluded_until[POOL];
  msvc_lb_ticket_t tickets[SLOTS];
  bool held[SLOTS];
  msvc_lb_ticket_t spent[SLOTS]; /* returned, kept to try a second time */
  bool has_spent[SLOTS];
  uint32_t nheld;
} fuzz_t;

static char ids[POOL][16];

static void check(int ok) {
  if (!ok)
    __builtin_trap();
}

static int id_index(const char *id) {
  int i;

  for (i = 0; i < POOL; i++)
    if (strcmp(ids[i], id) == 0)
      return i;
  return -1;
}

static void op_update(fuzz_t *f, const uint8_t *d) {
  msvc_lb_endpoint_t eps[POOL];
  uint16_t mask = (uint16_t)(d[0] | d[1] << 8);
  size_t n = 0;
  int i;

  for (i = 0; i < POOL; i++) {
    if (mask & (1u << i)) {
      eps[n].id = ids[i];
      eps[n].weight = 1u + (d[2] + (unsigned)i * 37u) % 20u;
      eps[n].metadata = (d[2] & 1) ? "zone=a" : NULL;
      n++;
    }
  }
  /* an invalid weight must be refused without effect */
  if (n > 0 && d[2] == 0xff) {
    eps[0].weight = 0;
    check(msvc_lb_update(f->lb, eps, n, f->now) == MSVC_EINVAL);
    return;
  }
  check(msvc_lb_update(f->lb, eps, n, f->now) == MSVC_OK);
  for (i = 0; i < POOL; i++) {
    bool was = f->in_set[i];
    f->in_set[i] = (mask & (1u << i)) != 0;
    if (!was && f->in_set[i])
      f->excluded_until[i] = 0; /* a newcomer starts fresh */
  }
}

static void op_pick(fuzz_t *f, uint8_t slot) {
  msvc_lb_status_t st;
  size_t any = 0;
  int rc, i;

  slot %= SLOTS;
  if (f->held[slot])
    return;
  for (i = 0; i < POOL; i++)
    any += f->in_set[i];
  rc = msvc_lb_pick(f->lb, f->now, &f->tickets[slot]);
  if (any == 0) {
    check(rc == MSVC_ENO_ENDPOINTS);
    return;
  }
  check(rc == MSVC_OK);
  f->held[slot] = true;
  f->nheld++;
  i = id_index(f->tickets[slot].endpoint);
  check(i >= 0 && f->in_set[i]);
  check(msvc_lb_status(f->lb, f->now, &st) == MSVC_OK);
  check(st.panic || f->excluded_until[i] <= f->now);
}

static void op_done(fuzz_t *f, uint8_t slot, uint8_t how) {
  slot %= SLOTS;
  if (f->held[slot]) {
    check(msvc_lb_done(f->lb, &f->tickets[slot],
                       how & 1 ? MSVC_LB_FAILURE : MSVC_LB_SUCCESS, how) ==
          MSVC_OK);
    f->held[slot] = false;
    f->nheld--;
    f->spent[slot] = f->tickets[slot];
    f->has_spent[slot] = true;
  } else if (f->has_spent[slot]) {
    check(msvc_lb_done(f->lb, &f->spent[slot], MSVC_LB_SUCCESS, 1) ==
          MSVC_ETICKET);
  }
}

static void op_exclude(fuzz_t *f, uint8_t which, uint8_t len) {
  int i = which % POOL;
  uint64_t until = f->now + len;
  int rc = msvc_lb_exclude(f->lb, ids[i], until, f->now);

  if (!f->in_set[i]) {
    check(rc == MSVC_ENOTFOUND);
    return;
  }
  check(rc == MSVC_OK);
  if (until > f->now)
    f->excluded_until[i] = until;
  else if (f->excluded_until[i] > f->now)
    f->excluded_until[i] = f->now;
}

static void check_totals(fuzz_t *f) {
  msvc_lb_status_t st;
  uint32_t excluded = 0, total = 0;
  int i;

  check(msvc_lb_status(f->lb, f->now, &st) == MSVC_OK);
  check(st.inflight == f->nheld);
  for (i = 0; i < POOL; i++) {
    total += f->in_set[i];
    excluded += f->in_set[i] && f->excluded_until[i] > f->now;
  }
  check(st.endpoints == total);
  check(st.excluded == excluded);
  check(st.eligible == (st.panic ? total : total - excluded));
}

static int count_cb(const msvc_lb_endpoint_stats_t *s, void *data) {
  check(id_index(s->id) >= 0 && s->weight >= 1);
  (*(uint32_t *)data)++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_lb_opts_t o;
  fuzz_t f;
  size_t i;
  int k;

  if (size < 3)
    return 0;
  for (k = 0; k < POOL; k++)
    snprintf(ids[k], sizeof(ids[k]), "10.0.0.%d:80", k);
  memset(&f, 0, sizeof(f));
  f.now = 1;
  msvc_lb_opts_init(&o);
  o.policy = (msvc_lb_policy_t)(data[0] % 3);
  o.max_excluded_percent = data[1] % 101u;
  o.slow_start_ms = data[2] % 4 == 0 ? 0 : data[2];
  o.track_tickets = true;
  check(msvc_lb_new(&o, &f.lb) == MSVC_OK);
  for (i = 3; i + 4 <= size; i += 4) {
    const uint8_t *d = data + i + 1;

    switch (data[i] % 7) {
    case 0: op_update(&f, d); break;
    case 1: op_pick(&f, d[0]); break;
    case 2: op_done(&f, d[0], d[1]); break;
    case 3: op_exclude(&f, d[0], d[1]); break;
    case 4: f.now += d[0]; break;
    case 5: {
      uint32_t n = 0, total = 0;
      check(msvc_lb_foreach(f.lb, f.now, count_cb, &n) == MSVC_OK);
      for (k = 0; k < POOL; k++)
        total += f.in_set[k];
      check(n == total);
      break;
    }
    default:
      op_exclude(&f, d[0], 0); /* include */
      break;
    }
    check_totals(&f);
  }
  for (k = 0; k < SLOTS; k++)
    if (f.held[k])
      op_done(&f, (uint8_t)k, 0);
  check_totals(&f);
  msvc_lb_free(f.lb);
  return 0;
}
