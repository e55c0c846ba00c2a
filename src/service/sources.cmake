list(APPEND LIBMSVC_SOURCES
  src/service/mw_context.c
  src/service/jwks_fetch.c
  src/service/mw_jwt.c
  src/service/mw_metrics.c
  src/service/traceparent.c)

# The middlewares sit on the HTTP server, record into the metrics block and
# verify tokens with the JWT block.
foreach(_dep http metrics jwt)
  if(NOT _dep IN_LIST LIBMSVC_BLOCKS)
    message(FATAL_ERROR "LIBMSVC_BLOCKS: the service block needs the ${_dep} block")
  endif()
endforeach()
