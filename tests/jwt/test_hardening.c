/* The hardening checklist: one test (at least) per item. */
#include "jwt-test.h"

#include "jwt/jwt-internal.h"

static uint64_t now = FIXTURE_NOW;

/* Builds header.payload.signature from raw JSON texts, signed with key. */
static char *craft(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg, const char *header,
                   const char *payload) {
  msvc__buf_t b;
  unsigned char sig[JWT_MAX_SIG_BYTES];
  size_t n = 0;

  msvc__buf_init(&b, 0);
  msvc__b64url_encode(&b, (const unsigned char *)header, strlen(header));
  msvc__buf_putc(&b, '.');
  msvc__b64url_encode(&b, (const unsigned char *)payload, strlen(payload));
  cr_assert_eq(msvc__jwt_sign_sig(key, alg, (const unsigned char *)b.data, b.len, sig, &n),
               MSVC_OK);
  msvc__buf_putc(&b, '.');
  msvc__b64url_encode(&b, sig, n);
  return msvc__buf_detach(&b, NULL);
}

static msvc_jwt_key_t *hs_key(void) {
  return fixture_secret("hs256.secret", "hs");
}

static int check_hs(const char *header, const char *payload) {
  msvc_jwt_key_t *key = hs_key();
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  char *t = craft(key, MSVC_JWT_HS256, header, payload);
  int rc = verify_str(v, t);

  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
  return rc;
}

#define HS_HDR "{\"alg\":\"HS256\",\"kid\":\"hs\"}"

Test(jwt_hardening, alg_none_never_accepted) {
  static const char *const nones[] = {"none", "None", "NONE", "nOnE"};
  size_t i;

  for (i = 0; i < 4; i++) {
    char hdr[64];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", nones[i]);
    cr_assert_eq(check_hs(hdr, "{}"), MSVC_EJWT_ALG_NOT_ALLOWED, "%s", nones[i]);
  }
  cr_assert_neq(msvc_jwt_algs_parse("none", &(unsigned){0}), MSVC_OK);
  cr_assert_neq(msvc_jwt_algs_parse("HS256,none", &(unsigned){0}), MSVC_OK);
}

Test(jwt_hardening, hmac_rejects_any_changed_byte) {
  msvc_jwt_key_t *key = hs_key();
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  char *t = craft(key, MSVC_JWT_HS256, HS_HDR, "{\"sub\":\"1\"}");
  size_t len = strlen(t), sig = strrchr(t, '.') - t + 1, i;

  cr_assert_eq(verify_str(v, t), MSVC_OK);
  /* First and middle characters only: the last one also carries padding
   * bits, whose change is a base64url error. The comparison is
   * mbedtls_ct_memcmp, constant-time over all 32 bytes. */
  for (i = sig; i < len - 1; i += 7) {
    char saved = t[i];

    t[i] = saved == 'A' ? 'B' : 'A';
    cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE, "byte %zu", i);
    t[i] = saved;
  }
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

static void check_sig_lengths(const char *pem, msvc_jwt_alg_t alg, size_t expect_len) {
  msvc_jwt_key_t *key = fixture_pem(pem, "k");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  char hdr[64];
  char *t, *bad;
  msvc__buf_t b;
  unsigned char sig[JWT_MAX_SIG_BYTES + 1];
  size_t n, cut;

  snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", msvc_jwt_alg_name(alg));
  t = craft(key, alg, hdr, "{\"sub\":\"1\"}");
  cr_assert_eq(verify_str(v, t), MSVC_OK, "%s", msvc_jwt_errmsg());
  cut = (size_t)(strrchr(t, '.') - t) + 1;
  cr_assert_eq(msvc__b64url_decode(t + cut, strlen(t + cut), sig, sizeof(sig), &n), MSVC_OK);
  cr_assert_eq(n, expect_len);
  /* One byte short and one byte long: rejected on length, before mbedtls
   * reads a modulus' worth of bytes (ASan would see the overread). */
  for (int delta = -1; delta <= 1; delta += 2) {
    msvc__buf_init(&b, 0);
    msvc__buf_append(&b, t, cut);
    sig[n] = 0;
    msvc__b64url_encode(&b, sig, (size_t)((long)n + delta));
    bad = msvc__buf_detach(&b, NULL);
    cr_assert_eq(verify_str(v, bad), MSVC_EJWT_BAD_SIGNATURE, "delta %d", delta);
    cr_assert(strstr(msvc_jwt_errmsg(), "expected") != NULL, "%s", msvc_jwt_errmsg());
    msvc_free(bad);
  }
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_hardening, rsa_signature_length_must_equal_modulus) {
  check_sig_lengths("rsa-private.pem", MSVC_JWT_RS256, 256);
  check_sig_lengths("rsa-private.pem", MSVC_JWT_PS256, 256);
}

