/*
 * Events on NATS JetStream: libmsvc beside the C client used directly, in
 * the same run, against one nats-server this program starts (and stops by
 * PID) on a free loopback port with a temporary store.
 *
 *   events_publish    acknowledged publishes per second with up to WINDOW in
 *                     flight, and the p50/p99 time to each acknowledgement
 *   events_roundtrip  one event at a time: publish -> handler on the
 *                     consumer -> ack; p50/p99 of publish-to-handler
 *   rss_idle_events_subscriber  resident memory of a process that holds one
 *                     handle and one subscription, idle
 *
 * impl "libmsvc" is msvc_events_*; impl "libnats_raw" is js_PublishMsgAsync
 * with an ack handler and a pull subscription fetched on a thread, which is
 * what the library does underneath. Skipped (no lines) without nats-server.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>
#include <uv.h>

#include <msvc/events.h>
#include <msvc/log.h>

#include "bench.h"

#define WINDOW 512
/* Event ids (the Nats-Msg-Id the stream deduplicates on) are the publish's
 * index plus ID_BASE(run, side): unique across both sides and all runs. An
 * id seen again within the stream's duplicate window is acknowledged
 * without being stored, so repeating ids would make one side cheaper. */
#define ID_BASE(run, side) ((2 * (run) + (side) + 1) * 10000000)
#define BODY_FMT                                                                               \
  "{\"specversion\":\"1.0\",\"id\":\"%032d\",\"source\":\"/bench\",\"type\":\"bench.raw\","    \
  "\"time\":\"2026-01-01T00:00:00.000Z\",\"datacontenttype\":\"application/json\","           \
  "\"data\":{\"order_id\":%d,\"total_cents\":1200}}"

static pid_t server_pid;
static char server_dir[256];
static char server_url[64];

