list(APPEND LIBMSVC_SOURCES
  src/metrics/children.c
  src/metrics/expose.c
  src/metrics/process.c
  src/metrics/registry.c
  src/metrics/text.c
  src/metrics/values.c)
