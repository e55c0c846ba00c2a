/* Registry benchmarks.
 *
 * registry_propagation_<local|etcd>: a child process registers instances one
 * at a time; this process watches the service. Each instance carries the
 * monotonic time (shared by both processes) at which register() was
 * called; the delay is measured when the watch callback first shows it.
 * Median and p99 over 200 registrations (30 with MSVC_BENCH_QUICK=1). For
 * etcd a private single-member etcd is started on loopback ports in a
 * temporary directory (the `etcd` binary on PATH, or ETCD_BIN) and stopped
 * by its pid; without one the etcd figures are skipped with a message.
 *
 * registry_propagation_dns: dnsmasq (on PATH, in /usr/sbin, or DNSMASQ_BIN)
 * serves a hosts file with a record TTL of 1 s; one address is added, the
 * file reloaded (SIGHUP), and the delay measured until a dns:// watch shows
 * it. Each change waits a random part of the TTL first, so that changes
 * fall anywhere in the re-resolution cycle. 40 changes (6 quick).
 *
 * registry_resolve_<backend>_1000: time from resolve() to its callback for
 * a service with 1,000 instances.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msvc/log.h>
#include <msvc/registry.h>

#include "bench.h"

#define SERVICE "bench"
#define BASE_PORT 20000

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void emit_p50_p99(const char *name, double *ms, int n) {
  bench_stat_t s = bench_stats(ms, n);
  bench_stat_t p99 = s;
  int idx = (int)((double)n * 0.99);

  if (idx >= n)
    idx = n - 1;
  p99.median = ms[idx];
  bench_emit(name, "libmsvc", "p50_ms", "ms", s, NULL, 0);
  bench_emit(name, "libmsvc", "p99_ms", "ms", p99, NULL, 0);
}

/* ---- the registering child --------------------------------------------- */

typedef struct child_s {
  msvc_registry_t *reg;
  uv_timer_t timer;
  int next, count;
} child_t;

static void on_child_tick(uv_timer_t *t) {
  child_t *c = t->data;
  msvc_registry_instance_t inst;
  msvc_registry_meta_t meta;
  char stamp[32];

  if (c->next >= c->count) {
    uv_timer_stop(t);
    return;
  }
  snprintf(stamp, sizeof(stamp), "%.0f", bench_now_ns());
  meta.key = "t0_ns";
  meta.value = stamp;
  msvc_registry_instance_init(&inst);
  inst.service = SERVICE;
  inst.address = "127.0.0.1";
  inst.port = (uint16_t)(BASE_PORT + c->next++);
  inst.metadata = &meta;
  inst.nmetadata = 1;
  if (msvc_registry_register(c->reg, &inst, 10000, NULL, NULL, NULL) != 0)
    _exit(1);
}

static void run_child(const char *uri, int count, uint64_t interval_ms) {
  uv_loop_t loop;
  child_t c;

  memset(&c, 0, sizeof(c));
  c.count = count;
  if (uv_loop_init(&loop) != 0 ||
      msvc_registry_new(&loop, uri, NULL, &c.reg) != 0)
    _exit(1);
  uv_timer_init(&loop, &c.timer);
  c.timer.data = &c;
  /* Start after the parent's watch has had time to deliver its first set. */
  uv_timer_start(&c.timer, on_child_tick, 200, interval_ms);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

/* ---- the watching parent ----------------------------------------------- */

typedef struct watcher_s {
  double *ms;
  char *seen;
  int got, count;
} watcher_t;

static void on_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                     void *data) {
  watcher_t *wt = data;
  double now = bench_now_ns();
  size_t i;

  (void)w;
  for (i = 0; i < msvc_registry_set_count(set); i++) {
    const msvc_registry_instance_t *in = msvc_registry_set_at(set, i);
    int k = in->port - BASE_PORT;
    const char *t0 = msvc_registry_instance_meta(in, "t0_ns");
    if (k < 0 || k >= wt->count || wt->seen[k] || t0 == NULL)
      continue;
    wt->seen[k] = 1;
    wt->ms[wt->got++] = (now - strtod(t0, NULL)) / 1e6;
  }
}

