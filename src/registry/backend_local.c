/* local:///dir -- every process of one machine shares a directory:
 *
 *   <dir>/<service>/<id>.json
 *
 * Each file is the instance's JSON plus "ttl_ms" and "heartbeat_ms" (wall
 * clock). It is rewritten atomically (temporary file in the same directory,
 * then rename) when the instance registers and at every heartbeat, so a
 * reader never sees half a file.
 *
 * Why the heartbeat time is stored in the file rather than taken from its
 * mtime: the reader has to open the file anyway (for the TTL, which differs
 * per instance), the time then arrives atomically with the content it
 * belongs to, and it cannot be changed behind our back by tools that touch
 * or copy files (touch, rsync -a, backup restores), which would make a dead
 * instance look alive. The cost is that writers and readers must agree on
 * the wall clock, which on one machine they do.
 *
 * An instance whose heartbeat is older than its TTL is dead; the first
 * reader that notices removes the file. A reader can race a heartbeat that
 * lands between its read and its unlink; the owner then re-creates the file
 * at its next heartbeat (TTL/3 later), so the instance is missed briefly
 * rather than lost.
 *
 * Full scans (resolve, periodic rescans) run on libuv's thread pool: a
 * service of 1,000 instances takes tens of milliseconds to read, which the
 * loop must not spend. A watch applies single-file changes on the loop; the
 * names it saw change while a scan was running are re-read after the scan,
 * so the scan's older view cannot undo them.
 *
 * Trust. Whoever can write into the directory decides where callers send
 * their requests (and with them passwords and tokens), so the directory is
 * private to the user the process runs as: created 0700, and refused when
 * it is a symbolic link, owned by someone else, or writable by group or
 * others. The check is repeated (on an open descriptor, without following
 * links) at every operation, not only at open time. An instance file owned
 * by someone else or writable by others is refused in the same way: it
 * never reaches a caller, it is logged once and counted as an error.
 *
 * Availability. A read that fails (too many open files, I/O error) fails
 * the whole scan, and the core then keeps the last known set; skipping the
 * unreadable files instead would publish a smaller set than the truth. A
 * late heartbeat proves an instance dead only if its owner could have
 * written one: while the directory's filesystem is full or read-only the
 * instance is kept, not removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <msvc/log.h>

#include "registry/registry-internal.h"

#define BAD_MEMORY 256           /* files already complained about */
#define TMP_MAX_AGE_S 60         /* leftovers of writers that died mid-write */

typedef struct local_backend_s {
  msvc__reg_backend_t base;
  char *dir;
  uv_mutex_t bad_lock; /* scans run on pool threads */
  char *bad[BAD_MEMORY];
  size_t nbad;
} local_backend_t;

msvc__reg_local_faults_t msvc__reg_local_faults;

static char *path_of(const local_backend_t *lb, const char *service,
                     const char *name) {
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, lb->dir);
  if (service != NULL)
    msvc__buf_printf(&b, "/%s", service);
  if (name != NULL)
    msvc__buf_printf(&b, "/%s", name);
  return msvc__buf_detach(&b, NULL);
}

/* Whether a problem is new to this backend: each is logged once, not at
 * every rescan. */
static bool first_time(local_backend_t *lb, const char *key) {
  char *copy;
  size_t i;

  uv_mutex_lock(&lb->bad_lock);
  for (i = 0; i < lb->nbad; i++) {
    if (strcmp(lb->bad[i], key) == 0) {
      uv_mutex_unlock(&lb->bad_lock);
      return false;
    }
  }
  /* Out of memory: the message is logged again next time, nothing worse. */
  if (lb->nbad < BAD_MEMORY && (copy = msvc__strdup(key)) != NULL)
    lb->bad[lb->nbad++] = copy;
  uv_mutex_unlock(&lb->bad_lock);
  return true;
}

static void complain(local_backend_t *lb, const char *service,
                     const char *name, const char *why) {
  char key[2 * MSVC_REGISTRY_NAME_MAX + 300];

  snprintf(key, sizeof(key), "%s/%s", service, name);
  if (first_time(lb, key))
    MSVC_LOG_W(MSVC__REG_COMPONENT, "skipping %s/%s: %s", lb->dir, key, why);
}

