/*
 * The life of a service: listen, register, ready; then, on a signal or a
 * call, deregister first, keep serving for a short grace so that peers
 * notice, drain, and release everything so the loop exits with no handle
 * of the service left.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>

#include "http/server.h"
#include "service-core.h"
#include "../admin/admin-internal.h"

#define LOG_COMPONENT "service"
/* Longest wait for the registry to confirm the deregistration. */
#define DEREGISTER_TIMEOUT_MS 5000u

enum {
  STAGE_NONE = 0,
  STAGE_SERVER,  /* main server closing */
  STAGE_EVENTS,  /* event backend closing */
  STAGE_JWKS,    /* key fetcher closing */
  STAGE_CALLER,  /* calls, watches and pools closing */
  STAGE_REGISTRY,
  STAGE_HANDLES, /* signals and timer closing */
  STAGE_DONE
};

static void set_state(msvc_service_t *svc, msvc_service_state_t st) {
  atomic_store(&svc->state, (int)st);
}

/* ---- teardown: one step after the other ------------------------------------ */

static void teardown_next(msvc_service_t *svc);

static void finish(msvc_service_t *svc) {
  msvc_service_stopped_cb cb = svc->stop_cb;
  void *data = svc->stop_data;
  bool free_it = svc->free_when_done;

  svc->stage = STAGE_DONE;
  set_state(svc, MSVC_SERVICE_STOPPED);
  if (svc->started) {
    msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0, "%s stopped", svc->cfg.name);
    if (cb != NULL) cb(svc, data);
  }
  if (free_it) msvc__svc_free_memory(svc);
}

static void on_handle_closed(uv_handle_t *h) {
  msvc_service_t *svc = h->data;

  if (--svc->pending == 0) finish(svc);
}

static void on_trace_flushed(msvc_service_t *svc) {
  if (--svc->pending == 0) finish(svc);
}

static void close_handles(msvc_service_t *svc) {
  svc->pending = 1; /* held until every close below is issued */
  /* The spans of the drained requests go out meanwhile, off the loop. */
  if (msvc__svc_trace_flush(svc, on_trace_flushed)) svc->pending++;
  if (svc->signals_on) {
    svc->pending += 3;
    uv_close((uv_handle_t *)&svc->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&svc->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&svc->sighup, on_handle_closed);
    svc->signals_on = false;
  }
  if (svc->started) {
    svc->pending++;
    uv_close((uv_handle_t *)&svc->timer, on_handle_closed);
  }
  if (--svc->pending == 0) finish(svc);
}

static void on_server_closed(void *data) {
  msvc_service_t *svc = data;

  msvc__svc_loop_free(&svc->main);
  teardown_next(svc);
}

static void on_step_done(void *data) { teardown_next(data); }

static void on_caller_closed(void *data) {
  msvc_service_t *svc = data;

  msvc__caller_free(svc->caller);
  svc->caller = NULL;
  teardown_next(svc);
}

/* Each step starts one asynchronous close whose callback comes back here;
 * a step with nothing to close falls through to the next. */
static void teardown_next(msvc_service_t *svc) {
  switch (svc->stage++) {
  case STAGE_NONE:
    if (svc->main.srv != NULL) {
      msvc_http_server_close(svc->main.srv, on_server_closed, svc);
      return;
    }
    /* fall through */
  case STAGE_SERVER:
    /* After the HTTP drain: a handler may still have published. */
    svc->stage = STAGE_EVENTS;
    if (svc->events != NULL) {
      msvc_events_close(svc->events, on_step_done, svc);
      svc->events = NULL;
      return;
    }
    /* fall through */
  case STAGE_EVENTS:
    svc->stage = STAGE_JWKS;
    if (svc->jwks != NULL) {
      msvc_jwks_fetcher_close(svc->jwks, on_step_done, svc);
      svc->jwks = NULL;
      return;
    }
    /* fall through */
  case STAGE_JWKS:
    svc->stage = STAGE_CALLER;
    if (svc->caller != NULL) {
      msvc__caller_close(svc->caller, on_caller_closed, svc);
      return;
    }
    /* fall through */
  case STAGE_CALLER:
    svc->stage = STAGE_REGISTRY;
    if (svc->registry != NULL) {
      msvc_registry_t *reg = svc->registry;
      svc->registry = NULL;
      svc->lease = NULL;
      msvc_registry_close(reg, on_step_done, svc);
      return;
    }
    /* fall through */
  case STAGE_REGISTRY:
    svc->stage = STAGE_HANDLES;
    msvc_jwt_keyset_free(svc->keyset);
    svc->keyset = NULL;
    close_handles(svc);
    return;
  default:
    return;
  }
}

