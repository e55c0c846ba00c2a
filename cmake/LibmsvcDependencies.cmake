# Dependencies are found on the system, never fetched.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson>=1.7)
find_package(MbedTLS 2.28 REQUIRED)

set(LIBMSVC_PRIVATE_LIBS PkgConfig::CJSON MbedTLS::mbedtls MbedTLS::mbedx509
    MbedTLS::mbedcrypto Threads::Threads m)

# What a consumer compiles with (libmsvc.pc's Cflags, the CMake targets'
# INTERFACE definitions). libuv's headers use POSIX types (pthread_rwlock_t,
# struct addrinfo, ...) that glibc hides under a strict -std=c11. glibc's
# _DEFAULT_SOURCE restores exactly the namespace a compiler gives in its
# default (gnu) mode: a strict C11 program compiles, and a program already in
# gnu mode sees nothing change. _POSIX_C_SOURCE would also work for the first
# but would take BSD and GNU names away from the second. Other C libraries
# ignore the macro; they do not hide POSIX under -std=c11.
set(LIBMSVC_CONSUMER_DEFINITIONS _DEFAULT_SOURCE)

# c-ares is optional: with it the registry gains the dns:// backend.
option(LIBMSVC_WITH_DNS "Build the dns:// registry backend when c-ares is found" ON)
set(LIBMSVC_HAVE_CARES OFF)
set(LIBMSVC_PC_CARES "")
if(LIBMSVC_WITH_DNS)
  pkg_check_modules(CARES QUIET IMPORTED_TARGET libcares>=1.16)
  if(CARES_FOUND)
    set(LIBMSVC_HAVE_CARES ON)
    set(LIBMSVC_PC_CARES "libcares")
    list(APPEND LIBMSVC_PRIVATE_LIBS PkgConfig::CARES)
  endif()
endif()
message(STATUS "libmsvc: dns:// registry backend (c-ares): ${LIBMSVC_HAVE_CARES}")

# libnats is optional: with it the events block gains the nats:// backend.
option(LIBMSVC_WITH_EVENTS "Build the nats:// events backend when libnats is found" ON)
set(LIBMSVC_HAVE_NATS OFF)
set(LIBMSVC_PC_NATS "")
if(LIBMSVC_WITH_EVENTS)
  pkg_check_modules(NATS QUIET IMPORTED_TARGET libnats>=3.3)
  if(NATS_FOUND)
    set(LIBMSVC_HAVE_NATS ON)
    set(LIBMSVC_PC_NATS "libnats")
    list(APPEND LIBMSVC_PRIVATE_LIBS PkgConfig::NATS)
  endif()
endif()
message(STATUS "libmsvc: nats:// events backend (libnats): ${LIBMSVC_HAVE_NATS}")

# nghttp2 is optional: with it the HTTP server and client speak HTTP/2.
option(LIBMSVC_WITH_HTTP2 "Build HTTP/2 (h2c and ALPN h2) when nghttp2 is found" ON)
set(LIBMSVC_HAVE_NGHTTP2 OFF)
set(LIBMSVC_PC_NGHTTP2 "")
if(LIBMSVC_WITH_HTTP2)
  pkg_check_modules(NGHTTP2 QUIET IMPORTED_TARGET libnghttp2>=1.43)
  if(NGHTTP2_FOUND)
    set(LIBMSVC_HAVE_NGHTTP2 ON)
    set(LIBMSVC_PC_NGHTTP2 "libnghttp2")
    list(APPEND LIBMSVC_PRIVATE_LIBS PkgConfig::NGHTTP2)
  endif()
endif()
message(STATUS "libmsvc: HTTP/2 (nghttp2): ${LIBMSVC_HAVE_NGHTTP2}")

# llhttp: Debian's node-llhttp ships the generated C sources rather than a
# library. They are compiled into libmsvc as a private part: hidden symbols,
# never installed. Their generated code trips -Wextra (unused parameters), so
# these three files, and only these, build with warnings relaxed.
set(LLHTTP_SOURCE_DIR "" CACHE PATH "Directory holding llhttp.c, api.c and http.c")
find_path(LLHTTP_INCLUDE_DIR llhttp.h
  HINTS ${LLHTTP_SOURCE_DIR} ${LLHTTP_SOURCE_DIR}/include
  PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include)
find_file(LLHTTP_C llhttp.c HINTS ${LLHTTP_SOURCE_DIR} PATHS /usr/share/llhttp NO_DEFAULT_PATH)
if(NOT LLHTTP_INCLUDE_DIR OR NOT LLHTTP_C)
  message(FATAL_ERROR "llhttp sources not found: install Debian's node-llhttp "
                      "or pass -DLLHTTP_SOURCE_DIR=<dir with llhttp.c api.c http.c>")
endif()
get_filename_component(_llhttp_dir ${LLHTTP_C} DIRECTORY)
add_library(msvc_llhttp OBJECT ${_llhttp_dir}/llhttp.c ${_llhttp_dir}/api.c ${_llhttp_dir}/http.c)
target_include_directories(msvc_llhttp PRIVATE ${LLHTTP_INCLUDE_DIR})
target_compile_options(msvc_llhttp PRIVATE -w)

# gRPC is optional: it needs protobuf-c (library and protoc-c), zlib for
# gzip compression, and HTTP/2 (nghttp2, found above).
option(LIBMSVC_WITH_GRPC "Build the grpc block when protobuf-c, protoc-c, zlib and nghttp2 are found" ON)
set(LIBMSVC_HAVE_GRPC OFF)
set(LIBMSVC_PC_GRPC "")
if(LIBMSVC_WITH_GRPC AND LIBMSVC_HAVE_NGHTTP2)
  pkg_check_modules(PROTOBUFC QUIET IMPORTED_TARGET libprotobuf-c>=1.3)
  pkg_check_modules(ZLIB_PC QUIET IMPORTED_TARGET zlib)
  find_program(PROTOC_C_EXECUTABLE NAMES protoc-c protoc-gen-c)
  if(PROTOBUFC_FOUND AND ZLIB_PC_FOUND AND PROTOC_C_EXECUTABLE)
    set(LIBMSVC_HAVE_GRPC ON)
    set(LIBMSVC_PC_GRPC "libprotobuf-c zlib")
    list(APPEND LIBMSVC_PRIVATE_LIBS PkgConfig::PROTOBUFC PkgConfig::ZLIB_PC)
  endif()
endif()
message(STATUS "libmsvc: grpc (protobuf-c, protoc-c, zlib, nghttp2): ${LIBMSVC_HAVE_GRPC}")

# msvc_protoc_c(<var> <proto>...): compiles .proto files under proto/ with
# protoc-c at build time; <var> receives the generated .c files, whose
# headers land in ${PROJECT_BINARY_DIR}/proto.
include(${CMAKE_CURRENT_LIST_DIR}/libmsvcProtoc.cmake)
function(msvc_protoc_c var)
  set(LIBMSVC_PROTOC_C ${PROTOC_C_EXECUTABLE})
  libmsvc_protoc_c(out ${PROJECT_SOURCE_DIR}/proto ${PROJECT_BINARY_DIR}/proto ${ARGN})
  set(${var} ${out} PARENT_SCOPE)
endfunction()