/* service NULL: the registry directory itself. */
static int refuse_dir(local_backend_t *lb, const char *service,
                      const char *why) {
  char key[MSVC_REGISTRY_NAME_MAX + 8];

  snprintf(key, sizeof(key), "%s/", service != NULL ? service : "");
  if (first_time(lb, key))
    MSVC_LOG_E(MSVC__REG_COMPONENT, "registry directory %s%s%s refused: %s",
               lb->dir, service != NULL ? "/" : "", service != NULL ? service : "",
               why);
  return MSVC_EACCES;
}

/* Opens a directory without following a symbolic link (refused as
 * MSVC_EACCES) and checks that it is this user's alone. */
static int open_private_dir(local_backend_t *lb, int at, const char *name,
                            const char *service) {
  char buf[160];
  const char *bad;
  struct stat st;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int rc;

  if (fd < 0) {
    rc = -errno;
    /* Linux says ENOTDIR (with O_DIRECTORY) or ELOOP for a link. */
    if ((rc == -ENOTDIR || rc == -ELOOP) &&
        fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
      return refuse_dir(lb, service, "it is a symbolic link");
    return rc;
  }
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if ((bad = msvc__reg_not_private(&st, buf, sizeof(buf))) != NULL) {
    close(fd);
    return refuse_dir(lb, service, bad);
  }
  return fd;
}

/* A service's directory below the registry directory, both checked here
 * again (what was checked when the backend opened may have been replaced
 * since); created (0700) when missing if create is set. */
static int open_service(local_backend_t *lb, const char *service,
                        bool create) {
  int top = open_private_dir(lb, AT_FDCWD, lb->dir, NULL), fd;

  if (top < 0)
    return top;
  fd = open_private_dir(lb, top, service, service);
  if (fd == MSVC_ENOENT && create &&
      (mkdirat(top, service, 0700) == 0 || errno == EEXIST))
    fd = open_private_dir(lb, top, service, service);
  close(top);
  return fd;
}

/* ---- writing -------------------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : MSVC_EIO;
    data += n;
    len -= (size_t)n;
  }
  return MSVC_OK;
}

/* No fsync: the registry describes running processes, and after a crash of
 * the machine none of them runs any more. */
static int write_atomically(int dirfd, const char *dst, const char *tmp,
                            const char *data, size_t len) {
  int fd, rc = atomic_load(&msvc__reg_local_faults.write);

  if (rc != 0)
    return rc;
  fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
  if (fd < 0)
    return -errno;
  rc = write_all(fd, data, len);
  if (close(fd) != 0 && rc == MSVC_OK)
    rc = -errno;
  if (rc == MSVC_OK && renameat(dirfd, tmp, dirfd, dst) != 0)
    rc = -errno;
  if (rc != MSVC_OK)
    unlinkat(dirfd, tmp, 0);
  return rc;
}

static int local_write(int dirfd, msvc_registry_lease_t *lease) {
  const msvc_registry_instance_t *inst = &lease->inst;
  char dst[MSVC_REGISTRY_NAME_MAX + 64], tmp[MSVC_REGISTRY_NAME_MAX + 64];
  msvc__buf_t json;
  int rc;

  msvc__buf_init(&json, MSVC_REGISTRY_PAYLOAD_MAX);
  rc = msvc__reg_instance_to_json(inst, lease->ttl_ms, lease->beat_wall_ms,
                                  &json);
  if (rc == MSVC_OK) {
    msvc__buf_putc(&json, '\n');
    snprintf(dst, sizeof(dst), "%s.json", inst->id);
    /* A leading dot hides the temporary file from scans. */
    snprintf(tmp, sizeof(tmp), ".%s.%ld.%08llx.tmp", inst->id,
             (long)getpid(), (unsigned long long)(msvc__rand64() >> 32));
    rc = json.err != MSVC_OK ? json.err
                             : write_atomically(dirfd, dst, tmp, json.data,
                                                json.len);
  }
  msvc__buf_free(&json);
  return rc;
}

/* The service's directory is opened (and checked, and re-created if
 * someone removed it) at every heartbeat: a few system calls every TTL/3. */
static int local_put(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  local_backend_t *lb = (local_backend_t *)b;
  int fd = open_service(lb, lease->inst.service, true), rc;

  if (fd < 0)
    return fd;
  rc = local_write(fd, lease);
  close(fd);
  return rc;
}

static int local_del(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  local_backend_t *lb = (local_backend_t *)b;
  char name[MSVC_REGISTRY_NAME_MAX + 8];
  int fd = open_service(lb, lease->inst.service, false), rc = MSVC_OK;

  if (fd == MSVC_ENOENT)
    return MSVC_OK;
  if (fd < 0)
    return fd;
  snprintf(name, sizeof(name), "%s.json", lease->inst.id);
  if (unlinkat(fd, name, 0) != 0 && errno != ENOENT)
    rc = -errno;
  close(fd);
  return rc;
}

/* ---- reading -------------------------------------------------------------- */

/* What reading one file can come to, besides MSVC_OK and an error that
 * fails the whole scan. */
#define ENTRY_SKIP 1    /* not a live instance: malformed, dead, or gone */
#define ENTRY_REFUSED 2 /* someone else's file: skipped, and counted */

/* MSVC_OK with the content, ENTRY_REFUSED (why in bad), MSVC_EINVAL for
 * something that is not a small regular file, or an error. */
static int read_small_file(int dirfd, const char *name, char **out,
                           size_t *len, char *bad, size_t badlen) {
  struct stat st;
  char *data;
  ssize_t n;
  size_t got = 0;
  int fd, rc = atomic_load(&msvc__reg_local_faults.read);

  if (rc != 0)
    return rc;
  /* O_NONBLOCK: a FIFO planted in the directory must not hang the loop. */
  fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > MSVC_REGISTRY_PAYLOAD_MAX) {
    close(fd);
    return MSVC_EINVAL;
  }
  if (msvc__reg_not_private(&st, bad, badlen) != NULL) {
    close(fd);
    return ENTRY_REFUSED;
  }
  data = msvc__malloc((size_t)st.st_size + 1);
  if (data == NULL) {
    close(fd);
    return MSVC_ENOMEM;
  }
  while (got < (size_t)st.st_size) {
    n = read(fd, data + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rc = n < 0 ? -errno : MSVC_OK;
      break;
    }
    got += (size_t)n;
  }
  close(fd);
  if (rc != MSVC_OK) {
    msvc__free(data);
    return rc;
  }
  data[got] = '\0';
  *out = data;
  *len = got;
  return MSVC_OK;
}

