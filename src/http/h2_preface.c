/* Recognising the HTTP/2 connection preface; no nghttp2 needed. */
#include <string.h>

#include "http/h2.h"

int msvc__h2_preface_check(const char *data, size_t len) {
  size_t n = len < MSVC__H2_PREFACE_LEN ? len : MSVC__H2_PREFACE_LEN;

  if (memcmp(data, MSVC__H2_PREFACE, n) != 0)
    return -1;
  return n == MSVC__H2_PREFACE_LEN ? 1 : 0;
}
