/* user-service: validation, password hashing, the user store and tokens. */
#include <pthread.h>

#include <msvc/error.h>
#include <msvc/jwt.h>

#include "ex.h"
#include "ex_test.h"
#include "password.h"
#include "token.h"
#include "users.h"
#include "validate.h"

/* A P-256 key made for these tests only. */
static const char test_key_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIEcJx8zbtRSr1aR1JRmsRxy/+PVD7OQA33bAmEU9tHH7oAoGCCqGSM49\n"
    "AwEHoUQDQgAEz/0XnfLbcGSXb4Ccii3suJzwdTlxjUwwFP6ri+AGUumYyrEdX51Z\n"
    "eIOycczhKHy6pAXd0jHyFs2CkXnRQQRl4g==\n"
    "-----END EC PRIVATE KEY-----\n";

/* Another P-256 key, for tokens that must not verify. */
#define OTHER_EC_PEM                                                                 \
  "-----BEGIN EC PRIVATE KEY-----\n"                                                 \
  "MHcCAQEEIMbkW4bb+pHDBPwNxgc90nNtggST5Hv9XzZigKtf8NxQoAoGCCqGSM49\n"               \
  "AwEHoUQDQgAE5FRvHT4/JtBXSIl2C23VK11oJDIV74IDbtt93VK0a/OLFb6+0dq8\n"               \
  "jzPHBZK6PO6GhDInq4ZWSpzwOGwp1ZctQw==\n"                                           \
  "-----END EC PRIVATE KEY-----\n"

/* ---- validation ---------------------------------------------------------- */

Test(examples_user, email_shapes) {
  static const char *const good[] = {"ada@example.com", "a.b+tag@sub.example.org",
                                     "x@a-b.co", "o'hara@example.ie"};
  static const char *const bad[] = {"", "ada", "@example.com", "ada@", "ada@example",
                                    "ada@@example.com", "a@b@c.com", "ada @example.com",
                                    ".ada@example.com", "ada.@example.com",
                                    "a..b@example.com", "ada@-example.com",
                                    "ada@example-.com", "ada@example..com", "ada@.com",
                                    "ada@example.com.", "ad\"a@example.com"};
  size_t i;

  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    cr_assert(email_valid(good[i]), "%s", good[i]);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_not(email_valid(bad[i]), "%s", bad[i]);
}

static bool check_user(const char *text, char *msg, size_t msglen) {
  cJSON *doc = cJSON_Parse(text);
  new_user_t nu;
  bool ok;

  cr_assert_not_null(doc, "%s", text);
  ok = validate_new_user(doc, &nu, msg, msglen);
  cJSON_Delete(doc);
  return ok;
}

Test(examples_user, new_user_fields) {
  static const struct {
    const char *body, *msg;
  } bad[] = {
      {"[]", "body: must be a JSON object"},
      {"{\"email\":\"a@b.co\",\"password\":\"12345678\"}", "name: is required"},
      {"{\"name\":\"\",\"email\":\"a@b.co\",\"password\":\"12345678\"}",
       "name: must be 1 to 100 characters"},
      {"{\"name\":7,\"email\":\"a@b.co\",\"password\":\"12345678\"}", "name: must be a string"},
      {"{\"name\":\"A\",\"password\":\"12345678\"}", "email: is required"},
      {"{\"name\":\"A\",\"email\":\"ab\",\"password\":\"12345678\"}",
       "email: must be 3 to 254 characters"},
      {"{\"name\":\"A\",\"email\":\"nope\",\"password\":\"12345678\"}",
       "email: must be an email address such as ada@example.com"},
      {"{\"name\":\"A\",\"email\":\"no pe@x.io\",\"password\":\"12345678\"}",
       "email: must be an email address such as ada@example.com"},
      {"{\"name\":\"A\",\"email\":\"a@b.co\"}", "password: is required"},
      {"{\"name\":\"A\",\"email\":\"a@b.co\",\"password\":\"1234567\"}",
       "password: must be 8 to 128 characters"},
  };
  char msg[EX_MSG_MAX];
  size_t i;

  cr_assert(check_user("{\"name\":\"Ada\",\"email\":\"ada@example.com\",\"password\":\"12345678\"}",
                       msg, sizeof(msg)),
            "%s", msg);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cr_assert_not(check_user(bad[i].body, msg, sizeof(msg)), "%s", bad[i].body);
    cr_assert_str_eq(msg, bad[i].msg, "%s", bad[i].body);
  }
}

