/* The etcd v3 JSON gateway's side of the wire: standard base64 for keys and
 * values, int64 fields carried as JSON strings, and zero values left out
 * (so an absent field reads as 0). Everything here parses peer input and
 * must survive arbitrary bytes: the fuzz target calls these directly. */
#include <errno.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "registry/registry-internal.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void msvc__etcd_b64_encode(msvc__buf_t *b, const void *data, size_t len) {
  const unsigned char *p = data;
  size_t i;

  for (i = 0; i + 2 < len; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    char q[4] = {b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                 b64_alphabet[(v >> 6) & 63], b64_alphabet[v & 63]};
    msvc__buf_append(b, q, 4);
  }
  if (len - i == 1) {
    unsigned v = (unsigned)p[i] << 16;
    char q[4] = {b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63], '=',
                 '='};
    msvc__buf_append(b, q, 4);
  } else if (len - i == 2) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
    char q[4] = {b64_alphabet[v >> 18], b64_alphabet[(v >> 12) & 63],
                 b64_alphabet[(v >> 6) & 63], '='};
    msvc__buf_append(b, q, 4);
  }
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int msvc__etcd_b64_decode(const char *in, msvc__buf_t *out) {
  size_t len = strlen(in), i;
  unsigned acc = 0;
  int bits = 0;

  while (len > 0 && in[len - 1] == '=')
    len--;
  if (strlen(in) - len > 2)
    return MSVC_EJSON;
  for (i = 0; i < len; i++) {
    int v = b64_value(in[i]);
    if (v < 0)
      return MSVC_EJSON;
    acc = (acc << 6 | (unsigned)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      msvc__buf_putc(out, (char)((acc >> bits) & 0xff));
    }
  }
  return out->err;
}

int64_t msvc__etcd_int(const void *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char *end;
  long long n;

  if (cJSON_IsNumber(v) && v->valuedouble >= -9.2e18 && v->valuedouble <= 9.2e18)
    return (int64_t)v->valuedouble;
  if (!cJSON_IsString(v) || v->valuestring == NULL)
    return 0;
  errno = 0;
  n = strtoll(v->valuestring, &end, 10);
  if (errno != 0 || end == v->valuestring || *end != '\0')
    return 0;
  return (int64_t)n;
}

int msvc__etcd_parse_lease(const char *json, size_t len, int64_t *id,
                           int64_t *ttl) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  const cJSON *res;

  *id = 0;
  *ttl = 0;
  if (root == NULL)
    return msvc__json_parse_error(json, len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return MSVC_EJSON;
  }
  /* keepalive wraps its answer in "result"; grant does not. */
  res = cJSON_GetObjectItemCaseSensitive(root, "result");
  if (!cJSON_IsObject(res))
    res = root;
  *id = msvc__etcd_int(res, "ID");
  *ttl = msvc__etcd_int(res, "TTL");
  cJSON_Delete(root);
  return MSVC_OK;
}

/* One key-value of a range answer into the set; a foreign or corrupt value
 * is skipped, not fatal: somebody else's key must not hide everyone. */
static int add_kv(const cJSON *kv, msvc_registry_set_t *set) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
  msvc_registry_instance_t inst;
  msvc__buf_t raw;
  int rc;

  if (!cJSON_IsString(v) || v->valuestring == NULL)
    return MSVC_OK;
  msvc__buf_init(&raw, 1 << 20);
  rc = msvc__etcd_b64_decode(v->valuestring, &raw);
  if (rc == MSVC_ENOMEM) {
    msvc__buf_free(&raw);
    return rc;
  }
  if (rc != MSVC_OK || raw.len == 0) {
    msvc__buf_free(&raw);
    return MSVC_OK;
  }
  rc = msvc__reg_instance_from_json(raw.data, raw.len, &inst, NULL, NULL);
  msvc__buf_free(&raw);
  if (rc == MSVC_ENOMEM)
    return rc;
  if (rc != MSVC_OK || strcmp(inst.service, set->service) != 0) {
    if (rc == MSVC_OK)
      msvc__reg_instance_clear(&inst);
    return MSVC_OK;
  }
  if ((rc = msvc__reg_set_add(set, &inst)) != MSVC_OK)
    msvc__reg_instance_clear(&inst);
  return rc;
}

int msvc__etcd_parse_range(const char *json, size_t len, const char *service,
                           msvc_registry_set_t **out, int64_t *revision) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  const cJSON *kvs, *kv;
  msvc_registry_set_t *set;
  int rc = MSVC_OK;

  *out = NULL;
  *revision = 0;
  if (root == NULL)
    return msvc__json_parse_error(json, len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return MSVC_EJSON;
  }
  *revision =
      msvc__etcd_int(cJSON_GetObjectItemCaseSensitive(root, "header"), "revision");
  if ((set = msvc__reg_set_new(service)) == NULL) {
    cJSON_Delete(root);
    return MSVC_ENOMEM;
  }
  kvs = cJSON_GetObjectItemCaseSensitive(root, "kvs");
  if (kvs != NULL && !cJSON_IsArray(kvs))
    rc = MSVC_EJSON;
  else if (kvs != NULL)
    cJSON_ArrayForEach(kv, kvs) {
      if (cJSON_IsObject(kv) && (rc = add_kv(kv, set)) != MSVC_OK)
        break;
    }
  cJSON_Delete(root);
  if (rc != MSVC_OK) {
    msvc_registry_set_unref(set);
    return rc;
  }
  msvc__reg_set_finish(set);
  *out = set;
  return MSVC_OK;
}

size_t msvc__etcd_next_object(const char *p, size_t len, size_t *start) {
  size_t i;
  int depth = 0;
  bool in_str = false, esc = false;

  for (i = 0; i < len; i++) {
    char c = p[i];
    if (depth == 0) {
      if (c == '{') {
        *start = i;
        depth = 1;
      }
      continue;
    }
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{') {
      /* Bounded depth: a hostile stream cannot make cJSON recurse deep. */
      if (++depth > 64)
        return (size_t)-1;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return 0;
}

int msvc__etcd_parse_watch_msg(const char *json, size_t len,
                               msvc__etcd_watch_msg_t *m) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  const cJSON *res, *ev;

  memset(m, 0, sizeof(*m));
  if (root == NULL)
    return msvc__json_parse_error(json, len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return MSVC_EJSON;
  }
  res = cJSON_GetObjectItemCaseSensitive(root, "result");
  if (!cJSON_IsObject(res)) {
    /* The gateway reports a broken stream as {"error":{...}}. */
    m->error = true;
    cJSON_Delete(root);
    return MSVC_OK;
  }
  m->revision = msvc__etcd_int(
      cJSON_GetObjectItemCaseSensitive(res, "header"), "revision");
  m->compact_revision = msvc__etcd_int(res, "compact_revision");
  m->created = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"));
  m->canceled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"));
  ev = cJSON_GetObjectItemCaseSensitive(res, "events");
  if (cJSON_IsArray(ev))
    m->events = (size_t)cJSON_GetArraySize(ev);
  cJSON_Delete(root);
  return MSVC_OK;
}
