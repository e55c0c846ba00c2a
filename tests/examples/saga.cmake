# The order saga on a real NATS JetStream broker (labels `examples` and
# `events`): tests/examples/saga.py starts its own nats-server and services
# (free ports, private directories), so the three may run at once. They use
# the services built in this tree.
find_package(Python3 COMPONENTS Interpreter)
find_program(MSVC_NATS_SERVER nats-server)
if(NOT Python3_Interpreter_FOUND OR NOT EX_HAVE_EVENTS OR NOT LIBMSVC_BUILD_EXAMPLES)
  return()
endif()
if(NOT LIBMSVC_HAVE_NATS OR NOT MSVC_NATS_SERVER)
  message(STATUS "examples: saga tests skipped (needs libnats and nats-server)")
  return()
endif()
foreach(scenario both_ways broker_kill payment_kill)
  add_test(NAME examples_saga_${scenario}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/saga.py ${scenario}
            --bin-dir ${PROJECT_BINARY_DIR}/examples --nats ${MSVC_NATS_SERVER})
  set_tests_properties(examples_saga_${scenario} PROPERTIES LABELS "examples;events"
    TIMEOUT 60)
endforeach()

# The demo with the broker and payment-service: the saga both ways.
add_test(NAME examples_demo_smoke_events
  COMMAND ${PROJECT_SOURCE_DIR}/examples/demo.sh --smoke --quiet --events on
          --registry local --bin-dir ${PROJECT_BINARY_DIR}/examples)
set_tests_properties(examples_demo_smoke_events PROPERTIES LABELS "examples;events"
  TIMEOUT 120)
