/*
 * main() of an example service with an event side (order-service,
 * payment-service). Each of them compiles this file against its own app.h,
 * which names the service (APP_NAME) and declares app_t with app_open(),
 * app_routes(), app_events_open(), app_events_close() and app_close().
 *
 * The order matters: the database opens before the service exists on the
 * network; the event side starts once the service is ready (a start that
 * fails leaves nothing of it on the loop) and closes last, once the service
 * has stopped, as the loop still runs until its handles are closed.
 */
#include <stdio.h>

#include <msvc/log.h>
#include <msvc/service.h>

#include "app.h"
#include "ex.h"

static void on_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  app_events_close(data);
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  char err[512] = "";

  if (status == MSVC_OK && app_events_open(data, err, sizeof(err)) != 0) {
    MSVC_LOG_E(APP_NAME, "%s", err);
    msvc_service_stop(svc, NULL, NULL);
  }
}

int main(void) {
  app_t app = {0};
  msvc_service_opts_t opts;
  msvc_service_t *svc = NULL;
  char err[512] = "";
  int rc;

  msvc_service_opts_init(&opts);
  ex_jwt_defaults(&opts);
  opts.on_ready = on_ready;
  opts.on_stopped = on_stopped;
  opts.data = &app;
  rc = msvc_service_new(uv_default_loop(), APP_NAME, &opts, &svc, err, sizeof(err));
  if (rc != MSVC_OK)
    return ex_new_failed(APP_NAME, rc, err);
  if (app_open(&app, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", APP_NAME, err);
    msvc_service_free(svc);
    return 2;
  }
  rc = app_routes(&app, svc);
#ifdef EX_HAVE_GRPC
  if (rc == MSVC_OK)
    rc = app_grpc(&app, svc);
#endif
  if (rc != MSVC_OK) {
    MSVC_LOG_E(APP_NAME, "cannot add the routes: %s", msvc_strerror(rc));
    msvc_service_free(svc);
  } else {
    rc = msvc_service_run(svc); /* until SIGTERM or SIGINT; frees svc */
    if (rc != MSVC_OK)
      MSVC_LOG_E(APP_NAME, "cannot start: %s", msvc_strerror(rc));
  }
#ifdef EX_HAVE_GRPC
  app_grpc_free(&app);
#endif
  app_close(&app);
  return rc == MSVC_OK ? 0 : 1;
}
