/* Access tokens of user-service: ES256 JWS with the signing key's kid. */
#ifndef USER_TOKEN_H
#define USER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <msvc/jwt.h>

/* Lifetime of an access token, in seconds (`expires_in`). */
#define TOKEN_TTL_S 900

/* Who the tokens are for; borrowed strings. */
typedef struct token_cfg_s {
  const msvc_jwt_key_t *key; /* P-256 private key, with its kid */
  const char *issuer;        /* `iss` */
  const char *audience;      /* `aud` */
} token_cfg_t;

/*
 * Loads the PEM EC P-256 private key at path, with its RFC 7638 thumbprint
 * as kid. Returns MSVC_OK, or a libmsvc code with one line in err.
 */
int token_key_load(const char *path, msvc_jwt_key_t **out, char *err, size_t errlen);

/*
 * The claims of a token for user sub issued at now (unix seconds): iss,
 * aud, sub (the id as a string), iat, nbf, exp = iat + TOKEN_TTL_S and a
 * random jti. Returns a NUL-terminated JSON object to cJSON_free(), or
 * NULL.
 */
char *token_claims(const token_cfg_t *cfg, int64_t sub, int64_t now);

/* Signs a token for sub; MSVC_OK with *token to msvc_free(), else an
 * error code. */
int token_issue(const token_cfg_t *cfg, int64_t sub, int64_t now, char **token);

/* The JWK Set `{"keys":[...]}` publishing key's public half; MSVC_OK with
 * *out to free(), else an error code. */
int token_jwks(const msvc_jwt_key_t *key, char **out);

/* What a request's Authorization header proved. */
typedef enum token_result_e {
  TOKEN_OK = 0,   /* a valid token of user *sub */
  TOKEN_NONE = 1, /* no bearer token at all */
  TOKEN_BAD = 2,  /* a token that does not verify (*why says how) */
  TOKEN_ERROR = 3 /* out of memory while checking: not the token's fault */
} token_result_t;

/*
 * A verifier of this service's own tokens: ES256 with cfg's key (public
 * half, from the JWK Set jwks), cfg's issuer and audience, `sub` and `exp`
 * required. user-service checks its tokens itself: fetching its own key set
 * through discovery would wait for itself. MSVC_OK with *ks and *v to free
 * (msvc_jwt_verifier_free() first), else an error code.
 */
int token_verifier_new(const token_cfg_t *cfg, const char *jwks, msvc_jwt_keyset_t **ks,
                       msvc_jwt_verifier_t **v);

/*
 * Checks the value of an Authorization header (NULL when absent): TOKEN_OK
 * with the user id in *sub, TOKEN_NONE, TOKEN_BAD with *why a static
 * reason for the challenge's error_description, or TOKEN_ERROR.
 */
token_result_t token_check(msvc_jwt_verifier_t *v, const char *authorization, int64_t *sub,
                           const char **why);

#endif /* USER_TOKEN_H */
