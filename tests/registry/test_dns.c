/* dns:// against real DNS servers on 127.0.0.1: dnsmasq, started and
 * stopped by PID by these tests, and a small server on the test's own loop
 * that answers what the test asks for (SERVFAIL, NXDOMAIN, garbage). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "registry/dns_build.h"
#include "registry/fixture.h"

/* dnsmasq answers records it owns with this TTL (seconds). */
#define TTL_S 1

typedef struct dnsmasq_s {
  char dir[256];
  int port;
  pid_t pid;
} dnsmasq_t;

/* A port free for both TCP and UDP on 127.0.0.1 (dnsmasq needs both). */
static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int t, u, port;

  for (;;) {
    t = socket(AF_INET, SOCK_STREAM, 0);
    u = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(t, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(t, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    if (bind(u, (struct sockaddr *)&a, sizeof(a)) == 0) {
      close(t);
      close(u);
      return port;
    }
    close(t);
    close(u);
  }
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512], tmp[520];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  cr_assert_not_null(f = fopen(tmp, "w"));
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
  cr_assert_eq(rename(tmp, path), 0);
}

/* srv: extra conf lines (srv-host= is read only at start). */
static void dnsmasq_conf(dnsmasq_t *d, const char *srv) {
  char conf[16384];

  snprintf(conf, sizeof(conf),
           "port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\n"
           "no-hosts\naddn-hosts=%s/hosts\nlocal=/test.local/\n"
           "local-ttl=%d\npid-file=%s/pid\n%s%s",
           d->port, d->dir, TTL_S, d->dir, geteuid() == 0 ? "user=root\n" : "",
           srv);
  write_file(d->dir, "conf", conf);
}

static bool port_open(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* The dnsmasq a failed assertion left running, stopped by .fini. */
static pid_t running;

static void stop_leftover(void) {
  if (running > 0) {
    kill(-running, SIGTERM);
    waitpid(running, NULL, 0);
    running = 0;
  }
}

/* False when dnsmasq exited instead of listening (its port was taken). */
static bool dnsmasq_try_start(dnsmasq_t *d) {
  char conf[300], log[300];
  int i, st;

  snprintf(conf, sizeof(conf), "--conf-file=%s/conf", d->dir);
  snprintf(log, sizeof(log), "%s/log", d->dir);
  d->pid = fork();
  cr_assert_geq(d->pid, 0);
  if (d->pid == 0) {
    /* Its own process group: dnsmasq serves TCP in forked children, which
     * must go with it (they hold the listening socket). */
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(DNSMASQ_PATH, "dnsmasq", conf, "--keep-in-foreground", (char *)NULL);
    _exit(127);
  }
  for (i = 0; i < 300 && !port_open(d->port); i++) {
    if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
      d->pid = 0;
      return false;
    }
    usleep(10000);
  }
  running = d->pid;
  cr_assert(port_open(d->port), "dnsmasq did not start (see %s)", log);
  return true;
}

/* A restart on the same port: a moment may pass before it is free. */
static void dnsmasq_start(dnsmasq_t *d) {
  int i;

  for (i = 0; i < 30 && !dnsmasq_try_start(d); i++)
    usleep(100000);
  cr_assert_gt(d->pid, 0, "dnsmasq did not start (see %s/log)", d->dir);
}

static void dnsmasq_stop(dnsmasq_t *d) {
  int st;

  if (d->pid <= 0)
    return;
  kill(-d->pid, SIGTERM);
  waitpid(d->pid, &st, 0);
  d->pid = 0;
  running = 0;
}

static void dnsmasq_open(dnsmasq_t *d, const char *hosts, const char *srv) {
  const char *base = getenv("TMPDIR");
  int i;

  memset(d, 0, sizeof(*d));
  snprintf(d->dir, sizeof(d->dir), "%s/msvc-dns-test-XXXXXX",
           base != NULL && base[0] == '/' ? base : "/tmp");
  cr_assert_not_null(mkdtemp(d->dir));
  write_file(d->dir, "hosts", hosts);
  /* Another program may take the port between the probe and dnsmasq's
   * bind: then try another one. */
  for (i = 0; i < 10; i++) {
    d->port = free_port();
    dnsmasq_conf(d, srv);
    if (dnsmasq_try_start(d))
      return;
  }
  cr_assert_fail("dnsmasq did not start (see %s/log)", d->dir);
}

