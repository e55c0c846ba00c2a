/*
 * libmsvc's gRPC client against a grpcio server (started by interop.py):
 * interop_client <host> <port>. Runs its steps one after another, first to
 * the address, then by service name through a service whose static
 * registry lists a dead endpoint beside the live one, and a service whose
 * only endpoint is dead (until its breaker opens). Exits 0 when every
 * check held.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include <msvc/grpc.h>
#include <msvc/http_client.h>
#include <msvc/metrics.h>
#include <msvc/service.h>

#include "orders/v1/orders.pb-c.h"

static uv_loop_t loop;
static msvc_http_client_t *client;
static msvc_service_t *svc;
static msvc_grpc_target_t direct, named, dead_named;
static const char *host;
static int port;
static int failures, step, streamed;

static void next_step(void);

static void check(const char *name, int cond, const msvc_grpc_status_t *st) {
  printf("%s %s", cond ? "ok  " : "FAIL", name);
  if (st != NULL)
    printf(" (code %s, \"%s\", attempts %u)", msvc_grpc_code_name(st->code), st->message,
           st->attempts);
  printf("\n");
  fflush(stdout);
  if (!cond)
    failures++;
}

static void get(const msvc_grpc_target_t *t, int64_t id, const msvc_grpc_call_opts_t *o,
                msvc_grpc_done_fn done) {
  Orders__V1__GetOrderRequest req = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  int r;

  req.id = id;
  r = msvc_grpc_invoke(t, &orders__v1__orders__descriptor, "GetOrder", &req.base, o, NULL, done,
                       NULL, NULL);
  if (r != MSVC_OK) {
    check("invoke", 0, NULL);
    fprintf(stderr, "invoke: %s\n", msvc_strerror(r));
    next_step();
  }
}

static void on_unary(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                     const ProtobufCMessage *reply, void *data) {
  const Orders__V1__Order *o = (const void *)reply;
  size_t len = 0;
  const char *blob = msvc_grpc_metadata_get(st->trailers, "x-blob-bin", &len);

  (void)call;
  (void)data;
  check("unary reply", st->code == MSVC_GRPC_OK && o != NULL && o->id == 42 &&
                           o->n_items == 1 && strcmp(o->items[0]->sku, "sku-42") == 0, st);
  check("metadata echoed in trailers",
        msvc_grpc_metadata_get(st->trailers, "x-echo", NULL) != NULL &&
            strcmp(msvc_grpc_metadata_get(st->trailers, "x-echo", NULL), "hi") == 0 &&
            blob != NULL && len == 3 && memcmp(blob, "\0\1\377", 3) == 0,
        NULL);
  next_step();
}

static void on_not_found(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                         const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)data;
  check("NOT_FOUND with message", st->code == MSVC_GRPC_NOT_FOUND && reply == NULL &&
                                      strstr(st->message, "caf\xc3\xa9") != NULL, st);
  next_step();
}

static void on_unavailable(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                           const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  (void)data;
  check("UNAVAILABLE retried 3 times", st->code == MSVC_GRPC_UNAVAILABLE && st->attempts == 3,
        st);
  next_step();
}

static void on_deadline(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                        const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  (void)data;
  check("deadline exceeded", st->code == MSVC_GRPC_DEADLINE_EXCEEDED, st);
  next_step();
}

static void on_big(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                   const ProtobufCMessage *reply, void *data) {
  const Orders__V1__Order *o = (const void *)reply;

  (void)call;
  (void)data;
  check("3 MiB reply, gzip request",
        st->code == MSVC_GRPC_OK && o != NULL && strlen(o->items[0]->sku) == 3u << 20, st);
  next_step();
}

static void on_too_big(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                       const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  (void)data;
  check("5 MiB reply over the limit", st->code == MSVC_GRPC_RESOURCE_EXHAUSTED, st);
  next_step();
}

static void on_stream_msg(msvc_grpc_client_call_t *call, const ProtobufCMessage *msg,
                          void *data) {
  const Orders__V1__Order *o = (const void *)msg;

  if (o->id == streamed + 1)
    streamed++;
  if (data != NULL && streamed == 3)
    msvc_grpc_client_call_cancel(call);
}

static void on_stream_done(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                           const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  if (data == NULL)
    check("stream of 20", st->code == MSVC_GRPC_OK && streamed == 20, st);
  else
    check("stream cancelled", st->code == MSVC_GRPC_CANCELLED && streamed == 3, st);
  next_step();
}

static void stream(const msvc_grpc_target_t *t, int limit, void *cancel) {
  Orders__V1__ListOrdersRequest req = ORDERS__V1__LIST_ORDERS_REQUEST__INIT;

  req.user_id = 1;
  req.limit = limit;
  streamed = 0;
  if (msvc_grpc_invoke(t, &orders__v1__orders__descriptor, "ListOrders", &req.base, NULL,
                       on_stream_msg, on_stream_done, cancel, NULL) != MSVC_OK) {
    check("invoke stream", 0, NULL);
    next_step();
  }
}

static void on_named(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                     const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)data;
  check("by service name, past a dead endpoint", st->code == MSVC_GRPC_OK && reply != NULL,
        st);
  next_step();
}

static void on_no_endpoints(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                            const ProtobufCMessage *reply, void *data) {
  (void)call;
  (void)reply;
  (void)data;
  check("unknown service is UNAVAILABLE", st->code == MSVC_GRPC_UNAVAILABLE, st);
  next_step();
}

static int dead_calls;

/* Calls to a service whose only endpoint refuses, until its breaker opens:
 * then the call fails at once, UNAVAILABLE with MSVC_EBREAKER_OPEN. */
