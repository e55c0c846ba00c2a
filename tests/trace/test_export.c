/* The exporter over real sockets on 127.0.0.1: batches reach a small
 * collector run by the test (in protobuf, the default, and in JSON), 503s
 * are retried, a dead or stuck collector costs dropped spans (counted) and
 * nothing else. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <msvc/error.h>
#include <msvc/metrics.h>
#include <msvc/trace.h>

typedef struct collector_s {
  int fd;
  int port;
  pthread_t th;
  _Atomic int posts;
  _Atomic int spans;
  _Atomic int fail_first; /* answer 503 to this many posts */
  int status;             /* then this */
  bool stuck;             /* read, never answer */
  bool keep_alive;        /* serve every request of a connection */
  _Atomic int accepts;
  _Atomic bool stop;
  bool bad_request;
  msvc_otlp_protocol_t protocol; /* what the tracer sends */
} collector_t;

/* Spans in an ExportTraceServiceRequest: resource_spans (1) → scope_spans
 * (2) → spans (2). Enough of the wire format to count; the encoding itself
 * is checked field by field elsewhere. -1 when the bytes do not parse. */
static int pb_field(const unsigned char **p, const unsigned char *end, unsigned *field,
                    const unsigned char **body, size_t *len) {
  uint64_t v = 0, tag = 0;
  int i;

  for (i = 0; i < 2; i++) {
    unsigned shift = 0;
    v = 0;
    do {
      if (*p >= end || shift > 63)
        return -1;
      v |= (uint64_t)(**p & 0x7f) << shift;
      shift += 7;
    } while (*(*p)++ & 0x80);
    if (i == 0) {
      tag = v;
      if ((tag & 7) != 2) /* only length-delimited fields matter here */
        break;
    }
  }
  *field = (unsigned)(tag >> 3);
  if ((tag & 7) == 2) {
    if (v > (uint64_t)(end - *p))
      return -1;
    *body = *p;
    *len = (size_t)v;
    *p += v;
  } else {
    *body = NULL;
    *len = 0;
    *p += (tag & 7) == 1 ? 8 : (tag & 7) == 5 ? 4 : 0;
    if ((tag & 7) == 0) {
      while (*p < end && (*(*p)++ & 0x80))
        ;
    }
    if (*p > end)
      return -1;
  }
  return 0;
}

static int pb_count(const unsigned char *p, const unsigned char *end, int depth) {
  int n = 0;

  while (p < end) {
    const unsigned char *body;
    unsigned field;
    size_t len;
    int sub;
    if (pb_field(&p, end, &field, &body, &len) != 0)
      return -1;
    if (body == NULL || field != (depth == 0 ? 1u : 2u))
      continue;
    if (depth == 2) {
      n++;
    } else if ((sub = pb_count(body, body + len, depth + 1)) < 0) {
      return -1;
    } else {
      n += sub;
    }
  }
  return n;
}

static int count(const char *hay, size_t n, const char *needle) {
  int c = 0;
  const char *p = hay;

  while ((p = memmem(p, n - (size_t)(p - hay), needle, strlen(needle))) != NULL) {
    c++;
    p++;
  }
  return c;
}

/* false: the connection has no (whole) request, or is to be dropped */
static bool serve_one(collector_t *c, int cfd) {
  static char buf[1 << 22];
  size_t len = 0, need = 0;
  char *body = NULL, resp[128];
  int st;

  while (len < sizeof(buf) - 1) {
    ssize_t r = read(cfd, buf + len, sizeof(buf) - 1 - len);
    if (r <= 0)
      return false;
    len += (size_t)r;
    buf[len] = '\0';
    if (body == NULL && (body = strstr(buf, "\r\n\r\n")) != NULL) {
      const char *cl = strcasestr(buf, "Content-Length:");
      body += 4;
      need = cl != NULL ? strtoul(cl + 15, NULL, 10) : 0;
      if (strncmp(buf, "POST /v1/traces HTTP/1.1\r\n", 26) != 0 ||
          strcasestr(buf, c->protocol == MSVC_OTLP_HTTP_JSON
                              ? "Content-Type: application/json\r\n"
                              : "Content-Type: application/x-protobuf\r\n") == NULL)
        c->bad_request = true;
    }
    if (body != NULL && len - (size_t)(body - buf) >= need)
      break;
  }
  atomic_fetch_add(&c->posts, 1);
  if (c->stuck) {
    while (!atomic_load(&c->stop) && read(cfd, buf, 1) > 0)
      ;
    return false;
  }
  if (atomic_load(&c->fail_first) > 0) {
    atomic_fetch_sub(&c->fail_first, 1);
    st = 503;
  } else {
    st = c->status;
  }
  if (st == 200 && body != NULL && c->protocol == MSVC_OTLP_HTTP_JSON) {
    atomic_fetch_add(&c->spans, count(body, need, "{\"traceId\""));
  } else if (st == 200 && body != NULL) {
    int n = pb_count((const unsigned char *)body, (const unsigned char *)body + need, 0);
    if (n < 0)
      c->bad_request = true;
    else
      atomic_fetch_add(&c->spans, n);
  }
  snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}", st);
  (void)!write(cfd, resp, strlen(resp));
  return true;
}

