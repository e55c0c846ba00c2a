/* The JWT authentication middleware on a live server: Bearer parsing, the
 * RFC 6750 challenge, the JSON error body, the attacks the verifier stops,
 * claims for handlers, msvc_jwt_verifications_total, the verified-token
 * cache and configuration from the environment. */
#include <cjson/cJSON.h>
#include <msvc/work.h>

#include "helpers.h"

#define FIXTURES LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/"
#define NOW 1700000000ULL
#define ISS "https://issuer.test"
#define AUD "svc"

/* Every label of the one list, in the order of msvc_jwt_result_t. */
static const char *const labels[] = {
#define TEST_LABEL_(name, label, meaning) label,
    MSVC_JWT_RESULT_MAP(TEST_LABEL_)
#undef TEST_LABEL_
};
#define N_LABELS (sizeof(labels) / sizeof(labels[0]))

typedef struct fixture_s {
  msvc_metrics_registry_t *reg;
  msvc_mw_jwt_t *jwt;
  msvc_mw_jwt_opts_t opts;
  uint64_t now;
  atomic_int handled;
} fixture_t;

static uint64_t fixed_clock(void *data) {
  return *(uint64_t *)data * 1000;
}

static char *read_file(const char *name, size_t *len) {
  char path[512];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s%s", FIXTURES, name);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "missing fixture %s", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (len != NULL)
    *len = (size_t)n;
  return buf;
}

static msvc_jwt_key_t *pem_key(const char *name, const char *kid) {
  msvc_jwt_key_t *key = NULL;
  size_t len;
  char *pem = read_file(name, &len);

  cr_assert_eq(msvc_jwt_key_from_pem(pem, len, 0, kid, &key), MSVC_OK, "%s: %s", name,
               msvc_jwt_errmsg());
  free(pem);
  return key;
}

static char *b64url(const char *s) {
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = strlen(s), i, o = 0;
  const unsigned char *p = (const unsigned char *)s;
  char *out = malloc(n * 4 / 3 + 4);

  for (i = 0; i + 2 < n; i += 3) {
    out[o++] = a[p[i] >> 2];
    out[o++] = a[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
    out[o++] = a[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
    out[o++] = a[p[i + 2] & 63];
  }
  if (n - i == 1) {
    out[o++] = a[p[i] >> 2];
    out[o++] = a[(p[i] & 3) << 4];
  } else if (n - i == 2) {
    out[o++] = a[p[i] >> 2];
    out[o++] = a[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
    out[o++] = a[(p[i + 1] & 15) << 2];
  }
  out[o] = '\0';
  return out;
}

/* Claims relative to NOW; exp_d and nbf_d are offsets in seconds. */
static char *claims(const char *iss, const char *aud, const char *sub, long nbf_d,
                    long exp_d, const char *jti) {
  char *s = malloc(512);

  snprintf(s, 512,
           "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"%s\",\"iat\":%llu,\"nbf\":%lld,"
           "\"exp\":%lld,\"jti\":\"%s\"}",
           iss, aud, sub, NOW - 10, (long long)NOW + nbf_d, (long long)NOW + exp_d, jti);
  return s;
}

static char *sign_with(const char *pem, const char *kid, msvc_jwt_alg_t alg,
                       const char *payload) {
  msvc_jwt_key_t *k = pem_key(pem, kid);
  char *tok = NULL;

  cr_assert_eq(msvc_jwt_sign(k, alg, payload, &tok), MSVC_OK, "%s", msvc_jwt_errmsg());
  msvc_jwt_key_free(k);
  return tok;
}

static char *es256(const char *payload) {
  return sign_with("ec256-private.pem", "ec-1", MSVC_JWT_ES256, payload);
}

/* ---- the server ---------------------------------------------------------- */

static void on_me(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fixture_t *f = data;
  const msvc_jwt_claims_t *c = msvc_mw_jwt_claims(req);
  const char *sub = msvc_mw_jwt_subject(req);
  char body[256];

  atomic_fetch_add(&f->handled, 1);
  if (c == NULL || sub == NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "no claims");
    return;
  }
  snprintf(body, sizeof(body), "sub=%s iss=%s", sub,
           msvc_jwt_claims_string(c, "iss") != NULL ? msvc_jwt_claims_string(c, "iss")
                                                    : "-");
  msvc_http_res_send(res, 200, "text/plain", body, strlen(body));
}

static void on_open(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  fixture_t *f = data;

  atomic_fetch_add(&f->handled, 1);
  if (msvc_mw_jwt_claims(req) != NULL || msvc_mw_jwt_subject(req) != NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "claims on an open route");
    return;
  }
  msvc_http_res_send(res, 200, "text/plain", "open", 4);
}

static void setup_jwt(msvc_http_server_t *srv, void *data) {
  fixture_t *f = data;
  static const msvc_http_route_opts_t auth = {sizeof(auth), MSVC_HTTP_ROUTE_AUTH, NULL};

  cr_assert_eq(msvc_mw_jwt_new(srv, &f->opts, &f->jwt), MSVC_OK, "%s", msvc_jwt_errmsg());
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/me", on_me, f, &auth), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/open", on_open, f, NULL), MSVC_OK);
}

