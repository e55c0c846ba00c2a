/*
 * Small pure helpers of the admin block: the listener's address, the
 * token check and the redaction of secrets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msvc/error.h>

#include "admin-internal.h"

int msvc__admin_parse_addr(const char *s, char *host, size_t hostcap, int *port) {
  const char *colon, *h = s, *he;
  char *end;
  unsigned long p;
  size_t n;

  if (s == NULL || host == NULL || port == NULL || hostcap == 0) return MSVC_EINVAL;
  if (*s == '[') {
    h = s + 1;
    he = strchr(h, ']');
    if (he == NULL || he[1] != ':') return MSVC_EINVAL;
    colon = he + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) return MSVC_EINVAL;
    he = colon;
  }
  n = (size_t)(he - h);
  if (n == 0 || n >= hostcap) return MSVC_EINVAL;
  if (colon[1] < '0' || colon[1] > '9') return MSVC_EINVAL;
  errno = 0;
  p = strtoul(colon + 1, &end, 10);
  if (errno != 0 || *end != '\0' || p > 65535) return MSVC_EINVAL;
  memcpy(host, h, n);
  host[n] = '\0';
  *port = (int)p;
  return MSVC_OK;
}

/* Every byte of both strings is looked at whatever they hold, so the time
 * taken says only how long the presented token was. */
static bool same_secret(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char diff = (unsigned char)(alen != blen);
  size_t i;

  for (i = 0; i < alen; i++)
    diff |= (unsigned char)(a[i] ^ b[blen == 0 ? 0 : i % blen]);
  return diff == 0 && blen > 0;
}

bool msvc__admin_token_ok(const char *authorization, const char *token) {
  const char *t;
  size_t n;

  if (token == NULL) return true;
  if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0) return false;
  t = authorization + 7;
  while (*t == ' ') t++;
  n = strlen(t);
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
  return same_secret(t, n, token, strlen(token));
}

bool msvc__admin_is_secret(const char *key) {
  static const char *const words[] = {"TOKEN", "PASSWORD", "SECRET", "KEY",
                                      "PASSWD", "CREDENTIAL", "AUTH", "COOKIE"};
  char up[128];
  size_t i, n = key != NULL ? strlen(key) : 0;

  if (n == 0) return false;
  if (n >= sizeof(up)) n = sizeof(up) - 1;
  for (i = 0; i < n; i++) up[i] = (char)(key[i] >= 'a' && key[i] <= 'z' ? key[i] - 32 : key[i]);
  up[n] = '\0';
  /* A file name of a key is no secret; its content would be. */
  if (n > 5 && (strcmp(up + n - 5, "_FILE") == 0 || strcmp(up + n - 5, "_PATH") == 0))
    return false;
  for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if (strstr(up, words[i]) != NULL) return true;
  return false;
}

void msvc__admin_redact(const char *key, const char *value, char *out, size_t cap) {
  const char *scheme, *at, *colon, *slash;
  size_t n;

  if (cap == 0) return;
  out[0] = '\0';
  if (value == NULL) return;
  if (msvc__admin_is_secret(key)) {
    snprintf(out, cap, "%s", "[redacted]");
    return;
  }
  /* scheme://user:password@host...: keep the user, hide the password. */
  scheme = strstr(value, "://");
  if (scheme != NULL) {
    slash = strchr(scheme + 3, '/');
    at = strchr(scheme + 3, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
      colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
      if (colon != NULL) {
        n = (size_t)(colon - value) + 1;
        snprintf(out, cap, "%.*s[redacted]%s", (int)n, value, at);
        return;
      }
    }
  }
  snprintf(out, cap, "%s", value);
}

bool msvc__admin_section_name_ok(const char *name) {
  size_t i, n = name != NULL ? strlen(name) : 0;

  if (n == 0 || n > MSVC_ADMIN_SECTION_NAME_MAX) return false;
  for (i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}
