/*
 * A real Prometheus server scrapes a test server in this process: it is
 * started as a child on a free loopback port with a temporary configuration
 * and data directory (scrape interval 1 s), and its HTTP API is polled with
 * a tiny socket client until `up` is 1 and the request counter has the
 * expected value. Prometheus is stopped by its PID on every path: the fini
 * hook runs after a failed assertion too, and the child also dies with its
 * parent.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "helpers.h"

static pid_t prom_pid = -1;
static char prom_dir[] = "/tmp/msvc-prom-XXXXXX";
static bool prom_dir_made;

static void stop_prometheus(void) {
  int i, status;

  if (prom_pid > 0) {
    kill(prom_pid, SIGTERM);
    for (i = 0; i < 100 && waitpid(prom_pid, &status, WNOHANG) == 0; i++)
      sleep_ms(50);
    if (i == 100) {
      kill(prom_pid, SIGKILL);
      waitpid(prom_pid, &status, 0);
    }
    prom_pid = -1;
  }
  if (prom_dir_made) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", prom_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", prom_dir);
    prom_dir_made = false;
  }
}

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static void start_prometheus(int target_port, int web_port) {
  char cfg[256], data[256], listen[64], cfgarg[300], dataarg[300];
  FILE *f;

  cr_assert_not_null(mkdtemp(prom_dir));
  prom_dir_made = true;
  snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", prom_dir);
  snprintf(data, sizeof(data), "%s/data", prom_dir);
  f = fopen(cfg, "w");
  cr_assert_not_null(f);
  fprintf(f,
          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
          "  evaluation_interval: 1s\n"
          "scrape_configs:\n  - job_name: msvc\n    static_configs:\n"
          "      - targets: ['127.0.0.1:%d']\n",
          target_port);
  fclose(f);
  snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", web_port);
  snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
  snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
  prom_pid = fork();
  cr_assert_geq(prom_pid, 0);
  if (prom_pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (devnull >= 0) {
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    execlp("prometheus", "prometheus", cfgarg, dataarg, listen, "--log.level=error",
           (char *)NULL);
    _exit(127);
  }
}

/* GET on Prometheus's API with a plain HTTP/1.0 request; returns the body
 * (malloc'd) or NULL when it is not reachable yet. */
static char *api_get(int port, const char *target) {
  struct sockaddr_in a;
  struct timeval tv = {2, 0};
  char req[1024], *buf, *body;
  size_t len = 0, cap = 1 << 16;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ssize_t n;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return NULL;
  }
  snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", target);
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
    close(fd);
    return NULL;
  }
  buf = malloc(cap);
  while (len + 1 < cap && (n = recv(fd, buf + len, cap - len - 1, 0)) > 0)
    len += (size_t)n;
  close(fd);
  buf[len] = '\0';
  body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.", 7) != 0 || atoi(buf + 9) != 200 || body == NULL) {
    free(buf);
    return NULL;
  }
  memmove(buf, body + 4, strlen(body + 4) + 1);
  return buf;
}

/* Polls an instant query until its single result's value is want, for at
 * most ms milliseconds. Returns the last body seen for the failure message. */
static bool query_until(int port, const char *query, const char *want, int ms, char *last,
                        size_t cap) {
  char target[512], pat[64];
  int waited;

  snprintf(target, sizeof(target), "/api/v1/query?query=%s", query);
  snprintf(pat, sizeof(pat), ",\"%s\"]", want);
  snprintf(last, cap, "(no answer)");
  for (waited = 0; waited < ms; waited += 250) {
    char *body = api_get(port, target);
    if (body != NULL) {
      bool hit = strstr(body, "\"status\":\"success\"") != NULL && strstr(body, pat) != NULL;
      snprintf(last, cap, "%s", body);
      free(body);
      if (hit)
        return true;
    }
    sleep_ms(250);
  }
  return false;
}

typedef struct fixture_s {
  msvc_metrics_registry_t *reg;
  msvc_mw_metrics_t *mm;
} fixture_t;

static void on_user(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "application/json", "{}", 2);
}

static void setup(msvc_http_server_t *srv, void *data) {
  fixture_t *f = data;
  msvc_mw_metrics_opts_t o;

  msvc_mw_metrics_opts_init(&o);
  o.registry = f->reg;
  cr_assert_eq(msvc_mw_metrics_new(srv, &o, &f->mm), MSVC_OK);
  cr_assert_eq(msvc_mw_metrics_route(srv, "/metrics", f->reg), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/:id", on_user, NULL, NULL),
               MSVC_OK);
}

Test(prometheus, scrapes_the_live_server, .timeout = 120, .fini = stop_prometheus) {
  srvthread_t t;
  fixture_t f;
  resp_t r;
  char last[4096], q[256];
  int i, web;

  if (system("command -v prometheus >/dev/null 2>&1") != 0)
    cr_skip_test("prometheus is not installed");
  memset(&f, 0, sizeof(f));
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f.reg), MSVC_OK);
  st_start(&t, setup, &f);
  for (i = 0; i < 7; i++) {
    char path[32];
    snprintf(path, sizeof(path), "/users/%d", 100 + i);
    cr_assert_eq(cl_get(t.port, path, "", &r), 200);
    resp_free(&r);
  }
  web = free_port();
  start_prometheus(t.port, web);
  cr_assert(query_until(web, "up", "1", 60000, last, sizeof(last)),
            "up never became 1: %s", last);
  snprintf(q, sizeof(q), "%s",
           "msvc_http_server_requests_total%7Bjob%3D%22msvc%22%2Croute%3D%22%2Fusers%2F%3Aid"
           "%22%2Cstatus%3D%22200%22%7D");
  cr_assert(query_until(web, q, "7", 30000, last, sizeof(last)),
            "counter never reached 7: %s", last);
  /* The scrapes themselves are counted by route pattern as well. */
  cr_assert(query_until(web,
                        "count(msvc_http_server_requests_total%7Broute%3D%22%2Fmetrics%22%7D)",
                        "1", 30000, last, sizeof(last)),
            "no series for the scrapes: %s", last);
  stop_prometheus();
  st_stop(&t);
  msvc_mw_metrics_free(f.mm);
  msvc_metrics_registry_free(f.reg);
}
