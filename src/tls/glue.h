/*
 * What the HTTP code calls in the TLS block. Only compiled in when the tls
 * block is part of the build (MSVC_HAVE_TLS, set by src/tls/sources.cmake
 * on the HTTP sources that need it); no mbedtls type appears here.
 */
#ifndef MSVC_TLS_GLUE_H
#define MSVC_TLS_GLUE_H

#include <uv.h>

#include "http/transport.h"

struct msvc_tls_config_s;

/* Wraps an accepted TCP transport in a server-side TLS transport. The
 * result owns inner; on failure inner has been closed. */
int msvc__tls_wrap_server(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, msvc__transport_t **out);
/* Wraps a TCP transport that is about to connect to host:port. Same
 * ownership as msvc__tls_wrap_server(). */
int msvc__tls_wrap_client(struct msvc_tls_config_s *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, const char *host, int port,
                          msvc__transport_t **out);
/* A client configuration trusting the system CA bundle. */
int msvc__tls_default_client(struct msvc_tls_config_s **out);

#endif /* MSVC_TLS_GLUE_H */
