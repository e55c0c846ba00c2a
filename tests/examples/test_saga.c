/*
 * The order saga's pieces that need no broker: order-service's state
 * machine and its stores (an order and its event commit together; a
 * payment event applies once), payment-service's decision and its store
 * (one payment and one event per order, whatever the redeliveries).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ex_outbox.h"
#include "order.h"
#include "orders.h"
#include "payments.h"

static int64_t count(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t n = -1;

  cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
  if (sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

Test(saga, state_machine) {
  const char *next = NULL;

  cr_assert_eq(order_next_status("pending", "payment.authorized", &next), ORDER_STEP_MOVE);
  cr_assert_str_eq(next, "confirmed");
  cr_assert_eq(order_next_status("pending", "payment.declined", &next), ORDER_STEP_MOVE);
  cr_assert_str_eq(next, "cancelled");
  /* A decided order keeps its first decision. */
  cr_assert_eq(order_next_status("confirmed", "payment.declined", &next), ORDER_STEP_SETTLED);
  cr_assert_eq(order_next_status("cancelled", "payment.authorized", &next), ORDER_STEP_SETTLED);
  /* An order made without events never waits for a payment. */
  cr_assert_eq(order_next_status("created", "payment.authorized", &next), ORDER_STEP_SETTLED);
  cr_assert_eq(order_next_status("pending", "order.created", &next), ORDER_STEP_INVALID);
  cr_assert_eq(order_next_status("pending", NULL, &next), ORDER_STEP_INVALID);
}

Test(saga, payment_decision) {
  const char *reason = "x";

  cr_assert_str_eq(payment_decide(2699, &reason), "authorized");
  cr_assert_null(reason);
  cr_assert_str_eq(payment_decide(100000, &reason), "authorized", "the limit itself passes");
  cr_assert_str_eq(payment_decide(100001, &reason), "declined");
  cr_assert_str_eq(reason, "amount_limit");
}

Test(saga, payment_order_parse) {
  static const char good[] = "{\"id\":7,\"user_id\":3,\"items\":[],\"total_cents\":150000,"
                             "\"status\":\"pending\"}";
  payment_order_t o;
  char msg[160];

  cr_assert(payment_order_parse(good, strlen(good), &o, msg, sizeof(msg)));
  cr_assert_eq(o.order_id, 7);
  cr_assert_eq(o.user_id, 3);
  cr_assert_eq(o.total_cents, 150000);
  cr_assert_not(payment_order_parse("[1]", 3, &o, msg, sizeof(msg)));
  cr_assert_not(payment_order_parse("{\"id\":7}", 8, &o, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "user_id: is required");
  cr_assert_not(payment_order_parse("{\"id\":-1,\"user_id\":1,\"total_cents\":1}", 38, &o, msg,
                                    sizeof(msg)));
}

Test(saga, order_and_event_commit_together) {
  char path[96], err[300], id[MSVC_EVENTS_ID_MAX + 1] = "";
  msvc_events_header_t h = {"X-Request-Id", "req-1"};
  orders_t *o = NULL;
  cJSON *doc = NULL;
  sqlite3 *db;
  sqlite3_stmt *st = NULL;

  snprintf(path, sizeof(path), "/tmp/msvc-saga-orders-%d.db", (int)getpid());
  unlink(path);
  cr_assert_eq(orders_open(path, &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(orders_create_pending(o, 5, "[]", 2699, 1700000000, NULL, &h, 1, &doc),
               EX_STORE_OK);
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, "pending");
  cJSON_Delete(doc);
  db = ex_db_set_get(orders_db(o));
  cr_assert_eq(count(db, "SELECT count(*) FROM outbox WHERE subject = 'order.created'"), 1);
  cr_assert_eq(sqlite3_prepare_v2(db, "SELECT event_id, envelope, headers FROM outbox", -1, &st,
                                  NULL),
               SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(st, 0));
  cr_assert(strstr((const char *)sqlite3_column_text(st, 1), id) != NULL,
            "the stored envelope carries the row's id");
  cr_assert(strstr((const char *)sqlite3_column_text(st, 1), "\"total_cents\":2699") != NULL);
  cr_assert(strstr((const char *)sqlite3_column_text(st, 2), "req-1") != NULL);
  sqlite3_finalize(st);

  /* payment.declined applies once, with its reason; a redelivery and a
   * later contrary event change nothing. */
  cr_assert_eq(orders_apply_payment(o, "ev-1", 1, "payment.declined", "amount_limit", 1),
               ORDERS_APPLY_MOVED);
  cr_assert_eq(orders_apply_payment(o, "ev-1", 1, "payment.declined", "amount_limit", 2),
               ORDERS_APPLY_DUPLICATE);
  cr_assert_eq(orders_apply_payment(o, "ev-2", 1, "payment.authorized", NULL, 3),
               ORDERS_APPLY_SETTLED);
  cr_assert_eq(orders_get(o, 1, 5, &doc), EX_STORE_OK);
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, "cancelled");
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "reason")->valuestring, "amount_limit");
  cJSON_Delete(doc);
  /* An event about no order, or of the wrong type, leaves no inbox row. */
  cr_assert_eq(orders_apply_payment(o, "ev-3", 99, "payment.authorized", NULL, 4),
               ORDERS_APPLY_UNKNOWN);
  cr_assert_eq(orders_apply_payment(o, "ev-4", 1, "order.created", NULL, 5),
               ORDERS_APPLY_INVALID);
  cr_assert_eq(count(db, "SELECT count(*) FROM inbox WHERE event_id IN ('ev-3','ev-4')"), 0);
  /* Without events the order is "created" and has no event. */
  cr_assert_eq(orders_create(o, 5, "[]", 1, 1700000000, NULL, &doc), EX_STORE_OK);
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "status")->valuestring, "created");
  cr_assert_null(cJSON_GetObjectItem(doc, "reason"));
  cJSON_Delete(doc);
  cr_assert_eq(count(db, "SELECT count(*) FROM outbox"), 1);
  orders_close(o);
  unlink(path);
}

