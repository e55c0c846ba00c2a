/* The response cache with an injected clock: freshness, revalidation,
 * stale-if-error, private isolation, the byte cap and LRU order. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <msvc/cache.h>

#define URI "order-service /orders?user_id=1"
#define ALICE "Bearer alice"
#define BOB "Bearer bob"

static msvc_cache_t *cache_new(uint64_t max_bytes) {
  msvc_cache_opts_t o;
  msvc_cache_t *c;

  msvc_cache_opts_init(&o);
  o.max_bytes = max_bytes;
  o.max_entry_bytes = max_bytes;
  o.no_metrics = true;
  cr_assert_eq(msvc_cache_new(&o, &c), MSVC_OK);
  return c;
}

/* Stores a 200 with the given Cache-Control (NULL: none) and ETag (NULL:
 * none); returns what msvc_cache_store() returned. */
static int put(msvc_cache_t *c, const char *uri, const char *id, const char *cc,
               const char *etag, const char *body, uint64_t now) {
  const char *names[4], *values[4];
  msvc_cache_response_t r = {0};
  size_t n = 0;

  names[n] = "Content-Type";
  values[n++] = "application/json";
  if (cc != NULL) {
    names[n] = "Cache-Control";
    values[n++] = cc;
  }
  if (etag != NULL) {
    names[n] = "ETag";
    values[n++] = etag;
  }
  r.status = 200;
  r.names = names;
  r.values = values;
  r.nheaders = n;
  r.body = body;
  r.body_len = strlen(body);
  return msvc_cache_store(c, uri, id, &r, now, NULL);
}

/* The state of a lookup, and the body found (or ""). */
static int get(msvc_cache_t *c, const char *uri, const char *id, uint64_t now, char *body,
               size_t cap) {
  msvc_cache_entry_t *e;
  int st = msvc_cache_lookup(c, uri, id, now, &e);

  body[0] = '\0';
  if (e != NULL) {
    snprintf(body, cap, "%s", msvc_cache_entry_body(e, NULL));
    msvc_cache_entry_release(e);
  }
  return st;
}

