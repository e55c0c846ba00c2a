#include <criterion/criterion.h>
#include <string.h>

#include "msvc-internal.h"

Test(buf, appends_and_detaches) {
  msvc__buf_t b;
  size_t len;
  char *s;

  msvc__buf_init(&b, 0);
  msvc__buf_puts(&b, "hello");
  msvc__buf_putc(&b, ',');
  msvc__buf_printf(&b, " %s %d", "world", 42);
  cr_assert_eq(b.err, MSVC_OK);
  s = msvc__buf_detach(&b, &len);
  cr_assert_str_eq(s, "hello, world 42");
  cr_assert_eq(len, strlen(s));
  cr_assert_null(b.data);
  msvc_free(s);
}

Test(buf, empty_detach_is_empty_string) {
  msvc__buf_t b;
  char *s;

  msvc__buf_init(&b, 0);
  s = msvc__buf_detach(&b, NULL);
  cr_assert_str_eq(s, "");
  msvc_free(s);
}

Test(buf, grows_past_many_doublings) {
  msvc__buf_t b;
  int i;

  msvc__buf_init(&b, 0);
  for (i = 0; i < 100000; i++)
    msvc__buf_putc(&b, (char)('a' + i % 26));
  cr_assert_eq(b.len, 100000);
  cr_assert_eq(b.data[99999], 'a' + 99999 % 26);
  cr_assert_eq(b.data[b.len], '\0');
  msvc__buf_free(&b);
}

Test(buf, max_is_sticky_error) {
  msvc__buf_t b;

  msvc__buf_init(&b, 8);
  msvc__buf_puts(&b, "12345678");
  cr_assert_eq(b.err, MSVC_OK);
  msvc__buf_puts(&b, "9");
  cr_assert_eq(b.err, MSVC_ETOOLARGE);
  msvc__buf_puts(&b, "");
  cr_assert_eq(b.len, 8);
  cr_assert_null(msvc__buf_detach(&b, NULL));
}

Test(buf, json_escape) {
  msvc__buf_t b;
  const char in[] = "a\"b\\c\n\x01\x7f\xc3\xa9";

  msvc__buf_init(&b, 0);
  msvc__buf_json_escape(&b, in, sizeof(in) - 1);
  cr_assert_str_eq(b.data, "a\\\"b\\\\c\\n\\u0001\\u007f\xc3\xa9");
  msvc__buf_free(&b);
}

Test(buf, fixed_json_escape_never_overflows_or_splits_utf8) {
  char out[8];
  size_t n;

  n = msvc__json_escape(out, sizeof(out), "abc", 3);
  cr_assert_str_eq(out, "abc");
  cr_assert_eq(n, 3);
  n = msvc__json_escape(out, sizeof(out), "\n\n\n\n\n", 5);
  cr_assert_str_eq(out, "\\n\\n\\n");
  cr_assert_eq(n, 6);
  /* "abcde" then a two-byte character that does not fit whole. */
  n = msvc__json_escape(out, 7, "abcde\xc3\xa9", 7);
  cr_assert_str_eq(out, "abcde");
  cr_assert_eq(n, 5);
  n = msvc__json_escape(out, 1, "abc", 3);
  cr_assert_str_eq(out, "");
}
