/*
 * CloudEvents 1.0 structured-mode JSON envelopes, event ids, subject and
 * name checks, and the nack backoff. Pure code: no loop, thread-safe.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "events/events-internal.h"

struct msvc_events_envelope_s {
  cJSON *root;
  char *data; /* printed `data` (or the string's copy) */
  msvc_event_t event;
};

void msvc_events_id_generate(char out[33]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t a = msvc__rand64(), b = msvc__rand64();

  for (int i = 0; i < 16; i++) {
    out[i] = hex[(a >> (i * 4)) & 0xf];
    out[16 + i] = hex[(b >> (i * 4)) & 0xf];
  }
  out[32] = '\0';
}

uint32_t msvc_events_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t deliveries,
                                uint64_t rnd) {
  uint64_t d = min_ms;
  uint64_t jitter;

  if (max_ms < min_ms)
    max_ms = min_ms;
  if (deliveries < 1)
    deliveries = 1;
  for (uint32_t i = 1; i < deliveries && d < max_ms; i++)
    d *= 2;
  if (d > max_ms)
    d = max_ms;
  /* Up to a fifth taken off, so that instances that failed together do not
   * retry together; never below the first delay. */
  jitter = d / 5;
  if (jitter > 0)
    d -= rnd % (jitter + 1);
  if (d < min_ms)
    d = min_ms;
  return (uint32_t)d;
}

static bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-';
}

bool msvc__ev_name_valid(const char *s) {
  size_t n = 0;

  if (s == NULL || *s == '\0')
    return false;
  for (; s[n] != '\0'; n++)
    if (!is_token_char(s[n]) || n >= 64)
      return false;
  return true;
}

bool msvc__ev_subject_valid(const char *s, bool wildcards) {
  const char *tok = s;

  if (s == NULL || *s == '\0' || strlen(s) > 255)
    return false;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      size_t n = (size_t)(p - tok);
      if (n == 0)
        return false;
      if (n == 1 && (*tok == '*' || *tok == '>')) {
        if (!wildcards || (*tok == '>' && *p != '\0'))
          return false;
      } else {
        for (const char *q = tok; q < p; q++)
          if (*q == '*' || *q == '>' || (unsigned char)*q <= ' ' || *q == 0x7f)
            return false;
      }
      if (*p == '\0')
        return true;
      tok = p + 1;
    }
  }
}

bool msvc__ev_subject_match(const char *filter, const char *subject) {
  const char *f = filter, *s = subject;

  for (;;) {
    const char *fe = strchr(f, '.'), *se = strchr(s, '.');
    size_t fn = fe ? (size_t)(fe - f) : strlen(f);
    size_t sn = se ? (size_t)(se - s) : strlen(s);

    if (fn == 1 && *f == '>')
      return true; /* matches one or more remaining tokens */
    if (!(fn == 1 && *f == '*') && (fn != sn || memcmp(f, s, fn) != 0))
      return false;
    if (fe == NULL || se == NULL)
      return fe == NULL && se == NULL;
    f = fe + 1;
    s = se + 1;
  }
}

bool msvc__ev_header_valid(const char *name, const char *value) {
  if (name == NULL || value == NULL || *name == '\0')
    return false;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f)
      return false;
  for (const char *p = value; *p; p++)
    if (*p == '\r' || *p == '\n')
      return false;
  return true;
}

/* application/json, text/json and any structured-syntax "+json" type,
 * parameters (";charset=...") ignored. */
static bool content_type_is_json(const char *ct) {
  size_t n = strcspn(ct, ";");

  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  if ((n == 16 && msvc__strncasecmp(ct, "application/json", 16) == 0) ||
      (n == 9 && msvc__strncasecmp(ct, "text/json", 9) == 0))
    return true;
  return n > 5 && msvc__strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static bool printable_attr(const char *s, size_t max) {
  size_t n = strlen(s);

  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < ' ')
      return false;
  return true;
}

/* Builds the envelope; id_out (MSVC_EVENTS_ID_MAX + 1 bytes) receives the id. */
int msvc__ev_envelope_build(const msvc_event_t *e, const char *default_source,
                            char *id_out, char **out, size_t *len) {
  char gen[33];
  char now[MSVC__RFC3339_LEN];
  const char *id, *source, *time, *ct;
  msvc__buf_t b;
  size_t n;

  if (e == NULL || out == NULL || e->type == NULL ||
      !printable_attr(e->type, 255) || (e->data == NULL && e->data_len != 0))
    return MSVC_EINVAL;
  id = e->id;
  if (id == NULL) {
    msvc_events_id_generate(gen);
    id = gen;
  }
  source = e->source != NULL ? e->source : default_source;
  ct = e->datacontenttype != NULL ? e->datacontenttype : "application/json";
  if (!printable_attr(id, MSVC_EVENTS_ID_MAX) || !printable_attr(source, 1024) ||
      !printable_attr(ct, 255))
    return MSVC_EINVAL;
  time = e->time;
  if (time == NULL) {
    msvc__format_rfc3339_ms(msvc_wall_ms(), now);
    time = now;
  } else if (!printable_attr(time, 64)) {
    return MSVC_EINVAL;
  }
  if (e->data != NULL && content_type_is_json(ct) && !msvc__json_valid(e->data, e->data_len))
    return MSVC_EINVAL;

  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "{\"specversion\":\"1.0\",\"id\":\"");
  msvc__buf_json_escape(&b, id, strlen(id));
  msvc__buf_puts(&b, "\",\"source\":\"");
  msvc__buf_json_escape(&b, source, strlen(source));
  msvc__buf_puts(&b, "\",\"type\":\"");
  msvc__buf_json_escape(&b, e->type, strlen(e->type));
  msvc__buf_puts(&b, "\",\"time\":\"");
  msvc__buf_json_escape(&b, time, strlen(time));
  msvc__buf_puts(&b, "\",\"datacontenttype\":\"");
  msvc__buf_json_escape(&b, ct, strlen(ct));
  msvc__buf_putc(&b, '"');
  if (e->data != NULL) {
    msvc__buf_puts(&b, ",\"data\":");
    if (content_type_is_json(ct)) {
      msvc__buf_append(&b, e->data, e->data_len);
    } else {
      msvc__buf_putc(&b, '"');
      msvc__buf_json_escape(&b, e->data, e->data_len);
      msvc__buf_putc(&b, '"');
    }
  }
  msvc__buf_putc(&b, '}');
  if (b.err != MSVC_OK) {
    int rc = b.err;
    msvc__buf_free(&b);
    return rc;
  }
  if (id_out != NULL) {
    n = strlen(id);
    memcpy(id_out, id, n + 1);
  }
  *out = msvc__buf_detach(&b, len);
  return *out != NULL ? MSVC_OK : MSVC_ENOMEM;
}

