/*
 * The gRPC form of msvc_http_res_error() (see grpc_error.h). The code
 * names of the JSON errors say more than their HTTP statuses (503 is
 * either overload or a dependency down), so they choose the gRPC code;
 * the status decides for names not in the table.
 */
#include <stdio.h>
#include <string.h>

#include "../msvc-internal.h"
#include "grpc_error.h"

/* gRPC status codes used here (the values of the gRPC specification). */
enum {
  G_CANCELLED = 1,
  G_UNKNOWN = 2,
  G_INVALID_ARGUMENT = 3,
  G_DEADLINE_EXCEEDED = 4,
  G_NOT_FOUND = 5,
  G_PERMISSION_DENIED = 7,
  G_RESOURCE_EXHAUSTED = 8,
  G_UNIMPLEMENTED = 12,
  G_INTERNAL = 13,
  G_UNAVAILABLE = 14,
  G_DATA_LOSS = 15,
  G_UNAUTHENTICATED = 16
};

static const struct {
  const char *code;
  int grpc;
} by_code[] = {
    /* the router's 404 and 405: the method does not exist */
    {"NOT_FOUND", G_UNIMPLEMENTED},
    {"METHOD_NOT_ALLOWED", G_UNIMPLEMENTED},
    {"UNAUTHENTICATED", G_UNAUTHENTICATED},
    {"PERMISSION_DENIED", G_PERMISSION_DENIED},
    {"INVALID_ARGUMENT", G_INVALID_ARGUMENT},
    {"PAYLOAD_TOO_LARGE", G_RESOURCE_EXHAUSTED},
    {"HEADERS_TOO_LARGE", G_RESOURCE_EXHAUSTED},
    {"RATE_LIMITED", G_RESOURCE_EXHAUSTED},
    {"OVERLOADED", G_RESOURCE_EXHAUSTED},
    {"SHUTTING_DOWN", G_UNAVAILABLE},
    {"UPSTREAM_UNAVAILABLE", G_UNAVAILABLE},
    {"UPSTREAM_TIMEOUT", G_DEADLINE_EXCEEDED},
    {"INTERNAL", G_INTERNAL},
};

static int grpc_code(int status, const char *code) {
  size_t i, n = strlen(code);

  for (i = 0; i < sizeof(by_code) / sizeof(by_code[0]); i++)
    if (strcmp(code, by_code[i].code) == 0)
      return by_code[i].grpc;
  if (n > 10 && strcmp(code + n - 10, "_NOT_FOUND") == 0)
    return G_NOT_FOUND;
  switch (status) {
  case 400: return G_INVALID_ARGUMENT;
  case 401: return G_UNAUTHENTICATED;
  case 403: return G_PERMISSION_DENIED;
  case 404: return G_NOT_FOUND;
  case 408: return G_DEADLINE_EXCEEDED;
  case 413: case 429: case 431: return G_RESOURCE_EXHAUSTED;
  case 499: return G_CANCELLED;
  case 501: return G_UNIMPLEMENTED;
  case 503: return G_UNAVAILABLE;
  case 504: return G_DEADLINE_EXCEEDED;
  default: return status >= 500 ? G_INTERNAL : G_UNKNOWN;
  }
}

bool msvc__req_is_grpc(const msvc_http_req_t *req) {
  const char *ct = msvc_http_req_header(req, "content-type");

  return ct != NULL && strncmp(ct, "application/grpc", 16) == 0 &&
         (ct[16] == '\0' || ct[16] == '+' || ct[16] == ';');
}

int msvc__res_grpc_error(msvc_http_res_t *res, int status, const char *code,
                         const char *message) {
  static const char hex[] = "0123456789ABCDEF";
  msvc__buf_t msg;
  char num[8];
  const unsigned char *p;
  int rc;

  snprintf(num, sizeof(num), "%d", grpc_code(status, code));
  msvc__buf_init(&msg, 0);
  /* grpc-message is percent-encoded: bytes outside 0x20..0x7e and '%'. */
  for (p = (const unsigned char *)message; *p != '\0'; p++) {
    if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
      msvc__buf_putc(&msg, (char)*p);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};

      msvc__buf_append(&msg, e, 3);
    }
  }
  msvc_http_res_trailer(res, "grpc-status", num);
  if (msg.err == MSVC_OK && msg.len > 0)
    msvc_http_res_trailer(res, "grpc-message", msg.data);
  msvc__buf_free(&msg);
  rc = msvc_http_res_start(res, 200, "application/grpc");
  if (rc == MSVC_EINVAL || rc == MSVC_EHTTP_RESPONDED)
    return rc;
  return msvc_http_res_end(res);
}

msvc__grpc_peer_t msvc__grpc_peer_outcome(const msvc_http_response_t *res) {
  const char *s;
  int code = 0;

  if (res == NULL || msvc_http_response_status(res) != 200)
    return MSVC__GRPC_PEER_FINE;
  s = msvc__http_response_grpc_status(res);
  if (s == NULL || s[0] == '\0' || strlen(s) > 2)
    return MSVC__GRPC_PEER_FINE;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return MSVC__GRPC_PEER_FINE;
    code = code * 10 + (*s - '0');
  }
  /* gRPC's own split: these say the server could not do its part, the
   * others (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED...) are the
   * answer to this request and say nothing about the server's health. */
  switch (code) {
  case G_UNKNOWN: case G_DEADLINE_EXCEEDED: case G_INTERNAL: case G_UNAVAILABLE:
  case G_DATA_LOSS:
    return MSVC__GRPC_PEER_FAILED;
  case G_RESOURCE_EXHAUSTED:
    return MSVC__GRPC_PEER_OVERLOADED;
  default:
    return MSVC__GRPC_PEER_FINE;
  }
}
