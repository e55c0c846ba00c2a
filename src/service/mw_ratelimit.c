/*
 * Rate limit middleware: a key from the request, a token bucket per key
 * (src/limit), 429 RATE_LIMITED with Retry-After and the RateLimit-*
 * headers of the IETF draft.
 *
 * The object is not bound to a server, so the same buckets serve every
 * worker loop; the before-hook builds the key on the stack and never
 * allocates except for the headers it adds.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include <msvc/middleware.h>

#include "msvc-internal.h"
#include "mw-internal.h"

#define KEY_CAP 512

struct msvc_mw_ratelimit_s {
  msvc_http_middleware_t mw;
  msvc_limit_rate_t *rl;
  msvc_mw_ratelimit_key_t key;
  char *name;
  char *header;
  char *method;
  char *route;
  unsigned hops;
  bool headers_on_success;
  msvc_limit_rate_opts_t rate;
  msvc_metrics_counter_t *rejected;
  struct msvc_mw_ratelimit_s *next; /* every live limit, for the admin page */
};

/* The live rate limit middlewares of the process, for the admin page. */
static uv_once_t live_once = UV_ONCE_INIT;
static uv_mutex_t live_mu;
static msvc_mw_ratelimit_t *live;

static void live_init(void) { (void)uv_mutex_init(&live_mu); }

static const char *key_kind(msvc_mw_ratelimit_key_t k) {
  switch (k) {
  case MSVC_MW_RATELIMIT_BY_ADDRESS: return "address";
  case MSVC_MW_RATELIMIT_BY_ROUTE: return "route";
  case MSVC_MW_RATELIMIT_BY_HEADER: return "header";
  case MSVC_MW_RATELIMIT_BY_SUBJECT: return "subject";
  }
  return "?";
}

void msvc__mw_ratelimit_foreach(void (*fn)(const msvc__mw_ratelimit_info_t *info, void *arg),
                                void *arg) {
  msvc_mw_ratelimit_t *m;

  uv_once(&live_once, live_init);
  uv_mutex_lock(&live_mu);
  for (m = live; m != NULL; m = m->next) {
    msvc__mw_ratelimit_info_t in;

    memset(&in, 0, sizeof(in));
    in.name = m->name;
    in.key = key_kind(m->key);
    in.header = m->header;
    in.method = m->method;
    in.route = m->route;
    in.rate = m->rate.rate;
    in.period_ms = m->rate.period_ms;
    in.burst = m->rate.burst;
    in.max_keys = m->rate.max_keys;
    in.share = msvc_limit_rate_share(m->rl);
    (void)msvc_limit_rate_stats(m->rl, &in.stats);
    fn(&in, arg);
  }
  uv_mutex_unlock(&live_mu);
}

void msvc_mw_ratelimit_opts_init(msvc_mw_ratelimit_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->key = MSVC_MW_RATELIMIT_BY_ADDRESS;
  msvc_limit_rate_opts_init(&opts->rate);
  opts->headers_on_success = true;
}

static uint64_t seconds_up(uint64_t ms) {
  uint64_t s = ms / 1000 + (ms % 1000 != 0);

  return s > 86400 ? 86400 : s;
}

int msvc_mw_ratelimit_headers(msvc_http_res_t *res, const msvc_limit_result_t *r) {
  char v[24];
  int rc;

  if (res == NULL || r == NULL) return MSVC_EINVAL;
  snprintf(v, sizeof(v), "%u", r->limit);
  if ((rc = msvc_http_res_header(res, "RateLimit-Limit", v)) != MSVC_OK) return rc;
  snprintf(v, sizeof(v), "%u", r->remaining);
  if ((rc = msvc_http_res_header(res, "RateLimit-Remaining", v)) != MSVC_OK) return rc;
  snprintf(v, sizeof(v), "%llu", (unsigned long long)seconds_up(r->reset_ms));
  return msvc_http_res_header(res, "RateLimit-Reset", v);
}

