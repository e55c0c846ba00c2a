/*
 * payment-service's store and decision: payments in the service's own
 * SQLite database (shared by its instances), each written together with
 * the event that announces it (outbox) and the id of the order event that
 * caused it (inbox). Safe to call from several threads.
 */
#ifndef PAYMENT_PAYMENTS_H
#define PAYMENT_PAYMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <msvc/events.h>

#include "ex_db.h"

/* Orders above this total (in cents) are declined with reason
 * "amount_limit". */
#define PAYMENT_LIMIT_CENTS INT64_C(100000)

#define PAYMENT_AUTHORIZED "authorized"
#define PAYMENT_DECLINED "declined"

/* The decision for an order of total_cents: "authorized" (*reason NULL) or
 * "declined" (*reason says why). Pure. */
const char *payment_decide(int64_t total_cents, const char **reason);

/* The fields of an order.created event's data that a payment needs. */
typedef struct payment_order_s {
  int64_t order_id;
  int64_t user_id;
  int64_t total_cents;
} payment_order_t;

/* Reads them from the event's data (the order as order-service shows it).
 * false with msg set when a field is missing or invalid. */
bool payment_order_parse(const char *data, size_t len, payment_order_t *out, char *msg,
                         size_t msglen);

typedef struct payments_s payments_t;

int payments_open(const char *path, payments_t **out, char *err, size_t errlen);
void payments_close(payments_t *p);
ex_db_set_t *payments_db(payments_t *p);

typedef enum payments_rc_e {
  PAYMENTS_DECIDED = 0,   /* a payment and its event were stored */
  PAYMENTS_DUPLICATE = 1, /* this event, or a payment of this order, was seen */
  PAYMENTS_ERROR = -1     /* SQLite failed; logged */
} payments_rc_t;

/*
 * Decides the payment of an order announced by event event_id, once: in
 * one transaction, records the event id (inbox), the payment, and the
 * payment.authorized / payment.declined event (outbox, with headers).
 * *status receives the decision when PAYMENTS_DECIDED.
 */
payments_rc_t payments_process(payments_t *p, const char *event_id,
                               const payment_order_t *order,
                               const msvc_events_header_t *headers, size_t nheaders,
                               const char **status);

/* Appends the payments of order_id placed by user_id to the array out
 * (none when the order is another user's). 0, or -1 (logged). */
int payments_list(payments_t *p, int64_t order_id, int64_t user_id, cJSON *out);

#endif /* PAYMENT_PAYMENTS_H */
