/* The OTLP protobuf encoding, read back by a small wire-format reader of the
 * test's own (varints, fixed-width and length-delimited fields, nothing
 * generated), with an injected clock and no exporter thread. The exporter
 * tests and the propagation test check the same bytes against the
 * OpenTelemetry definitions. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/trace.h>

#include "msvc-internal.h"
#include "trace/trace-internal.h"

/* ---- a minimal reader -------------------------------------------------- */

typedef struct {
  const unsigned char *p, *end;
} rd_t;

typedef struct {
  unsigned field, wt;
  uint64_t v;                 /* varint, fixed32 or fixed64 */
  const unsigned char *bytes; /* length-delimited */
  size_t len;
} fld_t;

static uint64_t varint(rd_t *r) {
  uint64_t v = 0;
  unsigned shift = 0;

  for (;;) {
    cr_assert_lt(r->p, r->end, "truncated varint");
    cr_assert_lt(shift, 64u);
    unsigned char c = *r->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80) {
      /* the shortest form: a last byte of 0 only for the value 0 */
      cr_assert(c != 0 || shift == 0, "non-minimal varint");
      return v;
    }
    shift += 7;
  }
}

static uint64_t fixed(rd_t *r, size_t n) {
  uint64_t v = 0;

  cr_assert_leq((size_t)(r->end - r->p), (size_t)r->end, "");
  cr_assert_geq((size_t)(r->end - r->p), n, "truncated fixed field");
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

static bool next(rd_t *r, fld_t *f) {
  uint64_t tag;

  if (r->p == r->end)
    return false;
  tag = varint(r);
  f->field = (unsigned)(tag >> 3);
  f->wt = (unsigned)(tag & 7);
  cr_assert_gt(f->field, 0u);
  switch (f->wt) {
  case 0: f->v = varint(r); break;
  case 1: f->v = fixed(r, 8); break;
  case 5: f->v = fixed(r, 4); break;
  case 2:
    f->len = (size_t)varint(r);
    cr_assert_leq(f->len, (size_t)(r->end - r->p), "length past the end");
    f->bytes = r->p;
    r->p += f->len;
    break;
  default: cr_assert_fail("wire type %u", f->wt);
  }
  return true;
}

static rd_t sub(const fld_t *f) {
  cr_assert_eq(f->wt, 2u, "field %u is not length-delimited", f->field);
  return (rd_t){f->bytes, f->bytes + f->len};
}

static bool str_is(const fld_t *f, const char *s) {
  return f->wt == 2 && f->len == strlen(s) && memcmp(f->bytes, s, f->len) == 0;
}

static void hex(const fld_t *f, char *out) {
  for (size_t i = 0; i < f->len; i++)
    sprintf(out + 2 * i, "%02x", f->bytes[i]);
}

/* One attribute as "key=type:value" (s, i, b, d). */
static void kv_text(const fld_t *kvf, char *out, size_t cap) {
  rd_t kv = sub(kvf), any;
  fld_t f, v;
  char key[128] = "";
  double d;

  cr_assert(next(&kv, &f));
  cr_assert_eq(f.field, 1u);
  snprintf(key, sizeof(key), "%.*s", (int)f.len, (const char *)f.bytes);
  cr_assert(next(&kv, &f));
  cr_assert_eq(f.field, 2u);
  cr_assert_not(next(&kv, &v));
  any = sub(&f);
  cr_assert(next(&any, &v));
  cr_assert_not(next(&any, &f), "one value");
  switch (v.field) {
  case 1: snprintf(out, cap, "%s=s:%.*s", key, (int)v.len, (const char *)v.bytes); break;
  case 2: snprintf(out, cap, "%s=b:%d", key, (int)v.v); break;
  case 3: snprintf(out, cap, "%s=i:%lld", key, (long long)(int64_t)v.v); break;
  case 4:
    memcpy(&d, &v.v, sizeof(d));
    snprintf(out, cap, "%s=d:%g", key, d);
    break;
  default: cr_assert_fail("AnyValue field %u", v.field);
  }
}

/* ---- fixtures ------------------------------------------------------------ */

static uint64_t fake_now;
static uint64_t fake_clock(void *data) {
  (void)data;
  return fake_now;
}

static msvc_tracer_t *tracer(void) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;

  msvc_tracer_opts_init(&o);
  cr_assert_eq(o.protocol, MSVC_OTLP_HTTP_PROTOBUF, "protobuf by default");
  o.service_name = "svc";
  o.service_version = "1.2.3";
  o.instance_id = "inst-1";
  o.resource_attrs = "deployment.environment=prod,service.name=ignored";
  o.clock = fake_clock;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  return t;
}