int msvc_mw_ratelimit_reject(msvc_http_res_t *res, const msvc_limit_result_t *r) {
  uint64_t s;
  char v[24], msg[96];

  if (res == NULL || r == NULL) return MSVC_EINVAL;
  s = r->retry_after_ms == UINT64_MAX ? 86400 : seconds_up(r->retry_after_ms);
  if (s == 0) s = 1;
  snprintf(v, sizeof(v), "%llu", (unsigned long long)s);
  (void)msvc_http_res_header(res, "Retry-After", v);
  (void)msvc_mw_ratelimit_headers(res, r);
  snprintf(msg, sizeof(msg), "Too many requests; retry in %llu s.", (unsigned long long)s);
  return msvc_http_res_error(res, 429, "RATE_LIMITED", msg);
}

static bool is_probe(const char *route) {
  return strcmp(route, "/health") == 0 || strcmp(route, "/ready") == 0 ||
         strcmp(route, "/metrics") == 0;
}

/* The client's address without its port: the peer's, or with trusted
 * proxies in front, the one the nearest proxy appended to X-Forwarded-For. */
static size_t address_key(const msvc_mw_ratelimit_t *m, const msvc_http_req_t *req,
                          char *out, size_t cap) {
  const char *xff = m->hops > 0 ? msvc_http_req_header(req, "X-Forwarded-For") : NULL;
  char *colon;
  size_t n;

  if (xff != NULL && xff[0] != '\0') {
    const char *last = strrchr(xff, ',');

    last = last != NULL ? last + 1 : xff;
    while (*last == ' ' || *last == '\t') last++;
    n = strcspn(last, " \t");
    if (n >= cap) n = cap - 1;
    memcpy(out, last, n);
    out[n] = '\0';
    return n;
  }
  if (msvc_http_req_peer(req, out, cap) != MSVC_OK) return 0;
  colon = strrchr(out, ':'); /* "ip:port" or "[v6]:port" */
  if (colon != NULL && out[0] == '[') {
    if ((colon = strstr(out, "]:")) != NULL) colon[1] = '\0';
  } else if (colon != NULL) {
    *colon = '\0';
  }
  return strlen(out);
}

/* The key of the route and address kinds, built in out. */
static size_t make_key(const msvc_mw_ratelimit_t *m, msvc_http_req_t *req, const char *route,
                       char *out, size_t cap) {
  int n;

  if (m->key != MSVC_MW_RATELIMIT_BY_ROUTE) return address_key(m, req, out, cap);
  n = snprintf(out, cap, "%s %s", msvc_http_req_method(req), route);
  return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static int before(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_mw_ratelimit_t *m = data;
  const char *route = msvc_http_req_route(req), *kp = NULL;
  msvc_limit_result_t r;
  char key[KEY_CAP];
  size_t len;

  if (route == NULL) return MSVC_HTTP_NEXT;
  if (m->route != NULL ? strcmp(route, m->route) != 0 : is_probe(route)) return MSVC_HTTP_NEXT;
  if (m->method != NULL && strcmp(m->method, msvc_http_req_method(req)) != 0)
    return MSVC_HTTP_NEXT;
  if (m->key == MSVC_MW_RATELIMIT_BY_HEADER || m->key == MSVC_MW_RATELIMIT_BY_SUBJECT) {
    kp = m->key == MSVC_MW_RATELIMIT_BY_HEADER ? msvc_http_req_header(req, m->header)
                                               : msvc_mw_jwt_subject(req);
    /* Anonymous requests are no user's: an address limit is for them. */
    if (kp == NULL && m->key == MSVC_MW_RATELIMIT_BY_SUBJECT) return MSVC_HTTP_NEXT;
    if (kp == NULL) kp = "";
    len = strlen(kp);
  } else {
    len = make_key(m, req, route, key, sizeof(key));
    kp = key;
  }
  if (msvc_limit_rate_check(m->rl, kp, len, 1, msvc_now_ms(), &r) != MSVC_OK) {
    if (m->rejected != NULL) msvc_metrics_counter_inc(m->rejected);
    msvc_mw_ratelimit_reject(res, &r);
    return MSVC_HTTP_STOP;
  }
  if (m->headers_on_success) (void)msvc_mw_ratelimit_headers(res, &r);
  return MSVC_HTTP_NEXT;
}

static int counter(msvc_mw_ratelimit_t *m, msvc_metrics_registry_t *reg) {
  static const char *const labels[] = {"limit"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  const char *v[1] = {m->name};
  int rc;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_ratelimit_rejected_total";
  fo.help = "Requests refused by a rate limit (429), by limit name.";
  fo.label_names = labels;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam)) != MSVC_OK)
    return rc;
  return msvc_metrics_counter_get(fam, v, 1, &m->rejected);
}

