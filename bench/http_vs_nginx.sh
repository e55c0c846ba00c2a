#!/bin/sh
# HTTP server benchmark: the hello example against nginx (one worker, same
# bodies) under wrk, in the same run, alternating between the two. The server is pinned to one core and
# wrk to the other. For each server and load it reports requests/s, p50,
# p99 and the server's CPU time per request (utime + stime of every server
# process from /proc/<pid>/stat over the run, divided by the requests
# served), as CONTRACTS.md section 6 lines with the ratio to nginx.
#
#   bench/http_vs_nginx.sh [path/to/hello]
#
# Environment: QUICK=1 (or MSVC_BENCH_QUICK=1) for a short smoke run;
# MSVC_BENCH_RESULTS=<file> appends the lines to that file too;
# SERVER_CPU / WRK_CPU choose the cores (0 and 1); DURATION and RUNS
# override the run length (seconds) and the number of runs per figure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
hello=${1:-${HELLO:-}}
if [ -z "$hello" ]; then
  for c in "$here/../build/examples/hello/hello" "$here/../build-bench/examples/hello/hello"; do
    [ -x "$c" ] && hello=$c && break
  done
fi
[ -n "$hello" ] && [ -x "$hello" ] || { echo "http_vs_nginx: hello program not found (pass its path)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "http_vs_nginx: wrk not installed" >&2; exit 2; }
command -v nginx >/dev/null || { echo "http_vs_nginx: nginx not installed" >&2; exit 2; }

quick=${QUICK:-${MSVC_BENCH_QUICK:-0}}
if [ "$quick" != "0" ] && [ -n "$quick" ]; then
  duration=${DURATION:-2}; runs=${RUNS:-1}
else
  duration=${DURATION:-10}; runs=${RUNS:-3}
fi
server_cpu=${SERVER_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msvc-bench-http.XXXXXX")
nginx_pid=""
libmsvc_pid=""

cleanup() {
  for p in $nginx_pid $libmsvc_pid; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

prog=http_vs_nginx
. "$here/lib.sh"

start_libmsvc() {
  libmsvc_port=$(free_port)
  taskset -c "$server_cpu" "$hello" --port "$libmsvc_port" >"$tmp/hello.out" 2>&1 &
  libmsvc_pid=$!
  wait_port "$libmsvc_port"
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
  wait_port "$port"
}

cat >"$tmp/pipeline.lua" <<'EOF'
-- 16 requests in every write
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/hello") end
  req = table.concat(r)
end
request = function() return req end
EOF

# measure BENCH CONNS PATH [LUA]: both servers, runs alternating between
# them so that a change in the machine's load hits both alike; medians into
# $tmp/res.<impl>.<bench>.<conns>.
measure() {
  bench=$1; conns=$2; path=$3; script=${4:-}
  : >"$tmp/runs.nginx"
  : >"$tmp/runs.libmsvc"
  i=0
  while [ $i -lt "$runs" ]; do
    run_wrk "$nginx_pid" "$nginx_port" "$conns" "$path" "$script" >>"$tmp/runs.nginx"
    run_wrk "$libmsvc_pid" "$libmsvc_port" "$conns" "$path" "$script" >>"$tmp/runs.libmsvc"
    i=$((i + 1))
  done
  for impl in nginx libmsvc; do
    for col in 1 2 3 4; do
      awk -v c=$col '{print $c}' "$tmp/runs.$impl" | median
    done | tr '\n' ' ' >"$tmp/res.$impl.$bench.$conns"
  done
}

loads="http_hello:64:/hello: http_hello:256:/hello: http_json:64:/hello/bob: http_json:256:/hello/bob: http_hello_pipelined:64:/hello:$tmp/pipeline.lua"

start_nginx
start_libmsvc
for load in $loads; do
  bench=$(echo "$load" | cut -d: -f1)
  conns=$(echo "$load" | cut -d: -f2)
  path=$(echo "$load" | cut -d: -f3)
  script=$(echo "$load" | cut -d: -f4)
  measure "$bench" "$conns" "$path" "$script"
done

metrics="rps:req/s p50_ms:ms p99_ms:ms cpu_us_per_req:us"
for load in $loads; do
  bench=$(echo "$load" | cut -d: -f1)
  conns=$(echo "$load" | cut -d: -f2)
  for impl in nginx libmsvc; do
    set -- $(cat "$tmp/res.$impl.$bench.$conns")
    n1=$1 n2=$2 n3=$3 n4=$4
    set -- $(cat "$tmp/res.nginx.$bench.$conns")
    col=1
    for m in $metrics; do
      name=${m%%:*}; unit=${m#*:}
      eval "v=\$n$col"
      eval "peer=\$$col"
      line="{\"bench\":\"$bench\",\"impl\":\"$impl\",\"metric\":\"$name\",\"value\":$v,\"unit\":\"$unit\",\"runs\":$runs,\"conns\":$conns"
      if [ "$impl" = libmsvc ]; then
        ratio=$(awk -v a="$v" -v b="$peer" 'BEGIN { if (b > 0) printf "%.4g", a / b; else print 0 }')
        line="$line,\"ratio_vs\":\"nginx\",\"ratio\":$ratio"
      fi
      emit "$line}"
      col=$((col + 1))
    done
  done
done
