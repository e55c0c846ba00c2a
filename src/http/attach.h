/*
 * Serving a connection that arrived some other way than the server's own
 * listener: a TLS layer wraps an accepted TCP transport and attaches the
 * result; the fuzz target attaches an in-memory transport.
 */
#ifndef MSVC_HTTP_ATTACH_H
#define MSVC_HTTP_ATTACH_H

#include <msvc/http.h>

#include "http/transport.h"

/* The server owns tr from now on, even when this fails. */
int msvc__conn_attach(msvc_http_server_t *srv, msvc__transport_t *tr);

#endif /* MSVC_HTTP_ATTACH_H */
