/*
 * The process collector: CPU time, memory, file descriptors and start time
 * of the running process, read from /proc at every exposition, named as in
 * the Prometheus client libraries.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics-internal.h"

/* "unlimited" as the Prometheus client libraries report it: 2^64 - 1. */
#define INFINITY_FDS 18446744073709551615.0

enum { HAVE_CPU = 1, HAVE_RSS = 2, HAVE_VSZ = 4, HAVE_FDS = 8, HAVE_MAXFDS = 16, HAVE_START = 32 };

typedef struct process_state_s {
  msvc_metrics_counter_t *cpu;
  msvc_metrics_gauge_t *rss;
  msvc_metrics_gauge_t *vsz;
  msvc_metrics_gauge_t *fds;
  msvc_metrics_gauge_t *max_fds;
  msvc_metrics_gauge_t *start;
  const char *self_dir;
  const char *stat_path;
} process_state_t;

static size_t read_small_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n;

  if (f == NULL)
    return 0;
  n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n;
}

/* /proc/<pid>/stat: the command name is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last ')'. */
static void read_stat(const char *self_dir, double boot_time, msvc__process_stats_t *out) {
  char path[512], buf[2048];
  unsigned long long utime, stime, start, vsize, rss;
  const char *p;
  long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

  snprintf(path, sizeof(path), "%s/stat", self_dir);
  if (read_small_file(path, buf, sizeof(buf)) == 0 || (p = strrchr(buf, ')')) == NULL ||
      tck <= 0 || page <= 0)
    return;
  if (sscanf(p + 1,
             " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d"
             " %*d %*d %llu %llu %llu",
             &utime, &stime, &start, &vsize, &rss) != 5)
    return;
  out->cpu_seconds = (double)(utime + stime) / (double)tck;
  out->virtual_bytes = (double)vsize;
  out->resident_bytes = (double)rss * (double)page;
  out->have |= HAVE_CPU | HAVE_VSZ | HAVE_RSS;
  if (boot_time > 0) {
    out->start_time_seconds = boot_time + (double)start / (double)tck;
    out->have |= HAVE_START;
  }
}

static double read_boot_time(const char *stat_path) {
  char buf[8192];
  const char *p;
  unsigned long long btime;

  if (read_small_file(stat_path, buf, sizeof(buf)) == 0)
    return 0;
  for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (sscanf(p, "btime %llu", &btime) == 1)
      return (double)btime;
  return 0;
}

static void read_fds(const char *self_dir, msvc__process_stats_t *out) {
  char path[512];
  DIR *d;
  struct dirent *de;
  double n = 0;

  snprintf(path, sizeof(path), "%s/fd", self_dir);
  if ((d = opendir(path)) == NULL)
    return;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.')
      n++;
  closedir(d);
  out->open_fds = n;
  out->have |= HAVE_FDS;
}

static void read_max_fds(const char *self_dir, msvc__process_stats_t *out) {
  char path[512], buf[4096], soft[32];
  const char *p;
  struct rlimit rl;

  snprintf(path, sizeof(path), "%s/limits", self_dir);
  if (read_small_file(path, buf, sizeof(buf)) > 0 &&
      (p = strstr(buf, "Max open files")) != NULL &&
      sscanf(p + strlen("Max open files"), " %31s", soft) == 1) {
    out->max_fds = strcmp(soft, "unlimited") == 0 ? INFINITY_FDS : strtod(soft, NULL);
    out->have |= HAVE_MAXFDS;
    return;
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY_FDS : (double)rl.rlim_cur;
    out->have |= HAVE_MAXFDS;
  }
}

int msvc__process_read(const char *self_dir, const char *stat_path,
                       msvc__process_stats_t *out) {
  memset(out, 0, sizeof(*out));
  read_stat(self_dir, read_boot_time(stat_path), out);
  read_fds(self_dir, out);
  read_max_fds(self_dir, out);
  return out->have == 0 ? MSVC_ENOENT : MSVC_OK;
}

