#!/usr/bin/env bash
# Cost of tracing: GET /hello through a whole service object
# (bench/servers/hello_svc) with tracing off, and with an OTLP endpoint and
# MSVC_TRACE_SAMPLE 0, 0.1 and 1, its spans exported to a local collector
# (examples/otlp_collector.py, counting only). The four servers run at once,
# pinned to one core, and take turns under wrk in every round, so the
# figures compare within one run. Lines (bench trace_overhead):
#   cpu_us_per_req and p99_ms of libmsvc_off, libmsvc_sampled_0,
#   libmsvc_sampled_10 and libmsvc_sampled_100, each traced one with the
#   ratio to libmsvc_off. The exporter's thread is part of the server's
#   CPU time; the collector's is not.
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1): 2 s per run, one run;
# DURATION / RUNS / CONNS override; MSVC_BENCH_RESULTS=<file> appends the
# lines there too; BUILD_DIR (default ../build-bench); SERVER_CPU (default
# 0) and WRK_CPU (default 1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build-bench}
quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
prog=trace_overhead
if [ "$quick" != 0 ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-8}; runs=${RUNS:-3}
fi
conns=${CONNS:-16}
wrk_cpu=${WRK_CPU:-1}
server_cpu=${SERVER_CPU:-0}
hz=$(getconf CLK_TCK)
for t in wrk curl python3 taskset; do
  command -v "$t" >/dev/null || { echo "$prog: $t not installed" >&2; exit 2; }
done
server=$build/bench/servers/hello_svc
if [ ! -x "$server" ]; then
  echo "$prog: $server is not built; skipped" >&2
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-trace.XXXXXX")
. "$here/lib.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

python3 "$here/../examples/otlp_collector.py" serve --discard >"$tmp/collector.out" 2>&1 &
pids+=($!)
for ((n = 0; n < 50; n++)); do [ -s "$tmp/collector.out" ] && break; sleep 0.1; done
collector=http://127.0.0.1:$(awk '{print $2}' "$tmp/collector.out")

impls=(libmsvc_off libmsvc_sampled_0 libmsvc_sampled_10 libmsvc_sampled_100)
declare -A port pid
for impl in "${impls[@]}"; do
  p=$(free_port)
  env=(MSVC_REGISTRY=memory:// MSVC_PORT="$p" MSVC_LOG_LEVEL=warn)
  case $impl in
  libmsvc_off) ;;
  *) env+=(MSVC_OTLP_ENDPOINT="$collector" MSVC_TRACE_SAMPLE="$(
       awk -v r="${impl##*_}" 'BEGIN { print r / 100 }')") ;;
  esac
  env "${env[@]}" taskset -c "$server_cpu" "$server" >"$tmp/$impl.log" 2>&1 &
  pid[$impl]=$!
  pids+=($!)
  port[$impl]=$p
  wait_port "$p"
done

for impl in "${impls[@]}"; do : >"$tmp/$impl.runs"; done
for ((r = 0; r < runs; r++)); do
  for impl in "${impls[@]}"; do
    run_wrk "${pid[$impl]}" "${port[$impl]}" "$conns" /hello >>"$tmp/$impl.runs"
  done
done

base="\"bench\":\"$prog\""
for impl in "${impls[@]}"; do summarize "$tmp/$impl.runs" >"$tmp/$impl.sum"; done
for col in 4:cpu_us_per_req:us 3:p99_ms:ms; do
  c=${col%%:*}; rest=${col#*:}; metric=${rest%%:*}; unit=${rest#*:}
  read -r off _ _ <<<"$(sed -n "${c}p" "$tmp/libmsvc_off.sum")"
  for impl in "${impls[@]}"; do
    read -r v lo hi <<<"$(sed -n "${c}p" "$tmp/$impl.sum")"
    line="{$base,\"impl\":\"$impl\",\"metric\":\"$metric\",\"value\":$v,\"unit\":\"$unit\",\"runs\":$runs,\"min\":$lo,\"max\":$hi,\"conns\":$conns"
    if [ "$impl" = libmsvc_off ]; then
      emit "$line}"
    else
      emit "$line,\"ratio_vs\":\"libmsvc_off\",\"ratio\":$(ratio "$v" "$off")}"
    fi
  done
done
stats=$(curl -s "$collector/stats")
echo "$prog: the collector received $stats" >&2
