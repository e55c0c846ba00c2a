/*
 * Arbitrary metric names, help texts, label names and label values go
 * through registration, lookup and exposition in both formats; whatever is
 * accepted must give an exposition that a small independent checker of the
 * format accepts. The same bytes also go through Accept negotiation.
 *
 * Input: byte 0 picks the type, byte 1 the number of labels (0-3) and
 * value kinds; the rest is split at NUL bytes into name, help, label names,
 * then label values, one child per full tuple.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics-internal.h"

#define MAX_FIELDS 64

static void fail(const char *why, const char *line) {
  fprintf(stderr, "exposition check failed: %s\nline: %.200s\n", why, line);
  abort();
}

#define NAME_MAX_LEN 4200

typedef struct check_s {
  bool om;
  char help[NAME_MAX_LEN]; /* name of a HELP line waiting for its TYPE */
  char family[NAME_MAX_LEN];
  char type[16];
  char seen[8][NAME_MAX_LEN];
  int nseen;
  double last_bucket;
  bool in_buckets;
  bool eof;
} check_t;

static bool metric_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

/* Name at *p, returned in out; false when empty or too long. */
static bool take_name(const char **p, char *out, size_t cap, bool label) {
  size_t n = 0;

  while (metric_char((*p)[n], n == 0) && !(label && (*p)[n] == ':')) {
    if (n + 1 >= cap)
      return false;
    out[n] = (*p)[n];
    n++;
  }
  out[n] = '\0';
  *p += n;
  return n > 0;
}

/* An escaped string up to (not including) stop; only \\ \n (and \" where
 * allowed) escapes, no raw newline, no raw stop character. */
static const char *take_escaped(const char *p, char stop, bool quote_escape, const char *line) {
  for (; *p != stop; p++) {
    if (*p == '\0' || *p == '\n')
      fail("unterminated string", line);
    if (*p == '"' && stop != '"' && quote_escape)
      fail("raw quote in OpenMetrics help", line);
    if (*p == '\\') {
      p++;
      if (*p != '\\' && *p != 'n' && !(*p == '"' && quote_escape))
        fail("bad escape", line);
    }
  }
  return p;
}

static double take_value(const char *p, const char *line) {
  char *end;
  double v;

  if (strcmp(p, "+Inf") == 0)
    return INFINITY;
  if (strcmp(p, "-Inf") == 0)
    return -INFINITY;
  if (strcmp(p, "NaN") == 0)
    return NAN;
  if (*p == '\0' || (*p != '-' && (*p < '0' || *p > '9')))
    fail("bad value", line);
  v = strtod(p, &end);
  if (*end != '\0' || isinf(v) || isnan(v))
    fail("bad value", line);
  return v;
}

static bool seen_before(const check_t *c, const char *name) {
  int i;

  for (i = 0; i < c->nseen; i++)
    if (strcmp(c->seen[i], name) == 0)
      return true;
  return false;
}

static void check_comment(check_t *c, const char *line) {
  const char *p = line + 7;
  char name[NAME_MAX_LEN];

  if (strcmp(line, "# EOF") == 0) {
    if (!c->om)
      fail("# EOF in text format", line);
    c->eof = true;
    return;
  }
  if (strncmp(line, "# HELP ", 7) != 0 && strncmp(line, "# TYPE ", 7) != 0)
    fail("unknown comment", line);
  if (!take_name(&p, name, sizeof(name), false) || *p != ' ')
    fail("bad name in comment", line);
  if (seen_before(c, name))
    fail("family not contiguous or repeated", line);
  if (line[2] == 'H') {
    if (c->help[0] != '\0')
      fail("two HELP lines", line);
    take_escaped(p + 1, '\0', c->om, line);
    snprintf(c->help, sizeof(c->help), "%s", name);
    return;
  }
  if (c->help[0] != '\0' && strcmp(c->help, name) != 0)
    fail("HELP and TYPE name differ", line);
  c->help[0] = '\0';
  p++;
  if (strcmp(p, "counter") != 0 && strcmp(p, "gauge") != 0 && strcmp(p, "histogram") != 0)
    fail("bad type", line);
  if (c->nseen == 8)
    fail("more families than the input can make", line);
  snprintf(c->seen[c->nseen++], sizeof(c->seen[0]), "%s", name);
  snprintf(c->family, sizeof(c->family), "%s", name);
  snprintf(c->type, sizeof(c->type), "%s", p);
}

static const char *sample_suffix(const check_t *c, const char *name, const char *line) {
  size_t n = strlen(c->family);
  const char *sfx = name + n;

  if (strncmp(name, c->family, n) != 0 || c->type[0] == '\0' || c->help[0] != '\0')
    fail("sample outside its family", line);
  if (strcmp(c->type, "histogram") == 0) {
    if (strcmp(sfx, "_bucket") != 0 && strcmp(sfx, "_sum") != 0 && strcmp(sfx, "_count") != 0)
      fail("bad histogram sample", line);
  } else if (strcmp(c->type, "counter") == 0 && c->om) {
    if (strcmp(sfx, "_total") != 0)
      fail("OpenMetrics counter sample without _total", line);
  } else if (*sfx != '\0') {
    fail("sample name differs from family", line);
  }
  return sfx;
}

