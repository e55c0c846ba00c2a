/*
 * HTML of the admin pages, made from the same JSON the `?format=json`
 * form answers with, so the two can never disagree and every string goes
 * through one escaping function. Objects become tables of keys and values,
 * arrays of objects become tables with a column per key, arrays of numbers
 * become small inline SVG charts. No script, no external asset.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>

#include "admin-internal.h"

#define MAX_DEPTH 6

static const char STYLE[] =
    ":root{--fg:#1d2330;--mut:#5d6778;--bg:#f6f7f9;--card:#fff;--line:#e2e5ea;"
    "--acc:#2458d6;--ok:#1c7c3c;--bad:#c0392b;--warn:#b7791f}"
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:var(--fg);background:var(--bg)}"
    "header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;"
    "align-items:baseline;gap:16px;flex-wrap:wrap}"
    "header b{font-size:16px}header span{color:#aab3c5}"
    "nav{display:flex;gap:4px;flex-wrap:wrap;padding:8px 20px;background:#fff;"
    "border-bottom:1px solid var(--line)}"
    "nav a{color:var(--fg);text-decoration:none;padding:4px 10px;border-radius:4px}"
    "nav a:hover{background:var(--bg)}nav a.cur{background:var(--acc);color:#fff}"
    "main{padding:16px 20px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));"
    "gap:4px 24px;align-items:start}.wide{grid-column:1/-1}"
    "section{overflow-x:auto}"
    "h1{font-size:20px;margin:4px 0 8px}h2{font-size:13px;margin:14px 0 6px;"
    "color:var(--mut);text-transform:uppercase;letter-spacing:.05em}"
    "table{border-collapse:collapse;background:var(--card);margin:2px 0;"
    "border:1px solid var(--line)}"
    "th,td{padding:4px 10px;text-align:left;vertical-align:top;"
    "border-bottom:1px solid var(--line)}"
    "th{background:#eef1f5;font-weight:600;font-size:12px;color:#3b4455}"
    "td.k{color:var(--mut);white-space:nowrap}td td,td th{font-size:13px}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".b{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;"
    "font-weight:600;color:#fff}"
    ".b-ok{background:var(--ok)}.b-bad{background:var(--bad)}.b-warn{background:var(--warn)}"
    ".none{color:var(--mut)}svg{display:block}.ch small{color:var(--mut);white-space:nowrap}"
    "form{background:var(--card);border:1px solid var(--line);padding:10px;"
    "display:inline-flex;gap:8px;align-items:center}"
    "footer{color:var(--mut);padding:8px 20px;font-size:12px}";

void msvc__admin_html_escape(msvc__buf_t *b, const char *s) {
  const char *p, *run;

  if (s == NULL) return;
  for (run = p = s; *p != '\0'; p++) {
    const char *rep = NULL;

    switch (*p) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&#39;"; break;
    default: continue;
    }
    msvc__buf_append(b, run, (size_t)(p - run));
    msvc__buf_puts(b, rep);
    run = p + 1;
  }
  msvc__buf_append(b, run, (size_t)(p - run));
}

/* States that deserve a colour. */
static const char *badge_class(const char *s) {
  static const char *const ok[] = {"ok", "closed", "ready", "connected", "yes", "up"};
  static const char *const bad[] = {"open", "failing", "not_ready", "excluded", "down",
                                    "disconnected"};
  static const char *const warn[] = {"half_open", "pending", "stale", "draining",
                                     "connecting", "panic"};
  size_t i;

  for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    if (strcmp(s, ok[i]) == 0) return "b-ok";
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (strcmp(s, bad[i]) == 0) return "b-bad";
  for (i = 0; i < sizeof(warn) / sizeof(warn[0]); i++)
    if (strcmp(s, warn[i]) == 0) return "b-warn";
  return NULL;
}

/* A JSON key as a column label: escaped, '_' shown as a space so
 * that long labels can wrap. */
static void put_label(msvc__buf_t *b, const char *key) {
  char tmp[128];
  size_t i;

  for (i = 0; key[i] != '\0' && i < sizeof(tmp) - 1; i++) tmp[i] = key[i] == '_' ? ' ' : key[i];
  tmp[i] = '\0';
  msvc__admin_html_escape(b, tmp);
}

static void put_number(msvc__buf_t *b, double v) {
  if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
    msvc__buf_printf(b, "%.0f", v);
  else if (isfinite(v))
    msvc__buf_printf(b, "%.3g", v);
  else
    msvc__buf_puts(b, "&mdash;");
}

