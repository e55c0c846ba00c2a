/*
 * The service object: configuration, the server with its default
 * middleware and built-in routes, and what the user adds to it. The start
 * and the stop live in lifecycle.c.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/trace.h>

#include "service-core.h"
#include "../admin/admin-internal.h"
#include "mw-internal.h"

#define LOG_COMPONENT "service"

/* ---- built-in routes ------------------------------------------------------ */

static void on_health(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void put_check(msvc__buf_t *b, bool *first, const char *name, const char *value) {
  msvc__buf_puts(b, *first ? "\"" : ",\"");
  msvc__buf_json_escape(b, name, strlen(name));
  msvc__buf_puts(b, "\":\"");
  msvc__buf_json_escape(b, value, strlen(value));
  msvc__buf_putc(b, '"');
  *first = false;
}

static const char *registered_check(msvc_service_t *svc, msvc_service_state_t st) {
  int ls = atomic_load(&svc->lease_status);

  if (st >= MSVC_SERVICE_STOPPING) return "deregistered";
  if (st == MSVC_SERVICE_NEW) return "pending";
  if (ls == 1) return "pending";
  return ls == MSVC_OK ? "ok" : msvc_strerror(ls);
}

/* Readiness: listening, registered (the lease's last report was good), not
 * stopping, and every check of the user passing. The checks run on every
 * request, so a failing dependency shows at once. */
static void on_ready(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_t *svc = data;
  msvc_service_state_t st = msvc_service_state(svc);
  const char *reg = registered_check(svc, st);
  bool ok = st == MSVC_SERVICE_READY && strcmp(reg, "ok") == 0, first = true;
  msvc__buf_t b;
  msvc__queue_t *q;
  char *body;
  size_t len;

  (void)req;
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "{\"status\":\"not_ready\",\"checks\":{");
  put_check(&b, &first, "listening",
            st >= MSVC_SERVICE_STARTING && st <= MSVC_SERVICE_READY ? "ok" : "no");
  put_check(&b, &first, "registered", reg);
  put_check(&b, &first, "draining", st >= MSVC_SERVICE_STOPPING ? "yes" : "no");
  if (svc->jwks != NULL) {
    bool keys = msvc_jwt_keyset_count(svc->keyset) > 0;

    put_check(&b, &first, "jwks", keys ? "ok" : "pending");
    ok = ok && keys;
  }
  msvc__queue_foreach(q, &svc->checks) {
    msvc__svc_check_t *c = msvc__container_of(q, msvc__svc_check_t, link);
    const char *detail = NULL;
    bool pass = c->fn(svc, &detail, c->data);

    put_check(&b, &first, c->name, pass ? "ok" : detail != NULL ? detail : "failing");
    ok = ok && pass;
  }
  msvc__buf_puts(&b, "}}");
  if (ok) {
    msvc__buf_free(&b);
    msvc_http_res_send(res, 200, "application/json", "{\"status\":\"ready\"}", 18);
    return;
  }
  body = msvc__buf_detach(&b, &len);
  if (body == NULL) {
    msvc_http_res_error(res, 503, "UNAVAILABLE", "not ready");
    return;
  }
  msvc_http_res_send_owned(res, 503, "application/json", body, len);
}

/* ---- one loop's server ------------------------------------------------------ */

/* The pool of the loop a JWT middleware serves: public-key token checks
 * run there, not on the loop. */
static struct msvc_work_s *jwt_pool(const msvc_http_req_t *req, void *arg) {
  msvc__svc_loop_t *l = arg;

  (void)req;
  return l->work;
}

