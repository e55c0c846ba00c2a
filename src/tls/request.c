/* The TLS identity of the client of a request. */
#include "http/server.h"
#include "tls/tls-internal.h"

static msvc__transport_t *req_transport(const msvc_http_req_t *req) {
  if (req == NULL || req->conn == NULL || req->conn->closing)
    return NULL;
  return req->conn->tr;
}

bool msvc_tls_req_secure(const msvc_http_req_t *req) {
  return msvc__tls_transport_is(req_transport(req));
}

const char *msvc_tls_req_peer_subject(const msvc_http_req_t *req) {
  const msvc__tls_peer_t *p = msvc__tls_transport_peer(req_transport(req));
  return p != NULL ? p->subject : NULL;
}

const char *msvc_tls_req_peer_san(const msvc_http_req_t *req, msvc_tls_san_t kind,
                                  size_t i) {
  const msvc__tls_peer_t *p = msvc__tls_transport_peer(req_transport(req));

  if (p == NULL || (unsigned)kind > MSVC_TLS_SAN_IP || i >= p->count[kind])
    return NULL;
  return p->names[kind][i];
}
