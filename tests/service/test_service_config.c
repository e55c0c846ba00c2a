/*
 * Configuration of a service: every MSVC_* variable with a bad value gives
 * MSVC_ECONFIG and one line naming it and what it accepts; explicit options
 * win over the environment; good values land in the configuration.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>

#include "service/service-core.h"

#define JWKS LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/jwks.json"

static const char *const vars[] = {
    "MSVC_SERVICE_NAME",  "MSVC_HOST",       "MSVC_PORT",          "MSVC_ADVERTISE",
    "MSVC_REGISTRY",      "MSVC_REGISTRY_TTL_MS", "MSVC_LB",        "MSVC_WORKERS",
    "MSVC_LOG_LEVEL",     "MSVC_LOG_FORMAT", "MSVC_JWT_JWKS_URL",  "MSVC_JWT_JWKS_FILE",
    "MSVC_JWT_ISSUER",    "MSVC_JWT_AUDIENCE", "MSVC_JWT_LEEWAY_S",
    "MSVC_TLS_CERT",      "MSVC_TLS_KEY",    "MSVC_TLS_CA",        "MSVC_TLS_CLIENT_AUTH",
    "MSVC_TLS_CLIENT_CERT", "MSVC_TLS_CLIENT_KEY",
};

static uv_loop_t loop;

static void clean_env(void) {
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    unsetenv(vars[i]);
  setenv("MSVC_REGISTRY", "memory://", 1);
  msvc_log_reset();
  msvc_log_set_level(MSVC_LOG_OFF);
}

static void setup(void) {
  cr_assert_eq(uv_loop_init(&loop), 0);
  clean_env();
}

/* A service freed without being started releases its handles from the
 * loop: run it, then nothing may be left. */
static void teardown(void) {
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
  msvc_log_reset();
}

TestSuite(service_config, .init = setup, .fini = teardown, .timeout = 30);

typedef struct bad_s {
  const char *var;
  const char *value;
  const char *expect; /* a piece of the accepted values */
} bad_t;

static const bad_t bad[] = {
    {"MSVC_SERVICE_NAME", ".hidden", "A-Z a-z 0-9"},
    {"MSVC_SERVICE_NAME", "has space", "A-Z a-z 0-9"},
    {"MSVC_HOST", "localhost", "IPv4 or IPv6"},
    {"MSVC_HOST", "1.2.3", "IPv4 or IPv6"},
    {"MSVC_PORT", "abc", "0..65535"},
    {"MSVC_PORT", "65536", "0..65535"},
    {"MSVC_PORT", "-1", "0..65535"},
    {"MSVC_PORT", "80x", "0..65535"},
    {"MSVC_ADVERTISE", "host", "host:port"},
    {"MSVC_ADVERTISE", "host:0", "host:port"},
    {"MSVC_ADVERTISE", ":80", "host:port"},
    {"MSVC_ADVERTISE", "::1:80", "brackets"},
    {"MSVC_ADVERTISE", "h:99999", "host:port"},
    {"MSVC_REGISTRY", "zookeeper://x", "memory://"},
    {"MSVC_REGISTRY", "local://relative", "local://"},
    {"MSVC_REGISTRY_TTL_MS", "10", "30..86400000"},
    {"MSVC_REGISTRY_TTL_MS", "ten", "30..86400000"},
    {"MSVC_LB", "random", "round_robin, least_conn or p2c"},
    {"MSVC_LB", "ROUND_ROBIN", "round_robin, least_conn or p2c"},
    {"MSVC_WORKERS", "0", "1..256"},
    {"MSVC_WORKERS", "257", "1..256"},
    {"MSVC_WORKERS", "two", "1..256"},
    {"MSVC_LOG_LEVEL", "loud", "trace"},
    {"MSVC_LOG_FORMAT", "xml", "json"},
    {"MSVC_JWT_JWKS_URL", "ftp://1.2.3.4/jwks", "http://"},
    {"MSVC_JWT_JWKS_URL", "https://bad_name/jwks", "https"},
    {"MSVC_JWT_JWKS_FILE", "/nonexistent/jwks.json", "JWK Set"},
    {"MSVC_JWT_ISSUER", "", "iss"},
    {"MSVC_JWT_AUDIENCE", "", "audience"},
    {"MSVC_JWT_LEEWAY_S", "-5", "0"},
    {"MSVC_JWT_LEEWAY_S", "86401", "86400"},
    {"MSVC_TLS_CLIENT_AUTH", "sometimes", "none, optional or require"},
    {"MSVC_TLS_CLIENT_AUTH", "REQUIRED", "none, optional or require"},
    {"MSVC_TLS_CA", "/nonexistent/ca.pem", "/nonexistent/ca.pem"},
};

