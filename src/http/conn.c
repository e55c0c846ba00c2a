/*
 * One client connection: bytes in through the transport, requests out to
 * the router, responses back in request order.
 *
 * Pipelining: every complete request is dispatched at once and queued; a
 * response is written straight into the output buffer when its request is
 * at the front of the queue, else into the request's own buffer until the
 * ones before it are finished. All output produced while handling one read
 * goes out in one write, so a batch of pipelined requests costs one write.
 * When too many requests are queued (or output piles up) the unparsed rest
 * of the input is kept aside and reading stops until the queue shrinks.
 *
 * Closing after an error or a "Connection: close" response is done in two
 * steps: half-close, then read and discard until the peer closes or a short
 * linger expires, so the peer reads the response instead of a reset.
 */
#include <string.h>

#include "http/h2.h"
#include "http/server.h"

#define LINGER_MS 1000
/* How long a cleartext connection over the limit may take to show whether
 * it speaks HTTP/2 before it gets the HTTP/1.1 503. */
#define OVERFLOW_SNIFF_MS 250
#define OUT_HIGH_WATER (256 * 1024)
#define WBUF_KEEP 16384

static void on_tr_read(void *owner, const char *data, size_t len);
static void on_tr_end(void *owner, int status);
static void on_tr_closed(void *owner);

static const msvc__transport_events_t conn_events = {on_tr_read, on_tr_end,
                                                     on_tr_closed};

static int p_on_head(void *ud, msvc__http_head_t *head);
static int p_on_body(void *ud, const char *data, size_t len);
static int p_on_done(void *ud);

static const msvc__http_parser_cbs_t conn_cbs = {p_on_head, p_on_body, p_on_done};

static void on_timer(uv_timer_t *t);
static int answer_overflow(msvc__conn_t *c, bool h2);

/* The idle list holds the connections that can be closed at no cost to
 * anyone when room is needed: those lingering after their last answer at
 * the front, then those kept alive between requests, longest idle first. */
static void set_idle(msvc__conn_t *c, bool idle) {
  if (c->idle == idle)
    return;
  c->idle = idle;
  if (!idle)
    msvc__queue_remove(&c->idle_node);
  else if (c->lingering)
    msvc__queue_insert_head(&c->srv->idle, &c->idle_node);
  else
    msvc__queue_insert_tail(&c->srv->idle, &c->idle_node);
}

bool msvc__conn_shed_idle(msvc_http_server_t *srv) {
  msvc__conn_t *c;

  if (msvc__queue_empty(&srv->idle))
    return false;
  c = msvc__container_of(srv->idle.next, msvc__conn_t, idle_node);
  /* Nothing is owed to the client: a lingering connection has had its
   * last answer, and closing an idle keep-alive connection is ordinary
   * HTTP (its client reconnects). */
  msvc__conn_close(c);
  return true;
}

static void conn_free(msvc__conn_t *c) {
  msvc_http_server_t *srv = c->srv;

  msvc__req_destroy(c->spare);
  msvc__buf_free(&c->wbuf[0]);
  msvc__buf_free(&c->wbuf[1]);
  msvc__free(c->stash);
  msvc__http_parser_free(&c->parser);
#ifdef MSVC_HAVE_NGHTTP2
  msvc__h2s_free(c->h2);
#endif
  msvc__queue_remove(&c->node);
  msvc__free(c);
  msvc__server_conn_gone(srv);
}

static void on_timer_closed(uv_handle_t *h) {
  msvc__conn_t *c = h->data;

  if (--c->handles == 0)
    conn_free(c);
}

static void on_tr_closed(void *owner) {
  msvc__conn_t *c = owner;

  if (--c->handles == 0)
    conn_free(c);
}

/* An idle keep-alive connection gives its spare request, parsed head and
 * write buffers to the server (or frees them when the server has enough):
 * thousands of idle clients then cost little more than their sockets, as
 * nginx frees an idle connection's buffers. */
