/* Helpers shared by the example services (see ex.h). */

#include "ex.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <msvc/error.h>

const char *ex_env(const char *name, const char *def) {
  const char *v = getenv(name);

  return v != NULL && *v != '\0' ? v : def;
}

/* Only where the variable is unset: an option would win over it, and the
 * deployment's environment must keep the last word over these defaults. */
void ex_jwt_defaults(msvc_service_opts_t *opts) {
  if (getenv("MSVC_JWT_JWKS_URL") == NULL && getenv("MSVC_JWT_JWKS_FILE") == NULL)
    opts->jwt_jwks_url = EX_JWKS_URL;
  if (getenv("MSVC_JWT_ISSUER") == NULL)
    opts->jwt_issuer = EX_JWT_ISSUER;
  if (getenv("MSVC_JWT_AUDIENCE") == NULL)
    opts->jwt_audience = EX_JWT_AUDIENCE;
}

bool ex_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  int64_t v = 0;
  size_t i;

  if (s == NULL || *s == '\0' || strlen(s) > 19)
    return false;
  if (s[0] == '0' && s[1] != '\0')
    return false;
  for (i = 0; s[i] != '\0'; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    if (v > (INT64_MAX - (s[i] - '0')) / 10)
      return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

bool ex_parse_id(const char *s, int64_t *out) {
  return ex_parse_int(s, 1, EX_JSON_INT_MAX, out);
}

int64_t ex_now_s(void) {
  return (int64_t)time(NULL);
}

void ex_rfc3339(int64_t unix_s, char out[32]) {
  time_t t = (time_t)unix_s;
  struct tm tm;

  if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, 32, "1970-01-01T00:00:00Z");
}

int ex_random(void *buf, size_t len) {
  unsigned char *p = buf;

  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);

    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

void ex_hex(const unsigned char *in, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0xf];
  }
  out[2 * len] = '\0';
}

/* Length of the UTF-8 sequence starting at s, or 0 when it is not a valid,
 * shortest-form encoding of a scalar value. */
static size_t utf8_seq(const unsigned char *s) {
  uint32_t cp;
  size_t n, i;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2, cp = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3, cp = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, cp = s[0] & 0x07u;
  else
    return 0;
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3fu);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

long ex_utf8_chars(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  long count = 0;

  while (*p != '\0') {
    size_t n = utf8_seq(p);

    if (n == 0 || *p < 0x20 || *p == 0x7f)
      return -1;
    p += n;
    count++;
  }
  return count;
}

bool ex_json_string(const cJSON *obj, const char *where, const char *field,
                    long min_chars, long max_chars, const char **out, char *msg,
                    size_t msglen) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
  long n;

  if (item == NULL) {
    snprintf(msg, msglen, "%s%s: is required", where, field);
    return false;
  }
  if (!cJSON_IsString(item) || item->valuestring == NULL) {
    snprintf(msg, msglen, "%s%s: must be a string", where, field);
    return false;
  }
  n = ex_utf8_chars(item->valuestring);
  if (n < 0) {
    snprintf(msg, msglen, "%s%s: must be text without control characters", where,
             field);
    return false;
  }
  if (n < min_chars || n > max_chars) {
    snprintf(msg, msglen, "%s%s: must be %ld to %ld characters", where, field,
             min_chars, max_chars);
    return false;
  }
  *out = item->valuestring;
  return true;
}

bool ex_json_int(const cJSON *obj, const char *where, const char *field,
                 int64_t min, int64_t max, int64_t *out, char *msg, size_t msglen) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
  double d;

  if (item == NULL) {
    snprintf(msg, msglen, "%s%s: is required", where, field);
    return false;
  }
  d = cJSON_IsNumber(item) ? item->valuedouble : NAN;
  /* Compare as doubles before converting: a huge value must not be cast. */
  if (!(d == floor(d)) || d < (double)min || d > (double)max) {
    snprintf(msg, msglen, "%s%s: must be an integer from %lld to %lld", where, field,
             (long long)min, (long long)max);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool ex_json_add_int(cJSON *obj, const char *name, int64_t v) {
  return cJSON_AddNumberToObject(obj, name, (double)v) != NULL;
}

int ex_new_failed(const char *program, int rc, const char *err) {
  fprintf(stderr, "%s: %s\n", program, err != NULL && *err != '\0' ? err : msvc_strerror(rc));
  return rc == MSVC_ECONFIG || rc == MSVC_EURI ? 2 : 1;
}

void ex_res_invalid(msvc_http_res_t *res, const char *msg) {
  msvc_http_res_error(res, 400, "INVALID_ARGUMENT", msg);
}

void ex_res_internal(msvc_http_res_t *res) {
  msvc_http_res_error(res, 500, "INTERNAL", "the request could not be completed");
}

void ex_res_json_cacheable(msvc_http_req_t *req, msvc_http_res_t *res, cJSON *doc,
                           const char *cache_control) {
  char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
  const char *inm = msvc_http_req_header(req, "If-None-Match");
  uint64_t h = 0xcbf29ce484222325ull;
  char etag[24];
  size_t i, len;

  cJSON_Delete(doc);
  if (text == NULL) {
    ex_res_internal(res);
    return;
  }
  len = strlen(text);
  for (i = 0; i < len; i++) {
    h ^= (unsigned char)text[i];
    h *= 0x100000001b3ull;
  }
  snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
  msvc_http_res_header(res, "Cache-Control", cache_control);
  msvc_http_res_header(res, "ETag", etag);
  if (inm != NULL && strstr(inm, etag) != NULL)
    msvc_http_res_send(res, 304, NULL, NULL, 0);
  else
    msvc_http_res_send(res, 200, "application/json", text, len);
  cJSON_free(text);
}

void ex_res_json(msvc_http_res_t *res, int status, cJSON *doc) {
  if (doc == NULL)
    ex_res_internal(res);
  else
    msvc_http_res_json(res, status, doc);
  cJSON_Delete(doc);
}
