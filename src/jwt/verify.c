/*
 * The verifier: token structure, header, key selection, signature, claims,
 * and the cached path. Every rejection names its reason through
 * msvc__jwt_fail() so that a 401 can say why.
 */
#include "jwt/jwt-internal.h"

#include <stddef.h>
#include <stdio.h>

#define JWT_MAX_KID_MATCHES 8

struct msvc_jwt_verifier_s {
  msvc_jwt_verify_opts_t o; /* its string pointers point at the copies below */
  char *issuer;
  char *typ;
  char **audiences;
  char **required;
  msvc_jwt_keyset_t *ks;
  jwt_cache_t *cache;
  jwt_negcache_t *neg;
};

/* Options filled by a 0.1 caller end before the fields added since; they
 * are still accepted, and the newer fields keep their defaults. */
#define OPTS_SIZE_0_1 offsetof(msvc_jwt_verify_opts_t, require_exp)

void msvc_jwt_verify_opts_init(msvc_jwt_verify_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->algs = MSVC_JWT_ALGS_ALL;
  opts->leeway_s = 30;
  opts->max_token_len = 8192;
  opts->max_kidless_tries = 4;
}

/* ---- lifecycle ------------------------------------------------------------- */

static void free_strv(char **v, size_t n) {
  size_t i;

  if (v == NULL)
    return;
  for (i = 0; i < n; i++)
    msvc__free(v[i]);
  msvc__free(v);
}

static int copy_strv(const char *const *in, size_t n, char ***out) {
  size_t i;

  *out = NULL;
  if (n == 0)
    return MSVC_OK;
  if (in == NULL)
    return MSVC_EINVAL;
  for (i = 0; i < n; i++)
    if (in[i] == NULL)
      return MSVC_EINVAL;
  *out = msvc__calloc(n, sizeof(char *));
  if (*out == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < n; i++) {
    (*out)[i] = msvc__strdup(in[i]);
    if ((*out)[i] == NULL) {
      free_strv(*out, n);
      *out = NULL;
      return MSVC_ENOMEM;
    }
  }
  return MSVC_OK;
}

