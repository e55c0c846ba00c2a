/*
 * Pure parts of the context middlewares: request id validation, W3C
 * traceparent parsing and formatting, id generation. Everything here takes
 * untrusted header bytes, so every read is bounded by the given length and
 * nothing assumes NUL termination.
 */
#include <msvc/middleware.h>

#include "msvc-internal.h"
#include "service/mw-internal.h"

bool msvc_mw_request_id_valid(const char *s, size_t len) {
  size_t i;

  if (s == NULL || len == 0 || len > MSVC_MW_REQUEST_ID_MAX)
    return false;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e)
      return false;
  }
  return true;
}

static const char hexdigits[] = "0123456789abcdef";

/* Eight lower-case hex digits of v at once: each nibble spread into a byte
 * of its own, then '0' added, and 'a' - '0' - 10 more where it is 10 or
 * above. The digits come out in byte order, not in the order of v's
 * nibbles, which for random digits makes no difference. */
static void hex8(char *out, uint32_t v) {
  uint64_t x = v;

  x = (x | x << 16) & UINT64_C(0x0000ffff0000ffff);
  x = (x | x << 8) & UINT64_C(0x00ff00ff00ff00ff);
  x = (x | x << 4) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  x += UINT64_C(0x3030303030303030) +
       (((x + UINT64_C(0x0606060606060606)) >> 4) & UINT64_C(0x0101010101010101)) *
           ('a' - '0' - 10);
  memcpy(out, &x, 8);
}

void msvc__mw_hex_random(char *out, size_t ndigits) {
  char d[16];
  size_t i;

  for (i = 0; i < ndigits; i += 16) {
    uint64_t r = msvc__rand64();

    if (ndigits - i >= 16) { /* straight into out: no copy to stall on */
      hex8(out + i, (uint32_t)r);
      hex8(out + i + 8, (uint32_t)(r >> 32));
    } else {
      hex8(d, (uint32_t)r);
      hex8(d + 8, (uint32_t)(r >> 32));
      memcpy(out + i, d, ndigits - i);
    }
  }
  out[ndigits] = '\0';
}

/* Lower-case hex only: the specification rejects upper case, so that one
 * trace never appears under two spellings. */
static bool is_lhex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool hex_field(const char *s, size_t n, bool reject_zero) {
  size_t i;
  bool nonzero = false;

  for (i = 0; i < n; i++) {
    if (!is_lhex(s[i]))
      return false;
    nonzero = nonzero || s[i] != '0';
  }
  return nonzero || !reject_zero;
}

static int hexval(char c) {
  return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Fields of version 00: "vv-" + 32 + "-" + 16 + "-" + 2 = 55 bytes. */
#define TP_LEN 55

static void trim(const char **s, size_t *len) {
  while (*len > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*len)--;
  }
  while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
    (*len)--;
}

int msvc_mw_traceparent_parse(const char *s, size_t len, msvc_mw_trace_t *out) {
  if (out == NULL || s == NULL)
    return MSVC_EINVAL;
  trim(&s, &len);
  if (len < TP_LEN || !hex_field(s, 2, false) || (s[0] == 'f' && s[1] == 'f'))
    return MSVC_EINVAL;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return MSVC_EINVAL;
  if (!hex_field(s + 3, 32, true) || !hex_field(s + 36, 16, true) ||
      !hex_field(s + 53, 2, false))
    return MSVC_EINVAL;
  /* Version 00 has exactly these fields; a later version may append more,
   * always after a dash, and a parser of 00 keeps the part it knows. */
  if ((s[0] == '0' && s[1] == '0') ? len != TP_LEN
                                    : (len > TP_LEN && s[TP_LEN] != '-'))
    return MSVC_EINVAL;
  memcpy(out->trace_id, s + 3, 32);
  out->trace_id[32] = '\0';
  memcpy(out->parent_id, s + 36, 16);
  out->parent_id[16] = '\0';
  out->span_id[0] = '\0';
  out->flags = (uint8_t)(hexval(s[53]) * 16 + hexval(s[54]));
  return MSVC_OK;
}

/* A random id that is all zeros is invalid by the specification; with 64
 * random bits per draw a second draw is practically never needed. The
 * digits are hex by construction: only zero is checked, without a branch
 * per digit (which way it goes is random, so mostly mispredicted). */
static void random_nonzero(char *out, size_t ndigits) {
  unsigned char any;
  size_t i;

  do {
    msvc__mw_hex_random(out, ndigits);
    for (i = 0, any = 0; i < ndigits; i++)
      any |= (unsigned char)(out[i] ^ '0');
  } while (any == 0);
}

int msvc_mw_trace_child(const msvc_mw_trace_t *parent, msvc_mw_trace_t *out) {
  msvc_mw_trace_t t;

  if (out == NULL)
    return MSVC_EINVAL;
  memset(&t, 0, sizeof(t));
  if (parent != NULL && hex_field(parent->trace_id, 32, true) &&
      parent->trace_id[32] == '\0') {
    memcpy(t.trace_id, parent->trace_id, sizeof(t.trace_id));
    /* The caller's span is this hop's parent. When parent is a context that
     * already has its own span (a child of a child), that span is the
     * parent instead. */
    if (parent->span_id[0] != '\0')
      memcpy(t.parent_id, parent->span_id, sizeof(t.parent_id));
    else
      memcpy(t.parent_id, parent->parent_id, sizeof(t.parent_id));
    t.parent_id[16] = '\0';
    t.flags = parent->flags;
  } else {
    random_nonzero(t.trace_id, 32);
  }
  random_nonzero(t.span_id, 16);
  *out = t;
  return MSVC_OK;
}

int msvc_mw_traceparent_format(const msvc_mw_trace_t *t, char *out, size_t cap) {
  if (t == NULL || out == NULL)
    return MSVC_EINVAL;
  if (!hex_field(t->trace_id, 32, true) || t->trace_id[32] != '\0' ||
      !hex_field(t->span_id, 16, true) || t->span_id[16] != '\0')
    return MSVC_EINVAL;
  if (cap < MSVC_MW_TRACEPARENT_LEN)
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
