/*
 * TLS as a transport over another transport (TCP in practice, memory in the
 * fuzz target). The HTTP code above it sees plaintext only.
 *
 * mbedtls reads and writes through two memory callbacks: ciphertext read
 * from the inner transport is appended to `in` and consumed by bio_recv
 * (WANT_READ when it runs dry); everything mbedtls sends lands in one of
 * two output buffers, handed to the inner transport as a single write. One
 * buffer is in flight while the other collects, so a response produced
 * while the previous one is still being written costs no extra copy and no
 * allocation per record. Outer write callbacks ride on the buffer that
 * carries their bytes.
 *
 * Plaintext written before the handshake completes (a client sends its
 * request right after connecting) is kept aside and encrypted once the
 * session is up. The timer bounds the handshake and, with a zero delay,
 * resumes delivery of input that was buffered while the owner had stopped
 * reading: nothing would arrive from the socket to trigger it.
 *
 * With a worker pool, each handshake step that has input to work on (the
 * private-key signature, the key exchange, the chain's verification) runs on
 * a pool thread. While it does, that thread owns the mbedtls context, the
 * input buffer and the collecting output buffer: the loop stops reading the
 * inner transport and holds back flushes until the step's done callback has
 * run. Nothing else of the transport is touched by the pool thread, except
 * `resumed` and `verified`, which the session callbacks set; the done
 * callback hands them back to the loop.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/error.h>
#include <msvc/log.h>
#include <msvc/work.h>

#include "tls/tls-internal.h"

#define IN_MAX (256 * 1024) /* ciphertext buffered beyond this is an abuse */
#define OBUF_KEEP 32768

typedef struct wreq_s {
  struct wreq_s *next;
  msvc__transport_write_cb cb;
  void *arg;
} wreq_t;

typedef struct wlist_s {
  wreq_t *head;
  wreq_t **tail;
} wlist_t;

typedef struct tls_tr_s {
  msvc__transport_t base;
  msvc__transport_t *inner;
  msvc_tls_config_t *cfg;
  msvc__tls_material_t *mat;
  mbedtls_ssl_context ssl;
  uv_timer_t timer;
  char *in;
  size_t in_len, in_off, in_cap;
  msvc__buf_t obuf[2];
  wlist_t wl[2];
  uint8_t oi; /* buffer collecting output; the other one may be in flight */
  msvc__buf_t early;
  wlist_t early_wl;
  msvc__tls_peer_t peer;
  msvc_work_t *work;    /* handshake steps run here; NULL: on the loop */
  msvc_work_job_t *job; /* the step on the pool, while offloaded */
  int step_rc;          /* its mbedtls result, read by its done callback */
  char *session_key;
  char *ip_host;
  uint64_t t0;
  uint64_t deadline;
  uint8_t handles;
  bool server;
  bool started;
  bool handshaking;
  bool resumed;
  bool offered;  /* client: a saved session was offered */
  bool verified; /* client: the server's chain was verified (a full handshake) */
  bool has_peer;
  bool want_read;
  bool inner_reading;
  bool owriting;
  bool eof_in;
  bool ended;
  bool closing;
  bool shut_pending;
  bool offloaded; /* a pool thread runs a handshake step */
} tls_tr_t;

static _Thread_local unsigned char plain[16384];

static void process(tls_tr_t *t);
static void free_tls(tls_tr_t *t);

static void wl_init(wlist_t *l) {
  l->head = NULL;
  l->tail = &l->head;
}

static int wl_push(wlist_t *l, msvc__transport_write_cb cb, void *arg) {
  wreq_t *w = msvc__malloc(sizeof(*w));

  if (w == NULL)
    return MSVC_ENOMEM;
  w->next = NULL;
  w->cb = cb;
  w->arg = arg;
  *l->tail = w;
  l->tail = &w->next;
  return 0;
}

static void wl_append(wlist_t *dst, wlist_t *src) {
  if (src->head == NULL)
    return;
  *dst->tail = src->head;
  dst->tail = src->tail;
  wl_init(src);
}

