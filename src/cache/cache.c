/*
 * The response cache: a chained hash table of immutable, reference-counted
 * entries, one LRU list, one mutex. Entries never change once stored
 * (revalidation stores a new one), so a caller holding one reads it
 * without the lock while other threads replace or evict it.
 *
 * A key is the URI, a NUL, then 'S' for the shared entry or 'I' and the
 * identity for one user's: the two partitions cannot meet, whatever bytes
 * a URI or an identity holds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <msvc/cache.h>

#include "msvc-internal.h"

#define MIN_BUCKETS 64
/* Bookkeeping charged to each entry and header on top of their bytes. */
#define ENTRY_OVERHEAD 160
#define HEADER_OVERHEAD 32

struct msvc_cache_entry_s {
  atomic_int refs;
  msvc__queue_t lru;              /* guarded by the cache's mutex */
  struct msvc_cache_entry_s *next; /* hash chain, likewise */
  bool linked;                    /* in the table, likewise */
  uint64_t hash;
  char *key;
  size_t key_len;
  int status;
  size_t nheaders;
  char **names;
  char **values;
  char *body;
  size_t body_len;
  uint64_t stored_ms;
  uint64_t initial_age_ms;
  uint64_t lifetime_ms;
  uint64_t sie_ms; /* stale-if-error window after the lifetime */
  bool no_stale;   /* no-cache, must-revalidate, proxy-revalidate, s-maxage */
  bool is_private;
  uint64_t bytes;
};

struct msvc_cache_s {
  pthread_mutex_t mu;
  char *name;
  uint64_t max_bytes;
  uint64_t max_entry;
  uint32_t default_sie_s;
  uint64_t seed;
  msvc_cache_entry_t **buckets;
  size_t nbuckets;
  size_t count;
  uint64_t bytes;
  msvc__queue_t lru; /* most recently used first */
  _Atomic uint64_t counts[4];
  _Atomic uint64_t evictions;
  msvc_metrics_counter_t *by_result[4];
  msvc_metrics_counter_t *evicted;
  msvc_metrics_gauge_t *bytes_gauge;
};

static const char *const result_names[] = {"hit", "miss", "stale", "revalidated", "bypass"};

/* Headers that belong to one hop or one exchange, never stored. */
static const char *const not_stored[] = {
    "Connection", "Keep-Alive",  "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Connection", "TE",    "Trailer",            "Transfer-Encoding",
    "Upgrade",    "Content-Length", "Date",            "Age",
    "X-Request-Id", "traceparent", "tracestate",        "Retry-After",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Warning",
    "X-Cache"};

const char *msvc_cache_result_name(msvc_cache_result_t r) {
  if ((unsigned)r >= MSVC__ARRAY_SIZE(result_names))
    return "unknown";
  return result_names[r];
}

void msvc_cache_opts_init(msvc_cache_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->name = "default";
  opts->max_bytes = 16u << 20;
}

/* ---- entries ----------------------------------------------------------------- */

static void entry_free(msvc_cache_entry_t *e) {
  size_t i;

  for (i = 0; i < e->nheaders; i++) {
    msvc__free(e->names[i]);
    msvc__free(e->values[i]);
  }
  msvc__free(e->names);
  msvc__free(e->values);
  msvc__free(e->body);
  msvc__free(e->key);
  msvc__free(e);
}

msvc_cache_entry_t *msvc_cache_entry_ref(msvc_cache_entry_t *e) {
  if (e != NULL)
    atomic_fetch_add(&e->refs, 1);
  return e;
}

void msvc_cache_entry_release(msvc_cache_entry_t *e) {
  if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
    entry_free(e);
}

int msvc_cache_entry_status(const msvc_cache_entry_t *e) { return e != NULL ? e->status : 0; }

const char *msvc_cache_entry_body(const msvc_cache_entry_t *e, size_t *len) {
  if (len != NULL)
    *len = e != NULL ? e->body_len : 0;
  return e != NULL ? e->body : NULL;
}

size_t msvc_cache_entry_header_count(const msvc_cache_entry_t *e) {
  return e != NULL ? e->nheaders : 0;
}

