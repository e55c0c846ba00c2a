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
#ifdef EX_HAVE_EVENTS
#include <msvc/events.h>
#endif

typedef struct orders_s orders_t;

/* Opens (creating) the database at path. 0, or an SQLite code with one line
 * in err. */
int orders_open(const char *path, orders_t **out, char *err, size_t errlen);

/* The store's connections (for the outbox relay). */
ex_db_set_t *orders_db(orders_t *o);

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

#ifdef EX_HAVE_EVENTS
/* As orders_create(), for a service with events: the order starts
 * "pending" and its order.created event (data: the order as the API shows
 * it; headers copied) is added to the outbox in the same transaction. */
ex_store_rc_t orders_create_pending(orders_t *o, int64_t user_id, const char *items,
                                    int64_t total_cents, int64_t now, const char *idem_key,
                                    const msvc_events_header_t *headers, size_t nheaders,
                                    cJSON **out);

typedef enum orders_apply_e {
  ORDERS_APPLY_MOVED = 0,     /* the order moved to its new status */
  ORDERS_APPLY_DUPLICATE = 1, /* this event id was applied before */
  ORDERS_APPLY_SETTLED = 2,   /* the order was decided already */
  ORDERS_APPLY_UNKNOWN = 3,   /* no such order */
  ORDERS_APPLY_INVALID = 4,   /* not a payment event */
  ORDERS_APPLY_ERROR = -1     /* SQLite failed; logged */
} orders_apply_t;

/* Applies a payment event (event_type "payment.authorized" or
 * "payment.declined", reason NULL or the decline's) to order_id once per
 * event_id, in one transaction with the inbox. */
orders_apply_t orders_apply_payment(orders_t *o, const char *event_id, int64_t order_id,
                                    const char *event_type, const char *reason,
                                    int64_t now_ms);
#endif

#endif /* ORDER_ORDERS_H */
