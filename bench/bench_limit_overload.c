/*
 * Overload: a server whose only resource serves one request at a time in
 * 2 ms (a FIFO in front of a 2 ms timer: a single database connection, a
 * capacity of about 500 requests per second), offered twice its measured
 * capacity by an open-loop client (requests sent at a fixed rate, whatever
 * the answers), once with the concurrency limit of the service object
 * (adaptive, MSVC_CONCURRENCY_MIN=1 and MSVC_CONCURRENCY_TOLERANCE=1.15, the
 * settings docs/limits.md recommends for such a service) and once without
 * (today's behaviour before the limit). Each server first serves one
 * request at a time for a second, then is overloaded for a second that is
 * not measured (the limit coming down from its idle value; stderr shows
 * it), then for the measured run. The server runs on a thread of its
 * own with its own loop, the client on the main thread. Lines (bench
 * overload), for impl libmsvc_limited and libmsvc_unlimited:
 *   goodput_pct    answers 200 per second / measured capacity x 100
 *   p99_ratio      p99 latency of the admitted (200) requests / unloaded p99
 *   reject_p99_ms  p99 latency of the 503 OVERLOADED answers
 * MSVC_BENCH_QUICK=1: 2 s of overload per implementation, else 10 s.
 * MSVC_BENCH_OVERLOAD_LIMIT=n: the limited server holds a fixed limit of n
 * instead of the adaptive one (a control: what the adaptive limit chooses
 * between).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <msvc/middleware.h>

#include "bench.h"

#define SERVICE_MS 2
#define QMAX 65536
#define CONNS 400
#define MAXSAMPLES 400000

/* ---- the server ------------------------------------------------------------------- */

typedef struct server_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_timer_t timer;
  uv_async_t quit;
  msvc_http_server_t *srv;
  msvc_mw_concurrency_t *mw;
  msvc_http_res_t **q;
  size_t head, len;
  bool busy;
  int port;
} server_t;

static void serve_next(server_t *s);

static void on_served(uv_timer_t *t) {
  server_t *s = t->data;
  msvc_http_res_t *res = s->q[s->head];

  s->head = (s->head + 1) % QMAX;
  s->len--;
  s->busy = false;
  msvc_http_res_send(res, 200, "text/plain", "done", 4);
  serve_next(s);
}

static void serve_next(server_t *s) {
  if (s->busy || s->len == 0) return;
  s->busy = true;
  uv_timer_start(&s->timer, on_served, SERVICE_MS, 0);
}

static void on_cancel(msvc_http_req_t *req, void *data) {
  (void)req;
  (void)data; /* answered when its turn comes; the answer goes nowhere */
}

static void on_work(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  server_t *s = data;

  if (s->len == QMAX) {
    msvc_http_res_error(res, 500, "INTERNAL", "queue full");
    return;
  }
  msvc_http_req_on_cancel(req, on_cancel, s);
  s->q[(s->head + s->len) % QMAX] = res;
  s->len++;
  serve_next(s);
}

static void on_closed_noop(uv_handle_t *h) { (void)h; }

static void on_quit(uv_async_t *a) {
  server_t *s = a->data;

  uv_timer_stop(&s->timer);
  while (s->len > 0) {
    msvc_http_res_error(s->q[s->head], 503, "SHUTTING_DOWN", "over");
    s->head = (s->head + 1) % QMAX;
    s->len--;
  }
  uv_close((uv_handle_t *)&s->timer, on_closed_noop);
  uv_close((uv_handle_t *)&s->quit, on_closed_noop);
  msvc_http_server_close(s->srv, NULL, NULL);
}