Test(jwt_hardening, ecdsa_signature_is_raw_r_s_of_coordinate_size) {
  check_sig_lengths("ec256-private.pem", MSVC_JWT_ES256, 64);
  check_sig_lengths("ec384-private.pem", MSVC_JWT_ES384, 96);
  check_sig_lengths("ec512-private.pem", MSVC_JWT_ES512, 132);
}

static char *with_signature(const char *token, const unsigned char *sig, size_t n) {
  msvc__buf_t b;
  size_t cut = (size_t)(strrchr(token, '.') - token) + 1;

  msvc__buf_init(&b, 0);
  msvc__buf_append(&b, token, cut);
  msvc__b64url_encode(&b, sig, n);
  return msvc__buf_detach(&b, NULL);
}

Test(jwt_hardening, ecdsa_r_s_zero_and_out_of_range_rejected) {
  msvc_jwt_key_t *key = fixture_pem("ec256-public.pem", "k");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  const char *base = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.x";
  unsigned char sig[64];
  /* The order n of P-256. */
  static const unsigned char order[32] = {
      0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
  char *t;

  memset(sig, 0, sizeof(sig)); /* the "psychic signature" */
  t = with_signature(base, sig, 64);
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  cr_assert(strstr(msvc_jwt_errmsg(), "range") != NULL);
  msvc_free(t);
  memcpy(sig, order, 32); /* r = n */
  memset(sig + 32, 1, 32);
  t = with_signature(base, sig, 64);
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  cr_assert(strstr(msvc_jwt_errmsg(), "range") != NULL);
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_hardening, curve_bound_to_algorithm) {
  msvc_jwt_key_t *p256 = fixture_pem("ec256-private.pem", "k");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(p256, &now, &ks);
  char *t;

  cr_assert_eq(msvc_jwt_key_algs(p256), (unsigned)MSVC_JWT_ES256);
  /* A P-256 key refuses to sign or verify ES384 / ES512. */
  cr_assert_eq(msvc_jwt_sign(p256, MSVC_JWT_ES384, "{}", &t), MSVC_EJWT_ALG_NOT_ALLOWED);
  cr_assert_eq(msvc_jwt_sign(p256, MSVC_JWT_ES256, "{}", &t), MSVC_OK);
  {
    const char *es384 = "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ";
    char *dot = strchr(t, '.');
    msvc__buf_t b;
    char *x;

    msvc__buf_init(&b, 0);
    msvc__buf_puts(&b, es384);
    msvc__buf_puts(&b, dot);
    x = msvc__buf_detach(&b, NULL);
    cr_assert_eq(verify_str(v, x), MSVC_EJWT_ALG_NOT_ALLOWED);
    msvc_free(x);
  }
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(p256);
}

Test(jwt_hardening, rsa_public_key_never_an_hmac_secret) {
  size_t len;
  char *pem = read_fixture("rsa-public.pem", &len);
  msvc_jwt_key_t *rsa = fixture_pem("rsa-public.pem", "rsa"), *as_secret = NULL;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(rsa, &now, &ks);
  char *t;

  cr_assert_eq(msvc_jwt_key_algs(rsa) & MSVC_JWT_ALGS_HS, 0u);
  /* The attacker HMACs with the public key's PEM text, as in the libjwt and
   * jsonwebtoken CVEs. */
  cr_assert_eq(msvc_jwt_key_from_secret(pem, len, 0, "rsa", &as_secret), MSVC_OK);
  t = craft(as_secret, MSVC_JWT_HS256, "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", "{\"sub\":\"1\"}");
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_ALG_NOT_ALLOWED);
  msvc_free(t);
  t = craft(as_secret, MSVC_JWT_HS256, "{\"alg\":\"HS256\"}", "{\"sub\":\"1\"}");
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_ALG_NOT_ALLOWED);
  msvc_free(t);
  free(pem);
  msvc_jwt_key_free(as_secret);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(rsa);
}

