/*
 * msvc-breaker-sim: replays a trace of calls through a circuit breaker on a
 * virtual clock and reports what the breaker would have done: when it
 * changed state, how many calls it rejected, and how many failures still
 * reached (or were spared) the dependency.
 *
 * Each call asks for a permit at its start time; a permitted call reports
 * its outcome at start + latency, so slow calls overlap later ones exactly
 * as they would have in production (half-open probes included).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/breaker.h>
#include <msvc/error.h>
#include <msvc/version.h>

#include "trace.h"

typedef struct pending_s {
  uint64_t done_ms;
  uint64_t seq;
  uint64_t latency_ms;
  msvc_breaker_outcome_t outcome;
  msvc_breaker_permit_t permit;
} pending_t;

typedef struct sim_s {
  msvc_breaker_t *b;
  bool quiet;
  bool json;
  /* completions waiting for their time, a min-heap on (done_ms, seq) */
  pending_t *heap;
  size_t len;
  size_t cap;
  uint64_t seq;
  /* figures */
  uint64_t calls, permitted, rejected;
  uint64_t failures_passed, failures_rejected, slow_passed;
  uint64_t opened, first_open_ms, last_ms;
  bool any_open;
} sim_t;

static bool before(const pending_t *a, const pending_t *b) {
  return a->done_ms < b->done_ms || (a->done_ms == b->done_ms && a->seq < b->seq);
}

static void swap(pending_t *a, pending_t *b) {
  pending_t t = *a;

  *a = *b;
  *b = t;
}

static int heap_push(sim_t *s, const pending_t *p) {
  size_t i;

  if (s->len == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    pending_t *n = realloc(s->heap, cap * sizeof(*n));

    if (n == NULL)
      return MSVC_ENOMEM;
    s->heap = n;
    s->cap = cap;
  }
  i = s->len++;
  s->heap[i] = *p;
  while (i > 0 && before(&s->heap[i], &s->heap[(i - 1) / 2])) {
    swap(&s->heap[i], &s->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  return MSVC_OK;
}

static pending_t heap_pop(sim_t *s) {
  pending_t top = s->heap[0];
  size_t i = 0;

  s->heap[0] = s->heap[--s->len];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;

    if (l < s->len && before(&s->heap[l], &s->heap[m]))
      m = l;
    if (r < s->len && before(&s->heap[r], &s->heap[m]))
      m = r;
    if (m == i)
      break;
    swap(&s->heap[i], &s->heap[m]);
    i = m;
  }
  return top;
}

static void on_transition(void *data, msvc_breaker_t *b,
                          msvc_breaker_state_t from, msvc_breaker_state_t to,
                          msvc_breaker_reason_t reason, uint64_t now_ms) {
  sim_t *s = data;

  (void)b;
  if (to == MSVC_BREAKER_OPEN) {
    if (!s->any_open)
      s->first_open_ms = now_ms;
    s->any_open = true;
    s->opened++;
  }
  if (!s->quiet && !s->json)
    printf("%llu %s -> %s (%s)\n", (unsigned long long)now_ms,
           msvc_breaker_state_name(from), msvc_breaker_state_name(to),
           msvc_breaker_reason_name(reason));
}

/* Delivers every completion due at or before `now_ms`. */
static void complete_until(sim_t *s, uint64_t now_ms) {
  while (s->len > 0 && s->heap[0].done_ms <= now_ms) {
    pending_t p = heap_pop(s);

    msvc_breaker_record(s->b, &p.permit, p.outcome, p.latency_ms, p.done_ms);
  }
}

static int replay_call(sim_t *s, const sim_call_t *c, uint64_t slow_ms) {
  pending_t p;

  complete_until(s, c->time_ms);
  s->calls++;
  s->last_ms = c->time_ms;
  if (msvc_breaker_acquire(s->b, c->time_ms, &p.permit) != MSVC_OK) {
    s->rejected++;
    if (c->outcome == MSVC_BREAKER_FAILURE)
      s->failures_rejected++;
    return MSVC_OK;
  }
  s->permitted++;
  if (c->outcome == MSVC_BREAKER_FAILURE)
    s->failures_passed++;
  if (c->outcome != MSVC_BREAKER_IGNORED && c->latency_ms > slow_ms)
    s->slow_passed++;
  p.done_ms = c->time_ms + c->latency_ms;
  p.seq = s->seq++;
  p.latency_ms = c->latency_ms;
  p.outcome = c->outcome;
  return heap_push(s, &p);
}

static void report(const sim_t *s) {
  const struct {
    const char *key;
    long long value;
  } f[] = {
      {"calls", (long long)s->calls},
      {"permitted", (long long)s->permitted},
      {"rejected", (long long)s->rejected},
      {"failures_passed", (long long)s->failures_passed},
      {"failures_rejected", (long long)s->failures_rejected},
      {"slow_passed", (long long)s->slow_passed},
      {"opened", (long long)s->opened},
      {"first_open_ms", s->any_open ? (long long)s->first_open_ms : -1LL}};
  const char *state = msvc_breaker_state_name(msvc_breaker_state(s->b));
  size_t i;

  for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
    if (s->json)
      printf("%s\"%s\":%lld", i ? "," : "{", f[i].key, f[i].value);
    else
      printf("%s=%lld\n", f[i].key, f[i].value);
  }
  if (s->json)
    printf(",\"final_state\":\"%s\"}\n", state);
  else
    printf("final_state=%s\n", state);
}