typedef struct {
  char trace_id[33], span_id[17], parent[17];
  char name[128];
  int kind, status, flags_seen;
  uint32_t flags;
  uint64_t start, end;
  char attrs[MSVC_TRACE_MAX_ATTRS][160];
  int nattrs;
  uint32_t dropped_attrs, dropped_events;
  char events[MSVC_TRACE_MAX_EVENTS][200];
  int nevents;
  char status_msg[64];
} span_t;

static void read_span(const fld_t *sf, span_t *s) {
  rd_t r = sub(sf);
  fld_t f;
  unsigned last = 0;

  memset(s, 0, sizeof(*s));
  while (next(&r, &f)) {
    /* field number order, flags (16) right after parent_span_id (4) */
    unsigned rank = f.field == 16 ? 4 : f.field;
    cr_assert_geq(rank, last, "field %u out of order", f.field);
    last = rank;
    switch (f.field) {
    case 1: cr_assert_eq(f.len, 16u); hex(&f, s->trace_id); break;
    case 2: cr_assert_eq(f.len, 8u); hex(&f, s->span_id); break;
    case 4: cr_assert_eq(f.len, 8u); hex(&f, s->parent); break;
    case 16:
      cr_assert_eq(f.wt, 5u);
      s->flags = (uint32_t)f.v;
      s->flags_seen++;
      break;
    case 5: snprintf(s->name, sizeof(s->name), "%.*s", (int)f.len, (const char *)f.bytes); break;
    case 6: cr_assert_eq(f.wt, 0u); s->kind = (int)f.v; break;
    case 7: cr_assert_eq(f.wt, 1u); s->start = f.v; break;
    case 8: cr_assert_eq(f.wt, 1u); s->end = f.v; break;
    case 9: cr_assert_lt(s->nattrs, MSVC_TRACE_MAX_ATTRS); kv_text(&f, s->attrs[s->nattrs++], sizeof(s->attrs[0])); break;
    case 10: s->dropped_attrs = (uint32_t)f.v; break;
    case 11: {
      cr_assert_lt(s->nevents, MSVC_TRACE_MAX_EVENTS);
      rd_t e = sub(&f);
      fld_t g;
      char *out = s->events[s->nevents++];
      uint64_t time = 0;
      char name[64] = "", msg[96] = "";
      while (next(&e, &g)) {
        if (g.field == 1) time = g.v;
        else if (g.field == 2) snprintf(name, sizeof(name), "%.*s", (int)g.len, (const char *)g.bytes);
        else if (g.field == 3) kv_text(&g, msg, sizeof(msg));
        else cr_assert_fail("Event field %u", g.field);
      }
      snprintf(out, sizeof(s->events[0]), "%llu %s %s", (unsigned long long)time, name, msg);
      break;
    }
    case 12: s->dropped_events = (uint32_t)f.v; break;
    case 15: {
      rd_t st = sub(&f);
      fld_t g;
      while (next(&st, &g)) {
        if (g.field == 2) snprintf(s->status_msg, sizeof(s->status_msg), "%.*s", (int)g.len, (const char *)g.bytes);
        else if (g.field == 3) s->status = (int)g.v;
        else cr_assert_fail("Status field %u", g.field);
      }
      break;
    }
    default: cr_assert_fail("Span field %u", f.field);
    }
  }
}

