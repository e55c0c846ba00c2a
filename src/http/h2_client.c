/*
 * HTTP/2 client connections on nghttp2: see h2.h for the design.
 *
 * An endpoint keeps up to h2_conns_per_endpoint connections; a call's
 * attempt becomes one stream on the least busy of them (nghttp2 holds
 * streams beyond the server's limit until one closes). Calls waiting for a
 * connection to be established, and calls with a stream, are in the
 * connection's list, so that a failing connection ends each of them.
 * nghttp2 is never freed from inside one of its callbacks: a connection's
 * memory goes in its handles' close callbacks.
 */
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "http/client.h"
#include "http/h2.h"

#define OUT_HIGH_WATER (256 * 1024)

typedef struct msvc__h2cc_s {
  msvc__queue_t node; /* in ep->h2conns */
  msvc__endpoint_t *ep;
  msvc__transport_t *tr;
  uv_tcp_t *tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  uv_timer_t idle_timer;
  nghttp2_session *ng;
  msvc__buf_t wbuf[2];
  uint8_t wi;
  msvc__queue_t calls; /* waiting for the connection, or with a stream */
  uint32_t ncalls;
  uint8_t handles;
  bool resolving;
  bool connected;
  bool closing;
  bool writing;
  bool in_read;
  bool alpn_checked;
} msvc__h2cc_t;

static void cc_on_read(void *owner, const char *data, size_t len);
static void cc_on_end(void *owner, int status);
static void cc_on_closed(void *owner);
static const msvc__transport_events_t cc_events = {cc_on_read, cc_on_end, cc_on_closed};
static void cc_flush(msvc__h2cc_t *cc);
static void cc_fail(msvc__h2cc_t *cc, int err);

/* ---- requests -------------------------------------------------------------- */

static int head_add(msvc__http_head_t *h, const char *name, size_t nlen,
                    const char *value, size_t vlen, bool lower) {
  msvc__http_field_t *f;
  size_t i;

  if (h->nfields == h->cap) {
    uint32_t cap = h->cap == 0 ? 16 : h->cap * 2;
    f = msvc__realloc(h->fields, cap * sizeof(*f));
    if (f == NULL)
      return MSVC_ENOMEM;
    h->fields = f;
    h->cap = cap;
  }
  f = &h->fields[h->nfields];
  f->name = (uint32_t)h->raw.len;
  f->name_len = (uint32_t)nlen;
  for (i = 0; i < nlen; i++)
    msvc__buf_putc(&h->raw, lower && name[i] >= 'A' && name[i] <= 'Z'
                                ? (char)(name[i] - 'A' + 'a')
                                : name[i]);
  msvc__buf_putc(&h->raw, '\0');
  f->value = (uint32_t)h->raw.len;
  f->value_len = (uint32_t)vlen;
  msvc__buf_append(&h->raw, value, vlen);
  msvc__buf_putc(&h->raw, '\0');
  if (h->raw.err != MSVC_OK)
    return h->raw.err;
  h->nfields++;
  return MSVC_OK;
}

static msvc__http_head_t *head_new(void) {
  msvc__http_head_t *h = msvc__calloc(1, sizeof(*h));

  if (h != NULL)
    msvc__buf_init(&h->raw, 0);
  return h;
}

static bool conn_specific(const char *name) {
  return msvc__strcasecmp(name, "connection") == 0 ||
         msvc__strcasecmp(name, "keep-alive") == 0 ||
         msvc__strcasecmp(name, "proxy-connection") == 0 ||
         msvc__strcasecmp(name, "transfer-encoding") == 0 ||
         msvc__strcasecmp(name, "upgrade") == 0 || msvc__strcasecmp(name, "host") == 0;
}

