/*
 * OTLP protobuf encoding of a batch (opentelemetry.proto.collector.trace.v1.
 * ExportTraceServiceRequest), written by hand: the messages we send are few
 * and fixed, so a varint writer and the field numbers of opentelemetry-proto
 * do the work of generated code without a dependency.
 *
 * A length-delimited field needs its length before its bytes. Each span
 * is measured first (every string's length and UTF-8 check made once and
 * kept for the write), then written straight into the output; the two
 * lengths that enclose all spans are written last, in a gap left before
 * them (see msvc__trace_encode_pb()). Nothing is copied twice. Fields go
 * out in field number order, as protobuf encoders do, except flags (16),
 * which follows parent_span_id as it does in the .proto file.
 *
 * Strings must be UTF-8 in proto3; a decoder may refuse a batch with a bad
 * byte in one attribute. Bytes that do not form valid UTF-8 are therefore
 * replaced by U+FFFD, one replacement per bad byte, so that the encoded
 * length is the raw length exactly when the string was valid.
 */
#include <string.h>

#include <msvc/error.h>
#include <msvc/version.h>

#include "trace/trace-internal.h"

/* Wire types. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

#define TAG(field, wt) ((unsigned char)(((field) << 3) | (wt)))

/* Span flags (opentelemetry.proto.trace.v1.SpanFlags): the low byte holds
 * the W3C trace flags; these two say whether the parent is remote. */
#define FLAG_HAS_IS_REMOTE 0x100u
#define FLAG_IS_REMOTE 0x200u

static size_t vlen(uint64_t v) {
  size_t n = 1;

  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static unsigned char *w_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

/* Fixed-width fields are little-endian on the wire. */
static unsigned char *w_fixed64(unsigned char *p, uint64_t v) {
  if (HOST_LE) {
    memcpy(p, &v, 8);
  } else {
    for (int i = 0; i < 8; i++)
      p[i] = (unsigned char)(v >> (8 * i));
  }
  return p + 8;
}

static unsigned char *w_fixed32(unsigned char *p, uint32_t v) {
  if (HOST_LE) {
    memcpy(p, &v, 4);
  } else {
    for (int i = 0; i < 4; i++)
      p[i] = (unsigned char)(v >> (8 * i));
  }
  return p + 4;
}

/* ---- strings ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at u (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *u, size_t n) {
  unsigned char c = u[0], lo = 0x80, hi = 0xbf;
  size_t len, i;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0; /* overlong */
    if (c == 0xed) hi = 0x9f; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90; /* overlong */
    if (c == 0xf4) hi = 0x8f; /* beyond U+10FFFF */
  } else {
    return 0;
  }
  if (n < len || u[1] < lo || u[1] > hi)
    return 0;
  for (i = 2; i < len; i++)
    if (u[i] < 0x80 || u[i] > 0xbf)
      return 0;
  return len;
}

#define HIGHS UINT64_C(0x8080808080808080)

/* Whether s[0..n) is plain ASCII: words OR-ed together, the last one
 * overlapping the one before it rather than going byte by byte. */
static bool is_ascii(const char *s, size_t n) {
  uint64_t acc = 0, w;
  size_t i;

  if (n < 8) {
    for (i = 0; i < n; i++)
      acc |= (unsigned char)s[i];
    return (acc & 0x80) == 0;
  }
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    acc |= w;
  }
  memcpy(&w, s + n - 8, 8);
  return ((acc | w) & HIGHS) == 0;
}

/* The encoded length of s (raw bytes n): n when valid UTF-8, two more per
 * bad byte. Runs of ASCII, the common case, are passed over eight bytes at
 * a time. */
static size_t str_enc_len(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, extra = 0, k;
  uint64_t w;

  if (is_ascii(s, n))
    return n;
  for (;;) {
    for (; i + 8 <= n; i += 8) {
      memcpy(&w, s + i, 8);
      if (w & HIGHS)
        break;
    }
    while (i < n && u[i] < 0x80)
      i++;
    if (i == n)
      return n + extra;
    if ((k = utf8_seq(u + i, n - i)) == 0) {
      extra += 2;
      i++;
    } else {
      i += k;
    }
  }
}

