# libmsvc_protoc_c(<var> <proto_dir> <out_dir> <proto>...): compiles .proto
# files (paths relative to <proto_dir>) with protoc-c at build time into
# <out_dir>; <var> receives the generated .c files, whose headers sit beside
# them (include them as "orders/v1/orders.pb-c.h" with <out_dir> on the
# include path). Installed with the CMake package, so that a program built
# against an installed libmsvc compiles the .proto files of
# libmsvc_PROTO_DIR (or its own) the way the library's tree does.
# protoc-c is looked up once as LIBMSVC_PROTOC_C.
function(libmsvc_protoc_c var proto_dir out_dir)
  if(NOT LIBMSVC_PROTOC_C)
    find_program(LIBMSVC_PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)
  endif()
  set(out "")
  foreach(p IN LISTS ARGN)
    string(REGEX REPLACE "\\.proto$" "" base ${p})
    set(c ${out_dir}/${base}.pb-c.c)
    add_custom_command(OUTPUT ${c} ${out_dir}/${base}.pb-c.h
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND ${LIBMSVC_PROTOC_C} --c_out=${out_dir} -I${proto_dir} ${proto_dir}/${p}
      DEPENDS ${proto_dir}/${p}
      COMMENT "protoc-c ${p}" VERBATIM)
    list(APPEND out ${c})
  endforeach()
  set(${var} ${out} PARENT_SCOPE)
endfunction()
