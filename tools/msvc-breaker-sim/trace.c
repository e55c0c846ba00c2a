#include "trace.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LINE 1024

static char *trim(char *s) {
  char *end;

  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;

  if (!isdigit((unsigned char)*s))
    return false;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = (uint64_t)v;
  return true;
}

static bool parse_outcome(const char *s, msvc_breaker_outcome_t *out) {
  static const struct {
    const char *name;
    msvc_breaker_outcome_t outcome;
  } names[] = {
      {"ok", MSVC_BREAKER_SUCCESS},      {"success", MSVC_BREAKER_SUCCESS},
      {"fail", MSVC_BREAKER_FAILURE},    {"failure", MSVC_BREAKER_FAILURE},
      {"error", MSVC_BREAKER_FAILURE},   {"ignored", MSVC_BREAKER_IGNORED},
      {"ignore", MSVC_BREAKER_IGNORED}};
  size_t i;

  for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].outcome;
      return true;
    }
  }
  return false;
}

static int fail(sim_reader_t *r, const char *what) {
  snprintf(r->error, sizeof(r->error), "line %lu: %s", r->line, what);
  return -1;
}

/* Splits "a,b,c" into exactly three trimmed fields. */
static bool split3(char *s, char *field[3]) {
  int i;

  for (i = 0; i < 3; i++) {
    char *comma = strchr(s, ',');

    if ((comma == NULL) != (i == 2))
      return false;
    if (comma != NULL)
      *comma = '\0';
    field[i] = trim(s);
    if (comma != NULL)
      s = comma + 1;
  }
  return true;
}

static int parse_line(sim_reader_t *r, char *s, sim_call_t *call) {
  char *field[3];

  if (!split3(s, field))
    return fail(r, "expected three fields: time_ms,latency_ms,outcome");
  if (r->line == 1 && !isdigit((unsigned char)field[0][0]))
    return 0; /* a header */
  if (!parse_u64(field[0], &call->time_ms))
    return fail(r, "time_ms is not a non-negative integer");
  if (!parse_u64(field[1], &call->latency_ms))
    return fail(r, "latency_ms is not a non-negative integer");
  if (!parse_outcome(field[2], &call->outcome))
    return fail(r, "outcome is not ok, fail or ignored");
  if (call->time_ms < r->last_time_ms)
    return fail(r, "time_ms goes backwards (the trace must be sorted)");
  if (call->latency_ms > UINT64_MAX / 2 || call->time_ms > UINT64_MAX / 2)
    return fail(r, "value out of range");
  r->last_time_ms = call->time_ms;
  return 1;
}

int sim_read_call(sim_reader_t *r, sim_call_t *call) {
  char buf[MAX_LINE];

  while (fgets(buf, sizeof(buf), r->in) != NULL) {
    size_t len = strlen(buf);
    char *s;
    int rc;

    r->line++;
    if (len == sizeof(buf) - 1 && buf[len - 1] != '\n' && !feof(r->in))
      return fail(r, "line too long");
    s = trim(buf);
    if (*s == '\0' || *s == '#')
      continue;
    rc = parse_line(r, s, call);
    if (rc != 0)
      return rc;
  }
  if (ferror(r->in))
    return fail(r, "read error");
  return 0;
}
