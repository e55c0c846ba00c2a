/* The etcd backend against real etcd processes: lease expiry, an etcd
 * outage (last known set kept and flagged stale, the instance back by
 * itself afterwards) and a three-member cluster losing one member. */
#include "etcd_fixture.h"

typedef struct lease_seen_s {
  int calls;
  int status;
} lease_seen_t;

static void on_lease(msvc_registry_lease_t *lease, int status, void *data) {
  lease_seen_t *st = data;

  (void)lease;
  st->calls++;
  st->status = status;
}

static msvc_registry_lease_t *register_as(fx_t *f, const char *id,
                                          uint16_t port, uint32_t ttl_ms,
                                          lease_seen_t *st) {
  msvc_registry_instance_t inst;
  msvc_registry_lease_t *lease;

  memset(&inst, 0, sizeof(inst));
  inst.id = id;
  inst.service = "pay";
  inst.address = "127.0.0.1";
  inst.port = port;
  inst.weight = 1;
  cr_assert_eq(msvc_registry_register(f->reg, &inst, ttl_ms, on_lease, st,
                                      &lease),
               MSVC_OK);
  return lease;
}

/* The watch's last set has `count` instances and the given staleness. */
typedef struct want_state_s {
  seen_t *seen;
  size_t count;
  bool stale;
} want_state_t;

static bool want_state(void *arg) {
  want_state_t *w = arg;

  return w->seen->last != NULL &&
         msvc_registry_set_count(w->seen->last) == w->count &&
         msvc_registry_set_stale(w->seen->last) == w->stale;
}

static msvc_registry_opts_t quick_retries(void) {
  msvc_registry_opts_t o;

  msvc_registry_opts_init(&o);
  o.retry_min_ms = 50;
  o.retry_max_ms = 500;
  return o;
}

Test(etcd, dead_instance_expires_with_its_lease, .timeout = 120) {
  etcd_cluster_t c;
  lease_seen_t st = {0, 0}, st2 = {0, 0};
  seen_t seen = {0, NULL};
  msvc_registry_lease_t *dead;
  fx_t f;

  etcd_start(&c, 1);
  fx_open(&f, c.uri, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "pay", seen_cb, &seen, NULL), 0);
  register_as(&f, "alive", 7001, 2000, &st);
  dead = register_as(&f, "dead", 7002, 2000, &st2);
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 2, false},
                         20000));
  /* No more keepalives: etcd drops the key when the lease runs out. */
  msvc__reg_lease_freeze(dead);
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 1, false},
                         20000),
            "the dead instance expired");
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "alive");
  cr_assert_eq(st.status, MSVC_OK);
  seen_clear(&seen);
  fx_close(&f);
  etcd_finish(&c);
}

/* Kill the only etcd; restart it (same ports; the same data directory or,
 * when wipe is set, an empty one, so that every lease is gone). */
static void outage(bool wipe) {
  etcd_cluster_t c;
  lease_seen_t st = {0, 0};
  seen_t seen = {0, NULL};
  msvc_registry_opts_t o = quick_retries();
  fx_t f;

  etcd_start(&c, 1);
  fx_open(&f, c.uri, &o);
  cr_assert_eq(msvc_registry_watch(f.reg, "pay", seen_cb, &seen, NULL), 0);
  register_as(&f, "survivor", 7001, 3000, &st);
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 1, false},
                         20000));

  etcd_kill(&c, 0);
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 1, true},
                         30000),
            "the last known set is kept, flagged stale");
  cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 0);

  if (wipe) {
    fx_rmtree(c.m[0].dir);
    cr_assert_eq(mkdir(c.m[0].dir, 0700), 0);
    etcd_spawn(&c, 0, true);
    cr_assert(etcd_wait_ready(&c, 0, 30000));
  } else {
    etcd_restart(&c, 0);
  }
  /* Nobody calls register again: the keepalive finds the lease gone (or
   * still there) and the instance is back either way, watched afresh. */
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 1, false},
                         30000),
            "the instance is back and the set is fresh");
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "survivor");
  cr_assert_eq(st.status, MSVC_OK, "the lease recovered");
  seen_clear(&seen);
  fx_close(&f);
  etcd_finish(&c);
}

Test(etcd, outage_keeps_stale_set_and_recovers, .timeout = 180) {
  outage(false);
}

Test(etcd, lost_store_regrants_and_registers_again, .timeout = 180) {
  outage(true);
}

static bool lease_ok(void *arg) {
  return ((lease_seen_t *)arg)->calls > 0 &&
         ((lease_seen_t *)arg)->status == MSVC_OK;
}

Test(etcd, cluster_survives_losing_a_member, .timeout = 240) {
  etcd_cluster_t c;
  lease_seen_t st = {0, 0}, st2 = {0, 0};
  seen_t seen = {0, NULL};
  msvc_registry_opts_t o = quick_retries();
  fx_t f;

  etcd_start(&c, 3);
  fx_open(&f, c.uri, &o);
  cr_assert_eq(msvc_registry_watch(f.reg, "pay", seen_cb, &seen, NULL), 0);
  register_as(&f, "one", 7001, 3000, &st);
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 1, false},
                         20000));
  /* The first endpoint is the one in use: lose it. */
  etcd_kill(&c, 0);
  register_as(&f, "two", 7002, 3000, &st2);
  cr_assert(fx_run_until(&f, lease_ok, &st2, 30000),
            "registration fails over");
  cr_assert(fx_run_until(&f, want_state, &(want_state_t){&seen, 2, false},
                         30000),
            "the watch fails over and sees the new instance");
  /* Keepalives keep going through the remaining members. */
  uint64_t t0 = msvc_now_ms();
  while (msvc_now_ms() - t0 < 4000)
    fx_run_until(&f, want_state, &(want_state_t){&seen, 99, false}, 50);
  cr_assert(want_state(&(want_state_t){&seen, 2, false}));
  cr_assert_eq(st.status, MSVC_OK);
  seen_clear(&seen);
  fx_close(&f);
  etcd_finish(&c);
}
