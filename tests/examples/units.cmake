# Unit tests of the example services' own code: the shared helpers,
# request validation, password hashing, the SQLite stores (two connections
# writing to one file at once, as two instances do), token claims and the
# bff's dashboards. The services' sources are compiled in directly.
if(NOT "http" IN_LIST LIBMSVC_BLOCKS OR NOT "jwt" IN_LIST LIBMSVC_BLOCKS)
  return()
endif()
if(NOT TARGET msvc_examples_common)
  add_subdirectory(${PROJECT_SOURCE_DIR}/examples/common
                   ${CMAKE_CURRENT_BINARY_DIR}/examples-common)
endif()
if(NOT TARGET msvc_examples_common)
  return() # no SQLite here
endif()

set(_ex ${PROJECT_SOURCE_DIR}/examples)
msvc_add_test(test_examples_common LABEL examples SOURCES test_common.c
  LIBS msvc_examples_common)
msvc_add_test(test_examples_user LABEL examples
  SOURCES test_user.c ${_ex}/user-service/validate.c ${_ex}/user-service/password.c
          ${_ex}/user-service/users.c ${_ex}/user-service/token.c
  LIBS msvc_examples_common MbedTLS::mbedcrypto Threads::Threads)
target_include_directories(test_examples_user PRIVATE ${_ex}/user-service)
msvc_add_test(test_examples_order LABEL examples
  SOURCES test_order.c ${_ex}/order-service/order.c ${_ex}/order-service/orders.c
  LIBS msvc_examples_common Threads::Threads)
target_include_directories(test_examples_order PRIVATE ${_ex}/order-service)
msvc_add_test(test_examples_dashboard LABEL examples
  SOURCES test_dashboard.c ${_ex}/bff/dashboard.c LIBS msvc_examples_common)
target_include_directories(test_examples_dashboard PRIVATE ${_ex}/bff)
if(EX_HAVE_EVENTS)
  # The outbox, the inbox and the relay on the memory:// broker; the order
  # saga's state machine and payment-service's decision.
  msvc_add_test(test_examples_outbox LABEL examples TIMEOUT 60
    SOURCES test_outbox.c LIBS msvc_examples_common)
  msvc_add_test(test_examples_saga LABEL examples TIMEOUT 60
    SOURCES test_saga.c ${_ex}/order-service/order.c ${_ex}/order-service/orders.c
            ${_ex}/payment-service/payments.c
    LIBS msvc_examples_common Threads::Threads)
  target_include_directories(test_examples_saga PRIVATE ${_ex}/order-service
                             ${_ex}/payment-service)
  set_tests_properties(test_examples_outbox test_examples_saga PROPERTIES
    LABELS "examples;events")
endif()
