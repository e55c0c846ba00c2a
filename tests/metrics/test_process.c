/* The process collector, on a fake /proc tree with known values and on the
 * real one. */
#include <unistd.h>

#include "helpers.h"

#define FAKE_PROC LIBMSVC_TEST_SOURCE_DIR "/tests/metrics/data/proc"

Test(metrics_process, reads_fake_proc) {
  msvc__process_stats_t st;
  double tck = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);

  cr_assert_eq(msvc__process_read(FAKE_PROC "/self", FAKE_PROC "/stat", &st), MSVC_OK);
  cr_assert_eq(st.have, 63, "every value read");
  cr_assert_float_eq(st.cpu_seconds, (250 + 125) / tck, 1e-9);
  cr_assert_eq(st.virtual_bytes, 104857600);
  cr_assert_eq(st.resident_bytes, 2560 * page);
  cr_assert_eq(st.open_fds, 3);
  cr_assert_eq(st.max_fds, 1024);
  cr_assert_float_eq(st.start_time_seconds, 1700000000 + 50000 / tck, 1e-6);
}

Test(metrics_process, missing_proc_is_not_fatal) {
  msvc__process_stats_t st;

  cr_assert_eq(msvc__process_read("/nonexistent/self", "/nonexistent/stat", &st), MSVC_OK,
               "getrlimit still gives the fd limit");
  cr_assert_eq(st.have, 16);
}

Test(metrics_process, exposes_fake_values) {
  msvc_metrics_registry_t *reg;
  char *out, line[128];

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  cr_assert_eq(msvc__process_collector_register_at(reg, FAKE_PROC "/self", FAKE_PROC "/stat"),
               MSVC_OK);
  cr_assert_eq(msvc__process_collector_register_at(reg, "/x", "/y"), MSVC_OK,
               "registering twice is harmless");
  out = expose(reg, MSVC_METRICS_FORMAT_TEXT);
  cr_assert_not_null(strstr(out, "# TYPE process_cpu_seconds_total counter\n"));
  cr_assert_not_null(strstr(out, "\nprocess_virtual_memory_bytes 104857600\n"));
  cr_assert_not_null(strstr(out, "\nprocess_open_fds 3\n"));
  cr_assert_not_null(strstr(out, "\nprocess_max_fds 1024\n"));
  snprintf(line, sizeof(line), "\nprocess_resident_memory_bytes %ld\n",
           2560L * sysconf(_SC_PAGESIZE));
  cr_assert_not_null(strstr(out, line));
  cr_assert_not_null(strstr(out, "# TYPE process_start_time_seconds gauge\n"));
  msvc_free(out);
  msvc_metrics_registry_free(reg);
}

Test(metrics_process, real_proc_is_plausible) {
  msvc__process_stats_t st;

  cr_assert_eq(msvc__process_read("/proc/self", "/proc/stat", &st), MSVC_OK);
  cr_assert_eq(st.have, 63);
  cr_assert_gt(st.resident_bytes, 0);
  cr_assert_geq(st.virtual_bytes, st.resident_bytes);
  cr_assert_geq(st.open_fds, 3);
  cr_assert_geq(st.max_fds, st.open_fds);
  cr_assert_gt(st.start_time_seconds, 1.5e9);
  cr_assert_leq(st.start_time_seconds, (double)msvc_wall_ms() / 1000 + 1);
  cr_assert_geq(st.cpu_seconds, 0);
}
