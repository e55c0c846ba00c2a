/* Request id, trace context and access log middlewares: parser units, then
 * a live server on 127.0.0.1 with every middleware installed. */
#include <pthread.h>

#include <msvc/log.h>

#include "helpers.h"

/* ---- traceparent parser ------------------------------------------------ */

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

typedef struct tp_case_s {
  const char *in;
  bool ok;
} tp_case_t;

static const tp_case_t tp_cases[] = {
    {"00-" TID "-" PID "-01", true},
    {"00-" TID "-" PID "-00", true},
    {"  00-" TID "-" PID "-01\t", true},            /* optional whitespace */
    {"01-" TID "-" PID "-01-extra", true},          /* future version, more fields */
    {"01-" TID "-" PID "-01", true},                /* future version, exact */
    {"01-" TID "-" PID "-01x", false},              /* future: no dash before more */
    {"00-" TID "-" PID "-01-extra", false},         /* version 00 is exactly 55 */
    {"ff-" TID "-" PID "-01", false},               /* forbidden version */
    {"00-00000000000000000000000000000000-" PID "-01", false}, /* zero trace */
    {"00-" TID "-0000000000000000-01", false},      /* zero parent */
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", false}, /* upper case */
    {"00-" TID "-" PID "-0g", false},
    {"0x-" TID "-" PID "-01", false},
    {"00_" TID "-" PID "-01", false},
    {"00-" TID "_" PID "-01", false},
    {"00-" TID "-" PID "_01", false},
    {"00-" TID "-" PID, false},                     /* truncated */
    {"00-" TID "-" PID "-1", false},
    {"", false},
    {"garbage", false},
};

Test(traceparent, table) {
  size_t i;

  for (i = 0; i < sizeof(tp_cases) / sizeof(tp_cases[0]); i++) {
    msvc_mw_trace_t t;
    int rc = msvc_mw_traceparent_parse(tp_cases[i].in, strlen(tp_cases[i].in), &t);
    cr_expect_eq(rc == MSVC_OK, tp_cases[i].ok, "case %zu: '%s' gave %d", i,
                 tp_cases[i].in, rc);
    if (rc == MSVC_OK) {
      cr_expect_str_eq(t.trace_id, TID);
      cr_expect_str_eq(t.parent_id, PID);
      cr_expect_str_eq(t.span_id, "");
    }
  }
}

Test(traceparent, flags_and_bounds) {
  msvc_mw_trace_t t;
  const char *s = "00-" TID "-" PID "-03";

  cr_assert_eq(msvc_mw_traceparent_parse(s, strlen(s), &t), MSVC_OK);
  cr_assert_eq(t.flags, 3);
  /* The length bounds the read: a valid prefix is not a valid value. */
  cr_assert_eq(msvc_mw_traceparent_parse(s, 54, &t), MSVC_EINVAL);
  cr_assert_eq(msvc_mw_traceparent_parse(NULL, 0, &t), MSVC_EINVAL);
  cr_assert_eq(msvc_mw_traceparent_parse(s, strlen(s), NULL), MSVC_EINVAL);
}

