/*
 * Test scaffolding for the HTTP server: the server runs on a private loop in
 * a thread of its own, the test talks to it over real loopback sockets with
 * plain blocking calls (each with a receive timeout so a bug fails instead
 * of hanging).
 */
#ifndef TEST_HTTP_HELPERS_H
#define TEST_HTTP_HELPERS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msvc/http.h>

typedef struct tsrv_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wake;
  msvc_http_server_t *srv;
  int port;
  void (*on_wake)(struct tsrv_s *t); /* runs on the loop thread */
  atomic_int closed;
} tsrv_t;

static void tsrv__on_wake(uv_async_t *a) {
  tsrv_t *t = a->data;
  void (*fn)(tsrv_t *) = t->on_wake;

  t->on_wake = NULL;
  if (fn != NULL)
    fn(t);
}

static void tsrv__closed(void *data) {
  tsrv_t *t = data;
  atomic_store(&t->closed, 1);
}

static void tsrv__noop_close(uv_handle_t *h) {
  (void)h;
}

static void tsrv__stop(tsrv_t *t) {
  msvc_http_server_close(t->srv, tsrv__closed, t);
  uv_close((uv_handle_t *)&t->wake, tsrv__noop_close);
}

static void tsrv__run(void *arg) {
  tsrv_t *t = arg;
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

/* Creates the server (setup adds routes on this thread, before the loop
 * runs), listens on 127.0.0.1:0 and starts the loop thread. */
static inline void tsrv_start(tsrv_t *t, const msvc_http_server_opts_t *opts,
                              void (*setup)(msvc_http_server_t *srv)) {
  memset(t, 0, sizeof(*t));
  cr_assert_eq(uv_loop_init(&t->loop), 0);
  cr_assert_eq(uv_async_init(&t->loop, &t->wake, tsrv__on_wake), 0);
  t->wake.data = t;
  cr_assert_eq(msvc_http_server_new(&t->loop, opts, &t->srv), MSVC_OK);
  if (setup != NULL)
    setup(t->srv);
  cr_assert_eq(msvc_http_server_listen(t->srv, "127.0.0.1", 0), MSVC_OK);
  t->port = msvc_http_server_port(t->srv);
  cr_assert_gt(t->port, 0);
  cr_assert_eq(uv_thread_create(&t->thread, tsrv__run, t), 0);
}

/* Runs fn on the loop thread (one at a time). */
static inline void tsrv_call(tsrv_t *t, void (*fn)(tsrv_t *t)) {
  t->on_wake = fn;
  uv_async_send(&t->wake);
}

static inline void tsrv_stop(tsrv_t *t) {
  tsrv_call(t, tsrv__stop);
  cr_assert_eq(uv_thread_join(&t->thread), 0);
  cr_assert_eq(atomic_load(&t->closed), 1, "close callback did not run");
  cr_assert_eq(uv_loop_close(&t->loop), 0, "a handle leaked");
}

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits up to ms for *flag to become at least want. */
static inline bool wait_for(atomic_int *flag, int want, int ms) {
  int i;
  for (i = 0; i < ms; i++) {
    if (atomic_load(flag) >= want)
      return true;
    sleep_ms(1);
  }
  return atomic_load(flag) >= want;
}

static inline int tc_connect(int port) {
  struct sockaddr_in a;
  struct timeval tv = {5, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

  cr_assert_geq(fd, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
               strerror(errno));
  return fd;
}

static inline void tc_send(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* the server may close early on purpose */
    data += n;
    len -= (size_t)n;
  }
}

static inline void tc_sends(int fd, const char *s) {
  tc_send(fd, s, strlen(s));
}

typedef struct tresp_s {
  int status;
  char head[8192];
  char *body;
  size_t body_len;
} tresp_t;

static inline void tresp_free(tresp_t *r) {
  free(r->body);
  r->body = NULL;
}

/* Buffered reader so that pipelined responses can be read one by one. */
typedef struct tconn_s {
  int fd;
  char buf[1 << 16];
  size_t len;
} tconn_t;

static inline bool tc_fill(tconn_t *c) {
  ssize_t n;
  if (c->len == sizeof(c->buf))
    return false;
  do
    n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return false;
  c->len += (size_t)n;
  return true;
}

static inline void tc_consume(tconn_t *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static inline const char *tresp_header(const tresp_t *r, const char *name,
                                       char *out, size_t cap) {
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

/* Reads one response (Content-Length, chunked or close-delimited). Returns
 * false when the connection ended before a full head arrived. */
static inline bool tc_read(tconn_t *c, tresp_t *r, bool head_request) {
  char *end, v[64];
  size_t hlen;

  memset(r, 0, sizeof(*r));
  while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
    if (!tc_fill(c))
      return false;
  hlen = (size_t)(end - c->buf) + 4;
  cr_assert_lt(hlen, sizeof(r->head));
  memcpy(r->head, c->buf, hlen);
  r->head[hlen] = '\0';
  tc_consume(c, hlen);
  r->status = atoi(r->head + 9);
  if (r->status == 100)
    return tc_read(c, r, head_request);
  if (head_request || r->status == 204 || r->status == 304) {
    r->body = calloc(1, 1);
    return true;
  }
  if (tresp_header(r, "Content-Length", v, sizeof(v)) != NULL) {
    size_t n = strtoul(v, NULL, 10);
    while (c->len < n)
      cr_assert(tc_fill(c), "body cut short");
    r->body = malloc(n + 1);
    memcpy(r->body, c->buf, n);
    r->body[n] = '\0';
    r->body_len = n;
    tc_consume(c, n);
  } else if (tresp_header(r, "Transfer-Encoding", v, sizeof(v)) != NULL) {
    r->body = calloc(1, 1);
    for (;;) {
      char *le;
      size_t n;
      while ((le = memmem(c->buf, c->len, "\r\n", 2)) == NULL)
        cr_assert(tc_fill(c));
      n = strtoul(c->buf, NULL, 16);
      tc_consume(c, (size_t)(le - c->buf) + 2);
      while (c->len < n + 2)
        cr_assert(tc_fill(c));
      r->body = realloc(r->body, r->body_len + n + 1);
      memcpy(r->body + r->body_len, c->buf, n);
      r->body_len += n;
      r->body[r->body_len] = '\0';
      tc_consume(c, n + 2);
      if (n == 0)
        break;
    }
  } else {
    while (tc_fill(c))
      ;
    r->body = malloc(c->len + 1);
    memcpy(r->body, c->buf, c->len);
    r->body[c->len] = '\0';
    r->body_len = c->len;
    c->len = 0;
  }
  return true;
}

/* True when the server closed the connection (EOF or reset) within 5 s. */
static inline bool tc_closed(tconn_t *c) {
  char b[256];
  ssize_t n;
  for (;;) {
    n = recv(c->fd, b, sizeof(b), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
    if (n < 0)
      return false;
  }
}

static inline void tc_open(tconn_t *c, int port) {
  c->fd = tc_connect(port);
  c->len = 0;
}

static inline void tc_close(tconn_t *c) {
  close(c->fd);
  c->fd = -1;
}

/* One request on a fresh connection; returns the status, body in r. */
static inline int tc_exchange(int port, const char *raw, tresp_t *r) {
  tconn_t *c = malloc(sizeof(*c));
  bool ok;

  tc_open(c, port);
  tc_sends(c->fd, raw);
  ok = tc_read(c, r, strncmp(raw, "HEAD ", 5) == 0);
  tc_close(c);
  free(c);
  return ok ? r->status : -1;
}

#endif /* TEST_HTTP_HELPERS_H */
