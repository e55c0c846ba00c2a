/* Shared helpers of the events tests: a private loop, "run until", and a
 * handler that records what it was given and settles it as told.
 *
 * Loops live in static storage, never on a test's stack: a failed assertion
 * leaves the test body at once, while the backend's threads (libnats', the
 * fetch and management threads) go on and wake the loop through its
 * uv_async_t, also when the suite's teardown stops the broker. With the loop
 * on the abandoned stack that write landed in the teardown's frames and the
 * test "crashed during its setup or teardown" on top of its real failure. */
#ifndef MSVC_TEST_EVENTS_FIXTURE_H
#define MSVC_TEST_EVENTS_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <msvc/events.h>
#include <msvc/log.h>

#define GOT_MAX 4096

typedef enum { SETTLE_ACK, SETTLE_NACK, SETTLE_HOLD, SETTLE_TERM } settle_mode_t;

/* What one subscription's handler saw. */
typedef struct got_s {
  int n;
  settle_mode_t mode;
  uint32_t nack_delay_ms;
  const char *reason;
  char ids[GOT_MAX][40];
  uint32_t deliveries[GOT_MAX];
  char subject[128];
  char traceparent[128];
  char request_id[64];
  char reason_hdr[128];
  char orig_subject[128];
  char deliveries_hdr[16];
  char data[256];
  msvc_events_msg_t *held[GOT_MAX];
  int nheld;
  bool wrong_thread;
  uv_thread_t loop_thread;
} got_t;

static inline void got_init(got_t *g, settle_mode_t mode) {
  memset(g, 0, sizeof(*g));
  g->mode = mode;
  g->loop_thread = uv_thread_self();
}

static inline void copy_hdr(msvc_events_msg_t *msg, const char *name, char *out, size_t n) {
  const char *v = msvc_events_msg_header(msg, name);
  if (v != NULL)
    snprintf(out, n, "%s", v);
}

static inline void got_handler(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  got_t *g = data;
  const msvc_event_t *e = msvc_events_msg_event(msg);
  uv_thread_t self = uv_thread_self();

  (void)sub;
  if (!uv_thread_equal(&self, &g->loop_thread))
    g->wrong_thread = true;
  if (g->n < GOT_MAX) {
    snprintf(g->ids[g->n], sizeof(g->ids[0]), "%s", e->id);
    g->deliveries[g->n] = msvc_events_msg_deliveries(msg);
  }
  g->n++;
  snprintf(g->subject, sizeof(g->subject), "%s", msvc_events_msg_subject(msg));
  copy_hdr(msg, "traceparent", g->traceparent, sizeof(g->traceparent));
  copy_hdr(msg, "X-Request-Id", g->request_id, sizeof(g->request_id));
  copy_hdr(msg, MSVC_EVENTS_HDR_REASON, g->reason_hdr, sizeof(g->reason_hdr));
  copy_hdr(msg, MSVC_EVENTS_HDR_SUBJECT, g->orig_subject, sizeof(g->orig_subject));
  copy_hdr(msg, MSVC_EVENTS_HDR_DELIVERIES, g->deliveries_hdr, sizeof(g->deliveries_hdr));
  if (e->data != NULL)
    snprintf(g->data, sizeof(g->data), "%.*s", (int)e->data_len, e->data);
  switch (g->mode) {
  case SETTLE_ACK:
    cr_assert_eq(msvc_events_ack(msg), MSVC_OK);
    break;
  case SETTLE_NACK:
    cr_assert_eq(msvc_events_nack(msg, g->nack_delay_ms, g->reason), MSVC_OK);
    break;
  case SETTLE_TERM:
    cr_assert_eq(msvc_events_term(msg, g->reason), MSVC_OK);
    break;
  case SETTLE_HOLD:
    if (g->nheld < GOT_MAX)
      g->held[g->nheld++] = msg;
    break;
  }
}

