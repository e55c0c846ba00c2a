/* Validation of a new order (see order.h). */
#include "order.h"

#include <stdio.h>
#include <string.h>

#include "ex.h"

static bool parse_item(const cJSON *item, size_t i, order_item_t *out, char *msg,
                       size_t msglen) {
  char where[24];

  snprintf(where, sizeof(where), "items[%zu].", i);
  if (!cJSON_IsObject(item)) {
    snprintf(msg, msglen, "items[%zu]: must be an object", i);
    return false;
  }
  return ex_json_string(item, where, "sku", 1, ORDER_SKU_MAX_CHARS, &out->sku, msg,
                        msglen) &&
         ex_json_int(item, where, "quantity", 1, ORDER_QUANTITY_MAX, &out->quantity, msg,
                     msglen) &&
         ex_json_int(item, where, "unit_price_cents", 0, ORDER_PRICE_MAX,
                     &out->unit_price_cents, msg, msglen);
}

/* Adds quantity * price to *total unless the result would pass
 * EX_JSON_INT_MAX. Both factors are bounded, so the product fits in 64 bits
 * (10^6 * 10^11 < 2^63); the sum is checked before it is made. */
static bool add_line(int64_t *total, const order_item_t *item) {
  int64_t line = item->quantity * item->unit_price_cents;

  if (line > EX_JSON_INT_MAX - *total)
    return false;
  *total += line;
  return true;
}

bool order_parse(const cJSON *body, order_new_t *out, char *msg, size_t msglen) {
  const cJSON *items = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "items")
                                             : NULL;
  const cJSON *item;
  size_t n;

  if (!cJSON_IsObject(body)) {
    snprintf(msg, msglen, "body: must be a JSON object");
    return false;
  }
  n = cJSON_IsArray(items) ? (size_t)cJSON_GetArraySize(items) : 0;
  if (!cJSON_IsArray(items) || n < 1 || n > ORDER_ITEMS_MAX) {
    snprintf(msg, msglen, "items: must be an array of 1 to %d items", ORDER_ITEMS_MAX);
    return false;
  }
  out->nitems = 0;
  out->total_cents = 0;
  cJSON_ArrayForEach(item, items) {
    order_item_t *it = &out->items[out->nitems];

    if (!parse_item(item, out->nitems, it, msg, msglen))
      return false;
    if (!add_line(&out->total_cents, it)) {
      snprintf(msg, msglen, "items: the total must not exceed %lld cents",
               (long long)EX_JSON_INT_MAX);
      return false;
    }
    out->nitems++;
  }
  return true;
}

cJSON *order_items_json(const order_new_t *order) {
  cJSON *items = cJSON_CreateArray();
  size_t i;

  for (i = 0; items != NULL && i < order->nitems; i++) {
    cJSON *it = cJSON_CreateObject();

    /* Added last, so a failure before leaves it ours to delete. */
    if (it == NULL || cJSON_AddStringToObject(it, "sku", order->items[i].sku) == NULL ||
        !ex_json_add_int(it, "quantity", order->items[i].quantity) ||
        !ex_json_add_int(it, "unit_price_cents", order->items[i].unit_price_cents) ||
        !cJSON_AddItemToArray(items, it)) {
      cJSON_Delete(it);
      cJSON_Delete(items);
      return NULL;
    }
  }
  return items;
}

bool order_idem_key_valid(const char *key) {
  size_t n = 0;

  if (key == NULL)
    return false;
  for (; key[n] != '\0'; n++)
    if ((unsigned char)key[n] < 0x21 || (unsigned char)key[n] > 0x7e || n >= ORDER_IDEM_KEY_MAX)
      return false;
  return n > 0;
}

order_step_t order_next_status(const char *current, const char *event_type,
                               const char **next) {
  const char *to;

  if (event_type != NULL && strcmp(event_type, "payment.authorized") == 0)
    to = ORDER_STATUS_CONFIRMED;
  else if (event_type != NULL && strcmp(event_type, "payment.declined") == 0)
    to = ORDER_STATUS_CANCELLED;
  else
    return ORDER_STEP_INVALID;
  /* Only a pending order waits for a payment decision; a decided one keeps
   * its first decision (a late or repeated event must not flip it). */
  if (current == NULL || strcmp(current, ORDER_STATUS_PENDING) != 0)
    return ORDER_STEP_SETTLED;
  *next = to;
  return ORDER_STEP_MOVE;
}
