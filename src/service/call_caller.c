/*
 * The caller: one target per called service (a registry watch on the main
 * loop, a balancer, a breaker per endpoint) and one client per attached
 * loop. See call-internal.h for who may touch what from which thread.
 */
#include <stdio.h>

#include "call-internal.h"

/* The loops attached on this thread (one per caller in practice). */
static _Thread_local call_loop_t *tls_loops;

static const char *const err_labels[CALL_ST_COUNT] = {
    "timeout", "refused", "reset", "breaker_open", "no_endpoints"};

bool msvc__call_name_valid(const char *name) {
  size_t i;

  if (name == NULL || name[0] == '\0' || name[0] == '.')
    return false;
  for (i = 0; name[i] != '\0'; i++) {
    char ch = name[i];
    if (i >= MSVC_REGISTRY_NAME_MAX)
      return false;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

/* ---- metrics ------------------------------------------------------------- */

static int family(msvc__caller_t *c, msvc_metrics_type_t type, const char *name,
                  const char *help, const char *const *labels, size_t n,
                  msvc_metrics_family_t **out) {
  msvc_metrics_family_opts_t fo;
  static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,   0.25,   0.5,   1,    2.5,   5, 10};

  msvc_metrics_family_opts_init(&fo);
  fo.name = name;
  fo.help = help;
  fo.label_names = labels;
  fo.label_count = n;
  if (type == MSVC_METRICS_HISTOGRAM) {
    fo.buckets = buckets;
    fo.bucket_count = MSVC__ARRAY_SIZE(buckets);
  }
  return msvc_metrics_family_new(c->opts.metrics, type, &fo, out);
}

static int make_families(msvc__caller_t *c) {
  static const char *const svc_status[] = {"service", "status"};
  static const char *const svc[] = {"service"};
  static const char *const svc_ep[] = {"service", "endpoint"};
  static const char *const svc_ep_to[] = {"service", "endpoint", "to"};
  int r;

  r = family(c, MSVC_METRICS_COUNTER, "msvc_http_client_requests_total",
             "Calls to other services, by final outcome (retries included).",
             svc_status, 2, &c->f_requests);
  if (r == 0)
    r = family(c, MSVC_METRICS_COUNTER, "msvc_http_client_attempts_total",
               "Attempts sent to other services, by outcome.", svc_status, 2,
               &c->f_attempts);
  if (r == 0)
    r = family(c, MSVC_METRICS_HISTOGRAM, "msvc_http_client_request_duration_seconds",
               "Duration of calls to other services, retries included.", svc, 1,
               &c->f_duration);
  if (r == 0)
    r = family(c, MSVC_METRICS_COUNTER, "msvc_http_client_retries_total",
               "Retries of calls to other services.", svc, 1, &c->f_retries);
  if (r == 0)
    r = family(c, MSVC_METRICS_GAUGE, "msvc_breaker_state",
               "Circuit breaker state (0 closed, 1 open, 2 half-open).", svc_ep, 2,
               &c->f_state);
  if (r == 0)
    r = family(c, MSVC_METRICS_COUNTER, "msvc_breaker_transitions_total",
               "Circuit breaker state changes.", svc_ep_to, 3, &c->f_transitions);
  if (r == 0)
    r = family(c, MSVC_METRICS_COUNTER, "msvc_lb_picks_total",
               "Endpoints picked by the balancer.", svc_ep, 2, &c->f_picks);
  if (r == 0)
    r = family(c, MSVC_METRICS_GAUGE, "msvc_lb_endpoint_inflight",
               "Requests in flight per endpoint.", svc_ep, 2, &c->f_inflight);
  return r;
}

/* The closest label for an error. Failures to get a request out at all
 * (refused, unreachable, name not resolved, TLS handshake refused, our own
 * pool full) are "refused"; a request that went out and got no usable
 * answer (reset, closed early, malformed or oversized response) is
 * "reset"; an error with no closer match is one or the other by whether
 * the request went out. */
static int err_kind(int err, bool sent) {
  switch (err) {
  case MSVC_ETIMEDOUT:
  case MSVC_ETLS_TIMEOUT:
    return CALL_ST_TIMEOUT;
  case MSVC_ECONNREFUSED:
  case MSVC_EHTTP_DNS:
  case MSVC_EADDRNOTAVAIL:
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
  case MSVC_ETLS:
  case MSVC_ETLS_CERT:
  case MSVC_EHTTP_POOL_FULL:
    return CALL_ST_REFUSED;
  case MSVC_ECONNRESET:
  case MSVC_EPIPE:
  case MSVC_ECONNABORTED:
  case MSVC_EHTTP_BAD_RESPONSE:
  case MSVC_ETOOLARGE:
    return CALL_ST_RESET;
  case MSVC_EBREAKER_OPEN:
    return CALL_ST_BREAKER_OPEN;
  case MSVC_ENO_ENDPOINTS:
    return CALL_ST_NO_ENDPOINTS;
  default:
    return sent ? CALL_ST_RESET : CALL_ST_REFUSED;
  }
}

const char *msvc__call_status_label(int err, int status, bool sent, char buf[8]) {
  if (err == 0 && status >= 100 && status <= 999) {
    snprintf(buf, 8, "%d", status);
    return buf;
  }
  /* A response with a status no server may send is no usable answer. */
  return err_labels[err == 0 ? CALL_ST_RESET : err_kind(err, sent)];
}

void msvc__call_count(call_target_t *t, call_count_t which, int err, int status,
                      bool sent) {
  call_counters_t *cs = which == CALL_COUNT_REQUEST ? &t->requests : &t->attempts;
  msvc_metrics_family_t *f =
      which == CALL_COUNT_REQUEST ? t->caller->f_requests : t->caller->f_attempts;
  _Atomic(msvc_metrics_counter_t *) *slot;
  msvc_metrics_counter_t *ctr;
  char code[8];
  const char *values[2];

  if (err == MSVC_ECANCELED)
    return;
  if (err == 0 && status >= 100 && status <= 999)
    slot = &cs->by_code[status];
  else
    slot = &cs->by_err[err == 0 ? CALL_ST_RESET : err_kind(err, sent)];
  ctr = atomic_load_explicit(slot, memory_order_acquire);
  if (ctr == NULL) {
    values[0] = t->name;
    values[1] = msvc__call_status_label(err, status, sent, code);
    if (msvc_metrics_counter_get(f, values, 2, &ctr) != 0)
      return;
    atomic_store_explicit(slot, ctr, memory_order_release);
  }
  msvc_metrics_counter_inc(ctr);
}

/* ---- endpoints ------------------------------------------------------------ */

static double state_value(msvc_breaker_state_t s) {
  switch (s) {
  case MSVC_BREAKER_OPEN:
  case MSVC_BREAKER_FORCED_OPEN: return 1;
  case MSVC_BREAKER_HALF_OPEN: return 2;
  default: return 0;
  }
}

/* Runs on whichever thread recorded the outcome that caused the change. An
 * open breaker takes its endpoint out of the balancer's rotation until the
 * open period ends, so that the balancer's exclusion budget (panic mode)
 * decides how much of the set may be taken away. */
static void on_transition(void *data, msvc_breaker_t *b, msvc_breaker_state_t from,
                          msvc_breaker_state_t to, msvc_breaker_reason_t reason,
                          uint64_t now_ms) {
  call_endpoint_t *ep = data;
  call_target_t *t = ep->target;
  const char *values[3] = {t->name, ep->id, msvc_breaker_state_name(to)};
  msvc_metrics_counter_t *ctr;
  msvc_breaker_stats_t st;

  (void)from;
  if (ep->state != NULL)
    msvc_metrics_gauge_set(ep->state, state_value(to));
  if (msvc_metrics_counter_get(t->caller->f_transitions, values, 3, &ctr) == 0)
    msvc_metrics_counter_inc(ctr);
  MSVC_LOG_I(CALL_LOG, "breaker of %s at %s: %s -> %s (%s)", t->name, ep->id,
             msvc_breaker_state_name(from), msvc_breaker_state_name(to),
             msvc_breaker_reason_name(reason));
  if (to == MSVC_BREAKER_OPEN || to == MSVC_BREAKER_FORCED_OPEN) {
    uint64_t until = now_ms + 1000;
    if (msvc_breaker_stats(b, now_ms, &st) == 0 && st.open_until_ms > now_ms)
      until = st.open_until_ms;
    msvc_lb_exclude(t->lb, ep->id, until, now_ms);
  } else {
    msvc_lb_include(t->lb, ep->id, now_ms);
  }
}

static void endpoint_free(call_endpoint_t *ep) {
  msvc_breaker_free(ep->breaker);
  msvc__free(ep->id);
  msvc__free(ep->host);
  msvc__free(ep);
}

void msvc__call_endpoint_unref(call_endpoint_t *ep) {
  if (ep != NULL && atomic_fetch_sub(&ep->refs, 1) == 1)
    endpoint_free(ep);
}

static call_endpoint_t *endpoint_new(call_target_t *t, const char *id,
                                     const char *host, int port) {
  msvc__caller_t *c = t->caller;
  call_endpoint_t *ep = msvc__calloc(1, sizeof(*ep));
  msvc_breaker_opts_t bo = c->opts.breaker;
  const char *values[2] = {t->name, id};

  if (ep == NULL)
    return NULL;
  atomic_init(&ep->refs, 1);
  atomic_init(&ep->tls, false);
  ep->target = t;
  ep->port = port;
  ep->id = msvc__strdup(id);
  ep->host = msvc__strdup(host);
  bo.on_transition = on_transition;
  bo.on_transition_data = ep;
  if (ep->id == NULL || ep->host == NULL || msvc_breaker_new(&bo, &ep->breaker) != 0) {
    endpoint_free(ep);
    return NULL;
  }
  /* Metrics are best effort: a full family must not stop calls. */
  if (msvc_metrics_counter_get(c->f_picks, values, 2, &ep->picks) != 0)
    ep->picks = NULL;
  if (msvc_metrics_gauge_get(c->f_inflight, values, 2, &ep->inflight) != 0)
    ep->inflight = NULL;
  if (msvc_metrics_gauge_get(c->f_state, values, 2, &ep->state) != 0)
    ep->state = NULL;
  else
    msvc_metrics_gauge_set(ep->state, 0);
  return ep;
}

call_endpoint_t *msvc__call_endpoint_find(call_target_t *t, const char *id) {
  call_endpoint_t *ep = NULL;
  size_t i;

  uv_mutex_lock(&t->mu);
  for (i = 0; i < t->neps; i++) {
    if (strcmp(t->eps[i]->id, id) == 0) {
      ep = t->eps[i];
      atomic_fetch_add(&ep->refs, 1);
      break;
    }
  }
  uv_mutex_unlock(&t->mu);
  return ep;
}

/* ---- sets ------------------------------------------------------------------ */

static void format_id(char *out, size_t cap, const char *addr, int port) {
  if (strchr(addr, ':') != NULL)
    snprintf(out, cap, "[%s]:%d", addr, port);
  else
    snprintf(out, cap, "%s:%d", addr, port);
}

static char *format_meta(const msvc_registry_instance_t *in) {
  msvc__buf_t b;
  size_t i;

  if (in->nmetadata == 0)
    return NULL;
  msvc__buf_init(&b, 0);
  for (i = 0; i < in->nmetadata; i++)
    msvc__buf_printf(&b, "%s%s=%s", i > 0 ? "," : "", in->metadata[i].key,
                     in->metadata[i].value);
  return msvc__buf_detach(&b, NULL);
}

/* Whether the instance asked to be called over TLS. */
static bool wants_tls(const msvc_registry_instance_t *in) {
  size_t i;

  for (i = 0; i < in->nmetadata; i++)
    if (in->metadata[i].key != NULL && strcmp(in->metadata[i].key, "scheme") == 0)
      return in->metadata[i].value != NULL &&
             msvc__strcasecmp(in->metadata[i].value, "https") == 0;
  return false;
}

/* Finds the endpoint for id among the old ones (taking it over) or makes a
 * new one (*fresh then). */
static call_endpoint_t *take_endpoint(call_target_t *t, call_endpoint_t **old,
                                      size_t nold, const char *id,
                                      const msvc_registry_instance_t *in, bool *fresh) {
  call_endpoint_t *ep;
  size_t i;

  *fresh = false;
  for (i = 0; i < nold; i++) {
    if (old[i] != NULL && strcmp(old[i]->id, id) == 0) {
      ep = old[i];
      old[i] = NULL;
      atomic_store(&ep->tls, wants_tls(in));
      return ep;
    }
  }
  ep = endpoint_new(t, id, in->address, in->port);
  if (ep != NULL) {
    atomic_store(&ep->tls, wants_tls(in));
    *fresh = true;
  }
  return ep;
}

static call_endpoint_t *seen(call_endpoint_t **eps, size_t n, const char *id) {
  size_t i;

  for (i = 0; i < n; i++)
    if (strcmp(eps[i]->id, id) == 0)
      return eps[i];
  return NULL;
}

/* FNV-1a: ids are compared by hash, a collision costing at worst one
 * missed early probe. */
static uint64_t reg_hash(const char *id) {
  uint64_t h = 1469598103934665603ull;

  for (; id != NULL && *id != '\0'; id++)
    h = (h ^ (unsigned char)*id) * 1099511628211ull;
  return h;
}

static bool has_reg(const uint64_t *regs, uint8_t n, uint64_t h) {
  uint8_t i;

  for (i = 0; i < n; i++)
    if (regs[i] == h)
      return true;
  return false;
}

/* Notes an instance registered at ep's address in the set being applied.
 * More than four at one address is odd; the rest are not tracked. */
static void note_reg(call_endpoint_t *ep, const char *instance_id) {
  uint64_t h = reg_hash(instance_id);

  if (ep->next_nregs < MSVC__ARRAY_SIZE(ep->next_regs) &&
      !has_reg(ep->next_regs, ep->next_nregs, h))
    ep->next_regs[ep->next_nregs++] = h;
}

/* A registration the last set did not have: the instance (re)started. Its
 * breaker may still be open from the failures of the process that was
 * there before; it is probed now instead of after the open period. */
static void reg_update(call_target_t *t, call_endpoint_t *ep, bool fresh, uint64_t now) {
  bool new_reg = false;
  uint8_t i;

  for (i = 0; i < ep->next_nregs; i++)
    if (!has_reg(ep->regs, ep->nregs, ep->next_regs[i]))
      new_reg = true;
  memcpy(ep->regs, ep->next_regs, sizeof(ep->regs));
  ep->nregs = ep->next_nregs;
  if (fresh || !new_reg || msvc_breaker_state(ep->breaker) != MSVC_BREAKER_OPEN)
    return;
  MSVC_LOG_I(CALL_LOG, "%s at %s registered again: probing it now", t->name, ep->id);
  msvc_breaker_transition(ep->breaker, MSVC_BREAKER_HALF_OPEN, now);
}

static void release_lb_set(msvc_lb_endpoint_t *lbe, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    msvc__free((char *)lbe[i].metadata);
  msvc__free(lbe);
}

static int apply_set(call_target_t *t, msvc_registry_set_t *set) {
  size_t n = msvc_registry_set_count(set), k = 0, i, nold;
  call_endpoint_t **eps = msvc__calloc(n + 1, sizeof(*eps)), **old;
  msvc_lb_endpoint_t *lbe = msvc__calloc(n + 1, sizeof(*lbe));
  bool *fresh = msvc__calloc(n + 1, sizeof(*fresh));
  char id[MSVC_REGISTRY_ADDRESS_MAX + 16];
  uint64_t now;
  bool partial = false; /* an endpoint or its metadata had no memory */
  int r;

  if (eps == NULL || lbe == NULL || fresh == NULL) {
    msvc__free(eps);
    msvc__free(lbe);
    msvc__free(fresh);
    return MSVC_ENOMEM;
  }
  uv_mutex_lock(&t->mu);
  old = t->eps;
  nold = t->neps;
  uv_mutex_unlock(&t->mu);
  /* Only the main loop changes the array, so reading it unlocked above and
   * building the new one outside the lock is safe. */
  for (i = 0; i < n; i++) {
    const msvc_registry_instance_t *in = msvc_registry_set_at(set, i);
    call_endpoint_t *ep;

    if (in == NULL || in->weight == 0 || in->address == NULL)
      continue;
    format_id(id, sizeof(id), in->address, in->port);
    if ((ep = seen(eps, k, id)) != NULL) {
      note_reg(ep, in->id); /* another registration at the same address */
      continue;
    }
    ep = take_endpoint(t, old, nold, id, in, &fresh[k]);
    if (ep == NULL) {
      partial = true;
      continue;
    }
    ep->next_nregs = 0;
    note_reg(ep, in->id);
    eps[k] = ep;
    lbe[k].id = ep->id;
    lbe[k].weight = in->weight > MSVC_LB_MAX_WEIGHT ? MSVC_LB_MAX_WEIGHT : in->weight;
    lbe[k].metadata = format_meta(in);
    if (lbe[k].metadata == NULL && in->nmetadata > 0)
      partial = true;
    k++;
  }
  uv_mutex_lock(&t->mu);
  t->eps = eps;
  t->neps = k;
  uv_mutex_unlock(&t->mu);
  now = msvc_now_ms();
  r = msvc_lb_update(t->lb, lbe, k, now);
  release_lb_set(lbe, k);
  /* After the update, so that a probe's return to the rotation applies to
   * the new set. */
  for (i = 0; i < k; i++)
    reg_update(t, eps[i], fresh[i], now);
  msvc__free(fresh);
  for (i = 0; i < nold; i++)
    msvc__call_endpoint_unref(old[i]);
  msvc__free(old);
  /* What could be built is in use; the caller has the rest applied again. */
  return r != 0 ? r : partial ? MSVC_ENOMEM : 0;
}

static void on_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set, void *data) {
  call_target_t *t = data;
  int r;

  (void)w;
  t->changed_wall_ms = msvc_wall_ms();
  r = apply_set(t, set);
  if (r != 0) {
    /* The watch reports a set once: without another try the endpoints
     * would stay out of date until the service's instances change. */
    MSVC_LOG_W(CALL_LOG, "endpoints of %s not updated: %s", t->name, msvc_strerror(r));
    uv_mutex_lock(&t->caller->mu);
    t->stale_eps = true;
    atomic_store(&t->settled, false);
    uv_mutex_unlock(&t->caller->mu);
  }
  MSVC_LOG_D(CALL_LOG, "%s: %zu endpoint(s)%s", t->name, (size_t)atomic_load(&t->neps),
             msvc_registry_set_stale(set) ? " (stale)" : "");
  atomic_store(&t->ready, 1);
}

