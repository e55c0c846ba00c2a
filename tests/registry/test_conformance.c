/* One behaviour, every backend: each scenario runs against memory:// and a
 * fresh local:// directory; static:// joins for the read side. */
#include "etcd_fixture.h"

/* NULL stands for a fresh local directory. */
static const char *const writable[] = {"memory://", NULL};
#define N_WRITABLE (sizeof(writable) / sizeof(writable[0]))

typedef struct lease_st_s {
  int calls;
  int status;
} lease_st_t;

static void on_lease(msvc_registry_lease_t *lease, int status, void *data) {
  lease_st_t *st = data;

  (void)lease;
  st->calls++;
  st->status = status;
}

typedef struct res_s {
  int calls;
  int status;
  msvc_registry_set_t *set;
} res_t;

static void on_resolve(int status, msvc_registry_set_t *set, void *data) {
  res_t *r = data;

  r->calls++;
  r->status = status;
  r->set = set != NULL ? msvc_registry_set_ref(set) : NULL;
}

static msvc_registry_set_t *resolve_now(fx_t *f, const char *service) {
  res_t r = {0, 0, NULL};

  cr_assert_eq(msvc_registry_resolve(f->reg, service, on_resolve, &r), 0);
  cr_assert_eq(r.calls, 0, "never called from inside resolve");
  cr_assert(fx_run_until(f, int_positive, &r.calls, 5000));
  cr_assert_eq(r.status, MSVC_OK);
  cr_assert_not_null(r.set);
  return r.set;
}

static msvc_registry_lease_t *register_one(fx_t *f, const char *service,
                                           const char *id, uint16_t port,
                                           uint32_t ttl, lease_st_t *st) {
  msvc_registry_instance_t inst;
  msvc_registry_lease_t *lease = NULL;

  msvc_registry_instance_init(&inst);
  inst.id = id;
  inst.service = service;
  inst.address = "127.0.0.1";
  inst.port = port;
  cr_assert_eq(msvc_registry_register(f->reg, &inst, ttl, on_lease, st, &lease),
               MSVC_OK);
  cr_assert_eq(st->calls, 0, "never called from inside register");
  cr_assert(fx_run_until(f, int_positive, &st->calls, 5000));
  cr_assert_eq(st->status, MSVC_OK, "%s", msvc_strerror(st->status));
  return lease;
}

static void scenario_register_resolve_metadata(const char *uri) {
  static const msvc_registry_meta_t meta[] = {
      {"zone", "eu-west-1a"}, {"quote", "say \"hi\"\n\\"}, {"empty", ""}};
  msvc_registry_instance_t inst;
  msvc_registry_lease_t *lease = NULL;
  lease_st_t st = {0, 0};
  const msvc_registry_instance_t *got;
  msvc_registry_set_t *set;
  fx_t f;

  fx_open(&f, uri, NULL);
  msvc_registry_instance_init(&inst);
  inst.service = "users";
  inst.address = "10.0.0.7";
  inst.port = 8081;
  inst.weight = 3;
  inst.version = "1.2.3";
  inst.metadata = meta;
  inst.nmetadata = 3;
  cr_assert_eq(msvc_registry_register(f.reg, &inst, 5000, on_lease, &st,
                                      &lease), 0);
  cr_assert_eq(strlen(msvc_registry_lease_id(lease)), 32, "generated id");
  cr_assert(fx_run_until(&f, int_positive, &st.calls, 5000));
  cr_assert_eq(st.status, 0);

  set = resolve_now(&f, "users");
  cr_assert_eq(msvc_registry_set_count(set), 1, "%s", f.uri);
  cr_assert_not(msvc_registry_set_stale(set));
  cr_assert_str_eq(msvc_registry_set_service(set), "users");
  got = msvc_registry_set_at(set, 0);
  cr_assert_str_eq(got->id, msvc_registry_lease_id(lease));
  cr_assert_str_eq(got->address, "10.0.0.7");
  cr_assert_eq(got->port, 8081);
  cr_assert_eq(got->weight, 3);
  cr_assert_str_eq(got->version, "1.2.3");
  cr_assert_eq(got->nmetadata, 3);
  cr_assert_str_eq(msvc_registry_instance_meta(got, "zone"), "eu-west-1a");
  cr_assert_str_eq(msvc_registry_instance_meta(got, "quote"), "say \"hi\"\n\\");
  cr_assert_str_eq(msvc_registry_instance_meta(got, "empty"), "");
  cr_assert_null(msvc_registry_instance_meta(got, "absent"));
  cr_assert_null(msvc_registry_set_at(set, 1));
  msvc_registry_set_unref(set);

  set = resolve_now(&f, "nobody");
  cr_assert_eq(msvc_registry_set_count(set), 0, "an unknown service is empty");
  cr_assert_not(msvc_registry_set_stale(set));
  msvc_registry_set_unref(set);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_REGISTER), 0);
  fx_close(&f);
}

