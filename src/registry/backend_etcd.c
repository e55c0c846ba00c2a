/* etcd://h:p[,h:p...] -- the etcd v3 JSON gateway (etcd 3.4).
 *
 * Every operation is one POST. Registration: lease/grant, then kv/put with
 * the lease; every heartbeat the core asks for is one lease/keepalive (a
 * streamed keepalive over the gateway is unreliable). A keepalive answer
 * with TTL 0, or none, means etcd forgot the lease (it expired, or the store
 * was rebuilt): grant a new one and put again, so an instance comes back by
 * itself after an outage.
 *
 * Watches are split in two. A streamed /v3/watch on the service prefix only
 * says "something changed" (a poke); the core then calls watch_refresh, which
 * reads the whole prefix with one range. The core debounces pokes, so a
 * burst of events costs one range, and a full re-read after every reconnect
 * or compaction needs no special case. The stream resumes from the last
 * revision seen, with jittered backoff, on the next endpoint.
 *
 * Failover: calls go to the endpoint that last answered; a transport error
 * or a 5xx moves to the next one and retries there, once per endpoint. */
#include <stdlib.h>

#include <msvc/http_client.h>

#include "registry/registry-internal.h"

#define ETCD_PREFIX "/msvc/services/"
/* Generous: a call may queue behind a burst of registrations (one fsync
 * each on the etcd side) before it is sent. */
#define ETCD_CALL_TIMEOUT_MS 10000
#define ETCD_CONNECT_TIMEOUT_MS 1000

typedef struct etcd_ep_s {
  char *host;
  int port;
} etcd_ep_t;

typedef struct etcd_backend_s {
  msvc__reg_backend_t base;
  msvc_http_client_t *http;
  etcd_ep_t *eps;
  size_t neps;
  size_t cur; /* endpoint that answered last */
  /* Read-your-writes: a resolve issued after a deregister must not see the
   * instance, but the range could overtake the delete on another
   * connection. Resolves wait while deletes are in flight. */
  unsigned dels;
  struct etcd_waiter_s *waiters;
} etcd_backend_t;

typedef struct etcd_waiter_s {
  struct etcd_waiter_s *next;
  msvc__reg_query_t *q;
} etcd_waiter_t;

typedef struct etcd_lease_s {
  int64_t id;
  bool put_pending; /* granted, the put is what is left */
} etcd_lease_t;

/* A watch's stream and reconnect timer. Outlives the watch while a call or
 * the timer is still open (refs); w is NULL once the watch has stopped. */
typedef struct etcd_watch_s {
  etcd_backend_t *eb;
  msvc_registry_watch_t *w;
  msvc_http_call_t *stream;
  uv_timer_t timer;
  msvc__buf_t pending; /* bytes of a stream message not complete yet */
  int64_t revision;    /* last revision seen */
  unsigned attempt;
  size_t ep;
  int refs;
  bool stream_ok; /* created, not failed yet */
  /* The stream was asked to start "now" (no revision read yet): a change
   * committed after the first range was read but before etcd created the
   * stream falls between the two, so the stream's creation re-reads. */
  bool from_now;
  /* One range at a time per watch: a burst of events pokes many times, and
   * every range reads the whole service. */
  bool ranging;
  bool range_again;
} etcd_watch_t;

typedef void (*etcd_done_fn)(void *ctx, int status, const char *body,
                             size_t len);

typedef struct etcd_call_s {
  etcd_backend_t *eb;
  char *path;
  char *body;
  size_t body_len;
  size_t tries;
  etcd_done_fn done;
  void *ctx;
} etcd_call_t;

/* ---- one POST with failover ------------------------------------------------ */

static int call_send(etcd_call_t *c);

static void call_free(etcd_call_t *c) {
  msvc__free(c->path);
  msvc__free(c->body);
  msvc__free(c);
}

