/*
 * The tracez page: recent and slowest traces per route, read from the
 * tracer's local recording (src/trace/tracez.c). The JSON form lists each
 * trace's spans with offsets from the root's start; the HTML form draws
 * each trace as a waterfall in inline SVG (no script, no external asset).
 */
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>

#include "../service/service-core.h"
#include "../trace/trace-internal.h"
#include "admin-internal.h"

static const char *kind_name(int k) {
  static const char *const names[] = {"unspecified", "internal", "server", "client",
                                      "producer", "consumer"};
  return k >= 0 && k <= 5 ? names[k] : "unspecified";
}

static const char *status_name(int s) {
  return s == MSVC_SPAN_STATUS_ERROR ? "error" : s == MSVC_SPAN_STATUS_OK ? "ok" : "unset";
}

static double ms_of(uint64_t ns) { return (double)(ns / 1000u) / 1000.0; }

static cJSON *trace_json(const msvc__tracez_trace_t *t) {
  const msvc__tracez_span_t *root = &t->spans[0];
  char ts[MSVC__RFC3339_LEN];
  cJSON *o = cJSON_CreateObject(), *spans;
  uint32_t i;

  if (o == NULL || (spans = cJSON_CreateArray()) == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  msvc__format_rfc3339_ms(root->start_ns / 1000000u, ts);
  cJSON_AddStringToObject(o, "trace_id", root->trace_id);
  cJSON_AddStringToObject(o, "started_at", ts);
  cJSON_AddNumberToObject(o, "duration_ms", ms_of(root->end_ns - root->start_ns));
  cJSON_AddStringToObject(o, "status", status_name(root->status));
  cJSON_AddNumberToObject(o, "spans_dropped", t->dropped);
  cJSON_AddItemToObject(o, "spans", spans);
  for (i = 0; i < t->nspans; i++) {
    const msvc__tracez_span_t *s = &t->spans[i];
    cJSON *j = cJSON_CreateObject();

    if (j == NULL) {
      cJSON_Delete(o);
      return NULL;
    }
    cJSON_AddItemToArray(spans, j);
    cJSON_AddStringToObject(j, "name", s->name);
    cJSON_AddStringToObject(j, "kind", kind_name(s->kind));
    cJSON_AddStringToObject(j, "span_id", s->span_id);
    cJSON_AddStringToObject(j, "parent_span_id", s->parent_id);
    /* A child may start before its root's clock reading: never negative. */
    cJSON_AddNumberToObject(j, "offset_ms", s->start_ns > root->start_ns
                                                ? ms_of(s->start_ns - root->start_ns)
                                                : 0.0);
    cJSON_AddNumberToObject(j, "duration_ms", ms_of(s->end_ns - s->start_ns));
    cJSON_AddStringToObject(j, "status", status_name(s->status));
    cJSON_AddStringToObject(j, "attributes", s->detail);
  }
  return o;
}

static int traces_json(cJSON *route, const char *key, const msvc__tracez_trace_t *t,
                       uint32_t n, uint32_t first, bool ring) {
  cJSON *a = cJSON_AddArrayToObject(route, key);
  uint32_t i;

  if (a == NULL) return MSVC_ENOMEM;
  for (i = 0; i < n; i++) {
    /* The ring's newest entry is just before its next slot. */
    uint32_t k = ring ? (first + MSVC__TRACEZ_KEEP - 1 - i) % MSVC__TRACEZ_KEEP : i;
    cJSON *j = trace_json(&t[k]);

    if (j == NULL) return MSVC_ENOMEM;
    cJSON_AddItemToArray(a, j);
  }
  return MSVC_OK;
}

int msvc__admin_page_tracez(msvc__admin_t *a, cJSON *out) {
  msvc__tracez_route_t *routes;
  msvc__tracez_stats_t st;
  cJSON *rec, *arr;
  size_t n, i;
  int rc;

  rec = cJSON_AddObjectToObject(out, "recording");
  if (rec == NULL) return MSVC_ENOMEM;
  rc = msvc__tracez_snapshot(a->svc->tracer, &routes, &n, &st);
  if (rc == MSVC_ENOENT) {
    cJSON_AddStringToObject(rec, "state", "off");
    return MSVC_OK;
  }
  if (rc != MSVC_OK) return rc;
  cJSON_AddStringToObject(rec, "state", "on");
  cJSON_AddNumberToObject(rec, "spans_seen", (double)st.spans);
  cJSON_AddNumberToObject(rec, "traces_seen", (double)st.traces);
  cJSON_AddNumberToObject(rec, "traces_of_untracked_routes", (double)st.untracked);
  cJSON_AddNumberToObject(rec, "routes_max", MSVC__TRACEZ_ROUTES);
  cJSON_AddNumberToObject(rec, "traces_kept_per_list", MSVC__TRACEZ_KEEP);
  cJSON_AddNumberToObject(rec, "spans_per_trace_max", MSVC__TRACEZ_SPANS);
  if ((arr = cJSON_AddArrayToObject(out, "routes")) == NULL) rc = MSVC_ENOMEM;
  for (i = 0; i < n && rc == MSVC_OK; i++) {
    const msvc__tracez_route_t *r = &routes[i];
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) {
      rc = MSVC_ENOMEM;
      break;
    }
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "route", r->name);
    cJSON_AddNumberToObject(o, "requests", (double)r->count);
    cJSON_AddNumberToObject(o, "errors", (double)r->errors);
    cJSON_AddNumberToObject(o, "slowest_ms", r->nslow > 0
                                                 ? ms_of(r->slow[0].spans[0].end_ns -
                                                         r->slow[0].spans[0].start_ns)
                                                 : 0.0);
    rc = traces_json(o, "slowest", r->slow, r->nslow, 0, false);
    if (rc == MSVC_OK)
      rc = traces_json(o, "recent", r->recent, r->nrecent, r->recent_next, true);
  }
  msvc__free(routes);
  return rc;
}

