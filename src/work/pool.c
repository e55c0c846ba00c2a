/*
 * The worker pool: a bounded queue under one mutex, threads of its own, and
 * an async handle that brings finished jobs back to the loop.
 *
 * Why not libuv's thread pool: it is shared by the whole process (file
 * system calls, getaddrinfo), unbounded, and its threads run at the loop's
 * priority. A pool here lowers its threads' priority, bounds its queue and
 * can be drained on its own without touching anyone else's work.
 *
 * Lifetime: the pool is shared between the loop side and its threads and is
 * freed by whichever lets go last (refs under the mutex). Normally that is
 * the loop, after joining every thread; a thread stuck in a job past the
 * close deadline is detached and frees the pool itself if it ever returns.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <msvc/metrics.h>
#include <msvc/work.h>

#include "msvc-internal.h"

#define THREADS_MAX 256u
#define QUEUE_MAX 1000000u

enum { J_QUEUED, J_RUNNING, J_DONE };

struct msvc_work_job_s {
  msvc__queue_t node;
  msvc_work_fn work_fn;
  msvc_work_done_fn done_fn;
  void *data;
  uint64_t t_submit; /* uv_hrtime() */
  uint64_t deadline; /* uv_hrtime(); 0 = none */
  int status;
  uint8_t state; /* under the pool's mutex */
};

typedef struct worker_s {
  msvc_work_t *w;
  uv_thread_t tid;
  bool exited; /* under mu */
} worker_t;

struct msvc_work_s {
  uv_loop_t *loop;
  msvc_work_opts_t opts;

  /* Shared with the threads, under mu. */
  uv_mutex_t mu;
  uv_cond_t cv;
  msvc__queue_t queue;
  msvc__queue_t done;
  unsigned nqueued;
  unsigned nrunning;
  unsigned idle;
  unsigned live;     /* threads not yet returned */
  unsigned refs;     /* live threads + the loop side */
  bool stop;         /* threads return once the queue is empty */
  bool abandoned;    /* the loop side is gone: never touch async */

  /* Loop side only. */
  worker_t *workers;
  unsigned nthreads;
  uv_async_t async;
  uv_timer_t timer;
  unsigned pending; /* submitted, done_fn not yet run */
  bool referenced;
  bool draining;
  bool closing;
  bool timer_on;
  bool handles_closing;
  unsigned open_handles;
  uint64_t deadline_ms; /* uv_now() when running jobs are abandoned */
  uint64_t n_done, n_rejected, n_cancelled;
  msvc_work_close_cb close_cb;
  void *close_data;

  /* Metrics: thread-safe, may be NULL. */
  msvc_metrics_gauge_t *m_depth;
  msvc_metrics_counter_t *m_done, *m_rejected, *m_cancelled;
  msvc_metrics_histogram_t *m_wait, *m_run;
};

void msvc_work_opts_init(msvc_work_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->threads = MSVC_WORK_DEFAULT_THREADS;
  opts->queue = MSVC_WORK_DEFAULT_QUEUE;
  opts->nice = MSVC_WORK_DEFAULT_NICE;
  opts->batch = true;
  opts->drain_timeout_ms = 5000;
}

/* ---- metrics ------------------------------------------------------------- */

static const double time_buckets[] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,   0.1,   0.25,   0.5,   1,
                                      2.5,    5,      10};

static int histogram(msvc_metrics_registry_t *reg, const char *name, const char *help,
                     msvc_metrics_histogram_t **out) {
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = name;
  fo.help = help;
  fo.buckets = time_buckets;
  fo.bucket_count = sizeof(time_buckets) / sizeof(time_buckets[0]);
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_HISTOGRAM, &fo, &fam)) != MSVC_OK)
    return rc;
  return msvc_metrics_histogram_get(fam, NULL, 0, out);
}

