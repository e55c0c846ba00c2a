/*
 * TLS handshakes on a worker pool (msvc_http_server_set_work()): the steps
 * run on a pool thread while the loop serves the connections already open,
 * a step queued past the handshake's deadline ends it, a connection closed
 * while its step waits releases everything, and a pool that stops taking
 * jobs hands the steps back to the loop.
 *
 * A "plug" job occupies the pool's only thread until the test lets it go,
 * so that what waits in the queue meanwhile is known.
 */
#include <stdatomic.h>
#include <time.h>

#include <msvc/work.h>

#include "tls/helpers.h"

TestSuite(tls_offload, .init = (void (*)(void))certs, .timeout = 60);

typedef struct fixture_s {
  uv_loop_t loop;
  msvc_metrics_registry_t *reg;
  msvc_http_server_t *srv;
  msvc_work_t *work;
  msvc_http_client_t *c[2];
  char url[128];
} fixture_t;

static msvc_http_client_t *new_client(fixture_t *f) {
  msvc_http_client_t *c;
  msvc_tls_config_t *cfg = client_cfg("ca.crt", NULL, NULL, NULL, NULL);

  cr_assert_eq(msvc_http_client_new(&f->loop, NULL, &c), MSVC_OK);
  cr_assert_eq(msvc_http_client_set_tls(c, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  return c;
}

/* A server with crt/key whose handshakes run on a pool of `threads`. */
static void start_with(fixture_t *f, const char *crt, const char *key,
                       uint32_t handshake_timeout_ms, unsigned threads) {
  msvc_tls_opts_t to;
  msvc_tls_config_t *cfg;
  msvc_work_opts_t wo;

  memset(f, 0, sizeof(*f));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->reg), MSVC_OK);
  msvc_tls_opts_init(&to, MSVC_TLS_SERVER);
  to.cert_file = cf(crt);
  to.key_file = cf(key);
  to.metrics = f->reg;
  if (handshake_timeout_ms > 0)
    to.handshake_timeout_ms = handshake_timeout_ms;
  cr_assert_eq(msvc_tls_config_new(&to, &cfg, NULL, 0), MSVC_OK);
  f->srv = hello_server(&f->loop, cfg);
  msvc_tls_config_free(cfg);
  msvc_work_opts_init(&wo);
  wo.threads = threads;
  cr_assert_eq(msvc_work_new(&f->loop, &wo, &f->work), MSVC_OK);
  cr_assert_eq(msvc_http_server_set_work(f->srv, f->work), MSVC_OK);
  snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%d/hello",
           msvc_http_server_port(f->srv));
  f->c[0] = new_client(f);
  f->c[1] = new_client(f);
}

/* One pool thread: the plug below decides what waits. */
static void start(fixture_t *f, uint32_t handshake_timeout_ms) {
  start_with(f, "server.crt", "server.key", handshake_timeout_ms, 1);
}

static bool pool_closed;

static void on_pool_closed(void *data) {
  (void)data;
  pool_closed = true;
}

/* The server (unless already closed) before its pool, as the pool's
 * borrower must. */
static void stop(fixture_t *f) {
  if (f->srv != NULL)
    msvc_http_server_close(f->srv, NULL, NULL);
  msvc_http_client_close(f->c[0], NULL, NULL);
  msvc_http_client_close(f->c[1], NULL, NULL);
  pool_closed = false;
  msvc_work_close(f->work, on_pool_closed, NULL);
  cr_assert_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  cr_assert(pool_closed);
  cr_assert_eq(uv_loop_close(&f->loop), 0, "a handle leaked");
  msvc_metrics_registry_free(f->reg);
}

static uint64_t jobs_done(fixture_t *f) {
  msvc_work_stats_t st;

  cr_assert_eq(msvc_work_stats(f->work, &st), MSVC_OK);
  return st.done;
}

/* ---- the plug --------------------------------------------------------------- */

static atomic_bool plug_held;
static bool plug_done;

static void plug_work(void *data) {
  struct timespec ts = {0, 1000000};

  (void)data;
  while (atomic_load(&plug_held))
    nanosleep(&ts, NULL);
}

