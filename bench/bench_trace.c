/*
 * trace_span: nanoseconds to start and end one span with two attributes
 * (what a server span costs the request), sampled and kept, on a tracer
 * whose exporter is off so that only the recording is measured.
 */
#include <msvc/trace.h>

#include "bench.h"

int main(void) {
  msvc_tracer_opts_t o;
  msvc_tracer_t *t;
  int runs = bench_runs(), r;
  long n = bench_quick() ? 200000 : 2000000, i;
  double samples[16];

  msvc_tracer_opts_init(&o);
  o.service_name = "bench";
  if (msvc_tracer_new(&o, &t) != MSVC_OK)
    return 1;
  for (r = 0; r < runs; r++) {
    double t0 = bench_now_ns();
    for (i = 0; i < n; i++) {
      msvc_span_t *s;
      msvc_trace_span_start(t, "GET /hello", MSVC_SPAN_SERVER, NULL, &s);
      msvc_trace_span_set_str(s, "http.route", "/hello");
      msvc_trace_span_set_int(s, "http.response.status_code", 200);
      msvc_trace_span_end(s);
    }
    samples[r] = (bench_now_ns() - t0) / (double)n;
  }
  bench_emit("trace_span", "libmsvc", "ns_per_op", "ns", bench_stats(samples, runs), NULL, 0);
  msvc_tracer_free(t);
  return 0;
}
