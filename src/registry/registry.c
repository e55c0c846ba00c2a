/* The backend-independent part of the registry: lifecycle, heartbeats,
 * retries, and the hygiene of watch deliveries. */
#include <stdlib.h>

#include <msvc/log.h>

#include "registry/registry-internal.h"

static const char *const op_names[MSVC_REGISTRY_OP_COUNT] = {
    "register", "heartbeat", "deregister", "resolve", "watch"};

void msvc_registry_opts_init(msvc_registry_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->debounce_ms = 10;
  opts->debounce_max_ms = 200;
  opts->rescan_ms = 1000;
  opts->retry_min_ms = 100;
  opts->retry_max_ms = 5000;
}

/* Copies what the caller's (possibly older, smaller) struct holds, then
 * repairs values that would make the timers misbehave. */
static void options_copy(msvc_registry_opts_t *dst,
                         const msvc_registry_opts_t *src) {
  size_t n;

  msvc_registry_opts_init(dst);
  if (src == NULL)
    return;
  n = src->size == 0 || src->size > sizeof(*dst) ? sizeof(*dst) : src->size;
  memcpy(dst, src, n);
  dst->size = sizeof(*dst);
  if (dst->debounce_max_ms < dst->debounce_ms)
    dst->debounce_max_ms = dst->debounce_ms;
  if (dst->rescan_ms < 10)
    dst->rescan_ms = 10;
  if (dst->retry_min_ms == 0)
    dst->retry_min_ms = 1;
  if (dst->retry_max_ms < dst->retry_min_ms)
    dst->retry_max_ms = dst->retry_min_ms;
}

const char *msvc_registry_op_name(msvc_registry_op_t op) {
  return (unsigned)op < MSVC_REGISTRY_OP_COUNT ? op_names[op] : "unknown";
}

const char *msvc_registry_backend(const msvc_registry_t *reg) {
  return reg != NULL && reg->backend != NULL ? reg->backend->ops->name : "";
}

uint64_t msvc_registry_notice_ms(const msvc_registry_t *reg) {
  if (reg == NULL || reg->backend == NULL)
    return 0;
  if (reg->backend->ops->notice_ms != NULL)
    return reg->backend->ops->notice_ms(reg->backend) +
           reg->opts.debounce_max_ms;
  /* Watches are told at once; the change then waits at most the
   * debounce, and a little for the peers' loops to act on it. */
  return (uint64_t)reg->opts.debounce_max_ms + 100;
}

uint64_t msvc_registry_errors(const msvc_registry_t *reg,
                              msvc_registry_op_t op) {
  if (reg == NULL || (unsigned)op >= MSVC_REGISTRY_OP_COUNT)
    return 0;
  return reg->errors[op];
}

void msvc_registry_set_event_hook(msvc_registry_t *reg,
                                  msvc_registry_event_fn fn, void *data) {
  if (reg == NULL)
    return;
  reg->hook = fn;
  reg->hook_data = data;
}

void msvc__reg_count_error(msvc_registry_t *reg, msvc_registry_op_t op,
                           int err, const char *service) {
  msvc_registry_event_t ev;

  reg->errors[op]++;
  if (reg->hook == NULL)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.type = MSVC_REGISTRY_EVENT_ERROR;
  ev.backend = msvc_registry_backend(reg);
  ev.op = op;
  ev.error = err;
  ev.service = service;
  reg->hook(reg->hook_data, &ev);
}

uint64_t msvc__reg_backoff_ms(const msvc_registry_opts_t *o,
                              unsigned attempt) {
  uint64_t d = o->retry_min_ms;
  unsigned i;

  for (i = 1; i < attempt && d < o->retry_max_ms; i++)
    d *= 2;
  if (d > o->retry_max_ms)
    d = o->retry_max_ms;
  /* "Equal jitter": never less than half the step, so a crowd of clients
   * that failed together spreads out without hammering early. */
  return d / 2 + msvc__rand_below(d / 2 + 1);
}

/* ---- lifecycle ------------------------------------------------------------ */

