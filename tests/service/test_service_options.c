/*
 * Every setting of the environment is also an option, in three layers:
 * the option wins over the variable, the variable over the default. One
 * table row per setting and layer; TLS rows point at files that do not
 * exist, so the message tells which layer's file was tried.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/service.h>
#include <msvc/tls.h>

#include "service/service-core.h"

#define JWKS LIBMSVC_TEST_SOURCE_DIR "/tests/jwt/interop/fixtures/jwks.json"
#define URL_ENV "http://127.0.0.1:1/env.json"
#define URL_OPT "http://127.0.0.1:1/opt.json"

static const char *const vars[] = {
    "MSVC_LOG_LEVEL",    "MSVC_LOG_FORMAT",      "MSVC_JWT_JWKS_URL",
    "MSVC_JWT_JWKS_FILE", "MSVC_JWT_ISSUER",     "MSVC_JWT_AUDIENCE",
    "MSVC_JWT_LEEWAY_S", "MSVC_TLS_CERT",        "MSVC_TLS_KEY",
    "MSVC_TLS_CA",       "MSVC_TLS_CLIENT_AUTH", "MSVC_TLS_CLIENT_CERT",
    "MSVC_TLS_CLIENT_KEY", "MSVC_SERVICE_NAME",  "MSVC_HOST",
    "MSVC_PORT",         "MSVC_ADVERTISE",       "MSVC_REGISTRY_TTL_MS",
    "MSVC_LB",           "MSVC_WORKERS",         "MSVC_JWT_REQUIRE_EXP",
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

static void teardown(void) {
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "a handle leaked");
  msvc_log_reset();
}

TestSuite(service_options, .init = setup, .fini = teardown, .timeout = 30);

/* ---- the table --------------------------------------------------------- */

/* Option setters: one per value a row sets. */
static void o_none(msvc_service_opts_t *o) { (void)o; }
static void o_issuer(msvc_service_opts_t *o) { o->jwt_issuer = "opt-iss"; }
static void o_audience(msvc_service_opts_t *o) { o->jwt_audience = "opt-aud"; }
static void o_leeway7(msvc_service_opts_t *o) { o->jwt_leeway_s = 7; }
static void o_leeway0(msvc_service_opts_t *o) { o->jwt_leeway_s = 0; }
static void o_url(msvc_service_opts_t *o) { o->jwt_jwks_url = URL_OPT; }
static void o_file(msvc_service_opts_t *o) { o->jwt_jwks_file = JWKS; }
static void o_level_debug(msvc_service_opts_t *o) { o->log_level = MSVC_LOG_DEBUG; }
static void o_format_json(msvc_service_opts_t *o) { o->log_format = MSVC_LOG_FORMAT_JSON; }
static void o_cert(msvc_service_opts_t *o) {
  o->tls_cert_file = "/nonexistent/opt.crt";
  o->tls_key_file = "/nonexistent/opt.key";
}
static void o_cert_only(msvc_service_opts_t *o) { o->tls_cert_file = "/nonexistent/opt.crt"; }
static void o_ca(msvc_service_opts_t *o) { o->tls_ca_file = "/nonexistent/opt-ca.pem"; }
static void o_client(msvc_service_opts_t *o) {
  o->tls_client_cert_file = "/nonexistent/opt-client.crt";
  o->tls_client_key_file = "/nonexistent/opt-client.key";
}
static void o_auth_require(msvc_service_opts_t *o) { o->tls_client_auth = MSVC_TLS_AUTH_REQUIRE; }
static void o_auth_none(msvc_service_opts_t *o) { o->tls_client_auth = MSVC_TLS_AUTH_NONE; }
static void o_all_jwt(msvc_service_opts_t *o) {
  o->jwt_jwks_file = JWKS;
  o->jwt_issuer = "opt-iss";
  o->jwt_audience = "opt-aud";
  o->jwt_leeway_s = 3;
  o->jwt_require_exp = 1;
}

