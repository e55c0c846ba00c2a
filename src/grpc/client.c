/*
 * The gRPC client: a call is an HTTP/2 POST whose body is one framed
 * request and whose response body is read message by message as it
 * arrives; the status comes from the trailers (or from the headers of a
 * trailers-only answer).
 *
 * By service name the attempt is a call of the service block, so
 * discovery, the balancer (per call), breakers and its transparent retry
 * of requests that never left apply. On top of that, gRPC's own retry: an
 * attempt that ends UNAVAILABLE before any reply message reached the
 * caller is made again after a backoff, up to max_attempts and within the
 * deadline.
 */
#include <stdio.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include <msvc/middleware.h>
#include <msvc/trace.h>

#include "../http/server.h"
#include "../trace/trace-internal.h"
#include "grpc-internal.h"

#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

struct msvc_grpc_client_call_s {
  uv_loop_t *loop;
  msvc_service_t *svc;
  char *service;
  msvc_http_client_t *client;
  char *host;
  int port;
  msvc_http_req_t *parent;
  const ProtobufCMethodDescriptor *desc;
  char *path;
  msvc__buf_t body;       /* the framed request */
  msvc_grpc_metadata_t *md;
  bool gzip;
  size_t max_recv;
  uint32_t max_attempts;
  uint32_t attempts;
  uint64_t deadline_ms;
  msvc_grpc_message_fn on_message;
  msvc_grpc_done_fn on_done;
  void *data;
  /* the attempt in flight */
  msvc_service_call_t *scall;
  msvc_http_call_t *hcall;
  msvc__grpc_reader_t reader;
  bool reader_on;
  int delivered;          /* messages handed to the caller */
  ProtobufCMessage *reply;
  int fail_code;          /* a code decided while reading, or 0 */
  const char *fail_msg;
  uv_timer_t *timer;      /* backoff */
  bool cancelled;
  bool in_message;        /* inside on_message */
  bool done;
  /* The call's client span (NULL: not traced) and the context every
   * attempt carries in its metadata. */
  msvc_span_t *span;
  char traceparent[MSVC_TRACE_TRACEPARENT_LEN]; /* "" for none */
};

void msvc_grpc_call_opts_init(msvc_grpc_call_opts_t *opts) {
  if (opts == NULL)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->size = sizeof(*opts);
  opts->max_recv = MSVC_GRPC_DEFAULT_MAX_RECV;
  opts->max_send = MSVC_GRPC_DEFAULT_MAX_SEND;
  opts->max_attempts = 3;
}

static void on_timer_closed(uv_handle_t *h) { msvc__free(h); }

static void call_free(msvc_grpc_client_call_t *c) {
  msvc_trace_span_end(c->span); /* a call that never started */
  if (c->timer != NULL)
    uv_close((uv_handle_t *)c->timer, on_timer_closed);
  if (c->reader_on)
    msvc__grpc_reader_free(&c->reader);
  if (c->reply != NULL)
    protobuf_c_message_free_unpacked(c->reply, NULL);
  msvc__buf_free(&c->body);
  msvc_grpc_metadata_free(c->md);
  msvc__free(c->service);
  msvc__free(c->host);
  msvc__free(c->path);
  msvc__free(c);
}

/* ---- response ------------------------------------------------------------------------ */