static unsigned char *w_bytes(unsigned char *p, const char *s, size_t n, size_t enc) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, k;

  if (enc == n) {
    memcpy(p, s, n);
    return p + n;
  }
  while (i < n) {
    if ((k = utf8_seq(u + i, n - i)) == 0) {
      *p++ = 0xef;
      *p++ = 0xbf;
      *p++ = 0xbd;
      i++;
    } else {
      memcpy(p, u + i, k);
      p += k;
      i += k;
    }
  }
  return p;
}

/* A string field whose raw and encoded lengths are known. */
static unsigned char *w_str_field(unsigned char *p, unsigned char tag, const char *s, size_t n,
                                  size_t enc) {
  *p++ = tag;
  p = w_varint(p, enc);
  return w_bytes(p, s, n, enc);
}

/* Size of a length-delimited field of one-byte tag holding len bytes. */
static size_t field_len(size_t len) {
  return 1 + vlen(len) + len;
}

/* ---- attributes --------------------------------------------------------
 * KeyValue { string key = 1; AnyValue value = 2; }
 * AnyValue { string string_value = 1; bool bool_value = 2;
 *            int64 int_value = 3; double double_value = 4; ... } */

typedef struct kv_size_s {
  size_t key_n, key_enc; /* raw and encoded lengths */
  size_t val_n, val_enc; /* string values only */
  size_t any;            /* AnyValue's size */
  size_t kv;             /* KeyValue's size */
} kv_size_t;

static void attr_size(const msvc__trace_attr_t *a, kv_size_t *z) {
  /* The library's own keys are known to be ASCII. */
  z->key_n = a->key_len;
  z->key_enc = a->key_static ? z->key_n : str_enc_len(a->key, z->key_n);
  switch (a->type) {
  case MSVC__ATTR_STR:
    z->val_n = a->val_len;
    z->val_enc = str_enc_len(a->v.s, z->val_n);
    z->any = field_len(z->val_enc);
    break;
  case MSVC__ATTR_INT:
    z->any = 1 + vlen((uint64_t)a->v.i);
    break;
  case MSVC__ATTR_BOOL:
    z->any = 2;
    break;
  default:
    z->any = 9;
    break;
  }
  z->kv = field_len(z->key_enc) + field_len(z->any);
}

static unsigned char *w_attr(unsigned char *p, unsigned char tag, const msvc__trace_attr_t *a,
                             const kv_size_t *z) {
  uint64_t bits;

  *p++ = tag;
  p = w_varint(p, z->kv);
  p = w_str_field(p, TAG(1, WT_LEN), a->key, z->key_n, z->key_enc);
  *p++ = TAG(2, WT_LEN);
  p = w_varint(p, z->any);
  switch (a->type) {
  case MSVC__ATTR_STR:
    return w_str_field(p, TAG(1, WT_LEN), a->v.s, z->val_n, z->val_enc);
  case MSVC__ATTR_INT:
    *p++ = TAG(3, WT_VARINT);
    return w_varint(p, (uint64_t)a->v.i);
  case MSVC__ATTR_BOOL:
    *p++ = TAG(2, WT_VARINT);
    *p++ = a->v.b ? 1 : 0;
    return p;
  default:
    *p++ = TAG(4, WT_I64);
    memcpy(&bits, &a->v.d, sizeof(bits));
    return w_fixed64(p, bits);
  }
}

/* A string attribute (resource, scope, event message). */
static size_t kv_str_size(const char *k, const char *v, kv_size_t *z) {
  msvc__trace_attr_t a = {.key = (char *)k, .key_len = (uint32_t)strlen(k),
                          .type = MSVC__ATTR_STR, .val_len = (uint32_t)strlen(v),
                          .v.s = (char *)v};

  attr_size(&a, z);
  return field_len(z->kv);
}

static unsigned char *w_kv_str(unsigned char *p, unsigned char tag, const char *k,
                               const char *v, const kv_size_t *z) {
  msvc__trace_attr_t a = {.key = (char *)k, .type = MSVC__ATTR_STR, .v.s = (char *)v};

  return w_attr(p, tag, &a, z); /* the lengths are z's */
}

/* ---- resource and scope, once per tracer ------------------------------- */

