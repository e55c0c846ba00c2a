/*
 * Internals of the jwt block, shared by its source files (and reachable
 * from its tests). mbedtls and cJSON types appear here, never in the public
 * header.
 */
#ifndef MSVC_JWT_INTERNAL_H
#define MSVC_JWT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>

#include <msvc/jwt.h>
#include "msvc-internal.h"

#define JWT_KTY_OCT 1
#define JWT_KTY_RSA 2
#define JWT_KTY_EC 3

/* Bounds that keep one token's or one document's cost predictable. */
#define JWT_MAX_SIG_BYTES 1024 /* RSA-8192 */
#define JWT_MAX_KEYS 256
#define JWT_MAX_JWKS_BYTES (1024 * 1024)
#define JWT_MAX_PEM_BYTES (64 * 1024)
#define JWT_RSA_MIN_BITS 2048
#define JWT_RSA_MAX_BITS 8192
#define JWT_MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

struct msvc_jwt_key_s {
  atomic_uint refs;
  int kty;
  unsigned algs;
  bool priv;
  char *kid;
  unsigned char *secret; /* oct */
  size_t secret_len;
  mbedtls_pk_context pk; /* RSA and EC */
  size_t sig_len;        /* RSA: modulus bytes; EC: 2 x coordinate bytes */
  /* Identity of the key material and its algorithm binding: cached
   * verifications remember it, and are dropped once no key in the set has
   * it any more. */
  unsigned char fp[32];
  unsigned char thumb[32]; /* RFC 7638 digest */
  /* HMAC inner and outer states after absorbing the padded secret, so that
   * a verification hashes only the message (two blocks fewer, no malloc). */
  mbedtls_sha256_context hs256[2];
  mbedtls_sha512_context hs384[2];
  mbedtls_sha512_context hs512[2];
};

msvc_jwt_key_t *msvc__jwt_key_alloc(int kty);
int msvc__jwt_key_set_kid(msvc_jwt_key_t *key, const char *kid, size_t len);
/* Checks sizes, binds algorithms (`narrow` = 0 or a mask), warms EC tables
 * and computes the thumbprint and fingerprint. On failure the key is freed. */
int msvc__jwt_key_finish(msvc_jwt_key_t *key, unsigned narrow);
msvc_jwt_key_t *msvc__jwt_key_ref(msvc_jwt_key_t *key);
/* Parses a JWK from a cJSON object; `*skip` is set (and MSVC_EJWT_BAD_KEY
 * returned) for an entry a JWK Set must ignore rather than fail on. */
int msvc__jwt_key_from_cjson(const cJSON *jwk, msvc_jwt_key_t **out, bool *skip);

/* ---- key set snapshots --------------------------------------------------- */
typedef struct jwt_snap_s {
  atomic_uint refs;
  size_t n;
  msvc_jwt_key_t *keys[];
} jwt_snap_t;

jwt_snap_t *msvc__jwt_keyset_acquire(msvc_jwt_keyset_t *ks);
void msvc__jwt_snap_release(jwt_snap_t *s);
bool msvc__jwt_snap_has_fp(const jwt_snap_t *s, const unsigned char fp[32]);
void msvc__jwt_keyset_unknown_kid(msvc_jwt_keyset_t *ks, const char *kid);

/* ---- crypto -------------------------------------------------------------- */
int msvc__jwt_hmac_prepare(msvc_jwt_key_t *key);
int msvc__jwt_verify_sig(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg,
                         const unsigned char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len);
/* Writes at most JWT_MAX_SIG_BYTES bytes into sig. */
int msvc__jwt_sign_sig(const msvc_jwt_key_t *key, msvc_jwt_alg_t alg,
                       const unsigned char *input, size_t input_len,
                       unsigned char *sig, size_t *sig_len);
/* A CTR-DRBG for blinding and signing, seeded once, safe from any thread. */
int msvc__jwt_rng(void *unused, unsigned char *out, size_t len);
/* Maps an mbedtls error: allocation failures stay MSVC_ENOMEM. */
int msvc__jwt_mbedtls_err(int mbedtls_rc, int otherwise);

/* ---- encoding, JSON, errors ---------------------------------------------- */
/* Strict base64url: alphabet only, no padding, zero trailing bits. */
int msvc__b64url_decode(const char *in, size_t len, unsigned char *out,
                        size_t cap, size_t *out_len);
