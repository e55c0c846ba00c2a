/* bff: what the handlers share, and the routes. */
#ifndef BFF_APP_H
#define BFF_APP_H

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
};

/* Adds the dashboards (needing a token) and the gateway routes. MSVC_OK or
 * the failing route's code. */
int app_routes(app_t *app, msvc_service_t *svc);

#endif /* BFF_APP_H */
