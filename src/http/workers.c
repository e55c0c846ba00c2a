/*
 * Worker loops: each thread owns a loop and a server whose listening socket
 * has SO_REUSEPORT, so the kernel spreads new connections over the workers
 * and nothing is shared between them on the request path.
 */
#include <string.h>

#include "http/server.h"

typedef struct worker_s {
  msvc_http_workers_t *group;
  unsigned index;
  uv_thread_t thread;
  bool started;
  uv_loop_t loop;
  uv_async_t stop;
  msvc_http_server_t *srv;
  uv_sem_t ready;
  int rc;
  int close_rc;
} worker_t;

struct msvc_http_workers_s {
  unsigned n;
  worker_t *workers;
  char host[64];
  int port;
  uint32_t drain_ms;
  msvc_http_server_opts_t opts;
  msvc_http_worker_setup_fn setup;
  msvc_http_worker_teardown_fn teardown;
  void *data;
};

static void on_async_closed(uv_handle_t *h) {
  (void)h;
}

static void on_server_closed(void *data) {
  worker_t *wk = data;

  if (wk->group->teardown != NULL)
    wk->group->teardown(&wk->loop, wk->index, wk->group->data);
}

static void on_drained(void *data, bool timedout) {
  worker_t *wk = data;

  (void)timedout;
  msvc_http_server_close(wk->srv, on_server_closed, wk);
  wk->srv = NULL;
  uv_close((uv_handle_t *)&wk->stop, on_async_closed);
}

static void on_stop(uv_async_t *a) {
  worker_t *wk = a->data;

  if (wk->srv == NULL || msvc_http_server_drain(wk->srv, wk->group->drain_ms,
                                                on_drained, wk) != MSVC_OK)
    on_drained(wk, false);
}

static void worker_main(void *arg) {
  worker_t *wk = arg;
  msvc_http_workers_t *g = wk->group;
  int rc;

  rc = uv_loop_init(&wk->loop);
  if (rc != 0) {
    wk->rc = rc;
    uv_sem_post(&wk->ready);
    return;
  }
  uv_async_init(&wk->loop, &wk->stop, on_stop);
  wk->stop.data = wk;
  rc = msvc_http_server_new(&wk->loop, &g->opts, &wk->srv);
  if (rc == MSVC_OK)
    rc = g->setup != NULL ? g->setup(wk->srv, wk->index, g->data) : MSVC_OK;
  if (rc == MSVC_OK)
    rc = msvc_http_server_listen(wk->srv, g->host, g->port);
  if (rc == MSVC_OK && wk->index == 0)
    g->port = msvc_http_server_port(wk->srv);
  wk->rc = rc;
  uv_sem_post(&wk->ready);
  if (rc != MSVC_OK) {
    if (wk->srv != NULL)
      msvc_http_server_close(wk->srv, on_server_closed, wk);
    else
      on_server_closed(wk);
    wk->srv = NULL;
    uv_close((uv_handle_t *)&wk->stop, on_async_closed);
  }
  uv_run(&wk->loop, UV_RUN_DEFAULT);
  wk->close_rc = uv_loop_close(&wk->loop);
}

static int stop_started(msvc_http_workers_t *g) {
  unsigned i;
  int rc = 0;

  for (i = 0; i < g->n; i++) {
    worker_t *wk = &g->workers[i];
    if (!wk->started)
      continue;
    if (wk->rc == MSVC_OK)
      uv_async_send(&wk->stop);
    uv_thread_join(&wk->thread);
    uv_sem_destroy(&wk->ready);
    if (rc == 0)
      rc = wk->close_rc;
  }
  msvc__free(g->workers);
  msvc__free(g);
  return rc;
}

static int start_one(msvc_http_workers_t *g, unsigned i) {
  worker_t *wk = &g->workers[i];
  int rc;

  wk->group = g;
  wk->index = i;
  rc = uv_sem_init(&wk->ready, 0);
  if (rc != 0)
    return rc;
  rc = uv_thread_create(&wk->thread, worker_main, wk);
  if (rc != 0) {
    uv_sem_destroy(&wk->ready);
    return rc;
  }
  wk->started = true;
  uv_sem_wait(&wk->ready);
  return wk->rc;
}

int msvc_http_workers_start(unsigned n, const char *host, int port,
                            const msvc_http_server_opts_t *opts,
                            msvc_http_worker_setup_fn setup, void *data,
                            msvc_http_workers_t **out) {
  return msvc_http_workers_start_ex(n, host, port, opts, setup, NULL, data, out);
}

int msvc_http_workers_start_ex(unsigned n, const char *host, int port,
                               const msvc_http_server_opts_t *opts,
                               msvc_http_worker_setup_fn setup,
                               msvc_http_worker_teardown_fn teardown, void *data,
                               msvc_http_workers_t **out) {
  msvc_http_workers_t *g;
  unsigned i;
  int rc = MSVC_OK;

  if (out != NULL)
    *out = NULL;
  if (n == 0 || n > 256 || host == NULL || strlen(host) >= sizeof(g->host) ||
      port < 0 || port > 65535 || out == NULL)
    return MSVC_EINVAL;
  g = msvc__calloc(1, sizeof(*g));
  if (g == NULL)
    return MSVC_ENOMEM;
  g->workers = msvc__calloc(n, sizeof(*g->workers));
  if (g->workers == NULL) {
    msvc__free(g);
    return MSVC_ENOMEM;
  }
  g->n = n;
  strcpy(g->host, host);
  g->port = port;
  if (opts != NULL)
    g->opts = *opts;
  else
    msvc_http_server_opts_init(&g->opts);
  g->opts.reuseport = true;
  /* The workers share the process's descriptors. */
  if (g->opts.max_connections == 0) {
    g->opts.max_connections = msvc__http_auto_max_connections() / n;
    if (g->opts.max_connections < 8)
      g->opts.max_connections = 8;
  }
  g->setup = setup;
  g->teardown = teardown;
  g->data = data;
  for (i = 0; i < n && rc == MSVC_OK; i++)
    rc = start_one(g, i);
  if (rc != MSVC_OK) {
    stop_started(g);
    return rc;
  }
  *out = g;
  return MSVC_OK;
}

int msvc_http_workers_port(const msvc_http_workers_t *w) {
  return w != NULL ? w->port : 0;
}

int msvc__http_workers_stop_rc(msvc_http_workers_t *w, uint32_t timeout_ms) {
  if (w == NULL)
    return 0;
  w->drain_ms = timeout_ms;
  return stop_started(w);
}

void msvc_http_workers_stop(msvc_http_workers_t *w, uint32_t timeout_ms) {
  (void)msvc__http_workers_stop_rc(w, timeout_ms);
}
