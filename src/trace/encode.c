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

static void put_u64(msvc__buf_t *b, uint64_t v) {
  char tmp[24];
  size_t i = sizeof(tmp);

  do
    tmp[--i] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  msvc__buf_append(b, tmp + i, sizeof(tmp) - i);
}

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

static void put_attr(msvc__buf_t *b, bool first, const msvc__trace_attr_t *a) {
  if (a->type == MSVC__ATTR_STR) {
    put_kv_str(b, first, a->key, a->v.s);
    return;
  }
  if (!first)
    msvc__buf_putc(b, ',');
  msvc__buf_puts(b, "{\"key\":");
  put_str(b, a->key);
  switch (a->type) {
  case MSVC__ATTR_INT:
    msvc__buf_puts(b, ",\"value\":{\"intValue\":\"");
    if (a->v.i < 0)
      msvc__buf_putc(b, '-');
    put_u64(b, a->v.i < 0 ? (uint64_t)0 - (uint64_t)a->v.i : (uint64_t)a->v.i);
    msvc__buf_puts(b, "\"}}");
    break;
  case MSVC__ATTR_BOOL:
    msvc__buf_printf(b, ",\"value\":{\"boolValue\":%s}}", a->v.b ? "true" : "false");
    break;
  default:
    /* JSON has no NaN or infinity: the proto3 mapping spells them as strings. */
    if (isnan(a->v.d))
      msvc__buf_puts(b, ",\"value\":{\"doubleValue\":\"NaN\"}}");
    else if (isinf(a->v.d))
      msvc__buf_printf(b, ",\"value\":{\"doubleValue\":\"%sInfinity\"}}",
                       a->v.d < 0 ? "-" : "");
    else
      msvc__buf_printf(b, ",\"value\":{\"doubleValue\":%.17g}}", a->v.d);
    break;
  }
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

static void put_span(msvc__buf_t *b, const msvc_span_t *s) {
  uint32_t i;

  msvc__buf_puts(b, "{\"traceId\":\"");
  msvc__buf_append(b, s->ctx.trace_id, 32);
  msvc__buf_puts(b, "\",\"spanId\":\"");
  msvc__buf_append(b, s->ctx.span_id, 16);
  msvc__buf_putc(b, '"');
  if (s->parent_id[0] != '\0') {
    msvc__buf_puts(b, ",\"parentSpanId\":\"");
    msvc__buf_append(b, s->parent_id, 16);
    msvc__buf_putc(b, '"');
  }
  /* No "flags" field: it came with OTLP 1.1, and collectors built on older
   * definitions refuse unknown fields. The sampled bit is implied (only
   * kept spans are sent). */
  msvc__buf_puts(b, ",\"name\":");
  put_str(b, s->name);
  msvc__buf_puts(b, ",\"kind\":");
  msvc__buf_putc(b, (char)('0' + (int)s->kind));
  msvc__buf_puts(b, ",\"startTimeUnixNano\":\"");
  put_u64(b, s->start_ns);
  msvc__buf_puts(b, "\",\"endTimeUnixNano\":\"");
  put_u64(b, s->end_ns);
  msvc__buf_puts(b, "\",\"attributes\":[");
  for (i = 0; i < s->nattrs; i++)
    put_attr(b, i == 0, &s->attrs[i]);
  msvc__buf_putc(b, ']');
  if (s->dropped_attrs > 0)
    msvc__buf_printf(b, ",\"droppedAttributesCount\":%" PRIu32, s->dropped_attrs);
  if (s->nevents > 0) {
    msvc__buf_puts(b, ",\"events\":[");
    for (i = 0; i < s->nevents; i++) {
      const msvc__trace_event_t *e = &s->events[i];
      msvc__buf_printf(b, "%s{\"timeUnixNano\":\"%" PRIu64 "\",\"name\":", i ? "," : "",
                       e->time_ns);
      put_str(b, e->name);
      msvc__buf_puts(b, ",\"attributes\":[");
      if (e->message != NULL)
        put_kv_str(b, true, "message", e->message);
      msvc__buf_puts(b, "]}");
    }
    msvc__buf_putc(b, ']');
  }
  if (s->dropped_events > 0)
    msvc__buf_printf(b, ",\"droppedEventsCount\":%" PRIu32, s->dropped_events);
  msvc__buf_puts(b, ",\"status\":{\"code\":");
  msvc__buf_putc(b, (char)('0' + (int)s->status));
  if (s->status_msg != NULL) {
    msvc__buf_puts(b, ",\"message\":");
    put_str(b, s->status_msg);
  }
  msvc__buf_puts(b, "}}");
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
