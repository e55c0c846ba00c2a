/* The worker pool on a private loop: bounds, cancellation, where callbacks
 * run, drain and close, priority, metrics. */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <msvc/metrics.h>
#include <msvc/work.h>

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A gate a job can wait on, opened by the test. */
static atomic_int gate_open, started, ran;

static void wait_gate(void) {
  int i;
  for (i = 0; i < 10000 && !atomic_load(&gate_open); i++)
    sleep_ms(1);
}

static void job_gated(void *data) {
  (void)data;
  atomic_fetch_add(&started, 1);
  wait_gate();
  atomic_fetch_add(&ran, 1);
}

static void job_count(void *data) {
  (void)data;
  atomic_fetch_add(&ran, 1);
}

static void wait_started(int n) {
  int i;
  for (i = 0; i < 5000 && atomic_load(&started) < n; i++)
    sleep_ms(1);
  cr_assert_geq(atomic_load(&started), n, "job did not start");
}

typedef struct rec_s {
  int status;
  int calls;
  uv_thread_t thread;
  int order;
} rec_t;

static int done_seq;

static void on_done(void *data, int status) {
  rec_t *r = data;
  r->status = status;
  r->calls++;
  r->thread = uv_thread_self();
  r->order = ++done_seq;
}

static msvc_work_t *new_pool(uv_loop_t *loop, unsigned threads, unsigned queue) {
  msvc_work_opts_t o;
  msvc_work_t *w;

  msvc_work_opts_init(&o);
  o.threads = threads;
  o.queue = queue;
  cr_assert_eq(msvc_work_new(loop, &o, &w), MSVC_OK);
  return w;
}

static atomic_int closed;
static void on_closed(void *data) {
  (void)data;
  atomic_fetch_add(&closed, 1);
}

static void close_and_check(uv_loop_t *loop, msvc_work_t *w) {
  atomic_store(&closed, 0);
  msvc_work_close(w, on_closed, NULL);
  cr_assert_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(atomic_load(&closed), 1);
  cr_assert_eq(uv_loop_close(loop), 0, "a handle leaked");
}

static void reset(void) {
  atomic_store(&gate_open, 0);
  atomic_store(&started, 0);
  atomic_store(&ran, 0);
  done_seq = 0;
}

TestSuite(work_pool, .init = reset, .timeout = 20);

Test(work_pool, rejects_bad_options) {
  uv_loop_t loop;
  msvc_work_opts_t o;
  msvc_work_t *w = (msvc_work_t *)&o;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_work_new(NULL, NULL, &w), MSVC_EINVAL);
  cr_assert_null(w);
  cr_assert_eq(msvc_work_new(&loop, NULL, NULL), MSVC_EINVAL);
  msvc_work_opts_init(&o);
  o.threads = 0;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_EINVAL);
  msvc_work_opts_init(&o);
  o.queue = 0;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_EINVAL);
  msvc_work_opts_init(&o);
  o.nice = 20;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_EINVAL);
  msvc_work_opts_init(&o);
  o.size = 3;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_EINVAL);
  cr_assert_eq(msvc_work_submit(NULL, job_count, NULL, NULL, NULL), MSVC_EINVAL);
  cr_assert_str_eq(msvc_err_name(MSVC_EWORK_FULL), "EWORK_FULL");
  msvc_work_close(NULL, NULL, NULL);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(work_pool, done_runs_on_the_loop_thread_in_completion_order) {
  uv_loop_t loop;
  msvc_work_t *w;
  rec_t r[8];
  uv_thread_t self = uv_thread_self();
  int i;

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 1, 16); /* one thread: jobs finish in submit order */
  for (i = 0; i < 8; i++)
    cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[i], NULL), MSVC_OK);
  cr_assert_eq(done_seq, 0, "done_fn ran inside submit");
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns: nothing pending */
  for (i = 0; i < 8; i++) {
    cr_assert_eq(r[i].calls, 1);
    cr_assert_eq(r[i].status, MSVC_OK);
    cr_assert(uv_thread_equal(&r[i].thread, &self));
    cr_assert_eq(r[i].order, i + 1);
  }
  cr_assert_eq(atomic_load(&ran), 8);
  close_and_check(&loop, w);
}

