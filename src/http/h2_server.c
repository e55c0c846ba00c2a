/* HTTP/2 server sessions on nghttp2: see h2.h for the design. */
#include "http/h2.h"
#include "http/server.h"

int msvc__h2_res_end(msvc_http_req_t *req) { (void)req; return MSVC_ENOTSUP; }
size_t msvc__h2_res_pending(const msvc_http_req_t *req) { (void)req; return 0; }
