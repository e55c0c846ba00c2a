/* JWK Set fetcher: a libmsvc HTTP server on the test's own loop serves a JWK
 * Set the tests change as they go; the fetcher runs on the same loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <uv.h>
#include <msvc/http.h>
#include <msvc/jwks.h>
#include <msvc/jwt.h>
#include <msvc/metrics.h>
#include <msvc/middleware.h>
#include <msvc/tls.h>

#include "tls/helpers.h"

/* HMAC secrets of 32 bytes (43 base64url characters, zero trailing bits). */
#define K1 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaE"
#define K2 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbI"
#define K3 "ccccccccccccccccccccccccccccccccccccccccccQ"
#define JWK(kid, k) "{\"kty\":\"oct\",\"kid\":\"" kid "\",\"alg\":\"HS256\",\"k\":\"" k "\"}"

typedef struct fixture_s {
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_jwt_keyset_t *ks;
  msvc_jwt_verifier_t *v;
  msvc_metrics_registry_t *reg;
  msvc_jwks_fetcher_t *f;
  msvc_jwks_opts_t opts;
  char url[64];
  const char *doc;
  char *owned_doc;
  int status;
  const char *cache_control;
  int requests;
  int fetched;
  int last_err;
  int closed;
  bool close_in_handler;
  bool timer_fired;
} fixture_t;

static fixture_t fx;

static void on_jwks(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fixture_t *x = data;

  (void)req;
  x->requests++;
  if (x->cache_control != NULL)
    cr_assert_eq(msvc_http_res_header(res, "Cache-Control", x->cache_control), MSVC_OK);
  msvc_http_res_send(res, x->status, "application/json", x->doc, strlen(x->doc));
  if (x->close_in_handler) {
    msvc_jwks_fetcher_close(x->f, NULL, NULL);
    x->f = NULL;
  }
}

static void on_fetch(void *data, int err) {
  fixture_t *x = data;

  x->fetched++;
  x->last_err = err;
}