static int open_backend(msvc_registry_t *reg, const char *uri) {
  msvc__reg_kind_t kind;
  char *arg = NULL;
  int rc = msvc__reg_uri_parse(uri, &kind, &arg, NULL, 0);

  if (rc != MSVC_OK)
    return rc;
  switch (kind) {
  case MSVC__REG_MEMORY:
    rc = msvc__reg_memory_open(reg, &reg->backend);
    break;
  case MSVC__REG_LOCAL:
    rc = msvc__reg_local_open(reg, arg, &reg->backend);
    break;
  case MSVC__REG_STATIC:
    rc = msvc__reg_static_open(reg, arg, NULL, 0, &reg->backend);
    break;
  case MSVC__REG_ETCD:
    rc = msvc__reg_etcd_open(reg, arg, &reg->backend);
    break;
#ifdef MSVC_HAVE_CARES
  case MSVC__REG_DNS:
    rc = msvc__reg_dns_open(reg, arg, &reg->backend);
    break;
#endif
  default:
    rc = MSVC_ENOTSUP;
    break;
  }
  msvc__free(arg);
  return rc;
}

int msvc_registry_new(uv_loop_t *loop, const char *uri,
                      const msvc_registry_opts_t *opts,
                      msvc_registry_t **out) {
  char err[768];
  char *dflt = NULL;
  msvc_registry_t *reg;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (loop == NULL || out == NULL)
    return MSVC_EINVAL;
  if (uri == NULL) {
    uri = getenv("MSVC_REGISTRY");
    if (uri == NULL || uri[0] == '\0') {
      if ((rc = msvc_registry_default_uri(&dflt)) != MSVC_OK)
        return rc;
      uri = dflt;
    }
  }
  rc = msvc_registry_check_uri(uri, err, sizeof(err));
  if (rc != MSVC_OK) {
    MSVC_LOG_E(MSVC__REG_COMPONENT, "%s", err);
    msvc__free(dflt);
    return rc;
  }
  reg = msvc__calloc(1, sizeof(*reg));
  if (reg == NULL) {
    msvc__free(dflt);
    return MSVC_ENOMEM;
  }
  reg->loop = loop;
  options_copy(&reg->opts, opts);
  msvc__queue_init(&reg->leases);
  msvc__queue_init(&reg->watches);
  msvc__queue_init(&reg->done_queries);
  rc = open_backend(reg, uri);
  msvc__free(dflt);
  if (rc != MSVC_OK) {
    msvc__free(reg);
    return rc;
  }
  uv_timer_init(loop, &reg->defer);
  *out = reg;
  return MSVC_OK;
}

static void on_defer_closed(uv_handle_t *h) {
  msvc_registry_t *reg = msvc__container_of(h, msvc_registry_t, defer);
  msvc_registry_close_cb cb = reg->close_cb;
  void *data = reg->close_data;

  msvc__free(reg);
  if (cb != NULL)
    cb(data);
}

void msvc__reg_backend_closed(msvc_registry_t *reg) {
  reg->backend = NULL;
  reg->closing = 3;
  uv_close((uv_handle_t *)&reg->defer, on_defer_closed);
}

/* The backend goes last: leases may need it to remove their instances. */
void msvc__reg_maybe_finish(msvc_registry_t *reg) {
  if (reg->closing != 1 || reg->children > 0)
    return;
  reg->closing = 2;
  reg->backend->ops->close(reg->backend);
}

void msvc_registry_close(msvc_registry_t *reg, msvc_registry_close_cb cb,
                         void *data) {
  if (reg == NULL || reg->closing)
    return;
  reg->closing = 1;
  reg->close_cb = cb;
  reg->close_data = data;
  while (!msvc__queue_empty(&reg->watches))
    msvc_registry_unwatch(
        msvc__container_of(reg->watches.next, msvc_registry_watch_t, node));
  while (!msvc__queue_empty(&reg->leases))
    msvc_registry_deregister(
        msvc__container_of(reg->leases.next, msvc_registry_lease_t, node),
        NULL, NULL);
  msvc__reg_maybe_finish(reg);
}

/* ---- leases --------------------------------------------------------------- */

static void on_lease_timer(uv_timer_t *t);

static void lease_schedule(msvc_registry_lease_t *lease, uint64_t delay) {
  if (!lease->frozen && !lease->withdrawing)
    uv_timer_start(&lease->timer, on_lease_timer, delay, 0);
}

static void lease_withdraw(msvc_registry_lease_t *lease) {
  int rc = lease->reg->backend->ops->del(lease->reg->backend, lease);

  if (rc != MSVC__REG_ASYNC)
    msvc__reg_lease_del_done(lease, rc);
}