static void put_uint(msvc__buf_t *b, unsigned v) {
  char tmp[12];
  size_t n = sizeof(tmp);

  do {
    tmp[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0 && n > 0);
  msvc__buf_append(b, tmp + n, sizeof(tmp) - n);
}

void msvc__admin_svg_chart(msvc__buf_t *b, const double *v, size_t n) {
  const double w = 170, h = 40;
  double max = 0, last = n > 0 ? v[n - 1] : 0;
  size_t i;

  for (i = 0; i < n; i++)
    if (isfinite(v[i]) && v[i] > max) max = v[i];
  msvc__buf_printf(b, "<div class=\"ch\"><svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                   "role=\"img\" aria-label=\"chart\"><rect width=\"%.0f\" height=\"%.0f\" "
                   "fill=\"#f0f3f8\"/><polyline fill=\"none\" stroke=\"#2458d6\" "
                   "stroke-width=\"1.5\" points=\"",
                   w, h, w, h, w, h);
  /* Whole pixels, formatted by hand: a page draws hundreds of points and
   * printf would take most of its time. */
  for (i = 0; i < n; i++) {
    double x = n > 1 ? (double)i * w / (double)(n - 1) : 0;
    double y = h - 2 - (max > 0 && isfinite(v[i]) ? v[i] / max * (h - 6) : 0);
    if (i > 0) msvc__buf_putc(b, ' ');
    put_uint(b, (unsigned)lround(x));
    msvc__buf_putc(b, ',');
    put_uint(b, (unsigned)lround(y));
  }
  msvc__buf_puts(b, "\"/></svg> <small>now ");
  put_number(b, last);
  msvc__buf_puts(b, ", max ");
  put_number(b, max);
  msvc__buf_puts(b, "</small></div>");
}

static bool all_numbers(const cJSON *a, size_t *n) {
  const cJSON *e;

  *n = 0;
  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsNumber(e)) return false;
    (*n)++;
  }
  return *n >= 2;
}

static bool all_objects(const cJSON *a) {
  const cJSON *e;
  bool any = false;

  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsObject(e)) return false;
    any = true;
  }
  return any;
}

static void chart(msvc__buf_t *b, const cJSON *a, size_t n) {
  double *v = msvc__calloc(n, sizeof(double));
  const cJSON *e;
  size_t i = 0;

  if (v == NULL) {
    b->err = MSVC_ENOMEM;
    return;
  }
  cJSON_ArrayForEach(e, a) {
    if (i < n) v[i++] = e->valuedouble;
  }
  msvc__admin_svg_chart(b, v, n);
  msvc__free(v);
}

/* Columns: every key of every row, in the order first seen (at most 24). */
static size_t columns(const cJSON *a, const char **cols, size_t cap) {
  const cJSON *row, *f;
  size_t n = 0, i;

  cJSON_ArrayForEach(row, a) {
    cJSON_ArrayForEach(f, row) {
      for (i = 0; i < n && strcmp(cols[i], f->string) != 0; i++) {}
      if (i == n && n < cap) cols[n++] = f->string;
    }
  }
  return n;
}

static void table_of_objects(msvc__buf_t *b, const cJSON *a, int depth) {
  const char *cols[24];
  size_t n = columns(a, cols, 24), i;
  const cJSON *row;

  msvc__buf_puts(b, "<table><tr>");
  for (i = 0; i < n; i++) {
    msvc__buf_puts(b, "<th>");
    put_label(b, cols[i]);
    msvc__buf_puts(b, "</th>");
  }
  msvc__buf_puts(b, "</tr>");
  cJSON_ArrayForEach(row, a) {
    msvc__buf_puts(b, "<tr>");
    for (i = 0; i < n; i++) {
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, cols[i]);
      msvc__buf_puts(b, cJSON_IsNumber(c) ? "<td class=\"n\">" : "<td>");
      if (c == NULL) msvc__buf_puts(b, "<span class=\"none\">&mdash;</span>");
      else msvc__admin_html_value(b, c, depth + 1);
      msvc__buf_puts(b, "</td>");
    }
    msvc__buf_puts(b, "</tr>");
  }
  msvc__buf_puts(b, "</table>");
}

static void table_of_keys(msvc__buf_t *b, const cJSON *o, int depth) {
  const cJSON *f;

  if (o->child == NULL) {
    msvc__buf_puts(b, "<span class=\"none\">none</span>");
    return;
  }
  msvc__buf_puts(b, "<table>");
  cJSON_ArrayForEach(f, o) {
    msvc__buf_puts(b, "<tr><td class=\"k\">");
    msvc__admin_html_escape(b, f->string);
    msvc__buf_puts(b, cJSON_IsNumber(f) ? "</td><td class=\"n\">" : "</td><td>");
    msvc__admin_html_value(b, f, depth + 1);
    msvc__buf_puts(b, "</td></tr>");
  }
  msvc__buf_puts(b, "</table>");
}

