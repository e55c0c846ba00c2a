/*
 * The admin block's pure pieces: HTML escaping and rendering, redaction of
 * secrets, the token check, the listener's address, the request ring with
 * an injected clock, and the section table.
 */
#include <criterion/criterion.h>
#include <string.h>

#include <msvc/admin.h>
#include <msvc/error.h>

#include "admin/admin-internal.h"

static char *render(const cJSON *v) {
  msvc__buf_t b;
  size_t len;

  msvc__buf_init(&b, 0);
  msvc__admin_html_value(&b, v, 0);
  return msvc__buf_detach(&b, &len);
}

Test(admin_render, escapes_every_special_character) {
  msvc__buf_t b;
  size_t len;
  char *s;

  msvc__buf_init(&b, 0);
  msvc__admin_html_escape(&b, "<script>alert('x')</script> & \"q\"");
  s = msvc__buf_detach(&b, &len);
  cr_assert_str_eq(s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  msvc__free(s);
}

Test(admin_render, keys_and_values_are_escaped_in_tables) {
  cJSON *o = cJSON_Parse("{\"<k>\":\"<img src=x onerror=1>\",\"rows\":[{\"a\":\"<b>\",\"n\":2}]}");
  char *s = render(o);

  cr_assert_null(strstr(s, "<img"), "%s", s);
  cr_assert_null(strstr(s, "<k>"), "%s", s);
  cr_assert_null(strstr(s, "<b>"), "%s", s);
  cr_assert_not_null(strstr(s, "&lt;img src=x onerror=1&gt;"));
  cr_assert_not_null(strstr(s, "<th>a</th><th>n</th>"), "%s", s);
  msvc__free(s);
  cJSON_Delete(o);
}

Test(admin_render, numbers_arrays_become_charts_and_states_badges) {
  cJSON *o = cJSON_Parse("{\"rate\":[0,1,2,4],\"state\":\"open\",\"ok\":true,\"none\":null,"
                         "\"mixed\":[1,\"a\"],\"empty\":[]}");
  char *s = render(o);

  cr_assert_not_null(strstr(s, "<svg"), "%s", s);
  cr_assert_not_null(strstr(s, "<polyline"), "%s", s);
  cr_assert_not_null(strstr(s, "class=\"b b-bad\">open<"), "%s", s);
  cr_assert_not_null(strstr(s, ">yes<"), "%s", s);
  cr_assert_not_null(strstr(s, "1, a"), "%s", s);
  msvc__free(s);
  cJSON_Delete(o);
}

Test(admin_render, deep_nesting_is_cut) {
  char text[4096] = "";
  cJSON *o;
  char *s;
  int i;

  for (i = 0; i < 50; i++) strcat(text, "{\"a\":");
  strcat(text, "1");
  for (i = 0; i < 50; i++) strcat(text, "}");
  o = cJSON_Parse(text);
  cr_assert_not_null(o);
  s = render(o);
  cr_assert_not_null(strstr(s, "&hellip;"));
  msvc__free(s);
  cJSON_Delete(o);
}

Test(admin_render, whole_page_has_no_external_asset) {
  msvc__admin_nav_t nav[] = {{"", "Overview"}, {"x", "X<"}};
  cJSON *o = cJSON_Parse("{\"k\":\"v\"}");
  msvc__buf_t b;
  size_t len;
  char *s;

  msvc__buf_init(&b, 0);
  msvc__admin_html_page(&b, "svc<1>", "Title", nav, 2, "x", o, NULL);
  s = msvc__buf_detach(&b, &len);
  cr_assert(strncmp(s, "<!DOCTYPE html>", 15) == 0);
  cr_assert_not_null(strstr(s, "<style>"));
  cr_assert_null(strstr(s, "<script"));
  cr_assert_null(strstr(s, "http://"));
  cr_assert_null(strstr(s, "https://"));
  cr_assert_null(strstr(s, "svc<1>"));
  cr_assert_not_null(strstr(s, "href=\"/debug/x\" class=\"cur\">X&lt;</a>"), "%s", s);
  msvc__free(s);
  cJSON_Delete(o);
}

Test(admin_util, secrets_are_recognised) {
  cr_assert(msvc__admin_is_secret("MSVC_ADMIN_TOKEN"));
  cr_assert(msvc__admin_is_secret("db_password"));
  cr_assert(msvc__admin_is_secret("MSVC_TLS_KEY"));
  cr_assert(msvc__admin_is_secret("api_secret"));
  cr_assert(!msvc__admin_is_secret("MSVC_TLS_KEY_FILE"));
  cr_assert(!msvc__admin_is_secret("MSVC_PORT"));
  cr_assert(!msvc__admin_is_secret(""));
  cr_assert(!msvc__admin_is_secret(NULL));
}

Test(admin_util, redaction) {
  char out[128];

  msvc__admin_redact("TOKEN", "abc", out, sizeof(out));
  cr_assert_str_eq(out, "[redacted]");
  msvc__admin_redact("MSVC_EVENTS", "nats://u:pw@h:4222/x", out, sizeof(out));
  cr_assert_str_eq(out, "nats://u:[redacted]@h:4222/x");
  msvc__admin_redact("MSVC_EVENTS", "nats://u@h:4222", out, sizeof(out));
  cr_assert_str_eq(out, "nats://u@h:4222");
  msvc__admin_redact("URL", "http://h/p?a=b@c:d", out, sizeof(out));
  cr_assert_str_eq(out, "http://h/p?a=b@c:d");
  msvc__admin_redact("X", "plain", out, 3);
  cr_assert_str_eq(out, "pl");
}

Test(admin_util, token_check) {
  cr_assert(msvc__admin_token_ok(NULL, NULL));
  cr_assert(msvc__admin_token_ok("anything", NULL));
  cr_assert(msvc__admin_token_ok("Bearer abcdefgh", "abcdefgh"));
  cr_assert(msvc__admin_token_ok("bearer  abcdefgh ", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok("Bearer abcdefg", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok("Bearer abcdefghi", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok("Bearer abcdefgX", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok("Basic abcdefgh", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok("Bearer ", "abcdefgh"));
  cr_assert(!msvc__admin_token_ok(NULL, "abcdefgh"));
}

Test(admin_util, listener_address) {
  char host[64];
  int port;

  cr_assert_eq(msvc__admin_parse_addr("127.0.0.1:9901", host, sizeof(host), &port), MSVC_OK);
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, 9901);
  cr_assert_eq(msvc__admin_parse_addr("[::1]:0", host, sizeof(host), &port), MSVC_OK);
  cr_assert_str_eq(host, "::1");
  cr_assert_eq(port, 0);
  cr_assert_eq(msvc__admin_parse_addr("::1:80", host, sizeof(host), &port), MSVC_EINVAL);
  cr_assert_eq(msvc__admin_parse_addr("h:65536", host, sizeof(host), &port), MSVC_EINVAL);
  cr_assert_eq(msvc__admin_parse_addr("h:-1", host, sizeof(host), &port), MSVC_EINVAL);
  cr_assert_eq(msvc__admin_parse_addr("h:1x", host, sizeof(host), &port), MSVC_EINVAL);
  cr_assert_eq(msvc__admin_parse_addr(":1", host, sizeof(host), &port), MSVC_EINVAL);
  cr_assert_eq(msvc__admin_parse_addr("h", host, sizeof(host), &port), MSVC_EINVAL);
}

static const cJSON *route_of(const cJSON *j, const char *name) {
  const cJSON *e;

  cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "routes")) {
    if (strcmp(cJSON_GetObjectItem(e, "route")->valuestring, name) == 0) return e;
  }
  return NULL;
}

Test(admin_ring, slots_rates_errors_and_p99) {
  msvc__admin_ring_t *r;
  const cJSON *row, *rate, *p99;
  cJSON *j = cJSON_CreateObject();
  uint64_t t0 = 1000000000ull; /* a slot boundary */
  int i;

  cr_assert_eq(msvc__admin_ring_new(&r), MSVC_OK);
  for (i = 0; i < 100; i++)
    msvc__admin_ring_record(r, "GET", "/a", i < 10 ? 503 : 200,
                            i == 99 ? 900000000ull : 1000000ull, t0);
  msvc__admin_ring_record(r, "GET", "/a", 200, 1000000ull, t0 + MSVC__ADMIN_SLOT_MS);
  cr_assert_eq(msvc__admin_ring_json(r, t0 + MSVC__ADMIN_SLOT_MS, j), MSVC_OK);
  row = route_of(j, "GET /a");
  cr_assert_not_null(row);
  cr_assert_eq(cJSON_GetObjectItem(row, "requests")->valuedouble, 101);
  cr_assert_eq(cJSON_GetObjectItem(row, "errors")->valuedouble, 10);
  rate = cJSON_GetObjectItem(row, "rate");
  cr_assert_eq(cJSON_GetArraySize(rate), (int)MSVC__ADMIN_SLOTS);
  cr_assert_float_eq(cJSON_GetArrayItem(rate, MSVC__ADMIN_SLOTS - 2)->valuedouble,
                     100.0 / (MSVC__ADMIN_SLOT_MS / 1000.0), 1e-9);
  cr_assert_float_eq(cJSON_GetArrayItem(rate, MSVC__ADMIN_SLOTS - 1)->valuedouble,
                     1.0 / (MSVC__ADMIN_SLOT_MS / 1000.0), 1e-9);
  p99 = cJSON_GetObjectItem(row, "p99_ms");
  /* 99 of 100 at 1 ms: the 99th percentile is the 1 ms bucket's bound. */
  cr_assert_float_eq(cJSON_GetArrayItem(p99, MSVC__ADMIN_SLOTS - 2)->valuedouble, 1.0, 1e-9);
  cJSON_Delete(j);

  /* Long after: every slot has aged out. */
  j = cJSON_CreateObject();
  cr_assert_eq(msvc__admin_ring_json(r, t0 + 100ull * MSVC__ADMIN_SLOT_MS, j), MSVC_OK);
  cr_assert_eq(cJSON_GetObjectItem(route_of(j, "GET /a"), "requests")->valuedouble, 0);
  cJSON_Delete(j);
  msvc__admin_ring_free(r);
}

Test(admin_ring, bounded_number_of_routes) {
  msvc__admin_ring_t *r;
  cJSON *j = cJSON_CreateObject();
  static char routes[1000][16]; /* unchanged while the ring lives */
  int i;

  cr_assert_eq(msvc__admin_ring_new(&r), MSVC_OK);
  for (i = 0; i < 1000; i++) {
    snprintf(routes[i], sizeof(routes[i]), "/r%d", i);
    msvc__admin_ring_record(r, "GET", routes[i], 200, 1000, 5000);
  }
  /* The same text at another address finds its row. */
  {
    static const char again[] = "/r0";
    msvc__admin_ring_record(r, "GET", again, 200, 1000, 5000);
  }
  msvc__admin_ring_record(r, NULL, NULL, 404, 1000, 5000);
  cr_assert_eq(msvc__admin_ring_json(r, 5000, j), MSVC_OK);
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "routes")), (int)MSVC__ADMIN_ROUTES);
  cr_assert_not_null(route_of(j, "(other)"));
  cr_assert_eq(cJSON_GetObjectItem(route_of(j, "(other)"), "requests")->valuedouble,
               1000 - (MSVC__ADMIN_ROUTES - 1) + 1);
  cr_assert_eq(cJSON_GetObjectItem(route_of(j, "GET /r0"), "requests")->valuedouble, 2);
  cJSON_Delete(j);
  msvc__admin_ring_free(r);
}

