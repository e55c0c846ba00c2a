list(APPEND LIBMSVC_SOURCES
  src/work/pool.c
  src/work/req.c)
