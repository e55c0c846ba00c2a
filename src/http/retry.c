/*
 * Retry policy: which outcomes are retried, the backoff, and the budget.
 *
 * The budget is a ring of ten buckets spanning the window; each bucket
 * counts the requests and retries that fell in its tenth of the window, so
 * old traffic ages out in steps without keeping a timestamp per request.
 * It is what stops a retry storm: when a dependency fails, retries are held
 * to a fraction of live traffic instead of multiplying it.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/http_client.h>

#include "http/client_own.h"
#include "msvc-internal.h"

#define NBUCKETS 10

/* Every field is written under the policy's mutex, except that a request
 * counted in the bucket of the current slot is added without it (see
 * msvc_retry_note_request()). */
typedef struct bucket_s {
  _Atomic uint64_t slot; /* which tenth of time this bucket holds */
  _Atomic uint32_t requests;
  uint32_t retries;
} bucket_t;

struct msvc_retry_s {
  msvc_retry_opts_t o;
  uv_mutex_t mu;
  bucket_t b[NBUCKETS];
};

static uint64_t default_rand(void *data) {
  (void)data;
  return msvc__rand64();
}

static uint64_t default_clock(void *data) {
  (void)data;
  return msvc_now_ms();
}

void msvc_retry_opts_init(msvc_retry_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_attempts = 3;
  opts->base_ms = 25;
  opts->cap_ms = 1000;
  opts->retry_on = MSVC_RETRY_ON_DEFAULT;
  opts->budget_ratio = 0.2;
  opts->budget_min_per_s = 10;
  opts->budget_window_ms = 10000;
}

int msvc_retry_new(const msvc_retry_opts_t *opts, msvc_retry_t **out) {
  msvc_retry_t *r;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  r = msvc__calloc(1, sizeof(*r));
  if (r == NULL)
    return MSVC_ENOMEM;
  msvc_retry_opts_init(&r->o);
  if ((opts != NULL && !msvc__opts_copy(&r->o, sizeof(r->o), opts)) ||
      r->o.max_attempts == 0 || r->o.cap_ms < r->o.base_ms ||
      !(r->o.budget_ratio >= 0.0) || r->o.budget_window_ms < NBUCKETS) {
    msvc__free(r);
    return MSVC_EINVAL;
  }
  if (r->o.clock == NULL)
    r->o.clock = default_clock;
  if (r->o.rand == NULL)
    r->o.rand = default_rand;
  if (uv_mutex_init(&r->mu) != 0) {
    msvc__free(r);
    return MSVC_ENOMEM;
  }
  *out = r;
  return MSVC_OK;
}

void msvc_retry_free(msvc_retry_t *r) {
  if (r == NULL)
    return;
  uv_mutex_destroy(&r->mu);
  msvc__free(r);
}

static uint64_t slot_now(msvc_retry_t *r) {
  return r->o.clock(r->o.clock_data) / (r->o.budget_window_ms / NBUCKETS);
}

/* The bucket for slot, emptied first if it last held an older one. Called
 * locked. The counts are cleared before the slot is published, so that a
 * request counted without the lock lands in the new slot's counts. */
static bucket_t *bucket_at(msvc_retry_t *r, uint64_t slot) {
  bucket_t *b = &r->b[slot % NBUCKETS];

  if (atomic_load_explicit(&b->slot, memory_order_relaxed) != slot) {
    atomic_store_explicit(&b->requests, 0, memory_order_relaxed);
    b->retries = 0;
    atomic_store_explicit(&b->slot, slot, memory_order_release);
  }
  return b;
}

/* Counts a request in slot. Every request passes here: when the bucket of
 * now is already in use, an atomic add counts it with no lock. A bucket is
 * reused only a whole window later, so an add that races with its reset
 * can at worst count one request in a slot next to its own. */
static void note_request_in(msvc_retry_t *r, uint64_t slot) {
  bucket_t *b = &r->b[slot % NBUCKETS];

  if (atomic_load_explicit(&b->slot, memory_order_acquire) == slot) {
    atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
    return;
  }
  uv_mutex_lock(&r->mu);
  atomic_fetch_add_explicit(&bucket_at(r, slot)->requests, 1, memory_order_relaxed);
  uv_mutex_unlock(&r->mu);
}

void msvc_retry_note_request(msvc_retry_t *r) {
  if (r != NULL)
    note_request_in(r, slot_now(r));
}

void msvc__retry_note_request_at(msvc_retry_t *r, uint64_t now_ms) {
  if (r == NULL)
    return;
  /* The time read by the sender is the default clock's: no second read. */
  note_request_in(r, r->o.clock == default_clock
                         ? now_ms / (r->o.budget_window_ms / NBUCKETS)
                         : slot_now(r));
}