static void setup(void) {
  memset(&fx, 0, sizeof(fx));
  cr_assert_eq(uv_loop_init(&fx.loop), 0);
  cr_assert_eq(msvc_http_server_new(&fx.loop, NULL, &fx.srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(fx.srv, "GET", "/jwks", on_jwks, &fx, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(fx.srv, "127.0.0.1", 0), MSVC_OK);
  snprintf(fx.url, sizeof(fx.url), "http://127.0.0.1:%d/jwks",
           msvc_http_server_port(fx.srv));
  cr_assert_eq(msvc_jwt_keyset_new(&fx.ks), MSVC_OK);
  cr_assert_eq(msvc_jwt_verifier_new(NULL, fx.ks, &fx.v), MSVC_OK);
  cr_assert_eq(msvc_metrics_registry_new(NULL, &fx.reg), MSVC_OK);
  fx.doc = "{\"keys\":[" JWK("k1", K1) "]}";
  fx.status = 200;
  msvc_jwks_opts_init(&fx.opts);
  fx.opts.url = fx.url;
  fx.opts.keyset = fx.ks;
  fx.opts.metrics = fx.reg;
  fx.opts.on_fetch = on_fetch;
  fx.opts.on_fetch_data = &fx;
}

static void on_server_closed(void *data) {
  (void)data;
}

static void teardown(void) {
  msvc_jwks_fetcher_close(fx.f, NULL, NULL);
  if (fx.srv != NULL)
    msvc_http_server_close(fx.srv, on_server_closed, NULL);
  cr_assert_eq(uv_run(&fx.loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&fx.loop), 0, "a handle leaked");
  msvc_jwt_verifier_free(fx.v);
  msvc_jwt_keyset_free(fx.ks);
  msvc_metrics_registry_free(fx.reg);
  free(fx.owned_doc);
}

TestSuite(jwks_fetch, .init = setup, .fini = teardown, .timeout = 20);

static void run_until_fetched(int n) {
  uint64_t start = uv_now(&fx.loop);

  while (fx.fetched < n) {
    cr_assert_lt(uv_now(&fx.loop) - start, 10000, "fetch %d never completed", n);
    uv_run(&fx.loop, UV_RUN_ONCE);
  }
}

static void on_run_timer(uv_timer_t *t) {
  fixture_t *x = t->data;

  x->timer_fired = true;
}

static void on_timer_closed(uv_handle_t *h) {
  (void)h;
}

/* Runs the loop for about ms milliseconds, whatever else happens. */
static void run_for(uint64_t ms) {
  uv_timer_t t;

  fx.timer_fired = false;
  cr_assert_eq(uv_timer_init(&fx.loop, &t), 0);
  t.data = &fx;
  cr_assert_eq(uv_timer_start(&t, on_run_timer, ms, 0), 0);
  while (!fx.timer_fired)
    uv_run(&fx.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, on_timer_closed);
  uv_run(&fx.loop, UV_RUN_NOWAIT);
}

static char *sign(const char *jwk) {
  msvc_jwt_key_t *k = NULL;
  char *tok = NULL;

  cr_assert_eq(msvc_jwt_key_from_jwk(jwk, strlen(jwk), &k), MSVC_OK, "%s",
               msvc_jwt_errmsg());
  cr_assert_eq(msvc_jwt_sign(k, MSVC_JWT_HS256, "{\"sub\":\"alice\"}", &tok), MSVC_OK);
  msvc_jwt_key_free(k);
  return tok;
}

static int verify(const char *tok) {
  return msvc_jwt_verify(fx.v, tok, strlen(tok), NULL);
}

static double fetches(const char *result) {
  static const char *const labels[] = {"result"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_jwt_jwks_fetches_total";
  fo.help = "JWK Set fetches, by result.";
  fo.label_names = labels;
  fo.label_count = 1;
  cr_assert_eq(msvc_metrics_family_new(fx.reg, MSVC_METRICS_COUNTER, &fo, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(fam, &result, 1, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

static void start(void) {
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &fx.f), MSVC_OK);
  cr_assert_eq(fx.fetched, 0, "no callback from inside the call");
}

Test(jwks_fetch, first_fetch_fills_the_key_set) {
  char *tok = sign(JWK("k1", K1));
  msvc_jwks_stats_t st;

  start();
  run_until_fetched(1);
  cr_assert_eq(fx.last_err, MSVC_OK);
  cr_assert_eq(fx.requests, 1);
  cr_assert_eq(msvc_jwt_keyset_count(fx.ks), 1);
  cr_assert_eq(verify(tok), MSVC_OK);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.fetches, 1);
  cr_assert_eq(st.errors, 0);
  cr_assert_eq(st.last_status, 200);
  cr_assert_eq(st.next_refresh_ms, 600000, "no max-age: the 10 min default");
  cr_assert_eq(fetches("ok"), 1.0);
  msvc_free(tok);
}

Test(jwks_fetch, unknown_kid_refetches_once_then_cools_down) {
  char *t1 = sign(JWK("k1", K1));
  char *t2 = sign(JWK("k2", K2));
  char *t3 = sign(JWK("k3", K3));
  msvc_jwks_stats_t st;

  start();
  run_until_fetched(1);
  cr_assert_eq(verify(t1), MSVC_OK);

  /* Rotation: the issuer starts signing with k2 and publishes it. */
  fx.doc = "{\"keys\":[" JWK("k1", K1) "," JWK("k2", K2) "]}";
  cr_assert_eq(verify(t2), MSVC_EJWT_UNKNOWN_KID);
  cr_assert_eq(verify(t2), MSVC_EJWT_UNKNOWN_KID, "single-flight: still one refetch");
  run_until_fetched(2);
  cr_assert_eq(fx.requests, 2, "exactly one refetch");
  cr_assert_eq(verify(t2), MSVC_OK);
  cr_assert_eq(verify(t1), MSVC_OK);

  /* A second unknown kid within the cooldown: no fetch. */
  fx.doc = "{\"keys\":[" JWK("k2", K2) "," JWK("k3", K3) "]}";
  cr_assert_eq(verify(t3), MSVC_EJWT_UNKNOWN_KID);
  run_for(150);
  cr_assert_eq(fx.requests, 2, "no refetch within the cooldown");
  cr_assert_eq(verify(t3), MSVC_EJWT_UNKNOWN_KID);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.kid_refetches, 1);
  msvc_free(t1);
  msvc_free(t2);
  msvc_free(t3);
}

Test(jwks_fetch, unknown_kid_after_the_cooldown_refetches) {
  char *t2 = sign(JWK("k2", K2));
  char *t3 = sign(JWK("k3", K3));

  fx.opts.cooldown_ms = 100;
  start();
  run_until_fetched(1);
  fx.doc = "{\"keys\":[" JWK("k2", K2) "]}";
  cr_assert_eq(verify(t2), MSVC_EJWT_UNKNOWN_KID);
  run_until_fetched(2);
  cr_assert_eq(verify(t2), MSVC_OK);
  run_for(150);
  fx.doc = "{\"keys\":[" JWK("k3", K3) "]}";
  cr_assert_eq(verify(t3), MSVC_EJWT_UNKNOWN_KID);
  run_until_fetched(3);
  cr_assert_eq(fx.requests, 3);
  cr_assert_eq(verify(t3), MSVC_OK);
  msvc_free(t2);
  msvc_free(t3);
}

/* Each failure keeps k1 and counts the error under its result. */
static void expect_failure(int n, const char *result, double count) {
  char *t1 = sign(JWK("k1", K1));
  char *t2 = sign(JWK("k2", K2));
  msvc_jwks_stats_t st;

  cr_assert_eq(msvc_jwks_fetcher_refresh(fx.f), MSVC_OK);
  run_until_fetched(n);
  cr_assert_neq(fx.last_err, MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_count(fx.ks), 1, "last good keys kept");
  cr_assert_eq(verify(t1), MSVC_OK);
  cr_assert_eq(verify(t2), MSVC_EJWT_UNKNOWN_KID);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.errors, (uint64_t)(n - 1));
  cr_assert_eq(st.next_refresh_ms, fx.opts.min_refresh_ms, "retry after the minimum");
  cr_assert_eq(fetches(result), count, "%s", result);
  msvc_free(t1);
  msvc_free(t2);
}

Test(jwks_fetch, failures_keep_the_last_good_keys) {
  size_t n = 300;

  fx.opts.max_size = 256;
  fx.opts.cooldown_ms = 0;
  start();
  run_until_fetched(1);
  cr_assert_eq(fx.last_err, MSVC_OK);

  fx.status = 500;
  fx.doc = "{\"keys\":[" JWK("k2", K2) "]}";
  expect_failure(2, "status", 1.0);

  fx.status = 200;
  fx.doc = "this is not JSON";
  expect_failure(3, "bad_document", 1.0);

  fx.doc = "{\"keys\":[]}";
  expect_failure(4, "bad_document", 2.0);

  fx.doc = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k2\",\"alg\":\"HS256\",\"k\":\"short\"}]}";
  expect_failure(5, "bad_document", 3.0);

  fx.owned_doc = malloc(n + 1);
  cr_assert_not_null(fx.owned_doc);
  memset(fx.owned_doc, ' ', n);
  memcpy(fx.owned_doc, "{\"keys\":[" JWK("k2", K2) "]", 9 + strlen(JWK("k2", K2)) + 1);
  fx.owned_doc[n - 1] = '}';
  fx.owned_doc[n] = '\0';
  fx.doc = fx.owned_doc;
  expect_failure(6, "too_large", 1.0);
  cr_assert_eq(fx.requests, 6);
  cr_assert_eq(fetches("ok"), 1.0);
}

Test(jwks_fetch, max_age_is_honoured_within_the_clamp) {
  msvc_jwks_stats_t st;

  fx.opts.min_refresh_ms = 100;
  fx.opts.max_refresh_ms = 5000;
  fx.cache_control = "public, max-age=3";
  start();
  run_until_fetched(1);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.next_refresh_ms, 3000);

  fx.cache_control = "max-age=86400, must-revalidate";
  cr_assert_eq(msvc_jwks_fetcher_refresh(fx.f), MSVC_OK);
  run_until_fetched(2);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.next_refresh_ms, 5000, "clamped to the maximum");

  /* max-age=0 clamps to the minimum: the background refresh comes soon. */
  fx.cache_control = "s-maxage=9, max-age=0";
  cr_assert_eq(msvc_jwks_fetcher_refresh(fx.f), MSVC_OK);
  run_until_fetched(3);
  msvc_jwks_fetcher_stats(fx.f, &st);
  cr_assert_eq(st.next_refresh_ms, 100, "clamped to the minimum");
  fx.doc = "{\"keys\":[" JWK("k2", K2) "]}";
  run_until_fetched(4);
  cr_assert_eq(fx.requests, 4, "refreshed in the background");
  cr_assert_eq(fx.last_err, MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_count(fx.ks), 1);
}

