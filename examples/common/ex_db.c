/* SQLite helpers shared by the example services (see ex_db.h). */
#include "ex_db.h"

#include <stdio.h>

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
  rc = ex_db_begin_write(db);
  if (rc == SQLITE_OK)
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