Test(traceparent, child_and_format) {
  msvc_mw_trace_t in, hop, next, fresh;
  char out[MSVC_MW_TRACEPARENT_LEN];
  const char *s = "00-" TID "-" PID "-01";

  cr_assert_eq(msvc_mw_traceparent_parse(s, strlen(s), &in), MSVC_OK);
  cr_assert_eq(msvc_mw_trace_child(&in, &hop), MSVC_OK);
  cr_assert_str_eq(hop.trace_id, TID);
  cr_assert_str_eq(hop.parent_id, PID);
  cr_assert_eq(strlen(hop.span_id), 16);
  cr_assert_str_neq(hop.span_id, PID);
  cr_assert_eq(hop.flags, 1);
  cr_assert_eq(msvc_mw_traceparent_format(&hop, out, sizeof(out)), MSVC_OK);
  cr_assert_eq(strlen(out), 55);
  cr_assert_eq(strncmp(out, "00-" TID "-", 36), 0);
  cr_assert_eq(strncmp(out + 36, hop.span_id, 16), 0);
  cr_assert_str_eq(out + 52, "-01");
  /* What we send parses back to this hop as the parent. */
  cr_assert_eq(msvc_mw_traceparent_parse(out, strlen(out), &next), MSVC_OK);
  cr_assert_str_eq(next.parent_id, hop.span_id);
  /* A child of a context that has a span takes that span as parent. */
  cr_assert_eq(msvc_mw_trace_child(&hop, &next), MSVC_OK);
  cr_assert_str_eq(next.parent_id, hop.span_id);

  cr_assert_eq(msvc_mw_trace_child(NULL, &fresh), MSVC_OK);
  cr_assert_eq(strlen(fresh.trace_id), 32);
  cr_assert_str_neq(fresh.trace_id, TID);
  cr_assert_str_eq(fresh.parent_id, "");
  cr_assert_eq(fresh.flags, 0);
  cr_assert_eq(msvc_mw_traceparent_format(&fresh, out, 55), MSVC_ERANGE);
  cr_assert_eq(msvc_mw_traceparent_format(&in, out, sizeof(out)), MSVC_EINVAL,
               "no span id yet");
  cr_assert_eq(msvc_mw_trace_child(NULL, NULL), MSVC_EINVAL);
}

Test(request_id, validity) {
  char big[MSVC_MW_REQUEST_ID_MAX + 2];

  cr_assert(msvc_mw_request_id_valid("abc-123_XYZ.~!", 14));
  cr_assert_not(msvc_mw_request_id_valid("", 0));
  cr_assert_not(msvc_mw_request_id_valid(NULL, 3));
  cr_assert_not(msvc_mw_request_id_valid("a b", 3));
  cr_assert_not(msvc_mw_request_id_valid("a\tb", 3));
  cr_assert_not(msvc_mw_request_id_valid("a\x7f", 2));
  cr_assert_not(msvc_mw_request_id_valid("caf\xc3\xa9", 5));
  memset(big, 'a', sizeof(big));
  cr_assert(msvc_mw_request_id_valid(big, MSVC_MW_REQUEST_ID_MAX));
  cr_assert_not(msvc_mw_request_id_valid(big, MSVC_MW_REQUEST_ID_MAX + 1));
}

/* ---- live server ------------------------------------------------------- */

