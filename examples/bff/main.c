/*
 * bff: the backend for the web and mobile front ends (dashboards that
 * fan out to user-service and order-service and degrade when order-service
 * is down) and the API gateway in front of both (/api/...). The API is
 * openapi.yaml beside this file; configuration comes only from the
 * MSVC_* environment.
 */
#include <stdio.h>

#include <msvc/log.h>
#include <msvc/service.h>

#include "app.h"
#include "ex.h"

int main(void) {
  app_t app = {0};
  msvc_service_opts_t opts;
  msvc_service_t *svc = NULL;
  char err[512] = "";
  unsigned user_rate;
  int rc;

  if (app_user_rate(&user_rate, err, sizeof(err)) != 0) {
    fprintf(stderr, "bff: %s\n", err);
    return 2;
  }
  msvc_service_opts_init(&opts);
  ex_jwt_defaults(&opts);
  rc = msvc_service_new(uv_default_loop(), "bff", &opts, &svc, err, sizeof(err));
  if (rc != MSVC_OK)
    return ex_new_failed("bff", rc, err);
  rc = app_routes(&app, svc, user_rate);
  if (rc != MSVC_OK) {
    MSVC_LOG_E("bff", "cannot add the routes: %s", msvc_strerror(rc));
    msvc_service_free(svc);
    app_close(&app);
    return 1;
  }
  rc = msvc_service_run(svc); /* until SIGTERM or SIGINT; frees svc */
  if (rc != MSVC_OK)
    MSVC_LOG_E("bff", "cannot start: %s", msvc_strerror(rc));
  app_close(&app);
  return rc == MSVC_OK ? 0 : 1;
}
