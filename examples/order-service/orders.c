/* The order store (see orders.h). */
#include "orders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

#include "ex.h"
#include "order.h"
#ifdef EX_HAVE_EVENTS
#include "ex_outbox.h"
#endif

struct orders_s {
  /* A connection per thread: the loop's reads never wait behind a worker
   * thread's write (see ex_db.h). */
  ex_db_set_t *dbs;
};

/* Items are kept as the JSON array the API returns: an order is written
 * once and always read whole, so a table of lines would buy nothing.
 * idem_key is the client's Idempotency-Key, unique per user (see
 * add_idempotency()); the items text doubles as the request's fingerprint,
 * since the items are the whole body, in one canonical form. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS orders ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL,"
    "  items TEXT NOT NULL,"
    "  total_cents INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  idem_key TEXT,"
    "  reason TEXT);"
    "CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);"
#ifdef EX_HAVE_EVENTS
    EX_OUTBOX_SCHEMA
#endif
    ;

/* A database made before idempotency keys lacks the column: add it, in a
 * write transaction so that two instances starting at once take turns. */
static int add_idempotency(sqlite3 *db) {
  static const char has[] =
      "SELECT 1 FROM pragma_table_info('orders') WHERE name = 'idem_key'";
  static const char index[] =
      "CREATE UNIQUE INDEX IF NOT EXISTS orders_by_key ON orders (user_id, idem_key) "
      "WHERE idem_key IS NOT NULL";
  sqlite3_stmt *st = NULL;
  int rc = ex_db_begin_write(db);

  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_prepare_v2(db, has, -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_DONE)
    rc = sqlite3_exec(db, "ALTER TABLE orders ADD COLUMN idem_key TEXT", NULL, NULL, NULL);
  else if (rc == SQLITE_ROW)
    rc = SQLITE_OK;
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, index, NULL, NULL, NULL);
  return ex_db_finish(db, rc);
}

/* A database made before the order saga lacks the reason column. */
static int add_reason(sqlite3 *db) {
  static const char has[] =
      "SELECT 1 FROM pragma_table_info('orders') WHERE name = 'reason'";
  sqlite3_stmt *st = NULL;
  int rc = ex_db_begin_write(db);

  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_prepare_v2(db, has, -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_DONE)
    rc = sqlite3_exec(db, "ALTER TABLE orders ADD COLUMN reason TEXT", NULL, NULL, NULL);
  else if (rc == SQLITE_ROW)
    rc = SQLITE_OK;
  return ex_db_finish(db, rc);
}

#define COLUMNS "id, user_id, items, total_cents, status, created_at, reason"

int orders_open(const char *path, orders_t **out, char *err, size_t errlen) {
  orders_t *o = calloc(1, sizeof(*o));
  int rc;

  *out = NULL;
  if (o == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return SQLITE_NOMEM;
  }
  rc = ex_db_set_open(path, schema, &o->dbs, err, errlen);
  if (rc != SQLITE_OK) {
    free(o);
    return rc;
  }
  rc = add_idempotency(ex_db_set_get(o->dbs));
  if (rc == SQLITE_OK)
    rc = add_reason(ex_db_set_get(o->dbs));
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "%s: cannot add idempotency keys: %s", path, sqlite3_errstr(rc));
    ex_db_set_close(o->dbs);
    free(o);
    return rc;
  }
  *out = o;
  return SQLITE_OK;
}

ex_db_set_t *orders_db(orders_t *o) {
  return o->dbs;
}

void orders_close(orders_t *o) {
  if (o == NULL)
    return;
  ex_db_set_close(o->dbs);
  free(o);
}

static ex_store_rc_t failed(sqlite3 *db, const char *what, int rc) {
  MSVC_LOG_E("order-service", "database: %s: %s (%d)", what,
             db != NULL ? sqlite3_errmsg(db) : "no connection", rc);
  return EX_STORE_ERROR;
}

/* The API's JSON of the current row, or NULL (no memory, or items that
 * are not JSON: the row was not written by this service). */