/* TLS variables go together: the message names the one that is wrong or
 * missing, which is not always the one that was set. */
typedef struct bad_tls_s {
  const char *set[3][2];
  const char *named;  /* what the message starts with */
  const char *expect; /* a piece of the explanation */
} bad_tls_t;

static const bad_tls_t bad_tls[] = {
    {{{"MSVC_TLS_CERT", "/nonexistent/s.crt"}}, "MSVC_TLS_KEY", "required"},
    {{{"MSVC_TLS_KEY", "/nonexistent/s.key"}}, "MSVC_TLS_CERT", "required"},
    {{{"MSVC_TLS_CLIENT_CERT", "/nonexistent/c.crt"}}, "MSVC_TLS_CLIENT_KEY", "required"},
    {{{"MSVC_TLS_CLIENT_KEY", "/nonexistent/c.key"}}, "MSVC_TLS_CLIENT_CERT", "required"},
    {{{"MSVC_TLS_CLIENT_AUTH", "require"}}, "MSVC_TLS_CA", "required"},
    {{{"MSVC_TLS_CLIENT_AUTH", "optional"}, {"MSVC_TLS_CA", JWKS}},
     "MSVC_TLS_CERT", "required"},
    {{{"MSVC_TLS_CERT", "/nonexistent/s.crt"}, {"MSVC_TLS_KEY", "/nonexistent/s.key"}},
     "MSVC_TLS_CERT", "/nonexistent/s.crt"},
    {{{"MSVC_TLS_CLIENT_CERT", JWKS}, {"MSVC_TLS_CLIENT_KEY", JWKS}},
     "MSVC_TLS_CLIENT_CERT", "jwks.json"},
};

Test(service_config, bad_tls_variables_name_the_culprit) {
  for (size_t i = 0; i < sizeof(bad_tls) / sizeof(bad_tls[0]); i++) {
    const bad_tls_t *b = &bad_tls[i];
    msvc_service_t *svc = (msvc_service_t *)1;
    char err[512] = "";
    int rc;

    clean_env();
    for (size_t j = 0; j < 3 && b->set[j][0] != NULL; j++)
      setenv(b->set[j][0], b->set[j][1], 1);
    rc = msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err));
    cr_expect_eq(rc, MSVC_ECONFIG, "row %zu: %s (%s)", i, msvc_strerror(rc), err);
    cr_expect_null(svc, "row %zu: no service on failure", i);
    cr_expect_eq(strncmp(err, b->named, strlen(b->named)), 0,
                 "row %zu: message does not start with %s: %s", i, b->named, err);
    cr_expect_not_null(strstr(err, b->expect), "row %zu: message lacks \"%s\": %s", i,
                       b->expect, err);
    cr_expect_null(strchr(err, '\n'), "one line: %s", err);
  }
}

Test(service_config, every_bad_value_names_its_variable) {
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    msvc_service_t *svc = (msvc_service_t *)1;
    char err[512] = "";
    int rc;

    clean_env();
    setenv(bad[i].var, bad[i].value, 1);
    rc = msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err));
    cr_expect_eq(rc, MSVC_ECONFIG, "%s=%s: %s (%s)", bad[i].var, bad[i].value,
                 msvc_strerror(rc), err);
    cr_expect_null(svc, "%s=%s: no service on failure", bad[i].var, bad[i].value);
    cr_expect_eq(strncmp(err, bad[i].var, strlen(bad[i].var)), 0,
                 "%s=%s: message does not start with the variable: %s", bad[i].var,
                 bad[i].value, err);
    cr_expect_not_null(strstr(err, bad[i].expect),
                       "%s=%s: message lacks \"%s\": %s", bad[i].var, bad[i].value,
                       bad[i].expect, err);
    cr_expect_null(strchr(err, '\n'), "one line: %s", err);
  }
}

