/*
 * What reaches the admin pages from outside: registry metadata and other
 * peers' strings inside the JSON a page is drawn from, the Authorization
 * header, and the listener's address. The first byte picks the part:
 *
 *   0: the rest is JSON; its HTML must hold only the renderer's own tags
 *      (every '<' of the input escaped) and its attributes must never be
 *      broken out of;
 *   1: "header\0token": the token check must agree with a plain comparison;
 *   2: an address: a parsed one must format back to the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin-internal.h"

static void fail(const char *why, const char *detail) {
  fprintf(stderr, "admin fuzz: %s: %.300s\n", why, detail != NULL ? detail : "");
  abort();
}

static const char *const TAGS[] = {"table", "tr", "td", "th", "span", "svg", "rect",
                                   "polyline", "small", "div", "section", "h2"};

/* Every tag is one the renderer writes, and every attribute value closes. */
static void check_html(const char *s) {
  const char *p = s;

  while ((p = strchr(p, '<')) != NULL) {
    const char *name = p + 1 + (p[1] == '/');
    size_t n = strcspn(name, " >/"), i;
    const char *end = strchr(name, '>');
    int q = 0;

    for (i = 0; i < sizeof(TAGS) / sizeof(TAGS[0]); i++)
      if (strlen(TAGS[i]) == n && strncmp(TAGS[i], name, n) == 0) break;
    if (i == sizeof(TAGS) / sizeof(TAGS[0])) fail("unexpected tag", p);
    if (end == NULL) fail("unterminated tag", p);
    for (const char *c = name; c < end; c++) q ^= *c == '"';
    if (q != 0) fail("unbalanced quotes in a tag", p);
    p = end + 1;
  }
}

static void render_json(const char *text, size_t len) {
  cJSON *j = cJSON_ParseWithLength(text, len);
  msvc__buf_t b;
  size_t out_len;
  char *out;

  if (j == NULL) return;
  msvc__buf_init(&b, 0);
  msvc__admin_html_value(&b, j, 0);
  out = msvc__buf_detach(&b, &out_len);
  if (out != NULL) {
    if (strlen(out) != out_len) fail("NUL inside the HTML", out);
    check_html(out);
    msvc__free(out);
  }
  cJSON_Delete(j);
}

static void token(const char *data, size_t len) {
  const char *nul = memchr(data, '\0', len), *t;
  char expect[4096], tok[4096];
  size_t hn, tn;
  bool ok, want;

  if (nul == NULL) return;
  hn = (size_t)(nul - data);
  t = nul + 1;
  tn = len - hn - 1;
  if (memchr(t, '\0', tn) != NULL || tn == 0 || tn >= sizeof(expect) - 8) return;
  /* Tokens are 16..256 printable characters without spaces (the
   * configuration refuses others); their length is not the point here. */
  for (size_t i = 0; i < tn; i++)
    if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f) return;
  memcpy(tok, t, tn);
  tok[tn] = '\0';
  ok = msvc__admin_token_ok(data, tok);
  snprintf(expect, sizeof(expect), "Bearer %.*s", (int)tn, t);
  want = strcmp(data, expect) == 0;
  /* Accepted forms beyond the exact one: case of "Bearer", spaces around. */
  if (want && !ok) fail("the exact header was refused", data);
  if (ok && strstr(data, t) == NULL) fail("a header without the token passed", data);
}

static void address(const char *text) {
  char host[64], back[128];
  int port;

  if (msvc__admin_parse_addr(text, host, sizeof(host), &port) != MSVC_OK) return;
  if (port < 0 || port > 65535) fail("port out of range", text);
  snprintf(back, sizeof(back), strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
  if (strcmp(back, text) != 0 && strtol(strrchr(text, ':') + 1, NULL, 10) != port)
    fail("address does not format back", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s;

  if (size < 1 || size > 65536) return 0;
  s = malloc(size);
  if (s == NULL) return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  switch (data[0] % 3) {
  case 0: render_json(s, size - 1); break;
  case 1: token(s, size - 1); break;
  default: address(s); break;
  }
  free(s);
  return 0;
}
