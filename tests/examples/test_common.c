/* The helpers shared by the example services. */
#include <math.h>

#include "ex.h"
#include "ex_db.h"
#include "ex_test.h"

Test(examples_common, parse_id) {
  static const struct {
    const char *s;
    bool ok;
    int64_t v;
  } cases[] = {
      {"1", true, 1},
      {"123", true, 123},
      {"999999999999999", true, INT64_C(999999999999999)},
      {"1000000000000000", false, 0},
      {"99999999999999999999", false, 0},
      {"0", false, 0},
      {"007", false, 0},
      {"-1", false, 0},
      {"+1", false, 0},
      {"1 ", false, 0},
      {"1e3", false, 0},
      {"", false, 0},
      {"abc", false, 0},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int64_t v = -1;

    cr_assert_eq(ex_parse_id(cases[i].s, &v), cases[i].ok, "%s", cases[i].s);
    if (cases[i].ok)
      cr_assert_eq(v, cases[i].v, "%s", cases[i].s);
  }
  cr_assert_not(ex_parse_id(NULL, NULL));
}

Test(examples_common, parse_int_bounds) {
  int64_t v;

  cr_assert(ex_parse_int("0", 0, 200, &v) && v == 0);
  cr_assert(ex_parse_int("200", 1, 200, &v) && v == 200);
  cr_assert_not(ex_parse_int("201", 1, 200, &v));
  cr_assert_not(ex_parse_int("0", 1, 200, &v));
  cr_assert_not(ex_parse_int("9223372036854775808", 0, INT64_MAX, &v));
  cr_assert(ex_parse_int("9223372036854775807", 0, INT64_MAX, &v) && v == INT64_MAX);
}

Test(examples_common, utf8_chars) {
  cr_assert_eq(ex_utf8_chars(""), 0);
  cr_assert_eq(ex_utf8_chars("Ada"), 3);
  cr_assert_eq(ex_utf8_chars("Zo\xc3\xab"), 3);          /* Zoë */
  cr_assert_eq(ex_utf8_chars("\xe6\x97\xa5\xf0\x9f\x98\x80"), 2); /* CJK + emoji */
  cr_assert_eq(ex_utf8_chars("a\nb"), -1);                /* control character */
  cr_assert_eq(ex_utf8_chars("\xc3"), -1);                /* truncated */
  cr_assert_eq(ex_utf8_chars("\xc0\xaf"), -1);            /* overlong */
  cr_assert_eq(ex_utf8_chars("\xed\xa0\x80"), -1);        /* surrogate */
  cr_assert_eq(ex_utf8_chars("\xf4\x90\x80\x80"), -1);    /* above U+10FFFF */
}

Test(examples_common, rfc3339) {
  char out[32];

  ex_rfc3339(0, out);
  cr_assert_str_eq(out, "1970-01-01T00:00:00Z");
  ex_rfc3339(1795672798, out);
  cr_assert_str_eq(out, "2026-11-26T05:59:58Z");
}

Test(examples_common, random_and_hex) {
  unsigned char a[16], b[16];
  char hex[33];

  cr_assert_eq(ex_random(a, sizeof(a)), 0);
  cr_assert_eq(ex_random(b, sizeof(b)), 0);
  cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
  ex_hex((const unsigned char *)"\x01\xab\xff", 3, hex);
  cr_assert_str_eq(hex, "01abff");
}

