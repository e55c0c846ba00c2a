/*
 * The refused-token cache (a repeated forged token costs a lookup, not a
 * signature check), the `require_exp` option, and the one list of
 * `result` labels that the code and the documentation share.
 */
#include "jwt-test.h"

#include <pthread.h>
#include <stddef.h>
#include <time.h>

static msvc_jwt_verifier_t *neg_verifier(msvc_jwt_keyset_t *ks, uint64_t *now,
                                         uint32_t neg_size) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_verifier_t *v = NULL;

  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = now;
  o.cache_size = 16;
  o.neg_cache_size = neg_size;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_OK);
  return v;
}

static char *sign(msvc_jwt_key_t *key, msvc_jwt_alg_t alg, const char *claims) {
  char *t = NULL;

  cr_assert_eq(msvc_jwt_sign(key, alg, claims, &t), MSVC_OK, "%s", msvc_jwt_errmsg());
  return t;
}

/* Flips bits inside the signature (not its last character, whose spare
 * bits must stay zero): a well-formed token that no key verifies. */
static void forge(char *t) {
  size_t n = strlen(t);

  t[n - 10] = t[n - 10] == 'A' ? 'B' : 'A';
}

static double cpu_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

Test(jwt_negcache, forged_repeat_costs_a_lookup) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_pem("ec256-private.pem", "a");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  char first[256];
  char *t, *good;
  double t0, ms;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = neg_verifier(ks, &now, 64);
  t = sign(key, MSVC_JWT_ES256, "{\"sub\":\"1\",\"exp\":1700000100}");
  good = strdup(t);
  forge(t);
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  snprintf(first, sizeof(first), "%s", msvc_jwt_errmsg());
  cr_assert_neq(first[0], '\0');
  /* A P-256 check is about a millisecond: 2000 of them would take
   * seconds. From the cache they take microseconds each. */
  t0 = cpu_ms();
  for (int i = 0; i < 2000; i++)
    cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  ms = cpu_ms() - t0;
  cr_assert_lt(ms, 400.0, "2000 repeats of a forged token took %.0f ms of CPU", ms);
  cr_assert_str_eq(msvc_jwt_errmsg(), first, "a hit keeps the refusal's detail");
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.hits, 2000);
  cr_assert_eq(st.entries, 1);
  /* The good token is unaffected. */
  cr_assert_eq(verify_str(v, good), MSVC_OK);
  free(good);
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

Test(jwt_negcache, time_and_unknown_kid_are_never_remembered) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *a = fixture_pem("ec256-private.pem", "a");
  msvc_jwt_key_t *b = fixture_pem("ec256-private.pem", "b");
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  char *expired, *early, *by_b;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, a), MSVC_OK);
  v = neg_verifier(ks, &now, 64);
  expired = sign(a, MSVC_JWT_ES256, "{\"exp\":1699990000}");
  early = sign(a, MSVC_JWT_ES256, "{\"exp\":1800000000,\"nbf\":1700001000}");
  by_b = sign(b, MSVC_JWT_ES256, "{\"exp\":1800000000}");
  cr_assert_eq(verify_str(v, expired), MSVC_EJWT_EXPIRED);
  cr_assert_eq(verify_str(v, early), MSVC_EJWT_NOT_YET_VALID);
  cr_assert_eq(verify_str(v, by_b), MSVC_EJWT_UNKNOWN_KID);
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.entries, 0, "a refusal that can change was remembered");
  /* And each of them can indeed change. */
  now = 1699980000;
  cr_assert_eq(verify_str(v, expired), MSVC_OK);
  now = 1700001000;
  cr_assert_eq(verify_str(v, early), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, b), MSVC_OK);
  cr_assert_eq(verify_str(v, by_b), MSVC_OK);
  msvc_free(expired);
  msvc_free(early);
  msvc_free(by_b);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(a);
  msvc_jwt_key_free(b);
}

/* A "bad signature" holds for one key set only: a new key may verify the
 * very same token. */
Test(jwt_negcache, a_key_set_change_forgets_every_refusal) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *old_key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_key_t *new_key, *signer;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  size_t len;
  char *secret = read_fixture("hs384.secret", &len), *t;

  cr_assert_eq(msvc_jwt_key_from_secret(secret, len, MSVC_JWT_HS256, NULL, &new_key), MSVC_OK);
  cr_assert_eq(msvc_jwt_key_from_secret(secret, len, MSVC_JWT_HS256, NULL, &signer), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, old_key), MSVC_OK);
  v = neg_verifier(ks, &now, 64);
  t = sign(signer, MSVC_JWT_HS256, "{\"exp\":1800000000}");
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.hits, 1);
  cr_assert_eq(msvc_jwt_keyset_replace(ks, &new_key, 1), MSVC_OK);
  cr_assert_eq(verify_str(v, t), MSVC_OK, "%s", msvc_jwt_errmsg());
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.dropped, 1);
  cr_assert_eq(st.entries, 0);
  free(secret);
  msvc_free(t);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(old_key);
  msvc_jwt_key_free(new_key);
  msvc_jwt_key_free(signer);
}

