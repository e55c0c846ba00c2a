/*
 * Keys and tokens shared by the JWT benchmarks (bench_jwt.c and the libjwt
 * comparison under libjwt/): generated at start-up with mbedtls, so the
 * programs need no files.
 */
#ifndef MSVC_BENCH_JWT_COMMON_H
#define MSVC_BENCH_JWT_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include <msvc/jwt.h>

#include "bench.h"

#define BENCH_JWT_CLAIMS                                                     \
  "{\"iss\":\"bench\",\"aud\":\"bench\",\"sub\":\"1234567890\","             \
  "\"iat\":1700000000,\"exp\":4102444800,\"jti\":\"bench-token\"}"

typedef struct bench_jwt_case_s {
  const char *name; /* "hs256", ... */
  msvc_jwt_alg_t alg;
  char *public_pem;    /* RSA/EC: the verifier's key (PEM text) */
  unsigned char secret[32]; /* HS256 */
  char *token;
} bench_jwt_case_t;

static int bench_jwt_rng(void *ctx, unsigned char *out, size_t len) {
  return mbedtls_ctr_drbg_random(ctx, out, len);
}

/* Makes the key pair (or secret) and a token signed by libmsvc. */
static inline int bench_jwt_setup(bench_jwt_case_t *c) {
  static mbedtls_entropy_context ent;
  static mbedtls_ctr_drbg_context drbg;
  static int seeded;
  mbedtls_pk_context pk;
  msvc_jwt_key_t *key = NULL;
  unsigned char pem[16000];
  int rc = 0;

  if (!seeded) {
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0)
      return -1;
    seeded = 1;
  }
  if (c->alg == MSVC_JWT_HS256) {
    mbedtls_ctr_drbg_random(&drbg, c->secret, sizeof(c->secret));
    rc = msvc_jwt_key_from_secret(c->secret, sizeof(c->secret), 0, NULL, &key);
  } else {
    mbedtls_pk_init(&pk);
    if (c->alg == MSVC_JWT_ES256) {
      rc = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
      rc = rc ? rc : mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk),
                                         bench_jwt_rng, &drbg);
    } else {
      rc = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
      rc = rc ? rc : mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), bench_jwt_rng, &drbg, 2048, 65537);
    }
    rc = rc ? rc : mbedtls_pk_write_key_pem(&pk, pem, sizeof(pem));
    rc = rc ? rc : msvc_jwt_key_from_pem((const char *)pem, strlen((const char *)pem), 0, NULL, &key);
    rc = rc ? rc : mbedtls_pk_write_pubkey_pem(&pk, pem, sizeof(pem));
    c->public_pem = rc ? NULL : strdup((const char *)pem);
    mbedtls_pk_free(&pk);
  }
  if (rc == 0)
    rc = msvc_jwt_sign(key, c->alg, BENCH_JWT_CLAIMS, &c->token);
  msvc_jwt_key_free(key);
  if (rc != 0)
    fprintf(stderr, "bench: %s setup failed: %d %s\n", c->name, rc, msvc_jwt_errmsg());
  return rc;
}

/* A verifier as a service would configure it, with or without the cache. */
static inline msvc_jwt_verifier_t *bench_jwt_verifier(const bench_jwt_case_t *c,
                                                      msvc_jwt_keyset_t *ks, int cached) {
  static const char *const aud[] = {"bench"};
  msvc_jwt_verify_opts_t o;
  msvc_jwt_verifier_t *v = NULL;
  msvc_jwt_key_t *key = NULL;

  if (msvc_jwt_keyset_count(ks) == 0) {
    if (c->alg == MSVC_JWT_HS256)
      msvc_jwt_key_from_secret(c->secret, sizeof(c->secret), 0, NULL, &key);
    else
      msvc_jwt_key_from_pem(c->public_pem, strlen(c->public_pem), 0, NULL, &key);
    msvc_jwt_keyset_add(ks, key);
    msvc_jwt_key_free(key);
  }
  msvc_jwt_verify_opts_init(&o);
  o.issuer = "bench";
  o.audiences = aud;
  o.n_audiences = 1;
  o.cache_size = cached ? 1024 : 0;
  msvc_jwt_verifier_new(&o, ks, &v);
  return v;
}

/* Thread CPU time: on a machine shared with other work, wall time would
 * charge our figures with time spent running someone else. */
static inline double bench_jwt_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Operations per second of fn, over about `seconds` of CPU, batch by
 * batch. */
static inline double bench_jwt_rate(int (*fn)(void *), void *arg, double seconds) {
  double start = bench_jwt_cpu_ns(), elapsed;
  long ops = 0, batch = 1;

  do {
    for (long i = 0; i < batch; i++)
      if (fn(arg) != 0) {
        fprintf(stderr, "bench: verification failed\n");
        return 0;
      }
    ops += batch;
    if (batch < 4096)
      batch *= 2;
    elapsed = bench_jwt_cpu_ns() - start;
  } while (elapsed < seconds * 1e9);
  return (double)ops / (elapsed / 1e9);
}

/* Medians over bench_runs() rounds; the n contenders take turns within a
 * round, so that a ratio compares figures taken under the same load. */
static inline void bench_jwt_measure(int n, int (*const *fns)(void *), void *const *args,
                                     bench_stat_t *out) {
  double samples[4][8];
  int runs = bench_runs();
  double secs = bench_quick() ? 0.2 : 0.6;

  for (int r = 0; r < runs; r++)
    for (int i = 0; i < n; i++)
      samples[i][r] = bench_jwt_rate(fns[i], args[i], secs);
  for (int i = 0; i < n; i++)
    out[i] = bench_stats(samples[i], runs);
}

#endif
