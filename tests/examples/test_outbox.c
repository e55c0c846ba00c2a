/*
 * The SQLite outbox of the example services, with the in-process memory://
 * broker: an event is published exactly when its row commits, keeps its id
 * through a crash before or after the publish, and a failed publish is
 * retried; the inbox applies an event id once.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <msvc/events.h>
#include <msvc/work.h>

#include "ex_db.h"
#include "ex_outbox.h"

#define SCHEMA "CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY, name TEXT);" \
  EX_OUTBOX_SCHEMA

typedef struct seen_s {
  int n;
  char ids[64][MSVC_EVENTS_ID_MAX + 1];
  char traceparent[80];
} seen_t;

static void on_msg(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  seen_t *s = data;
  const char *tp = msvc_events_msg_header(msg, "traceparent");

  (void)sub;
  if (s->n < 64)
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", msvc_events_msg_event(msg)->id);
  s->n++;
  if (tp != NULL)
    snprintf(s->traceparent, sizeof(s->traceparent), "%s", tp);
  msvc_events_ack(msg);
}

static void on_done(int status, void *data) {
  *(int *)data = status == MSVC_OK ? 1 : -1;
}

/* A private loop with a broker stream "THINGS" (thing.>) and a consumer. */
typedef struct world_s {
  uv_loop_t loop;
  msvc_events_t *ev;
  msvc_events_sub_t *sub;
  msvc_work_t *pool;
  ex_db_set_t *dbs;
  seen_t seen;
  char path[128];
} world_t;

