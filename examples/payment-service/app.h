/*
 * payment-service: decides the payment of every new order. It consumes
 * order.created (one delivery per service, whatever the number of
 * instances), authorises or declines (orders above 1000.00 are declined
 * with reason "amount_limit"), and publishes payment.authorized or
 * payment.declined through its outbox. GET /payments?order_id=N shows the
 * decision to the order's user. The API is openapi.yaml beside this file;
 * configuration comes only from the environment (PAYMENT_DB, MSVC_EVENTS
 * and the other MSVC_* variables).
 */
#ifndef PAYMENT_APP_H
#define PAYMENT_APP_H

/* The program's name and the name it registers under (main() is
 * examples/common/ex_main.c). */
#define APP_NAME "payment-service"

#include <msvc/events.h>
#include <msvc/service.h>

#include "ex_bus.h"
#include "payments.h"

typedef struct app_s {
  msvc_service_t *svc;
  payments_t *payments;
  ex_bus_t *bus;              /* NULL without MSVC_EVENTS */
  unsigned delay_ms;          /* PAYMENT_DELAY_MS: simulated provider latency */
} app_t;

/* Reads PAYMENT_DB and PAYMENT_DELAY_MS and opens the database. 0, or -1 with one line in err. */
int app_open(app_t *app, char *err, size_t errlen);

/* Releases what app_open() opened. */
void app_close(app_t *app);

/* Adds GET /payments (token required). MSVC_OK or the route's code. */
int app_routes(app_t *app, msvc_service_t *svc);

/* With MSVC_EVENTS: consumes order.created and publishes the decisions
 * through the outbox. 0, or -1 with one line in err. */
int app_events_open(app_t *app, char *err, size_t errlen);

/* Closes what app_events_open() opened, once the service has stopped. */
void app_events_close(app_t *app);

#endif /* PAYMENT_APP_H */