static int default_middleware(msvc_service_t *svc, msvc_http_server_t *srv,
                              msvc__svc_loop_t *l) {
  msvc_mw_metrics_opts_t mo;
  int rc;

  if ((rc = msvc_mw_request_id_use(srv)) != MSVC_OK) return rc;
  if ((rc = msvc__mw_trace_use_tracer(srv, svc->tracer)) != MSVC_OK) return rc;
  if (svc->cfg.access_log && (rc = msvc_mw_access_log_use(srv)) != MSVC_OK) return rc;
  msvc_mw_metrics_opts_init(&mo);
  mo.registry = svc->cfg.metrics;
  if ((rc = msvc_mw_metrics_new(srv, &mo, &l->mw_metrics)) != MSVC_OK) return rc;
  /* Shedding comes before token checks and handlers, after the request
   * is counted and given its id. */
  if ((rc = msvc__svc_limit_use(svc, srv)) != MSVC_OK) return rc;
  if (svc->cfg.jwt_enabled) {
    msvc_mw_jwt_opts_t jo = svc->cfg.jwt;

    /* One key set for every loop, filled once (file) or kept fresh by one
     * fetcher on the main loop: each middleware only borrows it. */
    jo.keyset = svc->keyset;
    jo.jwks_file = NULL;
    jo.jwks_url = NULL;
    jo.loop = NULL;
    jo.registry = svc->cfg.metrics;
    jo.work = jwt_pool;
    jo.work_arg = l;
    if ((rc = msvc_mw_jwt_new(srv, &jo, &l->mw_jwt)) != MSVC_OK) return rc;
  }
  return MSVC_OK;
}

int msvc__svc_setup_server(msvc_service_t *svc, msvc_http_server_t *srv,
                           msvc__svc_loop_t *l) {
  msvc__queue_t *q;
  int rc;

  l->srv = srv;
  if ((rc = msvc__svc_work_setup(svc, srv, l)) != MSVC_OK) return rc;
  if (svc->cfg.tls_server != NULL &&
      (rc = msvc_http_server_set_tls(srv, svc->cfg.tls_server)) != MSVC_OK)
    return rc;
  /* First, so that the admin charts see requests other middleware stop. */
  if ((rc = msvc__admin_use(svc->admin, srv)) != MSVC_OK) return rc;
  if ((rc = default_middleware(svc, srv, l)) != MSVC_OK) return rc;
  msvc__queue_foreach(q, &svc->mws) {
    msvc__svc_mw_t *m = msvc__container_of(q, msvc__svc_mw_t, link);
    if ((rc = msvc_http_server_use(srv, &m->mw)) != MSVC_OK) return rc;
  }
  if ((rc = msvc_http_server_route(srv, "GET", "/health", on_health, svc, NULL)) != 0 ||
      (rc = msvc_http_server_route(srv, "GET", "/ready", on_ready, svc, NULL)) != 0 ||
      (rc = msvc_mw_metrics_route(srv, "/metrics", svc->cfg.metrics)) != 0)
    return rc;
  msvc__queue_foreach(q, &svc->routes) {
    msvc__svc_route_t *r = msvc__container_of(q, msvc__svc_route_t, link);
    rc = msvc_http_server_route(srv, r->method, r->pattern, r->handler, r->data,
                                &r->ropts);
    if (rc != MSVC_OK) return rc;
  }
  return MSVC_OK;
}

void msvc__svc_loop_free(msvc__svc_loop_t *l) {
  msvc__svc_work_close(l);
  msvc_mw_metrics_free(l->mw_metrics);
  msvc_mw_jwt_free(l->mw_jwt);
  l->mw_metrics = NULL;
  l->mw_jwt = NULL;
  l->srv = NULL;
}

/* ---- creation ----------------------------------------------------------------- */

static int jwt_keys(msvc_service_t *svc, char *err, size_t errlen) {
  int rc = msvc_jwt_keyset_new(&svc->keyset);

  if (rc != MSVC_OK) return rc;
  if (svc->cfg.jwt_file != NULL) {
    rc = msvc_jwt_keyset_load_jwks_file(svc->keyset, svc->cfg.jwt_file);
    if (rc != MSVC_OK) {
      snprintf(err, errlen, "%s: cannot load \"%.200s\" (%s); "
               "expected a readable JWK Set with at least one usable key",
               svc->cfg.jwt_key_what, svc->cfg.jwt_file, msvc_strerror(rc));
      return rc == MSVC_ENOMEM ? rc : MSVC_ECONFIG;
    }
  }
  return MSVC_OK;
}