/* Main loop only. */
static void start_watch(call_target_t *t) {
  msvc__caller_t *c = t->caller;
  int r;

  if (atomic_load(&c->closing)) {
    atomic_store(&t->ready, MSVC_ECANCELED);
    return;
  }
  if (t->watch != NULL) { /* running: apply its last set again */
    msvc_registry_set_t *set = msvc_registry_watch_set(t->watch);

    if (set != NULL)
      on_watch(t->watch, set, t);
    return;
  }
  r = msvc_registry_watch(c->opts.registry, t->name, on_watch, t, &t->watch);
  if (r != 0) {
    MSVC_LOG_W(CALL_LOG, "cannot watch %s: %s", t->name, msvc_strerror(r));
    /* The calls waiting now fail; the next call tries the watch again
     * rather than every later call failing for good. */
    uv_mutex_lock(&c->mu);
    t->watch_wanted = false;
    atomic_store(&t->settled, false);
    uv_mutex_unlock(&c->mu);
    atomic_store(&t->ready, r);
  }
}

static void on_wake(uv_async_t *a) {
  msvc__caller_t *c = msvc__container_of(a, msvc__caller_t, wake);
  call_target_t *t, *list;

  uv_mutex_lock(&c->mu);
  list = c->pending;
  c->pending = NULL;
  uv_mutex_unlock(&c->mu);
  while (list != NULL) {
    t = list;
    list = t->next_pending;
    start_watch(t);
  }
}

