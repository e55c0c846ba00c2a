/* static://svc=host:port,host:port;svc2=host:port
 *
 * A fixed table, parsed once. Read-only: registering is refused. Instance
 * ids are derived from the endpoint ("127.0.0.1-8081") so that they stay the
 * same from one start to the next. */
#include <stdio.h>
#include <stdlib.h>

#include "registry/registry-internal.h"

typedef struct static_backend_s {
  msvc__reg_backend_t base;
  size_t count;
  msvc_registry_set_t **sets;
} static_backend_t;

static void table_free(static_backend_t *sb) {
  size_t i;

  for (i = 0; i < sb->count; i++)
    msvc_registry_set_unref(sb->sets[i]);
  msvc__free(sb->sets);
  msvc__free(sb);
}

static int why(char *err, size_t errlen, const char *what, const char *arg,
               int len) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s \"%.*s\"", what, len, arg);
  return MSVC_EURI;
}

/* Splits "host:port" or "[v6]:port"; writes the bare host into host. */
static int split_endpoint(const char *s, size_t len, char *host, size_t hcap,
                          uint16_t *port) {
  const char *h = s, *colon = NULL;
  size_t hlen, i;
  unsigned long p = 0;

  for (i = 0; i < len; i++)
    if (s[i] == ':')
      colon = s + i;
  if (colon == NULL)
    return MSVC_EURI;
  hlen = (size_t)(colon - s);
  if (len > 0 && s[0] == '[') {
    if (hlen < 3 || s[hlen - 1] != ']')
      return MSVC_EURI;
    h = s + 1;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= hcap || colon + 1 == s + len)
    return MSVC_EURI;
  for (i = 0; i < hlen; i++)
    if ((unsigned char)h[i] <= ' ' || strchr("/@[]=,;", h[i]) != NULL)
      return MSVC_EURI;
  for (const char *c = colon + 1; c < s + len; c++) {
    if (*c < '0' || *c > '9' || p > 65535)
      return MSVC_EURI;
    p = p * 10 + (unsigned long)(*c - '0');
  }
  if (p == 0 || p > 65535)
    return MSVC_EURI;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (uint16_t)p;
  return MSVC_OK;
}

static int add_endpoint(msvc_registry_set_t *set, const char *s, size_t len) {
  char host[MSVC_REGISTRY_ADDRESS_MAX + 1], id[MSVC_REGISTRY_ADDRESS_MAX + 8];
  msvc_registry_instance_t tmp, copy;
  uint16_t port;
  size_t i;
  int rc;

  if ((rc = split_endpoint(s, len, host, sizeof(host), &port)) != 0)
    return rc;
  snprintf(id, sizeof(id), "%s-%u", host, (unsigned)port);
  for (i = 0; id[i] != '\0'; i++)
    if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
          (id[i] >= '0' && id[i] <= '9') || id[i] == '.' || id[i] == '-'))
      id[i] = '_';
  msvc_registry_instance_init(&tmp);
  tmp.port = port;
  tmp.id = id;
  tmp.service = set->service;
  tmp.address = host;
  if ((rc = msvc__reg_instance_copy(&copy, &tmp)) != MSVC_OK)
    return rc;
  if ((rc = msvc__reg_set_add(set, &copy)) != MSVC_OK)
    msvc__reg_instance_clear(&copy);
  return rc;
}

