/* The local backend across processes, and its handling of a directory that
 * other people (and other programs) can put things into. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fixture.h"

typedef struct child_s {
  pid_t pid;
  int out;
} child_t;

static child_t spawn(const char *uri, const char *service, int count,
                     int ttl_ms) {
  char n[16], t[16];
  child_t c;
  int p[2];

  snprintf(n, sizeof(n), "%d", count);
  snprintf(t, sizeof(t), "%d", ttl_ms);
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  c.pid = fork();
  cr_assert_geq(c.pid, 0);
  if (c.pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    execl(REGISTRY_CHILD, REGISTRY_CHILD, uri, service, n, t, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  c.out = p[0];
  return c;
}

static void wait_ready(child_t *c) {
  struct pollfd pfd = {c->out, POLLIN, 0};
  char buf[16] = "";

  cr_assert_eq(poll(&pfd, 1, 10000), 1, "child never became ready");
  cr_assert_gt(read(c->out, buf, sizeof(buf) - 1), 0);
  cr_assert_eq(strncmp(buf, "ready", 5), 0, "child said %s", buf);
}

static void kill_child(child_t *c) {
  int status;

  kill(c->pid, SIGKILL);
  cr_assert_eq(waitpid(c->pid, &status, 0), c->pid);
  cr_assert(WIFSIGNALED(status));
  close(c->out);
}

Test(local, sigkilled_process_is_gone_within_one_ttl, .timeout = 30) {
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1};
  child_t child;
  uint64_t t0, took;
  fx_t f;

  fx_open(&f, NULL, NULL);
  child = spawn(f.uri, "victim", 1, 300);
  wait_ready(&child);
  cr_assert_eq(msvc_registry_watch(f.reg, "victim", seen_cb, &seen, NULL), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  kill_child(&child);
  t0 = msvc_now_ms();
  want.count = 0;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  took = msvc_now_ms() - t0;
  /* Heartbeat every 100 ms, TTL 300 ms: gone at most 300 ms after the
   * last heartbeat; the rest is scheduling slack on a busy machine. */
  cr_assert_leq(took, 300 + 200, "gone after %llu ms", (unsigned long long)took);
  seen_clear(&seen);
  fx_close(&f);
}

Test(local, two_processes_register_concurrently, .timeout = 60) {
  seen_t seen = {0, NULL};
  want_t want = {&seen, 40};
  child_t a, b;
  fx_t f;

  fx_open(&f, NULL, NULL);
  cr_assert_eq(msvc_registry_watch(f.reg, "crowd", seen_cb, &seen, NULL), 0);
  /* A TTL long enough that a child starved of CPU for a few hundred
   * milliseconds (sanitizer builds on a busy machine) still heartbeats in
   * time: this test is about two writers, not about expiry. */
  a = spawn(f.uri, "crowd", 20, 1500);
  b = spawn(f.uri, "crowd", 20, 1500);
  wait_ready(&a);
  wait_ready(&b);
  cr_assert(fx_run_until(&f, want_count, &want, 10000), "saw %zu",
            msvc_registry_set_count(seen.last));
  /* Both keep heartbeating for a few TTLs without a flap. */
  int calls = seen.calls;
  fx_run_until(&f, want_count, &(want_t){&seen, 999}, 3000);
  cr_assert_eq(seen.calls, calls,
               "no change while both are alive (now %zu instances%s)",
               msvc_registry_set_count(seen.last),
               msvc_registry_set_stale(seen.last) ? ", stale" : "");
  kill_child(&a);
  want.count = 20;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  kill_child(&b);
  want.count = 0;
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  seen_clear(&seen);
  fx_close(&f);
}

typedef struct logcap_s {
  int warnings;
} logcap_t;

static void log_sink(void *data, msvc_log_level_t level, const char *line,
                     size_t len) {
  (void)line;
  (void)len;
  if (level >= MSVC_LOG_WARN)
    ((logcap_t *)data)->warnings++;
}