/* dnsmasq re-reads its hosts files on SIGHUP. */
static void dnsmasq_hosts(dnsmasq_t *d, const char *hosts) {
  write_file(d->dir, "hosts", hosts);
  cr_assert_eq(kill(d->pid, SIGHUP), 0);
}

static void dnsmasq_close(dnsmasq_t *d) {
  dnsmasq_stop(d);
  fx_rmtree(d->dir);
}

static void dns_uri(char *out, size_t cap, int port) {
  snprintf(out, cap,
           "dns://?domain=test.local&server=127.0.0.1:%d&port=8080&"
           "timeout_ms=200&tries=2&min_ttl_ms=100",
           port);
}

/* Log lines, for the tests that check what was said. */
static char logbuf[16384];
static size_t loglen;

static void on_log(void *data, msvc_log_level_t level, const char *line,
                   size_t len) {
  (void)data;
  (void)level;
  if (loglen + len + 1 < sizeof(logbuf)) {
    memcpy(logbuf + loglen, line, len);
    loglen += len;
    logbuf[loglen] = '\0';
  }
}

static void log_capture(void) {
  loglen = 0;
  logbuf[0] = '\0';
  msvc_log_set_sink(on_log, NULL);
}

typedef struct want_stale_s {
  seen_t *seen;
  size_t count;
} want_stale_t;

static bool want_stale(void *arg) {
  want_stale_t *w = arg;
  return w->seen->last != NULL && msvc_registry_set_stale(w->seen->last) &&
         msvc_registry_set_count(w->seen->last) == w->count;
}

Test(registry_dns, instances_appear_and_disappear_within_ttl, .timeout = 30,
     .fini = stop_leftover) {
  dnsmasq_t d;
  fx_t f;
  seen_t s = {0};
  want_t w = {&s, 1};
  char uri[300];
  uint64_t t0, took;

  dnsmasq_open(&d, "127.0.0.2 web.test.local\n", "");
  dns_uri(uri, sizeof(uri), d.port);
  fx_open(&f, uri, NULL);
  cr_assert_str_eq(msvc_registry_backend(f.reg), "dns");
  cr_assert_eq(msvc_registry_watch(f.reg, "web", seen_cb, &s, NULL), MSVC_OK);
  cr_assert(fx_run_until(&f, want_count, &w, 3000), "first set");
  cr_assert_str_eq(msvc_registry_set_at(s.last, 0)->address, "127.0.0.2");
  cr_assert_eq(msvc_registry_set_at(s.last, 0)->port, 8080);

  dnsmasq_hosts(&d, "127.0.0.2 web.test.local\n127.0.0.3 web.test.local\n");
  t0 = msvc_now_ms();
  w.count = 2;
  cr_assert(fx_run_until(&f, want_count, &w, 5000), "appeared");
  took = msvc_now_ms() - t0;
  cr_assert_leq(took, TTL_S * 1000 + 200 + 300, "appeared after %llu ms",
                (unsigned long long)took);

  /* Every name is NXDOMAIN now: the service has no instances, after a
   * second look confirms it. */
  dnsmasq_hosts(&d, "127.0.0.9 other.test.local\n");
  t0 = msvc_now_ms();
  w.count = 0;
  cr_assert(fx_run_until(&f, want_count, &w, 5000), "disappeared");
  took = msvc_now_ms() - t0;
  cr_assert_leq(took, TTL_S * 1000 + 200 + 200 + 400,
                "disappeared after %llu ms", (unsigned long long)took);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 0);
  seen_clear(&s);
  fx_close(&f);
  dnsmasq_close(&d);
}

