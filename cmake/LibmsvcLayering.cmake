# The include rules of docs/architecture.md, checked mechanically.
#
# Used two ways:
#   include(LibmsvcLayering)   at configure time: checks once and adds the
#                              target libmsvc_layering, which re-checks on
#                              every build before the library is compiled
#   cmake -DLIBMSVC_LAYERING_ROOT=<dir with src/> -P LibmsvcLayering.cmake
#                              the check alone (what that target runs)
#
# Only #include lines count; comments and strings elsewhere do not.

# _libmsvc_forbid(root block regex why): files under src/<block> must not
# include a path matching regex (anchored at the path's start).
function(_libmsvc_forbid root block regex why)
  file(GLOB_RECURSE files "${root}/src/${block}/*.c" "${root}/src/${block}/*.h")
  foreach(f IN LISTS files)
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line IN LISTS lines)
      if(line MATCHES "#[ \t]*include[ \t]*[<\"](${regex})")
        file(RELATIVE_PATH rel "${root}" "${f}")
        string(STRIP "${line}" line)
        set_property(GLOBAL APPEND_STRING PROPERTY LIBMSVC_LAYERING_ERRORS
                     "  ${rel}: ${line}  (${why})\n")
      endif()
    endforeach()
  endforeach()
endfunction()

function(libmsvc_check_layering root)
  set(pure "uv\\.h|http/|tls/|registry/|service/")
  set_property(GLOBAL PROPERTY LIBMSVC_LAYERING_ERRORS "")
  _libmsvc_forbid("${root}" http "tls/" "HTTP reaches TLS only through msvc-transport.h")
  _libmsvc_forbid("${root}" tls "http/" "TLS plugs in below HTTP through msvc-transport.h only")
  foreach(block lb breaker metrics jwt limit cache)
    _libmsvc_forbid("${root}" ${block} "${pure}" "a pure block: no loop, no I/O block")
  endforeach()
  foreach(block core lb breaker metrics http registry service work events admin)
    _libmsvc_forbid("${root}" ${block} "mbedtls/" "Mbed TLS stays inside jwt and tls")
  endforeach()
  foreach(block core lb breaker metrics jwt registry service tls work events admin)
    _libmsvc_forbid("${root}" ${block} "llhttp" "llhttp stays inside http")
  endforeach()
  foreach(block core lb breaker metrics jwt http registry service tls work events)
    _libmsvc_forbid("${root}" ${block} "protobuf-c/|zlib\\.h" "protobuf-c and zlib stay inside the optional grpc block")
  endforeach()
  get_property(errors GLOBAL PROPERTY LIBMSVC_LAYERING_ERRORS)
  if(errors)
    message(FATAL_ERROR "include rules broken (see docs/architecture.md):\n${errors}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE)
  if(NOT LIBMSVC_LAYERING_ROOT)
    message(FATAL_ERROR "usage: cmake -DLIBMSVC_LAYERING_ROOT=<dir> -P LibmsvcLayering.cmake")
  endif()
  libmsvc_check_layering("${LIBMSVC_LAYERING_ROOT}")
else()
  libmsvc_check_layering("${CMAKE_CURRENT_SOURCE_DIR}")
  add_custom_target(libmsvc_layering
    COMMAND ${CMAKE_COMMAND} -DLIBMSVC_LAYERING_ROOT=${CMAKE_CURRENT_SOURCE_DIR}
            -P ${CMAKE_CURRENT_LIST_FILE}
    COMMENT "Checking the include rules between blocks"
    VERBATIM)
endif()