static char *dup_or_null(const char *s, bool *oom) {
  char *d;

  if (s == NULL) return NULL;
  d = msvc__strdup(s);
  if (d == NULL) *oom = true;
  return d;
}

int msvc_mw_ratelimit_new(const msvc_mw_ratelimit_opts_t *opts, msvc_mw_ratelimit_t **out) {
  msvc_mw_ratelimit_opts_t o;
  msvc_mw_ratelimit_t *m;
  bool oom = false;
  int rc;

  if (out == NULL) return MSVC_EINVAL;
  *out = NULL;
  if (opts == NULL)
    msvc_mw_ratelimit_opts_init(&o);
  else if (opts->size < sizeof(o))
    return MSVC_EINVAL;
  else
    o = *opts;
  if ((unsigned)o.key > MSVC_MW_RATELIMIT_BY_SUBJECT ||
      (o.key == MSVC_MW_RATELIMIT_BY_HEADER && (o.header == NULL || o.header[0] == '\0')))
    return MSVC_EINVAL;
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL) return MSVC_ENOMEM;
  m->key = o.key;
  m->hops = o.forwarded_hops;
  m->headers_on_success = o.headers_on_success;
  m->rate = o.rate;
  m->name = dup_or_null(o.name != NULL ? o.name : "default", &oom);
  m->header = dup_or_null(o.header, &oom);
  m->method = dup_or_null(o.method, &oom);
  m->route = dup_or_null(o.route, &oom);
  rc = oom ? MSVC_ENOMEM : msvc_limit_rate_new(&o.rate, &m->rl);
  if (rc == MSVC_OK) rc = counter(m, o.registry);
  if (rc != MSVC_OK) {
    msvc_mw_ratelimit_free(m);
    return rc;
  }
  m->mw.name = "ratelimit";
  m->mw.before = before;
  m->mw.data = m;
  uv_once(&live_once, live_init);
  uv_mutex_lock(&live_mu);
  m->next = live;
  live = m;
  uv_mutex_unlock(&live_mu);
  *out = m;
  return MSVC_OK;
}

const msvc_http_middleware_t *msvc_mw_ratelimit_middleware(const msvc_mw_ratelimit_t *m) {
  return m == NULL ? NULL : &m->mw;
}

msvc_limit_rate_t *msvc_mw_ratelimit_limiter(const msvc_mw_ratelimit_t *m) {
  return m == NULL ? NULL : m->rl;
}

void msvc_mw_ratelimit_free(msvc_mw_ratelimit_t *m) {
  msvc_mw_ratelimit_t **p;

  if (m == NULL) return;
  uv_once(&live_once, live_init);
  uv_mutex_lock(&live_mu);
  for (p = &live; *p != NULL; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  uv_mutex_unlock(&live_mu);
  msvc_limit_rate_free(m->rl);
  msvc__free(m->name);
  msvc__free(m->header);
  msvc__free(m->method);
  msvc__free(m->route);
  msvc__free(m);
}