/* Echoes what the middlewares made available to handlers. */
static void on_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *id = msvc_mw_request_id(req), *ts = msvc_mw_tracestate(req);
  const msvc_mw_trace_t *t = msvc_mw_trace(req);
  char out[MSVC_MW_TRACEPARENT_LEN], body[1024];
  int n;

  (void)data;
  if (t == NULL || msvc_mw_traceparent_format(t, out, sizeof(out)) != MSVC_OK)
    strcpy(out, "none");
  n = snprintf(body, sizeof(body), "id=%s\ntrace=%s\nparent=%s\nsend=%s\nstate=%s\n",
               id != NULL ? id : "none", t != NULL ? t->trace_id : "none",
               t != NULL ? t->parent_id : "none", out, ts != NULL ? ts : "none");
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static void setup_all(msvc_http_server_t *srv, void *data) {
  (void)data;
  cr_assert_eq(msvc_mw_request_id_use(srv), MSVC_OK);
  cr_assert_eq(msvc_mw_trace_use(srv), MSVC_OK);
  cr_assert_eq(msvc_mw_access_log_use(srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/items/:id", on_echo, NULL, NULL),
               MSVC_OK);
}

/* Value of "key=" on a line of body, copied into out. */
static const char *field(const char *body, const char *key, char *out, size_t cap) {
  char pat[64];
  const char *p, *e;

  snprintf(pat, sizeof(pat), "%s=", key);
  p = strstr(body, pat);
  cr_assert_not_null(p, "no %s in %s", key, body);
  p += strlen(pat);
  e = strchr(p, '\n');
  snprintf(out, cap, "%.*s", (int)(e - p), p);
  return out;
}

static bool is_hex(const char *s, size_t n) {
  size_t i;
  if (strlen(s) != n)
    return false;
  for (i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

Test(mw_live, request_id_reuse_generate_replace, .timeout = 20) {
  srvthread_t t;
  resp_t r;
  char hdr[256], v[256], id1[64];

  st_start(&t, setup_all, NULL);
  /* Reused as it came. */
  cr_assert_eq(cl_get(t.port, "/items/1", "X-Request-Id: req-42.abc\r\n", &r), 200);
  cr_assert_str_eq(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), "req-42.abc");
  cr_assert_str_eq(field(r.body, "id", v, sizeof(v)), "req-42.abc");
  resp_free(&r);
  /* Generated when absent, different each time. */
  cr_assert_eq(cl_get(t.port, "/items/1", "", &r), 200);
  cr_assert_not_null(resp_header(&r, "X-Request-Id", id1, sizeof(id1)));
  cr_assert(is_hex(id1, 32), "generated id %s", id1);
  cr_assert_str_eq(field(r.body, "id", v, sizeof(v)), id1);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/items/1", "", &r), 200);
  cr_assert_str_neq(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), id1);
  resp_free(&r);
  /* Invalid ones are replaced: a space inside, non-ASCII, too long. */
  cr_assert_eq(cl_get(t.port, "/items/1", "X-Request-Id: two words\r\n", &r), 200);
  cr_assert(is_hex(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), 32), "%s", hdr);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/items/1", "X-Request-Id: caf\xc3\xa9\r\n", &r), 200);
  cr_assert(is_hex(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), 32), "%s", hdr);
  resp_free(&r);
  {
    char big[300];
    memset(v, 'x', 129);
    v[129] = '\0';
    snprintf(big, sizeof(big), "X-Request-Id: %s\r\n", v);
    cr_assert_eq(cl_get(t.port, "/items/1", big, &r), 200);
    cr_assert(is_hex(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), 32), "%s", hdr);
    resp_free(&r);
  }
  /* Unmatched requests carry an id too. */
  cr_assert_eq(cl_get(t.port, "/nowhere", "X-Request-Id: lost-1\r\n", &r), 404);
  cr_assert_str_eq(resp_header(&r, "X-Request-Id", hdr, sizeof(hdr)), "lost-1");
  resp_free(&r);
  st_stop(&t);
}

Test(mw_live, traceparent_valid_invalid_absent, .timeout = 20) {
  srvthread_t t;
  resp_t r;
  char v[256], send[128], span[32];

  st_start(&t, setup_all, NULL);
  /* Valid: trace kept, caller's span is the parent, new span for this hop. */
  cr_assert_eq(cl_get(t.port, "/items/2",
                      "traceparent: 00-" TID "-" PID "-01\r\ntracestate: k=v\r\n", &r),
               200);
  cr_assert_str_eq(field(r.body, "trace", v, sizeof(v)), TID);
  cr_assert_str_eq(field(r.body, "parent", v, sizeof(v)), PID);
  cr_assert_str_eq(field(r.body, "state", v, sizeof(v)), "k=v");
  field(r.body, "send", send, sizeof(send));
  cr_assert_eq(strlen(send), 55);
  cr_assert_eq(strncmp(send, "00-" TID "-", 36), 0);
  snprintf(span, sizeof(span), "%.16s", send + 36);
  cr_assert(is_hex(span, 16));
  cr_assert_str_neq(span, PID);
  cr_assert_str_eq(send + 52, "-01");
  resp_free(&r);
  /* Invalid: a new trace; tracestate dropped with it. */
  cr_assert_eq(cl_get(t.port, "/items/2",
                      "traceparent: 00-" TID "-" PID "-01-junk\r\ntracestate: k=v\r\n",
                      &r),
               200);
  cr_assert(is_hex(field(r.body, "trace", v, sizeof(v)), 32));
  cr_assert_str_neq(v, TID);
  cr_assert_str_eq(field(r.body, "parent", v, sizeof(v)), "");
  cr_assert_str_eq(field(r.body, "state", v, sizeof(v)), "none");
  cr_assert_str_eq(field(r.body, "send", v, sizeof(v)) + 52, "-00");
  resp_free(&r);
  /* Absent: a new trace as well. */
  cr_assert_eq(cl_get(t.port, "/items/2", "", &r), 200);
  cr_assert(is_hex(field(r.body, "trace", v, sizeof(v)), 32));
  cr_assert_str_eq(field(r.body, "parent", v, sizeof(v)), "");
  resp_free(&r);
  st_stop(&t);
}

