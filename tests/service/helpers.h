/*
 * Test scaffolding for the middlewares: a server on a private loop in a
 * thread of its own, and a blocking loopback client with receive timeouts so
 * that a bug fails a test instead of hanging it.
 */
#ifndef TEST_SERVICE_HELPERS_H
#define TEST_SERVICE_HELPERS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msvc/http.h>
#include <msvc/middleware.h>

typedef struct srvthread_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t stop;
  msvc_http_server_t *srv;
  int port;
  atomic_int closed;
} srvthread_t;

static void st__closed(void *data) {
  atomic_store(&((srvthread_t *)data)->closed, 1);
}

static void st__noop(uv_handle_t *h) {
  (void)h;
}

static void st__on_stop(uv_async_t *a) {
  srvthread_t *t = a->data;

  msvc_http_server_close(t->srv, st__closed, t);
  uv_close((uv_handle_t *)&t->stop, st__noop);
}

static void st__run(void *arg) {
  srvthread_t *t = arg;
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

/* setup installs middleware and routes on the calling thread, before the
 * loop thread starts. */
static inline void st_start(srvthread_t *t, void (*setup)(msvc_http_server_t *srv, void *data),
                            void *data) {
  memset(t, 0, sizeof(*t));
  cr_assert_eq(uv_loop_init(&t->loop), 0);
  cr_assert_eq(uv_async_init(&t->loop, &t->stop, st__on_stop), 0);
  t->stop.data = t;
  cr_assert_eq(msvc_http_server_new(&t->loop, NULL, &t->srv), MSVC_OK);
  setup(t->srv, data);
  cr_assert_eq(msvc_http_server_listen(t->srv, "127.0.0.1", 0), MSVC_OK);
  t->port = msvc_http_server_port(t->srv);
  cr_assert_gt(t->port, 0);
  cr_assert_eq(uv_thread_create(&t->thread, st__run, t), 0);
}

/* Closes the server, joins the thread and checks that nothing leaked. */
static inline void st_stop(srvthread_t *t) {
  uv_async_send(&t->stop);
  cr_assert_eq(uv_thread_join(&t->thread), 0);
  cr_assert_eq(atomic_load(&t->closed), 1, "close callback did not run");
  cr_assert_eq(uv_loop_close(&t->loop), 0, "a handle leaked");
}

static inline int cl_connect(int port) {
  struct sockaddr_in a;
  struct timeval tv = {5, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  cr_assert_geq(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
               strerror(errno));
  return fd;
}

typedef struct resp_s {
  int status;
  char *head; /* NUL-terminated, headers included */
  char *body; /* NUL-terminated */
  size_t body_len;
} resp_t;

static inline void resp_free(resp_t *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

/* A header's value from a response head, copied into out. */
static inline const char *resp_header(const resp_t *r, const char *name, char *out,
                                      size_t cap) {
  const char *p = r->head;
  size_t n = strlen(name);

  while ((p = strstr(p, "\r\n")) != NULL) {
    p += 2;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1, *e;
      while (*v == ' ')
        v++;
      e = strstr(v, "\r\n");
      snprintf(out, cap, "%.*s", (int)(e - v), v);
      return out;
    }
  }
  return NULL;
}

/* Sends raw on a new connection with "Connection: close" semantics expected
 * from the caller, reads until EOF and splits the answer. Returns the
 * status, or -1 when no complete head arrived. */
static inline int cl_request(int port, const char *raw, resp_t *r) {
  int fd = cl_connect(port);
  size_t len = 0, cap = 1 << 16, off = 0, rawlen = strlen(raw);
  char *buf = malloc(cap), *end;
  ssize_t n;

  memset(r, 0, sizeof(*r));
  while (off < rawlen) {
    n = send(fd, raw + off, rawlen - off, MSG_NOSIGNAL);
    cr_assert_gt(n, 0, "send: %s", strerror(errno));
    off += (size_t)n;
  }
  for (;;) {
    if (len + 1 >= cap)
      buf = realloc(buf, cap *= 2);
    n = recv(fd, buf + len, cap - len - 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  end = strstr(buf, "\r\n\r\n");
  if (end == NULL) {
    free(buf);
    return -1;
  }
  r->head = strndup(buf, (size_t)(end - buf) + 2);
  r->body_len = len - (size_t)(end + 4 - buf);
  r->body = malloc(r->body_len + 1);
  memcpy(r->body, end + 4, r->body_len + 1);
  r->status = atoi(buf + 9);
  free(buf);
  return r->status;
}

/* GET path with extra header lines (each ending in CRLF, or ""). */
static inline int cl_get(int port, const char *path, const char *headers, resp_t *r) {
  char raw[4096];

  snprintf(raw, sizeof(raw),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", path,
           headers);
  return cl_request(port, raw, r);
}

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#endif /* TEST_SERVICE_HELPERS_H */
