#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <msvc/log.h>

#include "msvc-internal.h"

#define LOG_LINE_MAX 8192

/* The process-wide logger. Level and format are atomics so that the check on
 * every call is one load; the sink and its data change together, under a
 * mutex that is held only to copy them. */
static atomic_int log_level = MSVC_LOG_INFO;
static atomic_int log_format = MSVC_LOG_FORMAT_TEXT;
static pthread_mutex_t sink_mutex = PTHREAD_MUTEX_INITIALIZER;
static msvc_log_sink_fn sink_fn;
static void *sink_data;

static const char *const level_names[] = {"trace", "debug", "info",
                                          "warn",  "error", "off"};
static const char *const level_tags[] = {"TRACE", "DEBUG", "INFO ",
                                         "WARN ", "ERROR", "OFF  "};

void msvc_log_set_level(msvc_log_level_t level) {
  if ((int)level < MSVC_LOG_TRACE || level > MSVC_LOG_OFF)
    return;
  atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

msvc_log_level_t msvc_log_get_level(void) {
  return (msvc_log_level_t)atomic_load_explicit(&log_level,
                                                memory_order_relaxed);
}

void msvc_log_set_format(msvc_log_format_t format) {
  if (format != MSVC_LOG_FORMAT_TEXT && format != MSVC_LOG_FORMAT_JSON)
    return;
  atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

void msvc_log_set_sink(msvc_log_sink_fn sink, void *data) {
  pthread_mutex_lock(&sink_mutex);
  sink_fn = sink;
  sink_data = sink != NULL ? data : NULL;
  pthread_mutex_unlock(&sink_mutex);
}

void msvc_log_reset(void) {
  msvc_log_set_level(MSVC_LOG_INFO);
  msvc_log_set_format(MSVC_LOG_FORMAT_TEXT);
  msvc_log_set_sink(NULL, NULL);
}

bool msvc_log_enabled(msvc_log_level_t level) {
  int current = atomic_load_explicit(&log_level, memory_order_relaxed);
  return level < MSVC_LOG_OFF && (int)level >= current;
}

const char *msvc_log_level_name(msvc_log_level_t level) {
  if ((int)level < MSVC_LOG_TRACE || level > MSVC_LOG_OFF)
    return "unknown";
  return level_names[level];
}

int msvc_log_level_parse(const char *name, msvc_log_level_t *level) {
  size_t i;

  if (name == NULL || level == NULL)
    return MSVC_EINVAL;
  for (i = 0; i < MSVC__ARRAY_SIZE(level_names); i++) {
    if (msvc__strcasecmp(name, level_names[i]) == 0) {
      *level = (msvc_log_level_t)i;
      return MSVC_OK;
    }
  }
  if (msvc__strcasecmp(name, "warning") == 0) {
    *level = MSVC_LOG_WARN;
    return MSVC_OK;
  }
  return MSVC_EINVAL;
}

int msvc_log_configure_from_env(char *err, size_t errlen) {
  const char *lv = getenv("MSVC_LOG_LEVEL");
  const char *fmt = getenv("MSVC_LOG_FORMAT");
  msvc_log_level_t level = msvc_log_get_level();
  msvc_log_format_t format =
      (msvc_log_format_t)atomic_load_explicit(&log_format, memory_order_relaxed);

  if (lv != NULL && *lv != '\0' && msvc_log_level_parse(lv, &level) != MSVC_OK) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen,
               "MSVC_LOG_LEVEL: bad value '%.64s' (accepted: trace, debug, "
               "info, warn, error, off)", lv);
    return MSVC_ECONFIG;
  }
  if (fmt != NULL && *fmt != '\0') {
    if (msvc__strcasecmp(fmt, "text") == 0) {
      format = MSVC_LOG_FORMAT_TEXT;
    } else if (msvc__strcasecmp(fmt, "json") == 0) {
      format = MSVC_LOG_FORMAT_JSON;
    } else {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen,
                 "MSVC_LOG_FORMAT: bad value '%.64s' (accepted: text, json)",
                 fmt);
      return MSVC_ECONFIG;
    }
  }
  msvc_log_set_level(level);
  msvc_log_set_format(format);
  return MSVC_OK;
}

/* A fixed-size line builder: appends never overflow; once full, the line is
 * marked truncated and later appends are dropped. */
typedef struct line_s {
  char buf[LOG_LINE_MAX];
  size_t len;
  bool truncated;
} line_t;

/* Room for "...\n" and the NUL is always kept at the end. */
#define LINE_ROOM (LOG_LINE_MAX - 5)

