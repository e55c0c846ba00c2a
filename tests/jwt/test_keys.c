/* Keys, key sets, signing and the claim getters. */
#include "jwt-test.h"

#include "jwt/jwt-internal.h"

static uint64_t now = FIXTURE_NOW;

static const struct {
  msvc_jwt_alg_t alg;
  const char *file;
} signers[] = {
    {MSVC_JWT_HS256, "hs256.secret"}, {MSVC_JWT_HS384, "hs384.secret"},
    {MSVC_JWT_HS512, "hs512.secret"}, {MSVC_JWT_RS256, "rsa-private.pem"},
    {MSVC_JWT_RS384, "rsa-private.pem"}, {MSVC_JWT_RS512, "rsa-private.pem"},
    {MSVC_JWT_PS256, "rsa-private.pem"}, {MSVC_JWT_PS384, "rsa-private.pem"},
    {MSVC_JWT_PS512, "rsa-private.pem"}, {MSVC_JWT_ES256, "ec256-private.pem"},
    {MSVC_JWT_ES384, "ec384-private.pem"}, {MSVC_JWT_ES512, "ec512-private.pem"},
};

static msvc_jwt_key_t *signer_key(size_t i) {
  return strstr(signers[i].file, ".secret") ? fixture_secret(signers[i].file, "k")
                                            : fixture_pem(signers[i].file, "k");
}

Test(jwt_sign, round_trip_every_algorithm) {
  for (size_t i = 0; i < MSVC__ARRAY_SIZE(signers); i++) {
    msvc_jwt_key_t *key = signer_key(i);
    msvc_jwt_keyset_t *ks;
    msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
    msvc_jwt_claims_t *c = NULL;
    char *t = NULL;

    cr_assert(msvc_jwt_key_can_sign(key));
    cr_assert_eq(msvc_jwt_sign(key, signers[i].alg, "{\"sub\":\"7\",\"exp\":1700000600}", &t),
                 MSVC_OK, "%s: %s", msvc_jwt_alg_name(signers[i].alg), msvc_jwt_errmsg());
    cr_assert_eq(msvc_jwt_verify(v, t, strlen(t), &c), MSVC_OK, "%s: %s",
                 msvc_jwt_alg_name(signers[i].alg), msvc_jwt_errmsg());
    cr_assert_eq(msvc_jwt_claims_alg(c), signers[i].alg);
    cr_assert_str_eq(msvc_jwt_claims_kid(c), "k");
    cr_assert_str_eq(msvc_jwt_claims_string(c, "sub"), "7");
    msvc_jwt_claims_free(c);
    msvc_free(t);
    msvc_jwt_verifier_free(v);
    msvc_jwt_keyset_free(ks);
    msvc_jwt_key_free(key);
  }
}

Test(jwt_sign, refuses_public_keys_and_bad_claims) {
  msvc_jwt_key_t *pub = fixture_pem("ec256-public.pem", NULL), *hs = fixture_secret("hs256.secret", NULL);
  char *t = NULL;

  cr_assert_not(msvc_jwt_key_can_sign(pub));
  cr_assert_eq(msvc_jwt_sign(pub, MSVC_JWT_ES256, "{}", &t), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_sign(hs, MSVC_JWT_ALG_UNSET, "[1]", &t), MSVC_EJSON);
  cr_assert_eq(msvc_jwt_sign(hs, MSVC_JWT_ALG_UNSET, "{\"a\":1,\"a\":2}", &t), MSVC_EJSON);
  cr_assert_eq(msvc_jwt_sign(hs, MSVC_JWT_RS256, "{}", &t), MSVC_EJWT_ALG_NOT_ALLOWED);
  cr_assert_null(t);
  msvc_jwt_key_free(pub);
  msvc_jwt_key_free(hs);
}

Test(jwt_keys, public_jwk_round_trip_and_thumbprint) {
  static const char *const files[] = {"rsa-private.pem", "ec256-private.pem",
                                      "ec384-public.pem", "ec512-private.pem"};

  for (size_t i = 0; i < 4; i++) {
    msvc_jwt_key_t *key = fixture_pem(files[i], "kid\"x"), *back = NULL;
    char *jwk = NULL, tp1[44], tp2[44];

    cr_assert_eq(msvc_jwt_key_public_jwk(key, &jwk), MSVC_OK);
    cr_assert_null(strstr(jwk, "\"d\""), "private material in %s", jwk);
    cr_assert_eq(msvc_jwt_key_from_jwk(jwk, strlen(jwk), &back), MSVC_OK, "%s: %s", jwk,
                 msvc_jwt_errmsg());
    cr_assert_str_eq(msvc_jwt_key_kid(back), "kid\"x");
    cr_assert_eq(msvc_jwt_key_algs(back), msvc_jwt_key_algs(key));
    cr_assert_not(msvc_jwt_key_can_sign(back));
    cr_assert_eq(msvc_jwt_key_thumbprint(key, tp1), MSVC_OK);
    cr_assert_eq(msvc_jwt_key_thumbprint(back, tp2), MSVC_OK);
    cr_assert_str_eq(tp1, tp2);
    cr_assert_eq(strlen(tp1), 43);
    msvc_free(jwk);
    msvc_jwt_key_free(back);
    msvc_jwt_key_free(key);
  }
}

