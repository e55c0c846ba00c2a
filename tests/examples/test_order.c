/* order-service: validation of new orders and the order store. */
#include <pthread.h>

#include "ex.h"
#include "ex_test.h"
#include "order.h"
#include "orders.h"

static bool parse_text(const char *text, order_new_t *order, char *msg, size_t msglen,
                       cJSON **doc) {
  *doc = cJSON_Parse(text);
  cr_assert_not_null(*doc, "%s", text);
  return order_parse(*doc, order, msg, msglen);
}

Test(examples_order, valid_order_and_total) {
  order_new_t order;
  char msg[EX_MSG_MAX];
  cJSON *doc, *items;
  char *text;

  cr_assert(parse_text("{\"items\":[{\"sku\":\"BOOK-1\",\"quantity\":2,\"unit_price_cents\":1250},"
                       "{\"sku\":\"PEN\",\"quantity\":1,\"unit_price_cents\":0}]}",
                       &order, msg, sizeof(msg), &doc),
            "%s", msg);
  cr_assert_eq(order.nitems, 2);
  cr_assert_eq(order.total_cents, 2500);
  items = order_items_json(&order);
  text = cJSON_PrintUnformatted(items);
  cr_assert_str_eq(text, "[{\"sku\":\"BOOK-1\",\"quantity\":2,\"unit_price_cents\":1250},"
                         "{\"sku\":\"PEN\",\"quantity\":1,\"unit_price_cents\":0}]");
  cJSON_free(text);
  cJSON_Delete(items);
  cJSON_Delete(doc);
}

Test(examples_order, invalid_orders_name_the_field) {
  static const struct {
    const char *body, *msg;
  } cases[] = {
      {"[]", "body: must be a JSON object"},
      {"{}", "items: must be an array of 1 to 100 items"},
      {"{\"items\":{}}", "items: must be an array of 1 to 100 items"},
      {"{\"items\":[]}", "items: must be an array of 1 to 100 items"},
      {"{\"items\":[1]}", "items[0]: must be an object"},
      {"{\"items\":[{\"quantity\":1,\"unit_price_cents\":1}]}", "items[0].sku: is required"},
      {"{\"items\":[{\"sku\":\"\",\"quantity\":1,\"unit_price_cents\":1}]}",
       "items[0].sku: must be 1 to 64 characters"},
      {"{\"items\":[{\"sku\":\"a\",\"quantity\":1,\"unit_price_cents\":1},"
       "{\"sku\":\"b\",\"quantity\":0,\"unit_price_cents\":1}]}",
       "items[1].quantity: must be an integer from 1 to 1000000"},
      {"{\"items\":[{\"sku\":\"a\",\"quantity\":1.5,\"unit_price_cents\":1}]}",
       "items[0].quantity: must be an integer from 1 to 1000000"},
      {"{\"items\":[{\"sku\":\"a\",\"quantity\":\"2\",\"unit_price_cents\":1}]}",
       "items[0].quantity: must be an integer from 1 to 1000000"},
      {"{\"items\":[{\"sku\":\"a\",\"quantity\":1,\"unit_price_cents\":-1}]}",
       "items[0].unit_price_cents: must be an integer from 0 to 100000000000"},
      {"{\"items\":[{\"sku\":\"a\",\"quantity\":1}]}", "items[0].unit_price_cents: is required"},
  };
  char msg[EX_MSG_MAX];
  order_new_t order;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cJSON *doc;

    cr_assert_not(parse_text(cases[i].body, &order, msg, sizeof(msg), &doc), "%s",
                  cases[i].body);
    cr_assert_str_eq(msg, cases[i].msg, "%s", cases[i].body);
    cJSON_Delete(doc);
  }
}

/* {"items":[n copies of item]} */
static char *items_body(size_t n, const char *item) {
  size_t len = 16 + n * (strlen(item) + 1), i;
  char *s = malloc(len);

  cr_assert_not_null(s);
  strcpy(s, "{\"items\":[");
  for (i = 0; i < n; i++) {
    strcat(s, item);
    if (i + 1 < n)
      strcat(s, ",");
  }
  strcat(s, "]}");
  return s;
}

Test(examples_order, item_count_limits) {
  const char *item = "{\"sku\":\"a\",\"quantity\":1,\"unit_price_cents\":1}";
  char *hundred = items_body(100, item), *more = items_body(101, item);
  char msg[EX_MSG_MAX];
  order_new_t order;
  cJSON *doc;

  cr_assert(parse_text(hundred, &order, msg, sizeof(msg), &doc), "%s", msg);
  cr_assert_eq(order.nitems, 100);
  cr_assert_eq(order.total_cents, 100);
  cJSON_Delete(doc);
  cr_assert_not(parse_text(more, &order, msg, sizeof(msg), &doc));
  cJSON_Delete(doc);
  free(hundred);
  free(more);
}

