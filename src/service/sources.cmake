# The service block: the standard middlewares, and the service object that
# wires the server, the registry, the balancer, the breakers and the client
# together. Every C file of the directory belongs to it.
file(GLOB _msvc_service_sources CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/*.c)
list(SORT _msvc_service_sources)
list(APPEND LIBMSVC_SOURCES ${_msvc_service_sources})

foreach(_dep http metrics jwt lb breaker registry tls work events trace limit admin cache)
  if(NOT _dep IN_LIST LIBMSVC_BLOCKS)
    message(FATAL_ERROR "LIBMSVC_BLOCKS: the service block needs the ${_dep} block")
  endif()
endforeach()