/* The host of an http:// URL, when it is not an address (or localhost)
 * but the name of a service to find through discovery; "" otherwise. */
static void url_service_name(const char *url, char *out, size_t cap) {
  const char *h = url + strlen("http://"), *e;
  unsigned char addr[16];
  size_t n;

  out[0] = '\0';
  if (*h == '[') return;
  e = h + strcspn(h, ":/?#");
  n = (size_t)(e - h);
  if (n == 0 || n >= cap) return; /* the fetcher says what is wrong */
  memcpy(out, h, n);
  out[n] = '\0';
  if (strcmp(out, "localhost") == 0 || uv_inet_pton(AF_INET, out, addr) == 0 ||
      uv_inet_pton(AF_INET6, out, addr) == 0)
    out[0] = '\0';
}

static void on_self_keys_retry(uv_timer_t *t) {
  msvc_service_t *svc = t->data;

  if (msvc_service_state(svc) == MSVC_SERVICE_STARTING)
    (void)msvc_jwks_fetcher_refresh(svc->jwks);
}

/* The first key set lets a service that waited for it register, and one
 * that registered first (it serves its own keys) become ready. */
static void on_keys_fetched(void *data, int err) {
  msvc_service_t *svc = data;

  if (err != MSVC_OK && svc->jwks_self && msvc_service_state(svc) == MSVC_SERVICE_STARTING &&
      atomic_load(&svc->lease_status) == MSVC_OK) {
    /* Registered, but discovery may not show an instance yet: try again
     * soon (50 ms, doubling) rather than after the fetcher's 2 s. */
    svc->self_retry_ms = svc->self_retry_ms == 0 ? 50 : svc->self_retry_ms * 2;
    if (svc->self_retry_ms < 2000)
      uv_timer_start(&svc->timer, on_self_keys_retry, svc->self_retry_ms, 0);
    return;
  }
  if (err != MSVC_OK || msvc_service_state(svc) != MSVC_SERVICE_STARTING ||
      msvc_jwt_keyset_count(svc->keyset) == 0)
    return;
  if (svc->register_waits_keys) {
    svc->register_waits_keys = false;
    msvc__svc_register(svc);
  } else if (atomic_load(&svc->lease_status) == MSVC_OK) {
    msvc__svc_become_ready(svc);
  }
}

/* One fetcher on the main loop keeps the shared key set fresh; a service
 * name as the URL's host is fetched through discovery and the balancer; an
 * https:// URL is fetched directly, verifying the certificate against the
 * CA bundle of MSVC_TLS_CA (else the system one). */
static int jwks_fetcher(msvc_service_t *svc, char *err, size_t errlen) {
  msvc_jwks_opts_t fo;
  char name[256];
  int rc;

  msvc_jwks_opts_init(&fo);
  fo.url = svc->cfg.jwt_url;
  fo.keyset = svc->keyset;
  fo.metrics = svc->cfg.metrics;
  /* The instance is not ready before its first key set: retry a failed
   * fetch within seconds rather than the fetcher's default minute. */
  fo.min_refresh_ms = 2000;
  fo.on_fetch = on_keys_fetched;
  fo.on_fetch_data = svc;
  fo.tls = svc->cfg.tls_client;
  if (strncmp(fo.url, "http://", 7) == 0) {
    url_service_name(fo.url, name, sizeof(name));
    if (name[0] != '\0') {
      fo.get = msvc__caller_jwks_get;
      fo.get_cancel = msvc__caller_jwks_cancel;
      fo.get_data = svc->caller;
      /* The key set is this service's own (one environment shared by
       * every service): only its own instances can serve it, so waiting
       * for it before registering would wait for ever. */
      svc->jwks_self = strcmp(name, svc->cfg.name) == 0;
    }
  }
  rc = msvc_jwks_fetcher_new(svc->loop, &fo, &svc->jwks);
  if (rc != MSVC_OK) {
    snprintf(err, errlen, "%s: \"%.200s\" cannot be fetched (%s); "
             "expected https://HOST[:PORT]/PATH or http://HOST[:PORT]/PATH",
             svc->cfg.jwt_key_what, svc->cfg.jwt_url, msvc_strerror(rc));
    return rc == MSVC_ENOMEM ? rc : MSVC_ECONFIG;
  }
  return MSVC_OK;
}