Test(examples_order, total_overflow_is_refused) {
  /* 10^6 * 10^11 = 10^17 per line: one line already passes the limit. */
  const char *item = "{\"sku\":\"a\",\"quantity\":1000000,\"unit_price_cents\":100000000000}";
  const char *fits = "{\"sku\":\"a\",\"quantity\":9999,\"unit_price_cents\":100000000000}";
  char *body = items_body(100, item), *two = items_body(2, fits);
  char msg[EX_MSG_MAX];
  order_new_t order;
  cJSON *doc;

  cr_assert_not(parse_text(body, &order, msg, sizeof(msg), &doc));
  cr_assert_str_eq(msg, "items: the total must not exceed 999999999999999 cents");
  cJSON_Delete(doc);
  /* Each line fits (9.999e14), their sum does not. */
  cr_assert_not(parse_text(two, &order, msg, sizeof(msg), &doc));
  cr_assert_str_eq(msg, "items: the total must not exceed 999999999999999 cents");
  cJSON_Delete(doc);
  free(body);
  free(two);
}

Test(examples_order, store_keeps_orders_per_user) {
  ex_tmp_t t;
  orders_t *o;
  cJSON *doc = NULL, *list;
  char err[256], *text;

  ex_tmp_make(&t);
  cr_assert_eq(orders_open(ex_tmp_file(&t, "db"), &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(orders_create(o, 7, "[{\"sku\":\"a\",\"quantity\":1,\"unit_price_cents\":5}]", 5,
                             1795672798, NULL, &doc),
               EX_STORE_OK);
  text = cJSON_PrintUnformatted(doc);
  cr_assert_str_eq(text, "{\"id\":1,\"user_id\":7,\"items\":[{\"sku\":\"a\",\"quantity\":1,"
                         "\"unit_price_cents\":5}],\"total_cents\":5,\"status\":\"created\","
                         "\"created_at\":\"2026-11-26T05:59:58Z\"}");
  cJSON_free(text);
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, "[]", 9, 1795672799, NULL, &doc), EX_STORE_OK);
  cJSON_Delete(doc);

  cr_assert_eq(orders_get(o, 1, 7, &doc), EX_STORE_OK);
  cJSON_Delete(doc);
  cr_assert_eq(orders_get(o, 1, 8, &doc), EX_STORE_NOT_FOUND, "another user's order");
  cr_assert_null(doc);
  cr_assert_eq(orders_get(o, 99, 7, &doc), EX_STORE_NOT_FOUND);

  list = cJSON_CreateArray();
  cr_assert_eq(orders_list(o, 7, list), EX_STORE_OK);
  cr_assert_eq(cJSON_GetArraySize(list), 2);
  cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")->valuedouble, 2,
               "newest first");
  cJSON_Delete(list);
  list = cJSON_CreateArray();
  cr_assert_eq(orders_list(o, 8, list), EX_STORE_OK);
  cr_assert_eq(cJSON_GetArraySize(list), 0);
  cJSON_Delete(list);
  orders_close(o);
  orders_close(NULL);
  ex_tmp_remove(&t);
}

#define WRITES 150

typedef struct writer_s {
  const char *path;
  int64_t user;
  int failures;
} writer_t;

/* One "instance": its own connection to the shared file. */
static void *write_orders(void *arg) {
  writer_t *w = arg;
  orders_t *o = NULL;
  char err[256];
  int i;

  if (orders_open(w->path, &o, err, sizeof(err)) != 0) {
    w->failures = WRITES;
    return NULL;
  }
  for (i = 0; i < WRITES; i++) {
    cJSON *doc = NULL;

    if (orders_create(o, w->user, "[]", i, 1795672798, NULL, &doc) != EX_STORE_OK)
      w->failures++;
    cJSON_Delete(doc);
  }
  orders_close(o);
  return NULL;
}

Test(examples_order, two_connections_write_at_once, .timeout = 60) {
  ex_tmp_t t;
  writer_t w[2];
  pthread_t th[2];
  orders_t *o;
  cJSON *list;
  char err[256];
  int i;

  ex_tmp_make(&t);
  for (i = 0; i < 2; i++) {
    w[i].path = ex_tmp_file(&t, "db");
    w[i].user = i + 1;
    w[i].failures = 0;
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, write_orders, &w[i]), 0);
  for (i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  cr_assert_eq(w[0].failures + w[1].failures, 0);
  cr_assert_eq(orders_open(ex_tmp_file(&t, "db"), &o, err, sizeof(err)), 0, "%s", err);
  for (i = 1; i <= 2; i++) {
    list = cJSON_CreateArray();
    cr_assert_eq(orders_list(o, i, list), EX_STORE_OK);
    cr_assert_eq(cJSON_GetArraySize(list), WRITES);
    cJSON_Delete(list);
  }
  orders_close(o);
  ex_tmp_remove(&t);
}

/* ---- idempotency keys ------------------------------------------------------ */

