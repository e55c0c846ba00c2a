/* Out-of-memory sweeps over the blocks without a loop: JWT verification
 * (HS256 with one secret, ES256 with a key set parsed from a JWK Set) and
 * the metrics exposition. */
#include <msvc/jwt.h>
#include <msvc/metrics.h>

#include "oom/oom.h"

#define FIXTURES LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/"

static char *read_file(const char *name, size_t *len) {
  char path[512];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s%s", FIXTURES, name);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "missing %s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* ---- JWT ------------------------------------------------------------------ */

typedef struct jwt_fx_s {
  char *secret;
  size_t secret_len;
  char *hs_token;
  char *es_token;
  char *es_forged;
  char jwks[2048];
} jwt_fx_t;

static const char claims_json[] =
    "{\"sub\":\"alice\",\"iss\":\"oom\",\"aud\":[\"a\",\"b\"],"
    "\"exp\":4102444800,\"roles\":[\"admin\",\"user\"]}";

static void jwt_fx_init(jwt_fx_t *fx) {
  msvc_jwt_key_t *hs = NULL, *es = NULL;
  char *pem, *jwk = NULL;
  size_t len;

  fx->secret = read_file("hs256.secret", &fx->secret_len);
  cr_assert_eq(msvc_jwt_key_from_secret(fx->secret, fx->secret_len, 0, "hs",
                                        &hs), MSVC_OK);
  cr_assert_eq(msvc_jwt_sign(hs, MSVC_JWT_HS256, claims_json, &fx->hs_token),
               MSVC_OK);
  pem = read_file("ec256-private.pem", &len);
  cr_assert_eq(msvc_jwt_key_from_pem(pem, len, 0, "ec", &es), MSVC_OK);
  free(pem);
  cr_assert_eq(msvc_jwt_sign(es, MSVC_JWT_ES256, claims_json, &fx->es_token),
               MSVC_OK);
  cr_assert_eq(msvc_jwt_key_public_jwk(es, &jwk), MSVC_OK);
  snprintf(fx->jwks, sizeof(fx->jwks), "{\"keys\":[%s,{\"kty\":\"oct\","
           "\"use\":\"enc\",\"k\":\"AAAA\"}]}", jwk);
  /* Same header and claims, another signature. */
  fx->es_forged = msvc__strdup(fx->es_token);
  fx->es_forged[strlen(fx->es_forged) - 3] ^= 1;
  msvc_free(jwk);
  msvc_jwt_key_free(hs);
  msvc_jwt_key_free(es);
}

static void jwt_fx_free(jwt_fx_t *fx) {
  free(fx->secret);
  msvc_free(fx->hs_token);
  msvc_free(fx->es_token);
  msvc_free(fx->es_forged);
}

static int verifier_over(msvc_jwt_keyset_t *ks, msvc_jwt_verifier_t **v) {
  static const char *const aud[] = {"b"};
  static const char *const req[] = {"sub", "exp"};
  msvc_jwt_verify_opts_t o;

  msvc_jwt_verify_opts_init(&o);
  o.issuer = "oom";
  o.audiences = aud;
  o.n_audiences = 1;
  o.required = req;
  o.n_required = 2;
  o.cache_size = 4;
  return msvc_jwt_verifier_new(&o, ks, v);
}

/* A good token verifies (twice: the second from the cache) with its claims
 * readable; a bad one is refused as such, never with another code. */
static int check_token(msvc_jwt_verifier_t *v, const char *token) {
  msvc_jwt_claims_t *claims = NULL;
  int rc, i;

  for (i = 0; i < 2; i++) {
    OOM_CALL(rc, msvc_jwt_verify(v, token, strlen(token), &claims), out);
    cr_assert_str_eq(msvc_jwt_claims_string(claims, "sub"), "alice");
    cr_assert_eq(msvc_jwt_claims_string_count(claims, "roles"), 2);
    msvc_jwt_claims_free(claims);
    claims = NULL;
  }
out:
  return rc;
}

static int jwt_scenario(void *arg) {
  jwt_fx_t *fx = arg;
  msvc_jwt_key_t *key = NULL;
  msvc_jwt_keyset_t *hs_ks = NULL, *es_ks = NULL;
  msvc_jwt_verifier_t *hs_v = NULL, *es_v = NULL;
  int rc;

  OOM_CALL(rc, msvc_jwt_key_from_secret(fx->secret, fx->secret_len,
                                        MSVC_JWT_HS256, "hs", &key), out);
  OOM_CALL(rc, msvc_jwt_keyset_new(&hs_ks), out);
  OOM_CALL(rc, msvc_jwt_keyset_add(hs_ks, key), out);
  OOM_CALL(rc, verifier_over(hs_ks, &hs_v), out);
  OOM_CALL(rc, check_token(hs_v, fx->hs_token), out);

  OOM_CALL(rc, msvc_jwt_keyset_new(&es_ks), out);
  OOM_CALL(rc, msvc_jwt_keyset_load_jwks(es_ks, fx->jwks, strlen(fx->jwks)),
           out);
  cr_assert_eq(msvc_jwt_keyset_count(es_ks), 1);
  OOM_CALL(rc, verifier_over(es_ks, &es_v), out);
  OOM_CALL(rc, check_token(es_v, fx->es_token), out);
  rc = msvc_jwt_verify(es_v, fx->es_forged, strlen(fx->es_forged), NULL);
  if (rc != MSVC_ENOMEM) {
    cr_assert_eq(rc, MSVC_EJWT_BAD_SIGNATURE, "N=%lu: forged token: %s",
                 oom_n, msvc_err_name(rc));
    rc = 0;
  }
out:
  msvc_jwt_key_free(key);
  msvc_jwt_verifier_free(hs_v);
  msvc_jwt_verifier_free(es_v);
  msvc_jwt_keyset_free(hs_ks);
  msvc_jwt_keyset_free(es_ks);
  return rc;
}

Test(oom, jwt_verify, .init = oom_init, .timeout = 240) {
  jwt_fx_t fx;
  oom_stats_t st;

  jwt_fx_init(&fx);
  oom_sweep("jwt verify", jwt_scenario, &fx, 100000, 1, &st);
  oom_sweep_mode("jwt verify", jwt_scenario, &fx, 100000, 1, true, &st);
  jwt_fx_free(&fx);
}

/* ---- metrics exposition --------------------------------------------------- */

static int family(msvc_metrics_registry_t *reg, msvc_metrics_type_t type,
                  const char *name, size_t nlabels,
                  msvc_metrics_family_t **fam) {
  static const char *const labels[] = {"method", "code"};
  msvc_metrics_family_opts_t o;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = "a help text with \\ and \"quotes\"";
  o.label_names = labels;
  o.label_count = nlabels;
  return msvc_metrics_family_new(reg, type, &o, fam);
}

static int metrics_scenario(void *arg) {
  static const char *const v1[] = {"GET", "200"};
  static const char *const v2[] = {"POST", "5\"0\n0"};
  msvc_metrics_registry_t *reg = NULL;
  msvc_metrics_family_t *c, *g, *h;
  msvc_metrics_counter_t *cc;
  msvc_metrics_gauge_t *gg;
  msvc_metrics_histogram_t *hh;
  char *text = NULL;
  size_t len;
  int rc, f;

  (void)arg;
  OOM_CALL(rc, msvc_metrics_registry_new(NULL, &reg), out);
  OOM_CALL(rc, family(reg, MSVC_METRICS_COUNTER, "oom_requests_total", 2, &c),
           out);
  OOM_CALL(rc, family(reg, MSVC_METRICS_GAUGE, "oom_inflight", 0, &g), out);
  OOM_CALL(rc, family(reg, MSVC_METRICS_HISTOGRAM, "oom_seconds", 1, &h), out);
  OOM_CALL(rc, msvc_metrics_counter_get(c, v1, 2, &cc), out);
  msvc_metrics_counter_inc(cc);
  OOM_CALL(rc, msvc_metrics_counter_get(c, v2, 2, &cc), out);
  msvc_metrics_counter_add(cc, 2.5);
  OOM_CALL(rc, msvc_metrics_gauge_get(g, NULL, 0, &gg), out);
  msvc_metrics_gauge_set(gg, -3);
  OOM_CALL(rc, msvc_metrics_histogram_get(h, v1, 1, &hh), out);
  msvc_metrics_histogram_observe(hh, 0.02);
  OOM_CALL(rc, msvc_metrics_process_collector_register(reg), out);
  for (f = 0; f < 2; f++) {
    OOM_CALL(rc, msvc_metrics_expose(reg, (msvc_metrics_format_t)f, &text,
                                     &len), out);
    cr_assert_not_null(strstr(text, "oom_requests_total{method=\"GET\","
                                    "code=\"200\"} 1"));
    cr_assert_not_null(strstr(text, "oom_seconds_bucket{method=\"GET\""));
    msvc_free(text);
    text = NULL;
  }
out:
  msvc_metrics_registry_free(reg);
  return rc;
}

Test(oom, metrics_exposition, .init = oom_init, .timeout = 240) {
  oom_stats_t st;

  oom_sweep("metrics exposition", metrics_scenario, NULL, 100000, 1, &st);
  oom_sweep_mode("metrics exposition", metrics_scenario, NULL, 100000, 1, true,
                 &st);
}
