/*
 * The rate limit and concurrency limit middlewares over real sockets
 * (127.0.0.1, port 0). The overload test offers a 2 ms single-server
 * handler about twice what it can serve for a short, bounded time and
 * checks the shape of the answers, never their speed.
 */
#include <poll.h>
#include <pthread.h>

#include "service/helpers.h"

#include <msvc/limit.h>

/* ---- rate limit --------------------------------------------------------------- */

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hi", 2);
}

typedef struct rl_setup_s {
  msvc_mw_ratelimit_t *rl;
  msvc_mw_ratelimit_t *rl2;
} rl_setup_t;

static void setup_rl(msvc_http_server_t *srv, void *data) {
  rl_setup_t *s = data;

  cr_assert_eq(msvc_http_server_use(srv, msvc_mw_ratelimit_middleware(s->rl)), MSVC_OK);
  if (s->rl2 != NULL)
    cr_assert_eq(msvc_http_server_use(srv, msvc_mw_ratelimit_middleware(s->rl2)), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/x", on_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/y", on_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/health", on_hello, NULL, NULL), MSVC_OK);
}

static msvc_mw_ratelimit_t *make_rl(msvc_mw_ratelimit_key_t key, const char *header,
                                    const char *route, uint32_t burst) {
  msvc_mw_ratelimit_opts_t o;
  msvc_mw_ratelimit_t *rl;

  msvc_mw_ratelimit_opts_init(&o);
  o.key = key;
  o.header = header;
  o.route = route;
  o.name = "test";
  o.rate.rate = 1;
  o.rate.period_ms = 60000;
  o.rate.burst = burst;
  cr_assert_eq(msvc_mw_ratelimit_new(&o, &rl), MSVC_OK);
  return rl;
}

Test(limit_mw, rate_limit_by_address, .timeout = 30) {
  rl_setup_t s = {make_rl(MSVC_MW_RATELIMIT_BY_ADDRESS, NULL, NULL, 3), NULL};
  srvthread_t t;
  resp_t r;
  char v[64];
  int i;

  st_start(&t, setup_rl, &s);
  for (i = 0; i < 3; i++) {
    cr_assert_eq(cl_get(t.port, "/x", "", &r), 200);
    cr_assert_not_null(resp_header(&r, "RateLimit-Limit", v, sizeof(v)));
    cr_assert_str_eq(v, "3");
    cr_assert_not_null(resp_header(&r, "RateLimit-Remaining", v, sizeof(v)));
    cr_assert_eq(atoi(v), 2 - i);
    resp_free(&r);
  }
  /* Another route, same client: same bucket. */
  cr_assert_eq(cl_get(t.port, "/y", "", &r), 429);
  cr_assert_not_null(strstr(r.body, "\"code\":\"RATE_LIMITED\""), "%s", r.body);
  cr_assert_not_null(resp_header(&r, "Retry-After", v, sizeof(v)));
  cr_assert_eq(atoi(v), 60, "one token per minute, got %s", v);
  cr_assert_not_null(resp_header(&r, "RateLimit-Remaining", v, sizeof(v)));
  cr_assert_str_eq(v, "0");
  cr_assert_not_null(resp_header(&r, "RateLimit-Reset", v, sizeof(v)));
  cr_assert_eq(atoi(v), 180, "full again in three minutes, got %s", v);
  cr_assert_not_null(resp_header(&r, "Content-Type", v, sizeof(v)));
  resp_free(&r);
  /* Probes are never limited. */
  for (i = 0; i < 5; i++) {
    cr_assert_eq(cl_get(t.port, "/health", "", &r), 200);
    cr_assert_null(resp_header(&r, "RateLimit-Limit", v, sizeof(v)));
    resp_free(&r);
  }
  st_stop(&t);
  msvc_mw_ratelimit_free(s.rl);
}

Test(limit_mw, rate_limit_by_header_and_route, .timeout = 30) {
  rl_setup_t s = {make_rl(MSVC_MW_RATELIMIT_BY_HEADER, "X-Api-Key", "/x", 1),
                  make_rl(MSVC_MW_RATELIMIT_BY_ROUTE, NULL, "/y", 2)};
  srvthread_t t;
  resp_t r;

  st_start(&t, setup_rl, &s);
  cr_assert_eq(cl_get(t.port, "/x", "X-Api-Key: a\r\n", &r), 200);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/x", "X-Api-Key: a\r\n", &r), 429);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/x", "X-Api-Key: b\r\n", &r), 200);
  resp_free(&r);
  /* No key: one shared bucket for every request without it. */
  cr_assert_eq(cl_get(t.port, "/x", "", &r), 200);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/x", "", &r), 429);
  resp_free(&r);
  /* /y: two requests in all, whoever sends them. */
  cr_assert_eq(cl_get(t.port, "/y", "X-Api-Key: c\r\n", &r), 200);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/y", "X-Api-Key: d\r\n", &r), 200);
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/y", "", &r), 429);
  resp_free(&r);
  st_stop(&t);
  msvc_mw_ratelimit_free(s.rl);
  msvc_mw_ratelimit_free(s.rl2);
}