/* Takes one retry from the budget if there is room. Called locked. */
static bool budget_take(msvc_retry_t *r) {
  uint64_t now = slot_now(r);
  bucket_t *cur = bucket_at(r, now);
  uint64_t oldest = now >= NBUCKETS - 1 ? now - (NBUCKETS - 1) : 0;
  uint64_t requests = 0, retries = 0;
  double allowed;
  int i;

  for (i = 0; i < NBUCKETS; i++) {
    uint64_t slot = atomic_load_explicit(&r->b[i].slot, memory_order_relaxed);

    if (slot < oldest || slot > now)
      continue;
    requests += atomic_load_explicit(&r->b[i].requests, memory_order_relaxed);
    retries += r->b[i].retries;
  }
  allowed = r->o.budget_ratio * (double)requests +
            (double)r->o.budget_min_per_s * r->o.budget_window_ms / 1000.0;
  if ((double)retries + 1.0 > allowed)
    return false;
  cur->retries++;
  return true;
}

bool msvc_http_method_idempotent(const char *m) {
  static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  size_t i;

  if (m == NULL)
    return false;
  for (i = 0; i < sizeof(idem) / sizeof(idem[0]); i++)
    if (strcmp(m, idem[i]) == 0)
      return true;
  return false;
}

static bool outcome_retryable(uint32_t on, int err, int status) {
  switch (err) {
  case 0:
    return (status == 502 && (on & MSVC_RETRY_ON_502)) ||
           (status == 503 && (on & MSVC_RETRY_ON_503)) ||
           (status == 504 && (on & MSVC_RETRY_ON_504)) ||
           (status == 429 && (on & MSVC_RETRY_ON_429));
  case MSVC_ECONNREFUSED:
  case MSVC_EHTTP_DNS:
  case MSVC_EADDRNOTAVAIL:
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
    return (on & MSVC_RETRY_ON_CONNECT) != 0;
  case MSVC_ETIMEDOUT:
    return (on & MSVC_RETRY_ON_TIMEOUT) != 0;
  case MSVC_ECONNRESET:
  case MSVC_EPIPE:
  case MSVC_ECONNABORTED:
    return (on & MSVC_RETRY_ON_RESET) != 0;
  default:
    return false;
  }
}

/* Retry-After in its delay-seconds form; the HTTP-date form is ignored
 * because clocks between services cannot be trusted to agree. */
static uint64_t retry_after_ms(const char *v) {
  uint64_t s = 0;

  if (v == NULL || *v < '0' || *v > '9')
    return 0;
  for (; *v >= '0' && *v <= '9'; v++) {
    s = s * 10 + (uint64_t)(*v - '0');
    if (s > 86400)
      return 86400000;
  }
  return *v == '\0' ? s * 1000 : 0;
}

static uint32_t backoff_ms(msvc_retry_t *r, uint32_t attempt, const char *ra) {
  uint64_t ceiling = r->o.base_ms;
  uint64_t d, hint;
  uint32_t i;

  for (i = 1; i < attempt && ceiling < r->o.cap_ms; i++)
    ceiling *= 2;
  if (ceiling > r->o.cap_ms)
    ceiling = r->o.cap_ms;
  d = r->o.rand(r->o.rand_data) % (ceiling + 1);
  hint = retry_after_ms(ra);
  if (hint > d)
    d = hint < r->o.cap_ms ? hint : r->o.cap_ms;
  return (uint32_t)d;
}

int msvc_retry_check(msvc_retry_t *r, const msvc_retry_attempt_t *a,
                     uint32_t *delay_ms) {
  bool ok;

  if (r == NULL || a == NULL || delay_ms == NULL)
    return MSVC_EINVAL;
  *delay_ms = 0;
  if (a->attempt >= r->o.max_attempts)
    return 0;
  /* What never left cannot have been acted on, whatever the method. */
  if (!a->retryable && !a->not_sent && !msvc_http_method_idempotent(a->method))
    return 0;
  if (!outcome_retryable(r->o.retry_on, a->err, a->status))
    return 0;
  /* A server that asks for more time than we would wait is not asked
   * again sooner than it said. */
  if (retry_after_ms(a->retry_after) > r->o.cap_ms)
    return 0;
  uv_mutex_lock(&r->mu);
  /* The budget stops retries from multiplying the load on a struggling
   * dependency; a request that never left put no load anywhere, so sending
   * it again does not draw on the budget (the attempt limit still bounds
   * it). */
  ok = a->not_sent || budget_take(r);
  if (ok)
    *delay_ms = backoff_ms(r, a->attempt, a->retry_after);
  uv_mutex_unlock(&r->mu);
  return ok ? 1 : MSVC_ERETRY_BUDGET;
}