static int free_port(void) {
  struct sockaddr_in a = {0};
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;

  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static int accepts(int port) {
  struct sockaddr_in a = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

static int start_server(void) {
  char port[16];
  int p = free_port();

  if (system("command -v nats-server >/dev/null 2>&1") != 0 || p < 0)
    return -1;
  snprintf(server_dir, sizeof(server_dir), "/tmp/msvc-bench-nats-XXXXXX");
  if (mkdtemp(server_dir) == NULL)
    return -1;
  snprintf(port, sizeof(port), "%d", p);
  snprintf(server_url, sizeof(server_url), "nats://127.0.0.1:%d", p);
  server_pid = fork();
  if (server_pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execlp("nats-server", "nats-server", "-js", "-sd", server_dir, "-p", port, "-a",
           "127.0.0.1", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500 && !accepts(p); i++)
    usleep(10000);
  return accepts(p) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  return remove(path);
}

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
  }
  nftw(server_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double pct(double *v, int n, double p) {
  bench_stat_t s = bench_stats(v, n); /* sorts */
  int i = (int)(p * (n - 1));
  (void)s;
  return v[i];
}

/* ---- libmsvc -------------------------------------------------------------- */

typedef struct mrun_s {
  uv_loop_t *loop;
  msvc_events_t *ev;
  int total, sent, acked, failed;
  double *sent_at, *lat_ms;
  char subject[32];
  int base; /* ID_BASE of the run */
} mrun_t;

static void m_publish_next(mrun_t *r);

static void m_on_pub(int status, const char *id, void *data) {
  mrun_t *r = data;
  int i = atoi(id) - r->base;

  if (status != MSVC_OK)
    r->failed++;
  r->lat_ms[r->acked++] = (bench_now_ns() - r->sent_at[i]) / 1e6;
  m_publish_next(r);
}

static void m_publish_next(mrun_t *r) {
  char id[40], data[64];

  while (r->sent < r->total && r->sent - r->acked < WINDOW) {
    msvc_event_t e = {.type = r->subject, .source = "/bench",
                      .time = "2026-01-01T00:00:00.000Z", .id = id, .data = data};
    snprintf(id, sizeof(id), "%032d", r->base + r->sent);
    snprintf(data, sizeof(data), "{\"order_id\":%d,\"total_cents\":1200}", r->sent);
    e.data_len = strlen(data);
    r->sent_at[r->sent] = bench_now_ns();
    if (msvc_events_publish(r->ev, &e, m_on_pub, r) != MSVC_OK) {
      r->failed++;
      r->acked++;
    }
    r->sent++;
  }
}

static void on_done(int status, void *data) {
  *(int *)data = status == MSVC_OK ? 1 : -1;
}

static void run_until_flag(uv_loop_t *loop, volatile int *flag, int want) {
  while (*flag < want)
    uv_run(loop, UV_RUN_ONCE);
}

static int ensure_stream(uv_loop_t *loop, msvc_events_t *ev) {
  static const char *subjects[] = {"bench.>"};
  msvc_events_stream_opts_t so;
  int done = 0;

  msvc_events_stream_opts_init(&so);
  so.name = "BENCH";
  so.subjects = subjects;
  so.subject_count = 1;
  so.duplicate_window_ms = 1000; /* ids repeat across runs */
  if (msvc_events_stream_ensure(ev, &so, on_done, &done) != MSVC_OK)
    return -1;
  while (done == 0)
    uv_run(loop, UV_RUN_ONCE);
  return done == 1 ? 0 : -1;
}

/* Returns publishes/s; fills lat (ms) for every acked publish. */
static double msvc_publish(uv_loop_t *loop, msvc_events_t *ev, int n, int run, double *lat) {
  mrun_t r = {loop, ev, n, 0, 0, 0, NULL, lat, "", ID_BASE(run, 0)};
  double t0;

  r.sent_at = calloc((size_t)n, sizeof(double));
  snprintf(r.subject, sizeof(r.subject), "bench.msvc%d", run);
  t0 = bench_now_ns();
  m_publish_next(&r);
  while (r.acked < n)
    uv_run(loop, UV_RUN_ONCE);
  free(r.sent_at);
  if (r.failed > 0)
    fprintf(stderr, "bench_events: %d libmsvc publishes failed\n", r.failed);
  return n / ((bench_now_ns() - t0) / 1e9);
}

typedef struct mrt_s {
  int got;
  double t_pub;
  double lat;
} mrt_t;

static void m_rt_handler(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  mrt_t *m = data;

  (void)sub;
  m->lat = (bench_now_ns() - m->t_pub) / 1e6;
  msvc_events_ack(msg);
  m->got++;
}

static void msvc_roundtrip(uv_loop_t *loop, msvc_events_t *ev, int n, int run, double *lat) {
  msvc_events_sub_opts_t so;
  msvc_events_sub_t *sub;
  mrt_t m = {0};
  char subject[32], durable[32];

  snprintf(subject, sizeof(subject), "bench.rtm%d", run);
  snprintf(durable, sizeof(durable), "rtm%d_%d", run, (int)getpid());
  msvc_events_sub_opts_init(&so);
  so.stream = "BENCH";
  so.subject = subject;
  so.durable = durable;
  so.deliver_new = true;
  msvc_events_subscribe(ev, &so, m_rt_handler, &m, &sub);
  for (int i = 0; i < 40; i++)
    uv_run(loop, UV_RUN_NOWAIT), usleep(5000); /* consumer set up */
  for (int i = 0; i < n; i++) {
    msvc_event_t e = {.type = subject, .data = "{\"order_id\":1}", .data_len = 14};
    m.t_pub = bench_now_ns();
    msvc_events_publish(ev, &e, NULL, NULL);
    run_until_flag(loop, &m.got, i + 1);
    lat[i] = m.lat;
  }
  msvc_events_sub_close(sub);
  for (int i = 0; i < 100; i++)
    uv_run(loop, UV_RUN_NOWAIT), usleep(5000);
}

/* ---- libnats used directly ------------------------------------------------- */

typedef struct rrun_s {
  atomic_int acked;
  double *sent_at;
  double *lat_ms;
  int base; /* ID_BASE of the run */
} rrun_t;

static void r_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  rrun_t *r = closure;
  const char *d = natsMsg_GetData(msg);
  int i = atoi(d + 29) - r->base; /* the zero-padded id in BODY_FMT */
  int k = atomic_fetch_add(&r->acked, 1);

  (void)js;
  (void)pa;
  (void)pae;
  r->lat_ms[k] = (bench_now_ns() - r->sent_at[i]) / 1e6;
  natsMsg_Destroy(msg);
}

static double raw_publish(natsConnection *nc, int n, int run, double *lat) {
  rrun_t r;
  jsOptions jo;
  jsCtx *js = NULL;
  char subject[32], body[300];
  double t0;

  atomic_init(&r.acked, 0);
  r.sent_at = calloc((size_t)n, sizeof(double));
  r.lat_ms = lat;
  r.base = ID_BASE(run, 1);
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = WINDOW;
  jo.PublishAsync.AckHandler = r_on_ack;
  jo.PublishAsync.AckHandlerClosure = &r;
  natsConnection_JetStream(&js, nc, &jo);
  snprintf(subject, sizeof(subject), "bench.raw%d", run);
  t0 = bench_now_ns();
  for (int i = 0; i < n; i++) {
    natsMsg *m = NULL;
    jsPubOptions po;
    char id[40];
    int len = snprintf(body, sizeof(body), BODY_FMT, r.base + i, i);
    snprintf(id, sizeof(id), "%032d", r.base + i);
    natsMsg_Create(&m, subject, NULL, body, len);
    jsPubOptions_Init(&po);
    po.MsgId = id;
    r.sent_at[i] = bench_now_ns();
    if (js_PublishMsgAsync(js, &m, &po) != NATS_OK)
      natsMsg_Destroy(m);
  }
  js_PublishAsyncComplete(js, NULL);
  while (atomic_load(&r.acked) < n)
    usleep(100);
  t0 = n / ((bench_now_ns() - t0) / 1e9);
  jsCtx_Destroy(js);
  free(r.sent_at);
  return t0;
}

static void raw_roundtrip(natsConnection *nc, int n, int run, double *lat) {
  jsCtx *js = NULL;
  jsSubOptions so;
  jsConsumerConfig cc;
  jsConsumerInfo *ci = NULL;
  natsSubscription *sub = NULL;
  char subject[32], durable[32];

  natsConnection_JetStream(&js, nc, NULL);
  snprintf(subject, sizeof(subject), "bench.rtr%d", run);
  snprintf(durable, sizeof(durable), "rtr%d_%d", run, (int)getpid());
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable;
  cc.AckPolicy = js_AckExplicit;
  cc.FilterSubject = subject;
  cc.DeliverPolicy = js_DeliverNew;
  js_AddConsumer(&ci, js, "BENCH", &cc, NULL, NULL);
  jsConsumerInfo_Destroy(ci);
  jsSubOptions_Init(&so);
  so.Stream = "BENCH";
  so.Consumer = durable;
  js_PullSubscribe(&sub, js, subject, durable, NULL, &so, NULL);
  for (int i = 0; i < n; i++) {
    natsMsgList list = {0};
    double t = bench_now_ns();
    js_Publish(NULL, js, subject, "{\"order_id\":1}", 14, NULL, NULL);
    while (natsSubscription_Fetch(&list, sub, 1, 1000, NULL) != NATS_OK)
      ;
    lat[i] = (bench_now_ns() - t) / 1e6;
    natsMsg_Ack(list.Msgs[0], NULL);
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
}

/* ---- idle memory of a subscriber ------------------------------------------ */

static void rss_handler(msvc_events_sub_t *sub, msvc_events_msg_t *msg, void *data) {
  (void)sub;
  (void)data;
  msvc_events_ack(msg);
}

/* The subscriber runs in a fresh process (this program, re-executed), so
 * that nothing the benchmarks above allocated counts against it. */
static int idle_subscriber(const char *url) {
  uv_loop_t loop;
  msvc_events_t *ev;
  msvc_events_sub_opts_t so;
  msvc_events_sub_t *sub;
  char line[256];
  long kb = -1;
  FILE *f;

  msvc_log_set_level(MSVC_LOG_WARN);
  uv_loop_init(&loop);
  if (msvc_events_new(&loop, url, NULL, &ev, NULL, 0) != MSVC_OK)
    return 1;
  msvc_events_sub_opts_init(&so);
  so.stream = "BENCH";
  so.subject = "bench.idle";
  so.durable = "idle";
  msvc_events_subscribe(ev, &so, rss_handler, NULL, &sub);
  for (int i = 0; i < 150; i++)
    uv_run(&loop, UV_RUN_NOWAIT), usleep(10000);
  f = fopen("/proc/self/status", "r");
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  if (f != NULL)
    fclose(f);
  printf("%ld\n", kb);
  return 0;
}

static long subscriber_rss(void) {
  char cmd[512];
  long kb = -1;
  FILE *p;

  snprintf(cmd, sizeof(cmd), "/proc/%d/exe --idle-subscriber %s", (int)getpid(), server_url);
  p = popen(cmd, "r");
  if (p == NULL)
    return -1;
  if (fscanf(p, "%ld", &kb) != 1)
    kb = -1;
  pclose(p);
  return kb > 0 ? kb * 1024 : -1;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv) {
  int runs = bench_runs();
  int n_pub = bench_quick() ? 4000 : 20000;
  int n_rt = bench_quick() ? 200 : 1000;
  double m_ops[5], r_ops[5], m_p50[5], m_p99[5], r_p50[5], r_p99[5];
  double rm50[5], rm99[5], rr50[5], rr99[5], pair[5];
  double *lat = calloc((size_t)n_pub, sizeof(double));
  uv_loop_t loop;
  msvc_events_t *ev = NULL;
  natsConnection *nc = NULL;
  bench_stat_t sm, sr;
  long rss;

  if (argc == 3 && strcmp(argv[1], "--idle-subscriber") == 0)
    return idle_subscriber(argv[2]);
  msvc_log_set_level(MSVC_LOG_WARN);
  if (start_server() != 0) {
    fprintf(stderr, "bench_events: nats-server not available, skipped\n");
    stop_server();
    return 0;
  }
  uv_loop_init(&loop);
  if (msvc_events_new(&loop, server_url, NULL, &ev, NULL, 0) != MSVC_OK ||
      ensure_stream(&loop, ev) != 0 || natsConnection_ConnectTo(&nc, server_url) != NATS_OK) {
    fprintf(stderr, "bench_events: set-up failed\n");
    stop_server();
    return 1;
  }
  for (int r = 0; r < runs; r++) {
    /* alternate who goes first, so neither always gets the warmer cache */
    if (r % 2 == 0) {
      m_ops[r] = msvc_publish(&loop, ev, n_pub, r, lat);
      m_p50[r] = pct(lat, n_pub, 0.5), m_p99[r] = pct(lat, n_pub, 0.99);
      r_ops[r] = raw_publish(nc, n_pub, r, lat);
      r_p50[r] = pct(lat, n_pub, 0.5), r_p99[r] = pct(lat, n_pub, 0.99);
    } else {
      r_ops[r] = raw_publish(nc, n_pub, r, lat);
      r_p50[r] = pct(lat, n_pub, 0.5), r_p99[r] = pct(lat, n_pub, 0.99);
      m_ops[r] = msvc_publish(&loop, ev, n_pub, r, lat);
      m_p50[r] = pct(lat, n_pub, 0.5), m_p99[r] = pct(lat, n_pub, 0.99);
    }
    pair[r] = r_ops[r] > 0 ? m_ops[r] / r_ops[r] : 0;
    msvc_roundtrip(&loop, ev, n_rt, r, lat);
    rm50[r] = pct(lat, n_rt, 0.5), rm99[r] = pct(lat, n_rt, 0.99);
    raw_roundtrip(nc, n_rt, r, lat);
    rr50[r] = pct(lat, n_rt, 0.5), rr99[r] = pct(lat, n_rt, 0.99);
  }
  sm = bench_stats(m_ops, runs);
  sr = bench_stats(r_ops, runs);
  /* The ratio is the median of the runs' own ratios: the two sides of a
   * run follow each other within a fraction of a second, while the medians
   * of the rates can come from runs under different loads. */
  bench_emit("events_publish", "libmsvc", "ops_per_s", "ops/s", sm, "libnats_raw",
             bench_stats(pair, runs).median);
  bench_emit("events_publish", "libnats_raw", "ops_per_s", "ops/s", sr, NULL, 0);
  sm = bench_stats(m_p50, runs);
  sr = bench_stats(r_p50, runs);
  bench_emit("events_publish", "libmsvc", "p50_ms", "ms", sm, "libnats_raw", sm.median / sr.median);
  bench_emit("events_publish", "libnats_raw", "p50_ms", "ms", sr, NULL, 0);
  sm = bench_stats(m_p99, runs);
  sr = bench_stats(r_p99, runs);
  bench_emit("events_publish", "libmsvc", "p99_ms", "ms", sm, "libnats_raw", sm.median / sr.median);
  bench_emit("events_publish", "libnats_raw", "p99_ms", "ms", sr, NULL, 0);
  sm = bench_stats(rm50, runs);
  sr = bench_stats(rr50, runs);
  bench_emit("events_roundtrip", "libmsvc", "p50_ms", "ms", sm, "libnats_raw",
             sm.median / sr.median);
  bench_emit("events_roundtrip", "libnats_raw", "p50_ms", "ms", sr, NULL, 0);
  sm = bench_stats(rm99, runs);
  sr = bench_stats(rr99, runs);
  bench_emit("events_roundtrip", "libmsvc", "p99_ms", "ms", sm, "libnats_raw",
             sm.median / sr.median);
  bench_emit("events_roundtrip", "libnats_raw", "p99_ms", "ms", sr, NULL, 0);
  rss = subscriber_rss();
  if (rss > 0) {
    bench_stat_t s = {(double)rss, (double)rss, (double)rss, 1};
    bench_emit("rss_idle_events_subscriber", "libmsvc", "bytes", "B", s, NULL, 0);
  }
  natsConnection_Destroy(nc);
  msvc_events_close(ev, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(lat);
  stop_server();
  return 0;
}
