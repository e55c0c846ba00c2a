/*
 * Status codes and their mapping, grpc-timeout, grpc-message escaping and
 * metadata (with base64 for -bin keys).
 */
#include <stdio.h>
#include <string.h>

#include "grpc-internal.h"

static const char *const code_names[] = {
    "OK",           "CANCELLED",          "UNKNOWN",      "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",  "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *msvc_grpc_code_name(int code) {
  if (code < 0 || code > MSVC_GRPC_UNAUTHENTICATED)
    return "UNKNOWN";
  return code_names[code];
}

msvc_grpc_code_t msvc_grpc_code_from_error(int err) {
  switch (err) {
  case MSVC_OK:
    return MSVC_GRPC_OK;
  case MSVC_ENO_ENDPOINTS:
  case MSVC_EBREAKER_OPEN:
  case MSVC_EUPSTREAM_UNAVAILABLE:
  case MSVC_ECONNREFUSED:
  case MSVC_ECONNRESET:
  case MSVC_ECONNABORTED:
  case MSVC_EPIPE:
  case MSVC_ENOTCONN:
  case MSVC_EHTTP_DNS:
  case MSVC_EHTTP_SHUTTING_DOWN:
  case MSVC_ECLOSED:
  case MSVC_ERETRY_BUDGET:
  case MSVC_EREGISTRY_UNAVAILABLE:
    return MSVC_GRPC_UNAVAILABLE;
  case MSVC_ETIMEDOUT:
  case MSVC_EUPSTREAM_TIMEOUT:
    return MSVC_GRPC_DEADLINE_EXCEEDED;
  case MSVC_EWORK_FULL:
  case MSVC_ELIMIT:
  case MSVC_ETOOLARGE:
  case MSVC_EHTTP_POOL_FULL:
  case MSVC_EHTTP_BODY_TOO_LARGE:
  case MSVC_EHTTP_HEADERS_TOO_LARGE:
  case MSVC_EMSGSIZE:
    return MSVC_GRPC_RESOURCE_EXHAUSTED;
  case MSVC_ECANCELED:
    return MSVC_GRPC_CANCELLED;
  case MSVC_EINVAL:
  case MSVC_EJSON:
    return MSVC_GRPC_INVALID_ARGUMENT;
  case MSVC_ENOTFOUND:
  case MSVC_ENOENT:
    return MSVC_GRPC_NOT_FOUND;
  case MSVC_EACCES:
    return MSVC_GRPC_PERMISSION_DENIED;
  case MSVC_EJWT_MALFORMED:
  case MSVC_EJWT_EXPIRED:
  case MSVC_EJWT_NOT_YET_VALID:
  case MSVC_EJWT_BAD_SIGNATURE:
  case MSVC_EJWT_BAD_ISSUER:
  case MSVC_EJWT_BAD_AUDIENCE:
  case MSVC_EJWT_UNKNOWN_KID:
  case MSVC_EJWT_ALG_NOT_ALLOWED:
  case MSVC_EJWT_MISSING_CLAIM:
    return MSVC_GRPC_UNAUTHENTICATED;
  case MSVC_ENOTSUP:
    return MSVC_GRPC_UNIMPLEMENTED;
  case MSVC_EPROTO:
  case MSVC_EHTTP_PARSE:
  case MSVC_EHTTP_BAD_RESPONSE:
  case MSVC_ENOMEM:
    return MSVC_GRPC_INTERNAL;
  default:
    return MSVC_GRPC_UNKNOWN;
  }
}

msvc_grpc_code_t msvc_grpc_code_from_http(int status) {
  switch (status) {
  case 400:
    return MSVC_GRPC_INTERNAL;
  case 401:
    return MSVC_GRPC_UNAUTHENTICATED;
  case 403:
    return MSVC_GRPC_PERMISSION_DENIED;
  case 404:
    return MSVC_GRPC_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return MSVC_GRPC_UNAVAILABLE;
  default:
    return MSVC_GRPC_UNKNOWN;
  }
}

/* ---- grpc-timeout ----------------------------------------------------------------------- */

