/*
 * Errors of gRPC requests: a call refused by the router or a middleware
 * (no such method, no token, rate limit, overload, draining) is answered
 * the way gRPC clients read errors, as a status in trailers, rather than
 * with the JSON error body.
 */
#ifndef MSVC_HTTP_GRPC_ERROR_H
#define MSVC_HTTP_GRPC_ERROR_H

#include <stdbool.h>

#include <msvc/http.h>
#include <msvc/http_client.h>

/* Whether the request is a gRPC call (Content-Type application/grpc...). */
bool msvc__req_is_grpc(const msvc_http_req_t *req);

/* Answers msvc_http_res_error()'s status and code as a gRPC status:
 * HTTP 200, no body, grpc-status and grpc-message trailers. */
int msvc__res_grpc_error(msvc_http_res_t *res, int status, const char *code,
                         const char *message);

/* What a gRPC status in a response says about the server that sent it. */
typedef enum {
  MSVC__GRPC_PEER_FINE = 0, /* no gRPC status, OK, or the caller's fault */
  MSVC__GRPC_PEER_FAILED,   /* UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, DATA_LOSS */
  MSVC__GRPC_PEER_OVERLOADED /* RESOURCE_EXHAUSTED: shed, like 429 */
} msvc__grpc_peer_t;

/* Reads grpc-status from the trailers (or the headers of a trailers-only
 * answer) of a 200 response; anything else is MSVC__GRPC_PEER_FINE. */
msvc__grpc_peer_t msvc__grpc_peer_outcome(const msvc_http_response_t *res);

/* The grpc-status of an answer, from its trailers or else its head (the
 * value of msvc_http_response_trailer() or msvc_http_response_header()),
 * or NULL. Borrowed from res. */
const char *msvc__http_response_grpc_status(const msvc_http_response_t *res);

#endif /* MSVC_HTTP_GRPC_ERROR_H */
