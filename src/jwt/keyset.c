/*
 * Key sets: an immutable, reference-counted snapshot of keys behind a
 * pointer that is swapped under a short lock. A verification takes a
 * reference to the snapshot it starts with and uses it to the end, so a
 * rotation never shows a reader half of the old keys and half of the new.
 */
#include "jwt/jwt-internal.h"

#include <pthread.h>
#include <stdio.h>

struct msvc_jwt_keyset_s {
  pthread_mutex_t mu; /* guards `cur` (the pointer and taking a reference) */
  jwt_snap_t *cur;
  atomic_uint_fast64_t generation;
  msvc_jwt_unknown_kid_fn on_unknown_kid;
  void *on_unknown_kid_data;
};

static jwt_snap_t *snap_new(msvc_jwt_key_t *const *keys, size_t n) {
  jwt_snap_t *s = msvc__malloc(sizeof(*s) + n * sizeof(s->keys[0]));
  size_t i;

  if (s == NULL)
    return NULL;
  atomic_init(&s->refs, 1);
  s->n = n;
  for (i = 0; i < n; i++)
    s->keys[i] = msvc__jwt_key_ref(keys[i]);
  return s;
}

void msvc__jwt_snap_release(jwt_snap_t *s) {
  size_t i;

  if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (i = 0; i < s->n; i++)
    msvc_jwt_key_free(s->keys[i]);
  msvc__free(s);
}

jwt_snap_t *msvc__jwt_keyset_acquire(msvc_jwt_keyset_t *ks) {
  jwt_snap_t *s;

  pthread_mutex_lock(&ks->mu);
  s = ks->cur;
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&ks->mu);
  return s;
}

bool msvc__jwt_snap_has_fp(const jwt_snap_t *s, const unsigned char fp[32]) {
  size_t i;

  for (i = 0; i < s->n; i++)
    if (memcmp(s->keys[i]->fp, fp, 32) == 0)
      return true;
  return false;
}

void msvc__jwt_keyset_unknown_kid(msvc_jwt_keyset_t *ks, const char *kid) {
  if (ks->on_unknown_kid != NULL)
    ks->on_unknown_kid(ks->on_unknown_kid_data, kid);
}

int msvc_jwt_keyset_new(msvc_jwt_keyset_t **out) {
  msvc_jwt_keyset_t *ks;

  if (out == NULL)
    return MSVC_EINVAL;
  ks = msvc__calloc(1, sizeof(*ks));
  if (ks == NULL)
    return MSVC_ENOMEM;
  ks->cur = snap_new(NULL, 0);
  if (ks->cur == NULL || pthread_mutex_init(&ks->mu, NULL) != 0) {
    msvc__free(ks->cur);
    msvc__free(ks);
    return MSVC_ENOMEM;
  }
  atomic_init(&ks->generation, 1);
  *out = ks;
  return MSVC_OK;
}

void msvc_jwt_keyset_free(msvc_jwt_keyset_t *ks) {
  if (ks == NULL)
    return;
  msvc__jwt_snap_release(ks->cur);
  pthread_mutex_destroy(&ks->mu);
  msvc__free(ks);
}

static void install(msvc_jwt_keyset_t *ks, jwt_snap_t *next) {
  jwt_snap_t *old;

  pthread_mutex_lock(&ks->mu);
  old = ks->cur;
  ks->cur = next;
  atomic_fetch_add(&ks->generation, 1);
  pthread_mutex_unlock(&ks->mu);
  msvc__jwt_snap_release(old); /* outside the lock: may free keys */
}

int msvc_jwt_keyset_replace(msvc_jwt_keyset_t *ks, msvc_jwt_key_t *const *keys,
                            size_t n) {
  jwt_snap_t *next;
  size_t i;

  if (ks == NULL || (n > 0 && keys == NULL))
    return MSVC_EINVAL;
  if (n > JWT_MAX_KEYS)
    return MSVC_ELIMIT;
  for (i = 0; i < n; i++)
    if (keys[i] == NULL)
      return MSVC_EINVAL;
  next = snap_new(keys, n);
  if (next == NULL)
    return MSVC_ENOMEM;
  install(ks, next);
  return MSVC_OK;
}