static int parse_code(const char *s) {
  int v = 0;

  if (s == NULL || *s == '\0' || strlen(s) > 3)
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

static void on_chunk(msvc_http_call_t *hc, const msvc_http_response_t *res, const char *buf,
                     size_t len, void *data) {
  msvc_grpc_client_call_t *c = data;
  size_t off = 0;

  (void)hc;
  if (c->fail_code != 0 || c->cancelled || len == 0)
    return;
  if (!c->reader_on) {
    const char *enc = msvc_http_response_header(res, "grpc-encoding");
    int e = enc != NULL ? msvc__grpc_enc_parse(enc, strlen(enc)) : MSVC__GRPC_ENC_IDENTITY;

    if (e < 0) {
      c->fail_code = MSVC_GRPC_INTERNAL;
      c->fail_msg = "reply in an unsupported grpc-encoding";
      return;
    }
    msvc__grpc_reader_init(&c->reader, c->max_recv, (msvc__grpc_enc_t)e);
    c->reader_on = true;
  }
  while (off < len) {
    const uint8_t *msg;
    size_t mlen, used;
    int r = msvc__grpc_reader_feed(&c->reader, (const uint8_t *)buf + off, len - off, &used,
                                   &msg, &mlen);
    ProtobufCMessage *m;

    off += used;
    if (r == 0)
      return;
    if (r < 0) {
      c->fail_code = r == MSVC_ETOOLARGE ? MSVC_GRPC_RESOURCE_EXHAUSTED : MSVC_GRPC_INTERNAL;
      c->fail_msg = r == MSVC_ETOOLARGE ? "reply larger than the client's limit"
                                        : "malformed reply message";
      return;
    }
    m = protobuf_c_message_unpack(c->desc->output, NULL, mlen, msg);
    if (m == NULL) {
      c->fail_code = MSVC_GRPC_INTERNAL;
      c->fail_msg = "cannot parse the reply message";
      return;
    }
    c->delivered++;
    if (c->on_message != NULL) {
      c->in_message = true;
      c->on_message(c, m, c->data);
      c->in_message = false;
      protobuf_c_message_free_unpacked(m, NULL);
      if (c->cancelled)
        return;
    } else if (c->reply != NULL) {
      protobuf_c_message_free_unpacked(m, NULL);
      c->fail_code = MSVC_GRPC_UNIMPLEMENTED;
      c->fail_msg = "more than one reply to a unary call";
      return;
    } else {
      c->reply = m;
    }
  }
}

/* Reads a field from the trailers, else from the headers (trailers-only). */
static const char *status_field(const msvc_http_response_t *res, const char *name) {
  const char *v = msvc_http_response_trailer(res, name);

  return v != NULL ? v : msvc_http_response_header(res, name);
}

static int collect_md(msvc_grpc_metadata_t **out, const msvc_http_response_t *res,
                      bool trailers) {
  size_t i, n = trailers ? msvc_http_response_trailer_count(res)
                         : msvc_http_response_header_count(res);
  int r = msvc_grpc_metadata_new(out);

  for (i = 0; i < n && r == MSVC_OK; i++) {
    const char *name, *value;

    if ((trailers ? msvc_http_response_trailer_at(res, i, &name, &value)
                  : msvc_http_response_header_at(res, i, &name, &value)) != MSVC_OK)
      continue;
    if (name[0] == ':' || msvc__strncasecmp(name, "grpc-", 5) == 0 ||
        msvc__strcasecmp(name, "content-type") == 0 || msvc__strcasecmp(name, "date") == 0 ||
        !msvc__grpc_key_ok(name, strlen(name), false))
      continue;
    r = msvc__grpc_metadata_add_wire(*out, name, strlen(name), value, strlen(value));
    if (r == MSVC_EINVAL)
      r = MSVC_OK;
  }
  return r;
}

/* msvc_grpc_client_handled_total{service,method,code} in the calling
 * service's registry (calls by name only). */
static void count_call(msvc_grpc_client_call_t *c, int code) {
  msvc__grpc_counted_t counted;

  if (c->svc == NULL)
    return;
  memset(&counted, 0, sizeof(counted));
  counted.service = c->service;
  counted.method = c->desc->name;
  if (msvc__grpc_family(msvc_service_metrics(c->svc), "msvc_grpc_client_handled_total",
                        "gRPC calls made by service name, by called service, method and "
                        "status code.", &counted.fam) == MSVC_OK)
    msvc__grpc_count(&counted, code);
}

static void deliver(msvc_grpc_client_call_t *c, int code, const char *message, int err,
                    const msvc_http_response_t *res) {
  msvc_grpc_status_t st;
  msvc_grpc_metadata_t *hdr = NULL, *trl = NULL;
  msvc__buf_t msg;

  memset(&st, 0, sizeof(st));
  msvc__buf_init(&msg, 0);
  if (res != NULL) {
    collect_md(&hdr, res, false);
    collect_md(&trl, res, true);
  }
  if (message != NULL)
    msvc__grpc_pct_decode(&msg, message, strlen(message));
  st.code = code;
  st.message = msg.data != NULL ? msg.data : "";
  st.headers = hdr;
  st.trailers = trl;
  st.err = err;
  st.attempts = c->attempts;
  c->done = true;
  count_call(c, code);
  if (c->span != NULL) {
    msvc__grpc_span_finish(c->span, c->path, code, st.message, false);
    if (c->attempts > 1)
      msvc_trace_span_set_int(c->span, "msvc.grpc.attempts", c->attempts);
    msvc_trace_span_end(c->span);
    c->span = NULL;
  }
  c->on_done(c, &st, code == MSVC_GRPC_OK && c->on_message == NULL ? c->reply : NULL,
             c->data);
  msvc_grpc_metadata_free(hdr);
  msvc_grpc_metadata_free(trl);
  msvc__buf_free(&msg);
  call_free(c);
}

static int start_attempt(msvc_grpc_client_call_t *c);

/* A gRPC retry is a retry of a call to the service, counted where the
 * service block counts its own: msvc_http_client_retries_total{service}. */
static void count_retry(msvc_grpc_client_call_t *c) {
  static const char *const labels[] = {"service"};
  msvc_metrics_family_opts_t o;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *ctr;
  const char *values[1] = {c->service};

  if (c->svc == NULL)
    return;
  msvc_metrics_family_opts_init(&o);
  o.name = "msvc_http_client_retries_total";
  o.help = "Retries of calls to other services.";
  o.label_names = labels;
  o.label_count = 1;
  if (msvc_metrics_family_new(msvc_service_metrics(c->svc), MSVC_METRICS_COUNTER, &o, &fam) ==
          MSVC_OK &&
      msvc_metrics_counter_get(fam, values, 1, &ctr) == MSVC_OK)
    msvc_metrics_counter_inc(ctr);
}

static void on_backoff(uv_timer_t *t) {
  msvc_grpc_client_call_t *c = t->data;
  int r;

  if (c->cancelled) {
    deliver(c, MSVC_GRPC_CANCELLED, "cancelled", MSVC_ECANCELED, NULL);
    return;
  }
  r = start_attempt(c);
  if (r != MSVC_OK)
    deliver(c, msvc_grpc_code_from_error(r), msvc_strerror(r), r, NULL);
}

/* gRPC's retry: UNAVAILABLE, nothing handed to the caller yet, attempts and
 * time left. */
static bool retry_later(msvc_grpc_client_call_t *c, int code) {
  uint64_t delay, now = msvc_now_ms();
  uint32_t shift = c->attempts > 5 ? 5 : c->attempts - 1;

  if (code != MSVC_GRPC_UNAVAILABLE || c->delivered > 0 || c->cancelled ||
      c->attempts >= c->max_attempts)
    return false;
  delay = (uint64_t)BACKOFF_FIRST_MS << shift;
  if (delay > BACKOFF_MAX_MS)
    delay = BACKOFF_MAX_MS;
  delay = delay / 2 + msvc__rand_below(delay / 2 + 1); /* jitter */
  if (now + delay >= c->deadline_ms)
    return false;
  if (c->timer == NULL) {
    c->timer = msvc__malloc(sizeof(*c->timer));
    if (c->timer == NULL)
      return false;
    uv_timer_init(c->loop, c->timer);
    c->timer->data = c;
  }
  uv_timer_start(c->timer, on_backoff, delay, 0);
  count_retry(c);
  return true;
}

static void attempt_done(msvc_grpc_client_call_t *c, int err, const msvc_http_response_t *res) {
  const char *msg = NULL;
  int code;

  c->scall = NULL;
  c->hcall = NULL;
  if (c->cancelled) {
    code = MSVC_GRPC_CANCELLED;
    msg = "cancelled";
    err = MSVC_ECANCELED;
    res = NULL;
  } else if (err != MSVC_OK) {
    code = msvc_grpc_code_from_error(err);
    msg = msvc_strerror(err);
    res = NULL;
  } else if (c->fail_code != 0) {
    code = c->fail_code;
    msg = c->fail_msg;
  } else if ((code = parse_code(status_field(res, "grpc-status"))) >= 0) {
    msg = status_field(res, "grpc-message");
    if (code == MSVC_GRPC_OK && c->on_message == NULL && c->reply == NULL) {
      code = MSVC_GRPC_UNIMPLEMENTED;
      msg = "no reply to a unary call";
    }
  } else if (msvc_http_response_status(res) != 200) {
    code = msvc_grpc_code_from_http(msvc_http_response_status(res));
    msg = "not a gRPC response";
  } else {
    code = MSVC_GRPC_INTERNAL;
    msg = "missing grpc-status";
  }
  if (c->reader_on && code == MSVC_GRPC_OK && !msvc__grpc_reader_idle(&c->reader)) {
    code = MSVC_GRPC_INTERNAL;
    msg = "reply cut short";
  }
  if (c->reader_on) {
    msvc__grpc_reader_free(&c->reader);
    c->reader_on = false;
  }
  if (code != MSVC_GRPC_OK && retry_later(c, code)) {
    if (c->reply != NULL)
      protobuf_c_message_free_unpacked(c->reply, NULL);
    c->reply = NULL;
    c->fail_code = 0;
    return;
  }
  deliver(c, code, msg, err, res);
}

static void on_service_done(int err, const msvc_http_response_t *res, void *data) {
  attempt_done(data, err, res);
}

static void on_http_done(msvc_http_call_t *hc, int err, const msvc_http_response_t *res,
                         void *data) {
  (void)hc;
  attempt_done(data, err, res);
}

/* ---- request --------------------------------------------------------------------------- */

typedef struct hdrs_s {
  msvc_http_header_t v[64];
  char *own[64];
  size_t n;
  size_t nown;
} hdrs_t;

static int add_hdr(void *data, const char *key, const char *value, size_t len) {
  hdrs_t *h = data;
  char *copy;

  (void)len;
  if (h->n == sizeof(h->v) / sizeof(h->v[0]))
    return MSVC_ELIMIT;
  copy = msvc__strdup(value);
  if (copy == NULL)
    return MSVC_ENOMEM;
  h->own[h->nown++] = copy;
  h->v[h->n].name = key;
  h->v[h->n].value = copy;
  h->n++;
  return MSVC_OK;
}

static int start_attempt(msvc_grpc_client_call_t *c) {
  hdrs_t h;
  char tmo[16];
  uint64_t now = msvc_now_ms(), left;
  size_t i;
  int r;

  if (now >= c->deadline_ms)
    return MSVC_ETIMEDOUT;
  left = c->deadline_ms - now;
  msvc__grpc_timeout_format(left, tmo);
  memset(&h, 0, sizeof(h));
  h.v[h.n++] = (msvc_http_header_t){"content-type", "application/grpc"};
  h.v[h.n++] = (msvc_http_header_t){"te", "trailers"};
  h.v[h.n++] = (msvc_http_header_t){"grpc-timeout", tmo};
  h.v[h.n++] = (msvc_http_header_t){"grpc-accept-encoding", "identity,gzip"};
  if (c->gzip)
    h.v[h.n++] = (msvc_http_header_t){"grpc-encoding", "gzip"};
  r = msvc__grpc_metadata_wire(c->md, add_hdr, &h);
  /* The call's span is the parent of the callee's, whatever the attempt;
   * the service's call then adds no span of its own. */
  if (r == MSVC_OK && c->traceparent[0] != '\0' && h.n + 2 <= sizeof(h.v) / sizeof(h.v[0])) {
    const char *ts = c->parent != NULL ? msvc_mw_tracestate(c->parent) : NULL;

    h.v[h.n++] = (msvc_http_header_t){"traceparent", c->traceparent};
    if (ts != NULL)
      h.v[h.n++] = (msvc_http_header_t){"tracestate", ts};
  }
  c->attempts++;
  c->delivered = 0;
  if (r == MSVC_OK && c->svc != NULL) {
    msvc_service_request_t sr;

    msvc_service_request_init(&sr);
    sr.method = "POST";
    sr.target = c->path;
    sr.headers = h.v;
    sr.nheaders = h.n;
    sr.body = c->body.data;
    sr.body_len = c->body.len;
    sr.parent = c->parent;
    sr.timeout_ms = (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left);
    sr.http2 = true;
    sr.on_chunk = on_chunk;
    sr.on_done = on_service_done;
    sr.data = c;
    r = msvc_service_call(c->svc, c->service, &sr, &c->scall);
  } else if (r == MSVC_OK) {
    msvc_http_request_t hr;

    msvc_http_request_init(&hr);
    hr.method = "POST";
    hr.host = c->host;
    hr.port = c->port;
    hr.target = c->path;
    hr.headers = h.v;
    hr.nheaders = h.n;
    hr.body = c->body.data;
    hr.body_len = c->body.len;
    hr.timeouts.total_ms = (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left);
    hr.timeouts.connect_ms = hr.timeouts.total_ms < 5000 ? hr.timeouts.total_ms : 5000;
    hr.http2 = true;
    hr.on_chunk = on_chunk;
    hr.on_done = on_http_done;
    hr.data = c;
    r = msvc_http_client_request(c->client, &hr, &c->hcall);
  }
  for (i = 0; i < h.nown; i++)
    msvc__free(h.own[i]);
  return r;
}

/* A client span when the call is made while serving a traced request: a
 * trace is continued, never started here (as for HTTP calls). Without a
 * tracer, a call to one address still carries a child context. */
static void trace_call(msvc_grpc_client_call_t *c) {
  const msvc_mw_trace_t *pt = c->parent != NULL ? msvc_mw_trace(c->parent) : NULL;
  msvc_span_t *server = c->parent != NULL ? msvc_mw_span(c->parent) : NULL;
  msvc_tracer_t *tracer = c->svc != NULL ? msvc_service_tracer(c->svc)
                                         : msvc__trace_span_tracer(server);
  msvc_trace_ctx_t parent;
  msvc_mw_trace_t child;

  if (pt == NULL ||
      (c->md != NULL && msvc_grpc_metadata_get(c->md, "traceparent", NULL) != NULL))
    return; /* the caller's own context wins */
  if (server != NULL) {
    parent = *msvc_trace_span_ctx(server);
  } else {
    memcpy(parent.trace_id, pt->trace_id, sizeof(parent.trace_id));
    memcpy(parent.span_id, pt->span_id, sizeof(parent.span_id));
    parent.flags = pt->flags;
    parent.remote = false;
  }
  if (tracer != NULL &&
      msvc_trace_span_start(tracer, c->path + 1, MSVC_SPAN_CLIENT, &parent, &c->span) ==
          MSVC_OK &&
      c->span != NULL) {
    msvc_trace_traceparent_format(msvc_trace_span_ctx(c->span), c->traceparent,
                                  sizeof(c->traceparent));
    if (c->svc == NULL && msvc_trace_span_wanted(c->span)) {
      msvc_trace_span_set_str(c->span, "server.address", c->host);
      msvc_trace_span_set_int(c->span, "server.port", c->port);
    }
  } else if (c->svc == NULL && msvc_mw_trace_child(pt, &child) == MSVC_OK) {
    msvc_mw_traceparent_format(&child, c->traceparent, sizeof(c->traceparent));
  }
}

static const ProtobufCMethodDescriptor *find_method(const ProtobufCServiceDescriptor *svc,
                                                    const char *name) {
  unsigned i;

  if (svc == NULL || name == NULL || svc->magic != PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC)
    return NULL;
  for (i = 0; i < svc->n_methods; i++)
    if (strcmp(svc->methods[i].name, name) == 0)
      return &svc->methods[i];
  return NULL;
}

static int copy_md(msvc_grpc_client_call_t *c, const msvc_grpc_metadata_t *md) {
  size_t i, n = msvc_grpc_metadata_count(md);
  int r = msvc_grpc_metadata_new(&c->md);

  for (i = 0; i < n && r == MSVC_OK; i++) {
    const char *k, *v;
    size_t len;

    msvc_grpc_metadata_at(md, i, &k, &v, &len);
    r = msvc_grpc_metadata_add(c->md, k, v, len);
  }
  return r;
}

static int pack_request(msvc_grpc_client_call_t *c, const ProtobufCMessage *req,
                        size_t max_send) {
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *packed;
  int r;

  if (max_send != 0 && n > max_send)
    return MSVC_ETOOLARGE;
  packed = msvc__malloc(n > 0 ? n : 1);
  if (packed == NULL)
    return MSVC_ENOMEM;
  protobuf_c_message_pack(req, packed);
  msvc__buf_init(&c->body, 0);
  r = msvc__grpc_frame_encode(&c->body, packed, n,
                              c->gzip ? MSVC__GRPC_ENC_GZIP : MSVC__GRPC_ENC_IDENTITY, max_send);
  msvc__free(packed);
  return r;
}

int msvc_grpc_invoke(const msvc_grpc_target_t *target,
                     const ProtobufCServiceDescriptor *svc, const char *method,
                     const ProtobufCMessage *req, const msvc_grpc_call_opts_t *opts,
                     msvc_grpc_message_fn on_message, msvc_grpc_done_fn on_done, void *data,
                     msvc_grpc_client_call_t **out) {
  msvc_grpc_call_opts_t o;
  const ProtobufCMethodDescriptor *md = find_method(svc, method);
  msvc_grpc_client_call_t *c;
  size_t n;
  int r;

  if (out != NULL)
    *out = NULL;
  if (target == NULL || md == NULL || req == NULL || on_done == NULL ||
      req->descriptor != md->input)
    return MSVC_EINVAL;
  if ((target->svc == NULL) == (target->client == NULL) ||
      (target->svc != NULL && target->service == NULL) ||
      (target->client != NULL && (target->host == NULL || target->port <= 0)))
    return MSVC_EINVAL;
  msvc_grpc_call_opts_init(&o);
  if (opts != NULL && !msvc__opts_copy(&o, sizeof(o), opts))
    return MSVC_EINVAL;
  c = msvc__calloc(1, sizeof(*c));
  if (c == NULL)
    return MSVC_ENOMEM;
  msvc__buf_init(&c->body, 0);
  c->svc = target->svc;
  c->client = target->client;
  c->port = target->port;
  /* The loop of the thread the call is made on: a worker's when it is made
   * while serving a request there. */
  if (c->svc != NULL)
    c->loop = o.parent != NULL ? msvc_http_server_loop(o.parent->srv) : msvc_service_loop(c->svc);
  else
    c->loop = target->loop;
  c->desc = md;
  c->gzip = o.gzip;
  c->max_recv = o.max_recv != 0 ? o.max_recv : MSVC_GRPC_DEFAULT_MAX_RECV;
  c->max_attempts = o.max_attempts == 0 ? 1 : o.max_attempts > 5 ? 5 : o.max_attempts;
  c->deadline_ms = msvc_now_ms() + (o.timeout_ms != 0 ? o.timeout_ms : 10000);
  if (o.parent != NULL) {
    const uint64_t *inherited = msvc_http_req_get(o.parent, MSVC__GRPC_DEADLINE_KEY);

    if (inherited != NULL && *inherited < c->deadline_ms)
      c->deadline_ms = *inherited;
  }
  c->parent = o.parent;
  c->on_message = on_message;
  c->on_done = on_done;
  c->data = data;
  n = strlen(svc->name) + strlen(method) + 3;
  c->path = msvc__malloc(n);
  if (c->path != NULL)
    snprintf(c->path, n, "/%s/%s", svc->name, method);
  if (c->loop == NULL) {
    call_free(c);
    return MSVC_EINVAL;
  }
  if (c->path == NULL || (target->service != NULL && (c->service = msvc__strdup(target->service)) == NULL) ||
      (target->host != NULL && (c->host = msvc__strdup(target->host)) == NULL)) {
    call_free(c);
    return MSVC_ENOMEM;
  }
  r = copy_md(c, o.metadata);
  if (r == MSVC_OK)
    trace_call(c);
  if (r == MSVC_OK)
    r = pack_request(c, req, o.max_send != 0 ? o.max_send : MSVC_GRPC_DEFAULT_MAX_SEND);
  if (r == MSVC_OK)
    r = start_attempt(c);
  if (r != MSVC_OK) {
    call_free(c);
    return r;
  }
  if (out != NULL)
    *out = c;
  return MSVC_OK;
}

void msvc_grpc_client_call_cancel(msvc_grpc_client_call_t *call) {
  if (call == NULL || call->done || call->cancelled)
    return;
  call->cancelled = true;
  if (call->scall != NULL)
    msvc_service_call_cancel(call->scall);
  else if (call->hcall != NULL)
    msvc_http_call_cancel(call->hcall);
  else if (call->timer != NULL)
    uv_timer_start(call->timer, on_backoff, 0, 0);
}
