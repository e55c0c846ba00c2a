/*
 * JWT verification: libmsvc uncached and cached, beside the raw mbedtls
 * primitive on the same signing input (hash + HMAC / RSA / ECDSA verify),
 * which is the limit for any verifier on this stack.
 *
 * Lines: jwt_verify_<alg> (mbedtls_raw, libmsvc with ratio_vs mbedtls_raw)
 * and jwt_verify_<alg>_cached (libmsvc), and jwt_verify_es256_forged_repeat
 * (libmsvc): one token with a bad signature sent again and again to a
 * verifier configured as the JWT middleware configures it (both caches). The libjwt comparison is a separate
 * program under bench/libjwt/ so that only it links libjwt.
 */
#include <mbedtls/constant_time.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

#include "bench_jwt_common.h"
#include "jwt/jwt-internal.h"

typedef struct raw_s {
  const bench_jwt_case_t *c;
  mbedtls_pk_context pk;
  const unsigned char *input;
  size_t input_len;
  unsigned char sig[1024];
  size_t sig_len;
} raw_t;

/* What any verifier must do at least: hash the signing input and check the
 * signature with mbedtls, nothing else. */
static int raw_verify(void *arg) {
  raw_t *r = arg;
  unsigned char h[32];

  if (r->c->alg == MSVC_JWT_HS256) {
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), r->c->secret, 32, r->input,
                    r->input_len, h);
    return mbedtls_ct_memcmp(h, r->sig, 32);
  }
  mbedtls_sha256_ret(r->input, r->input_len, h, 0);
  if (r->c->alg == MSVC_JWT_RS256)
    return mbedtls_rsa_rsassa_pkcs1_v15_verify(mbedtls_pk_rsa(r->pk), NULL, NULL,
                                               MBEDTLS_RSA_PUBLIC, MBEDTLS_MD_SHA256, 32, h, r->sig);
  if (r->c->alg == MSVC_JWT_PS256)
    return mbedtls_rsa_rsassa_pss_verify_ext(mbedtls_pk_rsa(r->pk), NULL, NULL,
                                             MBEDTLS_RSA_PUBLIC, MBEDTLS_MD_SHA256, 32, h,
                                             MBEDTLS_MD_SHA256, 32, r->sig);
  {
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(r->pk);
    mbedtls_mpi rr, ss;
    int rc;

    mbedtls_mpi_init(&rr);
    mbedtls_mpi_init(&ss);
    mbedtls_mpi_read_binary(&rr, r->sig, 32);
    mbedtls_mpi_read_binary(&ss, r->sig + 32, 32);
    rc = mbedtls_ecdsa_verify(&ec->grp, h, 32, &ec->Q, &rr, &ss);
    mbedtls_mpi_free(&rr);
    mbedtls_mpi_free(&ss);
    return rc;
  }
}

typedef struct ours_s {
  msvc_jwt_verifier_t *v;
  const char *token;
  size_t len;
} ours_t;

static int ours_verify(void *arg) {
  ours_t *o = arg;

  return msvc_jwt_verify(o->v, o->token, o->len, NULL);
}

/* A refusal for a bad signature is the expected outcome here. */
static int ours_refuse(void *arg) {
  ours_t *o = arg;

  return msvc_jwt_verify(o->v, o->token, o->len, NULL) == MSVC_EJWT_BAD_SIGNATURE ? 0 : -1;
}

/* The ES256 token with one signature bit flipped: still well-formed, with a
 * signature that no key verifies. */
