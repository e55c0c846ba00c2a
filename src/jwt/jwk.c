/*
 * JWK (RFC 7517, RFC 7518 §6) parsing: RSA, EC and oct keys, public or
 * private, bound to algorithms by their type, curve and `alg`.
 */
#include "jwt/jwt-internal.h"

#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

/* Decodes a base64url member into a fresh buffer. *present tells absent
 * (MSVC_OK, *present false) apart from malformed (MSVC_EJWT_BAD_KEY). */
static int get_b64(const cJSON *jwk, const char *name, unsigned char **out,
                   size_t *len, bool *present) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(jwk, name);
  size_t slen, cap;
  unsigned char *buf;

  *out = NULL;
  *len = 0;
  *present = m != NULL;
  if (m == NULL)
    return MSVC_OK;
  if (!cJSON_IsString(m) || m->valuestring[0] == '\0')
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK member \"%s\" is not a base64url string", name);
  slen = strlen(m->valuestring);
  cap = msvc__b64url_decoded_max(slen);
  buf = msvc__malloc(cap);
  if (buf == NULL)
    return MSVC_ENOMEM;
  if (msvc__b64url_decode(m->valuestring, slen, buf, cap, len) != MSVC_OK) {
    msvc__free(buf);
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK member \"%s\" is not strict base64url", name);
  }
  *out = buf;
  return MSVC_OK;
}

static void free_secret(unsigned char *p, size_t len) {
  if (p != NULL) {
    mbedtls_platform_zeroize(p, len);
    msvc__free(p);
  }
}

static int jwk_oct(const cJSON *jwk, msvc_jwt_key_t *key) {
  bool present;
  int rc = get_b64(jwk, "k", &key->secret, &key->secret_len, &present);

  if (rc != MSVC_OK)
    return rc;
  if (!present)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "oct JWK without \"k\"");
  key->priv = true;
  return MSVC_OK;
}

static int jwk_rsa(const cJSON *jwk, msvc_jwt_key_t *key) {
  static const char *const names[] = {"n", "e", "d", "p", "q"};
  unsigned char *v[5] = {0};
  size_t l[5] = {0};
  bool present[5];
  size_t i;
  int rc = MSVC_OK;
  mbedtls_rsa_context *rsa;

  for (i = 0; i < 5 && rc == MSVC_OK; i++)
    rc = get_b64(jwk, names[i], &v[i], &l[i], &present[i]);
  if (rc == MSVC_OK && (!present[0] || !present[1]))
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "RSA JWK without \"n\" or \"e\"");
  if (rc == MSVC_OK && present[2] && (!present[3] || !present[4]))
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "private RSA JWK without \"p\" and \"q\"");
  if (rc == MSVC_OK && (rc = mbedtls_pk_setup(&key->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA))) != 0)
    rc = msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
  if (rc == MSVC_OK) {
    rsa = mbedtls_pk_rsa(key->pk);
    rc = mbedtls_rsa_import_raw(rsa, v[0], l[0], v[3], l[3], v[4], l[4], v[2], l[2], v[1], l[1]);
    if (rc == 0)
      rc = mbedtls_rsa_complete(rsa);
    if (rc == 0)
      rc = present[2] ? mbedtls_rsa_check_privkey(rsa) : mbedtls_rsa_check_pubkey(rsa);
    if (rc != 0)
      rc = msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY), "invalid RSA JWK");
    key->priv = present[2];
  }
  for (i = 0; i < 5; i++)
    free_secret(v[i], l[i]);
  return rc;
}

static int ec_group_of(const cJSON *jwk, mbedtls_ecp_group_id *id) {
  const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");

  if (!cJSON_IsString(crv))
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "EC JWK without \"crv\"");
  if (strcmp(crv->valuestring, "P-256") == 0)
    *id = MBEDTLS_ECP_DP_SECP256R1;
  else if (strcmp(crv->valuestring, "P-384") == 0)
    *id = MBEDTLS_ECP_DP_SECP384R1;
  else if (strcmp(crv->valuestring, "P-521") == 0)
    *id = MBEDTLS_ECP_DP_SECP521R1;
  else
    return MSVC_ENOTSUP; /* e.g. secp256k1: skipped in a JWK Set */
  return MSVC_OK;
}

static int ec_import(mbedtls_ecp_keypair *ec, unsigned char *const v[3],
                     const size_t l[3], bool priv) {
  size_t coord = (ec->grp.pbits + 7) / 8;
  unsigned char pt[1 + 2 * 66];
  int rc;

  /* RFC 7518 §6.2.1.2: coordinates are exactly the field size, no shorter. */
  if (l[0] != coord || l[1] != coord || (priv && l[2] != coord))
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "EC JWK coordinate of the wrong length");
  pt[0] = 0x04;
  memcpy(pt + 1, v[0], coord);
  memcpy(pt + 1 + coord, v[1], coord);
  rc = mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, pt, 1 + 2 * coord);
  if (rc == 0)
    rc = mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q);
  if (rc == 0 && priv)
    rc = mbedtls_mpi_read_binary(&ec->d, v[2], l[2]);
  if (rc == 0 && priv)
    rc = mbedtls_ecp_check_privkey(&ec->grp, &ec->d);
  if (rc != 0)
    return msvc__jwt_fail(msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY), "invalid EC JWK point");
  return MSVC_OK;
}