Test(examples_common, json_string_names_the_field) {
  cJSON *doc = cJSON_Parse("{\"a\":\"xy\",\"n\":5,\"c\":\"a\\u0001b\"}");
  char msg[EX_MSG_MAX];
  const char *s = NULL;

  cr_assert_not_null(doc);
  cr_assert(ex_json_string(doc, "", "a", 1, 2, &s, msg, sizeof(msg)));
  cr_assert_str_eq(s, "xy");
  cr_assert_not(ex_json_string(doc, "", "a", 3, 5, &s, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "a: must be 3 to 5 characters");
  cr_assert_not(ex_json_string(doc, "x[1].", "missing", 1, 2, &s, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "x[1].missing: is required");
  cr_assert_not(ex_json_string(doc, "", "n", 1, 2, &s, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "n: must be a string");
  cr_assert_not(ex_json_string(doc, "", "c", 1, 9, &s, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "c: must be text without control characters");
  cJSON_Delete(doc);
}

Test(examples_common, json_int_bounds) {
  cJSON *doc = cJSON_Parse("{\"ok\":7,\"frac\":1.5,\"huge\":1e300,\"neg\":-1,\"s\":\"7\"}");
  char msg[EX_MSG_MAX];
  int64_t v = 0;

  cr_assert_not_null(doc);
  cr_assert(ex_json_int(doc, "", "ok", 1, 10, &v, msg, sizeof(msg)) && v == 7);
  cr_assert_not(ex_json_int(doc, "", "frac", 1, 10, &v, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "frac: must be an integer from 1 to 10");
  cr_assert_not(ex_json_int(doc, "", "huge", 0, EX_JSON_INT_MAX, &v, msg, sizeof(msg)));
  cr_assert_not(ex_json_int(doc, "", "neg", 0, 10, &v, msg, sizeof(msg)));
  cr_assert_not(ex_json_int(doc, "", "s", 0, 10, &v, msg, sizeof(msg)));
  cr_assert_not(ex_json_int(doc, "", "none", 0, 10, &v, msg, sizeof(msg)));
  cr_assert_str_eq(msg, "none: is required");
  cJSON_Delete(doc);
}

Test(examples_common, json_add_int_is_exact) {
  cJSON *doc = cJSON_CreateObject();
  char *text;

  cr_assert(ex_json_add_int(doc, "big", EX_JSON_INT_MAX));
  cr_assert(ex_json_add_int(doc, "ten", 10000000000));
  text = cJSON_PrintUnformatted(doc);
  cr_assert_str_eq(text, "{\"big\":999999999999999,\"ten\":10000000000}");
  cJSON_free(text);
  cJSON_Delete(doc);
}

Test(examples_common, db_open_creates_wal_and_reports_errors) {
  ex_tmp_t t;
  sqlite3 *db = NULL;
  sqlite3_stmt *st;
  char err[256] = "";

  ex_tmp_make(&t);
  cr_assert_eq(ex_db_open(ex_tmp_file(&t, "db"), "CREATE TABLE IF NOT EXISTS t (x);", &db,
                          err, sizeof(err)),
               SQLITE_OK, "%s", err);
  cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  ex_db_close(db);

  cr_assert_neq(ex_db_open(ex_tmp_file(&t, "db"), "NOT SQL", &db, err, sizeof(err)),
                SQLITE_OK);
  cr_assert_null(db);
  cr_assert_not_null(strstr(err, "cannot create the schema"), "%s", err);
  cr_assert_neq(ex_db_open(ex_tmp_file(&t, "no/such/dir/db"), "", &db, err, sizeof(err)),
                SQLITE_OK);
  cr_assert_null(db);
  cr_assert_not_null(strstr(err, "cannot open"), "%s", err);
  ex_db_close(NULL);
  ex_tmp_remove(&t);
}

/* The JWT defaults of the examples are options, set only where the
 * environment says nothing (it keeps the last word). */
Test(examples_common, jwt_defaults_leave_the_environment_the_last_word) {
  msvc_service_opts_t o;

  unsetenv("MSVC_JWT_JWKS_URL");
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_ISSUER");
  unsetenv("MSVC_JWT_AUDIENCE");
  msvc_service_opts_init(&o);
  ex_jwt_defaults(&o);
  cr_assert_str_eq(o.jwt_jwks_url, EX_JWKS_URL);
  cr_assert_null(o.jwt_jwks_file);
  cr_assert_str_eq(o.jwt_issuer, "user-service");
  cr_assert_str_eq(o.jwt_audience, "msvc-demo");
  cr_assert_null(getenv("MSVC_JWT_ISSUER"), "the environment is not written");

  setenv("MSVC_JWT_JWKS_FILE", "/etc/keys.json", 1);
  setenv("MSVC_JWT_ISSUER", "other", 1);
  setenv("MSVC_JWT_AUDIENCE", "aud", 1);
  msvc_service_opts_init(&o);
  ex_jwt_defaults(&o);
  cr_assert_null(o.jwt_jwks_url, "a key file in the environment wins");
  cr_assert_null(o.jwt_issuer);
  cr_assert_null(o.jwt_audience);
  unsetenv("MSVC_JWT_JWKS_FILE");
  unsetenv("MSVC_JWT_ISSUER");
  unsetenv("MSVC_JWT_AUDIENCE");
}

/* A connection per thread: a write on one thread's connection is seen by a
 * read on another's, and every connection closes with the set. */
typedef struct set_thread_s {
  ex_db_set_t *set;
  sqlite3 *db;
  int rc;
} set_thread_t;

static void set_writer(void *arg) {
  set_thread_t *t = arg;

  t->db = ex_db_set_get(t->set);
  t->rc = t->db != NULL ? sqlite3_exec(t->db, "INSERT INTO t VALUES (42)", NULL, NULL, NULL)
                        : SQLITE_ERROR;
}

Test(examples_common, db_set_gives_each_thread_its_connection) {
  ex_tmp_t t;
  char err[300] = "";
  ex_db_set_t *set;
  set_thread_t w = {0};
  uv_thread_t th;
  sqlite3 *mine;
  sqlite3_stmt *st;

  ex_tmp_make(&t);
  cr_assert_eq(ex_db_set_open(ex_tmp_file(&t, "db"), "CREATE TABLE IF NOT EXISTS t (x);",
                              &set, err, sizeof(err)),
               SQLITE_OK, "%s", err);
  mine = ex_db_set_get(set);
  cr_assert_not_null(mine);
  cr_assert_eq(ex_db_set_get(set), mine, "a second connection for the same thread");
  w.set = set;
  cr_assert_eq(uv_thread_create(&th, set_writer, &w), 0);
  cr_assert_eq(uv_thread_join(&th), 0);
  cr_assert_eq(w.rc, SQLITE_OK);
  cr_assert_not_null(w.db);
  cr_assert_neq(w.db, mine);
  cr_assert_eq(sqlite3_prepare_v2(mine, "SELECT x FROM t", -1, &st, NULL), SQLITE_OK);
  cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
  cr_assert_eq(sqlite3_column_int(st, 0), 42);
  sqlite3_finalize(st);
  ex_db_set_close(set);
  ex_db_set_close(NULL);
  cr_assert_neq(ex_db_set_open(ex_tmp_file(&t, "no/such/dir/db"), "", &set, err, sizeof(err)),
                SQLITE_OK);
  cr_assert_null(set);
  ex_tmp_remove(&t);
}