Test(jwks_fetch, close_before_the_fetch_completes) {
  start();
  msvc_jwks_fetcher_close(fx.f, NULL, NULL);
  fx.f = NULL;
  cr_assert_eq(uv_run(&fx.loop, UV_RUN_NOWAIT) >= 0, true);
  cr_assert_eq(fx.fetched, 0);
}

static void on_closed(void *data) {
  ((fixture_t *)data)->closed++;
}

Test(jwks_fetch, close_while_the_answer_is_on_its_way) {
  uint64_t t0;

  fx.close_in_handler = true;
  start();
  t0 = uv_now(&fx.loop);
  while (fx.requests == 0) {
    cr_assert_lt(uv_now(&fx.loop) - t0, 10000);
    uv_run(&fx.loop, UV_RUN_ONCE);
  }
  cr_assert_null(fx.f);
  run_for(50);
  cr_assert_eq(fx.fetched, 0, "no completion after close");
  cr_assert_eq(msvc_jwt_keyset_count(fx.ks), 0);

  /* The close callback runs from the loop, not from the call. */
  start();
  msvc_jwks_fetcher_close(fx.f, on_closed, &fx);
  fx.f = NULL;
  cr_assert_eq(fx.closed, 0);
  run_for(50);
  cr_assert_eq(fx.closed, 1);
}

