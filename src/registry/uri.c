/* Registry URIs and the default location of the local backend. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "registry/registry-internal.h"

#define ACCEPTED_FORMS                                                      \
  "accepted forms: memory://, local:///path/to/dir (local:// for the "      \
  "default directory), static://service=host:port[,host:port...][;service=" \
  "...], etcd://host:port[,host:port...], "                               \
  "dns://?domain=D[&server=ip:port]"

static int fail(char *err, size_t errlen, int code, const char *uri,
                const char *why) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "bad registry URI \"%.200s\": %s; %s", uri, why,
             ACCEPTED_FORMS);
  return code;
}

/* The default directory is private to the user: $XDG_RUNTIME_DIR is
 * (0700, made by the login manager), and the fallback carries the uid in
 * its name so that two users never share it. A shared, fixed name would
 * let the first user to create it receive everybody's traffic. */
int msvc__reg_default_dir(char **out) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  const char *tmp = getenv("TMPDIR");
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  /* A relative XDG_RUNTIME_DIR (or TMPDIR) is invalid; ignore it rather
   * than create a registry relative to the working directory. */
  if (xdg != NULL && xdg[0] == '/') {
    msvc__buf_puts(&b, xdg);
    while (b.len > 1 && b.data[b.len - 1] == '/')
      b.data[--b.len] = '\0';
    msvc__buf_puts(&b, "/msvc");
  } else {
    msvc__buf_puts(&b, tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    while (b.len > 1 && b.data[b.len - 1] == '/')
      b.data[--b.len] = '\0';
    msvc__buf_printf(&b, "%smsvc-%lu", b.len > 1 ? "/" : "",
                     (unsigned long)geteuid());
  }
  *out = msvc__buf_detach(&b, NULL);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int msvc_registry_default_uri(char **out) {
  char *dir;
  msvc__buf_t b;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  if ((rc = msvc__reg_default_dir(&dir)) != MSVC_OK)
    return rc;
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "local://");
  msvc__buf_puts(&b, dir);
  msvc__free(dir);
  *out = msvc__buf_detach(&b, NULL);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

/* host:port with a port in 1..65535; host may be a bracketed IPv6
 * address. */
static bool endpoint_valid(const char *s, size_t len) {
  const char *colon;
  size_t hostlen, i;
  unsigned long port = 0;

  if (len == 0)
    return false;
  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL || close == s + 1)
      return false;
    colon = close + 1;
    if (colon >= s + len || *colon != ':')
      return false;
  } else {
    colon = NULL;
    for (i = 0; i < len; i++)
      if (s[i] == ':')
        colon = s + i;
    if (colon == NULL || colon == s)
      return false;
  }
  hostlen = (size_t)(colon - s);
  for (i = 0; i < hostlen; i++)
    if ((unsigned char)s[i] <= ' ' || s[i] == '/' || s[i] == '@')
      return false;
  if (colon + 1 == s + len)
    return false;
  for (i = (size_t)(colon + 1 - s); i < len; i++) {
    if (s[i] < '0' || s[i] > '9' || port > 65535)
      return false;
    port = port * 10 + (unsigned long)(s[i] - '0');
  }
  return port >= 1 && port <= 65535;
}

static int parse_etcd(const char *uri, const char *rest, char **arg,
                      char *err, size_t errlen) {
  const char *p = rest;

  if (*p == '\0')
    return fail(err, errlen, MSVC_EURI, uri, "etcd needs at least one host:port");
  while (*p != '\0') {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    if (!endpoint_valid(p, len))
      return fail(err, errlen, MSVC_EURI, uri, "etcd endpoint is not host:port");
    p += len;
    if (*p == ',' && *++p == '\0')
      return fail(err, errlen, MSVC_EURI, uri, "empty etcd endpoint");
  }
  *arg = msvc__strdup(rest);
  return *arg != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static int parse_local(const char *uri, const char *rest, char **arg,
                       char *err, size_t errlen) {
  if (*rest == '\0')
    return msvc__reg_default_dir(arg);
  if (rest[0] != '/')
    return fail(err, errlen, MSVC_EURI, uri,
                "local needs an absolute path (three slashes: local:///dir)");
  if (strlen(rest) > 3800)
    return fail(err, errlen, MSVC_EURI, uri, "directory path too long");
  *arg = msvc__strdup(rest);
  return *arg != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int msvc__reg_uri_parse(const char *uri, msvc__reg_kind_t *kind, char **arg,
                        char *err, size_t errlen) {
  const char *sep;
  size_t slen;

  *arg = NULL;
  if (uri == NULL)
    return fail(err, errlen, MSVC_EURI, "(null)", "no URI");
  sep = strstr(uri, "://");
  if (sep == NULL)
    return fail(err, errlen, MSVC_EURI, uri, "missing scheme");
  slen = (size_t)(sep - uri);
  sep += 3;
  if (slen == 6 && msvc__strncasecmp(uri, "memory", 6) == 0) {
    *kind = MSVC__REG_MEMORY;
    return *sep == '\0' ? MSVC_OK
                        : fail(err, errlen, MSVC_EURI, uri,
                               "memory:// takes nothing after the scheme");
  }
  if (slen == 5 && msvc__strncasecmp(uri, "local", 5) == 0) {
    *kind = MSVC__REG_LOCAL;
    return parse_local(uri, sep, arg, err, errlen);
  }
  if (slen == 6 && msvc__strncasecmp(uri, "static", 6) == 0) {
    *kind = MSVC__REG_STATIC;
    *arg = msvc__strdup(sep);
    return *arg != NULL ? MSVC_OK : MSVC_ENOMEM;
  }
  if (slen == 4 && msvc__strncasecmp(uri, "etcd", 4) == 0) {
    *kind = MSVC__REG_ETCD;
    return parse_etcd(uri, sep, arg, err, errlen);
  }
  if (slen == 3 && msvc__strncasecmp(uri, "dns", 3) == 0) {
    msvc__dns_config_t cfg;
    char why[300];
    *kind = MSVC__REG_DNS;
    if (msvc__dns_config_parse(sep, &cfg, why, sizeof(why)) != MSVC_OK)
      return fail(err, errlen, MSVC_EURI, uri, why);
#ifndef MSVC_HAVE_CARES
    if (err != NULL && errlen > 0)
      snprintf(err, errlen,
               "registry URI \"%.200s\": libmsvc was built without DNS "
               "support (c-ares was not found at build time)",
               uri);
    return MSVC_ENOTSUP;
#else
    *arg = msvc__strdup(sep);
    return *arg != NULL ? MSVC_OK : MSVC_ENOMEM;
#endif
  }
  return fail(err, errlen, MSVC_EURI, uri, "unknown scheme");
}

int msvc_registry_check_uri(const char *uri, char *err, size_t errlen) {
  msvc__reg_kind_t kind;
  char *arg = NULL;
  int rc;

  if (err != NULL && errlen > 0)
    err[0] = '\0';
  rc = msvc__reg_uri_parse(uri, &kind, &arg, err, errlen);
  if (rc == MSVC_OK && kind == MSVC__REG_LOCAL)
    rc = msvc__reg_local_check(arg, false, err, errlen);
  if (rc == MSVC_OK && kind == MSVC__REG_STATIC) {
    char why[256] = "";
    rc = msvc__reg_static_open(NULL, arg, why, sizeof(why), NULL);
    if (rc == MSVC_EURI)
      fail(err, errlen, rc, uri, why);
  }
  msvc__free(arg);
  return rc;
}
