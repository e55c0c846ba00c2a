/*
 * HTTP/2: the server against nghttp2's own client tools (nghttp, h2load)
 * and against hand-made frames that break the protocol, and the library's
 * client against the server. The server runs on its loop thread
 * (helpers.h); the client tests run their own loop in the test thread.
 */
#include <poll.h>
#include <stdint.h>

#include <msvc/http_client.h>

#include "http/helpers.h"

/* ---- the server's routes ----------------------------------------------- */

static atomic_int n_count;
static atomic_int n_cancel;

static void on_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)data;
  msvc_http_res_header(res, "X-Version", msvc_http_req_version(req) == 20 ? "2" : "1");
  msvc_http_res_send(res, 200, "text/plain", "hello", 5);
}

static void on_count(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  atomic_fetch_add(&n_count, 1);
  msvc_http_res_send(res, 200, "text/plain", "ok", 2);
}

static void on_big(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *n = msvc_http_req_query(req, "n");
  size_t len = n != NULL ? (size_t)strtoul(n, NULL, 10) : 0, i;
  char *body = malloc(len + 1);

  (void)data;
  for (i = 0; i < len; i++)
    body[i] = (char)('a' + i % 26);
  msvc_http_res_send(res, 200, "application/octet-stream", body, len);
  free(body);
}

static void on_echo(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  size_t len;
  const char *b = msvc_http_req_body(req, &len);

  (void)data;
  msvc_http_res_send(res, 200, "application/octet-stream", b, len);
}

static void on_trailers(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)data;
  (void)req;
  msvc_http_res_start(res, 200, "application/grpc");
  msvc_http_res_write(res, "abc", 3);
  msvc_http_res_write(res, "def", 3);
  msvc_http_res_trailer(res, "grpc-status", "0");
  msvc_http_res_trailer(res, "grpc-message", "fine");
  msvc_http_res_end(res);
}

/* The handler still ends its request (the answer is dropped), which is
 * what releases it. */
/* A gRPC error without messages: one HEADERS frame with the trailers. */
static void on_trailers_only(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)data;
  (void)req;
  msvc_http_res_start(res, 200, "application/grpc");
  msvc_http_res_trailer(res, "grpc-status", "5");
  msvc_http_res_end(res);
}

static void on_cancel(msvc_http_req_t *req, void *data) {
  (void)data;
  atomic_fetch_add(&n_cancel, 1);
  cr_expect(msvc_http_req_cancelled(req));
  cr_expect_eq(msvc_http_res_send(msvc_http_req_res(req), 200, NULL, NULL, 0), MSVC_ECLOSED);
}

static void on_slow(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)res;
  (void)data;
  msvc_http_req_on_cancel(req, on_cancel, NULL);
}

static void on_close_conn(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_close_connection(res);
  msvc_http_res_send(res, 200, "text/plain", "bye", 3);
}

static void routes(msvc_http_server_t *srv) {
  msvc_http_server_route(srv, "GET", "/close", on_close_conn, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/hello", on_hello, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/count", on_count, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/big", on_big, NULL, NULL);
  msvc_http_server_route(srv, "POST", "/echo", on_echo, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/trailers", on_trailers, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/slow", on_slow, NULL, NULL);
  msvc_http_server_route(srv, "GET", "/trailers-only", on_trailers_only, NULL, NULL);
}

static void start(tsrv_t *t) {
  msvc_http_server_opts_t o;

  atomic_store(&n_count, 0);
  atomic_store(&n_cancel, 0);
  msvc_http_server_opts_init(&o);
  o.max_body_bytes = 4u * 1024 * 1024;
  tsrv_start(t, &o, routes);
}

/* Runs a shell command, returns its whole output (caller frees). */
static char *run(const char *cmd) {
  FILE *f = popen(cmd, "r");
  size_t len = 0, cap = 65536;
  char *out = malloc(cap);
  size_t n;

  cr_assert_not_null(f);
  while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (cap - len < 2)
      out = realloc(out, cap *= 2);
  }
  out[len] = '\0';
  pclose(f);
  return out;
}

