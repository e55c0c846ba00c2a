/* TLS configurations: building, errors, reload, the environment helper. */
#include <msvc/log.h>

#include "tls/helpers.h"

static char logged[1024];

static void sink(void *data, msvc_log_level_t level, const char *line, size_t len) {
  (void)data;
  if (level == MSVC_LOG_WARN && len < sizeof(logged)) {
    memcpy(logged, line, len);
    logged[len] = '\0';
  }
}

static int try_server(const char *crt, const char *key, char *err, size_t len) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg = NULL;
  int rc;

  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = crt;
  o.key_file = key;
  rc = msvc_tls_config_new(&o, &cfg, err, len);
  cr_assert_eq(cfg == NULL, rc != MSVC_OK);
  msvc_tls_config_free(cfg);
  return rc;
}

Test(tls_config, server_from_pem_files) {
  char err[256];

  cr_assert_eq(try_server(cf("server.crt"), cf("server.key"), err, sizeof(err)), MSVC_OK,
               "%s", err);
  cr_assert_eq(try_server(cf("server-rsa.crt"), cf("server-rsa.key"), err, sizeof(err)),
               MSVC_OK, "%s", err);
  cr_assert_str_empty(err);
}

Test(tls_config, missing_file_is_named) {
  char err[256];

  cr_assert_eq(try_server(cf("nope.crt"), cf("server.key"), err, sizeof(err)),
               MSVC_ETLS_FILE);
  cr_assert(strstr(err, "nope.crt") != NULL, "%s", err);
  cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

/* A buffer of MSVC_ERRMSG_MAX holds every message: however long the path it
 * quotes, none is longer, even in a larger buffer. */
Test(tls_config, messages_fit_errmsg_max) {
  char path[1500], err[4096];
  size_t i;

  memcpy(path, "/nonexistent/", 13);
  for (i = 13; i < sizeof(path) - 5; i++)
    path[i] = (i % 64 == 0) ? '/' : 'd';
  memcpy(path + i, ".crt", 5);
  memset(err, 'x', sizeof(err));
  cr_assert_eq(try_server(path, cf("server.key"), err, sizeof(err)), MSVC_ETLS_FILE);
  cr_assert_lt(strlen(err), MSVC_ERRMSG_MAX, "%zu bytes", strlen(err));
  cr_assert(strncmp(err, "certificate /nonexistent/", 25) == 0, "%s", err);
  cr_assert_eq(try_server(cf("bad.pem"), path, err, sizeof(err)), MSVC_ETLS_FILE);
  cr_assert_lt(strlen(err), MSVC_ERRMSG_MAX, "%zu bytes", strlen(err));
}

Test(tls_config, garbage_and_mismatch_are_errors) {
  char err[256];

  cr_assert_eq(try_server(cf("bad.pem"), cf("server.key"), err, sizeof(err)),
               MSVC_ETLS_FILE);
  cr_assert(strstr(err, "bad.pem") != NULL && strstr(err, "mbedtls") != NULL, "%s", err);
  cr_assert_eq(try_server(cf("server.crt"), cf("bad.pem"), err, sizeof(err)),
               MSVC_ETLS_FILE);
  cr_assert(strstr(err, "key") != NULL, "%s", err);
  cr_assert_eq(try_server(cf("server.crt"), cf("client.key"), err, sizeof(err)),
               MSVC_ETLS_FILE);
  cr_assert(strstr(err, "does not match") != NULL, "%s", err);
}

Test(tls_config, invalid_options) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];

  cr_assert_eq(msvc_tls_config_new(NULL, &cfg, err, sizeof(err)), MSVC_EINVAL);
  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strstr(err, "cert_file") != NULL, "%s", err);
  o.cert_file = cf("server.crt");
  o.key_file = cf("server.key");
  o.client_auth = MSVC_TLS_AUTH_REQUIRE;
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strstr(err, "ca_file") != NULL, "%s", err);
  o.client_auth = (msvc_tls_client_auth_t)7;
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_EINVAL);
  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  o.cert_file = cf("client.crt");
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strstr(err, "key_file") != NULL, "%s", err);
  msvc_tls_config_free(NULL);
}

Test(tls_config, client_with_system_bundle) {
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  char err[256];

  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_eq(msvc_tls_config_expiry(cfg), 0);
  msvc_tls_config_free(cfg);
}