/* What a watch knows about its service's files, so that an fs event for one
 * file costs one read, not a rescan of the whole directory: heartbeats
 * rewrite every file every TTL/3, and a service with 1,000 instances would
 * otherwise be rescanned hundreds of times a second. */
typedef struct lentry_s {
  char *name;
  msvc_registry_instance_t inst; /* owned */
  uint64_t expiry;               /* wall-clock ms, or EXPIRY_UNKNOWN */
} lentry_t;

/* A late instance kept because its owner could not write (remove_dead). */
#define EXPIRY_UNKNOWN UINT64_MAX

typedef struct lcache_s {
  lentry_t *v;
  size_t n, cap;
} lcache_t;

static void cache_del(lcache_t *c, size_t i) {
  msvc__free(c->v[i].name);
  msvc__reg_instance_clear(&c->v[i].inst);
  c->v[i] = c->v[--c->n];
}

static void cache_clear(lcache_t *c) {
  while (c->n > 0)
    cache_del(c, c->n - 1);
  msvc__free(c->v);
  memset(c, 0, sizeof(*c));
}

static size_t cache_find(const lcache_t *c, const char *name) {
  size_t i;

  for (i = 0; i < c->n; i++)
    if (strcmp(c->v[i].name, name) == 0)
      return i;
  return SIZE_MAX;
}

/* Takes inst's strings on success. */
static int cache_add(lcache_t *c, const char *name,
                     msvc_registry_instance_t *inst, uint64_t expiry) {
  lentry_t *e;

  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    lentry_t *v = msvc__realloc(c->v, cap * sizeof(*v));
    if (v == NULL)
      return MSVC_ENOMEM;
    c->v = v;
    c->cap = cap;
  }
  e = &c->v[c->n];
  if ((e->name = msvc__strdup(name)) == NULL)
    return MSVC_ENOMEM;
  e->inst = *inst;
  e->expiry = expiry;
  memset(inst, 0, sizeof(*inst));
  c->n++;
  return MSVC_OK;
}