Test(conformance, register_resolve_metadata_roundtrip, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_register_resolve_metadata(writable[i]);
}

typedef struct done_s {
  int calls;
  int status;
} done_t;

static void on_deregistered(int status, void *data) {
  done_t *d = data;

  d->calls++;
  d->status = status;
}

static void count_closed(void *data) {
  (*(int *)data)++;
}

static void scenario_watch_add_remove(const char *uri) {
  lease_st_t st1 = {0, 0}, st2 = {0, 0};
  seen_t seen = {0, NULL};
  msvc_registry_lease_t *a, *b;
  msvc_registry_watch_t *w = NULL;
  done_t done = {0, -1};
  want_t want = {&seen, 0};
  fx_t f;

  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "orders", seen_cb, &seen, &w), 0);
  cr_assert_eq(seen.calls, 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000), "initial empty set");
  cr_assert_eq(msvc_registry_watch_set(w), seen.last);

  a = register_one(&f, "orders", "a", 9001, 5000, &st1);
  b = register_one(&f, "orders", "b", 9002, 5000, &st2);
  want.count = 2;
  cr_assert(fx_run_until(&f, want_count, &want, 5000), "%s: sees both", f.uri);
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "a");
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 1)->id, "b");

  msvc_registry_deregister(a, on_deregistered, &done);
  cr_assert_eq(done.calls, 0);
  want.count = 1;
  cr_assert(fx_run_until(&f, want_count, &want, 5000), "sees the removal");
  cr_assert_eq(done.calls, 1);
  cr_assert_eq(done.status, MSVC_OK);
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "b");
  (void)b;
  msvc_registry_unwatch(w);
  seen_clear(&seen);
  fx_close(&f);
}

Test(conformance, watch_sees_add_and_remove, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_watch_add_remove(writable[i]);
}

static void scenario_deregister_is_immediate(const char *uri) {
  lease_st_t st = {0, 0};
  done_t done = {0, -1};
  msvc_registry_lease_t *lease;
  msvc_registry_set_t *set;
  fx_t f;

  fx_open(&f, uri, NULL);
  lease = register_one(&f, "carts", "c1", 7000, 60000, &st);
  set = resolve_now(&f, "carts");
  cr_assert_eq(msvc_registry_set_count(set), 1);
  msvc_registry_set_unref(set);
  msvc_registry_deregister(lease, on_deregistered, &done);
  /* The instance is gone as soon as deregister returns, long before any
   * TTL could expire. */
  set = resolve_now(&f, "carts");
  cr_assert_eq(msvc_registry_set_count(set), 0, "%s", f.uri);
  msvc_registry_set_unref(set);
  cr_assert(fx_run_until(&f, int_positive, &done.calls, 5000));
  cr_assert_eq(done.status, MSVC_OK);
  fx_close(&f);
}

Test(conformance, deregister_removes_at_once, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_deregister_is_immediate(writable[i]);
}

static void scenario_ttl_expiry(const char *uri) {
  lease_st_t st = {0, 0}, st2 = {0, 0};
  seen_t seen = {0, NULL};
  want_t want = {&seen, 2};
  msvc_registry_lease_t *dead;
  uint64_t t0, took;
  fx_t f;

  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "pay", seen_cb, &seen, NULL), 0);
  register_one(&f, "pay", "alive", 7001, 300, &st2);
  dead = register_one(&f, "pay", "dead", 7002, 300, &st);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  /* The process "hangs": no more heartbeats, no deregistration. */
  msvc__reg_lease_freeze(dead);
  t0 = msvc_now_ms();
  want.count = 1;
  cr_assert(fx_run_until(&f, want_count, &want, 3000), "%s: never expired",
            f.uri);
  took = msvc_now_ms() - t0;
  cr_assert_leq(took, 300 + 250, "%s: expired after %llu ms", f.uri,
                (unsigned long long)took);
  cr_assert_str_eq(msvc_registry_set_at(seen.last, 0)->id, "alive",
                   "the live one, heartbeating every 100 ms, stays");
  /* Stays stable over several TTLs. */
  t0 = msvc_now_ms();
  while (msvc_now_ms() - t0 < 700)
    fx_run_until(&f, want_count, &(want_t){&seen, 99}, 50);
  cr_assert_eq(msvc_registry_set_count(seen.last), 1);
  seen_clear(&seen);
  fx_close(&f);
}

Test(conformance, dead_instance_expires_within_ttl, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_ttl_expiry(writable[i]);
}

