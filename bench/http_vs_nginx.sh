#!/bin/sh
# HTTP server benchmark, in one run, alternating between the servers so that
# a change in the machine's load hits them alike:
#   libmsvc     the hello example (router, no middleware)
#   libmsvc_mw  the same routes with a service's default middleware on
#               (request id, trace context, metrics; access log off):
#               bench/servers/hello_mw
#   nginx       one worker returning the same bodies
#   bare_libuv  libuv + llhttp with a fixed response and nothing else, the
#               ceiling of the stack (bench/servers/bare_libuv; it answers
#               the JSON route with the same fixed text)
# The server is pinned to one core and wrk to the other. For each server and
# load it reports requests/s, p50, p99 and the server's CPU time per request
# (utime + stime of every server process from /proc/<pid>/stat over the run,
# divided by the requests served): the median over the runs with min and
# max, as result lines (docs/reference.md) with the ratio to nginx, and the CPU
# per request also with the ratio to bare_libuv.
#
# Pipelined load (http_hello_pipelined) sends 16 requests per write; its
# p50/p99 are the latency of a whole batch of 16 (see bench/pipeline.lua).
#
#   bench/http_vs_nginx.sh [path/to/hello]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too; BUILD_DIR
# the build tree holding the programs (default build-bench, then build);
# SERVER_CPU / WRK_CPU choose the cores (0 and 1); DURATION and RUNS
# override the run length (seconds) and the number of runs per figure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
hello=${1:-${HELLO:-}}
bare=""
hello_mw=""
for b in ${BUILD_DIR:-} "$here/../build-bench" "$here/../build"; do
  [ -z "$hello" ] && [ -x "$b/examples/hello/hello" ] && hello=$b/examples/hello/hello
  [ -z "$bare" ] && [ -x "$b/bench/servers/bare_libuv" ] && bare=$b/bench/servers/bare_libuv
  [ -z "$hello_mw" ] && [ -x "$b/bench/servers/hello_mw" ] && hello_mw=$b/bench/servers/hello_mw
done
[ -n "$hello" ] && [ -x "$hello" ] || { echo "http_vs_nginx: hello program not found (pass its path)" >&2; exit 2; }
[ -n "$bare" ] || echo "http_vs_nginx: bench/servers/bare_libuv not built: no ceiling figures" >&2
[ -n "$hello_mw" ] || echo "http_vs_nginx: bench/servers/hello_mw not built: no middleware figures" >&2
command -v wrk >/dev/null || { echo "http_vs_nginx: wrk not installed" >&2; exit 2; }
command -v nginx >/dev/null || { echo "http_vs_nginx: nginx not installed" >&2; exit 2; }

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-3}; runs=${RUNS:-5}
fi
server_cpu=${SERVER_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-http.XXXXXX")
pids=""

cleanup() {
  for p in $pids; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

prog=http_vs_nginx
. "$here/lib.sh"

# start_prog IMPL PROGRAM: run a server of ours (it takes --port) pinned to
# the server core; sets <impl>_pid and <impl>_port.
start_prog() {
  _port=$(free_port)
  taskset -c "$server_cpu" "$2" --port "$_port" >"$tmp/$1.out" 2>&1 &
  eval "${1}_pid=\$!; ${1}_port=\$_port"
  pids="$pids $!"
  wait_port "$_port"
}

start_nginx() {
  port=$(free_port)
  nginx_port=$port
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    location = /hello { default_type text/plain; return 200 "hello, world!"; }
    location = /hello/bob { default_type application/json; return 200 '{"message":"hello, bob!"}'; }
  }
}
EOF
  taskset -c "$server_cpu" nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
  nginx_pid=$!
  pids="$pids $nginx_pid"
  wait_port "$port"
}

impls=nginx
start_nginx
for impl in bare_libuv libmsvc libmsvc_mw; do
  case $impl in
  bare_libuv) p=$bare ;;
  libmsvc) p=$hello ;;
  libmsvc_mw) p=$hello_mw ;;
  esac
  [ -n "$p" ] || continue
  start_prog "$impl" "$p"
  impls="$impls $impl"
done
ceiling=""
case " $impls " in *" bare_libuv "*) ceiling=bare_libuv ;; esac

# measure BENCH CONNS PATH [LUA]: every server, runs alternating between
# them; "median min max" per figure into $tmp/res.<impl>.<bench>.<conns>.
measure() {
  bench=$1; conns=$2; path=$3; script=${4:-}
  for impl in $impls; do : >"$tmp/runs.$impl"; done
  i=0
  while [ $i -lt "$runs" ]; do
    for impl in $impls; do
      eval "pid=\$${impl}_pid; port=\$${impl}_port"
      run_wrk "$pid" "$port" "$conns" "$path" "$script" >>"$tmp/runs.$impl"
    done
    i=$((i + 1))
  done
  for impl in $impls; do
    summarize "$tmp/runs.$impl" >"$tmp/res.$impl.$bench.$conns"
  done
}

loads="http_hello:64:/hello: http_hello:256:/hello: http_json:64:/hello/bob: http_json:256:/hello/bob: http_hello_pipelined:64:/hello:$here/pipeline.lua"
for load in $loads; do
  bench=$(echo "$load" | cut -d: -f1)
  conns=$(echo "$load" | cut -d: -f2)
  path=$(echo "$load" | cut -d: -f3)
  script=$(echo "$load" | cut -d: -f4)
  measure "$bench" "$conns" "$path" "$script"
  for impl in $impls; do
    emit_http "$bench" "$impl" "$conns" "$tmp/res.$impl.$bench.$conns" \
      nginx "$tmp/res.nginx.$bench.$conns" "$ceiling" "$tmp/res.bare_libuv.$bench.$conns"
  done
done