/* The set and the time until the earliest expiry (0 = none). */
static int cache_to_set(const lcache_t *c, const char *service,
                        msvc_registry_set_t **out, uint64_t *recheck_ms) {
  msvc_registry_set_t *set = msvc__reg_set_new(service);
  uint64_t now = msvc_wall_ms(), next = 0;
  size_t i;

  if (set == NULL)
    return MSVC_ENOMEM;
  for (i = 0; i < c->n; i++) {
    msvc_registry_instance_t copy;
    uint64_t left = c->v[i].expiry > now ? c->v[i].expiry - now : 1;
    if (c->v[i].expiry != EXPIRY_UNKNOWN && (next == 0 || left < next))
      next = left;
    if (msvc__reg_instance_copy(&copy, &c->v[i].inst) != MSVC_OK)
      goto oom;
    if (msvc__reg_set_add(set, &copy) != MSVC_OK) {
      msvc__reg_instance_clear(&copy);
      goto oom;
    }
  }
  msvc__reg_set_finish(set);
  *out = set;
  if (recheck_ms != NULL)
    *recheck_ms = next;
  return MSVC_OK;
oom:
  msvc_registry_set_unref(set);
  return MSVC_ENOMEM;
}

static void sweep_tmp(int dirfd, const char *name, uint64_t now) {
  struct stat st;
  size_t len = strlen(name);

  if (len > 4 && strcmp(name + len - 4, ".tmp") == 0 &&
      fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      (uint64_t)st.st_mtime + TMP_MAX_AGE_S < now / 1000)
    unlinkat(dirfd, name, 0);
}

/* Errors of one file that say something about that file (it went away,
 * it is a link or a FIFO, its mode forbids reading): skipping it is the
 * right answer. Anything else (no descriptors left, an I/O error) says
 * nothing about the file and fails the scan. */
static bool file_problem(int rc) {
  return rc == MSVC_ENOENT || rc == -ELOOP || rc == MSVC_EINVAL ||
         rc == MSVC_EACCES || rc == -EPERM || rc == -ENXIO || rc == -EISDIR;
}

/* A late heartbeat proves its owner dead only if the owner could have
 * written a newer one. On a full or read-only filesystem it could not, so
 * the file stays: removing it would make a healthy instance vanish from
 * discovery. Returns MSVC_OK once the file is gone, or why it stays. */
static int remove_dead(int dirfd, const char *name) {
  struct statvfs vfs;
  int rc;

  if (atomic_load(&msvc__reg_local_faults.full) ||
      (fstatvfs(dirfd, &vfs) == 0 &&
       ((vfs.f_blocks > 0 && vfs.f_bavail == 0) ||
        (vfs.f_files > 0 && vfs.f_favail == 0))))
    return -ENOSPC;
  if ((rc = atomic_load(&msvc__reg_local_faults.unlink)) != 0)
    return rc;
  if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
    return -errno;
  return MSVC_OK;
}

/* Reads "<id>.json": MSVC_OK with a live instance (*expiry is
 * EXPIRY_UNKNOWN for one kept by remove_dead()), ENTRY_SKIP, ENTRY_REFUSED,
 * or an error that fails the scan. A dead instance's file is removed. */