static void conn_trim(msvc__conn_t *c) {
  msvc_http_server_t *srv = c->srv;
  msvc__http_head_t *h = msvc__http_parser_take_spare(&c->parser);
  int i;

  if (c->spare != NULL) {
    if (srv->nidle_reqs < MSVC__IDLE_CACHE)
      srv->idle_reqs[srv->nidle_reqs++] = c->spare;
    else
      msvc__req_destroy(c->spare);
    c->spare = NULL;
  }
  if (h != NULL) {
    if (srv->nidle_heads < MSVC__IDLE_CACHE)
      srv->idle_heads[srv->nidle_heads++] = h;
    else
      msvc__http_head_free(h);
  }
  for (i = 0; i < 2; i++) {
    msvc__buf_t *b = &c->wbuf[i];

    if (b->cap == 0 || b->len != 0)
      continue;
    if (srv->nidle_bufs < MSVC__IDLE_CACHE) {
      srv->idle_bufs[srv->nidle_bufs++] = *b;
      msvc__buf_init(b, b->max);
    } else {
      msvc__buf_free(b);
    }
  }
}

/* Input arrived: take back what conn_trim() gave away, if the server has it. */
static void conn_refill(msvc__conn_t *c) {
  msvc_http_server_t *srv = c->srv;
  msvc__buf_t *b = &c->wbuf[c->wi];

  if (c->spare == NULL && srv->nidle_reqs > 0)
    c->spare = srv->idle_reqs[--srv->nidle_reqs];
  if (c->parser.spare == NULL && srv->nidle_heads > 0)
    msvc__http_parser_give_spare(&c->parser, srv->idle_heads[--srv->nidle_heads]);
  if (b->cap == 0 && srv->nidle_bufs > 0) {
    size_t max = b->max;

    *b = srv->idle_bufs[--srv->nidle_bufs];
    b->max = max;
  }
}

void msvc__conn_cache_free(msvc_http_server_t *srv) {
  while (srv->nidle_reqs > 0)
    msvc__req_destroy(srv->idle_reqs[--srv->nidle_reqs]);
  while (srv->nidle_heads > 0)
    msvc__http_head_free(srv->idle_heads[--srv->nidle_heads]);
  while (srv->nidle_bufs > 0)
    msvc__buf_free(&srv->idle_bufs[--srv->nidle_bufs]);
}

static bool conn_idle(const msvc__conn_t *c) {
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL)
    return msvc__h2s_streams(c->h2) == 0 && !c->writing;
#endif
  return c->npipe == 0 && c->cur == NULL && !c->writing &&
         !msvc__http_parser_busy(&c->parser);
}

/* When the body being read runs out of time: the whole-body deadline, or
 * the moment its average rate drops below the minimum (counted from the
 * end of the head, once the grace period is over). */
static uint64_t body_limit(const msvc__conn_t *c, bool *rate) {
  const msvc_http_server_opts_t *o = &c->srv->opts;
  uint64_t dl = c->body_start + o->body_deadline_ms, by_rate;

  *rate = false;
  if (o->min_body_rate == 0)
    return dl;
  by_rate = c->parser.body_bytes * 1000 / o->min_body_rate;
  if (by_rate < o->body_rate_grace_ms)
    by_rate = o->body_rate_grace_ms;
  by_rate += c->body_start;
  if (by_rate < dl) {
    *rate = true;
    return by_rate;
  }
  return dl;
}

/* Sets the one deadline that applies now. The timer is only restarted when
 * the deadline moves earlier; a timer firing early re-arms itself, so a busy
 * keep-alive connection does not touch the timer heap on every request. */
