/*
 * HTTP/2 server sessions on nghttp2: see h2.h for the design.
 *
 * nghttp2 parses frames, keeps the HPACK tables, flow control and stream
 * states; this file turns streams into requests and responses into frames.
 * Frames are pulled from the session (nghttp2_session_mem_send) by the
 * connection only when its output buffer is below the high-water mark, so
 * a large body is produced as fast as the peer takes it and no faster.
 */
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "http/h2.h"
#include "http/server.h"

#define OUT_HIGH_WATER (256 * 1024)
/* Rapid reset (CVE-2023-44487): streams the peer may reset per second,
 * with a burst, before the connection is ended. Each reset stream may have
 * cost a handler run; this bounds that work per connection. */
#define RESET_BURST 200
#define RESET_PER_SEC 100

struct msvc__h2stream_s {
  msvc__queue_t node; /* in the session's list */
  msvc__h2s_t *s;
  int32_t id;
  msvc_http_req_t *req;
  msvc__http_head_t *head; /* being filled until the headers end */
  msvc__buf_t path;
  char method[24];
  size_t head_bytes;
  msvc__buf_t out; /* body bytes the handler wrote, not yet framed */
  size_t off;
  bool ended;     /* the body is complete */
  bool deferred;  /* nghttp2 waits for msvc__h2_res_data() */
  bool too_large; /* header list over the limits: 431 */
  bool body_over; /* body over max_body_bytes: 413 */
  bool dispatched;
  bool head_held; /* a gRPC head waiting for its first message */
  bool failed;    /* the answer could not be built: the stream is reset */
  bool head_sent; /* the answer's HEADERS frame went out */
  char *ctype_held;
};

struct msvc__h2s_s {
  nghttp2_session *ng;
  msvc__conn_t *c;
  msvc__queue_t streams;
  uint32_t nstreams;
  uint32_t nreceiving; /* streams whose request is not complete yet */
  bool goaway;
  uint64_t reset_t; /* loop time the reset budget was last refilled */
  double reset_tokens;
};