int msvc_cache_entry_header_at(const msvc_cache_entry_t *e, size_t i, const char **name,
                               const char **value) {
  if (e == NULL || i >= e->nheaders || name == NULL || value == NULL)
    return MSVC_EINVAL;
  *name = e->names[i];
  *value = e->values[i];
  return MSVC_OK;
}

const char *msvc_cache_entry_header(const msvc_cache_entry_t *e, const char *name) {
  size_t i;

  if (e == NULL || name == NULL)
    return NULL;
  for (i = 0; i < e->nheaders; i++)
    if (msvc__strcasecmp(e->names[i], name) == 0)
      return e->values[i];
  return NULL;
}

static uint64_t age_ms(const msvc_cache_entry_t *e, uint64_t now_ms) {
  return e->initial_age_ms + (now_ms > e->stored_ms ? now_ms - e->stored_ms : 0);
}

uint64_t msvc_cache_entry_age_s(const msvc_cache_entry_t *e, uint64_t now_ms) {
  return e != NULL ? age_ms(e, now_ms) / 1000 : 0;
}

bool msvc_cache_entry_fresh(const msvc_cache_entry_t *e, uint64_t now_ms) {
  return e != NULL && age_ms(e, now_ms) < e->lifetime_ms;
}

bool msvc_cache_entry_stale_ok(const msvc_cache_entry_t *e, uint64_t now_ms) {
  if (e == NULL)
    return false;
  if (msvc_cache_entry_fresh(e, now_ms))
    return true;
  return !e->no_stale && age_ms(e, now_ms) < e->lifetime_ms + e->sie_ms;
}

bool msvc_cache_entry_private(const msvc_cache_entry_t *e) { return e != NULL && e->is_private; }

/* ---- answers ------------------------------------------------------------------- */

static const char *res_header(const msvc_cache_response_t *r, const char *name) {
  size_t i;

  for (i = 0; i < r->nheaders; i++)
    if (msvc__strcasecmp(r->names[i], name) == 0)
      return r->values[i];
  return NULL;
}

static bool stored_header(const char *name) {
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(not_stored); i++)
    if (msvc__strcasecmp(name, not_stored[i]) == 0)
      return false;
  return true;
}

/* Every Cache-Control line of the answer, as one list. */
static int answer_cc(const msvc_cache_response_t *r, msvc_cache_cc_t *cc) {
  msvc__buf_t b;
  size_t i, n = 0;
  char *joined;
  int rc;

  msvc__buf_init(&b, 0);
  for (i = 0; i < r->nheaders; i++)
    if (msvc__strcasecmp(r->names[i], "Cache-Control") == 0) {
      if (n++ > 0)
        msvc__buf_puts(&b, ", ");
      msvc__buf_puts(&b, r->values[i]);
    }
  joined = msvc__buf_detach(&b, &n);
  if (joined == NULL)
    return MSVC_ENOMEM;
  rc = msvc_cache_cc_parse(joined, n, cc);
  msvc__free(joined);
  return rc;
}

static bool status_cacheable(int s) {
  static const int ok[] = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
  size_t i;

  for (i = 0; i < MSVC__ARRAY_SIZE(ok); i++)
    if (ok[i] == s)
      return true;
  return false;
}

/* Vary: only Authorization is understood (it sends the answer to the
 * identity partition); anything else makes the answer unstorable. */
static bool vary_ok(const msvc_cache_response_t *r, bool *by_auth) {
  size_t i;

  *by_auth = false;
  for (i = 0; i < r->nheaders; i++) {
    const char *v = r->values[i];
    if (msvc__strcasecmp(r->names[i], "Vary") != 0)
      continue;
    while (*v != '\0') {
      size_t n;
      v += strspn(v, " \t,");
      n = strcspn(v, " \t,");
      if (n == 0)
        break;
      if (n == 13 && msvc__strncasecmp(v, "Authorization", 13) == 0)
        *by_auth = true;
      else
        return false;
      v += n;
    }
  }
  return true;
}

static bool delta(const char *v, uint64_t *out) {
  uint64_t n = 0;

  if (v == NULL || *v == '\0')
    return false;
  for (; *v >= '0' && *v <= '9'; v++)
    n = n < MSVC_CACHE_DELTA_MAX ? n * 10 + (uint64_t)(*v - '0') : n;
  *out = n < MSVC_CACHE_DELTA_MAX ? n : MSVC_CACHE_DELTA_MAX;
  return *v == '\0';
}

