/*
 * What calls count: msvc_http_client_requests_total once per call with its
 * final outcome, msvc_http_client_attempts_total once per attempt, and
 * status labels only from the documented list.
 */
#include "call_helpers.h"

TestSuite(call_metrics, .timeout = 60);

typedef struct seq_s {
  harness_t *h;
  const char *target;
  int total, done, ok, last_err;
} seq_t;

static void seq_start(seq_t *s);

static void seq_done(int err, const msvc_http_response_t *res, void *data) {
  seq_t *s = data;

  s->done++;
  s->last_err = err;
  if (err == 0 && msvc_http_response_status(res) == 200)
    s->ok++;
  if (s->done < s->total)
    seq_start(s);
}

static void seq_start(seq_t *s) {
  msvc_service_request_t req;

  msvc_service_request_init(&req);
  req.target = s->target;
  req.timeout_ms = 3000;
  req.on_done = seq_done;
  req.data = s;
  cr_assert_eq(msvc__caller_call(s->h->caller, s->h->svc, &req, NULL, NULL), MSVC_OK);
}

static bool seq_finished(void *arg) {
  seq_t *s = arg;
  return s->done == s->total;
}

/* total calls, one after the other. */
static void seq_run(seq_t *s, harness_t *h, const char *target, int total) {
  memset(s, 0, sizeof(*s));
  s->h = h;
  s->target = target;
  s->total = total;
  seq_start(s);
  cr_assert(h_run_until(h, seq_finished, s, 20000), "%d of %d calls done", s->done, total);
}

static double retries(harness_t *h) {
  return msvc_metrics_counter_value(h->caller->targets->retries);
}

static double duration_count(harness_t *h) {
  const char *v[1] = {h->svc};
  msvc_metrics_histogram_t *hg;

  cr_assert_eq(msvc_metrics_histogram_get(h->caller->f_duration, v, 1, &hg), MSVC_OK);
  return (double)msvc_metrics_histogram_count(hg);
}

Test(call_metrics, requests_and_attempts_are_counted_apart) {
  harness_t h;
  seq_t s;
  inst_t *dead;
  double refused;

  /* a long open period: the dead instance's breaker stays closed for the
   * few calls here (10 are needed before it may open) */
  h_init(&h, "calls-count", MSVC_LB_ROUND_ROBIN, 60000);
  h_add_instance(&h, 0);
  dead = h_add_instance(&h, 0);
  h_kill(dead);
  seq_run(&s, &h, "/hello", 8);
  cr_assert_eq(s.ok, 8, "last %s", msvc_err_name(s.last_err));
  refused = h_attempts(&h, "refused");
  cr_log_info("8 calls: %.0f refused attempts, %.0f retries", refused, retries(&h));
  cr_assert_gt(refused, 0);
  cr_assert_eq(refused, retries(&h), "each refused attempt was retried");
  /* a call is one request, however many attempts it took */
  cr_assert_eq(h_requests(&h, "200"), 8);
  cr_assert_eq(h_requests(&h, "refused"), 0);
  cr_assert_eq(h_attempts(&h, "200"), 8);
  cr_assert_eq(duration_count(&h), 8, "one duration per call");
  h_close(&h);
}

static const char *const allowed[] = {"timeout", "refused", "reset", "breaker_open",
                                      "no_endpoints"};

static bool label_allowed(const char *v, size_t n) {
  size_t i;

  if (n == 3 && v[0] >= '1' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9' && v[2] >= '0' &&
      v[2] <= '9')
    return true;
  for (i = 0; i < MSVC__ARRAY_SIZE(allowed); i++)
    if (strlen(allowed[i]) == n && strncmp(allowed[i], v, n) == 0)
      return true;
  return false;
}

/* Every status="..." on the lines of name in the exposition is allowed;
 * returns how many lines were seen. */
static int check_labels(const char *text, const char *name) {
  const char *p = text;
  int lines = 0;

  while ((p = strstr(p, name)) != NULL) {
    const char *eol = strchr(p, '\n'), *st = strstr(p, "status=\"");
    if (p > text && p[-1] != '\n') {
      p += strlen(name);
      continue; /* a HELP or TYPE line */
    }
    cr_assert(st != NULL && st < eol, "no status on %.*s", (int)(eol - p), p);
    st += 8;
    cr_assert(label_allowed(st, strcspn(st, "\"")), "status label not documented: %.*s",
              (int)(eol - p), p);
    lines++;
    p = eol;
  }
  return lines;
}