/* The admin listener closes first: its pages read what the steps below
 * release. */
static void on_admin_closed(void *data) { teardown_next(data); }

void msvc__svc_teardown(msvc_service_t *svc) {
  if (svc->stage != STAGE_NONE) return;
  if (msvc__admin_close(svc->admin, on_admin_closed, svc)) return;
  teardown_next(svc);
}

/* ---- drain ------------------------------------------------------------------ */

static void on_drained(void *data, bool timedout) {
  msvc_service_t *svc = data;

  if (!svc->draining) return;
  svc->draining = false;
  if (timedout)
    msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                   "drain deadline reached: open connections were cut");
  msvc__svc_teardown(svc);
}

static void workers_stop_work(uv_work_t *w) {
  msvc_service_t *svc = w->data;

  /* Blocks until every worker has drained and joined: off the loop, so
   * that the main loop keeps its registry, caller and fetcher going. */
  msvc_http_workers_stop(svc->workers, svc->workers_drain_ms);
}

static void workers_stopped(uv_work_t *w, int status) {
  msvc_service_t *svc = w->data;

  (void)status;
  svc->workers = NULL;
  on_drained(svc, false);
}

static void begin_drain(msvc_service_t *svc) {
  svc->draining = true;
  svc->drain_deadline_ms = msvc_now_ms() + (svc->cut ? 0 : svc->cfg.drain_timeout_ms);
  if (svc->workers != NULL) {
    svc->workers_stop.data = svc;
    svc->workers_drain_ms = svc->cut ? 0 : svc->cfg.drain_timeout_ms;
    if (uv_queue_work(svc->loop, &svc->workers_stop, workers_stop_work,
                      workers_stopped) == 0)
      return;
    /* No thread pool: stopping on the loop thread blocks it, but only
     * after the deregistration. */
    workers_stop_work(&svc->workers_stop);
    workers_stopped(&svc->workers_stop, 0);
    return;
  }
  if (msvc_http_server_drain(svc->main.srv, svc->cut ? 0 : svc->cfg.drain_timeout_ms,
                             on_drained, svc) != MSVC_OK)
    on_drained(svc, false);
}

static void on_grace_over(uv_timer_t *t) {
  msvc_service_t *svc = t->data;

  begin_drain(svc);
}

/* Time between the deregistration and the drain, so that peers stop
 * sending before the listener closes: told at once by a watch (300 ms by
 * default), or at their next DNS resolution. Never past the drain
 * timeout. */
static void after_deregister(msvc_service_t *svc) {
  uint64_t grace;

  svc->dereg_pending = false;
  uv_timer_stop(&svc->timer);
  if (svc->cut) {
    begin_drain(svc);
    return;
  }
  grace = msvc_registry_notice_ms(svc->registry);
  if (grace > svc->cfg.drain_timeout_ms)
    grace = svc->cfg.drain_timeout_ms;
  uv_timer_start(&svc->timer, on_grace_over, grace, 0);
}

static void on_deregistered(int status, void *data) {
  msvc_service_t *svc = data;

  if (!svc->dereg_pending) return; /* gave up waiting already */
  if (status != MSVC_OK)
    msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                   "deregistration failed: %s", msvc_strerror(status));
  after_deregister(svc);
}

static void on_deregister_timeout(uv_timer_t *t) {
  msvc_service_t *svc = t->data;

  msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                 "deregistration not confirmed after %u ms; draining anyway",
                 DEREGISTER_TIMEOUT_MS);
  after_deregister(svc);
}

/* Wakes every worker still serving to cut its drain short. */
static void cut_workers(msvc_service_t *svc) {
  unsigned i;

  uv_mutex_lock(&svc->cut_mu);
  for (i = 0; i < svc->cfg.workers; i++)
    if (svc->wloops[i].cut_open) uv_async_send(&svc->wloops[i].cut);
  uv_mutex_unlock(&svc->cut_mu);
}