static int bench_forged_repeat(const bench_jwt_case_t *c, msvc_jwt_keyset_t *ks) {
  static const char *const aud[] = {"bench"};
  msvc_jwt_verify_opts_t o;
  ours_t forged = {NULL, NULL, 0};
  char *tok = strdup(c->token);
  size_t len = strlen(tok);
  bench_stat_t st;
  int rc = -1;

  /* The 10th character from the end encodes six whole bits of s. */
  tok[len - 10] = tok[len - 10] == 'A' ? 'B' : 'A';
  msvc_jwt_verify_opts_init(&o);
  o.issuer = "bench";
  o.audiences = aud;
  o.n_audiences = 1;
  o.cache_size = 1024;
  o.neg_cache_size = 1024;
  o.require_exp = true;
  if (msvc_jwt_verifier_new(&o, ks, &forged.v) == MSVC_OK) {
    forged.token = tok;
    forged.len = len;
    if (ours_refuse(&forged) == 0) {
      int (*const fns[1])(void *) = {ours_refuse};
      void *const args[1] = {&forged};

      bench_jwt_measure(1, fns, args, &st);
      bench_emit("jwt_verify_es256_forged_repeat", "libmsvc", "ops_per_s", "ops/s", st, NULL,
                 0);
      rc = 0;
    } else {
      fprintf(stderr, "bench_jwt: the forged token was not refused as bad_signature: %s\n",
              msvc_jwt_errmsg());
    }
  }
  msvc_jwt_verifier_free(forged.v);
  free(tok);
  return rc;
}

static int raw_setup(raw_t *r, const bench_jwt_case_t *c) {
  const char *dot = strrchr(c->token, '.');

  r->c = c;
  r->input = (const unsigned char *)c->token;
  r->input_len = (size_t)(dot - c->token);
  mbedtls_pk_init(&r->pk);
  if (msvc__b64url_decode(dot + 1, strlen(dot + 1), r->sig, sizeof(r->sig), &r->sig_len) != 0)
    return -1;
  if (c->alg == MSVC_JWT_HS256)
    return 0;
  return mbedtls_pk_parse_public_key(&r->pk, (const unsigned char *)c->public_pem,
                                     strlen(c->public_pem) + 1);
}

int main(void) {
  bench_jwt_case_t cases[] = {{"hs256", MSVC_JWT_HS256, NULL, {0}, NULL},
                              {"rs256", MSVC_JWT_RS256, NULL, {0}, NULL},
                              {"ps256", MSVC_JWT_PS256, NULL, {0}, NULL},
                              {"es256", MSVC_JWT_ES256, NULL, {0}, NULL}};

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bench_jwt_case_t *c = &cases[i];
    msvc_jwt_keyset_t *ks = NULL;
    raw_t raw;
    ours_t plain, cached;
    bench_stat_t s_raw, s_plain, s_cached;
    char name[64];

    if (bench_jwt_setup(c) != 0 || raw_setup(&raw, c) != 0 || msvc_jwt_keyset_new(&ks) != 0)
      return 1;
    plain = (ours_t){bench_jwt_verifier(c, ks, 0), c->token, strlen(c->token)};
    cached = (ours_t){bench_jwt_verifier(c, ks, 1), c->token, strlen(c->token)};
    if (plain.v == NULL || cached.v == NULL || raw_verify(&raw) != 0 || ours_verify(&plain) != 0) {
      fprintf(stderr, "bench_jwt: %s does not verify: %s\n", c->name, msvc_jwt_errmsg());
      return 1;
    }
    {
      int (*const fns[3])(void *) = {raw_verify, ours_verify, ours_verify};
      void *const args[3] = {&raw, &plain, &cached};
      bench_stat_t st[3];

      bench_jwt_measure(3, fns, args, st);
      s_raw = st[0];
      s_plain = st[1];
      s_cached = st[2];
    }
    snprintf(name, sizeof(name), "jwt_verify_%s", c->name);
    bench_emit(name, "mbedtls_raw", "ops_per_s", "ops/s", s_raw, NULL, 0);
    bench_emit(name, "libmsvc", "ops_per_s", "ops/s", s_plain, "mbedtls_raw",
               s_plain.median / s_raw.median);
    snprintf(name, sizeof(name), "jwt_verify_%s_cached", c->name);
    bench_emit(name, "libmsvc", "ops_per_s", "ops/s", s_cached, "mbedtls_raw",
               s_cached.median / s_raw.median);
    if (c->alg == MSVC_JWT_ES256 && bench_forged_repeat(c, ks) != 0)
      return 1;
    msvc_jwt_verifier_free(plain.v);
    msvc_jwt_verifier_free(cached.v);
    msvc_jwt_keyset_free(ks);
    mbedtls_pk_free(&raw.pk);
    msvc_free(c->token);
    free(c->public_pem);
  }
  return 0;
}