static void target_free(call_target_t *t) {
  size_t i;

  for (i = 0; i < t->neps; i++)
    msvc__call_endpoint_unref(t->eps[i]);
  msvc__free(t->eps);
  msvc_lb_free(t->lb);
  uv_mutex_destroy(&t->mu);
  msvc__free(t->name);
  msvc__free(t);
}

static call_target_t *target_new(msvc__caller_t *c, const char *name) {
  call_target_t *t = msvc__calloc(1, sizeof(*t));
  msvc_lb_opts_t lo;
  const char *values[1] = {name};

  if (t == NULL)
    return NULL;
  if (uv_mutex_init(&t->mu) != 0) {
    msvc__free(t);
    return NULL;
  }
  t->caller = c;
  atomic_init(&t->ready, 0);
  atomic_init(&t->settled, false);
  msvc_lb_opts_init(&lo);
  lo.policy = c->opts.policy;
  lo.track_tickets = false;
  t->name = msvc__strdup(name);
  if (t->name == NULL || msvc_lb_new(&lo, &t->lb) != 0) {
    target_free(t);
    return NULL;
  }
  if (msvc_metrics_histogram_get(c->f_duration, values, 1, &t->duration) != 0)
    t->duration = NULL;
  if (msvc_metrics_counter_get(c->f_retries, values, 1, &t->retries) != 0)
    t->retries = NULL;
  return t;
}