static bool int_is(void *arg) { return *(int *)arg != 0; }

typedef struct got_s {
  int calls;
  int status;
  msvc_registry_set_t *set;
} got_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  got_t *g = data;

  g->calls++;
  g->status = status;
  g->set = msvc_registry_set_ref(set);
}

static void srv_lines(char *out, size_t cap, int n, int big) {
  size_t len = 0;
  int i;

  for (i = 1; i <= n; i++)
    len += (size_t)snprintf(out + len, cap - len,
                            "srv-host=_http._tcp.api.test.local,a%d.test.local,"
                            "%d,0,%d\n",
                            i, 8080 + i, i * 10);
  for (i = 1; i <= big; i++)
    len += (size_t)snprintf(out + len, cap - len,
                            "srv-host=_http._tcp.big.test.local,"
                            "instance-number-%d.test.local,%d,0,1\n",
                            i, 9000 + i);
}

Test(registry_dns, srv_weights_and_ports_reach_the_instances, .timeout = 30,
     .fini = stop_leftover) {
  dnsmasq_t d;
  fx_t f;
  seen_t s = {0};
  want_t w = {&s, 2};
  got_t g = {0};
  char uri[300], srv[8192];
  size_t i;

  srv_lines(srv, sizeof(srv), 2, 60);
  dnsmasq_open(&d, "127.0.0.11 a1.test.local\n127.0.0.12 a2.test.local\n", srv);
  dns_uri(uri, sizeof(uri), d.port);
  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_resolve(f.reg, "api", on_resolved, &g), MSVC_OK);
  cr_assert(fx_run_until(&f, int_is, &g.calls, 3000));
  cr_assert_eq(g.status, MSVC_OK);
  cr_assert_eq(msvc_registry_set_count(g.set), 2);
  for (i = 0; i < 2; i++) {
    const msvc_registry_instance_t *in = msvc_registry_set_at(g.set, i);
    /* dnsmasq sends the targets' addresses along; the ids are stable. */
    cr_assert_eq(in->port, 8081 + i);
    cr_assert_eq(in->weight, 10 * (i + 1), "SRV weight %u", in->weight);
    cr_assert(strcmp(in->address, i == 0 ? "127.0.0.11" : "127.0.0.12") == 0 ||
                  strcmp(in->address,
                         i == 0 ? "a1.test.local" : "a2.test.local") == 0,
              "%s", in->address);
  }
  msvc_registry_set_unref(g.set);

  /* Sixty records do not fit in 512 bytes of UDP: the answer comes back
   * truncated and is asked again over TCP. */
  memset(&g, 0, sizeof(g));
  cr_assert_eq(msvc_registry_resolve(f.reg, "big", on_resolved, &g), MSVC_OK);
  cr_assert(fx_run_until(&f, int_is, &g.calls, 3000));
  cr_assert_eq(g.status, MSVC_OK);
  cr_assert_eq(msvc_registry_set_count(g.set), 60);
  msvc_registry_set_unref(g.set);

  /* dnsmasq reads srv-host only at start: a new SRV record means a
   * restart, during which the watch keeps what it had. */
  cr_assert_eq(msvc_registry_watch(f.reg, "api", seen_cb, &s, NULL), MSVC_OK);
  cr_assert(fx_run_until(&f, want_count, &w, 3000));
  dnsmasq_stop(&d);
  srv_lines(srv, sizeof(srv), 3, 0);
  dnsmasq_conf(&d, srv);
  dnsmasq_start(&d);
  w.count = 3;
  cr_assert(fx_run_until(&f, want_count, &w, 8000), "third SRV record");
  cr_assert_eq(msvc_registry_set_at(s.last, 2)->weight, 30);
  seen_clear(&s);
  fx_close(&f);
  dnsmasq_close(&d);
}