/* ---- access log -------------------------------------------------------- */

typedef struct sink_s {
  pthread_mutex_t mu;
  char lines[16][2048];
  int n;
} sink_t;

static void capture(void *data, msvc_log_level_t level, const char *line, size_t len) {
  sink_t *s = data;

  (void)level;
  pthread_mutex_lock(&s->mu);
  if (s->n < 16 && strstr(line, MSVC_MW_ACCESS_LOG_COMPONENT) != NULL)
    snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%.*s", (int)len, line);
  pthread_mutex_unlock(&s->mu);
}

/* The after-hook runs before the response is written, so the line exists
 * by the time the client has its answer. */
static int sink_count(sink_t *s) {
  int n;
  pthread_mutex_lock(&s->mu);
  n = s->n;
  pthread_mutex_unlock(&s->mu);
  return n;
}

Test(mw_live, access_log_text_and_json, .timeout = 20) {
  static sink_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  srvthread_t t;
  resp_t r;
  char hdr[64];

  msvc_log_reset();
  msvc_log_set_sink(capture, &s);
  st_start(&t, setup_all, NULL);
  cr_assert_eq(cl_get(t.port, "/items/77?q=1", "X-Request-Id: log-1\r\n", &r), 200);
  resp_free(&r);
  cr_assert_eq(sink_count(&s), 1);
  cr_assert_not_null(strstr(s.lines[0], "INFO  access: request method=GET "
                                        "route=/items/:id path=/items/77 status=200 "),
                     "%s", s.lines[0]);
  cr_assert_not_null(strstr(s.lines[0], " bytes_in=0 request_id=log-1 trace_id="));
  cr_assert_not_null(strstr(s.lines[0], " duration_ms="));
  cr_assert_not_null(strstr(s.lines[0], " peer=127.0.0.1:"));

  msvc_log_set_format(MSVC_LOG_FORMAT_JSON);
  cr_assert_eq(cl_get(t.port, "/missing", "", &r), 404);
  resp_header(&r, "X-Request-Id", hdr, sizeof(hdr));
  resp_free(&r);
  cr_assert_eq(sink_count(&s), 2);
  cr_assert_not_null(strstr(s.lines[1], "\"component\":\"access\",\"msg\":\"request\","
                                        "\"method\":\"GET\",\"route\":\"unmatched\","
                                        "\"path\":\"/missing\",\"status\":\"404\""),
                     "%s", s.lines[1]);
  cr_assert_not_null(strstr(s.lines[1], hdr), "the generated id is logged");

  /* Above info, nothing is written. */
  msvc_log_set_level(MSVC_LOG_WARN);
  cr_assert_eq(cl_get(t.port, "/items/1", "", &r), 200);
  resp_free(&r);
  st_stop(&t);
  cr_assert_eq(sink_count(&s), 2);
  msvc_log_reset();
}

static void setup_log_only(msvc_http_server_t *srv, void *data) {
  (void)data;
  cr_assert_eq(msvc_mw_access_log_use(srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/items/:id", on_echo, NULL, NULL),
               MSVC_OK);
}

Test(mw_live, alone_without_context, .timeout = 20) {
  static sink_t s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  srvthread_t t;
  resp_t r;
  char v[128];

  msvc_log_reset();
  msvc_log_set_sink(capture, &s);
  st_start(&t, setup_log_only, NULL);
  cr_assert_eq(cl_get(t.port, "/items/5", "X-Request-Id: ignored\r\n", &r), 200);
  cr_assert_str_eq(field(r.body, "id", v, sizeof(v)), "none");
  cr_assert_str_eq(field(r.body, "trace", v, sizeof(v)), "none");
  cr_assert_null(resp_header(&r, "X-Request-Id", v, sizeof(v)));
  resp_free(&r);
  st_stop(&t);
  cr_assert_eq(sink_count(&s), 1);
  cr_assert_not_null(strstr(s.lines[0], "request_id=- trace_id=-"), "%s", s.lines[0]);
  msvc_log_reset();
}
