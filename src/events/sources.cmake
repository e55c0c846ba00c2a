list(APPEND LIBMSVC_SOURCES
  src/events/backend_memory.c
  src/events/dedup.c
  src/events/envelope.c
  src/events/events.c
  src/events/subs.c
  src/events/trace.c)


# nats:// needs libnats; without it the URI is refused with a clear message.
if(LIBMSVC_HAVE_NATS)
  list(APPEND LIBMSVC_SOURCES src/events/backend_nats.c)
endif()
