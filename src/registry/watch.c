/* Watches, and the hygiene every backend gets for free:
 *
 * - A backend reports the full set it read; identical reports are dropped,
 *   so a periodic rescan costs callers nothing.
 * - Changes are debounced: a new set waits debounce_ms for the next one, but
 *   never more than debounce_max_ms in total, so a steady stream of changes
 *   still gets through. The first set is delivered without waiting.
 * - A failed read never empties a set: the last known one is delivered
 *   again, flagged stale, and the read is retried with jittered backoff. A
 *   successful read of an empty service is delivered as an empty, fresh
 *   set: the two cases stay distinguishable.
 * - Refreshes are scheduled for the earliest expiry a backend announces, so
 *   a dead instance disappears on time rather than at the next rescan.
 */
#include <msvc/log.h>

#include "registry/registry-internal.h"

static void on_refresh(uv_timer_t *t) {
  msvc_registry_watch_t *w = t->data;

  if (!w->stopping)
    w->reg->backend->ops->watch_refresh(w->reg->backend, w);
}

static void schedule_refresh(msvc_registry_watch_t *w, uint64_t delay) {
  uv_timer_start(&w->refresh, on_refresh, delay, 0);
}

void msvc__reg_watch_recheck(msvc_registry_watch_t *w, uint64_t delay_ms) {
  if (!w->stopping)
    schedule_refresh(w, delay_ms);
}

void msvc__reg_watch_poke(msvc_registry_watch_t *w) {
  msvc__reg_watch_recheck(w, 0);
}

static void emit_instances(msvc_registry_watch_t *w) {
  msvc_registry_t *reg = w->reg;
  msvc_registry_event_t ev;

  if (reg->hook == NULL)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.type = MSVC_REGISTRY_EVENT_INSTANCES;
  ev.backend = msvc_registry_backend(reg);
  ev.service = w->service;
  ev.instances = w->current->count;
  ev.stale = w->current->stale;
  reg->hook(reg->hook_data, &ev);
}

static void on_debounce(uv_timer_t *t) {
  msvc_registry_watch_t *w = t->data;

  if (w->stopping || w->pending == NULL)
    return;
  msvc_registry_set_unref(w->current);
  w->current = w->pending;
  w->pending = NULL;
  emit_instances(w);
  w->cb(w, w->current, w->cb_data);
}

static bool same(const msvc_registry_set_t *a, const msvc_registry_set_t *b) {
  return a->stale == b->stale && msvc__reg_set_equal(a, b);
}

/* Takes ownership of set. */
static void candidate(msvc_registry_watch_t *w, msvc_registry_set_t *set) {
  const msvc_registry_set_t *ref = w->pending ? w->pending : w->current;
  uint64_t now = uv_now(w->reg->loop), delay, elapsed;

  if (ref != NULL && same(ref, set)) {
    msvc_registry_set_unref(set);
    return;
  }
  if (w->pending != NULL && w->current != NULL && same(w->current, set)) {
    /* The burst cancelled itself out: nothing to tell. */
    msvc_registry_set_unref(w->pending);
    w->pending = NULL;
    uv_timer_stop(&w->debounce);
    msvc_registry_set_unref(set);
    return;
  }
  if (w->pending == NULL)
    w->pending_since = now;
  msvc_registry_set_unref(w->pending);
  w->pending = set;
  if (w->current == NULL) {
    delay = 0;
  } else {
    elapsed = now - w->pending_since;
    delay = w->reg->opts.debounce_ms;
    if (elapsed + delay > w->reg->opts.debounce_max_ms)
      delay = w->reg->opts.debounce_max_ms > elapsed
                  ? w->reg->opts.debounce_max_ms - elapsed
                  : 0;
  }
  uv_timer_start(&w->debounce, on_debounce, delay, 0);
}

