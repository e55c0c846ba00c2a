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

/* ---- precedence table ------------------------------------------------------
 * Every row is tried with the routes added in the listed order and in the
 * reverse order: the winner must not depend on it. */

typedef struct prec_case_s {
  const char *routes[6]; /* "METHOD /pattern", NULL-terminated */
  const char *method;
  const char *path;
  const char *want; /* pattern of the winner, or "404" / "405" */
} prec_case_t;

static const prec_case_t prec_cases[] = {
    /* An exact route beats a wildcard that also matches its path. */
    {{"GET /admin", "GET /admin/*", NULL}, "GET", "/admin", "/admin"},
    {{"GET /admin", "GET /admin/*", NULL}, "GET", "/admin/x", "/admin/*"},
    {{"GET /admin", "* /admin/*", NULL}, "GET", "/admin", "/admin"},
    {{"GET /admin", "GET /*", NULL}, "GET", "/admin", "/admin"},
    {{"GET /", "GET /*", NULL}, "GET", "/", "/"},
    /* Literal > parameter > wildcard, at every segment. */
    {{"GET /users/me", "GET /users/:id", "GET /users/*", NULL}, "GET", "/users/me", "/users/me"},
    {{"GET /users/me", "GET /users/:id", "GET /users/*", NULL}, "GET", "/users/7", "/users/:id"},
    {{"GET /users/me", "GET /users/:id", "GET /users/*", NULL}, "GET", "/users/7/x", "/users/*"},
    {{"GET /:a/b", "GET /a/:b", NULL}, "GET", "/a/b", "/a/:b"},
    {{"GET /:a/b/c", "GET /a/:b/*", NULL}, "GET", "/a/b/c", "/a/:b/*"},
    {{"GET /a/:b/c", "GET /a/b/:c", NULL}, "GET", "/a/b/c", "/a/b/:c"},
    {{"GET /a/:id", "GET /a/:id/*", NULL}, "GET", "/a/1", "/a/:id"},
    /* Longest literal prefix among wildcards. */
    {{"GET /*", "GET /api/*", "GET /api/v1/*", NULL}, "GET", "/api/v1/x", "/api/v1/*"},
    {{"GET /*", "GET /api/*", "GET /api/v1/*", NULL}, "GET", "/api/v2/x", "/api/*"},
    {{"GET /*", "GET /api/*", "GET /api/v1/*", NULL}, "GET", "/other", "/*"},
    {{"GET /api/*", "GET /api/v1/*", NULL}, "GET", "/api/v1", "/api/v1/*"},
    /* Trailing slash: significant for exact and parameter routes; a
     * wildcard takes its prefix with or without it. */
    {{"GET /admin", NULL}, "GET", "/admin/", "404"},
    {{"GET /admin/", NULL}, "GET", "/admin", "404"},
    {{"GET /admin", "GET /admin/*", NULL}, "GET", "/admin/", "/admin/*"},
    {{"GET /admin/*", NULL}, "GET", "/admin", "/admin/*"},
    {{"GET /u/:id", NULL}, "GET", "/u/", "404"},
    /* Same shape: an explicit method beats "*"; a path that matches only
     * routes of other methods is 405. */
    {{"* /a/:x", "GET /a/:x", NULL}, "GET", "/a/1", "/a/:x"},
    {{"GET /admin", "POST /admin/*", NULL}, "DELETE", "/admin", "405"},
    {{"GET /admin", "POST /admin/*", NULL}, "POST", "/admin", "/admin/*"},
    {{"GET /a", NULL}, "GET", "/b", "404"},
};

static void add_routes(msvc__router_t *rt, const prec_case_t *c, bool reverse) {
  size_t n = 0, i;

  while (c->routes[n] != NULL)
    n++;
  for (i = 0; i < n; i++) {
    const char *spec = c->routes[reverse ? n - 1 - i : i];
    const char *sp = strchr(spec, ' ');
    char method[16];

    cr_assert_lt((size_t)(sp - spec), sizeof(method));
    memcpy(method, spec, (size_t)(sp - spec));
    method[sp - spec] = '\0';
    cr_assert_eq(msvc__router_add(rt, method, sp + 1, h, NULL, NULL), MSVC_OK, "%s", spec);
  }
}

Test(http_router_precedence, table_in_both_orders) {
  size_t k;
  int reverse;

  for (k = 0; k < sizeof(prec_cases) / sizeof(prec_cases[0]); k++) {
    const prec_case_t *c = &prec_cases[k];
    for (reverse = 0; reverse < 2; reverse++) {
      msvc__router_t rt;
      msvc__match_t m;
      const char *got;
      int st;

      memset(&rt, 0, sizeof(rt));
      add_routes(&rt, c, reverse != 0);
      st = msvc__router_match(&rt, c->method, c->path, strlen(c->path), &m, NULL);
      got = st == 200 ? m.route->pattern : st == 404 ? "404" : "405";
      cr_expect_str_eq(got, c->want, "row %zu (%s %s, %s order): got %s", k, c->method,
                       c->path, reverse ? "reverse" : "given", got);
      msvc__router_free(&rt);
    }
  }
}

Test(http_router_precedence, ambiguous_shapes_are_refused) {
  msvc__router_t rt;

  memset(&rt, 0, sizeof(rt));
  cr_assert_eq(msvc__router_add(&rt, "GET", "/users/:id", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&rt, "GET", "/users/:name", h, NULL, NULL), MSVC_EHTTP_ROUTE,
               "two parameter names for one shape would make the winner depend on order");
  cr_assert_eq(msvc__router_add(&rt, "POST", "/users/:name", h, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc__router_add(&rt, "*", "/users/:x", h, NULL, NULL), MSVC_OK);
  msvc__router_free(&rt);
}

Test(http_router, route_options_carry_their_size) {
  msvc_http_route_opts_t o;
  msvc__match_t m;
  int marker = 0;

  msvc_http_route_opts_init(&o);
  cr_assert_eq(o.size, sizeof(o));
  cr_assert_eq(o.flags, 0);
  cr_assert_null(o.data);

  /* Options never filled in (size 0) are refused rather than misread. */
  o.size = 0;
  cr_assert_eq(msvc__router_add(&r, "GET", "/opts", h, NULL, &o), MSVC_EINVAL);

  /* A larger struct from a newer header is read only as far as this one goes. */
  msvc_http_route_opts_init(&o);
  o.flags = MSVC_HTTP_ROUTE_AUTH;
  o.data = &marker;
  cr_assert_eq(msvc__router_add(&r, "GET", "/opts", h, NULL, &o), MSVC_OK);
  cr_assert_str_eq(match("GET", "/opts", &m), "/opts");
  cr_assert_eq(m.route->opts.size, sizeof(o));
  cr_assert_eq(m.route->opts.flags, MSVC_HTTP_ROUTE_AUTH);
  cr_assert_eq(m.route->opts.data, &marker);
}