Test(call_metrics, status_labels_are_the_documented_ones) {
  harness_t h;
  seq_t s;
  cutter_t garbage, cut;
  h_lease_t hl1, hl2;
  char *text;
  size_t len;

  /* 8 calls on three broken instances, breakers never opening, then
   * calls to a service with no instance */
  h_init(&h, "calls-labels", MSVC_LB_ROUND_ROBIN, 60000);
  h.caller->opts.breaker.minimum_calls = 100000;
  h.caller->opts.breaker.window_calls = 100000;
  h_cutter_start(&h.loop, &garbage);
  garbage.reply = "HTTP/1.1 20x Nope\r\n\r\n"; /* malformed: no usable answer */
  h_cutter_start(&h.loop, &cut);
  h_register_port(&h, garbage.port, &hl1);
  h_register_port(&h, cut.port, &hl2);
  seq_run(&s, &h, "/hello", 8);
  cr_assert_eq(s.ok, 0);
  cr_assert_gt(garbage.requests, 0);
  cr_assert_gt(cut.requests, 0);
  /* a malformed answer and a cut are both "reset", for calls and attempts */
  cr_assert_eq(h_requests(&h, "reset"), 8);
  cr_assert_eq(h_attempts(&h, "reset"), garbage.requests + cut.requests);
  snprintf(h.svc, sizeof(h.svc), "calls-labels-nobody");
  seq_run(&s, &h, "/hello", 2);
  cr_assert_eq(s.last_err, MSVC_ENO_ENDPOINTS);
  cr_assert_eq(h_requests(&h, "no_endpoints"), 2);

  cr_assert_eq(msvc_metrics_expose(h.metrics, MSVC_METRICS_FORMAT_TEXT, &text, &len),
               MSVC_OK);
  cr_assert_geq(check_labels(text, "msvc_http_client_requests_total{"), 2);
  cr_assert_geq(check_labels(text, "msvc_http_client_attempts_total{"), 1);
  cr_assert_null(strstr(text, "status=\"error\""), "%s", text);
  msvc_free(text);
  h_cutter_stop(&garbage);
  h_cutter_stop(&cut);
  h_close(&h);
}

Test(call_metrics, error_labels_map_to_the_closest) {
  static const struct {
    int err, status;
    bool sent;
    const char *want;
  } cases[] = {
      {0, 200, true, "200"},
      {0, 503, true, "503"},
      {0, 0, true, "reset"}, /* no status at all: no usable answer */
      {MSVC_ETIMEDOUT, 0, true, "timeout"},
      {MSVC_ETLS_TIMEOUT, 0, false, "timeout"},
      {MSVC_ECONNREFUSED, 0, false, "refused"},
      {MSVC_EHTTP_DNS, 0, false, "refused"},
      {MSVC_EADDRNOTAVAIL, 0, false, "refused"},
      {UV_EHOSTUNREACH, 0, false, "refused"},
      {UV_ENETUNREACH, 0, false, "refused"},
      {MSVC_ETLS, 0, true, "refused"},
      {MSVC_ETLS_CERT, 0, true, "refused"},
      {MSVC_EHTTP_POOL_FULL, 0, false, "refused"},
      {MSVC_ECONNRESET, 0, true, "reset"},
      {MSVC_EPIPE, 0, true, "reset"},
      {MSVC_ECONNABORTED, 0, true, "reset"},
      {MSVC_EHTTP_BAD_RESPONSE, 0, true, "reset"},
      {MSVC_ETOOLARGE, 0, true, "reset"},
      {MSVC_EBREAKER_OPEN, 0, false, "breaker_open"},
      {MSVC_ENO_ENDPOINTS, 0, false, "no_endpoints"},
      /* anything else: by whether the request went out */
      {MSVC_ENOMEM, 0, false, "refused"},
      {MSVC_ENOMEM, 0, true, "reset"},
      {MSVC_EIO, 0, true, "reset"},
  };
  char buf[8];
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(cases); i++)
    cr_assert_str_eq(msvc__call_status_label(cases[i].err, cases[i].status, cases[i].sent, buf),
                     cases[i].want, "%s/%d", msvc_err_name(cases[i].err), cases[i].status);
}
