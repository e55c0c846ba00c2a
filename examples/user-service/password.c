/* Password hashing (see password.h). */
#include "password.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include "ex.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define PREFIX "pbkdf2-sha256$"

static int derive(const char *password, const unsigned char *salt, uint32_t iterations,
                  unsigned char key[KEY_LEN]) {
  const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  mbedtls_md_context_t md;
  int rc;

  if (info == NULL)
    return -1;
  mbedtls_md_init(&md);
  rc = mbedtls_md_setup(&md, info, 1);
  if (rc == 0)
    rc = mbedtls_pkcs5_pbkdf2_hmac(&md, (const unsigned char *)password,
                                   strlen(password), salt, SALT_LEN, iterations,
                                   KEY_LEN, key);
  mbedtls_md_free(&md);
  return rc == 0 ? 0 : -1;
}

int password_hash(const char *password, uint32_t iterations, char *out, size_t outlen) {
  unsigned char salt[SALT_LEN], key[KEY_LEN];
  char salt_hex[2 * SALT_LEN + 1], key_hex[2 * KEY_LEN + 1];
  int rc, n;

  if (iterations == 0 || iterations > PASSWORD_ITERATIONS_MAX)
    return -EINVAL;
  rc = ex_random(salt, sizeof(salt));
  if (rc != 0)
    return rc;
  if (derive(password, salt, iterations, key) != 0)
    return -EIO;
  ex_hex(salt, sizeof(salt), salt_hex);
  ex_hex(key, sizeof(key), key_hex);
  memset(key, 0, sizeof(key));
  n = snprintf(out, outlen, PREFIX "%u$%s$%s", (unsigned)iterations, salt_hex, key_hex);
  return n > 0 && (size_t)n < outlen ? 0 : -ERANGE;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decodes exactly len bytes of lower-case hex ending at a '$' or the end. */
static const char *unhex(const char *s, unsigned char *out, size_t len) {
  size_t i;

  for (i = 0; i < len; i++) {
    int hi = hex_value(s[2 * i]), lo = hi < 0 ? -1 : hex_value(s[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return NULL;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return s + 2 * len;
}

static bool parse(const char *stored, uint32_t *iterations, unsigned char *salt,
                  unsigned char *key) {
  const char *p;
  int64_t iter;
  char num[16];
  size_t n;

  if (strncmp(stored, PREFIX, strlen(PREFIX)) != 0)
    return false;
  p = stored + strlen(PREFIX);
  n = strcspn(p, "$");
  if (n == 0 || n >= sizeof(num) || p[n] != '$')
    return false;
  memcpy(num, p, n);
  num[n] = '\0';
  if (!ex_parse_int(num, 1, PASSWORD_ITERATIONS_MAX, &iter))
    return false;
  *iterations = (uint32_t)iter;
  p = unhex(p + n + 1, salt, SALT_LEN);
  if (p == NULL || *p != '$')
    return false;
  p = unhex(p + 1, key, KEY_LEN);
  return p != NULL && *p == '\0';
}

bool password_verify(const char *password, const char *stored) {
  unsigned char salt[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
  volatile unsigned char diff = 0;
  uint32_t iterations;
  size_t i;

  if (stored == NULL || !parse(stored, &iterations, salt, want))
    return false;
  if (derive(password, salt, iterations, got) != 0)
    return false;
  for (i = 0; i < KEY_LEN; i++)
    diff |= (unsigned char)(want[i] ^ got[i]);
  memset(got, 0, sizeof(got));
  return diff == 0;
}

void password_burn(const char *password) {
  static const unsigned char salt[SALT_LEN];
  unsigned char key[KEY_LEN];

  (void)derive(password, salt, PASSWORD_ITERATIONS, key);
}