Test(registry_dns, server_down_keeps_last_known_good_and_logs, .timeout = 30,
     .fini = stop_leftover) {
  dnsmasq_t d;
  fx_t f;
  seen_t s = {0};
  want_t w = {&s, 1};
  want_stale_t ws = {&s, 1};
  char uri[300];

  dnsmasq_open(&d, "127.0.0.2 web.test.local\n", "");
  dns_uri(uri, sizeof(uri), d.port);
  fx_open(&f, uri, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "web", seen_cb, &s, NULL), MSVC_OK);
  cr_assert(fx_run_until(&f, want_count, &w, 3000));
  log_capture();
  dnsmasq_stop(&d);
  cr_assert(fx_run_until(&f, want_stale, &ws, 5000), "kept, flagged stale");
  cr_assert_str_eq(msvc_registry_set_at(s.last, 0)->address, "127.0.0.2");
  cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 0);
  cr_assert_not_null(strstr(logbuf, "keeping the last known"), "%s", logbuf);
  cr_assert_not_null(strstr(logbuf, "dns: web:"), "%s", logbuf);
  dnsmasq_start(&d);
  cr_assert(fx_run_until(&f, want_count, &w, 8000), "fresh again");
  msvc_log_reset();
  seen_clear(&s);
  fx_close(&f);
  dnsmasq_close(&d);
}

Test(registry_dns, registration_is_a_no_op_that_says_so, .timeout = 10) {
  fx_t f;
  msvc_registry_instance_t inst;
  int ok = 0;

  log_capture();
  fx_open(&f, "dns://?domain=test.local&server=127.0.0.1:9", NULL);
  msvc_registry_instance_init(&inst);
  inst.service = "web";
  inst.address = "127.0.0.1";
  inst.port = 8080;
  cr_assert_eq(msvc_registry_register(f.reg, &inst, 3000, NULL, NULL, NULL),
               MSVC_OK);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  ok = strstr(logbuf, "registration is the platform's") != NULL;
  cr_assert(ok, "%s", logbuf);
  msvc_log_reset();
  fx_close(&f);
}

/* ---- a server that answers what the test says ------------------------------
 */

typedef enum {
  ANSWER_OK,
  ANSWER_SERVFAIL,
  ANSWER_NXDOMAIN,
  ANSWER_GARBAGE
} mode_t_;

typedef struct crafted_s {
  uv_udp_t udp;
  mode_t_ mode;
  int port;
  uint32_t addr;  /* of the A answer; 127.0.0.5 unless set */
  bool hole;      /* swallow the next A query and every resend of it */
  int hole_id;    /* its query id, or -1 */
  int hole_seen;  /* copies of it swallowed */
  dnsb_t out;
} crafted_t;

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf) {
  static char mem[4096];
  (void)h;
  (void)n;
  *buf = uv_buf_init(mem, sizeof(mem));
}