/* A second stop signal: stop waiting for anything and close now. */
static void cut_now(msvc_service_t *svc) {
  if (svc->cut) return;
  svc->cut = true;
  msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                 "second stop signal: cutting the drain short");
  if (svc->dereg_pending) {
    after_deregister(svc);
  } else if (svc->stage == STAGE_NONE && !svc->draining && uv_is_active((uv_handle_t *)&svc->timer)) {
    uv_timer_stop(&svc->timer); /* in the grace period */
    begin_drain(svc);
  } else if (svc->draining && svc->workers == NULL) {
    svc->draining = false;
    msvc__svc_teardown(svc); /* closing the server cuts its connections */
  } else if (svc->draining) {
    cut_workers(svc); /* their stop, off the loop, then ends at once */
  }
}

int msvc_service_stop(msvc_service_t *svc, msvc_service_stopped_cb cb, void *data) {
  msvc_service_state_t st;

  if (svc == NULL) return MSVC_EINVAL;
  st = msvc_service_state(svc);
  if (!svc->started || st == MSVC_SERVICE_STOPPING || st == MSVC_SERVICE_STOPPED)
    return MSVC_ESTATE;
  svc->stop_cb = cb != NULL ? cb : svc->on_stopped;
  svc->stop_data = cb != NULL ? data : svc->data;
  set_state(svc, MSVC_SERVICE_STOPPING);
  msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0, "%s stopping", svc->cfg.name);
  uv_timer_stop(&svc->timer);
  if (svc->lease != NULL) {
    msvc_registry_lease_t *lease = svc->lease;

    svc->lease = NULL;
    svc->dereg_pending = true;
    uv_timer_start(&svc->timer, on_deregister_timeout, DEREGISTER_TIMEOUT_MS, 0);
    msvc_registry_deregister(lease, on_deregistered, svc);
    return MSVC_OK;
  }
  begin_drain(svc);
  return MSVC_OK;
}

/* ---- signals -------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
  msvc_service_t *svc = h->data;

  if (msvc_service_state(svc) == MSVC_SERVICE_STOPPING) {
    cut_now(svc); /* a second SIGINT or SIGTERM */
    return;
  }
  msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0, "received %s",
                 signum == SIGINT ? "SIGINT" : "SIGTERM");
  msvc_service_stop(svc, NULL, NULL);
}

static void reload_one(msvc_tls_config_t *cfg, const char *side) {
  char why[384];

  if (cfg == NULL) return;
  why[0] = '\0';
  if (msvc_tls_config_reload(cfg, why, sizeof(why)) == MSVC_OK)
    msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0,
                   "TLS %s certificates reloaded", side);
  else
    msvc_log_write(MSVC_LOG_ERROR, LOG_COMPONENT, NULL, 0,
                   "TLS %s certificates not reloaded, the old ones stay in use: %s",
                   side, why);
}

/* New connections (ours and our peers') pick up the files read here;
 * every loop shares the same two configurations. */
static void on_sighup(uv_signal_t *h, int signum) {
  msvc_service_t *svc = h->data;

  (void)signum;
  if (svc->cfg.tls_server == NULL && svc->cfg.tls_client == NULL) {
    msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0,
                   "received SIGHUP: no TLS files to reload");
    return;
  }
  reload_one(svc->cfg.tls_server, "server");
  reload_one(svc->cfg.tls_client, "client");
}

/* A write to a socket the peer has reset raises SIGPIPE, whose default
 * action ends the process without a word; the write's error is all a
 * server needs. A handler the program installed itself is left alone. */
static void ignore_sigpipe(void) {
  struct sigaction sa;

  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) return;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  (void)sigaction(SIGPIPE, &sa, NULL);
}

