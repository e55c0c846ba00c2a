/* What the server refuses or cleans up in a request: Host header rules,
 * bytes echoed into error bodies, NUL characters in JSON. */
#include <cjson/cJSON.h>

#include "http/helpers.h"

static void h_hello(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  (void)req;
  (void)data;
  msvc_http_res_send(res, 200, "text/plain", "hi", 2);
}

/* Quotes the decoded parameter in its message, as the example services do. */
static void h_user(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  char msg[256];

  (void)data;
  snprintf(msg, sizeof(msg), "The user with ID %s was not found.",
           msvc_http_req_param(req, "id"));
  msvc_http_res_error(res, 404, "USER_NOT_FOUND", msg);
}

static void h_json(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  cJSON *doc;
  const cJSON *name;

  (void)data;
  if (msvc_http_req_json(req, &doc) != MSVC_OK)
    return; /* answered */
  name = cJSON_GetObjectItemCaseSensitive(doc, "name");
  if (cJSON_IsString(name))
    msvc_http_res_send(res, 200, "text/plain", name->valuestring, strlen(name->valuestring));
  else
    msvc_http_res_error(res, 400, "INVALID_ARGUMENT", "name is missing");
  cJSON_Delete(doc);
}

static void setup(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/hello", h_hello, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/users/:id", h_user, NULL, NULL), MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "POST", "/json", h_json, NULL, NULL), MSVC_OK);
}

static tsrv_t ts;

static void start(void) {
  tsrv_start(&ts, NULL, setup);
}

static void stop(void) {
  tsrv_stop(&ts);
}

TestSuite(http_input, .init = start, .fini = stop, .timeout = 20);

/* One request on a fresh connection: its status, and (when closed is not
 * NULL and the status is 400) whether the server closed the connection
 * after answering. */
static int exchange(const char *raw, tresp_t *r, bool *closed) {
  tconn_t *c = malloc(sizeof(*c));
  bool ok;

  tc_open(c, ts.port);
  tc_sends(c->fd, raw);
  ok = tc_read(c, r, false);
  if (closed != NULL)
    *closed = ok && r->status == 400 && tc_closed(c);
  tc_close(c);
  free(c);
  return ok ? r->status : -1;
}

