/* The RFC 7520 (JOSE cookbook) JWS examples, sections 4.1 to 4.4. Their
 * payload is a sentence of text, not a claims set: the signature verifies,
 * and then the payload is refused as malformed, while any tampering gives
 * bad_signature. RS256 and HS256 are deterministic, so our signatures must
 * equal the RFC's byte for byte. */
#include "jwt-test.h"

#include "jwt/jwt-internal.h"
#include "rfc7520_vectors.h"

static uint64_t now = FIXTURE_NOW;

static msvc_jwt_key_t *jwk_key(const char *jwk) {
  msvc_jwt_key_t *k = NULL;

  cr_assert_eq(msvc_jwt_key_from_jwk(jwk, strlen(jwk), &k), MSVC_OK, "%s", msvc_jwt_errmsg());
  return k;
}

static void check_example(const char *jwk, const char *token) {
  msvc_jwt_key_t *key = jwk_key(jwk);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  char *bad = strdup(token);

  cr_assert_eq(verify_str(v, token), MSVC_EJWT_MALFORMED, "%s", msvc_jwt_errmsg());
  cr_assert(strstr(msvc_jwt_errmsg(), "payload") != NULL, "%s", msvc_jwt_errmsg());
  bad[strchr(bad, '.') - bad + 5] ^= 1; /* one payload character */
  cr_assert_eq(verify_str(v, bad), MSVC_EJWT_BAD_SIGNATURE, "%s", msvc_jwt_errmsg());
  free(bad);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

/* Signs the example's own signing input and compares with its signature. */
static void check_same_signature(const char *jwk, msvc_jwt_alg_t alg, const char *token) {
  msvc_jwt_key_t *key = jwk_key(jwk);
  const char *dot = strrchr(token, '.');
  unsigned char sig[JWT_MAX_SIG_BYTES], want[JWT_MAX_SIG_BYTES];
  size_t n = 0, wn = 0;

  cr_assert_eq(msvc__jwt_sign_sig(key, alg, (const unsigned char *)token, (size_t)(dot - token),
                                  sig, &n), MSVC_OK);
  cr_assert_eq(msvc__b64url_decode(dot + 1, strlen(dot + 1), want, sizeof(want), &wn), MSVC_OK);
  cr_assert_eq(n, wn);
  cr_assert_arr_eq(sig, want, n);
  msvc_jwt_key_free(key);
}

Test(jwt_rfc7520, s4_1_rs256) {
  check_example(rfc7520_rsa_private, rfc7520_4_1);
  check_same_signature(rfc7520_rsa_private, MSVC_JWT_RS256, rfc7520_4_1);
}

Test(jwt_rfc7520, s4_2_ps384) {
  check_example(rfc7520_rsa_private, rfc7520_4_2);
}

Test(jwt_rfc7520, s4_3_es512) {
  check_example(rfc7520_ec_p521, rfc7520_4_3);
}

Test(jwt_rfc7520, s4_4_hs256) {
  check_example(rfc7520_hmac, rfc7520_4_4);
  check_same_signature(rfc7520_hmac, MSVC_JWT_HS256, rfc7520_4_4);
}

Test(jwt_rfc7520, keys_carry_their_kid_and_binding) {
  msvc_jwt_key_t *ec = jwk_key(rfc7520_ec_p521), *hs = jwk_key(rfc7520_hmac);

  cr_assert_str_eq(msvc_jwt_key_kid(ec), "bilbo.baggins@hobbiton.example");
  cr_assert_eq(msvc_jwt_key_algs(ec), (unsigned)MSVC_JWT_ES512);
  cr_assert_eq(msvc_jwt_key_algs(hs), (unsigned)MSVC_JWT_HS256);
  msvc_jwt_key_free(ec);
  msvc_jwt_key_free(hs);
}