Test(jwt_negcache, bounded_in_entries_and_bytes) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_jwt_cache_stats_t st;
  char claims[2048], *t;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = neg_verifier(ks, &now, 4);
  for (int i = 0; i < 10; i++) {
    snprintf(claims, sizeof(claims), "{\"exp\":1800000000,\"n\":%d}", i);
    t = sign(key, MSVC_JWT_HS256, claims);
    forge(t);
    cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
    msvc_free(t);
  }
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.entries, 4);
  cr_assert_eq(st.evictions, 6);
  msvc_jwt_verifier_free(v);

  /* Two entries may hold 2 KiB of tokens: two 1.4 KiB tokens do not fit. */
  v = neg_verifier(ks, &now, 2);
  for (int i = 0; i < 2; i++) {
    snprintf(claims, sizeof(claims), "{\"exp\":1800000000,\"n\":%d,\"pad\":\"%01000d\"}", i, 0);
    t = sign(key, MSVC_JWT_HS256, claims);
    cr_assert_gt(strlen(t), 1300);
    forge(t);
    cr_assert_eq(verify_str(v, t), MSVC_EJWT_BAD_SIGNATURE);
    msvc_free(t);
  }
  msvc_jwt_verifier_neg_cache_stats(v, &st);
  cr_assert_eq(st.entries, 1);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

typedef struct worker_s {
  msvc_jwt_verifier_t *v;
  const char *good, *bad;
  int failures;
} worker_t;

static void *hammer(void *arg) {
  worker_t *w = arg;

  for (int i = 0; i < 3000; i++) {
    if (verify_str(w->v, w->good) != MSVC_OK) w->failures++;
    if (verify_str(w->v, w->bad) != MSVC_EJWT_BAD_SIGNATURE) w->failures++;
  }
  return NULL;
}

Test(jwt_negcache, two_threads_share_it) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  worker_t w[2];
  pthread_t th[2];
  char *good, *bad;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, key), MSVC_OK);
  v = neg_verifier(ks, &now, 1);
  good = sign(key, MSVC_JWT_HS256, "{\"exp\":1800000000}");
  bad = sign(key, MSVC_JWT_HS256, "{\"exp\":1800000001}");
  forge(bad);
  for (int i = 0; i < 2; i++) {
    w[i] = (worker_t){v, good, bad, 0};
    cr_assert_eq(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(w[i].failures, 0);
  }
  msvc_free(good);
  msvc_free(bad);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

/* ---- require_exp ----------------------------------------------------------- */

Test(jwt_require_exp, refuses_a_token_that_never_expires) {
  uint64_t now = FIXTURE_NOW;
  msvc_jwt_key_t *key = fixture_secret("hs256.secret", NULL);
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v, *strict;
  msvc_jwt_verify_opts_t o;
  char *forever, *dated;

  v = one_key_verifier(key, &now, &ks);
  forever = sign(key, MSVC_JWT_HS256, "{\"sub\":\"1\"}");
  dated = sign(key, MSVC_JWT_HS256, "{\"sub\":\"1\",\"exp\":1800000000}");
  cr_assert_eq(verify_str(v, forever), MSVC_OK, "off by default in the pure block");
  msvc_jwt_verify_opts_init(&o);
  cr_assert_eq(o.require_exp, false);
  o.require_exp = true;
  o.neg_cache_size = 8;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &strict), MSVC_OK);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(verify_str(strict, forever), MSVC_EJWT_MISSING_EXP);
    cr_assert_not_null(strstr(msvc_jwt_errmsg(), "\"exp\""), "%s", msvc_jwt_errmsg());
  }
  cr_assert_str_eq(msvc_jwt_result_name(MSVC_EJWT_MISSING_EXP), "missing_exp");
  cr_assert_eq(verify_str(strict, dated), MSVC_OK);
  msvc_free(forever);
  msvc_free(dated);
  msvc_jwt_verifier_free(strict);
  msvc_jwt_verifier_free(v);
  msvc_jwt_keyset_free(ks);
  msvc_jwt_key_free(key);
}

/* Options filled by a program built against 0.1 (before the fields added
 * since) still make a verifier, with the newer fields at their defaults. */