static int dup_opt(const char *in, char **out) {
  *out = NULL;
  if (in == NULL)
    return MSVC_OK;
  *out = msvc__strdup(in);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int msvc_jwt_verifier_new(const msvc_jwt_verify_opts_t *opts, msvc_jwt_keyset_t *ks,
                          msvc_jwt_verifier_t **out) {
  msvc_jwt_verifier_t *v;
  int rc;

  if (ks == NULL || out == NULL ||
      (opts != NULL && opts->size != sizeof(*opts) && opts->size != OPTS_SIZE_0_1))
    return MSVC_EINVAL;
  v = msvc__calloc(1, sizeof(*v));
  if (v == NULL)
    return MSVC_ENOMEM;
  msvc_jwt_verify_opts_init(&v->o);
  if (opts != NULL)
    memcpy(&v->o, opts, opts->size);
  v->o.size = sizeof(v->o);
  v->ks = ks;
  if (v->o.max_kidless_tries > 64)
    v->o.max_kidless_tries = 64;
  rc = (v->o.algs & MSVC_JWT_ALGS_ALL) == 0 || (v->o.algs & ~(unsigned)MSVC_JWT_ALGS_ALL) != 0 ||
               v->o.max_token_len == 0
           ? MSVC_EINVAL : MSVC_OK;
  if (rc == MSVC_OK)
    rc = dup_opt(v->o.issuer, &v->issuer);
  if (rc == MSVC_OK)
    rc = dup_opt(v->o.typ, &v->typ);
  if (rc == MSVC_OK)
    rc = copy_strv(v->o.audiences, v->o.n_audiences, &v->audiences);
  if (rc == MSVC_OK)
    rc = copy_strv(v->o.required, v->o.n_required, &v->required);
  if (rc == MSVC_OK && v->o.cache_size > 0)
    rc = msvc__jwt_cache_new(v->o.cache_size, &v->cache);
  if (rc == MSVC_OK && v->o.neg_cache_size > 0)
    rc = msvc__jwt_neg_new(v->o.neg_cache_size, &v->neg);
  v->o.issuer = v->issuer;
  v->o.typ = v->typ;
  v->o.audiences = (const char *const *)v->audiences;
  v->o.required = (const char *const *)v->required;
  if (rc != MSVC_OK) {
    if (v->audiences == NULL)
      v->o.n_audiences = 0;
    if (v->required == NULL)
      v->o.n_required = 0;
    msvc_jwt_verifier_free(v);
    return rc;
  }
  *out = v;
  return MSVC_OK;
}

void msvc_jwt_verifier_free(msvc_jwt_verifier_t *v) {
  if (v == NULL)
    return;
  msvc__jwt_cache_free(v->cache);
  msvc__jwt_neg_free(v->neg);
  msvc__free(v->issuer);
  msvc__free(v->typ);
  free_strv(v->audiences, v->o.n_audiences);
  free_strv(v->required, v->o.n_required);
  msvc__free(v);
}

void msvc_jwt_verifier_cache_stats(msvc_jwt_verifier_t *v, msvc_jwt_cache_stats_t *st) {
  if (st == NULL)
    return;
  memset(st, 0, sizeof(*st));
  if (v != NULL && v->cache != NULL)
    msvc__jwt_cache_stats(v->cache, st);
}

void msvc_jwt_verifier_neg_cache_stats(msvc_jwt_verifier_t *v, msvc_jwt_cache_stats_t *st) {
  if (st == NULL)
    return;
  memset(st, 0, sizeof(*st));
  if (v != NULL && v->neg != NULL)
    msvc__jwt_neg_stats(v->neg, st);
}

/* ---- claims object ---------------------------------------------------------- */

msvc_jwt_claims_t *msvc__jwt_claims_ref(msvc_jwt_claims_t *c) {
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void msvc_jwt_claims_free(msvc_jwt_claims_t *c) {
  if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
    return;
  cJSON_Delete(c->root);
  msvc__free(c->json);
  msvc__free(c->kid);
  msvc__free(c);
}

/* ---- checks ------------------------------------------------------------------ */

/* Looks up several members in one pass over an object: on the hot path this
 * replaces a dozen separate scans. */
static void find_members(const cJSON *obj, const char *const *names, size_t n,
                         const cJSON **out) {
  const cJSON *m;
  size_t i;

  for (i = 0; i < n; i++)
    out[i] = NULL;
  for (m = obj->child; m != NULL; m = m->next)
    for (i = 0; i < n; i++)
      if (m->string[0] == names[i][0] && strcmp(m->string, names[i]) == 0) {
        out[i] = m;
        break;
      }
}

static uint64_t now_s(const msvc_jwt_verifier_t *v) {
  uint64_t ms = v->o.clock != NULL ? v->o.clock(v->o.clock_data) : msvc_wall_ms();

  return ms / 1000;
}

/* Time-dependent checks: run on every verification, cached or not. */
static int check_time(const msvc_jwt_verifier_t *v, const msvc_jwt_claims_t *c,
                      int64_t now) {
  int64_t leeway = v->o.leeway_s;

  if (c->has_exp && now >= c->exp + leeway)
    return msvc__jwt_fail(MSVC_EJWT_EXPIRED, "token expired at %lld",
                          (long long)c->exp);
  if (c->has_nbf && c->nbf > now + leeway)
    return msvc__jwt_fail(MSVC_EJWT_NOT_YET_VALID, "token not valid before %lld",
                          (long long)c->nbf);
  if (c->has_iat && c->iat > now + leeway)
    return msvc__jwt_fail(MSVC_EJWT_NOT_YET_VALID, "token issued in the future (%lld)",
                          (long long)c->iat);
  if (v->o.max_age_s > 0) {
    if (!c->has_iat)
      return msvc__jwt_fail(MSVC_EJWT_MISSING_CLAIM, "claim \"iat\" is required");
    if (now - c->iat > (int64_t)v->o.max_age_s + leeway)
      return msvc__jwt_fail(MSVC_EJWT_TOO_OLD, "token older than %u s", v->o.max_age_s);
  }
  return MSVC_OK;
}

static int time_claim(const cJSON *item, const char *name, bool *has, int64_t *val) {
  *has = item != NULL;
  if (item == NULL)
    return MSVC_OK;
  if (!msvc__jwt_json_int(item, val) || *val < 0)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "claim \"%s\" is not a non-negative integer", name);
  return MSVC_OK;
}

static bool audience_ok(const msvc_jwt_verifier_t *v, const cJSON *aud) {
  const cJSON *a;
  size_t i;

  if (cJSON_IsString(aud)) {
    for (i = 0; i < v->o.n_audiences; i++)
      if (strcmp(aud->valuestring, v->audiences[i]) == 0)
        return true;
    return false;
  }
  if (!cJSON_IsArray(aud))
    return false;
  cJSON_ArrayForEach(a, aud)
    if (cJSON_IsString(a) && audience_ok(v, a))
      return true;
  return false;
}

static int check_static_claims(const msvc_jwt_verifier_t *v, msvc_jwt_claims_t *c) {
  static const char *const names[] = {"exp", "nbf", "iat", "iss", "aud"};
  const cJSON *m[5], *iss;
  size_t i;
  int rc;

  find_members(c->root, names, 5, m);
  if ((rc = time_claim(m[0], "exp", &c->has_exp, &c->exp)) != MSVC_OK ||
      (rc = time_claim(m[1], "nbf", &c->has_nbf, &c->nbf)) != MSVC_OK ||
      (rc = time_claim(m[2], "iat", &c->has_iat, &c->iat)) != MSVC_OK)
    return rc;
  if (v->o.require_exp && !c->has_exp)
    return msvc__jwt_fail(MSVC_EJWT_MISSING_EXP,
                          "claim \"exp\" is required: the token never expires");
  for (i = 0; i < v->o.n_required; i++)
    if (cJSON_GetObjectItemCaseSensitive(c->root, v->required[i]) == NULL)
      return msvc__jwt_fail(MSVC_EJWT_MISSING_CLAIM, "claim \"%.64s\" is required",
                            v->required[i]);
  iss = m[3];
  if (v->issuer != NULL && (!cJSON_IsString(iss) || strcmp(iss->valuestring, v->issuer) != 0))
    return msvc__jwt_fail(MSVC_EJWT_BAD_ISSUER, "issuer not accepted");
  if (v->o.n_audiences > 0 &&
      !audience_ok(v, m[4]))
    return msvc__jwt_fail(MSVC_EJWT_BAD_AUDIENCE, "audience not accepted");
  return MSVC_OK;
}

/* RFC 8725 §3.11 / RFC 7515 §4.1.9: "JWT" and "application/jwt" are equal. */
static const char *media_type(const char *t) {
  return msvc__strncasecmp(t, "application/", 12) == 0 ? t + 12 : t;
}

/* ---- header ------------------------------------------------------------------- */

typedef struct parsed_header_s {
  jwt_header_t raw;
  msvc_jwt_alg_t alg;
  const char *kid;
} parsed_header_t;

static int check_header(const msvc_jwt_verifier_t *v, parsed_header_t *h) {
  const jwt_header_t *r = &h->raw;

  if (r->alg_state != 1)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "header without a string \"alg\"");
  if (msvc__jwt_alg_from_name(r->alg, &h->alg) != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "algorithm \"%.16s\" is not accepted",
                          r->alg);
  if (((unsigned)h->alg & v->o.algs) == 0)
    return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "algorithm %s is not allowed", r->alg);
  /* We implement no extension, so any critical one must be refused. */
  if (r->crit)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "header \"crit\" names an unsupported extension");
  if (r->kid_state == 2)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "header \"kid\" is not a string");
  h->kid = r->kid_state == 1 ? r->kid : NULL;
  if (r->typ_state == 2)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "header \"typ\" is not a string");
  if (v->typ != NULL &&
      (r->typ_state != 1 || msvc__strcasecmp(media_type(r->typ), media_type(v->typ)) != 0))
    return msvc__jwt_fail(MSVC_EJWT_BAD_TYPE, "token type is not %.32s", v->typ);
  return MSVC_OK;
}

