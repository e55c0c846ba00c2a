/*
 * SQLite as the example services use it: one database file per service,
 * shared by every instance of that service, so several processes write to
 * it at once. WAL lets readers and one writer run together; the busy
 * timeout makes a second writer wait for the first instead of failing the
 * request.
 */
#ifndef EX_DB_H
#define EX_DB_H

#include <stddef.h>

#include <sqlite3.h>

/* Outcomes of the services' store functions. */
typedef enum ex_store_rc_e {
  EX_STORE_OK = 0,
  EX_STORE_NOT_FOUND = 1, /* no such row (or not the caller's) */
  EX_STORE_CONFLICT = 2,  /* a unique key is taken */
  EX_STORE_ERROR = -1     /* SQLite failed, or out of memory; logged */
} ex_store_rc_t;

/* How long a writer waits for another process's write to finish. */
#define EX_DB_BUSY_TIMEOUT_MS 5000

/*
 * Opens (creating when absent) the database at path, switches it to WAL,
 * sets the busy timeout and runs schema (idempotent statements such as
 * CREATE TABLE IF NOT EXISTS) in one write transaction. On failure returns
 * an SQLite code, writes one line into err and leaves nothing open.
 */
int ex_db_open(const char *path, const char *schema, sqlite3 **out, char *err,
               size_t errlen);

/* Closes a database opened by ex_db_open(); NULL is a no-op. */
void ex_db_close(sqlite3 *db);

/* Runs "BEGIN IMMEDIATE", taking the write lock at once: a transaction
 * that reads first and writes later could otherwise fail with SQLITE_BUSY
 * without waiting (SQLite cannot wait out that deadlock). */
int ex_db_begin_write(sqlite3 *db);

/* COMMIT when rc is SQLITE_OK or SQLITE_DONE, else ROLLBACK. Returns
 * SQLITE_OK once committed, else rc or the commit's own error. */
int ex_db_finish(sqlite3 *db, int rc);

/*
 * One connection per thread on the same database file. A service's loop
 * reads on its own connection while its worker pool's threads write (and
 * hash passwords) on theirs: in WAL mode a reader never waits for a writer,
 * so a write that waits for another instance's lock (up to the busy
 * timeout) holds up only the pool thread doing it, never the loop.
 * Thread-safe.
 */
typedef struct ex_db_set_s ex_db_set_t;

/* Opens the calling thread's connection (creating the file and its schema,
 * as ex_db_open()); the other threads' are opened on first use. */
int ex_db_set_open(const char *path, const char *schema, ex_db_set_t **out, char *err,
                   size_t errlen);

/* The calling thread's connection, opened now if it has none yet; NULL
 * (logged) when it cannot be opened. Use it only on this thread. */
sqlite3 *ex_db_set_get(ex_db_set_t *s);

/* Closes every connection; NULL is a no-op. No thread may use the set any
 * more. */
void ex_db_set_close(ex_db_set_t *s);

#endif /* EX_DB_H */