call_target_t *msvc__call_target_recent(call_loop_t *lc, const char *name) {
  size_t i;

  for (i = 0; i < CALL_RECENT_TARGETS; i++) {
    call_target_t *t = lc->recent[i];

    if (t != NULL && strcmp(t->name, name) == 0)
      return atomic_load_explicit(&t->settled, memory_order_acquire) ? t : NULL;
  }
  return NULL;
}

static void remember(call_loop_t *lc, call_target_t *t) {
  size_t i;

  for (i = 0; i < CALL_RECENT_TARGETS; i++)
    if (lc->recent[i] == t)
      return;
  lc->recent[lc->recent_next] = t;
  lc->recent_next = (lc->recent_next + 1) % CALL_RECENT_TARGETS;
}

int msvc__call_target_get(msvc__caller_t *c, call_loop_t *lc, const char *name,
                          call_target_t **out) {
  call_target_t *t;
  bool watch_here = false;

  uv_mutex_lock(&c->mu);
  for (t = c->targets; t != NULL; t = t->next)
    if (strcmp(t->name, name) == 0)
      break;
  if (t == NULL) {
    t = target_new(c, name);
    if (t == NULL) {
      uv_mutex_unlock(&c->mu);
      return MSVC_ENOMEM;
    }
    t->next = c->targets;
    c->targets = t;
  }
  if (!t->watch_wanted || t->stale_eps) {
    if (!t->watch_wanted)
      atomic_store(&t->ready, 0); /* a watch that failed before: not yet known */
    t->watch_wanted = true;
    t->stale_eps = false;
    if (lc->main) {
      watch_here = true;
    } else {
      t->next_pending = c->pending;
      c->pending = t;
      uv_async_send(&c->wake);
    }
  }
  atomic_store_explicit(&t->settled, true, memory_order_release);
  uv_mutex_unlock(&c->mu);
  remember(lc, t);
  if (watch_here)
    start_watch(t);
  *out = t;
  return MSVC_OK;
}