int msvc__h2c_prepare(msvc_http_call_t *call, const msvc_http_request_t *r,
                      const char *path, size_t path_len) {
  msvc__endpoint_t *ep = call->ep;
  msvc__http_head_t *h;
  const char *authority = NULL;
  char def[300];
  size_t i;
  int rc = 0;

#ifndef MSVC_HAVE_TLS
  if (ep->tls)
    return MSVC_ENOTSUP;
#endif
  for (i = 0; i < r->nheaders; i++)
    if (msvc__strcasecmp(r->headers[i].name, "host") == 0)
      authority = r->headers[i].value;
  if (authority == NULL) {
    if (ep->port != (ep->tls ? 443 : 80))
      snprintf(def, sizeof(def), "%s", ep->key);
    else
      snprintf(def, sizeof(def), strchr(ep->host, ':') ? "[%s]" : "%s", ep->host);
    authority = def;
  }
  if ((h = head_new()) == NULL)
    return MSVC_ENOMEM;
  /* Pseudo-headers first, in the order RFC 9113 8.3.1 lists them. */
  rc |= head_add(h, ":method", 7, call->method, strlen(call->method), false);
  rc |= head_add(h, ":scheme", 7, ep->tls ? "https" : "http", ep->tls ? 5 : 4, false);
  rc |= head_add(h, ":authority", 10, authority, strlen(authority), false);
  rc |= head_add(h, ":path", 5, path, path_len, false);
  for (i = 0; i < r->nheaders && rc == 0; i++)
    if (!conn_specific(r->headers[i].name))
      rc = head_add(h, r->headers[i].name, strlen(r->headers[i].name),
                    r->headers[i].value, strlen(r->headers[i].value), true);
  if (rc != 0) {
    msvc__http_head_free(h);
    return MSVC_ENOMEM;
  }
  msvc__buf_init(&call->h2body, 0);
  if (r->body_len > 0) {
    msvc__buf_append(&call->h2body, r->body, r->body_len);
    if (call->h2body.err != MSVC_OK) {
      msvc__http_head_free(h);
      return MSVC_ENOMEM;
    }
  }
  call->h2req = h;
  call->h2 = true;
  return MSVC_OK;
}

/* A streamed body: DATA frames are filled from the source's pieces as the
 * stream's flow-control window opens; a piece larger than a frame is sent
 * over several. The source's error resets the stream and ends the call
 * with that error. */