static void on_registry_event(void *data, const msvc_registry_event_t *ev) {
  msvc_service_t *svc = data;
  msvc_metrics_counter_t *c;
  msvc_metrics_gauge_t *g;

  if (ev->type == MSVC_REGISTRY_EVENT_INSTANCES && ev->service != NULL) {
    const char *v[1] = {ev->service};

    if (msvc_metrics_gauge_get(svc->reg_instances, v, 1, &g) == MSVC_OK)
      msvc_metrics_gauge_set(g, (double)ev->instances);
  } else if (ev->type == MSVC_REGISTRY_EVENT_ERROR) {
    const char *v[2] = {ev->backend, msvc_registry_op_name(ev->op)};

    if (msvc_metrics_counter_get(svc->reg_errors, v, 2, &c) == MSVC_OK)
      msvc_metrics_counter_inc(c);
  }
}

/* msvc_registry_instances{service} and msvc_registry_errors_total{backend,op}
 * from the registry's events; every error series exists from the start at
 * 0, so a rate() over it works before the first failure. */
static int registry_metrics(msvc_service_t *svc) {
  static const char *const inst_labels[] = {"service"};
  static const char *const err_labels[] = {"backend", "op"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_counter_t *c;
  int rc, op;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_registry_instances";
  fo.help = "Instances of each watched service in the last set the registry delivered.";
  fo.label_names = inst_labels;
  fo.label_count = 1;
  rc = msvc_metrics_family_new(svc->cfg.metrics, MSVC_METRICS_GAUGE, &fo, &svc->reg_instances);
  if (rc != MSVC_OK) return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_registry_errors_total";
  fo.help = "Failed registry operations, by backend and operation.";
  fo.label_names = err_labels;
  fo.label_count = 2;
  rc = msvc_metrics_family_new(svc->cfg.metrics, MSVC_METRICS_COUNTER, &fo, &svc->reg_errors);
  if (rc != MSVC_OK) return rc;
  for (op = 0; op < MSVC_REGISTRY_OP_COUNT; op++) {
    const char *v[2] = {msvc_registry_backend(svc->registry),
                        msvc_registry_op_name((msvc_registry_op_t)op)};

    if ((rc = msvc_metrics_counter_get(svc->reg_errors, v, 2, &c)) != MSVC_OK) return rc;
  }
  msvc_registry_set_event_hook(svc->registry, on_registry_event, svc);
  return MSVC_OK;
}

/* Readiness of the event broker. msvc_events_ready() keeps it passing
 * through short outages (the grace period), so a broker restart does not
 * take every instance out of rotation at once. */
static bool events_check(msvc_service_t *svc, const char **detail, void *data) {
  (void)data;
  return msvc_events_ready(svc->events, detail);
}

static int create_events(msvc_service_t *svc, char *err, size_t errlen) {
  msvc_events_opts_t eo;
  char source[300], why[MSVC_ERRMSG_MAX];
  int rc;

  if (svc->cfg.events_uri == NULL)
    return MSVC_OK;
  snprintf(source, sizeof(source), "/%s", svc->cfg.name);
  msvc_events_opts_init(&eo);
  eo.source = source;
  eo.name = svc->cfg.name;
  eo.metrics = svc->cfg.metrics;
  eo.tracer = svc->tracer;
  rc = msvc_events_new(svc->loop, svc->cfg.events_uri, &eo, &svc->events, why, sizeof(why));
  if (rc != MSVC_OK) {
    snprintf(err, errlen, "MSVC_EVENTS: %s", why);
    return rc == MSVC_ENOMEM ? rc : MSVC_ECONFIG;
  }
  return msvc_service_add_check(svc, "events", events_check, NULL);
}

static int create_parts(msvc_service_t *svc, char *err, size_t errlen) {
  msvc__caller_opts_t co;
  char why[256];
  int rc;

  /* Key set first: a bad key file is a configuration error, found before
   * anything that holds a handle exists. */
  if (svc->cfg.jwt_enabled && (rc = jwt_keys(svc, err, errlen)) != MSVC_OK) return rc;
  rc = msvc_registry_new(svc->loop, svc->cfg.registry_uri, NULL, &svc->registry);
  if (rc != MSVC_OK) {
    if (msvc_registry_check_uri(svc->cfg.registry_uri, why, sizeof(why)) != MSVC_OK)
      snprintf(err, errlen, "MSVC_REGISTRY: %s", why);
    else
      snprintf(err, errlen, "MSVC_REGISTRY: cannot open \"%.200s\" (%s)",
               svc->cfg.registry_uri, msvc_strerror(rc));
    return rc;
  }
  if ((rc = registry_metrics(svc)) != MSVC_OK) {
    snprintf(err, errlen, "registry metrics: %s", msvc_strerror(rc));
    return rc;
  }
  if ((rc = msvc__svc_trace_create(svc, err, errlen)) != MSVC_OK)
    return rc;
  if ((rc = create_events(svc, err, errlen)) != MSVC_OK)
    return rc;
  memset(&co, 0, sizeof(co));
  co.loop = svc->loop;
  co.registry = svc->registry;
  co.metrics = svc->cfg.metrics;
  co.policy = svc->cfg.lb_policy;
  co.breaker = svc->cfg.breaker;
  co.retry = svc->cfg.retry;
  co.call_timeout_ms = svc->cfg.call_timeout_ms;
  co.self_name = svc->cfg.name;
  co.tls = svc->cfg.tls_client;
  co.tracer = svc->tracer;
  if ((rc = msvc__caller_new(&co, &svc->caller)) != MSVC_OK) {
    snprintf(err, errlen, "service calls: %s", msvc_strerror(rc));
    return rc;
  }
  if (svc->cfg.jwt_url != NULL && (rc = jwks_fetcher(svc, err, errlen)) != MSVC_OK)
    return rc;
  rc = msvc_http_server_new(svc->loop, &svc->cfg.server, &svc->main.srv);
  if (rc == MSVC_OK) rc = msvc__svc_setup_server(svc, svc->main.srv, &svc->main);
  if (rc != MSVC_OK) snprintf(err, errlen, "server: %s", msvc_strerror(rc));
  return rc;
}

int msvc_service_new(uv_loop_t *loop, const char *name, const msvc_service_opts_t *opts,
                     msvc_service_t **out, char *err, size_t errlen) {
  msvc_service_opts_t full;
  msvc_service_t *svc;
  char scratch[2];
  int rc;

  if (out != NULL) *out = NULL;
  if (err == NULL || errlen == 0) {
    err = scratch; /* the messages are built anyway; this one is too small */
    errlen = sizeof(scratch);
  }
  err[0] = '\0';
  /* Options grow at their end: a program built against an older header
   * passes a smaller size, and the newer fields keep their defaults. */
  msvc_service_opts_init(&full);
  if (loop == NULL || out == NULL ||
      (opts != NULL && (opts->size < offsetof(msvc_service_opts_t, tls_cert_file) ||
                        opts->size > sizeof(full)))) {
    snprintf(err, errlen, "msvc_service_new: NULL argument or options not filled "
             "by msvc_service_opts_init()");
    return MSVC_EINVAL;
  }
  if (opts != NULL) {
    memcpy(&full, opts, opts->size);
    full.size = sizeof(full);
  }
  opts = &full;
  svc = msvc__calloc(1, sizeof(*svc));
  if (svc == NULL) return MSVC_ENOMEM;
  svc->loop = loop;
  msvc__queue_init(&svc->routes);
  msvc__queue_init(&svc->mws);
  msvc__queue_init(&svc->checks);
  atomic_init(&svc->state, MSVC_SERVICE_NEW);
  atomic_init(&svc->lease_status, 1);
  svc->on_ready = opts->on_ready;
  svc->on_stopped = opts->on_stopped;
  svc->data = opts->data;
  rc = msvc__svc_config_load(&svc->cfg, name, opts, err, errlen);
  if (rc == MSVC_OK)
    rc = msvc__admin_new(svc, opts->admin, opts->admin_token, err, errlen, &svc->admin);
  if (rc == MSVC_OK) rc = create_parts(svc, err, errlen);
  if (rc != MSVC_OK) {
    msvc_service_free(svc);
    return rc;
  }
  *out = svc;
  return MSVC_OK;
}

/* ---- what the user adds ----------------------------------------------------- */

int msvc_service_route(msvc_service_t *svc, const char *method, const char *pattern,
                       msvc_http_handler_fn handler, void *data, uint32_t flags) {
  msvc__svc_route_t *r;
  int rc;

  if (svc == NULL || method == NULL || pattern == NULL || handler == NULL)
    return MSVC_EINVAL;
  if (msvc_service_state(svc) != MSVC_SERVICE_NEW || svc->started) return MSVC_ESTATE;
  if ((flags & MSVC_HTTP_ROUTE_AUTH) != 0 && !svc->cfg.jwt_enabled) {
    msvc_log_write(MSVC_LOG_ERROR, LOG_COMPONENT, NULL, 0,
                   "route %s %s needs authentication but no JWT key source is "
                   "configured (MSVC_JWT_JWKS_FILE or MSVC_JWT_JWKS_URL)",
                   method, pattern);
    return MSVC_ECONFIG;
  }
  r = msvc__calloc(1, sizeof(*r));
  if (r == NULL) return MSVC_ENOMEM;
  r->method = msvc__strdup(method);
  r->pattern = msvc__strdup(pattern);
  r->handler = handler;
  r->data = data;
  msvc_http_route_opts_init(&r->ropts);
  r->ropts.flags = flags;
  rc = r->method == NULL || r->pattern == NULL ? MSVC_ENOMEM : MSVC_OK;
  /* The main server checks the pattern against the built-in routes and
   * the others; worker servers then replay the same list. */
  if (rc == MSVC_OK)
    rc = msvc_http_server_route(svc->main.srv, method, pattern, handler, data, &r->ropts);
  if (rc != MSVC_OK) {
    msvc__free(r->method);
    msvc__free(r->pattern);
    msvc__free(r);
    return rc;
  }
  msvc__queue_insert_tail(&svc->routes, &r->link);
  return MSVC_OK;
}

int msvc_service_use(msvc_service_t *svc, const msvc_http_middleware_t *mw) {
  msvc__svc_mw_t *m;
  int rc;

  if (svc == NULL || mw == NULL) return MSVC_EINVAL;
  if (msvc_service_state(svc) != MSVC_SERVICE_NEW || svc->started) return MSVC_ESTATE;
  m = msvc__calloc(1, sizeof(*m));
  if (m == NULL) return MSVC_ENOMEM;
  m->mw = *mw;
  rc = msvc_http_server_use(svc->main.srv, &m->mw);
  if (rc != MSVC_OK) {
    msvc__free(m);
    return rc;
  }
  msvc__queue_insert_tail(&svc->mws, &m->link);
  return MSVC_OK;
}

int msvc_service_add_check(msvc_service_t *svc, const char *name,
                           msvc_service_check_fn fn, void *data) {
  msvc__svc_check_t *c;

  if (svc == NULL || name == NULL || name[0] == '\0' || fn == NULL) return MSVC_EINVAL;
  if (msvc_service_state(svc) != MSVC_SERVICE_NEW || svc->started) return MSVC_ESTATE;
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL) return MSVC_ENOMEM;
  c->name = msvc__strdup(name);
  if (c->name == NULL) {
    msvc__free(c);
    return MSVC_ENOMEM;
  }
  c->fn = fn;
  c->data = data;
  msvc__queue_insert_tail(&svc->checks, &c->link);
  return MSVC_OK;
}

