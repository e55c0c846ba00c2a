#include <msvc/version.h>

unsigned int msvc_version(void) {
  return MSVC_VERSION_HEX;
}

const char *msvc_version_string(void) {
  return MSVC_VERSION_STRING;
}
