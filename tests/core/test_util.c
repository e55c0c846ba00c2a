#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

#include "msvc-internal.h"

Test(util, strcasecmp_is_ascii_only) {
  cr_assert_eq(msvc__strcasecmp("Content-Length", "content-length"), 0);
  cr_assert_neq(msvc__strcasecmp("Content-Length", "content-lengt"), 0);
  cr_assert_eq(msvc__strncasecmp("HOSTX", "hosty", 4), 0);
  cr_assert_lt(msvc__strcasecmp("a", "B"), 0);
}

Test(util, rfc3339_formatting) {
  char ts[MSVC__RFC3339_LEN];

  msvc__format_rfc3339_ms(0, ts);
  cr_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
  msvc__format_rfc3339_ms(1795694400123ULL, ts);
  cr_assert_str_eq(ts, "2026-11-26T12:00:00.123Z");
}

Test(util, clocks_move_forward) {
  uint64_t a = msvc_now_ms(), w = msvc_wall_ms();

  cr_assert_geq(msvc_now_ms(), a);
  cr_assert_gt(w, 1700000000000ULL);
}

Test(util, rand_below_stays_in_range_and_covers_it) {
  int seen[7] = {0};
  int i;

  cr_assert_eq(msvc__rand_below(0), 0);
  cr_assert_eq(msvc__rand_below(1), 0);
  for (i = 0; i < 7000; i++) {
    uint64_t r = msvc__rand_below(7);
    cr_assert_lt(r, 7);
    seen[r]++;
  }
  for (i = 0; i < 7; i++)
    cr_assert_gt(seen[i], 700, "value %d drawn only %d times", i, seen[i]);
}

Test(util, queue_insert_remove) {
  typedef struct item_s {
    int v;
    msvc__queue_t q;
  } item_t;
  item_t a = {1, {0}}, b = {2, {0}}, c = {3, {0}};
  msvc__queue_t head, *q;
  int sum = 0, order = 0;

  msvc__queue_init(&head);
  cr_assert(msvc__queue_empty(&head));
  msvc__queue_insert_tail(&head, &a.q);
  msvc__queue_insert_tail(&head, &b.q);
  msvc__queue_insert_head(&head, &c.q);
  msvc__queue_foreach(q, &head) {
    item_t *it = msvc__container_of(q, item_t, q);
    sum += it->v;
    order = order * 10 + it->v;
  }
  cr_assert_eq(sum, 6);
  cr_assert_eq(order, 312);
  msvc__queue_remove(&b.q);
  msvc__queue_remove(&a.q);
  msvc__queue_remove(&c.q);
  cr_assert(msvc__queue_empty(&head));
}

/* The grammar check must never call valid what cJSON refuses, or a syntax
 * error would be reported as out of memory. */
Test(util, json_valid_agrees_with_cjson) {
  static const char *const docs[] = {
      "{}", "[]", "{\"a\":[1,-2.5e+3,true,false,null,\"x\\u00e9\"]}",
      "\"\\ud83d\\ude00\"", "0", " {\"a\" : {\"b\":[]}} ",
      "", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru",
      "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83dx\"", "\"\\x\"", "\"a",
      "{\"a\":1}x", "\"\\u12G4\"", "[1 2]"};
  size_t i;

  for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
    cJSON *j = cJSON_ParseWithLength(docs[i], strlen(docs[i]));
    bool ok = msvc__json_valid(docs[i], strlen(docs[i]));

    if (ok)
      cr_assert_not_null(j, "valid by the scan, refused by cJSON: %s", docs[i]);
    cr_assert_eq(ok, i < 6, "%s", docs[i]);
    cr_assert_eq(msvc__json_parse_error(docs[i], strlen(docs[i])),
                 ok ? MSVC_ENOMEM : MSVC_EJSON);
    cJSON_Delete(j);
  }
}

/* The word-at-a-time check against the plain rule, every byte value at
 * every position of ids of the lengths W3C uses and of odd ones. */
Test(util, hex_lower_ok_agrees_with_the_byte_rule) {
  static const size_t lens[] = {0, 1, 2, 7, 8, 9, 16, 17, 32, 33};
  char s[40];
  size_t li, pos;
  int c;

  for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
    size_t n = lens[li];
    for (pos = 0; pos < n; pos++) {
      for (c = 0; c < 256; c++) {
        bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        memset(s, 'a', sizeof(s));
        s[pos] = (char)c;
        cr_assert_eq(msvc__hex_lower_ok(s, n), want, "len %zu pos %zu byte %d", n, pos, c);
      }
    }
    memcpy(s, "0123456789abcdef0123456789abcdef0", 34);
    cr_assert(msvc__hex_lower_ok(s, n));
  }
}

/* Every size writes exactly its digits, all lower-case hex, and a NUL; over
 * many draws each digit position takes all sixteen values (the 16- and
 * 32-digit ids have vectorised paths of their own). */
Test(util, hex_random_writes_lower_hex_digits_and_a_nul) {
  char s[72];
  size_t n, i;
  int k;

  for (n = 0; n <= 64; n++) {
    unsigned seen[64] = {0};

    for (k = 0; k < 400; k++) {
      memset(s, 'X', sizeof(s));
      msvc__hex_random(s, n);
      cr_assert(msvc__hex_lower_ok(s, n), "size %zu: %.*s", n, (int)n, s);
      cr_assert_eq(s[n], '\0', "size %zu", n);
      cr_assert_eq(s[n + 1], 'X', "size %zu wrote past its NUL", n);
      for (i = 0; i < n; i++)
        seen[i] |= 1u << (s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    }
    for (i = 0; i < n; i++)
      cr_assert_eq(seen[i], 0xffffu, "size %zu position %zu: digits %#x", n, i, seen[i]);
  }
}
