/*
 * The default concurrency limit never sheds a healthy service: after a
 * quiet start that sets a low no-load latency, 256 keep-alive connections
 * send a bounded burst of a mixed workload (answers at once and after
 * 1..20 ms timers, so the latency of every window is many times the
 * baseline) that the server takes without trouble. Not one request may be
 * answered 503 OVERLOADED. Counts only, no timing assertions.
 */
#include <poll.h>

#include "service/helpers.h"

#include <msvc/limit.h>

#define CONNS 256
#define PER_CONN 60
#define WARM 100

typedef struct delayed_s {
  uv_timer_t timer;
  msvc_http_res_t *res;
} delayed_t;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void on_timer(uv_timer_t *t) {
  delayed_t *d = t->data;

  msvc_http_res_send(d->res, 200, "text/plain", "late", 4);
  t->data = d;
  uv_close((uv_handle_t *)t, delayed_closed);
}

static void on_fast(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "fast", 4);
}

/* One answer in four at once, the others after 1..20 ms. */
static void on_mixed(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  static unsigned n;
  unsigned i = n++;
  delayed_t *d;

  if (i % 4 == 0) {
    on_fast(req, res, NULL);
    return;
  }
  d = calloc(1, sizeof(*d));
  cr_assert_not_null(d);
  d->res = res;
  cr_assert_eq(uv_timer_init(data, &d->timer), 0);
  d->timer.data = d;
  cr_assert_eq(uv_timer_start(&d->timer, on_timer, 1 + (i * 7) % 20, 0), 0);
}

static void setup(msvc_http_server_t *srv, void *data) {
  cr_assert_eq(msvc_http_server_use(srv, msvc_mw_concurrency_middleware(data)), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/fast", on_fast, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/mixed", on_mixed,
                                         msvc_http_server_loop(srv), NULL), MSVC_OK);
}

typedef struct tally_s {
  long ok, shed, other, errors;
} tally_t;

/* One answer from buf; the bytes consumed, 0 when incomplete. */
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
  if (status == 200)
    tl->ok++;
  else if (status == 503)
    tl->shed++;
  else
    tl->other++;
  return head + body;
}

static const char FAST_REQ[] = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
static const char MIXED_REQ[] = "GET /mixed HTTP/1.1\r\nHost: t\r\n\r\n";

/* n requests one after the other on each of conns keep-alive connections
 * (bounded by a deadline). */
static void run_load(int port, int conns, int n, const char *req, size_t reqlen, tally_t *tl) {
  static struct pollfd pfd[CONNS];
  static char buf[CONNS][4096];
  static size_t have[CONNS];
  static int left[CONNS];
  uint64_t hard = msvc_now_ms() + 30000;
  int i, open = conns;

  for (i = 0; i < conns; i++) {
    pfd[i].fd = cl_connect(port);
    pfd[i].events = POLLIN;
    have[i] = 0;
    left[i] = n - 1;
    cr_assert_gt(send(pfd[i].fd, req, reqlen, MSG_NOSIGNAL), 0);
  }
  while (open > 0 && msvc_now_ms() < hard) {
    if (poll(pfd, (nfds_t)conns, 100) < 0) break;
    for (i = 0; i < conns; i++) {
      ssize_t got;
      size_t used;
      bool answered = false;

      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      got = recv(pfd[i].fd, buf[i] + have[i], sizeof(buf[i]) - have[i], 0);
      if (got <= 0) {
        tl->errors++;
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open--;
        continue;
      }
      have[i] += (size_t)got;
      while ((used = parse_one(buf[i], have[i], tl)) > 0) {
        memmove(buf[i], buf[i] + used, have[i] - used);
        have[i] -= used;
        answered = true;
      }
      if (!answered) continue;
      if (left[i]-- > 0) {
        if (send(pfd[i].fd, req, reqlen, MSG_NOSIGNAL) <= 0) tl->errors++;
      } else {
        close(pfd[i].fd);
        pfd[i].fd = -1;
        open--;
      }
    }
  }
  for (i = 0; i < conns; i++)
    if (pfd[i].fd >= 0) close(pfd[i].fd);
}

Test(limit_default, c256_burst_sheds_nothing, .timeout = 90) {
  msvc_mw_concurrency_opts_t co;
  msvc_mw_concurrency_t *mw;
  msvc_metrics_registry_t *reg;
  srvthread_t t;
  tally_t warm = {0}, burst = {0};

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  /* The options every service uses unless MSVC_CONCURRENCY* says else. */
  msvc_mw_concurrency_opts_init(&co);
  co.registry = reg;
  cr_assert_eq(msvc_mw_concurrency_new(&co, &mw), MSVC_OK);
  st_start(&t, setup, mw);

  /* Quiet windows (at least 100 ms each) set a low no-load latency. */
  for (int i = 0; i < 4; i++) {
    run_load(t.port, 1, WARM, FAST_REQ, sizeof(FAST_REQ) - 1, &warm);
    sleep_ms(110);
  }
  run_load(t.port, 1, WARM, FAST_REQ, sizeof(FAST_REQ) - 1, &warm);
  cr_assert_eq(warm.ok, 5 * WARM, "the quiet start is served (%ld)", warm.ok);
  run_load(t.port, CONNS, PER_CONN, MIXED_REQ, sizeof(MIXED_REQ) - 1, &burst);

  cr_log_info("c%d burst: %ld ok, %ld shed, limit %u, baseline %llu us", CONNS, burst.ok,
              burst.shed, msvc_limit_adaptive_limit(msvc_mw_concurrency_limit(mw)),
              (unsigned long long)msvc_limit_adaptive_baseline_us(msvc_mw_concurrency_limit(mw)));
  cr_assert_eq(burst.shed, 0, "a default limit shed %ld of a healthy burst", burst.shed);
  cr_assert_eq(burst.other, 0);
  cr_assert_eq(burst.errors, 0);
  cr_assert_eq(burst.ok, (long)CONNS * PER_CONN);
  cr_assert_geq(msvc_limit_adaptive_limit(msvc_mw_concurrency_limit(mw)), CONNS,
                "the limit stays above the connections in use");

  st_stop(&t);
  msvc_mw_concurrency_free(mw);
  msvc_metrics_registry_free(reg);
}