static int register_metrics(msvc_work_t *w, msvc_metrics_registry_t *reg) {
  static const char *const outcome[] = {"outcome"};
  const char *v;
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_work_queue_depth";
  fo.help = "Jobs waiting for a worker pool thread.";
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &fo, &fam)) != MSVC_OK ||
      (rc = msvc_metrics_gauge_get(fam, NULL, 0, &w->m_depth)) != MSVC_OK)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_work_jobs_total";
  fo.help = "Worker pool jobs by outcome: done (ran), rejected (queue full), "
            "cancelled (never started).";
  fo.label_names = outcome;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam)) != MSVC_OK)
    return rc;
  v = "done";
  if ((rc = msvc_metrics_counter_get(fam, &v, 1, &w->m_done)) != MSVC_OK)
    return rc;
  v = "rejected";
  if ((rc = msvc_metrics_counter_get(fam, &v, 1, &w->m_rejected)) != MSVC_OK)
    return rc;
  v = "cancelled";
  if ((rc = msvc_metrics_counter_get(fam, &v, 1, &w->m_cancelled)) != MSVC_OK)
    return rc;
  if ((rc = histogram(reg, "msvc_work_wait_seconds",
                      "Time a worker pool job waited for a thread.", &w->m_wait)) != 0)
    return rc;
  return histogram(reg, "msvc_work_run_seconds",
                   "Time a worker pool job's work function ran.", &w->m_run);
}

static void depth_add(msvc_work_t *w, double d) {
  if (w->m_depth != NULL)
    msvc_metrics_gauge_add(w->m_depth, d);
}

/* ---- threads ------------------------------------------------------------- */

/* Linux schedules threads, not processes: setpriority() on a thread id and
 * sched_setscheduler(0, ...) change only the calling thread. Lowering one's
 * own priority needs no privilege. Failure leaves the thread as it was. */
static void lower_priority(const msvc_work_opts_t *o) {
#ifdef __linux__
  pid_t tid = (pid_t)syscall(SYS_gettid);
  struct sched_param sp;

  if (o->batch) {
    memset(&sp, 0, sizeof(sp));
    (void)sched_setscheduler(0, SCHED_BATCH, &sp);
  }
  if (o->nice > 0) {
    int cur;
    errno = 0;
    cur = getpriority(PRIO_PROCESS, (id_t)tid);
    if (errno == 0)
      (void)setpriority(PRIO_PROCESS, (id_t)tid, cur + o->nice);
  }
#else
  (void)o;
#endif
}

static void notify_locked(msvc_work_t *w) {
  if (!w->abandoned)
    uv_async_send(&w->async);
}

static void pool_destroy(msvc_work_t *w) {
  /* Jobs of abandoned threads that came back late: their done_fn cannot
   * run any more (the loop side is gone). */
  while (!msvc__queue_empty(&w->done)) {
    msvc__queue_t *q = w->done.next;
    msvc__queue_remove(q);
    msvc__free(msvc__container_of(q, msvc_work_job_t, node));
  }
  uv_cond_destroy(&w->cv);
  uv_mutex_destroy(&w->mu);
  msvc__free(w->workers);
  msvc__free(w);
}

static void run_job(msvc_work_t *w, msvc_work_job_t *job) {
  uint64_t t0 = uv_hrtime(), t1;

  if (w->m_wait != NULL)
    msvc_metrics_histogram_observe(w->m_wait, (double)(t0 - job->t_submit) / 1e9);
  job->work_fn(job->data);
  t1 = uv_hrtime();
  if (w->m_run != NULL)
    msvc_metrics_histogram_observe(w->m_run, (double)(t1 - t0) / 1e9);
}