static void arm(msvc__conn_t *c) {
  const msvc_http_server_opts_t *o = &c->srv->opts;
  uint64_t now = uv_now(c->srv->loop), dl;
  bool idle = false, rate;

  if (c->closing)
    return;
  if (c->lingering) {
    dl = c->linger_until;
    /* One refused over the limit never held a place: closing it would let
     * a newcomer in beyond the limit. */
    idle = !c->overflow;
#ifdef MSVC_HAVE_NGHTTP2
  } else if (c->h2 != NULL) {
    /* Streams being answered have no connection deadline (a long server
     * stream may stay silent); streams whose requests are still arriving
     * may not be silent longer than a body; a connection without any is
     * idle. */
    if (c->writing || msvc__h2s_all_receiving(c->h2)) {
      dl = now + o->body_timeout_ms;
    } else if (msvc__h2s_streams(c->h2) > 0) {
      dl = 0;
    } else {
      dl = now + o->keepalive_timeout_ms;
      idle = true;
      conn_trim(c);
    }
#endif
  } else if (c->writing) {
    dl = now + o->body_timeout_ms; /* a peer that stops reading is let go */
  } else if (c->npipe > 0) {
    dl = 0; /* the server owes an answer: no client timeout applies */
    /* Reading may be held up meanwhile: the body's clock starts over. */
    c->body_start = now;
  } else if (c->parser.in_body) {
    uint64_t whole = body_limit(c, &rate);
    dl = now + o->body_timeout_ms;
    if (whole < dl)
      dl = whole;
  } else if (msvc__http_parser_busy(&c->parser) || c->nserved == 0) {
    dl = c->head_start + o->header_timeout_ms;
  } else {
    dl = now + o->keepalive_timeout_ms;
    idle = true;
    conn_trim(c);
  }
  set_idle(c, idle);
  c->deadline = dl;
  if (dl == 0)
    return;
  if (!uv_is_active((uv_handle_t *)&c->timer) ||
      now + uv_timer_get_due_in(&c->timer) > dl)
    uv_timer_start(&c->timer, on_timer, dl > now ? dl - now : 0, 0);
}

static void answer_and_close(msvc__conn_t *c, int status, const char *code,
                             const char *message);

static void on_timer(uv_timer_t *t) {
  msvc__conn_t *c = t->data;
  uint64_t now = uv_now(c->srv->loop);
  bool rate;

  if (c->closing || c->deadline == 0)
    return;
  if (now < c->deadline) {
    uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
    return;
  }
  if (c->overflow && !c->sniffed) {
    c->sniffed = true; /* silent: HTTP/1.1 it is */
    answer_overflow(c, false);
    return;
  }
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL && !c->lingering && !c->writing && !c->close_after) {
    /* Idle: say goodbye properly, so the client does not use it again. */
    msvc__h2s_goaway(c->h2);
    c->close_after = true;
    msvc__conn_flush(c);
    return;
  }
#endif
  /* A body that keeps trickling in (a byte now and then, never silent for
   * long) is cut at its deadline or when it falls below the minimum rate,
   * and told why: a legitimate slow client learns to send faster. */
  if (!c->lingering && !c->writing && c->npipe == 0 && c->parser.in_body &&
      now >= body_limit(c, &rate)) {
    answer_and_close(c, 408, "REQUEST_TIMEOUT",
                     rate ? "The request body arrived too slowly."
                          : "The request body did not arrive in time.");
    return;
  }
  /* Header, silence and idle timeouts all end the same way: the peer is too
   * slow or gone, and answering it would only feed a slowloris. */
  msvc__conn_close(c);
}

int msvc__conn_accept(msvc_http_server_t *srv) {
  msvc__transport_t *tr;
  uv_stream_t *stream;
  int rc;

  rc = msvc__tcp_transport_new(srv->loop, &tr, &stream);
  if (rc != 0)
    return rc;
  rc = uv_accept((uv_stream_t *)&srv->listener, stream);
  if (rc != 0) {
    msvc__transport_close(tr); /* no events set: it only frees itself */
    return rc;
  }
  uv_tcp_nodelay((uv_tcp_t *)stream, 1);
#ifdef MSVC_HAVE_TLS
  if (srv->tls != NULL &&
      (rc = msvc__tls_wrap_server_alpn(srv->tls, srv->loop, tr, srv->opts.http2, &tr)) != 0)
    return rc;
  if (srv->tls != NULL)
    msvc__tls_set_work(tr, srv->work);
#endif
  return msvc__conn_attach(srv, tr);
}

