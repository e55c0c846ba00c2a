/* msvc-jwt keygen: a new key pair as PEM (see keygen.c). */
#ifndef MSVC_JWT_TOOL_KEYGEN_H
#define MSVC_JWT_TOOL_KEYGEN_H

#include <stdbool.h>

/* Smallest and largest RSA modulus keygen makes, in bits. */
#define KEYGEN_RSA_BITS_MIN 2048
#define KEYGEN_RSA_BITS_MAX 8192

/* Whether keygen can make a key for alg: exactly one RS, PS or ES
 * algorithm (HMAC secrets are random bytes, not key pairs). */
bool keygen_alg_ok(unsigned alg);

/*
 * Makes a key for alg (RSA of bits bits for RS and PS; the algorithm's
 * curve for ES), writes the private key as PEM to out (created with mode
 * 0600, never over an existing file) and, when pub is not NULL, the public
 * key as PEM to pub, then prints the key's RFC 7638 thumbprint (its kid).
 * Returns the exit status: 0, or 2 with a message on stderr.
 */
int keygen_run(unsigned alg, unsigned bits, const char *out, const char *pub);

#endif /* MSVC_JWT_TOOL_KEYGEN_H */
