list(APPEND LIBMSVC_SOURCES
  src/cache/cc.c
  src/cache/cache.c)

if(NOT "metrics" IN_LIST LIBMSVC_BLOCKS)
  message(FATAL_ERROR "LIBMSVC_BLOCKS: the cache block needs the metrics block")
endif()
