/*
 * TLS configurations: options, the material read from PEM files, reload,
 * the client's per-endpoint session table and the environment helper.
 *
 * A configuration is a stable handle; what changes on reload is the
 * material it points to. Each connection takes a reference on the material
 * current at its start, so a reload never pulls keys out from under a
 * handshake in progress, and the old material goes with its last user.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <msvc/log.h>

#include "tls/tls-internal.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif

/* ECDHE key exchange with an AEAD only: forward secrecy, no CBC. */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0};

static const char *alpn[] = {"http/1.1", NULL};
#ifdef MSVC_HAVE_NGHTTP2
/* A server offers HTTP/2 first; its HTTP code serves either. A client keeps
 * to HTTP/1.1: its pooled connections speak only that. */
static const char *alpn_server[] = {"h2", "http/1.1", NULL};
static const char *alpn_h2[] = {"h2", NULL};
static const char *alpn_h1[] = {"http/1.1", NULL};
#else
#define alpn_server alpn
#endif

void msvc__tls_fmt_err(char *err, size_t len, const char *what, int rc) {
  char reason[160];

  if (err == NULL || len == 0)
    return;
  /* No message is longer than the documented maximum, whatever the paths. */
  if (len > MSVC_ERRMSG_MAX)
    len = MSVC_ERRMSG_MAX;
  /* A long message is cut at len on purpose; the length is not needed. */
  if (rc == 0) {
    if (snprintf(err, len, "%s", what) < 0)
      err[0] = '\0';
    return;
  }
  mbedtls_strerror(rc, reason, sizeof(reason));
  if (snprintf(err, len, "%s: %s (mbedtls -0x%04x)", what, reason, (unsigned)-rc) < 0)
    err[0] = '\0';
}

void msvc_tls_opts_init(msvc_tls_opts_t *o, msvc_tls_role_t role) {
  if (o == NULL)
    return;
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->role = role;
  o->client_auth = MSVC_TLS_AUTH_NONE;
  o->handshake_timeout_ms = 10000;
  o->session_lifetime_s = 86400;
}

/* A precise reason for an unreadable file, before mbedtls reduces it to
 * "file read error". */
static int check_readable(const char *what, const char *path, char *err, size_t len) {
  FILE *f = fopen(path, "rb");

  if (f != NULL) {
    fclose(f);
    return 0;
  }
  if (err != NULL && len > 0)
    snprintf(err, len < MSVC_ERRMSG_MAX ? len : MSVC_ERRMSG_MAX, "%s %s: %s", what, path,
             strerror(errno));
  return MSVC_ETLS_FILE;
}

#if MBEDTLS_VERSION_NUMBER < 0x03000000
/* Mbed TLS 2.x computes a curve's table of multiples of its generator the
 * first time a key's group multiplies it, and keeps the table in that
 * group. The handshakes of one configuration may run on several threads
 * at once (worker loops, a server's worker pool), so the groups they share
 * (the own key's, and on a server the CA certificates a client certificate
 * is checked against) get their tables here, before any handshake: from
 * then on they are only read. Mbed TLS 3.x has static tables. */
static int warm_ec(msvc_tls_config_t *cfg, mbedtls_pk_context *pk) {
  mbedtls_ecp_keypair *kp;
  mbedtls_ecp_point r;
  mbedtls_mpi two;
  int rc;

  if (!mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY))
    return 0;
  kp = mbedtls_pk_ec(*pk);
  mbedtls_ecp_point_init(&r);
  mbedtls_mpi_init(&two);
  rc = mbedtls_mpi_lset(&two, 2);
  if (rc == 0)
    rc = mbedtls_ecp_mul(&kp->grp, &r, &two, &kp->grp.G, mbedtls_ctr_drbg_random, &cfg->drbg);
  mbedtls_mpi_free(&two);
  mbedtls_ecp_point_free(&r);
  return rc;
}
#endif

