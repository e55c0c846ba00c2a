/*
 * Small pieces of the jwt block: strict base64url, strict JSON objects,
 * algorithm names, result labels, the per-thread error detail and the
 * random generator used for blinding and signing.
 */
#include "jwt/jwt-internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/asn1.h>
#include <mbedtls/error.h>

/* ---- per-thread error detail ---------------------------------------------- */

static _Thread_local char jwt_errbuf[256];

int msvc__jwt_fail(int code, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(jwt_errbuf, sizeof(jwt_errbuf), fmt, ap);
  va_end(ap);
  return code;
}

void msvc__jwt_clear_err(void) {
  jwt_errbuf[0] = '\0';
}

const char *msvc_jwt_errmsg(void) {
  return jwt_errbuf;
}

/* ---- algorithms ------------------------------------------------------------ */

static const struct {
  msvc_jwt_alg_t alg;
  const char *name;
} jwt_algs[] = {
    {MSVC_JWT_HS256, "HS256"}, {MSVC_JWT_HS384, "HS384"},
    {MSVC_JWT_HS512, "HS512"}, {MSVC_JWT_RS256, "RS256"},
    {MSVC_JWT_RS384, "RS384"}, {MSVC_JWT_RS512, "RS512"},
    {MSVC_JWT_PS256, "PS256"}, {MSVC_JWT_PS384, "PS384"},
    {MSVC_JWT_PS512, "PS512"}, {MSVC_JWT_ES256, "ES256"},
    {MSVC_JWT_ES384, "ES384"}, {MSVC_JWT_ES512, "ES512"},
};

const char *msvc_jwt_alg_name(msvc_jwt_alg_t alg) {
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(jwt_algs); i++)
    if (jwt_algs[i].alg == alg)
      return jwt_algs[i].name;
  return NULL;
}

/* Called on every token: a name is "HS", "RS", "PS" or "ES" and a size. */
int msvc__jwt_alg_from_name(const char *name, msvc_jwt_alg_t *alg) {
  static const char families[] = "HSRSPSES";
  unsigned family, size;

  if (strlen(name) != 5 || name[1] != 'S')
    return MSVC_EINVAL;
  for (family = 0; family < 4 && families[family * 2] != name[0]; family++)
    ;
  if (family == 4)
    return MSVC_EINVAL;
  if (strcmp(name + 2, "256") == 0)
    size = 0;
  else if (strcmp(name + 2, "384") == 0)
    size = 1;
  else if (strcmp(name + 2, "512") == 0)
    size = 2;
  else
    return MSVC_EINVAL;
  *alg = (msvc_jwt_alg_t)(1u << (family * 3 + size));
  return MSVC_OK;
}

int msvc_jwt_algs_parse(const char *list, unsigned *mask) {
  unsigned m = 0;
  const char *p = list;
  char name[16];
  msvc_jwt_alg_t alg;

  if (list == NULL || mask == NULL)
    return MSVC_EINVAL;
  while (*p != '\0') {
    size_t n = strcspn(p, ",");

    if (n == 0 || n >= sizeof(name))
      return MSVC_EINVAL;
    memcpy(name, p, n);
    name[n] = '\0';
    if (msvc__jwt_alg_from_name(name, &alg) != MSVC_OK)
      return MSVC_EINVAL;
    m |= (unsigned)alg;
    p += n;
    if (*p == ',' && *++p == '\0')
      return MSVC_EINVAL;
  }
  if (m == 0)
    return MSVC_EINVAL;
  *mask = m;
  return MSVC_OK;
}

msvc_jwt_result_t msvc_jwt_result_of(int code) {
  switch (code) {
  case MSVC_OK: return MSVC_JWT_RESULT_OK;
  case MSVC_EJWT_EXPIRED: return MSVC_JWT_RESULT_EXPIRED;
  case MSVC_EJWT_TOO_OLD: return MSVC_JWT_RESULT_EXPIRED;
  case MSVC_EJWT_NOT_YET_VALID: return MSVC_JWT_RESULT_NOT_YET_VALID;
  case MSVC_EJWT_MISSING_EXP: return MSVC_JWT_RESULT_MISSING_EXP;
  case MSVC_EJWT_BAD_SIGNATURE: return MSVC_JWT_RESULT_BAD_SIGNATURE;
  case MSVC_EJWT_BAD_KEY: return MSVC_JWT_RESULT_BAD_SIGNATURE;
  case MSVC_EJWT_BAD_ISSUER: return MSVC_JWT_RESULT_BAD_ISSUER;
  case MSVC_EJWT_BAD_AUDIENCE: return MSVC_JWT_RESULT_BAD_AUDIENCE;
  case MSVC_EJWT_MALFORMED: return MSVC_JWT_RESULT_MALFORMED;
  case MSVC_EJWT_MISSING_CLAIM: return MSVC_JWT_RESULT_MALFORMED;
  case MSVC_EJWT_BAD_TYPE: return MSVC_JWT_RESULT_MALFORMED;
  case MSVC_EJWT_UNKNOWN_KID: return MSVC_JWT_RESULT_UNKNOWN_KID;
  case MSVC_EJWT_ALG_NOT_ALLOWED: return MSVC_JWT_RESULT_ALG_NOT_ALLOWED;
  default: return MSVC_JWT_RESULT_COUNT;
  }
}

