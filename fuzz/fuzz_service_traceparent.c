/*
 * Untrusted header values through the traceparent parser and the request id
 * check. Whatever the parser accepts must hold well-formed ids, must agree
 * with a second, deliberately naive reading of the same bytes, and must give
 * a child context that formats and parses back to the same trace. The
 * request id check must agree with its definition byte by byte. The same
 * bytes go through the tracestate normaliser: whatever it keeps must fit the
 * limits, contain no blank around members, and normalise to itself again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/middleware.h>
#include <msvc/trace.h>

static void fail(const char *why) {
  fprintf(stderr, "traceparent fuzz: %s\n", why);
  abort();
}

static int lhex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int hex_nonzero(const char *s, size_t n) {
  size_t i;
  int nz = 0;

  for (i = 0; i < n; i++) {
    if (!lhex(s[i]))
      return 0;
    nz |= s[i] != '0';
  }
  return nz && s[n] == '\0';
}

static void check_request_id(const uint8_t *d, size_t n) {
  size_t i;
  int want = n > 0 && n <= MSVC_MW_REQUEST_ID_MAX;

  for (i = 0; i < n && want; i++)
    want = d[i] >= 0x21 && d[i] <= 0x7e;
  if (msvc_mw_request_id_valid((const char *)d, n) != (want != 0))
    fail("request id check disagrees with its definition");
}

/* The fields of a version-00 header sit at fixed offsets once surrounding
 * blanks are gone; the parser's result must match them. */
static void check_fields(const uint8_t *d, size_t n, const msvc_mw_trace_t *t) {
  size_t b = 0;

  while (b < n && (d[b] == ' ' || d[b] == '\t'))
    b++;
  if (n - b < 55 || d[b + 2] != '-' || d[b + 35] != '-' || d[b + 52] != '-')
    fail("accepted a value without the fixed layout");
  if (d[b] == 'f' && d[b + 1] == 'f')
    fail("accepted version ff");
  if (memcmp(t->trace_id, d + b + 3, 32) != 0 || memcmp(t->parent_id, d + b + 36, 16) != 0)
    fail("ids do not match the input");
}

static void check_tracestate(const uint8_t *d, size_t n) {
  char out[MSVC_TRACE_TRACESTATE_MAX + 1], again[MSVC_TRACE_TRACESTATE_MAX + 1];
  int len = msvc_trace_tracestate_normalize((const char *)d, n, out, sizeof(out));
  int members = 1, i;

  if (len < 0) {
    if (len != MSVC_EINVAL)
      fail("tracestate: unexpected error with a big enough buffer");
    return;
  }
  if ((size_t)len > MSVC_TRACE_TRACESTATE_MAX || out[len] != '\0' || strlen(out) != (size_t)len)
    fail("tracestate: kept value over the limit or not terminated");
  for (i = 0; i < len; i++) {
    if (out[i] == ',') {
      members++;
      if (i == 0 || out[i - 1] == ' ' || out[i + 1] == ' ' || out[i + 1] == ',' ||
          i + 1 == len)
        fail("tracestate: blank or empty member kept");
    }
    if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
      fail("tracestate: kept a byte outside the grammar");
  }
  if (len > 0 && members > MSVC_TRACE_TRACESTATE_MEMBERS)
    fail("tracestate: more than 32 members kept");
  if (msvc_trace_tracestate_normalize(out, (size_t)len, again, sizeof(again)) != len ||
      memcmp(out, again, (size_t)len) != 0)
    fail("tracestate: normalising twice changes the value");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_mw_trace_t t, hop, back;
  char out[MSVC_MW_TRACEPARENT_LEN];

  check_request_id(data, size);
  check_tracestate(data, size);
  /* The parser must never read past size: libFuzzer's buffer ends there. */
  if (msvc_mw_traceparent_parse((const char *)data, size, &t) != MSVC_OK)
    return 0;
  if (!hex_nonzero(t.trace_id, 32) || !hex_nonzero(t.parent_id, 16) || t.span_id[0] != '\0')
    fail("accepted ids are malformed");
  check_fields(data, size, &t);
  if (msvc_mw_trace_child(&t, &hop) != MSVC_OK || strcmp(hop.trace_id, t.trace_id) != 0 ||
      strcmp(hop.parent_id, t.parent_id) != 0 || hop.flags != t.flags)
    fail("child lost the trace");
  if (msvc_mw_traceparent_format(&hop, out, sizeof(out)) != MSVC_OK)
    fail("cannot format a child");
  if (msvc_mw_traceparent_parse(out, strlen(out), &back) != MSVC_OK ||
      strcmp(back.trace_id, hop.trace_id) != 0 || strcmp(back.parent_id, hop.span_id) != 0 ||
      back.flags != hop.flags)
    fail("formatted value does not parse back");
  return 0;
}