/* Answers a connection over max_connections in the protocol it speaks:
 * h2 is an HTTP/2 client (by ALPN, or the cleartext preface). */
static int answer_overflow(msvc__conn_t *c, bool h2) {
  msvc_http_req_t *req;

  if (c->overflow_answered)
    return MSVC_OK;
  c->overflow_answered = true;

#ifdef MSVC_HAVE_NGHTTP2
  const char *alpn = msvc__transport_alpn(c->tr);

  if (h2 || (alpn != NULL && strcmp(alpn, "h2") == 0)) {
    /* Empty SETTINGS, then GOAWAY(NO_ERROR) naming stream 0: nothing was
     * processed, the client may go elsewhere. */
    static const char bye[] = "\0\0\0\4\0\0\0\0\0"
                              "\0\0\x1c\7\0\0\0\0\0"
                              "\0\0\0\0\0\0\0\0too many connections";
    msvc__buf_append(&c->wbuf[c->wi], bye, sizeof(bye) - 1);
    c->close_after = true;
    msvc__conn_flush(c);
    return MSVC_OK;
  }
#else
  (void)h2;
#endif
  req = msvc__req_new(c);
  if (req == NULL) {
    msvc__conn_close(c);
    return MSVC_ENOMEM;
  }
  msvc__queue_insert_tail(&c->pipeline, &req->node);
  req->queued = true;
  c->npipe++;
  msvc_http_res_header(&req->res, "Retry-After", "1");
  msvc__res_error_close(req, 503, "UNAVAILABLE", "too many connections");
  msvc__conn_flush(c);
  return MSVC_OK;
}

int msvc__conn_attach(msvc_http_server_t *srv, msvc__transport_t *tr) {
  msvc__conn_t *c = msvc__calloc(1, sizeof(*c));
  int rc;

  if (c == NULL) {
    msvc__transport_close(tr);
    return MSVC_ENOMEM;
  }
  c->tr = tr;
  c->srv = srv;
  c->tr->ev = &conn_events;
  c->tr->owner = c;
  msvc__http_parser_init(&c->parser, HTTP_REQUEST, &srv->lim, &conn_cbs, c);
  c->parser.host_rule = true;
  msvc__queue_init(&c->pipeline);
  msvc__buf_init(&c->wbuf[0], 0);
  msvc__buf_init(&c->wbuf[1], 0);
  uv_timer_init(srv->loop, &c->timer);
  c->timer.data = c;
  c->handles = 2;
  c->head_start = uv_now(srv->loop);
  msvc__queue_insert_tail(&srv->conns, &c->node);
  srv->nconns++;
  /* At the limit, a lingering or idle keep-alive connection makes room
   * (its memory and descriptor go a moment later, in its close callback). */
  if (srv->nconns > srv->max_conns && !msvc__conn_shed_idle(srv)) {
    c->overflow = true;
#ifdef MSVC_HAVE_NGHTTP2
    /* Over TLS the answer waits for the handshake: ALPN says whether the
     * client expects HTTP/2 frames or an HTTP/1.1 response. (sniffed marks
     * the reading started for it.) */
    if (srv->opts.http2 && msvc__transport_secure(tr, NULL)) {
      c->sniffed = true;
      if ((rc = msvc__transport_read_start(c->tr)) != 0) {
        msvc__conn_close(c);
        return rc;
      }
      arm(c);
      return MSVC_OK;
    }
    /* In clear, an h2c client (prior knowledge) cannot read an HTTP/1.1
     * 503: its first bytes say which answer it can read. Clients send them
     * at once, so the wait is short; silence gets the 503. */
    if (srv->opts.http2) {
      if ((rc = msvc__transport_read_start(c->tr)) != 0) {
        msvc__conn_close(c);
        return rc;
      }
      c->deadline = uv_now(srv->loop) + OVERFLOW_SNIFF_MS;
      uv_timer_start(&c->timer, on_timer, OVERFLOW_SNIFF_MS, 0);
      return MSVC_OK;
    }
#endif
    return answer_overflow(c, false);
  }
  rc = msvc__transport_read_start(c->tr);
  if (rc != 0) {
    msvc__conn_close(c);
    return rc;
  }
  arm(c);
  return MSVC_OK;
}