/* ---- HTML ------------------------------------------------------------------ */

#define WF_LABEL 300 /* label column, px */
#define WF_BARS 480  /* bar area, px */
#define WF_ROW 18

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* Depth of a span: hops to the root through parents inside the trace. */
static int depth_of(const cJSON *spans, const cJSON *s) {
  int d = 0;

  while (d < 8) {
    const char *pid = str(s, "parent_span_id");
    const cJSON *p = NULL, *e;

    cJSON_ArrayForEach(e, spans) {
      if (strcmp(str(e, "span_id"), pid) == 0) p = e;
    }
    if (p == NULL || p == s) break;
    s = p;
    d++;
  }
  return d;
}

static const char *bar_colour(const cJSON *s) {
  const char *k = str(s, "kind");

  if (strcmp(str(s, "status"), "error") == 0) return "#c0392b";
  if (strcmp(k, "server") == 0 || strcmp(k, "consumer") == 0) return "#2458d6";
  if (strcmp(k, "client") == 0 || strcmp(k, "producer") == 0) return "#d9822b";
  return "#7a8599";
}

static void waterfall(msvc__buf_t *b, const cJSON *trace) {
  const cJSON *spans = cJSON_GetObjectItemCaseSensitive(trace, "spans"), *s;
  double total = num(trace, "duration_ms");
  int rows = cJSON_GetArraySize(spans), i = 0;

  if (total <= 0) total = 0.001;
  msvc__buf_printf(b, "<p class=\"tz\"><code>%.32s</code> &middot; %.3f ms &middot; %s",
                   str(trace, "trace_id"), num(trace, "duration_ms"),
                   str(trace, "started_at"));
  if (num(trace, "spans_dropped") > 0)
    msvc__buf_printf(b, " &middot; %.0f spans not shown", num(trace, "spans_dropped"));
  msvc__buf_printf(b, "</p><svg class=\"wf\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "role=\"img\">",
                   WF_LABEL + WF_BARS + 70, rows * WF_ROW, WF_LABEL + WF_BARS + 70,
                   rows * WF_ROW);
  cJSON_ArrayForEach(s, spans) {
    double off = num(s, "offset_ms"), d = num(s, "duration_ms");
    double x = WF_LABEL + off / total * WF_BARS, w = d / total * WF_BARS;
    int y = i * WF_ROW;

    if (x > WF_LABEL + WF_BARS) x = WF_LABEL + WF_BARS;
    if (w < 1) w = 1;
    if (x + w > WF_LABEL + WF_BARS + 1) w = WF_LABEL + WF_BARS + 1 - x;
    msvc__buf_printf(b, "<g><title>");
    msvc__admin_html_escape(b, str(s, "name"));
    msvc__buf_printf(b, " (%s, %.3f ms at +%.3f ms) ", str(s, "kind"), d, off);
    msvc__admin_html_escape(b, str(s, "attributes"));
    msvc__buf_printf(b, "</title><text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#1d2330\">",
                     4 + 12 * depth_of(spans, s), y + 13);
    msvc__admin_html_escape(b, str(s, "name"));
    msvc__buf_printf(b, "</text><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                        "rx=\"2\" fill=\"%s\"/><text x=\"%.1f\" y=\"%d\" font-size=\"11\" "
                        "fill=\"#5d6778\">%.2f ms</text></g>",
                     x, y + 3, w, WF_ROW - 6, bar_colour(s), x + w + 4, y + 13, d);
    i++;
  }
  msvc__buf_puts(b, "</svg>");
}

