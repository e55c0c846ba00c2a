/*
 * Keys: loading from PEM and raw secrets, binding to algorithms, the RFC 7638
 * thumbprint, and the public JWK.
 */
#include "jwt/jwt-internal.h"

#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

msvc_jwt_key_t *msvc__jwt_key_alloc(int kty) {
  msvc_jwt_key_t *key = msvc__calloc(1, sizeof(*key));

  if (key == NULL)
    return NULL;
  atomic_init(&key->refs, 1);
  key->kty = kty;
  mbedtls_pk_init(&key->pk);
  return key;
}

msvc_jwt_key_t *msvc__jwt_key_ref(msvc_jwt_key_t *key) {
  atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
  return key;
}

void msvc_jwt_key_free(msvc_jwt_key_t *key) {
  if (key == NULL || atomic_fetch_sub_explicit(&key->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (key->secret != NULL) {
    mbedtls_platform_zeroize(key->secret, key->secret_len);
    msvc__free(key->secret);
  }
  mbedtls_pk_free(&key->pk);
  /* The prepared HMAC states are as good as the secret. */
  mbedtls_platform_zeroize(key->hs256, sizeof(key->hs256));
  mbedtls_platform_zeroize(key->hs384, sizeof(key->hs384));
  mbedtls_platform_zeroize(key->hs512, sizeof(key->hs512));
  msvc__free(key->kid);
  msvc__free(key);
}

int msvc__jwt_key_set_kid(msvc_jwt_key_t *key, const char *kid, size_t len) {
  msvc__free(key->kid);
  key->kid = NULL;
  if (kid == NULL)
    return MSVC_OK;
  key->kid = msvc__strndup(kid, len);
  return key->kid != NULL ? MSVC_OK : MSVC_ENOMEM;
}

const char *msvc_jwt_key_kid(const msvc_jwt_key_t *key) {
  return key != NULL ? key->kid : NULL;
}

unsigned msvc_jwt_key_algs(const msvc_jwt_key_t *key) {
  return key != NULL ? key->algs : 0;
}

bool msvc_jwt_key_can_sign(const msvc_jwt_key_t *key) {
  return key != NULL && key->priv;
}

/* ---- canonical members (RFC 7638 order: lexicographic) --------------------- */

static const char *ec_curve_name(mbedtls_ecp_group_id id) {
  switch (id) {
  case MBEDTLS_ECP_DP_SECP256R1: return "P-256";
  case MBEDTLS_ECP_DP_SECP384R1: return "P-384";
  case MBEDTLS_ECP_DP_SECP521R1: return "P-521";
  default: return NULL;
  }
}

static void put_member(msvc__buf_t *b, const char *name, const unsigned char *v,
                       size_t len, bool comma) {
  msvc__buf_printf(b, "%s\"%s\":\"", comma ? "," : "", name);
  msvc__b64url_encode(b, v, len);
  msvc__buf_putc(b, '"');
}

static int ec_members(const msvc_jwt_key_t *key, msvc__buf_t *b) {
  const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
  unsigned char pt[1 + 2 * 66];
  size_t n, coord;
  int rc;

  rc = mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED,
                                      &n, pt, sizeof(pt));
  if (rc != 0)
    return msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
  coord = (n - 1) / 2;
  msvc__buf_printf(b, "\"crv\":\"%s\",\"kty\":\"EC\"", ec_curve_name(ec->grp.id));
  put_member(b, "x", pt + 1, coord, true);
  put_member(b, "y", pt + 1 + coord, coord, true);
  return MSVC_OK;
}

static int rsa_members(const msvc_jwt_key_t *key, msvc__buf_t *b) {
  const mbedtls_rsa_context *rsa = mbedtls_pk_rsa(key->pk);
  size_t nlen = mbedtls_rsa_get_len(rsa), skip = 0;
  unsigned char e[8];
  unsigned char *n = msvc__malloc(nlen);
  int rc;

  if (n == NULL)
    return MSVC_ENOMEM;
  rc = mbedtls_rsa_export_raw(rsa, n, nlen, NULL, 0, NULL, 0, NULL, 0, e, sizeof(e));
  if (rc != 0) {
    msvc__free(n);
    return msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
  }
  while (skip + 1 < sizeof(e) && e[skip] == 0)
    skip++;
  put_member(b, "e", e + skip, sizeof(e) - skip, false);
  msvc__buf_puts(b, ",\"kty\":\"RSA\"");
  put_member(b, "n", n, nlen, true); /* nlen is the modulus' own length */
  msvc__free(n);
  return MSVC_OK;
}

static int key_members(const msvc_jwt_key_t *key, msvc__buf_t *b) {
  switch (key->kty) {
  case JWT_KTY_EC: return ec_members(key, b);
  case JWT_KTY_RSA: return rsa_members(key, b);
  default:
    put_member(b, "k", key->secret, key->secret_len, false);
    msvc__buf_puts(b, ",\"kty\":\"oct\"");
    return MSVC_OK;
  }
}

static int compute_identity(msvc_jwt_key_t *key) {
  msvc__buf_t b;
  unsigned char extra[5];
  mbedtls_sha256_context sha;
  int rc;

  msvc__buf_init(&b, 0);
  msvc__buf_putc(&b, '{');
  rc = key_members(key, &b);
  msvc__buf_putc(&b, '}');
  if (rc == MSVC_OK && b.err != MSVC_OK)
    rc = b.err;
  if (rc == MSVC_OK)
    rc = mbedtls_sha256_ret((const unsigned char *)b.data, b.len, key->thumb, 0) == 0
             ? MSVC_OK : MSVC_EJWT_BAD_KEY;
  if (b.data != NULL)
    mbedtls_platform_zeroize(b.data, b.len); /* holds an HMAC secret */
  msvc__buf_free(&b);
  if (rc != MSVC_OK)
    return rc;
  extra[0] = (unsigned char)key->kty;
  extra[1] = (unsigned char)(key->algs >> 24);
  extra[2] = (unsigned char)(key->algs >> 16);
  extra[3] = (unsigned char)(key->algs >> 8);
  extra[4] = (unsigned char)key->algs;
  mbedtls_sha256_init(&sha);
  mbedtls_sha256_starts_ret(&sha, 0);
  mbedtls_sha256_update_ret(&sha, key->thumb, sizeof(key->thumb));
  mbedtls_sha256_update_ret(&sha, extra, sizeof(extra));
  mbedtls_sha256_finish_ret(&sha, key->fp);
  mbedtls_sha256_free(&sha);
  return MSVC_OK;
}

/* ---- algorithm binding -------------------------------------------------------- */

static int bind_rsa(msvc_jwt_key_t *key) {
  const mbedtls_rsa_context *rsa = mbedtls_pk_rsa(key->pk);
  size_t bits = mbedtls_pk_get_bitlen(&key->pk);
  mbedtls_mpi e;
  size_t ebits = 0;

  if (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "RSA key of %zu bits (2048 to 8192 accepted)", bits);
  mbedtls_mpi_init(&e);
  if (mbedtls_rsa_export(rsa, NULL, NULL, NULL, NULL, &e) == 0)
    ebits = mbedtls_mpi_bitlen(&e);
  mbedtls_mpi_free(&e);
  /* A huge public exponent makes every verification slow on purpose. */
  if (ebits < 2 || ebits > 64)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "RSA public exponent out of range");
  key->algs = MSVC_JWT_ALGS_RSA;
  key->sig_len = mbedtls_rsa_get_len(rsa);
  return MSVC_OK;
}

