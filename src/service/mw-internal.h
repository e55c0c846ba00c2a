/* Internals shared by the middleware sources. */
#ifndef MSVC_SERVICE_MW_INTERNAL_H
#define MSVC_SERVICE_MW_INTERNAL_H

#include <stddef.h>

/* Writes ndigits random lower-case hex digits and a NUL into out. */
void msvc__mw_hex_random(char *out, size_t ndigits);

#endif /* MSVC_SERVICE_MW_INTERNAL_H */