Test(examples_order, idempotency_key_syntax) {
  char longest[ORDER_IDEM_KEY_MAX + 2];

  cr_assert(order_idem_key_valid("3f2a8c1e-1b7d-4c55-9a0e-6d1f2b3c4d5e"));
  cr_assert(order_idem_key_valid("a"));
  cr_assert_not(order_idem_key_valid(""));
  cr_assert_not(order_idem_key_valid(NULL));
  cr_assert_not(order_idem_key_valid("has space"));
  cr_assert_not(order_idem_key_valid("tab\there"));
  cr_assert_not(order_idem_key_valid("caf\xc3\xa9"), "ASCII only");
  memset(longest, 'k', ORDER_IDEM_KEY_MAX);
  longest[ORDER_IDEM_KEY_MAX] = '\0';
  cr_assert(order_idem_key_valid(longest));
  longest[ORDER_IDEM_KEY_MAX] = 'k';
  longest[ORDER_IDEM_KEY_MAX + 1] = '\0';
  cr_assert_not(order_idem_key_valid(longest), "256 bytes");
}

#define ITEMS_A "[{\"sku\":\"a\",\"quantity\":1,\"unit_price_cents\":5}]"
#define ITEMS_B "[{\"sku\":\"b\",\"quantity\":2,\"unit_price_cents\":5}]"

/* One order per user and key: the key is stored with the order, found
 * again with whether the items match, and free for another user. */
Test(examples_order, idempotency_key_is_unique_per_user) {
  ex_tmp_t t;
  orders_t *o;
  cJSON *doc = NULL, *list;
  char err[256];
  bool same = true;

  ex_tmp_make(&t);
  cr_assert_eq(orders_open(ex_tmp_file(&t, "db"), &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(orders_find_key(o, 7, "k1", ITEMS_A, &same, &doc), EX_STORE_NOT_FOUND);
  cr_assert_null(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, "k1", &doc), EX_STORE_OK);
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, "k1", &doc), EX_STORE_CONFLICT,
               "the same key twice for one user");
  cr_assert_null(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_B, 10, 1795672798, "k1", &doc), EX_STORE_CONFLICT);
  cr_assert_eq(orders_create(o, 8, ITEMS_A, 5, 1795672798, "k1", &doc), EX_STORE_OK,
               "another user's key space");
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, NULL, &doc), EX_STORE_OK,
               "orders without a key are never in conflict");
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, NULL, &doc), EX_STORE_OK);
  cJSON_Delete(doc);

  cr_assert_eq(orders_find_key(o, 7, "k1", ITEMS_A, &same, &doc), EX_STORE_OK);
  cr_assert(same);
  cr_assert_eq(cJSON_GetObjectItem(doc, "id")->valuedouble, 1, "the first order");
  cJSON_Delete(doc);
  cr_assert_eq(orders_find_key(o, 7, "k1", ITEMS_B, &same, &doc), EX_STORE_OK);
  cr_assert_not(same, "other items under the same key");
  cJSON_Delete(doc);
  cr_assert_eq(orders_find_key(o, 9, "k1", ITEMS_A, &same, &doc), EX_STORE_NOT_FOUND);

  list = cJSON_CreateArray();
  cr_assert_eq(orders_list(o, 7, list), EX_STORE_OK);
  cr_assert_eq(cJSON_GetArraySize(list), 3, "one keyed order and two without a key");
  cJSON_Delete(list);
  orders_close(o);
  ex_tmp_remove(&t);
}

/* A database of an older order-service (no idem_key column) gains the
 * column and keeps its orders. */
Test(examples_order, older_database_gains_idempotency_keys) {
  ex_tmp_t t;
  sqlite3 *db = NULL;
  orders_t *o;
  cJSON *doc = NULL;
  char err[256];
  bool same = false;

  ex_tmp_make(&t);
  cr_assert_eq(sqlite3_open(ex_tmp_file(&t, "db"), &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db,
                            "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                            " user_id INTEGER NOT NULL, items TEXT NOT NULL,"
                            " total_cents INTEGER NOT NULL, status TEXT NOT NULL,"
                            " created_at INTEGER NOT NULL);"
                            "INSERT INTO orders (user_id, items, total_cents, status, created_at)"
                            " VALUES (7, '[]', 0, 'created', 1795672798);",
                            NULL, NULL, NULL),
               SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  cr_assert_eq(orders_open(ex_tmp_file(&t, "db"), &o, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(orders_get(o, 1, 7, &doc), EX_STORE_OK, "the old order is still there");
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, "k", &doc), EX_STORE_OK);
  cJSON_Delete(doc);
  cr_assert_eq(orders_create(o, 7, ITEMS_A, 5, 1795672798, "k", &doc), EX_STORE_CONFLICT);
  cr_assert_eq(orders_find_key(o, 7, "k", ITEMS_A, &same, &doc), EX_STORE_OK);
  cr_assert(same);
  cJSON_Delete(doc);
  orders_close(o);
  /* Opening it again finds the column and changes nothing. */
  cr_assert_eq(orders_open(ex_tmp_file(&t, "db"), &o, err, sizeof(err)), 0, "%s", err);
  orders_close(o);
  ex_tmp_remove(&t);
}
