/**
 * @file msvc/work.h
 * @brief A bounded worker pool for blocking work: database calls, password
 *        hashing, file I/O, anything that would stall the event loop.
 *
 * A pool is bound to one `uv_loop_t` (the caller's). Jobs are submitted from
 * that loop's thread; each job's work function runs on one of the pool's own
 * threads, and its done function runs afterwards back on the loop's thread
 * with the job's outcome. The pool is usable without the service object
 * (msvc_work_new()); a service makes one per loop (msvc_service_work()).
 *
 * - Bounded: at most `queue` jobs wait for a thread. When the queue is full,
 *   msvc_work_submit() fails at once with MSVC_EWORK_FULL; nothing piles up.
 * - Below the loop: each pool thread lowers its own scheduling priority
 *   (`SCHED_BATCH` and a higher nice value by default), so that a
 *   CPU-heavy job gives the core back as soon as the loop has work.
 * - Cancellable: a queued job can be cancelled; a job bound to an HTTP
 *   request (msvc_work_submit_req()) is not started once its client has gone.
 * - Drained: msvc_work_drain() cancels what has not started and lets running
 *   jobs finish; msvc_work_close() then releases the pool.
 *
 * Thread safety: every function of this header must be called from the
 * pool's loop thread. Work functions run on pool threads and must not touch
 * the loop or any object bound to it.
 */
#ifndef MSVC_WORK_H
#define MSVC_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <msvc/common.h>
#include <msvc/error.h>
#include <msvc/http.h>