static cJSON *row_json(sqlite3_stmt *st) {
  const char *items = (const char *)sqlite3_column_text(st, 2);
  const char *status = (const char *)sqlite3_column_text(st, 4);
  const char *reason = (const char *)sqlite3_column_text(st, 6);
  cJSON *doc = cJSON_CreateObject(), *parsed = cJSON_Parse(items != NULL ? items : "");
  char when[32];

  ex_rfc3339(sqlite3_column_int64(st, 5), when);
  if (doc == NULL || parsed == NULL || !ex_json_add_int(doc, "id", sqlite3_column_int64(st, 0)) ||
      !ex_json_add_int(doc, "user_id", sqlite3_column_int64(st, 1)) ||
      !cJSON_AddItemToObject(doc, "items", parsed)) {
    cJSON_Delete(parsed);
    cJSON_Delete(doc);
    return NULL;
  }
  if (!ex_json_add_int(doc, "total_cents", sqlite3_column_int64(st, 3)) ||
      cJSON_AddStringToObject(doc, "status", status != NULL ? status : "") == NULL ||
      cJSON_AddStringToObject(doc, "created_at", when) == NULL ||
      (reason != NULL && cJSON_AddStringToObject(doc, "reason", reason) == NULL)) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

/* Steps a statement expected to return one row and converts it. */
static ex_store_rc_t one_row(sqlite3 *db, sqlite3_stmt *st, const char *what,
                             cJSON **out) {
  int rc = sqlite3_step(st);

  if (rc == SQLITE_DONE)
    return EX_STORE_NOT_FOUND;
  if (rc == SQLITE_CONSTRAINT)
    return EX_STORE_CONFLICT; /* the only unique key is (user_id, idem_key) */
  if (rc != SQLITE_ROW)
    return failed(db, what, rc);
  *out = row_json(st);
  if (*out == NULL) {
    MSVC_LOG_E("order-service", "%s: cannot render the order", what);
    return EX_STORE_ERROR;
  }
  return EX_STORE_OK;
}

/* Inserts the order with status; on EX_STORE_OK *out holds it and, when
 * called inside a transaction, the insert is part of it. */
static ex_store_rc_t insert_order(orders_t *o, sqlite3 *db, int64_t user_id,
                                  const char *items, int64_t total_cents, int64_t now,
                                  const char *idem_key, const char *status, cJSON **out) {
  static const char sql[] =
      "INSERT INTO orders (user_id, items, total_cents, status, created_at, idem_key) "
      "VALUES (?1, ?2, ?3, ?6, ?4, ?5) RETURNING " COLUMNS;
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  int rc;

  (void)o;
  *out = NULL;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 6, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_text(st, 2, items, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, total_cents);
    sqlite3_bind_int64(st, 4, now);
    if (idem_key != NULL)
      sqlite3_bind_text(st, 5, idem_key, -1, SQLITE_STATIC);
    result = one_row(db, st, "insert order", out);
    /* Running the statement to its end commits the insert. */
    if (result == EX_STORE_OK && (rc = sqlite3_step(st)) != SQLITE_DONE) {
      cJSON_Delete(*out);
      *out = NULL;
      result = failed(db, "insert order", rc);
    } else if (result == EX_STORE_NOT_FOUND) {
      result = failed(db, "insert order", SQLITE_DONE);
    }
  } else {
    result = failed(db, "prepare order insert", rc);
  }
  sqlite3_finalize(st);
  return result;
}

ex_store_rc_t orders_create(orders_t *o, int64_t user_id, const char *items,
                            int64_t total_cents, int64_t now, const char *idem_key,
                            cJSON **out) {
  sqlite3 *db = ex_db_set_get(o->dbs);

  *out = NULL;
  if (db == NULL)
    return EX_STORE_ERROR;
  return insert_order(o, db, user_id, items, total_cents, now, idem_key,
                      ORDER_STATUS_CREATED, out);
}


ex_store_rc_t orders_find_key(orders_t *o, int64_t user_id, const char *idem_key,
                              const char *items, bool *same, cJSON **out) {
  static const char sql[] = "SELECT " COLUMNS ", items = ?3 FROM orders "
                            "WHERE user_id = ?1 AND idem_key = ?2";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  sqlite3 *db;
  int rc;

  *out = NULL;
  *same = false;
  if ((db = ex_db_set_get(o->dbs)) == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_text(st, 2, idem_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, items, -1, SQLITE_STATIC);
    result = one_row(db, st, "read order by idempotency key", out);
    if (result == EX_STORE_OK)
      *same = sqlite3_column_int(st, 7) != 0;
  } else {
    result = failed(db, "prepare idempotency key query", rc);
  }
  sqlite3_finalize(st);
  return result;
}

ex_store_rc_t orders_get(orders_t *o, int64_t id, int64_t user_id, cJSON **out) {
  static const char sql[] =
      "SELECT " COLUMNS " FROM orders WHERE id = ?1 AND user_id = ?2";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  sqlite3 *db;
  int rc;

  *out = NULL;
  if ((db = ex_db_set_get(o->dbs)) == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    result = one_row(db, st, "read order", out);
  } else {
    result = failed(db, "prepare order query", rc);
  }
  sqlite3_finalize(st);
  return result;
}

static ex_store_rc_t append_rows(sqlite3 *db, sqlite3_stmt *st, cJSON *orders) {
  int rc;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *item = row_json(st);

    if (item == NULL || !cJSON_AddItemToArray(orders, item)) {
      cJSON_Delete(item);
      MSVC_LOG_E("order-service", "list orders: cannot render an order");
      return EX_STORE_ERROR;
    }
  }
  return rc == SQLITE_DONE ? EX_STORE_OK : failed(db, "list orders", rc);
}

ex_store_rc_t orders_list(orders_t *o, int64_t user_id, cJSON *orders) {
  static const char sql[] =
      "SELECT " COLUMNS " FROM orders WHERE user_id = ?1 ORDER BY id DESC";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  sqlite3 *db;
  int rc;

  if ((db = ex_db_set_get(o->dbs)) == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, user_id);
    result = append_rows(db, st, orders);
  } else {
    result = failed(db, "prepare order list", rc);
  }
  sqlite3_finalize(st);
  return result;
}