/* ---- key selection and signature ------------------------------------------------ */

/* Keys are matched by kid; a key configured without a kid matches any
 * token (RFC 7515 makes kid a hint), but only after the named ones, and a
 * token without a kid tries at most max_kidless_tries keys. */
static int pick_keys(msvc_jwt_verifier_t *v, const jwt_snap_t *s, const parsed_header_t *h,
                     const msvc_jwt_key_t **cand, size_t *n) {
  size_t i, max = v->o.max_kidless_tries;
  bool kid_seen = false, wildcard = false;

  *n = 0;
  if (h->kid != NULL) {
    for (i = 0; i < s->n && *n < JWT_MAX_KID_MATCHES; i++) {
      const msvc_jwt_key_t *k = s->keys[i];

      if (k->kid == NULL || strcmp(k->kid, h->kid) != 0)
        continue;
      kid_seen = true;
      if ((k->algs & (unsigned)h->alg) != 0)
        cand[(*n)++] = k;
    }
    if (kid_seen)
      return *n > 0 ? MSVC_OK
                    : msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "key \"%.64s\" does not allow %s",
                                     h->kid, msvc_jwt_alg_name(h->alg));
  }
  for (i = 0; i < s->n && *n < max; i++) {
    const msvc_jwt_key_t *k = s->keys[i];

    wildcard |= k->kid == NULL;
    if ((h->kid == NULL || k->kid == NULL) && (k->algs & (unsigned)h->alg) != 0)
      cand[(*n)++] = k;
  }
  if (*n > 0)
    return MSVC_OK;
  if (h->kid != NULL && !wildcard) {
    msvc__jwt_keyset_unknown_kid(v->ks, h->kid);
    return msvc__jwt_fail(MSVC_EJWT_UNKNOWN_KID, "no key with id \"%.64s\"", h->kid);
  }
  if (s->n == 0)
    return msvc__jwt_fail(MSVC_EJWT_UNKNOWN_KID, "the key set is empty");
  return msvc__jwt_fail(MSVC_EJWT_ALG_NOT_ALLOWED, "no key allows %s",
                        msvc_jwt_alg_name(h->alg));
}