static int bind_ec(msvc_jwt_key_t *key) {
  mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
  mbedtls_ecp_point r;
  mbedtls_mpi one;
  int rc;

  switch (ec->grp.id) {
  case MBEDTLS_ECP_DP_SECP256R1: key->algs = MSVC_JWT_ES256; break;
  case MBEDTLS_ECP_DP_SECP384R1: key->algs = MSVC_JWT_ES384; break;
  case MBEDTLS_ECP_DP_SECP521R1: key->algs = MSVC_JWT_ES512; break;
  default: return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "unsupported EC curve");
  }
  key->sig_len = 2 * ((ec->grp.pbits + 7) / 8);
  if (mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q) != 0)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "EC public point not on the curve");
  /* mbedtls builds the group's table of multiples of G lazily, on the first
   * multiplication, and stores it in the group without a lock: two threads
   * verifying with a fresh key would race on it. Build it now, while the key
   * is still private to this thread; later multiplications only read it. */
  mbedtls_ecp_point_init(&r);
  mbedtls_mpi_init(&one);
  rc = mbedtls_mpi_lset(&one, 1);
  if (rc == 0)
    rc = mbedtls_ecp_mul(&ec->grp, &r, &one, &ec->grp.G, msvc__jwt_rng, NULL);
  mbedtls_ecp_point_free(&r);
  mbedtls_mpi_free(&one);
  return rc == 0 ? MSVC_OK : msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
}