/* ---- nghttp2's client tools ---------------------------------------------- */

TestSuite(h2_tools, .timeout = 60);

Test(h2_tools, nghttp_gets_hello_over_h2c) {
  tsrv_t t;
  char cmd[256], *out;

  start(&t);
  snprintf(cmd, sizeof(cmd), "nghttp -v http://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, ":status: 200") != NULL, "%s", out);
  cr_expect(strstr(out, "x-version: 2") != NULL, "%s", out);
  cr_expect(strstr(out, "hello") != NULL);
  free(out);
  tsrv_stop(&t);
}

Test(h2_tools, http1_still_served_on_the_same_port) {
  tsrv_t t;
  tresp_t r;
  tconn_t c;

  start(&t);
  memset(&c, 0, sizeof(c));
  c.fd = tc_connect(t.port);
  tc_sends(c.fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  cr_assert(tc_read(&c, &r, false));
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 5);
  tresp_free(&r);
  close(c.fd);
  tsrv_stop(&t);
}

static size_t fetch_size(int port, size_t n) {
  char cmd[256], *out;
  size_t got;

  snprintf(cmd, sizeof(cmd), "nghttp http://127.0.0.1:%d/big?n=%zu | wc -c", port, n);
  out = run(cmd);
  got = (size_t)strtoul(out, NULL, 10);
  free(out);
  return got;
}

Test(h2_tools, large_responses_keep_flowing) {
  tsrv_t t;

  start(&t);
  cr_expect_eq(fetch_size(t.port, 1u << 20), 1u << 20);
  cr_expect_eq(fetch_size(t.port, 16u << 20), 16u << 20);
  tsrv_stop(&t);
}

Test(h2_tools, trailers_follow_the_body) {
  tsrv_t t;
  char cmd[256], *out;

  start(&t);
  snprintf(cmd, sizeof(cmd), "nghttp -v http://127.0.0.1:%d/trailers 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "grpc-status: 0") != NULL, "%s", out);
  cr_expect(strstr(out, "abcdef") != NULL, "%s", out);
  free(out);
  tsrv_stop(&t);
}

Test(h2_tools, grpc_answer_without_messages_is_one_headers_frame) {
  tsrv_t t;
  char cmd[256], *out;

  start(&t);
  snprintf(cmd, sizeof(cmd), "nghttp -v http://127.0.0.1:%d/trailers-only 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "grpc-status: 5") != NULL, "%s", out);
  cr_expect(strstr(out, "recv DATA") == NULL, "%s", out);
  cr_expect(strstr(out, "END_STREAM | END_HEADERS") != NULL, "%s", out);
  free(out);
  tsrv_stop(&t);
}

Test(h2_tools, h2load_multiplexes_streams) {
  tsrv_t t;
  char cmd[256], *out;

  start(&t);
  snprintf(cmd, sizeof(cmd), "h2load -n 2000 -c 4 -m 32 http://127.0.0.1:%d/count 2>&1",
           t.port);
  out = run(cmd);
  cr_expect(strstr(out, "2000 succeeded") != NULL, "%s", out);
  cr_expect_eq(atomic_load(&n_count), 2000);
  free(out);
  tsrv_stop(&t);
}

Test(h2_tools, h2c_can_be_turned_off) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  char cmd[256], *out;

  msvc_http_server_opts_init(&o);
  o.http2 = false;
  tsrv_start(&t, &o, routes);
  snprintf(cmd, sizeof(cmd), "nghttp http://127.0.0.1:%d/hello 2>&1", t.port);
  out = run(cmd);
  cr_expect(strstr(out, "hello") == NULL, "%s", out);
  free(out);
  tsrv_stop(&t);
}

/* ---- raw frames ------------------------------------------------------------- */

enum { F_DATA, F_HEADERS, F_PRIORITY, F_RST, F_SETTINGS, F_PUSH, F_PING, F_GOAWAY,
       F_WINDOW, F_CONT };

/* Writes one frame at out (9 + n bytes), returns the bytes written. */
static size_t frame_at(uint8_t *out, uint8_t type, uint8_t flags, uint32_t sid,
                       const void *p, size_t n) {
  out[0] = (uint8_t)(n >> 16);
  out[1] = (uint8_t)(n >> 8);
  out[2] = (uint8_t)n;
  out[3] = type;
  out[4] = flags;
  out[5] = (uint8_t)(sid >> 24);
  out[6] = (uint8_t)(sid >> 16);
  out[7] = (uint8_t)(sid >> 8);
  out[8] = (uint8_t)sid;
  if (n > 0)
    memcpy(out + 9, p, n);
  return 9 + n;
}

static void frame(int fd, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                  size_t n) {
  uint8_t *b = malloc(9 + n);

  cr_assert_not_null(b);
  tc_send(fd, (const char *)b, frame_at(b, type, flags, sid, p, n));
  free(b);
}

static bool read_full(int fd, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0)
      return false;
    p += r;
    n -= (size_t)r;
  }
  return true;
}