static ssize_t read_source(msvc_http_call_t *call, uint8_t *buf, size_t length,
                           uint32_t *flags) {
  size_t n;

  while (call->h2piece_off == call->h2piece_len) {
    const char *piece = NULL;
    size_t len = 0;
    int rc;

    call->h2src_used = true;
    rc = call->body_source(call, &piece, &len, call->data);
    if (rc < 0) {
      call->h2src_err = rc;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (len == 0 || piece == NULL) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    call->h2piece = piece;
    call->h2piece_len = len;
    call->h2piece_off = 0;
  }
  n = call->h2piece_len - call->h2piece_off;
  if (n > length)
    n = length;
  memcpy(buf, call->h2piece + call->h2piece_off, n);
  call->h2piece_off += n;
  return (ssize_t)n;
}

static ssize_t on_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *ud) {
  msvc_http_call_t *call = src->ptr;
  size_t n = call->h2body.len - call->h2off;

  (void)ng;
  (void)id;
  (void)ud;
  if (call->body_source != NULL)
    return read_source(call, buf, length, flags);
  if (n > length)
    n = length;
  if (n > 0)
    memcpy(buf, call->h2body.data + call->h2off, n);
  call->h2off += n;
  if (call->h2off == call->h2body.len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

static void submit(msvc__h2cc_t *cc, msvc_http_call_t *call) {
  const msvc__http_head_t *h = call->h2req;
  nghttp2_nv stack[32], *nv = stack;
  nghttp2_data_provider prd;
  bool body;
  uint32_t i;
  int32_t id;

  if (h->nfields > 32 && (nv = msvc__malloc(h->nfields * sizeof(*nv))) == NULL) {
    cc_fail(cc, MSVC_ENOMEM);
    return;
  }
  for (i = 0; i < h->nfields; i++) {
    nv[i].name = (uint8_t *)msvc__http_head_str(h, h->fields[i].name);
    nv[i].namelen = h->fields[i].name_len;
    nv[i].value = (uint8_t *)msvc__http_head_str(h, h->fields[i].value);
    nv[i].valuelen = h->fields[i].value_len;
    nv[i].flags = NGHTTP2_NV_FLAG_NONE;
  }
  call->h2off = 0;
  call->h2piece = NULL;
  call->h2piece_len = call->h2piece_off = 0;
  body = call->h2body.len > 0 || call->body_source != NULL;
  prd.source.ptr = call;
  prd.read_callback = on_read_body;
  id = nghttp2_submit_request(cc->ng, NULL, nv, h->nfields, body ? &prd : NULL, call);
  if (nv != stack)
    msvc__free(nv);
  if (id < 0) {
    msvc__queue_remove(&call->wnode);
    msvc__queue_init(&call->wnode);
    cc->ncalls--;
    call->h2c = NULL;
    msvc__call_attempt_end(call, id == NGHTTP2_ERR_NOMEM ? MSVC_ENOMEM : MSVC_ECONNRESET,
                           false);
    return;
  }
  call->h2id = id;
  call->sent = true;
  call->state = ST_WAITING;
  call->dl_phase = call->to.first_byte_ms ? uv_now(cc->ep->c->loop) + call->to.first_byte_ms : 0;
  msvc__call_arm(call);
}

/* ---- responses ------------------------------------------------------------- */

static msvc_http_call_t *call_of(msvc__h2cc_t *cc, int32_t id) {
  return nghttp2_session_get_stream_user_data(cc->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  msvc_http_call_t *call = call_of(ud, frame->hd.stream_id);

  (void)ng;
  if (call == NULL || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  if (!call->got_bytes) {
    call->got_bytes = true;
    call->state = ST_RECEIVING;
    call->dl_phase = 0;
    msvc__call_arm(call);
  }
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *ud) {
  msvc__h2cc_t *cc = ud;
  msvc_http_call_t *call = call_of(cc, frame->hd.stream_id);
  const msvc_http_client_opts_t *o = &cc->ep->c->o;
  msvc__http_head_t **hp;

  (void)ng;
  (void)flags;
  if (call == NULL || frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  /* A HEADERS frame after the final response head carries trailers. */
  hp = call->res.head != NULL && call->res.head->status >= 200 &&
               frame->headers.cat == NGHTTP2_HCAT_HEADERS
           ? &call->res.trailers
           : &call->res.head;
  if (*hp == NULL && (*hp = head_new()) == NULL)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
    int st = 0;
    size_t i;

    for (i = 0; i < vlen && i < 3; i++)
      st = st * 10 + (value[i] - '0');
    if (st >= 100 && st < 200) {
      /* An interim answer: the real head follows. */
      msvc__http_head_free(*hp);
      *hp = NULL;
      return 0;
    }
    (*hp)->status = st;
    (*hp)->http_major = 2;
    (*hp)->keep_alive = true;
    return 0;
  }
  if ((*hp)->raw.len + nlen + vlen > o->max_response_head ||
      (*hp)->nfields >= o->max_response_headers)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (head_add(*hp, (const char *)name, nlen, (const char *)value, vlen, false) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud) {
  msvc__h2cc_t *cc = ud;
  msvc_http_call_t *call = call_of(cc, id);

  (void)flags;
  if (call == NULL || call->res.head == NULL)
    return 0;
  if (call->on_chunk != NULL) {
    call->streamed = true;
    call->on_chunk(call, &call->res, (const char *)data, len, call->data);
    return 0;
  }
  if (call->res.body.len + len > call->max_body) {
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    msvc__queue_remove(&call->wnode);
    msvc__queue_init(&call->wnode);
    cc->ncalls--;
    call->h2c = NULL;
    msvc__call_attempt_end(call, MSVC_ETOOLARGE, false);
    return 0;
  }
  msvc__buf_append(&call->res.body, data, len);
  return call->res.body.err == MSVC_OK ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static void arm_idle(msvc__h2cc_t *cc);

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
  msvc__h2cc_t *cc = ud;
  msvc_http_call_t *call = call_of(cc, id);
  bool ok;

  if (call == NULL)
    return 0;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  msvc__queue_remove(&call->wnode);
  msvc__queue_init(&call->wnode);
  cc->ncalls--;
  call->h2c = NULL;
  ok = code == NGHTTP2_NO_ERROR && call->res.head != NULL && call->res.head->status >= 200;
  if (!ok && call->h2src_err != 0) {
    msvc__call_attempt_end(call, call->h2src_err, false);
  } else if (!ok && code == NGHTTP2_REFUSED_STREAM && !call->got_bytes &&
             !call->h2src_used && ++call->h2refused <= 3) {
    /* Refused (GOAWAY, stream limit): never processed, safe to send again
     * (a few times: a server refusing everything fails the attempt). */
    msvc__http_head_free(call->res.head);
    call->res.head = NULL;
    msvc__h2c_dispatch(call);
  } else {
    msvc__call_attempt_end(call, ok ? 0 : MSVC_ECONNRESET, ok);
  }
  arm_idle(cc);
  return 0;
}

/* ---- the connection ---------------------------------------------------------- */

static void cc_maybe_free(msvc__h2cc_t *cc) {
  msvc_http_client_t *c = cc->ep->c;

  if (cc->handles > 0 || cc->resolving)
    return;
  if (cc->ng != NULL)
    nghttp2_session_del(cc->ng);
  msvc__buf_free(&cc->wbuf[0]);
  msvc__buf_free(&cc->wbuf[1]);
  msvc__free(cc);
  c->nconns--;
  msvc__client_maybe_closed(c);
}

static void on_idle_timer_closed(uv_handle_t *h) {
  msvc__h2cc_t *cc = h->data;

  cc->handles--;
  cc_maybe_free(cc);
}

static void cc_on_closed(void *owner) {
  msvc__h2cc_t *cc = owner;

  cc->handles--;
  cc_maybe_free(cc);
}

static void cc_close(msvc__h2cc_t *cc) {
  if (cc->closing)
    return;
  cc->closing = true;
  msvc__queue_remove(&cc->node);
  cc->ep->nh2--;
  uv_close((uv_handle_t *)&cc->idle_timer, on_idle_timer_closed);
  msvc__transport_close(cc->tr);
}

/* Ends the connection and, with err, every call on it. */
static void cc_fail(msvc__h2cc_t *cc, int err) {
  cc_close(cc);
  while (!msvc__queue_empty(&cc->calls)) {
    msvc_http_call_t *call = msvc__container_of(cc->calls.next, msvc_http_call_t, wnode);

    msvc__queue_remove(&call->wnode);
    msvc__queue_init(&call->wnode);
    cc->ncalls--;
    call->h2c = NULL;
    if (cc->ng != NULL && call->h2id > 0)
      nghttp2_session_set_stream_user_data(cc->ng, call->h2id, NULL);
    msvc__call_attempt_end(call, err, false);
  }
}

static void on_idle(uv_timer_t *t) {
  msvc__h2cc_t *cc = t->data;

  if (cc->ncalls == 0)
    cc_fail(cc, MSVC_ECONNRESET);
}

static void arm_idle(msvc__h2cc_t *cc) {
  if (cc->closing)
    return;
  if (cc->ncalls == 0)
    uv_timer_start(&cc->idle_timer, on_idle, cc->ep->c->o.idle_timeout_ms, 0);
  else
    uv_timer_stop(&cc->idle_timer);
}

static void on_written(msvc__transport_t *t, int status, void *arg) {
  msvc__h2cc_t *cc = arg;

  (void)t;
  cc->writing = false;
  cc->wbuf[cc->wi ^ 1].len = 0;
  if (cc->closing)
    return;
  if (status < 0) {
    cc_fail(cc, status == UV_EPIPE ? MSVC_ECONNRESET : status);
    return;
  }
  cc_flush(cc);
}

static void cc_flush(msvc__h2cc_t *cc) {
  while (!cc->closing && !cc->writing && !cc->in_read && cc->connected) {
    msvc__buf_t *w = &cc->wbuf[cc->wi];
    uv_buf_t b;
    int rc;

    while (w->len < OUT_HIGH_WATER && w->err == MSVC_OK) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(cc->ng, &p);

      if (n < 0) {
        cc_fail(cc, MSVC_ECONNRESET);
        return;
      }
      if (n == 0)
        break;
      msvc__buf_append(w, p, (size_t)n);
    }
    if (w->err != MSVC_OK) {
      cc_fail(cc, MSVC_ENOMEM);
      return;
    }
    if (w->len == 0) {
      if (!nghttp2_session_want_read(cc->ng) && !nghttp2_session_want_write(cc->ng))
        cc_fail(cc, MSVC_ECONNRESET);
      return;
    }
    b = uv_buf_init(w->data, (unsigned)w->len);
    cc->wi ^= 1;
    cc->writing = true;
    rc = msvc__transport_write(cc->tr, &b, 1, on_written, cc);
    if (rc == MSVC__TRANSPORT_WROTE) {
      cc->writing = false;
      w->len = 0;
    } else if (rc != 0) {
      cc->writing = false;
      cc_fail(cc, rc);
      return;
    }
  }
}

static void cc_on_read(void *owner, const char *data, size_t len) {
  msvc__h2cc_t *cc = owner;
  ssize_t n;

  if (cc->closing)
    return;
  if (cc->ep->tls && !cc->alpn_checked) {
    const char *alpn = msvc__transport_alpn(cc->tr);

    /* The server did not take h2: it speaks HTTP/1.1 (or nothing) here. */
    cc->alpn_checked = true;
    if (alpn == NULL || strcmp(alpn, "h2") != 0) {
      cc_fail(cc, MSVC_EHTTP_BAD_RESPONSE);
      return;
    }
  }
  cc->in_read = true;
  n = nghttp2_session_mem_recv(cc->ng, (const uint8_t *)data, len);
  cc->in_read = false;
  if (cc->closing)
    return;
  if (n < 0) {
    cc_fail(cc, MSVC_EHTTP_BAD_RESPONSE);
    return;
  }
  cc_flush(cc);
}

static void cc_on_end(void *owner, int status) {
  msvc__h2cc_t *cc = owner;

  if (!cc->closing)
    cc_fail(cc, status == UV_EOF || status == UV_EPIPE ? MSVC_ECONNRESET : status);
}

static void cc_connected(msvc__h2cc_t *cc) {
  msvc__queue_t *q, *next;
  int rc;

  cc->connected = true;
  if ((rc = msvc__transport_read_start(cc->tr)) != 0) {
    cc_fail(cc, rc);
    return;
  }
  if (cc->tcp != NULL)
    (void)uv_tcp_nodelay(cc->tcp, 1);
  for (q = cc->calls.next; q != &cc->calls; q = next) {
    next = q->next;
    submit(cc, msvc__container_of(q, msvc_http_call_t, wnode));
    if (cc->closing)
      return;
  }
  arm_idle(cc); /* the calls it was opened for may be gone already */
  cc_flush(cc);
}

static void on_connect(uv_connect_t *req, int status) {
  msvc__h2cc_t *cc = msvc__container_of(req, msvc__h2cc_t, creq);

  if (cc->closing)
    return;
  if (status < 0)
    cc_fail(cc, status);
  else
    cc_connected(cc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  msvc__h2cc_t *cc = msvc__container_of(req, msvc__h2cc_t, gai);
  int rc;

  cc->resolving = false;
  if (cc->closing) {
    uv_freeaddrinfo(res);
    cc_maybe_free(cc);
    return;
  }
  if (status < 0 || res == NULL) {
    uv_freeaddrinfo(res);
    cc_fail(cc, status == UV_ENOMEM ? MSVC_ENOMEM : MSVC_EHTTP_DNS);
    return;
  }
  rc = uv_tcp_connect(&cc->creq, cc->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc != 0)
    cc_fail(cc, rc);
}

static void cc_start(msvc__h2cc_t *cc) {
  msvc__endpoint_t *ep = cc->ep;
  struct sockaddr_storage ss;
  struct addrinfo hints;
  char port[8];
  int rc;

  if (cc->tcp == NULL) {
    cc_connected(cc);
    return;
  }
  if (uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss) == 0) {
    if ((rc = uv_tcp_connect(&cc->creq, cc->tcp, (struct sockaddr *)&ss, on_connect)) != 0)
      cc_fail(cc, rc);
    return;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%d", ep->port);
  cc->resolving = true;
  rc = uv_getaddrinfo(ep->c->loop, &cc->gai, on_resolved, ep->host, port, &hints);
  if (rc != 0) {
    cc->resolving = false;
    cc_fail(cc, rc == UV_ENOMEM ? MSVC_ENOMEM : MSVC_EHTTP_DNS);
  }
}

static int session_new(msvc__h2cc_t *cc) {
  nghttp2_session_callbacks *cbs;
  nghttp2_settings_entry iv[2];
  int rc;

  if (nghttp2_session_callbacks_new(&cbs) != 0)
    return MSVC_ENOMEM;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  rc = nghttp2_session_client_new(&cc->ng, cbs, cc);
  nghttp2_session_callbacks_del(cbs);
  if (rc != 0)
    return MSVC_ENOMEM;
  iv[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
  iv[0].value = 0;
  iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  iv[1].value = 1u << 20;
  if (nghttp2_submit_settings(cc->ng, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
      nghttp2_session_set_local_window_size(cc->ng, NGHTTP2_FLAG_NONE, 0, 1 << 24) != 0)
    return MSVC_ENOMEM;
  return MSVC_OK;
}

static int cc_new(msvc__endpoint_t *ep, msvc__h2cc_t **out) {
  msvc_http_client_t *c = ep->c;
  msvc__h2cc_t *cc = msvc__calloc(1, sizeof(*cc));
  uv_stream_t *stream = NULL;
  int rc;

  if (cc == NULL)
    return MSVC_ENOMEM;
  cc->ep = ep;
  if (c->factory != NULL)
    rc = c->factory(c->factory_data, c->loop, ep->host, ep->port, &cc->tr);
  else
    rc = msvc__tcp_transport_new(c->loop, &cc->tr, &stream);
#ifdef MSVC_HAVE_TLS
  /* TLS wraps the TCP transport; the TCP handle is still connected here. */
  if (rc == 0 && ep->tls && c->factory == NULL)
    rc = msvc__tls_wrap_client_h2(c->tls, c->loop, cc->tr, ep->host, ep->port, &cc->tr);
#endif
  if (rc == 0 && (rc = session_new(cc)) != 0)
    msvc__transport_close(cc->tr);
  if (rc != 0) {
    if (cc->ng != NULL)
      nghttp2_session_del(cc->ng);
    msvc__free(cc);
    return rc;
  }
  cc->tcp = (uv_tcp_t *)stream;
  cc->tr->ev = &cc_events;
  cc->tr->owner = cc;
  msvc__buf_init(&cc->wbuf[0], 0);
  msvc__buf_init(&cc->wbuf[1], 0);
  msvc__queue_init(&cc->calls);
  (void)uv_timer_init(c->loop, &cc->idle_timer);
  cc->idle_timer.data = cc;
  cc->handles = 2;
  msvc__queue_insert_tail(&ep->h2conns, &cc->node);
  ep->nh2++;
  c->nconns++;
  *out = cc;
  return MSVC_OK;
}

void msvc__h2c_dispatch(msvc_http_call_t *call) {
  msvc__endpoint_t *ep = call->ep;
  msvc__h2cc_t *best = NULL, *cc;
  msvc__queue_t *q;
  uint32_t limit = 100;
  bool fresh = false;
  int rc;

  msvc__queue_foreach(q, &ep->h2conns) {
    cc = msvc__container_of(q, msvc__h2cc_t, node);
    /* One that got or sent GOAWAY takes no new streams. */
    if (cc->connected && !nghttp2_session_check_request_allowed(cc->ng))
      continue;
    if (best == NULL || cc->ncalls < best->ncalls)
      best = cc;
  }
  if (best != NULL && best->connected)
    limit = nghttp2_session_get_remote_settings(best->ng,
                                                NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (best == NULL || (best->ncalls >= limit && ep->nh2 < ep->c->o.h2_conns_per_endpoint)) {
    if ((rc = cc_new(ep, &cc)) != 0) {
      msvc__call_attempt_end(call, rc, false);
      return;
    }
    best = cc;
    fresh = true;
  }
  call->reused = !fresh;
  call->h2c = best;
  call->h2id = 0;
  if (call->state != ST_WAITING && call->state != ST_CONNECTING)
    call->h2refused = 0; /* a new attempt, not a stream sent again */
  msvc__queue_insert_tail(&best->calls, &call->wnode);
  best->ncalls++;
  uv_timer_stop(&best->idle_timer);
  if (!best->connected) {
    call->state = ST_CONNECTING;
    call->dl_phase = call->to.connect_ms ? uv_now(ep->c->loop) + call->to.connect_ms : 0;
    msvc__call_arm(call);
    if (fresh)
      cc_start(best);
    return;
  }
  submit(best, call);
  cc_flush(best);
}

void msvc__h2c_abandon(msvc_http_call_t *call) {
  msvc__h2cc_t *cc = call->h2c;

  if (cc == NULL)
    return;
  call->h2c = NULL;
  msvc__queue_remove(&call->wnode);
  msvc__queue_init(&call->wnode);
  cc->ncalls--;
  if (call->h2id > 0 && !cc->closing) {
    nghttp2_session_set_stream_user_data(cc->ng, call->h2id, NULL);
    nghttp2_submit_rst_stream(cc->ng, NGHTTP2_FLAG_NONE, call->h2id, NGHTTP2_CANCEL);
    cc_flush(cc);
  }
  call->h2id = 0;
  arm_idle(cc);
}

void msvc__h2c_close_all(msvc__endpoint_t *ep) {
  while (!msvc__queue_empty(&ep->h2conns))
    cc_fail(msvc__container_of(ep->h2conns.next, msvc__h2cc_t, node), MSVC_ECANCELED);
}
