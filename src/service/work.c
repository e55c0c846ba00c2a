/*
 * One worker pool per loop of the service. A pool shared by the worker
 * loops would need its done callbacks routed to each submitter's loop and
 * one lock taken by every loop; a pool per loop keeps each loop's path free
 * of the others, and its queue bound then holds per loop, like its
 * connections. Threads start with the first job, so a service that never
 * uses its pool has no extra threads.
 */
#include <msvc/work.h>

#include "http/server.h"
#include "service-core.h"

static void on_server_drain(void *data, uint32_t timeout_ms) {
  msvc__svc_loop_t *l = data;

  /* Queued jobs are cancelled now (their requests get 503 SHUTTING_DOWN);
   * running ones finish within the server's own drain deadline. */
  if (l->work != NULL)
    (void)msvc_work_drain(l->work, timeout_ms);
}

int msvc__svc_work_setup(msvc_service_t *svc, msvc_http_server_t *srv,
                         msvc__svc_loop_t *l) {
  msvc_work_opts_t o;
  int rc;

  msvc_work_opts_init(&o);
  o.threads = svc->cfg.work_threads;
  o.queue = svc->cfg.work_queue;
  o.metrics = svc->cfg.metrics;
  o.drain_timeout_ms = svc->cfg.drain_timeout_ms;
  rc = msvc_work_new(msvc_http_server_loop(srv), &o, &l->work);
  if (rc != MSVC_OK)
    return rc;
  /* TLS handshakes too: a full one is milliseconds of the loop otherwise.
   * The server closes before its loop's pool (msvc__svc_loop_free()). */
  (void)msvc_http_server_set_work(srv, l->work);
  msvc__http_server_on_drain(srv, on_server_drain, l);
  return MSVC_OK;
}

void msvc__svc_work_close(msvc__svc_loop_t *l) {
  /* Asynchronous: the loop runs on after this (the main loop until the
   * service has stopped, a worker loop once more before it closes). */
  msvc_work_close(l->work, NULL, NULL);
  l->work = NULL;
}

msvc_work_t *msvc_service_work(msvc_service_t *svc, const msvc_http_req_t *req) {
  uv_loop_t *loop;
  unsigned i;

  if (svc == NULL)
    return NULL;
  if (req == NULL)
    return svc->main.work;
  loop = req->srv->loop;
  if (svc->main.work != NULL && msvc_work_loop(svc->main.work) == loop)
    return svc->main.work;
  for (i = 0; svc->wloops != NULL && i < svc->cfg.workers; i++)
    if (svc->wloops[i].work != NULL && msvc_work_loop(svc->wloops[i].work) == loop)
      return svc->wloops[i].work;
  return NULL;
}