Test(work_pool, idle_pool_does_not_keep_the_loop_running) {
  uv_loop_t loop;
  msvc_work_t *w;

  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 2, 4);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  close_and_check(&loop, w);
}

Test(work_pool, full_queue_fails_at_once) {
  uv_loop_t loop;
  msvc_work_t *w;
  msvc_work_stats_t st;
  rec_t r[4];
  int i;

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 1, 2);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[0], NULL), MSVC_OK);
  wait_started(1); /* the one thread is busy: the queue holds 2 */
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[1], NULL), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[2], NULL), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[3], NULL), MSVC_EWORK_FULL);
  cr_assert_eq(msvc_work_stats(w, &st), MSVC_OK);
  cr_assert_eq(st.queued, 2);
  cr_assert_eq(st.running, 1);
  cr_assert_eq(st.rejected, 1);
  cr_assert_eq(st.threads, 1);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  for (i = 0; i < 3; i++)
    cr_assert_eq(r[i].status, MSVC_OK);
  cr_assert_eq(r[3].calls, 0, "done_fn of a refused submit ran");
  cr_assert_eq(msvc_work_stats(w, &st), MSVC_OK);
  cr_assert_eq(st.done, 3);
  close_and_check(&loop, w);
}

Test(work_pool, cancel_queued_job) {
  uv_loop_t loop;
  msvc_work_t *w;
  msvc_work_job_t *a, *b;
  rec_t r[2];

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 1, 4);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[0], &a), MSVC_OK);
  wait_started(1);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[1], &b), MSVC_OK);
  cr_assert_eq(msvc_work_cancel(w, b), MSVC_OK);
  cr_assert_eq(r[1].calls, 0, "done_fn ran inside cancel");
  cr_assert_eq(msvc_work_cancel(w, a), MSVC_EBUSY);
  cr_assert_eq(msvc_work_cancel(w, NULL), MSVC_EINVAL);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(r[0].status, MSVC_OK);
  cr_assert_eq(r[1].status, MSVC_ECANCELED);
  cr_assert_eq(r[1].calls, 1);
  cr_assert_eq(atomic_load(&started), 1, "a cancelled job ran");
  close_and_check(&loop, w);
}

Test(work_pool, job_waiting_past_its_limit_is_not_started) {
  uv_loop_t loop;
  msvc_work_t *w;
  rec_t r[2];

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 1, 4);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[0], NULL), MSVC_OK);
  wait_started(1);
  cr_assert_eq(msvc_work_submit_wait(w, 5, job_gated, on_done, &r[1], NULL), MSVC_OK);
  sleep_ms(20);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(r[1].status, MSVC_ETIMEDOUT);
  cr_assert_eq(atomic_load(&started), 1);
  close_and_check(&loop, w);
}

Test(work_pool, drain_cancels_queued_and_finishes_running) {
  uv_loop_t loop;
  msvc_work_t *w;
  rec_t r[3];

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 1, 4);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[0], NULL), MSVC_OK);
  wait_started(1);
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[1], NULL), MSVC_OK);
  cr_assert_eq(msvc_work_drain(w, 5000), MSVC_OK);
  cr_assert_eq(msvc_work_drain(w, 5000), MSVC_ESTATE);
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[2], NULL), MSVC_ECLOSED);
  cr_assert_eq(uv_run(&loop, UV_RUN_NOWAIT), 1); /* the running job holds the loop */
  cr_assert_eq(r[1].status, MSVC_ECLOSED);
  cr_assert_eq(r[0].calls, 0);
  atomic_store(&gate_open, 1);
  close_and_check(&loop, w);
  cr_assert_eq(r[0].status, MSVC_OK, "the running job's done_fn did not run");
  cr_assert_eq(r[2].calls, 0);
}

Test(work_pool, close_with_running_and_queued_jobs) {
  uv_loop_t loop;
  msvc_work_t *w;
  rec_t r[6];
  int i;

  memset(r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  w = new_pool(&loop, 2, 8);
  for (i = 0; i < 6; i++)
    cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r[i], NULL), MSVC_OK);
  wait_started(2);
  atomic_store(&closed, 0);
  msvc_work_close(w, on_closed, NULL);
  cr_assert_eq(msvc_work_submit(w, job_count, on_done, &r[0], NULL), MSVC_ECLOSED);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(atomic_load(&closed), 1);
  for (i = 0; i < 6; i++) {
    cr_assert_eq(r[i].calls, 1, "job %d", i);
    cr_assert(r[i].status == MSVC_OK || r[i].status == MSVC_ECLOSED);
  }
  cr_assert_eq(atomic_load(&ran), 2);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
}