static int read_entry(local_backend_t *lb, int dirfd, const char *service,
                      const char *name, uint64_t now,
                      msvc_registry_instance_t *inst, uint64_t *expiry) {
  uint32_t ttl = 0;
  uint64_t beat = 0;
  size_t len = strlen(name), jlen = 0;
  char *json = NULL, bad[160];
  int rc;

  memset(inst, 0, sizeof(*inst));
  if (len <= 5 || strcmp(name + len - 5, ".json") != 0) {
    complain(lb, service, name, "not an instance file");
    return ENTRY_SKIP;
  }
  rc = read_small_file(dirfd, name, &json, &jlen, bad, sizeof(bad));
  if (rc == ENTRY_REFUSED) {
    complain(lb, service, name, bad);
    return ENTRY_REFUSED;
  }
  if (rc == MSVC_ENOENT)
    return ENTRY_SKIP; /* removed meanwhile */
  if (rc != MSVC_OK && file_problem(rc)) {
    complain(lb, service, name, msvc_strerror(rc));
    return ENTRY_SKIP;
  }
  if (rc != MSVC_OK)
    return rc;
  rc = msvc__reg_instance_from_json(json, jlen, inst, &ttl, &beat);
  msvc__free(json);
  if (rc == MSVC_ENOMEM)
    return rc;
  if (rc != MSVC_OK || ttl == 0 || strcmp(inst->service, service) != 0 ||
      strlen(inst->id) != len - 5 || memcmp(inst->id, name, len - 5) != 0) {
    complain(lb, service, name,
             rc != MSVC_OK ? msvc_strerror(rc)
                           : "fields do not match the file's place or lack "
                             "ttl_ms/heartbeat_ms");
    msvc__reg_instance_clear(inst);
    return ENTRY_SKIP;
  }
  if (beat + ttl > now) {
    *expiry = beat + ttl;
    return MSVC_OK;
  }
  if ((rc = remove_dead(dirfd, name)) != MSVC_OK) {
    snprintf(bad, sizeof(bad), "heartbeat late, but kept: the directory "
             "cannot be written (%s), so its owner could not renew it",
             strerror(-rc));
    complain(lb, service, name, bad);
    *expiry = EXPIRY_UNKNOWN;
    return MSVC_OK;
  }
  MSVC_LOG_D(MSVC__REG_COMPONENT, "%s/%s: heartbeat %llu ms old, removed",
             service, inst->id, (unsigned long long)(now - beat));
  msvc__reg_instance_clear(inst);
  return ENTRY_SKIP;
}

/* Reads every file of a service into a fresh cache; *refused counts the
 * files refused as someone else's. */
static int scan(local_backend_t *lb, const char *service, lcache_t *out,
                unsigned *refused) {
  uint64_t now = msvc_wall_ms();
  struct dirent *de;
  DIR *d;
  int fd, rc = MSVC_OK;

  memset(out, 0, sizeof(*out));
  *refused = 0;
  fd = open_service(lb, service, false);
  /* No directory: nobody ever registered this service, which is a
   * definite, empty answer. */
  if (fd == MSVC_ENOENT)
    return MSVC_OK;
  if (fd < 0)
    return fd;
  if ((d = fdopendir(fd)) == NULL) {
    rc = -errno;
    close(fd);
    return rc;
  }
  for (;;) {
    msvc_registry_instance_t inst;
    uint64_t expiry = 0;
    errno = 0;
    if ((de = readdir(d)) == NULL) {
      rc = errno != 0 ? -errno : MSVC_OK; /* a failed readdir is no end */
      break;
    }
    if (de->d_name[0] == '.') {
      sweep_tmp(fd, de->d_name, now);
      continue;
    }
    rc = read_entry(lb, fd, service, de->d_name, now, &inst, &expiry);
    if (rc == MSVC_OK && (rc = cache_add(out, de->d_name, &inst, expiry)) != 0)
      msvc__reg_instance_clear(&inst);
    if (rc == ENTRY_REFUSED)
      (*refused)++;
    if (rc == ENTRY_SKIP || rc == ENTRY_REFUSED)
      rc = MSVC_OK;
    if (rc != MSVC_OK)
      break;
  }
  closedir(d);
  if (rc != MSVC_OK)
    cache_clear(out);
  return rc;
}

/* Counts refused files on the loop thread (the event hook runs there). */
static void count_refused(local_backend_t *lb, msvc_registry_op_t op,
                          const char *service, unsigned n) {
  while (n-- > 0)
    msvc__reg_count_error(lb->base.reg, op, MSVC_EACCES, service);
}

typedef struct lresolve_s {
  uv_work_t req;
  local_backend_t *lb;
  msvc__reg_query_t *q;
  int rc;
  unsigned refused;
  msvc_registry_set_t *set;
} lresolve_t;

/* A one-off read: the instances move from the scan into the set. */
static int resolve_now(local_backend_t *lb, const char *service,
                       msvc_registry_set_t **out, unsigned *refused) {
  msvc_registry_set_t *set;
  lcache_t c;
  size_t i;
  int rc = scan(lb, service, &c, refused);

  if (rc != MSVC_OK)
    return rc;
  if ((set = msvc__reg_set_new(service)) == NULL)
    rc = MSVC_ENOMEM;
  for (i = 0; rc == MSVC_OK && i < c.n; i++)
    rc = msvc__reg_set_add(set, &c.v[i].inst);
  cache_clear(&c);
  if (rc != MSVC_OK) {
    msvc_registry_set_unref(set);
    return rc;
  }
  msvc__reg_set_finish(set);
  *out = set;
  return MSVC_OK;
}