static int check_signature(msvc_jwt_verifier_t *v, const parsed_header_t *h,
                           const char *token, size_t input_len, const unsigned char *sig,
                           size_t sig_len, msvc_jwt_claims_t *c) {
  /* pick_keys() fills at most 8 (kid matches) or 64 (max_kidless_tries). */
  const msvc_jwt_key_t *cand[64];
  jwt_snap_t *s = msvc__jwt_keyset_acquire(v->ks);
  size_t n, i;
  int rc;

  rc = pick_keys(v, s, h, cand, &n);
  for (i = 0; rc == MSVC_OK && i < n; i++) {
    rc = msvc__jwt_verify_sig(cand[i], h->alg, (const unsigned char *)token, input_len,
                              sig, sig_len);
    if (rc == MSVC_OK) {
      memcpy(c->key_fp, cand[i]->fp, sizeof(c->key_fp));
      if (cand[i]->kid != NULL && (c->kid = msvc__strdup(cand[i]->kid)) == NULL)
        rc = MSVC_ENOMEM;
      break;
    }
    if (rc == MSVC_ENOMEM)
      break;
    if (i + 1 < n)
      rc = MSVC_OK; /* try the next candidate */
  }
  msvc__jwt_snap_release(s);
  return rc;
}

/* ---- the whole pipeline ----------------------------------------------------------- */

typedef struct segments_s {
  size_t h_len, p_off, p_len, s_off, s_len;
} segments_t;

static int split(const char *t, size_t len, segments_t *sg) {
  const char *d1 = memchr(t, '.', len), *d2;

  if (d1 == NULL)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "not three dot-separated parts");
  d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t));
  if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - t)) != NULL)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "not three dot-separated parts");
  sg->h_len = (size_t)(d1 - t);
  sg->p_off = sg->h_len + 1;
  sg->p_len = (size_t)(d2 - d1 - 1);
  sg->s_off = (size_t)(d2 - t) + 1;
  sg->s_len = len - sg->s_off;
  return MSVC_OK;
}

static int decode_json(const char *seg, size_t len, unsigned char *buf, const char *what,
                       cJSON **out, size_t *text_len) {
  int rc;

  if (msvc__b64url_decode(seg, len, buf, msvc__b64url_decoded_max(len), text_len) != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "%s is not strict base64url", what);
  rc = msvc__jwt_parse_object((const char *)buf, *text_len, out);
  if (rc == MSVC_ENOMEM)
    return msvc__jwt_fail(MSVC_ENOMEM, "out of memory parsing the %s", what);
  if (rc != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED,
                          "%s is not a JSON object with unique member names", what);
  return MSVC_OK;
}

