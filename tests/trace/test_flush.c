/*
 * The tracer's flush at a service's stop does not hold up its loop: with a
 * collector that takes connections and never answers, the flush runs to
 * its deadline on another thread while a timer on the loop keeps ticking,
 * the stop completes, and the spans it could not send are counted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>
#include <msvc/trace.h>

#define DRAIN_MS 1500

typedef struct fx_s {
  uv_loop_t loop;
  uv_timer_t tick;
  msvc_service_t *svc;
  uint64_t last_tick, max_gap, stop_at, stopped_at;
  int ticks, stopped;
  msvc_tracer_stats_t stats;
} fx_t;

static void on_tick(uv_timer_t *t) {
  fx_t *fx = t->data;
  uint64_t now = uv_hrtime() / 1000000u;

  if (fx->stop_at != 0 && now - fx->last_tick > fx->max_gap) fx->max_gap = now - fx->last_tick;
  fx->last_tick = now;
  fx->ticks++;
}

static void on_stopped(msvc_service_t *svc, void *data) {
  fx_t *fx = data;

  fx->stopped = 1;
  fx->stopped_at = uv_hrtime() / 1000000u;
  msvc_tracer_stats(msvc_service_tracer(svc), &fx->stats);
  uv_close((uv_handle_t *)&fx->tick, NULL);
}

static void on_ready(msvc_service_t *svc, int status, void *data) {
  fx_t *fx = data;
  msvc_span_t *s;
  int i;

  cr_assert_eq(status, MSVC_OK);
  /* Spans waiting in the queue (a partial batch: sent at the flush). */
  for (i = 0; i < 10; i++) {
    cr_assert_eq(msvc_trace_span_start(msvc_service_tracer(svc), "work", MSVC_SPAN_INTERNAL,
                                       NULL, &s),
                 MSVC_OK);
    msvc_trace_span_end(s);
  }
  uv_timer_start(&fx->tick, on_tick, 10, 10);
  fx->stop_at = fx->last_tick = uv_hrtime() / 1000000u;
  cr_assert_eq(msvc_service_stop(svc, on_stopped, fx), MSVC_OK);
}

Test(trace_flush, the_stop_flush_leaves_the_loop_free, .timeout = 30) {
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof(a);
  msvc_service_opts_t o;
  char url[64], err[256];
  fx_t fx;
  int lfd;

  memset(&fx, 0, sizeof(fx));
  msvc_log_set_level(MSVC_LOG_OFF);
  /* A collector that never accepts: connects succeed (backlog), answers
   * never come. */
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(lfd, 16), 0);
  getsockname(lfd, (struct sockaddr *)&a, &al);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/traces", ntohs(a.sin_port));
  setenv("MSVC_OTLP_ENDPOINT", url, 1);
  setenv("MSVC_TRACE_SAMPLE", "1", 1);
  unsetenv("MSVC_ADMIN");
  unsetenv("MSVC_PORT");
  unsetenv("MSVC_WORKERS");

  cr_assert_eq(uv_loop_init(&fx.loop), 0);
  cr_assert_eq(uv_timer_init(&fx.loop, &fx.tick), 0);
  fx.tick.data = &fx;
  msvc_service_opts_init(&o);
  o.registry_uri = "memory://";
  o.handle_signals = false;
  o.access_log = false;
  o.drain_timeout_ms = DRAIN_MS;
  o.on_ready = on_ready;
  o.data = &fx;
  cr_assert_eq(msvc_service_new(&fx.loop, "flushing", &o, &fx.svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(msvc_service_start(fx.svc), MSVC_OK);
  cr_assert_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  cr_assert(fx.stopped);
  /* The flush waited for the collector (most of the drain time) ... */
  cr_assert_geq(fx.stopped_at - fx.stop_at, DRAIN_MS / 2, "the stop took %llu ms",
                (unsigned long long)(fx.stopped_at - fx.stop_at));
  /* ... and the loop went on meanwhile: no tick came much later than the
   * timer asked (the blocking flush used to stall it for the whole time). */
  cr_assert_lt(fx.max_gap, DRAIN_MS / 2, "the loop stalled for %llu ms",
               (unsigned long long)fx.max_gap);
  cr_assert_eq(fx.stats.exported, 0);
  cr_assert_eq(fx.stats.dropped, 10, "dropped %llu", (unsigned long long)fx.stats.dropped);
  msvc_service_free(fx.svc);
  cr_assert_eq(uv_loop_close(&fx.loop), 0, "a handle leaked");
  close(lfd);
  unsetenv("MSVC_OTLP_ENDPOINT");
  unsetenv("MSVC_TRACE_SAMPLE");
}