Test(jwt_require_exp, options_of_the_older_size_are_accepted) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v = NULL;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  msvc_jwt_verify_opts_init(&o);
  o.size = offsetof(msvc_jwt_verify_opts_t, require_exp);
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_OK);
  msvc_jwt_verifier_free(v);
  o.size = 12;
  cr_assert_eq(msvc_jwt_verifier_new(&o, ks, &v), MSVC_EINVAL);
  msvc_jwt_keyset_free(ks);
}

/* ---- the one list of result labels ---------------------------------------- */

static char *read_doc(const char *name) {
  char path[512];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s/docs/%s", LIBMSVC_TEST_SOURCE_DIR, name);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Collects the `backticked` words that look like labels in [from, to):
 * with column > 0, only those of that column of each table row. */
static int labels_in(const char *from, const char *to, int column, char out[][32], int max) {
  int n = 0;

  for (const char *line = from; line < to;) {
    const char *eol = memchr(line, '\n', (size_t)(to - line)), *p = line, *end;
    int col = 0;

    if (eol == NULL) eol = to;
    if (column > 0) {
      if (*line != '|') {
        line = eol + 1;
        continue;
      }
      for (; p < eol && col < column; p++)
        if (*p == '|') col++;
      end = p;
      while (end < eol && *end != '|') end++;
    } else {
      end = eol;
    }
    while (p < end && (p = memchr(p, '`', (size_t)(end - p))) != NULL) {
      const char *e = memchr(p + 1, '`', (size_t)(end - p - 1));
      size_t len;

      if (e == NULL) break;
      len = (size_t)(e - p - 1);
      if (len > 0 && len < 32 && strspn(p + 1, "abcdefghijklmnopqrstuvwxyz_") == len &&
          n < max)
        snprintf(out[n++], 32, "%.*s", (int)len, p + 1);
      p = e + 1;
    }
    line = eol + 1;
  }
  return n;
}

static void same_labels(const char *doc, const char *from, const char *to, int column) {
  char found[64][32];
  int n = labels_in(from, to, column, found, 64);

  for (int r = 0; r < MSVC_JWT_RESULT_COUNT; r++) {
    const char *l = msvc_jwt_result_label((msvc_jwt_result_t)r);
    bool seen = false;

    for (int i = 0; i < n; i++) seen = seen || strcmp(found[i], l) == 0;
    cr_assert(seen, "%s does not list the result label %s", doc, l);
  }
  for (int i = 0; i < n; i++) {
    bool known = false;

    for (int r = 0; r < MSVC_JWT_RESULT_COUNT; r++)
      known = known || strcmp(found[i], msvc_jwt_result_label((msvc_jwt_result_t)r)) == 0;
    cr_assert(known, "%s lists `%s`, which is no result label", doc, found[i]);
  }
}

Test(jwt_results, one_list_in_code_and_docs) {
  char *jwt = read_doc("jwt.md"), *metrics = read_doc("metrics.md");
  const char *from, *to;

  cr_assert_eq(MSVC_JWT_RESULT_COUNT, 11);
  cr_assert_str_eq(msvc_jwt_result_label(MSVC_JWT_RESULT_OK), "ok");
  cr_assert_null(msvc_jwt_result_label(MSVC_JWT_RESULT_COUNT));
  cr_assert_eq(msvc_jwt_result_of(MSVC_ENOMEM), MSVC_JWT_RESULT_COUNT);
  cr_assert_null(msvc_jwt_result_name(MSVC_ENOMEM));
  /* Every JWT code maps to a label of the list. */
  for (int code = -30400; code >= -30412; code--)
    cr_assert_lt(msvc_jwt_result_of(code), MSVC_JWT_RESULT_COUNT, "code %d", code);
  /* docs/jwt.md: the table under "## Results" (labels in its 2nd column). */
  from = strstr(jwt, "\n## Results");
  cr_assert_not_null(from);
  to = strstr(from + 1, "\n## ");
  cr_assert_not_null(to);
  from = strstr(from, "| label |");
  cr_assert_not_null(from, "docs/jwt.md: no label table under Results");
  same_labels("docs/jwt.md", from, to, 2);
  /* docs/metrics.md: the line of the metric. */
  from = strstr(metrics, "| `msvc_jwt_verifications_total`");
  cr_assert_not_null(from, "docs/metrics.md does not list msvc_jwt_verifications_total");
  to = strchr(from + 1, '\n');
  same_labels("docs/metrics.md", from + strlen("| `msvc_jwt_verifications_total`"), to, 0);
  free(jwt);
  free(metrics);
}