/* One "svc=ep,ep" group. */
static int parse_group(static_backend_t *sb, const char *g, size_t len,
                       char *err, size_t errlen) {
  const char *eq = memchr(g, '=', len), *p, *end = g + len;
  char name[MSVC_REGISTRY_NAME_MAX + 1];
  msvc_registry_set_t *set, **grown;
  size_t i;
  int rc = MSVC_OK;

  if (eq == NULL || (size_t)(eq - g) > MSVC_REGISTRY_NAME_MAX)
    return why(err, errlen, "expected service=host:port[,host:port...], got", g,
               (int)len);
  memcpy(name, g, (size_t)(eq - g));
  name[eq - g] = '\0';
  if (!msvc__reg_name_valid(name))
    return why(err, errlen, "invalid service name", name,
               (int)strlen(name));
  for (i = 0; i < sb->count; i++)
    if (strcmp(sb->sets[i]->service, name) == 0)
      return why(err, errlen, "service listed twice:", name,
                 (int)strlen(name));
  if ((set = msvc__reg_set_new(name)) == NULL)
    return MSVC_ENOMEM;
  for (p = eq + 1; rc == MSVC_OK && p <= end; p++) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma != NULL ? comma : end;
    rc = add_endpoint(set, p, (size_t)(stop - p));
    if (rc == MSVC_EURI)
      why(err, errlen, "expected host:port, got", p, (int)(stop - p));
    p = stop;
  }
  grown = rc == MSVC_OK
              ? msvc__realloc(sb->sets, (sb->count + 1) * sizeof(*grown))
              : NULL;
  if (grown == NULL) {
    msvc_registry_set_unref(set);
    return rc != MSVC_OK ? rc : MSVC_ENOMEM;
  }
  msvc__reg_set_finish(set);
  sb->sets = grown;
  sb->sets[sb->count++] = set;
  return MSVC_OK;
}

static const msvc__reg_ops_t static_ops;

int msvc__reg_static_open(msvc_registry_t *reg, const char *spec, char *err,
                          size_t errlen, msvc__reg_backend_t **out) {
  static_backend_t *sb = msvc__calloc(1, sizeof(*sb));
  const char *p = spec, *end = spec + strlen(spec);
  int rc = MSVC_OK;

  if (sb == NULL)
    return MSVC_ENOMEM;
  while (rc == MSVC_OK && p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *stop = semi != NULL ? semi : end;
    if (stop > p)
      rc = parse_group(sb, p, (size_t)(stop - p), err, errlen);
    p = stop + 1;
  }
  if (rc == MSVC_OK && sb->count == 0)
    rc = why(err, errlen, "static needs at least one service=host:port, got",
             spec, (int)strlen(spec));
  if (rc != MSVC_OK || out == NULL) {
    table_free(sb);
    return rc;
  }
  sb->base.ops = &static_ops;
  sb->base.reg = reg;
  *out = &sb->base;
  return MSVC_OK;
}

static msvc_registry_set_t *lookup(msvc__reg_backend_t *b, const char *svc) {
  static_backend_t *sb = (static_backend_t *)b;
  size_t i;

  for (i = 0; i < sb->count; i++)
    if (strcmp(sb->sets[i]->service, svc) == 0)
      return msvc_registry_set_ref(sb->sets[i]);
  return msvc__reg_set_new(svc);
}

static int static_put(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  (void)b;
  (void)lease;
  return MSVC_ENOTSUP;
}

static int static_resolve(msvc__reg_backend_t *b, msvc__reg_query_t *q) {
  q->set = lookup(b, q->service);
  return q->set != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static int static_watch_start(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  (void)b;
  (void)w;
  return MSVC_OK;
}

static void static_watch_refresh(msvc__reg_backend_t *b,
                                 msvc_registry_watch_t *w) {
  msvc_registry_set_t *set = lookup(b, w->service);

  msvc__reg_watch_report(w, set != NULL ? MSVC_OK : MSVC_ENOMEM, set, 0);
}

static void static_watch_stop(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  (void)b;
  msvc__reg_watch_stopped(w);
}

static void static_close(msvc__reg_backend_t *b) {
  msvc_registry_t *reg = b->reg;

  table_free((static_backend_t *)b);
  msvc__reg_backend_closed(reg);
}

static const msvc__reg_ops_t static_ops = {
    "static",          true,
    false,             static_put,
    static_put,        static_resolve,
    static_watch_start, static_watch_refresh,
    static_watch_stop, static_close,
    NULL};