static int start_signals(msvc_service_t *svc) {
  int rc;

  ignore_sigpipe();

  if ((rc = uv_signal_init(svc->loop, &svc->sigterm)) != 0) return rc;
  if ((rc = uv_signal_init(svc->loop, &svc->sigint)) != 0) {
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    return rc;
  }
  if ((rc = uv_signal_init(svc->loop, &svc->sighup)) != 0) {
    uv_close((uv_handle_t *)&svc->sigterm, NULL);
    uv_close((uv_handle_t *)&svc->sigint, NULL);
    return rc;
  }
  svc->sigterm.data = svc;
  svc->sigint.data = svc;
  svc->sighup.data = svc;
  svc->signals_on = true;
  if ((rc = uv_signal_start(&svc->sigterm, on_signal, SIGTERM)) != 0) return rc;
  if ((rc = uv_signal_start(&svc->sighup, on_sighup, SIGHUP)) != 0) return rc;
  return uv_signal_start(&svc->sigint, on_signal, SIGINT);
}

/* ---- registration --------------------------------------------------------- */

void msvc__svc_become_ready(msvc_service_t *svc) {
  if (msvc_service_state(svc) != MSVC_SERVICE_STARTING) return;
  if (svc->jwks != NULL && msvc_jwt_keyset_count(svc->keyset) == 0) {
    /* Registered before its keys (it serves them itself): fetch them now
     * that discovery can find an instance; ready when they are in. */
    (void)msvc_jwks_fetcher_refresh(svc->jwks);
    return;
  }
  set_state(svc, MSVC_SERVICE_READY);
  msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0, "%s ready on port %d",
                 svc->cfg.name, svc->port);
  if (svc->on_ready != NULL) svc->on_ready(svc, MSVC_OK, svc->data);
}

static void on_start_outcome(uv_timer_t *t);

/* Answers that retrying will not change: the registry refuses this process
 * (an unsafe or read-only directory, no permission) or the instance. */
static bool registry_refusal(int status) {
  return status == MSVC_EACCES || status == -EPERM || status == -EROFS ||
         status == MSVC_EINVAL;
}

static void on_lease(msvc_registry_lease_t *lease, int status, void *data) {
  msvc_service_t *svc = data;

  (void)lease;
  atomic_store(&svc->lease_status, status);
  if (status == MSVC_OK) {
    msvc__svc_become_ready(svc);
    return;
  }
  if (msvc_service_state(svc) == MSVC_SERVICE_STARTING && svc->start_error == MSVC_OK &&
      registry_refusal(status)) {
    /* Never registered, and refused: a failed start, told to on_ready and
     * to the caller of msvc_service_run(), not a warning behind a service
     * that nobody can find. Other failures (a store not up yet) are
     * retried while /ready answers 503. */
    svc->start_error = status;
    uv_timer_start(&svc->timer, on_start_outcome, 0, 0);
    return;
  }
  msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                 "registration of %s failing: %s (retrying)", svc->cfg.name,
                 msvc_strerror(status));
}

/* The outcome of a start that needs no lease callback, told from the loop
 * as on_ready must never run inside msvc_service_start(). */
static void on_start_outcome(uv_timer_t *t) {
  msvc_service_t *svc = t->data;
  int err = svc->start_error;

  if (err == MSVC_OK) {
    msvc__svc_become_ready(svc);
    return;
  }
  msvc_log_write(MSVC_LOG_ERROR, LOG_COMPONENT, NULL, 0,
                 "%s cannot register: %s", svc->cfg.name, msvc_strerror(err));
  if (svc->on_ready != NULL) svc->on_ready(svc, err, svc->data);
  msvc_service_stop(svc, NULL, NULL);
}

static const char *advertised_host(const msvc_service_t *svc) {
  if (svc->cfg.advertise_host != NULL) return svc->cfg.advertise_host;
  /* A wildcard listen address is no address to connect to. */
  if (strcmp(svc->cfg.host, "0.0.0.0") == 0) return "127.0.0.1";
  if (strcmp(svc->cfg.host, "::") == 0) return "::1";
  return svc->cfg.host;
}

/* The user's metadata, plus scheme=https when the instance serves TLS so
 * that callers know to speak it (the service's own value wins over a
 * user's "scheme"). The array is the caller's to free; its strings are
 * borrowed from the configuration. */