static void on_sent(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static void on_query(uv_udp_t *u, ssize_t n, const uv_buf_t *buf,
                     const struct sockaddr *from, unsigned flags) {
  crafted_t *c = (crafted_t *)u;
  const uint8_t *q = (const uint8_t *)buf->base;
  size_t qend = 12;
  unsigned qtype;
  int rcode = 0;
  bool a = false;
  uv_udp_send_t *req;
  uv_buf_t b;

  (void)flags;
  if (n < 17 || from == NULL)
    return;
  while (qend < (size_t)n && q[qend] != 0)
    qend += q[qend] + 1u;
  qend += 5;
  if (qend > (size_t)n)
    return;
  qtype = (unsigned)(q[qend - 4] << 8 | q[qend - 3]);
  if (c->hole && c->hole_id < 0 && qtype == 1)
    c->hole_id = q[0] << 8 | q[1];
  if (c->hole_id >= 0 && (q[0] << 8 | q[1]) == c->hole_id) {
    c->hole_seen++;
    return; /* a datagram lost on the way, as often as c-ares sends it */
  }
  memcpy(c->out.b, q, qend);
  c->out.len = qend;
  if (c->mode == ANSWER_SERVFAIL)
    rcode = 2;
  else if (c->mode == ANSWER_NXDOMAIN || (c->mode == ANSWER_OK && qtype == 33))
    rcode = 3;
  else if (c->mode == ANSWER_OK && qtype == 1)
    a = true;
  c->out.b[2] = 0x81;
  c->out.b[3] = (uint8_t)(0x80 | rcode);
  memset(c->out.b + 6, 0, 6);
  if (a) {
    c->out.b[7] = 1;
    c->out.b[c->out.len++] = 0xC0;
    c->out.b[c->out.len++] = 12;
    dnsb_u16(&c->out, 1);
    dnsb_u16(&c->out, 1);
    dnsb_u32(&c->out, 1);
    dnsb_u16(&c->out, 4);
    dnsb_u32(&c->out, c->addr);
  }
  if (c->mode == ANSWER_GARBAGE) {
    c->out.b[7] = 3; /* three answers promised, half of one sent */
    c->out.b[c->out.len++] = 0xC0;
    c->out.b[c->out.len++] = 12;
    dnsb_u16(&c->out, 1);
  }
  /* Sends made from a receive callback are queued: each needs its own
   * copy of the bytes, kept with the request. */
  req = malloc(sizeof(*req) + c->out.len);
  cr_assert_not_null(req);
  memcpy(req + 1, c->out.b, c->out.len);
  b = uv_buf_init((char *)(req + 1), (unsigned)c->out.len);
  if (uv_udp_send(req, u, &b, 1, from, on_sent) != 0)
    free(req);
}

static void crafted_open(crafted_t *c, uv_loop_t *loop) {
  struct sockaddr_in a;
  struct sockaddr_storage got;
  int len = sizeof(got);

  memset(c, 0, sizeof(*c));
  cr_assert_eq(uv_udp_init(loop, &c->udp), 0);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_udp_bind(&c->udp, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_udp_getsockname(&c->udp, (struct sockaddr *)&got, &len), 0);
  c->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
  c->addr = 0x7F000005u;
  c->hole_id = -1;
  cr_assert_eq(uv_udp_recv_start(&c->udp, on_alloc, on_query), 0);
}

typedef struct stay_s {
  fx_t *f;
  uint64_t until;
} stay_t;

static bool time_up(void *arg) { return msvc_now_ms() >= *(uint64_t *)arg; }

/* A registry on the crafted server, both on one loop, watching "svc" until
 * its first set; tuning is the URI's timeout and try parameters. */
static void crafted_watch(fx_t *f, crafted_t *c, seen_t *s, const char *tuning) {
  want_t w = {s, 1};
  char uri[300];

  memset(f, 0, sizeof(*f));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(uv_timer_init(&f->loop, &f->tick), 0);
  crafted_open(c, &f->loop);
  snprintf(uri, sizeof(uri),
           "dns://?domain=d.test&server=127.0.0.1:%d&port=7000&%s&"
           "min_ttl_ms=100&max_ttl_ms=200",
           c->port, tuning);
  cr_assert_eq(msvc_registry_new(&f->loop, uri, NULL, &f->reg), MSVC_OK);
  log_capture();
  cr_assert_eq(msvc_registry_watch(f->reg, "svc", seen_cb, s, NULL), MSVC_OK);
  cr_assert(fx_run_until(f, want_count, &w, 3000), "%s", logbuf);
  cr_assert_eq(msvc_registry_set_at(s->last, 0)->port, 7000);
}

Test(registry_dns, nxdomain_empties_servfail_and_garbage_keep, .timeout = 30,
     .fini = stop_leftover) {
  fx_t f;
  crafted_t c;
  seen_t s = {0};
  want_t w = {&s, 1};
  want_stale_t ws = {&s, 1};
  uint64_t until;

  crafted_watch(&f, &c, &s, "timeout_ms=100&tries=1");

  /* SERVFAIL: the server cannot say; keep what we know. */
  c.mode = ANSWER_SERVFAIL;
  cr_assert(fx_run_until(&f, want_stale, &ws, 3000), "kept on SERVFAIL");
  until = msvc_now_ms() + 800;
  fx_run_until(&f, time_up, &until, 1000);
  cr_assert(want_stale(&ws), "still kept");
  cr_assert_not_null(strstr(logbuf, "SERVFAIL"), "%s", logbuf);

  /* Garbage: the same. */
  c.mode = ANSWER_OK;
  cr_assert(fx_run_until(&f, want_count, &w, 3000));
  c.mode = ANSWER_GARBAGE;
  cr_assert(fx_run_until(&f, want_stale, &ws, 3000), "kept on garbage");
  cr_assert(strstr(logbuf, "malformed") != NULL ||
                strstr(logbuf, "bad response") != NULL,
            "%s", logbuf);

  /* NXDOMAIN of every name: the service has no instances. */
  c.mode = ANSWER_OK;
  cr_assert(fx_run_until(&f, want_count, &w, 3000));
  c.mode = ANSWER_NXDOMAIN;
  w.count = 0;
  cr_assert(fx_run_until(&f, want_count, &w, 3000), "emptied on NXDOMAIN");
  cr_assert_not_null(strstr(logbuf, "confirming"), "%s", logbuf);
  msvc_log_reset();
  seen_clear(&s);
  uv_close((uv_handle_t *)&c.udp, NULL);
  fx_close(&f);
}

static bool want_address(void *arg) {
  const seen_t *s = arg;

  return s->last != NULL && msvc_registry_set_count(s->last) == 1 &&
         strcmp(msvc_registry_set_at(s->last, 0)->address, "127.0.0.6") == 0;
}

/* c-ares waits its timeout for a lost datagram, doubled on each try: with
 * three tries, one lost query would hold the watch for seven timeouts
 * while instances come and go. The watch asks again beside it instead. */
Test(registry_dns, a_lost_query_does_not_hold_the_watch, .timeout = 30,
     .fini = stop_leftover) {
  fx_t f;
  crafted_t c;
  seen_t s = {0};

  crafted_watch(&f, &c, &s, "timeout_ms=300&tries=3");

  /* The instance moves; the next A query is lost, and so is every resend
   * of it. */
  c.addr = 0x7F000006u;
  c.hole = true;
  cr_assert(fx_run_until(&f, want_address, &s, 10000), "the move was seen: %s",
            logbuf);
  cr_assert_geq(c.hole_seen, 1, "a query was lost");
  /* Seen while c-ares still waits on the lost one: before its third try. */
  cr_assert_lt(c.hole_seen, 3, "seen only after c-ares gave up (%d sends)",
               c.hole_seen);
  cr_assert_not_null(strstr(logbuf, "asking again"), "%s", logbuf);
  cr_assert_null(strstr(logbuf, "cannot read"), "no failure reported: %s",
                 logbuf);
  msvc_log_reset();
  seen_clear(&s);
  uv_close((uv_handle_t *)&c.udp, NULL);
  fx_close(&f);
}

/* Peers learn of a departure at their next resolution: a stopping service
 * serves that long, where a registry that tells its watchers needs 300 ms. */
Test(registry_dns, notice_covers_the_next_resolution, .timeout = 10) {
  uv_loop_t loop;
  msvc_registry_t *dns, *mem;
  msvc_registry_opts_t o;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_registry_new(&loop,
                                 "dns://?domain=d.test&server=127.0.0.1:9&"
                                 "min_ttl_ms=500&timeout_ms=200",
                                 NULL, &dns),
               MSVC_OK);
  cr_assert_eq(msvc_registry_notice_ms(dns), 500u + 200u + 200u);
  msvc_registry_opts_init(&o);
  o.debounce_max_ms = 50;
  cr_assert_eq(msvc_registry_new(&loop, "memory://", &o, &mem), MSVC_OK);
  cr_assert_eq(msvc_registry_notice_ms(mem), 150u);
  cr_assert_eq(msvc_registry_notice_ms(NULL), 0u);
  msvc_registry_close(dns, NULL, NULL);
  msvc_registry_close(mem, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
