/* Clients that hold connections without finishing requests: whole-body
 * deadline, minimum body rate, idle keep-alive connections making room,
 * the connection limit sized from the descriptor limit, and a bounded
 * slow-body attack that must not lock out a health probe. */
#include <poll.h>
#include <sys/resource.h>

#include "http/helpers.h"
#include "http/server.h"

static void h_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);

  (void)data;
  msvc_http_res_send(res, 200, "application/octet-stream", body, len);
}

static void h_health(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void setup(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "POST", "/echo", h_echo, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/health", h_health, NULL, NULL), MSVC_OK);
}

static tsrv_t ts;

static void stop(void) {
  tsrv_stop(&ts);
}

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static bool readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

/* Sends the head of a POST with a body of `total` bytes, then `chunk` bytes
 * every `every_ms` until the server answers or `limit_ms` pass. Returns the
 * time the answer took from the end of the head (0: no answer). */
static uint64_t trickle(tconn_t *c, size_t total, size_t chunk, int every_ms, int limit_ms) {
  char head[256], bytes[256];
  uint64_t t0;
  size_t sent = 0;

  memset(bytes, 'x', sizeof(bytes));
  snprintf(head, sizeof(head),
           "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", total);
  tc_open(c, ts.port);
  tc_sends(c->fd, head);
  t0 = now_ms();
  while (now_ms() - t0 < (uint64_t)limit_ms) {
    if (sent < total) {
      size_t n = total - sent < chunk ? total - sent : chunk;
      tc_send(c->fd, bytes, n);
      sent += n;
    }
    if (readable(c->fd, every_ms))
      return now_ms() - t0 + 1;
  }
  return 0;
}

static void start_deadline(void) {
  msvc_http_server_opts_t o;

  msvc_http_server_opts_init(&o);
  o.body_timeout_ms = 400;  /* silence: never reached by this client */
  o.body_deadline_ms = 600; /* the whole body */
  o.min_body_rate = 0;
  tsrv_start(&ts, &o, setup);
}

TestSuite(http_body_deadline, .init = start_deadline, .fini = stop, .timeout = 20);

Test(http_body_deadline, steady_trickle_is_cut_with_408) {
  tconn_t *c = malloc(sizeof(*c));
  uint64_t took;
  tresp_t r;

  /* One byte every 100 ms: never silent for long, never finished. */
  took = trickle(c, 100, 1, 100, 3000);
  cr_assert_gt(took, 0, "no answer within 3 s");
  cr_expect_geq(took, 550);
  cr_expect_leq(took, 1500);
  cr_assert(tc_read(c, &r, false));
  cr_expect_eq(r.status, 408);
  cr_expect_not_null(strstr(r.body, "\"REQUEST_TIMEOUT\""), "%s", r.body);
  cr_expect_not_null(strstr(r.body, "in time"), "%s", r.body);
  tresp_free(&r);
  cr_expect(tc_closed(c));
  tc_close(c);
  free(c);
}

Test(http_body_deadline, body_sent_in_time_is_served) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;

  cr_assert_gt(trickle(c, 40, 10, 100, 3000), 0);
  cr_assert(tc_read(c, &r, false));
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 40);
  tresp_free(&r);
  tc_close(c);
  free(c);
}

static void start_rate(void) {
  msvc_http_server_opts_t o;

  msvc_http_server_opts_init(&o);
  o.body_deadline_ms = 10000;
  o.min_body_rate = 100; /* bytes per second */
  o.body_rate_grace_ms = 300;
  tsrv_start(&ts, &o, setup);
}

TestSuite(http_body_rate, .init = start_rate, .fini = stop, .timeout = 20);

Test(http_body_rate, below_the_minimum_rate_is_cut_with_408) {
  tconn_t *c = malloc(sizeof(*c));
  uint64_t took;
  tresp_t r;

  /* 10 bytes per second against a minimum of 100. */
  took = trickle(c, 1000, 1, 100, 3000);
  cr_assert_gt(took, 0, "no answer within 3 s");
  cr_expect_geq(took, 250, "the grace period was not given");
  cr_expect_leq(took, 1000);
  cr_assert(tc_read(c, &r, false));
  cr_expect_eq(r.status, 408);
  cr_expect_not_null(strstr(r.body, "too slowly"), "%s", r.body);
  tresp_free(&r);
  cr_expect(tc_closed(c));
  tc_close(c);
  free(c);
}

