list(APPEND LIBMSVC_SOURCES
  src/core/alloc.c
  src/core/buf.c
  src/core/error.c
  src/core/json_scan.c
  src/core/log.c
  src/core/util.c
  src/core/version.c)
