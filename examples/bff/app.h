/* bff: what the handlers share, and the routes. */
#ifndef BFF_APP_H
#define BFF_APP_H

#include <msvc/middleware.h>
#include <msvc/service.h>

typedef struct app_s app_t;

/* A gateway route: the service its requests are forwarded to. */
typedef struct gateway_s {
  app_t *app;
  const char *service;
} gateway_t;

struct app_s {
  msvc_service_t *svc;
  gateway_t users;  /* /api/users..., /api/login */
  gateway_t orders; /* /api/orders... */
  msvc_mw_ratelimit_t *per_user; /* requests per signed-in user */
  bool orders_grpc; /* BFF_ORDERS_GRPC=1: dashboards read orders over gRPC */
  msvc_cache_t *gateway_cache;   /* GET answers of the gateway routes */
  msvc_cache_t *dashboard_cache; /* the dashboards' order reads */
};

/* Reads BFF_USER_RATE (requests per second each signed-in user may make,
 * burst twice that; default 20) into *rate. 0, or -1 with one line in err. */
int app_user_rate(unsigned *rate, char *err, size_t errlen);

/* Adds the per-user rate limit, the dashboards (needing a token) and the
 * gateway routes. MSVC_OK or the failing step's code. */
int app_routes(app_t *app, msvc_service_t *svc, unsigned user_rate);

/* Releases what app_routes() made; after the service is freed. */
void app_close(app_t *app);

#ifdef EX_HAVE_GRPC
#include <stdint.h>

#include <cjson/cJSON.h>

/* Receives order-service's orders as {"orders":[...]} (the callee's to
 * cJSON_Delete()), or NULL when they could not be had. */
typedef void (*bff_orders_fn)(cJSON *doc, void *data);

/* Lists user_id's orders with ListOrders of orders.v1.Orders, forwarding
 * req's Authorization; done runs later, once. MSVC_OK or an error code
 * (done is then never called). */
int bff_orders_grpc(app_t *app, msvc_http_req_t *req, int64_t user_id, uint32_t timeout_ms,
                    bff_orders_fn done, void *data);
#endif

#endif /* BFF_APP_H */
