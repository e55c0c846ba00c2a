/* The in-memory transport (see transport_mem.c). */
#ifndef MSVC_HTTP_TRANSPORT_MEM_H
#define MSVC_HTTP_TRANSPORT_MEM_H

#include <stdbool.h>

#include "http/transport.h"

/* Output beyond max_out bytes (0 = unlimited) is dropped. */
int msvc__mem_transport_new(uv_loop_t *loop, size_t max_out, msvc__transport_t **out);
/* Delivers bytes as if read from the peer; false (nothing delivered) while
 * the owner is not reading. */
bool msvc__mem_transport_push(msvc__transport_t *t, const char *data, size_t len);
/* The peer closed its side. */
void msvc__mem_transport_eof(msvc__transport_t *t);
/* Everything written so far. */
const char *msvc__mem_transport_output(msvc__transport_t *t, size_t *len);

#endif /* MSVC_HTTP_TRANSPORT_MEM_H */
