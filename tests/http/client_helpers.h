/*
 * Test scaffolding for the HTTP client: a raw server that misbehaves on
 * purpose, and a client fixture, all on one private loop in the test thread.
 */
#ifndef TEST_HTTP_CLIENT_HELPERS_H
#define TEST_HTTP_CLIENT_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <msvc/http.h>
#include <msvc/http_client.h>

/* ---- a scripted raw server ------------------------------------------------ */

enum {
  RAW_REPLY,     /* answers each request head with reply */
  RAW_SILENT,    /* reads and never answers */
  RAW_RESET,     /* resets the connection on the first request */
  RAW_TRICKLE,   /* sends reply one byte per tick */
  RAW_STALE,     /* answers the first request of a connection, closes on the second */
  RAW_STREAM,    /* a chunked response that never ends */
  RAW_SEQUENCE   /* answers the n-th request with replies[n] */
};

typedef struct raw_s raw_t;

typedef struct rconn_s {
  uv_tcp_t tcp;
  uv_timer_t tick;
  raw_t *raw;
  size_t sent;     /* trickle / stream progress */
  int requests;    /* request heads seen */
  char tail[4];    /* last bytes, to find "\r\n\r\n" across reads */
  char line[128];  /* request line being read */
  size_t line_len;
  bool past_line;
  int handles;
  bool closing;
} rconn_t;

struct raw_s {
  uv_tcp_t listener;
  int mode;
  const char *reply;
  const char *replies[8];
  bool close_after; /* close the connection after each reply */
  int port;
  int accepted;
  int requests;
  int chunks_sent;
  int open;
  char last_line[128]; /* request line of the last request */
  rconn_t *last;       /* the connection accepted last, while open */
};

/* Both handles report here; libuv gives no order between their callbacks. */
static inline void rconn_freed(uv_handle_t *h) {
  rconn_t *rc = h->data;

  if (--rc->handles == 0) {
    rc->raw->open--;
    if (rc->raw->last == rc)
      rc->raw->last = NULL;
    free(rc);
  }
}

static inline void rconn_close(rconn_t *rc) {
  if (rc->closing)
    return;
  rc->closing = true;
  uv_close((uv_handle_t *)&rc->tick, rconn_freed);
  uv_close((uv_handle_t *)&rc->tcp, rconn_freed);
}

static inline void raw_write(rconn_t *rc, const char *s, size_t n) {
  uv_buf_t b = uv_buf_init((char *)s, (unsigned)n);
  /* Replies are short: the socket always takes them at once here. */
  cr_assert_eq(uv_try_write((uv_stream_t *)&rc->tcp, &b, 1), (int)n);
}

static inline void on_tick(uv_timer_t *t) {
  rconn_t *rc = t->data;
  raw_t *raw = rc->raw;
  char chunk[64];
  int n;

  if (raw->mode == RAW_TRICKLE) {
    raw_write(rc, raw->reply + rc->sent, 1);
    if (raw->reply[++rc->sent] == '\0')
      uv_timer_stop(t);
    return;
  }
  n = snprintf(chunk, sizeof(chunk), "%x\r\n{\"n\":%d}\n\r\n",
               (unsigned)snprintf(NULL, 0, "{\"n\":%d}\n", raw->chunks_sent),
               raw->chunks_sent);
  raw->chunks_sent++;
  {
    uv_buf_t b = uv_buf_init(chunk, (unsigned)n);
    if (uv_try_write((uv_stream_t *)&rc->tcp, &b, 1) != n)
      rconn_close(rc);
  }
}

static inline void on_request(rconn_t *rc) {
  raw_t *raw = rc->raw;
  const char *r;

  rc->requests++;
  raw->requests++;
  switch (raw->mode) {
  case RAW_SILENT:
    return;
  case RAW_RESET:
    rc->closing = true;
    uv_close((uv_handle_t *)&rc->tick, rconn_freed);
    uv_tcp_close_reset(&rc->tcp, rconn_freed);
    return;
  case RAW_TRICKLE:
    uv_timer_start(&rc->tick, on_tick, 1, 1);
    return;
  case RAW_STREAM:
    r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    raw_write(rc, r, strlen(r));
    uv_timer_start(&rc->tick, on_tick, 1, 2);
    return;
  case RAW_STALE:
    if (rc->requests > 1) {
      rconn_close(rc);
      return;
    }
    break;
  default:
    break;
  }
  r = raw->mode == RAW_SEQUENCE ? raw->replies[(raw->requests - 1) % 8] : raw->reply;
  raw_write(rc, r, strlen(r));
  if (raw->close_after)
    rconn_close(rc);
}