Test(http_input, host_header_rules) {
  static const struct {
    const char *raw;
    int status;
    const char *why;
  } cases[] = {
      {"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", 200, "one Host"},
      {"GET /hello HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 200, "host and port"},
      {"GET /hello HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 200, "IP literal"},
      {"GET /hello HTTP/1.1\r\nHost:\r\n\r\n", 200, "empty Host (no authority)"},
      {"GET /hello HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 without Host"},
      {"GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "two Host fields"},
      {"GET /hello HTTP/1.1\r\nHost: a\r\nX: y\r\nhost: b\r\n\r\n", 400, "two, other case"},
      {"GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "space inside"},
      {"GET /hello HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "slash inside"},
      {"GET /hello HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "userinfo"},
      {"GET /hello HTTP/1.0\r\n\r\n", 200, "HTTP/1.0 may leave Host out"},
      {"GET /hello HTTP/1.0\r\nHost: a\r\n\r\n", 200, "HTTP/1.0 with Host"},
      {"GET /hello HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "HTTP/1.0, two Host fields"},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tresp_t r;
    bool closed;
    int st = exchange(cases[i].raw, &r, &closed);

    cr_expect_eq(st, cases[i].status, "%s: got %d", cases[i].why, st);
    if (st == 400) {
      cr_expect(closed, "%s: the connection stays open", cases[i].why);
      cr_expect_not_null(strstr(r.body, "\"INVALID_ARGUMENT\""), "%s: %s", cases[i].why,
                         r.body);
      cr_expect_not_null(strstr(r.body, "Host"), "%s: %s", cases[i].why, r.body);
    }
    tresp_free(&r);
  }
}

/* Independent check: RFC 3629 well-formedness. */
static bool utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;

  while (i < n) {
    unsigned c = s[i], need, cp, k;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF)
      need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      need = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      need = 3, cp = c & 0x07;
    else
      return false;
    for (k = 1; k <= need; k++) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += need + 1;
  }
  return true;
}

/* The decoded message of an error body, which must be valid JSON and
 * valid UTF-8 (the caller frees it). */
static char *error_message(const tresp_t *r) {
  cJSON *doc, *msg;
  char *out;

  cr_assert(utf8_valid((const unsigned char *)r->body, r->body_len),
            "error body is not UTF-8: %s", r->body);
  doc = cJSON_ParseWithLength(r->body, r->body_len);
  cr_assert_not_null(doc, "error body is not JSON: %s", r->body);
  msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "error"),
                                         "message");
  cr_assert(cJSON_IsString(msg));
  out = strdup(msg->valuestring);
  cJSON_Delete(doc);
  return out;
}

Test(http_input, error_bodies_are_valid_utf8_json) {
  static const struct {
    const char *id;   /* as sent, percent-encoded */
    const char *want; /* the message's ID part, decoded */
  } cases[] = {
      {"42", "42"},
      {"caf%C3%A9", "caf\xC3\xA9"},                     /* valid UTF-8 kept */
      {"%F0%9F%98%80", "\xF0\x9F\x98\x80"},             /* 4-byte sequence kept */
      {"a%FFb", "a\xEF\xBF\xBD" "b"},                   /* stray byte */
      {"%C0%80", "\xEF\xBF\xBD\xEF\xBF\xBD"},           /* overlong NUL */
      {"%ED%A0%80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"%E2%82", "\xEF\xBF\xBD\xEF\xBF\xBD"},           /* cut short */
      {"%F5%80%80%80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
      {"q%22%5C%0A%01%1F%7F", "q\"\\\n\x01\x1F\x7F"},   /* quote, backslash, controls */
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char raw[256], want[256];
    tresp_t r;
    char *msg;

    snprintf(raw, sizeof(raw), "GET /users/%s HTTP/1.1\r\nHost: t\r\n\r\n", cases[i].id);
    cr_assert_eq(exchange(raw, &r, NULL), 404, "%s", cases[i].id);
    msg = error_message(&r);
    snprintf(want, sizeof(want), "The user with ID %s was not found.", cases[i].want);
    cr_expect_str_eq(msg, want, "%s", cases[i].id);
    /* Controls travel escaped, never raw. */
    cr_expect_null(memchr(r.body, '\x01', r.body_len));
    cr_expect_null(memchr(r.body, '\n', r.body_len));
    free(msg);
    tresp_free(&r);
  }
}

static int post_json(const char *body, tresp_t *r) {
  char raw[1024];

  snprintf(raw, sizeof(raw),
           "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  return exchange(raw, r, NULL);
}

Test(http_input, json_nul_is_refused_not_cut) {
  static const char *refused[] = {
      "{\"name\":\"ab\\u0000cd\"}",
      "{\"name\":\"\\u0000\"}",
      "{\"na\\u0000me\":\"x\",\"name\":\"y\"}",
  };
  tresp_t r;
  size_t i;

  for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    char *msg;

    cr_assert_eq(post_json(refused[i], &r), 400, "%s", refused[i]);
    cr_expect_not_null(strstr(r.body, "\"INVALID_ARGUMENT\""), "%s", r.body);
    msg = error_message(&r);
    cr_expect_not_null(strstr(msg, "\\u0000"), "the message says why: %s", msg);
    free(msg);
    tresp_free(&r);
  }
  /* An escaped backslash followed by "u0000" is six ordinary characters. */
  cr_assert_eq(post_json("{\"name\":\"a\\\\u0000\"}", &r), 200);
  cr_expect_str_eq(r.body, "a\\u0000");
  tresp_free(&r);
  cr_assert_eq(post_json("{\"name\":\"ok\"} \r\n", &r), 200);
  cr_expect_str_eq(r.body, "ok");
  tresp_free(&r);
  /* Whatever follows the document is not silently dropped either. */
  cr_assert_eq(post_json("{\"name\":\"ok\"} {\"name\":\"evil\"}", &r), 400);
  tresp_free(&r);
}
