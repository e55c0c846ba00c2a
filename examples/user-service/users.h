/*
 * The user store: users in the service's own SQLite database, shared by
 * every instance of the service. Safe to call from several threads.
 */
#ifndef USER_USERS_H
#define USER_USERS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ex_db.h"

#define USER_NAME_MAX_CHARS 100
#define USER_EMAIL_MAX 254
#define USER_PASSWORD_MIN_CHARS 8
#define USER_PASSWORD_MAX_CHARS 128

/* A user as the API shows it (never with its password). */
typedef struct user_s {
  int64_t id;
  char name[4 * USER_NAME_MAX_CHARS + 1]; /* UTF-8: up to 4 bytes a character */
  char email[USER_EMAIL_MAX + 1];
  int64_t created_at; /* unix seconds */
} user_t;

typedef struct users_s users_t;

/* Opens (creating) the database at path. 0, or an SQLite code with one line
 * in err. */
int users_open(const char *path, users_t **out, char *err, size_t errlen);

/* Closes the store; NULL is a no-op. */
void users_close(users_t *u);

/* Adds a user; EX_STORE_CONFLICT when the email is taken (compared without
 * regard to ASCII case). out receives the stored user. */
ex_store_rc_t users_create(users_t *u, const char *name, const char *email,
                           const char *password_hash, int64_t now, user_t *out);

/* Reads a user by id. */
ex_store_rc_t users_get(users_t *u, int64_t id, user_t *out);

/* Reads a user and the stored password hash by email, for logging in. */
ex_store_rc_t users_find_login(users_t *u, const char *email, user_t *out, char *hash,
                               size_t hashlen);

/* Appends up to limit users after skipping offset, by ascending id, to the
 * JSON array users, as user_public_json() (no email). */
ex_store_rc_t users_list(users_t *u, int64_t limit, int64_t offset, cJSON *users);

/* The API's JSON of a user, or NULL when out of memory: the whole record,
 * for the user it belongs to. */
cJSON *user_json(const user_t *user);

/* What other signed-in users may see of a user: id and name only. */
cJSON *user_public_json(const user_t *user);

#endif /* USER_USERS_H */
