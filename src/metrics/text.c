/*
 * Text rules of the exposition formats: name validation, UTF-8 checking,
 * escaping and number formatting.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics/metrics-internal.h"

static bool is_alpha_(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int msvc_metrics_name_valid(const char *name) {
  const char *p;

  if (name == NULL || name[0] == '\0')
    return 0;
  if (name[0] == '_' && name[1] == '_')
    return 0;
  if (!is_alpha_(name[0]) && name[0] != ':')
    return 0;
  for (p = name + 1; *p != '\0'; p++)
    if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
      return 0;
  return 1;
}

int msvc_metrics_label_name_valid(const char *name) {
  const char *p;

  if (name == NULL || name[0] == '\0')
    return 0;
  if (name[0] == '_' && name[1] == '_')
    return 0;
  if (!is_alpha_(name[0]))
    return 0;
  for (p = name + 1; *p != '\0'; p++)
    if (!is_alpha_(*p) && !is_digit(*p))
      return 0;
  return 1;
}

/* Length of the UTF-8 sequence starting at s (at most len bytes), or 0 when
 * it is malformed, overlong, a surrogate or beyond U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t len) {
  unsigned c = s[0];
  size_t n, i;
  uint32_t cp;

  if (c < 0x80)
    return c == 0 ? 0 : 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len < n)
    return 0;
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

bool msvc__utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, n;

  while (i < len) {
    n = utf8_seq(p + i, len - i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

/* Copies runs of plain bytes at once: most label values need no escaping. */
static void escape(msvc__buf_t *b, const char *s, size_t len, bool quote) {
  size_t i, start = 0;

  for (i = 0; i < len; i++) {
    const char *rep;
    char c = s[i];

    if (c == '\\')
      rep = "\\\\";
    else if (c == '\n')
      rep = "\\n";
    else if (c == '"' && quote)
      rep = "\\\"";
    else
      continue;
    msvc__buf_append(b, s + start, i - start);
    msvc__buf_append(b, rep, 2);
    start = i + 1;
  }
  msvc__buf_append(b, s + start, len - start);
}

void msvc__metrics_escape_label(msvc__buf_t *b, const char *s, size_t len) {
  escape(b, s, len, true);
}

void msvc__metrics_escape_help(msvc__buf_t *b, const char *s, bool quote) {
  escape(b, s, strlen(s), quote);
}

size_t msvc__metrics_format_u64(uint64_t v, char out[24]) {
  char tmp[24];
  size_t n = 0, i;

  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  return n;
}

size_t msvc__metrics_format_double(double v, char out[32]) {
  int n;

  if (isnan(v)) {
    memcpy(out, "NaN", 4);
    return 3;
  }
  if (isinf(v)) {
    memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
    return 4;
  }
  /* Whole numbers (the common case for counts) skip printf. */
  if (v >= 0 && v < 9007199254740992.0 && v == floor(v))
    return msvc__metrics_format_u64((uint64_t)v, out);
  if (v < 0 && v > -9007199254740992.0 && v == floor(v)) {
    out[0] = '-';
    return 1 + msvc__metrics_format_u64((uint64_t)-v, out + 1);
  }
  /* The shortest of the usual precisions that reads back exactly. */
  n = snprintf(out, 32, "%.15g", v);
  if (n > 0 && strtod(out, NULL) != v)
    n = snprintf(out, 32, "%.17g", v);
  return n > 0 ? (size_t)n : 0;
}