static void detach_all(msvc__conn_t *c) {
  while (!msvc__queue_empty(&c->pipeline)) {
    msvc_http_req_t *req = msvc__container_of(c->pipeline.next, msvc_http_req_t, node);
    msvc__queue_remove(&req->node);
    req->queued = false;
    c->npipe--;
    msvc__req_detach(req);
  }
}

void msvc__conn_close(msvc__conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
  set_idle(c, false);
  if (c->cur != NULL) {
    msvc__req_destroy(c->cur);
    c->cur = NULL;
  }
  detach_all(c);
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL)
    msvc__h2s_detach_all(c->h2);
#endif
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  msvc__transport_close(c->tr);
}

void msvc__conn_drain(msvc__conn_t *c) {
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL) {
    msvc__conn_flush(c); /* GOAWAY; closes once the streams are done */
    return;
  }
#endif
  if (conn_idle(c))
    msvc__conn_close(c);
}

/* Moves finished responses at the front of the queue into the output. */
static void collect(msvc__conn_t *c) {
  msvc__buf_t *w = &c->wbuf[c->wi];

  if (c->h2 != NULL)
    return; /* streams are answered in any order, not through the queue */
  while (!msvc__queue_empty(&c->pipeline)) {
    msvc_http_req_t *req = msvc__container_of(c->pipeline.next, msvc_http_req_t, node);
    if (req->out.len > 0) {
      msvc__buf_append(w, req->out.data, req->out.len);
      msvc__buf_free(&req->out);
    }
    if (req->state != RES_DONE || req->running)
      break;
    msvc__queue_remove(&req->node);
    req->queued = false;
    c->npipe--;
    if (req->close)
      c->close_after = true;
    msvc__req_release(req);
    if (c->close_after) {
      detach_all(c);
      break;
    }
  }
  if (c->srv->draining && c->npipe == 0)
    c->close_after = true;
}

static void on_written(msvc__transport_t *t, int status, void *arg) {
  msvc__conn_t *c = arg;
  msvc__buf_t *done = &c->wbuf[c->wi ^ 1];

  (void)t;
  c->writing = false;
  done->len = 0;
  if (done->cap > WBUF_KEEP)
    msvc__buf_free(done);
  if (c->closing)
    return;
  if (status < 0) {
    msvc__conn_close(c);
    return;
  }
  msvc__conn_flush(c);
}

static void start_linger(msvc__conn_t *c) {
  c->lingering = true;
  c->linger_until = uv_now(c->srv->loop) + LINGER_MS;
  c->tr->ops->shutdown(c->tr);
  if (c->read_stopped || (c->overflow && !c->sniffed)) {
    c->read_stopped = false;
    if (msvc__transport_read_start(c->tr) != 0) {
      msvc__conn_close(c);
      return;
    }
  }
  arm(c);
}

static bool start_write(msvc__conn_t *c) {
  msvc__buf_t *w = &c->wbuf[c->wi];
  uv_buf_t b;
  int rc;

  if (c->writing || c->closing)
    return false;
  if (w->err != MSVC_OK) {
    msvc__conn_close(c);
    return false;
  }
  if (w->len == 0) {
    if (c->close_after && msvc__queue_empty(&c->pipeline) && !c->lingering)
      start_linger(c);
    return false;
  }
  b = uv_buf_init(w->data, (unsigned)w->len);
  c->wi ^= 1;
  c->writing = true;
  rc = msvc__transport_write(c->tr, &b, 1, on_written, c);
  if (rc == MSVC__TRANSPORT_WROTE) {
    /* Written at once, no callback follows: the buffer is free again. */
    c->writing = false;
    w->len = 0;
    if (w->cap > WBUF_KEEP)
      msvc__buf_free(w);
    /* Once more: output produced meanwhile, or the close that follows. */
    return start_write(c);
  }
  if (rc != 0) {
    c->writing = false;
    msvc__conn_close(c);
    return false;
  }
  return true;
}

