/* Helpers shared by the jwt test suites. */
#ifndef MSVC_JWT_TEST_H
#define MSVC_JWT_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/jwt.h>

#define FIXTURES LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/"
#define FIXTURE_NOW 1700000000ULL

/* A clock the tests move by hand: seconds since the epoch. */
static inline uint64_t test_clock(void *data) {
  return *(uint64_t *)data * 1000;
}

static inline char *read_fixture(const char *name, size_t *len) {
  char path[512];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s%s", FIXTURES, name);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "missing fixture %s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (len != NULL)
    *len = (size_t)n;
  return buf;
}

static inline msvc_jwt_key_t *fixture_pem(const char *name, const char *kid) {
  msvc_jwt_key_t *key = NULL;
  size_t len;
  char *pem = read_fixture(name, &len);

  cr_assert_eq(msvc_jwt_key_from_pem(pem, len, 0, kid, &key), MSVC_OK, "%s: %s", name,
               msvc_jwt_errmsg());
  free(pem);
  return key;
}

static inline msvc_jwt_key_t *fixture_secret(const char *name, const char *kid) {
  msvc_jwt_key_t *key = NULL;
  size_t len;
  char *s = read_fixture(name, &len);

  cr_assert_eq(msvc_jwt_key_from_secret(s, len, 0, kid, &key), MSVC_OK);
  free(s);
  return key;
}

/* A verifier over one key, at a fixed time, with no other checks. */
static inline msvc_jwt_verifier_t *one_key_verifier(msvc_jwt_key_t *key, uint64_t *now,
                                                    msvc_jwt_keyset_t **ks) {
  msvc_jwt_verify_opts_t o;
  msvc_jwt_verifier_t *v = NULL;

  cr_assert_eq(msvc_jwt_keyset_new(ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(*ks, key), MSVC_OK);
  msvc_jwt_verify_opts_init(&o);
  o.clock = test_clock;
  o.clock_data = now;
  cr_assert_eq(msvc_jwt_verifier_new(&o, *ks, &v), MSVC_OK);
  return v;
}

static inline int verify_str(msvc_jwt_verifier_t *v, const char *token) {
  return msvc_jwt_verify(v, token, strlen(token), NULL);
}

#endif
