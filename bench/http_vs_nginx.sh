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

free_port() {
  # Ask the kernel: bind port 0 and report what it chose.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  i=0
  while ! curl -s -o /dev/null "http://127.0.0.1:$1/hello"; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "http_vs_nginx: server did not start" >&2; exit 1; }
    sleep 0.05
  done
}

# utime + stime (clock ticks) of a process and its children threads/processes.
cpu_ticks() {
  total=0
  for p in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

# server_pids PID: the server process and its children (nginx's worker).
server_pids() {
  echo "$1"
  ps -o pid= --ppid "$1" 2>/dev/null || true
}

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

# to_ms VALUE: wrk prints latencies as 12.34us, 1.20ms or 1.01s.
to_ms() {
  echo "$1" | awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v}'
}

# run_wrk PID PORT CONNS PATH [LUA] -> "rps p50_ms p99_ms cpu_us_per_req"
run_wrk() {
  pid=$1; port=$2; conns=$3; path=$4; script=${5:-}
  pids=$(server_pids "$pid" | tr '\n' ' ')
  before=$(cpu_ticks $pids)
  if [ -n "$script" ]; then
    taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$script" \
      "http://127.0.0.1:$port$path" >"$tmp/wrk.out" 2>&1
  else
    taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${duration}s" --latency \
      "http://127.0.0.1:$port$path" >"$tmp/wrk.out" 2>&1
  fi
  after=$(cpu_ticks $pids)
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' "$tmp/wrk.out")
  [ -n "$errs" ] && echo "http_vs_nginx: wrk reported: $errs" >&2
  cpu=$(awk -v a="$after" -v b="$before" -v hz="$hz" -v n="${reqs:-0}" \
    'BEGIN { if (n > 0) print (a - b) * 1e6 / hz / n; else print 0 }')
  echo "$rps $p50 $p99 $cpu"
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

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

emit() {
  line=$1
  echo "$line"
  if [ -n "${MSVC_BENCH_RESULTS:-}" ]; then echo "$line" >>"$MSVC_BENCH_RESULTS"; fi
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
