/* Instances and immutable instance sets. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "registry/registry-internal.h"

void msvc_registry_instance_init(msvc_registry_instance_t *inst) {
  if (inst == NULL)
    return;
  memset(inst, 0, sizeof(*inst));
  inst->weight = 1;
}

/* Names become file and key names, so they are kept to a portable,
 * path-safe alphabet; a leading dot would hide the file from scans. */
bool msvc__reg_name_valid(const char *s) {
  size_t i;

  if (s == NULL || s[0] == '\0' || s[0] == '.')
    return false;
  for (i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok || i >= MSVC_REGISTRY_NAME_MAX)
      return false;
  }
  return true;
}

static bool text_valid(const char *s, size_t max, bool allow_empty) {
  size_t i;

  if (s == NULL)
    return allow_empty;
  for (i = 0; s[i] != '\0'; i++) {
    if ((unsigned char)s[i] < 0x20 || i >= max)
      return false;
  }
  return allow_empty || i > 0;
}

int msvc__reg_instance_validate(const msvc_registry_instance_t *inst) {
  size_t i, j;

  if (inst == NULL || !msvc__reg_name_valid(inst->service))
    return MSVC_EINVAL;
  if (inst->id != NULL && !msvc__reg_name_valid(inst->id))
    return MSVC_EINVAL;
  if (!text_valid(inst->address, MSVC_REGISTRY_ADDRESS_MAX, false) ||
      inst->port == 0 || inst->weight > MSVC_REGISTRY_WEIGHT_MAX ||
      !text_valid(inst->version, MSVC_REGISTRY_NAME_MAX, true))
    return MSVC_EINVAL;
  if (inst->nmetadata > MSVC_REGISTRY_META_MAX ||
      (inst->nmetadata > 0 && inst->metadata == NULL))
    return MSVC_EINVAL;
  for (i = 0; i < inst->nmetadata; i++) {
    const msvc_registry_meta_t *m = &inst->metadata[i];
    if (m->key == NULL || m->key[0] == '\0' || m->value == NULL)
      return MSVC_EINVAL;
    for (j = 0; j < i; j++)
      if (strcmp(inst->metadata[j].key, m->key) == 0)
        return MSVC_EINVAL;
  }
  return MSVC_OK;
}

void msvc__reg_instance_clear(msvc_registry_instance_t *inst) {
  size_t i;
  msvc_registry_meta_t *meta = (msvc_registry_meta_t *)inst->metadata;

  msvc__free((char *)inst->id);
  msvc__free((char *)inst->service);
  msvc__free((char *)inst->address);
  msvc__free((char *)inst->version);
  for (i = 0; meta != NULL && i < inst->nmetadata; i++) {
    msvc__free((char *)meta[i].key);
    msvc__free((char *)meta[i].value);
  }
  msvc__free(meta);
  memset(inst, 0, sizeof(*inst));
}

