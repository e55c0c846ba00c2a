/*
 * The signature primitives on mbedtls 2.28, with the length and range
 * checks it leaves to its callers.
 */
#include "jwt/jwt-internal.h"

#include <mbedtls/constant_time.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

typedef struct alg_info_s {
  mbedtls_md_type_t md;
  size_t hlen;
  int family; /* JWT_KTY_* */
  bool pss;
} alg_info_t;

static bool alg_info(msvc_jwt_alg_t alg, alg_info_t *ai) {
  unsigned a = (unsigned)alg;
  size_t idx;

  if (a == 0 || (a & (a - 1)) != 0 || (a & ~(unsigned)MSVC_JWT_ALGS_ALL) != 0)
    return false;
  idx = (size_t)__builtin_ctz(a); /* HS256 .. ES512 in groups of three */
  ai->md = idx % 3 == 0 ? MBEDTLS_MD_SHA256 : idx % 3 == 1 ? MBEDTLS_MD_SHA384
                                                           : MBEDTLS_MD_SHA512;
  ai->hlen = idx % 3 == 0 ? 32 : idx % 3 == 1 ? 48 : 64;
  ai->family = idx < 3 ? JWT_KTY_OCT : idx < 9 ? JWT_KTY_RSA : JWT_KTY_EC;
  ai->pss = idx >= 6 && idx < 9;
  return true;
}

static int digest(const alg_info_t *ai, const unsigned char *in, size_t len,
                  unsigned char out[64]) {
  if (ai->md == MBEDTLS_MD_SHA256)
    return mbedtls_sha256_ret(in, len, out, 0);
  return mbedtls_sha512_ret(in, len, out, ai->md == MBEDTLS_MD_SHA384);
}

/* ---- HMAC ------------------------------------------------------------------ */

static void pads(const unsigned char *k, size_t klen, size_t block,
                 unsigned char ipad[128], unsigned char opad[128]) {
  size_t i;

  memset(ipad, 0x36, block);
  memset(opad, 0x5c, block);
  for (i = 0; i < klen; i++) {
    ipad[i] ^= k[i];
    opad[i] ^= k[i];
  }
}

int msvc__jwt_hmac_prepare(msvc_jwt_key_t *key) {
  unsigned char ipad[128], opad[128], kh[64];
  const unsigned char *k = key->secret;
  size_t klen = key->secret_len;
  int i;

  /* SHA-256: 64-byte blocks; a longer key is hashed first (RFC 2104). */
  if (klen > 64) {
    mbedtls_sha256_ret(key->secret, klen, kh, 0);
    k = kh;
    klen = 32;
  }
  pads(k, klen, 64, ipad, opad);
  for (i = 0; i < 2; i++) {
    mbedtls_sha256_init(&key->hs256[i]);
    mbedtls_sha256_starts_ret(&key->hs256[i], 0);
    mbedtls_sha256_update_ret(&key->hs256[i], i == 0 ? ipad : opad, 64);
  }
  for (i = 0; i < 2; i++) { /* SHA-384 and SHA-512: 128-byte blocks */
    bool is384 = i == 0;
    mbedtls_sha512_context *c = is384 ? key->hs384 : key->hs512;
    int j;

    k = key->secret;
    klen = key->secret_len;
    if (klen > 128) {
      mbedtls_sha512_ret(key->secret, klen, kh, is384);
      k = kh;
      klen = is384 ? 48 : 64;
    }
    pads(k, klen, 128, ipad, opad);
    for (j = 0; j < 2; j++) {
      mbedtls_sha512_init(&c[j]);
      mbedtls_sha512_starts_ret(&c[j], is384);
      mbedtls_sha512_update_ret(&c[j], j == 0 ? ipad : opad, 128);
    }
  }
  mbedtls_platform_zeroize(ipad, sizeof(ipad));
  mbedtls_platform_zeroize(opad, sizeof(opad));
  mbedtls_platform_zeroize(kh, sizeof(kh));
  return MSVC_OK;
}