/* keep_json: the payload text is copied only when someone can read it. */
static int verify_full(msvc_jwt_verifier_t *v, const char *t, size_t len,
                       unsigned char *buf, msvc_jwt_claims_t *c, bool keep_json) {
  parsed_header_t h;
  segments_t sg = {0};
  size_t n, sig_len;
  unsigned char *sig = buf + msvc__b64url_decoded_max(len);
  int rc;

  if ((rc = split(t, len, &sg)) != MSVC_OK)
    return rc;
  if (msvc__b64url_decode(t, sg.h_len, buf, msvc__b64url_decoded_max(sg.h_len), &n) != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "header is not strict base64url");
  if (msvc__jwt_scan_header((const char *)buf, n, &h.raw) != 0)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED,
                          "header is not a JSON object with unique member names");
  rc = check_header(v, &h);
  if (rc == MSVC_OK && (msvc__b64url_decode(t + sg.s_off, sg.s_len, sig, JWT_MAX_SIG_BYTES,
                                            &sig_len) != MSVC_OK))
    rc = msvc__jwt_fail(sg.s_len > JWT_MAX_SIG_BYTES * 4 / 3 + 2 ? MSVC_EJWT_BAD_SIGNATURE
                                                                 : MSVC_EJWT_MALFORMED,
                        "signature is not strict base64url of a sane length");
  if (rc == MSVC_OK) {
    c->alg = h.alg;
    rc = check_signature(v, &h, t, sg.s_off - 1, sig, sig_len, c);
  }
  if (rc == MSVC_OK)
    rc = decode_json(t + sg.p_off, sg.p_len, buf, "payload", &c->root, &n);
  if (rc == MSVC_OK && keep_json && (c->json = msvc__strndup((const char *)buf, n)) == NULL)
    rc = MSVC_ENOMEM;
  if (rc == MSVC_OK)
    rc = check_static_claims(v, c);
  if (rc == MSVC_OK)
    rc = check_time(v, c, (int64_t)now_s(v));
  return rc;
}

/* A cache hit still checks time, and that the key that verified the token
 * is still in the set (a rotated-out key must not keep its tokens alive). */
static int verify_cached(msvc_jwt_verifier_t *v, const char *t, size_t len,
                         msvc_jwt_claims_t **out) {
  msvc_jwt_claims_t *c = msvc__jwt_cache_get(v->cache, t, len);
  jwt_snap_t *s;
  bool key_present;
  int rc;

  if (c == NULL)
    return MSVC_ENOTFOUND;
  s = msvc__jwt_keyset_acquire(v->ks);
  key_present = msvc__jwt_snap_has_fp(s, c->key_fp);
  msvc__jwt_snap_release(s);
  if (!key_present) {
    msvc__jwt_cache_drop(v->cache, t, len, true);
    msvc_jwt_claims_free(c);
    return MSVC_ENOTFOUND;
  }
  rc = check_time(v, c, (int64_t)now_s(v));
  if (rc == MSVC_EJWT_EXPIRED || rc == MSVC_EJWT_TOO_OLD)
    msvc__jwt_cache_drop(v->cache, t, len, false);
  if (rc == MSVC_OK && out != NULL)
    *out = c;
  else
    msvc_jwt_claims_free(c);
  return rc;
}

/* Refusals that stay true while the verifier's options and the key set
 * stay the same. Time-based ones change with the clock; an unknown kid
 * may be fixed by the refresh the refusal itself triggers; memory and
 * argument errors are no verdict on the token. */
static bool lasting_refusal(int rc) {
  switch (rc) {
  case MSVC_EJWT_MALFORMED:
  case MSVC_EJWT_BAD_SIGNATURE:
  case MSVC_EJWT_ALG_NOT_ALLOWED:
  case MSVC_EJWT_BAD_ISSUER:
  case MSVC_EJWT_BAD_AUDIENCE:
  case MSVC_EJWT_MISSING_CLAIM:
  case MSVC_EJWT_BAD_TYPE:
  case MSVC_EJWT_MISSING_EXP:
    return true;
  default:
    return false;
  }
}