/* ---- loops ------------------------------------------------------------------ */

call_loop_t *msvc__call_loop_current(msvc__caller_t *c) {
  call_loop_t *lc;

  for (lc = tls_loops; lc != NULL; lc = lc->next_thread)
    if (lc->caller == c && !lc->closing)
      return lc;
  return NULL;
}

static void free_unattached(void *data) { msvc__free(data); }

static int attach(msvc__caller_t *c, uv_loop_t *loop, bool main, call_loop_t **out) {
  call_loop_t *lc = msvc__calloc(1, sizeof(*lc));
  msvc_http_client_opts_t co;
  int r;

  if (lc == NULL)
    return MSVC_ENOMEM;
  msvc_http_client_opts_init(&co);
  r = msvc_http_client_new(loop, &co, &lc->client);
  if (r != 0) {
    msvc__free(lc);
    return r;
  }
  if (c->opts.tls != NULL && (r = msvc_http_client_set_tls(lc->client, c->opts.tls)) != 0) {
    /* Nothing was sent yet: the client goes with no calls to cancel. */
    msvc_http_client_close(lc->client, free_unattached, lc);
    return r;
  }
  lc->caller = c;
  lc->loop = loop;
  lc->main = main;
  msvc__queue_init(&lc->calls);
  lc->next_thread = tls_loops;
  tls_loops = lc;
  uv_mutex_lock(&c->mu);
  lc->next_caller = c->loops;
  c->loops = lc;
  uv_mutex_unlock(&c->mu);
  if (out != NULL)
    *out = lc;
  return MSVC_OK;
}