static void on_collect(msvc_metrics_registry_t *reg, void *data) {
  process_state_t *s = data;
  msvc__process_stats_t st;

  (void)reg;
  msvc__process_read(s->self_dir, s->stat_path, &st);
  if (st.have & HAVE_CPU)
    msvc__metrics_counter_set(s->cpu, st.cpu_seconds);
  if (st.have & HAVE_RSS)
    msvc_metrics_gauge_set(s->rss, st.resident_bytes);
  if (st.have & HAVE_VSZ)
    msvc_metrics_gauge_set(s->vsz, st.virtual_bytes);
  if (st.have & HAVE_FDS)
    msvc_metrics_gauge_set(s->fds, st.open_fds);
  if (st.have & HAVE_MAXFDS)
    msvc_metrics_gauge_set(s->max_fds, st.max_fds);
  if (st.have & HAVE_START)
    msvc_metrics_gauge_set(s->start, st.start_time_seconds);
}

static int add_one(msvc_metrics_registry_t *reg, msvc_metrics_type_t type, const char *name,
                   const char *help, void *out) {
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  int rc;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = help;
  o.flags = MSVC_METRICS_UNSHARDED;
  if ((rc = msvc_metrics_family_new(reg, type, &o, &fam)) != MSVC_OK)
    return rc;
  if (type == MSVC_METRICS_COUNTER)
    return msvc_metrics_counter_get(fam, NULL, 0, out);
  return msvc_metrics_gauge_get(fam, NULL, 0, out);
}

static int add_families(msvc_metrics_registry_t *reg, process_state_t *s) {
  int rc;

  if ((rc = add_one(reg, MSVC_METRICS_COUNTER, "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.", &s->cpu)) != MSVC_OK ||
      (rc = add_one(reg, MSVC_METRICS_GAUGE, "process_resident_memory_bytes",
                    "Resident memory size in bytes.", &s->rss)) != MSVC_OK ||
      (rc = add_one(reg, MSVC_METRICS_GAUGE, "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.", &s->vsz)) != MSVC_OK ||
      (rc = add_one(reg, MSVC_METRICS_GAUGE, "process_open_fds",
                    "Number of open file descriptors.", &s->fds)) != MSVC_OK ||
      (rc = add_one(reg, MSVC_METRICS_GAUGE, "process_max_fds",
                    "Maximum number of open file descriptors.", &s->max_fds)) != MSVC_OK)
    return rc;
  return add_one(reg, MSVC_METRICS_GAUGE, "process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.", &s->start);
}

int msvc__process_collector_register_at(msvc_metrics_registry_t *reg, const char *self_dir,
                                        const char *stat_path) {
  size_t a = strlen(self_dir) + 1, b = strlen(stat_path) + 1;
  process_state_t *s;
  int rc;

  pthread_mutex_lock(&reg->lock);
  rc = reg->process != NULL ? MSVC_EEXIST : MSVC_OK;
  pthread_mutex_unlock(&reg->lock);
  if (rc != MSVC_OK)
    return MSVC_OK;
  /* One block: the state and the two paths it points at. */
  if ((s = msvc__calloc(1, sizeof(*s) + a + b)) == NULL)
    return MSVC_ENOMEM;
  memcpy((char *)(s + 1), self_dir, a);
  memcpy((char *)(s + 1) + a, stat_path, b);
  s->self_dir = (const char *)(s + 1);
  s->stat_path = (const char *)(s + 1) + a;
  if ((rc = add_families(reg, s)) != MSVC_OK) {
    msvc__free(s);
    return rc;
  }
  pthread_mutex_lock(&reg->lock);
  if (reg->process != NULL) {
    /* Another thread got there first; its hook serves both. */
    pthread_mutex_unlock(&reg->lock);
    msvc__free(s);
    return MSVC_OK;
  }
  reg->process = s;
  pthread_mutex_unlock(&reg->lock);
  return msvc_metrics_collect_hook_add(reg, on_collect, s);
}

int msvc_metrics_process_collector_register(msvc_metrics_registry_t *reg) {
  if (reg == NULL && (reg = msvc_metrics_default_registry()) == NULL)
    return MSVC_ENOMEM;
  return msvc__process_collector_register_at(reg, "/proc/self", "/proc/stat");
}
