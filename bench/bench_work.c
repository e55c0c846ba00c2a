/*
 * Worker pool benchmarks.
 *
 *   bench_work            work_submit_done: ns per submit + done round trip
 *                         of an empty job, in batches of 64, beside libuv's
 *                         uv_queue_work() with the same batches in the same
 *                         run (ratio vs uv_queue_work).
 *   bench_work priority   how late a 1 ms loop timer fires while CPU-bound
 *                         jobs run in the pool, with the pool threads at the
 *                         loop's priority and below it (SCHED_BATCH + nice
 *                         10); a plain table on stdout, not result lines.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/work.h>

#include "bench.h"

#define BATCH 64

/* ---- work_submit_done ---------------------------------------------------- */

static int outstanding;
static long remaining;
static msvc_work_t *pool;
static uv_work_t reqs[BATCH];

static void empty_work(void *data) { BENCH_KEEP(data); }

static void submit_batch_pool(void);

static void on_pool_done(void *data, int status) {
  (void)data;
  (void)status;
  if (--outstanding == 0 && remaining > 0)
    submit_batch_pool();
}

static void submit_batch_pool(void) {
  for (int i = 0; i < BATCH; i++) {
    if (msvc_work_submit(pool, empty_work, on_pool_done, NULL, NULL) != MSVC_OK) {
      fprintf(stderr, "bench_work: submit failed\n");
      exit(1);
    }
    outstanding++;
  }
  remaining -= BATCH;
}

static void uv_empty_work(uv_work_t *w) { BENCH_KEEP(w); }

static void submit_batch_uv(uv_loop_t *loop);

static void on_uv_done(uv_work_t *w, int status) {
  (void)status;
  if (--outstanding == 0 && remaining > 0)
    submit_batch_uv(w->loop);
}

static void submit_batch_uv(uv_loop_t *loop) {
  for (int i = 0; i < BATCH; i++) {
    uv_queue_work(loop, &reqs[i], uv_empty_work, on_uv_done);
    outstanding++;
  }
  remaining -= BATCH;
}

static double run_pool(uv_loop_t *loop, long n) {
  double t0;

  remaining = n;
  t0 = bench_now_ns();
  submit_batch_pool();
  uv_run(loop, UV_RUN_DEFAULT);
  return (bench_now_ns() - t0) / (double)n;
}

static double run_uv(uv_loop_t *loop, long n) {
  double t0;

  remaining = n;
  t0 = bench_now_ns();
  submit_batch_uv(loop);
  uv_run(loop, UV_RUN_DEFAULT);
  return (bench_now_ns() - t0) / (double)n;
}

static void bench_submit_done(void) {
  uv_loop_t loop;
  msvc_work_opts_t o;
  long n = bench_quick() ? 20000 : 200000;
  int runs = bench_runs();
  double a[9], b[9];
  bench_stat_t sa, sb;

  uv_loop_init(&loop);
  msvc_work_opts_init(&o);
  o.threads = 4; /* libuv's default pool size */
  o.queue = 1024;
  msvc_work_new(&loop, &o, &pool);
  run_pool(&loop, n / 10); /* start the threads of both pools */
  run_uv(&loop, n / 10);
  for (int r = 0; r < runs; r++) {
    a[r] = run_pool(&loop, n);
    b[r] = run_uv(&loop, n);
  }
  sa = bench_stats(a, runs);
  sb = bench_stats(b, runs);
  bench_emit("work_submit_done", "libmsvc", "ns_per_op", "ns", sa, "uv_queue_work",
             sa.median / sb.median);
  bench_emit("work_submit_done", "uv_queue_work", "ns_per_op", "ns", sb, NULL, 0);
  msvc_work_close(pool, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

/* ---- priority experiment ------------------------------------------------- */

static atomic_int spin_stop;

static void spin_work(void *data) {
  volatile unsigned long x = 0;
  (void)data;
  while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
    x++;
}

typedef struct lag_s {
  uv_timer_t timer;
  uint64_t expect;
  double *samples;
  int n, cap;
} lag_t;

static void on_tick(uv_timer_t *t) {
  lag_t *l = t->data;
  uint64_t now = uv_hrtime();

  if (l->expect != 0 && l->n < l->cap)
    l->samples[l->n++] = (double)(int64_t)(now - l->expect) / 1e3; /* µs late */
  l->expect = now + 1000000u;
  if (l->n == l->cap)
    uv_timer_stop(t);
}

static void measure(const char *label, int jobs, int nice, bool batch, int ticks) {
  uv_loop_t loop;
  msvc_work_opts_t o;
  msvc_work_t *w = NULL;
  lag_t l;
  bench_stat_t s;

  uv_loop_init(&loop);
  memset(&l, 0, sizeof(l));
  l.cap = ticks;
  l.samples = calloc((size_t)ticks, sizeof(double));
  atomic_store(&spin_stop, 0);
  if (jobs > 0) {
    msvc_work_opts_init(&o);
    o.threads = (unsigned)jobs;
    o.nice = nice;
    o.batch = batch;
    msvc_work_new(&loop, &o, &w);
    for (int i = 0; i < jobs; i++)
      msvc_work_submit(w, spin_work, NULL, NULL, NULL);
  }
  uv_timer_init(&loop, &l.timer);
  l.timer.data = &l;
  uv_timer_start(&l.timer, on_tick, 1, 1);
  while (l.n < l.cap)
    uv_run(&loop, UV_RUN_ONCE);
  atomic_store(&spin_stop, 1);
  uv_close((uv_handle_t *)&l.timer, NULL);
  msvc_work_close(w, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  s = bench_stats(l.samples, l.n);
  printf("%-34s jobs=%d  lateness us: p50 %7.0f  p99 %7.0f  max %7.0f\n", label, jobs,
         s.median, l.samples[(l.n * 99) / 100], s.max);
  fflush(stdout);
  free(l.samples);
}

static void bench_priority(void) {
  int ticks = bench_quick() ? 300 : 2000;

  measure("idle pool", 0, 0, false, ticks);
  for (int jobs = 2; jobs <= 4; jobs += 2) {
    measure("same priority (nice 0, OTHER)", jobs, 0, false, ticks);
    measure("nice 10 only", jobs, 10, false, ticks);
    measure("SCHED_BATCH + nice 10 (default)", jobs, 10, true, ticks);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "priority") == 0)
    bench_priority();
  else
    bench_submit_done();
  return 0;
}
