/*
 * The cache in front of a real upstream, over sockets: a gateway server
 * proxies GET requests through msvc_service_proxy()'s cache path to an
 * upstream started here. Fresh answers come from the cache, private ones
 * per user, a POST drops what it changed, expired ones are revalidated
 * with a 304; with the upstream
 * gone the last good answer is served stale within stale-if-error, and
 * beyond it the gateway answers 503.
 */
#include <unistd.h>

#include "service/call_helpers.h"

TestSuite(cache_proxy, .timeout = 60);

static harness_t *gw_h;
static msvc_cache_t *gw_cache;
static int up_hits, up_304;

/* The upstream: private, fresh for a second, stale-if-error two more. */
static void up_doc(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *inm = msvc_http_req_header(req, "If-None-Match");
  char body[32];
  int n;

  (void)data;
  up_hits++;
  msvc_http_res_header(res, "Cache-Control", "private, max-age=1, stale-if-error=2");
  msvc_http_res_header(res, "ETag", "\"v1\"");
  if (inm != NULL && strcmp(inm, "\"v1\"") == 0) {
    up_304++;
    msvc_http_res_send(res, 304, NULL, NULL, 0);
    return;
  }
  n = snprintf(body, sizeof(body), "n=%d", up_hits);
  msvc_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static void up_post(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 204, NULL, NULL, 0);
}

static void api(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  msvc_service_proxy_opts_t po;

  (void)res;
  (void)data;
  msvc_service_proxy_opts_init(&po);
  po.service = gw_h->svc;
  po.strip_prefix = "/api";
  po.cache = gw_cache;
  cr_assert_eq(msvc__caller_proxy(gw_h->caller, req, &po), MSVC_OK);
}

typedef struct got_s {
  int calls, err, status;
  char xcache[16], warning[64], age[16], body[64];
} got_t;

static void copy_h(const msvc_http_response_t *res, const char *name, char *out, size_t cap) {
  const char *v = msvc_http_response_header(res, name);
  snprintf(out, cap, "%s", v != NULL ? v : "-");
}

static void got_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                     void *data) {
  got_t *g = data;
  const char *b;
  size_t len = 0;

  (void)call;
  g->calls++;
  g->err = err;
  if (res == NULL)
    return;
  g->status = msvc_http_response_status(res);
  copy_h(res, "X-Cache", g->xcache, sizeof(g->xcache));
  copy_h(res, "Warning", g->warning, sizeof(g->warning));
  copy_h(res, "Age", g->age, sizeof(g->age));
  b = msvc_http_response_body(res, &len);
  snprintf(g->body, sizeof(g->body), "%.*s", (int)len, b != NULL ? b : "");
}

static bool got_finished(void *arg) { return ((got_t *)arg)->calls > 0; }

static void fetch_m(harness_t *h, msvc_http_client_t *cl, int port, const char *method,
                    const char *auth, got_t *g) {
  msvc_http_header_t hd = {"Authorization", auth};
  msvc_http_request_t r;

  memset(g, 0, sizeof(*g));
  msvc_http_request_init(&r);
  r.method = method;
  r.host = "127.0.0.1";
  r.port = port;
  r.target = "/api/doc";
  r.headers = &hd;
  r.nheaders = 1;
  r.timeouts.total_ms = 4000;
  r.on_done = got_done;
  r.data = g;
  cr_assert_eq(msvc_http_client_request(cl, &r, NULL), MSVC_OK);
  cr_assert(h_run_until(h, got_finished, g, 6000));
  cr_assert_eq(g->err, MSVC_OK, "%s", msvc_err_name(g->err));
}

static void fetch(harness_t *h, msvc_http_client_t *cl, int port, const char *auth, got_t *g) {
  fetch_m(h, cl, port, "GET", auth, g);
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

Test(cache_proxy, hit_private_revalidate_stale_then_503) {
  harness_t h;
  msvc_http_server_t *gw, *up;
  msvc_http_client_t *cl;
  msvc_cache_opts_t co;
  msvc_cache_stats_t st;
  h_lease_t lease;
  got_t g;
  int port;

  h_init(&h, "cache-up", MSVC_LB_ROUND_ROBIN, 60000);
  gw_h = &h;
  msvc_cache_opts_init(&co);
  co.name = "test";
  co.registry = h.metrics;
  cr_assert_eq(msvc_cache_new(&co, &gw_cache), MSVC_OK);
  cr_assert_eq(msvc_http_server_new(&h.loop, NULL, &up), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(up, "GET", "/doc", up_doc, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(up, "POST", "/doc", up_post, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(up, "127.0.0.1", 0), MSVC_OK);
  h_register_port(&h, msvc_http_server_port(up), &lease);
  cr_assert_eq(msvc_http_server_new(&h.loop, NULL, &gw), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(gw, "*", "/api/*", api, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_listen(gw, "127.0.0.1", 0), MSVC_OK);
  port = msvc_http_server_port(gw);
  cr_assert_eq(msvc_http_client_new(&h.loop, NULL, &cl), MSVC_OK);

  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(g.xcache, "MISS");
  cr_assert_str_eq(g.body, "n=1");
  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_str_eq(g.xcache, "HIT");
  cr_assert_str_eq(g.body, "n=1");
  cr_assert_eq(up_hits, 1, "a fresh answer came from the cache");
  /* a successful POST to the URI drops Alice's copy */
  fetch_m(&h, cl, port, "POST", "Bearer alice", &g);
  cr_assert_eq(g.status, 204);
  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_str_eq(g.xcache, "MISS");
  cr_assert_str_eq(g.body, "n=2");
  up_hits = 1; /* the story below counts from one fetch */
  /* Bob never sees Alice's private answer */
  fetch(&h, cl, port, "Bearer bob", &g);
  cr_assert_str_eq(g.xcache, "MISS");
  cr_assert_str_eq(g.body, "n=2");

  /* expired: revalidated with If-None-Match, the body kept */
  h_run_until(&h, never, NULL, 1100);
  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_str_eq(g.xcache, "REVALIDATED");
  cr_assert_str_eq(g.body, "n=2");
  cr_assert_eq(up_304, 1);

  /* the upstream goes away: stale within stale-if-error */
  msvc_http_server_close(up, NULL, NULL);
  h_run_until(&h, never, NULL, 1200);
  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_eq(g.status, 200);
  cr_assert_str_eq(g.xcache, "STALE");
  cr_assert_str_eq(g.body, "n=2");
  cr_assert_str_eq(g.warning, "110 - \"Response is Stale\"");
  cr_assert_str_eq(g.age, "1");
  /* beyond it: the upstream's failure */
  h_run_until(&h, never, NULL, 2000);
  fetch(&h, cl, port, "Bearer alice", &g);
  cr_assert_eq(g.status, 503);
  cr_assert_str_eq(g.xcache, "-");

  cr_assert_eq(msvc_cache_stats(gw_cache, &st), MSVC_OK);
  cr_assert_eq(st.hits, 1);
  cr_assert_eq(st.misses, 4); /* after the POST, and the 503 too */
  cr_assert_eq(st.revalidated, 1);
  cr_assert_eq(st.stale, 1);
  msvc_http_client_close(cl, NULL, NULL);
  msvc_http_server_close(gw, NULL, NULL);
  h_close(&h);
  msvc_cache_free(gw_cache);
}