static void on_dead(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                    const ProtobufCMessage *reply, void *data) {
  msvc_grpc_call_opts_t o;

  (void)call;
  (void)reply;
  (void)data;
  if (st->code != MSVC_GRPC_UNAVAILABLE) {
    check("dead service is UNAVAILABLE", 0, st);
    next_step();
    return;
  }
  if (st->err == MSVC_EBREAKER_OPEN || ++dead_calls >= 20) {
    check("open breaker gives UNAVAILABLE at once", st->err == MSVC_EBREAKER_OPEN, st);
    next_step();
    return;
  }
  msvc_grpc_call_opts_init(&o);
  o.max_attempts = 1;
  get(&dead_named, 1, &o, on_dead);
}

/* Endpoint health as gRPC sees it: the named services below all reach the
 * grpcio server, which answers each call with the status 5000 + code asks
 * for. Server-side failures open the endpoint's breaker; the caller's own
 * faults and overload (RESOURCE_EXHAUSTED) do not. */
static const struct {
  const char *service;
  int code;
  int opens;
} probes[] = {
    {"s-unavailable", MSVC_GRPC_UNAVAILABLE, 1},
    {"s-deadline", MSVC_GRPC_DEADLINE_EXCEEDED, 1},
    {"s-internal", MSVC_GRPC_INTERNAL, 1},
    {"s-unknown", MSVC_GRPC_UNKNOWN, 1},
    {"s-data-loss", MSVC_GRPC_DATA_LOSS, 1},
    {"s-invalid", MSVC_GRPC_INVALID_ARGUMENT, 0},
    {"s-not-found", MSVC_GRPC_NOT_FOUND, 0},
    {"s-exhausted", MSVC_GRPC_RESOURCE_EXHAUSTED, 0},
};
static size_t probe;
static int probe_calls;

static void probe_call(void);

static void on_probe(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                     const ProtobufCMessage *reply, void *data) {
  char name[96];
  int opened = st->err == MSVC_EBREAKER_OPEN;

  (void)call;
  (void)reply;
  (void)data;
  if (!opened && st->code != probes[probe].code) {
    snprintf(name, sizeof(name), "%s answers its code", probes[probe].service);
    check(name, 0, st);
  } else if (opened || ++probe_calls >= 30) {
    snprintf(name, sizeof(name), "%s %s the breaker", probes[probe].service,
             probes[probe].opens ? "opens" : "leaves closed");
    check(name, opened == probes[probe].opens, st);
  } else {
    probe_call();
    return;
  }
  probe_calls = 0;
  if (++probe < sizeof(probes) / sizeof(probes[0]))
    probe_call();
  else
    next_step();
}

static void probe_call(void) {
  msvc_grpc_target_t t = {.svc = svc, .service = probes[probe].service};
  msvc_grpc_call_opts_t o;

  msvc_grpc_call_opts_init(&o);
  o.max_attempts = 1;
  get(&t, 5000 + probes[probe].code, &o, on_probe);
}

/* UNAVAILABLE retried by gRPC's policy shows in the service's retry
 * counter. */
static void on_counted_retry(msvc_grpc_client_call_t *call, const msvc_grpc_status_t *st,
                             const ProtobufCMessage *reply, void *data) {
  static const char *const labels[] = {"service"};
  const char *values[] = {"orders-retry"};
  msvc_metrics_family_opts_t fo;
  msvc_metrics_family_t *fam;
  msvc_metrics_counter_t *ctr = NULL;

  (void)call;
  (void)reply;
  (void)data;
  msvc_metrics_family_opts_init(&fo);
  fo.name = "msvc_http_client_retries_total";
  fo.help = "Retries of calls to other services.";
  fo.label_names = labels;
  fo.label_count = 1;
  if (msvc_metrics_family_new(msvc_service_metrics(svc), MSVC_METRICS_COUNTER, &fo, &fam) !=
          MSVC_OK ||
      msvc_metrics_counter_get(fam, values, 1, &ctr) != MSVC_OK)
    ctr = NULL;
  check("gRPC retries in msvc_http_client_retries_total",
        st->attempts == 3 && ctr != NULL && msvc_metrics_counter_value(ctr) == 2.0, st);
  next_step();
}

