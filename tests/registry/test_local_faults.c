/* The local backend when the filesystem fails it: a failed scan, or
 * heartbeats that cannot be written (full or read-only directory), must
 * never make discovery smaller than the set of healthy instances. The
 * failures are injected (as root, permissions cannot make a directory
 * unwritable), at the system calls the backend makes. */
#include <errno.h>

#include "fixture.h"

static void faults_clear(void) {
  atomic_store(&msvc__reg_local_faults.read, 0);
  atomic_store(&msvc__reg_local_faults.write, 0);
  atomic_store(&msvc__reg_local_faults.unlink, 0);
  atomic_store(&msvc__reg_local_faults.full, false);
}

/* Counts successes (a lease also reports its changes to failing). */
static void on_ok(msvc_registry_lease_t *l, int status, void *data) {
  (void)l;
  if (status == 0)
    (*(int *)data)++;
}

static msvc_registry_watch_t *first_watch(fx_t *f) {
  return msvc__container_of(f->reg->watches.next, msvc_registry_watch_t, node);
}

/* Two healthy instances of "svc" (TTL ttl_ms), watched into seen. */
static int oks; /* lease callbacks outlive two_instances() */

static void two_instances(fx_t *f, uint32_t ttl_ms, seen_t *seen) {
  msvc_registry_instance_t in;
  int *ok = &oks;

  msvc_registry_instance_init(&in);
  in.service = "svc";
  in.address = "127.0.0.1";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f->reg, &in, ttl_ms, on_ok, ok, NULL), 0);
  in.port = 6;
  cr_assert_eq(msvc_registry_register(f->reg, &in, ttl_ms, on_ok, ok, NULL), 0);
  cr_assert_eq(msvc_registry_watch(f->reg, "svc", seen_cb, seen, NULL), 0);
  cr_assert(fx_run_until(f, want_count, &(want_t){seen, 2}, 5000));
  cr_assert_geq(*ok, 2);
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

/* Runs the loop for ms milliseconds; false if seen ever held fewer than
 * want instances meanwhile. */
static bool holds_for(fx_t *f, seen_t *seen, size_t want, uint64_t ms) {
  uint64_t end = msvc_now_ms() + ms;
  bool held = true;

  while (msvc_now_ms() < end) {
    fx_run_until(f, never, NULL, 10);
    if (seen->last == NULL || msvc_registry_set_count(seen->last) < want)
      held = false;
  }
  return held;
}

typedef struct got_s {
  int calls;
  int status;
} got_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  got_t *g = data;

  (void)set;
  g->calls++;
  g->status = status;
}

/* Reads that fail for a reason that is not the file's (EMFILE, EIO): the
 * scan fails and the last set stays, flagged stale; skipping the files
 * would publish an empty set of a healthy service. */
Test(local_faults, failed_reads_keep_the_last_known_set, .timeout = 30) {
  static const int errs[] = {-EMFILE, -EIO, -ENFILE};
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  size_t i;
  fx_t f;

  msvc_registry_opts_init(&o);
  o.rescan_ms = 20;
  o.retry_min_ms = 10;
  o.retry_max_ms = 20;
  fx_open(&f, NULL, &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  two_instances(&f, 60000, &seen);
  for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
    got_t got = {0, 0};
    uint64_t before = msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH);
    atomic_store(&msvc__reg_local_faults.read, errs[i]);
    msvc__reg_watch_poke(first_watch(&f));
    cr_assert(holds_for(&f, &seen, 2, 300), "shrank on %s",
              msvc_strerror(errs[i]));
    cr_assert(msvc_registry_set_stale(seen.last), "flagged stale");
    cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), before);
    /* A one-off resolve says it failed rather than "nobody there". */
    cr_assert_eq(msvc_registry_resolve(f.reg, "svc", on_resolved, &got), 0);
    cr_assert(fx_run_until(&f, int_positive, &got.calls, 5000));
    cr_assert_eq(got.status, errs[i]);
    faults_clear();
    cr_assert(fx_run_until(&f, want_count, &(want_t){&seen, 2}, 5000),
              "fresh again");
  }
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

/* Heartbeats cannot be written (read-only filesystem): the files grow old,
 * but their owners are alive. A reader cannot remove them either, which is
 * how it knows: they stay in discovery. */
Test(local_faults, read_only_directory_keeps_late_instances, .timeout = 30) {
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  fx_t f;

  msvc_registry_opts_init(&o);
  o.rescan_ms = 20;
  o.retry_min_ms = 10;
  o.retry_max_ms = 20;
  fx_open(&f, NULL, &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  two_instances(&f, 150, &seen);
  atomic_store(&msvc__reg_local_faults.write, -EROFS);
  atomic_store(&msvc__reg_local_faults.unlink, -EROFS);
  /* Four TTLs without a single heartbeat landing. */
  cr_assert(holds_for(&f, &seen, 2, 600), "instances vanished");
  cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_HEARTBEAT), 0);
  /* Writable again: heartbeats land, nothing flapped. */
  atomic_store(&msvc__reg_local_faults.write, 0);
  cr_assert(holds_for(&f, &seen, 2, 100));
  faults_clear();
  cr_assert(holds_for(&f, &seen, 2, 300));
  cr_assert(want_count(&(want_t){&seen, 2}));
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

/* A full filesystem: the writer's temporary file cannot be written, while
 * a reader could still unlink. The free space says the owner could not
 * renew, so the late files stay. Once space is back, an instance whose
 * owner really is gone disappears on time. */
Test(local_faults, full_directory_keeps_late_instances_until_space_is_back,
     .timeout = 30) {
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  fx_t f;

  msvc_registry_opts_init(&o);
  o.rescan_ms = 20;
  o.retry_min_ms = 10;
  o.retry_max_ms = 20;
  fx_open(&f, NULL, &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  two_instances(&f, 150, &seen);
  atomic_store(&msvc__reg_local_faults.write, -ENOSPC);
  atomic_store(&msvc__reg_local_faults.full, true);
  cr_assert(holds_for(&f, &seen, 2, 600), "instances vanished");
  /* One owner dies while the disk is full; then space comes back. */
  msvc__reg_lease_freeze(
      msvc__container_of(f.reg->leases.next, msvc_registry_lease_t, node));
  /* Writers first (the live owner renews within its retry delay), then
   * the space readers look at. */
  atomic_store(&msvc__reg_local_faults.write, 0);
  cr_assert(holds_for(&f, &seen, 2, 100));
  faults_clear();
  cr_assert(fx_run_until(&f, want_count, &(want_t){&seen, 1}, 2000),
            "the dead one goes once the directory is writable");
  cr_assert(holds_for(&f, &seen, 1, 300), "the live one stays");
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}
