list(APPEND LIBMSVC_SOURCES
  src/lb/lb.c
  src/lb/sched.c
  src/lb/track.c)