Test(work_pool, stuck_job_is_abandoned_at_the_deadline) {
  uv_loop_t loop;
  msvc_work_opts_t o;
  msvc_work_t *w;
  rec_t r;
  uint64_t t0;

  memset(&r, 0, sizeof(r));
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_work_opts_init(&o);
  o.threads = 1;
  o.drain_timeout_ms = 50;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_gated, on_done, &r, NULL), MSVC_OK);
  wait_started(1);
  t0 = uv_hrtime();
  atomic_store(&closed, 0);
  msvc_work_close(w, on_closed, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_lt(uv_hrtime() - t0, 2000000000u, "close waited for the stuck job");
  cr_assert_eq(atomic_load(&closed), 1);
  cr_assert_eq(r.calls, 0);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
  /* The detached thread finishes and frees the pool (LeakSanitizer). */
  atomic_store(&gate_open, 1);
  for (int i = 0; i < 2000 && atomic_load(&ran) == 0; i++)
    sleep_ms(1);
  sleep_ms(50);
  cr_assert_eq(atomic_load(&ran), 1);
}

static atomic_int seen_nice, seen_policy, base_nice;

static void job_priority(void *data) {
  (void)data;
  errno = 0;
  atomic_store(&seen_nice, getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)));
  atomic_store(&seen_policy, sched_getscheduler(0));
}

static void check_priority(int nice, bool batch, int want_nice, int want_policy) {
  uv_loop_t loop;
  msvc_work_opts_t o;
  msvc_work_t *w;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_work_opts_init(&o);
  o.threads = 1;
  o.nice = nice;
  o.batch = batch;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_priority, NULL, NULL, NULL), MSVC_OK);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(atomic_load(&seen_nice), want_nice);
  cr_assert_eq(atomic_load(&seen_policy), want_policy);
  close_and_check(&loop, w);
}

Test(work_pool, threads_run_below_the_loop_priority) {
  int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
  int want = base + 10 > 19 ? 19 : base + 10;

  atomic_store(&base_nice, base);
  check_priority(10, true, want, SCHED_BATCH);
  check_priority(0, false, base, sched_getscheduler(0));
  /* The loop thread itself is untouched. */
  cr_assert_eq(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), base);
}

Test(work_pool, metrics_count_outcomes) {
  uv_loop_t loop;
  msvc_metrics_registry_t *reg;
  msvc_work_opts_t o;
  msvc_work_t *w;
  msvc_work_job_t *b;
  char *text;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_work_opts_init(&o);
  o.threads = 1;
  o.queue = 1;
  o.metrics = reg;
  cr_assert_eq(msvc_work_new(&loop, &o, &w), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_gated, NULL, NULL, NULL), MSVC_OK);
  wait_started(1);
  cr_assert_eq(msvc_work_submit(w, job_count, NULL, NULL, &b), MSVC_OK);
  cr_assert_eq(msvc_work_submit(w, job_count, NULL, NULL, NULL), MSVC_EWORK_FULL);
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &text, NULL), MSVC_OK);
  cr_assert(strstr(text, "msvc_work_queue_depth 1\n") != NULL, "%s", text);
  msvc_free(text);
  cr_assert_eq(msvc_work_cancel(w, b), MSVC_OK);
  atomic_store(&gate_open, 1);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &text, NULL), MSVC_OK);
  cr_assert(strstr(text, "msvc_work_queue_depth 0\n") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_work_jobs_total{outcome=\"done\"} 1\n") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_work_jobs_total{outcome=\"rejected\"} 1\n") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_work_jobs_total{outcome=\"cancelled\"} 1\n") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_work_wait_seconds_count 1\n") != NULL, "%s", text);
  cr_assert(strstr(text, "msvc_work_run_seconds_count 1\n") != NULL, "%s", text);
  msvc_free(text);
  close_and_check(&loop, w);
  msvc_metrics_registry_free(reg);
}
