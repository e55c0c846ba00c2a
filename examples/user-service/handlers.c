/* user-service: configuration and request handlers (see app.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/log.h>
#include <msvc/middleware.h>
#include <msvc/work.h>

#include "app.h"
#include "ex.h"
#include "password.h"
#include "validate.h"

#define LOG "user-service"

int app_open(app_t *app, char *err, size_t errlen) {
  const char *db = ex_env("USER_DB", "user-service.db");
  const char *key = ex_env("USER_SIGNING_KEY", NULL);
  char why[MSVC_ERRMSG_MAX];

  if (key == NULL) {
    snprintf(err, errlen, "USER_SIGNING_KEY is not set: give the path of a PEM EC "
                          "P-256 private key (openssl ecparam -name prime256v1 -genkey)");
    return -1;
  }
  if (token_key_load(key, &app->key, err, errlen) != MSVC_OK)
    return -1;
  if (token_jwks(app->key, &app->jwks) != MSVC_OK) {
    snprintf(err, errlen, "USER_SIGNING_KEY: %s: cannot publish its public key", key);
    app_close(app);
    return -1;
  }
  if (users_open(db, &app->users, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "USER_DB: %s", why);
    app_close(app);
    return -1;
  }
  app->token.key = app->key;
  app->token.issuer = ex_env("MSVC_JWT_ISSUER", EX_JWT_ISSUER);
  app->token.audience = ex_env("MSVC_JWT_AUDIENCE", EX_JWT_AUDIENCE);
  if (token_verifier_new(&app->token, app->jwks, &app->keys, &app->verifier) != MSVC_OK) {
    snprintf(err, errlen, "USER_SIGNING_KEY: %s: cannot verify with its public key", key);
    app_close(app);
    return -1;
  }
  MSVC_LOG_I(LOG, "database %s, signing key %s (kid %s)", db, key,
             msvc_jwt_key_kid(app->key));
  return 0;
}

void app_close(app_t *app) {
  users_close(app->users);
  msvc_jwt_verifier_free(app->verifier);
  msvc_jwt_keyset_free(app->keys);
  msvc_jwt_key_free(app->key);
  free(app->jwks);
  msvc_limit_rate_free(app->fails_by_account);
  msvc_limit_rate_free(app->fails_by_address);
  memset(app, 0, sizeof(*app));
}

/* Parses the JSON body; false when the response has been sent. */
static bool read_body(msvc_http_req_t *req, msvc_http_res_t *res, cJSON **doc) {
  int rc = msvc_http_req_json(req, doc);

  if (rc == MSVC_OK)
    return true;
  if (rc == MSVC_ENOMEM)
    ex_res_internal(res); /* the other codes were answered already */
  return false;
}

/*
 * Hashing a password (PBKDF2, about 10 ms of CPU) and writing to SQLite
 * run on a thread of the loop's worker pool, so the loop goes on serving
 * other requests meanwhile; reads by id stay on the loop (a few
 * microseconds on the loop's own connection). A full pool queue answers 503
 * OVERLOADED.
 */
typedef struct create_job_s {
  app_t *app;
  cJSON *body; /* owns the strings nu points into */
  new_user_t nu;
  bool hash_failed;
  ex_store_rc_t rc;
  user_t user;
} create_job_t;

static void create_work(void *data) {
  create_job_t *j = data;
  char hash[PASSWORD_HASH_MAX];

  if (password_hash(j->nu.password, PASSWORD_ITERATIONS, hash, sizeof(hash)) != 0) {
    j->hash_failed = true;
    return;
  }
  j->rc = users_create(j->app->users, j->nu.name, j->nu.email, hash, ex_now_s(), &j->user);
}

static void create_done(msvc_http_req_t *req, void *data, int status) {
  create_job_t *j = data;
  msvc_http_res_t *res = msvc_http_req_res(req);
  char msg[EX_MSG_MAX], where[40];

  if (status != MSVC_OK) {
    /* answered by the pool */
  } else if (j->hash_failed) {
    MSVC_LOG_E(LOG, "cannot hash a password");
    ex_res_internal(res);
  } else if (j->rc == EX_STORE_CONFLICT) {
    snprintf(msg, sizeof(msg), "The email %s is already registered.", j->nu.email);
    msvc_http_res_error(res, 409, "EMAIL_TAKEN", msg);
  } else if (j->rc != EX_STORE_OK) {
    ex_res_internal(res);
  } else {
    snprintf(where, sizeof(where), "/users/%lld", (long long)j->user.id);
    msvc_http_res_header(res, "Location", where);
    ex_res_json(res, 201, user_json(&j->user));
  }
  cJSON_Delete(j->body);
  free(j);
}