static void put_file(const char *dir, const char *name, const char *text) {
  char path[600];
  FILE *fp;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  fp = fopen(path, "w");
  cr_assert_not_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static void on_ok(msvc_registry_lease_t *l, int status, void *data) {
  (void)l;
  cr_assert_eq(status, 0);
  (*(int *)data)++;
}

Test(local, corrupt_and_foreign_files_are_skipped_and_logged, .timeout = 30) {
  char sdir[400], path[600];
  msvc_registry_instance_t in;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1};
  logcap_t cap = {0};
  int ok = 0;
  fx_t f;

  fx_open(&f, NULL, NULL);
  msvc_log_set_sink(log_sink, &cap);
  snprintf(sdir, sizeof(sdir), "%s/mixed", f.dir);
  cr_assert_eq(mkdir(sdir, 0700), 0);
  put_file(sdir, "garbage.json", "{not json");
  put_file(sdir, "empty.json", "");
  put_file(sdir, "notes.txt", "hello");
  put_file(sdir, "other.json",
           "{\"id\":\"other\",\"service\":\"elsewhere\",\"address\":\"h\","
           "\"port\":1,\"ttl_ms\":999999999,\"heartbeat_ms\":1}");
  put_file(sdir, "nottl.json",
           "{\"id\":\"nottl\",\"service\":\"mixed\",\"address\":\"h\","
           "\"port\":1}");
  snprintf(path, sizeof(path), "%s/fifo.json", sdir);
  cr_assert_eq(mkfifo(path, 0600), 0);
  snprintf(path, sizeof(path), "%s/adir.json", sdir);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/link.json", sdir);
  cr_assert_eq(symlink("/etc/passwd", path), 0);

  msvc_registry_instance_init(&in);
  in.service = "mixed";
  in.address = "h";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 5000, on_ok, &ok, NULL), 0);
  cr_assert_eq(msvc_registry_watch(f.reg, "mixed", seen_cb, &seen, NULL), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  cr_assert_eq(msvc_registry_set_at(seen.last, 0)->port, 5);
  cr_assert_geq(cap.warnings, 8, "each bad file is logged (%d)", cap.warnings);
  /* ... once, not at every rescan. */
  int before = cap.warnings;
  msvc__reg_watch_poke(msvc__container_of(f.reg->watches.next,
                                          msvc_registry_watch_t, node));
  fx_run_until(&f, want_count, &(want_t){&seen, 99}, 100);
  cr_assert_eq(cap.warnings, before);
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

Test(local, files_hold_ttl_and_heartbeat_and_are_rewritten, .timeout = 30) {
  char path[600], buf[2048];
  msvc_registry_instance_t in;
  msvc_registry_lease_t *lease;
  struct stat st;
  int ok = 0, fd;
  ssize_t n;
  uint32_t ttl;
  uint64_t beat1, beat2;
  msvc_registry_instance_t out;
  fx_t f;

  fx_open(&f, NULL, NULL);
  msvc_registry_instance_init(&in);
  in.id = "me";
  in.service = "files";
  in.address = "h";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 150, on_ok, &ok, &lease), 0);
  cr_assert(fx_run_until(&f, int_positive, &ok, 5000));
  snprintf(path, sizeof(path), "%s/files", f.dir);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700, "service directory is private");
  cr_assert_eq(stat(f.dir, &st), 0);
  snprintf(path, sizeof(path), "%s/files/me.json", f.dir);
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);

  fd = open(path, O_RDONLY);
  n = read(fd, buf, sizeof(buf));
  close(fd);
  cr_assert_gt(n, 0);
  cr_assert_eq(msvc__reg_instance_from_json(buf, (size_t)n, &out, &ttl, &beat1),
               0);
  msvc__reg_instance_clear(&out);
  cr_assert_eq(ttl, 150);
  uint64_t t0 = msvc_now_ms();
  while (msvc_now_ms() - t0 < 200)
    fx_run_until(&f, int_positive, &(int){0}, 20);
  fd = open(path, O_RDONLY);
  n = read(fd, buf, sizeof(buf));
  close(fd);
  cr_assert_eq(msvc__reg_instance_from_json(buf, (size_t)n, &out, &ttl, &beat2),
               0);
  msvc__reg_instance_clear(&out);
  cr_assert_gt(beat2, beat1, "heartbeat rewrote the file");
  msvc_registry_deregister(lease, NULL, NULL);
  cr_assert_neq(stat(path, &st), 0, "removed at once");
  fx_close(&f);
}

