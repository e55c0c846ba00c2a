/* Remote JWK Sets: one HTTP client, one refresh timer and one async handle
 * per fetcher. The async handle exists because the key set's unknown-kid
 * hook may run on any verifying thread; it only raises a flag and wakes the
 * loop, where the cooldown and single-flight decisions are made. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <msvc/http_client.h>
#include <msvc/jwks.h>
#include "msvc-internal.h"

enum { RES_OK, RES_NETWORK, RES_STATUS, RES_TOO_LARGE, RES_BAD_DOCUMENT, N_RESULTS };

static const char *const result_labels[N_RESULTS] = {"ok", "network", "status",
                                                     "too_large", "bad_document"};

struct msvc_jwks_fetcher_s {
  uv_loop_t *loop;
  msvc_http_client_t *client;
  uv_timer_t timer;
  uv_async_t wake;
  atomic_bool kid_wanted;
  char *url;
  msvc_jwks_opts_t opts;
  msvc_http_call_t *call; /* the fetch in flight, or NULL */
  void *hook_call;        /* the fetch in flight through opts.get, or NULL */
  bool hook_busy;
  bool kid_fetched_once;
  uint64_t last_kid_fetch_ms;
  msvc_jwks_stats_t st;
  msvc_metrics_counter_t *count[N_RESULTS];
  bool closing;
  int pending_closes;
  msvc_jwks_close_cb close_cb;
  void *close_data;
};

void msvc_jwks_opts_init(msvc_jwks_opts_t *o) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->min_refresh_ms = 60000;
  o->max_refresh_ms = 86400000;
  o->default_refresh_ms = 600000;
  o->cooldown_ms = 30000;
  o->max_size = 1024 * 1024;
  o->timeout_ms = 10000;
}

static int start_fetch(msvc_jwks_fetcher_t *f);
static void on_timer(uv_timer_t *t);

static uint32_t clamp_ms(const msvc_jwks_fetcher_t *f, uint64_t ms) {
  if (ms < f->opts.min_refresh_ms)
    return f->opts.min_refresh_ms;
  if (ms > f->opts.max_refresh_ms)
    return f->opts.max_refresh_ms;
  return (uint32_t)ms;
}

/* The max-age directive of a Cache-Control value, in milliseconds; false
 * when there is none or it is malformed. Directive names are matched
 * case-insensitively and must start a directive ("s-maxage" is not it). */
static bool parse_max_age(const char *cc, uint64_t *ms) {
  static const char name[] = "max-age";
  const char *p = cc;

  while (p != NULL && *p != '\0') {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (strncasecmp(p, name, sizeof(name) - 1) == 0 && p[sizeof(name) - 1] == '=') {
      const char *d = p + sizeof(name);
      uint64_t secs = 0;
      bool quoted = *d == '"';

      d += quoted;
      if (*d < '0' || *d > '9')
        return false;
      for (; *d >= '0' && *d <= '9'; d++)
        if (secs < 100000000u) /* saturate: far beyond any clamp */
          secs = secs * 10 + (uint64_t)(*d - '0');
      if (quoted && *d++ != '"')
        return false;
      if (*d != '\0' && *d != ',' && *d != ' ' && *d != '\t')
        return false;
      *ms = secs * 1000;
      return true;
    }
    p = strchr(p, ',');
  }
  return false;
}

static void schedule(msvc_jwks_fetcher_t *f, uint32_t delay_ms) {
  f->st.next_refresh_ms = delay_ms;
  if (uv_timer_start(&f->timer, on_timer, delay_ms, 0) != 0)
    f->st.next_refresh_ms = 0;
}

static void on_timer(uv_timer_t *t) {
  msvc_jwks_fetcher_t *f = msvc__container_of(t, msvc_jwks_fetcher_t, timer);

  if (start_fetch(f) != MSVC_OK)
    schedule(f, f->opts.min_refresh_ms);
}

static void finish(msvc_jwks_fetcher_t *f, int result, int err, uint32_t next_ms) {
  f->st.fetches++;
  f->st.last_err = err;
  if (err != MSVC_OK)
    f->st.errors++;
  if (f->count[result] != NULL)
    msvc_metrics_counter_inc(f->count[result]);
  schedule(f, next_ms);
  if (f->opts.on_fetch != NULL)
    f->opts.on_fetch(f->opts.on_fetch_data, err);
}

