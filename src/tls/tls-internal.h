/* Internals of the TLS block. mbedtls types stay inside src/tls. */
#ifndef MSVC_TLS_INTERNAL_H
#define MSVC_TLS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <msvc/tls.h>

#include "msvc-internal.h"
#include "msvc-transport.h"

#define MSVC__TLS_SESSIONS 64

/* Everything read from the files: immutable once built, shared by every
 * connection that started with it, released by the last of them. */
typedef struct msvc__tls_material_s {
  atomic_int refs;
  mbedtls_ssl_config conf;
  /* A shallow copy of conf that differs only in its ALPN list (never freed
   * on its own): a client's offers h2 alone, a server's http/1.1 alone (a
   * server with HTTP/2 turned off). */
  mbedtls_ssl_config conf_alt;
  bool has_alt;
  mbedtls_x509_crt chain;
  mbedtls_pk_context key;
  mbedtls_x509_crt ca;
  bool has_chain;
  bool has_ca;
  int64_t expiry;
} msvc__tls_material_t;

/* A resumable session remembered per endpoint (client side). */
typedef struct msvc__tls_saved_s {
  char key[96];
  mbedtls_ssl_session sess;
  uint64_t used; /* for replacing the least recently used entry */
  bool valid;
} msvc__tls_saved_t;

typedef struct msvc__tls_metrics_s {
  void *ok, *resumed, *failed, *timeout; /* counters */
  void *duration;                        /* histogram */
  void *expiry;                          /* gauge */
} msvc__tls_metrics_t;

struct msvc_tls_config_s {
  atomic_int refs;
  msvc_tls_opts_t o; /* strings below are owned copies */
  pthread_mutex_t mu; /* guards cur, errmsg and the session table */
  msvc__tls_material_t *cur;
  char errmsg[256];
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_ssl_ticket_context ticket;
  mbedtls_ssl_cache_context cache;
  bool resumption;
  msvc__tls_saved_t *saved; /* client: MSVC__TLS_SESSIONS entries */
  uint64_t saved_clock;
  msvc__tls_metrics_t m;
};

/* config.c */
msvc__tls_material_t *msvc__tls_material_get(msvc_tls_config_t *cfg);
void msvc__tls_material_put(msvc__tls_material_t *m);
/* Writes "what: reason (mbedtls -0x....)" into err. */
void msvc__tls_fmt_err(char *err, size_t len, const char *what, int mbedtls_rc);
/* Client session cache, keyed by endpoint. */
void msvc__tls_session_save(msvc_tls_config_t *cfg, const char *key,
                            const mbedtls_ssl_context *ssl);
/* Offers the session saved for key; true when there was one. */
bool msvc__tls_session_load(msvc_tls_config_t *cfg, const char *key,
                            mbedtls_ssl_context *ssl);

/* metrics.c */
void msvc__tls_metrics_init(msvc_tls_config_t *cfg);
void msvc__tls_metrics_handshake(msvc_tls_config_t *cfg, int result, bool resumed,
                                 double seconds);
void msvc__tls_metrics_expiry(msvc_tls_config_t *cfg, int64_t expiry);

/* peer.c: the identity of a verified peer certificate, in the form the
 * transport interface hands to the HTTP code. */
typedef msvc__peer_identity_t msvc__tls_peer_t;

int msvc__tls_peer_load(msvc__tls_peer_t *p, const mbedtls_x509_crt *crt);
void msvc__tls_peer_free(msvc__tls_peer_t *p);
/* Whether crt carries the IP address ip (text form) among its names. */
bool msvc__tls_crt_has_ip(const mbedtls_x509_crt *crt, const char *ip);
/* Seconds since the epoch of an X.509 time. */
int64_t msvc__tls_time(const mbedtls_x509_time *t);

/* transport.c: the server's session store, wrapped to learn whether the
 * handshake in progress on this thread resumes a session (Mbed TLS has no
 * public accessor for that). Same contracts as mbedtls_ssl_ticket_parse,
 * mbedtls_ssl_cache_get and mbedtls_ssl_cache_set of the version built
 * against. */
int msvc__tls_ticket_parse(void *p_ticket, mbedtls_ssl_session *session,
                           unsigned char *buf, size_t len);
#if MBEDTLS_VERSION_NUMBER < 0x03000000
int msvc__tls_cache_get(void *data, mbedtls_ssl_session *session);
int msvc__tls_cache_set(void *data, const mbedtls_ssl_session *session);
#else
int msvc__tls_cache_get(void *data, unsigned char const *session_id,
                        size_t session_id_len, mbedtls_ssl_session *session);
int msvc__tls_cache_set(void *data, unsigned char const *session_id,
                        size_t session_id_len, const mbedtls_ssl_session *session);
#endif

#endif /* MSVC_TLS_INTERNAL_H */
