/* A nats-server with JetStream for one test: its own temporary store
 * directory, a free loopback port, started and stopped by PID. */
#ifndef MSVC_TEST_EVENTS_NATS_SERVER_H
#define MSVC_TEST_EVENTS_NATS_SERVER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

typedef struct natsd_s {
  pid_t pid;
  int port;
  int cluster_port;
  char dir[256];
  char uri[64];
} natsd_t;

static inline void natsd_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static inline int natsd_free_port(void) {
  struct sockaddr_in a = {0};
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;

  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static inline bool natsd_available(void) {
  return system("command -v nats-server >/dev/null 2>&1") == 0;
}

static inline bool natsd_accepts(int port) {
  struct sockaddr_in a = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok;

  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* Starts (or restarts, same port and store) the server; extra arguments
 * (NULL-terminated, at most 8) go at the end of its command line. */
static inline void natsd_start_args(natsd_t *s, const char *const *extra) {
  char port[16];
  const char *argv[24];
  int n = 0;

  snprintf(port, sizeof(port), "%d", s->port);
  argv[n++] = "nats-server";
  argv[n++] = "-js";
  argv[n++] = "-sd";
  argv[n++] = s->dir;
  argv[n++] = "-p";
  argv[n++] = port;
  argv[n++] = "-a";
  argv[n++] = "127.0.0.1";
  for (int i = 0; extra != NULL && extra[i] != NULL && i < 12; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  s->pid = fork();
  cr_assert_geq(s->pid, 0);
  if (s->pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execvp("nats-server", (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 500 && !natsd_accepts(s->port); i++)
    natsd_sleep_ms(10);
  cr_assert(natsd_accepts(s->port), "nats-server did not start on %d", s->port);
}

static inline void natsd_start(natsd_t *s) {
  natsd_start_args(s, NULL);
}

static inline void natsd_init(natsd_t *s) {
  const char *base = getenv("TMPDIR");

  memset(s, 0, sizeof(*s));
  snprintf(s->dir, sizeof(s->dir), "%s/msvc-natsd-XXXXXX", base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(s->dir));
  s->port = natsd_free_port();
  snprintf(s->uri, sizeof(s->uri), "nats://127.0.0.1:%d", s->port);
}

static inline void natsd_kill(natsd_t *s, int sig) {
  if (s->pid <= 0)
    return;
  kill(s->pid, sig);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

static inline int natsd_rm(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  return remove(path);
}

static inline void natsd_stop(natsd_t *s) {
  natsd_kill(s, SIGTERM);
  nftw(s->dir, natsd_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Publishes body on subject as a plain client would, in NATS' text
 * protocol (no envelope, no JetStream acknowledgement): what a foreign or
 * broken producer puts on the wire. Waits for the server's PONG, so the
 * message has been routed (and stored by a stream that takes the subject). */
static inline void natsd_raw_publish(const natsd_t *s, const char *subject, const char *body) {
  struct sockaddr_in a = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  char out[512], in[4096];
  size_t got = 0;
  int n;

  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)s->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  n = snprintf(out, sizeof(out),
               "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPUB %s %zu\r\n%s\r\nPING\r\n",
               subject, strlen(body), body);
  cr_assert(n > 0 && (size_t)n < sizeof(out));
  cr_assert_eq(write(fd, out, (size_t)n), n);
  while (got < sizeof(in) - 1) {
    ssize_t r = read(fd, in + got, sizeof(in) - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
    in[got] = '\0';
    if (strstr(in, "PONG") != NULL)
      break;
  }
  close(fd);
  cr_assert(got > 0 && strstr(in, "PONG") != NULL, "no PONG from nats-server: %.*s", (int)got,
            in);
}

#endif /* MSVC_TEST_EVENTS_NATS_SERVER_H */
