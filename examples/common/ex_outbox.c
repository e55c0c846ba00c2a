/* The SQLite outbox, inbox and relay (see ex_outbox.h). */
#include "ex_outbox.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>

#define LOG "outbox"

int64_t ex_outbox_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Headers as a JSON object text ({"name":"value",...}), or NULL for none. */
static char *headers_json(const msvc_events_header_t *h, size_t n, int *rc) {
  cJSON *obj;
  char *text;
  size_t i;

  *rc = SQLITE_OK;
  if (n == 0)
    return NULL;
  obj = cJSON_CreateObject();
  for (i = 0; obj != NULL && i < n; i++)
    if (cJSON_AddStringToObject(obj, h[i].name, h[i].value) == NULL)
      break;
  text = obj != NULL && i == n ? cJSON_PrintUnformatted(obj) : NULL;
  cJSON_Delete(obj);
  if (text == NULL)
    *rc = SQLITE_NOMEM;
  return text;
}

int ex_outbox_add(sqlite3 *db, const msvc_event_t *event, int64_t now_ms, char *id_out) {
  static const char sql[] =
      "INSERT INTO outbox (event_id, subject, envelope, headers, created_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5)";
  msvc_event_t ev = *event;
  char id[MSVC_EVENTS_ID_MAX + 1], *envelope = NULL, *headers;
  sqlite3_stmt *st = NULL;
  size_t len = 0;
  int rc;

  /* The id is chosen here, once, and travels inside the stored envelope:
   * every publish of this row, however late, carries it. */
  if (ev.id == NULL) {
    msvc_events_id_generate(id);
    ev.id = id;
  }
  rc = msvc_events_envelope_build(&ev, &envelope, &len);
  if (rc != MSVC_OK)
    return rc == MSVC_ENOMEM ? SQLITE_NOMEM : SQLITE_MISUSE;
  headers = headers_json(ev.headers, ev.header_count, &rc);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, ev.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev.subject != NULL ? ev.subject : ev.type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, envelope, (int)len, SQLITE_STATIC);
    if (headers != NULL)
      sqlite3_bind_text(st, 4, headers, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db) & 0xff;
  }
  if (rc == SQLITE_OK && id_out != NULL)
    snprintf(id_out, MSVC_EVENTS_ID_MAX + 1, "%s", ev.id);
  sqlite3_finalize(st);
  cJSON_free(headers);
  msvc_free(envelope);
  return rc;
}

static void row_clear(ex_outbox_row_t *r) {
  size_t i;

  free(r->subject);
  free(r->envelope);
  for (i = 0; i < r->nheaders; i++) {
    free((char *)r->headers[i].name);
    free((char *)r->headers[i].value);
  }
  free(r->headers);
}

void ex_outbox_batch_free(ex_outbox_batch_t *b) {
  size_t i;

  if (b == NULL)
    return;
  for (i = 0; i < b->n; i++)
    row_clear(&b->rows[i]);
  free(b);
}

static bool row_headers(ex_outbox_row_t *r, const char *text) {
  cJSON *obj, *it;
  size_t n = 0;

  if (text == NULL)
    return true;
  obj = cJSON_Parse(text);
  if (obj == NULL)
    return false;
  r->headers = calloc((size_t)cJSON_GetArraySize(obj) + 1, sizeof(*r->headers));
  cJSON_ArrayForEach(it, obj) {
    if (r->headers == NULL || !cJSON_IsString(it))
      break;
    r->headers[n].name = strdup(it->string);
    r->headers[n].value = strdup(it->valuestring);
    r->nheaders = ++n;
    if (r->headers[n - 1].name == NULL || r->headers[n - 1].value == NULL)
      break;
  }
  n = (size_t)cJSON_GetArraySize(obj);
  cJSON_Delete(obj);
  return r->headers != NULL && r->nheaders == n &&
         (n == 0 || (r->headers[n - 1].name != NULL && r->headers[n - 1].value != NULL));
}