/* Pool thread: q->service does not change while the query is pending. */
static void resolve_work(uv_work_t *req) {
  lresolve_t *r = msvc__container_of(req, lresolve_t, req);

  r->rc = resolve_now(r->lb, r->q->service, &r->set, &r->refused);
}

static void resolve_done(uv_work_t *req, int status) {
  lresolve_t *r = msvc__container_of(req, lresolve_t, req);
  msvc__reg_query_t *q = r->q;
  int rc = status < 0 ? status : r->rc;
  msvc_registry_set_t *set = rc == MSVC_OK ? r->set : NULL;

  if (set == NULL)
    msvc_registry_set_unref(r->set);
  count_refused(r->lb, MSVC_REGISTRY_OP_RESOLVE, q->service, r->refused);
  msvc__free(r);
  msvc__reg_query_done(q, rc, set);
}

static int local_resolve(msvc__reg_backend_t *b, msvc__reg_query_t *q) {
  local_backend_t *lb = (local_backend_t *)b;
  lresolve_t *r = msvc__calloc(1, sizeof(*r));

  if (r == NULL)
    return MSVC_ENOMEM;
  r->lb = lb;
  r->q = q;
  if (uv_queue_work(b->reg->loop, &r->req, resolve_work, resolve_done) != 0) {
    unsigned refused = 0;
    int rc;
    msvc__free(r);
    rc = resolve_now(lb, q->service, &q->set, &refused);
    count_refused(lb, MSVC_REGISTRY_OP_RESOLVE, q->service, refused);
    return rc;
  }
  return MSVC__REG_ASYNC;
}

/* ---- watching ------------------------------------------------------------- */

#define DIRTY_MAX 64

typedef struct local_watch_s {
  uv_fs_event_t ev;
  uv_work_t work;
  msvc_registry_watch_t *w;
  local_backend_t *lb;
  lcache_t cache;
  lcache_t fresh; /* filled by the pool thread */
  int fresh_rc;
  unsigned fresh_refused;
  bool busy;      /* a full scan is running */
  bool stopping;  /* close once the scan is back */
  bool again;     /* too much changed during the scan: scan again */
  size_t ndirty;
  char *dirty[DIRTY_MAX]; /* names changed during the scan */
} local_watch_t;

static void watch_close(local_watch_t *lw);

static void report(local_watch_t *lw) {
  msvc_registry_set_t *set = NULL;
  uint64_t recheck = 0;
  int rc = cache_to_set(&lw->cache, lw->w->service, &set, &recheck);

  /* +1: wake just after the earliest expiry, not a millisecond before. */
  msvc__reg_watch_report(lw->w, rc, set, recheck != 0 ? recheck + 1 : 0);
}

static int update_one(local_watch_t *lw, const char *name, bool *changed);
static void note_dirty(local_watch_t *lw, const char *name);

static void refresh_work(uv_work_t *req) {
  local_watch_t *lw = msvc__container_of(req, local_watch_t, work);

  lw->fresh_rc = scan(lw->lb, lw->w->service, &lw->fresh, &lw->fresh_refused);
}

/* A directory scan can miss a file that is renamed over while readdir runs
 * (tmpfs moves the renamed entry, and readdir's cursor may already have
 * passed its new place), and every heartbeat is such a rename. An instance
 * that was alive before the scan and is missing from it is therefore read
 * again by name, after the scan, rather than dropped: the watch must not
 * report a live instance gone. */
static void recheck_missing(local_watch_t *lw) {
  uint64_t now = msvc_wall_ms();
  size_t i;

  for (i = 0; i < lw->cache.n; i++)
    if (lw->cache.v[i].expiry > now &&
        cache_find(&lw->fresh, lw->cache.v[i].name) == SIZE_MAX)
      note_dirty(lw, lw->cache.v[i].name);
}

