/* SQLite helpers shared by the example services (see ex_db.h). */
#include "ex_db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

/* Switching a new file to WAL needs an exclusive lock, and SQLite does not
 * call the busy handler for it: when another instance opens the same new
 * file at the same moment, retry until the busy timeout is spent. */
static int switch_to_wal(sqlite3 *db) {
  int rc, waited = 0;

  for (;;) {
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited >= EX_DB_BUSY_TIMEOUT_MS)
      return rc;
    sqlite3_sleep(10);
    waited += 10;
  }
}

static int fail(sqlite3 *db, int rc, const char *path, const char *what, char *err,
                size_t errlen) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s: %s: %s", path, what,
             db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  sqlite3_close(db);
  return rc;
}

int ex_db_open(const char *path, const char *schema, sqlite3 **out, char *err,
               size_t errlen) {
  sqlite3 *db = NULL;
  int rc;

  *out = NULL;
  /* FULLMUTEX: handlers of several worker loops may share the connection. */
  rc = sqlite3_open_v2(path, &db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                       NULL);
  if (rc != SQLITE_OK)
    return fail(db, rc, path, "cannot open", err, errlen);
  /* The timeout first: switching to WAL and creating the schema both wait
   * for a lock when another instance starts at the same moment. */
  sqlite3_busy_timeout(db, EX_DB_BUSY_TIMEOUT_MS);
  rc = switch_to_wal(db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL,
                      NULL, NULL);
  if (rc != SQLITE_OK)
    return fail(db, rc, path, "cannot switch to WAL", err, errlen);
  if (schema[0] == '\0')
    rc = SQLITE_OK; /* a further connection: the schema exists */
  else if ((rc = ex_db_begin_write(db)) == SQLITE_OK)
    rc = ex_db_finish(db, sqlite3_exec(db, schema, NULL, NULL, NULL));
  if (rc != SQLITE_OK)
    return fail(db, rc, path, "cannot create the schema", err, errlen);
  *out = db;
  return SQLITE_OK;
}

void ex_db_close(sqlite3 *db) {
  sqlite3_close(db);
}

int ex_db_begin_write(sqlite3 *db) {
  return sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
}

int ex_db_finish(sqlite3 *db, int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE) {
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
      return SQLITE_OK;
  }
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

struct ex_db_set_s {
  char *path;
  pthread_key_t key;
  pthread_mutex_t lock; /* guards conns */
  sqlite3 **conns;
  size_t n, cap;
};

static int set_add(ex_db_set_t *s, sqlite3 *db) {
  int ok = 1;

  pthread_mutex_lock(&s->lock);
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    sqlite3 **c = realloc(s->conns, cap * sizeof(*c));
    if (c == NULL)
      ok = 0;
    else {
      s->conns = c;
      s->cap = cap;
    }
  }
  if (ok)
    s->conns[s->n++] = db;
  pthread_mutex_unlock(&s->lock);
  /* Should this fail, the next call opens another connection; this one
   * is closed with the set either way. */
  if (ok)
    (void)pthread_setspecific(s->key, db);
  return ok;
}

int ex_db_set_open(const char *path, const char *schema, ex_db_set_t **out, char *err,
                   size_t errlen) {
  ex_db_set_t *s = calloc(1, sizeof(*s));
  sqlite3 *db = NULL;
  int rc;

  *out = NULL;
  if (s == NULL || (s->path = strdup(path)) == NULL) {
    free(s);
    snprintf(err, errlen, "%s: out of memory", path);
    return SQLITE_NOMEM;
  }
  if (pthread_key_create(&s->key, NULL) != 0) {
    free(s->path);
    free(s);
    snprintf(err, errlen, "%s: no thread-specific key left", path);
    return SQLITE_ERROR;
  }
  pthread_mutex_init(&s->lock, NULL);
  rc = ex_db_open(path, schema, &db, err, errlen);
  if (rc == SQLITE_OK && !set_add(s, db)) {
    snprintf(err, errlen, "%s: out of memory", path);
    ex_db_close(db);
    rc = SQLITE_NOMEM;
  }
  if (rc != SQLITE_OK) {
    ex_db_set_close(s);
    return rc;
  }
  *out = s;
  return SQLITE_OK;
}

sqlite3 *ex_db_set_get(ex_db_set_t *s) {
  sqlite3 *db = pthread_getspecific(s->key);
  char err[300];

  if (db != NULL)
    return db;
  /* The schema exists already: an empty one does not take the write lock. */
  if (ex_db_open(s->path, "", &db, err, sizeof(err)) != SQLITE_OK) {
    MSVC_LOG_E("database", "%s", err);
    return NULL;
  }
  if (!set_add(s, db)) {
    MSVC_LOG_E("database", "%s: out of memory", s->path);
    ex_db_close(db);
    return NULL;
  }
  return db;
}

void ex_db_set_close(ex_db_set_t *s) {
  size_t i;

  if (s == NULL)
    return;
  for (i = 0; i < s->n; i++)
    ex_db_close(s->conns[i]);
  free(s->conns);
  pthread_key_delete(s->key);
  pthread_mutex_destroy(&s->lock);
  free(s->path);
  free(s);
}
