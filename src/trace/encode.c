/*
 * OTLP JSON encoding of a batch (ExportTraceServiceRequest), following the
 * OTLP specification's JSON mapping: lowerCamelCase field names, trace and
 * span ids as hex strings (not base64), 64-bit integers as decimal strings,
 * enums as integers.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/version.h>

#include "trace/trace-internal.h"

static void put_str(msvc__buf_t *b, const char *s) {
  msvc__buf_putc(b, '"');
  msvc__buf_json_escape(b, s, strlen(s));
  msvc__buf_putc(b, '"');
}

static void put_kv_str(msvc__buf_t *b, bool first, const char *k, const char *v) {
  if (!first)
    msvc__buf_putc(b, ',');
  msvc__buf_puts(b, "{\"key\":");
  put_str(b, k);
  msvc__buf_puts(b, ",\"value\":{\"stringValue\":");
  put_str(b, v);
  msvc__buf_puts(b, "}}");
}

int msvc__trace_encode_resource(msvc_tracer_t *t) {
  msvc__buf_t b;
  size_t i;

  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "{\"attributes\":[");
  put_kv_str(&b, true, "service.name", t->service_name);
  if (t->service_version != NULL)
    put_kv_str(&b, false, "service.version", t->service_version);
  if (t->instance_id != NULL)
    put_kv_str(&b, false, "service.instance.id", t->instance_id);
  put_kv_str(&b, false, "telemetry.sdk.name", "libmsvc");
  put_kv_str(&b, false, "telemetry.sdk.language", "c");
  put_kv_str(&b, false, "telemetry.sdk.version", MSVC_VERSION_STRING);
  for (i = 0; i < t->nresource; i++) {
    const char *k = t->resource[i].key;
    /* Our own keys win over the variable's. */
    if (strcmp(k, "service.name") == 0 || strcmp(k, "service.version") == 0 ||
        strcmp(k, "service.instance.id") == 0 || strncmp(k, "telemetry.sdk.", 14) == 0)
      continue;
    put_kv_str(&b, false, k, t->resource[i].value);
  }
  msvc__buf_puts(&b, "]}");
  t->resource_json = msvc__buf_detach(&b, NULL);
  return t->resource_json != NULL ? MSVC_OK : MSVC_ENOMEM;
}

/* ---- spans ------------------------------------------------------------------
 * The exporter encodes every kept span, so this is the hot part of
 * tracing at a high sampling ratio. Each span reserves its worst case once
 * (every string byte escaped to six) and is then written straight into the
 * buffer, escaping runs of plain bytes with one copy each. */

/* Non-zero for the bytes JSON strings must escape. */
static const unsigned char needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

static char *w_raw(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

#define W_LIT(p, lit) w_raw((p), (lit), sizeof(lit) - 1)

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Whether any byte of x is below 0x20, '"', '\\' or 0x7f: the classic
 * "has a zero byte" and "has a byte less than n" tests, eight at a time. */
static bool word_needs_escape(uint64_t x) {
  uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\'), d = x ^ (ONES * 0x7f);

  return (((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b) |
          ((d - ONES) & ~d)) & HIGHS;
}

/* A JSON string with its quotes. Same escapes as msvc__buf_json_escape().
 * Most strings (route patterns, attribute keys) need none: they are
 * copied whole after a check of eight bytes at a time. */
static char *w_str(char *p, const char *s) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s, *run = u;
  size_t n = strlen(s), i;
  uint64_t w;

  *p++ = '"';
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    if (word_needs_escape(w))
      break;
  }
  for (; i < n && !needs_escape[(unsigned char)s[i]]; i++)
    ;
  if (i == n) {
    p = w_raw(p, s, n);
    *p++ = '"';
    return p;
  }
  for (;; u++) {
    unsigned char c = *u;
    if (c != 0 && !needs_escape[c])
      continue;
    p = w_raw(p, (const char *)run, (size_t)(u - run));
    if (c == 0)
      break;
    run = u + 1;
    *p++ = '\\';
    switch (c) {
    case '"': *p++ = '"'; break;
    case '\\': *p++ = '\\'; break;
    case '\n': *p++ = 'n'; break;
    case '\r': *p++ = 'r'; break;
    case '\t': *p++ = 't'; break;
    case '\b': *p++ = 'b'; break;
    case '\f': *p++ = 'f'; break;
    default:
      p = W_LIT(p, "u00");
      *p++ = hex[c >> 4];
      *p++ = hex[c & 15];
      break;
    }
  }
  *p++ = '"';
  return p;
}