/* The policy: whether and where an answer may be stored. 0 no, 1 shared,
 * 2 under the identity. */
typedef struct policy_s {
  int where;
  uint64_t lifetime_ms, sie_ms, age_ms;
  bool no_stale, no_store;
} policy_t;

static int decide(const msvc_cache_t *c, const msvc_cache_response_t *r, bool has_id,
                  policy_t *p) {
  msvc_cache_cc_t cc;
  bool by_auth, has_etag, has_life;
  uint64_t age = 0;
  int rc;

  memset(p, 0, sizeof(*p));
  if ((rc = answer_cc(r, &cc)) != 0)
    return rc;
  p->no_store = (cc.flags & MSVC_CACHE_CC_NO_STORE) != 0;
  if (p->no_store || (cc.flags & MSVC_CACHE_CC_MALFORMED) || !status_cacheable(r->status) ||
      res_header(r, "Set-Cookie") != NULL || !vary_ok(r, &by_auth))
    return MSVC_OK;
  has_etag = res_header(r, "ETag") != NULL;
  has_life = (cc.flags & (MSVC_CACHE_CC_S_MAXAGE | MSVC_CACHE_CC_MAX_AGE)) != 0;
  if (cc.flags & MSVC_CACHE_CC_S_MAXAGE)
    p->lifetime_ms = (uint64_t)cc.s_maxage * 1000;
  else if (cc.flags & MSVC_CACHE_CC_MAX_AGE)
    p->lifetime_ms = (uint64_t)cc.max_age * 1000;
  if (cc.flags & MSVC_CACHE_CC_NO_CACHE)
    p->lifetime_ms = 0;
  if (((cc.flags & MSVC_CACHE_CC_NO_CACHE) || !has_life) && !has_etag)
    return MSVC_OK; /* nothing to revalidate with: useless to keep */
  if (delta(res_header(r, "Age"), &age))
    p->age_ms = age * 1000;
  /* s-maxage implies proxy-revalidate for a shared cache (RFC 9111 5.2.2.10). */
  p->no_stale = (cc.flags & (MSVC_CACHE_CC_NO_CACHE | MSVC_CACHE_CC_MUST_REVALIDATE |
                             MSVC_CACHE_CC_PROXY_REVALIDATE | MSVC_CACHE_CC_S_MAXAGE)) != 0;
  p->sie_ms = (uint64_t)((cc.flags & MSVC_CACHE_CC_STALE_IF_ERROR) ? cc.stale_if_error
                                                                   : c->default_sie_s) *
              1000;
  if ((cc.flags & MSVC_CACHE_CC_PRIVATE) || by_auth ||
      (has_id && !(cc.flags & (MSVC_CACHE_CC_PUBLIC | MSVC_CACHE_CC_S_MAXAGE |
                               MSVC_CACHE_CC_MUST_REVALIDATE))))
    p->where = has_id ? 2 : 0;
  else
    p->where = 1;
  return MSVC_OK;
}

static char *make_key(const char *uri, const char *identity, size_t *len) {
  size_t ul = strlen(uri), il = identity != NULL ? strlen(identity) : 0;
  char *k = msvc__malloc(ul + il + 3);

  if (k == NULL)
    return NULL;
  memcpy(k, uri, ul);
  k[ul] = '\0';
  k[ul + 1] = identity != NULL ? 'I' : 'S';
  if (il > 0)
    memcpy(k + ul + 2, identity, il);
  k[ul + 2 + il] = '\0';
  *len = ul + 2 + il;
  return k;
}

