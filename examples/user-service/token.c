/* Access tokens (see token.h). */
#include "token.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <msvc/error.h>

#include "ex.h"

int token_key_load(const char *path, msvc_jwt_key_t **out, char *err, size_t errlen) {
  msvc_jwt_key_t *probe = NULL;
  char kid[44];
  int rc;

  *out = NULL;
  /* The kid is derived from the key, so it is loaded once to learn it and
   * once more to carry it. */
  rc = msvc_jwt_key_from_pem_file(path, MSVC_JWT_ES256, NULL, &probe);
  if (rc == MSVC_OK && !msvc_jwt_key_can_sign(probe))
    rc = MSVC_EJWT_BAD_KEY;
  if (rc == MSVC_OK)
    rc = msvc_jwt_key_thumbprint(probe, kid);
  msvc_jwt_key_free(probe);
  if (rc == MSVC_OK)
    rc = msvc_jwt_key_from_pem_file(path, MSVC_JWT_ES256, kid, out);
  if (rc != MSVC_OK)
    snprintf(err, errlen,
             "USER_SIGNING_KEY: %s: cannot use it as a PEM EC P-256 private key: %s", path,
             msvc_strerror(rc));
  return rc;
}

static bool add_claims(cJSON *doc, const token_cfg_t *cfg, int64_t sub, int64_t now) {
  unsigned char raw[16];
  char jti[2 * sizeof(raw) + 1], subject[24];

  if (ex_random(raw, sizeof(raw)) != 0)
    return false;
  ex_hex(raw, sizeof(raw), jti);
  snprintf(subject, sizeof(subject), "%" PRId64, sub);
  return cJSON_AddStringToObject(doc, "iss", cfg->issuer) != NULL &&
         cJSON_AddStringToObject(doc, "aud", cfg->audience) != NULL &&
         cJSON_AddStringToObject(doc, "sub", subject) != NULL &&
         ex_json_add_int(doc, "iat", now) && ex_json_add_int(doc, "nbf", now) &&
         ex_json_add_int(doc, "exp", now + TOKEN_TTL_S) &&
         cJSON_AddStringToObject(doc, "jti", jti) != NULL;
}

char *token_claims(const token_cfg_t *cfg, int64_t sub, int64_t now) {
  cJSON *doc = cJSON_CreateObject();
  char *text = NULL;

  if (doc != NULL && add_claims(doc, cfg, sub, now))
    text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  return text;
}

int token_issue(const token_cfg_t *cfg, int64_t sub, int64_t now, char **token) {
  char *claims = token_claims(cfg, sub, now);
  int rc;

  *token = NULL;
  if (claims == NULL)
    return MSVC_ENOMEM;
  rc = msvc_jwt_sign(cfg->key, MSVC_JWT_ES256, claims, token);
  cJSON_free(claims);
  return rc;
}

int token_jwks(const msvc_jwt_key_t *key, char **out) {
  static const char head[] = "{\"keys\":[", tail[] = "]}";
  char *jwk = NULL;
  size_t len;
  int rc;

  *out = NULL;
  rc = msvc_jwt_key_public_jwk(key, &jwk);
  if (rc != MSVC_OK)
    return rc;
  len = strlen(head) + strlen(jwk) + strlen(tail) + 1;
  *out = malloc(len);
  if (*out != NULL)
    snprintf(*out, len, "%s%s%s", head, jwk, tail);
  msvc_free(jwk);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int token_verifier_new(const token_cfg_t *cfg, const char *jwks, msvc_jwt_keyset_t **ks,
                       msvc_jwt_verifier_t **v) {
  static const char *const required[] = {"sub", "exp"};
  const char *aud[1] = {cfg->audience};
  msvc_jwt_verify_opts_t o;
  int rc;

  *v = NULL;
  rc = msvc_jwt_keyset_new(ks);
  if (rc != MSVC_OK)
    return rc;
  rc = msvc_jwt_keyset_load_jwks(*ks, jwks, strlen(jwks));
  if (rc == MSVC_OK) {
    msvc_jwt_verify_opts_init(&o);
    o.algs = MSVC_JWT_ES256;
    o.issuer = cfg->issuer;
    o.audiences = aud;
    o.n_audiences = 1;
    o.required = required;
    o.n_required = 2;
    o.cache_size = 1024;
    rc = msvc_jwt_verifier_new(&o, *ks, v);
  }
  if (rc != MSVC_OK) {
    msvc_jwt_keyset_free(*ks);
    *ks = NULL;
  }
  return rc;
}

token_result_t token_check(msvc_jwt_verifier_t *v, const char *authorization, int64_t *sub,
                           const char **why) {
  msvc_jwt_claims_t *claims = NULL;
  const char *p = authorization;
  bool ok;
  int rc;

  *why = NULL;
  if (p == NULL || strncasecmp(p, "Bearer ", 7) != 0)
    return TOKEN_NONE;
  for (p += 7; *p == ' '; p++)
    ;
  if (*p == '\0')
    return TOKEN_NONE;
  rc = msvc_jwt_verify(v, p, strlen(p), &claims);
  if (rc == MSVC_ENOMEM)
    return TOKEN_ERROR;
  if (rc != MSVC_OK) {
    *why = rc == MSVC_EJWT_EXPIRED ? "the token has expired" : "the token is not valid";
    return TOKEN_BAD;
  }
  ok = ex_parse_id(msvc_jwt_claims_string(claims, "sub"), sub);
  msvc_jwt_claims_free(claims);
  if (!ok) {
    *why = "the token's subject is not a user id";
    return TOKEN_BAD;
  }
  return TOKEN_OK;
}
