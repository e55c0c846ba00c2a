/* Real etcd processes for the registry tests: started on free loopback
 * ports in a temporary data directory, waited for until they answer, and
 * stopped by PID. Skips (cr_skip_test) only when no etcd binary exists. */
#ifndef MSVC_TEST_REGISTRY_ETCD_FIXTURE_H
#define MSVC_TEST_REGISTRY_ETCD_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "fixture.h"

#define ETCD_MAX_MEMBERS 3

typedef struct etcd_member_s {
  pid_t pid;
  int client_port;
  int peer_port;
  char dir[256];
} etcd_member_t;

typedef struct etcd_cluster_s {
  size_t n;
  etcd_member_t m[ETCD_MAX_MEMBERS];
  char cluster[512]; /* --initial-cluster */
  char uri[512];     /* etcd://... */
} etcd_cluster_t;

/* $ETCD_BIN, else the first etcd on $PATH. */
static inline const char *etcd_binary(void) {
  static char found[1024];
  const char *env = getenv("ETCD_BIN"), *path = getenv("PATH"), *p;

  if (env != NULL && access(env, X_OK) == 0)
    return env;
  for (p = path; p != NULL && *p != '\0';) {
    const char *colon = strchr(p, ':');
    size_t len = colon != NULL ? (size_t)(colon - p) : strlen(p);
    if (len > 0 && len < sizeof(found) - 6) {
      snprintf(found, sizeof(found), "%.*s/etcd", (int)len, p);
      if (access(found, X_OK) == 0)
        return found;
    }
    p = colon != NULL ? colon + 1 : NULL;
  }
  return NULL;
}

static inline int etcd_free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;

  cr_assert_geq(fd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

/* One blocking HTTP exchange with a deadline; true when the answer is 200. */
static inline bool etcd_http_ok(int port, const char *method,
                                const char *path, const char *body) {
  struct sockaddr_in sa;
  char req[512], resp[256];
  struct pollfd pfd;
  size_t got = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = false;

  if (fd < 0)
    return false;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    if (write(fd, req, (size_t)n) == n) {
      pfd.fd = fd;
      pfd.events = POLLIN;
      while (got < sizeof(resp) - 1 && poll(&pfd, 1, 2000) == 1) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0)
          break;
        got += (size_t)r;
      }
      resp[got] = '\0';
      ok = strncmp(resp, "HTTP/1.1 200", 12) == 0;
    }
  }
  close(fd);
  return ok;
}

static inline void etcd_spawn(etcd_cluster_t *c, size_t i, bool fresh) {
  etcd_member_t *m = &c->m[i];
  char name[16], client[64], peer[64];
  pid_t pid;

  snprintf(name, sizeof(name), "m%zu", i);
  snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
  snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    /* Gone with the test process, even if a timeout kills it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execl(etcd_binary(), "etcd", "--name", name, "--data-dir", m->dir,
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
          "--initial-cluster", c->cluster, "--initial-cluster-state",
          fresh ? "new" : "existing", "--initial-cluster-token", "msvc-test",
          (char *)NULL);
    _exit(127);
  }
  m->pid = pid;
}

/* Stops one member by PID (SIGKILL: the fault tests want a crash). */
static inline void etcd_kill(etcd_cluster_t *c, size_t i) {
  etcd_member_t *m = &c->m[i];

  if (m->pid > 0) {
    kill(m->pid, SIGKILL);
    waitpid(m->pid, NULL, 0);
    m->pid = 0;
  }
}

static inline void etcd_stop_all(etcd_cluster_t *c) {
  for (size_t i = 0; i < c->n; i++) {
    etcd_kill(c, i);
    if (c->m[i].dir[0] != '\0')
      fx_rmtree(c->m[i].dir);
    c->m[i].dir[0] = '\0';
  }
}

/* Until one member answers a range (the cluster has a leader). */
static inline bool etcd_wait_ready(etcd_cluster_t *c, size_t i,
                                   uint64_t timeout_ms) {
  uint64_t end = msvc_now_ms() + timeout_ms;

  while (msvc_now_ms() < end) {
    if (etcd_http_ok(c->m[i].client_port, "POST", "/v3/kv/range",
                     "{\"key\":\"AA==\"}"))
      return true;
    usleep(50 * 1000);
  }
  return false;
}

/* The cluster currently being run, so that a failed assertion (which
 * leaves the test function) still stops it: see etcd_atexit. */
static etcd_cluster_t *etcd_current;

static inline void etcd_atexit(void) {
  if (etcd_current != NULL)
    etcd_stop_all(etcd_current);
}

static inline void etcd_restart(etcd_cluster_t *c, size_t i) {
  etcd_spawn(c, i, false);
  cr_assert(etcd_wait_ready(c, i, 30000), "etcd member %zu came back", i);
}

static inline void etcd_start(etcd_cluster_t *c, size_t n) {
  const char *base = getenv("TMPDIR");
  size_t i, off = 0;
  static bool hooked;

  if (etcd_binary() == NULL)
    cr_skip_test("no etcd binary (install etcd-server): etcd tests skipped");
  memset(c, 0, sizeof(*c));
  c->n = n;
  etcd_current = c;
  if (!hooked)
    atexit(etcd_atexit);
  hooked = true;
  for (i = 0; i < n; i++) {
    etcd_member_t *m = &c->m[i];
    m->client_port = etcd_free_port();
    m->peer_port = etcd_free_port();
    snprintf(m->dir, sizeof(m->dir), "%s/msvc-etcd-test-XXXXXX",
             base != NULL && base[0] == '/' ? base : "/tmp");
    cr_assert_not_null(mkdtemp(m->dir));
    off += (size_t)snprintf(c->cluster + off, sizeof(c->cluster) - off,
                            "%sm%zu=http://127.0.0.1:%d", i ? "," : "", i,
                            m->peer_port);
  }
  off = (size_t)snprintf(c->uri, sizeof(c->uri), "etcd://");
  for (i = 0; i < n; i++)
    off += (size_t)snprintf(c->uri + off, sizeof(c->uri) - off, "%s127.0.0.1:%d",
                            i ? "," : "", c->m[i].client_port);
  for (i = 0; i < n; i++)
    etcd_spawn(c, i, true);
  for (i = 0; i < n; i++)
    cr_assert(etcd_wait_ready(c, i, 30000), "etcd member %zu is up", i);
}

static inline void etcd_finish(etcd_cluster_t *c) {
  etcd_stop_all(c);
  etcd_current = NULL;
}

#endif /* MSVC_TEST_REGISTRY_ETCD_FIXTURE_H */