static int jwk_ec(const cJSON *jwk, msvc_jwt_key_t *key) {
  static const char *const names[] = {"x", "y", "d"};
  unsigned char *v[3] = {0};
  size_t l[3] = {0};
  bool present[3];
  mbedtls_ecp_group_id id = MBEDTLS_ECP_DP_NONE;
  size_t i;
  int rc = ec_group_of(jwk, &id);

  for (i = 0; i < 3 && rc == MSVC_OK; i++)
    rc = get_b64(jwk, names[i], &v[i], &l[i], &present[i]);
  if (rc == MSVC_OK && (!present[0] || !present[1]))
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "EC JWK without \"x\" or \"y\"");
  if (rc == MSVC_OK && (rc = mbedtls_pk_setup(&key->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0)
    rc = msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
  if (rc == MSVC_OK) {
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);

    rc = mbedtls_ecp_group_load(&ec->grp, id);
    rc = rc == 0 ? ec_import(ec, v, l, present[2]) : msvc__jwt_mbedtls_err(rc, MSVC_EJWT_BAD_KEY);
    key->priv = present[2];
  }
  for (i = 0; i < 3; i++)
    free_secret(v[i], l[i]);
  return rc;
}

/* `use` and `key_ops` say whether a key is meant for signatures at all. */
static int check_usage(const cJSON *jwk, unsigned *narrow) {
  const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
  const cJSON *ops = cJSON_GetObjectItemCaseSensitive(jwk, "key_ops");
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
  const cJSON *op;
  bool sig_op = false;

  if (use != NULL && (!cJSON_IsString(use) || strcmp(use->valuestring, "sig") != 0))
    return MSVC_ENOTSUP;
  if (ops != NULL) {
    if (!cJSON_IsArray(ops))
      return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK \"key_ops\" is not an array");
    cJSON_ArrayForEach(op, ops)
      if (cJSON_IsString(op) && (strcmp(op->valuestring, "verify") == 0 ||
                                 strcmp(op->valuestring, "sign") == 0))
        sig_op = true;
    if (!sig_op)
      return MSVC_ENOTSUP;
  }
  *narrow = 0;
  if (alg != NULL) {
    msvc_jwt_alg_t a;

    if (!cJSON_IsString(alg) || msvc__jwt_alg_from_name(alg->valuestring, &a) != MSVC_OK)
      return MSVC_ENOTSUP; /* e.g. RSA-OAEP or EdDSA */
    *narrow = (unsigned)a;
  }
  return MSVC_OK;
}

int msvc__jwt_key_from_cjson(const cJSON *jwk, msvc_jwt_key_t **out, bool *skip) {
  const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
  msvc_jwt_key_t *key;
  unsigned narrow = 0;
  int type, rc;

  *skip = false;
  if (!cJSON_IsObject(jwk) || !cJSON_IsString(kty))
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK without \"kty\"");
  if (kid != NULL && !cJSON_IsString(kid))
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK \"kid\" is not a string");
  if (strcmp(kty->valuestring, "RSA") == 0)
    type = JWT_KTY_RSA;
  else if (strcmp(kty->valuestring, "EC") == 0)
    type = JWT_KTY_EC;
  else if (strcmp(kty->valuestring, "oct") == 0)
    type = JWT_KTY_OCT;
  else
    type = 0;
  rc = type == 0 ? MSVC_ENOTSUP : check_usage(jwk, &narrow);
  if (rc == MSVC_ENOTSUP) {
    *skip = true;
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK not usable for JWS signatures");
  }
  if (rc != MSVC_OK)
    return rc;
  key = msvc__jwt_key_alloc(type);
  if (key == NULL)
    return MSVC_ENOMEM;
  rc = type == JWT_KTY_RSA ? jwk_rsa(jwk, key) : type == JWT_KTY_EC ? jwk_ec(jwk, key)
                                                                    : jwk_oct(jwk, key);
  if (rc == MSVC_ENOTSUP) {
    *skip = true;
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "unsupported EC curve");
  }
  if (rc == MSVC_OK && kid != NULL)
    rc = msvc__jwt_key_set_kid(key, kid->valuestring, strlen(kid->valuestring));
  if (rc != MSVC_OK) {
    msvc_jwt_key_free(key);
    return rc;
  }
  rc = msvc__jwt_key_finish(key, narrow); /* frees the key on failure */
  if (rc == MSVC_OK)
    *out = key;
  return rc;
}

int msvc_jwt_key_from_jwk(const char *json, size_t len, msvc_jwt_key_t **out) {
  cJSON *root;
  bool skip;
  int rc;

  if (json == NULL || out == NULL)
    return MSVC_EINVAL;
  if (len > JWT_MAX_PEM_BYTES)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK larger than 64 KiB");
  rc = msvc__jwt_parse_object(json, len, &root);
  if (rc == MSVC_ENOMEM)
    return msvc__jwt_fail(MSVC_ENOMEM, "out of memory parsing the JWK");
  if (rc != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK is not a strict JSON object");
  rc = msvc__jwt_key_from_cjson(root, out, &skip);
  cJSON_Delete(root);
  return rc;
}
