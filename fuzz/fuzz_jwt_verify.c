/*
 * Fuzz target: arbitrary tokens against a fixed key set holding keys of
 * every type (RSA, EC P-256/384/521, HMAC), through the cached and the
 * uncached verifier. Inputs that start with '{' are also tried as a JWK and
 * as a JWK Set.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/jwt.h>

/* The public JWK Set of the interoperability fixtures (HMAC secrets are in
 * it on purpose: they are test keys). */
static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"lNTCr3kZKEkeZ-ozjZ7pBcHLj-80mXoOLB-8zDhLDnroQIsIITfG69jiAFu_U-s"
    "3q4t3LILpdnL0yXj6gBaKe30zjXcg-rLqd7aLboynAQ4fFLmGujbms-sARf-PqCKJNULXbjLoEfBu1JxNyrudDMPYi"
    "jTzfd7ynBC0Iy6RRGcrTSHhy5kx7NAy2zkUcE3RrvG7RtIMw9pWe3tYiSwV2PnDORD28JCZzASt_iOC0Rdy3xleZZV"
    "RjppVN1pLVj3dSYLGchCumEyKIrANJ20eG3FAKFhjmQb-wG-XJJBPoRGkBImwevmWGB6iPP-WcnYXdeUd5NMeEjqBR"
    "LFhQqNdQQ\",\"e\":\"AQAB\",\"use\":\"sig\",\"kid\":\"rsa-1\"},{\"kty\":\"EC\",\"x\":\"0L-t_DjfWgI82zSZF5kvTvqQ"
    "Ej4ErRxhVDej-qY9Pb8\",\"y\":\"jmg-bTyIL2_IPjVHju_u1EFBwdxHHvsHv96fuq2evHg\",\"crv\":\"P-256\",\"use\""
    ":\"sig\",\"kid\":\"ec-256\",\"alg\":\"ES256\"},{\"kty\":\"EC\",\"x\":\"M-rjPCeev0ysvt2WQb7VF0dNaojIwLGEra9V"
    "ORuiDS9MKuQKK4CPxDMz-pEPWJ4c\",\"y\":\"rewqKSxq0zH8JO3E3lCdB0lMIbbmOcNYEZyysFz_tzgq9F0turKlgUI"
    "z53716j_P\",\"crv\":\"P-384\",\"use\":\"sig\",\"kid\":\"ec-384\",\"alg\":\"ES384\"},{\"kty\":\"EC\",\"x\":\"AXKxFp"
    "y-OhkVn-4OTj3Yu2IK8e8_IV4rVka5hU4smwX_o_yDA8nUkLmGoXgmTvbuAwbEqC16NNX6F0s3-YFTg_Gf\",\"y\":\"A"
    "YjkI4xt8IvxSh3Rji-HhzRoKNypuwwjE92wtSHstoVvlTAcww9oradToyjRIf7lQ8f8Du4avs63s0r7onY8KiZU\",\""
    "crv\":\"P-521\",\"use\":\"sig\",\"kid\":\"ec-521\",\"alg\":\"ES512\"},{\"kty\":\"oct\",\"k\":\"aOySkbJe50_MF17kD"
    "kvgcP5wfgf03dlh3F59NKJrJDM\",\"kid\":\"hs-256\",\"alg\":\"HS256\",\"use\":\"sig\"},{\"kty\":\"oct\",\"k\":\"hD"
    "y3xogjrrmmrlwqdZjMWws_gwVFvku30r9pT0hBzlL0xBeeUdHjrX4WXBJFhch6\",\"kid\":\"hs-384\",\"alg\":\"HS38"
    "4\",\"use\":\"sig\"},{\"kty\":\"oct\",\"k\":\"L5N2zznKe1srM-vqxmDK-GstY-fRMkRZxtDylH6lw0nljX6n6QeKrKFZ"
    "loe1HFNanvdJLhTiadZ5wkvoQ_MGXQ\",\"kid\":\"hs-512\",\"alg\":\"HS512\",\"use\":\"sig\"}]}";

static msvc_jwt_keyset_t *ks;
static msvc_jwt_verifier_t *plain, *cached;

static uint64_t fixed_clock(void *data) {
  (void)data;
  return 1700000000ULL * 1000;
}

static int setup(void) {
  msvc_jwt_verify_opts_t o;
  static const char *const aud[] = {"msvc-demo"};
  static const char *const req[] = {"sub"};

  if (msvc_jwt_keyset_new(&ks) != MSVC_OK ||
      msvc_jwt_keyset_load_jwks(ks, jwks, sizeof(jwks) - 1) != MSVC_OK)
    return -1;
  msvc_jwt_verify_opts_init(&o);
  o.clock = fixed_clock;
  o.issuer = "https://issuer.example";
  o.audiences = aud;
  o.n_audiences = 1;
  o.required = req;
  o.n_required = 1;
  if (msvc_jwt_verifier_new(&o, ks, &plain) != MSVC_OK)
    return -1;
  o.cache_size = 64;
  o.max_age_s = 3600;
  o.typ = "JWT";
  return msvc_jwt_verifier_new(&o, ks, &cached) == MSVC_OK ? 0 : -1;
}

static void try_keys(const uint8_t *data, size_t size) {
  msvc_jwt_key_t *key = NULL;
  msvc_jwt_keyset_t *set = NULL;
  char *out = NULL;

  if (msvc_jwt_key_from_jwk((const char *)data, size, &key) == MSVC_OK) {
    if (msvc_jwt_key_public_jwk(key, &out) == MSVC_OK)
      msvc_free(out);
    msvc_jwt_key_free(key);
  }
  if (msvc_jwt_keyset_new(&set) == MSVC_OK) {
    msvc_jwt_keyset_load_jwks(set, (const char *)data, size);
    msvc_jwt_keyset_free(set);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_jwt_claims_t *c = NULL;
  static int ready;

  if (!ready) {
    if (setup() != 0)
      abort(); /* the fixed keys themselves are broken: not an input's fault */
    ready = 1;
  }
  if (size > 0 && data[0] == '{') {
    try_keys(data, size);
    return 0;
  }
  if (msvc_jwt_verify(plain, (const char *)data, size, &c) == MSVC_OK) {
    /* Whatever verified must be readable. */
    (void)msvc_jwt_claims_string(c, "sub");
    (void)msvc_jwt_claims_string_count(c, "aud");
    msvc_jwt_claims_free(c);
  }
  msvc_jwt_verify(cached, (const char *)data, size, NULL);
  msvc_jwt_verify(cached, (const char *)data, size, NULL);
  return 0;
}
