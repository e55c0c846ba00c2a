/*
 * Cache-Control values (RFC 9111 5.2): a comma-separated list of
 * `token [ "=" ( token / quoted-string ) ]`. The parser never allocates
 * and reads each byte once; anything it cannot make sense of marks the
 * value malformed, and the cache then stores nothing from the answer
 * (refusing to store is always safe, guessing is not).
 */
#include <string.h>

#include <msvc/cache.h>

#include "msvc-internal.h"

typedef struct span_s {
  const char *p;
  size_t n;
} span_t;

static size_t skip_ows(const char *s, size_t i, size_t len) {
  while (i < len && (s[i] == ' ' || s[i] == '\t'))
    i++;
  return i;
}

static bool name_is(span_t name, const char *want) {
  size_t n = strlen(want);

  return name.n == n && msvc__strncasecmp(name.p, want, n) == 0;
}

/* delta-seconds: 1*DIGIT, clamped to MSVC_CACHE_DELTA_MAX. A quoted
 * number is accepted too (RFC 9111 5.2 asks senders for the token form,
 * recipients to take both). */
static bool delta_seconds(span_t v, uint32_t *out) {
  uint64_t n = 0;
  size_t i;

  if (v.n == 0)
    return false;
  for (i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9')
      return false;
    n = n * 10 + (uint64_t)(v.p[i] - '0');
    if (n > MSVC_CACHE_DELTA_MAX)
      n = MSVC_CACHE_DELTA_MAX;
  }
  *out = (uint32_t)n;
  return true;
}

/* A directive given twice keeps its smallest value: the safe reading. */
static void set_seconds(msvc_cache_cc_t *cc, uint32_t flag, uint32_t *field, span_t v,
                        bool has_value) {
  uint32_t s;

  if (!has_value || !delta_seconds(v, &s)) {
    cc->flags |= MSVC_CACHE_CC_MALFORMED;
    return;
  }
  if ((cc->flags & flag) == 0 || s < *field)
    *field = s;
  cc->flags |= flag;
}

static void apply(msvc_cache_cc_t *cc, span_t name, span_t v, bool has_value) {
  static const struct {
    const char *name;
    uint32_t flag;
  } bare[] = {
      {"no-store", MSVC_CACHE_CC_NO_STORE},
      {"no-cache", MSVC_CACHE_CC_NO_CACHE},
      {"private", MSVC_CACHE_CC_PRIVATE},
      {"public", MSVC_CACHE_CC_PUBLIC},
      {"must-revalidate", MSVC_CACHE_CC_MUST_REVALIDATE},
      {"proxy-revalidate", MSVC_CACHE_CC_PROXY_REVALIDATE},
  };
  size_t i;

  if (name_is(name, "max-age")) {
    set_seconds(cc, MSVC_CACHE_CC_MAX_AGE, &cc->max_age, v, has_value);
    return;
  }
  if (name_is(name, "s-maxage")) {
    set_seconds(cc, MSVC_CACHE_CC_S_MAXAGE, &cc->s_maxage, v, has_value);
    return;
  }
  if (name_is(name, "stale-if-error")) {
    set_seconds(cc, MSVC_CACHE_CC_STALE_IF_ERROR, &cc->stale_if_error, v, has_value);
    return;
  }
  /* no-cache="f" and private="f" are taken as unqualified: stricter. */
  for (i = 0; i < MSVC__ARRAY_SIZE(bare); i++)
    if (name_is(name, bare[i].name)) {
      cc->flags |= bare[i].flag;
      return;
    }
}

/* A quoted-string starting at s[i] == '"'; the inside goes to *v. Returns
 * the index after the closing quote, or 0 when it is not closed. */
static size_t quoted(const char *s, size_t i, size_t len, span_t *v) {
  size_t start = ++i;

  while (i < len && s[i] != '"') {
    if (s[i] == '\\') {
      if (++i == len)
        return 0;
    } else if ((unsigned char)s[i] < 0x20 && s[i] != '\t') {
      return 0;
    }
    i++;
  }
  if (i == len)
    return 0;
  v->p = s + start;
  v->n = i - start;
  return i + 1;
}

/* One directive at s[i]; returns the index of what follows it, or 0 when
 * the list is malformed there. */
static size_t directive(msvc_cache_cc_t *cc, const char *s, size_t i, size_t len) {
  span_t name = {s + i, 0}, v = {NULL, 0};
  bool has_value = false;

  while (i < len && msvc__is_tchar((unsigned char)s[i]))
    i++;
  name.n = (size_t)(s + i - name.p);
  if (name.n == 0)
    return 0;
  if (i < len && s[i] == '=') {
    has_value = true;
    i++;
    if (i < len && s[i] == '"') {
      i = quoted(s, i, len, &v);
      if (i == 0)
        return 0;
    } else {
      v.p = s + i;
      while (i < len && msvc__is_tchar((unsigned char)s[i]))
        i++;
      v.n = (size_t)(s + i - v.p);
      if (v.n == 0)
        return 0;
    }
  }
  apply(cc, name, v, has_value);
  return i;
}

int msvc_cache_cc_parse(const char *value, size_t len, msvc_cache_cc_t *out) {
  size_t i = 0;

  if (out == NULL || (value == NULL && len > 0))
    return MSVC_EINVAL;
  memset(out, 0, sizeof(*out));
  while (i < len) {
    i = skip_ows(value, i, len);
    if (i == len)
      break;
    if (value[i] == ',') { /* empty list elements are allowed (RFC 9110 5.6.1) */
      i++;
      continue;
    }
    i = directive(out, value, i, len);
    if (i == 0) {
      out->flags |= MSVC_CACHE_CC_MALFORMED;
      return MSVC_OK;
    }
    i = skip_ows(value, i, len);
    if (i < len && value[i] != ',') {
      out->flags |= MSVC_CACHE_CC_MALFORMED;
      return MSVC_OK;
    }
  }
  return MSVC_OK;
}