static void wl_fire(tls_tr_t *t, wlist_t *l, int status) {
  wreq_t *w = l->head;

  wl_init(l);
  while (w != NULL) {
    wreq_t *next = w->next;
    if (w->cb != NULL)
      w->cb(&t->base, status, w->arg);
    msvc__free(w);
    w = next;
  }
}

static int map_err(int rc) {
  switch (rc) {
  case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    return MSVC_ETLS_CERT;
  case MBEDTLS_ERR_SSL_ALLOC_FAILED:
  case MBEDTLS_ERR_X509_ALLOC_FAILED:
    return MSVC_ENOMEM;
  default:
    return MSVC_ETLS;
  }
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  tls_tr_t *t = ctx;
  msvc__buf_t *b = &t->obuf[t->oi];

  msvc__buf_append(b, buf, len);
  return b->err != 0 ? MBEDTLS_ERR_SSL_ALLOC_FAILED : (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
  tls_tr_t *t = ctx;
  size_t avail = t->in_len - t->in_off;

  if (avail == 0)
    return t->eof_in ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail)
    len = avail;
  memcpy(buf, t->in + t->in_off, len);
  t->in_off += len;
  if (t->in_off == t->in_len)
    t->in_off = t->in_len = 0;
  return (int)len;
}

static void set_inner_reading(tls_tr_t *t) {
  bool want = (t->handshaking || t->want_read) && !t->ended && !t->closing && !t->offloaded;

  if (want == t->inner_reading)
    return;
  t->inner_reading = want;
  if (want)
    (void)msvc__transport_read_start(t->inner);
  else
    (void)msvc__transport_read_stop(t->inner);
}

/* Tells the owner the stream is over, once. */
static void end(tls_tr_t *t, int status) {
  if (t->ended || t->closing)
    return;
  if (t->handshaking) {
    msvc__tls_metrics_handshake(t->cfg, status, false, 0);
    t->handshaking = false;
  }
  t->ended = true;
  uv_timer_stop(&t->timer);
  set_inner_reading(t);
  t->base.ev->on_end(t->base.owner, status);
}

static void on_inner_write(msvc__transport_t *inner, int status, void *arg);

static void maybe_shutdown(tls_tr_t *t) {
  if (!t->shut_pending || t->offloaded || t->owriting || t->obuf[t->oi].len > 0 ||
      t->closing)
    return;
  t->shut_pending = false;
  (void)t->inner->ops->shutdown(t->inner);
}

/* Hands the collecting buffer to the inner transport. Returns 1 when it
 * was written at once (its callbacks are the caller's to run), 0 when in
 * flight or nothing to do, or a negative code. */
static int flush(tls_tr_t *t) {
  uint8_t idx = t->oi;
  uv_buf_t b;
  int rc;

  if (t->offloaded || t->owriting || t->obuf[idx].len == 0 || t->closing)
    return 0;
  b = uv_buf_init(t->obuf[idx].data, (unsigned)t->obuf[idx].len);
  t->owriting = true;
  t->oi ^= 1;
  rc = msvc__transport_write(t->inner, &b, 1, on_inner_write, t);
  if (rc == 0)
    return 0;
  t->owriting = false;
  t->obuf[idx].len = 0;
  if (rc == MSVC__TRANSPORT_WROTE) {
    maybe_shutdown(t);
    return 1;
  }
  return rc;
}

/* Flush from loop context: callbacks of a buffer written at once run now. */
static void flush_loop(tls_tr_t *t) {
  uint8_t idx = t->oi;
  int rc = flush(t);

  if (rc == 1)
    wl_fire(t, &t->wl[idx], 0);
  else if (rc < 0) {
    wl_fire(t, &t->wl[idx], rc);
    end(t, rc);
  }
}

static void on_inner_write(msvc__transport_t *inner, int status, void *arg) {
  tls_tr_t *t = arg;
  uint8_t idx = t->oi ^ 1;

  (void)inner;
  t->owriting = false;
  t->obuf[idx].len = 0;
  if (t->obuf[idx].cap > OBUF_KEEP) {
    msvc__buf_free(&t->obuf[idx]);
    msvc__buf_init(&t->obuf[idx], 0);
  }
  wl_fire(t, &t->wl[idx], status);
  if (status < 0) {
    wl_fire(t, &t->wl[t->oi], status);
    end(t, status);
    return;
  }
  flush_loop(t);
  maybe_shutdown(t);
}

