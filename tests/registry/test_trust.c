/* Who may steer discovery through the local backend: only the user the
 * process runs as. A directory or instance file that someone else owns or
 * can write is refused, loudly, and never reaches a caller. Also: a read
 * or a write that fails must never make discovery smaller than the truth.
 *
 * The tests that give files to another user need root (chown to 65534). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <msvc/service.h>

#include "fixture.h"

#define NOBODY 65534

static void need_root(void) {
  if (geteuid() != 0)
    cr_skip_test("needs root to give files to another user");
}

static void put(const char *dir, const char *name, const char *text,
                mode_t mode) {
  char path[600];
  int fd;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  cr_assert_eq(fchmod(fd, mode), 0);
  close(fd);
}

/* An instance file as a live writer would leave it. */
static void put_instance(const char *sdir, const char *service,
                         const char *id, int port, mode_t mode) {
  char name[64], text[512];

  snprintf(name, sizeof(name), "%s.json", id);
  snprintf(text, sizeof(text),
           "{\"id\":\"%s\",\"service\":\"%s\",\"address\":\"127.0.0.1\","
           "\"port\":%d,\"ttl_ms\":600000,\"heartbeat_ms\":%llu}\n",
           id, service, port, (unsigned long long)msvc_wall_ms());
  put(sdir, name, text, mode);
}

static int open_status(const char *dir, char *why, size_t whylen) {
  char uri[600];
  uv_loop_t loop;
  msvc_registry_t *reg = NULL;
  int rc;

  snprintf(uri, sizeof(uri), "local://%s", dir);
  cr_assert_eq(uv_loop_init(&loop), 0);
  rc = msvc_registry_new(&loop, uri, NULL, &reg);
  if (rc == MSVC_OK)
    msvc_registry_close(reg, NULL, NULL);
  else
    cr_assert_null(reg);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  if (why != NULL)
    msvc_registry_check_uri(uri, why, whylen);
  return rc;
}

/* ---- the directory ------------------------------------------------------- */