Test(local, unreadable_service_keeps_last_set_as_stale, .timeout = 30) {
  char sdir[400], moved[400];
  msvc_registry_opts_t o;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1};
  int ok = 0;
  msvc_registry_instance_t in;
  fx_t f;

  msvc_registry_opts_init(&o);
  o.rescan_ms = 50;
  o.retry_min_ms = 20;
  o.retry_max_ms = 40;
  fx_open(&f, NULL, &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  msvc_registry_instance_init(&in);
  in.service = "flaky";
  in.address = "h";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 60000, on_ok, &ok, NULL), 0);
  cr_assert_eq(msvc_registry_watch(f.reg, "flaky", seen_cb, &seen, NULL), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  /* The service's directory turns into something unreadable as one. */
  snprintf(sdir, sizeof(sdir), "%s/flaky", f.dir);
  snprintf(moved, sizeof(moved), "%s/flaky.moved", f.dir);
  cr_assert_eq(rename(sdir, moved), 0);
  put_file(f.dir, "flaky", "not a directory");
  seen.calls = 0;
  cr_assert(fx_run_until(&f, int_positive, &seen.calls, 5000));
  cr_assert(msvc_registry_set_stale(seen.last));
  cr_assert_eq(msvc_registry_set_count(seen.last), 1, "not emptied");
  cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 0);
  /* Back: fresh again. */
  cr_assert_eq(unlink(sdir), 0);
  cr_assert_eq(rename(moved, sdir), 0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

Test(local, refuses_world_writable_directory_of_another_user) {
  char dir[300], uri[400];
  uv_loop_t loop;
  msvc_registry_t *reg;
  fx_t f;

  if (geteuid() != 0)
    cr_skip_test("needs root to give a directory to another user");
  fx_mkdtemp(&f);
  snprintf(dir, sizeof(dir), "%s/shared", f.dir);
  cr_assert_eq(mkdir(dir, 0777), 0);
  cr_assert_eq(chmod(dir, 0777), 0);
  cr_assert_eq(chown(dir, 65534, 65534), 0);
  snprintf(uri, sizeof(uri), "local://%s", dir);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(msvc_registry_new(&loop, uri, NULL, &reg), MSVC_EACCES);
  cr_assert_eq(chmod(dir, 0700), 0);
  cr_assert_eq(msvc_registry_new(&loop, uri, NULL, &reg), MSVC_EACCES,
               "private to another user: still not ours");
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_log_reset();
  fx_rmtree(f.dir);
}

Test(local, creates_missing_directories_private) {
  char dir[400], uri[500];
  struct stat st;
  uv_loop_t loop;
  msvc_registry_t *reg;
  fx_t f;

  fx_mkdtemp(&f);
  snprintf(dir, sizeof(dir), "%s/a/b/c", f.dir);
  snprintf(uri, sizeof(uri), "local://%s/", dir);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_registry_new(&loop, uri, NULL, &reg), 0);
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700);
  msvc_registry_close(reg, NULL, NULL);
  put_file(f.dir, "file", "x");
  snprintf(uri, sizeof(uri), "local://%s/file", f.dir);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(msvc_registry_new(&loop, uri, NULL, &reg), -ENOTDIR);
  cr_assert_null(reg);
  msvc_log_reset();
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  fx_rmtree(f.dir);
}

typedef struct states_s {
  int calls;
  int last;
  int failures;
} states_t;

static void on_state(msvc_registry_lease_t *l, int status, void *data) {
  states_t *s = data;

  (void)l;
  s->calls++;
  s->last = status;
  if (status != 0)
    s->failures++;
}

static bool failed_once(void *arg) {
  return ((states_t *)arg)->failures > 0;
}

static bool healthy_again(void *arg) {
  states_t *s = arg;
  return s->failures > 0 && s->last == 0;
}

Test(local, failing_heartbeats_are_retried_and_reported, .timeout = 30) {
  char sdir[400], moved[400];
  msvc_registry_opts_t o;
  msvc_registry_instance_t in;
  states_t st = {0, 0, 0};
  fx_t f;

  msvc_registry_opts_init(&o);
  o.retry_min_ms = 10;
  o.retry_max_ms = 40;
  fx_open(&f, NULL, &o);
  msvc_log_set_level(MSVC_LOG_OFF);
  msvc_registry_instance_init(&in);
  in.service = "wobbly";
  in.address = "h";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 90, on_state, &st, NULL), 0);
  cr_assert(fx_run_until(&f, int_positive, &st.calls, 5000));
  cr_assert_eq(st.last, 0);
  /* Heartbeats cannot be written while the directory is a file. */
  snprintf(sdir, sizeof(sdir), "%s/wobbly", f.dir);
  snprintf(moved, sizeof(moved), "%s/wobbly.moved", f.dir);
  cr_assert_eq(rename(sdir, moved), 0);
  put_file(f.dir, "wobbly", "in the way");
  cr_assert(fx_run_until(&f, failed_once, &st, 5000));
  cr_assert_eq(st.calls, 2, "one report for the change to failing");
  cr_assert_gt(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_HEARTBEAT), 0);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_REGISTER), 0);
  /* Once the way is clear the lease heals itself, without a new register. */
  cr_assert_eq(unlink(sdir), 0);
  cr_assert(fx_run_until(&f, healthy_again, &st, 5000));
  cr_assert_eq(st.calls, 3);
  msvc_log_reset();
  fx_close(&f);
}
