/* The parser glue alone: framing, header storage, limits and hardening,
 * each input fed in one piece and again one byte at a time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/wire.h"

typedef struct sink_s {
  int heads;
  int done;
  char body[256];
  size_t body_len;
  msvc__http_head_t *last;
} sink_t;

static int s_head(void *ud, msvc__http_head_t *h) {
  sink_t *s = ud;
  msvc__http_head_free(s->last);
  s->last = h;
  s->heads++;
  return 0;
}

static int s_body(void *ud, const char *d, size_t n) {
  sink_t *s = ud;
  if (s->body_len + n < sizeof(s->body)) {
    memcpy(s->body + s->body_len, d, n);
    s->body_len += n;
  }
  return 0;
}

static int s_done(void *ud) {
  ((sink_t *)ud)->done++;
  return 0;
}

static const msvc__http_parser_cbs_t cbs = {s_head, s_body, s_done};

/* Whether run() checks Host headers as the server does. */
static bool host_rule;

/* Feeds everything; returns 0 or the HTTP status of the error. */
static int run(const char *in, size_t len, size_t step, sink_t *s,
               const msvc__http_limits_t *lim) {
  msvc__http_parser_t p;
  size_t pos = 0;
  int st = 0;

  memset(s, 0, sizeof(*s));
  msvc__http_parser_init(&p, HTTP_REQUEST, lim, &cbs, s);
  p.host_rule = host_rule;
  while (pos < len) {
    size_t n = len - pos < step ? len - pos : step, used;
    const char *at = in + pos;
    int rc;
    do {
      rc = msvc__http_parser_feed(&p, at, n, &used);
      at += used;
      n -= used;
      pos += used;
    } while (rc == MSVC__HTTP_MESSAGE_DONE && n > 0);
    if (rc < 0) {
      st = p.err_status;
      break;
    }
  }
  msvc__http_parser_free(&p);
  return st;
}

static int run_both_n(const char *in, size_t len, sink_t *s) {
  int whole = run(in, len, len + 1, s, NULL);
  sink_t s1;
  int bytewise = run(in, len, 1, &s1, NULL);

  cr_assert_eq(whole, bytewise, "whole %d vs byte-by-byte %d for %s", whole, bytewise, in);
  cr_assert_eq(s->done, s1.done);
  msvc__http_head_free(s1.last);
  return whole;
}

static int run_both(const char *in, sink_t *s) {
  return run_both_n(in, strlen(in), s);
}

static void done(sink_t *s) {
  msvc__http_head_free(s->last);
  s->last = NULL;
}

Test(http_wire, parses_heads_and_copies_spans) {
  sink_t s;
  const char *in = "POST /a?b=c HTTP/1.1\r\nHost: example\r\nX-Long-Header-Name: "
                   "some value  \r\nContent-Length: 3\r\n\r\nxyz";

  cr_assert_eq(run(in, strlen(in), 1, &s, NULL), 0);
  cr_assert_eq(s.heads, 1);
  cr_assert_eq(s.done, 1);
  cr_assert_str_eq(msvc__http_head_str(s.last, s.last->target), "/a?b=c");
  cr_assert_eq(s.last->nfields, 3);
  cr_assert_str_eq(msvc__http_head_get(s.last, "x-long-header-name"), "some value");
  cr_assert_str_eq(msvc__http_head_get(s.last, "HOST"), "example");
  cr_assert_eq(s.last->content_length, 3);
  cr_assert_eq(s.body_len, 3);
  cr_assert_eq(memcmp(s.body, "xyz", 3), 0);
  done(&s);
}

Test(http_wire, empty_header_value_and_leading_blank_lines) {
  sink_t s;

  cr_assert_eq(run_both("\r\n\r\nGET / HTTP/1.1\r\nX-Empty:\r\nX-B: b\r\n\r\n", &s), 0);
  cr_assert_str_eq(msvc__http_head_get(s.last, "x-empty"), "");
  cr_assert_str_eq(msvc__http_head_get(s.last, "x-b"), "b");
  done(&s);
}

Test(http_wire, pipelined_messages_are_split) {
  sink_t s;

  cr_assert_eq(run_both("GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 1\r\n\r\n"
                        "aGET /3 HTTP/1.1\r\n\r\n",
                        &s),
               0);
  cr_assert_eq(s.done, 3);
  cr_assert_str_eq(msvc__http_head_str(s.last, s.last->target), "/3");
  done(&s);
}

/* Published request-smuggling shapes (RFC 9112 section 6.3, the PortSwigger
 * CL.TE / TE.CL / TE.TE catalogue, and the llhttp CVEs fixed after 8.1.0).
 * Every one must be refused with 400 before any body is taken. */
typedef struct vec_s {
  const char *s;
  size_t len;
} vec_t;
#define V(lit) {lit, sizeof(lit) - 1}