Test(limit_mw, rate_limit_bad_options) {
  msvc_mw_ratelimit_opts_t o;
  msvc_mw_ratelimit_t *rl;

  msvc_mw_ratelimit_opts_init(&o);
  o.key = MSVC_MW_RATELIMIT_BY_HEADER;
  cr_assert_eq(msvc_mw_ratelimit_new(&o, &rl), MSVC_EINVAL);
  msvc_mw_ratelimit_opts_init(&o);
  o.rate.burst = 0;
  cr_assert_eq(msvc_mw_ratelimit_new(&o, &rl), MSVC_EINVAL);
  cr_assert_eq(msvc_mw_ratelimit_new(NULL, NULL), MSVC_EINVAL);
  msvc_mw_ratelimit_free(NULL);
}

/* ---- overload ------------------------------------------------------------------- */

#define SERVICE_MS 2
#define CONNS 24
#define OFFER_MS 2500
#define QMAX 4096

/* A single server with a 2 ms service time: requests wait in a FIFO, as
 * behind one database connection. Capacity: 500 requests per second. */
typedef struct fifo_s {
  msvc_mw_concurrency_t *mw;
  uv_timer_t timer;
  uv_async_t quit;
  msvc_http_res_t *q[QMAX];
  size_t head, len;
  bool busy;
} fifo_t;

static void serve_next(fifo_t *f);

static void on_served(uv_timer_t *tm) {
  fifo_t *f = tm->data;
  msvc_http_res_t *res = f->q[f->head];

  f->head = (f->head + 1) % QMAX;
  f->len--;
  f->busy = false;
  msvc_http_res_send(res, 200, "text/plain", "done", 4);
  serve_next(f);
}

static void serve_next(fifo_t *f) {
  if (f->busy || f->len == 0) return;
  f->busy = true;
  uv_timer_start(&f->timer, on_served, SERVICE_MS, 0);
}

static void on_work(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fifo_t *f = data;

  (void)req;
  if (f->len == QMAX) {
    msvc_http_res_error(res, 500, "INTERNAL", "test queue full");
    return;
  }
  f->q[(f->head + f->len) % QMAX] = res;
  f->len++;
  serve_next(f);
}

