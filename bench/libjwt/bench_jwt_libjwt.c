/*
 * libmsvc against Debian's libjwt 1.10 (OpenSSL), verifying the same tokens
 * in the same run. libjwt 1.10 has no PS256, so PS256 is not compared.
 *
 * libjwt's jwt_decode() takes the algorithm from the token and checks no
 * claims; libmsvc is measured as a service would run it (issuer and
 * audience checked), which only makes the comparison harder for libmsvc.
 */
#include <jwt.h>

#include "bench_jwt_common.h"

typedef struct peer_s {
  const char *token;
  size_t len;
  const unsigned char *key;
  int key_len;
  msvc_jwt_verifier_t *v;
} peer_t;

static int libjwt_verify(void *arg) {
  peer_t *p = arg;
  jwt_t *jwt = NULL;
  int rc = jwt_decode(&jwt, p->token, p->key, p->key_len);

  jwt_free(jwt);
  return rc;
}

static int ours_verify(void *arg) {
  peer_t *p = arg;

  return msvc_jwt_verify(p->v, p->token, p->len, NULL);
}

int main(void) {
  bench_jwt_case_t cases[] = {{"hs256", MSVC_JWT_HS256, NULL, {0}, NULL},
                              {"rs256", MSVC_JWT_RS256, NULL, {0}, NULL},
                              {"es256", MSVC_JWT_ES256, NULL, {0}, NULL}};

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bench_jwt_case_t *c = &cases[i];
    msvc_jwt_keyset_t *ks = NULL;
    peer_t p;
    bench_stat_t s_peer, s_ours;
    char name[64];

    if (bench_jwt_setup(c) != 0 || msvc_jwt_keyset_new(&ks) != 0)
      return 1;
    p.token = c->token;
    p.len = strlen(c->token);
    if (c->alg == MSVC_JWT_HS256) {
      p.key = c->secret;
      p.key_len = (int)sizeof(c->secret);
    } else {
      p.key = (const unsigned char *)c->public_pem;
      p.key_len = (int)strlen(c->public_pem);
    }
    p.v = bench_jwt_verifier(c, ks, 0);
    if (p.v == NULL || libjwt_verify(&p) != 0 || ours_verify(&p) != 0) {
      fprintf(stderr, "bench_jwt_libjwt: %s token does not verify in both\n", c->name);
      return 1;
    }
    {
      int (*const fns[2])(void *) = {libjwt_verify, ours_verify};
      void *const args[2] = {&p, &p};
      bench_stat_t st[2];

      bench_jwt_measure(2, fns, args, st);
      s_peer = st[0];
      s_ours = st[1];
    }
    snprintf(name, sizeof(name), "jwt_verify_%s", c->name);
    bench_emit(name, "libjwt", "ops_per_s", "ops/s", s_peer, NULL, 0);
    bench_emit(name, "libmsvc", "ops_per_s", "ops/s", s_ours, "libjwt",
               s_ours.median / s_peer.median);
    msvc_jwt_verifier_free(p.v);
    msvc_jwt_keyset_free(ks);
    msvc_free(c->token);
    free(c->public_pem);
  }
  return 0;
}