static void *collector_main(void *arg) {
  collector_t *c = arg;

  while (!atomic_load(&c->stop)) {
    int cfd = accept(c->fd, NULL, NULL);
    if (cfd < 0)
      break;
    atomic_fetch_add(&c->accepts, 1);
    while (serve_one(c, cfd) && c->keep_alive && !atomic_load(&c->stop))
      ;
    close(cfd);
  }
  return NULL;
}

static void collector_start(collector_t *c, int status) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);

  c->status = status;
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(c->fd, 0);
  cr_assert_eq(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(c->fd, 16), 0);
  getsockname(c->fd, (struct sockaddr *)&a, &al);
  c->port = ntohs(a.sin_port);
  cr_assert_eq(pthread_create(&c->th, NULL, collector_main, c), 0);
}

static void collector_stop(collector_t *c) {
  atomic_store(&c->stop, true);
  shutdown(c->fd, SHUT_RDWR);
  close(c->fd);
  pthread_join(c->th, NULL);
}

/* The protocol of the tracers the next tracer_to() calls make. */
static msvc_otlp_protocol_t protocol = MSVC_OTLP_HTTP_PROTOBUF;

static msvc_tracer_t *tracer_to(int port, uint32_t queue_max, msvc_metrics_registry_t *reg) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;
  char url[64];

  snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/traces", port);
  msvc_tracer_opts_init(&o);
  o.service_name = "export-test";
  o.endpoint = url;
  o.queue_max = queue_max;
  o.batch_max = 256;
  o.delay_ms = 20;
  o.timeout_ms = 2000;
  o.metrics = reg;
  o.protocol = protocol;
  cr_assert_eq(msvc_tracer_new(&o, &t), MSVC_OK);
  return t;
}

static void spans(msvc_tracer_t *t, int n) {
  int i;

  for (i = 0; i < n; i++) {
    msvc_span_t *s;
    cr_assert_eq(msvc_trace_span_start(t, "op", MSVC_SPAN_INTERNAL, NULL, &s), MSVC_OK);
    msvc_trace_span_set_int(s, "i", i);
    msvc_trace_span_end(s);
  }
}

static char *exposition(msvc_metrics_registry_t *reg) {
  char *out;
  cr_assert_eq(msvc_metrics_expose(reg, MSVC_METRICS_FORMAT_TEXT, &out, NULL), MSVC_OK);
  return out;
}

static void batches_reach_the_collector(msvc_otlp_protocol_t proto) {
  collector_t c = {0};
  msvc_metrics_registry_t *reg;
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;
  char *text;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  protocol = c.protocol = proto;
  collector_start(&c, 200);
  t = tracer_to(c.port, 4096, reg);
  spans(t, 1000);
  cr_assert_eq(msvc_tracer_shutdown(t, 10000), MSVC_OK);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.exported, 1000);
  cr_assert_eq(st.dropped, 0);
  cr_assert_eq(atomic_load(&c.spans), 1000);
  cr_assert_not(c.bad_request);
  text = exposition(reg);
  cr_assert_not_null(strstr(text, "msvc_trace_spans_exported_total 1000\n"), "%s", text);
  cr_assert_not_null(strstr(text, "msvc_trace_spans_dropped_total{reason=\"queue_full\"} 0\n"));
  msvc_free(text);
  msvc_tracer_free(t);
  collector_stop(&c);
  msvc_metrics_registry_free(reg);
}

Test(trace_export, batches_reach_the_collector, .timeout = 30) {
  batches_reach_the_collector(MSVC_OTLP_HTTP_PROTOBUF);
}

Test(trace_export, batches_reach_the_collector_json, .timeout = 30) {
  batches_reach_the_collector(MSVC_OTLP_HTTP_JSON);
}