static bool own_key(const char *k) {
  return strcmp(k, "service.name") == 0 || strcmp(k, "service.version") == 0 ||
         strcmp(k, "service.instance.id") == 0 || strncmp(k, "telemetry.sdk.", 14) == 0;
}

/* The resource's attributes, in the order of the JSON encoding. */
static size_t resource_kvs(const msvc_tracer_t *t, const char **kv, size_t cap) {
  size_t n = 0, i;

#define ADD(k, v) do { if (n + 2 <= cap) { kv[n++] = (k); kv[n++] = (v); } } while (0)
  ADD("service.name", t->service_name);
  if (t->service_version != NULL)
    ADD("service.version", t->service_version);
  if (t->instance_id != NULL)
    ADD("service.instance.id", t->instance_id);
  ADD("telemetry.sdk.name", "libmsvc");
  ADD("telemetry.sdk.language", "c");
  ADD("telemetry.sdk.version", MSVC_VERSION_STRING);
  for (i = 0; i < t->nresource; i++)
    if (!own_key(t->resource[i].key))
      ADD(t->resource[i].key, t->resource[i].value);
#undef ADD
  return n / 2;
}

/* tag, length, then string key/value pairs as field 1 of the inner message
 * (Resource.attributes), or for the scope name = 1 and version = 2. */
static unsigned char *kv_message(const char **kv, size_t n, bool scope, size_t *len) {
  kv_size_t z;
  size_t body = 0, i;
  unsigned char *out, *p;

  for (i = 0; i < n; i++) {
    if (scope) {
      size_t vn = strlen(kv[2 * i + 1]);
      body += field_len(str_enc_len(kv[2 * i + 1], vn));
    } else {
      body += kv_str_size(kv[2 * i], kv[2 * i + 1], &z);
    }
  }
  *len = field_len(body);
  if ((p = out = msvc__malloc(*len)) == NULL)
    return NULL;
  *p++ = TAG(1, WT_LEN);
  p = w_varint(p, body);
  for (i = 0; i < n; i++) {
    const char *k = kv[2 * i], *v = kv[2 * i + 1];
    if (scope) {
      size_t vn = strlen(v);
      p = w_str_field(p, TAG((unsigned)i + 1, WT_LEN), v, vn, str_enc_len(v, vn));
    } else {
      kv_str_size(k, v, &z);
      p = w_kv_str(p, TAG(1, WT_LEN), k, v, &z);
    }
  }
  return out;
}

int msvc__trace_encode_resource_pb(msvc_tracer_t *t) {
  size_t cap = 2 * (6 + t->nresource), n;
  const char **kv = msvc__calloc(cap, sizeof(*kv));
  const char *scope[4] = {"name", "libmsvc", "version", MSVC_VERSION_STRING};

  if (kv == NULL)
    return MSVC_ENOMEM;
  n = resource_kvs(t, kv, cap);
  t->resource_pb = kv_message(kv, n, false, &t->resource_pb_len);
  msvc__free(kv);
  t->scope_pb = kv_message(scope, 2, true, &t->scope_pb_len);
  return t->resource_pb != NULL && t->scope_pb != NULL ? MSVC_OK : MSVC_ENOMEM;
}

/* ---- spans --------------------------------------------------------------
 * Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
 *        bytes parent_span_id = 4; fixed32 flags = 16; string name = 5;
 *        SpanKind kind = 6; fixed64 start_time_unix_nano = 7;
 *        fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
 *        uint32 dropped_attributes_count = 10; repeated Event events = 11;
 *        uint32 dropped_events_count = 12; ...; Status status = 15; }
 * Event { fixed64 time_unix_nano = 1; string name = 2;
 *         repeated KeyValue attributes = 3; }
 * Status { string message = 2; StatusCode code = 3; } */

static const signed char unhex_tab[256] = {
    ['0'] = 0,  ['1'] = 1,  ['2'] = 2,  ['3'] = 3,  ['4'] = 4,  ['5'] = 5,
    ['6'] = 6,  ['7'] = 7,  ['8'] = 8,  ['9'] = 9,  ['a'] = 10, ['b'] = 11,
    ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
};

/* Ids are checked lower-case hex when they are made or parsed. Eight
 * digits at a time on a little-endian host: a digit's value is its low
 * nibble, plus 9 for the letters (bit 6 set), and pairs of nibbles are then
 * packed into bytes. */
