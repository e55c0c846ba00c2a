#include <string.h>

#include "msvc-internal.h"

const char *msvc_strerror(int err) {
  switch (err) {
  case MSVC_OK:
    return "success";
#define XX(name, value, msg) \
  case MSVC_##name:          \
    return msg;
    MSVC_SYS_ERROR_MAP(XX)
    MSVC_ERROR_MAP(XX)
#undef XX
  default:
    break;
  }
  /* Another negated errno (libuv passes those through): let the C library
   * name it. strerrordesc_np() returns a static string and is thread-safe,
   * unlike strerror(). */
  if (err < 0 && err > -4096) {
    const char *desc = strerrordesc_np(-err);
    if (desc != NULL)
      return desc;
  }
  return "unrecognised error code";
}

const char *msvc_err_name(int err) {
  switch (err) {
  case MSVC_OK:
    return "OK";
#define XX(name, value, msg) \
  case MSVC_##name:          \
    return #name;
    MSVC_SYS_ERROR_MAP(XX)
    MSVC_ERROR_MAP(XX)
#undef XX
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *name = strerrorname_np(-err);
    if (name != NULL)
      return name;
  }
  return "UNKNOWN";
}
