/*
 * W3C Trace Context: traceparent and tracestate. Every function here reads
 * untrusted header bytes, so every read is bounded by the given length and
 * nothing assumes NUL termination.
 */
#include <string.h>

#include <msvc/error.h>
#include <msvc/trace.h>

#include "msvc-internal.h"
#include "trace/trace-internal.h"

static const char hexdigits[] = "0123456789abcdef";

/* Lower-case hex only: the specification rejects upper case, so that one
 * trace never appears under two spellings. */
bool msvc__trace_hex_ok(const char *s, size_t n, bool reject_zero) {
  size_t i;

  if (!msvc__hex_lower_ok(s, n))
    return false;
  if (!reject_zero)
    return true;
  for (i = 0; i < n; i++)
    if (s[i] != '0')
      return true;
  return false;
}

/* A random id that is all zeros is invalid by the specification. Every 16
 * digits of msvc__hex_random() come from one draw of its generator, which
 * is never zero (xorshift64* multiplies a non-zero state by an odd
 * constant), so an id of 16 digits or more cannot be; a shorter one is
 * checked and drawn again. */
void msvc__trace_random_id(char *out, size_t ndigits) {
  static const char zeros[16] = "0000000000000000";

  do
    msvc__hex_random(out, ndigits);
  while (ndigits < sizeof(zeros) && memcmp(out, zeros, ndigits) == 0);
}

/* OWS of the header grammar. */
static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len) {
  while (*len > 0 && is_ows(**s)) {
    (*s)++;
    (*len)--;
  }
  while (*len > 0 && is_ows((*s)[*len - 1]))
    (*len)--;
}

/* Fields of version 00: "vv-" + 32 + "-" + 16 + "-" + 2 = 55 bytes. */
#define TP_LEN 55

int msvc_trace_traceparent_parse(const char *s, size_t len, msvc_trace_ctx_t *out) {
  if (out == NULL || s == NULL)
    return MSVC_EINVAL;
  trim(&s, &len);
  if (len < TP_LEN || !msvc__trace_hex_ok(s, 2, false) || (s[0] == 'f' && s[1] == 'f'))
    return MSVC_EINVAL;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return MSVC_EINVAL;
  if (!msvc__trace_hex_ok(s + 3, 32, true) || !msvc__trace_hex_ok(s + 36, 16, true) ||
      !msvc__trace_hex_ok(s + 53, 2, false))
    return MSVC_EINVAL;
  /* Version 00 has exactly these fields; a later version may append more,
   * always after a dash, and a parser of 00 keeps the part it knows. */
  if ((s[0] == '0' && s[1] == '0') ? len != TP_LEN : (len > TP_LEN && s[TP_LEN] != '-'))
    return MSVC_EINVAL;
  memcpy(out->trace_id, s + 3, 32);
  out->trace_id[32] = '\0';
  memcpy(out->span_id, s + 36, 16);
  out->span_id[16] = '\0';
  out->flags = (uint8_t)(msvc__hex_digit(s[53]) * 16 + msvc__hex_digit(s[54]));
  out->remote = true;
  return MSVC_OK;
}

int msvc_trace_traceparent_format(const msvc_trace_ctx_t *t, char *out, size_t cap) {
  if (t == NULL || out == NULL)
    return MSVC_EINVAL;
  if (!msvc__trace_hex_ok(t->trace_id, 32, true) || t->trace_id[32] != '\0' ||
      !msvc__trace_hex_ok(t->span_id, 16, true) || t->span_id[16] != '\0')
    return MSVC_EINVAL;
  if (cap < MSVC_TRACE_TRACEPARENT_LEN)
    return MSVC_ERANGE;
  memcpy(out, "00-", 3);
  memcpy(out + 3, t->trace_id, 32);
  out[35] = '-';
  memcpy(out + 36, t->span_id, 16);
  out[52] = '-';
  out[53] = hexdigits[t->flags >> 4];
  out[54] = hexdigits[t->flags & 0xf];
  out[55] = '\0';
  return MSVC_OK;
}

/* ---- tracestate ----------------------------------------------------------- */

typedef struct member_s {
  const char *p;
  size_t len;    /* whole "key=value" */
  size_t keylen;
} member_t;

static bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '*' || c == '/';
}

/* key = simple-key / multi-tenant-key
 * simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id, tenant-id = ( lcalpha / DIGIT )
 *   0*240(...), system-id = lcalpha 0*13(...). Level 2 of the specification
 * lets a simple key start with a digit; we accept that too. */
static bool key_ok(const char *k, size_t n) {
  size_t i, at = n;

  if (n == 0 || n > 256)
    return false;
  if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
    return false;
  for (i = 0; i < n; i++) {
    if (k[i] == '@') {
      if (at != n)
        return false;
      at = i;
    } else if (!key_char(k[i])) {
      return false;
    }
  }
  if (at == n)
    return true;
  /* tenant 1..241, system 1..14 starting with a letter */
  return at >= 1 && at <= 241 && n - at - 1 >= 1 && n - at - 1 <= 14 &&
         k[at + 1] >= 'a' && k[at + 1] <= 'z';
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B /
 * %x2D-3C / %x3E-7E */
static bool value_ok(const char *v, size_t n) {
  size_t i;

  if (n == 0 || n > 256 || v[n - 1] == ' ')
    return false;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
      return false;
  }
  return true;
}

static int split_members(const char *s, size_t len, member_t *m, size_t *count) {
  size_t i = 0, n = 0, j, k;

  while (i <= len) {
    size_t start = i, end;
    const char *p;
    size_t plen;

    while (i < len && s[i] != ',')
      i++;
    end = i++;
    p = s + start;
    plen = end - start;
    trim(&p, &plen);
    if (plen == 0)
      continue; /* empty list members are allowed */
    if (n == MSVC_TRACE_TRACESTATE_MEMBERS)
      return MSVC_EINVAL;
    for (k = 0; k < plen && p[k] != '='; k++)
      ;
    if (k == plen || !key_ok(p, k) || !value_ok(p + k + 1, plen - k - 1))
      return MSVC_EINVAL;
    for (j = 0; j < n; j++)
      if (m[j].keylen == k && memcmp(m[j].p, p, k) == 0)
        return MSVC_EINVAL; /* duplicate key */
    m[n].p = p;
    m[n].len = plen;
    m[n].keylen = k;
    n++;
  }
  *count = n;
  return MSVC_OK;
}

static size_t joined_len(const member_t *m, const bool *keep, size_t n) {
  size_t i, total = 0, kept = 0;

  for (i = 0; i < n; i++)
    if (keep[i]) {
      total += m[i].len;
      kept++;
    }
  return total + (kept > 0 ? kept - 1 : 0);
}

int msvc_trace_tracestate_normalize(const char *s, size_t len, char *out, size_t cap) {
  member_t m[MSVC_TRACE_TRACESTATE_MEMBERS];
  bool keep[MSVC_TRACE_TRACESTATE_MEMBERS];
  size_t n = 0, i, total, w = 0;
  int rc;

  if (s == NULL || out == NULL)
    return MSVC_EINVAL;
  /* A header far beyond 32 members of the longest form is not worth a
   * scan: discard it. */
  if (len > MSVC_TRACE_TRACESTATE_MEMBERS * 520)
    return MSVC_EINVAL;
  if ((rc = split_members(s, len, m, &n)) != MSVC_OK)
    return rc;
  for (i = 0; i < n; i++)
    keep[i] = true;
  /* Too long: members over 128 bytes go first, then from the end. */
  for (i = n; i-- > 0 && joined_len(m, keep, n) > MSVC_TRACE_TRACESTATE_MAX;)
    if (m[i].len > 128)
      keep[i] = false;
  for (i = n; i-- > 0 && joined_len(m, keep, n) > MSVC_TRACE_TRACESTATE_MAX;)
    keep[i] = false;
  total = joined_len(m, keep, n);
  if (cap < total + 1)
    return MSVC_ERANGE;
  for (i = 0; i < n; i++) {
    if (!keep[i])
      continue;
    if (w > 0)
      out[w++] = ',';
    memcpy(out + w, m[i].p, m[i].len);
    w += m[i].len;
  }
  out[w] = '\0';
  return (int)w;
}
