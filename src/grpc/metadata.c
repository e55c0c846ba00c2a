/*
 * Metadata lists: ordered (key, value) pairs with lower-case keys; -bin
 * values are kept decoded and encoded only on the wire.
 */
#include <string.h>

#include "grpc-internal.h"

typedef struct md_entry_s {
  char *key;
  char *value; /* NUL-terminated copy of len bytes */
  size_t len;
} md_entry_t;

struct msvc_grpc_metadata_s {
  md_entry_t *v;
  size_t n;
  size_t cap;
};

int msvc_grpc_metadata_new(msvc_grpc_metadata_t **out) {
  if (out == NULL)
    return MSVC_EINVAL;
  *out = msvc__calloc(1, sizeof(**out));
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

void msvc_grpc_metadata_free(msvc_grpc_metadata_t *md) {
  size_t i;

  if (md == NULL)
    return;
  for (i = 0; i < md->n; i++) {
    msvc__free(md->v[i].key);
    msvc__free(md->v[i].value);
  }
  msvc__free(md->v);
  msvc__free(md);
}

bool msvc__grpc_key_ok(const char *key, size_t len, bool reserved) {
  size_t i;

  if (len == 0)
    return false;
  for (i = 0; i < len; i++) {
    char c = key[i];

    if (c >= 'A' && c <= 'Z')
      continue; /* lower-cased on the way in */
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' ||
          c == '.'))
      return false;
  }
  if (!reserved && len >= 5 && msvc__strncasecmp(key, "grpc-", 5) == 0)
    return false;
  return true;
}

static bool is_bin(const char *key, size_t len) {
  return len > 4 && msvc__strncasecmp(key + len - 4, "-bin", 4) == 0;
}

static int push(msvc_grpc_metadata_t *md, const char *key, size_t klen, const void *value,
                size_t len) {
  md_entry_t *e;
  size_t i;

  if (md->n == md->cap) {
    size_t cap = md->cap == 0 ? 4 : md->cap * 2;
    md_entry_t *v = msvc__realloc(md->v, cap * sizeof(*v));

    if (v == NULL)
      return MSVC_ENOMEM;
    md->v = v;
    md->cap = cap;
  }
  e = &md->v[md->n];
  e->key = msvc__strndup(key, klen);
  e->value = msvc__malloc(len + 1);
  if (e->key == NULL || e->value == NULL) {
    msvc__free(e->key);
    msvc__free(e->value);
    return MSVC_ENOMEM;
  }
  for (i = 0; i < klen; i++)
    if (e->key[i] >= 'A' && e->key[i] <= 'Z')
      e->key[i] = (char)(e->key[i] - 'A' + 'a');
  if (len > 0)
    memcpy(e->value, value, len);
  e->value[len] = '\0';
  e->len = len;
  md->n++;
  return MSVC_OK;
}

int msvc_grpc_metadata_add(msvc_grpc_metadata_t *md, const char *key, const void *value,
                           size_t len) {
  size_t klen, i;

  if (md == NULL || key == NULL || (value == NULL && len > 0))
    return MSVC_EINVAL;
  klen = strlen(key);
  if (!msvc__grpc_key_ok(key, klen, false))
    return MSVC_EINVAL;
  if (!is_bin(key, klen))
    for (i = 0; i < len; i++)
      if (((const unsigned char *)value)[i] < 0x20 || ((const unsigned char *)value)[i] > 0x7e)
        return MSVC_EINVAL;
  return push(md, key, klen, value, len);
}

int msvc__grpc_metadata_add_wire(msvc_grpc_metadata_t *md, const char *key, size_t klen,
                                 const char *value, size_t vlen) {
  msvc__buf_t b;
  int r;

  if (!is_bin(key, klen))
    return push(md, key, klen, value, vlen);
  msvc__buf_init(&b, 0);
  r = msvc__grpc_b64_decode(&b, value, vlen);
  if (r == MSVC_OK)
    r = push(md, key, klen, b.data, b.len);
  msvc__buf_free(&b);
  return r;
}

int msvc__grpc_metadata_wire(const msvc_grpc_metadata_t *md, msvc__grpc_md_fn fn, void *data) {
  size_t i;
  int r = MSVC_OK;

  for (i = 0; md != NULL && i < md->n && r == MSVC_OK; i++) {
    const md_entry_t *e = &md->v[i];

    if (is_bin(e->key, strlen(e->key))) {
      msvc__buf_t b;

      msvc__buf_init(&b, 0);
      r = msvc__grpc_b64_encode(&b, e->value, e->len);
      if (r == MSVC_OK)
        r = fn(data, e->key, b.data != NULL ? b.data : "", b.len);
      msvc__buf_free(&b);
    } else {
      r = fn(data, e->key, e->value, e->len);
    }
  }
  return r;
}

size_t msvc_grpc_metadata_count(const msvc_grpc_metadata_t *md) {
  return md != NULL ? md->n : 0;
}

const char *msvc_grpc_metadata_get(const msvc_grpc_metadata_t *md, const char *key,
                                   size_t *len) {
  size_t i;

  if (md == NULL || key == NULL)
    return NULL;
  for (i = 0; i < md->n; i++)
    if (msvc__strcasecmp(md->v[i].key, key) == 0) {
      if (len != NULL)
        *len = md->v[i].len;
      return md->v[i].value;
    }
  return NULL;
}

int msvc_grpc_metadata_at(const msvc_grpc_metadata_t *md, size_t i, const char **key,
                          const char **value, size_t *len) {
  if (md == NULL || i >= md->n)
    return MSVC_ERANGE;
  if (key != NULL)
    *key = md->v[i].key;
  if (value != NULL)
    *value = md->v[i].value;
  if (len != NULL)
    *len = md->v[i].len;
  return MSVC_OK;
}
