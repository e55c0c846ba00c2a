/*
 * The gRPC server: every registered method is a `POST /<service>/<method>`
 * route of an HTTP server (HTTP/2 requests reach the same router as
 * HTTP/1.1 ones), so middleware (request ids, metrics, JWT) applies to gRPC
 * calls unchanged.
 *
 * A call answers with a streamed response: status 200 and the response
 * metadata when the first message (or the end) is ready, one framed
 * message per send, and the status in trailers. A call that fails before
 * any message is still a 200 with trailers (HTTP/2 sends those as the
 * "trailers-only" form clients expect).
 */
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include <msvc/http.h>
#include <msvc/middleware.h>

#include "../http/server.h"
#include "grpc-internal.h"

typedef struct method_s {
  msvc_grpc_server_t *srv;
  const ProtobufCMethodDescriptor *desc;
  char *path;
  char *service; /* "orders.v1.Orders" */
  msvc__grpc_counted_t handled; /* msvc_grpc_server_handled_total */
  bool streaming;
  msvc_grpc_handler_fn fn;
  void *data;
  struct method_s *next;
} method_t;

struct msvc_grpc_server_s {
  msvc_grpc_server_opts_t opts;
  method_t *methods;
  msvc__queue_t calls;
  /* health */
  msvc_grpc_health_fn health_fn;
  void *health_data;
  msvc__grpc_mount_t mount;
};

struct msvc_grpc_call_s {
  msvc__queue_t node;
  msvc_grpc_server_t *srv;
  method_t *m;
  msvc_http_req_t *req;
  msvc_http_res_t *res;
  msvc_grpc_metadata_t *md;
  msvc_grpc_metadata_t *headers;
  msvc_grpc_metadata_t *trailers;
  ProtobufCMessage *request;
  msvc__grpc_enc_t send_enc;
  uint64_t deadline_ms; /* 0: none */
  uv_timer_t *timer;
  msvc_grpc_cancel_fn on_cancel;
  void *cancel_data;
  int cancelled; /* 0, or the code the call was cut short with */
  bool started;
  bool finished;
  bool replied;
  bool health_watch; /* a Health/Watch stream of this server */
  void *user;
};

void msvc_grpc_server_opts_init(msvc_grpc_server_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_recv = MSVC_GRPC_DEFAULT_MAX_RECV;
  opts->max_send = MSVC_GRPC_DEFAULT_MAX_SEND;
  opts->gzip = true;
}

int msvc_grpc_server_new(const msvc_grpc_server_opts_t *opts, msvc_grpc_server_t **out) {
  msvc_grpc_server_t *srv;

  if (out == NULL)
    return MSVC_EINVAL;
  *out = NULL;
  srv = msvc__calloc(1, sizeof(*srv));
  if (srv == NULL)
    return MSVC_ENOMEM;
  msvc_grpc_server_opts_init(&srv->opts);
  if (opts != NULL && !msvc__opts_copy(&srv->opts, sizeof(srv->opts), opts)) {
    msvc__free(srv);
    return MSVC_EINVAL;
  }
  if (srv->opts.max_recv == 0)
    srv->opts.max_recv = MSVC_GRPC_DEFAULT_MAX_RECV;
  if (srv->opts.max_send == 0)
    srv->opts.max_send = MSVC_GRPC_DEFAULT_MAX_SEND;
  msvc__queue_init(&srv->calls);
  *out = srv;
  return MSVC_OK;
}

static void on_timer_closed(uv_handle_t *h) { msvc__free(h); }

void msvc_grpc_server_free(msvc_grpc_server_t *srv) {
  method_t *m, *next;

  if (srv == NULL)
    return;
  for (m = srv->methods; m != NULL; m = next) {
    next = m->next;
    msvc__free(m->path);
    msvc__free(m->service);
    msvc__free(m);
  }
  msvc__free(srv);
}