Test(http_body_rate, above_the_minimum_rate_is_served) {
  tconn_t *c = malloc(sizeof(*c));
  tresp_t r;

  /* 200 bytes per second for a second. */
  cr_assert_gt(trickle(c, 200, 20, 100, 3000), 0);
  cr_assert(tc_read(c, &r, false));
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 200);
  tresp_free(&r);
  tc_close(c);
  free(c);
}

static void start_three(void) {
  msvc_http_server_opts_t o;

  msvc_http_server_opts_init(&o);
  o.max_connections = 3;
  tsrv_start(&ts, &o, setup);
}

TestSuite(http_shed, .init = start_three, .fini = stop, .timeout = 20);

static void get_health(tconn_t *c, int want) {
  tresp_t r;

  tc_sends(c->fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(c, &r, false));
  cr_assert_eq(r.status, want);
  tresp_free(&r);
}

Test(http_shed, longest_idle_connection_makes_room) {
  tconn_t *c[4];
  int i;

  for (i = 0; i < 4; i++)
    c[i] = malloc(sizeof(*c[i]));
  /* Idle since: A, then B, then C; A serves again and is idle the least. */
  for (i = 0; i < 3; i++) {
    tc_open(c[i], ts.port);
    get_health(c[i], 200);
    sleep_ms(20);
  }
  get_health(c[0], 200);
  sleep_ms(20);
  /* A fourth connection is over the limit: B goes, not the newcomer. */
  tc_open(c[3], ts.port);
  get_health(c[3], 200);
  cr_assert(tc_closed(c[1]), "the connection idle the longest was not closed");
  get_health(c[0], 200);
  get_health(c[2], 200);
  for (i = 0; i < 4; i++) {
    tc_close(c[i]);
    free(c[i]);
  }
}

/* Idle keep-alive connections hold neither a spare request, nor a parsed
 * head, nor write buffers: those wait in the server for the next busy one. */
static atomic_int idle_holding; /* connections holding something; -1 unread */

static void count_idle_holding(tsrv_t *t) {
  msvc__queue_t *q;
  int n = 0;

  for (q = t->srv->conns.next; q != &t->srv->conns; q = q->next) {
    msvc__conn_t *c = msvc__container_of(q, msvc__conn_t, node);
    n += c->spare != NULL || c->parser.spare != NULL || c->wbuf[0].cap > 0 ||
         c->wbuf[1].cap > 0;
  }
  atomic_store(&idle_holding, n);
}

static int idle_conns_holding(void) {
  atomic_store(&idle_holding, -1);
  tsrv_call(&ts, count_idle_holding);
  cr_assert(wait_for(&idle_holding, 0, 2000), "the loop did not answer");
  return atomic_load(&idle_holding);
}

Test(http_shed, idle_connections_give_their_buffers_back) {
  tconn_t *c[3];
  int i, round;

  for (i = 0; i < 3; i++) {
    c[i] = malloc(sizeof(*c[i]));
    tc_open(c[i], ts.port);
  }
  for (round = 0; round < 3; round++) {
    for (i = 0; i < 3; i++)
      get_health(c[i], 200);
    sleep_ms(20); /* the last answer is written, the connections idle */
    cr_assert_eq(idle_conns_holding(), 0, "round %d", round);
  }
  for (i = 0; i < 3; i++) {
    tc_close(c[i]);
    free(c[i]);
  }
}