/* Walks the request; checks the resource and scope; returns the spans. */
static int read_request(const msvc__buf_t *b, size_t start, span_t *out, int cap,
                        char res[][160], int *nres) {
  rd_t r = {(const unsigned char *)b->data + start, (const unsigned char *)b->data + b->len};
  rd_t rs, ss;
  fld_t f, g, h;
  int n = 0;

  cr_assert(next(&r, &f));
  cr_assert_eq(f.field, 1u, "resource_spans");
  cr_assert_not(next(&r, &g), "one ResourceSpans");
  rs = sub(&f);
  cr_assert(next(&rs, &f));
  cr_assert_eq(f.field, 1u, "resource");
  {
    rd_t res_r = sub(&f);
    *nres = 0;
    while (next(&res_r, &g)) {
      cr_assert_eq(g.field, 1u, "Resource.attributes");
      kv_text(&g, res[(*nres)++], 160);
    }
  }
  cr_assert(next(&rs, &f));
  cr_assert_eq(f.field, 2u, "scope_spans");
  cr_assert_not(next(&rs, &g), "one ScopeSpans");
  ss = sub(&f);
  cr_assert(next(&ss, &f));
  cr_assert_eq(f.field, 1u, "scope");
  {
    rd_t sc = sub(&f);
    cr_assert(next(&sc, &g));
    cr_assert(str_is(&g, "libmsvc") && g.field == 1);
    cr_assert(next(&sc, &h));
    cr_assert_eq(h.field, 2u, "scope version");
    cr_assert_not(next(&sc, &g));
  }
  while (next(&ss, &f)) {
    cr_assert_eq(f.field, 2u, "spans");
    cr_assert_lt(n, cap);
    read_span(&f, &out[n++]);
  }
  return n;
}

static bool has(char list[][160], int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0)
      return true;
  return false;
}

/* ---- tests ---------------------------------------------------------------- */

