/*
 * Out-of-memory sweeps in the manner of SQLite's malloc tests: a scenario
 * runs once with no failure to count its allocations, then again with the
 * 1st, 2nd, 3rd, ... allocation failing (once), until a run completes
 * without reaching the injected failure. At every N the scenario's calls
 * must return MSVC_ENOMEM or succeed, nothing may crash, and nothing may
 * wedge (every wait is bounded). In the sanitizer build LeakSanitizer is
 * asked after every N whether anything leaked, so a leak names its N.
 *
 * The library under test is the copy built with allocation fault injection
 * (src/core/alloc-fault.h). cJSON is pointed at the library's allocator so
 * that its allocations fail too. Two dependencies keep their own: libuv
 * aborts when some of its allocations fail (growing its watcher array, for
 * one), so failing them would test libuv rather than this library; and Mbed
 * TLS calls the C library directly (Debian builds it without
 * MBEDTLS_PLATFORM_MEMORY).
 */
#ifndef MSVC_TEST_OOM_H
#define MSVC_TEST_OOM_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include <msvc/error.h>

#include "core/alloc-fault.h"
#include "msvc-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define OOM_LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define OOM_LEAK_CHECK() 0
#endif

/* The N being run; 0 for the counting run. For messages. */
static unsigned long oom_n;

/* Criterion runs each test in a fresh worker process, so this runs before
 * cJSON allocates anything in it. */
static inline void oom_init(void) {
  cJSON_Hooks hooks = {msvc__malloc, msvc__free};

  cJSON_InitHooks(&hooks);
}

/* An API call inside a scenario: a clean MSVC_ENOMEM ends the scenario
 * (through its cleanup label), anything else but success fails the test. */
#define OOM_CALL(rc, expr, label)                                            \
  do {                                                                       \
    (rc) = (expr);                                                           \
    if ((rc) == MSVC_ENOMEM)                                                 \
      goto label;                                                            \
    cr_assert_eq((rc), 0, "N=%lu: %s returned %d (%s)", oom_n, #expr, (rc),  \
                 msvc_err_name(rc));                                         \
  } while (0)

typedef int (*oom_scenario_fn)(void *arg);

typedef struct oom_stats_s {
  unsigned long clean_allocs; /* allocations of the run with no failure */
  unsigned long runs;         /* values of N run */
  unsigned long last_n;       /* the N that completed without a failure */
  unsigned long enomem;       /* runs that ended in MSVC_ENOMEM */
} oom_stats_t;

/* Runs fn for N = 1, 2, ... every_upto, then every step-th N, until a run
 * does not reach its injected failure. With persist, every allocation from
 * the N-th on fails (SQLite's "persistent" mode): the scenario must still
 * wind down cleanly, with no allocation to help it. */
static inline void oom_sweep_mode(const char *name, oom_scenario_fn fn,
                                  void *arg, unsigned long every_upto,
                                  unsigned long step, bool persist,
                                  oom_stats_t *st) {
  unsigned long n = 1;
  time_t start = time(NULL);
  const char *only = getenv("OOM_ONLY"); /* one N, to debug it */
  bool verbose = getenv("OOM_VERBOSE") != NULL;
  int rc;

  memset(st, 0, sizeof(*st));
  oom_n = 0;
  msvc__fault_fail_nth(0);
  rc = fn(arg);
  st->clean_allocs = msvc__fault_allocs();
  cr_assert_eq(rc, 0, "%s: the run without failures returned %d", name, rc);
  cr_assert_eq(OOM_LEAK_CHECK(), 0, "%s: leak without any failure", name);
  if (only != NULL)
    n = strtoul(only, NULL, 10);
  for (;;) {
    bool hit;

    oom_n = n;
    if (verbose)
      fprintf(stderr, "oom %s: N=%lu\n", name, n);
    msvc__fault_persist(persist);
    msvc__fault_fail_nth(n);
    rc = fn(arg);
    hit = msvc__fault_hit();
    msvc__fault_fail_nth(0);
    msvc__fault_persist(false);
    st->runs++;
    cr_assert_eq(OOM_LEAK_CHECK(), 0, "%s: leak with allocation %lu failing",
                 name, n);
    if (!hit) {
      cr_assert_eq(rc, 0, "%s: N=%lu returned %d without a failure", name, n,
                   rc);
      st->last_n = n;
      break;
    }
    cr_assert(rc == 0 || rc == MSVC_ENOMEM, "%s: N=%lu returned %d (%s)",
              name, n, rc, msvc_err_name(rc));
    if (rc == MSVC_ENOMEM)
      st->enomem++;
    if (only != NULL)
      return;
    cr_assert_lt(n, 10 * st->clean_allocs + 100,
                 "%s: the sweep does not end", name);
    n += n < every_upto ? 1 : step;
  }
  fprintf(stderr,
          "oom %s%s: %lu allocations without failure; %lu runs until N=%lu "
          "completed (%s); %lu ended in MSVC_ENOMEM; %lds\n",
          name, persist ? " (persistent)" : "", st->clean_allocs, st->runs,
          st->last_n, st->last_n <= every_upto ? "every N" : "sampled",
          st->enomem, (long)(time(NULL) - start));
}

static inline void oom_sweep(const char *name, oom_scenario_fn fn, void *arg,
                             unsigned long every_upto, unsigned long step,
                             oom_stats_t *st) {
  oom_sweep_mode(name, fn, arg, every_upto, step, false, st);
}

/* ---- a private loop with bounded waits --------------------------------- */

typedef struct oom_loop_s {
  uv_loop_t loop;
  uv_timer_t tick;
  bool ready;
} oom_loop_t;

static inline void oom__on_tick(uv_timer_t *t) {
  (void)t;
}

static inline int oom_loop_init(oom_loop_t *l) {
  int rc;

  memset(l, 0, sizeof(*l));
  rc = uv_loop_init(&l->loop);
  if (rc != 0)
    return rc;
  rc = uv_timer_init(&l->loop, &l->tick);
  if (rc != 0) {
    uv_loop_close(&l->loop);
    return rc;
  }
  uv_unref((uv_handle_t *)&l->tick);
  l->ready = true;
  return 0;
}

/* Runs the loop until pred(arg) holds; false when ms went by first. */
static inline bool oom_run_until(oom_loop_t *l, bool (*pred)(void *), void *arg,
                                 uint64_t ms) {
  uint64_t end = uv_hrtime() / 1000000 + ms;
  bool ok;

  uv_timer_start(&l->tick, oom__on_tick, 2, 2);
  while (!(ok = pred(arg)) && uv_hrtime() / 1000000 < end)
    uv_run(&l->loop, UV_RUN_ONCE);
  uv_timer_stop(&l->tick);
  return ok;
}

static inline bool oom__loop_alive(void *arg) {
  return !uv_loop_alive(arg);
}

/* Runs the loop until nothing is left (bounded), then closes it: a handle
 * left open fails the test. */
static inline void oom_loop_finish(oom_loop_t *l) {
  if (!l->ready)
    return;
  cr_assert(oom_run_until(l, oom__loop_alive, &l->loop, 5000),
            "N=%lu: the loop did not wind down", oom_n);
  uv_close((uv_handle_t *)&l->tick, NULL);
  uv_run(&l->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&l->loop), 0, "N=%lu: a handle leaked", oom_n);
  l->ready = false;
}

#endif
