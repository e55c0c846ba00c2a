/* payment-service: what the handlers share. */
#ifndef PAYMENT_APP_H
#define PAYMENT_APP_H

#include <msvc/events.h>
#include <msvc/service.h>

#include "ex_bus.h"
#include "payments.h"

typedef struct app_s {
  msvc_service_t *svc;
  payments_t *payments;
  ex_bus_t *bus;              /* NULL without MSVC_EVENTS */
  msvc_events_dedup_t *dedup; /* order events decided lately */
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