static uint64_t hash_key(const msvc_cache_t *c, const char *k, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull ^ c->seed;
  size_t i;

  for (i = 0; i < len; i++) {
    h ^= (unsigned char)k[i];
    h *= 0x100000001b3ull;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

static msvc_cache_entry_t *build(const msvc_cache_response_t *r, const policy_t *p,
                                 char *key, size_t key_len, uint64_t now_ms) {
  msvc_cache_entry_t *e = msvc__calloc(1, sizeof(*e));
  size_t i;

  if (e == NULL)
    return NULL;
  atomic_init(&e->refs, 1);
  e->key = key;
  e->key_len = key_len;
  e->status = r->status;
  e->stored_ms = now_ms;
  e->initial_age_ms = p->age_ms;
  e->lifetime_ms = p->lifetime_ms;
  e->sie_ms = p->sie_ms;
  e->no_stale = p->no_stale;
  e->is_private = p->where == 2;
  e->bytes = ENTRY_OVERHEAD + key_len + r->body_len;
  e->names = msvc__calloc(r->nheaders + 1, sizeof(char *));
  e->values = msvc__calloc(r->nheaders + 1, sizeof(char *));
  e->body = msvc__malloc(r->body_len + 1);
  if (e->names == NULL || e->values == NULL || e->body == NULL)
    goto fail;
  if (r->body_len > 0)
    memcpy(e->body, r->body, r->body_len);
  e->body[r->body_len] = '\0';
  e->body_len = r->body_len;
  for (i = 0; i < r->nheaders; i++) {
    if (!stored_header(r->names[i]))
      continue;
    e->names[e->nheaders] = msvc__strdup(r->names[i]);
    e->values[e->nheaders] = msvc__strdup(r->values[i]);
    if (e->names[e->nheaders] == NULL || e->values[e->nheaders] == NULL) {
      e->nheaders++;
      goto fail;
    }
    e->bytes += HEADER_OVERHEAD + strlen(r->names[i]) + strlen(r->values[i]);
    e->nheaders++;
  }
  return e;
fail:
  e->key = NULL; /* the caller's on failure */
  entry_free(e);
  return NULL;
}

/* ---- the table (caller holds the mutex) ------------------------------------------ */

static msvc_cache_entry_t **slot_of(msvc_cache_t *c, const char *key, size_t len,
                                    uint64_t h) {
  msvc_cache_entry_t **pp = &c->buckets[h & (c->nbuckets - 1)];

  for (; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->hash == h && (*pp)->key_len == len && memcmp((*pp)->key, key, len) == 0)
      return pp;
  return pp;
}

static void unlink_entry(msvc_cache_t *c, msvc_cache_entry_t **pp) {
  msvc_cache_entry_t *e = *pp;

  *pp = e->next;
  e->next = NULL;
  e->linked = false;
  msvc__queue_remove(&e->lru);
  c->count--;
  c->bytes -= e->bytes;
  msvc_cache_entry_release(e);
}

static void remove_key(msvc_cache_t *c, const char *key, size_t len, int *dropped) {
  uint64_t h = hash_key(c, key, len);
  msvc_cache_entry_t **pp = slot_of(c, key, len, h);

  if (*pp != NULL) {
    unlink_entry(c, pp);
    if (dropped != NULL)
      (*dropped)++;
  }
}

static void grow(msvc_cache_t *c) {
  size_t n = c->nbuckets * 2, i;
  msvc_cache_entry_t **b = msvc__calloc(n, sizeof(*b));

  if (b == NULL)
    return; /* longer chains, still correct */
  for (i = 0; i < c->nbuckets; i++) {
    msvc_cache_entry_t *e = c->buckets[i];
    while (e != NULL) {
      msvc_cache_entry_t *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  msvc__free(c->buckets);
  c->buckets = b;
  c->nbuckets = n;
}

static void evict_for(msvc_cache_t *c, uint64_t need) {
  while (c->bytes + need > c->max_bytes && !msvc__queue_empty(&c->lru)) {
    msvc_cache_entry_t *old = msvc__container_of(c->lru.prev, msvc_cache_entry_t, lru);
    unlink_entry(c, slot_of(c, old->key, old->key_len, old->hash));
    atomic_fetch_add(&c->evictions, 1);
    if (c->evicted != NULL)
      msvc_metrics_counter_inc(c->evicted);
  }
}

static void insert(msvc_cache_t *c, msvc_cache_entry_t *e) {
  msvc_cache_entry_t **pp;

  e->hash = hash_key(c, e->key, e->key_len);
  pp = slot_of(c, e->key, e->key_len, e->hash);
  if (*pp != NULL)
    unlink_entry(c, pp);
  evict_for(c, e->bytes);
  pp = slot_of(c, e->key, e->key_len, e->hash);
  *pp = e;
  e->linked = true;
  msvc__queue_insert_head(&c->lru, &e->lru);
  msvc_cache_entry_ref(e); /* the table's */
  c->count++;
  c->bytes += e->bytes;
  if (c->count > c->nbuckets)
    grow(c);
  if (c->bytes_gauge != NULL)
    msvc_metrics_gauge_set(c->bytes_gauge, (double)c->bytes);
}

/* ---- API ----------------------------------------------------------------------- */

static int metrics(msvc_cache_t *c, msvc_metrics_registry_t *reg) {
  static const char *const labels2[] = {"cache", "result"};
  static const char *const labels1[] = {"cache"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *req, *ev, *by;
  const char *v[2] = {c->name, NULL};
  int rc, i;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_cache_requests_total";
  fo.help = "Requests a response cache answered, by how (hit, miss, stale, revalidated).";
  fo.label_names = labels2;
  fo.label_count = 2;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &req)) != 0)
    return rc;
  for (i = 0; i < 4; i++) {
    v[1] = result_names[i];
    if ((rc = msvc_metrics_counter_get(req, v, 2, &c->by_result[i])) != 0)
      return rc;
  }
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_cache_evictions_total";
  fo.help = "Entries a response cache dropped to stay within its byte cap.";
  fo.label_names = labels1;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &ev)) != 0 ||
      (rc = msvc_metrics_counter_get(ev, v, 1, &c->evicted)) != 0)
    return rc;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_cache_bytes";
  fo.help = "Bytes a response cache holds.";
  fo.label_names = labels1;
  fo.label_count = 1;
  if ((rc = msvc_metrics_family_new(reg, MSVC_METRICS_GAUGE, &fo, &by)) != 0)
    return rc;
  return msvc_metrics_gauge_get(by, v, 1, &c->bytes_gauge);
}