static void finish(void) {
  msvc_http_client_close(client, NULL, NULL);
  msvc_service_stop(svc, NULL, NULL);
}

static void next_step(void) {
  msvc_grpc_call_opts_t o;
  msvc_grpc_metadata_t *md = NULL;
  msvc_grpc_target_t nobody = named;

  msvc_grpc_call_opts_init(&o);
  switch (step++) {
  case 0:
    msvc_grpc_metadata_new(&md);
    msvc_grpc_metadata_add(md, "x-echo", "hi", 2);
    msvc_grpc_metadata_add(md, "x-blob-bin", "\0\1\377", 3);
    o.metadata = md;
    get(&direct, 42, &o, on_unary);
    msvc_grpc_metadata_free(md);
    break;
  case 1:
    get(&direct, 404, NULL, on_not_found);
    break;
  case 2:
    get(&direct, 503, NULL, on_unavailable);
    break;
  case 3:
    o.timeout_ms = 300;
    get(&direct, 999, &o, on_deadline);
    break;
  case 4:
    o.gzip = true;
    get(&direct, 1000 + 3072, &o, on_big);
    break;
  case 5:
    get(&direct, 1000 + 5120, NULL, on_too_big);
    break;
  case 6:
    stream(&direct, 20, NULL);
    break;
  case 7:
    stream(&direct, 100000, &step);
    break;
  case 8:
    get(&named, 43, NULL, on_named);
    break;
  case 9:
    get(&named, 44, NULL, on_named);
    break;
  case 10:
    nobody.service = "nobody";
    o.timeout_ms = 2000;
    get(&nobody, 1, &o, on_no_endpoints);
    break;
  case 11:
    o.max_attempts = 1;
    get(&dead_named, 1, &o, on_dead);
    break;
  case 12: {
    msvc_grpc_target_t t = {.svc = svc, .service = "orders-retry"};
    get(&t, 5014, NULL, on_counted_retry);
    break;
  }
  case 13:
    probe_call();
    break;
  default:
    finish();
  }
}

static void on_ready(msvc_service_t *s, int status, void *data) {
  (void)s;
  (void)data;
  if (status != MSVC_OK) {
    fprintf(stderr, "service start: %s\n", msvc_strerror(status));
    exit(1);
  }
  next_step();
}

int main(int argc, char **argv) {
  msvc_service_opts_t opts;
  char registry[1024], err[MSVC_ERRMSG_MAX];
  size_t i, n;
  uv_tcp_t dead;
  struct sockaddr_in sa;
  int namelen = sizeof(sa), dead_port, rc;

  if (argc != 3)
    return 2;
  host = argv[1];
  port = atoi(argv[2]);
  uv_loop_init(&loop);
  /* A port bound but never listened on: connections to it are refused. */
  uv_tcp_init(&loop, &dead);
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_bind(&dead, (const struct sockaddr *)&sa, 0);
  uv_tcp_getsockname(&dead, (struct sockaddr *)&sa, &namelen);
  dead_port = ntohs(sa.sin_port);
  snprintf(registry, sizeof(registry), "static://orders=127.0.0.1:%d,%s:%d;dead=127.0.0.1:%d",
           dead_port, host, port, dead_port);
  n = strlen(registry);
  snprintf(registry + n, sizeof(registry) - n, ";orders-retry=%s:%d", host, port);
  for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
    n = strlen(registry);
    snprintf(registry + n, sizeof(registry) - n, ";%s=%s:%d", probes[i].service, host, port);
  }
  if (msvc_http_client_new(&loop, NULL, &client) != MSVC_OK)
    return 1;
  msvc_service_opts_init(&opts);
  opts.registry_uri = registry;
  opts.on_ready = on_ready;
  opts.access_log = false;
  rc = msvc_service_new(&loop, "grpc-interop-client", &opts, &svc, err, sizeof(err));
  if (rc != MSVC_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  direct = (msvc_grpc_target_t){.client = client, .loop = &loop, .host = host, .port = port};
  named = (msvc_grpc_target_t){.svc = svc, .service = "orders"};
  dead_named = (msvc_grpc_target_t){.svc = svc, .service = "dead"};
  rc = msvc_service_run(svc);
  uv_close((uv_handle_t *)&dead, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    fprintf(stderr, "a handle leaked\n");
    failures++;
  }
  if (step < 15) {
    fprintf(stderr, "stopped at step %d\n", step);
    failures++;
  }
  return rc == MSVC_OK && failures == 0 ? 0 : 1;
}