static void usage(FILE *out) {
  fputs(
      "usage: msvc-breaker-sim [options] TRACE.csv   (- reads stdin)\n"
      "\n"
      "TRACE: one call per line, time_ms,latency_ms,outcome (ok, fail or\n"
      "ignored), sorted by time; '#' comments and a header line are skipped.\n"
      "\n"
      "Breaker options (defaults are the library's):\n"
      "  --window=time:SECONDS | count:CALLS\n"
      "  --minimum-calls=N          --failure-rate=PERCENT\n"
      "  --slow-rate=PERCENT        --slow-ms=MS\n"
      "  --wait-open-ms=MS          --wait-open-max-ms=MS\n"
      "  --backoff-reset-ms=MS      --half-open-calls=N\n"
      "  --half-open-max-wait-ms=MS (0: wait forever)\n"
      "Output:\n"
      "  --quiet   only the summary   --json   the summary as one JSON object\n"
      "  --help    --version\n",
      out);
}

static bool num(const char *arg, uint64_t *out) {
  char *end;
  unsigned long long v;

  if (arg == NULL || *arg < '0' || *arg > '9')
    return false;
  errno = 0;
  v = strtoull(arg, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = (uint64_t)v;
  return true;
}

static bool real(const char *arg, double *out) {
  char *end;

  if (arg == NULL || *arg == '\0')
    return false;
  errno = 0;
  *out = strtod(arg, &end);
  return errno == 0 && *end == '\0';
}

static bool u32(const char *arg, uint32_t *out) {
  uint64_t v;

  if (!num(arg, &v) || v > UINT32_MAX)
    return false;
  *out = (uint32_t)v;
  return true;
}

static bool parse_window(const char *arg, msvc_breaker_opts_t *o) {
  if (strncmp(arg, "time:", 5) == 0) {
    o->window_type = MSVC_BREAKER_WINDOW_TIME;
    return u32(arg + 5, &o->window_seconds);
  }
  if (strncmp(arg, "count:", 6) == 0) {
    o->window_type = MSVC_BREAKER_WINDOW_COUNT;
    return u32(arg + 6, &o->window_calls);
  }
  return false;
}

enum {
  OPT_WINDOW = 256, OPT_MIN, OPT_FRATE, OPT_SRATE, OPT_SLOW, OPT_WAIT,
  OPT_WAITMAX, OPT_RESET, OPT_HALF, OPT_HALFWAIT, OPT_QUIET, OPT_JSON,
  OPT_VERSION
};

static bool apply_option(int c, const char *arg, msvc_breaker_opts_t *o) {
  switch (c) {
  case OPT_WINDOW: return parse_window(arg, o);
  case OPT_MIN: return u32(arg, &o->minimum_calls);
  case OPT_FRATE: return real(arg, &o->failure_rate_threshold);
  case OPT_SRATE: return real(arg, &o->slow_call_rate_threshold);
  case OPT_SLOW: return num(arg, &o->slow_call_duration_ms);
  case OPT_WAIT: return num(arg, &o->wait_in_open_ms);
  case OPT_WAITMAX: return num(arg, &o->wait_in_open_max_ms);
  case OPT_RESET: return num(arg, &o->backoff_reset_ms);
  case OPT_HALF: return u32(arg, &o->permitted_calls_in_half_open);
  case OPT_HALFWAIT: return num(arg, &o->max_wait_in_half_open_ms);
  }
  return false;
}

/* Returns the index of the trace argument, or -1 after printing why not. */
static int parse_args(int argc, char **argv, msvc_breaker_opts_t *o,
                      sim_t *s, bool *wait_max_set) {
  static const struct option longs[] = {
      {"window", required_argument, NULL, OPT_WINDOW},
      {"minimum-calls", required_argument, NULL, OPT_MIN},
      {"failure-rate", required_argument, NULL, OPT_FRATE},
      {"slow-rate", required_argument, NULL, OPT_SRATE},
      {"slow-ms", required_argument, NULL, OPT_SLOW},
      {"wait-open-ms", required_argument, NULL, OPT_WAIT},
      {"wait-open-max-ms", required_argument, NULL, OPT_WAITMAX},
      {"backoff-reset-ms", required_argument, NULL, OPT_RESET},
      {"half-open-calls", required_argument, NULL, OPT_HALF},
      {"half-open-max-wait-ms", required_argument, NULL, OPT_HALFWAIT},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"json", no_argument, NULL, OPT_JSON},
      {"version", no_argument, NULL, OPT_VERSION},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;

  while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      exit(0);
    } else if (c == OPT_VERSION) {
      printf("msvc-breaker-sim %s\n", MSVC_VERSION_STRING);
      exit(0);
    } else if (c == OPT_QUIET) {
      s->quiet = true;
    } else if (c == OPT_JSON) {
      s->json = true;
    } else if (!apply_option(c, optarg, o)) {
      if (c != '?')
        fprintf(stderr, "msvc-breaker-sim: bad value for --%s: %s\n",
                longs[c - OPT_WINDOW].name, optarg ? optarg : "");
      usage(stderr);
      return -1;
    } else if (c == OPT_WAITMAX) {
      *wait_max_set = true;
    }
  }
  if (optind != argc - 1) {
    usage(stderr);
    return -1;
  }
  return optind;
}