static int method_num(const char *m) {
#define XX(num, name, string)                                                  \
  if (strcmp(m, #string) == 0)                                                 \
    return num;
  HTTP_METHOD_MAP(XX)
#undef XX
  return -1;
}

static int head_add(msvc__http_head_t *h, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen) {
  msvc__http_field_t *f;

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
  msvc__buf_append(&h->raw, name, nlen);
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

static msvc__h2stream_t *stream_of(msvc__h2s_t *s, int32_t id) {
  return nghttp2_session_get_stream_user_data(s->ng, id);
}

static void stream_free(msvc__h2stream_t *st) {
  msvc__queue_remove(&st->node);
  st->s->nstreams--;
  if (!st->dispatched)
    st->s->nreceiving--;
  msvc__http_head_free(st->head);
  msvc__buf_free(&st->path);
  msvc__buf_free(&st->out);
  msvc__free(st->ctype_held);
  msvc__free(st);
}

/* The request leaves its stream: finished and released, or still with its
 * handler, which is told (cancel callback) and whose answer is dropped. */
static void stream_unbind(msvc__h2stream_t *st) {
  msvc_http_req_t *req = st->req;

  if (req == NULL)
    return;
  st->req = NULL;
  req->h2 = NULL;
  if (!st->dispatched && req->state != RES_DONE) {
    msvc__req_destroy(req); /* no handler ever saw it */
    return;
  }
  msvc__req_detach(req);
}

/* ---- receiving ----------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame,
                            void *ud) {
  msvc__h2s_t *s = ud;
  msvc__h2stream_t *st;

  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  st = msvc__calloc(1, sizeof(*st));
  if (st == NULL)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  st->head = msvc__calloc(1, sizeof(*st->head));
  if (st->head == NULL) {
    msvc__free(st);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  msvc__buf_init(&st->head->raw, 0);
  msvc__buf_init(&st->path, 0);
  msvc__buf_init(&st->out, 0);
  st->s = s;
  st->id = frame->hd.stream_id;
  msvc__queue_insert_tail(&s->streams, &st->node);
  s->nstreams++;
  s->nreceiving++;
  nghttp2_session_set_stream_user_data(ng, st->id, st);
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *ud) {
  msvc__h2s_t *s = ud;
  const msvc_http_server_opts_t *o = &s->c->srv->opts;
  msvc__h2stream_t *st;

  (void)ng;
  (void)flags;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0; /* request trailers are not kept */
  st = stream_of(s, frame->hd.stream_id);
  if (st == NULL || st->head == NULL)
    return 0;
  /* RFC 9113 6.5.2 counts 32 bytes of overhead per field. */
  st->head_bytes += nlen + vlen + 32;
  if (st->head_bytes > o->max_header_bytes || st->head->nfields >= o->max_headers) {
    st->too_large = true;
    /* Far past the limit (an HPACK bomb): stop answering politely. */
    if (st->head_bytes > 4 * (size_t)o->max_header_bytes + 65536)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
  }
  if (nlen > 0 && name[0] == ':') {
    if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
      if (vlen >= sizeof(st->method))
        vlen = sizeof(st->method) - 1; /* unknown anyway: 501 below */
      memcpy(st->method, value, vlen);
      st->method[vlen] = '\0';
    } else if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
      msvc__buf_append(&st->path, value, vlen);
    } else if (nlen == 10 && memcmp(name, ":authority", 10) == 0) {
      /* Host for code written against HTTP/1.1. */
      if (head_add(st->head, (const uint8_t *)"host", 4, value, vlen) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
  }
  if (head_add(st->head, name, nlen, value, vlen) != 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

/* The header block is complete: the request object is made. */
static int headers_done(msvc__h2s_t *s, msvc__h2stream_t *st) {
  msvc__http_head_t *h = st->head;
  msvc_http_req_t *req;
  const char *target;
  size_t i;

  h->target = (uint32_t)h->raw.len;
  h->target_len = (uint32_t)st->path.len;
  msvc__buf_append(&h->raw, st->path.data, st->path.len);
  msvc__buf_putc(&h->raw, '\0');
  if (h->raw.err != MSVC_OK)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  h->method = method_num(st->method);
  h->http_major = 2;
  h->http_minor = 0;
  h->keep_alive = true;
  req = msvc__req_new(s->c);
  if (req == NULL)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  st->head = NULL;
  req->head = h;
  req->h2 = st;
  st->req = req;
  target = msvc__http_head_str(h, h->target);
  for (i = 0; i < h->target_len && target[i] != '?' && target[i] != '#'; i++)
    ;
  req->path_len = (uint32_t)i;
  req->is_head = h->method == HTTP_HEAD;
  req->t0 = uv_hrtime();
  return 0;
}

/* The request is complete (END_STREAM): it goes to the router, or gets the
 * answer its limits call for. */
static void request_done(msvc__h2stream_t *st) {
  msvc_http_req_t *req = st->req;

  if (req == NULL || st->dispatched)
    return;
  st->dispatched = true;
  st->s->nreceiving--;
  if (st->too_large) {
    msvc_http_res_error(&req->res, 431, "HEADERS_TOO_LARGE",
                        "The request's header fields are too large or too many.");
  } else if (st->body_over) {
    msvc_http_res_error(&req->res, 413, "PAYLOAD_TOO_LARGE",
                        "The request body is too large.");
  } else if (req->head->method < 0 || req->head->target_len == 0) {
    msvc_http_res_error(&req->res, 501, "NOT_IMPLEMENTED",
                        "The request method is not supported.");
  } else {
    msvc__req_dispatch(req);
  }
}

static bool reset_budget_spent(msvc__h2s_t *s) {
  uint64_t now = uv_now(s->c->srv->loop);

  s->reset_tokens += (double)(now - s->reset_t) * RESET_PER_SEC / 1000.0;
  if (s->reset_tokens > RESET_BURST)
    s->reset_tokens = RESET_BURST;
  s->reset_t = now;
  if (s->reset_tokens < 1.0)
    return true;
  s->reset_tokens -= 1.0;
  return false;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  msvc__h2s_t *s = ud;
  msvc__h2stream_t *st;

  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    st = stream_of(s, frame->hd.stream_id);
    if (st == NULL)
      return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && st->req == NULL &&
        headers_done(s, st) != 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
      request_done(st);
    break;
  case NGHTTP2_DATA:
    st = stream_of(s, frame->hd.stream_id);
    if (st != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      request_done(st);
    break;
  case NGHTTP2_RST_STREAM:
    /* Only resets that spare the client the wait for an answer spend the
     * budget: a stream whose answer had begun to go out was served (a
     * client giving up on a long stream, say), and one already closed cost
     * nothing. */
    st = stream_of(s, frame->hd.stream_id);
    if (st != NULL && !st->head_sent && reset_budget_spent(s))
      nghttp2_session_terminate_session(ng, NGHTTP2_ENHANCE_YOUR_CALM);
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud) {
  msvc__h2s_t *s = ud;
  msvc__h2stream_t *st = stream_of(s, id);
  msvc_http_req_t *req;

  (void)ng;
  (void)flags;
  if (st == NULL || (req = st->req) == NULL || st->dispatched || st->body_over ||
      st->too_large)
    return 0;
  if (req->body.len + len > s->c->srv->opts.max_body_bytes) {
    st->body_over = true;
    msvc__buf_free(&req->body);
    return 0;
  }
  msvc__buf_append(&req->body, data, len);
  return req->body.err == MSVC_OK ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud) {
  msvc__h2stream_t *st;

  (void)ng;
  if (frame->hd.type == NGHTTP2_HEADERS && (st = stream_of(ud, frame->hd.stream_id)) != NULL)
    st->head_sent = true;
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
  msvc__h2s_t *s = ud;
  msvc__h2stream_t *st = stream_of(s, id);

  (void)code;
  if (st == NULL)
    return 0;
  /* msvc_http_res_close_connection(): the connection ends after this
   * stream, the HTTP/2 way: GOAWAY, streams already open are finished. */
  if (st->req != NULL && st->req->close_asked)
    msvc__h2s_goaway(s);
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  stream_unbind(st);
  stream_free(st);
  return 0;
}

/* ---- sending ------------------------------------------------------------- */

static ssize_t on_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *ud);

/* Header lines "Name: value\r\n" as nghttp2 fields with lower-case names,
 * after the n given ones; nghttp2 copies them when submitting. */
static int submit_fields(msvc__h2s_t *s, msvc__h2stream_t *st, nghttp2_nv *pre,
                         size_t npre, const msvc__buf_t *lines, bool trailers,
                         bool body) {
  nghttp2_nv stack[32], *nv = stack;
  char *copy = NULL, *p, *end;
  size_t n = npre, max = npre, i;
  nghttp2_data_provider prd;
  int rc;

  for (i = 0; i < lines->len; i++)
    max += lines->data[i] == '\n';
  if (max > sizeof(stack) / sizeof(stack[0]) &&
      (nv = msvc__malloc(max * sizeof(*nv))) == NULL)
    return MSVC_ENOMEM;
  if (npre > 0)
    memcpy(nv, pre, npre * sizeof(*nv));
  if (lines->len > 0) {
    if ((copy = msvc__malloc(lines->len)) == NULL) {
      if (nv != stack)
        msvc__free(nv);
      return MSVC_ENOMEM;
    }
    memcpy(copy, lines->data, lines->len);
  }
  /* no pointer arithmetic on copy when there are no lines (it is NULL) */
  for (p = copy, end = copy != NULL ? copy + lines->len : NULL; p != NULL && p < end;) {
    char *colon = memchr(p, ':', (size_t)(end - p));
    char *eol = memchr(p, '\r', (size_t)(end - p));
    char *q;

    if (colon == NULL || eol == NULL || colon > eol)
      break;
    for (q = p; q < colon; q++)
      if (*q >= 'A' && *q <= 'Z')
        *q = (char)(*q - 'A' + 'a');
    nv[n].name = (uint8_t *)p;
    nv[n].namelen = (size_t)(colon - p);
    nv[n].value = (uint8_t *)colon + 2;
    nv[n].valuelen = (size_t)(eol - colon - 2);
    nv[n].flags = NGHTTP2_NV_FLAG_NONE;
    /* Connection-specific fields have no place in HTTP/2 (RFC 9113 8.2.2). */
    if (!((nv[n].namelen == 10 && memcmp(p, "keep-alive", 10) == 0) ||
          (nv[n].namelen == 7 && memcmp(p, "upgrade", 7) == 0) ||
          (nv[n].namelen == 16 && memcmp(p, "proxy-connection", 16) == 0)))
      n++;
    p = eol + 2;
  }
  if (trailers) {
    rc = nghttp2_submit_trailer(s->ng, st->id, nv, n);
  } else {
    prd.source.ptr = st;
    prd.read_callback = on_read_body;
    rc = nghttp2_submit_response(s->ng, st->id, nv, n, body ? &prd : NULL);
  }
  msvc__free(copy);
  if (nv != stack)
    msvc__free(nv);
  return rc == 0 ? MSVC_OK : rc == NGHTTP2_ERR_NOMEM ? MSVC_ENOMEM : MSVC_ECLOSED;
}

static ssize_t on_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf,
                            size_t length, uint32_t *flags,
                            nghttp2_data_source *src, void *ud) {
  msvc__h2stream_t *st = src->ptr;
  size_t avail = st->out.len - st->off, n = avail < length ? avail : length;

  (void)ng;
  (void)id;
  (void)ud;
  if (n > 0) {
    memcpy(buf, st->out.data + st->off, n);
    st->off += n;
    if (st->off == st->out.len) {
      st->off = 0;
      st->out.len = 0;
      if (st->out.cap > 65536)
        msvc__buf_free(&st->out);
    }
  } else if (!st->ended) {
    st->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (st->ended && st->out.len == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->req != NULL && st->req->trailers.len > 0) {
      /* Without its trailers the answer would look complete: reset. */
      if (submit_fields(st->s, st, NULL, 0, &st->req->trailers, true, false) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return (ssize_t)n;
}

static int head_submit(msvc_http_req_t *req, int status, const char *ctype,
                       size_t body_len, bool stream, const msvc__buf_t *lines,
                       bool provider) {
  msvc__h2stream_t *st = req->h2;
  char code[4], clen[24];
  nghttp2_nv pre[4];
  size_t n = 0;

#define NV(k, v, vl)                                                           \
  do {                                                                         \
    pre[n].name = (uint8_t *)(k);                                              \
    pre[n].namelen = sizeof(k) - 1;                                            \
    pre[n].value = (uint8_t *)(v);                                             \
    pre[n].valuelen = (vl);                                                    \
    pre[n].flags = NGHTTP2_NV_FLAG_NONE;                                       \
    n++;                                                                       \
  } while (0)
  code[0] = (char)('0' + status / 100 % 10);
  code[1] = (char)('0' + status / 10 % 10);
  code[2] = (char)('0' + status % 10);
  NV(":status", code, 3);
  NV("date", msvc__server_date(req->srv), 29);
  if (ctype != NULL)
    NV("content-type", ctype, strlen(ctype));
  if (!stream && status != 204 && status != 304)
    NV("content-length", clen, (size_t)snprintf(clen, sizeof(clen), "%zu", body_len));
#undef NV
  req->res.status = status;
  return submit_fields(st->s, st, pre, n, lines, false, provider);
}

/* An answer that could not be built (out of memory) must not reach the
 * client cut short and looking complete: the stream is reset instead. */
static int stream_fail(msvc__h2stream_t *st, int rc) {
  if (!st->failed) {
    st->failed = true;
    st->head_held = false;
    nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  }
  return rc;
}

/* The held head goes out: before the first message, or (trailers_only)
 * merged with the trailers into the one HEADERS frame that ends a gRPC
 * answer without messages (gRPC's "Trailers-Only"). */
static int release_head(msvc_http_req_t *req, bool trailers_only) {
  msvc__h2stream_t *st = req->h2;
  msvc__buf_t all;
  int rc;

  st->head_held = false;
  if (!trailers_only)
    return head_submit(req, req->res.status, st->ctype_held, 0, true, &req->hdrs, true);
  msvc__buf_init(&all, 0);
  msvc__buf_append(&all, req->hdrs.data, req->hdrs.len);
  msvc__buf_append(&all, req->trailers.data, req->trailers.len);
  rc = all.err != MSVC_OK ? all.err
                          : head_submit(req, req->res.status, st->ctype_held, 0, true, &all,
                                        false);
  msvc__buf_free(&all);
  return rc;
}

int msvc__h2_res_head(msvc_http_req_t *req, int status, const char *ctype,
                      size_t body_len, bool stream) {
  msvc__h2stream_t *st = req->h2;
  bool body = !req->is_head && status != 204 && status != 304;

  int rc;

  if (stream && body && ctype != NULL && strncmp(ctype, "application/grpc", 16) == 0) {
    if ((st->ctype_held = msvc__strdup(ctype)) == NULL)
      return stream_fail(st, MSVC_ENOMEM);
    st->head_held = true;
    req->res.status = status;
    return MSVC_OK;
  }
  /* A body, or trailers to come after one, need a data source; a HEAD or
   * bodyless answer ends with its HEADERS frame unless trailers follow. */
  rc = head_submit(req, status, ctype, body_len, stream, &req->hdrs,
                   body || stream || req->trailers.len > 0);
  return rc == MSVC_OK ? rc : stream_fail(st, rc);
}

int msvc__h2_res_data(msvc_http_req_t *req, const void *data, size_t len) {
  msvc__h2stream_t *st = req->h2;
  int rc;

  if (st->failed)
    return MSVC_ECLOSED;
  if (st->head_held && (rc = release_head(req, false)) != MSVC_OK)
    return stream_fail(st, rc);
  if (st->off > 65536 && st->off * 2 > st->out.len) {
    memmove(st->out.data, st->out.data + st->off, st->out.len - st->off);
    st->out.len -= st->off;
    st->off = 0;
  }
  msvc__buf_append(&st->out, data, len);
  if (st->out.err != MSVC_OK)
    return stream_fail(st, st->out.err);
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(st->s->ng, st->id);
  }
  return MSVC_OK;
}

int msvc__h2_res_end(msvc_http_req_t *req) {
  msvc__h2stream_t *st = req->h2;
  int rc;

  if (st->failed)
    return MSVC_ECLOSED;
  if (st->head_held) {
    st->ended = true;
    rc = release_head(req, true);
    return rc == MSVC_OK ? rc : stream_fail(st, rc);
  }
  st->ended = true;
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(st->s->ng, st->id);
  }
  return MSVC_OK;
}

size_t msvc__h2_res_pending(const msvc_http_req_t *req) {
  const msvc__h2stream_t *st = req->h2;

  return st->out.len - st->off;
}

/* ---- the session ----------------------------------------------------------- */

int msvc__h2s_new(msvc__conn_t *c, msvc__h2s_t **out) {
  const msvc_http_server_opts_t *o = &c->srv->opts;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  nghttp2_settings_entry iv[4];
  msvc__h2s_t *s = msvc__calloc(1, sizeof(*s));
  int rc;

  if (s == NULL)
    return MSVC_ENOMEM;
  s->c = c;
  msvc__queue_init(&s->streams);
  s->reset_tokens = RESET_BURST;
  s->reset_t = uv_now(c->srv->loop);
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  /* Bounds on what a peer can make the session hold or do: entries of one
   * SETTINGS frame, resets (nghttp2's own rapid-reset guard, beside ours)
   * and CONTINUATION frames of one header block. */
  nghttp2_option_set_max_settings(opt, 32);
  /* nghttp2's guard is the looser one: ours fires first and says why
   * (ENHANCE_YOUR_CALM, where nghttp2 says INTERNAL_ERROR). nghttp2 counts
   * every reset, ours not those of streams already answered, so its limit
   * is a net well above ordinary cancelling. */
  nghttp2_option_set_stream_reset_rate_limit(opt, 10 * RESET_BURST, 10 * RESET_PER_SEC);
  nghttp2_option_set_max_continuations(opt, 8);
  rc = nghttp2_session_server_new2(&s->ng, cbs, s, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rc != 0) {
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
  iv[0].value = o->h2_max_streams;
  iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  iv[1].value = o->h2_window;
  iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
  iv[2].value = (uint32_t)o->max_header_bytes;
  iv[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
  iv[3].value = 0;
  if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
      nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                            (int32_t)(4 * (uint64_t)o->h2_window)) != 0) {
    nghttp2_session_del(s->ng);
    msvc__free(s);
    return MSVC_ENOMEM;
  }
  *out = s;
  return MSVC_OK;
}

void msvc__h2s_detach_all(msvc__h2s_t *s) {
  msvc__queue_t *q;

  msvc__queue_foreach(q, &s->streams)
      stream_unbind(msvc__container_of(q, msvc__h2stream_t, node));
}

void msvc__h2s_free(msvc__h2s_t *s) {
  if (s == NULL)
    return;
  msvc__h2s_detach_all(s);
  while (!msvc__queue_empty(&s->streams))
    stream_free(msvc__container_of(s->streams.next, msvc__h2stream_t, node));
  nghttp2_session_del(s->ng);
  msvc__free(s);
}

int msvc__h2s_feed(msvc__h2s_t *s, const char *data, size_t len) {
  ssize_t n = nghttp2_session_mem_recv(s->ng, (const uint8_t *)data, len);

  if (n < 0) {
    /* A protocol error nghttp2 has not answered itself (a bad preface):
     * GOAWAY(PROTOCOL_ERROR), then the connection ends. */
    nghttp2_session_terminate_session(s->ng, n == NGHTTP2_ERR_BAD_CLIENT_MAGIC
                                                 ? NGHTTP2_PROTOCOL_ERROR
                                                 : NGHTTP2_INTERNAL_ERROR);
    return MSVC_EHTTP_PARSE;
  }
  return MSVC_OK;
}

bool msvc__h2s_pump(msvc__h2s_t *s) {
  msvc__buf_t *w = &s->c->wbuf[s->c->wi];

  while (w->len < OUT_HIGH_WATER && w->err == MSVC_OK) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(s->ng, &p);

    if (n < 0)
      return false;
    if (n == 0)
      break;
    msvc__buf_append(w, p, (size_t)n);
  }
  return nghttp2_session_want_read(s->ng) || nghttp2_session_want_write(s->ng);
}

bool msvc__h2s_want_write(const msvc__h2s_t *s) {
  return nghttp2_session_want_write(s->ng) != 0;
}

uint32_t msvc__h2s_streams(const msvc__h2s_t *s) {
  return s->nstreams;
}

bool msvc__h2s_all_receiving(const msvc__h2s_t *s) {
  return s->nstreams > 0 && s->nreceiving == s->nstreams;
}

void msvc__h2s_goaway(msvc__h2s_t *s) {
  if (s->goaway)
    return;
  s->goaway = true;
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(s->ng),
                        NGHTTP2_NO_ERROR, NULL, 0);
}
