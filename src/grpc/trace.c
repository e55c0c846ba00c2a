/*
 * Spans of gRPC calls, named and described as OpenTelemetry's semantic
 * conventions for RPC ask: name `package.Service/Method`, attributes
 * rpc.system, rpc.service, rpc.method and rpc.grpc.status_code. The
 * conventions differ on status by side: a client marks every code but OK
 * as an error; a server only the codes that say it failed itself
 * (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
 * DATA_LOSS), not a caller's mistake such as NOT_FOUND.
 */
#include <stdio.h>
#include <string.h>

#include <msvc/trace.h>

#include "grpc-internal.h"

static bool server_error(int code) {
  switch (code) {
  case MSVC_GRPC_UNKNOWN:
  case MSVC_GRPC_DEADLINE_EXCEEDED:
  case MSVC_GRPC_UNIMPLEMENTED:
  case MSVC_GRPC_INTERNAL:
  case MSVC_GRPC_UNAVAILABLE:
  case MSVC_GRPC_DATA_LOSS:
    return true;
  default:
    return false;
  }
}

void msvc__grpc_span_finish(msvc_span_t *s, const char *path, int code, const char *message,
                            bool server) {
  const char *slash;
  char svc[256];
  size_t n;

  if (s == NULL || path == NULL || path[0] != '/' || (slash = strchr(path + 1, '/')) == NULL)
    return;
  if (server ? server_error(code) : code != MSVC_GRPC_OK)
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR,
                               message != NULL && message[0] != '\0'
                                   ? message : msvc_grpc_code_name(code));
  /* The status is set first: a span that will be dropped gets nothing more. */
  if (!msvc_trace_span_wanted(s))
    return;
  n = (size_t)(slash - path - 1);
  if (n >= sizeof(svc))
    n = sizeof(svc) - 1;
  memcpy(svc, path + 1, n);
  svc[n] = '\0';
  msvc_trace_span_set_name(s, path + 1);
  msvc_trace_span_set_str(s, "rpc.system", "grpc");
  msvc_trace_span_set_str(s, "rpc.service", svc);
  msvc_trace_span_set_str(s, "rpc.method", slash + 1);
  msvc_trace_span_set_int(s, "rpc.grpc.status_code", code);
}