static int add_method(msvc_grpc_server_t *srv, const ProtobufCServiceDescriptor *svc,
                      const char *method, bool streaming, msvc_grpc_handler_fn fn,
                      void *data) {
  const ProtobufCMethodDescriptor *md = NULL;
  method_t *m;
  size_t n;
  unsigned i;

  if (srv == NULL || svc == NULL || method == NULL || fn == NULL ||
      svc->magic != PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC)
    return MSVC_EINVAL;
  for (i = 0; i < svc->n_methods; i++)
    if (strcmp(svc->methods[i].name, method) == 0)
      md = &svc->methods[i];
  if (md == NULL)
    return MSVC_ENOTFOUND;
  m = msvc__calloc(1, sizeof(*m));
  n = strlen(svc->name) + strlen(method) + 3;
  if (m == NULL || (m->path = msvc__malloc(n)) == NULL) {
    msvc__free(m);
    return MSVC_ENOMEM;
  }
  snprintf(m->path, n, "/%s/%s", svc->name, method);
  m->service = msvc__strdup(svc->name);
  if (m->service == NULL) {
    msvc__free(m->path);
    msvc__free(m);
    return MSVC_ENOMEM;
  }
  m->handled.service = m->service;
  m->handled.method = md->name;
  m->srv = srv;
  m->desc = md;
  m->streaming = streaming;
  m->fn = fn;
  m->data = data;
  m->next = srv->methods;
  srv->methods = m;
  return MSVC_OK;
}

int msvc_grpc_server_unary(msvc_grpc_server_t *srv, const ProtobufCServiceDescriptor *svc,
                           const char *method, msvc_grpc_handler_fn fn, void *data) {
  return add_method(srv, svc, method, false, fn, data);
}

int msvc_grpc_server_stream(msvc_grpc_server_t *srv, const ProtobufCServiceDescriptor *svc,
                            const char *method, msvc_grpc_handler_fn fn, void *data) {
  return add_method(srv, svc, method, true, fn, data);
}

/* ---- answering ---------------------------------------------------------------------------- */

static int put_header(void *data, const char *key, const char *value, size_t len) {
  msvc__buf_t b;
  int r;

  (void)len; /* wire values (text or base64) hold no NUL */
  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, value);
  r = b.err == MSVC_OK ? msvc_http_res_header(data, key, b.data != NULL ? b.data : "") : b.err;
  msvc__buf_free(&b);
  return r;
}

static int put_trailer(void *data, const char *key, const char *value, size_t len) {
  (void)len;
  return msvc_http_res_trailer(data, key, value);
}

static int start(msvc_grpc_call_t *call) {
  int r;

  if (call->started)
    return MSVC_OK;
  call->started = true;
  if (call->send_enc == MSVC__GRPC_ENC_GZIP)
    msvc_http_res_header(call->res, "grpc-encoding", "gzip");
  msvc_http_res_header(call->res, "grpc-accept-encoding", "identity,gzip");
  r = msvc__grpc_metadata_wire(call->headers, put_header, call->res);
  if (r != MSVC_OK)
    return r;
  return msvc_http_res_start(call->res, 200, "application/grpc");
}

static void call_release(msvc_grpc_call_t *call) {
  msvc__queue_remove(&call->node);
  if (call->timer != NULL)
    uv_close((uv_handle_t *)call->timer, on_timer_closed);
  if (call->request != NULL)
    protobuf_c_message_free_unpacked(call->request, NULL);
  msvc_grpc_metadata_free(call->md);
  msvc_grpc_metadata_free(call->headers);
  msvc_grpc_metadata_free(call->trailers);
  msvc__free(call);
}

/* Ends the HTTP response with the status trailers; the call stays until
 * its handler finishes it. */
static void end_response(msvc_grpc_call_t *call, int code, const char *message) {
  char num[8];

  if (call->res == NULL)
    return;
  msvc_http_req_on_cancel(call->req, NULL, NULL);
  /* The service's trace middleware opened a server span for the request:
   * it becomes the method's span. */
  msvc__grpc_span_finish(msvc_mw_span(call->req), call->m->path, code, message, true);
  if (call->timer != NULL)
    msvc_http_req_set(call->req, MSVC__GRPC_DEADLINE_KEY, NULL, NULL);
  if (!msvc_http_req_cancelled(call->req)) {
    start(call);
    snprintf(num, sizeof(num), "%d", code);
    msvc_http_res_trailer(call->res, "grpc-status", num);
    if (message != NULL && message[0] != '\0') {
      msvc__buf_t b;

      msvc__buf_init(&b, 0);
      if (msvc__grpc_pct_encode(&b, message, strlen(message)) == MSVC_OK)
        msvc_http_res_trailer(call->res, "grpc-message", b.data);
      msvc__buf_free(&b);
    }
    msvc__grpc_metadata_wire(call->trailers, put_trailer, call->res);
  } else {
    start(call);
  }
  msvc_http_res_end(call->res);
  call->res = NULL;
  call->req = NULL;
}

