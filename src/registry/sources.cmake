list(APPEND LIBMSVC_SOURCES
  src/registry/backend_etcd.c
  src/registry/backend_local.c
  src/registry/backend_memory.c
  src/registry/backend_static.c
  src/registry/dns_answer.c
  src/registry/etcd_json.c
  src/registry/instance_json.c
  src/registry/local_dir.c
  src/registry/registry.c
  src/registry/set.c
  src/registry/uri.c
  src/registry/watch.c)

# The etcd backend speaks etcd's JSON gateway through the HTTP client.
if(NOT "http" IN_LIST LIBMSVC_BLOCKS)
  message(FATAL_ERROR "LIBMSVC_BLOCKS: the registry block needs the http block")
endif()

# dns:// needs c-ares; without it the URI is refused with a clear message.
if(LIBMSVC_HAVE_CARES)
  list(APPEND LIBMSVC_SOURCES src/registry/backend_dns.c)
endif()
