/* Whether a directory may hold the local registry.
 *
 * Whoever can write into the registry directory decides where callers send
 * their requests, so it must be this user's alone: a real directory (a
 * symbolic link could be re-pointed by whoever owns it), owned by the
 * effective user, writable by nobody else. Its ancestors matter too: one
 * that anyone may write to, without the sticky bit, lets anyone rename the
 * registry directory away and put their own in its place. (/tmp is
 * world-writable but sticky: only the owner of an entry may rename it.)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/registry-internal.h"

static int say(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int say(char *why, size_t whylen, int rc, const char *fmt, ...) {
  va_list ap;

  if (why != NULL && whylen > 0) {
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

const char *msvc__reg_not_private(const struct stat *st, char *buf,
                                  size_t len) {
  if (st->st_uid != geteuid()) {
    snprintf(buf, len, "owned by uid %lu, not by uid %lu that this process "
             "runs as", (unsigned long)st->st_uid, (unsigned long)geteuid());
    return buf;
  }
  if (st->st_mode & (S_IWGRP | S_IWOTH)) {
    snprintf(buf, len, "mode %04o lets %s write into it",
             (unsigned)(st->st_mode & 07777),
             (st->st_mode & S_IWOTH) ? "every user" : "its group");
    return buf;
  }
  return NULL;
}

#define ADVICE                                                                 \
  "; another user could announce instances there and receive this "           \
  "service's traffic. Remove it, or set MSVC_REGISTRY=local:///a/dir/of/yours"

/* One ancestor of the directory; made (0700) when missing with create. */
static int check_ancestor(const char *path, bool create, char *why,
                          size_t whylen) {
  struct stat st;

  if (stat(path, &st) != 0) {
    if (errno != ENOENT)
      return say(why, whylen, -errno, "registry directory: %s: %s", path,
                 strerror(errno));
    if (!create)
      return MSVC_ENOENT;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
      return say(why, whylen, -errno, "registry directory: cannot create %s: "
                 "%s", path, strerror(errno));
    if (stat(path, &st) != 0)
      return -errno;
  }
  if (!S_ISDIR(st.st_mode))
    return say(why, whylen, -ENOTDIR, "registry directory: %s is not a "
               "directory", path);
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    return say(why, whylen, MSVC_EACCES,
               "registry directory refused: its parent %s is writable by "
               "every user without the sticky bit" ADVICE, path);
  return MSVC_OK;
}

int msvc__reg_local_check(const char *dir, bool create, char *why,
                          size_t whylen) {
  char *copy, *p, buf[160];
  const char *bad;
  struct stat st;
  int rc = MSVC_OK;

  if (why != NULL && whylen > 0)
    why[0] = '\0';
  if (dir == NULL || dir[0] != '/')
    return MSVC_EINVAL;
  if ((copy = msvc__strdup(dir)) == NULL)
    return MSVC_ENOMEM;
  /* Every ancestor, then the directory itself (without following it). */
  for (p = copy + 1; *p != '\0' && rc == MSVC_OK; p++) {
    if (*p != '/' || p[-1] == '/')
      continue;
    *p = '\0';
    rc = check_ancestor(copy, create, why, whylen);
    *p = '/';
  }
  msvc__free(copy);
  if (rc == MSVC_ENOENT)
    return MSVC_OK; /* nothing there yet: it will be created private */
  if (rc != MSVC_OK)
    return rc;
  if (lstat(dir, &st) != 0) {
    if (errno != ENOENT)
      return say(why, whylen, -errno, "registry directory %s: %s", dir,
                 strerror(errno));
    if (!create)
      return MSVC_OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      return say(why, whylen, -errno, "registry directory: cannot create "
                 "%s: %s", dir, strerror(errno));
    if (lstat(dir, &st) != 0)
      return -errno;
  }
  if (S_ISLNK(st.st_mode))
    return say(why, whylen, MSVC_EACCES, "registry directory %s refused: it "
               "is a symbolic link, not a directory of its own" ADVICE, dir);
  if (!S_ISDIR(st.st_mode))
    return say(why, whylen, -ENOTDIR, "registry directory %s is not a "
               "directory", dir);
  if ((bad = msvc__reg_not_private(&st, buf, sizeof(buf))) != NULL)
    return say(why, whylen, MSVC_EACCES, "registry directory %s refused: %s"
               ADVICE, dir, bad);
  return MSVC_OK;
}
