/*
 * Reading call traces: one call per line, `time_ms,latency_ms,outcome`.
 */
#ifndef MSVC_BREAKER_SIM_TRACE_H
#define MSVC_BREAKER_SIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include <msvc/breaker.h>

typedef struct sim_call_s {
  uint64_t time_ms;
  uint64_t latency_ms;
  msvc_breaker_outcome_t outcome;
} sim_call_t;

typedef struct sim_reader_s {
  FILE *in;
  unsigned long line;
  uint64_t last_time_ms;
  char error[160];
} sim_reader_t;

/* Reads the next call. Returns 1 with a call, 0 at the end of the trace,
 * -1 on a malformed line (reader->error says why, with the line number).
 * Blank lines, `#` comments and a first line that is a header are skipped. */
int sim_read_call(sim_reader_t *reader, sim_call_t *call);

#endif /* MSVC_BREAKER_SIM_TRACE_H */