static void on_call_done(msvc_http_call_t *hc, int err,
                         const msvc_http_response_t *res, void *data) {
  etcd_call_t *c = data;
  etcd_backend_t *eb = c->eb;
  int status = res != NULL ? msvc_http_response_status(res) : 0;
  const char *body;
  size_t len = 0;

  (void)hc;
  /* etcd's "lease not found" comes as a 5xx too, but no other member would
   * answer differently: that is an answer, not an outage. */
  if (err == MSVC_OK && status != 200 &&
      strstr(msvc_http_response_body(res, NULL), "not found") != NULL)
    status = 404;
  if (err != MSVC_ECANCELED && (err != MSVC_OK || status >= 500) &&
      ++c->tries < eb->neps) {
    eb->cur = (eb->cur + 1) % eb->neps;
    if (call_send(c) == MSVC_OK)
      return;
  }
  if (err == MSVC_OK && status != 200)
    err = status >= 500 ? MSVC_ECONNREFUSED : MSVC_EPROTO;
  body = err == MSVC_OK ? msvc_http_response_body(res, &len) : NULL;
  c->done(c->ctx, err, body, len);
  call_free(c);
}

static int call_send(etcd_call_t *c) {
  msvc_http_request_t req;
  msvc_http_header_t ct = {"Content-Type", "application/json"};
  etcd_ep_t *ep = &c->eb->eps[c->eb->cur];

  msvc_http_request_init(&req);
  req.method = "POST";
  req.host = ep->host;
  req.port = ep->port;
  req.target = c->path;
  req.headers = &ct;
  req.nheaders = 1;
  req.body = c->body;
  req.body_len = c->body_len;
  req.retryable = true;
  req.timeouts.connect_ms = ETCD_CONNECT_TIMEOUT_MS;
  req.timeouts.total_ms = ETCD_CALL_TIMEOUT_MS;
  req.on_done = on_call_done;
  req.data = c;
  return msvc_http_client_request(c->eb->http, &req, NULL);
}

/* Takes body's bytes (freed here on failure too). */
static int etcd_post(etcd_backend_t *eb, const char *path, msvc__buf_t *body,
                     etcd_done_fn done, void *ctx) {
  etcd_call_t *c;
  int rc;

  if (body->err != 0) {
    rc = body->err;
    msvc__buf_free(body);
    return rc;
  }
  if ((c = msvc__calloc(1, sizeof(*c))) == NULL ||
      (c->path = msvc__strdup(path)) == NULL) {
    msvc__free(c);
    msvc__buf_free(body);
    return MSVC_ENOMEM;
  }
  c->body = msvc__buf_detach(body, &c->body_len);
  c->eb = eb;
  c->done = done;
  c->ctx = ctx;
  if (c->body == NULL) {
    call_free(c);
    return MSVC_ENOMEM;
  }
  if ((rc = call_send(c)) != MSVC_OK) {
    call_free(c);
    return rc;
  }
  return MSVC__REG_ASYNC;
}

/* ---- keys ------------------------------------------------------------------ */

static void put_key(msvc__buf_t *b, const char *field, const char *service,
                    const char *id, bool range_end) {
  msvc__buf_t k;

  msvc__buf_init(&k, 0);
  msvc__buf_printf(&k, ETCD_PREFIX "%s/%s", service, id != NULL ? id : "");
  /* The prefix ends in '/': its range end is the same key ending in '0'. */
  if (range_end && k.err == 0 && k.len > 0)
    k.data[k.len - 1] = '0';
  msvc__buf_printf(b, "\"%s\":\"", field);
  if (k.err == 0)
    msvc__etcd_b64_encode(b, k.data, k.len);
  else
    b->err = k.err;
  msvc__buf_putc(b, '"');
  msvc__buf_free(&k);
}

static void prefix_body(msvc__buf_t *b, const char *service) {
  put_key(b, "key", service, NULL, false);
  msvc__buf_putc(b, ',');
  put_key(b, "range_end", service, NULL, true);
}

/* ---- leases ---------------------------------------------------------------- */

static int lease_grant(etcd_backend_t *eb, msvc_registry_lease_t *lease);