static void plug_finished(void *data, int status) {
  (void)data;
  cr_expect_eq(status, MSVC_OK);
  plug_done = true;
}

static void plug(fixture_t *f) {
  msvc_work_stats_t st;
  struct timespec ts = {0, 1000000};
  int i;

  atomic_store(&plug_held, true);
  plug_done = false;
  cr_assert_eq(msvc_work_submit(f->work, plug_work, plug_finished, NULL, NULL), MSVC_OK);
  /* Running, not queued: what comes next waits behind it. */
  for (i = 0; i < 5000; i++) {
    cr_assert_eq(msvc_work_stats(f->work, &st), MSVC_OK);
    if (st.running == 1)
      return;
    nanosleep(&ts, NULL);
  }
  cr_assert_fail("the plug never started");
}

static void unplug(fixture_t *f) {
  atomic_store(&plug_held, false);
  run_until(&f->loop, &plug_done);
}

/* Runs the loop until the pool has a queued job (a handshake step). */
static void until_queued(fixture_t *f) {
  msvc_work_stats_t st;
  int i;

  for (i = 0; i < 5000; i++) {
    cr_assert_eq(msvc_work_stats(f->work, &st), MSVC_OK);
    if (st.queued > 0)
      return;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  cr_assert_fail("no handshake step was queued");
}

static void start_get(fixture_t *f, msvc_http_client_t *c, result_t *r, uint32_t total_ms) {
  msvc_http_request_t req;

  memset(r, 0, sizeof(*r));
  msvc_http_request_init(&req);
  req.url = f->url;
  req.on_done = on_result;
  req.data = r;
  req.timeouts.total_ms = total_ms;
  cr_assert_eq(msvc_http_client_request(c, &req, NULL), MSVC_OK);
}

static void on_waited(uv_timer_t *t) {
  *(bool *)t->data = true;
}

/* ---- tests ------------------------------------------------------------------ */

Test(tls_offload, handshake_steps_run_on_the_pool) {
  fixture_t f;
  result_t r;
  uint64_t before;

  start(&f, 0);
  cr_assert_eq(jobs_done(&f), 0);
  r = fetch(&f.loop, f.c[0], f.url);
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "hello");
  /* The server's full handshake: the ClientHello step (signature) and the
   * key exchange step, at least. */
  before = jobs_done(&f);
  cr_assert_geq(before, 2, "%llu jobs", (unsigned long long)before);
  cr_assert_eq(hs_count(f.reg, "ok"), 1);
  /* Keep-alive requests cost the pool nothing. */
  r = fetch(&f.loop, f.c[0], f.url);
  cr_assert_eq(r.status, 200);
  cr_assert_eq(jobs_done(&f), before);
  stop(&f);
}

Test(tls_offload, loop_serves_while_a_handshake_waits) {
  fixture_t f;
  result_t r, slow;

  start(&f, 0);
  r = fetch(&f.loop, f.c[0], f.url); /* c[0]: a connection already open */
  cr_assert_eq(r.status, 200);
  plug(&f);
  start_get(&f, f.c[1], &slow, 10000);
  until_queued(&f);
  /* The new connection's handshake step waits for the pool's thread; the
   * loop answers the open connection meanwhile. */
  r = fetch(&f.loop, f.c[0], f.url);
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_eq(r.status, 200);
  cr_assert_not(slow.done, "the handshake finished without the pool");
  unplug(&f);
  run_until(&f.loop, &slow.done);
  cr_assert_eq(slow.err, 0, "%s", msvc_strerror(slow.err));
  cr_assert_str_eq(slow.body, "hello");
  cr_assert_eq(hs_count(f.reg, "ok"), 2);
  stop(&f);
}