static int run(sim_t *s, FILE *in, uint64_t slow_ms) {
  sim_reader_t r;
  sim_call_t c;
  int rc;

  memset(&r, 0, sizeof(r));
  r.in = in;
  while ((rc = sim_read_call(&r, &c)) == 1) {
    if (replay_call(s, &c, slow_ms) != MSVC_OK) {
      fprintf(stderr, "msvc-breaker-sim: out of memory\n");
      return 1;
    }
  }
  if (rc < 0) {
    fprintf(stderr, "msvc-breaker-sim: %s\n", r.error);
    return 1;
  }
  complete_until(s, UINT64_MAX);
  report(s);
  return 0;
}

int main(int argc, char **argv) {
  msvc_breaker_opts_t o;
  sim_t s;
  bool wait_max_set = false;
  FILE *in;
  int idx, rc;

  memset(&s, 0, sizeof(s));
  msvc_breaker_opts_init(&o);
  idx = parse_args(argc, argv, &o, &s, &wait_max_set);
  if (idx < 0)
    return 2;
  /* A short --wait-open-ms alone should not trip over the default cap. */
  if (!wait_max_set && o.wait_in_open_max_ms < o.wait_in_open_ms)
    o.wait_in_open_max_ms = o.wait_in_open_ms;
  o.on_transition = on_transition;
  o.on_transition_data = &s;
  rc = msvc_breaker_new(&o, &s.b);
  if (rc != MSVC_OK) {
    fprintf(stderr, "msvc-breaker-sim: invalid breaker configuration: %s\n",
            msvc_strerror(rc));
    return 2;
  }
  in = strcmp(argv[idx], "-") == 0 ? stdin : fopen(argv[idx], "r");
  if (in == NULL) {
    fprintf(stderr, "msvc-breaker-sim: %s: %s\n", argv[idx], strerror(errno));
    msvc_breaker_free(s.b);
    return 1;
  }
  rc = run(&s, in, o.slow_call_duration_ms);
  if (in != stdin)
    fclose(in);
  free(s.heap);
  msvc_breaker_free(s.b);
  return rc;
}