static void retries_after_503(msvc_otlp_protocol_t proto) {
  collector_t c = {0};
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;

  c.fail_first = 2;
  protocol = c.protocol = proto;
  collector_start(&c, 200);
  t = tracer_to(c.port, 4096, NULL);
  spans(t, 10);
  cr_assert_eq(msvc_tracer_shutdown(t, 10000), MSVC_OK);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.exported, 10);
  cr_assert_eq(atomic_load(&c.posts), 3);
  cr_assert_eq(atomic_load(&c.spans), 10);
  cr_assert_not(c.bad_request);
  msvc_tracer_free(t);
  collector_stop(&c);
}

/* A collector that keeps connections open gets every batch on one; one
 * that closes after each answer (the others here) gets a new one each. */
Test(trace_export, keeps_the_connection_between_batches, .timeout = 30) {
  collector_t c = {0};
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;
  int i;

  c.keep_alive = true;
  protocol = c.protocol = MSVC_OTLP_HTTP_PROTOBUF;
  collector_start(&c, 200);
  t = tracer_to(c.port, 4096, NULL);
  for (i = 0; i < 5; i++) {
    spans(t, 100);
    usleep(60 * 1000); /* past the 20 ms delay: a batch of its own */
  }
  cr_assert_eq(msvc_tracer_shutdown(t, 10000), MSVC_OK);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.exported, 500);
  cr_assert_geq(atomic_load(&c.posts), 5);
  cr_assert_eq(atomic_load(&c.accepts), 1);
  cr_assert_eq(atomic_load(&c.spans), 500);
  cr_assert_not(c.bad_request);
  msvc_tracer_free(t);
  collector_stop(&c);
}

Test(trace_export, retries_after_503, .timeout = 30) {
  retries_after_503(MSVC_OTLP_HTTP_PROTOBUF);
}

Test(trace_export, retries_after_503_json, .timeout = 30) {
  retries_after_503(MSVC_OTLP_HTTP_JSON);
}

Test(trace_export, always_503_drops_and_counts, .timeout = 30) {
  collector_t c = {0};
  msvc_metrics_registry_t *reg;
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;
  char *text;

  cr_assert_eq(msvc_metrics_registry_new(NULL, &reg), MSVC_OK);
  collector_start(&c, 503);
  t = tracer_to(c.port, 4096, reg);
  spans(t, 10);
  msvc_tracer_shutdown(t, 10000);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.exported, 0);
  cr_assert_eq(st.dropped, 10);
  cr_assert_eq(atomic_load(&c.posts), 4, "one try and three retries");
  text = exposition(reg);
  cr_assert_not_null(strstr(text, "msvc_trace_spans_dropped_total{reason=\"export_failed\"} 10\n"),
                     "%s", text);
  msvc_free(text);
  msvc_tracer_free(t);
  collector_stop(&c);
  msvc_metrics_registry_free(reg);
}

/* 100k spans against a port nobody listens on: the queue stays bounded and
 * every span is accounted for (LeakSanitizer checks that none is lost). */
Test(trace_export, collector_down_bounded_and_counted, .timeout = 60) {
  collector_t c = {0};
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;
  int port, i;

  collector_start(&c, 200);
  port = c.port;
  collector_stop(&c); /* the port is now closed */
  t = tracer_to(port, 1024, NULL);
  for (i = 0; i < 100; i++) {
    spans(t, 1000);
    msvc_tracer_stats(t, &st);
    cr_assert_leq(st.queued, 1024);
  }
  msvc_tracer_shutdown(t, 1000);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.started, 100000);
  cr_assert_eq(st.kept, 100000);
  cr_assert_eq(st.exported, 0);
  cr_assert_eq(st.dropped, 100000);
  cr_assert_eq(st.queued, 0);
  msvc_tracer_free(t);
}

Test(trace_export, stuck_collector_does_not_hold_the_shutdown, .timeout = 30) {
  collector_t c = {0};
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;
  uint64_t t0;

  c.stuck = true;
  collector_start(&c, 200);
  t = tracer_to(c.port, 4096, NULL);
  spans(t, 10);
  usleep(100 * 1000); /* the batch is in flight */
  t0 = msvc_now_ms();
  msvc_tracer_shutdown(t, 300);
  cr_assert_lt(msvc_now_ms() - t0, 5000);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.exported + st.dropped, 10);
  msvc_tracer_free(t);
  collector_stop(&c);
}

Test(trace_export, spans_after_shutdown_are_dropped, .timeout = 30) {
  collector_t c = {0};
  msvc_tracer_t *t;
  msvc_tracer_stats_t st;

  collector_start(&c, 200);
  t = tracer_to(c.port, 4096, NULL);
  msvc_tracer_shutdown(t, 1000);
  spans(t, 5);
  msvc_tracer_stats(t, &st);
  cr_assert_eq(st.dropped, 5);
  msvc_tracer_free(t);
  collector_stop(&c);
}
