#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include <msvc/msvc.h>

static const int own_codes[] = {
#define XX(name, value, msg) MSVC_##name,
    MSVC_ERROR_MAP(XX)
#undef XX
};

static const int sys_codes[] = {
#define XX(name, value, msg) MSVC_##name,
    MSVC_SYS_ERROR_MAP(XX)
#undef XX
};

Test(error, ok_is_zero_and_named) {
  cr_assert_eq(MSVC_OK, 0);
  cr_assert_str_eq(msvc_err_name(MSVC_OK), "OK");
  cr_assert_str_eq(msvc_strerror(MSVC_OK), "success");
}

Test(error, own_codes_are_negative_in_reserved_range_and_unique) {
  size_t i, j, n = sizeof(own_codes) / sizeof(own_codes[0]);

  for (i = 0; i < n; i++) {
    cr_assert(own_codes[i] <= -30000 && own_codes[i] > -32000,
              "code %d outside the reserved range", own_codes[i]);
    for (j = i + 1; j < n; j++)
      cr_assert_neq(own_codes[i], own_codes[j], "duplicate code %d", own_codes[i]);
  }
}

Test(error, every_code_has_a_name_and_a_message) {
  size_t i;

  for (i = 0; i < sizeof(own_codes) / sizeof(own_codes[0]); i++) {
    cr_assert_str_neq(msvc_err_name(own_codes[i]), "UNKNOWN");
    cr_assert_str_neq(msvc_strerror(own_codes[i]), "unrecognised error code");
  }
  for (i = 0; i < sizeof(sys_codes) / sizeof(sys_codes[0]); i++) {
    cr_assert_str_neq(msvc_err_name(sys_codes[i]), "UNKNOWN");
    cr_assert_str_neq(msvc_strerror(sys_codes[i]), "unrecognised error code");
  }
}

Test(error, names_match_the_enum) {
  cr_assert_str_eq(msvc_err_name(MSVC_EBREAKER_OPEN), "EBREAKER_OPEN");
  cr_assert_str_eq(msvc_strerror(MSVC_EBREAKER_OPEN), "circuit breaker is open");
  cr_assert_str_eq(msvc_err_name(MSVC_ENOMEM), "ENOMEM");
}

Test(error, system_codes_are_libuv_codes) {
  cr_assert_eq(MSVC_ECONNREFUSED, UV_ECONNREFUSED);
  cr_assert_eq(MSVC_ETIMEDOUT, UV_ETIMEDOUT);
  cr_assert_eq(MSVC_ECONNRESET, UV_ECONNRESET);
  cr_assert_eq(MSVC_ENOMEM, UV_ENOMEM);
  cr_assert_eq(MSVC_EINVAL, UV_EINVAL);
  cr_assert_eq(MSVC_ECANCELED, UV_ECANCELED);
}

Test(error, other_errno_values_are_described_by_libc) {
  /* EHOSTUNREACH is not in the map but is a valid errno. */
  cr_assert_str_neq(msvc_strerror(-EHOSTUNREACH), "unrecognised error code");
  cr_assert_str_eq(msvc_err_name(-EHOSTUNREACH), "EHOSTUNREACH");
}

Test(error, unknown_codes_are_unknown) {
  cr_assert_str_eq(msvc_strerror(-30999), "unrecognised error code");
  cr_assert_str_eq(msvc_err_name(-30999), "UNKNOWN");
  cr_assert_str_eq(msvc_strerror(12345), "unrecognised error code");
  cr_assert_str_eq(msvc_err_name(-99999), "UNKNOWN");
}

Test(version, runtime_matches_headers) {
  char expect[32];

  cr_assert_eq(msvc_version(), (unsigned)MSVC_VERSION_HEX);
  snprintf(expect, sizeof(expect), "%d.%d.%d", MSVC_VERSION_MAJOR,
           MSVC_VERSION_MINOR, MSVC_VERSION_PATCH);
  cr_assert_str_eq(msvc_version_string(), expect);
  cr_assert_str_eq(MSVC_VERSION_STRING, expect);
}
