#!/bin/sh
# HTTP/2 server benchmark (h2_hello): h2load with 64 connections and 16
# streams in flight on each (prior-knowledge h2c) against
#   libmsvc  the hello example, HTTP/2 on by default on its one port
#   nginx    one worker with HTTP/2 on its listener, the same body
# alternating between them so that a change in the machine's load hits
# both alike. The server is pinned to one core and h2load to the other.
# For each it reports requests/s, p99 latency (from h2load's per-request
# log) and the server's CPU time per request (utime + stime of its process
# tree from /proc/<pid>/stat over the run, divided by the requests done):
# the median over the runs with min and max, as result lines with the ratio
# to nginx.
#
#   bench/h2_vs_nginx.sh [path/to/hello]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; BUILD_DIR
# the build tree holding the programs (default build-bench, then build);
# SERVER_CPU / CLIENT_CPU choose the cores (0 and 1); DURATION and RUNS
# override the run length (seconds) and the number of runs per figure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
hello=${1:-${HELLO:-}}
for b in ${BUILD_DIR:-} "$here/../build-bench" "$here/../build"; do
  [ -z "$hello" ] && [ -x "$b/examples/hello/hello" ] && hello=$b/examples/hello/hello
done
[ -n "$hello" ] && [ -x "$hello" ] || { echo "h2_vs_nginx: hello program not found (pass its path)" >&2; exit 2; }
command -v h2load >/dev/null || { echo "h2_vs_nginx: h2load (nghttp2-client) not installed" >&2; exit 2; }
command -v nginx >/dev/null || { echo "h2_vs_nginx: nginx not installed" >&2; exit 2; }

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-3}; runs=${RUNS:-5}
fi
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
wrk_cpu=$client_cpu
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-h2.XXXXXX")
pids=""

cleanup() {
  for p in $pids; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

prog=h2_vs_nginx
. "$here/lib.sh"

# wait_h2 PORT: until something answers HTTP/2 on /hello there.
wait_h2() {
  _i=0
  while ! curl -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$1/hello"; do
    _i=$((_i + 1))
    [ $_i -gt 100 ] && { echo "$prog: port $1 did not answer" >&2; exit 1; }
    sleep 0.05
  done
}

start_libmsvc() {
  libmsvc_port=$(free_port)
  taskset -c "$server_cpu" "$hello" --port "$libmsvc_port" >"$tmp/libmsvc.out" 2>&1 &
  libmsvc_pid=$!
  pids="$pids $libmsvc_pid"
  wait_h2 "$libmsvc_port"
}

# nginx 1.25.1 and later spell it "http2 on;", older ones "listen ... http2".
start_nginx() {
  nginx_port=$(free_port)
  mkdir -p "$tmp/nginx"
  if nginx -V 2>&1 | awk '/nginx version/ { split($3, v, "/"); split(v[2], n, ".");
      exit !(n[1] > 1 || n[2] > 25 || (n[2] == 25 && n[3] >= 1)) }'; then
    listen="listen 127.0.0.1:$nginx_port; http2 on;"
  else
    listen="listen 127.0.0.1:$nginx_port http2;"
  fi
  cat >"$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 128;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    $listen
    location = /hello { default_type text/plain; return 200 "hello, world!"; }
  }
}
CONF
  taskset -c "$server_cpu" nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
  nginx_pid=$!
  pids="$pids $nginx_pid"
  wait_h2 "$nginx_port"
}

# run_h2load PID PORT -> "rps p50_ms p99_ms cpu_us_per_req".
run_h2load() {
  _tree=$(proc_tree "$1" | tr '\n' ' ')
  _before=$(cpu_ticks $_tree)
  rm -f "$tmp/h2load.log" # h2load appends to it
  taskset -c "$client_cpu" h2load -t1 -c64 -m16 -D "$duration" \
    --log-file="$tmp/h2load.log" "http://127.0.0.1:$2/hello" >"$tmp/h2load.out" 2>&1 || true
  _after=$(cpu_ticks $_tree)
  if [ ! -e "/proc/$1" ]; then
    echo "$prog: the server under test (pid $1) exited during the run; h2load said:" >&2
    cat "$tmp/h2load.out" >&2
    exit 1
  fi
  # "requests: N total, N started, N done, N succeeded, ..."
  _done=$(awk '/^requests:/ {print $6}' "$tmp/h2load.out")
  _failed=$(awk '/^requests:/ {print $10}' "$tmp/h2load.out")
  [ "${_failed:-0}" = 0 ] || echo "$prog: h2load reported $_failed failed requests" >&2
  _rps=$(awk '/^finished in/ {print $4}' "$tmp/h2load.out")
  # The log has one line per request: start time, status, duration (us).
  _pct=$(awk '{print $3}' "$tmp/h2load.log" | sort -n |
    awk '{v[NR]=$1} END { if (NR == 0) print "0 0";
      else print v[int(NR * 0.50) + (NR * 0.50 > int(NR * 0.50))] / 1000,
                 v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] / 1000 }')
  _cpu=$(awk -v a="$_after" -v b="$_before" -v hz="$hz" -v n="${_done:-0}" \
    'BEGIN { if (n > 0) print (a - b) * 1e6 / hz / n; else print 0 }')
  echo "${_rps:-0} $_pct $_cpu"
}

start_nginx
start_libmsvc
impls="nginx libmsvc"
for impl in $impls; do : >"$tmp/runs.$impl"; done
i=0
while [ $i -lt "$runs" ]; do
  for impl in $impls; do
    eval "pid=\$${impl}_pid; port=\$${impl}_port"
    run_h2load "$pid" "$port" >>"$tmp/runs.$impl"
  done
  i=$((i + 1))
done
for impl in $impls; do
  summarize "$tmp/runs.$impl" >"$tmp/res.$impl"
done
for impl in $impls; do
  emit_http h2_hello "$impl" 64 "$tmp/res.$impl" nginx "$tmp/res.nginx"
done
