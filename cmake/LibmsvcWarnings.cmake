# Warning flags for everything libmsvc compiles itself. Third-party sources
# (llhttp) get their own relaxed set in LibmsvcDependencies.cmake.
set(LIBMSVC_WARNINGS -Wall -Wextra -Wshadow -Wvla -Wpointer-arith -Wformat=2)
if(LIBMSVC_WERROR)
  list(APPEND LIBMSVC_WARNINGS -Werror)
endif()
# Library sources only: every non-static function must have a prototype in a
# header, which catches a forgotten `static` or a missing MSVC_API.
set(LIBMSVC_STRICT_WARNINGS -Wstrict-prototypes -Wmissing-prototypes
    -Wold-style-definition)