Test(jwks_fetch, bad_options) {
  msvc_jwks_fetcher_t *f = (msvc_jwks_fetcher_t *)&fx;

  fx.opts.url = "https://";
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &f), MSVC_EURI);
  cr_assert_null(f);
  fx.opts.url = "ftp://127.0.0.1/jwks";
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &f), MSVC_EURI);
  fx.opts.url = fx.url;
  fx.opts.min_refresh_ms = 0;
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &f), MSVC_EINVAL);
  fx.opts.min_refresh_ms = 10;
  fx.opts.keyset = NULL;
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &f), MSVC_EINVAL);
  cr_assert_eq(msvc_jwks_fetcher_new(NULL, NULL, &f), MSVC_EINVAL);
  msvc_jwks_fetcher_close(NULL, NULL, NULL);
}

static void on_server_closed_flag(void *data) {
  ((fixture_t *)data)->closed++;
}

Test(jwks_fetch, middleware_keeps_its_key_set_from_a_url) {
  msvc_mw_jwt_opts_t o;
  msvc_mw_jwt_t *m = NULL;
  char *t1 = sign(JWK("k1", K1));
  uint64_t t0;

  msvc_mw_jwt_opts_init(&o);
  o.jwks_url = fx.url;
  o.registry = fx.reg;
  o.verify.require_exp = false; /* the test tokens carry no exp */
  cr_assert_eq(msvc_mw_jwt_new(fx.srv, &o, &m), MSVC_OK);
  t0 = uv_now(&fx.loop);
  while (msvc_jwt_keyset_count(msvc_mw_jwt_keyset(m)) == 0) {
    cr_assert_lt(uv_now(&fx.loop) - t0, 10000);
    uv_run(&fx.loop, UV_RUN_ONCE);
  }
  cr_assert_eq(msvc_jwt_verify(msvc_mw_jwt_verifier(m), t1, strlen(t1), NULL), MSVC_OK);
  cr_assert_eq(fetches("ok"), 1.0);
  msvc_http_server_close(fx.srv, on_server_closed_flag, &fx);
  fx.srv = NULL;
  while (fx.closed == 0)
    uv_run(&fx.loop, UV_RUN_ONCE);
  msvc_mw_jwt_free(m);
  msvc_free(t1);
}

/* ---- https -------------------------------------------------------------------- */

/* A second server on the test's loop serving the same document over TLS
 * with the given certificate; returns its port. */