static const vec_t smuggling[] = {
    /* CL.TE and TE.CL */
    V("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
    V("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
    /* differing repeated Content-Length */
    V("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    V("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!"),
    /* CVE-2024-27982: a space before a header name (obsolete line folding) */
    V("POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 5\r\n\r\nhello"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n"),
    V("GET / HTTP/1.1\r\nX-A: b\r\n\tX-Folded: c\r\n\r\n"),
    /* CVE-2023-30589: a header line ended by a bare CR */
    V("GET / HTTP/1.1\r\nX-A: b\rContent-Length: 5\r\n\r\nhello"),
    V("GET / HTTP/1.1\rHost: a\r\n\r\n"),
    V("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"),
    /* bare LF line endings */
    V("GET / HTTP/1.1\nHost: a\r\n\r\n"),
    V("GET / HTTP/1.1\r\nHost: a\n\r\n"),
    /* TE.TE obfuscation */
    V("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello"),
    /* odd Content-Length values */
    V("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello"),
    V("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello"),
    V("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
    V("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
    /* chunk extensions and malformed chunk sizes */
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    /* bare LF / bare CR around chunk framing (llhttp 8.1.0 takes the last two) */
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n"),
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\rGET / HTTP/1.1\r\n\r\n"),
    /* Transfer-Encoding in HTTP/1.0 */
    V("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    /* trailers carrying framing headers */
    V("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\nhello"),
    /* NUL and control bytes */
    V("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"),
    V("GET /\0 HTTP/1.1\r\n\r\n"),
    /* HTTP/0.9 */
    V("GET /\r\n\r\n"),
};

Test(http_wire, smuggling_vectors_are_refused) {
  size_t i;

  for (i = 0; i < sizeof(smuggling) / sizeof(smuggling[0]); i++) {
    sink_t s;
    int st = run_both_n(smuggling[i].s, smuggling[i].len, &s);
    cr_assert_eq(st, 400, "vector %zu accepted (%d): %s", i, st, smuggling[i].s);
    cr_assert_eq(s.done, 0, "vector %zu completed a message", i);
    done(&s);
  }
}

Test(http_wire, limits_map_to_statuses) {
  msvc__http_limits_t lim = {64, 2, 4};
  sink_t s;
  const char *big = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n";
  const char *many = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  const char *body = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  const char *chunk = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

  cr_assert_eq(run(big, strlen(big), 1000, &s, &lim), 431);
  done(&s);
  cr_assert_eq(run(many, strlen(many), 1, &s, &lim), 431);
  done(&s);
  cr_assert_eq(run(body, strlen(body), 1000, &s, &lim), 413);
  done(&s);
  cr_assert_eq(run(chunk, strlen(chunk), 1, &s, &lim), 413);
  done(&s);
}

Test(http_wire, reason_and_date) {
  char d[32];

  cr_assert_str_eq(msvc__http_reason(404), "Not Found");
  cr_assert_str_eq(msvc__http_reason(799), "Unknown");
  msvc__http_date(784111777, d);
  cr_assert_str_eq(d, "Sun, 06 Nov 1994 08:49:37 GMT");
}

/* The pre-scan passes over the inside of a line eight bytes at a time: a
 * bare CR or LF is refused wherever it falls in a long line, and a clean
 * head is accepted however it is split. */
Test(http_wire, bare_cr_or_lf_refused_at_every_offset) {
  const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Id: ";
  char in[256];
  size_t off, k, n;

  for (k = 0; k < 2; k++) {
    for (off = 0; off < 40; off++) {
      sink_t s;

      n = (size_t)snprintf(in, sizeof(in), "%s", pre);
      memset(in + n, 'a', 40);
      in[n + off] = k == 0 ? '\r' : '\n';
      n += 40;
      n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n\r\n");
      cr_assert_eq(run_both_n(in, n, &s), 400, "%s at %zu accepted", k == 0 ? "CR" : "LF", off);
      cr_assert_eq(s.done, 0);
      done(&s);
    }
  }
  for (off = 0; off < 40; off++) {
    sink_t s;

    n = (size_t)snprintf(in, sizeof(in), "%s%.*s\r\n\r\n", pre, (int)off,
                         "0123456789abcdef0123456789abcdef01234567");
    cr_assert_eq(run_both_n(in, n, &s), 0);
    cr_assert_eq(s.done, 1);
    cr_assert_eq(strlen(msvc__http_head_get(s.last, "x-id")), off);
    done(&s);
  }
}

Test(http_wire, host_characters) {
  sink_t s;

  host_rule = true;
  cr_assert_eq(run_both("GET / HTTP/1.1\r\nHost: a-Z.0_9~!$&'()*+,;=:[::1]%20\r\n\r\n", &s), 0);
  done(&s);
  cr_assert_eq(run_both("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", &s), 400);
  done(&s);
  cr_assert_eq(run_both("GET / HTTP/1.1\r\nHost: a\x80\r\n\r\n", &s), 400);
  done(&s);
  cr_assert_eq(run_both("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", &s), 400);
  done(&s);
}

/* A parsed head says whether it has a grpc-status field, so that an answer
 * without one is not searched for it. */
Test(http_wire, notes_a_grpc_status_field) {
  sink_t s;

  cr_assert_eq(run_both("GET / HTTP/1.1\r\nX-Status-1: a\r\nGrpc-Status: 14\r\n\r\n", &s), 0);
  cr_assert(s.last->fields_scanned);
  cr_assert(s.last->grpc_status);
  cr_assert_str_eq(msvc__http_head_get(s.last, "grpc-status"), "14");
  done(&s);
  cr_assert_eq(run_both("GET / HTTP/1.1\r\nX-Status-1: a\r\ngrpc-statuz: 1\r\n\r\n", &s), 0);
  cr_assert(s.last->fields_scanned);
  cr_assert_not(s.last->grpc_status);
  done(&s);
}
