/*
 * The history behind the charts: for each route, a ring of time slots
 * holding the requests, the 5xx answers and a latency histogram. Memory is
 * fixed when the ring is made (a bounded number of routes; later ones share
 * one "other" row), so a flood of distinct paths cannot grow it: routes
 * are patterns, never raw paths.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <msvc/error.h>

#include "admin-internal.h"

/* Latency buckets: upper bounds 0.125 ms doubling to 2^(NB-2) * 0.125 ms
 * (about 4 s), then everything above. */
#define NB 16

typedef struct slot_s {
  uint64_t epoch; /* which slot of time this holds (now / slot length) */
  uint32_t count;
  uint32_t errors;
  uint32_t hist[NB];
} slot_t;

typedef struct row_s {
  char name[96]; /* "GET /users/:id" */
  char method[16];
  char route[80];
  /* The strings last seen for this row: route patterns belong to the
   * service's servers and methods are static, so while the service (and
   * with it this ring) lives, the same pointer is the same text. */
  const char *seen_method;
  const char *seen_route;
  slot_t slots[MSVC__ADMIN_SLOTS];
} row_t;

struct msvc__admin_ring_s {
  uv_mutex_t mu;
  size_t nrows;
  row_t rows[MSVC__ADMIN_ROUTES];
};

int msvc__admin_ring_new(msvc__admin_ring_t **out) {
  msvc__admin_ring_t *r = msvc__calloc(1, sizeof(*r));

  *out = NULL;
  if (r == NULL) return MSVC_ENOMEM;
  if (uv_mutex_init(&r->mu) != 0) {
    msvc__free(r);
    return MSVC_ENOMEM;
  }
  *out = r;
  return MSVC_OK;
}

void msvc__admin_ring_free(msvc__admin_ring_t *r) {
  if (r == NULL) return;
  uv_mutex_destroy(&r->mu);
  msvc__free(r);
}

static int bucket_of(uint64_t dur_ns) {
  uint64_t bound = 125000; /* 0.125 ms */
  int i;

  for (i = 0; i < NB - 1; i++, bound *= 2)
    if (dur_ns <= bound) return i;
  return NB - 1;
}

static double bucket_ms(int i) { return 0.125 * (double)(1u << i); }

/* Whether s, cut to what a buffer of cap bytes holds, is stored: a long
 * route must find the row its cut copy made. */
static bool same_cut(const char *stored, size_t cap, const char *s) {
  return strncmp(stored, s, cap - 1) == 0 && (strlen(stored) == cap - 1 || s[strlen(stored)] == '\0');
}

/* Compared by method and route, not by a formatted name: this runs on
 * every request of the public servers. The last row is "(other)". */
static row_t *row_for(msvc__admin_ring_t *r, const char *method, const char *route) {
  size_t i;
  row_t *row;

  for (i = 0; i < r->nrows; i++) {
    row = &r->rows[i];
    if (row->seen_route == route && row->seen_method == method) return row;
  }
  for (i = 0; i < r->nrows; i++) {
    row = &r->rows[i];
    if (same_cut(row->route, sizeof(row->route), route) &&
        same_cut(row->method, sizeof(row->method), method)) {
      row->seen_route = route;
      row->seen_method = method;
      return row;
    }
  }
  if (r->nrows < MSVC__ADMIN_ROUTES - 1) {
    row = &r->rows[r->nrows++];
    snprintf(row->method, sizeof(row->method), "%s", method);
    snprintf(row->route, sizeof(row->route), "%s", route);
    snprintf(row->name, sizeof(row->name), "%s %s", method, route);
    row->seen_route = route;
    row->seen_method = method;
    return row;
  }
  row = &r->rows[MSVC__ADMIN_ROUTES - 1];
  if (r->nrows == MSVC__ADMIN_ROUTES - 1) {
    r->nrows++;
    snprintf(row->name, sizeof(row->name), "(other)");
    row->method[0] = '\0';
    row->route[0] = '\0';
  }
  return row;
}