static void cut_short(msvc_grpc_call_t *call, int code, const char *message) {
  msvc_grpc_cancel_fn fn = call->on_cancel;

  if (call->cancelled != 0 || call->finished)
    return;
  call->cancelled = code;
  end_response(call, code, message);
  call->on_cancel = NULL;
  if (fn != NULL)
    fn(call, code, call->cancel_data);
}

static void on_client_gone(msvc_http_req_t *req, void *data) {
  (void)req;
  cut_short(data, MSVC_GRPC_CANCELLED, NULL);
}

static void on_deadline(uv_timer_t *t) {
  cut_short(t->data, MSVC_GRPC_DEADLINE_EXCEEDED, "Deadline Exceeded");
}

int msvc_grpc_call_send(msvc_grpc_call_t *call, const ProtobufCMessage *msg) {
  msvc__buf_t b;
  uint8_t stack[512];
  uint8_t *packed = stack;
  size_t n;
  int r;

  if (call == NULL || msg == NULL || call->finished)
    return MSVC_EINVAL;
  if (msg->descriptor != call->m->desc->output)
    return MSVC_EINVAL;
  if (call->cancelled != 0)
    return MSVC_ECANCELED;
  if (!call->m->streaming && call->replied)
    return MSVC_ESTATE;
  n = protobuf_c_message_get_packed_size(msg);
  if (n > call->srv->opts.max_send)
    return MSVC_ETOOLARGE;
  if (n > sizeof(stack) && (packed = msvc__malloc(n)) == NULL)
    return MSVC_ENOMEM;
  protobuf_c_message_pack(msg, packed);
  msvc__buf_init(&b, 0);
  r = msvc__grpc_frame_encode(&b, packed, n, call->send_enc, call->srv->opts.max_send);
  if (packed != stack)
    msvc__free(packed);
  if (r == MSVC_OK)
    r = start(call);
  if (r == MSVC_OK)
    r = msvc_http_res_write(call->res, b.data, b.len);
  msvc__buf_free(&b);
  if (r == MSVC_OK)
    call->replied = true;
  return r;
}

int msvc_grpc_call_finish(msvc_grpc_call_t *call, int code, const char *message) {
  if (call == NULL || call->finished)
    return MSVC_EINVAL;
  if (code < 0 || code > MSVC_GRPC_UNAUTHENTICATED)
    code = MSVC_GRPC_UNKNOWN;
  /* A unary method that claims success without its one reply broke the
   * protocol; the peer is told so rather than given an empty success. */
  if (code == MSVC_GRPC_OK && !call->m->streaming && !call->replied) {
    code = MSVC_GRPC_INTERNAL;
    message = "the method ended without a reply";
  }
  call->finished = true;
  msvc__grpc_count(&call->m->handled, call->cancelled != 0 ? call->cancelled : code);
  if (call->cancelled == 0)
    end_response(call, code, message);
  call_release(call);
  return MSVC_OK;
}

int msvc_grpc_call_reply(msvc_grpc_call_t *call, const ProtobufCMessage *msg) {
  int r;

  if (call == NULL)
    return MSVC_EINVAL;
  r = msvc_grpc_call_send(call, msg);
  if (r == MSVC_ETOOLARGE)
    msvc_grpc_call_finish(call, MSVC_GRPC_RESOURCE_EXHAUSTED, "reply larger than the send limit");
  else if (r == MSVC_EINVAL && !call->finished)
    msvc_grpc_call_finish(call, MSVC_GRPC_INTERNAL, "reply of the wrong message type");
  else
    msvc_grpc_call_finish(call, r == MSVC_OK ? MSVC_GRPC_OK : msvc_grpc_code_from_error(r),
                          NULL);
  return r;
}