/* What the configuration holds, as text, for the row's field. */
static void field(const msvc_service_t *svc, const char *name, char *out, size_t len) {
  const msvc__svc_config_t *c = &svc->cfg;
  const char *s = NULL;

  if (strcmp(name, "issuer") == 0) s = c->jwt.verify.issuer;
  else if (strcmp(name, "audience") == 0) s = c->jwt.audience;
  else if (strcmp(name, "url") == 0) s = c->jwt.jwks_url;
  else if (strcmp(name, "file") == 0) s = c->jwt.jwks_file;
  else if (strcmp(name, "key_what") == 0) s = c->jwt_key_what;
  if (strcmp(name, "leeway") == 0)
    snprintf(out, len, "%u", (unsigned)c->jwt.verify.leeway_s);
  else if (strcmp(name, "level") == 0)
    snprintf(out, len, "%s", msvc_log_level_name(msvc_log_get_level()));
  else
    snprintf(out, len, "%s", s != NULL ? s : "(null)");
}

typedef struct row_s {
  const char *what;
  const char *env[4][2]; /* variables set before the call */
  void (*set)(msvc_service_opts_t *o);
  int rc;
  const char *field; /* rc == MSVC_OK: the field ... */
  const char *want;  /* ... holds this; else the message has it */
  const char *want2; /* and, on failure, this too (or NULL) */
} row_t;

static const row_t rows[] = {
    /* JWT issuer */
    {"issuer default", {{NULL}}, o_none, MSVC_OK, "issuer", "(null)", NULL},
    {"issuer env", {{"MSVC_JWT_ISSUER", "env-iss"}}, o_none, MSVC_OK, "issuer", "env-iss", NULL},
    {"issuer opt", {{NULL}}, o_issuer, MSVC_OK, "issuer", "opt-iss", NULL},
    {"issuer opt over env", {{"MSVC_JWT_ISSUER", "env-iss"}}, o_issuer, MSVC_OK, "issuer",
     "opt-iss", NULL},
    /* JWT audience */
    {"audience default", {{NULL}}, o_none, MSVC_OK, "audience", "(null)", NULL},
    {"audience env", {{"MSVC_JWT_AUDIENCE", "env-aud"}}, o_none, MSVC_OK, "audience",
     "env-aud", NULL},
    {"audience opt over env", {{"MSVC_JWT_AUDIENCE", "env-aud"}}, o_audience, MSVC_OK,
     "audience", "opt-aud", NULL},
    /* JWT leeway */
    {"leeway default", {{NULL}}, o_none, MSVC_OK, "leeway", "30", NULL},
    {"leeway env", {{"MSVC_JWT_LEEWAY_S", "5"}}, o_none, MSVC_OK, "leeway", "5", NULL},
    {"leeway opt over env", {{"MSVC_JWT_LEEWAY_S", "5"}}, o_leeway7, MSVC_OK, "leeway", "7",
     NULL},
    {"leeway opt 0 over env", {{"MSVC_JWT_LEEWAY_S", "5"}}, o_leeway0, MSVC_OK, "leeway", "0",
     NULL},
    /* JWT key source: one setting, URL or file */
    {"url default", {{NULL}}, o_none, MSVC_OK, "url", "(null)", NULL},
    {"url env", {{"MSVC_JWT_JWKS_URL", URL_ENV}}, o_none, MSVC_OK, "url", URL_ENV, NULL},
    {"url opt over env", {{"MSVC_JWT_JWKS_URL", URL_ENV}}, o_url, MSVC_OK, "url", URL_OPT,
     NULL},
    {"url opt names itself", {{"MSVC_JWT_JWKS_URL", URL_ENV}}, o_url, MSVC_OK, "key_what",
     "jwt_jwks_url option", NULL},
    {"file opt replaces env url", {{"MSVC_JWT_JWKS_URL", URL_ENV}}, o_file, MSVC_OK, "url",
     "(null)", NULL},
    {"file opt", {{"MSVC_JWT_JWKS_URL", URL_ENV}}, o_file, MSVC_OK, "file", JWKS, NULL},
    {"url opt replaces env file", {{"MSVC_JWT_JWKS_FILE", JWKS}}, o_url, MSVC_OK, "file",
     "(null)", NULL},
    {"file env", {{"MSVC_JWT_JWKS_FILE", JWKS}}, o_none, MSVC_OK, "key_what",
     "MSVC_JWT_JWKS_FILE", NULL},
    /* Every JWT field set: the variables are not read at all. */
    {"all jwt opts ignore bad env",
     {{"MSVC_JWT_LEEWAY_S", "soon"}, {"MSVC_JWT_ISSUER", ""}, {"MSVC_JWT_JWKS_URL", "ftp://x"},
      {"MSVC_JWT_REQUIRE_EXP", "maybe"}},
     o_all_jwt, MSVC_OK, "leeway", "3", NULL},
    /* Log level (process-wide) */
    {"level env", {{"MSVC_LOG_LEVEL", "error"}}, o_none, MSVC_OK, "level", "error", NULL},
    {"level opt over env", {{"MSVC_LOG_LEVEL", "error"}}, o_level_debug, MSVC_OK, "level",
     "debug", NULL},
    {"level opt over bad env", {{"MSVC_LOG_LEVEL", "loud"}}, o_level_debug, MSVC_OK, "level",
     "debug", NULL},
    {"format opt over bad env", {{"MSVC_LOG_FORMAT", "xml"}}, o_format_json, MSVC_OK, "level",
     "off", NULL},
    /* TLS server pair: the file tried names the layer that won */
    {"cert env", {{"MSVC_TLS_CERT", "/nonexistent/env.crt"}, {"MSVC_TLS_KEY", "/nonexistent/env.key"}},
     o_none, MSVC_ECONFIG, NULL, "MSVC_TLS_CERT/MSVC_TLS_KEY", "env.crt"},
    {"cert opt over env",
     {{"MSVC_TLS_CERT", "/nonexistent/env.crt"}, {"MSVC_TLS_KEY", "/nonexistent/env.key"}},
     o_cert, MSVC_ECONFIG, NULL, "tls_cert_file option/tls_key_file option", "opt.crt"},
    {"cert opt never pairs with env key", {{"MSVC_TLS_KEY", "/nonexistent/env.key"}},
     o_cert_only, MSVC_ECONFIG, NULL, "tls_key_file option: required", "tls_cert_file option"},
    /* CA alone: the client side is built with it */
    {"ca env", {{"MSVC_TLS_CA", "/nonexistent/env-ca.pem"}}, o_none, MSVC_ECONFIG, NULL,
     "MSVC_TLS_CA", "env-ca.pem"},
    {"ca opt over env", {{"MSVC_TLS_CA", "/nonexistent/env-ca.pem"}}, o_ca, MSVC_ECONFIG, NULL,
     "tls_ca_file option", "opt-ca.pem"},
    /* Client certificate pair */
    {"client cert opt over env",
     {{"MSVC_TLS_CLIENT_CERT", "/nonexistent/env-client.crt"},
      {"MSVC_TLS_CLIENT_KEY", "/nonexistent/env-client.key"}},
     o_client, MSVC_ECONFIG, NULL, "tls_client_cert_file option", "opt-client.crt"},
    /* Client auth */
    {"auth opt needs a ca", {{NULL}}, o_auth_require, MSVC_ECONFIG, NULL,
     "MSVC_TLS_CA: required when tls_client_auth option", NULL},
    {"auth opt none over env require", {{"MSVC_TLS_CLIENT_AUTH", "require"}}, o_auth_none,
     MSVC_OK, "issuer", "(null)", NULL},
    {"auth env require needs a ca", {{"MSVC_TLS_CLIENT_AUTH", "require"}}, o_none,
     MSVC_ECONFIG, NULL, "MSVC_TLS_CA: required when MSVC_TLS_CLIENT_AUTH", NULL},
};

