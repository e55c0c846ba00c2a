/*
 * The service's concurrency limit from its environment: on by default,
 * tuned or turned off by MSVC_CONCURRENCY*, and a bad value refused with
 * one line that names the variable.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>

static const char *const vars[] = {"MSVC_CONCURRENCY", "MSVC_CONCURRENCY_MIN",
                                   "MSVC_CONCURRENCY_MAX", "MSVC_CONCURRENCY_TOLERANCE"};

static void reset(void) {
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
  setenv("MSVC_REGISTRY", "memory://", 1);
  msvc_log_set_level(MSVC_LOG_OFF);
}

TestSuite(limit_service, .init = reset, .timeout = 30);

/* The limit a service gets from the environment now: 0 when off. */
static uint32_t limit_now(bool *fixed_looking) {
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  msvc_limit_adaptive_t *cl;
  char err[256] = "";
  uint32_t lim;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_service_new(&loop, "limittest", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cl = msvc_service_concurrency(svc);
  lim = msvc_limit_adaptive_limit(cl);
  if (fixed_looking != NULL) *fixed_looking = cl != NULL;
  msvc_service_free(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  return lim;
}

Test(limit_service, on_by_default_and_tunable) {
  bool on;

  cr_assert_eq(limit_now(&on), 1000);
  cr_assert(on);
  setenv("MSVC_CONCURRENCY", "off", 1);
  cr_assert_eq(limit_now(&on), 0);
  cr_assert_not(on);
  setenv("MSVC_CONCURRENCY", "64", 1);
  cr_assert_eq(limit_now(NULL), 64);
  setenv("MSVC_CONCURRENCY", "adaptive", 1);
  setenv("MSVC_CONCURRENCY_MAX", "300", 1);
  cr_assert_eq(limit_now(NULL), 300, "the start is clamped to the range");
  setenv("MSVC_CONCURRENCY_MIN", "2", 1);
  setenv("MSVC_CONCURRENCY_TOLERANCE", "1.5", 1);
  cr_assert_eq(limit_now(NULL), 300);
}

Test(limit_service, bad_values_name_the_variable) {
  static const char *const bad[][2] = {
      {"MSVC_CONCURRENCY", "lots"},        {"MSVC_CONCURRENCY", "0"},
      {"MSVC_CONCURRENCY", "1000001"},     {"MSVC_CONCURRENCY_MIN", "0"},
      {"MSVC_CONCURRENCY_MIN", "-1"},      {"MSVC_CONCURRENCY_MAX", "x"},
      {"MSVC_CONCURRENCY_TOLERANCE", "0.5"}, {"MSVC_CONCURRENCY_TOLERANCE", "2x"},
      {"MSVC_CONCURRENCY_MIN", "5000000"}};
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  char err[256] = "";

  cr_assert_eq(uv_loop_init(&loop), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    setenv(bad[i][0], bad[i][1], 1);
    cr_assert_eq(msvc_service_new(&loop, "limittest", NULL, &svc, err, sizeof(err)),
                 MSVC_ECONFIG, "%s=%s", bad[i][0], bad[i][1]);
    cr_assert_null(svc);
    cr_assert(strncmp(err, bad[i][0], strlen(bad[i][0])) == 0, "%s", err);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
    unsetenv(bad[i][0]);
  }
  setenv("MSVC_CONCURRENCY_MIN", "50", 1);
  setenv("MSVC_CONCURRENCY_MAX", "40", 1);
  cr_assert_eq(msvc_service_new(&loop, "limittest", NULL, &svc, err, sizeof(err)),
               MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "MSVC_CONCURRENCY_MIN"), "%s", err);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- cluster share from discovery ---------------------------------------------- */

static void on_lease(msvc_registry_lease_t *lease, int status, void *data) {
  (void)lease;
  (void)status;
  (void)data;
}

static void on_gone(int status, void *data) {
  (void)status;
  (*(int *)data)++;
}

/* Runs the loop until the limiter's share is `want` (5 s at most). */
static bool share_becomes(uv_loop_t *loop, msvc_limit_rate_t *rl, uint32_t want) {
  uint64_t end = msvc_now_ms() + 5000;

  while (msvc_now_ms() < end) {
    uv_run(loop, UV_RUN_NOWAIT);
    if (msvc_limit_rate_share(rl) == want) return true;
    uv_sleep(5);
  }
  return false;
}

Test(limit_service, cluster_share_follows_instances_in_discovery) {
  uv_loop_t loop;
  msvc_service_t *svc = NULL;
  msvc_limit_rate_t *rl;
  msvc_registry_lease_t *lease[3];
  msvc_registry_instance_t inst;
  char err[256] = "";
  int i, gone = 0;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_limit_rate_new(NULL, &rl), MSVC_OK);
  cr_assert_eq(msvc_service_new(&loop, "shared-limit", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(msvc_service_ratelimit_cluster(svc, rl), MSVC_OK);
  cr_assert_eq(msvc_service_ratelimit_cluster(NULL, rl), MSVC_EINVAL);
  /* Three instances join. */
  for (i = 0; i < 3; i++) {
    msvc_registry_instance_init(&inst);
    inst.service = "shared-limit";
    inst.address = "127.0.0.1";
    inst.port = (uint16_t)(9001 + i);
    cr_assert_eq(msvc_registry_register(msvc_service_registry(svc), &inst, 10000, on_lease,
                                        NULL, &lease[i]), MSVC_OK);
  }
  cr_assert(share_becomes(&loop, rl, 3), "share %u", msvc_limit_rate_share(rl));
  /* One leaves, then another. */
  msvc_registry_deregister(lease[0], on_gone, &gone);
  cr_assert(share_becomes(&loop, rl, 2), "share %u", msvc_limit_rate_share(rl));
  msvc_registry_deregister(lease[1], on_gone, &gone);
  cr_assert(share_becomes(&loop, rl, 1), "share %u", msvc_limit_rate_share(rl));
  msvc_registry_deregister(lease[2], on_gone, &gone);
  /* The last one gone: this instance alone (an empty set counts as 1). */
  cr_assert(share_becomes(&loop, rl, 1));
  msvc_service_free(svc);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(gone, 3);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_limit_rate_free(rl);
}
