# Calls by name: the caller driven directly on a private loop with a memory
# registry and plain servers as the instances of the called service.
msvc_add_test(test_service_call_faults LABEL service SOURCES test_call_faults.c
  TIMEOUT 180)
msvc_add_test(test_service_call_basic LABEL service SOURCES test_call_basic.c
  LIBS Threads::Threads TIMEOUT 120)
msvc_add_test(test_service_call_service LABEL service SOURCES test_call_service.c
  LIBS Threads::Threads TIMEOUT 120)
msvc_add_test(test_service_call_retry LABEL service SOURCES test_call_retry.c
  TIMEOUT 120)
msvc_add_test(test_service_call_metrics LABEL service SOURCES test_call_metrics.c
  TIMEOUT 60)
msvc_add_test(test_service_call_proxy LABEL service SOURCES test_call_proxy.c
  TIMEOUT 60)
if(LIBMSVC_HAVE_NGHTTP2)
  msvc_add_test(test_service_call_h2 LABEL service SOURCES test_call_h2.c TIMEOUT 60)
  set_property(TEST test_service_call_h2 APPEND PROPERTY LABELS h2)
endif()