static void refresh_done(uv_work_t *req, int status) {
  local_watch_t *lw = msvc__container_of(req, local_watch_t, work);
  bool changed = false;
  int rc = status < 0 ? status : lw->fresh_rc;
  size_t i;

  lw->busy = false;
  if (!lw->stopping)
    count_refused(lw->lb, MSVC_REGISTRY_OP_WATCH, lw->w->service,
                  lw->fresh_refused);
  if (lw->stopping || rc != MSVC_OK) {
    cache_clear(&lw->fresh);
    if (lw->stopping)
      watch_close(lw);
    else
      msvc__reg_watch_report(lw->w, rc, NULL, 0);
    return;
  }
  recheck_missing(lw);
  cache_clear(&lw->cache);
  lw->cache = lw->fresh;
  memset(&lw->fresh, 0, sizeof(lw->fresh));
  for (i = 0; i < lw->ndirty; i++) {
    if (update_one(lw, lw->dirty[i], &changed) != MSVC_OK)
      lw->again = true;
    msvc__free(lw->dirty[i]);
  }
  lw->ndirty = 0;
  report(lw);
  if (lw->again) {
    lw->again = false;
    msvc__reg_watch_poke(lw->w);
  }
}

static void local_watch_refresh(msvc__reg_backend_t *b,
                                msvc_registry_watch_t *w) {
  local_watch_t *lw = w->bdata;

  if (lw->busy) {
    lw->again = true;
    return;
  }
  lw->busy = true;
  if (uv_queue_work(b->reg->loop, &lw->work, refresh_work, refresh_done) != 0) {
    refresh_work(&lw->work);
    refresh_done(&lw->work, 0);
  }
}

/* One file changed: MSVC_OK when the cache is up to date again; *changed
 * tells whether a watcher would see a difference. */
static int update_one(local_watch_t *lw, const char *name, bool *changed) {
  msvc_registry_instance_t inst;
  uint64_t expiry = 0;
  size_t i = cache_find(&lw->cache, name);
  int fd, rc;

  if ((fd = open_service(lw->lb, lw->w->service, false)) < 0)
    return fd;
  rc = read_entry(lw->lb, fd, lw->w->service, name, msvc_wall_ms(), &inst,
                  &expiry);
  close(fd);
  if (rc == ENTRY_REFUSED)
    count_refused(lw->lb, MSVC_REGISTRY_OP_WATCH, lw->w->service, 1);
  if (rc == ENTRY_SKIP || rc == ENTRY_REFUSED) {
    if (i == SIZE_MAX)
      return MSVC_OK;
    cache_del(&lw->cache, i);
    *changed = true;
  } else if (rc != MSVC_OK) {
    return rc;
  } else if (i != SIZE_MAX &&
             msvc__reg_instance_equal(&lw->cache.v[i].inst, &inst)) {
    /* Only a heartbeat: nothing a watcher can see changed. */
    lw->cache.v[i].expiry = expiry;
    msvc__reg_instance_clear(&inst);
    return MSVC_OK;
  } else {
    if (i != SIZE_MAX)
      cache_del(&lw->cache, i);
    if ((rc = cache_add(&lw->cache, name, &inst, expiry)) != MSVC_OK) {
      msvc__reg_instance_clear(&inst);
      return rc;
    }
    *changed = true;
  }
  return MSVC_OK;
}

/* While a scan runs its result will replace the cache: remember the name
 * and re-read it afterwards. */
static void note_dirty(local_watch_t *lw, const char *name) {
  size_t i;

  for (i = 0; i < lw->ndirty; i++)
    if (strcmp(lw->dirty[i], name) == 0)
      return;
  if (lw->ndirty == DIRTY_MAX ||
      (lw->dirty[lw->ndirty] = msvc__strdup(name)) == NULL) {
    lw->again = true;
    return;
  }
  lw->ndirty++;
}

static void on_fs_event(uv_fs_event_t *ev, const char *filename, int events,
                        int status) {
  local_watch_t *lw = msvc__container_of(ev, local_watch_t, ev);

  (void)events;
  if (lw->stopping)
    return;
  /* Temporary files announce nothing: their rename shows up under the
   * final name. Anything unclear (overflow, no name) means a full rescan. */
  if (status == 0 && filename != NULL && filename[0] == '.')
    return;
  bool changed = false;

  if (status != 0 || filename == NULL) {
    msvc__reg_watch_poke(lw->w);
  } else if (lw->busy) {
    note_dirty(lw, filename);
  } else if (update_one(lw, filename, &changed) != MSVC_OK) {
    msvc__reg_watch_poke(lw->w);
  } else if (changed) {
    report(lw);
  }
}