static void trace_list(msvc__buf_t *b, const cJSON *route, const char *key,
                       const char *heading) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(route, key), *t;

  msvc__buf_printf(b, "<h3>%s</h3>", heading);
  if (cJSON_GetArraySize(a) == 0) msvc__buf_puts(b, "<p class=\"none\">none yet</p>");
  cJSON_ArrayForEach(t, a) waterfall(b, t);
}

void msvc__admin_html_tracez(msvc__buf_t *b, const cJSON *page) {
  const cJSON *rec = cJSON_GetObjectItemCaseSensitive(page, "recording");
  const cJSON *routes = cJSON_GetObjectItemCaseSensitive(page, "routes"), *r;

  if (strcmp(str(rec, "state"), "on") != 0) {
    msvc__buf_puts(b, "<p class=\"none\">Span recording is off.</p>");
    return;
  }
  msvc__buf_printf(b, "<p class=\"none\">%.0f spans and %.0f traces seen; per route the %d "
                      "slowest and %d most recent traces are kept, up to %d spans each "
                      "(server and consumer spans blue, client and producer orange, "
                      "errors red).</p>",
                   num(rec, "spans_seen"), num(rec, "traces_seen"), MSVC__TRACEZ_KEEP,
                   MSVC__TRACEZ_KEEP, MSVC__TRACEZ_SPANS);
  msvc__buf_puts(b, "<section class=\"wide\"><table><tr><th>Route</th><th>Requests</th>"
                    "<th>Errors</th><th>Slowest (ms)</th></tr>");
  cJSON_ArrayForEach(r, routes) {
    msvc__buf_puts(b, "<tr><td>");
    msvc__admin_html_escape(b, str(r, "route"));
    msvc__buf_printf(b, "</td><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td>"
                        "<td class=\"n\">%.3f</td></tr>",
                     num(r, "requests"), num(r, "errors"), num(r, "slowest_ms"));
  }
  msvc__buf_puts(b, "</table></section>");
  cJSON_ArrayForEach(r, routes) {
    msvc__buf_puts(b, "<section class=\"wide\"><h2>");
    msvc__admin_html_escape(b, str(r, "route"));
    msvc__buf_puts(b, "</h2>");
    trace_list(b, r, "slowest", "Slowest");
    trace_list(b, r, "recent", "Recent");
    msvc__buf_puts(b, "</section>");
  }
}

msvc__admin_html_fn msvc__admin_page_html(const char *name) {
  return strcmp(name, "tracez") == 0 ? msvc__admin_html_tracez : NULL;
}