static void on_lease_count(msvc_registry_lease_t *lease, int status,
                           void *data) {
  (void)lease;
  cr_assert_eq(status, 0);
  (*(int *)data)++;
}

static bool int_is_1000(void *arg) {
  return *(int *)arg == 1000;
}

static void check_thousand(fx_t *f, const char *service) {
  msvc_registry_set_t *set = resolve_now(f, service);
  size_t i;

  cr_assert_eq(msvc_registry_set_count(set), 1000, "%s", f->uri);
  for (i = 1; i < 1000; i++)
    cr_assert_lt(strcmp(msvc_registry_set_at(set, i - 1)->id,
                        msvc_registry_set_at(set, i)->id),
                 0, "sorted by id");
  msvc_registry_set_unref(set);
}

static void scenario_thousand(const char *uri) {
  msvc_registry_instance_t inst;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1000};
  int ok = 0, i;
  fx_t f;

  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "big", seen_cb, &seen, NULL), 0);
  for (i = 0; i < 1000; i++) {
    msvc_registry_instance_init(&inst);
    inst.service = "big";
    inst.address = "10.1.2.3";
    inst.port = (uint16_t)(10000 + i);
    cr_assert_eq(msvc_registry_register(f.reg, &inst, 30000, on_lease_count,
                                        &ok, NULL), 0);
  }
  cr_assert(fx_run_until(&f, int_is_1000, &ok, 20000));
  cr_assert(fx_run_until(&f, want_count, &want, 10000));
  cr_assert_lt(seen.calls, 60, "bursts are debounced (%d callbacks)",
               seen.calls);
  check_thousand(&f, "big");
  seen_clear(&seen);
  fx_close(&f);
}

Test(conformance, thousand_instances, .timeout = 60) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_thousand(writable[i]);
}

Test(conformance, thousand_instances_static, .timeout = 30) {
  msvc__buf_t uri;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1000};
  fx_t f;
  int i;

  msvc__buf_init(&uri, 0);
  msvc__buf_puts(&uri, "static://big=");
  for (i = 0; i < 1000; i++)
    msvc__buf_printf(&uri, "%s10.0.%d.%d:%d", i ? "," : "", i / 250, i % 250,
                     8000 + i);
  cr_assert_eq(uri.err, 0);
  /* fx_open's buffer is too small for this one. */
  memset(&f, 0, sizeof(f));
  cr_assert_eq(uv_loop_init(&f.loop), 0);
  cr_assert_eq(uv_timer_init(&f.loop, &f.tick), 0);
  cr_assert_eq(msvc_registry_new(&f.loop, uri.data, NULL, &f.reg), 0);
  msvc__buf_free(&uri);
  check_thousand(&f, "big");
  cr_assert_eq(msvc_registry_watch(f.reg, "big", seen_cb, &seen, NULL), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  seen_clear(&seen);
  fx_close(&f);
}

Test(conformance, static_read_side, .timeout = 30) {
  msvc_registry_instance_t inst;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 2};
  msvc_registry_set_t *set;
  const msvc_registry_instance_t *a;
  fx_t f;

  fx_open(&f, "static://users=127.0.0.1:8081,[::1]:8082;orders=h.example:80",
          NULL);
  cr_assert_str_eq(msvc_registry_backend(f.reg), "static");
  set = resolve_now(&f, "users");
  cr_assert_eq(msvc_registry_set_count(set), 2);
  a = msvc_registry_set_at(set, 0);
  cr_assert_str_eq(a->address, "127.0.0.1");
  cr_assert_eq(a->port, 8081);
  cr_assert_eq(a->weight, 1);
  cr_assert_str_eq(a->id, "127.0.0.1-8081");
  cr_assert_str_eq(msvc_registry_set_at(set, 1)->address, "::1");
  msvc_registry_set_unref(set);
  set = resolve_now(&f, "other");
  cr_assert_eq(msvc_registry_set_count(set), 0);
  msvc_registry_set_unref(set);

  msvc_registry_instance_init(&inst);
  inst.service = "users";
  inst.address = "x";
  inst.port = 1;
  cr_assert_eq(msvc_registry_register(f.reg, &inst, 1000, NULL, NULL, NULL),
               MSVC_ENOTSUP, "static is read-only");
  cr_assert_eq(msvc_registry_watch(f.reg, "users", seen_cb, &seen, NULL), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  seen_clear(&seen);
  fx_close(&f);
}

typedef struct gone_and_closed_s {
  want_t want;
  int *closed;
} gone_and_closed_t;

static bool gone_and_closed(void *arg) {
  gone_and_closed_t *g = arg;

  return want_count(&g->want) && *g->closed > 0;
}

