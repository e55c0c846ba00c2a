/* user-service: what the handlers share, and the routes. */
#ifndef USER_APP_H
#define USER_APP_H

#include <msvc/limit.h>
#include <msvc/service.h>

#include "token.h"
#include "users.h"

typedef struct app_s {
  users_t *users;
  msvc_jwt_key_t *key;
  token_cfg_t token;
  char *jwks; /* the JWK Set document, served as it is */
  msvc_jwt_keyset_t *keys;        /* its public key, for token_check() */
  msvc_jwt_verifier_t *verifier;  /* the reads' own token check */
  msvc_service_t *svc;            /* for its loops' worker pools */
  /* Password guessing: failed logins per account and per client address. */
  msvc_limit_rate_t *fails_by_account;
  msvc_limit_rate_t *fails_by_address;
} app_t;

/* Reads USER_DB, USER_SIGNING_KEY, MSVC_JWT_ISSUER and MSVC_JWT_AUDIENCE
 * and opens the database and the key. 0, or -1 with one line in err. */
int app_open(app_t *app, char *err, size_t errlen);

/* Releases what app_open() opened. */
void app_close(app_t *app);

/* Adds the API's routes. MSVC_OK or the failing route's code. */
int app_routes(app_t *app, msvc_service_t *svc);

#endif /* USER_APP_H */