int msvc_grpc_call_header(msvc_grpc_call_t *call, const char *key, const void *value,
                          size_t len) {
  if (call == NULL || call->finished)
    return MSVC_EINVAL;
  if (call->started)
    return MSVC_EHTTP_RESPONDED;
  if (call->headers == NULL && msvc_grpc_metadata_new(&call->headers) != MSVC_OK)
    return MSVC_ENOMEM;
  return msvc_grpc_metadata_add(call->headers, key, value, len);
}

int msvc_grpc_call_trailer(msvc_grpc_call_t *call, const char *key, const void *value,
                           size_t len) {
  if (call == NULL || call->finished)
    return MSVC_EINVAL;
  if (call->trailers == NULL && msvc_grpc_metadata_new(&call->trailers) != MSVC_OK)
    return MSVC_ENOMEM;
  return msvc_grpc_metadata_add(call->trailers, key, value, len);
}

const msvc_grpc_metadata_t *msvc_grpc_call_metadata(const msvc_grpc_call_t *call) {
  return call != NULL ? call->md : NULL;
}

void msvc_grpc_call_on_cancel(msvc_grpc_call_t *call, msvc_grpc_cancel_fn fn, void *data) {
  if (call == NULL)
    return;
  call->on_cancel = fn;
  call->cancel_data = data;
}

bool msvc_grpc_call_cancelled(const msvc_grpc_call_t *call) {
  return call == NULL || call->cancelled != 0;
}

int64_t msvc_grpc_call_time_left_ms(const msvc_grpc_call_t *call) {
  uint64_t now;

  if (call == NULL || call->deadline_ms == 0)
    return -1;
  now = msvc_now_ms();
  return now >= call->deadline_ms ? 0 : (int64_t)(call->deadline_ms - now);
}

msvc_http_req_t *msvc_grpc_call_http_req(const msvc_grpc_call_t *call) {
  return call != NULL ? call->req : NULL;
}

size_t msvc_grpc_call_pending(const msvc_grpc_call_t *call) {
  return call != NULL && call->res != NULL ? msvc_http_res_pending(call->res) : 0;
}

void msvc_grpc_call_set_data(msvc_grpc_call_t *call, void *data) {
  if (call != NULL)
    call->user = data;
}

void *msvc_grpc_call_data(const msvc_grpc_call_t *call) {
  return call != NULL ? call->user : NULL;
}

/* ---- receiving ------------------------------------------------------------------------ */

/* Answers a request that never became a call: status in trailers. */
static void refuse(msvc_http_res_t *res, int code, const char *message) {
  char num[8];

  snprintf(num, sizeof(num), "%d", code);
  msvc_http_res_trailer(res, "grpc-status", num);
  if (message != NULL)
    msvc_http_res_trailer(res, "grpc-message", message);
  msvc_http_res_header(res, "grpc-accept-encoding", "identity,gzip");
  msvc_http_res_start(res, 200, "application/grpc");
  msvc_http_res_end(res);
}

static bool skip_header(const char *name) {
  static const char *const skip[] = {"content-type", "te", "host", "content-length",
                                     "connection", "user-agent", "accept-encoding",
                                     "transfer-encoding", "x-request-id", "traceparent",
                                     "tracestate", "authorization"};
  size_t i;

  if (name[0] == ':' || msvc__strncasecmp(name, "grpc-", 5) == 0)
    return true;
  for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
    if (msvc__strcasecmp(name, skip[i]) == 0)
      return true;
  return false;
}

static int read_metadata(msvc_grpc_call_t *call) {
  size_t i, n = msvc_http_req_header_count(call->req);
  int r = msvc_grpc_metadata_new(&call->md);

  for (i = 0; i < n && r == MSVC_OK; i++) {
    const char *name, *value;

    if (msvc_http_req_header_at(call->req, i, &name, &value) != MSVC_OK)
      continue;
    if (skip_header(name) || !msvc__grpc_key_ok(name, strlen(name), false))
      continue;
    r = msvc__grpc_metadata_add_wire(call->md, name, strlen(name), value, strlen(value));
    if (r == MSVC_EINVAL) /* a -bin value that is not base64: dropped */
      r = MSVC_OK;
  }
  return r;
}