size_t msvc__b64url_decoded_max(size_t len);
/* Appends the unpadded base64url form of data to b. */
void msvc__b64url_encode(msvc__buf_t *b, const unsigned char *data, size_t len);

/* Parses exactly one JSON object: no trailing bytes, no duplicate member
 * names at any depth, no "\u0000" escapes (a NUL would cut a string short
 * and let "admin\u0000x" compare equal to "admin"). MSVC_EJSON, or
 * MSVC_ENOMEM when the text is valid but cJSON ran out of memory. */
int msvc__jwt_parse_object(const char *text, size_t len, cJSON **out);
/* The JOSE header members the verifier reads. *_state: 0 absent, 1 a
 * string (copied), 2 present but not a string. */
typedef struct jwt_header_s {
  char alg[16];
  char kid[512];
  char typ[64];
  int alg_state, kid_state, typ_state;
  bool crit;
} jwt_header_t;

/* Scans a header as strictly as msvc__jwt_parse_object() parses, without
 * allocating. -1 when malformed (or a wanted string is too long). */
int msvc__jwt_scan_header(const char *text, size_t len, jwt_header_t *h);

/* Checks that text is one JSON object, without allocating; -1 when it is
 * not or goes beyond the scanner's limits (members, depth, name length). */
int msvc__jwt_scan_json(const char *text, size_t len);

/* Integral number within +-2^53. */
bool msvc__jwt_json_int(const cJSON *item, int64_t *out);

int msvc__jwt_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void msvc__jwt_clear_err(void);
int msvc__jwt_alg_from_name(const char *name, msvc_jwt_alg_t *alg);
int msvc__jwt_read_file(const char *path, size_t max, char **data, size_t *len);

/* ---- verified-token cache ------------------------------------------------ */
typedef struct jwt_cache_s jwt_cache_t;

int msvc__jwt_cache_new(size_t cap, jwt_cache_t **out);
void msvc__jwt_cache_free(jwt_cache_t *c);
/* On a hit returns a new reference to the claims. */
msvc_jwt_claims_t *msvc__jwt_cache_get(jwt_cache_t *c, const char *token,
                                       size_t len);
void msvc__jwt_cache_put(jwt_cache_t *c, const char *token, size_t len,
                         msvc_jwt_claims_t *claims);
void msvc__jwt_cache_drop(jwt_cache_t *c, const char *token, size_t len,
                          bool key_gone);
void msvc__jwt_cache_stats(jwt_cache_t *c, msvc_jwt_cache_stats_t *st);
/* Seeded, fast, not cryptographic: it only picks a bucket, and both caches
 * compare whole tokens. */
uint64_t msvc__jwt_token_hash(uint64_t seed, const char *p, size_t len);

/* ---- refused-token cache ------------------------------------------------- */
typedef struct jwt_negcache_s jwt_negcache_t;

/* Longest refusal detail kept with an entry. */
#define JWT_NEG_MSG_MAX 160

int msvc__jwt_neg_new(size_t cap, jwt_negcache_t **out);
void msvc__jwt_neg_free(jwt_negcache_t *c);
/* The code a token was refused with under key set generation gen, with its
 * detail copied into msg; MSVC_OK when not cached (an entry of another
 * generation is dropped). */
int msvc__jwt_neg_get(jwt_negcache_t *c, const char *token, size_t len, uint64_t gen,
                      char msg[JWT_NEG_MSG_MAX]);
void msvc__jwt_neg_put(jwt_negcache_t *c, const char *token, size_t len, uint64_t gen,
                       int code, const char *msg);
void msvc__jwt_neg_stats(jwt_negcache_t *c, msvc_jwt_cache_stats_t *st);

struct msvc_jwt_claims_s {
  atomic_uint refs;
  cJSON *root;
  char *json;
  char *kid;
  msvc_jwt_alg_t alg;
  unsigned char key_fp[32];
  bool has_exp, has_nbf, has_iat;
  int64_t exp, nbf, iat;
};

msvc_jwt_claims_t *msvc__jwt_claims_ref(msvc_jwt_claims_t *c);

#endif /* MSVC_JWT_INTERNAL_H */