/* Two registries on one backend: what one registers, the other sees. */
static void scenario_two_registries(const char *uri) {
  lease_st_t st = {0, 0};
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1};
  msvc_registry_t *other;
  int first_closed = 0;
  fx_t f;

  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_new(&f.loop, f.uri, NULL, &other), 0);
  cr_assert_eq(msvc_registry_watch(other, "search", seen_cb, &seen, NULL), 0);
  register_one(&f, "search", "s1", 6000, 5000, &st);
  cr_assert(fx_run_until(&f, want_count, &want, 5000), "%s", f.uri);
  /* Closing the registering side removes its instance for the other. */
  msvc_registry_close(f.reg, count_closed, &first_closed);
  f.reg = other;
  want.count = 0;
  /* The other side may see the removal a loop turn before the close
   * completes, or after: wait for both. */
  cr_assert(fx_run_until(&f, gone_and_closed,
                         &(gone_and_closed_t){want, &first_closed}, 5000),
            "%s: %zu instances, closed %d", f.uri,
            msvc_registry_set_count(seen.last), first_closed);
  cr_assert_eq(first_closed, 1);
  seen_clear(&seen);
  fx_close(&f);
}

Test(conformance, two_registries_see_each_other, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_two_registries(writable[i]);
}

typedef struct reentry_s {
  fx_t *f;
  int watch_calls;
  int resolved;
  int resolve_status;
  size_t resolved_count;
  bool resolved_r1;
} reentry_t;

static void close_from_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                             void *data) {
  reentry_t *r = data;

  (void)w;
  (void)set;
  /* Closing from inside a callback: leases, this watch and pending reads
   * all wind down; the pending resolve still answers. */
  if (r->watch_calls++ == 0)
    msvc_registry_close(r->f->reg, fx_on_closed, r->f);
}

static void resolved_late(int status, msvc_registry_set_t *set, void *data) {
  reentry_t *r = data;

  r->resolved++;
  r->resolve_status = status;
  if (status == 0) {
    r->resolved_count = msvc_registry_set_count(set);
    r->resolved_r1 = r->resolved_count == 1 &&
                     strcmp(msvc_registry_set_at(set, 0)->id, "r1") == 0;
  }
}

static void scenario_close_from_callback(const char *uri) {
  lease_st_t st = {0, 0};
  reentry_t r;
  fx_t f;

  fx_open(&f, uri, NULL);
  memset(&r, 0, sizeof(r));
  r.f = &f;
  register_one(&f, "re", "r1", 5000, 5000, &st);
  cr_assert_eq(msvc_registry_resolve(f.reg, "re", resolved_late, &r), 0);
  cr_assert_eq(msvc_registry_watch(f.reg, "re", close_from_watch, &r, NULL),
               0);
  uv_close((uv_handle_t *)&f.tick, NULL);
  cr_assert_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(f.closed, 1);
  cr_assert_eq(r.watch_calls, 1, "no callback after close");
  cr_assert_eq(r.resolved, 1, "a pending resolve still answers");
  cr_assert_eq(r.resolve_status, MSVC_OK);
  /* memory:// answers from the state at the time of the call. local://
   * reads the directory on the thread pool, and that read races with the
   * removal of r1 that the close performs: either answer is right then. */
  if (uri != NULL)
    cr_assert(r.resolved_r1, "%s: resolved %zu instances", f.uri,
              r.resolved_count);
  else
    cr_assert(r.resolved_r1 || r.resolved_count == 0,
              "%s: resolved %zu instances", f.uri, r.resolved_count);
  cr_assert_eq(uv_loop_close(&f.loop), 0, "a handle leaked");
  if (f.dir[0] != '\0')
    fx_rmtree(f.dir);
}

Test(conformance, close_from_inside_a_callback, .timeout = 30) {
  for (size_t i = 0; i < N_WRITABLE; i++)
    scenario_close_from_callback(writable[i]);
}

/* etcd: the same scenarios against a real single-node etcd. Its leases
 * count whole seconds, so TTL expiry is checked in test_etcd.c instead;
 * closing from a callback assumes a register that lands before the next
 * loop turn, which a network round trip cannot promise. */
static void (*const etcd_scenarios[])(const char *) = {
    scenario_register_resolve_metadata, scenario_watch_add_remove,
    scenario_deregister_is_immediate, scenario_two_registries,
    scenario_thousand};

Test(conformance, etcd_backend, .timeout = 240) {
  etcd_cluster_t c;

  etcd_start(&c, 1);
  for (size_t i = 0; i < sizeof(etcd_scenarios) / sizeof(etcd_scenarios[0]);
       i++)
    etcd_scenarios[i](c.uri);
  etcd_finish(&c);
}