int msvc_events_envelope_build(const msvc_event_t *event, char **out, size_t *len) {
  return msvc__ev_envelope_build(event, "/msvc", NULL, out, len);
}

static const char *attr(const cJSON *root, const char *name, bool required,
                        const char **why, const char *why_missing) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, name);

  if (it == NULL) {
    if (required && *why == NULL)
      *why = why_missing;
    return required ? NULL : "";
  }
  if (!cJSON_IsString(it) || it->valuestring == NULL ||
      (required && it->valuestring[0] == '\0')) {
    if (*why == NULL)
      *why = why_missing;
    return NULL;
  }
  return it->valuestring;
}

int msvc_events_envelope_parse(const char *text, size_t len, msvc_events_envelope_t **out,
                               const char **why) {
  const char *w = NULL, *spec;
  msvc_events_envelope_t *env;
  const cJSON *data;

  if (why != NULL)
    *why = NULL;
  if (out == NULL || (text == NULL && len > 0))
    return MSVC_EINVAL;
  *out = NULL;
  env = msvc__calloc(1, sizeof(*env));
  if (env == NULL)
    return MSVC_ENOMEM;
  env->root = text != NULL ? cJSON_ParseWithLength(text, len) : NULL;
  if (env->root == NULL) {
    int rc = text != NULL ? msvc__json_parse_error(text, len) : MSVC_EJSON;
    msvc__free(env);
    if (rc == MSVC_ENOMEM)
      return rc;
    if (why != NULL)
      *why = "not JSON";
    return MSVC_EEVENTS_ENVELOPE;
  }
  if (!cJSON_IsObject(env->root)) {
    w = "not a JSON object";
    goto bad;
  }
  spec = attr(env->root, "specversion", true, &w, "missing or bad specversion");
  if (spec != NULL && strcmp(spec, "1.0") != 0)
    w = "specversion is not 1.0";
  env->event.id = attr(env->root, "id", true, &w, "missing or bad id");
  env->event.source = attr(env->root, "source", true, &w, "missing or bad source");
  env->event.type = attr(env->root, "type", true, &w, "missing or bad type");
  env->event.time = attr(env->root, "time", false, &w, "time is not a string");
  env->event.datacontenttype =
      attr(env->root, "datacontenttype", false, &w, "datacontenttype is not a string");
  if (w == NULL && strlen(env->event.id) > MSVC_EVENTS_ID_MAX)
    w = "id too long";
  if (w == NULL && cJSON_GetObjectItemCaseSensitive(env->root, "data_base64") != NULL)
    w = "data_base64 is not supported";
  if (w != NULL)
    goto bad;
  data = cJSON_GetObjectItemCaseSensitive(env->root, "data");
  if (data != NULL) {
    const char *ct = env->event.datacontenttype[0] != '\0' ? env->event.datacontenttype
                                                           : "application/json";
    if (cJSON_IsString(data) && !content_type_is_json(ct))
      env->data = msvc__strdup(data->valuestring);
    else
      env->data = cJSON_PrintUnformatted(data);
    if (env->data == NULL) {
      msvc_events_envelope_free(env);
      return MSVC_ENOMEM;
    }
    env->event.data = env->data;
    env->event.data_len = strlen(env->data);
  }
  env->event.subject = env->event.type;
  *out = env;
  return MSVC_OK;

bad:
  if (why != NULL)
    *why = w;
  msvc_events_envelope_free(env);
  return MSVC_EEVENTS_ENVELOPE;
}

const msvc_event_t *msvc_events_envelope_event(const msvc_events_envelope_t *env) {
  return env != NULL ? &env->event : NULL;
}

void msvc_events_envelope_free(msvc_events_envelope_t *env) {
  if (env == NULL)
    return;
  cJSON_Delete(env->root);
  /* cJSON_PrintUnformatted allocates with cJSON's hooks: the default malloc
   * unless the program changed them, which libmsvc never does. The string
   * copy comes from msvc__strdup, which is malloc underneath as well. */
  free(env->data);
  msvc__free(env);
}