/* ---- release -------------------------------------------------------------- */

void msvc__svc_free_memory(msvc_service_t *svc) {
  while (!msvc__queue_empty(&svc->routes)) {
    msvc__queue_t *q = svc->routes.next;
    msvc__svc_route_t *r = msvc__container_of(q, msvc__svc_route_t, link);
    msvc__queue_remove(q);
    msvc__free(r->method);
    msvc__free(r->pattern);
    msvc__free(r);
  }
  while (!msvc__queue_empty(&svc->mws)) {
    msvc__queue_t *q = svc->mws.next;
    msvc__queue_remove(q);
    msvc__free(msvc__container_of(q, msvc__svc_mw_t, link));
  }
  while (!msvc__queue_empty(&svc->checks)) {
    msvc__queue_t *q = svc->checks.next;
    msvc__svc_check_t *c = msvc__container_of(q, msvc__svc_check_t, link);
    msvc__queue_remove(q);
    msvc__free(c->name);
    msvc__free(c);
  }
  if (svc->wloops != NULL) uv_mutex_destroy(&svc->cut_mu);
  msvc__free(svc->wloops);
  msvc_mw_concurrency_free(svc->concurrency);
  msvc__free(svc->instance_id);
  msvc__admin_free(svc->admin);
  msvc_tracer_free(svc->tracer);
  msvc__svc_config_free(&svc->cfg);
  msvc__free(svc);
}

