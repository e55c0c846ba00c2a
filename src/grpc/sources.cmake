# The grpc block is built only with LIBMSVC_WITH_GRPC and its dependencies
# (see cmake/LibmsvcDependencies.cmake).
if(LIBMSVC_HAVE_GRPC)
  msvc_protoc_c(LIBMSVC_GRPC_PROTO_SOURCES grpc/health/v1/health.proto)
  list(APPEND LIBMSVC_SOURCES
    src/grpc/client.c
    src/grpc/frame.c
    src/grpc/health.c
    src/grpc/mount_service.c
    src/grpc/server.c
    src/grpc/trace.c
    src/grpc/metadata.c
    src/grpc/wire.c
    ${LIBMSVC_GRPC_PROTO_SOURCES})
endif()