static bool input_blocked(const msvc__conn_t *c) {
  return c->npipe >= c->srv->opts.max_pipeline ||
         (c->writing && c->wbuf[c->wi].len >= OUT_HIGH_WATER);
}

static int stash(msvc__conn_t *c, const char *data, size_t len) {
  char *s = msvc__malloc(c->nstash + len);

  if (s == NULL)
    return MSVC_ENOMEM;
  if (c->nstash > 0)
    memcpy(s, c->stash, c->nstash);
  memcpy(s + c->nstash, data, len);
  msvc__free(c->stash);
  c->stash = s;
  c->nstash += len;
  if (!c->read_stopped) {
    msvc__transport_read_stop(c->tr);
    c->read_stopped = true;
  }
  return 0;
}

/* Ends the connection with one last answer, after the responses owed
 * before it. */
static void answer_and_close(msvc__conn_t *c, int status, const char *code,
                             const char *message) {
  msvc_http_req_t *req;

  if (c->cur != NULL) {
    msvc__req_destroy(c->cur);
    c->cur = NULL;
  }
  c->close_after = true;
  req = msvc__req_new(c);
  if (req == NULL) {
    msvc__conn_close(c);
    return;
  }
  msvc__queue_insert_tail(&c->pipeline, &req->node);
  req->queued = true;
  c->npipe++;
  msvc__res_error_close(req, status, code, message);
}

static void protocol_error(msvc__conn_t *c) {
  const msvc__http_parser_t *p = &c->parser;
  msvc_http_req_t *req;
  const char *code = "INVALID_ARGUMENT";

  if (c->cur != NULL) {
    msvc__req_destroy(c->cur);
    c->cur = NULL;
  }
  c->close_after = true;
  if (p->err_status == 0 || p->err_status >= 500 ||
      (req = msvc__req_new(c)) == NULL)
    return;
  if (p->err_status == 413)
    code = "PAYLOAD_TOO_LARGE";
  else if (p->err_status == 431)
    code = "HEADERS_TOO_LARGE";
  msvc__queue_insert_tail(&c->pipeline, &req->node);
  req->queued = true;
  c->npipe++;
  msvc__res_error_close(req, p->err_status, code, p->err_reason);
}

static void feed(msvc__conn_t *c, const char *data, size_t len) {
  while (len > 0 && !c->closing && !c->close_after) {
    size_t used;
    int rc;

    if (input_blocked(c)) {
      if (stash(c, data, len) != 0)
        msvc__conn_close(c);
      return;
    }
    rc = msvc__http_parser_feed(&c->parser, data, len, &used);
    data += used;
    len -= used;
    if (rc < 0) {
      protocol_error(c);
      return;
    }
  }
}

#ifdef MSVC_HAVE_NGHTTP2
static void h2_read(msvc__conn_t *c, const char *data, size_t len) {
  conn_refill(c);
  set_idle(c, false);
  c->in_read = true;
  if (msvc__h2s_feed(c->h2, data, len) != 0)
    c->close_after = true;
  c->in_read = false;
  msvc__conn_flush(c);
}

static void h2_start(msvc__conn_t *c, const char *a, size_t alen,
                     const char *b, size_t blen) {
  if (msvc__h2s_new(c, &c->h2) != 0) {
    msvc__conn_close(c);
    return;
  }
  if (alen > 0) {
    c->in_read = true;
    if (msvc__h2s_feed(c->h2, a, alen) != 0)
      c->close_after = true;
    c->in_read = false;
  }
  if (blen > 0 && !c->close_after)
    h2_read(c, b, blen);
  else
    msvc__conn_flush(c);
}