/* Options with the checks every test uses; the keys are added after. */
static void fixture_opts(fixture_t *f) {
  memset(f, 0, sizeof(*f));
  cr_assert_eq(msvc_metrics_registry_new(NULL, &f->reg), MSVC_OK);
  f->now = NOW;
  msvc_mw_jwt_opts_init(&f->opts);
  f->opts.registry = f->reg;
  f->opts.verify.clock = fixed_clock;
  f->opts.verify.clock_data = &f->now;
}

static void add_keys(fixture_t *f) {
  msvc_jwt_keyset_t *ks = msvc_mw_jwt_keyset(f->jwt);
  msvc_jwt_key_t *ec = pem_key("ec256-public.pem", "ec-1");
  msvc_jwt_key_t *rsa = pem_key("rsa-public.pem", "rsa-1");

  cr_assert_not_null(ks);
  cr_assert_eq(msvc_jwt_keyset_add(ks, ec), MSVC_OK);
  cr_assert_eq(msvc_jwt_keyset_add(ks, rsa), MSVC_OK);
  msvc_jwt_key_free(ec);
  msvc_jwt_key_free(rsa);
}

static void fixture_stop(fixture_t *f, srvthread_t *t) {
  st_stop(t);
  msvc_mw_jwt_free(f->jwt);
  msvc_metrics_registry_free(f->reg);
}

static double count_of(msvc_metrics_registry_t *reg, const char *label) {
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *c;

  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_jwt_verifications_total";
  fo.label_names = (const char *const[]){"result"};
  fo.label_count = 1;
  cr_assert_eq(msvc_metrics_family_new(reg, MSVC_METRICS_COUNTER, &fo, &fam), MSVC_OK);
  cr_assert_eq(msvc_metrics_counter_get(fam, &label, 1, &c), MSVC_OK);
  return msvc_metrics_counter_value(c);
}

static int get_me(int port, const char *auth_lines, resp_t *r) {
  return cl_get(port, "/me", auth_lines, r);
}

static int bearer(int port, const char *token, resp_t *r) {
  char *h = malloc(strlen(token) + 64);
  int st;

  sprintf(h, "Authorization: Bearer %s\r\n", token);
  st = get_me(port, h, r);
  free(h);
  return st;
}

#define BODY_PREFIX "{\"error\":{\"code\":\"UNAUTHENTICATED\",\"message\":\""

/* A 401 with the JSON error body and exactly the expected challenge. */
static void expect_401(resp_t *r, const char *challenge) {
  char v[1024];

  cr_assert_eq(r->status, 401, "status %d body %s", r->status, r->body);
  cr_assert_not_null(resp_header(r, "WWW-Authenticate", v, sizeof(v)), "%s", r->head);
  cr_assert_str_eq(v, challenge);
  cr_assert_not_null(resp_header(r, "Content-Type", v, sizeof(v)));
  cr_assert_str_eq(v, "application/json");
  cr_assert_eq(strncmp(r->body, BODY_PREFIX, strlen(BODY_PREFIX)), 0, "%s", r->body);
  cr_assert_eq(strcmp(r->body + r->body_len - 4, "\"}}\n") == 0 ||
                   strcmp(r->body + r->body_len - 3, "\"}}") == 0,
               1, "%s", r->body);
}

static void expect_invalid(resp_t *r, const char *description) {
  char want[512];

  snprintf(want, sizeof(want),
           "Bearer error=\"invalid_token\", error_description=\"%s\"", description);
  expect_401(r, want);
}

/* ---- tests ---------------------------------------------------------------- */

