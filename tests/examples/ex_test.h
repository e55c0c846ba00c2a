/* Helpers of the example services' unit tests. */
#ifndef EX_TEST_H
#define EX_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

/* A fresh directory for a test's files; removed by ex_tmp_remove(). */
typedef struct ex_tmp_s {
  char dir[256];
  char path[320];
} ex_tmp_t;

static inline void ex_tmp_make(ex_tmp_t *t) {
  const char *base = getenv("TMPDIR");

  snprintf(t->dir, sizeof(t->dir), "%s/msvc-ex-XXXXXX",
           base != NULL && *base != '\0' ? base : "/tmp");
  cr_assert_not_null(mkdtemp(t->dir));
}

/* The path of a file in the directory (overwritten by the next call). */
static inline const char *ex_tmp_file(ex_tmp_t *t, const char *name) {
  snprintf(t->path, sizeof(t->path), "%s/%s", t->dir, name);
  return t->path;
}

static inline void ex_tmp_remove(ex_tmp_t *t) {
  static const char *const files[] = {"db", "db-wal", "db-shm", "key.pem", "bad.pem"};
  size_t i;

  for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
    unlink(ex_tmp_file(t, files[i]));
  rmdir(t->dir);
}

#endif /* EX_TEST_H */