static void on_create_user(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  char msg[EX_MSG_MAX];
  create_job_t *j = calloc(1, sizeof(*j));

  if (j == NULL) {
    ex_res_internal(res);
    return;
  }
  j->app = app;
  if (!read_body(req, res, &j->body)) {
    free(j);
    return;
  }
  if (!validate_new_user(j->body, &j->nu, msg, sizeof(msg))) {
    ex_res_invalid(res, msg);
  } else if (msvc_work_submit_req(msvc_service_work(app->svc, req), req, 0, create_work,
                                  create_done, j) == MSVC_OK) {
    return; /* j is the job's now */
  }
  cJSON_Delete(j->body);
  free(j);
}

static void user_not_found(msvc_http_res_t *res, const char *id) {
  char msg[EX_MSG_MAX];

  snprintf(msg, sizeof(msg), "The user with ID %.40s was not found.", id);
  msvc_http_res_error(res, 404, "USER_NOT_FOUND", msg);
}

/* The caller's user id from the bearer token; false when the request was
 * answered (401 with the challenge of RFC 6750). */
static bool caller_of(msvc_http_req_t *req, msvc_http_res_t *res, const app_t *app,
                      int64_t *sub) {
  const char *why;
  char challenge[160];

  switch (token_check(app->verifier, msvc_http_req_header(req, "Authorization"), sub,
                      &why)) {
  case TOKEN_OK:
    return true;
  case TOKEN_NONE:
    msvc_http_res_header(res, "WWW-Authenticate", "Bearer");
    msvc_http_res_error(res, 401, "UNAUTHENTICATED", "A bearer token is required.");
    return false;
  case TOKEN_ERROR:
    ex_res_internal(res);
    return false;
  case TOKEN_BAD:
  default:
    snprintf(challenge, sizeof(challenge),
             "Bearer error=\"invalid_token\", error_description=\"%s\"", why);
    msvc_http_res_header(res, "WWW-Authenticate", challenge);
    msvc_http_res_error(res, 401, "UNAUTHENTICATED", "The bearer token is not valid.");
    return false;
  }
}

/* Any signed-in user may see who exists (id and name); the email and the
 * creation time only to the user they belong to. */
static void on_get_user(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  const char *param = msvc_http_req_param(req, "id");
  int64_t id, caller;
  user_t user;
  ex_store_rc_t rc;

  if (!caller_of(req, res, app, &caller))
    return;
  if (param == NULL || !ex_parse_id(param, &id)) {
    user_not_found(res, param != NULL ? param : "");
    return;
  }
  rc = users_get(app->users, id, &user);
  if (rc == EX_STORE_NOT_FOUND)
    user_not_found(res, param);
  else if (rc != EX_STORE_OK)
    ex_res_internal(res);
  else
    /* What a user sees depends on who asks: never a shared copy. */
    ex_res_json_cacheable(req, res, id == caller ? user_json(&user) : user_public_json(&user),
                          "private, max-age=5");
}

/* Reads an optional integer query parameter; false when it was answered. */
static bool query_int(msvc_http_req_t *req, msvc_http_res_t *res, const char *name,
                      int64_t lo, int64_t hi, int64_t *out) {
  const char *v = msvc_http_req_query(req, name);
  char msg[EX_MSG_MAX];

  if (v == NULL || ex_parse_int(v, lo, hi, out))
    return true;
  snprintf(msg, sizeof(msg), "%s: must be an integer from %lld to %lld", name,
           (long long)lo, (long long)hi);
  ex_res_invalid(res, msg);
  return false;
}

/* A directory for signed-in users: id and name only (users_list()). */
static void on_list_users(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  int64_t limit = 50, offset = 0, caller;
  cJSON *doc, *users;

  if (!caller_of(req, res, app, &caller))
    return;
  if (!query_int(req, res, "limit", 1, 200, &limit) ||
      !query_int(req, res, "offset", 0, EX_JSON_INT_MAX, &offset))
    return;
  doc = cJSON_CreateObject();
  users = doc != NULL ? cJSON_AddArrayToObject(doc, "users") : NULL;
  if (users == NULL || users_list(app->users, limit, offset, users) != EX_STORE_OK ||
      !ex_json_add_int(doc, "limit", limit) || !ex_json_add_int(doc, "offset", offset)) {
    cJSON_Delete(doc);
    ex_res_internal(res);
    return;
  }
  ex_res_json(res, 200, doc);
}