const char *msvc_jwt_result_label(msvc_jwt_result_t r) {
  static const char *const labels[MSVC_JWT_RESULT_COUNT] = {
#define LABEL_(name, label, meaning) label,
      MSVC_JWT_RESULT_MAP(LABEL_)
#undef LABEL_
  };

  return (unsigned)r < MSVC_JWT_RESULT_COUNT ? labels[r] : NULL;
}

const char *msvc_jwt_result_name(int code) {
  return msvc_jwt_result_label(msvc_jwt_result_of(code));
}

/* ---- base64url ------------------------------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each byte in the base64url alphabet, 64 for any other byte. */
static const unsigned char b64url_values[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};

size_t msvc__b64url_decoded_max(size_t len) {
  return len / 4 * 3 + 2;
}

/* Strictness is what makes a token's encoding unique: with padding, other
 * alphabets or non-zero trailing bits accepted, one signature would have
 * several spellings (signature malleability, and cache keys that differ for
 * the same token). */
int msvc__b64url_decode(const char *in, size_t len, unsigned char *out,
                        size_t cap, size_t *out_len) {
  const unsigned char *p = (const unsigned char *)in;
  size_t i, o = 0, full = len / 4 * 4, rest = len % 4;
  uint32_t v;

  if (rest == 1 || len / 4 * 3 + (rest ? rest - 1 : 0) > cap)
    return MSVC_EINVAL;
  for (i = 0; i < full; i += 4) {
    unsigned a = b64url_values[p[i]], b = b64url_values[p[i + 1]];
    unsigned c = b64url_values[p[i + 2]], d = b64url_values[p[i + 3]];

    if ((a | b | c | d) & 64)
      return MSVC_EINVAL;
    v = a << 18 | b << 12 | c << 6 | d;
    out[o++] = (unsigned char)(v >> 16);
    out[o++] = (unsigned char)(v >> 8);
    out[o++] = (unsigned char)v;
  }
  if (rest > 0) {
    unsigned a = b64url_values[p[i]], b = b64url_values[p[i + 1]];
    unsigned c = rest == 3 ? b64url_values[p[i + 2]] : 0;

    if ((a | b | c) & 64)
      return MSVC_EINVAL;
    v = a << 18 | b << 12 | c << 6;
    /* The unused low bits of the last character must be zero. */
    if ((rest == 2 && (v & 0xFFFF) != 0) || (rest == 3 && (v & 0xFF) != 0))
      return MSVC_EINVAL;
    out[o++] = (unsigned char)(v >> 16);
    if (rest == 3)
      out[o++] = (unsigned char)(v >> 8);
  }
  *out_len = o;
  return MSVC_OK;
}

void msvc__b64url_encode(msvc__buf_t *b, const unsigned char *data, size_t len) {
  size_t i;
  char q[4];

  for (i = 0; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

    q[0] = b64url_alphabet[v >> 18];
    q[1] = b64url_alphabet[(v >> 12) & 63];
    q[2] = b64url_alphabet[(v >> 6) & 63];
    q[3] = b64url_alphabet[v & 63];
    msvc__buf_append(b, q, 4);
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)data[i] << 16;

    q[0] = b64url_alphabet[v >> 18];
    q[1] = b64url_alphabet[(v >> 12) & 63];
    msvc__buf_append(b, q, 2);
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;

    q[0] = b64url_alphabet[v >> 18];
    q[1] = b64url_alphabet[(v >> 12) & 63];
    q[2] = b64url_alphabet[(v >> 6) & 63];
    msvc__buf_append(b, q, 3);
  }
}

/* ---- strict JSON objects --------------------------------------------------- */

/* Backslashes only occur inside strings in valid JSON, so walking escape by
 * escape finds every "\u0000" without a full tokenizer. */