static void on_put(void *ctx, int status, const char *body, size_t len) {
  msvc_registry_lease_t *lease = ctx;
  etcd_lease_t *el = lease->bdata;

  (void)body;
  (void)len;
  if (status == MSVC_OK)
    el->put_pending = false;
  msvc__reg_lease_put_done(lease, status);
}

static int kv_put(etcd_backend_t *eb, msvc_registry_lease_t *lease) {
  etcd_lease_t *el = lease->bdata;
  msvc__buf_t b, v;

  msvc__buf_init(&v, 0);
  msvc__reg_instance_to_json(&lease->inst, 0, 0, &v);
  msvc__buf_init(&b, 0);
  msvc__buf_putc(&b, '{');
  put_key(&b, "key", lease->inst.service, lease->inst.id, false);
  msvc__buf_puts(&b, ",\"value\":\"");
  if (v.err == 0)
    msvc__etcd_b64_encode(&b, v.data, v.len);
  else
    b.err = v.err;
  msvc__buf_free(&v);
  msvc__buf_printf(&b, "\",\"lease\":\"%lld\"}", (long long)el->id);
  return etcd_post(eb, "/v3/kv/put", &b, on_put, lease);
}

static void finish_async(msvc_registry_lease_t *lease, int rc) {
  if (rc != MSVC__REG_ASYNC)
    msvc__reg_lease_put_done(lease, rc != MSVC_OK ? rc : MSVC_EPROTO);
}

static void on_grant(void *ctx, int status, const char *body, size_t len) {
  msvc_registry_lease_t *lease = ctx;
  etcd_lease_t *el = lease->bdata;
  etcd_backend_t *eb = (etcd_backend_t *)lease->reg->backend;
  int64_t id, ttl;

  if (status == MSVC_OK)
    status = msvc__etcd_parse_lease(body, len, &id, &ttl);
  if (status == MSVC_OK && (id == 0 || ttl <= 0))
    status = MSVC_EPROTO;
  if (status != MSVC_OK) {
    msvc__reg_lease_put_done(lease, status);
    return;
  }
  el->id = id;
  el->put_pending = true;
  finish_async(lease, kv_put(eb, lease));
}

static void on_keepalive(void *ctx, int status, const char *body, size_t len) {
  msvc_registry_lease_t *lease = ctx;
  etcd_lease_t *el = lease->bdata;
  etcd_backend_t *eb = (etcd_backend_t *)lease->reg->backend;
  int64_t id, ttl;

  if (status == MSVC_OK)
    status = msvc__etcd_parse_lease(body, len, &id, &ttl);
  else if (status == MSVC_EPROTO)
    ttl = 0; /* etcd refused the keepalive: the lease is unknown */
  if (status != MSVC_OK && status != MSVC_EPROTO) {
    msvc__reg_lease_put_done(lease, status);
    return;
  }
  if (status == MSVC_OK && ttl > 0) {
    msvc__reg_lease_put_done(lease, MSVC_OK);
    return;
  }
  /* The lease is gone, and the key with it: start over. */
  el->id = 0;
  finish_async(lease, lease_grant(eb, lease));
}

static int lease_grant(etcd_backend_t *eb, msvc_registry_lease_t *lease) {
  msvc__buf_t b;
  /* Whole seconds, rounded up: never shorter than asked. */
  unsigned ttl_s = (unsigned)((lease->ttl_ms + 999) / 1000);

  msvc__buf_init(&b, 0);
  msvc__buf_printf(&b, "{\"TTL\":\"%u\"}", ttl_s != 0 ? ttl_s : 1);
  return etcd_post(eb, "/v3/lease/grant", &b, on_grant, lease);
}

static int etcd_put(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  etcd_backend_t *eb = (etcd_backend_t *)b;
  etcd_lease_t *el = lease->bdata;
  msvc__buf_t body;

  if (el == NULL) {
    if ((el = msvc__calloc(1, sizeof(*el))) == NULL)
      return MSVC_ENOMEM;
    lease->bdata = el;
  }
  if (el->id == 0)
    return lease_grant(eb, lease);
  if (el->put_pending)
    return kv_put(eb, lease);
  msvc__buf_init(&body, 0);
  msvc__buf_printf(&body, "{\"ID\":\"%lld\"}", (long long)el->id);
  return etcd_post(eb, "/v3/lease/keepalive", &body, on_keepalive, lease);
}