static void send_token(msvc_http_res_t *res, const char *token) {
  cJSON *doc = cJSON_CreateObject();

  if (doc != NULL && (cJSON_AddStringToObject(doc, "access_token", token) == NULL ||
                      cJSON_AddStringToObject(doc, "token_type", "Bearer") == NULL ||
                      !ex_json_add_int(doc, "expires_in", TOKEN_TTL_S))) {
    cJSON_Delete(doc);
    doc = NULL;
  }
  msvc_http_res_header(res, "Cache-Control", "no-store");
  ex_res_json(res, 200, doc);
}

/* Failed logins allowed per account: 5 at once, then one every 12 s; per
 * client address: 20 at once, then one every 3 s; for the whole service,
 * each of its n instances enforcing 1/n of it. Every attempt takes a
 * token from both when it starts (so attempts in parallel cannot slip
 * through) and a successful one gives them back: only failures count. The
 * account's bucket is keyed by the address as typed, whether an account
 * has it or not, and checked before any lookup: the 429 says nothing about
 * which accounts exist. */
#define FAILS_ACCOUNT_BURST 5
#define FAILS_ACCOUNT_EVERY_MS 12000
#define FAILS_ADDRESS_BURST 20
#define FAILS_ADDRESS_EVERY_MS 3000
#define ADDRESS_MAX 64

typedef struct login_job_s {
  app_t *app;
  cJSON *body; /* owns email and password */
  const char *email, *password;
  int outcome; /* 200 (token set), 401 or 500 */
  char *token;
  char account[USER_EMAIL_MAX + 1]; /* the email in lower case */
  char address[ADDRESS_MAX];
} login_job_t;

static int limits_new(app_t *app) {
  msvc_limit_rate_opts_t o;
  int rc;

  msvc_limit_rate_opts_init(&o);
  o.rate = 1;
  o.period_ms = FAILS_ACCOUNT_EVERY_MS;
  o.burst = FAILS_ACCOUNT_BURST;
  o.max_keys = 100000;
  if ((rc = msvc_limit_rate_new(&o, &app->fails_by_account)) != MSVC_OK) return rc;
  o.period_ms = FAILS_ADDRESS_EVERY_MS;
  o.burst = FAILS_ADDRESS_BURST;
  return msvc_limit_rate_new(&o, &app->fails_by_address);
}

/* The client's address: the one the bff (the gateway in front of us)
 * appended to X-Forwarded-For, else the peer's, without the port. */
static void client_address(msvc_http_req_t *req, char *out, size_t cap) {
  const char *xff = msvc_http_req_header(req, "X-Forwarded-For"), *last;
  char *colon;

  if (xff != NULL && xff[0] != '\0') {
    last = strrchr(xff, ',');
    last = last != NULL ? last + 1 : xff;
    while (*last == ' ') last++;
    snprintf(out, cap, "%.*s", (int)strcspn(last, " \t"), last);
    return;
  }
  if (msvc_http_req_peer(req, out, cap) != MSVC_OK) {
    snprintf(out, cap, "unknown");
    return;
  }
  colon = strrchr(out, ':');
  if (colon != NULL && out[0] != '[') *colon = '\0';
  else if ((colon = strstr(out, "]:")) != NULL) colon[1] = '\0';
}

/* Takes one failure token from both buckets, or answers 429. */
static bool login_admitted(login_job_t *j, msvc_http_req_t *req, msvc_http_res_t *res) {
  uint64_t now = msvc_now_ms();
  msvc_limit_result_t r;
  size_t i;

  for (i = 0; j->email[i] != '\0' && i < sizeof(j->account) - 1; i++)
    j->account[i] = (char)(j->email[i] >= 'A' && j->email[i] <= 'Z' ? j->email[i] + 32
                                                                     : j->email[i]);
  j->account[i] = '\0';
  client_address(req, j->address, sizeof(j->address));
  if (msvc_limit_rate_check(j->app->fails_by_account, j->account, i, 1, now, &r) != MSVC_OK) {
    msvc_mw_ratelimit_reject(res, &r);
    return false;
  }
  if (msvc_limit_rate_check(j->app->fails_by_address, j->address, strlen(j->address), 1,
                            now, &r) != MSVC_OK) {
    msvc_limit_rate_refund(j->app->fails_by_account, j->account, i, 1, now);
    msvc_mw_ratelimit_reject(res, &r);
    return false;
  }
  return true;
}