void msvc__reg_lease_put_done(msvc_registry_lease_t *lease, int status) {
  msvc_registry_t *reg = lease->reg;
  uint64_t beat = lease->ttl_ms / 3 ? lease->ttl_ms / 3 : 1;
  bool notify;

  lease->in_flight = false;
  if (lease->withdrawing) {
    lease_withdraw(lease);
    return;
  }
  if (status < 0) {
    msvc__reg_count_error(reg, lease->announced ? MSVC_REGISTRY_OP_HEARTBEAT
                                                : MSVC_REGISTRY_OP_REGISTER,
                          status, lease->inst.service);
    if (lease->status >= 0)
      MSVC_LOG_W(MSVC__REG_COMPONENT, "%s/%s: %s failed: %s",
                 lease->inst.service, lease->inst.id,
                 lease->announced ? "heartbeat" : "register",
                 msvc_strerror(status));
    lease->attempt++;
    uint64_t retry = msvc__reg_backoff_ms(&reg->opts, lease->attempt);
    lease_schedule(lease, retry < beat ? retry : beat);
  } else {
    lease->attempt = 0;
    lease_schedule(lease, beat);
  }
  notify = !lease->announced || (status < 0) != (lease->status < 0);
  lease->announced = true;
  lease->status = status;
  if (notify && lease->cb != NULL)
    lease->cb(lease, status, lease->cb_data);
}

static void on_lease_timer(uv_timer_t *t) {
  msvc_registry_lease_t *lease =
      msvc__container_of(t, msvc_registry_lease_t, timer);
  int rc;

  if (lease->frozen || lease->withdrawing || lease->in_flight)
    return;
  lease->beat_wall_ms = msvc_wall_ms();
  rc = lease->reg->backend->ops->put(lease->reg->backend, lease);
  if (rc == MSVC__REG_ASYNC)
    lease->in_flight = true;
  else
    msvc__reg_lease_put_done(lease, rc);
}

int msvc_registry_register(msvc_registry_t *reg,
                           const msvc_registry_instance_t *inst,
                           uint32_t ttl_ms, msvc_registry_lease_cb cb,
                           void *data, msvc_registry_lease_t **out) {
  msvc_registry_lease_t *lease;
  char id[33];
  int rc;

  if (out != NULL)
    *out = NULL;
  if (reg == NULL || inst == NULL || ttl_ms < 30 || ttl_ms > 86400000u)
    return MSVC_EINVAL;
  if (reg->closing)
    return MSVC_ECLOSED;
  if (reg->backend->ops->read_only)
    return MSVC_ENOTSUP;
  if ((rc = msvc__reg_instance_validate(inst)) != MSVC_OK)
    return rc;
  lease = msvc__calloc(1, sizeof(*lease));
  if (lease == NULL)
    return MSVC_ENOMEM;
  if (inst->id == NULL) {
    msvc_registry_instance_t tmp = *inst;
    msvc__reg_new_id(id);
    tmp.id = id;
    rc = msvc__reg_instance_copy(&lease->inst, &tmp);
  } else {
    rc = msvc__reg_instance_copy(&lease->inst, inst);
  }
  if (rc != MSVC_OK) {
    msvc__free(lease);
    return rc;
  }
  lease->reg = reg;
  lease->ttl_ms = ttl_ms;
  lease->cb = cb;
  lease->cb_data = data;
  uv_timer_init(reg->loop, &lease->timer);
  msvc__queue_insert_tail(&reg->leases, &lease->node);
  reg->children++;
  uv_timer_start(&lease->timer, on_lease_timer, 0, 0);
  if (out != NULL)
    *out = lease;
  return MSVC_OK;
}

const char *msvc_registry_lease_id(const msvc_registry_lease_t *lease) {
  return lease != NULL ? lease->inst.id : NULL;
}

void msvc__reg_lease_freeze(msvc_registry_lease_t *lease) {
  lease->frozen = true;
  uv_timer_stop(&lease->timer);
}

static void on_lease_closed(uv_handle_t *h) {
  msvc_registry_lease_t *lease =
      msvc__container_of(h, msvc_registry_lease_t, timer);
  msvc_registry_t *reg = lease->reg;
  msvc_registry_done_cb cb = lease->done_cb;
  void *data = lease->done_data;
  int status = lease->done_status;

  msvc__reg_instance_clear(&lease->inst);
  msvc__free(lease);
  reg->children--;
  if (cb != NULL)
    cb(status, data);
  msvc__reg_maybe_finish(reg);
}