static void thread_main(void *arg) {
  worker_t *wk = arg;
  msvc_work_t *w = wk->w;
  bool last;

  lower_priority(&w->opts);
  uv_mutex_lock(&w->mu);
  for (;;) {
    msvc_work_job_t *job;
    while (msvc__queue_empty(&w->queue) && !w->stop) {
      w->idle++;
      uv_cond_wait(&w->cv, &w->mu);
      w->idle--;
    }
    if (msvc__queue_empty(&w->queue))
      break;
    job = msvc__container_of(w->queue.next, msvc_work_job_t, node);
    msvc__queue_remove(&job->node);
    w->nqueued--;
    depth_add(w, -1);
    if (job->deadline != 0 && uv_hrtime() > job->deadline) {
      job->status = MSVC_ETIMEDOUT;
    } else {
      job->state = J_RUNNING;
      w->nrunning++;
      uv_mutex_unlock(&w->mu);
      run_job(w, job);
      uv_mutex_lock(&w->mu);
      w->nrunning--;
      job->status = MSVC_OK;
    }
    job->state = J_DONE;
    msvc__queue_insert_tail(&w->done, &job->node);
    notify_locked(w);
  }
  wk->exited = true;
  w->live--;
  notify_locked(w);
  last = --w->refs == 0;
  uv_mutex_unlock(&w->mu);
  if (last)
    pool_destroy(w);
}

static int start_threads(msvc_work_t *w) {
  unsigned i;
  int rc = 0;

  w->workers = msvc__calloc(w->opts.threads, sizeof(*w->workers));
  if (w->workers == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < w->opts.threads; i++) {
    w->workers[i].w = w;
    uv_mutex_lock(&w->mu);
    w->live++;
    w->refs++;
    uv_mutex_unlock(&w->mu);
    rc = uv_thread_create(&w->workers[i].tid, thread_main, &w->workers[i]);
    if (rc != 0) {
      uv_mutex_lock(&w->mu);
      w->live--;
      w->refs--;
      uv_mutex_unlock(&w->mu);
      break;
    }
    w->nthreads++;
  }
  /* Fewer threads than asked is still a pool; none is not. */
  return w->nthreads > 0 ? MSVC_OK : rc;
}

/* ---- loop side ----------------------------------------------------------- */

static void set_ref(msvc_work_t *w) {
  bool want = w->pending > 0 || w->closing;

  if (want == w->referenced)
    return;
  w->referenced = want;
  if (want)
    uv_ref((uv_handle_t *)&w->async);
  else
    uv_unref((uv_handle_t *)&w->async);
}

static void count_outcome(msvc_work_t *w, int status) {
  if (status == MSVC_OK) {
    w->n_done++;
    if (w->m_done != NULL)
      msvc_metrics_counter_inc(w->m_done);
  } else {
    w->n_cancelled++;
    if (w->m_cancelled != NULL)
      msvc_metrics_counter_inc(w->m_cancelled);
  }
}

static void run_done(msvc_work_t *w) {
  msvc__queue_t list;

  msvc__queue_init(&list);
  uv_mutex_lock(&w->mu);
  if (!msvc__queue_empty(&w->done)) {
    list = w->done;
    list.next->prev = &list;
    list.prev->next = &list;
    msvc__queue_init(&w->done);
  }
  uv_mutex_unlock(&w->mu);
  while (!msvc__queue_empty(&list)) {
    msvc_work_job_t *job = msvc__container_of(list.next, msvc_work_job_t, node);
    msvc__queue_remove(&job->node);
    w->pending--;
    count_outcome(w, job->status);
    if (job->done_fn != NULL)
      job->done_fn(job->data, job->status);
    msvc__free(job);
  }
}

static void on_handle_closed(uv_handle_t *h) {
  msvc_work_t *w = h->data;
  msvc_work_close_cb cb;
  void *data;
  bool last;

  if (--w->open_handles > 0)
    return;
  cb = w->close_cb;
  data = w->close_data;
  uv_mutex_lock(&w->mu);
  last = --w->refs == 0;
  uv_mutex_unlock(&w->mu);
  if (last)
    pool_destroy(w);
  if (cb != NULL)
    cb(data);
}

static void close_handles(msvc_work_t *w) {
  if (w->handles_closing)
    return;
  w->handles_closing = true;
  w->open_handles = 1;
  if (w->timer_on) {
    w->open_handles++;
    uv_close((uv_handle_t *)&w->timer, on_handle_closed);
  }
  uv_close((uv_handle_t *)&w->async, on_handle_closed);
}

/* Joins the threads that have returned and detaches the others: after
 * this the loop side never waits for or touches a thread again. */
