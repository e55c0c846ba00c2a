/* The transport seam of the HTTP client, kept apart from the client's other
 * internals so that code outside src/http (the fuzz target) can use it
 * without llhttp's headers. */
#ifndef MSVC_HTTP_CLIENT_FACTORY_H
#define MSVC_HTTP_CLIENT_FACTORY_H

#include <msvc/http_client.h>

#include "http/transport.h"

/* Makes an already connected transport instead of dialling TCP: the seam
 * the fuzz target uses, and where a TLS connector can later plug in. */
typedef int (*msvc__transport_factory_fn)(void *data, uv_loop_t *loop,
                                          const char *host, int port,
                                          msvc__transport_t **out);
void msvc__http_client_set_factory(msvc_http_client_t *c,
                                   msvc__transport_factory_fn fn, void *data);

#endif /* MSVC_HTTP_CLIENT_FACTORY_H */