/* {"name":<n times s>,"email":"a@b.co","password":<p times "x">} */
static bool check_lengths(size_t n, const char *s, size_t p) {
  char body[2048] = "{\"name\":\"", msg[EX_MSG_MAX];
  size_t i;

  for (i = 0; i < n; i++)
    strcat(body, s);
  strcat(body, "\",\"email\":\"a@b.co\",\"password\":\"");
  for (i = 0; i < p; i++)
    strcat(body, "x");
  strcat(body, "\"}");
  return check_user(body, msg, sizeof(msg));
}

Test(examples_user, lengths_count_characters) {
  cr_assert(check_lengths(100, "\xc3\xab", 8), "100 two-byte characters");
  cr_assert_not(check_lengths(101, "a", 8));
  cr_assert(check_lengths(1, "a", 128));
  cr_assert_not(check_lengths(1, "a", 129));
}

Test(examples_user, login_fields) {
  cJSON *doc = cJSON_Parse("{\"email\":\"a@b.co\"}");
  const char *email, *password;
  char msg[EX_MSG_MAX];

  cr_assert_not(validate_login(doc, &email, &password, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "password: is required");
  cJSON_Delete(doc);
  doc = cJSON_Parse("{\"email\":\"a@b.co\",\"password\":\"x\"}");
  cr_assert(validate_login(doc, &email, &password, msg, sizeof(msg)));
  cr_assert_str_eq(password, "x");
  cJSON_Delete(doc);
}

/* ---- passwords ----------------------------------------------------------- */

Test(examples_user, password_round_trip) {
  char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];

  cr_assert_eq(password_hash("correct horse", PASSWORD_ITERATIONS, a, sizeof(a)), 0);
  cr_assert_eq(password_hash("correct horse", PASSWORD_ITERATIONS, b, sizeof(b)), 0);
  cr_assert_eq(strncmp(a, "pbkdf2-sha256$20000$", 20), 0, "%s", a);
  cr_assert_eq(strlen(a), 20 + 32 + 1 + 64);
  cr_assert_str_neq(a, b, "a fresh salt every time");
  cr_assert(password_verify("correct horse", a));
  cr_assert(password_verify("correct horse", b));
  cr_assert_not(password_verify("correct horsE", a));
  cr_assert_not(password_verify("", a));
}

Test(examples_user, password_known_vectors) {
  /* Computed independently with Python's hashlib.pbkdf2_hmac("sha256", ...). */
  static const char one_round[] =
      "pbkdf2-sha256$1$00000000000000000000000000000000$"
      "1fefe125ab13dd2c06db86711ec448e9490e6c73024d7d8d659126c6f9fadd68";
  static const char full[] =
      "pbkdf2-sha256$20000$000102030405060708090a0b0c0d0e0f$"
      "f353b5100691ea4531a49c82821a088e2083178c2c6954a17a1ec53b3900da25";

  cr_assert(password_verify("password", one_round));
  cr_assert_not(password_verify("passwore", one_round));
  cr_assert(password_verify("correct horse", full));
  cr_assert_not(password_verify("correct horse ", full));
}

Test(examples_user, password_malformed_never_matches) {
  static const char *const bad[] = {
      "",
      "plain",
      "pbkdf2-sha1$1$00000000000000000000000000000000$"
      "0000000000000000000000000000000000000000000000000000000000000000",
      "pbkdf2-sha256$0$00000000000000000000000000000000$"
      "0000000000000000000000000000000000000000000000000000000000000000",
      "pbkdf2-sha256$99999999999$00000000000000000000000000000000$"
      "0000000000000000000000000000000000000000000000000000000000000000",
      "pbkdf2-sha256$1$0000$0000",
      "pbkdf2-sha256$1$0000000000000000000000000000000g$"
      "0000000000000000000000000000000000000000000000000000000000000000",
      "pbkdf2-sha256$1$00000000000000000000000000000000$"
      "0000000000000000000000000000000000000000000000000000000000000000ff",
  };
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_not(password_verify("password", bad[i]), "%s", bad[i]);
  cr_assert_not(password_verify("password", NULL));
  cr_assert_lt(password_hash("x", 0, (char[PASSWORD_HASH_MAX]){0}, PASSWORD_HASH_MAX), 0);
  cr_assert_lt(password_hash("x", 1, (char[8]){0}, 8), 0, "buffer too small");
  password_burn("anything"); /* only spends time */
}

/* ---- the user store ------------------------------------------------------ */