static void flush_waiters(etcd_backend_t *eb);

static void del_finished(msvc_registry_lease_t *lease, int status) {
  etcd_backend_t *eb = (etcd_backend_t *)lease->reg->backend;

  msvc__free(lease->bdata);
  lease->bdata = NULL;
  eb->dels--;
  msvc__reg_lease_del_done(lease, status);
  flush_waiters(eb);
}

static void on_revoked(void *ctx, int status, const char *body, size_t len) {
  msvc_registry_lease_t *lease = ctx;

  (void)body;
  (void)len;
  (void)status; /* the key is gone already; the lease would expire anyway */
  del_finished(lease, MSVC_OK);
}

static void on_deleted(void *ctx, int status, const char *body, size_t len) {
  msvc_registry_lease_t *lease = ctx;
  etcd_lease_t *el = lease->bdata;
  etcd_backend_t *eb = (etcd_backend_t *)lease->reg->backend;
  msvc__buf_t b;
  int rc;

  (void)body;
  (void)len;
  if (status != MSVC_OK || el == NULL || el->id == 0) {
    /* Even on failure: a deregistered lease is not used again. */
    del_finished(lease, status);
    return;
  }
  msvc__buf_init(&b, 0);
  msvc__buf_printf(&b, "{\"ID\":\"%lld\"}", (long long)el->id);
  rc = etcd_post(eb, "/v3/lease/revoke", &b, on_revoked, lease);
  if (rc != MSVC__REG_ASYNC)
    on_revoked(lease, rc, NULL, 0);
}

static int etcd_del(msvc__reg_backend_t *b, msvc_registry_lease_t *lease) {
  etcd_backend_t *eb = (etcd_backend_t *)b;
  msvc__buf_t body;
  int rc;

  msvc__buf_init(&body, 0);
  msvc__buf_putc(&body, '{');
  put_key(&body, "key", lease->inst.service, lease->inst.id, false);
  msvc__buf_putc(&body, '}');
  rc = etcd_post(eb, "/v3/kv/deleterange", &body, on_deleted, lease);
  if (rc == MSVC__REG_ASYNC) {
    eb->dels++;
  } else {
    msvc__free(lease->bdata);
    lease->bdata = NULL;
  }
  return rc;
}

/* ---- resolve ----------------------------------------------------------------- */

static int range(etcd_backend_t *eb, const char *service, etcd_done_fn done,
                 void *ctx) {
  msvc__buf_t b;

  msvc__buf_init(&b, 0);
  msvc__buf_putc(&b, '{');
  prefix_body(&b, service);
  msvc__buf_putc(&b, '}');
  return etcd_post(eb, "/v3/kv/range", &b, done, ctx);
}

static void on_resolved(void *ctx, int status, const char *body, size_t len) {
  msvc__reg_query_t *q = ctx;
  msvc_registry_set_t *set = NULL;
  int64_t rev;

  if (status == MSVC_OK)
    status = msvc__etcd_parse_range(body, len, q->service, &set, &rev);
  msvc__reg_query_done(q, status, set);
}

static int etcd_resolve(msvc__reg_backend_t *b, msvc__reg_query_t *q) {
  etcd_backend_t *eb = (etcd_backend_t *)b;
  etcd_waiter_t *wt;

  if (eb->dels == 0)
    return range(eb, q->service, on_resolved, q);
  if ((wt = msvc__calloc(1, sizeof(*wt))) == NULL)
    return MSVC_ENOMEM;
  wt->q = q;
  wt->next = eb->waiters;
  eb->waiters = wt;
  return MSVC__REG_ASYNC;
}