int msvc__caller_attach(msvc__caller_t *c, uv_loop_t *loop) {
  call_loop_t *lc;

  if (c == NULL || loop == NULL)
    return MSVC_EINVAL;
  if (atomic_load(&c->closing))
    return MSVC_ESTATE;
  for (lc = tls_loops; lc != NULL; lc = lc->next_thread)
    if (lc->caller == c && lc->loop == loop && !lc->closing)
      return MSVC_OK;
  return attach(c, loop, false, NULL);
}

static void unlink_loop(call_loop_t *lc) {
  msvc__caller_t *c = lc->caller;
  call_loop_t **pp;

  for (pp = &tls_loops; *pp != NULL; pp = &(*pp)->next_thread)
    if (*pp == lc) {
      *pp = lc->next_thread;
      break;
    }
  uv_mutex_lock(&c->mu);
  for (pp = &c->loops; *pp != NULL; pp = &(*pp)->next_caller)
    if (*pp == lc) {
      *pp = lc->next_caller;
      break;
    }
  uv_mutex_unlock(&c->mu);
}

/* A closing loop context goes once its client is released and its last
 * call has freed its timer. */
void msvc__call_loop_maybe_closed(call_loop_t *lc) {
  void (*cb)(call_loop_t *);

  if (!lc->closing || !lc->client_closed || !msvc__queue_empty(&lc->calls))
    return;
  cb = lc->closed_cb;
  if (cb != NULL)
    cb(lc);
  msvc__call_spares_free(lc);
  msvc__free(lc);
}

