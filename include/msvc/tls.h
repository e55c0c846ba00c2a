/**
 * @file tls.h
 * @brief TLS and mutual TLS for the HTTP server and client.
 *
 * A TLS configuration holds certificates, keys, trusted CAs and the
 * protocol policy (TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305, ALPN
 * `http/1.1`). It is built once from PEM files, is immutable afterwards
 * except for msvc_tls_config_reload(), and is shared by reference between
 * servers, clients and threads. Give it to a server with
 * msvc_http_server_set_tls() and to a client with msvc_http_client_set_tls().
 *
 * A request served over TLS exposes the verified identity of its client
 * (subject, DNS and URI names such as `spiffe://` identities) through the
 * msvc_tls_req_peer_*() functions, so a route can authorise by caller.
 */
#ifndef MSVC_TLS_H
#define MSVC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msvc/common.h>
#include <msvc/error.h>
#include <msvc/http.h>

#ifdef __cplusplus
extern "C" {
#endif

struct msvc_metrics_registry_s;

/** @brief A TLS configuration: reference counted, thread-safe. */
typedef struct msvc_tls_config_s msvc_tls_config_t;

/** @brief Which end of a connection a configuration is for. */
typedef enum msvc_tls_role_e {
  MSVC_TLS_SERVER = 0, /**< Accepts connections (presents cert_file). */
  MSVC_TLS_CLIENT = 1  /**< Makes connections (verifies the server). */
} msvc_tls_role_t;

/** @brief Whether a server asks its clients for a certificate. */
typedef enum msvc_tls_client_auth_e {
  MSVC_TLS_AUTH_NONE = 0,     /**< Never asked. */
  MSVC_TLS_AUTH_OPTIONAL = 1, /**< Asked; a client without one is served,
                                   a client with an invalid one refused. */
  MSVC_TLS_AUTH_REQUIRE = 2   /**< A valid certificate is required (mTLS). */
} msvc_tls_client_auth_t;

/** @brief The system CA bundle of Debian's ca-certificates package. */
#define MSVC_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

/** @brief Options of a configuration; fill with msvc_tls_opts_init(). */
typedef struct msvc_tls_opts_s {
  /** sizeof(msvc_tls_opts_t). */
  size_t size;
  /** Server or client (set by msvc_tls_opts_init()). */
  msvc_tls_role_t role;
  /** PEM certificate chain, leaf first. Required for a server; for a
   *  client, the certificate it presents (mutual TLS); NULL for none. */
  const char *cert_file;
  /** PEM private key of cert_file (required with cert_file). */
  const char *key_file;
  /** Password of an encrypted key_file; NULL for none. */
  const char *key_password;
  /** PEM CA bundle. A client verifies servers against it (default
   *  #MSVC_TLS_SYSTEM_CA); a server verifies client certificates against it
   *  (required unless client_auth is #MSVC_TLS_AUTH_NONE). */
  const char *ca_file;
  /** Server: client certificates (default #MSVC_TLS_AUTH_NONE). */
  msvc_tls_client_auth_t client_auth;
  /** Client: the name the server's certificate must carry and sent as
   *  SNI, for every endpoint; NULL (the default) uses each endpoint's host
   *  name, or its address for an IP endpoint (checked against the
   *  certificate's IP address names). */
  const char *server_name;
  /** Longest time a handshake may take (default 10000 ms). */
  uint32_t handshake_timeout_ms;
  /** Server: lifetime of session tickets in seconds (default 86400); 0
   *  disables tickets and the session cache. Client: 0 disables session
   *  resumption, any other value enables it (one session per endpoint). */
  uint32_t session_lifetime_s;
  /** Registry for the `msvc_tls_*` metrics; NULL (the default) for none.
   *  Borrowed: it must outlive the configuration. */
  struct msvc_metrics_registry_s *metrics;
} msvc_tls_opts_t;

/**
 * @brief Fills opts with the defaults documented on each field.
 * @param opts  Options to fill; NULL is a no-op.
 * @param role  #MSVC_TLS_SERVER or #MSVC_TLS_CLIENT.
 * @since 0.1
 */
MSVC_API void msvc_tls_opts_init(msvc_tls_opts_t *opts, msvc_tls_role_t role);

/**
 * @brief Builds a configuration from PEM files.
 * @param opts    Options; strings are copied (file names are kept for
 *                msvc_tls_config_reload()).
 * @param out     Receives the configuration (one reference); release it
 *                with msvc_tls_config_free().
 * @param err     Receives a one-line explanation on failure (file name and
 *                the TLS library's reason); may be NULL.
 * @param errlen  Size of err.
 * @return #MSVC_OK; MSVC_EINVAL (NULL arguments, a missing required file
 *         name, a bad enum value); MSVC_ETLS_FILE (a file that cannot be
 *         read or parsed, a key that does not match its certificate);
 *         MSVC_ETLS (the TLS library refused the setup); MSVC_ENOMEM.
 * @note Thread-safe. Reads the files synchronously.
 * @since 0.1
 */
MSVC_API int msvc_tls_config_new(const msvc_tls_opts_t *opts, msvc_tls_config_t **out,
                                 char *err, size_t errlen);

/**
 * @brief Takes another reference.
 * @param cfg  The configuration; NULL is allowed.
 * @return cfg.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API msvc_tls_config_t *msvc_tls_config_ref(msvc_tls_config_t *cfg);

/**
 * @brief Drops a reference; the last one frees the configuration.
 *
 * Servers, clients and open connections hold references of their own, so
 * a configuration may be released as soon as it has been handed over.
 * @param cfg  The configuration; NULL is a no-op.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API void msvc_tls_config_free(msvc_tls_config_t *cfg);

/**
 * @brief Reads the configuration's files again.
 *
 * Connections that start afterwards use the new material; open ones keep
 * the material they started with. On failure the old material stays in
 * use, and the reason is kept for msvc_tls_config_errmsg().
 * @param cfg     The configuration.
 * @param err     Receives the reason on failure; may be NULL.
 * @param errlen  Size of err.
 * @return #MSVC_OK, or the codes of msvc_tls_config_new().
 * @note Thread-safe: it may be called from a signal-handling loop while
 *       other threads accept connections.
 * @since 0.1
 */
MSVC_API int msvc_tls_config_reload(msvc_tls_config_t *cfg, char *err, size_t errlen);

/**
 * @brief The reason of the last failed reload, or "" when the last reload
 *        (or the creation) succeeded.
 * @param cfg  The configuration.
 * @return A string borrowed until the next reload of cfg.
 * @since 0.1
 */
MSVC_API const char *msvc_tls_config_errmsg(const msvc_tls_config_t *cfg);

/**
 * @brief Expiry of the configuration's own certificate (the first one of
 *        cert_file).
 * @param cfg  The configuration.
 * @return Seconds since the Unix epoch, or 0 when it has no certificate.
 * @note Thread-safe.
 * @since 0.1
 */
MSVC_API int64_t msvc_tls_config_expiry(const msvc_tls_config_t *cfg);

/**
 * @brief Fills server and client options from the environment
 *        (`MSVC_TLS_CERT`, `MSVC_TLS_KEY`, `MSVC_TLS_CA`,
 *        `MSVC_TLS_CLIENT_AUTH`, `MSVC_TLS_CLIENT_CERT`,
 *        `MSVC_TLS_CLIENT_KEY`).
 *
 * Both option structs are first reset with msvc_tls_opts_init(). The
 * server side is enabled when `MSVC_TLS_CERT` is set; the CA bundle serves
 * both sides; the client certificate is presented on outgoing calls.
 * @param server   Receives the server options; may be NULL.
 * @param client   Receives the client options; may be NULL.
 * @param enabled  Receives whether the server should listen with TLS; may
 *                 be NULL.
 * @param err      Receives one line naming the bad variable and the
 *                 accepted values; may be NULL.
 * @param errlen   Size of err.
 * @return #MSVC_OK, or MSVC_EINVAL for a bad combination or value (a
 *         certificate without its key, an unknown client-auth mode, client
 *         authentication without a CA bundle).
 * @note The strings stored in the options point into the environment:
 *       build the configurations before the environment changes.
 * @since 0.1
 */
MSVC_API int msvc_tls_opts_env(msvc_tls_opts_t *server, msvc_tls_opts_t *client,
                               bool *enabled, char *err, size_t errlen);

/** @brief Kinds of subject alternative names of a peer certificate. */
typedef enum msvc_tls_san_e {
  MSVC_TLS_SAN_DNS = 0, /**< dNSName. */
  MSVC_TLS_SAN_URI = 1, /**< uniformResourceIdentifier (e.g. spiffe://...). */
  MSVC_TLS_SAN_IP = 2   /**< iPAddress, in text form. */
} msvc_tls_san_t;

/**
 * @brief Whether the request came over TLS.
 * @param req  The request.
 * @return true over TLS.
 * @since 0.1
 */
MSVC_API bool msvc_tls_req_secure(const msvc_http_req_t *req);

/**
 * @brief Subject of the client's verified certificate.
 * @param req  The request.
 * @return The distinguished name ("CN=client, O=Example"), or NULL when the
 *         request is not over TLS, the client sent no certificate, or its
 *         connection is gone. Borrowed until the request is finished.
 * @since 0.1
 */
MSVC_API const char *msvc_tls_req_peer_subject(const msvc_http_req_t *req);

/**
 * @brief One subject alternative name of the client's verified certificate.
 * @param req   The request.
 * @param kind  #MSVC_TLS_SAN_DNS, #MSVC_TLS_SAN_URI or #MSVC_TLS_SAN_IP.
 * @param i     Index among the names of that kind, from 0.
 * @return The name, or NULL past the last one (and in the cases of
 *         msvc_tls_req_peer_subject()). Borrowed until the request is
 *         finished.
 * @since 0.1
 */
MSVC_API const char *msvc_tls_req_peer_san(const msvc_http_req_t *req,
                                           msvc_tls_san_t kind, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* MSVC_TLS_H */
