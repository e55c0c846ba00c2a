# The admin block: the admin listener of a service and its pages.
list(APPEND LIBMSVC_SOURCES
  src/admin/admin.c
  src/admin/pages.c
  src/admin/render.c
  src/admin/ring.c
  src/admin/tracez.c
  src/admin/util.c)

if(NOT "service" IN_LIST LIBMSVC_BLOCKS)
  message(FATAL_ERROR "LIBMSVC_BLOCKS: the admin block needs the service block")
endif()