Test(service_config, both_jwks_sources_are_refused) {
  msvc_service_t *svc = NULL;
  char err[512];

  setenv("MSVC_JWT_JWKS_FILE", JWKS, 1);
  setenv("MSVC_JWT_JWKS_URL", "http://127.0.0.1:1/jwks.json", 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS"), "%s", err);
}

Test(service_config, bad_name_argument) {
  msvc_service_t *svc = NULL;
  char err[256];

  cr_assert_eq(msvc_service_new(&loop, "bad/name", NULL, &svc, err, sizeof(err)),
               MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "service name"), "%s", err);
  cr_assert_eq(msvc_service_new(&loop, NULL, NULL, &svc, err, sizeof(err)), MSVC_ECONFIG);
}

Test(service_config, bad_arguments) {
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;

  cr_assert_eq(msvc_service_new(NULL, "svc", NULL, &svc, NULL, 0), MSVC_EINVAL);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, NULL, NULL, 0), MSVC_EINVAL);
  msvc_service_opts_init(&o);
  o.size = 1;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, NULL, 0), MSVC_EINVAL);
  msvc_service_free(NULL);
}

Test(service_config, bad_options) {
  static const msvc_registry_meta_t meta[] = {{"", "v"}};
  static const msvc_registry_meta_t twice[] = {{"zone", "a"}, {"zone", "b"}};
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  char err[256];

  msvc_service_opts_init(&o);
  o.port = 70000;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "port option"), "%s", err);
  msvc_service_opts_init(&o);
  o.workers = 300;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "workers option"), "%s", err);
  msvc_service_opts_init(&o);
  o.host = "example.com";
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  msvc_service_opts_init(&o);
  o.registry_ttl_ms = 5;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  msvc_service_opts_init(&o);
  o.lb_policy = 7;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  msvc_service_opts_init(&o);
  o.registry_uri = "nope://";
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_EURI);
  cr_assert_not_null(strstr(err, "registry_uri option"), "%s", err);
  msvc_service_opts_init(&o);
  o.advertise = "nohost";
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "advertise option"), "%s", err);
  msvc_service_opts_init(&o);
  o.metadata = meta;
  o.nmetadata = 1;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_null(svc);
  msvc_service_opts_init(&o);
  o.metadata = twice;
  o.nmetadata = 2;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "twice"), "%s", err);
}

