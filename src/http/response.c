/* Response writing: heads, bodies, chunked streams, JSON and error bodies. */
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "http/grpc_error.h"
#include "http/h2.h"
#include "http/server.h"

static msvc_http_req_t *REQ(msvc_http_res_t *res) {
  return msvc__container_of(res, msvc_http_req_t, res);
}

const char *msvc__server_date(msvc_http_server_t *srv) {
  int64_t now = (int64_t)time(NULL);

  if (now != srv->date_secs) {
    srv->date_secs = now;
    msvc__http_date(now, srv->date);
  }
  return srv->date;
}

/* Output goes straight to the connection when no earlier response is still
 * pending, else it waits in the request's own buffer. */
static msvc__buf_t *out_buf(msvc_http_req_t *req) {
  msvc__conn_t *c = req->conn;

  if (c->pipeline.next == &req->node)
    return &c->wbuf[c->wi];
  return &req->out;
}

static bool want_close(const msvc_http_req_t *req) {
  const msvc__conn_t *c = req->conn;

  if (req->head == NULL || !req->head->keep_alive || req->close_asked ||
      c->close_after)
    return true;
  /* While draining, the last queued response of a connection closes it. */
  return req->srv->draining && req->node.next == &c->pipeline;
}

#define PUT(b, lit) msvc__buf_append((b), (lit), sizeof(lit) - 1)