/* Encrypts plaintext into the collecting buffer; our send callback never
 * blocks, so mbedtls takes everything, a record at a time. */
static int encrypt(tls_tr_t *t, const char *p, size_t len) {
  while (len > 0) {
    int n = mbedtls_ssl_write(&t->ssl, (const unsigned char *)p, len);
    if (n < 0)
      return map_err(n);
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int handshake_done(tls_tr_t *t) {
  const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
  double secs = (double)(uv_hrtime() - t->t0) / 1e9;
  int rc;

  if (crt != NULL && mbedtls_ssl_get_verify_result(&t->ssl) != 0)
    return MSVC_ETLS_CERT; /* optional client authentication, bad certificate */
  if (crt != NULL) {
    if ((rc = msvc__tls_peer_load(&t->peer, crt)) != 0)
      return rc;
    t->has_peer = true;
  }
  t->handshaking = false;
  uv_timer_stop(&t->timer);
  msvc__tls_metrics_handshake(t->cfg, 0, t->resumed, secs);
  if (t->session_key != NULL)
    msvc__tls_session_save(t->cfg, t->session_key, &t->ssl);
  if (t->early.len > 0) {
    rc = encrypt(t, t->early.data, t->early.len);
    msvc__buf_free(&t->early);
    msvc__buf_init(&t->early, 0);
    if (rc != 0)
      return rc;
  }
  /* Early writes are carried by the buffer just filled. */
  wl_append(&t->wl[t->oi], &t->early_wl);
  set_inner_reading(t);
  return 0;
}

/* Peers failing handshakes are routine on a public port (scanners, plain
 * HTTP, old clients): debug level, with the reason a human needs. */
static void log_failure(tls_tr_t *t, int rc) {
  char peer[64], why[160];
  uint32_t flags;

  if (!msvc_log_enabled(MSVC_LOG_DEBUG))
    return;
  if (t->inner->ops->peer(t->inner, peer, sizeof(peer)) != 0)
    snprintf(peer, sizeof(peer), "?");
  flags = mbedtls_ssl_get_verify_result(&t->ssl);
  if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != (uint32_t)-1)
    mbedtls_x509_crt_verify_info(why, sizeof(why), "", flags);
  else
    mbedtls_strerror(rc, why, sizeof(why));
  why[strcspn(why, "\n")] = '\0';
  MSVC_LOG_D("tls", "%s handshake with %s failed: %s (mbedtls -0x%04x)",
             t->server ? "server" : "client", peer, why, (unsigned)-rc);
}

/* The connection whose handshake runs on this thread right now. The server's
 * session store callbacks receive only the shared store, not the
 * connection, and Mbed TLS has no public accessor telling whether a
 * handshake resumed a session: the wrappers below note it here. */
static _Thread_local tls_tr_t *hs_current;

int msvc__tls_ticket_parse(void *p_ticket, mbedtls_ssl_session *session,
                           unsigned char *buf, size_t len) {
  int rc = mbedtls_ssl_ticket_parse(p_ticket, session, buf, len);

  /* A ticket that decrypts and has not expired is always resumed. */
  if (rc == 0 && hs_current != NULL)
    hs_current->resumed = true;
  return rc;
}

/* A cached session found by its id resumes the handshake; Mbed TLS stores a
 * session in the cache only after a full handshake, which settles the case
 * where a found session could not be used after all. */
#if MBEDTLS_VERSION_NUMBER < 0x03000000
int msvc__tls_cache_get(void *data, mbedtls_ssl_session *session) {
  int rc = mbedtls_ssl_cache_get(data, session);
#else
int msvc__tls_cache_get(void *data, unsigned char const *session_id,
                        size_t session_id_len, mbedtls_ssl_session *session) {
  int rc = mbedtls_ssl_cache_get(data, session_id, session_id_len, session);
#endif
  if (rc == 0 && hs_current != NULL)
    hs_current->resumed = true;
  return rc;
}

#if MBEDTLS_VERSION_NUMBER < 0x03000000
int msvc__tls_cache_set(void *data, const mbedtls_ssl_session *session) {
  int rc = mbedtls_ssl_cache_set(data, session);
#else
int msvc__tls_cache_set(void *data, unsigned char const *session_id,
                        size_t session_id_len, const mbedtls_ssl_session *session) {
  int rc = mbedtls_ssl_cache_set(data, session_id, session_id_len, session);
#endif
  if (hs_current != NULL)
    hs_current->resumed = false;
  return rc;
}

/* Runs the handshake as far as the input allows, on the loop or on a pool
 * thread: mbedtls and the transport's buffers only. */
static int handshake_step(tls_tr_t *t) {
  int rc;

  hs_current = t;
  rc = mbedtls_ssl_handshake(&t->ssl);
  hs_current = NULL;
  return rc;
}

/* What a step's mbedtls result means, on the loop: 0 while the handshake
 * goes on or once it is done, else a negative code. Only the public API:
 * the return of mbedtls_ssl_handshake() says when it is over, in 2.28 as in
 * 3.x. */
static int handshake_result(tls_tr_t *t, int rc) {
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return 0;
  if (rc != 0) {
    log_failure(t, rc);
    return map_err(rc);
  }
  /* A client resumed when the session it offered spared the server's
   * certificate: without one there was nothing to verify. */
  if (!t->server)
    t->resumed = t->offered && !t->verified;
  return handshake_done(t);
}

static void deliver(tls_tr_t *t) {
  while (t->want_read && !t->ended && !t->closing) {
    int n = mbedtls_ssl_read(&t->ssl, plain, sizeof(plain));

    if (n > 0) {
      t->base.ev->on_read(t->base.owner, (const char *)plain, (size_t)n);
      continue;
    }
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
      if (t->eof_in)
        end(t, UV_EOF);
      return;
    }
    if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF)
      end(t, UV_EOF);
    else
      end(t, map_err(n));
    return;
  }
}

/* Sends what a handshake step wrote and goes on from its result. */
static void stepped(tls_tr_t *t, int rc) {
  flush_loop(t);
  if (rc != 0) {
    end(t, rc);
    return;
  }
  if (t->handshaking) {
    if (t->eof_in)
      end(t, MSVC_ETLS);
    return;
  }
  deliver(t);
  flush_loop(t);
}

static void on_timer(uv_timer_t *timer);

static void on_step_work(void *data) {
  tls_tr_t *t = data;

  t->step_rc = handshake_step(t);
}

static void on_step_done(void *data, int status) {
  tls_tr_t *t = data;
  uint64_t now;

  t->offloaded = false;
  t->job = NULL;
  if (--t->handles == 0) {
    free_tls(t); /* closed while the step ran */
    return;
  }
  if (t->ended || t->closing)
    return;
  if (status == MSVC_ETIMEDOUT) {
    end(t, MSVC_ETLS_TIMEOUT); /* it waited in the queue past the deadline */
    return;
  }
  set_inner_reading(t);
  if (status != MSVC_OK) {
    /* The pool is draining or closing: the loop runs the steps from now. */
    t->work = NULL;
    process(t);
  } else {
    stepped(t, handshake_result(t, t->step_rc));
  }
  if (t->handshaking && !t->ended && !t->closing) {
    now = uv_now(t->timer.loop);
    uv_timer_start(&t->timer, on_timer, t->deadline > now ? t->deadline - now : 0, 0);
  }
  maybe_shutdown(t);
}

/* Hands the next handshake step to the pool: 0 when it went there. A step
 * without input to work on (a client's first) is cheap and stays here; so
 * does one the pool refuses (its queue full, or the pool draining). */
static int offload(tls_tr_t *t) {
  uint64_t now, left;
  int rc;

  if (t->work == NULL || t->in_len == t->in_off)
    return -1;
  now = uv_now(t->timer.loop);
  left = t->deadline > now ? t->deadline - now : 1;
  t->offloaded = true;
  t->handles++;
  rc = msvc_work_submit_wait(t->work, left > UINT32_MAX ? UINT32_MAX : (uint32_t)left,
                             on_step_work, on_step_done, t, &t->job);
  if (rc != MSVC_OK) {
    t->offloaded = false;
    t->handles--;
    if (rc != MSVC_EWORK_FULL)
      t->work = NULL;
    return rc;
  }
  set_inner_reading(t);
  return 0;
}

static void process(tls_tr_t *t) {
  if (t->ended || t->closing || t->offloaded)
    return;
  if (t->handshaking) {
    if (offload(t) == 0)
      return;
    stepped(t, handshake_result(t, handshake_step(t)));
    return;
  }
  deliver(t);
  flush_loop(t);
}

static void on_inner_read(void *owner, const char *data, size_t len) {
  tls_tr_t *t = owner;
  size_t need;

  if (t->ended || t->closing)
    return;
  if (t->in_off > 0) {
    memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
    t->in_len -= t->in_off;
    t->in_off = 0;
  }
  need = t->in_len + len;
  if (need > IN_MAX) {
    end(t, MSVC_ETLS);
    return;
  }
  if (need > t->in_cap) {
    size_t cap = t->in_cap ? t->in_cap * 2 : 16384;
    char *p;
    while (cap < need)
      cap *= 2;
    if ((p = msvc__realloc(t->in, cap)) == NULL) {
      end(t, MSVC_ENOMEM);
      return;
    }
    t->in = p;
    t->in_cap = cap;
  }
  memcpy(t->in + t->in_len, data, len);
  t->in_len += len;
  process(t);
}

static void on_inner_end(void *owner, int status) {
  tls_tr_t *t = owner;

  if (status != UV_EOF) {
    end(t, status);
    return;
  }
  t->eof_in = true;
  process(t);
}

static void free_tls(tls_tr_t *t) {
  const msvc__transport_events_t *ev = t->base.ev;
  void *owner = t->base.owner;

  wl_fire(t, &t->early_wl, UV_ECANCELED);
  wl_fire(t, &t->wl[0], UV_ECANCELED);
  wl_fire(t, &t->wl[1], UV_ECANCELED);
  mbedtls_ssl_free(&t->ssl);
  msvc__tls_material_put(t->mat);
  msvc_tls_config_free(t->cfg);
  msvc__tls_peer_free(&t->peer);
  msvc__buf_free(&t->obuf[0]);
  msvc__buf_free(&t->obuf[1]);
  msvc__buf_free(&t->early);
  msvc__free(t->in);
  msvc__free(t->session_key);
  msvc__free(t->ip_host);
  msvc__free(t);
  if (ev != NULL && ev->on_closed != NULL)
    ev->on_closed(owner);
}

static void on_inner_closed(void *owner) {
  tls_tr_t *t = owner;

  if (--t->handles == 0)
    free_tls(t);
}

static void on_timer_closed(uv_handle_t *h) {
  tls_tr_t *t = h->data;

  if (--t->handles == 0)
    free_tls(t);
}

static const msvc__transport_events_t inner_events = {on_inner_read, on_inner_end,
                                                      on_inner_closed};

static void on_timer(uv_timer_t *timer) {
  tls_tr_t *t = timer->data;
  uint64_t now = uv_now(timer->loop);

  if (t->ended || t->closing || t->offloaded)
    return; /* a step's done callback checks the deadline */
  if (t->handshaking && now >= t->deadline) {
    end(t, MSVC_ETLS_TIMEOUT);
    return;
  }
  process(t);
  if (t->handshaking && !t->ended)
    uv_timer_start(&t->timer, on_timer, t->deadline - now, 0);
}

/* The handshake starts, or buffered input resumes, from the loop. */
static void kick(tls_tr_t *t) {
  if (!t->started) {
    t->started = true;
    t->t0 = uv_hrtime();
    t->deadline = uv_now(t->timer.loop) + t->cfg->o.handshake_timeout_ms;
  }
  set_inner_reading(t);
  if (t->handshaking || t->in_len > t->in_off || mbedtls_ssl_get_bytes_avail(&t->ssl) > 0)
    uv_timer_start(&t->timer, on_timer, 0, 0);
}

static int tls_read_start(msvc__transport_t *base) {
  tls_tr_t *t = (tls_tr_t *)base;

  if (t->closing || t->ended)
    return MSVC_ECLOSED;
  t->want_read = true;
  kick(t);
  return 0;
}

static int tls_read_stop(msvc__transport_t *base) {
  tls_tr_t *t = (tls_tr_t *)base;

  t->want_read = false;
  set_inner_reading(t);
  return 0;
}

static int tls_write(msvc__transport_t *base, const uv_buf_t *bufs, unsigned n,
                     msvc__transport_write_cb cb, void *arg) {
  tls_tr_t *t = (tls_tr_t *)base;
  unsigned i;
  uint8_t idx;
  int rc;

  if (t->closing || t->ended)
    return MSVC_ECLOSED;
  if (t->handshaking) {
    for (i = 0; i < n; i++)
      msvc__buf_append(&t->early, bufs[i].base, bufs[i].len);
    if (t->early.err != 0)
      return t->early.err;
    /* A server answering before it reads (too many connections) needs
     * the handshake to get its answer out. */
    if (!t->started)
      kick(t);
    return wl_push(&t->early_wl, cb, arg);
  }
  for (i = 0; i < n; i++) {
    if ((rc = encrypt(t, bufs[i].base, bufs[i].len)) != 0)
      return rc;
  }
  if (t->owriting)
    return wl_push(&t->wl[t->oi], cb, arg);
  if (t->obuf[t->oi].len == 0)
    return MSVC__TRANSPORT_WROTE; /* nothing to send: done at once */
  idx = t->oi;
  rc = flush(t);
  if (rc == 1)
    return MSVC__TRANSPORT_WROTE;
  if (rc < 0)
    return rc;
  return wl_push(&t->wl[idx], cb, arg);
}

static int tls_shutdown(msvc__transport_t *base) {
  tls_tr_t *t = (tls_tr_t *)base;

  if (t->closing)
    return MSVC_ECLOSED;
  if (!t->handshaking && !t->ended)
    (void)mbedtls_ssl_close_notify(&t->ssl);
  t->shut_pending = true;
  flush_loop(t);
  maybe_shutdown(t);
  return 0;
}

static void tls_close(msvc__transport_t *base) {
  tls_tr_t *t = (tls_tr_t *)base;

  if (t->closing)
    return;
  t->closing = true;
  if (t->offloaded)
    (void)msvc_work_cancel(t->work, t->job); /* a running step finishes first */
  uv_timer_stop(&t->timer);
  uv_close((uv_handle_t *)&t->timer, on_timer_closed);
  msvc__transport_close(t->inner);
}

static int tls_peer(msvc__transport_t *base, char *out, size_t len) {
  tls_tr_t *t = (tls_tr_t *)base;
  return t->inner->ops->peer(t->inner, out, len);
}

static bool tls_secure(msvc__transport_t *base, const msvc__peer_identity_t **peer) {
  tls_tr_t *t = (tls_tr_t *)base;

  if (peer != NULL)
    *peer = t->has_peer && !t->closing ? &t->peer : NULL;
  return true;
}

static const char *tls_alpn(msvc__transport_t *base) {
  tls_tr_t *t = (tls_tr_t *)base;

  return t->closing ? NULL : mbedtls_ssl_get_alpn_protocol(&t->ssl);
}

static const msvc__transport_ops_t tls_ops = {
    tls_read_start, tls_read_stop, tls_write, tls_shutdown, tls_close, tls_peer, tls_secure,
    tls_alpn,
};

/* A client verifies the server's chain in every full handshake (the mode
 * is always "required"), and only then: this callback telling it ran is how
 * a resumed session shows. An address as the host is checked against the
 * certificate's IP names, as no SNI names it. */
static int on_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
  tls_tr_t *t = arg;

  t->verified = true;
  if (depth == 0 && t->ip_host != NULL && !msvc__tls_crt_has_ip(crt, t->ip_host))
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
  return 0;
}