static void on_client_closed(void *data) {
  call_loop_t *lc = data;

  lc->client_closed = true;
  msvc__call_loop_maybe_closed(lc);
}

static void close_loop(call_loop_t *lc, void (*cb)(call_loop_t *)) {
  lc->closing = true;
  lc->closed_cb = cb;
  /* Unlinked at once: the thread may attach a new context (or the caller
   * be freed) while this one still drains. */
  unlink_loop(lc);
  msvc__call_cancel_all(lc);
  msvc_http_client_close(lc->client, on_client_closed, lc);
}

void msvc__caller_detach(msvc__caller_t *c, uv_loop_t *loop) {
  call_loop_t *lc;

  if (c == NULL || loop == NULL)
    return;
  for (lc = tls_loops; lc != NULL; lc = lc->next_thread)
    if (lc->caller == c && lc->loop == loop && !lc->closing && !lc->main)
      break;
  if (lc != NULL)
    close_loop(lc, NULL);
}

/* ---- the caller ------------------------------------------------------------ */

static void on_wake_closed_free(uv_handle_t *h);

int msvc__caller_new(const msvc__caller_opts_t *opts, msvc__caller_t **out) {
  msvc__caller_t *c;
  int r;

  if (opts == NULL || out == NULL || opts->loop == NULL || opts->registry == NULL)
    return MSVC_EINVAL;
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL)
    return MSVC_ENOMEM;
  c->opts = *opts;
  c->opts.self_name = NULL;
  atomic_init(&c->closing, false);
  if (opts->self_name != NULL && (c->self_name = msvc__strdup(opts->self_name)) == NULL) {
    msvc__free(c);
    return MSVC_ENOMEM;
  }
  r = uv_mutex_init(&c->mu);
  if (r != 0) {
    msvc__free(c->self_name);
    msvc__free(c);
    return r;
  }
  r = make_families(c);
  if (r == 0)
    r = msvc_retry_new(&c->opts.retry, &c->retry);
  if (r == 0)
    r = uv_async_init(opts->loop, &c->wake, on_wake);
  if (r != 0) {
    msvc_retry_free(c->retry);
    uv_mutex_destroy(&c->mu);
    msvc__free(c->self_name);
    msvc__free(c);
    return r;
  }
  uv_unref((uv_handle_t *)&c->wake);
  r = attach(c, opts->loop, true, &c->main_lc);
  if (r != 0) {
    uv_close((uv_handle_t *)&c->wake, on_wake_closed_free);
    return r;
  }
  *out = c;
  return MSVC_OK;
}

