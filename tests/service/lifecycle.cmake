# The service object: configuration, and its life on real sockets.
msvc_add_test(test_service_config LABEL service SOURCES test_service_config.c
  TIMEOUT 60)
msvc_add_test(test_service_lifecycle LABEL service SOURCES test_service_lifecycle.c
  LIBS Threads::Threads TIMEOUT 120)
msvc_add_test(test_service_options LABEL service SOURCES test_service_options.c
  TIMEOUT 60)
# The https key set fetch uses the TLS tests' certificates.
if("tls" IN_LIST LIBMSVC_BLOCKS)
  set_tests_properties(test_service_lifecycle PROPERTIES FIXTURES_REQUIRED tls_certs)
endif()