static void let_threads_go(msvc_work_t *w) {
  unsigned i;

  for (i = 0; i < w->nthreads; i++) {
    bool exited;
    uv_mutex_lock(&w->mu);
    exited = w->workers[i].exited;
    uv_mutex_unlock(&w->mu);
    if (exited)
      uv_thread_join(&w->workers[i].tid);
    else
      pthread_detach((pthread_t)w->workers[i].tid);
  }
  w->nthreads = 0;
}

static void maybe_finish_close(msvc_work_t *w) {
  unsigned live;

  if (!w->closing || w->handles_closing)
    return;
  uv_mutex_lock(&w->mu);
  live = w->live;
  uv_mutex_unlock(&w->mu);
  if (live > 0 || w->pending > 0)
    return;
  let_threads_go(w);
  close_handles(w);
}

static void on_async(uv_async_t *a) {
  msvc_work_t *w = a->data;

  run_done(w);
  set_ref(w);
  maybe_finish_close(w);
}

/* The close deadline: running jobs are abandoned. */
static void on_deadline(uv_timer_t *t) {
  msvc_work_t *w = t->data;

  if (w->handles_closing)
    return;
  run_done(w);
  uv_mutex_lock(&w->mu);
  w->abandoned = true;
  uv_mutex_unlock(&w->mu);
  let_threads_go(w);
  close_handles(w);
}

int msvc_work_new(uv_loop_t *loop, const msvc_work_opts_t *opts, msvc_work_t **out) {
  msvc_work_opts_t defaults;
  msvc_work_t *w;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (opts == NULL) {
    msvc_work_opts_init(&defaults);
    opts = &defaults;
  }
  if (loop == NULL || out == NULL || opts->size != sizeof(*opts) ||
      opts->threads == 0 || opts->threads > THREADS_MAX || opts->queue == 0 ||
      opts->queue > QUEUE_MAX || opts->nice < 0 || opts->nice > 19)
    return MSVC_EINVAL;
  if ((w = msvc__calloc(1, sizeof(*w))) == NULL)
    return MSVC_ENOMEM;
  w->loop = loop;
  w->opts = *opts;
  msvc__queue_init(&w->queue);
  msvc__queue_init(&w->done);
  w->refs = 1;
  if (opts->metrics != NULL && (rc = register_metrics(w, opts->metrics)) != MSVC_OK) {
    msvc__free(w);
    return rc;
  }
  if ((rc = uv_mutex_init(&w->mu)) != 0) {
    msvc__free(w);
    return rc;
  }
  if ((rc = uv_cond_init(&w->cv)) != 0) {
    uv_mutex_destroy(&w->mu);
    msvc__free(w);
    return rc;
  }
  if ((rc = uv_async_init(loop, &w->async, on_async)) != 0) {
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    msvc__free(w);
    return rc;
  }
  w->async.data = w;
  uv_unref((uv_handle_t *)&w->async);
  *out = w;
  return MSVC_OK;
}

int msvc_work_submit_wait(msvc_work_t *w, uint32_t wait_ms, msvc_work_fn work_fn,
                          msvc_work_done_fn done_fn, void *data, msvc_work_job_t **job) {
  msvc_work_job_t *j;
  int rc;

  if (job != NULL)
    *job = NULL;
  if (w == NULL || work_fn == NULL)
    return MSVC_EINVAL;
  if (w->draining || w->closing)
    return MSVC_ECLOSED;
  if (w->workers == NULL && (rc = start_threads(w)) != MSVC_OK) {
    msvc__free(w->workers);
    w->workers = NULL;
    return rc;
  }
  if ((j = msvc__calloc(1, sizeof(*j))) == NULL)
    return MSVC_ENOMEM;
  j->work_fn = work_fn;
  j->done_fn = done_fn;
  j->data = data;
  j->t_submit = uv_hrtime();
  j->deadline = wait_ms != 0 ? j->t_submit + (uint64_t)wait_ms * 1000000u : 0;
  uv_mutex_lock(&w->mu);
  if (w->nqueued >= w->opts.queue) {
    uv_mutex_unlock(&w->mu);
    msvc__free(j);
    w->n_rejected++;
    if (w->m_rejected != NULL)
      msvc_metrics_counter_inc(w->m_rejected);
    return MSVC_EWORK_FULL;
  }
  msvc__queue_insert_tail(&w->queue, &j->node);
  w->nqueued++;
  if (w->idle > 0)
    uv_cond_signal(&w->cv);
  uv_mutex_unlock(&w->mu);
  depth_add(w, 1);
  w->pending++;
  set_ref(w);
  if (job != NULL)
    *job = j;
  return MSVC_OK;
}

