/*
 * A strict scanner for the JOSE header. The header is parsed on every
 * uncached verification and only four of its members matter, so building a
 * cJSON tree (a dozen allocations) for it cost more than the HMAC itself.
 * This scanner allocates nothing and is as strict as the payload's parser:
 * RFC 8259 grammar, one object, no duplicate member names (compared after
 * unescaping), no "\u0000", bounded nesting.
 */
#include "jwt/jwt-internal.h"

#define HDR_MAX_MEMBERS 32
#define HDR_MAX_NAME 64
#define HDR_MAX_DEPTH 16

typedef struct scan_s {
  const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int hex4(const char *p, unsigned *v) {
  unsigned i, x = 0;

  for (i = 0; i < 4; i++) {
    char c = p[i];

    x <<= 4;
    if (c >= '0' && c <= '9')
      x |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      x |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      x |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *v = x;
  return 0;
}

static size_t put_utf8(unsigned cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* One escape after the backslash; returns the code point or -1. */
static long escape(scan_t *s) {
  unsigned cp, lo;
  char c;

  if (s->p >= s->end)
    return -1;
  c = *s->p++;
  switch (c) {
  case '"': case '\\': case '/': return c;
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  case 'u': break;
  default: return -1;
  }
  if (s->end - s->p < 4 || hex4(s->p, &cp) != 0 || cp == 0)
    return -1;
  s->p += 4;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return -1;
  if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &lo) != 0 ||
        lo < 0xDC00 || lo > 0xDFFF)
      return -1;
    s->p += 6;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  return (long)cp;
}

/* Scans a string at s->p (on its opening quote). With out != NULL, writes
 * the unescaped text and a NUL, failing when it needs more than cap bytes. */
static int scan_string(scan_t *s, char *out, size_t cap, size_t *len) {
  size_t n = 0;

  if (s->p >= s->end || *s->p != '"')
    return -1;
  s->p++;
  while (s->p < s->end && *s->p != '"') {
    unsigned char c = (unsigned char)*s->p;
    char tmp[4];
    size_t k = 1;

    if (c < 0x20)
      return -1;
    if (c == '\\') {
      long cp;

      s->p++;
      if ((cp = escape(s)) < 0)
        return -1;
      k = put_utf8((unsigned)cp, tmp);
    } else {
      tmp[0] = (char)c;
      s->p++;
    }
    if (out != NULL) {
      if (n + k >= cap)
        return -1;
      memcpy(out + n, tmp, k);
    }
    n += k;
  }
  if (s->p >= s->end)
    return -1;
  s->p++;
  if (out != NULL)
    out[n] = '\0';
  if (len != NULL)
    *len = n;
  return 0;
}

static int scan_number(scan_t *s) {
  const char *p = s->p, *e = s->end;

  if (p < e && *p == '-')
    p++;
  if (p < e && *p == '0')
    p++;
  else if (p < e && *p >= '1' && *p <= '9')
    while (p < e && *p >= '0' && *p <= '9')
      p++;
  else
    return -1;
  if (p < e && *p == '.') {
    if (++p >= e || *p < '0' || *p > '9')
      return -1;
    while (p < e && *p >= '0' && *p <= '9')
      p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    if (++p < e && (*p == '+' || *p == '-'))
      p++;
    if (p >= e || *p < '0' || *p > '9')
      return -1;
    while (p < e && *p >= '0' && *p <= '9')
      p++;
  }
  s->p = p;
  return 0;
}

static int scan_value(scan_t *s, int depth);

/* Objects and arrays inside the header (e.g. a "jwk" member): checked for
 * grammar and duplicate names, then ignored. */
static int scan_container(scan_t *s, int depth) {
  bool object = *s->p == '{';
  char names[HDR_MAX_MEMBERS][HDR_MAX_NAME];
  size_t count = 0, i;

  if (depth > HDR_MAX_DEPTH)
    return -1;
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == (object ? '}' : ']')) {
    s->p++;
    return 0;
  }
  for (;;) {
    skip_ws(s);
    if (object) {
      if (count >= HDR_MAX_MEMBERS || scan_string(s, names[count], HDR_MAX_NAME, NULL) != 0)
        return -1;
      for (i = 0; i < count; i++)
        if (strcmp(names[i], names[count]) == 0)
          return -1;
      count++;
      skip_ws(s);
      if (s->p >= s->end || *s->p++ != ':')
        return -1;
    }
    if (scan_value(s, depth + 1) != 0)
      return -1;
    skip_ws(s);
    if (s->p >= s->end)
      return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p++ != (object ? '}' : ']'))
      return -1;
    return 0;
  }
}

static int scan_literal(scan_t *s, const char *word) {
  size_t n = strlen(word);

  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return -1;
  s->p += n;
  return 0;
}

static int scan_value(scan_t *s, int depth) {
  skip_ws(s);
  if (s->p >= s->end)
    return -1;
  switch (*s->p) {
  case '"': return scan_string(s, NULL, 0, NULL);
  case '{': case '[': return scan_container(s, depth);
  case 't': return scan_literal(s, "true");
  case 'f': return scan_literal(s, "false");
  case 'n': return scan_literal(s, "null");
  default: return scan_number(s);
  }
}

/* The value of a member we care about: a string copied into out, or a
 * marker that it was present but not a string. */
static int scan_wanted(scan_t *s, char *out, size_t cap, int *state) {
  skip_ws(s);
  if (s->p < s->end && *s->p == '"') {
    *state = 1;
    return scan_string(s, out, cap, NULL);
  }
  *state = 2; /* present, not a string */
  return scan_value(s, 1);
}

int msvc__jwt_scan_json(const char *text, size_t len) {
  scan_t s = {text, text + len};

  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{' || scan_value(&s, 0) != 0)
    return -1;
  skip_ws(&s);
  return s.p == s.end ? 0 : -1;
}

int msvc__jwt_scan_header(const char *text, size_t len, jwt_header_t *h) {
  scan_t s = {text, text + len};
  char names[HDR_MAX_MEMBERS][HDR_MAX_NAME];
  size_t count = 0, i;
  int rc;

  memset(h, 0, sizeof(*h));
  skip_ws(&s);
  if (s.p >= s.end || *s.p++ != '{')
    return -1;
  skip_ws(&s);
  if (s.p < s.end && *s.p == '}')
    s.p++;
  else
    for (;;) {
      skip_ws(&s);
      if (count >= HDR_MAX_MEMBERS || scan_string(&s, names[count], HDR_MAX_NAME, NULL) != 0)
        return -1;
      for (i = 0; i < count; i++)
        if (strcmp(names[i], names[count]) == 0)
          return -1;
      skip_ws(&s);
      if (s.p >= s.end || *s.p++ != ':')
        return -1;
      if (strcmp(names[count], "alg") == 0)
        rc = scan_wanted(&s, h->alg, sizeof(h->alg), &h->alg_state);
      else if (strcmp(names[count], "kid") == 0)
        rc = scan_wanted(&s, h->kid, sizeof(h->kid), &h->kid_state);
      else if (strcmp(names[count], "typ") == 0)
        rc = scan_wanted(&s, h->typ, sizeof(h->typ), &h->typ_state);
      else {
        h->crit |= strcmp(names[count], "crit") == 0;
        rc = scan_value(&s, 1);
      }
      if (rc != 0)
        return -1;
      count++;
      skip_ws(&s);
      if (s.p < s.end && *s.p == ',') {
        s.p++;
        continue;
      }
      if (s.p >= s.end || *s.p++ != '}')
        return -1;
      break;
    }
  skip_ws(&s);
  return s.p == s.end ? 0 : -1;
}
