/*
 * The identity of the client of a request, as its transport reports it. The
 * functions are part of the TLS API (msvc/tls.h) but need nothing of the
 * TLS block: a secure transport answers through the transport interface.
 */
#include <msvc/tls.h>

#include "http/server.h"

static bool req_secure(const msvc_http_req_t *req, const msvc__peer_identity_t **peer) {
  if (peer != NULL)
    *peer = NULL;
  if (req == NULL || req->conn == NULL || req->conn->closing)
    return false;
  return msvc__transport_secure(req->conn->tr, peer);
}

bool msvc_tls_req_secure(const msvc_http_req_t *req) {
  return req_secure(req, NULL);
}

const char *msvc_tls_req_peer_subject(const msvc_http_req_t *req) {
  const msvc__peer_identity_t *p;

  return req_secure(req, &p) && p != NULL ? p->subject : NULL;
}

const char *msvc_tls_req_peer_san(const msvc_http_req_t *req, msvc_tls_san_t kind,
                                  size_t i) {
  const msvc__peer_identity_t *p;

  if (!req_secure(req, &p) || p == NULL || (unsigned)kind >= MSVC__SAN_KINDS ||
      i >= p->count[kind])
    return NULL;
  return p->names[kind][i];
}