static void on_tick(uv_timer_t *t) {
  (void)t;
}

static void bench_propagation(const char *name, const char *uri) {
  int count = bench_quick() ? 30 : 200;
  watcher_t wt = {calloc((size_t)count, sizeof(double)), calloc((size_t)count, 1),
                  0, count};
  uv_loop_t loop;
  uv_timer_t tick;
  msvc_registry_t *reg;
  double deadline;
  pid_t pid;

  pid = fork();
  if (pid == 0)
    run_child(uri, count, 25);
  uv_loop_init(&loop);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  if (pid < 0 || msvc_registry_new(&loop, uri, NULL, &reg) != 0 ||
      msvc_registry_watch(reg, SERVICE, on_watch, &wt, NULL) != 0) {
    fprintf(stderr, "bench_registry: cannot set up the registry %s\n", uri);
    exit(1);
  }
  deadline = bench_now_ns() + 60e9;
  while (wt.got < count && bench_now_ns() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  msvc_registry_close(reg, NULL, NULL);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (wt.got < count)
    fprintf(stderr, "bench_registry: %s: saw %d of %d registrations\n", name, wt.got, count);
  if (wt.got > 0)
    emit_p50_p99(name, wt.ms, wt.got);
  free(wt.ms);
  free(wt.seen);
}

typedef struct resolver_s {
  int pending;
  size_t count;
} resolver_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  resolver_t *r = data;

  r->pending--;
  r->count = status == 0 ? msvc_registry_set_count(set) : 0;
}

static void on_registered(msvc_registry_lease_t *l, int status, void *data) {
  (void)l;
  if (status == 0)
    (*(int *)data)++;
}