Test(jwt_hardening, strict_base64url) {
  unsigned char out[16];
  size_t n;

  cr_assert_eq(msvc__b64url_decode("QQ", 2, out, sizeof(out), &n), MSVC_OK);
  cr_assert_eq(n, 1);
  cr_assert_eq(out[0], 'A');
  cr_assert_neq(msvc__b64url_decode("QR", 2, out, sizeof(out), &n), MSVC_OK, "trailing bits");
  cr_assert_neq(msvc__b64url_decode("QQ==", 4, out, sizeof(out), &n), MSVC_OK, "padding");
  cr_assert_neq(msvc__b64url_decode("Q+Q/", 4, out, sizeof(out), &n), MSVC_OK, "alphabet");
  cr_assert_neq(msvc__b64url_decode("QUJDR", 5, out, sizeof(out), &n), MSVC_OK, "length 4k+1");
  cr_assert_neq(msvc__b64url_decode("QU JD", 5, out, sizeof(out), &n), MSVC_OK, "space");
  cr_assert_eq(msvc__b64url_decode("-_-_", 4, out, sizeof(out), &n), MSVC_OK);
  /* And in a whole token: padding after a valid HMAC. */
  {
    msvc_jwt_key_t *key = hs_key();
    msvc_jwt_keyset_t *ks;
    msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
    char *t = craft(key, MSVC_JWT_HS256, HS_HDR, "{}");
    char padded[256];

    snprintf(padded, sizeof(padded), "%s=", t);
    cr_assert_eq(verify_str(v, t), MSVC_OK);
    cr_assert_eq(verify_str(v, padded), MSVC_EJWT_MALFORMED);
    msvc_free(t);
    msvc_jwt_verifier_free(v);
    msvc_jwt_keyset_free(ks);
    msvc_jwt_key_free(key);
  }
}

Test(jwt_hardening, header_and_payload_must_be_objects_with_unique_names) {
  cr_assert_eq(check_hs(HS_HDR, "{\"sub\":\"1\"}"), MSVC_OK);
  cr_assert_eq(check_hs(HS_HDR, "[1]"), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs(HS_HDR, "\"text\""), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs(HS_HDR, "{\"sub\":\"1\"} x"), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs(HS_HDR, "{\"sub\":\"1\",\"sub\":\"2\"}"), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs(HS_HDR, "{\"a\":{\"x\":1,\"x\":2}}"), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs("{\"alg\":\"HS256\",\"kid\":\"hs\",\"kid\":\"other\"}", "{}"),
               MSVC_EJWT_MALFORMED);
  /* A NUL inside a string would make "admin\u0000x" equal "admin". */
  cr_assert_eq(check_hs(HS_HDR, "{\"sub\":\"admin\\u0000x\"}"), MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs(HS_HDR, "{\"sub\":\"a\\\\u0000\"}"), MSVC_OK); /* escaped backslash */
}

