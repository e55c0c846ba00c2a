/* memory:// -- one table for the whole process, so that several registries
 * (one per loop, one per simulated service in a test) see each other.
 *
 * The table is guarded by a mutex because registries may run on loops of
 * different threads; changes reach the other registries through their
 * uv_async_t, the one libuv handle that may be signalled from any thread.
 * Liveness follows the same rule as every backend: an entry whose last
 * heartbeat is older than its TTL is dead, and whoever notices removes it. */
#include <pthread.h>

#include "registry/registry-internal.h"

typedef struct mem_entry_s {
  msvc__queue_t node;
  msvc_registry_instance_t inst; /* owned */
  uint32_t ttl_ms;
  uint64_t beat_ms; /* monotonic */
} mem_entry_t;

typedef struct mem_backend_s {
  msvc__reg_backend_t base;
  msvc__queue_t node; /* in mem_backends */
  uv_async_t async;
} mem_backend_t;

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static msvc__queue_t mem_entries = {&mem_entries, &mem_entries};
static msvc__queue_t mem_backends = {&mem_backends, &mem_backends};

/* Caller holds mem_lock. */
static void notify_all(void) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &mem_backends) {
    mem_backend_t *mb = msvc__container_of(q, mem_backend_t, node);
    uv_async_send(&mb->async);
  }
}

/* Caller holds mem_lock. */
static mem_entry_t *find(const char *service, const char *id) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &mem_entries) {
    mem_entry_t *e = msvc__container_of(q, mem_entry_t, node);
    if (strcmp(e->inst.service, service) == 0 && strcmp(e->inst.id, id) == 0)
      return e;
  }
  return NULL;
}

static void entry_free(mem_entry_t *e) {
  msvc__reg_instance_clear(&e->inst);
  msvc__free(e);
}

static int mem_put(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  mem_entry_t *e;
  bool changed = false;

  (void)b;
  pthread_mutex_lock(&mem_lock);
  e = find(lease->inst.service, lease->inst.id);
  if (e == NULL) {
    e = msvc__calloc(1, sizeof(*e));
    if (e == NULL ||
        msvc__reg_instance_copy(&e->inst, &lease->inst) != MSVC_OK) {
      pthread_mutex_unlock(&mem_lock);
      msvc__free(e);
      return MSVC_ENOMEM;
    }
    msvc__queue_insert_tail(&mem_entries, &e->node);
    changed = true;
  }
  e->ttl_ms = lease->ttl_ms;
  e->beat_ms = msvc_now_ms();
  /* A heartbeat changes nothing a watcher can see: no wake-up for it. */
  if (changed)
    notify_all();
  pthread_mutex_unlock(&mem_lock);
  return MSVC_OK;
}

static int mem_del(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  mem_entry_t *e;

  (void)b;
  pthread_mutex_lock(&mem_lock);
  e = find(lease->inst.service, lease->inst.id);
  if (e != NULL) {
    msvc__queue_remove(&e->node);
    entry_free(e);
    notify_all();
  }
  pthread_mutex_unlock(&mem_lock);
  return MSVC_OK;
}

/* Reads one service; removes the dead entries it meets. */
static int scan(const char *service, msvc_registry_set_t **out,
                uint64_t *recheck_ms) {
  msvc_registry_set_t *set = msvc__reg_set_new(service);
  uint64_t now = msvc_now_ms(), next = 0;
  msvc__queue_t *q, *nq;
  bool removed = false;
  int rc = set != NULL ? MSVC_OK : MSVC_ENOMEM;

  pthread_mutex_lock(&mem_lock);
  for (q = mem_entries.next; rc == MSVC_OK && q != &mem_entries; q = nq) {
    mem_entry_t *e = msvc__container_of(q, mem_entry_t, node);
    msvc_registry_instance_t copy;
    uint64_t expiry = e->beat_ms + e->ttl_ms;
    nq = q->next;
    if (strcmp(e->inst.service, service) != 0)
      continue;
    if (expiry <= now) {
      msvc__queue_remove(&e->node);
      entry_free(e);
      removed = true;
      continue;
    }
    if (next == 0 || expiry - now < next)
      next = expiry - now;
    if ((rc = msvc__reg_instance_copy(&copy, &e->inst)) == MSVC_OK &&
        (rc = msvc__reg_set_add(set, &copy)) != MSVC_OK)
      msvc__reg_instance_clear(&copy);
  }
  if (removed)
    notify_all();
  pthread_mutex_unlock(&mem_lock);
  if (rc != MSVC_OK) {
    msvc_registry_set_unref(set);
    return rc;
  }
  msvc__reg_set_finish(set);
  *out = set;
  if (recheck_ms != NULL)
    *recheck_ms = next;
  return MSVC_OK;
}

static int mem_resolve(msvc__reg_backend_t *b, msvc__reg_query_t *q) {
  (void)b;
  return scan(q->service, &q->set, NULL);
}

static int mem_watch_start(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  (void)w;
  uv_ref((uv_handle_t *)&((mem_backend_t *)b)->async);
  return MSVC_OK;
}

static void mem_watch_refresh(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  msvc_registry_set_t *set = NULL;
  uint64_t recheck = 0;
  int rc = scan(w->service, &set, &recheck);

  (void)b;
  /* +1: wake just after the expiry, not a millisecond before it. */
  msvc__reg_watch_report(w, rc, set, recheck != 0 ? recheck + 1 : 0);
}

static void mem_watch_stop(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  /* The watch is already off the registry's list. */
  if (msvc__queue_empty(&b->reg->watches))
    uv_unref((uv_handle_t *)&((mem_backend_t *)b)->async);
  msvc__reg_watch_stopped(w);
}

static void on_async(uv_async_t *a) {
  mem_backend_t *mb = msvc__container_of(a, mem_backend_t, async);
  msvc__queue_t *q;

  msvc__queue_foreach(q, &mb->base.reg->watches) {
    msvc__reg_watch_poke(msvc__container_of(q, msvc_registry_watch_t, node));
  }
}

static void on_async_closed(uv_handle_t *h) {
  mem_backend_t *mb = msvc__container_of(h, mem_backend_t, async);
  msvc_registry_t *reg = mb->base.reg;

  msvc__free(mb);
  msvc__reg_backend_closed(reg);
}

static void mem_close(msvc__reg_backend_t *b) {
  mem_backend_t *mb = (mem_backend_t *)b;

  pthread_mutex_lock(&mem_lock);
  msvc__queue_remove(&mb->node);
  pthread_mutex_unlock(&mem_lock);
  uv_close((uv_handle_t *)&mb->async, on_async_closed);
}

static const msvc__reg_ops_t mem_ops = {
    "memory",        false,           false,
    mem_put,         mem_del,         mem_resolve,
    mem_watch_start, mem_watch_refresh, mem_watch_stop,
    mem_close, NULL};

int msvc__reg_memory_open(msvc_registry_t *reg, msvc__reg_backend_t **out) {
  mem_backend_t *mb = msvc__calloc(1, sizeof(*mb));
  int rc;

  if (mb == NULL)
    return MSVC_ENOMEM;
  mb->base.ops = &mem_ops;
  mb->base.reg = reg;
  if ((rc = uv_async_init(reg->loop, &mb->async, on_async)) != 0) {
    msvc__free(mb);
    return rc;
  }
  /* The handle keeps the loop running only while something is watched. */
  uv_unref((uv_handle_t *)&mb->async);
  pthread_mutex_lock(&mem_lock);
  msvc__queue_insert_tail(&mem_backends, &mb->node);
  pthread_mutex_unlock(&mem_lock);
  *out = &mb->base;
  return MSVC_OK;
}