Test(service_options, option_wins_over_environment_over_default) {
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    const row_t *r = &rows[i];
    msvc_service_opts_t o;
    msvc_service_t *svc = NULL;
    char err[512] = "", got[512];
    int rc;

    clean_env();
    for (size_t j = 0; j < 4 && r->env[j][0] != NULL; j++)
      setenv(r->env[j][0], r->env[j][1], 1);
    msvc_service_opts_init(&o);
    r->set(&o);
    rc = msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err));
    cr_expect_eq(rc, r->rc, "%s: %s (%s)", r->what, msvc_strerror(rc), err);
    if (rc != MSVC_OK) {
      cr_expect_null(svc, "%s: no service on failure", r->what);
      cr_expect_not_null(strstr(err, r->want), "%s: \"%s\" lacks \"%s\"", r->what, err,
                         r->want);
      if (r->want2 != NULL)
        cr_expect_not_null(strstr(err, r->want2), "%s: \"%s\" lacks \"%s\"", r->what, err,
                           r->want2);
      continue;
    }
    if (r->rc == MSVC_OK) {
      field(svc, r->field, got, sizeof(got));
      cr_expect_str_eq(got, r->want, "%s: %s is \"%s\", expected \"%s\"", r->what, r->field,
                       got, r->want);
    }
    msvc_service_free(svc);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
}

/* ---- bad option values name the option ---------------------------------- */