static void line_append(line_t *l, const char *s, size_t n) {
  if (l->truncated)
    return;
  if (n > LINE_ROOM - l->len) {
    n = LINE_ROOM - l->len;
    l->truncated = true;
  }
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void line_puts(line_t *l, const char *s) {
  line_append(l, s, strlen(s));
}

static void line_json_string(line_t *l, const char *s) {
  char esc[1024];
  size_t len = strlen(s), off = 0;

  line_append(l, "\"", 1);
  /* Escape in slices so a long value costs no heap allocation. Slices end
   * on byte boundaries chosen by the escaper, which never splits an escape. */
  while (off < len && !l->truncated) {
    size_t chunk = len - off > 128 ? 128 : len - off;
    size_t n = msvc__json_escape(esc, sizeof(esc), s + off, chunk);
    line_append(l, esc, n);
    off += chunk;
  }
  line_append(l, "\"", 1);
}

/* A text-format value is quoted when it is empty or holds a space, a quote,
 * an '=' or a control character, so that lines stay splittable. */
static void line_text_value(line_t *l, const char *v) {
  const char *p;
  bool quote = *v == '\0';

  for (p = v; *p != '\0' && !quote; p++)
    quote = (unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f;
  if (!quote) {
    line_puts(l, v);
    return;
  }
  line_json_string(l, v);
}

static void render_text(line_t *l, const char *ts, msvc_log_level_t level,
                        const char *component, const char *msg,
                        const msvc_log_field_t *fields, size_t nfields) {
  size_t i;

  line_puts(l, ts);
  line_append(l, " ", 1);
  line_puts(l, level_tags[level]);
  line_append(l, " ", 1);
  line_puts(l, component);
  line_append(l, ": ", 2);
  line_puts(l, msg);
  for (i = 0; i < nfields; i++) {
    if (fields[i].key == NULL)
      continue;
    line_append(l, " ", 1);
    line_puts(l, fields[i].key);
    line_append(l, "=", 1);
    line_text_value(l, fields[i].value != NULL ? fields[i].value : "");
  }
}

static void render_json(line_t *l, const char *ts, msvc_log_level_t level,
                        const char *component, const char *msg,
                        const msvc_log_field_t *fields, size_t nfields) {
  size_t i;

  line_puts(l, "{\"ts\":\"");
  line_puts(l, ts);
  line_puts(l, "\",\"level\":\"");
  line_puts(l, level_names[level]);
  line_puts(l, "\",\"component\":");
  line_json_string(l, component);
  line_puts(l, ",\"msg\":");
  line_json_string(l, msg);
  for (i = 0; i < nfields; i++) {
    if (fields[i].key == NULL)
      continue;
    line_append(l, ",", 1);
    line_json_string(l, fields[i].key);
    line_append(l, ":", 1);
    line_json_string(l, fields[i].value != NULL ? fields[i].value : "");
  }
  if (!l->truncated)
    line_append(l, "}", 1);
}

static void default_sink(const char *line, size_t len) {
  /* One write(2) per line keeps lines from different threads whole. */
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, line, len);
    if (n <= 0)
      return;
    line += n;
    len -= (size_t)n;
  }
}

void msvc_log_writev(msvc_log_level_t level, const char *component,
                     const msvc_log_field_t *fields, size_t nfields,
                     const char *fmt, va_list ap) {
  char msg[4096], ts[MSVC__RFC3339_LEN];
  line_t line;
  msvc_log_sink_fn fn;
  void *data;
  int n;

  if (!msvc_log_enabled(level))
    return;
  n = fmt != NULL ? vsnprintf(msg, sizeof(msg), fmt, ap) : 0;
  if (n <= 0)
    msg[0] = '\0';
  msvc__format_rfc3339_ms(msvc_wall_ms(), ts);
  line.len = 0;
  line.truncated = false;
  if (component == NULL)
    component = "-";
  if (fields == NULL)
    nfields = 0;
  if (atomic_load_explicit(&log_format, memory_order_relaxed) ==
      MSVC_LOG_FORMAT_JSON)
    render_json(&line, ts, level, component, msg, fields, nfields);
  else
    render_text(&line, ts, level, component, msg, fields, nfields);
  if (line.truncated || n >= (int)sizeof(msg)) {
    memcpy(line.buf + line.len, "...", 3);
    line.len += 3;
  }
  line.buf[line.len++] = '\n';
  line.buf[line.len] = '\0';

  pthread_mutex_lock(&sink_mutex);
  fn = sink_fn;
  data = sink_data;
  pthread_mutex_unlock(&sink_mutex);
  if (fn != NULL)
    fn(data, level, line.buf, line.len);
  else
    default_sink(line.buf, line.len);
}

void msvc_log_write(msvc_log_level_t level, const char *component,
                    const msvc_log_field_t *fields, size_t nfields,
                    const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  msvc_log_writev(level, component, fields, nfields, fmt, ap);
  va_end(ap);
}
