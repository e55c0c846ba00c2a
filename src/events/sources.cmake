list(APPEND LIBMSVC_SOURCES
  src/events/backend_memory.c
  src/events/dedup.c
  src/events/envelope.c
  src/events/events.c)

