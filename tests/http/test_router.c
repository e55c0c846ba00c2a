/* The router alone: pattern syntax, precedence, parameters, 404 and 405. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/server.h"

static void h(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)res;
  (void)data;
}

static msvc__router_t r;

static void setup(void) {
  memset(&r, 0, sizeof(r));
  cr_assert_eq(msvc__router_add(&r, "GET", "/", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "GET", "/users/:id", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "GET", "/users/me", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "GET", "/users/:id/orders/:oid", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "POST", "/users", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "*", "/api/*", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&r, "GET", "/api/health", h, NULL, NULL), MSVC_OK);
}

static void teardown(void) {
  msvc__router_free(&r);
}

TestSuite(http_router, .init = setup, .fini = teardown);

static const char *match(const char *method, const char *path, msvc__match_t *m) {
  int st = msvc__router_match(&r, method, path, strlen(path), m, NULL);
  return st == 200 ? m->route->pattern : st == 404 ? "404" : "405";
}

Test(http_router, precedence_and_params) {
  msvc__match_t m;

  cr_assert_str_eq(match("GET", "/", &m), "/");
  cr_assert_str_eq(match("GET", "/users/me", &m), "/users/me");
  cr_assert_str_eq(match("GET", "/users/7", &m), "/users/:id");
  cr_assert_eq(m.nparams, 1);
  cr_assert_eq(m.params[0].off, 7);
  cr_assert_eq(m.params[0].len, 1);
  cr_assert_str_eq(match("GET", "/users/7/orders/9", &m), "/users/:id/orders/:oid");
  cr_assert_eq(m.nparams, 2);
  cr_assert_str_eq(match("HEAD", "/users/7", &m), "/users/:id");
  cr_assert_str_eq(match("GET", "/api/health", &m), "/api/health");
  cr_assert_str_eq(match("DELETE", "/api/health", &m), "/api/*");
  cr_assert_str_eq(match("GET", "/api", &m), "/api/*");
  cr_assert_str_eq(match("GET", "/api/a/b", &m), "/api/*");
  cr_assert_eq(m.params[0].len, 3);
}

Test(http_router, not_found_and_allow) {
  msvc__match_t m;
  msvc__buf_t allow;

  cr_assert_str_eq(match("GET", "/users", &m), "405");
  cr_assert_str_eq(match("GET", "/users/", &m), "404");
  cr_assert_str_eq(match("GET", "/users/7/", &m), "404");
  cr_assert_str_eq(match("GET", "/nope", &m), "404");
  cr_assert_str_eq(match("GET", "", &m), "404");
  msvc__buf_init(&allow, 0);
  cr_assert_eq(msvc__router_match(&r, "PUT", "/users/7", 8, &m, &allow), 405);
  cr_assert_str_eq(allow.data, "GET, HEAD");
  msvc__buf_free(&allow);
}

Test(http_router, bad_patterns) {
  cr_assert_eq(msvc__router_add(&r, "GET", "/users/:id", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "users", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/a/*/b", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/a/:", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/a/b*c", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/a?x", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "get", "/x", h, NULL, NULL), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i", h, NULL, NULL),
               MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc__router_add(&r, "GET", "/x", NULL, NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc__router_add(&r, NULL, "/x", h, NULL, NULL), MSVC_EINVAL);
}