static inline void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  static char buf[65536];
  (void)h;
  (void)hint;
  *b = uv_buf_init(buf, sizeof(buf));
}

/* Counts request heads by their blank line; test bodies never contain one. */
static inline void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  rconn_t *rc = s->data;
  ssize_t i;

  if (n < 0) {
    rconn_close(rc);
    return;
  }
  for (i = 0; i < n && !rc->closing; i++) {
    memmove(rc->tail, rc->tail + 1, 3);
    rc->tail[3] = b->base[i];
    if (!rc->past_line && b->base[i] == '\r') {
      rc->past_line = true;
      memcpy(rc->raw->last_line, rc->line, rc->line_len);
      rc->raw->last_line[rc->line_len] = '\0';
    } else if (!rc->past_line && rc->line_len < sizeof(rc->line) - 1) {
      rc->line[rc->line_len++] = b->base[i];
    }
    if (memcmp(rc->tail, "\r\n\r\n", 4) == 0) {
      rc->past_line = false;
      rc->line_len = 0;
      on_request(rc);
    }
  }
}

static inline void raw_accept(uv_stream_t *l, int status) {
  raw_t *raw = l->data;
  rconn_t *rc = calloc(1, sizeof(*rc));

  cr_assert_eq(status, 0);
  cr_assert_not_null(rc);
  rc->raw = raw;
  rc->handles = 2;
  uv_tcp_init(l->loop, &rc->tcp);
  uv_timer_init(l->loop, &rc->tick);
  rc->tcp.data = rc;
  rc->tick.data = rc;
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&rc->tcp), 0);
  raw->accepted++;
  raw->open++;
  raw->last = rc;
  uv_read_start((uv_stream_t *)&rc->tcp, raw_alloc, raw_read);
}

static inline void raw_start(uv_loop_t *loop, raw_t *raw, int mode, const char *reply) {
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int len = sizeof(ss);

  memset(raw, 0, sizeof(*raw));
  raw->mode = mode;
  raw->reply = reply;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_init(loop, &raw->listener), 0);
  raw->listener.data = raw;
  cr_assert_eq(uv_tcp_bind(&raw->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&raw->listener, 64, raw_accept), 0);
  uv_tcp_getsockname(&raw->listener, (struct sockaddr *)&ss, &len);
  raw->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Resets the last accepted connection now: the socket is closed before
 * this returns, so the peer's next write on it fails at once. */
static inline void raw_reset_last(raw_t *raw) {
  rconn_t *rc = raw->last;

  cr_assert_not_null(rc);
  cr_assert_not(rc->closing);
  rc->closing = true;
  uv_close((uv_handle_t *)&rc->tick, rconn_freed);
  uv_tcp_close_reset(&rc->tcp, rconn_freed);
}

static inline void raw_stop(raw_t *raw) {
  uv_close((uv_handle_t *)&raw->listener, NULL);
}

/* ---- the client side ------------------------------------------------------ */

typedef struct result_s {
  int done;
  int err;
  int status;
  char body[256];
  size_t body_len;
  char header[64];
  int chunks;
  bool in_request; /* set while msvc_http_client_request runs */
  msvc_http_call_t *call;
  int cancel_after; /* streaming: cancel after this many chunks */
  bool sent;        /* msvc_http_call_sent() in on_done */
} result_t;

static inline void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  result_t *r = data;
  const char *v;

  cr_assert_not(r->in_request, "callback ran inside the request call");
  r->done++;
  r->err = err;
  r->sent = msvc_http_call_sent(call);
  if (res != NULL) {
    const char *b = msvc_http_response_body(res, &r->body_len);
    r->status = msvc_http_response_status(res);
    snprintf(r->body, sizeof(r->body), "%s", b);
    for (size_t i = 0; i < msvc_http_response_header_count(res); i++) {
      const char *name = NULL, *value = NULL;
      cr_assert_eq(msvc_http_response_header_at(res, i, &name, &value), MSVC_OK);
      cr_assert(name != NULL && value != NULL);
    }
    cr_assert_eq(msvc_http_response_header_at(res, msvc_http_response_header_count(res),
                                              NULL, NULL),
                 MSVC_ERANGE);
    v = msvc_http_response_header(res, "x-test");
    snprintf(r->header, sizeof(r->header), "%s", v != NULL ? v : "");
  }
}

