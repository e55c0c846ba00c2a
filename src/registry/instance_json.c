/* The instance's JSON form. Parsing goes through cJSON; writing uses the
 * escaping buffer so that key order is fixed and nothing is allocated per
 * field. */
#include <math.h>

#include <cjson/cJSON.h>

#include "registry/registry-internal.h"

static void put_str(msvc__buf_t *b, const char *key, const char *val,
                    bool comma) {
  if (comma)
    msvc__buf_putc(b, ',');
  msvc__buf_putc(b, '"');
  msvc__buf_json_escape(b, key, strlen(key));
  msvc__buf_puts(b, "\":\"");
  val = val != NULL ? val : "";
  msvc__buf_json_escape(b, val, strlen(val));
  msvc__buf_putc(b, '"');
}

int msvc__reg_instance_to_json(const msvc_registry_instance_t *inst,
                               uint32_t ttl_ms, uint64_t beat_wall_ms,
                               msvc__buf_t *out) {
  size_t i;

  msvc__buf_putc(out, '{');
  put_str(out, "id", inst->id, false);
  put_str(out, "service", inst->service, true);
  put_str(out, "address", inst->address, true);
  msvc__buf_printf(out, ",\"port\":%u,\"weight\":%u", (unsigned)inst->port,
                   (unsigned)inst->weight);
  put_str(out, "version", inst->version, true);
  msvc__buf_puts(out, ",\"metadata\":{");
  for (i = 0; i < inst->nmetadata; i++)
    put_str(out, inst->metadata[i].key, inst->metadata[i].value, i > 0);
  msvc__buf_putc(out, '}');
  if (ttl_ms != 0)
    msvc__buf_printf(out, ",\"ttl_ms\":%u,\"heartbeat_ms\":%llu",
                     (unsigned)ttl_ms, (unsigned long long)beat_wall_ms);
  msvc__buf_putc(out, '}');
  return out->err;
}

/* An integer field in [min, max]; absent gives dflt. */
static int get_uint(const cJSON *obj, const char *key, double min, double max,
                    double dflt, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

  if (v == NULL) {
    *out = dflt;
    return dflt < 0 ? MSVC_EINVAL : MSVC_OK;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
      v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
      v->valuedouble > max)
    return MSVC_EINVAL;
  *out = v->valuedouble;
  return MSVC_OK;
}

/* A string field, duplicated; absent is an error unless optional. */
static int get_str(const cJSON *obj, const char *key, bool optional,
                   const char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

  if (v == NULL && optional)
    return MSVC_OK;
  if (!cJSON_IsString(v) || v->valuestring == NULL)
    return MSVC_EINVAL;
  *out = msvc__strdup(v->valuestring);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

static int get_metadata(const cJSON *obj, msvc_registry_instance_t *inst) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
  const cJSON *e;
  msvc_registry_meta_t *meta;
  size_t n = 0;

  if (m == NULL || cJSON_IsNull(m))
    return MSVC_OK;
  if (!cJSON_IsObject(m))
    return MSVC_EINVAL;
  cJSON_ArrayForEach(e, m) {
    if (!cJSON_IsString(e) || e->string == NULL || ++n > MSVC_REGISTRY_META_MAX)
      return MSVC_EINVAL;
  }
  if (n == 0)
    return MSVC_OK;
  meta = msvc__calloc(n, sizeof(*meta));
  if (meta == NULL)
    return MSVC_ENOMEM;
  inst->metadata = meta;
  n = 0;
  cJSON_ArrayForEach(e, m) {
    meta[n].key = msvc__strdup(e->string);
    meta[n].value = msvc__strdup(e->valuestring);
    inst->nmetadata = ++n;
    if (meta[n - 1].key == NULL || meta[n - 1].value == NULL)
      return MSVC_ENOMEM;
  }
  return MSVC_OK;
}

static int parse_fields(const cJSON *root, msvc_registry_instance_t *inst,
                        uint32_t *ttl_ms, uint64_t *beat_wall_ms) {
  double port, weight, ttl, beat;
  int rc;

  if (!cJSON_IsObject(root))
    return MSVC_EINVAL;
  if ((rc = get_str(root, "id", false, &inst->id)) != 0 ||
      (rc = get_str(root, "service", false, &inst->service)) != 0 ||
      (rc = get_str(root, "address", false, &inst->address)) != 0 ||
      (rc = get_str(root, "version", true, &inst->version)) != 0 ||
      (rc = get_metadata(root, inst)) != 0)
    return rc;
  if (get_uint(root, "port", 1, 65535, -1, &port) != 0 ||
      get_uint(root, "weight", 0, MSVC_REGISTRY_WEIGHT_MAX, 1, &weight) != 0 ||
      get_uint(root, "ttl_ms", 1, UINT32_MAX, 0, &ttl) != 0 ||
      get_uint(root, "heartbeat_ms", 0, 9007199254740992.0, 0, &beat) != 0)
    return MSVC_EINVAL;
  inst->port = (uint16_t)port;
  inst->weight = (uint32_t)weight;
  if (ttl_ms != NULL)
    *ttl_ms = (uint32_t)ttl;
  if (beat_wall_ms != NULL)
    *beat_wall_ms = (uint64_t)beat;
  if (inst->version == NULL && (inst->version = msvc__strdup("")) == NULL)
    return MSVC_ENOMEM;
  return msvc__reg_instance_validate(inst);
}

int msvc__reg_instance_from_json(const char *json, size_t len,
                                 msvc_registry_instance_t *inst,
                                 uint32_t *ttl_ms, uint64_t *beat_wall_ms) {
  cJSON *root;
  const char *end = NULL;
  int rc;

  memset(inst, 0, sizeof(*inst));
  if (json == NULL)
    return MSVC_EINVAL;
  if (len > MSVC_REGISTRY_PAYLOAD_MAX)
    return MSVC_ETOOLARGE;
  root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (root == NULL)
    return msvc__json_parse_error(json, len);
  /* cJSON stops after the first value; anything but blanks after it means
   * the file is not one instance. */
  while (end != NULL && end < json + len &&
         (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
    end++;
  if (end == NULL || end != json + len) {
    cJSON_Delete(root);
    return MSVC_EJSON;
  }
  rc = parse_fields(root, inst, ttl_ms, beat_wall_ms);
  cJSON_Delete(root);
  if (rc != MSVC_OK)
    msvc__reg_instance_clear(inst);
  return rc;
}