Test(service_config, environment_values_are_applied) {
  msvc_service_t *svc = NULL;
  char err[256] = "";

  setenv("MSVC_SERVICE_NAME", "orders", 1);
  setenv("MSVC_HOST", "::1", 1);
  setenv("MSVC_PORT", "8081", 1);
  setenv("MSVC_ADVERTISE", "[fd00::7]:9000", 1);
  setenv("MSVC_REGISTRY_TTL_MS", "3000", 1);
  setenv("MSVC_LB", "p2c", 1);
  setenv("MSVC_WORKERS", "4", 1);
  setenv("MSVC_LOG_LEVEL", "error", 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_str_eq(msvc_service_name(svc), "orders");
  cr_assert_str_eq(svc->cfg.host, "::1");
  cr_assert_eq(svc->cfg.port, 8081);
  cr_assert_str_eq(svc->cfg.advertise_host, "fd00::7");
  cr_assert_eq(svc->cfg.advertise_port, 9000);
  cr_assert_eq(svc->cfg.registry_ttl_ms, 3000);
  cr_assert_eq(svc->cfg.lb_policy, MSVC_LB_P2C);
  cr_assert_eq(svc->cfg.workers, 4);
  cr_assert_eq(msvc_log_get_level(), MSVC_LOG_ERROR);
  cr_assert_eq(msvc_service_state(svc), MSVC_SERVICE_NEW);
  cr_assert_lt(msvc_service_port(svc), 0, "no port before start");
  cr_assert_null(msvc_service_instance_id(svc));
  cr_assert_eq(msvc_service_loop(svc), &loop);
  cr_assert_not_null(msvc_service_registry(svc));
  cr_assert_eq(msvc_service_metrics(svc), msvc_metrics_default_registry());
  cr_assert_eq(msvc_service_stop(svc, NULL, NULL), MSVC_ESTATE, "not started");
  msvc_service_free(svc);
}

Test(service_config, options_win_over_the_environment) {
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  char err[256] = "";

  setenv("MSVC_HOST", "not an address", 1);
  setenv("MSVC_PORT", "abc", 1);
  setenv("MSVC_LB", "nope", 1);
  setenv("MSVC_WORKERS", "zero", 1);
  setenv("MSVC_REGISTRY_TTL_MS", "x", 1);
  setenv("MSVC_ADVERTISE", "bad", 1);
  setenv("MSVC_REGISTRY", "bad://", 1);
  msvc_service_opts_init(&o);
  o.host = "127.0.0.1";
  o.port = 0;
  o.lb_policy = MSVC_LB_LEAST_CONN;
  o.workers = 1;
  o.registry_ttl_ms = 500;
  o.advertise = "svc.internal:80";
  o.registry_uri = "memory://";
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(svc->cfg.lb_policy, MSVC_LB_LEAST_CONN);
  cr_assert_eq(svc->cfg.registry_ttl_ms, 500);
  cr_assert_str_eq(svc->cfg.advertise_host, "svc.internal");
  msvc_service_free(svc);
}

Test(service_config, empty_variables_count_as_unset) {
  msvc_service_t *svc = NULL;
  char err[256] = "";

  setenv("MSVC_PORT", "", 1);
  setenv("MSVC_WORKERS", "", 1);
  setenv("MSVC_LB", "", 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(svc->cfg.port, 0);
  cr_assert_eq(svc->cfg.workers, 1);
  cr_assert_eq(svc->cfg.lb_policy, MSVC_LB_ROUND_ROBIN);
  msvc_service_free(svc);
}

static void handler(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, NULL, NULL, 0);
}

Test(service_config, auth_route_needs_a_key_source) {
  msvc_service_t *svc = NULL;
  char err[256] = "";

  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK);
  cr_assert_eq(msvc_service_route(svc, "GET", "/me", handler, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_ECONFIG);
  cr_assert_eq(msvc_service_route(svc, "GET", "/open", handler, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_route(svc, "GET", "/health", handler, NULL, 0),
               MSVC_EHTTP_ROUTE, "built-in routes are taken");
  cr_assert_eq(msvc_service_route(svc, "GET", "/open", handler, NULL, 0), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc_service_route(svc, "GET", "bad", handler, NULL, 0), MSVC_EHTTP_ROUTE);
  cr_assert_eq(msvc_service_route(svc, NULL, "/x", handler, NULL, 0), MSVC_EINVAL);
  msvc_service_free(svc);

  setenv("MSVC_JWT_JWKS_FILE", JWKS, 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert(svc->cfg.jwt_enabled);
  cr_assert_eq(msvc_service_route(svc, "GET", "/me", handler, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_OK);
  msvc_service_free(svc);
}

static int pass(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)res;
  (void)data;
  return MSVC_HTTP_NEXT;
}

static bool always(msvc_service_t *svc, const char **detail, void *data) {
  (void)svc;
  (void)detail;
  (void)data;
  return true;
}

Test(service_config, checks_and_middleware_before_start) {
  msvc_service_t *svc = NULL;
  msvc_http_middleware_t mw = {"noop", pass, NULL, NULL};

  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, NULL, 0), MSVC_OK);
  cr_assert_eq(msvc_service_use(svc, &mw), MSVC_OK);
  cr_assert_eq(msvc_service_use(svc, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_service_add_check(svc, "", NULL, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_service_add_check(svc, "db", always, NULL), MSVC_OK);
  msvc_service_free(svc);
}

Test(service_config, jwks_url_may_name_a_service) {
  msvc_service_t *svc = NULL;
  char err[512] = "";

  setenv("MSVC_JWT_JWKS_URL", "http://user-service/.well-known/jwks.json", 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert(svc->cfg.jwt_enabled);
  cr_assert_not_null(svc->jwks, "a fetcher keeps the keys");
  cr_assert_eq(msvc_service_route(svc, "GET", "/me", handler, NULL, MSVC_HTTP_ROUTE_AUTH),
               MSVC_OK);
  msvc_service_free(svc);
  setenv("MSVC_JWT_JWKS_URL", "http://bad name/jwks.json", 1);
  cr_assert_eq(msvc_service_new(&loop, "svc", NULL, &svc, err, sizeof(err)), MSVC_ECONFIG);
  cr_assert_not_null(strstr(err, "MSVC_JWT_JWKS_URL"), "%s", err);
}
