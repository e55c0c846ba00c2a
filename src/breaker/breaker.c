/*
 * Circuit breaker state machine.
 *
 * Hot path: in CLOSED (and DISABLED, METRICS_ONLY) acquire is one atomic
 * load and record touches only the calling thread's window stripe. The
 * state and a generation number share one atomic word, so a permit carries
 * a consistent snapshot of both and an outcome from an earlier generation
 * can be recognised and dropped.
 *
 * Everything else (transitions, HALF_OPEN probe accounting, the event
 * queue) happens under one mutex. Lock order: the mutex, then a window
 * stripe. The transition callback is never called with either held: events
 * are queued under the mutex and delivered afterwards by whichever thread
 * finds nobody else delivering, in order, one at a time.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <msvc/breaker.h>

#include "breaker/window.h"
#include "msvc-internal.h"

#define STATE_BITS 4u
#define STATE_MASK 15u
#define MAX_REOPENS 62u

typedef struct event_s {
  msvc_breaker_state_t from;
  msvc_breaker_state_t to;
  msvc_breaker_reason_t reason;
  uint64_t now_ms;
} event_t;

struct msvc_breaker_s {
  /* Read by every acquire: kept away from the lines writers dirty. */
  _Atomic uint64_t state_gen; /* gen << STATE_BITS | state */
  _Atomic uint64_t open_until_ms;
  msvc_breaker_opts_t opt;
  char pad0[64];
  _Atomic uint64_t not_permitted;
  _Atomic uint64_t breaches;
  char pad1[64];

  pthread_mutex_t mu;
  uint64_t gen;
  uint64_t transitions;
  uint64_t closed_since_ms;
  uint32_t reopens;
  /* HALF_OPEN probes */
  uint32_t ho_issued;
  uint32_t ho_in_flight;
  uint32_t ho_calls;
  uint32_t ho_failures;
  uint32_t ho_slow;
  uint64_t ho_since_ms;
  /* transition events waiting for the callback */
  event_t *events;
  size_t ev_head;
  size_t ev_len;
  size_t ev_cap;
  bool delivering;
  uint64_t events_dropped;

  msvc__bw_t window;
};

static inline uint64_t pack(uint64_t gen, msvc_breaker_state_t s) {
  return gen << STATE_BITS | (uint64_t)s;
}

static inline msvc_breaker_state_t unpack_state(uint64_t sg) {
  return (msvc_breaker_state_t)(sg & STATE_MASK);
}

