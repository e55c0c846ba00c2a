/*
 * hello: the smallest libmsvc service.
 *
 *   GET /hello        -> "hello, world!"
 *   GET /hello/:name  -> {"message":"hello, <name>!"}
 *
 * Listens on MSVC_HOST (default 127.0.0.1) and MSVC_PORT or --port (default
 * 0: any free port), with MSVC_WORKERS loops (default 1). Prints the address
 * it listens on, and drains gracefully on SIGINT or SIGTERM.
 */
/* uv.h needs POSIX declarations that strict C11 hides. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msvc/http.h>

#define DRAIN_MS 5000

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

static void on_hello_name(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char msg[512];
  cJSON *doc = cJSON_CreateObject();

  (void)data;
  snprintf(msg, sizeof(msg), "hello, %s!", msvc_http_req_param(req, "name"));
  if (doc == NULL || cJSON_AddStringToObject(doc, "message", msg) == NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "out of memory");
  } else {
    msvc_http_res_json(res, 200, doc);
  }
  cJSON_Delete(doc);
}

static int add_routes(msvc_http_server_t *srv, unsigned index, void *data) {
  int rc;

  (void)index;
  (void)data;
  rc = msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL);
  if (rc == MSVC_OK)
    rc = msvc_http_server_route(srv, "GET", "/hello/:name", on_hello_name, NULL, NULL);
  return rc;
}

/* Parses a whole decimal number in [lo, hi]; false otherwise. */
static int parse_num(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;

  if (s == NULL || *s == '\0')
    return 0;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return 0;
  *out = v;
  return 1;
}

typedef struct app_s {
  uv_loop_t loop;
  uv_signal_t sigint;
  uv_signal_t sigterm;
  msvc_http_server_t *srv;     /* one worker: served on the main loop */
  msvc_http_workers_t *workers; /* several: their own threads */
} app_t;

static void on_signal_closed(uv_handle_t *h) {
  (void)h;
}

static void on_drained(void *data, bool timedout) {
  app_t *app = data;

  if (timedout)
    fprintf(stderr, "hello: drain deadline reached, connections cut\n");
  msvc_http_server_close(app->srv, NULL, NULL);
  app->srv = NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
  app_t *app = s->data;

  (void)signum;
  uv_close((uv_handle_t *)&app->sigint, on_signal_closed);
  uv_close((uv_handle_t *)&app->sigterm, on_signal_closed);
  if (app->workers != NULL) {
    msvc_http_workers_stop(app->workers, DRAIN_MS);
    app->workers = NULL;
  } else if (app->srv != NULL &&
             msvc_http_server_drain(app->srv, DRAIN_MS, on_drained, app) != MSVC_OK) {
    on_drained(app, false);
  }
}

static int config(int argc, char **argv, const char **host, long *port, long *workers) {
  const char *env;
  int i;

  *host = getenv("MSVC_HOST") != NULL ? getenv("MSVC_HOST") : "127.0.0.1";
  *port = 0;
  *workers = 1;
  env = getenv("MSVC_PORT");
  if (env != NULL && !parse_num(env, 0, 65535, port)) {
    fprintf(stderr, "hello: MSVC_PORT must be a port number 0-65535, not \"%s\"\n", env);
    return 2;
  }
  env = getenv("MSVC_WORKERS");
  if (env != NULL && !parse_num(env, 1, 256, workers)) {
    fprintf(stderr, "hello: MSVC_WORKERS must be a number 1-256, not \"%s\"\n", env);
    return 2;
  }
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      if (!parse_num(argv[++i], 0, 65535, port)) {
        fprintf(stderr, "hello: --port must be a port number 0-65535\n");
        return 2;
      }
    } else {
      fprintf(stderr, "usage: hello [--port N]\n");
      return 2;
    }
  }
  return 0;
}

static int start(app_t *app, const char *host, long port, long workers) {
  int rc;

  if (workers > 1) {
    rc = msvc_http_workers_start((unsigned)workers, host, (int)port, NULL, add_routes,
                                 NULL, &app->workers);
    if (rc == MSVC_OK)
      printf("listening on http://%s:%d (%ld workers)\n", host,
             msvc_http_workers_port(app->workers), workers);
    return rc;
  }
  rc = msvc_http_server_new(&app->loop, NULL, &app->srv);
  if (rc == MSVC_OK)
    rc = add_routes(app->srv, 0, NULL);
  if (rc == MSVC_OK)
    rc = msvc_http_server_listen(app->srv, host, (int)port);
  if (rc == MSVC_OK)
    printf("listening on http://%s:%d\n", host, msvc_http_server_port(app->srv));
  return rc;
}

int main(int argc, char **argv) {
  app_t app;
  const char *host;
  long port, workers;
  int rc;

  memset(&app, 0, sizeof(app));
  rc = config(argc, argv, &host, &port, &workers);
  if (rc != 0)
    return rc;
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&app.loop) != 0)
    return 1;
  uv_signal_init(&app.loop, &app.sigint);
  uv_signal_init(&app.loop, &app.sigterm);
  app.sigint.data = &app;
  app.sigterm.data = &app;
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  rc = start(&app, host, port, workers);
  if (rc != MSVC_OK) {
    fprintf(stderr, "hello: cannot listen on %s:%ld: %s\n", host, port, msvc_strerror(rc));
    msvc_http_server_close(app.srv, NULL, NULL);
    uv_close((uv_handle_t *)&app.sigint, on_signal_closed);
    uv_close((uv_handle_t *)&app.sigterm, on_signal_closed);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    return 1;
  }
  fflush(stdout);
  uv_run(&app.loop, UV_RUN_DEFAULT);
  return uv_loop_close(&app.loop) == 0 ? 0 : 1;
}