int msvc_work_submit(msvc_work_t *w, msvc_work_fn work_fn, msvc_work_done_fn done_fn,
                     void *data, msvc_work_job_t **job) {
  return msvc_work_submit_wait(w, 0, work_fn, done_fn, data, job);
}

int msvc_work_cancel(msvc_work_t *w, msvc_work_job_t *job) {
  int rc = MSVC_EBUSY;

  if (w == NULL || job == NULL)
    return MSVC_EINVAL;
  uv_mutex_lock(&w->mu);
  if (job->state == J_QUEUED) {
    msvc__queue_remove(&job->node);
    w->nqueued--;
    job->state = J_DONE;
    job->status = MSVC_ECANCELED;
    msvc__queue_insert_tail(&w->done, &job->node);
    notify_locked(w);
    rc = MSVC_OK;
  }
  uv_mutex_unlock(&w->mu);
  if (rc == MSVC_OK)
    depth_add(w, -1);
  return rc;
}

int msvc_work_drain(msvc_work_t *w, uint32_t timeout_ms) {
  unsigned n = 0;

  if (w == NULL)
    return MSVC_EINVAL;
  if (w->draining || w->closing)
    return MSVC_ESTATE;
  w->draining = true;
  w->deadline_ms = uv_now(w->loop) + timeout_ms;
  uv_mutex_lock(&w->mu);
  while (!msvc__queue_empty(&w->queue)) {
    msvc_work_job_t *job = msvc__container_of(w->queue.next, msvc_work_job_t, node);
    msvc__queue_remove(&job->node);
    job->state = J_DONE;
    job->status = MSVC_ECLOSED;
    msvc__queue_insert_tail(&w->done, &job->node);
    n++;
  }
  w->nqueued = 0;
  w->stop = true;
  uv_cond_broadcast(&w->cv);
  notify_locked(w);
  uv_mutex_unlock(&w->mu);
  depth_add(w, -(double)n);
  return MSVC_OK;
}

void msvc_work_close(msvc_work_t *w, msvc_work_close_cb cb, void *data) {
  uint64_t now;

  if (w == NULL || w->closing)
    return;
  if (!w->draining)
    msvc_work_drain(w, w->opts.drain_timeout_ms);
  w->closing = true;
  w->close_cb = cb;
  w->close_data = data;
  set_ref(w);
  now = uv_now(w->loop);
  uv_timer_init(w->loop, &w->timer);
  w->timer.data = w;
  w->timer_on = true;
  uv_timer_start(&w->timer, on_deadline, w->deadline_ms > now ? w->deadline_ms - now : 0,
                 0);
  /* Everything else happens from the loop: the async callback delivers the
   * cancelled jobs and then finds the threads gone. */
  uv_async_send(&w->async);
}

int msvc_work_stats(msvc_work_t *w, msvc_work_stats_t *out) {
  if (w == NULL || out == NULL)
    return MSVC_EINVAL;
  memset(out, 0, sizeof(*out));
  uv_mutex_lock(&w->mu);
  out->queued = w->nqueued;
  out->running = w->nrunning;
  uv_mutex_unlock(&w->mu);
  out->threads = w->nthreads;
  out->done = w->n_done;
  out->rejected = w->n_rejected;
  out->cancelled = w->n_cancelled;
  return MSVC_OK;
}

uv_loop_t *msvc_work_loop(const msvc_work_t *w) {
  return w != NULL ? w->loop : NULL;
}