Test(saga, one_payment_per_order) {
  payment_order_t small = {.order_id = 1, .user_id = 5, .total_cents = 2699};
  payment_order_t big = {.order_id = 2, .user_id = 5, .total_cents = 150000};
  char path[96], err[300];
  payments_t *p = NULL;
  const char *status = NULL;
  cJSON *list;
  sqlite3 *db;

  snprintf(path, sizeof(path), "/tmp/msvc-saga-payments-%d.db", (int)getpid());
  unlink(path);
  cr_assert_eq(payments_open(path, &p, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(payments_process(p, "o-1", &small, NULL, 0, &status), PAYMENTS_DECIDED);
  cr_assert_str_eq(status, "authorized");
  cr_assert_eq(payments_process(p, "o-1", &small, NULL, 0, &status), PAYMENTS_DUPLICATE,
               "a redelivery");
  cr_assert_eq(payments_process(p, "o-1-other-id", &small, NULL, 0, &status),
               PAYMENTS_DUPLICATE, "the same order under another event id");
  cr_assert_eq(payments_process(p, "o-2", &big, NULL, 0, &status), PAYMENTS_DECIDED);
  cr_assert_str_eq(status, "declined");
  db = ex_db_set_get(payments_db(p));
  cr_assert_eq(count(db, "SELECT count(*) FROM payments"), 2);
  cr_assert_eq(count(db, "SELECT count(*) FROM outbox WHERE subject = 'payment.authorized'"), 1);
  cr_assert_eq(count(db, "SELECT count(*) FROM outbox WHERE subject = 'payment.declined' AND "
                         "envelope LIKE '%\"reason\":\"amount_limit\"%'"),
               1);
  list = cJSON_CreateArray();
  cr_assert_eq(payments_list(p, 2, 5, list), 0);
  cr_assert_eq(cJSON_GetArraySize(list), 1);
  cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "reason")->valuestring,
                   "amount_limit");
  cJSON_Delete(list);
  list = cJSON_CreateArray();
  cr_assert_eq(payments_list(p, 2, 6, list), 0);
  cr_assert_eq(cJSON_GetArraySize(list), 0, "another user's order shows nothing");
  cJSON_Delete(list);
  payments_close(p);
  unlink(path);
}