Test(trust, default_directory_is_private_and_per_user) {
  char want[400], *uri = NULL;
  uv_loop_t loop;
  msvc_registry_t *reg;
  struct stat st;
  fx_t f;

  fx_mkdtemp(&f);
  unsetenv("XDG_RUNTIME_DIR");
  unsetenv("MSVC_REGISTRY");
  setenv("TMPDIR", f.dir, 1);
  snprintf(want, sizeof(want), "local://%s/msvc-%lu", f.dir,
           (unsigned long)geteuid());
  cr_assert_eq(msvc_registry_default_uri(&uri), 0);
  cr_assert_str_eq(uri, want);
  msvc_free(uri);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_registry_new(&loop, NULL, NULL, &reg), 0);
  msvc_registry_close(reg, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  cr_assert_eq(lstat(want + strlen("local://"), &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  cr_assert_eq(st.st_mode & 07777, 0700);
  cr_assert_eq(st.st_uid, geteuid());
  unsetenv("TMPDIR");
  fx_rmtree(f.dir);
}

/* The attack: another user creates the default directory first (0755,
 * theirs) to plant instances in it. */
Test(trust, planted_default_directory_is_refused) {
  char planted[400], why[768];
  uv_loop_t loop;
  msvc_registry_t *reg;
  fx_t f;

  need_root();
  fx_mkdtemp(&f);
  unsetenv("XDG_RUNTIME_DIR");
  unsetenv("MSVC_REGISTRY");
  setenv("TMPDIR", f.dir, 1);
  snprintf(planted, sizeof(planted), "%s/msvc-%lu", f.dir,
           (unsigned long)geteuid());
  cr_assert_eq(mkdir(planted, 0755), 0);
  cr_assert_eq(chown(planted, NOBODY, NOBODY), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_registry_new(&loop, NULL, NULL, &reg), MSVC_EACCES);
  cr_assert_null(reg);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  cr_assert_eq(open_status(planted, why, sizeof(why)), MSVC_EACCES);
  cr_assert_not_null(strstr(why, planted), "names the directory: %s", why);
  cr_assert_not_null(strstr(why, "owned by uid 65534"), "says why: %s", why);
  cr_assert_null(strchr(why, '\n'), "one line");
  msvc_log_reset();
  unsetenv("TMPDIR");
  fx_rmtree(f.dir);
}

Test(trust, directory_of_another_user_is_refused_whatever_its_mode) {
  static const mode_t modes[] = {0700, 0755, 0777};
  char dir[400];
  size_t i;
  fx_t f;

  need_root();
  fx_mkdtemp(&f);
  snprintf(dir, sizeof(dir), "%s/theirs", f.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  cr_assert_eq(chown(dir, NOBODY, NOBODY), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    cr_assert_eq(chmod(dir, modes[i]), 0);
    cr_assert_eq(open_status(dir, NULL, 0), MSVC_EACCES, "mode %o",
                 (unsigned)modes[i]);
  }
  msvc_log_reset();
  fx_rmtree(f.dir);
}

Test(trust, own_directory_writable_by_others_is_refused) {
  static const mode_t bad[] = {0770, 0707, 0777, 01777};
  char dir[400], why[768];
  size_t i;
  fx_t f;

  fx_mkdtemp(&f);
  snprintf(dir, sizeof(dir), "%s/mine", f.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cr_assert_eq(chmod(dir, bad[i]), 0);
    cr_assert_eq(open_status(dir, why, sizeof(why)), MSVC_EACCES, "mode %o",
                 (unsigned)bad[i]);
    cr_assert_not_null(strstr(why, "write into it"), "%s", why);
  }
  /* Readable by others is not a way to redirect anyone: accepted. */
  cr_assert_eq(chmod(dir, 0755), 0);
  cr_assert_eq(open_status(dir, NULL, 0), MSVC_OK);
  msvc_log_reset();
  fx_rmtree(f.dir);
}

Test(trust, symbolic_link_and_replaceable_parent_are_refused) {
  char real[400], link[400], open_parent[400], below[500], why[768];
  fx_t f;

  fx_mkdtemp(&f);
  snprintf(real, sizeof(real), "%s/real", f.dir);
  snprintf(link, sizeof(link), "%s/link", f.dir);
  cr_assert_eq(mkdir(real, 0700), 0);
  cr_assert_eq(symlink(real, link), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(open_status(link, why, sizeof(why)), MSVC_EACCES);
  cr_assert_not_null(strstr(why, "symbolic link"), "%s", why);
  cr_assert_eq(open_status(real, NULL, 0), MSVC_OK);
  /* A parent anyone may write to (no sticky bit) lets anyone swap the
   * directory; a sticky one (like /tmp) does not. */
  snprintf(open_parent, sizeof(open_parent), "%s/open", f.dir);
  snprintf(below, sizeof(below), "%s/reg", open_parent);
  cr_assert_eq(mkdir(open_parent, 0700), 0);
  cr_assert_eq(chmod(open_parent, 0777), 0);
  cr_assert_eq(open_status(below, why, sizeof(why)), MSVC_EACCES);
  cr_assert_not_null(strstr(why, open_parent), "%s", why);
  cr_assert_eq(chmod(open_parent, 01777), 0);
  cr_assert_eq(open_status(below, NULL, 0), MSVC_OK);
  msvc_log_reset();
  fx_rmtree(f.dir);
}

static void on_lease_status(msvc_registry_lease_t *l, int status, void *data) {
  (void)l;
  *(int *)data = status == 0 ? 1 : status;
}

static bool int_nonzero(void *arg) {
  return *(int *)arg != 0;
}

/* Checked at every operation, not only at open: a directory made unsafe
 * later (or a service directory someone else made) is refused then. */
Test(trust, unsafe_later_or_below_is_refused_at_the_operation, .timeout = 30) {
  msvc_registry_instance_t in;
  char sdir[400];
  int st = 0, st2 = 0; /* one per lease: the first heals later */
  fx_t f;

  fx_open(&f, NULL, NULL);
  msvc_log_set_level(MSVC_LOG_OFF);
  msvc_registry_instance_init(&in);
  in.service = "late";
  in.address = "127.0.0.1";
  in.port = 5;
  cr_assert_eq(chmod(f.dir, 0777), 0);
  cr_assert_eq(msvc_registry_register(f.reg, &in, 60000, on_lease_status, &st,
                                      NULL), 0);
  cr_assert(fx_run_until(&f, int_nonzero, &st, 5000));
  cr_assert_eq(st, MSVC_EACCES);
  cr_assert_eq(msvc_registry_watch(f.reg, "late", seen_cb, &(seen_t){0, NULL},
                                   NULL), MSVC_EACCES);
  cr_assert_eq(chmod(f.dir, 0700), 0);
  snprintf(sdir, sizeof(sdir), "%s/open", f.dir);
  cr_assert_eq(mkdir(sdir, 0700), 0);
  cr_assert_eq(chmod(sdir, 0777), 0);
  cr_assert_eq(msvc_registry_watch(f.reg, "open", seen_cb, &(seen_t){0, NULL},
                                   NULL), MSVC_EACCES);
  /* A service directory that is a link to somewhere else. */
  char elsewhere[400], link[400];
  snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", f.dir);
  snprintf(link, sizeof(link), "%s/linked", f.dir);
  cr_assert_eq(mkdir(elsewhere, 0700), 0);
  cr_assert_eq(symlink(elsewhere, link), 0);
  cr_assert_eq(msvc_registry_watch(f.reg, "linked", seen_cb,
                                   &(seen_t){0, NULL}, NULL), MSVC_EACCES);
  in.service = "linked";
  cr_assert_eq(msvc_registry_register(f.reg, &in, 60000, on_lease_status, &st2,
                                      NULL), 0);
  cr_assert(fx_run_until(&f, int_nonzero, &st2, 5000));
  cr_assert_eq(st2, MSVC_EACCES);
  msvc_log_reset();
  fx_close(&f);
}

/* ---- instance files ------------------------------------------------------ */

typedef struct warn_s {
  int warnings;
} warn_t;

static void count_warnings(void *data, msvc_log_level_t level,
                           const char *line, size_t len) {
  (void)line;
  (void)len;
  if (level >= MSVC_LOG_WARN)
    ((warn_t *)data)->warnings++;
}

typedef struct got_s {
  int calls;
  int status;
  size_t count;
} got_t;

static void on_resolved(int status, msvc_registry_set_t *set, void *data) {
  got_t *g = data;

  g->calls++;
  g->status = status;
  g->count = set != NULL ? msvc_registry_set_count(set) : 0;
}

Test(trust, foreign_or_writable_instance_files_never_reach_discovery,
     .timeout = 30) {
  char sdir[400], path[500];
  msvc_registry_instance_t in;
  seen_t seen = {0, NULL};
  want_t want = {&seen, 1};
  warn_t cap = {0};
  got_t got = {0, 0, 0};
  int ok = 0;
  fx_t f;

  need_root();
  fx_open(&f, NULL, NULL);
  msvc_log_set_sink(count_warnings, &cap);
  msvc_registry_instance_init(&in);
  in.id = "real";
  in.service = "user-service";
  in.address = "127.0.0.1";
  in.port = 5;
  cr_assert_eq(msvc_registry_register(f.reg, &in, 60000, on_lease_status, &ok,
                                      NULL), 0);
  cr_assert(fx_run_until(&f, int_nonzero, &ok, 5000));
  cr_assert_eq(ok, 1);
  snprintf(sdir, sizeof(sdir), "%s/user-service", f.dir);
  /* Well-formed and alive, but someone else's, or open to everyone. */
  put_instance(sdir, "user-service", "theirs", 6666, 0600);
  snprintf(path, sizeof(path), "%s/theirs.json", sdir);
  cr_assert_eq(chown(path, NOBODY, NOBODY), 0);
  put_instance(sdir, "user-service", "open", 7777, 0666);
  put_instance(sdir, "user-service", "group", 8888, 0620);
  cr_assert_eq(msvc_registry_watch(f.reg, "user-service", seen_cb, &seen, NULL),
               0);
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  /* ... and it stays that way. */
  fx_run_until(&f, want_count, &(want_t){&seen, 99}, 300);
  cr_assert_eq(msvc_registry_set_count(seen.last), 1);
  cr_assert_eq(msvc_registry_set_at(seen.last, 0)->port, 5);
  cr_assert_geq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_WATCH), 3,
                "each refused file counts (%llu)",
                (unsigned long long)msvc_registry_errors(
                    f.reg, MSVC_REGISTRY_OP_WATCH));
  cr_assert_eq(cap.warnings, 3, "each file logged once (%d)", cap.warnings);
  /* A one-off resolve refuses them too. */
  cr_assert_eq(msvc_registry_resolve(f.reg, "user-service", on_resolved, &got),
               0);
  cr_assert(fx_run_until(&f, int_positive, &got.calls, 5000));
  cr_assert_eq(got.status, 0);
  cr_assert_eq(got.count, 1);
  cr_assert_eq(msvc_registry_errors(f.reg, MSVC_REGISTRY_OP_RESOLVE), 3);
  /* A file of ours that becomes writable by others is dropped at once. */
  snprintf(path, sizeof(path), "%s/real.json", sdir);
  msvc__reg_lease_freeze(
      msvc__container_of(f.reg->leases.next, msvc_registry_lease_t, node));
  cr_assert_eq(chmod(path, 0646), 0);
  want.count = 0;
  msvc__reg_watch_poke(
      msvc__container_of(f.reg->watches.next, msvc_registry_watch_t, node));
  cr_assert(fx_run_until(&f, want_count, &want, 5000));
  msvc_log_reset();
  seen_clear(&seen);
  fx_close(&f);
}

/* ---- the service refuses to start ---------------------------------------- */

Test(trust, service_with_planted_registry_directory_does_not_start) {
  char planted[400], uri[500], err[1024];
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  uv_loop_t loop;
  fx_t f;

  need_root();
  fx_mkdtemp(&f);
  unsetenv("XDG_RUNTIME_DIR");
  unsetenv("MSVC_REGISTRY");
  setenv("TMPDIR", f.dir, 1);
  snprintf(planted, sizeof(planted), "%s/msvc-%lu", f.dir,
           (unsigned long)geteuid());
  cr_assert_eq(mkdir(planted, 0755), 0);
  cr_assert_eq(chown(planted, NOBODY, NOBODY), 0);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_service_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.handle_signals = false;
  /* The default location, as every service without MSVC_REGISTRY uses. */
  cr_assert_eq(msvc_service_new(&loop, "user-service", &o, &svc, err,
                                sizeof(err)),
               MSVC_ECONFIG);
  cr_assert_null(svc);
  cr_assert_not_null(strstr(err, planted), "%s", err);
  cr_assert_not_null(strstr(err, "owned by uid 65534"), "%s", err);
  cr_assert_null(strchr(err, '\n'));
  /* Named in the environment: the same. */
  snprintf(uri, sizeof(uri), "local://%s", planted);
  setenv("MSVC_REGISTRY", uri, 1);
  cr_assert_eq(msvc_service_new(&loop, "user-service", &o, &svc, err,
                                sizeof(err)),
               MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "MSVC_REGISTRY"), "%s", err);
  unsetenv("MSVC_REGISTRY");
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_log_reset();
  unsetenv("TMPDIR");
  fx_rmtree(f.dir);
}

static void on_ready_status(msvc_service_t *svc, int status, void *data) {
  (void)svc;
  *(int *)data = status == 0 ? 1 : status;
}

/* A registration refused at start (here: the directory cannot be written)
 * fails the start; the service does not keep serving unfindable. */
Test(trust, refused_first_registration_fails_the_start, .timeout = 30) {
  char uri[400], err[512];
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  uv_loop_t loop;
  int ready = 0, rc;
  fx_t f;

  fx_mkdtemp(&f);
  snprintf(uri, sizeof(uri), "local://%s", f.dir);
  msvc_log_set_level(MSVC_LOG_OFF);
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_service_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.handle_signals = false;
  o.registry_uri = uri;
  o.on_ready = on_ready_status;
  o.data = &ready;
  cr_assert_eq(msvc_service_new(&loop, "ro-service", &o, &svc, err,
                                sizeof(err)),
               0, "%s", err);
  atomic_store(&msvc__reg_local_faults.write, -EROFS);
  uint64_t t0 = msvc_now_ms();
  rc = msvc_service_run(svc);
  atomic_store(&msvc__reg_local_faults.write, 0);
  cr_assert_eq(rc, -EROFS, "run returned %d", rc);
  cr_assert_eq(ready, -EROFS, "on_ready told %d", ready);
  cr_assert_lt(msvc_now_ms() - t0, 5000);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  msvc_log_reset();
  fx_rmtree(f.dir);
}
