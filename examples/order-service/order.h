/* Validation of a new order (pure functions, unit-tested). */
#ifndef ORDER_ORDER_H
#define ORDER_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ORDER_ITEMS_MAX 100
#define ORDER_SKU_MAX_CHARS 64
#define ORDER_QUANTITY_MAX INT64_C(1000000)
#define ORDER_PRICE_MAX INT64_C(100000000000) /* a billion in currency units */

typedef struct order_item_s {
  const char *sku; /* borrowed from the parsed body */
  int64_t quantity;
  int64_t unit_price_cents;
} order_item_t;

typedef struct order_new_s {
  size_t nitems;
  order_item_t items[ORDER_ITEMS_MAX];
  int64_t total_cents;
} order_new_t;

/*
 * Checks the body of POST /orders ({"items":[{sku, quantity,
 * unit_price_cents}]}, 1 to 100 items) and sums its total, refusing a
 * total above EX_JSON_INT_MAX (10^15 - 1) rather than letting it overflow. On failure
 * msg names the field ("items[2].quantity: ...").
 */
bool order_parse(const cJSON *body, order_new_t *out, char *msg, size_t msglen);

/* The items as the JSON array stored and returned, or NULL (no memory). */
cJSON *order_items_json(const order_new_t *order);

/* Longest Idempotency-Key accepted, in bytes. */
#define ORDER_IDEM_KEY_MAX 255

/* Whether an Idempotency-Key header value is usable: 1 to 255 visible
 * ASCII characters (a UUID fits; spaces and control characters do not). */
bool order_idem_key_valid(const char *key);

/*
 * The order saga's state machine. Without events an order is "created" and
 * stays so. With events it starts "pending"; the payment decision moves it
 * to "confirmed" (payment.authorized) or "cancelled" (payment.declined, the
 * compensation), and nothing moves it afterwards.
 */
#define ORDER_STATUS_CREATED "created"
#define ORDER_STATUS_PENDING "pending"
#define ORDER_STATUS_CONFIRMED "confirmed"
#define ORDER_STATUS_CANCELLED "cancelled"

typedef enum order_step_e {
  ORDER_STEP_MOVE = 0,    /* *next is the new status */
  ORDER_STEP_SETTLED = 1, /* already decided: the event changes nothing */
  ORDER_STEP_INVALID = 2  /* an event type the saga does not know */
} order_step_t;

/* What event_type ("payment.authorized", "payment.declined") does to an
 * order in status current. Pure. */
order_step_t order_next_status(const char *current, const char *event_type,
                               const char **next);

#endif /* ORDER_ORDER_H */
