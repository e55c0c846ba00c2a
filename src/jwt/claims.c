/*
 * Reading verified claims, and signing new tokens.
 */
#include "jwt/jwt-internal.h"

#include <stdlib.h>

static const cJSON *claim(const msvc_jwt_claims_t *c, const char *name) {
  if (c == NULL || name == NULL)
    return NULL;
  return cJSON_GetObjectItemCaseSensitive(c->root, name);
}

const char *msvc_jwt_claims_string(const msvc_jwt_claims_t *c, const char *name) {
  const cJSON *item = claim(c, name);

  return cJSON_IsString(item) ? item->valuestring : NULL;
}

int msvc_jwt_claims_int(const msvc_jwt_claims_t *c, const char *name, int64_t *out) {
  const cJSON *item = claim(c, name);

  if (out == NULL)
    return MSVC_EINVAL;
  if (item == NULL)
    return MSVC_ENOTFOUND;
  return msvc__jwt_json_int(item, out) ? MSVC_OK : MSVC_ERANGE;
}

int msvc_jwt_claims_bool(const msvc_jwt_claims_t *c, const char *name, bool *out) {
  const cJSON *item = claim(c, name);

  if (out == NULL)
    return MSVC_EINVAL;
  if (item == NULL)
    return MSVC_ENOTFOUND;
  if (!cJSON_IsBool(item))
    return MSVC_EINVAL;
  *out = cJSON_IsTrue(item);
  return MSVC_OK;
}

size_t msvc_jwt_claims_string_count(const msvc_jwt_claims_t *c, const char *name) {
  const cJSON *item = claim(c, name), *e;
  size_t n = 0;

  if (cJSON_IsString(item))
    return 1;
  if (!cJSON_IsArray(item))
    return 0;
  cJSON_ArrayForEach(e, item) {
    if (!cJSON_IsString(e))
      return 0;
    n++;
  }
  return n;
}

const char *msvc_jwt_claims_string_at(const msvc_jwt_claims_t *c, const char *name,
                                      size_t i) {
  const cJSON *item = claim(c, name), *e;

  if (i >= msvc_jwt_claims_string_count(c, name))
    return NULL;
  if (cJSON_IsString(item))
    return item->valuestring;
  e = cJSON_GetArrayItem(item, (int)i);
  return cJSON_IsString(e) ? e->valuestring : NULL;
}

int msvc_jwt_claims_raw(const msvc_jwt_claims_t *c, const char *name, char **out) {
  const cJSON *item = claim(c, name);
  char *text, *copy;

  if (out == NULL)
    return MSVC_EINVAL;
  if (item == NULL)
    return MSVC_ENOTFOUND;
  text = cJSON_PrintUnformatted(item);
  if (text == NULL)
    return MSVC_ENOMEM;
  copy = msvc__strdup(text); /* handed out for msvc_free(), not cJSON's free */
  cJSON_free(text);
  if (copy == NULL)
    return MSVC_ENOMEM;
  *out = copy;
  return MSVC_OK;
}

const char *msvc_jwt_claims_json(const msvc_jwt_claims_t *c) {
  return c != NULL ? c->json : NULL;
}

msvc_jwt_alg_t msvc_jwt_claims_alg(const msvc_jwt_claims_t *c) {
  return c != NULL ? c->alg : MSVC_JWT_ALG_UNSET;
}

const char *msvc_jwt_claims_kid(const msvc_jwt_claims_t *c) {
  return c != NULL ? c->kid : NULL;
}

/* ---- signing ------------------------------------------------------------------ */

static msvc_jwt_alg_t default_alg(const msvc_jwt_key_t *key) {
  if (msvc_jwt_alg_name((msvc_jwt_alg_t)key->algs) != NULL)
    return (msvc_jwt_alg_t)key->algs;
  if (key->kty == JWT_KTY_RSA)
    return (key->algs & MSVC_JWT_RS256) ? MSVC_JWT_RS256 : MSVC_JWT_ALG_UNSET;
  if (key->algs & MSVC_JWT_HS512)
    return MSVC_JWT_HS512;
  if (key->algs & MSVC_JWT_HS384)
    return MSVC_JWT_HS384;
  return (key->algs & MSVC_JWT_HS256) ? MSVC_JWT_HS256 : MSVC_JWT_ALG_UNSET;
}

int msvc_jwt_sign(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg, const char *claims,
                  char **token) {
  msvc__buf_t b;
  cJSON *check;
  unsigned char sig[JWT_MAX_SIG_BYTES];
  size_t sig_len = 0, hlen;
  int rc;

  if (key == NULL || claims == NULL || token == NULL)
    return MSVC_EINVAL;
  msvc__jwt_clear_err();
  if (alg == MSVC_JWT_ALG_UNSET)
    alg = default_alg(key);
  if (msvc_jwt_alg_name(alg) == NULL || (key->algs & (unsigned)alg) == 0)
    return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "the key does not allow this algorithm");
  if (!key->priv)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "a public key cannot sign");
  /* What we sign must pass our own verifier's JSON rules. */
  if ((rc = msvc__jwt_parse_object(claims, strlen(claims), &check)) != MSVC_OK)
    return msvc__jwt_fail(rc, rc == MSVC_ENOMEM ? "out of memory parsing the claims"
                                                : "claims are not a JSON object with unique names");
  cJSON_Delete(check);

  msvc__buf_init(&b, 0);
  {
    msvc__buf_t h;

    msvc__buf_init(&h, 0);
    msvc__buf_printf(&h, "{\"alg\":\"%s\",\"typ\":\"JWT\"", msvc_jwt_alg_name(alg));
    if (key->kid != NULL) {
      msvc__buf_puts(&h, ",\"kid\":\"");
      msvc__buf_json_escape(&h, key->kid, strlen(key->kid));
      msvc__buf_putc(&h, '"');
    }
    msvc__buf_putc(&h, '}');
    msvc__b64url_encode(&b, (const unsigned char *)h.data, h.len);
    rc = h.err;
    msvc__buf_free(&h);
  }
  msvc__buf_putc(&b, '.');
  msvc__b64url_encode(&b, (const unsigned char *)claims, strlen(claims));
  hlen = b.len;
  if (rc == MSVC_OK)
    rc = b.err;
  if (rc == MSVC_OK)
    rc = msvc__jwt_sign_sig(key, alg, (const unsigned char *)b.data, hlen, sig, &sig_len);
  if (rc == MSVC_OK) {
    msvc__buf_putc(&b, '.');
    msvc__b64url_encode(&b, sig, sig_len);
    *token = msvc__buf_detach(&b, NULL);
    if (*token == NULL)
      rc = MSVC_ENOMEM;
  }
  msvc__buf_free(&b);
  return rc;
}
