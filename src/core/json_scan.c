/* A JSON grammar check that allocates nothing. cJSON reports a failed
 * allocation and a syntax error the same way (NULL); when a parse fails,
 * this tells the two apart so that out-of-memory stays out-of-memory. */
#include "msvc-internal.h"

#define SCAN_MAX_DEPTH 256

typedef struct scan_s {
  const char *p, *end;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

/* A \uXXXX escape after the "\u"; -1 if malformed. */
static long hex4(scan_t *s) {
  long v = 0;
  int i;

  for (i = 0; i < 4; i++) {
    char c = s->p < s->end ? *s->p++ : '\0';

    if (!is_hex(c))
      return -1;
    v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* Escaped UTF-16 must pair its surrogates, as cJSON insists. */
static bool unicode_escape(scan_t *s) {
  long hi = hex4(s), lo;

  if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
    return false;
  if (hi < 0xD800 || hi > 0xDBFF)
    return true;
  if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
    return false;
  s->p += 2;
  lo = hex4(s);
  return lo >= 0xDC00 && lo <= 0xDFFF;
}

static bool string(scan_t *s) {
  s->p++; /* the opening quote */
  while (s->p < s->end && *s->p != '"') {
    unsigned char c = (unsigned char)*s->p++;

    if (c < 0x20)
      return false;
    if (c != '\\')
      continue;
    if (s->p >= s->end)
      return false;
    c = (unsigned char)*s->p++;
    if (c == 'u') {
      if (!unicode_escape(s))
        return false;
    } else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
      return false;
    }
  }
  if (s->p >= s->end)
    return false;
  s->p++;
  return true;
}

static bool digits(scan_t *s) {
  const char *start = s->p;

  while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
    s->p++;
  return s->p > start;
}

static bool number(scan_t *s) {
  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (!digits(s))
    return false;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!digits(s))
      return false;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
      s->p++;
    if (!digits(s))
      return false;
  }
  return true;
}

static bool literal(scan_t *s, const char *word) {
  size_t n = strlen(word);

  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return false;
  s->p += n;
  return true;
}

static bool value(scan_t *s, int depth);

static bool container(scan_t *s, int depth) {
  char close = *s->p == '{' ? '}' : ']';

  if (depth > SCAN_MAX_DEPTH)
    return false;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return true;
  }
  for (;;) {
    ws(s);
    if (close == '}') {
      if (s->p >= s->end || *s->p != '"' || !string(s))
        return false;
      ws(s);
      if (s->p >= s->end || *s->p++ != ':')
        return false;
    }
    if (!value(s, depth + 1))
      return false;
    ws(s);
    if (s->p >= s->end)
      return false;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    return *s->p++ == close;
  }
}

static bool value(scan_t *s, int depth) {
  ws(s);
  if (s->p >= s->end)
    return false;
  switch (*s->p) {
  case '"': return string(s);
  case '{': case '[': return container(s, depth);
  case 't': return literal(s, "true");
  case 'f': return literal(s, "false");
  case 'n': return literal(s, "null");
  default: return number(s);
  }
}

bool msvc__json_valid(const char *text, size_t len) {
  scan_t s = {text, text + len};

  if (!value(&s, 0))
    return false;
  ws(&s);
  return s.p == s.end;
}

int msvc__json_parse_error(const char *text, size_t len) {
  return msvc__json_valid(text, len) ? MSVC_ENOMEM : MSVC_EJSON;
}