static int dup_field(const char **dst, const char *src) {
  *dst = msvc__strdup(src != NULL ? src : "");
  return *dst != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int msvc__reg_instance_copy(msvc_registry_instance_t *dst,
                            const msvc_registry_instance_t *src) {
  msvc_registry_meta_t *meta = NULL;
  size_t i;

  memset(dst, 0, sizeof(*dst));
  dst->port = src->port;
  dst->weight = src->weight;
  if (src->nmetadata > 0) {
    meta = msvc__calloc(src->nmetadata, sizeof(*meta));
    if (meta == NULL)
      return MSVC_ENOMEM;
    dst->metadata = meta;
    dst->nmetadata = src->nmetadata;
  }
  if (dup_field(&dst->id, src->id) || dup_field(&dst->service, src->service) ||
      dup_field(&dst->address, src->address) ||
      dup_field(&dst->version, src->version))
    goto oom;
  for (i = 0; i < src->nmetadata; i++) {
    if (dup_field(&meta[i].key, src->metadata[i].key) ||
        dup_field(&meta[i].value, src->metadata[i].value))
      goto oom;
  }
  return MSVC_OK;
oom:
  msvc__reg_instance_clear(dst);
  return MSVC_ENOMEM;
}

static bool str_eq(const char *a, const char *b) {
  return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

bool msvc__reg_instance_equal(const msvc_registry_instance_t *a,
                              const msvc_registry_instance_t *b) {
  size_t i;

  if (!str_eq(a->id, b->id) || !str_eq(a->service, b->service) ||
      !str_eq(a->address, b->address) || a->port != b->port ||
      a->weight != b->weight || !str_eq(a->version, b->version) ||
      a->nmetadata != b->nmetadata)
    return false;
  /* Metadata order is not significant. */
  for (i = 0; i < a->nmetadata; i++) {
    const char *v = msvc_registry_instance_meta(b, a->metadata[i].key);
    if (v == NULL || strcmp(v, a->metadata[i].value) != 0)
      return false;
  }
  return true;
}

const char *msvc_registry_instance_meta(const msvc_registry_instance_t *inst,
                                        const char *key) {
  size_t i;

  if (inst == NULL || key == NULL)
    return NULL;
  for (i = 0; i < inst->nmetadata; i++)
    if (strcmp(inst->metadata[i].key, key) == 0)
      return inst->metadata[i].value;
  return NULL;
}

/* 128 random bits make a collision between independently generated ids
 * negligible (birthday bound ~2^64), across processes and machines, without
 * any coordination. */
void msvc__reg_new_id(char out[33]) {
  uint64_t r[2];
  size_t got = 0;

  while (got < sizeof(r)) {
    ssize_t n = getrandom((char *)r + got, sizeof(r) - got, 0);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  if (got < sizeof(r)) {
    r[0] = msvc__rand64() ^ msvc_wall_ms();
    r[1] = msvc__rand64() ^ ((uint64_t)getpid() << 32);
  }
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)r[0],
           (unsigned long long)r[1]);
}

/* ---- sets ---------------------------------------------------------------- */

msvc_registry_set_t *msvc__reg_set_new(const char *service) {
  msvc_registry_set_t *set = msvc__calloc(1, sizeof(*set));

  if (set == NULL)
    return NULL;
  set->service = msvc__strdup(service != NULL ? service : "");
  if (set->service == NULL) {
    msvc__free(set);
    return NULL;
  }
  atomic_init(&set->refs, 1);
  return set;
}

int msvc__reg_set_add(msvc_registry_set_t *set, msvc_registry_instance_t *inst) {
  if (set->count == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 8;
    msvc_registry_instance_t *items =
        msvc__realloc(set->items, cap * sizeof(*items));
    if (items == NULL)
      return MSVC_ENOMEM;
    set->items = items;
    set->cap = cap;
  }
  set->items[set->count++] = *inst;
  memset(inst, 0, sizeof(*inst));
  return MSVC_OK;
}

static int cmp_id(const void *a, const void *b) {
  const msvc_registry_instance_t *x = a, *y = b;
  return strcmp(x->id, y->id);
}

void msvc__reg_set_finish(msvc_registry_set_t *set) {
  size_t i, out = 0;

  if (set->count > 1)
    qsort(set->items, set->count, sizeof(*set->items), cmp_id);
  for (i = 0; i < set->count; i++) {
    if (out > 0 && strcmp(set->items[out - 1].id, set->items[i].id) == 0) {
      msvc__reg_instance_clear(&set->items[i]);
      continue;
    }
    set->items[out++] = set->items[i];
  }
  set->count = out;
}

bool msvc__reg_set_equal(const msvc_registry_set_t *a,
                         const msvc_registry_set_t *b) {
  size_t i;

  if (a->count != b->count)
    return false;
  for (i = 0; i < a->count; i++)
    if (!msvc__reg_instance_equal(&a->items[i], &b->items[i]))
      return false;
  return true;
}

msvc_registry_set_t *msvc__reg_set_copy(const msvc_registry_set_t *src,
                                        bool stale) {
  msvc_registry_set_t *set = msvc__reg_set_new(src->service);
  size_t i;

  if (set == NULL)
    return NULL;
  set->stale = stale;
  for (i = 0; i < src->count; i++) {
    msvc_registry_instance_t copy;
    if (msvc__reg_instance_copy(&copy, &src->items[i]) != MSVC_OK)
      goto oom;
    if (msvc__reg_set_add(set, &copy) != MSVC_OK) {
      msvc__reg_instance_clear(&copy);
      goto oom;
    }
  }
  return set;
oom:
  msvc_registry_set_unref(set);
  return NULL;
}

size_t msvc_registry_set_count(const msvc_registry_set_t *set) {
  return set != NULL ? set->count : 0;
}

const msvc_registry_instance_t *
msvc_registry_set_at(const msvc_registry_set_t *set, size_t i) {
  return set != NULL && i < set->count ? &set->items[i] : NULL;
}

bool msvc_registry_set_stale(const msvc_registry_set_t *set) {
  return set != NULL && set->stale;
}

const char *msvc_registry_set_service(const msvc_registry_set_t *set) {
  return set != NULL ? set->service : NULL;
}

msvc_registry_set_t *msvc_registry_set_ref(msvc_registry_set_t *set) {
  if (set != NULL)
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
  return set;
}

void msvc_registry_set_unref(msvc_registry_set_t *set) {
  size_t i;

  if (set == NULL ||
      atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (i = 0; i < set->count; i++)
    msvc__reg_instance_clear(&set->items[i]);
  msvc__free(set->items);
  msvc__free(set->service);
  msvc__free(set);
}