Test(mw_jwt, refusals_and_counts) {
  fixture_t f;
  srvthread_t t;
  resp_t r;
  double before[N_LABELS], want[N_LABELS] = {0};
  char *tok, *p, *p2, *hdr, *pay;
  size_t i;
  const char *auds[] = {AUD};

  fixture_opts(&f);
  f.opts.verify.issuer = ISS;
  f.opts.verify.audiences = auds;
  f.opts.verify.n_audiences = 1;
  st_start(&t, setup_jwt, &f);
  add_keys(&f);
  for (i = 0; i < N_LABELS; i++)
    before[i] = count_of(f.reg, labels[i]);

  /* No header: the bare challenge, no error code (RFC 6750 §3.1);
   * counted as missing. */
  get_me(t.port, "", &r);
  expect_401(&r, "Bearer");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MISSING]++;
  /* Another scheme is no Bearer credentials either. */
  get_me(t.port, "Authorization: Basic dXNlcjpwYXNz\r\n", &r);
  expect_401(&r, "Bearer");
  resp_free(&r);
  get_me(t.port, "Authorization: Bearerx abc\r\n", &r);
  expect_401(&r, "Bearer");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MISSING] += 2;

  /* A token that never expires: refused by default. */
  tok = es256("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"u1\"}");
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token has no expiry time (exp).");
  resp_free(&r);
  msvc_free(tok);
  want[MSVC_JWT_RESULT_MISSING_EXP]++;

  /* Bearer with no token, two tokens, two headers: malformed. */
  get_me(t.port, "Authorization: Bearer\r\n", &r);
  expect_invalid(&r, "expected Bearer followed by one token");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MALFORMED]++;
  get_me(t.port, "Authorization: Bearer aaa.bbb.ccc ddd.eee.fff\r\n", &r);
  expect_invalid(&r, "expected Bearer followed by one token");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MALFORMED]++;
  get_me(t.port, "Authorization: Bearer  aaa.bbb.ccc\r\n", &r);
  expect_invalid(&r, "expected Bearer followed by one token");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MALFORMED]++;
  get_me(t.port, "Authorization: Bearer a.b.c\r\nAuthorization: Bearer d.e.f\r\n", &r);
  expect_invalid(&r, "more than one Authorization header");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MALFORMED]++;
  /* Garbage token: verified, malformed. */
  bearer(t.port, "not-a-token", &r);
  expect_invalid(&r, "The token is malformed.");
  resp_free(&r);
  want[MSVC_JWT_RESULT_MALFORMED]++;

  /* Expired (beyond the 30 s leeway) and not yet valid. */
  p = claims(ISS, AUD, "u1", -100, -60, "e");
  tok = es256(p);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token has expired.");
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_EXPIRED]++;
  p = claims(ISS, AUD, "u1", 120, 600, "n");
  tok = es256(p);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token is not valid yet.");
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_NOT_YET_VALID]++;

  /* Wrong issuer, wrong audience. */
  p = claims("https://evil.test", AUD, "u1", -10, 600, "i");
  tok = es256(p);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token issuer is not accepted.");
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_BAD_ISSUER]++;
  p = claims(ISS, "other", "u1", -10, 600, "a");
  tok = es256(p);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token audience is not accepted.");
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_BAD_AUDIENCE]++;

  /* Forged "alg":"none" with an empty signature. */
  hdr = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
  p = claims(ISS, AUD, "admin", -10, 600, "x");
  pay = b64url(p);
  tok = malloc(strlen(hdr) + strlen(pay) + 3);
  sprintf(tok, "%s.%s.", hdr, pay);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token algorithm is not allowed.");
  resp_free(&r);
  free(tok);
  free(hdr);
  free(pay);
  free(p);
  want[MSVC_JWT_RESULT_ALG_NOT_ALLOWED]++;

  /* Algorithm confusion: HS256 keyed with the RSA public key's PEM text,
   * naming the RSA key's kid. */
  {
    size_t len;
    char *pem = read_file("rsa-public.pem", &len);
    msvc_jwt_key_t *hk = NULL;

    cr_assert_eq(msvc_jwt_key_from_secret(pem, len, MSVC_JWT_HS256, "rsa-1", &hk),
                 MSVC_OK);
    p = claims(ISS, AUD, "admin", -10, 600, "c");
    cr_assert_eq(msvc_jwt_sign(hk, MSVC_JWT_HS256, p, &tok), MSVC_OK);
    bearer(t.port, tok, &r);
    expect_invalid(&r, "The token algorithm is not allowed.");
    resp_free(&r);
    msvc_free(tok);
    free(p);
    msvc_jwt_key_free(hk);
    free(pem);
    want[MSVC_JWT_RESULT_ALG_NOT_ALLOWED]++;
  }
  /* The same with the EC public key. */
  {
    size_t len;
    char *pem = read_file("ec256-public.pem", &len);
    msvc_jwt_key_t *hk = NULL;

    cr_assert_eq(msvc_jwt_key_from_secret(pem, len, MSVC_JWT_HS256, "ec-1", &hk),
                 MSVC_OK);
    p = claims(ISS, AUD, "admin", -10, 600, "c2");
    cr_assert_eq(msvc_jwt_sign(hk, MSVC_JWT_HS256, p, &tok), MSVC_OK);
    bearer(t.port, tok, &r);
    expect_invalid(&r, "The token algorithm is not allowed.");
    resp_free(&r);
    msvc_free(tok);
    free(p);
    msvc_jwt_key_free(hk);
    free(pem);
    want[MSVC_JWT_RESULT_ALG_NOT_ALLOWED]++;
  }

  /* Tampered payload: a valid signature over other claims. */
  p = claims(ISS, AUD, "u1", -10, 600, "t");
  tok = es256(p);
  p2 = claims(ISS, AUD, "admin", -10, 600, "t");
  pay = b64url(p2);
  {
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    char *forged = malloc(strlen(tok) + strlen(pay) + 1);

    sprintf(forged, "%.*s.%s%s", (int)(dot1 - tok), tok, pay, dot2);
    /* The second time from the refused-token cache: same answer, counted
     * the same. */
    for (int k = 0; k < 2; k++) {
      bearer(t.port, forged, &r);
      expect_invalid(&r, "The token signature is not valid.");
      resp_free(&r);
    }
    free(forged);
  }
  free(pay);
  free(p2);
  free(p);
  msvc_free(tok);
  want[MSVC_JWT_RESULT_BAD_SIGNATURE] += 2;

  /* Unknown key id. */
  p = claims(ISS, AUD, "u1", -10, 600, "k");
  tok = sign_with("ec256-private.pem", "ec-9", MSVC_JWT_ES256, p);
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token was signed with an unknown key.");
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_UNKNOWN_KID]++;

  /* Valid ES256 and RS256 tokens; the scheme in any case. */
  p = claims(ISS, AUD, "user-7", -10, 600, "ok");
  tok = es256(p);
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  cr_assert_str_eq(r.body, "sub=user-7 iss=" ISS);
  resp_free(&r);
  hdr = malloc(strlen(tok) + 64);
  sprintf(hdr, "Authorization: bEaReR %s\r\n", tok);
  cr_assert_eq(get_me(t.port, hdr, &r), 200, "%s", r.body);
  resp_free(&r);
  free(hdr);
  msvc_free(tok);
  tok = sign_with("rsa-private.pem", "rsa-1", MSVC_JWT_RS256, p);
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  resp_free(&r);
  msvc_free(tok);
  free(p);
  want[MSVC_JWT_RESULT_OK] += 3;

  /* A route without the flag: no check, no claims, nothing counted. */
  cr_assert_eq(cl_get(t.port, "/open", "", &r), 200);
  cr_assert_str_eq(r.body, "open");
  resp_free(&r);
  cr_assert_eq(cl_get(t.port, "/open", "Authorization: Bearer junk\r\n", &r), 200);
  resp_free(&r);
  /* Unmatched requests pass to the router's 404. */
  cr_assert_eq(cl_get(t.port, "/nowhere", "", &r), 404);
  resp_free(&r);

  /* Only the valid requests and the open route reached a handler. */
  cr_assert_eq(atomic_load(&f.handled), 3 + 2);
  for (i = 0; i < N_LABELS; i++)
    cr_assert_eq(count_of(f.reg, labels[i]) - before[i], want[i], "%s: %g, want %g",
                 labels[i], count_of(f.reg, labels[i]) - before[i], want[i]);
  fixture_stop(&f, &t);
}