/* Counts of distinct ids seen across recorders. */
static inline int got_distinct(const got_t *a, const got_t *b) {
  int n = 0;
  const got_t *all[2] = {a, b};

  for (int x = 0; x < 2; x++) {
    if (all[x] == NULL)
      continue;
    for (int i = 0; i < all[x]->n && i < GOT_MAX; i++) {
      bool dup = false;
      for (int y = 0; y <= x && !dup; y++) {
        if (all[y] == NULL)
          continue;
        int lim = y == x ? i : all[y]->n;
        for (int j = 0; j < lim && !dup; j++)
          dup = strcmp(all[y]->ids[j], all[x]->ids[i]) == 0;
      }
      n += !dup;
    }
  }
  return n;
}

typedef struct pubrec_s {
  int calls;
  int ok;
  int last_status;
  char last_id[MSVC_EVENTS_ID_MAX + 1];
  bool wrong_thread;
  uv_thread_t loop_thread;
} pubrec_t;

static inline void pubrec_init(pubrec_t *p) {
  memset(p, 0, sizeof(*p));
  p->loop_thread = uv_thread_self();
}

static inline void on_published(int status, const char *id, void *data) {
  pubrec_t *p = data;
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &p->loop_thread))
    p->wrong_thread = true;
  p->calls++;
  p->ok += status == MSVC_OK;
  p->last_status = status;
  snprintf(p->last_id, sizeof(p->last_id), "%s", id);
}

static inline void on_done_status(int status, void *data) {
  int *s = data;
  *s = status;
}

static inline void on_tick(uv_timer_t *t) {
  (void)t;
}

/* Runs the loop until pred(arg) holds or ms have passed; a ticking timer
 * keeps uv_run from blocking forever. */
static inline bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, int ms) {
  uv_timer_t tick;
  uint64_t end;
  bool ok;

  uv_update_time(loop);
  end = uv_now(loop) + (uint64_t)ms;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 5, 5);
  while (!(ok = pred(arg)) && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

static inline bool never(void *arg) {
  (void)arg;
  return false;
}

static inline void run_for(uv_loop_t *loop, int ms) {
  run_until(loop, never, NULL, ms);
}

typedef struct want_s {
  const int *value;
  int want;
} want_t;

static inline bool want_at_least(void *arg) {
  want_t *w = arg;
  return *w->value >= w->want;
}

static inline bool wait_count(uv_loop_t *loop, const int *value, int want, int ms) {
  want_t w = {value, want};
  return run_until(loop, want_at_least, &w, ms);
}

static inline void on_closed_flag(void *data) {
  (*(int *)data)++;
}

static inline void close_events(uv_loop_t *loop, msvc_events_t *ev) {
  int closed = 0;

  msvc_events_close(ev, on_closed_flag, &closed);
  cr_assert(wait_count(loop, &closed, 1, 5000), "close did not finish");
}

static inline void finish_loop(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(loop), 0, "a handle leaked");
}

static inline msvc_events_t *open_events(uv_loop_t *loop, const char *uri, const char *source) {
  msvc_events_opts_t o;
  msvc_events_t *ev = NULL;
  char err[MSVC_ERRMSG_MAX];
  int rc;

  msvc_events_opts_init(&o);
  o.source = source;
  rc = msvc_events_new(loop, uri, &o, &ev, err, sizeof(err));
  cr_assert_eq(rc, MSVC_OK, "%s: %s", uri, err);
  return ev;
}

static inline bool status_set(void *arg) {
  return *(int *)arg != 1;
}

static inline void ensure_stream(uv_loop_t *loop, msvc_events_t *ev, const char *name,
                                 const char *subject) {
  msvc_events_stream_opts_t so;
  const char *subjects[1] = {subject};
  int status = 1;

  msvc_events_stream_opts_init(&so);
  so.name = name;
  so.subjects = subjects;
  so.subject_count = 1;
  cr_assert_eq(msvc_events_stream_ensure(ev, &so, on_done_status, &status), MSVC_OK);
  run_until(loop, status_set, &status, 10000);
  cr_assert_eq(status, MSVC_OK, "stream %s: %s", name, msvc_strerror(status));
}

#endif /* MSVC_TEST_EVENTS_FIXTURE_H */