static void on_result(msvc_jwks_fetcher_t *f, int err, int status, const char *body,
                      size_t len, const char *cc) {
  uint64_t age_ms;
  int rc;

  if (err != MSVC_OK) {
    f->st.last_status = 0;
    finish(f, err == MSVC_ETOOLARGE ? RES_TOO_LARGE : RES_NETWORK, err,
           f->opts.min_refresh_ms);
    return;
  }
  f->st.last_status = status;
  if (f->st.last_status != 200) {
    finish(f, RES_STATUS, MSVC_EHTTP_BAD_RESPONSE, f->opts.min_refresh_ms);
    return;
  }
  if (len > f->opts.max_size) {
    finish(f, RES_TOO_LARGE, MSVC_ETOOLARGE, f->opts.min_refresh_ms);
    return;
  }
  /* The key set checks the whole document before it swaps anything in, so
   * a bad document leaves the last good keys serving. */
  rc = msvc_jwt_keyset_load_jwks(f->opts.keyset, body != NULL ? body : "", len);
  if (rc != MSVC_OK) {
    finish(f, rc == MSVC_ETOOLARGE ? RES_TOO_LARGE : RES_BAD_DOCUMENT, rc,
           f->opts.min_refresh_ms);
    return;
  }
  if (cc == NULL || !parse_max_age(cc, &age_ms))
    age_ms = f->opts.default_refresh_ms;
  finish(f, RES_OK, MSVC_OK, clamp_ms(f, age_ms));
}

static void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  msvc_jwks_fetcher_t *f = data;
  const char *body = NULL;
  size_t len = 0;

  (void)call;
  f->call = NULL;
  if (f->closing)
    return;
  if (err == MSVC_OK)
    body = msvc_http_response_body(res, &len);
  on_result(f, err, err == MSVC_OK ? msvc_http_response_status(res) : 0, body, len,
            err == MSVC_OK ? msvc_http_response_header(res, "Cache-Control") : NULL);
}

static void on_part_closed(msvc_jwks_fetcher_t *f);

static void on_hook_done(void *arg, int err, int status, const char *body, size_t len,
                         const char *cc) {
  msvc_jwks_fetcher_t *f = arg;

  f->hook_busy = false;
  f->hook_call = NULL;
  if (f->closing) {
    on_part_closed(f); /* the close waited for this completion */
    return;
  }
  on_result(f, err, status, body, len, cc);
}

static int start_hook_fetch(msvc_jwks_fetcher_t *f) {
  int rc;

  if (f->hook_busy)
    return MSVC_OK;
  uv_timer_stop(&f->timer);
  rc = f->opts.get(f->opts.get_data, f->url, f->opts.timeout_ms, on_hook_done, f,
                   &f->hook_call);
  f->hook_busy = rc == MSVC_OK;
  return rc;
}

static int start_fetch(msvc_jwks_fetcher_t *f) {
  msvc_http_request_t req;
  static const msvc_http_header_t accept = {"Accept",
                                            "application/jwk-set+json, application/json"};

  if (f->closing)
    return MSVC_ECLOSED;
  if (f->opts.get != NULL)
    return start_hook_fetch(f);
  if (f->call != NULL)
    return MSVC_OK; /* single-flight: the fetch in flight serves everyone */
  uv_timer_stop(&f->timer);
  msvc_http_request_init(&req);
  req.url = f->url;
  req.headers = &accept;
  req.nheaders = 1;
  req.timeouts.total_ms = f->opts.timeout_ms;
  req.max_response_body = f->opts.max_size;
  req.on_done = on_done;
  req.data = f;
  return msvc_http_client_request(f->client, &req, &f->call);
}

static void on_wake(uv_async_t *a) {
  msvc_jwks_fetcher_t *f = msvc__container_of(a, msvc_jwks_fetcher_t, wake);
  uint64_t now;

  if (!atomic_exchange(&f->kid_wanted, false) || f->closing || f->call != NULL ||
      f->hook_busy)
    return;
  now = uv_now(f->loop);
  if (f->kid_fetched_once && now - f->last_kid_fetch_ms < f->opts.cooldown_ms)
    return;
  if (start_fetch(f) == MSVC_OK) {
    f->kid_fetched_once = true;
    f->last_kid_fetch_ms = now;
    f->st.kid_refetches++;
  }
}

static void on_unknown_kid(void *data, const char *kid) {
  msvc_jwks_fetcher_t *f = data;

  (void)kid;
  /* Any thread: raise the flag once, wake the loop once. */
  if (!atomic_exchange(&f->kid_wanted, true))
    uv_async_send(&f->wake);
}