/* Two digits per division: timestamps have nineteen. */
static char *w_u64(char *p, uint64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                              "25262728293031323334353637383940414243444546474849"
                              "50515253545556575859606162636465666768697071727374"
                              "75767778798081828384858687888990919293949596979899";
  char tmp[24];
  size_t i = sizeof(tmp);

  while (v >= 100) {
    unsigned r = (unsigned)(v % 100);
    v /= 100;
    tmp[--i] = pairs[2 * r + 1];
    tmp[--i] = pairs[2 * r];
  }
  if (v >= 10) {
    tmp[--i] = pairs[2 * v + 1];
    tmp[--i] = pairs[2 * v];
  } else {
    tmp[--i] = (char)('0' + v);
  }
  return w_raw(p, tmp + i, sizeof(tmp) - i);
}

/* Worst case of a string once escaped and quoted. */
static size_t str_max(const char *s) {
  return 6 * strlen(s) + 2;
}

static size_t span_max(const msvc_span_t *s) {
  size_t n = 400 + str_max(s->name);
  uint32_t i;

  for (i = 0; i < s->nattrs; i++)
    n += 96 + str_max(s->attrs[i].key) +
         (s->attrs[i].type == MSVC__ATTR_STR ? str_max(s->attrs[i].v.s) : 0);
  for (i = 0; i < s->nevents; i++)
    n += 160 + str_max(s->events[i].name) +
         (s->events[i].message != NULL ? str_max(s->events[i].message) : 0);
  if (s->status_msg != NULL)
    n += 16 + str_max(s->status_msg);
  return n;
}

static char *w_attr(char *p, const msvc__trace_attr_t *a) {
  p = W_LIT(p, "{\"key\":");
  p = w_str(p, a->key);
  switch (a->type) {
  case MSVC__ATTR_STR:
    p = W_LIT(p, ",\"value\":{\"stringValue\":");
    p = w_str(p, a->v.s);
    break;
  case MSVC__ATTR_INT:
    p = W_LIT(p, ",\"value\":{\"intValue\":\"");
    if (a->v.i < 0)
      *p++ = '-';
    p = w_u64(p, a->v.i < 0 ? (uint64_t)0 - (uint64_t)a->v.i : (uint64_t)a->v.i);
    *p++ = '"';
    break;
  case MSVC__ATTR_BOOL:
    p = a->v.b ? W_LIT(p, ",\"value\":{\"boolValue\":true")
               : W_LIT(p, ",\"value\":{\"boolValue\":false");
    break;
  default:
    /* JSON has no NaN or infinity: the proto3 mapping spells them as strings. */
    if (isnan(a->v.d))
      p = W_LIT(p, ",\"value\":{\"doubleValue\":\"NaN\"");
    else if (isinf(a->v.d))
      p = a->v.d < 0 ? W_LIT(p, ",\"value\":{\"doubleValue\":\"-Infinity\"")
                     : W_LIT(p, ",\"value\":{\"doubleValue\":\"Infinity\"");
    else {
      p = W_LIT(p, ",\"value\":{\"doubleValue\":");
      p += snprintf(p, 32, "%.17g", a->v.d);
    }
    break;
  }
  return W_LIT(p, "}}");
}

