/* The user store (see users.h). */
#include "users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/log.h>

#include "ex.h"

struct users_s {
  /* A connection per thread: the loop's reads never wait behind a worker
   * thread's write (see ex_db.h). */
  ex_db_set_t *dbs;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS users ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);";

int users_open(const char *path, users_t **out, char *err, size_t errlen) {
  users_t *u = calloc(1, sizeof(*u));
  int rc;

  *out = NULL;
  if (u == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return SQLITE_NOMEM;
  }
  rc = ex_db_set_open(path, schema, &u->dbs, err, errlen);
  if (rc != SQLITE_OK) {
    free(u);
    return rc;
  }
  *out = u;
  return SQLITE_OK;
}

void users_close(users_t *u) {
  if (u == NULL)
    return;
  ex_db_set_close(u->dbs);
  free(u);
}

static ex_store_rc_t failed(sqlite3 *db, const char *what, int rc) {
  MSVC_LOG_E("user-service", "database: %s: %s (%d)", what,
             db != NULL ? sqlite3_errmsg(db) : "no connection", rc);
  return EX_STORE_ERROR;
}

static void copy_text(char *dst, size_t size, const unsigned char *src) {
  snprintf(dst, size, "%s", src != NULL ? (const char *)src : "");
}

/* Reads the columns id, name, email, created_at of the current row. */
static void read_user(sqlite3_stmt *st, user_t *out) {
  out->id = sqlite3_column_int64(st, 0);
  copy_text(out->name, sizeof(out->name), sqlite3_column_text(st, 1));
  copy_text(out->email, sizeof(out->email), sqlite3_column_text(st, 2));
  out->created_at = sqlite3_column_int64(st, 3);
}

ex_store_rc_t users_create(users_t *u, const char *name, const char *email,
                           const char *password_hash, int64_t now, user_t *out) {
  static const char sql[] = "INSERT INTO users (name, email, password_hash, created_at) "
                            "VALUES (?1, ?2, ?3, ?4) RETURNING id";
  ex_store_rc_t result = EX_STORE_OK;
  sqlite3_stmt *st = NULL;
  int rc;
  sqlite3 *db = ex_db_set_get(u->dbs);

  if (db == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, email, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, password_hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    rc = sqlite3_step(st);
  }
  if (rc == SQLITE_ROW) {
    out->id = sqlite3_column_int64(st, 0);
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->email, sizeof(out->email), "%s", email);
    out->created_at = now;
    rc = sqlite3_step(st); /* runs the statement to its end: the insert commits */
  }
  if (rc != SQLITE_DONE)
    result = sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE
                 ? EX_STORE_CONFLICT
                 : failed(db, "insert user", rc);
  sqlite3_finalize(st);
  return result;
}

/* Runs a one-row query whose first parameter is bound by the caller. */
static ex_store_rc_t one_row(sqlite3 *db, sqlite3_stmt *st, user_t *out, char *hash,
                             size_t hashlen) {
  int rc = sqlite3_step(st);

  if (rc == SQLITE_DONE)
    return EX_STORE_NOT_FOUND;
  if (rc != SQLITE_ROW)
    return failed(db, "read user", rc);
  read_user(st, out);
  if (hash != NULL)
    copy_text(hash, hashlen, sqlite3_column_text(st, 4));
  return EX_STORE_OK;
}

ex_store_rc_t users_get(users_t *u, int64_t id, user_t *out) {
  static const char sql[] = "SELECT id, name, email, created_at FROM users WHERE id = ?1";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  int rc;
  sqlite3 *db = ex_db_set_get(u->dbs);

  if (db == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, id);
    result = one_row(db, st, out, NULL, 0);
  } else {
    result = failed(db, "prepare user query", rc);
  }
  sqlite3_finalize(st);
  return result;
}

ex_store_rc_t users_find_login(users_t *u, const char *email, user_t *out, char *hash,
                               size_t hashlen) {
  static const char sql[] = "SELECT id, name, email, created_at, password_hash "
                            "FROM users WHERE email = ?1";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  int rc;
  sqlite3 *db = ex_db_set_get(u->dbs);

  if (db == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
    result = one_row(db, st, out, hash, hashlen);
  } else {
    result = failed(db, "prepare login query", rc);
  }
  sqlite3_finalize(st);
  return result;
}

static ex_store_rc_t append_rows(sqlite3 *db, sqlite3_stmt *st, cJSON *users) {
  user_t user;
  int rc;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *item;

    read_user(st, &user);
    item = user_public_json(&user);
    if (item == NULL || !cJSON_AddItemToArray(users, item)) {
      cJSON_Delete(item);
      MSVC_LOG_E("user-service", "out of memory listing users");
      return EX_STORE_ERROR;
    }
  }
  return rc == SQLITE_DONE ? EX_STORE_OK : failed(db, "list users", rc);
}

ex_store_rc_t users_list(users_t *u, int64_t limit, int64_t offset, cJSON *users) {
  /* The email is read (read_user() wants every column) but never listed. */
  static const char sql[] = "SELECT id, name, email, created_at FROM users "
                            "ORDER BY id LIMIT ?1 OFFSET ?2";
  ex_store_rc_t result;
  sqlite3_stmt *st = NULL;
  int rc;
  sqlite3 *db = ex_db_set_get(u->dbs);

  if (db == NULL)
    return EX_STORE_ERROR;
  rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, limit);
    sqlite3_bind_int64(st, 2, offset);
    result = append_rows(db, st, users);
  } else {
    result = failed(db, "prepare user list", rc);
  }
  sqlite3_finalize(st);
  return result;
}

cJSON *user_json(const user_t *user) {
  cJSON *doc = cJSON_CreateObject();
  char when[32];

  ex_rfc3339(user->created_at, when);
  if (doc == NULL || !ex_json_add_int(doc, "id", user->id) ||
      cJSON_AddStringToObject(doc, "name", user->name) == NULL ||
      cJSON_AddStringToObject(doc, "email", user->email) == NULL ||
      cJSON_AddStringToObject(doc, "created_at", when) == NULL) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

cJSON *user_public_json(const user_t *user) {
  cJSON *doc = cJSON_CreateObject();

  if (doc == NULL || !ex_json_add_int(doc, "id", user->id) ||
      cJSON_AddStringToObject(doc, "name", user->name) == NULL) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}