/* The first bytes decide the protocol: the HTTP/2 preface (prior
 * knowledge), ALPN's choice over TLS, else HTTP/1.x. Bytes that may still
 * become the preface wait in c->preface. Returns true when the data was
 * consumed here. */
static bool sniff(msvc__conn_t *c, const char *data, size_t len) {
  const char *alpn = msvc__transport_alpn(c->tr);
  size_t take;
  int r;

  if (alpn != NULL && strcmp(alpn, "h2") == 0) {
    c->sniffed = true;
    h2_start(c, NULL, 0, data, len);
    return true;
  }
  if (!c->srv->opts.http2 || alpn != NULL) {
    c->sniffed = true;
    return false;
  }
  take = MSVC__H2_PREFACE_LEN - c->npreface;
  if (take > len)
    take = len;
  memcpy(c->preface + c->npreface, data, take);
  r = msvc__h2_preface_check(c->preface, c->npreface + take);
  if (r == 0) {
    c->npreface = (uint8_t)(c->npreface + take);
    return true;
  }
  c->sniffed = true;
  if (r == 1) {
    h2_start(c, c->preface, MSVC__H2_PREFACE_LEN, data + take, len - take);
    return true;
  }
  if (c->npreface > 0) {
    /* Not HTTP/2 after all: what was held goes first. */
    char held[MSVC__H2_PREFACE_LEN];
    size_t n = c->npreface;

    memcpy(held, c->preface, n);
    c->npreface = 0;
    conn_refill(c);
    c->in_read = true;
    feed(c, held, n);
    c->in_read = false;
  }
  return false;
}
#endif

#ifdef MSVC_HAVE_NGHTTP2
/* A cleartext connection over the limit: answers once its first bytes are
 * the HTTP/2 preface or cannot be. */
static void overflow_sniff(msvc__conn_t *c, const char *data, size_t len) {
  size_t take = MSVC__H2_PREFACE_LEN - c->npreface;
  int r;

  if (take > len)
    take = len;
  memcpy(c->preface + c->npreface, data, take);
  c->npreface = (uint8_t)(c->npreface + take);
  r = msvc__h2_preface_check(c->preface, c->npreface);
  if (r == 0)
    return;
  c->sniffed = true;
  c->npreface = 0;
  answer_overflow(c, r == 1);
}
#endif

static void on_tr_read(void *owner, const char *data, size_t len) {
  msvc__conn_t *c = owner;

  if (c->closing || c->lingering)
    return;
  if (c->overflow) {
#ifdef MSVC_HAVE_NGHTTP2
    if (!c->sniffed) {
      overflow_sniff(c, data, len);
      return;
    }
#endif
    if (c->sniffed)
      answer_overflow(c, false); /* over TLS, now that ALPN is known */
    return;
  }
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL) {
    h2_read(c, data, len);
    return;
  }
  if (!c->sniffed && sniff(c, data, len))
    return;
  if (c->closing)
    return;
#endif
  if (c->stash != NULL) {
    /* Input kept aside goes first. */
    if (stash(c, data, len) != 0)
      msvc__conn_close(c);
    return;
  }
  conn_refill(c);
  if (c->nserved > 0 && !msvc__http_parser_busy(&c->parser))
    c->head_start = uv_now(c->srv->loop);
  /* Busy again; arm() puts it back at the end of the idle list. */
  set_idle(c, false);
  c->in_read = true;
  feed(c, data, len);
  c->in_read = false;
  msvc__conn_flush(c);
}

static void on_tr_end(void *owner, int status) {
  msvc__conn_t *c = owner;

  (void)status;
  /* Like nginx, a peer that closes its side while requests are in flight is
   * taken to have given up on them: their handlers are cancelled. */
  msvc__conn_close(c);
}

