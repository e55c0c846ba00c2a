/*
 * user-service: accounts, log-in with ES256 access tokens, and the JWK Set
 * other services verify them with. The API is openapi.yaml beside this
 * file; configuration comes only from the environment (USER_DB,
 * USER_SIGNING_KEY and the MSVC_* variables).
 */
#include <stdio.h>

#include <msvc/log.h>
#include <msvc/service.h>

#include "app.h"
#include "ex.h"

int main(void) {
  app_t app = {0};
  msvc_service_t *svc = NULL;
  char err[512] = "";
  int rc;

  rc = msvc_service_new(uv_default_loop(), "user-service", NULL, &svc, err, sizeof(err));
  if (rc != MSVC_OK)
    return ex_new_failed("user-service", rc, err);
  if (app_open(&app, err, sizeof(err)) != 0) {
    fprintf(stderr, "user-service: %s\n", err);
    msvc_service_free(svc);
    return 2;
  }
  rc = app_routes(&app, svc);
  if (rc != MSVC_OK) {
    MSVC_LOG_E("user-service", "cannot add the routes: %s", msvc_strerror(rc));
    msvc_service_free(svc);
  } else {
    rc = msvc_service_run(svc); /* until SIGTERM or SIGINT; frees svc */
    if (rc != MSVC_OK)
      MSVC_LOG_E("user-service", "cannot start: %s", msvc_strerror(rc));
  }
  app_close(&app);
  return rc == MSVC_OK ? 0 : 1;
}
