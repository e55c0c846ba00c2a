/*
 * Requests handed to a worker pool: the job follows its request. A client
 * that goes away cancels the job if it has not started; whatever happens,
 * the request is answered (or released) exactly once, so nothing leaks.
 */
#include <msvc/work.h>

#include "http/server.h"
#include "msvc-internal.h"

typedef struct req_job_s {
  msvc_work_t *w;
  msvc_http_req_t *req;
  msvc_work_job_t *job;
  msvc_work_fn work_fn;
  msvc_work_req_done_fn done_fn;
  void *data;
} req_job_t;

static void rj_work(void *arg) {
  req_job_t *rj = arg;

  rj->work_fn(rj->data);
}

static void rj_on_cancel(msvc_http_req_t *req, void *arg) {
  req_job_t *rj = arg;

  (void)req;
  /* MSVC_EBUSY (already running) is fine: its answer will be dropped. */
  (void)msvc_work_cancel(rj->w, rj->job);
}

static int answer_failure(msvc_http_req_t *req, int status) {
  msvc_http_res_t *res = msvc_http_req_res(req);

  switch (status) {
  case MSVC_EWORK_FULL:
  case MSVC_ETIMEDOUT:
    return msvc_http_res_error(res, 503, "OVERLOADED",
                               "The service is overloaded; retry later.");
  case MSVC_ECLOSED:
    return msvc_http_res_error(res, 503, "SHUTTING_DOWN", "The server is shutting down.");
  case MSVC_ECANCELED:
    return msvc_http_res_error(res, 500, "INTERNAL", "The request's work was cancelled.");
  default:
    return msvc_http_res_error(res, 500, "INTERNAL", "The request could not be processed.");
  }
}

static void rj_done(void *arg, int status) {
  req_job_t *rj = arg;
  msvc_http_req_t *req = rj->req;
  bool was;

  msvc_http_req_on_cancel(req, NULL, NULL);
  was = msvc__req_hold(req);
  rj->done_fn(req, rj->data, status);
  /* A request whose client is gone, or whose job did not run, must still be
   * finished once to be released. */
  if (!msvc_http_res_started(msvc_http_req_res(req)) &&
      (status != MSVC_OK || msvc_http_req_cancelled(req)))
    answer_failure(req, status);
  msvc__req_unhold(req, was);
  msvc__free(rj);
}

int msvc_work_submit_req(msvc_work_t *w, msvc_http_req_t *req, uint32_t wait_ms,
                         msvc_work_fn work_fn, msvc_work_req_done_fn done_fn,
                         void *data) {
  req_job_t *rj;
  int rc;

  if (req == NULL || work_fn == NULL || done_fn == NULL)
    return MSVC_EINVAL;
  if (msvc_http_res_started(msvc_http_req_res(req)))
    return MSVC_EHTTP_RESPONDED;
  if (w == NULL || msvc_work_loop(w) != req->srv->loop) {
    answer_failure(req, MSVC_EINVAL);
    return MSVC_EINVAL;
  }
  if (msvc_http_req_cancelled(req)) {
    answer_failure(req, MSVC_ECANCELED); /* releases it; nobody listens */
    return MSVC_ECANCELED;
  }
  if ((rj = msvc__calloc(1, sizeof(*rj))) == NULL) {
    answer_failure(req, MSVC_ENOMEM);
    return MSVC_ENOMEM;
  }
  rj->w = w;
  rj->req = req;
  rj->work_fn = work_fn;
  rj->done_fn = done_fn;
  rj->data = data;
  rc = msvc_work_submit_wait(w, wait_ms, rj_work, rj_done, rj, &rj->job);
  if (rc != MSVC_OK) {
    msvc__free(rj);
    answer_failure(req, rc);
    return rc;
  }
  msvc_http_req_on_cancel(req, rj_on_cancel, rj);
  return MSVC_OK;
}