typedef struct bad_opt_s {
  void (*set)(msvc_service_opts_t *o);
  const char *named;
} bad_opt_t;

static void b_both_keys(msvc_service_opts_t *o) {
  o->jwt_jwks_url = URL_OPT;
  o->jwt_jwks_file = JWKS;
}
static void b_url(msvc_service_opts_t *o) { o->jwt_jwks_url = "ftp://1.2.3.4/jwks"; }
static void b_url_host(msvc_service_opts_t *o) { o->jwt_jwks_url = "http://bad name/x"; }
static void b_file(msvc_service_opts_t *o) { o->jwt_jwks_file = "/nonexistent/jwks.json"; }
static void b_empty_file(msvc_service_opts_t *o) { o->jwt_jwks_file = ""; }
static void b_issuer(msvc_service_opts_t *o) { o->jwt_issuer = ""; }
static void b_audience(msvc_service_opts_t *o) { o->jwt_audience = ""; }
static void b_leeway(msvc_service_opts_t *o) { o->jwt_leeway_s = 86401; }
static void b_leeway_neg(msvc_service_opts_t *o) { o->jwt_leeway_s = -2; }
static void b_auth(msvc_service_opts_t *o) { o->tls_client_auth = 3; }
static void b_level(msvc_service_opts_t *o) { o->log_level = 9; }
static void b_format(msvc_service_opts_t *o) { o->log_format = 2; }
static void b_client_key(msvc_service_opts_t *o) { o->tls_client_key_file = "/x.key"; }

static const bad_opt_t bad_opts[] = {
    {b_both_keys, "jwt_jwks_url option"},  {b_url, "jwt_jwks_url option"},
    {b_url_host, "jwt_jwks_url option"},   {b_file, "jwt_jwks_file option"},
    {b_empty_file, "jwt_jwks_file option"}, {b_issuer, "jwt_issuer option"},
    {b_audience, "jwt_audience option"},   {b_leeway, "jwt_leeway_s option"},
    {b_leeway_neg, "jwt_leeway_s option"}, {b_auth, "tls_client_auth option"},
    {b_level, "log_level option"},         {b_format, "log_format option"},
    {b_client_key, "tls_client_cert_file option"},
};

Test(service_options, bad_options_name_the_option) {
  for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
    msvc_service_opts_t o;
    msvc_service_t *svc = (msvc_service_t *)1;
    char err[512] = "";
    int rc;

    msvc_service_opts_init(&o);
    bad_opts[i].set(&o);
    rc = msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err));
    cr_expect_eq(rc, MSVC_ECONFIG, "row %zu: %s (%s)", i, msvc_strerror(rc), err);
    cr_expect_null(svc, "row %zu: no service on failure", i);
    cr_expect_eq(strncmp(err, bad_opts[i].named, strlen(bad_opts[i].named)), 0,
                 "row %zu: message does not start with %s: %s", i, bad_opts[i].named, err);
    cr_expect_null(strchr(err, '\n'), "one line: %s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
}

/* A program built against the 0.1 header passes the smaller size: it
 * works, and the newer fields keep their defaults. */
Test(service_options, older_smaller_options_still_work) {
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  char err[256] = "";

  setenv("MSVC_JWT_ISSUER", "env-iss", 1);
  msvc_service_opts_init(&o);
  o.jwt_issuer = "beyond the old size";
  o.size = offsetof(msvc_service_opts_t, tls_cert_file);
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_OK, "%s",
               err);
  cr_assert_str_eq(svc->cfg.jwt.verify.issuer, "env-iss", "fields past size are not read");
  msvc_service_free(svc);
  o.size = sizeof(o) + 8;
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_EINVAL);
}

/* The options give a working TLS-free, JWT-protected service without one
 * variable set. */
Test(service_options, jwt_from_options_alone_protects_routes) {
  msvc_service_opts_t o;
  msvc_service_t *svc = NULL;
  char err[256] = "";

  msvc_service_opts_init(&o);
  o.jwt_jwks_file = JWKS;
  o.jwt_issuer = "iss";
  cr_assert_eq(msvc_service_new(&loop, "svc", &o, &svc, err, sizeof(err)), MSVC_OK, "%s",
               err);
  cr_assert(svc->cfg.jwt_enabled);
  cr_assert_str_eq(svc->cfg.jwt_key_what, "jwt_jwks_file option");
  msvc_service_free(svc);
}