Test(trace_encode_pb, every_field_of_a_span) {
  msvc_tracer_t *t = tracer();
  msvc_trace_ctx_t p = {"0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1, true};
  msvc_span_t *s;
  msvc__buf_t b;
  span_t out[2];
  char res[16][160];
  size_t start;
  int nres, i;

  fake_now = 1700000000123456789ull;
  cr_assert_eq(msvc_trace_span_start(t, "GET /users/:id", MSVC_SPAN_SERVER, &p, &s), 0);
  msvc_trace_span_set_str(s, "http.route", "/users/:id");
  msvc_trace_span_set_int(s, "http.response.status_code", -5);
  msvc_trace_span_set_int(s, "big", INT64_MAX);
  msvc_trace_span_set_bool(s, "b", true);
  msvc_trace_span_set_bool(s, "f", false);
  msvc_trace_span_set_double(s, "d", 0.5);
  msvc_trace_span_set_str(s, "empty", "");
  msvc_trace_span_set_str(s, "utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* one bad byte, a truncated sequence, an overlong, a surrogate */
  msvc_trace_span_set_str(s, "bad", "a\xff" "b\xe2\x82" "c\xc0\xaf" "d\xed\xa0\x80");
  fake_now += 1000;
  msvc_trace_span_add_event(s, "retry", "status 503");
  msvc_trace_span_add_event(s, "plain", NULL);
  fake_now += 1000;
  msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, "bad\nthing");
  s->end_ns = fake_now;
  msvc__buf_init(&b, 0);
  cr_assert_eq(msvc__trace_encode_pb(t, &s, 1, &b, &start), MSVC_OK);
  cr_assert_eq(read_request(&b, start, out, 2, res, &nres), 1);

  cr_assert(has(res, nres, "service.name=s:svc"));
  cr_assert(has(res, nres, "service.version=s:1.2.3"));
  cr_assert(has(res, nres, "service.instance.id=s:inst-1"));
  cr_assert(has(res, nres, "telemetry.sdk.language=s:c"));
  cr_assert(has(res, nres, "deployment.environment=s:prod"));
  for (i = 0; i < nres; i++)
    cr_assert_null(strstr(res[i], "ignored"));

  cr_assert_str_eq(out[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
  cr_assert_str_eq(out[0].span_id, s->ctx.span_id);
  cr_assert_str_eq(out[0].parent, "b7ad6b7169203331");
  cr_assert_eq(out[0].flags_seen, 1);
  cr_assert_eq(out[0].flags, 0x301u, "sampled, remote parent");
  cr_assert_str_eq(out[0].name, "GET /users/:id");
  cr_assert_eq(out[0].kind, 2);
  cr_assert_eq(out[0].start, 1700000000123456789ull);
  cr_assert_eq(out[0].end, 1700000000123458789ull);
  cr_assert_eq(out[0].nattrs, 9);
  cr_assert(has(out[0].attrs, 9, "http.route=s:/users/:id"));
  cr_assert(has(out[0].attrs, 9, "http.response.status_code=i:-5"));
  cr_assert(has(out[0].attrs, 9, "big=i:9223372036854775807"));
  cr_assert(has(out[0].attrs, 9, "b=b:1"));
  cr_assert(has(out[0].attrs, 9, "f=b:0"));
  cr_assert(has(out[0].attrs, 9, "d=d:0.5"));
  cr_assert(has(out[0].attrs, 9, "empty=s:"));
  cr_assert(has(out[0].attrs, 9, "utf8=s:caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
#define R "\xef\xbf\xbd"
  cr_assert(has(out[0].attrs, 9, "bad=s:a" R "b" R R "c" R R "d" R R R), "%s", out[0].attrs[8]);
#undef R
  cr_assert_eq(out[0].nevents, 2);
  cr_assert_str_eq(out[0].events[0], "1700000000123457789 retry message=s:status 503");
  cr_assert_str_eq(out[0].events[1], "1700000000123457789 plain ");
  cr_assert_eq(out[0].status, 2);
  cr_assert_str_eq(out[0].status_msg, "bad\nthing");
  msvc__buf_free(&b);
  msvc__trace_span_free(s);
  msvc_tracer_free(t);
}

Test(trace_encode_pb, roots_drops_and_a_batch) {
  msvc_tracer_t *t = tracer();
  msvc_span_t *s[3];
  msvc__buf_t b;
  span_t out[3];
  char res[16][160], key[16];
  size_t start;
  int nres, i;

  fake_now = 1;
  cr_assert_eq(msvc_trace_span_start(t, "root", MSVC_SPAN_INTERNAL, NULL, &s[0]), 0);
  cr_assert_eq(msvc_trace_span_start(t, "child", MSVC_SPAN_CLIENT, msvc_trace_span_ctx(s[0]),
                                     &s[1]), 0);
  cr_assert_eq(msvc_trace_span_start(t, "many", MSVC_SPAN_CONSUMER, NULL, &s[2]), 0);
  /* the inline attributes, then the heap, then drops */
  for (i = 0; i < MSVC_TRACE_MAX_ATTRS + 3; i++) {
    snprintf(key, sizeof(key), "k%d", i);
    msvc_trace_span_set_int(s[2], key, (int64_t)1 << (i % 63));
  }
  for (i = 0; i < MSVC_TRACE_MAX_EVENTS + 2; i++)
    msvc_trace_span_add_event(s[2], "e", i % 2 ? "m" : NULL);
  msvc_trace_span_set_status(s[1], MSVC_SPAN_STATUS_OK, NULL);
  for (i = 0; i < 3; i++)
    s[i]->end_ns = 2 + (uint64_t)i;
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "xx"); /* appends after what is there */
  cr_assert_eq(msvc__trace_encode_pb(t, s, 3, &b, &start), MSVC_OK);
  cr_assert_geq(start, 2u);
  cr_assert_eq(memcmp(b.data, "xx", 2), 0);
  cr_assert_eq(read_request(&b, start, out, 3, res, &nres), 3);
  cr_assert_str_eq(out[0].name, "root");
  cr_assert_str_eq(out[0].parent, "", "a root has no parent_span_id");
  cr_assert_eq(out[0].flags, 0x101u, "sampled, parent not remote");
  cr_assert_eq(out[0].status, 0);
  cr_assert_str_eq(out[1].parent, out[0].span_id);
  cr_assert_str_eq(out[1].trace_id, out[0].trace_id);
  cr_assert_eq(out[1].flags, 0x101u, "a local parent");
  cr_assert_eq(out[1].kind, 3);
  cr_assert_eq(out[1].status, 1);
  cr_assert_eq(out[2].kind, 5);
  cr_assert_eq(out[2].nattrs, MSVC_TRACE_MAX_ATTRS);
  cr_assert_eq(out[2].dropped_attrs, 3);
  cr_assert(has(out[2].attrs, out[2].nattrs, "k31=i:2147483648"));
  cr_assert_eq(out[2].nevents, MSVC_TRACE_MAX_EVENTS);
  cr_assert_eq(out[2].dropped_events, 2);
  cr_assert_str_eq(out[2].events[1], "1 e message=s:m");
  msvc__buf_free(&b);
  for (i = 0; i < 3; i++)
    msvc__trace_span_free(s[i]);
  msvc_tracer_free(t);
}

/* Lengths of every size class: a varint of one, two and three bytes for
 * strings, attributes, spans and the enclosing messages. */
Test(trace_encode_pb, lengths_across_varint_sizes) {
  static const size_t sizes[] = {0, 1, 100, 127, 128, 200, 16383, 16384, 70000};
  msvc_tracer_t *t = tracer();
  msvc__buf_t b;
  char *v;
  size_t k;

  msvc__buf_init(&b, 0);
  v = malloc(70001);
  for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    msvc_span_t *s;
    span_t out[1];
    char res[16][160];
    size_t start;
    int nres;

    memset(v, 'x', sizes[k]);
    v[sizes[k]] = '\0';
    cr_assert_eq(msvc_trace_span_start(t, "n", MSVC_SPAN_INTERNAL, NULL, &s), 0);
    msvc_trace_span_set_str(s, "v", v);
    msvc_trace_span_add_event(s, "e", v);
    msvc_trace_span_set_status(s, MSVC_SPAN_STATUS_ERROR, v);
    s->end_ns = s->start_ns;
    b.len = 0;
    cr_assert_eq(msvc__trace_encode_pb(t, &s, 1, &b, &start), MSVC_OK);
    /* the reader checks that every length ends exactly where its message does */
    cr_assert_eq(read_request(&b, start, out, 1, res, &nres), 1);
    cr_assert_eq(out[0].nattrs, 1);
    cr_assert_eq(strlen(out[0].attrs[0]), 4 + (sizes[k] < 155 ? sizes[k] : 155));
    cr_assert_eq(out[0].nevents, 1);
    cr_assert_eq(out[0].status, 2);
    msvc__trace_span_free(s);
  }
  free(v);
  msvc__buf_free(&b);
  msvc_tracer_free(t);
}

Test(trace_encode_pb, protocol_option_checked) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;

  msvc_tracer_opts_init(&o);
  o.service_name = "x";
  o.protocol = (msvc_otlp_protocol_t)7;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_EINVAL);
  o.protocol = MSVC_OTLP_HTTP_JSON;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  msvc_tracer_free(t);
  /* options from before the field: the default */
  o.protocol = (msvc_otlp_protocol_t)7;
  o.size = offsetof(msvc_tracer_opts_t, protocol);
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  msvc_tracer_free(t);
}