void msvc__admin_ring_record(msvc__admin_ring_t *r, const char *method,
                             const char *route, int status, uint64_t dur_ns,
                             uint64_t now_ms) {
  uint64_t epoch = now_ms / MSVC__ADMIN_SLOT_MS;
  row_t *row;
  slot_t *s;

  if (r == NULL) return;
  uv_mutex_lock(&r->mu);
  row = row_for(r, method != NULL ? method : "?", route != NULL ? route : "(no route)");
  s = &row->slots[epoch % MSVC__ADMIN_SLOTS];
  if (s->epoch != epoch) {
    memset(s, 0, sizeof(*s));
    s->epoch = epoch;
  }
  s->count++;
  if (status >= 500) s->errors++;
  s->hist[bucket_of(dur_ns)]++;
  uv_mutex_unlock(&r->mu);
}

/* The upper bound of the bucket holding the 99th percentile. */
static double p99_ms(const slot_t *s) {
  uint64_t need, seen = 0;
  int i;

  if (s->count == 0) return 0;
  need = (uint64_t)ceil((double)s->count * 0.99);
  for (i = 0; i < NB; i++) {
    seen += s->hist[i];
    if (seen >= need) return bucket_ms(i);
  }
  return bucket_ms(NB - 1);
}

static cJSON *row_json(const row_t *row, uint64_t now_epoch) {
  cJSON *o = cJSON_CreateObject(), *rate, *err, *p99;
  double total = 0, errors = 0;
  uint64_t k;

  if (o == NULL) return NULL;
  cJSON_AddStringToObject(o, "route", row->name);
  rate = cJSON_AddArrayToObject(o, "rate");
  err = cJSON_AddArrayToObject(o, "errors_per_s");
  p99 = cJSON_AddArrayToObject(o, "p99_ms");
  if (rate == NULL || err == NULL || p99 == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  for (k = 0; k < MSVC__ADMIN_SLOTS; k++) {
    uint64_t epoch = now_epoch + 1 + k - MSVC__ADMIN_SLOTS;
    const slot_t *s = &row->slots[epoch % MSVC__ADMIN_SLOTS];
    double secs = MSVC__ADMIN_SLOT_MS / 1000.0;
    bool live = s->epoch == epoch && now_epoch + 1 >= MSVC__ADMIN_SLOTS - k;

    cJSON_AddItemToArray(rate, cJSON_CreateNumber(live ? s->count / secs : 0));
    cJSON_AddItemToArray(err, cJSON_CreateNumber(live ? s->errors / secs : 0));
    cJSON_AddItemToArray(p99, cJSON_CreateNumber(live ? p99_ms(s) : 0));
    if (live) {
      total += s->count;
      errors += s->errors;
    }
  }
  cJSON_AddNumberToObject(o, "requests", total);
  cJSON_AddNumberToObject(o, "errors", errors);
  return o;
}

int msvc__admin_ring_json(msvc__admin_ring_t *r, uint64_t now_ms, cJSON *out) {
  cJSON *routes;
  size_t i;
  int rc = MSVC_OK;

  if (r == NULL || out == NULL) return MSVC_EINVAL;
  cJSON_AddNumberToObject(out, "slot_seconds", MSVC__ADMIN_SLOT_MS / 1000.0);
  cJSON_AddNumberToObject(out, "slots", MSVC__ADMIN_SLOTS);
  routes = cJSON_AddArrayToObject(out, "routes");
  if (routes == NULL) return MSVC_ENOMEM;
  uv_mutex_lock(&r->mu);
  for (i = 0; i < r->nrows && rc == MSVC_OK; i++) {
    cJSON *row = row_json(&r->rows[i], now_ms / MSVC__ADMIN_SLOT_MS);
    if (row == NULL) rc = MSVC_ENOMEM;
    else cJSON_AddItemToArray(routes, row);
  }
  uv_mutex_unlock(&r->mu);
  return rc;
}