Test(mw_jwt, cache_hit_on_repeated_token) {
  fixture_t f;
  srvthread_t t;
  resp_t r;
  msvc_jwt_cache_stats_t s0, s1, s2;
  char *p, *tok;

  fixture_opts(&f);
  st_start(&t, setup_jwt, &f);
  add_keys(&f);
  p = claims(ISS, AUD, "cached", -10, 600, "cache");
  tok = es256(p);
  msvc_jwt_verifier_cache_stats(msvc_mw_jwt_verifier(f.jwt), &s0);
  cr_assert_eq(bearer(t.port, tok, &r), 200);
  resp_free(&r);
  msvc_jwt_verifier_cache_stats(msvc_mw_jwt_verifier(f.jwt), &s1);
  cr_assert_eq(s1.misses, s0.misses + 1);
  cr_assert_eq(s1.hits, s0.hits);
  cr_assert_eq(bearer(t.port, tok, &r), 200);
  cr_assert_str_eq(r.body, "sub=cached iss=" ISS);
  resp_free(&r);
  msvc_jwt_verifier_cache_stats(msvc_mw_jwt_verifier(f.jwt), &s2);
  cr_assert_eq(s2.hits, s1.hits + 1);
  cr_assert_eq(s2.misses, s1.misses);
  cr_assert_eq(s2.entries, 1);
  /* A hit is still checked against the clock. */
  f.now = NOW + 3600;
  bearer(t.port, tok, &r);
  expect_invalid(&r, "The token has expired.");
  resp_free(&r);
  cr_assert_eq(count_of(f.reg, "ok"), 2.0);
  cr_assert_eq(count_of(f.reg, "expired"), 1.0);
  msvc_free(tok);
  free(p);
  fixture_stop(&f, &t);
}

