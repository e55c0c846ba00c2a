#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/msvc.h>

/* Captures the last line written and counts calls. */
typedef struct capture_s {
  char line[16384];
  size_t len;
  int calls;
  msvc_log_level_t level;
} capture_t;

static capture_t cap;

static void capture_sink(void *data, msvc_log_level_t level, const char *line,
                         size_t len) {
  capture_t *c = data;

  cr_assert_lt(len, sizeof(c->line));
  memcpy(c->line, line, len + 1);
  c->len = len;
  c->level = level;
  c->calls++;
}

static void setup(void) {
  memset(&cap, 0, sizeof(cap));
  msvc_log_reset();
  msvc_log_set_sink(capture_sink, &cap);
  unsetenv("MSVC_LOG_LEVEL");
  unsetenv("MSVC_LOG_FORMAT");
}

static void teardown(void) {
  msvc_log_reset();
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, defaults_to_info) {
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_INFO);
  MSVC_LOG_D("test", "hidden %d", 1);
  cr_assert_eq(cap.calls, 0);
  MSVC_LOG_I("test", "shown %d", 2);
  cr_assert_eq(cap.calls, 1);
  cr_assert_eq(cap.level, MSVC_LOG_INFO);
  cr_assert(strstr(cap.line, " INFO  test: shown 2\n") != NULL, "%s", cap.line);
  cr_assert_eq(cap.line[cap.len - 1], '\n');
}

Test(log, level_filters_and_off_silences) {
  msvc_log_set_level(MSVC_LOG_ERROR);
  MSVC_LOG_W("t", "no");
  cr_assert_eq(cap.calls, 0);
  MSVC_LOG_E("t", "yes");
  cr_assert_eq(cap.calls, 1);
  msvc_log_set_level(MSVC_LOG_OFF);
  MSVC_LOG_E("t", "no");
  cr_assert_eq(cap.calls, 1);
  cr_assert_not(msvc_log_enabled(MSVC_LOG_OFF));
}

Test(log, text_fields_are_quoted_when_needed) {
  msvc_log_field_t f[] = {{"id", "a1"}, {"path", "/a b"}, {"empty", ""},
                          {"q", "say \"hi\""}};

  msvc_log_write(MSVC_LOG_WARN, "http", f, 4, "req");
  cr_assert(strstr(cap.line, "WARN  http: req id=a1 path=\"/a b\" empty=\"\" "
                             "q=\"say \\\"hi\\\"\"\n") != NULL,
            "%s", cap.line);
}

Test(log, json_lines_parse_and_escape) {
  msvc_log_field_t f[] = {{"path", "/x\n\"y\"\\"}, {"ctl", "\x01"}};
  cJSON *obj;

  msvc_log_set_format(MSVC_LOG_FORMAT_JSON);
  msvc_log_write(MSVC_LOG_ERROR, "reg\"istry", f, 2, "bad %s", "tab\there");
  obj = cJSON_Parse(cap.line);
  cr_assert_not_null(obj, "not JSON: %s", cap.line);
  cr_assert_str_eq(cJSON_GetObjectItem(obj, "level")->valuestring, "error");
  cr_assert_str_eq(cJSON_GetObjectItem(obj, "component")->valuestring, "reg\"istry");
  cr_assert_str_eq(cJSON_GetObjectItem(obj, "msg")->valuestring, "bad tab\there");
  cr_assert_str_eq(cJSON_GetObjectItem(obj, "path")->valuestring, "/x\n\"y\"\\");
  cr_assert_str_eq(cJSON_GetObjectItem(obj, "ctl")->valuestring, "\x01");
  cr_assert_eq(strlen(cJSON_GetObjectItem(obj, "ts")->valuestring), 24);
  cJSON_Delete(obj);
}

Test(log, long_lines_are_truncated_not_overflowed) {
  static char big[20000];
  msvc_log_field_t f[] = {{"v", big}};

  memset(big, 'x', sizeof(big) - 1);
  msvc_log_write(MSVC_LOG_INFO, "t", f, 1, "%s", big);
  cr_assert_lt(cap.len, 8192);
  cr_assert(strcmp(cap.line + cap.len - 4, "...\n") == 0);
}

Test(log, null_component_and_fields) {
  msvc_log_write(MSVC_LOG_INFO, NULL, NULL, 3, "m");
  cr_assert(strstr(cap.line, " -: m\n") != NULL, "%s", cap.line);
}

Test(log, parse_levels) {
  msvc_log_level_t l;

  cr_assert_eq(msvc_log_level_parse("DEBUG", &l), MSVC_OK);
  cr_assert_eq(l, MSVC_LOG_DEBUG);
  cr_assert_eq(msvc_log_level_parse("warning", &l), MSVC_OK);
  cr_assert_eq(l, MSVC_LOG_WARN);
  cr_assert_eq(msvc_log_level_parse("loud", &l), MSVC_EINVAL);
  cr_assert_eq(msvc_log_level_parse(NULL, &l), MSVC_EINVAL);
  cr_assert_str_eq(msvc_log_level_name(MSVC_LOG_ERROR), "error");
  cr_assert_str_eq(msvc_log_level_name((msvc_log_level_t)42), "unknown");
}

Test(log, configure_from_env) {
  char err[256] = "";

  setenv("MSVC_LOG_LEVEL", "debug", 1);
  setenv("MSVC_LOG_FORMAT", "json", 1);
  cr_assert_eq(msvc_log_configure_from_env(err, sizeof(err)), MSVC_OK);
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_DEBUG);
  MSVC_LOG_D("t", "x");
  cr_assert_eq(cap.line[0], '{');
}

Test(log, bad_env_values_name_the_variable_and_change_nothing) {
  char err[256] = "";

  setenv("MSVC_LOG_LEVEL", "chatty", 1);
  cr_assert_eq(msvc_log_configure_from_env(err, sizeof(err)), MSVC_ECONFIG);
  cr_assert(strstr(err, "MSVC_LOG_LEVEL") != NULL, "%s", err);
  cr_assert(strstr(err, "trace, debug, info, warn, error, off") != NULL, "%s", err);
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_INFO);

  unsetenv("MSVC_LOG_LEVEL");
  setenv("MSVC_LOG_FORMAT", "xml", 1);
  cr_assert_eq(msvc_log_configure_from_env(err, sizeof(err)), MSVC_ECONFIG);
  cr_assert(strstr(err, "MSVC_LOG_FORMAT") != NULL, "%s", err);
  cr_assert_eq(msvc_log_configure_from_env(NULL, 0), MSVC_ECONFIG);
}

Test(log, reset_restores_defaults) {
  msvc_log_set_level(MSVC_LOG_TRACE);
  msvc_log_set_format(MSVC_LOG_FORMAT_JSON);
  msvc_log_reset();
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_INFO);
  /* The sink is back to stderr: our capture sees nothing. */
  MSVC_LOG_I("t", "to stderr");
  cr_assert_eq(cap.calls, 0);
}