typedef struct rframe_s {
  uint8_t type, flags;
  uint32_t sid, len;
  uint8_t p[65536];
} rframe_t;

static bool read_frame(int fd, rframe_t *f) {
  uint8_t h[9];

  if (!read_full(fd, h, 9))
    return false;
  f->len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
  f->type = h[3];
  f->flags = h[4];
  f->sid = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
           0x7fffffffu;
  if (f->len > sizeof(f->p)) {
    static uint8_t skip[1 << 16];
    uint32_t left = f->len;
    while (left > 0) {
      uint32_t k = left > sizeof(skip) ? (uint32_t)sizeof(skip) : left;
      if (!read_full(fd, skip, k))
        return false;
      left -= k;
    }
    return true;
  }
  return read_full(fd, f->p, f->len);
}

static uint32_t u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads until a GOAWAY or a RST_STREAM (or the end); returns its error code
 * with *type set, or -1 when the connection ended without either. */
static long wait_error(int fd, int *type) {
  static rframe_t f;
  int i;

  for (i = 0; i < 100000; i++) {
    if (!read_frame(fd, &f))
      return -1;
    if (f.type == F_GOAWAY && f.len >= 8) {
      *type = F_GOAWAY;
      return u32(f.p + 4);
    }
    if (f.type == F_RST && f.len == 4) {
      *type = F_RST;
      return u32(f.p);
    }
  }
  return -1;
}