static int register_counters(msvc_jwks_fetcher_t *f) {
  static const char *const labels[] = {"result"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  size_t i;
  int rc;

  if (f->opts.metrics == NULL)
    return MSVC_OK;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_jwt_jwks_fetches_total";
  fo.help = "JWK Set fetches, by result.";
  fo.label_names = labels;
  fo.label_count = 1;
  rc = msvc_metrics_family_new(f->opts.metrics, MSVC_METRICS_COUNTER, &fo, &fam);
  for (i = 0; rc == MSVC_OK && i < N_RESULTS; i++)
    rc = msvc_metrics_counter_get(fam, &result_labels[i], 1, &f->count[i]);
  return rc;
}

static int check_opts(const msvc_jwks_opts_t *o) {
  if (o->size != sizeof(*o) || o->url == NULL || o->keyset == NULL ||
      o->min_refresh_ms == 0 || o->min_refresh_ms > o->max_refresh_ms ||
      o->max_size == 0 || (o->get != NULL && o->get_cancel == NULL))
    return MSVC_EINVAL;
  if (strncasecmp(o->url, "https://", 8) == 0)
    /* Fetched directly, so that the certificate is checked against the
     * URL's own host; a hook would decide the peer itself. */
    return o->url[8] == '\0' || o->get != NULL ? MSVC_EURI : MSVC_OK;
  if (strncasecmp(o->url, "http://", 7) != 0 || o->url[7] == '\0')
    return MSVC_EURI;
  return MSVC_OK;
}

static void on_part_closed(msvc_jwks_fetcher_t *f) {
  msvc_jwks_close_cb cb;
  void *data;

  if (--f->pending_closes > 0)
    return;
  cb = f->close_cb;
  data = f->close_data;
  msvc__free(f->url);
  msvc__free(f);
  if (cb != NULL)
    cb(data);
}

static void on_handle_closed(uv_handle_t *h) {
  on_part_closed(h->data);
}

static void on_client_closed(void *data) {
  on_part_closed(data);
}

int msvc_jwks_fetcher_new(uv_loop_t *loop, const msvc_jwks_opts_t *opts,
                          msvc_jwks_fetcher_t **out) {
  msvc_jwks_fetcher_t *f;
  msvc_http_client_opts_t co;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || opts == NULL || out == NULL)
    return MSVC_EINVAL;
  if ((rc = check_opts(opts)) != MSVC_OK)
    return rc;
  if ((f = msvc__calloc(1, sizeof(*f))) == NULL)
    return MSVC_ENOMEM;
  f->loop = loop;
  f->opts = *opts;
  atomic_init(&f->kid_wanted, false);
  if ((f->url = msvc__strdup(opts->url)) == NULL) {
    msvc__free(f);
    return MSVC_ENOMEM;
  }
  f->opts.url = f->url;
  msvc_http_client_opts_init(&co);
  co.max_conns_per_endpoint = 1;
  co.max_idle_per_endpoint = 1;
  if ((rc = register_counters(f)) != MSVC_OK ||
      (rc = msvc_http_client_new(loop, &co, &f->client)) != MSVC_OK) {
    msvc__free(f->url);
    msvc__free(f);
    return rc;
  }
  if (opts->tls != NULL && (rc = msvc_http_client_set_tls(f->client, opts->tls)) != MSVC_OK) {
    f->closing = true;
    f->pending_closes = 1;
    msvc_http_client_close(f->client, on_client_closed, f);
    return rc;
  }
  /* From here on every failure goes through the asynchronous close. */
  f->timer.data = f;
  f->wake.data = f;
  if ((rc = uv_timer_init(loop, &f->timer)) != 0) {
    f->closing = true;
    f->pending_closes = 1;
    msvc_http_client_close(f->client, on_client_closed, f);
    return rc;
  }
  if ((rc = uv_async_init(loop, &f->wake, on_wake)) != 0) {
    f->closing = true;
    f->pending_closes = 2;
    uv_close((uv_handle_t *)&f->timer, on_handle_closed);
    msvc_http_client_close(f->client, on_client_closed, f);
    return rc;
  }
  if ((rc = start_fetch(f)) != MSVC_OK) {
    msvc_jwks_fetcher_close(f, NULL, NULL);
    return rc;
  }
  msvc_jwt_keyset_on_unknown_kid(opts->keyset, on_unknown_kid, f);
  *out = f;
  return MSVC_OK;
}

int msvc_jwks_fetcher_refresh(msvc_jwks_fetcher_t *f) {
  if (f == NULL)
    return MSVC_EINVAL;
  return start_fetch(f);
}

void msvc_jwks_fetcher_stats(const msvc_jwks_fetcher_t *f, msvc_jwks_stats_t *st) {
  if (st == NULL)
    return;
  if (f == NULL) {
    memset(st, 0, sizeof(*st));
    return;
  }
  *st = f->st;
}

void msvc_jwks_fetcher_close(msvc_jwks_fetcher_t *f, msvc_jwks_close_cb cb, void *data) {
  if (f == NULL || f->closing)
    return;
  f->closing = true;
  f->close_cb = cb;
  f->close_data = data;
  msvc_jwt_keyset_on_unknown_kid(f->opts.keyset, NULL, NULL);
  f->pending_closes = 3;
  if (f->hook_busy) {
    /* The hook's completion still comes, with MSVC_ECANCELED: the memory
     * waits for it. */
    f->pending_closes++;
    f->opts.get_cancel(f->hook_call);
  }
  uv_close((uv_handle_t *)&f->timer, on_handle_closed);
  uv_close((uv_handle_t *)&f->wake, on_handle_closed);
  /* The client cancels the fetch in flight; its completion sees closing. */
  msvc_http_client_close(f->client, on_client_closed, f);
}
