list(APPEND LIBMSVC_SOURCES
  src/http/wire.c
  src/http/transport_tcp.c
  src/http/transport_mem.c
  src/http/router.c
  src/http/server.c
  src/http/conn.c
  src/http/request.c
  src/http/response.c
  src/http/workers.c
  src/http/identity.c
  src/http/client.c
  src/http/pool.c
  src/http/retry.c
  src/http/h2_preface.c
  src/http/grpc_error.c)

if(LIBMSVC_HAVE_NGHTTP2)
  list(APPEND LIBMSVC_SOURCES src/http/h2_server.c src/http/h2_client.c)
endif()