static void report_failure(msvc_registry_watch_t *w, int status) {
  const msvc_registry_set_t *base = w->pending ? w->pending : w->current;
  msvc_registry_set_t *stale;

  msvc__reg_count_error(w->reg, MSVC_REGISTRY_OP_WATCH, status, w->service);
  if (w->attempt++ == 0)
    MSVC_LOG_W(MSVC__REG_COMPONENT,
               "%s: cannot read the registry (%s); keeping the last known "
               "instances",
               w->service, msvc_strerror(status));
  if (base == NULL || !base->stale) {
    stale = base != NULL ? msvc__reg_set_copy(base, true)
                         : msvc__reg_set_new(w->service);
    if (stale != NULL) {
      stale->stale = true;
      candidate(w, stale);
    }
  }
  schedule_refresh(w, msvc__reg_backoff_ms(&w->reg->opts, w->attempt));
}

void msvc__reg_watch_report(msvc_registry_watch_t *w, int status,
                            msvc_registry_set_t *set, uint64_t recheck_ms) {
  const msvc_registry_opts_t *o = &w->reg->opts;
  uint64_t delay = recheck_ms;

  if (w->stopping) {
    msvc_registry_set_unref(set);
    return;
  }
  if (status < 0 || set == NULL) {
    msvc_registry_set_unref(set);
    report_failure(w, status < 0 ? status : MSVC_EUNKNOWN);
    return;
  }
  if (w->attempt > 0)
    MSVC_LOG_I(MSVC__REG_COMPONENT, "%s: registry readable again",
               w->service);
  w->attempt = 0;
  candidate(w, set);
  if (w->reg->backend->ops->poll) {
    /* A little jitter keeps processes that started together from
     * rescanning in lockstep. */
    uint64_t poll = o->rescan_ms + msvc__rand_below(o->rescan_ms / 10 + 1);
    if (delay == 0 || poll < delay)
      delay = poll;
  }
  if (delay > 0)
    schedule_refresh(w, delay);
}

int msvc_registry_watch(msvc_registry_t *reg, const char *service,
                        msvc_registry_watch_cb cb, void *data,
                        msvc_registry_watch_t **out) {
  msvc_registry_watch_t *w;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (reg == NULL || cb == NULL || !msvc__reg_name_valid(service))
    return MSVC_EINVAL;
  if (reg->closing)
    return MSVC_ECLOSED;
  w = msvc__calloc(1, sizeof(*w));
  if (w == NULL || (w->service = msvc__strdup(service)) == NULL) {
    msvc__free(w);
    return MSVC_ENOMEM;
  }
  w->reg = reg;
  w->cb = cb;
  w->cb_data = data;
  /* The backend first: its failure leaves no libuv handle to close. */
  rc = reg->backend->ops->watch_start(reg->backend, w);
  if (rc != MSVC_OK) {
    msvc__free(w->service);
    msvc__free(w);
    return rc;
  }
  uv_timer_init(reg->loop, &w->debounce);
  uv_timer_init(reg->loop, &w->refresh);
  w->debounce.data = w;
  w->refresh.data = w;
  w->open_handles = 2;
  msvc__queue_insert_tail(&reg->watches, &w->node);
  reg->children++;
  schedule_refresh(w, 0);
  if (out != NULL)
    *out = w;
  return MSVC_OK;
}

msvc_registry_set_t *msvc_registry_watch_set(const msvc_registry_watch_t *w) {
  return w != NULL ? w->current : NULL;
}

static void on_watch_handle_closed(uv_handle_t *h) {
  msvc_registry_watch_t *w = h->data;
  msvc_registry_t *reg = w->reg;

  if (--w->open_handles > 0)
    return;
  msvc_registry_set_unref(w->current);
  msvc_registry_set_unref(w->pending);
  msvc__free(w->service);
  msvc__free(w);
  reg->children--;
  msvc__reg_maybe_finish(reg);
}

void msvc__reg_watch_stopped(msvc_registry_watch_t *w) {
  w->backend_stopped = true;
  uv_close((uv_handle_t *)&w->debounce, on_watch_handle_closed);
  uv_close((uv_handle_t *)&w->refresh, on_watch_handle_closed);
}

void msvc_registry_unwatch(msvc_registry_watch_t *w) {
  if (w == NULL || w->stopping)
    return;
  w->stopping = true;
  msvc__queue_remove(&w->node);
  uv_timer_stop(&w->debounce);
  uv_timer_stop(&w->refresh);
  w->reg->backend->ops->watch_stop(w->reg->backend, w);
}
