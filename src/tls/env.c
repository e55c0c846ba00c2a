/* TLS options from the environment (the MSVC_TLS_* variables). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls-internal.h"

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? v : NULL;
}

static int fail(char *err, size_t len, const char *msg) {
  if (err != NULL && len > 0)
    snprintf(err, len, "%s", msg);
  return MSVC_EINVAL;
}

static int parse_auth(const char *v, msvc_tls_client_auth_t *out) {
  if (v == NULL || strcmp(v, "none") == 0)
    *out = MSVC_TLS_AUTH_NONE;
  else if (strcmp(v, "optional") == 0)
    *out = MSVC_TLS_AUTH_OPTIONAL;
  else if (strcmp(v, "require") == 0)
    *out = MSVC_TLS_AUTH_REQUIRE;
  else
    return MSVC_EINVAL;
  return 0;
}

int msvc_tls_opts_env(msvc_tls_opts_t *server, msvc_tls_opts_t *client,
                      bool *enabled, char *err, size_t len) {
  const char *cert = env("MSVC_TLS_CERT"), *key = env("MSVC_TLS_KEY");
  const char *ca = env("MSVC_TLS_CA"), *auth = env("MSVC_TLS_CLIENT_AUTH");
  const char *ccert = env("MSVC_TLS_CLIENT_CERT"), *ckey = env("MSVC_TLS_CLIENT_KEY");
  msvc_tls_client_auth_t mode;

  if (err != NULL && len > 0)
    err[0] = '\0';
  if (enabled != NULL)
    *enabled = false;
  if (parse_auth(auth, &mode) != 0)
    return fail(err, len, "MSVC_TLS_CLIENT_AUTH: expected none, optional or require");
  if (cert != NULL && key == NULL)
    return fail(err, len, "MSVC_TLS_KEY: required when MSVC_TLS_CERT is set");
  if (key != NULL && cert == NULL)
    return fail(err, len, "MSVC_TLS_CERT: required when MSVC_TLS_KEY is set");
  if (ccert != NULL && ckey == NULL)
    return fail(err, len, "MSVC_TLS_CLIENT_KEY: required when MSVC_TLS_CLIENT_CERT is set");
  if (ckey != NULL && ccert == NULL)
    return fail(err, len, "MSVC_TLS_CLIENT_CERT: required when MSVC_TLS_CLIENT_KEY is set");
  if (mode != MSVC_TLS_AUTH_NONE && ca == NULL)
    return fail(err, len, "MSVC_TLS_CA: required when MSVC_TLS_CLIENT_AUTH is optional or require");
  if (mode != MSVC_TLS_AUTH_NONE && cert == NULL)
    return fail(err, len, "MSVC_TLS_CERT: required when MSVC_TLS_CLIENT_AUTH is optional or require");
  if (server != NULL) {
    msvc_tls_opts_init(server, MSVC_TLS_SERVER);
    server->cert_file = cert;
    server->key_file = key;
    server->ca_file = ca;
    server->client_auth = mode;
  }
  if (client != NULL) {
    msvc_tls_opts_init(client, MSVC_TLS_CLIENT);
    client->cert_file = ccert;
    client->key_file = ckey;
    client->ca_file = ca;
  }
  if (enabled != NULL)
    *enabled = cert != NULL;
  return MSVC_OK;
}