static unsigned char *w_id(unsigned char *p, unsigned char tag, const char *hex, size_t nbytes) {
  *p++ = tag;
  *p++ = (unsigned char)nbytes;
  if (HOST_LE) {
    for (size_t i = 0; i < nbytes; i += 4) {
      uint64_t x;
      uint32_t out;
      memcpy(&x, hex + 2 * i, 8);
      x = (x & UINT64_C(0x0f0f0f0f0f0f0f0f)) + ((x >> 6) & UINT64_C(0x0101010101010101)) * 9;
      x = ((x << 4) & UINT64_C(0x00f000f000f000f0)) | ((x >> 8) & UINT64_C(0x000f000f000f000f));
      x = (x | (x >> 8)) & UINT64_C(0x0000ffff0000ffff);
      out = (uint32_t)(x | (x >> 16));
      memcpy(p + i, &out, 4);
    }
    return p + nbytes;
  }
  for (size_t i = 0; i < nbytes; i++)
    p[i] = (unsigned char)((unhex_tab[(unsigned char)hex[2 * i]] << 4) |
                           unhex_tab[(unsigned char)hex[2 * i + 1]]);
  return p + nbytes;
}

/* What a span's nested fields measure, computed once and used to write. */
typedef struct span_sizes_s {
  size_t name_n, name_enc;
  kv_size_t attr[MSVC_TRACE_MAX_ATTRS];
  struct {
    size_t name_n, name_enc, len;
    kv_size_t msg;
  } ev[MSVC_TRACE_MAX_EVENTS];
  size_t st_n, st_enc, st_len;
  size_t len; /* the Span message */
} span_sizes_t;

static void span_size(const msvc_span_t *s, span_sizes_t *z) {
  /* trace_id, span_id, flags, kind, start, end */
  size_t n = 18 + 10 + 6 + 2 + 9 + 9, i;

  if (s->parent_id[0] != '\0')
    n += 10;
  z->name_n = s->name_len;
  z->name_enc = str_enc_len(s->name, z->name_n);
  n += field_len(z->name_enc);
  for (i = 0; i < s->nattrs; i++) {
    attr_size(&s->attrs[i], &z->attr[i]);
    n += field_len(z->attr[i].kv);
  }
  if (s->dropped_attrs > 0)
    n += 1 + vlen(s->dropped_attrs);
  for (i = 0; i < s->nevents; i++) {
    const msvc__trace_event_t *e = &s->events[i];
    size_t len;
    z->ev[i].name_n = strlen(e->name);
    z->ev[i].name_enc = str_enc_len(e->name, z->ev[i].name_n);
    len = 9 + field_len(z->ev[i].name_enc);
    if (e->message != NULL)
      len += kv_str_size("message", e->message, &z->ev[i].msg);
    z->ev[i].len = len;
    n += field_len(len);
  }
  if (s->dropped_events > 0)
    n += 1 + vlen(s->dropped_events);
  z->st_len = s->status != MSVC_SPAN_STATUS_UNSET ? 2 : 0;
  z->st_n = z->st_enc = 0;
  if (s->status_msg != NULL) {
    z->st_n = strlen(s->status_msg);
    z->st_enc = str_enc_len(s->status_msg, z->st_n);
    z->st_len += field_len(z->st_enc);
  }
  if (z->st_len > 0)
    n += field_len(z->st_len);
  z->len = n;
}