Test(jwt_hardening, short_hmac_secrets_rejected) {
  unsigned char s[64] = {0};
  msvc_jwt_key_t *k = NULL;
  static const char short_jwk[] = "{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}";

  cr_assert_eq(msvc_jwt_key_from_secret(s, 31, 0, NULL, &k), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_key_from_secret(s, 32, MSVC_JWT_HS384, NULL, &k), MSVC_EJWT_BAD_KEY);
  cr_assert_eq(msvc_jwt_key_from_secret(s, 32, 0, NULL, &k), MSVC_OK);
  cr_assert_eq(msvc_jwt_key_algs(k), (unsigned)MSVC_JWT_HS256);
  msvc_jwt_key_free(k);
  cr_assert_eq(msvc_jwt_key_from_secret(s, 48, 0, NULL, &k), MSVC_OK);
  cr_assert_eq(msvc_jwt_key_algs(k), (unsigned)(MSVC_JWT_HS256 | MSVC_JWT_HS384));
  msvc_jwt_key_free(k);
  cr_assert_eq(msvc_jwt_key_from_jwk(short_jwk, strlen(short_jwk), &k), MSVC_EJWT_BAD_KEY);
}

Test(jwt_hardening, integer_claims_must_be_integers_in_range) {
  static const char *const bad[] = {
      "{\"exp\":\"1700000600\"}", "{\"exp\":1700000600.5}", "{\"nbf\":1e300}",
      "{\"iat\":-5}", "{\"exp\":true}", "{\"exp\":null}", "{\"exp\":[1]}",
      "{\"exp\":9007199254740993}"};
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(bad); i++)
    cr_assert_eq(check_hs(HS_HDR, bad[i]), MSVC_EJWT_MALFORMED, "%s", bad[i]);
  cr_assert_eq(check_hs(HS_HDR, "{\"exp\":1700000600,\"nbf\":1.7e9}"), MSVC_OK);
}

Test(jwt_hardening, crit_rejected_unless_understood) {
  cr_assert_eq(check_hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}"),
               MSVC_EJWT_MALFORMED);
  cr_assert_eq(check_hs("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}"),
               MSVC_EJWT_MALFORMED);
  cr_assert(strstr(msvc_jwt_errmsg(), "crit") != NULL);
}

Test(jwt_hardening, keys_named_by_the_token_are_never_used) {
  /* An attacker's own key in "jwk", "jku" or "x5u" changes nothing: the
   * token signed with the attacker's secret fails against our key. */
  unsigned char evil[32];
  msvc_jwt_key_t *attacker = NULL, *key = hs_key();
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  char *t;

  memset(evil, 'e', sizeof(evil));
  cr_assert_eq(msvc_jwt_key_from_secret(evil, 32, 0, NULL, &attacker), MSVC_OK);
  t = craft(attacker, MSVC_JWT_HS256,
            "{\"alg\":\"HS256\",\"jku\":\"http://evil/jwks\",\"x5u\":\"http://evil/c\","
            "\"jwk\":{\"kty\":\"oct\",\"k\":\"ZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWVlZWU\"}}",
            "{}");
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  msvc_free(t);
  msvc_jwt_key_free(attacker);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_hardening, oversize_token_refused_before_decoding) {
  msvc_jwt_key_t *key = hs_key();
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
  size_t big = 8193;
  char *t = malloc(big);

  memset(t, '!', big); /* not even base64url: the length is checked first */
  cr_assert_eq(msvc_jwt_verify(v, t, big, NULL), MSVC_EJWT_MALFORMED);
  cr_assert(strstr(msvc_jwt_errmsg(), "longer") != NULL);
  cr_assert_eq(msvc_jwt_verify(v, t, 0, NULL), MSVC_EJWT_MALFORMED);
  cr_assert_eq(msvc_jwt_verify(v, "a.b", 3, NULL), MSVC_EJWT_MALFORMED);
  cr_assert_eq(msvc_jwt_verify(v, "a.b.c.d", 7, NULL), MSVC_EJWT_MALFORMED);
  free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_hardening, small_rsa_keys_rejected) {
  /* 1024-bit RSA public key (RFC 7518 §3.3 asks for 2048 at least). */
  static const char pem[] =
      "-----BEGIN PUBLIC KEY-----\n"
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDM7pd3asaDLJcFVPiCxJ8P9v1u\n"
      "M2k57pzbItFFJnv1wb7Bqt0fDY6lu3jc+1h+/raJLYNONvzUe1nnsqVv8gJDu9ZQ\n"
      "+du2XJkr680NNZtXLjfpOTQJ6ED9j8iujvceyTXqVY/cokjLcrUhmX/92jwms2OR\n"
      "7EE18vIGVdojvPX7hQIDAQAB\n"
      "-----END PUBLIC KEY-----\n";
  msvc_jwt_key_t *k = NULL;
  int rc = msvc_jwt_key_from_pem(pem, strlen(pem), 0, NULL, &k);

  cr_assert_eq(rc, MSVC_EJWT_BAD_KEY, "%d %s", rc, msvc_jwt_errmsg());
  cr_assert_null(k);
}