Test(jwt_keys, rfc7638_thumbprint_example) {
  /* RFC 7638 §3.1. */
  static const char jwk[] =
      "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAt"
      "VT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl9"
      "3lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5h"
      "ajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF"
      "44-csFCur-kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";
  msvc_jwt_key_t *k = NULL;
  char tp[44];

  cr_assert_eq(msvc_jwt_key_from_jwk(jwk, strlen(jwk), &k), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_key_thumbprint(k, tp), MSVC_OK);
  cr_assert_str_eq(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  cr_assert_eq(msvc_jwt_key_algs(k), (unsigned)MSVC_JWT_RS256, "JWK alg narrows the key");
  msvc_jwt_key_free(k);
}

Test(jwt_keys, bad_keys_are_precise_errors) {
  static const char *const bad[] = {
      "{}", "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}",
      "{\"kty\":\"RSA\",\"n\":\"AQAB\"}", "{\"kty\":\"oct\"}",
      ("{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\","
       "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
       "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}"),
      ("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
       "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1\"}"), /* off the curve */
      "not json", "{\"kty\":\"EC\",\"use\":\"enc\"}"};
  msvc_jwt_key_t *k = NULL;

  for (size_t i = 0; i < MSVC__ARRAY_SIZE(bad); i++) {
    cr_assert_eq(msvc_jwt_key_from_jwk(bad[i], strlen(bad[i]), &k), MSVC_EJWT_BAD_KEY, "%s",
                 bad[i]);
    cr_assert_gt(strlen(msvc_jwt_errmsg()), 0);
  }
  cr_assert_eq(msvc_jwt_key_from_pem("garbage", 7, 0, NULL, &k), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_key_from_pem_file("/nonexistent/key.pem", 0, NULL, &k), MSVC_ENOENT);
  cr_assert_eq(msvc_jwt_key_from_pem(NULL, 0, 0, NULL, &k), MSVC_EINVAL);
  cr_assert_null(k);
}

Test(jwt_keys, jwks_file_skips_unusable_entries) {
  msvc_jwt_keyset_t *ks;
  static const char mixed[] =
      "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
      "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AA\",\"e\":\"AQAB\"},"
      "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"},"
      "{\"kty\":\"oct\",\"alg\":\"A128KW\",\"k\":\"AA\"},"
      "{\"kty\":\"oct\",\"kid\":\"s\",\"k\":\"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE\"}]}";
  static const char broken[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"A\"}]}";

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_load_jwks_file(ks, FIXTURES "jwks.json"), MSVC_OK, "%s",
               msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_keyset_count(ks), 7);
  cr_assert_eq(msvc_jwt_keyset_load_jwks(ks, mixed, strlen(mixed)), MSVC_OK, "%s",
               msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_keyset_count(ks), 1);
  /* A malformed supported entry fails the document; the old keys stay. */
  cr_assert_eq(msvc_jwt_keyset_load_jwks(ks, broken, strlen(broken)), MSVC_EJWT_BAD_KEY);
  cr_assert(strstr(msvc_jwt_errmsg(), "entry 0") != NULL, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_keyset_count(ks), 1);
  cr_assert_eq(msvc_jwt_keyset_load_jwks(ks, "{\"keys\":[]}", 11), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_keyset_load_jwks(ks, "[]", 2), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_keyset_count(ks), 1);
  msvc_jwt_keyset_free(ks);
}

static int unknown_calls;
static char unknown_last[64];

static void on_unknown(void *data, const char *kid) {
  (void)data;
  unknown_calls++;
  snprintf(unknown_last, sizeof(unknown_last), "%s", kid);
}