/* Picks the response's encoding from what the client accepts. */
static msvc__grpc_enc_t pick_send_enc(msvc_grpc_server_t *srv, const char *accept) {
  const char *p = accept;

  if (!srv->opts.gzip || accept == NULL)
    return MSVC__GRPC_ENC_IDENTITY;
  while (*p != '\0') {
    size_t n;

    while (*p == ' ' || *p == ',')
      p++;
    n = strcspn(p, " ,");
    if (msvc__grpc_enc_parse(p, n) == MSVC__GRPC_ENC_GZIP)
      return MSVC__GRPC_ENC_GZIP;
    p += n;
  }
  return MSVC__GRPC_ENC_IDENTITY;
}

/* Reads the one request message of the body; a code on failure. */
static int read_request(msvc_grpc_call_t *call, int enc, const char **why) {
  msvc__grpc_reader_t rd;
  const uint8_t *msg = NULL;
  size_t len = 0, blen, used = 0, mlen = 0;
  const char *body = msvc_http_req_body(call->req, &blen);
  int r;

  msvc__grpc_reader_init(&rd, call->srv->opts.max_recv, (msvc__grpc_enc_t)enc);
  r = msvc__grpc_reader_feed(&rd, (const uint8_t *)body, blen, &used, &msg, &mlen);
  len = mlen;
  if (r == 1 && used != blen)
    r = MSVC_EPROTO; /* a second message for a method that takes one */
  if (r == 1)
    call->request = protobuf_c_message_unpack(call->m->desc->input, NULL, len, msg);
  msvc__grpc_reader_free(&rd);
  if (r == MSVC_ETOOLARGE) {
    *why = "request message larger than the server's limit";
    return MSVC_GRPC_RESOURCE_EXHAUSTED;
  }
  if (r == 0 || r == MSVC_EPROTO) {
    *why = r == 0 ? "expected exactly one request message" : "malformed request message";
    return r == 0 ? MSVC_GRPC_UNIMPLEMENTED : MSVC_GRPC_INTERNAL;
  }
  if (r < 0) {
    *why = msvc_strerror(r);
    return msvc_grpc_code_from_error(r);
  }
  if (call->request == NULL) {
    *why = "cannot parse the request message";
    return MSVC_GRPC_INTERNAL;
  }
  return MSVC_GRPC_OK;
}