int msvc_jwt_keyset_add(msvc_jwt_keyset_t *ks, msvc_jwt_key_t *key) {
  jwt_snap_t *cur, *next;
  int rc = MSVC_OK;

  if (ks == NULL || key == NULL)
    return MSVC_EINVAL;
  /* Serialise writers on the lock so two concurrent adds cannot lose one. */
  pthread_mutex_lock(&ks->mu);
  cur = ks->cur;
  if (cur->n >= JWT_MAX_KEYS) {
    rc = MSVC_ELIMIT;
  } else if ((next = msvc__malloc(sizeof(*next) + (cur->n + 1) * sizeof(next->keys[0]))) == NULL) {
    rc = MSVC_ENOMEM;
  } else {
    size_t i;

    atomic_init(&next->refs, 1);
    next->n = cur->n + 1;
    for (i = 0; i < cur->n; i++)
      next->keys[i] = msvc__jwt_key_ref(cur->keys[i]);
    next->keys[cur->n] = msvc__jwt_key_ref(key);
    ks->cur = next;
    atomic_fetch_add(&ks->generation, 1);
  }
  pthread_mutex_unlock(&ks->mu);
  if (rc == MSVC_OK)
    msvc__jwt_snap_release(cur);
  return rc;
}

size_t msvc_jwt_keyset_count(const msvc_jwt_keyset_t *ks) {
  jwt_snap_t *s;
  size_t n;

  if (ks == NULL)
    return 0;
  s = msvc__jwt_keyset_acquire((msvc_jwt_keyset_t *)ks);
  n = s->n;
  msvc__jwt_snap_release(s);
  return n;
}

uint64_t msvc_jwt_keyset_generation(const msvc_jwt_keyset_t *ks) {
  return ks != NULL ? atomic_load(&ks->generation) : 0;
}

void msvc_jwt_keyset_on_unknown_kid(msvc_jwt_keyset_t *ks,
                                    msvc_jwt_unknown_kid_fn cb, void *data) {
  if (ks == NULL)
    return;
  ks->on_unknown_kid = cb;
  ks->on_unknown_kid_data = data;
}

/* ---- JWK Sets -------------------------------------------------------------- */

static int parse_jwks(const cJSON *root, msvc_jwt_key_t **keys, size_t *n) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
  const cJSON *jwk;
  size_t i = 0, idx = 0;
  int rc = MSVC_OK;
  bool skip;

  if (!cJSON_IsArray(arr))
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK Set without a \"keys\" array");
  cJSON_ArrayForEach(jwk, arr) {
    if (i >= JWT_MAX_KEYS) {
      rc = msvc__jwt_fail(MSVC_ELIMIT, "JWK Set with more than %d keys", JWT_MAX_KEYS);
      break;
    }
    rc = msvc__jwt_key_from_cjson(jwk, &keys[i], &skip);
    if (rc == MSVC_OK)
      i++;
    else if (rc == MSVC_EJWT_BAD_KEY && skip)
      rc = MSVC_OK;
    else {
      char detail[200];

      snprintf(detail, sizeof(detail), "%s", msvc_jwt_errmsg());
      msvc__jwt_fail(rc, "JWK Set entry %zu: %s", idx, detail);
      break;
    }
    idx++;
  }
  if (rc == MSVC_OK && i == 0)
    rc = msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK Set without a usable signature key");
  *n = i;
  return rc;
}

int msvc_jwt_keyset_load_jwks(msvc_jwt_keyset_t *ks, const char *json, size_t len) {
  cJSON *root;
  msvc_jwt_key_t **keys;
  size_t n = 0, i;
  int rc;

  if (ks == NULL || json == NULL)
    return MSVC_EINVAL;
  if (len > JWT_MAX_JWKS_BYTES)
    return msvc__jwt_fail(MSVC_ETOOLARGE, "JWK Set larger than 1 MiB");
  rc = msvc__jwt_parse_object(json, len, &root);
  if (rc == MSVC_ENOMEM)
    return msvc__jwt_fail(MSVC_ENOMEM, "out of memory parsing the JWK Set");
  if (rc != MSVC_OK)
    return msvc__jwt_fail(MSVC_EJWT_BAD_KEY, "JWK Set is not a strict JSON object");
  keys = msvc__calloc(JWT_MAX_KEYS, sizeof(*keys));
  if (keys == NULL) {
    cJSON_Delete(root);
    return MSVC_ENOMEM;
  }
  rc = parse_jwks(root, keys, &n);
  cJSON_Delete(root);
  if (rc == MSVC_OK)
    rc = msvc_jwt_keyset_replace(ks, keys, n);
  for (i = 0; i < n; i++)
    msvc_jwt_key_free(keys[i]);
  msvc__free(keys);
  return rc;
}

int msvc_jwt_keyset_load_jwks_file(msvc_jwt_keyset_t *ks, const char *path) {
  char *data;
  size_t len;
  int rc;

  if (ks == NULL || path == NULL)
    return MSVC_EINVAL;
  rc = msvc__jwt_read_file(path, JWT_MAX_JWKS_BYTES, &data, &len);
  if (rc != MSVC_OK)
    return rc;
  rc = msvc_jwt_keyset_load_jwks(ks, data, len);
  msvc__free(data);
  return rc;
}
