# End-to-end tests of the example services (label `examples`), all driven by
# Python 3 scripts beside this file:
#
#   examples_deploy       the Kubernetes manifests, prometheus.yml and the
#                         Dockerfiles, checked without a cluster or Docker
#   examples_e2e_build    installs this build into a temporary prefix and
#                         builds the services against it, as a user would,
#                         and the service of docs/getting-started.md too
#   examples_e2e_local    the whole system over real processes, local registry
#   examples_e2e_etcd     the same on an etcd started by the test
#   examples_e2e_dns      the same on DNS records (dns://) that a dnsmasq
#                         started by the test serves, kept as a platform would
#   examples_demo_smoke   examples/demo.sh --smoke, on both registries
find_package(Python3 COMPONENTS Interpreter)
find_program(MSVC_PROMTOOL promtool)
find_program(MSVC_ETCD etcd)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "examples tests: python3 not found, skipped")
  return()
endif()

set(_e2e_dir ${CMAKE_CURRENT_SOURCE_DIR})
set(_e2e_work ${CMAKE_CURRENT_BINARY_DIR}/e2e)
set(_promtool "${MSVC_PROMTOOL}")
if(NOT MSVC_PROMTOOL)
  set(_promtool "")
endif()

# `./run.sh demo --help` prints the usage at once: nothing is installed or
# built first (that would take minutes, far past the timeout).
add_test(NAME examples_demo_help
  COMMAND ${PROJECT_SOURCE_DIR}/run.sh demo --help)
set_tests_properties(examples_demo_help PROPERTIES LABELS examples TIMEOUT 10
  PASS_REGULAR_EXPRESSION "--keep-logs.*--help")

add_test(NAME examples_deploy
  COMMAND ${Python3_EXECUTABLE} ${_e2e_dir}/check_deploy.py ${PROJECT_SOURCE_DIR} "${_promtool}")
set_tests_properties(examples_deploy PROPERTIES LABELS examples TIMEOUT 60)

# The services need every block of the library.
set(_e2e_blocks http metrics jwt lb breaker registry service)
set(_e2e_missing "")
foreach(block IN LISTS _e2e_blocks)
  if(NOT block IN_LIST LIBMSVC_BLOCKS)
    list(APPEND _e2e_missing ${block})
  endif()
endforeach()
if(_e2e_missing)
  message(STATUS "examples end-to-end tests skipped (blocks missing: ${_e2e_missing})")
  return()
endif()

if(LIBMSVC_SANITIZE)
  # An instrumented libmsvc cannot be installed for users (they would need
  # the sanitizer runtime), so a sanitizer build runs the scenarios on the
  # services built in the tree instead, and fails on any sanitizer report in
  # their logs (leaks at exit included).
  if(NOT LIBMSVC_BUILD_EXAMPLES)
    message(STATUS "examples end-to-end tests skipped (LIBMSVC_BUILD_EXAMPLES is OFF)")
    return()
  endif()
  set(_e2e_bins ${PROJECT_BINARY_DIR}/examples)
  set(_e2e_fixture "")
else()
  # As a user would: install this build into a temporary prefix, then build
  # each service out of tree against it with find_package(libmsvc).
  set(_e2e_bins ${_e2e_work}/bin)
  set(_e2e_fixture examples_bins)
  add_test(NAME examples_e2e_build
    COMMAND ${Python3_EXECUTABLE} ${_e2e_dir}/e2e.py build ${PROJECT_SOURCE_DIR}
            ${PROJECT_BINARY_DIR} ${_e2e_work} ${CMAKE_COMMAND} ${CMAKE_C_COMPILER})
  set_tests_properties(examples_e2e_build PROPERTIES LABELS examples TIMEOUT 600
    FIXTURES_SETUP examples_bins)
endif()

set(_e2e_registries local)
if(MSVC_ETCD)
  list(APPEND _e2e_registries etcd)
else()
  message(STATUS "examples tests: etcd not found, the etcd variants are skipped")
endif()
find_program(MSVC_DNSMASQ dnsmasq PATHS /usr/sbin /sbin)
if(LIBMSVC_HAVE_CARES AND MSVC_DNSMASQ)
  list(APPEND _e2e_registries dns)
else()
  message(STATUS "examples tests: no c-ares or no dnsmasq, the dns variant is skipped")
endif()
foreach(reg IN LISTS _e2e_registries)
  add_test(NAME examples_e2e_${reg}
    COMMAND ${Python3_EXECUTABLE} ${_e2e_dir}/e2e.py run --bin-dir ${_e2e_bins}
            --registry ${reg} --promtool "${_promtool}")
  # RUN_SERIAL: the scenarios measure load spread and time failures; other
  # suites running beside them on a small machine would only add noise.
  set_tests_properties(examples_e2e_${reg} PROPERTIES LABELS examples TIMEOUT 600
    RUN_SERIAL TRUE)
  if(reg STREQUAL "dns")
    set_tests_properties(examples_e2e_${reg} PROPERTIES LABELS "examples;registry")
  else()
    # The demo runs on the registries a developer has at hand, not on DNS.
    add_test(NAME examples_demo_smoke_${reg}
      COMMAND ${PROJECT_SOURCE_DIR}/examples/demo.sh --smoke --quiet
              --registry ${reg} --bin-dir ${_e2e_bins})
    set_tests_properties(examples_demo_smoke_${reg} PROPERTIES LABELS examples TIMEOUT 300)
    if(_e2e_fixture)
      set_tests_properties(examples_demo_smoke_${reg} PROPERTIES FIXTURES_REQUIRED ${_e2e_fixture})
    endif()
  endif()
  if(_e2e_fixture)
    set_tests_properties(examples_e2e_${reg} PROPERTIES FIXTURES_REQUIRED ${_e2e_fixture})
  endif()
endforeach()

# The same demo with every service on mutual TLS (certificates from a
# private CA created by the script).
add_test(NAME examples_demo_smoke_tls
  COMMAND ${PROJECT_SOURCE_DIR}/examples/demo.sh --smoke --quiet --tls
          --registry local --bin-dir ${_e2e_bins})
set_tests_properties(examples_demo_smoke_tls PROPERTIES LABELS "examples;tls" TIMEOUT 300)
if(_e2e_fixture)
  set_tests_properties(examples_demo_smoke_tls PROPERTIES FIXTURES_REQUIRED ${_e2e_fixture})
endif()