static int verify_uncached(msvc_jwt_verifier_t *v, const char *token, size_t len,
                           msvc_jwt_claims_t **claims);

/* True when what is left to do for this token is a public-key signature
 * check (RS, PS, ES: a millisecond or more), as opposed to an HMAC or a
 * refusal the header already decides. Reads only the header. */
static bool public_key_check_ahead(const char *t, size_t len) {
  unsigned char buf[1024];
  jwt_header_t h;
  segments_t sg = {0};
  size_t n;

  if (split(t, len, &sg) != MSVC_OK || msvc__b64url_decoded_max(sg.h_len) > sizeof(buf) ||
      msvc__b64url_decode(t, sg.h_len, buf, sizeof(buf), &n) != MSVC_OK ||
      msvc__jwt_scan_header((const char *)buf, n, &h) != 0 || h.alg_state != 1)
    return false;
  return (h.alg[0] == 'R' || h.alg[0] == 'P' || h.alg[0] == 'E') && h.alg[1] == 'S';
}

static int verify(msvc_jwt_verifier_t *v, const char *token, size_t len,
                  msvc_jwt_claims_t **claims, bool inline_only) {
  char msg[JWT_NEG_MSG_MAX];
  uint64_t gen = 0;
  int rc;

  if (claims != NULL)
    *claims = NULL;
  if (v == NULL || (token == NULL && len > 0))
    return MSVC_EINVAL;
  msvc__jwt_clear_err();
  if (len == 0)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "empty token");
  if (len > v->o.max_token_len)
    return msvc__jwt_fail(MSVC_EJWT_MALFORMED, "token longer than %zu bytes",
                          v->o.max_token_len);
  if (v->cache != NULL && (rc = verify_cached(v, token, len, claims)) != MSVC_ENOTFOUND)
    return rc;
  if (v->neg != NULL) {
    /* Read before the key set is: a verdict is never filed under a
     * generation newer than the keys it was reached with. */
    gen = msvc_jwt_keyset_generation(v->ks);
    if ((rc = msvc__jwt_neg_get(v->neg, token, len, gen, msg)) != MSVC_OK)
      return msvc__jwt_fail(rc, "%s", msg);
  }
  if (inline_only && public_key_check_ahead(token, len))
    return MSVC_EAGAIN;
  rc = verify_uncached(v, token, len, claims);
  if (v->neg != NULL && lasting_refusal(rc))
    msvc__jwt_neg_put(v->neg, token, len, gen, rc, msvc_jwt_errmsg());
  return rc;
}

int msvc_jwt_verify(msvc_jwt_verifier_t *v, const char *token, size_t len,
                    msvc_jwt_claims_t **claims) {
  return verify(v, token, len, claims, false);
}

int msvc__jwt_verify_inline(msvc_jwt_verifier_t *v, const char *token, size_t len,
                            msvc_jwt_claims_t **claims) {
  return verify(v, token, len, claims, true);
}

static int verify_uncached(msvc_jwt_verifier_t *v, const char *token, size_t len,
                           msvc_jwt_claims_t **claims) {
  msvc_jwt_claims_t *c;
  unsigned char stack_buf[6 * 1024 + 2 + JWT_MAX_SIG_BYTES], *buf;
  size_t need;
  int rc;

  /* Tokens of the default maximum size decode on the stack. */
  need = msvc__b64url_decoded_max(len) + JWT_MAX_SIG_BYTES;
  buf = need <= sizeof(stack_buf) ? stack_buf : msvc__malloc(need);
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL || buf == NULL) {
    msvc__free(c);
    if (buf != stack_buf)
      msvc__free(buf);
    return MSVC_ENOMEM;
  }
  atomic_init(&c->refs, 1);
  rc = verify_full(v, token, len, buf, c, claims != NULL || v->cache != NULL);
  if (buf != stack_buf)
    msvc__free(buf);
  if (rc == MSVC_OK && v->cache != NULL)
    msvc__jwt_cache_put(v->cache, token, len, c);
  if (rc == MSVC_OK && claims != NULL)
    *claims = c;
  else
    msvc_jwt_claims_free(c);
  return rc;
}