Test(tls_offload, step_queued_past_the_deadline_times_out) {
  fixture_t f;
  result_t slow;
  uv_timer_t wait;
  bool waited = false;

  start(&f, 200);
  plug(&f);
  start_get(&f, f.c[1], &slow, 10000);
  until_queued(&f);
  /* Hold the pool beyond the 200 ms deadline, then let the step out. */
  uv_timer_init(&f.loop, &wait);
  wait.data = &waited;
  uv_timer_start(&wait, on_waited, 400, 0);
  run_until(&f.loop, &waited);
  uv_close((uv_handle_t *)&wait, NULL);
  unplug(&f);
  run_until(&f.loop, &slow.done);
  cr_assert_neq(slow.err, 0, "the handshake should have ended");
  cr_assert_eq(hs_count(f.reg, "timeout"), 1);
  cr_assert_eq(hs_count(f.reg, "ok"), 0);
  stop(&f);
}

Test(tls_offload, closing_with_a_step_queued_releases_it) {
  fixture_t f;
  result_t slow;
  msvc_work_stats_t st;

  start(&f, 0);
  plug(&f);
  start_get(&f, f.c[1], &slow, 10000);
  until_queued(&f);
  /* The server goes while the step waits: the step is cancelled, the
   * connection freed (ASan and the loop's close say nothing is left). */
  msvc_http_server_close(f.srv, NULL, NULL);
  run_until(&f.loop, &slow.done);
  cr_assert_neq(slow.err, 0);
  cr_assert_eq(msvc_work_stats(f.work, &st), MSVC_OK);
  cr_assert_eq(st.cancelled, 1);
  unplug(&f);
  f.srv = NULL;
  stop(&f);
}

Test(tls_offload, drained_pool_hands_steps_back_to_the_loop) {
  fixture_t f;
  result_t r;

  start(&f, 0);
  cr_assert_eq(msvc_work_drain(f.work, 1000), MSVC_OK);
  r = fetch(&f.loop, f.c[0], f.url);
  cr_assert_eq(r.err, 0, "%s", msvc_strerror(r.err));
  cr_assert_str_eq(r.body, "hello");
  cr_assert_eq(jobs_done(&f), 0);
  cr_assert_eq(hs_count(f.reg, "ok"), 1);
  stop(&f);
}

Test(tls_offload, pool_of_another_loop_refused) {
  uv_loop_t other;
  fixture_t f;
  msvc_work_t *w;

  start(&f, 0);
  cr_assert_eq(uv_loop_init(&other), 0);
  cr_assert_eq(msvc_work_new(&other, NULL, &w), MSVC_OK);
  cr_assert_eq(msvc_http_server_set_work(f.srv, w), MSVC_EINVAL);
  cr_assert_eq(msvc_http_server_set_work(NULL, f.work), MSVC_EINVAL);
  msvc_work_close(w, NULL, NULL);
  cr_assert_eq(uv_run(&other, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&other), 0);
  /* NULL takes the pool off again. */
  cr_assert_eq(msvc_http_server_set_work(f.srv, NULL), MSVC_OK);
  stop(&f);
}

/* Many new clients at once, on a pool of four threads: every handshake of
 * the ECDSA and the RSA server completes, several at a time (the shared
 * key and configuration used from several threads at once). */
static void concurrent(const char *crt, const char *key) {
  enum { N = 12 };
  msvc_http_client_t *c[N];
  result_t r[N];
  fixture_t f;
  int i;

  start_with(&f, crt, key, 0, 4);
  c[0] = f.c[0];
  c[1] = f.c[1];
  for (i = 0; i < N; i++) {
    if (i >= 2)
      c[i] = new_client(&f);
    start_get(&f, c[i], &r[i], 20000);
  }
  for (i = 0; i < N; i++) {
    run_until(&f.loop, &r[i].done);
    cr_assert_eq(r[i].err, 0, "client %d: %s", i, msvc_strerror(r[i].err));
    cr_assert_str_eq(r[i].body, "hello");
  }
  cr_assert_eq(hs_count(f.reg, "ok"), N);
  cr_assert_geq(jobs_done(&f), 2 * N);
  for (i = 2; i < N; i++)
    msvc_http_client_close(c[i], NULL, NULL);
  stop(&f);
}

Test(tls_offload, concurrent_handshakes_ecdsa) {
  concurrent("server.crt", "server.key");
}

Test(tls_offload, concurrent_handshakes_rsa) {
  concurrent("server-rsa.crt", "server-rsa.key");
}