int msvc__grpc_timeout_parse(const char *s, size_t len, uint64_t *ms) {
  uint64_t v = 0, unit_ns;
  size_t i;

  if (len < 2 || len > 9)
    return MSVC_EINVAL;
  for (i = 0; i + 1 < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return MSVC_EINVAL;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  switch (s[len - 1]) {
  case 'H': *ms = v * 3600000u; return MSVC_OK;
  case 'M': *ms = v * 60000u; return MSVC_OK;
  case 'S': *ms = v * 1000u; return MSVC_OK;
  case 'm': *ms = v; return MSVC_OK;
  case 'u': unit_ns = 1000; break;
  case 'n': unit_ns = 1; break;
  default: return MSVC_EINVAL;
  }
  /* Rounded up: a deadline of 500 us is 1 ms, never "no time at all". */
  *ms = (v * unit_ns + 999999u) / 1000000u;
  return MSVC_OK;
}

void msvc__grpc_timeout_format(uint64_t ms, char out[16]) {
  /* At most 8 digits: milliseconds while they fit, then coarser units
   * (rounded up, never giving the callee less time than the caller has). */
  if (ms < 100000000u)
    snprintf(out, 16, "%llum", (unsigned long long)ms);
  else if (ms / 1000 < 100000000u)
    snprintf(out, 16, "%lluS", (unsigned long long)((ms + 999) / 1000));
  else if (ms / 60000 < 100000000u)
    snprintf(out, 16, "%lluM", (unsigned long long)((ms + 59999) / 60000));
  else
    snprintf(out, 16, "%lluH", (unsigned long long)(ms / 3600000 < 99999999u
                                                        ? (ms + 3599999) / 3600000
                                                        : 99999999u));
}

/* ---- grpc-message ----------------------------------------------------------------------- */

int msvc__grpc_pct_encode(msvc__buf_t *out, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];

    if (c >= 0x20 && c <= 0x7e && c != '%') {
      msvc__buf_putc(out, (char)c);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};

      msvc__buf_append(out, e, 3);
    }
  }
  if (len == 0)
    msvc__buf_reserve(out, 0);
  return out->err;
}

int msvc__grpc_pct_decode(msvc__buf_t *out, const char *s, size_t len) {
  size_t i;

  msvc__buf_reserve(out, len);
  for (i = 0; i < len; i++) {
    int hi, lo;

    if (s[i] == '%' && i + 2 < len && (hi = msvc__hex_digit(s[i + 1])) >= 0 &&
        (lo = msvc__hex_digit(s[i + 2])) >= 0) {
      msvc__buf_putc(out, (char)(hi * 16 + lo));
      i += 2;
    } else {
      msvc__buf_putc(out, s[i]);
    }
  }
  return out->err;
}

/* ---- base64 ------------------------------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int msvc__grpc_b64_encode(msvc__buf_t *out, const void *data, size_t len) {
  const uint8_t *p = data;
  size_t i;

  msvc__buf_reserve(out, (len + 2) / 3 * 4);
  for (i = 0; i + 2 < len; i += 3) {
    char q[4] = {b64[p[i] >> 2], b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                 b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], b64[p[i + 2] & 63]};

    msvc__buf_append(out, q, 4);
  }
  if (len - i == 1) {
    char q[4] = {b64[p[i] >> 2], b64[(p[i] & 3) << 4], '=', '='};

    msvc__buf_append(out, q, 4);
  } else if (len - i == 2) {
    char q[4] = {b64[p[i] >> 2], b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                 b64[(p[i + 1] & 15) << 2], '='};

    msvc__buf_append(out, q, 4);
  }
  return out->err;
}

static int b64val(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

int msvc__grpc_b64_decode(msvc__buf_t *out, const char *s, size_t len) {
  uint32_t acc = 0;
  int bits = 0;
  size_t i;

  while (len > 0 && s[len - 1] == '=')
    len--;
  msvc__buf_reserve(out, len * 3 / 4 + 1);
  for (i = 0; i < len; i++) {
    int v = b64val(s[i]);

    if (v < 0)
      return MSVC_EINVAL;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      msvc__buf_putc(out, (char)((acc >> bits) & 0xff));
    }
  }
  if (bits >= 6) /* a lone sixth of a byte is not base64 */
    return MSVC_EINVAL;
  return out->err;
}

/* ---- metrics ---------------------------------------------------------------------------- */

int msvc__grpc_family(msvc_metrics_registry_t *reg, const char *name, const char *help,
                      msvc_metrics_family_t **out) {
  static const char *const labels[] = {"service", "method", "code"};
  msvc_metrics_family_opts_t o;

  msvc_metrics_family_opts_init(&o);
  o.name = name;
  o.help = help;
  o.label_names = labels;
  o.label_count = 3;
  return msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &o, out);
}

void msvc__grpc_count(msvc__grpc_counted_t *c, int code) {
  msvc_metrics_counter_t *ctr;

  if (c == NULL || c->fam == NULL || code < 0 || code >= MSVC__GRPC_CODES)
    return;
  ctr = atomic_load(&c->by_code[code]);
  if (ctr == NULL) {
    const char *values[3] = {c->service, c->method, msvc_grpc_code_name(code)};

    if (msvc_metrics_counter_get(c->fam, values, 3, &ctr) != MSVC_OK)
      return;
    atomic_store(&c->by_code[code], ctr);
  }
  msvc_metrics_counter_inc(ctr);
}