Test(http_shed, busy_connections_are_not_shed) {
  tconn_t *c[4];
  tresp_t r;
  int i;

  for (i = 0; i < 4; i++)
    c[i] = malloc(sizeof(*c[i]));
  /* Three connections in the middle of a request head. */
  for (i = 0; i < 3; i++) {
    tc_open(c[i], ts.port);
    tc_sends(c[i]->fd, "GET /health HTTP/1.1\r\n");
  }
  sleep_ms(50);
  tc_open(c[3], ts.port);
  tc_sends(c[3]->fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
  cr_assert(tc_read(c[3], &r, false));
  cr_assert_eq(r.status, 503);
  tresp_free(&r);
  for (i = 0; i < 3; i++) {
    tc_sends(c[i]->fd, "Host: t\r\n\r\n");
    cr_assert(tc_read(c[i], &r, false));
    cr_assert_eq(r.status, 200);
    tresp_free(&r);
  }
  for (i = 0; i < 4; i++) {
    tc_close(c[i]);
    free(c[i]);
  }
}

/* ---- descriptor limit ---------------------------------------------------- */

static void set_soft(rlim_t soft) {
  struct rlimit rl;

  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  cr_assert_leq(soft, rl.rlim_max);
  rl.rlim_cur = soft;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* Criterion runs each test in a process of its own: the limits changed here
 * do not leak into other tests. */
Test(http_fd_limit, max_connections_sized_below_the_limit) {
  struct rlimit rl;

  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  cr_assert_geq(rl.rlim_max, 1024, "this test needs a hard limit of 1024 or more");
  set_soft(1024);
  cr_expect_eq(msvc__http_auto_max_connections(), 1024 - 32 - 128);
  set_soft(256);
  cr_expect_eq(msvc__http_auto_max_connections(), 256 - 32 - 32);
  set_soft(40);
  cr_expect_eq(msvc__http_auto_max_connections(), 8, "never below 8");
}

Test(http_fd_limit, service_start_raises_soft_to_hard) {
  struct rlimit rl;
  msvc_http_server_t *srv;
  uv_loop_t loop;
  long soft;

  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  cr_assert_geq(rl.rlim_max, 1024);
  set_soft(256);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_server_new(&loop, NULL, &srv), MSVC_OK);
  cr_expect_eq(srv->max_conns, 192);
  soft = msvc__http_raise_fd_limit();
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  cr_expect_eq((rlim_t)soft, rl.rlim_cur);
  if (rl.rlim_max <= (1u << 20))
    cr_expect_eq(rl.rlim_cur, rl.rlim_max);
  /* A default limit follows the descriptor limit in force at listen. */
  cr_assert_eq(msvc_http_server_listen(srv, "127.0.0.1", 0), MSVC_OK);
  cr_expect_eq(srv->max_conns, msvc__http_auto_max_connections());
  cr_expect_gt(srv->max_conns, 192);
  msvc_http_server_close(srv, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http_fd_limit, options_from_0_1_callers_get_new_defaults) {
  msvc_http_server_opts_t o;
  msvc_http_server_t *srv;
  uv_loop_t loop;

  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_http_server_opts_init(&o);
  o.body_deadline_ms = 0; /* as if beyond a 0.1 caller's struct */
  o.size = offsetof(msvc_http_server_opts_t, body_deadline_ms);
  cr_assert_eq(msvc_http_server_new(&loop, &o, &srv), MSVC_OK);
  cr_expect_eq(srv->opts.body_deadline_ms, 30000);
  msvc_http_server_close(srv, NULL, NULL);
  o.size = 8;
  cr_expect_eq(msvc_http_server_new(&loop, &o, &srv), MSVC_EINVAL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- a bounded slow-body attack ---------------------------------------------
 * 300 connections against a limit of 200, each announcing a 1 MB body and
 * sending one byte every 200 ms (never silent long enough for the silence
 * timeout), while a probe asks for /health on a fresh connection every
 * 50 ms for 2.5 s. */

#define ATTACKERS 300

typedef struct probe_stats_s {
  int tries;
  int ok;
  int ok_last_second;
  int64_t first_ok_ms; /* -1: never */
} probe_stats_t;

static int probe_health(void) {
  struct timeval tv = {0, 500000};
  char buf[512];
  int fd = tc_connect(ts.port), st = -1;
  ssize_t n;

  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  tc_sends(fd, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  n = recv(fd, buf, sizeof(buf) - 1, 0);
  if (n > 12) {
    buf[n] = '\0';
    st = atoi(buf + 9);
  }
  close(fd);
  return st;
}

static probe_stats_t slow_body_attack(void) {
  static int fds[ATTACKERS];
  probe_stats_t s = {0, 0, 0, -1};
  uint64_t t0, last_tick = 0;
  int i;

  for (i = 0; i < ATTACKERS; i++) {
    fds[i] = tc_connect(ts.port);
    tc_sends(fds[i], "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\nx");
  }
  t0 = now_ms();
  while (now_ms() - t0 < 2500) {
    uint64_t t = now_ms() - t0;
    int st;

    if (t - last_tick >= 200) {
      for (i = 0; i < ATTACKERS; i++)
        if (fds[i] >= 0 && send(fds[i], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
            errno != EAGAIN) {
          close(fds[i]);
          fds[i] = -1;
        }
      last_tick = t;
    }
    st = probe_health();
    s.tries++;
    if (st == 200) {
      s.ok++;
      if (s.first_ok_ms < 0)
        s.first_ok_ms = (int64_t)(now_ms() - t0);
      if (now_ms() - t0 >= 1500)
        s.ok_last_second++;
    }
    sleep_ms(50);
  }
  for (i = 0; i < ATTACKERS; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return s;
}

static void start_attacked(bool protected_) {
  msvc_http_server_opts_t o;

  msvc__http_raise_fd_limit(); /* the attackers and the server share it */
  msvc_http_server_opts_init(&o);
  o.max_connections = 200;
  if (protected_) {
    o.min_body_rate = 1000;
    o.body_rate_grace_ms = 500;
    o.body_deadline_ms = 3000;
  } else {
    /* What a server without the deadline and the rate did. */
    o.min_body_rate = 0;
    o.body_deadline_ms = 600000;
  }
  tsrv_start(&ts, &o, setup);
}

static void start_protected(void) {
  start_attacked(true);
}

static void start_unprotected(void) {
  start_attacked(false);
}

TestSuite(http_attack, .fini = stop, .timeout = 30);

Test(http_attack, slow_bodies_do_not_lock_out_health, .init = start_protected) {
  probe_stats_t s = slow_body_attack();

  fprintf(stderr,
          "slow-body attack, %d connections, limit 200, min rate 1000 B/s after 500 ms: "
          "/health %d/%d ok, first ok after %lld ms, %d ok in the last second\n",
          ATTACKERS, s.ok, s.tries, (long long)s.first_ok_ms, s.ok_last_second);
  cr_assert_geq(s.first_ok_ms, 0, "/health never answered 200");
  cr_expect_leq(s.first_ok_ms, 1500);
  cr_expect_gt(s.ok_last_second, 0);
}

/* The same attack with the body deadline and the rate check off: the
 * lockout the two are there to prevent. */
Test(http_attack, without_the_checks_health_is_locked_out, .init = start_unprotected) {
  probe_stats_t s = slow_body_attack();

  fprintf(stderr, "same attack, checks off: /health %d/%d ok\n", s.ok, s.tries);
  cr_expect_eq(s.ok, 0);
}

static atomic_uint worker_max[2];

static int capture_max(msvc_http_server_t *srv, unsigned index, void *data) {
  (void)data;
  atomic_store(&worker_max[index], srv->max_conns);
  return MSVC_OK;
}

Test(http_fd_limit, worker_loops_share_the_limit) {
  msvc_http_workers_t *w;

  set_soft(1024);
  cr_assert_eq(msvc_http_workers_start(2, "127.0.0.1", 0, NULL, capture_max, NULL, &w),
               MSVC_OK);
  msvc_http_workers_stop(w, 1000);
  cr_expect_eq(atomic_load(&worker_max[0]), (1024 - 32 - 128) / 2);
  cr_expect_eq(atomic_load(&worker_max[1]), (1024 - 32 - 128) / 2);
}