static int warm_keys(msvc_tls_config_t *cfg, msvc__tls_material_t *m, char *err,
                     size_t len) {
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  mbedtls_x509_crt *c;
  int rc = 0;

  if (m->has_chain)
    rc = warm_ec(cfg, &m->key);
  /* A server's CA list is the few issuers of its clients; a client's is
   * often the system bundle, whose curves would cost some 50 ms here, and
   * a client's handshakes run on its loop. */
  for (c = m->has_ca && cfg->o.role == MSVC_TLS_SERVER ? &m->ca : NULL;
       rc == 0 && c != NULL && c->version != 0; c = c->next)
    rc = warm_ec(cfg, &c->pk);
  if (rc != 0) {
    msvc__tls_fmt_err(err, len, "elliptic curve setup", rc);
    return rc == MBEDTLS_ERR_ECP_ALLOC_FAILED || rc == MBEDTLS_ERR_MPI_ALLOC_FAILED
               ? MSVC_ENOMEM
               : MSVC_ETLS;
  }
#else
  (void)cfg;
  (void)m;
  (void)err;
  (void)len;
#endif
  return 0;
}

static int load_own(msvc_tls_config_t *cfg, msvc__tls_material_t *m, char *err,
                    size_t len) {
  const msvc_tls_opts_t *o = &cfg->o;
  char what[600];
  int rc;

  if ((rc = check_readable("certificate", o->cert_file, err, len)) != 0 ||
      (rc = check_readable("key", o->key_file, err, len)) != 0)
    return rc;
  m->has_chain = true;
  rc = mbedtls_x509_crt_parse_file(&m->chain, o->cert_file);
  if (rc != 0) {
    snprintf(what, sizeof(what), "certificate %s", o->cert_file);
    msvc__tls_fmt_err(err, len, what, rc > 0 ? 0 : rc);
    return rc == MBEDTLS_ERR_X509_ALLOC_FAILED ? MSVC_ENOMEM : MSVC_ETLS_FILE;
  }
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  rc = mbedtls_pk_parse_keyfile(&m->key, o->key_file, o->key_password);
#else
  rc = mbedtls_pk_parse_keyfile(&m->key, o->key_file, o->key_password,
                                mbedtls_ctr_drbg_random, &cfg->drbg);
#endif
  if (rc != 0) {
    snprintf(what, sizeof(what), "key %s", o->key_file);
    msvc__tls_fmt_err(err, len, what, rc);
    return rc == MBEDTLS_ERR_PK_ALLOC_FAILED ? MSVC_ENOMEM : MSVC_ETLS_FILE;
  }
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  rc = mbedtls_pk_check_pair(&m->chain.pk, &m->key);
#else
  rc = mbedtls_pk_check_pair(&m->chain.pk, &m->key, mbedtls_ctr_drbg_random, &cfg->drbg);
#endif
  if (rc != 0) {
    snprintf(what, sizeof(what), "key %s does not match certificate %s",
             o->key_file, o->cert_file);
    msvc__tls_fmt_err(err, len, what, rc);
    return MSVC_ETLS_FILE;
  }
  m->expiry = msvc__tls_time(&m->chain.valid_to);
  rc = mbedtls_ssl_conf_own_cert(&m->conf, &m->chain, &m->key);
  if (rc != 0) {
    msvc__tls_fmt_err(err, len, "certificate setup", rc);
    return MSVC_ETLS;
  }
  return 0;
}