static void flush_waiters(etcd_backend_t *eb) {
  while (eb->dels == 0 && eb->waiters != NULL) {
    etcd_waiter_t *wt = eb->waiters;
    int rc;
    eb->waiters = wt->next;
    rc = range(eb, wt->q->service, on_resolved, wt->q);
    if (rc != MSVC__REG_ASYNC)
      msvc__reg_query_done(wt->q, rc != MSVC_OK ? rc : MSVC_EPROTO, NULL);
    msvc__free(wt);
  }
}

/* ---- watches ----------------------------------------------------------------- */

static void ew_unref(etcd_watch_t *ew) {
  if (--ew->refs > 0)
    return;
  msvc__buf_free(&ew->pending);
  msvc__free(ew);
}

static void etcd_watch_refresh(msvc__reg_backend_t *b,
                               msvc_registry_watch_t *w);

static void on_watch_range(void *ctx, int status, const char *body,
                           size_t len) {
  etcd_watch_t *ew = ctx;
  msvc_registry_set_t *set = NULL;
  int64_t rev = 0;

  if (status == MSVC_OK)
    status = msvc__etcd_parse_range(body, len, ew->w != NULL ? ew->w->service
                                                             : "",
                                    &set, &rev);
  ew->ranging = false;
  if (ew->w != NULL) {
    msvc_registry_watch_t *w = ew->w;
    bool again = ew->range_again;
    if (status == MSVC_OK && rev > ew->revision)
      ew->revision = rev;
    if (status == MSVC_OK && rev < ew->revision) {
      /* The store went back in time (rebuilt, restored): a stream waiting
       * for our old revision would hear nothing. Start over from here. */
      ew->revision = rev;
      if (ew->stream != NULL)
        msvc_http_call_cancel(ew->stream);
    }
    ew->range_again = false;
    msvc__reg_watch_report(w, status, set, 0);
    /* Changes arrived while reading: read again (the report may have
     * stopped the watch). */
    if (again && ew->w != NULL && !ew->ranging)
      etcd_watch_refresh(&ew->eb->base, w);
  } else if (set != NULL) {
    msvc_registry_set_unref(set);
  }
  ew_unref(ew);
}

static void etcd_watch_refresh(msvc__reg_backend_t *b,
                               msvc_registry_watch_t *w) {
  etcd_watch_t *ew = w->bdata;
  int rc;

  if (ew->ranging) {
    ew->range_again = true;
    return;
  }
  ew->refs++;
  ew->ranging = true;
  rc = range((etcd_backend_t *)b, w->service, on_watch_range, ew);
  if (rc != MSVC__REG_ASYNC) {
    ew->refs--;
    ew->ranging = false;
    msvc__reg_watch_report(w, rc != MSVC_OK ? rc : MSVC_EPROTO, NULL, 0);
  }
}

static void stream_start(etcd_watch_t *ew);

static void on_reconnect(uv_timer_t *t) {
  etcd_watch_t *ew = msvc__container_of(t, etcd_watch_t, timer);

  if (ew->w != NULL && ew->stream == NULL)
    stream_start(ew);
}

static void on_stream_chunk(msvc_http_call_t *call,
                            const msvc_http_response_t *res, const char *buf,
                            size_t len, void *data) {
  etcd_watch_t *ew = data;
  size_t start, end;

  if (ew->w == NULL || msvc_http_response_status(res) != 200)
    return;
  msvc__buf_append(&ew->pending, buf, len);
  while (ew->pending.err == 0 &&
         (end = msvc__etcd_next_object(ew->pending.data, ew->pending.len,
                                       &start)) != 0) {
    msvc__etcd_watch_msg_t m;
    if (end == (size_t)-1 ||
        msvc__etcd_parse_watch_msg(ew->pending.data + start, end - start,
                                   &m) != MSVC_OK ||
        m.error) {
      msvc_http_call_cancel(call);
      return;
    }
    memmove(ew->pending.data, ew->pending.data + end, ew->pending.len - end);
    ew->pending.len -= end;
    if (m.revision > ew->revision && m.events > 0)
      ew->revision = m.revision;
    if (m.created && m.revision < ew->revision) {
      /* Created in the future of a store that went back: see above. */
      ew->revision = m.revision;
      msvc__reg_watch_poke(ew->w);
      msvc_http_call_cancel(call);
      return;
    }
    if (m.created) {
      ew->stream_ok = true;
      ew->attempt = 0;
      if (ew->from_now)
        msvc__reg_watch_poke(ew->w);
    }
    if (m.compact_revision != 0 || m.canceled) {
      /* Our revision is gone: re-read everything, then watch from now. */
      ew->revision = 0;
      msvc__reg_watch_poke(ew->w);
      msvc_http_call_cancel(call);
      return;
    }
    if (m.events > 0)
      msvc__reg_watch_poke(ew->w);
  }
  if (ew->pending.err != 0)
    msvc_http_call_cancel(call);
}