static void on_probe(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void noop_close(uv_handle_t *h) { (void)h; }

static void on_quit(uv_async_t *a) {
  fifo_t *f = a->data;

  uv_timer_stop(&f->timer);
  while (f->len > 0) {
    msvc_http_res_error(f->q[f->head], 503, "SHUTTING_DOWN", "test over");
    f->head = (f->head + 1) % QMAX;
    f->len--;
  }
  uv_close((uv_handle_t *)&f->timer, noop_close);
  uv_close((uv_handle_t *)&f->quit, noop_close);
}

static void setup_fifo(msvc_http_server_t *srv, void *data) {
  fifo_t *f = data;
  uv_loop_t *loop = msvc_http_server_loop(srv);

  cr_assert_eq(uv_timer_init(loop, &f->timer), 0);
  cr_assert_eq(uv_async_init(loop, &f->quit, on_quit), 0);
  f->timer.data = f;
  f->quit.data = f;
  cr_assert_eq(msvc_http_server_use(srv, msvc_mw_concurrency_middleware(f->mw)), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/work", on_work, f, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/health", on_probe, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/ready", on_probe, NULL, NULL), MSVC_OK);
}

typedef struct tally_s {
  long ok, shed, other, shed_without_retry_after, errors;
} tally_t;

/* One keep-alive request's answer from buf: status and whether it was a
 * proper shed. Returns the bytes consumed, 0 when incomplete. */
static size_t parse_one(const char *buf, size_t len, tally_t *tl) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4), *cl;
  size_t head, body;
  int status;

  if (end == NULL) return 0;
  head = (size_t)(end - buf) + 4;
  cl = memmem(buf, head, "Content-Length: ", 16);
  body = cl != NULL ? (size_t)atol(cl + 16) : 0;
  if (len < head + body) return 0;
  status = atoi(buf + 9);
  if (status == 200) {
    tl->ok++;
  } else if (status == 503 && memmem(buf + head, body, "\"OVERLOADED\"", 12) != NULL) {
    tl->shed++;
    if (memmem(buf, head, "Retry-After: ", 13) == NULL) tl->shed_without_retry_after++;
  } else {
    tl->other++;
  }
  return head + body;
}

static const char WORK_REQ[] = "GET /work HTTP/1.1\r\nHost: t\r\n\r\n";

/* CONNS keep-alive connections, each sending its next request as soon as
 * the previous is answered, for OFFER_MS; then each waits for its last
 * answer (bounded). */
static void offer_load(int port, tally_t *tl) {
  struct pollfd pfd[CONNS];
  char buf[CONNS][8192];
  size_t have[CONNS];
  bool waiting[CONNS];
  uint64_t end = msvc_now_ms() + OFFER_MS, hard = end + 5000;
  int i, open = CONNS;

  for (i = 0; i < CONNS; i++) {
    pfd[i].fd = cl_connect(port);
    pfd[i].events = POLLIN;
    have[i] = 0;
    waiting[i] = send(pfd[i].fd, WORK_REQ, sizeof(WORK_REQ) - 1, MSG_NOSIGNAL) > 0;
  }
  while (open > 0 && msvc_now_ms() < hard) {
    if (poll(pfd, CONNS, 100) < 0) break;
    for (i = 0; i < CONNS; i++) {
      ssize_t n;
      size_t used;

      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      n = recv(pfd[i].fd, buf[i] + have[i], sizeof(buf[i]) - have[i], 0);
      if (n <= 0) {
        tl->errors++;
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open--;
        continue;
      }
      have[i] += (size_t)n;
      while ((used = parse_one(buf[i], have[i], tl)) > 0) {
        memmove(buf[i], buf[i] + used, have[i] - used);
        have[i] -= used;
        waiting[i] = false;
      }
      if (waiting[i]) continue;
      if (msvc_now_ms() < end) {
        waiting[i] = send(pfd[i].fd, WORK_REQ, sizeof(WORK_REQ) - 1, MSG_NOSIGNAL) > 0;
      } else {
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open--;
      }
    }
  }
  for (i = 0; i < CONNS; i++)
    if (pfd[i].fd >= 0) close(pfd[i].fd);
}

typedef struct prober_s {
  int port;
  atomic_int stop;
  long sent, ok;
} prober_t;

