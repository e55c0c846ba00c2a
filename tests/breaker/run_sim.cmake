# Runs msvc-breaker-sim on one trace and checks its output.
#   -DSIM=<program> -DTRACE=<csv> -DARGS=<options separated by '|'>
#   and either -DEXPECTED=<file with the exact stdout>
#   or -DEXPECT_RC=<exit code> -DEXPECT_STDERR=<regex>
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${SIM} ${args} ${TRACE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(DEFINED EXPECTED)
  file(READ ${EXPECTED} want)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "exit ${rc}: ${err}")
  endif()
  if(NOT out STREQUAL want)
    message(FATAL_ERROR "output differs\n--- got\n${out}--- want\n${want}")
  endif()
else()
  if(NOT rc EQUAL EXPECT_RC)
    message(FATAL_ERROR "exit ${rc}, want ${EXPECT_RC}\n${out}${err}")
  endif()
  if(NOT err MATCHES "${EXPECT_STDERR}")
    message(FATAL_ERROR "stderr does not match '${EXPECT_STDERR}':\n${err}")
  endif()
endif()
