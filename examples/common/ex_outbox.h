/*
 * A transactional outbox and inbox on SQLite, for services that publish
 * events about rows they write and consume events of other services.
 *
 * Outbox: a service writes its row and the event that announces it in one
 * transaction (ex_outbox_add() inside the caller's BEGIN ... COMMIT), so an
 * event exists exactly when its row does. The event is stored as its final
 * CloudEvents envelope, with its id, before anything is published. A relay
 * (ex_relay_t) then publishes pending rows and marks each one sent only once
 * the broker has acknowledged it. A crash anywhere leaves the row pending
 * and it is published again later with the same envelope, hence the same
 * id: the broker's duplicate window and the consumers' inboxes absorb the
 * repeat, and nothing is lost.
 *
 * Inbox: the ids of the events a service has already applied, written in
 * the transaction that applies one (ex_inbox_claim()), so that a redelivery
 * has no second effect.
 *
 * Several instances share one database: a relay claims a batch of rows for
 * a lease before publishing them, so two relays rarely publish the same row
 * (and when a lease runs out during a slow publish, the repeat carries the
 * same id).
 */
#ifndef EX_OUTBOX_H
#define EX_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/events.h>
#include <msvc/work.h>
#include <sqlite3.h>
#include <uv.h>

#include "ex_db.h"

/* Tables of the outbox and the inbox; append to a service's schema. */
#define EX_OUTBOX_SCHEMA                                                                 \
  "CREATE TABLE IF NOT EXISTS outbox ("                                                  \
  "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"                                             \
  "  event_id TEXT NOT NULL UNIQUE,"                                                     \
  "  subject TEXT NOT NULL,"                                                             \
  "  envelope TEXT NOT NULL,"                                                            \
  "  headers TEXT,"                                                                      \
  "  created_at INTEGER NOT NULL,"                                                       \
  "  lease_until INTEGER,"                                                               \
  "  sent_at INTEGER);"                                                                  \
  "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sent_at, seq);"                 \
  "CREATE TABLE IF NOT EXISTS inbox ("                                                   \
  "  event_id TEXT PRIMARY KEY,"                                                         \
  "  processed_at INTEGER NOT NULL);"                                                    \
  "CREATE INDEX IF NOT EXISTS inbox_age ON inbox (processed_at);"

/* Milliseconds since the Unix epoch (wall clock: leases are shared by
 * processes). */
int64_t ex_outbox_now_ms(void);

/*
 * Adds an event to the outbox. Call inside the caller's write transaction,
 * next to the row the event is about. event->id NULL gets a fresh id; the
 * id is written to id_out (MSVC_EVENTS_ID_MAX + 1 bytes) when not NULL.
 * SQLITE_OK, SQLITE_CONSTRAINT for an id already stored, SQLITE_MISUSE for
 * an event the envelope builder refuses, SQLITE_NOMEM, or SQLite's code.
 */
int ex_outbox_add(sqlite3 *db, const msvc_event_t *event, int64_t now_ms, char *id_out);

/* One claimed outbox row. */
typedef struct ex_outbox_row_s {
  int64_t seq;
  char *subject;
  char *envelope;
  size_t envelope_len;
  msvc_events_header_t *headers; /* names and values owned by the row */
  size_t nheaders;
} ex_outbox_row_t;

/* A batch of claimed rows; free with ex_outbox_batch_free(). */
typedef struct ex_outbox_batch_s {
  size_t n;
  ex_outbox_row_t rows[];
} ex_outbox_batch_t;

void ex_outbox_batch_free(ex_outbox_batch_t *b);

/*
 * Claims up to max pending rows whose lease has run out (oldest first) for
 * lease_ms, in one write transaction. *out is NULL when none is pending.
 * SQLITE_OK or SQLite's code (nothing claimed).
 */
int ex_outbox_claim(sqlite3 *db, int64_t now_ms, int64_t lease_ms, size_t max,
                    ex_outbox_batch_t **out);