static void lease_withdraw(msvc_registry_lease_t *lease);

static void on_withdraw_retry(uv_timer_t *t) {
  lease_withdraw(msvc__container_of(t, msvc_registry_lease_t, timer));
}

/* Removals that failed for want of memory are tried again a few times,
 * with the registry's backoff: giving up at once would leave the instance
 * announced until its TTL ran out. */
#define WITHDRAW_TRIES 5

void msvc__reg_lease_del_done(msvc_registry_lease_t *lease, int status) {
  if (status == MSVC_ENOMEM && lease->attempt < WITHDRAW_TRIES) {
    lease->attempt++;
    uv_timer_start(&lease->timer, on_withdraw_retry,
                   msvc__reg_backoff_ms(&lease->reg->opts, lease->attempt), 0);
    return;
  }
  if (status < 0) {
    msvc__reg_count_error(lease->reg, MSVC_REGISTRY_OP_DEREGISTER, status,
                          lease->inst.service);
    MSVC_LOG_W(MSVC__REG_COMPONENT, "%s/%s: deregister failed: %s",
               lease->inst.service, lease->inst.id, msvc_strerror(status));
  }
  lease->done_status = status < 0 ? status : MSVC_OK;
  uv_close((uv_handle_t *)&lease->timer, on_lease_closed);
}

void msvc_registry_deregister(msvc_registry_lease_t *lease,
                              msvc_registry_done_cb cb, void *data) {
  if (lease == NULL || lease->withdrawing)
    return;
  lease->withdrawing = true;
  lease->attempt = 0;
  lease->done_cb = cb;
  lease->done_data = data;
  uv_timer_stop(&lease->timer);
  msvc__queue_remove(&lease->node);
  /* An answer to a put still on its way would re-create the instance after
   * its removal: wait for it (msvc__reg_lease_put_done). */
  if (!lease->in_flight)
    lease_withdraw(lease);
}

/* ---- resolve -------------------------------------------------------------- */

static void on_defer(uv_timer_t *t) {
  msvc_registry_t *reg = msvc__container_of(t, msvc_registry_t, defer);

  while (!msvc__queue_empty(&reg->done_queries)) {
    msvc__reg_query_t *q =
        msvc__container_of(reg->done_queries.next, msvc__reg_query_t, node);
    msvc__queue_remove(&q->node);
    if (q->status < 0)
      msvc__reg_count_error(reg, MSVC_REGISTRY_OP_RESOLVE, q->status,
                            q->service);
    q->cb(q->status, q->status < 0 ? NULL : q->set, q->cb_data);
    msvc_registry_set_unref(q->set);
    msvc__free(q->service);
    msvc__free(q);
    reg->children--;
  }
  msvc__reg_maybe_finish(reg);
}

void msvc__reg_query_done(msvc__reg_query_t *q, int status,
                          msvc_registry_set_t *set) {
  msvc_registry_t *reg = q->reg;

  if (set != q->set)
    msvc_registry_set_unref(q->set);
  q->set = set;
  q->status = status < 0 ? status : MSVC_OK;
  if (q->status == MSVC_OK && q->set == NULL)
    q->status = MSVC_EUNKNOWN;
  msvc__queue_insert_tail(&reg->done_queries, &q->node);
  if (!uv_is_active((uv_handle_t *)&reg->defer))
    uv_timer_start(&reg->defer, on_defer, 0, 0);
}

int msvc_registry_resolve(msvc_registry_t *reg, const char *service,
                          msvc_registry_resolve_cb cb, void *data) {
  msvc__reg_query_t *q;
  int rc;

  if (reg == NULL || cb == NULL || !msvc__reg_name_valid(service))
    return MSVC_EINVAL;
  if (reg->closing)
    return MSVC_ECLOSED;
  q = msvc__calloc(1, sizeof(*q));
  if (q == NULL || (q->service = msvc__strdup(service)) == NULL) {
    msvc__free(q);
    return MSVC_ENOMEM;
  }
  q->reg = reg;
  q->cb = cb;
  q->cb_data = data;
  msvc__queue_init(&q->node);
  reg->children++;
  rc = reg->backend->ops->resolve(reg->backend, q);
  if (rc != MSVC__REG_ASYNC)
    msvc__reg_query_done(q, rc, q->set);
  return MSVC_OK;
}