Test(mw_jwt, cache_off) {
  fixture_t f;
  srvthread_t t;
  resp_t r;
  msvc_jwt_cache_stats_t s;
  char *p, *tok;

  fixture_opts(&f);
  f.opts.verify.cache_size = 0;
  st_start(&t, setup_jwt, &f);
  add_keys(&f);
  p = claims(ISS, AUD, "u", -10, 600, "nc");
  tok = es256(p);
  cr_assert_eq(bearer(t.port, tok, &r), 200);
  resp_free(&r);
  cr_assert_eq(bearer(t.port, tok, &r), 200);
  resp_free(&r);
  msvc_jwt_verifier_cache_stats(msvc_mw_jwt_verifier(f.jwt), &s);
  cr_assert_eq(s.hits, 0);
  cr_assert_eq(s.entries, 0);
  msvc_free(tok);
  free(p);
  fixture_stop(&f, &t);
}

/* ---- public-key checks on a worker pool --------------------------------------- */

typedef struct pool_fixture_s {
  fixture_t f;
  msvc_work_t *pool;
  uv_async_t close_pool;
  atomic_int release; /* lets the blocking jobs of /block return */
  unsigned threads, queue;
} pool_fixture_t;

static msvc_work_t *pool_of(const msvc_http_req_t *req, void *arg) {
  (void)req;
  return ((pool_fixture_t *)arg)->pool;
}

static void block_work(void *data) {
  pool_fixture_t *pf = data;

  while (!atomic_load(&pf->release))
    uv_sleep(1);
}

/* Occupies the pool with a job that waits for the test to let it go. */
static void on_block(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  pool_fixture_t *pf = data;
  int rc = msvc_work_submit(pf->pool, block_work, NULL, pf, NULL);

  (void)req;
  msvc_http_res_send(res, rc == MSVC_OK ? 200 : 503, "text/plain", "", 0);
}

/* The pool's counters, read on its loop. */
static void on_stats(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  pool_fixture_t *pf = data;
  msvc_work_stats_t st;
  char body[64];

  (void)req;
  cr_assert_eq(msvc_work_stats(pf->pool, &st), MSVC_OK);
  snprintf(body, sizeof(body), "%llu %u", (unsigned long long)st.done, st.running);
  msvc_http_res_send(res, 200, "text/plain", body, strlen(body));
}

static void on_close_pool(uv_async_t *a) {
  pool_fixture_t *pf = a->data;

  msvc_work_close(pf->pool, NULL, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void setup_jwt_pool(msvc_http_server_t *srv, void *data) {
  pool_fixture_t *pf = data;
  msvc_work_opts_t o;

  msvc_work_opts_init(&o);
  o.threads = pf->threads;
  o.queue = pf->queue;
  cr_assert_eq(msvc_work_new(msvc_http_server_loop(srv), &o, &pf->pool), MSVC_OK);
  cr_assert_eq(uv_async_init(msvc_http_server_loop(srv), &pf->close_pool, on_close_pool), 0);
  pf->close_pool.data = pf;
  pf->f.opts.work = pool_of;
  pf->f.opts.work_arg = pf;
  setup_jwt(srv, &pf->f);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/block", on_block, pf, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/stats", on_stats, pf, NULL), MSVC_OK);
}

static int pool_done(int port) {
  resp_t r;
  int n;

  cr_assert_eq(cl_get(port, "/stats", "", &r), 200);
  n = atoi(r.body);
  resp_free(&r);
  return n;
}

static int pool_running(int port) {
  resp_t r;
  const char *sp;
  int n;

  cr_assert_eq(cl_get(port, "/stats", "", &r), 200);
  sp = strchr(r.body, ' ');
  n = sp != NULL ? atoi(sp + 1) : -1;
  resp_free(&r);
  return n;
}

static void pool_fixture_stop(pool_fixture_t *pf, srvthread_t *t) {
  atomic_store(&pf->release, 1);
  uv_async_send(&pf->close_pool);
  fixture_stop(&pf->f, t);
}

/* A server whose JWT checks go to a pool of its own, and a new ES256 token
 * for sub (free it with msvc_free()). */
