/* HTTP/2 client connections on nghttp2: see h2.h for the design. */
#include "http/client.h"
#include "http/h2.h"

int msvc__h2c_prepare(msvc_http_call_t *call, const msvc_http_request_t *r,
                      const char *path, size_t path_len) {
  (void)call; (void)r; (void)path; (void)path_len;
  return MSVC_ENOTSUP;
}
void msvc__h2c_dispatch(msvc_http_call_t *call) {
  msvc__call_attempt_end(call, MSVC_ENOTSUP, false);
}
void msvc__h2c_abandon(msvc_http_call_t *call) { (void)call; }
void msvc__h2c_close_all(msvc__endpoint_t *ep) { (void)ep; }
