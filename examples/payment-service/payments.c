/* payment-service's store and decision (see payments.h). */
#include "payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

#include "ex.h"
#include "ex_outbox.h"

#define LOG "payment-service"

const char *payment_decide(int64_t total_cents, const char **reason) {
  if (total_cents > PAYMENT_LIMIT_CENTS) {
    *reason = "amount_limit";
    return PAYMENT_DECLINED;
  }
  *reason = NULL;
  return PAYMENT_AUTHORIZED;
}

bool payment_order_parse(const char *data, size_t len, payment_order_t *out, char *msg,
                         size_t msglen) {
  cJSON *doc = data != NULL ? cJSON_ParseWithLength(data, len) : NULL;
  bool ok;

  if (!cJSON_IsObject(doc)) {
    snprintf(msg, msglen, "data: must be a JSON object");
    cJSON_Delete(doc);
    return false;
  }
  ok = ex_json_int(doc, "", "id", 1, EX_JSON_INT_MAX, &out->order_id, msg, msglen) &&
       ex_json_int(doc, "", "user_id", 1, EX_JSON_INT_MAX, &out->user_id, msg, msglen) &&
       ex_json_int(doc, "", "total_cents", 0, EX_JSON_INT_MAX, &out->total_cents, msg,
                   msglen);
  cJSON_Delete(doc);
  return ok;
}

struct payments_s {
  ex_db_set_t *dbs;
};

/* One payment per order: the order id is the key, so even two different
 * events about one order could not pay it twice. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS payments ("
    "  order_id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL,"
    "  total_cents INTEGER NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reason TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS payments_by_user ON payments (user_id);" EX_OUTBOX_SCHEMA;

int payments_open(const char *path, payments_t **out, char *err, size_t errlen) {
  payments_t *p = calloc(1, sizeof(*p));
  int rc;

  *out = NULL;
  if (p == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return SQLITE_NOMEM;
  }
  rc = ex_db_set_open(path, schema, &p->dbs, err, errlen);
  if (rc != SQLITE_OK) {
    free(p);
    return rc;
  }
  *out = p;
  return SQLITE_OK;
}

void payments_close(payments_t *p) {
  if (p == NULL)
    return;
  ex_db_set_close(p->dbs);
  free(p);
}

ex_db_set_t *payments_db(payments_t *p) {
  return p->dbs;
}

static payments_rc_t failed(sqlite3 *db, const char *what, int rc) {
  MSVC_LOG_E(LOG, "database: %s: %s (%d)", what, sqlite3_errmsg(db), rc);
  return PAYMENTS_ERROR;
}

/* Inserts the payment; 1 when stored, 0 when the order has one already. */
static int insert_payment(sqlite3 *db, const char *event_id, const payment_order_t *o,
                          const char *status, const char *reason, int64_t now) {
  static const char sql[] =
      "INSERT OR IGNORE INTO payments (order_id, user_id, total_cents, status, reason, "
      "created_at, event_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, o->order_id);
    sqlite3_bind_int64(st, 2, o->user_id);
    sqlite3_bind_int64(st, 3, o->total_cents);
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    if (reason != NULL)
      sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_text(st, 7, event_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return -1;
  return sqlite3_changes(db) == 1 ? 1 : 0;
}

/* The payment event: {"order_id","status","reason"} on payment.<status>. */
static int add_event(sqlite3 *db, const payment_order_t *o, const char *status,
                     const char *reason, const msvc_events_header_t *headers,
                     size_t nheaders, int64_t now_ms) {
  cJSON *data = cJSON_CreateObject();
  char *text = NULL, type[40];
  msvc_event_t ev;
  int rc = SQLITE_NOMEM;

  if (data != NULL && ex_json_add_int(data, "order_id", o->order_id) &&
      cJSON_AddStringToObject(data, "status", status) != NULL &&
      (reason != NULL ? cJSON_AddStringToObject(data, "reason", reason)
                      : cJSON_AddNullToObject(data, "reason")) != NULL)
    text = cJSON_PrintUnformatted(data);
  cJSON_Delete(data);
  if (text != NULL) {
    snprintf(type, sizeof(type), "payment.%s", status);
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.data = text;
    ev.data_len = strlen(text);
    ev.headers = headers;
    ev.header_count = nheaders;
    rc = ex_outbox_add(db, &ev, now_ms, NULL);
  }
  cJSON_free(text);
  return rc;
}

payments_rc_t payments_process(payments_t *p, const char *event_id,
                               const payment_order_t *order,
                               const msvc_events_header_t *headers, size_t nheaders,
                               const char **status) {
  sqlite3 *db = ex_db_set_get(p->dbs);
  int64_t now_ms = ex_outbox_now_ms();
  payments_rc_t out = PAYMENTS_ERROR;
  const char *reason = NULL;
  int rc, fresh;

  if (db == NULL)
    return PAYMENTS_ERROR;
  if ((rc = ex_db_begin_write(db)) != SQLITE_OK)
    return failed(db, "begin payment", rc);
  *status = payment_decide(order->total_cents, &reason);
  fresh = ex_inbox_claim(db, event_id, now_ms);
  if (fresh == 0) {
    out = PAYMENTS_DUPLICATE;
  } else if (fresh == 1) {
    switch (insert_payment(db, event_id, order, *status, reason, now_ms / 1000)) {
    case 0: out = PAYMENTS_DUPLICATE; break;
    case 1:
      rc = add_event(db, order, *status, reason, headers, nheaders, now_ms);
      out = rc == SQLITE_OK ? PAYMENTS_DECIDED : failed(db, "add payment event", rc);
      break;
    default: out = failed(db, "insert payment", sqlite3_errcode(db)); break;
    }
  } else {
    out = failed(db, "record event id", sqlite3_errcode(db));
  }
  rc = ex_db_finish(db, out == PAYMENTS_ERROR ? SQLITE_ABORT : SQLITE_OK);
  if (out != PAYMENTS_ERROR && rc != SQLITE_OK)
    out = failed(db, "commit payment", rc);
  return out;
}

int payments_list(payments_t *p, int64_t order_id, int64_t user_id, cJSON *out) {
  static const char sql[] = "SELECT order_id, status, reason, created_at FROM payments "
                            "WHERE order_id = ?1 AND user_id = ?2";
  sqlite3 *db = ex_db_set_get(p->dbs);
  sqlite3_stmt *st = NULL;
  int rc;

  if (db == NULL)
    return -1;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, order_id);
    sqlite3_bind_int64(st, 2, user_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      const char *reason = (const char *)sqlite3_column_text(st, 2);
      cJSON *item = cJSON_CreateObject();
      char when[32];

      ex_rfc3339(sqlite3_column_int64(st, 3), when);
      if (item == NULL || !ex_json_add_int(item, "order_id", sqlite3_column_int64(st, 0)) ||
          cJSON_AddStringToObject(item, "status", (const char *)sqlite3_column_text(st, 1)) ==
              NULL ||
          (reason != NULL ? cJSON_AddStringToObject(item, "reason", reason)
                          : cJSON_AddNullToObject(item, "reason")) == NULL ||
          cJSON_AddStringToObject(item, "created_at", when) == NULL ||
          !cJSON_AddItemToArray(out, item)) {
        cJSON_Delete(item);
        rc = SQLITE_NOMEM;
        break;
      }
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    failed(db, "list payments", rc);
    return -1;
  }
  return 0;
}
