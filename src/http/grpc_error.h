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

/* Whether the request is a gRPC call (Content-Type application/grpc...). */
bool msvc__req_is_grpc(const msvc_http_req_t *req);

/* Answers msvc_http_res_error()'s status and code as a gRPC status:
 * HTTP 200, no body, grpc-status and grpc-message trailers. */
int msvc__res_grpc_error(msvc_http_res_t *res, int status, const char *code,
                         const char *message);

#endif /* MSVC_HTTP_GRPC_ERROR_H */
