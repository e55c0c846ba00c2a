/*
 * Bytes from a client into the server's TLS + HTTP path over the in-memory
 * transport: what is exercised is the glue between mbedtls and the HTTP
 * connection (buffering, records split across reads, back-pressure,
 * close_notify, errors), not mbedtls's own parsers.
 *
 * Input: the first byte picks the mode and how bytes are cut into reads.
 *   bit 7 clear: the rest is plaintext HTTP sent by an in-process TLS client
 *                after a real handshake (resumed after the first run, so
 *                most runs skip the public-key operations);
 *   bit 7 set:   the rest is sent as raw bytes straight to the TLS server.
 *   bits 0-5:    read size (1 to 63 bytes; 0 sends everything at once).
 *   bit 6:       the client sends close_notify at the end instead of EOF.
 *
 * The server certificate below is a self-signed test certificate made for
 * this target only; it protects nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <msvc/http.h>
#include <msvc/tls.h>

#include "http/attach.h"
#include "http/transport_mem.h"
#include "msvc-transport.h"

static const char cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBnTCCAUSgAwIBAgIUdcvZ7f+U1BiqirrmI+2YjEXBajAwCgYIKoZIzj0EAwIw\n"
    "FzEVMBMGA1UEAwwMZnV6ei5leGFtcGxlMCAXDTI2MTEyNjA2MDcwMVoYDzIxMjYx\n"
    "MTAyMDYwNzAxWjAXMRUwEwYDVQQDDAxmdXp6LmV4YW1wbGUwWTATBgcqhkjOPQIB\n"
    "BggqhkjOPQMBBwNCAATnskKvFeHKtduE2eduvKb7UgDeMx/cJLgILgaHApF++XCa\n"
    "sgCzLTPdWUtUj/DFq+jkekBTV1tt/39cVESD1vlzo2wwajAdBgNVHQ4EFgQUsmC0\n"
    "fBPfpWYSURR+3I6Xw0DbG5UwHwYDVR0jBBgwFoAUsmC0fBPfpWYSURR+3I6Xw0Db\n"
    "G5UwDwYDVR0TAQH/BAUwAwEB/zAXBgNVHREEEDAOggxmdXp6LmV4YW1wbGUwCgYI\n"
    "KoZIzj0EAwIDRwAwRAIgA5FM91M+9fKzo49EgOO8M0wKAtaX9SWY3cR2br1LNtAC\n"
    "ICNCT6c8YhTwTsINbE6KYDGQ9150ibNDOmGViysvuq5B\n"
    "-----END CERTIFICATE-----\n";

static const char key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg72uoIcy03HStKi0p\n"
    "q9cx2OwbVnVnKZbC182YAwMXvROhRANCAATnskKvFeHKtduE2eduvKb7UgDeMx/c\n"
    "JLgILgaHApF++XCasgCzLTPdWUtUj/DFq+jkekBTV1tt/39cVESD1vlz\n"
    "-----END PRIVATE KEY-----\n";

static msvc_tls_config_t *server_cfg;
static mbedtls_ssl_config client_conf;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_ssl_session saved;
static int have_saved;

static void h_text(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *subject = msvc_tls_req_peer_subject(req);
  (void)data;
  (void)msvc_tls_req_secure(req);
  msvc_http_res_send(res, 200, "text/plain", subject != NULL ? subject : "hello", 5);
}

static void h_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *body = msvc_http_req_body(req, &len);
  (void)data;
  msvc_http_res_start(res, 200, NULL);
  msvc_http_res_write(res, body, len);
  msvc_http_res_end(res);
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return -1;
  fputs(text, f);
  return fclose(f);
}

static int init_once(void) {
  char crt[64], key[64];
  msvc_tls_opts_t o;
  int rc;

  if (server_cfg != NULL)
    return 0;
  snprintf(crt, sizeof(crt), "/tmp/msvc-fuzz-tls-%d.crt", (int)getpid());
  snprintf(key, sizeof(key), "/tmp/msvc-fuzz-tls-%d.key", (int)getpid());
  if (write_file(crt, cert_pem) != 0 || write_file(key, key_pem) != 0)
    return -1;
  msvc_tls_opts_init(&o, MSVC_TLS_SERVER);
  o.cert_file = crt;
  o.key_file = key;
  o.handshake_timeout_ms = 1000;
  rc = msvc_tls_config_new(&o, &server_cfg, NULL, 0);
  unlink(crt);
  unlink(key);
  if (rc != 0)
    return -1;
  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);
  mbedtls_ssl_config_init(&client_conf);
  mbedtls_ssl_session_init(&saved);
  if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0 ||
      mbedtls_ssl_config_defaults(&client_conf, MBEDTLS_SSL_IS_CLIENT,
                                  MBEDTLS_SSL_TRANSPORT_STREAM,
                                  MBEDTLS_SSL_PRESET_DEFAULT) != 0)
    return -1;
  /* The server's certificate checks are not what this target tests. */
  mbedtls_ssl_conf_authmode(&client_conf, MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_rng(&client_conf, mbedtls_ctr_drbg_random, &drbg);
  return 0;
}