static void on_stream_done(msvc_http_call_t *call, int err,
                           const msvc_http_response_t *res, void *data) {
  etcd_watch_t *ew = data;

  (void)call;
  (void)err;
  (void)res;
  ew->stream = NULL;
  ew->pending.len = 0;
  ew->pending.err = 0;
  if (ew->w != NULL) {
    etcd_backend_t *eb = ew->eb;
    ew->stream_ok = false;
    msvc__reg_count_error(eb->base.reg, MSVC_REGISTRY_OP_WATCH,
                          err != MSVC_OK ? err : MSVC_ECONNRESET,
                          ew->w->service);
    msvc__reg_watch_poke(ew->w);
    if (eb->neps > 1)
      eb->cur = (ew->ep + 1) % eb->neps;
    uv_timer_start(&ew->timer, on_reconnect,
                   msvc__reg_backoff_ms(&eb->base.reg->opts, ew->attempt++), 0);
  }
  ew_unref(ew);
}

static void stream_start(etcd_watch_t *ew) {
  etcd_backend_t *eb = ew->eb;
  msvc_http_request_t req;
  msvc_http_header_t ct = {"Content-Type", "application/json"};
  msvc__buf_t b;
  int rc;

  ew->ep = eb->cur;
  ew->from_now = ew->revision <= 0;
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "{\"create_request\":{");
  prefix_body(&b, ew->w->service);
  if (ew->revision > 0)
    msvc__buf_printf(&b, ",\"start_revision\":\"%lld\"",
                     (long long)ew->revision + 1);
  msvc__buf_puts(&b, "}}");
  rc = b.err;
  if (rc == MSVC_OK) {
    msvc_http_request_init(&req);
    req.method = "POST";
    req.host = eb->eps[ew->ep].host;
    req.port = eb->eps[ew->ep].port;
    req.target = "/v3/watch";
    req.headers = &ct;
    req.nheaders = 1;
    req.body = b.data;
    req.body_len = b.len;
    req.timeouts.connect_ms = ETCD_CONNECT_TIMEOUT_MS;
    req.timeouts.total_ms = 0;
    req.on_chunk = on_stream_chunk;
    req.on_done = on_stream_done;
    req.data = ew;
    rc = msvc_http_client_request(eb->http, &req, &ew->stream);
  }
  msvc__buf_free(&b);
  if (rc == MSVC_OK) {
    ew->refs++;
    return;
  }
  ew->stream = NULL;
  if (eb->neps > 1)
    eb->cur = (ew->ep + 1) % eb->neps;
  uv_timer_start(&ew->timer, on_reconnect,
                 msvc__reg_backoff_ms(&eb->base.reg->opts, ew->attempt++), 0);
}

static int etcd_watch_start(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  etcd_backend_t *eb = (etcd_backend_t *)b;
  etcd_watch_t *ew = msvc__calloc(1, sizeof(*ew));
  int rc;

  if (ew == NULL)
    return MSVC_ENOMEM;
  if ((rc = uv_timer_init(b->reg->loop, &ew->timer)) != 0) {
    msvc__free(ew);
    return rc;
  }
  ew->eb = eb;
  ew->w = w;
  ew->refs = 1; /* the timer */
  msvc__buf_init(&ew->pending, 4u << 20);
  w->bdata = ew;
  /* Started from the loop, never from inside msvc_registry_watch(). */
  uv_timer_start(&ew->timer, on_reconnect, 0, 0);
  return MSVC_OK;
}

