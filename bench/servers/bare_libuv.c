/*
 * bare_libuv: the ceiling of the HTTP stack libmsvc is built on. A plain
 * libuv + llhttp server with no router, no middleware and no limits that
 * answers every request with the same fixed 13-byte response. Requests
 * that arrive in one read (pipelining) are answered with one write.
 *
 *   bare_libuv --port N
 *
 * Benchmark use only (bench/http_vs_nginx.sh): it trusts its client.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <uv.h>

#define RESPONSE                                                                   \
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"      \
  "hello, world!"
#define BATCH_MAX 64 /* responses prepared back to back for one write */

static char batch[BATCH_MAX * (sizeof(RESPONSE) - 1)];
static llhttp_settings_t settings;

typedef struct conn_s {
  uv_tcp_t tcp;
  llhttp_t parser;
  unsigned ready; /* complete requests not yet answered */
  char buf[16384];
} conn_t;

typedef struct wreq_s {
  uv_write_t req;
} wreq_t;

static int on_complete(llhttp_t *p) {
  ((conn_t *)p->data)->ready++;
  return 0;
}

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  conn_t *c = h->data;

  (void)hint;
  *b = uv_buf_init(c->buf, sizeof(c->buf));
}

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* One write for everything the read completed; what a nonblocking write
 * leaves over goes through uv_write (the batch buffer is static). */
static void answer(conn_t *c) {
  while (c->ready > 0) {
    unsigned n = c->ready > BATCH_MAX ? BATCH_MAX : c->ready;
    uv_buf_t b = uv_buf_init(batch, (unsigned)(n * (sizeof(RESPONSE) - 1)));
    int done = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);

    c->ready -= n;
    if (done == (int)b.len)
      continue;
    if (done < 0 && done != UV_EAGAIN) {
      c->ready = 0;
      return;
    }
    if (done > 0) {
      b.base += done;
      b.len -= (size_t)done;
    }
    {
      wreq_t *w = malloc(sizeof(*w));
      if (w == NULL || uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        free(w);
    }
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn_t *c = s->data;

  if (n < 0) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  if (n == 0)
    return;
  if (llhttp_execute(&c->parser, b->base, (size_t)n) != HPE_OK) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  answer(c);
}

static void on_connection(uv_stream_t *server, int status) {
  conn_t *c;

  if (status != 0 || (c = calloc(1, sizeof(*c))) == NULL)
    return;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  int port = 0, i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: bare_libuv [--port N]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  for (i = 0; i < BATCH_MAX; i++)
    memcpy(batch + (size_t)i * (sizeof(RESPONSE) - 1), RESPONSE, sizeof(RESPONSE) - 1);
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_complete;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&server, 1024, on_connection) != 0) {
    fprintf(stderr, "bare_libuv: cannot listen on port %d\n", port);
    return 1;
  }
  printf("listening on http://127.0.0.1:%d\n", port);
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