static int tls_new(msvc_tls_config_t *cfg, uv_loop_t *loop, msvc__transport_t *inner,
                   bool alt, tls_tr_t **out) {
  tls_tr_t *t = msvc__calloc(1, sizeof(*t));
  int rc;

  *out = NULL;
  if (t == NULL) {
    msvc__transport_close(inner);
    return MSVC_ENOMEM;
  }
  t->base.ops = &tls_ops;
  t->inner = inner;
  inner->ev = &inner_events;
  inner->owner = t;
  t->cfg = msvc_tls_config_ref(cfg);
  t->mat = msvc__tls_material_get(cfg);
  t->handshaking = true;
  wl_init(&t->wl[0]);
  wl_init(&t->wl[1]);
  wl_init(&t->early_wl);
  msvc__buf_init(&t->obuf[0], 0);
  msvc__buf_init(&t->obuf[1], 0);
  msvc__buf_init(&t->early, 0);
  mbedtls_ssl_init(&t->ssl);
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  t->handles = 2;
  rc = mbedtls_ssl_setup(&t->ssl, alt && t->mat->has_alt ? &t->mat->conf_alt : &t->mat->conf);
  if (rc == 0)
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
  *out = t;
  return rc == 0 ? 0 : map_err(rc);
}

int msvc__tls_wrap_server(msvc_tls_config_t *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, msvc__transport_t **out) {
  return msvc__tls_wrap_server_alpn(cfg, loop, inner, true, out);
}