static void on_timer_closed(uv_handle_t *h) {
  ew_unref(msvc__container_of((uv_timer_t *)h, etcd_watch_t, timer));
}

static void etcd_watch_stop(msvc__reg_backend_t *b, msvc_registry_watch_t *w) {
  etcd_watch_t *ew = w->bdata;

  (void)b;
  w->bdata = NULL;
  if (ew != NULL) {
    ew->w = NULL;
    if (ew->stream != NULL)
      msvc_http_call_cancel(ew->stream);
    uv_close((uv_handle_t *)&ew->timer, on_timer_closed);
  }
  msvc__reg_watch_stopped(w);
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void free_backend(etcd_backend_t *eb) {
  size_t i;

  for (i = 0; i < eb->neps; i++)
    msvc__free(eb->eps[i].host);
  msvc__free(eb->eps);
  msvc__free(eb);
}

static void on_http_closed(void *data) {
  etcd_backend_t *eb = data;
  msvc_registry_t *reg = eb->base.reg;

  free_backend(eb);
  msvc__reg_backend_closed(reg);
}

static void etcd_close(msvc__reg_backend_t *b) {
  etcd_backend_t *eb = (etcd_backend_t *)b;

  msvc_http_client_close(eb->http, on_http_closed, eb);
}

static const msvc__reg_ops_t etcd_ops = {
    "etcd",           false,           false,
    etcd_put,         etcd_del,        etcd_resolve,
    etcd_watch_start, etcd_watch_refresh, etcd_watch_stop,
    etcd_close, NULL};

/* "host:port" or "[v6]:port", already validated by the URI parser. */
static int parse_endpoint(const char *s, size_t len, etcd_ep_t *ep) {
  const char *colon = NULL;
  size_t i, hs = 0, hl;

  for (i = len; i > 0; i--)
    if (s[i - 1] == ':') {
      colon = s + i - 1;
      break;
    }
  if (colon == NULL)
    return MSVC_EURI;
  hl = (size_t)(colon - s);
  if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
    hs = 1;
    hl -= 2;
  }
  ep->port = atoi(colon + 1);
  if ((ep->host = msvc__calloc(1, hl + 1)) == NULL)
    return MSVC_ENOMEM;
  memcpy(ep->host, s + hs, hl);
  return MSVC_OK;
}

int msvc__reg_etcd_open(msvc_registry_t *reg, const char *endpoints,
                        msvc__reg_backend_t **out) {
  etcd_backend_t *eb = msvc__calloc(1, sizeof(*eb));
  const char *p = endpoints;
  size_t n = 1;
  int rc = MSVC_OK;

  if (eb == NULL || endpoints == NULL) {
    msvc__free(eb);
    return eb == NULL ? MSVC_ENOMEM : MSVC_EURI;
  }
  for (; *p != '\0'; p++)
    n += *p == ',';
  if ((eb->eps = msvc__calloc(n, sizeof(*eb->eps))) == NULL) {
    msvc__free(eb);
    return MSVC_ENOMEM;
  }
  for (p = endpoints; rc == MSVC_OK && eb->neps < n;) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    if ((rc = parse_endpoint(p, len, &eb->eps[eb->neps])) == MSVC_OK)
      eb->neps++;
    p += len + (comma != NULL);
  }
  if (rc == MSVC_OK) {
    msvc_http_client_opts_t o;
    msvc_http_client_opts_init(&o);
    /* A thousand instances register at once: queue, do not refuse. */
    o.max_queued_per_endpoint = 1u << 16;
    o.max_response_body = 64u << 20;
    rc = msvc_http_client_new(reg->loop, &o, &eb->http);
  }
  if (rc != MSVC_OK) {
    free_backend(eb);
    return rc;
  }
  eb->base.ops = &etcd_ops;
  eb->base.reg = reg;
  *out = &eb->base;
  return MSVC_OK;
}