Test(examples_user, store_create_get_list) {
  ex_tmp_t t;
  users_t *u;
  user_t a, b, got;
  char err[256], hash[PASSWORD_HASH_MAX];
  cJSON *list;
  char *text;

  ex_tmp_make(&t);
  cr_assert_eq(users_open(ex_tmp_file(&t, "db"), &u, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(users_create(u, "Ada", "ada@example.com", "h1", 1795672798, &a), EX_STORE_OK);
  cr_assert_eq(a.id, 1);
  cr_assert_eq(users_create(u, "Ada 2", "ADA@Example.com", "h2", 1795672799, &b),
               EX_STORE_CONFLICT, "emails compare without regard to case");
  cr_assert_eq(users_create(u, "Bob", "bob@example.com", "h3", 1795672799, &b), EX_STORE_OK);
  cr_assert_eq(b.id, 2);

  cr_assert_eq(users_get(u, 1, &got), EX_STORE_OK);
  cr_assert_str_eq(got.name, "Ada");
  cr_assert_str_eq(got.email, "ada@example.com");
  cr_assert_eq(users_get(u, 3, &got), EX_STORE_NOT_FOUND);
  cr_assert_eq(users_find_login(u, "Bob@example.com", &got, hash, sizeof(hash)), EX_STORE_OK);
  cr_assert_eq(got.id, 2);
  cr_assert_str_eq(hash, "h3");
  cr_assert_eq(users_find_login(u, "eve@example.com", &got, hash, sizeof(hash)),
               EX_STORE_NOT_FOUND);

  list = cJSON_CreateArray();
  cr_assert_eq(users_list(u, 1, 1, list), EX_STORE_OK);
  text = cJSON_PrintUnformatted(list);
  cr_assert_str_eq(text, "[{\"id\":2,\"name\":\"Bob\"}]", "the list has no email: %s", text);
  cJSON_free(text);
  cJSON_Delete(list);
  users_close(u);
  users_close(NULL);
  ex_tmp_remove(&t);
}

#define WRITES 150

typedef struct writer_s {
  const char *path;
  int which;
  int failures;
} writer_t;

/* One "instance": its own connection to the shared file. */
static void *write_users(void *arg) {
  writer_t *w = arg;
  users_t *u = NULL;
  char err[256], email[64];
  user_t user;
  int i;

  if (users_open(w->path, &u, err, sizeof(err)) != 0) {
    w->failures = WRITES;
    return NULL;
  }
  for (i = 0; i < WRITES; i++) {
    snprintf(email, sizeof(email), "user%d-%d@example.com", w->which, i);
    if (users_create(u, "U", email, "h", 1795672798, &user) != EX_STORE_OK)
      w->failures++;
  }
  users_close(u);
  return NULL;
}

Test(examples_user, two_connections_write_at_once, .timeout = 60) {
  ex_tmp_t t;
  writer_t w[2];
  pthread_t th[2];
  users_t *u;
  cJSON *list;
  char err[256];
  int i;

  ex_tmp_make(&t);
  for (i = 0; i < 2; i++) {
    w[i].path = ex_tmp_file(&t, "db");
    w[i].which = i;
    w[i].failures = 0;
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, write_users, &w[i]), 0);
  for (i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  cr_assert_eq(w[0].failures + w[1].failures, 0);
  cr_assert_eq(users_open(ex_tmp_file(&t, "db"), &u, err, sizeof(err)), 0, "%s", err);
  list = cJSON_CreateArray();
  cr_assert_eq(users_list(u, 200, 0, list), EX_STORE_OK);
  cr_assert_eq(cJSON_GetArraySize(list), 200);
  cJSON_Delete(list);
  list = cJSON_CreateArray();
  cr_assert_eq(users_list(u, 200, 200, list), EX_STORE_OK);
  cr_assert_eq(cJSON_GetArraySize(list), 2 * WRITES - 200);
  cJSON_Delete(list);
  users_close(u);
  ex_tmp_remove(&t);
}

Test(examples_user, store_open_error_names_the_file) {
  users_t *u = (users_t *)1;
  char err[256];

  cr_assert_neq(users_open("no/such/dir/users.db", &u, err, sizeof(err)), 0);
  cr_assert_null(u);
  cr_assert_not_null(strstr(err, "no/such/dir/users.db"), "%s", err);
}

/* ---- tokens -------------------------------------------------------------- */

static msvc_jwt_key_t *load_test_key(ex_tmp_t *t) {
  msvc_jwt_key_t *key = NULL;
  char err[256];
  FILE *f;

  ex_tmp_make(t);
  f = fopen(ex_tmp_file(t, "key.pem"), "w");
  cr_assert_not_null(f);
  fputs(test_key_pem, f);
  fclose(f);
  cr_assert_eq(token_key_load(ex_tmp_file(t, "key.pem"), &key, err, sizeof(err)), MSVC_OK,
               "%s", err);
  return key;
}

Test(examples_user, claims) {
  ex_tmp_t t;
  msvc_jwt_key_t *key = load_test_key(&t);
  token_cfg_t cfg = {key, "user-service", "msvc-demo"};
  char *a = token_claims(&cfg, 42, 1795672798), *b = token_claims(&cfg, 42, 1795672798);
  cJSON *doc = cJSON_Parse(a), *jti;

  cr_assert_not_null(doc, "%s", a);
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "iss")->valuestring, "user-service");
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "aud")->valuestring, "msvc-demo");
  cr_assert_str_eq(cJSON_GetObjectItem(doc, "sub")->valuestring, "42", "sub is a string");
  cr_assert_eq(cJSON_GetObjectItem(doc, "iat")->valuedouble, 1795672798);
  cr_assert_eq(cJSON_GetObjectItem(doc, "nbf")->valuedouble, 1795672798);
  cr_assert_eq(cJSON_GetObjectItem(doc, "exp")->valuedouble, 1795672798 + 900);
  jti = cJSON_GetObjectItem(doc, "jti");
  cr_assert(cJSON_IsString(jti) && strlen(jti->valuestring) == 32);
  cr_assert_str_neq(a, b, "a fresh jti every time");
  cJSON_Delete(doc);
  cJSON_free(a);
  cJSON_free(b);
  msvc_jwt_key_free(key);
  ex_tmp_remove(&t);
}