static void put_u64(msvc__buf_t *b, uint64_t v, int base) {
  static const char digits[] = "0123456789abcdef";
  char tmp[24];
  int i = (int)sizeof(tmp);

  do {
    tmp[--i] = digits[v % (unsigned)base];
    v /= (unsigned)base;
  } while (v != 0);
  msvc__buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

static bool bodyless(int status) {
  return status == 204 || status == 304;
}

/* Copies n bytes to w and returns the end: a head is written piece by
 * piece after one reservation that covers all of them. */
static inline char *put_at(char *w, const char *s, size_t n) {
  memcpy(w, s, n);
  return w + n;
}
#define PUT_AT(w, lit) put_at((w), (lit), sizeof(lit) - 1)

static char *put_dec_at(char *w, uint64_t v) {
  char tmp[20];
  size_t i = sizeof(tmp);

  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return put_at(w, tmp + i, sizeof(tmp) - i);
}

/* The longest head apart from the reason, the content type and the
 * application's fields: the status line's fixed part, Date, the
 * Content-Type name, a 20-digit Content-Length (longer than
 * Transfer-Encoding: chunked) and Connection: keep-alive. */
#define HEAD_FIXED_MAX                                                          \
  (sizeof("HTTP/1.1 999 \r\nDate: \r\n") - 1 + 29 + sizeof("Content-Type: \r\n") - 1 + \
   sizeof("Content-Length: 18446744073709551615\r\n") - 1 +                     \
   sizeof("Connection: keep-alive\r\n\r\n") - 1)

static void write_head(msvc_http_req_t *req, int status, const char *ctype,
                       size_t body_len, bool stream) {
  msvc__buf_t *b = out_buf(req);
  bool http10 = req->head != NULL && req->head->http_minor == 0;
  const char *reason = msvc__http_reason(status);
  size_t rlen = strlen(reason), clen = ctype != NULL ? strlen(ctype) : 0;
  char *w;

  req->close = want_close(req) || (stream && http10);
  req->res.status = status;
  /* On failure the buffer keeps its error, which fails the connection's
   * write: nothing is written here. */
  if (msvc__buf_reserve(b, HEAD_FIXED_MAX + rlen + clen + req->hdrs.len) != MSVC_OK)
    return;
  w = b->data + b->len;
  w = PUT_AT(w, "HTTP/1.1 ");
  w[0] = (char)('0' + status / 100); /* check_new(): 200..999 */
  w[1] = (char)('0' + status / 10 % 10);
  w[2] = (char)('0' + status % 10);
  w[3] = ' ';
  w = put_at(w + 4, reason, rlen);
  w = PUT_AT(w, "\r\nDate: ");
  w = put_at(w, msvc__server_date(req->srv), 29);
  w = PUT_AT(w, "\r\n");
  if (ctype != NULL) {
    w = PUT_AT(w, "Content-Type: ");
    w = put_at(w, ctype, clen);
    w = PUT_AT(w, "\r\n");
  }
  if (req->hdrs.len > 0)
    w = put_at(w, req->hdrs.data, req->hdrs.len);
  if (stream) {
    req->chunked_out = !http10;
    if (req->chunked_out)
      w = PUT_AT(w, "Transfer-Encoding: chunked\r\n");
  } else if (!bodyless(status)) {
    w = PUT_AT(w, "Content-Length: ");
    w = put_dec_at(w, body_len);
    w = PUT_AT(w, "\r\n");
  }
  if (req->close)
    w = PUT_AT(w, "Connection: close\r\n\r\n");
  else if (http10)
    w = PUT_AT(w, "Connection: keep-alive\r\n\r\n");
  else
    w = PUT_AT(w, "\r\n");
  b->len = (size_t)(w - b->data);
  *w = '\0';
}

/* The response is complete: observers run, then the connection sends it. */
static int finish(msvc_http_req_t *req) {
  msvc__conn_t *c = req->conn;

  msvc__req_run_after(req);
  req->state = RES_DONE;
  if (c == NULL) {
    if (!req->running)
      msvc__req_destroy(req);
    return MSVC_ECLOSED;
  }
  if (req->running)
    return MSVC_OK; /* released when the handler returns */
  /* May release req: not touched after this. */
  if (c->in_read)
    msvc__conn_collect(c);
  else
    msvc__conn_flush(c);
  return MSVC_OK;
}

static int check_new(msvc_http_req_t *req, int status) {
  if (req->state != RES_NEW)
    return MSVC_EHTTP_RESPONDED;
  if (status < 200 || status > 999)
    return MSVC_EINVAL;
  return MSVC_OK;
}

int msvc_http_res_send(msvc_http_res_t *res, int status, const char *content_type,
                       const void *body, size_t len) {
  msvc_http_req_t *req;
  int rc;

  if (res == NULL)
    return MSVC_EINVAL;
  req = REQ(res);
  /* A HEAD answer may state a length without having the body at hand. */
  if (body == NULL && len > 0 && !req->is_head)
    return MSVC_EINVAL;
  if ((rc = check_new(req, status)) != MSVC_OK)
    return rc;
  if (req->conn == NULL) {
    req->res.status = status;
    return finish(req);
  }
#ifdef MSVC_HAVE_NGHTTP2
  if (req->h2 != NULL) {
    rc = msvc__h2_res_head(req, status, content_type, len, false);
    if (rc == MSVC_OK && !req->is_head && !bodyless(status))
      rc = msvc__h2_res_data(req, body, len);
    msvc__h2_res_end(req);
    finish(req);
    return rc;
  }
#endif
  write_head(req, status, content_type, len, false);
  if (!req->is_head && !bodyless(status))
    msvc__buf_append(out_buf(req), body, len);
  return finish(req);
}

int msvc_http_res_send_owned(msvc_http_res_t *res, int status,
                             const char *content_type, void *body, size_t len) {
  int rc = msvc_http_res_send(res, status, content_type, body, len);

  msvc__free(body);
  return rc;
}

int msvc_http_res_json(msvc_http_res_t *res, int status, const struct cJSON *json) {
  char small[512], *text;
  int rc;

  if (res == NULL || json == NULL)
    return MSVC_EINVAL;
  if (REQ(res)->state != RES_NEW)
    return MSVC_EHTTP_RESPONDED;
  /* A small document is printed on the stack, with no allocation; cJSON
   * asks for 5 bytes more than it may write. */
  if (cJSON_PrintPreallocated((cJSON *)json, small, (int)sizeof(small), 0)) {
    small[sizeof(small) - 1] = '\0';
    return msvc_http_res_send(res, status, "application/json", small, strlen(small));
  }
  text = cJSON_PrintUnformatted(json);
  if (text == NULL) {
    msvc_http_res_error(res, 500, "INTERNAL", "The response could not be built.");
    return MSVC_ENOMEM;
  }
  rc = msvc_http_res_send(res, status, "application/json", text, strlen(text));
  cJSON_free(text);
  return rc;
}

static bool has_header(const msvc_http_req_t *req, const char *name) {
  const char *p = req->hdrs.data;
  size_t n = strlen(name);

  while (p != NULL && *p != '\0') {
    if (msvc__strncasecmp(p, name, n) == 0 && p[n] == ':')
      return true;
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return false;
}

/* A quoted-string for WWW-Authenticate: quotes, backslashes and controls
 * are dropped rather than escaped, which is enough for a description. */
static void add_www_authenticate(msvc_http_req_t *req, const char *message) {
  msvc__buf_t v;
  const char *p;

  msvc__buf_init(&v, 1024);
  msvc__buf_puts(&v, "Bearer error=\"invalid_token\", error_description=\"");
  for (p = message; *p != '\0' && v.len < 900; p++)
    if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f)
      msvc__buf_putc(&v, *p);
  msvc__buf_putc(&v, '"');
  if (v.err == MSVC_OK)
    msvc_http_res_header(&req->res, "WWW-Authenticate", v.data);
  msvc__buf_free(&v);
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  size_t len, i;
  uint32_t cp;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2, cp = s[0] & 0x1Fu;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3, cp = s[0] & 0x0Fu;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4, cp = s[0] & 0x07u;
  else
    return 0;
  if (n < len)
    return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* A JSON string's contents that is valid UTF-8 whatever the input: messages
 * often quote a path or a parameter, which may hold any byte once
 * percent-decoded. Controls are escaped, each byte of a malformed sequence
 * becomes U+FFFD. */
static void put_json_text(msvc__buf_t *b, const char *text) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n = strlen(text), i = 0;

  while (i < n) {
    size_t k = utf8_seq(s + i, n - i);
    if (k == 0) {
      msvc__buf_puts(b, "\\ufffd");
      i++;
    } else if (k == 1) {
      msvc__buf_json_escape(b, (const char *)s + i, 1);
      i++;
    } else {
      msvc__buf_append(b, s + i, k);
      i += k;
    }
  }
}

int msvc_http_res_error(msvc_http_res_t *res, int status, const char *code,
                        const char *message) {
  msvc_http_req_t *req;
  msvc__buf_t body;
  int rc;

  if (res == NULL || code == NULL || message == NULL || status < 400 || status > 599)
    return MSVC_EINVAL;
  req = REQ(res);
  if (req->state != RES_NEW)
    return MSVC_EHTTP_RESPONDED;
  if (msvc__req_is_grpc(req))
    return msvc__res_grpc_error(res, status, code, message);
  if (status == 401 && !has_header(req, "WWW-Authenticate"))
    add_www_authenticate(req, message);
  if (strcmp(code, "SHUTTING_DOWN") == 0)
    req->close_asked = true;
  else if (status == 503 && !has_header(req, "Retry-After"))
    msvc_http_res_header(res, "Retry-After", "1");
  msvc__buf_init(&body, 0);
  msvc__buf_puts(&body, "{\"error\":{\"code\":\"");
  put_json_text(&body, code);
  msvc__buf_puts(&body, "\",\"message\":\"");
  put_json_text(&body, message);
  msvc__buf_puts(&body, "\"}}");
  if (body.err != MSVC_OK) {
    msvc__buf_free(&body);
    msvc_http_res_send(res, status, NULL, NULL, 0);
    return MSVC_ENOMEM;
  }
  rc = msvc_http_res_send(res, status, "application/json", body.data, body.len);
  msvc__buf_free(&body);
  return rc;
}

int msvc__res_error_close(msvc_http_req_t *req, int status, const char *code,
                          const char *message) {
  req->close_asked = true;
  return msvc_http_res_error(&req->res, status, code, message);
}

/* Content-Length, Transfer-Encoding, Connection and Date are the server's
 * own; compared only when the length matches one of them. */
static bool reserved_header(const char *name, size_t len) {
  switch (len) {
  case 4:
    return msvc__strcasecmp(name, "Date") == 0;
  case 10:
    return msvc__strcasecmp(name, "Connection") == 0;
  case 14:
    return msvc__strcasecmp(name, "Content-Length") == 0;
  case 17:
    return msvc__strcasecmp(name, "Transfer-Encoding") == 0;
  default:
    return false;
  }
}

/* A field the application may set: a token name that the framing does not
 * own, a value without line breaks. Gives both lengths. */
static bool field_ok(const char *name, const char *value, size_t *nlen, size_t *vlen) {
  const char *p;

  if (name == NULL || value == NULL || *name == '\0')
    return false;
  for (p = name; *p != '\0'; p++)
    if (!msvc__is_tchar((unsigned char)*p))
      return false;
  *nlen = (size_t)(p - name);
  *vlen = strcspn(value, "\r\n");
  if (value[*vlen] != '\0')
    return false;
  return !reserved_header(name, *nlen);
}

static int put_field(msvc__buf_t *b, const char *name, size_t nlen, const char *value,
                     size_t vlen) {
  /* all or nothing: a line cut by the limit would corrupt the head */
  if (msvc__buf_reserve(b, nlen + vlen + 4) == MSVC_OK) {
    char *w = b->data + b->len;

    memcpy(w, name, nlen);
    memcpy(w + nlen, ": ", 2);
    memcpy(w + nlen + 2, value, vlen);
    memcpy(w + nlen + 2 + vlen, "\r\n", 2);
    b->len += nlen + vlen + 4;
    b->data[b->len] = '\0';
  }
  return b->err == MSVC_ETOOLARGE ? MSVC_ELIMIT : b->err;
}

int msvc__res_header_trusted(msvc_http_res_t *res, const char *name, size_t nlen,
                             const char *value, size_t vlen) {
  msvc_http_req_t *req = REQ(res);

  if (req->state != RES_NEW)
    return MSVC_EHTTP_RESPONDED;
  return put_field(&req->hdrs, name, nlen, value, vlen);
}

int msvc_http_res_header(msvc_http_res_t *res, const char *name, const char *value) {
  size_t nlen, vlen;

  if (res == NULL || !field_ok(name, value, &nlen, &vlen))
    return MSVC_EINVAL;
  return msvc__res_header_trusted(res, name, nlen, value, vlen);
}

int msvc_http_res_trailer(msvc_http_res_t *res, const char *name, const char *value) {
  msvc_http_req_t *req;
  size_t nlen, vlen;

  if (res == NULL || !field_ok(name, value, &nlen, &vlen))
    return MSVC_EINVAL;
  req = REQ(res);
  if (req->state == RES_DONE)
    return MSVC_EHTTP_RESPONDED;
  return put_field(&req->trailers, name, nlen, value, vlen);
}

size_t msvc_http_res_pending(const msvc_http_res_t *res) {
#ifdef MSVC_HAVE_NGHTTP2
  const msvc_http_req_t *req;

  if (res == NULL)
    return 0;
  req = msvc__container_of(res, const msvc_http_req_t, res);
  return req->h2 != NULL ? msvc__h2_res_pending(req) : 0;
#else
  (void)res;
  return 0;
#endif
}

void msvc_http_res_close_connection(msvc_http_res_t *res) {
  if (res != NULL)
    REQ(res)->close_asked = true;
}

int msvc_http_res_start(msvc_http_res_t *res, int status, const char *content_type) {
  msvc_http_req_t *req;
  int rc;

  if (res == NULL)
    return MSVC_EINVAL;
  req = REQ(res);
  if ((rc = check_new(req, status)) != MSVC_OK)
    return rc;
  req->state = RES_STREAMING;
  req->res.status = status;
  if (req->conn == NULL)
    return MSVC_ECLOSED;
#ifdef MSVC_HAVE_NGHTTP2
  if (req->h2 != NULL) {
    rc = msvc__h2_res_head(req, status, content_type, 0, true);
    msvc__conn_flush(req->conn);
    return rc;
  }
#endif
  write_head(req, status, content_type, 0, true);
  msvc__conn_flush(req->conn);
  return MSVC_OK;
}

int msvc_http_res_write(msvc_http_res_t *res, const void *data, size_t len) {
  msvc_http_req_t *req;
  msvc__buf_t *b;

  if (res == NULL || (data == NULL && len > 0))
    return MSVC_EINVAL;
  req = REQ(res);
  if (req->state != RES_STREAMING)
    return MSVC_ESTATE;
  if (req->conn == NULL)
    return MSVC_ECLOSED;
  if (len == 0 || req->is_head)
    return MSVC_OK;
#ifdef MSVC_HAVE_NGHTTP2
  if (req->h2 != NULL) {
    int rc = msvc__h2_res_data(req, data, len);
    msvc__conn_flush(req->conn);
    return rc;
  }
#endif
  b = out_buf(req);
  if (req->chunked_out) {
    put_u64(b, len, 16);
    PUT(b, "\r\n");
  }
  msvc__buf_append(b, data, len);
  if (req->chunked_out)
    PUT(b, "\r\n");
  if (b->err != MSVC_OK)
    return b->err;
  msvc__conn_flush(req->conn);
  return MSVC_OK;
}

int msvc_http_res_end(msvc_http_res_t *res) {
  msvc_http_req_t *req;

  if (res == NULL)
    return MSVC_EINVAL;
  req = REQ(res);
  if (req->state != RES_STREAMING)
    return MSVC_ESTATE;
#ifdef MSVC_HAVE_NGHTTP2
  if (req->conn != NULL && req->h2 != NULL) {
    msvc__h2_res_end(req);
    return finish(req);
  }
#endif
  if (req->conn != NULL && req->chunked_out && !req->is_head) {
    msvc__buf_t *b = out_buf(req);
    PUT(b, "0\r\n");
    msvc__buf_append(b, req->trailers.data, req->trailers.len);
    PUT(b, "\r\n");
  }
  return finish(req);
}

int msvc_http_res_status(const msvc_http_res_t *res) {
  const msvc_http_req_t *req;

  if (res == NULL)
    return 0;
  req = msvc__container_of(res, const msvc_http_req_t, res);
  if (req->cancelled && req->state != RES_DONE)
    return 499;
  return res->status;
}

bool msvc_http_res_started(const msvc_http_res_t *res) {
  return res != NULL && msvc__container_of(res, const msvc_http_req_t, res)->state != RES_NEW;
}
