/*
 * Exposition: the Prometheus text format 0.0.4 and OpenMetrics 1.0.0, and
 * the choice between them from an Accept header.
 */
#include <math.h>
#include <stdlib.h>

#include "metrics/metrics-internal.h"

#define CT_OM_001 "application/openmetrics-text; version=0.0.1; charset=utf-8"

/* ---- content negotiation ------------------------------------------------- */
typedef struct span_s {
  const char *p;
  size_t n;
} span_t;

static span_t trim(const char *p, size_t n) {
  span_t s;

  while (n > 0 && (*p == ' ' || *p == '\t')) {
    p++;
    n--;
  }
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  s.p = p;
  s.n = n;
  return s;
}

static bool span_is(span_t s, const char *lit) {
  size_t n = strlen(lit);

  return s.n == n && msvc__strncasecmp(s.p, lit, n) == 0;
}

/* RFC 9110 qvalue: 0, 1, or 0.ddd / 1.000. Anything else is -1. */
static double parse_q(span_t v) {
  double q = 0, scale = 0.1;
  size_t i;

  if (v.n == 0 || (v.p[0] != '0' && v.p[0] != '1'))
    return -1;
  q = v.p[0] - '0';
  if (v.n == 1)
    return q;
  if (v.p[1] != '.' || v.n > 5)
    return -1;
  for (i = 2; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9')
      return -1;
    q += (v.p[i] - '0') * scale;
    scale /= 10;
  }
  return q > 1 ? -1 : q;
}

typedef struct range_s {
  span_t type;
  span_t version;
  double q;
} range_t;

/* Splits one media range "type/sub; k=v; q=0.5"; false when malformed. */
static bool parse_range(span_t r, range_t *out) {
  const char *end = r.p + r.n, *p = r.p, *semi;

  out->version.p = NULL;
  out->version.n = 0;
  out->q = 1;
  semi = memchr(p, ';', (size_t)(end - p));
  out->type = trim(p, (size_t)((semi != NULL ? semi : end) - p));
  while (semi != NULL) {
    const char *eq, *next;
    span_t k, v;

    p = semi + 1;
    next = memchr(p, ';', (size_t)(end - p));
    eq = memchr(p, '=', (size_t)((next != NULL ? next : end) - p));
    if (eq == NULL)
      return false;
    k = trim(p, (size_t)(eq - p));
    v = trim(eq + 1, (size_t)((next != NULL ? next : end) - eq - 1));
    if (span_is(k, "q") && (out->q = parse_q(v)) < 0)
      return false;
    if (span_is(k, "version"))
      out->version = v;
    semi = next;
  }
  return out->type.n > 0;
}

msvc_metrics_format_t msvc_metrics_negotiate(const char *accept, const char **content_type) {
  double om_q = 0, text_q = 0;
  bool om_v1 = false;
  const char *p = accept;

  while (p != NULL && *p != '\0') {
    const char *comma = strchr(p, ',');
    size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
    range_t r;

    if (parse_range(trim(p, n), &r)) {
      if (span_is(r.type, "application/openmetrics-text")) {
        bool v1 = r.version.n == 0 || span_is(r.version, "1.0.0");
        if ((v1 || span_is(r.version, "0.0.1")) && r.q > 0 &&
            (r.q > om_q || (r.q == om_q && v1))) {
          om_q = r.q;
          om_v1 = v1;
        }
      } else if ((span_is(r.type, "text/plain") &&
                  (r.version.n == 0 || span_is(r.version, "0.0.4"))) ||
                 span_is(r.type, "text/*") || span_is(r.type, "*/*")) {
        if (r.q > text_q)
          text_q = r.q;
      }
    }
    p = comma != NULL ? comma + 1 : NULL;
  }
  if (om_q > 0 && om_q >= text_q) {
    if (content_type != NULL)
      *content_type = om_v1 ? MSVC_METRICS_CONTENT_TYPE_OPENMETRICS : CT_OM_001;
    return MSVC_METRICS_FORMAT_OPENMETRICS;
  }
  if (content_type != NULL)
    *content_type = MSVC_METRICS_CONTENT_TYPE_TEXT;
  return MSVC_METRICS_FORMAT_TEXT;
}

/* ---- writing ------------------------------------------------------------- */
typedef struct writer_s {
  msvc__buf_t *b;
  const msvc__family_t *f;
  bool om;
} writer_t;

static void put_header(writer_t *w) {
  const msvc__family_t *f = w->f;
  const char *name = w->om ? f->om_name : f->name;
  static const char *const types[] = {"counter", "gauge", "histogram"};

  if (f->help[0] != '\0') {
    msvc__buf_append(w->b, "# HELP ", 7);
    msvc__buf_puts(w->b, name);
    msvc__buf_putc(w->b, ' ');
    msvc__metrics_escape_help(w->b, f->help, w->om);
    msvc__buf_putc(w->b, '\n');
  }
  msvc__buf_append(w->b, "# TYPE ", 7);
  msvc__buf_puts(w->b, name);
  msvc__buf_putc(w->b, ' ');
  msvc__buf_puts(w->b, types[f->type]);
  msvc__buf_putc(w->b, '\n');
}