static char *pool_start(pool_fixture_t *pf, srvthread_t *t, const char *sub) {
  char *p, *tok;

  fixture_opts(&pf->f);
  st_start(t, setup_jwt_pool, pf);
  add_keys(&pf->f);
  p = claims(ISS, AUD, sub, -10, 600, sub);
  tok = es256(p);
  free(p);
  return tok;
}

Test(mw_jwt, public_key_checks_run_on_the_pool) {
  pool_fixture_t pf = {.threads = 1, .queue = 8};
  srvthread_t t;
  resp_t r;
  char *tok, *forged;
  size_t n;

  tok = pool_start(&pf, &t, "pooled");
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  cr_assert_str_eq(r.body, "sub=pooled iss=" ISS, "the claims reach the handler");
  resp_free(&r);
  cr_assert_eq(pool_done(t.port), 1, "a new ES256 token is checked on the pool");
  cr_assert_eq(bearer(t.port, tok, &r), 200);
  resp_free(&r);
  cr_assert_eq(pool_done(t.port), 1, "a cached token is answered on the loop");

  /* A forged signature: refused from the pool, then from the refused-token
   * cache without the pool. */
  forged = strdup(tok);
  n = strlen(forged);
  forged[n - 20] = forged[n - 20] == 'A' ? 'B' : 'A';
  bearer(t.port, forged, &r);
  expect_invalid(&r, "The token signature is not valid.");
  resp_free(&r);
  cr_assert_eq(pool_done(t.port), 2);
  bearer(t.port, forged, &r);
  expect_invalid(&r, "The token signature is not valid.");
  resp_free(&r);
  cr_assert_eq(pool_done(t.port), 2, "a refused token is refused again on the loop");

  /* A token the header already condemns never reaches the pool. */
  cr_assert_eq(bearer(t.port, "bm90LWpzb24.e30.c2ln", &r), 401);
  resp_free(&r);
  cr_assert_eq(pool_done(t.port), 2);
  cr_assert_eq(count_of(pf.f.reg, "ok"), 2.0);
  cr_assert_eq(count_of(pf.f.reg, "bad_signature"), 2.0);
  cr_assert_eq(atomic_load(&pf.f.handled), 2);
  free(forged);
  msvc_free(tok);
  pool_fixture_stop(&pf, &t);
}

Test(mw_jwt, full_pool_answers_overloaded) {
  pool_fixture_t pf = {.threads = 1, .queue = 1};
  srvthread_t t;
  resp_t r;
  char v[64], *tok;

  tok = pool_start(&pf, &t, "busy");
  /* One job runs and one waits: the queue is full. */
  cr_assert_eq(cl_get(t.port, "/block", "", &r), 200);
  resp_free(&r);
  for (int i = 0; i < 5000 && pool_running(t.port) != 1; i++)
    uv_sleep(1);
  cr_assert_eq(pool_running(t.port), 1);
  cr_assert_eq(cl_get(t.port, "/block", "", &r), 200);
  resp_free(&r);
  cr_assert_eq(bearer(t.port, tok, &r), 503, "%s", r.body);
  cr_assert(strstr(r.body, "\"OVERLOADED\"") != NULL, "%s", r.body);
  cr_assert_not_null(resp_header(&r, "Retry-After", v, sizeof(v)), "%s", r.head);
  resp_free(&r);
  cr_assert_eq(atomic_load(&pf.f.handled), 0);
  atomic_store(&pf.release, 1);
  for (int i = 0; i < 5000 && pool_done(t.port) < 2; i++)
    uv_sleep(1);
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  resp_free(&r);
  msvc_free(tok);
  pool_fixture_stop(&pf, &t);
}

Test(mw_jwt, client_gone_during_a_pool_check) {
  pool_fixture_t pf = {.threads = 1, .queue = 4};
  srvthread_t t;
  resp_t r;
  char req[2048], *tok;
  int fd;

  tok = pool_start(&pf, &t, "gone");
  cr_assert_eq(cl_get(t.port, "/block", "", &r), 200);
  resp_free(&r);
  /* The check waits behind the blocking job; its client leaves. */
  fd = cl_connect(t.port);
  snprintf(req, sizeof(req),
           "GET /me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n", tok);
  cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
  uv_sleep(50);
  close(fd);
  uv_sleep(50);
  atomic_store(&pf.release, 1);
  /* The server lets the request go and serves the next one. */
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  resp_free(&r);
  cr_assert_eq(atomic_load(&pf.f.handled), 1, "the gone client's request never ran");
  msvc_free(tok);
  pool_fixture_stop(&pf, &t);
}