static void close_step(msvc__caller_t *c) {
  if (--c->close_pending == 0 && c->close_cb != NULL)
    c->close_cb(c->close_data);
}

static void on_wake_closed(uv_handle_t *h) {
  close_step(msvc__container_of((uv_async_t *)h, msvc__caller_t, wake));
}

/* A caller_new that failed after its async handle joined the loop: nobody
 * holds the caller, so it goes with the handle. */
static void on_wake_closed_free(uv_handle_t *h) {
  msvc__caller_t *c = msvc__container_of((uv_async_t *)h, msvc__caller_t, wake);

  msvc_retry_free(c->retry);
  uv_mutex_destroy(&c->mu);
  msvc__free(c->self_name);
  msvc__free(c);
}

static void on_main_loop_closed(call_loop_t *lc) {
  msvc__caller_t *c = lc->caller;

  c->main_lc = NULL;
  close_step(c);
}

void msvc__caller_close(msvc__caller_t *c, void (*cb)(void *data), void *data) {
  call_target_t *t;

  if (c == NULL)
    return;
  if (atomic_load(&c->closing))
    return;
  atomic_store(&c->closing, true);
  c->close_cb = cb;
  c->close_data = data;
  c->close_pending = 2;
  uv_mutex_lock(&c->mu);
  t = c->targets;
  uv_mutex_unlock(&c->mu);
  for (; t != NULL; t = t->next) {
    if (t->watch != NULL)
      msvc_registry_unwatch(t->watch);
    t->watch = NULL;
  }
  uv_close((uv_handle_t *)&c->wake, on_wake_closed);
  close_loop(c->main_lc, on_main_loop_closed);
}

void msvc__caller_free(msvc__caller_t *c) {
  call_target_t *t;

  if (c == NULL)
    return;
  while ((t = c->targets) != NULL) {
    c->targets = t->next;
    target_free(t);
  }
  msvc_retry_free(c->retry);
  uv_mutex_destroy(&c->mu);
  msvc__free(c->self_name);
  msvc__free(c);
}
