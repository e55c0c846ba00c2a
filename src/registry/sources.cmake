list(APPEND LIBMSVC_SOURCES
  src/registry/backend_local.c
  src/registry/backend_memory.c
  src/registry/backend_static.c
  src/registry/instance_json.c
  src/registry/registry.c
  src/registry/set.c
  src/registry/uri.c
  src/registry/watch.c)
