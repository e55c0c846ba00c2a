/* Internals shared by the middleware sources. */
#ifndef MSVC_SERVICE_MW_INTERNAL_H
#define MSVC_SERVICE_MW_INTERNAL_H

#include <stddef.h>

/* Writes ndigits random lower-case hex digits and a NUL into out. */
void msvc__mw_hex_random(char *out, size_t ndigits);

/* The trace context middleware, opening a server span per request when
 * tracer is not NULL (the tracer must outlive the server). */
struct msvc_http_server_s;
struct msvc_tracer_s;
int msvc__mw_trace_use_tracer(struct msvc_http_server_s *srv, struct msvc_tracer_s *tracer);

#endif /* MSVC_SERVICE_MW_INTERNAL_H */