static void hmac(const msvc_jwt_key_t *key, const alg_info_t *ai,
                 const unsigned char *in, size_t len, unsigned char mac[64]) {
  unsigned char inner[64];

  if (ai->md == MBEDTLS_MD_SHA256) {
    mbedtls_sha256_context c = key->hs256[0];

    mbedtls_sha256_update_ret(&c, in, len);
    mbedtls_sha256_finish_ret(&c, inner);
    c = key->hs256[1];
    mbedtls_sha256_update_ret(&c, inner, 32);
    mbedtls_sha256_finish_ret(&c, mac);
    mbedtls_platform_zeroize(&c, sizeof(c));
  } else {
    const mbedtls_sha512_context *pre = ai->md == MBEDTLS_MD_SHA384 ? key->hs384 : key->hs512;
    mbedtls_sha512_context c = pre[0];

    mbedtls_sha512_update_ret(&c, in, len);
    mbedtls_sha512_finish_ret(&c, inner);
    c = pre[1];
    mbedtls_sha512_update_ret(&c, inner, ai->hlen);
    mbedtls_sha512_finish_ret(&c, mac);
    mbedtls_platform_zeroize(&c, sizeof(c));
  }
}

/* ---- verification ---------------------------------------------------------- */

static int verify_ec(const msvc_jwt_key_t *key, const alg_info_t *ai,
                     const unsigned char *hash, const unsigned char *sig, size_t len) {
  /* mbedtls wants a mutable group, but after the warm-up at load it only
   * reads the precomputed table. */
  mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
  size_t half = len / 2;
  mbedtls_mpi r, s;
  int rc;

  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  rc = mbedtls_mpi_read_binary(&r, sig, half);
  if (rc == 0)
    rc = mbedtls_mpi_read_binary(&s, sig + half, half);
  if (rc != 0) {
    rc = msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_SIGNATURE);
  } else if (mbedtls_mpi_cmp_int(&r, 1) < 0 || mbedtls_mpi_cmp_int(&s, 1) < 0 ||
             mbedtls_mpi_cmp_mpi(&r, &ec->grp.N) >= 0 ||
             mbedtls_mpi_cmp_mpi(&s, &ec->grp.N) >= 0) {
    /* r = s = 0 is the "psychic signature" that verified anything in Java
     * 15-18; out-of-range values are rejected before any arithmetic. */
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_SIGNATURE, "ECDSA r or s out of range");
  } else {
    rc = mbedtls_ecdsa_verify(&ec->grp, hash, ai->hlen, &ec->Q, &r, &s);
    if (rc != 0)
      rc = msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_SIGNATURE),
                          "ECDSA signature does not verify");
  }
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  return rc;
}

static int verify_rsa(const msvc_jwt_key_t *key, const alg_info_t *ai,
                      const unsigned char *hash, const unsigned char *sig) {
  mbedtls_rsa_context *rsa = mbedtls_pk_rsa(key->pk);
  int rc;

  if (ai->pss)
    rc = mbedtls_rsa_rsassa_pss_verify_ext(rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC, ai->md,
                                           (unsigned)ai->hlen, hash, ai->md,
                                           (int)ai->hlen, sig);
  else
    rc = mbedtls_rsa_rsassa_pkcs1_v15_verify(rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC, ai->md,
                                             (unsigned)ai->hlen, hash, sig);
  if (rc != 0)
    return msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_SIGNATURE),
                          "RSA signature does not verify");
  return MSVC_OK;
}

int msvc__jwt_verify_sig(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg,
                         const unsigned char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len) {
  alg_info_t ai;
  unsigned char h[64];

  if (!alg_info(alg, &ai) || (key->algs & (unsigned)alg) == 0 || ai.family != key->kty)
    return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "key does not allow %s",
                          msvc_jwt_alg_name(alg) ? msvc_jwt_alg_name(alg) : "this algorithm");
  if (ai.family == JWT_KTY_OCT) {
    int diff;

    if (sig_len != ai.hlen)
      return msvc__jwt_fail(MSVC_EJWT_BAD_SIGNATURE, "HMAC of %zu bytes, %zu expected",
                            sig_len, ai.hlen);
    hmac(key, &ai, input, input_len, h);
    diff = mbedtls_ct_memcmp(h, sig, ai.hlen);
    mbedtls_platform_zeroize(h, sizeof(h));
    return diff == 0 ? MSVC_OK : msvc__jwt_fail(MSVC_EJWT_BAD_SIGNATURE, "HMAC does not match");
  }
  /* mbedtls 2.28 reads a full modulus' worth of signature with no length
   * argument: a shorter buffer would be read out of bounds. */
  if (sig_len != key->sig_len)
    return msvc__jwt_fail(MSVC_EJWT_BAD_SIGNATURE, "signature of %zu bytes, %zu expected",
                          sig_len, key->sig_len);
  if (digest(&ai, input, input_len, h) != 0)
    return MSVC_ENOMEM;
  if (ai.family == JWT_KTY_RSA)
    return verify_rsa(key, &ai, h, sig);
  return verify_ec(key, &ai, h, sig, sig_len);
}