static int h2_open(int port) {
  int fd = tc_connect(port);

  tc_send(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  frame(fd, F_SETTINGS, 0, 0, NULL, 0);
  return fd;
}

/* HPACK: GET, http, the path from the static table ("/"), authority "x". */
static const uint8_t get_root[] = {0x82, 0x86, 0x84, 0x41, 0x01, 'x'};
/* POST /echo with a literal path. */
static const uint8_t post_echo[] = {0x83, 0x86, 0x44, 0x05, '/', 'e', 'c', 'h', 'o',
                                    0x41, 0x01, 'x'};

TestSuite(h2_frames, .timeout = 60);

Test(h2_frames, bad_preface_gets_no_http2) {
  tsrv_t t;
  tconn_t c;
  tresp_t r;

  start(&t);
  memset(&c, 0, sizeof(c));
  c.fd = tc_connect(t.port);
  /* Starts like the preface, then is not. */
  tc_sends(c.fd, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
  cr_assert(tc_read(&c, &r, false));
  cr_expect_eq(r.status, 400);
  tresp_free(&r);
  close(c.fd);
  tsrv_stop(&t);
}

Test(h2_frames, no_settings_after_preface_is_a_protocol_error) {
  tsrv_t t;
  int fd, type = 0;

  start(&t);
  fd = tc_connect(t.port);
  tc_send(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
  frame(fd, F_PING, 0, 0, "12345678", 8);
  cr_expect_eq(wait_error(fd, &type), 1 /* PROTOCOL_ERROR */);
  cr_expect_eq(type, F_GOAWAY);
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, oversized_frame_is_a_frame_size_error) {
  tsrv_t t;
  static uint8_t big[20000];
  int fd, type = 0;

  start(&t);
  fd = h2_open(t.port);
  memcpy(big, get_root, sizeof(get_root));
  frame(fd, F_HEADERS, 0x4, 1, big, sizeof(big));
  cr_expect_eq(wait_error(fd, &type), 6 /* FRAME_SIZE_ERROR */);
  cr_expect_eq(type, F_GOAWAY);
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, flow_control_violation_is_refused) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  static uint8_t chunk[16384];
  static rframe_t f;
  int fd, type = 0, i;
  long err;

  msvc_http_server_opts_init(&o);
  o.h2_window = 1024;
  tsrv_start(&t, &o, routes);
  fd = h2_open(t.port);
  /* Acknowledge the server's SETTINGS: its small window applies from now. */
  for (i = 0; i < 10 && read_frame(fd, &f); i++)
    if (f.type == F_SETTINGS && !(f.flags & 1))
      break;
  frame(fd, F_SETTINGS, 0x1, 0, NULL, 0);
  frame(fd, F_HEADERS, 0x4, 1, post_echo, sizeof(post_echo));
  frame(fd, F_DATA, 0, 1, chunk, sizeof(chunk));
  err = wait_error(fd, &type);
  cr_expect_eq(err, 3 /* FLOW_CONTROL_ERROR */, "error %ld type %d", err, type);
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, streams_beyond_the_limit_are_refused) {
  tsrv_t t;
  int fd, type = 0;
  uint32_t i;
  long err;

  start(&t);
  fd = h2_open(t.port);
  /* Request heads without END_STREAM: each stream stays open. */
  for (i = 0; i < 101; i++)
    frame(fd, F_HEADERS, 0x4, 2 * i + 1, post_echo, sizeof(post_echo));
  err = wait_error(fd, &type);
  cr_expect(err == 7 /* REFUSED_STREAM */ || err == 1 /* PROTOCOL_ERROR */,
            "error %ld type %d", err, type);
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, rapid_reset_flood_ends_the_connection) {
  tsrv_t t;
  int fd, type = 0;
  uint32_t i;
  long err;
  static const uint8_t cancel[4] = {0, 0, 0, 8};
  static const uint8_t get_count[] = {0x82, 0x86, 0x44, 0x06, '/', 'c', 'o', 'u', 'n', 't',
                                      0x41, 0x01, 'x'};
  uint8_t *flood;
  size_t len = 0;

  /* Each request and its cancel leave in one write, the whole flood at
   * once, as an attacker sends it: the server reads them together and the
   * cancel finds the request unanswered. Written frame by frame, a server
   * that keeps pace answers each request before its cancel arrives, and a
   * cancel of an answered request is no attack. */
  flood = malloc(5000 * (2 * 9 + sizeof(get_count) + 4));
  cr_assert_not_null(flood);
  for (i = 0; i < 5000; i++) {
    len += frame_at(flood + len, F_HEADERS, 0x5, 2 * i + 1, get_count, sizeof(get_count));
    len += frame_at(flood + len, F_RST, 0, 2 * i + 1, cancel, 4);
  }
  start(&t);
  fd = h2_open(t.port);
  tc_send(fd, (const char *)flood, len);
  free(flood);
  do
    err = wait_error(fd, &type);
  while (err >= 0 && type != F_GOAWAY);
  cr_expect_eq(err, 11 /* ENHANCE_YOUR_CALM */, "error %ld type %d", err, type);
  /* Bounded work: far fewer handler runs than requests sent. */
  cr_expect_lt(atomic_load(&n_count), 1000, "%d handlers ran", atomic_load(&n_count));
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, hpack_bomb_is_stopped) {
  tsrv_t t;
  static uint8_t block[16000];
  size_t n = 0, i;
  int fd, type = 0, k;
  static rframe_t f;
  bool answered = false;
  long err = -2;

  start(&t);
  fd = h2_open(t.port);
  memcpy(block, get_root, sizeof(get_root));
  n = sizeof(get_root);
  /* A 4000-byte value added to the dynamic table (literal with
   * incremental indexing, new name "x-b")... */
  block[n++] = 0x40;
  block[n++] = 3;
  memcpy(block + n, "x-b", 3);
  n += 3;
  block[n++] = 0x7f; /* length 4000 = 127 + 3873 */
  block[n++] = (uint8_t)(0x80 | ((4000 - 127) & 0x7f));
  block[n++] = (uint8_t)((4000 - 127) >> 7);
  memset(block + n, 'b', 4000);
  n += 4000;
  /* ...then referenced with one byte each (index 62) thousands of times. */
  for (i = n; i < sizeof(block); i++)
    block[i] = 0xbe;
  n = sizeof(block);
  frame(fd, F_HEADERS, 0x5, 1, block, n);
  for (k = 0; k < 1000; k++) {
    if (!read_frame(fd, &f))
      break;
    if (f.type == F_HEADERS && f.sid == 1 && f.len > 0) {
      /* ":status: 431" is not in the static table: a literal; look for it. */
      answered = memmem(f.p, f.len, "431", 3) != NULL;
      break;
    }
    if (f.type == F_RST || f.type == F_GOAWAY) {
      err = f.type == F_RST ? (long)u32(f.p) : (long)u32(f.p + 4);
      type = f.type;
      break;
    }
  }
  cr_expect(answered || err >= 0, "no answer to the bomb (type %d)", type);
  close(fd);
  tsrv_stop(&t);
}

static void drain_now(tsrv_t *t) {
  msvc_http_server_drain(t->srv, 2000, NULL, NULL);
}

Test(h2_frames, drain_sends_goaway_and_closes) {
  tsrv_t t;
  static rframe_t f;
  int fd, i;
  bool got_goaway = false, got_answer = false;

  start(&t);
  fd = h2_open(t.port);
  frame(fd, F_HEADERS, 0x5, 1, get_root, sizeof(get_root));
  for (i = 0; i < 20 && !got_answer && read_frame(fd, &f); i++)
    got_answer = f.type == F_HEADERS && f.sid == 1;
  cr_expect(got_answer);
  tsrv_call(&t, drain_now);
  for (i = 0; i < 20 && read_frame(fd, &f); i++)
    if (f.type == F_GOAWAY && f.len >= 8) {
      got_goaway = true;
      cr_expect_eq(u32(f.p + 4), 0 /* NO_ERROR */);
      cr_expect_eq(u32(f.p) & 0x7fffffffu, 1, "last stream id");
    }
  cr_expect(got_goaway);
  cr_expect(!read_frame(fd, &f), "the connection should be closed");
  close(fd);
  tsrv_stop(&t);
}

Test(h2_frames, close_connection_sends_goaway_after_the_stream) {
  tsrv_t t;
  static rframe_t f;
  static const uint8_t get_close[] = {0x82, 0x86, 0x04, 0x06, '/', 'c', 'l', 'o', 's', 'e',
                                      0x41, 0x01, 'x'};
  int fd, i;
  bool got_answer = false, got_end = false, got_goaway = false;

  start(&t);
  fd = h2_open(t.port);
  frame(fd, F_HEADERS, 0x5, 1, get_close, sizeof(get_close));
  for (i = 0; i < 20 && !got_goaway && read_frame(fd, &f); i++) {
    got_answer |= f.type == F_HEADERS && f.sid == 1;
    got_end |= f.sid == 1 && (f.flags & 0x1) != 0;
    if (f.type == F_GOAWAY && f.len >= 8) {
      got_goaway = true;
      cr_expect(got_end, "GOAWAY before the stream ended");
      cr_expect_eq(u32(f.p + 4), 0 /* NO_ERROR */);
      cr_expect_eq(u32(f.p) & 0x7fffffffu, 1, "last stream id");
    }
  }
  cr_expect(got_answer);
  cr_expect(got_goaway);
  cr_expect(!read_frame(fd, &f), "the connection should be closed");
  close(fd);
  tsrv_stop(&t);
}

/* Cancelling streams whose answers have begun is what clients do all the
 * time (a user leaves, a deadline passes): it does not spend the
 * rapid-reset budget, however many there are. */
Test(h2_frames, cancelling_answered_streams_is_not_a_flood) {
  tsrv_t t;
  static rframe_t f;
  static const uint8_t cancel[4] = {0, 0, 0, 8};
  static const uint8_t get_big[] = {0x82, 0x86, 0x04, 0x0d, '/', 'b', 'i', 'g', '?', 'n', '=',
                                    '1', '0', '0', '0', '0', '0', 0x41, 0x01, 'x'};
  static const uint8_t ping[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint32_t i, sid;
  int k;
  bool pong = false;

  struct timeval tv = {5, 0};
  int fd;

  start(&t);
  fd = h2_open(t.port);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (i = 0; i < 600; i++) {
    bool head = false;

    sid = 2 * i + 1;
    frame(fd, F_HEADERS, 0x5, sid, get_big, sizeof(get_big));
    for (k = 0; k < 100 && !head; k++) {
      cr_assert(read_frame(fd, &f), "connection ended at stream %u", sid);
      cr_assert_neq(f.type, F_GOAWAY, "GOAWAY at stream %u (error %u)", sid, u32(f.p + 4));
      head = f.type == F_HEADERS && f.sid == sid;
    }
    cr_assert(head, "no answer on stream %u", sid);
    frame(fd, F_RST, 0, sid, cancel, 4);
  }
  frame(fd, F_PING, 0, 0, ping, 8);
  for (k = 0; k < 10000 && !pong && read_frame(fd, &f); k++) {
    cr_assert_neq(f.type, F_GOAWAY, "GOAWAY (error %u)", u32(f.p + 4));
    pong = f.type == F_PING && (f.flags & 0x1) != 0;
  }
  cr_expect(pong, "the connection did not answer a PING");
  close(fd);
  tsrv_stop(&t);
}

/* A cleartext HTTP/2 client over max_connections cannot read an HTTP/1.1
 * 503: it gets SETTINGS and GOAWAY naming no stream. */
Test(h2_frames, h2c_client_over_the_connection_limit_gets_goaway) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  int a, b, type = 0;
  long err;

  msvc_http_server_opts_init(&o);
  o.max_connections = 1;
  tsrv_start(&t, &o, routes);
  /* The first connection has a request open (not idle: it stays). */
  a = h2_open(t.port);
  frame(a, F_HEADERS, 0x4, 1, post_echo, sizeof(post_echo));
  sleep_ms(50);
  b = h2_open(t.port);
  err = wait_error(b, &type);
  cr_expect_eq(type, F_GOAWAY);
  cr_expect_eq(err, 0 /* NO_ERROR */);
  close(b);
  close(a);
  tsrv_stop(&t);
}

Test(h2_frames, silent_unfinished_requests_time_out) {
  tsrv_t t;
  msvc_http_server_opts_t o;
  int fd, type = 0;
  long err;

  msvc_http_server_opts_init(&o);
  o.body_timeout_ms = 300;
  tsrv_start(&t, &o, routes);
  fd = h2_open(t.port);
  /* A request head whose body never comes. */
  frame(fd, F_HEADERS, 0x4, 1, post_echo, sizeof(post_echo));
  err = wait_error(fd, &type);
  cr_expect_eq(type, F_GOAWAY);
  cr_expect_eq(err, 0 /* NO_ERROR */);
  close(fd);
  tsrv_stop(&t);
}

/* ---- the library's client ------------------------------------------------- */

typedef struct cstate_s {
  int done;
  int ok;
  int last_status;
  char trailer[64];
  size_t body_len;
  int version;
} cstate_t;

static void on_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                    void *data) {
  cstate_t *s = data;
  const char *tr;

  (void)call;
  s->done++;
  if (err != MSVC_OK)
    return;
  s->ok++;
  s->last_status = msvc_http_response_status(res);
  s->version = msvc_http_response_version(res);
  msvc_http_response_body(res, &s->body_len);
  tr = msvc_http_response_trailer(res, "grpc-status");
  if (tr != NULL)
    snprintf(s->trailer, sizeof(s->trailer), "%s", tr);
}

static void client_closed(void *data) {
  *(int *)data = 1;
}

static void run_until(uv_loop_t *loop, int *counter, int want) {
  int i;

  for (i = 0; i < 5000 && *counter < want; i++)
    uv_run(loop, UV_RUN_ONCE);
}

TestSuite(h2_client, .timeout = 60);

Test(h2_client, unary_calls_share_one_connection_and_see_trailers) {
  tsrv_t t;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_request_t r;
  cstate_t s;
  char url[128];
  int closed = 0, i;

  start(&t);
  memset(&s, 0, sizeof(s));
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/trailers", t.port);
  r.url = url;
  r.http2 = true;
  r.on_done = on_done;
  r.data = &s;
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &s.done, 1);
  cr_expect_eq(s.ok, 1);
  cr_expect_eq(s.last_status, 200);
  cr_expect_eq(s.version, 20);
  cr_expect_str_eq(s.trailer, "0");
  cr_expect_eq(s.body_len, 6);
  /* Fifty at once: one connection, many streams. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/count", t.port);
  for (i = 0; i < 50; i++)
    cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &s.done, 51);
  cr_expect_eq(s.ok, 51);
  cr_expect_eq(msvc_http_server_connections(t.srv), 1);
  msvc_http_client_close(c, client_closed, &closed);
  run_until(&loop, &closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  tsrv_stop(&t);
}

Test(h2_client, post_body_and_large_reply) {
  tsrv_t t;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_request_t r;
  cstate_t s;
  char url[128];
  int closed = 0;
  size_t n = 3u << 20;
  char *body = malloc(n);

  start(&t);
  memset(body, 'z', n);
  memset(&s, 0, sizeof(s));
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", t.port);
  r.url = url;
  r.method = "POST";
  r.body = body;
  r.body_len = n;
  r.http2 = true;
  r.on_done = on_done;
  r.data = &s;
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &s.done, 1);
  cr_expect_eq(s.ok, 1);
  cr_expect_eq(s.last_status, 200);
  cr_expect_eq(s.body_len, n);
  msvc_http_client_close(c, client_closed, &closed);
  run_until(&loop, &closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  free(body);
  tsrv_stop(&t);
}

Test(h2_client, cancel_resets_the_stream_and_the_handler_hears_it) {
  tsrv_t t;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_request_t r;
  msvc_http_call_t *call;
  cstate_t s;
  char url[128];
  int closed = 0, i;

  start(&t);
  memset(&s, 0, sizeof(s));
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", t.port);
  r.url = url;
  r.http2 = true;
  r.on_done = on_done;
  r.data = &s;
  cr_assert_eq(msvc_http_client_request(c, &r, &call), MSVC_OK);
  for (i = 0; i < 50; i++)
    uv_run(&loop, UV_RUN_NOWAIT), sleep_ms(2);
  msvc_http_call_cancel(call);
  run_until(&loop, &s.done, 1);
  cr_expect_eq(s.ok, 0);
  for (i = 0; i < 200 && atomic_load(&n_cancel) == 0; i++)
    uv_run(&loop, UV_RUN_NOWAIT), sleep_ms(5);
  cr_expect_eq(atomic_load(&n_cancel), 1);
  msvc_http_client_close(c, client_closed, &closed);
  run_until(&loop, &closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  tsrv_stop(&t);
}

Test(h2_client, a_second_connection_opens_at_the_stream_limit) {
  tsrv_t t;
  msvc_http_server_opts_t so;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_client_opts_t co;
  msvc_http_request_t r;
  cstate_t s;
  char url[128];
  int closed = 0, i;

  msvc_http_server_opts_init(&so);
  so.h2_max_streams = 2;
  tsrv_start(&t, &so, routes);
  memset(&s, 0, sizeof(s));
  cr_assert_eq(uv_loop_init(&loop), 0);
  msvc_http_client_opts_init(&co);
  co.http2 = true;
  co.h2_conns_per_endpoint = 2;
  cr_assert_eq(msvc_http_client_new(&loop, &co, &c), MSVC_OK);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/count", t.port);
  r.url = url;
  r.on_done = on_done;
  r.data = &s;
  /* The first call learns the server's limit... */
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &s.done, 1);
  /* ...then twenty at once need a second connection, and no more. */
  for (i = 0; i < 20; i++)
    cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  cr_expect_eq(msvc_http_client_connections(c, "127.0.0.1", t.port), 2);
  run_until(&loop, &s.done, 21);
  cr_expect_eq(s.ok, 21);
  cr_expect_eq(s.version, 20);
  msvc_http_client_close(c, client_closed, &closed);
  run_until(&loop, &closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  tsrv_stop(&t);
}

