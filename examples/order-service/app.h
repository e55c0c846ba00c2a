/*
 * order-service: orders of the user named by the caller's access token,
 * checked against user-service by name (discovery, balancer, circuit
 * breaker, retries). The API is openapi.yaml beside this file;
 * configuration comes only from the environment (ORDER_DB and the MSVC_*
 * variables). With MSVC_EVENTS set, new orders start pending and take
 * part in the order saga (saga.c).
 */
#ifndef ORDER_APP_H
#define ORDER_APP_H

/* The program's name and the name it registers under (main() is
 * examples/common/ex_main.c). */
#define APP_NAME "order-service"

#include <stdbool.h>

#include <msvc/service.h>

#include "orders.h"
#ifdef EX_HAVE_EVENTS
#include "ex_bus.h"
#endif

typedef struct app_s {
  msvc_service_t *svc; /* for calls to user-service */
  orders_t *orders;
#ifdef EX_HAVE_EVENTS
  bool events;                  /* MSVC_EVENTS is set */
  ex_bus_t *bus;                /* NULL without MSVC_EVENTS */
#endif
#ifdef EX_HAVE_GRPC
  struct msvc_grpc_server_s *grpc; /* orders.v1.Orders (grpc.c) */
#endif
} app_t;

/* Reads ORDER_DB and opens the database. 0, or -1 with one line in err. */
int app_open(app_t *app, char *err, size_t errlen);

/* Releases what app_open() opened. */
void app_close(app_t *app);

/* Adds the API's routes, every one needing a token. MSVC_OK or the failing
 * route's code. */
int app_routes(app_t *app, msvc_service_t *svc);

/* With MSVC_EVENTS: connects to the broker, starts the outbox relay and
 * consumes payment events (after app_routes()). 0, or -1 with one line in
 * err. Without MSVC_EVENTS, does nothing. */
int app_events_open(app_t *app, char *err, size_t errlen);

/* Closes what app_events_open() opened, once the service has stopped. */
void app_events_close(app_t *app);

#ifdef EX_HAVE_GRPC
/* Serves orders.v1.Orders over gRPC beside the REST routes (same token
 * rules) and the health service. MSVC_OK or an error code. */
int app_grpc(app_t *app, msvc_service_t *svc);

/* Frees the gRPC server once the service has stopped. */
void app_grpc_free(app_t *app);
#endif

#endif /* ORDER_APP_H */
