/* The verified-token cache, and verifying from two threads at once. */
#include "jwt-test.h"

#include <pthread.h>

#include "jwt/jwt-internal.h"

static msvc_jwt_verifier_t *cached_verifier(msvc_jwt_keyset_t *ks, uint64_t *now,
                                            uint32_t size) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_verifier_t *v = NULL;

  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = now;
  o.cache_size = size;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_OK);
  return v;
}

Test(jwt_cache, hit_rechecks_time) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_pem("ec256-private.pem", "a");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  msvc_jwt_claims_t *c1 = NULL, *c2 = NULL;
  char *t;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = cached_verifier(ks, &now, 4);
  cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_ES256, "{\"sub\":\"1\",\"exp\":1700000100,"
                                                  "\"nbf\":1699999990}", &t), MSVC_OK);
  cr_assert_eq(msvc_jwt_verify(v, t, strlen(t), &c1), MSVC_OK);
  cr_assert_eq(msvc_jwt_verify(v, t, strlen(t), &c2), MSVC_OK);
  cr_assert_eq(c1, c2, "the hit shares the verified claims");
  cr_assert_str_eq(msvc_jwt_claims_string(c2, "sub"), "1");
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.hits, 1);
  cr_assert_eq(st.misses, 1);
  cr_assert_eq(st.entries, 1);
  now = 1700000100 + 30; /* past exp + leeway: the hit must not hide it */
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_EXPIRED);
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.entries, 0);
  now = 1699999990 - 31; /* before nbf - leeway */
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_NOT_YET_VALID);
  /* Failures are never cached: a tampered token misses every time. */
  t[strlen(t) - 5] ^= 1;
  now = FIXTURE_NOW;
  cr_assert_neq(verify_str(v, t), MSVC_OK);
  cr_assert_neq(verify_str(v, t), MSVC_OK);
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.entries, 0);
  msvc_jwt_claims_free(c1);
  msvc_jwt_claims_free(c2); /* claims outlive nothing they depend on */
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_cache, entries_of_a_rotated_out_key_are_dropped) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *a = fixture_secret("hs256.secret", "a"), *b = fixture_secret("hs512.secret", "b");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  msvc_jwt_key_t *both[2] = {a, b};
  char *ta;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_replace(ks, both, 2), MSVC_OK);
  v = cached_verifier(ks, &now, 8);
  cr_assert_eq(msvc_jwt_sign(a, MSVC_JWT_HS256, "{}", &ta), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_OK);
  /* The same key material arriving again (a refetch) keeps the entry. */
  cr_assert_eq(msvc_jwt_keyset_replace(ks, both, 2), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_OK);
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.hits, 2);
  /* Key a leaves: its cached token is dropped and fails. */
  cr_assert_eq(msvc_jwt_keyset_replace(ks, &b, 1), MSVC_OK);
  cr_assert_eq(verify_str(v, ta), MSVC_EJWT_UNKNOWN_KID);
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.dropped, 1);
  cr_assert_eq(st.entries, 0);
  msvc_free(ta);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(a);
  msvc_jwt_key_free(b);
}

Test(jwt_cache, lru_bound) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  char *t[5];
  char claims[32];

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = cached_verifier(ks, &now, 3);
  for (int i = 0; i < 5; i++) {
    snprintf(claims, sizeof(claims), "{\"n\":%d}", i);
    cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_HS256, claims, &t[i]), MSVC_OK);
    cr_assert_eq(verify_str(v, t[i]), MSVC_OK);
  }
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.entries, 3);
  cr_assert_eq(st.evictions, 2);
  cr_assert_eq(verify_str(v, t[4]), MSVC_OK); /* still there */
  cr_assert_eq(verify_str(v, t[0]), MSVC_OK); /* evicted: verified again */
  msvc_jwt_verifier_cache_stats(v, &st);
  cr_assert_eq(st.hits, 1);
  for (int i = 0; i < 5; i++)
    msvc_free(t[i]);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

typedef struct worker_s {
  msvc_jwt_verifier_t *v;
  const char *token;
  int failures;
} worker_t;

static void *verify_loop(void *arg) {
  worker_t *w = arg;

  for (int i = 0; i < 40; i++)
    if (msvc_jwt_verify(w->v, w->token, strlen(w->token), NULL) != MSVC_OK)
      w->failures++;
  return NULL;
}

/* mbedtls keeps a lazily built table of multiples of G in the EC group; the
 * key is warmed at load so that two threads verifying with one fresh key
 * only read it. Run under the sanitizer build (and TSan when available). */
Test(jwt_threads, two_threads_verify_with_one_ec_key) {
  static const char *const files[] = {"ec256-private.pem", "ec384-private.pem", "rsa-private.pem"};

  for (size_t f = 0; f < 3; f++) {
    uint64_t now = FIXTURE_NOW;
    msvc_jwt_key_t *key = fixture_pem(files[f], NULL);
    msvc_jwt_keyset_t *ks;
    msvc_jwt_verifier_t *v = one_key_verifier(key, &now, &ks);
    pthread_t th[2];
    worker_t w[2];
    char *t;

    if (key->kty == JWT_KTY_EC)
      cr_assert_not_null(mbedtls_pk_ec(key->pk)->grp.T, "EC key not warmed at load");
    cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_ALG_UNSET, "{\"sub\":\"t\"}", &t), MSVC_OK);
    for (int i = 0; i < 2; i++) {
      w[i] = (worker_t){v, t, 0};
      cr_assert_eq(pthread_create(&th[i], NULL, verify_loop, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
      pthread_join(th[i], NULL);
      cr_assert_eq(w[i].failures, 0);
    }
    msvc_free(t);
    msvc_jwt_verifier_free(v);
    msvc_jwt_keyset_free(ks);
    msvc_jwt_key_free(key);
  }
}

static void *rotate_loop(void *arg) {
  msvc_jwt_keyset_t *ks = arg;
  msvc_jwt_key_t *k = fixture_secret("hs256.secret", "a");

  for (int i = 0; i < 500; i++)
    msvc_jwt_keyset_replace(ks, &k, 1);
  msvc_jwt_key_free(k);
  return NULL;
}

Test(jwt_threads, rotation_while_verifying_with_cache) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", "a");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  pthread_t rot;
  worker_t w;
  char *t;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = cached_verifier(ks, &now, 16);
  cr_assert_eq(msvc_jwt_sign(key, MSVC_JWT_HS256, "{}", &t), MSVC_OK);
  w = (worker_t){v, t, 0};
  cr_assert_eq(pthread_create(&rot, NULL, rotate_loop, ks), 0);
  for (int i = 0; i < 20; i++)
    verify_loop(&w);
  pthread_join(rot, NULL);
  cr_assert_eq(w.failures, 0, "the same key in every snapshot always verifies");
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}