Test(jwt_keys, rotation_and_unknown_kid_hook) {
  msvc_jwt_key_t *a = fixture_pem("ec256-private.pem", "a");
  msvc_jwt_key_t *b = fixture_pem("ec384-private.pem", "b");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(a, &now, &ks);
  char *ta, *tb;
  uint64_t gen = msvc_jwt_keyset_generation(ks);

  msvc_jwt_keyset_on_unknown_kid(ks, on_unknown, NULL);
  cr_assert_eq(msvc_jwt_sign(a, MSVC_JWT_ALG_UNSET, "{}", &ta), MSVC_OK);
  cr_assert_eq(msvc_jwt_sign(b, MSVC_JWT_ALG_UNSET, "{}", &tb), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_OK);
  cr_assert_eq(verify_str(v, tb), MSVC_EJWT_UNKNOWN_KID);
  cr_assert_eq(unknown_calls, 1);
  cr_assert_str_eq(unknown_last, "b");
  cr_assert_eq(msvc_jwt_keyset_replace(ks, &b, 1), MSVC_OK);
  cr_assert_gt(msvc_jwt_keyset_generation(ks), gen);
  cr_assert_eq(verify_str(v, tb), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_EJWT_UNKNOWN_KID);
  cr_assert_eq(unknown_calls, 2);
  cr_assert_eq(msvc_jwt_keyset_replace(ks, NULL, 0), MSVC_OK);
  cr_assert_eq(verify_str(v, tb), MSVC_EJWT_UNKNOWN_KID);
  msvc_free(ta);
  msvc_free(tb);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(a);
  msvc_jwt_key_free(b);
}

Test(jwt_claims, getters) {
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  msvc_jwt_claims_t *c = NULL;
  char *t, *raw;
  int64_t i;
  bool b;

  cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_HS256,
                             "{\"s\":\"x\",\"n\":42,\"f\":1.5,\"b\":false,\"aud\":[\"p\",\"q\"],"
                             "\"m\":[\"p\",1],\"o\":{\"k\":[1,2]}}", &t), MSVC_OK);
  cr_assert_eq(msvc_jwt_verify(v, t, strlen(t), &c), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_str_eq(msvc_jwt_claims_string(c, "s"), "x");
  cr_assert_null(msvc_jwt_claims_string(c, "n"));
  cr_assert_eq(msvc_jwt_claims_int(c, "n", &i), MSVC_OK);
  cr_assert_eq(i, 42);
  cr_assert_eq(msvc_jwt_claims_int(c, "f", &i), MSVC_ERANGE);
  cr_assert_eq(msvc_jwt_claims_int(c, "zz", &i), MSVC_ENOTFOUND);
  cr_assert_eq(msvc_jwt_claims_bool(c, "b", &b), MSVC_OK);
  cr_assert_not(b);
  cr_assert_eq(msvc_jwt_claims_bool(c, "s", &b), MSVC_EINVAL);
  cr_assert_eq(msvc_jwt_claims_string_count(c, "aud"), 2);
  cr_assert_str_eq(msvc_jwt_claims_string_at(c, "aud", 1), "q");
  cr_assert_null(msvc_jwt_claims_string_at(c, "aud", 2));
  cr_assert_eq(msvc_jwt_claims_string_count(c, "s"), 1);
  cr_assert_eq(msvc_jwt_claims_string_count(c, "m"), 0);
  cr_assert_eq(msvc_jwt_claims_raw(c, "o", &raw), MSVC_OK);
  cr_assert_str_eq(raw, "{\"k\":[1,2]}");
  msvc_free(raw);
  cr_assert(strstr(msvc_jwt_claims_json(c), "\"s\":\"x\"") != NULL);
  cr_assert_null(msvc_jwt_claims_kid(c));
  msvc_jwt_claims_free(c);
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_options, validation_and_defaults) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = NULL;
  unsigned m = 0;
  const char *null_aud[] = {NULL};

  msvc_jwt_verify_opts_init(&o);
  cr_assert_eq(o.leeway_s, 30);
  cr_assert_eq(o.max_token_len, 8192);
  cr_assert_eq(o.algs, (unsigned)MSVC_JWT_ALGS_ALL);
  cr_assert_eq(o.cache_size, 0);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  o.algs = 0;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_EINVAL);
  msvc_jwt_verify_opts_init(&o);
  o.audiences = null_aud;
  o.n_audiences = 1;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_EINVAL);
  cr_assert_eq(msvc_jwt_verifier_new(NULL, NULL, &v), MSVC_EINVAL);
  msvc_jwt_verify_opts_init(&o);
  o.size = 0; /* not filled by the init function */
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_EINVAL);
  cr_assert_null(v);
  cr_assert_eq(msvc_jwt_algs_parse("RS256,ES256", &m), MSVC_OK);
  cr_assert_eq(m, (unsigned)(MSVC_JWT_RS256 | MSVC_JWT_ES256));
  cr_assert_eq(msvc_jwt_algs_parse("RS256,", &m), MSVC_EINVAL);
  cr_assert_eq(msvc_jwt_algs_parse("rs256", &m), MSVC_EINVAL);
  msvc_jwt_verifier_free(NULL);
  msvc_jwt_keyset_free(NULL);
  msvc_jwt_key_free(NULL);
  msvc_jwt_claims_free(NULL);
  msvc_jwt_keyset_free(ks);
}

