/*
 * Configuration of a service: explicit options first, then the MSVC_*
 * environment (docs/service.md), then the defaults. Every bad value stops
 * here with one line that names the variable (or option) and what it
 * accepts, so that a program can print it and exit with status 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msvc/error.h>
#include <msvc/log.h>
#include <msvc/tls.h>
#include <msvc/version.h>
#include <msvc/work.h>

#include "service-core.h"

#define DEFAULT_TTL_MS 10000u
#define DEFAULT_DRAIN_MS 10000u
#define DEFAULT_CALL_TIMEOUT_MS 10000u
#define DEFAULT_WEIGHT 100u
#define TTL_MIN_MS 30u
#define TTL_MAX_MS 86400000u
#define WORKERS_MAX 256u

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return MSVC_ECONFIG;
}

/* An empty variable counts as unset, as for MSVC_REGISTRY. */
static const char *env(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  unsigned long long v;

  if (s[0] < '0' || s[0] > '9') return false;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

static bool name_valid(const char *s) {
  size_t i, n = strlen(s);

  if (n == 0 || n > MSVC_REGISTRY_NAME_MAX || s[0] == '.') return false;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

static bool ip_literal(const char *s) {
  unsigned char buf[16];

  return uv_inet_pton(AF_INET, s, buf) == 0 || uv_inet_pton(AF_INET6, s, buf) == 0;
}

static int set_str(char **dst, const char *src) {
  *dst = msvc__strdup(src);
  return *dst == NULL ? MSVC_ENOMEM : MSVC_OK;
}

static int load_name(msvc__svc_config_t *cfg, const char *name, char *err,
                     size_t errlen) {
  const char *v = env("MSVC_SERVICE_NAME");

  if (v != NULL) {
    if (!name_valid(v))
      return fail(err, errlen,
                  "MSVC_SERVICE_NAME: \"%.64s\" is not a service name; expected 1..128 "
                  "characters of A-Z a-z 0-9 . _ - not starting with a dot", v);
    return set_str(&cfg->name, v);
  }
  if (name == NULL || !name_valid(name))
    return fail(err, errlen,
                "service name: \"%.64s\" is not a service name; expected 1..128 "
                "characters of A-Z a-z 0-9 . _ - not starting with a dot",
                name != NULL ? name : "(null)");
  return set_str(&cfg->name, name);
}

static int load_listen(msvc__svc_config_t *cfg, const msvc_service_opts_t *o,
                       char *err, size_t errlen) {
  const char *v;
  uint64_t n;

  if (o->host != NULL) {
    if (!ip_literal(o->host))
      return fail(err, errlen, "host option: \"%.64s\" is not an IP address; expected "
                  "an IPv4 or IPv6 literal such as 127.0.0.1 or ::", o->host);
    v = o->host;
  } else if ((v = env("MSVC_HOST")) != NULL) {
    if (!ip_literal(v))
      return fail(err, errlen, "MSVC_HOST: \"%.64s\" is not an IP address; expected "
                  "an IPv4 or IPv6 literal such as 127.0.0.1 or ::", v);
  } else {
    v = "127.0.0.1";
  }
  if (set_str(&cfg->host, v) != MSVC_OK) return MSVC_ENOMEM;
  if (o->port >= 0) {
    if (o->port > 65535)
      return fail(err, errlen, "port option: %d is not a port; expected an integer "
                  "0..65535 (or -1 for MSVC_PORT)", o->port);
    cfg->port = o->port;
  } else if (o->port != -1) {
    return fail(err, errlen, "port option: %d is not a port; expected an integer "
                "0..65535 (or -1 for MSVC_PORT)", o->port);
  } else if ((v = env("MSVC_PORT")) != NULL) {
    if (!parse_u64(v, 65535, &n))
      return fail(err, errlen, "MSVC_PORT: \"%.64s\" is not a port; expected an "
                  "integer 0..65535", v);
    cfg->port = (int)n;
  }
  return MSVC_OK;
}

/* "host:port" or "[v6]:port"; the host is a name or an address. */
static int parse_advertise(msvc__svc_config_t *cfg, const char *what, const char *v,
                           char *err, size_t errlen) {
  const char *colon, *hs = v, *he;
  uint64_t port;

  colon = strrchr(v, ':');
  if (colon == NULL) goto bad;
  he = colon;
  if (v[0] == '[') {
    if (colon == v || colon[-1] != ']') goto bad;
    hs = v + 1;
    he = colon - 1;
  } else if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
    goto bad; /* an IPv6 address needs brackets */
  }
  if (he == hs || (size_t)(he - hs) > MSVC_REGISTRY_ADDRESS_MAX) goto bad;
  if (!parse_u64(colon + 1, 65535, &port) || port == 0) goto bad;
  for (const char *p = hs; p < he; p++)
    if (*p <= ' ' || *p == '/' || *p == '[' || *p == ']' || (unsigned char)*p >= 0x7f)
      goto bad;
  cfg->advertise_host = msvc__strndup(hs, (size_t)(he - hs));
  if (cfg->advertise_host == NULL) return MSVC_ENOMEM;
  cfg->advertise_port = (int)port;
  return MSVC_OK;
bad:
  return fail(err, errlen, "%s: \"%.64s\" is not an address; expected host:port "
              "with port 1..65535 (IPv6 in brackets: [::1]:8080)", what, v);
}

static int load_registry(msvc__svc_config_t *cfg, const msvc_service_opts_t *o,
                         char *err, size_t errlen) {
  const char *v, *what = "registry_uri option";
  char why[600];
  uint64_t n;
  int rc;

  v = o->registry_uri;
  if (v == NULL && (v = env("MSVC_REGISTRY")) != NULL) what = "MSVC_REGISTRY";
  if (v != NULL) {
    rc = msvc_registry_check_uri(v, why, sizeof(why));
    if (rc != MSVC_OK) {
      fail(err, errlen, "%s: %s", what, why);
      /* The variable is configuration; the option is the program's URI.
       * An unsafe directory is configuration either way. */
      return o->registry_uri != NULL && rc == MSVC_EURI ? rc : MSVC_ECONFIG;
    }
    if (set_str(&cfg->registry_uri, v) != MSVC_OK) return MSVC_ENOMEM;
  } else {
    rc = msvc_registry_default_uri(&cfg->registry_uri);
    if (rc != MSVC_OK) return rc;
    /* Checked like a configured one: a directory someone else planted at
     * the default place must stop the start, not be used. */
    if (msvc_registry_check_uri(cfg->registry_uri, why, sizeof(why)) != MSVC_OK) {
      fail(err, errlen, "MSVC_REGISTRY (unset, default %s): %s", cfg->registry_uri, why);
      return MSVC_ECONFIG;
    }
  }
  cfg->registry_ttl_ms = DEFAULT_TTL_MS;
  if (o->registry_ttl_ms != 0) {
    if (o->registry_ttl_ms < TTL_MIN_MS || o->registry_ttl_ms > TTL_MAX_MS)
      return fail(err, errlen, "registry_ttl_ms option: %u is out of range; expected "
                  "an integer 30..86400000", (unsigned)o->registry_ttl_ms);
    cfg->registry_ttl_ms = o->registry_ttl_ms;
  } else if ((v = env("MSVC_REGISTRY_TTL_MS")) != NULL) {
    if (!parse_u64(v, TTL_MAX_MS, &n) || n < TTL_MIN_MS)
      return fail(err, errlen, "MSVC_REGISTRY_TTL_MS: \"%.64s\" is not a TTL; expected "
                  "an integer 30..86400000 (milliseconds)", v);
    cfg->registry_ttl_ms = (uint32_t)n;
  }
  return MSVC_OK;
}

static int load_lb_workers(msvc__svc_config_t *cfg, const msvc_service_opts_t *o,
                           char *err, size_t errlen) {
  const char *v;
  uint64_t n;

  cfg->lb_policy = MSVC_LB_ROUND_ROBIN;
  if (o->lb_policy != -1) {
    if (o->lb_policy < MSVC_LB_ROUND_ROBIN || o->lb_policy > MSVC_LB_P2C)
      return fail(err, errlen, "lb_policy option: %d is not a policy; expected "
                  "MSVC_LB_ROUND_ROBIN, MSVC_LB_LEAST_CONN, MSVC_LB_P2C or -1",
                  o->lb_policy);
    cfg->lb_policy = (msvc_lb_policy_t)o->lb_policy;
  } else if ((v = env("MSVC_LB")) != NULL) {
    if (msvc_lb_policy_parse(v, &cfg->lb_policy) != MSVC_OK)
      return fail(err, errlen, "MSVC_LB: \"%.64s\" is not a policy; expected "
                  "round_robin, least_conn or p2c", v);
  }
  cfg->workers = 1;
  if (o->workers != 0) {
    if (o->workers > WORKERS_MAX)
      return fail(err, errlen, "workers option: %u is out of range; expected an "
                  "integer 1..256 (or 0 for MSVC_WORKERS)", o->workers);
    cfg->workers = o->workers;
  } else if ((v = env("MSVC_WORKERS")) != NULL) {
    if (!parse_u64(v, WORKERS_MAX, &n) || n == 0)
      return fail(err, errlen, "MSVC_WORKERS: \"%.64s\" is not a worker count; "
                  "expected an integer 1..256", v);
    cfg->workers = (unsigned)n;
  }
  return MSVC_OK;
}

/* MSVC_HTTP2=0 turns HTTP/2 off on the service's listener, 1 on. */
static int load_http2(msvc__svc_config_t *cfg, char *err, size_t errlen) {
  const char *v = env("MSVC_HTTP2");

  if (v == NULL)
    return MSVC_OK;
  if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
    return fail(err, errlen, "MSVC_HTTP2: \"%.64s\" is not accepted; expected 0 or 1", v);
  cfg->server.http2 = v[0] == '1';
  return MSVC_OK;
}

static int load_instance(msvc__svc_config_t *cfg, const msvc_service_opts_t *o,
                         char *err, size_t errlen) {
  size_t i;

  if (o->version != NULL && strlen(o->version) > MSVC_REGISTRY_NAME_MAX)
    return fail(err, errlen, "version option: too long; expected at most 128 bytes");
  if (set_str(&cfg->version, o->version != NULL ? o->version : msvc_version_string()) !=
      MSVC_OK)
    return MSVC_ENOMEM;
  if (o->weight > MSVC_REGISTRY_WEIGHT_MAX)
    return fail(err, errlen, "weight option: %u is out of range; expected an integer "
                "1..1000000 (or 0 for 100)", (unsigned)o->weight);
  cfg->weight = o->weight != 0 ? o->weight : DEFAULT_WEIGHT;
  if (o->nmetadata > MSVC_REGISTRY_META_MAX || (o->nmetadata > 0 && o->metadata == NULL))
    return fail(err, errlen, "metadata option: %zu entries; expected at most 64, "
                "each with a non-empty key", o->nmetadata);
  if (o->nmetadata == 0) return MSVC_OK;
  cfg->metadata = msvc__calloc(o->nmetadata, sizeof(*cfg->metadata));
  if (cfg->metadata == NULL) return MSVC_ENOMEM;
  for (i = 0; i < o->nmetadata; i++) {
    const msvc_registry_meta_t *m = &o->metadata[i];
    if (m->key == NULL || m->key[0] == '\0' || m->value == NULL)
      return fail(err, errlen, "metadata option: entry %zu has no key or no value; "
                  "expected a non-empty key and a string value", i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(o->metadata[j].key, m->key) == 0)
        return fail(err, errlen, "metadata option: key \"%.64s\" appears twice; "
                    "expected each key once", m->key);
    cfg->nmetadata = i + 1;
    cfg->metadata[i].key = msvc__strdup(m->key);
    cfg->metadata[i].value = msvc__strdup(m->value);
    if (cfg->metadata[i].key == NULL || cfg->metadata[i].value == NULL)
      return MSVC_ENOMEM;
  }
  return MSVC_OK;
}

static void call_defaults(msvc__svc_config_t *cfg, const msvc_service_opts_t *o) {
  if (o->breaker != NULL) {
    cfg->breaker = *o->breaker;
  } else {
    msvc_breaker_opts_init(&cfg->breaker);
    cfg->breaker.window_type = MSVC_BREAKER_WINDOW_COUNT;
    cfg->breaker.window_calls = 20;
    cfg->breaker.minimum_calls = 10;
    cfg->breaker.failure_rate_threshold = 50.0;
    cfg->breaker.wait_in_open_ms = 5000;
    cfg->breaker.permitted_calls_in_half_open = 3;
  }
  if (o->retry != NULL) {
    /* A struct whose size was never filled in stays refused: the caller's
     * retry_new sees size 0 and answers MSVC_EINVAL. */
    msvc_retry_opts_init(&cfg->retry);
    if (!msvc__opts_copy(&cfg->retry, sizeof(cfg->retry), o->retry))
      cfg->retry.size = 0;
  } else {
    msvc_retry_opts_init(&cfg->retry);
    cfg->retry.max_attempts = 3;
    cfg->retry.budget_ratio = 0.1;
  }
  cfg->call_timeout_ms = o->call_timeout_ms != 0 ? o->call_timeout_ms
                                                 : DEFAULT_CALL_TIMEOUT_MS;
}

/* Whether some JWT setting is left to the environment. */
static bool jwt_env_used(const msvc_service_opts_t *o) {
  return (o->jwt_jwks_url == NULL && o->jwt_jwks_file == NULL) || o->jwt_issuer == NULL ||
         o->jwt_audience == NULL || o->jwt_leeway_s == -1 || o->jwt_require_exp == -1;
}

/* The fields win over MSVC_JWT_*; the key source (URL or file) is one
 * setting, so a field replaces whichever of the two variables is set. */
static int jwt_options(msvc__svc_config_t *cfg, const msvc_service_opts_t *o, char *err,
                       size_t errlen) {
  if (o->jwt_jwks_url != NULL && o->jwt_jwks_file != NULL)
    return fail(err, errlen, "jwt_jwks_url option: jwt_jwks_file is set too; set only "
                "one of them");
  if (o->jwt_jwks_url != NULL || o->jwt_jwks_file != NULL) {
    cfg->jwt.jwks_url = o->jwt_jwks_url;
    cfg->jwt.jwks_file = o->jwt_jwks_file;
    cfg->jwt_key_what = o->jwt_jwks_url != NULL ? "jwt_jwks_url option"
                                                : "jwt_jwks_file option";
  }
  /* The fetcher checks the rest of the URL (service.c names this field). */
  if (o->jwt_jwks_url != NULL && strncasecmp(o->jwt_jwks_url, "http://", 7) != 0 &&
      strncasecmp(o->jwt_jwks_url, "https://", 8) != 0)
    return fail(err, errlen, "jwt_jwks_url option: \"%.200s\" is not a URL; expected "
                "https://HOST[:PORT]/PATH or http://HOST[:PORT]/PATH", o->jwt_jwks_url);
  if (o->jwt_jwks_file != NULL && o->jwt_jwks_file[0] == '\0')
    return fail(err, errlen, "jwt_jwks_file option: empty; expected the path of a JWK "
                "Set file");
  if (o->jwt_issuer != NULL) {
    if (o->jwt_issuer[0] == '\0')
      return fail(err, errlen, "jwt_issuer option: empty; expected the exact 'iss' value "
                  "tokens must carry, or NULL");
    cfg->jwt.verify.issuer = o->jwt_issuer;
  }
  if (o->jwt_audience != NULL) {
    if (o->jwt_audience[0] == '\0')
      return fail(err, errlen, "jwt_audience option: empty; expected an audience "
                  "tokens' 'aud' must contain, or NULL");
    cfg->jwt.audience = o->jwt_audience;
  }
  if (o->jwt_leeway_s != -1) {
    if (o->jwt_leeway_s < 0 || o->jwt_leeway_s > 86400)
      return fail(err, errlen, "jwt_leeway_s option: %ld is out of range; expected "
                  "0..86400 seconds (or -1 for MSVC_JWT_LEEWAY_S)",
                  (long)o->jwt_leeway_s);
    cfg->jwt.verify.leeway_s = (uint32_t)o->jwt_leeway_s;
  }
  if (o->jwt_require_exp != -1) {
    if (o->jwt_require_exp != 0 && o->jwt_require_exp != 1)
      return fail(err, errlen, "jwt_require_exp option: %d; expected 1 (refuse tokens "
                  "without 'exp'), 0, or -1 for MSVC_JWT_REQUIRE_EXP", o->jwt_require_exp);
    cfg->jwt.verify.require_exp = o->jwt_require_exp == 1;
  }
  return MSVC_OK;
}

/* The strings msvc_mw_jwt_opts_env() sets point into the environment, and
 * the options' into the caller's memory: keep copies of our own. */
static int load_jwt(msvc__svc_config_t *cfg, const msvc_service_opts_t *o, char *err,
                    size_t errlen) {
  char why[512];
  int rc;

  msvc_mw_jwt_opts_init(&cfg->jwt);
  /* With the hook set, MSVC_JWT_JWKS_URL may name a service; the service
   * fetches through its caller (service.c), the hook is only checked here. */
  cfg->jwt.jwks_get = msvc__caller_jwks_get;
  cfg->jwt.jwks_get_cancel = msvc__caller_jwks_cancel;
  cfg->jwt_key_what = NULL;
  if (jwt_env_used(o)) {
    why[0] = '\0';
    rc = msvc_mw_jwt_opts_env(&cfg->jwt, why, sizeof(why));
    if (rc == MSVC_ENOMEM) return rc;
    if (rc != MSVC_OK)
      return fail(err, errlen, "%s", why[0] != '\0' ? why : "MSVC_JWT_*: bad value");
    if (cfg->jwt.jwks_url != NULL) cfg->jwt_key_what = "MSVC_JWT_JWKS_URL";
    if (cfg->jwt.jwks_file != NULL) cfg->jwt_key_what = "MSVC_JWT_JWKS_FILE";
  }
  if ((rc = jwt_options(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((cfg->jwt.jwks_file != NULL && set_str(&cfg->jwt_file, cfg->jwt.jwks_file) != 0) ||
      (cfg->jwt.jwks_url != NULL && set_str(&cfg->jwt_url, cfg->jwt.jwks_url) != 0) ||
      (cfg->jwt.verify.issuer != NULL &&
       set_str(&cfg->jwt_issuer, cfg->jwt.verify.issuer) != 0) ||
      (cfg->jwt.audience != NULL && set_str(&cfg->jwt_audience, cfg->jwt.audience) != 0))
    return MSVC_ENOMEM;
  cfg->jwt.jwks_file = cfg->jwt_file;
  cfg->jwt.jwks_url = cfg->jwt_url;
  cfg->jwt.verify.issuer = cfg->jwt_issuer;
  cfg->jwt.audience = cfg->jwt_audience;
  cfg->jwt.registry = cfg->metrics;
  cfg->jwt.jwks_get = NULL;
  cfg->jwt.jwks_get_cancel = NULL;
  cfg->jwt_enabled = cfg->jwt_file != NULL || cfg->jwt_url != NULL;
  return MSVC_OK;
}

/* One TLS setting and where it came from, for the messages. */
typedef struct tls_setting_s {
  const char *v;
  const char *what;
} tls_setting_t;

static tls_setting_t tls_one(const char *opt, const char *opt_what, const char *var) {
  tls_setting_t s = {opt, opt_what};

  if (opt == NULL) {
    s.v = env(var);
    s.what = var;
  }
  return s;
}

/* A certificate and its key come from the same layer. */
static void tls_pair(const char *oc, const char *ok, const char *oc_what,
                     const char *ok_what, const char *vc, const char *vk,
                     tls_setting_t *cert, tls_setting_t *key) {
  if (oc != NULL || ok != NULL) {
    *cert = (tls_setting_t){oc, oc_what};
    *key = (tls_setting_t){ok, ok_what};
  } else {
    *cert = tls_one(NULL, NULL, vc);
    *key = tls_one(NULL, NULL, vk);
  }
}

typedef struct tls_settings_s {
  tls_setting_t cert, key, ca, ccert, ckey, auth_name;
  msvc_tls_client_auth_t auth;
  bool auth_set; /* by the option or the variable, even to none */
} tls_settings_t;

static int tls_resolve(const msvc_service_opts_t *o, tls_settings_t *t, char *err,
                       size_t errlen) {
  const char *v;

  tls_pair(o->tls_cert_file, o->tls_key_file, "tls_cert_file option",
           "tls_key_file option", "MSVC_TLS_CERT", "MSVC_TLS_KEY", &t->cert, &t->key);
  tls_pair(o->tls_client_cert_file, o->tls_client_key_file,
           "tls_client_cert_file option", "tls_client_key_file option",
           "MSVC_TLS_CLIENT_CERT", "MSVC_TLS_CLIENT_KEY", &t->ccert, &t->ckey);
  t->ca = tls_one(o->tls_ca_file, "tls_ca_file option", "MSVC_TLS_CA");
  t->auth = MSVC_TLS_AUTH_NONE;
  t->auth_name = (tls_setting_t){NULL, "tls_client_auth option"};
  t->auth_set = o->tls_client_auth != -1 || env("MSVC_TLS_CLIENT_AUTH") != NULL;
  if (o->tls_client_auth != -1) {
    if (o->tls_client_auth < MSVC_TLS_AUTH_NONE || o->tls_client_auth > MSVC_TLS_AUTH_REQUIRE)
      return fail(err, errlen, "tls_client_auth option: %d is not a mode; expected "
                  "MSVC_TLS_AUTH_NONE, _OPTIONAL, _REQUIRE or -1", o->tls_client_auth);
    t->auth = (msvc_tls_client_auth_t)o->tls_client_auth;
  } else if ((v = env("MSVC_TLS_CLIENT_AUTH")) != NULL) {
    t->auth_name.what = "MSVC_TLS_CLIENT_AUTH";
    if (strcmp(v, "optional") == 0)
      t->auth = MSVC_TLS_AUTH_OPTIONAL;
    else if (strcmp(v, "require") == 0)
      t->auth = MSVC_TLS_AUTH_REQUIRE;
    else if (strcmp(v, "none") != 0)
      return fail(err, errlen, "MSVC_TLS_CLIENT_AUTH: \"%.64s\" is not a mode; expected "
                  "none, optional or require", v);
  }
  return MSVC_OK;
}

static int tls_check(const tls_settings_t *t, char *err, size_t errlen) {
  if (t->cert.v != NULL && t->key.v == NULL)
    return fail(err, errlen, "%s: required when %s is set", t->key.what, t->cert.what);
  if (t->key.v != NULL && t->cert.v == NULL)
    return fail(err, errlen, "%s: required when %s is set", t->cert.what, t->key.what);
  if (t->ccert.v != NULL && t->ckey.v == NULL)
    return fail(err, errlen, "%s: required when %s is set", t->ckey.what, t->ccert.what);
  if (t->ckey.v != NULL && t->ccert.v == NULL)
    return fail(err, errlen, "%s: required when %s is set", t->ccert.what, t->ckey.what);
  if (t->auth != MSVC_TLS_AUTH_NONE && t->ca.v == NULL)
    return fail(err, errlen, "%s: required when %s is optional or require", t->ca.what,
                t->auth_name.what);
  if (t->auth != MSVC_TLS_AUTH_NONE && t->cert.v == NULL)
    return fail(err, errlen, "%s: required when %s is optional or require", t->cert.what,
                t->auth_name.what);
  return MSVC_OK;
}

/* A file that cannot be read is configuration too: the TLS library's
 * reason already names the file, prefixed here with the setting. */
static int tls_build(msvc_tls_opts_t *o, const char *what, msvc_tls_config_t **out,
                     char *err, size_t errlen) {
  char why[384];
  int rc;

  why[0] = '\0';
  rc = msvc_tls_config_new(o, out, why, sizeof(why));
  if (rc == MSVC_ENOMEM) return rc;
  if (rc != MSVC_OK)
    return fail(err, errlen, "%s: %s", what, why[0] != '\0' ? why : msvc_strerror(rc));
  return MSVC_OK;
}

/* Both configurations are built here, while the strings are the ones
 * checked (they point into the environment or the caller's options). */
static int load_tls(msvc__svc_config_t *cfg, const msvc_service_opts_t *o, char *err,
                    size_t errlen) {
  msvc_tls_opts_t so, co;
  tls_settings_t t;
  char what[96];
  int rc;

  if ((rc = tls_resolve(o, &t, err, errlen)) != MSVC_OK) return rc;
  if (t.cert.v == NULL && t.key.v == NULL && t.ca.v == NULL && t.ccert.v == NULL &&
      t.ckey.v == NULL && !t.auth_set)
    return MSVC_OK;
  if ((rc = tls_check(&t, err, errlen)) != MSVC_OK) return rc;
  if (t.cert.v != NULL && cfg->nmetadata >= MSVC_REGISTRY_META_MAX) {
    size_t i;
    bool has_scheme = false;

    for (i = 0; i < cfg->nmetadata; i++)
      if (strcmp(cfg->metadata[i].key, "scheme") == 0) has_scheme = true;
    if (!has_scheme)
      return fail(err, errlen, "metadata option: %zu entries leave no room for "
                  "scheme=https (%s is set); expected at most 63", cfg->nmetadata,
                  t.cert.what);
  }
  msvc_tls_opts_init(&so, MSVC_TLS_SERVER);
  so.cert_file = t.cert.v;
  so.key_file = t.key.v;
  so.ca_file = t.ca.v;
  so.client_auth = t.auth;
  so.metrics = cfg->metrics;
  msvc_tls_opts_init(&co, MSVC_TLS_CLIENT);
  co.cert_file = t.ccert.v;
  co.key_file = t.ckey.v;
  co.ca_file = t.ca.v;
  co.metrics = cfg->metrics;
  snprintf(what, sizeof(what), "%s/%s", t.cert.what, t.key.what);
  if (t.cert.v != NULL &&
      (rc = tls_build(&so, what, &cfg->tls_server, err, errlen)) != MSVC_OK)
    return rc;
  if (t.ccert.v != NULL)
    snprintf(what, sizeof(what), "%s/%s", t.ccert.what, t.ca.what);
  else
    snprintf(what, sizeof(what), "%s", t.ca.what);
  return tls_build(&co, what, &cfg->tls_client, err, errlen);
}

/* Per setting, as for the others; the logger itself is process-wide. */
static int load_log(const msvc_service_opts_t *o, char *err, size_t errlen) {
  msvc_log_level_t level = msvc_log_get_level();
  const char *v;
  int format = -1;

  if (o->log_level != -1) {
    if (o->log_level < MSVC_LOG_TRACE || o->log_level > MSVC_LOG_OFF)
      return fail(err, errlen, "log_level option: %d is not a level; expected "
                  "MSVC_LOG_TRACE..MSVC_LOG_OFF or -1", o->log_level);
    level = (msvc_log_level_t)o->log_level;
  } else if ((v = env("MSVC_LOG_LEVEL")) != NULL &&
             msvc_log_level_parse(v, &level) != MSVC_OK) {
    return fail(err, errlen, "MSVC_LOG_LEVEL: bad value '%.64s' (accepted: trace, "
                "debug, info, warn, error, off)", v);
  }
  if (o->log_format != -1) {
    if (o->log_format != MSVC_LOG_FORMAT_TEXT && o->log_format != MSVC_LOG_FORMAT_JSON)
      return fail(err, errlen, "log_format option: %d is not a format; expected "
                  "MSVC_LOG_FORMAT_TEXT, MSVC_LOG_FORMAT_JSON or -1", o->log_format);
    format = o->log_format;
  } else if ((v = env("MSVC_LOG_FORMAT")) != NULL) {
    if (strcasecmp(v, "text") == 0)
      format = MSVC_LOG_FORMAT_TEXT;
    else if (strcasecmp(v, "json") == 0)
      format = MSVC_LOG_FORMAT_JSON;
    else
      return fail(err, errlen, "MSVC_LOG_FORMAT: bad value '%.64s' (accepted: text, "
                  "json)", v);
  }
  msvc_log_set_level(level);
  if (format != -1) msvc_log_set_format((msvc_log_format_t)format);
  return MSVC_OK;
}

/* MSVC_WORK_THREADS / MSVC_WORK_QUEUE: each loop's worker pool. */
static int load_work(msvc__svc_config_t *cfg, const msvc_service_opts_t *o, char *err,
                     size_t errlen) {
  const char *v;
  uint64_t n;

  cfg->work_threads = MSVC_WORK_DEFAULT_THREADS;
  cfg->work_queue = MSVC_WORK_DEFAULT_QUEUE;
  if (o->work_threads > 256)
    return fail(err, errlen, "work_threads option: %u is out of range; expected an "
                "integer 1..256 (or 0 for MSVC_WORK_THREADS)", o->work_threads);
  if (o->work_queue > 1000000)
    return fail(err, errlen, "work_queue option: %u is out of range; expected an "
                "integer 1..1000000 (or 0 for MSVC_WORK_QUEUE)", o->work_queue);
  if (o->work_threads != 0) {
    cfg->work_threads = o->work_threads;
  } else if ((v = env("MSVC_WORK_THREADS")) != NULL) {
    if (!parse_u64(v, 256, &n) || n == 0)
      return fail(err, errlen, "MSVC_WORK_THREADS: \"%.64s\" is not a thread count; "
                  "expected an integer 1..256", v);
    cfg->work_threads = (unsigned)n;
  }
  if (o->work_queue != 0) {
    cfg->work_queue = o->work_queue;
  } else if ((v = env("MSVC_WORK_QUEUE")) != NULL) {
    if (!parse_u64(v, 1000000, &n) || n == 0)
      return fail(err, errlen, "MSVC_WORK_QUEUE: \"%.64s\" is not a queue length; "
                  "expected an integer 1..1000000", v);
    cfg->work_queue = (unsigned)n;
  }
  return MSVC_OK;
}

/* MSVC_EVENTS: the event backend, unset for none. The handle itself is
 * made by create_parts(); only the scheme is checked here. */
static int load_events(msvc__svc_config_t *cfg, const msvc_service_opts_t *o, char *err,
                       size_t errlen) {
  const char *v = o->events_uri, *what = "events_uri option";

  if (v == NULL) {
    v = env("MSVC_EVENTS");
    what = "MSVC_EVENTS";
  }
  if (v == NULL)
    return MSVC_OK;
  if (strcmp(v, "memory://") != 0 &&
      (strncmp(v, "nats://", 7) != 0 || v[7] == '\0' || v[7] == ':' || v[7] == '/'))
    return fail(err, errlen, "%s: bad value '%.64s' (accepted: memory://, "
                "nats://host:port)", what, v);
  return set_str(&cfg->events_uri, v);
}

static int load_all(msvc__svc_config_t *cfg, const char *name,
                    const msvc_service_opts_t *o, char *err, size_t errlen) {
  const char *v;
  int rc;

  if ((rc = load_name(cfg, name, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_listen(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if (o->advertise != NULL)
    rc = parse_advertise(cfg, "advertise option", o->advertise, err, errlen);
  else if ((v = env("MSVC_ADVERTISE")) != NULL)
    rc = parse_advertise(cfg, "MSVC_ADVERTISE", v, err, errlen);
  if (rc != MSVC_OK) return rc;
  if ((rc = load_registry(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_lb_workers(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_instance(cfg, o, err, errlen)) != MSVC_OK) return rc;
  cfg->drain_timeout_ms = o->drain_timeout_ms != 0 ? o->drain_timeout_ms
                                                   : DEFAULT_DRAIN_MS;
  cfg->handle_signals = o->handle_signals;
  cfg->access_log = o->access_log;
  if (o->server != NULL)
    cfg->server = *o->server;
  else
    msvc_http_server_opts_init(&cfg->server);
  if ((rc = load_http2(cfg, err, errlen)) != MSVC_OK) return rc;
  cfg->metrics = o->metrics != NULL ? o->metrics : msvc_metrics_default_registry();
  call_defaults(cfg, o);
  if ((rc = load_work(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_events(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((rc = msvc__svc_limit_load(cfg, err, errlen)) != MSVC_OK) return rc;
  if ((rc = msvc__svc_trace_config(cfg, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_jwt(cfg, o, err, errlen)) != MSVC_OK) return rc;
  if ((rc = load_tls(cfg, o, err, errlen)) != MSVC_OK) return rc;
  /* Last: it changes the process-wide logger, and only when valid. */
  return load_log(o, err, errlen);
}

int msvc__svc_config_load(msvc__svc_config_t *cfg, const char *name,
                          const msvc_service_opts_t *opts, char *err, size_t errlen) {
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  if (err != NULL && errlen > 0) err[0] = '\0';
  rc = load_all(cfg, name, opts, err, errlen);
  if (rc != MSVC_OK) {
    if (rc == MSVC_ENOMEM && err != NULL && errlen > 0)
      snprintf(err, errlen, "out of memory while reading the configuration");
    msvc__svc_config_free(cfg);
  }
  return rc;
}

void msvc__svc_config_free(msvc__svc_config_t *cfg) {
  size_t i;

  msvc__free(cfg->name);
  msvc__free(cfg->host);
  msvc__free(cfg->advertise_host);
  msvc__free(cfg->registry_uri);
  msvc__free(cfg->events_uri);
  msvc__svc_trace_config_free(cfg);
  msvc__free(cfg->version);
  for (i = 0; i < cfg->nmetadata; i++) {
    msvc__free((char *)cfg->metadata[i].key);
    msvc__free((char *)cfg->metadata[i].value);
  }
  msvc__free(cfg->metadata);
  msvc__free(cfg->jwt_file);
  msvc__free(cfg->jwt_url);
  msvc__free(cfg->jwt_issuer);
  msvc__free(cfg->jwt_audience);
  msvc_tls_config_free(cfg->tls_server);
  msvc_tls_config_free(cfg->tls_client);
  memset(cfg, 0, sizeof(*cfg));
}

void msvc_service_opts_init(msvc_service_opts_t *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->port = -1;
  opts->lb_policy = -1;
  opts->drain_timeout_ms = DEFAULT_DRAIN_MS;
  opts->handle_signals = true;
  opts->access_log = true;
  opts->call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;
  opts->tls_client_auth = -1;
  opts->jwt_leeway_s = -1;
  opts->log_level = -1;
  opts->log_format = -1;
  opts->jwt_require_exp = -1;
}