int msvc_cache_new(const msvc_cache_opts_t *opts, msvc_cache_t **out) {
  msvc_cache_opts_t o;
  msvc_cache_t *c;
  int rc;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  msvc_cache_opts_init(&o);
  if (opts != NULL && !msvc__opts_copy(&o, sizeof(o), opts))
    return MSVC_EINVAL;
  if (o.name == NULL || o.name[0] == '\0' || o.max_bytes < 4096 ||
      o.max_bytes > (1ull << 40) || o.max_entry_bytes > o.max_bytes)
    return MSVC_EINVAL;
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL)
    return MSVC_ENOMEM;
  c->name = msvc__strdup(o.name);
  c->buckets = msvc__calloc(MIN_BUCKETS, sizeof(*c->buckets));
  if (c->name == NULL || c->buckets == NULL) {
    msvc__free(c->name);
    msvc__free(c->buckets);
    msvc__free(c);
    return MSVC_ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->nbuckets = MIN_BUCKETS;
  c->max_bytes = o.max_bytes;
  c->max_entry = o.max_entry_bytes != 0 ? o.max_entry_bytes : o.max_bytes / 8;
  c->default_sie_s = o.default_stale_if_error_s;
  c->seed = msvc__rand64();
  msvc__queue_init(&c->lru);
  if (!o.no_metrics && (rc = metrics(c, o.registry)) != 0) {
    msvc_cache_free(c);
    return rc;
  }
  *out = c;
  return MSVC_OK;
}

void msvc_cache_free(msvc_cache_t *c) {
  size_t i;

  if (c == NULL)
    return;
  for (i = 0; i < c->nbuckets; i++)
    while (c->buckets[i] != NULL)
      unlink_entry(c, &c->buckets[i]);
  pthread_mutex_destroy(&c->mu);
  msvc__free(c->buckets);
  msvc__free(c->name);
  msvc__free(c);
}

static const char *id_or_null(const char *identity) {
  return identity != NULL && identity[0] != '\0' ? identity : NULL;
}