static void on_http_request(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  method_t *m = data;
  msvc_grpc_server_t *srv = m->srv;
  const char *ct = msvc_http_req_header(req, "content-type");
  const char *enc_s = msvc_http_req_header(req, "grpc-encoding");
  const char *tmo = msvc_http_req_header(req, "grpc-timeout");
  const char *why = NULL;
  msvc_grpc_call_t *call;
  uint64_t tmo_ms = 0;
  int enc = MSVC__GRPC_ENC_IDENTITY, code;

  if (ct == NULL || strncmp(ct, "application/grpc", 16) != 0 ||
      (ct[16] != '\0' && ct[16] != '+' && ct[16] != ';')) {
    msvc_http_res_error(res, 415, "UNSUPPORTED_MEDIA_TYPE", "gRPC wants application/grpc");
    return;
  }
  if (enc_s != NULL && (enc = msvc__grpc_enc_parse(enc_s, strlen(enc_s))) < 0) {
    refuse(res, MSVC_GRPC_UNIMPLEMENTED, "unsupported grpc-encoding");
    return;
  }
  if (tmo != NULL && msvc__grpc_timeout_parse(tmo, strlen(tmo), &tmo_ms) != MSVC_OK) {
    refuse(res, MSVC_GRPC_INTERNAL, "malformed grpc-timeout");
    return;
  }
  call = msvc__calloc(1, sizeof(*call));
  if (call == NULL) {
    refuse(res, MSVC_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  call->srv = srv;
  call->m = m;
  call->req = req;
  call->res = res;
  msvc__queue_insert_tail(&srv->calls, &call->node);
  call->send_enc = pick_send_enc(srv, msvc_http_req_header(req, "grpc-accept-encoding"));
  code = read_metadata(call) == MSVC_OK ? read_request(call, enc, &why) : MSVC_GRPC_INTERNAL;
  if (code != MSVC_GRPC_OK) {
    call->replied = true;
    msvc_grpc_call_finish(call, code, why);
    return;
  }
  if (tmo != NULL) {
    call->deadline_ms = msvc_now_ms() + tmo_ms;
    call->timer = msvc__malloc(sizeof(*call->timer));
    if (call->timer == NULL) {
      call->replied = true;
      msvc_grpc_call_finish(call, MSVC_GRPC_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    uv_timer_init(msvc_http_server_loop(req->srv), call->timer);
    call->timer->data = call;
    uv_timer_start(call->timer, on_deadline, tmo_ms, 0);
    /* Calls made while serving this one inherit its deadline. */
    msvc_http_req_set(req, MSVC__GRPC_DEADLINE_KEY, &call->deadline_ms, NULL);
  }
  msvc_http_req_on_cancel(req, on_client_gone, call);
  m->fn(call, call->request, m->data);
}

/* The handled-calls family in the registry of the options (or reg). */
static int attach_metrics(msvc_grpc_server_t *srv, msvc_metrics_registry_t *reg) {
  msvc_metrics_family_t *fam = NULL;
  method_t *m;
  int r;

  if (srv->opts.metrics != NULL)
    reg = srv->opts.metrics;
  if (reg == NULL)
    return MSVC_OK;
  r = msvc__grpc_family(reg, "msvc_grpc_server_handled_total",
                        "gRPC calls served, by service, method and status code.", &fam);
  if (r != MSVC_OK)
    return r;
  for (m = srv->methods; m != NULL; m = m->next)
    m->handled.fam = fam;
  return MSVC_OK;
}

int msvc_grpc_server_mount(msvc_grpc_server_t *srv, msvc_http_server_t *http) {
  method_t *m;
  int r;

  if (srv == NULL || http == NULL)
    return MSVC_EINVAL;
  r = attach_metrics(srv, NULL);
  if (r != MSVC_OK)
    return r;
  for (m = srv->methods; m != NULL; m = m->next) {
    r = msvc_http_server_route(http, "POST", m->path, on_http_request, m, NULL);
    if (r != MSVC_OK)
      return r;
  }
  return MSVC_OK;
}

int msvc__grpc_server_routes(msvc_grpc_server_t *srv, msvc_service_t *svc) {
  method_t *m;
  int r = attach_metrics(srv, msvc_service_metrics(svc));

  if (r != MSVC_OK)
    return r;
  for (m = srv->methods; m != NULL; m = m->next) {
    bool health = strncmp(m->path, "/grpc.health.v1.Health/", 23) == 0;

    r = msvc_service_route(svc, "POST", m->path, on_http_request, m,
                           health ? 0 : srv->opts.route_flags);
    if (r != MSVC_OK)
      return r;
  }
  return MSVC_OK;
}

void msvc__grpc_server_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn *fn, void **data) {
  *fn = srv->health_fn;
  *data = srv->health_data;
}

int msvc__grpc_server_set_health(msvc_grpc_server_t *srv, msvc_grpc_health_fn fn, void *data) {
  if (srv->health_fn != NULL)
    return MSVC_ESTATE;
  srv->health_fn = fn;
  srv->health_data = data;
  return MSVC_OK;
}

bool msvc__grpc_server_has_health(const msvc_grpc_server_t *srv) {
  return srv->health_fn != NULL;
}

bool msvc__grpc_server_has_service(const msvc_grpc_server_t *srv, const char *name) {
  const method_t *m;
  size_t n = strlen(name);

  for (m = srv->methods; m != NULL; m = m->next)
    if (strncmp(m->path + 1, name, n) == 0 && m->path[n + 1] == '/')
      return true;
  return false;
}

msvc__grpc_mount_t *msvc__grpc_server_mount_slot(msvc_grpc_server_t *srv) {
  return &srv->mount;
}