static bool row_read(sqlite3_stmt *st, ex_outbox_row_t *r) {
  const char *subject = (const char *)sqlite3_column_text(st, 1);
  const char *envelope = (const char *)sqlite3_column_text(st, 2);

  memset(r, 0, sizeof(*r));
  r->seq = sqlite3_column_int64(st, 0);
  r->envelope_len = (size_t)sqlite3_column_bytes(st, 2);
  r->subject = strdup(subject != NULL ? subject : "");
  r->envelope = malloc(r->envelope_len + 1);
  if (r->envelope != NULL) {
    memcpy(r->envelope, envelope != NULL ? envelope : "", r->envelope_len);
    r->envelope[r->envelope_len] = '\0';
  }
  return r->subject != NULL && r->envelope != NULL &&
         row_headers(r, (const char *)sqlite3_column_text(st, 3));
}

static int claim_rows(sqlite3 *db, int64_t now_ms, int64_t lease_ms, size_t max,
                      ex_outbox_batch_t *b) {
  static const char pick[] =
      "SELECT seq, subject, envelope, headers FROM outbox WHERE sent_at IS NULL "
      "AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY seq LIMIT ?2";
  static const char lease[] = "UPDATE outbox SET lease_until = ?1 WHERE seq = ?2";
  sqlite3_stmt *st = NULL;
  size_t i;
  int rc = sqlite3_prepare_v2(db, pick, -1, &st, NULL);

  if (rc != SQLITE_OK)
    return rc;
  sqlite3_bind_int64(st, 1, now_ms);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
  while (b->n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    bool ok = row_read(st, &b->rows[b->n]);

    b->n++;
    if (!ok) {
      rc = SQLITE_NOMEM;
      break;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return rc;
  rc = sqlite3_prepare_v2(db, lease, -1, &st, NULL);
  for (i = 0; rc == SQLITE_OK && i < b->n; i++) {
    sqlite3_bind_int64(st, 1, now_ms + lease_ms);
    sqlite3_bind_int64(st, 2, b->rows[i].seq);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

int ex_outbox_claim(sqlite3 *db, int64_t now_ms, int64_t lease_ms, size_t max,
                    ex_outbox_batch_t **out) {
  ex_outbox_batch_t *b;
  int rc;

  *out = NULL;
  /* A read first: an idle relay must not take the write lock every poll. */
  if (ex_outbox_pending(db) == 0)
    return SQLITE_OK;
  b = calloc(1, sizeof(*b) + max * sizeof(b->rows[0]));
  if (b == NULL)
    return SQLITE_NOMEM;
  rc = ex_db_begin_write(db);
  if (rc == SQLITE_OK)
    rc = ex_db_finish(db, claim_rows(db, now_ms, lease_ms, max, b));
  if (rc != SQLITE_OK || b->n == 0) {
    ex_outbox_batch_free(b);
    return rc;
  }
  *out = b;
  return SQLITE_OK;
}

static int update_each(sqlite3 *db, const char *sql, const int64_t *seqs, size_t n,
                       int64_t now_ms) {
  sqlite3_stmt *st = NULL;
  size_t i;
  int rc;

  if (n == 0)
    return SQLITE_OK;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  for (i = 0; rc == SQLITE_OK && i < n; i++) {
    sqlite3_bind_int64(st, 1, seqs[i]);
    if (sqlite3_bind_parameter_count(st) > 1)
      sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return rc;
}

int ex_outbox_settle(sqlite3 *db, const int64_t *sent, size_t nsent, const int64_t *failed,
                     size_t nfailed, int64_t now_ms) {
  /* COALESCE: a row another relay marked first keeps its first time. */
  static const char mark[] = "UPDATE outbox SET sent_at = COALESCE(sent_at, ?2), "
                             "lease_until = NULL WHERE seq = ?1";
  static const char release[] = "UPDATE outbox SET lease_until = NULL "
                                "WHERE seq = ?1 AND sent_at IS NULL";
  int rc = ex_db_begin_write(db);

  if (rc != SQLITE_OK)
    return rc;
  rc = update_each(db, mark, sent, nsent, now_ms);
  if (rc == SQLITE_OK)
    rc = update_each(db, release, failed, nfailed, now_ms);
  return ex_db_finish(db, rc);
}

int64_t ex_outbox_pending(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int64_t n = -1;

  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", -1, &st,
                         NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

int ex_inbox_claim(sqlite3 *db, const char *event_id, int64_t now_ms) {
  static const char sql[] =
      "INSERT OR IGNORE INTO inbox (event_id, processed_at) VALUES (?1, ?2)";
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now_ms);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return -1;
  return sqlite3_changes(db) == 1 ? 1 : 0;
}

static int delete_old(sqlite3 *db, const char *sql, int64_t before, size_t max, int64_t *n) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
  }
  sqlite3_finalize(st);
  if (rc == SQLITE_OK)
    *n += sqlite3_changes(db);
  return rc;
}

int ex_outbox_prune(sqlite3 *db, int64_t now_ms, int64_t keep_ms, size_t max, int64_t *deleted) {
  /* Bounded per call, so that the write lock is held briefly even when a
   * long-idle database has much to delete; the relay calls again soon. */
  static const char outbox[] = "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                               "WHERE sent_at IS NOT NULL AND sent_at < ?1 LIMIT ?2)";
  static const char inbox[] = "DELETE FROM inbox WHERE event_id IN (SELECT event_id FROM "
                              "inbox WHERE processed_at < ?1 LIMIT ?2)";
  int64_t n = 0;
  int rc = ex_db_begin_write(db);

  if (rc == SQLITE_OK)
    rc = delete_old(db, outbox, now_ms - keep_ms, max, &n);
  if (rc == SQLITE_OK)
    rc = delete_old(db, inbox, now_ms - keep_ms, max, &n);
  rc = ex_db_finish(db, rc);
  if (deleted != NULL)
    *deleted = rc == SQLITE_OK ? n : 0;
  return rc;
}

/* ---- relay ---------------------------------------------------------------- */

/*
 * One batch at a time: claim (pool) -> publish every row (loop) -> settle
 * (pool) -> next. A relay never holds more than one batch, so a broker
 * outage costs one batch's publishes per backoff period, not a flood.
 */
struct ex_relay_s {
  uv_loop_t *loop;
  msvc_events_t *ev;
  ex_db_set_t *dbs;
  msvc_work_t *pool;
  ex_relay_opts_t opts;
  uv_timer_t timer;
  uv_async_t async;
  bool busy;      /* a batch is in flight */
  bool again;     /* kicked while busy */
  bool closing;
  int open_handles;
  uint32_t backoff_ms;
  void (*close_cb)(void *data);
  void *close_data;
  /* the batch in flight */
  ex_outbox_batch_t *batch;
  size_t outstanding;
  int64_t *sent, *failed;
  size_t nsent, nfailed;
  int job_rc;
  int first_err; /* of the batch's failed publishes, for one log line */
  int64_t next_prune_ms; /* wall clock; read and written by claim jobs only */
  int64_t pruned;        /* by the last claim job */
  ex_relay_stats_t stats;
};

void ex_relay_opts_init(ex_relay_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->batch = 64;
  o->poll_ms = 500;
  o->lease_ms = 10000;
  o->backoff_max_ms = 2000;
  o->retain_ms = EX_OUTBOX_RETAIN_MS;
  o->prune_every_ms = 60000;
}

static void relay_step(ex_relay_t *r);

static void maybe_closed(ex_relay_t *r) {
  if (r->closing && !r->busy && r->open_handles == 0) {
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;

    free(r);
    if (cb != NULL)
      cb(data);
  }
}

static bool live(const ex_relay_t *r) {
  return !r->closing && (r->opts.live == NULL || r->opts.live(r->opts.live_data));
}

static void on_timer(uv_timer_t *t) {
  relay_step(t->data);
}

static void on_async(uv_async_t *a) {
  ex_relay_t *r = a->data;

  if (r->busy)
    r->again = true;
  else if (r->backoff_ms == 0)
    relay_step(r);
}

/* Schedules the next pass: at once after a full batch or a kick, after the
 * backoff after a failure, else at the next poll. */
static void batch_over(ex_relay_t *r, bool full) {
  uint64_t next;

  ex_outbox_batch_free(r->batch);
  free(r->sent);
  free(r->failed);
  r->batch = NULL;
  r->sent = r->failed = NULL;
  r->busy = false;
  if (r->closing) {
    maybe_closed(r);
    return;
  }
  if (r->nfailed > 0 || r->job_rc != SQLITE_OK) {
    r->backoff_ms = r->backoff_ms == 0 ? 100 : r->backoff_ms * 2;
    if (r->backoff_ms > r->opts.backoff_max_ms)
      r->backoff_ms = r->opts.backoff_max_ms;
    next = r->backoff_ms;
    /* One line per batch, and none while the owner is closing: an outage
     * must not flood the log. */
    if (r->nfailed > 0 && r->first_err != MSVC_ECLOSED)
      MSVC_LOG_W(LOG, "%zu event(s) not published (%s); kept, next try in %u ms", r->nfailed,
                 msvc_strerror(r->first_err), r->backoff_ms);
  } else {
    r->backoff_ms = 0;
    next = full || r->again ? 0 : r->opts.poll_ms;
  }
  r->again = false;
  uv_timer_start(&r->timer, on_timer, next, 0);
}

static void settle_work(void *data) {
  ex_relay_t *r = data;
  sqlite3 *db = ex_db_set_get(r->dbs);

  r->job_rc = db == NULL ? SQLITE_CANTOPEN
                         : ex_outbox_settle(db, r->sent, r->nsent, r->failed, r->nfailed,
                                            ex_outbox_now_ms());
}

static void settle_done(void *data, int status) {
  ex_relay_t *r = data;
  bool full = r->batch != NULL && r->batch->n == r->opts.batch;

  if (status != MSVC_OK)
    r->job_rc = SQLITE_ABORT; /* the leases run out; the rows are retried */
  else if (r->job_rc != SQLITE_OK)
    MSVC_LOG_W(LOG, "cannot mark published events: %s", sqlite3_errstr(r->job_rc));
  batch_over(r, full);
}

static void settle(ex_relay_t *r) {
  int rc = msvc_work_submit(r->pool, settle_work, settle_done, r, NULL);

  if (rc != MSVC_OK) {
    r->job_rc = SQLITE_ABORT;
    batch_over(r, false);
  }
}

/* The publish callback gets the row's seq through a pointer into the
 * batch; the relay is found through the batch's owner. */
typedef struct slot_s {
  ex_relay_t *r;
  int64_t seq;
} slot_t;

static void on_published(int status, const char *event_id, void *data) {
  slot_t *s = data;
  ex_relay_t *r = s->r;

  if (status == MSVC_OK) {
    r->sent[r->nsent++] = s->seq;
    r->stats.published++;
  } else {
    if (r->nfailed++ == 0)
      r->first_err = status;
    r->failed[r->nfailed - 1] = s->seq;
    r->stats.failed++;
  }
  (void)event_id;
  free(s);
  if (--r->outstanding == 0)
    settle(r);
}

static void publish_batch(ex_relay_t *r) {
  size_t i;

  r->sent = calloc(r->batch->n, sizeof(int64_t));
  r->failed = calloc(r->batch->n, sizeof(int64_t));
  if (r->sent == NULL || r->failed == NULL) {
    r->job_rc = SQLITE_NOMEM;
    batch_over(r, false);
    return;
  }
  r->stats.batches++;
  r->outstanding = 1; /* held until every publish is issued */
  for (i = 0; i < r->batch->n; i++) {
    ex_outbox_row_t *row = &r->batch->rows[i];
    slot_t *s = malloc(sizeof(*s));
    int rc = s == NULL ? MSVC_ENOMEM : MSVC_OK;

    if (s != NULL) {
      s->r = r;
      s->seq = row->seq;
      r->outstanding++;
      rc = msvc_events_publish_envelope(r->ev, row->subject, row->envelope, row->envelope_len,
                                        row->headers, row->nheaders, on_published, s);
      if (rc != MSVC_OK) {
        r->outstanding--;
        free(s);
      }
    }
    if (rc != MSVC_OK) {
      if (r->nfailed++ == 0)
        r->first_err = rc;
      r->failed[r->nfailed - 1] = row->seq;
      r->stats.failed++;
    }
  }
  if (--r->outstanding == 0)
    settle(r);
}

#define PRUNE_MAX 1000

/* Claim jobs run one at a time (busy), so the prune schedule needs no lock. */
static void prune(ex_relay_t *r, sqlite3 *db, int64_t now) {
  int64_t n = 0;

  r->pruned = 0;
  if (r->opts.retain_ms < 0 || now < r->next_prune_ms)
    return;
  if (ex_outbox_prune(db, now, r->opts.retain_ms, PRUNE_MAX, &n) != SQLITE_OK)
    n = 0; /* busy or failing: next time */
  r->pruned = n;
  /* A full round means more is waiting: go on at the next claim. */
  r->next_prune_ms = n >= PRUNE_MAX ? now : now + r->opts.prune_every_ms;
}

static void claim_work(void *data) {
  ex_relay_t *r = data;
  sqlite3 *db = ex_db_set_get(r->dbs);
  int64_t now = ex_outbox_now_ms();

  if (db != NULL)
    prune(r, db, now);
  r->job_rc = db == NULL ? SQLITE_CANTOPEN
                         : ex_outbox_claim(db, now, r->opts.lease_ms, r->opts.batch, &r->batch);
}

static void claim_done(void *data, int status) {
  ex_relay_t *r = data;

  if (status == MSVC_OK)
    r->stats.pruned += (uint64_t)r->pruned;
  if (status != MSVC_OK) {
    r->job_rc = SQLITE_ABORT;
  } else if (r->job_rc != SQLITE_OK) {
    MSVC_LOG_W(LOG, "cannot read the outbox: %s", sqlite3_errstr(r->job_rc));
  } else if (r->batch != NULL && live(r)) {
    publish_batch(r);
    return;
  }
  /* Claimed but not publishable now (closing): the leases run out and
   * whoever runs next publishes them. */
  batch_over(r, false);
}

static void relay_step(ex_relay_t *r) {
  if (r->busy) {
    r->again = true;
    return;
  }
  if (!live(r)) {
    if (!r->closing)
      uv_timer_start(&r->timer, on_timer, r->opts.poll_ms, 0);
    return;
  }
  r->busy = true;
  r->nsent = r->nfailed = 0;
  r->job_rc = SQLITE_OK;
  if (msvc_work_submit(r->pool, claim_work, claim_done, r, NULL) != MSVC_OK) {
    r->job_rc = SQLITE_BUSY; /* queue full: back off */
    batch_over(r, false);
  }
}

int ex_relay_new(uv_loop_t *loop, msvc_events_t *ev, ex_db_set_t *dbs, msvc_work_t *pool,
                 const ex_relay_opts_t *opts, ex_relay_t **out) {
  ex_relay_t *r = calloc(1, sizeof(*r));
  int rc;

  *out = NULL;
  if (r == NULL)
    return MSVC_ENOMEM;
  r->loop = loop;
  r->ev = ev;
  r->dbs = dbs;
  r->pool = pool;
  if (opts != NULL)
    r->opts = *opts;
  else
    ex_relay_opts_init(&r->opts);
  if (r->opts.batch == 0)
    r->opts.batch = 64;
  if (r->opts.prune_every_ms == 0)
    r->opts.prune_every_ms = 60000;
  rc = uv_async_init(loop, &r->async, on_async);
  if (rc != 0) {
    free(r);
    return rc;
  }
  uv_timer_init(loop, &r->timer);
  r->async.data = r->timer.data = r;
  r->open_handles = 2;
  uv_timer_start(&r->timer, on_timer, 0, 0);
  *out = r;
  return 0;
}

void ex_relay_kick(ex_relay_t *r) {
  if (r != NULL)
    uv_async_send(&r->async);
}

void ex_relay_stats(const ex_relay_t *r, ex_relay_stats_t *out) {
  *out = r->stats;
}

static void on_handle_closed(uv_handle_t *h) {
  ex_relay_t *r = h->data;

  r->open_handles--;
  maybe_closed(r);
}

void ex_relay_close(ex_relay_t *r, void (*cb)(void *data), void *data) {
  if (r == NULL || r->closing)
    return;
  r->closing = true;
  r->close_cb = cb;
  r->close_data = data;
  uv_close((uv_handle_t *)&r->timer, on_handle_closed);
  uv_close((uv_handle_t *)&r->async, on_handle_closed);
}
