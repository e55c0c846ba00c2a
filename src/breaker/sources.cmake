list(APPEND LIBMSVC_SOURCES
  src/breaker/breaker.c
  src/breaker/window.c)
