/*
 * The transports that the HTTP block implements itself (TCP here, memory in
 * transport_mem.h). The interface they implement lives in msvc-transport.h,
 * shared with the TLS block.
 */
#ifndef MSVC_HTTP_TRANSPORT_H
#define MSVC_HTTP_TRANSPORT_H

#include <uv.h>

#include "msvc-transport.h"

/* A TCP transport on loop; *stream is the handle to uv_accept into or
 * connect with before read_start. */
int msvc__tcp_transport_new(uv_loop_t *loop, msvc__transport_t **out,
                            uv_stream_t **stream);

#endif /* MSVC_HTTP_TRANSPORT_H */
