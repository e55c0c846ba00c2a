#!/bin/sh
# Load balancing under skew (bench "lb_skew_share"): two backends, one ten
# times slower than the other (bench/servers/hello_mw answering after 1 ms
# and after 10 ms), behind a balancing proxy; wrk keeps CONNS requests in
# flight. The figure is the share of requests, in percent, that the proxy
# sent to the slow backend (counted by the backends themselves, from their
# /metrics): lower is better, 50 is what blind round robin does, and an
# ideal least-loaded policy approaches 1/11 (9.1%). In the same run:
#   libmsvc_least_conn  examples/proxy --lb least_conn
#   libmsvc_p2c         examples/proxy --lb p2c (power of two choices)
#   libmsvc_round_robin examples/proxy (the blind baseline)
#   haproxy_leastconn   haproxy, balance leastconn (the peer of the ratios)
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; BUILD_DIR
# the build tree; PROXY_CPU / WRK_CPU choose the cores (0 and 1); DURATION,
# RUNS, CONNS (32), FAST_MS (1) and SLOW_MS (10) override the defaults.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
proxy=""
backend=""
for b in ${BUILD_DIR:-} "$here/../build-bench" "$here/../build"; do
  [ -z "$proxy" ] && [ -x "$b/examples/proxy/proxy" ] && proxy=$b/examples/proxy/proxy
  [ -z "$backend" ] && [ -x "$b/bench/servers/hello_mw" ] && backend=$b/bench/servers/hello_mw
done
if [ -z "$proxy" ] || [ -z "$backend" ]; then
  echo "lb_skew: examples/proxy or bench/servers/hello_mw not built: skipped" >&2
  exit 0
fi
for t in wrk haproxy curl python3; do
  command -v $t >/dev/null || { echo "lb_skew: $t not installed" >&2; exit 2; }
done

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-3}; runs=${RUNS:-5}
fi
conns=${CONNS:-32}
fast_ms=${FAST_MS:-1}
slow_ms=${SLOW_MS:-10}
proxy_cpu=${PROXY_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-skew.XXXXXX")
pids=""

cleanup() {
  for p in $pids; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

prog=lb_skew
. "$here/lib.sh"

fast=$(free_port)
slow=$(free_port)
taskset -c "$wrk_cpu" "$backend" --port "$fast" --delay-ms "$fast_ms" >"$tmp/fast.out" 2>&1 &
pids="$pids $!"
taskset -c "$wrk_cpu" "$backend" --port "$slow" --delay-ms "$slow_ms" >"$tmp/slow.out" 2>&1 &
pids="$pids $!"
wait_port "$fast"
wait_port "$slow"

# served PORT: requests the backend has answered on /hello so far.
served() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^msvc_http_server_requests_total\{.*route="\/hello"/ {n += $NF} END {print n + 0}'
}

start_proxy() {
  _port=$(free_port)
  taskset -c "$proxy_cpu" "$proxy" --upstream "127.0.0.1:$fast" --upstream "127.0.0.1:$slow" \
    --port "$_port" --conns "$conns" --lb "$2" >"$tmp/$1.out" 2>&1 &
  eval "${1}_pid=\$!; ${1}_port=\$_port"
  pids="$pids $!"
}
start_proxy libmsvc_least_conn least_conn
start_proxy libmsvc_p2c p2c
start_proxy libmsvc_round_robin round_robin

haproxy_leastconn_port=$(free_port)
cat >"$tmp/haproxy.cfg" <<CONF
global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend f
  bind 127.0.0.1:$haproxy_leastconn_port
  default_backend b
backend b
  balance leastconn
  http-reuse always
  server fast 127.0.0.1:$fast
  server slow 127.0.0.1:$slow
CONF
taskset -c "$proxy_cpu" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
haproxy_leastconn_pid=$!
pids="$pids $haproxy_leastconn_pid"

impls="haproxy_leastconn libmsvc_least_conn libmsvc_p2c libmsvc_round_robin"
for impl in $impls; do
  eval "wait_port \$${impl}_port"
  : >"$tmp/runs.$impl"
done
i=0
while [ $i -lt "$runs" ]; do
  for impl in $impls; do
    eval "pid=\$${impl}_pid; port=\$${impl}_port"
    f0=$(served "$fast"); s0=$(served "$slow")
    run_wrk "$pid" "$port" "$conns" /hello >/dev/null
    f1=$(served "$fast"); s1=$(served "$slow")
    awk -v f=$((f1 - f0)) -v s=$((s1 - s0)) \
      'BEGIN { if (f + s > 0) print 100 * s / (f + s); else print 0 }' >>"$tmp/runs.$impl"
  done
  i=$((i + 1))
done

peer=$(mmm <"$tmp/runs.haproxy_leastconn")
for impl in $impls; do
  set -- $(mmm <"$tmp/runs.$impl")
  line="{\"bench\":\"lb_skew_share\",\"impl\":\"$impl\",\"metric\":\"share_pct\",\"value\":$1,\"unit\":\"%\",\"runs\":$runs,\"min\":$2,\"max\":$3,\"conns\":$conns"
  if [ "$impl" != haproxy_leastconn ]; then
    line="$line,\"ratio_vs\":\"haproxy_leastconn\",\"ratio\":$(ratio "$1" "${peer%% *}")"
  fi
  emit "$line}"
done