static void bench_resolve(const char *name, const char *uri) {
  int runs = bench_quick() ? 20 : 100, ok = 0, i;
  double *ms = calloc((size_t)runs, sizeof(double));
  msvc_registry_instance_t inst;
  resolver_t r = {0, 0};
  uv_loop_t loop;
  msvc_registry_t *reg;

  uv_loop_init(&loop);
  if (msvc_registry_new(&loop, uri, NULL, &reg) != 0)
    exit(1);
  for (i = 0; i < 1000; i++) {
    msvc_registry_instance_init(&inst);
    inst.service = SERVICE;
    inst.address = "10.0.0.1";
    inst.port = (uint16_t)(BASE_PORT + i);
    if (msvc_registry_register(reg, &inst, 60000, on_registered, &ok, NULL))
      exit(1);
  }
  while (ok < 1000)
    uv_run(&loop, UV_RUN_NOWAIT);
  for (i = 0; i < runs; i++) {
    double t0 = bench_now_ns();
    r.pending = 1;
    msvc_registry_resolve(reg, SERVICE, on_resolved, &r);
    /* NOWAIT: ONCE would go on to sleep until the next heartbeat. */
    while (r.pending > 0)
      uv_run(&loop, UV_RUN_NOWAIT);
    ms[i] = (bench_now_ns() - t0) / 1e6;
    if (r.count != 1000) {
      fprintf(stderr, "bench_registry: resolved %zu, not 1000\n", r.count);
      exit(1);
    }
  }
  msvc_registry_close(reg, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  emit_p50_p99(name, ms, runs);
  free(ms);
}

/* ---- a private etcd ---------------------------------------------------- */

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* $ETCD_BIN, else an etcd on PATH; NULL when there is none. */
static const char *etcd_binary(void) {
  static char found[1024];
  const char *env = getenv("ETCD_BIN"), *p = getenv("PATH");

  if (env != NULL && access(env, X_OK) == 0)
    return env;
  while (p != NULL && *p != '\0') {
    const char *colon = strchr(p, ':');
    int len = colon != NULL ? (int)(colon - p) : (int)strlen(p);
    snprintf(found, sizeof(found), "%.*s/etcd", len, p);
    if (len > 0 && access(found, X_OK) == 0)
      return found;
    p = colon != NULL ? colon + 1 : NULL;
  }
  return NULL;
}

/* Whether etcd answers its health check on the port. */
static int etcd_healthy(int port) {
  static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Connection: close\r\n\r\n";
  struct sockaddr_in a;
  char buf[512];
  ssize_t n, got = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  while (got < (ssize_t)sizeof(buf) - 1 &&
         (n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
    got += n;
  buf[got] = '\0';
  close(fd);
  ok = strstr(buf, "\"health\":\"true\"") != NULL;
  return ok;
}

/* Starts etcd with its data under dir; its pid, or -1 (message printed). */
static pid_t etcd_start(const char *bin, const char *dir, int *client_port) {
  char client[64], peer[64], cluster[96], data[600];
  int cport = free_port(), pport = free_port(), i;
  pid_t pid;

  snprintf(client, sizeof(client), "http://127.0.0.1:%d", cport);
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", pport);
  snprintf(cluster, sizeof(cluster), "bench=%s", peer);
  snprintf(data, sizeof(data), "%s/etcd", dir);
  pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execl(bin, "etcd", "--name", "bench", "--data-dir", data, "--listen-client-urls",
          client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
          "--initial-cluster-state", "new", (char *)NULL);
    _exit(127);
  }
  for (i = 0; pid > 0 && i < 300; i++) {
    if (etcd_healthy(cport)) {
      *client_port = cport;
      return pid;
    }
    if (waitpid(pid, NULL, WNOHANG) == pid)
      break;
    usleep(50000);
  }
  fprintf(stderr, "bench_registry: etcd did not start: etcd figures skipped\n");
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  return -1;
}

static void bench_etcd(const char *dir) {
  const char *bin = etcd_binary();
  char uri[128];
  int port = 0;
  pid_t pid;

  if (bin == NULL) {
    fprintf(stderr, "bench_registry: no etcd binary (install etcd-server, or set "
                    "ETCD_BIN): registry_propagation_etcd skipped\n");
    return;
  }
  if ((pid = etcd_start(bin, dir, &port)) < 0)
    return;
  snprintf(uri, sizeof(uri), "etcd://127.0.0.1:%d", port);
  bench_propagation("registry_propagation_etcd", uri);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

/* ---- dns:// against dnsmasq ------------------------------------------------ */

#define DNS_TTL_S 1

static const char *dnsmasq_binary(void) {
  static const char *const paths[] = {"/usr/sbin/dnsmasq", "/sbin/dnsmasq",
                                      "/usr/bin/dnsmasq"};
  const char *env = getenv("DNSMASQ_BIN");
  size_t i;

  if (env != NULL && env[0] != '\0')
    return env;
  for (i = 0; i < sizeof(paths) / sizeof(*paths); i++)
    if (access(paths[i], X_OK) == 0)
      return paths[i];
  return NULL;
}

static void write_text(const char *path, const char *text) {
  char tmp[600];
  FILE *f;

  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  if ((f = fopen(tmp, "w")) == NULL)
    return;
  fputs(text, f);
  fclose(f);
  rename(tmp, path);
}

static int tcp_free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;

  memset(&a, 0, sizeof(a));
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

static pid_t dnsmasq_start(const char *bin, const char *dir, int port) {
  char conf[1024], path[600], arg[640];
  pid_t pid;
  int i;

  snprintf(conf, sizeof(conf),
           "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\n"
           "no-hosts\naddn-hosts=%s/hosts\nlocal=/bench.local/\n"
           "local-ttl=%d\n%s",
           port, dir, DNS_TTL_S, geteuid() == 0 ? "user=root\n" : "");
  snprintf(path, sizeof(path), "%s/dnsmasq.conf", dir);
  write_text(path, conf);
  snprintf(arg, sizeof(arg), "--conf-file=%s", path);
  pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execl(bin, "dnsmasq", arg, "--keep-in-foreground", (char *)NULL);
    _exit(127);
  }
  for (i = 0; pid > 0 && i < 100; i++) {
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    if (ok)
      return pid;
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return -1;
    usleep(20000);
  }
  if (pid > 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  return -1;
}

static void on_dns_watch(msvc_registry_watch_t *w, msvc_registry_set_t *set,
                         void *data) {
  (void)w;
  if (!msvc_registry_set_stale(set))
    *(size_t *)data = msvc_registry_set_count(set);
}

static void bench_dns(const char *dir) {
  const char *bin = dnsmasq_binary();
  int rounds = bench_quick() ? 6 : 40, got = 0, port, i;
  double *ms = calloc((size_t)rounds, sizeof(double));
  char hosts[600], uri[256], text[8192];
  size_t len = 0, seen = 0;
  msvc_registry_t *reg;
  uv_loop_t loop;
  uv_timer_t tick;
  pid_t pid;

  if (bin == NULL || msvc_registry_check_uri("dns://?domain=bench.local", NULL,
                                             0) != 0) {
    fprintf(stderr, "bench_registry: no dnsmasq, or built without DNS "
                    "support: registry_propagation_dns skipped\n");
    free(ms);
    return;
  }
  snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
  len += (size_t)snprintf(text, sizeof(text), "127.0.1.1 web.bench.local\n");
  write_text(hosts, text);
  if ((port = tcp_free_port()) < 0 ||
      (pid = dnsmasq_start(bin, dir, port)) < 0) {
    fprintf(stderr, "bench_registry: dnsmasq did not start: "
                    "registry_propagation_dns skipped\n");
    free(ms);
    return;
  }
  snprintf(uri, sizeof(uri),
           "dns://?domain=bench.local&server=127.0.0.1:%d&port=8080", port);
  uv_loop_init(&loop);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 5, 5);
  if (msvc_registry_new(&loop, uri, NULL, &reg) != 0 ||
      msvc_registry_watch(reg, "web", on_dns_watch, &seen, NULL) != 0) {
    fprintf(stderr, "bench_registry: cannot watch %s\n", uri);
    exit(1);
  }
  for (i = 0; i < rounds + 1; i++) {
    double t0, deadline;
    size_t want = (size_t)i + 1;

    if (i > 0) {
      /* Somewhere in the re-resolution cycle, not right after a lookup. */
      double until = bench_now_ns() + (double)(rand() % (DNS_TTL_S * 1000)) * 1e6;
      while (bench_now_ns() < until)
        uv_run(&loop, UV_RUN_ONCE);
      len += (size_t)snprintf(text + len, sizeof(text) - len,
                              "127.0.1.%d web.bench.local\n", i + 1);
      write_text(hosts, text);
      kill(pid, SIGHUP);
    }
    t0 = bench_now_ns();
    deadline = t0 + 10e9;
    while (seen != want && bench_now_ns() < deadline)
      uv_run(&loop, UV_RUN_ONCE);
    if (seen != want)
      break;
    if (i > 0)
      ms[got++] = (bench_now_ns() - t0) / 1e6;
  }
  msvc_registry_close(reg, NULL, NULL);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  kill(-pid, SIGTERM);
  waitpid(pid, NULL, 0);
  if (got < rounds)
    fprintf(stderr, "bench_registry: registry_propagation_dns: saw %d of %d "
                    "changes\n", got, rounds);
  if (got > 0)
    emit_p50_p99("registry_propagation_dns", ms, got);
  free(ms);
}

int main(void) {
  char dir[] = "/tmp/msvc-bench-registry-XXXXXX";
  char uri[512];

  msvc_log_set_level(MSVC_LOG_ERROR);
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(uri, sizeof(uri), "local://%s/propagation", dir);
  bench_propagation("registry_propagation_local", uri);
  bench_etcd(dir);
  bench_dns(dir);
  snprintf(uri, sizeof(uri), "local://%s/resolve", dir);
  bench_resolve("registry_resolve_local_1000", uri);
  bench_resolve("registry_resolve_memory_1000", "memory://");
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