static int fill(struct msvc_service_s *svc, cJSON *out, void *data) {
  (void)svc;
  cJSON_AddStringToObject(out, "said", data);
  return MSVC_OK;
}

static void count_sections(const char *name, const char *title, msvc_admin_section_fn fn,
                           void *rdata, void *arg) {
  (void)title;
  (void)fn;
  (void)rdata;
  if (strcmp(name, "limits") == 0) (*(int *)arg)++;
}

Test(admin_sections, add_list_remove) {
  int n = 0;

  cr_assert_eq(msvc_admin_section_add("limits", "Rate limits", fill, "hi"), MSVC_OK);
  cr_assert_eq(msvc_admin_section_add("limits", "Again", fill, NULL), MSVC_EEXIST);
  cr_assert_eq(msvc_admin_section_add("config", "Builtin", fill, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_admin_section_add("Bad Name", "x", fill, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_admin_section_add("x", NULL, fill, NULL), MSVC_EINVAL);
  cr_assert_eq(msvc_admin_section_add("x", "x", NULL, NULL), MSVC_EINVAL);
  msvc__admin_sections_foreach(count_sections, &n);
  cr_assert_eq(n, 1);
  cr_assert_eq(msvc_admin_section_remove("limits"), MSVC_OK);
  cr_assert_eq(msvc_admin_section_remove("limits"), MSVC_ENOENT);
  n = 0;
  msvc__admin_sections_foreach(count_sections, &n);
  cr_assert_eq(n, 0);
}
