list(APPEND LIBMSVC_SOURCES
  src/tls/config.c
  src/tls/env.c
  src/tls/metrics.c
  src/tls/peer.c
  src/tls/transport.c)

# The HTTP sources that reach into this block learn that it is there; built
# without it, they refuse TLS with MSVC_ENOTSUP.
set_property(SOURCE src/http/server.c src/http/conn.c src/http/client.c src/http/pool.c
             src/http/h2_client.c
             APPEND PROPERTY COMPILE_DEFINITIONS MSVC_HAVE_TLS)
if("metrics" IN_LIST LIBMSVC_BLOCKS)
  set_property(SOURCE src/tls/metrics.c APPEND PROPERTY COMPILE_DEFINITIONS
               MSVC_TLS_HAVE_METRICS)
endif()