void msvc__admin_html_value(msvc__buf_t *b, const cJSON *v, int depth) {
  size_t n;

  if (depth > MAX_DEPTH) {
    msvc__buf_puts(b, "&hellip;");
    return;
  }
  if (cJSON_IsString(v)) {
    const char *cls = badge_class(v->valuestring);
    if (cls != NULL) msvc__buf_printf(b, "<span class=\"b %s\">", cls);
    msvc__admin_html_escape(b, v->valuestring);
    if (cls != NULL) msvc__buf_puts(b, "</span>");
  } else if (cJSON_IsNumber(v)) {
    put_number(b, v->valuedouble);
  } else if (cJSON_IsBool(v)) {
    msvc__buf_puts(b, cJSON_IsTrue(v) ? "yes" : "no");
  } else if (cJSON_IsNull(v)) {
    msvc__buf_puts(b, "<span class=\"none\">&mdash;</span>");
  } else if (cJSON_IsObject(v)) {
    table_of_keys(b, v, depth);
  } else if (cJSON_IsArray(v)) {
    if (v->child == NULL) {
      msvc__buf_puts(b, "<span class=\"none\">none</span>");
    } else if (all_numbers(v, &n)) {
      chart(b, v, n);
    } else if (all_objects(v)) {
      table_of_objects(b, v, depth);
    } else {
      const cJSON *e;
      bool first = true;
      cJSON_ArrayForEach(e, v) {
        if (!first) msvc__buf_puts(b, ", ");
        msvc__admin_html_value(b, e, depth + 1);
        first = false;
      }
    }
  }
}

/* The page's plain values (numbers, strings) together in one table. */
static void page_scalars(msvc__buf_t *b, const cJSON *page) {
  const cJSON *f;
  bool any = false;

  cJSON_ArrayForEach(f, page) {
    if (cJSON_IsObject(f) || cJSON_IsArray(f)) continue;
    if (!any) msvc__buf_puts(b, "<section class=\"wide\"><table>");
    any = true;
    msvc__buf_puts(b, "<tr><td class=\"k\">");
    msvc__admin_html_escape(b, f->string);
    msvc__buf_puts(b, cJSON_IsNumber(f) ? "</td><td class=\"n\">" : "</td><td>");
    msvc__admin_html_value(b, f, 1);
    msvc__buf_puts(b, "</td></tr>");
  }
  if (any) msvc__buf_puts(b, "</table></section>");
}

void msvc__admin_html_page(msvc__buf_t *b, const char *service, const char *title,
                           const msvc__admin_nav_t *nav, size_t nnav,
                           const char *current, const cJSON *page,
                           const char *extra_html) {
  const cJSON *f;
  size_t i;

  msvc__buf_puts(b, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width\">"
                    "<link rel=\"icon\" href=\"data:,\"><title>");
  msvc__admin_html_escape(b, title);
  msvc__buf_puts(b, " &middot; ");
  msvc__admin_html_escape(b, service);
  msvc__buf_puts(b, "</title><style>");
  msvc__buf_puts(b, STYLE);
  msvc__buf_puts(b, "</style></head><body><header><b>");
  msvc__admin_html_escape(b, service);
  msvc__buf_puts(b, "</b><span>libmsvc admin</span></header><nav>");
  for (i = 0; i < nnav; i++) {
    msvc__buf_puts(b, "<a href=\"/debug/");
    msvc__admin_html_escape(b, nav[i].name);
    msvc__buf_puts(b, strcmp(nav[i].name, current) == 0 ? "\" class=\"cur\">" : "\">");
    msvc__admin_html_escape(b, nav[i].title);
    msvc__buf_puts(b, "</a>");
  }
  msvc__buf_puts(b, "</nav><main><h1>");
  msvc__admin_html_escape(b, title);
  msvc__buf_puts(b, "</h1>");
  if (extra_html != NULL) msvc__buf_puts(b, extra_html);
  msvc__buf_puts(b, "<div class=\"grid\">");
  page_scalars(b, page);
  cJSON_ArrayForEach(f, page) {
    if (!cJSON_IsObject(f) && !cJSON_IsArray(f)) continue;
    /* Tables of rows need the whole width; key-value cards share it. */
    msvc__buf_puts(b, cJSON_IsArray(f) ? "<section class=\"wide\"><h2>" : "<section><h2>");
    msvc__admin_html_escape(b, f->string);
    msvc__buf_puts(b, "</h2>");
    msvc__admin_html_value(b, f, 0);
    msvc__buf_puts(b, "</section>");
  }
  msvc__buf_puts(b, "</div></main><footer>Also as JSON: <a href=\"?format=json\">?format=json</a>"
                    "</footer></body></html>");
}