/* The committed interoperability fixture: a jose-made RS256 token and its
 * JWK Set, configured through the environment, with a realm. */
static char *fixture_token(const char *name) {
  char *text = read_file("tokens.json", NULL), *out = NULL;
  cJSON *doc = cJSON_Parse(text), *e;

  cr_assert_not_null(doc);
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "fixtures")) {
    if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name) == 0)
      out = strdup(cJSON_GetObjectItem(e, "token")->valuestring);
  }
  cJSON_Delete(doc);
  free(text);
  cr_assert_not_null(out, "no fixture %s", name);
  return out;
}

Test(mw_jwt, fixture_through_environment) {
  fixture_t f;
  srvthread_t t;
  resp_t r;
  char err[256], *tok;

  fixture_opts(&f);
  f.opts.realm = "api \"x\"";
  setenv("MSVC_JWT_JWKS_FILE", FIXTURES "jwks.json", 1);
  setenv("MSVC_JWT_ISSUER", "https://issuer.example", 1);
  setenv("MSVC_JWT_AUDIENCE", "msvc-demo", 1);
  setenv("MSVC_JWT_LEEWAY_S", "30", 1);
  unsetenv("MSVC_JWT_JWKS_URL");
  cr_assert_eq(msvc_mw_jwt_opts_env(&f.opts, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_str_eq(err, "");
  st_start(&t, setup_jwt, &f);
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_ISSUER");
  unsetenv("MSVC_JWT_AUDIENCE");
  unsetenv("MSVC_JWT_LEEWAY_S");
  cr_assert_gt(msvc_jwt_keyset_count(msvc_mw_jwt_keyset(f.jwt)), 0);

  tok = fixture_token("valid_rs256");
  cr_assert_eq(bearer(t.port, tok, &r), 200, "%s", r.body);
  cr_assert_str_eq(r.body, "sub=42 iss=https://issuer.example");
  resp_free(&r);
  free(tok);

  get_me(t.port, "", &r);
  expect_401(&r, "Bearer realm=\"api x\"");
  resp_free(&r);
  bearer(t.port, "x.y.z", &r);
  expect_401(&r, "Bearer realm=\"api x\", error=\"invalid_token\", "
                 "error_description=\"The token is malformed.\"");
  resp_free(&r);
  cr_assert_eq(count_of(f.reg, "ok"), 1.0);
  cr_assert_eq(count_of(f.reg, "malformed"), 1.0);
  fixture_stop(&f, &t);
}

static int env_err(const char *var, const char *value, char *err, size_t len) {
  msvc_mw_jwt_opts_t o;
  int rc;

  msvc_mw_jwt_opts_init(&o);
  setenv(var, value, 1);
  rc = msvc_mw_jwt_opts_env(&o, err, len);
  unsetenv(var);
  cr_assert_null(strchr(err, '\n'));
  return rc;
}

Test(mw_jwt, environment_errors) {
  msvc_mw_jwt_opts_t o;
  char err[512];

  unsetenv("MSVC_JWT_JWKS_URL");
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_ISSUER");
  unsetenv("MSVC_JWT_AUDIENCE");
  unsetenv("MSVC_JWT_LEEWAY_S");

  /* Nothing set: nothing changes. */
  msvc_mw_jwt_opts_init(&o);
  cr_assert_eq(msvc_mw_jwt_opts_env(&o, err, sizeof(err)), MSVC_OK);
  cr_assert_null(o.jwks_file);
  cr_assert_null(o.verify.issuer);
  cr_assert_null(o.audience);
  cr_assert_eq(o.verify.leeway_s, 30);
  cr_assert_eq(o.verify.cache_size, 1024);
  cr_assert_eq(o.route_flags, MSVC_HTTP_ROUTE_AUTH);

  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "http://user-service/.well-known/jwks.json",
                       err, sizeof(err)),
               MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS_URL"));
  cr_assert_not_null(strstr(err, "service names"));
  /* https: an address or a DNS name, fetched directly (the certificate is
   * checked against it); never a bare scheme or a bad name. */
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "https://127.0.0.1/jwks", err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "https://login.example.com:8443/.well-known/jwks.json",
                       err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "https://bad_name/jwks", err, sizeof(err)),
               MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "https://HOST"), "%s", err);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "https:///jwks", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "ftp://127.0.0.1/jwks", err, sizeof(err)),
               MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "http://login.example.com/jwks", err, sizeof(err)),
               MSVC_EINVAL);

  /* require_exp: on by default in the middleware, true/false only. */
  msvc_mw_jwt_opts_init(&o);
  cr_assert(o.verify.require_exp);
  cr_assert_eq(o.verify.neg_cache_size, 1024);
  setenv("MSVC_JWT_REQUIRE_EXP", "false", 1);
  cr_assert_eq(msvc_mw_jwt_opts_env(&o, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert(!o.verify.require_exp);
  setenv("MSVC_JWT_REQUIRE_EXP", "true", 1);
  cr_assert_eq(msvc_mw_jwt_opts_env(&o, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert(o.verify.require_exp);
  unsetenv("MSVC_JWT_REQUIRE_EXP");
  cr_assert_eq(env_err("MSVC_JWT_REQUIRE_EXP", "no", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_REQUIRE_EXP"), "%s", err);
  cr_assert_not_null(strstr(err, "true"), "%s", err);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "http://127.0.0.1:99999/jwks", err,
                       sizeof(err)),
               MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "http://127.0.0.1", err, sizeof(err)),
               MSVC_EINVAL);
  setenv("MSVC_JWT_JWKS_FILE", FIXTURES "jwks.json", 1);
  cr_assert_eq(env_err("MSVC_JWT_JWKS_URL", "http://[::1]:8080/jwks", err, sizeof(err)),
               MSVC_EINVAL);
  unsetenv("MSVC_JWT_JWKS_FILE");
  cr_assert_not_null(strstr(err, "only one"));
  setenv("MSVC_JWT_JWKS_URL", "http://[::1]:8080/.well-known/jwks.json", 1);
  msvc_mw_jwt_opts_init(&o);
  cr_assert_eq(msvc_mw_jwt_opts_env(&o, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_str_eq(o.jwks_url, "http://[::1]:8080/.well-known/jwks.json");
  setenv("MSVC_JWT_JWKS_URL", "http://localhost/jwks", 1);
  cr_assert_eq(msvc_mw_jwt_opts_env(&o, err, sizeof(err)), MSVC_OK, "%s", err);
  unsetenv("MSVC_JWT_JWKS_URL");

  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "abc", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_LEEWAY_S"));
  cr_assert_not_null(strstr(err, "0 to 86400"));
  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "-1", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "86401", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "99999999999999999999", err, sizeof(err)),
               MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_eq(env_err("MSVC_JWT_LEEWAY_S", "120", err, sizeof(err)), MSVC_OK);

  cr_assert_eq(env_err("MSVC_JWT_ISSUER", "", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_ISSUER"));
  cr_assert_eq(env_err("MSVC_JWT_AUDIENCE", "", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_AUDIENCE"));

  cr_assert_eq(env_err("MSVC_JWT_JWKS_FILE", "", err, sizeof(err)), MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS_FILE"));
  cr_assert_eq(env_err("MSVC_JWT_JWKS_FILE", FIXTURES "does-not-exist.json", err,
                       sizeof(err)),
               MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS_FILE"));
  cr_assert_not_null(strstr(err, "does-not-exist.json"));
  /* A file that is not a JWK Set. */
  cr_assert_eq(env_err("MSVC_JWT_JWKS_FILE", FIXTURES "ec256-public.pem", err,
                       sizeof(err)),
               MSVC_EINVAL);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS_FILE"));

  cr_assert_eq(msvc_mw_jwt_opts_env(NULL, err, sizeof(err)), MSVC_EINVAL);
}

Test(mw_jwt, bad_arguments) {
  fixture_t f;
  msvc_mw_jwt_t *m = (msvc_mw_jwt_t *)&f;
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc_mw_jwt_opts_t o;

  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_server_new(&loop, NULL, &srv), MSVC_OK);
  cr_assert_eq(msvc_mw_jwt_new(NULL, NULL, &m), MSVC_EINVAL);
  cr_assert_null(m);
  cr_assert_eq(msvc_mw_jwt_new(srv, NULL, NULL), MSVC_EINVAL);
  memset(&o, 0, sizeof(o));
  cr_assert_eq(msvc_mw_jwt_new(srv, &o, &m), MSVC_EINVAL);
  msvc_mw_jwt_opts_init(&o);
  o.route_flags = 0;
  cr_assert_eq(msvc_mw_jwt_new(srv, &o, &m), MSVC_EINVAL);
  msvc_mw_jwt_opts_init(&o);
  o.jwks_file = FIXTURES "does-not-exist.json";
  cr_assert_neq(msvc_mw_jwt_new(srv, &o, &m), MSVC_OK);
  cr_assert_null(m);
  cr_assert_null(msvc_mw_jwt_keyset(NULL));
  cr_assert_null(msvc_mw_jwt_verifier(NULL));
  cr_assert_null(msvc_mw_jwt_claims(NULL));
  msvc_mw_jwt_free(NULL);
  msvc_http_server_close(srv, NULL, NULL);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