static void check_sample(check_t *c, const char *line) {
  const char *p = line, *sfx;
  char name[NAME_MAX_LEN], label[NAME_MAX_LEN], le[64] = "";
  double v;

  if (!take_name(&p, name, sizeof(name), false))
    fail("bad sample name", line);
  sfx = sample_suffix(c, name, line);
  if (*p == '{') {
    p++;
    while (*p != '}') {
      const char *start;
      if (!take_name(&p, label, sizeof(label), true) || p[0] != '=' || p[1] != '"')
        fail("bad label", line);
      if (label[0] == '_' && label[1] == '_')
        fail("reserved label name", line);
      start = p + 2;
      p = take_escaped(start, '"', true, line);
      if (strcmp(label, "le") == 0)
        snprintf(le, sizeof(le), "%.*s", (int)(p - start), start);
      p++;
      if (*p == ',')
        p++;
      else if (*p != '}')
        fail("bad label list", line);
    }
    p++;
  }
  if (*p != ' ')
    fail("no space before value", line);
  v = take_value(p + 1, line);
  if (strcmp(sfx, "_bucket") == 0) {
    if (le[0] == '\0')
      fail("bucket without le", line);
    if (c->in_buckets && v < c->last_bucket)
      fail("buckets not cumulative", line);
    c->in_buckets = strcmp(le, "+Inf") != 0;
    c->last_bucket = v;
  } else if (strcmp(sfx, "_count") == 0 && v != c->last_bucket) {
    fail("_count differs from the +Inf bucket", line);
  }
}

static void check_exposition(const char *text, size_t len, bool om) {
  check_t *c = calloc(1, sizeof(*c));
  const char *p = text;
  char *line = malloc(len + 1);

  if (c == NULL || line == NULL)
    abort();
  c->om = om;
  if (strlen(text) != len || !msvc__utf8_valid(text, len))
    fail("not UTF-8 text", text);
  while (*p != '\0') {
    const char *nl = strchr(p, '\n');
    if (nl == NULL)
      fail("last line without newline", p);
    if (c->eof)
      fail("text after # EOF", p);
    memcpy(line, p, (size_t)(nl - p));
    line[nl - p] = '\0';
    if (line[0] == '#')
      check_comment(c, line);
    else
      check_sample(c, line);
    p = nl + 1;
  }
  if (om && !c->eof)
    fail("no # EOF", text);
  free(line);
  free(c);
}

static double pick_value(uint8_t k) {
  static const double vals[] = {0, 1, 2.5, 1e-9, 1e300, 0.1, -1, 12345678901234567890.0};

  switch (k % 11) {
  case 8:
    return INFINITY;
  case 9:
    return -INFINITY;
  case 10:
    return NAN;
  default:
    return vals[k % 8];
  }
}

static void update(msvc_metrics_family_t *fam, msvc_metrics_type_t type,
                   const char *const *values, size_t n, uint8_t k) {
  msvc_metrics_counter_t *c;
  msvc_metrics_gauge_t *g;
  msvc_metrics_histogram_t *h;
  double v = pick_value(k);

  if (type == MSVC_METRICS_COUNTER && msvc_metrics_counter_get(fam, values, n, &c) == MSVC_OK) {
    msvc_metrics_counter_inc(c);
    msvc_metrics_counter_add(c, v);
  } else if (type == MSVC_METRICS_GAUGE && msvc_metrics_gauge_get(fam, values, n, &g) == 0) {
    msvc_metrics_gauge_set(g, v);
  } else if (type == MSVC_METRICS_HISTOGRAM &&
             msvc_metrics_histogram_get(fam, values, n, &h) == MSVC_OK) {
    msvc_metrics_histogram_observe(h, v);
  }
}

static void expose_and_check(msvc_metrics_registry_t *reg) {
  char *out;
  size_t len;

  if (msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &out, &len) == MSVC_OK) {
    check_exposition(out, len, false);
    msvc_free(out);
  }
  if (msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_OPENMETRICS, &out, &len) == MSVC_OK) {
    check_exposition(out, len, true);
    msvc_free(out);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msvc_metrics_registry_opts_t ro;
  msvc_metrics_registry_t *reg;
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  msvc_metrics_type_t type;
  const char *fields[MAX_FIELDS];
  char *buf, *p;
  size_t nfields = 0, nlabels, i;

  if (size < 2 || size > 4096)
    return 0;
  buf = malloc(size - 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data + 2, size - 2);
  buf[size - 2] = '\0';
  msvc_metrics_negotiate(buf, NULL);
  for (p = buf; nfields < MAX_FIELDS && p <= buf + size - 2; p += strlen(p) + 1)
    fields[nfields++] = p;
  type = (msvc_metrics_type_t)(data[0] % 3);
  nlabels = data[1] % 4;
  msvc_metrics_registry_opts_init(&ro);
  ro.max_series_per_family = 4;
  if (nfields < 2 + nlabels || msvc_metrics_registry_new(&ro, &reg) != MSVC_OK) {
    free(buf);
    return 0;
  }
  msvc_metrics_family_opts_init(&o);
  o.name = fields[0];
  o.help = fields[1];
  o.label_names = fields + 2;
  o.label_count = nlabels;
  if (msvc_metrics_family_new(reg, type, &o, &fam) == MSVC_OK) {
    for (i = 2 + nlabels; i + nlabels <= nfields && (nlabels > 0 || i == 2); i += nlabels) {
      update(fam, type, fields + i, nlabels, (uint8_t)((data[1] >> 2) + i));
      if (nlabels == 0)
        break;
    }
    if (nlabels > 0 && nfields >= 2 + 2 * nlabels)
      msvc_metrics_family_remove(fam, fields + 2 + nlabels, nlabels);
  }
  expose_and_check(reg);
  msvc_metrics_registry_free(reg);
  free(buf);
  return 0;
}