#ifdef __cplusplus
extern "C" {
#endif

struct msvc_metrics_registry_s;

/** @brief A worker pool bound to one loop. */
typedef struct msvc_work_s msvc_work_t;
/** @brief One submitted job (valid until its done function has returned). */
typedef struct msvc_work_job_s msvc_work_job_t;

/** @brief Default number of pool threads. */
#define MSVC_WORK_DEFAULT_THREADS 4u
/** @brief Default bound of the queue of jobs waiting for a thread. */
#define MSVC_WORK_DEFAULT_QUEUE 256u
/** @brief Default nice increment of pool threads. */
#define MSVC_WORK_DEFAULT_NICE 10

/** @brief Pool options; fill with msvc_work_opts_init(). */
typedef struct msvc_work_opts_s {
  size_t size;        /**< sizeof(msvc_work_opts_t), set by msvc_work_opts_init(). */
  unsigned threads;   /**< Pool threads, 1..256; default 4. Started on the
                           first submit, not before. */
  unsigned queue;     /**< Jobs that may wait for a thread, 1..1000000;
                           default 256. Running jobs do not count. */
  int nice;           /**< Added to each thread's nice value, 0..19; default
                           10. 0 keeps the loop's priority. */
  bool batch;         /**< Run threads under `SCHED_BATCH` (Linux); default
                           true. */
  uint32_t drain_timeout_ms; /**< Longest wait for running jobs when
                           msvc_work_close() is called without a drain;
                           default 5000. */
  /** Registry for the pool's metrics (`msvc_work_*`); NULL: no metrics.
   *  Borrowed: must outlive the pool. Pools may share a registry. */
  struct msvc_metrics_registry_s *metrics;
} msvc_work_opts_t;

/**
 * @brief Runs on a pool thread.
 * @param data  The pointer given at submission.
 */
typedef void (*msvc_work_fn)(void *data);

/**
 * @brief Runs on the pool's loop thread once the job is over.
 * @param data    The pointer given at submission.
 * @param status  #MSVC_OK: the work function ran. MSVC_ECANCELED: the job
 *                was cancelled before it started (msvc_work_cancel(), or its
 *                request's client went away). MSVC_ETIMEDOUT: it waited
 *                longer than its wait limit. MSVC_ECLOSED: the pool was
 *                drained or closed before the job started.
 */
typedef void (*msvc_work_done_fn)(void *data, int status);

/** @brief Called once when a closed pool has released everything. */
typedef void (*msvc_work_close_cb)(void *data);

/**
 * @brief Fill options with their defaults.
 * @param opts  Options to fill; NULL is ignored.
 * @since 0.2
 */
MSVC_API void msvc_work_opts_init(msvc_work_opts_t *opts);

/**
 * @brief Create a pool bound to a loop.
 *
 * No thread is started until the first job is submitted. The pool holds one
 * libuv handle on the loop (unreferenced while no job is pending, so an idle
 * pool does not keep uv_run() going); release it with msvc_work_close().
 *
 * @param loop  The loop; borrowed, must outlive the pool.
 * @param opts  Options, or NULL for the defaults; copied.
 * @param out   Receives the pool.
 * @return #MSVC_OK, MSVC_EINVAL (NULL argument, options not initialised or
 *         out of range), MSVC_ENOMEM, or a libuv error.
 * @since 0.2
 */
MSVC_API int msvc_work_new(uv_loop_t *loop, const msvc_work_opts_t *opts,
                           msvc_work_t **out);

/**
 * @brief Submit a job.
 *
 * @param w        The pool.
 * @param work_fn  Runs on a pool thread; must not be NULL.
 * @param done_fn  Runs on the loop thread afterwards, exactly once for every
 *                 successful submit, never from inside this call; may be NULL.
 * @param data     Passed to both; owned by the caller (release it in done_fn).
 * @param job      Receives the job for msvc_work_cancel(); may be NULL. Valid
 *                 until done_fn has returned.
 * @return #MSVC_OK; MSVC_EWORK_FULL when the queue is full; MSVC_ECLOSED
 *         when the pool is draining or closing; MSVC_EINVAL; MSVC_ENOMEM; a
 *         libuv error when no thread could be started. On failure done_fn is
 *         not called.
 * @since 0.2
 */
MSVC_API int msvc_work_submit(msvc_work_t *w, msvc_work_fn work_fn,
                              msvc_work_done_fn done_fn, void *data,
                              msvc_work_job_t **job);

/**
 * @brief Like msvc_work_submit(), with a limit on the time the job may wait
 *        for a thread.
 * @param w        The pool.
 * @param wait_ms  A job still queued after this many milliseconds is not
 *                 started; its done_fn gets MSVC_ETIMEDOUT. 0: no limit.
 * @param work_fn  As msvc_work_submit().
 * @param done_fn  As msvc_work_submit().
 * @param data     As msvc_work_submit().
 * @param job      As msvc_work_submit().
 * @return As msvc_work_submit().
 * @since 0.2
 */
MSVC_API int msvc_work_submit_wait(msvc_work_t *w, uint32_t wait_ms,
                                   msvc_work_fn work_fn, msvc_work_done_fn done_fn,
                                   void *data, msvc_work_job_t **job);

/**
 * @brief Cancel a job that has not started.
 * @param w    The pool.
 * @param job  A job of this pool whose done_fn has not run yet.
 * @return #MSVC_OK: the job will not run, its done_fn runs soon (from the
 *         loop, not from this call) with MSVC_ECANCELED. MSVC_EBUSY: it is
 *         running or finished; its done_fn runs with its real outcome.
 *         MSVC_EINVAL.
 * @since 0.2
 */
MSVC_API int msvc_work_cancel(msvc_work_t *w, msvc_work_job_t *job);

/**
 * @brief Stop taking jobs: queued jobs are cancelled with MSVC_ECLOSED,
 *        running jobs finish and their done functions run as usual.
 * @param w           The pool.
 * @param timeout_ms  How long msvc_work_close() will wait for running jobs,
 *                    counted from now.
 * @return #MSVC_OK, MSVC_ESTATE (already drained or closing), MSVC_EINVAL.
 * @since 0.2
 */
MSVC_API int msvc_work_drain(msvc_work_t *w, uint32_t timeout_ms);

/**
 * @brief Close the pool and free it.
 *
 * Drains first if msvc_work_drain() was not called (with the pool's
 * `drain_timeout_ms`). Then waits, from the loop, for running jobs to
 * finish until the drain deadline, runs their done functions and joins the
 * threads. A job still running at the deadline is abandoned: its thread is
 * detached, its done_fn never runs (its data is not released) and the
 * pool's memory is freed by that thread if it ever returns. After cb the
 * loop holds nothing of the pool (uv_loop_close() can succeed). Close a
 * pool after the HTTP servers whose requests use it (a service does).
 *
 * @param w     The pool, or NULL (a no-op).
 * @param cb    Called once from the loop when everything is released; may
 *              be NULL.
 * @param data  Passed to cb.
 * @since 0.2
 */
MSVC_API void msvc_work_close(msvc_work_t *w, msvc_work_close_cb cb, void *data);

/** @brief Counters of a pool (see msvc_work_stats()). */
typedef struct msvc_work_stats_s {
  unsigned threads;   /**< Threads started. */
  unsigned queued;    /**< Jobs waiting for a thread. */
  unsigned running;   /**< Jobs whose work function is running. */
  uint64_t done;      /**< Jobs whose work function ran. */
  uint64_t rejected;  /**< Submits refused because the queue was full. */
  uint64_t cancelled; /**< Jobs never started (cancelled, timed out, drained). */
} msvc_work_stats_t;

/**
 * @brief Read a pool's counters.
 * @param w    The pool.
 * @param out  Receives the counters.
 * @return #MSVC_OK, MSVC_EINVAL.
 * @since 0.2
 */
MSVC_API int msvc_work_stats(msvc_work_t *w, msvc_work_stats_t *out);

/**
 * @brief The loop a pool is bound to.
 * @param w  The pool.
 * @return The loop (borrowed), or NULL for NULL.
 * @since 0.2
 */
MSVC_API uv_loop_t *msvc_work_loop(const msvc_work_t *w);

/* ---- HTTP requests --------------------------------------------------------- */

/**
 * @brief Runs on the loop thread when a request's job is over.
 *
 * The request is still valid; answer it here (or later). If the function
 * returns without having started a response and `status` is not #MSVC_OK,
 * the pool answers for it: MSVC_ECLOSED gives 503 `SHUTTING_DOWN`,
 * MSVC_ETIMEDOUT 503 `OVERLOADED` with `Retry-After`, MSVC_ECANCELED 500
 * (or nothing at all when the client has gone).
 *
 * @param req     The request.
 * @param data    The pointer given at submission.
 * @param status  As msvc_work_done_fn.
 */
typedef void (*msvc_work_req_done_fn)(msvc_http_req_t *req, void *data, int status);

/**
 * @brief Hand a request's blocking work to the pool and answer it later.
 *
 * The request stays valid until it is answered, which done_fn (or the pool)
 * does. If the client goes away while the job is queued, the job is not
 * started and done_fn gets MSVC_ECANCELED; if it goes away while the job
 * runs, done_fn gets #MSVC_OK and its answer is dropped (the response
 * functions return MSVC_ECLOSED). Either way nothing leaks. The job takes the
 * request's cancel hook (msvc_http_req_on_cancel()) until done_fn runs.
 *
 * When the job cannot be queued, this function answers the request itself
 * and returns the reason; done_fn is then not called (release data
 * yourself): MSVC_EWORK_FULL → 503 `OVERLOADED` + `Retry-After: 1`;
 * MSVC_ECLOSED → 503 `SHUTTING_DOWN` + `Connection: close`; other errors
 * → 500 `INTERNAL`.
 *
 * @param w        The pool of the request's loop.
 * @param req      The request; not yet answered.
 * @param wait_ms  Longest wait for a thread (see msvc_work_submit_wait());
 *                 0: no limit.
 * @param work_fn  Runs on a pool thread with data; must not touch req.
 * @param done_fn  Runs on the loop thread; must not be NULL.
 * @param data     Passed to both; owned by the caller.
 * @return #MSVC_OK, or the error for which the request was answered;
 *         MSVC_EINVAL (NULL argument; nothing answered) or
 *         MSVC_EHTTP_RESPONDED (already answered).
 * @since 0.2
 */
MSVC_API int msvc_work_submit_req(msvc_work_t *w, msvc_http_req_t *req,
                                  uint32_t wait_ms, msvc_work_fn work_fn,
                                  msvc_work_req_done_fn done_fn, void *data);

#ifdef __cplusplus
}
#endif
#endif /* MSVC_WORK_H */