Test(examples_user, token_verifies_with_the_published_key) {
  ex_tmp_t t;
  msvc_jwt_key_t *key = load_test_key(&t);
  token_cfg_t cfg = {key, "user-service", "msvc-demo"};
  const char *aud[] = {"msvc-demo"};
  msvc_jwt_verify_opts_t opts;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_claims_t *claims = NULL;
  char *token = NULL, *jwks = NULL, kid[44];
  int64_t iat = 0, exp = 0;

  cr_assert_eq(msvc_jwt_key_thumbprint(key, kid), MSVC_OK);
  cr_assert_str_eq(msvc_jwt_key_kid(key), kid, "the kid is the RFC 7638 thumbprint");
  cr_assert_eq(token_jwks(key, &jwks), MSVC_OK);
  cr_assert_not_null(strstr(jwks, kid));
  cr_assert_null(strstr(jwks, "\"d\""), "no private part: %s", jwks);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_load_jwks(ks, jwks, strlen(jwks)), MSVC_OK);

  msvc_jwt_verify_opts_init(&opts);
  opts.algs = MSVC_JWT_ES256;
  opts.issuer = "user-service";
  opts.audiences = aud;
  opts.n_audiences = 1;
  cr_assert_eq(msvc_jwt_verifier_new(&opts, ks, &v), MSVC_OK);
  cr_assert_eq(token_issue(&cfg, 42, ex_now_s(), &token), MSVC_OK);
  cr_assert_eq(msvc_jwt_verify(v, token, strlen(token), &claims), MSVC_OK, "%s",
               msvc_jwt_errmsg());
  cr_assert_str_eq(msvc_jwt_claims_string(claims, "sub"), "42");
  cr_assert_eq(msvc_jwt_claims_int(claims, "iat", &iat), MSVC_OK);
  cr_assert_eq(msvc_jwt_claims_int(claims, "exp", &exp), MSVC_OK);
  cr_assert_eq(exp - iat, TOKEN_TTL_S);
  msvc_jwt_claims_free(claims);
  msvc_free(token);

  /* An expired token (issued an hour ago) is refused. */
  cr_assert_eq(token_issue(&cfg, 42, ex_now_s() - 3600, &token), MSVC_OK);
  cr_assert_eq(msvc_jwt_verify(v, token, strlen(token), &claims), MSVC_EJWT_EXPIRED);
  msvc_free(token);

  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  free(jwks);
  msvc_jwt_key_free(key);
  ex_tmp_remove(&t);
}

