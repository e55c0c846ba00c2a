/* order-service: what the handlers share, and the routes. */
#ifndef ORDER_APP_H
#define ORDER_APP_H

#include <msvc/service.h>

#include "orders.h"

typedef struct app_s {
  msvc_service_t *svc; /* for calls to user-service */
  orders_t *orders;
} app_t;

/* Reads ORDER_DB and opens the database. 0, or -1 with one line in err. */
int app_open(app_t *app, char *err, size_t errlen);

/* Releases what app_open() opened. */
void app_close(app_t *app);

/* Adds the API's routes, every one needing a token. MSVC_OK or the failing
 * route's code. */
int app_routes(app_t *app, msvc_service_t *svc);

#endif /* ORDER_APP_H */
