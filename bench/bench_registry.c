/* Registry benchmarks.
 *
 * registry_propagation_local: a child process registers instances one at a
 * time on a local registry; this process watches the service. Each instance
 * carries the monotonic time (shared by both processes) at which register()
 * was called; the delay is measured when the watch callback first shows it.
 * Median and p99 over 200 registrations (30 with MSVC_BENCH_QUICK=1).
 *
 * registry_resolve_<backend>_1000: time from resolve() to its callback for
 * a service with 1,000 instances.
 */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msvc/log.h>
#include <msvc/registry.h>

#include "bench.h"

#define SERVICE "bench"
#define BASE_PORT 20000

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void emit_p50_p99(const char *name, double *ms, int n) {
  bench_stat_t s = bench_stats(ms, n);
  bench_stat_t p99 = s;
  int idx = (int)((double)n * 0.99);

  if (idx >= n)
    idx = n - 1;
  p99.median = ms[idx];
  bench_emit(name, "libmsvc", "p50_ms", "ms", s, NULL, 0);
  bench_emit(name, "libmsvc", "p99_ms", "ms", p99, NULL, 0);
}

/* ---- the registering child --------------------------------------------- */

typedef struct child_s {
  msvc_registry_t *reg;
  uv_timer_t timer;
  int next, count;
} child_t;

static void on_child_tick(uv_timer_t *t) {
  child_t *c = t->data;
  msvc_registry_instance_t inst;
  msvc_registry_meta_t meta;
  char stamp[32];

  if (c->next >= c->count) {
    uv_timer_stop(t);
    return;
  }
  snprintf(stamp, sizeof(stamp), "%.0f", bench_now_ns());
  meta.key = "t0_ns";
  meta.value = stamp;
  msvc_registry_instance_init(&inst);
  inst.service = SERVICE;
  inst.address = "127.0.0.1";
  inst.port = (uint16_t)(BASE_PORT + c->next++);
  inst.metadata = &meta;
  inst.nmetadata = 1;
  if (msvc_registry_register(c->reg, &inst, 10000, NULL, NULL, NULL) != 0)
    _exit(1);
}

static void run_child(const char *uri, int count, uint64_t interval_ms) {
  uv_loop_t loop;
  child_t c;

  memset(&c, 0, sizeof(c));
  c.count = count;
  if (uv_loop_init(&loop) != 0 ||
      msvc_registry_new(&loop, uri, NULL, &c.reg) != 0)
    _exit(1);
  uv_timer_init(&loop, &c.timer);
  c.timer.data = &c;
  /* Start after the parent's watch has had time to deliver its first set. */
  uv_timer_start(&c.timer, on_child_tick, 200, interval_ms);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* ---- the watching parent ----------------------------------------------- */

typedef struct watcher_s {
  double *ms;
  char *seen;
  int got, count;
} watcher_t;

static void on_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                     void *data) {
  watcher_t *wt = data;
  double now = bench_now_ns();
  size_t i;

  (void)w;
  for (i = 0; i < msvc_registry_set_count(set); i++) {
    const msvc_registry_instance_t *in = msvc_registry_set_at(set, i);
    int k = in->port - BASE_PORT;
    const char *t0 = msvc_registry_instance_meta(in, "t0_ns");
    if (k < 0 || k >= wt->count || wt->seen[k] || t0 == NULL)
      continue;
    wt->seen[k] = 1;
    wt->ms[wt->got++] = (now - strtod(t0, NULL)) / 1e6;
  }
}

static void on_tick(uv_timer_t *t) {
  (void)t;
}

static void bench_propagation_local(const char *dir) {
  int count = bench_quick() ? 30 : 200;
  watcher_t wt = {calloc((size_t)count, sizeof(double)), calloc((size_t)count, 1),
                  0, count};
  char uri[512];
  uv_loop_t loop;
  uv_timer_t tick;
  msvc_registry_t *reg;
  double deadline;
  pid_t pid;

  snprintf(uri, sizeof(uri), "local://%s/propagation", dir);
  pid = fork();
  if (pid == 0)
    run_child(uri, count, 25);
  uv_loop_init(&loop);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  if (pid < 0 || msvc_registry_new(&loop, uri, NULL, &reg) != 0 ||
      msvc_registry_watch(reg, SERVICE, on_watch, &wt, NULL) != 0) {
    fprintf(stderr, "bench_registry: cannot set up the local registry\n");
    exit(1);
  }
  deadline = bench_now_ns() + 60e9;
  while (wt.got < count && bench_now_ns() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  msvc_registry_close(reg, NULL, NULL);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (wt.got > 0)
    emit_p50_p99("registry_propagation_local", wt.ms, wt.got);
  free(wt.ms);
  free(wt.seen);
}

typedef struct resolver_s {
  int pending;
  size_t count;
} resolver_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  resolver_t *r = data;

  r->pending--;
  r->count = status == 0 ? msvc_registry_set_count(set) : 0;
}

static void on_registered(msvc_registry_lease_t *l, int status, void *data) {
  (void)l;
  if (status == 0)
    (*(int *)data)++;
}

static void bench_resolve(const char *name, const char *uri) {
  int runs = bench_quick() ? 20 : 100, ok = 0, i;
  double *ms = calloc((size_t)runs, sizeof(double));
  msvc_registry_instance_t inst;
  resolver_t r = {0, 0};
  uv_loop_t loop;
  msvc_registry_t *reg;

  uv_loop_init(&loop);
  if (msvc_registry_new(&loop, uri, NULL, &reg) != 0)
    exit(1);
  for (i = 0; i < 1000; i++) {
    msvc_registry_instance_init(&inst);
    inst.service = SERVICE;
    inst.address = "10.0.0.1";
    inst.port = (uint16_t)(BASE_PORT + i);
    if (msvc_registry_register(reg, &inst, 60000, on_registered, &ok, NULL))
      exit(1);
  }
  while (ok < 1000)
    uv_run(&loop, UV_RUN_NOWAIT);
  for (i = 0; i < runs; i++) {
    double t0 = bench_now_ns();
    r.pending = 1;
    msvc_registry_resolve(reg, SERVICE, on_resolved, &r);
    /* NOWAIT: ONCE would go on to sleep until the next heartbeat. */
    while (r.pending > 0)
      uv_run(&loop, UV_RUN_NOWAIT);
    ms[i] = (bench_now_ns() - t0) / 1e6;
    if (r.count != 1000) {
      fprintf(stderr, "bench_registry: resolved %zu, not 1000\n", r.count);
      exit(1);
    }
  }
  msvc_registry_close(reg, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  emit_p50_p99(name, ms, runs);
  free(ms);
}

int main(void) {
  char dir[] = "/tmp/msvc-bench-registry-XXXXXX";
  char uri[512];

  msvc_log_set_level(MSVC_LOG_ERROR);
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  bench_propagation_local(dir);
  snprintf(uri, sizeof(uri), "local://%s/resolve", dir);
  bench_resolve("registry_resolve_local_1000", uri);
  bench_resolve("registry_resolve_memory_1000", "memory://");
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
