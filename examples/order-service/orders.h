/*
 * The order store: orders in the service's own SQLite database, shared by
 * every instance of the service. Safe to call from several threads.
 */
#ifndef ORDER_ORDERS_H
#define ORDER_ORDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ex_db.h"

typedef struct orders_s orders_t;

/* Opens (creating) the database at path. 0, or an SQLite code with one line
 * in err. */
int orders_open(const char *path, orders_t **out, char *err, size_t errlen);

/* Closes the store; NULL is a no-op. */
void orders_close(orders_t *o);

/* Stores an order of user_id (items: the JSON array text, in the one form
 * order_items_json() prints) with its idempotency key (NULL for none); *out
 * receives the new order as the API shows it, the caller's to
 * cJSON_Delete(). EX_STORE_CONFLICT when user_id already has an order
 * with that key (see orders_find_key()). */
ex_store_rc_t orders_create(orders_t *o, int64_t user_id, const char *items,
                            int64_t total_cents, int64_t now, const char *idem_key,
                            cJSON **out);

/* The order user_id placed with idem_key, in *out (EX_STORE_NOT_FOUND when
 * none); *same tells whether it was placed with these items, i.e. whether
 * a request with this key repeats the first one. */
ex_store_rc_t orders_find_key(orders_t *o, int64_t user_id, const char *idem_key,
                              const char *items, bool *same, cJSON **out);

/* Reads order id when it belongs to user_id (EX_STORE_NOT_FOUND otherwise,
 * so that other users' ids are not revealed). */
ex_store_rc_t orders_get(orders_t *o, int64_t id, int64_t user_id, cJSON **out);

/* Appends every order of user_id, newest first, to the JSON array orders. */
ex_store_rc_t orders_list(orders_t *o, int64_t user_id, cJSON *orders);

#endif /* ORDER_ORDERS_H */