static void run_until(world_t *w, const int *flag, int want, int ms) {
  int i;

  for (i = 0; i < ms / 5 && *flag < want; i++) {
    uv_run(&w->loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
}

static void world_db(world_t *w, const char *tag) {
  char err[300];

  snprintf(w->path, sizeof(w->path), "/tmp/msvc-outbox-%s-%d.db", tag, (int)getpid());
  cr_assert_eq(ex_db_set_open(w->path, SCHEMA, &w->dbs, err, sizeof(err)), SQLITE_OK, "%s",
               err);
}

static void world_broker(world_t *w, bool with_stream) {
  msvc_events_stream_opts_t so;
  msvc_events_sub_opts_t sub;
  const char *subjects[1] = {"thing.>"};
  char err[MSVC_ERRMSG_MAX];
  int done = 0;

  cr_assert_eq(uv_loop_init(&w->loop), 0);
  cr_assert_eq(msvc_events_new(&w->loop, "memory://", NULL, &w->ev, err, sizeof(err)), MSVC_OK);
  cr_assert_eq(msvc_work_new(&w->loop, NULL, &w->pool), MSVC_OK);
  if (!with_stream)
    return;
  msvc_events_stream_opts_init(&so);
  so.name = "THINGS";
  so.subjects = subjects;
  so.subject_count = 1;
  cr_assert_eq(msvc_events_stream_ensure(w->ev, &so, on_done, &done), MSVC_OK);
  run_until(w, &done, 1, 2000);
  cr_assert_eq(done, 1);
  msvc_events_sub_opts_init(&sub);
  sub.stream = "THINGS";
  sub.subject = "thing.>";
  sub.durable = "tester";
  cr_assert_eq(msvc_events_subscribe(w->ev, &sub, on_msg, &w->seen, &w->sub), MSVC_OK);
}

static void on_closed(void *data) {
  (*(int *)data)++;
}

static void world_close(world_t *w) {
  int closed = 0;

  msvc_events_close(w->ev, on_closed, &closed);
  msvc_work_close(w->pool, on_closed, &closed);
  run_until(w, &closed, 2, 5000);
  cr_assert_eq(closed, 2);
  cr_assert_eq(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&w->loop), 0, "a handle leaked");
  ex_db_set_close(w->dbs);
  unlink(w->path);
}

/* Writes a thing and its event in one transaction; commit or roll back. */
static void add_thing(ex_db_set_t *dbs, const char *name, bool commit, char *id) {
  sqlite3 *db = ex_db_set_get(dbs);
  msvc_events_header_t h = {"traceparent",
                            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"};
  msvc_event_t ev;
  char data[64], sql[128];

  cr_assert_eq(ex_db_begin_write(db), SQLITE_OK);
  snprintf(sql, sizeof(sql), "INSERT INTO things (name) VALUES ('%s')", name);
  cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  snprintf(data, sizeof(data), "{\"name\":\"%s\"}", name);
  memset(&ev, 0, sizeof(ev));
  ev.type = "thing.created";
  ev.source = "/tester";
  ev.data = data;
  ev.data_len = strlen(data);
  ev.headers = &h;
  ev.header_count = 1;
  cr_assert_eq(ex_outbox_add(db, &ev, ex_outbox_now_ms(), id), SQLITE_OK);
  cr_assert_eq(ex_db_finish(db, commit ? SQLITE_OK : SQLITE_ABORT), commit ? SQLITE_OK
                                                                          : SQLITE_ABORT);
}

static int64_t count(ex_db_set_t *dbs, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t n = -1;

  cr_assert_eq(sqlite3_prepare_v2(ex_db_set_get(dbs), sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

static ex_relay_t *relay_start(world_t *w) {
  ex_relay_opts_t o;
  ex_relay_t *r;

  ex_relay_opts_init(&o);
  o.poll_ms = 20;
  o.backoff_max_ms = 100;
  cr_assert_eq(ex_relay_new(&w->loop, w->ev, w->dbs, w->pool, &o, &r), 0);
  return r;
}

static void relay_stop(world_t *w, ex_relay_t *r) {
  int closed = 0;

  ex_relay_close(r, on_closed, &closed);
  run_until(w, &closed, 1, 3000);
  cr_assert_eq(closed, 1);
}

Test(outbox, crash_between_commit_and_publish, .timeout = 20) {
  world_t w = {0};
  char id1[MSVC_EVENTS_ID_MAX + 1], id2[MSVC_EVENTS_ID_MAX + 1];
  ex_relay_t *r;

  /* The "first run": two rows commit, then the process dies before any
   * relay ran (the connections close with nothing published). */
  world_db(&w, "crash");
  add_thing(w.dbs, "a", true, id1);
  add_thing(w.dbs, "b", true, id2);
  cr_assert_eq(ex_outbox_pending(ex_db_set_get(w.dbs)), 2);
  ex_db_set_close(w.dbs);

  /* The restart: the relay finds both and publishes them with their ids. */
  world_db(&w, "crash");
  world_broker(&w, true);
  r = relay_start(&w);
  run_until(&w, &w.seen.n, 2, 5000);
  cr_assert_eq(w.seen.n, 2);
  cr_assert_str_eq(w.seen.ids[0], id1);
  cr_assert_str_eq(w.seen.ids[1], id2);
  cr_assert_str_eq(w.seen.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                   "headers travel with the row");
  /* Marked sent only after the broker's ack: give the settle a moment. */
  for (int i = 0; i < 200 && ex_outbox_pending(ex_db_set_get(w.dbs)) != 0; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  cr_assert_eq(ex_outbox_pending(ex_db_set_get(w.dbs)), 0);
  relay_stop(&w, r);
  world_close(&w);
}

Test(outbox, rolled_back_row_has_no_event, .timeout = 20) {
  world_t w = {0};
  char id[MSVC_EVENTS_ID_MAX + 1], kept[MSVC_EVENTS_ID_MAX + 1];
  ex_relay_t *r;

  world_db(&w, "rollback");
  add_thing(w.dbs, "gone", false, id);
  add_thing(w.dbs, "kept", true, kept);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM things"), 1);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox"), 1);
  world_broker(&w, true);
  r = relay_start(&w);
  run_until(&w, &w.seen.n, 1, 5000);
  /* Let further passes run: nothing else may appear. */
  for (int i = 0; i < 40; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  cr_assert_eq(w.seen.n, 1);
  cr_assert_str_eq(w.seen.ids[0], kept);
  relay_stop(&w, r);
  world_close(&w);
}

/* The relay published, the broker acknowledged, and the process died
 * before marking the row: the row is published again, with the same id,
 * and the broker's duplicate window keeps one copy. Marking twice (a
 * duplicate ack) keeps the first time. */
Test(outbox, crash_after_ack_republishes_same_id, .timeout = 20) {
  world_t w = {0};
  char id[MSVC_EVENTS_ID_MAX + 1];
  ex_outbox_batch_t *b = NULL;
  int64_t seq, first;
  ex_relay_t *r;
  int done = 0;

  world_db(&w, "ack");
  world_broker(&w, true);
  add_thing(w.dbs, "x", true, id);
  /* A relay's first half, by hand: claim with a lease that ends at once,
   * publish, and "crash" before the settle. */
  cr_assert_eq(ex_outbox_claim(ex_db_set_get(w.dbs), ex_outbox_now_ms(), 0, 8, &b), SQLITE_OK);
  cr_assert_not_null(b);
  cr_assert_eq(b->n, 1);
  seq = b->rows[0].seq;
  cr_assert_eq(msvc_events_publish_envelope(w.ev, b->rows[0].subject, b->rows[0].envelope,
                                            b->rows[0].envelope_len, NULL, 0,
                                            NULL, NULL),
               MSVC_OK);
  ex_outbox_batch_free(b);
  run_until(&w, &w.seen.n, 1, 3000);
  cr_assert_eq(w.seen.n, 1);
  cr_assert_eq(ex_outbox_pending(ex_db_set_get(w.dbs)), 1, "not marked: the crash came first");

  r = relay_start(&w);
  for (int i = 0; i < 400 && ex_outbox_pending(ex_db_set_get(w.dbs)) != 0; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  cr_assert_eq(ex_outbox_pending(ex_db_set_get(w.dbs)), 0);
  relay_stop(&w, r);
  for (int i = 0; i < 40; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  for (int i = 0; i < w.seen.n; i++)
    cr_assert_str_eq(w.seen.ids[i], id, "every copy carries the row's id");
  cr_assert_eq(w.seen.n, 1, "the broker's duplicate window keeps one copy");

  first = count(w.dbs, "SELECT sent_at FROM outbox");
  usleep(3000);
  cr_assert_eq(ex_outbox_settle(ex_db_set_get(w.dbs), &seq, 1, NULL, 0, ex_outbox_now_ms()),
               SQLITE_OK);
  cr_assert_eq(count(w.dbs, "SELECT sent_at FROM outbox"), first, "a second ack changes nothing");
  (void)done;
  world_close(&w);
}

/* No stream holds the subject: the publish fails, the row stays pending
 * (lease released), and once the stream exists the relay delivers it. */
Test(outbox, failed_publish_is_retried, .timeout = 20) {
  world_t w = {0};
  char id[MSVC_EVENTS_ID_MAX + 1];
  ex_relay_stats_t st;
  ex_relay_t *r;

  world_db(&w, "retry");
  add_thing(w.dbs, "late", true, id);
  world_broker(&w, false);
  r = relay_start(&w);
  for (int i = 0; i < 100; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
  }
  ex_relay_stats(r, &st);
  cr_assert_gt(st.failed, 0);
  cr_assert_eq(st.published, 0);
  cr_assert_eq(ex_outbox_pending(ex_db_set_get(w.dbs)), 1);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox WHERE lease_until IS NOT NULL"), 0,
               "a failed row is released for the next pass");

  /* Now the stream (and a consumer) appear. */
  {
    msvc_events_stream_opts_t so;
    msvc_events_sub_opts_t sub;
    const char *subjects[1] = {"thing.>"};
    int done = 0;

    msvc_events_stream_opts_init(&so);
    so.name = "THINGS";
    so.subjects = subjects;
    so.subject_count = 1;
    cr_assert_eq(msvc_events_stream_ensure(w.ev, &so, on_done, &done), MSVC_OK);
    run_until(&w, &done, 1, 2000);
    msvc_events_sub_opts_init(&sub);
    sub.stream = "THINGS";
    sub.subject = "thing.>";
    sub.durable = "tester";
    cr_assert_eq(msvc_events_subscribe(w.ev, &sub, on_msg, &w.seen, &w.sub), MSVC_OK);
  }
  run_until(&w, &w.seen.n, 1, 5000);
  cr_assert_eq(w.seen.n, 1);
  cr_assert_str_eq(w.seen.ids[0], id);
  relay_stop(&w, r);
  world_close(&w);
}

Test(outbox, lease_keeps_a_second_relay_off, .timeout = 10) {
  world_t w = {0};
  char id[MSVC_EVENTS_ID_MAX + 1];
  ex_outbox_batch_t *a = NULL, *b = NULL;
  int64_t now = ex_outbox_now_ms();

  world_db(&w, "lease");
  add_thing(w.dbs, "one", true, id);
  cr_assert_eq(ex_outbox_claim(ex_db_set_get(w.dbs), now, 10000, 8, &a), SQLITE_OK);
  cr_assert_not_null(a);
  cr_assert_eq(ex_outbox_claim(ex_db_set_get(w.dbs), now + 1, 10000, 8, &b), SQLITE_OK);
  cr_assert_null(b, "claimed by the first relay");
  cr_assert_eq(ex_outbox_claim(ex_db_set_get(w.dbs), now + 10001, 10000, 8, &b), SQLITE_OK);
  cr_assert_not_null(b, "the lease ran out: another relay takes over");
  cr_assert_eq(b->rows[0].seq, a->rows[0].seq);
  ex_outbox_batch_free(a);
  ex_outbox_batch_free(b);
  ex_db_set_close(w.dbs);
  unlink(w.path);
}

Test(outbox, inbox_applies_an_id_once) {
  world_t w = {0};
  sqlite3 *db;

  world_db(&w, "inbox");
  db = ex_db_set_get(w.dbs);
  cr_assert_eq(ex_inbox_claim(db, "e-1", 1), 1);
  cr_assert_eq(ex_inbox_claim(db, "e-1", 2), 0);
  cr_assert_eq(ex_inbox_claim(db, "e-2", 3), 1);
  ex_db_set_close(w.dbs);
  unlink(w.path);
}

/* Sent outbox rows and processed inbox ids go after their retention; a
 * pending row stays whatever its age, and so does anything younger. */
Test(outbox, prune_keeps_pending_and_recent_rows) {
  world_t w = {0};
  sqlite3 *db;
  int64_t seq, deleted = -1, now = 1000000;
  char id[MSVC_EVENTS_ID_MAX + 1];

  world_db(&w, "prune");
  db = ex_db_set_get(w.dbs);
  for (int i = 0; i < 3; i++)
    add_thing(w.dbs, "t", true, id);
  /* seq 1 sent long ago, seq 2 sent just now, seq 3 never sent */
  seq = 1;
  cr_assert_eq(ex_outbox_settle(db, &seq, 1, NULL, 0, now - 5000), SQLITE_OK);
  seq = 2;
  cr_assert_eq(ex_outbox_settle(db, &seq, 1, NULL, 0, now - 10), SQLITE_OK);
  cr_assert_eq(ex_inbox_claim(db, "old", now - 5000), 1);
  cr_assert_eq(ex_inbox_claim(db, "new", now - 10), 1);
  cr_assert_eq(ex_outbox_prune(db, now, 1000, 100, &deleted), SQLITE_OK);
  cr_assert_eq(deleted, 2);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox WHERE seq = 1"), 0);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox"), 2);
  cr_assert_eq(ex_outbox_pending(db), 1);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM inbox"), 1);
  cr_assert_eq(ex_inbox_claim(db, "new", now), 0, "a recent id was forgotten");
  /* the bound per call: one row of each table at a time */
  cr_assert_eq(ex_outbox_prune(db, now + 1000000, 1000, 1, &deleted), SQLITE_OK);
  cr_assert_eq(deleted, 2);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox"), 1, "the pending row went");
  ex_db_set_close(w.dbs);
  unlink(w.path);
}

/* The relay prunes by itself: a row sent before the retention is gone
 * after its next pass. */
Test(outbox, relay_prunes_sent_rows, .timeout = 20) {
  world_t w = {0};
  ex_relay_opts_t o;
  ex_relay_t *r;
  ex_relay_stats_t st = {0};
  char id[MSVC_EVENTS_ID_MAX + 1];

  world_db(&w, "relayprune");
  world_broker(&w, true);
  add_thing(w.dbs, "a", true, id);
  ex_relay_opts_init(&o);
  o.poll_ms = 20;
  o.retain_ms = 0; /* anything sent is past it */
  o.prune_every_ms = 20;
  cr_assert_eq(ex_relay_new(&w.loop, w.ev, w.dbs, w.pool, &o, &r), 0);
  for (int i = 0; i < 400 && st.pruned == 0; i++) {
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
    ex_relay_stats(r, &st);
  }
  cr_assert_eq(st.published, 1);
  cr_assert_eq(st.pruned, 1);
  cr_assert_eq(count(w.dbs, "SELECT count(*) FROM outbox"), 0);
  relay_stop(&w, r);
  world_close(&w);
}

Test(outbox, refused_event_is_not_stored) {
  world_t w = {0};
  msvc_event_t ev;
  sqlite3 *db;

  world_db(&w, "bad");
  db = ex_db_set_get(w.dbs);
  memset(&ev, 0, sizeof(ev));
  ev.type = "thing.created";
  ev.data = "{not json";
  ev.data_len = strlen(ev.data);
  cr_assert_eq(ex_outbox_add(db, &ev, 1, NULL), SQLITE_MISUSE);
  cr_assert_eq(ex_outbox_pending(db), 0);
  ex_db_set_close(w.dbs);
  unlink(w.path);
}