static unsigned char *w_span(unsigned char *p, const msvc_span_t *s, const span_sizes_t *z) {
  uint32_t flags = (uint32_t)s->ctx.flags | FLAG_HAS_IS_REMOTE;
  size_t i;

  *p++ = TAG(2, WT_LEN) /* ScopeSpans.spans */;
  p = w_varint(p, z->len);
  p = w_id(p, TAG(1, WT_LEN), s->ctx.trace_id, 16);
  p = w_id(p, TAG(2, WT_LEN), s->ctx.span_id, 8);
  if (s->parent_id[0] != '\0') {
    p = w_id(p, TAG(4, WT_LEN), s->parent_id, 8);
    if (s->parent_remote)
      flags |= FLAG_IS_REMOTE;
  }
  /* field 16: a two-byte tag */
  *p++ = TAG(16, WT_I32) | 0x80;
  *p++ = 0x01;
  p = w_fixed32(p, flags);
  p = w_str_field(p, TAG(5, WT_LEN), s->name, z->name_n, z->name_enc);
  *p++ = TAG(6, WT_VARINT);
  *p++ = (unsigned char)s->kind;
  *p++ = TAG(7, WT_I64);
  p = w_fixed64(p, s->start_ns);
  *p++ = TAG(8, WT_I64);
  p = w_fixed64(p, s->end_ns);
  for (i = 0; i < s->nattrs; i++)
    p = w_attr(p, TAG(9, WT_LEN), &s->attrs[i], &z->attr[i]);
  if (s->dropped_attrs > 0) {
    *p++ = TAG(10, WT_VARINT);
    p = w_varint(p, s->dropped_attrs);
  }
  for (i = 0; i < s->nevents; i++) {
    const msvc__trace_event_t *e = &s->events[i];
    *p++ = TAG(11, WT_LEN);
    p = w_varint(p, z->ev[i].len);
    *p++ = TAG(1, WT_I64);
    p = w_fixed64(p, e->time_ns);
    p = w_str_field(p, TAG(2, WT_LEN), e->name, z->ev[i].name_n, z->ev[i].name_enc);
    if (e->message != NULL)
      p = w_kv_str(p, TAG(3, WT_LEN), "message", e->message, &z->ev[i].msg);
  }
  if (s->dropped_events > 0) {
    *p++ = TAG(12, WT_VARINT);
    p = w_varint(p, s->dropped_events);
  }
  if (z->st_len > 0) {
    *p++ = TAG(15, WT_LEN);
    p = w_varint(p, z->st_len);
    if (s->status_msg != NULL)
      p = w_str_field(p, TAG(2, WT_LEN), s->status_msg, z->st_n, z->st_enc);
    if (s->status != MSVC_SPAN_STATUS_UNSET) {
      *p++ = TAG(3, WT_VARINT);
      *p++ = (unsigned char)s->status;
    }
  }
  return p;
}

/* The two lengths around the spans (ResourceSpans, ScopeSpans) are known
 * only after the last span; their varints take at most five bytes each
 * (a request is kept under 4 GiB). The spans are written after a gap of
 * the header's largest size, and the header is then written right-aligned
 * against them: no byte is copied twice, and the message starts a few
 * bytes into the gap. */
#define LEN_MAX 5u

int msvc__trace_encode_pb(const msvc_tracer_t *t, msvc_span_t *const *spans, size_t n,
                          msvc__buf_t *out, size_t *start) {
  size_t head_max = 1 + LEN_MAX + t->resource_pb_len + 1 + LEN_MAX + t->scope_pb_len;
  size_t base = out->len, spans_at = base + head_max, ss, rs, head, i;
  span_sizes_t z;
  unsigned char *p;

  if (msvc__buf_reserve(out, head_max) != MSVC_OK)
    return out->err;
  out->len = spans_at;
  for (i = 0; i < n; i++) {
    span_size(spans[i], &z);
    if (msvc__buf_reserve(out, field_len(z.len)) != MSVC_OK)
      return out->err;
    p = (unsigned char *)out->data + out->len;
    out->len += (size_t)(w_span(p, spans[i], &z) - p);
  }
  ss = t->scope_pb_len + (out->len - spans_at);
  rs = t->resource_pb_len + field_len(ss);
  if (field_len(rs) > UINT32_MAX)
    return out->err = MSVC_ERANGE;
  head = field_len(rs) - rs + t->resource_pb_len + 1 + vlen(ss) + t->scope_pb_len;
  *start = spans_at - head;
  p = (unsigned char *)out->data + *start;
  *p++ = TAG(1, WT_LEN); /* ExportTraceServiceRequest.resource_spans */
  p = w_varint(p, rs);
  memcpy(p, t->resource_pb, t->resource_pb_len); /* ResourceSpans.resource */
  p += t->resource_pb_len;
  *p++ = TAG(2, WT_LEN); /* ResourceSpans.scope_spans */
  p = w_varint(p, ss);
  memcpy(p, t->scope_pb, t->scope_pb_len); /* ScopeSpans.scope */
  out->data[out->len] = '\0';
  return MSVC_OK;
}
