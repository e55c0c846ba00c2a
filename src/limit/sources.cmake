list(APPEND LIBMSVC_SOURCES
  src/limit/rate.c
  src/limit/adaptive.c)