static unsigned hs_algs_for(size_t len) {
  return (len >= 32 ? MSVC_JWT_HS256 : 0u) | (len >= 48 ? MSVC_JWT_HS384 : 0u) |
         (len >= 64 ? MSVC_JWT_HS512 : 0u);
}

int msvc__jwt_key_finish(msvc_jwt_key_t *key, unsigned narrow) {
  int rc = MSVC_OK;

  if (key->kty == JWT_KTY_RSA)
    rc = bind_rsa(key);
  else if (key->kty == JWT_KTY_EC)
    rc = bind_ec(key);
  else {
    key->algs = hs_algs_for(key->secret_len);
    rc = msvc__jwt_hmac_prepare(key);
  }
  if (rc == MSVC_OK && narrow != 0)
    key->algs &= narrow;
  if (rc == MSVC_OK && key->algs == 0)
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, key->kty == JWT_KTY_OCT && narrow == 0
                                              ? "HMAC secret shorter than 32 bytes"
                                              : "key cannot be used with the requested algorithm");
  if (rc == MSVC_OK)
    rc = compute_identity(key);
  if (rc != MSVC_OK)
    msvc_jwt_key_free(key);
  return rc;
}

/* ---- loaders ------------------------------------------------------------------- */

int msvc_jwt_key_from_pem(const char *pem, size_t len, unsigned algs,
                          const char *kid, msvc_jwt_key_t **out) {
  msvc_jwt_key_t *key;
  unsigned char *copy;
  int rc;

  if (pem == NULL || out == NULL || (algs & ~(unsigned)MSVC_JWT_ALGS_ALL) != 0)
    return MSVC_EINVAL;
  if (len > JWT_MAX_PEM_BYTES)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "PEM larger than 64 KiB");
  key = msvc__jwt_key_alloc(0);
  copy = msvc__malloc(len + 1); /* mbedtls wants PEM NUL-terminated */
  if (key == NULL || copy == NULL || msvc__jwt_key_set_kid(key, kid, kid ? strlen(kid) : 0) != MSVC_OK) {
    msvc__free(copy);
    msvc_jwt_key_free(key);
    return MSVC_ENOMEM;
  }
  memcpy(copy, pem, len);
  copy[len] = '\0';
  rc = mbedtls_pk_parse_public_key(&key->pk, copy, len + 1);
  if (rc != 0) {
    mbedtls_pk_free(&key->pk);
    mbedtls_pk_init(&key->pk);
    rc = mbedtls_pk_parse_key(&key->pk, copy, len + 1, NULL, 0);
    key->priv = rc == 0;
  }
  mbedtls_platform_zeroize(copy, len);
  msvc__free(copy);
  if (rc != 0) {
    msvc_jwt_key_free(key);
    return msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY), "not a PEM public or private key");
  }
  if (mbedtls_pk_get_type(&key->pk) == MBEDTLS_PK_RSA)
    key->kty = JWT_KTY_RSA;
  else if (mbedtls_pk_get_type(&key->pk) == MBEDTLS_PK_ECKEY)
    key->kty = JWT_KTY_EC;
  else {
    msvc_jwt_key_free(key);
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "unsupported PEM key type");
  }
  rc = msvc__jwt_key_finish(key, algs);
  if (rc == MSVC_OK)
    *out = key;
  return rc;
}