int msvc__tls_wrap_server_alpn(msvc_tls_config_t *cfg, uv_loop_t *loop,
                               msvc__transport_t *inner, bool h2,
                               msvc__transport_t **out) {
  tls_tr_t *t;
  int rc;

  *out = NULL;
  if (msvc__tls_config_role(cfg) != MSVC_TLS_SERVER) {
    msvc__transport_close(inner);
    return MSVC_EINVAL;
  }
  rc = tls_new(cfg, loop, inner, !h2, &t);
  if (rc != 0) {
    if (t != NULL)
      tls_close(&t->base);
    return rc;
  }
  t->server = true;
  *out = &t->base;
  return 0;
}

static int client_names(tls_tr_t *t, const char *host, int port) {
  const char *name = t->cfg->o.server_name != NULL ? t->cfg->o.server_name : host;
  unsigned char addr[16];
  char key[96];
  int rc = 0;

  if (t->cfg->o.server_name == NULL &&
      (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)) {
    /* No SNI for an address (RFC 6066); its certificate must name it. */
    if ((t->ip_host = msvc__strdup(host)) == NULL)
      return MSVC_ENOMEM;
  } else {
    rc = mbedtls_ssl_set_hostname(&t->ssl, name);
    if (rc != 0)
      return map_err(rc);
  }
  mbedtls_ssl_set_verify(&t->ssl, on_verify, t);
  snprintf(key, sizeof(key), "%s@%s:%d", name, host, port);
  if (t->cfg->saved != NULL) {
    if ((t->session_key = msvc__strdup(key)) == NULL)
      return MSVC_ENOMEM;
    t->offered = msvc__tls_session_load(t->cfg, key, &t->ssl);
  }
  return 0;
}

