/*
 * A connection's request object is recycled from one request to the next
 * with what it keeps to allocate nothing (inline attribute records, an
 * arena for decoded parameters, the storage of the added headers): nothing
 * of one request may show in the next, and going past what is kept inline
 * must work as before.
 */
#include <cjson/cJSON.h>

#include "helpers.h"

static const char *const keys[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6"};

static void h_fill(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  const char *name = msvc_http_req_param(req, "name");
  const char *q = msvc_http_req_query(req, "q");
  size_t i, n = (size_t)atoi(msvc_http_req_param(req, "n"));
  char big[2048];

  (void)data;
  /* the keys are fresh copies: found by their text, not their address */
  for (i = 0; i < n && i < sizeof(keys) / sizeof(keys[0]); i++) {
    char k[8];
    snprintf(k, sizeof(k), "k%zu", i);
    cr_assert_null(msvc_http_req_get(req, k), "%s left over", k);
    cr_assert_eq(msvc_http_req_set(req, keys[i], strdup(k), free), MSVC_OK);
  }
  for (i = 0; i < n && i < sizeof(keys) / sizeof(keys[0]); i++) {
    char k[8];
    snprintf(k, sizeof(k), "k%zu", i);
    cr_assert_str_eq(msvc_http_req_get(req, k), k);
  }
  cr_assert_eq(msvc_http_req_set(req, keys[0], strdup("again"), free), MSVC_OK);
  if (n > 0)
    cr_assert_str_eq(msvc_http_req_get(req, "k0"), "again");
  if (n > 3) {
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(msvc_http_res_header(res, "X-Big", big), MSVC_OK);
  }
  cr_assert_eq(msvc_http_res_header(res, "X-Name", name), MSVC_OK);
  msvc_http_res_send(res, 200, "text/plain", q != NULL ? q : "-",
                     strlen(q != NULL ? q : "-"));
}

/* A JSON answer of n members: small ones print on the stack, large ones
 * the usual way. */
static void h_json(msvc_http_req_t *req, msvc_http_res_t *res, void *data) {
  int i, n = atoi(msvc_http_req_param(req, "n"));
  cJSON *doc = cJSON_CreateObject();

  (void)data;
  for (i = 0; i < n; i++) {
    char k[16];
    snprintf(k, sizeof(k), "m%04d", i);
    cJSON_AddNumberToObject(doc, k, i);
  }
  cr_assert_eq(msvc_http_res_json(res, 200, doc), MSVC_OK);
  cJSON_Delete(doc);
}

static void setup(msvc_http_server_t *srv) {
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/fill/:n/:name", h_fill, NULL, NULL),
               MSVC_OK);
  cr_assert_eq(msvc_http_server_route(srv, "GET", "/json/:n", h_json, NULL, NULL), MSVC_OK);
}

Test(http_recycle, nothing_carries_over_on_a_connection, .timeout = 20) {
  static const int counts[] = {7, 0, 2, 4, 0, 7, 1};
  tsrv_t t;
  tconn_t *c = malloc(sizeof(*c));
  char name[400], req[1024], v[2100];
  tresp_t r;
  size_t i;

  tsrv_start(&t, NULL, setup);
  tc_open(c, t.port);
  for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    /* names of 1 to 300 bytes, percent-encoded in part: past the arena too */
    size_t len = 1 + i * 50, j;
    for (j = 0; j < len; j++)
      name[j] = (char)('a' + (i + j) % 26);
    name[len] = '\0';
    snprintf(req, sizeof(req), "GET /fill/%d/%%41%s?q=%%42%zu HTTP/1.1\r\nHost: t\r\n\r\n",
             counts[i], name, i);
    tc_sends(c->fd, req);
    cr_assert(tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    snprintf(req, sizeof(req), "B%zu", i);
    cr_assert_str_eq(r.body, req);
    cr_assert_eq(strlen(tresp_header(&r, "X-Name", v, sizeof(v))), len + 1);
    cr_assert_eq(v[0], 'A');
    cr_assert_str_eq(v + 1, name);
    if (counts[i] > 3)
      cr_assert_eq(strlen(tresp_header(&r, "X-Big", v, sizeof(v))), 2047);
    else
      cr_assert_null(tresp_header(&r, "X-Big", v, sizeof(v)), "request %zu", i);
    tresp_free(&r);
  }
  tc_close(c);
  free(c);
  tsrv_stop(&t);
}

Test(http_recycle, json_small_and_large, .timeout = 20) {
  static const int counts[] = {0, 1, 20, 200, 3};
  tsrv_t t;
  tconn_t *c = malloc(sizeof(*c));
  char req[128];
  tresp_t r;
  size_t i;

  tsrv_start(&t, NULL, setup);
  tc_open(c, t.port);
  for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    cJSON *doc;
    snprintf(req, sizeof(req), "GET /json/%d HTTP/1.1\r\nHost: t\r\n\r\n", counts[i]);
    tc_sends(c->fd, req);
    cr_assert(tc_read(c, &r, false));
    cr_assert_eq(r.status, 200);
    doc = cJSON_Parse(r.body);
    cr_assert_not_null(doc, "not JSON: %s", r.body);
    cr_assert_eq(cJSON_GetArraySize(doc), counts[i]);
    if (counts[i] > 0)
      cr_assert_eq(cJSON_GetObjectItem(doc, "m0000")->valueint, 0);
    cJSON_Delete(doc);
    tresp_free(&r);
  }
  tc_close(c);
  free(c);
  tsrv_stop(&t);
}