Test(cache, max_age_fresh_then_expired) {
  msvc_cache_t *c = cache_new(1 << 20);
  char b[64];

  cr_assert_eq(get(c, URI, NULL, 0, b, sizeof(b)), MSVC_CACHE_ABSENT);
  cr_assert_eq(put(c, URI, NULL, "max-age=10", NULL, "v1", 1000), 1);
  cr_assert_eq(get(c, URI, NULL, 1000, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_str_eq(b, "v1");
  cr_assert_eq(get(c, URI, NULL, 10999, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(get(c, URI, NULL, 11000, b, sizeof(b)), MSVC_CACHE_EXPIRED);
  msvc_cache_free(c);
}

Test(cache, s_maxage_wins_over_max_age_and_forbids_stale) {
  msvc_cache_t *c = cache_new(1 << 20);
  msvc_cache_entry_t *e;
  char b[64];

  cr_assert_eq(put(c, URI, NULL, "max-age=100, s-maxage=2, stale-if-error=60", NULL, "v", 0),
               1);
  cr_assert_eq(get(c, URI, NULL, 1999, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(msvc_cache_lookup(c, URI, NULL, 2000, &e), MSVC_CACHE_EXPIRED);
  cr_assert_not(msvc_cache_entry_stale_ok(e, 2000), "s-maxage implies proxy-revalidate");
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, upstream_age_counts) {
  msvc_cache_t *c = cache_new(1 << 20);
  const char *names[] = {"Cache-Control", "Age"}, *values[] = {"max-age=10", "8"};
  msvc_cache_response_t r = {200, names, values, 2, "x", 1};
  msvc_cache_entry_t *e;

  cr_assert_eq(msvc_cache_store(c, URI, NULL, &r, 0, &e), 1);
  cr_assert_eq(msvc_cache_entry_age_s(e, 1000), 9);
  cr_assert(msvc_cache_entry_fresh(e, 1999));
  cr_assert_not(msvc_cache_entry_fresh(e, 2000));
  cr_assert_null(msvc_cache_entry_header(e, "Age"), "Age is computed, not stored");
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, no_store_is_never_stored_and_drops_the_old_copy) {
  msvc_cache_t *c = cache_new(1 << 20);
  char b[64];

  cr_assert_eq(put(c, URI, NULL, "max-age=60", NULL, "old", 0), 1);
  cr_assert_eq(put(c, URI, NULL, "no-store, max-age=60", NULL, "new", 1), 0);
  cr_assert_eq(get(c, URI, NULL, 2, b, sizeof(b)), MSVC_CACHE_ABSENT);
  msvc_cache_free(c);
}

Test(cache, no_cache_needs_a_validator_and_is_always_revalidated) {
  msvc_cache_t *c = cache_new(1 << 20);
  msvc_cache_entry_t *e;
  char b[64];

  cr_assert_eq(put(c, URI, NULL, "no-cache, max-age=60", NULL, "v", 0), 0);
  cr_assert_eq(put(c, URI, NULL, "no-cache, max-age=60, stale-if-error=60", "\"e1\"", "v", 0),
               1);
  cr_assert_eq(get(c, URI, NULL, 0, b, sizeof(b)), MSVC_CACHE_EXPIRED);
  cr_assert_eq(msvc_cache_lookup(c, URI, NULL, 1, &e), MSVC_CACHE_EXPIRED);
  cr_assert_not(msvc_cache_entry_stale_ok(e, 1), "no-cache forbids stale answers");
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, without_freshness_only_with_an_etag) {
  msvc_cache_t *c = cache_new(1 << 20);
  char b[64];

  cr_assert_eq(put(c, URI, NULL, NULL, NULL, "v", 0), 0);
  cr_assert_eq(put(c, URI, NULL, "public", NULL, "v", 0), 0);
  cr_assert_eq(put(c, URI, NULL, NULL, "\"e\"", "v", 0), 1);
  cr_assert_eq(get(c, URI, NULL, 0, b, sizeof(b)), MSVC_CACHE_EXPIRED);
  msvc_cache_free(c);
}

Test(cache, malformed_cache_control_is_not_stored) {
  msvc_cache_t *c = cache_new(1 << 20);

  cr_assert_eq(put(c, URI, NULL, "max-age=abc", "\"e\"", "v", 0), 0);
  cr_assert_eq(put(c, URI, NULL, "max-age=5, \"", NULL, "v", 0), 0);
  msvc_cache_free(c);
}

Test(cache, uncacheable_status_set_cookie_and_vary) {
  msvc_cache_t *c = cache_new(1 << 20);
  const char *n1[] = {"Cache-Control"}, *v1[] = {"max-age=60"};
  const char *n2[] = {"Cache-Control", "Set-Cookie"}, *v2[] = {"max-age=60", "a=b"};
  const char *n3[] = {"Cache-Control", "Vary"}, *v3[] = {"max-age=60", "Accept-Encoding"};
  const char *n4[] = {"Cache-Control", "Vary"}, *v4[] = {"public, max-age=60", "authorization"};
  msvc_cache_response_t r500 = {500, n1, v1, 1, "x", 1}, r404 = {404, n1, v1, 1, "x", 1};
  msvc_cache_response_t cookie = {200, n2, v2, 2, "x", 1}, vary = {200, n3, v3, 2, "x", 1};
  msvc_cache_response_t vauth = {200, n4, v4, 2, "x", 1};
  msvc_cache_entry_t *e;

  cr_assert_eq(msvc_cache_store(c, URI, NULL, &r500, 0, NULL), 0);
  cr_assert_eq(msvc_cache_store(c, URI, NULL, &r404, 0, NULL), 1);
  cr_assert_eq(msvc_cache_store(c, URI, NULL, &cookie, 0, NULL), 0);
  cr_assert_eq(msvc_cache_store(c, URI, NULL, &vary, 0, NULL), 0);
  /* Vary: Authorization: one user's answer, even when public. */
  cr_assert_eq(msvc_cache_store(c, "u", NULL, &vauth, 0, NULL), 0);
  cr_assert_eq(msvc_cache_store(c, "u", ALICE, &vauth, 0, &e), 1);
  cr_assert(msvc_cache_entry_private(e));
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, private_answers_never_reach_another_user) {
  msvc_cache_t *c = cache_new(1 << 20);
  char b[64];

  /* private without an identity: not stored at all */
  cr_assert_eq(put(c, URI, NULL, "private, max-age=60", NULL, "anon", 0), 0);
  cr_assert_eq(put(c, URI, ALICE, "private, max-age=60", NULL, "alice's", 0), 1);
  cr_assert_eq(get(c, URI, ALICE, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_str_eq(b, "alice's");
  cr_assert_eq(get(c, URI, BOB, 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
  cr_assert_eq(get(c, URI, NULL, 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
  /* an identity that merely starts like Alice's is another one */
  cr_assert_eq(get(c, URI, "Bearer alic", 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
  cr_assert_eq(get(c, URI, "Bearer alice2", 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
  cr_assert_eq(put(c, URI, BOB, "private, max-age=60", NULL, "bob's", 0), 1);
  cr_assert_eq(get(c, URI, ALICE, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_str_eq(b, "alice's");
  cr_assert_eq(get(c, URI, BOB, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_str_eq(b, "bob's");
  msvc_cache_free(c);
}

Test(cache, answers_to_credentials_are_shared_only_when_allowed) {
  msvc_cache_t *c = cache_new(1 << 20);
  char b[64];

  /* RFC 9111 3.5: not shared unless public, s-maxage or must-revalidate */
  cr_assert_eq(put(c, "a", ALICE, "max-age=60", NULL, "a", 0), 1);
  cr_assert_eq(get(c, "a", BOB, 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
  cr_assert_eq(put(c, "p", ALICE, "public, max-age=60", NULL, "p", 0), 1);
  cr_assert_eq(get(c, "p", BOB, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(get(c, "p", NULL, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(put(c, "s", ALICE, "s-maxage=60", NULL, "s", 0), 1);
  cr_assert_eq(get(c, "s", BOB, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(put(c, "m", ALICE, "must-revalidate, max-age=60", NULL, "m", 0), 1);
  cr_assert_eq(get(c, "m", BOB, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  /* an anonymous answer is shared */
  cr_assert_eq(put(c, "n", NULL, "max-age=60", NULL, "n", 0), 1);
  cr_assert_eq(get(c, "n", BOB, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  msvc_cache_free(c);
}

Test(cache, stale_only_within_stale_if_error) {
  msvc_cache_t *c = cache_new(1 << 20);
  msvc_cache_entry_t *e;

  cr_assert_eq(put(c, URI, ALICE, "private, max-age=10, stale-if-error=20", NULL, "v", 0), 1);
  cr_assert_eq(msvc_cache_lookup(c, URI, ALICE, 15000, &e), MSVC_CACHE_EXPIRED);
  cr_assert(msvc_cache_entry_stale_ok(e, 15000));
  cr_assert(msvc_cache_entry_stale_ok(e, 29999));
  cr_assert_not(msvc_cache_entry_stale_ok(e, 30000));
  cr_assert_eq(msvc_cache_entry_age_s(e, 29999), 29);
  msvc_cache_entry_release(e);
  /* must-revalidate forbids it */
  cr_assert_eq(put(c, "m", NULL, "max-age=1, must-revalidate, stale-if-error=60", NULL, "v", 0),
               1);
  cr_assert_eq(msvc_cache_lookup(c, "m", NULL, 2000, &e), MSVC_CACHE_EXPIRED);
  cr_assert_not(msvc_cache_entry_stale_ok(e, 2000));
  msvc_cache_entry_release(e);
  /* without stale-if-error: never stale */
  cr_assert_eq(put(c, "n", NULL, "max-age=1", NULL, "v", 0), 1);
  cr_assert_eq(msvc_cache_lookup(c, "n", NULL, 1000, &e), MSVC_CACHE_EXPIRED);
  cr_assert_not(msvc_cache_entry_stale_ok(e, 1000));
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, default_stale_if_error) {
  msvc_cache_opts_t o;
  msvc_cache_t *c;
  msvc_cache_entry_t *e;

  msvc_cache_opts_init(&o);
  o.no_metrics = true;
  o.default_stale_if_error_s = 5;
  cr_assert_eq(msvc_cache_new(&o, &c), MSVC_OK);
  cr_assert_eq(put(c, "d", NULL, "max-age=1", NULL, "v", 0), 1);
  cr_assert_eq(msvc_cache_lookup(c, "d", NULL, 5999, &e), MSVC_CACHE_EXPIRED);
  cr_assert(msvc_cache_entry_stale_ok(e, 5999));
  cr_assert_not(msvc_cache_entry_stale_ok(e, 6000));
  msvc_cache_entry_release(e);
  msvc_cache_free(c);
}

Test(cache, revalidation_with_a_304_keeps_the_body) {
  msvc_cache_t *c = cache_new(1 << 20);
  const char *n[] = {"Cache-Control", "ETag", "X-Extra"};
  const char *v[] = {"private, max-age=5, stale-if-error=30", "\"e1\"", "new"};
  msvc_cache_response_t r304 = {304, n, v, 3, NULL, 0};
  msvc_cache_entry_t *old, *fresh;
  char b[64];

  cr_assert_eq(put(c, URI, ALICE, "private, max-age=0, stale-if-error=30", "\"e1\"", "body", 0),
               1);
  cr_assert_eq(msvc_cache_lookup(c, URI, ALICE, 100, &old), MSVC_CACHE_EXPIRED);
  cr_assert_str_eq(msvc_cache_entry_header(old, "ETag"), "\"e1\"");
  cr_assert_eq(msvc_cache_revalidated(c, URI, ALICE, old, &r304, 1000, &fresh), MSVC_OK);
  cr_assert_str_eq(msvc_cache_entry_body(fresh, NULL), "body");
  cr_assert_eq(msvc_cache_entry_status(fresh), 200);
  cr_assert_str_eq(msvc_cache_entry_header(fresh, "X-Extra"), "new");
  cr_assert_str_eq(msvc_cache_entry_header(fresh, "Content-Type"), "application/json");
  cr_assert_str_eq(msvc_cache_entry_header(fresh, "Cache-Control"),
                   "private, max-age=5, stale-if-error=30");
  cr_assert(msvc_cache_entry_private(fresh));
  cr_assert_eq(msvc_cache_entry_age_s(fresh, 1000), 0);
  msvc_cache_entry_release(old);
  msvc_cache_entry_release(fresh);
  cr_assert_eq(get(c, URI, ALICE, 5999, b, sizeof(b)), MSVC_CACHE_FRESH);
  cr_assert_eq(get(c, URI, BOB, 5999, b, sizeof(b)), MSVC_CACHE_ABSENT);
  msvc_cache_free(c);
}

Test(cache, a_304_with_no_store_answers_once_and_drops_it) {
  msvc_cache_t *c = cache_new(1 << 20);
  const char *n[] = {"Cache-Control"}, *v[] = {"no-store"};
  msvc_cache_response_t r304 = {304, n, v, 1, NULL, 0};
  msvc_cache_entry_t *old, *once;
  char b[64];

  cr_assert_eq(put(c, URI, NULL, "max-age=0", "\"e\"", "body", 0), 1);
  cr_assert_eq(msvc_cache_lookup(c, URI, NULL, 1, &old), MSVC_CACHE_EXPIRED);
  cr_assert_eq(msvc_cache_revalidated(c, URI, NULL, old, &r304, 2, &once), MSVC_OK);
  cr_assert_str_eq(msvc_cache_entry_body(once, NULL), "body");
  msvc_cache_entry_release(once);
  msvc_cache_entry_release(old);
  cr_assert_eq(get(c, URI, NULL, 3, b, sizeof(b)), MSVC_CACHE_ABSENT);
  msvc_cache_free(c);
}

Test(cache, byte_cap_and_lru_order) {
  msvc_cache_t *c = cache_new(8192);
  msvc_cache_stats_t st;
  char body[1001], uri[16], b[8];
  int i;

  memset(body, 'x', 1000);
  body[1000] = '\0';
  for (i = 0; i < 5; i++) {
    snprintf(uri, sizeof(uri), "u%d", i);
    cr_assert_eq(put(c, uri, NULL, "max-age=60", NULL, body, 0), 1);
  }
  /* u0 used again: u1 is now the least recently used */
  cr_assert_eq(get(c, "u0", NULL, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  for (i = 5; i < 100; i++) {
    snprintf(uri, sizeof(uri), "u%d", i);
    cr_assert_eq(put(c, uri, NULL, "max-age=60", NULL, body, 0), 1);
    cr_assert_eq(msvc_cache_stats(c, &st), MSVC_OK);
    cr_assert_leq(st.bytes, 8192);
    if (i == 7) {
      cr_assert_eq(get(c, "u1", NULL, 1, b, sizeof(b)), MSVC_CACHE_ABSENT);
      cr_assert_eq(get(c, "u0", NULL, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
    }
  }
  cr_assert_gt(st.evictions, 80);
  cr_assert_lt(st.entries, 8);
  cr_assert_eq(get(c, "u99", NULL, 1, b, sizeof(b)), MSVC_CACHE_FRESH);
  msvc_cache_free(c);
}

Test(cache, entry_larger_than_the_cap_is_refused) {
  msvc_cache_opts_t o;
  msvc_cache_t *c;
  char body[3000];

  msvc_cache_opts_init(&o);
  o.no_metrics = true;
  o.max_bytes = 8192;
  o.max_entry_bytes = 2048;
  cr_assert_eq(msvc_cache_new(&o, &c), MSVC_OK);
  memset(body, 'y', sizeof(body) - 1);
  body[sizeof(body) - 1] = '\0';
  cr_assert_eq(put(c, "big", NULL, "max-age=60", NULL, body, 0), 0);
  cr_assert_eq(put(c, "small", NULL, "max-age=60", NULL, "s", 0), 1);
  msvc_cache_free(c);
}

Test(cache, held_entry_outlives_eviction_and_free) {
  msvc_cache_t *c = cache_new(4096);
  msvc_cache_entry_t *e;
  char body[2000];

  memset(body, 'z', sizeof(body) - 1);
  body[sizeof(body) - 1] = '\0';
  cr_assert_eq(put(c, "a", NULL, "max-age=60", NULL, body, 0), 1);
  cr_assert_eq(msvc_cache_lookup(c, "a", NULL, 0, &e), MSVC_CACHE_FRESH);
  cr_assert_eq(put(c, "b", NULL, "max-age=60", NULL, body, 0), 1);
  cr_assert_eq(put(c, "c", NULL, "max-age=60", NULL, body, 0), 1);
  msvc_cache_free(c);
  cr_assert_eq(strlen(msvc_cache_entry_body(e, NULL)), 1999);
  msvc_cache_entry_release(e);
}

Test(cache, invalidate_notes_and_options) {
  msvc_cache_t *c = cache_new(1 << 20);
  msvc_cache_opts_t o;
  msvc_cache_stats_t st;
  msvc_cache_t *bad;

  cr_assert_eq(put(c, "x", NULL, "max-age=60", NULL, "s", 0), 1);
  cr_assert_eq(put(c, "x", ALICE, "private, max-age=60", NULL, "p", 0), 1);
  cr_assert_eq(msvc_cache_invalidate(c, "x", BOB), 1);
  cr_assert_eq(msvc_cache_invalidate(c, "x", ALICE), 1);
  msvc_cache_note(c, MSVC_CACHE_HIT);
  msvc_cache_note(c, MSVC_CACHE_STALE);
  msvc_cache_note(c, MSVC_CACHE_BYPASS);
  cr_assert_eq(msvc_cache_stats(c, &st), MSVC_OK);
  cr_assert_eq(st.hits, 1);
  cr_assert_eq(st.stale, 1);
  cr_assert_eq(st.entries, 0);
  cr_assert_eq(st.bytes, 0);
  cr_assert_str_eq(msvc_cache_result_name(MSVC_CACHE_REVALIDATED), "revalidated");
  msvc_cache_opts_init(&o);
  o.max_bytes = 100;
  cr_assert_eq(msvc_cache_new(&o, &bad), MSVC_EINVAL);
  cr_assert_eq(msvc_cache_new(NULL, NULL), MSVC_EINVAL);
  msvc_cache_free(NULL);
  msvc_cache_free(c);
}

Test(cache, metrics_are_counted) {
  msvc_metrics_registry_t *reg;
  msvc_cache_opts_t o;
  msvc_cache_t *c;
  char *text;
  size_t len;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  msvc_cache_opts_init(&o);
  o.name = "gw";
  o.registry = reg;
  cr_assert_eq(msvc_cache_new(&o, &c), MSVC_OK);
  msvc_cache_note(c, MSVC_CACHE_MISS);
  msvc_cache_note(c, MSVC_CACHE_MISS);
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &text, &len), MSVC_OK);
  cr_assert(strstr(text, "msvc_cache_requests_total{cache=\"gw\",result=\"miss\"} 2") != NULL,
            "%s", text);
  cr_assert(strstr(text, "msvc_cache_evictions_total{cache=\"gw\"} 0") != NULL);
  msvc_free(text);
  msvc_cache_free(c);
  msvc_metrics_registry_free(reg);
}

typedef struct race_s {
  msvc_cache_t *c;
  int id;
} race_t;

static void *hammer(void *arg) {
  race_t *r = arg;
  char uri[16], b[8];
  int i;

  for (i = 0; i < 20000; i++) {
    snprintf(uri, sizeof(uri), "k%d", i % 97);
    if ((i + r->id) % 3 == 0)
      put(r->c, uri, NULL, "max-age=60", NULL, "v", (uint64_t)i);
    else
      get(r->c, uri, NULL, (uint64_t)i, b, sizeof(b));
  }
  return NULL;
}

Test(cache, two_threads) {
  msvc_cache_t *c = cache_new(8192);
  race_t r[2] = {{c, 0}, {c, 1}};
  pthread_t t[2];
  msvc_cache_stats_t st;

  pthread_create(&t[0], NULL, hammer, &r[0]);
  pthread_create(&t[1], NULL, hammer, &r[1]);
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  cr_assert_eq(msvc_cache_stats(c, &st), MSVC_OK);
  cr_assert_leq(st.bytes, 8192);
  msvc_cache_free(c);
}