static msvc_registry_meta_t *register_meta(const msvc_service_t *svc, size_t *n) {
  msvc_registry_meta_t *m;
  size_t i, k = 0;

  *n = svc->cfg.nmetadata;
  if (svc->cfg.tls_server == NULL) return svc->cfg.metadata;
  m = msvc__calloc(svc->cfg.nmetadata + 1, sizeof(*m));
  if (m == NULL) return NULL;
  for (i = 0; i < svc->cfg.nmetadata; i++)
    if (strcmp(svc->cfg.metadata[i].key, "scheme") != 0) m[k++] = svc->cfg.metadata[i];
  m[k].key = "scheme";
  m[k].value = "https";
  *n = k + 1;
  return m;
}

static int do_register(msvc_service_t *svc) {
  msvc_registry_instance_t inst;
  msvc_registry_meta_t *meta;
  size_t nmeta;
  int rc;

  msvc_registry_instance_init(&inst);
  inst.service = svc->cfg.name;
  inst.address = advertised_host(svc);
  inst.port = (uint16_t)(svc->cfg.advertise_port != 0 ? svc->cfg.advertise_port
                                                      : svc->port);
  inst.weight = svc->cfg.weight;
  inst.version = svc->cfg.version;
  meta = register_meta(svc, &nmeta);
  if (meta == NULL && svc->cfg.tls_server != NULL) return MSVC_ENOMEM;
  inst.metadata = meta;
  inst.nmetadata = nmeta;
  rc = msvc_registry_register(svc->registry, &inst, svc->cfg.registry_ttl_ms, on_lease,
                              svc, &svc->lease);
  if (meta != svc->cfg.metadata) msvc__free(meta);
  if (rc != MSVC_OK) return rc;
  svc->instance_id = msvc__strdup(msvc_registry_lease_id(svc->lease));
  return svc->instance_id == NULL ? MSVC_ENOMEM : MSVC_OK;
}

void msvc__svc_register(msvc_service_t *svc) {
  int rc = do_register(svc);

  if (rc == MSVC_ENOTSUP) {
    /* A read-only registry (static://): nothing to register, ready now. */
    atomic_store(&svc->lease_status, MSVC_OK);
    uv_timer_start(&svc->timer, on_start_outcome, 0, 0);
  } else if (rc != MSVC_OK) {
    svc->start_error = rc;
    uv_timer_start(&svc->timer, on_start_outcome, 0, 0);
  }
}

/* ---- worker loops ------------------------------------------------------------- */

/* Worker thread: the drain under way ends now; one not started yet (the
 * stop's wake-up may come after this one) starts with no deadline, and the
 * stop's own drain request then finds it and closes the server. */
static void on_worker_cut(uv_async_t *a) {
  msvc__svc_loop_t *l = msvc__container_of(a, msvc__svc_loop_t, cut);

  if (l->srv == NULL) return;
  if (msvc_http_server_drain(l->srv, 0, NULL, NULL) == MSVC_ESTATE)
    msvc__http_server_drain_cut(l->srv);
}

static int setup_worker(msvc_http_server_t *srv, unsigned index, void *data) {
  msvc_service_t *svc = data;
  msvc__svc_loop_t *l = &svc->wloops[index];
  int rc;

  rc = msvc__svc_setup_server(svc, srv, l);
  if (rc != MSVC_OK) return rc;
  if ((rc = uv_async_init(msvc_http_server_loop(srv), &l->cut, on_worker_cut)) != 0)
    return rc;
  uv_mutex_lock(&svc->cut_mu);
  l->cut_open = true;
  uv_mutex_unlock(&svc->cut_mu);
  rc = msvc__caller_attach(svc->caller, msvc_http_server_loop(srv));
  l->attached = rc == MSVC_OK;
  return rc;
}

static void teardown_worker(uv_loop_t *loop, unsigned index, void *data) {
  msvc_service_t *svc = data;
  msvc__svc_loop_t *l = &svc->wloops[index];

  uv_mutex_lock(&svc->cut_mu);
  if (l->cut_open) uv_close((uv_handle_t *)&l->cut, NULL);
  l->cut_open = false;
  uv_mutex_unlock(&svc->cut_mu);
  if (l->attached) msvc__caller_detach(svc->caller, loop);
  l->attached = false;
  msvc__svc_loop_free(l);
}