void msvc_service_free(msvc_service_t *svc) {
  if (svc == NULL) return;
  if (msvc_service_state(svc) == MSVC_SERVICE_STOPPED) {
    msvc__svc_free_memory(svc);
    return;
  }
  if (svc->started) {
    /* Still running: the only safe thing is to let the stop finish and
     * free the service then. */
    svc->free_when_done = true;
    msvc_service_stop(svc, NULL, NULL);
    return;
  }
  /* Never started: its handles are released from the loop. */
  svc->free_when_done = true;
  msvc__svc_teardown(svc);
}

/* ---- accessors ------------------------------------------------------------ */

msvc__caller_t *msvc__service_caller(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->caller;
}

msvc_service_state_t msvc_service_state(const msvc_service_t *svc) {
  if (svc == NULL) return MSVC_SERVICE_STOPPED;
  return (msvc_service_state_t)atomic_load(&((msvc_service_t *)svc)->state);
}

const char *msvc_service_name(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->cfg.name;
}

int msvc_service_port(const msvc_service_t *svc) {
  if (svc == NULL) return MSVC_EINVAL;
  return svc->port > 0 ? svc->port : MSVC_ESTATE;
}

const char *msvc_service_instance_id(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->instance_id;
}

msvc_events_t *msvc_service_events(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->events;
}

uv_loop_t *msvc_service_loop(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->loop;
}

msvc_registry_t *msvc_service_registry(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->registry;
}

msvc_metrics_registry_t *msvc_service_metrics(const msvc_service_t *svc) {
  return svc == NULL ? NULL : svc->cfg.metrics;
}