static int wrap_client(msvc_tls_config_t *cfg, uv_loop_t *loop, msvc__transport_t *inner,
                       const char *host, int port, bool h2, msvc__transport_t **out) {
  tls_tr_t *t;
  int rc;

  *out = NULL;
  if (msvc__tls_config_role(cfg) != MSVC_TLS_CLIENT) {
    msvc__transport_close(inner);
    return MSVC_EINVAL;
  }
  rc = tls_new(cfg, loop, inner, h2, &t);
  if (rc == 0)
    rc = client_names(t, host, port);
  if (rc != 0) {
    if (t != NULL)
      tls_close(&t->base);
    return rc;
  }
  *out = &t->base;
  return 0;
}

int msvc__tls_wrap_client(msvc_tls_config_t *cfg, uv_loop_t *loop,
                          msvc__transport_t *inner, const char *host, int port,
                          msvc__transport_t **out) {
  return wrap_client(cfg, loop, inner, host, port, false, out);
}

int msvc__tls_wrap_client_h2(msvc_tls_config_t *cfg, uv_loop_t *loop,
                             msvc__transport_t *inner, const char *host, int port,
                             msvc__transport_t **out) {
  return wrap_client(cfg, loop, inner, host, port, true, out);
}

void msvc__tls_set_work(msvc__transport_t *tls, msvc_work_t *w) {
  ((tls_tr_t *)tls)->work = w;
}
