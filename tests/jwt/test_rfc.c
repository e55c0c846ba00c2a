/* The RFC 7515 Appendix A examples, verified with the keys printed there. */
#include "jwt-test.h"

#define RFC_PAYLOAD                                                            \
  "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9p" \
  "c19yb290Ijp0cnVlfQ"

static const char a1_jwk[] =
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aK"
    "tMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";
static const char a1_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

static const char a2_jwk[] =
    "{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ4"
    "7soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665"
    "xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethF"
    "kMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"}";
static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt"
    "_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLI"
    "ARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOP"
    "qvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe7"
    "7Rw";

static const char a3_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/* A.4's payload is the text "Payload", not a JWT claims set. */
static const char a4_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcB"
    "pXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk\",\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyB"
    "XMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2\"}";
static const char a4_token[] =
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKP"
    "WROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7"
    "iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

static uint64_t rfc_now = 1300819000; /* before the examples' exp */

static int verify_with_jwk(const char *jwk, const char *token, msvc_jwt_claims_t **claims) {
  msvc_jwt_key_t *key = NULL;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  int rc;

  cr_assert_eq(msvc_jwt_key_from_jwk(jwk, strlen(jwk), &key), MSVC_OK, "%s", msvc_jwt_errmsg());
  v = one_key_verifier(key, &rfc_now, &ks);
  rc = msvc_jwt_verify(v, token, strlen(token), claims);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
  return rc;
}

static void check_rfc_claims(msvc_jwt_claims_t *c) {
  int64_t exp;
  bool root;

  cr_assert_str_eq(msvc_jwt_claims_string(c, "iss"), "joe");
  cr_assert_eq(msvc_jwt_claims_int(c, "exp", &exp), MSVC_OK);
  cr_assert_eq(exp, 1300819380);
  cr_assert_eq(msvc_jwt_claims_bool(c, "http://example.com/is_root", &root), MSVC_OK);
  cr_assert(root);
  msvc_jwt_claims_free(c);
}

Test(jwt_rfc7515, a1_hs256) {
  msvc_jwt_claims_t *c = NULL;

  cr_assert_eq(verify_with_jwk(a1_jwk, a1_token, &c), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_claims_alg(c), MSVC_JWT_HS256);
  check_rfc_claims(c);
}

Test(jwt_rfc7515, a2_rs256) {
  msvc_jwt_claims_t *c = NULL;

  cr_assert_eq(verify_with_jwk(a2_jwk, a2_token, &c), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_claims_alg(c), MSVC_JWT_RS256);
  check_rfc_claims(c);
}

Test(jwt_rfc7515, a3_es256) {
  msvc_jwt_claims_t *c = NULL;

  cr_assert_eq(verify_with_jwk(a3_jwk, a3_token, &c), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_claims_alg(c), MSVC_JWT_ES256);
  check_rfc_claims(c);
}

Test(jwt_rfc7515, a4_es512_signature_verifies_but_payload_is_not_claims) {
  char bad[sizeof(a4_token)];

  /* The signature passes (or the result would be bad_signature); only the
   * non-JSON payload is refused. */
  cr_assert_eq(verify_with_jwk(a4_jwk, a4_token, NULL), MSVC_EJWT_MALFORMED);
  cr_assert(strstr(msvc_jwt_errmsg(), "payload") != NULL, "%s", msvc_jwt_errmsg());
  memcpy(bad, a4_token, sizeof(bad));
  bad[sizeof(bad) - 10] = bad[sizeof(bad) - 10] == 'A' ? 'B' : 'A';
  cr_assert_eq(verify_with_jwk(a4_jwk, bad, NULL), MSVC_EJWT_BAD_SIGNATURE);
}

Test(jwt_rfc7515, expired_after_exp_plus_leeway) {
  uint64_t saved = rfc_now;

  rfc_now = 1300819380 + 30;
  cr_assert_eq(verify_with_jwk(a3_jwk, a3_token, NULL), MSVC_EJWT_EXPIRED);
  rfc_now = 1300819380 + 29;
  cr_assert_eq(verify_with_jwk(a1_jwk, a1_token, NULL), MSVC_OK);
  rfc_now = saved;
}

Test(jwt_rfc7515, tampered_examples_fail) {
  char t[sizeof(a2_token)];

  memcpy(t, a2_token, sizeof(t));
  t[30] ^= 1; /* inside the payload */
  cr_assert_eq(verify_with_jwk(a2_jwk, t, NULL), MSVC_EJWT_BAD_SIGNATURE);
  memcpy(t, a1_token, sizeof(a1_token));
  t[strlen(a1_token) - 2] = t[strlen(a1_token) - 2] == 'X' ? 'Y' : 'X';
  cr_assert_eq(verify_with_jwk(a1_jwk, t, NULL), MSVC_EJWT_BAD_SIGNATURE);
}
