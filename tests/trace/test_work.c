/* A span around a worker-pool job: started on the loop as the child of the
 * request's span, ended on the pool thread, queued with the right parent. */
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/trace.h>
#include <msvc/work.h>

#include "trace/trace-internal.h"

typedef struct job_s {
  msvc_span_t *span;
  uv_thread_t loop_thread;
  bool other_thread;
  int done;
} job_t;

static void on_work(void *data) {
  job_t *j = data;
  uv_thread_t self = uv_thread_self();

  j->other_thread = !uv_thread_equal(&self, &j->loop_thread);
  msvc_trace_span_set_str(j->span, "work", "hash");
  msvc_trace_span_end(j->span); /* on the pool thread */
}

static void on_done(void *data, int status) {
  job_t *j = data;

  cr_assert_eq(status, MSVC_OK);
  j->done++;
}

static void on_closed(void *data) {
  (void)data;
}

Test(trace_work, span_around_a_pool_job, .timeout = 20) {
  uv_loop_t loop;
  msvc_work_t *w;
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;
  msvc_span_t *parent, *queued = NULL;
  job_t j = {0};
  char parent_id[17];

  msvc_tracer_opts_init(&o);
  o.service_name = "work-test";
  o.endpoint = "http://127.0.0.1:9/v1/traces"; /* spans wait in the queue */
  o.delay_ms = 60000;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_work_new(&loop, NULL, &w), MSVC_OK);

  cr_assert_eq(msvc_trace_span_start(t, "GET /x", MSVC_SPAN_SERVER, NULL, &parent), MSVC_OK);
  memcpy(parent_id, msvc_trace_span_ctx(parent)->span_id, sizeof(parent_id));
  cr_assert_eq(msvc_trace_span_start(t, "password hash", MSVC_SPAN_INTERNAL,
                                     msvc_trace_span_ctx(parent), &j.span), MSVC_OK);
  j.loop_thread = uv_thread_self();
  cr_assert_eq(msvc_work_submit(w, on_work, on_done, &j, NULL), MSVC_OK);
  while (j.done == 0)
    uv_run(&loop, UV_RUN_ONCE);
  msvc_trace_span_end(parent);
  cr_assert(j.other_thread, "the work ran on a pool thread");

  for (msvc_span_t *s = atomic_load(&t->inbox); s != NULL; s = s->next)
    if (strcmp(s->name, "password hash") == 0)
      queued = s;
  cr_assert_eq(atomic_load(&t->count), 2);
  cr_assert_not_null(queued);
  cr_assert_str_eq(queued->parent_id, parent_id);
  cr_assert_eq(queued->nattrs, 1);

  msvc_work_close(w, on_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_tracer_shutdown(t, 0);
  msvc_tracer_free(t);
}