/*
 * Records the outcome of a batch in one transaction: rows in sent are
 * marked sent (again harmlessly, when another relay did it first); rows in
 * failed lose their lease so that the next claim retries them. SQLITE_OK or
 * SQLite's code.
 */
int ex_outbox_settle(sqlite3 *db, const int64_t *sent, size_t nsent, const int64_t *failed,
                     size_t nfailed, int64_t now_ms);

/* Number of rows not yet sent, or -1 on error. */
int64_t ex_outbox_pending(sqlite3 *db);

/*
 * Records that event_id is being applied, inside the caller's write
 * transaction: 1 when it is new (apply it), 0 when it was applied before
 * (do nothing), -1 on error.
 */
int ex_inbox_claim(sqlite3 *db, const char *event_id, int64_t now_ms);

/*
 * Retention. Neither table may grow without bound, so rows that served
 * their purpose go after keep_ms: outbox rows sent before now - keep_ms
 * (a sent row is never read again; it stays a while for inspection) and
 * inbox ids processed before now - keep_ms. An inbox id must outlive every
 * redelivery of its event: keep_ms must exceed the longest time an event
 * can still arrive (the consumer's deliveries x ack wait and backoff, and a
 * producer's outbox retries, which the broker's duplicate window absorbs
 * only for its own length). The relay prunes with the default below.
 */
#define EX_OUTBOX_RETAIN_MS (7 * 24 * 3600 * INT64_C(1000))

/*
 * Deletes at most max rows of each table that are past keep_ms, in one
 * short write transaction; *deleted (may be NULL) gets the number of rows
 * deleted in all. SQLITE_OK or SQLite's code (nothing deleted).
 */
int ex_outbox_prune(sqlite3 *db, int64_t now_ms, int64_t keep_ms, size_t max, int64_t *deleted);

/* ---- relay ---------------------------------------------------------------- */

typedef struct ex_relay_s ex_relay_t;

/* May the relay use the events handle now? (false once its owner has begun
 * to close it). */
typedef bool (*ex_relay_live_fn)(void *data);

typedef struct ex_relay_opts_s {
  size_t batch;           /* rows claimed at once; default 64 */
  uint32_t poll_ms;       /* look for rows of other writers; default 500 */
  uint32_t lease_ms;      /* claim of a batch; default 10000 */
  uint32_t backoff_max_ms; /* longest pause after a failed publish; default 2000 */
  int64_t retain_ms;      /* ex_outbox_prune()'s keep_ms; default EX_OUTBOX_RETAIN_MS,
                             negative: never prune */
  uint32_t prune_every_ms; /* how often; default 60000 */
  ex_relay_live_fn live;  /* NULL: always */
  void *live_data;
} ex_relay_opts_t;

void ex_relay_opts_init(ex_relay_opts_t *o);

/* Relay statistics, read on the loop thread. */
typedef struct ex_relay_stats_s {
  uint64_t published; /* acknowledged by the broker */
  uint64_t failed;    /* publishes to retry */
  uint64_t batches;
  uint64_t pruned;    /* outbox and inbox rows deleted after their retention */
} ex_relay_stats_t;

/*
 * Starts a relay on loop: publishes the pending rows of the database of
 * dbs through ev, its database work on pool. ev, dbs and pool are borrowed
 * and must outlive the relay. Returns 0, or a negative libuv/libmsvc code.
 * Loop thread only (except ex_relay_kick()).
 */
int ex_relay_new(uv_loop_t *loop, msvc_events_t *ev, ex_db_set_t *dbs, msvc_work_t *pool,
                 const ex_relay_opts_t *opts, ex_relay_t **out);

/* Asks for a pass now (after a commit that added events). Thread-safe. */
void ex_relay_kick(ex_relay_t *r);

void ex_relay_stats(const ex_relay_t *r, ex_relay_stats_t *out);

/* Stops the relay; cb runs once its handles are closed and its last batch
 * is over (rows in flight stay pending or are marked sent as acknowledged).
 * NULL is a no-op. */
void ex_relay_close(ex_relay_t *r, void (*cb)(void *data), void *data);

#endif /* EX_OUTBOX_H */