/* The held entry under one key, moved to the front; NULL when absent. */
static msvc_cache_entry_t *find(msvc_cache_t *c, const char *uri, const char *identity) {
  msvc_cache_entry_t **pp, *e = NULL;
  size_t len;
  char *key = make_key(uri, identity, &len);

  if (key == NULL)
    return NULL; /* out of memory: a miss */
  pp = slot_of(c, key, len, hash_key(c, key, len));
  if (*pp != NULL) {
    e = msvc_cache_entry_ref(*pp);
    msvc__queue_remove(&e->lru);
    msvc__queue_insert_head(&c->lru, &e->lru);
  }
  msvc__free(key);
  return e;
}

int msvc_cache_lookup(msvc_cache_t *c, const char *uri, const char *identity, uint64_t now_ms,
                      msvc_cache_entry_t **out) {
  msvc_cache_entry_t *e = NULL;

  if (out != NULL)
    *out = NULL;
  if (c == NULL || uri == NULL || out == NULL)
    return MSVC_EINVAL;
  identity = id_or_null(identity);
  pthread_mutex_lock(&c->mu);
  if (identity != NULL)
    e = find(c, uri, identity);
  if (e == NULL)
    e = find(c, uri, NULL);
  pthread_mutex_unlock(&c->mu);
  if (e == NULL)
    return MSVC_CACHE_ABSENT;
  *out = e;
  return msvc_cache_entry_fresh(e, now_ms) ? MSVC_CACHE_FRESH : MSVC_CACHE_EXPIRED;
}

static bool response_ok(const msvc_cache_response_t *r) {
  size_t i;

  if (r == NULL || (r->nheaders > 0 && (r->names == NULL || r->values == NULL)) ||
      (r->body == NULL && r->body_len > 0))
    return false;
  for (i = 0; i < r->nheaders; i++)
    if (r->names[i] == NULL || r->values[i] == NULL)
      return false;
  return true;
}

/* Stores under the policy's partition; *out gets a reference. force_where
 * (1 or 2) keeps a revalidated entry in the partition it came from. */
static int store(msvc_cache_t *c, const char *uri, const char *identity,
                 const msvc_cache_response_t *r, uint64_t now_ms, int force_where,
                 msvc_cache_entry_t **out) {
  msvc_cache_entry_t *e;
  policy_t p;
  size_t klen;
  char *key;
  int rc;

  if ((rc = decide(c, r, identity != NULL, &p)) != 0)
    return rc;
  if (p.where == 1 && force_where == 2)
    p.where = 2; /* once one user's, always one user's */
  if (p.where == 2 && identity == NULL)
    p.where = 0;
  if (p.where == 0) {
    if (p.no_store) { /* the origin wants no copy kept: drop what we have */
      pthread_mutex_lock(&c->mu);
      if ((key = make_key(uri, NULL, &klen)) != NULL) {
        remove_key(c, key, klen, NULL);
        msvc__free(key);
      }
      if (identity != NULL && (key = make_key(uri, identity, &klen)) != NULL) {
        remove_key(c, key, klen, NULL);
        msvc__free(key);
      }
      pthread_mutex_unlock(&c->mu);
    }
    return 0;
  }
  key = make_key(uri, p.where == 2 ? identity : NULL, &klen);
  if (key == NULL)
    return MSVC_ENOMEM;
  e = build(r, &p, key, klen, now_ms);
  if (e == NULL) {
    msvc__free(key);
    return MSVC_ENOMEM;
  }
  if (e->bytes > c->max_entry) {
    msvc_cache_entry_release(e);
    return 0;
  }
  pthread_mutex_lock(&c->mu);
  insert(c, e);
  /* A user's own older copy must not hide the shared answer. */
  if (p.where == 1 && identity != NULL && (key = make_key(uri, identity, &klen)) != NULL) {
    remove_key(c, key, klen, NULL);
    msvc__free(key);
  }
  pthread_mutex_unlock(&c->mu);
  if (out != NULL)
    *out = e;
  else
    msvc_cache_entry_release(e);
  return 1;
}

int msvc_cache_store(msvc_cache_t *c, const char *uri, const char *identity,
                     const msvc_cache_response_t *res, uint64_t now_ms,
                     msvc_cache_entry_t **out) {
  if (out != NULL)
    *out = NULL;
  if (c == NULL || uri == NULL || !response_ok(res))
    return MSVC_EINVAL;
  return store(c, uri, id_or_null(identity), res, now_ms, 0, out);
}