/* name[suffix]{labels[,le="x"]} value */
static void put_sample(writer_t *w, const char *name, const char *suffix,
                       const msvc__child_t *c, const char *le, const char *value,
                       size_t vlen) {
  msvc__buf_t *b = w->b;

  msvc__buf_puts(b, name);
  if (suffix != NULL)
    msvc__buf_puts(b, suffix);
  if (c->labels_len > 0 || le != NULL) {
    msvc__buf_putc(b, '{');
    msvc__buf_append(b, c->labels_text, c->labels_len);
    if (le != NULL) {
      if (c->labels_len > 0)
        msvc__buf_putc(b, ',');
      msvc__buf_append(b, "le=\"", 4);
      msvc__buf_puts(b, le);
      msvc__buf_putc(b, '"');
    }
    msvc__buf_putc(b, '}');
  }
  msvc__buf_putc(b, ' ');
  msvc__buf_append(b, value, vlen);
  msvc__buf_putc(b, '\n');
}

static void put_counter(writer_t *w, const msvc__child_t *c) {
  char num[32];
  size_t n = msvc__metrics_format_double(msvc__child_counter_value(c), num);

  if (w->om)
    put_sample(w, w->f->om_name, "_total", c, NULL, num, n);
  else
    put_sample(w, w->f->name, NULL, c, NULL, num, n);
}

static void put_gauge(writer_t *w, const msvc__child_t *c) {
  char num[32];
  size_t n = msvc__metrics_format_double(
      atomic_load_explicit(&c->gauge, memory_order_relaxed), num);

  put_sample(w, w->f->name, NULL, c, NULL, num, n);
}

/* Buckets are stored per bucket and summed here, so the +Inf bucket and
 * _count are the same number even while observations go on. */
static void put_histogram(writer_t *w, const msvc__child_t *c) {
  const msvc__family_t *f = w->f;
  uint64_t counts[MSVC_METRICS_MAX_BUCKETS + 1], cum = 0;
  char num[32];
  double sum;
  size_t i, n;

  msvc__child_hist_read(c, counts, &sum);
  for (i = 0; i <= f->bound_count; i++) {
    msvc__exemplar_t ex;
    cum += counts[i];
    n = msvc__metrics_format_u64(cum, num);
    put_sample(w, f->name, "_bucket", c, f->bound_text[i], num, n);
    /* OpenMetrics only: the bucket's exemplar after its value, on the
     * same line. */
    if (w->om && msvc__child_exemplar(c, i, &ex)) {
      w->b->len--; /* the newline put_sample wrote */
      msvc__buf_puts(w->b, " # {trace_id=\"");
      msvc__buf_puts(w->b, ex.trace_id);
      if (ex.span_id[0] != '\0') {
        msvc__buf_append(w->b, "\",span_id=\"", 11);
        msvc__buf_puts(w->b, ex.span_id);
      }
      msvc__buf_append(w->b, "\"} ", 3);
      n = msvc__metrics_format_double(ex.value, num);
      msvc__buf_append(w->b, num, n);
      msvc__buf_printf(w->b, " %llu.%03u\n", (unsigned long long)(ex.wall_ms / 1000),
                       (unsigned)(ex.wall_ms % 1000));
    }
  }
  n = msvc__metrics_format_double(sum, num);
  put_sample(w, f->name, "_sum", c, NULL, num, n);
  n = msvc__metrics_format_u64(cum, num);
  put_sample(w, f->name, "_count", c, NULL, num, n);
}

static void put_family(writer_t *w) {
  const msvc__queue_t *q;

  if (w->f->nchildren == 0)
    return;
  put_header(w);
  msvc__queue_foreach(q, &w->f->children) {
    const msvc__child_t *c = msvc__container_of(q, msvc__child_t, node);
    if (w->f->type == MSVC_METRICS_COUNTER)
      put_counter(w, c);
    else if (w->f->type == MSVC_METRICS_GAUGE)
      put_gauge(w, c);
    else
      put_histogram(w, c);
  }
}

/* Hooks run without the registry lock so that they may look children up;
 * a snapshot keeps the list stable while they do. */
static int run_hooks(msvc_metrics_registry_t *reg) {
  msvc__hook_t *copy = NULL;
  size_t n, i;

  pthread_mutex_lock(&reg->lock);
  n = reg->nhooks;
  if (n > 0 && (copy = msvc__malloc(n * sizeof(*copy))) != NULL)
    memcpy(copy, reg->hooks, n * sizeof(*copy));
  pthread_mutex_unlock(&reg->lock);
  if (n > 0 && copy == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < n; i++)
    copy[i].fn(reg, copy[i].data);
  msvc__free(copy);
  return MSVC_OK;
}

int msvc_metrics_expose(msvc_metrics_registry_t *reg, msvc_metrics_format_t format,
                        char **out, size_t *len) {
  msvc__buf_t b;
  writer_t w;
  size_t i;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  if (format != MSVC_METRICS_FORMAT_TEXT && format != MSVC_METRICS_FORMAT_OPENMETRICS)
    return MSVC_EINVAL;
  if (reg == NULL && (reg = msvc_metrics_default_registry()) == NULL)
    return MSVC_ENOMEM;
  if ((rc = run_hooks(reg)) != MSVC_OK)
    return rc;
  msvc__buf_init(&b, 0);
  w.b = &b;
  w.om = format == MSVC_METRICS_FORMAT_OPENMETRICS;
  pthread_mutex_lock(&reg->lock);
  for (i = 0; i < reg->nfamilies; i++) {
    msvc__family_t *f = &reg->families[i]->f;
    pthread_mutex_lock(&f->lock);
    w.f = f;
    put_family(&w);
    pthread_mutex_unlock(&f->lock);
  }
  pthread_mutex_unlock(&reg->lock);
  if (w.om)
    msvc__buf_append(&b, "# EOF\n", 6);
  if (b.err != MSVC_OK) {
    rc = b.err;
    msvc__buf_free(&b);
    return rc;
  }
  *out = msvc__buf_detach(&b, len);
  return *out == NULL ? MSVC_ENOMEM : MSVC_OK;
}