static bool has_nul_escape(const char *s, size_t len) {
  size_t i;

  for (i = 0; i + 1 < len; i++) {
    if (s[i] != '\\')
      continue;
    if (s[i + 1] == 'u' && i + 5 < len && s[i + 2] == '0' && s[i + 3] == '0' &&
        s[i + 4] == '0' && s[i + 5] == '0')
      return true;
    i++; /* skip the escaped character */
  }
  return false;
}

static bool has_duplicate_names(const cJSON *item, int depth) {
  const cJSON *a, *b;

  if (depth > 64)
    return true; /* no legitimate token nests this deep */
  for (a = item->child; a != NULL; a = a->next) {
    if (cJSON_IsObject(item))
      for (b = a->next; b != NULL; b = b->next)
        if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0)
          return true;
    if ((cJSON_IsObject(a) || cJSON_IsArray(a)) && has_duplicate_names(a, depth + 1))
      return true;
  }
  return false;
}

int msvc__jwt_parse_object(const char *text, size_t len, cJSON **out) {
  const char *end = NULL;
  cJSON *root;

  if (has_nul_escape(text, len))
    return MSVC_EJSON;
  root = cJSON_ParseWithLengthOpts(text, len, &end, false);
  if (root == NULL) /* cJSON does not tell ENOMEM apart: a scan does */
    return msvc__jwt_scan_json(text, len) == 0 ? MSVC_ENOMEM : MSVC_EJSON;
  while (end != NULL && end < text + len &&
         (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
    end++;
  if (end != text + len || !cJSON_IsObject(root) || has_duplicate_names(root, 0)) {
    cJSON_Delete(root);
    return MSVC_EJSON;
  }
  *out = root;
  return MSVC_OK;
}

bool msvc__jwt_json_int(const cJSON *item, int64_t *out) {
  double d;

  if (!cJSON_IsNumber(item))
    return false;
  d = item->valuedouble;
  if (!isfinite(d) || d != floor(d) || d >= JWT_MAX_SAFE_INT || d <= -JWT_MAX_SAFE_INT)
    return false;
  *out = (int64_t)d;
  return true;
}

/* ---- files ------------------------------------------------------------------ */

int msvc__jwt_read_file(const char *path, size_t max, char **data, size_t *len) {
  FILE *f;
  char *buf;
  size_t n;
  int rc = MSVC_OK;

  if (path == NULL)
    return MSVC_EINVAL;
  f = fopen(path, "rb");
  if (f == NULL)
    return -errno;
  buf = msvc__malloc(max + 2);
  if (buf == NULL) {
    fclose(f);
    return MSVC_ENOMEM;
  }
  n = fread(buf, 1, max + 1, f);
  if (ferror(f))
    rc = MSVC_EIO;
  else if (n > max)
    rc = MSVC_ETOOLARGE;
  fclose(f);
  if (rc != MSVC_OK) {
    msvc__free(buf);
    return msvc__jwt_fail(rc, "%s: %s", path,
                          rc == MSVC_ETOOLARGE ? "file too large" : "read error");
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return MSVC_OK;
}

/* ---- randomness -------------------------------------------------------------- */

static pthread_once_t rng_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t rng_mu = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;
static int rng_status = -1;

static void rng_init(void) {
  static const unsigned char pers[] = "libmsvc-jwt";

  mbedtls_entropy_init(&rng_entropy);
  mbedtls_ctr_drbg_init(&rng_drbg);
  rng_status = mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func, &rng_entropy,
                                     pers, sizeof(pers) - 1);
}

int msvc__jwt_rng(void *unused, unsigned char *out, size_t len) {
  int rc;

  (void)unused;
  pthread_once(&rng_once, rng_init);
  if (rng_status != 0)
    return rng_status;
  pthread_mutex_lock(&rng_mu);
  rc = mbedtls_ctr_drbg_random(&rng_drbg, out, len);
  pthread_mutex_unlock(&rng_mu);
  return rc;
}

int msvc__jwt_mbedtls_err(int rc, int otherwise) {
  /* Allocation failures of every mbedtls module, low and high level. */
  int low = -((-rc) & 0x7F), high = -((-rc) & 0x7F80);

  if (low == MBEDTLS_ERR_MPI_ALLOC_FAILED || high == MBEDTLS_ERR_PK_ALLOC_FAILED ||
      high == MBEDTLS_ERR_ECP_ALLOC_FAILED || low == MBEDTLS_ERR_ASN1_ALLOC_FAILED)
    return MSVC_ENOMEM;
  return otherwise;
}