static int start_workers(msvc_service_t *svc) {
  int rc;

  svc->wloops = msvc__calloc(svc->cfg.workers, sizeof(*svc->wloops));
  if (svc->wloops == NULL) return MSVC_ENOMEM;
  if ((rc = uv_mutex_init(&svc->cut_mu)) != 0) {
    msvc__free(svc->wloops);
    svc->wloops = NULL;
    return rc;
  }
  rc = msvc_http_workers_start_ex(svc->cfg.workers, svc->cfg.host, svc->cfg.port,
                                   &svc->cfg.server, setup_worker, teardown_worker, svc,
                                   &svc->workers);
  if (rc != MSVC_OK) {
    uv_mutex_destroy(&svc->cut_mu);
    msvc__free(svc->wloops);
    svc->wloops = NULL;
    return rc;
  }
  svc->port = msvc_http_workers_port(svc->workers);
  return MSVC_OK;
}

/* ---- start and run ---------------------------------------------------------- */

int msvc_service_start(msvc_service_t *svc) {
  int rc;

  if (svc == NULL) return MSVC_EINVAL;
  if (svc->started || msvc_service_state(svc) != MSVC_SERVICE_NEW) return MSVC_ESTATE;
  /* Before listening, so that the servers size their connection limits
   * from what the process may really open. */
  if (msvc__http_raise_fd_limit() < 0)
    msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0, "cannot read the descriptor limit");
  /* The admin listener first: a failure then leaves nothing running. */
  if ((rc = msvc__admin_start(svc->admin)) != MSVC_OK) return rc;
  if (svc->cfg.workers > 1) {
    rc = start_workers(svc);
  } else {
    rc = msvc_http_server_listen(svc->main.srv, svc->cfg.host, svc->cfg.port);
    if (rc == MSVC_OK) svc->port = msvc_http_server_port(svc->main.srv);
  }
  if (rc != MSVC_OK) {
    msvc_log_write(MSVC_LOG_ERROR, LOG_COMPONENT, NULL, 0, "%s cannot listen on %s:%d: %s",
                   svc->cfg.name, svc->cfg.host, svc->cfg.port, msvc_strerror(rc));
    return rc;
  }
  svc->started = true;
  set_state(svc, MSVC_SERVICE_STARTING);
  uv_timer_init(svc->loop, &svc->timer);
  svc->timer.data = svc;
  if (svc->cfg.handle_signals && (rc = start_signals(svc)) != MSVC_OK)
    msvc_log_write(MSVC_LOG_WARN, LOG_COMPONENT, NULL, 0,
                   "signals not handled: %s", msvc_strerror(rc));
  if (svc->jwks != NULL && msvc_jwt_keyset_count(svc->keyset) == 0 && svc->jwks_self) {
    /* Its own keys: register now (an instance, this one or another,
     * must be found to fetch them), ready once they are in. */
    msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0,
                   "%s serves its own JWK Set: registering now, ready once loaded",
                   svc->cfg.name);
    msvc__svc_register(svc);
  } else if (svc->jwks != NULL && msvc_jwt_keyset_count(svc->keyset) == 0) {
    /* Peers would send requests whose tokens cannot be checked yet: the
     * instance registers once the first key set has arrived. */
    svc->register_waits_keys = true;
    msvc_log_write(MSVC_LOG_INFO, LOG_COMPONENT, NULL, 0,
                   "%s waits for its JWK Set before registering", svc->cfg.name);
  } else {
    msvc__svc_register(svc);
  }
  return MSVC_OK;
}

int msvc_service_run(msvc_service_t *svc) {
  uv_loop_t *loop;
  int rc;

  if (svc == NULL) return MSVC_EINVAL;
  loop = svc->loop;
  rc = msvc_service_start(svc);
  if (rc != MSVC_OK) {
    msvc_service_free(svc);
    uv_run(loop, UV_RUN_DEFAULT); /* releases the handles of the service */
    return rc;
  }
  while (msvc_service_state(svc) != MSVC_SERVICE_STOPPED) {
    uv_run(svc->loop, UV_RUN_DEFAULT);
    if (msvc_service_state(svc) == MSVC_SERVICE_READY ||
        msvc_service_state(svc) == MSVC_SERVICE_STARTING)
      msvc_service_stop(svc, NULL, NULL); /* someone stopped the loop */
  }
  rc = svc->start_error;
  msvc_service_free(svc);
  return rc;
}