static inline void on_chunk(msvc_http_call_t *call, const msvc_http_response_t *res,
                     const char *buf, size_t len, void *data) {
  result_t *r = data;

  cr_assert_eq(msvc_http_response_status(res), 200);
  cr_assert_gt(len, 0);
  cr_assert_eq(buf[0], '{');
  r->chunks++;
  if (r->cancel_after > 0 && r->chunks == r->cancel_after)
    msvc_http_call_cancel(call);
}

typedef struct attempts_s {
  int n;
  int failures;
  int last_status;
  int last_err;
  bool last_reused;
} attempts_t;

static inline void on_attempt(void *data, const msvc_http_attempt_t *a) {
  attempts_t *at = data;

  at->n++;
  if (a->err != 0)
    at->failures++;
  at->last_err = a->err;
  at->last_status = a->status;
  at->last_reused = a->reused;
  cr_assert_not_null(a->endpoint);
  cr_assert_eq(a->attempt >= 1, true);
}

static int closed_count;
static inline void on_client_closed(void *data) {
  (void)data;
  closed_count++;
}

typedef struct fixture_s {
  uv_loop_t loop;
  msvc_http_client_t *client;
  attempts_t at;
} fixture_t;

static inline void fx_init(fixture_t *fx, msvc_http_client_opts_t *o) {
  msvc_http_client_opts_t def;

  memset(fx, 0, sizeof(*fx));
  cr_assert_eq(uv_loop_init(&fx->loop), 0);
  if (o == NULL) {
    msvc_http_client_opts_init(&def);
    o = &def;
  }
  o->on_attempt = on_attempt;
  o->attempt_data = &fx->at;
  cr_assert_eq(msvc_http_client_new(&fx->loop, o, &fx->client), MSVC_OK);
}

static inline void fx_run_until(fixture_t *fx, const int *flag, int target) {
  while (*flag < target)
    cr_assert(uv_run(&fx->loop, UV_RUN_ONCE) != 0 || *flag >= target, "loop ran dry");
}

static inline void fx_close(fixture_t *fx) {
  closed_count = 0;
  msvc_http_client_close(fx->client, on_client_closed, NULL);
  cr_assert_eq(closed_count, 0, "close callback ran synchronously");
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  cr_assert_eq(closed_count, 1);
  cr_assert_eq(uv_loop_close(&fx->loop), 0, "a handle leaked");
}

static inline int get(fixture_t *fx, int port, const char *method, const char *target,
               result_t *r, msvc_http_timeouts_t *to, msvc_retry_t *retry) {
  msvc_http_request_t req;
  int rc;

  msvc_http_request_init(&req);
  req.method = method;
  req.host = "127.0.0.1";
  req.port = port;
  req.target = target;
  req.on_done = on_done;
  req.data = r;
  req.retry = retry;
  if (to != NULL)
    req.timeouts = *to;
  r->in_request = true;
  rc = msvc_http_client_request(fx->client, &req, &r->call);
  r->in_request = false;
  return rc;
}

/* Runs one request against a raw server and returns its result. */
static inline result_t raw_once(int mode, const char *reply, const char *method,
                         msvc_http_timeouts_t *to) {
  fixture_t fx;
  raw_t raw;
  result_t r;

  memset(&r, 0, sizeof(r));
  fx_init(&fx, NULL);
  raw_start(&fx.loop, &raw, mode, reply);
  raw.close_after = reply != NULL && strstr(reply, "Connection: close") != NULL;
  cr_assert_eq(get(&fx, raw.port, method, "/x", &r, to, NULL), MSVC_OK);
  fx_run_until(&fx, &r.done, 1);
  raw_stop(&raw);
  fx_close(&fx);
  return r;
}


#endif /* TEST_HTTP_CLIENT_HELPERS_H */