/* The in-process client: what it sends waits in `out` until the driver
 * pushes it; it reads the server's output from `seen` on. */
typedef struct client_s {
  msvc__transport_t *tr;
  unsigned char out[1 << 16];
  size_t out_len;
  size_t seen;
} client_t;

static int c_send(void *ctx, const unsigned char *buf, size_t len) {
  client_t *c = ctx;
  if (len > sizeof(c->out) - c->out_len)
    len = sizeof(c->out) - c->out_len;
  if (len == 0)
    return MBEDTLS_ERR_SSL_WANT_WRITE;
  memcpy(c->out + c->out_len, buf, len);
  c->out_len += len;
  return (int)len;
}

static int c_recv(void *ctx, unsigned char *buf, size_t len) {
  client_t *c = ctx;
  size_t total, n;
  const char *all = msvc__mem_transport_output(c->tr, &total);

  if (c->seen >= total)
    return MBEDTLS_ERR_SSL_WANT_READ;
  n = total - c->seen < len ? total - c->seen : len;
  memcpy(buf, all + c->seen, n);
  c->seen += n;
  return (int)n;
}

/* Pushes what the client has queued, step bytes per read. */
static int pump(uv_loop_t *loop, msvc_http_server_t *srv, client_t *c, size_t step) {
  size_t pos = 0;
  int stalls = 0;

  while (pos < c->out_len && stalls < 4 && msvc_http_server_connections(srv) > 0) {
    size_t n = c->out_len - pos < step ? c->out_len - pos : step;
    if (msvc__mem_transport_push(c->tr, (const char *)c->out + pos, n)) {
      pos += n;
      stalls = 0;
    } else {
      stalls++;
    }
    uv_run(loop, UV_RUN_NOWAIT);
  }
  c->out_len = 0;
  uv_run(loop, UV_RUN_NOWAIT);
  return msvc_http_server_connections(srv) > 0 ? 0 : -1;
}

static void run_client(uv_loop_t *loop, msvc_http_server_t *srv, client_t *c,
                       const uint8_t *data, size_t size, size_t step, int notify) {
  mbedtls_ssl_context ssl;
  unsigned char buf[4096];
  int rc, i;

  mbedtls_ssl_init(&ssl);
  if (mbedtls_ssl_setup(&ssl, &client_conf) != 0)
    goto out;
  mbedtls_ssl_set_bio(&ssl, c, c_send, c_recv, NULL);
  if (have_saved)
    (void)mbedtls_ssl_set_session(&ssl, &saved);
  for (i = 0; i < 64; i++) {
    rc = mbedtls_ssl_handshake(&ssl);
    if (pump(loop, srv, c, step) != 0 || (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != 0))
      goto out;
    if (rc == 0)
      break;
  }
  if (rc != 0)
    goto out;
  if (!have_saved && mbedtls_ssl_get_session(&ssl, &saved) == 0)
    have_saved = 1;
  while (size > 0) {
    rc = mbedtls_ssl_write(&ssl, data, size);
    if (rc <= 0)
      break;
    data += rc;
    size -= (size_t)rc;
    if (pump(loop, srv, c, step) != 0)
      goto out;
    while (mbedtls_ssl_read(&ssl, buf, sizeof(buf)) > 0)
      ;
  }
  if (notify) {
    (void)mbedtls_ssl_close_notify(&ssl);
    (void)pump(loop, srv, c, step);
  }
out:
  mbedtls_ssl_free(&ssl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uv_loop_t loop;
  msvc_http_server_t *srv;
  msvc__transport_t *mem, *tls;
  client_t *c;
  size_t step;
  int mode;

  if (size < 1 || init_once() != 0)
    return 0;
  mode = data[0];
  step = (mode & 0x3f) == 0 ? (size_t)-1 : (size_t)(mode & 0x3f);
  data++;
  size--;
  if (uv_loop_init(&loop) != 0)
    return 0;
  if (msvc_http_server_new(&loop, NULL, &srv) != MSVC_OK) {
    uv_loop_close(&loop);
    return 0;
  }
  msvc_http_server_route(srv, "GET", "/hello", h_text, NULL, NULL);
  msvc_http_server_route(srv, "*", "/echo", h_echo, NULL, NULL);
  c = calloc(1, sizeof(*c));
  if (c != NULL && msvc__mem_transport_new(&loop, 1 << 20, &mem) == 0 &&
      msvc__tls_wrap_server(server_cfg, &loop, mem, &tls) == 0 &&
      msvc__conn_attach(srv, tls) == MSVC_OK) {
    c->tr = mem;
    uv_run(&loop, UV_RUN_NOWAIT);
    if (mode & 0x80) {
      memcpy(c->out, data, size < sizeof(c->out) ? size : sizeof(c->out));
      c->out_len = size < sizeof(c->out) ? size : sizeof(c->out);
      (void)pump(&loop, srv, c, step);
    } else {
      run_client(&loop, srv, c, data, size, step, mode & 0x40);
    }
    if (msvc_http_server_connections(srv) > 0)
      msvc__mem_transport_eof(mem);
  }
  msvc_http_server_close(srv, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(c);
  return 0;
}
