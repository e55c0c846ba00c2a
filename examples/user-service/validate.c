/* Validation of user-service requests (see validate.h). */
#include "validate.h"

#include <stdio.h>
#include <string.h>

#include "ex.h"
#include "users.h"

static bool local_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

static bool label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-';
}

static bool domain_valid(const char *d) {
  size_t label = 0, labels = 1;
  const char *p;

  for (p = d; *p != '\0'; p++) {
    if (*p == '.') {
      if (label == 0 || p[-1] == '-')
        return false;
      label = 0;
      labels++;
    } else if (!label_char(*p) || (label == 0 && *p == '-') || ++label > 63) {
      return false;
    }
  }
  return labels >= 2 && label > 0 && p[-1] != '-';
}

bool email_valid(const char *s) {
  const char *at = strchr(s, '@');
  size_t local, i;

  if (at == NULL || strchr(at + 1, '@') != NULL || strlen(s) > USER_EMAIL_MAX)
    return false;
  local = (size_t)(at - s);
  if (local == 0 || local > 64 || s[0] == '.' || s[local - 1] == '.')
    return false;
  for (i = 0; i < local; i++) {
    if (!local_char(s[i]) || (s[i] == '.' && s[i + 1] == '.'))
      return false;
  }
  return domain_valid(at + 1);
}

bool validate_new_user(const cJSON *body, new_user_t *out, char *msg, size_t msglen) {
  if (!cJSON_IsObject(body)) {
    snprintf(msg, msglen, "body: must be a JSON object");
    return false;
  }
  if (!ex_json_string(body, "", "name", 1, USER_NAME_MAX_CHARS, &out->name, msg, msglen) ||
      !ex_json_string(body, "", "email", 3, USER_EMAIL_MAX, &out->email, msg, msglen))
    return false;
  if (!email_valid(out->email)) {
    snprintf(msg, msglen, "email: must be an email address such as ada@example.com");
    return false;
  }
  return ex_json_string(body, "", "password", USER_PASSWORD_MIN_CHARS,
                        USER_PASSWORD_MAX_CHARS, &out->password, msg, msglen);
}

bool validate_login(const cJSON *body, const char **email, const char **password,
                    char *msg, size_t msglen) {
  if (!cJSON_IsObject(body)) {
    snprintf(msg, msglen, "body: must be a JSON object");
    return false;
  }
  /* Loose bounds only: a wrong password is a 401, not a 400. */
  return ex_json_string(body, "", "email", 1, USER_EMAIL_MAX, email, msg, msglen) &&
         ex_json_string(body, "", "password", 1, 1024, password, msg, msglen);
}
