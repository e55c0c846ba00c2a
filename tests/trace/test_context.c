/* W3C trace context: traceparent and tracestate, table-driven. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/trace.h>

static int tp(const char *s, msvc_trace_ctx_t *c) {
  return msvc_trace_traceparent_parse(s, strlen(s), c);
}

Test(trace_context, traceparent_valid) {
  msvc_trace_ctx_t c;
  char out[MSVC_TRACE_TRACEPARENT_LEN];

  cr_assert_eq(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", &c), MSVC_OK);
  cr_assert_str_eq(c.trace_id, "0af7651916cd43dd8448eb211c80319c");
  cr_assert_str_eq(c.span_id, "b7ad6b7169203331");
  cr_assert_eq(c.flags, 1);
  cr_assert(c.remote);
  cr_assert_eq(msvc_trace_traceparent_format(&c, out, sizeof(out)), MSVC_OK);
  cr_assert_str_eq(out, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  /* surrounding OWS, a future version with more fields, other flags */
  cr_assert_eq(tp(" \t00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00 ", &c), 0);
  cr_assert_eq(c.flags, 0);
  cr_assert_eq(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-what-ever", &c), 0);
  cr_assert_eq(c.flags, 9);
  cr_assert_eq(msvc_trace_traceparent_format(&c, out, 55), MSVC_ERANGE);
}

Test(trace_context, traceparent_invalid) {
  static const char *bad[] = {
      "",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-011",
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
      "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
      "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333z-01",
  };
  msvc_trace_ctx_t c;
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_eq(tp(bad[i], &c), MSVC_EINVAL, "accepted: %s", bad[i]);
  cr_assert_eq(msvc_trace_traceparent_parse(NULL, 0, &c), MSVC_EINVAL);
}

static int ts(const char *in, char *out, size_t cap) {
  return msvc_trace_tracestate_normalize(in, strlen(in), out, cap);
}

Test(trace_context, tracestate_valid) {
  static const struct {
    const char *in, *out;
  } ok[] = {
      {"foo=bar", "foo=bar"},
      {" foo=bar , ,x@y=1 ", "foo=bar,x@y=1"},
      {"a1_-*/=v", "a1_-*/=v"},
      {"t@sys=a b", "t@sys=a b"},
      {"", ""},
      {",,,", ""},
      {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
  };
  char out[MSVC_TRACE_TRACESTATE_MAX + 1];
  size_t i;

  for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    int n = ts(ok[i].in, out, sizeof(out));
    cr_assert_eq(n, (int)strlen(ok[i].out), "%s -> %d", ok[i].in, n);
    cr_assert_str_eq(out, ok[i].out);
  }
}

Test(trace_context, tracestate_invalid_is_discarded) {
  static const char *bad[] = {
      "foo",        "=bar",        "Foo=bar",     "foo=bar,foo=baz", "foo=b,ar",
      "foo=",       "foo=b r\x7f", "foo=ba\x01r", "@x=1",            "t@Sys=1",
      "t@=1",       "foo=ba=r",    "_foo=1",      "t@abcdefghijklmno=1",
  };
  char out[MSVC_TRACE_TRACESTATE_MAX + 1], many[1024] = "";
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert_eq(ts(bad[i], out, sizeof(out)), MSVC_EINVAL, "kept: %s", bad[i]);
  /* 33 members: over the limit of 32 */
  for (i = 0; i < 33; i++)
    sprintf(many + strlen(many), "%sk%zu=v", i ? "," : "", i);
  cr_assert_eq(ts(many, out, sizeof(out)), MSVC_EINVAL);
  /* 32 are fine */
  *strrchr(many, ',') = '\0';
  cr_assert_gt(ts(many, out, sizeof(out)), 0);
}

Test(trace_context, tracestate_too_long_is_cut) {
  char in[2048], out[MSVC_TRACE_TRACESTATE_MAX + 1], big[200];
  int n;
  size_t i;

  memset(big, 'x', 150);
  big[150] = '\0';
  /* members over 128 bytes go first (from the end), short ones stay */
  snprintf(in, sizeof(in), "a=1,big=%s,b=2,c=%s,d=%s,e=%.120s,f=%.100s", big, big, big, big,
           big);
  n = ts(in, out, sizeof(out));
  cr_assert_gt(n, 0);
  cr_assert_leq(n, MSVC_TRACE_TRACESTATE_MAX);
  cr_assert_eq(strncmp(out, "a=1,big=", 8), 0, "%s", out);
  cr_assert_null(strstr(out, "c="));
  cr_assert_null(strstr(out, "d="));
  cr_assert_not_null(strstr(out, ",e="));
  cr_assert_not_null(strstr(out, ",f="));
  /* then from the end */
  in[0] = '\0';
  for (i = 0; i < 30; i++)
    sprintf(in + strlen(in), "%sk%02zu=%.30s", i ? "," : "", i, big);
  n = ts(in, out, sizeof(out));
  cr_assert_leq(n, MSVC_TRACE_TRACESTATE_MAX);
  cr_assert_eq(strncmp(out, "k00=", 4), 0);
  cr_assert_null(strstr(out, "k29="));
  cr_assert_eq(ts("foo=bar", out, 4), MSVC_ERANGE);
}
