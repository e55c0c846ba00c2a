/*
 * msvc-jwt keygen: a fresh signing key, written as PEM. The library can
 * load and use keys but has no reason to make them, so the generation
 * (Mbed TLS's) lives in the tool.
 */
#include "keygen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include <msvc/error.h>
#include <msvc/jwt.h>

/* An RSA key of 8192 bits is under 7 KiB of PEM. */
#define PEM_MAX 16384

/* alg is one RS, PS or ES algorithm (keygen_alg_ok()). */
static int generate(mbedtls_pk_context *pk, unsigned alg, unsigned bits,
                    mbedtls_ctr_drbg_context *drbg) {
  mbedtls_ecp_group_id curve;
  int rc;

  if ((alg & MSVC_JWT_ALGS_RSA) != 0) {
    rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
    return rc != 0 ? rc
                   : mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), mbedtls_ctr_drbg_random, drbg,
                                         bits, 65537);
  }
  curve = alg == MSVC_JWT_ES256   ? MBEDTLS_ECP_DP_SECP256R1
          : alg == MSVC_JWT_ES384 ? MBEDTLS_ECP_DP_SECP384R1
                                  : MBEDTLS_ECP_DP_SECP521R1;
  rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  return rc != 0 ? rc
                 : mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random, drbg);
}

bool keygen_alg_ok(unsigned alg) {
  return (alg & (MSVC_JWT_ALGS_RSA | MSVC_JWT_ALGS_EC)) != 0 && (alg & (alg - 1)) == 0;
}

/* Creates path with mode 0600 (never over an existing file) and writes
 * text to it. 0, or errno. */
static int write_new(const char *path, const char *text, mode_t mode) {
  size_t len = strlen(text), off = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

  if (fd < 0)
    return errno;
  while (off < len) {
    ssize_t n = write(fd, text + off, len - off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;

      close(fd);
      unlink(path);
      return e;
    }
    off += (size_t)n;
  }
  if (close(fd) != 0) {
    int e = errno;

    unlink(path);
    return e;
  }
  return 0;
}

int keygen_run(unsigned alg, unsigned bits, const char *out, const char *pub) {
  static const char pers[] = "msvc-jwt keygen";
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_pk_context pk;
  unsigned char pem[PEM_MAX], pub_pem[PEM_MAX];
  msvc_jwt_key_t *key = NULL;
  char kid[44];
  int rc, status = 2, e;

  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  mbedtls_pk_init(&pk);
  rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                             (const unsigned char *)pers, sizeof(pers) - 1);
  if (rc == 0)
    rc = generate(&pk, alg, bits, &drbg);
  if (rc == 0)
    rc = mbedtls_pk_write_key_pem(&pk, pem, sizeof(pem));
  if (rc == 0 && pub != NULL)
    rc = mbedtls_pk_write_pubkey_pem(&pk, pub_pem, sizeof(pub_pem));
  if (rc != 0) {
    fprintf(stderr, "msvc-jwt: keygen: the key could not be made (Mbed TLS error -0x%04x)\n",
            (unsigned)-rc);
    goto done;
  }
  /* The library reads it back: the kid printed is the one `jwks` gives. */
  rc = msvc_jwt_key_from_pem((const char *)pem, strlen((const char *)pem), alg, NULL, &key);
  if (rc == MSVC_OK)
    rc = msvc_jwt_key_thumbprint(key, kid);
  if (rc != MSVC_OK) {
    fprintf(stderr, "msvc-jwt: keygen: the new key does not load: %s\n", msvc_strerror(rc));
    goto done;
  }
  if ((e = write_new(out, (const char *)pem, 0600)) != 0) {
    fprintf(stderr, "msvc-jwt: keygen: %s: %s%s\n", out, strerror(e),
            e == EEXIST ? " (a key is never overwritten; remove it first)" : "");
    goto done;
  }
  if (pub != NULL && (e = write_new(pub, (const char *)pub_pem, 0644)) != 0) {
    fprintf(stderr, "msvc-jwt: keygen: %s: %s%s\n", pub, strerror(e),
            e == EEXIST ? " (remove it first)" : "");
    unlink(out);
    goto done;
  }
  printf("%s\n", kid);
  status = 0;
done:
  msvc_jwt_key_free(key);
  mbedtls_platform_zeroize(pem, sizeof(pem));
  mbedtls_pk_free(&pk);
  mbedtls_ctr_drbg_free(&drbg);
  mbedtls_entropy_free(&entropy);
  return status;
}