int msvc_cache_revalidated(msvc_cache_t *c, const char *uri, const char *identity,
                           const msvc_cache_entry_t *old, const msvc_cache_response_t *res304,
                           uint64_t now_ms, msvc_cache_entry_t **out) {
  msvc_cache_response_t m;
  const char **names = NULL, **values = NULL;
  size_t i, n = 0;
  policy_t p;
  int rc;

  if (out != NULL)
    *out = NULL;
  if (c == NULL || uri == NULL || old == NULL || out == NULL || !response_ok(res304))
    return MSVC_EINVAL;
  identity = id_or_null(identity);
  names = msvc__calloc(old->nheaders + res304->nheaders + 1, sizeof(*names));
  values = msvc__calloc(old->nheaders + res304->nheaders + 1, sizeof(*values));
  if (names == NULL || values == NULL) {
    rc = MSVC_ENOMEM;
    goto done;
  }
  for (i = 0; i < old->nheaders; i++)
    if (res_header(res304, old->names[i]) == NULL || !stored_header(old->names[i])) {
      names[n] = old->names[i];
      values[n++] = old->values[i];
    }
  for (i = 0; i < res304->nheaders; i++) {
    names[n] = res304->names[i];
    values[n++] = res304->values[i];
  }
  m.status = old->status;
  m.names = names;
  m.values = values;
  m.nheaders = n;
  m.body = old->body;
  m.body_len = old->body_len;
  rc = store(c, uri, old->is_private ? identity : NULL, &m, now_ms,
             old->is_private ? 2 : 1, out);
  if (rc == 0) {
    /* Not to be kept, but it answers this request. */
    char *key;
    size_t klen;
    memset(&p, 0, sizeof(p));
    p.where = old->is_private ? 2 : 1;
    decide(c, &m, identity != NULL, &p);
    p.where = old->is_private ? 2 : 1;
    key = make_key(uri, NULL, &klen);
    if (key != NULL && (*out = build(&m, &p, key, klen, now_ms)) == NULL)
      msvc__free(key);
    rc = *out != NULL ? MSVC_OK : MSVC_ENOMEM;
  } else if (rc == 1) {
    rc = MSVC_OK;
  }
done:
  msvc__free(names);
  msvc__free(values);
  return rc;
}

int msvc_cache_invalidate(msvc_cache_t *c, const char *uri, const char *identity) {
  int dropped = 0;
  size_t klen;
  char *key;

  if (c == NULL || uri == NULL)
    return MSVC_EINVAL;
  identity = id_or_null(identity);
  pthread_mutex_lock(&c->mu);
  if ((key = make_key(uri, NULL, &klen)) != NULL) {
    remove_key(c, key, klen, &dropped);
    msvc__free(key);
  }
  if (identity != NULL && (key = make_key(uri, identity, &klen)) != NULL) {
    remove_key(c, key, klen, &dropped);
    msvc__free(key);
  }
  if (c->bytes_gauge != NULL)
    msvc_metrics_gauge_set(c->bytes_gauge, (double)c->bytes);
  pthread_mutex_unlock(&c->mu);
  return dropped;
}

void msvc_cache_note(msvc_cache_t *c, msvc_cache_result_t result) {
  if (c == NULL || (unsigned)result >= 4)
    return;
  atomic_fetch_add_explicit(&c->counts[result], 1, memory_order_relaxed);
  if (c->by_result[result] != NULL)
    msvc_metrics_counter_inc(c->by_result[result]);
}

int msvc_cache_stats(msvc_cache_t *c, msvc_cache_stats_t *out) {
  if (c == NULL || out == NULL)
    return MSVC_EINVAL;
  out->hits = atomic_load(&c->counts[MSVC_CACHE_HIT]);
  out->misses = atomic_load(&c->counts[MSVC_CACHE_MISS]);
  out->stale = atomic_load(&c->counts[MSVC_CACHE_STALE]);
  out->revalidated = atomic_load(&c->counts[MSVC_CACHE_REVALIDATED]);
  out->evictions = atomic_load(&c->evictions);
  pthread_mutex_lock(&c->mu);
  out->entries = c->count;
  out->bytes = c->bytes;
  pthread_mutex_unlock(&c->mu);
  return MSVC_OK;
}