static void *probe_loop(void *arg) {
  prober_t *p = arg;
  resp_t r;

  while (!atomic_load(&p->stop)) {
    const char *path = p->sent % 2 == 0 ? "/health" : "/ready";

    p->sent++;
    if (cl_get(p->port, path, "", &r) == 200) p->ok++;
    resp_free(&r);
    sleep_ms(20);
  }
  return NULL;
}

Test(limit_mw, overload_sheds_excess_never_probes, .timeout = 60) {
  static fifo_t f;
  msvc_mw_concurrency_opts_t co;
  msvc_metrics_registry_t *reg;
  prober_t pr;
  pthread_t pt;
  srvthread_t t;
  tally_t warm = {0}, tl = {0};
  resp_t r;
  int i;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  memset(&f, 0, sizeof(f));
  msvc_mw_concurrency_opts_init(&co);
  co.registry = reg;
  co.limit.initial = 20;
  co.limit.min_limit = 1;
  co.limit.max_limit = 50;
  co.limit.tolerance = 1.5;
  co.limit.window_ms = 50;
  co.limit.window_min_samples = 10;
  cr_assert_eq(msvc_mw_concurrency_new(&co, &f.mw), MSVC_OK);
  st_start(&t, setup_fifo, &f);

  /* Unloaded: one request at a time sets the no-load latency. */
  for (i = 0; i < 60; i++) {
    int fd = cl_connect(t.port);
    char b[1024];
    ssize_t n;
    size_t have = 0;

    cr_assert_gt(send(fd, WORK_REQ, sizeof(WORK_REQ) - 1, MSG_NOSIGNAL), 0);
    while (parse_one(b, have, &warm) == 0 &&
           (n = recv(fd, b + have, sizeof(b) - have, 0)) > 0)
      have += (size_t)n;
    close(fd);
  }
  cr_assert_eq(warm.ok, 60, "unloaded requests are all served (%ld)", warm.ok);
  cr_assert_eq(warm.shed, 0);
  cr_assert_gt(msvc_limit_adaptive_baseline_us(msvc_mw_concurrency_limit(f.mw)), 0);

  /* Overloaded, with probes going on beside. */
  memset(&pr, 0, sizeof(pr));
  pr.port = t.port;
  cr_assert_eq(pthread_create(&pt, NULL, probe_loop, &pr), 0);
  offer_load(t.port, &tl);
  atomic_store(&pr.stop, 1);
  pthread_join(pt, NULL);

  cr_assert_gt(tl.ok, 0, "admitted requests are served");
  cr_assert_gt(tl.shed, 0, "the excess is shed");
  cr_assert_eq(tl.shed_without_retry_after, 0, "every shed answer carries Retry-After");
  cr_assert_eq(tl.other, 0, "only 200 and 503 OVERLOADED");
  cr_assert_eq(tl.errors, 0, "no connection was dropped");
  cr_assert_gt(pr.sent, 0);
  cr_assert_eq(pr.ok, pr.sent, "every probe answered 200 (%ld of %ld)", pr.ok, pr.sent);
  cr_assert_lt(msvc_limit_adaptive_limit(msvc_mw_concurrency_limit(f.mw)), 20,
               "the limit came down from its initial value");
  /* The gauges are exposed. */
  cr_assert_eq(cl_get(t.port, "/health", "", &r), 200);
  resp_free(&r);

  uv_async_send(&f.quit);
  st_stop(&t);
  {
    char *text = NULL;
    size_t len = 0;

    cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &text, &len), MSVC_OK);
    cr_assert_not_null(strstr(text, "msvc_http_server_concurrency_limit "));
    cr_assert_not_null(strstr(text, "msvc_http_server_shed_total "));
    msvc_free(text);
  }
  cr_log_info("overload: %ld served, %ld shed, limit %u", tl.ok, tl.shed,
              msvc_limit_adaptive_limit(msvc_mw_concurrency_limit(f.mw)));
  msvc_mw_concurrency_free(f.mw);
  msvc_metrics_registry_free(reg);
}