/* ---- signing ----------------------------------------------------------------- */

static int sign_ec(const msvc_jwt_key_t *key, const alg_info_t *ai,
                   const unsigned char *hash, unsigned char *sig) {
  mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
  size_t half = key->sig_len / 2;
  mbedtls_mpi r, s;
  int rc;

  mbedtls_mpi_init(&r);
  mbedtls_mpi_init(&s);
  /* JWS carries raw r||s, each padded to the coordinate size, not DER. */
  rc = mbedtls_ecdsa_sign_det_ext(&ec->grp, &r, &s, &ec->d, hash, ai->hlen, ai->md,
                                  msvc__jwt_rng, NULL);
  if (rc == 0)
    rc = mbedtls_mpi_write_binary(&r, sig, half);
  if (rc == 0)
    rc = mbedtls_mpi_write_binary(&s, sig + half, half);
  mbedtls_mpi_free(&r);
  mbedtls_mpi_free(&s);
  return rc;
}

/* mbedtls signs PSS only with a context set to PKCS#1 v2.1 padding; the
 * key's own context is shared with verifying threads, so sign with a copy
 * (signing is rare next to verifying). */
static int sign_pss(const msvc_jwt_key_t *key, const alg_info_t *ai,
                    const unsigned char *hash, unsigned char *sig) {
  mbedtls_rsa_context tmp;
  int rc;

  mbedtls_rsa_init(&tmp, MBEDTLS_RSA_PKCS_V21, ai->md);
  rc = mbedtls_rsa_copy(&tmp, mbedtls_pk_rsa(key->pk));
  if (rc == 0) {
    mbedtls_rsa_set_padding(&tmp, MBEDTLS_RSA_PKCS_V21, ai->md);
    rc = mbedtls_rsa_rsassa_pss_sign_ext(&tmp, msvc__jwt_rng, NULL, ai->md,
                                         (unsigned)ai->hlen, hash, (int)ai->hlen, sig);
  }
  mbedtls_rsa_free(&tmp);
  return rc;
}

int msvc__jwt_sign_sig(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg,
                       const unsigned char *input, size_t input_len,
                       unsigned char *sig, size_t *sig_len) {
  alg_info_t ai;
  unsigned char h[64];
  int rc;

  if (!key->priv)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "a public key cannot sign");
  if (!alg_info(alg, &ai) || (key->algs & (unsigned)alg) == 0 || ai.family != key->kty)
    return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "key does not allow this algorithm");
  if (ai.family == JWT_KTY_OCT) {
    hmac(key, &ai, input, input_len, sig);
    *sig_len = ai.hlen;
    return MSVC_OK;
  }
  if (digest(&ai, input, input_len, h) != 0)
    return MSVC_ENOMEM;
  if (ai.family == JWT_KTY_EC) {
    rc = sign_ec(key, &ai, h, sig);
  } else if (ai.pss) {
    rc = sign_pss(key, &ai, h, sig);
  } else {
    rc = mbedtls_rsa_rsassa_pkcs1_v15_sign(mbedtls_pk_rsa(key->pk), msvc__jwt_rng, NULL,
                                           MBEDTLS_RSA_PRIVATE, ai.md, (unsigned)ai.hlen,
                                           h, sig);
  }
  if (rc != 0)
    return msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY), "signing failed");
  *sig_len = key->sig_len;
  return MSVC_OK;
}