#ifdef EX_HAVE_EVENTS
ex_store_rc_t orders_create_pending(orders_t *o, int64_t user_id, const char *items,
                                    int64_t total_cents, int64_t now, const char *idem_key,
                                    const msvc_events_header_t *headers, size_t nheaders,
                                    cJSON **out) {
  sqlite3 *db = ex_db_set_get(o->dbs);
  ex_store_rc_t result;
  msvc_event_t ev;
  char *data = NULL;
  int rc;

  *out = NULL;
  if (db == NULL)
    return EX_STORE_ERROR;
  if ((rc = ex_db_begin_write(db)) != SQLITE_OK)
    return failed(db, "begin order", rc);
  /* The order and the event that announces it commit together or not at
   * all: there is never an order without its event, nor the reverse. */
  result = insert_order(o, db, user_id, items, total_cents, now, idem_key,
                        ORDER_STATUS_PENDING, out);
  if (result == EX_STORE_OK) {
    data = cJSON_PrintUnformatted(*out);
    memset(&ev, 0, sizeof(ev));
    ev.type = "order.created";
    ev.data = data;
    ev.data_len = data != NULL ? strlen(data) : 0;
    ev.headers = headers;
    ev.header_count = nheaders;
    rc = data != NULL ? ex_outbox_add(db, &ev, now * 1000, NULL) : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
      result = failed(db, "add order.created to the outbox", rc);
  }
  rc = ex_db_finish(db, result == EX_STORE_OK ? SQLITE_OK : SQLITE_ABORT);
  if (result == EX_STORE_OK && rc != SQLITE_OK)
    result = failed(db, "commit order", rc);
  if (result != EX_STORE_OK) {
    cJSON_Delete(*out);
    *out = NULL;
  }
  cJSON_free(data);
  return result;
}

/* The status of order id in *status (a copy in buf), or EX_STORE_NOT_FOUND. */
static ex_store_rc_t read_status(sqlite3 *db, int64_t id, char *buf, size_t len) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT status FROM orders WHERE id = ?1", -1, &st, NULL);
  ex_store_rc_t result = EX_STORE_NOT_FOUND;

  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
      result = EX_STORE_OK;
    } else if (rc != SQLITE_DONE) {
      result = failed(db, "read order status", rc);
    }
  } else {
    result = failed(db, "prepare order status", rc);
  }
  sqlite3_finalize(st);
  return result;
}

static int set_status(sqlite3 *db, int64_t id, const char *status, const char *reason) {
  static const char sql[] = "UPDATE orders SET status = ?2, reason = ?3 WHERE id = ?1";
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    if (reason != NULL)
      sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
  }
  sqlite3_finalize(st);
  return rc;
}

orders_apply_t orders_apply_payment(orders_t *o, const char *event_id, int64_t order_id,
                                    const char *event_type, const char *reason,
                                    int64_t now_ms) {
  sqlite3 *db = ex_db_set_get(o->dbs);
  orders_apply_t out = ORDERS_APPLY_ERROR;
  const char *next = NULL;
  char status[32];
  int rc, fresh;

  if (db == NULL || ex_db_begin_write(db) != SQLITE_OK)
    return ORDERS_APPLY_ERROR;
  /* The inbox row and the status change commit together: a redelivered
   * event finds its id and changes nothing. */
  fresh = ex_inbox_claim(db, event_id, now_ms);
  if (fresh == 0) {
    out = ORDERS_APPLY_DUPLICATE;
  } else if (fresh == 1) {
    switch (read_status(db, order_id, status, sizeof(status))) {
    case EX_STORE_NOT_FOUND: out = ORDERS_APPLY_UNKNOWN; break;
    case EX_STORE_OK:
      switch (order_next_status(status, event_type, &next)) {
      case ORDER_STEP_MOVE:
        out = set_status(db, order_id, next, reason) == SQLITE_OK ? ORDERS_APPLY_MOVED
                                                                  : ORDERS_APPLY_ERROR;
        break;
      case ORDER_STEP_SETTLED: out = ORDERS_APPLY_SETTLED; break;
      default: out = ORDERS_APPLY_INVALID; break;
      }
      break;
    default: break;
    }
  }
  /* An event that cannot be applied leaves no inbox row: it is dead-lettered,
   * and replaying it later (after a fix) must still work. */
  rc = ex_db_finish(db, out == ORDERS_APPLY_MOVED || out == ORDERS_APPLY_SETTLED ||
                                out == ORDERS_APPLY_DUPLICATE
                            ? SQLITE_OK
                            : SQLITE_ABORT);
  if (rc != SQLITE_OK && out != ORDERS_APPLY_UNKNOWN && out != ORDERS_APPLY_INVALID) {
    failed(db, "apply payment event", rc);
    out = ORDERS_APPLY_ERROR;
  }
  return out;
}
#endif
