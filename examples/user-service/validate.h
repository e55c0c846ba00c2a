/* Validation of user-service requests (pure functions, unit-tested). */
#ifndef USER_VALIDATE_H
#define USER_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* A new user's fields, borrowed from the parsed body. */
typedef struct new_user_s {
  const char *name;
  const char *email;
  const char *password;
} new_user_t;

/* Whether s has the shape of an email address: one '@', a local part of 1
 * to 64 printable ASCII characters other than space and specials, and a
 * domain of dot-separated labels of letters, digits and inner hyphens with
 * at least one dot; 254 characters at most. */
bool email_valid(const char *s);

/* Checks the body of POST /users: name 1..100 characters, email, password
 * 8..128 characters. On failure msg names the field. */
bool validate_new_user(const cJSON *body, new_user_t *out, char *msg, size_t msglen);

/* Checks the body of POST /login: email and password are strings. */
bool validate_login(const cJSON *body, const char **email, const char **password,
                    char *msg, size_t msglen);

#endif /* USER_VALIDATE_H */