static int local_watch_start(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  local_backend_t *lb = (local_backend_t *)b;
  local_watch_t *lw;
  char *path;
  int rc;

  /* Created if missing, so that it can be watched before anyone registers. */
  if ((rc = open_service(lb, w->service, true)) < 0)
    return rc;
  close(rc);
  if ((lw = msvc__calloc(1, sizeof(*lw))) == NULL)
    return MSVC_ENOMEM;
  if ((path = path_of(lb, w->service, NULL)) == NULL) {
    msvc__free(lw);
    return MSVC_ENOMEM;
  }
  lw->w = w;
  lw->lb = lb;
  uv_fs_event_init(b->reg->loop, &lw->ev);
  rc = uv_fs_event_start(&lw->ev, on_fs_event, path, 0);
  if (rc != 0)
    MSVC_LOG_W(MSVC__REG_COMPONENT,
               "cannot watch %s (%s); falling back to periodic rescans", path,
               uv_strerror(rc));
  msvc__free(path);
  w->bdata = lw;
  return MSVC_OK;
}

static void on_fs_event_closed(uv_handle_t *h) {
  local_watch_t *lw = msvc__container_of(h, local_watch_t, ev);
  msvc_registry_watch_t *w = lw->w;

  size_t i;

  for (i = 0; i < lw->ndirty; i++)
    msvc__free(lw->dirty[i]);
  cache_clear(&lw->cache);
  msvc__free(lw);
  msvc__reg_watch_stopped(w);
}

static void watch_close(local_watch_t *lw) {
  /* Initialised even when it could not start, so it is closed either way. */
  uv_close((uv_handle_t *)&lw->ev, on_fs_event_closed);
}

static void local_watch_stop(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  local_watch_t *lw = w->bdata;

  (void)b;
  lw->stopping = true;
  uv_fs_event_stop(&lw->ev);
  /* A scan on the pool still uses the watch: refresh_done closes it. */
  if (!lw->busy)
    watch_close(lw);
}

static void local_close(msvc__reg_backend_t *b) {
  local_backend_t *lb = (local_backend_t *)b;
  msvc_registry_t *reg = b->reg;
  size_t i;

  for (i = 0; i < lb->nbad; i++)
    msvc__free(lb->bad[i]);
  uv_mutex_destroy(&lb->bad_lock);
  msvc__free(lb->dir);
  msvc__free(lb);
  msvc__reg_backend_closed(reg);
}

static const msvc__reg_ops_t local_ops = {
    "local",           false,           true,
    local_put,         local_del,       local_resolve,
    local_watch_start, local_watch_refresh, local_watch_stop,
    local_close, NULL};

int msvc__reg_local_open(msvc_registry_t *reg, const char *dir,
                         msvc__reg_backend_t **out) {
  local_backend_t *lb;
  char why[512] = "";
  size_t len;
  int rc;

  if (dir == NULL || dir[0] != '/')
    return MSVC_EINVAL;
  if ((lb = msvc__calloc(1, sizeof(*lb))) == NULL ||
      (lb->dir = msvc__strdup(dir)) == NULL) {
    msvc__free(lb);
    return MSVC_ENOMEM;
  }
  len = strlen(lb->dir);
  while (len > 1 && lb->dir[len - 1] == '/')
    lb->dir[--len] = '\0';
  if ((rc = msvc__reg_local_check(lb->dir, true, why, sizeof(why))) != 0 ||
      (rc = uv_mutex_init(&lb->bad_lock)) != 0) {
    if (why[0] != '\0')
      MSVC_LOG_E(MSVC__REG_COMPONENT, "%s", why);
    else
      MSVC_LOG_E(MSVC__REG_COMPONENT, "registry directory %s: %s", lb->dir,
                 msvc_strerror(rc));
    msvc__free(lb->dir);
    msvc__free(lb);
    return rc;
  }
  lb->base.ops = &local_ops;
  lb->base.reg = reg;
  *out = &lb->base;
  return MSVC_OK;
}