Test(jwt_hardening, result_labels_map_every_code) {
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_OK), "ok");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_EXPIRED), "expired");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_NOT_YET_VALID), "not_yet_valid");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_BAD_SIGNATURE), "bad_signature");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_BAD_ISSUER), "bad_issuer");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_BAD_AUDIENCE), "bad_audience");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_MALFORMED), "malformed");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_UNKNOWN_KID), "unknown_kid");
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_ALG_NOT_ALLOWED), "alg_not_allowed");
  for (int c = MSVC_EJWT_BAD_TYPE; c <= MSVC_EJWT_MALFORMED; c++)
    cr_assert_not_null(msvc_jwt_result_name(c), "code %d", c);
  cr_assert_null(msvc_jwt_result_name(MSVC_ENOMEM));
}

Test(jwt_hardening, header_scanner_is_strict) {
  static const struct {
    const char *text;
    int ok;
  } cases[] = {
      {"{\"alg\":\"HS256\"}", 1},
      {" { \"alg\" : \"HS256\" , \"kid\" : \"k\" } ", 1},
      {"{\"alg\":\"HS256\",\"x\":[1,-2.5e3,true,false,null,{\"a\":{}},[]]}", 1},
      {"{\"a\\u006cg\":\"HS256\"}", 1},                   /* escaped name */
      {"{\"alg\":\"HS256\",\"a\\u006cg\":\"RS256\"}", 0}, /* the same name twice */
      {"{\"alg\":\"HS256\",\"x\":{\"a\":1,\"a\":2}}", 0}, /* nested duplicate */
      {"{\"kid\":\"\\ud83d\\ude00\"}", 1},                /* a surrogate pair */
      {"{\"kid\":\"\\ud83d\"}", 0},                       /* a lone surrogate */
      {"{\"kid\":\"a\\u0000b\"}", 0},
      {"{\"kid\":\"tab\there\"}", 0},                     /* raw control character */
      {"{\"alg\":\"HS256\"} x", 0},
      {"{\"alg\":\"HS256\",}", 0},
      {"{\"alg\":01}", 0},
      {"{\"alg\":1.}", 0},
      {"{\"alg\":tru}", 0},
      {"{\"alg\":\"HS256\"", 0},
      {"[\"alg\"]", 0},
      {"{\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}", 0}, /* too deep */
      {"{\"alg\":\"HS256\\x\"}", 0},                         /* bad escape */
  };
  jwt_header_t h;

  for (size_t i = 0; i < MSVC__ARRAY_SIZE(cases); i++)
    cr_assert_eq(msvc__jwt_scan_header(cases[i].text, strlen(cases[i].text), &h) == 0,
                 cases[i].ok != 0, "%s", cases[i].text);
  {
    const char *esc = "{\"a\\u006cg\":\"HS\\u0032\\u00356\",\"crit\":[]}";

    cr_assert_eq(msvc__jwt_scan_header(esc, strlen(esc), &h), 0);
  }
  cr_assert_str_eq(h.alg, "HS256");
  cr_assert(h.crit);
  cr_assert_eq(msvc__jwt_scan_header("{\"kid\":7,\"typ\":\"JWT\"}", 21, &h), 0);
  cr_assert_eq(h.kid_state, 2);
  cr_assert_eq(h.typ_state, 1);
  cr_assert_eq(h.alg_state, 0);
  {
    char big[700];

    memset(big, 'k', sizeof(big));
    memcpy(big, "{\"kid\":\"", 8);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    cr_assert_neq(msvc__jwt_scan_header(big, strlen(big), &h), 0, "kid over 511 bytes");
  }
}
