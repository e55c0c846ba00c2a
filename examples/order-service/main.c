/*
 * order-service: orders of the user named by the caller's access token,
 * checked against user-service by name (discovery, balancer, circuit
 * breaker, retries). The API is openapi.yaml beside this file;
 * configuration comes only from the environment (ORDER_DB and the MSVC_*
 * variables). With MSVC_EVENTS set, new orders start pending and take
 * part in the order saga (saga.c).
 */
#include <stdio.h>

#include <msvc/log.h>
#include <msvc/service.h>

#include "app.h"
#include "ex.h"

/* The service has stopped (signal or failed start): the event side goes
 * last, as the loop still runs until its handles are closed. */
static void on_stopped(msvc_service_t *svc, void *data) {
  (void)svc;
  app_events_close(data);
}

/* The event side starts once the service is up, so that a start that fails
 * leaves nothing of it on the loop. */
static void on_ready(msvc_service_t *svc, int status, void *data) {
  char err[512] = "";

  if (status == MSVC_OK && app_events_open(data, err, sizeof(err)) != 0) {
    MSVC_LOG_E("order-service", "%s", err);
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
  rc = msvc_service_new(uv_default_loop(), "order-service", &opts, &svc, err, sizeof(err));
  if (rc != MSVC_OK)
    return ex_new_failed("order-service", rc, err);
  if (app_open(&app, err, sizeof(err)) != 0) {
    fprintf(stderr, "order-service: %s\n", err);
    msvc_service_free(svc);
    return 2;
  }
  rc = app_routes(&app, svc);
#ifdef EX_HAVE_GRPC
  if (rc == MSVC_OK)
    rc = app_grpc(&app, svc);
#endif
  if (rc != MSVC_OK) {
    MSVC_LOG_E("order-service", "cannot add the routes: %s", msvc_strerror(rc));
    msvc_service_free(svc);
  } else {
    rc = msvc_service_run(svc); /* until SIGTERM or SIGINT; frees svc */
    if (rc != MSVC_OK)
      MSVC_LOG_E("order-service", "cannot start: %s", msvc_strerror(rc));
  }
#ifdef EX_HAVE_GRPC
  app_grpc_free(&app);
#endif
  app_close(&app);
  return rc == MSVC_OK ? 0 : 1;
}