static void put_span(msvc__buf_t *b, const msvc_span_t *s) {
  char *p, *start;
  uint32_t i;

  if (msvc__buf_reserve(b, span_max(s)) != MSVC_OK)
    return;
  p = start = b->data + b->len;
  p = W_LIT(p, "{\"traceId\":\"");
  p = w_raw(p, s->ctx.trace_id, 32);
  p = W_LIT(p, "\",\"spanId\":\"");
  p = w_raw(p, s->ctx.span_id, 16);
  *p++ = '"';
  if (s->parent_id[0] != '\0') {
    p = W_LIT(p, ",\"parentSpanId\":\"");
    p = w_raw(p, s->parent_id, 16);
    *p++ = '"';
  }
  /* No "flags" field: it came with OTLP 1.1, and collectors built on older
   * definitions refuse unknown fields. The sampled bit is implied (only
   * kept spans are sent). */
  p = W_LIT(p, ",\"name\":");
  p = w_str(p, s->name);
  p = W_LIT(p, ",\"kind\":");
  *p++ = (char)('0' + (int)s->kind);
  p = W_LIT(p, ",\"startTimeUnixNano\":\"");
  p = w_u64(p, s->start_ns);
  p = W_LIT(p, "\",\"endTimeUnixNano\":\"");
  p = w_u64(p, s->end_ns);
  p = W_LIT(p, "\",\"attributes\":[");
  for (i = 0; i < s->nattrs; i++) {
    if (i > 0)
      *p++ = ',';
    p = w_attr(p, &s->attrs[i]);
  }
  *p++ = ']';
  if (s->dropped_attrs > 0) {
    p = W_LIT(p, ",\"droppedAttributesCount\":");
    p = w_u64(p, s->dropped_attrs);
  }
  if (s->nevents > 0) {
    p = W_LIT(p, ",\"events\":[");
    for (i = 0; i < s->nevents; i++) {
      const msvc__trace_event_t *e = &s->events[i];
      if (i > 0)
        *p++ = ',';
      p = W_LIT(p, "{\"timeUnixNano\":\"");
      p = w_u64(p, e->time_ns);
      p = W_LIT(p, "\",\"name\":");
      p = w_str(p, e->name);
      p = W_LIT(p, ",\"attributes\":[");
      if (e->message != NULL) {
        p = W_LIT(p, "{\"key\":\"message\",\"value\":{\"stringValue\":");
        p = w_str(p, e->message);
        p = W_LIT(p, "}}");
      }
      p = W_LIT(p, "]}");
    }
    *p++ = ']';
  }
  if (s->dropped_events > 0) {
    p = W_LIT(p, ",\"droppedEventsCount\":");
    p = w_u64(p, s->dropped_events);
  }
  p = W_LIT(p, ",\"status\":{\"code\":");
  *p++ = (char)('0' + (int)s->status);
  if (s->status_msg != NULL) {
    p = W_LIT(p, ",\"message\":");
    p = w_str(p, s->status_msg);
  }
  p = W_LIT(p, "}}");
  b->len += (size_t)(p - start);
  b->data[b->len] = '\0';
}

void msvc__trace_encode(const msvc_tracer_t *t, msvc_span_t *const *spans, size_t n,
                        msvc__buf_t *out) {
  size_t i;

  msvc__buf_puts(out, "{\"resourceSpans\":[{\"resource\":");
  msvc__buf_puts(out, t->resource_json);
  msvc__buf_puts(out, ",\"scopeSpans\":[{\"scope\":{\"name\":\"libmsvc\",\"version\":\"");
  msvc__buf_puts(out, MSVC_VERSION_STRING);
  msvc__buf_puts(out, "\"},\"spans\":[");
  for (i = 0; i < n; i++) {
    if (i > 0)
      msvc__buf_putc(out, ',');
    put_span(out, spans[i]);
  }
  msvc__buf_puts(out, "]}]}]}");
}

static int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A percent-decoded, trimmed copy of s[0..n). */
static char *decode(const char *s, size_t n) {
  char *d;
  size_t i, w = 0;

  while (n > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  if ((d = msvc__malloc(n + 1)) == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n &&
        unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
      d[w++] = (char)(unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
      i += 2;
    } else {
      d[w++] = s[i];
    }
  }
  d[w] = '\0';
  return d;
}

/* OTEL_RESOURCE_ATTRIBUTES: "key1=value1,key2=value2", values
 * percent-encoded. A member without '=' or with an empty key makes the whole
 * value invalid (we stop rather than guess). */
int msvc__trace_parse_resource_attrs(const char *s, msvc__trace_kv_t **out, size_t *n) {
  msvc__trace_kv_t *kv = NULL;
  size_t count = 0, cap = 0;
  const char *p = s;
  int rc = MSVC_EINVAL;

  while (*p != '\0') {
    const char *end = strchr(p, ','), *eq;
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

    eq = memchr(p, '=', len);
    if (len > 0) {
      rc = MSVC_EINVAL;
      if (eq == NULL || eq == p)
        goto bad;
      if (count == cap) {
        msvc__trace_kv_t *nk = msvc__realloc(kv, (cap ? cap * 2 : 4) * sizeof(*kv));
        rc = MSVC_ENOMEM;
        if (nk == NULL)
          goto bad;
        kv = nk;
        cap = cap ? cap * 2 : 4;
      }
      kv[count].key = decode(p, (size_t)(eq - p));
      kv[count].value = decode(eq + 1, len - (size_t)(eq - p) - 1);
      count++;
      rc = MSVC_ENOMEM;
      if (kv[count - 1].key == NULL || kv[count - 1].value == NULL)
        goto bad;
      rc = MSVC_EINVAL;
      if (kv[count - 1].key[0] == '\0')
        goto bad;
    }
    p += len;
    if (*p == ',')
      p++;
  }
  *out = kv;
  *n = count;
  return MSVC_OK;
bad:
  while (count-- > 0) {
    msvc__free(kv[count].key);
    msvc__free(kv[count].value);
  }
  msvc__free(kv);
  return rc;
}