Test(examples_user, key_load_errors) {
  msvc_jwt_key_t *key = (msvc_jwt_key_t *)1;
  char err[256];
  ex_tmp_t t;
  FILE *f;

  ex_tmp_make(&t);
  cr_assert_neq(token_key_load(ex_tmp_file(&t, "missing.pem"), &key, err, sizeof(err)),
                MSVC_OK);
  cr_assert_null(key);
  cr_assert_eq(strncmp(err, "USER_SIGNING_KEY: ", 18), 0, "%s", err);
  f = fopen(ex_tmp_file(&t, "bad.pem"), "w");
  cr_assert_not_null(f);
  fputs("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", f);
  fclose(f);
  cr_assert_neq(token_key_load(ex_tmp_file(&t, "bad.pem"), &key, err, sizeof(err)), MSVC_OK);
  cr_assert_null(key);
  ex_tmp_remove(&t);
}

/* Reads of accounts need a token of this service's own key: none, a
 * malformed, expired, foreign or wrongly addressed one are told apart
 * from a good one, which yields the user id. */
Test(examples_user, token_check_of_reads) {
  ex_tmp_t t;
  msvc_jwt_key_t *key = load_test_key(&t), *other = NULL;
  token_cfg_t cfg = {key, "user-service", "msvc-demo"};
  token_cfg_t wrong_aud = {key, "user-service", "another-app"};
  msvc_jwt_keyset_t *ks = NULL;
  msvc_jwt_verifier_t *v = NULL;
  char *jwks = NULL, *token = NULL, header[2048], kid[44];
  const char *why;
  int64_t sub = 0;
  token_cfg_t foreign;

  cr_assert_eq(token_jwks(key, &jwks), MSVC_OK);
  cr_assert_eq(token_verifier_new(&cfg, jwks, &ks, &v), MSVC_OK);
  cr_assert_eq(token_check(v, NULL, &sub, &why), TOKEN_NONE);
  cr_assert_eq(token_check(v, "Basic dTpw", &sub, &why), TOKEN_NONE);
  cr_assert_eq(token_check(v, "Bearer ", &sub, &why), TOKEN_NONE);
  cr_assert_eq(token_check(v, "Bearer not.a.jwt", &sub, &why), TOKEN_BAD);
  cr_assert_not_null(why);

  cr_assert_eq(token_issue(&cfg, 42, ex_now_s(), &token), MSVC_OK);
  snprintf(header, sizeof(header), "bearer %s", token);
  cr_assert_eq(token_check(v, header, &sub, &why), TOKEN_OK, "%s", why);
  cr_assert_eq(sub, 42);
  msvc_free(token);

  cr_assert_eq(token_issue(&cfg, 42, ex_now_s() - 3600, &token), MSVC_OK);
  snprintf(header, sizeof(header), "Bearer %s", token);
  cr_assert_eq(token_check(v, header, &sub, &why), TOKEN_BAD);
  cr_assert_str_eq(why, "the token has expired");
  msvc_free(token);

  cr_assert_eq(token_issue(&wrong_aud, 42, ex_now_s(), &token), MSVC_OK);
  snprintf(header, sizeof(header), "Bearer %s", token);
  cr_assert_eq(token_check(v, header, &sub, &why), TOKEN_BAD, "another audience");
  msvc_free(token);

  /* A token signed by another key with the same kid is refused. */
  cr_assert_eq(msvc_jwt_key_thumbprint(key, kid), MSVC_OK);
  cr_assert_eq(msvc_jwt_key_from_pem(OTHER_EC_PEM, strlen(OTHER_EC_PEM), MSVC_JWT_ES256, kid,
                                     &other), MSVC_OK);
  foreign = (token_cfg_t){other, "user-service", "msvc-demo"};
  cr_assert_eq(token_issue(&foreign, 42, ex_now_s(), &token), MSVC_OK);
  snprintf(header, sizeof(header), "Bearer %s", token);
  cr_assert_eq(token_check(v, header, &sub, &why), TOKEN_BAD, "a forged signature");
  msvc_free(token);

  msvc_jwt_key_free(other);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  free(jwks);
  msvc_jwt_key_free(key);
  ex_tmp_remove(&t);
}

Test(examples_user, public_view_has_no_email) {
  user_t u = {0};
  cJSON *doc;
  char *text;

  u.id = 7;
  snprintf(u.name, sizeof(u.name), "Ada");
  snprintf(u.email, sizeof(u.email), "ada@example.com");
  u.created_at = 0;
  doc = user_public_json(&u);
  cr_assert_not_null(doc);
  text = cJSON_PrintUnformatted(doc);
  cr_assert_str_eq(text, "{\"id\":7,\"name\":\"Ada\"}");
  cJSON_free(text);
  cJSON_Delete(doc);
  doc = user_json(&u);
  cr_assert_not_null(cJSON_GetObjectItem(doc, "email"), "the owner's view has it");
  cJSON_Delete(doc);
}