int msvc_jwt_key_from_pem_file(const char *path, unsigned algs, const char *kid,
                               msvc_jwt_key_t **out) {
  char *data;
  size_t len;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  rc = msvc__jwt_read_file(path, JWT_MAX_PEM_BYTES, &data, &len);
  if (rc != MSVC_OK)
    return rc;
  rc = msvc_jwt_key_from_pem(data, len, algs, kid, out);
  mbedtls_platform_zeroize(data, len);
  msvc__free(data);
  return rc;
}

int msvc_jwt_key_from_secret(const void *secret, size_t len, unsigned algs,
                             const char *kid, msvc_jwt_key_t **out) {
  msvc_jwt_key_t *key;

  if (secret == NULL || out == NULL)
    return MSVC_EINVAL;
  if ((algs & ~(unsigned)MSVC_JWT_ALGS_HS) != 0)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "an HMAC secret serves HS algorithms only");
  if (len < 32)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "HMAC secret of %zu bytes (at least 32)", len);
  key = msvc__jwt_key_alloc(JWT_KTY_OCT);
  if (key == NULL)
    return MSVC_ENOMEM;
  key->secret = msvc__malloc(len);
  if (key->secret == NULL || msvc__jwt_key_set_kid(key, kid, kid ? strlen(kid) : 0) != MSVC_OK) {
    msvc_jwt_key_free(key);
    return MSVC_ENOMEM;
  }
  memcpy(key->secret, secret, len);
  key->secret_len = len;
  key->priv = true;
  {
    int rc = msvc__jwt_key_finish(key, algs);

    if (rc == MSVC_OK)
      *out = key;
    return rc;
  }
}

/* ---- publishing ------------------------------------------------------------------ */

int msvc_jwt_key_public_jwk(const msvc_jwt_key_t *key, char **out) {
  msvc__buf_t b;
  int rc;

  if (key == NULL || out == NULL || key->kty == JWT_KTY_OCT)
    return MSVC_EINVAL;
  msvc__buf_init(&b, 0);
  msvc__buf_putc(&b, '{');
  rc = key_members(key, &b);
  msvc__buf_puts(&b, ",\"use\":\"sig\"");
  if (key->kid != NULL) {
    msvc__buf_puts(&b, ",\"kid\":\"");
    msvc__buf_json_escape(&b, key->kid, strlen(key->kid));
    msvc__buf_putc(&b, '"');
  }
  if (msvc_jwt_alg_name((msvc_jwt_alg_t)key->algs) != NULL)
    msvc__buf_printf(&b, ",\"alg\":\"%s\"", msvc_jwt_alg_name((msvc_jwt_alg_t)key->algs));
  msvc__buf_putc(&b, '}');
  if (rc == MSVC_OK)
    rc = b.err;
  if (rc == MSVC_OK && (*out = msvc__buf_detach(&b, NULL)) == NULL)
    rc = MSVC_ENOMEM;
  msvc__buf_free(&b);
  return rc;
}

int msvc_jwt_key_thumbprint(const msvc_jwt_key_t *key, char out[44]) {
  msvc__buf_t b;

  if (key == NULL || out == NULL)
    return MSVC_EINVAL;
  msvc__buf_init(&b, 0);
  msvc__b64url_encode(&b, key->thumb, sizeof(key->thumb));
  if (b.err != MSVC_OK || b.len != 43) {
    msvc__buf_free(&b);
    return MSVC_ENOMEM;
  }
  memcpy(out, b.data, 43);
  out[43] = '\0';
  msvc__buf_free(&b);
  return MSVC_OK;
}
