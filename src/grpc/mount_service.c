/*
 * A gRPC server inside a service: routes on every worker loop, and health
 * wired to the service's readiness.
 */
#include <string.h>

#include "grpc-internal.h"

static msvc_grpc_serving_t service_health(const char *name, void *data) {
  msvc__grpc_mount_t *mt = data;

  if (name[0] != '\0' && !msvc__grpc_server_has_service(mt->srv, name))
    return MSVC_GRPC_SERVICE_UNKNOWN;
  return msvc_service_state(mt->svc) == MSVC_SERVICE_READY ? MSVC_GRPC_SERVING
                                                           : MSVC_GRPC_NOT_SERVING;
}

int msvc_grpc_server_mount_service(msvc_grpc_server_t *srv, msvc_service_t *svc) {
  msvc__grpc_mount_t *mt;
  int r;

  if (srv == NULL || svc == NULL)
    return MSVC_EINVAL;
  mt = msvc__grpc_server_mount_slot(srv);
  mt->srv = srv;
  mt->svc = svc;
  if (!msvc__grpc_server_has_health(srv)) {
    r = msvc_grpc_server_health(srv, service_health, mt);
    if (r != MSVC_OK)
      return r;
  }
  return msvc__grpc_server_routes(srv, svc);
}
