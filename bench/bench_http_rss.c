/*
 * Memory of the HTTP server: resident set of an idle server (rss_idle) and
 * its growth per idle keep-alive connection (rss_per_conn), measured over
 * 1,000 connections that have each served one request. nginx (one worker,
 * when installed) is measured the same way for the ratio.
 *
 * The server runs in a child process so its RSS is its own; the parent is
 * the client. The child is stopped by its pid.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msvc/http.h>

#include "bench.h"

#define NCONN 1000

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hello, world!", 13);
}

/* Child: serve until killed; report the port through the pipe. */
static void run_libmsvc(int fd) {
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_http_server_opts_t o;
  int port;

  msvc_http_server_opts_init(&o);
  o.keepalive_timeout_ms = 600000;
  o.header_timeout_ms = 600000;
  if (uv_loop_init(&loop) != 0 || msvc_http_server_new(&loop, &o, &srv) != MSVC_OK ||
      msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL) != MSVC_OK ||
      msvc_http_server_listen(srv, "127.0.0.1", 0) != MSVC_OK)
    _exit(1);
  port = msvc_http_server_port(srv);
  if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
    _exit(1);
  close(fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

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

static pid_t start_nginx(const char *dir, int port) {
  char conf[1536], path[600], errlog[600];
  FILE *f;
  pid_t pid;

  snprintf(path, sizeof(path), "%s/nginx.conf", dir);
  snprintf(errlog, sizeof(errlog), "%s/error.log", dir);
  snprintf(conf, sizeof(conf),
           "daemon off; worker_processes 1; pid %s/nginx.pid; error_log %s crit;\n"
           "events { worker_connections 4096; }\n",
           dir, errlog);
  f = fopen(path, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%shttp { access_log off; keepalive_timeout 600s; client_body_temp_path %s/b;\n"
             "proxy_temp_path %s/p; fastcgi_temp_path %s/f; uwsgi_temp_path %s/u;\n"
             "scgi_temp_path %s/s;\n"
             "server { listen 127.0.0.1:%d; location = /hello { default_type text/plain;\n"
             "return 200 \"hello, world!\"; } } }\n",
          conf, dir, dir, dir, dir, dir, port);
  fclose(f);
  pid = fork();
  if (pid == 0) {
    execlp("nginx", "nginx", "-e", errlog, "-p", dir, "-c", path, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int connect_to(int port) {
  struct sockaddr_in a;
  struct timeval tv = {5, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One request on a new connection, left open; -1 on failure. */
static int open_used_conn(int port) {
  static const char req[] = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n";
  char buf[512];
  int fd = connect_to(port);

  if (fd < 0)
    return -1;
  if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1) ||
      recv(fd, buf, sizeof(buf), 0) <= 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static long rss_of(pid_t pid) {
  char path[64], line[256];
  long kb = -1;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb * 1024;
}

/* RSS of a process and its direct children (nginx's worker). */
static long rss_tree(pid_t pid) {
  char path[96];
  long total = rss_of(pid);
  FILE *f;
  int child;

  snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
  f = fopen(path, "r");
  if (f != NULL) {
    while (fscanf(f, "%d", &child) == 1)
      total += rss_of(child);
    fclose(f);
  }
  return total;
}

static int wait_ready(int port) {
  int i, fd;

  for (i = 0; i < 200; i++) {
    fd = open_used_conn(port);
    if (fd >= 0) {
      close(fd);
      return 0;
    }
    usleep(20000);
  }
  return -1;
}

/* Measures one server: idle RSS and growth per connection, in bytes. */
static int measure(pid_t pid, int port, double *idle, double *per_conn) {
  static int fds[NCONN];
  long before, after;
  int i, n = 0, rc = 0;

  if (wait_ready(port) != 0)
    return -1;
  usleep(100000);
  before = rss_tree(pid);
  for (i = 0; i < NCONN; i++) {
    fds[i] = open_used_conn(port);
    if (fds[i] < 0) {
      rc = -1;
      break;
    }
    n++;
  }
  usleep(100000);
  after = rss_tree(pid);
  for (i = 0; i < n; i++)
    close(fds[i]);
  if (rc != 0 || before <= 0 || after <= 0)
    return -1;
  *idle = (double)before;
  *per_conn = (double)(after - before) / NCONN;
  return 0;
}

static void stop(pid_t pid) {
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

static int run_once(int use_nginx, double *idle, double *per_conn) {
  char dir[] = "/tmp/msvc-bench-rss.XXXXXX";
  int pfd[2], port = 0, rc;
  pid_t pid;

  if (use_nginx) {
    if (mkdtemp(dir) == NULL)
      return -1;
    port = free_port();
    pid = start_nginx(dir, port);
  } else {
    if (pipe(pfd) != 0)
      return -1;
    pid = fork();
    if (pid == 0) {
      close(pfd[0]);
      run_libmsvc(pfd[1]);
    }
    close(pfd[1]);
    if (pid > 0 && read(pfd[0], &port, sizeof(port)) != (ssize_t)sizeof(port))
      port = 0;
    close(pfd[0]);
  }
  if (pid <= 0)
    return -1;
  rc = port > 0 ? measure(pid, port, idle, per_conn) : -1;
  stop(pid);
  if (use_nginx) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "bench_http_rss: could not remove %s\n", dir);
  }
  return rc;
}

int main(void) {
  double idle[2][8], conn[2][8];
  bench_stat_t si[2], sc[2];
  struct rlimit rl;
  int runs = bench_runs(), impl, r, have_nginx = 1;

  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < NCONN + 64) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  for (impl = 0; impl < 2; impl++) {
    for (r = 0; r < runs; r++) {
      if (run_once(impl, &idle[impl][r], &conn[impl][r]) != 0) {
        if (impl == 1) {
          have_nginx = 0;
          break;
        }
        fprintf(stderr, "bench_http_rss: measuring libmsvc failed\n");
        return 1;
      }
    }
    if (impl == 1 && !have_nginx)
      break;
    si[impl] = bench_stats(idle[impl], runs);
    sc[impl] = bench_stats(conn[impl], runs);
  }
  if (have_nginx) {
    bench_emit("rss_idle", "nginx", "bytes", "B", si[1], NULL, 0);
    bench_emit("rss_per_conn", "nginx", "bytes", "B", sc[1], NULL, 0);
    bench_emit("rss_idle", "libmsvc", "bytes", "B", si[0], "nginx", si[0].median / si[1].median);
    bench_emit("rss_per_conn", "libmsvc", "bytes", "B", sc[0], "nginx",
               sc[1].median > 0 ? sc[0].median / sc[1].median : 0);
  } else {
    bench_emit("rss_idle", "libmsvc", "bytes", "B", si[0], NULL, 0);
    bench_emit("rss_per_conn", "libmsvc", "bytes", "B", sc[0], NULL, 0);
  }
  return 0;
}