/* Feeds input kept aside while the pipeline was full. */
static void resume_input(msvc__conn_t *c) {
  char *s = c->stash;
  size_t n = c->nstash;

  c->stash = NULL;
  c->nstash = 0;
  if (s != NULL) {
    c->in_read = true;
    feed(c, s, n);
    c->in_read = false;
    msvc__free(s);
  }
  if (c->stash == NULL && c->read_stopped && !c->closing && !c->close_after) {
    c->read_stopped = false;
    if (msvc__transport_read_start(c->tr) != 0)
      msvc__conn_close(c);
  }
}

#ifdef MSVC_HAVE_NGHTTP2
/* Frames out while the socket takes them; on_written comes back here, so
 * a long body keeps flowing after each write of the buffer. */
static void h2_flush(msvc__conn_t *c) {
  for (;;) {
    if (c->srv->draining)
      msvc__h2s_goaway(c->h2);
    if (!msvc__h2s_pump(c->h2) ||
        (c->srv->draining && msvc__h2s_streams(c->h2) == 0))
      c->close_after = true;
    if (c->wbuf[c->wi].err != MSVC_OK) {
      /* Frames nghttp2 handed over were lost: the session cannot go on. */
      msvc__conn_close(c);
      return;
    }
    if (c->wbuf[c->wi].len == 0 && !c->close_after)
      break; /* nothing to send now */
    start_write(c);
    /* Written at once: frames held back at the high-water mark go next. */
    if (c->closing || c->writing || c->lingering || c->close_after ||
        !msvc__h2s_want_write(c->h2))
      break;
  }
  if (!c->closing)
    arm(c);
}
#endif

void msvc__conn_flush(msvc__conn_t *c) {
  if (c->in_read || c->closing)
    return;
#ifdef MSVC_HAVE_NGHTTP2
  if (c->h2 != NULL) {
    h2_flush(c);
    return;
  }
#endif
  for (;;) {
    collect(c);
    start_write(c);
    if (c->closing)
      return;
    if ((c->stash != NULL || c->read_stopped) && !c->close_after &&
        !c->lingering && !input_blocked(c)) {
      resume_input(c);
      if (c->closing)
        return;
      continue;
    }
    break;
  }
  arm(c);
}

void msvc__conn_collect(msvc__conn_t *c) {
  collect(c);
}

static int p_on_head(void *ud, msvc__http_head_t *head) {
  msvc__conn_t *c = ud;
  msvc_http_req_t *req = msvc__req_new(c);
  const char *target;
  size_t i;

  if (req == NULL) {
    msvc__http_head_free(head);
    return MSVC_ENOMEM;
  }
  req->head = head;
  target = msvc__http_head_str(head, head->target);
  for (i = 0; i < head->target_len && target[i] != '?' && target[i] != '#'; i++)
    ;
  req->path_len = (uint32_t)i;
  req->is_head = head->method == HTTP_HEAD;
  req->t0 = uv_hrtime();
  c->cur = req;
  c->body_start = uv_now(c->srv->loop);
  if (head->expect_continue && (head->chunked || head->content_length > 0) &&
      c->npipe == 0 && !c->srv->draining && head->http_minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    msvc__buf_append(&c->wbuf[c->wi], cont, sizeof(cont) - 1);
  }
  return 0;
}

static int p_on_body(void *ud, const char *data, size_t len) {
  msvc__conn_t *c = ud;

  if (c->cur == NULL)
    return MSVC_EHTTP_PARSE;
  msvc__buf_append(&c->cur->body, data, len);
  return c->cur->body.err;
}

static int p_on_done(void *ud) {
  msvc__conn_t *c = ud;
  msvc_http_req_t *req = c->cur;

  if (req == NULL)
    return MSVC_EHTTP_PARSE;
  c->cur = NULL;
  msvc__queue_insert_tail(&c->pipeline, &req->node);
  req->queued = true;
  c->npipe++;
  c->nserved++;
  msvc__req_dispatch(req);
  return 0;
}