Test(tls_config, reload_keeps_old_material_on_error) {
  char dir[] = "/tmp/msvc-tls-reload-XXXXXX", crt[600], key[600], cmd[2000], err[256];
  msvc_tls_opts_t o;
  msvc_tls_config_t *cfg;
  int64_t first;

  cr_assert_not_null(mkdtemp(dir));
  snprintf(crt, sizeof(crt), "%s/tls.crt", dir);
  snprintf(key, sizeof(key), "%s/tls.key", dir);
  snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp '%s' '%s'", cf("server.crt"), crt,
           cf("server.key"), key);
  cr_assert_eq(system(cmd), 0);
  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = crt;
  o.key_file = key;
  cr_assert_eq(msvc_tls_config_new(&o, &cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  first = msvc_tls_config_expiry(cfg);
  cr_assert_gt(first, 0);
  cr_assert_str_empty(msvc_tls_config_errmsg(cfg));

  /* A half-written rotation: the new certificate, the old key. */
  snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", cf("expired.crt"), crt);
  cr_assert_eq(system(cmd), 0);
  msvc_log_set_sink(sink, NULL);
  cr_assert_eq(msvc_tls_config_reload(cfg, err, sizeof(err)), MSVC_ETLS_FILE);
  msvc_log_reset();
  cr_assert(strstr(err, "does not match") != NULL, "%s", err);
  cr_assert(strstr(logged, "keeping the current certificates") != NULL &&
                strstr(logged, "does not match") != NULL, "%s", logged);
  cr_assert_str_eq(msvc_tls_config_errmsg(cfg), err);
  cr_assert_eq(msvc_tls_config_expiry(cfg), first);

  snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", cf("expired.key"), key);
  cr_assert_eq(system(cmd), 0);
  cr_assert_eq(msvc_tls_config_reload(cfg, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert_str_empty(msvc_tls_config_errmsg(cfg));
  cr_assert_eq(msvc_tls_config_expiry(cfg), 1577836800); /* 2020-01-01 */
  msvc_tls_config_free(cfg);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

static void clear_env(void) {
  const char *vars[] = {"MSVC_TLS_CERT", "MSVC_TLS_KEY", "MSVC_TLS_CA",
                        "MSVC_TLS_CLIENT_AUTH", "MSVC_TLS_CLIENT_CERT",
                        "MSVC_TLS_CLIENT_KEY"};
  size_t i;

  for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    unsetenv(vars[i]);
}

Test(tls_config, environment) {
  msvc_tls_opts_t s, c;
  bool on = true;
  char err[256];

  clear_env();
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_OK);
  cr_assert_not(on);
  cr_assert_null(c.ca_file);

  setenv("MSVC_TLS_CERT", "a.crt", 1);
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strncmp(err, "MSVC_TLS_KEY:", 13) == 0, "%s", err);
  setenv("MSVC_TLS_KEY", "a.key", 1);
  setenv("MSVC_TLS_CLIENT_AUTH", "sometimes", 1);
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strstr(err, "MSVC_TLS_CLIENT_AUTH") != NULL &&
                strstr(err, "none, optional or require") != NULL, "%s", err);
  setenv("MSVC_TLS_CLIENT_AUTH", "require", 1);
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strncmp(err, "MSVC_TLS_CA:", 12) == 0, "%s", err);
  setenv("MSVC_TLS_CA", "ca.crt", 1);
  setenv("MSVC_TLS_CLIENT_CERT", "c.crt", 1);
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_EINVAL);
  cr_assert(strncmp(err, "MSVC_TLS_CLIENT_KEY:", 20) == 0, "%s", err);
  setenv("MSVC_TLS_CLIENT_KEY", "c.key", 1);
  cr_assert_eq(msvc_tls_opts_env(&s, &c, &on, err, sizeof(err)), MSVC_OK, "%s", err);
  cr_assert(on);
  cr_assert_str_eq(s.cert_file, "a.crt");
  cr_assert_str_eq(s.key_file, "a.key");
  cr_assert_str_eq(s.ca_file, "ca.crt");
  cr_assert_eq(s.client_auth, MSVC_TLS_AUTH_REQUIRE);
  cr_assert_eq(s.role, MSVC_TLS_SERVER);
  cr_assert_eq(c.role, MSVC_TLS_CLIENT);
  cr_assert_str_eq(c.cert_file, "c.crt");
  cr_assert_str_eq(c.key_file, "c.key");
  cr_assert_str_eq(c.ca_file, "ca.crt");
  clear_env();
}