static msvc_http_server_t *tls_server(const char *crt, const char *key, int *port) {
  msvc_http_server_t *srv;
  msvc_tls_config_t *cfg = server_cfg(crt, key, MSVC_TLS_AUTH_NONE, NULL);

  cr_assert_eq(msvc_http_server_new(&fx.loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/jwks", on_jwks, &fx, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_set_tls(srv, cfg), MSVC_OK);
  msvc_tls_config_free(cfg);
  cr_assert_eq(msvc_http_server_listen(srv, "127.0.0.1", 0), MSVC_OK);
  *port = msvc_http_server_port(srv);
  return srv;
}

/* One fetch of url with the given client configuration into a fresh key
 * set; returns the fetch's outcome and how many keys it left. */
static int https_fetch(const char *url, msvc_tls_config_t *tls, size_t *keys) {
  msvc_jwt_keyset_t *ks;
  int before = fx.fetched;

  cr_assert_eq(msvc_jwt_keyset_new(&ks), MSVC_OK);
  fx.opts.url = url;
  fx.opts.keyset = ks;
  fx.opts.tls = tls;
  cr_assert_eq(msvc_jwks_fetcher_new(&fx.loop, &fx.opts, &fx.f), MSVC_OK);
  run_until_fetched(before + 1);
  msvc_jwks_fetcher_close(fx.f, NULL, NULL);
  fx.f = NULL;
  *keys = msvc_jwt_keyset_count(ks);
  msvc_jwt_keyset_free(ks);
  return fx.last_err;
}

Test(jwks_fetch, https_verifies_the_server_certificate) {
  msvc_http_server_t *good, *wrong;
  msvc_tls_config_t *trust = client_cfg("ca.crt", NULL, NULL, NULL, NULL);
  msvc_tls_config_t *other = client_cfg("other-ca.crt", NULL, NULL, NULL, NULL);
  char url[128], wrong_url[128];
  int port, wport, requests;
  size_t keys;

  good = tls_server("server.crt", "server.key", &port);
  wrong = tls_server("wrong.crt", "wrong.key", &wport);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/jwks", port);
  snprintf(wrong_url, sizeof(wrong_url), "https://127.0.0.1:%d/jwks", wport);

  /* Trusted CA, certificate for 127.0.0.1: the keys come in. */
  cr_assert_eq(https_fetch(url, trust, &keys), MSVC_OK, "%s", msvc_strerror(fx.last_err));
  cr_assert_eq(keys, 1);
  cr_assert_eq(fx.requests, 1);
  requests = fx.requests;
  /* Another CA, the system bundle (the default), or a certificate for
   * another name: no handshake, no request, no keys. */
  cr_assert_neq(https_fetch(url, other, &keys), MSVC_OK);
  cr_assert_eq(keys, 0);
  cr_assert_neq(https_fetch(url, NULL, &keys), MSVC_OK);
  cr_assert_eq(keys, 0);
  cr_assert_neq(https_fetch(wrong_url, trust, &keys), MSVC_OK);
  cr_assert_eq(keys, 0);
  cr_assert_eq(fx.requests, requests, "a request reached an unverified server");
  cr_assert_eq(fetches("network"), 3.0);
  msvc_tls_config_free(trust);
  msvc_tls_config_free(other);
  msvc_http_server_close(good, NULL, NULL);
  msvc_http_server_close(wrong, NULL, NULL);
}

static int never_get(void *data, const char *url, uint32_t timeout_ms, msvc_jwks_got_fn done,
                     void *arg, void **handle) {
  (void)data, (void)timeout_ms, (void)done, (void)arg, (void)handle;
  cr_assert_fail("an https URL went through the fetch hook: %s", url);
  return MSVC_EINVAL;
}

static void never_cancel(void *handle) {
  (void)handle;
}

Test(jwks_fetch, middleware_fetches_an_https_url) {
  msvc_mw_jwt_opts_t o;
  msvc_mw_jwt_t *m = NULL;
  msvc_http_server_t *srv;
  msvc_tls_config_t *trust = client_cfg("ca.crt", NULL, NULL, NULL, NULL);
  char url[128], *t1 = sign(JWK("k1", K1));
  uint64_t t0;
  int port;

  srv = tls_server("server.crt", "server.key", &port);
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/jwks", port);
  msvc_mw_jwt_opts_init(&o);
  o.jwks_url = url;
  o.jwks_tls = trust;
  /* The hook resolves service names in http:// URLs; https:// is fetched
   * directly, its certificate checked against its own host. */
  o.jwks_get = never_get;
  o.jwks_get_cancel = never_cancel;
  o.registry = fx.reg;
  o.verify.require_exp = false;
  cr_assert_eq(msvc_mw_jwt_new(fx.srv, &o, &m), MSVC_OK);
  msvc_tls_config_free(trust); /* the fetcher holds its own reference */
  t0 = uv_now(&fx.loop);
  while (msvc_jwt_keyset_count(msvc_mw_jwt_keyset(m)) == 0) {
    cr_assert_lt(uv_now(&fx.loop) - t0, 10000);
    uv_run(&fx.loop, UV_RUN_ONCE);
  }
  cr_assert_eq(msvc_jwt_verify(msvc_mw_jwt_verifier(m), t1, strlen(t1), NULL), MSVC_OK);
  msvc_http_server_close(srv, NULL, NULL);
  msvc_http_server_close(fx.srv, on_server_closed_flag, &fx);
  fx.srv = NULL;
  while (fx.closed == 0)
    uv_run(&fx.loop, UV_RUN_ONCE);
  msvc_mw_jwt_free(m);
  msvc_free(t1);
}
