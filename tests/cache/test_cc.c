/* The Cache-Control parser: every directive the cache reads, and the
 * values it must refuse. */
#include <criterion/criterion.h>
#include <string.h>

#include <msvc/cache.h>

static msvc_cache_cc_t parse(const char *s) {
  msvc_cache_cc_t cc;

  cr_assert_eq(msvc_cache_cc_parse(s, strlen(s), &cc), MSVC_OK);
  return cc;
}

Test(cache_cc, empty_and_null) {
  msvc_cache_cc_t cc;

  cr_assert_eq(msvc_cache_cc_parse(NULL, 0, &cc), MSVC_OK);
  cr_assert_eq(cc.flags, 0);
  cr_assert_eq(msvc_cache_cc_parse(NULL, 3, &cc), MSVC_EINVAL);
  cr_assert_eq(msvc_cache_cc_parse("x", 1, NULL), MSVC_EINVAL);
  cr_assert_eq(parse("").flags, 0);
  cr_assert_eq(parse(" , ,, ").flags, 0);
}

Test(cache_cc, every_directive) {
  msvc_cache_cc_t cc = parse("no-store, no-cache, private, public, must-revalidate, "
                             "proxy-revalidate, max-age=60, s-maxage=30, stale-if-error=300");

  cr_assert_eq(cc.flags, MSVC_CACHE_CC_NO_STORE | MSVC_CACHE_CC_NO_CACHE |
                             MSVC_CACHE_CC_PRIVATE | MSVC_CACHE_CC_PUBLIC |
                             MSVC_CACHE_CC_MUST_REVALIDATE | MSVC_CACHE_CC_PROXY_REVALIDATE |
                             MSVC_CACHE_CC_MAX_AGE | MSVC_CACHE_CC_S_MAXAGE |
                             MSVC_CACHE_CC_STALE_IF_ERROR);
  cr_assert_eq(cc.max_age, 60);
  cr_assert_eq(cc.s_maxage, 30);
  cr_assert_eq(cc.stale_if_error, 300);
}

Test(cache_cc, case_whitespace_unknown_and_quotes) {
  msvc_cache_cc_t cc = parse("  MAX-AGE=5 ,\tX-Ext=\"a, b\", Private=\"Set-Cookie\", "
                             "no-cache=\"x\" ,ext");

  cr_assert_eq(cc.flags, MSVC_CACHE_CC_MAX_AGE | MSVC_CACHE_CC_PRIVATE |
                             MSVC_CACHE_CC_NO_CACHE);
  cr_assert_eq(cc.max_age, 5);
  cc = parse("max-age=\"7\"");
  cr_assert_eq(cc.flags, MSVC_CACHE_CC_MAX_AGE);
  cr_assert_eq(cc.max_age, 7);
}

Test(cache_cc, duplicates_keep_the_smallest) {
  msvc_cache_cc_t cc = parse("max-age=60, max-age=10, max-age=30");

  cr_assert_eq(cc.max_age, 10);
}

Test(cache_cc, huge_values_are_clamped) {
  msvc_cache_cc_t cc = parse("max-age=99999999999999999999999");

  cr_assert_eq(cc.flags, MSVC_CACHE_CC_MAX_AGE);
  cr_assert_eq(cc.max_age, MSVC_CACHE_DELTA_MAX);
}

Test(cache_cc, malformed_values) {
  static const char *const bad[] = {
      "max-age=abc", "max-age=-1", "max-age=", "max-age", "s-maxage=1.5",
      "stale-if-error=x", "private=\"unterminated", "max-age=5 junk", "=5",
      "no-store;", "max-age=\"1\\", "a=\"\x01\""};
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_assert(parse(bad[i]).flags & MSVC_CACHE_CC_MALFORMED, "%s", bad[i]);
  cr_assert_eq(parse("max-age=5 , public").flags & MSVC_CACHE_CC_MALFORMED, 0);
}

Test(cache_cc, not_nul_terminated) {
  msvc_cache_cc_t cc;
  const char buf[] = {'m', 'a', 'x', '-', 'a', 'g', 'e', '=', '4', '2'};

  cr_assert_eq(msvc_cache_cc_parse(buf, sizeof(buf), &cc), MSVC_OK);
  cr_assert_eq(cc.max_age, 42);
  cr_assert_eq(msvc_cache_cc_parse(buf, 8, &cc), MSVC_OK);
  cr_assert(cc.flags & MSVC_CACHE_CC_MALFORMED);
}