/* A streamed request body: pieces go out as DATA frames as the server's
 * window opens (more than the initial 64 KiB window, so it must open). */
typedef struct source_s {
  char piece[40000];
  int sent, pieces, fail_at;
} source_t;

static int stream_source(msvc_http_call_t *call, const char **buf, size_t *len, void *data) {
  source_t *src = *(source_t **)data;

  (void)call;
  if (src->sent == src->fail_at)
    return MSVC_EIO;
  if (src->sent == src->pieces) {
    *len = 0;
    return 0;
  }
  src->sent++;
  *buf = src->piece;
  *len = sizeof(src->piece);
  return 0;
}

typedef struct sstate_s {
  source_t *src; /* first: the source finds itself through data */
  cstate_t s;
  int err;
} sstate_t;

static void on_stream_done(msvc_http_call_t *call, int err, const msvc_http_response_t *res,
                           void *data) {
  sstate_t *st = data;

  st->err = err;
  on_done(call, err, res, &st->s);
}

Test(h2_client, streamed_body_source) {
  tsrv_t t;
  uv_loop_t loop;
  msvc_http_client_t *c;
  msvc_http_request_t r;
  static source_t src;
  sstate_t st;
  char url[128];
  int closed = 0;

  start(&t);
  memset(&src, 'q', sizeof(src));
  src.sent = 0;
  src.pieces = 50;
  src.fail_at = -1;
  memset(&st, 0, sizeof(st));
  st.src = &src;
  cr_assert_eq(uv_loop_init(&loop), 0);
  cr_assert_eq(msvc_http_client_new(&loop, NULL, &c), MSVC_OK);
  msvc_http_request_init(&r);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", t.port);
  r.url = url;
  r.method = "POST";
  r.body_source = stream_source;
  r.http2 = true;
  r.on_done = on_stream_done;
  r.data = &st;
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &st.s.done, 1);
  cr_expect_eq(st.err, MSVC_OK, "%s", msvc_strerror(st.err));
  cr_expect_eq(st.s.last_status, 200);
  cr_expect_eq(st.s.version, 20);
  cr_expect_eq(st.s.body_len, 50 * sizeof(src.piece));
  /* A source that fails resets the stream and ends the call with its error;
   * the connection goes on serving. */
  src.sent = 0;
  src.fail_at = 3;
  memset(&st.s, 0, sizeof(st.s));
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &st.s.done, 1);
  cr_expect_eq(st.err, MSVC_EIO, "%s", msvc_strerror(st.err));
  src.sent = 0;
  src.pieces = 2;
  src.fail_at = -1;
  memset(&st.s, 0, sizeof(st.s));
  cr_assert_eq(msvc_http_client_request(c, &r, NULL), MSVC_OK);
  run_until(&loop, &st.s.done, 1);
  cr_expect_eq(st.err, MSVC_OK, "%s", msvc_strerror(st.err));
  cr_expect_eq(st.s.body_len, 2 * sizeof(src.piece));
  cr_expect_eq(msvc_http_client_connections(c, "127.0.0.1", t.port), 1);
  msvc_http_client_close(c, client_closed, &closed);
  run_until(&loop, &closed, 1);
  cr_expect_eq(uv_loop_close(&loop), 0, "a handle leaked");
  tsrv_stop(&t);
}