static int verify_claims_with(const char *claims, const msvc_jwt_verify_opts_t *base,
                              const char *typ_header) {
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = NULL;
  msvc__buf_t b;
  unsigned char sig[64];
  size_t n;
  char *t;
  int rc;

  /* Hand-made so that the typ header can vary. */
  msvc__buf_init(&b, 0);
  {
    char hdr[128];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\"%s%s%s}", typ_header ? ",\"typ\":\"" : "",
             typ_header ? typ_header : "", typ_header ? "\"" : "");
    msvc__b64url_encode(&b, (const unsigned char *)hdr, strlen(hdr));
  }
  msvc__buf_putc(&b, '.');
  msvc__b64url_encode(&b, (const unsigned char *)claims, strlen(claims));
  cr_assert_eq(msvc__jwt_sign_sig(key, MSVC_JWT_HS256, (const unsigned char *)b.data, b.len, sig, &n),
               MSVC_OK);
  msvc__buf_putc(&b, '.');
  msvc__b64url_encode(&b, sig, n);
  t = msvc__buf_detach(&b, NULL);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  cr_assert_eq(msvc_jwt_verifier_new(base, ks, &v), MSVC_OK);
  rc = verify_str(v, t);
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
  return rc;
}

Test(jwt_options, time_typ_and_required_claims) {
  msvc_jwt_verify_opts_t o;
  static const char *const req[] = {"sub", "scope"};
  static const char *const auds[] = {"a", "b"};

  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = &now;
  /* iat in the future beyond the leeway, with or without a maximum age. */
  cr_assert_eq(verify_claims_with("{\"iat\":1700000031}", &o, NULL), MSVC_EJWT_NOT_YET_VALID);
  cr_assert_eq(verify_claims_with("{\"iat\":1700000030}", &o, NULL), MSVC_OK);
  o.leeway_s = 0;
  cr_assert_eq(verify_claims_with("{\"exp\":1700000000}", &o, NULL), MSVC_EJWT_EXPIRED);
  cr_assert_eq(verify_claims_with("{\"exp\":1700000001}", &o, NULL), MSVC_OK);
  cr_assert_eq(verify_claims_with("{\"nbf\":1700000001}", &o, NULL), MSVC_EJWT_NOT_YET_VALID);
  o.max_age_s = 60;
  cr_assert_eq(verify_claims_with("{}", &o, NULL), MSVC_EJWT_MISSING_CLAIM);
  cr_assert_eq(verify_claims_with("{\"iat\":1699999940}", &o, NULL), MSVC_OK);
  cr_assert_eq(verify_claims_with("{\"iat\":1699999939}", &o, NULL), MSVC_EJWT_TOO_OLD);
  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = &now;
  o.typ = "at+jwt";
  cr_assert_eq(verify_claims_with("{}", &o, "application/AT+JWT"), MSVC_OK);
  cr_assert_eq(verify_claims_with("{}", &o, "at+jwt"), MSVC_OK);
  cr_assert_eq(verify_claims_with("{}", &o, "JWT"), MSVC_EJWT_BAD_TYPE);
  cr_assert_eq(verify_claims_with("{}", &o, NULL), MSVC_EJWT_BAD_TYPE);
  o.typ = NULL;
  o.required = req;
  o.n_required = 2;
  o.audiences = auds;
  o.n_audiences = 2;
  cr_assert_eq(verify_claims_with("{\"sub\":\"1\",\"aud\":\"b\"}", &o, NULL), MSVC_EJWT_MISSING_CLAIM);
  cr_assert_eq(verify_claims_with("{\"sub\":\"1\",\"scope\":\"x\",\"aud\":[\"c\",\"b\"]}", &o, NULL),
               MSVC_OK);
  cr_assert_eq(verify_claims_with("{\"sub\":\"1\",\"scope\":\"x\",\"aud\":[1,\"c\"]}", &o, NULL),
               MSVC_EJWT_BAD_AUDIENCE);
  o.algs = MSVC_JWT_RS256;
  cr_assert_eq(verify_claims_with("{}", &o, NULL), MSVC_EJWT_ALG_NOT_ALLOWED);
}