/* The attempt did not fail: it does not count. */
static void login_refund(login_job_t *j) {
  uint64_t now = msvc_now_ms();

  msvc_limit_rate_refund(j->app->fails_by_account, j->account, strlen(j->account), 1, now);
  msvc_limit_rate_refund(j->app->fails_by_address, j->address, strlen(j->address), 1, now);
}

/* On a pool thread: the lookup, the password check (or a burn of the same
 * cost for an unknown email) and the token's signature. */
static void login_work(void *data) {
  login_job_t *j = data;
  char hash[PASSWORD_HASH_MAX];
  user_t user;
  ex_store_rc_t rc;
  int trc;

  rc = users_find_login(j->app->users, j->email, &user, hash, sizeof(hash));
  if (rc == EX_STORE_ERROR) {
    j->outcome = 500;
    return;
  }
  if (rc == EX_STORE_NOT_FOUND)
    password_burn(j->password);
  if (rc != EX_STORE_OK || !password_verify(j->password, hash)) {
    j->outcome = 401;
    return;
  }
  trc = token_issue(&j->app->token, user.id, ex_now_s(), &j->token);
  if (trc != MSVC_OK)
    MSVC_LOG_E(LOG, "cannot sign a token: %s", msvc_strerror(trc));
  j->outcome = trc == MSVC_OK ? 200 : 500;
}

static void login_done(msvc_http_req_t *req, void *data, int status) {
  login_job_t *j = data;
  msvc_http_res_t *res = msvc_http_req_res(req);

  if (status != MSVC_OK || j->outcome != 401)
    login_refund(j);
  if (status != MSVC_OK) {
    /* answered by the pool */
  } else if (j->outcome == 200) {
    send_token(res, j->token);
  } else if (j->outcome == 401) {
    msvc_http_res_error(res, 401, "INVALID_CREDENTIALS", "The email or password is wrong.");
  } else {
    ex_res_internal(res);
  }
  msvc_free(j->token);
  cJSON_Delete(j->body);
  free(j);
}

static void on_login(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  app_t *app = data;
  char msg[EX_MSG_MAX];
  login_job_t *j = calloc(1, sizeof(*j));

  if (j == NULL) {
    ex_res_internal(res);
    return;
  }
  j->app = app;
  if (!read_body(req, res, &j->body)) {
    free(j);
    return;
  }
  if (!validate_login(j->body, &j->email, &j->password, msg, sizeof(msg))) {
    ex_res_invalid(res, msg);
  } else if (!login_admitted(j, req, res)) {
    /* answered 429 */
  } else if (msvc_work_submit_req(msvc_service_work(app->svc, req), req, 0, login_work,
                                  login_done, j) == MSVC_OK) {
    return; /* j is the job's now */
  } else {
    login_refund(j);
  }
  cJSON_Delete(j->body);
  free(j);
}

static void on_jwks(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const app_t *app = data;

  (void)req;
  /* Verifiers refetch on an unknown kid anyway; caching keeps them off us. */
  msvc_http_res_header(res, "Cache-Control", "public, max-age=300");
  msvc_http_res_send(res, 200, "application/json", app->jwks, strlen(app->jwks));
}

int app_routes(app_t *app, msvc_service_t *svc) {
  static const struct {
    const char *method, *pattern;
    msvc_http_handler_fn fn;
  } routes[] = {
      {"POST", "/users", on_create_user},
      {"GET", "/users", on_list_users},
      {"GET", "/users/:id", on_get_user},
      {"POST", "/login", on_login},
      {"GET", "/.well-known/jwks.json", on_jwks},
  };
  size_t i;
  int rc = MSVC_OK;

  app->svc = svc;
  if ((rc = limits_new(app)) != MSVC_OK) return rc;
  /* The allowances are the whole service's: each instance keeps its share
   * as instances come and go. */
  if ((rc = msvc_service_ratelimit_cluster(svc, app->fails_by_account)) != MSVC_OK ||
      (rc = msvc_service_ratelimit_cluster(svc, app->fails_by_address)) != MSVC_OK)
    return rc;
  for (i = 0; i < sizeof(routes) / sizeof(routes[0]) && rc == MSVC_OK; i++)
    rc = msvc_service_route(svc, routes[i].method, routes[i].pattern, routes[i].fn, app, 0);
  return rc;
}
