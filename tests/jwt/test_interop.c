/* Interoperability with jose (npm): the committed fixtures it generated,
 * and tokens we sign verified by jose itself. */
#include "jwt-test.h"

#include <cjson/cJSON.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t now = FIXTURE_NOW;

static const char *str_member(const cJSON *o, const char *name) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

  return cJSON_IsString(m) ? m->valuestring : NULL;
}

static msvc_jwt_verifier_t *verifier_for(const cJSON *opts, msvc_jwt_keyset_t *ks) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_verifier_t *v = NULL;
  const char *aud = str_member(opts, "audience");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(opts, "required");
  const cJSON *age = cJSON_GetObjectItemCaseSensitive(opts, "max_age_s");
  const char *required[8];
  size_t n = 0;
  const cJSON *r;

  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = &now;
  o.issuer = str_member(opts, "issuer");
  o.typ = str_member(opts, "typ");
  if (aud != NULL) {
    o.audiences = &aud;
    o.n_audiences = 1;
  }
  cJSON_ArrayForEach(r, req) required[n++] = r->valuestring;
  o.required = required;
  o.n_required = n;
  if (cJSON_IsNumber(age))
    o.max_age_s = (uint32_t)age->valuedouble;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_OK);
  return v;
}

Test(jwt_interop, agrees_with_jose_on_every_fixture) {
  char *text = read_fixture("tokens.json", NULL);
  cJSON *doc = cJSON_Parse(text), *f;
  msvc_jwt_keyset_t *ks;
  int count = 0, deviations = 0;

  cr_assert_not_null(doc);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_load_jwks_file(ks, FIXTURES "jwks.json"), MSVC_OK, "%s",
               msvc_jwt_errmsg());
  cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(doc, "fixtures")) {
    const char *name = str_member(f, "name"), *token = str_member(f, "token");
    const char *expect = str_member(f, "expect"), *deviation = str_member(f, "deviation");
    bool jose_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(f, "jose"), "ok"));
    msvc_jwt_verifier_t *v = verifier_for(cJSON_GetObjectItemCaseSensitive(f, "options"), ks);
    int rc = verify_str(v, token);

    cr_assert_str_eq(msvc_err_name(rc), expect, "%s: got %s (%s)", name, msvc_err_name(rc),
                     msvc_jwt_errmsg());
    if (deviation == NULL)
      cr_assert_eq(rc == MSVC_OK, jose_ok, "%s: jose says %s", name, jose_ok ? "ok" : "no");
    else {
      /* Deliberately stricter than jose, and only in that direction. */
      cr_assert(jose_ok && rc != MSVC_OK, "%s: deviation no longer holds", name);
      deviations++;
    }
    msvc_jwt_verifier_free(v);
    count++;
  }
  cr_assert_geq(count, 60);
  cr_assert_leq(deviations, 8);
  msvc_jwt_keyset_free(ks);
  cJSON_Delete(doc);
  free(text);
}

static const struct {
  msvc_jwt_alg_t alg;
  const char *file, *kid;
} ours[] = {
    {MSVC_JWT_HS256, "hs256.secret", "hs-256"},   {MSVC_JWT_HS384, "hs384.secret", "hs-384"},
    {MSVC_JWT_HS512, "hs512.secret", "hs-512"},   {MSVC_JWT_RS256, "rsa-private.pem", "rsa-1"},
    {MSVC_JWT_RS384, "rsa-private.pem", "rsa-1"}, {MSVC_JWT_RS512, "rsa-private.pem", "rsa-1"},
    {MSVC_JWT_PS256, "rsa-private.pem", "rsa-1"}, {MSVC_JWT_PS384, "rsa-private.pem", "rsa-1"},
    {MSVC_JWT_PS512, "rsa-private.pem", "rsa-1"}, {MSVC_JWT_ES256, "ec256-private.pem", "ec-256"},
    {MSVC_JWT_ES384, "ec384-private.pem", "ec-384"}, {MSVC_JWT_ES512, "ec512-private.pem", "ec-521"},
};

/* Outside CI a missing node or jose skips the cross-check, saying so. CI
 * (CI=true) installs jose with `npm ci`, so there the same gap is a failure:
 * a skip would hide that the check never ran. */
static bool in_ci(void) {
  const char *ci = getenv("CI");

  return ci != NULL && (strcasecmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

#define SKIP_UNLESS_CI(why)                                                   \
  do {                                                                        \
    if (in_ci())                                                              \
      cr_assert_fail("%s (CI is set: the interoperability check must run)", why); \
    cr_skip_test("%s", why);                                                  \
  } while (0)

Test(jwt_interop, jose_verifies_tokens_we_sign) {
  const char *dir = LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop";
  char path[] = "/tmp/msvc-jwt-ours-XXXXXX", cmd[1024];
  struct stat st;
  FILE *f;
  int fd, status;

  if (system("node --version >/dev/null 2>&1") != 0)
    SKIP_UNLESS_CI("node is not installed: jose cannot check our tokens");
  snprintf(cmd, sizeof(cmd), "%s/node_modules/jose/package.json", dir);
  if (stat(cmd, &st) != 0)
    SKIP_UNLESS_CI("jose is not installed: run `npm ci` in tests/jwt/interop");
  fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  f = fdopen(fd, "w");
  for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
    msvc_jwt_key_t *key = strstr(ours[i].file, ".secret") ? fixture_secret(ours[i].file, ours[i].kid)
                                                          : fixture_pem(ours[i].file, ours[i].kid);
    char *t = NULL;

    cr_assert_eq(msvc_jwt_sign(key, ours[i].alg,
                               "{\"sub\":\"ours\",\"iat\":1700000000,\"exp\":1700000600}", &t),
                 MSVC_OK);
    fprintf(f, "%s\n", t);
    msvc_free(t);
    msvc_jwt_key_free(key);
  }
  fclose(f);
  snprintf(cmd, sizeof(cmd), "cd '%s' && node verify-ours.mjs '%s'", dir, path);
  status = system(cmd);
  unlink(path);
  cr_assert_eq(status, 0, "jose rejected a token signed by libmsvc (see output above)");
}
