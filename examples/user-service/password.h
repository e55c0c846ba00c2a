/*
 * Password storage: salted PBKDF2-HMAC-SHA256 (RFC 8018), kept as one
 * self-describing string so the cost can be raised later without
 * invalidating stored passwords:
 *
 *   pbkdf2-sha256$<iterations>$<salt, 32 hex digits>$<key, 64 hex digits>
 */
#ifndef USER_PASSWORD_H
#define USER_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 20,000 rounds cost about 10 ms of one core here: enough to make guessing
 * expensive, cheap enough for a demo that logs in many times a second. A
 * production service would rather use 600,000 (OWASP, 2023) or Argon2id. */
#define PASSWORD_ITERATIONS 20000u

/* Largest accepted iteration count of a stored hash. */
#define PASSWORD_ITERATIONS_MAX 10000000u

/* Size of a buffer that holds any stored hash. */
#define PASSWORD_HASH_MAX 160

/*
 * Hashes password with a fresh random salt into out. Returns 0, or a
 * negative errno-style code when the random source or the hash fails.
 */
int password_hash(const char *password, uint32_t iterations, char *out, size_t outlen);

/* Whether password matches stored (a string made by password_hash()). A
 * malformed stored string never matches. The key comparison takes the
 * same time wherever the first difference is. */
bool password_verify(const char *password, const char *stored);

/* Spends the time of one verification without a stored hash, so that an
 * unknown email answers as slowly as a wrong password. */
void password_burn(const char *password);

#endif /* USER_PASSWORD_H */
