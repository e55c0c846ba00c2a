/* The listener never goes deaf: an accept that fails for want of memory is
 * retried, and running out of descriptors costs the connections that came
 * meanwhile, not the server.
 *
 * This program links the copy of the library whose allocator can be told to
 * fail (src/core/alloc-fault.h), so a test can make the next allocations
 * fail. */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/alloc-fault.h"
#include "http/helpers.h"

/* ---- server --------------------------------------------------------------- */

static void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hi", 2);
}

static void setup(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
}

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static tsrv_t ts;

static void start(void) {
  tsrv_start(&ts, NULL, setup);
}

static void stop(void) {
  tsrv_stop(&ts);
}

TestSuite(http_accept_oom, .init = start, .fini = stop, .timeout = 30);

static int hello(int port) {
  tresp_t r;
  int st = tc_exchange(port, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &r);

  tresp_free(&r);
  return st;
}

/* The server is idle: the next allocations are the accept's. */
static void accept_with_failures(int n) {
  uint64_t t0;

  msvc__fault_fail_run(1, (unsigned long)n);
  t0 = now_ms();
  cr_assert_eq(hello(ts.port), 200, "not served after %d failed allocations", n);
  cr_assert_eq(msvc__fault_failures(), (unsigned long)n);
  msvc__fault_fail_nth(0);
  fprintf(stderr, "accept after %d failed allocation(s): served in %llu ms\n", n,
          (unsigned long long)(now_ms() - t0));
  /* And the listener is still watched. */
  cr_assert_eq(hello(ts.port), 200);
}

Test(http_accept_oom, one_failed_allocation_does_not_deafen_the_listener) {
  cr_assert_eq(hello(ts.port), 200);
  accept_with_failures(1);
}

Test(http_accept_oom, retries_back_off_until_memory_returns) {
  accept_with_failures(6);
}

/* ---- out of descriptors --------------------------------------------------- */

#define CLIENTS 100

/* The server runs in a child process whose descriptor limit is 64; it
 * reports its port through a pipe and runs until killed. */
static pid_t spawn_server(int *port) {
  int p[2];
  pid_t pid;

  cr_assert_eq(pipe(p), 0);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    struct rlimit rl = {64, 64};
    msvc_http_server_opts_t o;
    msvc_http_server_t *srv;
    uv_loop_t loop;
    int pt;

    close(p[0]);
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || uv_loop_init(&loop) != 0)
      _exit(2);
    msvc_http_server_opts_init(&o);
    o.max_connections = 10000; /* let the descriptors run out first */
    o.keepalive_timeout_ms = 60000;
    o.header_timeout_ms = 60000;
    if (msvc_http_server_new(&loop, &o, &srv) != MSVC_OK ||
        msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL) != MSVC_OK ||
        msvc_http_server_listen(srv, "127.0.0.1", 0) != MSVC_OK)
      _exit(3);
    pt = msvc_http_server_port(srv);
    if (write(p[1], &pt, sizeof(pt)) != (ssize_t)sizeof(pt))
      _exit(4);
    close(p[1]);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
  }
  close(p[1]);
  cr_assert_eq(read(p[0], port, sizeof(*port)), (ssize_t)sizeof(*port));
  close(p[0]);
  return pid;
}

Test(http_accept_emfile, serves_again_once_descriptors_are_back, .timeout = 30) {
  static int fds[CLIENTS];
  int port, i, served = 0, refused = 0, st, status;
  uint64_t t0;
  pid_t pid = spawn_server(&port);

  /* Every client holds its connection open after its request, so the
   * server runs out of descriptors part way. */
  for (i = 0; i < CLIENTS; i++) {
    tconn_t *c = malloc(sizeof(*c));
    tresp_t r;
    struct timeval tv = {1, 0};

    tc_open(c, port);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    tc_sends(c->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    if (tc_read(c, &r, false) && r.status == 200)
      served++;
    else
      refused++;
    tresp_free(&r);
    fds[i] = c->fd;
    free(c);
  }
  cr_expect_gt(served, 0);
  cr_expect_gt(refused, 0, "the server never ran out of descriptors");
  for (i = 0; i < CLIENTS; i++)
    close(fds[i]);
  /* Recovery: the first request that gets through after the close. */
  t0 = now_ms();
  for (st = -1; st != 200 && now_ms() - t0 < 5000;) {
    st = hello(port);
    if (st != 200)
      sleep_ms(5);
  }
  fprintf(stderr,
          "EMFILE: %d of %d clients served under a limit of 64, the rest dropped; "
          "serving again %llu ms after they closed\n",
          served, CLIENTS, (unsigned long long)(now_ms() - t0));
  cr_expect_eq(st, 200, "the server does not serve again");
  /* And keeps serving. */
  for (i = 0; i < 20; i++)
    cr_expect_eq(hello(port), 200);
  kill(pid, SIGKILL);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
}