static int load_ca(msvc_tls_config_t *cfg, msvc__tls_material_t *m, char *err,
                   size_t len) {
  const char *path = cfg->o.ca_file;
  char what[600];
  int rc;

  if (path == NULL)
    path = MSVC_TLS_SYSTEM_CA;
  if ((rc = check_readable("CA bundle", path, err, len)) != 0)
    return rc;
  m->has_ca = true;
  rc = mbedtls_x509_crt_parse_file(&m->ca, path);
  /* A positive count means some certificates of a bundle were skipped
   * (system bundles carry a few mbedtls cannot parse): usable if any
   * certificate was loaded. */
  if (rc < 0 || m->ca.version == 0) {
    snprintf(what, sizeof(what), "CA bundle %s", path);
    msvc__tls_fmt_err(err, len, what, rc < 0 ? rc : 0);
    return rc == MBEDTLS_ERR_X509_ALLOC_FAILED ? MSVC_ENOMEM : MSVC_ETLS_FILE;
  }
  mbedtls_ssl_conf_ca_chain(&m->conf, &m->ca, NULL);
  return 0;
}

static void setup_policy(msvc_tls_config_t *cfg, msvc__tls_material_t *m) {
  const msvc_tls_opts_t *o = &cfg->o;
  int mode = MBEDTLS_SSL_VERIFY_REQUIRED;

  /* TLS 1.2 exactly: 3.x also offers 1.3, whose suites and resumption
   * this block does not configure. */
#if MBEDTLS_VERSION_NUMBER < 0x03000000
  mbedtls_ssl_conf_min_version(&m->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&m->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                               MBEDTLS_SSL_MINOR_VERSION_3);
#else
  mbedtls_ssl_conf_min_tls_version(&m->conf, MBEDTLS_SSL_VERSION_TLS1_2);
  mbedtls_ssl_conf_max_tls_version(&m->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
  mbedtls_ssl_conf_ciphersuites(&m->conf, suites);
  mbedtls_ssl_conf_rng(&m->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
  (void)mbedtls_ssl_conf_alpn_protocols(&m->conf,
                                         o->role == MSVC_TLS_SERVER ? alpn_server : alpn);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
  mbedtls_ssl_conf_renegotiation(&m->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
  if (o->role == MSVC_TLS_SERVER) {
    if (o->client_auth == MSVC_TLS_AUTH_NONE)
      mode = MBEDTLS_SSL_VERIFY_NONE;
    else if (o->client_auth == MSVC_TLS_AUTH_OPTIONAL)
      mode = MBEDTLS_SSL_VERIFY_OPTIONAL;
    if (cfg->resumption) {
      mbedtls_ssl_conf_session_tickets_cb(&m->conf, mbedtls_ssl_ticket_write,
                                          msvc__tls_ticket_parse, &cfg->ticket);
      mbedtls_ssl_conf_session_cache(&m->conf, &cfg->cache, msvc__tls_cache_get,
                                     msvc__tls_cache_set);
    }
  } else {
    mbedtls_ssl_conf_session_tickets(&m->conf, cfg->resumption
                                                   ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                   : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
  }
  mbedtls_ssl_conf_authmode(&m->conf, mode);
}

static void material_free(msvc__tls_material_t *m) {
  mbedtls_ssl_config_free(&m->conf);
  mbedtls_x509_crt_free(&m->chain);
  mbedtls_x509_crt_free(&m->ca);
  mbedtls_pk_free(&m->key);
  msvc__free(m);
}

static int material_build(msvc_tls_config_t *cfg, msvc__tls_material_t **out,
                          char *err, size_t len) {
  const msvc_tls_opts_t *o = &cfg->o;
  msvc__tls_material_t *m = msvc__calloc(1, sizeof(*m));
  bool server = o->role == MSVC_TLS_SERVER;
  int rc;

  *out = NULL;
  if (m == NULL)
    return MSVC_ENOMEM;
  atomic_init(&m->refs, 1);
  mbedtls_ssl_config_init(&m->conf);
  mbedtls_x509_crt_init(&m->chain);
  mbedtls_x509_crt_init(&m->ca);
  mbedtls_pk_init(&m->key);
  rc = mbedtls_ssl_config_defaults(&m->conf,
                                   server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                   MBEDTLS_SSL_TRANSPORT_STREAM,
                                   MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) {
    msvc__tls_fmt_err(err, len, "TLS defaults", rc);
    rc = MSVC_ETLS;
  }
  if (rc == 0)
    setup_policy(cfg, m);
  if (rc == 0 && o->cert_file != NULL)
    rc = load_own(cfg, m, err, len);
  if (rc == 0 && (!server || o->client_auth != MSVC_TLS_AUTH_NONE))
    rc = load_ca(cfg, m, err, len);
  if (rc == 0)
    rc = warm_keys(cfg, m, err, len);
  if (rc != 0) {
    material_free(m);
    return rc;
  }
#ifdef MSVC_HAVE_NGHTTP2
  m->conf_alt = m->conf;
  m->has_alt = mbedtls_ssl_conf_alpn_protocols(&m->conf_alt, server ? alpn_h1 : alpn_h2) == 0;
#endif
  *out = m;
  return 0;
}

msvc__tls_material_t *msvc__tls_material_get(msvc_tls_config_t *cfg) {
  msvc__tls_material_t *m;

  pthread_mutex_lock(&cfg->mu);
  m = cfg->cur;
  atomic_fetch_add(&m->refs, 1);
  pthread_mutex_unlock(&cfg->mu);
  return m;
}

void msvc__tls_material_put(msvc__tls_material_t *m) {
  if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1)
    material_free(m);
}

static bool opts_valid(const msvc_tls_opts_t *o, char *err, size_t len) {
  const char *why = NULL;

  if (o->size < sizeof(*o))
    why = "options: size field not set (use msvc_tls_opts_init)";
  else if (o->role != MSVC_TLS_SERVER && o->role != MSVC_TLS_CLIENT)
    why = "options: unknown role";
  else if ((unsigned)o->client_auth > MSVC_TLS_AUTH_REQUIRE)
    why = "options: unknown client_auth";
  else if (o->role == MSVC_TLS_SERVER && o->cert_file == NULL)
    why = "options: a server needs cert_file";
  else if ((o->cert_file == NULL) != (o->key_file == NULL))
    why = "options: cert_file and key_file go together";
  else if (o->role == MSVC_TLS_SERVER && o->client_auth != MSVC_TLS_AUTH_NONE &&
           o->ca_file == NULL)
    why = "options: client_auth needs ca_file";
  else if (o->handshake_timeout_ms == 0)
    why = "options: handshake_timeout_ms must be positive";
  if (why != NULL && err != NULL && len > 0)
    snprintf(err, len, "%s", why);
  return why == NULL;
}

static int copy_opts(msvc_tls_config_t *cfg, const msvc_tls_opts_t *o) {
  const char **dst[] = {&cfg->o.cert_file, &cfg->o.key_file, &cfg->o.key_password,
                        &cfg->o.ca_file, &cfg->o.server_name};
  size_t i;

  cfg->o = *o;
  for (i = 0; i < sizeof(dst) / sizeof(dst[0]); i++) {
    if (*dst[i] != NULL && (*dst[i] = msvc__strdup(*dst[i])) == NULL)
      return MSVC_ENOMEM;
  }
  return 0;
}

static void config_destroy(msvc_tls_config_t *cfg) {
  size_t i;

  msvc__tls_material_put(cfg->cur);
  if (cfg->saved != NULL) {
    for (i = 0; i < MSVC__TLS_SESSIONS; i++)
      mbedtls_ssl_session_free(&cfg->saved[i].sess);
    msvc__free(cfg->saved);
  }
  mbedtls_ssl_ticket_free(&cfg->ticket);
  mbedtls_ssl_cache_free(&cfg->cache);
  mbedtls_ctr_drbg_free(&cfg->drbg);
  mbedtls_entropy_free(&cfg->entropy);
  pthread_mutex_destroy(&cfg->mu);
  msvc__free((char *)cfg->o.cert_file);
  msvc__free((char *)cfg->o.key_file);
  msvc__free((char *)cfg->o.key_password);
  msvc__free((char *)cfg->o.ca_file);
  msvc__free((char *)cfg->o.server_name);
  msvc__free(cfg);
}

static int setup_rng(msvc_tls_config_t *cfg, char *err, size_t len) {
  static const unsigned char pers[] = "libmsvc tls";
  int rc;
  size_t i;

  rc = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
                             pers, sizeof(pers) - 1);
  if (rc == 0 && cfg->resumption && cfg->o.role == MSVC_TLS_SERVER)
    rc = mbedtls_ssl_ticket_setup(&cfg->ticket, mbedtls_ctr_drbg_random, &cfg->drbg,
                                  MBEDTLS_CIPHER_AES_256_GCM, cfg->o.session_lifetime_s);
  if (rc != 0) {
    msvc__tls_fmt_err(err, len, "random generator", rc);
    return MSVC_ETLS;
  }
  mbedtls_ssl_cache_set_timeout(&cfg->cache, (int)cfg->o.session_lifetime_s);
  if (cfg->resumption && cfg->o.role == MSVC_TLS_CLIENT) {
    cfg->saved = msvc__calloc(MSVC__TLS_SESSIONS, sizeof(*cfg->saved));
    if (cfg->saved == NULL)
      return MSVC_ENOMEM;
    for (i = 0; i < MSVC__TLS_SESSIONS; i++)
      mbedtls_ssl_session_init(&cfg->saved[i].sess);
  }
  return 0;
}

int msvc_tls_config_new(const msvc_tls_opts_t *opts, msvc_tls_config_t **out,
                        char *err, size_t len) {
  msvc_tls_config_t *cfg;
  int rc;

  if (err != NULL && len > 0)
    err[0] = '\0';
  if (out != NULL)
    *out = NULL;
  if (opts == NULL || out == NULL) {
    msvc__tls_fmt_err(err, len, "options: NULL argument", 0);
    return MSVC_EINVAL;
  }
  if (!opts_valid(opts, err, len))
    return MSVC_EINVAL;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
  /* 3.x runs parts of TLS on PSA, which must be up first (idempotent). */
  if (psa_crypto_init() != PSA_SUCCESS) {
    msvc__tls_fmt_err(err, len, "PSA crypto initialisation", 0);
    return MSVC_ETLS;
  }
#endif
  cfg = msvc__calloc(1, sizeof(*cfg));
  if (cfg == NULL)
    return MSVC_ENOMEM;
  atomic_init(&cfg->refs, 1);
  pthread_mutex_init(&cfg->mu, NULL);
  mbedtls_entropy_init(&cfg->entropy);
  mbedtls_ctr_drbg_init(&cfg->drbg);
  mbedtls_ssl_ticket_init(&cfg->ticket);
  mbedtls_ssl_cache_init(&cfg->cache);
  rc = copy_opts(cfg, opts);
  cfg->resumption = opts->session_lifetime_s > 0;
  if (rc == 0)
    rc = setup_rng(cfg, err, len);
  if (rc == 0)
    rc = material_build(cfg, &cfg->cur, err, len);
  if (rc != 0) {
    if (rc == MSVC_ENOMEM)
      msvc__tls_fmt_err(err, len, "out of memory", 0);
    config_destroy(cfg);
    return rc;
  }
  msvc__tls_metrics_init(cfg);
  msvc__tls_metrics_expiry(cfg, cfg->cur->expiry);
  *out = cfg;
  return MSVC_OK;
}

int msvc__tls_default_client(msvc_tls_config_t **out) {
  msvc_tls_opts_t o;

  msvc_tls_opts_init(&o, MSVC_TLS_CLIENT);
  return msvc_tls_config_new(&o, out, NULL, 0);
}

msvc_tls_config_t *msvc_tls_config_ref(msvc_tls_config_t *cfg) {
  if (cfg != NULL)
    atomic_fetch_add(&cfg->refs, 1);
  return cfg;
}

void msvc_tls_config_free(msvc_tls_config_t *cfg) {
  if (cfg != NULL && atomic_fetch_sub(&cfg->refs, 1) == 1)
    config_destroy(cfg);
}

int msvc_tls_config_reload(msvc_tls_config_t *cfg, char *err, size_t len) {
  msvc__tls_material_t *m, *old;
  char why[256];
  int rc;

  if (cfg == NULL)
    return MSVC_EINVAL;
  why[0] = '\0';
  rc = material_build(cfg, &m, why, sizeof(why));
  pthread_mutex_lock(&cfg->mu);
  if (rc == 0) {
    old = cfg->cur;
    cfg->cur = m;
    cfg->errmsg[0] = '\0';
  } else {
    old = NULL;
    snprintf(cfg->errmsg, sizeof(cfg->errmsg), "%s", why);
  }
  pthread_mutex_unlock(&cfg->mu);
  if (rc != 0)
    MSVC_LOG_W("tls", "reload failed, keeping the current certificates: %s", why);
  msvc__tls_material_put(old);
  if (err != NULL && len > 0)
    snprintf(err, len, "%s", why);
  if (rc == 0)
    msvc__tls_metrics_expiry(cfg, m->expiry);
  return rc;
}

const char *msvc_tls_config_errmsg(const msvc_tls_config_t *cfg) {
  return cfg != NULL ? cfg->errmsg : "";
}

int64_t msvc_tls_config_expiry(const msvc_tls_config_t *cfg) {
  msvc_tls_config_t *c = (msvc_tls_config_t *)cfg;
  int64_t v;

  if (c == NULL)
    return 0;
  pthread_mutex_lock(&c->mu);
  v = c->cur->expiry;
  pthread_mutex_unlock(&c->mu);
  return v;
}

static msvc__tls_saved_t *saved_find(msvc_tls_config_t *cfg, const char *key) {
  size_t i;

  for (i = 0; i < MSVC__TLS_SESSIONS; i++) {
    if (cfg->saved[i].valid && strcmp(cfg->saved[i].key, key) == 0)
      return &cfg->saved[i];
  }
  return NULL;
}

void msvc__tls_session_save(msvc_tls_config_t *cfg, const char *key,
                            const mbedtls_ssl_context *ssl) {
  msvc__tls_saved_t *s;
  size_t i;

  if (cfg->saved == NULL || strlen(key) >= sizeof(s->key))
    return;
  pthread_mutex_lock(&cfg->mu);
  s = saved_find(cfg, key);
  if (s == NULL) {
    /* A free entry, else the least recently used one. */
    s = &cfg->saved[0];
    for (i = 0; i < MSVC__TLS_SESSIONS && s->valid; i++) {
      if (!cfg->saved[i].valid || cfg->saved[i].used < s->used)
        s = &cfg->saved[i];
    }
  }
  mbedtls_ssl_session_free(&s->sess);
  mbedtls_ssl_session_init(&s->sess);
  s->valid = mbedtls_ssl_get_session(ssl, &s->sess) == 0;
  snprintf(s->key, sizeof(s->key), "%s", key);
  s->used = ++cfg->saved_clock;
  pthread_mutex_unlock(&cfg->mu);
}

bool msvc__tls_session_load(msvc_tls_config_t *cfg, const char *key,
                            mbedtls_ssl_context *ssl) {
  msvc__tls_saved_t *s;
  bool offered = false;

  if (cfg->saved == NULL)
    return false;
  pthread_mutex_lock(&cfg->mu);
  s = saved_find(cfg, key);
  if (s != NULL) {
    offered = mbedtls_ssl_set_session(ssl, &s->sess) == 0;
    s->used = ++cfg->saved_clock;
  }
  pthread_mutex_unlock(&cfg->mu);
  return offered;
}

int msvc__tls_config_role(const msvc_tls_config_t *cfg) {
  return cfg->o.role;
}