static inline bool lets_all_through(msvc_breaker_state_t s) {
  return s == MSVC_BREAKER_CLOSED || s == MSVC_BREAKER_DISABLED ||
         s == MSVC_BREAKER_METRICS_ONLY;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

void msvc_breaker_opts_init(msvc_breaker_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->window_type = MSVC_BREAKER_WINDOW_TIME;
  opts->window_seconds = 10;
  opts->window_calls = 100;
  opts->minimum_calls = 20;
  opts->failure_rate_threshold = 50.0;
  opts->slow_call_rate_threshold = 100.0;
  opts->slow_call_duration_ms = 60000;
  opts->wait_in_open_ms = 30000;
  opts->wait_in_open_max_ms = 300000;
  opts->wait_jitter = 0.0;
  opts->backoff_reset_ms = 300000;
  opts->permitted_calls_in_half_open = 5;
  opts->max_wait_in_half_open_ms = 30000;
}

static bool rate_ok(double r) {
  return isfinite(r) && r > 0.0 && r <= 100.0;
}

static int check_options(msvc_breaker_opts_t *o) {
  if (o->window_type == MSVC_BREAKER_WINDOW_TIME) {
    if (o->window_seconds < 1 || o->window_seconds > 3600)
      return MSVC_ECONFIG;
  } else if (o->window_type == MSVC_BREAKER_WINDOW_COUNT) {
    if (o->window_calls < 1 || o->window_calls > 100000)
      return MSVC_ECONFIG;
    /* A count window never holds more than window_calls outcomes: a larger
     * minimum would silently keep the breaker closed forever. */
    if (o->minimum_calls > o->window_calls)
      o->minimum_calls = o->window_calls;
  } else {
    return MSVC_ECONFIG;
  }
  if (o->minimum_calls < 1 || !rate_ok(o->failure_rate_threshold) ||
      !rate_ok(o->slow_call_rate_threshold))
    return MSVC_ECONFIG;
  if (o->wait_in_open_ms < 1 || o->wait_in_open_max_ms < o->wait_in_open_ms)
    return MSVC_ECONFIG;
  if (!isfinite(o->wait_jitter) || o->wait_jitter < 0.0 ||
      o->wait_jitter >= 1.0)
    return MSVC_ECONFIG;
  if (o->permitted_calls_in_half_open < 1 ||
      o->permitted_calls_in_half_open > 10000)
    return MSVC_ECONFIG;
  return MSVC_OK;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

int msvc_breaker_new(const msvc_breaker_opts_t *opts,
                     msvc_breaker_t **out) {
  msvc_breaker_opts_t o;
  msvc_breaker_t *b;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  msvc_breaker_opts_init(&o);
  if (opts != NULL) {
    if (opts->size != sizeof(o))
      return MSVC_EINVAL;
    o = *opts;
  }
  rc = check_options(&o);
  if (rc != MSVC_OK)
    return rc;
  b = msvc__calloc(1, sizeof(*b));
  if (b == NULL)
    return MSVC_ENOMEM;
  b->opt = o;
  b->gen = 1;
  rc = msvc__bw_init(&b->window, o.window_type == MSVC_BREAKER_WINDOW_COUNT,
                     o.window_type == MSVC_BREAKER_WINDOW_COUNT
                         ? o.window_calls
                         : o.window_seconds,
                     b->gen);
  if (rc != MSVC_OK) {
    msvc__free(b);
    return rc;
  }
  if (pthread_mutex_init(&b->mu, NULL) != 0) {
    msvc__bw_free(&b->window);
    msvc__free(b);
    return MSVC_ENOMEM;
  }
  atomic_init(&b->state_gen, pack(b->gen, MSVC_BREAKER_CLOSED));
  atomic_init(&b->open_until_ms, 0);
  atomic_init(&b->not_permitted, 0);
  atomic_init(&b->breaches, 0);
  *out = b;
  return MSVC_OK;
}

void msvc_breaker_free(msvc_breaker_t *b) {
  if (b == NULL)
    return;
  pthread_mutex_destroy(&b->mu);
  msvc__bw_free(&b->window);
  msvc__free(b->events);
  msvc__free(b);
}

/* ------------------------------------------------------------------ */
/* Transitions (mutex held)                                            */
/* ------------------------------------------------------------------ */

static int queue_event(msvc_breaker_t *b, const event_t *ev) {
  if (b->opt.on_transition == NULL)
    return MSVC_OK;
  if (b->ev_head > 0 && b->ev_head == b->ev_len)
    b->ev_head = b->ev_len = 0;
  if (b->ev_len == b->ev_cap) {
    size_t cap = b->ev_cap ? b->ev_cap * 2 : 8;
    event_t *n;

    if (b->ev_head > 0) {
      memmove(b->events, b->events + b->ev_head,
              (b->ev_len - b->ev_head) * sizeof(*n));
      b->ev_len -= b->ev_head;
      b->ev_head = 0;
    } else {
      n = msvc__realloc(b->events, cap * sizeof(*n));
      if (n == NULL) {
        b->events_dropped++;
        return MSVC_ENOMEM;
      }
      b->events = n;
      b->ev_cap = cap;
    }
  }
  b->events[b->ev_len++] = *ev;
  return MSVC_OK;
}

static uint64_t open_wait(msvc_breaker_t *b) {
  uint64_t wait = b->opt.wait_in_open_ms;
  uint32_t i;

  for (i = 0; i < b->reopens && wait < b->opt.wait_in_open_max_ms; i++)
    wait *= 2;
  if (wait > b->opt.wait_in_open_max_ms)
    wait = b->opt.wait_in_open_max_ms;
  if (b->opt.wait_jitter > 0.0) {
    uint64_t spread = (uint64_t)((double)wait * b->opt.wait_jitter);

    wait = wait - spread + msvc__rand_below(2 * spread + 1);
    if (wait == 0)
      wait = 1;
  }
  return wait;
}

static void enter_open(msvc_breaker_t *b, msvc_breaker_state_t from,
                       uint64_t now_ms) {
  /* Opening after a long enough healthy stretch starts the backoff over;
   * anything else is one more re-open in a row. */
  if (from == MSVC_BREAKER_CLOSED && now_ms >= b->closed_since_ms &&
      now_ms - b->closed_since_ms >= b->opt.backoff_reset_ms)
    b->reopens = 0;
  atomic_store_explicit(&b->open_until_ms, now_ms + open_wait(b),
                        memory_order_relaxed);
  if (b->reopens < MAX_REOPENS)
    b->reopens++;
}

/* Moves to `to`, empties the window and queues the event. Returns
 * MSVC_ENOMEM only if the event could not be queued. */
static int set_state(msvc_breaker_t *b, msvc_breaker_state_t to,
                     msvc_breaker_reason_t reason, uint64_t now_ms) {
  msvc_breaker_state_t from = unpack_state(
      atomic_load_explicit(&b->state_gen, memory_order_relaxed));
  event_t ev = {from, to, reason, now_ms};

  b->gen++;
  /* Window first: permits taken from now on carry the new generation and
   * must find the window already theirs. */
  msvc__bw_reset(&b->window, b->gen);
  switch (to) {
  case MSVC_BREAKER_OPEN:
    enter_open(b, from, now_ms);
    break;
  case MSVC_BREAKER_HALF_OPEN:
    b->ho_issued = b->ho_in_flight = 0;
    b->ho_calls = b->ho_failures = b->ho_slow = 0;
    b->ho_since_ms = now_ms;
    break;
  case MSVC_BREAKER_CLOSED:
    b->closed_since_ms = now_ms;
    break;
  default:
    break;
  }
  if (to != MSVC_BREAKER_OPEN)
    atomic_store_explicit(&b->open_until_ms, 0, memory_order_relaxed);
  b->transitions++;
  atomic_store_explicit(&b->state_gen, pack(b->gen, to), memory_order_release);
  return queue_event(b, &ev);
}

/* Runs the callback for queued events. Called with the mutex NOT held. */
static void deliver(msvc_breaker_t *b) {
  if (b->opt.on_transition == NULL)
    return;
  pthread_mutex_lock(&b->mu);
  if (b->delivering) {
    pthread_mutex_unlock(&b->mu);
    return;
  }
  b->delivering = true;
  while (b->ev_head < b->ev_len) {
    event_t ev = b->events[b->ev_head++];

    pthread_mutex_unlock(&b->mu);
    b->opt.on_transition(b->opt.on_transition_data, b, ev.from, ev.to,
                         ev.reason, ev.now_ms);
    pthread_mutex_lock(&b->mu);
  }
  b->delivering = false;
  pthread_mutex_unlock(&b->mu);
}

/* ------------------------------------------------------------------ */
/* Acquire                                                             */
/* ------------------------------------------------------------------ */

static int reject(msvc_breaker_t *b) {
  atomic_fetch_add_explicit(&b->not_permitted, 1, memory_order_relaxed);
  return MSVC_EBREAKER_OPEN;
}

/* The slow path: OPEN whose wait is over, and HALF_OPEN. Mutex held. */
static int acquire_locked(msvc_breaker_t *b, uint64_t now_ms,
                          msvc_breaker_permit_t *permit) {
  uint64_t sg = atomic_load_explicit(&b->state_gen, memory_order_relaxed);
  msvc_breaker_state_t s = unpack_state(sg);

  if (lets_all_through(s)) {
    permit->token = sg;
    return MSVC_OK;
  }
  if (s == MSVC_BREAKER_OPEN) {
    if (now_ms < atomic_load_explicit(&b->open_until_ms, memory_order_relaxed))
      return reject(b);
    set_state(b, MSVC_BREAKER_HALF_OPEN, MSVC_BREAKER_REASON_WAIT_ELAPSED,
              now_ms);
    s = MSVC_BREAKER_HALF_OPEN;
  }
  if (s != MSVC_BREAKER_HALF_OPEN)
    return reject(b);
  if (b->ho_issued < b->opt.permitted_calls_in_half_open) {
    b->ho_issued++;
    b->ho_in_flight++;
    permit->token = atomic_load_explicit(&b->state_gen, memory_order_relaxed);
    return MSVC_OK;
  }
  if (b->opt.max_wait_in_half_open_ms > 0 && now_ms >= b->ho_since_ms &&
      now_ms - b->ho_since_ms >= b->opt.max_wait_in_half_open_ms)
    set_state(b, MSVC_BREAKER_OPEN, MSVC_BREAKER_REASON_HALF_OPEN_TIMEOUT,
              now_ms);
  return reject(b);
}

int msvc_breaker_acquire(msvc_breaker_t *b, uint64_t now_ms,
                         msvc_breaker_permit_t *permit) {
  uint64_t sg;
  msvc_breaker_state_t s;
  int rc;

  if (b == NULL || permit == NULL)
    return MSVC_EINVAL;
  permit->token = 0;
  sg = atomic_load_explicit(&b->state_gen, memory_order_acquire);
  s = unpack_state(sg);
  if (lets_all_through(s)) {
    permit->token = sg;
    return MSVC_OK;
  }
  if (s == MSVC_BREAKER_FORCED_OPEN ||
      (s == MSVC_BREAKER_OPEN &&
       now_ms < atomic_load_explicit(&b->open_until_ms, memory_order_relaxed)))
    return reject(b);
  pthread_mutex_lock(&b->mu);
  rc = acquire_locked(b, now_ms, permit);
  pthread_mutex_unlock(&b->mu);
  deliver(b);
  return rc;
}

bool msvc_breaker_is_rejecting(msvc_breaker_t *b, uint64_t now_ms) {
  msvc_breaker_state_t s;
  bool full;

  if (b == NULL)
    return false;
  s = msvc_breaker_state(b);
  if (s == MSVC_BREAKER_FORCED_OPEN)
    return true;
  if (s == MSVC_BREAKER_OPEN)
    return now_ms <
           atomic_load_explicit(&b->open_until_ms, memory_order_relaxed);
  if (s != MSVC_BREAKER_HALF_OPEN)
    return false;
  pthread_mutex_lock(&b->mu);
  full = unpack_state(atomic_load_explicit(&b->state_gen,
                                           memory_order_relaxed)) ==
             MSVC_BREAKER_HALF_OPEN &&
         b->ho_issued >= b->opt.permitted_calls_in_half_open;
  pthread_mutex_unlock(&b->mu);
  return full;
}

/* ------------------------------------------------------------------ */
/* Record                                                              */
/* ------------------------------------------------------------------ */

static bool reached(uint64_t part, uint64_t calls, double threshold) {
  return (double)part * 100.0 >= threshold * (double)calls;
}

/* Judges the window after a bad outcome recorded under `token`. */
static void evaluate(msvc_breaker_t *b, uint64_t token, uint64_t now_ms) {
  msvc__bw_counts_t c;
  msvc_breaker_reason_t reason;

  msvc__bw_totals(&b->window, now_ms, &c);
  if (c.calls < b->opt.minimum_calls || c.calls == 0)
    return;
  if (reached(c.failures, c.calls, b->opt.failure_rate_threshold))
    reason = MSVC_BREAKER_REASON_FAILURE_RATE;
  else if (reached(c.slow, c.calls, b->opt.slow_call_rate_threshold))
    reason = MSVC_BREAKER_REASON_SLOW_CALL_RATE;
  else
    return;
  if (unpack_state(token) == MSVC_BREAKER_METRICS_ONLY) {
    atomic_fetch_add_explicit(&b->breaches, 1, memory_order_relaxed);
    return;
  }
  pthread_mutex_lock(&b->mu);
  /* Another thread may have opened (or reset) the breaker meanwhile. */
  if (atomic_load_explicit(&b->state_gen, memory_order_relaxed) == token) {
    atomic_fetch_add_explicit(&b->breaches, 1, memory_order_relaxed);
    set_state(b, MSVC_BREAKER_OPEN, reason, now_ms);
  }
  pthread_mutex_unlock(&b->mu);
  deliver(b);
}

/* Decides HALF_OPEN once the probes' outcomes allow it. Mutex held. */
static void judge_probes(msvc_breaker_t *b, uint64_t now_ms) {
  uint32_t n = b->opt.permitted_calls_in_half_open;

  /* Failures alone can settle it before every probe is back: no point
   * sending more traffic to a dependency that has already failed enough. */
  if (reached(b->ho_failures, n, b->opt.failure_rate_threshold) ||
      reached(b->ho_slow, n, b->opt.slow_call_rate_threshold)) {
    set_state(b, MSVC_BREAKER_OPEN, MSVC_BREAKER_REASON_PROBES_FAILED, now_ms);
    return;
  }
  if (b->ho_calls < n)
    return;
  set_state(b, MSVC_BREAKER_CLOSED, MSVC_BREAKER_REASON_PROBES_SUCCEEDED,
            now_ms);
}

static void record_probe(msvc_breaker_t *b, uint64_t token,
                         msvc_breaker_outcome_t outcome, unsigned bits,
                         uint64_t now_ms) {
  pthread_mutex_lock(&b->mu);
  if (atomic_load_explicit(&b->state_gen, memory_order_relaxed) == token &&
      b->ho_in_flight > 0) {
    b->ho_in_flight--;
    if (outcome == MSVC_BREAKER_IGNORED) {
      /* The probe told us nothing: let another call take its place. */
      b->ho_issued--;
    } else {
      b->ho_calls++;
      if (bits & MSVC__BW_FAILURE)
        b->ho_failures++;
      if (bits & MSVC__BW_SLOW)
        b->ho_slow++;
      judge_probes(b, now_ms);
    }
  }
  pthread_mutex_unlock(&b->mu);
  deliver(b);
}

int msvc_breaker_record(msvc_breaker_t *b, msvc_breaker_permit_t *permit,
                        msvc_breaker_outcome_t outcome, uint64_t duration_ms,
                        uint64_t now_ms) {
  uint64_t token, cur;
  msvc_breaker_state_t s;
  unsigned bits = 0;

  if (b == NULL || permit == NULL || outcome < MSVC_BREAKER_SUCCESS ||
      outcome > MSVC_BREAKER_IGNORED)
    return MSVC_EINVAL;
  token = permit->token;
  s = unpack_state(token);
  cur = atomic_load_explicit(&b->state_gen, memory_order_relaxed);
  if (token == 0 || (token >> STATE_BITS) > (cur >> STATE_BITS) ||
      !(lets_all_through(s) || s == MSVC_BREAKER_HALF_OPEN))
    return MSVC_EBREAKER_PERMIT;
  permit->token = 0;
  if (outcome == MSVC_BREAKER_FAILURE)
    bits |= MSVC__BW_FAILURE;
  if (outcome != MSVC_BREAKER_IGNORED &&
      duration_ms > b->opt.slow_call_duration_ms)
    bits |= MSVC__BW_SLOW;
  if (s == MSVC_BREAKER_HALF_OPEN) {
    record_probe(b, token, outcome, bits, now_ms);
    return MSVC_OK;
  }
  if (outcome == MSVC_BREAKER_IGNORED)
    return MSVC_OK;
  if (!msvc__bw_record(&b->window, token >> STATE_BITS, bits, now_ms))
    return MSVC_OK;
  if (bits != 0 && s != MSVC_BREAKER_DISABLED)
    evaluate(b, token, now_ms);
  return MSVC_OK;
}

/* ------------------------------------------------------------------ */
/* Operators and readers                                               */
/* ------------------------------------------------------------------ */

msvc_breaker_state_t msvc_breaker_state(const msvc_breaker_t *b) {
  if (b == NULL)
    return MSVC_BREAKER_CLOSED;
  return unpack_state(atomic_load_explicit(
      &((msvc_breaker_t *)b)->state_gen, memory_order_acquire));
}

int msvc_breaker_transition(msvc_breaker_t *b, msvc_breaker_state_t to,
                            uint64_t now_ms) {
  int rc = MSVC_OK;

  if (b == NULL || to < MSVC_BREAKER_CLOSED ||
      to > MSVC_BREAKER_METRICS_ONLY)
    return MSVC_EINVAL;
  pthread_mutex_lock(&b->mu);
  if (msvc_breaker_state(b) != to)
    rc = set_state(b, to, MSVC_BREAKER_REASON_MANUAL, now_ms);
  pthread_mutex_unlock(&b->mu);
  deliver(b);
  return rc;
}

int msvc_breaker_reset(msvc_breaker_t *b, uint64_t now_ms) {
  int rc = MSVC_OK;

  if (b == NULL)
    return MSVC_EINVAL;
  pthread_mutex_lock(&b->mu);
  b->reopens = 0;
  if (msvc_breaker_state(b) != MSVC_BREAKER_CLOSED) {
    rc = set_state(b, MSVC_BREAKER_CLOSED, MSVC_BREAKER_REASON_RESET, now_ms);
  } else {
    b->gen++;
    msvc__bw_reset(&b->window, b->gen);
    b->closed_since_ms = now_ms;
    atomic_store_explicit(&b->state_gen, pack(b->gen, MSVC_BREAKER_CLOSED),
                          memory_order_release);
  }
  pthread_mutex_unlock(&b->mu);
  deliver(b);
  return rc;
}

static double rate_of(uint64_t part, uint64_t calls, uint32_t minimum) {
  if (calls == 0 || calls < minimum)
    return -1.0;
  return (double)part * 100.0 / (double)calls;
}

int msvc_breaker_stats(msvc_breaker_t *b, uint64_t now_ms,
                       msvc_breaker_stats_t *out) {
  msvc__bw_counts_t c;

  if (b == NULL || out == NULL)
    return MSVC_EINVAL;
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&b->mu);
  out->state = msvc_breaker_state(b);
  if (out->state == MSVC_BREAKER_HALF_OPEN) {
    c.calls = b->ho_calls;
    c.failures = b->ho_failures;
    c.slow = b->ho_slow;
  } else {
    msvc__bw_totals(&b->window, now_ms, &c);
  }
  out->calls = c.calls;
  out->failures = c.failures;
  out->slow_calls = c.slow;
  out->failure_rate = rate_of(c.failures, c.calls, b->opt.minimum_calls);
  out->slow_call_rate = rate_of(c.slow, c.calls, b->opt.minimum_calls);
  out->transitions = b->transitions;
  out->probes_in_flight =
      out->state == MSVC_BREAKER_HALF_OPEN ? b->ho_in_flight : 0;
  out->reopens_in_a_row = b->reopens;
  out->open_until_ms =
      atomic_load_explicit(&b->open_until_ms, memory_order_relaxed);
  out->events_dropped = b->events_dropped;
  pthread_mutex_unlock(&b->mu);
  out->not_permitted =
      atomic_load_explicit(&b->not_permitted, memory_order_relaxed);
  out->threshold_breaches =
      atomic_load_explicit(&b->breaches, memory_order_relaxed);
  return MSVC_OK;
}

const char *msvc_breaker_state_name(msvc_breaker_state_t state) {
  switch (state) {
  case MSVC_BREAKER_CLOSED: return "closed";
  case MSVC_BREAKER_OPEN: return "open";
  case MSVC_BREAKER_HALF_OPEN: return "half_open";
  case MSVC_BREAKER_FORCED_OPEN: return "forced_open";
  case MSVC_BREAKER_DISABLED: return "disabled";
  case MSVC_BREAKER_METRICS_ONLY: return "metrics_only";
  }
  return "unknown";
}

const char *msvc_breaker_reason_name(msvc_breaker_reason_t reason) {
  switch (reason) {
  case MSVC_BREAKER_REASON_FAILURE_RATE: return "failure_rate";
  case MSVC_BREAKER_REASON_SLOW_CALL_RATE: return "slow_call_rate";
  case MSVC_BREAKER_REASON_WAIT_ELAPSED: return "wait_elapsed";
  case MSVC_BREAKER_REASON_PROBES_SUCCEEDED: return "probes_succeeded";
  case MSVC_BREAKER_REASON_PROBES_FAILED: return "probes_failed";
  case MSVC_BREAKER_REASON_HALF_OPEN_TIMEOUT: return "half_open_timeout";
  case MSVC_BREAKER_REASON_MANUAL: return "manual";
  case MSVC_BREAKER_REASON_RESET: return "reset";
  }
  return "unknown";
}