static void server_run(void *arg) {
  server_t *s = arg;

  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static uint32_t fixed_limit; /* MSVC_BENCH_OVERLOAD_LIMIT, 0: adaptive */

static void server_start(server_t *s, bool limited) {
  msvc_http_server_opts_t so;

  memset(s, 0, sizeof(*s));
  s->q = calloc(QMAX, sizeof(*s->q));
  if (s->q == NULL || uv_loop_init(&s->loop) != 0) exit(1);
  uv_timer_init(&s->loop, &s->timer);
  uv_async_init(&s->loop, &s->quit, on_quit);
  s->timer.data = s;
  s->quit.data = s;
  msvc_http_server_opts_init(&so);
  so.max_connections = 2 * CONNS + 64; /* the last phase's may linger */
  so.keepalive_timeout_ms = 60000; /* the client leaves some idle for seconds */
  if (msvc_http_server_new(&s->loop, &so, &s->srv) != MSVC_OK) exit(1);
  if (limited) {
    msvc_mw_concurrency_opts_t co;
    msvc_metrics_registry_t *reg;

    msvc_metrics_registry_new(NULL, &reg);
    msvc_mw_concurrency_opts_init(&co);
    co.registry = reg; /* leaked with the process: a bench */
    co.limit.min_limit = 1;
    co.limit.tolerance = 1.15;
    if (fixed_limit > 0) { /* a control: what one fixed limit gives */
      co.limit.fixed = true;
      co.limit.initial = co.limit.min_limit = co.limit.max_limit = fixed_limit;
    }
    if (msvc_mw_concurrency_new(&co, &s->mw) != MSVC_OK) exit(1);
    msvc_http_server_use(s->srv, msvc_mw_concurrency_middleware(s->mw));
  }
  msvc_http_server_route(s->srv, "GET", "/work", on_work, s, NULL);
  if (msvc_http_server_listen(s->srv, "127.0.0.1", 0) != MSVC_OK) exit(1);
  s->port = msvc_http_server_port(s->srv);
  uv_thread_create(&s->thread, server_run, s);
}

static void server_stop(server_t *s) {
  uv_async_send(&s->quit);
  uv_thread_join(&s->thread);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  msvc_mw_concurrency_free(s->mw);
  free(s->q);
}

/* ---- the client -------------------------------------------------------------------- */

static const char REQ[] = "GET /work HTTP/1.1\r\nHost: b\r\n\r\n";

typedef struct conn_s {
  int fd;
  bool busy;
  double t0;
  size_t have;
  char buf[2048];
} conn_t;

typedef struct run_s {
  double *ok_ms, *rej_ms;
  size_t nok, nrej;
  size_t good; /* 200s answered before the end of the offer */
  long other, unsent, errors;
  double seconds;
} run_t;

static int dial(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Status of one complete answer at the start of c->buf, and its length;
 * 0 when incomplete. */
static size_t answer(conn_t *c, int *status) {
  const char *end = memmem(c->buf, c->have, "\r\n\r\n", 4), *cl;
  size_t head, body;

  if (end == NULL) return 0;
  head = (size_t)(end - c->buf) + 4;
  cl = memmem(c->buf, head, "Content-Length: ", 16);
  body = cl != NULL ? (size_t)atol(cl + 16) : 0;
  if (c->have < head + body) return 0;
  *status = atoi(c->buf + 9);
  return head + body;
}

/* Sends `rate` requests per second for `seconds` (open loop: a request due
 * when every connection is busy is counted as unsent), then waits up to
 * 10 s for the answers still due. rate 0: closed loop on `conns`
 * connections instead (each sends again at once). */
static void load(int port, double rate, int conns, double seconds, run_t *r) {
  static conn_t c[CONNS];
  static struct pollfd p[CONNS];
  double start = bench_now_ns(), stop = start + seconds * 1e9, next = start,
         hard = stop + 10e9, now;
  int i, inflight = 0;

  r->nok = r->nrej = r->good = 0;
  r->other = r->unsent = r->errors = 0;
  for (i = 0; i < conns; i++) {
    c[i].fd = dial(port);
    c[i].busy = false;
    c[i].have = 0;
    p[i].fd = c[i].fd;
    p[i].events = POLLIN;
  }
  for (;;) {
    now = bench_now_ns();
    if (now >= hard || (now >= stop && inflight == 0)) break;
    for (i = 0; i < conns && now < stop; i++) {
      if (c[i].busy || c[i].fd < 0) continue;
      if (rate > 0 && now < next) break;
      if (send(c[i].fd, REQ, sizeof(REQ) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(REQ) - 1) {
        r->errors++;
        continue;
      }
      c[i].busy = true;
      c[i].t0 = now;
      inflight++;
      if (rate > 0) next += 1e9 / rate;
    }
    while (rate > 0 && now < stop && next <= now - 1e9 / rate) { /* all busy */
      r->unsent++;
      next += 1e9 / rate;
    }
    {
      /* Wake for the next send, not at the next whole millisecond: an
       * open-loop client whose sends bunch up behind answers offers a
       * burstier load than its rate says. */
      struct timespec ts = {0, 1000000};

      if (rate > 0 && now < stop) {
        double wait = next - bench_now_ns();

        ts.tv_nsec = wait <= 0 ? 0 : wait < 1e6 ? (long)wait : 1000000;
      }
      if (ppoll(p, (nfds_t)conns, &ts, NULL) <= 0) continue;
    }
    now = bench_now_ns();
    for (i = 0; i < conns; i++) {
      ssize_t n;
      size_t used;
      int status;

      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      n = recv(c[i].fd, c[i].buf + c[i].have, sizeof(c[i].buf) - c[i].have, 0);
      if (n <= 0) {
        if (n < 0 && errno == EAGAIN) continue;
        r->errors++;
        if (c[i].busy) inflight--;
        close(c[i].fd);
        c[i].fd = p[i].fd = -1;
        c[i].busy = false;
        continue;
      }
      c[i].have += (size_t)n;
      if ((used = answer(&c[i], &status)) == 0) continue;
      memmove(c[i].buf, c[i].buf + used, c[i].have - used);
      c[i].have -= used;
      if (status == 200 && now <= stop) r->good++;
      if (status == 200 && r->nok < MAXSAMPLES) r->ok_ms[r->nok++] = (now - c[i].t0) / 1e6;
      else if (status == 503 && r->nrej < MAXSAMPLES) r->rej_ms[r->nrej++] = (now - c[i].t0) / 1e6;
      else if (status != 200 && status != 503) r->other++;
      c[i].busy = false;
      inflight--;
    }
  }
  for (i = 0; i < conns; i++)
    if (c[i].fd >= 0) close(c[i].fd);
  r->seconds = seconds;
}

static double p99(double *v, size_t n) {
  bench_stat_t s;

  if (n == 0) return 0;
  s = bench_stats(v, (int)n); /* sorts */
  (void)s;
  return v[(size_t)((double)(n - 1) * 0.99)];
}

static bench_stat_t one(double v) {
  bench_stat_t s = {v, v, v, 1};
  return s;
}

int main(void) {
  double seconds = bench_quick() ? 2 : 10, capacity, base_p99, lat_p99;
  server_t s;
  run_t r;
  int k;

  prctl(PR_SET_TIMERSLACK, 1UL); /* the client's sends on time to the microsecond */
  if (getenv("MSVC_BENCH_OVERLOAD_LIMIT") != NULL)
    fixed_limit = (uint32_t)strtoul(getenv("MSVC_BENCH_OVERLOAD_LIMIT"), NULL, 10);
  r.ok_ms = calloc(MAXSAMPLES, sizeof(double));
  r.rej_ms = calloc(MAXSAMPLES, sizeof(double));
  if (r.ok_ms == NULL || r.rej_ms == NULL) return 1;
  /* Capacity and the unloaded latency, without the limit; the p99 of
   * one second (some 480 samples) moved by a sixth between runs. */
  server_start(&s, false);
  load(s.port, 0, 1, bench_quick() ? 1 : 3, &r);
  base_p99 = p99(r.ok_ms, r.nok);
  load(s.port, 0, 8, 2, &r);
  capacity = (double)r.good / r.seconds;
  server_stop(&s);
  fprintf(stderr, "overload: capacity %.0f req/s, unloaded p99 %.2f ms, offering %.0f req/s\n",
          capacity, base_p99, 2 * capacity);
  for (k = 0; k < 2; k++) {
    const char *impl = k == 0 ? "libmsvc_limited" : "libmsvc_unlimited";

    server_start(&s, k == 0);
    /* A service runs unloaded first; the overload's first second, while
     * the limit comes down from its idle value, is not measured: the
     * figures are the steady state under overload. */
    load(s.port, 0, 1, 1, &r);
    load(s.port, 2 * capacity, CONNS, 1, &r);
    fprintf(stderr, "overload: %s: first second: %zu ok (p99 %.1f ms), %zu shed\n", impl, r.nok,
            p99(r.ok_ms, r.nok), r.nrej);
    load(s.port, 2 * capacity, CONNS, seconds, &r);
    if (k == 0)
      fprintf(stderr, "overload: limit at the end %.2f\n",
              msvc_limit_adaptive_value(msvc_mw_concurrency_limit(s.mw)));
    server_stop(&s);
    lat_p99 = p99(r.ok_ms, r.nok);
    if (r.nok > 0) /* sorted by p99() */
      fprintf(stderr, "overload: %s: admitted latency p50 %.2f p90 %.2f p99 %.2f max %.2f ms\n",
              impl, r.ok_ms[r.nok / 2], r.ok_ms[r.nok * 9 / 10], lat_p99, r.ok_ms[r.nok - 1]);
    fprintf(stderr, "overload: %s: %zu ok, %zu shed, %ld other, %ld unsent, %ld errors\n",
            impl, r.nok, r.nrej, r.other, r.unsent, r.errors);
    bench_emit("overload", impl, "goodput_pct", "%",
               one((double)r.good / r.seconds / capacity * 100.0), NULL, 0);
    bench_emit("overload", impl, "p99_ratio", "x", one(base_p99 > 0 ? lat_p99 / base_p99 : 0),
               NULL, 0);
    bench_emit("overload", impl, "reject_p99_ms", "ms", one(p99(r.rej_ms, r.nrej)), NULL, 0);
  }
  free(r.ok_ms);
  free(r.rej_ms);
  return 0;
}
